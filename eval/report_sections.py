"""The report's sections: their settings, cells and summaries.

Each section says which games it accepts, splits its work into cells
(eval/cells.py) for the settings of the chosen suite (quick, default, full),
and turns the cells' results into markdown, figures and JSON data.
"""

import dataclasses
import os
import re
import tempfile
from typing import Callable

import vsg_spiel
from vsg_spiel.eval import cells as cells_lib
from vsg_spiel.eval import common
from vsg_spiel.eval import compare_nash
from vsg_spiel.eval import epsilon
from vsg_spiel.eval import run_equilibria
from vsg_spiel.eval import run_mfg

Cell = cells_lib.Cell
slug = cells_lib.slug


def demote(markdown):
  """Drops a binary's own title and moves every other heading one level
  down, under the report's section heading."""
  markdown = re.sub(r"\A# [^\n]*\n+", "", markdown)
  return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Section:
  title: str
  settings: dict  # suite ("quick", "default", "full") -> settings
  validate_games: Callable
  cells: Callable
  summarize: Callable


def _validate_markov_games(games):
  for game in games:
    vsg_spiel.markov_game(game)


# ----------------------------------------------------------------------------
# 1. Theorem 4.2.

def _epsilon_cells(settings):
  run = {key: settings[key] for key in
         ("step", "max_iterations", "tolerance", "openspiel_max_nodes")}
  rows = [Cell("epsilon", slug(game, alpha, form, model),
               "vsg_spiel.eval.epsilon:epsilon_row",
               dict(game_string=game, temperature=alpha, policy_form=form,
                    opponent_model=model, settings=run))
          for game in settings["games"] for alpha in settings["temperatures"]
          for form in settings["policy_forms"]
          for model in settings["opponent_models"]]
  potential = [Cell("epsilon", slug("potential", settings["potential_game"],
                                    step),
                    "vsg_spiel.eval.epsilon:potential_run",
                    dict(game_string=settings["potential_game"], step=step,
                         temperature=settings["temperatures"][0],
                         iterations=settings["potential_iterations"]))
               for step in settings["potential_steps"]]
  return rows + potential


def _epsilon_summary(results, settings, figures):
  num_potential = len(settings["potential_steps"])
  rows, potential = results[:-num_potential], results[-num_potential:]
  epsilon.plot_epsilon(rows, os.path.join(figures, "epsilon.png"))
  epsilon.plot_potential(potential, os.path.join(figures, "potential.png"))
  markdown = demote(epsilon.markdown(rows, potential)) + (
      "\n![Theorem 4.2](figures/epsilon.png)\n\n"
      "![Theorem 5.8](figures/potential.png)\n")
  return markdown, {"rows": rows, "potential": potential}


_EPSILON_DEFAULT = dict(
    games=list(epsilon.DEFAULT_GAMES), temperatures=[0.1, 0.3, 1.0],
    policy_forms=["conditional", "marginal"],
    opponent_models=list(epsilon.OPPONENT_MODELS), step=0.1,
    max_iterations=3000, tolerance=1e-10, openspiel_max_nodes=50_000,
    potential_game=epsilon.POTENTIAL_GAME, potential_steps=[1.0, 0.5, 0.1],
    potential_iterations=100)
EPSILON = Section(
    title="Theorem 4.2: the epsilon of the ELBO solution, measured",
    settings={
        "default": _EPSILON_DEFAULT,
        "quick": dict(_EPSILON_DEFAULT, games=[
            "matrix_bos", "matrix_pd",
            "python_vsg_routing(num_players=2,horizon=2,split_levels=2)"],
                      temperatures=[0.3], opponent_models=["exact",
                                                            "empirical"],
                      max_iterations=300, potential_steps=[0.5],
                      potential_iterations=10),
        "full": dict(_EPSILON_DEFAULT, temperatures=[0.03, 0.1, 0.3, 1.0],
                     max_iterations=20000),
    },
    validate_games=_validate_markov_games,
    cells=_epsilon_cells, summarize=_epsilon_summary)


# ----------------------------------------------------------------------------
# 2. Nash: NashConv against iterations and wall time.

def _validate_nash_games(games):
  for game in games:
    compare_nash.load_markov_game(game)


def _nash_cells(settings):
  run = {key: value for key, value in settings.items()
         if key not in ("games", "algorithms", "seeds")}
  return [Cell("nash", slug(game, algorithm, seed),
               "vsg_spiel.eval.compare_nash:run_cell",
               dict(game_string=game, algorithm=algorithm,
                    settings=dict(run, seed=seed)))
          for game in settings["games"] for algorithm in settings["algorithms"]
          for seed in range(settings["seeds"])]


def _nash_summary(results, settings, figures):
  games = compare_nash.merge_games(
      [r for r in results if r["settings"]["seed"] == 0])
  parts = []
  for game in games:
    compare_nash.plot_game(game, compare_nash.figure_path(
        os.path.dirname(figures), game))
    parts.append(demote(compare_nash.game_markdown(
        game, os.path.dirname(figures))))
  ratios = _speedups_over_seeds(results)
  return ("Seed 0 is shown; the speed-up of vpg_annealed over the fastest "
          "OpenSpiel baseline per seed: " + ratios + "\n\n" +
          "\n".join(parts)), {"games": games, "runs": results}


def _speedups_over_seeds(results):
  by_seed = {}
  for result in results:
    by_seed.setdefault((result["game"], result["settings"]["seed"]),
                       []).append(result)
  lines = []
  for (game, seed), partials in sorted(by_seed.items()):
    ratio = compare_nash.merge_games(partials)[0]["speedup"]
    text = (f"{ratio['ratio']:.3g}" if ratio["ratio"] is not None else
            f"> {ratio['ratio_lower_bound']:.3g}"
            if ratio["ratio_lower_bound"] is not None else "n/a")
    lines.append(f"`{game}` seed {seed}: {text}")
  return "; ".join(lines) + "."


_NASH_DEFAULT = dict(
    games=list(compare_nash.DEFAULT_GAMES),
    algorithms=list(compare_nash.ALGORITHMS), seeds=1,
    **{key: value for key, value in dataclasses.asdict(
        compare_nash.Settings(time_budget=3.0,
                              openspiel_check_max_histories=20_000)).items()
       if key != "seed"})
NASH = Section(
    title="Nash: NashConv against iterations and wall time, VPG versus "
    "OpenSpiel's baselines",
    settings={
        "default": _NASH_DEFAULT,
        "quick": dict(_NASH_DEFAULT, games=["matrix_bos",
                                            "python_vsg_differential("
                                            "horizon=1,num_actions=11)"],
                      time_budget=0.5, checkpoints=10),
        "full": dict(_NASH_DEFAULT, seeds=5, time_budget=30.0,
                     openspiel_check_max_histories=200_000),
    },
    validate_games=_validate_nash_games,
    cells=_nash_cells, summarize=_nash_summary)


# ----------------------------------------------------------------------------
# 3. Figure 2a/2b: MAI versus MADDPG, MASQL and independent DDPG.

def mai_cell(game, algorithm, seed, experiment):
  """One (algorithm, seed) run of run_mai: its progress record with the
  per-episode returns and the final evaluation. The report stores whole
  cells, so the run's own block checkpoints go to a scratch directory."""
  from vsg_spiel.eval import run_mai  # pylint: disable=g-import-not-at-top
  _one_tensorflow_thread()
  settings = run_mai.Experiment(game=game, algorithms=(algorithm,),
                                seeds=(seed,), **experiment)
  with tempfile.TemporaryDirectory() as scratch:
    record, _ = run_mai.run_one(settings, algorithm, seed, scratch)
  return record


def _one_tensorflow_thread():
  """Worker processes run one cell each at a time: one TF thread apiece."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  except RuntimeError:
    pass  # TensorFlow already started in this process (workers=1).


def _validate_mai_games(games):
  from vsg_spiel.eval import run_mai  # pylint: disable=g-import-not-at-top
  unknown = [game for game in games if game not in run_mai.GAMES]
  if unknown:
    raise ValueError(f"unknown games {unknown} for the mai section; valid: "
                     f"{list(run_mai.GAMES)}")


def _mai_cells(settings):
  return [Cell("mai", slug(game, algorithm, seed),
               "vsg_spiel.eval.report_sections:mai_cell",
               dict(game=game, algorithm=algorithm, seed=seed,
                    experiment=settings["experiments"][game]))
          for game in settings["games"] for algorithm in settings["algorithms"]
          for seed in range(settings["seeds"])]


def _mai_summary(results, settings, figures):
  from vsg_spiel.eval import run_mai  # pylint: disable=g-import-not-at-top
  parts, data = [], {}
  for game in settings["games"]:
    experiment = run_mai.Experiment(game=game,
                                    algorithms=tuple(settings["algorithms"]),
                                    seeds=tuple(range(settings["seeds"])),
                                    **settings["experiments"][game])
    records = {algorithm: [r for r in results
                           if r["config"]["game"] == game and
                           r["config"]["algorithm"] == algorithm]
               for algorithm in settings["algorithms"]}
    summary = run_mai.summarize(experiment, records)
    figure = run_mai.FIGURES[game]
    run_mai.plot_learning_curves(experiment, records,
                                 os.path.join(figures, figure))
    parts.append(re.sub(r"\A# ", "### ", run_mai.markdown(
        experiment, summary).replace(f"]({figure})", f"](figures/{figure})")))
    data[game] = summary
  return "\n".join(parts), data


_MAI_DEFAULT = dict(
    games=["differential", "routing"],
    algorithms=["mai", "masql", "maddpg", "ddpg"], seeds=2,
    experiments={"differential": dict(episodes=200, steps=25),
                 "routing": dict(episodes=50, steps=25)})
MAI = Section(
    title="Figure 2: MAI versus MADDPG, MASQL and independent DDPG",
    settings={
        "default": _MAI_DEFAULT,
        "quick": dict(_MAI_DEFAULT, seeds=1, experiments={
            "differential": dict(episodes=4, steps=5),
            "routing": dict(episodes=2, steps=3, evaluation_samples=16)}),
        "full": dict(_MAI_DEFAULT, seeds=10, experiments={
            "differential": dict(episodes=200, steps=25),
            "routing": dict(episodes=200, steps=25)}),
    },
    validate_games=_validate_mai_games,
    cells=_mai_cells, summarize=_mai_summary)


# ----------------------------------------------------------------------------
# 4. Mean field: MF-BQL versus OpenSpiel's MFG solvers.

def _validate_mean_field_games(games):
  run_mfg.validate(games, run_mfg.Settings())


def _mfg_cells(settings):
  run = {key: settings[key] for key in
         ("iterations", "time_budget", "temperature", "learning_rate")}
  cells = [Cell("mfg", slug(game, algorithm), "vsg_spiel.eval.run_mfg:run_cell",
                dict(game_name=game, algorithm=algorithm, settings=run))
           for game in settings["games"] for algorithm in run_mfg.ALGORITHMS]
  cells += [Cell("mfg", slug("temperatures", game),
                 "vsg_spiel.eval.run_mfg:temperature_sweep",
                 dict(game_name=game, temperatures=settings["temperatures"],
                      iterations=settings["iterations"]))
            for game in settings["games"]]
  return cells


def _mfg_summary(results, settings, figures):
  num_runs = len(settings["games"]) * len(run_mfg.ALGORITHMS)
  games = run_mfg.merge_games(results[:num_runs])
  sweeps = results[num_runs:]
  for game in games:
    common.save_figure(run_mfg.plot_game(game), os.path.join(
        figures, run_mfg.figure_name(game["game"])))
  sweep_table = common.markdown_table(
      ["game"] + [f"alpha={t}" for t in settings["temperatures"]],
      [[f"`{sweep['game']}`"] + [sweep["exploitability"][str(t)]
                                 for t in settings["temperatures"]]
       for sweep in sweeps])
  markdown = (demote(run_mfg.markdown(games, settings)) +
              f"\n### MF-BQL exploitability after {settings['iterations']} "
              "iterations against the temperature\n\n" + sweep_table + "\n")
  return markdown, {"games": games, "temperature_sweeps": sweeps}


_MFG_DEFAULT = dict(
    games=["python_mfg_crowd_modelling", "python_mfg_predator_prey",
           "python_mfg_crowd_avoidance", "mfg_crowd_modelling", "mfg_garnet",
           "mfg_crowd_modelling_2d"],
    iterations=100, time_budget=5.0, temperature=1.0, learning_rate=0.01,
    temperatures=[0.5, 1.0, 2.0, 5.0])
MFG = Section(
    title="Mean field: MF-BQL versus OpenSpiel's MFG solvers",
    settings={
        "default": _MFG_DEFAULT,
        "quick": dict(_MFG_DEFAULT, games=["mfg_crowd_modelling"],
                      iterations=10, time_budget=1.0, temperatures=[1.0]),
        "full": dict(_MFG_DEFAULT, games=list(run_mfg.DEFAULT_GAMES),
                     time_budget=60.0),
    },
    validate_games=_validate_mean_field_games,
    cells=_mfg_cells, summarize=_mfg_summary)


# ----------------------------------------------------------------------------
# 5. Correlated and zero-sum equilibria.

def _validate_one_shot(games):
  for game in games:
    run_equilibria.normal_form(game)


def _equilibria_cells(settings):
  cells = [Cell("equilibria", slug("zero_sum", game, algorithm),
                "vsg_spiel.eval.run_equilibria:zero_sum_game",
                dict(game_string=game, algorithms=[algorithm],
                     time_budget=settings["zero_sum_time_budget"],
                     max_iterations=settings["zero_sum_max_iterations"]))
           for game in settings["zero_sum_games"]
           for algorithm in run_equilibria.ZERO_SUM_ALGORITHMS]
  for game in settings["games"]:
    cells += [
        Cell("equilibria", slug("vpg", game),
             "vsg_spiel.eval.run_equilibria:vpg_devices",
             dict(game_string=game, signals=settings["signals"],
                  temperatures=settings["temperatures"],
                  iterations=settings["iterations"],
                  seeds=settings["seeds"])),
        Cell("equilibria", slug("jpsro", game),
             "vsg_spiel.eval.run_equilibria:jpsro_device",
             dict(game_string=game, iterations=settings["jpsro_iterations"],
                  seed=0)),
        Cell("equilibria", slug("correlated_q", game),
             "vsg_spiel.eval.run_equilibria:correlated_q_device",
             dict(game_string=game, episodes=settings["cq_episodes"], seed=0)),
        Cell("equilibria", slug("references", game),
             "vsg_spiel.eval.run_equilibria:references",
             dict(game_string=game)),
    ]
  return cells


def _equilibria_summary(results, settings, figures):
  num_zero_sum = (len(settings["zero_sum_games"]) *
                  len(run_equilibria.ZERO_SUM_ALGORITHMS))
  zero_sum = compare_nash.merge_games(results[:num_zero_sum])
  results = results[num_zero_sum:]
  for game in zero_sum:
    run_equilibria.plot_zero_sum(game, figures)
  games = []
  for index, game in enumerate(settings["games"]):
    vpg_rows, jpsro_row, q_row, refs = results[4 * index:4 * index + 4]
    games.append(dict(game=game, rows=vpg_rows + [jpsro_row, q_row], **refs))
  run_equilibria.plot_ce(games, os.path.join(figures, "correlated.png"))
  markdown = ("### Correlated equilibria (Section 5.3)\n\n"
              "Per game and number of public signals W, the VPG device "
              "closest to a correlated equilibrium over temperatures and "
              "starts, beside OpenSpiel's JPSRO (CE meta-solvers) and "
              "correlated Q-learning, the Nash equilibria and the "
              "welfare-maximising CE.\n\n" +
              run_equilibria.ce_summary_markdown(games) +
              "\n\n![Correlated equilibria](figures/correlated.png)\n\n" +
              run_equilibria.zero_sum_markdown(zero_sum) + "\n" +
              "\n".join(f"![Zero-sum: {game['game']}](figures/zero_sum_"
                        f"{game['slug']}.png)" for game in zero_sum) + "\n")
  return markdown, {"correlated": games, "zero_sum": zero_sum}


_EQUILIBRIA_DEFAULT = dict(
    games=list(run_equilibria.CE_GAMES), signals=[1, 2, 3],
    temperatures=[0.02, 0.1, 0.5], iterations=1000, seeds=3,
    jpsro_iterations=8, cq_episodes=300,
    zero_sum_games=list(run_equilibria.ZERO_SUM_GAMES),
    zero_sum_time_budget=5.0, zero_sum_max_iterations=100_000)
EQUILIBRIA = Section(
    title="Correlated and zero-sum equilibria",
    settings={
        "default": _EQUILIBRIA_DEFAULT,
        "quick": dict(_EQUILIBRIA_DEFAULT, games=["matrix_cd"], signals=[1, 2],
                      temperatures=[0.1], iterations=200, seeds=1,
                      jpsro_iterations=2, cq_episodes=20,
                      zero_sum_games=["matrix_brps"],
                      zero_sum_time_budget=60.0,
                      zero_sum_max_iterations=300),
        "full": dict(_EQUILIBRIA_DEFAULT, signals=[1, 2, 3, 4],
                     temperatures=[0.01, 0.02, 0.1, 0.5], iterations=3000,
                     seeds=10, jpsro_iterations=20, cq_episodes=2000,
                     zero_sum_time_budget=60.0),
    },
    validate_games=_validate_one_shot,
    cells=_equilibria_cells, summarize=_equilibria_summary)


SECTIONS = {
    "epsilon": EPSILON,
    "nash": NASH,
    "mai": MAI,
    "mfg": MFG,
    "equilibria": EQUILIBRIA,
}
