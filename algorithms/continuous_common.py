"""What the continuous-action agents (MAI, MASQL, MADDPG, DDPG) share.

  * `Settings`: the settings the four agents share (MAI adds its own);
  * `play_episode`: the one episode loop of every agent;
  * `ContinuousEnvironment`: OpenSpiel-style `TimeStep`s over the continuous
    interface of the differential and routing games;
  * `MLP`, `Adam`, `polyak_update`, the squashed Gaussian
    (`squashed_gaussian`, `gaussian_head`) and `annealed_temperature`;
  * `ReplayBuffer`: transitions kept in TF variables, sampled inside the
    compiled update;
  * `ReplayAgent`: the `rl_agent.AbstractAgent` step protocol all four agents
    follow (OpenSpiel's DQN pattern), seeding and `tf.train.Checkpoint`
    save/restore.

Actions. Every agent acts in the box [-1, 1]^d (d = `action_size`), the range
of a tanh-squashed Gaussian; the game's continuous interface
(`game.continuous_interface()`, e.g. `differential.DifferentialContinuous`)
maps box actions to the game's actions.
"""

import contextlib
import dataclasses
import types

import numpy as np
from open_spiel.python import rl_agent
from open_spiel.python import rl_environment
import pyspiel
import tensorflow as tf

# The agents' checkpoint layout (one flat variable per network, flat Adam
# moments since 2). A run checkpointed in another layout cannot resume.
CHECKPOINT_FORMAT = 2
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
# (agent class, spec, settings, report) -> (the shared training step's
# tf.function, [the agent tracing it], the variables it was traced with);
# see `ReplayAgent._shared_step`.
_SHARED_STEPS = {}


@dataclasses.dataclass(frozen=True)
class Settings:
  """The settings the continuous-action agents share.

  All four agents use the same network sizes, optimiser and replay settings;
  the fields after `target_update_rate` apply only to the agents named. MAI
  adds its own (`mai.Settings`).

  Attributes:
    hidden_sizes: hidden layer widths of every network (ReLU MLPs).
    learning_rate: Adam step size of every network.
    batch_size: transitions per gradient update.
    replay_capacity: transitions the replay buffer keeps (the oldest are
      overwritten).
    warmup_steps: the first acting steps of an agent take uniform random box
      actions; gradient updates start after them.
    updates_per_step: gradient updates per environment step after warm-up.
    discount: gamma of the critics' targets.
    reward_scale: rewards are multiplied by this before learning; values and
      temperatures are in these scaled units.
    target_update_rate: tau of the Polyak averaging of target networks.
    initial_temperature: MAI, MASQL: alpha at the first step.
    final_temperature: MAI, MASQL: alpha after `annealing_steps`.
    annealing_steps: MAI, MASQL: after the warm-up, alpha decays
      geometrically from initial to final over this many acting steps, then
      stays; 0 keeps the initial one.
    exploration_noise: MADDPG, DDPG: standard deviation of the Gaussian noise
      added to the deterministic box action while training.
    jit_compile: compile the training step (action selection and update)
      with XLA: faster steps, at seconds of compilation on the first step,
      once per process for each agent class, spec and settings (the agents
      share the compiled step; the tests turn it off).

  The defaults are the differential game's; each game's continuous
  interface overrides a few (its `agent_settings`), with the reasons.
  """
  hidden_sizes: tuple = (64, 64)
  learning_rate: float = 1e-3
  batch_size: int = 128
  replay_capacity: int = 10_000
  warmup_steps: int = 1000
  updates_per_step: int = 1
  discount: float = 0.95
  reward_scale: float = 0.1
  target_update_rate: float = 0.01
  initial_temperature: float = 1.0
  final_temperature: float = 0.02
  annealing_steps: int = 3000
  exploration_noise: float = 0.1
  jit_compile: bool = True

  def __post_init__(self):
    object.__setattr__(self, "hidden_sizes",
                       tuple(int(size) for size in self.hidden_sizes))
    if not self.hidden_sizes or min(self.hidden_sizes) < 1:
      raise ValueError(f"hidden_sizes must be one or more widths >= 1, got "
                       f"{self.hidden_sizes}")
    for name in ("batch_size", "replay_capacity", "updates_per_step"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.replay_capacity < self.batch_size:
      raise ValueError(f"replay_capacity must be >= batch_size "
                       f"({self.batch_size}), got {self.replay_capacity}")
    for name in ("warmup_steps", "annealing_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
    for name in ("learning_rate", "reward_scale", "initial_temperature",
                 "final_temperature"):
      if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
        raise ValueError(f"{name} must be finite and > 0, got "
                         f"{getattr(self, name)}")
    if not 0.0 <= self.discount <= 1.0:
      raise ValueError(f"discount must be in [0, 1], got {self.discount}")
    if not 0.0 < self.target_update_rate <= 1.0:
      raise ValueError(f"target_update_rate must be in (0, 1], got "
                       f"{self.target_update_rate}")
    if not self.exploration_noise >= 0.0:
      raise ValueError(f"exploration_noise must be >= 0, got "
                       f"{self.exploration_noise}")


# ---------------------------------------------------------------------------
# The environment.


@dataclasses.dataclass(frozen=True)
class EnvironmentSpec:
  """What an agent is built for: player count and tensor sizes."""
  num_players: int
  observation_size: int
  action_size: int


class ContinuousEnvironment:
  """OpenSpiel-style time steps over a game's continuous interface.

  Plays one copy (batch size 1) of the environment that
  `game.continuous_interface()` builds for each episode. `step` takes the
  players' box actions, shape (num_players, action_size) in [-1, 1], and
  returns an `rl_environment.TimeStep` whose observations hold, for every
  player, the Markov-state tensor ("info_state"; the same for all: the games
  have perfect information) and the joint box action just played
  ("joint_action", shape (num_players, action_size); None at the first
  step): a decentralised agent sees the state, the others' actions and its
  own reward.

  Episode k's environment is seeded by (seed, k), so episode k is the same
  whether or not a run was resumed before it; `first_episode` is the index
  of the next `reset`.

  Raises:
    ValueError: if the game has no continuous interface.
  """

  def __init__(self, game, seed=0, first_episode=0):
    if not hasattr(game, "continuous_interface"):
      raise ValueError(f"game {game.get_type().short_name} has no "
                       f"continuous_interface(); the continuous agents need "
                       f"one (see games/differential.py)")
    self.game = game
    self.interface = game.continuous_interface()
    self.seed = int(seed)
    self.episodes_started = int(first_episode)
    self.num_players = self.interface.num_players
    self.horizon = self.interface.horizon
    self.spec = EnvironmentSpec(self.num_players,
                                self.interface.observation_size,
                                self.interface.action_size)
    self._env = None

  def to_game_actions(self, box_actions):
    """Box actions (..., N, d) -> the game's actions (the interface's map)."""
    return self.interface.to_game_actions(box_actions)

  def _time_step(self, observation, joint_action, rewards, last):
    observations = {
        "info_state": [observation] * self.num_players,
        "joint_action": joint_action,
        "legal_actions": [None] * self.num_players,
        "current_player": pyspiel.PlayerId.SIMULTANEOUS,
    }
    if rewards is None:
      return rl_environment.TimeStep(observations, None, None,
                                     rl_environment.StepType.FIRST)
    step_type = (rl_environment.StepType.LAST if last else
                 rl_environment.StepType.MID)
    discounts = [0.0 if last else 1.0] * self.num_players
    return rl_environment.TimeStep(observations, list(rewards), discounts,
                                   step_type)

  def reset(self):
    """Starts the next episode; returns its FIRST time step."""
    self._env = self.interface.environment(self.seed, self.episodes_started)
    self.episodes_started += 1
    return self._time_step(self._env.reset()[0], None, None, False)

  def step(self, box_actions):
    """Plays the joint box action (num_players, action_size)."""
    box_actions = np.asarray(box_actions, dtype=np.float32).reshape(
        self.num_players, self.spec.action_size)
    observation, rewards, done = self._env.step(
        self.to_game_actions(box_actions)[None])
    return self._time_step(observation[0], box_actions, rewards[0], done)


def play_episode(environment, agents, is_evaluation=False, trajectory=None):
  """One episode of every agent's `step` protocol on a
  `ContinuousEnvironment` (training unless `is_evaluation`); returns each
  player's return, shape (N,). With a list `trajectory`, appends each step's
  (Markov-state tensor (observation_size,), joint box action
  (num_players, action_size)) to it."""
  time_step = environment.reset()
  returns = np.zeros(environment.num_players)
  while True:
    outputs = [agent.step(time_step, is_evaluation) for agent in agents]
    if time_step.last():
      return returns
    actions = np.stack([output.action for output in outputs])
    if trajectory is not None:
      trajectory.append((time_step.observations["info_state"][0], actions))
    time_step = environment.step(actions)
    returns += time_step.rewards


# ---------------------------------------------------------------------------
# Networks and distributions.


class MLP(tf.Module):
  """A ReLU multilayer perceptron with a linear output layer.

  Weights are Glorot-uniform from the numpy Generator `rng`, biases zero.
  All of them live in one flat float32 variable (`variable`: the weights in
  layer order, then the biases), so that a compiled step captures one
  variable per network instead of two per layer: the per-call cost of a
  `tf.function` grows with its captured variables, and at these sizes it
  was a third of a training step (docs/design.md, "Tuning notes").
  `weights` and `biases` are views of it; a view of the biases can be
  assigned to.
  """

  def __init__(self, input_size, hidden_sizes, output_size, rng, name):
    super().__init__(name=name)
    sizes = [input_size, *hidden_sizes, output_size]
    self._weight_shapes = list(zip(sizes[:-1], sizes[1:]))
    weights = []
    for fan_in, fan_out in self._weight_shapes:
      limit = np.sqrt(6.0 / (fan_in + fan_out))
      weights.append(rng.uniform(-limit, limit, (fan_in, fan_out)))
    self._sizes = ([fan_in * fan_out for fan_in, fan_out in
                    self._weight_shapes] + sizes[1:])
    self.variable = tf.Variable(np.concatenate(
        [weight.ravel() for weight in weights]
        + [np.zeros(sum(sizes[1:]))]).astype(np.float32))

  def _split(self, flat):
    """(weights, biases) lists of the flat parameter vector."""
    pieces = tf.split(flat, self._sizes)
    layers = len(self._weight_shapes)
    return ([tf.reshape(piece, shape) for piece, shape in
             zip(pieces[:layers], self._weight_shapes)], pieces[layers:])

  def __call__(self, inputs):
    weights, biases = self._split(tf.convert_to_tensor(self.variable))
    hidden = inputs
    for layer, (weight, bias) in enumerate(zip(weights, biases)):
      hidden = tf.matmul(hidden, weight) + bias
      if layer < len(weights) - 1:
        hidden = tf.nn.relu(hidden)
    return hidden

  @property
  def weights(self):
    """The weight matrices (fan_in, fan_out), in layer order."""
    return self._split(self.variable)[0]

  @property
  def biases(self):
    """Views of the bias vectors (fan_out,) in layer order; each has an
    `assign` that writes into `variable`."""
    ends = np.cumsum(self._sizes)
    layers = len(self._weight_shapes)
    return [self.variable[end - size:end] for end, size in
            zip(ends[layers:], self._sizes[layers:])]

  @property
  def parameters(self):
    """The variables holding the weights and biases (one)."""
    return [self.variable]


class Adam(tf.Module):
  """Adam (Kingma & Ba, 2015) over a fixed list of variables.

  Written with plain variable ops, so that inside one `tf.function` the
  automatic control dependencies order every read of a variable by the
  losses before the update's write (Keras' optimiser escapes them, which
  makes non-XLA updates racy), and `tf.train.Checkpoint` saves the moments.
  The moments of all the variables are two flat vectors (`first_moments`,
  `second_moments`, the variables' entries in order): the update is
  elementwise, so this changes no number and keeps the captured variables
  of a compiled step few.
  """

  def __init__(self, variables, learning_rate, beta_1=0.9, beta_2=0.999,
               epsilon=1e-8):
    super().__init__(name="adam")
    self.trained = list(variables)
    self.learning_rate = learning_rate
    self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
    self._sizes = [int(np.prod(v.shape)) for v in self.trained]
    self.first_moments = tf.Variable(tf.zeros(sum(self._sizes)),
                                     trainable=False)
    self.second_moments = tf.Variable(tf.zeros(sum(self._sizes)),
                                      trainable=False)
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

  def apply(self, gradients):
    """One step; `gradients` in the order of the variables given."""
    self.iterations.assign_add(1)
    step = tf.cast(self.iterations, tf.float32)
    step_size = (self.learning_rate * tf.sqrt(1.0 - self.beta_2**step)
                 / (1.0 - self.beta_1**step))
    gradient = tf.concat([tf.reshape(g, (-1,)) for g in gradients], axis=0)
    first = self.first_moments.assign(
        self.beta_1 * self.first_moments + (1.0 - self.beta_1) * gradient)
    second = self.second_moments.assign(
        self.beta_2 * self.second_moments
        + (1.0 - self.beta_2) * tf.square(gradient))
    steps = tf.split(step_size * first / (tf.sqrt(second) + self.epsilon),
                     self._sizes)
    for variable, variable_step in zip(self.trained, steps):
      variable.assign_sub(tf.reshape(variable_step, variable.shape))


def polyak_update(target, source, rate):
  """target <- (1 - rate) * target + rate * source, variable by variable."""
  for target_variable, variable in zip(target.parameters, source.parameters):
    target_variable.assign((1.0 - rate) * target_variable + rate * variable)


def gaussian_head(outputs):
  """Splits network outputs (B, 2d) into the mean and log std (B, d) each; the
  log std is squashed into [LOG_STD_MIN, LOG_STD_MAX]."""
  mean, raw_log_std = tf.split(outputs, 2, axis=-1)
  log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (
      tf.tanh(raw_log_std) + 1.0)
  return mean, log_std


def squashed_gaussian(mean, log_std, noise):
  """The reparameterised sample a = tanh(mean + std * noise) in [-1, 1]^d and
  its log density log N(pre; mean, std) - sum log(1 - a^2), summed over the
  last axis. log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)) keeps it finite
  where tanh saturates."""
  pre_squash = mean + tf.exp(log_std) * noise
  log_normal = -0.5 * tf.square(noise) - log_std - 0.5 * np.log(2.0 * np.pi)
  log_jacobian = 2.0 * (np.log(2.0) - pre_squash
                        - tf.nn.softplus(-2.0 * pre_squash))
  return tf.tanh(pre_squash), tf.reduce_sum(log_normal - log_jacobian, axis=-1)


def squashed_gaussian_log_density(mean, log_std, actions):
  """log density of the squashed Gaussian at given actions in (-1, 1)^d
  (clipped 1e-6 inside the box), summed over the last axis."""
  actions = tf.clip_by_value(actions, -1.0 + 1e-6, 1.0 - 1e-6)
  pre_squash = tf.atanh(actions)
  noise = (pre_squash - mean) * tf.exp(-log_std)
  log_normal = -0.5 * tf.square(noise) - log_std - 0.5 * np.log(2.0 * np.pi)
  return tf.reduce_sum(log_normal - tf.math.log1p(-tf.square(actions)),
                       axis=-1)


def uniform_log_density(size):
  """log of the uniform density on the box [-1, 1]^size."""
  return -size * np.log(2.0)


def annealed_temperature(settings, step):
  """alpha at acting step `step` (a tensor): `initial_temperature` through
  the warm-up, then geometric annealing to `final_temperature` over the next
  `annealing_steps` steps."""
  if settings.annealing_steps == 0:
    return tf.constant(settings.initial_temperature, tf.float32)
  progress = tf.clip_by_value(
      tf.cast(step - settings.warmup_steps, tf.float32)
      / settings.annealing_steps, 0.0, 1.0)
  ratio = settings.final_temperature / settings.initial_temperature
  return settings.initial_temperature * tf.pow(ratio, progress)


def _columns(player, num_players, action_size):
  """(own, others) column indices of a joint box action (N d) in player
  order, of static sizes d and (N - 1) d; `player` a Python int or an int32
  scalar tensor (the shared training step passes it as an argument)."""
  own = player * action_size + tf.range(action_size)
  others = tf.range((num_players - 1) * action_size)
  others += action_size * tf.cast(others >= player * action_size, tf.int32)
  return own, others


def insert_own(own, others, player, action_size):
  """The joint box action (B, N d) in player order from the player's own
  (B, d) and the others' (B, (N-1) d); `player` an int or an int32 scalar
  tensor. A gather, so the values are exactly the inputs'."""
  # Joint column c is column c - player d of own if it is the player's,
  # else column c (c < player d) or c - d of others, after own's d columns.
  columns = tf.range(own.shape[-1] + others.shape[-1])
  begin = player * action_size
  order = tf.where(columns < begin, columns + action_size,
                   tf.where(columns < begin + action_size, columns - begin,
                            columns))
  return tf.gather(tf.concat([own, others], axis=-1), order, axis=-1)


def split_own(joint, player, action_size):
  """(own (B, d), others (B, (N-1) d)) of a joint box action (B, N d);
  `player` an int or an int32 scalar tensor."""
  own_columns, other_columns = _columns(player, joint.shape[-1] // action_size,
                                        action_size)
  return (tf.gather(joint, own_columns, axis=-1),
          tf.gather(joint, other_columns, axis=-1))


# ---------------------------------------------------------------------------
# Replay.


class ReplayBuffer(tf.Module):
  """A ring buffer of transitions in one TF variable.

  Row k packs (observation, joint box action, the agent's own reward, next
  observation, done). Keeping it in a variable lets the compiled update
  sample without leaving TensorFlow, one scatter stores a transition, and
  `tf.train.Checkpoint` saves it with the agent.
  """

  def __init__(self, capacity, spec):
    super().__init__(name="replay")
    self.capacity = capacity
    joint_size = spec.num_players * spec.action_size
    self.field_sizes = {"observation": spec.observation_size,
                        "joint_action": joint_size, "reward": 1,
                        "next_observation": spec.observation_size, "done": 1}
    self.row_size = sum(self.field_sizes.values())
    self.rows = tf.Variable(tf.zeros((capacity, self.row_size)),
                            trainable=False)
    self.size = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.next_index = tf.Variable(0, dtype=tf.int64, trainable=False)

  def add(self, row):
    """Stores one packed transition (see `pack`), overwriting the oldest
    when full."""
    self.rows.scatter_nd_update(tf.reshape(self.next_index, (1, 1)),
                                tf.reshape(row, (1, -1)))
    self.next_index.assign((self.next_index + 1) % self.capacity)
    self.size.assign(tf.minimum(self.size + 1, self.capacity))

  def pack(self, observation, joint_action, reward, next_observation, done):
    """One transition as the numpy row `add` stores."""
    return np.concatenate([
        np.reshape(observation, -1), np.reshape(joint_action, -1),
        [reward], np.reshape(next_observation, -1), [done]]).astype(np.float32)

  def sample(self, generator, batch_size):
    """A uniform batch (with replacement) as a dict of tensors; reward and
    done have shape (batch_size,)."""
    indices = generator.uniform((batch_size,), 0, self.size, dtype=tf.int64)
    fields = tf.split(tf.gather(self.rows, indices),
                      list(self.field_sizes.values()), axis=-1)
    batch = dict(zip(self.field_sizes, fields))
    batch["reward"] = batch["reward"][:, 0]
    batch["done"] = batch["done"][:, 0]
    return batch


# ---------------------------------------------------------------------------
# The agent protocol.


class ReplayAgent(rl_agent.AbstractAgent, tf.Module):
  """The step protocol of the continuous-action agents.

  `step(time_step)` follows OpenSpiel's DQN: it stores the transition that
  ended at `time_step` (the previous observation, the joint action now in
  `time_step.observations["joint_action"]`, the agent's own reward, this
  observation, done), picks the next action (uniform in the box during the
  `warmup_steps`, then the policy's sample), then takes `updates_per_step`
  gradient updates once the warm-up is over; one call of one graph function
  does all three (the insertion in place, then one XLA computation), and
  every agent of the same class, spec and settings in the process shares
  that graph and its compilation (`_shared_step`). It
  returns a `StepOutput` whose action is a box action of shape
  (action_size,) (None at the last step; probs is always None, the action
  space being continuous). With `is_evaluation=True` it stores and learns
  nothing and plays the policy's deterministic action.

  Subclasses provide `_policy_actions(observations, deterministic)` (a batch
  of box actions), `variable_groups()` and `losses(batch, ...)` (each loss
  by name and the variables it trains), `target_pairs()` (each target
  network with its source), `sample_noise(batch_size)` if the policy is
  stochastic, and the class attribute `stochastic_policy` (False where the
  learned policy is the deterministic action and the samples only add
  exploration noise); their constructors end with `build_training()`.
  `update()` is one gradient update and `train_step` its compiled form;
  `on_losses`, when set, is called with each update's losses (the compiled
  step then returns them too).
  With `settings.jit_compile` the update and the action selection are
  compiled with XLA. All randomness comes from `generator` (a
  `tf.random.Generator`) and the numpy Generator `init_rng` that
  initialises the weights, both seeded by (seed, player_id);
  `tf.train.Checkpoint(agent=agent)` saves everything: networks, optimiser,
  replay, generator and step counter.
  """

  def __init__(self, player_id, spec, settings, seed, name):
    tf.Module.__init__(self, name=name)
    self.player_id = int(player_id)
    if not 0 <= self.player_id < spec.num_players:
      raise ValueError(f"player_id must be in [0, {spec.num_players - 1}], "
                       f"got {player_id}")
    self.spec = spec
    self.settings = settings
    seeds = np.random.SeedSequence([int(seed), self.player_id])
    self.generator = tf.random.Generator.from_seed(
        int(seeds.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    self.init_rng = np.random.default_rng(seeds)
    self.replay = ReplayBuffer(settings.replay_capacity, spec)
    self.acting_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.train_step = tf.function(self.update,
                                  jit_compile=settings.jit_compile)
    # The training step's graph: the shared function of `_shared_step`,
    # traced once per (class, spec, settings) in a process; see there.
    self._concrete_step = None
    # Called with every update's losses dict when set (a run that records
    # training summaries); None keeps the losses inside the compiled step.
    self.on_losses = None
    # The player the training step's graph computes for: the Python int,
    # or while `_shared_step` traces, its int32 argument.
    self._player = self.player_id
    self._player_tensor = tf.constant(self.player_id, tf.int32)
    self._step_state = types.SimpleNamespace(variables=None, agent_steps={})
    self._no_row = tf.zeros((self.replay.row_size,))
    self._bools = (tf.constant(False), tf.constant(True))
    self._learning_starts = max(settings.warmup_steps, settings.batch_size)
    self._previous_observation = None
    self._steps_taken = None  # acting_steps on the host within an episode.

  def build_training(self):
    """Ends a subclass's constructor, once its networks exist: copies every
    source network into its target and builds `optimizer`, an `Adam` over
    the variables of `variable_groups()` in that order."""
    for target, source in self.target_pairs():
      polyak_update(target, source, 1.0)
    self.optimizer = Adam(
        [v for group in self.variable_groups().values() for v in group],
        self.settings.learning_rate)

  def loss_arguments(self):
    """The arguments of `losses` after the replay batch: a soft agent's
    (stochastic policy's) random draws and temperature alpha; none for a
    deterministic policy."""
    if not self.stochastic_policy:
      return ()
    return (self.sample_noise(self.settings.batch_size),
            annealed_temperature(self.settings, self.acting_steps))

  def update(self):
    """One gradient update: a replay batch, an Adam step on each variable
    group with the gradient of that group's own loss only (the other
    losses' gradients on it are discarded), then the target networks moved
    by Polyak averaging. Returns the losses."""
    batch = self.replay.sample(self.generator, self.settings.batch_size)
    arguments = self.loss_arguments()
    with tf.GradientTape(persistent=True) as tape:
      losses = self.losses(batch, *arguments)
    gradients = []
    for name, variables in self.variable_groups().items():
      gradients += tape.gradient(losses[name], variables)
    self.optimizer.apply(gradients)
    for target, source in self.target_pairs():
      polyak_update(target, source, self.settings.target_update_rate)
    return losses

  def td_loss(self, q_values, batch, next_values):
    """The critics' (soft) TD loss E_D[(Q - y)^2 / 2] with the fixed target
    y = reward_scale r + gamma (1 - done) V(s'), V(s') = `next_values`."""
    target = tf.stop_gradient(
        self.settings.reward_scale * batch["reward"]
        + self.settings.discount * (1.0 - batch["done"]) * next_values)
    return 0.5 * tf.reduce_mean(tf.square(q_values - target))

  def step(self, time_step, is_evaluation=False):
    """Stores the last transition, picks the next action, and learns."""
    observation = np.asarray(
        time_step.observations["info_state"][self.player_id],
        np.float32)[None]
    if is_evaluation:
      if time_step.last():
        return rl_agent.StepOutput(action=None, probs=None)
      return rl_agent.StepOutput(
          action=self.actions(observation, deterministic=True)[0],
          probs=None)
    if self._previous_observation is None:
      # Read once per episode, so that a restored checkpoint counts.
      self._steps_taken = int(self.acting_steps.numpy())
      row, store = self._no_row, False
    else:
      row, store = self.replay.pack(
          self._previous_observation, time_step.observations["joint_action"],
          time_step.rewards[self.player_id], observation,
          float(time_step.last())), True
    pick = not time_step.last()
    # The updates start once acting_steps (after this step's pick) reaches
    # the warm-up.
    self._steps_taken += pick
    learn = store and self._steps_taken >= self._learning_starts
    arguments = (row, observation, self._bools[store], self._bools[pick],
                 self._bools[learn])
    if learn and self.on_losses is not None:
      action, losses = self._agent_step(report=True)(*arguments)
      self.on_losses(losses)
    else:
      if self._concrete_step is None:
        self._concrete_step = self._agent_step(report=False)
      action = self._concrete_step(*arguments)[0]
    if time_step.last():
      self._previous_observation = None
      return rl_agent.StepOutput(action=None, probs=None)
    self._previous_observation = observation
    return rl_agent.StepOutput(action=action.numpy()[0], probs=None)

  def _networks(self):
    """Every network the training step uses, each once, in an order that is
    the same for every agent of a class: the agent's own networks in the
    order its constructor set them (lists in order), then the networks of
    team lists (other agents' networks, e.g. MASQL's `team_policies`) that
    are not its own, in player order."""
    networks = []
    for value in vars(self).values():
      for network in (value if isinstance(value, (list, tuple)) else
                      [value]):
        if isinstance(network, MLP) and all(network is not known
                                            for known in networks):
          networks.append(network)
    return networks

  def _variable_slots(self):
    """(owner, attribute) of every variable the training step reads or
    writes, except the generator's state; the order of `_step_variables`."""
    return ([(self, "acting_steps"), (self.replay, "rows"),
             (self.replay, "size"), (self.replay, "next_index"),
             (self.optimizer, "first_moments"),
             (self.optimizer, "second_moments"),
             (self.optimizer, "iterations")]
            + [(network, "variable") for network in self._networks()])

  @property
  def _step_variables(self):
    """The variables the training step reads or writes: the generator's
    state, then those of `_variable_slots`, in that order."""
    # Cached at the first step (the team lists are complete by then), in a
    # holder that checkpoints and `tf.Module.variables` do not walk.
    if self._step_state.variables is None:
      self._step_state.variables = tuple(
          [self.generator.state]
          + [getattr(owner, name) for owner, name in self._variable_slots()])
    return self._step_state.variables

  @contextlib.contextmanager
  def _bound(self, variables, player):
    """While a shared step traces: the agent computes with `variables` (the
    graph's arguments, in `_step_variables` order) for `player` instead of
    its own variables and player_id; restored after."""
    slots = self._variable_slots()
    saved = ([getattr(owner, name) for owner, name in slots],
             self.generator, self.optimizer.trained)
    replacement = {id(mine): theirs for mine, theirs in
                   zip(self._step_variables, variables)}
    try:
      for (owner, name), variable in zip(slots, variables[1:]):
        setattr(owner, name, variable)
      self.generator = tf.random.Generator(state=variables[0],
                                           alg=saved[1].algorithm)
      self.optimizer.trained = [replacement[id(variable)]
                                for variable in saved[2]]
      self._player = player
      yield
    finally:
      for (owner, name), variable in zip(slots, saved[0]):
        setattr(owner, name, variable)
      self.generator, self.optimizer.trained = saved[1], saved[2]
      self._player = self.player_id

  def _shared_step(self, report):
    """The training step's concrete function, shared by every agent of this
    class, spec and settings in the process.

    Its arguments are the agent's `_step_variables` (tf.Variables passed as
    arguments: another agent's of the same shapes reuse the trace), its
    player as an int32 scalar, and those of `_store_pick_and_learn`; it
    returns (actions, losses; the losses zeros unless `report`). So the
    tracing and the XLA compilation (seconds each) happen once per process,
    not once per agent and run. The replay insertion runs in place in the
    graph, then one XLA computation picks the action and learns: inserting
    inside XLA would copy the whole replay buffer at every step.
    """
    key = (type(self), self.spec, self.settings, report)
    if key not in _SHARED_STEPS:
      jit = self.settings.jit_compile

      def step(variables, player, row, observations, store, pick, learn):
        agent = tracing[0]
        with agent._bound(variables, player):  # pylint: disable=protected-access
          def add():
            agent.replay.add(row)
          tf.cond(store, add, lambda: None)
          actions, losses = tf.function(
              agent._pick_and_learn, jit_compile=jit,  # pylint: disable=protected-access
              autograph=False)(observations, pick, learn)
        return actions, (losses if report else {})

      tracing = [None]
      # The traced graph refers weakly to the variables it was traced with
      # (this agent's) and cannot be called once they are deleted: the
      # entry keeps them.
      _SHARED_STEPS[key] = (tf.function(step, autograph=False), tracing,
                            self._step_variables)
    function, tracing, _ = _SHARED_STEPS[key]
    tracing[0] = self
    try:
      return function.get_concrete_function(
          self._step_variables, self._player_tensor, *self._step_signature())
    finally:
      tracing[0] = None

  def _agent_step(self, report):
    """This agent's training step: a concrete function of the arguments of
    `_store_pick_and_learn`, returning (actions, losses; {} unless
    `report`). A small graph that calls the shared one (`_shared_step`)
    with this agent's variables and player as captures, so that a call
    passes five arguments, not every variable (argument matching is most
    of a call's Python cost); tracing it takes milliseconds."""
    if report not in self._step_state.agent_steps:
      shared = self._shared_step(report)
      variables, player = self._step_variables, self._player_tensor
      self._step_state.agent_steps[report] = tf.function(
          lambda *arguments: shared(variables, player, *arguments),
          autograph=False).get_concrete_function(*self._step_signature())
    return self._step_state.agent_steps[report]

  def _step_signature(self):
    """The specs of (row, observations, store, pick, learn)."""
    return (tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None, self.spec.observation_size), tf.float32),
            *[tf.TensorSpec((), tf.bool)] * 3)

  def _exploration_actions(self, observations):
    """Training actions: uniform during warm-up, then the policy's sample."""
    uniform = self.generator.uniform(
        (tf.shape(observations)[0], self.spec.action_size), -1.0, 1.0)
    actions = tf.cond(self.acting_steps < self.settings.warmup_steps,
                      lambda: uniform,
                      lambda: self._policy_actions(observations, False))
    self.acting_steps.assign_add(1)
    return actions

  def _pick_and_learn(self, observations, pick, learn):
    """Picks the next actions (B, action_size) if `pick` (else zeros), then
    takes `updates_per_step` updates if `learn`. Returns (actions, the last
    update's losses; zeros without `learn`)."""
    actions = tf.cond(
        pick, lambda: self._exploration_actions(observations),
        lambda: tf.zeros((tf.shape(observations)[0], self.spec.action_size)))

    def updates():
      for _ in range(self.settings.updates_per_step):
        losses = self.update()
      return losses

    losses = tf.cond(learn, updates, lambda: {
        name: tf.zeros(()) for name in self.variable_groups()})
    return actions, losses

  def actions(self, observations, deterministic=False):
    """Box actions (B, action_size) of the policy for observations (B, obs)
    as a numpy array; a sample, or the deterministic action (the mode)."""
    observations = tf.convert_to_tensor(observations, tf.float32)
    if deterministic:
      return self._deterministic_actions(observations).numpy()
    return self._sampled_actions(observations).numpy()

  @tf.function(input_signature=[tf.TensorSpec((None, None), tf.float32)])
  def _deterministic_actions(self, observations):
    return self._policy_actions(observations, True)

  @tf.function(input_signature=[tf.TensorSpec((None, None), tf.float32)])
  def _sampled_actions(self, observations):
    return self._policy_actions(observations, False)

  def save(self, path):
    """Writes a checkpoint; returns its path prefix."""
    return tf.train.Checkpoint(agent=self).write(path)

  def restore(self, path):
    """Restores a checkpoint written by `save`."""
    tf.train.Checkpoint(agent=self).read(path).assert_existing_objects_matched()


class DeterministicPolicyAgent(ReplayAgent):
  """What DDPG and MADDPG share: a deterministic policy mu(s) = tanh(MLP(s))
  in the box and a critic over `critic_action_size` action entries, each
  with a target copy moved by Polyak averaging, trained by the losses
  "critic" and "policy" of the subclass's `losses(batch)`. While training it
  plays mu(s) plus Gaussian noise of standard deviation
  `exploration_noise`, clipped to the box."""

  stochastic_policy = False

  def __init__(self, player_id, spec, settings, seed, name,
               critic_action_size):
    super().__init__(player_id, spec, settings, seed, name)
    observation_size = spec.observation_size
    hidden = settings.hidden_sizes
    rng = self.init_rng
    self.policy = MLP(observation_size, hidden, spec.action_size, rng,
                      "policy")
    self.target_policy = MLP(observation_size, hidden, spec.action_size, rng,
                             "target_policy")
    self.critic = MLP(observation_size + critic_action_size, hidden, 1, rng,
                      "critic")
    self.target_critic = MLP(observation_size + critic_action_size, hidden, 1,
                             rng, "target_critic")
    self.build_training()

  def variable_groups(self):
    """The variables each loss of `losses` trains, by loss name."""
    return {"critic": self.critic.parameters,
            "policy": self.policy.parameters}

  def target_pairs(self):
    return [(self.target_policy, self.policy),
            (self.target_critic, self.critic)]

  def _policy_actions(self, observations, deterministic):
    """mu_i(s), plus clipped Gaussian exploration noise unless
    deterministic."""
    actions = tf.tanh(self.policy(observations))
    if deterministic:
      return actions
    noise = self.settings.exploration_noise * self.generator.normal(
        tf.shape(actions))
    return tf.clip_by_value(actions + noise, -1.0, 1.0)
