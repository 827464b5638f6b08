"""Numba ports of the reward and transition functions of MFGLib's examples.

MFGLib 0.3.0 ships ten example environments (`mfglib.env.examples.<name>`,
built by `mfglib.env.Environment.<name>(...)`), each with a `RewardFn` and a
`TransitionFn` object computing, in PyTorch, r_t (shape S + A) and P_t[s', s,
a] (shape S + S + A) from the time t and the state-action mean field L_t.
A PyTorch call costs 10-130 us on their tiny tensors (tens of ms for
linear_quadratic's transition at its default size, a Python loop); the ports
here are compiled numba kernels computing the same formulas in float64, about
1 us a call on the small examples.

`native_functions(env)` recognises a function by its class: a port is
returned for `env.reward_fn` (`env.transition_fn`) when its type is named
"RewardFn" ("TransitionFn") and is defined in module
`mfglib.env.examples.<name>` for one of the ten names, subclasses excluded.
Other environments' functions (your own, or subclasses) stay on PyTorch: the
port is None. A port's parameters are read from the function object's own
attributes (constructor parameters, MFGLib's random draws) when
`native_functions` is called, and converted to float64; a stored transition
tensor `p` independent of t and L_t is copied.

The ports evaluate MFGLib's arithmetic in the same order, except for sums
(over actions, over the state-action pairs, matrix products), which run
sequentially where PyTorch uses blocked SIMD or BLAS reductions, so results
may differ in the last bits (1e-15 at the examples' magnitudes). Where the
order matters beyond that, MFGLib's is kept: linear_quadratic's next state is
rounded half to even (torch.round; its drift hits exact halves when m_t is an
integer), equilibrium_price's power is taken as torch.pow takes it (x * x * x
for 3, 1 / sqrt(x) for -0.5, ...), and beach_bar's c1 + c2, crowd_motion's
c c1s[t] are formed before the crowd term as MFGLib forms them.
tests/test_mfglib_native.py checks every environment against MFGLib, at
default and other parameters, every t and several L_t, to 1e-12.

This module does not import PyTorch.
"""

from collections.abc import Callable
import functools
import math

import numba
import numpy as np

_EXAMPLES = "mfglib.env.examples."
# susceptible_infected's infection probability factor, as MFGLib writes it.
_INFECTION = 0.9**2


def _array(value) -> np.ndarray:
  """A tensor (or sequence of numbers) as a C-contiguous float64 array."""
  if hasattr(value, "detach"):
    value = value.detach().cpu().numpy()
  return np.ascontiguousarray(np.asarray(value).astype(np.float64))


def _scalar(value, env) -> float:
  """A scalar parameter (a number or a 0-d tensor) as a float, rounded to
  the environment's dtype first: MFGLib's arithmetic casts it to the
  tensors' dtype (a float32 environment's log_eps 1e-50 is 0 there)."""
  if hasattr(value, "detach"):
    value = value.detach().cpu().numpy()
  dtype = np.dtype(str(env.mu0.dtype).removeprefix("torch."))
  return float(np.asarray(value, np.float64).astype(dtype))


def _sizes(env) -> tuple[int, int]:
  return math.prod(env.S), math.prod(env.A)


@numba.njit(cache=True, inline="always")
def _mass(state_action, num_actions, s):
  """mu_t(s) = sum_a L_t[s, a], summed in action order."""
  total = 0.0
  for a in range(num_actions):
    total += state_action[s * num_actions + a]
  return total


@numba.njit(cache=True)
def _copy_vector(table, t, state_action, out):
  """out = table: a reward of neither t nor L_t (a stored tensor)."""
  for i in range(table.shape[0]):
    out[i] = table[i]
  return out


@numba.njit(cache=True)
def _copy_matrix(table, t, state_action, out):
  """out = table: a transition of neither t nor L_t (a stored tensor)."""
  for i in range(table.shape[0]):
    for j in range(table.shape[1]):
      out[i, j] = table[i, j]
  return out


def _split(shape, env) -> tuple[int, int]:
  """(|S|, |A|) of an array of shape S + A, S with env.S's number of axes."""
  return math.prod(shape[:len(env.S)]), math.prod(shape[len(env.S):])


def _stored_transition(fn, env):
  """Transition from the stored tensor fn.p (P[s', s, a]), as (S A, S)."""
  shape = tuple(fn.p.shape)
  next_states, sizes = _split(shape, env)[0], _split(shape[len(env.S):], env)
  if next_states != sizes[0]:
    return None, None
  table = _array(fn.p).reshape(next_states, -1).T.copy()
  return sizes, functools.partial(_copy_matrix, table)


def _stored_reward(fn, env):
  """Reward from the stored tensor fn.r (susceptible_infected)."""
  return (_split(tuple(fn.r.shape), env),
          functools.partial(_copy_vector, _array(fn.r).reshape(-1)))


@numba.njit(cache=True, inline="always")
def _crowd_averse_reward(base, log_eps, state_action, out):
  """r[s, a] = base[s, a] - log(mu_t(s) + log_eps)."""
  num_actions = base.shape[1]
  for s in range(base.shape[0]):
    crowd = math.log(_mass(state_action, num_actions, s) + log_eps)
    for a in range(num_actions):
      out[s * num_actions + a] = base[s, a] - crowd
  return out


@numba.njit(cache=True)
def _beach_bar_reward(base, log_eps, t, state_action, out):
  """r = (c1 + c2) - log(mu_t(s) + log_eps) (beach_bar.py)."""
  return _crowd_averse_reward(base, log_eps, state_action, out)


def _beach_bar(fn, env):
  base = _array(fn.c1) + _array(fn.c2)  # MFGLib adds c1 + c2 first.
  return base.shape, functools.partial(_beach_bar_reward, base,
                                       _scalar(fn.log_eps, env))


@numba.njit(cache=True)
def _building_evacuation_reward(reward, eta_eps, t, state_action, out):
  """r = -eta log(max(mu_t(s), log_eps)) + r(s) (building_evacuation.py)."""
  num_actions = out.shape[0] // reward.shape[0]
  for s in range(reward.shape[0]):
    mass = max(_mass(state_action, num_actions, s), eta_eps[1])
    value = -eta_eps[0] * math.log(mass) + reward[s]
    for a in range(num_actions):
      out[s * num_actions + a] = value
  return out


def _building_evacuation(fn, env):
  eta_eps = np.array([_scalar(fn.eta, env), _scalar(fn.log_eps, env)])
  reward = _array(fn.r).reshape(-1)
  # MFGLib expands r over its 6 actions.
  return (reward.size, 6), functools.partial(_building_evacuation_reward,
                                             reward, eta_eps)


@numba.njit(cache=True, inline="always")
def _treasure_distance(state_action, n, s):
  """sum_{i, j} (L_t - e_s e_s^T)[i, j]^2, in C order."""
  total = 0.0
  for i in range(n * n):
    x = state_action[i] - 1.0 if i == s * n + s else state_action[i]
    total += x * x
  return total


@numba.njit(cache=True)
def _treasure_reward(r, t, state_action, out):
  """r[s, s] = r_s (1 - |L_t - e_ss|^2 / 2), 0 elsewhere and at t = 0
  (conservative_treasure_hunting.py)."""
  n = r.shape[0]
  out.fill(0.0)
  if t != 0:
    for s in range(n):
      out[s * n + s] = r[s] * (1.0 - _treasure_distance(state_action, n, s)
                               / 2.0)
  return out


@numba.njit(cache=True)
def _treasure_transition(c, t, state_action, out):
  """P[s', s, a] = c D / (1 + n c D) + [s' = a] / (1 + n c D), D = |L_t -
  e_ss|^2, c = c[t - 1]; P[s', s, a] = [s' = a] at t = 0
  (conservative_treasure_hunting.py)."""
  n = out.shape[1]
  if not 0 <= t <= c.shape[0]:
    raise IndexError("t outside 0..T")
  out.fill(0.0)
  for s in range(n):
    if t == 0:
      for a in range(n):
        out[s * n + a, a] = 1.0
      continue
    distance = _treasure_distance(state_action, n, s)
    denominator = 1.0 + n * c[t - 1] * distance
    spread = c[t - 1] * distance / denominator
    stay = 1.0 / denominator
    for a in range(n):
      for nxt in range(n):
        out[s * n + a, nxt] = spread
      out[s * n + a, a] = spread + stay
  return out


def _treasure_hunting_reward(fn, env):
  r = _array(fn.r)
  return (r.size, r.size), functools.partial(_treasure_reward, r)


def _treasure_hunting_transition(fn, env):
  return ((int(fn.n), int(fn.n)),
          functools.partial(_treasure_transition, _array(fn.c)))


@numba.njit(cache=True)
def _crowd_motion_reward(bases, log_eps, t, state_action, out):
  """r = c c1s[t] - log(mu_t(s) + log_eps) (crowd_motion.py)."""
  if not 0 <= t < bases.shape[0]:
    raise IndexError("t outside 0..T")
  return _crowd_averse_reward(bases[t], log_eps, state_action, out)


def _crowd_motion(fn, env):
  bases = _scalar(fn.c, env) * np.stack([_array(c1) for c1 in fn.c1s])
  sizes = (bases.shape[1] * bases.shape[2], bases.shape[3])  # torus x 5
  return sizes, functools.partial(
      _crowd_motion_reward,
      np.ascontiguousarray(bases.reshape((len(bases),) + sizes)),
      _scalar(fn.log_eps, env))


@numba.njit(cache=True, inline="always")
def _torch_pow(x, power):
  """x ** power as torch.pow(tensor, scalar) evaluates it (products, sqrt and
  reciprocals for the powers it special-cases)."""
  if power == 2.0:
    return x * x
  if power == 3.0:
    return x * x * x
  if power == 0.5:
    return math.sqrt(x)
  if power == -0.5:
    return 1.0 / math.sqrt(x)
  if power == -1.0:
    return 1.0 / x
  if power == -2.0:
    return 1.0 / (x * x)
  return x**power


@numba.njit(cache=True)
def _equilibrium_price_reward(quantity, costs, constants, t, state_action,
                              out):
  """r = (p_t - c0) q - c1 q^2 - c2 h - (c2 + c3) max(q - s, 0) - c4 s,
  p_t = (d / (sum L_t q + e0))^(1 / sigma) (equilibrium_price.py)."""
  demand = 0.0
  for i in range(quantity.shape[0]):
    demand += state_action[i] * quantity[i]
  price = _torch_pow(constants[0] / (demand + constants[1]), constants[2])
  margin = price - constants[3]
  for i in range(quantity.shape[0]):
    out[i] = (margin * quantity[i] + costs[0, i] + costs[1, i] + costs[2, i]
              + costs[3, i])
  return out


def _equilibrium_price(fn, env):
  c0, c1, c2, c3, c4 = (_scalar(c, env) for c in fn.c)
  s, q, h = (_array(x).reshape(-1)
             for x in (fn.s_tensor, fn.q_tensor, fn.h_tensor))
  costs = np.stack([-c1 * (q * q), -c2 * h,
                    -(c2 + c3) * np.maximum(q - s, 0.0), -c4 * s])
  constants = np.array([_scalar(fn.d, env), _scalar(fn.e0, env),
                        _scalar(1 / float(fn.sigma), env), c0])
  return (_split(tuple(fn.q_tensor.shape), env),
          functools.partial(_equilibrium_price_reward, q, costs, constants))


@numba.njit(cache=True)
def _left_right_reward(num_actions, t, state_action, out):
  """r[1, :] = -mu_t(1), r[2, :] = -2 mu_t(2), r[0, :] = 0 (left_right.py)."""
  values = (0.0, -_mass(state_action, num_actions, 1),
            -(2.0 * _mass(state_action, num_actions, 2)))
  for s in range(3):
    for a in range(num_actions):
      out[s * num_actions + a] = values[s]
  return out


def _left_right(fn, env):
  num_actions = _sizes(env)[1]  # MFGLib's RewardFn takes env.A
  return (3, num_actions), functools.partial(_left_right_reward, num_actions)


@numba.njit(cache=True, inline="always")
def _mean_position(state_action, num_states, num_actions):
  """m_t = sum_s (s - el) mu_t(s), el = (|S| - 1) / 2."""
  el = (num_states - 1) // 2
  total = 0.0
  for s in range(num_states):
    total += (s - el) * _mass(state_action, num_actions, s)
  return total


@numba.njit(cache=True)
def _linear_quadratic_reward(tables, constants, horizon, t, state_action,
                             out):
  """r = -c_term / 2 (m_t - x)^2 at t = T, else (-a^2 / 2 + q a (m_t - x) -
  kappa / 2 (m_t - x)^2) delta, x = s - el, a the action (-m..m)
  (linear_quadratic.py)."""
  num_states = tables.shape[1]
  num_actions = tables.shape[2]
  mean = _mean_position(state_action, num_states, num_actions)
  for s in range(num_states):
    for a in range(num_actions):
      x = mean - tables[2, s, a]
      if t == horizon:
        out[s * num_actions + a] = constants[0] * (x * x)
      else:
        out[s * num_actions + a] = (
            tables[0, s, a] + tables[1, s, a] * x - constants[1] * (x * x)
        ) * constants[2]
  return out


def _linear_quadratic_reward_port(fn, env):
  tables = np.stack([_array(fn.r_c1), _array(fn.r_c21), _array(fn.r_c22)])
  constants = np.array([_scalar(-0.5 * float(fn.c_term), env),
                        _scalar(0.5 * float(fn.kappa), env),
                        _scalar(fn.delta, env)])
  return tables.shape[1:], functools.partial(
      _linear_quadratic_reward, tables, constants, int(fn.T))


@numba.njit(cache=True)
def _linear_quadratic_transition(noise, noise_pr, constants, el_m, t,
                                 state_action, out):
  """s' = clip(round_half_even(s - el + (k (m_t - s + el) + a - m) delta
  + sigma eps sqrt(delta)), -el, el) with probability pr(eps), for eps in
  fn.epsilon (linear_quadratic.py)."""
  el, m = el_m[0], el_m[1]
  num_states, num_actions = 2 * el + 1, 2 * m + 1
  k, delta = constants[0], constants[1]
  mean = _mean_position(state_action, num_states, num_actions)
  out.fill(0.0)
  for s in range(num_states):
    for a in range(num_actions):
      centre = (s - el) + ((k * ((mean - s) + el) + a) - m) * delta
      for j in range(noise.shape[0]):
        nxt = int(np.rint(centre + noise[j]))
        nxt = min(max(-el, nxt), el)
        out[s * num_actions + a, nxt + el] += noise_pr[j]
  return out


def _linear_quadratic_transition_port(fn, env):
  # sigma eps sqrt(delta), as MFGLib multiplies (float64 elementwise).
  noise = float(fn.sigma) * _array(fn.epsilon) * math.sqrt(float(fn.delta))
  constants = np.array([_scalar(fn.k, env), _scalar(fn.delta, env)])
  el_m = np.array([int(fn.el), int(fn.m)], dtype=np.int64)
  return (2 * el_m + 1).tolist(), functools.partial(
      _linear_quadratic_transition, noise, _array(fn.epsilon_pr), constants,
      el_m)


@numba.njit(cache=True)
def _random_linear_reward(r1, r2, t, state_action, out):
  """r = r1 @ L_t + r2 (random_linear.py)."""
  n = r1.shape[0]
  for s in range(n):
    for a in range(n):
      total = 0.0
      for i in range(n):
        total += r1[s, i] * state_action[i * n + a]
      out[s * n + a] = total + r2[s, a]
  return out


@numba.njit(cache=True)
def _random_linear_transition(p1, p2, t, state_action, out):
  """P[., s, a] = softmax over s' of (p1[s'] @ L_t + p2[s'])[s, a]
  (random_linear.py)."""
  n = p1.shape[0]
  for s in range(n):
    for a in range(n):
      row = out[s * n + a]
      top = -np.inf
      for nxt in range(n):
        total = 0.0
        for i in range(n):
          total += p1[nxt, s, i] * state_action[i * n + a]
        row[nxt] = total + p2[nxt, s, a]
        top = max(top, row[nxt])
      norm = 0.0
      for nxt in range(n):
        row[nxt] = math.exp(row[nxt] - top)
        norm += row[nxt]
      for nxt in range(n):
        row[nxt] /= norm
  return out


def _random_linear_reward_port(fn, env):
  r1 = _array(fn.r1)
  return r1.shape, functools.partial(_random_linear_reward, r1,
                                     _array(fn.r2))


def _random_linear_transition_port(fn, env):
  p1 = _array(fn.p1)
  return p1.shape[1:], functools.partial(_random_linear_transition, p1,
                                         _array(fn.p2))


@numba.njit(cache=True)
def _rock_paper_scissors_reward(t, state_action, out):
  """r[1] = 2 mu(3) - mu(2), r[2] = 4 mu(1) - 2 mu(3), r[3] = 6 mu(2) -
  3 mu(1), r[0] = 0, for every action (rock_paper_scissors.py)."""
  mu1 = _mass(state_action, 3, 1)
  mu2 = _mass(state_action, 3, 2)
  mu3 = _mass(state_action, 3, 3)
  values = (0.0, 2.0 * mu3 - mu2, 4.0 * mu1 - 2.0 * mu3, 6.0 * mu2 - 3.0 * mu1)
  for s in range(4):
    for a in range(3):
      out[s * 3 + a] = values[s]
  return out


def _rock_paper_scissors(fn, env):
  return (4, 3), _rock_paper_scissors_reward


@numba.njit(cache=True)
def _susceptible_infected_transition(t, state_action, out):
  """Susceptible going out: infected w.p. 0.9^2 mu_t(infected); distancing:
  stays susceptible; infected: recovers w.p. 0.3 (susceptible_infected.py)."""
  infection = _INFECTION * _mass(state_action, 2, 1)
  out[0, 0] = 1.0 - infection
  out[0, 1] = infection
  out[1, 0] = 1.0
  out[1, 1] = 0.0
  for row in range(2, 4):
    out[row, 0] = 0.3
    out[row, 1] = 0.7
  return out


def _susceptible_infected(fn, env):
  return (2, 2), _susceptible_infected_transition


# name -> (RewardFn port builder, TransitionFn port builder), each called as
# builder(fn, env) -> (sizes, port): the port and the (|S|, |A|) its arrays
# were built for (numba does not check bounds: a port runs only on those).
_PORTS = {
    "beach_bar": (_beach_bar, _stored_transition),
    "building_evacuation": (_building_evacuation, _stored_transition),
    "conservative_treasure_hunting": (_treasure_hunting_reward,
                                      _treasure_hunting_transition),
    "crowd_motion": (_crowd_motion, _stored_transition),
    "equilibrium_price": (_equilibrium_price, _stored_transition),
    "left_right": (_left_right, _stored_transition),
    "linear_quadratic": (_linear_quadratic_reward_port,
                         _linear_quadratic_transition_port),
    "random_linear": (_random_linear_reward_port,
                      _random_linear_transition_port),
    "rock_paper_scissors": (_rock_paper_scissors, _stored_transition),
    "susceptible_infected": (_stored_reward, _susceptible_infected),
}


def _port(fn, env, class_name: str, which: int) -> Callable | None:
  kind = type(fn)
  module = kind.__module__
  if kind.__name__ != class_name or not module.startswith(_EXAMPLES):
    return None
  builders = _PORTS.get(module[len(_EXAMPLES):])
  if builders is None:
    return None
  sizes, port = builders[which](fn, env)
  return port if sizes is not None and tuple(sizes) == _sizes(env) else None


def native_functions(env) -> tuple[Callable | None, Callable | None]:
  """(reward, transition): numba ports of env.reward_fn and env.transition_fn
  where they are one of MFGLib's ten examples' RewardFn / TransitionFn
  (recognised by their class: type(fn).__module__ ==
  "mfglib.env.examples.<name>" and __name__ "RewardFn"/"TransitionFn") built
  for env's sizes |S| and |A|, else None for that function.

  reward(t, state_action, out) -> out: state_action (|S| |A|,) float64, L_t
    flattened in C order (states then actions, each in C order); out
    (|S| |A|,) float64, r_t flattened the same way, written in place and
    returned.
  transition(t, state_action, out) -> out: out (|S| |A|, |S|) float64, row
    (s, a) (C-order flat pair index), column s' (flat): P_t[s', s, a],
    written in place (every entry) and returned.
  """
  return (_port(env.reward_fn, env, "RewardFn", 0),
          _port(env.transition_fn, env, "TransitionFn", 1))
