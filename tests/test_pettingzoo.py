"""Tests of the games' PettingZoo ParallelEnvs (differential and routing)."""

import warnings

import numpy as np
from pettingzoo.test import api_test
from pettingzoo.test import parallel_api_test
from pettingzoo.test import parallel_seed_test
from pettingzoo.test import seed_test
from pettingzoo.utils import conversions
import pytest

import pyspiel

from vsg_spiel.games import differential
from vsg_spiel.games import pettingzoo_env
from vsg_spiel.games import routing

# Regimes switch often, so that a short episode shows transitions.
_ROUTING = dict(num_players=3, network="braess", horizon=6,
                regime_scales="1 1.5 2",
                regime_transition="0.4 0.3 0.3;0.3 0.4 0.3;0.3 0.3 0.4")
_ENVS = {
    "differential": (differential.parallel_env, dict(horizon=5)),
    "routing": (routing.parallel_env, dict(horizon=5)),
    "routing_pigou_3": (routing.parallel_env,
                        dict(num_players=3, network="pigou", horizon=5)),
}


def _random_actions(env, rng):
  """Uniform box actions of every live agent, as float32 like Box.sample."""
  return {agent: rng.uniform(-1, 1, env.action_space(agent).shape).astype(
      np.float32) for agent in env.agents}


def _splits(box_actions):
  """softmax(SPLIT_LOGIT_RANGE * u, 0) of box actions (..., P - 1)."""
  logits = np.concatenate([routing.RoutingContinuous.SPLIT_LOGIT_RANGE
                           * box_actions,
                           np.zeros(box_actions.shape[:-1] + (1,))], axis=-1)
  weights = np.exp(logits)
  return weights / weights.sum(axis=-1, keepdims=True)


def _play(env, rng, seed=None):
  """One episode from reset(seed); returns (observations (T + 1, obs),
  joint box actions (T, N, d), rewards (T, N)) of player_0's view."""
  observation, infos = env.reset(seed=seed)
  assert set(infos) == set(env.possible_agents)
  observations = [observation["player_0"]]
  actions, rewards = [], []
  while env.agents:
    joint = _random_actions(env, rng)
    observation, reward, terminations, truncations, _ = env.step(joint)
    assert not any(truncations.values())
    assert len(set(terminations.values())) == 1
    assert all(np.array_equal(observation[agent], observation["player_0"])
               for agent in observation)
    observations.append(observation["player_0"])
    actions.append([joint[agent] for agent in env.possible_agents])
    rewards.append([reward[agent] for agent in env.possible_agents])
  return np.array(observations), np.array(actions), np.array(rewards)


@pytest.mark.parametrize("name", sorted(_ENVS))
def test_parallel_api_and_seed_tests(name):
  make, params = _ENVS[name]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # The API tests warn about soft failures.
    parallel_api_test(make(**params), num_cycles=100)
    parallel_seed_test(lambda: make(**params))
    # Libraries on the turn-based (AEC) API get it by PettingZoo's conversion.
    api_test(conversions.parallel_to_aec(make(**params)), num_cycles=100)
    seed_test(lambda: conversions.parallel_to_aec(make(**params)),
              num_cycles=100)


def test_differential_rewards_equal_the_batched_env_and_the_model():
  params = dict(horizon=4, action_low=-2.0, action_high=4.0, centre_2=3.0)
  env = differential.parallel_env(**params)
  game = pyspiel.load_game("python_vsg_differential", params)
  assert env.action_space("player_0").shape == (1,)
  assert env.observation_space("player_1").shape == (5,)
  rng = np.random.default_rng(0)
  for _ in range(2):  # Two episodes: reset restarts the step count.
    observations, actions, rewards = _play(env, rng)
    assert rewards.shape == (4, 2)
    np.testing.assert_array_equal(observations, np.eye(5, dtype=np.float32))
    played = -2.0 + (actions[..., 0].astype(np.float64) + 1.0) * 3.0
    batched = differential.BatchedDifferentialEnv.from_game(game)
    batched.reset()
    for t in range(4):
      _, expected, _ = batched.step(played[t][None])
      np.testing.assert_array_equal(rewards[t], expected[0])
    np.testing.assert_allclose(
        rewards[:, 0], game.model.reward(played[:, 0], played[:, 1]),
        rtol=0, atol=1e-12)
  # The box's ends play the interval's ends: u = 1 -> 4.0, u = -1 -> -2.0.
  env.reset()
  _, reward, *_ = env.step({"player_0": [1.0], "player_1": [-1.0]})
  assert reward["player_0"] == reward["player_1"] == pytest.approx(
      float(game.model.reward(4.0, -2.0)), abs=1e-12)


def test_routing_rewards_and_regimes_equal_the_batched_env():
  env = routing.parallel_env(**_ROUTING)
  game = pyspiel.load_game("python_vsg_routing", _ROUTING)
  assert env.possible_agents == ["player_0", "player_1", "player_2"]
  assert env.action_space("player_2").shape == (2,)  # Braess: 3 paths.
  assert env.observation_space("player_0").shape == (6 + 1 + 3,)
  # The game's own box -> split map, so that the same splits are played;
  # the next test checks the map's formula.
  to_splits = game.continuous_interface().to_game_actions
  rng = np.random.default_rng(1)
  regimes = []
  for episode in range(3):  # reset(seed=11), then reset(): episodes 0, 1, 2.
    observations, actions, rewards = _play(
        env, rng, seed=11 if episode == 0 else None)
    # The continuous agents' episode k with seed 11.
    batched = routing.BatchedRoutingEnv.from_game(game, 1, seed=[11, episode])
    expected_observations = [batched.reset()[0]]
    for t in range(6):
      regimes.append(batched.regime[0])
      next_observation, expected, _ = batched.step(
          to_splits(actions[t])[None])
      expected_observations.append(next_observation[0])
      np.testing.assert_array_equal(rewards[t], expected[0])
    np.testing.assert_array_equal(observations, expected_observations)
  assert set(regimes) == {0, 1, 2}  # Transitions happened and were matched.


def test_routing_rewards_are_the_negative_costs_of_the_splits():
  env = routing.parallel_env(**_ROUTING)
  game = pyspiel.load_game("python_vsg_routing", _ROUTING)
  observations, actions, rewards = _play(env, np.random.default_rng(2), 5)
  regime = observations[:-1, 7:].argmax(axis=1)  # After the step one-hot.
  flows = game.model.flows(_splits(actions.astype(np.float64)),
                           game.regimes.scales[regime])
  np.testing.assert_allclose(rewards, -game.model.costs(flows), rtol=0,
                             atol=1e-12)


def test_reset_seed_fixes_the_regimes():
  def regimes(seed, episodes=2):
    env = routing.parallel_env(**_ROUTING)
    rng = np.random.default_rng(0)
    return [_play(env, rng, seed if k == 0 else None)[0][:, 7:].argmax(axis=1)
            for k in range(episodes)]
  np.testing.assert_array_equal(regimes(3), regimes(3))
  assert not np.array_equal(regimes(3), regimes(4))
  env = routing.parallel_env(**_ROUTING)
  rng = np.random.default_rng(0)
  first = _play(env, rng, seed=3)
  again = _play(env, np.random.default_rng(0), seed=3)  # Re-seeding restarts.
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("params, agents, action_size, observation_size", [
    (dict(num_players=3, network="braess"), 3, 2, 26 + 2),
    (dict(network="pigou", horizon=3), 2, 1, 4 + 2),
    (dict(num_players=4, network="parallel", latency_a="1 2 0.5 3",
          latency_b="0 0.5 1 0", regime_scales="1 ",
          regime_transition="1 "), 4, 3, 26 + 1),
    (dict(demand=1), 2, 2, 26 + 2),  # An int for a float parameter.
])
def test_routing_parameters_pass_through(params, agents, action_size,
                                         observation_size):
  env = routing.parallel_env(**params)
  assert len(env.possible_agents) == agents
  assert env.action_space("player_0").shape == (action_size,)
  assert env.observation_space("player_0").shape == (observation_size,)
  assert env.game.get_parameters()["network"] == params.get("network",
                                                            "braess")
  if "demand" in params:
    assert env.game.model.demand[0] == 1.0


def test_differential_parameters_pass_through():
  env = differential.parallel_env(horizon=7, height_2=2.0, offset=1)
  assert env.observation_space("player_0").shape == (8,)
  assert env.game.model.height_2 == 2.0 and env.game.model.offset == 1.0
  assert str(env) == "python_vsg_differential_v0"


@pytest.mark.parametrize("make, params, error, match", [
    (routing.parallel_env, dict(num_players=9), ValueError,
     r"num_players must be .*\[2, 8\]"),
    (routing.parallel_env, dict(network="grid"), ValueError,
     "network must be one of"),
    (routing.parallel_env, dict(regime_transition="0.5 0.6;0.5 0.5"),
     ValueError, "regime_transition rows"),
    (routing.parallel_env, dict(players=3), pyspiel.SpielError,
     "Unknown parameter 'players'"),
    (routing.parallel_env, dict(num_players="3"), pyspiel.SpielError,
     "Wrong type for parameter num_players"),
    (routing.parallel_env, dict(demand=True), pyspiel.SpielError,
     "Wrong type for parameter demand"),
    (differential.parallel_env, dict(scale_1=-1.0), ValueError,
     "scale_1 must be .*0"),
    (differential.parallel_env, dict(horizon=0), ValueError,
     "horizon must be .*1"),
    (differential.parallel_env, dict(render_mode="human"), ValueError,
     "render_mode must be None"),
])
def test_bad_parameters_raise_the_games_errors(make, params, error, match):
  with pytest.raises(error, match=match):
    make(**params)


def test_bad_actions_and_calls():
  env = routing.parallel_env(horizon=1)
  with pytest.raises(RuntimeError, match="reset"):
    env.state()
  with pytest.raises(RuntimeError, match="reset"):
    env.step({"player_0": [0, 0], "player_1": [0, 0]})
  with pytest.raises(ValueError, match="seed must be None or an int >= 0"):
    env.reset(seed=-1)
  env.reset(seed=0)
  with pytest.raises(ValueError, match="one action for each agent"):
    env.step({"player_0": [0, 0]})
  with pytest.raises(ValueError, match=r"player_1 must have shape \(2,\)"):
    env.step({"player_0": [0, 0], "player_1": [0]})
  with pytest.raises(ValueError, match=r"player_0 must lie in \[-1, 1\]"):
    env.step({"player_0": [1.5, 0], "player_1": [0, 0]})
  _, _, terminations, _, _ = env.step({"player_0": [0, 0],
                                       "player_1": [0, 0]})
  assert all(terminations.values()) and env.agents == []
  with pytest.raises(RuntimeError, match="reset"):
    env.step({"player_0": [0, 0], "player_1": [0, 0]})


def test_state_spaces_and_render():
  env = routing.parallel_env(horizon=2)
  observations, _ = env.reset(seed=0)
  np.testing.assert_array_equal(env.state(), observations["player_0"])
  assert env.state_space.contains(env.state())
  assert env.observation_space("player_1").contains(observations["player_1"])
  # Separate space objects per agent, so each can be seeded on its own.
  assert env.action_space("player_0") is not env.action_space("player_1")
  assert env.render() is None and env.render_mode is None
  with pytest.raises(ValueError, match="continuous_interface"):
    pettingzoo_env.ContinuousParallelEnv(pyspiel.load_game("matrix_rps"))
