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

# The baselines' settings are the shared ones.
Settings = continuous_common.Settings


class DDPGAgent(continuous_common.DeterministicPolicyAgent):
  """Agent `player_id` of independent DDPG: its critic sees its own action
  only. The networks, target updates and exploration are
  `continuous_common.DeterministicPolicyAgent`'s."""

  def __init__(self, player_id, spec, settings, seed, name="ddpg"):
    super().__init__(player_id, spec, settings, seed, name,
                     critic_action_size=spec.action_size)

  def losses(self, batch):
    """The critic and policy losses of the module docstring, by name."""
    next_observations = batch["next_observation"]
    next_q = self.target_critic(tf.concat(
        [next_observations, tf.tanh(self.target_policy(next_observations))],
        axis=-1))[:, 0]
    own, _ = continuous_common.split_own(
        batch["joint_action"], self._player, self.spec.action_size)
    q_values = self.critic(tf.concat([batch["observation"], own],
                                     axis=-1))[:, 0]
    policy_q = self.critic(tf.concat(
        [batch["observation"], tf.tanh(self.policy(batch["observation"]))],
        axis=-1))[:, 0]
    return {"critic": self.td_loss(q_values, batch, next_q),
            "policy": -tf.reduce_mean(policy_q)}


def make_agents(spec, settings, seed):
  """One independent `DDPGAgent` per player, seeded by (seed, player)."""
  return [DDPGAgent(player, spec, settings, seed, name=f"ddpg_{player}")
          for player in range(spec.num_players)]
