r"""Multi-agent Inference (MAI): the variational actor-critic of Algorithm 2.

Zhao & Zhang, "Variational Stochastic Games" (arXiv 2503.06037), section
5.1.2, for continuous actions, in TensorFlow 2. Equation numbers are the
paper's: eq. 5 is the opponent model of Prop. 5.9, eqs. 6-7 the reward fit of
Algorithm 3, eq. 8 the policy objective, eq. 9 the critic objective and
eq. 10 the policy gradient.

Agent i is decentralised: it sees the Markov state, its own reward and the
others' actions. It keeps

  * a policy pi_theta(a^i | s, a_hat^{-i}) conditioned on a predicted
    opponent action, a reparameterised tanh-squashed Gaussian;
  * an opponent model rho_phi(a^{-i} | s) = prod_j rho_j(a^j | s), squashed
    Gaussians, with the uniform density pibar on the action box as the prior
    of Prop. 5.9;
  * a soft critic Q_omega(s, a^i, a^{-i}) and its target network Q_omegabar;
  * with opponent_model="empirical" (an ablation) rho is instead fitted by
    maximum likelihood to the opponents' observed actions,
    -E_D[sum_j log rho_j(a^j|s)], the soft value has no opponent KL term,
    and there are no reward estimates;
  * with policy_form="marginal" (an ablation) the policy is pi_theta(a^i|s):
    it ignores the predicted opponent action, and eq. 8 with a_hat ~ rho
    makes it a soft best response to rho's marginal;
  * with opponent_reward="estimated", for every opponent j a reward estimate
    rhat_psi^j(s, a^j, a^{-j}) and a critic Q^j of j's soft value under it
    (with a target network); with "shared" (identical-interest games) the
    agent's own critic is the opponents' soft Q.

Values are in scaled reward units (r * reward_scale) and the temperature alpha
multiplies the log densities: the paper's Q, in units of 1/alpha, is Q/alpha
here, so every objective below is the paper's times alpha, with the same
minimisers. With a_hat ~ rho(.|s) and a ~ pi(.|s, a_hat):

  eq. 9  J_Q = E_D[ (Q(s, a^i, a^{-i}) - r - gamma (1 - done) V(s'))^2 / 2 ],
         V(s') = Qbar(s', a', a_hat') - alpha [ log pi(a'|s', a_hat')
                  + log rho(a_hat'|s') - log pibar(a_hat') ];
  eq. 8  J_pi = E_{s~D, a_hat~rho} KL(pi(.|s, a_hat) || exp((Q(s,.,a_hat)
         - V)/alpha)) = E[ alpha log pi(a|s, a_hat) - Q(s, a, a_hat) ] + const,
         minimised through the reparameterised sample a = f_theta(eps; s,
         a_hat), which is the gradient of eq. 10;
  eq. 5  rho_j(a^j|s) ∝ pibar_j(a^j|s) exp(E_{a^{-j}}[Q^j(s, a)] / alpha),
         where agent i's own action in a^{-j} follows its conditional policy
         pi(.|s, a_hat) (Algorithm 3, line 5). rho_phi is fitted to it by
         weighted maximum likelihood, i.e. by minimising KL(target || rho):
         -E_s[sum_k w_k log rho_j(a_hat_k|s)] over `importance_samples`
         proposals for each of `importance_states` states of the batch,
         half drawn from the prior and half from rho,
         with self-normalised weights w_k ∝ pibar(a_hat_k)
         exp(Q^j(s, a_hat_k, a_k)/alpha) / q(a_hat_k), q = (pibar + rho)/2
         (why this mode-covering KL and not the reparameterised reverse KL
         of eq. 8's form: docs/design.md, "Tuning notes");
  eq. 6  the reward estimate minimises KL(P(tau_j) || rho_j(tau_j)), the
         maximum-entropy inverse-RL objective whose gradient (eq. 7, Algorithm
         3 line 4) is  - E_data[grad rhat^j] + E_model[grad rhat^j]. The
         model expectation is estimated with `importance_samples` draws
         a^j_k ~ rho_j(.|s) and self-normalised weights
         w_k ∝ pibar_j(a^j_k) exp(Qbar^j(s, a^j_k, a^{-j})/alpha)
               / rho_j(a^j_k|s),
         at the observed a^{-j}; Q^j is learned by soft TD on rhat^j with the
         soft value of Prop. 5.9's normaliser, estimated with rho_j:
         V^j(s') = Qbar^j(s', a_hat', a') - alpha (log rho_j - log pibar_j).

One compiled update samples a replay batch and takes an Adam step on
every network group with its own loss only (the other losses' gradients on
that group are discarded), then moves the target networks by Polyak
averaging. Acting (Algorithm 2): a_hat ~ rho(.|s), then a ~ pi(.|s, a_hat);
the deterministic (evaluation) action uses the modes of both.

The file reads top to bottom: `Settings`; `MAIAgent`'s networks; the policy
and critic losses (eqs. 8-10); opponent modelling (Algorithm 3: eq. 5 and the
reward fit of eqs. 6-7); acting; and `train`, Algorithm 2's loop. The replay
buffer, the step protocol and the update's Adam step are the baselines' too
(`continuous_common.ReplayAgent`).
"""

import dataclasses


import numpy as np
import tensorflow as tf

from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms.continuous_common import MLP

OPPONENT_MODELS = ("variational", "empirical")
OPPONENT_REWARDS = ("estimated", "shared")
POLICY_FORMS = ("conditional", "marginal")


@dataclasses.dataclass(frozen=True)
class Settings(continuous_common.Settings):
  """MAI's settings: the shared ones (`continuous_common.Settings`: networks,
  optimiser, replay, discount, reward scale, temperature) and these.

  Attributes:
    opponent_model: "variational" (the paper's: rho is the optimum of
      Prop. 5.9, eq. 5, the opponents' soft response to the agent's own
      conditional policy) or "empirical" (the ablation matching
      `vpg.VPGSolver`'s empirical model: rho fitted by maximum likelihood to
      the opponents' observed actions, with no reward estimate and no
      opponent KL term in the soft value).
    opponent_reward: with the variational opponent model, how an agent knows
      its opponents' rewards for Prop. 5.9: "estimated" (reward estimates
      fitted to the opponents' observed actions, Algorithm 3, eqs. 6-7) or
      "shared" (an identical-interest game: the opponents' reward is the
      agent's own, so its own critic is their soft Q).
    policy_form: "conditional" (the paper's: pi(a^i | s, a_hat^{-i}) takes
      the opponent model's predicted action as an input) or "marginal" (the
      ablation matching `vpg.VPGSolver`'s marginal policies: pi(a^i | s)
      ignores the prediction, and eq. 8 makes it a soft best response to the
      opponent model's marginal rho(.|s)).
    importance_samples: samples per state in the self-normalised importance
      estimates: the opponent model's fit (eq. 5) and, with "estimated", the
      reward estimate's gradient (eq. 7).
    importance_states: how many states of each batch (at most all) those
      estimates use; each costs importance_samples network rows.

  Raises:
    ValueError: naming the setting and its allowed values.
  """
  opponent_model: str = "variational"
  opponent_reward: str = "estimated"
  policy_form: str = "conditional"
  importance_samples: int = 16
  importance_states: int = 32

  def __post_init__(self):
    super().__post_init__()
    for name, allowed in (("opponent_model", OPPONENT_MODELS),
                          ("opponent_reward", OPPONENT_REWARDS),
                          ("policy_form", POLICY_FORMS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got "
                         f"{getattr(self, name)!r}")
    for name in ("importance_samples", "importance_states"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class MAIAgent(continuous_common.ReplayAgent):
  """Agent `player_id` of MAI; see the module docstring.

  Args:
    player_id: the player this agent controls.
    spec: the `EnvironmentSpec` (players, observation and action sizes).
    settings: a `Settings`.
    seed: seeds the weights, the replay sampling and every action.
    name: the tf.Module name.
  """

  stochastic_policy = True

  def __init__(self, player_id, spec, settings, seed, name="mai"):
    super().__init__(player_id, spec, settings, seed, name)
    self.opponents = [j for j in range(spec.num_players) if j != player_id]
    self.others_size = len(self.opponents) * spec.action_size
    joint_size = spec.num_players * spec.action_size
    observation_size = spec.observation_size
    hidden = settings.hidden_sizes
    rng = self.init_rng
    self.conditional = settings.policy_form == "conditional"
    self.policy = MLP(
        observation_size + (self.others_size if self.conditional else 0),
        hidden, 2 * spec.action_size, rng, "policy")
    self.critic = MLP(observation_size + joint_size, hidden, 1, rng, "critic")
    self.target_critic = MLP(observation_size + joint_size, hidden, 1, rng,
                             "target_critic")
    self.opponent_model = MLP(observation_size, hidden, 2 * self.others_size,
                              rng, "opponent_model")
    self.empirical_model = settings.opponent_model == "empirical"
    self.estimates_rewards = (not self.empirical_model
                              and settings.opponent_reward == "estimated")
    estimated = self.opponents if self.estimates_rewards else []
    self.reward_estimates = [
        MLP(observation_size + joint_size, hidden, 1, rng, f"reward_{j}")
        for j in estimated]
    self.opponent_critics = [
        MLP(observation_size + joint_size, hidden, 1, rng, f"critic_{j}")
        for j in estimated]
    self.target_opponent_critics = [
        MLP(observation_size + joint_size, hidden, 1, rng,
            f"target_critic_{j}") for j in estimated]
    self.build_training()

  def variable_groups(self):
    """The variables each loss of `losses` trains, by loss name."""
    groups = {
        "critic": self.critic.parameters,
        "policy": self.policy.parameters,
        "opponent_model": self.opponent_model.parameters,
    }
    if self.estimates_rewards:
      groups["reward_estimate"] = [
          v for net in self.reward_estimates for v in net.parameters]
      groups["opponent_critic"] = [
          v for net in self.opponent_critics for v in net.parameters]
    return groups

  def target_pairs(self):
    return [(self.target_critic, self.critic)] + list(zip(
        self.target_opponent_critics, self.opponent_critics))

  # -------------------------------------------------------------------------
  # Distributions and values.

  def opponent_distribution(self, observations):
    """rho(.|s): the squashed Gaussians' (mean, log std), each
    (B, N-1, d), one row per opponent in player order."""
    mean, log_std = continuous_common.gaussian_head(
        self.opponent_model(observations))
    factors = (-1, len(self.opponents), self.spec.action_size)
    return tf.reshape(mean, factors), tf.reshape(log_std, factors)

  def predict_opponents(self, distribution, noise):
    """a_hat ~ rho(.|s) of `distribution` (`opponent_distribution`'s): the
    others' box actions (B, (N-1) d) in player order and each opponent's
    log density log rho_j (B, N-1)."""
    mean, log_std = distribution
    actions, log_densities = continuous_common.squashed_gaussian(
        mean, log_std, tf.reshape(noise, (-1, *mean.shape[1:])))
    return tf.reshape(actions, (-1, self.others_size)), log_densities

  def own_action(self, observations, predicted, noise):
    """a ~ pi(.|s, a_hat): the own box action (B, d) and log pi (B,); the
    marginal policy form ignores a_hat."""
    inputs = (tf.concat([observations, predicted], axis=-1)
              if self.conditional else observations)
    mean, log_std = continuous_common.gaussian_head(self.policy(inputs))
    return continuous_common.squashed_gaussian(mean, log_std, noise)

  def joint_value(self, network, observations, own, others):
    """A critic-shaped network at (s, joint action in player order): (B,)."""
    joint = continuous_common.insert_own(own, others, self._player,
                                         self.spec.action_size)
    return network(tf.concat([observations, joint], axis=-1))[:, 0]

  def _opponent_q(self, index):
    """Agent i's critic of opponent `index`'s soft Q (eq. 5)."""
    return (self.opponent_critics[index] if self.estimates_rewards else
            self.critic)

  def _importance_states(self):
    """The importance estimates use the batch's first this many states."""
    return min(self.settings.importance_states, self.settings.batch_size)

  def _log_prior(self):
    """log pibar_j, the uniform density on one opponent's action box."""
    return continuous_common.uniform_log_density(self.spec.action_size)

  # -------------------------------------------------------------------------
  # The policy and critic losses (eqs. 8-10).

  def sample_noise(self, batch_size):
    """The standard normal draws of one update's reparameterised samples."""
    normal = self.generator.normal
    d, k = self.spec.action_size, self.settings.importance_samples
    noise = {
        "opponents": normal((batch_size, self.others_size)),
        "prior_opponents": self.generator.uniform(
            (batch_size, self.others_size), -1.0, 1.0),
        "own": normal((2 * batch_size, d)),
        "next_opponents": normal((batch_size, self.others_size)),
        "next_own": normal((batch_size, d)),
    }
    if self.empirical_model:
      return noise
    proposals = self._importance_states() * k
    noise["model_proposals"] = normal((proposals, self.others_size))
    noise["prior_proposals"] = self.generator.uniform(
        (proposals, self.others_size), -1.0, 1.0)
    noise["proposal_own"] = normal((proposals, d))
    if self.estimates_rewards:
      noise["importance"] = normal((proposals, self.others_size))
    return noise

  def losses(self, batch, noise, alpha):
    """Every loss of one update, by name (`variable_groups` says what each
    trains). `batch` is a replay batch, `noise` as from `sample_noise`."""
    observations = batch["observation"]
    own, others = continuous_common.split_own(
        batch["joint_action"], self._player, self.spec.action_size)
    next_predicted, next_log_rho = self.predict_opponents(
        self.opponent_distribution(batch["next_observation"]),
        noise["next_opponents"])
    next_own, next_log_pi = self.own_action(
        batch["next_observation"], next_predicted, noise["next_own"])
    next_sample = (batch["next_observation"], next_own, next_predicted,
                   next_log_pi, next_log_rho)
    # rho(.|s) once per state of the batch: the policy loss uses it, the
    # importance estimates its first `states` rows (each state's rows of
    # samples share them).
    distribution = self.opponent_distribution(observations)
    states = self._importance_states()
    first = tuple(part[:states] for part in distribution)
    losses = {
        "critic": self.critic_loss(batch, own, others, next_sample, alpha),
        "policy": self.policy_loss(observations, distribution, noise, alpha),
        "opponent_model": (
            self.empirical_opponent_model_loss(distribution, others)
            if self.empirical_model else
            self.opponent_model_loss(observations[:states], first, noise,
                                     alpha)),
    }
    if self.estimates_rewards:
      losses["reward_estimate"] = self.reward_estimate_loss(
          observations[:states], first, own[:states], others[:states],
          noise, alpha)
      losses["opponent_critic"] = self.opponent_critic_loss(
          batch, own, others, next_sample, alpha)
    return losses

  def critic_loss(self, batch, own, others, next_sample, alpha):
    """Eq. 9: soft TD of Q(s, a^i, a^{-i}) towards
    r + gamma (1 - done) [Qbar(s', a', a_hat') - alpha (log pi(a'|s', a_hat')
    + log rho(a_hat'|s') - log pibar(a_hat'))]; with the empirical opponent
    model, without the rho and pibar terms."""
    next_observations, next_own, next_predicted, next_log_pi, next_log_rho = (
        next_sample)
    opponent_kl = (0.0 if self.empirical_model else tf.reduce_sum(
        next_log_rho - self._log_prior(), axis=-1))
    next_value = (
        self.joint_value(self.target_critic, next_observations, next_own,
                         next_predicted)
        - alpha * (next_log_pi + opponent_kl))
    q_values = self.joint_value(self.critic, batch["observation"], own,
                                others)
    return self.td_loss(q_values, batch, next_value)

  def policy_loss(self, observations, distribution, noise, alpha):
    """Eq. 8 through the reparameterisation (eq. 10):
    E_{a_hat, a = f_theta(eps; s, a_hat)}[alpha log pi(a|s, a_hat)
    - Q(s, a, a_hat)], with a_hat held fixed and drawn half from rho, half
    from the prior pibar. Eq. 8 is a KL divergence for each a_hat, so the
    minimiser is the same for any a_hat distribution (why pibar too:
    docs/design.md, "Tuning notes"). The marginal
    policy form draws a_hat from rho only: its pi(.|s) is then the soft best
    response to rho(.|s). `distribution` is rho(.|s) at `observations`."""
    predicted, _ = self.predict_opponents(distribution, noise["opponents"])
    if not self.conditional:
      batch_size = tf.shape(observations)[0]
      actions, log_pi = self.own_action(observations, predicted,
                                        noise["own"][:batch_size])
      q_values = self.joint_value(self.critic, observations, actions,
                                  tf.stop_gradient(predicted))
      return tf.reduce_mean(alpha * log_pi - q_values)
    predicted = tf.stop_gradient(tf.concat(
        [predicted, noise["prior_opponents"]], axis=0))
    observations = tf.concat([observations, observations], axis=0)
    actions, log_pi = self.own_action(observations, predicted, noise["own"])
    q_values = self.joint_value(self.critic, observations, actions, predicted)
    return tf.reduce_mean(alpha * log_pi - q_values)

  # -------------------------------------------------------------------------
  # Opponent modelling (Algorithm 3): rho (eq. 5) and the reward fit
  # (eqs. 6-7).

  def opponent_model_loss(self, observations, distribution, noise, alpha):
    """Eq. 5 (Prop. 5.9), rho_j ∝ pibar_j exp(E_{a ~ pi(.|s, a_hat)}
    [Q^j(s, a_hat, a)] / alpha), fitted by weighted maximum likelihood:
    -E_s[sum_k w_k log rho_j(a_hat_k|s)] over `importance_samples`
    proposals a_hat_k per state, half from the prior pibar and half from
    rho itself, with self-normalised weights
    w_k ∝ pibar(a_hat_k) exp(Q^j(s, a_hat_k, a_k) / alpha) / q(a_hat_k),
    q = (pibar + rho) / 2 the proposal density and a_k ~ pi(.|s, a_hat_k).
    This minimises KL(target || rho). `distribution` is rho(.|s) at
    `observations` (one row per state)."""
    k = self.settings.importance_samples
    d, num_opponents = self.spec.action_size, len(self.opponents)
    repeated = tf.repeat(observations, k, axis=0)
    mean, log_std = (tf.repeat(part, k, axis=0) for part in distribution)
    factors = (-1, num_opponents, d)
    model_proposals, _ = continuous_common.squashed_gaussian(
        mean, log_std, tf.reshape(noise["model_proposals"], factors))
    from_prior = tf.tile(tf.range(k) < k // 2,
                         [tf.shape(observations)[0]])[:, None, None]
    proposals = tf.stop_gradient(tf.where(
        from_prior, tf.reshape(noise["prior_proposals"], factors),
        model_proposals))
    log_rho = continuous_common.squashed_gaussian_log_density(
        mean, log_std, proposals)  # (B k, N - 1)
    log_prior = num_opponents * self._log_prior()
    log_model = tf.reduce_sum(tf.stop_gradient(log_rho), axis=-1)
    log_proposal = tf.reduce_logsumexp(tf.stack(
        [tf.fill(tf.shape(log_model), np.float32(log_prior)), log_model]),
                                       axis=0) - np.log(2.0)
    proposals = tf.reshape(proposals, (-1, self.others_size))
    actions, _ = self.own_action(repeated, proposals,
                                 noise["proposal_own"])
    loss = 0.0
    for index in range(num_opponents):
      q_values = self.joint_value(self._opponent_q(index), repeated, actions,
                                  proposals)
      log_weights = tf.stop_gradient(q_values / alpha + log_prior
                                     - log_proposal)
      weights = tf.nn.softmax(tf.reshape(log_weights, (-1, k)), axis=-1)
      loss -= tf.reduce_mean(tf.reduce_sum(
          weights * tf.reshape(log_rho[:, index], (-1, k)), axis=-1))
    return loss

  def empirical_opponent_model_loss(self, distribution, others):
    """The empirical opponent model (opponent_model="empirical"): rho fitted
    by maximum likelihood to the opponents' observed actions,
    -E_D[sum_j log rho_j(a^j|s)]; `distribution` is rho(.|s) at the
    batch's states."""
    return -tf.reduce_mean(tf.reduce_sum(
        self._log_rho(distribution, others), axis=-1))

  def _log_rho(self, distribution, others):
    """log rho_j(a^j|s) (B, N-1) of the others' box actions (B, (N-1) d)
    under rho(.|s) of `distribution`."""
    mean, log_std = distribution
    return continuous_common.squashed_gaussian_log_density(
        mean, log_std, tf.reshape(others, (-1, *mean.shape[1:])))

  def opponent_log_likelihood(self, observations, joint_actions):
    """log rho_j(a^j | s) of the opponents' played actions.

    Args:
      observations: Markov-state tensors (B, observation_size).
      joint_actions: joint box actions (B, N d) in player order.

    Returns:
      numpy (B, N-1), one column per opponent in player order (nats; the
      actions are clipped 1e-6 inside the box).
    """
    _, others = continuous_common.split_own(
        tf.convert_to_tensor(joint_actions, tf.float32), self.player_id,
        self.spec.action_size)
    return self._log_rho(self.opponent_distribution(
        tf.convert_to_tensor(observations, tf.float32)), others).numpy()

  def reward_estimate_loss(self, observations, distribution, own, others,
                           noise, alpha):
    """Eqs. 6-7: for each opponent j, -E_data[rhat^j(s, a)] +
    E_s[sum_k w_k rhat^j(s, a^j_k, a^{-j})] with a^j_k ~ rho_j(.|s) and the
    self-normalised importance weights w of the module docstring.
    `distribution` is rho(.|s) at `observations`."""
    k = self.settings.importance_samples
    d = self.spec.action_size
    repeated = tf.repeat(observations, k, axis=0)
    samples, log_rho = self.predict_opponents(
        tuple(tf.repeat(part, k, axis=0) for part in distribution),
        noise["importance"])
    samples, log_rho = tf.stop_gradient(samples), tf.stop_gradient(log_rho)
    repeated_own = tf.repeat(own, k, axis=0)
    repeated_others = tf.repeat(others, k, axis=0)
    loss = 0.0
    for index, reward_estimate in enumerate(self.reward_estimates):
      model_others = tf.concat([repeated_others[:, :index * d],
                                samples[:, index * d:(index + 1) * d],
                                repeated_others[:, (index + 1) * d:]], axis=-1)
      log_weights = tf.stop_gradient(
          self.joint_value(self.target_opponent_critics[index], repeated,
                           repeated_own, model_others) / alpha
          + self._log_prior() - log_rho[:, index])
      weights = tf.nn.softmax(tf.reshape(log_weights, (-1, k)), axis=-1)
      model_rewards = tf.reshape(
          self.joint_value(reward_estimate, repeated, repeated_own,
                           model_others), (-1, k))
      data_rewards = self.joint_value(reward_estimate, observations, own,
                                      others)
      loss += (tf.reduce_mean(tf.reduce_sum(weights * model_rewards, axis=-1))
               - tf.reduce_mean(data_rewards))
    return loss

  def opponent_critic_loss(self, batch, own, others, next_sample, alpha):
    """Soft TD of each Q^j towards rhat^j(s, a) + gamma (1 - done)
    [Qbar^j(s', a_hat', a') - alpha (log rho_j(a_hat'^j|s')
    - log pibar_j)] (Prop. 5.9's soft value)."""
    next_observations, next_own, next_predicted, _, next_log_rho = next_sample
    observations = batch["observation"]
    loss = 0.0
    for index, (critic, target_critic, reward_estimate) in enumerate(zip(
        self.opponent_critics, self.target_opponent_critics,
        self.reward_estimates)):
      next_value = (
          self.joint_value(target_critic, next_observations, next_own,
                           next_predicted)
          - alpha * (next_log_rho[:, index] - self._log_prior()))
      target = tf.stop_gradient(
          self.joint_value(reward_estimate, observations, own, others)
          + self.settings.discount * (1.0 - batch["done"]) * next_value)
      q_values = self.joint_value(critic, observations, own, others)
      loss += 0.5 * tf.reduce_mean(tf.square(q_values - target))
    return loss

  # -------------------------------------------------------------------------
  # Actions.

  def _policy_actions(self, observations, deterministic):
    """a_hat ~ rho(.|s), a ~ pi(.|s, a_hat); the modes if deterministic.
    The marginal policy form draws a ~ pi(.|s) only."""
    batch_size = tf.shape(observations)[0]
    if not self.conditional:
      own_noise = (tf.zeros((batch_size, self.spec.action_size))
                   if deterministic else
                   self.generator.normal((batch_size, self.spec.action_size)))
      actions, _ = self.own_action(observations, None, own_noise)
      return actions
    if deterministic:
      opponent_noise = tf.zeros((batch_size, self.others_size))
      own_noise = tf.zeros((batch_size, self.spec.action_size))
    else:
      opponent_noise = self.generator.normal((batch_size, self.others_size))
      own_noise = self.generator.normal((batch_size, self.spec.action_size))
    predicted, _ = self.predict_opponents(
        self.opponent_distribution(observations), opponent_noise)
    actions, _ = self.own_action(observations, predicted, own_noise)
    return actions


# ---------------------------------------------------------------------------
# Algorithm 2's loop.


def make_agents(spec, settings, seed):
  """One `MAIAgent` per player, seeded by (seed, player)."""
  return [MAIAgent(player, spec, settings, seed, name=f"mai_{player}")
          for player in range(spec.num_players)]


def train(game, settings, seed, episodes):
  """Algorithm 2 on a game with a continuous interface: every agent acts
  (a_hat ~ rho, a ~ pi), stores the transition and takes its updates at
  every step (`ReplayAgent.step`), for `episodes` episodes.

  Returns:
    (agents, returns): the trained `MAIAgent`s and the training returns,
    shape (episodes, num_players).
  """
  environment = continuous_common.ContinuousEnvironment(game, seed)
  agents = make_agents(environment.spec, settings, seed)
  returns = [continuous_common.play_episode(environment, agents)
             for _ in range(episodes)]
  return agents, np.array(returns)
