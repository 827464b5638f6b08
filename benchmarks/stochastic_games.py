"""Cyclic stochastic games: our evaluation and equilibria vs sgamesolver.

    python benchmarks/stochastic_games.py [--repeats=5]

On `sgamesolver.SGame.random_game(states, players, actions, delta, seed)`
instances (converted with `MarkovGame.from_arrays`, the conversion not
timed), in one process, best of `--repeats`:

  * policy values of a random profile, the same (S, N) array on both sides:
    ours (`vsg_spiel.policy_values`: the profile validated, then one dense
    solve of (I - gamma P_pi) V = r_pi for all players at once) vs
    `SGame.get_values` (no validation, one dense solve per player);
  * the equilibrium check of a random profile, not the same computation:
    our NashConv (the profile validated, its values, then each player's
    exact best-response values by policy iteration: one solve per round
    for every player, usually 2 rounds, so 1 + 2 N solves of S x S in all)
    vs `SGame.check_equilibrium` (its values, N solves, then one-shot
    deviation gains: a one-step look-ahead, no best-response values); it
    computes less than we do, so a ratio below 1 here is not like for like;
  * the Markov logit QRE at lambda = 2: ours
    (`vsg_spiel.algorithms.homotopy.solve(..., definition="markov_logit")`,
    when that module is present) vs `sgamesolver.homotopy.QRE`, on games
    of at most 1024 (state, joint action) pairs (one run each).

Ratios are sgamesolver's time over ours (> 1: we are faster). The machine
may be shared: compare ratios of one run, not seconds across runs.
"""

import time

from absl import app
from absl import flags
import numpy as np
import sgamesolver

import vsg_spiel

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (best of).",
                                lower_bound=1)
SIZES = [  # states, players, actions
    (2, 2, 2), (4, 2, 3), (8, 3, 3), (16, 2, 4), (16, 3, 4), (8, 4, 3),
    (64, 2, 4), (256, 2, 8), (128, 3, 4), (1024, 2, 4),
]
# sgamesolver's QRE is timed up to this many (state, joint action) pairs.
_QRE_MAX_ROWS = 1024
_DELTA = 0.95
_LAMBDA = 2.0

if not hasattr(np, "NaN"):  # sgamesolver 1.0.2 predates NumPy 2
  np.NaN = np.nan


def markov_game_of(sgame):
  return vsg_spiel.MarkovGame.from_arrays(
      np.moveaxis(sgame.u, 1, 0), sgame.phi, float(sgame.delta[0]),
      np.full(sgame.num_states, 1 / sgame.num_states),
      [sgame.action_mask[:, player] for player in range(sgame.num_players)])


def best_time(function, repeats):
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    best = min(best, time.perf_counter() - start)
  return best


def sgamesolver_qre(sgame):
  qre = sgamesolver.homotopy.QRE(sgame)
  qre.solver_setup(target_lambda=_LAMBDA)
  qre.solver.set_parameters(verbose=0)
  qre.solve()
  return qre.equilibrium


def main(argv):
  del argv
  try:
    from vsg_spiel.algorithms import homotopy  # pylint: disable=g-import-not-at-top
  except ImportError:
    homotopy = None
  repeats = _REPEATS.value
  print(f"best of {repeats}; ratio = sgamesolver time / ours; delta "
        f"{_DELTA}; QRE at lambda {_LAMBDA}"
        + ("" if homotopy else " (ours: vsg_spiel.algorithms.homotopy "
           "missing, not timed)"))
  header = (f"{'S x N x A':>12} {'values us':>10} {'them':>10} {'ratio':>7} "
            f"{'NashConv us':>12} {'check them':>11} {'ratio':>7} "
            f"{'QRE us':>9} {'them':>9} {'ratio':>7}")
  print(header)
  for seed, (states, players, actions) in enumerate(SIZES):
    sgame = sgamesolver.SGame.random_game(states, players, actions, _DELTA,
                                          seed)
    mgame = markov_game_of(sgame)
    strategies = sgame.random_strategy(seed=seed)
    profile = [np.nan_to_num(strategies[:, i]) for i in range(players)]
    ours_values = best_time(lambda: vsg_spiel.policy_values(mgame, profile),
                            repeats)
    their_values = best_time(lambda: sgame.get_values(strategies), repeats)
    ours_check = best_time(lambda: vsg_spiel.nash_conv(mgame, profile),
                           repeats)
    their_check = best_time(lambda: sgame.check_equilibrium(strategies),
                            repeats)
    if states * actions**players > _QRE_MAX_ROWS:
      qre = f"{'-':>9} {'-':>9} {'-':>7}"
    elif homotopy is not None:
      their_qre = best_time(lambda: sgamesolver_qre(sgame), 1)
      ours_qre = best_time(lambda: homotopy.solve(
          mgame, temperature=1 / _LAMBDA, definition="markov_logit"), 1)
      qre = f"{ours_qre:9.4f} {their_qre:9.4f} {their_qre / ours_qre:7.1f}"
    else:
      their_qre = best_time(lambda: sgamesolver_qre(sgame), 1)
      qre = f"{'-':>9} {their_qre:9.4f} {'-':>7}"
    print(f"{states:>4} x {players} x {actions} "
          f"{ours_values:10.5f} {their_values:10.5f} "
          f"{their_values / ours_values:7.1f} {ours_check:12.5f} "
          f"{their_check:11.5f} {their_check / ours_check:7.1f} {qre}",
          flush=True)


if __name__ == "__main__":
  app.run(main)
