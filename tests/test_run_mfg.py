"""The run_mfg eval binary: outputs, comparisons and flag validation."""

import json
import os
import subprocess
import sys

import pytest

from vsg_spiel.eval import common
from vsg_spiel.eval import run_mfg

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_GAMES = ("mfg_crowd_modelling(size=4,horizon=3),"
              "mfg_garnet(size=3,horizon=2)")


def run_binary(*flags):
  environment = dict(os.environ)
  environment["PYTHONPATH"] = os.pathsep.join(
      [_REPOSITORY] + [path for path in
                       environment.get("PYTHONPATH", "").split(os.pathsep)
                       if path])
  return subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_mfg", *flags],
      capture_output=True, text=True, check=False, env=environment,
      timeout=120)


def test_binary_writes_json_markdown_and_figures(tmp_path):
  out = tmp_path / "out"
  result = run_binary(f"--games={TINY_GAMES}", "--iterations=4",
                      "--time_budget=5", f"--out={out}")
  assert result.returncode == 0, result.stderr
  results = json.loads((out / "results.json").read_text())
  assert [game["game"] for game in results["games"]] == \
      common.GameListParser().parse(TINY_GAMES)
  for game in results["games"]:
    assert set(game["runs"]) == set(run_mfg.ALGORITHMS)
    for run in game["runs"].values():
      assert run["parity_error"] < 1e-8
      assert run["curve"][0]["iteration"] == 0
    assert (out / "figures" / run_mfg.figure_name(game["game"])).stat() \
        .st_size > 10_000
  markdown = (out / "run_mfg.md").read_text()
  assert "MF-BQL (ours)" in markdown and "after 4 iterations" in markdown
  leftovers = [name for _, _, names in os.walk(out) for name in names
               if name.startswith(".tmp-")]
  assert not leftovers


@pytest.mark.parametrize("flags, message", (
    (("--algorithms=mf_bql,q_learning",), "one of mf_bql, mirror_descent"),
    (("--games=matrix_rps",), "not a mean-field game"),
    (("--games=no_such_game",), "unknown game 'no_such_game'"),
    (("--temperature=0",), "temperature"),
    (("--time_budget=-1",), "time_budget"),
))
def test_bad_flags_fail_before_any_work(tmp_path, flags, message):
  out = tmp_path / "out"
  result = run_binary(*flags, f"--out={out}", "--iterations=1")
  assert result.returncode != 0
  assert message in result.stderr
  assert not out.exists()


def test_run_game_and_write_outputs_are_reusable(tmp_path):
  settings = run_mfg.MeanFieldComparison(
      iterations=3, time_budget=5.0, algorithms=("mf_bql", "mirror_descent"))
  result = run_mfg.run_game("mfg_crowd_modelling(size=4,horizon=3)",
                            settings.algorithms, settings)
  assert set(result["runs"]) == {"mf_bql", "mirror_descent"}
  assert result["same_iterations"]["iterations"] == 3
  assert set(result["same_seconds"]["exploitability"]) == {"mf_bql",
                                                           "mirror_descent"}
  run_mfg.write_outputs([result], str(tmp_path), settings)
  assert (tmp_path / "results.json").exists()
  assert (tmp_path / "run_mfg.md").exists()


def test_game_lists_keep_parameters_together():
  assert common.GameListParser().parse("a(x=1,y=2), b ,c(z=[1|2;3|4])") == [
      "a(x=1,y=2)", "b", "c(z=[1|2;3|4])"]


def test_checkpoints_are_sorted_and_end_at_the_last_iteration():
  points = run_mfg.checkpoints(100)
  assert points == sorted(set(points))
  assert points[0] == 1 and points[-1] == 100
  assert run_mfg.checkpoints(1) == [1]
