"""MAI (Algorithm 2): losses, gradient flow, checkpoints and smoke runs."""

import dataclasses

import numpy as np
import pyspiel
import pytest
import tensorflow as tf

import vsg_spiel  # noqa: F401  (registers the games)
from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms import mai
from vsg_spiel.games import differential

from continuous_helpers import SPEC, assert_checkpoints_restore, mlp, play
from continuous_helpers import random_batch, randomise, squashed_sample
from continuous_helpers import to_tensors

TINY = mai.Settings(
    hidden_sizes=(4,), batch_size=4, replay_capacity=16, warmup_steps=2,
    importance_samples=3, importance_states=2, jit_compile=False,
    reward_scale=0.5, discount=0.9,
    target_update_rate=0.25)
LOG_2 = np.log(2.0)


# ----------------------------------------------------------------------------
# A numpy reference of the networks and losses, written from the formulas.


def log_density(outputs, actions):
  """The squashed Gaussian's log density at given actions."""
  mean, raw = np.split(outputs, 2, axis=-1)
  low, high = continuous_common.LOG_STD_MIN, continuous_common.LOG_STD_MAX
  log_std = low + 0.5 * (high - low) * (np.tanh(raw) + 1.0)
  noise = (np.arctanh(actions) - mean) / np.exp(log_std)
  return np.sum(-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)
                - np.log(1.0 - actions**2), axis=-1)


def joint(player, own, other):
  """(obs-free) joint action of two players in player order."""
  return np.concatenate([own, other] if player == 0 else [other, own], -1)


def reference_losses(agent, batch, noise, alpha):
  """Every MAI loss for two players and 1-D actions, by the formulas of the
  module docstring."""
  player, settings = agent.player_id, agent.settings
  s, s_next = batch["observation"], batch["next_observation"]
  own = batch["joint_action"][:, [player]]
  other = batch["joint_action"][:, [1 - player]]
  reward, done = batch["reward"], batch["done"]

  def q(network, states, own_action, other_action):
    return mlp(network, np.concatenate(
        [states, joint(player, own_action, other_action)], -1))[:, 0]

  def policy(states, predicted):
    """pi's outputs at (s, a_hat); the marginal form ignores a_hat."""
    return mlp(agent.policy, np.concatenate([states, predicted], -1)
               if agent.conditional else states)

  predicted_next, log_rho_next = squashed_sample(
      mlp(agent.opponent_model, s_next), noise["next_opponents"])
  own_next, log_pi_next = squashed_sample(
      policy(s_next, predicted_next), noise["next_own"])
  # eq. 9; the empirical opponent model has no opponent KL term.
  opponent_kl = 0.0 if agent.empirical_model else log_rho_next + LOG_2
  value_next = (q(agent.target_critic, s_next, own_next, predicted_next)
                - alpha * (log_pi_next + opponent_kl))
  target = settings.reward_scale * reward + settings.discount * (
      1 - done) * value_next
  critic = 0.5 * np.mean((q(agent.critic, s, own, other) - target)**2)
  # eqs. 8 and 10, a_hat half from rho, half from the prior (the marginal
  # form: from rho only, and pi ignores it).
  predicted, _ = squashed_sample(mlp(agent.opponent_model, s),
                                 noise["opponents"])
  own_noise = noise["own"][:len(s)]
  if agent.conditional:
    predicted = np.concatenate([predicted, noise["prior_opponents"]])
    s, own_noise = np.concatenate([s, s]), noise["own"]
  action, log_pi = squashed_sample(policy(s, predicted), own_noise)
  policy_loss = np.mean(alpha * log_pi - q(agent.critic, s, action,
                                           predicted))
  s = batch["observation"]
  opponent_q = (agent.opponent_critics[0] if agent.estimates_rewards else
                agent.critic)
  # eq. 5: weighted maximum likelihood over proposals from pibar and rho.
  k, m = settings.importance_samples, settings.importance_states
  s_rep = np.repeat(s[:m], k, 0)
  rho_outputs = mlp(agent.opponent_model, s_rep)
  model_proposals, _ = squashed_sample(rho_outputs, noise["model_proposals"])
  from_prior = np.tile(np.arange(k) < k // 2, m)[:, None]
  proposals = np.where(from_prior, noise["prior_proposals"], model_proposals)
  log_rho_proposals = log_density(rho_outputs, proposals)
  log_proposal = np.logaddexp(-LOG_2, log_rho_proposals) - LOG_2
  proposal_actions, _ = squashed_sample(policy(s_rep, proposals),
                                        noise["proposal_own"])
  log_weights = (q(opponent_q, s_rep, proposal_actions, proposals) / alpha
                 - LOG_2 - log_proposal).reshape(-1, k)
  weights = np.exp(log_weights - log_weights.max(1, keepdims=True))
  weights /= weights.sum(1, keepdims=True)
  opponent_model = -np.mean(np.sum(
      weights * log_rho_proposals.reshape(-1, k), 1))
  if agent.empirical_model:  # maximum likelihood of the observed actions
    opponent_model = -np.mean(log_density(mlp(agent.opponent_model, s),
                                          other))
  losses = {"critic": critic, "policy": policy_loss,
            "opponent_model": opponent_model}
  if agent.estimates_rewards:
    s_rep, own_rep = np.repeat(s[:m], k, 0), np.repeat(own[:m], k, 0)
    samples, log_rho_samples = squashed_sample(
        mlp(agent.opponent_model, s_rep), noise["importance"])
    log_weights = (q(agent.target_opponent_critics[0], s_rep, own_rep,
                     samples) / alpha - LOG_2 - log_rho_samples).reshape(-1, k)
    weights = np.exp(log_weights - log_weights.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    model_rewards = q(agent.reward_estimates[0], s_rep, own_rep,
                      samples).reshape(-1, k)
    # eqs. 6-7
    losses["reward_estimate"] = (
        np.mean(np.sum(weights * model_rewards, 1))
        - np.mean(q(agent.reward_estimates[0], s[:m], own[:m], other[:m])))
    opponent_value_next = (
        q(agent.target_opponent_critics[0], s_next, own_next, predicted_next)
        - alpha * (log_rho_next + LOG_2))
    opponent_target = (q(agent.reward_estimates[0], s, own, other)
                       + settings.discount * (1 - done) * opponent_value_next)
    losses["opponent_critic"] = 0.5 * np.mean(
        (q(agent.opponent_critics[0], s, own, other) - opponent_target)**2)
  return losses


def random_noise(rng, size=4, samples=3, states=2):
  noise = {name: rng.normal(size=(size, 1)).astype(np.float32) for name in
           ("opponents", "next_opponents", "next_own")}
  noise["own"] = rng.normal(size=(2 * size, 1)).astype(np.float32)
  noise["prior_opponents"] = rng.uniform(-1, 1, (size, 1)).astype(np.float32)
  for name in ("importance", "model_proposals", "proposal_own"):
    noise[name] = rng.normal(size=(states * samples, 1)).astype(np.float32)
  noise["prior_proposals"] = rng.uniform(-1, 1, (states * samples, 1)).astype(
      np.float32)
  return noise


@pytest.mark.parametrize("opponent_model,opponent_reward,policy_form", [
    ("variational", "estimated", "conditional"),
    ("variational", "shared", "conditional"),
    ("empirical", "estimated", "conditional"),
    ("variational", "estimated", "marginal"),
    ("empirical", "estimated", "marginal")])
@pytest.mark.parametrize("player", [0, 1])
def test_losses_match_the_formulas(opponent_model, opponent_reward,
                                   policy_form, player):
  rng = np.random.default_rng(player)
  settings = dataclasses.replace(TINY, opponent_model=opponent_model,
                                 opponent_reward=opponent_reward,
                                 policy_form=policy_form)
  agent = mai.MAIAgent(player, SPEC, settings, seed=0)
  randomise([agent], rng)
  batch, noise = random_batch(rng), random_noise(rng)
  got = agent.losses(to_tensors(batch), to_tensors(noise), 0.3)
  expected = reference_losses(agent, batch, noise, 0.3)
  assert set(got) == set(expected)
  for name, value in expected.items():
    # float32 against float64: tanh saturates near the box's edges.
    np.testing.assert_allclose(got[name].numpy(), value, rtol=2e-4,
                               atol=2e-5, err_msg=name)


def test_critic_and_policy_losses_by_hand():
  """Networks set to constants through their output biases (all weights
  zero): Q = 2, Qbar = 1, the policy's mean 0.5 and log std 0, the opponent
  model's mean 0 and log std 0. With zero noise every sample is the tanh of
  its mean. Shared opponent reward: the opponent's Q is the critic's."""
  agent = mai.MAIAgent(0, SPEC, dataclasses.replace(
      TINY, opponent_reward="shared"), seed=0)
  for variable in agent.trainable_variables:
    variable.assign(tf.zeros_like(variable))
  raw_zero = np.arctanh(2 * (0.0 - continuous_common.LOG_STD_MIN) / (
      continuous_common.LOG_STD_MAX - continuous_common.LOG_STD_MIN) - 1)
  agent.critic.biases[-1].assign([2.0])
  agent.target_critic.biases[-1].assign([1.0])
  agent.policy.biases[-1].assign([0.5, raw_zero])
  agent.opponent_model.biases[-1].assign([0.0, raw_zero])
  batch = {"observation": np.zeros((2, 3), np.float32),
           "joint_action": np.zeros((2, 2), np.float32),
           "reward": np.array([1.0, -2.0], np.float32),
           "next_observation": np.zeros((2, 3), np.float32),
           "done": np.array([0.0, 1.0], np.float32)}
  noise = {name: np.zeros((2, 1), np.float32) for name in
           ("opponents", "prior_opponents", "next_opponents", "next_own")}
  noise["own"] = np.zeros((4, 1), np.float32)
  for name in ("importance", "model_proposals", "proposal_own"):
    noise[name] = np.zeros((6, 1), np.float32)
  # Three proposals per state: the first from the prior (0.5), two from rho
  # (tanh(0) = 0).
  noise["prior_proposals"] = np.full((6, 1), 0.5, np.float32)
  alpha = 0.5
  got = agent.losses(to_tensors(batch), to_tensors(noise), alpha)
  # log pi at a = tanh(0.5) with zero noise: -0.5 log(2 pi) - log(1 - a^2).
  log_pi = -0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(0.5)**2)
  log_rho = -0.5 * np.log(2 * np.pi)  # a_hat = tanh(0) = 0
  value_next = 1.0 - alpha * (log_pi + log_rho + LOG_2)
  targets = 0.5 * np.array([1.0, -2.0]) + 0.9 * np.array([1.0, 0.0]) * (
      value_next)
  np.testing.assert_allclose(got["critic"].numpy(),
                             0.5 * np.mean((2.0 - targets)**2), rtol=1e-5)
  np.testing.assert_allclose(got["policy"].numpy(), alpha * log_pi - 2.0,
                             rtol=1e-5)
  # Eq. 5 with a constant Q: the weights are pibar / q, q = (pibar + rho)/2,
  # at the proposals (0.5, 0, 0); rho(0.5) = N(atanh 0.5) / (1 - 0.25).
  rho = np.array([np.exp(-0.5 * np.arctanh(0.5)**2) / 0.75, 1.0, 1.0]) / (
      np.sqrt(2 * np.pi))
  weights = 1.0 / (0.5 * (0.5 + rho))
  weights /= weights.sum()
  np.testing.assert_allclose(got["opponent_model"].numpy(),
                             -np.sum(weights * np.log(rho)), rtol=1e-5)


def test_squashed_gaussian_density_integrates_to_one():
  actions = np.linspace(-1 + 1e-6, 1 - 1e-6, 200_001)
  mean, log_std = 0.3, np.log(0.8)
  noise = (np.arctanh(actions) - mean) / 0.8
  _, log_density = continuous_common.squashed_gaussian(
      tf.constant(mean, tf.float64), tf.constant(log_std, tf.float64),
      tf.constant(noise[:, None]))
  np.testing.assert_allclose(np.trapezoid(np.exp(log_density.numpy()),
                                          actions), 1.0, atol=1e-4)


# ----------------------------------------------------------------------------
# Gradient flow.

# Which variable groups each loss reaches through un-stopped paths. The
# update applies each loss's gradient to its own group only, so e.g. the
# policy loss reaching the critic moves nothing there.
REACHES = {
    "critic": {"critic"},
    "policy": {"policy", "critic"},
    "opponent_model": {"opponent_model"},
    "reward_estimate": {"reward_estimate"},
    "opponent_critic": {"opponent_critic"},
}


def all_groups(agent):
  groups = dict(agent.variable_groups())
  groups["target_critic"] = agent.target_critic.parameters
  groups["target_opponent_critic"] = [
      v for net in agent.target_opponent_critics for v in net.parameters]
  return groups


@pytest.mark.parametrize("opponent_model", ["variational", "empirical"])
def test_each_loss_reaches_only_the_expected_variables(opponent_model):
  rng = np.random.default_rng(3)
  agent = mai.MAIAgent(0, SPEC, dataclasses.replace(
      TINY, opponent_model=opponent_model), seed=1)
  randomise([agent], rng)
  batch, noise = to_tensors(random_batch(rng)), to_tensors(random_noise(rng))
  groups = all_groups(agent)
  with tf.GradientTape(persistent=True) as tape:
    losses = agent.losses(batch, noise, 0.3)
  # The empirical model needs no reward estimates (opponent_reward is moot).
  assert set(losses) == ({"critic", "policy", "opponent_model"}
                         if opponent_model == "empirical" else set(REACHES))
  for name, loss in losses.items():
    reached = {group for group, variables in groups.items()
               if any(g is not None and np.any(g.numpy() != 0)
                      for g in tape.gradient(loss, variables))}
    assert reached == REACHES[name], name


def test_update_moves_each_group_by_its_own_loss_only():
  """One `update` equals Adam on each group with that group's loss
  gradient, computed loss by loss on a twin agent with the same batch and
  noise; targets move by Polyak averaging only."""
  rng = np.random.default_rng(4)
  agents = [mai.MAIAgent(0, SPEC, TINY, seed=5) for _ in range(2)]
  transitions = [random_batch(rng, 4) for _ in range(2)]
  for agent in agents:
    for batch in transitions:
      for k in range(4):
        agent.replay.add(agent.replay.pack(
            batch["observation"][k], batch["joint_action"][k],
            batch["reward"][k], batch["next_observation"][k],
            batch["done"][k]))
  updated, twin = agents
  target_before = [v.numpy() for v in twin.target_critic.parameters]
  updated.update()
  batch = twin.replay.sample(twin.generator, TINY.batch_size)
  noise = twin.sample_noise(TINY.batch_size)
  alpha = continuous_common.annealed_temperature(TINY, twin.acting_steps)
  gradients = []
  for name, variables in twin.variable_groups().items():
    with tf.GradientTape() as tape:
      loss = twin.losses(batch, noise, alpha)[name]
    gradients += tape.gradient(loss, variables)
  twin.optimizer.apply(gradients)
  for name, variables in updated.variable_groups().items():
    for mine, theirs in zip(variables, twin.variable_groups()[name]):
      np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6,
                                 atol=1e-7, err_msg=name)
  for before, critic, target in zip(target_before,
                                    updated.critic.parameters,
                                    updated.target_critic.parameters):
    np.testing.assert_allclose(target.numpy(),
                               0.75 * before + 0.25 * critic.numpy(),
                               rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# Temperature, checkpoints and smoke runs.


def test_temperature_anneals_geometrically():
  settings = continuous_common.Settings(initial_temperature=1.0,
                                        final_temperature=0.01,
                                        annealing_steps=100, warmup_steps=20)
  values = [float(continuous_common.annealed_temperature(settings, step))
            for step in (0, 20, 70, 120, 1000)]
  np.testing.assert_allclose(values, [1.0, 1.0, 0.1, 0.01, 0.01], rtol=1e-6)
  constant = continuous_common.Settings(annealing_steps=0,
                                        initial_temperature=0.4)
  assert float(continuous_common.annealed_temperature(constant, 10**6)) == (
      pytest.approx(0.4))


def test_checkpoint_restores_identical_actions_and_training(tmp_path):
  game = pyspiel.load_game("python_vsg_differential(horizon=3)")
  environment = continuous_common.ContinuousEnvironment(game, seed=0)
  settings = dataclasses.replace(TINY, opponent_reward="estimated")
  assert_checkpoints_restore(
      lambda seed: mai.make_agents(environment.spec, settings, seed),
      environment,
      differential.step_one_hot(np.arange(3), 3), 3,
      tmp_path)


ROUTING = "python_vsg_routing(horizon=3,num_players=2)"


@pytest.mark.parametrize("game_string,overrides", [
    ("python_vsg_differential(horizon=3)", {"opponent_reward": "shared"}),
    (ROUTING, {}),
    (ROUTING, {"opponent_model": "empirical"}),
    (ROUTING, {"policy_form": "marginal"})])
def test_smoke_run_is_finite(game_string, overrides):
  game = pyspiel.load_game(game_string)
  environment = continuous_common.ContinuousEnvironment(game, seed=1)
  settings = dataclasses.replace(TINY, **overrides)
  agents = mai.make_agents(environment.spec, settings, seed=1)
  returns = play(environment, agents, 3)
  assert np.all(np.isfinite(returns))
  for agent in agents:
    losses = agent.train_step()
    assert all(np.isfinite(loss.numpy()) for loss in losses.values())
    assert agent.replay.size.numpy() == 9


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "batch_size must be >= 1"),
    ("discount", 1.5, r"discount must be in \[0, 1\]"),
    ("final_temperature", 0.0, "final_temperature must be finite and > 0"),
    ("opponent_reward", "oracle", "opponent_reward must be one of"),
    ("opponent_model", "exact", "opponent_model must be one of"),
    ("policy_form", "joint", "policy_form must be one of"),
    ("replay_capacity", 64, "replay_capacity must be >= batch_size"),
    ("hidden_sizes", (), "hidden_sizes must be one or more widths"),
])
def test_bad_settings_fail_naming_the_setting(field, value, message):
  with pytest.raises(ValueError, match=message):
    mai.Settings(**{field: value})
