"""Running a registry algorithm: the timing loop, checkpoint schedules and
isolation (a failure becomes a recorded reason, never a lost run).

Time is the algorithm's own work, cumulative: its construction and its
steps, never the evaluations at checkpoints. The budget is enforced on the
construction and the first step: either, if it is still running after
`INTERRUPT_FACTOR` times the budget of CPU time (the process's, so that the
load of a shared machine does not change the decision), is interrupted and
raises `OverBudget`
(the callers record the algorithm as skipped on that game, with the
reason), so an algorithm whose one step is far beyond the budget costs a
few budgets, not its step. The margin keeps an algorithm whose step is
about the budget (or slowed down by a shared machine) running as before.
Later steps are never interrupted, so a run can overrun its budget by about
one step. An algorithm that walks the turn-based tree (OpenSpiel's CFR,
CFR+, XFP) is skipped before it starts where the tree's size says it would
not fit (`tree_too_large`): that decision is the same on every machine,
and the timed interruption is only the safety net.
"""

import contextlib
import math
import signal
import threading
import time
import traceback

from absl import logging
import numpy as np

from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel import logit
from vsg_spiel.eval import registry

# Checkpoints in seconds run from this fraction of the budget to the budget.
FIRST_CHECKPOINT_FRACTION = 1e-4
# A construction or first step that has used this many time budgets of CPU
# is interrupted (see the module docstring).
INTERRUPT_FACTOR = 3
# The rule above, as the reports state it.
BUDGET_RULE = (f"A construction or first step still running after "
               f"{INTERRUPT_FACTOR} x the budget of CPU time is interrupted "
               "and the algorithm is listed as skipped on that game; later "
               "steps are not interrupted, so a run can overrun the budget by "
               "about one step.")
# The deterministic rule of `tree_too_large`, as the reports state it.
TREE_RULE = ("OpenSpiel's tree-walking solvers (CFR, CFR+, XFP) are skipped "
             "before they start on a Python game whose turn-based tree is "
             f"too large for {INTERRUPT_FACTOR} x the budget at their highest "
             "measured speed.")


class LogSchedule:
  """`count` marks evenly spaced in log(iterations) over [1, max_iterations]
  and as many in log(seconds) over [FIRST_CHECKPOINT_FRACTION x budget,
  budget]; a checkpoint is due whenever either passes its next mark."""

  def __init__(self, count, max_iterations, time_budget):
    self._count = count
    self._log_iterations = math.log(max(max_iterations, 2))
    self._first_seconds = time_budget * FIRST_CHECKPOINT_FRACTION
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


class DecadeSchedule:
  """About 4 checkpoints per decade of iterations, and the last one."""

  def __init__(self, iterations):
    points = {int(round(10 ** exponent)) for exponent in
              np.arange(0.0, np.log10(iterations) + 1e-9, 0.25)}
    self.iterations = sorted(point for point in points | {iterations}
                             if point <= iterations)
    self._due = set(self.iterations)

  def due(self, iteration, seconds):
    del seconds
    return iteration in self._due


class OverBudget(Exception):
  """An algorithm's construction or first step did not finish within its
  time budget; the message says which, with the budget."""


def compile_solvers():
  """Compiles the numba kernels, the homotopy's (`homotopy.compile_kernel`),
  the stationary evaluation's (`vsg_spiel.stationary_kernel`, through one
  NashConv of a 2-state game) and `vsg_spiel.logit`'s row kernels (through
  one softmax and one KL-regularised response on a (2, 2) array), before
  any cell runs: a timed cell would otherwise pay numba's first compilation
  (about 35 s, 7 s and 2 s of CPU on a fresh install) inside its budget,
  and workers forked afterwards inherit the compiled code."""
  # pylint: disable-next=g-import-not-at-top
  from vsg_spiel.algorithms import homotopy
  logging.info("homotopy kernel ready in %.1f s (compiled once per install, "
               "then loaded from numba's cache)", homotopy.compile_kernel())
  start = time.perf_counter()
  game = core.MarkovGame.from_arrays(
      rewards=np.ones((2, 2, 2, 2)),
      transitions=np.full((2, 2, 2, 2), 0.5), discount=0.5,
      initial_distribution=np.array([1.0, 0.0]))
  exploitability.nash_conv(game, [np.full((2, 2), 0.5)] * 2)
  logging.info("stationary kernel ready in %.1f s",
               time.perf_counter() - start)
  start = time.perf_counter()
  rows, legal = np.zeros((2, 2)), np.ones((2, 2), dtype=bool)
  logit.softmax(rows, legal)
  logit.kl_regularised_response(rows, rows, legal, 1.0)
  logging.info("logit row kernels ready in %.1f s",
               time.perf_counter() - start)


@contextlib.contextmanager
def interrupt_after(seconds, what, budget):
  """Raises `OverBudget` ("`what` took more than `seconds` s of CPU",
  relative to `budget`) inside the body once this process has used
  `seconds` of CPU time, by SIGPROF (`ITIMER_PROF`): CPU time, not wall
  time, so that a loaded machine, which stretches the wall time of the
  same work, does not decide what is skipped. Python code is interrupted at
  once, C++ code at its next call into Python (OpenSpiel's C++ solvers on a
  Python game) or when it returns. Only in a process's main thread where
  SIGPROF exists; elsewhere the body runs unlimited.

  Raises:
    OverBudget: the body was still running after `seconds`.
  """
  if (not hasattr(signal, "setitimer") or
      threading.current_thread() is not threading.main_thread()):
    yield
    return
  def alarm(signum, frame):
    del signum, frame
    factor = seconds / budget
    raise OverBudget(f"{what} took more than {seconds:g} s of CPU "
                     f"({factor:g} x the {budget:g} s budget; interrupted)")
  previous = signal.signal(signal.SIGPROF, alarm)
  signal.setitimer(signal.ITIMER_PROF, seconds)
  try:
    yield
  finally:
    try:
      signal.setitimer(signal.ITIMER_PROF, 0)
    finally:
      signal.signal(signal.SIGPROF, previous)


def run_timed(algorithm, setup_seconds, schedule, time_budget, max_iterations,
              value_name="nash_conv", stop_at=None, evaluate_start=False):
  """Steps `algorithm` within the budgets, evaluating `nash_conv()` at the
  schedule's checkpoints and at the end.

  Args:
    algorithm: a `registry.Algorithm`.
    setup_seconds: its construction time, counted in its time.
    schedule: has `due(iteration, seconds)`.
    time_budget: seconds of its own work.
    max_iterations: most steps.
    value_name: the key of the evaluated value in each checkpoint.
    stop_at: stop at a checkpoint whose value is <= this (None: never).
    evaluate_start: evaluate before the first step (iteration 0), and check
      the budget before every step (so that a construction that spent the
      budget leaves no step); otherwise at least one step is taken.

  Returns:
    (checkpoints [{"iteration", "seconds", value_name}], iterations, seconds).

  Raises:
    OverBudget: the first step did not finish within `INTERRUPT_FACTOR` x
      `time_budget` seconds (it is interrupted then).
  """
  seconds, iteration, checkpoints = setup_seconds, 0, []
  def checkpoint():
    value = algorithm.nash_conv()
    checkpoints.append({"iteration": iteration, "seconds": seconds,
                        value_name: value})
    return value
  def spent():
    return seconds >= time_budget or iteration >= max_iterations
  if evaluate_start:
    checkpoint()
  last_log = time.perf_counter()
  while not (evaluate_start and spent()):
    start = time.perf_counter()
    if iteration == 0:
      with interrupt_after(INTERRUPT_FACTOR * time_budget, "its first step",
                           time_budget):
        algorithm.step()
    else:
      algorithm.step()
    seconds += time.perf_counter() - start
    iteration += 1
    if time.perf_counter() - last_log > 10:
      last_log = time.perf_counter()
      logging.info("iteration %d/%d, %.1f s of %.1f s", iteration,
                   max_iterations, seconds, time_budget)
    if not (schedule.due(iteration, seconds) or spent()):
      continue
    value = checkpoint()
    if spent() or (stop_at is not None and value <= stop_at):
      break
  return checkpoints, iteration, seconds


def failure(error):
  """The recorded form of an algorithm's (or a cell's) failure."""
  return {"failed": f"{type(error).__name__}: {error}".strip()}


def tree_too_large(entry, mgame, time_budget):
  """Why `entry` cannot walk `mgame`'s turn-based tree within
  `INTERRUPT_FACTOR` x `time_budget` seconds at its
  `tree_histories_per_second` (a game implemented in Python only; OpenSpiel's
  C++ games are left to the timed guard), or None. Deterministic: the
  estimate is a count on the game's tensors, not a measured time."""
  rate = entry.tree_histories_per_second
  if (rate is None or time_budget is None or
      type(mgame.game).__module__ == "pyspiel"):
    return None
  histories = core.turn_based_tree_size(mgame, outcomes=True)
  limit = INTERRUPT_FACTOR * time_budget * rate
  if histories <= limit:
    return None
  return (f"its turn-based tree has ~{histories} histories, more than the "
          f"{limit:.0f} it can visit in {INTERRUPT_FACTOR} x the "
          f"{time_budget:g} s budget on a Python game (at most ~{rate:.0f} "
          "per second)")


def build(entry, game, *arguments, time_budget=None):
  """Builds `entry`'s algorithm on `game` (the registry game for its
  family), timing the construction, interrupted after `INTERRUPT_FACTOR`
  x `time_budget` seconds (None: never).

  Returns:
    (algorithm, seconds), or (None, {"skipped": reason}) when the entry does
    not support the game (its `unsupported` check or `Unsupported` raised by
    `make`), its tree is too large for the budget (`tree_too_large`) or its
    construction did not finish in time.
  """
  reason = entry.unsupported(game) or tree_too_large(entry, game,
                                                     time_budget)
  if reason:
    return None, {"skipped": reason}
  start = time.perf_counter()
  try:
    if time_budget is None:
      algorithm = entry.make(game, *arguments)
    else:
      with interrupt_after(INTERRUPT_FACTOR * time_budget,
                           "its construction", time_budget):
        algorithm = entry.make(game, *arguments)
  except (registry.Unsupported, OverBudget) as error:
    return None, {"skipped": str(error)}
  return algorithm, time.perf_counter() - start


def isolated(name, where, function, *arguments):
  """`function(*arguments)`, or `failure(error)` if it raises: one algorithm
  that fails never loses the others' results. Logs the traceback."""
  try:
    return function(*arguments)
  except Exception as error:  # pylint: disable=broad-except
    logging.error("%s failed on %s:\n%s", name, where,
                  traceback.format_exc())
    return failure(error)


def recorded_failures(value, where=""):
  """{path: reason} of the failures recorded inside a result: every
  {"failed": reason} (an isolated run or cell) and every entry of an
  "errors" dict (run_mfg's), at any depth; paths join keys with "/"."""
  def join(key):
    return f"{where}/{key}" if where else str(key)
  found = {}
  if isinstance(value, dict):
    if isinstance(value.get("failed"), str):
      found[where] = value["failed"]
    for key, item in value.items():
      if key == "errors" and isinstance(item, dict):
        found.update({join(name): reason for name, reason in item.items()})
      elif key != "failed":
        found.update(recorded_failures(item, join(key)))
  elif isinstance(value, list):
    for index, item in enumerate(value):
      found.update(recorded_failures(item, join(index)))
  return found


def outcome_failures(outcome):
  """{path: reason} of a `cells.Outcome`'s failed cells and of the failures
  recorded inside its completed cells' results."""
  found = outcome.failures()
  for (section, key), result in outcome.results.items():
    found.update(recorded_failures(
        result, "/".join(str(part) for part in (section,) + key)))
  return found
