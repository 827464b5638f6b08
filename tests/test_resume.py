"""Kill tests of the binaries with a cell store: SIGKILL at a random moment,
rerun with the same --out, and the results equal an uninterrupted run's;
cells stored before the kill are not recomputed."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from test_report import assert_same_results
from test_report import stored_cells
from test_report import without_timings

# (binary, flags, output file, the deterministic part of its results).
CASES = {
    "epsilon": (
        ["--games=matrix_bos,matrix_pd", "--temperatures=0.5",
         "--opponent_models=exact,empirical", "--max_iterations=300",
         "--potential_steps=0.5", "--potential_iterations=5",
         "--potential_game=python_vsg_routing(num_players=2,horizon=1,"
         "split_levels=2)"],
        "epsilon.json",
        lambda data: without_timings({key: value for key, value in
                                      data.items() if key != "settings"})),
    "compare_nash": (
        ["--games=matrix_rps,matrix_bos", "--algorithms=vpg,cfr,xfp",
         "--time_budget=100", "--max_iterations=40"],
        "results.json",
        # Checkpoints follow the clock; runs end at the iteration cap.
        lambda data: {(game["game"], name): (run["iterations"],
                                             run["final_nash_conv"])
                      for game in data["games"]
                      for name, run in game["algorithms"].items()}),
    "run_mfg": (
        ["--games=mfg_crowd_modelling(size=4,horizon=3),"
         "mfg_garnet(size=3,horizon=2)",
         "--algorithms=mf_bql,mirror_descent", "--iterations=5",
         "--time_budget=100"],
        "results.json",
        lambda data: [without_timings({key: value for key, value in
                                       game.items() if key != "same_seconds"})
                      for game in data["games"]]),
    "run_equilibria": (
        ["--ce_games=matrix_cd", "--signals=1", "--ce_temperatures=0.1",
         "--ce_iterations=100", "--ce_num_seeds=1", "--jpsro_iterations=1",
         "--cq_episodes=5", "--zero_sum_games=matrix_mp",
         "--zero_sum_algorithms=zero_sum_vpg,cfr", "--time_budget=100",
         "--max_iterations=30"],
        "equilibria.json",
        lambda data: {"correlated": without_timings(data["correlated"]),
                      "zero_sum": [{name: run["final_nash_conv"]
                                    for name, run in game["algorithms"].items()}
                                   for game in data["zero_sum"]]}),
}


def run(binary, out, flags, wait=True):
  command = [sys.executable, "-m", f"vsg_spiel.eval.{binary}",
             f"--out={out}", *flags]
  if not wait:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  return subprocess.run(command, capture_output=True, text=True, check=False,
                        timeout=600)


@pytest.mark.parametrize("binary", sorted(CASES))
def test_killed_binary_resumes_to_the_uninterrupted_result(tmp_path, binary):
  flags, output, deterministic = CASES[binary]
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  uninterrupted = run(binary, whole, flags)
  assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
  total = len(stored_cells(whole))
  assert total >= 2
  # A random moment: after a random number of stored cells, plus a random
  # delay of up to a tenth of a second.
  rng = random.Random()
  wanted = rng.randrange(1, total)
  process = run(binary, killed, flags, wait=False)
  deadline = time.time() + 300
  while len(stored_cells(killed)) < wanted and time.time() < deadline:
    time.sleep(0.02)
  time.sleep(rng.random() / 10)
  process.send_signal(signal.SIGKILL)
  process.wait()
  before = stored_cells(killed)
  for _, content in before.values():
    json.loads(content)  # every stored cell is complete JSON
  resumed = run(binary, killed, flags)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  after = stored_cells(killed)
  for path, stamp in before.items():
    assert after[path] == stamp, f"{path} was recomputed"
  load = lambda out: json.loads((out / output).read_text())
  assert_same_results(deterministic(load(killed)),
                      deterministic(load(whole)))
  assert not [name for _, _, names in os.walk(killed) for name in names
              if name.startswith(".tmp-")]


def test_interrupted_run_mai_exits_cleanly_and_resumes(tmp_path):
  # Ctrl-C (SIGINT) in run_mai: exit code 130 and one line, no traceback, no
  # half-written file; the rerun trains only the episodes after the last
  # checkpoint.
  flags = ["--game=differential", "--algorithms=mai", "--seeds=0",
           "--episodes=150", "--steps=3", "--block_episodes=1",
           "--agent_settings=hidden_sizes=4,batch_size=4,replay_capacity=32,"
           "warmup_steps=2,importance_samples=2,importance_states=2,"
           "jit_compile=false"]
  progress = tmp_path / "differential" / "runs" / "mai" / "seed_0" / (
      "progress.json")
  process = subprocess.Popen(
      [sys.executable, "-m", "vsg_spiel.eval.run_mai", f"--out={tmp_path}",
       *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not progress.exists() and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == 130, stderr[-3000:]
  assert stderr.splitlines()[-1] == "interrupted"
  assert "Traceback" not in stderr
  assert "Sharding callback duration" not in stderr
  done = json.loads(progress.read_text())["episodes_done"]
  assert 1 <= done < 150
  assert not [name for _, _, names in os.walk(tmp_path) for name in names
              if name.startswith(".tmp-")]
  resumed = run("run_mai", tmp_path, flags)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "mai seed 0: 150/150 episodes" in resumed.stderr  # progress stays
  assert "Sharding callback duration" not in resumed.stderr
  record = json.loads(progress.read_text())
  assert record["finished"] and record["sessions"][0] == [0, done]
  assert record["sessions"][-1][1] == 150
