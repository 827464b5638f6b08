"""What the tests of the continuous-action agents share: numpy references of
the networks, random test data, play, and the checkpoint round trip."""

import numpy as np
import tensorflow as tf

from vsg_spiel.algorithms import continuous_common

SPEC = continuous_common.EnvironmentSpec(num_players=2, observation_size=3,
                                         action_size=1)


def mlp(network, inputs):
  """A `continuous_common.MLP` in float64 numpy."""
  hidden = np.asarray(inputs, np.float64)
  layers = list(zip(network.weights, network.biases))
  for index, (weight, bias) in enumerate(layers):
    hidden = hidden @ weight.numpy().astype(np.float64) + bias.numpy()
    if index < len(layers) - 1:
      hidden = np.maximum(hidden, 0.0)
  return hidden


def squashed_sample(outputs, noise):
  """tanh(mean + std * noise) and its log density (summed over the last
  axis), from a network's (mean, raw log std) outputs."""
  mean, raw = np.split(outputs, 2, axis=-1)
  low, high = continuous_common.LOG_STD_MIN, continuous_common.LOG_STD_MAX
  log_std = low + 0.5 * (high - low) * (np.tanh(raw) + 1.0)
  pre_squash = mean + np.exp(log_std) * noise
  # log(1 - tanh(x)^2), written to stay finite where tanh(x) rounds to 1.
  log_jacobian = 2 * (np.log(2) - pre_squash
                      - np.logaddexp(0, -2 * pre_squash))
  log_density = (-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)
                 - log_jacobian)
  return np.tanh(pre_squash), log_density.sum(axis=-1)


def random_batch(rng, size=4):
  """A replay batch of `SPEC`'s shapes."""
  return {
      "observation": rng.normal(size=(size, 3)).astype(np.float32),
      "joint_action": rng.uniform(-0.9, 0.9, (size, 2)).astype(np.float32),
      "reward": rng.normal(size=size).astype(np.float32),
      "next_observation": rng.normal(size=(size, 3)).astype(np.float32),
      "done": np.array([0, 1, 0, 0][:size], np.float32),
  }


def randomise(agents, rng):
  """Gives every network of the agents (targets included) distinct random
  weights."""
  for agent in agents:
    for variable in agent.trainable_variables:
      variable.assign(rng.normal(0.0, 0.7, variable.shape).astype(
          np.float32))


def to_tensors(data):
  return {name: tf.constant(value) for name, value in data.items()}


def play(environment, agents, episodes):
  """Trains the agents for some episodes (`continuous_common.play_episode`)
  and checks that every joint action stored in their replay buffers is in
  the box; returns the returns (episodes, N)."""
  returns = np.array([continuous_common.play_episode(environment, agents)
                      for _ in range(episodes)])
  for agent in agents:
    fields = agent.replay.field_sizes
    begin = fields["observation"]
    stored = agent.replay.rows.numpy()[:int(agent.replay.size.numpy()),
                                        begin:begin + fields["joint_action"]]
    assert len(stored) and np.all(np.abs(stored) <= 1.0)
  return returns


def assert_checkpoints_restore(make_agents, environment, observations,
                               episodes, directory):
  """Trains a team (`make_agents(seed)`) for some episodes, saves it,
  restores it into a differently seeded team, and checks that both then
  act identically (modes and samples) and take identical, finite training
  steps. Returns the training returns."""
  agents = make_agents(seed=7)
  returns = play(environment, agents, episodes)
  paths = [agent.save(str(directory / f"agent_{i}"))
           for i, agent in enumerate(agents)]
  restored = make_agents(seed=99)
  for agent, path in zip(restored, paths):
    agent.restore(path)
  for agent, twin in zip(agents, restored):
    np.testing.assert_array_equal(agent.actions(observations, True),
                                  twin.actions(observations, True))
    np.testing.assert_array_equal(agent.actions(observations),
                                  twin.actions(observations))
    losses, twin_losses = agent.train_step(), twin.train_step()
    for name in losses:
      assert np.isfinite(losses[name].numpy())
      assert losses[name].numpy() == twin_losses[name].numpy()
  return returns
