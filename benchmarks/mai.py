"""Wall time of one MAI run of the paper's setting, and where the time goes.

    python benchmarks/mai.py [--threads=2] [--seed=0] [--episodes=200]

Trains MAI on the differential game for 200 episodes x 25 steps (5000
environment steps, one gradient update per agent and step after the
warm-up) with the settings of `vsg_spiel.eval.run_mai` and reports:

  * the wall time of the run, as `run_mai` trains it (its checkpoints every
    10 episodes included), and the process's CPU time beside it;
  * a breakdown by timing, in the same run, every call of each part:
    the environment (reset and step, including the time-step dicts); the
    agents' compiled calls (one per agent and step: store the last
    transition, pick the next action and, after the warm-up, take the
    gradient update; at an episode's first step only the action, at its
    last the store and the update), the first calls, which trace and
    compile with XLA, apart; the checkpoints; and the rest (the agents'
    `step` bookkeeping and the loop).
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
from vsg_spiel.algorithms import mai
from vsg_spiel.eval import run_mai

_THREADS = flags.DEFINE_integer("threads", 2, "TensorFlow intra- and "
                                "inter-op threads.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the run.")
_EPISODES = flags.DEFINE_integer("episodes", 200, "Training episodes.",
                                 lower_bound=1)


class Timers:
  """Accumulated seconds and call counts per label."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)
    self.calls = collections.defaultdict(int)

  def wrap(self, label, function):
    """`function`, timed under `label`."""
    def timed(*args, **kwargs):
      start = time.perf_counter()
      result = function(*args, **kwargs)
      self.seconds[label] += time.perf_counter() - start
      self.calls[label] += 1
      return result
    return timed


def first_apart(timers, label, first_label, function):
  """`function` timed under `label`, its first call under `first_label`."""
  first = timers.wrap(first_label, function)
  later = timers.wrap(label, function)
  calls = []

  def timed(*args):
    calls.append(None)
    return first(*args) if len(calls) == 1 else later(*args)
  return timed


def instrument(agent, timers):
  """Times the parts of an agent's `step`; first (tracing, compiling) calls
  apart."""
  # pylint: disable=protected-access
  agent._store_and_explore = timers.wrap("store + action (warm-up)",
                                         agent._store_and_explore)
  agent._explore = timers.wrap("action at episode starts", agent._explore)
  agent._store = timers.wrap("store at episode ends", agent._store)
  agent._store_explore_and_learn = first_apart(
      timers, "store + action + update", "first of those (trace + compile)",
      agent._store_explore_and_learn)
  # pylint: enable=protected-access
  agent.train_step = first_apart(
      timers, "updates at episode ends", "first of those (trace + compile)",
      agent.train_step)


def main(argv):
  del argv
  tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
  experiment = run_mai.Experiment(game="differential", algorithms=("mai",),
                                  seeds=(_SEED.value,),
                                  episodes=_EPISODES.value)
  timers = Timers()
  start, start_cpu = time.perf_counter(), time.process_time()
  game = experiment.load_game()
  environment = continuous_common.ContinuousEnvironment(game, _SEED.value)
  agents = mai.make_agents(environment.spec,
                           experiment.agent_settings("mai", game), _SEED.value)
  setup_seconds = time.perf_counter() - start
  environment.reset = timers.wrap("environment", environment.reset)
  environment.step = timers.wrap("environment", environment.step)
  for agent in agents:
    instrument(agent, timers)
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
  final = run_mai.evaluate(environment, agents, experiment.evaluation_samples)
  steps = experiment.episodes * experiment.steps
  print(f"MAI, differential game, {experiment.episodes} episodes x "
        f"{experiment.steps} steps = {steps} steps, 2 agents, seed "
        f"{_SEED.value}, TensorFlow threads {_THREADS.value}, "
        f"{os.cpu_count()} CPUs")
  print(f"final deterministic joint action "
        f"{np.round(final['mean_joint_action'], 2).tolist()}, global optimum: "
        f"{final['global_optimum']}; mean reward per step of the last 10 "
        f"episodes {sum(returns[-10:]) / 10 / experiment.steps:.2f}")
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


if __name__ == "__main__":
  app.run(main)
