"""MF-BQL beside OpenSpiel's mean-field solvers: exploitability per iteration
and per second.

    python -m vsg_spiel.eval.run_mfg --games=python_mfg_crowd_modelling \\
        --iterations=100 --time_budget=30 --out=run_mfg_out

For each game, runs mean-field Bayesian Q-learning (vsg_spiel's Algorithm 4,
on the tabular engine) and OpenSpiel's own MirrorDescent, FictitiousPlay,
BoltzmannPolicyIteration and MunchausenMirrorDescent, each until it has done
--iterations iterations or spent --time_budget seconds in them. An
algorithm's clock counts its constructor and its iteration() calls only
(for MF-BQL the constructor includes building the engine). Exploitability
(NashConv) is measured by the engine at checkpoints (equal to OpenSpiel's
NashConv to 1e-8) and by OpenSpiel's `NashConv` at every final iterate.

Writes, under --out:
  results.json              every curve and number;
  run_mfg.md                per game, exploitability after the same number of
                            iterations and after the same wall time;
  figures/mfg_<game>.png    exploitability against iterations and seconds.
"""

import dataclasses
import os
import re
import time
from typing import Dict, List, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pyspiel
from open_spiel.python.mfg.algorithms import boltzmann_policy_iteration
from open_spiel.python.mfg.algorithms import fictitious_play
from open_spiel.python.mfg.algorithms import mirror_descent
from open_spiel.python.mfg.algorithms import munchausen_mirror_descent
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel import mfg_engine
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.eval import common

FLAGS = flags.FLAGS

ALGORITHMS = ("mf_bql", "mirror_descent", "fictitious_play",
              "boltzmann_policy_iteration", "munchausen_mirror_descent")
LABELS = {
    "mf_bql": "MF-BQL (ours)",
    "mirror_descent": "MirrorDescent",
    "fictitious_play": "FictitiousPlay",
    "boltzmann_policy_iteration": "BoltzmannPolicyIteration",
    "munchausen_mirror_descent": "MunchausenMirrorDescent",
}
DEFAULT_GAMES = ("python_mfg_crowd_modelling", "python_mfg_predator_prey",
                 "python_mfg_periodic_aversion", "python_mfg_crowd_avoidance",
                 "mfg_crowd_modelling", "mfg_garnet", "mfg_crowd_modelling_2d")
# Exploitability values below this are drawn at this value on log axes.
PLOT_FLOOR = 1e-12

@dataclasses.dataclass(frozen=True)
class Settings:
  """What one run compares, and for how long."""
  iterations: int = 100
  time_budget: float = 30.0
  temperature: float = 1.0
  learning_rate: float = 0.01
  algorithms: Sequence[str] = ALGORITHMS


def validate(game_names: Sequence[str], settings: Settings):
  """Raises ValueError for anything that would fail later."""
  if not game_names:
    raise ValueError("--games is empty")
  unknown = [name for name in settings.algorithms if name not in ALGORITHMS]
  if unknown or not settings.algorithms:
    raise ValueError(f"unknown algorithms {unknown}; valid algorithms: "
                     f"{', '.join(ALGORITHMS)}")
  if not settings.time_budget > 0:
    raise ValueError(f"--time_budget must be > 0, got {settings.time_budget}")
  if not settings.temperature > 0:
    raise ValueError(f"--temperature must be > 0, got {settings.temperature}")
  if not settings.learning_rate > 0:
    raise ValueError(
        f"--learning_rate must be > 0, got {settings.learning_rate}")
  for name in game_names:
    try:
      game = pyspiel.load_game(name)
    except (pyspiel.SpielError, ValueError, RuntimeError) as error:
      raise ValueError(
          f"cannot load game {name!r} ({error}); mean-field games: "
          f"{', '.join(mfg_engine.mean_field_game_names())}") from error
    mfg_engine.check_mean_field_game(game)


def checkpoints(iterations: int) -> List[int]:
  """Iterations at which baselines are evaluated: about 4 per decade."""
  points = {int(round(10 ** exponent))
            for exponent in np.arange(0.0, np.log10(iterations) + 1e-9, 0.25)}
  return sorted(point for point in points | {iterations} if point <= iterations)


def _make_solver(name, game, engine, settings):
  if name == "mf_bql":
    return mf_bayesian_q.MFBayesianQLearning(
        game, temperature=settings.temperature, engine=engine)
  if name == "mirror_descent":
    return mirror_descent.MirrorDescent(game, lr=settings.learning_rate)
  if name == "fictitious_play":
    return fictitious_play.FictitiousPlay(game)
  if name == "boltzmann_policy_iteration":
    return boltzmann_policy_iteration.BoltzmannPolicyIteration(
        game, lr=settings.learning_rate)
  return munchausen_mirror_descent.MunchausenMirrorDescent(
      game, lr=settings.learning_rate)


def _engine_exploitability(engine, solver):
  if isinstance(solver, mf_bayesian_q.MFBayesianQLearning):
    return solver.nash_conv()
  policy = engine.policy_function(solver.get_policy())
  return engine.nash_conv(engine.mean_field(policy))


def run_algorithm(name: str, game, engine: mfg_engine.MeanFieldEngine,
                  engine_seconds: float, settings: Settings,
                  progress: str) -> Dict:
  """Runs one solver; exploitability curve by iteration and seconds."""
  start = time.perf_counter()
  solver = _make_solver(name, game, engine, settings)
  seconds = time.perf_counter() - start + (engine_seconds if name == "mf_bql"
                                           else 0.0)
  curve = [{"iteration": 0, "seconds": seconds,
            "exploitability": _engine_exploitability(engine, solver)}]
  evaluate_at = set(checkpoints(settings.iterations))
  iteration, last_log = 0, time.perf_counter()
  while iteration < settings.iterations and seconds < settings.time_budget:
    start = time.perf_counter()
    solver.iteration()
    seconds += time.perf_counter() - start
    iteration += 1
    out_of_time = seconds >= settings.time_budget
    if iteration in evaluate_at or out_of_time:
      curve.append({"iteration": iteration, "seconds": seconds,
                    "exploitability": _engine_exploitability(engine, solver)})
    if time.perf_counter() - last_log > 10:
      last_log = time.perf_counter()
      left = min(settings.time_budget - seconds, seconds / iteration *
                 (settings.iterations - iteration))
      logging.info("%s %s: iteration %d/%d, %.1fs spent, about %.0fs left",
                   progress, name, iteration, settings.iterations, seconds,
                   max(left, 0.0))
  start = time.perf_counter()
  openspiel_value = nash_conv.NashConv(game, solver.get_policy()).nash_conv()
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


def _value_at_iteration(run, iteration):
  return next(point["exploitability"] for point in reversed(run["curve"])
              if point["iteration"] <= iteration)


def _value_at_seconds(run, seconds):
  earlier = [point for point in run["curve"] if point["seconds"] <= seconds]
  return earlier[-1]["exploitability"] if earlier else None


def run_game(game_name: str, settings: Settings, progress: str = "") -> Dict:
  """Runs every algorithm of `settings` on one game.

  Returns:
    A JSON-able dict: the game, its engine (size, build seconds, reward
    refresh path), each algorithm's run (or its error) and the two
    comparisons: exploitability after the same number of iterations (the
    most at which every algorithm was evaluated) and after the same wall time
    (the shortest run; an algorithm that had not finished its constructor
    by then has no value).
  """
  game = pyspiel.load_game(game_name)
  start = time.perf_counter()
  engine = mfg_engine.MeanFieldEngine(game)
  engine_seconds = time.perf_counter() - start
  runs, errors = {}, {}
  for index, name in enumerate(settings.algorithms):
    label = f"{progress} [{index + 1}/{len(settings.algorithms)}]"
    logging.info("%s %s on %s", label, name, game_name)
    try:
      runs[name] = run_algorithm(name, game, engine, engine_seconds, settings,
                                 label)
    except Exception as error:  # pylint: disable=broad-except
      # An OpenSpiel baseline may not support a game (FictitiousPlay's
      # tabular policy misses states of the routing games, for instance).
      logging.warning("%s %s failed on %s: %r", label, name, game_name, error)
      errors[name] = repr(error)
      continue
    run = runs[name]
    logging.info("%s %s: %d iterations in %.2fs, NashConv %.6g "
                 "(OpenSpiel %.6g)", label, name, run["iterations"],
                 run["seconds"], run["nash_conv"], run["openspiel_nash_conv"])
  return compare({
      "game": game_name,
      "nodes": engine.num_nodes,
      "engine_seconds": engine_seconds,
      "flow_dependent": engine.flow_dependent,
      "shared_registration": engine.shared_registration,
      "runs": runs,
      "errors": errors,
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
  """One algorithm on one game with `Settings(**settings)`: a report cell."""
  return run_game(game_name, Settings(**settings, algorithms=(algorithm,)))


def merge_games(partial_results):
  """One result per game from single-algorithm results (report cells)."""
  merged = {}
  for partial in partial_results:
    game = merged.setdefault(partial["game"], dict(partial, runs={},
                                                   errors={}))
    game["runs"].update(partial["runs"])
    game["errors"].update(partial["errors"])
  return [compare(game) for game in merged.values()]


def temperature_sweep(game_name, temperatures, iterations):
  """MF-BQL's exploitability after `iterations` at each temperature (one
  engine for all)."""
  game = pyspiel.load_game(game_name)
  engine = mfg_engine.MeanFieldEngine(game)
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
    style = {"marker": "o", "markersize": 3, "label": LABELS[name],
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
           "the final iterate). Seconds count constructors and iteration() "
           "calls only; MF-BQL's include building the engine.", "",
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
        rows.append([LABELS[name], run["iterations"], run["seconds"],
                     same_iterations["exploitability"][name],
                     "-" if at_seconds is None else at_seconds,
                     run["nash_conv"], run["openspiel_nash_conv"],
                     f"{run['parity_error']:.1e}"])
      lines += [common.markdown_table(headers, rows), ""]
    for name, error in result["errors"].items():
      lines.append(f"- {LABELS[name]} failed: `{error}`")
    if result["errors"]:
      lines.append("")
    lines += [f"![{result['game']}](figures/{figure_name(result['game'])})",
              ""]
  return "\n".join(lines)


def figure_name(game_name: str) -> str:
  safe_name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", game_name).strip("_")
  return f"mfg_{safe_name}.png"


def write_outputs(results: List[Dict], out_dir: str,
                  settings: Settings = Settings()):
  """results.json, run_mfg.md and one figure per game, written atomically."""
  settings_json = dataclasses.asdict(settings)
  settings_json["algorithms"] = list(settings.algorithms)
  for result in results:
    common.save_figure(plot_game(result), os.path.join(
        out_dir, "figures", figure_name(result["game"])))
  common.atomic_write_json(os.path.join(out_dir, "results.json"),
                           {"settings": settings_json, "games": results})
  common.atomic_write_text(os.path.join(out_dir, "run_mfg.md"),
                           markdown(results, settings_json))


def define_flags():
  """The binary's flags (defined only when it runs as a program, so that
  the report can import its functions)."""
  common.define_game_list(
      "games", list(DEFAULT_GAMES),
      "Comma-separated mean-field games, with parameters if wanted, e.g. "
      "'mfg_crowd_modelling(size=5,horizon=4),python_mfg_predator_prey'.")
  flags.DEFINE_list("algorithms", list(ALGORITHMS),
                    f"Subset of: {', '.join(ALGORITHMS)}.")
  flags.DEFINE_integer("iterations", 100,
                       "Iterations per algorithm and game (at most).",
                       lower_bound=1)
  flags.DEFINE_float(
      "time_budget", 30.0,
      "Seconds per algorithm and game (constructor plus iterations).")
  flags.DEFINE_float("temperature", 1.0,
                     "MF-BQL temperature alpha > 0 (the paper's is 1).")
  flags.DEFINE_float(
      "learning_rate", 0.01,
      "lr of MirrorDescent, BoltzmannPolicyIteration and "
      "MunchausenMirrorDescent (OpenSpiel's default); FictitiousPlay uses "
      "its default 1/(k+1).")
  flags.DEFINE_string("out", "run_mfg_out", "Output directory.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  settings = Settings(
      iterations=FLAGS.iterations, time_budget=FLAGS.time_budget,
      temperature=FLAGS.temperature, learning_rate=FLAGS.learning_rate,
      algorithms=tuple(FLAGS.algorithms))
  game_names = FLAGS.games
  try:
    validate(game_names, settings)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  results, start = [], time.perf_counter()
  for index, game_name in enumerate(game_names):
    results.append(run_game(game_name, settings,
                            f"game {index + 1}/{len(game_names)}"))
    write_outputs(results, FLAGS.out, settings)
    elapsed = time.perf_counter() - start
    logging.info("%d/%d games done in %.0fs, about %.0fs left", index + 1,
                 len(game_names), elapsed,
                 elapsed / (index + 1) * (len(game_names) - index - 1))
  logging.info("wrote %s", os.path.abspath(FLAGS.out))


if __name__ == "__main__":
  define_flags()
  app.run(main)
