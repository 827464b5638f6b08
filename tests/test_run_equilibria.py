"""The correlated / zero-sum equilibria eval binary."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vsg_spiel.eval import run_equilibria


def test_max_welfare_ce_of_chicken():
  """x = mu(C,C) <= y = mu(C,D) = mu(D,C) binds: x = y = 1/3, worth 8/3 each,
  more than any mixture of Nash equilibria (2.5 each at best, fairly)."""
  joint, values = run_equilibria.max_welfare_ce(
      run_equilibria.normal_form("matrix_cd"))
  np.testing.assert_allclose(values, [8 / 3, 8 / 3], atol=1e-8)
  np.testing.assert_allclose(joint, [[0, 1 / 3], [1 / 3, 1 / 3]], atol=1e-8)


def test_nash_equilibria_of_chicken():
  welfare = sorted(w for _, w in run_equilibria.nash_equilibria(
      run_equilibria.normal_form("matrix_cd")))
  np.testing.assert_allclose(welfare, [4.0, 5.0, 5.0])


def test_multi_stage_games_are_rejected_for_the_ce_section():
  with pytest.raises(ValueError, match="not a one-shot game"):
    run_equilibria.normal_form(
        "python_iterated_prisoners_dilemma(max_game_length=2)")


def test_binary_writes_tables_and_figures(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_equilibria",
       f"--out={tmp_path}", "--ce_games=matrix_cd", "--signals=1,2",
       "--ce_temperatures=0.1", "--ce_iterations=300", "--ce_num_seeds=1",
       "--jpsro_iterations=2", "--cq_episodes=10",
       "--zero_sum_games=matrix_mp", "--time_budget=0.5"],
      capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  data = json.loads((tmp_path / "equilibria.json").read_text())
  rows = data["correlated"][0]["rows"]
  fair = [r for r in rows if r["method"] == "vpg" and r["num_signals"] == 2
          and r["initialisation"] == "distinct"][0]
  assert fair["ce_dist"] < 1e-6
  assert fair["values"][0] == pytest.approx(fair["values"][1], abs=1e-6)
  assert {r["method"] for r in rows} == {"vpg", "jpsro", "correlated_q"}
  assert (tmp_path / "figures" / "correlated.png").stat().st_size > 10_000
  assert data["zero_sum"][0]["game"] == "matrix_mp"
  assert (tmp_path / "figures" / "zero_sum_matrix_mp.png").exists()
  assert "matrix_cd" in (tmp_path / "equilibria.md").read_text()
  assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize("flag, message", [
    ("--ce_games=kuhn_poker", "imperfect information"),
    ("--ce_games=python_iterated_prisoners_dilemma(max_game_length=2)",
     "not a one-shot game"),
    ("--signals=0", "--signals"),
    ("--zero_sum_games=matrix_pd", "not zero-sum"),
    ("--zero_sum_algorithms=minimax", "'minimax' is not allowed"),
    ("--signals=abc", "--signals: 'abc' is not allowed"),
    ("--ce_iterations=0", "--ce_iterations: 0 is not allowed"),
    ("--ce_num_seeds=0", "--ce_num_seeds: 0 is not allowed"),
    ("--time_budget=-1", "--time_budget: -1.0 is not allowed"),
])
def test_bad_flags_fail_before_work(tmp_path, flag, message):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_equilibria",
       f"--out={tmp_path}", flag], capture_output=True, text=True,
      check=False, timeout=120)
  assert result.returncode != 0
  assert message in result.stderr
  assert not (tmp_path / "equilibria.json").exists()


def test_zero_sum_comparison_reaches_the_exact_value():
  # An iteration budget, not a time budget: the result must not depend on
  # how loaded the machine is (1000 iterations of zero-sum VPG give ~0.04).
  result = run_equilibria.zero_sum_game(
      "oshi_zumo(coins=3,size=1,horizon=3)", ["zero_sum_vpg", "cfr_plus"],
      time_budget=1e6, max_iterations=1000)
  for name in ("zero_sum_vpg", "cfr_plus"):
    run = result["algorithms"][name]
    assert run["openspiel_abs_difference"] < 1e-9
    assert run["final_nash_conv"] < 0.05 * result["payoff_range"]
  assert result["exact"]["value"] == pytest.approx(0.0, abs=1e-8)


def test_non_zero_sum_games_are_rejected():
  with pytest.raises(ValueError, match="not zero-sum"):
    run_equilibria.validate_zero_sum(["matrix_pd"])


def test_correlated_q_solving_each_stage_game_once_changes_nothing(
    monkeypatch):
  """The learners share one memoised CE solver: the device equals the one
  learned with a solver per learner that solves every call afresh."""
  shared = run_equilibria.correlated_q_device("matrix_bos", 8, seed=3)
  monkeypatch.setattr(run_equilibria, "_SameGameSolvedOnce",
                      lambda solver: solver)
  afresh = run_equilibria.correlated_q_device("matrix_bos", 8, seed=3)
  np.testing.assert_array_equal(shared["joint"], afresh["joint"])
  assert shared["ce_dist"] == afresh["ce_dist"]


# pylint: disable-next=protected-access
@pytest.mark.skipif(not run_equilibria._CVXOPT_MISSING,
                    reason="cvxopt installed: OpenSpiel's first solver works")
def test_going_straight_to_osqp_changes_no_answer(monkeypatch):
  """Without cvxopt, the CE programs solved by OSQP directly give exactly
  what OpenSpiel's CVXOPT-then-OSQP fallback gives."""
  direct = run_equilibria.correlated_q_device("matrix_shapleys_game", 12,
                                              seed=1)
  jpsro_direct = run_equilibria.jpsro_device("matrix_bos", 2, seed=0)
  monkeypatch.setattr(run_equilibria, "_CVXOPT_MISSING", False)
  fallback = run_equilibria.correlated_q_device("matrix_shapleys_game", 12,
                                                seed=1)
  jpsro_fallback = run_equilibria.jpsro_device("matrix_bos", 2, seed=0)
  np.testing.assert_array_equal(direct["joint"], fallback["joint"])
  assert direct["ce_dist"] == fallback["ce_dist"]
  assert jpsro_direct["ce_dist"] == jpsro_fallback["ce_dist"]
  np.testing.assert_array_equal(jpsro_direct["values"],
                                jpsro_fallback["values"])


def test_vpg_devices_gaps_equal_pyspiel_on_the_checked_device():
  devices = run_equilibria.vpg_devices("matrix_cd", signals=[1, 2],
                                       temperatures=[0.1], iterations=30,
                                       seeds=1)
  checked = [device for device in devices
             if "openspiel_abs_difference" in device]
  assert len(checked) == 1 and checked[0] is devices[-1]
  assert checked[0]["num_signals"] == 2
  assert checked[0]["openspiel_abs_difference"] <= 1e-9
