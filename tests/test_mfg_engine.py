"""The tabular MFG engine against OpenSpiel's own MFG tools."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.mfg.algorithms import distribution
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel import mfg_engine

# Every registered mean-field game, small, with non-default parameters where
# the defaults are slow, and a few more non-default variants.
SMALL_GAMES = (
    "mfg_crowd_modelling(size=5,horizon=4)",
    "mfg_crowd_modelling_2d(size=4,horizon=3)",
    "mfg_crowd_modelling_2d(size=4,horizon=3,with_congestion=true,"
    "noise_intensity=0.5,crowd_aversion_coef=2.0)",
    "mfg_garnet(size=5,horizon=4)",
    "mfg_garnet(size=4,horizon=3,num_action=4,sparsity_factor=0.5,eta=0.3)",
    "mfg_dynamic_routing",
    "python_mfg_crowd_modelling(size=5,horizon=4)",
    "python_mfg_predator_prey(horizon=3)",
    "python_mfg_crowd_avoidance(horizon=3)",
    "python_mfg_periodic_aversion(size=7,horizon=4,n_actions_per_side=2)",
    "python_mfg_dynamic_routing",
    "mean_field_lin_quad(size=6,horizon=4)",
    "mean_field_lin_quad(size=6,horizon=4,mean_revert=0.5,cross_q=0.1)",
)
MULTI_POPULATION = ("python_mfg_predator_prey(horizon=3)",
                    "python_mfg_crowd_avoidance(horizon=3)")


def random_policy(engine, seed):
  """A PolicyFunction drawing a fixed random policy per row."""
  rng = np.random.default_rng(seed)
  draws = np.zeros((0, engine.num_actions))

  def probabilities(rows):
    nonlocal draws
    if len(draws) < engine.num_rows:
      draws = np.concatenate([draws, rng.uniform(
          0.01, 1.0, (engine.num_rows - len(draws), engine.num_actions)) ** 3])
    weights = draws[rows] * engine.legal[rows]
    return weights / weights.sum(axis=1, keepdims=True)

  return probabilities


@pytest.fixture(scope="module", name="engines")
def engines_fixture():
  return {name: mfg_engine.MeanFieldEngine(pyspiel.load_game(name))
          for name in SMALL_GAMES}


def test_every_registered_mean_field_game_is_covered():
  covered = {name.split("(")[0] for name in SMALL_GAMES}
  assert set(mfg_engine.mean_field_game_names()) <= covered
  assert len(covered) >= 10


@pytest.mark.parametrize("name", SMALL_GAMES)
def test_nash_conv_equals_openspiel(engines, name):
  engine = engines[name]
  for policy in (engine.uniform_policy, random_policy(engine, 0),
                 random_policy(engine, 1)):
    mean_field = engine.mean_field(policy)
    ours = engine.nash_conv(mean_field)
    theirs = nash_conv.NashConv(engine.game,
                                engine.table_policy(mean_field.policy))
    assert ours == pytest.approx(theirs.nash_conv(), abs=1e-8)


@pytest.mark.parametrize("name", MULTI_POPULATION)
def test_multi_population_games_have_one_root_per_population(engines, name):
  engine = engines[name]
  mean_field = engine.mean_field(engine.uniform_policy)
  assert engine.game.num_players() > 1
  assert len(mean_field.structure.root_ids) == engine.game.num_players()


@pytest.mark.parametrize("name", SMALL_GAMES[::3] + MULTI_POPULATION[:1])
def test_distribution_equals_distribution_policy(engines, name):
  engine = engines[name]
  mean_field = engine.mean_field(random_policy(engine, 2))
  ours = engine.distribution(mean_field).distribution
  theirs = distribution.DistributionPolicy(
      engine.game, engine.table_policy(mean_field.policy)).distribution
  assert ours.keys() == theirs.keys()
  for key, value in theirs.items():
    assert ours[key] == pytest.approx(value, abs=1e-12)


def test_reward_refresh_paths(engines):
  assert engines["python_mfg_predator_prey(horizon=3)"].shared_registration
  assert engines["python_mfg_crowd_modelling(size=5,horizon=4)"] \
      .shared_registration
  assert not engines["mfg_crowd_modelling(size=5,horizon=4)"] \
      .shared_registration
  for name in ("mfg_dynamic_routing", "python_mfg_dynamic_routing"):
    assert engines[name].flow_dependent
  assert not engines["mfg_garnet(size=5,horizon=4)"].flow_dependent


def test_best_response_dominates_policy_value(engines):
  engine = engines["mfg_garnet(size=5,horizon=4)"]
  mean_field = engine.mean_field(random_policy(engine, 3))
  nodes = mean_field.structure.reachable_nodes
  assert np.all(engine.best_response_value(mean_field)[nodes] >=
                engine.policy_value(mean_field)[nodes] - 1e-12)


def test_table_policy_returns_every_legal_action_in_order(engines):
  engine = engines["mfg_garnet(size=4,horizon=3,num_action=4,"
                   "sparsity_factor=0.5,eta=0.3)"]
  mean_field = engine.mean_field(random_policy(engine, 4))
  policy = engine.table_policy(mean_field.policy)
  for state in engine.row_states(np.arange(engine.num_rows)):
    probabilities = policy.action_probabilities(state)
    assert list(probabilities) == state.legal_actions()
    assert sum(probabilities.values()) == pytest.approx(1.0)


def test_policy_function_reads_openspiel_policies(engines):
  engine = engines["python_mfg_crowd_modelling(size=5,horizon=4)"]
  rows = np.arange(engine.num_rows)
  uniform = engine.policy_function(policy_lib.UniformRandomPolicy(engine.game))
  np.testing.assert_allclose(uniform(rows), engine.uniform_policy(rows))
  # A TablePolicy is read from its table; rows it lacks go to its fallback.
  weights = np.random.default_rng(0).uniform(0.1, 1.0, (len(rows) - 3,
                                                        engine.num_actions))
  weights *= engine.legal[:-3]
  policy = engine.table_policy(weights / weights.sum(axis=1, keepdims=True))
  queried = np.zeros((len(rows), engine.num_actions))
  for row, state in enumerate(engine.row_states(rows)):
    for action, probability in policy.action_probabilities(state).items():
      queried[row, action] = probability
  read = engine.policy_function(policy)
  np.testing.assert_array_equal(read(rows), queried)
  np.testing.assert_array_equal(read(rows[::-1]), queried[::-1])


@pytest.mark.parametrize("game_string", ("matrix_rps", "kuhn_poker"))
def test_rejects_games_that_are_not_mean_field_games(game_string):
  with pytest.raises(ValueError, match="not a mean-field game"):
    mfg_engine.MeanFieldEngine(pyspiel.load_game(game_string))


def test_rejects_objects_that_are_not_games():
  with pytest.raises(ValueError, match="pyspiel.Game"):
    mfg_engine.MeanFieldEngine("mfg_crowd_modelling")



@pytest.mark.parametrize("name", ("mfg_dynamic_routing",
                                  "mfg_garnet(size=5,horizon=4)",
                                  "mfg_crowd_modelling(size=5,horizon=4)"))
def test_dense_solves_equal_layer_by_layer_loops(engines, name, monkeypatch):
  """Small structures' flows and policy values come from one triangular
  solve, best responses from policy iteration (from the first legal
  action, then from the last best response); an engine that propagates
  layer by layer gives the same numbers (chance nodes,
  distribution-dependent structure)."""
  dense = mfg_engine.MeanFieldEngine(engines[name].game)
  results = []
  for seed in (0, 1, 2):
    mean_field = dense.mean_field(random_policy(dense, seed))
    assert mean_field.structure.edges is not None
    results.append((mean_field.flow, dense.policy_value(mean_field),
                    dense.best_response_value(mean_field),
                    dense.nash_conv(mean_field)))
  monkeypatch.setattr(mfg_engine, "_DENSE_SOLVE_NODES", 0)
  layered = mfg_engine.MeanFieldEngine(pyspiel.load_game(name))
  for seed, (flow, value, best_value, nash_conv_value) in zip((0, 1, 2),
                                                              results):
    mean_field = layered.mean_field(random_policy(layered, seed))
    assert mean_field.structure.edges is None
    np.testing.assert_allclose(mean_field.flow, flow, rtol=0, atol=1e-14)
    np.testing.assert_allclose(layered.policy_value(mean_field), value,
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layered.best_response_value(mean_field),
                               best_value, rtol=1e-12, atol=1e-12)
    assert layered.nash_conv(mean_field) == pytest.approx(
        nash_conv_value, rel=1e-12, abs=1e-13)
