"""Mean-field Bayesian Q-learning (Algorithm 4, eqs. 11-12)."""

import math

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.mfg.algorithms import distribution
from open_spiel.python.mfg.algorithms import nash_conv
from scipy import optimize

from vsg_spiel import mfg_engine
from vsg_spiel.algorithms import mf_bayesian_q

TINY_GAME = "python_mfg_crowd_modelling(size=3,horizon=2)"
_DEFAULT = pyspiel.PlayerId.DEFAULT_PLAYER_ID


def softmax(logits):
  weights = np.exp(logits - logits.max())
  return weights / weights.sum()


@pytest.mark.parametrize("temperature", (1.0, 0.3, 4.0))
def test_eq12_maximises_the_kl_regularised_step(temperature):
  """pi = pibar exp(Q/alpha)/Z maximises sum pi (Q - alpha log pi/pibar)."""
  rng = np.random.default_rng(7)
  legal = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 0]], bool)
  q_values = rng.normal(0.0, 3.0, legal.shape)
  prior = rng.uniform(0.1, 1.0, legal.shape) * legal
  prior /= prior.sum(axis=1, keepdims=True)
  with np.errstate(divide="ignore"):
    log_posterior, soft_values = mf_bayesian_q.soft_bellman_step(
        np.log(prior), q_values, legal, temperature)
  for state in range(len(legal)):
    actions = np.flatnonzero(legal[state])

    def negative_objective(logits, state=state, actions=actions):
      pi = softmax(logits)
      return -np.sum(pi * (q_values[state, actions] - temperature *
                           np.log(pi / prior[state, actions])))

    best = optimize.minimize(negative_objective, np.zeros(len(actions)),
                             method="BFGS", options={"gtol": 1e-10})
    assert -best.fun <= soft_values[state] + 1e-12
    assert -best.fun == pytest.approx(soft_values[state], abs=1e-6)
    assert -negative_objective(log_posterior[state, actions]) == \
        pytest.approx(soft_values[state], abs=1e-12)
    np.testing.assert_allclose(softmax(best.x),
                               np.exp(log_posterior[state, actions]),
                               atol=1e-4)
    assert np.all(np.isneginf(log_posterior[state, ~legal[state]]))


def regularised_objective(game, flow, policy, prior, temperature):
  """E_pi[sum_t r_t - alpha KL(pi(.|s_t) || pibar(.|s_t))] under a fixed flow.

  Walks the game as OpenSpiel's PolicyValue does (depth first, cached by
  observation string, mean-field nodes registering `flow`), independently of
  the engine. `policy` and `prior` map state strings to {action: prob}.
  """
  cache = {}

  def value(state):
    key = state.observation_string(_DEFAULT)
    if key in cache:
      return cache[key]
    if state.is_terminal():
      result = state.rewards()[state.mean_field_population()]
    elif state.is_chance_node():
      result = sum(probability * value(state.child(action))
                   for action, probability in state.chance_outcomes())
    elif state.is_mean_field_node():
      child = state.clone()
      child.update_distribution([flow.value_str(support, 0.0)
                                 for support in state.distribution_support()])
      result = state.rewards()[state.mean_field_population()] + value(child)
    else:
      result = state.rewards()[state.mean_field_population()] + sum(
          probability * (value(state.child(action)) - temperature *
                         math.log(probability / prior[key][action]))
          for action, probability in policy[key].items())
    cache[key] = result
    return result

  return sum(value(state) for state in game.new_initial_states())


@pytest.mark.parametrize("temperature", (1.0, 0.5))
def test_soft_backward_solves_the_regularised_problem_on_a_tiny_game(
    temperature):
  """Eqs. 11-12 against a direct numeric maximisation over all policies."""
  game = pyspiel.load_game(TINY_GAME)
  engine = mfg_engine.MeanFieldEngine(game)
  rng = np.random.default_rng(3)
  prior_table = rng.uniform(0.2, 1.0, (engine.num_rows, engine.num_actions))
  prior_table *= engine.legal
  prior_table /= prior_table.sum(axis=1, keepdims=True)
  mean_field = engine.mean_field(lambda rows: prior_table[rows])
  log_posterior, soft_values = mf_bayesian_q.soft_backward(
      engine, mean_field, np.log(prior_table), temperature)
  optimum = soft_values[mean_field.structure.root_ids].sum()

  flow = engine.distribution(mean_field)
  keys = [state.observation_string(_DEFAULT)
          for state in engine.row_states(np.arange(engine.num_rows))]
  legal_actions = [np.flatnonzero(row) for row in engine.legal]

  def as_dict(table):
    return {key: {int(action): table[row, action]
                  for action in legal_actions[row]}
            for row, key in enumerate(keys)}

  prior = as_dict(prior_table)
  closed_form = regularised_objective(game, flow, as_dict(
      np.exp(log_posterior)), prior, temperature)
  assert closed_form == pytest.approx(optimum, abs=1e-10)

  sizes = np.cumsum([0] + [len(actions) for actions in legal_actions])

  def policy_of(logits):
    table = np.zeros(prior_table.shape)
    for row, actions in enumerate(legal_actions):
      table[row, actions] = softmax(logits[sizes[row]:sizes[row + 1]])
    return table

  best = optimize.minimize(
      lambda logits: -regularised_objective(
          game, flow, as_dict(policy_of(logits)), prior, temperature),
      np.zeros(sizes[-1]), method="BFGS", options={"gtol": 1e-9})
  assert -best.fun == pytest.approx(optimum, abs=1e-7)
  assert -best.fun <= optimum + 1e-9
  np.testing.assert_allclose(policy_of(best.x), np.exp(log_posterior),
                             atol=2e-4)


@pytest.mark.parametrize("name", (
    "python_mfg_crowd_modelling(size=5,horizon=4)",
    "mfg_garnet(size=5,horizon=4)",
    "mfg_crowd_modelling_2d(size=4,horizon=3)",
    "python_mfg_predator_prey(horizon=3)",
    "python_mfg_dynamic_routing"))
def test_iterates_have_openspiel_nash_conv(name):
  game = pyspiel.load_game(name)
  solver = mf_bayesian_q.MFBayesianQLearning(game, temperature=2.0)
  for iteration in range(4):
    solver.iteration()
    if iteration in (0, 3):
      theirs = nash_conv.NashConv(game, solver.policy()).nash_conv()
      assert solver.nash_conv() == pytest.approx(theirs, abs=1e-8)
  assert solver.iteration_count == 4


def test_distribution_is_the_policy_distribution():
  game = pyspiel.load_game("python_mfg_predator_prey(horizon=3)")
  solver = mf_bayesian_q.MFBayesianQLearning(game)
  solver.iteration()
  theirs = distribution.DistributionPolicy(game, solver.policy())
  ours = solver.distribution
  for key, value in theirs.distribution.items():
    assert ours.value_str(key) == pytest.approx(value, abs=1e-12)


def test_exploitability_decreases_on_crowd_modelling():
  game = pyspiel.load_game("mfg_crowd_modelling(size=5,horizon=4)")
  solver = mf_bayesian_q.MFBayesianQLearning(game)
  initial = solver.nash_conv()
  for _ in range(30):
    solver.iteration()
  assert solver.nash_conv() < 0.05 * initial


def test_prior_is_the_previous_iterate():
  """Two iterations equal one soft step from the first iterate's policy."""
  game = pyspiel.load_game("mfg_garnet(size=5,horizon=4)")
  engine = mfg_engine.MeanFieldEngine(game)
  solver = mf_bayesian_q.MFBayesianQLearning(game, engine=engine)
  solver.iteration()
  first = solver.policy().table
  solver.iteration()
  log_posterior, _ = mf_bayesian_q.soft_backward(
      engine, engine.mean_field(lambda rows: first[rows]), np.log(first), 1.0)
  np.testing.assert_allclose(solver.policy().table, np.exp(log_posterior),
                             atol=1e-12)


def test_initial_prior_is_a_parameter():
  game = pyspiel.load_game("mfg_crowd_modelling(size=5,horizon=4)")
  engine = mfg_engine.MeanFieldEngine(game)
  rng = np.random.default_rng(0)
  prior_table = rng.uniform(0.1, 1.0, (engine.num_rows, engine.num_actions))
  prior_table *= engine.legal
  prior_table /= prior_table.sum(axis=1, keepdims=True)
  prior = engine.table_policy(prior_table)
  solver = mf_bayesian_q.MFBayesianQLearning(game, initial_prior=prior,
                                             engine=engine)
  np.testing.assert_allclose(solver.policy().table, prior_table)
  # A very high temperature keeps the posterior at the prior.
  hot = mf_bayesian_q.MFBayesianQLearning(game, temperature=1e9,
                                          initial_prior=prior, engine=engine)
  hot.iteration()
  np.testing.assert_allclose(hot.policy().table, prior_table, atol=1e-6)
  default = mf_bayesian_q.MFBayesianQLearning(game, engine=engine)
  np.testing.assert_allclose(default.policy().table,
                             engine.uniform_policy(np.arange(engine.num_rows)))


def test_policy_is_an_openspiel_policy():
  game = pyspiel.load_game("python_mfg_crowd_modelling(size=5,horizon=4)")
  solver = mf_bayesian_q.MFBayesianQLearning(game)
  solver.iteration()
  policy = solver.policy()
  assert isinstance(policy, policy_lib.Policy)
  state = game.new_initial_states()[0].child(2)
  assert sum(policy.action_probabilities(state).values()) == pytest.approx(1.0)


@pytest.mark.parametrize("temperature", (0.0, -1.0, float("nan"),
                                         float("inf"), True, "1"))
def test_rejects_bad_temperature(temperature):
  game = pyspiel.load_game("mfg_crowd_modelling(size=3,horizon=2)")
  with pytest.raises(ValueError,
                     match="temperature must be a finite real number"):
    mf_bayesian_q.MFBayesianQLearning(game, temperature=temperature)


@pytest.mark.parametrize("game_string", ("matrix_rps", "tiny_hanabi"))
def test_rejects_games_that_are_not_mean_field_games(game_string):
  with pytest.raises(ValueError, match="not a mean-field game"):
    mf_bayesian_q.MFBayesianQLearning(pyspiel.load_game(game_string))


def test_rejects_an_engine_of_another_game():
  engine = mfg_engine.MeanFieldEngine(
      pyspiel.load_game("mfg_crowd_modelling(size=3,horizon=2)"))
  with pytest.raises(ValueError, match="different game"):
    mf_bayesian_q.MFBayesianQLearning(
        pyspiel.load_game("mfg_garnet(size=3,horizon=2)"), engine=engine)
