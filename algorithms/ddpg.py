r"""Independent DDPG (a paper baseline).

Lillicrap et al., "Continuous control with deep reinforcement learning"
(2016), run independently by every agent: agent i treats the others as part
of the environment. It keeps a deterministic policy mu_i(s) = tanh(MLP(s))
in [-1, 1]^d, a critic of its own action only, Q_i(s, a^i), and target
copies of both, moved by Polyak averaging. While training it plays mu_i(s)
plus Gaussian noise of standard deviation `exploration_noise`, clipped to
the box.

  critic  J_Q = E_D[ (Q_i(s, a^i) - r - gamma (1 - done)
                      Qbar_i(s', mubar_i(s')))^2 / 2 ];
  policy  J_mu = -E_D[ Q_i(s, mu_i(s)) ] (the deterministic policy gradient).

Network sizes, optimiser, replay and reward scale are those of MAI
(`continuous_common.Settings`).
"""

import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms.continuous_common import MLP


class DDPGAgent(continuous_common.ReplayAgent):
  """Agent `player_id` of independent DDPG."""

  stochastic_policy = False

  def __init__(self, player_id, spec, settings, seed, name="ddpg"):
    super().__init__(player_id, spec, settings, seed, name)
    observation_size = spec.observation_size
    action_size = spec.action_size
    hidden = settings.hidden_sizes
    rng = self.init_rng
    self.policy = MLP(observation_size, hidden, action_size, rng, "policy")
    self.target_policy = MLP(observation_size, hidden, action_size, rng,
                             "target_policy")
    self.critic = MLP(observation_size + action_size, hidden, 1, rng,
                      "critic")
    self.target_critic = MLP(observation_size + action_size, hidden, 1, rng,
                             "target_critic")
    continuous_common.polyak_update(self.target_policy, self.policy, 1.0)
    continuous_common.polyak_update(self.target_critic, self.critic, 1.0)
    self.optimizer = continuous_common.Adam(
        [v for group in self.variable_groups().values() for v in group],
        settings.learning_rate)

  def variable_groups(self):
    """The variables each loss of `losses` trains, by loss name."""
    return {"critic": self.critic.parameters,
            "policy": self.policy.parameters}

  def losses(self, batch):
    """The critic and policy losses of the module docstring, by name."""
    next_observations = batch["next_observation"]
    next_q = self.target_critic(tf.concat(
        [next_observations, tf.tanh(self.target_policy(next_observations))],
        axis=-1))[:, 0]
    target = tf.stop_gradient(
        self.settings.reward_scale * batch["reward"]
        + self.settings.discount * (1.0 - batch["done"]) * next_q)
    own, _ = continuous_common.split_own(
        batch["joint_action"], self.player_id, self.spec.action_size)
    q_values = self.critic(tf.concat([batch["observation"], own],
                                     axis=-1))[:, 0]
    policy_q = self.critic(tf.concat(
        [batch["observation"], tf.tanh(self.policy(batch["observation"]))],
        axis=-1))[:, 0]
    return {"critic": 0.5 * tf.reduce_mean(tf.square(q_values - target)),
            "policy": -tf.reduce_mean(policy_q)}

  def update(self):
    """One update of the critic and the policy; returns the losses."""
    batch = self.replay.sample(self.generator, self.settings.batch_size)
    with tf.GradientTape(persistent=True) as tape:
      losses = self.losses(batch)
    self.apply_losses(tape, losses)
    rate = self.settings.target_update_rate
    continuous_common.polyak_update(self.target_policy, self.policy, rate)
    continuous_common.polyak_update(self.target_critic, self.critic, rate)
    return losses

  def _policy_actions(self, observations, deterministic):
    """mu_i(s), plus clipped Gaussian exploration noise unless
    deterministic."""
    actions = tf.tanh(self.policy(observations))
    if deterministic:
      return actions
    noise = self.settings.exploration_noise * self.generator.normal(
        tf.shape(actions))
    return tf.clip_by_value(actions + noise, -1.0, 1.0)


def make_agents(spec, settings, seed):
  """One independent `DDPGAgent` per player, seeded by (seed, player)."""
  return [DDPGAgent(player, spec, settings, seed, name=f"ddpg_{player}")
          for player in range(spec.num_players)]
