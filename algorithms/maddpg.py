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

# The baselines' settings are the shared ones.
Settings = continuous_common.Settings


class MADDPGAgent(continuous_common.DeterministicPolicyAgent):
  """Agent `player_id` of MADDPG: its critic sees the joint action. The
  networks, target updates and exploration are
  `continuous_common.DeterministicPolicyAgent`'s; build a team with
  `make_agents`, which gives every agent the others' target policies
  (`team_target_policies`)."""

  def __init__(self, player_id, spec, settings, seed, name="maddpg"):
    super().__init__(player_id, spec, settings, seed, name,
                     critic_action_size=spec.num_players * spec.action_size)
    self.team_target_policies = [self.target_policy]

  def losses(self, batch):
    """The critic and policy losses of the module docstring, by name."""
    next_observations = batch["next_observation"]
    # Own action, then the others' in player order (a graph that is the same
    # for every player; see `ReplayAgent._shared_step`).
    next_joint = continuous_common.insert_own(
        tf.tanh(self.target_policy(next_observations)),
        tf.concat([tf.tanh(policy(next_observations)) for policy in
                   self.team_target_policies if policy is not
                   self.target_policy], axis=-1),
        self._player, self.spec.action_size)
    next_q = self.target_critic(tf.concat([next_observations, next_joint],
                                          axis=-1))[:, 0]
    q_values = self.critic(tf.concat(
        [batch["observation"], batch["joint_action"]], axis=-1))[:, 0]
    _, others = continuous_common.split_own(
        batch["joint_action"], self._player, self.spec.action_size)
    joint = continuous_common.insert_own(
        tf.tanh(self.policy(batch["observation"])), others, self._player,
        self.spec.action_size)
    policy_q = self.critic(tf.concat([batch["observation"], joint],
                                     axis=-1))[:, 0]
    return {"critic": self.td_loss(q_values, batch, next_q),
            "policy": -tf.reduce_mean(policy_q)}


def make_agents(spec, settings, seed):
  """One `MADDPGAgent` per player, seeded by (seed, player), each given the
  team's target policies for the centralised critic targets."""
  agents = [MADDPGAgent(player, spec, settings, seed, name=f"maddpg_{player}")
            for player in range(spec.num_players)]
  for agent in agents:
    agent.team_target_policies = [other.target_policy for other in agents]
  return agents
