r"""NashConv of VPG and of OpenSpiel's baselines against iterations and seconds.

  python -m vsg_spiel.eval.compare_nash --out=compare_nash_out

runs every algorithm of `--algorithms` (the registry's MARKOV family,
eval/adapters.py) on every game of `--games` and records the exact NashConv
of the policy each plays at checkpoints spaced logarithmically in iterations
and seconds (eval/comparison.py says how). Each (game, algorithm) is a cell,
stored in `--out` as it finishes, so a rerun with the same `--out` resumes;
an algorithm that fails is recorded with its reason, the others complete, and
the process then exits with status 1.

Outputs in `--out`: results.json, report.md and one figure per game,
figures/nash_conv_<game>.png.
"""

import dataclasses
import os
import time

from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import comparison
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib


@dataclasses.dataclass(frozen=True)
class CompareNashFlags(comparison.Comparison):
  """The binary's flags: a comparison and where it goes."""
  out: str = settings_lib.output("compare_nash_out")


def cells(flags):
  """One cell per game and algorithm."""
  run = comparison.run_settings(flags)
  return [cells_lib.Cell("nash", (game, algorithm),
                         "vsg_spiel.eval.comparison:run_cell",
                         dict(game_string=game, algorithm=algorithm,
                              settings=run))
          for game in flags.games for algorithm in dict.fromkeys(
              flags.algorithms)]


def main(flags):
  start = time.perf_counter()
  work = cells(flags)
  runner.compile_solvers()
  outcome = cells_lib.run_cells(work, cells_lib.CellStore(flags.out))
  results = comparison.merge_games(
      outcome.results[cell.section, cell.key] for cell in work
      if (cell.section, cell.key) in outcome.results)
  if results:
    comparison.write_outputs(results, flags.out)
  print(f"wrote {os.path.join(flags.out, 'report.md')} in "
        f"{time.perf_counter() - start:.1f} s")
  return cells_lib.exit_status(runner.outcome_failures(outcome))


if __name__ == "__main__":
  settings_lib.run(CompareNashFlags, main)
