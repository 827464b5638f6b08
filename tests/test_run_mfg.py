"""The run_mfg eval binary: outputs, comparisons and flag validation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vsg_spiel.eval import common
from vsg_spiel.eval import registry
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


def test_openspiel_nash_conv_is_walked_once_per_policy(monkeypatch):
  """The parity check reuses OpenSpiel's value for an equal policy table and
  computes it for another policy; both equal OpenSpiel's NashConv."""
  # pylint: disable-next=g-import-not-at-top
  from open_spiel.python.mfg.algorithms import nash_conv
  game, engine, _ = run_mfg.game_and_engine(
      "mfg_crowd_modelling(size=4,horizon=3)")
  uniform = engine.table_policy(engine.uniform_policy(
      np.arange(engine.num_rows)))
  skewed_table = engine.uniform_policy(np.arange(engine.num_rows))
  skewed_table[0] = np.where(engine.legal[0],
                             np.arange(engine.num_actions) + 1.0, 0.0)
  skewed_table[0] /= skewed_table[0].sum()
  skewed = engine.table_policy(skewed_table)
  expected = [nash_conv.NashConv(game, policy).nash_conv()
              for policy in (uniform, skewed)]
  assert expected[0] != pytest.approx(expected[1], abs=1e-6)
  walks = []
  original = nash_conv.NashConv
  monkeypatch.setattr(run_mfg.nash_conv, "NashConv",
                      lambda *arguments: walks.append(1) or
                      original(*arguments))
  monkeypatch.setattr(run_mfg, "_OPENSPIEL_NASH_CONV", {})
  values = [run_mfg.openspiel_nash_conv(game, engine, policy)
            for policy in (uniform, engine.table_policy(
                engine.uniform_policy(np.arange(engine.num_rows))), skewed)]
  assert len(walks) == 2
  assert values == pytest.approx([expected[0]] * 2 + [expected[1]],
                                 abs=1e-12)


@pytest.mark.parametrize("game_name", (
    "python_mfg_crowd_modelling(size=4,horizon=3)",
    "mfg_crowd_modelling(size=4,horizon=3)"))
def test_openspiel_solvers_policies_equal_their_tables(game_name):
  """What lets the parity check walk a table: after two iterations, each
  OpenSpiel solver's policy has OpenSpiel's NashConv of its engine table
  (and the iterates have moved from the uniform policy)."""
  # pylint: disable-next=g-import-not-at-top
  from open_spiel.python.mfg.algorithms import nash_conv
  game, engine, _ = run_mfg.game_and_engine(game_name)
  settings = run_mfg.MeanFieldSettings(learning_rate=1.0)
  uniform = engine.uniform_policy(np.arange(engine.num_rows))
  for name in run_mfg.ALGORITHMS:
    entry = registry.get(name, registry.MEAN_FIELD)
    if not entry.baseline:
      continue
    algorithm = entry.make(game, engine, settings)
    algorithm.step()
    algorithm.step()
    policy = algorithm.policy()
    table = engine.policy_function(policy)(np.arange(engine.num_rows))
    assert np.abs(table - uniform).max() > 1e-3, name
    theirs = nash_conv.NashConv(game, policy).nash_conv()
    assert nash_conv.NashConv(game, engine.table_policy(table)).nash_conv() \
        == pytest.approx(theirs, abs=1e-12), name
    assert run_mfg.openspiel_nash_conv(game, engine, policy) == \
        pytest.approx(theirs, abs=1e-12), name
