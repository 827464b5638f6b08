r"""MAI and the paper's baselines on the continuous games (Figure 2).

  python -m vsg_spiel.eval.run_mai --game=differential --out=run_mai_out
  python -m vsg_spiel.eval.run_mai --game=routing --out=run_mai_out

trains every algorithm of `--algorithms` (MAI, MASQL, MADDPG, independent
DDPG; vsg_spiel.algorithms) for `--episodes` episodes of `--steps` steps on
the game's continuous interface, once per seed, and records each training
episode's returns. After training, each run's final policies are evaluated:

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
                split (`RoutingModel.equilibrium`, the potential's minimiser);
                and the NashConv (`vsg_spiel.nash_conv`) of the policies
                discretised onto the grid game python_vsg_routing with
                `--routing_split_levels`: each sampled split counts for its
                nearest grid split.

Resuming. Each (algorithm, seed) run lives in OUT/<game>/runs/<algorithm>/
seed_<seed>/: after every block of `--block_episodes` episodes the agents'
whole state (networks, optimisers, replay buffers, random generators, step
counters) is written with `tf.train.Checkpoint`, then progress.json
(atomically) names that checkpoint and holds the returns so far. Episode k's
demand regimes are seeded by (seed, k). A rerun with the same --out skips
finished runs and continues unfinished ones from their last block, so no
finished episode or seed is repeated and the results equal those of an
uninterrupted run; a run whose configuration differs from the stored one is
an error. progress.json is also the per-run result (with "final" once
finished).

Agent settings (`continuous_common.Settings`) are the game's defaults in
GAME_AGENT_SETTINGS, overridden by `--agent_settings=key=value,...`. MAI's
opponent reward is "shared" on the differential game, whose players have
identical rewards (its GameType says so, so an agent knows its opponent's
reward without observing it), and "estimated" (Algorithm 3) on the routing
game. `--agent_settings=opponent_model=empirical` runs MAI's ablation whose
opponent model is fitted to the opponents' observed actions instead of
Prop. 5.9's variational optimum.

Outputs in OUT/<game>/: figure_2a_differential.png or figure_2b_routing.png
(learning curves: mean and standard deviation across seeds), summary.json
and summary.md, and the per-run progress.json files.
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
GAMES = ("differential", "routing")
FIGURES = {"differential": "figure_2a_differential.png",
           "routing": "figure_2b_routing.png"}
OPTIMUM_RADIUS = 1.0
# Final returns average the training returns of the last episodes.
FINAL_EPISODES = 10
PROGRESS_FILE = "progress.json"

# The agents' settings per game; the four algorithms share them.
#
# Differential game: the `Settings` defaults with rewards scaled by 0.1 (they
# span about [-100, 10]) and MAI's opponent reward "shared" (identical
# rewards). MAI's were chosen on seeds 0-3 by the fraction of the 25 steps
# whose deterministic joint action ends within 1.0 of (5, 5), changing one
# thing at a time: the reparameterised (reverse-KL) opponent-model fit
# settled at the local optimum in 15-50% of the steps at every temperature
# tried; the mode-covering fit of eq. 5 (see algorithms/mai.py) and training
# pi on prior predictions too made it 96-100%; a warm-up of 1000 uniform
# steps (500 before), with the annealing starting after it, left no step
# behind on seeds 0-9. The baselines run with the same settings.
#
# Routing game: stage costs are below 2.3, so rewards are scaled by 10, and
# the temperature runs from 0.3 to 0.01. The discount is 0.5: actions do not
# move the demand regimes, so it only scales the action-independent
# continuation, and at 0.95 that continuation (about -130 in scaled units)
# drowned the stage differences between splits (about 1) in every critic
# (DDPG's NashConv went from 3.7 to 1.4 on seed 0, with the split logit range
# at 6; see continuous_common.SPLIT_LOGIT_RANGE for why it is 3 now). MAI
# estimates the opponents' rewards (the game is general-sum).
GAME_AGENT_SETTINGS = {
    "differential": continuous_common.Settings(
        reward_scale=0.1, opponent_reward="shared"),
    "routing": continuous_common.Settings(
        reward_scale=10.0, discount=0.5, initial_temperature=0.3,
        final_temperature=0.01, opponent_reward="estimated"),
}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What `run_experiment` runs; the defaults are the paper's setting.

  Attributes:
    game: "differential" or "routing".
    algorithms: names from ALGORITHMS.
    seeds: one run per algorithm and seed.
    episodes, steps: training episodes per run and steps per episode (the
      game's horizon).
    block_episodes: episodes between checkpoints.
    agent_overrides: (name, value) pairs replacing fields of the game's
      GAME_AGENT_SETTINGS.
    evaluation_samples: routing: sampled actions per player and state in the
      final evaluation.
    routing_*: the routing game's parameters (see games/routing.py);
      routing_split_levels is the grid of the NashConv evaluation only.
  """
  game: str = "differential"
  algorithms: tuple = tuple(ALGORITHMS)
  seeds: tuple = tuple(range(10))
  episodes: int = 200
  steps: int = 25
  block_episodes: int = 10
  agent_overrides: tuple = ()
  evaluation_samples: int = 256
  routing_network: str = "braess"
  routing_players: int = 2
  routing_demand: float = 0.5
  routing_regime_scales: str = "1 1.5"
  routing_regime_transition: str = "0.8 0.2;0.3 0.7"
  routing_split_levels: int = 4

  def __post_init__(self):
    object.__setattr__(self, "algorithms", tuple(self.algorithms))
    object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
    object.__setattr__(self, "agent_overrides", tuple(
        (str(name), value) for name, value in self.agent_overrides))
    if self.game not in GAMES:
      raise ValueError(f"game must be one of {GAMES}, got {self.game!r}")
    unknown = [name for name in self.algorithms if name not in ALGORITHMS]
    if unknown or not self.algorithms:
      raise ValueError(f"algorithms: unknown {unknown}; valid values: "
                       f"{', '.join(ALGORITHMS)}")
    if not self.seeds or min(self.seeds) < 0:
      raise ValueError(f"seeds must be one or more integers >= 0, got "
                       f"{self.seeds}")
    for name in ("episodes", "steps", "block_episodes", "evaluation_samples"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    self.agent_settings()  # Checks the overrides.

  def agent_settings(self):
    """The agents' `Settings`: the game's defaults with the overrides."""
    defaults = GAME_AGENT_SETTINGS[self.game]
    valid = [field.name for field in dataclasses.fields(defaults)]
    overrides = dict(self.agent_overrides)
    unknown = [name for name in overrides if name not in valid]
    if unknown:
      raise ValueError(f"agent settings: unknown {unknown}; valid names: "
                       f"{', '.join(valid)}")
    return dataclasses.replace(defaults, **overrides)

  def load_game(self):
    """The OpenSpiel game whose continuous interface the agents play."""
    if self.game == "differential":
      return pyspiel.load_game("python_vsg_differential",
                               {"horizon": self.steps})
    return pyspiel.load_game("python_vsg_routing", {
        "network": self.routing_network,
        "num_players": self.routing_players,
        "demand": self.routing_demand,
        "regime_scales": self.routing_regime_scales,
        "regime_transition": self.routing_regime_transition,
        "split_levels": self.routing_split_levels,
        "horizon": self.steps})

  def run_config(self, algorithm, seed):
    """Everything that determines one run's results (block_episodes and the
    evaluation settings do not), as stored in its progress.json."""
    config = {"game": self.game, "algorithm": algorithm, "seed": int(seed),
              "episodes": self.episodes, "steps": self.steps,
              "agent_settings": dataclasses.asdict(self.agent_settings())}
    config["agent_settings"]["hidden_sizes"] = list(
        config["agent_settings"]["hidden_sizes"])
    if self.game == "routing":
      config.update({name: getattr(self, name) for name in (
          "routing_network", "routing_players", "routing_demand",
          "routing_regime_scales", "routing_regime_transition")})
      config["split_logit_range"] = continuous_common.SPLIT_LOGIT_RANGE
    return config


def play_episode(environment, agents):
  """One training episode; returns each player's return, shape (N,)."""
  time_step = environment.reset()
  returns = np.zeros(environment.num_players)
  while True:
    outputs = [agent.step(time_step) for agent in agents]
    if time_step.last():
      return returns
    time_step = environment.step(np.stack([output.action
                                           for output in outputs]))
    returns += time_step.rewards


# ----------------------------------------------------------------------------
# Final evaluation.


def evaluate_differential(environment, agents):
  """The deterministic joint action at every step; whether it is within
  OPTIMUM_RADIUS of the global optimum (the high peak's centre) at every
  step, or of the local one, and at what fraction of the steps (JSON types,
  like everything stored in progress.json)."""
  game = environment.game
  observations = np.stack([environment.observation_of(step)
                           for step in range(environment.horizon)])
  box = np.stack([agent.actions(observations, deterministic=True)
                  for agent in agents], axis=1)
  joint = environment.to_game_actions(box)  # (T, 2)
  global_distance = np.linalg.norm(joint - game.model.centre_2, axis=1)
  local_distance = np.linalg.norm(joint - game.model.centre_1, axis=1)
  return {
      "joint_actions": joint.tolist(),
      "mean_joint_action": joint.mean(axis=0).tolist(),
      "deterministic_return": float(
          game.model.reward(joint[:, 0], joint[:, 1]).sum()),
      "max_distance_to_global_optimum": float(global_distance.max()),
      "global_optimum": bool(global_distance.max() <= OPTIMUM_RADIUS),
      "local_optimum": bool(local_distance.max() <= OPTIMUM_RADIUS),
      "steps_at_global_optimum": float(np.mean(
          global_distance <= OPTIMUM_RADIUS)),
      "steps_at_local_optimum": float(np.mean(
          local_distance <= OPTIMUM_RADIUS)),
  }


def evaluate_routing(environment, agents, samples):
  """Mean splits per regime against the exact equilibrium, and the NashConv
  of the policies discretised onto the grid game."""
  game = environment.game
  mgame = vsg_spiel.markov_game(game)
  stages = np.array([state.stage for state in mgame.states])
  regimes = np.array([state.regime for state in mgame.states])
  observations = np.repeat(
      environment.observation_of(stages, regimes), samples, axis=0)
  grid = game.split_fractions  # (A, P)
  profile, splits = [], []
  for agent in agents:
    box = agent.actions(observations,
                        deterministic=not agent.stochastic_policy)
    player_splits = environment.to_game_actions(box[:, None, :])[:, 0]
    nearest = np.argmin(np.sum(
        (player_splits[:, None, :] - grid[None]) ** 2, axis=-1), axis=1)
    counts = np.zeros((mgame.num_states, len(grid)))
    np.add.at(counts, (np.repeat(np.arange(mgame.num_states), samples),
                       nearest), 1.0)
    profile.append(counts / samples)
    splits.append(player_splits.reshape(mgame.num_states, samples, -1))
  splits = np.stack(splits, axis=2)  # (S, samples, N, P)
  distances, mean_splits, equilibria = [], [], []
  model, scales = game.model, game.regimes.scales
  for regime, scale in enumerate(scales):
    at_regime = regimes == regime
    if not at_regime.any():
      continue
    mean_split = splits[at_regime].mean(axis=(0, 1))  # (N, P)
    equilibrium = model.equilibrium(scale) / (model.demand[:, None] * scale)
    mean_splits.append(mean_split.tolist())
    equilibria.append(equilibrium.tolist())
    distances.append(float(np.linalg.norm(mean_split - equilibrium)))
  return {
      "mean_splits": mean_splits,
      "equilibrium_splits": equilibria,
      "split_distances": distances,
      "max_split_distance": float(max(distances)),
      "nash_conv": float(vsg_spiel.nash_conv(mgame, profile)),
  }


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
      environment.spec, experiment.agent_settings(), seed)
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
          play_episode(environment, agents).tolist())
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
      progress["final"] = (
          evaluate_differential(environment, agents)
          if experiment.game == "differential" else
          evaluate_routing(environment, agents,
                           experiment.evaluation_samples))
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


def curve_values(record, game):
  """The learning-curve value of each episode: the reward per step (player
  0's; the reward is shared) on the differential game, the players' mean
  return on the routing game."""
  returns = np.asarray(record["episode_returns"])
  if game == "differential":
    return returns[:, 0] / record["config"]["steps"]
  return returns.mean(axis=1)


def _mean_std(values):
  """Mean and standard deviation across seeds (the first axis)."""
  values = np.asarray(values, dtype=np.float64)
  return {"mean": values.mean(axis=0).tolist(),
          "std": values.std(axis=0).tolist()}


def summarize(experiment, records):
  """Per algorithm: final returns and the final evaluation across seeds."""
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
    finals = [run["final"] for run in runs]
    if experiment.game == "differential":
      entry["global_optimum_fraction"] = float(np.mean(
          [final["global_optimum"] for final in finals]))
      entry["local_optimum_fraction"] = float(np.mean(
          [final["local_optimum"] for final in finals]))
      entry["steps_at_global_optimum"] = _mean_std(
          [final["steps_at_global_optimum"] for final in finals])
      entry["deterministic_return"] = _mean_std(
          [final["deterministic_return"] for final in finals])
      entry["final_joint_actions"] = [final["mean_joint_action"]
                                      for final in finals]
    else:
      entry["max_split_distance"] = _mean_std(
          [final["max_split_distance"] for final in finals])
      entry["split_distances"] = _mean_std(
          [final["split_distances"] for final in finals])
      entry["nash_conv"] = _mean_std([final["nash_conv"] for final in finals])
    summary[algorithm] = entry
  return summary


def plot_learning_curves(experiment, records, path):
  """Figure 2a/2b: mean and standard deviation across seeds per episode."""
  plt = common.pyplot()
  figure, axes = plt.subplots(figsize=(6.4, 4.2))
  for algorithm, runs in records.items():
    if not runs:
      continue
    values = np.stack([curve_values(run, experiment.game) for run in runs])
    episodes = np.arange(1, values.shape[1] + 1)
    mean, std = values.mean(axis=0), values.std(axis=0)
    axes.plot(episodes, mean, label=f"{algorithm.upper()} ({len(runs)} seeds)")
    axes.fill_between(episodes, mean - std, mean + std, alpha=0.2)
  axes.set_xlabel("episode")
  if experiment.game == "differential":
    axes.set_ylabel("reward per step")
    axes.set_title("Differential game (global optimum 10, local 0)")
    axes.set_ylim(bottom=-40)
  else:
    axes.set_ylabel("return per episode (mean over players)")
    axes.set_title(f"Routing game ({experiment.routing_network}, "
                   f"{experiment.routing_players} players)")
  axes.legend()
  axes.grid(alpha=0.3)
  common.save_figure(figure, path)


def markdown(experiment, summary):
  """The summary table."""
  def spread(entry):
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"
  if experiment.game == "differential":
    headers = ["algorithm", "seeds", "global optimum (all steps)",
               "local optimum (all steps)", "steps at the global optimum",
               f"final return (last {FINAL_EPISODES} episodes)",
               "deterministic return", "seconds per run"]
    rows = [[name, len(entry["seeds"]),
             f"{entry['global_optimum_fraction']:.0%}",
             f"{entry['local_optimum_fraction']:.0%}",
             spread(entry["steps_at_global_optimum"]),
             spread(entry["final_return"]),
             spread(entry["deterministic_return"]),
             spread(entry["train_seconds"])]
            for name, entry in summary.items()]
  else:
    headers = ["algorithm", "seeds",
               f"final return (last {FINAL_EPISODES} episodes)",
               "max split distance", "NashConv (grid)", "seconds per run"]
    rows = [[name, len(entry["seeds"]), spread(entry["final_return"]),
             spread(entry["max_split_distance"]), spread(entry["nash_conv"]),
             spread(entry["train_seconds"])]
            for name, entry in summary.items()]
  title = ("Figure 2a: differential game" if experiment.game == "differential"
           else "Figure 2b: routing game")
  return (f"# {title}\n\n{experiment.episodes} episodes x {experiment.steps} "
          f"steps per run; spreads are standard deviations across seeds.\n\n"
          + common.markdown_table(headers, rows)
          + f"\n\n![learning curves]({FIGURES[experiment.game]})\n")


def write_outputs(settings, records, out_dir):
  """Writes OUT/<game>/{figure, summary.json, summary.md}; returns the
  summary."""
  experiment = (settings if isinstance(settings, Experiment) else
                Experiment(**settings))
  game_dir = os.path.join(out_dir, experiment.game)
  summary = summarize(experiment, records)
  plot_learning_curves(experiment, records,
                       os.path.join(game_dir, FIGURES[experiment.game]))
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


def parse_agent_settings(items):
  """["name=value", ...] -> ((name, typed value), ...) by Settings' types."""
  defaults = continuous_common.Settings()
  types = {field.name: type(getattr(defaults, field.name))
           for field in dataclasses.fields(defaults)}
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


def define_flags():
  """The binary's flags (defined only when it runs as a program, so that
  other modules can import its functions)."""
  defaults = Experiment()
  flags.DEFINE_enum("game", defaults.game, list(GAMES), "The game.")
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
                       "Routing: sampled actions per player and state in "
                       "the final evaluation.", lower_bound=1)
  flags.DEFINE_list("agent_settings", [],
                    "Overrides of the agents' settings, name=value "
                    "(hidden_sizes as 64:64), from "
                    + ", ".join(field.name for field in dataclasses.fields(
                        continuous_common.Settings)) + ".")
  flags.DEFINE_string("out", "run_mai_out", "Output directory.")
  flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op "
                       "threads.", lower_bound=1)
  flags.DEFINE_string("routing_network", defaults.routing_network,
                      "Routing network: pigou, braess or parallel.")
  flags.DEFINE_integer("routing_players", defaults.routing_players,
                       "Routing players.")
  flags.DEFINE_float("routing_demand", defaults.routing_demand,
                     "Routing demand per player.")
  flags.DEFINE_string("routing_regime_scales", defaults.routing_regime_scales,
                      "Demand scale of each regime, separated by spaces.")
  flags.DEFINE_string("routing_regime_transition",
                      defaults.routing_regime_transition,
                      "Regime transition matrix, rows separated by ';'.")
  flags.DEFINE_integer("routing_split_levels", defaults.routing_split_levels,
                       "Split grid of the NashConv evaluation.",
                       lower_bound=1)


def experiment_from_flags():
  """The `Experiment` of the flags; a bad value fails at once, naming the
  flag and the valid values."""
  try:
    experiment = Experiment(
        game=FLAGS.game, algorithms=tuple(FLAGS.algorithms),
        seeds=parse_seeds(FLAGS.seeds), episodes=FLAGS.episodes,
        steps=FLAGS.steps, block_episodes=FLAGS.block_episodes,
        agent_overrides=parse_agent_settings(FLAGS.agent_settings),
        evaluation_samples=FLAGS.evaluation_samples,
        routing_network=FLAGS.routing_network,
        routing_players=FLAGS.routing_players,
        routing_demand=FLAGS.routing_demand,
        routing_regime_scales=FLAGS.routing_regime_scales,
        routing_regime_transition=FLAGS.routing_regime_transition,
        routing_split_levels=FLAGS.routing_split_levels)
    experiment.load_game()
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  return experiment


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
