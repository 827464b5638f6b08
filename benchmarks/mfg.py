"""Mean-field games: the tabular engine versus OpenSpiel, in one run per game.

    PYTHONPATH=. python benchmarks/mfg.py [game ...]

For each game (default: the Python and C++ MFGs with default parameters),
in the same run:
  * iteration: `vsg_spiel.algorithms.mirror_descent.MirrorDescent
    .iteration()` versus
    OpenSpiel's `MirrorDescent.iteration()` (same lr, same iterates), and
    `MFBayesianQLearning.iteration()` for reference;
  * exploitability: the engine's NashConv of a policy (its flow, the rewards
    under it, best response and policy value) versus OpenSpiel's
    `NashConv(game, policy).nash_conv()` of the same policy, OpenSpiel
    querying it through a `TablePolicy` (a dict lookup per state);
checks that the numbers are equal (iterates' policies and NashConv to 1e-8)
and prints OpenSpiel's time over ours as ratios. Times are medians; the
engine's one-off construction (enumeration and probes) is shown separately.
"""

import statistics
import sys
import time

import numpy as np
import pyspiel
from open_spiel.python.mfg.algorithms import mirror_descent
from open_spiel.python.mfg.algorithms import nash_conv

from vsg_spiel import mfg_engine
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import mirror_descent as vsg_mirror_descent

PYTHON_GAMES = ("python_mfg_crowd_modelling", "python_mfg_predator_prey",
                "python_mfg_periodic_aversion", "python_mfg_crowd_avoidance")
CPP_GAMES = ("mfg_crowd_modelling", "mfg_crowd_modelling_2d", "mfg_garnet",
             "mfg_dynamic_routing")
# Not in the speed goals: the routing games (their structure depends
# on the distribution, so the engine re-explores them for every policy) and
# the linear-quadratic game.
OTHER_GAMES = ("python_mfg_dynamic_routing", "mean_field_lin_quad")
GOALS = ({name: 30.0 for name in PYTHON_GAMES} |
         {name: 3.0 for name in CPP_GAMES})
LEARNING_RATE = 0.1
# OpenSpiel's iterations are timed until this many seconds have passed (at
# least two); ours at least ten times and for a quarter of that.
THEIR_SECONDS = 12.0


def timed_calls(function, min_calls, min_seconds):
  """Median seconds of repeated calls of `function`."""
  times = []
  start = time.perf_counter()
  while len(times) < min_calls or time.perf_counter() - start < min_seconds:
    tick = time.perf_counter()
    function()
    times.append(time.perf_counter() - tick)
  return statistics.median(times), len(times)


def max_policy_difference(engine, rows, ours, theirs):
  """Largest difference of two OpenSpiel policies at the given rows."""
  return float(np.max(np.abs(engine.policy_function(ours)(rows) -
                             engine.policy_function(theirs)(rows))))


def benchmark(name):
  """Times one game; returns a result row."""
  game = pyspiel.load_game(name)
  start = time.perf_counter()
  engine = mfg_engine.MeanFieldEngine(game)
  build_seconds = time.perf_counter() - start

  ours_md = vsg_mirror_descent.MirrorDescent(game, lr=LEARNING_RATE,
                                             engine=engine)
  theirs_md = mirror_descent.MirrorDescent(game, lr=LEARNING_RATE)
  theirs_seconds, theirs_calls = timed_calls(theirs_md.iteration, 2,
                                             THEIR_SECONDS)
  for _ in range(theirs_calls):
    ours_md.iteration()
  policy_difference = max_policy_difference(
      engine, ours_md.mean_field.structure.reachable_rows,
      ours_md.get_policy(), theirs_md.get_policy())
  ours_seconds, _ = timed_calls(ours_md.iteration, 10, THEIR_SECONDS / 4)

  bql = mf_bayesian_q.MFBayesianQLearning(game, engine=engine)
  bql_seconds, _ = timed_calls(bql.iteration, 10, THEIR_SECONDS / 4)

  policy = engine.table_policy(ours_md.mean_field.policy)
  policy_rows = engine.policy_function(policy)
  ours_nash_conv_seconds, _ = timed_calls(
      lambda: engine.nash_conv(engine.mean_field(policy_rows)), 10,
      THEIR_SECONDS / 4)
  theirs_nash_conv_seconds, _ = timed_calls(
      lambda: nash_conv.NashConv(game, policy).nash_conv(), 2,
      THEIR_SECONDS / 2)
  nash_conv_difference = abs(
      engine.nash_conv(engine.mean_field(policy_rows)) -
      nash_conv.NashConv(game, policy).nash_conv())
  return {
      "game": name,
      "nodes": engine.num_nodes,
      "build_s": build_seconds,
      "md_ours_ms": 1e3 * ours_seconds,
      "md_theirs_ms": 1e3 * theirs_seconds,
      "md_ratio": theirs_seconds / ours_seconds,
      "bql_ms": 1e3 * bql_seconds,
      "nc_ours_ms": 1e3 * ours_nash_conv_seconds,
      "nc_theirs_ms": 1e3 * theirs_nash_conv_seconds,
      "nc_ratio": theirs_nash_conv_seconds / ours_nash_conv_seconds,
      "policy_diff": policy_difference,
      "nash_conv_diff": nash_conv_difference,
      "goal": GOALS.get(name),
  }


def main(names):
  print(f"{'game':30s} {'nodes':>6s} {'build':>7s} | {'MD ours':>9s} "
        f"{'MD OpenSpiel':>12s} {'ratio':>7s} {'MF-BQL':>8s} | "
        f"{'NC ours':>8s} {'NC OpenSpiel':>12s} {'ratio':>7s} | "
        f"{'goal':>5s} {'max|diff|':>9s}")
  failures = []
  for name in names:
    row = benchmark(name)
    goal = row["goal"]
    met = goal is None or min(row["md_ratio"], row["nc_ratio"]) >= goal
    print(f"{name:30s} {row['nodes']:6d} {row['build_s']:6.2f}s | "
          f"{row['md_ours_ms']:7.2f}ms {row['md_theirs_ms']:10.1f}ms "
          f"{row['md_ratio']:6.1f}x {row['bql_ms']:6.2f}ms | "
          f"{row['nc_ours_ms']:6.2f}ms {row['nc_theirs_ms']:10.1f}ms "
          f"{row['nc_ratio']:6.1f}x | "
          f"{'-' if goal is None else f'{goal:.0f}x':>4s}{'' if met else '!'} "
          f"{max(row['policy_diff'], row['nash_conv_diff']):9.1e}",
          flush=True)
    if max(row["policy_diff"], row["nash_conv_diff"]) > 1e-8:
      failures.append(f"{name}: numbers differ")
  if failures:
    raise SystemExit("; ".join(failures))


if __name__ == "__main__":
  main(sys.argv[1:] or PYTHON_GAMES + CPP_GAMES + OTHER_GAMES)
