r"""NashConv of vsg_spiel's solvers and OpenSpiel's baselines against
iterations and seconds: the library behind `compare_nash` and the report's
nash and zero-sum sections.

Every algorithm of the registry's MARKOV family (eval/registry.py,
eval/adapters.py) runs on every game (simultaneous-move games with perfect
information, or one-shot, that the Markov-game core accepts), and the exact
NashConv (`vsg_spiel.nash_conv`) of the policy it plays is recorded at
checkpoints spaced logarithmically in iterations and in seconds
(`runner.LogSchedule`).

VPG temperatures are given in units of the game's stage-reward range (max -
min of the stage rewards over states and legal joint actions), so the same
settings suit every game. The payoff range is that range times the horizon;
"time to threshold" is the time of the first checkpoint from which NashConv
stays <= `threshold` x payoff range to the end of the run
(`settled_below`).

Time is each algorithm's own work, cumulative: its construction (for VPG the
enumeration of the game's tensors) and its steps, never the NashConv
evaluations. A run stops after `time_budget` seconds of that time, after
`max_iterations` steps, or at a checkpoint with NashConv <= 1e-6 x payoff range.
A construction or first step still running after 3 x the budget of CPU time
(`runner.INTERRUPT_FACTOR`) is interrupted and the algorithm recorded as skipped
on that game with the reason; later steps are not interrupted, so a run can
overrun the budget by about a step. OpenSpiel's CFR, CFR+ and XFP are skipped
before they start on a Python game whose turn-based tree is too large for that
time (`runner.tree_too_large`, the same on every machine). Where the game's
turn-based tree is small enough, the final policy is also evaluated by
OpenSpiel's `exploitability.nash_conv` and both numbers are recorded. An
algorithm that cannot run on a game is recorded as skipped with the reason; one
that fails, with its error, and the others still run.
"""

import dataclasses
import importlib.metadata
import os
import platform
import re
import time

from absl import logging
import numpy as np
import pyspiel
from open_spiel.python.algorithms import exploitability

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.eval import common
from vsg_spiel.eval import registry
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib

setting = settings_lib.setting

DEFAULT_GAMES = (
    "python_vsg_routing(network=braess,num_players=3,horizon=2,"
    "split_levels=2)",
    "python_vsg_differential(horizon=1)",
    "matrix_rps",
    "matrix_bos",
    "matrix_sh",
)
SAMPLED_OPPONENT_MODELS = ("empirical", "variational")
# A run stops once NashConv <= this fraction of the payoff range.
CONVERGED_FRACTION = 1e-6
# Figures draw NashConv below this fraction of the payoff range (0 included)
# at it, so that a log scale can show it.
PLOT_FLOOR_FRACTION = 1e-8


@dataclasses.dataclass(frozen=True)
class ComparisonSettings:
  """How each algorithm runs on each game (what a cell's result depends on)."""
  seed: int = setting(0, "Seed of the sampled algorithms.", at_least=0)
  time_budget: float = setting(
      10.0, "Seconds of its own work per algorithm and game.", above=0)
  max_iterations: int = setting(100_000, "Most steps per algorithm and game.",
                                at_least=1)
  threshold: float = setting(
      1e-3, "Time to threshold: to reach NashConv <= threshold x payoff "
      "range.", above=0, at_most=1)
  checkpoints: int = setting(
      50, "NashConv evaluations: this many marks spaced logarithmically in "
      "steps and as many in seconds.", at_least=1)
  vpg_step: float = setting(0.5, "VPG's eq. 4 step beta.", above=0, at_most=1)
  vpg_initial_temperature: float = setting(
      1.0, "vpg_annealed's and zero_sum_vpg's first temperature, in "
      "stage-reward ranges.",
      above=0)
  vpg_final_temperature: float = setting(
      1e-5, "vpg_annealed's and zero_sum_vpg's last temperature, in "
      "stage-reward ranges.",
      above=0)
  vpg_temperature_decay: float = setting(
      0.8, "vpg_annealed's and zero_sum_vpg's temperature factor per "
      "iteration (< 1 for vpg_annealed).", above=0, at_most=1)
  vpg_temperature: float = setting(
      0.1, "Fixed temperature of vpg and vpg_sampled, in stage-reward ranges.",
      above=0)
  vpg_sampled_episodes: int = setting(
      64, "Episodes per vpg_sampled iteration.", at_least=1)
  vpg_sampled_opponent_model: str = setting(
      "empirical", "Opponent model of vpg_sampled.",
      choices=SAMPLED_OPPONENT_MODELS)
  rl_episodes: int = setting(100, "Episodes per step of the RL baselines.",
                             at_least=1)
  openspiel_check_max_histories: int = setting(
      200_000, "Check the final NashConv with OpenSpiel's "
      "exploitability.nash_conv where the turn-based tree has at most about "
      "this many nodes.", at_least=0)


def check_games(games):
  """ValueError unless every game is one the comparison can run."""
  for game_string in games:
    try:
      load_markov_game(game_string)
    except ValueError as error:
      raise ValueError(
          f"{game_string}: {str(error).rstrip('.')}. Valid games: "
          "simultaneous-move games with perfect information (or one-shot) "
          f"and finite plays, e.g. {', '.join(DEFAULT_GAMES)}") from error


def markov_names():
  return registry.names(registry.MARKOV)


@dataclasses.dataclass(frozen=True)
class Comparison(ComparisonSettings):
  """Which algorithms run on which games, and how."""
  games: tuple[str, ...] = setting(
      DEFAULT_GAMES, "OpenSpiel game strings (commas inside parentheses stay "
      "in the game): simultaneous-move games with perfect information (or "
      "one-shot) and finite plays.", games=True, check=check_games)
  algorithms: tuple[str, ...] = setting(
      registry.names(registry.MARKOV, default_for="compare_nash"),
      "Algorithms of the registry (eval/adapters.py) to run.",
      choices=markov_names)


def run_settings(comparison):
  """The `ComparisonSettings` part of a `Comparison` (a cell's config)."""
  return {field.name: getattr(comparison, field.name)
          for field in dataclasses.fields(ComparisonSettings)}


# ----------------------------------------------------------------------------
# Games: checks, scales and sizes.


def load_markov_game(game_string):
  """The game's `MarkovGame`; ValueError if the comparison cannot use it."""
  try:
    mgame = vsg_spiel.markov_game(game_string)
  except pyspiel.SpielError as error:
    raise ValueError(str(error).strip()) from error
  if mgame.game.get_type().dynamics != pyspiel.GameType.Dynamics.SIMULTANEOUS:
    raise ValueError("the baselines run on pyspiel.convert_to_turn_based and "
                     "rl_environment's simultaneous loop: use a "
                     "simultaneous-move game")
  if stage_reward_range(mgame) <= 0:
    raise ValueError("its rewards are constant: every policy is a Nash "
                     "equilibrium")
  return mgame


def stage_reward_range(mgame):
  """max - min of the stage rewards over states and legal joint actions."""
  legal = np.ones((mgame.num_states,) + mgame.num_actions, dtype=bool)
  for player, mask in enumerate(mgame.legal_mask):
    shape = [mgame.num_states] + [1] * mgame.num_players
    shape[1 + player] = mgame.num_actions[player]
    legal &= mask.reshape(shape)
  rewards = mgame.rewards[:, legal]
  return float(rewards.max() - rewards.min())


def slug(game_string):
  """A file-name-safe form of a game string."""
  return re.sub(r"[^a-z0-9]+", "_", game_string.lower()).strip("_")


def is_baseline(name):
  """Whether `name` is an OpenSpiel baseline of the registry."""
  try:
    return registry.get(name, registry.MARKOV).baseline
  except ValueError:
    return False


# ----------------------------------------------------------------------------
# Runs.


def run_algorithm(name, mgame, settings, reward_scale, openspiel_game=None):
  """Runs one registry algorithm on one game within the budgets.

  Args:
    name: a MARKOV entry of the registry.
    mgame: the game's `MarkovGame`.
    settings: `ComparisonSettings`.
    reward_scale: the stage-reward range, the unit of VPG's temperatures.
    openspiel_game: the turn-based game on which OpenSpiel's
      `exploitability.nash_conv` checks the final policy, or None.

  Returns:
    A JSON-able dict: the checkpoints (iteration, seconds, nash_conv), the
    time and iterations to the threshold (None if not reached), the final
    NashConv, the solver's own `residual` and `converged` (None where the
    algorithm has none), why the run stopped ("converged": NashConv <=
    1e-6 x payoff range; "nash_conv_below_stop" instead where the solver's
    residual says it has not converged; "time_budget"; "max_iterations")
    and the seconds of construction (included in every time);
    {"skipped": reason} if the algorithm cannot run on the game or its
    construction or first step does not fit the time budget (see
    `runner`). Raises
    what the algorithm raises (see `runner.isolated`).
  """
  payoff_range = reward_scale * mgame.horizon
  threshold = settings.threshold * payoff_range
  algorithm, setup_seconds = runner.build(
      registry.get(name, registry.MARKOV), mgame, settings, reward_scale,
      time_budget=settings.time_budget)
  if algorithm is None:
    logging.warning("%s skipped on %s: %s", name, mgame.game,
                    setup_seconds["skipped"])
    return setup_seconds
  try:
    checkpoints, iteration, seconds = runner.run_timed(
        algorithm, setup_seconds,
        runner.LogSchedule(settings.checkpoints, settings.max_iterations,
                           settings.time_budget),
        settings.time_budget, settings.max_iterations,
        stop_at=CONVERGED_FRACTION * payoff_range)
  except runner.OverBudget as error:
    logging.warning("%s skipped on %s: %s", name, mgame.game, error)
    return {"skipped": str(error)}
  reached = settled_below(checkpoints, threshold)
  final = checkpoints[-1]["nash_conv"]
  # A solver with a fixed-point residual (`converged`) has the last word.
  solver_converged = getattr(algorithm, "converged", None)
  if final <= CONVERGED_FRACTION * payoff_range:
    stopped = ("nash_conv_below_stop" if solver_converged is False else
               "converged")
  else:
    stopped = ("time_budget" if seconds >= settings.time_budget else
               "max_iterations")
  result = {
      "setup_seconds": setup_seconds, "iterations": iteration,
      "seconds": seconds, "stopped": stopped,
      "final_nash_conv": final,
      "residual": getattr(algorithm, "residual", None),
      "solver_converged": solver_converged,
      "time_to_threshold": None if reached is None else reached["seconds"],
      "iterations_to_threshold": (None if reached is None else
                                  reached["iteration"]),
      "checkpoints": checkpoints,
      "openspiel_nash_conv": None, "openspiel_abs_difference": None,
      "openspiel_seconds": None,
  }
  if openspiel_game is not None:
    start = time.perf_counter()
    theirs = float(exploitability.nash_conv(openspiel_game,
                                            algorithm.policy()))
    result.update(openspiel_nash_conv=theirs,
                  openspiel_abs_difference=abs(theirs - final),
                  openspiel_seconds=time.perf_counter() - start)
  logging.info("%s on %s: %d steps, %.3g s, NashConv %.3g (%s); threshold "
               "at %s s", name, mgame.game, iteration, seconds, final,
               stopped, result["time_to_threshold"])
  return result


def _ran(run):
  return "skipped" not in run and "failed" not in run


def speedup(algorithm_results):
  """The fastest OpenSpiel baseline's time to threshold over vpg_annealed's.

  Where no baseline reached the threshold, every baseline would have needed
  more than the time it ran, so the ratio exceeds `ratio_lower_bound`: the
  shortest baseline run over vpg_annealed's time.
  """
  vpg_seconds = algorithm_results.get("vpg_annealed", {}).get(
      "time_to_threshold")
  baselines = {name: run for name, run in algorithm_results.items()
               if is_baseline(name) and _ran(run)}
  reached = {name: run["time_to_threshold"] for name, run in baselines.items()
             if run["time_to_threshold"] is not None}
  fastest = min(reached, key=reached.get) if reached else None
  result = {"vpg_annealed_seconds": vpg_seconds, "fastest_baseline": fastest,
            "fastest_baseline_seconds": reached.get(fastest),
            "ratio": None, "ratio_lower_bound": None}
  if vpg_seconds is None or not baselines:
    return result
  if fastest is not None:
    result["ratio"] = reached[fastest] / vpg_seconds
  else:
    result["ratio_lower_bound"] = min(
        run["seconds"] for run in baselines.values()) / vpg_seconds
  return result


def settled_below(checkpoints, threshold):
  """The first checkpoint from which every later checkpoint's NashConv is
  <= `threshold`, or None (the last one is above it). Not the first one
  below it: annealed VPG on Battle of the Sexes, for one, passes within
  1e-3 of an equilibrium and leaves it again (NashConv 1e-4, then 4) on its
  way, and a time taken at such a dip would depend on where the
  checkpoints fall."""
  reached = None
  for checkpoint in reversed(checkpoints):
    if checkpoint["nash_conv"] > threshold:
      break
    reached = checkpoint
  return reached


def run_game(game_string, algorithms, settings):
  """Runs `algorithms` (MARKOV names of the registry) on one game, each
  isolated: a failure is recorded as {"failed": reason}.

  Returns:
    A JSON-able dict.

  Raises:
    ValueError: the game is not one the comparison can use.
  """
  start = time.perf_counter()
  mgame = load_markov_game(game_string)
  reward_scale = stage_reward_range(mgame)
  payoff_range = reward_scale * mgame.horizon
  histories = core.turn_based_tree_size(mgame, outcomes=True)
  openspiel_game = (pyspiel.convert_to_turn_based(mgame.game)
                    if histories <= settings.openspiel_check_max_histories
                    else None)
  if openspiel_game is None:
    logging.info("%s: ~%d histories; final NashConv not checked with "
                 "OpenSpiel", game_string, histories)
  runs = {name: runner.isolated(name, game_string, run_algorithm, name, mgame,
                                settings, reward_scale, openspiel_game)
          for name in algorithms}
  # Every algorithm starts from the uniform profile (eval/adapters.py).
  start_nash_conv = vsg_spiel.nash_conv(mgame,
                                        vsg_spiel.uniform_profile(mgame))
  return {
      "game": game_string, "slug": slug(game_string),
      "num_players": mgame.num_players, "num_states": mgame.num_states,
      "num_actions": list(mgame.num_actions), "horizon": mgame.horizon,
      "stage_reward_range": reward_scale, "payoff_range": payoff_range,
      "threshold_nash_conv": settings.threshold * payoff_range,
      "estimated_histories": histories,
      "start_nash_conv": start_nash_conv,
      "openspiel_checked": openspiel_game is not None,
      "settings": dataclasses.asdict(settings),
      "algorithms": runs, "speedup": speedup(runs),
      "wall_seconds": time.perf_counter() - start,
  }


def run_cell(game_string, algorithm, settings):
  """One algorithm on one game with `ComparisonSettings(**settings)`: a
  cell."""
  return run_game(game_string, [algorithm], ComparisonSettings(**settings))


def merge_games(partial_results):
  """One result per game from results of the same game run with different
  algorithms (e.g. one cell per algorithm); the speed-up is recomputed over
  all of them."""
  merged = {}
  for partial in partial_results:
    game = merged.setdefault(partial["game"], dict(partial, algorithms={},
                                                   wall_seconds=0.0))
    game["algorithms"].update(partial["algorithms"])
    game["wall_seconds"] += partial["wall_seconds"]
  for game in merged.values():
    game["speedup"] = speedup(game["algorithms"])
  return list(merged.values())


# ----------------------------------------------------------------------------
# Outputs.


def figure_path(out_dir, game_result):
  return os.path.join(out_dir, "figures",
                      f"nash_conv_{game_result['slug']}.png")


def _plot_floor(game_result):
  """The NashConv drawn for 0: PLOT_FLOOR_FRACTION x the payoff range, or,
  where the range is 0 or not finite, 1e-12 (a log axis needs a positive
  floor)."""
  payoff_range = game_result["payoff_range"]
  if np.isfinite(payoff_range) and payoff_range > 0:
    return PLOT_FLOOR_FRACTION * payoff_range
  return 1e-12


def plot_game(game_result, path):
  """NashConv against iterations and against seconds, one line per run, on
  log axes. A checkpoint whose NashConv is not finite (a diverged run) is
  left out, as is a run with none left; with no point at all, or a
  threshold that is not positive and finite, the figure says so instead of
  failing (matplotlib cannot place an empty or infinite series on a log
  axis)."""
  plt = common.pyplot()
  figure, (by_iterations, by_seconds) = plt.subplots(
      1, 2, figsize=(13, 4.8), sharey=True)
  floor = _plot_floor(game_result)
  plotted = 0
  for index, (name, run) in enumerate(game_result["algorithms"].items()):
    if not _ran(run):
      continue
    points = [point for point in run["checkpoints"]
              if np.isfinite(point["nash_conv"])]
    if not points:
      continue
    plotted += 1
    nash_convs = np.maximum([point["nash_conv"] for point in points], floor)
    style = {"color": f"C{index}", "label": name, "marker": "o",
             "markersize": 3, "linewidth": 1.5,
             "linestyle": "--" if is_baseline(name) else "-"}
    by_iterations.plot([point["iteration"] for point in points], nash_convs,
                       **style)
    by_seconds.plot([point["seconds"] for point in points], nash_convs,
                    **style)
  threshold = game_result["threshold_nash_conv"]
  threshold_label = (f"threshold: {game_result['settings']['threshold']:g} x "
                     f"payoff range")
  for axes in (by_iterations, by_seconds):
    if np.isfinite(threshold) and threshold > 0:
      axes.axhline(threshold, color="black", linestyle=":", linewidth=1,
                   label=threshold_label)
    if plotted:
      axes.set_xscale("log")
      axes.set_yscale("log")
    axes.grid(True, which="major", alpha=0.3)
  if plotted:
    by_iterations.set_ylim(bottom=floor / 2)
  else:
    by_iterations.text(0.5, 0.5, "no finite NashConv to plot",
                       transform=by_iterations.transAxes, ha="center")
  by_iterations.set_xlabel("iterations (steps; RL: batches of episodes)")
  by_seconds.set_xlabel("wall-clock seconds of the algorithm's own work")
  by_iterations.set_ylabel(
      f"NashConv (reward units; 0 drawn at {PLOT_FLOOR_FRACTION:g} x range)")
  if by_seconds.get_legend_handles_labels()[0]:
    by_seconds.legend(loc="center left", bbox_to_anchor=(1.02, 0.5),
                      fontsize="small")
  figure.suptitle(f"NashConv of the played policy: {game_result['game']} "
                  f"(payoff range {game_result['payoff_range']:.4g})")
  common.save_figure(figure, path)


def _seconds_cell(seconds):
  return "not reached within budget" if seconds is None else f"{seconds:.3g}"


def game_markdown(game_result, out_dir):
  """The report section of one game."""
  settings = game_result["settings"]
  lines = [
      f"## `{game_result['game']}`", "",
      f"{game_result['num_players']} players, Markov states: "
      f"{game_result['num_states']}, actions "
      f"{tuple(game_result['num_actions'])}, horizon "
      f"{game_result['horizon']}; payoff range "
      f"{game_result['payoff_range']:.4g} (stage-reward range "
      f"{game_result['stage_reward_range']:.4g} x horizon). Threshold: "
      f"NashConv <= {settings['threshold']:g} x payoff range = "
      f"{game_result['threshold_nash_conv']:.4g}. Budget per algorithm: "
      f"{settings['time_budget']:g} s or {settings['max_iterations']} steps "
      f"({runner.BUDGET_RULE[0].lower()}{runner.BUDGET_RULE[1:-1]}; "
      f"{runner.TREE_RULE[:-1]}).",
      "",
  ]
  runs = game_result["algorithms"]
  vpg_seconds = game_result["speedup"]["vpg_annealed_seconds"]
  rows, skipped = [], []
  for name, run in runs.items():
    if not _ran(run):
      kind = "skipped" if "skipped" in run else "failed"
      skipped.append(f"- {name}: {kind}, {run[kind]}.")
      continue
    reached = run["time_to_threshold"]
    relative = ("" if reached is None or not vpg_seconds else
                f"{reached / vpg_seconds:.3g}")
    checked = run["openspiel_nash_conv"] is not None
    rows.append([
        name, f"{run['setup_seconds']:.3g}", run["iterations"],
        f"{run['seconds']:.3g}", run["stopped"],
        f"{run['final_nash_conv']:.3g}", _seconds_cell(reached),
        "" if reached is None else run["iterations_to_threshold"], relative,
        f"{run['openspiel_nash_conv']:.6g}" if checked else "not checked",
        f"{run['openspiel_abs_difference']:.1e}" if checked else ""])
  lines.append(common.markdown_table(
      ["algorithm", "setup (s)", "steps", "seconds", "stopped",
       "final NashConv",
       "time to threshold (s)", "steps to threshold",
       "time / vpg_annealed's", "OpenSpiel NashConv", "abs. diff"], rows))
  lines += ["", start_sentence(game_result),
            speedup_sentence(game_result["speedup"]), ""]
  if skipped:
    lines += skipped + [""]
  if not game_result["openspiel_checked"]:
    lines += [f"OpenSpiel's exploitability.nash_conv not run: the turn-based "
              f"tree has ~{game_result['estimated_histories']} histories "
              f"(limit {settings['openspiel_check_max_histories']}).", ""]
  relative_figure = os.path.relpath(figure_path(out_dir, game_result),
                                    out_dir)
  lines += [f"![NashConv on {game_result['game']}]({relative_figure})", ""]
  return "\n".join(lines)


def start_sentence(game_result):
  """Where every algorithm starts, in words: the uniform profile, and whether
  it is already within the threshold (then no time here measures speed)."""
  start = game_result["start_nash_conv"]
  sentence = (f"Start: every algorithm from the uniform profile (NashConv "
              f"{start:.4g}).")
  if start <= game_result["threshold_nash_conv"]:
    sentence += (" It is already within the threshold on this game, so "
                 "every time to threshold here is that of a first step, not "
                 "of a solve.")
  return sentence


def speedup_sentence(speedup_result):
  """The headline ratio of a game, in words."""
  vpg_seconds = speedup_result["vpg_annealed_seconds"]
  if vpg_seconds is None:
    return ("Speed-up: none, vpg_annealed did not reach the threshold within "
            "its budget (or did not run).")
  head = f"Speed-up: vpg_annealed reached the threshold in {vpg_seconds:.3g} s"
  if speedup_result["ratio"] is not None:
    return (f"{head}; the fastest OpenSpiel baseline, "
            f"{speedup_result['fastest_baseline']}, in "
            f"{speedup_result['fastest_baseline_seconds']:.3g} s: ratio "
            f"**{speedup_result['ratio']:.3g}**.")
  if speedup_result["ratio_lower_bound"] is not None:
    return (f"{head}; no OpenSpiel baseline reached it within budget: ratio "
            f"**> {speedup_result['ratio_lower_bound']:.3g}** (the shortest "
            "baseline run over vpg_annealed's time).")
  return f"{head}; no OpenSpiel baseline ran."


def markdown_report(results, out_dir):
  """report.md: one section per game."""
  first = results[0]["settings"]
  baselines = [name for name in registry.names(registry.MARKOV)
               if is_baseline(name)]
  lines = [
      "# NashConv: VPG versus OpenSpiel baselines", "",
      "- Time: each algorithm's own work, cumulative: its construction "
      "(\"setup\"; for VPG the enumeration of the game's tensors) and its "
      "steps, not the NashConv evaluations. A step is an iteration, or for "
      f"the RL baselines a batch of {first['rl_episodes']} episodes. " +
      runner.BUDGET_RULE + " " + runner.TREE_RULE,
      "- NashConv: exact (`vsg_spiel.nash_conv`), at checkpoints spaced "
      f"logarithmically in steps and in seconds ({first['checkpoints']} "
      f"marks each, over 1..max steps and "
      f"{runner.FIRST_CHECKPOINT_FRACTION:g} x "
      "budget..budget); a time to threshold is that of the first checkpoint "
      "from which NashConv stays below it to the run's end (a dip below it "
      "and back up does not count). A run stops at its budget or once "
      f"NashConv <= {CONVERGED_FRACTION:g} x payoff range.",
      "- VPG temperatures, in units of the stage-reward range: vpg_annealed "
      f"(marginal form) from {first['vpg_initial_temperature']:g} to "
      f"{first['vpg_final_temperature']:g} by x"
      f"{first['vpg_temperature_decay']:g} per iteration, then, where its "
      "residual says it has not converged, along the principal branch of "
      "logit QRE (eval/adapters.py); vpg (conditional "
      f"form) and vpg_sampled ({first['vpg_sampled_opponent_model']} "
      f"opponent model) at {first['vpg_temperature']:g}; step "
      f"{first['vpg_step']:g}.",
      "- OpenSpiel baselines: cfr and xfp play their average policies; the "
      "RL agents, with OpenSpiel's default hyperparameters, their "
      "evaluation policies (greedy for qlearning and boltzmann_qlearning).",
      "- Ratio of a game: the time of the fastest OpenSpiel baseline "
      f"({', '.join(baselines)}) to reach the threshold over "
      "vpg_annealed's.",
      "",
      f"Total wall time: {sum(r['wall_seconds'] for r in results):.1f} s.",
      "",
  ]
  lines += [game_markdown(game_result, out_dir) for game_result in results]
  return "\n".join(lines)


def machine_info():
  return {
      "python": platform.python_version(),
      "open_spiel": importlib.metadata.version("open_spiel"),
      "numpy": np.__version__,
      "cpu": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
  }


def write_outputs(results, out_dir):
  """Writes results.json, report.md and the figures of `run_game` results."""
  for game_result in results:
    plot_game(game_result, figure_path(out_dir, game_result))
  common.atomic_write_json(os.path.join(out_dir, "results.json"),
                           {"games": results, "machine": machine_info()})
  common.atomic_write_text(os.path.join(out_dir, "report.md"),
                           markdown_report(results, out_dir))


