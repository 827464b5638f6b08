"""Logit QRE and its Nash endpoint: vsg_spiel's path follower versus Gambit.

    python benchmarks/qre.py [--catalog_only] [--lam=2]

For each game of `pygambit.catalog` for which Gambit has mixed strategies
(its strategic form rebuilt with `Game.from_arrays`: on a tree Gambit's
strategic-form solvers evaluate payoffs through the tree, hundreds of times
slower), and for random 2-player n x n (n = 4..64) and 3-player n x n x n
(n = 3..12) games with integer payoffs in [0, 100), times in the same run
  * to lambda: `pygambit.qre.logit_solve_lambda(game, lam=[lam])` and
    `homotopy.solve(game, temperature=1/lam')`, lam' the lambda Gambit
    landed on (within ~1e-9 of lam);
  * to Nash: `pygambit.nash.logit_solve(game, maxregret=1e-8)` and
    `homotopy.solve(game, maxregret=1e-8 x range)` (Gambit's maxregret is
    relative to the payoff range, ours in payoff units);
checks that the profiles agree (1e-8 at lambda, 1e-6 at the endpoint) and
prints Gambit's time over ours (> 1: ours is faster), our accepted steps and
Newton iterations, Gambit's accepted steps (the points of its
`logit_solve_branch` up to lambda and up to the Nash endpoint, an untimed
extra call), and the medians. Our solver gets the game's `MarkovGame`
(built once, as Gambit gets its `Game`); `homotopy.solve` builds its
equations (the payoff tables over pure profiles) at the first solve of a
`MarkovGame` and keeps them, so the warm-up run pays for them and the timed
runs do not (as Gambit's `Game` holds its strategic form). Times are the
best of `REPEATS` runs after a warm-up run; the machine may be shared, so
only the ratios are meaningful.

The warm-up run excludes a one-time cost: the first `homotopy.solve` of a
normal-form game in a process compiles the trace (numba, `homotopy_kernel`)
or, once compiled code is cached on disk, loads it. Both are measured first,
in fresh processes (compiled into an empty cache, then loaded from it), and
printed with the steady-state time of the same call.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import timeit

import numpy as np
import pygambit
import pyspiel

import vsg_spiel
from vsg_spiel.algorithms import homotopy

REPEATS = 3
NASH_TOLERANCE = 1e-8


# Run in a fresh process: import time, first and second solve of a 2 x 2
# game (seconds).
_FIRST_CALL = """
import time
start = time.perf_counter()
import pyspiel
from vsg_spiel.algorithms import homotopy
imported = time.perf_counter()
game = pyspiel.load_game("matrix_bos")
homotopy.solve(game, temperature=0.5)
first = time.perf_counter()
homotopy.solve(game, temperature=0.5)
print(imported - start, first - imported, time.perf_counter() - first)
"""


def first_call_costs():
  """Prints the one-time cost of the compiled trace: the first solve in a
  process with an empty compilation cache, then with the cache filled."""
  with tempfile.TemporaryDirectory() as cache:
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
    for label in ("compiling (empty cache)", "loading the cached code"):
      output = subprocess.run(
          [sys.executable, "-c", _FIRST_CALL], env=environment, check=True,
          capture_output=True, text=True).stdout.split()
      imported, first, second = map(float, output)
      print(f"first solve in a new process, {label}: {first:.2f} s "
            f"(import of homotopy {imported:.2f} s; the next solve "
            f"{second * 1e3:.2f} ms)", flush=True)


def best_time(function):
  """(best of REPEATS timed calls after one warm-up call, its result)."""
  result = function()
  return min(timeit.repeat(function, number=1, repeat=REPEATS)), result


def spiel_game(arrays):
  if len(arrays) == 2:
    return pyspiel.create_matrix_game(arrays[0], arrays[1])
  return pyspiel.create_tensor_game(arrays)


def difference(ours, game, mixed):
  """Largest probability difference (OpenSpiel pads every player's actions
  to the most any player has)."""
  return max(np.abs(table[0, :len(player.strategies)] - np.array(
      [float(mixed[strategy]) for strategy in player.strategies])).max()
             for table, player in zip(ours, game.players))


def compare(label, game, arrays, lam):
  """One row: times and agreement at lambda and at the Nash endpoint."""
  mgame = vsg_spiel.markov_game(spiel_game(arrays))
  spread = float(mgame.rewards.max() - mgame.rewards.min()) or 1.0
  theirs_lam_seconds, theirs_lam = best_time(
      lambda: pygambit.qre.logit_solve_lambda(game, lam=[lam])[0])
  landed = theirs_lam.lam
  ours_lam_seconds, ours_lam = best_time(
      lambda: homotopy.solve(mgame, temperature=1.0 / landed))
  theirs_nash_seconds, theirs_nash = best_time(
      lambda: pygambit.nash.logit_solve(game, maxregret=NASH_TOLERANCE))
  ours_nash_seconds, ours_nash = best_time(
      lambda: homotopy.solve(mgame, maxregret=NASH_TOLERANCE * spread))
  branch = pygambit.qre.logit_solve_branch(game, maxregret=NASH_TOLERANCE)
  their_lam_steps = sum(1 for point in branch[1:] if point.lam < landed) + 1
  row = {
      "label": label,
      "profiles": arrays[0].size,
      "lam_ratio": theirs_lam_seconds / ours_lam_seconds,
      "nash_ratio": theirs_nash_seconds / ours_nash_seconds,
      "lam_difference": difference(ours_lam.profile, game,
                                   theirs_lam.profile),
      "nash_difference": difference(ours_nash.profile, game,
                                    theirs_nash.equilibria[0]),
      "converged": ours_lam.converged and ours_nash.converged,
      "regret": ours_nash.max_regret / spread,
      "step_ratios": (their_lam_steps / ours_lam.steps,
                      (len(branch) - 1) / max(1, ours_nash.steps)),
  }
  print(f"{label:46s} {arrays[0].size:5d}  "
        f"lam: gambit {theirs_lam_seconds * 1e3:8.2f} ms ours "
        f"{ours_lam_seconds * 1e3:8.2f} ms ({row['lam_ratio']:6.2f}x, "
        f"{ours_lam.steps:3d} steps, {ours_lam.newton_iterations:4d} Newton; "
        f"gambit {their_lam_steps:4d} steps) "
        f"|diff| {row['lam_difference']:.1e}  "
        f"nash: gambit {theirs_nash_seconds * 1e3:8.2f} ms ours "
        f"{ours_nash_seconds * 1e3:8.2f} ms ({row['nash_ratio']:6.2f}x, "
        f"{ours_nash.steps:3d} steps; gambit {len(branch) - 1:5d} steps) "
        f"|diff| {row['nash_difference']:.1e} "
        f"regret/range {row['regret']:.1e}", flush=True)
  return row


def catalog_rows(lam):
  rows = []
  for slug in pygambit.catalog.games()["Game"]:
    game = pygambit.catalog.load(slug)
    try:
      game.mixed_strategy_profile()
    except pygambit.error.UndefinedOperationError as error:
      print(f"{slug:46s} skipped: {error}")
      continue
    tables = game.to_arrays()
    arrays = [np.asarray(t, dtype=np.float64) for t in tables]
    rows.append(compare(slug, pygambit.Game.from_arrays(*tables), arrays,
                        lam))
  return rows


def random_rows(lam):
  rng = np.random.default_rng(0)
  rows = []
  shapes = ([(n, n) for n in (4, 8, 16, 32, 64)] +
            [(n, n, n) for n in (3, 4, 6, 8, 12)])
  for shape in shapes:
    arrays = [rng.integers(0, 100, size=shape).astype(np.float64)
              for _ in shape]
    game = pygambit.Game.from_arrays(*[a.astype(int) for a in arrays])
    rows.append(compare("random " + "x".join(map(str, shape)), game, arrays,
                        lam))
  return rows


def summarise(name, rows):
  if not rows:
    return
  print(f"\n{name}: {len(rows)} games; lam |diff| max "
        f"{max(r['lam_difference'] for r in rows):.1e}, nash |diff| max "
        f"{max(r['nash_difference'] for r in rows):.1e}, all converged: "
        f"{all(r['converged'] for r in rows)}")
  print("  Gambit's steps / ours, median: to lambda "
        f"{statistics.median(r['step_ratios'][0] for r in rows):.1f}, to Nash "
        f"{statistics.median(r['step_ratios'][1] for r in rows):.1f}")
  for key in ("lam_ratio", "nash_ratio"):
    ratios = [r[key] for r in rows]
    large = [r[key] for r in rows if r["profiles"] >= 64]
    print(f"  {key}: median {statistics.median(ratios):.2f}x, min "
          f"{min(ratios):.2f}x, max {max(ratios):.2f}x"
          + (f"; >= 64 pure profiles: median {statistics.median(large):.2f}x"
             f", min {min(large):.2f}x ({len(large)} games)" if large else ""))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lam", type=float, default=2.0)
  parser.add_argument("--catalog_only", action="store_true")
  args = parser.parse_args()
  first_call_costs()
  catalog = catalog_rows(args.lam)
  random = [] if args.catalog_only else random_rows(args.lam)
  summarise("catalog", catalog)
  summarise("random", random)
  summarise("all", catalog + random)


if __name__ == "__main__":
  main()
