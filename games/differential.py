"""The differential game of the paper (section 5.1.2), from PR2 and MASQL.

Two players choose actions a1, a2 in [action_low, action_high] and both receive
the shared reward

  r(a1, a2) = max(f1, f2),
  f1 = height_1 * ( -((a1 - centre_1)/scale_1)^2 - ((a2 - centre_1)/scale_1)^2 )
  f2 = height_2 * ( -((a1 - centre_2)/scale_2)^2 - ((a2 - centre_2)/scale_2)^2 )
       + offset.

With the paper's constants the wide, low peak f1 has its top at (-5, -5) with
reward 0 (a local optimum) and the narrow, high peak f2 at (5, 5) with reward
10 (the global optimum); both are pure Nash equilibria. The stage game is
repeated for `horizon` steps; stages are stateless, so the Markov state is the
step index alone.

This module holds, side by side:
  * `DifferentialModel`: the numpy payoff model (vectorised);
  * `DifferentialGame` ("python_vsg_differential"): the OpenSpiel game on an
    evenly spaced action grid of `num_actions` points (both ends included),
    simultaneous moves, registered with pyspiel at the bottom;
  * `BatchedDifferentialEnv`: the continuous-action environment for the
    neural algorithms, batched over a leading dimension;
  * `DifferentialContinuous` (`DifferentialGame.continuous_interface()`):
    what the continuous-action algorithms and Figure 2a need of the game
    (sizes, the box-to-action map, observations, the final metrics).
On every grid point the three return the same reward.
"""

import dataclasses

import numpy as np

import pyspiel

from vsg_spiel import parameters

_NUM_PLAYERS = 2
_DEFAULT_PARAMS = {
    "action_low": -10.0,
    "action_high": 10.0,
    "num_actions": 41,
    "horizon": 25,
    "height_1": 0.8,
    "scale_1": 3.0,
    "centre_1": -5.0,
    "height_2": 1.0,
    "scale_2": 1.0,
    "centre_2": 5.0,
    "offset": 10.0,
}
# The stage payoff table holds num_actions^2 float64 values; raise this to
# load finer grids (the Markov-game core has its own limit, max_bytes).
MAX_PAYOFF_TABLE_BYTES = 2**30
# Returns (horizon x the largest |stage reward|) must stay below this.
MAX_RETURN = 1e300

_GAME_TYPE = pyspiel.GameType(
    short_name="python_vsg_differential",
    long_name="Python VSG Differential Game",
    dynamics=pyspiel.GameType.Dynamics.SIMULTANEOUS,
    chance_mode=pyspiel.GameType.ChanceMode.DETERMINISTIC,
    information=pyspiel.GameType.Information.PERFECT_INFORMATION,
    utility=pyspiel.GameType.Utility.IDENTICAL,
    reward_model=pyspiel.GameType.RewardModel.REWARDS,
    max_num_players=_NUM_PLAYERS,
    min_num_players=_NUM_PLAYERS,
    provides_information_state_string=True,
    provides_information_state_tensor=True,
    provides_observation_string=True,
    provides_observation_tensor=True,
    provides_factored_observation_string=False,
    parameter_specification=_DEFAULT_PARAMS)


@dataclasses.dataclass(frozen=True)
class DifferentialModel:
  """The shared reward max(f1, f2) of the differential game (numpy model)."""
  height_1: float = _DEFAULT_PARAMS["height_1"]
  scale_1: float = _DEFAULT_PARAMS["scale_1"]
  centre_1: float = _DEFAULT_PARAMS["centre_1"]
  height_2: float = _DEFAULT_PARAMS["height_2"]
  scale_2: float = _DEFAULT_PARAMS["scale_2"]
  centre_2: float = _DEFAULT_PARAMS["centre_2"]
  offset: float = _DEFAULT_PARAMS["offset"]

  def __post_init__(self):
    for name in ("scale_1", "scale_2"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

  def peaks(self, a1, a2):
    """Returns (f1, f2), the two quadratic peaks, broadcast over a1 and a2."""
    a1 = np.asarray(a1, dtype=np.float64)
    a2 = np.asarray(a2, dtype=np.float64)
    f1 = self.height_1 * (-((a1 - self.centre_1) / self.scale_1)**2
                          - ((a2 - self.centre_1) / self.scale_1)**2)
    f2 = self.height_2 * (-((a1 - self.centre_2) / self.scale_2)**2
                          - ((a2 - self.centre_2) / self.scale_2)**2)
    return f1, f2 + self.offset

  def reward(self, a1, a2):
    """Returns the shared reward max(f1, f2), broadcast over a1 and a2."""
    return np.maximum(*self.peaks(a1, a2))

  def payoff_matrix(self, grid):
    """Returns R[k1, k2] = reward(grid[k1], grid[k2]) for a 1-D action grid."""
    grid = np.asarray(grid, dtype=np.float64)
    return self.reward(grid[:, None], grid[None, :])

  @classmethod
  def from_params(cls, params):
    """Builds the model from the game's parameter dict."""
    return cls(**{field.name: float(params[field.name])
                  for field in dataclasses.fields(cls)})


def action_grid(action_low, action_high, num_actions):
  """Returns the evenly spaced action grid (both ends included) after checks."""
  num_actions = parameters.check_integer("num_actions", num_actions, 2)
  action_low = parameters.check_real("action_low", action_low)
  action_high = parameters.check_real("action_high", action_high)
  table_bytes = 8 * num_actions**2
  if table_bytes > MAX_PAYOFF_TABLE_BYTES:
    raise ValueError(
        f"num_actions={num_actions} needs a payoff table of {table_bytes} "
        f"bytes, more than MAX_PAYOFF_TABLE_BYTES={MAX_PAYOFF_TABLE_BYTES}: "
        f"use num_actions <= {int((MAX_PAYOFF_TABLE_BYTES / 8)**0.5)} or "
        "raise vsg_spiel.games.differential.MAX_PAYOFF_TABLE_BYTES")
  if not action_low < action_high:
    raise ValueError(f"action_low must be < action_high, got action_low="
                     f"{action_low}, action_high={action_high}")
  return np.linspace(action_low, action_high, num_actions)


def _check_horizon(horizon):
  parameters.check_integer("horizon", horizon, 1)


def _check_model_params(params):
  """Every payoff parameter finite; scales > 0."""
  for name in ("height_1", "centre_1", "height_2", "centre_2", "offset"):
    parameters.check_real(name, params[name])
  for name in ("scale_1", "scale_2"):
    parameters.check_real(name, params[name], 0.0, low_open=True)


def _check_returns(payoffs, horizon):
  """Raises unless horizon x max |stage reward| is finite and <= MAX_RETURN."""
  largest = float(np.max(np.abs(payoffs)))
  if not np.isfinite(largest) or largest * horizon > MAX_RETURN:
    raise ValueError(
        f"the stage rewards reach {largest:.3g}, so returns over horizon="
        f"{horizon} would exceed {MAX_RETURN:g}: lower offset, height_1, "
        "height_2 or the action range (action_low, action_high), or raise "
        "scale_1, scale_2")


def step_one_hot(steps, horizon):
  """Returns one-hot encodings (..., horizon + 1) of step indices 0..horizon."""
  return np.eye(horizon + 1, dtype=np.float32)[np.asarray(steps)]


class DifferentialGame(pyspiel.Game):
  """The differential game on an action grid; states and observers come here.

  Attributes:
    model: the `DifferentialModel`.
    action_values: (num_actions,) the grid; action k plays action_values[k].
    horizon: the number of steps.
    payoffs: (num_actions, num_actions) shared stage reward R[k1, k2].
  """

  # pylint:disable=dangerous-default-value
  def __init__(self, params=_DEFAULT_PARAMS):
    params = {**_DEFAULT_PARAMS, **params}
    _check_model_params(params)
    self.model = DifferentialModel.from_params(params)
    self.action_values = action_grid(params["action_low"],
                                     params["action_high"],
                                     params["num_actions"])
    _check_horizon(params["horizon"])
    self.horizon = int(params["horizon"])
    # The stage payoff table, read by every state: R[k1, k2].
    with np.errstate(over="ignore", invalid="ignore"):
      self.payoffs = self.model.payoff_matrix(self.action_values)
    _check_returns(self.payoffs, self.horizon)
    # Returns are accumulated step by step in floating point; the same
    # left-to-right sums of the extreme stage rewards bound them exactly
    # (rounding is monotone), which random_sim_test checks to the last bit.
    min_return = sum([float(self.payoffs.min())] * self.horizon)
    max_return = sum([float(self.payoffs.max())] * self.horizon)
    super().__init__(
        _GAME_TYPE,
        pyspiel.GameInfo(
            num_distinct_actions=len(self.action_values),
            max_chance_outcomes=0,
            num_players=_NUM_PLAYERS,
            min_utility=min_return,
            max_utility=max_return,
            utility_sum=None,
            max_game_length=self.horizon),
        params)

  def new_initial_state(self):
    """Returns the state at step 0."""
    return DifferentialState(self)

  def make_py_observer(self, iig_obs_type=None, params=None):
    """Returns the step-index observer.

    Stages are stateless, so the step index is the Markov state; it serves as
    the observation and, for every `iig_obs_type` (perfect recall included),
    as the information state.
    """
    del iig_obs_type
    return DifferentialObserver(self.horizon, params)

  def continuous_interface(self):
    """The game's continuous-action interface, a `DifferentialContinuous`."""
    return DifferentialContinuous(self)


class DifferentialState(pyspiel.State):
  """A state of the differential game: the index of the current step.

  The game's tables are read through `get_game()`: a cloned state is a deep
  copy, and a game object copied that way loses its Python attributes.
  """

  def __init__(self, game):
    """Constructor; should only be called by Game.new_initial_state."""
    super().__init__(game)
    self._horizon = game.horizon
    self._step = 0
    self._rewards = np.zeros(_NUM_PLAYERS)
    self._returns = np.zeros(_NUM_PLAYERS)

  @property
  def step(self):
    """The number of stages played so far (the current step index)."""
    return self._step

  def current_player(self):
    """Returns SIMULTANEOUS while steps remain, TERMINAL afterwards."""
    if self._step >= self._horizon:
      return pyspiel.PlayerId.TERMINAL
    return pyspiel.PlayerId.SIMULTANEOUS

  def _legal_actions(self, player):
    """Every grid point is legal for either player."""
    assert player >= 0
    return list(range(len(self.get_game().action_values)))

  def _apply_actions(self, actions):
    """Plays one stage: both players receive R[a1, a2]."""
    self._rewards = np.full(_NUM_PLAYERS,
                            self.get_game().payoffs[actions[0], actions[1]])
    self._returns = self._returns + self._rewards
    self._step += 1

  def _action_to_string(self, player, action):
    """Shows the continuous action value of the grid point."""
    del player
    return f"a={self.get_game().action_values[action]:.3f}"

  def is_terminal(self):
    """Returns True after `horizon` steps."""
    return self._step >= self._horizon

  def rewards(self):
    """The reward of the step just played (the same for both players)."""
    return self._rewards

  def returns(self):
    """The sum of rewards so far."""
    return self._returns

  def __str__(self):
    """The Markov state: the step index."""
    return f"t={self._step}"


class DifferentialObserver:
  """Observer of the step index, conforming to the PyObserver interface."""

  def __init__(self, horizon, params):
    if params:
      raise ValueError(f"Observation parameters not supported; passed {params}")
    self.tensor = np.zeros(horizon + 1, np.float32)
    self.dict = {"step": self.tensor}

  def set_from(self, state, player):
    """Writes the one-hot step index of `state` into `tensor`."""
    del player
    self.tensor.fill(0)
    self.tensor[state.step] = 1

  def string_from(self, state, player):
    """Returns "t=<step>"."""
    del player
    return str(state)


class BatchedDifferentialEnv:
  """Continuous-action differential game, batched over `batch_size` copies.

  `reset()` returns the observation (batch_size, horizon + 1), a one-hot step
  index as in the OpenSpiel game; `step(actions)` takes float actions of shape
  (batch_size, 2) in [action_low, action_high] and returns (observation,
  rewards of shape (batch_size, 2), done). The game is deterministic, so there
  is nothing to seed.
  """

  num_players = _NUM_PLAYERS

  def __init__(self, batch_size=1, horizon=_DEFAULT_PARAMS["horizon"],
               action_low=_DEFAULT_PARAMS["action_low"],
               action_high=_DEFAULT_PARAMS["action_high"], model=None):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_horizon(horizon)
    if not action_low < action_high:
      raise ValueError(f"action_low must be < action_high, got action_low="
                       f"{action_low}, action_high={action_high}")
    self.batch_size = batch_size
    self.horizon = horizon
    self.action_low = float(action_low)
    self.action_high = float(action_high)
    self.model = model or DifferentialModel()
    self.observation_size = horizon + 1
    self._step = None

  @classmethod
  def from_game(cls, game, batch_size=1):
    """The continuous version of a loaded python_vsg_differential game."""
    return cls(batch_size, game.horizon, game.action_values[0],
               game.action_values[-1], game.model)

  def _observation(self):
    return np.broadcast_to(step_one_hot(self._step, self.horizon),
                           (self.batch_size, self.observation_size)).copy()

  def reset(self):
    """Starts new episodes; returns the step-0 observations."""
    self._step = 0
    return self._observation()

  def step(self, actions):
    """Plays one stage with float actions of shape (batch_size, 2)."""
    if self._step is None or self._step >= self.horizon:
      raise RuntimeError("call reset() before step() and after an episode ends")
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != (self.batch_size, self.num_players):
      raise ValueError(f"actions must have shape {(self.batch_size, 2)}, got "
                       f"{actions.shape}")
    if not np.all((actions >= self.action_low) & (actions <= self.action_high)):
      raise ValueError(f"actions must lie in [action_low, action_high] = "
                       f"[{self.action_low}, {self.action_high}]")
    reward = self.model.reward(actions[:, 0], actions[:, 1])
    self._step += 1
    rewards = np.repeat(reward[:, None], self.num_players, axis=1)
    return self._observation(), rewards, self._step >= self.horizon


class DifferentialContinuous:
  """The differential game's continuous-action interface (Figure 2a).

  The attributes and methods every game's continuous interface provides
  (the routing game's `RoutingContinuous` is the other one):

    num_players, horizon, observation_size, action_size: sizes; agents act
      in the box [-1, 1]^action_size;
    agent_settings: the game's overrides of the continuous agents' default
      settings (names of `continuous_common.Settings`), tuned on it;
    figure: the learning-curve figure's file name, title, y label and lower
      y limit (None: automatic), and the summary table's caption;
    summary_metrics: (summary name, final-metric name, kind, table header)
      of the per-algorithm summary across seeds, in table order; kind
      "fraction" (the mean of a boolean), "spread" (mean and standard
      deviation) or "per_seed" (the list); no header: not in the table; the
      final-metric name None marks the mean training return of the last
      episodes, which the runner computes;
    config(): what, besides the game's parameters, determines a run's results;
    environment(seed, episode): the batch-1 environment of one training
      episode (its randomness seeded by (seed, episode));
    to_game_actions(box): box actions (..., N, d) -> the game's actions;
    curve(episode_returns): the learning curve's value per episode;
    evaluate(policies, samples, grid): the final metrics (JSON types) of
      trained policies; `grid` gives the grid game's Markov states
      (`grid.states`) and NashConv (`grid.nash_conv(profile)`), built on
      first use.

  Box actions map affinely onto [action_low, action_high]; the Markov state
  is the step index, one-hot. The evaluation plays the deterministic joint
  action (the policies' modes) at every step and reports whether it lies
  within OPTIMUM_RADIUS of the global optimum (5, 5) (or of the local one
  (-5, -5)) at every step, and at what fraction of the steps.
  """

  OPTIMUM_RADIUS = 1.0
  action_size = 1
  # Rewards span about [-100, 10]; scaled by 0.1 for learning. The players'
  # rewards are identical (the GameType says so), so MAI's agents know their
  # opponent's reward: it is their own ("shared"). The other settings are
  # the defaults (how they were chosen: docs/design.md, "Tuning notes").
  agent_settings = {"reward_scale": 0.1, "opponent_reward": "shared"}
  figure = {"file": "figure_2a_differential.png",
            "caption": "Figure 2a: differential game",
            "title": "Differential game (global optimum 10, local 0)",
            "ylabel": "reward per step", "ylim_bottom": -40}
  summary_metrics = (
      ("global_optimum_fraction", "global_optimum", "fraction",
       "global optimum (all steps)"),
      ("local_optimum_fraction", "local_optimum", "fraction",
       "local optimum (all steps)"),
      ("steps_at_global_optimum", "steps_at_global_optimum", "spread",
       "steps at the global optimum"),
      ("final_return", None, "spread", "final return"),
      ("deterministic_return", "deterministic_return", "spread",
       "deterministic return"),
      ("final_joint_actions", "mean_joint_action", "per_seed", None),
  )

  def __init__(self, game):
    self.game = game
    self.num_players = _NUM_PLAYERS
    self.horizon = game.horizon
    self.observation_size = game.horizon + 1
    self.low = float(game.action_values[0])
    self.high = float(game.action_values[-1])

  def config(self):
    """Nothing beyond the game's parameters determines a run."""
    return {}

  def environment(self, seed, episode):
    """A batch-1 `BatchedDifferentialEnv` (deterministic: seed and episode
    are unused)."""
    del seed, episode
    return BatchedDifferentialEnv.from_game(self.game)

  def to_game_actions(self, box_actions):
    """Box actions (..., N, 1) in [-1, 1] -> actions (..., N) in
    [action_low, action_high], affinely."""
    box_actions = np.asarray(box_actions, dtype=np.float64)
    return np.clip(
        self.low + (box_actions[..., 0] + 1.0) * (self.high - self.low) / 2.0,
        self.low, self.high)

  def curve(self, episode_returns):
    """The reward per step of each episode (player 0's; it is shared)."""
    return np.asarray(episode_returns)[:, 0] / self.horizon

  def evaluate(self, policies, samples, grid):
    """The deterministic joint action at every step (the modes of the
    policies: `policies[i].actions(observations, deterministic=True)`, box
    actions (B, 1)) and where it lies; `samples` and `grid` are unused."""
    del samples, grid
    observations = step_one_hot(np.arange(self.horizon), self.horizon)
    box = np.stack([policy.actions(observations, deterministic=True)
                    for policy in policies], axis=1)
    joint = self.to_game_actions(box)  # (T, 2)
    model = self.game.model
    global_distance = np.linalg.norm(joint - model.centre_2, axis=1)
    local_distance = np.linalg.norm(joint - model.centre_1, axis=1)
    return {
        "joint_actions": joint.tolist(),
        "mean_joint_action": joint.mean(axis=0).tolist(),
        "deterministic_return": float(
            model.reward(joint[:, 0], joint[:, 1]).sum()),
        "max_distance_to_global_optimum": float(global_distance.max()),
        "global_optimum": bool(global_distance.max() <= self.OPTIMUM_RADIUS),
        "local_optimum": bool(local_distance.max() <= self.OPTIMUM_RADIUS),
        "steps_at_global_optimum": float(np.mean(
            global_distance <= self.OPTIMUM_RADIUS)),
        "steps_at_local_optimum": float(np.mean(
            local_distance <= self.OPTIMUM_RADIUS)),
    }


def parallel_env(**params):
  """This game as a PettingZoo ParallelEnv with box actions (`pettingzoo_env`).

  Takes the game's parameters and `render_mode=None`; pettingzoo, an optional
  dependency (the `test` extra), is imported here, on use.
  """
  from vsg_spiel.games import pettingzoo_env  # pylint: disable=g-import-not-at-top
  return pettingzoo_env.parallel_env(_GAME_TYPE.short_name, **params)


# Register the game with the OpenSpiel library

pyspiel.register_game(_GAME_TYPE, DifferentialGame)
