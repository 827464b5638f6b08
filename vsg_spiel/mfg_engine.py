"""A tabular engine for OpenSpiel's mean-field games.

OpenSpiel's MFG tools (`open_spiel/python/mfg/algorithms`: DistributionPolicy,
PolicyValue, BestResponse, NashConv, MirrorDescent) walk the game tree with
`state.child()` at every iteration and key every state by
`state.observation_string(DEFAULT_PLAYER_ID)`. This engine walks the game once,
gives every such string a node, and then runs

  * forward propagation of the mean field (the state distribution of a
    policy, as `DistributionPolicy` computes it),
  * backward induction with any operator at decision nodes (policy value,
    best response, the soft Bellman step of MF-BQL),
  * NashConv (best-response value minus policy value, summed over the
    populations' initial states, as `nash_conv.NashConv` computes it),

with numpy over arrays, one layer (depth of the game tree) at a time. On
small graphs (at most `_DENSE_SOLVE_NODES` reachable nodes, e.g. the routing
games, whose layers hold one to three nodes) the two linear recursions, the
flow and the policy value, are one triangular solve each with the transition
matrix of the policy instead.

Nodes and arrays. A node is a state string; its kind is decision, chance,
mean-field or terminal. Decision nodes also have a row: policies are arrays
(num_rows, num_distinct_actions) indexed by row and action id, zero at
illegal actions. Value and flow vectors have one entry per node plus a last
entry that stays 0 (the "no child" sentinel).

Which states OpenSpiel evaluates. OpenSpiel's value walks are depth-first and
cache by string: a string's value is computed from the first state with that
string met in depth-first order (legal actions and chance outcomes in the
game's order, populations in `new_initial_states()` order). Some games keep
in the state more than the string shows (the last action enters the reward
in crowd modelling, 1D and 2D, periodic aversion, linear quadratic and
garnet), so the engine replays exactly that depth-first tree to read rewards.
Transitions must depend only on the string and the registered distribution.
(OpenSpiel's MirrorDescent also reads, during that walk, the cumulative
values it is updating; `vsg_spiel.algorithms.mirror_descent` reproduces that
too, on the depth-first ranks `MeanField.structure.dfs_rank`.)

Rewards that depend on the distribution. A mean-field node registers the
distribution of its `distribution_support()` strings with
`update_distribution`, and the rewards of the states below it (up to the next
mean-field node) are read from that registration. For a new distribution the
engine recomputes them in one of two ways, chosen when it is built:
  * shared registration (the Python MFGs): the engine keeps the depth-first
    representative states and registers each support group's distribution as
    one `SharedDistribution` list, which the game stores by reference and
    carries into children. A new distribution is one in-place list update per
    support group and one `rewards()` call per non-chance node below a
    mean-field node: no clones, no child states. Used only if, for a second
    distribution, it reproduces a full replay's rewards (to 1e-12).
  * replay (the C++ MFGs, and any game that copies or preprocesses the
    registered distribution): below the mean-field nodes, one `child()` per
    edge of the depth-first tree, one `clone()` and `update_distribution()`
    per mean-field node and one `rewards()` per non-chance node, batched by
    depth; the states above every mean-field node, which read no
    distribution, and their rewards are made once.

Flow-dependent structure. In the dynamic routing games the waiting time that
`update_distribution` assigns, and with it the child's string, depends on the
distribution (and in `mean_field_lin_quad` with `mean_revert != 0` the
transitions do). The engine explores the game under three probe policies when
it is built; if the structure differs (or a later replay meets a string it
did not expect) it re-explores the game for new policies, as OpenSpiel
does (reusing the compiled arrays when the structure comes out the same),
keeping node and row numbers stable so that policies carry over. When only
the children of mean-field nodes differed between the probes (the routing
games), a new policy is first propagated on the last structure and replayed,
the replay checking every such child's string; the game is re-explored only
when one differs.
"""

import collections
import dataclasses
import functools
from typing import Optional
from collections.abc import Callable

import numpy as np
import pyspiel
from scipy.linalg import lapack

from open_spiel.python import policy as policy_lib
from open_spiel.python.mfg import tabular_distribution
import open_spiel.python.mfg.games  # noqa: F401  (registers python_mfg_*)

from vsg_spiel import logit

DECISION, CHANCE, MEAN_FIELD, TERMINAL = range(4)
_KIND_OF_TYPE = {
    pyspiel.StateType.DECISION: DECISION,
    pyspiel.StateType.CHANCE: CHANCE,
    pyspiel.StateType.MEAN_FIELD: MEAN_FIELD,
    pyspiel.StateType.TERMINAL: TERMINAL,
}
_DEFAULT_PLAYER = pyspiel.PlayerId.DEFAULT_PLAYER_ID
_PROBE_SEED = 20250307
# Structures with at most this many reachable nodes propagate flows and
# policy values by one dense triangular solve rather than layer by layer
# (on small games, such as the routing games, numpy's per-call overhead on
# each tiny layer is most of the time).
_DENSE_SOLVE_NODES = 256

# A policy maps decision rows (int array) to action probabilities
# (len(rows), num_distinct_actions), zero at illegal actions.
PolicyFunction = Callable[[np.ndarray], np.ndarray]


def mean_field_game_names() -> list[str]:
  """Short names of every registered mean-field game (C++ and Python)."""
  return sorted(game_type.short_name
                for game_type in pyspiel.registered_games()
                if game_type.dynamics == pyspiel.GameType.Dynamics.MEAN_FIELD)


def check_mean_field_game(game):
  """Raises ValueError unless `game` is a pyspiel mean-field game."""
  if not isinstance(game, pyspiel.Game):
    raise ValueError(f"game must be a pyspiel.Game, got {type(game).__name__}")
  game_type = game.get_type()
  if game_type.dynamics != pyspiel.GameType.Dynamics.MEAN_FIELD:
    raise ValueError(
        f"{game_type.short_name} is not a mean-field game (its dynamics are "
        f"{game_type.dynamics}, expected MEAN_FIELD); mean-field games: "
        f"{', '.join(mean_field_game_names())}")
  if not game_type.provides_observation_string:
    raise ValueError(f"{game_type.short_name} provides no observation string, "
                     "which OpenSpiel's MFG tools key states by")


class SharedDistribution(list):
  """A registered distribution that copies and deep copies share.

  Python MFG states keep the list given to `update_distribution` (some call
  `.copy()` on it) and deep-copy it into their children. Handing them this list
  makes every state below a mean-field node read one list, so that an
  in-place update re-registers a new distribution for all of them at once.
  """

  def copy(self):
    return self

  def __copy__(self):
    return self

  def __deepcopy__(self, memo):
    return self


@dataclasses.dataclass(frozen=True)
class Layer:
  """The nodes of one depth of the game, grouped by kind, edges as arrays.

  Children are given twice: as node ids (for backward induction; the
  sentinel id num_nodes stands for "no child") and as positions in the next
  layer (for forward propagation; the sentinel is the next layer's size).
  """
  ids: np.ndarray
  decision_ids: np.ndarray
  decision_rows: np.ndarray
  decision_children: np.ndarray  # (n, num_actions) node ids
  decision_next: np.ndarray  # (n, num_actions) positions in the next layer
  legal: np.ndarray  # (n, num_actions) bool
  chance_ids: np.ndarray
  chance_children: np.ndarray  # (n, max outcomes) node ids
  chance_next: np.ndarray
  chance_probabilities: np.ndarray  # (n, max outcomes), 0 where padded
  mean_field_ids: np.ndarray
  mean_field_children: np.ndarray  # (n,) node ids
  mean_field_next: np.ndarray
  terminal_ids: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Replay:
  """OpenSpiel's depth-first tree as a program of batched game calls.

  The states of the tree above every mean-field node (the initial states and
  their descendants along `child()` edges) never read a distribution: they
  and their rewards are computed once. The others are made by `ops`, run in
  order, each appending its states to one list after the fixed ones:
  `child(action)` of earlier states, or a clone of a mean-field state with
  its support group's distribution registered (whose string must then be
  the one given).
  """
  fixed_states: tuple[pyspiel.State, ...]
  fixed_rewards: np.ndarray  # (num_nodes + 1,) their rewards, 0 elsewhere
  # (parent positions, actions or support groups, strings or None: a child
  # step when None).
  ops: tuple[tuple[list[int], list[int], list[str] | None], ...]
  reward_items: list[tuple[int, int]]  # (position, population), non-chance
  reward_nodes: np.ndarray  # their nodes


@dataclasses.dataclass(frozen=True)
class _Edges:
  """A structure's edges between positions in `nodes` (layer order, so a
  parent comes before its children), for dense solves.

  The transition matrix M (n, n) of a policy has M[child, parent] = the
  policy's probability of the action (decision), the outcome's probability
  (chance) or 1 (mean field); a flow solves (I - M) flow = 1 at the initial
  states, a policy value (I - M^T) V = r (the reward of a decision state
  weighted by its row's total probability, as `backward` sums it).
  """
  nodes: np.ndarray  # (n,) reachable node ids
  roots: np.ndarray  # positions of the initial states
  parents: np.ndarray  # (num_edges,) positions
  children: np.ndarray
  weights: np.ndarray  # chance and mean-field weights, 0 at decision edges
  decisions: np.ndarray  # indices of the decision edges
  policy_entries: np.ndarray  # their entries of the flattened policy table
  decision_positions: np.ndarray  # positions of the decision nodes
  decision_rows: np.ndarray  # and their rows
  decision_children: np.ndarray  # (d, num_actions) node ids, or num_nodes
  legal: np.ndarray  # (d, num_actions) their legal actions

  def transition_matrix(self, policy_table: np.ndarray) -> np.ndarray:
    """M of `policy_table` (num_rows, num_actions), shape (n, n)."""
    weights = self.weights.copy()
    weights[self.decisions] = policy_table.ravel()[self.policy_entries]
    size = len(self.nodes)
    # bincount: several actions may lead to the same child.
    return np.bincount(self.children * size + self.parents, weights,
                       minlength=size * size).reshape(size, size)

  def flow(self, policy_table: np.ndarray) -> np.ndarray:
    """(n,) the flow of `policy_table` at `nodes`."""
    sources = np.zeros(len(self.nodes))
    sources[self.roots] = 1.0
    # LAPACK directly (scipy.linalg's checks cost more than the solve here).
    flow, _ = lapack.dtrtrs(-self.transition_matrix(policy_table), sources,
                            lower=1, unitdiag=1)
    return flow

  def policy_value(self, policy_table: np.ndarray,
                   rewards: np.ndarray) -> np.ndarray:
    """(n,) the value of `policy_table` at `nodes`, `rewards` per node."""
    weighted = rewards[self.nodes]
    weighted[self.decision_positions] *= policy_table[
        self.decision_rows].sum(axis=1)
    values, _ = lapack.dtrtrs(-self.transition_matrix(policy_table),
                              weighted, lower=1, trans=1, unitdiag=1)
    return values


def _edges(layers, root_ids, num_nodes) -> _Edges:
  """The `_Edges` of compiled layers."""
  nodes = np.concatenate([layer.ids for layer in layers])
  position = np.zeros(num_nodes + 1, np.int64)
  position[nodes] = np.arange(len(nodes))
  parents, children, weights, entries = [], [], [], []
  for layer in layers:
    node, action = np.nonzero(layer.legal)
    entries.append(layer.decision_rows[node] * layer.legal.shape[1] + action)
    parents.append(layer.decision_ids[node])
    children.append(layer.decision_children[node, action])
  num_decisions = sum(len(entry) for entry in entries)
  weights.append(np.zeros(num_decisions))
  for layer in layers:
    node, outcome = np.nonzero(layer.chance_children < num_nodes)
    parents += [layer.chance_ids[node], layer.mean_field_ids]
    children += [layer.chance_children[node, outcome],
                 layer.mean_field_children]
    weights += [layer.chance_probabilities[node, outcome],
                np.ones(len(layer.mean_field_ids))]
  decision_ids = np.concatenate([layer.decision_ids for layer in layers])
  return _Edges(
      nodes=nodes,
      roots=position[root_ids],
      parents=position[np.concatenate(parents)],
      children=position[np.concatenate(children)],
      weights=np.concatenate(weights),
      decisions=np.arange(num_decisions),
      policy_entries=np.concatenate(entries),
      decision_positions=position[decision_ids],
      decision_rows=np.concatenate([layer.decision_rows for layer in layers]),
      decision_children=np.concatenate(
          [layer.decision_children for layer in layers]),
      legal=np.concatenate([layer.legal for layer in layers]))


@dataclasses.dataclass(frozen=True)
class _Structure:
  """The game graph one exploration found, compiled to arrays."""
  layers: tuple[Layer, ...]
  root_ids: np.ndarray
  reachable_nodes: np.ndarray  # node ids
  reachable_rows: np.ndarray  # decision rows
  num_nodes: int
  # Position of each node in the order OpenSpiel's depth-first value walks
  # first visit them (num_nodes at the sentinel).
  dfs_rank: np.ndarray
  # The tree of those first visits, as game calls (None: rewards are not
  # read from OpenSpiel states).
  replay: _Replay | None
  # Mean-field nodes grouped by identical distribution support:
  # (support node ids, mean-field node ids) pairs.
  support_groups: tuple[tuple[np.ndarray, np.ndarray], ...]

  @functools.cached_property
  def edges(self) -> _Edges | None:
    """The edges for dense solves; None above _DENSE_SOLVE_NODES nodes.

    Computed on first use (a structure made by `dataclasses.replace`, with
    other chance probabilities, computes its own)."""
    if len(self.reachable_nodes) > _DENSE_SOLVE_NODES:
      return None
    return _edges(self.layers, self.root_ids, self.num_nodes)


@dataclasses.dataclass(frozen=True)
class MeanField:
  """A policy, its mean field (state distribution) and the rewards under it.

  Attributes:
    structure: the compiled game graph these arrays refer to.
    policy: (num_rows, num_distinct_actions) action probabilities.
    flow: (num_nodes + 1,) the policy's state distribution, per population
      summing to one at every depth (DistributionPolicy's numbers).
    rewards: (num_nodes + 1,) `rewards()[population]` of each node's
      depth-first representative under this distribution (0 at chance nodes,
      whose rewards OpenSpiel's value walks ignore).
  """
  structure: _Structure
  policy: np.ndarray
  flow: np.ndarray
  rewards: np.ndarray


@dataclasses.dataclass(frozen=True)
class _SharedRegistrations:
  """Representative states that read `SharedDistribution` lists.

  Attributes:
    lists: (support node ids, shared list) per support group.
    nodes: the non-chance nodes below a mean-field node.
    calls: their states' bound `rewards` methods and populations.
    base: rewards of every node; those above all mean-field nodes never change.
  """
  lists: tuple[tuple[np.ndarray, SharedDistribution], ...]
  nodes: np.ndarray
  calls: list[tuple[Callable[[], list[float]], int]]
  base: np.ndarray

  def rewards(self, flow: np.ndarray) -> np.ndarray:
    """Registers `flow` in place and reads the rewards it changes."""
    for support, values in self.lists:
      values[:] = flow[support].tolist()
    rewards = self.base.copy()
    rewards[self.nodes] = [rewards_of()[population]
                           for rewards_of, population in self.calls]
    return rewards


def _registered_clone(state, distribution):
  """A clone of a mean-field state with `distribution` registered."""
  state = state.clone()
  state.update_distribution(distribution)
  return state


class _StructureChanged(Exception):
  """A replay reached a string the compiled structure did not predict."""


class MeanFieldEngine:
  """Enumerates a mean-field game once and evaluates policies with numpy.

    engine = MeanFieldEngine(game)
    mean_field = engine.mean_field(engine.uniform_policy)  # flow + rewards
    engine.nash_conv(mean_field)                  # == NashConv(...).nash_conv()
    engine.policy_value(mean_field), engine.best_response_value(mean_field)
    engine.backward(mean_field, decision_value)   # any decision-node operator
    engine.table_policy(mean_field.policy)        # an OpenSpiel policy
    engine.policy_function(openspiel_policy)      # the other way round
    engine.distribution(mean_field)               # an OpenSpiel distribution

  Attributes:
    game: the pyspiel game.
    num_actions: `game.num_distinct_actions()`, the width of policy arrays.
    flow_dependent: whether the game graph depends on the distribution (then
      every `mean_field()` call re-explores the game).
    shared_registration: whether rewards are refreshed through
      `SharedDistribution` lists rather than by replaying the game.
  """

  # The structure of the last `best_response_value` by policy iteration and
  # the best response's action at each of its `_Edges` decision nodes.
  _best_response_choice = (None, None)

  def __init__(self, game):
    check_mean_field_game(game)
    self.game = game
    self.num_actions = game.num_distinct_actions()
    self.strings: list[str] = []
    self._node_of_string: dict[str, int] = {}
    self._kind: list[int] = []
    self._population: list[int] = []
    self._depth: list[int] = []
    self._row_of_node: list[int] = []
    self._node_of_row: list[int] = []
    self._row_of_string: dict[str, int] = {}
    self._states: list[pyspiel.State] = []
    self._edges: dict[int, tuple] = {}
    self._children_by_action = np.zeros((0, self.num_actions), np.int64)
    self._legal = np.zeros((0, self.num_actions), bool)
    self._probe_noise = np.zeros((0, self.num_actions))

    self._root_states = game.new_initial_states()
    layers, edges, _, _ = self._explore(self.uniform_policy)
    probe_edges = []
    for probe in (self._random_policy, self._first_action_policy):
      probe_edges.append(self._explore(probe)[1])
      if probe_edges[-1] != edges:
        break
    self.flow_dependent = probe_edges[-1] != edges
    # Whether the probes changed only children of mean-field nodes, which a
    # replay checks (then a new policy need not re-explore the game).
    self._replay_checks_structure = all(
        other[node] == edge for other in probe_edges
        for node, edge in edges.items()
        if node in other and self._kind[node] != MEAN_FIELD)
    self._explored, self._structure, self._shared = None, None, None
    if not self.flow_dependent:
      self._explored = (layers, edges)
      self._structure = self._compile(layers)
      self._shared = self._share_registrations()
    self.shared_registration = self._shared is not None

  # --------------------------------------------------------------- sizes

  @property
  def num_nodes(self) -> int:
    return len(self.strings)

  @property
  def num_rows(self) -> int:
    return len(self._node_of_row)

  @property
  def legal(self) -> np.ndarray:
    """(num_rows, num_actions) legal-action mask of the decision rows."""
    return self._legal[:self.num_rows]

  @property
  def children_by_action(self) -> np.ndarray:
    """(num_rows, num_actions) child node of each legal action, else -1."""
    return self._children_by_action[:self.num_rows]

  def row_states(self, rows: np.ndarray) -> list[pyspiel.State]:
    """A representative pyspiel state of each decision row."""
    return [self._states[self._node_of_row[row]] for row in rows]

  # ------------------------------------------------------------ policies

  def uniform_policy(self, rows: np.ndarray) -> np.ndarray:
    """The uniform policy over legal actions (a PolicyFunction)."""
    legal = self._legal[rows]
    return legal / legal.sum(axis=1, keepdims=True)

  def _random_policy(self, rows):
    """A fixed random policy, one draw per row (a structure probe)."""
    missing = self.num_rows - len(self._probe_noise)
    if missing > 0:
      rng = np.random.default_rng([_PROBE_SEED, len(self._probe_noise)])
      self._probe_noise = np.concatenate([
          self._probe_noise,
          rng.uniform(0.05, 1.0, (missing, self.num_actions))])
    weights = self._probe_noise[rows] * self._legal[rows]
    return weights / weights.sum(axis=1, keepdims=True)

  def _first_action_policy(self, rows):
    """Always the first legal action (a concentrated structure probe)."""
    legal = self._legal[rows]
    probabilities = np.zeros(legal.shape)
    probabilities[np.arange(len(rows)), np.argmax(legal, axis=1)] = 1.0
    return probabilities

  def policy_function(self, policy: policy_lib.Policy) -> PolicyFunction:
    """Adapts an OpenSpiel policy: queried at each row's representative.

    A `TablePolicy` of this engine is read from its table (the numbers its
    `action_probabilities` gives, without a query per state); rows the
    table does not cover are queried (they go to its fallback).
    """
    def probabilities(rows):
      table = np.zeros((len(rows), self.num_actions))
      for index, state in enumerate(self.row_states(rows)):
        for action, probability in policy.action_probabilities(state).items():
          table[index, action] = probability
      return table

    if not (isinstance(policy, TablePolicy) and
            policy.row_of_string is self._row_of_string):
      return probabilities

    def table_rows(rows):
      rows = np.asarray(rows)
      covered = rows < len(policy.table)
      if covered.all():
        return np.where(self._legal[rows], policy.table[rows], 0.0)
      result = np.empty((len(rows), self.num_actions))
      result[covered] = table_rows(rows[covered])
      result[~covered] = probabilities(rows[~covered])
      return result
    return table_rows

  def table_policy(self, table: np.ndarray,
                   fallback: policy_lib.Policy | None = None
                   ) -> "TablePolicy":
    """An OpenSpiel policy reading a copy of `table` (rows x actions)."""
    return TablePolicy(self.game, self._row_of_string, np.array(table),
                       fallback or policy_lib.UniformRandomPolicy(self.game))

  def grow_table(self, table: np.ndarray,
                 fill: PolicyFunction) -> np.ndarray:
    """`table` extended with `fill(rows)` for rows found since it was made."""
    if len(table) >= self.num_rows:
      return table
    new_rows = np.arange(len(table), self.num_rows)
    return np.concatenate([table, fill(new_rows)])

  # ---------------------------------------------------------- exploration

  def _add_node(self, state, depth):
    """The node of `state`'s string, created on first sight."""
    string = state.observation_string(_DEFAULT_PLAYER)
    node = self._node_of_string.get(string)
    if node is not None:
      if self._depth[node] != depth:
        raise ValueError(
            f"state {string!r} occurs at depths {self._depth[node]} and "
            f"{depth}; OpenSpiel's MFG tools require one depth per string")
      return node
    node = len(self.strings)
    self.strings.append(string)
    self._node_of_string[string] = node
    kind = _KIND_OF_TYPE[state.get_type()]
    self._kind.append(kind)
    self._population.append(state.mean_field_population())
    self._depth.append(depth)
    self._states.append(state)
    if kind == DECISION:
      row = len(self._node_of_row)
      self._row_of_node.append(row)
      self._node_of_row.append(node)
      self._row_of_string[string] = row
      if row >= len(self._legal):
        capacity = max(16, 2 * len(self._legal))
        self._legal = np.resize(self._legal, (capacity, self.num_actions))
        self._children_by_action = np.resize(self._children_by_action,
                                             (capacity, self.num_actions))
      self._legal[row] = False
      self._legal[row, state.legal_actions()] = True
      self._children_by_action[row] = -1
    else:
      self._row_of_node.append(-1)
    return node

  def _reach(self, state, depth, representatives, next_layer):
    """The node of a child met in a walk; the first one met represents it."""
    node = self._add_node(state, depth)
    if node not in representatives:
      representatives[node] = state
      next_layer.append(node)
    return node

  def _explore(self, policy: PolicyFunction):
    """Walks the game breadth first under `policy`, as DistributionPolicy does.

    Every legal action and chance outcome is followed (whatever its
    probability), mean-field nodes register the distribution of the current
    depth, and the first state met with a string becomes its representative.

    Returns:
      (layers, edges, masses, table): node ids per depth; per reached node
      its edges (decision: (actions, children); chance: (outcomes,
      probabilities, children); mean field: (support strings, child)); per
      depth the probability mass of each node (a dict); and `policy` at the
      rows met, asked once per batch of new rows (a policy is a function of
      the row alone), not once per depth.
    """
    layer, representatives, mass = [], {}, {}
    table = np.zeros((0, self.num_actions))
    for state in self.game.new_initial_states():
      node = self._add_node(state, 0)
      if node not in representatives:
        representatives[node] = state
        layer.append(node)
      mass[node] = 1.0
    layers, edges, masses = [layer], {}, [mass]
    while True:
      next_layer, next_mass = [], collections.defaultdict(float)
      reach = functools.partial(self._reach, depth=len(layers),
                                representatives=representatives,
                                next_layer=next_layer)

      decisions = []
      for node in layer:
        state, kind = representatives[node], self._kind[node]
        if kind == CHANCE:
          outcomes = state.chance_outcomes()
          children = tuple(reach(state.child(action)) for action, _ in outcomes)
          edges[node] = (tuple(action for action, _ in outcomes),
                         tuple(probability for _, probability in outcomes),
                         children)
          for child, (_, probability) in zip(children, outcomes):
            next_mass[child] += probability * mass[node]
        elif kind == DECISION:
          actions = tuple(state.legal_actions())
          children = tuple(reach(state.child(action)) for action in actions)
          edges[node] = (actions, children)
          row = self._row_of_node[node]
          self._legal[row] = False
          self._legal[row, list(actions)] = True
          self._children_by_action[row] = -1
          self._children_by_action[row, list(actions)] = children
          decisions.append(node)
        elif kind == MEAN_FIELD:
          support = tuple(state.distribution_support())
          registered = [mass.get(self._node_of_string.get(string, -1), 0.0)
                        for string in support]
          child_state = state.clone()
          child_state.update_distribution(registered)
          child = reach(child_state)
          edges[node] = (support, child)
          next_mass[child] += mass[node]
      if decisions:
        if self.num_rows > len(table):
          table = np.concatenate(
              [table, policy(np.arange(len(table), self.num_rows))])
        probabilities = table[[self._row_of_node[node]
                               for node in decisions]].tolist()
        for node, row_probabilities in zip(decisions, probabilities):
          for action, child in zip(*edges[node]):
            next_mass[child] += row_probabilities[action] * mass[node]
      if not next_layer:
        break
      layers.append(next_layer)
      masses.append(dict(next_mass))
      layer, mass = next_layer, next_mass
    for node, state in representatives.items():
      self._states[node] = state
    self._edges.update(edges)
    return layers, edges, masses, table

  def _compile(self, layers) -> _Structure:
    """Arrays of the layers of the last exploration."""
    num_nodes = self.num_nodes
    kind = np.array(self._kind)
    row_of_node = np.array(self._row_of_node)
    position = np.zeros(num_nodes + 1, np.int64)
    compiled = []
    for depth, layer in enumerate(layers):
      ids = np.array(layer, np.int64)
      next_size = len(layers[depth + 1]) if depth + 1 < len(layers) else 0
      if depth + 1 < len(layers):
        position[layers[depth + 1]] = np.arange(next_size)
      position[num_nodes] = next_size
      layer_kind = kind[ids]

      decision_ids = ids[layer_kind == DECISION]
      decision_rows = row_of_node[decision_ids]
      legal = self._legal[decision_rows].copy()
      decision_children = np.where(
          legal, self._children_by_action[decision_rows], num_nodes)

      chance_ids = ids[layer_kind == CHANCE]
      width = max([len(self._edges[node][2]) for node in chance_ids] or [0])
      chance_children = np.full((len(chance_ids), width), num_nodes)
      chance_probabilities = np.zeros((len(chance_ids), width))
      for index, node in enumerate(chance_ids):
        _, probabilities, children = self._edges[node]
        chance_children[index, :len(children)] = children
        chance_probabilities[index, :len(children)] = probabilities

      mean_field_ids = ids[layer_kind == MEAN_FIELD]
      mean_field_children = np.array(
          [self._edges[node][1] for node in mean_field_ids], np.int64)

      compiled.append(Layer(
          ids=ids,
          decision_ids=decision_ids,
          decision_rows=decision_rows,
          decision_children=decision_children,
          decision_next=position[decision_children],
          legal=legal,
          chance_ids=chance_ids,
          chance_children=chance_children,
          chance_next=position[chance_children],
          chance_probabilities=chance_probabilities,
          mean_field_ids=mean_field_ids,
          mean_field_children=mean_field_children,
          mean_field_next=position[mean_field_children],
          terminal_ids=ids[layer_kind == TERMINAL]))

    reachable_nodes = np.concatenate([layer.ids for layer in compiled])
    order, parent, action = self._depth_first_tree(layers[0])
    rank = np.full(num_nodes + 1, num_nodes, np.int64)
    rank[order] = np.arange(len(order))
    support_groups = self._support_groups(compiled)
    return _Structure(
        layers=tuple(compiled),
        root_ids=np.array(layers[0], np.int64),
        reachable_nodes=reachable_nodes,
        reachable_rows=row_of_node[reachable_nodes[
            kind[reachable_nodes] == DECISION]],
        num_nodes=num_nodes,
        dfs_rank=rank,
        replay=self._replay_program(layers, parent, action, support_groups),
        support_groups=support_groups)

  def _depth_first_tree(self, roots):
    """The tree of first visits of OpenSpiel's depth-first value walks."""
    parent = np.full(self.num_nodes, -1, np.int64)
    action_taken = np.full(self.num_nodes, -1, np.int64)
    visited = np.zeros(self.num_nodes, bool)
    order = []
    for root in roots:
      stack = [(root, -1, -1)]
      while stack:
        node, from_node, action = stack.pop()
        if visited[node]:
          continue
        visited[node] = True
        parent[node], action_taken[node] = from_node, action
        order.append(node)
        kind = self._kind[node]
        if kind == DECISION:
          actions, children = self._edges[node]
        elif kind == CHANCE:
          actions, _, children = self._edges[node]
        elif kind == MEAN_FIELD:
          actions, children = (-1,), (self._edges[node][1],)
        else:
          continue
        stack.extend((child, node, child_action) for child_action, child
                     in reversed(list(zip(actions, children)))
                     if not visited[child])
    return np.array(order, np.int64), parent, action_taken

  def _support_groups(self, layers):
    """Mean-field nodes grouped by their distribution support."""
    groups = collections.defaultdict(list)
    for layer in layers:
      for node in layer.mean_field_ids:
        groups[self._edges[node][0]].append(node)
    return tuple(
        (np.array([self._node_of_string.get(string, self.num_nodes)
                   for string in support], np.int64),
         np.array(nodes, np.int64))
        for support, nodes in groups.items())

  def _replay_program(self, layers, parent, action, support_groups):
    """The depth-first tree as a `_Replay`: its fixed states, then one op
    per depth and kind of edge (child, update) below a mean-field node."""
    group_of = {node: group for group, (_, nodes) in enumerate(support_groups)
                for node in nodes.tolist()}
    kind, population = self._kind, self._population
    fixed_states = list(self._root_states)
    position = {self._node_of_string[state.observation_string(
        _DEFAULT_PLAYER)]: index for index, state in enumerate(fixed_states)}
    below = []
    for layer in layers[1:]:
      for node in layer:
        if parent[node] in position and kind[parent[node]] != MEAN_FIELD:
          position[node] = len(fixed_states)
          fixed_states.append(
              fixed_states[position[parent[node]]].child(int(action[node])))
      below.append([node for node in layer if node not in position])
    fixed_rewards = np.zeros(self.num_nodes + 1)
    for node, index in position.items():
      if kind[node] != CHANCE:
        fixed_rewards[node] = fixed_states[index].rewards()[population[node]]
    ops, reward_items, reward_nodes = [], [], []
    size = len(fixed_states)
    for nodes in below:
      for update in (False, True):
        made = [node for node in nodes
                if (kind[parent[node]] == MEAN_FIELD) == update]
        if not made:
          continue
        ops.append(([position[parent[node]] for node in made],
                    [group_of[parent[node]] if update else int(action[node])
                     for node in made],
                    [self.strings[node] for node in made] if update else None))
        for node in made:
          position[node] = size
          if kind[node] != CHANCE:
            reward_items.append((size, population[node]))
            reward_nodes.append(node)
          size += 1
    return _Replay(fixed_states=tuple(fixed_states),
                   fixed_rewards=fixed_rewards, ops=tuple(ops),
                   reward_items=reward_items,
                   reward_nodes=np.array(reward_nodes, np.int64))

  # ------------------------------------------------------------- rewards

  def _replay(self, structure, flow, list_type=list):
    """Rewards of OpenSpiel's depth-first representatives under `flow`.

    Runs the structure's `_Replay` program: `child()` along tree edges,
    `clone()` + `update_distribution()` after mean-field nodes, then
    `rewards()` at every non-chance state below a mean-field node.

    Returns:
      (rewards, states, registered): (num_nodes + 1,) rewards; the replayed
      states, the fixed ones first (positions of the program); the
      registered distribution of each support group.

    Raises:
      _StructureChanged: an updated clone's string is not the structure's.
    """
    program = structure.replay
    registered = [list_type(flow[support].tolist())
                  for support, _ in structure.support_groups]
    states = list(program.fixed_states)
    for parents, arguments, strings in program.ops:
      if strings is None:
        states += [states[parent].child(action)
                   for parent, action in zip(parents, arguments)]
        continue
      updated = [_registered_clone(states[parent], registered[group])
                 for parent, group in zip(parents, arguments)]
      if [state.observation_string(_DEFAULT_PLAYER)
          for state in updated] != strings:
        raise _StructureChanged()
      states += updated
    rewards = program.fixed_rewards.copy()
    rewards[program.reward_nodes] = [states[position].rewards()[population]
                                     for position, population
                                     in program.reward_items]
    return rewards, states, registered

  def _share_registrations(self) -> Optional["_SharedRegistrations"]:
    """Representative states registering `SharedDistribution` lists, or None.

    Built under the uniform policy's flow, then checked: after an in-place
    update to a random policy's flow, their rewards must equal a full replay's.
    """
    structure = self._structure
    all_rows = np.arange(self.num_rows)
    flow = self._forward(structure, self.uniform_policy(all_rows))
    base, states, registered = self._replay(structure, flow,
                                            SharedDistribution)
    # Only states below a mean-field node read a registered distribution.
    calls = [(states[position].rewards, population)
             for position, population in structure.replay.reward_items]
    shared = _SharedRegistrations(
        lists=tuple(zip([support for support, _ in structure.support_groups],
                        registered)),
        nodes=structure.replay.reward_nodes, calls=calls, base=base)
    probe_flow = self._forward(structure, self._random_policy(all_rows))
    if not np.allclose(shared.rewards(probe_flow),
                       self._replay(structure, probe_flow)[0],
                       rtol=1e-12, atol=1e-12):
      return None
    return shared

  # --------------------------------------------------------- mean field

  def _forward(self, structure, policy_table):
    """The flow of a policy (DistributionPolicy), layer by layer (by one
    solve on small structures)."""
    flow = np.zeros(structure.num_nodes + 1)
    if structure.edges is not None:
      flow[structure.edges.nodes] = structure.edges.flow(policy_table)
      return flow
    flow[structure.root_ids] = 1.0
    layers = structure.layers
    for layer, next_layer in zip(layers[:-1], layers[1:]):
      size = len(next_layer.ids) + 1
      # One bincount per kind present (layers can be tiny: no zero-filled
      # accumulator when a single kind arrives).
      arriving = []
      if len(layer.decision_ids):
        weights = (policy_table[layer.decision_rows] *
                   flow[layer.decision_ids, None])
        arriving.append(np.bincount(layer.decision_next.ravel(),
                                    weights.ravel(), minlength=size))
      if len(layer.chance_ids):
        weights = layer.chance_probabilities * flow[layer.chance_ids, None]
        arriving.append(np.bincount(layer.chance_next.ravel(),
                                    weights.ravel(), minlength=size))
      if len(layer.mean_field_ids):
        arriving.append(np.bincount(layer.mean_field_next,
                                    flow[layer.mean_field_ids],
                                    minlength=size))
      if arriving:
        flow[next_layer.ids] = sum(arriving[1:], arriving[0])[:-1]
    return flow

  def mean_field(self, policy: PolicyFunction) -> MeanField:
    """The flow of `policy` and the rewards under it (one game pass at most).

    Args:
      policy: a PolicyFunction; it may be asked for rows that are new to the
        engine when the game's structure depends on the distribution.
    """
    if self._structure is not None and (not self.flow_dependent or
                                        self._replay_checks_structure):
      table = policy(np.arange(self.num_rows))
      flow = self._forward(self._structure, table)
      if self._shared is not None:
        return MeanField(self._structure, table, flow,
                         self._shared.rewards(flow))
      try:
        rewards = self._replay(self._structure, flow)[0]
        return MeanField(self._structure, table, flow, rewards)
      except _StructureChanged:
        self.flow_dependent = True
    layers, edges, masses, table = self._explore(policy)
    if (layers, edges) != self._explored:
      self._explored = (layers, edges)
      self._structure = self._compile(layers)
    structure = self._structure
    flow = np.zeros(structure.num_nodes + 1)
    for mass in masses:
      flow[list(mass)] = list(mass.values())
    return MeanField(structure, self.grow_table(table, policy), flow,
                     self._replay(structure, flow)[0])

  def distribution(self, mean_field: MeanField
                   ) -> tabular_distribution.TabularDistribution:
    """The flow as an OpenSpiel distribution (state string -> probability)."""
    distribution = tabular_distribution.TabularDistribution(self.game)
    nodes = mean_field.structure.reachable_nodes
    distribution.set_params(dict(zip([self.strings[node] for node in nodes],
                                     mean_field.flow[nodes].tolist())))
    return distribution

  # ---------------------------------------------------- backward induction

  def backward(self, mean_field: MeanField,
               decision_value: Callable[[Layer, np.ndarray], np.ndarray],
               values: np.ndarray | None = None) -> np.ndarray:
    """Backward induction over the layers, OpenSpiel's value recursion.

      terminal:   V(s) = r(s)
      chance:     V(s) = sum_o p(o) V(child(s, o))
      mean field: V(s) = r(s) + V(s after update_distribution)
      decision:   V(s) = decision_value(layer, Q)[s],
                  Q(s, a) = r(s) + V(child(s, a))   (r(s) at illegal a)

    Args:
      mean_field: supplies the rewards and the structure.
      decision_value: maps a layer and the Q values (n, num_actions) of its
        decision nodes to their values; it may record what else it computes.
      values: the (num_nodes + 1,) array to fill, if the caller wants to read
        the children's values from decision_value; zeros by default.

    Returns:
      The values, 0 at the sentinel.
    """
    rewards = mean_field.rewards
    values = np.zeros(len(rewards)) if values is None else values
    # Layers are small in some games (2 or 3 nodes in the routing games):
    # skip absent kinds and call array methods rather than numpy functions.
    for layer in reversed(mean_field.structure.layers):
      if len(layer.terminal_ids):
        values[layer.terminal_ids] = rewards[layer.terminal_ids]
      if len(layer.chance_ids):
        values[layer.chance_ids] = (
            layer.chance_probabilities *
            values[layer.chance_children]).sum(axis=1)
      if len(layer.mean_field_ids):
        values[layer.mean_field_ids] = (rewards[layer.mean_field_ids] +
                                        values[layer.mean_field_children])
      if len(layer.decision_ids):
        q_values = (rewards[layer.decision_ids, None] +
                    values[layer.decision_children])
        values[layer.decision_ids] = decision_value(layer, q_values)
    return values

  def policy_value(self, mean_field: MeanField) -> np.ndarray:
    """Values of the mean field's own policy (PolicyValue)."""
    policy = mean_field.policy
    edges = mean_field.structure.edges
    if edges is not None:
      values = np.zeros(len(mean_field.rewards))
      values[edges.nodes] = edges.policy_value(policy, mean_field.rewards)
      return values
    return self.backward(
        mean_field,
        lambda layer, q: (policy[layer.decision_rows] * q).sum(axis=1))

  def best_response_value(self, mean_field: MeanField) -> np.ndarray:
    """Best-response values against the mean field's flow (BestResponse).

    Backward induction with a max at decision nodes; on small structures
    (`_Edges`) policy iteration instead: the value of a pure policy is one
    triangular solve, and the policy switches to the greedy action wherever
    that gains more than 1e-12 (relative), starting from the last call's
    best response on the structure. On a graph of depth D it stops within D
    + 1 solves (each solve makes one more layer, from the last, greedy),
    usually after one when the best response has not changed; the values
    then solve the Bellman optimality equations up to 1e-12 per decision
    step.
    """
    edges = mean_field.structure.edges
    if edges is None:
      return self.backward(
          mean_field,
          lambda layer, q: np.where(layer.legal, q, -np.inf).max(axis=1))
    cached = self._best_response_choice
    choice = (cached[1] if cached[0] is mean_field.structure else
              np.argmax(edges.legal, axis=1))
    table = np.zeros((self.num_rows, self.num_actions))
    values = np.zeros(len(mean_field.rewards))
    decisions = np.arange(len(choice))
    for _ in range(len(mean_field.structure.layers) + 1):
      table[edges.decision_rows] = 0.0
      table[edges.decision_rows, choice] = 1.0
      values[edges.nodes] = edges.policy_value(table, mean_field.rewards)
      q_values = np.where(edges.legal, values[edges.decision_children],
                          -np.inf)
      best = q_values.max(axis=1)
      gain = best - q_values[decisions, choice]
      improve = gain > 1e-12 * (1.0 + np.abs(best))
      if not improve.any():
        self._best_response_choice = (mean_field.structure, choice)
        return values
      choice = np.where(improve, q_values.argmax(axis=1), choice)
    raise AssertionError("policy iteration did not stop within the depth")

  def kl_regularised_best_response(
      self, mean_field: MeanField, log_prior: np.ndarray, temperature: float,
      response: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best response to the flow, KL-regularised towards a prior.

    Backward induction with `logit.kl_regularised_response` at decision
    nodes: Q(s, a) = r(s) + V(child(s, a)),
      pi(a|s) = pibar(a|s) exp(Q(s, a) / alpha) / Z(s),
      V(s)    = alpha log Z(s),  Z(s) = sum_a pibar(a|s) exp(Q(s, a) / alpha)
    (the paper's eqs. 11-12, docs/design.md; MF-BQL's step).

    Args:
      mean_field: the flow (and the rewards under it).
      log_prior: (num_rows, num_actions) log pibar, -inf at illegal actions.
      temperature: alpha > 0.
      response: None, or a (num_rows, num_actions) array that receives pi
        itself (exp of log pi, up to rounding).

    Returns:
      (log_response, values): (num_rows, num_actions) log pi (rows the
      flow's structure does not reach keep their prior) and
      (num_nodes + 1,) V at every node.
    """
    log_response = log_prior.copy()

    def response_value(layer, q_values):
      rows = layer.decision_rows
      log_response[rows], values = logit.kl_regularised_response(
          log_prior[rows], q_values, layer.legal, temperature, axis=1)
      return values

    values = self.backward(mean_field, response_value)
    if response is not None:
      np.exp(log_response, out=response)
    return log_response, values

  def nash_conv(self, mean_field: MeanField) -> float:
    """NashConv: sum over initial states of best response minus policy value."""
    roots = mean_field.structure.root_ids
    gap = (self.best_response_value(mean_field)[roots] -
           self.policy_value(mean_field)[roots])
    return float(np.sum(gap))


class TablePolicy(policy_lib.Policy):
  """An OpenSpiel policy over an engine's rows (state string -> row).

  Returns every legal action, in the game's order, as OpenSpiel's tabular
  policies do; states the table has no row for are left to `fallback`.
  """

  def __init__(self, game, row_of_string: dict[str, int], table: np.ndarray,
               fallback: policy_lib.Policy):
    super().__init__(game, list(range(game.num_players())))
    self._row_of_string = row_of_string
    self._table = table
    self._fallback = fallback

  @property
  def table(self) -> np.ndarray:
    return self._table

  @property
  def row_of_string(self) -> dict[str, int]:
    """The engine's map from state strings to rows (shared, not a copy)."""
    return self._row_of_string

  def action_probabilities(self, state, player_id=None):
    del player_id
    row = self._row_of_string.get(state.observation_string(_DEFAULT_PLAYER))
    if row is None or row >= len(self._table):
      return self._fallback.action_probabilities(state)
    probabilities = self._table[row].tolist()
    return {action: probabilities[action] for action in state.legal_actions()}


class EngineSolver:
  """What the engine's mean-field solvers share: `_engine` (a
  `MeanFieldEngine`), `_mean_field` (the current policy's flow) and
  `_iteration` (iterations done), and a `residual` of their own."""

  _mean_field: MeanField
  _iteration: int = 0

  def __init__(self, game, engine: MeanFieldEngine | None):
    """Uses `engine` (a `MeanFieldEngine` of `game`), or builds one.

    Raises:
      ValueError: engine is not a MeanFieldEngine or was built for another
        game, or game is not a mean-field game.
    """
    if not (engine is None or isinstance(engine, MeanFieldEngine)):
      raise ValueError("engine must be a MeanFieldEngine or None; got "
                       f"{type(engine).__name__}")
    if engine is None and not isinstance(game, pyspiel.Game):
      raise ValueError(
          f"game must be a pyspiel.Game, got {type(game).__name__}; a game "
          "without one (e.g. an MFGLibEngine's engine.game) needs its "
          "engine: engine=")
    self._engine = engine or MeanFieldEngine(game)
    if self._engine.game is not game:
      raise ValueError(
          f"engine was built for a different game: game must be the "
          f"engine's own engine.game ({self._engine.game}); got "
          f"{type(game).__name__} {game}")

  tolerance = 1e-8
  """`converged` holds when `residual` is at most this (probabilities)."""

  @property
  def converged(self) -> bool:
    return self.residual <= self.tolerance

  @property
  def distribution(self) -> tabular_distribution.TabularDistribution:
    """The current policy's state distribution (OpenSpiel's type)."""
    return self._engine.distribution(self._mean_field)

  @property
  def mean_field(self) -> MeanField:
    return self._mean_field

  @property
  def iteration_count(self) -> int:
    return self._iteration

  def nash_conv(self) -> float:
    """NashConv of the current policy, equal to OpenSpiel's NashConv."""
    return self._engine.nash_conv(self._mean_field)
