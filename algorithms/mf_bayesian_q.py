"""Mean-field Bayesian Q-learning (Zhao & Zhang, arXiv 2503.06037, Alg. 4).

A mean-field game seen as inference: the representative player's optimal
policy is the posterior of a prior policy pibar given "optimality" evidence
exp(r / alpha) at every step, with the mean field L_0..L_T held fixed. One
iteration of Algorithm 4:

  1. backward induction of the soft Q function under the current flow L
     (eq. 11), in reward units:
       Q_t(s, a) = r(s, a, L_t) + E_{s' ~ P(.|s, a, L_t)} V_{t+1}(s'),
       V_t(s)    = sum_a pi_t(a|s) [Q_t(s, a)
                                    - alpha log(pi_t(a|s) / pibar_t(a|s))]
                 = alpha log sum_a pibar_t(a|s) exp(Q_t(s, a) / alpha);
  2. the posterior policy (eq. 12):
       pi_t(a|s) = pibar_t(a|s) exp(Q_t(s, a) / alpha) / Z_t(s),
       Z_t(s)    = sum_b pibar_t(b|s) exp(Q_t(s, b) / alpha);
  3. the new flow L induced by pi, by forward propagation ("from the
     simulator"), and pibar <- pi for the next iteration.

Where the temperature enters: the paper writes eqs. 11-12 for alpha = 1 with
rewards r / alpha; here Q and V stay in reward units and alpha divides Q
inside the exponential, which is the same policy, and V is alpha times the
paper's. alpha = 1 (the default) is the paper's algorithm. Smaller alpha
moves each iterate further from its prior (alpha -> 0: a best response);
larger alpha moves it less.

With the prior equal to the previous iterate, step 2 is a KL-proximal
(mirror-descent-like) update, pi_{k+1} proportional to pi_k exp(Q_k / alpha),
consistent with RelEnt iteration. Unlike OpenSpiel's MunchausenMirrorDescent,
which uses the value of the previous policy, Q_k here is the regularised soft
Q of the new posterior itself (eq. 11 is solved exactly by backward induction).

On OpenSpiel's game trees r(s, a, L_t) is the reward of the decision state s
under the distribution registered at the mean-field node before it, and the
expectation runs over the chance and mean-field nodes after the action; the
engine (vsg_spiel.mfg_engine) does that bookkeeping: its
`kl_regularised_best_response` is steps 1-2, `soft_bellman_step`'s closed
form (`logit.kl_regularised_response`) at each decision layer (one compiled
pass on MFGLib's environments). Policies are
kept as log-probabilities, arrays (num_rows, num_distinct_actions) over the
engine's decision states.
"""


import numpy as np
from open_spiel.python import policy as policy_lib

from vsg_spiel import logit
from vsg_spiel import mfg_engine


def soft_bellman_step(log_prior: np.ndarray, q_values: np.ndarray,
                      legal: np.ndarray,
                      temperature: float) -> tuple[np.ndarray, np.ndarray]:
  """Eq. 12 and the soft value of eq. 11 at a batch of decision states.

  Closed form of  max_pi sum_a pi(a) [Q(a) - alpha log(pi(a) / pibar(a))]:
    pi(a) = pibar(a) exp(Q(a) / alpha) / Z,  value = alpha log Z,
    Z = sum_a pibar(a) exp(Q(a) / alpha),
  normalised in log space after subtracting the largest Q on the prior's
  support (`logit.kl_regularised_response`): finite and summing to 1 for
  every alpha > 0, the prior where Q is tied.

  Args:
    log_prior: (n, num_actions) log pibar, -inf at illegal actions.
    q_values: (n, num_actions) Q(s, a) in reward units.
    legal: (n, num_actions) legal-action mask.
    temperature: alpha > 0.

  Returns:
    (log_posterior, soft_values): (n, num_actions) log pi (-inf at illegal
    actions) and (n,) V(s).
  """
  return logit.kl_regularised_response(log_prior, q_values, legal,
                                       temperature, axis=1)


def soft_backward(engine: mfg_engine.MeanFieldEngine,
                  mean_field: mfg_engine.MeanField, log_prior: np.ndarray,
                  temperature: float, posterior: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Eq. 11 by backward induction under a fixed flow, eq. 12 at every state.

  Args:
    engine: the game's engine.
    mean_field: the flow L (and the rewards under it).
    log_prior: (num_rows, num_actions) log pibar.
    temperature: alpha > 0.
    posterior: None, or a (num_rows, num_actions) array that receives pi.

  Returns:
    (log_posterior, soft_values): log pi for every row (rows the flow's
    structure does not reach keep their prior) and V at every node; V summed
    over the initial states is the optimum of the KL-regularised objective
    E_pi[sum_t r_t - alpha KL(pi(.|s_t) || pibar(.|s_t))].
  """
  return engine.kl_regularised_best_response(mean_field, log_prior,
                                             temperature, posterior)


class MFBayesianQLearning(mfg_engine.EngineSolver):
  """Mean-field Bayesian Q-learning, in the style of OpenSpiel's MirrorDescent.

    solver = MFBayesianQLearning(game, temperature=1.0)
    for _ in range(num_iterations):
      solver.iteration()
    policy = solver.policy()            # an OpenSpiel policy
    distribution = solver.distribution  # an OpenSpiel distribution
    solver.converged                    # residual <= tolerance
  """

  def __init__(self, game, temperature: float = 1.0,
               initial_prior: policy_lib.Policy | None = None,
               engine: mfg_engine.MeanFieldEngine | None = None):
    """Initialises the solver; its first policy is the initial prior.

    Args:
      game: a pyspiel mean-field game (any registered `mfg_*`,
        `python_mfg_*` or `mean_field_lin_quad`, one or more populations).
      temperature: alpha > 0; rewards enter as r / alpha (1 is the paper's).
      initial_prior: an OpenSpiel policy, the prior of the first iteration
        (uniform over legal actions if None).
      engine: a `MeanFieldEngine` of `game` to reuse (built if None).

    Raises:
      ValueError: temperature is not a finite number > 0, initial_prior is
        not an OpenSpiel policy of `game`, the engine was built for another
        game, or game is not a mean-field game.
    """
    self._temperature = logit.check_temperature(temperature)
    if not (initial_prior is None or
            isinstance(initial_prior, policy_lib.Policy)):
      raise ValueError("initial_prior must be an OpenSpiel policy "
                       "(open_spiel.python.policy.Policy) or None; got "
                       f"{type(initial_prior).__name__}")
    super().__init__(game, engine)
    prior_game = getattr(initial_prior, "game", game)
    if str(prior_game) != str(self._engine.game):
      raise ValueError(f"initial_prior must be a policy of the solver's game "
                       f"{self._engine.game}; got one of {prior_game}")
    self._initial_prior = (initial_prior or
                           policy_lib.UniformRandomPolicy(game))
    self._initial_prior_rows = (
        self._engine.uniform_policy if initial_prior is None
        else self._engine.policy_function(initial_prior))
    self._log_policy = np.zeros((0, self._engine.num_actions))
    self._policy = self._log_policy.copy()  # exp(log pi), the same rows
    self._iteration = 0
    self._mean_field = self._engine.mean_field(self._policy_rows)

  def _log_initial_prior(self, rows):
    with np.errstate(divide="ignore"):
      return np.log(self._initial_prior_rows(rows))

  def _policy_rows(self, rows):
    """pi at `rows`; states new to the engine start at the prior."""
    self._log_policy = self._engine.grow_table(self._log_policy,
                                               self._log_initial_prior)
    known = len(self._policy)
    if known < len(self._log_policy):
      self._policy = np.concatenate([self._policy,
                                     np.exp(self._log_policy[known:])])
    return self._policy.take(rows, axis=0)

  def iteration(self):
    """One iteration of Algorithm 4."""
    self._iteration += 1
    # The prior is the previous iterate (the initial prior at first).
    log_prior = self._engine.grow_table(self._log_policy,
                                        self._log_initial_prior)
    # Eqs. 11-12 under the flow L_k of the previous iterate.
    self._policy = np.empty_like(log_prior)
    self._log_policy, _ = soft_backward(self._engine, self._mean_field,
                                        log_prior, self._temperature,
                                        self._policy)
    # The flow L_{k+1} of the new policy, and the rewards under it.
    self._mean_field = self._engine.mean_field(self._policy_rows)

  @property
  def residual(self) -> float:
    """max |pi'(a|s) - pi(a|s)| over the decision rows, pi' the next
    iterate: eq. 12 with the prior pibar = pi and Q of eq. 11 under pi's
    own flow. Probability units, in [0, 1]; 0 exactly at a fixed point of
    Algorithm 4's map, where every action pi plays has the same soft Q at
    every state (a Nash equilibrium if pi plays every legal action, which an
    interior start keeps, though it may reach it only in the limit; a pure
    policy is a fixed point too). The step's size scales with 1/alpha, so at
    a large temperature read it with `nash_conv`."""
    log_policy = self._engine.grow_table(self._log_policy,
                                         self._log_initial_prior)
    log_next, _ = soft_backward(self._engine, self._mean_field, log_policy,
                                self._temperature)
    return float(np.max(np.abs(np.exp(log_next) - np.exp(log_policy)),
                        initial=0.0))

  def policy(self) -> mfg_engine.TablePolicy:
    """The current policy as an OpenSpiel policy (a snapshot; on an
    MFGLibEngine, MFGLib's policy tensor, `engine.table_policy`)."""
    return self._engine.table_policy(self.profile(),
                                     fallback=self._initial_prior)

  def profile(self) -> np.ndarray:
    """pi(a|s): array (num_rows, num_distinct_actions) over the engine's
    decision rows, 0 at illegal actions."""
    return self._policy.copy()

  @property
  def temperature(self) -> float:
    return self._temperature
