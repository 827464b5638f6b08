"""Wall time of one MAI run of the paper's setting, and where the time goes.

    python benchmarks/mai.py [--threads=1] [--seed=0] [--episodes=200]

Trains MAI on the differential game for 200 episodes x 25 steps (5000
environment steps, one gradient update per agent and step after the
warm-up) with the settings of `vsg_spiel.eval.run_mai` and reports:

  * the wall time of the run, as `run_mai` trains it (its checkpoints every
    10 episodes included), and the process's CPU time beside it (on a shared
    machine the CPU time is the steadier number);
  * a breakdown by timing, in the same run, every call of each part: the
    environment (reset and step, including the time-step dicts); the
    agents' compiled step (one call per agent and step: store the last
    transition, pick the next action and, after the warm-up, take the
    gradient update; both agents call one shared graph), with the trace
    of that graph and the process's first call (the XLA compilation)
    apart; the checkpoints; and the rest (the agents' `step` bookkeeping
    and the loop);
  * how many times the shared step and each agent's action functions were
    traced (each trace of the shared step is one XLA compilation).
"""

import collections
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.eval import continuous_runs
from vsg_spiel.eval import registry

_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow intra- and "
                                "inter-op threads.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the run.")
_EPISODES = flags.DEFINE_integer("episodes", 200, "Training episodes.",
                                 lower_bound=1)


class Timers:
  """Accumulated seconds and call counts per label."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)
    self.calls = collections.defaultdict(int)

  def add(self, label, seconds):
    self.seconds[label] += seconds
    self.calls[label] += 1

  def wrap(self, label, function):
    """`function`, timed under `label`."""
    def timed(*args, **kwargs):
      start = time.perf_counter()
      result = function(*args, **kwargs)
      self.add(label, time.perf_counter() - start)
      return result
    return timed


def instrument(agent, timers, first_call):
  """Times the agent's compiled step by what it does: getting the shared
  step's graph (traced by the first agent, reused by the second) and the
  process's first call (the XLA compilation) apart."""
  concrete = []

  def timed(*arguments):
    if not concrete:
      start = time.perf_counter()
      concrete.append(agent._agent_step(report=False))  # pylint: disable=protected-access
      timers.add("trace (shared step's graph)", time.perf_counter() - start)
    start = time.perf_counter()
    result = concrete[0](*arguments)
    seconds = time.perf_counter() - start
    _, pick, learn = arguments[-3:]
    if not first_call:
      first_call.append(True)
      label = "first call (XLA compile)"
    elif bool(learn):
      label = "store + action + update" if bool(pick) else (
          "store + update (episode ends)")
    else:
      label = "store + action (warm-up)"
    timers.add(label, seconds)
    return result

  agent._concrete_step = timed  # pylint: disable=protected-access


def tracing_counts(agents):
  """{function name: traces} of the shared training step and the agents'
  own action functions (summed over the agents)."""
  counts = collections.Counter()
  for function, *_ in continuous_common._SHARED_STEPS.values():  # pylint: disable=protected-access
    counts["shared training step"] += function.experimental_get_tracing_count()
  for name in ("_deterministic_actions", "_sampled_actions"):
    counts[name] += sum(getattr(agent, name).experimental_get_tracing_count()
                        for agent in agents)
  return {name: count for name, count in counts.items() if count}


def main(argv):
  del argv
  tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
  experiment = continuous_runs.Experiment(
      game="differential", algorithms=("mai",), seeds=(_SEED.value,),
      episodes=_EPISODES.value)
  timers = Timers()
  start, start_cpu = time.perf_counter(), time.process_time()
  game = experiment.load_game()
  environment = continuous_common.ContinuousEnvironment(game, _SEED.value)
  agents = registry.get("mai", registry.CONTINUOUS).make(
      environment.spec, experiment.agent_settings_of("mai", game),
      _SEED.value)
  setup_seconds = time.perf_counter() - start
  environment.reset = timers.wrap("environment", environment.reset)
  environment.step = timers.wrap("environment", environment.step)
  first_call = []
  for agent in agents:
    instrument(agent, timers, first_call)
  checkpoint = tf.train.Checkpoint(agents=agents)
  returns = []
  with tempfile.TemporaryDirectory() as directory:
    write = timers.wrap("checkpoints", checkpoint.write)
    for episode in range(experiment.episodes):
      returns.append(continuous_common.play_episode(environment,
                                                    agents)[0])
      if (episode + 1) % experiment.block_episodes == 0:
        write(os.path.join(directory, f"ckpt-{episode + 1}"))
  total = time.perf_counter() - start
  cpu = time.process_time() - start_cpu
  final = continuous_runs.evaluate(environment, agents,
                                   experiment.evaluation_samples)
  steps = experiment.episodes * game.horizon
  print(f"MAI, differential game, {experiment.episodes} episodes x "
        f"{game.horizon} steps = {steps} steps, 2 agents, seed "
        f"{_SEED.value}, TensorFlow threads {_THREADS.value}, "
        f"{os.cpu_count()} CPUs")
  print(f"final deterministic joint action "
        f"{np.round(final['mean_joint_action'], 2).tolist()}, global optimum: "
        f"{final['global_optimum']}; mean reward per step of the last 10 "
        f"episodes {sum(returns[-10:]) / 10 / game.horizon:.2f}")
  print(f"wall time of the run: {total:.1f} s (CPU time of this process "
        f"{cpu:.1f} s; a wall time well above it means other work shared "
        f"the cores)")
  print(f"{'part':34s} {'seconds':>8s} {'share':>6s} {'calls':>7s} "
        f"{'ms/call':>8s}")
  parts = dict(timers.seconds)
  parts["setup (game, networks)"] = setup_seconds
  parts["rest (agents' step bookkeeping, loop)"] = total - sum(parts.values())
  for label, seconds in parts.items():
    calls = timers.calls.get(label, 0)
    per_call = f"{1e3 * seconds / calls:8.3f}" if calls else " " * 8
    print(f"{label:34s} {seconds:8.2f} {seconds / total:6.1%} {calls:7d} "
          f"{per_call}")
  print("traces per tf.function (each trace of the shared step is one XLA "
        "compilation): "
        + ", ".join(f"{name} {count}" for name, count
                    in tracing_counts(agents).items()))


if __name__ == "__main__":
  app.run(main)
