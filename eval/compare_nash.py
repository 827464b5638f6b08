r"""NashConv of VPG and of OpenSpiel's baselines against iterations and seconds.

  python -m vsg_spiel.eval.compare_nash --out=compare_nash_out

runs every algorithm of `--algorithms` on every game of `--games`
(simultaneous-move games with perfect information, or one-shot, that the
Markov-game core accepts) and records the exact NashConv
(`vsg_spiel.nash_conv`) of the policy each algorithm plays, at checkpoints
spaced logarithmically in iterations and in seconds.

Every algorithm has the same interface: `step()` does one unit of work (an
iteration, or a batch of episodes for the RL agents), `profile()` returns the
played policy as a profile of the game's `MarkovGame` and `policy()` as an
OpenSpiel policy (the algorithm's own object where it has one). They are:

  vpg_annealed   VPG (Algorithm 1), marginal form, exact opponent model, the
                 temperature annealed geometrically, from a seeded random
                 profile;
  vpg            VPG in the paper's form (conditional policies, exact model)
                 at a fixed temperature;
  vpg_sampled    VPG from sampled play: decentralised soft Q-learning, the
                 opponents modelled from their observed actions;
  cfr, cfr_plus  OpenSpiel's C++ CFR and CFR+ on the turn-based conversion
                 (their average policies);
  xfp            OpenSpiel's extensive-form fictitious play (average policy);
  qlearning, boltzmann_qlearning, wolf_phc
                 OpenSpiel's independent tabular learners on
                 `rl_environment` (their evaluation policies, OpenSpiel's
                 default hyperparameters);
  nash_q         OpenSpiel's Nash-Q joint-action learners (2 players).

VPG temperatures are given in units of the game's stage-reward range (max -
min of the stage rewards over states and legal joint actions), so the same
flags suit every game. The payoff range is that range times the horizon;
"time to threshold" is the time of the first checkpoint with NashConv <=
`--threshold` x payoff range.

Time is each algorithm's own work, cumulative: its construction (for VPG the
enumeration of the game's tensors) and its steps, never the NashConv
evaluations. A run stops after `--time_budget` seconds of that time, after
`--max_iterations` steps, or at a checkpoint with NashConv <= 1e-6 x payoff
range; a step is never interrupted, so a slow step can overrun the budget.
Where the game's turn-based tree is small enough, the final policy is also
evaluated by OpenSpiel's `exploitability.nash_conv` and both numbers are
recorded.

Outputs in `--out`: results.json, report.md and one figure per game,
figures/nash_conv_<game>.png.
"""

import dataclasses
import importlib.metadata
import math
import os
import platform
import re
import time
import warnings

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python import rl_environment
from open_spiel.python.algorithms import boltzmann_tabular_qlearner
from open_spiel.python.algorithms import exploitability
from open_spiel.python.algorithms import fictitious_play
from open_spiel.python.algorithms import tabular_qlearner
from open_spiel.python.algorithms import wolf_phc

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.algorithms import vpg
from vsg_spiel.eval import common

FLAGS = flags.FLAGS

DEFAULT_GAMES = (
    "python_vsg_routing(network=braess,num_players=3,horizon=2,"
    "split_levels=2)",
    "python_vsg_differential(horizon=1)",
    "matrix_rps",
    "matrix_bos",
    "matrix_sh",
)
VPG_ALGORITHMS = ("vpg_annealed", "vpg", "vpg_sampled")
OPENSPIEL_BASELINES = ("cfr", "cfr_plus", "xfp", "qlearning", "boltzmann_qlearning",
                       "wolf_phc", "nash_q")
ALGORITHMS = VPG_ALGORITHMS + OPENSPIEL_BASELINES
SAMPLED_OPPONENT_MODELS = ("empirical", "variational")
# A run stops once NashConv <= this fraction of the payoff range.
CONVERGED_FRACTION = 1e-6
# Checkpoints in seconds run from this fraction of the budget to the budget.
FIRST_CHECKPOINT_FRACTION = 1e-4
# Figures draw NashConv below this fraction of the payoff range (0 included)
# at it, so that a log scale can show it.
PLOT_FLOOR_FRACTION = 1e-8
# Nash-Q solves a stage game per step by support enumeration, which visits
# about C(A_1 + A_2, A_1) support pairs; larger games are skipped.
MAX_NASH_Q_SUPPORT_PAIRS = 10_000


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a comparison runs with; the defaults are the flags' defaults."""
  seed: int = 0
  time_budget: float = 10.0
  max_iterations: int = 100_000
  threshold: float = 1e-3
  checkpoints: int = 50
  vpg_step: float = 0.5
  vpg_initial_temperature: float = 1.0
  vpg_final_temperature: float = 1e-5
  vpg_temperature_decay: float = 0.8
  vpg_temperature: float = 0.1
  vpg_sampled_episodes: int = 64
  vpg_sampled_opponent_model: str = "empirical"
  rl_episodes: int = 100
  openspiel_check_max_histories: int = 200_000


_DEFAULTS = Settings()


def _define_positive_float(name, default, help_text, upper_bound=None):
  """A float flag that must be > 0 (and <= upper_bound), checked at parsing.
  """
  holder = flags.DEFINE_float(name, default, help_text,
                              upper_bound=upper_bound)
  flags.register_validator(name, lambda value: value > 0,
                           message=f"--{name} must be > 0")
  return holder


class Unsupported(Exception):
  """An algorithm cannot run on a game; the message says why."""


# ----------------------------------------------------------------------------
# The algorithms.


class VPGAlgorithm:
  """A `vpg.VPGSolver`; a step is one iteration."""

  def __init__(self, mgame, solver=vpg.VPGSolver, **solver_args):
    self._mgame = mgame
    # The solver enumerates its own tensors, so that its time includes them.
    self._solver = solver(core.MarkovGame.from_openspiel(mgame.game),
                          **solver_args)

  def step(self):
    self._solver.iteration()

  def profile(self):
    return self._solver.profile()

  def policy(self):
    return vsg_spiel.to_policy(self._mgame, self.profile())


class CFRAlgorithm:
  """OpenSpiel's C++ CFR (or CFR+) on the turn-based game; plays its average
  policy."""

  def __init__(self, mgame, solver_class=pyspiel.CFRSolver):
    self._mgame = mgame
    self._game = pyspiel.convert_to_turn_based(mgame.game)
    self._solver = solver_class(self._game)

  def step(self):
    self._solver.evaluate_and_update_policy()

  def profile(self):
    return vsg_spiel.from_policy(self._mgame, self.policy())

  def policy(self):
    return policy_lib.pyspiel_policy_to_python_policy(
        self._game, self._solver.tabular_average_policy())


class XFPAlgorithm:
  """OpenSpiel's extensive-form fictitious play on the turn-based game."""

  def __init__(self, mgame):
    self._mgame = mgame
    self._solver = fictitious_play.XFPSolver(
        pyspiel.convert_to_turn_based(mgame.game))

  def step(self):
    self._solver.iteration()

  def profile(self):
    return vsg_spiel.from_policy(self._mgame, self.policy())

  def policy(self):
    return self._solver.average_policy()


class RLAgents:
  """One OpenSpiel tabular agent per player on `rl_environment`; a step plays
  a batch of episodes, and the played policy is each agent's evaluation
  policy (`step(time_step, is_evaluation=True).probs`) at every state.

  The agents see observation tensors, not information states: their tables
  are then keyed by what identifies the Markov state, so the policy read at a
  state's representative is the one played at every history of that state.
  """

  def __init__(self, mgame, settings, make_agent):
    game = mgame.game
    if not game.get_type().provides_observation_tensor:
      raise Unsupported(f"rl_environment needs observation tensors, which "
                        f"{game.get_type().short_name} does not provide")
    # OpenSpiel's tabular agents draw from numpy's global generator.
    np.random.seed(settings.seed)
    observation = rl_environment.ObservationType.OBSERVATION
    self._env = rl_environment.Environment(
        game, observation_type=observation,
        chance_event_sampler=rl_environment.ChanceEventSampler(settings.seed))
    self._evaluation_env = rl_environment.Environment(
        game, observation_type=observation)
    self._mgame = mgame
    self._episodes = settings.rl_episodes
    self._agents = [make_agent(player, game.num_distinct_actions())
                    for player in range(game.num_players())]

  def agent_step(self, agent, time_step, actions, is_evaluation=False):
    """One agent's `step`; joint-action learners also take `actions`."""
    del actions  # Independent learners see their own actions only.
    return agent.step(time_step, is_evaluation=is_evaluation)

  def step(self):
    for _ in range(self._episodes):
      time_step = self._env.reset()
      actions = [None] * len(self._agents)
      while not time_step.last():
        actions = [self.agent_step(agent, time_step, actions).action
                   for agent in self._agents]
        time_step = self._env.step(actions)
      for agent in self._agents:
        self.agent_step(agent, time_step, actions)

  def profile(self):
    # The agents draw an action whenever they are asked for their policy:
    # restore numpy's generator so that evaluating leaves learning as it was.
    random_state = np.random.get_state()
    profile = [np.zeros(mask.shape) for mask in self._mgame.legal_mask]
    no_actions = [None] * len(self._agents)
    for index, state in enumerate(self._mgame.states):
      self._evaluation_env.set_state(state.clone())
      time_step = self._evaluation_env.get_time_step()
      for player, agent in enumerate(self._agents):
        profile[player][index] = self.agent_step(
            agent, time_step, no_actions, is_evaluation=True).probs
    np.random.set_state(random_state)
    return profile

  def policy(self):
    return vsg_spiel.to_policy(self._mgame, self.profile())


class JointActionAgents(RLAgents):
  """Joint-action learners (Nash-Q), which see every player's actions."""

  def agent_step(self, agent, time_step, actions, is_evaluation=False):
    with warnings.catch_warnings():
      # nashpy warns whenever a stage game of Q-values is degenerate, as the
      # all-zero tables of unvisited states are.
      warnings.filterwarnings("ignore", r"\s*An even number", RuntimeWarning)
      return agent.step(time_step, actions, is_evaluation=is_evaluation)


def make_vpg_annealed(mgame, settings, reward_scale):
  """From a seeded random start: annealing from the uniform profile tracks
  the symmetric branch of soft equilibria, which in coordination games such
  as matrix_bos ends at the unstable mixed equilibrium."""
  return VPGAlgorithm(
      mgame, step=settings.vpg_step, opponent_model="exact",
      policy_form="marginal",
      initial_profile=vsg_spiel.random_profile(
          mgame, np.random.default_rng(settings.seed)),
      temperature=vpg.geometric_annealing(
          settings.vpg_initial_temperature * reward_scale,
          settings.vpg_final_temperature * reward_scale,
          settings.vpg_temperature_decay))


def make_vpg(mgame, settings, reward_scale):
  return VPGAlgorithm(
      mgame, temperature=settings.vpg_temperature * reward_scale,
      step=settings.vpg_step, opponent_model="exact",
      policy_form="conditional")


def make_vpg_sampled(mgame, settings, reward_scale):
  return VPGAlgorithm(
      mgame, temperature=settings.vpg_temperature * reward_scale,
      step=settings.vpg_step,
      opponent_model=settings.vpg_sampled_opponent_model,
      policy_form="conditional", solver=vpg.SampledVPGSolver,
      seed=settings.seed,
      episodes_per_iteration=settings.vpg_sampled_episodes)


def make_cfr(mgame, settings, reward_scale):
  del settings, reward_scale  # CFR has no parameters.
  return CFRAlgorithm(mgame)


def make_cfr_plus(mgame, settings, reward_scale):
  del settings, reward_scale  # CFR+ has no parameters.
  return CFRAlgorithm(mgame, pyspiel.CFRPlusSolver)


def make_xfp(mgame, settings, reward_scale):
  del settings, reward_scale  # XFP has no parameters.
  return XFPAlgorithm(mgame)


def make_qlearning(mgame, settings, reward_scale):
  del reward_scale  # OpenSpiel's default hyperparameters.
  return RLAgents(mgame, settings, tabular_qlearner.QLearner)


def make_boltzmann_qlearning(mgame, settings, reward_scale):
  del reward_scale  # OpenSpiel's default hyperparameters.
  return RLAgents(mgame, settings,
                  boltzmann_tabular_qlearner.BoltzmannQLearner)


def make_wolf_phc(mgame, settings, reward_scale):
  """WoLF-PHC with OpenSpiel's default schedules, built afresh per agent:
  the defaults are objects shared by every agent that uses them, whose state
  would carry over from one agent (and one run) to the next."""
  del reward_scale
  def make_agent(player, num_actions):
    return wolf_phc.WoLFPHC(
        player, num_actions, step_size=wolf_phc.WoLFSchedule(10000, 1000000),
        delta_w=wolf_phc.WoLFSchedule(1, 20000),
        delta_l=wolf_phc.WoLFSchedule(2, 20000))
  return RLAgents(mgame, settings, make_agent)


def make_nash_q(mgame, settings, reward_scale):
  """OpenSpiel's Nash-Q: MultiagentQLearner with TwoPlayerNashSolver."""
  del reward_scale  # OpenSpiel's default hyperparameters.
  if mgame.num_players != 2:
    raise Unsupported(f"TwoPlayerNashSolver solves 2-player stage games; the "
                      f"game has {mgame.num_players} players")
  support_pairs = math.comb(sum(mgame.num_actions), mgame.num_actions[0])
  if support_pairs > MAX_NASH_Q_SUPPORT_PAIRS:
    raise Unsupported(
        f"support enumeration of {mgame.num_actions[0]}x"
        f"{mgame.num_actions[1]} stage games visits ~{support_pairs:.3g} "
        f"support pairs per solve (limit {MAX_NASH_Q_SUPPORT_PAIRS})")
  try:
    # pylint: disable-next=g-import-not-at-top
    from open_spiel.python.algorithms import tabular_multiagent_qlearner
  except ImportError as error:
    raise Unsupported(f"OpenSpiel's Nash-Q needs the Python package "
                      f"{error.name!r}, which is not installed") from error
  def make_agent(player, num_actions):
    return tabular_multiagent_qlearner.MultiagentQLearner(
        player, 2, [num_actions] * 2,
        tabular_multiagent_qlearner.TwoPlayerNashSolver())
  return JointActionAgents(mgame, settings, make_agent)


FACTORIES = {
    "vpg_annealed": make_vpg_annealed,
    "vpg": make_vpg,
    "vpg_sampled": make_vpg_sampled,
    "cfr": make_cfr,
    "cfr_plus": make_cfr_plus,
    "xfp": make_xfp,
    "qlearning": make_qlearning,
    "boltzmann_qlearning": make_boltzmann_qlearning,
    "wolf_phc": make_wolf_phc,
    "nash_q": make_nash_q,
}


def make_algorithm(name, mgame, settings, reward_scale, factories=None):
  """The algorithm `name` (a key of `factories`, default FACTORIES) on
  `mgame`'s game; raises Unsupported."""
  return (factories or FACTORIES)[name](mgame, settings, reward_scale)


# ----------------------------------------------------------------------------
# Games: checks, scales and sizes.


def load_markov_game(game_string):
  """The game's `MarkovGame`; ValueError if the comparison cannot use it."""
  try:
    mgame = vsg_spiel.markov_game(game_string)
  except pyspiel.SpielError as error:
    raise ValueError(str(error).strip()) from error
  if mgame.game.get_type().dynamics != pyspiel.GameType.Dynamics.SIMULTANEOUS:
    raise ValueError("the baselines run on pyspiel.convert_to_turn_based and "
                     "rl_environment's simultaneous loop: use a "
                     "simultaneous-move game")
  if stage_reward_range(mgame) <= 0:
    raise ValueError("its rewards are constant: every policy is a Nash "
                     "equilibrium")
  return mgame


def stage_reward_range(mgame):
  """max - min of the stage rewards over states and legal joint actions."""
  legal = np.ones((mgame.num_states,) + mgame.num_actions, dtype=bool)
  for player, mask in enumerate(mgame.legal_mask):
    shape = [mgame.num_states] + [1] * mgame.num_players
    shape[1 + player] = mgame.num_actions[player]
    legal &= mask.reshape(shape)
  rewards = mgame.rewards[:, legal]
  return float(rewards.max() - rewards.min())


def estimated_histories(mgame):
  """About how many nodes OpenSpiel's tools visit on the turn-based tree.

  A Markov state reached by h histories, where the players have n_1..n_N
  legal actions, holds h (1 + n_1 + n_1 n_2 + ... + n_1...n_N) nodes: the
  players' decision nodes and the round's joint outcomes. The count is exact
  where chance nodes separate the rounds (as in the routing game); elsewhere
  an outcome that starts the next round is counted twice, and chance nodes
  below an outcome are not counted.
  """
  paths = np.asarray(mgame.initial_distribution > 0, dtype=np.float64)
  reached = (mgame.transitions > 0).astype(np.float64)
  for layer in mgame.layers:
    rows = slice(layer[0] * mgame.num_joint_actions,
                 (layer[-1] + 1) * mgame.num_joint_actions)
    paths += reached[rows].T @ np.repeat(paths[layer],
                                         mgame.num_joint_actions)
  counts = np.stack([mask.sum(axis=1) for mask in mgame.legal_mask], axis=1)
  nodes = 1 + np.cumprod(counts, axis=1).sum(axis=1)
  return int(paths @ nodes)


def slug(game_string):
  """A file-name-safe form of a game string."""
  return re.sub(r"[^a-z0-9]+", "_", game_string.lower()).strip("_")


# ----------------------------------------------------------------------------
# Runs.


class CheckpointSchedule:
  """`count` marks evenly spaced in log(iterations) over [1, max_iterations]
  and as many in log(seconds) over [FIRST_CHECKPOINT_FRACTION x budget,
  budget]; a checkpoint is due whenever either passes its next mark."""

  def __init__(self, settings):
    self._count = settings.checkpoints
    self._log_iterations = math.log(max(settings.max_iterations, 2))
    self._first_seconds = settings.time_budget * FIRST_CHECKPOINT_FRACTION
    self._log_seconds = -math.log(FIRST_CHECKPOINT_FRACTION)
    self._next_marks = (0, 0)

  def due(self, iteration, seconds):
    marks = (
        math.floor(self._count * math.log(iteration) / self._log_iterations),
        math.floor(self._count * math.log(
            max(seconds, self._first_seconds) / self._first_seconds) /
                   self._log_seconds))
    if all(mark < next_mark
           for mark, next_mark in zip(marks, self._next_marks)):
      return False
    self._next_marks = tuple(mark + 1 for mark in marks)
    return True


def run_algorithm(name, mgame, settings, reward_scale, openspiel_game=None,
                  factories=None):
  """Runs one algorithm on one game within the budgets.

  Args:
    name: a key of `factories`.
    mgame: the game's `MarkovGame`.
    settings: `Settings`.
    reward_scale: the stage-reward range, the unit of VPG's temperatures.
    openspiel_game: the turn-based game on which OpenSpiel's
      `exploitability.nash_conv` checks the final policy, or None.
    factories: name -> factory(mgame, settings, reward_scale); FACTORIES by
      default.

  Returns:
    A JSON-able dict: the checkpoints (iteration, seconds, nash_conv), the
    time and iterations to the threshold (None if not reached), the final
    NashConv, why the run stopped and the seconds of construction (included
    in every time); {"skipped": reason} if the algorithm cannot run on the
    game.
  """
  payoff_range = reward_scale * mgame.horizon
  threshold = settings.threshold * payoff_range
  start = time.perf_counter()
  try:
    algorithm = make_algorithm(name, mgame, settings, reward_scale,
                               factories)
  except Unsupported as reason:
    logging.warning("%s skipped on %s: %s", name, mgame.game, reason)
    return {"skipped": str(reason)}
  seconds = setup_seconds = time.perf_counter() - start
  schedule = CheckpointSchedule(settings)
  checkpoints = []
  iteration = 0
  while True:
    start = time.perf_counter()
    algorithm.step()
    seconds += time.perf_counter() - start
    iteration += 1
    out_of_budget = (seconds >= settings.time_budget or
                     iteration >= settings.max_iterations)
    if not (schedule.due(iteration, seconds) or out_of_budget):
      continue
    nash_conv = vsg_spiel.nash_conv(mgame, algorithm.policy())
    checkpoints.append({"iteration": iteration, "seconds": seconds,
                        "nash_conv": nash_conv})
    if out_of_budget or nash_conv <= CONVERGED_FRACTION * payoff_range:
      break

  reached = next((checkpoint for checkpoint in checkpoints
                  if checkpoint["nash_conv"] <= threshold), None)
  final = checkpoints[-1]["nash_conv"]
  if final <= CONVERGED_FRACTION * payoff_range:
    stopped = "converged"
  else:
    stopped = ("time_budget" if seconds >= settings.time_budget else
               "max_iterations")
  result = {
      "setup_seconds": setup_seconds, "iterations": iteration,
      "seconds": seconds, "stopped": stopped,
      "final_nash_conv": final,
      "time_to_threshold": None if reached is None else reached["seconds"],
      "iterations_to_threshold": (None if reached is None else
                                  reached["iteration"]),
      "checkpoints": checkpoints,
      "openspiel_nash_conv": None, "openspiel_abs_difference": None,
      "openspiel_seconds": None,
  }
  if openspiel_game is not None:
    start = time.perf_counter()
    theirs = float(exploitability.nash_conv(openspiel_game,
                                            algorithm.policy()))
    result.update(openspiel_nash_conv=theirs,
                  openspiel_abs_difference=abs(theirs - final),
                  openspiel_seconds=time.perf_counter() - start)
  logging.info("%s on %s: %d steps, %.3g s, NashConv %.3g (%s); threshold "
               "at %s s", name, mgame.game, iteration, seconds, final,
               stopped, result["time_to_threshold"])
  return result


def speedup(algorithm_results):
  """The fastest OpenSpiel baseline's time to threshold over vpg_annealed's.

  Where no baseline reached the threshold, every baseline would have needed
  more than the time it ran, so the ratio exceeds `ratio_lower_bound`: the
  shortest baseline run over vpg_annealed's time.
  """
  vpg_seconds = algorithm_results.get("vpg_annealed", {}).get(
      "time_to_threshold")
  baselines = {name: run for name, run in algorithm_results.items()
               if name in OPENSPIEL_BASELINES and "skipped" not in run}
  reached = {name: run["time_to_threshold"] for name, run in baselines.items()
             if run["time_to_threshold"] is not None}
  fastest = min(reached, key=reached.get) if reached else None
  result = {"vpg_annealed_seconds": vpg_seconds, "fastest_baseline": fastest,
            "fastest_baseline_seconds": reached.get(fastest),
            "ratio": None, "ratio_lower_bound": None}
  if vpg_seconds is None or not baselines:
    return result
  if fastest is not None:
    result["ratio"] = reached[fastest] / vpg_seconds
  else:
    result["ratio_lower_bound"] = min(
        run["seconds"] for run in baselines.values()) / vpg_seconds
  return result


def run_game(game_string, algorithms, settings, factories=None):
  """Runs `algorithms` (names, keys of `factories`, default FACTORIES) on one
  game; returns a JSON-able dict.

  Raises:
    ValueError: the game is not one the comparison can use.
  """
  start = time.perf_counter()
  mgame = load_markov_game(game_string)
  reward_scale = stage_reward_range(mgame)
  payoff_range = reward_scale * mgame.horizon
  histories = estimated_histories(mgame)
  openspiel_game = (pyspiel.convert_to_turn_based(mgame.game)
                    if histories <= settings.openspiel_check_max_histories
                    else None)
  if openspiel_game is None:
    logging.info("%s: ~%d histories; final NashConv not checked with "
                 "OpenSpiel", game_string, histories)
  runs = {name: run_algorithm(name, mgame, settings, reward_scale,
                              openspiel_game, factories)
          for name in algorithms}
  return {
      "game": game_string, "slug": slug(game_string),
      "num_players": mgame.num_players, "num_states": mgame.num_states,
      "num_actions": list(mgame.num_actions), "horizon": mgame.horizon,
      "stage_reward_range": reward_scale, "payoff_range": payoff_range,
      "threshold_nash_conv": settings.threshold * payoff_range,
      "estimated_histories": histories,
      "openspiel_checked": openspiel_game is not None,
      "settings": dataclasses.asdict(settings),
      "algorithms": runs, "speedup": speedup(runs),
      "wall_seconds": time.perf_counter() - start,
  }


def run_cell(game_string, algorithm, settings):
  """One algorithm on one game with `Settings(**settings)`: a report cell."""
  return run_game(game_string, [algorithm], Settings(**settings))


def merge_games(partial_results):
  """One result per game from results of the same game run with different
  algorithms (e.g. one report cell per algorithm); the speed-up is
  recomputed over all of them."""
  merged = {}
  for partial in partial_results:
    game = merged.setdefault(partial["game"], dict(partial, algorithms={},
                                                   wall_seconds=0.0))
    game["algorithms"].update(partial["algorithms"])
    game["wall_seconds"] += partial["wall_seconds"]
  for game in merged.values():
    game["speedup"] = speedup(game["algorithms"])
  return list(merged.values())


# ----------------------------------------------------------------------------
# Outputs.


def figure_path(out_dir, game_result):
  return os.path.join(out_dir, "figures",
                      f"nash_conv_{game_result['slug']}.png")


def plot_game(game_result, path):
  """NashConv against iterations and against seconds, one line per run."""
  plt = common.pyplot()
  figure, (by_iterations, by_seconds) = plt.subplots(
      1, 2, figsize=(13, 4.8), sharey=True)
  floor = PLOT_FLOOR_FRACTION * game_result["payoff_range"]
  for index, (name, run) in enumerate(game_result["algorithms"].items()):
    if "skipped" in run:
      continue
    points = run["checkpoints"]
    nash_convs = np.maximum([point["nash_conv"] for point in points], floor)
    style = {"color": f"C{index}", "label": name, "marker": "o",
             "markersize": 3, "linewidth": 1.5,
             "linestyle": "-" if name in VPG_ALGORITHMS else "--"}
    by_iterations.plot([point["iteration"] for point in points], nash_convs,
                       **style)
    by_seconds.plot([point["seconds"] for point in points], nash_convs,
                    **style)
  threshold_label = (f"threshold: {game_result['settings']['threshold']:g} x "
                     f"payoff range")
  for axes in (by_iterations, by_seconds):
    axes.axhline(game_result["threshold_nash_conv"], color="black",
                 linestyle=":", linewidth=1, label=threshold_label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.grid(True, which="major", alpha=0.3)
  by_iterations.set_ylim(bottom=floor / 2)
  by_iterations.set_xlabel("iterations (steps; RL: batches of episodes)")
  by_seconds.set_xlabel("wall-clock seconds of the algorithm's own work")
  by_iterations.set_ylabel(
      f"NashConv (reward units; 0 drawn at {PLOT_FLOOR_FRACTION:g} x range)")
  by_seconds.legend(loc="center left", bbox_to_anchor=(1.02, 0.5),
                    fontsize="small")
  figure.suptitle(f"NashConv of the played policy: {game_result['game']} "
                  f"(payoff range {game_result['payoff_range']:.4g})")
  common.save_figure(figure, path)


def _seconds_cell(seconds):
  return "not reached within budget" if seconds is None else f"{seconds:.3g}"


def game_markdown(game_result, out_dir):
  """The report section of one game."""
  settings = game_result["settings"]
  lines = [
      f"## `{game_result['game']}`", "",
      f"{game_result['num_players']} players, Markov states: "
      f"{game_result['num_states']}, actions "
      f"{tuple(game_result['num_actions'])}, horizon "
      f"{game_result['horizon']}; payoff range "
      f"{game_result['payoff_range']:.4g} (stage-reward range "
      f"{game_result['stage_reward_range']:.4g} x horizon). Threshold: "
      f"NashConv <= {settings['threshold']:g} x payoff range = "
      f"{game_result['threshold_nash_conv']:.4g}. Budget per algorithm: "
      f"{settings['time_budget']:g} s or {settings['max_iterations']} steps.",
      "",
  ]
  runs = game_result["algorithms"]
  vpg_seconds = game_result["speedup"]["vpg_annealed_seconds"]
  rows, skipped = [], []
  for name, run in runs.items():
    if "skipped" in run:
      skipped.append(f"- {name}: skipped, {run['skipped']}.")
      continue
    reached = run["time_to_threshold"]
    relative = ("" if reached is None or not vpg_seconds else
                f"{reached / vpg_seconds:.3g}")
    checked = run["openspiel_nash_conv"] is not None
    rows.append([
        name, f"{run['setup_seconds']:.3g}", run["iterations"],
        f"{run['seconds']:.3g}", run["stopped"],
        f"{run['final_nash_conv']:.3g}", _seconds_cell(reached),
        "" if reached is None else run["iterations_to_threshold"], relative,
        f"{run['openspiel_nash_conv']:.6g}" if checked else "not checked",
        f"{run['openspiel_abs_difference']:.1e}" if checked else ""])
  lines.append(common.markdown_table(
      ["algorithm", "setup (s)", "steps", "seconds", "stopped",
       "final NashConv",
       "time to threshold (s)", "steps to threshold",
       "time / vpg_annealed's", "OpenSpiel NashConv", "abs. diff"], rows))
  lines += ["", speedup_sentence(game_result["speedup"]), ""]
  if skipped:
    lines += skipped + [""]
  if not game_result["openspiel_checked"]:
    lines += [f"OpenSpiel's exploitability.nash_conv not run: the turn-based "
              f"tree has ~{game_result['estimated_histories']} histories "
              f"(limit {settings['openspiel_check_max_histories']}).", ""]
  relative_figure = os.path.relpath(figure_path(out_dir, game_result),
                                    out_dir)
  lines += [f"![NashConv on {game_result['game']}]({relative_figure})", ""]
  return "\n".join(lines)


def speedup_sentence(speedup_result):
  """The headline ratio of a game, in words."""
  vpg_seconds = speedup_result["vpg_annealed_seconds"]
  if vpg_seconds is None:
    return ("Speed-up: none, vpg_annealed did not reach the threshold within "
            "its budget (or did not run).")
  head = f"Speed-up: vpg_annealed reached the threshold in {vpg_seconds:.3g} s"
  if speedup_result["ratio"] is not None:
    return (f"{head}; the fastest OpenSpiel baseline, "
            f"{speedup_result['fastest_baseline']}, in "
            f"{speedup_result['fastest_baseline_seconds']:.3g} s: ratio "
            f"**{speedup_result['ratio']:.3g}**.")
  if speedup_result["ratio_lower_bound"] is not None:
    return (f"{head}; no OpenSpiel baseline reached it within budget: ratio "
            f"**> {speedup_result['ratio_lower_bound']:.3g}** (the shortest "
            "baseline run over vpg_annealed's time).")
  return f"{head}; no OpenSpiel baseline ran."


def markdown_report(results, out_dir):
  """report.md: one section per game."""
  first = results[0]["settings"]
  lines = [
      "# NashConv: VPG versus OpenSpiel baselines", "",
      "- Time: each algorithm's own work, cumulative: its construction "
      "(\"setup\"; for VPG the enumeration of the game's tensors) and its "
      "steps, not the NashConv evaluations. A step is an iteration, or for "
      f"the RL baselines a batch of {first['rl_episodes']} episodes; a step "
      "is never interrupted, so a slow one can overrun the budget.",
      "- NashConv: exact (`vsg_spiel.nash_conv`), at checkpoints spaced "
      f"logarithmically in steps and in seconds ({first['checkpoints']} "
      f"marks each, over 1..max steps and {FIRST_CHECKPOINT_FRACTION:g} x "
      "budget..budget); a time to threshold is that of the first checkpoint "
      "below it. A run stops at its budget or once NashConv <= "
      f"{CONVERGED_FRACTION:g} x payoff range.",
      "- VPG temperatures, in units of the stage-reward range: vpg_annealed "
      f"(marginal form) from {first['vpg_initial_temperature']:g} to "
      f"{first['vpg_final_temperature']:g} by x"
      f"{first['vpg_temperature_decay']:g} per iteration; vpg (conditional "
      f"form) and vpg_sampled ({first['vpg_sampled_opponent_model']} "
      f"opponent model) at {first['vpg_temperature']:g}; step "
      f"{first['vpg_step']:g}.",
      "- OpenSpiel baselines: cfr and xfp play their average policies; the "
      "RL agents, with OpenSpiel's default hyperparameters, their "
      "evaluation policies (greedy for qlearning and boltzmann_qlearning).",
      "- Ratio of a game: the time of the fastest OpenSpiel baseline "
      f"({', '.join(OPENSPIEL_BASELINES)}) to reach the threshold over "
      "vpg_annealed's.",
      "",
      f"Total wall time: {sum(r['wall_seconds'] for r in results):.1f} s.",
      "",
  ]
  lines += [game_markdown(game_result, out_dir) for game_result in results]
  return "\n".join(lines)


def machine_info():
  return {
      "python": platform.python_version(),
      "open_spiel": importlib.metadata.version("open_spiel"),
      "numpy": np.__version__,
      "cpu": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
  }


def write_outputs(results, out_dir):
  """Writes results.json, report.md and the figures of `run_game` results."""
  for game_result in results:
    plot_game(game_result, figure_path(out_dir, game_result))
  common.atomic_write_json(os.path.join(out_dir, "results.json"),
                           {"games": results, "machine": machine_info()})
  common.atomic_write_text(os.path.join(out_dir, "report.md"),
                           markdown_report(results, out_dir))


# ----------------------------------------------------------------------------
# The binary.


def define_flags():
  """The binary's flags (defined only when it runs as a program, so that
  the report can import its functions)."""
  common.define_game_list(
      "games", list(DEFAULT_GAMES),
      "Comma-separated OpenSpiel game strings (commas inside parentheses "
      "stay in the game): simultaneous-move games with perfect information "
      "(or one-shot) and finite plays.")
  flags.DEFINE_list("algorithms", list(ALGORITHMS),
      f"Algorithms to run, from {ALGORITHMS}.")
  flags.DEFINE_string("out", "compare_nash_out", "Output directory.")
  flags.DEFINE_integer("seed", _DEFAULTS.seed,
      "Seed of the sampled algorithms.")
  _define_positive_float(
      "time_budget", _DEFAULTS.time_budget,
      "Seconds of its own work per algorithm and game.")
  flags.DEFINE_integer(
      "max_iterations", _DEFAULTS.max_iterations,
      "Most steps per algorithm and game.", lower_bound=1)
  _define_positive_float(
      "threshold", _DEFAULTS.threshold,
      "Time to threshold: to reach NashConv <= threshold x payoff range.",
      upper_bound=1.0)
  flags.DEFINE_integer(
      "checkpoints", _DEFAULTS.checkpoints,
      "NashConv evaluations: this many marks spaced logarithmically in steps "
      "and as many in seconds.", lower_bound=1)
  _define_positive_float(
      "vpg_step", _DEFAULTS.vpg_step, "VPG's eq. 4 step beta in (0, 1].",
      upper_bound=1.0)
  _define_positive_float(
      "vpg_initial_temperature", _DEFAULTS.vpg_initial_temperature,
      "vpg_annealed's first temperature, in stage-reward ranges.")
  _define_positive_float(
      "vpg_final_temperature", _DEFAULTS.vpg_final_temperature,
      "vpg_annealed's last temperature, in stage-reward ranges.")
  _define_positive_float(
      "vpg_temperature_decay", _DEFAULTS.vpg_temperature_decay,
      "vpg_annealed's temperature factor per iteration, in (0, 1].",
      upper_bound=1.0)
  _define_positive_float(
      "vpg_temperature", _DEFAULTS.vpg_temperature,
      "Fixed temperature of vpg and vpg_sampled, in stage-reward ranges.")
  flags.DEFINE_integer(
      "vpg_sampled_episodes", _DEFAULTS.vpg_sampled_episodes,
      "Episodes per vpg_sampled iteration.", lower_bound=1)
  flags.DEFINE_enum(
      "vpg_sampled_opponent_model", _DEFAULTS.vpg_sampled_opponent_model,
      SAMPLED_OPPONENT_MODELS, "Opponent model of vpg_sampled.")
  flags.DEFINE_integer(
      "rl_episodes", _DEFAULTS.rl_episodes,
      "Episodes per step of the RL baselines.", lower_bound=1)
  flags.DEFINE_integer(
      "openspiel_check_max_histories", _DEFAULTS.openspiel_check_max_histories,
      "Check the final NashConv with OpenSpiel's exploitability.nash_conv "
      "where the turn-based tree has at most about this many histories.",
      lower_bound=0)


def settings_from_flags():
  return Settings(
      seed=FLAGS.seed, time_budget=FLAGS.time_budget,
      max_iterations=FLAGS.max_iterations, threshold=FLAGS.threshold,
      checkpoints=FLAGS.checkpoints, vpg_step=FLAGS.vpg_step,
      vpg_initial_temperature=FLAGS.vpg_initial_temperature,
      vpg_final_temperature=FLAGS.vpg_final_temperature,
      vpg_temperature_decay=FLAGS.vpg_temperature_decay,
      vpg_temperature=FLAGS.vpg_temperature,
      vpg_sampled_episodes=FLAGS.vpg_sampled_episodes,
      vpg_sampled_opponent_model=FLAGS.vpg_sampled_opponent_model,
      rl_episodes=FLAGS.rl_episodes,
      openspiel_check_max_histories=FLAGS.openspiel_check_max_histories)


def validate_flags():
  """Checks the algorithms and games before any work (absl checked the
  numbers); returns the algorithm names, duplicates dropped, and the
  settings."""
  unknown = [name for name in FLAGS.algorithms if name not in FACTORIES]
  if unknown or not FLAGS.algorithms:
    raise app.UsageError(f"--algorithms: unknown {unknown}; valid values: "
                         f"{', '.join(ALGORITHMS)}")
  if not FLAGS.games:
    raise app.UsageError("--games: give at least one game")
  for game_string in FLAGS.games:
    try:
      load_markov_game(game_string)
    except ValueError as error:
      raise app.UsageError(
          f"--games: {game_string}: {str(error).rstrip('.')}. Valid games: "
          "simultaneous-move games with perfect information (or one-shot) "
          f"and finite plays, e.g. {', '.join(DEFAULT_GAMES)}") from error
  return list(dict.fromkeys(FLAGS.algorithms)), settings_from_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  algorithms, settings = validate_flags()
  start = time.perf_counter()
  results = [run_game(game_string, algorithms, settings)
             for game_string in FLAGS.games]
  write_outputs(results, FLAGS.out)
  print(f"wrote {os.path.join(FLAGS.out, 'report.md')} in "
        f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  define_flags()
  app.run(main)
