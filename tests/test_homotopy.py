"""Path following of the principal branch of logit QRE (algorithms/homotopy).

The multi-stage games are checked against eqs. (1)-(3) recomputed here and
with VPG's own soft values, and VPG started at the returned profile; the
normal-form games against Gambit in tests/test_homotopy_gambit.py.
"""

import numpy as np
import pyspiel
import pytest
from scipy import special

import vsg_spiel
from vsg_spiel import core
from vsg_spiel import logit
from vsg_spiel.algorithms import homotopy
from vsg_spiel.algorithms import homotopy_kernel
from vsg_spiel.algorithms import vpg

MULTI_STAGE = [
    "python_iterated_prisoners_dilemma(max_game_length=2)",
    "oshi_zumo(coins=3,size=1,horizon=3)",
    "python_vsg_routing(horizon=2)",
]


def payoff_range(mgame):
  return float(mgame.rewards.max() - mgame.rewards.min())


def action_values(mgame, profile, temperature, soft):
  """Q_i(s, a) of eq. (2) by backward induction over the layers, with the
  values of eq. (3s) (soft) or (3m); per player (S, A_i)."""
  values = np.zeros((mgame.num_states, mgame.num_players))
  q_values = [np.zeros(mask.shape) for mask in mgame.legal_mask]
  for layer_index in reversed(range(len(mgame.layers))):
    layer = mgame.layers[layer_index]
    continuation = mgame.expected_next(layer_index, values)
    policies = [policy[layer] for policy in profile]
    for i in range(mgame.num_players):
      joint = mgame.rewards[i, layer] + mgame.discount * continuation[..., i]
      q_values[i][layer] = core.expect_over_actions(joint, policies, keep=i)
      policy = profile[i][layer]
      entropy = -np.where(policy > 0, policy * np.log(
          np.where(policy > 0, policy, 1.0)), 0.0).sum(axis=1)
      values[layer, i] = (policy * q_values[i][layer]).sum(axis=1) + (
          temperature * entropy if soft else 0.0)
  return q_values


def logit_response(mgame, q_values, temperature):
  return [np.where(mask, special.softmax(
      np.where(mask, q / temperature, -np.inf), axis=1), 0.0)
          for q, mask in zip(q_values, mgame.legal_mask)]


@pytest.mark.parametrize("game_string", MULTI_STAGE)
@pytest.mark.parametrize("definition", homotopy.DEFINITIONS)
def test_multi_stage_branch_point_solves_the_fixed_point(game_string,
                                                         definition):
  mgame = vsg_spiel.markov_game(game_string)
  alpha = 0.2 * payoff_range(mgame)
  result = homotopy.solve(mgame, temperature=alpha, definition=definition)
  assert result.converged, result.message
  assert result.temperature == pytest.approx(alpha, rel=1e-12)
  response = logit_response(mgame, action_values(
      mgame, result.profile, alpha, definition == "soft"), alpha)
  difference = max(np.abs(a - b).max()
                   for a, b in zip(response, result.profile))
  assert difference <= 1e-10
  assert result.residual <= 1e-10
  assert result.branch[0].temperature == np.inf
  assert result.branch[-1].temperature == pytest.approx(alpha, rel=1e-12)


@pytest.mark.parametrize("game_string", MULTI_STAGE)
def test_vpg_started_at_the_soft_branch_point_stays_there(game_string):
  mgame = vsg_spiel.markov_game(game_string)
  alpha = 0.2 * payoff_range(mgame)
  result = homotopy.solve(mgame, temperature=alpha)
  solver = vpg.VPGSolver(mgame, temperature=alpha, step=0.1,
                         opponent_model="exact", policy_form="marginal",
                         initial_profile=result.profile)
  # VPG's own soft values (Def. 5.1, units of 1/alpha) at the start.
  soft_q = [np.einsum("saj,sj->sa", q, model) for q, model in zip(
      solver.soft_q_values(), solver.joint_opponent_models())]
  response = [np.exp(logit.log_softmax(q, mask, axis=1))
              for q, mask in zip(soft_q, mgame.legal_mask)]
  assert max(np.abs(a - b).max() for a, b in
             zip(response, result.profile)) <= 1e-10
  for _ in range(20):
    solver.iteration()
  assert max(np.abs(a - b).max() for a, b in
             zip(solver.profile(), result.profile)) <= 1e-10


@pytest.mark.parametrize("game_string", MULTI_STAGE[:2])
def test_multi_stage_nash_endpoint(game_string):
  mgame = vsg_spiel.markov_game(game_string)
  tolerance = 1e-8 * payoff_range(mgame)
  result = homotopy.solve(mgame, maxregret=tolerance)
  assert result.converged, result.message
  gains = vsg_spiel.profile_deviation_gains(mgame, result.profile)
  assert gains.max() <= tolerance
  assert result.max_regret == pytest.approx(gains.max(), abs=1e-15)
  assert result.nash_conv == pytest.approx(gains.sum(), abs=1e-15)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("definition", homotopy.DEFINITIONS)
def test_illegal_actions_raise_no_floating_point_warning(definition):
  # oshi_zumo has states where some bids are illegal: their log-probability
  # is -inf and pi log pi must be 0 there without evaluating 0 x -inf.
  game = MULTI_STAGE[1]
  mgame = vsg_spiel.markov_game(game)
  assert not all(mask.all() for mask in mgame.legal_mask)
  result = homotopy.solve(game, temperature=1.0, definition=definition)
  assert result.converged and result.residual <= 1e-12


# Symmetric 2 x 2 coordination games: uniform play is a logit QRE at every
# temperature, and the principal branch (uniform play) meets a pitchfork at
# alpha = range / 4 where the symmetric branches towards the two pure
# equilibria leave it. Perturbing the sum of the first player's
# probabilities (Gambit's rule) keeps uniform play a solution, so it does
# not unfold the crossing; Gambit's own trace stops there (at lambda
# 2.0000001 for all three).
@pytest.mark.parametrize("game", ["matrix_sh", "matrix_cd",
                                  "matrix_coordination"])
@pytest.mark.parametrize("temperature", [0.1, 0.01])
def test_branch_steps_across_a_symmetric_pitchfork(game, temperature):
  result = homotopy.solve(game, temperature=temperature)
  assert result.converged, result.message
  assert result.temperature == temperature
  assert result.residual <= 1e-12
  assert homotopy.fixed_point_residual(game, result.profile,
                                       temperature) <= 1e-12
  # Past the pitchfork, still on the branch followed from alpha = infinity.
  for table in result.profile:
    np.testing.assert_allclose(table, 0.5, atol=1e-12)


def test_fixed_point_residual_builds_the_equations_once(monkeypatch):
  mgame = vsg_spiel.markov_game(MULTI_STAGE[0])
  profile = homotopy.solve(mgame, temperature=2.0).profile
  first = homotopy.fixed_point_residual(mgame, profile, 1.0)
  original = homotopy._Equations  # pylint: disable=protected-access
  built = []
  monkeypatch.setattr(homotopy, "_Equations",
                      lambda *args: built.append(args) or original(*args))
  values = [homotopy.fixed_point_residual(mgame, profile, alpha)
            for alpha in (1.0, 1.0, 0.5)]
  assert not built
  assert values[0] == values[1] == first > 1e-3
  fresh = homotopy._residual(  # pylint: disable=protected-access
      original(mgame, "soft"), profile, 0.5)
  assert values[2] == fresh
  homotopy.fixed_point_residual(mgame, profile, 1.0, "markov_logit")
  homotopy.fixed_point_residual(mgame, profile, 1.0, "markov_logit")
  assert built == [(mgame, "markov_logit")]


@pytest.mark.parametrize("shape", [(3, 2), (2, 3, 2), (2, 2, 3, 2)])
def test_one_shot_jacobian_is_the_derivative_of_the_equations(shape):
  # A normal-form game's H and [dH/dy, dH/dlambda] come from one pass (two
  # players: a fixed payoff matrix; three: one stacked product; more: per
  # pair): against central differences of H.
  rng = np.random.default_rng(len(shape))
  tables = [rng.normal(size=shape) for _ in shape]
  game = (pyspiel.create_matrix_game(*tables) if len(shape) == 2 else
          pyspiel.create_tensor_game(tables))
  equations = homotopy._Equations(  # pylint: disable=protected-access
      core.markov_game(game), "soft")
  point = np.append(rng.normal(size=equations.size), 1.7)

  def equations_at(u):
    return equations.evaluate(u[:-1], u[-1], 1.0, jacobian=False)[0]

  h, _, augmented = equations.evaluate(point[:-1], point[-1], 1.0)
  step = 1e-6
  numeric = np.stack([
      (equations_at(point + step * e) - equations_at(point - step * e)) /
      (2 * step) for e in np.eye(len(point))], axis=1)
  np.testing.assert_allclose(augmented[:-1], numeric, rtol=0, atol=1e-7)
  assert not augmented[-1].any()  # the tangent's row, for the caller
  np.testing.assert_allclose(h, equations_at(point), rtol=0, atol=1e-12)
  # The expected payoffs themselves, u_i(a) = E_{a_-i ~ pi_-i} R_i(a, a_-i).
  pi = equations.probabilities(point[:-1])
  parts = np.split(pi, np.cumsum(shape)[:-1])
  axes = "abcd"[:len(shape)]
  expected = np.concatenate([np.einsum(
      ",".join([axes] + [axes[j] for j in range(len(shape)) if j != i]) +
      "->" + axes[i], table, *(parts[j] for j in range(len(shape)) if j != i))
                             for i, table in enumerate(tables)])
  np.testing.assert_allclose(equations.one_shot_rewards(pi) * equations.scale,
                             expected, rtol=0, atol=1e-12)
  # The compiled evaluation (homotopy_kernel) gives the same H, Jacobian
  # and rewards.
  payoffs, actions = equations.profile_payoffs()
  work = homotopy_kernel.workspace(equations.size)
  homotopy_kernel._jacobian(  # pylint: disable=protected-access
      point, (payoffs, actions, equations.group_starts_with_end), 0.0, work)
  np.testing.assert_allclose(work[0], h, rtol=0, atol=1e-13)
  np.testing.assert_allclose(work[1], augmented, rtol=0, atol=1e-13)
  values = np.empty(equations.size)
  homotopy_kernel.rewards(pi, payoffs, actions, values)
  np.testing.assert_allclose(values * equations.scale, expected, rtol=0,
                             atol=1e-12)


# Random games with 2 to 4 players and small games with branch crossings
# (rock-paper-scissors; the symmetric pitchfork of a stag hunt, passed by
# stepping across it; Shapley's game).
@pytest.mark.parametrize("game", [
    (3, 3), (2, 5), (4, 4), (2, 3, 2), (3, 3, 3), (4, 4, 4), (2, 2, 2, 2),
    "matrix_rps", "matrix_sh", "matrix_shapleys_game", "matrix_pd"])
def test_compiled_trace_equals_the_numpy_trace(game):
  # The compiled trace of a normal-form game (what `solve` runs) against
  # the numpy tracer it reproduces: the same steps and stop, and the same
  # branch points to rounding. (Where a crossing is not unfolded robustly
  # the two may leave it on different branches: rounding decides there;
  # docs/design.md.)
  if isinstance(game, tuple):
    rng = np.random.default_rng(len(game) * 10 + game[0])
    tables = [rng.integers(0, 10, size=game).astype(float) for _ in game]
    game = (pyspiel.create_matrix_game(*tables) if len(game) == 2 else
            pyspiel.create_tensor_game(tables))
  equations = homotopy._Equations(  # pylint: disable=protected-access
      core.markov_game(game), "soft")
  settings = homotopy.Settings()
  for target, maxregret in ((equations.scale / 0.05, None),
                            (None, 1e-8 * equations.scale)):
    numpy_trace = homotopy._Tracer(  # pylint: disable=protected-access
        equations, settings)
    compiled = homotopy._KernelTrace(  # pylint: disable=protected-access
        equations, settings)
    x, lam, converged, message = numpy_trace.run(target, maxregret)
    kernel_x, kernel_lam, kernel_converged, kernel_message = compiled.run(
        target, maxregret)
    assert (kernel_converged, kernel_message) == (converged, message)
    assert converged, message
    assert compiled.steps == numpy_trace.steps
    # The same evaluations too: the landing starts from the same point
    # between the last two branch points (a wrong start there shows as
    # failed landings retried with ever shorter steps).
    assert compiled.newton_iterations == numpy_trace.newton_iterations
    np.testing.assert_allclose(kernel_lam, lam, rtol=1e-10)
    np.testing.assert_allclose(equations.probabilities(kernel_x),
                               equations.probabilities(x), rtol=0,
                               atol=1e-10)
    branch, kernel_branch = (numpy_trace.branch_points(),
                             compiled.branch_points())
    assert len(kernel_branch) == len(branch)
    np.testing.assert_allclose(
        [point.temperature for point in kernel_branch],
        [point.temperature for point in branch], rtol=1e-10)
    for point, kernel_point in zip(branch, kernel_branch):
      for table, kernel_table in zip(point.profile, kernel_point.profile):
        np.testing.assert_allclose(kernel_table, table, rtol=0, atol=1e-10)
      # |H| holds lambda Q: its rounding grows with lambda.
      assert abs(kernel_point.residual - point.residual) <= 1e-10 * (
          1.0 + equations.scale / point.temperature)
    residual, gains = compiled.certificate(x, lam)
    numpy_residual, numpy_gains = numpy_trace.certificate(x, lam)
    np.testing.assert_allclose(residual, numpy_residual, rtol=0, atol=1e-13)
    np.testing.assert_allclose(gains, numpy_gains, rtol=0, atol=1e-12)


def test_one_shot_definitions_coincide():
  game = pyspiel.load_game("matrix_bos")
  soft = homotopy.solve(game, temperature=0.7)
  markov = homotopy.solve(game, temperature=0.7, definition="markov_logit")
  for a, b in zip(soft.profile, markov.profile):
    np.testing.assert_allclose(a, b, atol=1e-14)


def test_a_games_kept_equations_give_the_same_result():
  # `solve` keeps a MarkovGame's equations after its first solve: a second
  # solve of the same object and a solve of a fresh copy of the game agree,
  # and the lazily built branch matches the recorded steps.
  rng = np.random.default_rng(7)
  tables = [rng.integers(0, 10, size=(3, 3, 3)).astype(float)
            for _ in range(3)]
  mgame = core.markov_game(pyspiel.create_tensor_game(tables))
  first = homotopy.solve(mgame, temperature=0.2)
  again = homotopy.solve(mgame, temperature=0.2)
  fresh = homotopy.solve(pyspiel.create_tensor_game(tables), temperature=0.2)
  for result in (again, fresh):
    assert (result.steps, result.newton_iterations) == (
        first.steps, first.newton_iterations)
    for table, first_table in zip(result.profile, first.profile):
      np.testing.assert_array_equal(table, first_table)
  assert len(first.branch) == first.steps + 1  # and the start point
  assert first.branch[-1].temperature == pytest.approx(0.2, rel=1e-12)
  for table, last in zip(first.profile, first.branch[-1].profile):
    np.testing.assert_allclose(table, last, rtol=0, atol=1e-15)


def test_policy_is_the_profile():
  result = homotopy.solve("matrix_bos", temperature=1.0)
  policy = result.policy()
  state = pyspiel.load_game("matrix_bos").new_initial_state()
  probabilities = policy.action_probabilities(state, 1)
  np.testing.assert_allclose([probabilities[a] for a in (0, 1)],
                             result.profile[1][0], atol=0)


def test_fixed_point_residual_is_zero_only_at_the_branch_point():
  mgame = vsg_spiel.markov_game(MULTI_STAGE[0])
  result = homotopy.solve(mgame, temperature=1.0)
  assert homotopy.fixed_point_residual(mgame, result.profile, 1.0) <= 1e-12
  assert homotopy.fixed_point_residual(mgame, result.profile, 2.0) > 1e-3
  uniform = vsg_spiel.uniform_profile(mgame)
  assert homotopy.fixed_point_residual(mgame, uniform, 1.0) > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one"),
    ({"temperature": 1.0, "maxregret": 1e-6}, "exactly one"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"maxregret": -1.0}, "maxregret"),
    ({"temperature": 1.0, "definition": "entropy"}, "definition"),
    ({"temperature": 1.0, "settings": {"first_step": 1}}, "settings"),
])
def test_bad_arguments_fail_before_work(kwargs, match):
  with pytest.raises(ValueError, match=match):
    homotopy.solve("matrix_bos", **kwargs)


def test_vpg_says_when_it_cycles_and_the_adaptive_step_reaches_the_branch():
  # The case: at alpha = 0.1 with step 0.5 VPG cycles on BoS.
  branch = homotopy.solve("matrix_bos", temperature=0.1)
  solver = vpg.VPGSolver("matrix_bos", temperature=0.1, step=0.5,
                         opponent_model="exact", policy_form="marginal")
  converged, iterations, residual, reason = solver.run_to_tolerance(
      1e-9, max_iterations=300)
  assert (converged, iterations, reason) == (False, 300, "budget")
  assert residual == solver.residual > 0.1
  assert not solver.converged
  adaptive = vpg.VPGSolver("matrix_bos", temperature=0.1, step=0.5,
                           opponent_model="exact", policy_form="marginal")
  converged, iterations, residual, reason = adaptive.run_to_tolerance(
      1e-9, max_iterations=300, adaptive_step=True)
  assert converged and reason == "converged" and iterations < 300
  assert residual <= 1e-9 and adaptive.converged
  assert adaptive.step < 0.5
  # A logit QRE, but BoS has several at alpha = 0.1: VPG ends on the
  # mixed one, the branch past its bifurcation on a nearly pure one.
  assert homotopy.fixed_point_residual(
      "matrix_bos", adaptive.profile(), 0.1) <= 1e-9
  assert branch.residual <= 1e-12
  assert branch.nash_conv < 0.1 * adaptive.nash_conv()


def test_vpg_residual_is_the_homotopy_residual():
  solver = vpg.VPGSolver(MULTI_STAGE[0], temperature=2.0, step=0.3,
                         opponent_model="exact", policy_form="marginal")
  for _ in range(3):
    solver.iteration()
  assert solver.residual == homotopy.fixed_point_residual(
      solver.mgame, solver.profile(), 2.0)
  assert solver.residual > 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"tolerance": 0.0}, "tolerance"),
    ({"max_iterations": 0}, "max_iterations"),
])
def test_run_to_tolerance_bad_arguments(kwargs, match):
  solver = vpg.VPGSolver("matrix_bos", temperature=0.5)
  with pytest.raises(ValueError, match=match):
    solver.run_to_tolerance(**kwargs)


def cyclic_game(seed, num_states=3, num_actions=(2, 3), discount=0.8):
  """A random stationary discounted game whose state graph has cycles
  (every state can follow every state)."""
  rng = np.random.default_rng(seed)
  joint = int(np.prod(num_actions))
  transitions = rng.dirichlet(np.ones(num_states), size=num_states * joint)
  return core.MarkovGame(
      rewards=rng.random((2, num_states) + num_actions),
      transitions=transitions,
      legal_mask=[np.ones((num_states, n), dtype=bool) for n in num_actions],
      initial_distribution=np.full(num_states, 1.0 / num_states),
      layers=[np.arange(num_states)], discount=discount)


@pytest.mark.parametrize("definition", homotopy.DEFINITIONS)
def test_stationary_discounted_branch_point_by_value_iteration(definition):
  mgame = cyclic_game(seed=3)
  alpha = 0.3
  result = homotopy.solve(mgame, temperature=alpha, definition=definition)
  assert result.converged, result.message
  profile = result.profile
  # Policy evaluation by value iteration, independent of the solver's
  # linear solves.
  transitions = mgame.transitions.toarray().reshape(
      (mgame.num_states,) + mgame.num_actions + (mgame.num_states,))
  values = np.zeros((2, mgame.num_states))
  for _ in range(400):
    joint = mgame.rewards + mgame.discount * np.einsum(
        "sabt,it->isab", transitions, values)
    q_values = [np.einsum("sab,sb->sa", joint[0], profile[1]),
                np.einsum("sab,sa->sb", joint[1], profile[0])]
    values = np.array([
        (profile[i] * (q_values[i] - (alpha * np.log(profile[i]) if
                                      definition == "soft" else 0.0))
         ).sum(axis=1) for i in range(2)])
  response = logit_response(mgame, q_values, alpha)
  assert max(np.abs(a - b).max() for a, b in zip(response, profile)) <= 1e-10


def test_one_player_normal_form_game_is_a_softmax_of_its_payoffs():
  # One player at one state: the QRE is softmax(u / alpha), the endpoint
  # the best action (the one-shot path divided by N - 1 = 0).
  payoffs = np.array([1.0, 3.0, 2.0])
  game = pyspiel.create_tensor_game([payoffs])
  result = homotopy.solve(game, temperature=0.5)
  expected = np.exp(payoffs / 0.5) / np.exp(payoffs / 0.5).sum()
  np.testing.assert_allclose(result.profile[0][0], expected, atol=1e-12)
  nash = homotopy.solve(game, maxregret=1e-8)
  assert nash.converged and nash.nash_conv <= 1e-8
  assert np.argmax(nash.profile[0][0]) == 1
