"""The one registry of the algorithms the eval binaries run.

Every binary (compare_nash, the zero-sum section of run_equilibria, run_mfg,
run_mai and the report's sections built on them) looks its algorithms up
here, so
adding an algorithm to all of them is one `register(Entry(...))`:

  registry.register(registry.Entry(
      name="my_solver", family=registry.MARKOV, make=MySolverAdapter,
      defaults=("compare_nash",)))

An entry's `make` builds an object following the `Algorithm` protocol (one
unit of work per `step()`, the played policy, its NashConv); its
`unsupported` says up front, with the reason, on which games it cannot run.
The built-in entries are in `eval/adapters.py`.
"""

import dataclasses
from typing import Any, Protocol
from collections.abc import Callable, Sequence

# Families: what `make` receives.
# MARKOV: make(mgame, settings, reward_scale) with the game's `MarkovGame`,
#   the binary's settings and the stage-reward range (the unit of
#   temperatures); NashConv is that of the Markov-game core.
MARKOV = "markov"
# MEAN_FIELD: make(game, engine, settings) with a mean-field pyspiel game and
#   its `mfg_engine.MeanFieldEngine`; NashConv is OpenSpiel's exploitability.
MEAN_FIELD = "mean_field"
# CONTINUOUS: make(spec, settings, seed) with the game's
#   `continuous_common.EnvironmentSpec`, an instance of the class of the
#   entry's `settings()` and the run's seed; returns one agent per player
#   (`continuous_common.ReplayAgent`s, trained by their `step` protocol on a
#   game's continuous interface).
CONTINUOUS = "continuous"
FAMILIES = (MARKOV, MEAN_FIELD, CONTINUOUS)


class Unsupported(Exception):
  """An algorithm cannot run on a game; the message says why."""


class Algorithm(Protocol):
  """What the runner drives: one unit of work per step, a played policy."""

  def step(self) -> None:
    """One unit of work: an iteration, or a batch of episodes for learners."""

  def policy(self) -> Any:
    """The played policy, an OpenSpiel `policy.Policy`."""

  def nash_conv(self) -> float:
    """NashConv (sum over players of the best-response gain) of `policy()`,
    in reward units."""


class MarkovAlgorithm(Algorithm, Protocol):
  """An algorithm of the MARKOV family also gives its profile."""

  def profile(self) -> Sequence[Any]:
    """The played policy as a profile of the game's `MarkovGame`: one array
    (num_states, num_actions[i]) per player, rows summing to 1."""


def _supports_every_game(game):
  del game
  return None


@dataclasses.dataclass(frozen=True)
class Entry:
  """One algorithm of the registry."""
  # The name binaries use in --algorithms and in their results.
  name: str
  # MARKOV or MEAN_FIELD: what `make` receives (see above).
  family: str
  # Builds the algorithm; may raise `Unsupported` with the reason.
  make: Callable[..., Algorithm]
  # game -> None if the algorithm can run on it, else the reason why not
  # (checked before anything is built). The game is the `MarkovGame` for
  # MARKOV and the pyspiel game for MEAN_FIELD.
  unsupported: Callable[[Any], str | None] = _supports_every_game
  # The binaries (or report sections) that run it when no --algorithms is
  # given: "compare_nash", "zero_sum", "run_mfg", "run_mai".
  defaults: Sequence[str] = ()
  # True for OpenSpiel's algorithms (the baselines), False for ours.
  baseline: bool = True
  # The name in figures and tables (the name itself when empty).
  label: str = ""
  # CONTINUOUS: () -> the agents' default settings, a frozen dataclass (an
  # ablation's differ from its algorithm's in the fields it changes).
  settings: Callable[[], Any] | None = None
  # MARKOV algorithms that walk the turn-based tree in their construction
  # and first step (OpenSpiel's CFR, CFR+, XFP): an upper bound on the
  # histories (`core.turn_based_tree_size(outcomes=True)`) they visit per
  # second on a game implemented in Python. With a time budget, such a game
  # whose tree would take longer than `runner.INTERRUPT_FACTOR` x the budget
  # at this speed is skipped before anything runs (`runner.build`), the same
  # on every machine. None: no such estimate.
  tree_histories_per_second: float | None = None

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family {self.family!r} of {self.name!r}: use one of "
                       f"{FAMILIES}")
    if (self.settings is None) == (self.family == CONTINUOUS):
      raise ValueError(f"{self.name!r}: settings is required of the "
                       f"{CONTINUOUS} family and of no other")

  @property
  def title(self):
    return self.label or self.name


_REGISTRY = {}


def register(entry, replace=False):
  """Adds `entry`; returns it. A name is registered once unless `replace`."""
  if entry.name in _REGISTRY and not replace:
    raise ValueError(f"algorithm {entry.name!r} is already registered")
  _REGISTRY[entry.name] = entry
  return entry


def unregister(name):
  """Removes an entry (tests register temporary ones)."""
  del _REGISTRY[name]


def names(family, default_for=None):
  """Names of `family`'s entries in registration order; with `default_for`,
  only those run by default by that binary."""
  return tuple(name for name, entry in _REGISTRY.items()
               if entry.family == family and
               (default_for is None or default_for in entry.defaults))


def get(name, family):
  """The entry `name` of `family`; ValueError naming the valid names."""
  entry = _REGISTRY.get(name)
  if entry is None or entry.family != family:
    raise ValueError(f"unknown algorithm {name!r}; valid: "
                     f"{', '.join(names(family))}")
  return entry


# The built-in entries register themselves on import.
# pylint: disable-next=g-import-not-at-top,wrong-import-position,unused-import
from vsg_spiel.eval import adapters  # noqa: E402,F401
