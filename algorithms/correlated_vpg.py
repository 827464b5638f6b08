"""Correlated equilibria by variational inference over a public signal (§5.3).

Section 5.3 of Zhao & Zhang, "Variational Stochastic Games": a public signal
w ~ sigma(w) is drawn every step and appended to the state, each agent's
policy is pi_i(a^i | s, w, a_hat^{-i}), and the variational machinery of VPG
(Algorithms 1 and 3) runs unchanged on the augmented Markov game. The
correlation device is

  mu(a | s) = sum_w sigma(w) prod_i pi_i(a^i | s, w),

returned as a per-state joint distribution and in the form
`pyspiel.ce_dist` / `pyspiel.cce_dist` take. With a public signal every
reachable device is a mixture of equilibria of the signal-conditioned games,
so the best correlated equilibrium (which may recommend outcomes that are not
Nash) is out of reach in one-shot games; the eval binary shows that gap.

Signals start apart, so that they can settle on different equilibria: with
"distinct" initialisation, under signal w player i's starting policy leans
towards its legal action (w + i) mod |A_i| (the players are recommended
different actions, as in anti-coordination games); with "shared", towards
action w mod |A_i| (the same recommendation for all, as in coordination
games); "random" draws seeded logit noise. VPG then moves each signal to an
equilibrium of its own. Policies are marginal by default: in the conditional
form, the soft best response to the predicted action has a continuum of
fixed points whose marginals need not be equilibria (docs/design.md), which
would blur the device. sigma is fixed, or learned
(learn_signal_distribution=True) by a mirror step towards the signals whose
soft social value is higher: the
variational posterior q(w) ∝ sigma(w) exp(sum_i V_i(w)) of the latent signal.
"""

import itertools

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from scipy import sparse

from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel import logit
from vsg_spiel import parameters
from vsg_spiel import profiles
from vsg_spiel.algorithms import vpg

INITIALISATIONS = ("distinct", "shared", "random", "uniform")
MAX_DEVICE_POLICIES = 4096


def augment_with_signal(mgame, signal_distribution):
  """The Markov game whose state is (s, w), w ~ sigma drawn every step.

  Augmented state index s * W + w; layers, rewards and legal actions are
  the original's repeated over w; P((s', w') | (s, w), a) =
  P(s' | s, a) sigma(w'). The one-device case of `augment_with_signals`.
  """
  return augment_with_signals(mgame, [signal_distribution])


def augment_with_signals(mgame, signal_distributions):
  """Several signal-augmented copies of the game side by side, one per
  device d with its signal distribution sigma_d (W_d signals).

  The signals of all devices are numbered k = 0 .. K-1 (K = sum_d W_d),
  device after device, and the augmented state index is s * K + k, so each
  layer stays one contiguous block; rewards and legal actions are the
  original's repeated over k; P((s', k') | (s, k), a) = P(s' | s, a)
  sigma_d(k') when k and k' are signals of the same device d, else 0 (a
  play never leaves its device); the initial distribution is
  mu_0(s) sigma_d(k) / D. No state of one device reaches another's, so any
  iteration that updates every state from its own successors runs each
  device's own iteration, all at once.
  """
  sigmas = [np.asarray(sigma, dtype=np.float64)
            for sigma in signal_distributions]
  device = np.repeat(np.arange(len(sigmas)), [len(s) for s in sigmas])
  flat = np.concatenate(sigmas)
  num_signals = len(flat)
  num_states, joint = mgame.num_states, mgame.num_joint_actions
  base = mgame.transitions.tocoo()
  states, joint_actions = np.divmod(base.row, joint)
  # The signal pairs (k, k') of one device, k major.
  signal, next_signal = np.nonzero(device[:, None] == device[None, :])
  rows = ((states[:, None] * num_signals + signal) * joint +
          joint_actions[:, None])
  cols = base.col[:, None] * num_signals + next_signal
  probabilities = base.data[:, None] * flat[next_signal]
  transitions = sparse.csr_matrix(
      (probabilities.ravel(), (rows.ravel(), cols.ravel())),
      shape=(num_states * num_signals * joint, num_states * num_signals))
  return core.MarkovGame(
      rewards=np.repeat(mgame.rewards, num_signals, axis=1),
      transitions=transitions,
      legal_mask=[np.repeat(mask, num_signals, axis=0)
                  for mask in mgame.legal_mask],
      initial_distribution=np.outer(mgame.initial_distribution,
                                    flat / len(sigmas)).ravel(),
      layers=[np.arange(layer[0] * num_signals,
                        (layer[-1] + 1) * num_signals)
              for layer in mgame.layers],
      discount=mgame.discount,
      initial_rewards=mgame.initial_rewards,
      state_keys=[(key, k) for key in mgame.state_keys
                  for k in range(num_signals)])


def _finite_horizon_game(game, name):
  """The game's `MarkovGame`; ValueError if it is stationary."""
  mgame = core.markov_game(game)
  if mgame.stationary:
    raise ValueError(
        f"{name} needs a finite-horizon game (it works by backward "
        "induction over the layers); the game is a stationary discounted "
        "game: use vpg.VPGSolver or homotopy.solve")
  return mgame


def initial_profile(legal_mask, num_signals, initialisation, rng):
  """A device's starting policies on its augmented game (see the module
  docstring): per player an array (S * W, A_i) over the augmented legal
  masks `legal_mask` (state index s * W + w); "random" draws from `rng`."""
  profile = []
  for player, mask in enumerate(legal_mask):
    if initialisation == "uniform":
      logits = np.zeros(mask.shape)
    elif initialisation == "random":
      logits = rng.normal(size=mask.shape)
    else:
      logits = np.zeros(mask.shape)
      signals = np.arange(len(mask)) % num_signals
      offset = player if initialisation == "distinct" else 0
      # The (w + offset)-th legal action of each state.
      ranks = (signals + offset) % mask.sum(axis=1)
      chosen = np.argmax(np.cumsum(mask, axis=1) > ranks[:, None], axis=1)
      logits[np.arange(len(chosen)), chosen] = 1.0
    profile.append(logit.softmax(logits, mask, axis=1))
  return profile


def device_joint_distribution(signal_policies, signal_distribution):
  """mu(a | s) = sum_w sigma(w) prod_i pi_i(a^i|s,w): (S, A_1, ..., A_N),
  from per player pi_i as (S, W, A_i) and sigma (W,)."""
  joint = np.einsum("w,sw->sw", signal_distribution,
                    np.ones(signal_policies[0].shape[:2]))
  for policy in signal_policies:
    joint = joint[..., None] * policy.reshape(
        policy.shape[:2] + (1,) * (joint.ndim - 2) + policy.shape[2:])
  return joint.sum(axis=1)


class CorrelatedVPGSolver:
  """VPG on the signal-augmented game; see the module docstring.

  Args:
    game: a pyspiel game (or string, or `MarkovGame`) the core accepts.
    num_signals: W >= 1.
    signal_distribution: sigma, W probabilities (uniform by default).
    learn_signal_distribution: update sigma towards signals of higher soft
      social value after every iteration (step `signal_step`).
    initialisation: "distinct", "shared", "random" or "uniform".
    temperature, step, opponent_model, policy_form, seed: as `VPGSolver`.

  Raises:
    ValueError: a parameter out of range, named in the message (num_signals
      an integer >= 1, signal_distribution finite probabilities summing to 1,
      signal_step in (0, 1], the choices, and `VPGSolver`'s).
  """

  def __init__(self, game, num_signals=2, signal_distribution=None, *,
               learn_signal_distribution=False, signal_step=0.1,
               initialisation="distinct", temperature=0.05, step=0.1,
               opponent_model="exact", policy_form="marginal", seed=None):
    num_signals = parameters.check_integer("num_signals", num_signals, 1)
    sigma = (np.full(num_signals, 1.0 / num_signals)
             if signal_distribution is None else
             parameters.check_probabilities("signal_distribution",
                                            signal_distribution, num_signals))
    if not isinstance(learn_signal_distribution, bool):
      raise ValueError("learn_signal_distribution must be True or False; got "
                       f"{learn_signal_distribution!r}")
    parameters.check_choice("initialisation", initialisation, INITIALISATIONS)
    signal_step = parameters.check_real("signal_step", signal_step, 0.0, 1.0,
                                        low_open=True)
    self.mgame = _finite_horizon_game(game, type(self).__name__)
    self.num_signals = num_signals
    self.signal_distribution = sigma
    self.learn_signal_distribution = learn_signal_distribution
    self.signal_step = signal_step
    self.augmented = augment_with_signal(self.mgame, sigma)
    rng = np.random.default_rng(seed)
    self.solver = vpg.VPGSolver(
        self.augmented, temperature=temperature, step=step,
        opponent_model=opponent_model, policy_form=policy_form, seed=seed,
        initial_profile=initial_profile(self.augmented.legal_mask,
                                        num_signals, initialisation, rng))

  # --------------------------------------------------------------------------
  # The uniform solver interface.

  @property
  def iteration_count(self):
    return self.solver.iteration_count

  def iteration(self):
    """One VPG iteration on the augmented game (and a sigma step)."""
    self.solver.iteration()
    if self.learn_signal_distribution:
      self._update_signal_distribution()

  # --------------------------------------------------------------------------
  # Convergence: the fixed-point residual of the current iterate.

  tolerance = 1e-8
  """`converged` holds when `residual` is at most this (probabilities)."""

  @property
  def residual(self):
    """How far the iterate is from a fixed point (probabilities, in
    [0, 1]): `VPGSolver.residual` on the signal-augmented game, max |pi_i(a|s,
    w) - softmax_a(Q_i(s, w, .)/alpha)(a)|, 0 exactly at its logit QRE
    (the fixed point of the eq. 4 step with exact models, Theorem 4.2's
    ELBO solution, `homotopy`'s eqs. 1-3s); with a learned sigma, the larger
    of that and max_w |sigma(w) - sigma'(w)|, sigma' the next sigma step
    (`_update_signal_distribution`), 0 exactly when every signal of
    positive probability has the same soft social value. The conditional
    form and learned opponent models have other fixed points, so their
    residual stays positive (as `VPGSolver`'s)."""
    residual = self.solver.residual
    if self.learn_signal_distribution:
      residual = max(residual, float(np.max(np.abs(
          self._next_signal_distribution() - self.signal_distribution))))
    return residual

  @property
  def converged(self):
    return self.residual <= self.tolerance

  def _next_signal_distribution(self):
    """sigma exp(eta sum_i V_i(w)), normalised (see below)."""
    start = np.flatnonzero(self.augmented.initial_distribution)
    weights = (self.mgame.initial_distribution[start // self.num_signals] *
               self.solver.soft_values()[start].sum(axis=1))
    social = np.bincount(start % self.num_signals, weights=weights,
                         minlength=self.num_signals)
    with np.errstate(divide="ignore"):  # A signal of probability 0 stays 0.
      log_sigma = np.log(self.signal_distribution)
    return logit.softmax(log_sigma + self.signal_step * social,
                         log_sigma > -np.inf)

  def _update_signal_distribution(self):
    """sigma <- sigma exp(eta sum_i V_i(w)), normalised, with V_i(w) agent
    i's soft value (Def. 5.1) at the initial states under signal w."""
    self.signal_distribution = self._next_signal_distribution()
    self.augmented = augment_with_signal(self.mgame, self.signal_distribution)
    self.solver.mgame = self.augmented

  def profile(self):
    """pi_i(a^i | s, w) as arrays (S * W, A_i) of `self.augmented` (state
    index s * W + w), marginal over the predicted opponent action."""
    return self.solver.profile()

  def policy(self):
    """The correlation device: [(probability, policy)] as `correlation_device`
    (a correlated profile is a mixture of policies, not one policy)."""
    return self.correlation_device()[0]

  def nash_conv(self):
    """The sum of `augmented_deviation_gains`: 0 exactly at a public-signal
    correlated equilibrium."""
    return float(np.sum(self.augmented_deviation_gains()))

  def signal_policies(self):
    """pi_i(a^i | s, w): per player an array (S, W, A_i) (marginal over the
    predicted opponent action)."""
    return [policy.reshape(self.mgame.num_states, self.num_signals, -1)
            for policy in self.profile()]

  def joint_distribution(self):
    """mu(a | s) = sum_w sigma(w) prod_i pi_i(a^i|s,w): (S, A_1, ..., A_N)."""
    return device_joint_distribution(self.signal_policies(),
                                     self.signal_distribution)

  def augmented_deviation_gains(self):
    """Gains of deviations that may condition on the signal (the augmented
    game's NashConv terms): 0 at a public-signal correlated equilibrium."""
    return self.solver.deviation_gains()

  def player_values(self):
    """Each player's expected return under the device."""
    return self.augmented.start_values(exploitability.policy_values(
        self.augmented, self.solver.profile()))

  def correlation_device(self):
    """[(probability, pyspiel.TabularPolicy)] on the turn-based game, as
    `pyspiel.ce_dist` and `pyspiel.cce_dist` take: one joint policy per
    sequence of signals over the rounds (W^T of them)."""
    mgame = self.mgame
    rounds = _round_of_states(mgame)
    num_rounds = int(rounds.max()) + 1
    if self.num_signals**num_rounds > MAX_DEVICE_POLICIES:
      raise ValueError(
          f"the device has {self.num_signals}^{num_rounds} signal sequences, "
          f"more than {MAX_DEVICE_POLICIES}; use fewer signals or rounds")
    policies = self.signal_policies()
    turn_based = pyspiel.convert_to_turn_based(mgame.game)
    device = []
    for sequence in itertools.product(range(self.num_signals),
                                      repeat=num_rounds):
      probability = float(np.prod(self.signal_distribution[list(sequence)]))
      if probability == 0.0:
        continue
      signals = np.asarray(sequence)[rounds]
      profile = [policy[np.arange(mgame.num_states), signals]
                 for policy in policies]
      markov_policy = profiles.to_policy(mgame, profile)
      tabular = policy_lib.tabular_policy_from_callable(
          turn_based, markov_policy.action_probabilities)
      device.append((probability,
                     policy_lib.python_policy_to_pyspiel_policy(tabular)))
    return device, turn_based

  def ce_dist(self):
    """OpenSpiel's distance to a correlated equilibrium of the device
    (recommendations are actions: the device is determinised first)."""
    device, turn_based = self.correlation_device()
    return pyspiel.ce_dist(turn_based, pyspiel.determinize_corr_dev(device))

  def cce_dist(self):
    """OpenSpiel's distance to a coarse correlated equilibrium."""
    device, turn_based = self.correlation_device()
    return pyspiel.cce_dist(turn_based, device)


class CorrelatedVPGBatch:
  """Several public-signal devices of one game, each exactly as
  `CorrelatedVPGSolver` with a uniform, fixed sigma would run it, in one
  VPG on `augment_with_signals`: the devices share no state, so one
  iteration, vectorised over the signal states of all of them, is one
  iteration of each (a sweep over devices then costs about as many
  iterations as one device, not one per device).

  Args:
    game: a pyspiel game (or string, or `MarkovGame`) the core accepts.
    devices: a non-empty sequence of (num_signals, initialisation, seed),
      each as `CorrelatedVPGSolver`'s arguments of those names.
    temperature, step, opponent_model, policy_form: shared by every device,
      as `CorrelatedVPGSolver`'s.

  Raises:
    ValueError: a parameter out of range, named in the message (devices
      empty, a device's num_signals an integer >= 1, its initialisation one
      of INITIALISATIONS, its seed None or an integer >= 0, and
      `VPGSolver`'s).
  """

  def __init__(self, game, devices, *, temperature=0.05, step=0.1,
               opponent_model="exact", policy_form="marginal"):
    devices = list(devices)
    if not devices:
      raise ValueError("devices must hold at least one (num_signals, "
                       "initialisation, seed); got none")
    for num_signals, initialisation, seed in devices:
      parameters.check_integer("num_signals", num_signals, 1)
      parameters.check_choice("initialisation", initialisation,
                              INITIALISATIONS)
      if seed is not None:
        parameters.check_integer("seed", seed, 0)
    self.mgame = _finite_horizon_game(game, type(self).__name__)
    self.signal_distributions = [np.full(int(num_signals), 1.0 / num_signals)
                                 for num_signals, _, _ in devices]
    self.augmented = augment_with_signals(self.mgame,
                                          self.signal_distributions)
    sizes = [len(sigma) for sigma in self.signal_distributions]
    self._offsets = np.cumsum([0] + sizes)
    # Each device's start, drawn as its own solver draws it, at its signals.
    num_states, total = self.mgame.num_states, self._offsets[-1]
    start = [np.zeros((num_states, total, actions))
             for actions in self.mgame.num_actions]
    for (num_signals, initialisation, seed), first in zip(devices,
                                                          self._offsets):
      own = initial_profile(
          [np.repeat(mask, num_signals, axis=0)
           for mask in self.mgame.legal_mask], num_signals, initialisation,
          np.random.default_rng(seed))
      for whole, part in zip(start, own):
        whole[:, first:first + num_signals] = part.reshape(
            num_states, num_signals, -1)
    self.solver = vpg.VPGSolver(
        self.augmented, temperature=temperature, step=step,
        opponent_model=opponent_model, policy_form=policy_form,
        initial_profile=[policy.reshape(num_states * total, -1)
                         for policy in start])

  @property
  def iteration_count(self):
    return self.solver.iteration_count

  def iteration(self):
    """One VPG iteration of every device."""
    self.solver.iteration()

  tolerance = 1e-8
  """`converged` holds when `residual` is at most this (probabilities)."""

  @property
  def residual(self):
    """The largest of the devices' `CorrelatedVPGSolver.residual`s (the
    devices share no state, so `VPGSolver.residual` on the side-by-side
    game is their maximum)."""
    return self.solver.residual

  @property
  def converged(self):
    """Whether every device is within `tolerance` of its fixed point."""
    return self.residual <= self.tolerance

  def signal_policies(self):
    """Per device, pi_i(a^i | s, w) per player as (S, W_d, A_i) (marginal
    over the predicted opponent action), as
    `CorrelatedVPGSolver.signal_policies`."""
    stacked = [policy.reshape(self.mgame.num_states, self._offsets[-1], -1)
               for policy in self.solver.profile()]
    return [[policy[:, first:last] for policy in stacked]
            for first, last in zip(self._offsets[:-1], self._offsets[1:])]

  def joint_distributions(self):
    """Per device, mu(a | s) as (S, A_1, ..., A_N)
    (`device_joint_distribution`)."""
    return [device_joint_distribution(policies, sigma) for policies, sigma in
            zip(self.signal_policies(), self.signal_distributions)]

  def player_values(self):
    """Per device, each player's expected return under it: (D, N)."""
    values = []
    for policies, sigma in zip(self.signal_policies(),
                               self.signal_distributions):
      augmented = augment_with_signal(self.mgame, sigma)
      profile = [policy.reshape(augmented.num_states, -1)
                 for policy in policies]
      values.append(augmented.start_values(
          exploitability.policy_values(augmented, profile)))
    return np.array(values)


def _round_of_states(mgame):
  """The number of decisions before each state, which must be the same on
  every path (as in a finite-horizon Markov game)."""
  rounds = np.full(mgame.num_states, -1)
  rounds[mgame.initial_distribution > 0] = 0
  joint = mgame.num_joint_actions
  for layer in mgame.layers:
    block = mgame.transitions[layer[0] * joint:(layer[-1] + 1) * joint].tocoo()
    sources = layer[0] + block.row // joint
    candidate = rounds[sources] + 1
    previous = rounds[block.col]
    if np.any((previous >= 0) & (previous != candidate)):
      raise ValueError("states are reached after different numbers of rounds")
    rounds[block.col] = candidate
  return rounds


def normal_form_ce_gaps(joint_distribution, payoffs):
  """Per player, the CE and CCE gaps of a joint distribution mu (A_1..A_N) in
  a normal-form game with payoffs (N, A_1, ..., A_N):

    CE_i  = sum_{a_i} max_{b_i} sum_{a_-i} mu(a_i, a_-i) [u_i(b_i, a_-i) -
            u_i(a_i, a_-i)],
    CCE_i = max(0, max_{b_i} E_mu u_i(b_i, a_-i) - E_mu u_i(a)).
  """
  num_players = payoffs.shape[0]
  ce_gaps, cce_gaps = [], []
  for i in range(num_players):
    mu = np.moveaxis(joint_distribution, i, 0).reshape(
        joint_distribution.shape[i], -1)            # (A_i, A_-i)
    utility = np.moveaxis(payoffs[i], i, 0).reshape(mu.shape)
    # gains[a_i, b_i] = sum_{a_-i} mu(a_i, a_-i) (u(b_i, a_-i) - u(a_i, a_-i))
    gains = mu @ utility.T - np.sum(mu * utility, axis=1, keepdims=True)
    ce_gaps.append(float(np.sum(np.max(gains, axis=1))))
    others = mu.sum(axis=0)
    cce_gaps.append(max(0.0, float(np.max(utility @ others) -
                                   np.sum(mu * utility))))
  return np.array(ce_gaps), np.array(cce_gaps)
