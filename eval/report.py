r"""The exploitability report: `python -m vsg_spiel.eval.report --out=DIR`.

Runs the default suite and writes DIR/report.md, DIR/results.json and
DIR/figures/*.png:

  1. epsilon: Theorem 4.2 measured (ELBO gap, true gains and NashConv by
     OpenSpiel's tools versus the bound), Prop. 5.5 and Theorem 5.8;
  2. nash: NashConv against iterations and wall time, VPG versus OpenSpiel's
     baselines;
  3. mai: Figure 2a/2b, MAI versus MADDPG, MASQL and independent DDPG;
  4. mfg: MF-BQL versus OpenSpiel's mean-field solvers;
  5. equilibria: correlated (public signal) and zero-sum results;
  6. the environment and the wall time of each section.

The work is split into cells (section, game, algorithm, seed) that run in
worker processes (--workers) or on Ray (--backend=ray), are stored as they
finish, and are reused by a rerun with the same --out unless their
configuration changed (see eval/cells.py). --quick runs a smoke version in
about a minute, --full the paper-scale settings; the default takes about ten
minutes on two cores.
"""

import importlib.metadata
import os
import platform
import time

from absl import app
from absl import flags
from absl import logging
import pyspiel

import vsg_spiel
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import report_sections

_OUT = flags.DEFINE_string("out", "vsg_report", "Output directory.")
_SECTIONS = flags.DEFINE_list("sections", list(report_sections.SECTIONS),
                              "Sections to run.")
_GAMES = common.define_game_list(
    "games", None, "Games for every selected section (default: each "
    "section's own list).")
_SEEDS = flags.DEFINE_integer("seeds", None, "Seeds per seeded cell.")
_ITERATIONS = flags.DEFINE_integer("iterations", None,
                                   "Iterations of the iterative solvers.")
_QUICK = flags.DEFINE_bool("quick", False, "Smoke-sized suite (~1 minute).")
_FULL = flags.DEFINE_bool("full", False, "Paper-scale suite (slow).")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1,
                                "Worker processes.")
_BACKEND = flags.DEFINE_enum("backend", "process", list(cells_lib.BACKENDS),
                             "Where cells run.")
_RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", None, "Ray cluster address (default: a local instance).")


def validate_flags():
  """Fails before any work, naming the valid values."""
  unknown = [s for s in _SECTIONS.value if s not in report_sections.SECTIONS]
  if unknown:
    raise app.UsageError(f"unknown sections {unknown}; valid: "
                         f"{list(report_sections.SECTIONS)}")
  if _QUICK.value and _FULL.value:
    raise app.UsageError("--quick and --full exclude each other")
  if _SEEDS.value is not None and _SEEDS.value < 1:
    raise app.UsageError(f"--seeds must be >= 1; got {_SEEDS.value}")
  if _ITERATIONS.value is not None and _ITERATIONS.value < 1:
    raise app.UsageError(f"--iterations must be >= 1; got "
                         f"{_ITERATIONS.value}")
  if _WORKERS.value < 1:
    raise app.UsageError(f"--workers must be >= 1; got {_WORKERS.value}")
  if _BACKEND.value == "ray":
    try:
      import ray  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as error:
      raise app.UsageError("--backend=ray needs Ray: pip install "
                           "'vsg_spiel[ray]'") from error
  if _GAMES.value:
    for section in _SECTIONS.value:
      try:
        report_sections.SECTIONS[section].validate_games(_GAMES.value)
      except (ValueError, pyspiel.SpielError) as error:
        raise app.UsageError(f"--games for section {section}: {error}") from (
            error)


def section_settings(section):
  scale = "quick" if _QUICK.value else "full" if _FULL.value else "default"
  settings = dict(report_sections.SECTIONS[section].settings[scale])
  overrides = {"games": _GAMES.value, "seeds": _SEEDS.value,
               "iterations": _ITERATIONS.value}
  settings.update({key: value for key, value in overrides.items()
                   if value and key in settings})
  return settings


def environment(section_seconds, wall_seconds):
  versions = {name: importlib.metadata.version(name)
              for name in ("open_spiel", "tensorflow", "numpy")}
  return {
      "vsg_spiel": vsg_spiel.__version__, **versions,
      "python": platform.python_version(),
      "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
      "workers": _WORKERS.value, "backend": _BACKEND.value,
      "suite": ("quick" if _QUICK.value else "full" if _FULL.value
                else "default"),
      "section_wall_seconds": section_seconds,
      "wall_seconds": round(wall_seconds, 1),
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
  lines = ["## 6. Environment", ""]
  lines += [f"- {key}: {value}" for key, value in info.items()
            if key != "section_wall_seconds"]
  lines += ["", common.markdown_table(
      ["section", "wall time (s) this run", "compute in cells (s)"],
      [[name, round(seconds["wall"], 1), round(seconds["compute"], 1)]
       for name, seconds in info["section_wall_seconds"].items()]), ""]
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  validate_flags()
  out = _OUT.value
  figures = os.path.join(out, "figures")
  store = cells_lib.CellStore(out)
  start = time.perf_counter()
  parts, results, seconds = ["# vsg_spiel exploitability report", ""], {}, {}
  for name in _SECTIONS.value:
    section = report_sections.SECTIONS[name]
    number = list(report_sections.SECTIONS).index(name) + 1
    settings = section_settings(name)
    section_start = time.perf_counter()
    logging.info("section %s: %s", name, settings)
    section_cells = section.cells(settings)
    cell_results = cells_lib.run_cells(section_cells, store, _WORKERS.value,
                                       _BACKEND.value, _RAY_ADDRESS.value)
    summary, data = section.summarize(
        [cell_results[cell.section, cell.name] for cell in section_cells],
        settings, figures)
    parts += [f"## {number}. {section.title}", "", summary, ""]
    results[name] = {"settings": settings, "results": data}
    seconds[name] = {"wall": time.perf_counter() - section_start,
                     "compute": sum(store.seconds(cell)
                                    for cell in section_cells)}
  info = environment(seconds, time.perf_counter() - start)
  parts.append(environment_markdown(info))
  results["environment"] = info
  common.atomic_write_json(os.path.join(out, "results.json"), results)
  common.atomic_write_text(os.path.join(out, "report.md"), "\n".join(parts))
  print(f"wrote {os.path.join(out, 'report.md')} in "
        f"{info['wall_seconds']} s")


def run_main():
  """Console-script entry point (`vsg-report`)."""
  app.run(main)


if __name__ == "__main__":
  run_main()
