"""The paper's baselines: MASQL, MADDPG and independent DDPG."""

import dataclasses
import gc

import numpy as np
import pyspiel
import pytest
import tensorflow as tf

import vsg_spiel  # noqa: F401  (registers the games)
from vsg_spiel.algorithms import continuous_common
from vsg_spiel.algorithms import ddpg
from vsg_spiel.algorithms import maddpg
from vsg_spiel.algorithms import masql
from vsg_spiel.eval import continuous_runs
from vsg_spiel.eval import registry
from vsg_spiel.games import routing

from continuous_helpers import SPEC, assert_checkpoints_restore, mlp, play
from continuous_helpers import random_batch, randomise, squashed_sample
from continuous_helpers import to_tensors

MODULES = {"masql": masql, "maddpg": maddpg, "ddpg": ddpg}
TINY = continuous_common.Settings(
    hidden_sizes=(4,), batch_size=4, replay_capacity=16, warmup_steps=2,
    jit_compile=False, reward_scale=0.5, discount=0.9,
    target_update_rate=0.25, exploration_noise=0.3)
ALPHA = 0.3


def q(network, states, *actions):
  return mlp(network, np.concatenate([states, *actions], -1))[:, 0]


def td_loss(agent, batch, q_values, next_values):
  settings = agent.settings
  target = settings.reward_scale * batch["reward"] + settings.discount * (
      1 - batch["done"]) * next_values
  return 0.5 * np.mean((q_values - target)**2)


def reference_losses(name, agent, batch, noise):
  """The module docstrings' losses, two players, 1-D actions."""
  s, s_next = batch["observation"], batch["next_observation"]
  joint, player = batch["joint_action"], agent.player_id
  if name == "masql":
    def joint_sample(states, draws):
      samples = [squashed_sample(mlp(policy, states), draws[:, j])
                 for j, policy in enumerate(agent.team_policies)]
      return (np.concatenate([a for a, _ in samples], -1),
              samples[player][1])
    next_joint, next_log_pi = joint_sample(s_next, noise["next_joint"])
    critic = td_loss(agent, batch, q(agent.critic, s, joint),
                     q(agent.target_critic, s_next, next_joint)
                     - ALPHA * next_log_pi)
    sampled, log_pi = joint_sample(s, noise["joint"])
    policy = np.mean(ALPHA * log_pi - q(agent.critic, s, sampled))
  elif name == "maddpg":
    next_joint = np.concatenate([np.tanh(mlp(p, s_next))
                                 for p in agent.team_target_policies], -1)
    critic = td_loss(agent, batch, q(agent.critic, s, joint),
                     q(agent.target_critic, s_next, next_joint))
    own = np.tanh(mlp(agent.policy, s))
    with_own = joint.copy()
    with_own[:, [player]] = own
    policy = -np.mean(q(agent.critic, s, with_own))
  else:
    critic = td_loss(agent, batch, q(agent.critic, s, joint[:, [player]]),
                     q(agent.target_critic, s_next,
                       np.tanh(mlp(agent.target_policy, s_next))))
    policy = -np.mean(q(agent.critic, s, np.tanh(mlp(agent.policy, s))))
  return {"critic": critic, "policy": policy}


def agent_losses(name, agent, batch, noise):
  batch = to_tensors(batch)
  if name == "masql":
    noise = to_tensors(noise)
    return agent.losses(batch, noise, ALPHA)
  return agent.losses(batch)


def team_and_data(name, player, seed):
  rng = np.random.default_rng(seed)
  agents = MODULES[name].make_agents(SPEC, TINY, seed=seed)
  randomise(agents, rng)
  noise = {key: rng.normal(size=(4, 2, 1)).astype(np.float32)
           for key in ("joint", "next_joint")}
  return agents[player], random_batch(rng), noise


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("player", [0, 1])
def test_losses_match_the_formulas(name, player):
  agent, batch, noise = team_and_data(name, player, seed=player)
  got = agent_losses(name, agent, batch, noise)
  expected = reference_losses(name, agent, batch, noise)
  assert set(got) == set(expected)
  for loss, value in expected.items():
    np.testing.assert_allclose(got[loss].numpy(), value, rtol=2e-5,
                               atol=2e-5, err_msg=loss)


def test_ddpg_critic_by_hand():
  """All weights zero, output biases set: Q = 1.5, Qbar = -1, mu = tanh(0)
  = 0; the critic loss is 0.5 * mean((1.5 - (0.5 r + 0.9 (1 - done) (-1)))^2)
  and the policy loss -1.5."""
  agent = ddpg.make_agents(SPEC, TINY, seed=0)[0]
  for variable in agent.trainable_variables:
    variable.assign(tf.zeros_like(variable))
  agent.critic.biases[-1].assign([1.5])
  agent.target_critic.biases[-1].assign([-1.0])
  batch = {"observation": np.zeros((2, 3), np.float32),
           "joint_action": np.zeros((2, 2), np.float32),
           "reward": np.array([2.0, 4.0], np.float32),
           "next_observation": np.zeros((2, 3), np.float32),
           "done": np.array([0.0, 1.0], np.float32)}
  got = agent_losses("ddpg", agent, batch, None)
  targets = np.array([0.5 * 2.0 - 0.9, 0.5 * 4.0])
  np.testing.assert_allclose(got["critic"].numpy(),
                             0.5 * np.mean((1.5 - targets)**2), rtol=1e-6)
  np.testing.assert_allclose(got["policy"].numpy(), -1.5, rtol=1e-6)


@pytest.mark.parametrize("name", list(MODULES))
def test_each_loss_reaches_only_the_expected_variables(name):
  """The critic loss reaches only the critic (its target is held fixed);
  the policy loss reaches the policy and the critic (whose gradient the
  update discards), never the targets or the other agents' networks."""
  agent, batch, noise = team_and_data(name, 0, seed=3)
  team = (getattr(agent, "team_policies", [])
          + getattr(agent, "team_target_policies", []))
  own = (agent.policy, getattr(agent, "target_policy", None))
  others = [v for network in team if all(network is not o for o in own)
            for v in network.parameters]
  groups = {"critic": agent.critic.parameters,
            "policy": agent.policy.parameters,
            "target_critic": agent.target_critic.parameters,
            "others": others}
  if hasattr(agent, "target_policy"):
    groups["target_policy"] = agent.target_policy.parameters
  with tf.GradientTape(persistent=True) as tape:
    losses = agent_losses(name, agent, batch, noise)
  expected = {"critic": {"critic"}, "policy": {"policy", "critic"}}
  for loss_name, loss in losses.items():
    reached = {group for group, variables in groups.items() if variables and
               any(g is not None and np.any(g.numpy() != 0)
                   for g in tape.gradient(loss, variables))}
    assert reached == expected[loss_name], loss_name


@pytest.mark.parametrize("name", list(MODULES))
def test_update_moves_each_group_by_its_own_loss_only(name):
  rng = np.random.default_rng(4)
  teams = [MODULES[name].make_agents(SPEC, TINY, seed=5) for _ in range(2)]
  rows = rng.normal(size=(8, 10)).astype(np.float32)
  rows[:, 3:5] = np.tanh(rows[:, 3:5])
  rows[:, -1] = rows[:, -1] > 0
  for team in teams:
    for row in rows:
      team[0].replay.add(row)
  updated, twin = teams[0][0], teams[1][0]
  updated.update()
  batch = twin.replay.sample(twin.generator, TINY.batch_size)
  arguments = (batch,)
  if name == "masql":
    arguments = (batch, twin.sample_noise(TINY.batch_size),
                 continuous_common.annealed_temperature(TINY,
                                                        twin.acting_steps))
  gradients = []
  for loss_name, variables in twin.variable_groups().items():
    with tf.GradientTape() as tape:
      loss = twin.losses(*arguments)[loss_name]
    gradients += tape.gradient(loss, variables)
  twin.optimizer.apply(gradients)
  for group, variables in updated.variable_groups().items():
    for mine, theirs in zip(variables, twin.variable_groups()[group]):
      np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6,
                                 atol=1e-7, err_msg=group)


@pytest.mark.parametrize("name", list(MODULES))
def test_checkpoint_restores_identical_actions_and_training(name, tmp_path):
  """On the routing game (so also a smoke run there)."""
  game = pyspiel.load_game(
      "python_vsg_routing(horizon=3,num_players=2,network=parallel)")
  environment = continuous_common.ContinuousEnvironment(game, seed=0)
  returns = assert_checkpoints_restore(
      lambda seed: MODULES[name].make_agents(environment.spec, TINY, seed),
      environment,
      routing.step_regime_one_hot(np.arange(3), np.zeros(3, int), 3, 2), 2,
      tmp_path)
  assert np.all(np.isfinite(returns))


@pytest.mark.parametrize("name", list(MODULES))
def test_smoke_run_on_the_differential_game_is_finite(name):
  game = pyspiel.load_game("python_vsg_differential(horizon=3)")
  environment = continuous_common.ContinuousEnvironment(game, seed=1)
  agents = MODULES[name].make_agents(environment.spec, TINY, seed=1)
  returns = play(environment, agents, 2)
  assert returns.shape == (2, 2) and np.all(np.isfinite(returns))
  for agent in agents:
    losses = agent.train_step()
    assert all(np.isfinite(loss.numpy()) for loss in losses.values())


def test_deterministic_policies_add_clipped_exploration_noise():
  settings = dataclasses.replace(TINY, exploration_noise=5.0)
  agent = maddpg.make_agents(SPEC, settings, seed=2)[0]
  observations = np.zeros((500, 3), np.float32)
  mode = agent.actions(observations, deterministic=True)
  noisy = agent.actions(observations)
  assert np.all(mode == mode[0]) and np.all(np.abs(noisy) <= 1.0)
  assert np.mean(np.abs(noisy) == 1.0) > 0.5  # most draws clipped
  assert not agent.stochastic_policy and masql.MASQLAgent.stochastic_policy


def test_environment_maps_box_actions_and_seeds_regimes_per_episode():
  differential = continuous_common.ContinuousEnvironment(
      pyspiel.load_game("python_vsg_differential(horizon=2)"))
  np.testing.assert_allclose(
      differential.to_game_actions([[-1.0], [1.0]]), [-10.0, 10.0])
  first = differential.reset()
  assert first.first() and first.observations["joint_action"] is None
  step = differential.step([[0.5], [0.5]])
  np.testing.assert_allclose(step.rewards, [10.0, 10.0])  # (5, 5)
  np.testing.assert_array_equal(step.observations["joint_action"],
                                [[0.5], [0.5]])
  assert differential.step([[0.5], [0.5]]).last()

  game = pyspiel.load_game("python_vsg_routing(horizon=6)")
  splits = continuous_common.ContinuousEnvironment(game).to_game_actions(
      [[0.0, 0.0], [1.0, -1.0]])
  np.testing.assert_allclose(splits.sum(axis=-1), 1.0)
  np.testing.assert_allclose(splits[0], [1 / 3] * 3)
  share = np.exp(routing.RoutingContinuous.SPLIT_LOGIT_RANGE)
  np.testing.assert_allclose(splits[1], np.array([share, 1 / share, 1.0])
                             / (share + 1 / share + 1.0))

  def regimes(environment, episodes):
    seen = []
    for _ in range(episodes):
      time_step, path = environment.reset(), []
      while not time_step.last():
        path.append(np.argmax(time_step.observations["info_state"][0][7:]))
        time_step = environment.step(np.zeros((2, 2)))
      seen.append(path)
    return seen
  straight = regimes(continuous_common.ContinuousEnvironment(game, 3), 4)
  resumed = regimes(continuous_common.ContinuousEnvironment(
      game, 3, first_episode=2), 2)
  assert straight[2:] == resumed and straight[0] != straight[1]


class DummyGame:
  """A continuous game defined only by its interface, as a new game's module
  would write it: three players each pick a = 3 u in [-3, 3] (u the box
  action, d = 1) for 2 steps; each is paid -(a - mean of the others)^2, a
  coordination game; the observation is the one-hot step."""

  def continuous_interface(self):
    return DummyInterface()


class DummyEnvironment:

  def reset(self):
    self.step_index = 0
    return np.eye(3, dtype=np.float32)[[0]]

  def step(self, actions):
    actions = actions[0]  # (3,) for the batch of one.
    others = (actions.sum() - actions) / 2.0
    self.step_index += 1
    return (np.eye(3, dtype=np.float32)[[self.step_index]],
            -(actions - others)[None] ** 2, self.step_index == 2)


class DummyInterface:
  num_players, horizon, observation_size, action_size = 3, 2, 3, 1
  agent_settings = {}

  def environment(self, seed, episode):
    del seed, episode
    return DummyEnvironment()

  def to_game_actions(self, box_actions):
    return 3.0 * np.asarray(box_actions, np.float64)[..., 0]

  def evaluate(self, policies, samples, grid):
    del samples, grid
    observations = np.eye(3, dtype=np.float32)[:2]
    box = np.stack([policy.actions(observations, deterministic=True)
                    for policy in policies], axis=1)
    return {"spread": float(np.ptp(self.to_game_actions(box), axis=1).max())}


@pytest.mark.parametrize("name", ["mai", *MODULES])
def test_a_new_game_needs_only_its_continuous_interface(name):
  """Every agent trains and is evaluated through the game-agnostic adapter
  and runner on a game defined by its interface alone."""
  environment = continuous_common.ContinuousEnvironment(DummyGame(), seed=0)
  assert environment.spec == continuous_common.EnvironmentSpec(3, 3, 1)
  entry = registry.get(name, registry.CONTINUOUS)
  agents = entry.make(environment.spec, dataclasses.replace(
      entry.settings(), **{field.name: getattr(TINY, field.name)
                           for field in dataclasses.fields(TINY)}), seed=0)
  returns = play(environment, agents, 4)
  assert returns.shape == (4, 3) and np.all(returns <= 0.0)
  first = environment.reset()
  assert np.array_equal(first.observations["info_state"][0], [1, 0, 0])
  step = environment.step(np.array([[1.0], [0.0], [-1.0]]))
  np.testing.assert_allclose(step.rewards, [-20.25, 0.0, -20.25])
  final = continuous_runs.evaluate(environment, agents, samples=1)
  assert 0.0 <= final["spread"] <= 6.0


@pytest.mark.parametrize("player", [0, 1, 2])
def test_split_and_insert_own_columns_for_int_and_tensor_players(player):
  """The shared training graph passes the player as a tensor: the columns
  must be those of slicing, for an int and a tensor player alike."""
  joint = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 6))
  begin, end = 2 * player, 2 * player + 2
  for who in (player, tf.constant(player)):
    own, others = continuous_common.split_own(joint, who, 2)
    np.testing.assert_array_equal(own, joint[:, begin:end])
    np.testing.assert_array_equal(others, np.concatenate(
        [joint[:, :begin], joint[:, end:]], -1))
    np.testing.assert_array_equal(
        continuous_common.insert_own(own, others, who, 2), joint)


@pytest.mark.parametrize("name", ["mai", *MODULES])
def test_one_training_graph_serves_every_agent_and_run(name, monkeypatch):
  """The training step is traced once per class, spec and settings in a
  process and called with each agent's own variables: a run whose agents
  use the graph another run traced has the returns it has alone (a graph
  bound to the tracing agent's variables would train those instead), also
  once the tracing run's agents are deleted."""
  from vsg_spiel.algorithms import mai  # pylint: disable=g-import-not-at-top
  settings = (mai.Settings(**{
      field.name: getattr(TINY, field.name)
      for field in dataclasses.fields(TINY)}, importance_samples=2,
                           importance_states=2) if name == "mai" else TINY)
  game = pyspiel.load_game("python_vsg_differential(horizon=3)")
  make = registry.get(name, registry.CONTINUOUS).make

  def run(seed):
    environment = continuous_common.ContinuousEnvironment(game, seed)
    return play(environment, make(environment.spec, settings, seed), 3)

  monkeypatch.setattr(continuous_common, "_SHARED_STEPS", {})
  alone = run(1)
  monkeypatch.setattr(continuous_common, "_SHARED_STEPS", {})
  run(0)
  gc.collect()  # The tracing run's agents are gone; their graph must work.
  shared = run(1)
  (function, *_), = continuous_common._SHARED_STEPS.values()  # pylint: disable=protected-access
  assert function.experimental_get_tracing_count() == 1
  np.testing.assert_array_equal(shared, alone)
