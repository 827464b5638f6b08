r"""The exploitability report: `python -m vsg_spiel.eval.report --out=DIR`.

Runs the default suite and writes DIR/report.md, DIR/results.json and
DIR/figures/*.png. report.md opens with a summary: one line per claim of
the paper with its verdict and number, computed from the results
(eval/summary.py), each linking to its section:

  1. epsilon: Theorem 4.2 measured (ELBO gap, true gains and NashConv
     versus the bound; true gains by OpenSpiel's nash_conv on small trees,
     else by the exact core), Prop. 5.5 and Theorem 5.8;
  2. nash: NashConv against iterations and wall time, VPG versus OpenSpiel's
     baselines;
  3. mai: Figure 2a/2b, MAI versus MADDPG, MASQL and independent DDPG;
  4. mfg: MF-BQL versus OpenSpiel's mean-field solvers;
  5. equilibria: correlated (public signal) and zero-sum results;
  6. distancing: Theorem 5.8 on the distancing game (Leonardos et al.),
     annealed VPG versus independent NPG;
  7. the environment and where the wall time went.

The work is split into cells (section, game, algorithm, seed) that run in
worker processes (--workers) or on Ray (--backend=ray), are stored as they
finish, and are reused by a rerun with the same --out unless their
configuration changed (see eval/cells.py). --suite=quick runs a smoke
version in about a minute, --suite=full the paper-scale settings; the default
takes about four and a half minutes on two idle cores (README). A cell that
fails is reported with its reason, the others complete, and the process then
exits with status 1. One run at a time holds an output directory.
"""

import dataclasses
import importlib.metadata
import os
import platform
import time


def _process_start():
  """The `perf_counter` time this process started (Linux: from /proc, so
  that the interpreter's start and the imports count), else now."""
  try:
    with open("/proc/self/stat", encoding="ascii") as stream:
      ticks = int(stream.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime", encoding="ascii") as stream:
      uptime = float(stream.read().split()[0])
  except (OSError, ValueError, IndexError):
    return time.perf_counter()
  return time.perf_counter() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


# The report's clock: the environment section counts the interpreter's
# start and the heavy imports below in the start-up time.
_START = _process_start()

# pylint: disable=g-import-not-at-top,wrong-import-position

from absl import logging

import vsg_spiel
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import report_sections
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib
from vsg_spiel.eval import summary as summary_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

setting = settings_lib.setting
SECTIONS = report_sections.SECTIONS
# The flags that override sections' settings (an error for a selected
# section that does not take one).
OVERRIDES = ("games", "num_seeds", "iterations", "tensorboard_dir")


@dataclasses.dataclass(frozen=True)
class ReportFlags:
  """The report's flags."""
  out: str = settings_lib.output("vsg_report")
  sections: tuple[str, ...] = setting(tuple(SECTIONS), "Sections to run.",
                                      choices=tuple(SECTIONS))
  suite: str = setting("default", "quick: a smoke run (~1 minute); default: "
                       "~10 minutes on two cores; full: paper scale.",
                       choices=report_sections.SUITES)
  games: tuple[str, ...] | None = setting(
      None, "Games for every selected section (default: each section's "
      "own list).", games=True)
  num_seeds: int | None = setting(None, "Seeds per seeded cell.",
                                  at_least=1)
  iterations: int | None = setting(
      None, "Iterations of the iterative solvers.", at_least=1)
  workers: int = setting(os.cpu_count() or 1, "Worker processes.",
                         at_least=1)
  backend: str = setting("process", "Where cells run.",
                         choices=cells_lib.BACKENDS)
  ray_address: str | None = setting(
      None, "Ray cluster address (default: a local instance).")
  tensorboard_dir: str | None = setting(
      None, "Figure 2's runs write TensorFlow summaries here.")


def section_settings(flags, name):
  """A section's settings: its suite's, with the report's overrides."""
  section = SECTIONS[name]
  overrides = {field: getattr(flags, flag)
               for flag, field in section.overrides.items()
               if getattr(flags, flag) is not None}
  return dataclasses.replace(section.suites[flags.suite], **overrides)


def validate(flags):
  """ValueError before any work: an override a selected section cannot use,
  a section setting it makes invalid, or Ray missing."""
  for flag in OVERRIDES:
    if getattr(flags, flag) is None:
      continue
    unable = [name for name in flags.sections
              if flag not in SECTIONS[name].overrides]
    if unable:
      able = [name for name in SECTIONS if flag in SECTIONS[name].overrides]
      raise ValueError(f"--{flag}: the sections {unable} do not take it; "
                       f"allowed with --sections from {able}")
  for name in flags.sections:
    settings = section_settings(flags, name)
    try:
      settings_lib.validate(settings, names=[
          SECTIONS[name].overrides[flag] for flag in OVERRIDES
          if getattr(flags, flag) is not None])
    except ValueError as error:
      message = str(error)
      for flag, field in SECTIONS[name].overrides.items():
        if flag != field and message.startswith(f"--{field}:"):
          message = (f"--{flag}:{message[len(field) + 3:]} (the section's "
                     f"{field})")
      raise ValueError(f"{message} (section {name})") from error
  if flags.backend == "ray":
    try:
      import ray  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as error:
      raise ValueError("--backend=ray needs Ray: pip install "
                       "'vsg_spiel[ray]'") from error


def check(flags, remaining):
  """The report's checks across flags (`settings.parse`'s `check`), after
  leaving TensorFlow's C++ INFO and WARNING lines out of the terminal unless
  -v 1 asks for them (`common.quiet_tensorflow`; cells then log at INFO,
  `cells.cell_verbosity`)."""
  common.quiet_tensorflow(remaining)
  validate(flags)


def environment(flags, section_seconds, timeline):
  """The environment and the time breakdown; `timeline` holds the
  `perf_counter` times "pool" (the pool started) and "cells" (its last task
  ended) and the `cells.Outcome`."""
  versions = {name: importlib.metadata.version(name)
              for name in ("open_spiel", "tensorflow", "numpy")}
  outcome, now = timeline["outcome"], time.perf_counter()
  pool_seconds = timeline["cells"] - timeline["pool"]
  return {
      "vsg_spiel": vsg_spiel.__version__, **versions,
      "python": platform.python_version(),
      "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
      "workers": flags.workers, "backend": flags.backend,
      "suite": flags.suite,
      "section_seconds": section_seconds,
      "wall_seconds": round(now - _START, 1),
      "startup_seconds": round(timeline["pool"] - _START, 1),
      "pool_seconds": round(pool_seconds, 1),
      "finish_seconds": round(now - timeline["cells"], 1),
      "compile_seconds": round(sum(seconds for _, seconds, _ in
                                   outcome.prepared.values()), 1),
      "cells_seconds": round(outcome.cell_seconds, 1),
      "idle_worker_seconds": round(
          max(flags.workers * pool_seconds - outcome.busy_seconds, 0.0), 1)
                             if flags.backend == "process" else None,
  }


def _cpu_name():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as stream:
      for line in stream:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment_markdown(info):
  lines = [f"## {len(SECTIONS) + 1}. Environment", ""]
  lines += [f"- {key}: {value}" for key, value in info.items()
            if key != "section_seconds"]
  lines += ["", "Where the wall time went: startup_seconds from the start "
            "(imports, flags) to the pool's start; "
            "pool_seconds while the workers ran the cells (cells_seconds: "
            "the wall time of the cells this run computed, summed over "
            "workers), the numba compilation (compile_seconds, in one worker "
            "while the others run cells) and the sections' summaries (each "
            "in a worker once its section's cells end); idle_worker_seconds: "
            "workers x pool_seconds less the time their tasks took; "
            "finish_seconds writing the report.",
            "", "Every section's cells run in one pool, longest first, so "
            "sections overlap; per section, the compute its cells took "
            "(wall time and the CPU time of their processes, summed over "
            "workers; on a shared machine the CPU time is the cost; stored "
            "cells reused from an earlier run count with their stored time) "
            "and the time to summarise it (wall and CPU, in a worker).",
            "", common.markdown_table(
                ["section", "cells", "compute in cells (s)",
                 "CPU in cells (s)", "summary (s)", "summary CPU (s)"],
                [[name, seconds["cells"], round(seconds["compute"], 1),
                  round(seconds.get("cpu", 0.0), 1),
                  round(seconds["summary"], 1),
                  round(seconds.get("summary_cpu", 0.0), 1)]
                 for name, seconds in info["section_seconds"].items()]), ""]
  return "\n".join(lines)


def failures_markdown(failed):
  """The failures of a section (cells, and runs inside cells), with their
  reasons."""
  if not failed:
    return ""
  return "\n".join(["**Failures** (a rerun with the same --out retries "
                    "the failed cells):", ""] + [
                        f"- `{what}`: {reason}"
                        for what, reason in failed.items()]) + "\n"


# Sections in the order their cells are started when no earlier run stored
# their times: those whose cells take longest first (measured on the default
# suite: Figure 2's cells, one per game and algorithm running both seeds,
# 12-25 s of CPU each on idle cores, the distancing runs 2-11 s, Nash cells
# up to 50 s, mean-field cells up to 6 s, the rest mostly below 5 s),
# so that no long cell starts last and leaves the other workers idle.
# Figure 2's first also because they need no numba kernel: the workers run
# them while one compiles the kernels (`COMPILE`, about 40 s on a fresh
# clone), so that no other worker compiles them again meanwhile.
LONGEST_FIRST = ("mai", "distancing", "nash", "mfg", "equilibria", "epsilon")
# Made once per worker process before its first cell of a section, outside
# the cells' time: Figure 2's cells need TensorFlow started (one thread, its
# start-up lines left out), the others the numba kernels, compiled, or loaded
# from numba's cache.
PREPARE = {"mai": "vsg_spiel.eval.common:start_tensorflow"}
COMPILE = "vsg_spiel.eval.runner:compile_solvers"


def schedule(work, store):
  """The cells of every section ({name: [Cell]}) in one list, in the order
  to start them: `cells.longest_first`, by the CPU times an earlier run
  stored in `store`; cells without one first, longest sections first
  (`LONGEST_FIRST`), each section's cells in its order."""
  return cells_lib.longest_first(
      [cell for name in sorted(work, key=LONGEST_FIRST.index)
       for cell in work[name]], store)


def summary_tasks(flags, settings):
  """`cells.run_cells`'s summaries: per section, its results -> the task
  (`report_sections.summarize`) that writes its figures and returns its
  (markdown, JSON data), run in a worker once the section's cells end."""
  figures = os.path.join(flags.out, "figures")
  def task(name):
    return lambda results: ("vsg_spiel.eval.report_sections:summarize", dict(
        name=name, results=results, settings=settings[name],
        figures=figures))
  return {name: task(name) for name in settings}


def summarize_section(name, settings, work, outcome, store):
  """(markdown, JSON data, {cell: reason} of failures, seconds) of one
  section from the outcome of its cells and summary task; a failure to
  summarise is itself recorded, never raised."""
  failed = {what: reason
            for what, reason in runner.outcome_failures(outcome).items()
            if what.startswith(f"{name}/")}
  result, error, seconds, cpu_seconds = outcome.summaries.get(
      name, (None, "the summary did not run", 0.0, 0.0))
  if error is None:
    summary, data = result
  else:
    failed[f"{name} summary"] = error
    summary, data = "The section could not be summarised.", None
  seconds = {"cells": len(work),
             "compute": sum(store.seconds(cell) for cell in work),
             "cpu": sum(store.seconds(cell, "cpu_seconds") for cell in work),
             "summary": seconds, "summary_cpu": cpu_seconds}
  return (summary + "\n" + failures_markdown(failed),
          {"settings": dataclasses.asdict(settings), "results": data,
           "failed": failed}, failed, seconds)


def main(flags):
  store = cells_lib.CellStore(flags.out)
  # The report keeps the sections' own order (and numbers), whatever the
  # order of --sections.
  selected = [name for name in SECTIONS if name in flags.sections]
  settings = {name: section_settings(flags, name) for name in selected}
  work = {name: SECTIONS[name].cells(settings[name])
          for name in selected}
  for name in selected:
    logging.info("section %s: %d cells, %s", name, len(work[name]),
                 settings[name])
  timeline = {"pool": time.perf_counter()}
  timeline["outcome"] = outcome = cells_lib.run_cells(
      schedule(work, store), store, flags.workers, flags.backend,
      flags.ray_address,
      prepare={name: PREPARE.get(name, COMPILE) for name in selected},
      summaries=summary_tasks(flags, settings))
  timeline["cells"] = time.perf_counter()
  parts, results, seconds, failures = [], {}, {}, {}
  for name in selected:
    number = list(SECTIONS).index(name) + 1
    markdown, results[name], failed, seconds[name] = summarize_section(
        name, settings[name], work[name], outcome, store)
    failures.update(failed)
    parts += [f'<a id="{summary_lib.anchor(name)}"></a>', "",
              f"## {number}. {SECTIONS[name].title}", "", markdown, ""]
  info = environment(flags, seconds, timeline)
  parts.append(environment_markdown(info))
  results["environment"] = info
  parts = ["# vsg_spiel exploitability report", "",
           summary_lib.markdown(results, list(SECTIONS)), ""] + parts
  common.atomic_write_json(os.path.join(flags.out, "results.json"), results)
  common.atomic_write_text(os.path.join(flags.out, "report.md"),
                           "\n".join(parts))
  print(f"wrote {os.path.join(flags.out, 'report.md')} in "
        f"{info['wall_seconds']} s")
  return cells_lib.exit_status(failures)


def run_main():
  """Console-script entry point (`vsg-report`)."""
  settings_lib.run(ReportFlags, main, check)


if __name__ == "__main__":
  run_main()
