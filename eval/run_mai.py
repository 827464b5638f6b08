r"""MAI and the paper's baselines on the continuous games (Figure 2).

  python -m vsg_spiel.eval.run_mai --game=differential --out=run_mai_out
  python -m vsg_spiel.eval.run_mai --game=routing --algorithms=mai_marginal

trains every algorithm of `--algorithms` (the registry's continuous family:
mai, masql, maddpg, ddpg, and MAI's ablations mai_empirical and
mai_marginal) for `--episodes` episodes on `--game`'s continuous interface,
once per seed of `--seeds`, evaluates the final policies, and writes to
OUT/<game>/ the learning curves (the interface's figure file, e.g.
figure_2a_differential.png), summary.json, summary.md and each run's
progress.json (eval/continuous_runs.py says what each holds, how a rerun
with the same --out resumes, and what `--tensorboard_dir` records).
"""

import dataclasses
import os
import sys
import time

from vsg_spiel.eval import common
from vsg_spiel.eval import continuous_runs
from vsg_spiel.eval import settings as settings_lib


@dataclasses.dataclass(frozen=True)
class RunMaiFlags(continuous_runs.Experiment):
  """The binary's flags: an experiment, where it goes, TF threads."""
  out: str = settings_lib.output("run_mai_out")
  threads: int = settings_lib.setting(
      1, "TensorFlow intra- and inter-op threads.", at_least=1)

  def __post_init__(self):
    # The fields are checked first; TensorFlow loads with the agents'
    # settings checked after them (`quiet_tensorflow_start`).
    with common.quiet_tensorflow_start():
      super().__post_init__()


def main(flags):
  common.start_tensorflow(flags.threads)
  start = time.perf_counter()
  records, complete = continuous_runs.run_experiment(flags, flags.out)
  summary = continuous_runs.write_outputs(flags, records, flags.out)
  print(continuous_runs.markdown(flags, summary))
  print(f"{'complete' if complete else 'incomplete'}: wrote "
        f"{os.path.join(flags.out, flags.game)} in "
        f"{time.perf_counter() - start:.1f} s")
  return 0 if complete else 1


if __name__ == "__main__":
  # No lock on --out: runs live in directories of their own (algorithm,
  # seed), so processes running other seeds may share an --out.
  # Without -v 1, TensorFlow's C++ start-up lines are left out.
  common.quiet_tensorflow(sys.argv)
  settings_lib.run(RunMaiFlags, main, lock=False)
