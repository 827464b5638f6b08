"""The Figure 2 runs (eval/continuous_runs.py, the binary eval/run_mai.py):
resuming, outputs, the registry's continuous family, training summaries and
flags."""

import collections
import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.eval import continuous_runs
from vsg_spiel.eval import registry
from vsg_spiel.eval import report_sections

TINY_AGENTS = ("hidden_sizes=4", "batch_size=4", "replay_capacity=32",
               "warmup_steps=2", "importance_samples=2",
               "importance_states=2", "jit_compile=false")
DEFAULT_ALGORITHMS = registry.names(registry.CONTINUOUS, default_for="run_mai")


def tiny(**fields):
  routing = fields.get("game") == "routing"
  return continuous_runs.Experiment(**{
      "seeds": (0,), "episodes": 4, "steps": 3, "block_episodes": 1,
      "agent_settings": TINY_AGENTS, "evaluation_samples": 8,
      "game_parameters": ("split_levels=2",) if routing else (), **fields})


def read_progress(out_dir, experiment, algorithm, seed=0):
  path = os.path.join(continuous_runs.run_directory(
      out_dir, experiment.game, algorithm, seed), continuous_runs.PROGRESS_FILE)
  with open(path, encoding="utf-8") as stream:
    return json.load(stream)


def test_resumed_run_repeats_nothing_and_equals_an_uninterrupted_one(
    tmp_path):
  experiment = tiny(game="routing", algorithms=("mai",))
  interrupted, uninterrupted = str(tmp_path / "a"), str(tmp_path / "b")
  _, complete = continuous_runs.run_experiment(experiment, interrupted,
                                               episode_budget=2)
  assert not complete
  partial = read_progress(interrupted, experiment, "mai")
  assert partial["episodes_done"] == 2 and not partial["finished"]
  records, complete = continuous_runs.run_experiment(experiment, interrupted)
  assert complete
  resumed = records["mai"][0]
  assert resumed["sessions"] == [[0, 2], [2, 4]]
  assert resumed["episode_returns"][:2] == partial["episode_returns"]
  records, _ = continuous_runs.run_experiment(experiment, uninterrupted)
  straight = records["mai"][0]
  assert straight["sessions"] == [[0, 4]]
  assert resumed["episode_returns"] == straight["episode_returns"]
  assert resumed["final"] == straight["final"]
  run_dir = continuous_runs.run_directory(interrupted, "routing", "mai", 0)
  assert sorted(os.listdir(run_dir)) == ["ckpt-4.data-00000-of-00001",
                                         "ckpt-4.index", "progress.json"]
  # A finished run is read back, not trained again.
  before = os.path.getmtime(os.path.join(run_dir, "progress.json"))
  _, trained = continuous_runs.run_one(experiment, "mai", 0, interrupted)
  assert trained == 0
  assert os.path.getmtime(os.path.join(run_dir, "progress.json")) == before
  with pytest.raises(ValueError, match="another configuration"):
    continuous_runs.run_one(tiny(game="routing", algorithms=("mai",),
                                 episodes=5), "mai", 0, interrupted)


def test_unfinished_run_of_another_checkpoint_format_is_refused(tmp_path):
  experiment = tiny(game="differential", algorithms=("mai",))
  out = str(tmp_path)
  continuous_runs.run_experiment(experiment, out, episode_budget=2)
  path = os.path.join(continuous_runs.run_directory(
      out, "differential", "mai", 0), continuous_runs.PROGRESS_FILE)
  progress = read_progress(out, experiment, "mai")
  assert progress["checkpoint_format"] == (
      continuous_common.CHECKPOINT_FORMAT)
  del progress["checkpoint_format"]  # as the runs of format 1 wrote it
  with open(path, "w", encoding="utf-8") as stream:
    json.dump(progress, stream)
  with pytest.raises(ValueError, match="checkpoint format 1, this version "
                     "writes 2.*remove that directory"):
    continuous_runs.run_one(experiment, "mai", 0, out)


@pytest.mark.parametrize("game", continuous_runs.GAMES)
def test_every_algorithm_runs_and_writes_finite_outputs(game, tmp_path):
  experiment = tiny(game=game, episodes=2, steps=2, block_episodes=2)
  assert experiment.algorithms == ("mai", "masql", "maddpg", "ddpg")
  records, complete = continuous_runs.run_experiment(experiment,
                                                     str(tmp_path))
  assert complete
  summary = continuous_runs.write_outputs(experiment, records, str(tmp_path))
  assert set(summary) == set(DEFAULT_ALGORITHMS)
  for entry in summary.values():
    assert np.isfinite(entry["final_return"]["mean"])
    if game == "differential":
      assert 0.0 <= entry["global_optimum_fraction"] <= 1.0
      assert np.isfinite(entry["deterministic_return"]["mean"])
    else:
      assert np.isfinite(entry["max_split_distance"]["mean"])
      assert entry["nash_conv"]["mean"] >= -1e-9
  game_dir = tmp_path / game
  assert (game_dir / continuous_runs.figure_file(game)).stat().st_size > 0
  with open(game_dir / "summary.json", encoding="utf-8") as stream:
    assert set(json.load(stream)["summary"]) == set(DEFAULT_ALGORITHMS)
  assert "| mai |" in (game_dir / "summary.md").read_text()


def test_ablation_entries_equal_mai_with_the_ablated_setting(tmp_path):
  """The registry's mai_marginal and mai_empirical are MAI with one setting
  changed: the same returns as mai with that --agent_settings override."""
  for ablation, override in (("mai_marginal", "policy_form=marginal"),
                             ("mai_empirical", "opponent_model=empirical")):
    entry_run = tiny(algorithms=(ablation,), episodes=3, block_episodes=3)
    override_run = tiny(algorithms=("mai",), episodes=3, block_episodes=3,
                        agent_settings=TINY_AGENTS + (override,))
    name, value = override.split("=")
    assert getattr(entry_run.agent_settings_of(ablation), name) == value
    assert getattr(tiny().agent_settings_of("mai"), name) != value
    by_entry, _ = continuous_runs.run_experiment(entry_run,
                                                 str(tmp_path / ablation))
    by_override, _ = continuous_runs.run_experiment(override_run,
                                                    str(tmp_path / name))
    assert (by_entry[ablation][0]["episode_returns"] ==
            by_override["mai"][0]["episode_returns"])


def test_game_settings_come_from_its_continuous_interface():
  """No default is restated: the horizon and the tuned agent settings are
  the game's own unless overridden."""
  experiment = continuous_runs.Experiment(game="routing", algorithms=("mai",))
  game = experiment.load_game()
  interface = game.continuous_interface()
  assert experiment.steps is None and game.horizon == interface.horizon
  assert experiment.run_config("mai", 0)["steps"] == interface.horizon
  settings = experiment.agent_settings_of("mai")
  for name, value in interface.agent_settings.items():
    assert getattr(settings, name) == value
  overridden = continuous_runs.Experiment(
      game="routing", algorithms=("mai",), steps=7,
      agent_settings=("discount=0.25",))
  assert overridden.load_game().horizon == 7
  assert overridden.agent_settings_of("mai").discount == 0.25


def read_scalars(log_dir):
  """{tag: {step: value}} of the event files below `log_dir`."""
  scalars = collections.defaultdict(dict)
  for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        scalars[value.tag][event.step] = float(
            tf.make_ndarray(value.tensor))
  return scalars


@pytest.mark.parametrize("algorithm", ["mai", "maddpg"])
def test_training_summaries_hold_what_the_run_returned(algorithm, tmp_path):
  episodes = 4
  agent_settings = tuple(item for item in TINY_AGENTS if algorithm == "mai"
                         or not item.startswith("importance"))
  recorded = tiny(algorithms=(algorithm,), block_episodes=2,
                  agent_settings=agent_settings,
                  tensorboard_dir=str(tmp_path / "tensorboard"))
  records, _ = continuous_runs.run_experiment(recorded, str(tmp_path / "a"))
  record = records[algorithm][0]
  # Recording changes nothing in the run, and a run without the flag
  # writes no summaries.
  plain, _ = continuous_runs.run_experiment(
      dataclasses.replace(recorded, tensorboard_dir=None),
      str(tmp_path / "b"))
  assert plain[algorithm][0]["episode_returns"] == record["episode_returns"]
  assert "evaluation_returns" not in plain[algorithm][0]
  assert not glob.glob(str(tmp_path / "b" / "**" / "events.out.tfevents.*"),
                       recursive=True)
  assert glob.glob(str(tmp_path / "tensorboard" / "**" / "events.*"),
                   recursive=True) == glob.glob(str(
                       tmp_path / "tensorboard" / "differential" / algorithm
                       / "seed_0" / "events.*"))
  scalars = read_scalars(str(tmp_path / "tensorboard" / "differential" /
                             algorithm / "seed_0"))
  returns = np.array(record["episode_returns"])
  for player in range(2):
    np.testing.assert_allclose(
        [scalars[f"return/player_{player}"][k] for k in range(1, 5)],
        returns[:, player], rtol=1e-6)
    assert sorted(scalars[f"return/player_{player}"]) == [1, 2, 3, 4]
    evaluation = scalars[f"evaluation_return/player_{player}"]
    assert sorted(evaluation) == [2, 4]
    assert [episode for episode, _ in record["evaluation_returns"]] == [2, 4]
    np.testing.assert_allclose(
        [evaluation[episode] for episode in (2, 4)],
        [returns[player] for _, returns in record["evaluation_returns"]],
        rtol=1e-6)
    # Updates start at acting step max(warm-up, batch size) = 4, in the
    # second episode (3 acting steps each).
    for loss in ("critic", "policy"):
      values = scalars[f"loss/player_{player}/{loss}"]
      assert sorted(values) == list(range(2, episodes + 1))
      assert np.all(np.isfinite(list(values.values())))
  if algorithm == "mai":
    settings = recorded.agent_settings_of("mai")
    # alpha after k episodes of 3 acting steps (annealed after warm-up).
    progress = np.clip((3 * np.arange(1, 5) - settings.warmup_steps)
                       / settings.annealing_steps, 0.0, 1.0)
    np.testing.assert_allclose(
        [scalars["temperature"][k] for k in range(1, 5)],
        settings.initial_temperature * (settings.final_temperature
                                        / settings.initial_temperature)
        ** progress, rtol=1e-5)
    for player, opponent in ((0, 1), (1, 0)):
      values = scalars[f"opponent_model_kl/player_{player}/"
                       f"opponent_{opponent}"]
      assert sorted(values) == [1, 2, 3, 4]
      assert np.all(np.isfinite(list(values.values())))
    assert "loss/player_0/opponent_model" in scalars
  else:
    assert "temperature" not in scalars
    assert not any(tag.startswith("opponent_model_kl") for tag in scalars)


def test_opponent_model_kl_is_the_cross_entropy_of_the_played_actions():
  """The summary's value at hand: -(1/T) sum_t log rho_j(a^j_t | s_t) with
  rho's squashed-Gaussian density written out in numpy."""
  experiment = tiny(algorithms=("mai",))
  game = experiment.load_game()
  environment = continuous_common.ContinuousEnvironment(game)
  agents = registry.get("mai", registry.CONTINUOUS).make(
      environment.spec, experiment.agent_settings_of("mai", game), 0)
  rng = np.random.default_rng(0)
  states = np.eye(4, dtype=np.float32)[:3]
  joint = rng.uniform(-0.9, 0.9, (3, 2)).astype(np.float32)
  outputs = agents[0].opponent_model(states).numpy()
  mean, raw = outputs[:, :1], outputs[:, 1:]
  log_std = -5.0 + 3.5 * (np.tanh(raw) + 1.0)
  pre = np.arctanh(joint[:, 1:])
  expected = (-0.5 * ((pre - mean) / np.exp(log_std))**2 - log_std
              - 0.5 * np.log(2 * np.pi) - np.log1p(-joint[:, 1:]**2))
  np.testing.assert_allclose(
      agents[0].opponent_log_likelihood(states, joint), expected, rtol=1e-5)


def test_report_cells_record_only_when_asked():
  """The Figure 2 cells' configuration (and so the stored cells) is
  unchanged unless --tensorboard_dir is given."""
  settings = report_sections.MaiSectionSettings(num_seeds=1)
  assert all("tensorboard_dir" not in cell.config["experiment"]
             for cell in report_sections._mai_cells(settings))  # pylint: disable=protected-access
  recording = dataclasses.replace(settings, tensorboard_dir="/tmp/x")
  assert all(cell.config["experiment"]["tensorboard_dir"] == "/tmp/x"
             for cell in report_sections._mai_cells(recording))  # pylint: disable=protected-access


def test_report_cell_runs_each_seed_as_a_run_of_its_own_would():
  """A Figure 2 cell runs its seeds one after the other in one process,
  sharing the agents' training step: each seed's record equals that of the
  seed run alone (nothing carries over from the seed before)."""
  experiment = dict(episodes=3, steps=3, agent_settings=TINY_AGENTS,
                    evaluation_samples=8)
  both = report_sections.mai_cell("differential", "mai", [0, 1], experiment)
  alone = report_sections.mai_cell("differential", "mai", [1], experiment)
  assert [record["config"]["seed"] for record in both] == [0, 1]
  assert both[1]["episode_returns"] == alone[0]["episode_returns"]
  assert both[1]["final"] == alone[0]["final"]
  assert both[0]["episode_returns"] != both[1]["episode_returns"]


def test_routing_evaluation_of_the_equilibrium_is_exact():
  """A policy that always plays the exact equilibrium split (on the grid:
  the uniform split of the default game at scale 1 is (1/3, 1/3, 1/3),
  which split_levels=3 contains) has distance 0 and grid NashConv 0 where
  the grid equilibrium is that split."""
  experiment = tiny(game="routing", game_parameters=(
      "regime_scales=1 ", "regime_transition=1 ", "split_levels=3"))
  game = experiment.load_game()
  environment = continuous_common.ContinuousEnvironment(game)

  class Equilibrium:
    stochastic_policy = False

    def actions(self, observations, deterministic=False):
      del deterministic
      return np.zeros((len(observations), 2))  # softmax(0, 0, 0) = 1/3 each

  result = continuous_runs.evaluate(environment, [Equilibrium()] * 2, 4)
  np.testing.assert_allclose(result["split_distances"], [0.0], atol=1e-9)
  assert abs(result["nash_conv"]) < 1e-9


def test_bad_settings_fail_naming_the_valid_values():
  experiment = continuous_runs.Experiment
  with pytest.raises(ValueError, match="differential"):
    experiment(game="chess")
  with pytest.raises(ValueError, match="mai, masql, maddpg, ddpg"):
    experiment(algorithms=("mai", "ppo"))
  with pytest.raises(ValueError, match="learning_rate"):
    experiment(agent_settings=("learning_rat=0.1",))
  with pytest.raises(ValueError, match="importance_samples"):  # MAI's only
    experiment(algorithms=("ddpg",), agent_settings=("importance_samples=4",))
  with pytest.raises(ValueError, match="policy_form must be one of"):
    experiment(agent_settings=("policy_form=joint",))
  with pytest.raises(ValueError, match="network"):
    experiment(game="routing", game_parameters=("network=x",))
  with pytest.raises(ValueError, match="--game_parameters.*name=value"):
    experiment(game="routing", game_parameters=("network",))
  assert continuous_runs.parse_game_parameters(
      ["network=pigou", "demand=0.5", "num_players=3", "regime_scales=1 2"]
  ) == {"network": "pigou", "demand": 0.5, "num_players": 3,
        "regime_scales": "1 2"}
  # Typed by the game's defaults where it has the parameter.
  assert continuous_runs.parse_game_parameters(
      ["regime_scales=1", "demand=2"], {"regime_scales": "1 1.5",
                                        "demand": 1.0}
  ) == {"regime_scales": "1", "demand": 2.0}
  with pytest.raises(ValueError, match="--game_parameters: demand=x"):
    experiment(game="routing", game_parameters=("demand=x",))
  # --seeds=0,0 was one run summarised as two seeds.
  with pytest.raises(ValueError, match="--seeds.*repeats a seed"):
    experiment(seeds=(0, 0))
  with pytest.raises(ValueError, match="--seeds"):
    experiment(seeds=(-1,))
  for name in ("episodes", "steps", "block_episodes", "evaluation_samples"):
    with pytest.raises(ValueError, match=f"--{name}"):
      experiment(**{name: 0})
  assert continuous_runs.parse_agent_settings(
      ["hidden_sizes=8:8", "jit_compile=false", "discount=0.5"], ("mai",)
  ) == {"hidden_sizes": (8, 8), "jit_compile": False, "discount": 0.5}
  with pytest.raises(ValueError, match="not a bool"):
    continuous_runs.parse_agent_settings(["jit_compile=maybe"], ("mai",))


@pytest.mark.parametrize("flags, message", [
    (["--game=chess"], "differential, routing"),
    # One line each: not OpenSpiel's list of every game, not the help.
    (["--game=nowhere"], "--game: unknown game 'nowhere'; allowed: "
     "differential, routing"),
    (["--seeds=0,0"], "--seeds: (0, 0) repeats a seed"),
    (["--algorithms=mai,ppo"], "mai, masql, maddpg, ddpg"),
    # An override none of the algorithms can use, and a flag the binary
    # does not have, are errors.
    (["--algorithms=ddpg", "--agent_settings=importance_samples=4"],
     "importance_samples"),
    (["--iterations=3"], "iterations"),
])
def test_binary_rejects_bad_flags_at_once(flags, message, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.run_mai", *flags,
       f"--out={tmp_path / 'never_written'}"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert "Available games" not in result.stderr
  assert "--episodes:" not in result.stderr  # absl's help
  assert not (tmp_path / "never_written").exists()


_PARSE_ONLY = r"""
import sys
from absl import app
from vsg_spiel.eval import run_mai, settings
try:
  settings.parse(run_mai.RunMaiFlags, ["run_mai"] + sys.argv[1:])
except app.UsageError as error:
  print(f"{error}|{'tensorflow' in sys.modules}")
"""


@pytest.mark.parametrize("flag", ["--episodes=0", "--seeds=0,0",
                                  "--game=nowhere", "--threads=0"])
def test_bad_flag_is_reported_before_tensorflow_loads(flag):
  result = subprocess.run([sys.executable, "-c", _PARSE_ONLY, flag],
                          capture_output=True, text=True, timeout=300,
                          check=False)
  message, loaded = result.stdout.strip().rsplit("|", 1)
  assert message.startswith(flag.split("=")[0]), result.stderr[-2000:]
  assert loaded == "False"


def test_tensorflow_start_lines_are_left_out_unless_asked(tmp_path):
  """The CUDA stubs' lines on a machine without a GPU, which
  TF_CPP_MIN_LOG_LEVEL does not reach, are left out at the default
  verbosity; other writes to stderr meanwhile pass."""
  program = ("import os, sys\n"
             "from vsg_spiel.eval import common\n"
             "common.quiet_tensorflow(sys.argv)\n"
             "with common.quiet_tensorflow_start():\n"
             "  os.write(2, b'I0000 00:00:1796079127.273247 12 "
             "cudart_stub.cc:31] no cuda\\n')\n"
             "  os.write(2, b'WARNING: All log messages before "
             "absl::InitializeLog() is called are written to STDERR\\n')\n"
             "  print('kept', file=sys.stderr)\n")
  env = {key: value for key, value in os.environ.items()
         if key != "TF_CPP_MIN_LOG_LEVEL"}
  quiet = subprocess.run([sys.executable, "-c", program], env=env,
                         capture_output=True, text=True, timeout=300,
                         check=True)
  assert quiet.stderr == "kept\n"
  verbose = subprocess.run([sys.executable, "-c", program, "-v", "1"],
                           env=env, capture_output=True, text=True,
                           timeout=300, check=True)
  assert "cudart_stub" in verbose.stderr and "kept" in verbose.stderr
