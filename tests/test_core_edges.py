"""Game shapes at the edges of the Markov-game core (issue 12, section 2).

Each right value is OpenSpiel's on `pyspiel.convert_to_turn_based(game)` and
a hand computation written next to it.
"""

import edge_games  # noqa: F401  (registers the test games)
import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability
from open_spiel.python.algorithms import expected_game_score

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg

SOLO = "python_vsg_test_solo_round"
EXIT = "python_vsg_test_chance_exit"


def _openspiel_nash_conv(game, mgame, profile):
  return exploitability.nash_conv(pyspiel.convert_to_turn_based(game),
                                  vsg_spiel.to_policy(mgame, profile))


def _fixed_profile(mgame, probabilities):
  """Every player plays `probabilities` over actions 0, 1 everywhere."""
  return [np.tile(probabilities, (mgame.num_states, 1)) for _ in range(2)]


def test_edges_no_legal_action_player_does_not_act():
  game = pyspiel.load_game(SOLO)
  mgame = core.MarkovGame.from_openspiel(game)
  round_two = np.flatnonzero([len(state.legal_actions(1)) == 0
                              for state in mgame.states])
  assert round_two.size == 4  # One state per round-1 joint action.
  # Player 1 has the single action 0 there; player 0 keeps both.
  np.testing.assert_array_equal(mgame.legal_mask[1][round_two],
                                [[True, False]] * 4)
  np.testing.assert_array_equal(mgame.legal_mask[0][round_two],
                                [[True, True]] * 4)
  uniform = vsg_spiel.uniform_profile(mgame)
  # By hand: player 0 gains 2 - 1 in round 2, player 1 gains 1 - 0.5.
  np.testing.assert_allclose(vsg_spiel.deviation_gains(mgame, uniform),
                             [1.0, 0.5], atol=1e-15)
  assert _openspiel_nash_conv(game, mgame, uniform) == pytest.approx(
      1.5, abs=1e-12)
  # An OpenSpiel policy of the turn-based game is read the same way.
  turn_based = pyspiel.convert_to_turn_based(game)
  assert vsg_spiel.nash_conv(
      game, policy_lib.UniformRandomPolicy(turn_based)) == pytest.approx(
          1.5, abs=1e-12)
  random = vsg_spiel.random_profile(mgame, np.random.default_rng(0))
  assert vsg_spiel.nash_conv(mgame, random) == pytest.approx(
      _openspiel_nash_conv(game, mgame, random), abs=1e-12)


def test_edges_no_legal_action_player_solvers_match_openspiel():
  game = pyspiel.load_game(SOLO)
  for solver in (vpg.VPGSolver(game, temperature=0.3, step=0.5),
                 vpg.SampledVPGSolver(game, temperature=0.3, step=0.5,
                                      seed=0, episodes_per_iteration=8)):
    for _ in range(3):
      solver.iteration()
    assert solver.nash_conv() == pytest.approx(
        exploitability.nash_conv(pyspiel.convert_to_turn_based(game),
                                 solver.policy()), abs=1e-12)


def test_edges_chance_root_that_ends_the_game_is_part_of_the_values():
  game = pyspiel.load_game(EXIT, {"entry_reward": 0.25})
  mgame = core.MarkovGame.from_openspiel(game)
  assert mgame.initial_distribution.sum() == pytest.approx(0.5)
  # Before the first decision: the exit pays 1 to player 0 w.p. 1/2 and the
  # entry 0.25 to player 1 w.p. 1/2.
  np.testing.assert_allclose(mgame.initial_rewards, [0.5, 0.125])
  profile = _fixed_profile(mgame, [0.8, 0.2])
  # By hand: 0.5 x (0.24 + 0.96), as in the issue.
  assert vsg_spiel.nash_conv(mgame, profile) == pytest.approx(0.6, abs=1e-12)
  assert _openspiel_nash_conv(game, mgame, profile) == pytest.approx(
      0.6, abs=1e-12)
  # Values from the start: player 0 gets 0.5 x 1 + 0.5 x 0.36, player 1
  # 0.5 x 0.25 - 0.5 x 0.36; OpenSpiel's expected returns agree.
  start = mgame.start_values(vsg_spiel.policy_values(mgame, profile))
  np.testing.assert_allclose(start, [0.68, -0.055], atol=1e-12)
  turn_based = pyspiel.convert_to_turn_based(game)
  policy = vsg_spiel.to_policy(mgame, profile)
  theirs = expected_game_score.policy_value(turn_based.new_initial_state(),
                                            [policy, policy])
  np.testing.assert_allclose(start, theirs, atol=1e-12)


def test_edges_chance_root_that_ends_the_game_solvers_match_openspiel():
  game = pyspiel.load_game(EXIT)
  turn_based = pyspiel.convert_to_turn_based(game)
  solvers = (vpg.VPGSolver(game, temperature=0.5, step=0.5),
             zero_sum_vpg.ZeroSumVPGSolver(
                 pyspiel.load_game(EXIT, {"exit_reward": 0.0}),
                 temperature=0.5, step=0.5))
  for solver in solvers:
    for _ in range(3):
      solver.iteration()
    assert solver.nash_conv() == pytest.approx(
        exploitability.nash_conv(turn_based, solver.policy()), abs=1e-12)


def test_edges_chance_root_values_carry_through_the_signal_augmentation():
  """The correlated solver's player values include what is paid before the
  first decision (one signal: the device is the policies themselves)."""
  game = pyspiel.load_game(EXIT, {"entry_reward": 0.25})
  solver = correlated_vpg.CorrelatedVPGSolver(game, num_signals=1)
  solver.iteration()
  mgame = solver.mgame
  expected = mgame.start_values(vsg_spiel.policy_values(mgame,
                                                        solver.profile()))
  np.testing.assert_allclose(solver.player_values(), expected, atol=1e-15)
  turn_based = pyspiel.convert_to_turn_based(game)
  policy = vsg_spiel.to_policy(mgame, solver.profile())
  np.testing.assert_allclose(
      solver.player_values(),
      expected_game_score.policy_value(turn_based.new_initial_state(),
                                       [policy, policy]), atol=1e-12)


@pytest.mark.parametrize("game_string, needed", [
    ("python_vsg_routing(num_players=6,horizon=1)", "2.7 GiB"),
    ("python_vsg_routing(num_players=8,split_levels=4)", "687.4 GiB"),
])
def test_edges_joint_action_width_fails_before_allocating(game_string,
                                                          needed):
  game = pyspiel.load_game(game_string)
  with pytest.raises(ValueError) as error:
    core.MarkovGame.from_openspiel(game)
  message = str(error.value)
  assert f"need about {needed}" in message
  assert "max_bytes=2147483648" in message
  assert "num_distinct_actions^num_players" in message
  assert "MarkovGame.from_openspiel(game, max_bytes=...)" in message
  # Every entry point that builds the tensors fails the same way.
  with pytest.raises(ValueError, match="max_bytes"):
    vsg_spiel.nash_conv(game, policy_lib.UniformRandomPolicy(game))


def test_edges_joint_action_width_limit_can_be_raised():
  game = pyspiel.load_game(
      "python_vsg_routing(num_players=3,split_levels=3,horizon=2)")
  # 10^3 joint actions at 208 bytes each per state: 208000 bytes a state.
  with pytest.raises(ValueError, match=r"3 Markov state\(s\) x 1000 joint"):
    core.MarkovGame.from_openspiel(game, max_bytes=500_000)
  mgame = core.MarkovGame.from_openspiel(game, max_bytes=700_000)
  assert mgame.num_states == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"max_bytes": 0}, "max_bytes must be an integer >= 1"),
    ({"max_bytes": 1.5}, "max_bytes must be an integer >= 1"),
    ({"max_states": 0}, "max_states must be an integer >= 1"),
    ({"discount": 0.0}, "discount must be a finite real number in"),
    ({"discount": float("nan")}, "discount must be a finite real number in"),
])
def test_edges_bad_enumeration_limits_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    core.MarkovGame.from_openspiel("matrix_rps", **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_payoffs_of_an_openspiel_game_are_an_error(bad):
  # from_arrays rejected them; a pyspiel game's were taken in silently and
  # NashConv came out NaN.
  game = pyspiel.create_matrix_game([[1.0, 0.0], [0.0, 1.0]],
                                    [[0.0, 1.0], [bad, 0.0]])
  uniform = [np.full((1, 2), 0.5), np.full((1, 2), 0.5)]
  with pytest.raises(ValueError, match=r"player 1's reward or return is not "
                     r"finite .* in the game 2x2 \(from "
                     r"pyspiel.create_matrix_game\); .*must be finite"):
    vsg_spiel.nash_conv(game, uniform)
  tensor = pyspiel.create_tensor_game([[[1.0, bad], [0.0, 1.0]]] * 2)
  with pytest.raises(ValueError, match=r"in the game 2x2 \(from "
                     r"pyspiel.create_tensor_game\)"):
    vsg_spiel.nash_conv(tensor, uniform)
