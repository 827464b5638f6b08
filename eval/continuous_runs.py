r"""Runs of the continuous-action learners on a game's continuous interface.

What `run_mai` (Figure 2) and the report's Figure 2 cells run: every
algorithm of the registry's CONTINUOUS family (eval/adapters.py: MAI, MASQL,
MADDPG, independent DDPG and MAI's ablations) trained for `episodes`
episodes of `steps` steps on `game.continuous_interface()`, once per seed,
recording each training episode's returns; then each run's final policies
evaluated by the interface's `evaluate` (its docstring says what it
measures), summarised across seeds, plotted and tabulated.

Resuming. Each (algorithm, seed) run lives in OUT/<game>/runs/<algorithm>/
seed_<seed>/: after every block of `block_episodes` episodes the agents'
whole state (networks, optimisers, replay buffers, random generators, step
counters) is written with `tf.train.Checkpoint`, then progress.json
(atomically) names that checkpoint and holds the returns so far. Episode k's
randomness is seeded by (seed, k). A rerun with the same output directory
skips finished runs and continues unfinished ones from their last block, so
no finished episode or seed is repeated and the results equal those of an
uninterrupted run; a run whose configuration differs from the stored one is
an error. progress.json is also the per-run result (with "final" once
finished).

Agent settings are the registry entry's `settings()` (the algorithm's
defaults, or an ablation's), then the game's tuned `agent_settings` (its
continuous interface), then `agent_settings` of the `Experiment`; each
algorithm takes the names its settings have.

Live training curves. With `tensorboard_dir`, each run writes TensorFlow
summaries (`TrainingSummaries`) to tensorboard_dir/<game>/<algorithm>/
seed_<seed>; without it nothing is recorded.
"""

import dataclasses
import functools
import glob
import json
import os
import time

from absl import logging
import numpy as np
import pyspiel

import vsg_spiel
from vsg_spiel.eval import common
from vsg_spiel.eval import registry
from vsg_spiel.eval import settings as settings_lib

# TensorFlow (with the agents' `continuous_common`) is imported where a run
# needs it, so that a bad flag is reported before TensorFlow loads
# (`python -m vsg_spiel.eval.run_mai --episodes=0` answers at once).
# pylint: disable=g-import-not-at-top

setting = settings_lib.setting
CONTINUOUS = registry.CONTINUOUS

# Short names of the paper's games; any registered game with a
# `continuous_interface()` also runs under its own name.
GAMES = {"differential": "python_vsg_differential",
         "routing": "python_vsg_routing"}
# Final returns average the training returns of the last episodes.
FINAL_EPISODES = 10
PROGRESS_FILE = "progress.json"


def figure_file(game):
  """The learning-curve figure's file name of a game of GAMES."""
  return pyspiel.load_game(GAMES[game]).continuous_interface().figure["file"]


def _pairs(items, flag):
  """["name=value", ...] -> [(name, value text), ...]."""
  pairs = []
  for item in items:
    name, separator, value = item.partition("=")
    if not separator or not name:
      raise ValueError(f"--{flag}: {item!r} is not name=value")
    pairs.append((name, value))
  return pairs


def parse_game_parameters(items, defaults=None):
  """["name=value", ...] -> {name: value}: each value of the type of the
  parameter's default in `defaults` (the game's parameters), else an int, a
  float or a string, as pyspiel reads a game string. ValueError naming the
  flag for an item that is not name=value or not of its parameter's type."""
  defaults = defaults or {}
  parameters = {}
  for name, value in _pairs(items, "game_parameters"):
    kinds = ((type(defaults[name]),) if name in defaults else (int, float))
    for kind in kinds:
      try:
        value = {bool: lambda text: {"true": True, "false": False}[
            text.lower()]}.get(kind, kind)(value)
        break
      except (KeyError, ValueError):
        if name in defaults:
          raise ValueError(f"--game_parameters: {name}={value}: not a "
                           f"{kind.__name__}") from None
    parameters[name] = value
  return parameters


def _settings_fields(algorithms):
  """{name: (type of its default value)} of the settings of `algorithms`."""
  types = {}
  for algorithm in algorithms:
    defaults = registry.get(algorithm, CONTINUOUS).settings()
    types.update({field.name: type(getattr(defaults, field.name))
                  for field in dataclasses.fields(defaults)})
  return types


def parse_agent_settings(items, algorithms):
  """["name=value", ...] -> {name: typed value} by the types of the settings
  of `algorithms` (hidden_sizes as 64:64, booleans as true/false).

  Raises:
    ValueError: naming the item and the valid names, or the expected type.
  """
  types = _settings_fields(algorithms)
  overrides = {}
  for name, value in _pairs(items, "agent_settings"):
    if name not in types:
      raise ValueError(f"--agent_settings: unknown {name!r} for the "
                       f"algorithms {list(algorithms)}; valid names: "
                       f"{', '.join(sorted(types))}")
    try:
      if types[name] is tuple:
        value = tuple(int(width) for width in value.split(":"))
      elif types[name] is bool:
        value = {"true": True, "false": False}[value.lower()]
      else:
        value = types[name](value)
    except (KeyError, ValueError):
      raise ValueError(f"--agent_settings: {name}={value}: {value!r} is not "
                       f"a {types[name].__name__}") from None
    overrides[name] = value
  return overrides


def _check_game(game):
  if game in GAMES:
    return
  try:
    common.check_game_name(game)  # before load_game prints every game
    loaded = pyspiel.load_game(game)
  except (ValueError, pyspiel.SpielError, RuntimeError) as error:
    raise ValueError(f"unknown game {game!r}; allowed: "
                     f"{', '.join(GAMES)} or a registered game with a "
                     f"continuous interface") from error
  if not hasattr(loaded, "continuous_interface"):
    raise ValueError(f"game {game!r} has no continuous interface; allowed: "
                     f"{', '.join(GAMES)} or a registered game with one")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What `run_experiment` runs; the defaults are the paper's setting.

  Every field is checked on construction (ValueError naming the field as a
  flag and the allowed values).
  """
  game: str = setting("differential", "The game: differential, routing or "
                      "a registered game with a continuous interface.",
                      check=_check_game)
  game_parameters: tuple[str, ...] = setting(
      (), "Overrides of the game's parameters, name=value (list values "
      "with spaces, e.g. regime_scales=1 1.5); the horizon is --steps.",
      allow_empty=True)
  algorithms: tuple[str, ...] = setting(
      registry.names(CONTINUOUS, default_for="run_mai"),
      "Algorithms to run (the registry's continuous family).",
      choices=lambda: registry.names(CONTINUOUS))
  seeds: tuple[int, ...] = setting(tuple(range(10)), "The seeds: one run "
                                   "per algorithm and seed.", at_least=0)
  episodes: int = setting(200, "Training episodes per run.", at_least=1)
  steps: int | None = setting(None, "Steps per episode, the game's horizon "
                              "(default: the game's own).", at_least=1)
  block_episodes: int = setting(10, "Episodes between checkpoints.",
                                at_least=1)
  evaluation_samples: int = setting(
      256, "Sampled actions per player and state in the final evaluation "
      "(of the games whose evaluation samples).", at_least=1)
  agent_settings: tuple[str, ...] = setting(
      (), "Overrides of the agents' settings, name=value (hidden_sizes as "
      "64:64); each name must be a setting of one of the algorithms.",
      allow_empty=True)
  tensorboard_dir: str | None = setting(
      None, "Write TensorFlow summaries of the training here (nothing is "
      "recorded when unset).")

  def __post_init__(self):
    for name in ("game_parameters", "algorithms", "seeds", "agent_settings"):
      object.__setattr__(self, name, tuple(getattr(self, name)))
    settings_lib.validate(self)
    if len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"--seeds: {self.seeds} repeats a seed; allowed: "
                       f"distinct seeds")
    game = self.load_game()  # Checks the parameters.
    overrides = parse_agent_settings(self.agent_settings, self.algorithms)
    for algorithm in self.algorithms:
      unsupported = registry.get(algorithm, CONTINUOUS).unsupported(game)
      if unsupported:
        raise ValueError(f"--algorithms: {algorithm} cannot run on "
                         f"{self.game}: {unsupported}")
      self._agent_settings(algorithm, game, overrides)  # Checks the values.

  def load_game(self):
    """The OpenSpiel game whose continuous interface the agents play.

    Raises:
      ValueError: naming --game_parameters for bad parameters.
    """
    name = GAMES.get(self.game, self.game)
    parameters = parse_game_parameters(
        self.game_parameters, pyspiel.load_game(name).get_parameters())
    if self.steps is not None:
      parameters["horizon"] = self.steps
    try:
      return pyspiel.load_game(name, parameters)
    except (pyspiel.SpielError, RuntimeError) as error:
      raise ValueError(f"--game_parameters: game {self.game!r} with "
                       f"{parameters}: {error}") from error

  def _agent_settings(self, algorithm, game, overrides):
    defaults = registry.get(algorithm, CONTINUOUS).settings()
    values = {**game.continuous_interface().agent_settings, **overrides}
    names = {field.name for field in dataclasses.fields(defaults)}
    return dataclasses.replace(defaults, **{
        name: value for name, value in values.items() if name in names})

  def agent_settings_of(self, algorithm, game=None):
    """The settings of `algorithm`'s agents: the registry entry's
    `settings()`, then the game's tuned `agent_settings`, then the
    overrides, each where the settings have the name."""
    return self._agent_settings(
        algorithm, game or self.load_game(),
        parse_agent_settings(self.agent_settings, self.algorithms))

  def run_config(self, algorithm, seed, game=None):
    """Everything that determines one run's results (block_episodes does
    not), as stored in its progress.json."""
    game = game or self.load_game()
    config = {"game": self.game, "algorithm": algorithm, "seed": int(seed),
              "episodes": self.episodes,
              "steps": game.continuous_interface().horizon,
              "agent_settings": dataclasses.asdict(
                  self.agent_settings_of(algorithm, game)),
              "game_parameters": game.get_parameters(),
              **game.continuous_interface().config()}
    config["agent_settings"]["hidden_sizes"] = list(
        config["agent_settings"]["hidden_sizes"])
    return config


# ----------------------------------------------------------------------------
# Final evaluation.


class GridGame:
  """The Markov game of a game's grid version, built on first use (it takes
  seconds): `states` and `nash_conv(profile)` for the interfaces'
  `evaluate`."""

  def __init__(self, game):
    self._game = game
    self._markov_game = None

  @property
  def markov_game(self):
    if self._markov_game is None:
      self._markov_game = vsg_spiel.markov_game(self._game)
    return self._markov_game

  @property
  def states(self):
    return self.markov_game.states

  def nash_conv(self, profile):
    return vsg_spiel.nash_conv(self.markov_game, profile)


def evaluate(environment, agents, samples):
  """The final metrics (JSON types) of trained agents: the game interface's
  `evaluate`."""
  return environment.interface.evaluate(agents, samples,
                                        GridGame(environment.game))


# ----------------------------------------------------------------------------
# Live training curves.


class TrainingSummaries:
  """TensorFlow summaries of one run, written to `log_dir`.

  Scalars, each at step = the episode's number (1-based):

    return/player_<i>: player i's return of the training episode, in the
      game's reward units;
    evaluation_return/player_<i>: at the end of each block, player i's return
      of one episode of the deterministic policies (the modes; the agents'
      `step` with is_evaluation=True) on an environment of its own whose
      randomness is that of training episode 0; it changes no agent state;
    loss/player_<i>/<name>: the mean over the episode's gradient updates of
      agent i's loss `name` (the keys of its `losses`: critic, policy and,
      for MAI, opponent_model, reward_estimate, opponent_critic), in scaled
      reward units (absent in episodes without updates);
    temperature: alpha after the episode (MAI, MASQL; the annealed
      temperature, in scaled reward units, the same for every agent);
    opponent_model_kl/player_<i>/opponent_<j>: MAI: the cross-entropy
      -(1/T) sum_t log rho_j(a^j_t | s_t) of the opponent model rho of agent
      i at the episode's states s_t and opponent j's played actions a^j_t
      (nats per step). It is eq. 6's KL(P(tau_j) || rho_j(tau_j)) between
      the opponents' observed actions and the model, up to the data's own
      entropy, which does not depend on rho (for continuous actions the KL
      of the empirical distribution itself is infinite); it is also the
      loss the empirical opponent model minimises.

  `play_episode` replaces `continuous_common.play_episode` in a run that
  records; its returns are the same. The scalars are written with
  TensorFlow's own `tf.summary.write` and the metadata of TensorBoard's
  scalars plugin (what `tf.summary.scalar` writes), so recording needs no
  TensorBoard install; viewing them does.

  Raises:
    tf.errors.OpError: if `log_dir` cannot be written.
  """

  def __init__(self, log_dir, environment, agents):
    import tensorflow as tf
    from vsg_spiel.algorithms import continuous_common
    self._writer = tf.summary.create_file_writer(log_dir)
    self._environment = environment
    self._evaluation_environment = continuous_common.ContinuousEnvironment(
        environment.game, environment.seed)
    self._agents = agents
    self._losses = [[] for _ in agents]
    for agent, log in zip(agents, self._losses):
      agent.on_losses = log.append

  def play_episode(self, episode):
    """Plays training episode number `episode` (1-based), records it and
    returns each player's return, shape (N,)."""
    from vsg_spiel.algorithms import continuous_common
    trajectory = []
    returns = continuous_common.play_episode(self._environment, self._agents,
                                             trajectory=trajectory)
    states = np.stack([observation for observation, _ in trajectory])
    joint = np.stack([actions.reshape(-1) for _, actions in trajectory])
    with self._writer.as_default(step=episode):
      for player, value in enumerate(returns):
        _scalar(f"return/player_{player}", value)
      for player, (agent, log) in enumerate(zip(self._agents, self._losses)):
        for name, value in _mean_losses(log).items():
          _scalar(f"loss/player_{player}/{name}", value)
        log.clear()
        if hasattr(agent, "opponent_log_likelihood"):
          cross_entropy = -np.mean(
              agent.opponent_log_likelihood(states, joint), axis=0)
          for index, opponent in enumerate(agent.opponents):
            _scalar(f"opponent_model_kl/player_{player}/opponent_{opponent}",
                    cross_entropy[index])
      if self._agents[0].stochastic_policy:
        agent = self._agents[0]
        _scalar("temperature", continuous_common.annealed_temperature(
            agent.settings, agent.acting_steps))
    return returns

  def evaluation(self, episode):
    """Plays and records the deterministic policies' episode after training
    episode `episode`; returns each player's return, shape (N,)."""
    from vsg_spiel.algorithms import continuous_common
    self._evaluation_environment.episodes_started = 0
    returns = continuous_common.play_episode(
        self._evaluation_environment, self._agents, is_evaluation=True)
    with self._writer.as_default(step=episode):
      for player, value in enumerate(returns):
        _scalar(f"evaluation_return/player_{player}", value)
    return returns

  def close(self):
    self._writer.close()
    for agent in self._agents:
      agent.on_losses = None


@functools.cache
def _scalar_metadata():
  from tensorflow.core.framework import summary_pb2
  return summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(
          plugin_name="scalars"))


def _scalar(tag, value):
  """One float32 scalar at the default writer's step."""
  import tensorflow as tf
  tf.summary.write(tag, tf.cast(value, tf.float32),
                   metadata=_scalar_metadata())


def _mean_losses(loss_log):
  """{name: mean over the updates} of a list of losses dicts."""
  if not loss_log:
    return {}
  return {name: float(np.mean([losses[name].numpy() for losses in loss_log]))
          for name in loss_log[0]}


# ----------------------------------------------------------------------------
# Runs.


def write_quietly(checkpoint, path):
  """`checkpoint.write(path)` without TensorFlow's absl INFO line per save
  ("Sharding callback duration"), which would sit among the progress lines;
  at -v 1 (absl DEBUG) it is shown."""
  verbosity = logging.get_verbosity()
  if verbosity <= logging.INFO:
    logging.set_verbosity(logging.WARNING)
  try:
    checkpoint.write(path)
  finally:
    logging.set_verbosity(verbosity)


def run_directory(out_dir, game, algorithm, seed):
  return os.path.join(out_dir, game, "runs", algorithm, f"seed_{seed}")


def _remove_checkpoints(run_dir, keep):
  """Deletes checkpoint files of `run_dir` other than prefix `keep`."""
  for path in glob.glob(os.path.join(run_dir, "ckpt-*")):
    if not os.path.basename(path).startswith(keep + "."):
      os.remove(path)


def _read_progress(path, config, run_dir):
  """The stored progress of a run, or None; ValueError if it was another
  configuration's."""
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as stream:
    progress = json.load(stream)
  if common.to_json(progress["config"]) != config:
    raise ValueError(
        f"{run_dir} holds a run with another configuration; use another "
        f"--out or remove it. Stored: {progress['config']}")
  return progress


def run_one(experiment, algorithm, seed, out_dir, episode_budget=None):
  """Trains, or resumes, one (algorithm, seed) run.

  Trains whole blocks of `block_episodes` until the run is finished or, with
  `episode_budget`, until at least that many episodes were trained in this
  call. Returns (progress record, episodes trained in this call); the record
  holds "final" once the run is finished and, with `tensorboard_dir`,
  "evaluation_returns": [[episode, returns per player], ...] of the blocks
  trained while recording.
  """
  import tensorflow as tf
  from vsg_spiel.algorithms import continuous_common
  run_dir = run_directory(out_dir, experiment.game, algorithm, seed)
  progress_path = os.path.join(run_dir, PROGRESS_FILE)
  game = experiment.load_game()
  config = common.to_json(experiment.run_config(algorithm, seed, game))
  progress = _read_progress(progress_path, config, run_dir)
  if progress and progress["finished"]:
    return progress, 0
  if progress and progress.get("checkpoint_format") != (
      continuous_common.CHECKPOINT_FORMAT):
    raise ValueError(
        f"{run_dir} holds an unfinished run checkpointed by another version "
        f"of the agents (checkpoint format "
        f"{progress.get('checkpoint_format', 1)}, this version writes "
        f"{continuous_common.CHECKPOINT_FORMAT}); remove that directory to "
        f"train the run again (finished runs are read as they are)")
  environment = continuous_common.ContinuousEnvironment(
      game, seed, first_episode=progress["episodes_done"] if progress else 0)
  agents = registry.get(algorithm, CONTINUOUS).make(
      environment.spec, experiment.agent_settings_of(algorithm, game), seed)
  checkpoint = tf.train.Checkpoint(agents=agents)
  if progress:
    checkpoint.read(os.path.join(run_dir, progress["checkpoint"])
                    ).assert_existing_objects_matched()
  else:
    progress = {"config": json.loads(config),
                "checkpoint_format": continuous_common.CHECKPOINT_FORMAT,
                "episodes_done": 0,
                "episode_returns": [], "sessions": [], "train_seconds": 0.0,
                "checkpoint": None, "finished": False}
  summaries = None
  if experiment.tensorboard_dir:
    summaries = TrainingSummaries(os.path.join(
        experiment.tensorboard_dir, experiment.game, algorithm,
        f"seed_{seed}"), environment, agents)
  first = progress["episodes_done"]
  trained = 0
  try:
    while progress["episodes_done"] < experiment.episodes and (
        episode_budget is None or trained < episode_budget):
      start = time.perf_counter()
      block_end = min(progress["episodes_done"] + experiment.block_episodes,
                      experiment.episodes)
      for episode in range(progress["episodes_done"], block_end):
        returns = (summaries.play_episode(episode + 1) if summaries else
                   continuous_common.play_episode(environment, agents))
        progress["episode_returns"].append(returns.tolist())
      progress["train_seconds"] += time.perf_counter() - start
      if summaries:
        progress.setdefault("evaluation_returns", []).append(
            [block_end, summaries.evaluation(block_end).tolist()])
      trained += block_end - progress["episodes_done"]
      prefix = f"ckpt-{block_end}"
      write_quietly(checkpoint, os.path.join(run_dir, prefix))
      progress["episodes_done"] = block_end
      progress["checkpoint"] = prefix
      sessions = progress["sessions"]
      if not sessions or sessions[-1][0] != first:
        sessions.append([first, block_end])
      sessions[-1][1] = block_end
      if block_end == experiment.episodes:
        progress["final"] = evaluate(environment, agents,
                                     experiment.evaluation_samples)
        progress["finished"] = True
      common.atomic_write_json(progress_path, progress)
      _remove_checkpoints(run_dir, prefix)
  finally:
    if summaries:
      summaries.close()
  return progress, trained


def run_experiment(experiment, out_dir, episode_budget=None):
  """Runs (or resumes) every (algorithm, seed) run of an `Experiment`.

  Args:
    experiment: an `Experiment`.
    out_dir: the output directory (runs go to out_dir/<game>/runs).
    episode_budget: stop once at least this many episodes were trained in
      this call (at a block boundary); None runs everything.

  Returns:
    (records, complete): records[algorithm] lists the progress records of
    the finished runs in seed order; complete says whether all finished.
  """
  records = {algorithm: [] for algorithm in experiment.algorithms}
  complete = True
  for algorithm in experiment.algorithms:
    for seed in experiment.seeds:
      if episode_budget is not None and episode_budget <= 0:
        complete = False
        continue
      record, trained = run_one(experiment, algorithm, seed, out_dir,
                                episode_budget)
      logging.info("%s seed %d: %d/%d episodes (%d now), %.1f s of training",
                   algorithm, seed, record["episodes_done"],
                   experiment.episodes, trained, record["train_seconds"])
      if episode_budget is not None:
        episode_budget -= trained
      if record["finished"]:
        records[algorithm].append(record)
      else:
        complete = False
  return records, complete


# ----------------------------------------------------------------------------
# Summaries, figure and files.


def _interface(experiment):
  return experiment.load_game().continuous_interface()


def _mean_std(values):
  """Mean, standard deviation and the 95% bootstrap interval of the mean
  across seeds (the first axis; `common.bootstrap_interval`)."""
  values = np.asarray(values, dtype=np.float64)
  interval = common.bootstrap_interval(values)
  return {"mean": values.mean(axis=0).tolist(),
          "std": values.std(axis=0).tolist(),
          "interval": {key: np.asarray(value).tolist()
                       if value is not None and key != "note" else value
                       for key, value in interval.items()}}


def summarize(experiment, records):
  """Per algorithm: final returns and the interface's summary metrics of the
  final evaluation across seeds."""
  metrics = _interface(experiment).summary_metrics
  summary = {}
  for algorithm, runs in records.items():
    if not runs:
      continue
    final_returns = [np.mean(np.asarray(run["episode_returns"])
                             [-FINAL_EPISODES:]) for run in runs]
    entry = {"seeds": [run["config"]["seed"] for run in runs],
             "final_return": _mean_std(final_returns),
             "train_seconds": _mean_std([run["train_seconds"]
                                         for run in runs])}
    for name, final_name, kind, _ in metrics:
      if final_name is None:
        continue
      values = [run["final"][final_name] for run in runs]
      entry[name] = {"fraction": lambda v: float(np.mean(v)),
                     "spread": _mean_std, "per_seed": list}[kind](values)
    summary[algorithm] = entry
  return summary


def plot_learning_curves(experiment, records, path):
  """Figure 2a/2b: the mean across seeds per episode of the interface's
  learning curve, with its 95% bootstrap band (none with 1 seed)."""
  interface = _interface(experiment)
  plt = common.pyplot()
  figure, axes = plt.subplots(figsize=(6.4, 4.2))
  for algorithm, runs in records.items():
    if not runs:
      continue
    values = np.stack([interface.curve(run["episode_returns"])
                       for run in runs])
    episodes = np.arange(1, values.shape[1] + 1)
    band = common.bootstrap_interval(values)
    title = registry.get(algorithm, CONTINUOUS).title
    axes.plot(episodes, values.mean(axis=0),
              label=f"{title} ({len(runs)} seeds)")
    if band["low"] is not None:
      axes.fill_between(episodes, band["low"], band["high"], alpha=0.2)
  axes.set_xlabel("episode")
  axes.set_ylabel(interface.figure["ylabel"])
  axes.set_title(interface.figure["title"])
  if interface.figure["ylim_bottom"] is not None:
    axes.set_ylim(bottom=interface.figure["ylim_bottom"])
  axes.legend()
  axes.grid(alpha=0.3)
  common.save_figure(figure, path)


def markdown(experiment, summary):
  """The summary table: the interface's summary metrics that have a header,
  in its order (final_return is the mean training return of the last
  FINAL_EPISODES episodes)."""
  interface = _interface(experiment)
  columns = [(name, kind, header) for name, _, kind, header
             in interface.summary_metrics if header is not None]

  def cell(value, kind):
    if kind == "fraction":
      return f"{value:.0%}"
    interval = value.get("interval", {})
    if interval.get("low") is None:
      return f"{value['mean']:.3f} (1 seed)"
    return (f"{value['mean']:.3f} [{interval['low']:.3f}, "
            f"{interval['high']:.3f}]")

  headers = (["algorithm", "seeds"] + [
      f"{header} (last {FINAL_EPISODES} episodes)"
      if name == "final_return" else header for name, _, header in columns]
             + ["seconds per run"])
  rows = [[name, len(entry["seeds"])]
          + [cell(entry[metric], kind) for metric, kind, _ in columns]
          + [cell(entry["train_seconds"], "spread")]
          for name, entry in summary.items()]
  return (f"# {interface.figure['caption']}\n\n{experiment.episodes} "
          f"episodes x {interface.horizon} steps per run; numbers are means "
          "across seeds with their 95% bootstrap interval [low, high] "
          f"({common.BOOTSTRAP_METHOD}, {common.BOOTSTRAP_RESAMPLES} "
          "resamples, seeded; bands in the figure likewise). With few seeds "
          "the interval under-covers (with 2 it is the seeds' range); with "
          "1 seed there is none.\n\n"
          + common.markdown_table(headers, rows)
          + f"\n\n![learning curves]({interface.figure['file']})\n")


def write_outputs(experiment, records, out_dir):
  """Writes OUT/<game>/{figure, summary.json, summary.md}; returns the
  summary."""
  game_dir = os.path.join(out_dir, experiment.game)
  summary = summarize(experiment, records)
  plot_learning_curves(experiment, records, os.path.join(
      game_dir, _interface(experiment).figure["file"]))
  common.atomic_write_json(os.path.join(game_dir, "summary.json"), {
      "experiment": dataclasses.asdict(experiment), "summary": summary})
  common.atomic_write_text(os.path.join(game_dir, "summary.md"),
                           markdown(experiment, summary))
  return summary
