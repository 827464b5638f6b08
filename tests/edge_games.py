"""Small OpenSpiel Python games at the edges of what the Markov-game core
holds (used by tests/test_core_edges.py; registered on import).

  * `python_vsg_test_solo_round`: round 1, both players choose 0 or 1
    (player 1 is paid 1 for choosing 0); round 2, only player 0 chooses (paid
    2 for 0, 0 for 1) while player 1 has no legal action.
  * `python_vsg_test_chance_exit`: a chance root that, with probability
    `exit_probability`, ends the game at once paying `exit_reward` to player
    0; otherwise it pays `entry_reward` to player 1 and matching pennies
    follows (player 0 is paid +1 on a match, -1 otherwise; player 1 the
    opposite).
"""

import numpy as np
import pyspiel

_PARAMS_SOLO = {}
_PARAMS_EXIT = {"exit_probability": 0.5, "exit_reward": 1.0,
                "entry_reward": 0.0}


def _game_type(short_name, chance_mode, parameters):
  return pyspiel.GameType(
      short_name=short_name,
      long_name=short_name,
      dynamics=pyspiel.GameType.Dynamics.SIMULTANEOUS,
      chance_mode=chance_mode,
      information=pyspiel.GameType.Information.PERFECT_INFORMATION,
      utility=pyspiel.GameType.Utility.GENERAL_SUM,
      reward_model=pyspiel.GameType.RewardModel.REWARDS,
      max_num_players=2,
      min_num_players=2,
      provides_information_state_string=False,
      provides_information_state_tensor=False,
      provides_observation_string=False,
      provides_observation_tensor=False,
      provides_factored_observation_string=False,
      parameter_specification=parameters)


def _game_info(max_game_length, max_chance_outcomes=0):
  return pyspiel.GameInfo(
      num_distinct_actions=2, max_chance_outcomes=max_chance_outcomes,
      num_players=2, min_utility=-2.0, max_utility=3.0, utility_sum=None,
      max_game_length=max_game_length)


class _Observer:
  """Perfect information: the observation is the whole history."""

  def __init__(self, iig_obs_type, params):
    del params
    self.iig_obs_type = iig_obs_type
    self.tensor = None
    self.dict = {}

  def set_from(self, state, player):
    pass

  def string_from(self, state, player):
    del player
    return str(state.history())


class _State(pyspiel.State):
  """Shared bookkeeping: returns and the terminal flag."""

  def __init__(self, game):
    super().__init__(game)
    self._returns = np.zeros(2)
    self._rewards = np.zeros(2)
    self._over = False

  def is_terminal(self):
    return self._over

  def returns(self):
    return self._returns

  def rewards(self):
    return self._rewards

  def _pay(self, rewards):
    self._rewards = np.asarray(rewards, dtype=np.float64)
    self._returns = self._returns + self._rewards

  def _action_to_string(self, player, action):
    return f"p{player}:{action}"

  def __str__(self):
    return str(self.history())


class SoloRoundState(_State):

  def __init__(self, game):
    super().__init__(game)
    self._round = 1

  def current_player(self):
    return (pyspiel.PlayerId.TERMINAL if self._over else
            pyspiel.PlayerId.SIMULTANEOUS)

  def _legal_actions(self, player):
    return [] if (self._round == 2 and player == 1) else [0, 1]

  def _apply_actions(self, actions):
    if self._round == 1:
      self._pay([0.0, 1.0 if actions[1] == 0 else 0.0])
      self._round = 2
    else:
      self._pay([2.0 if actions[0] == 0 else 0.0, 0.0])
      self._over = True


class SoloRoundGame(pyspiel.Game):

  # pylint: disable-next=dangerous-default-value
  def __init__(self, params=_PARAMS_SOLO):
    super().__init__(_SOLO_TYPE, _game_info(2), params)

  def new_initial_state(self):
    return SoloRoundState(self)

  def make_py_observer(self, iig_obs_type=None, params=None):
    return _Observer(iig_obs_type, params)


class ChanceExitState(_State):

  def __init__(self, game, exit_probability, exit_reward, entry_reward):
    super().__init__(game)
    self._chance = True
    self._exit_probability = exit_probability
    self._exit_reward = exit_reward
    self._entry_reward = entry_reward

  def current_player(self):
    if self._over:
      return pyspiel.PlayerId.TERMINAL
    return (pyspiel.PlayerId.CHANCE if self._chance else
            pyspiel.PlayerId.SIMULTANEOUS)

  def _legal_actions(self, player):
    del player
    return [0, 1]

  def chance_outcomes(self):
    return [(0, 1.0 - self._exit_probability), (1, self._exit_probability)]

  def _apply_action(self, action):
    self._chance = False
    if action == 1:
      self._pay([self._exit_reward, 0.0])
      self._over = True
    else:
      self._pay([0.0, self._entry_reward])

  def _apply_actions(self, actions):
    match = 1.0 if actions[0] == actions[1] else -1.0
    self._pay([match, -match])
    self._over = True


class ChanceExitGame(pyspiel.Game):

  # pylint: disable-next=dangerous-default-value
  def __init__(self, params=_PARAMS_EXIT):
    params = {**_PARAMS_EXIT, **params}
    super().__init__(_EXIT_TYPE, _game_info(2, 2), params)
    self._exit_probability = float(params["exit_probability"])
    self._exit_reward = float(params["exit_reward"])
    self._entry_reward = float(params["entry_reward"])

  def new_initial_state(self):
    return ChanceExitState(self, self._exit_probability, self._exit_reward,
                           self._entry_reward)

  def make_py_observer(self, iig_obs_type=None, params=None):
    return _Observer(iig_obs_type, params)


_SOLO_TYPE = _game_type("python_vsg_test_solo_round",
                        pyspiel.GameType.ChanceMode.DETERMINISTIC,
                        _PARAMS_SOLO)
_EXIT_TYPE = _game_type("python_vsg_test_chance_exit",
                        pyspiel.GameType.ChanceMode.EXPLICIT_STOCHASTIC,
                        _PARAMS_EXIT)
pyspiel.register_game(_SOLO_TYPE, SoloRoundGame)
pyspiel.register_game(_EXIT_TYPE, ChanceExitGame)
