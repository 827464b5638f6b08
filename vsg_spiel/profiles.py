"""Policy profiles as per-player [state, action] arrays, and OpenSpiel policies.

A profile of a `MarkovGame` is a list with one array per player, shape
(num_states, num_actions[i]): row s is player i's distribution over its
actions (OpenSpiel action ids) at Markov state s, zero on illegal actions.

`to_policy` wraps a profile as an `open_spiel.python.policy.Policy` that
answers at the states of the game itself and of
`pyspiel.convert_to_turn_based(game)`, so OpenSpiel's tools (exploitability,
best response, CFR evaluation) can evaluate our policies; `from_policy` reads
any OpenSpiel policy of either game back into a profile. The round trip is
exact: probabilities are copied, never recomputed.

Reading a policy that is not a profile is exact: it is read at every decision
history of the turn-based form (once per distinct information state, OpenSpiel's
definition of what a policy may depend on), never at one representative history
per Markov state; a policy that differs between histories of one Markov state
is evaluated on the history-keyed game (`read_policy`) or rejected
(`from_policy`) with `NonMarkovPolicyError`. The histories, their Markov states
and the lookups of each policy kind are walked once per `MarkovGame` and kept,
so that reading a policy is a few array gathers (see `_Histories`).

Probabilities are accepted when a row of n legal actions sums to 1 within
n * 2**-23 (float32 rounding of n probabilities and their normaliser), and rows
off by more than float64 rounding (1e-12) are renormalised.
"""

import itertools
import weakref

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib

from vsg_spiel import core

_SIMULTANEOUS = pyspiel.GameType.Dynamics.SIMULTANEOUS
_FLOAT32_EPSILON = 2.0 ** -23
_RENORMALISE_ABOVE = 1e-12
# Two rows of one state that differ by more than this are different rows.
_MARKOV_TOLERANCE = 1e-9
# The most turn-based decision histories read for a policy that is not a
# profile (memory: one pyspiel state and one row of probabilities each).
MAX_HISTORIES = 1_000_000
_EXPECTED_POLICY = (
    "an OpenSpiel policy (open_spiel.python.policy.Policy, pyspiel.Policy or "
    "pyspiel.TabularPolicy), a dict {information state string: [(action, "
    "probability), ...]}, a callable state -> {action: probability}, or a "
    "profile (one (num_states, num_actions) array per player, or those stacked "
    "as one (num_players, num_states, num_actions) array)")


def uniform_profile(mgame):
  """Every player uniform over its legal actions at every state."""
  return [mask / mask.sum(axis=1, keepdims=True) for mask in mgame.legal_mask]


def random_profile(mgame, rng):
  """A profile with independent Dirichlet(1) rows on the legal actions."""
  profile = []
  for mask in mgame.legal_mask:
    weights = rng.exponential(size=mask.shape) * mask
    profile.append(weights / weights.sum(axis=1, keepdims=True))
  return profile


def pure_profile(mgame, actions):
  """Deterministic profile; actions[i] is player i's action per state (or one
  action id for every state)."""
  profile = []
  for player, mask in enumerate(mgame.legal_mask):
    chosen = np.broadcast_to(np.asarray(actions[player]), (mgame.num_states,))
    table = np.zeros(mask.shape)
    table[np.arange(mgame.num_states), chosen] = 1.0
    profile.append(table)
  return validate_profile(mgame, profile)


def validate_profile(mgame, profile):
  """Checks shapes, signs, support and normalisation; returns float arrays.

  Args:
    mgame: the `MarkovGame`.
    profile: one (num_states, num_actions[i]) array per player, or the same
      stacked as one (num_players, num_states, num_actions) array.

  Returns:
    One float64 array per player; rows summing to 1 only within the float32
    tolerance (module docstring) are renormalised, others copied unchanged.

  Raises:
    TypeError: `profile` is not a sequence of arrays.
    ValueError: naming the player and the first offending state (and action).
  """
  if isinstance(profile, np.ndarray) and profile.ndim == 3:
    profile = list(profile)
  if not isinstance(profile, (list, tuple)):
    raise TypeError(f"a profile must be one (num_states, num_actions) array "
                    f"per player; got {type(profile).__name__}")
  if len(profile) != mgame.num_players:
    raise ValueError(f"profile has {len(profile)} policies; the game has "
                     f"{mgame.num_players} players")
  tables = []
  for player, (table, mask) in enumerate(zip(profile, mgame.legal_mask)):
    table = np.asarray(table, dtype=np.float64)
    if table.shape != mask.shape:
      raise ValueError(
          f"policy of player {player} has shape {table.shape}; expected "
          f"(num_states, num_actions) = {mask.shape}")
    tables.append(table)
  if len(tables) > 1 and min(mgame.num_actions) == max(mgame.num_actions):
    # Equal shapes: one pass over all players accepts a valid, normalised
    # profile as it is (every state has a legal action, so each row sums to
    # 1); anything else is checked player by player below.
    rows = np.array(tables)
    if (np.where(mgame.padded_legal_mask(), rows, -np.abs(rows)).min() >= 0
        and (np.abs(rows.sum(axis=2) - 1.0) <= _RENORMALISE_ABOVE).all()):
      return tables
  return [_checked_rows(
      table, mask,
      lambda row, p=player: f"player {p} at state {_describe(mgame, row)}")
          for player, (table, mask) in enumerate(zip(tables,
                                                     mgame.legal_mask))]


def _checked_rows(rows, legal, where):
  """Checks probability rows against their legal actions.

  Args:
    rows: (n, num_actions) float64 probabilities.
    legal: (n, num_actions) bool legal actions.
    where: row index -> text naming the player and state, for errors.

  Returns:
    `rows`, renormalised (a copy) where the sum is off by more than 1e-12.

  Raises:
    ValueError: non-finite or negative entries, mass on an illegal action, or
      a sum off by more than n * 2**-23 (n legal actions).
  """
  if not ((rows >= 0) & (rows < np.inf) & (legal | (rows == 0))).all():
    _raise_bad_entries(rows, legal, where)
  sums = rows.sum(axis=1)
  num_legal = legal.sum(axis=1)
  # A row without legal actions (a player who does not act) must be empty.
  error = np.abs(sums - (num_legal > 0))
  tolerance = num_legal * _FLOAT32_EPSILON
  bad = np.flatnonzero(error > tolerance)
  if bad.size:
    row = bad[0]
    raise ValueError(
        f"probabilities of {where(row)} sum to {float(sums[row])!r}, not 1 "
        f"(the tolerance is n * 2**-23 = {tolerance[row]:.3g} for its n = "
        f"{num_legal[row]} legal actions)")
  off = error > _RENORMALISE_ABOVE
  if off.any():
    rows = rows.copy()
    rows[off] /= sums[off, None]
  return rows


def _raise_bad_entries(rows, legal, where):
  """Raises ValueError naming the first non-finite or negative entry, or
  mass on an illegal action (see `_checked_rows`)."""
  bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
  if bad.size:
    raise ValueError(f"non-finite probabilities {rows[bad[0]].tolist()} for "
                     f"{where(bad[0])}")
  bad = np.argwhere(rows < 0)
  if bad.size:
    row, action = bad[0]
    raise ValueError(f"negative probability {float(rows[row, action])!r} of "
                     f"action "
                     f"{action} for {where(row)}")
  bad = np.argwhere((rows > 0) & ~legal)
  row, action = bad[0]
  raise ValueError(
      f"{where(row)} puts probability {float(rows[row, action])!r} on "
      f"illegal action {action} (legal actions: "
      f"{np.flatnonzero(legal[row]).tolist()})")


def _describe(mgame, state_index):
  key = mgame.state_keys[state_index] if mgame.state_keys else None
  return f"{state_index} ({key!r})" if key is not None else str(state_index)


class NonMarkovPolicyError(ValueError):
  """An OpenSpiel policy differs at two states that share a Markov state."""


class StateIndexer:
  """Maps states of a game, or of its turn-based conversion, to Markov indices.

  A turn-based state inside a round of simultaneous moves belongs to the
  simultaneous state before the round: the actions already chosen in the
  round are dropped and the rest of the history replayed (once; cached).
  """

  def __init__(self, mgame):
    self.mgame = mgame
    self.simultaneous = mgame.game.get_type().dynamics == _SIMULTANEOUS
    self._turn_based_index = {}

  def __call__(self, state):
    if (not self.simultaneous or
        state.get_game().get_type().dynamics == _SIMULTANEOUS):
      return self.mgame.index_of(state)
    history = tuple(state.history())
    index = self._turn_based_index.get(history)
    if index is None:
      index = self._turn_based_index[history] = self.mgame.index_of(
          _round_start(self.mgame.game, history))
    return index


class MarkovPolicy(policy_lib.Policy):
  """An OpenSpiel policy backed by a profile of a `MarkovGame`.

  `action_probabilities(state, player_id)` works at simultaneous-move states
  of the game and at the states of its turn-based conversion (where the
  player is the current player). Its `game` is the turn-based conversion for
  simultaneous games, as OpenSpiel's tabular tools expect.
  """

  def __init__(self, mgame, profile):
    self.mgame = mgame
    self.profile = validate_profile(mgame, profile)
    self.state_index = StateIndexer(mgame)
    game = mgame.game
    turn_based_game = (pyspiel.convert_to_turn_based(game)
                       if self.state_index.simultaneous else game)
    super().__init__(turn_based_game, list(range(mgame.num_players)))

  def action_probabilities(self, state, player_id=None):
    player = state.current_player() if player_id is None else player_id
    row = self.profile[player][self.state_index(state)]
    return {action: row[action] for action in state.legal_actions(player)}


def _round_start(game, history):
  """The state of simultaneous-move `game` at the start of the round that
  the turn-based history `history` is in (or after it, between rounds).

  In the turn-based form the players who act in a round choose one after
  the other; a player without legal actions does not act and, as in
  `core.MarkovGame`, takes action 0 in the joint action.
  """
  state = game.new_initial_state()
  position = 0
  while position < len(history):
    if state.is_simultaneous_node():
      acting = [player for player in range(game.num_players())
                if state.legal_actions(player)]
      if position + len(acting) > len(history):
        break  # The round in progress.
      joint = [0] * game.num_players()
      for player, action in zip(acting, history[position:]):
        joint[player] = action
      state.apply_actions(joint)
      position += len(acting)
    else:
      state.apply_action(history[position])
      position += 1
  return state


def to_policy(mgame, profile):
  """Profile -> OpenSpiel policy (see `MarkovPolicy`)."""
  return MarkovPolicy(mgame, profile)


def from_policy(mgame, policy):
  """Any policy of the game or of its turn-based conversion -> profile.

  Args:
    mgame: the `MarkovGame` (built from an OpenSpiel game).
    policy: see `read_policy`.

  Returns:
    A profile of `mgame`.

  Raises:
    NonMarkovPolicyError: the policy differs between two histories of one
      Markov state (evaluate it with `read_policy`, or on
      `MarkovGame.from_openspiel(game, state_key="history")`).
    TypeError, ValueError: as `read_policy`.
  """
  return _read(mgame, policy, history_fallback=False)[1]


def read_policy(mgame, policy):
  """A policy as a profile of `mgame`, or of its history-keyed game.

  A policy that is not a function of `mgame`'s states is read exactly on
  `core.markov_game(game, state_key="history")` instead.

  Args:
    mgame: the `MarkovGame` (built from an OpenSpiel game).
    policy: an OpenSpiel `Policy` (a `TabularPolicy`, any subclass, or a
      `MarkovPolicy`) of the game or of `pyspiel.convert_to_turn_based(game)`;
      a `pyspiel.Policy` or `pyspiel.TabularPolicy` (e.g. CFR's average
      policy) or a dict {information state string: [(action, probability),
      ...]} of the turn-based form; a callable turn-based state ->
      {action: probability} (or [(action, probability), ...]); or a profile
      (a list of arrays, or one stacked array).

  Returns:
    (game, profile): `mgame` or its history-keyed game, and the profile.

  Raises:
    TypeError: `policy` is none of these.
    ValueError: the policy is for another game (naming both), misses an
      information state, or gives an action id out of range, an illegal
      action positive probability, or rows that do not sum to 1 (naming the
      player, the state and the action).
    NonMarkovPolicyError: the policy depends on actions of the same round
      (not a policy of a simultaneous-move game), or the game has more than
      `MAX_HISTORIES` histories to read it at.
  """
  return _read(mgame, policy, history_fallback=True)


def check_policy_type(policy):
  """Raises TypeError unless `policy` is of a kind `read_policy` reads."""
  if isinstance(policy, (str, bytes)) or policy is None or not (
      isinstance(policy, (list, tuple, np.ndarray, dict, policy_lib.Policy,
                          pyspiel.Policy)) or callable(policy)):
    raise TypeError(f"policy must be {_EXPECTED_POLICY}; got "
                    f"{type(policy).__name__} {policy!r:.80}")
  if isinstance(policy, np.ndarray) and policy.ndim != 3:
    raise ValueError(f"a profile stacked as one array must have shape "
                     f"(num_players, num_states, num_actions); got shape "
                     f"{policy.shape}")


def _read(mgame, policy, history_fallback):
  check_policy_type(policy)
  if isinstance(policy, (list, tuple, np.ndarray)):
    return mgame, validate_profile(mgame, policy)
  if mgame.game is None:
    raise ValueError(f"{mgame!r} was built from arrays, not from an OpenSpiel "
                     "game: only a profile (arrays) can be read on it")
  if isinstance(policy, MarkovPolicy) and (
      policy.mgame is mgame or str(policy.mgame.game) == str(mgame.game)):
    if policy.mgame is mgame or policy.mgame.state_keys == mgame.state_keys:
      return mgame, [table.copy() for table in policy.profile]
    # Markov in its own game's states, so read at each of ours (a history
    # key of ours, for instance, has one observation key of the policy's).
    source = np.fromiter(map(policy.mgame.index_of, mgame.states), np.int64,
                         mgame.num_states)
    return mgame, validate_profile(
        mgame, [table[source] for table in policy.profile])
  if mgame.stationary:
    return mgame, _read_stationary(mgame, policy)
  histories = _histories_of(mgame)
  rows = histories.read(policy)
  try:
    return mgame, histories.profile(mgame, rows)
  except NonMarkovPolicyError:
    if not history_fallback or mgame.state_key == "history":
      raise
  by_history = core.markov_game(mgame.game, state_key="history")
  return by_history, histories.profile(by_history, rows)


def _read_stationary(mgame, policy):
  """An `open_spiel.python.policy.Policy` of a stationary game's OpenSpiel
  game, queried once per Markov state at the first history reaching it (a
  cyclic game has unboundedly many histories, so whether the policy is a
  function of the Markov state is not checked)."""
  if not isinstance(policy, policy_lib.Policy):
    raise ValueError(
        f"{mgame!r} is stationary: give a profile or an "
        f"open_spiel.python.policy.Policy of its game; got "
        f"{type(policy).__name__}")
  profile = [np.zeros(mask.shape) for mask in mgame.legal_mask]
  for index, state in enumerate(mgame.states):
    mover = mgame.current_player[index]
    for player in range(mgame.num_players):
      if mover >= 0 and player != mover:
        profile[player][index, 0] = 1.0
        continue
      for action, probability in policy.action_probabilities(
          state, player).items():
        profile[player][index, action] = probability
  return validate_profile(mgame, profile)


_histories_by_game = weakref.WeakKeyDictionary()


def _information_state(state, player):
  return state.information_state_string(player)


def _histories_of(mgame):
  histories = _histories_by_game.get(mgame)
  if histories is None:
    histories = _histories_by_game[mgame] = _Histories(mgame)
  return histories


def _unique(keys):
  """(distinct keys in order of appearance, index of each key among them)."""
  index = {}
  inverse = np.fromiter((index.setdefault(key, len(index)) for key in keys),
                        np.int64)
  return list(index), inverse


def _flatten(answers):
  """(entries per answer, actions, probabilities) of {action: probability}
  dicts or [(action, probability), ...] sequences."""
  answers = [answer.items() if isinstance(answer, dict) else answer
             for answer in answers]
  try:
    lengths = np.fromiter(map(len, answers), np.int64, len(answers))
    flat = np.fromiter(itertools.chain.from_iterable(
        itertools.chain.from_iterable(answers)), np.float64,
                       2 * int(lengths.sum()))
  except (TypeError, ValueError) as error:
    raise ValueError(
        "a policy's answer at a state must be a dict {action: probability} "
        f"or a sequence of (action, probability) pairs: {error}") from None
  return lengths, flat[0::2], flat[1::2]


def _table_entries(table):
  """(keys, entries per key, actions, probabilities) of a policy dict or a
  pyspiel.TabularPolicy."""
  if isinstance(table, pyspiel.TabularPolicy):
    parsed = _parse_serialized(table)
    if parsed is not None:
      return parsed
    table = table.policy_table()
  return (list(table),) + _flatten(list(table.values()))


def _parse_serialized(table):
  """A pyspiel.TabularPolicy read from `serialize()`'s text by string splits
  (exact: the probabilities are hexadecimal), several times faster than
  converting `policy_table()`; None if the text is not as expected."""
  text = table.serialize()
  prefix = "TabularPolicy:"
  if not text.startswith(prefix):
    return None
  parts = text[len(prefix):].split("<~>")
  if len(parts) != 2 * table.size():
    return None  # A key holds the separator, or the format changed.
  keys, entries = parts[0::2], parts[1::2]
  lengths = np.fromiter((entry.count("=") for entry in entries), np.int64,
                        len(entries))
  fields = ",".join(entry for entry in entries if entry).replace(
      "=", ",").split(",")
  if len(fields) != 2 * lengths.sum() and lengths.sum() > 0:
    return None
  try:
    actions = np.fromiter(map(int, fields[0::2]), np.float64, lengths.sum())
    probabilities = np.fromiter(map(float.fromhex, fields[1::2]), np.float64,
                                lengths.sum())
  except ValueError:
    return None
  return keys, lengths, actions, probabilities


class _Histories:
  """The decision histories of a game's turn-based form, walked once.

  A node is a history of `pyspiel.convert_to_turn_based(game)` (of the game
  itself when it is turn-based) where a player chooses. It belongs to a round:
  the state of the game itself before the players' choices of that round (the
  actions already chosen in the round are no part of it), which has a Markov
  state of `mgame`. Any policy is read into one (nodes, actions) array of
  probabilities (`read`), queried or looked up once per distinct key of its
  kind; `profile` then checks with one vectorised comparison that the rows are
  a function of a game's states and gathers them. Lookups are kept per kind,
  so a second policy of a kind costs array gathers only.

  Action ids are OpenSpiel's in both games (the turn-based conversion keeps
  them), so the action map is the identity.
  """

  def __init__(self, mgame):
    # A weak reference: the histories are kept in a WeakKeyDictionary keyed
    # by the game, which they must not keep alive.
    self._mgame = weakref.ref(mgame)
    self.game = mgame.game
    self.simultaneous = self.game.get_type().dynamics == _SIMULTANEOUS
    self.turn_based_game = (pyspiel.convert_to_turn_based(self.game)
                            if self.simultaneous else self.game)
    self.num_actions = self.game.num_distinct_actions()
    self._walked = False
    self._keys = {}
    self._layouts = {}
    self._key_index = {}
    self._targets = weakref.WeakKeyDictionary()

  # --------------------------------------------------------------------------
  # The walk.

  def _walk(self):
    """Depth-first over the turn-based form, the game's own state alongside."""
    if self._walked:
      return
    mgame = self._mgame()
    estimate = core.turn_based_tree_size(mgame)
    if estimate > MAX_HISTORIES:
      self._too_many(f"about {estimate:.3g}")
    num_players = self.game.num_players()
    players, rounds, nodes, round_states = [], [], [], []
    stack = [(self.turn_based_game.new_initial_state(),
              self.game.new_initial_state(), (), -1)]
    while stack:
      state, round_state, chosen, round_index = stack.pop()
      if state.is_terminal():
        continue
      if state.is_chance_node():
        for action, _ in state.chance_outcomes():
          stack.append((state.child(action),
                        round_state.child(action) if self.simultaneous
                        else None, (), -1))
        continue
      if not self.simultaneous:
        round_state = state
      if round_index < 0:
        round_index = len(round_states)
        round_states.append(round_state)
      player = state.current_player()
      if self.simultaneous and round_state.is_simultaneous_node():
        last = max((q for q in range(num_players)
                    if round_state.legal_actions(q)), default=player)
      else:
        last = player
      if len(nodes) >= MAX_HISTORIES:
        self._too_many(f"more than {MAX_HISTORIES}")
      players.append(player)
      rounds.append(round_index)
      nodes.append(state)
      for action in state.legal_actions():
        child = state.child(action)
        if not self.simultaneous:
          stack.append((child, None, (), -1))
        elif not round_state.is_simultaneous_node():
          stack.append((child, round_state.child(action), (), -1))
        elif player < last:
          stack.append((child, round_state, chosen + ((player, action),),
                        round_index))
        else:  # The round is complete: the game itself takes the joint action.
          joint = [0] * num_players  # Players without actions take 0.
          for chooser, choice in chosen + ((player, action),):
            joint[chooser] = choice
          following = round_state.clone()
          following.apply_actions(joint)
          stack.append((child, following, (), -1))
    self.nodes = nodes
    self.round_states = round_states
    self.player = np.asarray(players, dtype=np.int64)
    self.round = np.asarray(rounds, dtype=np.int64)
    self.state = self.target(mgame)
    self.legal = np.zeros((len(nodes), self.num_actions), dtype=bool)
    for player in range(num_players):
      mine = self.player == player
      self.legal[mine] = mgame.legal_mask[player][self.state[mine]]
    self._walked = True

  def _too_many(self, count):
    raise NonMarkovPolicyError(
        f"{self.game} has {count} decision histories in its turn-based form, "
        f"more than the {MAX_HISTORIES} (profiles.MAX_HISTORIES) at which a "
        "policy that is not a profile is read to be evaluated exactly (it "
        "may depend on the history); give a profile of "
        "vsg_spiel.markov_game(game) or a vsg_spiel.MarkovPolicy instead")

  def target(self, mgame):
    """Each node's state index in `mgame` (this game, any state key)."""
    return self._grouping(mgame)[0]

  def _grouping(self, mgame):
    """(each node's state in `mgame`, the first node of its (player, state)
    group, the first nodes): computed once per target game."""
    found = self._targets.get(mgame)
    if found is None:
      by_round = np.fromiter((mgame.index_of(state)
                              for state in self.round_states), np.int64,
                             len(self.round_states))
      states = by_round[self.round]
      _, first, inverse = np.unique(self.player * mgame.num_states + states,
                                    return_index=True, return_inverse=True)
      found = self._targets[mgame] = (states, first[inverse], first)
    return found

  def keys(self, kind):
    """(distinct keys, each node's index among them) for a kind of lookup.

    Kinds: "node" (every history), "round" (round and player: a query of a
    policy of the simultaneous-move game), "information_state" (OpenSpiel's
    information state string of the turn-based form: pyspiel policies, CFR),
    "information_state:game" (of the game itself), "tabular:turn_based" and
    "tabular:game" (the keys `TabularPolicy` uses on either game).
    """
    found = self._keys.get(kind)
    if found is None:
      self._walk()
      if kind == "node":
        found = (list(range(len(self.nodes))), np.arange(len(self.nodes)))
      elif kind == "round":
        found = _unique(zip(self.round.tolist(), self.player.tolist()))
      elif kind == "information_state":
        found = _unique(map(_information_state, self.nodes,
                            self.player.tolist()))
      elif kind == "information_state:game":
        found = self._by_round("round", _information_state)
      else:
        game = (self.turn_based_game if kind == "tabular:turn_based" else
                self.game)
        game_type = game.get_type()
        if game_type.provides_information_state_string:
          key_of = _information_state
        elif game_type.provides_observation_string:
          key_of = lambda state, player: state.observation_string(player)
        else:
          key_of = lambda state, player: str(state)
        if kind == "tabular:turn_based":
          found = _unique(map(key_of, self.nodes, self.player.tolist()))
        else:
          found = self._by_round("round", key_of)
      self._keys[kind] = found
    return found

  def _by_round(self, kind, key_of):
    """Keys computed once per (round, player) at the round's state."""
    pairs, inverse = self.keys(kind)
    distinct, pair_index = _unique(
        key_of(self.round_states[round_index], player)
        for round_index, player in pairs)
    return distinct, pair_index[inverse]

  def describe(self, node):
    state = self.nodes[node]
    return (f"player {self.player[node]} at the state with history "
            f"{state.history()} ({str(state)[:200]!r})")

  # --------------------------------------------------------------------------
  # Reading a policy.

  def read(self, policy):
    """(nodes, num_actions) float64 probabilities of `policy`, checked."""
    side = self._side_of(policy)
    if isinstance(policy, policy_lib.TabularPolicy):
      distinct, inverse = self.keys("tabular:" + side)
      rows = self._tabular_rows(policy, distinct, inverse)
    elif isinstance(policy, (dict, pyspiel.TabularPolicy)):
      keys, lengths, actions, probabilities = _table_entries(policy)
      distinct, inverse, positions = self._look_up(keys)
      owners = np.repeat(positions, lengths)
      mine = owners >= 0  # A table may hold more states than the game.
      rows = self._rows(owners[mine], actions[mine], probabilities[mine],
                        len(distinct), inverse)
    else:
      _, inverse, answers = self._query(policy, side)
      lengths, actions, probabilities = _flatten(answers)
      rows = self._rows(np.repeat(np.arange(len(answers)), lengths), actions,
                        probabilities, len(answers), inverse)
    return _checked_rows(rows[inverse], self.legal, self.describe)

  def _side_of(self, policy):
    """"turn_based" or "game": which game's states the policy answers at."""
    policy_game = getattr(policy, "game", None)
    if not isinstance(policy, policy_lib.Policy) or policy_game is None:
      return "turn_based"
    if policy_game is self.game or str(policy_game) == str(self.game):
      return "game" if self.simultaneous else "turn_based"
    if (policy_game is self.turn_based_game or
        str(policy_game) == str(self.turn_based_game)):
      return "turn_based"
    raise ValueError(
        f"the policy is a policy of the game {policy_game}, not of the game "
        f"evaluated, {self.game}"
        + (f" (nor of its turn-based form {self.turn_based_game})"
           if self.simultaneous else ""))

  def _tabular_rows(self, policy, distinct, inverse):
    table = np.asarray(policy.action_probability_array, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != self.num_actions:
      raise ValueError(
          f"the TabularPolicy's action_probability_array has shape "
          f"{table.shape}; the game has {self.num_actions} actions")
    # TabularPolicies of one game share their rows' order: the last one's
    # keys are kept, and when a policy has the same keys (one comparison of
    # two lists) its rows map to the nodes as that one's did.
    lookup = policy.state_lookup
    layout, indices = self._layouts.get(id(distinct), (None, None))
    if layout is None or list(lookup) != layout:
      indices = np.fromiter((lookup.get(key, -1) for key in distinct),
                            np.int64, len(distinct))
      self._check_present(indices >= 0, inverse, "the TabularPolicy")
      self._layouts[id(distinct)] = (list(lookup), indices)
    return table[indices]

  def _look_up(self, keys):
    """(distinct keys, each node's key, each table key's index among the
    distinct keys or -1) by the first kind of key that covers every node,
    OpenSpiel's information states first.

    As for `TabularPolicy`, a table with the last table's keys in the same
    order (one list comparison) reuses its indices.
    """
    kinds = ["information_state", "tabular:turn_based"]
    if self.simultaneous:
      kinds += ["information_state:game", "tabular:game"]
    first = None
    for kind in kinds:
      try:
        distinct, inverse = self.keys(kind)
      except (pyspiel.SpielError, RuntimeError, NotImplementedError):
        continue  # The game has no such strings.
      layout, positions = self._layouts.get(("table", kind), (None, None))
      if layout is None or keys != layout:
        index = self._key_index.get(kind)
        if index is None:
          index = self._key_index[kind] = {key: i for i, key in
                                           enumerate(distinct)}
        positions = np.fromiter(map(index.get, keys, itertools.repeat(-1)),
                                np.int64, len(keys))
      present = np.zeros(len(distinct), dtype=bool)
      present[positions[positions >= 0]] = True
      if present.all():
        self._layouts[("table", kind)] = (keys, positions)
        return distinct, inverse, positions
      first = first or (present, inverse)
    if first is None:
      raise ValueError(f"{self.game} has no information state strings to "
                       "look a policy table up by")
    self._check_present(*first, "the policy table (keyed by OpenSpiel's "
                        "information state strings)")
    return None  # Unreachable: _check_present raised.

  def _check_present(self, present, inverse, what):
    missing = np.flatnonzero(~present[inverse])
    if missing.size:
      raise ValueError(f"{what} has no entry for {self.describe(missing[0])}")

  def _query(self, policy, side):
    """Asks a policy object or callable once per distinct key."""
    if side == "game":
      kind = ("information_state:game"
              if self.game.get_type().provides_information_state_string
              else "round")
      first, inverse = self._first_of_each(kind)
      answers = [policy.action_probabilities(
          self.round_states[self.round[node]], int(self.player[node]))
                 for node in first]
    else:
      kind = ("information_state"
              if self.turn_based_game.get_type()
              .provides_information_state_string else "node")
      first, inverse = self._first_of_each(kind)
      ask = (policy.action_probabilities
             if hasattr(policy, "action_probabilities") else policy)
      answers = [ask(self.nodes[node]) for node in first]
    return first, inverse, answers

  def _first_of_each(self, kind):
    """(first node of each distinct (key, player), each node's group): two
    players may share a string (e.g. a public observation)."""
    _, inverse = self.keys(kind)
    _, first, inverse = np.unique(
        inverse * self.game.num_players() + self.player, return_index=True,
        return_inverse=True)
    return first, inverse

  def _rows(self, owners, actions, probabilities, num_rows, inverse):
    """(num_rows, num_actions) probabilities from flat (row, action,
    probability) entries; action ids are checked first."""
    bad = np.flatnonzero((actions != np.round(actions)) | (actions < 0) |
                         (actions >= self.num_actions))
    if bad.size:
      node = int(np.flatnonzero(inverse == owners[bad[0]])[0])
      raise ValueError(
          f"the policy gives action {actions[bad[0]]:g} for "
          f"{self.describe(node)}: not an action id of {self.game} (0 to "
          f"{self.num_actions - 1})")
    rows = np.zeros((num_rows, self.num_actions))
    rows[owners, actions.astype(np.int64)] = probabilities
    return rows

  # --------------------------------------------------------------------------
  # Node rows -> profile.

  def profile(self, mgame, rows):
    """The profile of `mgame` the node rows define.

    Raises:
      NonMarkovPolicyError: two nodes of one state of `mgame` have different
        rows.
    """
    states, representative, first = self._grouping(mgame)
    difference = np.abs(rows - rows[representative]).max(axis=1)
    bad = np.flatnonzero(difference > _MARKOV_TOLERANCE)
    if bad.size:
      node = bad[0]
      other = representative[node]
      raise NonMarkovPolicyError(
          f"the policy of player {self.player[node]} is not a function of "
          f"the {mgame.state_key} key {mgame.state_keys[states[node]]!r}: it "
          f"differs by {difference[node]:.3g} between the histories "
          f"{self.nodes[other].history()} and {self.nodes[node].history()} (a "
          "policy of a simultaneous-move game may not depend on the other "
          "players' actions of the same round)")
    profile = [np.zeros(mask.shape) for mask in mgame.legal_mask]
    for player, table in enumerate(profile):
      mine = first[self.player[first] == player]
      table[states[mine]] = rows[mine]
      # Where the player does not choose (not to move in a turn-based game,
      # or without legal actions): the single action 0, as in the core.
      idle = np.ones(mgame.num_states, dtype=bool)
      idle[states[mine]] = False
      table[idle, 0] = 1.0
    return validate_profile(mgame, profile)

