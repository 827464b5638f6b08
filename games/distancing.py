"""The distancing game: a two-state Markov congestion game (a stationary MPG).

Leonardos, Overman, Panageas & Piliouras, "Global Convergence of Multi-Agent
Policy Gradient in Markov Potential Games" (ICLR 2022), Section 5; also the
experiment of Sun, Liu, Kalathil & Wang, "Provably Fast Convergence of
Independent Natural Policy Gradient for Markov Potential Games" (NeurIPS 2023).

N agents each pick one of K facilities at every step. With n_k(a) the number
of agents on facility k under the joint action a, agent i on facility a_i
receives

  r_i(safe, a)       = w_{a_i} n_{a_i}(a),
  r_i(distancing, a) = w_{a_i} n_{a_i}(a) - penalty.

The state moves deterministically: from safe to distancing when more than
N / 2 agents share a facility (max_k n_k > N / 2), and it stays in
distancing while more than N / 4 do (max_k n_k > N / 4), else it returns to
safe. Published defaults (the authors' code, as re-used by Sun et al.): N = 8,
K = 4 facilities A-D with w = (1, 2, 4, 6), penalty 100, gamma = 0.99 and the
initial distribution (1/2, 1/2) over (safe, distancing).

Each stage game is a congestion game with Rosenthal's potential

  phi(s, a) = sum_k w_k n_k (n_k + 1) / 2 - penalty [s = distancing],

so r_i(s, a) - phi(s, a) = -sum_k w_k m_k (m_k + 1) / 2 with m_k the load
of facility k without agent i: a term of the others' actions alone, the same
in both states. Hence for stationary policies the discounted potential
Phi^pi(s) = E[sum_t gamma^t phi(s_t, a_t)] changes exactly as agent i's value
under a unilateral deviation of agent i whenever that term's expectation
under the others' policies is the same in both states (e.g. the others play
the same mixed action in both states). With state-dependent opponents the
deviation also moves the state distribution under a state-dependent term, and
the identity holds only approximately; tests/test_distancing.py measures both.

The joint action space has K^N joint actions per state (65536 at the
defaults); rewards, potential and transitions are built vectorised from the
facility loads of every joint action: dense (N, 2, K, ..., K) float64 rewards
(8 MiB at the defaults) and a sparse transition matrix with one entry per
(state, joint action).
"""

import numpy as np

from vsg_spiel import core

SAFE, DISTANCING = 0, 1
STATE_NAMES = ("safe", "distancing")
DEFAULT_WEIGHTS = (1.0, 2.0, 4.0, 6.0)
DEFAULT_NUM_AGENTS = 8
DEFAULT_PENALTY = 100.0
DEFAULT_DISCOUNT = 0.99
DEFAULT_INITIAL_DISTRIBUTION = (0.5, 0.5)
MAX_JOINT_ACTIONS = 2**22


def facility_loads(num_agents, num_facilities):
  """n_k(a) for every joint action a in C order: int array (K^N, K)."""
  actions = np.indices((num_facilities,) * num_agents).reshape(num_agents, -1)
  loads = np.zeros((actions.shape[1], num_facilities), dtype=np.int64)
  for facility in range(num_facilities):
    loads[:, facility] = (actions == facility).sum(axis=0)
  return loads


def _check(num_agents, weights, penalty, discount, initial_distribution):
  if isinstance(num_agents, bool) or not isinstance(
      num_agents, (int, np.integer)) or num_agents < 1:
    raise ValueError(f"num_agents must be an integer >= 1; got {num_agents!r}")
  weights = np.asarray(weights, dtype=np.float64)
  if weights.ndim != 1 or weights.size < 1 or not np.all(np.isfinite(weights)):
    raise ValueError(f"weights must be a non-empty list of finite numbers, "
                     f"one per facility; got {weights.tolist()}")
  if weights.size**num_agents > MAX_JOINT_ACTIONS:
    raise ValueError(
        f"{weights.size} facilities ** {num_agents} agents = "
        f"{weights.size**num_agents} joint actions per state exceeds "
        f"{MAX_JOINT_ACTIONS}; use fewer agents or facilities")
  if not np.isfinite(penalty):
    raise ValueError(f"penalty must be finite; got {penalty}")
  if len(initial_distribution) != 2:
    raise ValueError("initial_distribution must give (safe, distancing) "
                     f"probabilities; got {initial_distribution}")
  del discount  # checked by MarkovGame.from_arrays
  return weights


def potential(num_agents=DEFAULT_NUM_AGENTS, weights=DEFAULT_WEIGHTS,
              penalty=DEFAULT_PENALTY):
  """Rosenthal's potential phi(s, a): array (2, K, ..., K) (N action axes)."""
  weights = _check(num_agents, weights, penalty, 0.0, (0.5, 0.5))
  loads = facility_loads(num_agents, weights.size)
  safe = (weights * loads * (loads + 1) / 2).sum(axis=1)
  shape = (weights.size,) * num_agents
  return np.stack([safe, safe - penalty]).reshape((2,) + shape)


def distancing_game(num_agents=DEFAULT_NUM_AGENTS, weights=DEFAULT_WEIGHTS,
                    penalty=DEFAULT_PENALTY, discount=DEFAULT_DISCOUNT,
                    initial_distribution=DEFAULT_INITIAL_DISTRIBUTION):
  """The distancing game as a stationary `MarkovGame` (see the module doc).

  Args:
    num_agents: N >= 1.
    weights: w_k > 0 per facility (K = len(weights)).
    penalty: subtracted from every reward in the distancing state.
    discount: gamma in [0, 1).
    initial_distribution: (P(safe), P(distancing)) at the start.

  Returns:
    A `MarkovGame` with states (safe, distancing), N players with K actions.

  Raises:
    ValueError: a parameter out of range, or K^N above `MAX_JOINT_ACTIONS`.
  """
  weights = _check(num_agents, weights, penalty, discount,
                   initial_distribution)
  num_facilities = weights.size
  loads = facility_loads(num_agents, num_facilities)  # (J, K)
  actions = np.indices((num_facilities,) * num_agents).reshape(num_agents, -1)
  # r_i(safe, a) = w_{a_i} n_{a_i}(a): (N, J).
  own_load = np.take_along_axis(loads, actions.T, axis=1).T
  safe = weights[actions] * own_load
  shape = (num_facilities,) * num_agents
  rewards = np.stack([safe, safe - penalty], axis=1).reshape(
      (num_agents, 2) + shape)
  crowded = loads.max(axis=1)
  next_state = np.stack([crowded > num_agents / 2,
                         crowded > num_agents / 4]).astype(np.int64)  # (2, J)
  transitions = np.zeros((2, loads.shape[0], 2))
  transitions[np.arange(2)[:, None], np.arange(loads.shape[0]),
              next_state] = 1.0
  return core.MarkovGame.from_arrays(
      rewards, transitions.reshape((2,) + shape + (2,)), discount,
      initial_distribution)


def expected_loads(profile):
  """Expected number of agents per facility and state: (2, K) array, from a
  profile (one (2, K) policy per agent)."""
  return np.sum(profile, axis=0)
