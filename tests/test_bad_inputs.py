"""Bad flags of every eval binary: each is an error naming the flag (and the
allowed values) before any work, and leaves no output.

Each row is parsed the way the binary parses its command line
(`settings.parse`, plus the report's own checks); one row per binary also
runs the binary itself, for the exit status and the message on stderr.
"""

import os
import subprocess
import sys

from absl import app
import pytest

from vsg_spiel.eval import compare_nash
from vsg_spiel.eval import epsilon
from vsg_spiel.eval import report
from vsg_spiel.eval import run_distancing
from vsg_spiel.eval import run_equilibria
from vsg_spiel.eval import run_mfg
from vsg_spiel.eval import settings as settings_lib

A_FILE = "@file"  # replaced by the path of an existing file
UNWRITABLE = "/proc/vsg_spiel_out"  # /proc takes no new files, even as root

PARSERS = {
    "compare_nash": lambda argv: settings_lib.parse(
        compare_nash.CompareNashFlags, argv),
    "epsilon": lambda argv: settings_lib.parse(epsilon.EpsilonFlags, argv),
    "run_equilibria": lambda argv: settings_lib.parse(
        run_equilibria.EquilibriaFlags, argv),
    "run_mfg": lambda argv: settings_lib.parse(run_mfg.RunMfgFlags, argv),
    "report": lambda argv: settings_lib.parse(
        report.ReportFlags, argv, report.check),
    "run_distancing": lambda argv: settings_lib.parse(
        run_distancing.DistancingFlags, argv, run_distancing.check),
}

# (binary, flags, what the message must contain besides the flag's name).
ROWS = [
    # compare_nash
    ("compare_nash", ["--seed=-1"], "integer >= 0"),
    ("compare_nash", ["--seed=abc"], "integer"),
    ("compare_nash", ["--seed=1.5"], "integer"),
    ("compare_nash", ["--time_budget=0"], "> 0"),
    ("compare_nash", ["--time_budget=nan"], "finite"),
    ("compare_nash", ["--time_budget=inf"], "finite"),
    ("compare_nash", ["--max_iterations=0"], ">= 1"),
    ("compare_nash", ["--threshold=2"], "<= 1"),
    ("compare_nash", ["--threshold=0"], "> 0"),
    ("compare_nash", ["--checkpoints=0"], ">= 1"),
    ("compare_nash", ["--vpg_step=1.5"], "<= 1"),
    ("compare_nash", ["--vpg_initial_temperature=-1"], "> 0"),
    ("compare_nash", ["--vpg_final_temperature=0"], "> 0"),
    ("compare_nash", ["--vpg_temperature_decay=0"], "> 0"),
    ("compare_nash", ["--vpg_temperature=abc"], "number"),
    ("compare_nash", ["--vpg_sampled_episodes=0"], ">= 1"),
    ("compare_nash", ["--vpg_sampled_opponent_model=exact"],
     "empirical, variational"),
    ("compare_nash", ["--rl_episodes=2.5"], "integer"),
    ("compare_nash", ["--openspiel_check_max_histories=-1"], ">= 0"),
    ("compare_nash", ["--algorithms="], "one of vpg_annealed, vpg"),
    ("compare_nash", ["--algorithms=vpg,bogus"], "vpg_annealed, vpg"),
    ("compare_nash", ["--games="], "non-empty"),
    ("compare_nash", ["--games=kuhn_poker"], "imperfect information"),
    ("compare_nash", ["--games=tic_tac_toe"], "simultaneous-move"),
    ("compare_nash", ["--games=not_a_game"], "allowed: a registered game"),
    ("compare_nash", ["--out="], "directory"),
    ("compare_nash", [f"--out={A_FILE}"], "not a directory"),
    ("compare_nash", [f"--out={A_FILE}/below"], "not a directory"),
    ("compare_nash", [f"--out={UNWRITABLE}"], "cannot write"),
    # epsilon
    ("epsilon", ["--temperatures=nan"], "finite"),
    ("epsilon", ["--temperatures=abc"], "number"),
    ("epsilon", ["--temperatures=0"], "> 0"),
    ("epsilon", ["--temperatures="], "non-empty"),
    ("epsilon", ["--step=0"], "> 0"),
    ("epsilon", ["--step=2"], "<= 1"),
    ("epsilon", ["--potential_steps=2"], "<= 1"),
    ("epsilon", ["--potential_steps=0.5,-1"], "> 0"),
    ("epsilon", ["--max_iterations=0"], ">= 1"),
    ("epsilon", ["--tolerance=0"], "> 0"),
    ("epsilon", ["--tolerance=nan"], "finite"),
    ("epsilon", ["--openspiel_max_nodes=-1"], ">= 0"),
    ("epsilon", ["--potential_iterations=0"], ">= 1"),
    ("epsilon", ["--policy_forms=joint"], "conditional, marginal"),
    ("epsilon", ["--opponent_models=oracle"], "variational_oracle"),
    ("epsilon", ["--games=kuhn_poker"], "imperfect information"),
    ("epsilon", ["--potential_game=matrix_rps"], "python_vsg_routing"),
    ("epsilon", ["--out="], "directory"),
    # run_equilibria
    ("run_equilibria", ["--time_budget=-1"], "> 0"),
    ("run_equilibria", ["--time_budget=0"], "> 0"),
    ("run_equilibria", ["--ce_iterations=0"], ">= 1"),
    ("run_equilibria", ["--ce_num_seeds=0"], ">= 1"),
    ("run_equilibria", ["--signals=abc"], "integer"),
    ("run_equilibria", ["--signals=0"], ">= 1"),
    ("run_equilibria", ["--ce_temperatures=0"], "> 0"),
    ("run_equilibria", ["--ce_temperatures=nan"], "finite"),
    ("run_equilibria", ["--jpsro_iterations=0"], ">= 1"),
    ("run_equilibria", ["--cq_episodes=0"], ">= 1"),
    ("run_equilibria", ["--max_iterations=0"], ">= 1"),
    ("run_equilibria", ["--ce_games=kuhn_poker"], "imperfect information"),
    ("run_equilibria",
     ["--ce_games=python_iterated_prisoners_dilemma(max_game_length=2)"],
     "not a one-shot game"),
    ("run_equilibria", ["--zero_sum_games=matrix_pd"], "not zero-sum"),
    ("run_equilibria", ["--zero_sum_algorithms=minimax"], "zero_sum_vpg"),
    ("run_equilibria", ["--zero_sum_algorithms="], "non-empty"),
    ("run_equilibria", [f"--out={A_FILE}"], "not a directory"),
    # run_mfg
    ("run_mfg", ["--iterations=0"], ">= 1"),
    ("run_mfg", ["--iterations=1.5"], "integer"),
    ("run_mfg", ["--time_budget=-1"], "> 0"),
    ("run_mfg", ["--time_budget=nan"], "finite"),
    ("run_mfg", ["--temperature=0"], "> 0"),
    ("run_mfg", ["--temperature=abc"], "number"),
    ("run_mfg", ["--learning_rate=0"], "> 0"),
    ("run_mfg", ["--algorithms=q_learning"], "mf_bql"),
    ("run_mfg", ["--games=matrix_rps"], "not a mean-field game"),
    ("run_mfg", ["--games=no_such_game"], "unknown game 'no_such_game'"),
    ("run_mfg", ["--games="], "non-empty"),
    ("run_mfg", ["--out="], "directory"),
    # report
    ("report", ["--sections="], "non-empty"),
    ("report", ["--sections=epsilon,bogus"], "epsilon, nash, mai"),
    ("report", ["--suite=huge"], "quick, default, full"),
    ("report", ["--num_seeds=0"], ">= 1"),
    ("report", ["--num_seeds=abc"], "integer"),
    ("report", ["--iterations=0"], ">= 1"),
    ("report", ["--workers=0"], ">= 1"),
    # run_distancing
    ("run_distancing", ["--decay=0"], "> 0"),
    ("run_distancing", ["--decay=1.5"], "<= 1"),
    ("run_distancing", ["--npg_learning_rate=-1"], "> 0"),
    ("run_distancing", ["--start_seed=-1"], ">= 0"),
    ("run_distancing", ["--target_nash_conv=nan"], "finite"),
    ("report", ["--backend=spark"], "process, ray"),
    ("report", ["--num_seeds=2"], "do not take it"),
    ("report", ["--sections=nash", "--iterations=5"], "do not take it"),
    ("report", ["--sections=epsilon", "--games=kuhn_poker"],
     "imperfect information"),
    ("report", ["--games=matrix_rps"], "do not take it"),
    ("report", ["--sections=mai", "--games=matrix_rps"], "mai section"),
    ("report", ["--sections=nash", "--games=tic_tac_toe"],
     "simultaneous-move"),
    ("report", ["--sections=nash", "--games=matrix_rps,no_such_game(x=1)"],
     "unknown game 'no_such_game'; allowed: a registered game"),
    ("report", ["--out="], "directory"),
    ("report", [f"--out={A_FILE}"], "not a directory"),
]


def _flag_name(argument):
  return argument.split("=", 1)[0]


@pytest.mark.parametrize("binary, arguments, message", ROWS)
def test_bad_flag_is_an_error_naming_it(tmp_path, binary, arguments,
                                        message):
  a_file = tmp_path / "a_file"
  a_file.write_text("not a directory")
  arguments = [argument.replace(A_FILE, str(a_file))
               for argument in arguments]
  out = tmp_path / "out"
  argv = [binary] + ([] if any(a.startswith("--out=") for a in arguments)
                     else [f"--out={out}"]) + arguments
  with pytest.raises(app.UsageError) as raised:
    PARSERS[binary](argv)
  text = str(raised.value)
  assert _flag_name(arguments[-1]) in text, text
  assert message in text, text
  assert sorted(os.listdir(tmp_path)) == ["a_file"]  # no output at all


def test_the_table_covers_every_flag_of_every_binary():
  """Every flag with a constraint has at least one bad row (booleans and
  free strings have none)."""
  covered = {(binary, _flag_name(arguments[-1])) for binary, arguments, _
             in ROWS}
  classes = {"compare_nash": compare_nash.CompareNashFlags,
             "epsilon": epsilon.EpsilonFlags,
             "run_equilibria": run_equilibria.EquilibriaFlags,
             "run_mfg": run_mfg.RunMfgFlags, "report": report.ReportFlags}
  missing = []
  for binary, settings_class in classes.items():
    for field in settings_lib.dataclasses.fields(settings_class):
      if field.name in ("ray_address", "tensorboard_dir"):
        continue  # any address (Ray says whether it answers); any path
      if (binary, f"--{field.name}") not in covered:
        missing.append(f"{binary} --{field.name}")
  assert not missing
  assert len(ROWS) >= 60


@pytest.mark.parametrize("binary, argument", [
    ("compare_nash", "--seed=-1"),
    ("epsilon", "--potential_steps=2"),
    ("run_equilibria", "--signals=abc"),
    ("run_mfg", "--iterations=0"),
    ("report", "--sections="),
])
def test_binary_exits_with_the_message_and_writes_nothing(tmp_path, binary,
                                                          argument):
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "-m", f"vsg_spiel.eval.{binary}", f"--out={out}",
       argument], capture_output=True, text=True, check=False, timeout=120)
  assert result.returncode == 1
  assert _flag_name(argument) in result.stderr
  assert "allowed" in result.stderr
  assert not out.exists()


def test_unknown_game_is_one_short_line_not_pyspiels_list(tmp_path):
  # pyspiel.load_game prints every registered game on stderr (and in its
  # exception): the name is checked before.
  result = subprocess.run(
      [sys.executable, "-m", "vsg_spiel.eval.report", f"--out={tmp_path}",
       "--sections=nash", "--games=no_such_game"],
      capture_output=True, text=True, check=False, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip() == (
      "FATAL Flags parsing error: --games: unknown game 'no_such_game'; "
      "allowed: a registered game (list them with: python -c 'import "
      "vsg_spiel, pyspiel; print(pyspiel.registered_names())')")
