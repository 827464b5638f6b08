"""MFGLib's environments on the tabular mean-field engine.

MFGLib (PyTorch) describes a finite-horizon mean-field game by tensors: a
horizon T (time steps 0..T, an action at each), state and action shapes S and
A, an initial distribution mu0 of shape S, and two functions of the time t and
the state-action mean field L_t (shape S + A, summing to one):

  env.reward(t, L_t) -> r_t,  shape S + A,      r_t[s, a];
  env.prob(t, L_t)   -> P_t,  shape S + S + A,  P_t[s', s, a].

`MFGLibEngine` lays such an environment out as the engine's game graph
(`vsg_spiel.mfg_engine`), states and actions flattened in C order:

  depth 0          a chance node: the initial state s ~ mu0;
  per t = 0..T     decision nodes (t, s), one row each (row t * |S| + s);
                   below them a node (t, s, a) carrying r_t[s, a]: a mean-field
                   node followed by a chance node s' ~ P_t[., s, a] for t < T,
                   a terminal node at t = T.

so that the engine's backward induction gives Q_t(s, a) = r_t[s, a] +
sum_s' P_t[s', s, a] V_{t+1}(s') at the decision nodes, the policy value and
best-response value of MFGLib's `QFn.for_policy` and `QFn.optimal`, and
`nash_conv` its `exploitability_score`: sum_s mu0(s) (max_a Q*_0(s, a) -
sum_a pi_0(a|s) Q^pi_0(s, a)). `mean_field` propagates mu_{t+1}(s') =
sum_{s, a} P_t[s', s, a] L_t[s, a], L_t = mu_t pi_t, as MFGLib's
`mean_field_from_policy` does, calling the environment's functions once per t.

Functions that do not depend on the mean field are read once: when the engine
is built, r_t and P_t are probed, per t, under three different L_t (uniform,
random, concentrated on one pair); where the three results are identical they
are kept, the others are read at every `mean_field` call. MFGLib's own
algorithms call both functions at every step; `benchmarks/mfg.py` says which
of its timings this cache affects. The probe is necessary, not sufficient: a
function that reads L_t only where all three probes agree (e.g. a threshold
no probe crosses) would be cached wrongly. MFGLib's ten environments are
checked against MFGLib per iteration (tests/test_mfglib.py); for an
environment of your own, compare `static_rewards`/`static_transitions` with
what you know of it.

MFGLib's ten example environments are evaluated by numba ports of their
reward and transition formulas (`vsg_spiel.mfglib_native`, read from each
environment's own parameters and checked against MFGLib's functions to
1e-12 by tests/test_mfglib_native.py): a call takes about a microsecond
where MFGLib's torch call takes 10-60 (60 ms for linear_quadratic's
transition). Any other environment's functions are called through torch
(`native_reward`, `native_transition` say which).

P_t is kept compact, as each pair (s, a)'s next states and their
probabilities, (T, |S| |A|, K) arrays with K the most next states of any
pair (1 in building_evacuation, 5 in crowd_motion; |S| where P_t reads the
mean field, filled by each `mean_field` call). The forward pass, the value
functions, NashConv and the KL-regularised best response (MF-BQL's step)
run over them compiled (numba: one call per pass where P is static);
`backward` keeps the engine's contract, a solver's function of Q per t.

MFGLib and PyTorch are optional (the README's "Peer libraries"); they are
imported when an engine is built from an environment.
"""

import dataclasses
from collections.abc import Sequence

import numba
import numpy as np

from vsg_spiel import mfg_engine
from vsg_spiel import mfglib_native

ENVIRONMENT_NAMES = (
    "beach_bar", "building_evacuation", "conservative_treasure_hunting",
    "crowd_motion", "equilibrium_price", "left_right", "linear_quadratic",
    "random_linear", "rock_paper_scissors", "susceptible_infected")
_PROBE_SEED = 20251130


def import_torch():
  """PyTorch, or ImportError saying how to install the peer libraries."""
  # pylint: disable=g-import-not-at-top,unused-import
  try:
    import torch
    import mfglib  # noqa: F401
  except ImportError as error:
    raise ImportError(
        "MFGLib environments need the peer libraries mfglib and torch: "
        "pip install -e '.[peers]' && pip install --no-deps mfglib==0.3.0 "
        "(see the README, 'Peer libraries')"
    ) from error
  # pylint: enable=g-import-not-at-top,unused-import
  return torch


def environment(name: str, **params):
  """`mfglib.env.Environment.<name>(**params)`.

  Raises:
    ValueError: `name` is not one of ENVIRONMENT_NAMES.
    ImportError: mfglib or torch is not installed.
  """
  if name not in ENVIRONMENT_NAMES:
    raise ValueError(f"name must be one of {', '.join(ENVIRONMENT_NAMES)}; "
                     f"got {name!r}")
  import_torch()
  from mfglib.env import Environment  # pylint: disable=g-import-not-at-top
  return getattr(Environment, name)(**params)


@dataclasses.dataclass(frozen=True)
class EnvironmentGame:
  """The `game` of an MFGLibEngine: one population, MFGLib's environment.

  The engine's solvers take a game and an engine; they ask the game only
  for its players (OpenSpiel's policy classes do).
  """
  environment: object

  def num_players(self) -> int:
    return 1

  def num_distinct_actions(self) -> int:
    return int(np.prod(self.environment.A))


class MFGLibEngine(mfg_engine.MeanFieldEngine):
  """A MeanFieldEngine whose game graph is an MFGLib environment.

    engine = MFGLibEngine(mfglib.env.Environment.crowd_motion())
    solver = mf_bayesian_q.MFBayesianQLearning(engine.game, engine=engine)
    solver.iteration(); engine.nash_conv(solver.mean_field)
    engine.policy_tensor(solver.mean_field.policy)  # MFGLib's pi

  Policies are arrays (num_rows, num_actions), row t * num_states + s: the
  same numbers as MFGLib's policy tensors (T + 1, *S, *A) reshaped
  (`policy_table`, `policy_tensor`). `backward`, `policy_value`,
  `best_response_value` and `nash_conv` give the engine's numbers, over
  the compact transitions.

  Attributes:
    environment: the MFGLib environment.
    game: an EnvironmentGame, to hand to the engine's solvers.
    num_states, num_actions, horizon: |S|, |A| (flattened) and T.
    static_rewards: per t = 0..T, whether r_t was found not to depend on L_t
      (then it is read once).
    static_transitions: per t = 0..T - 1, the same for P_t.
    native_reward, native_transition: whether r_t and P_t are computed by
      the numba ports of MFGLib's examples (`vsg_spiel.mfglib_native`)
      rather than by the environment's torch functions.
  """

  def __init__(self, env):  # pylint: disable=super-init-not-called
    """Lays out `env`'s graph and probes its transitions.

    Args:
      env: an `mfglib.env.Environment`.

    The engine reads the environment here, once: mu0, T, the functions'
    values where they ignore the mean field, and the numba ports'
    parameters. Build a new engine after changing the environment.

    Raises:
      ValueError: `env` is not an MFGLib environment (it lacks T, S, A, mu0,
        reward or prob), its T is not an integer >= 0, or its mu0 is not a
        tensor of shape S holding a probability distribution.
      ImportError: torch is not installed.
    """
    missing = [name for name in ("T", "S", "A", "mu0", "reward", "prob")
               if not hasattr(env, name)]
    if missing:
      raise ValueError("env must be an mfglib.env.Environment; "
                       f"{type(env).__name__} has no {', '.join(missing)}")
    self._torch = import_torch()
    if (isinstance(env.T, bool) or not isinstance(env.T, (int, np.integer))
        or env.T < 0):
      raise ValueError(f"env.T must be an integer >= 0; got {env.T!r}")
    for name in ("S", "A"):
      shape = getattr(env, name)
      if not (isinstance(shape, tuple) and shape and
              all(isinstance(n, int) and n > 0 for n in shape)):
        raise ValueError(f"env.{name} must be a non-empty tuple of positive "
                         f"integers; got {shape!r}")
    if not (isinstance(env.mu0, self._torch.Tensor) and
            env.mu0.is_floating_point() and
            tuple(env.mu0.shape) == tuple(env.S)):
      raise ValueError(f"env.mu0 must be a floating-point torch tensor of "
                       f"shape env.S = {tuple(env.S)}; got "
                       f"{type(env.mu0).__name__} "
                       f"{getattr(env.mu0, 'dtype', '')} "
                       f"{tuple(getattr(env.mu0, 'shape', ()))}")
    self._mu0 = env.mu0.detach().cpu().numpy().astype(float).ravel()
    if not (np.all(self._mu0 >= 0) and abs(self._mu0.sum() - 1.0) <= 1e-6):
      raise ValueError("env.mu0 must be a probability distribution "
                       f"(entries >= 0, sum 1); its sum is {self._mu0.sum()}")
    self.environment = env
    self.game = EnvironmentGame(env)
    self.horizon = int(env.T)
    self.num_states = int(np.prod(env.S))
    self.num_actions = int(np.prod(env.A))
    self.flow_dependent = False
    self.shared_registration = False
    self._dtype = env.mu0.dtype
    self._state_action_shape = tuple(env.S) + tuple(env.A)
    self._steps_shape = (self.horizon + 1, self.num_states, self.num_actions)
    native_reward, native_transition = mfglib_native.native_functions(env)
    # A port is used where it reproduces the environment's own function
    # under the uniform mean field at every t (it does not, e.g., for an
    # example's function built for other sizes than env's).
    self._native_reward = self._agreeing(
        native_reward, self._torch_reward, (self.horizon + 1,), ())
    self._native_transition = self._agreeing(
        native_transition, self._torch_transition_matrix, (self.horizon,),
        (self.num_states,))
    self.native_reward = self._native_reward is not None
    self.native_transition = self._native_transition is not None
    # (t, L_t, out) -> out, as `mean_field` calls them.
    self._reward_into = self._native_reward or self._torch_reward
    self._transition_into = (self._native_transition or
                             self._torch_transition_matrix)
    # Node ids: the root, then decision nodes (t, s), then (t, s, a) nodes
    # carrying rewards (mean field for t < T, terminal at T), then chance
    # nodes (t, s, a) for t < T.
    num_steps, pairs = self.horizon + 1, self.num_states * self.num_actions
    self._decision_base = 1
    self._reward_base = 1 + num_steps * self.num_states
    self._chance_base = self._reward_base + num_steps * pairs
    self._num_nodes = self._chance_base + self.horizon * pairs
    self._children = (self._reward_base +
                      np.arange(num_steps * pairs).reshape(
                          num_steps * self.num_states, self.num_actions))
    self._legal_rows = np.ones((num_steps * self.num_states,
                                self.num_actions), bool)
    self._rows = np.arange(self.num_rows)
    rewards = [self._probe(self.reward, t) for t in range(num_steps)]
    transitions = [self._probe(self.transition_matrix, t)
                   for t in range(self.horizon)]
    self.static_rewards = tuple(reward is not None for reward in rewards)
    self.static_transitions = tuple(matrix is not None
                                    for matrix in transitions)
    # Per t that reads the mean field: t and the slice of its (t, s, a)
    # nodes, where the flow holds L_t and the rewards r_t.
    self._dynamic_rewards = [(t, self._pairs_of(t))
                             for t, reward in enumerate(rewards)
                             if reward is None]
    self._dynamic_transitions = [(t, self._pairs_of(t))
                                 for t, matrix in enumerate(transitions)
                                 if matrix is None]
    # Rewards at every node, the static r_t filled in.
    self._reward_template = np.zeros(self._num_nodes + 1)
    for t, reward in enumerate(rewards):
      if reward is not None:
        start = self._reward_base + t * pairs
        self._reward_template[start:start + pairs] = reward
    # P_t compact: per pair (s, a), its next states (ascending) and their
    # probabilities, padded with probability 0; every s' where P_t reads
    # the mean field, its probabilities NaN until a mean_field call.
    width = (self.num_states if self._dynamic_transitions else
             max([_nonzero_first(matrix)[0].shape[1]
                  for matrix in transitions if matrix is not None],
                 default=1))
    self._successors = np.zeros((self.horizon, pairs, width), np.int64)
    self._transition_template = np.zeros((self.horizon, pairs, width))
    for t, matrix in enumerate(transitions):
      if matrix is None:
        self._successors[t] = np.arange(width)
        self._transition_template[t] = np.nan
      else:
        order, kept = _nonzero_first(matrix)
        self._successors[t, :, :order.shape[1]] = np.where(kept, order, 0)
        self._transition_template[t, :, :order.shape[1]] = np.where(
            kept, np.take_along_axis(matrix, order, axis=1), 0.0)
    self._structure_template = self._structure(self._layers(transitions))
    # Per t, last to first: t and the slices of its decision and (t, s, a)
    # nodes.
    self._backward_steps = [
        (t, slice(self._decision_base + t * self.num_states,
                  self._decision_base + (t + 1) * self.num_states),
         slice(self._reward_base + t * pairs,
               self._reward_base + (t + 1) * pairs))
        for t in reversed(range(num_steps))]

  def _pairs_of(self, t: int) -> slice:
    """The (t, s, a) nodes of time step t."""
    pairs = self.num_states * self.num_actions
    return slice(self._reward_base + t * pairs,
                 self._reward_base + (t + 1) * pairs)

  # --------------------------------------------------------------- sizes

  @property
  def num_nodes(self) -> int:
    return self._num_nodes

  @property
  def num_rows(self) -> int:
    return (self.horizon + 1) * self.num_states

  @property
  def legal(self) -> np.ndarray:
    return self._legal_rows

  @property
  def children_by_action(self) -> np.ndarray:
    return self._children

  def uniform_policy(self, rows: np.ndarray) -> np.ndarray:
    return np.full((len(rows), self.num_actions), 1.0 / self.num_actions)

  def policy_function(self, policy):
    raise NotImplementedError(
        "an MFGLib environment has no OpenSpiel states; pass policy arrays "
        "(policy_table converts MFGLib's policy tensors)")

  def table_policy(self, table: np.ndarray, fallback=None):
    """MFGLib's policy tensor (T + 1, *S, *A) of a table, a copy.

    What the engine's solvers' `policy()` return on an MFGLib
    environment (every row is reachable: no fallback is needed).
    """
    del fallback
    return self.policy_tensor(np.array(table))

  def distribution(self, mean_field):
    raise NotImplementedError(
        "an MFGLib environment has no OpenSpiel states; "
        "state_action_mean_field(mean_field) gives MFGLib's L")

  # ----------------------------------------------------- MFGLib's tensors

  def policy_table(self, pi) -> np.ndarray:
    """MFGLib's policy tensor (T + 1, *S, *A) as (num_rows, num_actions)."""
    table = np.asarray(self._torch.as_tensor(pi).detach().cpu().numpy(),
                       float)
    expected = (self.horizon + 1,) + tuple(self.environment.S) + tuple(
        self.environment.A)
    if table.shape != expected:
      raise ValueError(f"pi must have shape {expected}, got {table.shape}")
    return table.reshape(self.num_rows, self.num_actions)

  def policy_tensor(self, table: np.ndarray):
    """A (num_rows, num_actions) policy as MFGLib's tensor (T + 1, *S, *A)."""
    shape = (self.horizon + 1,) + tuple(self.environment.S) + tuple(
        self.environment.A)
    if np.shape(table) not in ((self.num_rows, self.num_actions), shape):
      raise ValueError(
          f"table must have shape {(self.num_rows, self.num_actions)} "
          f"(rows, actions) or {shape}; got {np.shape(table)}")
    return self._torch.as_tensor(np.reshape(table, shape), dtype=self._dtype)

  def state_action_mean_field(self, mean_field: mfg_engine.MeanField
                              ) -> np.ndarray:
    """MFGLib's mean field L, (T + 1, *S, *A), of an engine mean field."""
    pairs = (self.horizon + 1) * self.num_states * self.num_actions
    flow = self._own(mean_field).flow[self._reward_base:
                                      self._reward_base + pairs]
    return flow.reshape((self.horizon + 1,) + tuple(self.environment.S) +
                        tuple(self.environment.A))

  def _call(self, function, t: int, state_action: np.ndarray, shape):
    """`function(t, L_t)` (env.reward or env.prob), a numpy view of its
    tensor (L_t (|S| * |A|,) float), which must have `shape`."""
    argument = self._torch.from_numpy(state_action.reshape(
        self._state_action_shape))
    if argument.dtype != self._dtype:
      argument = argument.to(self._dtype)
    result = function(t, argument)
    if tuple(getattr(result, "shape", ())) != shape:
      name = "env.reward" if function == self.environment.reward else (
          "env.prob")
      raise ValueError(f"{name}(t={t}, L_t) must return a tensor of shape "
                       f"{shape}; got {type(result).__name__} "
                       f"{tuple(getattr(result, 'shape', ()))}")
    return result.detach().cpu().numpy()

  def reward(self, t: int, state_action: np.ndarray,
             out: np.ndarray | None = None) -> np.ndarray:
    """r_t(L_t) as (|S| * |A|,), into `out` (a new array if None).

    Args:
      t: the time step, 0..T.
      state_action: (|S| * |A|,) L_t, states then actions in C order.
      out: (|S| * |A|,) float64 or None.

    By the numba port (`vsg_spiel.mfglib_native`) where `native_reward`,
    else by the environment's own (torch) function.
    """
    pairs = self.num_states * self.num_actions
    out = np.empty(pairs) if out is None else out
    self._check_call(t, self.horizon, state_action, out, (pairs,))
    return self._reward_into(t, state_action, out)

  def transition_matrix(self, t: int, state_action: np.ndarray,
                        out: np.ndarray | None = None) -> np.ndarray:
    """P_t(L_t) as (|S| * |A|, |S|): row (s, a), column s', into `out` (a
    new array if None); by the numba port where `native_transition`, as
    `reward`."""
    shape = (self.num_states * self.num_actions, self.num_states)
    out = np.empty(shape) if out is None else out
    self._check_call(t, self.horizon - 1, state_action, out, shape)
    return self._transition_into(t, state_action, out)

  def _check_call(self, t, last, state_action, out, shape):
    """ValueError unless 0 <= t <= last, L_t is (|S| |A|,) and `out` a
    C-contiguous float64 array of `shape` (the ports do not check bounds)."""
    if not (isinstance(t, (int, np.integer)) and 0 <= t <= last):
      raise ValueError(f"t must be an integer in 0..{last}; got {t!r}")
    for name, array, expected in (("state_action", state_action, shape[:1]),
                                  ("out", out, shape)):
      if not (isinstance(array, np.ndarray) and array.shape == expected and
              array.dtype == np.float64 and array.flags.c_contiguous):
        raise ValueError(
            f"{name} must be a C-contiguous float64 array of shape "
            f"{expected}; got {type(array).__name__} "
            f"{getattr(array, 'dtype', '')} {getattr(array, 'shape', '')}")

  def _torch_reward(self, t, state_action, out):
    """`reward` by the environment's own function."""
    out.reshape(self._state_action_shape)[...] = self._call(
        self.environment.reward, t, state_action, self._state_action_shape)
    return out

  def _torch_transition_matrix(self, t, state_action, out):
    """`transition_matrix` by the environment's own function."""
    out[...] = self._call(
        self.environment.prob, t, state_action,
        tuple(self.environment.S) + self._state_action_shape).reshape(
            self.num_states, -1).T
    return out

  def _agreeing(self, port, function, steps, row_shape):
    """`port` if it gives `function`'s numbers (to 1e-5 relative, float32
    environments' rounding) under the uniform mean field at every t of
    range(*steps), every entry written, else None. Outputs are (|S| |A|,)
    + row_shape."""
    if port is None:
      return None
    pairs = self.num_states * self.num_actions
    uniform = np.full(pairs, 1.0 / pairs)
    for t in range(*steps):
      # NaN where the port writes nothing (a port of an example built for
      # fewer states than env's).
      ours = port(t, uniform, np.full((pairs,) + row_shape, np.nan))
      theirs = function(t, uniform, np.zeros((pairs,) + row_shape))
      if not np.allclose(ours, theirs, rtol=1e-5, atol=1e-8, equal_nan=True):
        return None
    return port

  def _probe(self, function, t: int) -> np.ndarray | None:
    """`function(t, L)` (`reward` or `transition_matrix`) if three
    different L give the same array, else None.

    Probes: the uniform L, a random L and one concentrated on a single
    state-action pair.
    """
    pairs = self.num_states * self.num_actions
    uniform = np.full(pairs, 1.0 / pairs)
    random = np.random.default_rng(_PROBE_SEED).uniform(0.05, 1.0, pairs)
    concentrated = np.zeros(pairs)
    concentrated[pairs // 2] = 1.0
    results = [function(t, probe / probe.sum())
               for probe in (uniform, random, concentrated)]
    if any(not np.array_equal(results[0], other) for other in results[1:]):
      return None
    return results[0]

  # ------------------------------------------------------------- layers

  def _layer(self, ids, **kinds) -> mfg_engine.Layer:
    """A layer of `ids`; `kinds` gives the arrays of its (one) node kind."""
    width = self.num_actions
    empty = np.zeros(0, np.int64)
    fields = dict(
        ids=ids, decision_ids=empty, decision_rows=empty,
        decision_children=np.zeros((0, width), np.int64),
        decision_next=np.zeros((0, width), np.int64),
        legal=np.zeros((0, width), bool), chance_ids=empty,
        chance_children=np.zeros((0, 1), np.int64),
        chance_next=np.zeros((0, 1), np.int64),
        chance_probabilities=np.zeros((0, 1)), mean_field_ids=empty,
        mean_field_children=empty, mean_field_next=empty, terminal_ids=empty)
    fields.update(kinds)
    return mfg_engine.Layer(**fields)

  def _chance_layer(self, ids, probabilities, next_ids) -> mfg_engine.Layer:
    """Chance nodes `ids` with outcome probabilities (len(ids), len(next_ids)).

    Stored sparsely: each row's nonzero outcomes first, padded with the
    sentinel (node num_nodes, next-layer position len(next_ids)).
    """
    order, kept = _nonzero_first(probabilities)
    return self._layer(
        ids, chance_ids=ids,
        chance_children=np.where(kept, next_ids[order], self._num_nodes),
        chance_next=np.where(kept, order, len(next_ids)),
        chance_probabilities=np.where(
            kept, np.take_along_axis(probabilities, order, axis=1), 0.0))

  def _layers(self, transitions: Sequence[np.ndarray | None]):
    """The engine's layers, given P_t as (|S| * |A|, |S|) for t < T.

    Where P_t is None (it reads the mean field) the chance layer has every
    s' as an outcome, with probabilities NaN: this engine reads P_t from the
    mean field (`EnvironmentMeanField`), never from these layers.
    """
    num_states, pairs = self.num_states, self.num_states * self.num_actions
    layers = [self._chance_layer(np.zeros(1, np.int64), self._mu0[None, :],
                                 self._decision_base + np.arange(num_states))]
    for t in range(self.horizon + 1):
      rows = t * num_states + np.arange(num_states)
      decision_ids = self._decision_base + rows
      children = self._children[rows]
      layers.append(self._layer(
          decision_ids, decision_ids=decision_ids, decision_rows=rows,
          decision_children=children,
          decision_next=np.arange(pairs).reshape(children.shape),
          legal=self._legal_rows[rows]))
      reward_ids = self._reward_base + t * pairs + np.arange(pairs)
      if t == self.horizon:
        layers.append(self._layer(reward_ids, terminal_ids=reward_ids))
        break
      chance_ids = self._chance_base + t * pairs + np.arange(pairs)
      layers.append(self._layer(reward_ids, mean_field_ids=reward_ids,
                                mean_field_children=chance_ids,
                                mean_field_next=np.arange(pairs)))
      if transitions[t] is None:
        layer = self._chance_layer(chance_ids, np.ones((pairs, num_states)),
                                   decision_ids + num_states)
        layers.append(dataclasses.replace(
            layer, chance_probabilities=np.full((pairs, num_states),
                                                np.nan)))
      else:
        layers.append(self._chance_layer(chance_ids, transitions[t],
                                         decision_ids + num_states))
    return tuple(layers)

  def _structure(self, layers):
    """The engine's compiled graph: every node reachable, no replay."""
    # pylint: disable-next=protected-access
    return mfg_engine._Structure(
        layers=layers,
        root_ids=np.zeros(1, np.int64),
        reachable_nodes=np.arange(self._num_nodes),
        reachable_rows=np.arange(self.num_rows),
        num_nodes=self._num_nodes,
        # No OpenSpiel depth-first walk to reproduce: all ranks equal.
        dfs_rank=np.full(self._num_nodes + 1, self._num_nodes, np.int64),
        replay=None,
        support_groups=())

  # ---------------------------------------------------- backward induction

  def backward(self, mean_field, decision_value, values=None):
    """The engine's backward induction, one step per t (the same values,
    up to rounding).

    Q_t(s, a) = r_t[s, a] + (P_t V_{t+1})[s, a], one compiled call per t
    instead of the engine's gathers per layer; `decision_value` gets the
    decision layer of t and Q_t (a new array), as `MeanFieldEngine.backward`
    gives.
    """
    layers = self._own(mean_field).structure.layers
    values = np.zeros(self._num_nodes + 1) if values is None else values
    for t, decisions, q_values in self._backward_steps:
      _q_step(t, self.num_states, mean_field.rewards, self._successors,
              mean_field.transition_probabilities, values)
      values[decisions] = decision_value(
          layers[1 + 3 * t],
          values[q_values].reshape(self.num_states, self.num_actions).copy())
    values[0] = self._mu0 @ values[1:1 + self.num_states]
    return values

  def policy_value(self, mean_field) -> np.ndarray:
    """Values of the mean field's own policy at every node (one compiled
    pass; `MeanFieldEngine.policy_value`'s numbers up to rounding)."""
    return self._values(mean_field, best_response=False)

  def best_response_value(self, mean_field) -> np.ndarray:
    """Best-response values against the mean field's flow at every node
    (one compiled pass; `MeanFieldEngine.best_response_value`'s numbers up
    to rounding)."""
    return self._values(mean_field, best_response=True)

  def kl_regularised_best_response(self, mean_field, log_prior, temperature,
                                   response=None):
    """`MeanFieldEngine.kl_regularised_best_response` in one compiled pass
    (`logit.kl_regularised_response`'s operations: the same log pi and V;
    pi as the normalised exponentials, not exp(log pi))."""
    log_response = np.empty((self.num_rows, self.num_actions))
    values = np.empty(self._num_nodes + 1)
    if response is None:
      response = np.empty_like(log_response)
    _kl_regularised_values(
        self._own(mean_field).rewards, self._steps(log_prior),
        float(temperature),
        self._successors, mean_field.transition_probabilities, self._mu0,
        self._steps(log_response), self._steps(response), values)
    return log_response, values

  def nash_conv(self, mean_field) -> float:
    """`MeanFieldEngine.nash_conv` in one compiled call: best-response
    minus policy value at the root, mu0-weighted."""
    return _nash_conv(self._own(mean_field).rewards,
                      self._steps(mean_field.policy),
                      self._successors, mean_field.transition_probabilities,
                      self._mu0, np.empty(self._num_nodes + 1))

  def _values(self, mean_field, best_response):
    values = np.empty(self._num_nodes + 1)
    _values(self._own(mean_field).rewards, self._steps(mean_field.policy),
            self._successors, mean_field.transition_probabilities,
            self._mu0, best_response, values)
    return values

  def _own(self, mean_field):
    """`mean_field` if this engine's `mean_field` made it, else ValueError."""
    if getattr(mean_field, "structure", None) is not self._structure_template:
      raise ValueError("mean_field must be made by this engine's "
                       "mean_field(); got one of another engine or game")
    return mean_field

  def _steps(self, table):
    """A (num_rows, num_actions) table as (T + 1, |S|, |A|), C-ordered."""
    return np.ascontiguousarray(table, float).reshape(self._steps_shape)

  # --------------------------------------------------------- mean field

  def mean_field(self, policy: mfg_engine.PolicyFunction
                 ) -> "EnvironmentMeanField":
    """The flow of `policy` and the rewards under it.

    Forward: L_t = mu_t pi_t, mu_{t+1} = sum_{s, a} P_t(L_t)[., s, a] L_t,
    mu_0 = mu0; rewards r_t(L_t). One env.reward call per t and one
    env.prob call per t < T, except where they are static; the steps
    between env.prob calls are one compiled call.

    Args:
      policy: a PolicyFunction over rows (e.g. `uniform_policy`, or
        `lambda rows: table[rows]`).

    Returns:
      An EnvironmentMeanField: flow 1 at the root, mu_t(s) at decision
      nodes, L_t(s, a) at the (t, s, a) nodes; rewards r_t[s, a] at the
      (t, s, a) nodes; P_t under the flow.
    """
    table = np.ascontiguousarray(policy(self._rows), float)
    if table.shape != self._legal_rows.shape:
      raise ValueError(f"policy(rows) must return (num_rows, num_actions) = "
                       f"{self._legal_rows.shape}; got {table.shape}")
    steps = table.reshape(self._steps_shape)
    flow = np.empty(self._num_nodes + 1)
    probabilities = self._transition_template
    if self._dynamic_transitions:
      probabilities = probabilities.copy()
    start = 0
    for t, pairs in self._dynamic_transitions:
      _propagate(steps, self._successors, probabilities, self._mu0, start, t,
                 flow)
      self._transition_into(t, flow[pairs], probabilities[t])
      start = t
    _propagate(steps, self._successors, probabilities, self._mu0, start,
               self.horizon, flow)
    rewards = self._reward_template.copy()
    for t, pairs in self._dynamic_rewards:
      self._reward_into(t, flow[pairs], rewards[pairs])
    return EnvironmentMeanField(self._structure_template, table, flow,
                                rewards, probabilities)


@dataclasses.dataclass(frozen=True)
class EnvironmentMeanField(mfg_engine.MeanField):
  """A MeanField of an MFGLibEngine, with the transitions under its flow.

  Attributes:
    transition_probabilities: (T, |S| * |A|, K) P_t(s' | s, a) of the
      pair's k-th next state (the engine's compact form).
  """
  transition_probabilities: np.ndarray


def _nonzero_first(probabilities):
  """Per row of `probabilities` (n, m), its columns with nonzero entries
  first, ascending: (order, kept), (n, k) with k the most nonzero entries
  of a row (at least 1), kept False at the padding. NaN counts as
  nonzero."""
  nonzero = ~(probabilities == 0)
  width = max(int(nonzero.sum(axis=1).max(initial=0)), 1)
  order = np.argsort(~nonzero, axis=1, kind="stable")[:, :width]
  return order, np.take_along_axis(nonzero, order, axis=1)


@numba.njit(cache=True)
def _propagate(steps, successors, probabilities, mu0, start, stop, flow):
  """The forward pass from t = start (mu_start in `flow`) to t = stop.

  At start 0: flow 1 at the root, 0 at the sentinel, mu_0 = mu0. For t =
  start..stop: L_t(s, a) = mu_t(s) pi_t(a|s) at the (t, s, a) nodes and,
  for t < T, their chance nodes; for t < stop: mu_{t+1}(s') = sum_{s, a}
  P_t(s'|s, a) L_t(s, a) at the decision nodes of t + 1, summed over the
  pairs in order (as a CSR product).

  Args:
    steps: (T + 1, |S|, |A|) the policy.
    successors, probabilities: (T, |S| |A|, K) the compact P.
    mu0: (|S|,).
    start, stop: 0 <= start <= stop <= T.
    flow: (num_nodes + 1,) the engine's node flows, in and out.
  """
  num_steps, num_states, num_actions = steps.shape
  horizon, pairs, width = successors.shape
  reward_base = 1 + num_steps * num_states
  chance_base = reward_base + num_steps * pairs
  if start == 0:
    flow[0], flow[-1] = 1.0, 0.0
    flow[1:1 + num_states] = mu0
  for t in range(start, stop + 1):
    state_base = 1 + t * num_states
    pair_base = reward_base + t * pairs
    for state in range(num_states):
      for action in range(num_actions):
        weight = flow[state_base + state] * steps[t, state, action]
        flow[pair_base + state * num_actions + action] = weight
        if t < horizon:
          flow[chance_base + t * pairs + state * num_actions + action] = (
              weight)
    if t < stop:
      next_base = state_base + num_states
      flow[next_base:next_base + num_states] = 0.0
      for pair in range(pairs):
        weight = flow[pair_base + pair]
        for k in range(width):
          probability = probabilities[t, pair, k]
          if probability != 0.0:
            flow[next_base + successors[t, pair, k]] += probability * weight


@numba.njit(cache=True)
def _q_step(t, num_states, rewards, successors, probabilities, values):
  """Q_t(s, a) = r_t[s, a] + sum_s' P_t(s'|s, a) V_{t+1}(s') into `values`
  at the (t, s, a) nodes (the sum at the chance nodes (t, s, a) for t < T),
  V_{t+1} read from the decision nodes of t + 1.

  Args:
    t: the time step, 0..T.
    num_states: |S|.
    rewards: (num_nodes + 1,) r at the (t, s, a) nodes.
    successors, probabilities: (T, |S| |A|, K) the compact P.
    values: (num_nodes + 1,) the engine's node values, in and out.
  """
  horizon, pairs, width = successors.shape
  reward_start = 1 + (horizon + 1) * num_states + t * pairs
  chance_start = 1 + (horizon + 1) * (num_states + pairs) + t * pairs
  next_start = 1 + (t + 1) * num_states
  for pair in range(pairs):
    q_value = rewards[reward_start + pair]
    if t < horizon:
      expectation = 0.0
      for k in range(width):
        probability = probabilities[t, pair, k]
        if probability != 0.0:
          expectation += (probability *
                          values[next_start + successors[t, pair, k]])
      values[chance_start + pair] = expectation
      q_value += expectation
    values[reward_start + pair] = q_value


@numba.njit(cache=True)
def _values(rewards, steps, successors, probabilities, mu0, best_response,
            values):
  """Backward induction over an MFGLibEngine's nodes, into `values`.

  Q_t at the (t, s, a) nodes and the chance nodes (`_q_step`), V_t(s) =
  max_a Q_t(s, a) (`best_response`) or sum_a pi_t(a|s) Q_t(s, a) at the
  decision nodes, sum_s mu0(s) V_0(s) at the root, 0 at the sentinel.

  Args:
    rewards: (num_nodes + 1,) r at the (t, s, a) nodes.
    steps: (T + 1, |S|, |A|) the policy.
    successors, probabilities: (T, |S| |A|, K) the compact P.
    mu0: (|S|,).
    best_response: max (True) or the policy's expectation (False).
    values: (num_nodes + 1,) the output.
  """
  num_steps, num_states, num_actions = steps.shape
  pairs = num_states * num_actions
  reward_base = 1 + num_steps * num_states
  for t in range(num_steps - 1, -1, -1):
    _q_step(t, num_states, rewards, successors, probabilities, values)
    for state in range(num_states):
      value = -np.inf if best_response else 0.0
      for action in range(num_actions):
        q_value = values[reward_base + t * pairs + state * num_actions +
                         action]
        if best_response:
          value = max(value, q_value)
        else:
          value += steps[t, state, action] * q_value
      values[1 + t * num_states + state] = value
  _root_value(mu0, values)


@numba.njit(cache=True)
def _nash_conv(rewards, steps, successors, probabilities, mu0, values):
  """V*(root) - V^pi(root) (`_values` twice, `values` a scratch array)."""
  _values(rewards, steps, successors, probabilities, mu0, True, values)
  best_response = values[0]
  _values(rewards, steps, successors, probabilities, mu0, False, values)
  return best_response - values[0]


@numba.njit(cache=True)
def _kl_regularised_values(rewards, log_prior, temperature, successors,
                           probabilities, mu0, log_response, response,
                           values):
  """Backward induction with the KL-regularised response at the decision
  nodes, into `log_response`, `response` and `values`.

  Q_t as in `_values`; per state, `logit._kl_response_rows`'s operations in
  its order (every action legal): top = max_a Q_t(s, a), logits log
  pibar_t(a|s) + (Q_t(s, a) - top) / alpha, log pi_t = logits - log Z',
  V_t(s) = alpha log Z' + top, Z' = sum_a exp(logits - max logits), and
  pi_t = exp(logits - max logits) / Z' (one exp per action).

  Args:
    rewards: (num_nodes + 1,) r at the (t, s, a) nodes.
    log_prior: (T + 1, |S|, |A|) log pibar.
    temperature: alpha > 0.
    successors, probabilities: (T, |S| |A|, K) the compact P.
    mu0: (|S|,).
    log_response: (T + 1, |S|, |A|) the output log pi.
    response: (T + 1, |S|, |A|) the output pi.
    values: (num_nodes + 1,) the output values.
  """
  num_steps, num_states, num_actions = log_prior.shape
  pairs = num_states * num_actions
  reward_base = 1 + num_steps * num_states
  for t in range(num_steps - 1, -1, -1):
    _q_step(t, num_states, rewards, successors, probabilities, values)
    for state in range(num_states):
      q_values = values[reward_base + t * pairs + state * num_actions:
                        reward_base + t * pairs + (state + 1) * num_actions]
      prior, logits = log_prior[t, state], log_response[t, state]
      weights = response[t, state]
      top = -np.inf
      for action in range(num_actions):
        if prior[action] > -np.inf and q_values[action] > top:
          top = q_values[action]
      logit_top = -np.inf
      for action in range(num_actions):
        logit = -np.inf
        if prior[action] > -np.inf:
          logit = prior[action] + (q_values[action] - top) / temperature
          logit_top = max(logit_top, logit)
        logits[action] = logit
      total = 0.0
      for action in range(num_actions):
        weights[action] = np.exp(logits[action] - logit_top)
        total += weights[action]
      log_normaliser = logit_top + np.log(total)
      values[1 + t * num_states + state] = (temperature * log_normaliser +
                                            top)
      for action in range(num_actions):
        logits[action] -= log_normaliser
        weights[action] /= total
  _root_value(mu0, values)


@numba.njit(cache=True)
def _root_value(mu0, values):
  """values[0] = sum_s mu0(s) V_0(s), the sentinel values[-1] = 0."""
  root = 0.0
  for state in range(len(mu0)):
    root += mu0[state] * values[1 + state]
  values[0] = root
  values[-1] = 0.0
