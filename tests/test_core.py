"""The Markov-game core: enumeration, tensors, conversions and bad input."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib

import vsg_spiel


def test_matrix_game_tensors():
  game = pyspiel.load_game("matrix_pd")
  mgame = vsg_spiel.markov_game(game)
  assert (mgame.num_players, mgame.num_states, mgame.num_actions) == (
      2, 1, (2, 2))
  assert mgame.horizon == 1 and mgame.discount == 1.0
  state = game.new_initial_state()
  for a0 in range(2):
    for a1 in range(2):
      child = state.clone()
      child.apply_actions([a0, a1])
      np.testing.assert_array_equal(mgame.rewards[:, 0, a0, a1],
                                    child.returns())
  assert mgame.transitions.nnz == 0  # every joint action ends the game


def test_chance_resolved_into_transitions():
  """IPD continues with probability 1 - 0.125 after every round."""
  game = pyspiel.load_game(
      "python_iterated_prisoners_dilemma(max_game_length=3)")
  mgame = vsg_spiel.markov_game(game)
  assert mgame.num_states == 1 + 4 + 16
  assert [len(layer) for layer in mgame.layers] == [1, 4, 16]
  row_mass = np.asarray(mgame.transitions.sum(axis=1)).ravel()
  first_layer = row_mass[:mgame.num_joint_actions]
  np.testing.assert_allclose(first_layer, 0.875)
  np.testing.assert_allclose(row_mass[-16 * 4:], 0.0)  # last round ends it
  # Rewards come from returns(): (C, D) pays 0 to player 0, 10 to player 1.
  np.testing.assert_array_equal(mgame.rewards[:, 0, 0, 1], [0, 10])


def test_observation_key_merges_histories():
  game = pyspiel.load_game("oshi_zumo(coins=4,size=1,horizon=3)")
  by_observation = vsg_spiel.MarkovGame.from_openspiel(game)
  by_history = vsg_spiel.MarkovGame.from_openspiel(game, state_key="history")
  assert by_observation.state_key == "observation"
  assert by_observation.num_states < by_history.num_states
  assert by_observation.horizon == by_history.horizon == 3
  # Legal bids shrink with the coins left.
  for index, state in enumerate(by_observation.states):
    assert set(np.flatnonzero(by_observation.legal_mask[1][index])) == set(
        state.legal_actions(1))


def test_profile_policy_round_trip_is_exact():
  game = pyspiel.load_game("oshi_zumo(coins=4,size=1,horizon=3)")
  mgame = vsg_spiel.markov_game(game)
  profile = vsg_spiel.random_profile(mgame, np.random.default_rng(0))
  policy = vsg_spiel.to_policy(mgame, profile)
  assert policy.game.get_type().short_name == "turn_based_simultaneous_game"
  for got, want in zip(vsg_spiel.from_policy(mgame, policy), profile):
    np.testing.assert_array_equal(got, want)
  # Through an OpenSpiel TabularPolicy of the turn-based game and back.
  tabular = policy_lib.tabular_policy_from_callable(
      policy.game, policy.action_probabilities)
  for got, want in zip(vsg_spiel.from_policy(mgame, tabular), profile):
    np.testing.assert_array_equal(got, want)
  # And the policy answers identically at simultaneous and turn-based states.
  state = mgame.states[5]
  turn_based = policy.game.new_initial_state()
  for action in state.history():
    turn_based.apply_action(action)
  assert policy.action_probabilities(state, 0) == (
      policy.action_probabilities(turn_based))


def test_rejects_imperfect_information():
  with pytest.raises(ValueError, match="imperfect information"):
    vsg_spiel.MarkovGame.from_openspiel(pyspiel.load_game("kuhn_poker"))


def test_rejects_mean_field_game():
  with pytest.raises(ValueError, match="mean-field"):
    vsg_spiel.MarkovGame.from_openspiel(
        pyspiel.load_game("mfg_crowd_modelling"))


def test_rejects_games_too_long_to_enumerate():
  game = pyspiel.load_game("python_iterated_prisoners_dilemma")
  with pytest.raises(ValueError, match="max_game_length=9999"):
    vsg_spiel.MarkovGame.from_openspiel(game, max_states=1000)


def test_rejects_unknown_state_key():
  with pytest.raises(ValueError, match="state_key"):
    vsg_spiel.MarkovGame.from_openspiel(pyspiel.load_game("matrix_rps"),
                                        state_key="infostate")


def test_rejects_bad_profiles():
  mgame = vsg_spiel.markov_game(pyspiel.load_game("matrix_rps"))
  with pytest.raises(ValueError, match="shape"):
    vsg_spiel.nash_conv(mgame, [np.ones((1, 2)) / 2, np.ones((1, 3)) / 3])
  with pytest.raises(ValueError, match="2 players"):
    vsg_spiel.nash_conv(mgame, [np.ones((1, 3)) / 3])
  with pytest.raises(ValueError, match="sum to"):
    vsg_spiel.nash_conv(mgame, [np.full((1, 3), 0.3), np.ones((1, 3)) / 3])
  with pytest.raises(ValueError, match="negative"):
    vsg_spiel.nash_conv(mgame, [np.array([[1.5, -0.5, 0.0]]),
                                np.ones((1, 3)) / 3])


def test_rejects_mass_on_illegal_actions():
  mgame = vsg_spiel.markov_game(
      pyspiel.load_game("oshi_zumo(coins=2,size=1,horizon=2)"))
  profile = vsg_spiel.uniform_profile(mgame)
  broke = int(np.flatnonzero(~mgame.legal_mask[0].all(axis=1))[0])
  profile[0][broke] = 1.0 / profile[0].shape[1]
  with pytest.raises(ValueError, match="illegal action"):
    vsg_spiel.validate_profile(mgame, profile)


def test_rejects_openspiel_policy_that_does_not_sum_to_one():
  game = pyspiel.load_game("matrix_rps")
  tabular = policy_lib.TabularPolicy(game)
  tabular.action_probability_array[:] = 0.2
  with pytest.raises(ValueError, match="sum to"):
    vsg_spiel.nash_conv(game, tabular)


@pytest.mark.parametrize("keep", [None, 0, 2, 3])
def test_expect_over_actions_with_stored_contraction_order(keep):
  """Four players (a contraction order is stored per shape): equal to the
  explicit product-sum, and the stored order gives the same bits on a second
  call with other values of the same shapes."""
  rng = np.random.default_rng(keep or 0)
  sizes = (2, 3, 2, 4)
  for _ in range(2):
    joint = rng.normal(size=(5,) + sizes)
    policies = [rng.dirichlet(np.ones(size), size=5) for size in sizes]
    weights = np.ones((5,) + sizes)
    for player, policy in enumerate(policies):
      if player != keep:
        shape = [5, 1, 1, 1, 1]
        shape[1 + player] = sizes[player]
        weights = weights * policy.reshape(shape)
    axes = tuple(1 + player for player in range(4) if player != keep)
    expected = (weights * joint).sum(axis=axes)
    got = vsg_spiel.core.expect_over_actions(joint, policies, keep=keep)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    operands = [joint, [Ellipsis, 4, 0, 1, 2, 3]]
    for player, policy in enumerate(policies):
      if player != keep:
        operands += [policy, [4, player]]
    np.testing.assert_array_equal(got, np.einsum(
        *operands, [Ellipsis, 4] + ([] if keep is None else [keep]),
        optimize=True))
