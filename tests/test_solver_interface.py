"""Every tabular solver has the same interface (issue 15, item 5):
`iteration()`, `policy()`, `profile()`, `nash_conv()`, `iteration_count`,
and the mean-field solvers `distribution` as a property."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability
from open_spiel.python.mfg.algorithms import distribution as mfg_distribution
from open_spiel.python.mfg.algorithms import nash_conv as mfg_nash_conv

from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import mirror_descent
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg

MARKOV_SOLVERS = {
    "vpg": lambda: vpg.VPGSolver(pyspiel.load_game("matrix_mp"),
                                 temperature=0.5, step=0.5),
    "sampled_vpg": lambda: vpg.SampledVPGSolver(
        pyspiel.load_game("matrix_mp"), temperature=0.5, step=0.5, seed=0,
        episodes_per_iteration=4),
    "zero_sum_vpg": lambda: zero_sum_vpg.ZeroSumVPGSolver(
        pyspiel.load_game("matrix_mp"), temperature=0.5),
}
MEAN_FIELD_SOLVERS = {
    "mf_bayesian_q": lambda game: mf_bayesian_q.MFBayesianQLearning(game),
    "mirror_descent": lambda game: mirror_descent.MirrorDescent(game, lr=0.5),
}


@pytest.mark.parametrize("name", sorted(MARKOV_SOLVERS))
def test_markov_solvers_share_one_interface(name):
  solver = MARKOV_SOLVERS[name]()
  assert solver.iteration_count == 0
  for _ in range(2):
    solver.iteration()
  assert solver.iteration_count == 2
  profile = solver.profile()
  assert len(profile) == 2
  np.testing.assert_allclose([p.sum(axis=1) for p in profile], 1.0)
  policy = solver.policy()
  assert isinstance(policy, policy_lib.Policy)
  assert solver.nash_conv() == pytest.approx(exploitability.nash_conv(
      pyspiel.convert_to_turn_based(pyspiel.load_game("matrix_mp")), policy),
                                             abs=1e-12)


def test_correlated_solver_shares_the_interface():
  game = pyspiel.load_game("matrix_cd")
  solver = correlated_vpg.CorrelatedVPGSolver(game, num_signals=2)
  for _ in range(2):
    solver.iteration()
  assert solver.iteration_count == 2
  # profile(): the signal-conditioned policies of the augmented game.
  profile = solver.profile()
  assert profile[0].shape == (solver.augmented.num_states, 2)
  # policy(): the correlation device, a mixture of OpenSpiel policies.
  device = solver.policy()
  assert sum(probability for probability, _ in device) == pytest.approx(1.0)
  assert solver.nash_conv() == pytest.approx(
      float(np.sum(solver.augmented_deviation_gains())))


@pytest.mark.parametrize("name", sorted(MEAN_FIELD_SOLVERS))
def test_mean_field_solvers_share_one_interface(name):
  game = pyspiel.load_game("mfg_crowd_modelling(size=4,horizon=3)")
  solver = MEAN_FIELD_SOLVERS[name](game)
  for _ in range(2):
    solver.iteration()
  assert solver.iteration_count == 2
  policy = solver.policy()
  np.testing.assert_array_equal(solver.profile(), policy.table)
  assert solver.nash_conv() == pytest.approx(
      mfg_nash_conv.NashConv(game, policy).nash_conv(), abs=1e-9)
  # distribution is a property, as in OpenSpiel's MirrorDescent.
  theirs = mfg_distribution.DistributionPolicy(game, policy)
  state = game.new_initial_state()
  while state.is_chance_node():
    state = state.child(state.chance_outcomes()[0][0])
  key = state.observation_string(pyspiel.PlayerId.DEFAULT_PLAYER_ID)
  assert solver.distribution.value_str(key) == pytest.approx(
      theirs.value_str(key), abs=1e-12)


# ----------------------------------------------------------------------------
# Never silent: every solver's `residual` and `converged`.

RPS_START = [np.array([[0.6, 0.3, 0.1]]), np.array([[0.2, 0.2, 0.6]])]
RESIDUAL_SOLVERS = {
    "zero_sum_vpg": lambda step: zero_sum_vpg.ZeroSumVPGSolver(
        pyspiel.load_game("matrix_rps"), temperature=1.0, step=step,
        initial_profile=RPS_START),
    "correlated_vpg": lambda step: correlated_vpg.CorrelatedVPGSolver(
        pyspiel.load_game("matrix_cd"), num_signals=2, temperature=1.0,
        step=step, learn_signal_distribution=True),
}


def _change(before, after):
  return max(float(np.max(np.abs(a - b))) for a, b in zip(after, before))


@pytest.mark.parametrize("name", sorted(RESIDUAL_SOLVERS))
def test_residual_is_the_change_of_a_unit_step_and_converged_says_so(name):
  # With beta = 1 the eq. 4 step lands on the soft best response, so the
  # residual is exactly how far the next iterate moves.
  solver = RESIDUAL_SOLVERS[name](1.0)
  residual, before = solver.residual, solver.profile()
  solver.iteration()
  assert residual == pytest.approx(_change(before, solver.profile()),
                                   abs=1e-12)
  assert residual > 1e-2 and not solver.converged
  # A smaller step converges, and then the solver says so.
  solver = RESIDUAL_SOLVERS[name](0.5)
  for _ in range(100):
    if solver.converged:
      break
    solver.iteration()
  assert solver.converged and solver.residual <= solver.tolerance
  assert solver.iteration_count < 100
  assert solver.nash_conv() < 1e-6


@pytest.mark.parametrize("name", sorted(MEAN_FIELD_SOLVERS))
def test_mean_field_residual_is_the_change_of_the_next_iteration(name):
  game = pyspiel.load_game("mfg_crowd_modelling(size=4,horizon=3)")
  solver = MEAN_FIELD_SOLVERS[name](game)
  for _ in range(3):
    residual, before = solver.residual, solver.profile()
    solver.iteration()
    after = solver.profile()[:len(before)]
    assert residual == pytest.approx(float(np.max(np.abs(after - before))),
                                     abs=1e-12)
  assert solver.residual > 1e-3 and not solver.converged
  assert solver.nash_conv() > 1e-3
  # Uniform play is an equilibrium of the dynamic routing game: a fixed
  # point at once.
  routing = MEAN_FIELD_SOLVERS[name](
      pyspiel.load_game("python_mfg_dynamic_routing"))
  routing.iteration()
  assert routing.converged and routing.residual <= routing.tolerance
  assert routing.nash_conv() <= 1e-12
