"""Tests of the differential game: model, OpenSpiel game, continuous env."""

import numpy as np
import pytest

import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

from vsg_spiel.games import differential

_NAME = "python_vsg_differential"


def _load(**params):
  return pyspiel.load_game(_NAME, params)


# --- The numpy model ---------------------------------------------------------


@pytest.mark.parametrize("a1, a2, expected", [
    (5.0, 5.0, 10.0),             # f2 = 10 at its peak; f1 = -80*0.8*2/9.
    (-5.0, -5.0, 0.0),            # f1 = 0 at its peak; f2 = -190.
    (0.0, 0.0, -40.0 / 9.0),      # f1 = 0.8*(-25/9 - 25/9); f2 = -40.
    (5.0, -5.0, -80.0 / 9.0),     # f1 = 0.8*(-100/9); f2 = -90.
    (4.0, 5.0, 9.0),              # f2 = -1 + 10; f1 = 0.8*(-181/9).
    (-10.0, 10.0, -200.0 / 9.0),  # f1 = 0.8*(-25/9 - 225/9); f2 = -240.
])
def test_model_known_points(a1, a2, expected):
  model = differential.DifferentialModel()
  assert model.reward(a1, a2) == pytest.approx(expected, abs=1e-12)
  assert model.reward(a2, a1) == pytest.approx(expected, abs=1e-12)


def test_model_peaks_and_broadcasting():
  model = differential.DifferentialModel()
  f1, f2 = model.peaks(np.array([-5.0, 5.0]), np.array([-5.0, 5.0]))
  np.testing.assert_allclose(f1, [0.0, -0.8 * 200 / 9])
  np.testing.assert_allclose(f2, [-190.0, 10.0])
  grid = np.linspace(-10, 10, 7)
  matrix = model.payoff_matrix(grid)
  assert matrix.shape == (7, 7)
  np.testing.assert_array_equal(matrix, model.reward(grid[:, None], grid))
  assert matrix.max() <= 10.0


def test_model_custom_constants():
  model = differential.DifferentialModel(height_1=2.0, scale_1=1.0,
                                         centre_1=0.0, height_2=1.0,
                                         scale_2=2.0, centre_2=3.0, offset=1.0)
  # At (1, 2): f1 = 2*(-1 - 4) = -10, f2 = -((1-3)/2)^2 - ((2-3)/2)^2 + 1.
  assert model.reward(1.0, 2.0) == pytest.approx(max(-10.0, -1.0 - 0.25 + 1))


# --- The OpenSpiel game ------------------------------------------------------


def test_default_parameters():
  game = pyspiel.load_game(_NAME)
  params = game.get_parameters()
  assert params["num_actions"] == 41 and params["horizon"] == 25
  assert params["action_low"] == -10.0 and params["action_high"] == 10.0
  assert game.num_players() == 2 and game.num_distinct_actions() == 41
  assert game.max_game_length() == 25
  values = game.action_values
  assert values[0] == -10.0 and values[-1] == 10.0
  assert values[10] == -5.0 and values[30] == 5.0
  assert game.max_utility() == pytest.approx(250.0)
  assert game.min_utility() == pytest.approx(25 * game.payoffs.min())
  assert game.get_type().utility == pyspiel.GameType.Utility.IDENTICAL


@pytest.mark.parametrize("params", [
    {},
    {"num_actions": 2},
    {"num_actions": 2, "horizon": 3},
    {"horizon": 1},
    {"num_actions": 5, "horizon": 2},
    {"num_actions": 7, "action_low": -3.0, "action_high": 8.0, "horizon": 4,
     "height_1": 1.5, "scale_1": 2.0, "centre_1": 1.0, "height_2": 0.5,
     "scale_2": 0.5, "centre_2": -1.0, "offset": 3.0},
])
def test_random_sim(params):
  game = _load(**params)
  pyspiel.random_sim_test(game, num_sims=10, serialize=True, verbose=False)
  pyspiel.random_sim_test(pyspiel.convert_to_turn_based(game), num_sims=3,
                          serialize=False, verbose=False)


def test_load_by_string_and_serialize_round_trip():
  game = pyspiel.load_game(f"{_NAME}(num_actions=11,horizon=3,offset=2.0)")
  assert game.num_distinct_actions() == 11
  assert game.model.offset == 2.0
  state = game.new_initial_state()
  state.apply_actions([3, 7])
  state.apply_actions([10, 0])
  text = pyspiel.serialize_game_and_state(game, state)
  game2, state2 = pyspiel.deserialize_game_and_state(text)
  assert str(game2) == str(game)
  assert str(state2) == str(state) == "t=2"
  assert state2.history() == state.history()
  np.testing.assert_array_equal(state2.returns(), state.returns())
  state3 = game.deserialize_state(state.serialize())
  np.testing.assert_array_equal(state3.returns(), state.returns())


def test_episode_rewards_returns_and_observations():
  game = _load(horizon=3)
  state = game.new_initial_state()
  assert state.current_player() == pyspiel.PlayerId.SIMULTANEOUS
  assert state.observation_string(0) == "t=0"
  expected_tensor = np.zeros(4)
  expected_tensor[0] = 1
  np.testing.assert_array_equal(state.observation_tensor(1), expected_tensor)
  total = 0.0
  for step, (k1, k2) in enumerate([(30, 30), (10, 10), (20, 20)]):
    state.apply_actions([k1, k2])
    reward = game.model.reward(game.action_values[k1], game.action_values[k2])
    total += reward
    np.testing.assert_allclose(state.rewards(), [reward, reward])
    np.testing.assert_allclose(state.returns(), [total, total])
    assert state.observation_string(0) == f"t={step + 1}"
    assert state.information_state_string(1) == f"t={step + 1}"
    np.testing.assert_array_equal(state.information_state_tensor(0),
                                  state.observation_tensor(0))
  assert state.is_terminal()
  np.testing.assert_allclose(state.returns(), [10.0 - 40 / 9, 10.0 - 40 / 9])
  assert state.action_to_string(0, 30) == "a=5.000"
  assert state.action_to_string(1, 10) == "a=-5.000"


@pytest.mark.parametrize("params, match", [
    ({"num_actions": 1}, "num_actions"),
    ({"action_low": 10.0}, "action_low"),
    ({"action_low": 1.0, "action_high": -1.0}, "action_low"),
    ({"horizon": 0}, "horizon"),
    ({"scale_1": 0.0}, "scale_1"),
    ({"scale_2": -1.0}, "scale_2"),
])
def test_bad_parameters(params, match):
  with pytest.raises(ValueError, match=match):
    _load(**params)


# --- Discrete vs continuous --------------------------------------------------


def test_grid_and_continuous_rewards_agree_on_every_grid_point():
  game = pyspiel.load_game(_NAME)
  k1, k2 = np.meshgrid(np.arange(41), np.arange(41), indexing="ij")
  k1, k2 = k1.ravel(), k2.ravel()
  env = differential.BatchedDifferentialEnv.from_game(game,
                                                      batch_size=len(k1))
  env.reset()
  actions = np.stack([game.action_values[k1], game.action_values[k2]], axis=1)
  _, env_rewards, _ = env.step(actions)
  state_rewards = []
  for a1, a2 in zip(k1, k2):
    state = game.new_initial_state()
    state.apply_actions([int(a1), int(a2)])
    state_rewards.append(state.rewards())
  np.testing.assert_array_equal(env_rewards, np.array(state_rewards))
  np.testing.assert_array_equal(env_rewards[:, 0],
                                game.model.reward(actions[:, 0],
                                                  actions[:, 1]))


def test_env_episode():
  env = differential.BatchedDifferentialEnv(batch_size=3, horizon=2)
  obs = env.reset()
  assert obs.shape == (3, 3) and env.observation_size == 3
  np.testing.assert_array_equal(obs, [[1, 0, 0]] * 3)
  obs, rewards, done = env.step([[5.0, 5.0], [-5.0, -5.0], [0.3, -9.9]])
  np.testing.assert_allclose(rewards[:2], [[10.0, 10.0], [0.0, 0.0]])
  assert rewards.shape == (3, 2) and not done
  np.testing.assert_array_equal(obs, [[0, 1, 0]] * 3)
  obs, _, done = env.step(np.zeros((3, 2)))
  assert done
  np.testing.assert_array_equal(obs, [[0, 0, 1]] * 3)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(np.zeros((3, 2)))


def test_env_rejects_bad_actions():
  env = differential.BatchedDifferentialEnv(batch_size=2)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(np.zeros((2, 2)))
  env.reset()
  with pytest.raises(ValueError, match="shape"):
    env.step(np.zeros((3, 2)))
  with pytest.raises(ValueError, match="action_low"):
    env.step([[0.0, 10.5], [0.0, 0.0]])
  with pytest.raises(ValueError, match="action_low"):
    env.step([[np.nan, 0.0], [0.0, 0.0]])
  with pytest.raises(ValueError, match="batch_size"):
    differential.BatchedDifferentialEnv(batch_size=0)
  with pytest.raises(ValueError, match="horizon"):
    differential.BatchedDifferentialEnv(horizon=0)


# --- Equilibria, checked with OpenSpiel's own NashConv -----------------------


class _ConstantPolicy(policy_lib.Policy):
  """Every player plays the same grid action at every state."""

  def __init__(self, game, action):
    super().__init__(game, list(range(game.num_players())))
    self._action = action

  def action_probabilities(self, state, player_id=None):
    return {self._action: 1.0}


@pytest.mark.parametrize("num_actions, horizon", [(21, 1), (5, 2)])
def test_both_optima_are_pure_equilibria(num_actions, horizon):
  game = _load(num_actions=num_actions, horizon=horizon)
  turn_based = pyspiel.convert_to_turn_based(game)
  values = game.action_values
  for target in (5.0, -5.0):
    action = int(np.flatnonzero(values == target)[0])
    assert exploitability.nash_conv(
        turn_based, _ConstantPolicy(turn_based, action)) == pytest.approx(
            0.0, abs=1e-12)
  # (0, 0) is not an equilibrium: moving to -5 gains 40/9 per step.
  action = int(np.flatnonzero(values == 0.0)[0])
  assert exploitability.nash_conv(
      turn_based, _ConstantPolicy(turn_based, action)) == pytest.approx(
          2 * horizon * 20 / 9)
