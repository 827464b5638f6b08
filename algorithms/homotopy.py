"""Path following along the principal branch of regularised equilibria.

In the marginal form with exact opponent models, the fixed point of VPG (the
ELBO solution of Theorem 4.2, `docs/design.md`) is a logit quantal response
equilibrium (QRE) at lambda = 1/alpha: at every state s, for every player i,

  pi_i(a|s) = exp(lambda Q_i(s, a)) / sum_b exp(lambda Q_i(s, b)),     (1)

  Q_i(s, a) = E_{a^-i ~ pi_-i(.|s)}[r_i(s, a, a^-i)
                                   + gamma E_{s'|s,a,a^-i} V_i(s')],  (2)

with, for definition="soft" (the paper's soft values, Def. 5.1, in reward
units: the future entropy of the player's own policy is valued at alpha)

  V_i(s) = E_{a ~ pi_i(.|s)}[Q_i(s, a) - alpha log pi_i(a|s)],         (3s)

and for definition="markov_logit" (the classical Markov logit QRE of the
game-theory literature and of sgamesolver: continuation values without the
entropy term)

  V_i(s) = E_{a ~ pi_i(.|s)}[Q_i(s, a)].                               (3m)

In one-shot games the two coincide. `solve` starts at lambda = 0
(alpha = infinity), where the fixed point is unique (the uniform profile for
"markov_logit" and in one-shot games; for "soft" in multi-stage games the
policy that maximises future entropy, reached first by a homotopy that scales
the entropy term of (3s) from 0 to 1), and follows the connected branch of
solutions of (1)-(3) as lambda grows, Gambit's and sgamesolver's "principal
branch".

Units and conventions. lambda is an inverse temperature in 1/payoff units, as
Gambit's `lam` (`pygambit.qre.logit_solve_lambda`: p(a) is proportional to
exp(lam u(a)) with the game's raw payoffs u); alpha = 1/lambda is the paper's
temperature in payoff units. `maxregret` is in payoff units: the largest gain
any player has from a unilateral deviation (a best response at every state,
the core's `profile_deviation_gains`). Gambit's `logit_solve(maxregret=m)`
instead stops at a regret of m x (max payoff - min payoff); pass
m x range here to reproduce it.

Method (Allgower & Georg, "Numerical Continuation Methods", 1990, ch. 2-6).
The unknowns are the log-probabilities y = log pi of every player's legal
actions at every state; the equations are

  H(y, lambda) = y - lambda Q~ + logsumexp(lambda Q~) = 0,

with Q~ = Q evaluated at the unnormalised pi = exp(y) (the equations force
sum pi = 1). Values come from the linear policy evaluation
(I - gamma P_pi) V = c_pi, which holds both for the core's layered
finite-horizon games (P_pi nilpotent) and for stationary discounted games
with cycles. The Jacobian is analytic: the same linear solve applied to the
derivatives of c_pi and P_pi. The branch {H = 0} is followed by arc length
s, so that turning points in lambda are passed: an Euler predictor along the
tangent (the null vector of DH, oriented continuously), a Newton corrector
on the hyperplane orthogonal to the tangent, and a step that grows when the
corrector converges at once and shrinks when it does not. Internally payoffs
are divided by their range so that step sizes are comparable across games.
Where the branch crosses another one (a simple bifurcation: the sign of
det [DH; tangent] changes, as in games with symmetries), the outgoing branch
is chosen by Gambit's rule (its `PathTracer`): the first player's
probabilities at the first state are made to sum to 1 - 1e-7 for a short
arc, which unfolds the crossing so that the trace follows one of the
branches. Where that perturbation keeps the crossing (it preserves a
symmetry of the game, e.g. in symmetric 2 x 2 coordination games, whose
uniform profile stays a solution), the trace creeps towards the singular
point with ever shorter steps; then it steps across the bifurcation point
along its tangent (Allgower & Georg, ch. 8: the sign change of the
determinant is recorded and the branch followed so far is kept), where
Gambit's trace stops.
The temperature stop is the first point of the branch at the
requested lambda; the maxregret stop is the first accepted branch point
whose largest deviation gain is <= maxregret, as Gambit's `logit_solve`.

The solver stores dense Jacobians of size K x (K + 1), K the number of
(player, state, legal action) triples: it is meant for games with up to a few
thousand such triples. A normal-form game (one state, no transitions) is
evaluated directly on its payoff tensors restricted to the legal actions,
H and its whole Jacobian in one pass without per-player loops: with C the
matrix of u_i(a, b; pi_-ij) over pairs of variables (0 within a player),
q = lambda u, u = C pi / (N - 1) and dq/dy = lambda C diag(pi). With two
players C = [[0, R_1], [R_2^T, 0]] is fixed; with three it is one product
of a fixed stacked matrix of the payoff tensors with pi; with more, it is
built by matrix-vector products per pair of players. All per-game tensors
are built before the trace, at the first `solve` (or
`fixed_point_residual`) of a `MarkovGame`, and kept for the most recently
used games. `solve` runs this trace of a normal-form game compiled
(`homotopy_kernel`, numba: the same equations, steps, corrector and stopping
rules, without numpy's per-call overhead, which dominated on games of a few
actions), except with
`Settings.polish_below` > 0; the numpy tracer stays the reference it is
tested against and traces every other game. The first compiled solve in a
process loads the compiled code from numba's disk cache, or compiles it
once (tens of seconds; `benchmarks/qre.py` prints both).
"""

import collections
import collections.abc
import dataclasses
import functools
import itertools
import math
import time

import numpy as np
from scipy import linalg
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel import parameters
from vsg_spiel import profiles
from vsg_spiel.algorithms import homotopy_kernel

_GETRF, _GETRS = linalg.get_lapack_funcs(("getrf", "getrs"),
                                         dtype=np.float64)
DEFINITIONS = ("soft", "markov_logit")
# Transition tensors up to this many entries are held dense.
_DENSE_TRANSITIONS = 4_000_000


@dataclasses.dataclass
class Settings:
  """Step control of the path follower (units: arc length in the internal
  coordinates, log-probabilities and lambda x payoff range)."""
  first_step: float = 0.3
  """Arc length of the first predictor step."""
  max_step_growth: float = 3.0
  """Largest factor by which a step may exceed the previous one."""
  min_step: float = 1e-10
  """The trace fails when the step falls below this."""
  max_distance: float = 0.3
  """Largest first corrector step, as a fraction of max(1, step): a larger
  one means the predictor left the branch's neighbourhood, so the step is
  retried at half the length."""
  target_distance: float = 0.03
  """First corrector step aimed at when the step length is adapted."""
  min_cosine: float = 0.8
  """Smallest cosine between consecutive tangents (guards against jumping
  to another branch)."""
  max_corrector_iterations: int = 8
  """Newton iterations per corrector before the step is retried shorter."""
  corrector_tolerance: float = 1e-6
  """Newton along the branch stops when the residual |H| weighted by the
  probabilities min(1, exp(y)) is below this (and the unweighted |H| below
  this times 1 + lambda x range, the rounding in lambda Q). Log-probability
  errors of actions played with tiny probability are harmless, but those of
  played actions are not: near a turning point or bifurcation at large
  lambda, a point accepted on the unweighted residual alone can sit 0.1 off
  the branch, where the sign of det [DH; tangent] differs from the branch's
  and every step, however short, looks like a crossing."""
  tolerance: float = 1e-13
  """The returned point is polished at fixed lambda until its internal
  residual is below this times (1 + lambda x range) or Newton stagnates."""
  max_steps: int = 20_000
  """Accepted predictor-corrector steps before the trace gives up."""
  max_lambda: float = 1e15
  """The trace gives up past this lambda x payoff range."""
  bifurcation_perturbation: float = 1e-7
  """Where the branch crosses another one (the sign of det [DH; tangent]
  changes), the first player's probabilities at the first state are made to
  sum to 1 - this for twice the step length, Gambit's rule for choosing the
  outgoing branch. Meanwhile the corrector stops at 1e-3 times this at most
  (the unfolding has the scale of the perturbation)."""
  bifurcation_jump_step: float = 1e-7
  """When the steps of the perturbed trace fall below this after a crossing,
  it is retried once from its last point with the tangent recomputed there
  (the unfolded crossing turns sharply), and if the steps fall below this
  again without progress, the perturbation has not unfolded the crossing
  (it keeps a symmetry of the game): the trace then steps across the
  bifurcation point along its tangent and stays on its branch."""
  polish_below: float = 0.0
  """With maxregret and > 0: once a branch point's regret is below this
  times the payoff range (and after each further tenfold decrease), the
  branch's limit is sought by Newton on the Nash equations with the point's
  support (an exact equilibrium in fewer steps; off by default because on
  degenerate games it may pick another point of a continuum of equilibria
  than the branch point Gambit returns)."""
  polish_distance: float = 1e-2
  """The limit found so is accepted only within this distance (max
  probability difference) of the branch point, and with regret <=
  maxregret."""

  def __post_init__(self):
    """Checks every field (ValueError naming `Settings.<field>` and its
    allowed range), so that a bad value fails here, not as a trace that
    never ends or gives up at once."""
    inf = math.inf
    for name, low, high, low_open, high_open in (
        ("first_step", 0.0, inf, True, False),
        ("max_step_growth", 1.0, inf, False, False),
        ("min_step", 0.0, self.first_step, True, False),
        ("max_distance", 0.0, inf, True, False),
        ("target_distance", 0.0, inf, True, False),
        ("min_cosine", 0.0, 1.0, False, True),
        ("corrector_tolerance", 0.0, inf, True, False),
        ("tolerance", 0.0, inf, False, False),
        ("max_lambda", 0.0, inf, True, False),
        ("bifurcation_perturbation", 0.0, 1.0, True, True),
        ("bifurcation_jump_step", 0.0, inf, False, False),
        ("polish_below", 0.0, inf, False, False),
        ("polish_distance", 0.0, 1.0, False, False)):
      setattr(self, name, parameters.check_real(
          f"Settings.{name}", getattr(self, name), low, high,
          low_open=low_open, high_open=high_open))
    for name in ("max_corrector_iterations", "max_steps"):
      setattr(self, name, parameters.check_integer(
          f"Settings.{name}", getattr(self, name), 1))
    # The fields `homotopy_kernel.trace` takes, as its float array (`solve`
    # re-checks, and so refreshes, any settings it is given).
    self.kernel_values = np.array([float(getattr(self, name))
                                   for name in homotopy_kernel.SETTINGS])


# Validated once; the tracer never assigns to its settings.
_DEFAULT_SETTINGS = Settings()


@dataclasses.dataclass
class BranchPoint:
  """A visited point of the branch."""
  temperature: float
  """alpha = 1/lambda in payoff units (inf at the start)."""
  profile: list
  """Per player an array (num_states, num_actions[i])."""
  residual: float
  """Largest |H| of the internal equations at the point (log-probability
  units)."""


@dataclasses.dataclass
class HomotopyResult:
  """What `solve` returns.

  With `temperature`, `profile` is the branch point at that temperature;
  with `maxregret`, it is the Nash endpoint: the branch's limit (found by
  Newton on the Nash equations with the support of the last branch point,
  and accepted only close to it with regret <= maxregret) or else the last
  branch point itself. `temperature` and `residual` are those of the last
  branch point `branch[-1]`: `residual` is `fixed_point_residual` there
  (probability units). `nash_conv` (the sum of the players' deviation
  gains) and `max_regret` (their largest) are recomputed from `profile`
  (payoff units).
  """
  mgame: core.MarkovGame
  """The game's tensors (what `profile` is a profile of)."""
  profile: list
  """Per player an array (num_states, num_actions[i])."""
  temperature: float
  """alpha of the last branch point (payoff units)."""
  residual: float
  """`fixed_point_residual` of the last branch point at `temperature`."""
  nash_conv: float
  """Sum over players of the deviation gains of `profile`."""
  max_regret: float
  """Largest deviation gain of `profile` (Gambit's max regret)."""
  converged: bool
  """Whether the goal (temperature or maxregret) was reached."""
  message: str
  """How the trace ended."""
  definition: str
  """"soft" or "markov_logit"."""
  branch_points: collections.abc.Callable = dataclasses.field(repr=False)
  """Makes `branch` (once, at its first use: most callers need only the
  end point)."""
  steps: int
  """Accepted predictor-corrector steps."""
  newton_iterations: int
  """Evaluations of the equations (each Jacobian counts once)."""
  seconds: float
  """Wall time of `solve`."""

  @functools.cached_property
  def branch(self):
    """The `BranchPoint`s visited, from alpha = inf (a list)."""
    return self.branch_points()

  @property
  def lam(self):
    """lambda = 1/alpha, Gambit's `lam` (1/payoff units)."""
    return 1.0 / self.temperature

  def policy(self):
    """The profile as an OpenSpiel policy (`vsg_spiel.MarkovPolicy`)."""
    return profiles.to_policy(self.mgame, self.profile)


def compile_kernel():
  """Compiles the normal-form kernel (`homotopy_kernel`, numba), or loads it
  from numba's on-disk cache, by tracing a 2x2 game to a temperature and to
  its Nash endpoint; returns the seconds it took.

  A fresh install compiles once (about 35 s of CPU on the machines of the
  README); later processes load the cache (about 1 s). The eval binaries call
  it before their cells, so that no timed cell pays for it and forked workers
  inherit the compiled code.
  """
  import pyspiel  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  game = pyspiel.create_matrix_game([[2.0, 0.0], [0.0, 1.0]],
                                    [[1.0, 0.0], [0.0, 2.0]])
  solve(game, temperature=1.0)
  solve(game, maxregret=1e-8)
  return time.perf_counter() - start


def solve(game, temperature=None, *, maxregret=None, definition="soft",
          settings=None):
  """Follows the principal branch to a temperature or to a Nash equilibrium.

  Args:
    game: anything the Markov-game core accepts (a pyspiel game or game
      string, or a `MarkovGame`, including stationary discounted ones).
    temperature: alpha > 0 (payoff units): return the branch point at
      lambda = 1/alpha, the first one the branch reaches.
    maxregret: > 0 (payoff units): follow the branch towards alpha -> 0 and
      return the first point whose largest deviation gain is <= maxregret.
      Exactly one of `temperature` and `maxregret` is given.
    definition: "soft" (eq. 3s, the paper's Def. 5.1) or "markov_logit"
      (eq. 3m).
    settings: a `Settings` (step control), default `Settings()`.

  Returns:
    A `HomotopyResult`; `converged` is False (with the reason in `message`)
    when the trace stopped before its goal, and then the result holds the
    last point reached. Its `seconds` is the whole call after the game's
    `MarkovGame` is had: building the equations (the payoff tensors of a
    normal-form game; only at the first solve of a `MarkovGame`, they are
    kept for the most recently used ones), the trace, the landing and the
    certificate (`residual`, `nash_conv`); `benchmarks/qre.py` times the
    same.

  Raises:
    ValueError: bad arguments (before any work), or a game the core rejects.
  """
  if (temperature is None) == (maxregret is None):
    raise ValueError("give exactly one of temperature (alpha > 0) and "
                     "maxregret (> 0)")
  if temperature is not None:
    temperature = _check_positive("temperature", temperature)
  if maxregret is not None:
    maxregret = _check_positive("maxregret", maxregret)
  if definition not in DEFINITIONS:
    raise ValueError(f"unknown definition {definition!r}; choose one of "
                     f"{DEFINITIONS}")
  if settings is None:
    settings = _DEFAULT_SETTINGS
  elif isinstance(settings, Settings):
    # Re-checked: a field may have been assigned after construction.
    settings = dataclasses.replace(settings)
  else:
    raise ValueError(f"settings must be a homotopy.Settings; got "
                     f"{type(settings).__name__}")
  mgame = core.markov_game(game)
  start_time = time.perf_counter()
  # The equations depend on the game only: built at the first solve of a
  # `MarkovGame` and kept for the most recently used ones.
  equations = _equations(mgame, definition)
  target = None if temperature is None else equations.scale / temperature
  if equations.one_shot and not settings.polish_below:
    tracer = _KernelTrace(equations, settings)
  else:
    tracer = _Tracer(equations, settings)
  x, lam, converged, message = tracer.run(target, maxregret)
  profile = equations.profile(x)
  alpha = equations.scale / lam if lam > 0 else math.inf
  if tracer.endpoint is not None:  # `_Tracer` only
    residual = _residual(equations, profile, alpha)
    profile = tracer.endpoint
    gains = _deviation_gains(equations, profile)
  else:
    residual, gains = tracer.certificate(x, lam)
  return HomotopyResult(
      mgame=mgame, profile=profile, temperature=alpha, residual=residual,
      nash_conv=float(np.sum(gains)), max_regret=float(np.max(gains)),
      converged=converged, message=message, definition=definition,
      branch_points=tracer.branch_points, steps=tracer.steps,
      newton_iterations=tracer.newton_iterations,
      seconds=time.perf_counter() - start_time)


def fixed_point_residual(game, profile, temperature, definition="soft"):
  """max |pi_i(a|s) - softmax_a(Q_i(s, .)/alpha)| over players, states and
  legal actions: how far `profile` is from solving eqs. (1)-(3).

  Args:
    game: anything the core accepts, or a `MarkovGame`.
    profile: per player an array (num_states, num_actions[i]).
    temperature: alpha > 0 (payoff units).
    definition: "soft" or "markov_logit".

  Returns:
    A float in [0, 1] (probability units); 0 exactly at a fixed point.
  """
  temperature = _check_positive("temperature", temperature)
  if definition not in DEFINITIONS:
    raise ValueError(f"unknown definition {definition!r}; choose one of "
                     f"{DEFINITIONS}")
  mgame = core.markov_game(game)
  profile = profiles.validate_profile(mgame, profile)
  return _residual(_equations(mgame, definition), profile, temperature)


# The equations of the most recently used games, built once: they depend on
# the game and definition only (VPG asks for its residual every iteration).
_CACHE_SIZE = 4
_cache = collections.OrderedDict()


def _equations(mgame, definition):
  """The `_Equations` of a `MarkovGame` and definition, cached under the
  game's identity (the entry holds a reference, so the identity is not
  reused while cached)."""
  key = id(mgame), definition
  entry = _cache.get(key)
  if entry is None or entry[0] is not mgame:
    entry = mgame, _Equations(mgame, definition)
    _cache[key] = entry
    if len(_cache) > _CACHE_SIZE:
      _cache.popitem(last=False)
  _cache.move_to_end(key)
  return entry[1]


def _residual(equations, profile, temperature):
  """`fixed_point_residual` of a validated profile."""
  with np.errstate(divide="ignore"):
    x = np.log(equations.flat(profile))
  q_values = equations.evaluate(x, equations.scale / temperature,
                                1.0, jacobian=False)[1]
  return float(np.max(np.abs(np.exp(x) - np.exp(equations.log_softmax(
      q_values)))))


def _check_positive(name, value):
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a finite number > 0; got "
                     f"{value!r}") from None
  if not np.isfinite(value) or value <= 0:
    raise ValueError(f"{name} must be a finite number > 0; got {value}")
  return value


def _deviation_gains(equations, profile):
  """Per player, the gain of a unilateral best response (payoff units)."""
  mgame = equations.mgame
  if equations.dynamic:
    return exploitability.profile_deviation_gains(mgame, profile)
  if equations.one_shot:
    return equations.one_shot_gains(equations.flat(profile))
  gains = []
  for i in range(mgame.num_players):
    values = _expect(mgame.rewards[i], profile, (i,))
    best = np.where(mgame.legal_mask[i], values, -np.inf).max(axis=1)
    gains.append(mgame.initial_distribution @ (
        best - (values * profile[i]).sum(axis=1)))
  return np.array(gains)


def _expect(tensor, pis, keep=()):
  """Expectation over the actions of the players not in `keep`.

  Args:
    tensor: (..., S, A_1, ..., A_N) joint-action values.
    pis: N arrays (S, A_j).
    keep: players whose action axes stay, in their original order.

  Returns:
    (..., S, A_k for k in keep). Pairwise products, no einsum path search
    (that costs more than the arithmetic on the games solved here).
  """
  num_players = len(pis)
  for k in reversed(range(num_players)):
    if k in keep:
      continue
    # Left: the axes of players 0..k, then those of kept players after k.
    trailing = sum(1 for j in keep if j > k)
    shape = ((pis[k].shape[0],) + (1,) * k + (pis[k].shape[1],) +
             (1,) * trailing)
    tensor = (tensor * pis[k].reshape(shape)).sum(axis=-(trailing + 1))
  return tensor


def _cross(pair, parts):
  """u_i(a_i, a_j; pi_-ij) of a one-state game with N >= 3 players,
  (A_i, A_j) over legal actions, for `pair` of
  `_Equations._one_shot_pairs` and the players' policies `parts`."""
  _, _, tensor, rest, shape = pair
  tensor = tensor @ parts[rest[0]]
  for k in rest[1:]:
    tensor = tensor.reshape(-1, len(parts[k])) @ parts[k]
  return tensor.reshape(shape)


class _Equations:
  """H(y, lambda, mu) and its Jacobian for one game and definition.

  Internal units: rewards divided by `scale` (the payoff range), lambda
  multiplied by it. mu scales the entropy term of (3s) (1 for "soft" once
  the start point is found; 0 for "markov_logit").
  """

  def __init__(self, mgame, definition):
    self.mgame = mgame
    self.soft = definition == "soft"
    rewards = mgame.rewards
    spread = float(rewards.max() - rewards.min())
    self.scale = spread if spread > 0 else 1.0
    self.rewards = rewards / self.scale
    self.num_players = num_players = mgame.num_players
    self.num_states = num_states = mgame.num_states
    self.num_actions = mgame.num_actions
    self.gamma = mgame.discount
    self.dynamic = mgame.transitions.nnz > 0  # else every play is one step
    self.legal = mgame.legal_mask
    # Variable k <-> (player, state, action), row-major per player: per
    # player the positions of the legal entries in the raveled (S, A_i)
    # table, and the player's slice of the flat vector.
    self.positions = [mask.ravel().nonzero()[0] for mask in self.legal]
    counts = [len(positions) for positions in self.positions]
    bounds = list(itertools.accumulate(counts, initial=0))
    self.slices = [slice(bounds[i], bounds[i + 1])
                   for i in range(num_players)]
    self.size = size = bounds[-1]
    self.player_of = np.repeat(np.arange(num_players), counts)
    self.state_of = np.concatenate([
        positions // n for positions, n in zip(self.positions,
                                               self.num_actions)])
    self.group = self.player_of * num_states + self.state_of
    self.num_groups = num_players * num_states
    # Every (player, state) has a legal action and its variables are
    # contiguous, so groups are segments of the flat vector.
    starts = np.ones(size, dtype=bool)
    np.not_equal(self.group[1:], self.group[:-1], out=starts[1:])
    self.group_starts = starts.nonzero()[0]
    self.group_starts_with_end = np.append(self.group_starts, size)
    # Profiles: the players' (S, A_i) tables are views of one buffer.
    table_bounds = list(itertools.accumulate(
        (mask.size for mask in self.legal), initial=0))
    self._buffer_positions = np.concatenate([
        positions + offset for positions, offset in
        zip(self.positions, table_bounds)])
    self._table_bounds = table_bounds
    self._zeros = np.zeros(self.size)
    # A one-shot game with one state (a normal-form game) of two or more
    # players is evaluated directly on its payoff tensors restricted to the
    # legal actions (one player takes the general path, as an MDP does).
    self.one_shot = (not self.dynamic and num_states == 1
                     and self.num_players >= 2)
    if self.one_shot:
      tensors = self.rewards[:, 0]
      for k, positions in enumerate(self.positions):
        if len(positions) < self.num_actions[k]:  # drop illegal actions
          tensors = tensors.take(positions, axis=k + 1)
      self._tensors = list(tensors)
      # The products of the numpy evaluation, built at its first use
      # (`_one_shot_products`; the compiled trace does not use them).
      self._player_rows = None
      self._profile_payoffs = None  # built at the first compiled trace
      return
    self.transitions = sparse.csr_matrix(mgame.transitions)
    self.index = []  # per player (S, A_i): the variable k, or -1
    for mask, part in zip(self.legal, self.slices):
      table = np.full(mask.shape, -1, dtype=np.int64)
      table[mask] = np.arange(part.start, part.stop)
      self.index.append(table)
    # Cross terms dQ_i(s, a)/dy_j(s, b), i != j: scatter positions.
    self.pairs = []
    for i in range(num_players):
      for j in range(num_players):
        if i == j:
          continue
        both = self.legal[i][:, :, None] & self.legal[j][:, None, :]
        s, a, b = np.nonzero(both)
        self.pairs.append((i, j, self.index[i][s, a], self.index[j][s, b],
                           np.ravel_multi_index((s, a, b), both.shape)))
    if self.dynamic:
      joint = mgame.num_joint_actions
      self._joint_rows = np.repeat(np.arange(num_states), joint)
      self._joint_cols = np.arange(num_states * joint)
      if num_states * joint * num_states <= _DENSE_TRANSITIONS:
        # Small games: dense products and LU are faster than sparse ones.
        self.transitions = self.transitions.toarray()

  # ------------------------------------------------------------------------

  def split(self, x, fill=-np.inf):
    """Flat values -> per player (S, A_i) tables, `fill` off the legal set
    (views of one buffer)."""
    buffer = np.full(self._table_bounds[-1], fill)
    buffer[self._buffer_positions] = x
    bounds = self._table_bounds
    return [buffer[bounds[i]:bounds[i + 1]].reshape(mask.shape)
            for i, mask in enumerate(self.legal)]

  def flat(self, tables):
    return np.concatenate([table.ravel()[positions] for table, positions in
                           zip(tables, self.positions)])

  def probabilities(self, x):
    """Flat normalised probabilities of the point y (softmax per group),
    of each row if y is (n, K)."""
    starts, group = self.group_starts, self.group
    shifted = np.exp(x - np.maximum.reduceat(x, starts, axis=-1)[..., group])
    return shifted / np.add.reduceat(shifted, starts, axis=-1)[..., group]

  def split_rows(self, rows):
    """(n, K) flat values -> per player (n, S, A_i), 0 off the legal set."""
    buffer = np.zeros((len(rows), self._table_bounds[-1]))
    buffer[:, self._buffer_positions] = rows
    bounds = self._table_bounds
    return [buffer[:, bounds[i]:bounds[i + 1]].reshape((-1,) + mask.shape)
            for i, mask in enumerate(self.legal)]

  def profile(self, x):
    """Normalised per-player probabilities of the point y."""
    return self.split(self.probabilities(x), 0.0)

  def group_sum(self, weights, matrix):
    """sum over each (player, state) group of weights[k] * matrix[k, ...]."""
    return np.add.reduceat(
        weights.reshape((-1,) + (1,) * (matrix.ndim - 1)) * matrix,
        self.group_starts, axis=0)

  def log_softmax(self, q):
    """Flat log softmax of flat q within each (player, state) group."""
    shifted = q - np.maximum.reduceat(q, self.group_starts)[self.group]
    sums = np.add.reduceat(np.exp(shifted), self.group_starts)
    return shifted - np.log(sums)[self.group]

  def evaluate(self, x, lam, mu, jacobian=True, parameter="lambda"):
    """H and, with `jacobian`, its Jacobian in (y, p), p = lambda or mu as
    `parameter` says.

    Returns (H, q) or (H, q, augmented), q = lambda Q~ (flat) and
    `augmented` (K + 1, K + 1): rows [dH/dy, dH/dp] and a last row of zeros
    that the caller fills (the tangent of the augmented system).
    """
    if self.one_shot:
      return self._one_shot_evaluate(x, lam, jacobian)
    q = self.q_values(x, lam, mu, jacobian)
    if not jacobian:
      return x - self.log_softmax(q), q
    q, dq, dq_dlam, dq_dmu = q
    log_sigma = self.log_softmax(q)
    size = self.size
    augmented = np.empty((size + 1, size + 1))
    block = augmented[:size]
    block[:, :size] = dq
    block[:, size] = dq_dlam if parameter == "lambda" else dq_dmu
    # dH = I - (I - 1 sigma^T) d(q) per group.
    block -= self.group_sum(np.exp(log_sigma), block)[self.group]
    np.negative(block, out=block)
    augmented.ravel()[:size * (size + 1):size + 2] += 1.0
    augmented[size] = 0.0
    return x - log_sigma, q, augmented

  def q_values(self, x, lam, mu, jacobian=True):
    """q = lambda Q~ at pi = exp(y) (flat), and with `jacobian` its total
    derivatives dq/dy (K, K), dq/dlambda (K) and dq/dmu (K)."""
    if self.one_shot:
      return self._one_shot_q(x, lam, jacobian)
    num_players = self.num_players
    logs = self.split(x)
    pis = [np.exp(log) for log in logs]
    entropy_weight = mu if self.soft else 0.0
    if self.dynamic:
      # pi log pi, 0 off the legal set (log = -inf there): the logs are
      # zeroed before the product, which is never 0 x -inf.
      own_terms = [pi * np.where(pi > 0, log, 0.0)
                   for pi, log in zip(pis, logs)]
      factor, values = self._values(pis, own_terms, lam, entropy_weight)
      continuation = (self.transitions @ values).reshape(
          (self.num_states,) + self.num_actions + (num_players,))
      joint_q = lam * self.rewards + self.gamma * np.moveaxis(
          continuation, -1, 0)
      q = self.flat([_expect(joint_q[i], pis, (i,))
                     for i in range(num_players)])
      if jacobian:
        reward_q = self.flat([_expect(self.rewards[i], pis, (i,))
                              for i in range(num_players)])
    else:
      # One-shot: q = lambda x the expected rewards.
      joint_q = lam * self.rewards
      reward_q = self.flat([_expect(self.rewards[i], pis, (i,))
                            for i in range(num_players)])
      q = lam * reward_q
    if not jacobian:
      return q
    size = self.size
    # Partial derivatives of q at fixed continuation values.
    dq = np.zeros((size, size))
    for i, j, rows, cols, positions in self.pairs:
      kept = _expect(joint_q[i], pis, (min(i, j), max(i, j)))
      if i > j:
        kept = np.swapaxes(kept, -1, -2)
      dq[rows, cols] = (kept * pis[j][:, None, :]).reshape(-1)[positions]
    dq_dlam = reward_q
    dq_dmu = np.zeros(size)
    if self.dynamic:
      pi_flat = self.flat(pis)
      y_flat = self.flat([np.where(pi > 0, log, 0.0) for pi, log in
                          zip(pis, logs)])
      # (I - gamma P_pi) dV = dc + Pi dq, columns: y (K), lambda, mu.
      rhs = np.zeros((self.num_groups, size + 2))
      rhs[self.group, np.arange(size)] = pi_flat * (
          q - entropy_weight * (y_flat + 1.0))
      rhs[:, :size] += self.group_sum(pi_flat, dq)
      rhs[:, size] = self.group_sum(pi_flat, reward_q)
      if self.soft:
        rhs[:, size + 1] = -self.group_sum(pi_flat, y_flat)
      rhs = rhs.reshape(num_players, self.num_states, size + 2)
      dvalues = factor(np.moveaxis(rhs, 0, 1).reshape(self.num_states, -1))
      dcontinuation = (self.transitions @ dvalues).reshape(
          (self.num_states,) + self.num_actions + (num_players, size + 2))
      total = []
      for i in range(num_players):
        block = np.moveaxis(dcontinuation[..., i, :], -1, 0)
        kept = _expect(block, pis, (i,))  # (K+2, S, A_i)
        total.append(np.moveaxis(kept, 0, -1)[self.legal[i]])
      total = self.gamma * np.concatenate(total)
      dq = dq + total[:, :size]
      dq_dlam = dq_dlam + total[:, size]
      dq_dmu = total[:, size + 1]
    return q, dq, dq_dlam, dq_dmu

  def _one_shot_products(self):
    """Builds, once, the fixed products of the numpy evaluation of a
    one-shot game with one state (`_one_shot_evaluate`)."""
    if self._player_rows is not None:
      return
    num_players, size = self.num_players, self.size
    counts = [len(positions) for positions in self.positions]
    # Row i: 1 on player i's variables (the groups are the players).
    self._player_rows = (self.player_of == np.arange(num_players)[:, None]
                         ).astype(np.float64)
    # The first K diagonal entries of a raveled (K + 1, K + 1) matrix.
    self._diagonal = np.arange(size) * (size + 2)
    self._payoff_matrix = self._stacked = None
    if num_players == 2:
      # q = lambda M pi with M = [[0, R_1], [R_2^T, 0]].
      matrix = np.zeros((size, size))
      matrix[self.slices[0], self.slices[1]] = self._tensors[0]
      matrix[self.slices[1], self.slices[0]] = self._tensors[1].T
      self._payoff_matrix = matrix
      return
    # Per ordered pair (i, j): R_i with axes (i, j, the others in order)
    # as a matrix over the last axis, and the others from the last: its
    # contraction by matrix-vector products is u_i(a_i, a_j; pi_-ij).
    self._one_shot_pairs = []
    for i, tensor in enumerate(self._tensors):
      for j in range(num_players):
        if j != i:
          rest = [k for k in range(num_players) if k not in (i, j)]
          moved = np.ascontiguousarray(np.moveaxis(tensor, (i, j), (0, 1)))
          self._one_shot_pairs.append((
              i, j, moved.reshape(-1, counts[rest[-1]]), rest[::-1],
              (counts[i], counts[j])))
    # The pair of each player i with the first other player.
    self._first_pairs = [
        next(pair for pair in self._one_shot_pairs if pair[0] == i)
        for i in range(num_players)]
    if num_players == 3:
      # C of `_one_shot_evaluate` by one product: the rows of `stacked`
      # are the pairs' (a_i, a_j) (then a zero row), its columns the
      # third player's variables, and C = (stacked @ pi)[index].
      rows = sum(counts[i] * counts[j] for i, j, *_ in self._one_shot_pairs)
      stacked = np.zeros((rows + 1, size))
      index = np.full((size, size), rows)
      row = 0
      for i, j, matrix, rest, shape in self._one_shot_pairs:
        block = slice(row, row + matrix.shape[0])
        stacked[block, self.slices[rest[0]]] = matrix
        index[self.slices[i], self.slices[j]] = np.arange(
            block.start, block.stop).reshape(shape)
        row = block.stop
      self._stacked, self._stacked_index = stacked, index

  def _one_shot_evaluate(self, x, lam, jacobian):
    """`evaluate` for a one-shot game with one state (parameter lambda):
    with u = u(pi) (K) and C (K, K) the payoffs of action pairs,
    C[(i, a), (j, b)] = u_i(a, b; pi_-ij) (0 for i = j), q = lambda u,
    dq/dy = lambda C diag(pi) and dq/dlambda = u."""
    self._one_shot_products()
    starts = self.group_starts
    group = self.group
    pi = np.exp(x)
    if jacobian:
      crosses = self._one_shot_crosses(pi)
      rewards = crosses @ pi
      if self.num_players > 2:  # every block row repeats u_i N - 1 times
        rewards /= self.num_players - 1
    else:
      rewards = self.one_shot_rewards(pi)
    q = lam * rewards
    shifted = q - np.maximum.reduceat(q, starts)[group]
    exps = np.exp(shifted)
    sums = np.add.reduceat(exps, starts)
    h = x - shifted + np.log(sums)[group]
    if not jacobian:
      return h, q
    size = self.size
    derivatives = np.empty((size, size + 1))  # [dq/dy, dq/dlambda]
    np.multiply(crosses, lam * pi, out=derivatives[:, :size])
    derivatives[:, size] = rewards
    # dH = I - (I - 1 sigma^T per group) d(q): the sigma-weighted sum of
    # each player's rows, one product for all players.
    augmented = np.zeros((size + 1, size + 1))
    np.subtract((self._player_rows * (exps / sums[group]) @ derivatives)[
        group], derivatives, out=augmented[:size])
    augmented.ravel()[self._diagonal] += 1.0
    return h, q, augmented

  def _one_shot_crosses(self, pi):
    """C (K, K) of `_one_shot_evaluate` at the flat policies pi."""
    self._one_shot_products()
    if self._payoff_matrix is not None:
      return self._payoff_matrix
    if self._stacked is not None:
      return (self._stacked @ pi)[self._stacked_index]
    parts = [pi[part] for part in self.slices]
    slices = self.slices
    crosses = np.zeros((self.size, self.size))
    for pair in self._one_shot_pairs:
      crosses[slices[pair[0]], slices[pair[1]]] = _cross(pair, parts)
    return crosses

  def profile_payoffs(self):
    """A one-shot game with one state as (payoffs (N, P), actions (P, N)):
    the scaled payoffs of its P pure profiles over legal actions and the
    variable of each player's action in each (`homotopy_kernel`)."""
    if self._profile_payoffs is None:
      counts = [len(positions) for positions in self.positions]
      payoffs = np.stack([tensor.ravel() for tensor in self._tensors])
      actions = (np.indices(counts).reshape(self.num_players, -1).T +
                 self.group_starts)
      self._profile_payoffs = payoffs, np.ascontiguousarray(actions)
    return self._profile_payoffs

  def one_shot_gains(self, pi):
    """Per player the deviation gain (payoff units) at the flat normalised
    probabilities `pi` of a one-shot game with one state."""
    values = self.one_shot_rewards(pi)
    starts = self.group_starts
    return (self.mgame.initial_distribution[0] * self.scale) * (
        np.maximum.reduceat(values, starts) -
        np.add.reduceat(values * pi, starts))

  def one_shot_rewards(self, pi):
    """Expected (scaled) reward of each player's legal actions at the flat
    probabilities `pi` of a one-shot game with one state (flat, K)."""
    self._one_shot_products()
    if self._payoff_matrix is not None:
      return self._payoff_matrix @ pi
    if self._stacked is not None:
      return (self._one_shot_crosses(pi) @ pi) * 0.5
    parts = [pi[part] for part in self.slices]
    return np.concatenate([_cross(pair, parts) @ parts[pair[1]]
                           for pair in self._first_pairs])

  def _one_shot_q(self, x, lam, jacobian):
    """`q_values` of a one-shot game with one state: q = lambda u(pi),
    dq_i(a)/dy_j(b) = lambda u_i(a, b; pi_-ij) pi_j(b) for i != j."""
    pi = np.exp(x)
    if not jacobian:
      return lam * self.one_shot_rewards(pi)
    crosses = self._one_shot_crosses(pi)
    # Every block row i of crosses @ pi is u_i(pi_-i), N - 1 times.
    reward_q = (crosses @ pi) / (self.num_players - 1)
    return lam * reward_q, (lam * crosses) * pi, reward_q, self._zeros

  def nash_endpoint(self, x, support_threshold=1e-6, max_iterations=30):
    """Newton on the Nash equations with the support of the point y.

    On the support of each (player, state), Q_i(s, a) (eq. 3m: the limit of
    both definitions as alpha -> 0) is the same for every action and the
    probabilities sum to 1; elsewhere they are 0. Unknowns are the
    log-probabilities on the support, so a wrong support shows as a
    probability running to 0 (failure). Returns flat y (-inf off the
    support), the best point reached (the caller checks its regret), or
    None.
    """
    y = self.log_softmax(x)
    support = np.exp(y) >= support_threshold
    columns = np.flatnonzero(support)
    groups = self.group[columns]
    # The first support action of each group is its reference.
    first = np.ones(len(columns), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]
    reference = columns[first][np.cumsum(first) - 1]
    rows = ~first
    full = np.full(self.size, -np.inf)

    def residuals(log_support, jacobian=True):
      full[columns] = log_support
      if jacobian:
        q, dq, _, _ = self.q_values(full, 1.0, 0.0)
      else:
        q = self.q_values(full, 1.0, 0.0, jacobian=False)
      pi = np.exp(log_support)
      mass = np.bincount(groups, pi, self.num_groups)
      equations = np.zeros(len(columns))
      equations[rows] = (q[columns] - q[reference])[rows]
      equations[first] = np.log(mass[groups[first]])
      if not jacobian:
        return equations
      jac = np.zeros((len(columns), len(columns)))
      jac[rows] = (dq[columns][:, columns] - dq[reference][:, columns])[rows]
      jac[first] = (groups[first][:, None] == groups[None, :]) * (
          pi / mass[groups])
      return equations, jac

    log_support = y[columns]
    equations, jac = residuals(log_support)
    norm = np.abs(equations).max()
    for _ in range(max_iterations):
      if norm <= 1e-14:
        break
      # Least squares with small singular values cut: where actions are
      # payoff-equivalent (or the equilibrium set is not a point) the
      # equations leave a mix free and the shortest step keeps the
      # branch's mix there.
      delta = linalg.lstsq(jac, -equations, cond=1e-9,
                           check_finite=False)[0]
      for _ in range(20):  # backtracking on the largest residual
        trial = log_support + delta
        if np.all(np.isfinite(trial)) and trial.min() > -40:
          trial_norm = np.abs(residuals(trial, jacobian=False)).max()
          if trial_norm < norm:
            break
        delta = 0.5 * delta
      else:
        break  # stagnated: the caller checks the regret
      log_support, norm = trial, trial_norm
      equations, jac = residuals(log_support)
    full[columns] = log_support
    return full

  def _values(self, pis, own_terms, lam, entropy_weight):
    """V from (I - gamma P_pi) V = c_pi; returns (solver, V (S, N))."""
    joint = pis[0]
    for pi in pis[1:]:
      joint = (joint[:, :, None] * pi[:, None, :]).reshape(len(joint), -1)
    num_states = self.num_states
    if isinstance(self.transitions, np.ndarray):
      next_states = np.einsum(
          "sj,sjt->st", joint,
          self.transitions.reshape(num_states, -1, num_states))
      lu = linalg.lu_factor(np.eye(num_states) - self.gamma * next_states,
                            check_finite=False)

      def factor(rhs):
        return linalg.lu_solve(lu, rhs, check_finite=False)
    else:
      weights = sparse.csr_matrix(
          (joint.reshape(-1), (self._joint_rows, self._joint_cols)),
          shape=(num_states, self._joint_cols.size))
      sparse_lu = sparse_linalg.splu(
          (sparse.identity(num_states, format="csc") -
           self.gamma * (weights @ self.transitions)).tocsc())

      def factor(rhs):
        return sparse_lu.solve(np.ascontiguousarray(rhs))

    reward = np.stack([_expect(self.rewards[i], pis)
                       for i in range(self.num_players)], axis=1)
    entropy = np.stack([term.sum(axis=1) for term in own_terms], axis=1)
    return factor, factor(lam * reward - entropy_weight * entropy)


def _branch_points(equations, points):
  """`BranchPoint`s of the rows (y, lambda internal, residual) of
  `points` (n, K + 2)."""
  tables = equations.split_rows(equations.probabilities(points[:, :-2]))
  scale = equations.scale
  return [BranchPoint(temperature=scale / lam if lam > 0 else math.inf,
                      profile=list(profile), residual=residual)
          for (lam, residual), profile in zip(points[:, -2:].tolist(),
                                              zip(*tables))]


class _KernelTrace:
  """`_Tracer`'s trace of a normal-form game (one state, no transitions),
  compiled (`homotopy_kernel.trace`: the same equations, steps, corrector
  and stopping rules, without per-call interpreter overhead); not the Nash
  polish of `Settings.polish_below`."""

  def __init__(self, equations, settings):
    self.equations = equations
    self.settings = settings
    self.endpoint = None

  def run(self, target_lam, maxregret):
    """Returns (y, lambda, converged, message), lambda internal."""
    equations, settings = self.equations, self.settings
    self._game = equations.profile_payoffs() + (
        equations.group_starts_with_end,)
    kernel = homotopy_kernel
    values = settings.kernel_values
    u, status, self.steps, self.newton_iterations, step, self.points = (
        kernel.trace(*self._game, math.nan if target_lam is None else
                     target_lam, math.nan if maxregret is None else maxregret,
                     equations.mgame.initial_distribution[0] *
                     equations.scale, values))
    if status == kernel.SINGULAR_START:
      raise np.linalg.LinAlgError("singular [DH; tangent]")
    message = {
        kernel.REACHED_TEMPERATURE: "reached the requested temperature",
        kernel.REACHED_REGRET: "max regret <= maxregret on the branch",
        kernel.MAX_STEPS: f"stopped after max_steps={settings.max_steps}",
        kernel.STEP_TOO_SMALL: (
            f"step fell below {settings.min_step}"
            if step < settings.min_step else f"step became {step}"),
        kernel.NON_FINITE: "the branch point became non-finite",
        kernel.MAX_LAMBDA: (f"lambda x range passed Settings.max_lambda="
                            f"{settings.max_lambda} before the stop (the "
                            "temperature or maxregret) was reached"),
    }[status]
    converged = status in (kernel.REACHED_TEMPERATURE,
                           kernel.REACHED_REGRET)
    return u[:-1], u[-1], converged, message

  def certificate(self, x, lam):
    """(`fixed_point_residual`, per-player deviation gains) at the point y
    (internal lambda), compiled."""
    equations = self.equations
    return homotopy_kernel.certificate(
        equations.probabilities(x), lam, *self._game,
        equations.mgame.initial_distribution[0] * equations.scale)

  def branch_points(self):
    return _branch_points(self.equations, self.points)


class _Tracer:
  """Predictor-corrector continuation of H(y, p) = 0 in one parameter p."""

  def __init__(self, equations, settings):
    self.equations = equations
    self.settings = settings
    # The visited points (y, lambda internal, residual), made into
    # `BranchPoint`s once, by `branch_points`.
    self.points = []
    self.steps = 0
    self.newton_iterations = 0
    self.endpoint = None
    # Passing a simple bifurcation, the first player's probabilities at the
    # first state are made to sum to 1 - perturbation for a while (as
    # Gambit does), which unfolds it into two curves.
    self.perturbation = 0.0
    starts = equations.group_starts
    self._first_group_size = (int(starts[1]) if len(starts) > 1 else
                              equations.size)
    # The pivots of an LU without row swaps (y and the parameter).
    self._pivots = np.arange(equations.size + 1)

  def run(self, target_lam, maxregret):
    """Returns (y, lambda, converged, message), lambda internal."""
    equations = self.equations
    x = np.zeros(equations.size)
    x = equations.log_softmax(x)
    if equations.soft and equations.dynamic:
      # The entropy-only game at lambda = 0: scale its entropy from 0 to 1.
      system = lambda u, jac=True: self._system(u, 0.0, None, jac)
      u, ok, message = self._trace(system, np.append(x, 0.0), 1.0, None,
                                   record=False)
      if not ok:
        return u[:-1], 0.0, False, "start point: " + message
      x = u[:-1]
    system = lambda u, jac=True: self._system(u, None, 1.0, jac)
    self._record(x, 0.0)
    u, ok, message = self._trace(system, np.append(x, 0.0), target_lam,
                                 maxregret, record=True)
    return u[:-1], u[-1], ok, message

  def _system(self, u, lam, mu, jac):
    """H and dH/du with u = (y, p): p is lambda (mu fixed) or mu."""
    x, p = u[:-1], u[-1]
    result = self.equations.evaluate(
        x, p if lam is None else lam, p if mu is None else mu, jac,
        "lambda" if lam is None else "mu")
    h = result[0]
    if self.perturbation:
      h[:self._first_group_size] += self.perturbation
    return h, result[2] if jac else None

  def _record(self, x, lam, residual=None):
    if residual is None:
      residual = np.abs(self.equations.evaluate(
          x, lam, 1.0, jacobian=False)[0]).max()
    self.points.append((x, lam, float(residual)))

  def certificate(self, x, lam):
    """(`fixed_point_residual`, per-player deviation gains) at the point y
    (internal lambda)."""
    profile = self.equations.profile(x)
    residual = (_residual(self.equations, profile, self.equations.scale / lam)
                if lam > 0 else math.nan)
    return residual, _deviation_gains(self.equations, profile)

  def branch_points(self):
    """The recorded points as `BranchPoint`s (all profiles in one pass)."""
    if not self.points:
      return []
    return _branch_points(self.equations, np.array(
        [np.append(x, (lam, residual)) for x, lam, residual in self.points]))

  def _tangent(self, augmented, previous):
    augmented[-1] = previous
    rhs = np.zeros(len(previous))
    rhs[-1] = 1.0
    lu, pivots, info = _GETRF(augmented, overwrite_a=True)
    if info > 0:
      raise np.linalg.LinAlgError("singular [DH; tangent]")
    tangent = _GETRS(lu, pivots, rhs)[0]
    tangent /= math.sqrt(tangent @ tangent)
    return tangent if tangent @ previous >= 0 else -tangent

  def _tangent_at(self, system, u, previous):
    """The tangent at u, oriented as `previous`."""
    self.newton_iterations += 1
    return self._tangent(system(u)[1], previous)

  def _correct(self, system, v, tangent, max_first):
    """Chord Newton on {H = 0, tangent . (u - v) = 0} from the predicted
    point v, with the Jacobian there factored once; the same factors give
    the tangent at the new point.

    Returns (u, first step length, ok, tangent at u, |H(u)|, orientation);
    not ok when the residual stops falling fast, and at once (the step is
    retried shorter) when the new tangent turns by more than `min_cosine`
    allows or the first step is longer than `max_first`. The orientation is
    the sign of det [DH; tangent], constant along the branch except where
    it crosses another branch (a simple bifurcation point).
    """
    settings = self.settings
    tolerance = settings.corrector_tolerance
    if self.perturbation:
      # The unfolded crossing has the scale of the perturbation: a corrector
      # stopping at a residual above it does not see it.
      tolerance = min(tolerance, 1e-3 * self.perturbation)
    h, augmented = system(v)
    self.newton_iterations += 1
    augmented[-1] = tangent
    # LAPACK directly: on small games scipy's checks around lu_factor and
    # lu_solve cost more than the factorisation.
    lu, pivots, _ = _GETRF(augmented, overwrite_a=True)
    rhs = np.zeros(len(v))
    rhs[-1] = 1.0
    new_tangent = _GETRS(lu, pivots, rhs)[0]
    norm = float(np.abs(h).max())
    length = math.sqrt(new_tangent @ new_tangent)
    # A zero pivot (DH singular) shows as a non-finite tangent.
    if not (math.isfinite(length) and math.isfinite(norm)):
      return v, math.inf, False, tangent, norm, 0
    # sign det [DH; tangent] = (-1)^(row swaps + negative pivots).
    flips = (np.count_nonzero(pivots != self._pivots) +
             np.count_nonzero(lu.diagonal() < 0))
    orientation = -1 if flips % 2 else 1
    new_tangent /= length
    cosine = new_tangent @ tangent
    if cosine < 0:
      np.negative(new_tangent, out=new_tangent)
    if abs(cosine) < settings.min_cosine:
      return v, math.inf, False, tangent, norm, orientation
    first = None
    for _ in range(settings.max_corrector_iterations):
      np.negative(h, out=rhs[:-1])
      rhs[-1] = 0.0
      delta = _GETRS(lu, pivots, rhs)[0]
      v = v + delta
      if first is None:
        first = float(np.abs(delta).max())
        if first > max_first:
          return v, first, False, tangent, norm, orientation
      h = system(v, False)[0]
      self.newton_iterations += 1
      previous, norm = norm, float(np.abs(h).max())
      # In probability units: a log-probability error on an action
      # played with probability e^-1000 is harmless (the weighted
      # residual is at most `norm`).
      if norm <= tolerance * (1.0 + abs(v[-1])) and (
          norm <= tolerance or float(np.max(np.abs(h) * np.exp(
              np.minimum(v[:-1], 0.0)))) <= tolerance):
        return v, first, True, new_tangent, norm, orientation
      if not math.isfinite(norm) or norm > 0.5 * previous:
        break
    return (v, first if first is not None else math.inf, False, tangent, norm,
            orientation)

  def _land(self, system, v, target):
    """Newton in y at fixed parameter `target` from v; returns (u, ok,
    |H(u)|)."""
    settings = self.settings
    self.perturbation = 0.0
    v = v.copy()
    v[-1] = target
    last = math.inf
    lu = None
    for _ in range(50):
      # Chord steps (the last factored Jacobian) while they contract the
      # residual tenfold, else Newton from the current point.
      h, jac = system(v, lu is None)
      self.newton_iterations += 1
      norm = float(np.abs(h).max())
      if norm <= settings.tolerance * (1.0 + target):
        break
      if not math.isfinite(norm):  # diverged (NaN passes no test below)
        break
      if jac is None and norm > 0.1 * last:
        jac = system(v)[1]
        self.newton_iterations += 1
      elif norm >= last:
        break
      last = norm
      if jac is not None:
        lu, pivots, info = _GETRF(jac[:-1, :-1])
        if info > 0:  # singular
          return v, False, norm
      v[:-1] -= _GETRS(lu, pivots, h)[0]
    ok = norm <= 1e-7 * (1.0 + target)
    return v, ok, norm

  def _trace(self, system, u, target, maxregret, record):
    """Follows the branch from u (parameter increasing at the start) until
    the parameter reaches `target` or the regret falls to `maxregret`."""
    settings = self.settings
    equations = self.equations
    _, jac = system(u)
    start = np.zeros(len(u))
    start[-1] = 1.0
    tangent = self._tangent(jac, start)
    step = settings.first_step
    last_attempt = math.inf
    orientation = 0
    # (u, tangent, step, corrected point) where a crossing was first seen.
    crossing = None
    retangent = None  # the point whose own tangent was last taken
    while True:
      if self.steps >= settings.max_steps:
        return u, False, f"stopped after max_steps={settings.max_steps}"
      if not step >= settings.min_step:  # also stops a NaN step
        return u, False, (f"step fell below {settings.min_step}" if
                          step < settings.min_step else f"step became {step}")
      if not math.isfinite(u @ u):
        return u, False, "the branch point became non-finite"
      if u[-1] > settings.max_lambda:
        return u, False, (f"lambda x range passed Settings.max_lambda="
                          f"{settings.max_lambda} before the stop (the "
                          "temperature or maxregret) was reached")
      if (crossing is not None and step < settings.bifurcation_jump_step
          and retangent is not u):
        # The unfolded crossing turns within a distance of the order of
        # sqrt(perturbation): there the tangent carried from the predicted
        # point can be far from the one at the corrected point u, and then
        # every step, however short, turns by more than `min_cosine`
        # allows. Retry from u with the tangent at u.
        tangent = self._tangent_at(system, u, tangent)
        retangent = u
        step = crossing[2]
        continue
      if crossing is not None and step < settings.bifurcation_jump_step:
        # The perturbation left the crossing in place (it keeps a symmetry
        # of the game, e.g. the players' roles in a symmetric coordination
        # game) and the trace creeps towards the singular point: step
        # across it from where the crossing was seen, with the corrected
        # point past it found then (unperturbed), and stay on the branch
        # followed so far.
        u, tangent, step, corrected = crossing
        crossing = None
        self.perturbation = 0.0
      else:
        corrected = self._correct(system, u + step * tangent, tangent,
                                  settings.max_distance * max(1.0, step))
        if not corrected[2]:
          step *= 0.5
          continue
        if orientation and corrected[5] != orientation:
          # A bifurcation between u and v: retry shorter on the unfolded
          # curves.
          if crossing is None:
            crossing = u, tangent, step, corrected
          if not self.perturbation:
            self.perturbation = settings.bifurcation_perturbation
            countdown = 2.0 * step
          step *= 0.5
          continue
      v, first, _, new_tangent, residual, orientation = corrected
      if self.perturbation:
        countdown -= step
        if countdown < 0:  # the unfolded crossing is passed
          self.perturbation = 0.0
          crossing = None
      if target is not None and u[-1] < target <= v[-1]:
        fraction = (target - u[-1]) / (v[-1] - u[-1])
        landed, ok, residual = self._land(system, u + fraction * (v - u),
                                          target)
        if not ok:
          step *= 0.5
          continue
        self.steps += 1
        if record:
          self._record(landed[:-1], landed[-1], residual)
        return landed, True, "reached the requested temperature"
      self.steps += 1
      u, tangent = v, new_tangent
      if record:
        self._record(u[:-1], u[-1], residual)
      if maxregret is not None and u[-1] > 0:
        if equations.one_shot:
          regret = np.max(equations.one_shot_gains(
              equations.probabilities(u[:-1])))
        else:
          profile = equations.profile(u[:-1])
          regret = np.max(_deviation_gains(equations, profile))
        if regret <= maxregret:
          landed, _, residual = self._land(system, u, u[-1])
          if record:
            self.points[-1] = landed[:-1], landed[-1], residual
          return landed, True, "max regret <= maxregret on the branch"
        if (regret < settings.polish_below * equations.scale and
            regret <= 0.1 * last_attempt):
          last_attempt = regret
          profile = equations.profile(u[:-1])
          endpoint = equations.nash_endpoint(u[:-1])
          if endpoint is not None:
            end_profile = equations.profile(endpoint)
            distance = max(np.abs(a - b).max() for a, b in
                           zip(end_profile, profile))
            if (distance <= settings.polish_distance and np.max(
                _deviation_gains(equations, end_profile)) <= maxregret):
              self.endpoint = end_profile
              return u, True, ("max regret <= maxregret at the branch's "
                               "limit (Newton on the Nash equations with "
                               "the support of the last branch point)")
      growth = math.sqrt(settings.target_distance * max(1.0, step) /
                         max(first, 1e-300))
      step *= min(settings.max_step_growth, max(0.5, growth))
