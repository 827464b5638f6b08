"""The Theorem 4.2 eval binary (vsg_spiel.eval.epsilon)."""

import json
import subprocess
import sys

import numpy as np
import pyspiel
import pytest

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.eval import epsilon

SETTINGS = {"step": 0.1, "max_iterations": 3000, "tolerance": 1e-10,
            "openspiel_max_nodes": 50_000}


def count_turn_based_decision_nodes(game):
  def walk(state):
    if state.is_terminal():
      return 0
    if state.is_chance_node():
      return sum(walk(state.child(action)) for action, _ in
                 state.chance_outcomes())
    return 1 + sum(walk(state.child(action))
                   for action in state.legal_actions())
  return walk(pyspiel.convert_to_turn_based(game).new_initial_state())


@pytest.mark.parametrize("game_string", [
    "matrix_rps", "python_iterated_prisoners_dilemma(max_game_length=2)",
    "python_vsg_routing(num_players=2,horizon=2,split_levels=1)"])
def test_tree_size_counts_openspiel_decision_nodes(game_string):
  game = pyspiel.load_game(game_string)
  assert core.turn_based_tree_size(vsg_spiel.markov_game(game)) == (
      count_turn_based_decision_nodes(game))


def test_marginal_row_is_within_the_bound_and_measured_by_openspiel():
  row = epsilon.epsilon_row("matrix_bos", 0.3, "marginal", "exact", SETTINGS)
  assert row["converged"] and row["measured_by"] == "open_spiel"
  assert row["openspiel_vs_ours"] < 1e-9
  assert not (row["gain_exceeds"] or row["elbo_exceeds"])
  np.testing.assert_allclose(row["elbo_gaps"], row["deviation_gains"],
                             atol=1e-9)


def test_routing_rows_measured_by_the_core_equal_openspiel():
  """The default routing game's tree is past the default OpenSpiel limit, so
  its rows are measured by the core; on a smaller routing game both measure
  the same row, and agree."""
  default = epsilon.EpsilonSettings()
  routing = [game for game in default.games if "routing" in game]
  assert routing and all(
      core.turn_based_tree_size(vsg_spiel.markov_game(game)) >
      default.openspiel_max_nodes for game in routing)
  small = "python_vsg_routing(network=braess,num_players=2,horizon=2,"
  small += "split_levels=1)"
  by_openspiel = epsilon.epsilon_row(small, 0.3, "conditional", "exact",
                                     SETTINGS)
  by_core = epsilon.epsilon_row(small, 0.3, "conditional", "exact",
                                dict(SETTINGS, openspiel_max_nodes=0))
  assert by_openspiel["measured_by"] == "open_spiel"
  assert by_core["measured_by"] == "vsg_spiel"
  assert by_openspiel["max_deviation_gain"] > 1e-3  # not all zero
  np.testing.assert_allclose(by_core["deviation_gains"],
                             by_openspiel["deviation_gains"], rtol=0,
                             atol=1e-9)


def test_failing_rows_are_kept_with_their_profile():
  row = epsilon.epsilon_row("matrix_bos", 0.1, "conditional", "exact",
                            SETTINGS)
  assert row["gain_exceeds"] and not row["elbo_exceeds"]
  assert len(row["profile"]) == 2


def test_model_rows_report_proposition_5_5():
  row = epsilon.epsilon_row(
      "python_iterated_prisoners_dilemma(max_game_length=2)", 0.5,
      "marginal", "variational", SETTINGS)
  assert row["model_kl"] >= 0 and row["q_error"] >= 0
  assert np.isfinite(row["delta"])


def test_potential_objective_ascends_at_a_small_step():
  run = epsilon.potential_run(
      "python_vsg_routing(num_players=2,horizon=2,split_levels=2)", 0.1, 0.2,
      30)
  assert run["objective_monotone"]
  assert run["expected_potential"][-1] < run["expected_potential"][0]


def test_binary_writes_table_json_and_figures(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.epsilon", f"--out={tmp_path}",
       "--games=matrix_bos,matrix_pd", "--temperatures=0.5",
       "--max_iterations=300", "--potential_iterations=5",
       "--potential_game=python_vsg_routing(num_players=2,horizon=1,"
       "split_levels=2)"], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  data = json.loads((tmp_path / "epsilon.json").read_text())
  assert len(data["rows"]) == 2 * 2 * len(epsilon.OPPONENT_MODELS)
  assert len(data["potential"]) == 3
  assert "Theorem 4.2" in (tmp_path / "epsilon.md").read_text()
  for name in ("epsilon.png", "potential.png"):
    assert (tmp_path / "figures" / name).stat().st_size > 10_000
  assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize("flag, message", [
    ("--opponent_models=oracle", "--opponent_models: 'oracle'"),
    ("--policy_forms=joint", "--policy_forms: 'joint'"),
    ("--games=kuhn_poker", "imperfect information"),
    ("--temperatures=-1", "--temperatures: -1.0 is not allowed"),
])
def test_bad_flags_fail_before_work(tmp_path, flag, message):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.epsilon", f"--out={tmp_path}",
       flag], capture_output=True, text=True, check=False, timeout=60)
  assert result.returncode != 0
  assert message in result.stderr
  assert not (tmp_path / "epsilon.json").exists()
