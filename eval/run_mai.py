r"""MAI and the paper's baselines on the continuous games (Figure 2).

  python -m vsg_spiel.eval.run_mai --game=differential --out=run_mai_out
  python -m vsg_spiel.eval.run_mai --game=routing --out=run_mai_out

trains every algorithm of `--algorithms` (MAI, MASQL, MADDPG, independent
DDPG; vsg_spiel.algorithms) for `--episodes` episodes of `--steps` steps on
the game's continuous interface (`game.continuous_interface()`), once per
seed, and records each training episode's returns. After training, each
run's final policies are evaluated by the interface's `evaluate`:

  differential  the deterministic joint action at every step (the modes of
                the policies; for MAI, of rho and of pi given rho's mode), its
                return, and whether it lies within 1.0 of the global optimum
                (5, 5) at every step, the seed's "final joint action at the
                global optimum" (or of the local optimum (-5, -5)), and at
                what fraction of the steps;
  routing       at every Markov state (step, regime) `--evaluation_samples`
                actions per player (the deterministic action for MADDPG and
                DDPG, whose policies are deterministic): the mean split per
                regime and its Euclidean distance to the exact equilibrium
                split, and the NashConv of the policies discretised onto the
                grid game (split_levels of `--game_parameters`).

`--game` is "differential", "routing" or the name of any registered game with
a continuous interface; `--game_parameters=name=value,...` overrides its
parameters (the horizon is `--steps`).

Resuming. Each (algorithm, seed) run lives in OUT/<game>/runs/<algorithm>/
seed_<seed>/: after every block of `--block_episodes` episodes the agents'
whole state (networks, optimisers, replay buffers, random generators, step
counters) is written with `tf.train.Checkpoint`, then progress.json
(atomically) names that checkpoint and holds the returns so far. Episode k's
randomness is seeded by (seed, k). A rerun with the same --out skips
finished runs and continues unfinished ones from their last block, so no
finished episode or seed is repeated and the results equal those of an
uninterrupted run; a run whose configuration differs from the stored one is
an error. progress.json is also the per-run result (with "final" once
finished).

Agent settings (each algorithm's `Settings`) are its defaults, then the
game's tuned `agent_settings` (in its continuous interface), then
`--agent_settings=key=value,...`; each algorithm takes the names its settings
have. `--agent_settings=opponent_model=empirical` runs MAI's ablation whose
opponent model is fitted to the opponents' observed actions instead of
Prop. 5.9's variational optimum; `policy_form=marginal` the ablation whose
policy ignores the predicted opponent action.

Outputs in OUT/<game>/: the learning curves (the interface's figure file,
e.g. figure_2a_differential.png; mean and standard deviation across seeds),
summary.json and summary.md, and the per-run progress.json files.
"""

import dataclasses
import glob
import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pyspiel
import tensorflow as tf

import vsg_spiel
from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms import ddpg
from vsg_spiel.algorithms import maddpg
from vsg_spiel.algorithms import mai
from vsg_spiel.algorithms import masql
from vsg_spiel.eval import common

FLAGS = flags.FLAGS

ALGORITHMS = {"mai": mai, "masql": masql, "maddpg": maddpg, "ddpg": ddpg}
# Short names of the paper's games; any registered game with a
# `continuous_interface()` also runs under its own name.
GAMES = {"differential": "python_vsg_differential",
         "routing": "python_vsg_routing"}
FIGURES = {name: pyspiel.load_game(game).continuous_interface().figure["file"]
           for name, game in GAMES.items()}
# Final returns average the training returns of the last episodes.
FINAL_EPISODES = 10
PROGRESS_FILE = "progress.json"


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What `run_experiment` runs; the defaults are the paper's setting.

  Attributes:
    game: a name of GAMES, or a registered game's short name; the game must
      have a `continuous_interface()`.
    algorithms: names from ALGORITHMS.
    seeds: one run per algorithm and seed.
    episodes, steps: training episodes per run and steps per episode (the
      game's horizon).
    block_episodes: episodes between checkpoints.
    agent_overrides: (name, value) pairs replacing agent settings; every name
      must be a setting of at least one of the algorithms.
    evaluation_samples: sampled actions per player and state in the final
      evaluation (of the games whose evaluation samples).
    game_parameters: (name, value) pairs replacing the game's defaults.
  """
  game: str = "differential"
  algorithms: tuple = tuple(ALGORITHMS)
  seeds: tuple = tuple(range(10))
  episodes: int = 200
  steps: int = 25
  block_episodes: int = 10
  agent_overrides: tuple = ()
  evaluation_samples: int = 256
  game_parameters: tuple = ()

  def __post_init__(self):
    object.__setattr__(self, "algorithms", tuple(self.algorithms))
    object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
    for name in ("agent_overrides", "game_parameters"):
      object.__setattr__(self, name, tuple(
          (str(key), value) for key, value in getattr(self, name)))
    unknown = [name for name in self.algorithms if name not in ALGORITHMS]
    if unknown or not self.algorithms:
      raise ValueError(f"algorithms: unknown {unknown}; valid values: "
                       f"{', '.join(ALGORITHMS)}")
    if (not self.seeds or min(self.seeds) < 0
        or len(set(self.seeds)) != len(self.seeds)):
      raise ValueError(f"seeds must be one or more distinct integers >= 0, "
                       f"got {self.seeds}")
    for name in ("episodes", "steps", "block_episodes", "evaluation_samples"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    valid = set()
    for algorithm in self.algorithms:
      valid.update(field.name for field in dataclasses.fields(
          ALGORITHMS[algorithm].Settings))
    unknown = [name for name, _ in self.agent_overrides if name not in valid]
    if unknown:
      raise ValueError(f"agent settings: unknown {unknown}; valid names: "
                       f"{', '.join(sorted(valid))}")
    game = self.load_game()  # Checks the game and its parameters.
    for algorithm in self.algorithms:
      self.agent_settings(algorithm, game)  # Checks the values.

  def load_game(self):
    """The OpenSpiel game whose continuous interface the agents play.

    Raises:
      ValueError: for an unknown game, bad parameters or a game without a
        continuous interface.
    """
    name = GAMES.get(self.game, self.game)
    try:
      game = pyspiel.load_game(name, {**dict(self.game_parameters),
                                      "horizon": self.steps})
    except (pyspiel.SpielError, RuntimeError) as error:
      raise ValueError(f"game {self.game!r} with parameters "
                       f"{dict(self.game_parameters)}: {error} (games: "
                       f"{', '.join(GAMES)} or a registered game with a "
                       f"continuous interface)") from error
    if not hasattr(game, "continuous_interface"):
      raise ValueError(f"game {self.game!r} has no continuous interface; "
                       f"valid games: {', '.join(GAMES)}")
    return game

  def agent_settings(self, algorithm, game=None):
    """The algorithm's `Settings`: its defaults, then the game's tuned
    `agent_settings`, then the overrides, each where the algorithm has it."""
    settings_class = ALGORITHMS[algorithm].Settings
    names = {field.name for field in dataclasses.fields(settings_class)}
    interface = (game or self.load_game()).continuous_interface()
    values = {**interface.agent_settings, **dict(self.agent_overrides)}
    return settings_class(**{name: value for name, value in values.items()
                             if name in names})

  def run_config(self, algorithm, seed):
    """Everything that determines one run's results (block_episodes does
    not), as stored in its progress.json."""
    game = self.load_game()
    config = {"game": self.game, "algorithm": algorithm, "seed": int(seed),
              "episodes": self.episodes, "steps": self.steps,
              "agent_settings": dataclasses.asdict(
                  self.agent_settings(algorithm, game)),
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
# Runs.


def run_directory(out_dir, game, algorithm, seed):
  return os.path.join(out_dir, game, "runs", algorithm, f"seed_{seed}")


def _remove_checkpoints(run_dir, keep):
  """Deletes checkpoint files of `run_dir` other than prefix `keep`."""
  for path in glob.glob(os.path.join(run_dir, "ckpt-*")):
    if not os.path.basename(path).startswith(keep + "."):
      os.remove(path)


def run_one(experiment, algorithm, seed, out_dir, episode_budget=None):
  """Trains, or resumes, one (algorithm, seed) run.

  Trains whole blocks of `block_episodes` until the run is finished or, with
  `episode_budget`, until at least that many episodes were trained in this
  call. Returns (progress record, episodes trained in this call); the record
  holds "final" once the run is finished.
  """
  run_dir = run_directory(out_dir, experiment.game, algorithm, seed)
  progress_path = os.path.join(run_dir, PROGRESS_FILE)
  config = common.to_json(experiment.run_config(algorithm, seed))
  progress = None
  if os.path.exists(progress_path):
    with open(progress_path, encoding="utf-8") as stream:
      progress = json.load(stream)
    if common.to_json(progress["config"]) != config:
      raise ValueError(
          f"{run_dir} holds a run with another configuration; use another "
          f"--out or remove it. Stored: {progress['config']}")
    if progress["finished"]:
      return progress, 0
  game = experiment.load_game()
  environment = continuous_common.ContinuousEnvironment(
      game, seed, first_episode=progress["episodes_done"] if progress else 0)
  agents = ALGORITHMS[algorithm].make_agents(
      environment.spec, experiment.agent_settings(algorithm, game), seed)
  checkpoint = tf.train.Checkpoint(agents=agents)
  if progress:
    checkpoint.read(os.path.join(run_dir, progress["checkpoint"])
                    ).assert_existing_objects_matched()
  else:
    progress = {"config": json.loads(config), "episodes_done": 0,
                "episode_returns": [], "sessions": [], "train_seconds": 0.0,
                "checkpoint": None, "finished": False}
  first = progress["episodes_done"]
  trained = 0
  while progress["episodes_done"] < experiment.episodes and (
      episode_budget is None or trained < episode_budget):
    start = time.perf_counter()
    block_end = min(progress["episodes_done"] + experiment.block_episodes,
                    experiment.episodes)
    for _ in range(progress["episodes_done"], block_end):
      progress["episode_returns"].append(
          continuous_common.play_episode(environment, agents).tolist())
    progress["train_seconds"] += time.perf_counter() - start
    trained += block_end - progress["episodes_done"]
    prefix = f"ckpt-{block_end}"
    checkpoint.write(os.path.join(run_dir, prefix))
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
  return progress, trained


def run_experiment(settings, out_dir, episode_budget=None):
  """Runs (or resumes) every (algorithm, seed) run of `settings`.

  Args:
    settings: an `Experiment`, or a dict of its fields.
    out_dir: the output directory (runs go to out_dir/<game>/runs).
    episode_budget: stop once at least this many episodes were trained in
      this call (at a block boundary); None runs everything.

  Returns:
    (records, complete): records[algorithm] lists the progress records of
    the finished runs in seed order; complete says whether all finished.
  """
  experiment = (settings if isinstance(settings, Experiment) else
                Experiment(**settings))
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
    axes.plot(episodes, values.mean(axis=0),
              label=f"{algorithm.upper()} ({len(runs)} seeds)")
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
          f"episodes x {experiment.steps} steps per run; numbers are means "
          "across seeds with their 95% bootstrap interval [low, high] "
          f"({common.BOOTSTRAP_METHOD}, {common.BOOTSTRAP_RESAMPLES} "
          "resamples, seeded; bands in the figure likewise). With few seeds "
          "the interval under-covers (with 2 it is the seeds' range); with "
          "1 seed there is none.\n\n"
          + common.markdown_table(headers, rows)
          + f"\n\n![learning curves]({interface.figure['file']})\n")


def write_outputs(settings, records, out_dir):
  """Writes OUT/<game>/{figure, summary.json, summary.md}; returns the
  summary."""
  experiment = (settings if isinstance(settings, Experiment) else
                Experiment(**settings))
  game_dir = os.path.join(out_dir, experiment.game)
  summary = summarize(experiment, records)
  plot_learning_curves(experiment, records, os.path.join(
      game_dir, _interface(experiment).figure["file"]))
  common.atomic_write_json(os.path.join(game_dir, "summary.json"), {
      "experiment": dataclasses.asdict(experiment), "summary": summary})
  common.atomic_write_text(os.path.join(game_dir, "summary.md"),
                           markdown(experiment, summary))
  return summary


# ----------------------------------------------------------------------------
# The binary.


def parse_seeds(text):
  """"10" -> seeds 0..9; "0,3,7" -> those seeds."""
  items = [item.strip() for item in str(text).split(",") if item.strip()]
  try:
    numbers = [int(item) for item in items]
  except ValueError:
    raise ValueError(f"--seeds must be a count or a comma-separated list of "
                     f"integers >= 0, got {text!r}") from None
  if len(numbers) == 1:
    if numbers[0] < 1:
      raise ValueError(f"--seeds count must be >= 1, got {text!r}")
    return tuple(range(numbers[0]))
  return tuple(numbers)


def settings_types():
  """The type of every agent setting of any algorithm, by name."""
  types = {}
  for module in ALGORITHMS.values():
    defaults = module.Settings()
    types.update({field.name: type(getattr(defaults, field.name))
                  for field in dataclasses.fields(defaults)})
  return types


def parse_agent_settings(items):
  """["name=value", ...] -> ((name, typed value), ...) by the settings'
  types."""
  types = settings_types()
  overrides = []
  for item in items:
    name, separator, value = item.partition("=")
    if not separator or name not in types:
      raise ValueError(f"--agent_settings: {item!r} is not name=value with a "
                       f"name from {', '.join(types)}")
    try:
      if types[name] is tuple:
        value = tuple(int(width) for width in value.split(":"))
      elif types[name] is bool:
        value = {"true": True, "false": False}[value.lower()]
      else:
        value = types[name](value)
    except (KeyError, ValueError):
      raise ValueError(f"--agent_settings: {item!r}: {value!r} is not a "
                       f"{types[name].__name__}") from None
    overrides.append((name, value))
  return tuple(overrides)


def parse_game_parameters(items):
  """["name=value", ...] -> ((name, value), ...), each value an int, a
  float or else a string, as pyspiel reads a game string."""
  parameters = []
  for item in items:
    name, separator, value = item.partition("=")
    if not separator or not name:
      raise ValueError(f"--game_parameters: {item!r} is not name=value")
    for kind in (int, float):
      try:
        value = kind(value)
        break
      except ValueError:
        pass
    parameters.append((name, value))
  return tuple(parameters)


def define_flags():
  """The binary's flags (defined only when it runs as a program, so that
  other modules can import its functions)."""
  defaults = Experiment()
  flags.DEFINE_string("game", defaults.game,
                      f"The game: {', '.join(GAMES)} or a registered game "
                      f"with a continuous interface.")
  flags.DEFINE_list("game_parameters", [],
                    "Overrides of the game's parameters, name=value (lists "
                    "with spaces, e.g. regime_scales=1 1.5).")
  flags.DEFINE_list("algorithms", list(defaults.algorithms),
                    f"Algorithms to run, from {', '.join(ALGORITHMS)}.")
  flags.DEFINE_string("seeds", "10", "A seed count (seeds 0..n-1) or a "
                      "comma-separated list of seeds.")
  flags.DEFINE_integer("episodes", defaults.episodes,
                       "Training episodes per run.", lower_bound=1)
  flags.DEFINE_integer("steps", defaults.steps,
                       "Steps per episode (the game's horizon).",
                       lower_bound=1)
  flags.DEFINE_integer("block_episodes", defaults.block_episodes,
                       "Episodes between checkpoints.", lower_bound=1)
  flags.DEFINE_integer("evaluation_samples", defaults.evaluation_samples,
                       "Sampled actions per player and state in the final "
                       "evaluation (routing).", lower_bound=1)
  flags.DEFINE_list("agent_settings", [],
                    "Overrides of the agents' settings, name=value "
                    "(hidden_sizes as 64:64), from "
                    + ", ".join(settings_types()) + ".")
  flags.DEFINE_string("out", "run_mai_out", "Output directory.")
  flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op "
                       "threads.", lower_bound=1)


def experiment_from_flags():
  """The `Experiment` of the flags; a bad value fails at once, naming the
  flag and the valid values."""
  try:
    return Experiment(
        game=FLAGS.game, algorithms=tuple(FLAGS.algorithms),
        seeds=parse_seeds(FLAGS.seeds), episodes=FLAGS.episodes,
        steps=FLAGS.steps, block_episodes=FLAGS.block_episodes,
        agent_overrides=parse_agent_settings(FLAGS.agent_settings),
        evaluation_samples=FLAGS.evaluation_samples,
        game_parameters=parse_game_parameters(FLAGS.game_parameters))
  except ValueError as error:
    raise app.UsageError(str(error)) from error


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  experiment = experiment_from_flags()
  tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
  tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  start = time.perf_counter()
  records, complete = run_experiment(experiment, FLAGS.out)
  summary = write_outputs(experiment, records, FLAGS.out)
  print(markdown(experiment, summary))
  print(f"{'complete' if complete else 'incomplete'}: wrote "
        f"{os.path.join(FLAGS.out, experiment.game)} in "
        f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  define_flags()
  app.run(main)
