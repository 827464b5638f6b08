"""The policy boundary: every kind of policy `nash_conv`, `deviation_gains`
and `from_policy` accept is read exactly or rejected with a clear error.

Values are compared with OpenSpiel's `exploitability.nash_conv` on
`pyspiel.convert_to_turn_based(game)` wherever it computes them.
"""

import edge_games  # noqa: F401  (registers the edge-shaped test games)
import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

import vsg_spiel
from vsg_spiel import core

REPEATED_PD = ("repeated_game(stage_game=matrix_pd(),num_repetitions=3,"
               "recall=1)")
OSHI_ZUMO = "oshi_zumo(coins=4,size=1,horizon=3)"


def openspiel_nash_conv(game, policy):
  return exploitability.nash_conv(pyspiel.convert_to_turn_based(game), policy)


# ----------------------------------------------------------------------------
# History-dependent policies that are not TabularPolicy.


class RoundOnePolicy(policy_lib.Policy):
  """The issue's policy: in round 3, cooperate when the other player
  cooperated in round 1, otherwise 50/50; 50/50 before round 3."""

  def action_probabilities(self, state, player_id=None):
    player = state.current_player() if player_id is None else player_id
    history = state.history()
    if len(history) >= 4 and history[1 - player] == 0:
      return {0: 1.0, 1: 0.0}
    return {0: 0.5, 1: 0.5}


def test_history_dependent_policy_object_is_evaluated_exactly():
  game = pyspiel.load_game(REPEATED_PD)
  turn_based = pyspiel.convert_to_turn_based(game)
  policy = RoundOnePolicy(turn_based, [0, 1])
  theirs = openspiel_nash_conv(game, policy)
  assert theirs == pytest.approx(10.5, abs=1e-12)
  assert vsg_spiel.nash_conv(game, policy) == pytest.approx(theirs,
                                                            abs=1e-12)
  mgame = vsg_spiel.markov_game(game)
  with pytest.raises(vsg_spiel.NonMarkovPolicyError, match="not a function"):
    vsg_spiel.from_policy(mgame, policy)


def test_history_dependent_policy_of_the_simultaneous_game_and_callable():
  """The same policy asked at the game's own states (with player_id), and as
  a plain callable of turn-based states."""
  game = pyspiel.load_game(REPEATED_PD)
  simultaneous = RoundOnePolicy(game, [0, 1])
  assert vsg_spiel.nash_conv(game, simultaneous) == pytest.approx(10.5,
                                                                  abs=1e-12)
  turn_based_policy = RoundOnePolicy(pyspiel.convert_to_turn_based(game),
                                     [0, 1])
  callable_policy = turn_based_policy.action_probabilities
  np.testing.assert_allclose(
      vsg_spiel.deviation_gains(game, callable_policy),
      exploitability.nash_conv(turn_based_policy.game, turn_based_policy,
                               return_only_nash_conv=False).player_improvements,
      rtol=0, atol=1e-12)


def _random_tabular(game, seed):
  tabular = policy_lib.TabularPolicy(pyspiel.convert_to_turn_based(game))
  weights = np.random.default_rng(seed).exponential(
      size=tabular.action_probability_array.shape)
  weights *= tabular.legal_actions_mask
  tabular.action_probability_array = weights / weights.sum(1, keepdims=True)
  return tabular


class _Delegating(policy_lib.Policy):
  """A plain Policy (not a TabularPolicy) answering as another policy."""

  def __init__(self, answering):
    super().__init__(answering.game, answering.player_ids)
    self._answering = answering

  def action_probabilities(self, state, player_id=None):
    return self._answering.action_probabilities(state, player_id)


@pytest.mark.parametrize("kind", ["pyspiel_tabular", "dict", "policy_object"])
def test_history_dependent_policies_of_every_kind(kind):
  """A random policy of oshi_zumo's information states depends on the
  history; read as a pyspiel TabularPolicy, a policy dict or a plain Policy
  object answering from that table, it is evaluated exactly."""
  game = pyspiel.load_game(OSHI_ZUMO)
  tabular = _random_tabular(game, seed=11)
  theirs = openspiel_nash_conv(game, tabular)
  policy = {
      "pyspiel_tabular": policy_lib.python_policy_to_pyspiel_policy(tabular),
      "dict": tabular.to_dict(),
      "policy_object": _Delegating(tabular),
  }[kind]
  assert vsg_spiel.nash_conv(game, policy) == pytest.approx(theirs, abs=1e-9)
  with pytest.raises(vsg_spiel.NonMarkovPolicyError, match="not a function"):
    vsg_spiel.from_policy(vsg_spiel.markov_game(game), policy)


def test_policy_on_a_tree_too_large_to_read_is_rejected(monkeypatch):
  """Past MAX_HISTORIES a policy object cannot be read at every history: it
  is rejected before the walk (the size is counted on the tensors)."""
  game = pyspiel.load_game(OSHI_ZUMO)
  assert core.turn_based_tree_size(vsg_spiel.markov_game(game)) > 100
  monkeypatch.setattr(vsg_spiel.profiles, "MAX_HISTORIES", 100)
  with pytest.raises(vsg_spiel.NonMarkovPolicyError,
                     match="decision histories.*MarkovPolicy"):
    vsg_spiel.nash_conv(pyspiel.load_game(OSHI_ZUMO),
                        policy_lib.UniformRandomPolicy(game))


# ----------------------------------------------------------------------------
# float32 probabilities.

# Normalised in float32: the float64 sum is 0.99999995 (1e-9 is exceeded).
_FLOAT32_ROWS = np.array([[0.6720976233482361, 0.28466862440109253,
                           0.04323370009660721]] * 2, dtype=np.float32)
_FLOAT32_ROWS[1] = _FLOAT32_ROWS[1, ::-1]


class Float32Policy(policy_lib.Policy):

  def action_probabilities(self, state, player_id=None):
    player = state.current_player() if player_id is None else player_id
    return dict(enumerate(_FLOAT32_ROWS[player]))


def _float32_policies(game):
  turn_based = pyspiel.convert_to_turn_based(game)
  tabular = policy_lib.TabularPolicy(turn_based)
  tabular.action_probability_array = np.stack(
      [_FLOAT32_ROWS[state.current_player()] for state in tabular.states])
  assert tabular.action_probability_array.dtype == np.float32
  return {
      "policy_object": Float32Policy(turn_based, [0, 1]),
      "tabular": tabular,
      "dict": {key: list(zip(range(3), _FLOAT32_ROWS[player]))
               for player, keys in enumerate(tabular.states_per_player)
               for key in keys},
      "profile": [row[None] for row in _FLOAT32_ROWS],
      "stacked_profile": _FLOAT32_ROWS[:, None, :],
  }


@pytest.mark.parametrize("kind", ["policy_object", "tabular", "dict",
                                  "profile", "stacked_profile"])
def test_float32_policies_are_accepted_and_renormalised(kind):
  assert abs(_FLOAT32_ROWS.astype(np.float64).sum(1) - 1).min() > 1e-9
  game = pyspiel.load_game("matrix_rps")
  theirs = openspiel_nash_conv(game, _float32_policies(game)["policy_object"])
  policy = _float32_policies(game)[kind]
  assert vsg_spiel.nash_conv(game, policy) == pytest.approx(theirs, abs=1e-6)
  profile = vsg_spiel.from_policy(vsg_spiel.markov_game(game), policy)
  np.testing.assert_allclose([p.sum() for p in profile], 1.0, rtol=0,
                             atol=1e-15)


def test_sums_beyond_float32_rounding_are_rejected_with_the_tolerance():
  game = pyspiel.load_game("matrix_rps")
  mgame = vsg_spiel.markov_game(game)
  off = np.array([[0.5, 0.3, 0.2 - 1e-5]])
  with pytest.raises(ValueError, match=r"sum to 0.99999.*n \* 2\*\*-23"):
    vsg_spiel.nash_conv(mgame, [off, np.ones((1, 3)) / 3])
  with pytest.raises(ValueError, match="player 1.*sum to"):
    vsg_spiel.nash_conv(game, lambda state: {0: 0.5, 1: 0.3, 2: 0.2 - 1e-5}
                        if state.current_player() else {0: 1.0})


# ----------------------------------------------------------------------------
# Action ids out of range or illegal.


class _Constant(policy_lib.Policy):

  def __init__(self, game, player_ids, answer):
    super().__init__(game, player_ids)
    self._answer = answer

  def action_probabilities(self, state, player_id=None):
    return self._answer


@pytest.mark.parametrize("action", [-1, 3, 1.5])
def test_action_ids_out_of_range_name_player_state_and_action(action):
  game = pyspiel.load_game("matrix_rps")
  turn_based = pyspiel.convert_to_turn_based(game)
  bad = {action: 1.0}
  policies = [
      lambda state: bad,
      _Delegating(_Constant(turn_based, [0, 1], bad)),
      {"Current player: 0\nObserving player: 0. Non-terminal": [(action, 1.0)],
       "Current player: 1\nObserving player: 1. Non-terminal": [(0, 1.0)]},
  ]
  if action == int(action):  # pyspiel's table holds integer ids only.
    policies.append(pyspiel.TabularPolicy(policies[-1]))
  if action == -1:  # OpenSpiel raises too (a -1 index).
    with pytest.raises(Exception):
      openspiel_nash_conv(game, policies[1])
  for policy in policies:
    with pytest.raises(ValueError, match=rf"action {action:g} for player 0 "
                       r"at the state with history \[\].*0 to 2"):
      vsg_spiel.nash_conv(game, policy)


def test_illegal_action_with_positive_probability_is_named():
  """oshi_zumo(coins=2): after bidding 2 a player has no coins left."""
  game = pyspiel.load_game("oshi_zumo(coins=2,size=1,horizon=2)")

  def bid_two(state):
    return {2: 1.0}

  with pytest.raises(ValueError, match=r"player 0 at the state with history "
                     r"\[2, \d\].*probability 1.0 on illegal action 2"):
    vsg_spiel.nash_conv(game, bid_two)
  tabular = policy_lib.TabularPolicy(pyspiel.convert_to_turn_based(game))
  tabular.action_probability_array[:] = 0
  tabular.action_probability_array[:, 2] = 1.0
  with pytest.raises(ValueError, match="illegal action 2"):
    vsg_spiel.deviation_gains(game, tabular)


# ----------------------------------------------------------------------------
# A policy of another game.


def test_policy_of_another_game_names_both_games():
  pd = pyspiel.load_game("matrix_pd")
  rps = pyspiel.load_game("matrix_rps")
  for policy in (policy_lib.TabularPolicy(rps),
                 policy_lib.TabularPolicy(pyspiel.convert_to_turn_based(rps)),
                 policy_lib.UniformRandomPolicy(rps),
                 vsg_spiel.to_policy(vsg_spiel.markov_game(rps),
                                     vsg_spiel.uniform_profile(
                                         vsg_spiel.markov_game(rps)))):
    for read in (vsg_spiel.nash_conv, vsg_spiel.deviation_gains,
                 lambda game, p: vsg_spiel.from_policy(
                     vsg_spiel.markov_game(game), p)):
      with pytest.raises(ValueError, match=r"matrix_rps\(\).*matrix_pd\(\)"):
        read(pd, policy)


def test_policy_table_of_another_game_is_missing_states_or_actions():
  """A policy dict carries no game: it fails on a missing information state
  or on an action the game does not have."""
  pd = pyspiel.load_game("matrix_pd")
  table = policy_lib.TabularPolicy(pyspiel.convert_to_turn_based(
      pyspiel.load_game(OSHI_ZUMO))).to_dict()
  with pytest.raises(ValueError, match="no entry for player 0"):
    vsg_spiel.nash_conv(pd, table)
  # matrix_rps has matrix_pd's information state strings, and 3 actions.
  table = policy_lib.TabularPolicy(
      pyspiel.convert_to_turn_based(pyspiel.load_game("matrix_rps"))).to_dict()
  with pytest.raises(ValueError, match=r"action 2 for player 0.*matrix_pd"):
    vsg_spiel.nash_conv(pd, table)


# ----------------------------------------------------------------------------
# Stacked arrays and unhelpful types.


def test_stacked_profile_array_is_accepted():
  game = pyspiel.load_game("matching_pennies_3p")
  mgame = vsg_spiel.markov_game(game)
  profile = vsg_spiel.random_profile(mgame, np.random.default_rng(1))
  stacked = np.stack(profile)
  assert stacked.shape == (3, 1, 2)
  assert vsg_spiel.nash_conv(game, stacked) == pytest.approx(
      openspiel_nash_conv(game, vsg_spiel.to_policy(mgame, profile)),
      abs=1e-12)
  with pytest.raises(ValueError, match=r"\(num_players, num_states, "
                     r"num_actions\)"):
    vsg_spiel.nash_conv(game, stacked[0])


@pytest.mark.parametrize("policy", ["uniform", None, 3, b"x"])
def test_policy_of_no_accepted_type_says_what_is_expected(policy):
  game = pyspiel.load_game("matrix_rps")
  for read in (vsg_spiel.nash_conv, vsg_spiel.deviation_gains,
               lambda game, p: vsg_spiel.from_policy(
                   vsg_spiel.markov_game(game), p)):
    with pytest.raises(TypeError, match="policy must be an OpenSpiel policy.*"
                       "profile"):
      read(game, policy)


@pytest.mark.parametrize("game", [None, 3, ""])
def test_game_of_no_accepted_type_says_what_is_expected(game):
  policy = vsg_spiel.uniform_profile(vsg_spiel.markov_game("matrix_rps"))
  with pytest.raises((TypeError, ValueError),
                     match="game must be a pyspiel.Game, a game string"
                     if game != "" else "game must be a game string"):
    vsg_spiel.nash_conv(game, policy)


# ----------------------------------------------------------------------------
# The cache of enumerated games.


def test_cache_serves_the_same_game_and_misses_on_any_other():
  game = pyspiel.load_game("oshi_zumo(coins=4,size=1,horizon=3)")
  assert vsg_spiel.markov_game(game) is vsg_spiel.markov_game(game)
  assert vsg_spiel.markov_game(OSHI_ZUMO) is vsg_spiel.markov_game(OSHI_ZUMO)
  other = pyspiel.load_game("oshi_zumo(coins=3,size=1,horizon=3)")
  assert (vsg_spiel.markov_game(other).num_states !=
          vsg_spiel.markov_game(game).num_states)
  # Same string "short_name()", other payoffs: never one entry.
  first = pyspiel.create_matrix_game([[1, 0], [0, 1]], [[1, 0], [0, 1]])
  second = pyspiel.create_matrix_game([[5, 0], [0, 1]], [[1, 0], [0, 1]])
  assert str(first) == str(second)
  np.testing.assert_array_equal(vsg_spiel.markov_game(first).rewards[0, 0],
                                [[1, 0], [0, 1]])
  np.testing.assert_array_equal(vsg_spiel.markov_game(second).rewards[0, 0],
                                [[5, 0], [0, 1]])
  assert vsg_spiel.markov_game is core.markov_game


def _decision_nodes(game):
  stack, count = [game.new_initial_state()], 0
  while stack:
    state = stack.pop()
    if state.is_terminal():
      continue
    if state.is_chance_node():
      stack.extend(state.child(action) for action, _ in state.chance_outcomes())
      continue
    count += 1
    stack.extend(state.child(action) for action in state.legal_actions())
  return count


@pytest.mark.parametrize("spec", [
    OSHI_ZUMO, REPEATED_PD, "nim(pile_sizes=1;2;3)",
    "python_iterated_prisoners_dilemma(max_game_length=3)"])
def test_turn_based_tree_size_counts_the_decision_nodes(spec):
  game = pyspiel.load_game(spec)
  turn_based = (pyspiel.convert_to_turn_based(game)
                if game.get_type().dynamics ==
                pyspiel.GameType.Dynamics.SIMULTANEOUS else game)
  assert core.turn_based_tree_size(vsg_spiel.markov_game(game)) == (
      _decision_nodes(turn_based))


@pytest.mark.parametrize("name", ["python_vsg_test_solo_round",
                                  "python_vsg_test_chance_exit"])
def test_policies_on_edge_shaped_games_equal_openspiel(name):
  """A player without legal actions in a round, and a chance root that can
  end the game (tests/edge_games.py): every policy kind equals OpenSpiel."""
  game = pyspiel.load_game(name)
  mgame = vsg_spiel.markov_game(game)
  ours = vsg_spiel.to_policy(
      mgame, vsg_spiel.random_profile(mgame, np.random.default_rng(2)))
  turn_based = pyspiel.convert_to_turn_based(game)
  tabular = policy_lib.tabular_policy_from_callable(
      turn_based, ours.action_probabilities)
  theirs = exploitability.nash_conv(turn_based, tabular)
  for policy in (ours, tabular, tabular.to_dict(),
                 lambda state: ours.action_probabilities(state)):
    assert vsg_spiel.nash_conv(game, policy) == pytest.approx(theirs,
                                                              abs=1e-12)
