"""Compiled evaluation of small stationary games: the MDPs a profile leaves
each player, and their exact best responses by policy iteration.

The same math as the numpy path of `exploitability` (`_stationary_mdps`,
`_policy_iteration`; see its module docstring and `docs/design.md`, the
discounted evaluation), compiled with numba for the games that have a
`MarkovGame.value_tensor` and at most 64 states
(`exploitability._COMPILED_STATES`): there a NashConv call of the numpy
path is about 60 numpy calls of interpreter overhead (a few hundred
microseconds whatever the size), which this removes. The linear solves
are LU with partial pivoting as LAPACK's unblocked getf2 (`_solve`: written
out, as numba's `np.linalg.solve` alone takes some 15 s of CPU to compile;
the kernels keep to loops over scalars, which compile fastest: about 7 s of
CPU in all, once, into numba's cache). `tests/test_stationary.py` checks
that both paths give the same numbers to 1e-12.

Shapes: N players, S states, A = max_i A_i actions (padded), T = S + N.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def _solve(system, right):
  """Overwrites `right` (S, K) with system^-1 right by LU with partial
  pivoting (`system` (S, S) overwritten). Here system = I - gamma P with
  gamma < 1 and P's rows summing to 1: strictly diagonally dominant, so no
  pivot is 0."""
  size, columns = right.shape
  for pivot_row in range(size):
    best = pivot_row
    for row in range(pivot_row + 1, size):
      if abs(system[row, pivot_row]) > abs(system[best, pivot_row]):
        best = row
    if best != pivot_row:
      for column in range(size):
        system[pivot_row, column], system[best, column] = (
            system[best, column], system[pivot_row, column])
      for column in range(columns):
        right[pivot_row, column], right[best, column] = (
            right[best, column], right[pivot_row, column])
    inverse = 1.0 / system[pivot_row, pivot_row]
    for row in range(pivot_row + 1, size):
      factor = system[row, pivot_row] * inverse
      if factor != 0.0:
        for column in range(pivot_row + 1, size):
          system[row, column] -= factor * system[pivot_row, column]
        for column in range(columns):
          right[row, column] -= factor * right[pivot_row, column]
  for row in range(size - 1, -1, -1):
    for column in range(columns):
      total = right[row, column]
      for other in range(row + 1, size):
        total -= system[row, other] * right[other, column]
      right[row, column] = total / system[row, row]


@numba.njit(cache=True)
def _next_joint_action(digits, num_actions):
  """Advances the joint action `digits` (each in 0..num_actions-1) to the
  next one in row-major order (the last player's action fastest)."""
  for player in range(len(digits) - 1, -1, -1):
    digits[player] += 1
    if digits[player] < num_actions:
      return
    digits[player] = 0


@numba.njit(cache=True)
def profile_values(stacked, combined, discount):
  """V_i^pi(s) of every player: (S, N), solving (I - gamma P_pi) V = r_pi
  with P_pi and r_pi averaged over the joint actions.

  Args: as `own_action_mdps`.
  """
  num_players, num_states, num_actions = stacked.shape
  num_joint, width = combined.shape[1], combined.shape[2]
  system = np.zeros((num_states, num_states))
  for state in range(num_states):
    system[state, state] = 1.0
  stage = np.zeros((num_states, num_players))
  digits = np.empty(num_players, np.int64)
  for state in range(num_states):
    for player in range(num_players):
      digits[player] = 0
    for joint in range(num_joint):
      weight = 1.0
      for player in range(num_players):
        weight *= stacked[player, state, digits[player]]
      _next_joint_action(digits, num_actions)
      if weight != 0.0:
        for column in range(num_states):
          system[state, column] -= discount * weight * combined[state, joint,
                                                                column]
        for column in range(num_states, width):
          stage[state, column - num_states] += weight * combined[state, joint,
                                                                 column]
  _solve(system, stage)
  return stage


@numba.njit(cache=True)
def own_action_mdps(stacked, combined, legal, discount):
  """Each player's MDP against the others' policies, and the profile's values.

  Args:
    stacked: (N, S, A) policies, zero at padded actions.
    combined: (S, A^N, T) `MarkovGame.value_tensor`: per state and joint
      action (row-major), P(. | s, a) then every player's reward.
    legal: (N, S, A) bool, False at padded actions.
    discount: gamma in [0, 1).

  Returns:
    (values, rewards, transitions): values (N, S) V_i^pi
    (`profile_values`); rewards (N, S, A) player i's expected reward of each
    own action against the others' policies, -inf at illegal and padded
    actions; transitions (N, S, A, S), zero rows at padded actions.
  """
  num_players, num_states, num_actions = stacked.shape
  num_joint = combined.shape[1]
  rewards = np.zeros((num_players, num_states, num_actions))
  transitions = np.zeros((num_players, num_states, num_actions, num_states))
  digits = np.empty(num_players, np.int64)
  before = np.empty(num_players + 1)  # prod_{j < i} pi_j(a_j | s)
  after = np.empty(num_players + 1)  # prod_{j >= i} pi_j(a_j | s)
  for state in range(num_states):
    for player in range(num_players):
      digits[player] = 0
    for joint in range(num_joint):
      before[0] = after[num_players] = 1.0
      for player in range(num_players):
        before[player + 1] = before[player] * stacked[player, state,
                                                      digits[player]]
        back = num_players - 1 - player
        after[back] = after[back + 1] * stacked[back, state, digits[back]]
      for player in range(num_players):
        weight = before[player] * after[player + 1]
        if weight != 0.0:
          action = digits[player]
          for column in range(num_states):
            transitions[player, state, action, column] += weight * combined[
                state, joint, column]
          rewards[player, state, action] += weight * combined[
              state, joint, num_states + player]
      _next_joint_action(digits, num_actions)
  for player in range(num_players):
    for state in range(num_states):
      for action in range(num_actions):
        if not legal[player, state, action]:
          rewards[player, state, action] = -np.inf
  by_state = profile_values(stacked, combined, discount)
  values = np.empty((num_players, num_states))
  for player in range(num_players):
    for state in range(num_states):
      values[player, state] = by_state[state, player]
  return values, rewards, transitions


@numba.njit(cache=True)
def _action_values(rewards, transitions, discount, values, out):
  """out[s, a] = r(s, a) + gamma sum_s' P(s' | s, a) V(s') of one MDP."""
  num_states, num_actions = rewards.shape
  for state in range(num_states):
    for action in range(num_actions):
      continuation = 0.0
      for column in range(num_states):
        continuation += transitions[state, action, column] * values[column]
      out[state, action] = rewards[state, action] + discount * continuation


@numba.njit(cache=True)
def policy_iteration(rewards, transitions, values, discount, tolerance,
                     max_iterations):
  """Optimal values of N MDPs started from the values of any policy, as
  `exploitability._policy_iteration`: the first step greedy at every state,
  then a state's action changes only where it improves the value by more
  than tolerance x max(1, max |V|), and the MDP stops when none does.

  Args:
    rewards: (N, S, A), -inf at illegal actions.
    transitions: (N, S, A, S).
    values: (N, S) the starting policy's values.
    discount: gamma in [0, 1).
    tolerance: the relative Bellman residual at which to stop.
    max_iterations: improvement rounds per MDP before giving up.

  Returns:
    (best, actions, converged): best (N, S) values, actions (N, S) one
    greedy action per state, converged False if an MDP still improved after
    `max_iterations` rounds.
  """
  num_mdps, num_states, num_actions = rewards.shape
  best = values.copy()
  actions = np.zeros((num_mdps, num_states), np.int64)
  action_values = np.empty((num_states, num_actions))
  current = np.empty(num_states)
  for mdp in range(num_mdps):
    own_values = best[mdp]
    chosen = actions[mdp]
    for state in range(num_states):
      current[state] = own_values[state]
    stopped = False
    for iteration in range(max_iterations):
      _action_values(rewards[mdp], transitions[mdp], discount, own_values,
                     action_values)
      if iteration > 0:
        for state in range(num_states):
          current[state] = action_values[state, chosen[state]]
      largest = 1.0
      for state in range(num_states):
        largest = max(largest, abs(own_values[state]))
      threshold = tolerance * largest
      improved = False
      for state in range(num_states):
        greedy = 0  # the first best action, as np.argmax
        for action in range(1, num_actions):
          if action_values[state, action] > action_values[state, greedy]:
            greedy = action
        if action_values[state, greedy] - current[state] > threshold:
          chosen[state] = greedy
          improved = True
        elif iteration == 0:
          chosen[state] = greedy
      if not improved:
        stopped = True
        break
      system = np.empty((num_states, num_states))
      stage = np.empty((num_states, 1))
      for state in range(num_states):
        action = chosen[state]
        for column in range(num_states):
          system[state, column] = -discount * transitions[mdp, state, action,
                                                          column]
        system[state, state] += 1.0
        stage[state, 0] = rewards[mdp, state, action]
      _solve(system, stage)
      for state in range(num_states):
        own_values[state] = stage[state, 0]
    if not stopped:
      return best, actions, False
  return best, actions, True
