r"""MADDPG: centralised critics, deterministic policies (a paper baseline).

Lowe et al., "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive
Environments" (2017), for continuous box actions. Agent i keeps a
deterministic policy mu_i(s) = tanh(MLP(s)) in [-1, 1]^d, a centralised
critic Q_i(s, a^1, ..., a^N) of its own reward, and target copies of both,
moved by Polyak averaging. While training it plays mu_i(s) plus Gaussian
noise of standard deviation `exploration_noise`, clipped to the box.

  critic  J_Q = E_D[ (Q_i(s, a) - r - gamma (1 - done)
                      Qbar_i(s', mubar_1(s'), ..., mubar_N(s')))^2 / 2 ],
          every agent's target policy at s' (centralised training);
  policy  J_mu = -E_D[ Q_i(s, mu_i(s), a^{-i}) ], the others' actions from
          the replay batch (the deterministic policy gradient).

Network sizes, optimiser, replay and reward scale are those of MAI
(`continuous_common.Settings`).
"""

import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms.continuous_common import MLP


class MADDPGAgent(continuous_common.ReplayAgent):
  """Agent `player_id` of MADDPG; build a team with `make_agents`, which
  gives every agent the others' target policies
  (`team_target_policies`)."""

  stochastic_policy = False

  def __init__(self, player_id, spec, settings, seed, name="maddpg"):
    super().__init__(player_id, spec, settings, seed, name)
    joint_size = spec.num_players * spec.action_size
    observation_size = spec.observation_size
    hidden = settings.hidden_sizes
    rng = self.init_rng
    self.policy = MLP(observation_size, hidden, spec.action_size, rng,
                      "policy")
    self.target_policy = MLP(observation_size, hidden, spec.action_size, rng,
                             "target_policy")
    self.critic = MLP(observation_size + joint_size, hidden, 1, rng, "critic")
    self.target_critic = MLP(observation_size + joint_size, hidden, 1, rng,
                             "target_critic")
    continuous_common.polyak_update(self.target_policy, self.policy, 1.0)
    continuous_common.polyak_update(self.target_critic, self.critic, 1.0)
    self.team_target_policies = [self.target_policy]
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
    next_joint = tf.concat([tf.tanh(policy(next_observations))
                            for policy in self.team_target_policies], axis=-1)
    next_q = self.target_critic(tf.concat([next_observations, next_joint],
                                          axis=-1))[:, 0]
    target = tf.stop_gradient(
        self.settings.reward_scale * batch["reward"]
        + self.settings.discount * (1.0 - batch["done"]) * next_q)
    q_values = self.critic(tf.concat(
        [batch["observation"], batch["joint_action"]], axis=-1))[:, 0]
    _, others = continuous_common.split_own(
        batch["joint_action"], self.player_id, self.spec.action_size)
    joint = continuous_common.insert_own(
        tf.tanh(self.policy(batch["observation"])), others, self.player_id,
        self.spec.action_size)
    policy_q = self.critic(tf.concat([batch["observation"], joint],
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
  """One `MADDPGAgent` per player, seeded by (seed, player), each given the
  team's target policies for the centralised critic targets."""
  agents = [MADDPGAgent(player, spec, settings, seed, name=f"maddpg_{player}")
            for player in range(spec.num_players)]
  for agent in agents:
    agent.team_target_policies = [other.target_policy for other in agents]
  return agents
