"""The zero-sum instantiation (Section 5.4)."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python.algorithms import exploitability

import vsg_spiel
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg


def skewed_start(game):
  mgame = vsg_spiel.markov_game(game)
  return vsg_spiel.random_profile(mgame, np.random.default_rng(0))


def test_rps_exploitability_falls_below_the_bound_and_to_zero():
  game = pyspiel.load_game("matrix_rps")
  temperature = 0.2
  solver = zero_sum_vpg.ZeroSumVPGSolver(
      game, temperature=temperature, step=0.05,
      initial_profile=skewed_start(game))
  first = solver.exploitability()
  for _ in range(200):
    solver.iteration()
  assert first > vsg_spiel.epsilon_bound(game, temperature)
  assert solver.exploitability() <= vsg_spiel.epsilon_bound(game,
                                                            temperature)
  schedule = vpg.geometric_annealing(1.0, 1e-3, 0.99)
  annealed = zero_sum_vpg.ZeroSumVPGSolver(
      game, temperature=schedule,
      step=zero_sum_vpg.proportional_step(schedule, 0.2),
      initial_profile=skewed_start(game))
  for _ in range(700):
    annealed.iteration()
  assert annealed.exploitability() < 1e-9


def test_biased_rps_annealing_reaches_the_final_bound():
  game = pyspiel.create_matrix_game([[0, -1, 2], [1, 0, -1], [-2, 1, 0]],
                                    [[0, 1, -2], [-1, 0, 1], [2, -1, 0]])
  schedule = vpg.geometric_annealing(1.0, 1e-2, 0.995)
  solver = zero_sum_vpg.ZeroSumVPGSolver(
      game, temperature=schedule,
      step=zero_sum_vpg.proportional_step(schedule, 0.05),
      initial_profile=skewed_start(game))
  for _ in range(1500):
    solver.iteration()
  assert solver.exploitability() <= vsg_spiel.epsilon_bound(game, 1e-2)


@pytest.mark.parametrize("game_string", [
    "matrix_mp", "oshi_zumo(coins=3,size=1,horizon=3)"])
def test_exploitability_equals_openspiel(game_string):
  game = pyspiel.load_game(game_string)
  solver = zero_sum_vpg.ZeroSumVPGSolver(game, temperature=0.3, step=0.1,
                                         initial_profile=skewed_start(game))
  for _ in range(5):
    solver.iteration()
  theirs = exploitability.exploitability(pyspiel.convert_to_turn_based(game),
                                         solver.policy())
  assert solver.exploitability() == pytest.approx(theirs, abs=1e-9)


def test_closed_form_opponent_is_the_soft_minimiser():
  """In a one-shot game rho*(b) ∝ exp(-E_{a~pi} r(a, b) / alpha)."""
  game = pyspiel.load_game("matrix_rps")
  start = skewed_start(game)
  solver = zero_sum_vpg.ZeroSumVPGSolver(game, temperature=0.7, step=0.1,
                                         initial_profile=start)
  solver.iteration()
  payoff = vsg_spiel.markov_game(game).rewards[0, 0]
  logits = -(start[0][0] @ payoff) / 0.7
  expected = np.exp(logits - logits.max())
  np.testing.assert_allclose(solver.opponent_models[0][0],
                             expected / expected.sum(), rtol=1e-12)


@pytest.mark.parametrize("game_string, kwargs, message", [
    ("matrix_rps", {"temperature": 0.0}, "temperature"),
    ("matrix_rps", {"step": 0.0}, "step"),
    ("matrix_rps", {"opponent_prior": "empirical"}, "opponent_prior"),
    ("matrix_pd", {}, "not zero-sum"),
    ("matching_pennies_3p", {}, "2 players"),
])
def test_bad_arguments_raise(game_string, kwargs, message):
  with pytest.raises(ValueError, match=message):
    zero_sum_vpg.ZeroSumVPGSolver(pyspiel.load_game(game_string), **kwargs)
