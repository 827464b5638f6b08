"""Compiled trace of the logit QRE branch of a normal-form game.

The same math as `homotopy._Tracer` on a one-shot game with one state (its
equations `homotopy._Equations._one_shot_evaluate`, its step control, chord
Newton corrector, landing, stopping rules and bifurcation handling; see the
module docstring of `homotopy` and `docs/design.md`), compiled with numba:
on games of a few actions each step of the numpy path is 10-25 numpy calls
of interpreter overhead (about 100 microseconds), which this removes.
`tests/test_homotopy.py` checks that both give the same branch to 1e-10.

Data of a game with N players, K legal actions in all and P pure profiles
(over legal actions): `payoffs` (N, P) the scaled payoffs u_i(p) of each
profile, `actions` (P, N) the variable (0..K-1) of each player's action in
each profile, `starts` (N + 1) the players' first variables. The unknowns
are u = (y, lambda), y the log-probabilities.

The LU factorisation is written out (partial pivoting as LAPACK's getf2):
the sign of det [DH; tangent] comes from its pivots and diagonal.
"""

import math

import numba
import numpy as np

# Ways a trace ends (`trace`'s status).
REACHED_TEMPERATURE = 0
REACHED_REGRET = 1
MAX_STEPS = 2
STEP_TOO_SMALL = 3
NON_FINITE = 4
MAX_LAMBDA = 5
SINGULAR_START = 6

# The `homotopy.Settings` fields `trace` takes, in order, and their indices.
SETTINGS = ("first_step", "max_step_growth", "min_step", "max_distance",
            "target_distance", "min_cosine", "corrector_tolerance",
            "tolerance", "max_lambda", "bifurcation_perturbation",
            "bifurcation_jump_step", "max_corrector_iterations", "max_steps")
(FIRST_STEP, MAX_STEP_GROWTH, MIN_STEP, MAX_DISTANCE, TARGET_DISTANCE,
 MIN_COSINE, CORRECTOR_TOLERANCE, TOLERANCE, MAX_LAMBDA_SETTING,
 BIFURCATION_PERTURBATION, BIFURCATION_JUMP_STEP, MAX_CORRECTOR_ITERATIONS,
 MAX_STEPS_SETTING) = range(len(SETTINGS))


@numba.njit(cache=True)
def _max_abs(values):
  """max |values| (NaN if any is NaN, as numpy's max)."""
  largest = 0.0
  for value in values:
    magnitude = abs(value)
    if magnitude != magnitude:
      return magnitude
    if magnitude > largest:
      largest = magnitude
  return largest


@numba.njit(cache=True)
def _dot(a, b):
  total = 0.0
  for k in range(a.shape[0]):
    total += a[k] * b[k]
  return total


@numba.njit(cache=True)
def _axpy(x, a, y):
  """A new array x + a y."""
  out = np.empty(x.shape[0])
  for k in range(x.shape[0]):
    out[k] = x[k] + a * y[k]
  return out


@numba.njit(cache=True)
def _lu(matrix, pivots):
  """In-place LU with partial pivoting of a square matrix (row swaps
  recorded in `pivots`, 0-based as scipy's getrf); returns LAPACK's info
  (0, or 1 + the first zero pivot)."""
  n = matrix.shape[0]
  info = 0
  for k in range(n):
    pivot = k
    best = abs(matrix[k, k])
    for i in range(k + 1, n):
      magnitude = abs(matrix[i, k])
      if magnitude > best:
        best = magnitude
        pivot = i
    pivots[k] = pivot
    if matrix[pivot, k] == 0.0:
      if info == 0:
        info = k + 1
      continue
    if pivot != k:
      for j in range(n):
        matrix[k, j], matrix[pivot, j] = matrix[pivot, j], matrix[k, j]
    inverse = 1.0 / matrix[k, k]
    for i in range(k + 1, n):
      matrix[i, k] *= inverse
    for i in range(k + 1, n):
      factor = matrix[i, k]
      if factor != 0.0:
        for j in range(k + 1, n):
          matrix[i, j] -= factor * matrix[k, j]
  return info


@numba.njit(cache=True)
def _lu_solve(lu, pivots, rhs):
  """Solves in place with the factors of `_lu`."""
  n = lu.shape[0]
  for k in range(n):
    pivot = pivots[k]
    if pivot != k:
      rhs[k], rhs[pivot] = rhs[pivot], rhs[k]
  for i in range(n):
    total = rhs[i]
    for j in range(i):
      total -= lu[i, j] * rhs[j]
    rhs[i] = total
  for i in range(n - 1, -1, -1):
    total = rhs[i]
    for j in range(i + 1, n):
      total -= lu[i, j] * rhs[j]
    rhs[i] = total / lu[i, i]


@numba.njit(cache=True)
def rewards(pi, payoffs, actions, out):
  """out[k] = u_i(a; pi_-i) for the variable k = (i, a), at the flat
  probabilities `pi` (K)."""
  num_players = actions.shape[1]
  out[:] = 0.0
  if num_players == 3:
    # Unrolled as in `_crosses`.
    for p in range(actions.shape[0]):
      a, b, c = actions[p, 0], actions[p, 1], actions[p, 2]
      out[a] += payoffs[0, p] * pi[b] * pi[c]
      out[b] += payoffs[1, p] * pi[a] * pi[c]
      out[c] += payoffs[2, p] * pi[a] * pi[b]
    return
  for p in range(actions.shape[0]):
    for i in range(num_players):
      weight = payoffs[i, p]
      for m in range(num_players):
        if m != i:
          weight *= pi[actions[p, m]]
      out[actions[p, i]] += weight


@numba.njit(cache=True)
def _crosses(pi, payoffs, actions, out):
  """out[(i, a), (j, b)] = u_i(a, b; pi_-ij) (0 for i = j), (K, K)."""
  num_players = actions.shape[1]
  out[:, :] = 0.0
  if num_players == 3:
    # The loop below unrolled (the same products in the same order): most
    # of a 3-player trace's time is spent here.
    for p in range(actions.shape[0]):
      a, b, c = actions[p, 0], actions[p, 1], actions[p, 2]
      u_a, u_b, u_c = payoffs[0, p], payoffs[1, p], payoffs[2, p]
      out[a, b] += u_a * pi[c]
      out[a, c] += u_a * pi[b]
      out[b, a] += u_b * pi[c]
      out[b, c] += u_b * pi[a]
      out[c, a] += u_c * pi[b]
      out[c, b] += u_c * pi[a]
    return
  for p in range(actions.shape[0]):
    for i in range(num_players):
      row = actions[p, i]
      for j in range(num_players):
        if j == i:
          continue
        weight = payoffs[i, p]
        for m in range(num_players):
          if m != i and m != j:
            weight *= pi[actions[p, m]]
        out[row, actions[p, j]] += weight


@numba.njit(cache=True)
def workspace(size):
  """Scratch arrays of the compiled functions for K = `size` variables:
  h (K), augmented (K + 1, K + 1), factors (K, K), crosses (K, K), values
  (K), pi (K), sigma (K), pivots (K + 1), rhs (K + 1)."""
  return (np.empty(size), np.empty((size + 1, size + 1)),
          np.empty((size, size)), np.empty((size, size)), np.empty(size),
          np.empty(size), np.empty(size), np.empty(size + 1, dtype=np.int64),
          np.empty(size + 1))


@numba.njit(cache=True)
def _log_softmax_equations(u, starts, perturbation, work):
  """H = y - lambda u + logsumexp(lambda u) per player into h, plus
  `perturbation` on the first player's equations, from work's `values`
  (u); the softmax of lambda u into `sigma`."""
  h, _, _, _, values, _, sigma, _, _ = work
  size = u.shape[0] - 1
  lam = u[size]
  for g in range(len(starts) - 1):
    start, stop = starts[g], starts[g + 1]
    largest = -math.inf
    for k in range(start, stop):
      largest = max(largest, lam * values[k])
    total = 0.0
    for k in range(start, stop):
      sigma[k] = math.exp(lam * values[k] - largest)
      total += sigma[k]
    log_total = math.log(total)
    for k in range(start, stop):
      h[k] = u[k] - (lam * values[k] - largest) + log_total
      sigma[k] /= total
  if perturbation != 0.0:
    for k in range(starts[1]):
      h[k] += perturbation


@numba.njit(cache=True)
def _equations(u, game, perturbation, work):
  """H(y, lambda) into work's h (`_log_softmax_equations`)."""
  payoffs, actions, starts = game
  pi, values = work[5], work[4]
  for k in range(u.shape[0] - 1):
    pi[k] = math.exp(u[k])
  rewards(pi, payoffs, actions, values)
  _log_softmax_equations(u, starts, perturbation, work)


@numba.njit(cache=True)
def _jacobian(u, game, perturbation, work):
  """H into h as `_equations` (u = C pi / (N - 1)), and
  [DH, dH/dlambda; 0] into `augmented`
  (K + 1, K + 1), as `homotopy._Equations._one_shot_evaluate`: rows
  [dq/dy, dq/dlambda] = [lambda C diag(pi), u], then
  dH = I - (I - 1 sigma^T per player) d(q)."""
  payoffs, actions, starts = game
  _, augmented, _, crosses, values, pi, sigma, _, rhs = work
  size = u.shape[0] - 1
  lam = u[size]
  for k in range(size):
    pi[k] = math.exp(u[k])
  _crosses(pi, payoffs, actions, crosses)
  for k in range(size):
    total = 0.0
    for j in range(size):
      total += crosses[k, j] * pi[j]
    values[k] = total / (actions.shape[1] - 1)  # N - 1 pairs per player
  _log_softmax_equations(u, starts, perturbation, work)
  for k in range(size):
    for j in range(size):
      augmented[k, j] = crosses[k, j] * (lam * pi[j])
    augmented[k, size] = values[k]
  mean = rhs  # scratch
  for g in range(len(starts) - 1):
    start, stop = starts[g], starts[g + 1]
    mean[:] = 0.0
    for k in range(start, stop):
      for j in range(size + 1):
        mean[j] += sigma[k] * augmented[k, j]
    for k in range(start, stop):
      for j in range(size + 1):
        augmented[k, j] = mean[j] - augmented[k, j]
      augmented[k, k] += 1.0
  augmented[size, :] = 0.0


@numba.njit(cache=True)
def _gains(pi, values, starts, scale, gains):
  """gains[i] = scale x (max_a values(i, a) - sum_a values(i, a) pi(i, a)),
  the deviation gains when `values` are u_i(a; pi_-i)."""
  for g in range(len(starts) - 1):
    start, stop = starts[g], starts[g + 1]
    best = -math.inf
    mean = 0.0
    for k in range(start, stop):
      best = max(best, values[k])
      mean += values[k] * pi[k]
    gains[g] = scale * (best - mean)


@numba.njit(cache=True)
def regret(u, game, scale, work):
  """The largest deviation gain (payoff units: `scale` converts) at the
  normalised probabilities of y = u[:-1]."""
  payoffs, actions, starts = game
  _, _, _, _, values, pi, _, _, _ = work
  num_players = actions.shape[1]
  for g in range(num_players):
    start, stop = starts[g], starts[g + 1]
    largest = -math.inf
    for k in range(start, stop):
      largest = max(largest, u[k])
    total = 0.0
    for k in range(start, stop):
      pi[k] = math.exp(u[k] - largest)
      total += pi[k]
    for k in range(start, stop):
      pi[k] /= total
  rewards(pi, payoffs, actions, values)
  gains = np.empty(num_players)
  _gains(pi, values, starts, scale, gains)
  worst = -math.inf
  for gain in gains:
    worst = max(worst, gain)
  return worst


@numba.njit(cache=True)
def _tangent(augmented, previous, pivots, rhs):
  """The unit tangent (null vector of DH) oriented as `previous`; the last
  row of `augmented` is overwritten by `previous` and the matrix by its
  LU factors. Returns (tangent, info of the LU)."""
  n = augmented.shape[0]
  augmented[n - 1, :] = previous
  info = _lu(augmented, pivots)
  rhs[:] = 0.0
  rhs[n - 1] = 1.0
  _lu_solve(augmented, pivots, rhs)
  length = math.sqrt(_dot(rhs, rhs))
  tangent = np.empty(n)
  for k in range(n):
    tangent[k] = rhs[k] / length
  if _dot(tangent, previous) < 0:
    for k in range(n):
      tangent[k] = -tangent[k]
  return tangent, info


@numba.njit(cache=True)
def _correct(v, tangent, max_first, tolerance, min_cosine, max_iterations,
             game, perturbation, work):
  """Chord Newton on {H = 0, tangent . (u - v) = 0} from the predicted
  point v, as `homotopy._Tracer._correct`.

  Returns (u, ok, first step length, |H(u)|, orientation, tangent at u,
  evaluations).
  """
  h, augmented, _, _, _, _, _, pivots, rhs = work
  size = v.shape[0] - 1
  _jacobian(v, game, perturbation, work)
  norm = _max_abs(h)
  new_tangent, _ = _tangent(augmented, tangent, pivots, rhs)
  length = 0.0
  # `_tangent` normalised and oriented it; its raw length is
  # recomputed for the finiteness test.
  for k in range(size + 1):
    length += rhs[k] * rhs[k]
  if not (math.isfinite(length) and math.isfinite(norm)):
    return v, False, math.inf, norm, 0, tangent, 1
  # sign det [DH; tangent] = (-1)^(row swaps + negative pivots).
  flips = 0
  for k in range(size + 1):
    if pivots[k] != k:
      flips += 1
    if augmented[k, k] < 0:
      flips += 1
  orientation = -1 if flips % 2 else 1
  if abs(_dot(new_tangent, tangent)) < min_cosine:
    return v, False, math.inf, norm, orientation, tangent, 1
  first = -1.0
  evaluations = 1
  for _ in range(max_iterations):
    for k in range(size):
      rhs[k] = -h[k]
    rhs[size] = 0.0
    _lu_solve(augmented, pivots, rhs)
    v = _axpy(v, 1.0, rhs)
    if first < 0:
      first = _max_abs(rhs)
      if first > max_first:
        return v, False, first, norm, orientation, tangent, evaluations
    _equations(v, game, perturbation, work)
    evaluations += 1
    previous = norm
    norm = _max_abs(h)
    # In probability units (homotopy._Tracer._correct).
    if norm <= tolerance * (1.0 + abs(v[size])):
      weighted = 0.0
      if norm > tolerance:
        for k in range(size):
          term = abs(h[k]) * math.exp(min(v[k], 0.0))
          if term != term or term > weighted:
            weighted = term
      if weighted <= tolerance:
        return v, True, first, norm, orientation, new_tangent, evaluations
    if not math.isfinite(norm) or norm > 0.5 * previous:
      break
  return v, False, first, norm, orientation, tangent, evaluations


@numba.njit(cache=True)
def _record(points, num_points, u, residual):
  """Appends (u, residual) to the rows of `points` in use, growing it."""
  if num_points == points.shape[0]:
    grown = np.empty((2 * num_points, points.shape[1]))
    grown[:num_points] = points
    points = grown
  points[num_points, :-1] = u
  points[num_points, -1] = residual
  return points, num_points + 1


@numba.njit(cache=True)
def _land(v, lam, game, tolerance, work):
  """Newton in y at fixed lambda from v, chord steps (the last factored
  Jacobian) while they contract the residual tenfold, as
  `homotopy._Tracer._land`; returns (u, ok, |H(u)|, evaluations)."""
  h, augmented, factors, _, _, _, _, pivots, rhs = work
  size = v.shape[0] - 1
  w = np.empty(size + 1)
  w[:] = v
  w[size] = lam
  last = math.inf
  factored = False
  norm = math.inf
  evaluations = 0
  for _ in range(50):
    jacobian = not factored
    if jacobian:
      _jacobian(w, game, 0.0, work)
    else:
      _equations(w, game, 0.0, work)
    evaluations += 1
    norm = _max_abs(h)
    if norm <= tolerance * (1.0 + lam):
      break
    if not math.isfinite(norm):
      break
    if not jacobian and norm > 0.1 * last:
      _jacobian(w, game, 0.0, work)
      evaluations += 1
      jacobian = True
    elif norm >= last:
      break
    last = norm
    if jacobian:
      factors[:, :] = augmented[:size, :size]
      factored = True
      if _lu(factors, pivots[:size]) > 0:
        return w, False, norm, evaluations
    rhs[:size] = h
    _lu_solve(factors, pivots[:size], rhs[:size])
    for k in range(size):
      w[k] -= rhs[k]
  return w, norm <= 1e-7 * (1.0 + lam), norm, evaluations


@numba.njit(cache=True)
def trace(payoffs, actions, starts, target, maxregret, scale, settings):
  """Follows the branch from the uniform profile (lambda = 0), as
  `homotopy._Tracer.run` and `_trace`.

  Args:
    payoffs, actions, starts: the game (module docstring; arrays, not a
      tuple: numba types a tuple argument slowly at every call).
    target: internal lambda to stop at, or NaN.
    maxregret: stop at the first accepted point with regret <= this
      (payoff units), or NaN.
    scale: payoff range times the initial state's probability (regrets in
      payoff units).
    settings: the `homotopy.Settings` fields named in `SETTINGS`, in
      that order (float array).

  Returns:
    (u (K + 1), status, accepted steps, Newton iterations, step, points
    (n, K + 2): the recorded (y, lambda, residual) in order).
  """
  game = payoffs, actions, starts
  size = starts[-1]
  work = workspace(size)
  first_step = settings[FIRST_STEP]
  max_step_growth = settings[MAX_STEP_GROWTH]
  min_step = settings[MIN_STEP]
  max_distance = settings[MAX_DISTANCE]
  target_distance = settings[TARGET_DISTANCE]
  min_cosine = settings[MIN_COSINE]
  corrector_tolerance = settings[CORRECTOR_TOLERANCE]
  tolerance = settings[TOLERANCE]
  max_lambda = settings[MAX_LAMBDA_SETTING]
  bifurcation_perturbation = settings[BIFURCATION_PERTURBATION]
  bifurcation_jump_step = settings[BIFURCATION_JUMP_STEP]
  max_iterations = int(settings[MAX_CORRECTOR_ITERATIONS])
  max_steps = int(settings[MAX_STEPS_SETTING])
  has_target = not math.isnan(target)
  has_regret = not math.isnan(maxregret)
  h, augmented, _, _, _, _, _, pivots, rhs = work
  newton = 0
  steps = 0

  # The uniform profile, recorded with its residual.
  u = np.zeros(size + 1)
  for g in range(len(starts) - 1):
    for k in range(starts[g], starts[g + 1]):
      u[k] = -math.log(starts[g + 1] - starts[g])
  _equations(u, game, 0.0, work)
  points, num_points = _record(np.empty((64, size + 2)), 0, u,
                               _max_abs(h))
  _jacobian(u, game, 0.0, work)
  start = np.zeros(size + 1)
  start[size] = 1.0
  tangent, info = _tangent(augmented, start, pivots, rhs)
  if info > 0:
    return u, SINGULAR_START, steps, newton, first_step, points[:num_points]
  step = first_step
  orientation = 0
  perturbation = 0.0
  countdown = 0.0
  # Identities of points, for "the tangent was retaken at u".
  u_id = 0
  next_id = 1
  retangent_id = -1
  # Where a crossing was first seen: u, its id, tangent, step and the
  # corrected point (v, first, residual, orientation, tangent at v).
  has_crossing = False
  crossing_u = crossing_v = u
  crossing_tangent = crossing_new_tangent = tangent
  crossing_id = crossing_orientation = 0
  crossing_step = crossing_first = crossing_residual = 0.0
  while True:
    if steps >= max_steps:
      return u, MAX_STEPS, steps, newton, step, points[:num_points]
    if not step >= min_step:
      return u, STEP_TOO_SMALL, steps, newton, step, points[:num_points]
    if not math.isfinite(_dot(u, u)):
      return u, NON_FINITE, steps, newton, step, points[:num_points]
    if u[size] > max_lambda:
      return u, MAX_LAMBDA, steps, newton, step, points[:num_points]
    if (has_crossing and step < bifurcation_jump_step
        and retangent_id != u_id):
      # Retry from u with the tangent at u.
      newton += 1
      _jacobian(u, game, perturbation, work)
      tangent, info = _tangent(augmented, tangent, pivots, rhs)
      if info > 0:
        return u, SINGULAR_START, steps, newton, step, points[:num_points]
      retangent_id = u_id
      step = crossing_step
      continue
    if has_crossing and step < bifurcation_jump_step:
      # Step across the crossing from where it was seen.
      u, u_id, tangent, step = (crossing_u, crossing_id, crossing_tangent,
                                crossing_step)
      v, first, residual = crossing_v, crossing_first, crossing_residual
      orientation, new_tangent = crossing_orientation, crossing_new_tangent
      has_crossing = False
      perturbation = 0.0
    else:
      tolerance_now = corrector_tolerance
      if perturbation != 0.0:
        tolerance_now = min(tolerance_now, 1e-3 * perturbation)
      v, ok, first, residual, new_orientation, new_tangent, evaluations = (
          _correct(_axpy(u, step, tangent), tangent,
                   max_distance * max(1.0, step), tolerance_now, min_cosine,
                   max_iterations, game, perturbation, work))
      newton += evaluations
      if not ok:
        step *= 0.5
        continue
      if orientation != 0 and new_orientation != orientation:
        # A bifurcation between u and v: retry shorter on the unfolded
        # curves.
        if not has_crossing:
          has_crossing = True
          crossing_u, crossing_id, crossing_tangent, crossing_step = (
              u, u_id, tangent, step)
          crossing_v, crossing_first, crossing_residual = v, first, residual
          crossing_orientation = new_orientation
          crossing_new_tangent = new_tangent
        if perturbation == 0.0:
          perturbation = bifurcation_perturbation
          countdown = 2.0 * step
        step *= 0.5
        continue
      orientation = new_orientation
    if perturbation != 0.0:
      countdown -= step
      if countdown < 0:
        perturbation = 0.0
        has_crossing = False
    if has_target and u[size] < target <= v[size]:
      fraction = (target - u[size]) / (v[size] - u[size])
      landed, ok, land_norm, evaluations = _land(
          _axpy(u, fraction, v - u), target, game, tolerance, work)
      newton += evaluations
      perturbation = 0.0
      if not ok:
        step *= 0.5
        continue
      steps += 1
      points, num_points = _record(points, num_points, landed, land_norm)
      return landed, REACHED_TEMPERATURE, steps, newton, step, points[
          :num_points]
    steps += 1
    u = v
    u_id = next_id
    next_id += 1
    tangent = new_tangent
    points, num_points = _record(points, num_points, u, residual)
    if has_regret and u[size] > 0 and regret(u, game, scale,
                                               work) <= maxregret:
      landed, _, land_norm, evaluations = _land(u, u[size], game, tolerance,
                                                work)
      newton += evaluations
      points, num_points = _record(points, num_points - 1, landed,
                                   land_norm)
      return landed, REACHED_REGRET, steps, newton, step, points[:num_points]
    growth = math.sqrt(target_distance * max(1.0, step) /
                       max(first, 1e-300))
    step *= min(max_step_growth, max(0.5, growth))


@numba.njit(cache=True)
def certificate(pi, lam, payoffs, actions, starts, scale):
  """(fixed-point residual, deviation gains) at flat normalised
  probabilities `pi` (K): max |pi - softmax(lambda u(pi))| over the
  players' actions (probability units; NaN at lambda = 0) and per player
  `scale` x (max_a u_i(a; pi_-i) - u_i(pi)) (payoff units), as
  `homotopy.fixed_point_residual` and `homotopy._deviation_gains`."""
  size = pi.shape[0]
  work = workspace(size)
  values, sigma = work[4], work[6]
  rewards(pi, payoffs, actions, values)
  gains = np.empty(actions.shape[1])
  _gains(pi, values, starts, scale, gains)
  u = np.zeros(size + 1)  # y = 0: only the softmax is used
  u[size] = lam
  _log_softmax_equations(u, starts, 0.0, work)
  residual = 0.0
  for k in range(size):
    residual = max(residual, abs(pi[k] - sigma[k]))
  if not lam > 0:
    residual = math.nan
  return residual, gains
