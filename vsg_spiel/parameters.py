"""Checks of game parameters and solver hyperparameters.

Every public constructor of the package checks its inputs here before any
work starts, so that a bad value fails at once with an error that names the
parameter, the allowed range and the value given (not later as a NaN or a
raw numpy error). All checks raise `ValueError`.
"""

import math
import numbers

import numpy as np


def check_real(name, value, low=-math.inf, high=math.inf, *,
               low_open=False, high_open=False):
  """`value` as a finite float in the interval [low, high].

  Args:
    name: the parameter's name, for the message.
    value: a real number (bools and strings are refused).
    low, high: the interval's ends (infinite ends leave that side open).
    low_open, high_open: exclude that end.

  Returns:
    float(value).

  Raises:
    ValueError: value is not a real number, not finite, or out of range.
  """
  interval = (f"{'(' if low_open or low == -math.inf else '['}{low:g}, "
              f"{high:g}{')' if high_open or high == math.inf else ']'}")
  if (isinstance(value, (bool, np.bool_)) or
      not isinstance(value, numbers.Real)):
    raise ValueError(f"{name} must be a finite real number in {interval}; "
                     f"got {value!r} of type {type(value).__name__}")
  value = float(value)
  if (not math.isfinite(value) or value < low or value > high or
      (low_open and value == low) or (high_open and value == high)):
    raise ValueError(f"{name} must be a finite real number in {interval}; "
                     f"got {value!r}")
  return value


def check_integer(name, value, low=None, high=None):
  """`value` as an int in [low, high] (None: unbounded on that side).

  Integral floats (3.0) are accepted; 2.7 is refused, never truncated.

  Raises:
    ValueError: value is not an integer or out of range.
  """
  bounds = (f">= {low}" if high is None else
            f"in [{low}, {high}]" if low is not None else f"<= {high}")
  if low is None and high is None:
    bounds = "any integer"
  if (isinstance(value, (bool, np.bool_)) or
      not isinstance(value, numbers.Real) or
      not math.isfinite(float(value)) or float(value) != int(value)):
    raise ValueError(f"{name} must be an integer {bounds}; got {value!r}")
  value = int(value)
  if (low is not None and value < low) or (high is not None and value > high):
    raise ValueError(f"{name} must be an integer {bounds}; got {value}")
  return value


def check_choice(name, value, choices):
  """`value` if it is one of `choices`.

  Raises:
    ValueError: naming the parameter and the choices.
  """
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"unknown {name} {value!r}; choose one of "
                     f"{tuple(choices)}")
  return value


def check_probabilities(name, values, size, tolerance=1e-9):
  """`values` as a float array of `size` finite non-negative probabilities
  summing to 1 (within `tolerance`).

  Raises:
    ValueError: wrong length, a negative, NaN or infinite entry, or a sum
      away from 1.
  """
  try:
    array = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be {size} probabilities summing to 1; "
                     f"got {values!r}") from None
  if (array.shape != (size,) or not np.all(np.isfinite(array)) or
      np.any(array < 0) or abs(array.sum() - 1.0) > tolerance):
    raise ValueError(f"{name} must be {size} finite non-negative "
                     f"probabilities summing to 1; got {values!r}")
  return array
