"""NashConv: vsg_spiel's Markov-game core versus OpenSpiel, in one run.

    python benchmarks/nash_conv.py

For each game and one random policy, times in the same run
  * warm: `vsg_spiel.nash_conv(game, policy)` with the game's Markov tensors
    already built and the policy one of ours (what a solver evaluating its
    iterates pays);
  * cold: a fresh `MarkovGame.from_openspiel(game)` plus `nash_conv` of the
    same policy as an OpenSpiel `TabularPolicy` (queried state by state and
    checked to be Markov): what a one-off evaluation of any policy pays;
  * OpenSpiel: `exploitability.nash_conv(pyspiel.convert_to_turn_based(game),
    policy)`;
checks that the three values agree to 1e-9 and prints OpenSpiel's time over
ours as ratios.
"""

import time

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

import vsg_spiel

REPEATS = 5


def best_time(function, repeats):
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = function()
    times.append(time.perf_counter() - start)
  return min(times), result


def benchmark(label, game):
  mgame = vsg_spiel.markov_game(game)
  profile = vsg_spiel.random_profile(mgame, np.random.default_rng(0))
  policy = vsg_spiel.to_policy(mgame, profile)
  turn_based = pyspiel.convert_to_turn_based(game)
  tabular = policy_lib.tabular_policy_from_callable(
      turn_based, policy.action_probabilities)
  warm_seconds, warm = best_time(lambda: vsg_spiel.nash_conv(mgame, policy),
                                 REPEATS)
  cold_seconds, cold = best_time(lambda: vsg_spiel.nash_conv(
      vsg_spiel.MarkovGame.from_openspiel(game), tabular), 1)
  theirs_seconds, theirs = best_time(
      lambda: exploitability.nash_conv(turn_based, policy), 1)
  print(f"{label:52s} states={mgame.num_states:5d}  "
        f"openspiel={theirs_seconds * 1e3:9.1f} ms  "
        f"warm={warm_seconds * 1e3:7.2f} ms ({theirs_seconds / warm_seconds:7.1f}x)  "
        f"cold={cold_seconds * 1e3:8.1f} ms ({theirs_seconds / cold_seconds:6.1f}x)  "
        f"max|diff|={max(abs(warm - theirs), abs(cold - theirs)):.1e}")
  assert abs(warm - theirs) < 1e-9 and abs(cold - theirs) < 1e-9


def main():
  payoffs = np.random.default_rng(41).uniform(-1, 1, size=(2, 41, 41))
  benchmark("41x41 general-sum stage game",
            pyspiel.create_matrix_game(payoffs[0].tolist(),
                                       payoffs[1].tolist()))
  benchmark("python_vsg_differential(num_actions=41,horizon=1)",
            pyspiel.load_game("python_vsg_differential(horizon=1)"))
  benchmark("oshi_zumo(coins=5,size=2,horizon=5)",
            pyspiel.load_game("oshi_zumo(coins=5,size=2,horizon=5)"))
  benchmark("python_iterated_prisoners_dilemma(max_game_length=5)",
            pyspiel.load_game(
                "python_iterated_prisoners_dilemma(max_game_length=5)"))


if __name__ == "__main__":
  main()
