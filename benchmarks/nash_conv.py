"""NashConv: vsg_spiel's Markov-game core versus OpenSpiel, in one run.

    python benchmarks/nash_conv.py [--repeats=3]

For each game and each kind of policy a user brings (a `TabularPolicy` of the
turn-based game, CFR's average policy from `pyspiel.CFRSolver`, a plain
callable state -> {action: probability}), times in the same run:
  * OpenSpiel Python: `exploitability.nash_conv(turn_based, policy)`;
  * OpenSpiel C++: `pyspiel.nash_conv(turn_based, tabular)`, the policy as a
    `pyspiel.TabularPolicy` keyed by information state (built before timing);
  * ours, first call: `vsg_spiel.nash_conv(game, policy)` on a game object
    never seen before: enumerating the Markov game, walking the turn-based
    histories once to map them to Markov states, reading the policy;
  * ours, cold: the same call once the game is cached (the mapping kept): the
    cost of evaluating any new policy of a known game;
  * ours, warm: `vsg_spiel.nash_conv(mgame, profile)` with the profile already
    on our tensors (what a solver evaluating its iterates pays);
checks that the values agree to 1e-9 and prints the OpenSpiel times over ours
as ratios. Cold and warm are the best of `--repeats` runs, the others one run.
"on histories" marks a policy that is not Markov (CFR's average policy of
oshi_zumo depends on the history), evaluated exactly on the history-keyed game.
"""

import argparse
import time

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability

import vsg_spiel

CFR_ITERATIONS = 20


def best_time(function, repeats):
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = function()
    times.append(time.perf_counter() - start)
  return min(times), result


def information_state_table(turn_based, action_probabilities):
  """{information state: [(action, probability)]} over the turn-based tree."""
  table = {}
  stack = [turn_based.new_initial_state()]
  while stack:
    state = stack.pop()
    if state.is_terminal():
      continue
    if state.is_chance_node():
      stack.extend(state.child(action) for action, _ in state.chance_outcomes())
      continue
    key = state.information_state_string()
    if key not in table:
      table[key] = list(action_probabilities(state).items())
    stack.extend(state.child(action) for action in state.legal_actions())
  return table


class InformationStatePolicy(policy_lib.Policy):
  """A Python policy answering from a pyspiel policy (by information state),
  for OpenSpiel's Python exploitability."""

  def __init__(self, game, pyspiel_policy):
    super().__init__(game, list(range(game.num_players())))
    self._policy = pyspiel_policy

  def action_probabilities(self, state, player_id=None):
    return dict(self._policy.action_probabilities(state))


class Weighted:
  """A plain callable: weights 1, 2, 3, ... on the legal actions, rotated by
  the number of moves so far (a function of the Markov state)."""

  def __call__(self, state):
    legal = state.legal_actions()
    shift = len(state.history()) - max(state.current_player(), 0)
    weights = [1 + (index + shift) % len(legal) for index in range(len(legal))]
    total = sum(weights)
    return {action: weight / total for action, weight in zip(legal, weights)}


def policies(game, mgame, turn_based):
  """(label, policy for us, Python policy for OpenSpiel, pyspiel policy)."""
  ours = vsg_spiel.to_policy(
      mgame, vsg_spiel.random_profile(mgame, np.random.default_rng(0)))
  tabular = policy_lib.tabular_policy_from_callable(
      turn_based, ours.action_probabilities)
  solver = pyspiel.CFRSolver(turn_based)
  for _ in range(CFR_ITERATIONS):
    solver.evaluate_and_update_policy()
  cfr = solver.tabular_average_policy()
  weighted = Weighted()
  yield ("TabularPolicy", tabular, tabular,
         pyspiel.TabularPolicy(information_state_table(
             turn_based, tabular.action_probabilities)))
  yield (f"CFR average ({CFR_ITERATIONS} it.)", cfr,
         InformationStatePolicy(turn_based, cfr), cfr)
  yield ("callable", weighted,
         policy_lib.tabular_policy_from_callable(turn_based, weighted),
         pyspiel.TabularPolicy(information_state_table(turn_based, weighted)))


def benchmark(label, make_game, repeats):
  game = make_game()
  mgame = vsg_spiel.markov_game(game)
  turn_based = pyspiel.convert_to_turn_based(game)
  print(f"\n{label}: {mgame.num_states} Markov states, "
        f"{vsg_spiel.core.turn_based_tree_size(mgame):.0f} turn-based "
        "decision nodes")
  for kind, policy, python_policy, cpp_policy in policies(game, mgame,
                                                          turn_based):
    python_seconds, python_value = best_time(
        lambda: exploitability.nash_conv(turn_based, python_policy), 1)
    cpp_seconds, cpp_value = best_time(
        lambda: pyspiel.nash_conv(turn_based, cpp_policy), 1)
    fresh = make_game()
    first_seconds, first = best_time(
        lambda: vsg_spiel.nash_conv(fresh, policy), 1)
    cold_seconds, cold = best_time(
        lambda: vsg_spiel.nash_conv(fresh, policy), repeats)
    markov = vsg_spiel.markov_game(fresh)
    used, profile = vsg_spiel.read_policy(markov, policy)
    warm_seconds, warm = best_time(lambda: vsg_spiel.nash_conv(used, profile),
                                   repeats)
    values = np.array([cpp_value, first, cold, warm])
    difference = float(np.max(np.abs(values - python_value)))
    print(f"  {kind:24s} py={python_seconds * 1e3:8.1f} ms "
          f"c++={cpp_seconds * 1e3:8.1f} ms | "
          f"first={first_seconds * 1e3:7.1f} ms "
          f"(py {python_seconds / first_seconds:5.1f}x, "
          f"c++ {cpp_seconds / first_seconds:5.1f}x) | "
          f"cold={cold_seconds * 1e3:6.2f} ms "
          f"(py {python_seconds / cold_seconds:6.1f}x, "
          f"c++ {cpp_seconds / cold_seconds:6.1f}x) | "
          f"warm={warm_seconds * 1e3:6.2f} ms "
          f"(py {python_seconds / warm_seconds:7.1f}x, "
          f"c++ {cpp_seconds / warm_seconds:6.1f}x) | "
          f"{'on histories' if used is not markov else 'Markov'} "
          f"| max|diff|={difference:.1e}", flush=True)
    assert difference < 1e-9, (kind, values, python_value)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3,
                      help="best of this many runs for cold and warm (>= 1)")
  args = parser.parse_args()
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1; got {args.repeats}")
  payoffs = np.random.default_rng(41).uniform(-1, 1, size=(2, 41, 41))
  benchmark("41x41 general-sum stage game",
            lambda: pyspiel.create_matrix_game(payoffs[0].tolist(),
                                               payoffs[1].tolist()),
            args.repeats)
  for spec in ("python_vsg_differential(num_actions=41,horizon=1)",
               "oshi_zumo(coins=5,size=2,horizon=5)",
               "python_iterated_prisoners_dilemma(max_game_length=5)"):
    benchmark(spec, lambda spec=spec: pyspiel.load_game(spec), args.repeats)


if __name__ == "__main__":
  main()
