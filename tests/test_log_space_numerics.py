"""Numerics in log space (issue 12, section 3): pure starting profiles, tiny
temperatures and temperatures at which rewards / alpha overflow."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib

import vsg_spiel
from vsg_spiel import logit
from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg

DIFFERENTIAL = "python_vsg_differential(horizon=2)"
CROWD = "mfg_crowd_modelling(size=4,horizon=3)"


@pytest.mark.parametrize("step", [1.0, 0.5])
@pytest.mark.parametrize("policy_form", vpg.POLICY_FORMS)
@pytest.mark.parametrize("opponent_model", vpg.OPPONENT_MODELS)
def test_log_space_pure_starting_profile_vpg(step, policy_form,
                                             opponent_model):
  """0 log 0 = 0: a pure start gives the values of the start with 1e-300 in
  place of 0 (before: NaN soft values and policies after one iteration)."""
  game = pyspiel.load_game(DIFFERENTIAL)
  mgame = vsg_spiel.markov_game(game)
  pure = vsg_spiel.pure_profile(mgame, [0, 0])
  nearly = [np.where(policy > 0, policy, 1e-300) for policy in pure]
  runs = []
  for start in (pure, nearly):
    solver = vpg.VPGSolver(game, temperature=1.0, step=step,
                           policy_form=policy_form,
                           opponent_model=opponent_model,
                           initial_profile=start)
    for _ in range(2):
      solver.iteration()
    runs.append(solver)
  exact, near = runs
  assert np.all(np.isfinite(exact.soft_values()))
  np.testing.assert_allclose(exact.soft_values(), near.soft_values(),
                             rtol=1e-12)
  for ours, theirs in zip(exact.profile(), near.profile()):
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
  assert exact.nash_conv() == pytest.approx(near.nash_conv(), abs=1e-12)
  if step < 1.0:  # pi^(1 - beta) keeps an unplayed action at exactly 0.
    assert np.all(exact.profile()[0][:, 1:] == 0.0)


def test_log_space_pure_starting_profile_zero_sum_vpg():
  game = pyspiel.load_game("matrix_rps")
  mgame = vsg_spiel.markov_game(game)
  pure = vsg_spiel.pure_profile(mgame, [0, 1])
  for step in (1.0, 0.5):
    solver = zero_sum_vpg.ZeroSumVPGSolver(game, temperature=0.5, step=step,
                                           opponent_prior="previous",
                                           initial_profile=pure)
    for _ in range(3):
      solver.iteration()
    profile = solver.profile()
    assert all(np.all(np.isfinite(policy)) for policy in profile)
    np.testing.assert_allclose([p.sum() for p in profile], [1.0, 1.0])
    assert np.isfinite(solver.nash_conv()) and solver.nash_conv() >= 0


def test_log_space_pure_initial_prior_mf_bayesian_q():
  game = pyspiel.load_game(CROWD)

  class FirstLegalAction(policy_lib.Policy):

    def action_probabilities(self, state, player_id=None):
      actions = state.legal_actions()
      return {action: float(action == actions[0]) for action in actions}

  solver = mf_bayesian_q.MFBayesianQLearning(
      game, temperature=0.5,
      initial_prior=FirstLegalAction(game, list(range(game.num_players()))))
  for _ in range(3):
    solver.iteration()
  np.testing.assert_allclose(solver.profile().sum(axis=1), 1.0)
  # The posterior keeps the prior's support: the first legal action only.
  assert np.all(np.isin(solver.profile(), (0.0, 1.0)))
  assert np.isfinite(solver.nash_conv()) and solver.nash_conv() >= 0


@pytest.mark.parametrize("temperature", [1.0, 1e-15, 1e-16, 1e-310])
def test_log_space_mf_bayesian_q_tied_values_give_the_prior(temperature):
  log_prior = np.log(np.full((1, 3), 1 / 3))
  q_values = np.full((1, 3), 5.0)
  log_posterior, value = mf_bayesian_q.soft_bellman_step(
      log_prior, q_values, np.ones((1, 3), bool), temperature)
  np.testing.assert_allclose(np.exp(log_posterior), [[1 / 3] * 3],
                             rtol=1e-15)
  # alpha log sum_a pibar(a) exp(5 / alpha) = 5 exactly.
  np.testing.assert_allclose(value, [5.0], rtol=1e-15)


@pytest.mark.parametrize("temperature", [1e-16, 1e-310])
def test_log_space_mf_bayesian_q_tiny_temperature(temperature):
  """Before: rows summing to 0.4-3 and NashConv -1.248 at 1e-16, NaN at
  1e-310."""
  game = pyspiel.load_game(CROWD)
  solver = mf_bayesian_q.MFBayesianQLearning(game, temperature=temperature)
  for _ in range(3):
    solver.iteration()
  np.testing.assert_allclose(solver.profile().sum(axis=1), 1.0, rtol=1e-12)
  nash_conv = solver.nash_conv()
  assert np.isfinite(nash_conv) and nash_conv >= 0.0


def test_log_space_kl_response_tends_to_the_best_response():
  log_prior = np.array([[np.log(0.5), np.log(0.25), np.log(0.25), -np.inf]])
  q_values = np.array([[1.0, 3.0, 2.0, 9.0]])  # action 3 has prior 0
  legal = np.ones((1, 4), bool)
  for temperature in (1e-3, 1e-200, 1e-320):
    log_posterior, value = logit.kl_regularised_response(
        log_prior, q_values, legal, temperature)
    np.testing.assert_allclose(np.exp(log_posterior), [[0, 1, 0, 0]],
                               atol=1e-300)
    assert value[0] == pytest.approx(3.0 - temperature * np.log(4.0))


@pytest.mark.parametrize("make", [
    lambda game, t: vpg.VPGSolver(game, temperature=t),
    lambda game, t: vpg.SampledVPGSolver(game, temperature=t),
    lambda game, t: zero_sum_vpg.ZeroSumVPGSolver(game, temperature=t),
    lambda game, t: correlated_vpg.CorrelatedVPGSolver(game, temperature=t),
], ids=["vpg", "sampled_vpg", "zero_sum_vpg", "correlated_vpg"])
def test_log_space_overflowing_temperature_is_rejected_with_the_bound(make):
  """Before: NaN policies at alpha=1e-305, the error only in nash_conv."""
  game = pyspiel.load_game("matrix_mp")  # returns reach 1
  with pytest.raises(ValueError, match=r"temperature must be >= 1e-300 for "
                     r"this game \(its returns reach 1,.*got 1e-305"):
    make(game, 1e-305)
  # At the bound every number stays finite.
  solver = make(game, 1e-300)
  for _ in range(3):
    solver.iteration()
  assert all(np.all(np.isfinite(policy)) for policy in solver.profile())
  assert np.isfinite(solver.nash_conv())


def test_log_space_annealed_temperature_is_checked_when_reached():
  game = pyspiel.load_game("matrix_mp")
  solver = vpg.VPGSolver(game, temperature=lambda t: 10.0**(-300 - 5 * t))
  solver.iteration()
  with pytest.raises(ValueError, match="temperature must be >= 1e-300"):
    solver.iteration()
