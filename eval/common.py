"""What every eval binary shares: atomic output files, tables and figures."""

import contextlib
import json
import os
import re
import sys
import tempfile

from absl import flags
import numpy as np
import pyspiel


def _umask():
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


# Prefix of the temporary files of atomic writes.
TEMPORARY_PREFIX = ".tmp-"
# The process's umask, read once (reading it means setting it).
_UMASK = _umask()


def atomic_write_bytes(path, data):
  """Writes `data` to `path` through a temporary file, fsync and rename, so
  a reader (or a killed run) never sees a partial file. The file's mode is
  0666 less the umask, as for any file the process creates."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX)
  try:
    os.fchmod(handle, 0o666 & ~_UMASK)
    with os.fdopen(handle, "wb") as stream:
      stream.write(data)
      stream.flush()
      os.fsync(stream.fileno())
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def atomic_write_text(path, text):
  atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, np.integer, np.bool_)):
    return value.item()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data):
  return json.dumps(data, indent=2, default=_jsonable, allow_nan=True)


def atomic_write_json(path, data):
  atomic_write_text(path, to_json(data) + "\n")


# Interval estimates across seeds: percentile bootstrap of the mean.
BOOTSTRAP_CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = "percentile"


def bootstrap_interval(values):
  """The 95% percentile-bootstrap interval of the mean across seeds.

  `scipy.stats.bootstrap` (9999 resamples, seeded, so a rerun gives the same
  interval) along the first axis of `values` (seeds, ...). The percentile
  method because BCa is undefined when every resample has the same mean;
  with few seeds any bootstrap interval is narrow (with 2 seeds it is their
  range) and under-covers, which the tables say.

  Args:
    values: array-like (seeds, ...) of finite numbers.

  Returns:
    {"low", "high": arrays (or floats) shaped like one seed's values, or None
    when there is no interval; "note": None, "1 seed: no interval" or "all
    seeds equal" (then low = high = that value)}.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, dtype=np.float64)
  scalar = values.ndim == 1
  values = values.reshape(len(values), -1)
  if len(values) < 2:
    return {"low": None, "high": None, "note": "1 seed: no interval"}
  if np.all(values == values[0]):
    low = high = values[0]
    note = "all seeds equal"
  else:
    # Columns where every seed agrees give a zero-width interval.
    result = stats.bootstrap(
        (values,), np.mean, axis=0, vectorized=True,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=BOOTSTRAP_CONFIDENCE, method=BOOTSTRAP_METHOD,
        rng=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = (result.confidence_interval.low,
                 result.confidence_interval.high)
    note = None
  if scalar:
    return {"low": float(low[0]), "high": float(high[0]), "note": note}
  return {"low": np.asarray(low), "high": np.asarray(high), "note": note}


def save_figure(figure, path):
  """Saves a matplotlib figure atomically as PNG and closes it."""
  import io  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  plt.close(figure)
  atomic_write_bytes(path, buffer.getvalue())


def markdown_table(headers, rows):
  """A GitHub markdown table; floats shown with 4 significant digits."""
  def cell(value):
    if isinstance(value, (float, np.floating)):
      return f"{value:.4g}"
    return str(value)
  lines = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
  lines += ["| " + " | ".join(cell(value) for value in row) + " |"
            for row in rows]
  return "\n".join(lines)


def pyplot():
  """matplotlib.pyplot on the non-interactive Agg backend."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


class GameListParser(flags.ListParser):
  """A comma-separated list of game strings, split only at the commas
  outside parentheses, since game parameters are separated by commas too."""

  def parse(self, argument):
    if isinstance(argument, list):
      return argument
    games, depth, start = [], 0, 0
    for position, character in enumerate(argument):
      depth += {"(": 1, ")": -1}.get(character, 0)
      if character == "," and depth == 0:
        games.append(argument[start:position])
        start = position + 1
    games.append(argument[start:])
    return [game.strip() for game in games if game.strip()]


def check_game_name(game_string):
  """ValueError unless the name of `game_string` (before its parameters) is
  a registered game. Checked before `pyspiel.load_game`, whose error (also
  printed on stderr) lists every registered game."""
  name = game_string.split("(", 1)[0].strip()
  if name not in pyspiel.registered_names():
    raise ValueError(
        f"unknown game {name!r}; allowed: a registered game (list them "
        "with: python -c 'import vsg_spiel, pyspiel; "
        "print(pyspiel.registered_names())')")


def define_game_list(name, default, help_text):
  """A list flag of OpenSpiel game strings (see `GameListParser`)."""
  return flags.DEFINE(GameListParser(), name, default, help_text,
                      serializer=flags.ListSerializer(","))


# TensorFlow's C++ log lines (absl's format, e.g. "I0000 00:00:17.5 12
# cudart_stub.cc:31] ...") and the banner absl prints before its logging
# starts.
_TENSORFLOW_START_LINE = re.compile(
    r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before "
    r"absl::InitializeLog\(\))")


def quiet_tensorflow(argv):
  """Parses absl's own flags (-v/--verbosity) among `argv` and, at the
  default verbosity (INFO or less), turns TensorFlow's C++ INFO and WARNING
  lines off (TF_CPP_MIN_LOG_LEVEL=2 unless the environment sets it), before
  TensorFlow loads; processes started later inherit it. -v 1 leaves them
  on."""
  flags.FLAGS(list(argv), known_only=True)
  verbosity = (flags.FLAGS["verbosity"].value
               if flags.FLAGS["verbosity"].present else 0)
  if verbosity <= 0:  # absl's INFO
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def quiet_tensorflow_start():
  """While TensorFlow starts in the body: when TF_CPP_MIN_LOG_LEVEL turns
  its INFO lines off (`quiet_tensorflow`), also the start-up lines no
  setting reaches (the CUDA stubs' "Could not find cuda drivers" and
  "failed call to cuInit" on a machine without a GPU) are left out, by
  capturing file descriptor 2; anything else written there meanwhile (e.g.
  a Python warning) is passed on after the body."""
  if os.environ.get("TF_CPP_MIN_LOG_LEVEL") not in ("2", "3"):
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      sys.stderr.write("".join(
          line for line in captured.read().decode(
              "utf-8", "replace").splitlines(True)
          if not _TENSORFLOW_START_LINE.match(line)))


def start_tensorflow(threads=1):
  """Imports and starts TensorFlow's runtime (`quiet_tensorflow_start`),
  with `threads` intra- and inter-op threads (unchanged if its runtime
  already started in this process); returns the module."""
  with quiet_tensorflow_start():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      tf.config.threading.set_intra_op_parallelism_threads(threads)
      tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
      pass  # The runtime already started in this process.
    # Starts the runtime and XLA (the agents' compiled steps), which probe
    # for devices.
    tf.function(lambda: tf.constant(0.0) + 1.0, jit_compile=True)()
  return tf
