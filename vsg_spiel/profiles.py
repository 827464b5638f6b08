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
"""

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib

_SIMULTANEOUS = pyspiel.GameType.Dynamics.SIMULTANEOUS
_SUM_TOLERANCE = 1e-9


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

  Raises:
    ValueError: naming the player and the first offending state.
  """
  if len(profile) != mgame.num_players:
    raise ValueError(f"profile has {len(profile)} policies; the game has "
                     f"{mgame.num_players} players")
  checked = []
  for player, (table, mask) in enumerate(zip(profile, mgame.legal_mask)):
    table = np.asarray(table, dtype=np.float64)
    if table.shape != mask.shape:
      raise ValueError(
          f"policy of player {player} has shape {table.shape}; expected "
          f"(num_states, num_actions) = {mask.shape}")
    if not np.all(np.isfinite(table)):
      raise ValueError(f"policy of player {player} has non-finite entries")
    bad = np.flatnonzero((table < 0).any(axis=1))
    if bad.size:
      raise ValueError(f"policy of player {player} has negative probabilities "
                       f"at state {_describe(mgame, bad[0])}")
    bad = np.flatnonzero((table * ~mask > 0).any(axis=1))
    if bad.size:
      raise ValueError(f"policy of player {player} puts mass on an illegal "
                       f"action at state {_describe(mgame, bad[0])}")
    sums = table.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
    if bad.size:
      raise ValueError(
          f"probabilities of player {player} sum to {sums[bad[0]]!r}, not 1, "
          f"at state {_describe(mgame, bad[0])}")
    checked.append(table)
  return checked


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
    if not self.simultaneous or state.is_simultaneous_node():
      return self.mgame.index_of(state)
    history = state.history()
    history = tuple(history[:len(history) - state.current_player()])
    index = self._turn_based_index.get(history)
    if index is None:
      index = self.mgame.index_of(_replay(self.mgame.game, history))
      self._turn_based_index[history] = index
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


def _replay(game, history):
  """The state of simultaneous-move `game` after the flat `history`."""
  state = game.new_initial_state()
  position = 0
  while position < len(history):
    if state.is_simultaneous_node():
      size = game.num_players()
      state.apply_actions(list(history[position:position + size]))
    else:
      size = 1
      state.apply_action(history[position])
    position += size
  return state


def to_policy(mgame, profile):
  """Profile -> OpenSpiel policy (see `MarkovPolicy`)."""
  return MarkovPolicy(mgame, profile)


def from_policy(mgame, policy):
  """Any OpenSpiel policy of the game or its turn-based conversion -> profile.

  The policy is queried once per (state, acting player), at a representative
  state: a simultaneous-move state with `player_id` when the policy's game is
  simultaneous, the matching turn-based state otherwise. A `TabularPolicy` is
  also checked at every state it holds: where it differs between states that
  share a Markov state, `NonMarkovPolicyError` is raised (evaluate such a
  policy on `MarkovGame.from_openspiel(game, state_key="history")`).
  """
  if isinstance(policy, MarkovPolicy) and policy.mgame is mgame:
    return [table.copy() for table in policy.profile]
  policy_game = getattr(policy, "game", None)
  turn_based = (mgame.current_player[0] == pyspiel.PlayerId.SIMULTANEOUS and
                policy_game is not None and
                policy_game.get_type().dynamics != _SIMULTANEOUS)
  profile = [np.zeros(mask.shape) for mask in mgame.legal_mask]
  for index, state in enumerate(mgame.states):
    mover = mgame.current_player[index]
    players = (range(mgame.num_players) if mover < 0 else [mover])
    for player in players:
      if mover < 0 and not state.legal_actions(player):
        profile[player][index, 0] = 1.0  # Does not act here (core.py).
        continue
      if turn_based:
        probabilities = policy.action_probabilities(
            _turn_based_state(policy_game, state, player))
      else:
        probabilities = policy.action_probabilities(state, player)
      for action, probability in probabilities.items():
        profile[player][index, action] = probability
    if mover >= 0:
      for player in range(mgame.num_players):
        if player != mover:
          profile[player][index, 0] = 1.0
  profile = validate_profile(mgame, profile)
  if isinstance(policy, policy_lib.TabularPolicy):
    _check_markov(mgame, policy, profile)
  return profile


def _check_markov(mgame, tabular_policy, profile):
  """Raises NonMarkovPolicyError where the tabular policy is not a function
  of the Markov state: every row is compared with the profile's row."""
  state_index = StateIndexer(mgame)
  # Rows are laid out player by player (TabularPolicy's constructor).
  row_players = np.repeat(
      np.arange(len(tabular_policy.states_per_player)),
      [len(keys) for keys in tabular_policy.states_per_player])
  row_states = np.array([state_index(state) for state in tabular_policy.states])
  tables = tabular_policy.action_probability_array
  legal = tabular_policy.legal_actions_mask.astype(bool)
  for player in range(mgame.num_players):
    rows = np.flatnonzero(row_players == player)
    expected = profile[player][row_states[rows]]
    width = min(expected.shape[1], tables.shape[1])
    difference = np.where(legal[rows, :width], np.abs(
        tables[rows, :width] - expected[:, :width]), 0.0).max(axis=1)
    bad = np.flatnonzero(difference > _SUM_TOLERANCE)
    if bad.size:
      row = rows[bad[0]]
      index = row_states[row]
      raise NonMarkovPolicyError(
          f"the policy of player {player} is not a function of the "
          f"{mgame.state_key} key {mgame.state_keys[index]!r}: it differs "
          f"by {difference[bad[0]]:.3g} between the histories "
          f"{list(mgame.states[index].history())} and "
          f"{tabular_policy.states[row].history()} (a policy of a "
          "simultaneous-move game may not depend on the other players' "
          "actions of the same round)")


def _turn_based_state(turn_based_game, state, player):
  """The turn-based state where `player` chooses in `state`'s round."""
  converted = turn_based_game.new_initial_state()
  for action in state.history():
    converted.apply_action(action)
  for earlier in range(player):
    if state.legal_actions(earlier):  # Players without actions are skipped.
      converted.apply_action(state.legal_actions(earlier)[0])
  assert converted.current_player() == player, (converted, player)
  return converted
