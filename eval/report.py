r"""The exploitability report: `python -m vsg_spiel.eval.report --out=DIR`.

This first version checks the NashConv of the Markov-game core against
OpenSpiel's `exploitability.nash_conv` on the turn-based conversion of each
game, for the uniform profile and a seeded random profile, and times both.
It writes DIR/report.md and DIR/results.json (atomically). The algorithm
sections join it as their solvers land.
"""

import importlib.metadata
import os
import platform
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pyspiel
from open_spiel.python.algorithms import exploitability

import vsg_spiel
from vsg_spiel.eval import common

DEFAULT_GAMES = (
    "matrix_rps",
    "matrix_pd",
    "matrix_bos",
    "matching_pennies_3p",
    "python_iterated_prisoners_dilemma(max_game_length=3)",
    "oshi_zumo(coins=4,size=1,horizon=3)",
)

_OUT = flags.DEFINE_string("out", "vsg_report", "Output directory.")
_GAMES = flags.DEFINE_list("games", list(DEFAULT_GAMES),
                           "OpenSpiel game strings to evaluate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random profiles.")


def nash_conv_rows(game_string, rng):
  """Our NashConv and OpenSpiel's for the uniform and a random profile."""
  game = pyspiel.load_game(game_string)
  start = time.perf_counter()
  mgame = vsg_spiel.MarkovGame.from_openspiel(game)
  enumerate_seconds = time.perf_counter() - start
  turn_based = pyspiel.convert_to_turn_based(game)
  rows = []
  for profile_name, profile in (
      ("uniform", vsg_spiel.uniform_profile(mgame)),
      ("random", vsg_spiel.random_profile(mgame, rng))):
    policy = vsg_spiel.to_policy(mgame, profile)
    start = time.perf_counter()
    ours = vsg_spiel.nash_conv(mgame, policy)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = exploitability.nash_conv(turn_based, policy)
    theirs_seconds = time.perf_counter() - start
    rows.append({
        "game": game_string, "states": mgame.num_states,
        "profile": profile_name, "nash_conv": ours,
        "openspiel_nash_conv": float(theirs),
        "abs_difference": abs(ours - theirs),
        "enumerate_seconds": enumerate_seconds,
        "seconds": ours_seconds, "openspiel_seconds": theirs_seconds,
    })
    logging.info("%s %s: NashConv %.6g (OpenSpiel %.6g)", game_string,
                 profile_name, ours, theirs)
  return rows


def markdown(rows, environment):
  lines = [
      "# vsg_spiel exploitability report", "",
      "## NashConv of the Markov-game core versus OpenSpiel", "",
      "| game | states | profile | NashConv | OpenSpiel | abs. diff | "
      "ours (s) | OpenSpiel (s) |",
      "|---|---:|---|---:|---:|---:|---:|---:|",
  ]
  for row in rows:
    lines.append(
        f"| `{row['game']}` | {row['states']} | {row['profile']} | "
        f"{row['nash_conv']:.6f} | {row['openspiel_nash_conv']:.6f} | "
        f"{row['abs_difference']:.1e} | {row['seconds']:.4f} | "
        f"{row['openspiel_seconds']:.4f} |")
  lines += ["", "## Environment", ""]
  lines += [f"- {key}: {value}" for key, value in environment.items()]
  return "\n".join(lines) + "\n"


def environment_info(wall_seconds):
  return {
      "vsg_spiel": vsg_spiel.__version__,
      "open_spiel": importlib.metadata.version("open_spiel"),
      "numpy": np.__version__,
      "python": platform.python_version(),
      "cpu": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
      "wall_seconds": round(wall_seconds, 3),
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for game_string in _GAMES.value:
    try:
      vsg_spiel.markov_game(game_string)
    except (ValueError, pyspiel.SpielError) as error:
      raise app.UsageError(f"--games: {game_string}: {error}") from error
  start = time.perf_counter()
  rng = np.random.default_rng(_SEED.value)
  rows = [row for game_string in _GAMES.value
          for row in nash_conv_rows(game_string, rng)]
  environment = environment_info(time.perf_counter() - start)
  common.atomic_write_json(os.path.join(_OUT.value, "results.json"),
                           {"nash_conv": rows, "environment": environment})
  common.atomic_write_text(os.path.join(_OUT.value, "report.md"),
                    markdown(rows, environment))
  print(f"wrote {os.path.join(_OUT.value, 'report.md')}")


def run_main():
  """Console-script entry point (`vsg-report`)."""
  app.run(main)


if __name__ == "__main__":
  run_main()
