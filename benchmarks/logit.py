"""The logit family: vsg_spiel.logit versus scipy.special, in one run.

    python benchmarks/logit.py

Times `log_softmax`, `softmax` and `log_sum_exp` of `vsg_spiel.logit` and
the same operation of `scipy.special` on the masked logits, for arrays of the
sizes the solvers pass (one layer of states x actions, and a larger batch),
checks that the values agree to 1e-14 and prints scipy's time over ours.
This is why the module writes the max-shift with numpy instead of calling
scipy.special (see its docstring).
"""

import timeit

import numpy as np
from scipy import special

from vsg_spiel import logit

SHAPES = ((4, 3), (30, 15), (200, 50, 15))


def best_time(function, number):
  return min(timeit.repeat(function, number=number, repeat=5)) / number


def main():
  rng = np.random.default_rng(0)
  print(f"{'shape':>14} {'operation':>12} {'ours (us)':>10} "
        f"{'scipy (us)':>10} {'scipy/ours':>10}")
  for shape in SHAPES:
    number = max(10, 20000 // int(np.prod(shape)))
    logits = rng.normal(scale=10.0, size=shape)
    legal = rng.random(shape) < 0.8
    legal[:, 0] = True
    masked = np.where(legal, logits, -np.inf)
    pairs = {
        "log_softmax": (lambda: logit.log_softmax(logits, legal, axis=1),
                        lambda: special.log_softmax(masked, axis=1)),
        "softmax": (lambda: logit.softmax(logits, legal, axis=1),
                    lambda: special.softmax(masked, axis=1)),
        "log_sum_exp": (lambda: logit.log_sum_exp(logits, legal, axis=1),
                        lambda: special.logsumexp(masked, axis=1)),
    }
    for name, (ours, theirs) in pairs.items():
      np.testing.assert_allclose(ours(), theirs(), rtol=1e-14, atol=1e-300)
      ours_time = best_time(ours, number)
      theirs_time = best_time(theirs, number)
      print(f"{str(shape):>14} {name:>12} {ours_time * 1e6:10.1f} "
            f"{theirs_time * 1e6:10.1f} {theirs_time / ours_time:10.2f}")


if __name__ == "__main__":
  main()
