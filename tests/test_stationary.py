"""Stationary discounted games: from arrays, from OpenSpiel, and evaluation.

The cyclic-game NashConv, policy values and best responses are checked
against an independent dense value iteration written here; a game built from
arrays against the same game written as an OpenSpiel Python game; and a table
of bad arrays against the errors they must raise.
"""

import numpy as np
import pyspiel
import pytest

import vsg_spiel
from vsg_spiel import core
from vsg_spiel import exploitability
from vsg_spiel.algorithms import correlated_vpg
from vsg_spiel.algorithms import zero_sum_vpg

# ----------------------------------------------------------------------------
# Random stochastic games and an independent value iteration.


def random_arrays(seed, num_players, num_states, num_actions, sparse=False):
  """Seeded (rewards, transitions, initial distribution) of a random game."""
  rng = np.random.default_rng(seed)
  joint = tuple(num_actions)
  rewards = rng.normal(size=(num_players, num_states) + joint)
  transitions = rng.exponential(size=(num_states,) + joint + (num_states,))
  if sparse:  # about half the next states impossible, one always possible
    transitions *= rng.random(transitions.shape) < 0.5
    transitions[..., 0] += 0.1
  transitions /= transitions.sum(axis=-1, keepdims=True)
  initial = rng.exponential(size=num_states)
  return rewards, transitions, initial / initial.sum()


def joint_weights(profile, skip=None):
  """prod_{j != skip} pi_j(a_j | s) as (S, A_1, ..., A_N), by broadcasting."""
  num_players = len(profile)
  weights = 1.0
  for player, policy in enumerate(profile):
    if player != skip:
      shape = [policy.shape[0]] + [1] * num_players
      shape[1 + player] = policy.shape[1]
      weights = weights * policy.reshape(shape)
  return weights


def value_iteration(rewards, transitions, discount, profile, tolerance=1e-15):
  """V_i^pi and max over player i's policies, by iterating Bellman operators
  to a fixed point (change below `tolerance`); returns (S, N) arrays."""
  num_players, num_states = rewards.shape[:2]
  sum_axes = tuple(range(1, num_players + 1))
  weights = joint_weights(profile)
  stage = (rewards * weights).sum(axis=tuple(range(2, num_players + 2))).T
  policy_transitions = (transitions * weights[..., None]).sum(axis=sum_axes)
  values = np.zeros((num_states, num_players))
  while True:
    new = stage + discount * policy_transitions @ values
    if np.abs(new - values).max() < tolerance:
      break
    values = new
  best = np.zeros((num_states, num_players))
  for player in range(num_players):
    others = joint_weights(profile, skip=player)
    others = np.broadcast_to(others, rewards.shape[1:])
    axes = tuple(1 + j for j in range(num_players) if j != player)
    own_rewards = (rewards[player] * others).sum(axis=axes)  # (S, A_i)
    own_transitions = (transitions * others[..., None]).sum(axis=axes)
    value = np.zeros(num_states)
    while True:
      new = (own_rewards + discount * own_transitions @ value).max(axis=1)
      if np.abs(new - value).max() < tolerance:
        break
      value = new
    best[:, player] = new
  return values, best


GAMES = [  # seed, players, states, actions, discount, sparse transitions
    (0, 2, 2, (2, 2), 0.9, False),
    (1, 2, 5, (3, 2), 0.8, True),
    (2, 3, 4, (2, 3, 2), 0.9, False),
    (3, 3, 8, (2, 2, 2), 0.95, True),
    (4, 4, 3, (2, 2, 2, 2), 0.7, False),
    (5, 2, 16, (4, 4), 0.9, True),
    (6, 1, 6, (3,), 0.9, False),  # a single-player MDP
    (7, 2, 3, (2, 2), 0.0, False),  # gamma = 0: the stage game alone
]


@pytest.mark.parametrize("seed, players, states, actions, discount, sparse",
                         GAMES)
def test_values_best_responses_and_nash_conv_equal_value_iteration(
    seed, players, states, actions, discount, sparse):
  assert_equal_to_value_iteration(seed, players, states, actions, discount,
                                  sparse)


@pytest.mark.parametrize("seed, players, states, actions, discount, sparse",
                         GAMES[:4])
def test_krylov_solves_equal_value_iteration(
    monkeypatch, seed, players, states, actions, discount, sparse):
  """Dense systems from `_KRYLOV_STATES` states are solved by GMRES first:
  with the threshold lowered to 1 every solve here takes that path."""
  monkeypatch.setattr(exploitability, "_KRYLOV_STATES", 1)
  assert_equal_to_value_iteration(seed, players, states, actions, discount,
                                  sparse)


@pytest.mark.parametrize("seed, players, states, actions, discount, sparse",
                         GAMES)
def test_numpy_path_equals_value_iteration_and_the_compiled_path(
    monkeypatch, seed, players, states, actions, discount, sparse):
  """Small games are evaluated by `stationary_kernel` (compiled); games
  beyond core.SMALL_VALUE_TENSOR_ENTRIES by numpy (one contraction per
  player, policy-iteration rounds batched over the players). With the
  threshold at 0 every game here takes the numpy path: it must equal value
  iteration, and the compiled path's numbers and best responses."""
  rewards, transitions, initial = random_arrays(seed, players, states,
                                                actions, sparse)
  compiled = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, discount,
                                              initial)
  assert compiled.value_tensor() is not None
  monkeypatch.setattr(core, "SMALL_VALUE_TENSOR_ENTRIES", 0)
  assert_equal_to_value_iteration(seed, players, states, actions, discount,
                                  sparse)
  numpy_path = vsg_spiel.MarkovGame.from_arrays(rewards, transitions,
                                                discount, initial)
  assert numpy_path.value_tensor() is None
  profile = vsg_spiel.random_profile(compiled, np.random.default_rng(seed))
  for function in (vsg_spiel.policy_values, vsg_spiel.deviation_gains,
                   vsg_spiel.one_shot_deviation_gains,
                   lambda *args: vsg_spiel.best_response_values(*args)[0]):
    np.testing.assert_allclose(function(numpy_path, profile),
                               function(compiled, profile), rtol=0,
                               atol=1e-12)
  for ours, theirs in zip(
      vsg_spiel.best_response_values(numpy_path, profile)[1],
      vsg_spiel.best_response_values(compiled, profile)[1]):
    np.testing.assert_array_equal(ours, theirs)


def test_krylov_solve_falls_back_to_lu_where_gmres_stalls():
  """A deterministic cycle longer than GMRES's iteration budget: GMRES
  cannot reach the residual, so the solve is LU's (exact)."""
  num_states, discount = 60, 0.99
  cycle = np.roll(np.eye(num_states), 1, axis=1)
  stage = np.arange(num_states, dtype=np.float64)
  assert exploitability._krylov_solve(  # pylint: disable=protected-access
      discount, cycle, stage) is None
  expected = np.linalg.solve(np.eye(num_states) - discount * cycle, stage)
  np.testing.assert_allclose(
      exploitability._solve_dense(  # pylint: disable=protected-access
          discount, cycle, stage), expected, rtol=1e-14)


def assert_equal_to_value_iteration(seed, players, states, actions, discount,
                                    sparse):
  rewards, transitions, initial = random_arrays(seed, players, states,
                                                actions, sparse)
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, discount,
                                           initial)
  assert mgame.stationary and mgame.horizon is None
  rng = np.random.default_rng(100 + seed)
  profiles = [vsg_spiel.uniform_profile(mgame),
              vsg_spiel.random_profile(mgame, rng),
              vsg_spiel.pure_profile(mgame, [rng.integers(n, size=states)
                                             for n in actions])]
  for profile in profiles:
    values, best = value_iteration(rewards, transitions, discount, profile)
    ours = vsg_spiel.policy_values(mgame, profile)
    np.testing.assert_allclose(ours, values, rtol=0, atol=1e-12)
    best_ours, responses = vsg_spiel.best_response_values(mgame, profile)
    np.testing.assert_allclose(best_ours, best, rtol=0, atol=1e-12)
    gains = vsg_spiel.deviation_gains(mgame, profile)
    np.testing.assert_allclose(gains, initial @ (best - values), rtol=0,
                               atol=1e-12)
    assert vsg_spiel.nash_conv(mgame, profile) == pytest.approx(
        np.sum(initial @ (best - values)), abs=1e-12)
    assert np.all(gains >= -1e-12)
    # The returned best responses attain the best-response values.
    for player, response in enumerate(responses):
      deviation = list(profile)
      deviation[player] = np.eye(actions[player])[response]
      np.testing.assert_allclose(
          vsg_spiel.policy_values(mgame, deviation)[:, player],
          best[:, player], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed, players, states, actions, discount, sparse",
                         GAMES)
def test_one_shot_deviation_gains_equal_a_one_step_look_ahead(
    seed, players, states, actions, discount, sparse):
  rewards, transitions, initial = random_arrays(seed, players, states,
                                                actions, sparse)
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, discount,
                                           initial)
  profile = vsg_spiel.random_profile(mgame, np.random.default_rng(seed))
  values, best = value_iteration(rewards, transitions, discount, profile)
  expected = np.empty_like(values)
  for player in range(players):
    others = joint_weights(profile, skip=player)
    axes = tuple(1 + j for j in range(players) if j != player)
    look_ahead = ((rewards[player] + discount * transitions @ values[:, player])
                  * others).sum(axis=axes)  # (S, A_i)
    expected[:, player] = look_ahead.max(axis=1) - values[:, player]
  gains = vsg_spiel.one_shot_deviation_gains(mgame, profile)
  np.testing.assert_allclose(gains, expected, rtol=0, atol=1e-12)
  # The one-shot deviation principle's bracket of the best-response gains.
  assert np.all(best - values >= gains - 1e-12)
  assert np.all(best - values <= gains.max(axis=0) / (1 - discount) + 1e-12)


def test_one_shot_deviation_gains_need_a_stationary_game():
  mgame = vsg_spiel.markov_game("matrix_rps")
  with pytest.raises(ValueError, match="needs a stationary game"):
    vsg_spiel.one_shot_deviation_gains(mgame,
                                       vsg_spiel.uniform_profile(mgame))


def test_nash_conv_is_zero_at_a_known_stationary_equilibrium():
  """Matching pennies in every state; the state advances when the actions
  match. Against a uniform opponent each player's action changes neither its
  expected payoff (0) nor the next-state distribution (a match with
  probability 1/2), so the uniform profile is a stationary equilibrium."""
  num_states = 3
  pennies = np.array([[1.0, -1.0], [-1.0, 1.0]])
  rewards = np.stack([np.broadcast_to(pennies, (num_states, 2, 2)),
                      np.broadcast_to(-pennies, (num_states, 2, 2))])
  transitions = np.zeros((num_states, 2, 2, num_states))
  for state in range(num_states):
    for a0 in range(2):
      for a1 in range(2):  # next state (s + [a0 == a1]) mod S
        transitions[state, a0, a1, (state + (a0 == a1)) % num_states] = 1.0
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.9,
                                           np.eye(num_states)[0])
  assert vsg_spiel.nash_conv(mgame, vsg_spiel.uniform_profile(mgame)) == (
      pytest.approx(0.0, abs=1e-12))
  np.testing.assert_allclose(vsg_spiel.one_shot_deviation_gains(
      mgame, vsg_spiel.uniform_profile(mgame)), 0.0, rtol=0, atol=1e-12)
  # A pure profile is not: the loser deviates and gains.
  assert vsg_spiel.nash_conv(mgame, vsg_spiel.pure_profile(mgame, [0, 0])) > 1


def test_legal_masks_restrict_best_responses():
  rewards, transitions, initial = random_arrays(11, 2, 4, (3, 3))
  legal = [np.ones((4, 3), bool), np.ones((4, 3), bool)]
  legal[0][:, 2] = False  # player 0 never has action 2
  legal[1][1] = [False, True, False]  # player 1 must play 1 at state 1
  rewards[0, :, 2] = 1e6  # tempting but illegal
  transitions[:, 2] = 0.0  # illegal rows need not be distributions
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.9, initial,
                                           legal=legal)
  profile = vsg_spiel.uniform_profile(mgame)
  _, responses = vsg_spiel.best_response_values(mgame, profile)
  assert not np.any(responses[0] == 2)
  # The illegal action's reward is not a one-shot deviation either.
  assert vsg_spiel.one_shot_deviation_gains(mgame, profile).max() < 1e3
  assert responses[1][1] == 1
  values, best = value_iteration(
      np.where(legal[0][None, :, :, None], rewards, -1e9), transitions, 0.9,
      profile)
  ours, _ = vsg_spiel.best_response_values(mgame, profile)
  np.testing.assert_allclose(ours[:, 0], best[:, 0], rtol=0, atol=1e-9)
  np.testing.assert_allclose(vsg_spiel.policy_values(mgame, profile), values,
                             rtol=0, atol=1e-12)


def test_epsilon_bound_is_discounted():
  rewards, transitions, initial = random_arrays(0, 2, 3, (2, 4))
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.75,
                                           initial)
  assert vsg_spiel.epsilon_bound(mgame, 0.1) == pytest.approx(
      0.1 * np.log(4) / 0.25, rel=1e-15)


# ----------------------------------------------------------------------------
# The same game as an OpenSpiel Python game with a cyclic state graph.

_ACTIONS = (2, 3)  # player 0 has 2 actions, player 1 has 3
_CYCLIC_DEFAULTS = {"seed": 0, "num_states": 4, "merge_states": False,
                    "max_game_length": 1000}
_CYCLIC_TYPE = pyspiel.GameType(
    short_name="python_vsg_test_cyclic",
    long_name="Python VSG test cyclic stochastic game",
    dynamics=pyspiel.GameType.Dynamics.SIMULTANEOUS,
    chance_mode=pyspiel.GameType.ChanceMode.EXPLICIT_STOCHASTIC,
    information=pyspiel.GameType.Information.PERFECT_INFORMATION,
    utility=pyspiel.GameType.Utility.GENERAL_SUM,
    reward_model=pyspiel.GameType.RewardModel.REWARDS,
    max_num_players=2,
    min_num_players=2,
    provides_information_state_string=False,
    provides_information_state_tensor=False,
    provides_observation_string=True,
    provides_observation_tensor=False,
    parameter_specification=_CYCLIC_DEFAULTS)


def cyclic_arrays(seed, num_states):
  """The test game's arrays, player 0's action 2 illegal (zero rows)."""
  rewards, transitions, initial = random_arrays(seed, 2, num_states, (3, 3),
                                                sparse=True)
  rewards[:, :, 2] = 0.0
  transitions[:, 2] = 0.0
  return rewards, transitions, initial


class CyclicGame(pyspiel.Game):
  """A stochastic game played until `max_game_length` decisions: chance
  draws the first state, both players move, chance draws the next state.
  The observation shows the state; with merge_states states 0 and 1 look the
  same (not Markov)."""

  def __init__(self, params=None):
    params = {**_CYCLIC_DEFAULTS, **(params or {})}
    self.arrays = cyclic_arrays(params["seed"], params["num_states"])
    self.merge_states = bool(params["merge_states"])
    super().__init__(_CYCLIC_TYPE, pyspiel.GameInfo(
        num_distinct_actions=3, max_chance_outcomes=params["num_states"],
        num_players=2, min_utility=-1e9, max_utility=1e9,
        max_game_length=params["max_game_length"]), params)

  def new_initial_state(self):
    return CyclicState(self)

  def make_py_observer(self, iig_obs_type=None, params=None):
    return CyclicObserver()


class CyclicState(pyspiel.State):
  """The current state of `CyclicGame` (-1 before the first draw)."""

  def __init__(self, game):
    super().__init__(game)
    self.state = -1
    self._last_actions = None
    self._decisions = 0
    self._returns = np.zeros(2)

  def current_player(self):
    if self.is_terminal():
      return pyspiel.PlayerId.TERMINAL
    if self.state < 0 or self._last_actions is not None:
      return pyspiel.PlayerId.CHANCE
    return pyspiel.PlayerId.SIMULTANEOUS

  def _legal_actions(self, player):
    return list(range(_ACTIONS[player]))

  def chance_outcomes(self):
    _, transitions, initial = self.get_game().arrays
    if self.state < 0:
      probabilities = initial
    else:
      probabilities = transitions[(self.state,) + self._last_actions]
    return [(int(s), float(p)) for s, p in enumerate(probabilities) if p > 0]

  def _apply_action(self, action):
    self.state = action
    self._last_actions = None

  def _apply_actions(self, actions):
    rewards = self.get_game().arrays[0]
    self._returns = self._returns + rewards[(slice(None), self.state) +
                                            tuple(actions)]
    self._last_actions = tuple(actions)
    self._decisions += 1

  def _action_to_string(self, player, action):
    return f"p{player}:{action}"

  def is_terminal(self):
    return self._decisions >= self.get_game().max_game_length()

  def returns(self):
    return list(self._returns)

  def observation(self):
    if self.get_game().merge_states and self.state in (0, 1):
      return "s=0|1"
    return f"s={self.state}"

  def __str__(self):
    return f"state {self.state} after {self._last_actions}"


class CyclicObserver:
  """Observation string only: the state, as `CyclicState.observation`."""

  def __init__(self):
    self.tensor = np.zeros(0, np.float32)
    self.dict = {}

  def set_from(self, state, player):
    del state, player

  def string_from(self, state, player):
    del player
    return state.observation()


pyspiel.register_game(_CYCLIC_TYPE, CyclicGame)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_openspiel_game_equals_the_game_from_arrays(seed):
  num_states, discount = 4, 0.9
  game = pyspiel.load_game("python_vsg_test_cyclic",
                           {"seed": seed, "num_states": num_states})
  from_game = vsg_spiel.MarkovGame.from_openspiel(game, stationary=True,
                                                  discount=discount)
  rewards, transitions, initial = cyclic_arrays(seed, num_states)
  legal = [np.ones((num_states, 3), bool), np.ones((num_states, 3), bool)]
  legal[0][:, 2] = False
  from_arrays = vsg_spiel.MarkovGame.from_arrays(rewards, transitions,
                                                 discount, initial, legal)
  assert from_game.stationary and from_game.horizon is None
  assert from_game.num_states == num_states and len(from_game.layers) == 1
  # Our state s is the OpenSpiel game's Markov state with key "s=<s>".
  order = np.array([from_game.state_keys.index(f"s={s}")
                    for s in range(num_states)])
  # Rewards are returns differences summed over chance: equal to rounding.
  np.testing.assert_allclose(from_game.rewards[:, order], from_arrays.rewards,
                             rtol=0, atol=1e-14)
  dense = from_game.transitions.toarray().reshape(
      (num_states, 9, num_states))[order][:, :, order]
  np.testing.assert_allclose(dense.reshape(transitions.shape), transitions,
                             rtol=0, atol=1e-15)
  np.testing.assert_allclose(from_game.initial_distribution[order], initial,
                             rtol=0, atol=1e-15)
  for mask, want in zip(from_game.legal_mask, legal):
    np.testing.assert_array_equal(mask[order], want)
  # The same NashConv for the same profile.
  profile = vsg_spiel.random_profile(from_arrays, np.random.default_rng(seed))
  inverse = np.argsort(order)
  game_profile = [policy[inverse] for policy in profile]
  np.testing.assert_allclose(
      vsg_spiel.deviation_gains(from_game, game_profile),
      vsg_spiel.deviation_gains(from_arrays, profile), rtol=0, atol=1e-12)
  # OpenSpiel policies map onto the stationary states.
  policy = vsg_spiel.to_policy(from_game, game_profile)
  for got, want in zip(vsg_spiel.from_policy(from_game, policy), game_profile):
    np.testing.assert_array_equal(got, want)


def test_non_markov_observation_is_rejected():
  game = pyspiel.load_game("python_vsg_test_cyclic", {"merge_states": True})
  with pytest.raises(ValueError, match="observation is not a Markov state.*"
                     "'s=0\\|1'"):
    vsg_spiel.MarkovGame.from_openspiel(game, stationary=True, discount=0.9)
  # A time limit the observation does not show, reached by the enumeration.
  with pytest.raises(ValueError, match="observation is not a Markov state"):
    vsg_spiel.MarkovGame.from_openspiel(
        pyspiel.load_game("markov_soccer", {"grid": ".OB\nAO.",
                                            "horizon": 4}),
        stationary=True, discount=0.9)
  # Keyed with the move number it is a (long) finite-horizon game instead.
  short = pyspiel.load_game("python_vsg_test_cyclic",
                            {"merge_states": True, "max_game_length": 2})
  assert vsg_spiel.MarkovGame.from_openspiel(short).horizon == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"discount": 1.0}, "discount of a stationary game"),
    ({"discount": -0.1}, "discount of a stationary game"),
    ({"discount": 0.9, "state_key": "history"}, "cannot be stationary"),
])
def test_stationary_openspiel_bad_arguments(kwargs, match):
  game = pyspiel.load_game("python_vsg_test_cyclic")
  with pytest.raises(ValueError, match=match):
    vsg_spiel.MarkovGame.from_openspiel(game, stationary=True, **kwargs)


def test_markov_soccer_stationary_equals_long_finite_horizon():
  """markov_soccer on a 2 x 3 grid: goals end the game, so rows of P lose
  mass and the state graph has cycles. The stationary values and deviation
  gains equal those of the move-number-keyed game cut at horizon H (backward
  induction) to within the truncation error 2 gamma^T / (1 - gamma), T the
  decisions of the cut game (rewards in [-1, 1])."""
  grid, horizon, discount = ".OB\nAO.", 10, 0.25
  stationary = vsg_spiel.MarkovGame.from_openspiel(
      pyspiel.load_game("markov_soccer", {"grid": grid, "horizon": 1000}),
      stationary=True, discount=discount)
  finite = vsg_spiel.MarkovGame.from_openspiel(
      pyspiel.load_game("markov_soccer", {"grid": grid, "horizon": horizon}),
      discount=discount)
  # OpenSpiel's horizon counts the first chance move: H - 1 decisions.
  assert stationary.num_states == 80 and finite.horizon == horizon - 1
  row_mass = np.asarray(stationary.transitions.sum(axis=1)).ravel()
  assert row_mass.min() == 0.0 and row_mass.max() == pytest.approx(1.0)
  # (move number, observation) -> the stationary state of the observation.
  index = [stationary.state_keys.index(key[1]) for key in finite.state_keys]
  profile = vsg_spiel.random_profile(stationary, np.random.default_rng(3))
  finite_profile = [policy[index] for policy in profile]
  truncation = 2 * discount**finite.horizon / (1 - discount)
  np.testing.assert_allclose(
      stationary.initial_distribution @ vsg_spiel.policy_values(
          stationary, profile),
      finite.initial_distribution @ vsg_spiel.policy_values(
          finite, finite_profile), rtol=0, atol=truncation)
  np.testing.assert_allclose(
      vsg_spiel.deviation_gains(stationary, profile),
      vsg_spiel.deviation_gains(finite, finite_profile), rtol=0,
      atol=truncation)
  assert vsg_spiel.nash_conv(stationary, profile) > 100 * truncation


def test_games_without_a_dense_tensor_give_the_same_numbers(monkeypatch):
  """Beyond core.DENSE_TRANSITION_ENTRIES a game from OpenSpiel keeps its
  transitions sparse only: its solves and policy iteration then take the
  sparse path, which must give the dense path's numbers."""
  game = pyspiel.load_game("markov_soccer", {"grid": ".OB\nAO.",
                                             "horizon": 1000})
  dense = vsg_spiel.MarkovGame.from_openspiel(game, stationary=True,
                                              discount=0.9)
  assert dense.transition_tensor() is not None  # built now, then kept
  monkeypatch.setattr(core, "DENSE_TRANSITION_ENTRIES", 0)
  sparse = vsg_spiel.MarkovGame.from_openspiel(game, stationary=True,
                                               discount=0.9)
  assert sparse.transition_tensor() is None
  profile = vsg_spiel.random_profile(dense, np.random.default_rng(5))
  for function in (vsg_spiel.policy_values, vsg_spiel.profile_deviation_gains,
                   vsg_spiel.one_shot_deviation_gains,
                   lambda *args: vsg_spiel.best_response_values(*args)[0]):
    np.testing.assert_allclose(function(sparse, profile),
                               function(dense, profile), rtol=0, atol=1e-12)


def test_finite_horizon_games_are_not_stationary():
  mgame = vsg_spiel.MarkovGame.from_openspiel(
      "python_iterated_prisoners_dilemma(max_game_length=3)")
  assert not mgame.stationary and mgame.horizon == 3
  assert [len(layer) for layer in mgame.layers] == [1, 4, 16]


# ----------------------------------------------------------------------------
# Bad arrays.

_R, _P, _MU = random_arrays(0, 2, 3, (2, 2))


def _with(array, index, value):
  array = np.array(array, dtype=np.float64)
  array[index] = value
  return array


def _rows_scaled(scale):
  transitions = _P.copy()
  transitions[1, 0, 1] *= scale
  return transitions


_OK = {"rewards": _R, "transitions": _P, "discount": 0.9,
       "initial_distribution": _MU, "legal": None}
BAD_ARRAYS = {
    "rewards not numeric": ({"rewards": np.full((2, 3, 2, 2), "x")},
                            "rewards must be a real numeric array"),
    "rewards complex": ({"rewards": _R + 1j}, "rewards must be real"),
    "rewards too few axes": ({"rewards": np.zeros((2, 3))},
                             r"rewards must have shape \(N, S"),
    "rewards players mismatch": ({"rewards": np.zeros((3, 3, 2, 2))},
                                 r"3 players"),
    "rewards nan": ({"rewards": _with(_R, (1, 2, 0, 1), np.nan)},
                    r"rewards\[1, 2, 0, 1\] is nan"),
    "rewards inf": ({"rewards": _with(_R, (0, 0, 1, 1), np.inf)},
                    r"rewards\[0, 0, 1, 1\] is inf"),
    "no states": ({"rewards": np.zeros((2, 0, 2, 2)),
                   "transitions": np.zeros((0, 2, 2, 0)),
                   "initial_distribution": np.zeros(0)},
                  "at least one state"),
    "transitions state count": ({"transitions": np.ones((2, 2, 2, 2)) / 2},
                                r"transitions must have shape "
                                r".*\(3, 2, 2, 3\)"),
    # rewards' own shape is consistent, but transitions (S first and last)
    # and initial_distribution agree on another S: rewards is at fault.
    "rewards state count": ({"rewards": np.zeros((2, 2, 2, 2))},
                            r"rewards must have shape \(N, S, A_1, ..., "
                            r"A_N\) = \(2, 3, 2, 2\) to match transitions"),
    "rewards action count": ({"rewards": np.zeros((2, 3, 2, 3)),
                              "legal": [np.ones((3, 2), bool)] * 2},
                             r"rewards must have shape .* = \(2, 3, 2, 2\)"),
    "transitions action count": ({"transitions": np.ones((3, 2, 3, 3)) / 3},
                                 r"transitions must have shape"),
    "transitions missing next-state axis": ({"transitions": _P[..., 0]},
                                            r"transitions must have shape"),
    "transitions negative": ({"transitions": _with(_P, (2, 1, 0, 0), -0.1)},
                             r"transitions\[2, 1, 0, 0\] = -0.1 is negative"),
    "transitions nan": ({"transitions": _with(_P, (0, 0, 0, 2), np.nan)},
                        r"transitions\[0, 0, 0, 2\] is nan"),
    "transitions row sum": ({"transitions": _rows_scaled(0.5)},
                            r"transitions at s=1, a_0=0, a_1=1 sums to"),
    "transitions row sum just off": (
        {"transitions": _rows_scaled(1 + 1e-7)}, "within 1e-09"),
    "discount one": ({"discount": 1.0}, r"discount .* \[0, 1\); got 1.0"),
    "discount negative": ({"discount": -0.5}, r"\[0, 1\); got -0.5"),
    "discount nan": ({"discount": float("nan")}, r"\[0, 1\); got nan"),
    "discount string": ({"discount": "0.9"}, r"\[0, 1\); got '0.9'"),
    "discount bool": ({"discount": True}, r"\[0, 1\); got True"),
    "initial shape": ({"initial_distribution": np.ones(4) / 4},
                      r"initial_distribution must have shape \(S,\) = \(3,\)"),
    "initial negative": ({"initial_distribution": [1.5, -0.5, 0.0]},
                         r"initial_distribution\[1\] = -0.5 is negative"),
    "initial sum": ({"initial_distribution": [0.5, 0.2, 0.2]},
                    "initial_distribution sums to 0.899"),
    "initial inf": ({"initial_distribution": [np.inf, 0, 0]},
                    r"initial_distribution\[0\] is inf"),
    "legal count": ({"legal": [np.ones((3, 2), bool)]},
                    r"one mask per player \(2\); got 1"),
    "legal shape": ({"legal": [np.ones((3, 2), bool), np.ones((3, 3), bool)]},
                    r"legal\[1\] must have shape \(S, A_1\) = \(3, 2\)"),
    "legal not boolean": ({"legal": [np.full((3, 2), 2), np.ones((3, 2))]},
                          r"legal\[0\] must be boolean"),
    "legal empty row": ({"legal": [np.ones((3, 2), bool),
                                   _with(np.ones((3, 2)), (2,), 0)]},
                        r"legal\[1\] has no legal action at state 2"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_arrays_raise_clear_errors(case):
  changes, match = BAD_ARRAYS[case]
  with pytest.raises(ValueError, match=match):
    vsg_spiel.MarkovGame.from_arrays(**{**_OK, **changes})


def test_good_arrays_pass_the_same_checks():
  mgame = vsg_spiel.MarkovGame.from_arrays(**_OK)
  assert (mgame.num_players, mgame.num_states, mgame.num_actions) == (
      2, 3, (2, 2))
  assert mgame.discount == 0.9 and mgame.current_player.tolist() == [-2] * 3


# ----------------------------------------------------------------------------
# VPG (exact planning) on stationary games.


def soft_value_iteration(rewards, transitions, discount, alpha, policies,
                         models, tolerance=1e-13):
  """Def. 5.1 of a 2-player stationary game by iterating its Bellman
  equation: V^i = E_{a_hat~rho^i, a~pi_i(.|s, a_hat)}[r^i/alpha - log pi_i +
  gamma E V^i]; policies (S, A_i, W) (W = 1: marginal), models (S, A_-i)."""
  values = np.zeros((rewards.shape[1], 2))
  while True:
    new = np.empty_like(values)
    for i in range(2):
      weights = policies[i] * models[i][:, None, :]  # (S, A_i, A_-i)
      own_rewards = rewards[i] if i == 0 else rewards[i].transpose(0, 2, 1)
      own_next = transitions if i == 0 else transitions.transpose(0, 2, 1, 3)
      with np.errstate(divide="ignore"):
        log_policy = np.where(policies[i] > 0, np.log(policies[i]), 0.0)
      new[:, i] = (weights * (own_rewards / alpha - log_policy + discount *
                              own_next @ values[:, i])).sum(axis=(1, 2))
    if np.abs(new - values).max() < tolerance:
      return new
    values = new


@pytest.mark.parametrize("policy_form", ["marginal", "conditional"])
def test_vpg_soft_values_equal_soft_value_iteration(policy_form):
  from vsg_spiel.algorithms import vpg  # pylint: disable=g-import-not-at-top
  rewards, transitions, initial = random_arrays(21, 2, 4, (3, 2))
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.8,
                                           initial)
  solver = vpg.VPGSolver(mgame, temperature=0.7, step=0.4,
                         policy_form=policy_form)
  for _ in range(3):
    solver.iteration()
  values = soft_value_iteration(
      rewards, transitions, 0.8, 0.7, solver.conditional_policies(),
      solver.joint_opponent_models())
  np.testing.assert_allclose(solver.soft_values(0.7), values, rtol=0,
                             atol=1e-11)
  assert np.ptp(values) > 1.0


def test_vpg_marginal_fixed_point_is_a_discounted_epsilon_nash():
  """Theorem 4.2, discounted: at VPG's fixed point (marginal form, exact
  models) every deviation gain is at most alpha log|A| / (1 - gamma)."""
  from vsg_spiel.algorithms import vpg  # pylint: disable=g-import-not-at-top
  rewards, transitions, initial = random_arrays(5, 3, 3, (2, 2, 3))
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.75,
                                           initial)
  alpha = 0.4
  solver = vpg.VPGSolver(mgame, temperature=alpha, step=0.5,
                         policy_form="marginal")
  for _ in range(200):
    solver.iteration()
  profile = solver.profile()
  # The fixed point: pi_i = softmax of the soft Q averaged over the others.
  q_values = solver.soft_q_values(alpha)
  models = solver.joint_opponent_models()
  for i, policy in enumerate(profile):
    logits = np.einsum("saj,sj->sa", q_values[i], models[i])
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(policy, softmax / softmax.sum(1, keepdims=True),
                               rtol=0, atol=1e-8)
  gains = vsg_spiel.deviation_gains(mgame, profile)
  epsilon = vsg_spiel.epsilon_bound(mgame, alpha)
  assert epsilon == pytest.approx(alpha * np.log(3) / 0.25)
  assert np.all(gains <= epsilon) and gains.max() > 1e-3


def test_vpg_rejects_what_stationary_games_do_not_support():
  from vsg_spiel.algorithms import vpg  # pylint: disable=g-import-not-at-top
  mgame = vsg_spiel.MarkovGame.from_arrays(*random_arrays(0, 2, 2, (2, 2))[:2],
                                           0.9, [1.0, 0.0])
  with pytest.raises(ValueError, match="variational.*stationary"):
    vpg.VPGSolver(mgame, opponent_model="variational")
  with pytest.raises(ValueError, match="episodes that end"):
    vpg.SampledVPGSolver(mgame)
  with pytest.raises(ValueError, match="stationary"):
    vpg.VPGSolver(mgame).elbo_gaps()


def test_openspiel_policies_are_read_at_each_stationary_state():
  """An OpenSpiel policy of a cyclic game is read once per Markov state (its
  histories are unbounded)."""
  from open_spiel.python import policy as policy_lib  # pylint: disable=g-import-not-at-top
  game = pyspiel.load_game("python_vsg_test_cyclic")
  mgame = vsg_spiel.MarkovGame.from_openspiel(game, stationary=True,
                                              discount=0.9)
  uniform = vsg_spiel.uniform_profile(mgame)
  assert vsg_spiel.nash_conv(
      mgame, policy_lib.UniformRandomPolicy(game)) == pytest.approx(
          vsg_spiel.nash_conv(mgame, uniform), abs=1e-12)
  with pytest.raises(ValueError, match="stationary: give a profile"):
    vsg_spiel.nash_conv(mgame, {"s=0": [(0, 1.0)]})


@pytest.mark.parametrize("solver", ["zero_sum", "correlated"])
def test_layered_only_solvers_refuse_stationary_games(solver):
  """Solvers that work by backward induction over the layers refuse a
  stationary game up front instead of doing one backward step."""
  rewards, transitions, initial = random_arrays(0, 2, 3, (2, 2))
  if solver == "zero_sum":
    rewards[1] = -rewards[0]
  mgame = vsg_spiel.MarkovGame.from_arrays(rewards, transitions, 0.9, initial)
  make = {"zero_sum": zero_sum_vpg.ZeroSumVPGSolver,
          "correlated": correlated_vpg.CorrelatedVPGSolver}[solver]
  with pytest.raises(ValueError, match="finite-horizon game.*stationary"):
    make(mgame)
