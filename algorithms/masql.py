r"""Multi-agent soft Q-learning (MASQL), the paper's ablation of MAI.

Wei, Wicke & Luke, "Multiagent Soft Q-Learning" (2018): every agent learns a
soft critic of the joint action, Q_i(s, a^1, ..., a^N), and a stochastic
policy pi_i(a^i | s), with centralised training: the other agents' actions
in the targets and in the policy objective are drawn from their current
policies. It is MAI (algorithms/mai.py) without the opponent model: no
rho, no conditioning of the policy on a predicted opponent action, and the
others' true policies wherever MAI uses rho. Everything else (networks,
squashed Gaussians, replay, temperature and its annealing, scaled reward
units) is MAI's. With a ~ pi_i(.|s) and a^{-i} ~ pi_{-i}(.|s):

  critic  J_Q = E_D[ (Q_i(s, a) - r - gamma (1 - done) V(s'))^2 / 2 ],
          V(s') = Qbar_i(s', a'^i, a'^{-i}) - alpha log pi_i(a'^i | s');
  policy  J_pi = E[ alpha log pi_i(a^i|s) - Q_i(s, a^i, a^{-i}) ], through
          the reparameterised a^i, the others' samples held fixed.
"""

import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms.continuous_common import MLP

# The baselines' settings are the shared ones.
Settings = continuous_common.Settings


class MASQLAgent(continuous_common.ReplayAgent):
  """Agent `player_id` of MASQL; build a team with `make_agents`, which gives
  every agent the others' policies (`team_policies`)."""

  stochastic_policy = True

  def __init__(self, player_id, spec, settings, seed, name="masql"):
    super().__init__(player_id, spec, settings, seed, name)
    joint_size = spec.num_players * spec.action_size
    observation_size = spec.observation_size
    hidden = settings.hidden_sizes
    rng = self.init_rng
    self.policy = MLP(observation_size, hidden, 2 * spec.action_size, rng,
                      "policy")
    self.critic = MLP(observation_size + joint_size, hidden, 1, rng, "critic")
    self.target_critic = MLP(observation_size + joint_size, hidden, 1, rng,
                             "target_critic")
    self.team_policies = [self.policy]
    self.build_training()

  def variable_groups(self):
    """The variables each loss of `losses` trains, by loss name."""
    return {"critic": self.critic.parameters,
            "policy": self.policy.parameters}

  def target_pairs(self):
    return [(self.target_critic, self.critic)]

  def sample_noise(self, batch_size):
    """The standard normal draws of one update: (B, N, d) for the joint
    action at s and at s'."""
    shape = (batch_size, self.spec.num_players, self.spec.action_size)
    return {"joint": self.generator.normal(shape),
            "next_joint": self.generator.normal(shape)}

  def joint_sample(self, observations, noise):
    """a^j ~ pi_j(.|s) for every player j: the joint box action (B, N d)
    with gradients through the own sample only, and log pi_i (B,). Written
    own sample first, then the others' in player order, so that the graph
    is the same for every player (`ReplayAgent._shared_step`)."""
    num_players, d = self.spec.num_players, self.spec.action_size
    own_noise, other_noise = continuous_common.split_own(
        tf.reshape(noise, (-1, num_players * d)), self._player, d)
    mean, log_std = continuous_common.gaussian_head(self.policy(observations))
    own, own_log_density = continuous_common.squashed_gaussian(
        mean, log_std, own_noise)
    others = []
    teammates = [policy for policy in self.team_policies
                 if policy is not self.policy]
    for index, policy in enumerate(teammates):
      mean, log_std = continuous_common.gaussian_head(policy(observations))
      action, _ = continuous_common.squashed_gaussian(
          mean, log_std, other_noise[:, index * d:(index + 1) * d])
      others.append(tf.stop_gradient(action))
    return (continuous_common.insert_own(own, tf.concat(others, axis=-1),
                                         self._player, d), own_log_density)

  def losses(self, batch, noise, alpha):
    """The critic and policy losses of the module docstring, by name."""
    next_joint, next_log_pi = self.joint_sample(batch["next_observation"],
                                                noise["next_joint"])
    next_value = (self.target_critic(tf.concat(
        [batch["next_observation"], next_joint], axis=-1))[:, 0]
                  - alpha * next_log_pi)
    q_values = self.critic(tf.concat(
        [batch["observation"], batch["joint_action"]], axis=-1))[:, 0]
    joint, log_pi = self.joint_sample(batch["observation"], noise["joint"])
    policy_q = self.critic(tf.concat([batch["observation"], joint],
                                     axis=-1))[:, 0]
    return {"critic": self.td_loss(q_values, batch, next_value),
            "policy": tf.reduce_mean(alpha * log_pi - policy_q)}

  def _policy_actions(self, observations, deterministic):
    """a ~ pi_i(.|s); the mode tanh(mean) if deterministic."""
    mean, log_std = continuous_common.gaussian_head(self.policy(observations))
    if deterministic:
      return tf.tanh(mean)
    actions, _ = continuous_common.squashed_gaussian(
        mean, log_std, self.generator.normal(tf.shape(mean)))
    return actions


def make_agents(spec, settings, seed):
  """One `MASQLAgent` per player, seeded by (seed, player), each given the
  team's policies for centralised training."""
  agents = [MASQLAgent(player, spec, settings, seed, name=f"masql_{player}")
            for player in range(spec.num_players)]
  for agent in agents:
    agent.team_policies = [other.policy for other in agents]
  return agents
