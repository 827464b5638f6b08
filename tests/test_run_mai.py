"""The Figure 2 binary (vsg_spiel.eval.run_mai): resuming, outputs, flags."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vsg_spiel.eval import run_mai

TINY_AGENTS = (("hidden_sizes", (4,)), ("batch_size", 4),
               ("replay_capacity", 32), ("warmup_steps", 2),
               ("importance_samples", 2), ("importance_states", 2),
               ("jit_compile", False))


def tiny(**fields):
  routing = fields.get("game") == "routing"
  return run_mai.Experiment(**{
      "seeds": (0,), "episodes": 4, "steps": 3, "block_episodes": 1,
      "agent_overrides": TINY_AGENTS, "evaluation_samples": 8,
      "game_parameters": (("split_levels", 2),) if routing else (),
      **fields})


def read_progress(out_dir, experiment, algorithm, seed=0):
  path = os.path.join(run_mai.run_directory(out_dir, experiment.game,
                                            algorithm, seed),
                      run_mai.PROGRESS_FILE)
  with open(path, encoding="utf-8") as stream:
    return json.load(stream)


def test_resumed_run_repeats_nothing_and_equals_an_uninterrupted_one(
    tmp_path):
  experiment = tiny(game="routing", algorithms=("mai",))
  interrupted, uninterrupted = str(tmp_path / "a"), str(tmp_path / "b")
  _, complete = run_mai.run_experiment(experiment, interrupted,
                                       episode_budget=2)
  assert not complete
  partial = read_progress(interrupted, experiment, "mai")
  assert partial["episodes_done"] == 2 and not partial["finished"]
  records, complete = run_mai.run_experiment(experiment, interrupted)
  assert complete
  resumed = records["mai"][0]
  assert resumed["sessions"] == [[0, 2], [2, 4]]
  assert resumed["episode_returns"][:2] == partial["episode_returns"]
  records, _ = run_mai.run_experiment(experiment, uninterrupted)
  straight = records["mai"][0]
  assert straight["sessions"] == [[0, 4]]
  assert resumed["episode_returns"] == straight["episode_returns"]
  assert resumed["final"] == straight["final"]
  run_dir = run_mai.run_directory(interrupted, "routing", "mai", 0)
  assert sorted(os.listdir(run_dir)) == ["ckpt-4.data-00000-of-00001",
                                         "ckpt-4.index", "progress.json"]
  # A finished run is read back, not trained again.
  before = os.path.getmtime(os.path.join(run_dir, "progress.json"))
  _, trained = run_mai.run_one(experiment, "mai", 0, interrupted)
  assert trained == 0
  assert os.path.getmtime(os.path.join(run_dir, "progress.json")) == before
  with pytest.raises(ValueError, match="another configuration"):
    run_mai.run_one(tiny(game="routing", algorithms=("mai",), episodes=5),
                    "mai", 0, interrupted)


@pytest.mark.parametrize("game", run_mai.GAMES)
def test_every_algorithm_runs_and_writes_finite_outputs(game, tmp_path):
  experiment = tiny(game=game, episodes=2, steps=2, block_episodes=2)
  records, complete = run_mai.run_experiment(experiment, str(tmp_path))
  assert complete
  summary = run_mai.write_outputs(experiment, records, str(tmp_path))
  assert set(summary) == set(run_mai.ALGORITHMS)
  for entry in summary.values():
    assert np.isfinite(entry["final_return"]["mean"])
    if game == "differential":
      assert 0.0 <= entry["global_optimum_fraction"] <= 1.0
      assert np.isfinite(entry["deterministic_return"]["mean"])
    else:
      assert np.isfinite(entry["max_split_distance"]["mean"])
      assert entry["nash_conv"]["mean"] >= -1e-9
  game_dir = tmp_path / game
  assert (game_dir / run_mai.FIGURES[game]).stat().st_size > 0
  with open(game_dir / "summary.json", encoding="utf-8") as stream:
    assert set(json.load(stream)["summary"]) == set(run_mai.ALGORITHMS)
  assert "| mai |" in (game_dir / "summary.md").read_text()


def test_routing_evaluation_of_the_equilibrium_is_exact():
  """A policy that always plays the exact equilibrium split (on the grid:
  the uniform split of the default game at scale 1 is (1/3, 1/3, 1/3),
  which split_levels=3 contains) has distance 0 and grid NashConv 0 where
  the grid equilibrium is that split."""
  experiment = tiny(game="routing", game_parameters=(
      ("regime_scales", "1 "), ("regime_transition", "1 "),
      ("split_levels", 3)))
  game = experiment.load_game()
  environment = run_mai.continuous_common.ContinuousEnvironment(game)

  class Equilibrium:
    stochastic_policy = False

    def actions(self, observations, deterministic=False):
      del deterministic
      return np.zeros((len(observations), 2))  # softmax(0, 0, 0) = 1/3 each

  result = run_mai.evaluate(environment, [Equilibrium()] * 2, 4)
  np.testing.assert_allclose(result["split_distances"], [0.0], atol=1e-9)
  assert abs(result["nash_conv"]) < 1e-9


def test_bad_settings_fail_naming_the_valid_values():
  with pytest.raises(ValueError, match="differential"):
    run_mai.Experiment(game="chess")
  with pytest.raises(ValueError, match="mai, masql, maddpg, ddpg"):
    run_mai.Experiment(algorithms=("mai", "ppo"))
  with pytest.raises(ValueError, match="learning_rate"):
    run_mai.Experiment(agent_overrides=(("learning_rat", 0.1),))
  with pytest.raises(ValueError, match="importance_samples"):  # MAI's only
    run_mai.Experiment(algorithms=("ddpg",),
                       agent_overrides=(("importance_samples", 4),))
  with pytest.raises(ValueError, match="policy_form must be one of"):
    run_mai.Experiment(agent_overrides=(("policy_form", "joint"),))
  with pytest.raises(ValueError, match="network"):
    run_mai.Experiment(game="routing", game_parameters=(("network", "x"),))
  assert run_mai.parse_game_parameters(
      ["network=pigou", "demand=0.5", "num_players=3", "regime_scales=1 2"]
  ) == (("network", "pigou"), ("demand", 0.5), ("num_players", 3),
        ("regime_scales", "1 2"))
  with pytest.raises(ValueError, match="seeds"):
    run_mai.parse_seeds("0,x")
  # --seeds=0,0 was one run summarised as two seeds.
  with pytest.raises(ValueError, match="seeds must be one or more distinct"):
    run_mai.Experiment(seeds=run_mai.parse_seeds("0,0"))
  assert run_mai.parse_seeds("3") == (0, 1, 2)
  assert run_mai.parse_seeds("4,7") == (4, 7)
  assert run_mai.parse_agent_settings(
      ["hidden_sizes=8:8", "jit_compile=false", "discount=0.5"]) == (
          ("hidden_sizes", (8, 8)), ("jit_compile", False), ("discount", 0.5))
  with pytest.raises(ValueError, match="not a bool"):
    run_mai.parse_agent_settings(["jit_compile=maybe"])


def test_binary_rejects_bad_flags_at_once():
  for flag, valid in (("--game=chess", "differential, routing"),
                      ("--algorithms=mai,ppo", "mai, masql, maddpg, ddpg")):
    result = subprocess.run(
        [sys.executable, "-m", "vsg_spiel.eval.run_mai", flag,
         "--out=/nonexistent/never_written"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert valid in result.stderr, result.stderr[-2000:]
