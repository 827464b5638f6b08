"""VPG for two-player zero-sum Markov games (Section 5.4).

Section 5.4 of Zhao & Zhang, "Variational Stochastic Games": when r^{-i} =
-r^i, agent i needs no reward estimate for its opponent, and the opponent's
soft policy comes in closed form after each soft-Q update:

  rho*(a^{-i} | s) ∝ pibar(a^{-i} | s) exp(-E_{a^i ~ pi_i} Q^i(s, a^i, a^{-i})),

the opponent's soft response that minimises agent i's soft value. Agent i's
soft value then carries the opponent's KL to its prior,

  V^i(s) = E_{pi_i, rho}[Q^i] + H(pi_i(.|s)) + KL(rho(.|s) || pibar(.|s))
         = H(pi_i(.|s)) - log sum_b pibar(b|s) exp(-E_{pi_i} Q^i(s, ., b)),

Q^i(s, a, b) = r^i(s, a, b)/alpha + gamma E_{s'} V^i(s'), computed by one
backward pass per agent in which rho is updated state by state right after
the state's Q. Each agent then takes the eq. 4 step on Q^i averaged over
rho. With pibar uniform, agent i ascends the concave regularised max-min
objective; annealing alpha to 0 drives the exploitability to 0.
"""

import numpy as np

from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel import logit
from vsg_spiel import parameters
from vsg_spiel import profiles
from vsg_spiel.algorithms import vpg

OPPONENT_PRIORS = ("uniform", "previous")
_ZERO_SUM_TOLERANCE = 1e-9


class ZeroSumVPGSolver(vpg.AnnealedHyperparameters):
  """Zero-sum VPG; `iteration()`, `policy()`, `profile()`, `nash_conv()`.

  Args:
    game: a two-player zero-sum game (or string, or `MarkovGame`) the core
      accepts.
    temperature: alpha > 0 or a callable iteration -> alpha (annealing); at
      least the game's largest |return| / 1e300, as `VPGSolver`'s.
    step: beta in (0, 1] of eq. 4, or a callable iteration -> beta. The soft
      objective's curvature grows like 1/alpha, so beta must shrink with
      alpha for the iterates to converge (e.g. beta = alpha / 5 on unit
      payoffs; `proportional_step`).
    opponent_prior: pibar of the closed-form opponent: "uniform" or
      "previous" (the previous model).
    initial_profile: starting policies (uniform by default; zero
      probabilities are exact).

  Raises:
    ValueError: a parameter out of range (named in the message), or a game
      that is not two-player zero-sum.
  """

  def __init__(self, game, temperature=1.0, step=0.5,
               opponent_prior="uniform", initial_profile=None):
    if not callable(temperature):
      logit.check_temperature(temperature)
    if not callable(step):
      logit.check_step(step)
    parameters.check_choice("opponent_prior", opponent_prior, OPPONENT_PRIORS)
    self.mgame = mgame = core.markov_game(game)
    if mgame.stationary:
      raise ValueError(
          f"{type(self).__name__} needs a finite-horizon game (it "
          "works by backward induction over the layers); the game is a "
          "stationary discounted game: use vpg.VPGSolver or homotopy.solve")
    if mgame.num_players != 2:
      raise ValueError(f"a zero-sum solver needs 2 players; the game has "
                       f"{mgame.num_players}")
    scale = max(1.0, float(np.abs(mgame.rewards).max()))
    if np.abs(mgame.rewards.sum(axis=0)).max() > _ZERO_SUM_TOLERANCE * scale:
      raise ValueError("the game is not zero-sum: rewards of the two players "
                       "do not cancel")
    self.temperature = temperature
    self.step = step
    self.opponent_prior = opponent_prior
    self._iteration = 0
    if not callable(temperature):  # Returns / alpha must stay finite.
      self.current_temperature()
    start = (profiles.uniform_profile(mgame) if initial_profile is None else
             profiles.validate_profile(mgame, initial_profile))
    with np.errstate(divide="ignore"):
      self.log_policies = [np.where(mask, np.log(policy), -np.inf)
                           for policy, mask in zip(start, mgame.legal_mask)]
    # opponent_models[i]: agent i's closed-form model of the other.
    self.opponent_models = [start[1].copy(), start[0].copy()]
    # Agent i's rewards as (S, A_i, A_other).
    self._own_rewards = [vpg.own_first(mgame.rewards[i], i, 2)
                         for i in range(2)]

  @property
  def iteration_count(self):
    return self._iteration

  def iteration(self):
    """Soft Q and closed-form opponent per agent, then the eq. 4 step."""
    alpha = self.current_temperature()
    step = self.current_step()
    action_values = []
    for i in range(2):
      values, self.opponent_models[i] = self._soft_backward(i, alpha)
      action_values.append(values)
    for i in range(2):
      self.log_policies[i] = logit.mirror_step(
          self.log_policies[i], action_values[i], self.mgame.legal_mask[i],
          step, axis=1)
    self._iteration += 1

  # --------------------------------------------------------------------------
  # Convergence: the fixed-point residual of the current policies.

  tolerance = 1e-8
  """`converged` holds when `residual` is at most this (probabilities)."""

  @property
  def residual(self):
    """max |pi_i(a|s) - softmax_a(E_{b~rho*_i} Q^i(s, a, b))| over both
    agents, states and legal actions, at the current temperature: how far
    the policies are from the fixed point of the eq. 4 step (every beta),
    Prop. 5.2's soft best response to the closed-form opponent rho* of
    Section 5.4, computed from the current policies (the stored models are
    left as they are). 0 exactly at that fixed point, the saddle point of
    the regularised max-min objective; probability units, in [0, 1]."""
    alpha = self.current_temperature()
    residual = 0.0
    for i in range(2):
      action_values = self._soft_backward(i, alpha)[0]
      response = logit.softmax(action_values, self.mgame.legal_mask[i],
                               axis=1)
      residual = max(residual, float(np.max(np.abs(
          np.exp(self.log_policies[i]) - response))))
    return residual

  @property
  def converged(self):
    return self.residual <= self.tolerance

  def _soft_backward(self, i, alpha):
    """Agent i's backward pass: Q^i, the closed-form rho*, V^i. Returns
    E_{b~rho*} Q^i(s, a, b) as (S, A_i) and rho* (S, A_other)."""
    mgame = self.mgame
    other = 1 - i
    policy = np.exp(self.log_policies[i])
    other_legal = mgame.legal_mask[other]
    if self.opponent_prior == "uniform":
      prior = profiles.uniform_profile(mgame)[other]
    else:
      prior = self.opponent_models[i]
    with np.errstate(divide="ignore"):
      log_prior = np.where(other_legal, np.log(prior), 0.0)
    entropy = logit.soft_expectation(self.log_policies[i], 0.0, axis=1)
    values = np.zeros(mgame.num_states)
    model = np.zeros(prior.shape)
    action_values = np.zeros(policy.shape)
    for layer_index in reversed(range(len(mgame.layers))):
      layer = mgame.layers[layer_index]
      continuation = vpg.own_first(
          mgame.expected_next(layer_index, values), i, 2)
      q_values = self._own_rewards[i][layer] / alpha + (
          mgame.discount * continuation)                      # (n, A_i, A_o)
      expected = np.einsum("sab,sa->sb", q_values, policy[layer])
      logits = log_prior[layer] - expected
      model[layer] = np.exp(logit.log_softmax(logits, other_legal[layer],
                                              axis=1))
      values[layer] = entropy[layer] - logit.log_sum_exp(
          logits, other_legal[layer], axis=1)
      action_values[layer] = np.einsum("sab,sb->sa", q_values, model[layer])
    return action_values, model

  def profile(self):
    """The two policies as arrays (S, A_i) of the game's `MarkovGame`."""
    return [np.exp(log_policy) for log_policy in self.log_policies]

  def policy(self):
    """The two policies as an OpenSpiel policy."""
    return profiles.to_policy(self.mgame, self.profile())

  def nash_conv(self):
    """NashConv of `profile()` (0 exactly at a Nash equilibrium)."""
    return float(np.sum(exploitability.profile_deviation_gains(
        self.mgame, self.profile())))

  def exploitability(self):
    """NashConv / 2: OpenSpiel's `exploitability` of a zero-sum game."""
    return self.nash_conv() / 2


def proportional_step(temperature, ratio=0.2):
  """beta_t = min(1, ratio * alpha_t) for a temperature schedule alpha_t."""
  parameters.check_real("ratio", ratio, 0.0, low_open=True)
  if callable(temperature):
    return lambda iteration: min(1.0, ratio * temperature(iteration))
  return min(1.0, ratio * temperature)

