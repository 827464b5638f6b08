"""Atomic splittable routing game with demand regimes (paper section 5.1.2).

N players each route a commodity of size `demand` (scaled by the current
demand regime) from the origin O to the destination D of a network whose links
have affine latencies l_e(f) = a_e f + b_e. A player's action splits its
commodity over the network's O-D paths. With y_ie player i's flow on link e
and F_e = sum_j y_je the total, player i's stage cost and reward are

  C_i = sum_e y_ie * l_e(F_e),        r_i = -C_i.

The game has the exact potential

  Phi = sum_e [ b_e F_e + (a_e / 2) (F_e^2 + sum_j y_je^2) ]:

a unilateral change of C_i equals the change of Phi, so the equilibrium of the
continuous game is the minimiser of the convex function Phi over the product of
the players' simplices. The demand regime follows an exogenous Markov chain
that does not depend on actions, so the repeated game is a Markov potential
game whose Markov state is (step index, regime).

This module holds, side by side:
  * `Network`, `make_network`, `enumerate_paths`: the built-in networks
    ("pigou", "braess", "parallel") and their O-D paths, enumerated by a DFS
    over the link list;
  * `RoutingModel`: the numpy model (costs, potential, exact and grid
    equilibria), vectorised over leading batch dimensions;
  * `DemandRegimes`: the regime chain;
  * `RoutingGame` ("python_vsg_routing"): the OpenSpiel game, each player's
    action a point of the simplex grid `split_grid(num_paths, split_levels)`,
    registered with pyspiel at the bottom;
  * `BatchedRoutingEnv`: the continuous-action environment for the neural
    algorithms, batched over a leading dimension;
  * `RoutingContinuous` (`RoutingGame.continuous_interface()`): what the
    continuous-action algorithms and Figure 2b need of the game (sizes, the
    box-to-split map, observations, the final metrics).

List-valued parameters are strings of numbers separated by spaces or commas,
matrix rows separated by ";" (e.g. regime_transition="0.8 0.2;0.3 0.7"). In a
game string (`pyspiel.load_game("python_vsg_routing(...)")`) use spaces, since
commas separate the parameters there; commas given through a parameter dict are
rewritten as spaces so that the game string round-trips. pyspiel reads a lone
number as an int or float, not a string: write a one-element list with a
trailing space, e.g. regime_scales="1 ", regime_transition="1 ".
"""

import dataclasses
import itertools
import math
import re

import numpy as np
import scipy.optimize

import pyspiel

from vsg_spiel import parameters

NETWORKS = ("pigou", "braess", "parallel")
MIN_PLAYERS = 2
MAX_PLAYERS = 8
# The largest joint grid `RoutingModel.grid_equilibrium` enumerates.
MAX_GRID_PROFILES = 2_000_000
# The most grid actions (splits) per player a game may have; raise it to load
# finer grids (the Markov-game core has its own limit, max_bytes).
MAX_NUM_ACTIONS = 100_000
# Returns (horizon x the largest stage cost) must stay below this.
MAX_RETURN = 1e300

_DEFAULT_PARAMS = {
    "num_players": 2,
    "demand": 0.5,
    "network": "braess",
    "latency_a": "1 2 0.5",
    "latency_b": "0 0.5 1",
    "split_levels": 4,
    "regime_scales": "1 1.5",
    "regime_transition": "0.8 0.2;0.3 0.7",
    "initial_regime": 0,
    "horizon": 25,
}
_LIST_PARAMS = ("latency_a", "latency_b", "regime_scales", "regime_transition")

_GAME_TYPE = pyspiel.GameType(
    short_name="python_vsg_routing",
    long_name="Python VSG Atomic Splittable Routing Game",
    dynamics=pyspiel.GameType.Dynamics.SIMULTANEOUS,
    chance_mode=pyspiel.GameType.ChanceMode.EXPLICIT_STOCHASTIC,
    information=pyspiel.GameType.Information.PERFECT_INFORMATION,
    utility=pyspiel.GameType.Utility.GENERAL_SUM,
    reward_model=pyspiel.GameType.RewardModel.REWARDS,
    max_num_players=MAX_PLAYERS,
    min_num_players=MIN_PLAYERS,
    provides_information_state_string=True,
    provides_information_state_tensor=True,
    provides_observation_string=True,
    provides_observation_tensor=True,
    provides_factored_observation_string=False,
    parameter_specification=_DEFAULT_PARAMS)


# ---------------------------------------------------------------------------
# Parameter parsing.


def _parse_floats(text, name):
  """Parses "1 2 0.5" (or "1,2,0.5") into a 1-D float array."""
  items = [item for item in re.split(r"[\s,]+", str(text).strip()) if item]
  try:
    values = np.array([float(item) for item in items])
  except ValueError:
    raise ValueError(f"{name} must be numbers separated by spaces or commas, "
                     f"got {text!r}") from None
  if values.size == 0:
    raise ValueError(f"{name} must hold at least one number, got {text!r}")
  return values


def _parse_matrix(text, name):
  """Parses "0.8 0.2;0.3 0.7" (rows separated by ";") into a 2-D array."""
  rows = [_parse_floats(row, name) for row in str(text).split(";")]
  if len({len(row) for row in rows}) != 1:
    raise ValueError(f"{name} rows must have equal lengths, got {text!r}")
  return np.stack(rows)


def _check_range(name, value, low, high=None):
  """Raises a ValueError naming `name` unless low <= value (<= high)."""
  if value < low or (high is not None and value > high):
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be {allowed}, got {value}")


def _check_positive(name, value):
  """Raises a ValueError naming `name` unless value is finite and > 0."""
  if not (np.isfinite(value) and value > 0):
    raise ValueError(f"{name} must be finite and > 0, got {value}")


# ---------------------------------------------------------------------------
# Networks and paths.


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
  """A directed network with affine link latencies l_e(f) = a_e f + b_e.

  Attributes:
    name: a label.
    links: one (tail, head) node pair per link; parallel links are allowed.
    latency_a: slopes a_e >= 0, one per link.
    latency_b: free-flow latencies b_e >= 0, one per link.
    origin, destination: the O-D pair every player routes between.
  """
  name: str
  links: tuple
  latency_a: np.ndarray
  latency_b: np.ndarray
  origin: str = "O"
  destination: str = "D"

  def __post_init__(self):
    object.__setattr__(self, "links", tuple(tuple(link) for link in self.links))
    object.__setattr__(self, "latency_a",
                       np.asarray(self.latency_a, dtype=np.float64))
    object.__setattr__(self, "latency_b",
                       np.asarray(self.latency_b, dtype=np.float64))
    if self.latency_a.shape != self.latency_b.shape:
      raise ValueError(
          f"latency_a and latency_b must have the same length, got "
          f"{self.latency_a.size} and {self.latency_b.size}")
    if self.latency_a.shape != (len(self.links),):
      raise ValueError(f"need one latency_a and latency_b per link "
                       f"({len(self.links)}), got {self.latency_a.size}")
    for name in ("latency_a", "latency_b"):
      values = getattr(self, name)
      if not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(f"{name} must be finite and >= 0, got {values}")


def make_network(name, latency_a=_DEFAULT_PARAMS["latency_a"],
                 latency_b=_DEFAULT_PARAMS["latency_b"]):
  """Returns a built-in network by name.

  Args:
    name: "pigou" (two parallel links, l = f and l = 1), "braess" (nodes O, A,
      B, D; links O->A l = f, O->B l = 1, A->D l = 1, B->D l = f, A->B l = 0)
      or "parallel" (K parallel O->D links with l_k = a_k f + b_k).
    latency_a, latency_b: the coefficients of "parallel", as strings ("1 2
      0.5") or sequences; ignored by the other networks.
  """
  if name == "pigou":
    return Network("pigou", (("O", "D"), ("O", "D")), [1.0, 0.0], [0.0, 1.0])
  if name == "braess":
    return Network(
        "braess",
        (("O", "A"), ("O", "B"), ("A", "D"), ("B", "D"), ("A", "B")),
        [1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0])
  if name == "parallel":
    if isinstance(latency_a, str):
      latency_a = _parse_floats(latency_a, "latency_a")
    if isinstance(latency_b, str):
      latency_b = _parse_floats(latency_b, "latency_b")
    if len(latency_a) != len(latency_b):
      raise ValueError(
          f"latency_a and latency_b must have the same length, got "
          f"{len(latency_a)} and {len(latency_b)}")
    return Network("parallel", (("O", "D"),) * len(latency_a), latency_a,
                   latency_b)
  raise ValueError(f"network must be one of {NETWORKS}, got {name!r}")


def enumerate_paths(links, origin, destination):
  """Returns every simple origin-destination path as a tuple of link indices.

  A depth-first search over the link list: from each node the outgoing links
  are tried in list order, so the path order is fixed by the link order. On
  "braess" this gives (O->A->D, O->A->B->D, O->B->D).

  Raises:
    ValueError: if the links contain a cycle reachable from the origin or no
      path reaches the destination.
  """
  outgoing = {}
  for index, (tail, _) in enumerate(links):
    outgoing.setdefault(tail, []).append(index)
  paths = []

  def extend(node, path, visited):
    if node == destination:
      paths.append(tuple(path))
      return
    for index in outgoing.get(node, ()):
      head = links[index][1]
      if head in visited:
        raise ValueError(f"the network's links must be acyclic; link {index} "
                         f"{links[index]} closes a cycle")
      extend(head, path + [index], visited | {head})

  extend(origin, [], {origin})
  if not paths:
    raise ValueError(f"no path from {origin!r} to {destination!r}")
  return tuple(paths)


def split_grid(num_paths, split_levels):
  """Returns the simplex grid of splits, shape (num_actions, num_paths).

  Row k is composition k of `split_levels` into `num_paths` nonnegative parts,
  divided by `split_levels`. Compositions are in lexicographic order of their
  parts, so action 0 puts everything on the last path and the last action
  everything on the first; there are C(split_levels + num_paths - 1,
  num_paths - 1) of them.
  """
  if split_levels < 1:
    raise ValueError(f"split_levels must be >= 1, got {split_levels}")
  heads = [parts for parts in itertools.product(range(split_levels + 1),
                                                repeat=num_paths - 1)
           if sum(parts) <= split_levels]
  compositions = np.array([parts + (split_levels - sum(parts),)
                           for parts in heads], dtype=np.float64)
  return compositions / split_levels


# ---------------------------------------------------------------------------
# The numpy model.


class RoutingModel:
  """Costs, potential and equilibria of the one-stage routing game.

  Flows are path flows of shape (..., num_players, num_paths) in absolute
  units (a player's row sums to its demand times the regime scale); every
  method broadcasts over the leading dimensions.

  Attributes:
    network: the `Network`.
    paths: the O-D paths, tuples of link indices (see `enumerate_paths`).
    path_links: (num_paths, num_links) 0/1 path-link incidence matrix.
    demand: (num_players,) commodity sizes at scale 1.
  """

  def __init__(self, network="braess", num_players=2, demand=0.5):
    """Args: a `Network` or a built-in name, the player count, and the demand
    per player (a positive number, or one per player)."""
    self.network = (make_network(network) if isinstance(network, str)
                    else network)
    if num_players < 1:
      raise ValueError(f"num_players must be >= 1, got {num_players}")
    self.num_players = int(num_players)
    self.demand = np.broadcast_to(np.asarray(demand, dtype=np.float64),
                                  (self.num_players,)).copy()
    if not np.all(np.isfinite(self.demand) & (self.demand > 0)):
      raise ValueError(f"demand must be finite and > 0, got {demand}")
    self.paths = enumerate_paths(self.network.links, self.network.origin,
                                 self.network.destination)
    self.num_paths = len(self.paths)
    self.num_links = len(self.network.links)
    self.path_links = np.zeros((self.num_paths, self.num_links))
    for p, path in enumerate(self.paths):
      self.path_links[p, list(path)] = 1.0

  def flows(self, splits, scale=1.0):
    """Path flows of split fractions (..., N, P) at demand scale(s) (...)."""
    scale = np.asarray(scale, dtype=np.float64)[..., None, None]
    return np.asarray(splits) * self.demand[:, None] * scale

  def link_flows(self, path_flows):
    """y_ie, each player's flow on each link: (..., N, P) -> (..., N, E)."""
    return np.asarray(path_flows) @ self.path_links

  def costs(self, path_flows):
    """C_i = sum_e y_ie (a_e F_e + b_e): (..., N, P) -> (..., N)."""
    y = self.link_flows(path_flows)
    latency = (self.network.latency_a * y.sum(axis=-2)
               + self.network.latency_b)
    return np.sum(y * latency[..., None, :], axis=-1)

  def potential(self, path_flows):
    """Phi = sum_e [b_e F_e + (a_e/2)(F_e^2 + sum_j y_je^2)].

    Shape (..., N, P) -> (...).
    """
    return self._link_potential(self.link_flows(path_flows))

  def _link_potential(self, y):
    """Phi of link flows y (..., N, E) -> (...)."""
    total = y.sum(axis=-2)
    return np.sum(self.network.latency_b * total
                  + 0.5 * self.network.latency_a
                  * (total**2 + np.sum(y**2, axis=-2)), axis=-1)

  def marginal_costs(self, path_flows):
    """dPhi/dx_ip = dC_i/dx_ip = sum_{e in p} (a_e (F_e + y_ie) + b_e).

    Shape (..., N, P) -> (..., N, P).
    """
    y = self.link_flows(path_flows)
    total = y.sum(axis=-2, keepdims=True)
    link_marginal = (self.network.latency_a * (total + y)
                     + self.network.latency_b)
    return link_marginal @ self.path_links.T

  def equilibrium(self, scale=1.0, tol=1e-12):
    """The equilibrium path flows (N, P) of the continuous game at `scale`.

    Minimises the convex quadratic Phi = c.x + x.Q.x/2 over the product of the
    simplices {x_i >= 0, sum_p x_ip = demand_i * scale}: SLSQP finds the
    support, then the KKT system on that support is solved exactly, dropping
    paths whose flow turns negative and adding unused paths whose marginal
    cost is below the player's equilibrium cost, until the KKT conditions hold
    to `tol`. Where Phi is flat along some path directions (links with a_e = 0
    shared by several paths) this returns one of the minimisers.
    """
    _check_positive("scale", scale)
    n, p = self.num_players, self.num_paths
    link_hessian = ((self.path_links * self.network.latency_a)
                    @ self.path_links.T)
    hessian = np.kron(np.ones((n, n)) + np.eye(n), link_hessian)
    linear = np.tile(self.path_links @ self.network.latency_b, n)
    owner = np.kron(np.eye(n), np.ones((1, p)))  # (N, N*P): sums a player's x.
    target = self.demand * scale

    start = (target[:, None] * np.full((n, p), 1.0 / p)).ravel()
    result = scipy.optimize.minimize(
        lambda x: linear @ x + 0.5 * x @ hessian @ x, start,
        jac=lambda x: linear + hessian @ x, method="SLSQP",
        bounds=[(0.0, None)] * (n * p),
        constraints=[{"type": "eq", "fun": lambda x: owner @ x - target,
                      "jac": lambda x: owner}],
        options={"ftol": 1e-15, "maxiter": 1000})
    support = result.x > 1e-7 * target.min()
    for _ in range(n * p + 1):
      x, multipliers = _solve_kkt(hessian, linear, owner, target, support)
      if np.any(x[support] < -tol):
        support &= x > tol
        continue
      # Reduced costs: zero on the support, >= 0 off it at the optimum.
      reduced = linear + hessian @ x + owner.T @ multipliers
      entering = ~support & (reduced < -tol * max(1.0, np.abs(linear).max()))
      if not entering.any():
        return np.maximum(x, 0.0).reshape(n, p)
      support |= entering
    raise RuntimeError("equilibrium: the KKT refinement did not converge")

  def grid_equilibrium(self, split_levels, scale=1.0):
    """The Phi-minimising pure profile of the grid game at `scale`.

    Enumerates all joint profiles of `split_grid(num_paths, split_levels)`
    (at most MAX_GRID_PROFILES) in chunks. The minimiser is a pure Nash
    equilibrium of the grid game (Phi is an exact potential there too).

    Returns:
      A tuple of one action index per player; among equal minima the first
      profile in row-major order.
    """
    _check_positive("scale", scale)
    fractions = split_grid(self.num_paths, split_levels)
    num_actions = len(fractions)
    num_profiles = num_actions**self.num_players
    if num_profiles > MAX_GRID_PROFILES:
      raise ValueError(
          f"the joint grid has {num_profiles} profiles (num_actions="
          f"{num_actions} ** num_players={self.num_players}); "
          f"grid_equilibrium enumerates at most {MAX_GRID_PROFILES}: lower "
          f"split_levels or num_players")
    # Link flows of every player's every action: (N, num_actions, E).
    action_links = self.link_flows(
        self.flows(np.broadcast_to(fractions[:, None, :],
                                   (num_actions, self.num_players,
                                    self.num_paths)), scale)).swapaxes(0, 1)
    players = np.arange(self.num_players)
    best_value, best_index = np.inf, 0
    chunk = 1 << 15
    for begin in range(0, num_profiles, chunk):
      flat = np.arange(begin, min(begin + chunk, num_profiles))
      profile = np.stack(np.unravel_index(
          flat, (num_actions,) * self.num_players), axis=-1)
      values = self._link_potential(action_links[players, profile])
      k = int(np.argmin(values))
      if values[k] < best_value:
        best_value, best_index = values[k], begin + k
    return tuple(int(a) for a in np.unravel_index(
        best_index, (num_actions,) * self.num_players))

  def max_stage_cost(self, max_scale):
    """An upper bound on any player's stage cost at demand scales <= max_scale.

    F_e never exceeds the total demand F_max, so
    C_i <= demand_i * max_scale * max_p sum_{e in p} (a_e F_max + b_e).
    (Costs are >= 0 since a_e, b_e >= 0.)
    """
    total_flow = self.demand.sum() * max_scale
    path_latency = self.path_links @ (self.network.latency_a * total_flow
                                      + self.network.latency_b)
    return float(self.demand.max() * max_scale * path_latency.max())


def _solve_kkt(hessian, linear, owner, target, support):
  """Solves the KKT system of min c.x + x.Q.x/2, owner x = target, on a support.

  Paths off the support are fixed at 0; returns (x, multipliers). `lstsq`
  handles a singular Q (several minimisers) by taking the least-norm one.
  """
  index = np.flatnonzero(support)
  size, rows = len(index), len(target)
  kkt = np.zeros((size + rows, size + rows))
  kkt[:size, :size] = hessian[np.ix_(index, index)]
  kkt[:size, size:] = owner[:, index].T
  kkt[size:, :size] = owner[:, index]
  rhs = np.concatenate([-linear[index], target])
  solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
  x = np.zeros_like(linear)
  x[index] = solution[:size]
  return x, solution[size:]


# ---------------------------------------------------------------------------
# The demand regime chain.


@dataclasses.dataclass(frozen=True, eq=False)
class DemandRegimes:
  """An exogenous Markov chain of demand regimes.

  Attributes:
    scales: (K,) demand multiplier of each regime, > 0.
    transition: (K, K) row-stochastic matrix P[r, r'].
    initial: the regime of the first stage.
  """
  scales: np.ndarray
  transition: np.ndarray
  initial: int = 0

  def __post_init__(self):
    scales = np.asarray(self.scales, dtype=np.float64).reshape(-1)
    transition = np.asarray(self.transition, dtype=np.float64)
    object.__setattr__(self, "scales", scales)
    object.__setattr__(self, "transition", transition)
    k = len(scales)
    if not np.all(np.isfinite(scales) & (scales > 0)):
      raise ValueError(f"regime_scales must be finite and > 0, got {scales}")
    if transition.shape != (k, k):
      raise ValueError(f"regime_transition must be {k}x{k} (one row and column "
                       f"per regime scale), got shape {transition.shape}")
    if np.any(transition < 0) or not np.allclose(transition.sum(axis=1), 1.0,
                                                 rtol=0, atol=1e-9):
      raise ValueError(f"regime_transition rows must be nonnegative and sum to "
                       f"1, got row sums {transition.sum(axis=1)}")
    if not 0 <= self.initial < k:
      raise ValueError(f"initial_regime must be in [0, {k - 1}], got "
                       f"{self.initial}")

  @property
  def num_regimes(self):
    return len(self.scales)

  def sample_next(self, regimes, rng):
    """Draws the next regime for each entry of the int array `regimes`."""
    cumulative = np.cumsum(self.transition, axis=1)[regimes]
    draws = rng.random(np.shape(regimes))
    return np.minimum(np.sum(draws[..., None] >= cumulative, axis=-1),
                      self.num_regimes - 1)


def step_regime_one_hot(steps, regimes, horizon, num_regimes):
  """Observation tensors: one-hot step (horizon + 1) ++ one-hot regime (K)."""
  return np.concatenate(
      [np.eye(horizon + 1, dtype=np.float32)[np.asarray(steps)],
       np.eye(num_regimes, dtype=np.float32)[np.asarray(regimes)]], axis=-1)


# ---------------------------------------------------------------------------
# The OpenSpiel game.


class RoutingGame(pyspiel.Game):
  """The routing game on the split grid; states and observers come here.

  Attributes:
    model: the `RoutingModel`.
    regimes: the `DemandRegimes` chain.
    horizon: the number of stages.
    split_fractions: (num_actions, num_paths), action k's split of a
      player's commodity (see `split_grid`).
  """

  # pylint:disable=dangerous-default-value
  def __init__(self, params=_DEFAULT_PARAMS):
    params = {**_DEFAULT_PARAMS, **params}
    for name in _LIST_PARAMS:
      params[name] = str(params[name]).replace(",", " ")
    num_players = parameters.check_integer("num_players",
                                           params["num_players"],
                                           MIN_PLAYERS, MAX_PLAYERS)
    self.horizon = parameters.check_integer("horizon", params["horizon"], 1)
    split_levels = parameters.check_integer("split_levels",
                                            params["split_levels"], 1)
    parameters.check_real("demand", params["demand"], 0.0, low_open=True)
    network = make_network(params["network"], params["latency_a"],
                           params["latency_b"])
    self.model = RoutingModel(network, num_players, float(params["demand"]))
    self.regimes = DemandRegimes(
        _parse_floats(params["regime_scales"], "regime_scales"),
        _parse_matrix(params["regime_transition"], "regime_transition"),
        parameters.check_integer("initial_regime", params["initial_regime"],
                                 0))
    num_actions = math.comb(split_levels + self.model.num_paths - 1,
                            self.model.num_paths - 1)
    if num_actions > MAX_NUM_ACTIONS:
      raise ValueError(
          f"split_levels={split_levels} on {self.model.num_paths} paths gives "
          f"{num_actions} actions per player, more than MAX_NUM_ACTIONS="
          f"{MAX_NUM_ACTIONS}: lower split_levels or raise "
          "vsg_spiel.games.routing.MAX_NUM_ACTIONS")
    self.split_fractions = split_grid(self.model.num_paths, split_levels)
    with np.errstate(over="ignore"):
      max_cost = self.model.max_stage_cost(self.regimes.scales.max())
    if not max_cost * self.horizon <= MAX_RETURN:
      raise ValueError(
          f"stage costs can reach {max_cost:.3g}, so returns over horizon="
          f"{self.horizon} would exceed {MAX_RETURN:g}: lower demand, "
          "regime_scales, latency_a or latency_b")
    super().__init__(
        _GAME_TYPE,
        pyspiel.GameInfo(
            num_distinct_actions=len(self.split_fractions),
            max_chance_outcomes=self.regimes.num_regimes,
            num_players=num_players,
            # Padded so that float round-off never crosses the bound; costs
            # are >= 0, so returns are <= 0.
            min_utility=-self.horizon * max_cost * (1 + 1e-9) - 1e-12,
            max_utility=0.0,
            utility_sum=None,
            max_game_length=self.horizon),
        params)

  def new_initial_state(self):
    """Returns the state at step 0 in the initial regime."""
    return RoutingState(self)

  def stage_potentials(self):
    """Phi of every joint grid action in every regime: (K, A, ..., A).

    Rewards are -C_i, so -Phi is the reward potential of a stage.
    """
    num_actions = len(self.split_fractions)
    joint = np.indices((num_actions,) * self.model.num_players).reshape(
        self.model.num_players, -1).T  # (A^N, N) action indices
    splits = self.split_fractions[joint]  # (A^N, N, P)
    flows = self.model.flows(splits[None],
                             self.regimes.scales[:, None])  # (K, A^N, N, P)
    return self.model.potential(flows).reshape(
        (self.regimes.num_regimes,) + (num_actions,) * self.model.num_players)

  def make_py_observer(self, iig_obs_type=None, params=None):
    """Returns the (step, regime) observer.

    (step, regime) is the Markov state, so it serves as the observation and,
    for every `iig_obs_type` (perfect recall included), as the information
    state.
    """
    del iig_obs_type
    return RoutingObserver(self.horizon, self.regimes.num_regimes, params)

  def continuous_interface(self):
    """The game's continuous-action interface, a `RoutingContinuous`."""
    return RoutingContinuous(self)


class RoutingState(pyspiel.State):
  """A state: stages played so far, the current regime, and the node kind.

  After every stage but the last a chance node draws the next regime from the
  row of the transition matrix of the regime just played. The game's tables
  are read through `get_game()`: a cloned state is a deep copy, and a game
  object copied that way loses its Python attributes.
  """

  def __init__(self, game):
    """Constructor; should only be called by Game.new_initial_state."""
    super().__init__(game)
    self._horizon = game.horizon
    self._stage = 0
    self._regime = game.regimes.initial
    self._is_chance = False
    self._rewards = np.zeros(game.num_players())
    self._returns = np.zeros(game.num_players())

  @property
  def stage(self):
    """The number of stages played so far (the current step index)."""
    return self._stage

  @property
  def regime(self):
    """The current demand regime (at a chance node: the one just played)."""
    return self._regime

  def current_player(self):
    """Returns SIMULTANEOUS, CHANCE or TERMINAL."""
    if self._stage >= self._horizon:
      return pyspiel.PlayerId.TERMINAL
    if self._is_chance:
      return pyspiel.PlayerId.CHANCE
    return pyspiel.PlayerId.SIMULTANEOUS

  def _legal_actions(self, player):
    """Every grid split is legal for every player."""
    assert player >= 0
    return list(range(len(self.get_game().split_fractions)))

  def chance_outcomes(self):
    """The next regime's distribution: (regime, probability > 0) pairs."""
    assert self._is_chance
    row = self.get_game().regimes.transition[self._regime]
    return [(int(k), float(row[k])) for k in np.flatnonzero(row > 0)]

  def _apply_action(self, action):
    """Chance node: moves to regime `action`."""
    assert self._is_chance
    self._regime = int(action)
    self._is_chance = False

  def _apply_actions(self, actions):
    """Plays one stage: player i receives -C_i of the joint split."""
    game = self.get_game()
    flows = game.model.flows(game.split_fractions[actions],
                             game.regimes.scales[self._regime])
    self._rewards = -game.model.costs(flows)
    self._returns = self._returns + self._rewards
    self._stage += 1
    self._is_chance = self._stage < self._horizon

  def _action_to_string(self, player, action):
    """A regime for chance, else the split, e.g. "split=(0.250,0.750)"."""
    if player == pyspiel.PlayerId.CHANCE:
      return f"regime={action}"
    split = self.get_game().split_fractions[action]
    return "split=(" + ",".join(f"{v:.3f}" for v in split) + ")"

  def is_terminal(self):
    """Returns True after `horizon` stages."""
    return self._stage >= self._horizon

  def rewards(self):
    """The rewards of the last stage played.

    They are kept through the chance node that follows the stage: OpenSpiel's
    random_sim_test sums rewards() at player and terminal nodes only. A
    Markov-game builder should read them right after `apply_actions`.
    """
    return self._rewards

  def returns(self):
    """The sum of rewards so far."""
    return self._returns

  def __str__(self):
    """The Markov state "t=<stage> regime=<regime>", plus " chance" at a
    chance node."""
    text = f"t={self._stage} regime={self._regime}"
    return text + " chance" if self._is_chance else text


class RoutingObserver:
  """Observer of (step, regime), conforming to the PyObserver interface.

  The tensor is the one-hot step (horizon + 1) followed by the one-hot regime.
  At a chance node it shows the next step and the regime just played; the
  string marks chance nodes with " chance".
  """

  def __init__(self, horizon, num_regimes, params):
    if params:
      raise ValueError(f"Observation parameters not supported; passed {params}")
    self.tensor = np.zeros(horizon + 1 + num_regimes, np.float32)
    self.dict = {"step": self.tensor[:horizon + 1],
                 "regime": self.tensor[horizon + 1:]}

  def set_from(self, state, player):
    """Writes the one-hot step and regime of `state` into `tensor`."""
    del player
    self.tensor.fill(0)
    self.dict["step"][state.stage] = 1
    self.dict["regime"][state.regime] = 1

  def string_from(self, state, player):
    """Returns e.g. "t=3 regime=1"."""
    del player
    return str(state)


# ---------------------------------------------------------------------------
# The continuous-action interface.


class BatchedRoutingEnv:
  """Continuous-split routing game, batched over `batch_size` copies.

  `reset()` returns observations (batch_size, horizon + 1 + K), the one-hot
  step and regime as in the OpenSpiel game. `step(splits)` takes float splits
  of shape (batch_size, N, P), each player's row on the probability simplex
  (checked to 1e-6, then clipped at 0 and renormalised), and returns
  (observation, rewards -C_i of shape (batch_size, N), done). Each copy's
  regime follows the chain, drawn with the seeded numpy Generator.
  """

  def __init__(self, model, regimes, horizon=_DEFAULT_PARAMS["horizon"],
               batch_size=1, seed=None):
    _check_range("horizon", horizon, 1)
    _check_range("batch_size", batch_size, 1)
    self.model = model
    self.regimes = regimes
    self.horizon = horizon
    self.batch_size = batch_size
    self.num_players = model.num_players
    self.action_shape = (model.num_players, model.num_paths)
    self.observation_size = horizon + 1 + regimes.num_regimes
    self._rng = np.random.default_rng(seed)
    self._step = None
    self._regime = None

  @classmethod
  def from_game(cls, game, batch_size=1, seed=None):
    """The continuous version of a loaded python_vsg_routing game."""
    return cls(game.model, game.regimes, game.horizon, batch_size, seed)

  @property
  def regime(self):
    """The current regime of each copy, shape (batch_size,)."""
    return self._regime.copy()

  def _observation(self):
    return step_regime_one_hot(np.full(self.batch_size, self._step),
                               self._regime, self.horizon,
                               self.regimes.num_regimes)

  def reset(self):
    """Starts new episodes in the initial regime; returns observations."""
    self._step = 0
    self._regime = np.full(self.batch_size, self.regimes.initial)
    return self._observation()

  def step(self, splits):
    """Plays one stage with float splits of shape (batch_size, N, P)."""
    if self._step is None or self._step >= self.horizon:
      raise RuntimeError("call reset() before step() and after an episode ends")
    splits = np.asarray(splits, dtype=np.float64)
    shape = (self.batch_size,) + self.action_shape
    if splits.shape != shape:
      raise ValueError(f"splits must have shape {shape}, got {splits.shape}")
    if not (np.all(np.isfinite(splits)) and np.all(splits >= -1e-6)
            and np.allclose(splits.sum(axis=-1), 1.0, rtol=0, atol=1e-6)):
      raise ValueError("splits must be finite, >= 0 and sum to 1 over paths "
                       "(to 1e-6) for every player")
    splits = np.maximum(splits, 0.0)
    splits = splits / splits.sum(axis=-1, keepdims=True)
    flows = self.model.flows(splits, self.regimes.scales[self._regime])
    rewards = -self.model.costs(flows)
    self._step += 1
    if self._step < self.horizon:
      self._regime = self.regimes.sample_next(self._regime, self._rng)
    return self._observation(), rewards, self._step >= self.horizon


class RoutingContinuous:
  """The routing game's continuous-action interface (Figure 2b).

  It has the attributes and methods that `differential.DifferentialContinuous`
  lists. A box action u in [-1, 1]^(P-1) is the split

    softmax(SPLIT_LOGIT_RANGE * u_1, ..., SPLIT_LOGIT_RANGE * u_{P-1}, 0)

  on the simplex of the P paths: a bijection onto the splits whose path
  shares lie within a factor exp(2 * SPLIT_LOGIT_RANGE) of each other (at 3,
  a single path takes up to 91% of the demand with three paths; why 3:
  docs/design.md, "Tuning notes").

  The Markov state is (step, regime), one-hot. Episode k's regimes are drawn
  with a numpy Generator seeded by (seed, k). The evaluation samples
  `samples` actions per player at every Markov state (the deterministic
  action for deterministic policies) and reports the mean split per regime,
  its Euclidean distance to the exact equilibrium split
  (`RoutingModel.equilibrium`, the potential's minimiser), and the NashConv
  of the policies discretised onto the grid game (each sampled split counts
  for its nearest grid split).
  """

  SPLIT_LOGIT_RANGE = 3.0
  # Stage costs are below 2.3, so rewards are scaled by 10, and the
  # temperature runs from 0.3 to 0.01. The discount is 0.5 (docs/design.md,
  # "Tuning notes"). The game is general-sum, so MAI estimates the
  # opponents' rewards (its default).
  agent_settings = {"reward_scale": 10.0, "discount": 0.5,
                    "initial_temperature": 0.3, "final_temperature": 0.01}
  figure = {"file": "figure_2b_routing.png",
            "caption": "Figure 2b: routing game",
            "ylabel": "return per episode (mean over players)",
            "ylim_bottom": None}
  summary_metrics = (
      ("final_return", None, "spread", "final return"),
      ("max_split_distance", "max_split_distance", "spread",
       "max split distance"),
      ("split_distances", "split_distances", "spread", None),
      ("nash_conv", "nash_conv", "spread", "NashConv (grid)"),
  )

  def __init__(self, game):
    self.game = game
    self.num_players = game.num_players()
    self.horizon = game.horizon
    self.observation_size = game.horizon + 1 + game.regimes.num_regimes
    self.action_size = game.model.num_paths - 1
    self.figure = {**self.figure, "title": (
        f"Routing game ({game.get_parameters()['network']}, "
        f"{self.num_players} players)")}

  def config(self):
    """The split map's logit range determines a run besides the game."""
    return {"split_logit_range": self.SPLIT_LOGIT_RANGE}

  def environment(self, seed, episode):
    """A batch-1 `BatchedRoutingEnv` whose regimes are seeded by
    (seed, episode), so that episode k is the same whether or not a run was
    resumed before it."""
    return BatchedRoutingEnv.from_game(self.game, 1, seed=[seed, episode])

  def to_game_actions(self, box_actions):
    """Box actions (..., N, P - 1) -> splits (..., N, P) (class docstring)."""
    box_actions = np.asarray(box_actions, dtype=np.float64)
    logits = np.concatenate([self.SPLIT_LOGIT_RANGE * box_actions,
                             np.zeros(box_actions.shape[:-1] + (1,))], axis=-1)
    logits -= logits.max(axis=-1, keepdims=True)
    splits = np.exp(logits)
    return splits / splits.sum(axis=-1, keepdims=True)

  def curve(self, episode_returns):
    """The players' mean return of each episode."""
    return np.asarray(episode_returns).mean(axis=1)

  def evaluate(self, policies, samples, grid):
    """Mean splits per regime against the exact equilibrium, and the grid
    NashConv.

    Args:
      policies: one per player, with `actions(observations, deterministic)`
        (box actions (B, P - 1)) and `stochastic_policy`.
      samples: sampled actions per player and state.
      grid: the grid game's Markov states (`grid.states`) and NashConv
        (`grid.nash_conv(profile)`, a profile being per player a
        (num_states, A) array of probabilities over the grid actions).
    """
    states = grid.states
    stages = np.array([state.stage for state in states])
    regimes = np.array([state.regime for state in states])
    observations = np.repeat(step_regime_one_hot(
        stages, regimes, self.horizon, self.game.regimes.num_regimes),
                             samples, axis=0)
    grid_splits = self.game.split_fractions  # (A, P)
    profile, splits = [], []
    for policy in policies:
      box = policy.actions(observations,
                           deterministic=not policy.stochastic_policy)
      player_splits = self.to_game_actions(box[:, None, :])[:, 0]
      nearest = np.argmin(np.sum(
          (player_splits[:, None, :] - grid_splits[None]) ** 2, axis=-1),
                          axis=1)
      counts = np.zeros((len(states), len(grid_splits)))
      np.add.at(counts, (np.repeat(np.arange(len(states)), samples),
                         nearest), 1.0)
      profile.append(counts / samples)
      splits.append(player_splits.reshape(len(states), samples, -1))
    splits = np.stack(splits, axis=2)  # (S, samples, N, P)
    distances, mean_splits, equilibria = [], [], []
    model, scales = self.game.model, self.game.regimes.scales
    for regime, scale in enumerate(scales):
      at_regime = regimes == regime
      if not at_regime.any():
        continue
      mean_split = splits[at_regime].mean(axis=(0, 1))  # (N, P)
      equilibrium = model.equilibrium(scale) / (model.demand[:, None] * scale)
      mean_splits.append(mean_split.tolist())
      equilibria.append(equilibrium.tolist())
      distances.append(float(np.linalg.norm(mean_split - equilibrium)))
    return {
        "mean_splits": mean_splits,
        "equilibrium_splits": equilibria,
        "split_distances": distances,
        "max_split_distance": float(max(distances)),
        "nash_conv": float(grid.nash_conv(profile)),
    }


def parallel_env(**params):
  """This game as a PettingZoo ParallelEnv with box actions (`pettingzoo_env`).

  Takes the game's parameters and `render_mode=None`; pettingzoo, an optional
  dependency (the `test` extra), is imported here, on use.
  """
  from vsg_spiel.games import pettingzoo_env  # pylint: disable=g-import-not-at-top
  return pettingzoo_env.parallel_env(_GAME_TYPE.short_name, **params)


# Register the game with the OpenSpiel library

pyspiel.register_game(_GAME_TYPE, RoutingGame)
