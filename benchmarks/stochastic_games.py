"""Cyclic stochastic games: our evaluation and equilibria vs sgamesolver.

    python benchmarks/stochastic_games.py [--repeats=5]

On `sgamesolver.SGame.random_game(states, players, actions, delta, seed)`
instances (converted with `MarkovGame.from_arrays`, the conversion not
timed), in one process, best of `--repeats`:

  * policy values of a random profile, the same (S, N) array on both sides:
    ours (`vsg_spiel.policy_values`: the profile validated, then one dense
    solve of (I - gamma P_pi) V = r_pi for all players at once) vs
    `SGame.get_values` (no validation, one dense solve per player);
  * the equilibrium check of a random profile, the same (S, N) array on
    both sides: each player's largest one-shot deviation gain at each state,
    max_a Q_i(s, a) - V_i(s) with Q_i the one-step look-ahead on the
    profile's values: ours (`vsg_spiel.one_shot_deviation_gains`: the
    profile validated, its values and each player's own-action MDP) vs
    `SGame.check_equilibrium` (its values, then one einsum per player over
    the look-ahead tensor of every joint action);
  * NashConv of the same profile (ours: `vsg_spiel.nash_conv`, the profile
    validated, its values, then each player's exact best-response values by
    policy iteration started from the profile itself: 1 + k N linear solves
    of S x S, k the improvement rounds, usually 2) against the same
    `SGame.check_equilibrium`: sgamesolver has no NashConv and its one-shot
    check is its cheapest equilibrium certificate, so this ratio sets our
    exact best responses against less work on their side (the one-shot gains
    only bound NashConv: best-response gains lie between them and their
    maximum / (1 - delta));
  * the Markov logit QRE at lambda = 2: ours
    (`vsg_spiel.algorithms.homotopy.solve(..., definition="markov_logit")`,
    when that module is present) vs `sgamesolver.homotopy.QRE`, on games
    of at most 1024 (state, joint action) pairs (one run each).

Our evaluation is compiled (`vsg_spiel.stationary_kernel`) on games with a
`MarkovGame.value_tensor` (here up to 64 x 2 x 4), numpy on the larger ones.
Both sides' arrays are checked equal (to 1e-9), and our NashConv at least
the one-shot gains' expectation, before timing (which also compiles ours).
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
        f"{_DELTA}; QRE at lambda {_LAMBDA}; NashConv's ratio is against "
        f"their one-shot check (them)"
        + ("" if homotopy else " (ours: vsg_spiel.algorithms.homotopy "
           "missing, not timed)"))
  header = (f"{'S x N x A':>12} {'values us':>10} {'them':>10} {'ratio':>6} "
            f"{'one-shot us':>11} {'them':>10} {'ratio':>6} "
            f"{'NashConv us':>11} {'ratio':>6} "
            f"{'QRE us':>8} {'them':>8} {'ratio':>6}")
  print(header)
  for seed, (states, players, actions) in enumerate(SIZES):
    sgame = sgamesolver.SGame.random_game(states, players, actions, _DELTA,
                                          seed)
    mgame = markov_game_of(sgame)
    strategies = sgame.random_strategy(seed=seed)
    profile = [np.nan_to_num(strategies[:, i]) for i in range(players)]
    np.testing.assert_allclose(vsg_spiel.policy_values(mgame, profile),
                               sgame.get_values(strategies), rtol=0,
                               atol=1e-9)
    one_shot = vsg_spiel.one_shot_deviation_gains(mgame, profile)
    np.testing.assert_allclose(one_shot, sgame.check_equilibrium(strategies),
                               rtol=0, atol=1e-9)
    # A best response gains at least the one-shot deviation at each state.
    assert vsg_spiel.nash_conv(mgame, profile) >= (
        mgame.initial_distribution @ one_shot).sum() - 1e-9
    ours_values = best_time(lambda: vsg_spiel.policy_values(mgame, profile),
                            repeats)
    their_values = best_time(lambda: sgame.get_values(strategies), repeats)
    ours_one_shot = best_time(
        lambda: vsg_spiel.one_shot_deviation_gains(mgame, profile), repeats)
    their_check = best_time(lambda: sgame.check_equilibrium(strategies),
                            repeats)
    ours_nash_conv = best_time(lambda: vsg_spiel.nash_conv(mgame, profile),
                               repeats)
    if states * actions**players > _QRE_MAX_ROWS:
      qre = f"{'-':>8} {'-':>8} {'-':>6}"
    elif homotopy is not None:
      their_qre = best_time(lambda: sgamesolver_qre(sgame), 1)
      ours_qre = best_time(lambda: homotopy.solve(
          mgame, temperature=1 / _LAMBDA, definition="markov_logit"), 1)
      qre = f"{ours_qre:8.4f} {their_qre:8.4f} {their_qre / ours_qre:6.1f}"
    else:
      their_qre = best_time(lambda: sgamesolver_qre(sgame), 1)
      qre = f"{'-':>8} {their_qre:8.4f} {'-':>6}"
    print(f"{states:>4} x {players} x {actions} "
          f"{ours_values:10.5f} {their_values:10.5f} "
          f"{their_values / ours_values:6.1f} "
          f"{ours_one_shot:11.5f} {their_check:10.5f} "
          f"{their_check / ours_one_shot:6.1f} "
          f"{ours_nash_conv:11.5f} {their_check / ours_nash_conv:6.1f} {qre}",
          flush=True)


if __name__ == "__main__":
  app.run(main)
