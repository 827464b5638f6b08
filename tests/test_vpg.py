"""Variational policy gradient (Algorithms 1 and 3)."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python.algorithms import exploitability
from scipy import special

import vsg_spiel
from vsg_spiel.algorithms import vpg

ROUTING = "python_vsg_routing(num_players=3,split_levels=3,horizon=2)"


def converge(solver, iterations, tolerance=1e-10):
  """Iterates until the (conditional) policies stop moving; returns the
  last change."""
  previous = solver.conditional_policies()
  for _ in range(iterations):
    solver.iteration()
    current = solver.conditional_policies()
    change = max(np.abs(a - b).max() for a, b in zip(current, previous))
    previous = current
    if change < tolerance:
      break
  return change


@pytest.mark.parametrize("policy_form", ["conditional", "marginal"])
def test_unit_step_is_the_soft_best_response(policy_form):
  game = pyspiel.load_game("matrix_bos")
  solver = vpg.VPGSolver(game, temperature=0.3, step=1.0,
                         policy_form=policy_form)
  solver.iteration()  # moves away from uniform, so the next Q is not flat
  # With exact models, the next iteration's models are today's marginals.
  marginals = solver.profile()
  solver.iteration()
  for i in range(2):
    model = marginals[1 - i]
    rewards = vpg.own_first(solver.mgame.rewards[i], i, 2)[0]  # (A_i, A_-i)
    q_values = rewards / 0.3
    if policy_form == "marginal":
      expected = special.softmax(q_values @ model[0])
      got = solver.conditional_policies()[i][0, :, 0]
    else:
      expected = special.softmax(q_values, axis=0)
      got = solver.conditional_policies()[i][0]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("game_string", ["matrix_sh", "matrix_bos", ROUTING])
def test_marginal_fixed_point_is_epsilon_nash(game_string):
  """Marginal form, exact models: the regularised fixed point's true
  deviation gains are at most the Theorem 4.2 epsilon."""
  game = pyspiel.load_game(game_string)
  temperature = 0.2
  solver = vpg.VPGSolver(game, temperature=temperature, step=0.2,
                         opponent_model="exact", policy_form="marginal")
  assert converge(solver, 3000) < 1e-10
  epsilon = vsg_spiel.epsilon_bound(game, temperature)
  gains = solver.deviation_gains()
  assert np.all(gains <= epsilon), (gains, epsilon)
  # With exact models the ELBO gap of the marginal form is the true gain.
  np.testing.assert_allclose(solver.elbo_gaps(), gains, atol=1e-9)


@pytest.mark.parametrize("game_string", ["matrix_sh", "matrix_bos", ROUTING])
def test_conditional_elbo_gap_is_at_most_epsilon(game_string):
  game = pyspiel.load_game(game_string)
  temperature = 0.2
  solver = vpg.VPGSolver(game, temperature=temperature, step=0.2)
  converge(solver, 3000)
  epsilon = vsg_spiel.epsilon_bound(game, temperature)
  assert np.all(solver.elbo_gaps() <= epsilon + 1e-12)


def test_conditional_true_gain_can_exceed_epsilon():
  """docs/design.md: in matrix_bos the conditional form coordinates on the
  predicted action under q, but its marginal is exploitable in the game."""
  game = pyspiel.load_game("matrix_bos")
  solver = vpg.VPGSolver(game, temperature=0.1, step=1.0)
  converge(solver, 500)
  epsilon = vsg_spiel.epsilon_bound(game, 0.1)
  assert np.all(solver.elbo_gaps() <= epsilon)
  assert solver.deviation_gains().max() > epsilon


@pytest.mark.parametrize("opponent_model", vpg.OPPONENT_MODELS)
def test_policy_is_measured_equally_by_openspiel(opponent_model):
  game = pyspiel.load_game(
      "python_iterated_prisoners_dilemma(max_game_length=2)")
  solver = vpg.VPGSolver(game, temperature=0.5, step=0.5,
                         opponent_model=opponent_model)
  for _ in range(5):
    solver.iteration()
  theirs = exploitability.nash_conv(pyspiel.convert_to_turn_based(game),
                                    solver.policy())
  assert solver.nash_conv() == pytest.approx(theirs, abs=1e-9)
  assert vsg_spiel.nash_conv(game, solver.policy()) == pytest.approx(
      theirs, abs=1e-9)


def test_empirical_model_is_the_average_of_observed_play():
  game = pyspiel.load_game("matrix_bos")
  solver = vpg.VPGSolver(game, temperature=0.5, step=0.5,
                         opponent_model="empirical", prior_count=2.0)
  played = []
  for _ in range(4):
    played.append(solver.profile()[1])
    solver.iteration()
  expected = (np.sum(played, axis=0) + 2.0 * 0.5) / (4 + 2.0)
  np.testing.assert_allclose(solver.opponent_models[0][1], expected,
                             atol=1e-15)


def test_variational_oracle_model_is_prop_5_9_in_closed_form():
  """One-shot game, uniform prior: rho_j(a) ∝ exp(E_{a_i~pi_i} r_j / alpha)."""
  game = pyspiel.load_game("matrix_bos")
  solver = vpg.VPGSolver(game, temperature=0.7, step=0.5,
                         opponent_model="variational", oracle_reward=True)
  solver.iteration()
  own = solver.profile()[0]
  solver.iteration()
  expected = special.softmax(own[0] @ solver.mgame.rewards[1, 0] / 0.7)
  np.testing.assert_allclose(solver.opponent_models[0][1][0], expected,
                             rtol=1e-12)


def test_learned_reward_fits_the_observed_play():
  """Gradient steps of eqs. 6-7 on rhat_j make the model of j reproduce
  j's observed action frequencies (here held fixed at 90% / 10%)."""
  game = pyspiel.load_game("matrix_pd")
  solver = vpg.VPGSolver(game, temperature=1.0, step=0.5,
                         opponent_model="variational", prior_count=1e-9)
  solver.action_counts[1][0] = [90.0, 10.0]
  observed = solver.empirical_models()[1][0]
  kls = []
  for _ in range(300):
    solver.update_opponent_models(1.0)
    model = solver.opponent_models[0][1][0]
    kls.append(float(np.sum(observed * np.log(observed / model))))
  assert kls[0] > 0.1 and kls[-1] < 1e-6
  assert np.all(np.diff(kls) <= 1e-15)  # monotone descent


def test_sampled_mode_learns_to_defect_in_the_prisoners_dilemma():
  """Decentralised soft Q-learning from play finds the dominant action."""
  game = pyspiel.load_game("matrix_pd")
  for opponent_model in vpg.OPPONENT_MODELS:
    solver = vpg.SampledVPGSolver(game, temperature=0.2, step=0.5, seed=3,
                                  opponent_model=opponent_model,
                                  episodes_per_iteration=32)
    for _ in range(60):
      solver.iteration()
    defect = solver.profile()
    assert defect[0][0, 1] > 0.9 and defect[1][0, 1] > 0.9


def test_sampled_mode_is_reproducible():
  game = pyspiel.load_game(ROUTING)
  runs = []
  for _ in range(2):
    solver = vpg.SampledVPGSolver(game, temperature=0.5, seed=11,
                                  episodes_per_iteration=8)
    for _ in range(3):
      solver.iteration()
    runs.append(solver.profile())
  for a, b in zip(*runs):
    np.testing.assert_array_equal(a, b)


def test_annealing_reduces_the_temperature():
  schedule = vpg.geometric_annealing(1.0, 0.01, 0.5)
  solver = vpg.VPGSolver(pyspiel.load_game("matrix_rps"),
                         temperature=schedule)
  temperatures = []
  for _ in range(10):
    temperatures.append(solver.current_temperature())
    solver.iteration()
  assert temperatures[0] == 1.0 and temperatures[-1] == 0.01
  assert all(a >= b for a, b in zip(temperatures, temperatures[1:]))


@pytest.mark.parametrize("temperature", [1e-3, 1e-1, 1e1, 1e3])
@pytest.mark.parametrize("policy_form", vpg.POLICY_FORMS)
def test_large_rewards_and_extreme_temperatures_stay_finite(
    temperature, policy_form):
  payoffs = np.random.default_rng(0).uniform(-1e4, 1e4, size=(2, 4, 3))
  game = pyspiel.create_matrix_game(payoffs[0].tolist(), payoffs[1].tolist())
  for opponent_model in vpg.OPPONENT_MODELS:
    solver = vpg.VPGSolver(game, temperature=temperature, step=0.7,
                           opponent_model=opponent_model,
                           policy_form=policy_form)
    for _ in range(20):
      solver.iteration()
    assert all(np.all(np.isfinite(p)) for p in solver.profile())
    assert all(np.all(np.isfinite(q)) for q in solver.soft_q_values())
    assert np.all(np.isfinite(solver.deviation_gains()))
    assert np.all(np.isfinite(solver.elbo_gaps()))


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": -1.0}, "temperature"),
    ({"step": 0.0}, "step"),
    ({"step": 1.5}, "step"),
    ({"opponent_model": "oracle"}, "opponent_model"),
    ({"policy_form": "joint"}, "policy_form"),
    ({"opponent_prior": "flat"}, "opponent_prior"),
])
def test_bad_arguments_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    vpg.VPGSolver(pyspiel.load_game("matrix_rps"), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"episodes_per_iteration": 0}, "episodes_per_iteration"),
    ({"q_learning_rate": 0.0}, "q_learning_rate"),
    ({"q_learning_rate": 1.5}, "q_learning_rate"),
    ({"opponent_model": "oracle"}, "opponent_model"),
])
def test_bad_sampled_arguments_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    vpg.SampledVPGSolver(pyspiel.load_game("matrix_rps"), **kwargs)


def test_bad_annealed_temperature_raises_when_reached():
  solver = vpg.VPGSolver(pyspiel.load_game("matrix_rps"),
                         temperature=lambda t: 1.0 - t)
  solver.iteration()
  with pytest.raises(ValueError, match="temperature"):
    solver.iteration()


def test_restart_at_is_a_fresh_start_at_the_profile():
  game = pyspiel.load_game("matrix_shapleys_game")
  mgame = vsg_spiel.markov_game(game)
  start = vsg_spiel.random_profile(mgame, np.random.default_rng(1))
  for policy_form in vpg.POLICY_FORMS:
    restarted = vpg.VPGSolver(mgame, temperature=0.5, step=0.3,
                              policy_form=policy_form)
    for _ in range(3):
      restarted.iteration()
    restarted.restart_at(start)
    fresh = vpg.VPGSolver(mgame, temperature=0.5, step=0.3,
                          policy_form=policy_form, initial_profile=start)
    for _ in range(2):
      restarted.iteration()
      fresh.iteration()
    for a, b in zip(restarted.log_policies, fresh.log_policies):
      np.testing.assert_array_equal(a, b)


def payoff_range(mgame):
  rewards = mgame.rewards
  return float(rewards.max() - rewards.min()) * mgame.horizon


def anneal_to_convergence(game_string, initial_temperature):
  """BranchAnnealedVPG from 1 (x the payoff range, or along the branch from
  the start if None) to 1e-5, run until converged (at most 1000 calls)."""
  mgame = vsg_spiel.markov_game(game_string)
  scale = payoff_range(mgame)
  solver = vpg.BranchAnnealedVPG(
      mgame, 1e-5 * scale, 0.5,
      initial_temperature=(None if initial_temperature is None else
                           initial_temperature * scale),
      initial_profile=vsg_spiel.random_profile(mgame,
                                               np.random.default_rng(0)))
  for _ in range(1000):
    if solver.converged:
      break
    solver.iteration()
  return solver, scale


@pytest.mark.parametrize("initial_temperature", [None, 1.0])
@pytest.mark.parametrize("game_string", [
    "matrix_rps", "matrix_bos", "matrix_sh", "matrix_shapleys_game"])
def test_branch_annealed_vpg_reaches_nash(game_string, initial_temperature):
  # Plain geometric annealing alone ends at NashConv 2 (the maximum) on
  # matrix_rps and 1 on matrix_shapleys_game (issue 13).
  solver, scale = anneal_to_convergence(game_string, initial_temperature)
  assert solver.converged
  assert solver.temperature == pytest.approx(1e-5 * scale)
  assert solver.residual <= solver.tolerance
  assert solver.residual == solver.solver.residual
  assert solver.nash_conv() <= 1e-3 * scale
  for stage in solver.stages:  # A restart only where VPG had not converged.
    assert stage.restarted == (not stage.converged and
                               stage.branch_distance is not None)
  count = solver.iteration_count
  solver.iteration()  # Converged at the last stage: nothing to do.
  assert solver.iteration_count == count


@pytest.mark.parametrize("game_string, follows_branch", [
    ("matrix_rps", True), ("matrix_bos", False)])
def test_plain_annealing_checks_itself_and_falls_back_on_the_branch(
    game_string, follows_branch):
  solver, scale = anneal_to_convergence(game_string, 1.0)
  # Plain annealing (0.8 per iteration from 1 to 1e-5 x range: 52
  # iterations) holds BoS's pure equilibrium; on RPS it cycles, the check at
  # the final temperature says so, and the branch takes over.
  assert (solver.trace is not None) == follows_branch
  if follows_branch:
    check = solver.stages[0]
    assert check.temperature == 1e-5 * scale and check.branch_distance is None
    assert not check.converged and check.residual > solver.tolerance
    assert check.iterations == solver.stage_iterations
  else:
    assert solver.iteration_count == 52 and not solver.stages


def test_branch_annealed_vpg_says_when_it_has_not_converged():
  solver = vpg.BranchAnnealedVPG("matrix_rps", 1e-5, 0.5,
                                 initial_profile=[np.array([[0.8, 0.1, 0.1]]),
                                                  np.array([[0.1, 0.1, 0.8]])])
  for _ in range(3):
    solver.iteration()
  assert not solver.converged and solver.residual > solver.stage_tolerance
  assert solver.residual == solver.solver.residual
  # Two VPG iterations per stage cannot hold RPS's branch at small alpha:
  # the stages say so and restart VPG at the branch point.
  short = vpg.BranchAnnealedVPG("matrix_rps", 1e-5, 1.0, stage_iterations=2,
                                initial_profile=[np.array([[0.8, 0.1, 0.1]]),
                                                 np.array([[0.1, 0.1, 0.8]])])
  for _ in range(100):
    short.iteration()
  assert short.converged
  assert any(stage.restarted and not stage.converged and
             stage.residual > short.stage_tolerance for stage in short.stages)


@pytest.mark.parametrize("kwargs, message", [
    ({"final_temperature": 0.0}, "final_temperature"),
    ({"initial_temperature": 1e-4}, "initial_temperature"),
    ({"step": 0.0}, "step"),
    ({"tolerance": 0.0}, "tolerance"),
    ({"stage_tolerance": 1e-9}, "stage_tolerance"),
    ({"stage_iterations": 0}, "stage_iterations"),
    ({"decay": 1.0}, "decay"),
])
def test_bad_branch_annealed_arguments_raise(kwargs, message):
  arguments = {"final_temperature": 1e-3, **kwargs}
  with pytest.raises(ValueError, match=message):
    vpg.BranchAnnealedVPG("matrix_rps", **arguments)
