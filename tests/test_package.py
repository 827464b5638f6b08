"""Packaging: the installed layout and the game registration."""

import json
import os
import subprocess
import sys

import pytest

_CHECK_LAYOUT = """
import importlib.util, pyspiel
import vsg_spiel, vsg_spiel.games, vsg_spiel.algorithms, vsg_spiel.eval
for name in ("games", "algorithms", "eval"):
    assert importlib.util.find_spec(name) is None, name + " is top-level"
pyspiel.load_game("python_vsg_differential")
pyspiel.load_game("python_vsg_routing")
print(vsg_spiel.__file__)
"""


def _clean_environment():
  environment = dict(os.environ)
  environment.pop("PYTHONPATH", None)
  return environment


def test_installed_package_has_no_top_level_subpackages(tmp_path):
  """Run from outside the source tree, as an installed user would."""
  probe = subprocess.run([sys.executable, "-c", "import vsg_spiel"],
                         cwd=tmp_path, env=_clean_environment(),
                         capture_output=True, text=True, check=False)
  if probe.returncode != 0:
    pytest.skip("vsg_spiel is not installed in this interpreter")
  result = subprocess.run([sys.executable, "-c", _CHECK_LAYOUT], cwd=tmp_path,
                          env=_clean_environment(), capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr


def test_report_writes_markdown_and_json(tmp_path):
  out = tmp_path / "report"
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.report", f"--out={out}",
       "--games=matrix_rps,python_iterated_prisoners_dilemma(max_game_length=2)"],
      capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  results = json.loads((out / "results.json").read_text())
  rows = results["nash_conv"]
  assert len(rows) == 4
  for row in rows:
    assert row["abs_difference"] < 1e-9
  assert "NashConv" in (out / "report.md").read_text()
  assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_report_rejects_unknown_game(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.report", f"--out={tmp_path}",
       "--games=kuhn_poker"], capture_output=True, text=True, check=False)
  assert result.returncode != 0
  assert "imperfect information" in result.stderr
