"""The report's summary page: verdicts computed from small results."""

import numpy as np
import pytest

from vsg_spiel.eval import common
from vsg_spiel.eval import summary


def epsilon_row(elbo_gap, gain, epsilon=1.0, converged=True):
  return {"max_elbo_gap": elbo_gap, "max_deviation_gain": gain,
          "epsilon": epsilon, "elbo_exceeds": elbo_gap > epsilon,
          "gain_exceeds": gain > epsilon, "residual": 0.0 if converged
          else 1e-3, "residual_tolerance": 1e-8, "converged": converged}


def section(results, failed=None):
  return {"settings": {}, "results": results, "failed": failed or {}}


def test_theorem_4_2_counts_rows_within_and_beyond_epsilon():
  rows = [epsilon_row(0.5, 0.5), epsilon_row(0.9, 3.0, converged=False),
          epsilon_row(0.2, 2.0)]
  verdict, text = summary.theorem_4_2({"rows": rows, "potential": []})
  assert verdict == summary.HOLDS
  assert "ELBO gap <= epsilon in 3/3 rows (worst gap / epsilon 0.9)" in text
  assert "exceeds epsilon in 2/3 rows" in text
  assert "2/3 rows certified" in text
  rows.append(epsilon_row(1.5, 1.5))
  verdict, text = summary.theorem_4_2({"rows": rows, "potential": []})
  assert verdict == summary.PARTLY and "3/4 rows" in text


def mai_entry(fraction, seeds, nash_conv=None):
  entry = {"seeds": list(range(seeds)), "global_optimum_fraction": fraction}
  if nash_conv is not None:
    entry["nash_conv"] = {"mean": nash_conv, "std": 0.0,
                          "interval": {"low": nash_conv - 0.1,
                                       "high": nash_conv + 0.1}}
  return entry


@pytest.mark.parametrize("mai, masql, verdict", [
    (1.0, 0.0, summary.HOLDS), (0.5, 0.0, summary.PARTLY),
    (0.5, 0.5, summary.FAILS), (0.0, 0.0, summary.FAILS),
    (1.0, 1.0, summary.FAILS)])
def test_figure_2a_compares_mai_with_the_baselines(mai, masql, verdict):
  results = {"differential": {"mai": mai_entry(mai, 2),
                              "masql": mai_entry(masql, 2)}}
  got, text = summary.figure_2a(results)
  assert got == verdict
  assert f"MAI at the global optimum in {round(2 * mai)}/2 seeds" in text
  assert f"MASQL {round(2 * masql)}/2" in text


def test_figure_2b_names_the_least_exploitable_baseline():
  results = {"routing": {"mai": mai_entry(0, 2, 2.4),
                         "maddpg": mai_entry(0, 2, 0.8),
                         "ddpg": mai_entry(0, 2, 0.9)}}
  verdict, text = summary.figure_2b(results)
  assert verdict == summary.FAILS
  assert "MAI's NashConv 2.4 [2.3, 2.5]" in text
  assert "lowest baseline MADDPG 0.8 [0.7, 0.9]" in text
  results["routing"]["mai"] = mai_entry(0, 2, 0.5)
  assert summary.figure_2b(results)[0] == summary.HOLDS


def test_nash_counts_games_where_vpg_is_faster():
  def game(ratio=None, bound=None, vpg=1.0, name="matrix_bos"):
    return {"game": name,
            "speedup": {"ratio": ratio, "ratio_lower_bound": bound,
                        "vpg_annealed_seconds": vpg}}
  results = {"games": [game(ratio=3.76, name="python_vsg_routing(horizon=2)"),
                       game(ratio=0.128), game(bound=5.0, name="matrix_sh"),
                       game(vpg=None, name="matrix_mp")]}
  verdict, text = summary.nash(results)
  assert verdict == summary.PARTLY
  # Each speed-up names its game.
  assert ("in 2/4 games (speed-ups python_vsg_routing 3.76, matrix_bos "
          "0.128, matrix_sh > 5, matrix_mp not reached)") in text
  assert "not counted" not in text
  # A game whose uniform start is already within the threshold (matrix_rps)
  # measures no speed: named, not counted.
  results["games"].append(dict(game(ratio=50.0), game="matrix_rps",
                               start_nash_conv=0.0,
                               threshold_nash_conv=0.002))
  verdict, text = summary.nash(results)
  assert "in 2/4 games" in text
  assert "not counted, the uniform start already within the threshold: " \
      "matrix_rps" in text


def test_mean_field_compares_at_equal_wall_time():
  def game(ours, *others):
    values = {"mf_bql": ours}
    values.update({f"solver_{i}": value for i, value in enumerate(others)})
    return {"runs": {name: {} for name in values},
            "same_seconds": {"seconds": 1.0, "exploitability": values}}
  verdict, text = summary.mean_field({"games": [game(0.01, 1.0, None),
                                                game(0.5, 0.25)]})
  assert verdict == summary.PARTLY
  assert "in 1/2 games" in text and "range 0.5-100" in text


def test_correlated_and_zero_sum_verdicts():
  def ce_game(ce_dist, welfare):
    return {"rows": [{"method": "vpg", "ce_dist": ce_dist,
                      "welfare": welfare},
                     {"method": "jpsro", "ce_dist": 0.0, "welfare": 5.0}],
            "max_welfare_ce": {"welfare": 5.0}}
  verdict, text = summary.correlated(
      {"correlated": [ce_game(0.0, 5.0), ce_game(0.0, 4.0)]})
  assert verdict == summary.HOLDS
  assert "CE (ce_dist <= 1e-06) in 2/2 games" in text
  assert "welfare in 1/2" in text
  assert summary.correlated({"correlated": [ce_game(0.02, 5.0)]})[0] == (
      summary.FAILS)

  def zs_game(ours, cfr):
    return {"algorithms": {
        "zero_sum_vpg": {"time_to_threshold": ours, "final_nash_conv": 0.1},
        "cfr": {"time_to_threshold": cfr, "final_nash_conv": 0.0},
        "xfp": {"skipped": "reason"}}}
  verdict, text = summary.zero_sum(
      {"zero_sum": [zs_game(0.1, 0.2), zs_game(0.3, 0.2), zs_game(None, 1)]})
  assert verdict == summary.PARTLY
  assert "threshold in 2/3 games, first of the algorithms in 1" in text


def test_sections_not_run_or_without_results_say_so():
  results = {
      "epsilon": section(None, {"epsilon summary": "KeyError: 'rows'"}),
      "nash": section({"games": []}),
      "mai": section({"differential": {"mai": mai_entry(1.0, 1)}},
                     {"mai/routing/mai/0": "ValueError: boom"}),
  }
  lines = {claim: (verdict, text) for claim, _, verdict, text
           in summary.verdicts(results)}
  assert lines["Theorem 4.2: ELBO gap <= epsilon"] == (
      summary.NO_RESULT, "the section could not be summarised")
  assert lines["VPG vs the best OpenSpiel baseline (Nash)"] == (
      summary.NO_RESULT, "no game completed")
  assert lines["Figure 2a: MAI at the global optimum"][0] == summary.HOLDS
  verdict, text = lines["Figure 2b: MAI's NashConv vs baselines"]
  assert verdict == summary.NO_RESULT
  assert "1 failures listed in the section" in text
  assert lines["MF-BQL vs the best OpenSpiel MFG solver"] == (
      summary.NOT_RUN, "section not selected")
  table = summary.markdown(results, ["epsilon", "nash", "mai", "mfg"])
  assert "[Theorem 4.2: ELBO gap <= epsilon](#section-epsilon)" in table
  assert "Distancing" not in table  # not a section of this report


def test_bootstrap_interval_is_seeded_and_handles_degenerate_seeds():
  values = [1.0, 2.5, 2.0, 4.0, 3.5]
  interval = common.bootstrap_interval(values)
  assert interval == common.bootstrap_interval(values)  # seeded
  assert interval["note"] is None
  assert min(values) < interval["low"] < np.mean(values) < interval["high"]
  assert interval["high"] < max(values)
  assert common.bootstrap_interval([1.0, 3.0])["low"] == 1.0  # 2 seeds
  assert common.bootstrap_interval([2.0]) == {
      "low": None, "high": None, "note": "1 seed: no interval"}
  assert common.bootstrap_interval([2.0, 2.0, 2.0]) == {
      "low": 2.0, "high": 2.0, "note": "all seeds equal"}
  # Per episode (a learning curve): an episode where the seeds agree has a
  # zero-width band.
  curves = common.bootstrap_interval([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]])
  np.testing.assert_array_equal(curves["low"][:1], [0.0])
  np.testing.assert_array_equal(curves["high"][:1], [0.0])
  assert 1.0 <= curves["low"][1] < 2.0 < curves["high"][1] <= 3.0


def test_distancing_verdict_follows_the_target_and_the_loads():
  def run(name, iterations, published):
    return {"algorithm": name, "iterations_to_target": iterations,
            "published_loads": published,
            "largest_regularised_decrease": 0.0}
  results = {"target_nash_conv": 1e-3,
             "runs": [run("vpg_annealed", 49, False),
                      run("independent_npg", 289, True)]}
  verdict, text = summary.distancing(results)
  assert verdict == summary.PARTLY
  assert ("vpg_annealed 49 iterations, other loads; independent NPG 289 "
          "iterations, published loads") in text
  results["runs"][0] = run("vpg_annealed", None, False)
  assert summary.distancing(results)[0] == summary.FAILS
  results["runs"][0] = run("vpg_annealed", 12, True)
  assert summary.distancing(results)[0] == summary.HOLDS
  results["runs"][0]["largest_regularised_decrease"] = 872.0
  verdict, text = summary.distancing(results)
  assert verdict == summary.PARTLY and "F_alpha along VPG 872" in text


def fake_differential_run(seed, final_return):
  """A finished run_mai record of the differential game (no training)."""
  return {"config": {"seed": seed}, "train_seconds": 1.0 + seed,
          "episode_returns": [[final_return, final_return]] * 12,
          "final": {"global_optimum": seed == 0, "local_optimum": False,
                    "steps_at_global_optimum": 1.0 - 0.5 * seed,
                    "deterministic_return": final_return,
                    "mean_joint_action": [[5.0, 5.0]]}}


def test_figure_2_tables_and_plots_give_bootstrap_intervals(tmp_path):
  # pylint: disable-next=g-import-not-at-top
  from vsg_spiel.eval import continuous_runs
  experiment = continuous_runs.Experiment(
      game="differential", algorithms=("mai", "ddpg"), seeds=(0, 1),
      episodes=12, steps=1)
  records = {"mai": [fake_differential_run(0, 10.0),
                     fake_differential_run(1, 20.0)],
             "ddpg": [fake_differential_run(0, 3.0)]}
  summary_data = continuous_runs.summarize(experiment, records)
  interval = summary_data["mai"]["deterministic_return"]["interval"]
  assert (interval["low"], interval["high"]) == (10.0, 20.0)  # 2 seeds
  assert summary_data["ddpg"]["final_return"]["interval"]["note"] == (
      "1 seed: no interval")
  text = continuous_runs.markdown(experiment, summary_data)
  assert "| mai | 2 | 50% |" in text
  assert "15.000 [10.000, 20.000]" in text
  assert "3.000 (1 seed)" in text and "95% bootstrap interval" in text
  continuous_runs.plot_learning_curves(experiment, records,
                                       str(tmp_path / "curves.png"))
  assert (tmp_path / "curves.png").stat().st_size > 10_000
