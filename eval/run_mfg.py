"""MF-BQL beside OpenSpiel's mean-field solvers: exploitability per iteration
and per second.

    python -m vsg_spiel.eval.run_mfg --games=python_mfg_crowd_modelling \\
        --iterations=100 --time_budget=30 --out=run_mfg_out

For each game, runs mean-field Bayesian Q-learning (vsg_spiel's Algorithm 4,
on the tabular engine) and OpenSpiel's own MirrorDescent, FictitiousPlay,
BoltzmannPolicyIteration and MunchausenMirrorDescent, each until it has done
--iterations iterations or spent --time_budget seconds in them. An
algorithm's clock counts its constructor and its iteration() calls only
(for MF-BQL the constructor includes building the engine); a constructor or
first iteration still running after 3 x the budget
(`runner.INTERRUPT_FACTOR`) is interrupted and the algorithm recorded as
skipped on that game. Exploitability
(NashConv) is measured by the engine at checkpoints (equal to OpenSpiel's
NashConv to 1e-8) and by OpenSpiel's `NashConv` at every final iterate (of
its policy table, read once per state string: `openspiel_nash_conv`).

Writes, under --out:
  results.json              every curve and number;
  run_mfg.md                per game, exploitability after the same number of
                            iterations and after the same wall time;
  figures/mfg_<game>.png    exploitability against iterations and seconds.
"""

import dataclasses
import functools
import os
import re
import time

from absl import logging
import numpy as np
import pyspiel
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel import mfg_engine
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.eval import adapters
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import registry
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib

setting = settings_lib.setting

ALGORITHMS = registry.names(registry.MEAN_FIELD, default_for=adapters.RUN_MFG)
DEFAULT_GAMES = ("python_mfg_crowd_modelling", "python_mfg_predator_prey",
                 "python_mfg_periodic_aversion", "python_mfg_crowd_avoidance",
                 "mfg_crowd_modelling", "mfg_garnet", "mfg_crowd_modelling_2d")
# Exploitability values below this are drawn at this value on log axes.
PLOT_FLOOR = 1e-12


def check_games(game_names):
  """ValueError unless every game loads and is a mean-field game the engine
  can hold."""
  for name in game_names:
    try:
      game = pyspiel.load_game(name)
    except (pyspiel.SpielError, ValueError, RuntimeError) as error:
      raise ValueError(
          f"cannot load game {name!r} ({error}); mean-field games: "
          f"{', '.join(mfg_engine.mean_field_game_names())}") from error
    mfg_engine.check_mean_field_game(game)


def mean_field_names():
  return registry.names(registry.MEAN_FIELD)


@dataclasses.dataclass(frozen=True)
class MeanFieldSettings:
  """How each algorithm runs on each game (what a cell's result depends on)."""
  iterations: int = setting(100, "Iterations per algorithm and game (at "
                            "most).", at_least=1)
  time_budget: float = setting(
      30.0, "Seconds per algorithm and game (constructor plus iterations).",
      above=0)
  temperature: float = setting(1.0, "MF-BQL temperature alpha (the paper's "
                               "is 1).", above=0)
  learning_rate: float = setting(
      0.01, "lr of MirrorDescent, BoltzmannPolicyIteration and "
      "MunchausenMirrorDescent (OpenSpiel's default); FictitiousPlay uses "
      "its default 1/(k+1).", above=0)


@dataclasses.dataclass(frozen=True)
class MeanFieldComparison(MeanFieldSettings):
  """Which algorithms run on which mean-field games, and how."""
  games: tuple[str, ...] = setting(
      DEFAULT_GAMES, "Mean-field games, with parameters if wanted, e.g. "
      "'mfg_crowd_modelling(size=5,horizon=4),python_mfg_predator_prey'.",
      games=True, check=check_games)
  algorithms: tuple[str, ...] = setting(
      ALGORITHMS, "Algorithms of the registry (eval/adapters.py) to run.",
      choices=mean_field_names)


def run_settings(settings):
  """The `MeanFieldSettings` part of `settings` (a cell's config)."""
  return {field.name: getattr(settings, field.name)
          for field in dataclasses.fields(MeanFieldSettings)}


def checkpoints(iterations: int) -> list[int]:
  """Iterations at which baselines are evaluated: about 4 per decade."""
  return runner.DecadeSchedule(iterations).iterations


def run_algorithm(name: str, game, engine: mfg_engine.MeanFieldEngine,
                  engine_seconds: float, settings: MeanFieldSettings) -> dict:
  """Runs one registry algorithm (MEAN_FIELD); exploitability curve by
  iteration and seconds, or {"skipped": reason} (unsupported, or its
  construction or first step was interrupted: see `runner`)."""
  algorithm, setup_seconds = runner.build(
      registry.get(name, registry.MEAN_FIELD), game, engine, settings,
      time_budget=settings.time_budget)
  if algorithm is None:
    return setup_seconds
  if algorithm.counts_engine_build:
    setup_seconds += engine_seconds
  try:
    curve, iteration, seconds = runner.run_timed(
        algorithm, setup_seconds, runner.DecadeSchedule(settings.iterations),
        settings.time_budget, settings.iterations,
        value_name="exploitability", evaluate_start=True)
  except runner.OverBudget as error:
    return {"skipped": str(error)}
  start = time.perf_counter()
  openspiel_value = openspiel_nash_conv(game, engine, algorithm.policy())
  return {
      "algorithm": name,
      "iterations": iteration,
      "seconds": seconds,
      "curve": curve,
      "nash_conv": curve[-1]["exploitability"],
      "openspiel_nash_conv": openspiel_value,
      "openspiel_nash_conv_seconds": time.perf_counter() - start,
      "parity_error": abs(openspiel_value - curve[-1]["exploitability"]),
  }


# OpenSpiel's NashConv of the policies evaluated in this process, by game
# and policy table (see `openspiel_nash_conv`).
_OPENSPIEL_NASH_CONV = {}


def openspiel_nash_conv(game, engine: mfg_engine.MeanFieldEngine,
                        policy) -> float:
  """OpenSpiel's `NashConv(game, table).nash_conv()` of `policy` read as a
  table at every row of the engine, computed once per game and table in a
  process.

  The policy is read once per state string (the registry's solvers'
  policies are functions of the state string, as the engine assumes;
  tests/test_run_mfg.py checks every OpenSpiel solver's policy against its
  table with OpenSpiel's NashConv), and OpenSpiel's walks then read that
  table (`MeanFieldEngine.table_policy`; a string the engine has not met
  goes to the solver's policy) rather than query the solver's policy at
  every state they visit: the policies of MirrorDescent,
  BoltzmannPolicyIteration and MunchausenMirrorDescent (OpenSpiel's
  `ProjectedPolicy`) make a `child()` per action per query, 10-55% of this
  walk's CPU on the larger Python games (benchmarks/mfg_report_cost.py;
  values equal to 1.4e-14). The walk still costs seconds there (2-4 s of
  CPU), outside the budget, and the report's cells of a game can end at
  the same table (every solver starts from the uniform policy, and one that
  does no step within the budget ends there): an equal table reuses the
  value.
  """
  table = engine.policy_function(policy)(np.arange(engine.num_rows))
  key = (str(game), table.shape, table.tobytes())
  if key not in _OPENSPIEL_NASH_CONV:
    _OPENSPIEL_NASH_CONV[key] = nash_conv.NashConv(
        game, engine.table_policy(table, fallback=policy)).nash_conv()
  return _OPENSPIEL_NASH_CONV[key]


def _value_at_iteration(run, iteration):
  return next(point["exploitability"] for point in reversed(run["curve"])
              if point["iteration"] <= iteration)


def _value_at_seconds(run, seconds):
  earlier = [point for point in run["curve"] if point["seconds"] <= seconds]
  return earlier[-1]["exploitability"] if earlier else None


@functools.lru_cache(maxsize=None)
def game_and_engine(game_name: str):
  """(game, its `MeanFieldEngine`, the seconds the engine took to build),
  built once per process: the report's cells of one game (one per
  algorithm, and the temperature sweep, which runs after every game's
  algorithms) share them in a worker. Every game's engine is kept (a few MB
  each for the default games): the engines of the larger Python games take
  seconds to build (2.7 s of CPU for python_mfg_predator_prey; 20-60 s of
  wall time in a report run on a loaded machine), and a cache of the last
  two games rebuilt them for their sweeps. The engine
  holds the game's structure, not an algorithm's state, so sharing leaves
  every result as it was; MF-BQL's time still includes the build, as
  measured when it was built."""
  game = pyspiel.load_game(game_name)
  start = time.perf_counter()
  engine = mfg_engine.MeanFieldEngine(game)
  return game, engine, time.perf_counter() - start


def run_game(game_name: str, algorithms, settings: MeanFieldSettings) -> dict:
  """Runs `algorithms` (MEAN_FIELD names of the registry) on one game, each
  isolated: a failure is recorded in "errors" with its reason, an
  unsupported algorithm in "skipped".

  Returns:
    A JSON-able dict: the game, its engine (size, build seconds, reward
    refresh path), each algorithm's run and the two comparisons of
    `compare`.
  """
  game, engine, engine_seconds = game_and_engine(game_name)
  runs, errors, skipped = {}, {}, {}
  for name in algorithms:
    logging.info("%s on %s", name, game_name)
    run = runner.isolated(name, game_name, run_algorithm, name, game, engine,
                          engine_seconds, settings)
    if "failed" in run:
      errors[name] = run["failed"]
    elif "skipped" in run:
      skipped[name] = run["skipped"]
    else:
      runs[name] = run
      logging.info("%s: %d iterations in %.2fs, NashConv %.6g (OpenSpiel "
                   "%.6g)", name, run["iterations"], run["seconds"],
                   run["nash_conv"], run["openspiel_nash_conv"])
  return compare({
      "game": game_name,
      "nodes": engine.num_nodes,
      "engine_seconds": engine_seconds,
      "flow_dependent": engine.flow_dependent,
      "shared_registration": engine.shared_registration,
      "runs": runs,
      "errors": errors,
      "skipped": skipped,
  })


def compare(result):
  """Adds the two comparisons of a game's runs: exploitability after the same
  number of iterations (the most at which every algorithm was evaluated) and
  after the same wall time (the shortest run; an algorithm that had not
  finished its constructor by then has no value)."""
  runs = result["runs"]
  if runs:
    iterations = max(set.intersection(*(
        {point["iteration"] for point in run["curve"]}
        for run in runs.values())))
    seconds = min(run["seconds"] for run in runs.values())
    result["same_iterations"] = {
        "iterations": iterations,
        "exploitability": {name: _value_at_iteration(run, iterations)
                           for name, run in runs.items()}}
    result["same_seconds"] = {
        "seconds": seconds,
        "exploitability": {name: _value_at_seconds(run, seconds)
                           for name, run in runs.items()}}
  return result


def run_cell(game_name, algorithm, settings):
  """One algorithm on one game with `MeanFieldSettings(**settings)`: a
  cell."""
  return run_game(game_name, [algorithm], MeanFieldSettings(**settings))


def merge_games(partial_results):
  """One result per game from single-algorithm results (report cells)."""
  merged = {}
  for partial in partial_results:
    game = merged.setdefault(partial["game"], dict(partial, runs={},
                                                   errors={}, skipped={}))
    for key in ("runs", "errors", "skipped"):
      game[key].update(partial.get(key, {}))
  return [compare(game) for game in merged.values()]


def temperature_sweep(game_name, temperatures, iterations):
  """MF-BQL's exploitability after `iterations` at each temperature (one
  engine for all)."""
  game, engine, _ = game_and_engine(game_name)
  final = {}
  for temperature in temperatures:
    solver = mf_bayesian_q.MFBayesianQLearning(game, temperature=temperature,
                                               engine=engine)
    for _ in range(iterations):
      solver.iteration()
    final[str(temperature)] = solver.nash_conv()
  return {"game": game_name, "iterations": iterations,
          "exploitability": final}


def plot_game(result):
  """Exploitability against iterations and against seconds, log y."""
  plt = common.pyplot()
  figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for name, run in result["runs"].items():
    iterations = [point["iteration"] for point in run["curve"]]
    seconds = [point["seconds"] for point in run["curve"]]
    values = np.maximum([point["exploitability"] for point in run["curve"]],
                        PLOT_FLOOR)
    style = {"marker": "o", "markersize": 3, "label": label(name),
             "linewidth": 2.2 if name == "mf_bql" else 1.4}
    axes[0].plot(iterations, values, **style)
    axes[1].plot(seconds, values, **style)
  axes[0].set_xlabel("iteration")
  axes[0].set_title("Exploitability vs iterations")
  axes[1].set_xlabel("wall-clock time (s, log scale)")
  axes[1].set_xscale("log")
  axes[1].set_title("Exploitability vs wall-clock time")
  for axis in axes:
    axis.set_yscale("log")
    axis.set_ylabel("exploitability (NashConv)")
    axis.grid(True, which="major", alpha=0.3)
  axes[1].legend(loc="best", fontsize=9)
  figure.suptitle(f"{result['game']}: MF-BQL vs OpenSpiel's MFG solvers")
  figure.tight_layout()
  return figure


def markdown(results, settings_json):
  lines = ["# MF-BQL and OpenSpiel's mean-field solvers", "",
           "Exploitability is OpenSpiel's NashConv (the engine's value at "
           "checkpoints; `OpenSpiel NashConv` is OpenSpiel's own value at "
           "the final iterate, walking its policy read once per state "
           "string). Seconds count constructors and iteration() "
           "calls only; MF-BQL's include building the engine. " +
           runner.BUDGET_RULE, "",
           f"Settings: `{settings_json}`", ""]
  for result in results:
    dependence = ("; its structure depends on the distribution"
                  if result["flow_dependent"] else "")
    lines += [f"## {result['game']}", "",
              f"{result['nodes']} states; engine built in "
              f"{result['engine_seconds']:.2f}s{dependence}.", ""]
    if not result["runs"]:
      lines += ["No algorithm completed.", ""]
    else:
      same_iterations = result["same_iterations"]
      same_seconds = result["same_seconds"]
      count = same_iterations["iterations"]
      headers = ["algorithm", "iterations", "seconds",
                 f"after {count} iteration{'' if count == 1 else 's'}",
                 f"after {same_seconds['seconds']:.3g}s", "final",
                 "OpenSpiel NashConv", "|diff|"]
      rows = []
      for name, run in result["runs"].items():
        at_seconds = same_seconds["exploitability"][name]
        rows.append([label(name), run["iterations"], run["seconds"],
                     same_iterations["exploitability"][name],
                     "-" if at_seconds is None else at_seconds,
                     run["nash_conv"], run["openspiel_nash_conv"],
                     f"{run['parity_error']:.1e}"])
      lines += [common.markdown_table(headers, rows), ""]
    for name, error in result["errors"].items():
      lines.append(f"- {label(name)} failed: `{error}`")
    for name, reason in result.get("skipped", {}).items():
      lines.append(f"- {label(name)} skipped: {reason}")
    if result["errors"] or result.get("skipped"):
      lines.append("")
    lines += [f"![{result['game']}](figures/{figure_name(result['game'])})",
              ""]
  return "\n".join(lines)


def figure_name(game_name: str) -> str:
  safe_name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", game_name).strip("_")
  return f"mfg_{safe_name}.png"


def label(name):
  """An algorithm's name in figures and tables."""
  try:
    return registry.get(name, registry.MEAN_FIELD).title
  except ValueError:
    return name


def write_outputs(results: list[dict], out_dir: str,
                  settings: MeanFieldSettings):
  """results.json, run_mfg.md and one figure per game, written atomically."""
  settings_json = dataclasses.asdict(settings)
  for result in results:
    common.save_figure(plot_game(result), os.path.join(
        out_dir, "figures", figure_name(result["game"])))
  common.atomic_write_json(os.path.join(out_dir, "results.json"),
                           {"settings": settings_json, "games": results})
  common.atomic_write_text(os.path.join(out_dir, "run_mfg.md"),
                           markdown(results, settings_json))


@dataclasses.dataclass(frozen=True)
class RunMfgFlags(MeanFieldComparison):
  out: str = settings_lib.output("run_mfg_out")


def cells(comparison, section="mfg"):
  """One cell per game and algorithm."""
  run = run_settings(comparison)
  return [cells_lib.Cell(section, (game, algorithm),
                         "vsg_spiel.eval.run_mfg:run_cell",
                         dict(game_name=game, algorithm=algorithm,
                              settings=run))
          for game in comparison.games
          for algorithm in dict.fromkeys(comparison.algorithms)]


def main(flags):
  work = cells(flags)
  outcome = cells_lib.run_cells(work, cells_lib.CellStore(flags.out))
  results = merge_games(outcome.results[cell.section, cell.key]
                        for cell in work
                        if (cell.section, cell.key) in outcome.results)
  write_outputs(results, flags.out, flags)
  logging.info("wrote %s", os.path.abspath(flags.out))
  return cells_lib.exit_status(runner.outcome_failures(outcome))


if __name__ == "__main__":
  settings_lib.run(RunMfgFlags, main)
