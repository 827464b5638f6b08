"""Variational policy gradient (VPG) with variational opponent modelling.

Algorithms 1 and 3 of Zhao & Zhang, "Variational Stochastic Games" (arXiv
2503.06037), for every game the Markov-game core accepts. Each agent i keeps

  * a policy conditioned on a predicted opponent action,
    pi_i(a^i | s, a_hat^{-i})          (policy_form="conditional", the paper's)
    or a plain pi_i(a^i | s)            (policy_form="marginal");
  * an opponent model rho^i(a^{-i} | s) = prod_j rho^i_j(a^j | s);

and one iteration (Algorithm 1) does:

  1. update the opponent models: "exact" (the others' current marginal
     policies), "empirical" (observed action frequencies with a prior) or
     "variational" (Prop. 5.9, with the opponents' rewards fitted by the
     maximum-entropy objective of eqs. 6-7, or the true rewards with
     oracle_reward=True);
  2. compute every agent's soft action value (Def. 5.1), in units of 1/alpha:
       Q^i(s, a, a_hat) = r^i(s, a, a_hat) / alpha + gamma E_{s'} V^i(s'),
       V^i(s) = E_{a_hat ~ rho^i, a ~ pi_i(.|s, a_hat)}[Q^i - log pi_i],
     exactly by backward induction (`VPGSolver`; a linear solve per agent
     on a stationary game) or from sampled play
     (`SampledVPGSolver`: decentralised soft Q-learning, each agent sees
     states, its own reward and the others' actions only);
  3. take the natural-gradient step of eq. 4 for every agent at once:
       pi_i <- pi_i^(1 - beta) * exp(beta * Q^i) / Z,   beta = `step`,
     (beta = 1 is the soft best response of Prop. 5.2). The marginal form uses
     Q averaged over rho^i.

The played policy is the marginal pi_i(a|s) = sum_a_hat rho^i(a_hat|s)
pi_i(a|s, a_hat); `policy()` returns it as an OpenSpiel policy. All arrays are
[state, own action, predicted joint action of the others] and every update is
vectorised over states and joint actions. The class reads in Algorithm 1's
order: its interface, then steps 1, 2 and 3; `SampledVPGSolver` overrides
only what sampled play changes (what the agents observe, where the soft
values come from, the variational model's soft Q). `BranchAnnealedVPG`
anneals the temperature of the marginal form and, where its residual says
the plain iteration failed, follows the principal branch of logit QRE
(`homotopy`).
"""

import dataclasses

import numpy as np

from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel import logit
from vsg_spiel import parameters
from vsg_spiel import profiles
from vsg_spiel.algorithms import homotopy

OPPONENT_MODELS = ("exact", "empirical", "variational")
POLICY_FORMS = ("conditional", "marginal")
OPPONENT_PRIORS = ("uniform", "empirical", "previous")


def own_first(joint, player, num_players):
  """(..., n, A_1, ..., A_N) -> (..., n, A_player, J_-player): the player's
  action axis first, the others' joint action flattened in player order."""
  axis = joint.ndim - num_players + player
  moved = np.moveaxis(joint, axis, joint.ndim - num_players)
  return moved.reshape(moved.shape[:joint.ndim - num_players + 1] + (-1,))


def joint_distribution(marginals):
  """prod_j marginals[j](a^j|s) as (n, J) in player order."""
  joint = np.ones((marginals[0].shape[0], 1))
  for marginal in marginals:
    joint = (joint[:, :, None] * marginal[:, None, :]).reshape(
        joint.shape[0], -1)
  return joint


def sample_rows(probabilities, rng):
  """One index per row of (n, k) probabilities, by the inverse CDF."""
  cumulative = np.cumsum(probabilities, axis=1)
  draws = rng.random((probabilities.shape[0], 1)) * cumulative[:, -1:]
  return np.minimum((cumulative <= draws).sum(axis=1),
                    probabilities.shape[1] - 1)


class AnnealedHyperparameters:
  """The VPG family's alpha and beta, each a number or a callable of the
  iteration number (an annealing schedule). Subclasses set `mgame`,
  `temperature`, `step` and `_iteration`."""

  def current_temperature(self):
    """alpha of this iteration (checked: > 0 and large enough that the
    game's returns divided by it stay finite)."""
    alpha = (self.temperature(self._iteration) if callable(self.temperature)
             else self.temperature)
    return logit.check_temperature(alpha, self.mgame.return_bound)

  def current_step(self):
    """beta of this iteration, checked to be in (0, 1]."""
    return logit.check_step(self.step(self._iteration) if callable(self.step)
                            else self.step)


class VPGSolver(AnnealedHyperparameters):
  """Variational policy gradient on the tensors of a `MarkovGame`.

  Args:
    game: a pyspiel game (or game string, or `MarkovGame`) the core accepts.
    temperature: alpha > 0, or a callable iteration -> alpha (annealing; see
      `geometric_annealing`); at least the game's largest |return| / 1e300
      (`MarkovGame.return_bound`), so that returns / alpha stay finite.
    step: beta in (0, 1], the eq. 4 step (1 is the soft best response), or
      a callable iteration -> beta (e.g. shrinking with an annealed alpha).
    opponent_model: "exact", "empirical" or "variational".
    policy_form: "conditional" (pi_i(a|s,a_hat), the paper's) or "marginal".
    seed: seeds the play of `SampledVPGSolver`.
    oracle_reward: the variational model uses the opponents' true rewards
      instead of fitted estimates (the ablation).
    opponent_prior: pibar of Prop. 5.9: "uniform", "empirical" (the observed
      action frequencies) or "previous" (the previous model).
    prior_count: pseudo-count of the uniform prior of the empirical model,
      finite and > 0.
    reward_learning_rate: step of the eqs. 6-7 gradient on the reward
      estimates (in units of alpha), finite and > 0.
    initial_profile: the starting policies (a profile of the game's
      MarkovGame; every conditional slice starts at it); uniform by default.
      Zero probabilities are exact (log 0 = -inf, 0 log 0 = 0): with
      step < 1 an action of probability 0 keeps it (eq. 4). The opponent
      models start at the others' starting policies.

  Raises:
    ValueError: naming the parameter and its allowed values, before the
      game is enumerated (the temperature's lower bound right after).
  """

  def __init__(self, game, temperature=1.0, step=1.0, opponent_model="exact",
               policy_form="conditional", seed=None, *, oracle_reward=False,
               opponent_prior="uniform", prior_count=1.0,
               reward_learning_rate=1.0, initial_profile=None):
    if not callable(temperature):
      logit.check_temperature(temperature)
    if not callable(step):
      logit.check_step(step)
    parameters.check_choice("opponent_model", opponent_model, OPPONENT_MODELS)
    parameters.check_choice("policy_form", policy_form, POLICY_FORMS)
    parameters.check_choice("opponent_prior", opponent_prior,
                            OPPONENT_PRIORS)
    if not isinstance(oracle_reward, bool):
      raise ValueError(f"oracle_reward must be True or False; got "
                       f"{oracle_reward!r}")
    self.prior_count = parameters.check_real("prior_count", prior_count, 0.0,
                                             low_open=True)
    self.reward_learning_rate = parameters.check_real(
        "reward_learning_rate", reward_learning_rate, 0.0, low_open=True)
    if seed is not None:
      parameters.check_integer("seed", seed, 0)
    self.mgame = core.markov_game(game)
    if self.mgame.stationary and opponent_model == "variational":
      raise ValueError(
          "opponent_model='variational' runs Prop. 5.9's soft recursion over "
          "a finite horizon; on a stationary game use 'exact' or 'empirical'")
    self.temperature = temperature
    self.step = step
    if not callable(temperature):  # Returns / alpha must stay finite.
      self.current_temperature()
    self.opponent_model = opponent_model
    self.policy_form = policy_form
    self.oracle_reward = oracle_reward
    self.opponent_prior = opponent_prior
    self._rng = np.random.default_rng(seed)
    self._iteration = 0

    mgame = self.mgame
    num_players = self.num_players = mgame.num_players
    self._others = [[j for j in range(num_players) if j != i]
                    for i in range(num_players)]
    self._legal = [mask[:, :, None] for mask in mgame.legal_mask]
    start = (profiles.uniform_profile(mgame) if initial_profile is None else
             profiles.validate_profile(mgame, initial_profile))
    # Agent i's rewards, own action first: (S, A_i, J_-i).
    self._own_rewards = [own_first(mgame.rewards[i], i, num_players)
                         for i in range(num_players)]
    self._set_policies_and_models(start)
    # The empirical action counts.
    self.action_counts = [np.zeros(mask.shape) for mask in mgame.legal_mask]
    self.observations = 0
    # Agent i's estimate of r^j (reward units), joint-action tensors.
    self.reward_estimates = [
        {j: np.zeros(mgame.rewards.shape[1:]) for j in self._others[i]}
        for i in range(num_players)]
    self._refresh_joint_models()

  def _set_policies_and_models(self, start):
    """Conditional (or marginal, width 1) log-policies, every slice at
    `start`, and rho^i_j = start[j] for j != i."""
    mgame = self.mgame
    self.log_policies = []
    for i, mask in enumerate(mgame.legal_mask):
      width = (int(np.prod([mgame.num_actions[j] for j in self._others[i]]))
               if self.policy_form == "conditional" else 1)
      with np.errstate(divide="ignore"):
        log_start = np.where(mask, np.log(start[i]), -np.inf)
      self.log_policies.append(np.repeat(log_start[:, :, None], width, 2))
    self.opponent_models = [{j: start[j].copy() for j in self._others[i]}
                            for i in range(self.num_players)]

  def restart_at(self, profile):
    """Warm start: every policy (each conditional slice) and every opponent
    model restart at `profile` (per player an array (S, A_i) of the game's
    `MarkovGame`), as `initial_profile` does; the iteration count, action
    counts and reward estimates are kept.

    Raises:
      ValueError: `profile` is not a profile of the game.
    """
    self._set_policies_and_models(
        profiles.validate_profile(self.mgame, profile))
    self._refresh_joint_models()

  # --------------------------------------------------------------------------
  # OpenSpiel-style interface.

  @property
  def iteration_count(self):
    return self._iteration

  def iteration(self):
    """One VPG iteration (Algorithm 1): models, soft Q, eq. 4 step."""
    alpha = self.current_temperature()
    self._observe_play(alpha)
    self.update_opponent_models(alpha)                       # step 1
    q_values = self._action_values(alpha)                    # step 2
    for i in range(self.num_players):                        # step 3
      self.log_policies[i] = self._natural_gradient_step(i, q_values[i])
    self._iteration += 1

  def profile(self):
    """pi_i(a|s) = sum_a_hat rho^i(a_hat|s) pi_i(a|s, a_hat), per player."""
    marginals = []
    for i in range(self.num_players):
      policy = np.exp(self.log_policies[i])
      if self.policy_form == "conditional":
        policy = np.einsum("saj,sj->sa", policy, self._joint_models[i])
        # Keep rounding from compounding through the models' products.
        marginals.append(policy / policy.sum(axis=1, keepdims=True))
      else:
        marginals.append(policy[:, :, 0])
    return marginals

  def policy(self):
    """The played (marginal) policies as an OpenSpiel policy."""
    return profiles.to_policy(self.mgame, self.profile())

  def conditional_policies(self):
    """pi_i(a|s, a_hat) as arrays (S, A_i, J_-i) (width 1 if marginal)."""
    return [np.exp(log_policy) for log_policy in self.log_policies]

  def joint_opponent_models(self):
    """rho^i(a_hat^{-i}|s) as arrays (S, J_-i), others in player order."""
    return [model.copy() for model in self._joint_models]

  def deviation_gains(self):
    """True gains of unilateral deviation from the marginal profile."""
    return exploitability.profile_deviation_gains(self.mgame,
                                                  self.profile())

  def nash_conv(self):
    return float(np.sum(self.deviation_gains()))

  # --------------------------------------------------------------------------
  # Convergence: the fixed-point residual of the played profile.

  tolerance = 1e-8
  """`converged` holds when `residual` is at most this (probabilities)."""

  @property
  def residual(self):
    """max |pi_i(a|s) - softmax(Q_i(s, .)/alpha)(a)| of the played profile
    at the current temperature (`homotopy.fixed_point_residual`, soft values
    of Def. 5.1): 0 exactly at the logit QRE that the marginal form with
    exact opponent models converges to. The conditional form and learned
    models have other fixed points, so their residual stays positive."""
    return homotopy.fixed_point_residual(
        self.mgame, self.profile(), self.current_temperature())

  @property
  def converged(self):
    return self.residual <= self.tolerance

  def run_to_tolerance(self, tolerance=1e-8, max_iterations=10_000,
                       adaptive_step=False):
    """Iterates until `residual <= tolerance` or `max_iterations` more
    iterations, and says which.

    Args:
      tolerance: > 0, the residual (probability units) that counts as
        converged; also becomes `self.tolerance`.
      max_iterations: >= 1, the budget of iterations for this call.
      adaptive_step: halve the step (beta) whenever the residual rises from
        one iteration to the next (needs a constant step).

    Returns:
      (converged, iterations done, final residual, "converged" or "budget").
    """
    tolerance = parameters.check_real("tolerance", tolerance, 0.0,
                                      low_open=True)
    max_iterations = parameters.check_integer("max_iterations",
                                              max_iterations, 1)
    if adaptive_step and callable(self.step):
      raise ValueError("adaptive_step needs a constant step, not a schedule")
    self.tolerance = tolerance
    residual = self.residual
    for done in range(max_iterations):
      if residual <= tolerance:
        return True, done, residual, "converged"
      self.iteration()
      previous, residual = residual, self.residual
      if adaptive_step and residual > previous:
        self.step = 0.5 * self.current_step()
    converged = residual <= tolerance
    return (converged, max_iterations, residual,
            "converged" if converged else "budget")

  # --------------------------------------------------------------------------
  # Step 1: opponent models (Algorithm 3, Prop. 5.9, eqs. 6-7).

  def _observe_play(self, alpha):
    """What the agents observe of play before step 1: with exact planning,
    the expected action frequencies (every state counts each player's
    current marginal policy once)."""
    del alpha  # Observing expectations needs no soft values.
    for j, marginal in enumerate(self.profile()):
      self.action_counts[j] += marginal
    self.observations += 1

  def empirical_models(self):
    """Observed action frequencies with a uniform prior of `prior_count`."""
    models = []
    for counts, mask in zip(self.action_counts, self.mgame.legal_mask):
      counts = counts + self.prior_count * mask / mask.sum(1, keepdims=True)
      models.append(counts / counts.sum(axis=1, keepdims=True))
    return models

  def update_opponent_models(self, alpha):
    """Step 1 of Algorithm 1: rho^i_j for every agent i and opponent j."""
    if self.opponent_model == "exact":
      marginals = self.profile()
      for i in range(self.num_players):
        for j in self._others[i]:
          self.opponent_models[i][j] = marginals[j].copy()
    elif self.opponent_model == "empirical":
      empirical = self.empirical_models()
      for i in range(self.num_players):
        for j in self._others[i]:
          self.opponent_models[i][j] = empirical[j]
    else:
      self._variational_models(alpha)
    self._refresh_joint_models()

  def _variational_models(self, alpha):
    """rho_j(a^j|s) ∝ pibar_j(a^j|s) exp(E_{a^-j ~ rho_-j} Q^j_rho(s, a))
    (Prop. 5.9), with agent i's own marginal for itself in rho_-j."""
    empirical = self.empirical_models()
    own_marginals = self.profile()
    for i in range(self.num_players):
      for j in self._others[i]:
        if not self.oracle_reward:
          self._fit_reward_estimate(i, j, empirical[j], own_marginals[i])
        if self.opponent_prior == "uniform":
          prior = profiles.uniform_profile(self.mgame)[j]
        elif self.opponent_prior == "empirical":
          prior = empirical[j]
        else:
          prior = self.opponent_models[i][j]
        reward = (self.mgame.rewards[j] if self.oracle_reward else
                  self.reward_estimates[i][j])
        self.opponent_models[i][j] = self._variational_model(
            i, j, reward, prior, own_marginals[i], alpha)

  def _others_of(self, i, j, own_marginal, states=slice(None)):
    """The policies agent i believes j faces: its own, and rho^i_k."""
    return [own_marginal[states] if k == i else
            (None if k == j else self.opponent_models[i][k][states])
            for k in range(self.num_players)]

  def _variational_model(self, i, j, reward, prior, own_marginal, alpha):
    """Agent i's model of j by the soft backward recursion of Prop. 5.9."""
    mgame = self.mgame
    legal = mgame.legal_mask[j]
    log_prior = np.where(legal, np.log(np.maximum(prior, 1e-300)), 0.0)
    model = np.zeros(prior.shape)
    values = np.zeros(mgame.num_states)
    for layer_index in reversed(range(len(mgame.layers))):
      layer = mgame.layers[layer_index]
      q_joint = (reward[layer] / alpha + mgame.discount *
                 mgame.expected_next(layer_index, values))
      expected_q = core.expect_over_actions(
          q_joint, _fill(self._others_of(i, j, own_marginal, layer), j,
                         legal[layer]), keep=j)
      logits = log_prior[layer] + expected_q
      model[layer] = np.exp(logit.log_softmax(logits, legal[layer], axis=1))
      values[layer] = logit.log_sum_exp(logits, legal[layer], axis=1)
    return model

  def _fit_reward_estimate(self, i, j, observed, own_marginal):
    """One gradient step of KL(P(tau_j) || rho_j(tau_j)) (eqs. 6-7).

    The transition factors of the two trajectory distributions cancel, so
    the objective is E_s KL(observed_j(.|s) || rho_j(.|s)); its gradient in
    rhat_j(s, a)/alpha, holding the continuation fixed, is the data's minus
    the model's expected reward features:
      rho_-j(a^-j|s) (observed_j(a^j|s) - rho_j(a^j|s)).
    """
    others = _fill(self._others_of(i, j, own_marginal), j, None)
    features = np.ones((self.mgame.num_states,) + (1,) * self.num_players)
    for k, policy in enumerate(others):
      shape = [self.mgame.num_states] + [1] * self.num_players
      shape[1 + k] = self.mgame.num_actions[k]
      factor = (observed - self.opponent_models[i][j] if k == j else policy)
      features = features * factor.reshape(shape)
    self.reward_estimates[i][j] += self.reward_learning_rate * (
        self.current_temperature() * features)

  def _refresh_joint_models(self):
    self._joint_models = [
        joint_distribution([self.opponent_models[i][j]
                            for j in self._others[i]])
        for i in range(self.num_players)]

  def _true_joint_models(self):
    marginals = self.profile()
    return [joint_distribution([marginals[j] for j in self._others[i]])
            for i in range(self.num_players)]

  # --------------------------------------------------------------------------
  # Step 2: soft action values (Def. 5.1), exact.

  def _action_values(self, alpha):
    """The Q^i that step 3 uses: exact, by backward induction."""
    return self.soft_q_values(alpha)

  def soft_q_values(self, alpha=None, opponent="model"):
    """Every agent's soft Q^i(s, a, a_hat) in units of 1/alpha (Def. 5.1).

    Args:
      alpha: the temperature (default: the current one).
      opponent: "model" values the others by rho^i (the agent's subjective Q);
        "exact" by their true marginal policies (for Prop. 5.5's error).

    Returns:
      Per player an array (S, A_i, J_-i).
    """
    return self._soft_backward(alpha, opponent)[0]

  def soft_values(self, alpha=None):
    """V^i(s) of Def. 5.1 (units of 1/alpha): array (S, num_players)."""
    return self._soft_backward(alpha, "model")[1]

  def _soft_backward(self, alpha, opponent):
    alpha = self.current_temperature() if alpha is None else alpha
    mgame = self.mgame
    joint_models = (self._joint_models if opponent == "model" else
                    self._true_joint_models())
    if mgame.stationary:
      return self._soft_stationary(alpha, joint_models)
    values = np.zeros((mgame.num_states, self.num_players))
    q_values = [np.zeros(r.shape) for r in self._own_rewards]
    for layer_index in reversed(range(len(mgame.layers))):
      layer = mgame.layers[layer_index]
      continuation = mgame.expected_next(layer_index, values)
      for i in range(self.num_players):
        q_layer = (self._own_rewards[i][layer] / alpha + mgame.discount *
                   own_first(continuation[..., i], i, self.num_players))
        q_values[i][layer] = q_layer
        values[layer, i] = self._soft_value(i, q_layer, layer,
                                            joint_models[i][layer])
    return q_values, values

  def _soft_stationary(self, alpha, joint_models):
    """A stationary game's Def. 5.1, the policies and models fixed: V^i is
    the fixed point of V = c^i + gamma P^i V, one linear solve per agent,
    with c^i(s) = E_{a_hat~rho^i, a~pi_i}[r^i/alpha - log pi_i] and P^i the
    transitions averaged under pi_i and rho^i."""
    mgame = self.mgame
    values = np.zeros((mgame.num_states, self.num_players))
    for i in range(self.num_players):
      policy = np.exp(self.log_policies[i])  # (S, A_i, J_-i or 1)
      weights = policy * joint_models[i][:, None, :]  # (S, A_i, J_-i)
      log_policy = np.where(self._legal[i], self.log_policies[i], 0.0)
      stage = (weights * (self._own_rewards[i] / alpha - log_policy)).sum(
          axis=(1, 2))
      others_shape = [mgame.num_actions[j] for j in self._others[i]]
      joint_weights = np.moveaxis(
          weights.reshape((mgame.num_states, mgame.num_actions[i]) +
                          tuple(others_shape)), 1, 1 + i)
      values[:, i] = exploitability.discounted_values(
          mgame, joint_weights, stage[:, None])[:, 0]
    continuation = mgame.expected_next(0, values)  # the single layer
    q_values = [self._own_rewards[i] / alpha + mgame.discount * own_first(
        continuation[..., i], i, self.num_players)
                for i in range(self.num_players)]
    return q_values, values

  def _soft_value(self, i, q_values, states, joint_model):
    """V^i(s) = E_{a_hat~rho, a~pi}[Q^i - log pi] at `states`."""
    log_policy = self.log_policies[i][states]
    if self.policy_form == "marginal":
      q_values = np.einsum("saj,sj->sa", q_values, joint_model)[:, :, None]
      joint_model = np.ones((len(joint_model), 1))
    per_prediction = logit.soft_expectation(log_policy, q_values, axis=1)
    return (per_prediction * joint_model).sum(axis=1)

  # --------------------------------------------------------------------------
  # Step 3: the natural policy gradient step (eq. 4).

  def _natural_gradient_step(self, i, q_values):
    """pi <- pi^(1-beta) exp(beta Q) / Z, in log space (eq. 4)."""
    if self.policy_form == "marginal":
      q_values = np.einsum("saj,sj->sa", q_values,
                           self._joint_models[i])[:, :, None]
    return logit.mirror_step(self.log_policies[i], q_values, self._legal[i],
                             self.current_step(), axis=1)

  # --------------------------------------------------------------------------
  # What Theorem 4.2 bounds, measured (docs/design.md).

  def elbo_gaps(self):
    """Per agent, under q (the opponents drawn from rho^i and seen by the
    agent): the best response's value minus the policy's value, in reward
    units. In the conditional form the best response may condition on the
    predicted action; in the marginal form it may not.

    Raises:
      ValueError: on a stationary game (computed by backward induction).
    """
    mgame = self.mgame
    if mgame.stationary:
      raise ValueError("elbo_gaps is computed over a finite horizon; the "
                       "game is stationary")
    policy_values = np.zeros((mgame.num_states, self.num_players))
    best_values = np.zeros((mgame.num_states, self.num_players))
    stacked = np.concatenate([policy_values, best_values], axis=1)
    for layer_index in reversed(range(len(mgame.layers))):
      layer = mgame.layers[layer_index]
      continuation = mgame.expected_next(layer_index, stacked)
      for i in range(self.num_players):
        joint_model = self._joint_models[i][layer]
        legal = self._legal[i][layer]
        policy = np.exp(self.log_policies[i][layer])
        own = self._own_rewards[i][layer]
        on_policy = own + mgame.discount * own_first(
            continuation[..., i], i, self.num_players)
        best = own + mgame.discount * own_first(
            continuation[..., self.num_players + i], i, self.num_players)
        if self.policy_form == "marginal":
          on_policy = np.einsum("saj,sj->sa", on_policy, joint_model)[..., None]
          best = np.einsum("saj,sj->sa", best, joint_model)[..., None]
          joint_model = np.ones((len(layer), 1))
        stacked[layer, i] = ((np.where(legal, policy * on_policy, 0.0)
                              .sum(axis=1)) * joint_model).sum(axis=1)
        stacked[layer, self.num_players + i] = (
            np.where(legal, best, -np.inf).max(axis=1) * joint_model).sum(
                axis=1)
    start = mgame.initial_distribution @ stacked
    return start[self.num_players:] - start[:self.num_players]

  def opponent_model_kl(self):
    """max_s KL(rho^i(.|s) || pi_-i(.|s)) per agent (Prop. 5.5's eps_p)."""
    true_models = self._true_joint_models()
    result = []
    for model, truth in zip(self._joint_models, true_models):
      with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(model > 0, model * (np.log(model) - np.log(truth)),
                         0.0)
      result.append(max(0.0, float(np.max(terms.sum(axis=1)))))
    return np.array(result)


class SampledVPGSolver(VPGSolver):
  """VPG from sampled play: decentralised soft Q-learning.

  Each agent sees states, its own reward and the others' actions only. Every
  iteration plays `episodes_per_iteration` episodes on the game's tensors
  (each agent draws a_hat ~ rho^i(.|s), then a^i ~ pi_i(.|s, a_hat)) and
  updates by TD, towards the targets of Def. 5.1, its soft Q estimate (step
  2), its counts of the others' actions (the empirical model of step 1) and,
  for the variational model, its estimate of each opponent's soft Q (the
  normaliser of Prop. 5.9). Step 3 is `VPGSolver`'s.

  Args:
    game, temperature, step, opponent_model, policy_form, seed and the
      keyword arguments: as `VPGSolver`.
    episodes_per_iteration: episodes played per iteration, an integer >= 1.
    q_learning_rate: TD step in (0, 1].
  """

  def __init__(self, game, temperature=1.0, step=1.0, opponent_model="exact",
               policy_form="conditional", seed=None, *,
               episodes_per_iteration=64, q_learning_rate=0.5, **kwargs):
    self.episodes_per_iteration = parameters.check_integer(
        "episodes_per_iteration", episodes_per_iteration, 1)
    self.q_learning_rate = parameters.check_real(
        "q_learning_rate", q_learning_rate, 0.0, 1.0, low_open=True)
    super().__init__(game, temperature, step, opponent_model, policy_form,
                     seed, **kwargs)
    if self.mgame.stationary:
      raise ValueError("sampled play needs episodes that end; the game is "
                       "stationary (use VPGSolver's exact planning)")
    # Soft Q estimates (own-first) and each agent's estimates of the others'.
    self.q_estimates = [np.zeros(r.shape) for r in self._own_rewards]
    self.opponent_q_estimates = [
        {j: np.zeros(self.mgame.rewards.shape[1:]) for j in self._others[i]}
        for i in range(self.num_players)]

  def _observe_play(self, alpha):
    """Plays `episodes_per_iteration` episodes and updates, per agent, the
    soft Q estimate by TD (Def. 5.1), the action counts of the others and,
    for the variational model, its estimate of each opponent's soft Q."""
    transitions = self._sample_play()
    states, joint_actions, next_states = transitions
    mgame = self.mgame
    flat = states * mgame.num_joint_actions + joint_actions
    actions = np.unravel_index(joint_actions, mgame.num_actions)
    for j in range(self.num_players):
      np.add.at(self.action_counts[j], (states, actions[j]), 1.0)
    self.observations += len(states)
    ends = next_states < 0
    safe_next = np.where(ends, 0, next_states)
    all_states = np.arange(mgame.num_states)
    for i in range(self.num_players):
      values = self._soft_value(i, self.q_estimates[i], all_states,
                                self._joint_models[i])
      own_reward = mgame.rewards[i].reshape(-1)[flat]
      targets = own_reward / alpha + mgame.discount * np.where(
          ends, 0.0, values[safe_next])
      own_flat = self._own_flat_index(i, states, actions)
      self._td_update(self.q_estimates[i].reshape(-1), own_flat, targets)
      if self.opponent_model == "variational":
        own_marginal = self.profile()[i]
        for j in self._others[i]:
          self._opponent_td_update(i, j, flat, ends, safe_next, own_marginal,
                                   alpha)

  def _variational_model(self, i, j, reward, prior, own_marginal, alpha):
    """Prop. 5.9 with agent i's TD estimate of j's soft Q."""
    del reward, alpha  # Both entered the estimate through its TD targets.
    legal = self.mgame.legal_mask[j]
    log_prior = np.where(legal, np.log(np.maximum(prior, 1e-300)), 0.0)
    expected_q = core.expect_over_actions(
        self.opponent_q_estimates[i][j],
        _fill(self._others_of(i, j, own_marginal), j, legal), keep=j)
    return np.exp(logit.log_softmax(log_prior + expected_q, legal, axis=1))

  def _action_values(self, alpha):
    """Step 2 from play: the TD estimates `_observe_play` updated."""
    del alpha  # The estimates are already in units of 1/alpha.
    return self.q_estimates

  def _opponent_td_update(self, i, j, flat, ends, safe_next, own_marginal,
                          alpha):
    """TD for agent i's estimate of j's soft Q, whose soft value is
    log E_{pibar_j} exp(E_{a^-j} Q^j) (the normaliser of Prop. 5.9)."""
    legal = self.mgame.legal_mask[j]
    expected_q = core.expect_over_actions(
        self.opponent_q_estimates[i][j],
        _fill(self._others_of(i, j, own_marginal), j, legal), keep=j)
    log_prior = np.log(np.maximum(self.opponent_models[i][j], 1e-300))
    values = logit.log_sum_exp(log_prior + expected_q, legal, axis=1)
    reward = (self.mgame.rewards[j] if self.oracle_reward else
              self.reward_estimates[i][j]).reshape(-1)[flat]
    targets = reward / alpha + self.mgame.discount * np.where(
        ends, 0.0, values[safe_next])
    self._td_update(self.opponent_q_estimates[i][j].reshape(-1), flat,
                    targets)

  def _td_update(self, table, index, targets):
    """table[k] += lr * (mean target at k - table[k]) for sampled k."""
    sums = np.bincount(index, weights=targets, minlength=table.size)
    counts = np.bincount(index, minlength=table.size)
    seen = counts > 0
    table[seen] += self.q_learning_rate * (sums[seen] / counts[seen] -
                                           table[seen])

  def _own_flat_index(self, i, states, actions):
    others_shape = [self.mgame.num_actions[j] for j in self._others[i]]
    others_index = (np.ravel_multi_index(
        [actions[j] for j in self._others[i]], others_shape)
                    if others_shape else np.zeros_like(states))
    width = int(np.prod(others_shape))
    return (states * self.mgame.num_actions[i] + actions[i]) * width + (
        others_index)

  def _sample_play(self):
    """Episodes on the game's tensors, vectorised over episodes: each agent
    draws a_hat ~ rho^i(.|s), then a^i ~ pi_i(.|s, a_hat)."""
    mgame = self.mgame
    episodes = self.episodes_per_iteration
    transitions = mgame.transitions
    states = sample_rows(np.broadcast_to(mgame.initial_distribution,
                                         (episodes, mgame.num_states)),
                         self._rng)
    collected_states, collected_joint, collected_next = [], [], []
    policies = self.conditional_policies()
    while states.size:
      actions = []
      for i in range(self.num_players):
        predicted = sample_rows(self._joint_models[i][states], self._rng)
        width = policies[i].shape[2]
        own = policies[i][states, :, predicted % width]
        actions.append(sample_rows(own, self._rng))
      joint = np.ravel_multi_index(actions, mgame.num_actions)
      rows = states * mgame.num_joint_actions + joint
      next_states = self._sample_next(transitions, rows)
      collected_states.append(states)
      collected_joint.append(joint)
      collected_next.append(next_states)
      states = next_states[next_states >= 0]
    return (np.concatenate(collected_states), np.concatenate(collected_joint),
            np.concatenate(collected_next))

  def _sample_next(self, transitions, rows):
    """Next state per row of P, or -1 where the game ends."""
    starts, ends = transitions.indptr[rows], transitions.indptr[rows + 1]
    draws = self._rng.random(len(rows))
    next_states = np.full(len(rows), -1)
    for position in range(len(rows)):  # rows have few successors
      start, end = starts[position], ends[position]
      if start == end:
        continue
      cumulative = np.cumsum(transitions.data[start:end])
      chosen = np.searchsorted(cumulative, draws[position], side="right")
      if chosen < end - start:
        next_states[position] = transitions.indices[start + chosen]
    return next_states


# A stage of `BranchAnnealedVPG` ends once its step is below this fraction
# of the first (20 halvings): the iteration is then unstable at any step it
# can afford.
_SMALLEST_STEP = 2.0**-20


@dataclasses.dataclass
class AnnealingStage:
  """What one stage of `BranchAnnealedVPG` did."""
  temperature: float
  """alpha of the stage (payoff units)."""
  iterations: int
  """VPG iterations run at this temperature."""
  step: float
  """beta at the end of the stage (halved whenever the residual rose)."""
  residual: float
  """`VPGSolver.residual` of VPG's own iterate after those iterations."""
  converged: bool
  """Whether that residual is at most the stage's tolerance."""
  branch_distance: float | None
  """max |pi - branch point| of VPG's iterate (probabilities); None where
  the stage has no branch point (below an unfinished trace)."""
  restarted: bool
  """Whether VPG was restarted at the branch point (it had not converged
  to it)."""


class BranchAnnealedVPG:
  """VPG annealed to a small temperature, checked against the principal
  branch of logit QRE and following it where it fails; never silent.

  The marginal form with exact opponent models converges, at a fixed alpha
  where its iteration is stable, to a logit QRE (`homotopy`'s eqs. 1-3s).
  Lowering alpha on a fixed schedule fails two ways: the eq. 4 iteration at
  step beta is unstable near interior equilibria at small alpha (it cycles
  on rock-paper-scissors), and it may track a branch that ends at an
  equilibrium it cannot hold. So:

    0. With `initial_temperature`, VPG (`VPGSolver`, eq. 4 unchanged) first
       anneals plainly, one iteration at each alpha_t = initial_temperature
       x decay^t above `final_temperature`, then checks itself: it iterates
       at `final_temperature` until its `residual` is at most `tolerance`
       (done) or `stage_iterations` iterations are spent; only then is the
       branch traced and followed as below, from VPG's iterate. Without
       `initial_temperature` it follows the branch from the start.
    1. Following the branch: the temperatures are those of the branch points
       `homotopy.solve(game, temperature=final_temperature)` visits from
       alpha = infinity, in the branch's order, at least x `decay` apart
       (one stage per point). At each stage VPG iterates from where the
       previous stage left it until its residual is at most
       `stage_tolerance` (`tolerance` at the last stage), or
       `stage_iterations` iterations are spent, or its step has shrunk below
       2^-20 of `step`, halving the step whenever the residual rises (each
       stage starts again at `step`).
    2. The stage's branch point then checks the iterate (their distance is
       recorded) and, unless VPG converged, VPG restarts at the branch
       point (`VPGSolver.restart_at`). VPG may converge to another branch's
       QRE (past a bifurcation, as on coordination games); it then goes on
       from there, since what is sought is an equilibrium, and the branch
       takes over again where VPG's own iteration fails.

  Each stage after the plain annealing is recorded (`stages`). Where the
  trace stops before `final_temperature` (its `message` says why), the
  stages go on below its last point, alpha x `decay` each, checked by the
  residual alone. At the last stage VPG stops iterating once converged;
  `residual` and `converged` are always those of the current iterate at the
  current temperature.

  Args:
    game: a pyspiel game (or game string, or `MarkovGame`) the core accepts.
    final_temperature: alpha > 0 of the last stage (payoff units).
    step: beta in (0, 1], VPG's first step.
    initial_temperature: alpha > final_temperature of the plain annealing
      (payoff units), or None to follow the branch from the start.
    initial_profile: VPG's starting profile (uniform by default).
    tolerance: > 0, the residual (probabilities) that counts as converged
      at the last stage.
    stage_tolerance: >= tolerance, the residual that ends an earlier stage
      (it need only hand the next stage a point near the branch).
    stage_iterations: >= 1, VPG's budget per stage.
    decay: in (0, 1), the temperature factor of the plain annealing, the
      smallest spacing of the branch's stages and the factor per stage
      below an unfinished trace.

  Raises:
    ValueError: naming the parameter and its allowed values, before any
      work.
  """

  def __init__(self, game, final_temperature, step=0.5, *,
               initial_temperature=None, initial_profile=None, tolerance=1e-8,
               stage_tolerance=1e-4, stage_iterations=100, decay=0.8):
    self.final_temperature = logit.check_temperature(
        final_temperature, name="final_temperature")
    if initial_temperature is not None:
      initial_temperature = logit.check_temperature(
          initial_temperature, name="initial_temperature")
      if initial_temperature <= self.final_temperature:
        raise ValueError(f"initial_temperature must be > final_temperature "
                         f"({self.final_temperature!r}); got "
                         f"{initial_temperature!r}")
    self._first_step = logit.check_step(step)
    self.tolerance = parameters.check_real("tolerance", tolerance, 0.0,
                                           low_open=True)
    self.stage_tolerance = parameters.check_real(
        "stage_tolerance", stage_tolerance, self.tolerance)
    self.stage_iterations = parameters.check_integer(
        "stage_iterations", stage_iterations, 1)
    self.decay = parameters.check_real("decay", decay, 0.0, 1.0,
                                       low_open=True, high_open=True)
    self.trace = None
    self.stages = []
    self.solver = VPGSolver(
        game, temperature=initial_temperature or self.final_temperature,
        step=step, opponent_model="exact", policy_form="marginal",
        initial_profile=initial_profile)
    self.mgame = self.solver.mgame
    # Plain annealing: the temperature of the next iteration, or None.
    self._annealing = initial_temperature
    self._points = [(self.final_temperature, None)]
    self._stage = 0
    self._stage_iterations = 0
    if initial_temperature is None:
      self._follow_branch()
    else:
      self._residual = None

  def _follow_branch(self):
    """Traces the branch and makes its points the stages, from stage 0."""
    self.trace = homotopy.solve(self.mgame,
                                temperature=self.final_temperature)
    points = []
    for point in self.trace.branch[:-1]:  # Stages at least x decay apart.
      if np.isfinite(point.temperature) and (
          not points or point.temperature <= self.decay * points[-1][0]):
        points.append((point.temperature, point.profile))
    points.append((self.trace.temperature, self.trace.profile))
    alpha = self.trace.temperature
    while alpha > self.final_temperature:  # Below an unfinished trace.
      alpha = max(self.final_temperature, alpha * self.decay)
      points.append((alpha, None))
    self._points = points
    self._stage = 0
    self._stage_iterations = 0
    self.solver.temperature = points[0][0]
    self.solver.step = self._first_step
    self._residual = self.solver.residual

  @property
  def iteration_count(self):
    return self.solver.iteration_count

  @property
  def temperature(self):
    """alpha of the current iteration (payoff units)."""
    return self.solver.current_temperature()

  @property
  def residual(self):
    """`VPGSolver.residual` of the current iterate at `temperature`."""
    if self._annealing is not None:
      return self.solver.residual
    return self._residual

  @property
  def converged(self):
    """At the last stage with `residual <= tolerance`."""
    return (self._annealing is None and
            self._stage == len(self._points) - 1 and
            self._residual <= self.tolerance)

  def iteration(self):
    """One VPG iteration: of the plain annealing, or at the current stage
    after closing the stages that are done; nothing once converged at the
    last stage."""
    if self._annealing is not None:
      self.solver.iteration()
      self._annealing *= self.decay
      if self._annealing <= self.final_temperature:
        self._annealing = None
        self.solver.temperature = self.final_temperature
        self._residual = self.solver.residual
      else:
        self.solver.temperature = self._annealing
      return
    while not self.converged and self._stage_done():
      self._close_stage()
    if self.converged:
      return
    previous = self._residual
    self.solver.iteration()
    self._stage_iterations += 1
    self._residual = self.solver.residual
    if self._residual > previous:
      self.solver.step = 0.5 * self.solver.current_step()

  def _stage_done(self):
    """Converged or out of budget, with a stage to close: below an
    unfinished trace the last stage has no branch point and VPG goes on."""
    if (self.trace is not None and self._stage == len(self._points) - 1 and
        self._points[-1][1] is None):
      return False
    return (self._residual <= self._stage_tolerance() or
            self._stage_iterations >= self.stage_iterations or
            self.solver.current_step() < self._first_step * _SMALLEST_STEP)

  def _stage_tolerance(self):
    return (self.tolerance if self._stage == len(self._points) - 1 else
            self.stage_tolerance)

  def _close_stage(self):
    """Records the stage, restarts VPG at its branch point unless VPG
    converged to it, and moves to the next stage (if any)."""
    alpha, reference = self._points[self._stage]
    converged = self._residual <= self._stage_tolerance()
    distance = None
    if reference is not None:
      distance = max(float(np.max(np.abs(mine - theirs))) for mine, theirs
                     in zip(self.solver.profile(), reference))
    restarted = reference is not None and not converged
    self.stages.append(AnnealingStage(
        temperature=alpha, iterations=self._stage_iterations,
        step=self.solver.current_step(), residual=self._residual,
        converged=converged, branch_distance=distance, restarted=restarted))
    if self.trace is None:  # The check after plain annealing failed.
      self._follow_branch()
      return
    if restarted:
      self.solver.restart_at(reference)
    if self._stage < len(self._points) - 1:
      self._stage += 1
      self.solver.temperature = self._points[self._stage][0]
      self.solver.step = self._first_step
    self._stage_iterations = 0
    self._residual = self.solver.residual

  def profile(self):
    """The played profile, per player an array (S, A_i)."""
    return self.solver.profile()

  def policy(self):
    """The played profile as an OpenSpiel policy."""
    return self.solver.policy()

  def nash_conv(self):
    return self.solver.nash_conv()


def geometric_annealing(initial, final, decay):
  """alpha_t = max(final, initial * decay^t): a temperature schedule."""
  logit.check_temperature(initial, name="initial")
  logit.check_temperature(final, name="final")
  logit.check_step(decay, name="decay")
  return lambda iteration: max(final, initial * decay**iteration)


def _fill(policies, player, legal):
  """Puts a placeholder (the uniform policy) in `player`'s kept slot."""
  filled = list(policies)
  if legal is None:
    filled[player] = None
  else:
    filled[player] = legal / legal.sum(axis=1, keepdims=True)
  return filled

