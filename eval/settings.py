"""One source of truth for the eval binaries' settings.

Each binary's settings are a frozen dataclass whose fields are declared with
`setting(default, help, ...)`: the default, the help text and what values are
allowed. The command-line flags are generated from it (`define_flags`), a
parsed command line becomes an instance (`parse`), every value is checked
before any work (`validate`, whose messages name the flag and the allowed
values), and suites are `dataclasses.replace` of the defaults.

Field types: bool, int, float, str, `X | None` of those (default None),
and tuple[X, ...] of int, float or str (comma-separated list flags; with
games=True, a list of OpenSpiel game strings split at the commas outside
parentheses).
"""

import dataclasses
import math
import os
import sys
import tempfile
import types
import typing
from typing import Any
from collections.abc import Callable, Sequence

from absl import app
from absl import flags

from vsg_spiel.eval import cells
from vsg_spiel.eval import common

_HELP_ARGUMENTS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


Choices = Sequence[Any] | Callable[[], Sequence[Any]]


def setting(default, help_text, *, choices: Choices | None = None,
            above: float | None = None, at_least: float | None = None,
            at_most: float | None = None, games: bool = False,
            check: Callable[[Any], None] | None = None,
            allow_empty: bool = False):
  """A settings field: its default, help text and allowed values.

  Args:
    default: the default (a tuple for list settings).
    help_text: what the setting means, with its unit.
    choices: the allowed values (of each element, for lists), or a function
      returning them (e.g. the registry's names, read when checked).
    above, at_least, at_most: bounds of numbers (of each element, for lists):
      > above, >= at_least, <= at_most. Floats must also be finite.
    games: a list of OpenSpiel game strings.
    check: a further check, value -> None, raising ValueError with the
      reason (e.g. that a game cannot be loaded); run by `validate`.
    allow_empty: whether a list may be empty (default: not).
  """
  return dataclasses.field(default=default, metadata=dict(
      help=help_text, choices=(tuple(choices) if isinstance(
          choices, (list, tuple)) else choices),
      above=above, at_least=at_least, at_most=at_most, games=games,
      check=check, allow_empty=allow_empty))


def _base_type(field):
  """(element type, is_list, is_optional) of a field's annotation."""
  annotation, optional = field.type, False
  # `X | None` (types.UnionType) or `typing.Optional[X]` (typing.Union).
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    (annotation,) = [arg for arg in typing.get_args(annotation)
                     if arg is not type(None)]
    optional = True
  if typing.get_origin(annotation) is tuple:
    return typing.get_args(annotation)[0], True, optional
  return annotation, False, optional


def _choices(field):
  choices = field.metadata["choices"]
  return choices() if callable(choices) else choices


def allowed(field):
  """The allowed values of a field, in words."""
  meta = field.metadata
  element, is_list, optional = _base_type(field)
  if meta["choices"] is not None:
    text = "one of " + ", ".join(str(choice) for choice in _choices(field))
  else:
    text = {int: "an integer", float: "a finite number", str: "a string",
            bool: "true or false"}[element]
    if meta["games"]:
      text = "an OpenSpiel game string"
    bounds = [f"> {meta['above']:g}" if meta["above"] is not None else None,
              f">= {meta['at_least']:g}" if meta["at_least"] is not None
              else None,
              f"<= {meta['at_most']:g}" if meta["at_most"] is not None
              else None]
    bounds = [bound for bound in bounds if bound]
    if bounds:
      text += " " + " and ".join(bounds)
  if is_list:
    text = (f"a {'' if meta['allow_empty'] else 'non-empty '}comma-separated "
            f"list, each {text}")
  if optional:
    text += " (or unset)"
  return text


def define_flags(settings_class, flag_values):
  """Defines one flag per field of `settings_class` in `flag_values`."""
  for field in dataclasses.fields(settings_class):
    element, is_list, _ = _base_type(field)
    meta = field.metadata
    help_text = f"{meta['help']} Allowed: {allowed(field)}."
    default = field.default
    if is_list:
      default = None if default is None else [str(value) for value in default]
      parser = (common.GameListParser() if meta["games"] else
                flags.ListParser())
      flags.DEFINE(parser, field.name, default, help_text,
                   serializer=flags.CsvListSerializer(","),
                   flag_values=flag_values)
    elif element is bool:
      flags.DEFINE_bool(field.name, default, help_text,
                        flag_values=flag_values)
    else:
      # Numbers are parsed by `from_flags`, so that every bad value gets the
      # same message naming the flag and the allowed values.
      flags.DEFINE_string(field.name, None if default is None else
                          str(default), help_text, flag_values=flag_values)


def _convert(field, text):
  element, _, _ = _base_type(field)
  if element is str:
    return text
  try:
    return element(text)
  except (TypeError, ValueError):
    raise ValueError(f"--{field.name}: {text!r} is not allowed; allowed: "
                     f"{allowed(field)}") from None


def from_flags(settings_class, flag_values):
  """An instance of `settings_class` from parsed `flag_values` (not yet
  validated). Raises ValueError naming the flag for unparsable values."""
  values = {}
  for field in dataclasses.fields(settings_class):
    value = flag_values[field.name].value
    _, is_list, _ = _base_type(field)
    if value is None or field.type is bool:
      values[field.name] = value
    elif is_list:
      values[field.name] = tuple(_convert(field, item) for item in value)
    else:
      values[field.name] = _convert(field, value)
  return settings_class(**values)


def _check_value(field, value):
  """The problem with one (element) value, or None."""
  meta = field.metadata
  if meta["choices"] is not None:
    return None if value in _choices(field) else f"{value!r}"
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  if isinstance(value, float) and not math.isfinite(value):
    return f"{value!r}"
  for bound, holds in (("above", lambda b: value > b),
                       ("at_least", lambda b: value >= b),
                       ("at_most", lambda b: value <= b)):
    if meta[bound] is not None and not holds(meta[bound]):
      return f"{value!r}"
  return None


def validate(instance, names=None):
  """Raises ValueError naming the first bad field as a flag (--name), its
  value and the allowed values. `names`: check only these fields."""
  for field in dataclasses.fields(instance):
    if (names is not None and field.name not in names) or (
        "help" not in field.metadata):
      continue
    value = getattr(instance, field.name)
    element, is_list, optional = _base_type(field)
    if value is None and optional:
      continue
    values = list(value) if is_list else [value]
    if is_list and not isinstance(value, (list, tuple)):
      raise ValueError(f"--{field.name}: {value!r}; allowed: "
                       f"{allowed(field)}")
    if is_list and not values and not field.metadata["allow_empty"]:
      raise ValueError(f"--{field.name}: empty; allowed: {allowed(field)}")
    for item in values:
      wrong_type = (not isinstance(item, element) and
                    not (element is float and isinstance(item, int)))
      problem = (f"{item!r}" if wrong_type or isinstance(item, bool) != (
          element is bool) else _check_value(field, item))
      if problem:
        raise ValueError(f"--{field.name}: {problem} is not allowed; "
                         f"allowed: {allowed(field)}")
    try:
      if field.metadata["games"]:
        for item in values:
          common.check_game_name(item)
      if field.metadata["check"] is not None:
        field.metadata["check"](value)
    except ValueError as error:
      raise ValueError(f"--{field.name}: {error}") from error


def check_output_directory(path):
  """ValueError unless `path` is a directory that exists or can be created,
  and can be written to. Creates nothing."""
  if not path or not path.strip():
    raise ValueError("empty; allowed: a directory path")
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"{path} exists and is not a directory; allowed: a "
                     "directory path")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"{path} is below {existing}, which is not a "
                     "directory; allowed: a directory path")
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as error:
    raise ValueError(f"cannot write in {existing} ({error.strerror}); "
                     "allowed: a writable directory path") from None


def output(default):
  """The output-directory setting of a binary."""
  return setting(default, "Output directory (created if absent; a rerun "
                 "with the same directory resumes).",
                 check=check_output_directory)


def parse(settings_class, argv, check=None):
  """Parses a command line into a validated `settings_class` instance.

  `check(settings, remaining)`, when given, runs after each field is
  validated: a binary's checks across fields (raising ValueError), with the
  arguments the settings do not define (absl's own flags) at hand.

  Returns:
    (settings, remaining arguments): the arguments `settings_class` does not
    define (e.g. absl's logging flags), program name first.

  Raises:
    app.UsageError: naming the flag and the allowed values.
  """
  flag_values = flags.FlagValues()
  define_flags(settings_class, flag_values)
  if any(argument in _HELP_ARGUMENTS for argument in argv[1:]):
    print(flag_values.get_help())
    sys.exit(0)
  try:
    remaining = flag_values(argv, known_only=True)
    instance = from_flags(settings_class, flag_values)
    validate(instance)
    if check is not None:
      check(instance, remaining)
  except (flags.Error, ValueError) as error:
    raise app.UsageError(str(error)) from error
  return instance, remaining


def run(settings_class, main, check=None, lock=True):
  """Runs `main(settings)` as an absl program whose flags are the fields of
  `settings_class` (absl's own logging flags work as usual), holding the
  lock of the output directory `settings.out` meanwhile unless `lock` is
  False; `main` returns the exit status. A bad flag exits with status 1 and
  a message before any work, as does an output directory that another run
  holds. `check` is `parse`'s: a binary's checks across fields."""
  def parser(argv):
    try:
      settings, remaining = parse(settings_class, argv, check)
    except app.UsageError as error:
      sys.stderr.write(f"FATAL Flags parsing error: {error}\n")
      sys.exit(1)
    unexpected = flags.FLAGS(remaining, known_only=True)[1:]
    if unexpected:
      sys.stderr.write(f"FATAL Flags parsing error: unexpected arguments "
                       f"{unexpected}\n")
      sys.exit(1)
    return settings
  def locked_main(settings):
    try:
      if not lock:
        return main(settings)
      with cells.output_lock(settings.out):
        return main(settings)
    except cells.LockedError as error:
      sys.stderr.write(f"FATAL {error}\n")
      return 1
    except KeyboardInterrupt as interrupt:
      sys.stderr.write(f"{interrupt}\n" if isinstance(
          interrupt, cells.Interrupted) else "interrupted\n")
      return 130
  app.run(locked_main, flags_parser=parser)
