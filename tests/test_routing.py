"""Tests of the routing game: networks, model, equilibria, game, env."""

import itertools
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

from vsg_spiel.games import routing

_NAME = "python_vsg_routing"
_BRAESS_ZIGZAG = (0, 4, 3)  # O->A, A->B, B->D.


def _load(**params):
  return pyspiel.load_game(_NAME, params)


def _random_flows(rng, model, scale=1.0, batch=()):
  """Random path flows (*batch, N, P) on the players' scaled simplices."""
  splits = rng.dirichlet(np.full(model.num_paths, 0.5),
                         size=batch + (model.num_players,))
  return model.flows(splits, scale)


# --- Networks, paths and the split grid --------------------------------------


def test_paths_are_enumerated_from_the_links():
  assert routing.RoutingModel("pigou").paths == ((0,), (1,))
  braess = routing.RoutingModel("braess")
  assert braess.paths == ((0, 2), _BRAESS_ZIGZAG, (1, 3))
  links = braess.network.links
  for path in braess.paths:  # Each path is a chain from O to D.
    nodes = [links[path[0]][0]] + [links[e][1] for e in path]
    assert nodes[0] == "O" and nodes[-1] == "D"
    assert all(links[e][1] == links[f][0] for e, f in zip(path, path[1:]))
  np.testing.assert_array_equal(braess.path_links, [[1, 0, 1, 0, 0],
                                                    [1, 0, 0, 1, 1],
                                                    [0, 1, 0, 1, 0]])
  parallel = routing.RoutingModel(
      routing.make_network("parallel", "1 2 0.5 3", "0 0.5 1 0"))
  assert parallel.paths == ((0,), (1,), (2,), (3,))


def test_enumerate_paths_handles_longer_networks_and_cycles():
  links = (("O", "A"), ("A", "B"), ("O", "B"), ("B", "D"), ("A", "D"))
  assert routing.enumerate_paths(links, "O", "D") == ((0, 1, 3), (0, 4),
                                                       (2, 3))
  with pytest.raises(ValueError, match="acyclic"):
    routing.enumerate_paths((("O", "A"), ("A", "O"), ("A", "D")), "O", "D")
  with pytest.raises(ValueError, match="no path"):
    routing.enumerate_paths((("O", "A"),), "O", "D")


def test_split_grid_order_and_size():
  grid = routing.split_grid(3, 2)
  np.testing.assert_allclose(grid * 2, [[0, 0, 2], [0, 1, 1], [0, 2, 0],
                                        [1, 0, 1], [1, 1, 0], [2, 0, 0]])
  for num_paths, levels in [(2, 1), (2, 4), (3, 4), (5, 3)]:
    grid = routing.split_grid(num_paths, levels)
    assert len(grid) == math.comb(levels + num_paths - 1, num_paths - 1)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert len({tuple(row) for row in grid}) == len(grid)
    assert [tuple(row) for row in grid] == sorted(tuple(row) for row in grid)


# --- The numpy model ---------------------------------------------------------


def test_costs_by_hand():
  # Braess, two players of demand 0.5: player 0 on the zig-zag path, player 1
  # on the upper path O->A->D. F_OA = 1, F_AB = F_BD = 0.5, F_AD = 0.5.
  model = routing.RoutingModel("braess", 2, 0.5)
  flows = np.array([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0]])
  # C_0 = 0.5 * (l_OA(1) + l_AB + l_BD(0.5)) = 0.5 * 1.5; C_1 = 0.5 * (1 + 1).
  np.testing.assert_allclose(model.costs(flows), [0.75, 1.0])
  # Phi = sum_e b_e F_e + a_e/2 (F_e^2 + sum_j y_je^2): A->D gives 1 * 0.5,
  # O->A 1/2 (1 + 0.25 + 0.25), B->D 1/2 (0.25 + 0.25); O->B, A->B nothing.
  assert model.potential(flows) == pytest.approx(0.5 + 0.75 + 0.25)


def test_model_is_vectorised_over_batch_dimensions():
  rng = np.random.default_rng(0)
  model = routing.RoutingModel("braess", 3, 0.4)
  flows = _random_flows(rng, model, batch=(4, 5))
  costs = model.costs(flows)
  potential = model.potential(flows)
  marginal = model.marginal_costs(flows)
  assert costs.shape == (4, 5, 3) and potential.shape == (4, 5)
  assert marginal.shape == flows.shape
  for i, j in itertools.product(range(4), range(5)):
    np.testing.assert_allclose(costs[i, j], model.costs(flows[i, j]))
    assert potential[i, j] == pytest.approx(model.potential(flows[i, j]))
  scales = np.array([1.0, 1.5])
  splits = rng.dirichlet(np.ones(3), size=(2, 3))
  np.testing.assert_allclose(model.flows(splits, scales)[1],
                             splits[1] * 0.4 * 1.5)


def _model(network, num_players, demand):
  if network == "parallel":
    network = routing.make_network("parallel", "1 2 0.5 0", "0 0.5 1 2")
  return routing.RoutingModel(network, num_players, demand)


@settings(max_examples=60, deadline=None)
@given(network=st.sampled_from(routing.NETWORKS),
       num_players=st.integers(2, 8),
       demand=st.floats(0.05, 2.0),
       scale=st.floats(0.5, 2.0),
       seed=st.integers(0, 2**32 - 1))
def test_potential_identity(network, num_players, demand, scale, seed):
  """C_i(x_i', x_-i) - C_i(x) = Phi(x_i', x_-i) - Phi(x), exactly."""
  rng = np.random.default_rng(seed)
  model = _model(network, num_players, demand)
  flows = _random_flows(rng, model, scale)
  deviation = _random_flows(rng, model, scale)
  for i in range(num_players):
    deviated = flows.copy()
    deviated[i] = deviation[i]
    cost_change = model.costs(deviated)[i] - model.costs(flows)[i]
    potential_change = model.potential(deviated) - model.potential(flows)
    assert cost_change == pytest.approx(potential_change, rel=1e-9,
                                        abs=1e-11)


@settings(max_examples=20, deadline=None)
@given(network=st.sampled_from(routing.NETWORKS),
       num_players=st.integers(2, 5),
       seed=st.integers(0, 2**32 - 1))
def test_marginal_costs_are_the_gradient(network, num_players, seed):
  rng = np.random.default_rng(seed)
  model = _model(network, num_players, 0.5)
  flows = _random_flows(rng, model)
  marginal = model.marginal_costs(flows)
  step = 1e-6
  for i, p in itertools.product(range(num_players), range(model.num_paths)):
    bumped = flows.copy()
    bumped[i, p] += step
    own = (model.costs(bumped)[i] - model.costs(flows)[i]) / step
    phi = (model.potential(bumped) - model.potential(flows)) / step
    assert own == pytest.approx(marginal[i, p], abs=1e-5)
    assert phi == pytest.approx(marginal[i, p], abs=1e-5)


@pytest.mark.parametrize("network, num_players, demand, match", [
    ("braess", 0, 0.5, "num_players"),
    ("braess", 2, 0.0, "demand"),
    ("braess", 2, -1.0, "demand"),
    ("ring", 2, 0.5, "network must be one of"),
])
def test_model_bad_arguments(network, num_players, demand, match):
  with pytest.raises(ValueError, match=match):
    routing.RoutingModel(network, num_players, demand)


def test_network_bad_latencies():
  with pytest.raises(ValueError, match="latency_a and latency_b"):
    routing.make_network("parallel", "1 2", "0 1 2")
  with pytest.raises(ValueError, match="latency_a"):
    routing.make_network("parallel", "1 -2", "0 1")
  with pytest.raises(ValueError, match="latency_b"):
    routing.make_network("parallel", "1 2", "0 x")


# --- Exact equilibria --------------------------------------------------------


def _assert_equilibrium(model, flows, scale):
  """Wardrop-type conditions of the atomic game: used paths have the least
  marginal cost for their player, and demands are met."""
  np.testing.assert_allclose(flows.sum(axis=1), model.demand * scale,
                             atol=1e-12)
  assert np.all(flows >= 0)
  marginal = model.marginal_costs(flows)
  for i in range(model.num_players):
    used = flows[i] > 1e-12
    assert marginal[i, used].max() - marginal[i].min() < 1e-9


@pytest.mark.parametrize("num_players", range(2, 9))
def test_pigou_equilibrium_closed_form(num_players):
  # C_i = x_i X + (d - x_i): dC_i/dx_i = X + x_i = 1, so by symmetry
  # x_i = 1/(N+1) on the l = f link and X = N/(N+1) in total.
  demand = 1.0 / num_players
  model = routing.RoutingModel("pigou", num_players, demand)
  flows = model.equilibrium()
  np.testing.assert_allclose(flows[:, 0], 1.0 / (num_players + 1), atol=1e-9)
  assert flows[:, 0].sum() == pytest.approx(num_players / (num_players + 1),
                                            abs=1e-9)
  _assert_equilibrium(model, flows, 1.0)


def test_pigou_two_players_split_and_scale():
  model = routing.RoutingModel("pigou", 2, 0.5)
  # Each player sends 1/3 (2/3 of its own 1/2) on the l = f link.
  np.testing.assert_allclose(model.equilibrium() / 0.5,
                             [[2 / 3, 1 / 3]] * 2, atol=1e-9)
  # At scale 1.5 the interior condition is unchanged: x_i = 1/3 of 0.75.
  np.testing.assert_allclose(model.equilibrium(scale=1.5) / 0.75,
                             [[4 / 9, 5 / 9]] * 2, atol=1e-9)
  # At scale 0.5 (x_i = 1/3 > 1/4) every player sends everything on l = f.
  np.testing.assert_allclose(model.equilibrium(scale=0.5), [[0.25, 0]] * 2,
                             atol=1e-9)


def test_braess_equilibrium_approaches_wardrop():
  # Symmetric closed form: with p = per-player flow on O->A (= on B->D),
  # marginal costs are (N+1)p + 1 on the outer paths and 2(N+1)p on the
  # zig-zag; equal when p = 1/(N+1), so the zig-zag carries (N-1)/(N+1) of
  # every player's demand 1/N. The non-atomic Wardrop flow puts all on it.
  shares = []
  for num_players in list(range(1, 9)) + [20]:
    model = routing.RoutingModel("braess", num_players, 1.0 / num_players)
    flows = model.equilibrium()
    _assert_equilibrium(model, flows, 1.0)
    share = flows[:, 1] * num_players
    np.testing.assert_allclose(share, (num_players - 1) / (num_players + 1),
                               atol=1e-9)
    np.testing.assert_allclose(flows[:, 0], flows[:, 2], atol=1e-9)
    shares.append(share.sum() / num_players)
  assert np.all(np.diff(shares) > 0)
  assert shares[0] == pytest.approx(0.0, abs=1e-9)  # A monopolist avoids it.
  assert shares[7] == pytest.approx(7 / 9, abs=1e-9)  # N = 8.
  assert shares[-1] > 0.9  # N = 20.


@settings(max_examples=25, deadline=None)
@given(num_players=st.integers(1, 6),
       num_links=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_equilibrium_on_random_parallel_networks(num_players, num_links, seed):
  rng = np.random.default_rng(seed)
  slopes = rng.uniform(0.1, 2.0, num_links)
  intercepts = rng.uniform(0.0, 2.0, num_links) * (rng.random(num_links) < 0.7)
  model = routing.RoutingModel(
      routing.make_network("parallel", slopes, intercepts), num_players,
      rng.uniform(0.1, 1.0, num_players))
  scale = rng.uniform(0.5, 2.0)
  flows = model.equilibrium(scale)
  _assert_equilibrium(model, flows, scale)
  # No random feasible profile has a lower potential.
  others = _random_flows(rng, model, scale, batch=(200,))
  assert model.potential(flows) <= model.potential(others).min() + 1e-12


@pytest.mark.parametrize("network, num_players, levels", [
    ("braess", 2, 3), ("pigou", 3, 4), ("parallel", 3, 2), ("braess", 4, 2)])
def test_grid_equilibrium_is_a_pure_equilibrium(network, num_players, levels):
  model = _model(network, num_players, 1.0 / num_players)
  grid = routing.split_grid(model.num_paths, levels)
  for scale in (1.0, 1.5):
    profile = model.grid_equilibrium(levels, scale)
    flows = model.flows(grid[list(profile)], scale)
    costs = model.costs(flows)
    for i in range(num_players):
      deviations = np.repeat(flows[None], len(grid), axis=0)
      deviations[:, i] = grid * model.demand[i] * scale
      assert model.costs(deviations)[:, i].min() >= costs[i] - 1e-12


def test_grid_equilibrium_matches_continuous_one_on_the_grid():
  # Braess, two players of demand 1/2: the exact equilibrium is 1/3 per path,
  # a point of the grid with 3 levels.
  model = routing.RoutingModel("braess", 2, 0.5)
  grid = routing.split_grid(3, 3)
  profile = model.grid_equilibrium(3)
  np.testing.assert_allclose(grid[list(profile)], [[1 / 3] * 3] * 2)
  np.testing.assert_allclose(model.equilibrium() / 0.5, [[1 / 3] * 3] * 2,
                             atol=1e-9)


def test_custom_network():
  network = routing.Network(
      "diamond", [("O", "A"), ("A", "B"), ("O", "B"), ("B", "D"), ("A", "D")],
      [1.0, 0.0, 2.0, 0.5, 1.0], [0.0, 0.1, 0.0, 0.2, 0.3])
  model = routing.RoutingModel(network, 3, [0.2, 0.3, 0.5])
  assert model.paths == ((0, 1, 3), (0, 4), (2, 3))
  flows = model.equilibrium(scale=1.5)
  _assert_equilibrium(model, flows, 1.5)
  with pytest.raises(ValueError, match="per link"):
    routing.Network("bad", [("O", "D")], [1.0, 2.0], [0.0, 0.0])


def test_scale_must_be_positive():
  model = routing.RoutingModel("pigou")
  with pytest.raises(ValueError, match="scale"):
    model.equilibrium(scale=0.0)
  with pytest.raises(ValueError, match="scale"):
    model.grid_equilibrium(2, scale=-1.0)


def test_grid_equilibrium_size_limit():
  model = routing.RoutingModel("braess", 6, 0.2)
  with pytest.raises(ValueError, match="split_levels or num_players"):
    model.grid_equilibrium(4)  # 15 ** 6 profiles.
  with pytest.raises(ValueError, match="split_levels"):
    model.grid_equilibrium(0)


# --- The OpenSpiel game ------------------------------------------------------


def test_default_parameters():
  game = pyspiel.load_game(_NAME)
  params = game.get_parameters()
  assert params["network"] == "braess" and params["num_players"] == 2
  assert params["demand"] == 0.5 and params["split_levels"] == 4
  assert params["horizon"] == 25 and params["initial_regime"] == 0
  assert game.num_distinct_actions() == 15  # C(6, 2) splits over 3 paths.
  assert game.max_chance_outcomes() == 2
  np.testing.assert_array_equal(game.regimes.scales, [1.0, 1.5])
  np.testing.assert_array_equal(game.regimes.transition,
                                [[0.8, 0.2], [0.3, 0.7]])
  assert game.max_utility() == 0.0 and game.min_utility() < 0


@pytest.mark.parametrize("spec", [
    "python_vsg_routing",
    "python_vsg_routing(network=pigou,horizon=1)",
    "python_vsg_routing(network=pigou,split_levels=1,horizon=3)",
    "python_vsg_routing(network=braess,num_players=3,split_levels=2,"
    "horizon=4)",
    "python_vsg_routing(network=braess,num_players=4,split_levels=1,"
    "demand=0.25,horizon=5)",
    "python_vsg_routing(network=parallel,num_players=3,split_levels=3,"
    "horizon=6,latency_a=1 0.5 2 0,latency_b=0 1 0.2 3)",
    "python_vsg_routing(network=parallel,num_players=8,split_levels=1,"
    "latency_a=1 0,latency_b=0 1,regime_scales=0.5 1 2,"
    "regime_transition=0.2 0.3 0.5;1 0 0;0 0 1,initial_regime=2)",
])
def test_random_sim(spec):
  game = pyspiel.load_game(spec)
  pyspiel.random_sim_test(game, num_sims=5, serialize=True, verbose=False)
  pyspiel.random_sim_test(pyspiel.convert_to_turn_based(game), num_sims=2,
                          serialize=False, verbose=False)


def test_single_regime_through_a_parameter_dict():
  # A lone number needs a trailing space to stay a string parameter.
  game = _load(regime_scales="1.5 ", regime_transition="1 ", horizon=3)
  assert game.max_chance_outcomes() == 1
  pyspiel.random_sim_test(game, num_sims=3, serialize=True, verbose=False)


def test_load_by_string_and_serialize_round_trip():
  game = pyspiel.load_game(f"{_NAME}(network=braess,num_players=3,horizon=4)")
  assert game.num_players() == 3
  state = game.new_initial_state()
  state.apply_actions([0, 5, 14])
  state.apply_action(1)
  state.apply_actions([3, 3, 3])
  text = pyspiel.serialize_game_and_state(game, state)
  game2, state2 = pyspiel.deserialize_game_and_state(text)
  assert str(game2) == str(game)
  assert str(state2) == str(state) == "t=2 regime=1 chance"
  assert state2.history() == state.history()
  np.testing.assert_array_equal(state2.returns(), state.returns())
  state3 = game.deserialize_state(state.serialize())
  assert str(state3) == str(state)


def test_commas_from_a_parameter_dict_are_rewritten():
  game = _load(network="parallel", latency_a="1,2", latency_b="0,1",
               regime_transition="0.5,0.5;0.5,0.5")
  assert game.get_parameters()["latency_a"] == "1 2"
  assert game.get_parameters()["regime_transition"] == "0.5 0.5;0.5 0.5"
  assert str(pyspiel.load_game(str(game))) == str(game)
  np.testing.assert_array_equal(game.model.network.latency_a, [1.0, 2.0])


def test_episode_rewards_chance_and_observations():
  game = _load(horizon=3)
  state = game.new_initial_state()
  assert state.observation_string(0) == "t=0 regime=0"
  np.testing.assert_array_equal(state.observation_tensor(1),
                                [1, 0, 0, 0, 1, 0])
  # Player 0 all on O->B->D (action 0), player 1 all on O->A->D (action 14).
  assert state.action_to_string(0, 0) == "split=(0.000,0.000,1.000)"
  assert state.action_to_string(0, 14) == "split=(1.000,0.000,0.000)"
  state.apply_actions([0, 14])
  np.testing.assert_allclose(state.rewards(), [-0.75, -0.75])
  assert state.is_chance_node()
  assert state.chance_outcomes() == [(0, 0.8), (1, 0.2)]
  assert state.observation_string(0) == "t=1 regime=0 chance"
  assert state.action_to_string(pyspiel.PlayerId.CHANCE, 1) == "regime=1"
  state.apply_action(1)
  assert state.information_state_string(1) == "t=1 regime=1"
  np.testing.assert_array_equal(state.information_state_tensor(0),
                                [0, 1, 0, 0, 0, 1])
  # In regime 1 (scale 1.5) both on O->A->D: F = 1.5, cost 0.75 * 2.5.
  state.apply_actions([14, 14])
  np.testing.assert_allclose(state.rewards(), [-1.875, -1.875])
  np.testing.assert_allclose(state.returns(), [-2.625, -2.625])
  assert state.chance_outcomes() == [(0, 0.3), (1, 0.7)]
  state.apply_action(0)
  state.apply_actions([7, 7])
  assert state.is_terminal()
  assert state.observation_string(0) == "t=3 regime=0"


_BAD_PARAMETERS = [
    ({"num_players": 1}, "num_players"),
    ({"num_players": 9}, "num_players"),
    ({"demand": 0.0}, "demand"),
    ({"demand": -0.5}, "demand"),
    ({"network": "grid"}, r"network must be one of \('pigou', 'braess'"),
    ({"split_levels": 0}, "split_levels"),
    ({"horizon": 0}, "horizon"),
    ({"network": "parallel", "latency_a": "1 2", "latency_b": "1"},
     "latency_a and latency_b"),
    ({"network": "parallel", "latency_a": "1 -2", "latency_b": "1 1"},
     "latency_a"),
    ({"regime_transition": "0.8 0.3;0.3 0.7"}, "regime_transition"),
    ({"regime_transition": "0.8 0.2"}, "regime_transition"),
    ({"regime_transition": "1.2 -0.2;0.3 0.7"}, "regime_transition"),
    ({"regime_transition": "0.5 0.5;1"}, "regime_transition"),
    ({"regime_scales": "1 0"}, "regime_scales"),
    ({"regime_scales": ""}, "regime_scales"),
    ({"initial_regime": 2}, "initial_regime"),
]


@pytest.mark.parametrize("params, match", _BAD_PARAMETERS)
def test_bad_parameters(params, match):
  with pytest.raises(ValueError, match=match):
    _load(**params)


# --- Discrete vs continuous --------------------------------------------------


@pytest.mark.parametrize("network, num_players, levels", [
    ("braess", 2, 2), ("pigou", 3, 2), ("parallel", 2, 2)])
def test_grid_and_continuous_rewards_agree_on_every_grid_point(
    network, num_players, levels):
  params = {"network": network, "num_players": num_players,
            "split_levels": levels, "horizon": 2, "demand": 0.4}
  if network == "parallel":
    params.update(latency_a="1 2 0.5", latency_b="0 0.5 1")
  game = _load(**params)
  num_actions = game.num_distinct_actions()
  profiles = np.array(list(itertools.product(range(num_actions),
                                             repeat=num_players)))
  for regime in (0, 1):
    # An env whose chain starts in `regime`, to compare its first stage.
    regimes = routing.DemandRegimes(game.regimes.scales,
                                    game.regimes.transition, regime)
    env = routing.BatchedRoutingEnv(game.model, regimes, game.horizon,
                                    batch_size=len(profiles))
    env.reset()
    _, env_rewards, _ = env.step(game.split_fractions[profiles])
    for profile, env_reward in zip(profiles, env_rewards):
      state = game.new_initial_state()
      if regime:
        state.apply_actions([0] * num_players)
        state.apply_action(regime)
      state.apply_actions(list(profile))
      np.testing.assert_allclose(env_reward, state.rewards(), rtol=1e-13,
                                 atol=1e-15)


def test_env_episode_and_regime_chain():
  game = _load(horizon=3)
  env = routing.BatchedRoutingEnv.from_game(game, batch_size=20000, seed=7)
  obs = env.reset()
  assert obs.shape == (20000, 6) and env.observation_size == 6
  assert env.action_shape == (2, 3)
  np.testing.assert_array_equal(obs[0], [1, 0, 0, 0, 1, 0])
  splits = np.broadcast_to(np.full((2, 3), 1 / 3), (20000, 2, 3))
  obs, rewards, done = env.step(splits)
  assert rewards.shape == (20000, 2) and not done
  expected = -game.model.costs(game.model.flows(np.full((2, 3), 1 / 3)))
  np.testing.assert_allclose(rewards, np.broadcast_to(expected, (20000, 2)))
  regime = env.regime
  assert abs(regime.mean() - 0.2) < 0.015  # P(0 -> 1) = 0.2.
  np.testing.assert_array_equal(obs[:, 4:], np.eye(2)[regime])
  np.testing.assert_array_equal(obs[:, 1], 1)
  obs, _, done = env.step(splits)
  was_peak = regime == 1
  assert abs(env.regime[was_peak].mean() - 0.7) < 0.03  # P(1 -> 1) = 0.7.
  obs, _, done = env.step(splits)
  assert done
  np.testing.assert_array_equal(obs[:, 3], 1)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(splits)


def test_env_is_reproducible_with_a_seed():
  game = _load(horizon=6)
  trajectories = []
  for _ in range(2):
    env = routing.BatchedRoutingEnv.from_game(game, batch_size=8,
                                              seed=np.random.default_rng(3))
    env.reset()
    splits = np.full((8, 2, 3), 1 / 3)
    trajectories.append([env.step(splits)[0] for _ in range(6)])
  np.testing.assert_array_equal(trajectories[0], trajectories[1])


def test_env_rejects_bad_splits():
  env = routing.BatchedRoutingEnv.from_game(_load(), batch_size=2)
  env.reset()
  good = np.full((2, 2, 3), 1 / 3)
  with pytest.raises(ValueError, match="shape"):
    env.step(good[:1])
  bad = good.copy()
  bad[0, 1] = [0.5, 0.5, 0.5]
  with pytest.raises(ValueError, match="sum to 1"):
    env.step(bad)
  bad[0, 1] = [1.5, -0.5, 0.0]
  with pytest.raises(ValueError, match=">= 0"):
    env.step(bad)
  # Round-off is tolerated and projected back onto the simplex.
  _, rewards, _ = env.step(good + 1e-9)
  model = env.model
  np.testing.assert_allclose(rewards[0], -model.costs(model.flows(good[0])),
                             rtol=1e-12)


# --- Equilibria, checked with OpenSpiel's own NashConv -----------------------


class _RegimePolicy(policy_lib.Policy):
  """A pure Markov policy: player i plays profiles[regime][i] everywhere.

  The regime is read from the information state string, so the policy works
  on the simultaneous game and on its turn-based conversion alike.
  """

  def __init__(self, game, profiles):
    super().__init__(game, list(range(game.num_players())))
    self._profiles = profiles

  def action_probabilities(self, state, player_id=None):
    player = state.current_player() if player_id is None else player_id
    regime = int(re.search(r"regime=(\d+)",
                           state.information_state_string(player)).group(1))
    return {self._profiles[regime][player]: 1.0}


@pytest.mark.parametrize("spec", [
    "python_vsg_routing(network=braess,split_levels=2,horizon=1)",
    "python_vsg_routing(network=braess,split_levels=2,horizon=2)",
    "python_vsg_routing(network=pigou,num_players=3,split_levels=3,horizon=3)",
])
def test_grid_equilibrium_per_regime_has_zero_nash_conv(spec):
  game = pyspiel.load_game(spec)
  levels = game.get_parameters()["split_levels"]
  profiles = [game.model.grid_equilibrium(levels, scale)
              for scale in game.regimes.scales]
  turn_based = pyspiel.convert_to_turn_based(game)
  assert exploitability.nash_conv(
      turn_based, _RegimePolicy(turn_based, profiles)) == pytest.approx(
          0.0, abs=1e-12)
  # Everyone on the last path is not an equilibrium.
  everyone_last = [(0,) * game.num_players()] * 2
  assert exploitability.nash_conv(
      turn_based, _RegimePolicy(turn_based, everyone_last)) > 0.1


def test_stage_potentials_match_the_model():
  game = pyspiel.load_game(
      "python_vsg_routing(network=braess,num_players=3,split_levels=2)")
  potentials = game.stage_potentials()
  assert potentials.shape == (2, 6, 6, 6)
  for regime in range(2):
    for actions in [(0, 0, 0), (1, 5, 2), (5, 4, 3)]:
      flows = game.model.flows(game.split_fractions[list(actions)],
                               game.regimes.scales[regime])
      assert potentials[(regime,) + actions] == pytest.approx(
          game.model.potential(flows), abs=1e-12)
