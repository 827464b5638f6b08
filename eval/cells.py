"""Resumable, parallel execution of the report's cells.

A cell is one unit of the report's work, e.g. (section, game, algorithm,
seed): a function named by its import path and the keyword arguments it is
called with. Its result is stored as DIR/cells/<section>/<name>.json, written
atomically the moment it finishes, together with a digest of the function and
its arguments. A rerun with the same DIR loads every stored cell whose digest
still matches and computes only the rest, so an interrupted run loses at most
the cells in flight, and a cell whose configuration changed is recomputed
rather than silently reused.

Cells run in worker processes (`backend="process"`, `workers` of them), in
this process (`workers=1`), or on a Ray cluster (`backend="ray"`, the
optional `ray` extra).
"""

import concurrent.futures
import dataclasses
import hashlib
import importlib
import json
import os
import re
import time

from absl import logging

from vsg_spiel.eval import common

BACKENDS = ("process", "ray")
# Bump when a change to the code invalidates every stored cell.
CELL_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Cell:
  """One unit of work: `function(**config)`, stored under `section/name`."""
  section: str
  name: str
  function: str  # "package.module:function"
  config: dict

  @property
  def digest(self):
    payload = json.dumps({"format": CELL_FORMAT, "function": self.function,
                          "config": self.config}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def slug(*parts):
  """A file-name-safe name from parts such as a game string and a seed."""
  text = "-".join(str(part) for part in parts)
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:180]


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
    return os.path.join(self.directory, cell.section, cell.name + ".json")

  def load(self, cell):
    """The stored result, or None when absent, unreadable or stale."""
    try:
      with open(self.path(cell), encoding="utf-8") as stream:
        stored = json.load(stream)
    except (OSError, ValueError):
      return None
    if stored.get("digest") != cell.digest:
      return None
    return stored["result"]

  def seconds(self, cell):
    """The compute time stored with a cell (0 when absent)."""
    try:
      with open(self.path(cell), encoding="utf-8") as stream:
        return float(json.load(stream).get("seconds", 0.0))
    except (OSError, ValueError):
      return 0.0

  def save(self, cell, result, seconds):
    common.atomic_write_json(self.path(cell), {
        "digest": cell.digest, "function": cell.function,
        "config": cell.config, "seconds": seconds, "result": result})


def run_cells(cells, store, workers=1, backend="process", ray_address=None):
  """Results of all `cells` (a dict name -> result), computing only those
  the store lacks; logs a running count and an estimate of the time left."""
  names = [(cell.section, cell.name) for cell in cells]
  if len(set(names)) != len(names):
    raise ValueError("two cells share a section and name")
  results, pending = {}, []
  for cell in cells:
    stored = store.load(cell)
    if stored is None:
      pending.append(cell)
    else:
      results[cell.section, cell.name] = stored
  logging.info("%d cells: %d stored, %d to compute", len(cells),
               len(cells) - len(pending), len(pending))
  progress = _Progress(len(pending))
  for cell, result, seconds in _dispatch(pending, workers, backend,
                                         ray_address):
    store.save(cell, result, seconds)
    results[cell.section, cell.name] = result
    progress.done(cell, seconds)
  return results


class _Progress:
  """Counts finished cells and estimates the time left."""

  def __init__(self, total):
    self.total, self.finished, self.start = total, 0, time.perf_counter()

  def done(self, cell, seconds):
    self.finished += 1
    elapsed = time.perf_counter() - self.start
    left = elapsed / self.finished * (self.total - self.finished)
    logging.info("[%d/%d] %s/%s done in %.1f s; about %.0f s left",
                 self.finished, self.total, cell.section, cell.name, seconds,
                 left)


def _timed_execute(function, config):
  start = time.perf_counter()
  result = execute(function, config)
  return result, time.perf_counter() - start


def _dispatch(cells, workers, backend, ray_address):
  """Yields (cell, result, seconds) as cells finish."""
  if not cells:
    return
  if backend == "ray":
    yield from _dispatch_ray(cells, ray_address)
  elif workers <= 1:
    for cell in cells:
      yield (cell,) + _timed_execute(cell.function, cell.config)
  else:
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
      futures = {pool.submit(_timed_execute, cell.function, cell.config): cell
                 for cell in cells}
      try:
        for future in concurrent.futures.as_completed(futures):
          yield (futures[future],) + future.result()
      except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def _dispatch_ray(cells, ray_address):
  import ray  # pylint: disable=g-import-not-at-top
  if not ray.is_initialized():
    ray.init(address=ray_address, log_to_driver=False,
             include_dashboard=False)
  remote = ray.remote(_timed_execute)
  pending = {remote.remote(cell.function, cell.config): cell
             for cell in cells}
  try:
    while pending:
      ready, _ = ray.wait(list(pending), num_returns=1)
      cell = pending.pop(ready[0])
      yield (cell,) + tuple(ray.get(ready[0]))
  except BaseException:
    for reference in pending:
      ray.cancel(reference, force=True)
    raise
