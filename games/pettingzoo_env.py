"""The paper's continuous-action games as PettingZoo `ParallelEnv`s.

`differential.parallel_env(**params)` and `routing.parallel_env(**params)`
(PettingZoo's convention: a module-level `parallel_env` per environment) load
the OpenSpiel game with `params` and wrap its continuous interface
(`game.continuous_interface()`: sizes, the box-to-action map and the
`BatchedDifferentialEnv` or `BatchedRoutingEnv` of each episode) in the
`ContinuousParallelEnv` below, so that any library that trains on PettingZoo's
parallel API trains on the paper's games, in the environment the project's
continuous agents train in.

Agents are "player_0", ..., "player_{N-1}"; all act at every step.
  * Actions: each agent plays a box action u in [-1, 1]^d (float32, shape
    (d,)), the space the project's continuous agents act in, mapped by the
    interface's `to_game_actions`: d = 1 for the differential game, affinely
    onto [action_low, action_high]; d = P - 1 for the routing game on P
    paths, the split softmax(SPLIT_LOGIT_RANGE * u_1, ...,
    SPLIT_LOGIT_RANGE * u_{P-1}, 0) of the player's commodity.
  * Observations: the game's observation tensor, the Markov state, the same
    for every agent (both games have perfect information): the one-hot step
    (horizon + 1) for the differential game, followed by the one-hot demand
    regime (K) for the routing game; float32 in {0, 1}. `state()` returns it
    too.
  * Rewards: the game's stage rewards (the shared max(f1, f2) of the
    differential game, -C_i in the routing game).
  * Episodes end after `horizon` steps with every agent terminated (the
    horizon is part of the game, so `truncations` stay False).
  * Seeding: `reset(seed=s)` starts episode 0 of seed s, and each `reset()`
    without a seed the next episode k = 1, 2, ...; episode k is the
    interface's `environment(s, k)`, the continuous agents' training episode
    k with seed s (the routing game draws its regimes with a numpy Generator
    seeded by (s, k)). Before any seeded reset, s is drawn from the operating
    system's entropy. The differential game is deterministic.
  * Rendering: none; `render_mode` must be None.
"""

import gymnasium
import numpy as np
import pettingzoo
import pyspiel


class ContinuousParallelEnv(pettingzoo.ParallelEnv):
  """A PettingZoo `ParallelEnv` over a game's batched continuous interface.

  See the module docstring for the spaces, rewards and seeding.

  Attributes:
    game: the loaded OpenSpiel game (python_vsg_differential or
      python_vsg_routing: a game with `continuous_interface()`).
    possible_agents, agents: agent names; `agents` is empty before `reset`
      and after the last step.
    observation_spaces, action_spaces: one Box per agent (separate objects,
      so that each can be seeded on its own).
    state_space: the Box of `state()`.
  """

  def __init__(self, game, render_mode=None):
    """Args: a loaded python_vsg_differential or python_vsg_routing game, and
    the render mode (only None).

    Raises:
      ValueError: if `render_mode` is not None or the game has no continuous
        interface.
    """
    name = game.get_type().short_name
    if not hasattr(game, "continuous_interface"):
      raise ValueError(f"game must have a continuous_interface() (e.g. "
                       f"python_vsg_differential, python_vsg_routing), got "
                       f"{name}")
    if render_mode is not None:
      raise ValueError(f"render_mode must be None (the games have nothing to "
                       f"render), got {render_mode!r}")
    self.game = game
    self.render_mode = None
    self.metadata = {"name": f"{name}_v0", "render_modes": [],
                     "is_parallelizable": True}
    self.possible_agents = [f"player_{i}" for i in range(game.num_players())]
    self.agents = []
    self._interface = game.continuous_interface()
    self._action_size = self._interface.action_size
    observation_shape = (self._interface.observation_size,)
    self.observation_spaces = {
        agent: gymnasium.spaces.Box(0.0, 1.0, observation_shape, np.float32)
        for agent in self.possible_agents}
    self.action_spaces = {
        agent: gymnasium.spaces.Box(-1.0, 1.0, (self._action_size,),
                                    np.float32)
        for agent in self.possible_agents}
    self.state_space = gymnasium.spaces.Box(0.0, 1.0, observation_shape,
                                            np.float32)
    self._seed = None
    self._episode = 0
    self._env = None
    self._observation = None

  def observation_space(self, agent):
    """The Box of `agent`'s observations (the same object on every call)."""
    return self.observation_spaces[agent]

  def action_space(self, agent):
    """The Box [-1, 1]^d of `agent`'s actions (the same object every call)."""
    return self.action_spaces[agent]

  def reset(self, seed=None, options=None):
    """Starts an episode; returns ({agent: observation}, {agent: {}}).

    Args:
      seed: an int >= 0 to start episode 0 of that seed, or None for the
        next episode (module docstring).
      options: ignored (the games take no reset options).

    Raises:
      ValueError: if `seed` is not None or an int >= 0.
    """
    del options
    if seed is not None:
      if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
      self._seed, self._episode = int(seed), 0
    elif self._seed is None:
      self._seed = int(np.random.SeedSequence().entropy)
    self._env = self._interface.environment(self._seed, self._episode)
    self._episode += 1
    self._observation = self._env.reset()[0]
    self.agents = list(self.possible_agents)
    return ({agent: self._observation.copy() for agent in self.agents},
            {agent: {} for agent in self.agents})

  def step(self, actions):
    """Plays one step with every live agent's box action.

    Args:
      actions: {agent: array-like of shape (d,) in [-1, 1]} for every agent
        in `agents`.

    Returns:
      (observations, rewards, terminations, truncations, infos), each a dict
      over the agents that acted; rewards are Python floats.

    Raises:
      RuntimeError: before `reset` or after the episode ended.
      ValueError: if an agent's action is missing, unknown, of the wrong
        shape, or outside [-1, 1].
    """
    if not self.agents:
      raise RuntimeError("call reset() before step() and after an episode "
                         "ends")
    if set(actions) != set(self.agents):
      raise ValueError(f"actions must hold one action for each agent of "
                       f"{self.agents}, got {sorted(actions)}")
    box_actions = np.zeros((len(self.agents), self._action_size))
    for i, agent in enumerate(self.agents):
      action = np.asarray(actions[agent], dtype=np.float64)
      if action.shape != (self._action_size,):
        raise ValueError(f"the action of {agent} must have shape "
                         f"({self._action_size},), got {action.shape}")
      if not np.all((action >= -1.0) & (action <= 1.0)):
        raise ValueError(f"the action of {agent} must lie in [-1, 1], got "
                         f"{action}")
      box_actions[i] = action
    observations, rewards, done = self._env.step(
        self._interface.to_game_actions(box_actions)[None])
    self._observation = observations[0]
    agents = self.agents
    if done:
      self.agents = []
    return ({agent: self._observation.copy() for agent in agents},
            {agent: float(rewards[0, i]) for i, agent in enumerate(agents)},
            {agent: bool(done) for agent in agents},
            {agent: False for agent in agents},
            {agent: {} for agent in agents})

  def state(self):
    """The Markov state tensor: the current observation (see `state_space`).

    Raises:
      RuntimeError: before the first `reset`.
    """
    if self._observation is None:
      raise RuntimeError("call reset() before state()")
    return self._observation.copy()

  def render(self):
    """Renders nothing (`render_mode` is None); returns None."""
    return None


def parallel_env(game_name, render_mode=None, **params):
  """Loads `game_name` with `params` and returns its `ContinuousParallelEnv`.

  Ints given for float parameters are converted (parallel_env(demand=1)), the
  rest is checked by the game: an unknown parameter, a wrong type or a bad
  value raise the game's error (pyspiel.SpielError or ValueError) naming it.
  """
  defaults = {game_type.short_name: game_type.parameter_specification
              for game_type in pyspiel.registered_games()}[game_name]
  params = {key: float(value) if (isinstance(defaults.get(key), float)
                                  and type(value) is int) else value
            for key, value in params.items()}
  return ContinuousParallelEnv(pyspiel.load_game(game_name, params),
                               render_mode)
