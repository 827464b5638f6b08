"""A finite Markov game as numpy tensors, enumerated once from OpenSpiel.

`MarkovGame.from_openspiel(game)` walks a perfect-information OpenSpiel game
with simultaneous (or turn-based) moves and chance, and stores:

  * `num_states` decision states s, keyed by what identifies them: the public
    observation string together with the move number where the game provides
    observations (the observation of a perfect-information game is its state;
    the move number makes a finite-horizon state Markov), otherwise the
    action history;
  * `num_actions[i]`: player i's action count (OpenSpiel action ids, padded to
    `game.num_distinct_actions()`); `legal_mask[i][s, a]` marks legal ones. In a
    turn-based game the players not to move have the single action 0;
  * `rewards[i, s, a_1, ..., a_N]`: player i's expected reward from s under
    the joint action, chance resolved (returns accumulated up to the next
    decision state or the end);
  * `transitions`: a sparse matrix P[(s, a), s'] of the probability of the
    next decision state, chance resolved; the mass missing from a row is the
    probability that the game ends;
  * `initial_distribution[s]`: the probability that the first decision state
    is s (the mass missing is the probability that chance ends the game
    before any decision), and `initial_rewards[i]`: player i's expected
    return accrued before the first decision (including the plays that end
    there), so that a value at the start is
    `initial_rewards + initial_distribution @ values` (`start_values`);
  * `discount` and `horizon` (the most decisions on any play).

A player with no legal action at a simultaneous-move state does not act
there: it gets the single action 0 (which OpenSpiel takes for such a player
in `apply_actions`), as the players not to move in a turn-based game do.

Size. Before allocating, the enumeration estimates the bytes its tensors take
(rewards, transitions and the walk's bookkeeping grow with states x joint
actions, and the joint actions with num_distinct_actions^num_players) and
stops with that estimate, the limit `max_bytes` and the parameters to change,
at once for a game too wide for one state and as soon as the states found
exceed it.

States are numbered in move-number order, so every transition goes from one
layer to a later one and backward induction runs over `layers` in reverse.
All solvers and NashConv computations of the package work on these arrays.

A stationary game (`stationary=True`: `MarkovGame.from_arrays`, or
`from_openspiel(game, stationary=True, discount=gamma)` with states keyed by
the observation alone) is an infinite-horizon discounted game, gamma < 1,
whose state graph may have cycles. It has the same attributes with one layer
holding every state and `horizon` None; backward induction does not apply,
so code that walks `layers` must check `stationary` (the evaluation in
`vsg_spiel.exploitability` and VPG's exact planning solve linear systems).
"""

import collections
import itertools
import math

import numpy as np
import pyspiel
from scipy import sparse

from vsg_spiel import parameters

_SIMULTANEOUS = pyspiel.GameType.Dynamics.SIMULTANEOUS
_SEQUENTIAL = pyspiel.GameType.Dynamics.SEQUENTIAL
_ACCEPTED_INFORMATION = (pyspiel.GameType.Information.PERFECT_INFORMATION,
                         pyspiel.GameType.Information.ONE_SHOT)
DEFAULT_MAX_STATES = 200_000
DEFAULT_MAX_BYTES = 2 * 2**30
# Bytes per (state, joint action) while the tensors are built: a float64
# reward per player (twice: per state, then stacked), and the transition
# triplet as Python objects during the walk, then as arrays and CSR.
_BYTES_PER_ENTRY_PER_PLAYER = 16
_BYTES_PER_ENTRY = 160
# Stationary games: rows of `transitions` and the initial distribution must
# sum to 1 within this (games from arrays); two histories of one observation
# must agree to this (games from OpenSpiel).
PROBABILITY_TOLERANCE = 1e-9
# MarkovGame.transition_tensor: dense P up to this many entries (32 MiB).
DENSE_TRANSITION_ENTRIES = 2**22
# MarkovGame.value_tensor: built up to this many (padded) transition entries
# (2 MiB), where the evaluation is dominated by per-call overhead; the
# stationary evaluation of such games is compiled (`stationary_kernel`).
SMALL_VALUE_TENSOR_ENTRIES = 2**18
_MARKOV_TOLERANCE = 1e-12
# The Markov check of observation keys (`_Enumerator._check_markov`): other
# histories expanded per key, in a stationary game and in a finite one (where
# every key is checked this way, at about the cost of enumerating again).
_HISTORIES_CHECKED = 4
_HISTORIES_CHECKED_FINITE = 1


def describe_game(game):
  """`str(game)` for messages; for a game of `pyspiel.create_matrix_game` or
  `create_tensor_game`, whose string is OpenSpiel's placeholder
  "short_name()", its shape and maker instead."""
  text = str(game)
  if text != "short_name()":
    return text
  if isinstance(game, pyspiel.MatrixGame):
    return (f"{game.num_rows()}x{game.num_cols()} (from "
            "pyspiel.create_matrix_game)")
  if isinstance(game, pyspiel.TensorGame):
    return ("x".join(map(str, game.shape())) +
            " (from pyspiel.create_tensor_game)")
  return text


class MarkovGame:
  """Tensors of a finite N-player Markov game; see the module docstring."""

  def __init__(self, *, rewards, transitions, legal_mask, initial_distribution,
               layers, discount=1.0, game=None, state_key=None,
               state_keys=None, states=None, current_player=None,
               initial_rewards=None, stationary=False):
    self.rewards = np.asarray(rewards, dtype=np.float64)
    self.num_players = self.rewards.shape[0]
    self.num_states = self.rewards.shape[1]
    self.num_actions = tuple(self.rewards.shape[2:])
    if len(self.num_actions) != self.num_players:
      raise ValueError(
          f"rewards must have shape (num_players, num_states, A_1, ..., A_N); "
          f"got {self.rewards.shape}")
    self.num_joint_actions = int(np.prod(self.num_actions))
    self.transitions = sparse.csr_matrix(transitions)
    self.legal_mask = [np.asarray(mask, dtype=bool) for mask in legal_mask]
    self.initial_distribution = np.asarray(initial_distribution, np.float64)
    self.initial_rewards = (np.zeros(self.num_players)
                            if initial_rewards is None else
                            np.asarray(initial_rewards, dtype=np.float64))
    self.layers = [np.asarray(layer, dtype=np.int64) for layer in layers]
    self.stationary = bool(stationary)
    self._transition_tensor = None  # dense P, built on demand
    self._value_tensor = None  # [P | rewards], built on demand
    self._padded_legal_mask = None  # stacked legal masks, built on demand
    if self.stationary:
      self.discount = _check_stationary_discount(discount)
      if len(self.layers) != 1:
        raise ValueError(f"a stationary game has one layer holding every "
                         f"state; got {len(self.layers)} layers")
    else:
      self.discount = parameters.check_real("discount", discount, 0.0, 1.0,
                                            low_open=True)
    self.game = game
    self.state_key = state_key  # "observation" or "history" (from OpenSpiel)
    self.state_keys = state_keys
    self.states = states
    # pyspiel.PlayerId.SIMULTANEOUS (-2) at simultaneous nodes, else the mover.
    self.current_player = (np.full(self.num_states, -2)
                           if current_player is None
                           else np.asarray(current_player))
    self._index_of_key = (None if state_keys is None else
                          {key: index for index, key in enumerate(state_keys)})
    self._check_shapes()
    # Per-layer row blocks of P, sliced once: layer states are contiguous.
    self._layer_transitions = [
        self.transitions[layer[0] * self.num_joint_actions:
                         (layer[-1] + 1) * self.num_joint_actions]
        for layer in self.layers]
    # A stationary game's plays are unbounded: it has no horizon T.
    self.horizon = None if self.stationary else self._longest_play()
    self.max_legal_actions = max(int(mask.sum(axis=1).max())
                                 for mask in self.legal_mask)

  # --------------------------------------------------------------------------
  # Construction from OpenSpiel.

  @classmethod
  def from_openspiel(cls, game, *, state_key="auto", discount=1.0,
                     max_states=DEFAULT_MAX_STATES,
                     max_bytes=DEFAULT_MAX_BYTES, stationary=False):
    """Enumerates `game`'s decision states once and builds its tensors.

    Args:
      game: a pyspiel.Game (or a game string) with simultaneous or
        turn-based moves, perfect information (or one-shot) and finite plays.
      state_key: "observation" merges histories with the same move number and
        public observation string (the Markov state of a perfect-information
        game), "history" keeps every history apart (needed to evaluate
        policies that depend on the history, and where the observation does
        not show the whole state); "auto" takes "observation" where the game
        provides observation strings and the check below finds it Markov,
        else "history" (within the same max_states and max_bytes).
      discount: gamma per decision step; OpenSpiel's own tools evaluate
        undiscounted returns, so keep 1 when comparing with them.
      max_states: enumeration stops with an error past this many states.
      max_bytes: enumeration stops with an error (before allocating) once
        the estimated size of the tensors passes this many bytes.
      stationary: key states by the observation string alone (no move
        number), so that the state graph may have cycles, and treat the game
        as an infinite-horizon discounted game: needs observation strings and
        a discount in [0, 1). Each key's continuation is read from the first
        history that reaches it; a time limit that the observation does not
        show is not part of the stationary model.

    The Markov check (observation keys): the second history found reaching
    a key (in a stationary game up to 4 others, one per distinct
    `str(state)` and move number) is expanded one step and must agree with
    the key's first history (same mover, legal actions, rewards, ends and
    next-key distribution per joint action to 1e-12), else the observation
    is not Markov: a necessary check, not a proof. Pig's turn limit, for
    instance, is not in its observation.

    Raises:
      ValueError: the game is not a finite perfect-information Markov game,
        or it is larger than max_states or max_bytes, or (stationary) the
        discount is not in [0, 1) or the game provides no observation
        strings.
      NonMarkovObservationError (a ValueError): the observation is not a
        Markov state (state_key "observation", or "auto" when stationary),
        naming two histories that share a key and continue differently.
    """
    max_states = parameters.check_integer("max_states", max_states, 1)
    max_bytes = parameters.check_integer("max_bytes", max_bytes, 1)
    discount = (_check_stationary_discount(discount) if stationary else
                parameters.check_real("discount", discount, 0.0, 1.0,
                                      low_open=True))
    if isinstance(game, str):
      game = pyspiel.load_game(game)
    game_type = game.get_type()
    name = game_type.short_name
    if game_type.dynamics not in (_SIMULTANEOUS, _SEQUENTIAL):
      raise ValueError(
          f"{name} has {game_type.dynamics} dynamics; a Markov game needs "
          "simultaneous or turn-based moves (mean-field games are solved by "
          "vsg_spiel.algorithms.mf_bayesian_q)")
    if game_type.information not in _ACCEPTED_INFORMATION:
      raise ValueError(
          f"{name} has imperfect information ({game_type.information}): its "
          "players' information states are not Markov states, so it is not a "
          "Markov game; use a perfect-information or one-shot game")
    fallback = state_key == "auto" and not stationary
    if state_key == "auto":
      state_key = ("observation" if game_type.provides_observation_string
                   else "history")
    if state_key not in ("observation", "history"):
      raise ValueError(f"state_key must be 'auto', 'observation' or "
                       f"'history'; got {state_key!r}")
    if state_key == "observation" and not game_type.provides_observation_string:
      raise ValueError(f"{name} provides no observation strings; use "
                       "state_key='history'")
    if stationary and state_key != "observation":
      raise ValueError(
          f"a stationary game keys states by the observation string; "
          f"{name} with state_key={state_key!r} cannot be stationary")
    try:
      return _Enumerator(game, state_key, max_states, max_bytes,
                         stationary).build(cls, discount)
    except NonMarkovObservationError as not_markov:
      if not fallback:
        raise
      reason = not_markov
    try:
      return _Enumerator(game, "history", max_states, max_bytes,
                         False).build(cls, discount)
    except ValueError as too_large:
      raise ValueError(
          f"{reason}. Keying by history instead failed: {too_large}") from (
              too_large)

  # --------------------------------------------------------------------------
  # Vectorised Bellman pieces used by every solver.

  def expected_next(self, layer_index, values):
    """E_{s'~P(.|s,a)}[values[s']] for the states of one layer.

    Args:
      layer_index: index into `self.layers`.
      values: array (num_states, ...) of next-state values (0 at the end).

    Returns:
      Array (layer size, A_1, ..., A_N, ...) of expected next values.
    """
    layer_size = len(self.layers[layer_index])
    expected = self._layer_transitions[layer_index] @ values.reshape(
        self.num_states, -1)
    return expected.reshape((layer_size,) + self.num_actions +
                            values.shape[1:])

  @property
  def return_bound(self):
    """An upper bound on |return| of any play: the largest |reward| of one
    decision step times the most steps (times at most 1 / (1 - gamma))."""
    steps = (self.horizon if self.discount == 1.0 else
             1.0 / (1.0 - self.discount) if self.stationary else
             min(self.horizon, 1.0 / (1.0 - self.discount)))
    return float(np.abs(self.rewards).max(initial=0.0)) * steps

  def start_values(self, values):
    """Each player's expected return from the start of the game, given the
    players' values at every decision state (S, num_players):
    initial_rewards + initial_distribution @ values."""
    return self.initial_rewards + self.initial_distribution @ values

  def index_of(self, state):
    """The Markov state index of a decision state of `self.game`."""
    return self._index_of_key[key_of(self.state_key, state, self.stationary)]

  def _longest_play(self):
    """The most decision steps on any play: the T of Theorem 4.2."""
    steps_to_go = np.zeros(self.num_states, dtype=np.int64)
    for layer_index in reversed(range(len(self.layers))):
      block = self._layer_transitions[layer_index].tocoo()
      longest = np.zeros(block.shape[0], dtype=np.int64)
      np.maximum.at(longest, block.row, steps_to_go[block.col])
      longest = longest.reshape(len(self.layers[layer_index]), -1).max(axis=1)
      steps_to_go[self.layers[layer_index]] = 1 + longest
    return int(steps_to_go[self.initial_distribution > 0].max())

  def _check_shapes(self):
    num_states, joint = self.num_states, self.num_joint_actions
    if self.transitions.shape != (num_states * joint, num_states):
      raise ValueError(
          f"transitions must have shape ({num_states * joint}, {num_states})"
          f"; got {self.transitions.shape}")
    for player, mask in enumerate(self.legal_mask):
      if mask.shape != (num_states, self.num_actions[player]):
        raise ValueError(f"legal_mask[{player}] must have shape "
                         f"({num_states}, {self.num_actions[player]})")
      if not mask.any(axis=1).all():
        raise ValueError(
            f"legal_mask[{player}] has a state with no legal action; a "
            "player who does not act at a state has the single action 0")
    if self.initial_distribution.shape != (num_states,):
      raise ValueError("initial_distribution must have one entry per state")
    if self.initial_rewards.shape != (self.num_players,):
      raise ValueError("initial_rewards must have one entry per player")
    order = np.concatenate(self.layers)
    if not np.array_equal(order, np.arange(num_states)):
      raise ValueError("layers must list the states 0..S-1 in order")

  def __repr__(self):
    name = self.game.get_type().short_name if self.game else "arrays"
    return (f"MarkovGame({name}: {self.num_players} players, "
            f"{self.num_states} states, actions {self.num_actions}, "
            f"horizon {self.horizon}, discount {self.discount})")

  # --------------------------------------------------------------------------
  # Construction from arrays: a stationary discounted stochastic game.

  @classmethod
  def from_arrays(cls, rewards, transitions, discount, initial_distribution,
                  legal=None):
    """A stationary discounted N-player stochastic game from dense arrays.

    Every player moves at every state (simultaneous moves); the state graph
    may have cycles; values are discounted sums over an infinite horizon.

    Args:
      rewards: (N, S, A_1, ..., A_N) real array: rewards[i, s, a] is player
        i's expected reward at state s under the joint action a.
      transitions: (S, A_1, ..., A_N, S) array: transitions[s, a, s'] =
        P(s' | s, a); each row of a legal joint action sums to 1 within
        `PROBABILITY_TOLERANCE` (1e-9); all entries finite and >= 0.
      discount: gamma in [0, 1).
      initial_distribution: (S,) probabilities of the first state (sum 1
        within 1e-9).
      legal: None (every action legal) or N boolean arrays (S, A_i), each row
        with at least one legal action.

    Returns:
      A `MarkovGame` with `stationary=True`, one layer holding all states,
      `horizon=None` and `game=None`.

    Raises:
      ValueError: naming the array and the first offending index.
    """
    rewards, transitions, legal, initial, discount = _validated_arrays(
        rewards, transitions, discount, initial_distribution, legal)
    num_states = rewards.shape[1]
    mgame = cls(
        rewards=rewards,
        transitions=sparse.csr_matrix(transitions.reshape(-1, num_states)),
        legal_mask=legal,
        initial_distribution=initial,
        layers=[np.arange(num_states)],
        discount=discount,
        current_player=np.full(num_states, pyspiel.PlayerId.SIMULTANEOUS),
        stationary=True)
    mgame._transition_tensor = transitions  # pylint: disable=protected-access
    return mgame

  def transition_tensor(self):
    """P(s' | s, a) as a dense (S, A_1, ..., A_N, S) array: the one given to
    `from_arrays`, or built once from `transitions` when it has at most
    `DENSE_TRANSITION_ENTRIES` entries (else None)."""
    size = self.num_states**2 * self.num_joint_actions
    if self._transition_tensor is None and size > DENSE_TRANSITION_ENTRIES:
      return None
    if self._transition_tensor is None:
      self._transition_tensor = self.transitions.toarray().reshape(
          (self.num_states,) + self.num_actions + (self.num_states,))
    return self._transition_tensor


  def value_tensor(self):
    """[P | rewards] over padded joint actions, built once: (S, A^N, S + N)
    with A = max_i A_i, the joint actions (a_1, ..., a_N) in row-major
    order, row [s, a] = (P(. | s, a), r_1(s, a), ..., r_N(s, a)) and zero
    where some a_i >= A_i (a padded action). One contraction with the
    players' (zero-padded) policies gives both the induced transitions and
    the expected rewards. None unless `transition_tensor` is dense and the
    padded transitions have at most `SMALL_VALUE_TENSOR_ENTRIES` entries."""
    if self._value_tensor is None:
      tensor = self.transition_tensor()
      num_states, max_actions = self.num_states, max(self.num_actions)
      num_joint = max_actions**self.num_players
      if tensor is None or (num_states**2 * num_joint >
                            SMALL_VALUE_TENSOR_ENTRIES):
        return None
      combined = np.zeros((num_states,) + (max_actions,) * self.num_players +
                          (num_states + self.num_players,))
      actual = (slice(None),) + tuple(map(slice, self.num_actions))
      combined[actual + (slice(num_states),)] = tensor
      combined[actual + (slice(num_states, None),)] = np.moveaxis(
          self.rewards, 0, -1)
      self._value_tensor = combined.reshape(num_states, num_joint, -1)
    return self._value_tensor

  def padded_legal_mask(self):
    """The legal masks stacked, (N, S, A) bool with A = max_i A_i, False at
    padded actions; built once."""
    if self._padded_legal_mask is None:
      mask = np.zeros((self.num_players, self.num_states,
                       max(self.num_actions)), dtype=bool)
      for player, legal in enumerate(self.legal_mask):
        mask[player, :, :legal.shape[1]] = legal
      self._padded_legal_mask = mask
    return self._padded_legal_mask


def _check_stationary_discount(discount):
  return parameters.check_real("discount of a stationary game", discount,
                               0.0, 1.0, high_open=True)


def _real_array(name, values):
  """`values` as a float64 array; ValueError naming `name` otherwise."""
  array = np.asarray(values)
  if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or
                                   array.dtype == bool):
    raise ValueError(f"{name} must be a real numeric array; got dtype "
                     f"{array.dtype}")
  if np.iscomplexobj(array):
    raise ValueError(f"{name} must be real; got dtype {array.dtype}")
  array = array.astype(np.float64)
  bad = np.argwhere(~np.isfinite(array))
  if bad.size:
    index = tuple(int(i) for i in bad[0])
    raise ValueError(f"{name}{list(index)} is {array[index]}; entries must be "
                     "finite")
  return array


def _check_probabilities(name, array, rows, axis_names):
  """Entries >= 0 and rows (flagged by `rows`) summing to 1."""
  bad = np.argwhere(array < 0)
  if bad.size:
    index = tuple(int(i) for i in bad[0])
    raise ValueError(f"{name}{list(index)} = {float(array[index])!r} is "
                     "negative; "
                     "probabilities must be >= 0")
  sums = np.atleast_1d(array.sum(axis=-1))
  bad = np.argwhere(rows & (np.abs(sums - 1.0) > PROBABILITY_TOLERANCE))
  if bad.size:
    index = tuple(int(i) for i in bad[0])
    where = ", ".join(f"{axis}={i}" for axis, i in zip(axis_names, index))
    raise ValueError(f"{name}{' at ' + where if where else ''} sums to "
                     f"{float(sums[index])!r}; "
                     f"probabilities must sum to 1 within "
                     f"{PROBABILITY_TOLERANCE:g}")


def _rewards_at_fault(rewards_shape, transitions_shape, initial_distribution,
                      legal):
  """Whether a mismatch of rewards and transitions is rewards' fault:
  transitions is consistent in itself (the same S first and last, one
  action axis per player) and initial_distribution's length and legal's
  action counts (where given) side with it against rewards."""
  if (len(transitions_shape) != len(rewards_shape) or
      transitions_shape[0] != transitions_shape[-1]):
    return False
  num_states, num_actions = transitions_shape[0], transitions_shape[1:-1]
  witnesses = [(np.shape(initial_distribution), (num_states,),
                (rewards_shape[1],))]
  if legal is not None and len(legal) == len(num_actions):
    witnesses += [(np.shape(mask), (num_states, count),
                   (rewards_shape[1], rewards_shape[2 + player]))
                  for player, (mask, count) in
                  enumerate(zip(legal, num_actions))]
  return (all(shape == by_transitions for shape, by_transitions, _ in
              witnesses) and
          any(shape != by_rewards for shape, _, by_rewards in witnesses))


def _validated_arrays(rewards, transitions, discount, initial_distribution,
                      legal):
  """Checks the arrays of `MarkovGame.from_arrays`; returns them as float
  arrays (rewards, transitions, legal masks, initial distribution, gamma)."""
  _check_stationary_discount(discount)
  rewards = _real_array("rewards", rewards)
  if rewards.ndim < 3 or rewards.ndim != rewards.shape[0] + 2:
    raise ValueError(
        f"rewards must have shape (N, S, A_1, ..., A_N) with N >= 1 players; "
        f"got shape {rewards.shape} ({rewards.ndim} axes for "
        f"{rewards.shape[0] if rewards.ndim else 0} players)")
  num_players, num_states = rewards.shape[:2]
  num_actions = rewards.shape[2:]
  if num_states < 1 or min(num_actions) < 1:
    raise ValueError(f"rewards must have at least one state and one action "
                     f"per player; got shape {rewards.shape}")
  transitions = _real_array("transitions", transitions)
  expected = (num_states,) + num_actions + (num_states,)
  if transitions.shape != expected:
    if _rewards_at_fault(rewards.shape, transitions.shape,
                         initial_distribution, legal):
      raise ValueError(
          f"rewards must have shape (N, S, A_1, ..., A_N) = "
          f"{(len(transitions.shape) - 2,) + transitions.shape[:-1]} to "
          f"match transitions and initial_distribution (and legal); got "
          f"{rewards.shape}")
    raise ValueError(f"transitions must have shape (S, A_1, ..., A_N, S) = "
                     f"{expected} to match rewards (shape {rewards.shape}); "
                     f"got {transitions.shape}")
  if legal is None:
    legal = [np.ones((num_states, n), dtype=bool) for n in num_actions]
  else:
    if len(legal) != num_players:
      raise ValueError(f"legal must hold one mask per player ({num_players}); "
                       f"got {len(legal)}")
    masks = []
    for player, mask in enumerate(legal):
      mask = np.asarray(mask)
      if mask.shape != (num_states, num_actions[player]):
        raise ValueError(f"legal[{player}] must have shape (S, A_{player}) = "
                         f"{(num_states, num_actions[player])}; got "
                         f"{mask.shape}")
      if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError(f"legal[{player}] must be boolean (or 0/1)")
      mask = mask.astype(bool)
      empty = np.flatnonzero(~mask.any(axis=1))
      if empty.size:
        raise ValueError(f"legal[{player}] has no legal action at state "
                         f"{empty[0]}; every player needs at least one")
      masks.append(mask)
    legal = masks
  joint_legal = np.ones((num_states,) + num_actions, dtype=bool)
  for player, mask in enumerate(legal):
    shape = [num_states] + [1] * num_players
    shape[1 + player] = num_actions[player]
    joint_legal = joint_legal & mask.reshape(shape)
  _check_probabilities("transitions", transitions, joint_legal,
                       ["s"] + [f"a_{i}" for i in range(num_players)])
  initial = _real_array("initial_distribution", initial_distribution)
  if initial.shape != (num_states,):
    raise ValueError(f"initial_distribution must have shape (S,) = "
                     f"({num_states},); got {initial.shape}")
  _check_probabilities("initial_distribution", initial, np.bool_(True), [])
  return rewards, transitions, legal, initial, float(discount)


def expect_over_actions(joint_values, policies, keep=None):
  """Expectation of joint-action values under independent per-player policies.

  Args:
    joint_values: array (..., n, A_1, ..., A_N): a value per state of a layer
      and joint action, with any leading axes.
    policies: N arrays (n, A_j): each player's policy at those states.
    keep: a player whose action is not averaged out, or None.

  Returns:
    (..., n) or, with `keep`, (..., n, A_keep):
    sum_{a_j, j != keep} prod_j pi_j(a_j|s) joint_values[..., s, a].
  """
  num_players = len(policies)
  state_label = num_players
  operands = [joint_values, [Ellipsis, state_label, *range(num_players)]]
  for player, policy in enumerate(policies):
    if player != keep:
      operands += [policy, [state_label, player]]
  output = [Ellipsis, state_label] + ([] if keep is None else [keep])
  if num_players <= 2:
    return np.einsum(*operands, output)
  # numpy's greedy contraction order (what optimize=True takes), found once
  # per shape: finding it cost more than contracting on the 8-player
  # distancing game. The same order gives the same numbers.
  shapes = (joint_values.shape, keep) + tuple(policy.shape
                                              for policy in policies)
  path = _CONTRACTION_PATHS.get(shapes)
  if path is None:
    if len(_CONTRACTION_PATHS) >= _MAX_CONTRACTION_PATHS:
      _CONTRACTION_PATHS.clear()
    path = _CONTRACTION_PATHS[shapes] = np.einsum_path(
        *operands, output, optimize="greedy")[0]
  return np.einsum(*operands, output, optimize=path)


# expect_over_actions' contraction orders by operand shapes and kept player.
_CONTRACTION_PATHS = {}
_MAX_CONTRACTION_PATHS = 1024


def key_of(state_key, state, stationary=False):
  """What identifies a Markov state: (move number, public observation) or the
  action history, as `state_key` says; the observation alone in a stationary
  game."""
  if stationary:
    return state.observation_string(0)
  if state_key == "observation":
    return (state.move_number(), state.observation_string(0))
  return tuple(state.history())


class _Enumerator:
  """Breadth-first walk of an OpenSpiel game that merges Markov-equal states."""

  def __init__(self, game, state_key, max_states, max_bytes,
               stationary=False):
    self.game = game
    self.state_key = state_key
    self.max_states = max_states
    self.max_bytes = max_bytes
    self.stationary = stationary
    # Observation keys: other histories reaching each Markov state, checked
    # against the state's own continuation (`_check_markov`): the first
    # _HISTORIES_CHECKED_FINITE found, or in a stationary game up to
    # _HISTORIES_CHECKED, one per distinct (state string, move number) (the
    # string may show what the observation hides; the move number, a time
    # limit it does not show).
    self.other_histories = collections.defaultdict(list)
    self.signatures = {}
    game_type = game.get_type()
    self.simultaneous = game_type.dynamics == _SIMULTANEOUS
    self.num_players = game.num_players()
    self.num_actions = (game.num_distinct_actions(),) * self.num_players
    self.num_joint_actions = game.num_distinct_actions()**self.num_players
    # Flat index of a joint action (C order over num_actions).
    self.strides = [game.num_distinct_actions()**(self.num_players - 1 - i)
                    for i in range(self.num_players)]
    self.bytes_per_state = self.num_joint_actions * (
        _BYTES_PER_ENTRY + _BYTES_PER_ENTRY_PER_PLAYER * self.num_players)
    self.index = {}
    self.states = []
    self._check_size(1)

  def _check_size(self, num_states):
    """Raises before the tensors of `num_states` states pass max_bytes."""
    estimate = num_states * self.bytes_per_state
    if estimate <= self.max_bytes:
      return
    raise ValueError(
        f"{self.game} is too large to enumerate: its tensors need about "
        f"{_format_bytes(estimate)} ({num_states} Markov state(s) x "
        f"{self.num_joint_actions} joint actions "
        f"({self.num_actions[0]}^{self.num_players}: num_distinct_actions^"
        f"num_players) x {self.bytes_per_state // self.num_joint_actions} "
        f"bytes), more than max_bytes={self.max_bytes} "
        f"({_format_bytes(self.max_bytes)}); load the game with fewer players, "
        "actions or steps, or raise the limit: build "
        "MarkovGame.from_openspiel(game, max_bytes=...) and pass it to the "
        "solvers and to nash_conv")


  def decision_outcomes(self, state):
    """Chance resolved: [(probability, decision-or-terminal state)]."""
    if not state.is_chance_node():
      return [(1.0, state)]
    outcomes = []
    for action, probability in state.chance_outcomes():
      for inner_probability, leaf in self.decision_outcomes(
          state.child(action)):
        outcomes.append((probability * inner_probability, leaf))
    return outcomes

  def state_index(self, state):
    key = key_of(self.state_key, state, self.stationary)
    index = self.index.get(key)
    if index is not None and self.state_key == "observation":
      others = self.other_histories[index]
      if not self.stationary:
        if len(others) < _HISTORIES_CHECKED_FINITE:
          others.append(state)  # every arrival is another history
      elif len(others) < _HISTORIES_CHECKED:
        if (str(state), state.move_number()) not in self.signatures[index]:
          others.append(state)
          self.signatures[index].add((str(state), state.move_number()))
    if index is None:
      if len(self.states) >= self.max_states:
        raise ValueError(
            f"{self.game} has more than {self.max_states} Markov states "
            f"(max_game_length={self.game.max_game_length()}): it is too "
            "long or too wide to enumerate; load it with smaller parameters "
            "or raise max_states")
      self._check_size(len(self.states) + 1)
      index = len(self.states)
      self.index[key] = index
      self.states.append(state)
      if self.stationary:
        self.signatures[index] = {(str(state), state.move_number())}
    return index

  def joint_actions(self, state):
    """Yields (joint action's flat index in num_actions, child state); the
    players not to move play 0."""
    strides = self.strides
    if self.simultaneous:
      # A player with no legal action passes 0, as OpenSpiel asks.
      legal = [state.legal_actions(player) or [0] for player in
               range(self.num_players)]
      for joint in itertools.product(*legal):
        child = state.clone()
        child.apply_actions(list(joint))
        yield sum(a * b for a, b in zip(joint, strides)), child
    else:
      stride = strides[state.current_player()]
      for action in state.legal_actions():
        yield action * stride, state.child(action)

  def build(self, cls, discount):
    root = self.game.new_initial_state()
    root_returns = np.asarray(root.returns(), dtype=np.float64)
    initial = []
    # Returns before the first decision, and of plays that end before it.
    initial_rewards = np.zeros(self.num_players)
    for probability, leaf in self.decision_outcomes(root):
      initial_rewards += probability * (np.asarray(leaf.returns()) -
                                        root_returns)
      if not leaf.is_terminal():
        initial.append((self.state_index(leaf), probability))
    if not initial:
      raise ValueError(f"{self.game} has no decision state: every play ends "
                       "before any player acts")

    joint_shape = self.num_actions
    joint = int(np.prod(joint_shape))
    rows, cols, probs = [], [], []
    steps, rewards, legal, movers = [], [], [], []
    position = 0
    while position < len(self.states):
      step = self._expand(self.states[position], self.state_index)
      for flat, index, probability in step[3]:
        rows.append(position * joint + flat)
        cols.append(index)
        probs.append(probability)
      mask, reward = self.tensors(step)
      steps.append(step)
      movers.append(step[0])
      rewards.append(reward)
      legal.append(mask)
      position += 1

    num_states = len(self.states)
    self._check_markov(steps)
    if self.stationary:
      # One layer in discovery order: cycles are allowed.
      move_numbers = np.zeros(num_states, dtype=np.int64)
    else:
      move_numbers = np.array([s.move_number() for s in self.states])
    order = np.argsort(move_numbers, kind="stable")
    new_index = np.empty(num_states, dtype=np.int64)
    new_index[order] = np.arange(num_states)
    rows = np.asarray(rows, dtype=np.int64)
    rows = new_index[rows // joint] * joint + rows % joint
    transitions = sparse.csr_matrix(
        (np.asarray(probs, dtype=np.float64),
         (rows, new_index[np.asarray(cols, dtype=np.int64)])),
        shape=(num_states * joint, num_states))
    initial_distribution = np.zeros(num_states)
    for index, probability in initial:
      initial_distribution[new_index[index]] += probability
    sorted_moves = move_numbers[order]
    boundaries = np.flatnonzero(np.diff(sorted_moves)) + 1
    layers = np.split(np.arange(num_states), boundaries)
    keys = list(self.index)  # insertion order == discovery index
    stacked = np.stack(rewards, axis=1)
    bad = np.argwhere(~np.isfinite(stacked))
    if bad.size or not np.isfinite(initial_rewards).all():
      player, state = (int(bad[0][0]), int(bad[0][1])) if bad.size else (
          int(np.flatnonzero(~np.isfinite(initial_rewards))[0]), None)
      where = (f"after the history {self.states[state].history()}"
               if state is not None else "before the first decision")
      raise ValueError(
          f"player {player}'s reward or return is not finite {where} in the "
          f"game {describe_game(self.game)}; rewards and returns must be "
          "finite")
    return cls(
        initial_rewards=initial_rewards,
        rewards=stacked[:, order],
        transitions=transitions,
        legal_mask=[np.array([legal[i][player] for i in order])
                    for player in range(self.num_players)],
        initial_distribution=initial_distribution,
        layers=layers,
        discount=discount,
        game=self.game,
        state_key=self.state_key,
        state_keys=[keys[i] for i in order],
        states=[self.states[i] for i in order],
        current_player=np.asarray(movers)[order],
        stationary=self.stationary)

  def _expand(self, state, index_of):
    """One step from a decision state, chance resolved: (mover, legal actions
    per player, gains, outcomes), where gains lists (flat joint action,
    probability x returns accrued) and outcomes (flat joint action,
    index_of(next decision state), probability)."""
    returns = state.returns()
    if self.simultaneous:
      mover = pyspiel.PlayerId.SIMULTANEOUS
      legal = [state.legal_actions(player) or [0]
               for player in range(self.num_players)]
    else:
      mover = state.current_player()
      legal = [state.legal_actions() if player == mover else [0]
               for player in range(self.num_players)]
    gains, outcomes = [], []
    for flat, child in self.joint_actions(state):
      for probability, leaf in self.decision_outcomes(child):
        gains.append((flat, [probability * (a - b)
                             for a, b in zip(leaf.returns(), returns)]))
        if not leaf.is_terminal():
          outcomes.append((flat, index_of(leaf), probability))
    return mover, legal, gains, outcomes

  def tensors(self, step):
    """A step's legal mask per player and rewards [player, *joint]."""
    _, legal, gains, _ = step
    mask = [np.zeros(n, dtype=bool) for n in self.num_actions]
    for player, actions in enumerate(legal):
      mask[player][actions] = True
    reward = np.zeros((self.num_players, self.num_joint_actions))
    if gains:
      flats, values = zip(*gains)
      np.add.at(reward.T, list(flats), np.asarray(values, dtype=np.float64))
    return mask, reward.reshape((self.num_players,) + self.num_actions)

  def _known_index(self, state):
    """The index of a state's key, or the key itself when it is unknown."""
    key = key_of(self.state_key, state, self.stationary)
    return self.index.get(key, key)

  def _check_markov(self, steps):
    """Raises NonMarkovObservationError where another history of a key
    continues differently from the key's first history, whose `steps`
    (`_expand`) the build kept (see `MarkovGame.from_openspiel`)."""
    for index, others in self.other_histories.items():
      for other in others:
        step = self._expand(other, self._known_index)
        if step != steps[index]:  # else equal to the last bit
          _compare_continuations(self, self.states[index], steps[index],
                                 other, step)


def _distributions(outcomes):
  """{flat joint action: {next state: probability}} of (flat, next,
  probability) triplets."""
  result = collections.defaultdict(lambda: collections.defaultdict(float))
  for flat, index, probability in outcomes:
    result[flat][index] += probability
  return result


class NonMarkovObservationError(ValueError):
  """Two histories share an observation key but continue differently, so
  the observation-keyed game would be wrong; `histories` holds the two."""

  def __init__(self, message, histories):
    super().__init__(message)
    self.histories = histories


def _compare_continuations(enumerator, state, step, other, other_step):
  """Raises NonMarkovObservationError naming the first difference, beyond
  1e-12, of two histories' one-step continuations (`_Enumerator._expand`:
  mover, legal actions, rewards, next-state distributions; see
  `_Enumerator._check_markov`)."""
  mover, legal = step[:2]
  other_mover, other_legal = other_step[:2]
  difference = None
  if (mover, legal) != (other_mover, other_legal):
    difference = (f"different movers or legal actions ({mover} {legal} vs "
                  f"{other_mover} {other_legal})")
  else:
    _, reward = enumerator.tensors(step)
    _, other_reward = enumerator.tensors(other_step)
    next_states = _distributions(step[3])
    other_next = _distributions(other_step[3])
    gaps = np.abs(reward - other_reward).max(axis=0).ravel()
    differ = set(np.flatnonzero(gaps > _MARKOV_TOLERANCE).tolist())
    for flat in next_states.keys() | other_next.keys():
      one, two = next_states.get(flat, {}), other_next.get(flat, {})
      if one.keys() != two.keys() or any(
          abs(one[key] - two[key]) > _MARKOV_TOLERANCE for key in one):
        differ.add(flat)
    if differ:
      flat = min(differ)
      what = ("different next-state distributions (or ends)"
              if gaps[flat] <= _MARKOV_TOLERANCE else
              f"rewards {reward.reshape(len(reward), -1)[:, flat]} vs "
              f"{other_reward.reshape(len(reward), -1)[:, flat]}")
      joint = tuple(int(a) for a in np.unravel_index(flat,
                                                     enumerator.num_actions))
      difference = f"{what} after joint action {joint}"
  if difference:
    key = key_of("observation", state, enumerator.stationary)
    remedy = ("load it with stationary=False (states keyed with the move "
              "number) or give it an observation that identifies the state"
              if enumerator.stationary else
              "key its states by history: vsg_spiel.markov_game(game, "
              "state_key=\"history\") or MarkovGame.from_openspiel(game, "
              "state_key=\"history\")")
    raise NonMarkovObservationError(
        f"{enumerator.game}: the observation is not a Markov state: the "
        f"histories {state.history()} and {other.history()} share the "
        f"key {key!r} but have {difference}; {remedy}",
        (state.history(), other.history()))


def _format_bytes(size):
  """1234567 -> '1.2 MiB'."""
  for unit in ("bytes", "KiB", "MiB", "GiB"):
    if size < 1024 or unit == "GiB":
      break
    size /= 1024
  return f"{size:.1f} {unit}" if unit != "bytes" else f"{int(size)} bytes"


# ----------------------------------------------------------------------------
# The cache of enumerated games: every public entry point takes a game and
# enumerates it here once.

_CACHE_SIZE = 8
_cache = collections.OrderedDict()


def markov_game(game, state_key="auto"):
  """The `MarkovGame` of a game, enumerated once and cached.

  Args:
    game: a pyspiel.Game, a game string (loaded with `pyspiel.load_game`) or a
      `MarkovGame` (returned as is).
    state_key: as in `MarkovGame.from_openspiel`.

  A game object is cached under its type, its string with parameters and its
  identity (the cache holds a reference, so the identity is not reused while
  cached); a string under itself. So a game re-created with other parameters
  is enumerated anew, as is any other game object: two games built by
  `pyspiel.create_matrix_game` share the string "short_name()" and must not
  share an entry. The 8 most recently used games are kept.

  Raises:
    TypeError: `game` is none of these.
    ValueError: an empty game string, or as `MarkovGame.from_openspiel`.
  """
  if isinstance(game, MarkovGame):
    return game
  if isinstance(game, str):
    if not game.strip():
      raise ValueError("game must be a game string such as 'matrix_rps'; "
                       "got an empty string")
    key = ("string", game, state_key)
  elif isinstance(game, pyspiel.Game):
    key = ("game", game.get_type().short_name, str(game), id(game),
           state_key)
  else:
    raise TypeError(
        "game must be a pyspiel.Game, a game string or a MarkovGame; got "
        f"{type(game).__name__} {game!r:.80}")
  entry = _cache.get(key)
  if entry is None or (not isinstance(game, str) and entry[0] is not game):
    entry = (game, MarkovGame.from_openspiel(game, state_key=state_key))
    _cache[key] = entry
    if len(_cache) > _CACHE_SIZE:
      _cache.popitem(last=False)
  _cache.move_to_end(key)
  return entry[1]


def turn_based_tree_size(mgame, outcomes=False):
  """Nodes of `pyspiel.convert_to_turn_based(game)`'s tree, counted on the
  tensors: the histories reaching each Markov state (counted forward once)
  times the nodes of its round.

  The decision nodes of a simultaneous round are 1 + n_1 + n_1 n_2 + ...
  (n_i player i's legal actions; a player with none does not act), those of
  a turn-based state 1. Exact where chance outcomes lead to distinct states,
  a lower bound otherwise.

  Args:
    mgame: a `MarkovGame`.
    outcomes: also count each round's joint outcomes (n_1 n_2 ... n_N below
      its last decision), about every node OpenSpiel's tools visit (exact
      where chance nodes separate the rounds, as in the routing game;
      elsewhere an outcome that starts the next round is counted twice).

  Returns:
    The count, an int.
  """
  if mgame.stationary:
    return math.inf  # a cyclic state graph: unboundedly many histories
  histories = (mgame.initial_distribution > 0).astype(np.float64)
  structure = (mgame.transitions > 0).astype(np.float64)
  joint = mgame.num_joint_actions
  for layer in mgame.layers:
    block = structure[layer[0] * joint:(layer[-1] + 1) * joint]
    histories += block.T @ np.repeat(histories[layer], joint)
  simultaneous = mgame.current_player == pyspiel.PlayerId.SIMULTANEOUS
  round_nodes = np.where(simultaneous, 0.0, 1.0)  # One mover otherwise.
  partial = np.ones(mgame.num_states)
  for mask in mgame.legal_mask:
    acts = mask.sum(axis=1)
    round_nodes += np.where(simultaneous & (acts > 0), partial, 0.0)
    partial = partial * np.maximum(acts, 1)
  if outcomes:
    round_nodes = round_nodes + partial
  return int(round(float(histories @ round_nodes)))
