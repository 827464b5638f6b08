r"""Theorem 4.2 measured: `python -m vsg_spiel.eval.epsilon --out=DIR`.

For every game, temperature alpha, policy form and opponent model, VPG runs
until its policies stop moving (or an iteration cap), and one row records:

  * the ELBO gap per agent: under q, where agent i sees the predicted
    opponent action, the best response's value minus the policy's value.
    This is what the proof of Theorem 4.2 bounds;
  * the true deviation gains and NashConv of the played (marginal) policies,
    measured by OpenSpiel's `exploitability.nash_conv` on the turn-based
    conversion for the exact-model rows wherever its tree is small enough,
    with the difference to our exact core (otherwise, and for the learned
    models, by our core; the `measured_by` column says which);
  * the row's certificate: the fixed-point residual of the played profile
    (`VPGSolver.residual`, the soft logit-QRE equations) and whether it is
    within the solver's tolerance ("converged"; a row that only stopped
    moving is not called converged);
  * the bound epsilon = alpha * T * log max_i |A_i|, and which numbers exceed
    it (NashConv against N * epsilon). Failing rows are kept, with the
    profile reached;
  * for the empirical and variational models, Proposition 5.5: the largest
    KL(rho^i || pi_-i), the largest soft-Q error it causes and the bound
    delta (finite-horizon form, T for 1/(1-gamma) and the reward bound
    R = max|r|/alpha for 1: delta = 2 (R + log|A|) T^2 sqrt(eps_p/2) +
    eps_p T);
  * the opponent-reward ablation: "variational" (learned rhat_j, eqs. 8-9)
    beside "variational_oracle" (true r^j).

Theorem 5.8 on the routing game (a Markov potential game): the expected
potential E[sum_t Phi_t] and the entropy-regularised potential objective
along VPG's iterates for several step sizes, plotted, with whether each is
monotone.

Writes DIR/epsilon.md, DIR/epsilon.json and DIR/figures/*.png.
"""

import dataclasses
import os
import time

import numpy as np
import pyspiel
from open_spiel.python.algorithms import (
    exploitability as openspiel_exploitability)

import vsg_spiel
from vsg_spiel import core
from vsg_spiel.algorithms import vpg
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import runner
from vsg_spiel.eval import settings as settings_lib

setting = settings_lib.setting

DEFAULT_GAMES = (
    "python_vsg_differential(horizon=1)",
    "python_vsg_routing(network=braess,num_players=2,horizon=2,split_levels=3)",
    "matrix_sh",
    "matrix_bos",
    "matrix_rps",
    "matrix_pd",
    "python_iterated_prisoners_dilemma(max_game_length=2)",
)
OPPONENT_MODELS = ("exact", "empirical", "variational", "variational_oracle")
POTENTIAL_GAME = (
    "python_vsg_routing(network=braess,num_players=3,horizon=2,split_levels=2)")


def make_solver(game, temperature, policy_form, opponent_model, step):
  oracle = opponent_model == "variational_oracle"
  return vpg.VPGSolver(
      game, temperature=temperature, step=step,
      opponent_model="variational" if oracle else opponent_model,
      policy_form=policy_form, oracle_reward=oracle)


def run_to_convergence(solver, max_iterations, tolerance):
  """Iterates until no conditional policy entry moves by more than
  `tolerance`; returns (iterations, stopped): whether it stopped before
  the cap. Stopping is not convergence to the ELBO solution: the row's
  certificate is the fixed-point residual (`epsilon_row`)."""
  previous = solver.conditional_policies()
  for iteration in range(1, max_iterations + 1):
    solver.iteration()
    current = solver.conditional_policies()
    change = max(np.abs(a - b).max() for a, b in zip(current, previous))
    previous = current
    if change < tolerance:
      return iteration, True
  return max_iterations, False


def measure(game, mgame, solver, max_nodes):
  """True gains of the marginal policies, by OpenSpiel where feasible."""
  ours = solver.deviation_gains()
  if core.turn_based_tree_size(mgame) <= max_nodes:
    result = openspiel_exploitability.nash_conv(
        pyspiel.convert_to_turn_based(game), solver.policy(),
        return_only_nash_conv=False)
    gains = np.asarray(result.player_improvements, dtype=np.float64)
    return gains, "open_spiel", float(np.max(np.abs(gains - ours)))
  return ours, "vsg_spiel", None


def proposition_5_5(solver, temperature, epsilon_p):
  """(max soft-Q error caused by the model, the finite-horizon delta)."""
  mgame = solver.mgame
  model_q = solver.soft_q_values(temperature, opponent="model")
  exact_q = solver.soft_q_values(temperature, opponent="exact")
  q_error = max(float(np.max(np.abs(a - b))) for a, b in zip(model_q, exact_q))
  reward_bound = float(np.max(np.abs(mgame.rewards))) / temperature
  log_actions = np.log(mgame.max_legal_actions)
  horizon = mgame.horizon
  delta = (2 * (reward_bound + log_actions) * horizon**2 *
           np.sqrt(epsilon_p / 2) + epsilon_p * horizon)
  return q_error, float(delta)


def profile_summary(solver):
  """The played policies at the initial state(s), rounded, for the table."""
  start = np.flatnonzero(solver.mgame.initial_distribution)[0]
  return [np.round(policy[start], 3).tolist()
          for policy in solver.profile()]


def epsilon_row(game_string, temperature, policy_form, opponent_model,
                settings):
  """One row of the Theorem 4.2 table."""
  mgame = vsg_spiel.markov_game(game_string)  # enumerated once per process
  game = mgame.game
  solver = make_solver(mgame, temperature, policy_form, opponent_model,
                       settings["step"])
  start = time.perf_counter()
  iterations, stopped = run_to_convergence(
      solver, settings["max_iterations"], settings["tolerance"])
  seconds = time.perf_counter() - start
  residual = solver.residual
  epsilon = vsg_spiel.epsilon_bound(mgame, temperature)
  elbo_gaps = solver.elbo_gaps()
  gains, measured_by, difference = measure(game, mgame, solver,
                                           settings["openspiel_max_nodes"])
  nash_conv = float(np.sum(gains))
  row = {
      "game": game_string, "temperature": temperature,
      "policy_form": policy_form, "opponent_model": opponent_model,
      "iterations": iterations, "stopped": stopped, "seconds": seconds,
      "residual": residual, "residual_tolerance": solver.tolerance,
      "converged": bool(residual <= solver.tolerance),
      "epsilon": epsilon, "elbo_gaps": elbo_gaps, "max_elbo_gap":
      float(elbo_gaps.max()), "deviation_gains": gains,
      "max_deviation_gain": float(gains.max()), "nash_conv": nash_conv,
      "measured_by": measured_by, "openspiel_vs_ours": difference,
      "elbo_exceeds": bool(elbo_gaps.max() > epsilon),
      "gain_exceeds": bool(gains.max() > epsilon),
      "nash_conv_exceeds": bool(nash_conv > mgame.num_players * epsilon),
  }
  if opponent_model != "exact":
    epsilon_p = float(solver.opponent_model_kl().max())
    q_error, delta = proposition_5_5(solver, temperature, epsilon_p)
    row.update(model_kl=epsilon_p, q_error=q_error, delta=delta)
  if row["elbo_exceeds"] or row["gain_exceeds"]:
    row["profile"] = profile_summary(solver)
  return row


def potential_run(game_string, step, temperature, iterations):
  """Theorem 5.8: E[sum_t Phi_t] and the regularised potential objective
  F = E[sum_t (-Phi_t + alpha sum_i H(pi_i(.|s_t)))] along VPG (marginal
  form, exact models: natural policy gradient on F by Prop. 5.6)."""
  mgame = vsg_spiel.markov_game(game_string)  # enumerated once per process
  regimes = np.array([state.regime for state in mgame.states])
  potentials = mgame.game.stage_potentials()[regimes]  # (S, A, ..., A)
  solver = vpg.VPGSolver(mgame, temperature=temperature, step=step,
                         policy_form="marginal")
  expected_potential, objective = [], []
  for _ in range(iterations + 1):
    profile = solver.profile()
    entropy = sum(-np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)),
                                   0.0), axis=1) for p in profile)
    entropy = entropy.reshape((-1,) + (1,) * mgame.num_players)
    rewards = np.stack([potentials, -potentials + temperature * entropy])
    values = mgame.initial_distribution @ vsg_spiel.policy_values(
        mgame, profile, rewards=rewards)
    expected_potential.append(float(values[0]))
    objective.append(float(values[1]))
    solver.iteration()
  objective_steps = np.diff(objective)
  return {
      "game": game_string, "step": step, "temperature": temperature,
      "expected_potential": expected_potential,
      "regularised_objective": objective,
      "objective_monotone": bool(np.all(objective_steps >= -1e-12)),
      "largest_decrease": float(max(0.0, -objective_steps.min())),
      "final_nash_conv": solver.nash_conv(),
  }


def compact_table(rows):
  """(headers, rows) of the table per game and alpha: the worst ELBO gap and
  true gain over forms and opponent models, epsilon, and how many rows stay
  within it and are certified fixed points."""
  groups = {}
  for row in rows:
    groups.setdefault((row["game"], row["temperature"]), []).append(row)
  headers = ["game", "alpha", "epsilon", "worst ELBO gap", "worst true gain",
             "ELBO gap <= epsilon", "true gain <= epsilon",
             "certified fixed points"]
  table = []
  for (game, alpha), group in groups.items():
    count = len(group)
    table.append([
        f"`{game}`", alpha, group[0]["epsilon"],
        max(row["max_elbo_gap"] for row in group),
        max(row["max_deviation_gain"] for row in group),
        f"{sum(not row['elbo_exceeds'] for row in group)}/{count}",
        f"{sum(not row['gain_exceeds'] for row in group)}/{count}",
        f"{sum(row['converged'] for row in group)}/{count}"])
  return headers, table


def markdown(rows, potential_runs):
  headers = ["game", "alpha", "form", "opponent model", "iters",
             "residual", "fixed point", "epsilon",
             "max ELBO gap", "max true gain", "NashConv", "measured by",
             "exceeds", "KL(rho||pi)", "Q error", "delta"]
  table = []
  for row in rows:
    exceeds = [name for name, key in (("ELBO", "elbo_exceeds"),
                                      ("gain", "gain_exceeds"),
                                      ("NashConv", "nash_conv_exceeds"))
               if row[key]]
    table.append([
        f"`{row['game']}`", row["temperature"], row["policy_form"],
        row["opponent_model"],
        f"{row['iterations']}{'' if row['stopped'] else ' (cap)'}",
        f"{row['residual']:.1e}", "yes" if row["converged"] else "no",
        row["epsilon"], row["max_elbo_gap"], row["max_deviation_gain"],
        row["nash_conv"], row["measured_by"], ", ".join(exceeds) or "-",
        row.get("model_kl", "-"), row.get("q_error", "-"),
        row.get("delta", "-")])
  lines = ["# Theorem 4.2: epsilon measured", "",
           "epsilon = alpha T log max|A_i|; a gain exceeds it when an agent "
           "gains more than epsilon, NashConv when it exceeds N epsilon. "
           "ELBO gap: under q, where the agent sees the predicted opponent "
           "action (what the proof bounds); true gain: the best response "
           "to the others' marginal policies, by OpenSpiel's nash_conv on "
           "small trees of the exact-model rows, else by our exact core "
           "(equal to OpenSpiel's to 1e-9; the 'measured by' column says "
           "which).", "",
           "Each row's certificate: iters is where no policy entry moved "
           "by more than the tolerance any more ((cap): it never stopped); "
           "residual is max |pi_i(a|s) - softmax(Q_i(s,.)/alpha)(a)| of the "
           "played profile (the soft fixed-point equations, "
           "`homotopy.fixed_point_residual`), and 'fixed point' says "
           "whether it is within the solver's tolerance. Only the marginal "
           "form with exact opponent models converges to that fixed point "
           "(the logit QRE); the other forms and models stop elsewhere, so "
           "their rows are not certified fixed points even when they "
           "stopped moving.", "",
           "## Per game and alpha: the worst row", "",
           common.markdown_table(*compact_table(rows)), "",
           "## Every row", "",
           common.markdown_table(headers, table), ""]
  failing = [row for row in rows if "profile" in row]
  if failing:
    lines += ["## Rows where a bound fails: the profile reached", "",
              "Played (marginal) policy of each player at the initial "
              "state.", ""]
    lines += [f"- `{row['game']}` alpha={row['temperature']} "
              f"{row['policy_form']}/{row['opponent_model']}: "
              f"{row['profile']}" for row in failing]
    lines.append("")
  lines += ["## Theorem 5.8: the potential along VPG's iterates", "",
            common.markdown_table(
                ["game", "step", "alpha", "F monotone", "largest decrease",
                 "final E[Phi]", "final NashConv"],
                [[f"`{run['game']}`", run["step"], run["temperature"],
                  run["objective_monotone"], run["largest_decrease"],
                  run["expected_potential"][-1], run["final_nash_conv"]]
                 for run in potential_runs]), ""]
  return "\n".join(lines)


def plot_epsilon(rows, path):
  plt = common.pyplot()
  games = sorted({row["game"] for row in rows}, key=[
      row["game"] for row in rows].index)
  columns = min(4, len(games))
  figure, axes = plt.subplots(
      (len(games) + columns - 1) // columns, columns,
      figsize=(4.2 * columns, 3.6 * ((len(games) + columns - 1) // columns)),
      squeeze=False, constrained_layout=True)
  series = (("conditional", "max_elbo_gap", "conditional: ELBO gap", "--"),
            ("conditional", "max_deviation_gain", "conditional: true gain",
             "-"),
            ("marginal", "max_deviation_gain", "marginal: true gain", "-"))
  for axis, game in zip(axes.flat, games):
    game_rows = [r for r in rows if r["game"] == game and
                 r["opponent_model"] == "exact"]
    temperatures = sorted({r["temperature"] for r in game_rows})
    axis.plot(temperatures, [next(r["epsilon"] for r in game_rows
                                  if r["temperature"] == t)
                             for t in temperatures],
              "k:", linewidth=2, label="bound epsilon")
    for form, key, label, style in series:
      values = [next((r[key] for r in game_rows if r["temperature"] == t and
                      r["policy_form"] == form), np.nan)
                for t in temperatures]
      axis.plot(temperatures, np.maximum(values, 1e-12), style, marker="o",
                label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_title(game if len(game) < 40 else game[:37] + "...",
                   fontsize=9)
    axis.set_xlabel("temperature alpha")
    axis.set_ylabel("gain (reward units)")
  for axis in list(axes.flat)[len(games):]:
    axis.axis("off")
  axes.flat[0].legend(fontsize=7)
  figure.suptitle("Theorem 4.2 (exact opponent model): measured gains "
                  "versus epsilon = alpha T log max|A_i| (0 drawn at 1e-12)")
  common.save_figure(figure, path)


def plot_potential(potential_runs, path):
  plt = common.pyplot()
  figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4),
                                       constrained_layout=True)
  for run in potential_runs:
    label = f"step {run['step']}"
    left.plot(run["expected_potential"], label=label)
    right.plot(run["regularised_objective"], label=label)
  left.set_title("expected potential E[sum_t Phi_t] (cost, lower is better)")
  right.set_title("regularised objective F (VPG ascends it)")
  for axis in (left, right):
    axis.set_xlabel("VPG iteration")
    axis.legend()
  left.set_ylabel("potential (cost units)")
  right.set_ylabel("F (reward units)")
  figure.suptitle(f"Theorem 5.8 on {potential_runs[0]['game']}, "
                  f"alpha={potential_runs[0]['temperature']}", fontsize=9)
  common.save_figure(figure, path)


def check_games(games):
  """ValueError unless the Markov-game core accepts every game."""
  for game_string in games:
    try:
      vsg_spiel.markov_game(game_string)
    except (ValueError, pyspiel.SpielError) as error:
      raise ValueError(f"{game_string}: {error}") from error


def check_potential_game(game_string):
  """ValueError unless the game has stage potentials (a routing game)."""
  check_games([game_string])
  if not hasattr(pyspiel.load_game(game_string), "stage_potentials"):
    raise ValueError(f"{game_string} has no stage potentials; allowed: a "
                     "python_vsg_routing game")


@dataclasses.dataclass(frozen=True)
class EpsilonSettings:
  """What the Theorem 4.2 and 5.8 measurements run."""
  games: tuple[str, ...] = setting(DEFAULT_GAMES, "Game strings.",
                                   games=True, check=check_games)
  temperatures: tuple[float, ...] = setting(
      (0.1, 0.3, 1.0), "Temperatures alpha (reward units); the first is "
      "Theorem 5.8's.", above=0)
  policy_forms: tuple[str, ...] = setting(
      vpg.POLICY_FORMS, "VPG policy forms.", choices=vpg.POLICY_FORMS)
  opponent_models: tuple[str, ...] = setting(
      OPPONENT_MODELS, "Opponent models.", choices=OPPONENT_MODELS)
  step: float = setting(0.1, "VPG step beta of eq. 4.", above=0, at_most=1)
  max_iterations: int = setting(3000, "Iteration cap per run.", at_least=1)
  tolerance: float = setting(
      1e-10, "Converged when no policy entry moves more.", above=0)
  openspiel_max_nodes: int = setting(
      1_000, "Measure the exact-model rows with OpenSpiel's nash_conv when "
      "the turn-based tree has at most this many decision nodes; the other "
      "rows by our core (equal to OpenSpiel's to 1e-9, as the exact rows' "
      "difference column and the tests show). OpenSpiel's tree walk on a "
      "Python game is most of a row's time: about 13 CPU-s per row on the "
      "default routing game's 2,211-node tree, which the core measures in "
      "milliseconds.", at_least=0)
  potential_game: str = setting(POTENTIAL_GAME,
                                "Routing game for Theorem 5.8.",
                                check=check_potential_game)
  potential_steps: tuple[float, ...] = setting(
      (1.0, 0.5, 0.1), "Step sizes for Theorem 5.8.", above=0, at_most=1)
  potential_iterations: int = setting(100, "Iterations for Theorem 5.8.",
                                      at_least=1)


def cells(settings, section="epsilon"):
  """One cell per (game, temperature, form, model) row and per potential
  step."""
  run = {"step": settings.step, "max_iterations": settings.max_iterations,
         "tolerance": settings.tolerance,
         "openspiel_max_nodes": settings.openspiel_max_nodes}
  def row_settings(model):
    """OpenSpiel measures the exact-model rows only (see
    `EpsilonSettings.openspiel_max_nodes`)."""
    return run if model == "exact" else dict(run, openspiel_max_nodes=-1)
  rows = [cells_lib.Cell(section, ("row", game, alpha, form, model),
                         "vsg_spiel.eval.epsilon:epsilon_row",
                         dict(game_string=game, temperature=alpha,
                              policy_form=form, opponent_model=model,
                              settings=row_settings(model)))
          for game in settings.games for alpha in settings.temperatures
          for form in settings.policy_forms
          for model in settings.opponent_models]
  potential = [cells_lib.Cell(section, ("potential", settings.potential_game,
                                        step),
                              "vsg_spiel.eval.epsilon:potential_run",
                              dict(game_string=settings.potential_game,
                                   step=step,
                                   temperature=settings.temperatures[0],
                                   iterations=settings.potential_iterations))
               for step in settings.potential_steps]
  return rows + potential


def assemble(results, work):
  """(rows, potential runs) of the completed cells, in the cells' order."""
  done = [(cell.key, results[cell.key]) for cell in work
          if cell.key in results]
  return ([result for key, result in done if key[0] == "row"],
          [result for key, result in done if key[0] == "potential"])


@dataclasses.dataclass(frozen=True)
class EpsilonFlags(EpsilonSettings):
  out: str = settings_lib.output("epsilon_out")


def main(flags):
  work = cells(flags)
  runner.compile_solvers()
  outcome = cells_lib.run_cells(work, cells_lib.CellStore(flags.out))
  rows, potential_runs = assemble(outcome.section("epsilon"), work)
  common.atomic_write_json(
      os.path.join(flags.out, "epsilon.json"),
      {"rows": rows, "potential": potential_runs,
       "settings": dataclasses.asdict(flags), "failed": outcome.failures()})
  if rows:
    plot_epsilon(rows, os.path.join(flags.out, "figures", "epsilon.png"))
  if potential_runs:
    plot_potential(potential_runs,
                   os.path.join(flags.out, "figures", "potential.png"))
  common.atomic_write_text(os.path.join(flags.out, "epsilon.md"),
                           markdown(rows, potential_runs))
  print(f"wrote {os.path.join(flags.out, 'epsilon.md')}")
  return cells_lib.exit_status(runner.outcome_failures(outcome))


if __name__ == "__main__":
  settings_lib.run(EpsilonFlags, main)
