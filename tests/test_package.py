"""Packaging: the installed layout and the game registration."""

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
