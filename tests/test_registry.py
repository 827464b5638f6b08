"""The one algorithm registry: adding an algorithm to every binary is one
entry, and each algorithm runs isolated."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vsg_spiel.eval import comparison
from vsg_spiel.eval import registry
from vsg_spiel.eval import run_mfg
from vsg_spiel.eval import runner

# A binary run in a fresh process with one more registry entry: a dummy
# algorithm that plays the uniform profile (NashConv of matrix_rps: 0, so it
# stops converged at its first checkpoint) and one that fails.
DUMMY_PROGRAM = r"""
import sys
import runpy
import vsg_spiel
from vsg_spiel.eval import adapters, registry

class Uniform(adapters.MarkovAdapter):
  steps = 0
  def __init__(self, mgame, settings, reward_scale):
    self._mgame = mgame
  def step(self):
    Uniform.steps += 1
  def profile(self):
    return vsg_spiel.uniform_profile(self._mgame)

class Failing(Uniform):
  def step(self):
    raise RuntimeError("dummy failure")

registry.register(registry.Entry("uniform_dummy", registry.MARKOV, Uniform,
                                 baseline=False))
registry.register(registry.Entry("failing_dummy", registry.MARKOV, Failing))
sys.argv = ["compare_nash"] + sys.argv[1:]
runpy.run_module("vsg_spiel.eval.compare_nash", run_name="__main__")
"""


def run_with_dummies(out, algorithms):
  """compare_nash on matrix_rps with the dummy entries registered."""
  return subprocess.run(
      [sys.executable, "-c", DUMMY_PROGRAM, "--games=matrix_rps",
       f"--algorithms={algorithms}", "--time_budget=5", "--max_iterations=7",
       f"--out={out}"], capture_output=True, text=True, check=False,
      timeout=300)


def test_a_registered_dummy_runs_in_the_binary(tmp_path):
  out = tmp_path / "out"
  result = run_with_dummies(out, "uniform_dummy,cfr")
  assert result.returncode == 0, result.stderr[-3000:]
  (game,) = json.loads((out / "results.json").read_text())["games"]
  dummy = game["algorithms"]["uniform_dummy"]
  assert dummy["iterations"] == 1 and dummy["stopped"] == "converged"
  assert dummy["final_nash_conv"] == pytest.approx(0.0, abs=1e-12)
  assert dummy["openspiel_nash_conv"] == pytest.approx(0.0, abs=1e-12)
  assert "| uniform_dummy |" in (out / "report.md").read_text()


def test_a_failing_algorithm_is_recorded_and_the_others_complete(tmp_path):
  out = tmp_path / "out"
  result = run_with_dummies(out, "failing_dummy,uniform_dummy")
  assert result.returncode == 1
  assert "failing_dummy: RuntimeError: dummy failure" in (
      result.stderr)
  (game,) = json.loads((out / "results.json").read_text())["games"]
  assert game["algorithms"]["failing_dummy"] == {
      "failed": "RuntimeError: dummy failure"}
  assert game["algorithms"]["uniform_dummy"]["stopped"] == "converged"
  assert "failing_dummy: failed, RuntimeError" in (
      out / "report.md").read_text()


def test_names_follow_registration_and_reject_duplicates():
  markov = registry.names(registry.MARKOV)
  assert markov[:3] == ("vpg_annealed", "vpg", "vpg_sampled")
  assert "zero_sum_vpg" in markov
  assert "zero_sum_vpg" not in registry.names(registry.MARKOV,
                                              "compare_nash")
  with pytest.raises(ValueError, match="already registered"):
    registry.register(registry.get("cfr", registry.MARKOV))
  with pytest.raises(ValueError, match="valid: mf_bql"):
    registry.get("cfr", registry.MEAN_FIELD)


def test_iterated_prisoners_dilemma_keeps_vpg_when_cfr_fails():
  """The issue's input: CFR's policy cannot be converted on this game (a
  KeyError inside OpenSpiel's conversion); VPG's run is kept."""
  result = comparison.run_game(
      "python_iterated_prisoners_dilemma(max_game_length=2)", ["vpg", "cfr"],
      comparison.ComparisonSettings(time_budget=0.3, max_iterations=20))
  assert result["algorithms"]["vpg"]["iterations"] >= 1
  assert np.isfinite(result["algorithms"]["vpg"]["final_nash_conv"])
  assert result["algorithms"]["cfr"]["failed"].startswith("KeyError")
  assert runner.recorded_failures(result) == {
      "algorithms/cfr": result["algorithms"]["cfr"]["failed"]}


def test_boltzmann_qlearning_is_unsupported_on_a_2x3_game(tmp_path):
  """BoltzmannQLearner samples all num_distinct_actions actions: on a 2x3
  game the row player would play a third, illegal, action. It is skipped up
  front with the reason, and the other learners run."""
  path = tmp_path / "two_by_three.nfg"
  path.write_text('NFG 1 R "2x3" { "P1" "P2" } { 2 3 }\n\n'
                  '3 0 0 3 1 1 1 1 2 2 0 0\n')
  result = comparison.run_game(
      f"nfg_game(filename={path})", ["boltzmann_qlearning", "qlearning"],
      comparison.ComparisonSettings(time_budget=0.2, rl_episodes=5))
  assert "ignoring legal_actions" in (
      result["algorithms"]["boltzmann_qlearning"]["skipped"])
  assert result["algorithms"]["qlearning"]["iterations"] >= 1


def test_mean_field_entries_run_through_the_same_runner():
  settings = run_mfg.MeanFieldSettings(iterations=3, time_budget=30.0)
  result = run_mfg.run_game("mfg_crowd_modelling(size=4,horizon=3)",
                            ["mf_bql", "fictitious_play"], settings)
  for run in result["runs"].values():
    assert [point["iteration"] for point in run["curve"]] == [0, 1, 2, 3]
    assert run["parity_error"] < 1e-8
