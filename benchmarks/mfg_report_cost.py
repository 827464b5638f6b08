"""Where the report's mean-field cells spend their CPU, one game per run.

    PYTHONPATH=. python benchmarks/mfg_report_cost.py [game ...]

For each game (default: the two largest Python MFGs of the default report,
python_mfg_predator_prey and python_mfg_crowd_avoidance), in one process, CPU
seconds (`time.process_time`) of what a cell of `vsg_spiel.eval.run_mfg`
does, outside and inside its budget:
  * the engine's construction (once per game and worker process);
  * per registry algorithm: its constructor and first step (the two that
    `runner.INTERRUPT_FACTOR` x the budget guards), one exploitability
    evaluation by the engine (reading the solver's policy once per state
    string), and OpenSpiel's `NashConv` of the first iterate, walking the
    solver's own policy versus its table (`run_mfg.openspiel_nash_conv`),
    with the ratio and the values' difference;
  * MF-BQL's seconds per iteration (what the temperature sweep repeats 400
    times).
On a shared machine CPU times are inflated by the load; the ratio is within
one run.
"""

import sys
import time

import numpy as np
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel.eval import registry
from vsg_spiel.eval import run_mfg

DEFAULT_GAMES = ("python_mfg_predator_prey", "python_mfg_crowd_avoidance")
SWEEP_ITERATIONS = 10


def _cpu(function, *arguments):
  """(function(*arguments), its CPU seconds)."""
  start = time.process_time()
  value = function(*arguments)
  return value, time.process_time() - start


def _openspiel_nash_conv(game, policy):
  return nash_conv.NashConv(game, policy).nash_conv()


def measure(game_name):
  """Prints the CPU of each part of the game's cells."""
  settings = run_mfg.MeanFieldSettings(time_budget=5.0)
  (game, engine, _), build = _cpu(run_mfg.game_and_engine, game_name)
  print(f"{game_name}: engine {build:.2f} s ({engine.num_nodes} states)")
  rows = np.arange(engine.num_rows)
  for name in run_mfg.ALGORITHMS:
    entry = registry.get(name, registry.MEAN_FIELD)
    algorithm, constructor = _cpu(entry.make, game, engine, settings)
    _, first_step = _cpu(algorithm.step)
    _, evaluation = _cpu(algorithm.nash_conv)
    policy = algorithm.policy()
    theirs, walk_policy = _cpu(_openspiel_nash_conv, game, policy)
    table = engine.policy_function(policy)(rows)
    ours, walk_table = _cpu(_openspiel_nash_conv, game,
                            engine.table_policy(table, fallback=policy))
    line = (f"  {name}: constructor {constructor:.2f} s, first step "
            f"{first_step:.2f} s, evaluation {evaluation:.2f} s, OpenSpiel "
            f"NashConv of the policy {walk_policy:.2f} s, of its table "
            f"{walk_table:.2f} s ({walk_policy / walk_table:.2f}x, |diff| "
            f"{abs(theirs - ours):.1e})")
    if not entry.baseline:
      start = time.process_time()
      for _ in range(SWEEP_ITERATIONS):
        algorithm.step()
      steps = time.process_time() - start
      line += f", {steps / SWEEP_ITERATIONS * 1e3:.1f} ms per iteration"
    print(line, flush=True)


def main(argv):
  for game_name in argv[1:] or DEFAULT_GAMES:
    measure(game_name)


if __name__ == "__main__":
  main(sys.argv)
