r"""Correlated and zero-sum equilibria.

`python -m vsg_spiel.eval.run_equilibria`.

Correlated equilibria (Section 5.3), on one-shot games: the public-signal
VPG device (`CorrelatedVPGSolver`) for each number of signals, temperature
and initialisation, beside OpenSpiel's own correlated-equilibrium solvers on
the same game: JPSRO with a CE meta-solver (max-Gini CE to train, max-welfare
CE to evaluate) and correlated Q-learning (`MultiagentQLearner` with its
`CorrelatedEqSolver`). JPSRO's device is measured by `pyspiel.ce_dist` and
`pyspiel.cce_dist`, the VPG devices' and correlated Q-learning's joint
distributions by our normal-form gaps (equal to those; one VPG device per
game is measured by both, and the difference is reported), with its
per-player values and
social welfare next to the game's Nash equilibria and the welfare-maximising
CE (a linear program). A public signal only mixes equilibria of the
signal-conditioned games, so the gap to the best CE is expected; it is shown.

Zero-sum (Section 5.4): `ZeroSumVPGSolver` with annealed temperature beside
OpenSpiel's CFR, CFR+, XFP (and the exact LP / value-iteration solution for
reference), as exploitability against iterations and wall time.

Writes DIR/equilibria.md, DIR/equilibria.json and DIR/figures/*.png.
"""

import dataclasses
import functools
import importlib.util
import itertools
import os
import time
import warnings

import nashpy
import numpy as np
import pyspiel
from open_spiel.python import rl_environment
from open_spiel.python import rl_tools
from open_spiel.python.algorithms import jpsro
from open_spiel.python.algorithms import lp_solver
from open_spiel.python.algorithms import tabular_multiagent_qlearner
from open_spiel.python.algorithms import value_iteration
from scipy import optimize

import vsg_spiel
from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.eval import adapters
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import comparison
from vsg_spiel.eval import registry
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib

setting = settings_lib.setting

CE_GAMES = (
    "matrix_bos",
    "matrix_sh",
    "matrix_cd",
    "python_vsg_routing(network=braess,num_players=2,horizon=1,split_levels=2)",
    "matrix_shapleys_game",
)
ZERO_SUM_GAMES = (
    "matrix_rps",
    "matrix_mp",
    "matrix_brps",  # OpenSpiel's biased rock-paper-scissors
    "oshi_zumo(coins=4,size=1,horizon=4)",
)
ZERO_SUM_ALGORITHMS = registry.names(registry.MARKOV,
                                     default_for=adapters.ZERO_SUM)


# ----------------------------------------------------------------------------
# Reference points of a normal-form game.

def normal_form(game_string):
  """Payoffs (N, A_1, ..., A_N) of a one-shot game."""
  mgame = vsg_spiel.markov_game(game_string)
  if mgame.num_states != 1 or mgame.horizon != 1:
    raise ValueError(f"{game_string} is not a one-shot game (it has "
                     f"{mgame.num_states} states, horizon {mgame.horizon})")
  return mgame.rewards[:, 0]


def nash_equilibria(payoffs):
  """The 2-player Nash equilibria found by support enumeration (nashpy):
  [(values per player, welfare)]."""
  if payoffs.shape[0] != 2:
    return []
  equilibria = []
  for row, column in nashpy.Game(payoffs[0], payoffs[1]).support_enumeration():
    values = np.array([row @ payoffs[i] @ column for i in range(2)])
    if not any(np.allclose(values, known) for known, _ in equilibria):
      equilibria.append((values, float(values.sum())))
  return equilibria


def max_welfare_ce(payoffs):
  """The welfare-maximising correlated equilibrium, by linear programming:
  max sum_a mu(a) sum_i u_i(a) s.t. for every player i and actions
  a_i, b_i: sum_{a_-i} mu(a_i, a_-i) (u_i(b_i, a_-i) - u_i(a_i, a_-i)) <= 0.
  Returns (joint distribution, values)."""
  num_players = payoffs.shape[0]
  shape = payoffs.shape[1:]
  size = int(np.prod(shape))
  rows = []
  for i in range(num_players):
    utility = np.moveaxis(payoffs[i], i, 0).reshape(shape[i], -1)
    for action, deviation in itertools.permutations(range(shape[i]), 2):
      constraint = np.zeros((shape[i], size // shape[i]))
      constraint[action] = utility[deviation] - utility[action]
      rows.append(np.moveaxis(
          constraint.reshape((shape[i],) + shape[:i] + shape[i + 1:]), 0,
          i).ravel())
  result = optimize.linprog(
      -payoffs.sum(axis=0).ravel(), A_ub=np.array(rows),
      b_ub=np.zeros(len(rows)), A_eq=np.ones((1, size)), b_eq=[1.0],
      bounds=(0, None), method="highs")
  if not result.success:
    raise RuntimeError(f"the CE linear program failed: {result.message}")
  joint = result.x.reshape(shape)
  values = np.array([np.sum(joint * payoffs[i]) for i in range(num_players)])
  return joint, values


# ----------------------------------------------------------------------------
# The devices.

def vpg_device(game_string, num_signals, temperature, initialisation, seed,
               joint, values, seconds):
  """One public-signal VPG device's row: its joint distribution `joint`
  (A_1, ..., A_N) measured by the normal-form CE and CCE gaps
  (`correlated_vpg.normal_form_ce_gaps`, equal to `pyspiel.ce_dist` and
  `pyspiel.cce_dist`, whose tree walk on a Python game is most of a
  device's time), with its players' `values` and `seconds`."""
  ce_gaps, cce_gaps = correlated_vpg.normal_form_ce_gaps(
      joint, normal_form(game_string))
  return {"method": "vpg", "num_signals": num_signals,
          "temperature": temperature, "initialisation": initialisation,
          "seed": seed, "ce_dist": float(ce_gaps.sum()),
          "cce_dist": float(cce_gaps.sum()), "values": values,
          "welfare": float(values.sum()), "seconds": seconds,
          "joint": joint}


# Whether OpenSpiel's CE programs can use CVXOPT (see `_openspiel_programs`).
_CVXOPT_MISSING = importlib.util.find_spec("cvxopt") is None


def _osqp_only(program, *args, **kwargs):
  """`jpsro._try_two_solvers`'s fallback alone: `program` by OSQP."""
  return program(*args, **{"solver_kwargs": jpsro.DEFAULT_OSQP_SOLVER_KWARGS,
                           **kwargs})


def _openspiel_programs(function):
  """Runs `function`, which solves OpenSpiel's CE programs (JPSRO's meta
  solvers, correlated Q-learning's stage games):

    * without the FutureWarning scipy.sparse.diags gives for the integer
      repeat counts OpenSpiel's JPSRO passes it (the output is float64 as
      before); it would print among the progress lines once per worker;
    * where cvxopt is not installed, straight to OSQP: `jpsro`'s
      `_try_two_solvers` tries CVXOPT first and falls back on OSQP, so
      without cvxopt every program was built twice, once only to fail (half
      of a correlated Q-learning cell's time). The same program goes to the
      same solver with the same settings, so the answers are the same.
  """
  @functools.wraps(function)
  def run(*args, **kwargs):
    both = jpsro._try_two_solvers  # pylint: disable=protected-access
    if _CVXOPT_MISSING:
      jpsro._try_two_solvers = _osqp_only  # pylint: disable=protected-access
    try:
      with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input has data type int64",
                                category=FutureWarning)
        return function(*args, **kwargs)
    finally:
      jpsro._try_two_solvers = both  # pylint: disable=protected-access
  return run


@_openspiel_programs
def jpsro_device(game_string, iterations, seed):
  """JPSRO (target CE, max-Gini CE meta-solver to train, max-welfare CE to
  evaluate): its final evaluation device, measured by pyspiel."""
  game = pyspiel.load_game_as_turn_based(game_string)
  recorded = {}

  def record(iteration, per_player_repeats, per_player_policies,
             joint_policies, joint_returns, meta_games, train_meta_dists,
             eval_meta_dists, train_meta_values, eval_meta_values,
             train_meta_gaps, eval_meta_gaps, kwargs, checkpoint):
    del iteration, per_player_repeats, per_player_policies, joint_returns
    del meta_games, train_meta_dists, train_meta_values, train_meta_gaps
    del eval_meta_gaps, kwargs
    recorded.update(joint_policies=joint_policies,
                    distribution=eval_meta_dists[-1],
                    values=eval_meta_values[-1])
    return checkpoint

  start = time.perf_counter()
  jpsro.run_loop(game, game_string, seed=seed, iterations=iterations,
                 target_equilibrium="ce", train_meta_solver="mgce",
                 eval_meta_solver="mwce", callback=record)
  seconds = time.perf_counter() - start
  distribution = recorded["distribution"]
  device = [(float(distribution[index]), recorded["joint_policies"][index])
            for index in np.ndindex(distribution.shape)
            if distribution[index] > 0]
  values = np.asarray(recorded["values"], dtype=np.float64)
  return {"method": "jpsro",
          "ce_dist": pyspiel.ce_dist(
              game, pyspiel.determinize_corr_dev(device)).dist_value,
          "cce_dist": pyspiel.cce_dist(game, device).dist_value,
          "values": values, "welfare": float(values.sum()),
          "seconds": seconds}


class _SameGameSolvedOnce:
  """A joint-action solver (stage-game payoffs (N, A_1, ..., A_N) ->
  (mixtures, values)) that solves each stage game once: the correlated
  Q-learners all hold the same Q tables (each updates every player's from
  the same joint actions and rewards), so every agent asks OpenSpiel's
  solver (a quadratic program) for the same stage game in a step, and the
  terminal state's all-zero game in every episode. Returns the stored
  answer, which the learners only read."""

  def __init__(self, solver):
    self._solver, self._solved = solver, {}

  def __call__(self, payoffs_array):
    key = (payoffs_array.shape, payoffs_array.tobytes())
    if key not in self._solved:
      self._solved[key] = self._solver(payoffs_array)
    return self._solved[key]


@_openspiel_programs
def correlated_q_device(game_string, episodes, seed):
  """Correlated Q-learning: joint-action learners whose one-step games are
  solved by OpenSpiel's CorrelatedEqSolver; the device is that solver's
  joint distribution on the learned Q at the (only) state."""
  payoffs = normal_form(game_string)
  environment = rl_environment.Environment(game_string)
  environment.seed(seed)
  np.random.seed(seed)
  num_players = environment.num_players
  num_actions = [environment.action_spec()["num_actions"]] * num_players
  solver = _SameGameSolvedOnce(
      tabular_multiagent_qlearner.CorrelatedEqSolver(is_cce=False))
  agents = [tabular_multiagent_qlearner.MultiagentQLearner(
      player, num_players, num_actions, solver,
      epsilon_schedule=rl_tools.ConstantSchedule(0.2))
            for player in range(num_players)]
  start = time.perf_counter()
  for _ in range(episodes):
    time_step = environment.reset()
    actions = [None] * num_players
    while not time_step.last():
      actions = [agent.step(time_step, actions).action for agent in agents]
      time_step = environment.step(actions)
    for agent in agents:
      agent.step(time_step, actions)
  seconds = time.perf_counter() - start
  info_state = str(environment.reset().observations["info_state"])
  learned = agents[0]._get_payoffs_array(info_state)  # pylint: disable=protected-access
  joint, _ = jpsro._mgcce(  # pylint: disable=protected-access
      learned, [np.ones(n, dtype=np.int32) for n in num_actions],
      ignore_repeats=True)
  joint = np.clip(joint, 0, None) / np.clip(joint, 0, None).sum()
  ce_gaps, cce_gaps = correlated_vpg.normal_form_ce_gaps(joint, payoffs)
  values = np.array([np.sum(joint * payoffs[i]) for i in range(num_players)])
  return {"method": "correlated_q", "ce_dist": float(ce_gaps.sum()),
          "cce_dist": float(cce_gaps.sum()), "values": values,
          "welfare": float(values.sum()), "seconds": seconds,
          "joint": joint}


def vpg_devices(game_string, signals, temperatures, iterations, seeds):
  """VPG devices for every number of signals, temperature and start, after
  `iterations`. The devices of one temperature run together
  (`correlated_vpg.CorrelatedVPGBatch`, each exactly as its own
  `CorrelatedVPGSolver`); a device's seconds are its batch's divided by
  its number of devices. The last device (the most signals, a random start)
  is also run alone and measured by pyspiel: its row's
  openspiel_abs_difference is the largest difference between pyspiel's
  distances of that run and our gaps of the batched one."""
  mgame = vsg_spiel.markov_game(game_string)  # enumerated once per process
  starts = [("distinct", 0), ("shared", 0)] + [("random", seed)
                                               for seed in range(seeds)]
  runs = [(num_signals, temperature, initialisation, seed)
          for num_signals in signals for temperature in temperatures
          for initialisation, seed in starts]
  rows = [None] * len(runs)
  for temperature in dict.fromkeys(temperatures):
    indices = [index for index, run in enumerate(runs)
               if run[1] == temperature]
    start = time.perf_counter()
    batch = correlated_vpg.CorrelatedVPGBatch(
        mgame, [(runs[index][0],) + runs[index][2:] for index in indices],
        temperature=temperature)
    for _ in range(iterations):
      batch.iteration()
    seconds = (time.perf_counter() - start) / len(indices)
    for index, joint, values in zip(indices, batch.joint_distributions(),
                                    batch.player_values()):
      rows[index] = vpg_device(game_string, *runs[index], joint[0], values,
                               seconds)
  num_signals, temperature, initialisation, seed = runs[-1]
  alone = correlated_vpg.CorrelatedVPGSolver(
      mgame, num_signals=num_signals, temperature=temperature,
      initialisation=initialisation, seed=seed)
  for _ in range(iterations):
    alone.iteration()
  rows[-1]["openspiel_abs_difference"] = max(
      abs(alone.ce_dist().dist_value - rows[-1]["ce_dist"]),
      abs(alone.cce_dist().dist_value - rows[-1]["cce_dist"]))
  return rows


def references(game_string):
  """The game's Nash equilibria and welfare-maximising CE."""
  payoffs = normal_form(game_string)
  best_joint, best_values = max_welfare_ce(payoffs)
  return {"nash_equilibria": [{"values": values, "welfare": welfare}
                              for values, welfare in
                              nash_equilibria(payoffs)],
          "max_welfare_ce": {"values": best_values,
                             "welfare": float(best_values.sum()),
                             "joint": best_joint}}


# ----------------------------------------------------------------------------
# Zero-sum games.

# Zero-sum VPG: annealed from 1 to 1e-3 stage-reward ranges by 0.995 per
# iteration, step 0.05 x alpha / range (DESIGN: the soft objective's
# curvature grows like 1/alpha).
ZERO_SUM_SETTINGS = dict(vpg_initial_temperature=1.0,
                         vpg_final_temperature=1e-3,
                         vpg_temperature_decay=0.995, vpg_step=0.05)


def zero_sum_game(game_string, algorithms, time_budget, max_iterations):
  """Exploitability against iterations and seconds: zero-sum VPG and
  OpenSpiel's CFR, CFR+ and XFP (the comparison's runner), and the exact
  solution for reference. One algorithm runs per cell; the cells are merged
  with `comparison.merge_games`."""
  settings = comparison.ComparisonSettings(time_budget=time_budget,
                                           max_iterations=max_iterations,
                                           **ZERO_SUM_SETTINGS)
  result = comparison.run_game(game_string, algorithms, settings)
  result["exact"] = exact_solution(game_string)
  return result


@functools.lru_cache(maxsize=8)
def exact_solution(game_string):
  """The game's value for player 0 by OpenSpiel's exact solvers: the
  zero-sum LP on a one-shot game, value iteration (an LP per simultaneous
  node) on a multi-stage one; with the seconds they took. Computed once per
  process (the game's cells, one per algorithm, share it); the caller only
  reads the returned dict."""
  start = time.perf_counter()
  mgame = vsg_spiel.markov_game(game_string)
  if mgame.num_states == 1:
    payoffs = mgame.rewards[:, 0]
    value = lp_solver.solve_zero_sum_matrix_game(pyspiel.create_matrix_game(
        payoffs[0].tolist(), payoffs[1].tolist()))[2]
    solver = "lp_solver.solve_zero_sum_matrix_game"
  else:
    game = pyspiel.load_game(game_string)
    values = value_iteration.value_iteration(game, depth_limit=-1,
                                             threshold=1e-12)
    value = values[str(game.new_initial_state())]
    solver = "value_iteration.value_iteration"
  return {"solver": solver, "value": float(value),
          "seconds": time.perf_counter() - start}


def zero_sum_markdown(results):
  table = []
  for result in results:
    for name, run in result["algorithms"].items():
      if "skipped" in run or "failed" in run:
        reason = run.get("skipped") or run["failed"]
        kind = "skipped" if "skipped" in run else "failed"
        table.append([f"`{result['game']}`", name, f"{kind}: {reason}", "",
                      "", ""])
        continue
      reached = run["time_to_threshold"]
      table.append([
          f"`{result['game']}`", name, run["iterations"],
          f"{run['seconds']:.3g}", run["final_nash_conv"] / 2,
          "not reached" if reached is None else f"{reached:.3g}"])
    exact = result["exact"]
    table.append([f"`{result['game']}`",
                  f"exact value {exact['value']:.4g} ({exact['solver']})",
                  "", f"{exact['seconds']:.3g}", 0.0, ""])
  threshold = results[0]["settings"]["threshold"] if results else 0
  return ("### Zero-sum games (Section 5.4)\n\n"
          "Exploitability (NashConv / 2, exact, equal to OpenSpiel's) of the "
          "final policies and the time to reach exploitability <= "
          f"{threshold / 2:g} x payoff range; seconds are each algorithm's "
          "own work.\n\n" + common.markdown_table(
              ["game", "algorithm", "steps", "seconds", "exploitability",
               "time to threshold (s)"], table) + "\n")


# ----------------------------------------------------------------------------
# Outputs.

def ce_markdown(results):
  lines = ["## Correlated equilibria (Section 5.3)", "",
           "Public-signal VPG devices (best and worst over initialisations "
           "for each number of signals and temperature; `distinct`/`shared` "
           "start the signals at different/common recommendations, `random` "
           "from seeded noise) beside OpenSpiel's JPSRO (CE) and correlated "
           "Q-learning. " + distances_sentence(results) + " Values are "
           "expected payoffs under the device; a VPG device's seconds are "
           "its share of its batch (the devices of one temperature run as "
           "one VPG, `CorrelatedVPGBatch`).", ""]
  for result in results:
    lines += [f"### `{result['game']}`", ""]
    references = [f"Nash equilibrium: values {np.round(ne['values'], 3)}, "
                  f"welfare {ne['welfare']:.3f}"
                  for ne in result["nash_equilibria"]]
    best = result["max_welfare_ce"]
    references.append(f"welfare-maximising CE (LP): values "
                      f"{np.round(best['values'], 3)}, welfare "
                      f"{best['welfare']:.3f}")
    lines += [f"- {text}" for text in references] + [""]
    table = []
    for row in result["rows"]:
      label = (f"vpg W={row['num_signals']} alpha={row['temperature']} "
               f"{row['initialisation']}"
               + (f" seed {row['seed']}" if row["initialisation"] == "random"
                  else "")
               if row["method"] == "vpg" else row["method"])
      table.append([label, row["ce_dist"], row["cce_dist"],
                    str(np.round(row["values"], 3).tolist()), row["welfare"],
                    row["seconds"]])
    lines += [common.markdown_table(
        ["device", "ce_dist", "cce_dist", "values", "welfare", "seconds"],
        table), ""]
  return "\n".join(lines)


def ce_summary_markdown(results):
  """Per game and number of signals, the VPG device closest to a CE (ties:
  the higher welfare) beside JPSRO, correlated Q-learning and the
  references."""
  table = []
  for result in results:
    vpg_rows = [r for r in result["rows"] if r["method"] == "vpg"]
    for num_signals in sorted({r["num_signals"] for r in vpg_rows}):
      best = min((r for r in vpg_rows if r["num_signals"] == num_signals),
                 key=lambda r: (round(r["ce_dist"], 9), -r["welfare"]))
      table.append([f"`{result['game']}`",
                    f"VPG W={num_signals} (alpha={best['temperature']}, "
                    f"{best['initialisation']})", best["ce_dist"],
                    best["cce_dist"], str(np.round(best["values"], 3).tolist()),
                    best["welfare"]])
    for row in result["rows"]:
      if row["method"] != "vpg":
        table.append([f"`{result['game']}`", row["method"], row["ce_dist"],
                      row["cce_dist"], str(np.round(row["values"], 3).tolist()),
                      row["welfare"]])
    best_ce = result["max_welfare_ce"]
    table.append([f"`{result['game']}`", "max-welfare CE (LP)", 0.0, 0.0,
                  str(np.round(best_ce["values"], 3).tolist()),
                  best_ce["welfare"]])
    for ne in result["nash_equilibria"]:
      table.append([f"`{result['game']}`", "Nash equilibrium", 0.0, 0.0,
                    str(np.round(ne["values"], 3).tolist()), ne["welfare"]])
  return common.markdown_table(
      ["game", "device", "ce_dist", "cce_dist", "values", "welfare"],
      table) + "\n\n" + distances_sentence(results)


def distances_sentence(results):
  """How the distances were measured, with the largest difference between
  our normal-form gaps and pyspiel's on the VPG devices measured by both."""
  checked = [row["openspiel_abs_difference"] for result in results
             for row in result["rows"] if "openspiel_abs_difference" in row]
  difference = (f"the largest difference over the VPG devices measured by "
                f"both (one per game, {len(checked)} here): "
                f"{max(checked):.1e}"
                if checked else "no VPG device was measured by both")
  return ("ce_dist and cce_dist: `pyspiel.ce_dist` / `pyspiel.cce_dist` for "
          "JPSRO; our normal-form gaps of the joint distribution "
          "(`correlated_vpg.normal_form_ce_gaps`) for the VPG devices and "
          f"correlated Q-learning; {difference}.")


def plot_ce(results, path):
  plt = common.pyplot()
  figure, axes = plt.subplots(2, len(results), squeeze=False,
                              figsize=(3.6 * len(results), 6.4),
                              constrained_layout=True)
  for column, result in enumerate(results):
    top, bottom = axes[0, column], axes[1, column]
    vpg_rows = [r for r in result["rows"] if r["method"] == "vpg"]
    signals = sorted({r["num_signals"] for r in vpg_rows})
    for temperature in sorted({r["temperature"] for r in vpg_rows}):
      # Per W, the device closest to a CE (ties: the higher welfare).
      chosen = [min((r for r in vpg_rows if r["num_signals"] == w and
                     r["temperature"] == temperature),
                    key=lambda r: (round(r["ce_dist"], 9), -r["welfare"]))
                for w in signals]
      label = f"VPG alpha={temperature}"
      top.plot(signals, [max(r["ce_dist"], 1e-12) for r in chosen], "o-",
               label=label)
      bottom.plot(signals, [r["welfare"] for r in chosen], "o-", label=label)
    for row, style in zip([r for r in result["rows"] if r["method"] != "vpg"],
                          ("k--", "k:")):
      top.axhline(max(row["ce_dist"], 1e-12), linestyle=style[1:],
                  color="k", label=row["method"])
      bottom.axhline(row["welfare"], linestyle=style[1:], color="k",
                     label=row["method"])
    bottom.axhline(result["max_welfare_ce"]["welfare"], color="tab:red",
                   label="max-welfare CE")
    for ne in result["nash_equilibria"]:
      bottom.axhline(ne["welfare"], color="tab:gray", linewidth=0.8)
    top.set_yscale("log")
    top.set_title(result["game"][:30], fontsize=9)
    top.set_ylabel("ce_dist")
    bottom.set_ylabel("social welfare of that device")
    for axis in (top, bottom):
      axis.set_xlabel("number of signals W")
      axis.set_xticks(signals)
  axes[0, 0].legend(fontsize=7)
  axes[1, 0].legend(fontsize=7, title="gray: Nash equilibria",
                    title_fontsize=7)
  figure.suptitle("Public-signal VPG devices (per W, the start closest to a "
                  "CE) versus OpenSpiel's CE solvers (0 drawn at 1e-12)")
  common.save_figure(figure, path)


def validate_one_shot(games):
  """ValueError unless every game is a one-shot game."""
  for game_string in games:
    try:
      normal_form(game_string)
    except pyspiel.SpielError as error:
      raise ValueError(f"{game_string}: {error}") from error
    except ValueError as error:
      raise ValueError(f"{game_string}: {error}") from error


def validate_zero_sum(games):
  """ValueError unless every game is a two-player zero-sum game the
  comparison can run."""
  for game_string in games:
    reason = adapters.zero_sum_unsupported(
        comparison.load_markov_game(game_string))
    if reason:
      raise ValueError(f"{game_string}: {reason}")


def plot_zero_sum(result, figures):
  comparison.plot_game(result, os.path.join(
      figures, f"zero_sum_{result['slug']}.png"))


# ----------------------------------------------------------------------------
# Settings, cells and the binary.


@dataclasses.dataclass(frozen=True)
class EquilibriaSettings:
  """The correlated and zero-sum sections' settings."""
  ce_games: tuple[str, ...] = setting(
      CE_GAMES, "One-shot games for the CE section.", games=True,
      check=validate_one_shot)
  signals: tuple[int, ...] = setting((1, 2, 3), "Numbers of signals W.",
                                     at_least=1)
  ce_temperatures: tuple[float, ...] = setting(
      (0.02, 0.1, 0.5), "Temperatures of the CE solver (reward units).",
      above=0)
  ce_iterations: int = setting(1000, "Iterations of the CE solver.",
                               at_least=1)
  ce_num_seeds: int = setting(3, "Seeds of the random initialisation.",
                          at_least=1)
  jpsro_iterations: int = setting(8, "JPSRO iterations.", at_least=1)
  cq_episodes: int = setting(300, "Correlated Q-learning episodes.",
                             at_least=1)
  zero_sum_games: tuple[str, ...] = setting(
      ZERO_SUM_GAMES, "Two-player zero-sum games for the zero-sum section.",
      games=True, check=validate_zero_sum)
  zero_sum_algorithms: tuple[str, ...] = setting(
      ZERO_SUM_ALGORITHMS, "Zero-sum algorithms of the registry.",
      choices=comparison.markov_names)
  time_budget: float = setting(
      10.0, "Seconds per zero-sum algorithm and game.", above=0)
  max_iterations: int = setting(
      100_000, "Most iterations per zero-sum algorithm and game.", at_least=1)


def cells(settings, section="equilibria"):
  """The zero-sum runs (one per game and algorithm) and, per CE game, the
  VPG devices, JPSRO, correlated Q-learning and the references."""
  work = [cells_lib.Cell(section, ("zero_sum", game, algorithm),
                         "vsg_spiel.eval.run_equilibria:zero_sum_game",
                         dict(game_string=game, algorithms=[algorithm],
                              time_budget=settings.time_budget,
                              max_iterations=settings.max_iterations))
          for game in settings.zero_sum_games
          for algorithm in dict.fromkeys(settings.zero_sum_algorithms)]
  for game in settings.ce_games:
    work += [
        cells_lib.Cell(section, ("vpg", game),
                       "vsg_spiel.eval.run_equilibria:vpg_devices",
                       dict(game_string=game, signals=list(settings.signals),
                            temperatures=list(settings.ce_temperatures),
                            iterations=settings.ce_iterations,
                            seeds=settings.ce_num_seeds)),
        cells_lib.Cell(section, ("jpsro", game),
                       "vsg_spiel.eval.run_equilibria:jpsro_device",
                       dict(game_string=game,
                            iterations=settings.jpsro_iterations, seed=0)),
        cells_lib.Cell(section, ("correlated_q", game),
                       "vsg_spiel.eval.run_equilibria:correlated_q_device",
                       dict(game_string=game, episodes=settings.cq_episodes,
                            seed=0)),
        cells_lib.Cell(section, ("references", game),
                       "vsg_spiel.eval.run_equilibria:references",
                       dict(game_string=game)),
    ]
  return work


def assemble(results, settings):
  """(CE results per game, merged zero-sum results) from the cells' results
  keyed by cell key; a game whose references failed is left out, and a
  failed device is missing from its game's rows."""
  zero_sum = comparison.merge_games(
      results[key] for key in (("zero_sum", game, algorithm)
                               for game in settings.zero_sum_games
                               for algorithm in dict.fromkeys(
                                   settings.zero_sum_algorithms))
      if key in results)
  correlated = []
  for game in settings.ce_games:
    if ("references", game) not in results:
      continue
    rows = list(results.get(("vpg", game), []))
    rows += [results[kind, game] for kind in ("jpsro", "correlated_q")
             if (kind, game) in results]
    correlated.append(dict(game=game, rows=rows,
                           **results["references", game]))
  return correlated, zero_sum


@dataclasses.dataclass(frozen=True)
class EquilibriaFlags(EquilibriaSettings):
  out: str = settings_lib.output("equilibria_out")


def main(flags):
  outcome = cells_lib.run_cells(cells(flags), cells_lib.CellStore(flags.out))
  ce_results, zero_sum_results = assemble(outcome.section("equilibria"),
                                          flags)
  figures = os.path.join(flags.out, "figures")
  for result in zero_sum_results:
    plot_zero_sum(result, figures)
  common.atomic_write_json(
      os.path.join(flags.out, "equilibria.json"),
      {"correlated": ce_results, "zero_sum": zero_sum_results,
       "settings": dataclasses.asdict(flags), "failed": outcome.failures()})
  if ce_results:
    plot_ce(ce_results, os.path.join(figures, "correlated.png"))
  common.atomic_write_text(os.path.join(flags.out, "equilibria.md"),
                           "# Correlated and zero-sum equilibria\n\n" +
                           ce_markdown(ce_results) + "\n" +
                           zero_sum_markdown(zero_sum_results))
  print(f"wrote {os.path.join(flags.out, 'equilibria.md')}")
  return cells_lib.exit_status(runner.outcome_failures(outcome))


if __name__ == "__main__":
  settings_lib.run(EquilibriaFlags, main)
