"""Correlated equilibria through a public signal (Section 5.3)."""

import numpy as np
import pyspiel
import pytest

import vsg_spiel
from vsg_spiel.algorithms import correlated_vpg

CE_TOLERANCE = 1e-6


def solve(game_string, iterations=1000, **kwargs):
  solver = correlated_vpg.CorrelatedVPGSolver(
      pyspiel.load_game(game_string), **kwargs)
  for _ in range(iterations):
    solver.iteration()
  return solver


def test_two_signals_reach_the_fair_device_in_chicken():
  """Chicken-dare: the device mixes (Dare, Chicken) and (Chicken, Dare)
  half and half: a correlated equilibrium worth 2.5 to each player, more
  than the symmetric mixed Nash equilibrium's 2."""
  solver = solve("matrix_cd", num_signals=2)
  assert solver.ce_dist().dist_value < CE_TOLERANCE
  assert solver.cce_dist().dist_value < CE_TOLERANCE
  values = solver.player_values()
  assert values[0] == pytest.approx(values[1], abs=1e-6)
  assert values[0] == pytest.approx(2.5, abs=1e-3)
  joint = solver.joint_distribution()[0]
  np.testing.assert_allclose(joint, [[0, 0.5], [0.5, 0]], atol=1e-4)


def test_one_signal_is_a_nash_equilibrium():
  solver = solve("matrix_cd", num_signals=1)
  values = solver.player_values()
  assert sorted(np.round(values, 3)) == [1.0, 4.0]  # a pure equilibrium


def test_our_ce_gaps_equal_openspiel_ce_dist():
  game = pyspiel.load_game("matrix_shapleys_game")
  solver = solve("matrix_shapleys_game", iterations=50, num_signals=3,
                 initialisation="random", seed=2)
  payoffs = vsg_spiel.markov_game(game).rewards[:, 0]
  ce, cce = correlated_vpg.normal_form_ce_gaps(
      solver.joint_distribution()[0], payoffs)
  assert ce.sum() == pytest.approx(solver.ce_dist().dist_value, abs=1e-9)
  assert cce.sum() == pytest.approx(solver.cce_dist().dist_value, abs=1e-9)
  assert ce.sum() > 1e-3  # Shapley's game: the learners cycle


def test_device_of_a_multi_stage_game_has_one_policy_per_signal_sequence():
  solver = solve("python_vsg_routing(num_players=2,horizon=2,split_levels=1)",
                 iterations=2, num_signals=2)
  device, _ = solver.correlation_device()
  assert len(device) == 4
  assert sum(probability for probability, _ in device) == pytest.approx(1.0)


def test_augmented_game_repeats_the_game_per_signal():
  mgame = vsg_spiel.markov_game(pyspiel.load_game(
      "python_iterated_prisoners_dilemma(max_game_length=2)"))
  augmented = correlated_vpg.augment_with_signal(mgame, [0.25, 0.75])
  assert augmented.num_states == 2 * mgame.num_states
  assert augmented.horizon == mgame.horizon
  np.testing.assert_allclose(
      np.asarray(augmented.transitions.sum(axis=1)).reshape(
          mgame.num_states, 2, -1)[:, 0],
      np.asarray(mgame.transitions.sum(axis=1)).reshape(mgame.num_states, -1))
  # Without correlation to exploit, values equal the original game's.
  profile = vsg_spiel.uniform_profile(mgame)
  original = mgame.initial_distribution @ vsg_spiel.policy_values(mgame,
                                                                   profile)
  doubled = [np.repeat(p, 2, axis=0) for p in profile]
  assert augmented.initial_distribution @ vsg_spiel.policy_values(
      augmented, doubled) == pytest.approx(original)


def test_learned_signal_distribution_stays_a_distribution():
  solver = solve("matrix_cd", iterations=50, num_signals=3,
                 learn_signal_distribution=True, initialisation="random",
                 seed=0)
  sigma = solver.signal_distribution
  assert sigma.sum() == pytest.approx(1.0) and np.all(sigma >= 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_signals": 0}, "num_signals"),
    ({"num_signals": 2, "signal_distribution": [0.7, 0.7]},
     "signal_distribution"),
    ({"initialisation": "latin"}, "initialisation"),
    ({"temperature": 0.0}, "temperature"),
    ({"signal_step": 2.0}, "signal_step"),
])
def test_bad_arguments_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    correlated_vpg.CorrelatedVPGSolver(pyspiel.load_game("matrix_cd"),
                                       **kwargs)


BATCH_DEVICES = [(1, "distinct", 0), (2, "shared", 0), (3, "random", 1),
                 (2, "random", 2)]


@pytest.mark.parametrize("game_string, policy_form", [
    ("matrix_shapleys_game", "marginal"),
    ("python_iterated_prisoners_dilemma(max_game_length=2)", "marginal"),
    ("python_iterated_prisoners_dilemma(max_game_length=2)", "conditional"),
])
def test_batch_runs_each_device_as_its_own_solver(game_string, policy_form):
  """The batched devices' joint distributions and values equal those of
  each device run alone, after iterations that moved them (multi-stage:
  the signal is redrawn inside each device only)."""
  mgame = vsg_spiel.markov_game(game_string)
  batch = correlated_vpg.CorrelatedVPGBatch(
      mgame, BATCH_DEVICES, temperature=0.1, policy_form=policy_form)
  starts = batch.joint_distributions()
  for _ in range(40):
    batch.iteration()
  joints, values = batch.joint_distributions(), batch.player_values()
  assert batch.iteration_count == 40
  residuals = []
  for index, (num_signals, initialisation, seed) in enumerate(BATCH_DEVICES):
    alone = correlated_vpg.CorrelatedVPGSolver(
        mgame, num_signals=num_signals, temperature=0.1,
        initialisation=initialisation, seed=seed, policy_form=policy_form)
    for _ in range(40):
      alone.iteration()
    np.testing.assert_allclose(joints[index], alone.joint_distribution(),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(values[index], alone.player_values(),
                               rtol=0, atol=1e-12)
    residuals.append(alone.residual)
  # The batch's residual is its devices' largest, and says not converged.
  assert batch.residual == pytest.approx(max(residuals), rel=0, abs=1e-12)
  assert batch.converged == (max(residuals) <= batch.tolerance)
  # The devices moved.
  assert max(np.abs(joint - start).max()
             for joint, start in zip(joints, starts)) > 0.1


def test_augmented_devices_never_reach_each_other():
  mgame = vsg_spiel.markov_game(
      "python_iterated_prisoners_dilemma(max_game_length=2)")
  augmented = correlated_vpg.augment_with_signals(
      mgame, [[1.0], [0.25, 0.75]])
  assert augmented.num_states == 3 * mgame.num_states
  assert augmented.initial_distribution.sum() == pytest.approx(1.0)
  coo = augmented.transitions.tocoo()
  device = np.array([0, 1, 1])
  source = (coo.row // mgame.num_joint_actions) % 3
  np.testing.assert_array_equal(device[source], device[coo.col % 3])
  # One device's game is augment_with_signal's, state for state.
  alone = correlated_vpg.augment_with_signal(mgame, [0.25, 0.75])
  states = (np.arange(mgame.num_states)[:, None] * 3 + [1, 2]).ravel()
  joint = mgame.num_joint_actions
  rows = (states[:, None] * joint + np.arange(joint)).ravel()
  block = augmented.transitions[rows][:, states]
  np.testing.assert_array_equal(block.toarray(),
                                alone.transitions.toarray())


@pytest.mark.parametrize("devices, message", [
    ([], "devices"),
    ([(0, "distinct", 0)], "num_signals"),
    ([(2, "latin", 0)], "initialisation"),
    ([(2, "random", -1)], "seed"),
])
def test_batch_bad_devices_raise(devices, message):
  with pytest.raises(ValueError, match=message):
    correlated_vpg.CorrelatedVPGBatch(pyspiel.load_game("matrix_cd"), devices)
