"""The NashConv comparison of VPG with OpenSpiel's baselines
(vsg_spiel.eval.compare_nash)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyspiel
import pytest

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.eval import common
from vsg_spiel.eval import comparison
from vsg_spiel.eval import registry
from vsg_spiel.eval import runner

RPS = "matrix_rps"
ROUTING = ("python_vsg_routing(network=braess,num_players=3,horizon=1,"
           "split_levels=2)")
# Small budgets and batches: every algorithm takes a few quick steps.
QUICK = comparison.ComparisonSettings(time_budget=0.2, rl_episodes=10,
                                      vpg_sampled_episodes=8)
ALGORITHMS = comparison.Comparison().algorithms


def make_or_skip(name, mgame, settings):
  algorithm, setup = runner.build(
      registry.get(name, registry.MARKOV), mgame, settings,
      comparison.stage_reward_range(mgame))
  if algorithm is None:
    pytest.skip(f"{name}: {setup['skipped']}")
  return algorithm


@pytest.mark.parametrize("game_string", [RPS, ROUTING])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_steps_and_plays_a_valid_profile(name, game_string):
  mgame = comparison.load_markov_game(game_string)
  if name == "nash_q" and mgame.num_players != 2:
    assert "2-player" in registry.get(name, registry.MARKOV).unsupported(
        mgame)
    return
  algorithm = make_or_skip(name, mgame, QUICK)
  for _ in range(3):
    algorithm.step()
  profile = vsg_spiel.validate_profile(mgame, algorithm.profile())
  # The OpenSpiel policy and the profile are the same played policy.
  assert vsg_spiel.nash_conv(mgame, algorithm.policy()) == pytest.approx(
      vsg_spiel.nash_conv(mgame, profile), abs=1e-12)
  assert algorithm.nash_conv() == pytest.approx(
      vsg_spiel.nash_conv(mgame, profile), abs=1e-12)


@pytest.mark.parametrize("name", ["qlearning", "boltzmann_qlearning"])
def test_evaluating_rl_agents_leaves_their_learning_unchanged(name):
  mgame = comparison.load_markov_game(ROUTING)
  profiles = []
  for evaluate_every_step in (True, False):
    algorithm = make_or_skip(name, mgame, QUICK)  # Seeds numpy's generator.
    for _ in range(5):
      algorithm.step()
      if evaluate_every_step:
        algorithm.profile()
    profiles.append(algorithm.profile())
  for evaluated, unevaluated in zip(*profiles):
    np.testing.assert_array_equal(evaluated, unevaluated)


@pytest.fixture(name="game_result", scope="module",
                params=["matrix_bos", ROUTING])
def fixture_game_result(request):
  return comparison.run_game(request.param, ALGORITHMS, QUICK)


def ran(game_result):
  return {name: run for name, run in game_result["algorithms"].items()
          if "skipped" not in run and "failed" not in run}


def test_checkpoints_are_monotone_and_end_the_run(game_result):
  assert set(game_result["algorithms"]) == set(ALGORITHMS)
  assert not runner.recorded_failures(game_result)
  for name, run in ran(game_result).items():
    iterations = np.array([point["iteration"] for point in run["checkpoints"]])
    seconds = np.array([point["seconds"] for point in run["checkpoints"]])
    assert iterations[0] >= 1, name
    assert np.all(np.diff(iterations) > 0), name
    assert np.all(np.diff(seconds) >= 0), name
    assert iterations[-1] == run["iterations"], name
    assert seconds[-1] == run["seconds"], name
    assert run["checkpoints"][-1]["nash_conv"] == run["final_nash_conv"]
    assert run["stopped"] in ("converged", "nash_conv_below_stop",
                              "time_budget", "max_iterations")
    # Never "converged" against the solver's own residual.
    assert not (run["stopped"] == "converged" and
                run["solver_converged"] is False), name
    if name == "vpg_annealed":
      assert run["solver_converged"] == (run["residual"] <= 1e-8), name


def test_openspiel_final_nash_conv_equals_ours(game_result):
  assert game_result["openspiel_checked"]
  for name, run in ran(game_result).items():
    assert run["openspiel_nash_conv"] == pytest.approx(
        run["final_nash_conv"], abs=1e-9), name
    assert run["openspiel_abs_difference"] < 1e-9, name


def test_time_to_threshold_is_where_nash_conv_settles_below_it(game_result):
  threshold = game_result["threshold_nash_conv"]
  for name, run in ran(game_result).items():
    points = run["checkpoints"]
    settled = [index for index in range(len(points))
               if all(point["nash_conv"] <= threshold
                      for point in points[index:])]
    if settled:
      assert run["time_to_threshold"] == points[settled[0]]["seconds"], name
      assert run["iterations_to_threshold"] == (
          points[settled[0]]["iteration"]), name
    else:
      assert run["time_to_threshold"] is None, name


def test_a_dip_below_the_threshold_is_not_its_time():
  # NashConv along annealed VPG on matrix_bos: below 1e-3 at step 355,
  # back at 4 at step 399, settled from step 502.
  points = [{"iteration": step, "nash_conv": value}
            for step, value in [(1, 0.5), (355, 1.2e-4), (399, 4.0),
                                (502, 0.0), (600, 0.0)]]
  assert comparison.settled_below(points, 1e-3)["iteration"] == 502
  assert comparison.settled_below(points[:3], 1e-3) is None
  assert comparison.settled_below(points[1:2], 1e-3)["iteration"] == 355


@pytest.mark.parametrize("game_string", ["matrix_sh", ROUTING])
def test_vpg_annealed_reaches_the_threshold_within_budget(game_string):
  settings = comparison.ComparisonSettings(time_budget=60.0)
  result = comparison.run_game(game_string, ["vpg_annealed"], settings)
  run = result["algorithms"]["vpg_annealed"]
  assert run["time_to_threshold"] is not None
  assert run["time_to_threshold"] <= settings.time_budget
  assert run["final_nash_conv"] <= result["threshold_nash_conv"]


def test_speedup_ratio_and_lower_bound():
  def run(time_to_threshold, seconds=10.0):
    return {"time_to_threshold": time_to_threshold, "seconds": seconds}
  runs = {"vpg_annealed": run(0.5), "vpg": run(None),
          "cfr": run(4.0), "xfp": run(2.0), "qlearning": run(None),
          "nash_q": {"skipped": "3 players"}, "wolf_phc": {"failed": "error"}}
  result = comparison.speedup(runs)
  assert result["fastest_baseline"] == "xfp"
  assert result["ratio"] == pytest.approx(4.0)
  assert result["ratio_lower_bound"] is None
  runs.update(cfr=run(None, seconds=12.0), xfp=run(None, seconds=3.0))
  result = comparison.speedup(runs)
  assert result["ratio"] is None and result["fastest_baseline"] is None
  assert result["ratio_lower_bound"] == pytest.approx(3.0 / 0.5)
  runs["vpg_annealed"] = run(None)
  assert comparison.speedup(runs)["ratio_lower_bound"] is None


def count_nodes(state):
  """Every node of the tree under `state`, chance nodes included."""
  if state.is_terminal():
    return 1
  actions = ([action for action, _ in state.chance_outcomes()]
             if state.is_chance_node() else state.legal_actions())
  return 1 + sum(count_nodes(state.child(action)) for action in actions)


@pytest.mark.parametrize("game_string", [
    RPS, "python_vsg_routing(network=braess,num_players=3,horizon=2,"
    "split_levels=1)"])
def test_tree_size_with_outcomes_counts_the_turn_based_tree(game_string):
  """Exact where rounds are separated by chance nodes, as in these games."""
  mgame = vsg_spiel.markov_game(game_string)
  turn_based = pyspiel.convert_to_turn_based(mgame.game)
  assert core.turn_based_tree_size(mgame, outcomes=True) == count_nodes(
      turn_based.new_initial_state())


def test_payoff_scale_uses_legal_joint_actions_only():
  mgame = vsg_spiel.markov_game(
      "oshi_zumo(coins=4,size=1,horizon=3)")
  legal_rewards = [
      mgame.rewards[(slice(None), state) + joint]
      for state in range(mgame.num_states)
      for joint in np.ndindex(*mgame.num_actions)
      if all(mask[state, action]
             for mask, action in zip(mgame.legal_mask, joint))]
  legal_rewards = np.array(legal_rewards)
  assert comparison.stage_reward_range(mgame) == pytest.approx(
      legal_rewards.max() - legal_rewards.min())


def test_game_list_splits_at_commas_outside_parentheses():
  parser = common.GameListParser()
  assert parser.parse(f"{ROUTING}, matrix_rps,") == [ROUTING, "matrix_rps"]


def run_binary(*flags):
  return subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.compare_nash", *flags],
      capture_output=True, text=True, check=False, timeout=120)


def test_binary_writes_results_report_and_figure(tmp_path):
  out = tmp_path / "out"
  result = run_binary("--games=matrix_rps", "--time_budget=1",
                      f"--out={out}")
  assert result.returncode == 0, result.stderr
  # The homotopy's kernel is compiled before the cells, not inside the
  # budget of vpg_annealed's or homotopy's first call.
  assert result.stderr.index("homotopy kernel ready") < result.stderr.index(
      "nash/matrix_rps/")
  with open(out / "results.json", encoding="utf-8") as stream:
    results = json.load(stream)
  (game_result,) = results["games"]
  assert game_result["game"] == "matrix_rps"
  assert set(game_result["algorithms"]) == set(ALGORITHMS)
  assert not runner.recorded_failures(game_result)
  report = (out / "report.md").read_text(encoding="utf-8")
  assert "## `matrix_rps`" in report and "| vpg_annealed |" in report
  assert (out / "figures" / "nash_conv_matrix_rps.png").stat().st_size > 0
  leftovers = [name for _, _, names in os.walk(out) for name in names
               if name.startswith(".tmp-")]
  assert not leftovers


@pytest.mark.parametrize("flag, messages", [
    ("--algorithms=vpg,not_an_algorithm",
     ["not_an_algorithm", ", ".join(ALGORITHMS)]),
    ("--games=kuhn_poker", ["kuhn_poker", "imperfect information"]),
    ("--games=oshi_zumo(coins=4,size=1,horizon=3),tic_tac_toe",
     ["tic_tac_toe", "simultaneous-move"]),
    ("--games=not_a_game", ["not_a_game", "allowed: a registered game"]),
    ("--time_budget=0", ["--time_budget", "> 0"]),
])
def test_bad_flags_fail_before_any_work(tmp_path, flag, messages):
  out = tmp_path / "out"
  result = run_binary(flag, f"--out={out}")
  assert result.returncode != 0
  for message in messages:
    assert message in result.stderr
  assert not out.exists()


@pytest.mark.parametrize("game_string", ["matrix_rps", "matrix_bos"])
def test_homotopy_entry_reaches_the_threshold(game_string):
  """The homotopy solver is one registry entry: compare_nash times it like
  the others, and its Nash endpoint is below the NashConv threshold."""
  settings = comparison.ComparisonSettings(time_budget=60.0)
  result = comparison.run_game(game_string, ["homotopy"], settings)
  run = result["algorithms"]["homotopy"]
  assert "failed" not in run, run
  assert run["final_nash_conv"] <= result["threshold_nash_conv"]
  assert run["time_to_threshold"] is not None


def _busy(seconds):
  """Uses `seconds` of CPU (the guard counts CPU time, not sleep)."""
  end = time.process_time() + seconds
  while time.process_time() < end:
    pass


class _Slow:
  """A uniform player whose construction or step takes `seconds` of CPU."""

  def __init__(self, mgame, construction=0.0, step=0.0):
    _busy(construction)
    self._mgame, self._step = mgame, step

  def step(self):
    _busy(self._step)

  def policy(self):
    return vsg_spiel.to_policy(self._mgame,
                               vsg_spiel.uniform_profile(self._mgame))

  def nash_conv(self):
    return vsg_spiel.nash_conv(self._mgame, self.policy())


@pytest.mark.parametrize("slow_part, construction, step", [
    ("its construction", 600.0, 0.0), ("its first step", 0.0, 600.0)])
def test_a_step_longer_than_the_budget_is_interrupted_and_skipped(
    slow_part, construction, step):
  """A construction or first step that would take 10 minutes is interrupted
  at 3 x the 0.2 s budget: the algorithm is recorded as skipped on the game
  with the reason, and the alarm handler is restored."""
  name = "test_slow_algorithm"
  registry.register(registry.Entry(
      name, registry.MARKOV,
      lambda mgame, settings, scale: _Slow(mgame, construction, step)))
  handler = signal.getsignal(signal.SIGPROF)
  try:
    result = comparison.run_game(RPS, [name], QUICK)
  finally:
    registry.unregister(name)
  assert runner.INTERRUPT_FACTOR == 3
  assert result["algorithms"][name] == {
      "skipped": f"{slow_part} took more than 0.6 s of CPU (3 x the 0.2 s "
                 "budget; interrupted)"}
  assert signal.getsignal(signal.SIGPROF) == handler
  markdown = comparison.game_markdown(comparison.merge_games([result])[0],
                                      "out")
  assert ("a construction or first step still running after 3 x the budget "
          "of CPU time") in markdown
  assert f"- {name}: skipped, {slow_part} took more than 0.6 s" in markdown


@pytest.mark.parametrize("name", ["cfr", "cfr_plus"])
def test_cfr_plays_openspiel_converted_average_policy(name):
  """The CFR adapter's policy (its states enumerated once) is OpenSpiel's
  `pyspiel_policy_to_python_policy` of the average policy, entry for
  entry, after each of a few steps (a C++ and a Python game)."""
  from open_spiel.python import policy as policy_lib  # pylint: disable=g-import-not-at-top
  for game_string in ("oshi_zumo(coins=3,size=1,horizon=3)", ROUTING):
    algorithm = make_or_skip(name, vsg_spiel.markov_game(game_string), QUICK)
    for _ in range(3):
      algorithm.step()
      ours = algorithm.policy()
      theirs = policy_lib.pyspiel_policy_to_python_policy(
          algorithm._game, algorithm._solver.tabular_average_policy())  # pylint: disable=protected-access
      assert ours.state_lookup == theirs.state_lookup
      np.testing.assert_array_equal(ours.action_probability_array,
                                    theirs.action_probability_array)


def test_tree_walkers_are_skipped_by_tree_size_not_by_a_clock():
  """CFR, CFR+ and XFP are skipped before they start where the game's tree
  would not fit 3 x the budget at their highest measured speed (the
  3-player routing game of the default run, ~112,000 histories, at a 2 s
  budget): the reason is the same on every machine and nothing is built.
  A larger budget, a small game or an OpenSpiel C++ game is left to run."""
  big = vsg_spiel.markov_game(comparison.DEFAULT_GAMES[0])
  histories = core.turn_based_tree_size(big, outcomes=True)
  rate = registry.get("cfr", registry.MARKOV).tree_histories_per_second
  assert histories > runner.INTERRUPT_FACTOR * 2.0 * rate
  for name in ("cfr", "cfr_plus", "xfp"):
    entry = registry.get(name, registry.MARKOV)
    start = time.perf_counter()
    algorithm, outcome = runner.build(entry, big, QUICK, 1.0,
                                      time_budget=2.0)
    assert algorithm is None and time.perf_counter() - start < 5
    assert outcome["skipped"] == (
        f"its turn-based tree has ~{histories} histories, more than the "
        f"{int(6 * rate)} it can visit in 3 x the 2 s budget on a Python "
        f"game (at most ~{rate:.0f} per second)")
    assert runner.tree_too_large(entry, big, histories / rate) is None
    assert runner.tree_too_large(entry, big, None) is None
    assert runner.tree_too_large(
        entry, vsg_spiel.markov_game(ROUTING), 0.2) is None
    assert runner.tree_too_large(
        entry, vsg_spiel.markov_game("oshi_zumo(coins=4,size=1,horizon=4)"),
        1e-6) is None
  assert runner.tree_too_large(registry.get("vpg", registry.MARKOV), big,
                               1e-6) is None


def test_every_algorithm_starts_from_the_uniform_profile():
  """One start for all (OpenSpiel's CFR and learners cannot take another):
  vpg_annealed's first profile is the uniform one, and the report says
  where a game's uniform start is already within the threshold."""
  mgame = vsg_spiel.markov_game(RPS)
  algorithm = make_or_skip("vpg_annealed", mgame, QUICK)
  for ours, uniform in zip(algorithm.profile(),
                           vsg_spiel.uniform_profile(mgame)):
    np.testing.assert_array_equal(ours, uniform)
  result = comparison.run_game(RPS, ["vpg"], QUICK)
  assert result["start_nash_conv"] == 0.0
  markdown = comparison.game_markdown(comparison.merge_games([result])[0],
                                      "out")
  assert ("Start: every algorithm from the uniform profile (NashConv 0). It "
          "is already within the threshold") in markdown
  bos = comparison.run_game("matrix_bos", ["vpg"], QUICK)
  assert bos["start_nash_conv"] > bos["threshold_nash_conv"]
  assert "already within" not in comparison.game_markdown(
      comparison.merge_games([bos])[0], "out")


def _plotted_game(runs, payoff_range=1.0):
  """A merged game result holding `runs` ({name: [(iteration, seconds,
  nash_conv)]})."""
  return {"game": "g", "slug": "g", "payoff_range": payoff_range,
          "threshold_nash_conv": 1e-3 * payoff_range,
          "settings": {"threshold": 1e-3},
          "algorithms": {name: {"checkpoints": [
              {"iteration": i, "seconds": s, "nash_conv": v}
              for i, s, v in points]} for name, points in runs.items()}}


@pytest.mark.parametrize("runs, payoff_range", [
    ({"vpg": [(1, 0.1, np.nan), (2, 0.2, np.nan)]}, 1.0),  # diverged
    ({"vpg": [(1, 0.1, np.inf), (2, 0.2, np.inf)]}, 1.0),
    ({"vpg": [(1, 0.1, 1.0), (2, 0.2, np.inf)],
      "cfr": [(1, 0.1, np.nan)]}, 1.0),
    ({"vpg": []}, 1.0),  # no checkpoint
    ({}, 1.0),  # every algorithm skipped or failed
    ({"vpg": [(1, 0.1, 0.0), (2, 0.2, 0.0)]}, 0.0),  # a constant game
    ({"vpg": [(1, 0.1, 1.0), (2, 0.2, 0.5)]}, np.nan),
    ({"vpg": [(0, 0.0, 1.0), (2, 0.2, 0.5)]}, np.inf),
])
def test_nash_conv_figure_is_written_for_any_series(runs, payoff_range,
                                                    tmp_path):
  """Before, empty, NaN or infinite series and a zero or non-finite payoff
  range on the log axes raised from matplotlib ("Data cannot be
  log-scaled", "Axis limits cannot be NaN or Inf")."""
  path = tmp_path / "figure.png"
  comparison.plot_game(_plotted_game(runs, payoff_range), str(path))
  assert path.stat().st_size > 1000
