"""The built-in entries of the registry: vsg_spiel's solvers and OpenSpiel's
baselines behind the `registry.Algorithm` protocol.

MARKOV family (compare_nash, the zero-sum section of run_equilibria):

  vpg_annealed   VPG (Algorithm 1), marginal form, exact opponent model,
                 the temperature annealed geometrically from the uniform
                 profile, then checked by its residual at the final
                 temperature and, where it has not converged, following the
                 principal branch of logit QRE (`vpg.BranchAnnealedVPG`);
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
  nash_q         OpenSpiel's Nash-Q joint-action learners (2 players);
  zero_sum_vpg   `ZeroSumVPGSolver` (two-player zero-sum games), annealed.
  homotopy       `homotopy.solve`: the principal branch of logit QRE traced
                 to a Nash endpoint; step k solves afresh to maxregret
                 10^-(k+1) x the payoff range, so its time is the whole
                 trace each time (not run by default).

VPG temperatures are in units of the game's stage-reward range
(`reward_scale`), so the same settings suit every game. Every MARKOV
algorithm starts from the uniform profile: OpenSpiel's CFR, CFR+ and XFP
(zero regrets, uniform average policy) and its tabular learners (zero Q
tables) can start nowhere else, so ours start there too and the comparison
is from one start. On a game whose uniform profile is already an
equilibrium (matrix_rps) every algorithm is there from its first step;
comparison records the start's NashConv so that the reports say so.

MEAN_FIELD family (run_mfg): mf_bql (vsg_spiel's Algorithm 4) and OpenSpiel's
MirrorDescent, FictitiousPlay, BoltzmannPolicyIteration and
MunchausenMirrorDescent.

CONTINUOUS family (run_mai, the report's Figure 2): mai (Algorithm 2),
masql, maddpg and ddpg (vsg_spiel.algorithms), and MAI's ablations
mai_empirical (opponent_model="empirical") and mai_marginal
(policy_form="marginal"), not run by default.
"""

import copy
import importlib
import math
import warnings

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python import rl_environment
from open_spiel.python.algorithms import boltzmann_tabular_qlearner
from open_spiel.python.algorithms import fictitious_play
from open_spiel.python.mfg.algorithms import fictitious_play as mfg_fp
from open_spiel.python.algorithms import tabular_qlearner
from open_spiel.python.algorithms import wolf_phc
from open_spiel.python.mfg.algorithms import boltzmann_policy_iteration
from open_spiel.python.mfg.algorithms import mirror_descent
from open_spiel.python.mfg.algorithms import munchausen_mirror_descent

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.algorithms import homotopy
from vsg_spiel.algorithms import mf_bayesian_q
from vsg_spiel.algorithms import vpg
from vsg_spiel.algorithms import zero_sum_vpg
from vsg_spiel.eval import registry

Entry = registry.Entry
Unsupported = registry.Unsupported
MARKOV, MEAN_FIELD = registry.MARKOV, registry.MEAN_FIELD

# Nash-Q solves a stage game per step by support enumeration, which visits
# about C(A_1 + A_2, A_1) support pairs; larger games are skipped.
MAX_NASH_Q_SUPPORT_PAIRS = 10_000
# OpenSpiel's CFR, CFR+ and XFP on a game implemented in Python call into
# Python at every history of the turn-based tree. Measured in CPU seconds
# (construction and first step): CFR 6,900 and XFP 1,700 histories per
# second on python_vsg_differential(horizon=1) (1,723 histories), CFR
# below 4,000 on the 3-player routing game of compare_nash (112,147). An
# upper bound, so that only games far beyond the budget are skipped by it
# (`registry.Entry.tree_histories_per_second`).
TREE_HISTORIES_PER_SECOND = 10_000


# ----------------------------------------------------------------------------
# MARKOV: the played policy on the game's `MarkovGame`.


class MarkovAdapter:
  """Shared by the MARKOV adapters: NashConv by the Markov-game core."""

  _mgame = None

  def profile(self):
    return vsg_spiel.from_policy(self._mgame, self.policy())

  def policy(self):
    return vsg_spiel.to_policy(self._mgame, self.profile())

  def nash_conv(self):
    return vsg_spiel.nash_conv(self._mgame, self.policy())


class SolverAlgorithm(MarkovAdapter):
  """One of vsg_spiel's solvers (`_solver`): a step is one iteration, and
  `residual` and `converged` are the solver's (comparison records them)."""

  _solver = None

  def step(self):
    self._solver.iteration()

  def profile(self):
    return self._solver.profile()

  @property
  def residual(self):
    return self._solver.residual

  @property
  def converged(self):
    return self._solver.converged


class VPGAlgorithm(SolverAlgorithm):
  """A `vpg.VPGSolver` (or `solver`, e.g. `vpg.SampledVPGSolver`)."""

  def __init__(self, mgame, solver=vpg.VPGSolver, **solver_args):
    self._mgame = mgame
    # The solver enumerates its own tensors, so that its time includes them.
    self._solver = solver(core.MarkovGame.from_openspiel(mgame.game),
                          **solver_args)


class CFRAlgorithm(MarkovAdapter):
  """OpenSpiel's C++ CFR (or CFR+) on the turn-based game; plays its average
  policy."""

  def __init__(self, mgame, solver_class=pyspiel.CFRSolver):
    self._mgame = mgame
    self._game = pyspiel.convert_to_turn_based(mgame.game)
    self._solver = solver_class(self._game)
    self._uniform = None  # The played policy's skeleton, built once.

  def step(self):
    self._solver.evaluate_and_update_policy()

  def policy(self):
    """The average policy as a `policy.TabularPolicy`, as OpenSpiel's
    `pyspiel_policy_to_python_policy` gives it (uniform at information
    states the solver has not reached), without enumerating the game's
    states at every call: that enumeration was most of a checkpoint's
    time."""
    if self._uniform is None:
      self._uniform = policy_lib.TabularPolicy(self._game)
    average = copy.copy(self._uniform)
    table = average.action_probability_array
    for key, action_probs in (
        self._solver.tabular_average_policy().policy_table().items()):
      if action_probs:
        row = table[average.state_lookup[key]]
        row[:] = 0.0
        actions, probabilities = zip(*action_probs)
        row[list(actions)] = probabilities
    return average


class XFPAlgorithm(MarkovAdapter):
  """OpenSpiel's extensive-form fictitious play on the turn-based game."""

  def __init__(self, mgame):
    self._mgame = mgame
    self._solver = fictitious_play.XFPSolver(
        pyspiel.convert_to_turn_based(mgame.game))

  def step(self):
    self._solver.iteration()

  def policy(self):
    return self._solver.average_policy()


class RLAgents(MarkovAdapter):
  """One OpenSpiel tabular agent per player on `rl_environment`; a step plays
  a batch of episodes, and the played policy is each agent's evaluation
  policy (`step(time_step, is_evaluation=True).probs`) at every state.

  The agents see observation tensors, not information states: their tables
  are then keyed by what identifies the Markov state, so the policy read at a
  state's representative is the one played at every history of that state.
  """

  def __init__(self, mgame, settings, make_agent):
    game = mgame.game
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


def rl_unsupported(mgame):
  """Why `rl_environment`'s tabular agents cannot run on a game, or None."""
  game_type = mgame.game.get_type()
  if not game_type.provides_observation_tensor:
    return (f"rl_environment needs observation tensors, which "
            f"{game_type.short_name} does not provide")
  return None


def boltzmann_unsupported(mgame):
  """BoltzmannQLearner's soft-max samples from all num_distinct_actions
  actions, ignoring the legal ones: it needs every action legal everywhere."""
  reason = rl_unsupported(mgame)
  if reason:
    return reason
  num_actions = mgame.game.num_distinct_actions()
  for player, mask in enumerate(mgame.legal_mask):
    if mask.shape[1] < num_actions or not mask.all():
      return (f"OpenSpiel's BoltzmannQLearner samples from all "
              f"{num_actions} actions of the game, ignoring legal_actions, "
              f"and player {player} has fewer legal actions at some state")
  return None


class JointActionAgents(RLAgents):
  """Joint-action learners (Nash-Q), which see every player's actions."""

  def agent_step(self, agent, time_step, actions, is_evaluation=False):
    with warnings.catch_warnings():
      # nashpy warns whenever a stage game of Q-values is degenerate, as the
      # all-zero tables of unvisited states are.
      warnings.filterwarnings("ignore", r"\s*An even number", RuntimeWarning)
      return agent.step(time_step, actions, is_evaluation=is_evaluation)


class ZeroSumVPGAlgorithm(SolverAlgorithm):
  """`ZeroSumVPGSolver` with the temperature annealed geometrically (in
  units of the stage-reward range) and the step proportional to it."""

  def __init__(self, mgame, settings, reward_scale):
    schedule = vpg.geometric_annealing(
        settings.vpg_initial_temperature * reward_scale,
        settings.vpg_final_temperature * reward_scale,
        settings.vpg_temperature_decay)
    self._mgame = mgame
    self._solver = zero_sum_vpg.ZeroSumVPGSolver(
        vsg_spiel.MarkovGame.from_openspiel(mgame.game), temperature=schedule,
        step=lambda iteration: min(1.0, settings.vpg_step * schedule(
            iteration) / reward_scale))


class HomotopyAlgorithm(MarkovAdapter):
  """`homotopy.solve` towards the Nash endpoint with a tolerance that
  tightens tenfold per step: step k returns the first point of the
  principal branch whose largest deviation gain is at most
  10^-(k+1) x the payoff range (payoff units), traced from alpha = infinity
  each time."""

  def __init__(self, mgame, settings, reward_scale):
    del settings  # The trace's step control is the solver's own.
    self._mgame = mgame
    self._payoff_range = reward_scale * max(1, mgame.horizon or 1)
    self._steps = 0
    self._result = None

  def step(self):
    self._steps += 1
    self._result = homotopy.solve(
        self._mgame, maxregret=self._payoff_range * 10.0 ** -self._steps)

  def profile(self):
    if self._result is None:
      return vsg_spiel.uniform_profile(self._mgame)
    return self._result.profile


class BranchAnnealedVPGAlgorithm(SolverAlgorithm):
  """`vpg.BranchAnnealedVPG` from the uniform profile: VPG annealed
  geometrically (temperatures in units of the stage-reward range), checked
  at the final temperature by its residual and, where it has not converged,
  following the principal branch of logit QRE; a step is one VPG iteration
  (none once converged at the final temperature)."""

  def __init__(self, mgame, settings, reward_scale):
    self._mgame = mgame
    # The solver traces the branch on its own tensors, so that its time
    # includes them.
    self._solver = vpg.BranchAnnealedVPG(
        core.MarkovGame.from_openspiel(mgame.game),
        settings.vpg_final_temperature * reward_scale, settings.vpg_step,
        initial_temperature=settings.vpg_initial_temperature * reward_scale,
        decay=settings.vpg_temperature_decay)


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


def nash_q_unsupported(mgame):
  if mgame.num_players != 2:
    return (f"TwoPlayerNashSolver solves 2-player stage games; the game has "
            f"{mgame.num_players} players")
  support_pairs = math.comb(sum(mgame.num_actions), mgame.num_actions[0])
  if support_pairs > MAX_NASH_Q_SUPPORT_PAIRS:
    return (f"support enumeration of {mgame.num_actions[0]}x"
            f"{mgame.num_actions[1]} stage games visits ~{support_pairs:.3g} "
            f"support pairs per solve (limit {MAX_NASH_Q_SUPPORT_PAIRS})")
  return rl_unsupported(mgame)


def make_nash_q(mgame, settings, reward_scale):
  """OpenSpiel's Nash-Q: MultiagentQLearner with TwoPlayerNashSolver."""
  del reward_scale  # OpenSpiel's default hyperparameters.
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


def zero_sum_unsupported(mgame):
  """ZeroSumVPGSolver's own checks (2 players, zero-sum rewards)."""
  try:
    zero_sum_vpg.ZeroSumVPGSolver(mgame)
  except ValueError as error:
    return str(error)
  return None


COMPARE_NASH, ZERO_SUM, RUN_MFG = "compare_nash", "zero_sum", "run_mfg"
RUN_MAI = "run_mai"
for _entry in (
    Entry("vpg_annealed", MARKOV, BranchAnnealedVPGAlgorithm, baseline=False,
          defaults=(COMPARE_NASH,)),
    Entry("vpg", MARKOV, make_vpg, baseline=False, defaults=(COMPARE_NASH,)),
    Entry("vpg_sampled", MARKOV, make_vpg_sampled, baseline=False,
          defaults=(COMPARE_NASH,)),
    Entry("cfr", MARKOV, make_cfr, defaults=(COMPARE_NASH, ZERO_SUM),
          tree_histories_per_second=TREE_HISTORIES_PER_SECOND),
    Entry("cfr_plus", MARKOV, make_cfr_plus,
          defaults=(COMPARE_NASH, ZERO_SUM),
          tree_histories_per_second=TREE_HISTORIES_PER_SECOND),
    Entry("xfp", MARKOV, make_xfp, defaults=(COMPARE_NASH, ZERO_SUM),
          tree_histories_per_second=TREE_HISTORIES_PER_SECOND),
    Entry("qlearning", MARKOV, make_qlearning, rl_unsupported,
          defaults=(COMPARE_NASH,)),
    Entry("boltzmann_qlearning", MARKOV, make_boltzmann_qlearning,
          boltzmann_unsupported, defaults=(COMPARE_NASH,)),
    Entry("wolf_phc", MARKOV, make_wolf_phc, rl_unsupported,
          defaults=(COMPARE_NASH,)),
    Entry("nash_q", MARKOV, make_nash_q, nash_q_unsupported,
          defaults=(COMPARE_NASH,)),
    Entry("zero_sum_vpg", MARKOV, ZeroSumVPGAlgorithm, zero_sum_unsupported,
          baseline=False, defaults=(ZERO_SUM,)),
    Entry("homotopy", MARKOV, HomotopyAlgorithm, baseline=False),
):
  registry.register(_entry)


# ----------------------------------------------------------------------------
# MEAN_FIELD: OpenSpiel's exploitability, computed by the tabular engine
# (equal to OpenSpiel's NashConv to 1e-8).


class MeanFieldAlgorithm:
  """An OpenSpiel mean-field solver (`iteration()`, `get_policy()`)."""

  # Whether the algorithm's time includes building the engine.
  counts_engine_build = False

  def __init__(self, solver, engine):
    self._solver, self._engine = solver, engine

  def step(self):
    self._solver.iteration()

  def policy(self):
    return self._solver.get_policy()

  def nash_conv(self):
    policy = self._engine.policy_function(self.policy())
    return self._engine.nash_conv(self._engine.mean_field(policy))


class MFBQLAlgorithm(MeanFieldAlgorithm):
  """Mean-field Bayesian Q-learning on the engine; its time includes
  building the engine, which it needs."""

  counts_engine_build = True

  def __init__(self, game, engine, settings):
    super().__init__(mf_bayesian_q.MFBayesianQLearning(
        game, temperature=settings.temperature, engine=engine), engine)

  def policy(self):
    return self._solver.policy()

  def nash_conv(self):
    return self._solver.nash_conv()


def _openspiel_mean_field(solver_class, **learning_rate):
  """make(game, engine, settings) for an OpenSpiel solver; `learning_rate`
  names its lr argument if it takes settings.learning_rate."""
  def make(game, engine, settings):
    arguments = {name: settings.learning_rate for name in learning_rate}
    return MeanFieldAlgorithm(solver_class(game, **arguments), engine)
  return make


for _entry in (
    Entry("mf_bql", MEAN_FIELD, MFBQLAlgorithm, baseline=False,
          label="MF-BQL (ours)", defaults=(RUN_MFG,)),
    Entry("mirror_descent", MEAN_FIELD, _openspiel_mean_field(
        mirror_descent.MirrorDescent, lr=True), label="MirrorDescent",
          defaults=(RUN_MFG,)),
    Entry("fictitious_play", MEAN_FIELD, _openspiel_mean_field(
        mfg_fp.FictitiousPlay), label="FictitiousPlay",
          defaults=(RUN_MFG,)),
    Entry("boltzmann_policy_iteration", MEAN_FIELD, _openspiel_mean_field(
        boltzmann_policy_iteration.BoltzmannPolicyIteration, lr=True),
          label="BoltzmannPolicyIteration", defaults=(RUN_MFG,)),
    Entry("munchausen_mirror_descent", MEAN_FIELD, _openspiel_mean_field(
        munchausen_mirror_descent.MunchausenMirrorDescent, lr=True),
          label="MunchausenMirrorDescent", defaults=(RUN_MFG,)),
):
  registry.register(_entry)


# ----------------------------------------------------------------------------
# CONTINUOUS: the agents of vsg_spiel.algorithms, imported on first use (they
# bring TensorFlow, which the other families do not need).


def _continuous(name, module_name, baseline, label, **fixed):
  """The entry of the algorithm module `module_name`; `fixed` are the
  settings an ablation changes from the module's `Settings()`."""
  def module():
    return importlib.import_module(f"vsg_spiel.algorithms.{module_name}")

  def settings():
    return module().Settings(**fixed)

  def make(spec, settings, seed):
    return module().make_agents(spec, settings, seed)

  def unsupported(game):
    if hasattr(game, "continuous_interface"):
      return None
    return (f"{game.get_type().short_name} has no continuous_interface() "
            "(see games/differential.py)")

  return Entry(name, registry.CONTINUOUS, make, unsupported,
               defaults=() if fixed else (RUN_MAI,), baseline=baseline,
               label=label, settings=settings)


for _entry in (
    _continuous("mai", "mai", False, "MAI"),
    _continuous("masql", "masql", True, "MASQL"),
    _continuous("maddpg", "maddpg", True, "MADDPG"),
    _continuous("ddpg", "ddpg", True, "DDPG"),
    _continuous("mai_empirical", "mai", False, "MAI, empirical opponent model",
                opponent_model="empirical"),
    _continuous("mai_marginal", "mai", False, "MAI, marginal policy",
                policy_form="marginal"),
):
  registry.register(_entry)
