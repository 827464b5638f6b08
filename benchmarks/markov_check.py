"""Cost of the Markov check of observation keys, in one run.

    python benchmarks/markov_check.py

`MarkovGame.from_openspiel` expands a second history of each observation key
one step and compares it with the first (see its docstring). This times the
build with the check (one other history per key, as shipped) and without it
(none), alternating in one process, best of 7, and prints the ratio.
"""

import time

import pyspiel

from vsg_spiel import core

GAMES = ("oshi_zumo(coins=5,size=2,horizon=5)",
         "python_vsg_differential(num_actions=41,horizon=1)",
         "goofspiel(num_cards=4,imp_info=False)", "nim")
# The number of other histories a finite game checks per key.
CHECKED = "_HISTORIES_CHECKED_FINITE"


def build_seconds(game, histories_checked):
  shipped = getattr(core, CHECKED)
  setattr(core, CHECKED, histories_checked)
  try:
    start = time.perf_counter()
    mgame = core.MarkovGame.from_openspiel(game)
    return time.perf_counter() - start, mgame.num_states
  finally:
    setattr(core, CHECKED, shipped)


def main():
  print(f"{'game':>52} {'states':>7} {'without (s)':>11} {'with (s)':>9} "
        f"{'with/without':>12}")
  for spec in GAMES:
    game = pyspiel.load_game(spec)
    times = {0: [], 1: []}
    for _ in range(7):
      for checked in times:
        seconds, num_states = build_seconds(game, checked)
        times[checked].append(seconds)
    without, with_check = min(times[0]), min(times[1])
    print(f"{spec:>52} {num_states:>7} {without:>11.3f} {with_check:>9.3f} "
          f"{with_check / without:>12.2f}")


if __name__ == "__main__":
  main()
