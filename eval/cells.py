"""Resumable, parallel, isolated execution of the eval binaries' cells.

A cell is one unit of work, e.g. (section, game, algorithm, seed): a function
named by its import path and the keyword arguments it is called with, stored
under its section and a key (a tuple of strings and numbers). Its result is
stored as DIR/cells/<section>/<slug of the key>-<digest of the key>.json
(unique for any key, however long), written atomically the moment it
finishes, together with a digest of the function and its arguments. A rerun
with the same DIR loads every stored cell whose digest still matches and
computes only the rest, so an interrupted run loses at most the cells in
flight, and a cell whose configuration changed is recomputed rather than
silently reused. A stored file that is unreadable or malformed is recomputed
(and the log says so).

Cells are isolated: one that raises is recorded as failed with its reason and
is not stored (a rerun retries it); the others, including those running at
the time in other workers, complete and are stored.

Cells run in worker processes (`backend="process"`, `workers` of them, which
exit when the main process dies), in this process (`workers=1`), or on a Ray
cluster (`backend="ray"`, the optional `ray` extra). `output_lock` keeps two
runs off one output directory.

Around the cells, `run_cells` runs two kinds of task in the same workers, so
that no core idles while the main process works alone: a section's
preparation (e.g. compiling numba kernels), once per process before its first
cell of that section and outside the cell's time, and first as a task of its
own so that one worker prepares while the others start other cells; and a
section's summary, as soon as its last cell has finished, ahead of the cells
not yet started. With `workers` processes, `workers` tasks are in flight at a
time, taken in order from the queue, so the order of `cells` is the order
they start (a caller puts the longest first: `longest_first`).
"""

import collections
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import hashlib
import importlib
import json
import logging as std_logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback

from absl import logging

from vsg_spiel.eval import common

BACKENDS = ("process", "ray")
# Bump when a change to the code invalidates every stored cell.
CELL_FORMAT = 3
LOCK_FILE = ".lock"


@dataclasses.dataclass(frozen=True)
class Cell:
  """One unit of work: `function(**config)`, stored under `section/key`."""
  section: str
  key: tuple  # strings and numbers, unique within the section
  function: str  # "package.module:function"
  config: dict

  @property
  def name(self):
    return "/".join(str(part) for part in self.key)

  @property
  def digest(self):
    payload = json.dumps({"format": CELL_FORMAT, "function": self.function,
                          "config": self.config}, sort_keys=True,
                         default=list)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

  @property
  def file_name(self):
    """A file name unique for the key: a readable prefix and its digest."""
    key = json.dumps(list(self.key), default=str)
    suffix = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{slug(*self.key)[:80]}-{suffix}.json"


def slug(*parts):
  """A file-name-safe name from parts such as a game string and a seed."""
  text = "-".join(str(part) for part in parts)
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def execute(function, config):
  """Runs one cell in any process: imports `function` and calls it; the
  result goes through JSON so that every backend returns the same data."""
  module_name, function_name = function.split(":")
  result = getattr(importlib.import_module(module_name), function_name)(
      **config)
  return json.loads(common.to_json(result))


class CellStore:
  """The stored results of the cells of one output directory."""

  def __init__(self, directory):
    self.directory = os.path.join(directory, "cells")

  def path(self, cell):
    return os.path.join(self.directory, cell.section, cell.file_name)

  def _read(self, cell):
    """The stored record, or None (absent, unreadable or malformed: logged)."""
    path = self.path(cell)
    try:
      with open(path, encoding="utf-8") as stream:
        stored = json.load(stream)
    except FileNotFoundError:
      return None
    except (OSError, ValueError) as error:
      logging.warning("cell %s/%s: %s is unreadable (%s); recomputing it",
                      cell.section, cell.name, path, error)
      return None
    if not (isinstance(stored, dict) and "result" in stored and
            isinstance(stored.get("digest"), str)):
      logging.warning("cell %s/%s: %s is malformed (no digest and result); "
                      "recomputing it", cell.section, cell.name, path)
      return None
    return stored

  def load(self, cell):
    """The stored result, or None when absent, unreadable, malformed or
    stale (computed with another configuration)."""
    stored = self._read(cell)
    if stored is None:
      return None
    if stored["digest"] != cell.digest:
      logging.info("cell %s/%s: its configuration changed; recomputing it",
                   cell.section, cell.name)
      return None
    return stored["result"]

  def seconds(self, cell, kind="seconds"):
    """The compute time stored with a cell (0 when absent): its wall time
    ("seconds") or the CPU time of its process ("cpu_seconds"; what a cell
    costs on a shared machine)."""
    stored = self._read(cell)
    seconds = stored.get(kind, 0.0) if stored else 0.0
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0

  def cost(self, cell):
    """The CPU seconds stored with the cell by an earlier run, whatever its
    configuration then (an estimate of what computing it costs), or None
    when none is stored."""
    stored = self._read(cell)
    cost = stored.get("cpu_seconds") if stored else None
    return float(cost) if isinstance(cost, (int, float)) else None

  def save(self, cell, result, seconds, cpu_seconds=None):
    common.atomic_write_json(self.path(cell), {
        "digest": cell.digest, "function": cell.function,
        "key": list(cell.key), "config": cell.config, "seconds": seconds,
        "cpu_seconds": cpu_seconds, "result": result})


def longest_first(cells, store):
  """`cells` in the order to start them: those without a stored CPU time
  first, in their given order (new cells, of unknown cost), then the others
  by the CPU seconds an earlier run stored with them (`CellStore.cost`),
  longest first, so that no long cell starts last while the other workers
  idle (longest-processing-time-first scheduling)."""
  costs = [store.cost(cell) for cell in cells]
  unknown = [cell for cell, cost in zip(cells, costs) if cost is None]
  known = sorted(((cost, index) for index, cost in enumerate(costs)
                  if cost is not None), key=lambda pair: -pair[0])
  return unknown + [cells[index] for _, index in known]


@dataclasses.dataclass
class Outcome:
  """What `run_cells` returns: results of the cells that completed and the
  reasons of those that failed, both keyed by (section, key); the sections'
  summaries, {section: (result or None, reason or None, wall seconds, CPU
  seconds)}; the preparations run as tasks of their own, {function: (reason
  or None, wall seconds, CPU seconds)}; the time the tasks took."""
  results: dict
  failed: dict
  summaries: dict = dataclasses.field(default_factory=dict)
  prepared: dict = dataclasses.field(default_factory=dict)
  # Wall seconds of the cells computed by this run, and of every task run
  # (cells, summaries, preparations), summed over workers.
  cell_seconds: float = 0.0
  busy_seconds: float = 0.0

  def section(self, name):
    """{key: result} of one section's completed cells."""
    return {key: result for (section, key), result in self.results.items()
            if section == name}

  def failures(self):
    """{"section/key": reason} of the failed cells."""
    return {"/".join(str(part) for part in (section,) + key): reason
            for (section, key), reason in self.failed.items()}


@dataclasses.dataclass(frozen=True)
class _Task:
  """What a worker runs: a cell (`cell` set), a section's summary
  (`summary` names the section) or a preparation (neither)."""
  function: str
  config: dict
  prepare: str | None = None
  cell: Cell | None = None
  summary: str | None = None


def run_cells(cells, store, workers=1, backend="process", ray_address=None,
              verbosity=None, prepare=None, summaries=None):
  """Runs the `cells` the store lacks, in their order, each isolated,
  storing each as it finishes; logs a running count and an estimate of the
  time left. Cells log at `cell_verbosity(verbosity)`.

  Args:
    cells: [Cell], in the order to start them.
    store: a `CellStore`.
    workers: processes of the process backend (1: this process).
    backend: one of BACKENDS.
    ray_address: the Ray cluster's (None: a local instance).
    verbosity: absl verbosity of this process (default: its current one).
    prepare: {section: "module:function"}, called without arguments once in
      each process before its first cell of that section, outside the cell's
      time (e.g. `runner.compile_solvers`); each one some pending cell needs
      also runs first as a task of its own (its time in `Outcome.prepared`).
    summaries: {section: function({key: result} of the section's completed
      cells) -> ("module:function", config)}: the section's summary task
      (prepared as its cells are), queued ahead of the cells not yet
      started as soon as the section's last cell has finished (at once when
      none is pending); its outcome is in `Outcome.summaries`.

  Returns:
    An `Outcome`.

  Raises:
    Interrupted: on Ctrl-C (a KeyboardInterrupt), after stopping the
      workers; it counts the cells stored.
  """
  keys = [(cell.section, cell.key) for cell in cells]
  if len(set(keys)) != len(keys):
    raise ValueError("two cells share a section and key")
  prepare, summaries = prepare or {}, summaries or {}
  outcome, pending = Outcome({}, {}), []
  for cell in cells:
    stored = store.load(cell)
    if stored is None:
      pending.append(cell)
    else:
      outcome.results[cell.section, cell.key] = stored
  logging.info("%d cells: %d stored, %d to compute", len(cells),
               len(cells) - len(pending), len(pending))
  unfinished = collections.Counter(cell.section for cell in pending)
  def summary_task(section):
    function, config = summaries[section](outcome.section(section))
    return _Task(function, config, prepare.get(section), summary=section)
  queue = collections.deque(
      [summary_task(section) for section in summaries
       if not unfinished[section]] +
      [_Task(f"{__name__}:prepare_once", {"function": function})
       for function in dict.fromkeys(prepare.get(cell.section)
                                     for cell in pending) if function] +
      [_Task(cell.function, cell.config, prepare.get(cell.section), cell)
       for cell in pending])
  progress = _Progress(len(pending))
  try:
    for task, (result, error), seconds, cpu_seconds in _dispatch(
        queue, workers, backend, ray_address, cell_verbosity(verbosity)):
      outcome.busy_seconds += seconds
      if task.summary is not None:
        outcome.summaries[task.summary] = (result, error, seconds,
                                           cpu_seconds)
        continue
      if task.cell is None:
        outcome.prepared[task.config["function"]] = (error, seconds,
                                                     cpu_seconds)
        logging.info("%s in %.1f s (%.1f s of CPU)%s",
                     task.config["function"], seconds, cpu_seconds,
                     f": FAILED {error}" if error else "")
        continue
      cell = task.cell
      outcome.cell_seconds += seconds
      if error is None:
        store.save(cell, result, seconds, cpu_seconds)
        outcome.results[cell.section, cell.key] = result
      else:
        outcome.failed[cell.section, cell.key] = error
      progress.done(cell, seconds, error)
      unfinished[cell.section] -= 1
      if not unfinished[cell.section] and cell.section in summaries:
        queue.appendleft(summary_task(cell.section))
  except KeyboardInterrupt:
    raise Interrupted(len(outcome.results)) from None
  return outcome


class Interrupted(KeyboardInterrupt):
  """A run of cells was interrupted (Ctrl-C) after `stored` of its cells
  were stored; the workers are stopped and the same command resumes."""

  def __init__(self, stored):
    super().__init__(stored)
    self.stored = stored

  def __str__(self):
    return (f"interrupted: {self.stored} cells stored; rerun the same "
            "command to resume")


class _Progress:
  """Counts finished cells and estimates the time left."""

  def __init__(self, total):
    self.total, self.finished, self.start = total, 0, time.perf_counter()

  def done(self, cell, seconds, error):
    self.finished += 1
    elapsed = time.perf_counter() - self.start
    left = elapsed / self.finished * (self.total - self.finished)
    if error is not None:
      logging.error("[%d/%d] %s/%s FAILED after %.1f s: %s", self.finished,
                    self.total, cell.section, cell.name, seconds, error)
    else:
      logging.info("[%d/%d] %s/%s done in %.1f s; about %.0f s left",
                   self.finished, self.total, cell.section, cell.name,
                   seconds, left)


def cell_verbosity(verbosity=None):
  """The absl verbosity cells log at: one level below `verbosity` (default:
  this process's), so that at the default (INFO) the terminal shows the
  progress lines and warnings but not the libraries' INFO lines (e.g.
  TensorFlow's checkpoint messages); -v 1 shows them."""
  if verbosity is None:
    verbosity = logging.get_verbosity()
  return verbosity - 1


@contextlib.contextmanager
def cell_logging(verbosity):
  """Runs a cell at absl `verbosity`: below INFO, TensorFlow's Python
  warnings and its C++ INFO and WARNING lines are off too (the "tensorflow"
  logger at ERROR; TF_CPP_MIN_LOG_LEVEL=2 unless the environment sets it,
  read when TensorFlow loads). The levels are restored after."""
  tensorflow_logger = std_logging.getLogger("tensorflow")
  previous = (logging.get_verbosity(), tensorflow_logger.level)
  if verbosity < logging.INFO:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow's Python warnings (e.g. tf.function retracing) too.
    tensorflow_logger.setLevel(std_logging.ERROR)
  logging.set_verbosity(verbosity)
  try:
    yield
  finally:
    logging.set_verbosity(previous[0])
    tensorflow_logger.setLevel(previous[1])


# The preparations this process has made (`prepare_once`).
_PREPARED = set()


def prepare_once(function):
  """Calls `function` ("module:function", no arguments) unless this process
  already has (or inherited it from the process that forked it)."""
  if function not in _PREPARED:
    module_name, function_name = function.split(":")
    getattr(importlib.import_module(module_name), function_name)()
    _PREPARED.add(function)


def _isolated_execute(function, config, verbosity=logging.INFO,
                      prepare=None):
  """((result, None) or (None, reason), wall seconds, CPU seconds of this
  process): a cell never raises. It logs at `verbosity` (`cell_logging`);
  its errors are always logged. `prepare` ("module:function") is made first
  (`prepare_once`), outside the time; a failure to prepare fails the
  cell."""
  start, cpu_start = time.perf_counter(), time.process_time()
  with cell_logging(verbosity):
    try:
      if prepare is not None:
        prepare_once(prepare)
      start, cpu_start = time.perf_counter(), time.process_time()
      outcome = (execute(function, config), None)
    except Exception as error:  # pylint: disable=broad-except
      logging.error("cell %s(%s) failed:\n%s", function, config,
                    traceback.format_exc())
      outcome = (None, f"{type(error).__name__}: {error}".strip())
  return (outcome, time.perf_counter() - start,
          time.process_time() - cpu_start)


_PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent):
  """Worker initializer: the worker exits when `parent` dies, by the
  kernel's parent-death signal (Linux) and a watchdog thread (elsewhere, and
  should the signal be missed)."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except (OSError, AttributeError):
    pass
  def watch():
    while os.getppid() == parent:
      time.sleep(0.5)
    os._exit(1)  # pylint: disable=protected-access
  if os.getppid() != parent:
    os._exit(1)  # pylint: disable=protected-access
  threading.Thread(target=watch, daemon=True).start()


def _dispatch(queue, workers, backend, ray_address, verbosity):
  """Yields (task, (result, error), seconds, CPU seconds) as `_Task`s
  finish, taking them from the front of `queue` (a deque, to which the
  caller may add between yields) as workers free up: `workers` in flight
  (all at once on Ray, whose scheduler places them)."""
  def run(task):
    return (task.function, task.config, verbosity, task.prepare)
  if backend == "ray":
    yield from _dispatch_ray(queue, ray_address, run)
  elif workers <= 1:
    while queue:
      task = queue.popleft()
      yield (task,) + _isolated_execute(*run(task))
  else:
    # The pool's workers are the children started after this point.
    others = set(multiprocessing.active_children())
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=_exit_with_parent,
        initargs=(os.getpid(),)) as pool:
      running = {}
      try:
        while queue or running:
          while queue and len(running) < workers:
            task = queue.popleft()
            running[pool.submit(_isolated_execute, *run(task))] = task
          done, _ = concurrent.futures.wait(
              running, return_when=concurrent.futures.FIRST_COMPLETED)
          for future in done:
            yield (running.pop(future),) + future.result()
      except BaseException:
        # Running cells are stopped, not awaited (finished ones are stored).
        pool.shutdown(wait=False, cancel_futures=True)
        for process in set(multiprocessing.active_children()) - others:
          process.terminate()
        raise


def _dispatch_ray(queue, ray_address, run):
  import ray  # pylint: disable=g-import-not-at-top
  if not ray.is_initialized():
    ray.init(address=ray_address, log_to_driver=False,
             include_dashboard=False)
  remote = ray.remote(_isolated_execute)
  pending = {}
  try:
    while queue or pending:
      while queue:
        task = queue.popleft()
        pending[remote.remote(*run(task))] = task
      ready, _ = ray.wait(list(pending), num_returns=1)
      task = pending.pop(ready[0])
      yield (task,) + tuple(ray.get(ready[0]))
  except BaseException:
    for reference in pending:
      ray.cancel(reference, force=True)
    raise


def _remove_partial_files(directory):
  """Removes the temporary files of atomic writes that a killed run left
  (only the lock holder writes here, so none is in use)."""
  for root, _, names in os.walk(directory):
    for name in names:
      if name.startswith(common.TEMPORARY_PREFIX):
        logging.info("removing %s, left by an interrupted run",
                     os.path.join(root, name))
        os.unlink(os.path.join(root, name))


class LockedError(RuntimeError):
  """Another process holds the output directory."""


@contextlib.contextmanager
def output_lock(directory):
  """Holds DIR/.lock (an advisory lock, released when the process ends,
  however it ends) while the body runs, and removes it after; creates
  DIR.

  Raises:
    LockedError: another process holds it; the message names its pid.
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, LOCK_FILE)
  descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
  try:
    try:
      fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      holder = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip()
      raise LockedError(
          f"--out={directory} is in use by another run (pid {holder or '?'}"
          f", lock {path}): wait for it to finish or choose another "
          "--out") from None
    if os.fstat(descriptor).st_ino != _inode(path):
      # The holder finished and removed the file between our open and lock.
      raise LockedError(f"--out={directory} was just released by another "
                        "run; rerun to take it")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    _remove_partial_files(directory)
    try:
      yield
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # still locked: nobody else can have locked it
  finally:
    os.close(descriptor)


def _inode(path):
  try:
    return os.stat(path).st_ino
  except FileNotFoundError:
    return None


def exit_status(failures):
  """Reports `failures` ({what: reason}) on stderr; the process's exit
  status: 1 if anything failed, else 0."""
  for what, reason in failures.items():
    logging.error("FAILED %s: %s", what, reason)
  if failures:
    print(f"{len(failures)} failed: " + "; ".join(
        f"{what}: {reason}" for what, reason in failures.items()),
          file=sys.stderr)
  return 1 if failures else 0
