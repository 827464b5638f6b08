"""The main job: cells, resume, atomic writes, flags and backends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vsg_spiel.eval import cells as cells_lib

QUICK = ["--suite=quick", "--workers=1"]


def counted_square(value, counter):
  """A cell function that records each call in the file `counter`."""
  with open(counter, "a", encoding="utf-8") as stream:
    stream.write(f"{value}\n")
  return {"square": value * value}


def calls(counter):
  if not os.path.exists(counter):
    return []
  with open(counter, encoding="utf-8") as stream:
    return [int(line) for line in stream]


def square_cells(counter, values):
  return [cells_lib.Cell("test", ("square", value),
                         f"{__name__}:counted_square",
                         {"value": value, "counter": counter})
          for value in values]


def test_stored_cells_are_reused(tmp_path):
  counter = str(tmp_path / "calls.txt")
  store = cells_lib.CellStore(str(tmp_path / "out"))
  first = cells_lib.run_cells(square_cells(counter, [1, 2, 3]), store)
  assert sorted(calls(counter)) == [1, 2, 3]
  second = cells_lib.run_cells(square_cells(counter, [1, 2, 3, 4]), store)
  assert sorted(calls(counter)) == [1, 2, 3, 4]  # only the new cell ran
  key = ("test", ("square", 2))
  assert second.results[key] == first.results[key] == {"square": 4}


def test_changed_configuration_is_recomputed(tmp_path):
  counter = str(tmp_path / "calls.txt")
  store = cells_lib.CellStore(str(tmp_path / "out"))
  cells_lib.run_cells(square_cells(counter, [5]), store)
  changed = cells_lib.Cell("test", ("square", 5),
                           f"{__name__}:counted_square",
                           {"value": 6, "counter": counter})
  result = cells_lib.run_cells([changed], store)
  assert calls(counter) == [5, 6]
  assert result.results[("test", ("square", 5))] == {"square": 36}


def test_unreadable_cell_is_recomputed(tmp_path):
  counter = str(tmp_path / "calls.txt")
  store = cells_lib.CellStore(str(tmp_path / "out"))
  (cell,) = square_cells(counter, [7])
  cells_lib.run_cells([cell], store)
  with open(store.path(cell), "w", encoding="utf-8") as stream:
    stream.write('{"digest": "')  # a torn write
  cells_lib.run_cells([cell], store)
  assert calls(counter) == [7, 7]


def test_process_pool_gives_the_same_results(tmp_path):
  counter = str(tmp_path / "calls.txt")
  inline = cells_lib.run_cells(square_cells(counter, range(4)),
                               cells_lib.CellStore(str(tmp_path / "a")))
  pooled = cells_lib.run_cells(square_cells(counter, range(4)),
                               cells_lib.CellStore(str(tmp_path / "b")),
                               workers=2)
  assert inline.results == pooled.results


def logging_state():
  """A cell function: how the cell's process logs."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  return {"verbosity": logging.get_verbosity(),
          "tf_cpp_min_log_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
          "tensorflow_logger": std_logging.getLogger("tensorflow").level}


def test_cells_log_one_level_below_the_main_process(tmp_path, monkeypatch):
  """At the default INFO the cells log warnings only, with TensorFlow's
  Python and C++ INFO lines off, in this process and in workers; -v 1 (DEBUG)
  gives the cells INFO and leaves TensorFlow alone."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
  cell = cells_lib.Cell("test", ("state",), f"{__name__}:logging_state", {})
  key = ("test", ("state",))
  before = logging.get_verbosity()
  detail = cells_lib.run_cells([cell], cells_lib.CellStore(
      str(tmp_path / "detail")), verbosity=logging.DEBUG)
  assert detail.results[key]["verbosity"] == logging.INFO
  assert detail.results[key]["tf_cpp_min_log_level"] is None
  for workers in (2, 1):
    quiet = cells_lib.run_cells([cell], cells_lib.CellStore(
        str(tmp_path / f"quiet{workers}")), workers=workers,
                                verbosity=logging.INFO)
    assert quiet.results[key] == {"verbosity": logging.WARNING,
                                  "tf_cpp_min_log_level": "2",
                                  "tensorflow_logger": 40}, workers
  assert logging.get_verbosity() == before  # restored after the cell


def report(out, *flags, wait=True):
  command = [sys.executable, "-m", "vsg_spiel.eval.report", f"--out={out}",
             *flags]
  if not wait:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  return subprocess.run(command, capture_output=True, text=True, check=False,
                        timeout=600)


def without_timings(data):
  """Results with wall-clock fields removed (they differ run to run)."""
  if isinstance(data, dict):
    return {key: without_timings(value) for key, value in data.items()
            if "seconds" not in key and key != "environment"}
  if isinstance(data, list):
    return [without_timings(value) for value in data]
  return data


def assert_same_results(first, second, path="results"):
  """Equal structure and numbers equal to 1e-9 relative (BLAS threading may
  change the last bits between processes)."""
  assert type(first) is type(second), path
  if isinstance(first, dict):
    assert set(first) == set(second), path
    for key in first:
      assert_same_results(first[key], second[key], f"{path}/{key}")
  elif isinstance(first, list):
    assert len(first) == len(second), path
    for index, (a, b) in enumerate(zip(first, second)):
      assert_same_results(a, b, f"{path}[{index}]")
  elif isinstance(first, float):
    assert first == pytest.approx(second, rel=1e-9, abs=1e-12), path
  else:
    assert first == second, path


def stored_cells(out):
  found = {}
  for root, _, files in os.walk(os.path.join(out, "cells")):
    for name in files:
      if name.startswith(".tmp-"):
        continue  # an atomic write in progress
      path = os.path.join(root, name)
      found[path] = (os.stat(path).st_mtime_ns, open(path, "rb").read())
  return found


def test_interrupted_run_stops_promptly_and_resumes_without_recomputing(
    tmp_path):
  # Ctrl-C (SIGINT to the main process; the binaries' SIGKILL case is in
  # test_resume.py): running cells are stopped, not awaited, the lock is
  # released and one line says how to resume.
  interrupted, uninterrupted = tmp_path / "killed", tmp_path / "whole"
  process = subprocess.Popen(
      [sys.executable, "-m", "vsg_spiel.eval.report", f"--out={interrupted}",
       *QUICK, "--workers=2", "--sections=epsilon"],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while len(stored_cells(interrupted)) < 3 and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=30)
  assert process.returncode == 130, stderr[-2000:]
  before = stored_cells(interrupted)
  assert len(before) >= 3
  assert stderr.splitlines()[-1] == (
      f"interrupted: {len(before)} cells stored; rerun the same command to "
      "resume")
  assert "Traceback" not in stderr
  assert not (interrupted / cells_lib.LOCK_FILE).exists()
  for _, content in before.values():
    json.loads(content)  # every stored cell is complete JSON
  assert not (interrupted / "report.md").exists()
  resumed = report(interrupted, *QUICK, "--sections=epsilon")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f"cells: {len(before)} stored, " in resumed.stderr
  after = stored_cells(interrupted)
  for path, stamp in before.items():
    assert after[path] == stamp, f"{path} was recomputed"
  whole = report(uninterrupted, *QUICK, "--sections=epsilon")
  assert whole.returncode == 0, whole.stderr[-2000:]
  load = lambda out: json.loads((out / "results.json").read_text())
  assert_same_results(without_timings(load(interrupted)),
                      without_timings(load(uninterrupted)))
  assert not list(interrupted.rglob(".tmp-*"))


def test_quick_report_writes_markdown_json_and_figures(tmp_path):
  result = report(tmp_path, *QUICK)
  assert result.returncode == 0, result.stderr[-2000:]
  text = (tmp_path / "report.md").read_text()
  for heading in ("## Summary", "## 1.", "## 6.", "## 7. Environment"):
    assert heading in text
  assert text.index("## Summary") < text.index("## 1.")
  assert '<a id="section-epsilon"></a>' in text
  assert "[Theorem 4.2: ELBO gap <= epsilon](#section-epsilon) | **" in text
  # The terminal: progress lines, none of TensorFlow's checkpoint lines.
  assert "done in" in result.stderr and "s left" in result.stderr
  assert "Sharding callback duration" not in result.stderr
  data = json.loads((tmp_path / "results.json").read_text())
  assert data["environment"]["suite"] == "quick"
  for figure in ("epsilon.png", "potential.png", "correlated.png",
                 "distancing.png"):
    assert (tmp_path / "figures" / figure).stat().st_size > 10_000
  # Sections asked for in another order keep the report's order and
  # numbers (the rerun reads the stored cells).
  rerun = report(tmp_path, *QUICK, "--sections=distancing,epsilon")
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  text = (tmp_path / "report.md").read_text()
  assert "## 2." not in text
  assert (text.index('<a id="section-epsilon"></a>') < text.index("## 1.")
          < text.index('<a id="section-distancing"></a>')
          < text.index("## 6."))


@pytest.mark.parametrize("flags, message", [
    (["--sections=epsilon,bogus"], "--sections: 'bogus' is not allowed"),
    (["--num_seeds=0"], "--num_seeds: 0 is not allowed"),
    (["--sections=epsilon", "--games=kuhn_poker"], "imperfect information"),
    # The flag given is named, not the section's field it sets.
    (["--sections=equilibria", "--games=kuhn_poker"],
     "--games: kuhn_poker"),
    (["--games=matrix_rps"], "the sections ['distancing'] do not take it"),
    (["--backend=spark"], "spark"),
    (["--iterations=0"], "--iterations: 0 is not allowed"),
])
def test_bad_flags_fail_before_any_work(tmp_path, flags, message):
  result = report(tmp_path, *flags)
  assert result.returncode != 0
  assert message in result.stderr
  assert not (tmp_path / "cells").exists()


def test_ray_backend_matches_process_backend(tmp_path):
  pytest.importorskip("ray")
  suite = ["--suite=quick", "--sections=equilibria"]
  with_ray = report(tmp_path / "ray", *suite, "--backend=ray")
  assert with_ray.returncode == 0, with_ray.stderr[-3000:]
  with_processes = report(tmp_path / "process", *suite, "--workers=2")
  assert with_processes.returncode == 0, with_processes.stderr[-2000:]
  def deterministic(out):
    """The correlated devices and the zero-sum final NashConvs (run to an
    iteration cap); checkpoint placement follows the clock."""
    results = json.loads((out / "results.json").read_text())["equilibria"]
    finals = {game["game"]: {name: run["final_nash_conv"]
                             for name, run in game["algorithms"].items()}
              for game in results["results"]["zero_sum"]}
    return {"correlated": without_timings(results["results"]["correlated"]),
            "zero_sum": finals}
  assert_same_results(deterministic(tmp_path / "ray"),
                      deterministic(tmp_path / "process"))


def failing_square(value, counter):
  if value < 0:
    raise ValueError(f"negative value {value}")
  return counted_square(value, counter)


def slow_square(value, counter, seconds):
  time.sleep(seconds)
  return counted_square(value, counter)


@pytest.mark.parametrize("content", ["[]", "null", "{}", '"text"',
                                     "RIGHT_DIGEST_WITHOUT_RESULT"])
def test_malformed_cell_is_recomputed_and_logged(tmp_path, caplog, content):
  counter = str(tmp_path / "calls.txt")
  store = cells_lib.CellStore(str(tmp_path / "out"))
  (cell,) = square_cells(counter, [3])
  cells_lib.run_cells([cell], store)
  if content == "RIGHT_DIGEST_WITHOUT_RESULT":
    content = json.dumps({"digest": cell.digest})
  with open(store.path(cell), "w", encoding="utf-8") as stream:
    stream.write(content)
  with caplog.at_level("WARNING"):
    outcome = cells_lib.run_cells([cell], store)
  assert calls(counter) == [3, 3]
  assert outcome.results[("test", ("square", 3))] == {"square": 9}
  assert "recomputing it" in caplog.text
  assert store.load(cell) == {"square": 9}


def test_cell_files_are_unique_for_long_keys(tmp_path):
  """Two 200-character game strings that differ only at the end."""
  counter = str(tmp_path / "calls.txt")
  base = "python_vsg_routing(" + "x" * 179
  cells = [cells_lib.Cell("nash", (base + ending + ")", "vpg", 0),
                          f"{__name__}:counted_square",
                          {"value": value, "counter": counter})
           for value, ending in enumerate(("a", "b"))]
  assert len(cells[0].key[0]) == 200
  store = cells_lib.CellStore(str(tmp_path / "out"))
  assert store.path(cells[0]) != store.path(cells[1])
  outcome = cells_lib.run_cells(cells, store)
  assert [outcome.results[cell.section, cell.key] for cell in cells] == [
      {"square": 0}, {"square": 1}]
  assert len(os.listdir(tmp_path / "out" / "cells" / "nash")) == 2


def test_written_files_respect_the_umask(tmp_path):
  program = (
      "import os, sys; os.umask(0o027);"
      "from vsg_spiel.eval import common;"
      "common.atomic_write_text(sys.argv[1], 'x')")
  path = tmp_path / "written.txt"
  subprocess.run([sys.executable, "-c", program, str(path)], check=True,
                 timeout=60)
  assert path.stat().st_mode & 0o777 == 0o640


def test_failing_cell_is_recorded_and_the_others_are_kept(tmp_path):
  """With two workers, the slow cell running while the other fails is
  finished and stored; the failed cell is not stored, so a rerun retries
  it."""
  counter = str(tmp_path / "calls.txt")
  cells = [cells_lib.Cell("test", ("fail",), f"{__name__}:failing_square",
                          {"value": -1, "counter": counter}),
           cells_lib.Cell("test", ("slow",), f"{__name__}:slow_square",
                          {"value": 4, "counter": counter, "seconds": 1.0})]
  store = cells_lib.CellStore(str(tmp_path / "out"))
  outcome = cells_lib.run_cells(cells, store, workers=2)
  assert outcome.failed == {("test", ("fail",)):
                            "ValueError: negative value -1"}
  assert outcome.results == {("test", ("slow",)): {"square": 16}}
  assert store.load(cells[1]) == {"square": 16}
  assert store.load(cells[0]) is None
  again = cells_lib.run_cells(cells, store, workers=1)
  assert calls(counter) == [4]  # the slow cell was not recomputed
  assert set(again.failed) == {("test", ("fail",))}


def test_second_run_on_the_same_out_is_refused_naming_the_holder(tmp_path):
  with cells_lib.output_lock(str(tmp_path)):
    with pytest.raises(cells_lib.LockedError,
                       match=f"pid {os.getpid()}"):
      with cells_lib.output_lock(str(tmp_path)):
        pass
    result = report(tmp_path, *QUICK, "--sections=equilibria")
    assert result.returncode != 0
    assert f"pid {os.getpid()}" in result.stderr
    assert not (tmp_path / "cells").exists()
  with cells_lib.output_lock(str(tmp_path)):
    pass  # released


_ORPHAN_PROGRAM = r"""
import sys
import time
from vsg_spiel.eval import cells as cells_lib
def nap(seconds):
  time.sleep(seconds)
cells = [cells_lib.Cell("test", (index,), "__main__:nap", {"seconds": 120})
         for index in range(2)]
cells_lib.run_cells(cells, cells_lib.CellStore(sys.argv[1]), workers=2)
"""


def _children(pid):
  try:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as stream:
      return [int(child) for child in stream.read().split()]
  except OSError:
    return []


def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
      return stream.read().split(")")[-1].split()[0] != "Z"
  except OSError:
    return False


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
  process = subprocess.Popen([sys.executable, "-c", _ORPHAN_PROGRAM,
                              str(tmp_path)])
  deadline = time.time() + 120
  while len(_children(process.pid)) < 2 and time.time() < deadline:
    time.sleep(0.1)
  workers = _children(process.pid)
  assert len(workers) >= 2
  process.send_signal(signal.SIGKILL)
  process.wait()
  deadline = time.time() + 10
  while any(_alive(pid) for pid in workers) and time.time() < deadline:
    time.sleep(0.1)
  assert not any(_alive(pid) for pid in workers)


def test_failing_algorithm_is_reported_and_the_run_exits_non_zero(tmp_path):
  """CFR and CFR+ fail on this game (OpenSpiel cannot convert their
  policies); the report still holds every other algorithm, lists the
  failures with their reasons, and the process exits with status 1."""
  result = report(tmp_path, *QUICK, "--sections=nash",
                  "--games=python_iterated_prisoners_dilemma("
                  "max_game_length=2)")
  assert result.returncode == 1, result.stderr[-3000:]
  assert "cfr: KeyError" in result.stderr
  text = (tmp_path / "report.md").read_text()
  assert "- cfr: failed, KeyError" in text
  assert "| vpg_annealed |" in text
  nash = json.loads((tmp_path / "results.json").read_text())["nash"]
  (game,) = nash["results"]["games"]
  assert "failed" in game["algorithms"]["cfr"]
  assert game["algorithms"]["vpg"]["iterations"] >= 1


def test_cells_of_every_section_start_longest_sections_first(tmp_path):
  from vsg_spiel.eval import report as report_lib  # pylint: disable=g-import-not-at-top
  assert set(report_lib.LONGEST_FIRST) == set(report_lib.SECTIONS)
  def cell(section, index):
    return cells_lib.Cell(section, (index,), f"{__name__}:counted_square",
                          {})
  work = {"epsilon": [cell("epsilon", 0)],
          "mai": [cell("mai", 0), cell("mai", 1)],
          "distancing": [cell("distancing", 0)]}
  store = cells_lib.CellStore(str(tmp_path))
  assert [(c.section, c.key) for c in report_lib.schedule(work, store)] == [
      ("mai", (0,)), ("mai", (1,)), ("distancing", (0,)), ("epsilon", (0,))]


def test_stored_cpu_times_order_the_cells_longest_first(tmp_path):
  """Times stored by an earlier run, even of another configuration, order
  the cells longest first; cells without one start first, in their
  order."""
  store = cells_lib.CellStore(str(tmp_path))
  cells = square_cells(str(tmp_path / "calls.txt"), range(5))
  for cell, cpu_seconds in zip(cells[1:], (1.0, 30.0, 0.5)):
    store.save(cell, {"square": 0}, cpu_seconds + 1, cpu_seconds)
  stale = cells_lib.Cell("test", cells[4].key, cells[4].function,
                         {**cells[4].config, "value": 9})
  store.save(stale, {"square": 81}, 8.0, 7.0)
  ordered = cells_lib.longest_first(cells, store)
  assert [cell.key[1] for cell in ordered] == [0, 2, 4, 1, 3]
  assert store.cost(cells[0]) is None and store.cost(cells[4]) == 7.0


def logged(event, log):
  """Appends `event` and this process's id to the file `log`."""
  with open(log, "a", encoding="utf-8") as stream:
    stream.write(f"{event} {os.getpid()}\n")


def logged_cell(name, log, seconds=0.0):
  logged(f"start {name}", log)
  time.sleep(seconds)
  return {"name": name}


def logged_summary(section, results, log):
  logged(f"summary {section}", log)
  return {"section": section, "keys": sorted(key[0] for key in results)}


def logged_preparation():
  logged("prepare", os.environ["PREPARATION_LOG"])
  time.sleep(0.5)


def events(log):
  with open(log, encoding="utf-8") as stream:
    return [line.rsplit(" ", 1) for line in stream.read().splitlines()]


def test_a_section_is_summarised_in_a_worker_as_soon_as_its_cells_end(
    tmp_path):
  """Section a's summary starts before section b's cells that had not
  started when a's last cell ended, in a worker; its result and time are in
  the outcome. A section whose cells are all stored is summarised too."""
  log = str(tmp_path / "log.txt")
  def cell(section, name, seconds):
    return cells_lib.Cell(section, (name,), f"{__name__}:logged_cell",
                          {"name": name, "log": log, "seconds": seconds})
  cells = [cell("a", "a1", 0.0), cell("b", "b1", 0.5)] + [
      cell("b", f"b{index}", 0.0) for index in range(2, 5)]
  store = cells_lib.CellStore(str(tmp_path / "out"))
  stored = cell("c", "c1", 0.0)
  cells_lib.run_cells([stored], store)
  summaries = {section: (lambda results, section=section: (
      f"{__name__}:logged_summary",
      {"section": section, "results": results, "log": log}))
               for section in "abc"}
  outcome = cells_lib.run_cells(cells + [stored], store, workers=2,
                                summaries=summaries)
  order = [event for event, _ in events(log)]
  assert order.index("summary a") < order.index("start b2")
  assert order.index("summary c") < order.index("start b2")
  assert order[-1] == "summary b"
  processes = {event: pid for event, pid in events(log)}
  assert processes["summary a"] != str(os.getpid())
  result, error, seconds, cpu_seconds = outcome.summaries["b"]
  assert error is None and seconds > 0 and cpu_seconds >= 0
  assert result == {"section": "b", "keys": ["b1", "b2", "b3", "b4"]}
  assert outcome.summaries["c"][0] == {"section": "c", "keys": ["c1"]}


def failing_summary():
  raise RuntimeError("no figure")


def test_a_failing_summary_is_recorded(tmp_path):
  store = cells_lib.CellStore(str(tmp_path))
  outcome = cells_lib.run_cells(
      square_cells(str(tmp_path / "calls.txt"), [2]), store,
      summaries={"test": lambda results: (f"{__name__}:failing_summary",
                                          {})})
  assert outcome.summaries["test"][:2] == (None, "RuntimeError: no figure")
  assert outcome.results == {("test", ("square", 2)): {"square": 4}}


@pytest.mark.parametrize("workers", [1, 2])
def test_preparation_runs_once_per_process_outside_the_cells_time(
    tmp_path, workers, monkeypatch):
  """The preparation runs first as a task of its own, then once in each
  other process before its first cell of a section that needs it (never
  for a section that does not), and no cell's time includes it."""
  log = str(tmp_path / "log.txt")
  monkeypatch.setenv("PREPARATION_LOG", log)
  monkeypatch.setattr(cells_lib, "_PREPARED", set())  # none in this process
  preparation = f"{__name__}:logged_preparation"
  cells = [cells_lib.Cell(section, (index,), f"{__name__}:logged_cell",
                          {"name": f"{section}{index}", "log": log})
           for section in ("needs", "plain") for index in range(4)]
  outcome = cells_lib.run_cells(
      cells, cells_lib.CellStore(str(tmp_path / "out")), workers=workers,
      prepare={"needs": f"{__name__}:logged_preparation"})
  (prepared,) = outcome.prepared
  assert prepared == preparation and outcome.prepared[prepared][0] is None
  found = events(log)
  assert found[0][0] == "prepare"
  preparing = [pid for event, pid in found if event == "prepare"]
  assert len(preparing) == len(set(preparing))  # once per process
  needing = {pid for event, pid in found if event.startswith("start needs")}
  assert needing <= set(preparing)
  assert all(cells_lib.CellStore(str(tmp_path / "out")).seconds(cell) < 0.5
             for cell in cells)
