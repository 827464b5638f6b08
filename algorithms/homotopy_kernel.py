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
def _evaluate(u, payoffs, actions, starts, perturbation, jacobian, h,
              augmented, crosses, values, pi, exps):
  """H(y, lambda) into h (plus `perturbation` on the first player's
  equations) and, with `jacobian`, [DH, dH/dlambda; 0] into `augmented`
  (K + 1, K + 1); as `homotopy._Equations._one_shot_evaluate`."""
  size = u.shape[0] - 1
  num_players = actions.shape[1]
  lam = u[size]
  for k in range(size):
    pi[k] = math.exp(u[k])
  if jacobian:
    _crosses(pi, payoffs, actions, crosses)
    for k in range(size):
      total = 0.0
      for l in range(size):
        total += crosses[k, l] * pi[l]
      values[k] = total / (num_players - 1)
  else:
    rewards(pi, payoffs, actions, values)
  for g in range(num_players):
    start, stop = starts[g], starts[g + 1]
    largest = -math.inf
    for k in range(start, stop):
      largest = max(largest, lam * values[k])
    total = 0.0
    for k in range(start, stop):
      shifted = lam * values[k] - largest
      exps[k] = math.exp(shifted)
      total += exps[k]
    log_total = math.log(total)
    for k in range(start, stop):
      h[k] = u[k] - (lam * values[k] - largest) + log_total
      exps[k] /= total  # sigma
  if perturbation != 0.0:
    for k in range(starts[1]):
      h[k] += perturbation
  if not jacobian:
    return
  # Rows [dq/dy, dq/dlambda] = [lambda C diag(pi), u]; then
  # dH = I - (I - 1 sigma^T per player) d(q).
  for k in range(size):
    for l in range(size):
      augmented[k, l] = crosses[k, l] * (lam * pi[l])
    augmented[k, size] = values[k]
  mean = np.empty(size + 1)
  for g in range(num_players):
    start, stop = starts[g], starts[g + 1]
    mean[:] = 0.0
    for k in range(start, stop):
      weight = exps[k]
      for l in range(size + 1):
        mean[l] += weight * augmented[k, l]
    for k in range(start, stop):
      for l in range(size + 1):
        augmented[k, l] = mean[l] - augmented[k, l]
      augmented[k, k] += 1.0
  augmented[size, :] = 0.0


@numba.njit(cache=True)
def regret(u, payoffs, actions, starts, scale, values, pi):
  """The largest deviation gain (payoff units: `scale` converts) at the
  normalised probabilities of y = u[:-1]."""
  size = u.shape[0] - 1
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
  rewards(pi[:size], payoffs, actions, values)
  worst = -math.inf
  for g in range(num_players):
    start, stop = starts[g], starts[g + 1]
    best = -math.inf
    mean = 0.0
    for k in range(start, stop):
      best = max(best, values[k])
      mean += values[k] * pi[k]
    worst = max(worst, scale * (best - mean))
  return worst


@numba.njit(cache=True)
def _tangent(augmented, previous, pivots, rhs):
  """The unit tangent (null vector of DH) oriented as `previous`; the last
  row of `augmented` is overwritten. Returns (tangent, info)."""
  n = augmented.shape[0]
  augmented[n - 1, :] = previous
  info = _lu(augmented, pivots)
  rhs[:] = 0.0
  rhs[n - 1] = 1.0
  _lu_solve(augmented, pivots, rhs)
  tangent = rhs / math.sqrt(rhs @ rhs)
  if tangent @ previous < 0:
    tangent = -tangent
  return tangent, info


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
def _land(v, lam, payoffs, actions, starts, tolerance, h, augmented,
          factors, crosses, values, pi, exps, pivots, rhs):
  """Newton in y at fixed lambda from v, chord steps (the last factored
  Jacobian) while they contract the residual tenfold, as
  `homotopy._Tracer._land`; returns (u, ok, |H(u)|, evaluations)."""
  size = v.shape[0] - 1
  w = v.copy()
  w[size] = lam
  last = math.inf
  factored = False
  norm = math.inf
  evaluations = 0
  for _ in range(50):
    jacobian = not factored
    _evaluate(w, payoffs, actions, starts, 0.0, jacobian, h, augmented,
              crosses, values, pi, exps)
    evaluations += 1
    norm = _max_abs(h)
    if norm <= tolerance * (1.0 + lam):
      break
    if not jacobian and norm > 0.1 * last:
      _evaluate(w, payoffs, actions, starts, 0.0, True, h, augmented,
                crosses, values, pi, exps)
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
  """Follows the branch from the uniform profile (lambda = 0).

  Args:
    payoffs, actions, starts: the game (module docstring).
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
  size = starts[-1]
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
  max_corrector_iterations = int(settings[MAX_CORRECTOR_ITERATIONS])
  max_steps = int(settings[MAX_STEPS_SETTING])
  has_target = not math.isnan(target)
  has_regret = not math.isnan(maxregret)

  # Scratch.
  h = np.empty(size)
  augmented = np.empty((size + 1, size + 1))
  factors = np.empty((size, size))
  crosses = np.empty((size, size))
  values = np.empty(size)
  pi = np.empty(size + 1)
  exps = np.empty(size)
  pivots = np.empty(size + 1, dtype=np.int64)
  rhs = np.empty(size + 1)
  points = np.empty((64, size + 2))
  newton = 0
  steps = 0

  # The uniform profile, recorded with its residual.
  u = np.zeros(size + 1)
  for g in range(len(starts) - 1):
    for k in range(starts[g], starts[g + 1]):
      u[k] = -math.log(starts[g + 1] - starts[g])
  _evaluate(u, payoffs, actions, starts, 0.0, False, h, augmented, crosses,
            values, pi, exps)
  points, num_points = _record(points, 0, u, _max_abs(h))

  _evaluate(u, payoffs, actions, starts, 0.0, True, h, augmented, crosses,
            values, pi, exps)
  start = np.zeros(size + 1)
  start[size] = 1.0
  tangent, info = _tangent(augmented, start, pivots, rhs)
  if info > 0:
    return u, SINGULAR_START, steps, newton, first_step, points[:num_points]
  step = first_step
  orientation = 0
  perturbation = 0.0
  countdown = 0.0
  # The point u has an identity (for "the tangent was retaken at u").
  u_id = 0
  next_id = 1
  retangent_id = -1
  has_crossing = False
  crossing_u = u
  crossing_id = 0
  crossing_tangent = tangent
  crossing_step = 0.0
  crossing_v = u
  crossing_first = 0.0
  crossing_new_tangent = tangent
  crossing_residual = 0.0
  crossing_orientation = 0
  while True:
    if steps >= max_steps:
      return u, MAX_STEPS, steps, newton, step, points[:num_points]
    if not step >= min_step:
      return u, STEP_TOO_SMALL, steps, newton, step, points[:num_points]
    if not math.isfinite(u @ u):
      return u, NON_FINITE, steps, newton, step, points[:num_points]
    if u[size] > max_lambda:
      return u, MAX_LAMBDA, steps, newton, step, points[:num_points]
    if (has_crossing and step < bifurcation_jump_step
        and retangent_id != u_id):
      # Retry from u with the tangent at u (homotopy._Tracer._trace).
      newton += 1
      _evaluate(u, payoffs, actions, starts, perturbation, True, h,
                augmented, crosses, values, pi, exps)
      tangent, info = _tangent(augmented, tangent, pivots, rhs)
      if info > 0:
        return u, SINGULAR_START, steps, newton, step, points[:num_points]
      retangent_id = u_id
      step = crossing_step
      continue
    if has_crossing and step < bifurcation_jump_step:
      # Step across the crossing from where it was seen.
      u = crossing_u
      u_id = crossing_id
      tangent = crossing_tangent
      step = crossing_step
      v = crossing_v
      first = crossing_first
      new_tangent = crossing_new_tangent
      residual = crossing_residual
      orientation = crossing_orientation
      has_crossing = False
      perturbation = 0.0
    else:
      # The corrector (homotopy._Tracer._correct).
      tolerance_now = corrector_tolerance
      if perturbation != 0.0:
        tolerance_now = min(tolerance_now, 1e-3 * perturbation)
      max_first = max_distance * max(1.0, step)
      v = u + step * tangent
      _evaluate(v, payoffs, actions, starts, perturbation, True, h,
                augmented, crosses, values, pi, exps)
      newton += 1
      augmented[size, :] = tangent
      _lu(augmented, pivots)
      rhs[:] = 0.0
      rhs[size] = 1.0
      _lu_solve(augmented, pivots, rhs)
      norm = _max_abs(h)
      length = math.sqrt(rhs @ rhs)
      ok = False
      new_orientation = 0
      first = math.inf
      new_tangent = tangent
      if math.isfinite(length) and math.isfinite(norm):
        flips = 0
        for k in range(size + 1):
          if pivots[k] != k:
            flips += 1
          if augmented[k, k] < 0:
            flips += 1
        new_orientation = -1 if flips % 2 else 1
        new_tangent = rhs / length
        cosine = new_tangent @ tangent
        if cosine < 0:
          new_tangent = -new_tangent
        if abs(cosine) >= min_cosine:
          first = -1.0
          for _ in range(max_corrector_iterations):
            for k in range(size):
              rhs[k] = -h[k]
            rhs[size] = 0.0
            _lu_solve(augmented, pivots, rhs)
            v = v + rhs
            if first < 0:
              first = _max_abs(rhs)
              if first > max_first:
                break
            _evaluate(v, payoffs, actions, starts, perturbation, False, h,
                      augmented, crosses, values, pi, exps)
            newton += 1
            previous = norm
            norm = _max_abs(h)
            if norm <= tolerance_now * (1.0 + abs(v[size])):
              accept = norm <= tolerance_now
              if not accept:
                weighted = 0.0
                for k in range(size):
                  term = abs(h[k]) * math.exp(min(v[k], 0.0))
                  if term != term or term > weighted:
                    weighted = term
                accept = weighted <= tolerance_now
              if accept:
                ok = True
                break
            if not math.isfinite(norm) or norm > 0.5 * previous:
              break
      if not ok:
        step *= 0.5
        continue
      residual = norm
      if orientation != 0 and new_orientation != orientation:
        # A bifurcation between u and v: retry shorter on the unfolded
        # curves.
        if not has_crossing:
          has_crossing = True
          crossing_u = u
          crossing_id = u_id
          crossing_tangent = tangent
          crossing_step = step
          crossing_v = v
          crossing_first = first
          crossing_new_tangent = new_tangent
          crossing_residual = residual
          crossing_orientation = new_orientation
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
          u + fraction * (v - u), target, payoffs, actions, starts,
          tolerance, h, augmented, factors, crosses, values, pi, exps,
          pivots, rhs)
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
    if has_regret and u[size] > 0 and regret(
        u, payoffs, actions, starts, scale, values, pi) <= maxregret:
      landed, _, land_norm, evaluations = _land(
          u, u[size], payoffs, actions, starts, tolerance, h, augmented,
          factors, crosses, values, pi, exps, pivots, rhs)
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
  num_players = actions.shape[1]
  values = np.empty(pi.shape[0])
  rewards(pi, payoffs, actions, values)
  gains = np.empty(num_players)
  residual = 0.0
  for g in range(num_players):
    start, stop = starts[g], starts[g + 1]
    best = -math.inf
    mean = 0.0
    for k in range(start, stop):
      best = max(best, values[k])
      mean += values[k] * pi[k]
    gains[g] = scale * (best - mean)
    largest = lam * best
    total = 0.0
    for k in range(start, stop):
      total += math.exp(lam * values[k] - largest)
    for k in range(start, stop):
      residual = max(residual, abs(
          pi[k] - math.exp(lam * values[k] - largest) / total))
  if not lam > 0:
    residual = math.nan
  return residual, gains
