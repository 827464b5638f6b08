"""A finite Markov game as numpy tensors, enumerated once from an OpenSpiel game.

`MarkovGame.from_openspiel(game)` walks a perfect-information OpenSpiel game
with simultaneous (or turn-based) moves and chance, and stores:

  * `num_states` decision states s, keyed by what identifies them: the public
    observation string together with the move number where the game provides
    observations (the observation of a perfect-information game is its state;
    the move number makes a finite-horizon state Markov), otherwise the
    action history;
  * `num_actions[i]`: player i's action count (OpenSpiel action ids, padded to
    `game.num_distinct_actions()`); `legal_mask[i][s, a]` marks legal ones. In a
    turn-based game the players not to move have the single action 0;
  * `rewards[i, s, a_1, ..., a_N]`: player i's expected reward from s under
    the joint action, chance resolved (returns accumulated up to the next
    decision state or the end);
  * `transitions`: a sparse matrix P[(s, a), s'] of the probability of the
    next decision state, chance resolved; the mass missing from a row is the
    probability that the game ends;
  * `initial_distribution[s]`: the probability that the first decision state
    is s (the mass missing is the probability that chance ends the game
    before any decision), and `initial_rewards[i]`: player i's expected
    return accrued before the first decision (including the plays that end
    there), so that a value at the start is
    `initial_rewards + initial_distribution @ values` (`start_values`);
  * `discount` and `horizon` (the most decisions on any play).

A player with no legal action at a simultaneous-move state does not act
there: it gets the single action 0 (which OpenSpiel takes for such a player
in `apply_actions`), as the players not to move in a turn-based game do.

Size. Before allocating, the enumeration estimates the bytes its tensors take
(rewards, transitions and the walk's bookkeeping grow with states x joint
actions, and the joint actions with num_distinct_actions^num_players) and
stops with that estimate, the limit `max_bytes` and the parameters to change,
at once for a game too wide for one state and as soon as the states found
exceed it.

States are numbered in move-number order, so every transition goes from one
layer to a later one and backward induction runs over `layers` in reverse.
All solvers and NashConv computations of the package work on these arrays.
"""

import collections
import itertools

import numpy as np
import pyspiel
from scipy import sparse

from vsg_spiel import parameters

_SIMULTANEOUS = pyspiel.GameType.Dynamics.SIMULTANEOUS
_SEQUENTIAL = pyspiel.GameType.Dynamics.SEQUENTIAL
_ACCEPTED_INFORMATION = (pyspiel.GameType.Information.PERFECT_INFORMATION,
                         pyspiel.GameType.Information.ONE_SHOT)
DEFAULT_MAX_STATES = 200_000
DEFAULT_MAX_BYTES = 2 * 2**30
# Bytes per (state, joint action) while the tensors are built: a float64
# reward per player (twice: per state, then stacked), and the transition
# triplet as Python objects during the walk, then as arrays and CSR.
_BYTES_PER_ENTRY_PER_PLAYER = 16
_BYTES_PER_ENTRY = 160


class MarkovGame:
  """Tensors of a finite N-player Markov game; see the module docstring."""

  def __init__(self, *, rewards, transitions, legal_mask, initial_distribution,
               layers, discount=1.0, game=None, state_key=None,
               state_keys=None, states=None, current_player=None,
               initial_rewards=None):
    self.rewards = np.asarray(rewards, dtype=np.float64)
    self.num_players = self.rewards.shape[0]
    self.num_states = self.rewards.shape[1]
    self.num_actions = tuple(self.rewards.shape[2:])
    if len(self.num_actions) != self.num_players:
      raise ValueError(
          f"rewards must have shape (num_players, num_states, A_1, ..., A_N); "
          f"got {self.rewards.shape}")
    self.num_joint_actions = int(np.prod(self.num_actions))
    self.transitions = sparse.csr_matrix(transitions)
    self.legal_mask = [np.asarray(mask, dtype=bool) for mask in legal_mask]
    self.initial_distribution = np.asarray(initial_distribution, np.float64)
    self.initial_rewards = (np.zeros(self.num_players)
                            if initial_rewards is None else
                            np.asarray(initial_rewards, dtype=np.float64))
    self.layers = [np.asarray(layer, dtype=np.int64) for layer in layers]
    self.discount = parameters.check_real("discount", discount, 0.0, 1.0,
                                          low_open=True)
    self.game = game
    self.state_key = state_key  # "observation" or "history" (from OpenSpiel)
    self.state_keys = state_keys
    self.states = states
    # pyspiel.PlayerId.SIMULTANEOUS (-2) at simultaneous nodes, else the mover.
    self.current_player = (np.full(self.num_states, -2) if current_player is None
                           else np.asarray(current_player))
    self._index_of_key = (None if state_keys is None else
                          {key: index for index, key in enumerate(state_keys)})
    self._check_shapes()
    # Per-layer row blocks of P, sliced once: layer states are contiguous.
    self._layer_transitions = [
        self.transitions[layer[0] * self.num_joint_actions:
                         (layer[-1] + 1) * self.num_joint_actions]
        for layer in self.layers]
    self.horizon = self._longest_play()
    self.max_legal_actions = max(int(mask.sum(axis=1).max())
                                 for mask in self.legal_mask)

  # --------------------------------------------------------------------------
  # Construction from OpenSpiel.

  @classmethod
  def from_openspiel(cls, game, *, state_key="auto", discount=1.0,
                     max_states=DEFAULT_MAX_STATES,
                     max_bytes=DEFAULT_MAX_BYTES):
    """Enumerates `game`'s decision states once and builds its tensors.

    Args:
      game: a pyspiel.Game (or a game string) with simultaneous or
        turn-based moves, perfect information (or one-shot) and finite plays.
      state_key: "observation" merges histories with the same move number and
        public observation string (the Markov state of a perfect-information
        game), "history" keeps every history apart (needed only to evaluate
        policies that depend on the history); "auto" takes "observation"
        where the game provides observation strings.
      discount: gamma per decision step; OpenSpiel's own tools evaluate
        undiscounted returns, so keep 1 when comparing with them.
      max_states: enumeration stops with an error past this many states.
      max_bytes: enumeration stops with an error (before allocating) once
        the estimated size of the tensors passes this many bytes.

    Raises:
      ValueError: the game is not a finite perfect-information Markov game,
        or it is larger than max_states or max_bytes.
    """
    max_states = parameters.check_integer("max_states", max_states, 1)
    max_bytes = parameters.check_integer("max_bytes", max_bytes, 1)
    discount = parameters.check_real("discount", discount, 0.0, 1.0,
                                     low_open=True)
    if isinstance(game, str):
      game = pyspiel.load_game(game)
    game_type = game.get_type()
    name = game_type.short_name
    if game_type.dynamics not in (_SIMULTANEOUS, _SEQUENTIAL):
      raise ValueError(
          f"{name} has {game_type.dynamics} dynamics; a Markov game needs "
          "simultaneous or turn-based moves (mean-field games are solved by "
          "vsg_spiel.algorithms.mf_bayesian_q)")
    if game_type.information not in _ACCEPTED_INFORMATION:
      raise ValueError(
          f"{name} has imperfect information ({game_type.information}): its "
          "players' information states are not Markov states, so it is not a "
          "Markov game; use a perfect-information or one-shot game")
    if state_key == "auto":
      state_key = ("observation" if game_type.provides_observation_string
                   else "history")
    if state_key not in ("observation", "history"):
      raise ValueError(f"state_key must be 'auto', 'observation' or "
                       f"'history'; got {state_key!r}")
    if state_key == "observation" and not game_type.provides_observation_string:
      raise ValueError(f"{name} provides no observation strings; use "
                       "state_key='history'")
    return _Enumerator(game, state_key, max_states, max_bytes).build(
        cls, discount)

  # --------------------------------------------------------------------------
  # Vectorised Bellman pieces used by every solver.

  def expected_next(self, layer_index, values):
    """E_{s'~P(.|s,a)}[values[s']] for the states of one layer.

    Args:
      layer_index: index into `self.layers`.
      values: array (num_states, ...) of next-state values (0 at the end).

    Returns:
      Array (layer size, A_1, ..., A_N, ...) of expected next values.
    """
    layer_size = len(self.layers[layer_index])
    expected = self._layer_transitions[layer_index] @ values.reshape(
        self.num_states, -1)
    return expected.reshape((layer_size,) + self.num_actions +
                            values.shape[1:])

  @property
  def return_bound(self):
    """An upper bound on |return| of any play: the largest |reward| of one
    decision step times the most steps (times at most 1 / (1 - gamma))."""
    steps = (self.horizon if self.discount == 1.0 else
             min(self.horizon, 1.0 / (1.0 - self.discount)))
    return float(np.abs(self.rewards).max(initial=0.0)) * steps

  def start_values(self, values):
    """Each player's expected return from the start of the game, given the
    players' values at every decision state (S, num_players):
    initial_rewards + initial_distribution @ values."""
    return self.initial_rewards + self.initial_distribution @ values

  def index_of(self, state):
    """The Markov state index of a decision state of `self.game`."""
    return self._index_of_key[key_of(self.state_key, state)]

  def _longest_play(self):
    """The most decision steps on any play: the T of Theorem 4.2."""
    steps_to_go = np.zeros(self.num_states, dtype=np.int64)
    for layer_index in reversed(range(len(self.layers))):
      block = self._layer_transitions[layer_index].tocoo()
      longest = np.zeros(block.shape[0], dtype=np.int64)
      np.maximum.at(longest, block.row, steps_to_go[block.col])
      longest = longest.reshape(len(self.layers[layer_index]), -1).max(axis=1)
      steps_to_go[self.layers[layer_index]] = 1 + longest
    return int(steps_to_go[self.initial_distribution > 0].max())

  def _check_shapes(self):
    num_states, joint = self.num_states, self.num_joint_actions
    if self.transitions.shape != (num_states * joint, num_states):
      raise ValueError(
          f"transitions must have shape ({num_states * joint}, {num_states})"
          f"; got {self.transitions.shape}")
    for player, mask in enumerate(self.legal_mask):
      if mask.shape != (num_states, self.num_actions[player]):
        raise ValueError(f"legal_mask[{player}] must have shape "
                         f"({num_states}, {self.num_actions[player]})")
      if not mask.any(axis=1).all():
        raise ValueError(
            f"legal_mask[{player}] has a state with no legal action; a "
            "player who does not act at a state has the single action 0")
    if self.initial_distribution.shape != (num_states,):
      raise ValueError("initial_distribution must have one entry per state")
    if self.initial_rewards.shape != (self.num_players,):
      raise ValueError("initial_rewards must have one entry per player")
    order = np.concatenate(self.layers)
    if not np.array_equal(order, np.arange(num_states)):
      raise ValueError("layers must list the states 0..S-1 in order")

  def __repr__(self):
    name = self.game.get_type().short_name if self.game else "arrays"
    return (f"MarkovGame({name}: {self.num_players} players, "
            f"{self.num_states} states, actions {self.num_actions}, "
            f"horizon {self.horizon}, discount {self.discount})")


def expect_over_actions(joint_values, policies, keep=None):
  """Expectation of joint-action values under independent per-player policies.

  Args:
    joint_values: array (..., n, A_1, ..., A_N): a value per state of a layer
      and joint action, with any leading axes.
    policies: N arrays (n, A_j): each player's policy at those states.
    keep: a player whose action is not averaged out, or None.

  Returns:
    (..., n) or, with `keep`, (..., n, A_keep):
    sum_{a_j, j != keep} prod_j pi_j(a_j|s) joint_values[..., s, a].
  """
  num_players = len(policies)
  state_label = num_players
  operands = [joint_values, [Ellipsis, state_label, *range(num_players)]]
  for player, policy in enumerate(policies):
    if player != keep:
      operands += [policy, [state_label, player]]
  output = [Ellipsis, state_label] + ([] if keep is None else [keep])
  return np.einsum(*operands, output, optimize=len(policies) > 2)


def key_of(state_key, state):
  """What identifies a Markov state: (move number, public observation) or the
  action history, as `state_key` says."""
  if state_key == "observation":
    return (state.move_number(), state.observation_string(0))
  return tuple(state.history())


class _Enumerator:
  """Breadth-first walk of an OpenSpiel game that merges Markov-equal states."""

  def __init__(self, game, state_key, max_states, max_bytes):
    self.game = game
    self.state_key = state_key
    self.max_states = max_states
    self.max_bytes = max_bytes
    game_type = game.get_type()
    self.simultaneous = game_type.dynamics == _SIMULTANEOUS
    self.num_players = game.num_players()
    self.num_actions = (game.num_distinct_actions(),) * self.num_players
    self.num_joint_actions = game.num_distinct_actions()**self.num_players
    self.bytes_per_state = self.num_joint_actions * (
        _BYTES_PER_ENTRY + _BYTES_PER_ENTRY_PER_PLAYER * self.num_players)
    self.index = {}
    self.states = []
    self._check_size(1)

  def _check_size(self, num_states):
    """Raises before the tensors of `num_states` states pass max_bytes."""
    estimate = num_states * self.bytes_per_state
    if estimate <= self.max_bytes:
      return
    raise ValueError(
        f"{self.game} is too large to enumerate: its tensors need about "
        f"{_format_bytes(estimate)} ({num_states} Markov state(s) x "
        f"{self.num_joint_actions} joint actions "
        f"({self.num_actions[0]}^{self.num_players}: num_distinct_actions^"
        f"num_players) x {self.bytes_per_state // self.num_joint_actions} "
        f"bytes), more than max_bytes={self.max_bytes} "
        f"({_format_bytes(self.max_bytes)}); load the game with fewer players, "
        "actions or steps, or raise the limit: build "
        "MarkovGame.from_openspiel(game, max_bytes=...) and pass it to the "
        "solvers and to nash_conv")


  def decision_outcomes(self, state):
    """Chance resolved: [(probability, decision-or-terminal state)]."""
    if not state.is_chance_node():
      return [(1.0, state)]
    outcomes = []
    for action, probability in state.chance_outcomes():
      for inner_probability, leaf in self.decision_outcomes(
          state.child(action)):
        outcomes.append((probability * inner_probability, leaf))
    return outcomes

  def state_index(self, state):
    key = key_of(self.state_key, state)
    index = self.index.get(key)
    if index is None:
      if len(self.states) >= self.max_states:
        raise ValueError(
            f"{self.game} has more than {self.max_states} Markov states "
            f"(max_game_length={self.game.max_game_length()}): it is too "
            "long or too wide to enumerate; load it with smaller parameters "
            "or raise max_states")
      self._check_size(len(self.states) + 1)
      index = len(self.states)
      self.index[key] = index
      self.states.append(state)
    return index

  def joint_actions(self, state):
    """Yields (joint action tuple padded for all players, child state)."""
    if self.simultaneous:
      # A player with no legal action passes 0, as OpenSpiel asks.
      legal = [state.legal_actions(player) or [0] for player in
               range(self.num_players)]
      for joint in itertools.product(*legal):
        child = state.clone()
        child.apply_actions(list(joint))
        yield joint, child
    else:
      mover = state.current_player()
      for action in state.legal_actions():
        joint = [0] * self.num_players
        joint[mover] = action
        yield tuple(joint), state.child(action)

  def build(self, cls, discount):
    root = self.game.new_initial_state()
    root_returns = np.asarray(root.returns(), dtype=np.float64)
    initial = []
    # Returns before the first decision, and of plays that end before it.
    initial_rewards = np.zeros(self.num_players)
    for probability, leaf in self.decision_outcomes(root):
      initial_rewards += probability * (np.asarray(leaf.returns()) -
                                        root_returns)
      if not leaf.is_terminal():
        initial.append((self.state_index(leaf), probability))
    if not initial:
      raise ValueError(f"{self.game} has no decision state: every play ends "
                       "before any player acts")

    joint_shape = self.num_actions
    rows, cols, probs = [], [], []
    rewards, legal, movers = [], [], []
    position = 0
    while position < len(self.states):
      state = self.states[position]
      returns = np.asarray(state.returns(), dtype=np.float64)
      reward = np.zeros((self.num_players,) + joint_shape)
      mask = [np.zeros(n, dtype=bool) for n in self.num_actions]
      if self.simultaneous:
        movers.append(pyspiel.PlayerId.SIMULTANEOUS)
        for player in range(self.num_players):
          mask[player][state.legal_actions(player) or [0]] = True
      else:
        mover = state.current_player()
        movers.append(mover)
        for player in range(self.num_players):
          mask[player][state.legal_actions() if player == mover else [0]] = True
      for joint, child in self.joint_actions(state):
        row = position * int(np.prod(joint_shape)) + int(
            np.ravel_multi_index(joint, joint_shape))
        for probability, leaf in self.decision_outcomes(child):
          reward[(slice(None),) + joint] += probability * (
              np.asarray(leaf.returns()) - returns)
          if not leaf.is_terminal():
            rows.append(row)
            cols.append(self.state_index(leaf))
            probs.append(probability)
      rewards.append(reward)
      legal.append(mask)
      position += 1

    num_states = len(self.states)
    move_numbers = np.array([s.move_number() for s in self.states])
    order = np.argsort(move_numbers, kind="stable")
    new_index = np.empty(num_states, dtype=np.int64)
    new_index[order] = np.arange(num_states)
    joint = int(np.prod(joint_shape))
    rows = np.asarray(rows, dtype=np.int64)
    rows = new_index[rows // joint] * joint + rows % joint
    transitions = sparse.csr_matrix(
        (np.asarray(probs, dtype=np.float64),
         (rows, new_index[np.asarray(cols, dtype=np.int64)])),
        shape=(num_states * joint, num_states))
    initial_distribution = np.zeros(num_states)
    for index, probability in initial:
      initial_distribution[new_index[index]] += probability
    sorted_moves = move_numbers[order]
    boundaries = np.flatnonzero(np.diff(sorted_moves)) + 1
    layers = np.split(np.arange(num_states), boundaries)
    keys = list(self.index)  # insertion order == discovery index
    return cls(
        initial_rewards=initial_rewards,
        rewards=np.stack(rewards, axis=1)[:, order],
        transitions=transitions,
        legal_mask=[np.array([legal[i][player] for i in order])
                    for player in range(self.num_players)],
        initial_distribution=initial_distribution,
        layers=layers,
        discount=discount,
        game=self.game,
        state_key=self.state_key,
        state_keys=[keys[i] for i in order],
        states=[self.states[i] for i in order],
        current_player=np.asarray(movers)[order])


def _format_bytes(size):
  """1234567 -> '1.2 MiB'."""
  for unit in ("bytes", "KiB", "MiB", "GiB"):
    if size < 1024 or unit == "GiB":
      break
    size /= 1024
  return f"{size:.1f} {unit}" if unit != "bytes" else f"{int(size)} bytes"


# ----------------------------------------------------------------------------
# The cache of enumerated games: every public entry point takes a game and
# enumerates it here once.

_CACHE_SIZE = 8
_cache = collections.OrderedDict()


def markov_game(game, state_key="auto"):
  """The `MarkovGame` of a game, enumerated once and cached.

  Args:
    game: a pyspiel.Game, a game string (loaded with `pyspiel.load_game`) or a
      `MarkovGame` (returned as is).
    state_key: as in `MarkovGame.from_openspiel`.

  A game object is cached under its type, its string with parameters and its
  identity (the cache holds a reference, so the identity is not reused while
  cached); a string under itself. So a game re-created with other parameters
  is enumerated anew, as is any other game object: two games built by
  `pyspiel.create_matrix_game` share the string "short_name()" and must not
  share an entry. The 8 most recently used games are kept.

  Raises:
    TypeError: `game` is none of these.
    ValueError: an empty game string, or as `MarkovGame.from_openspiel`.
  """
  if isinstance(game, MarkovGame):
    return game
  if isinstance(game, str):
    if not game.strip():
      raise ValueError("game must be a game string such as 'matrix_rps'; "
                       "got an empty string")
    key = ("string", game, state_key)
  elif isinstance(game, pyspiel.Game):
    key = ("game", game.get_type().short_name, str(game), id(game),
           state_key)
  else:
    raise TypeError(
        "game must be a pyspiel.Game, a game string or a MarkovGame; got "
        f"{type(game).__name__} {game!r:.80}")
  entry = _cache.get(key)
  if entry is None or (not isinstance(game, str) and entry[0] is not game):
    entry = (game, MarkovGame.from_openspiel(game, state_key=state_key))
    _cache[key] = entry
    if len(_cache) > _CACHE_SIZE:
      _cache.popitem(last=False)
  _cache.move_to_end(key)
  return entry[1]


def turn_based_tree_size(mgame):
  """Decision nodes of `pyspiel.convert_to_turn_based(game)`'s tree, counted
  on the tensors: the histories reaching each Markov state (counted forward
  once) times the decision nodes of its round, 1 + n_1 + n_1 n_2 + ... with
  n_i player i's legal actions. Exact where chance outcomes lead to distinct
  states, a lower bound otherwise.
  """
  histories = (mgame.initial_distribution > 0).astype(np.float64)
  structure = (mgame.transitions > 0).astype(np.float64)
  joint = mgame.num_joint_actions
  for layer in mgame.layers:
    block = structure[layer[0] * joint:(layer[-1] + 1) * joint]
    histories += block.T @ np.repeat(histories[layer], joint)
  simultaneous = mgame.current_player == pyspiel.PlayerId.SIMULTANEOUS
  round_nodes = np.where(simultaneous, 0.0, 1.0)  # One mover otherwise.
  partial = np.ones(mgame.num_states)
  for mask in mgame.legal_mask:
    acts = mask.sum(axis=1)
    round_nodes += np.where(simultaneous & (acts > 0), partial, 0.0)
    partial = partial * np.maximum(acts, 1)
  return float(histories @ round_nodes)
