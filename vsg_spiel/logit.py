"""The logit (soft-max) family over legal actions, in log space.

Every solver of the package keeps policies as log-probabilities, -inf at
illegal actions, and moves them with one of these operations, so that the
max-shift that keeps exp finite is written once:

  * `log_softmax` / `softmax`: log pi(a) = z(a) - log sum_b exp z(b) over the
    legal b (the logit QRE map, Prop. 5.2's soft best response);
  * `log_sum_exp`: the soft value log sum_b exp z(b) over the legal b;
  * `soft_expectation`: E_pi[Q - log pi], with 0 log 0 = 0, so that
    zero-probability actions (pure policies) stay representable;
  * `mirror_step`: the natural-gradient step of eq. 4,
    pi <- pi^(1 - beta) exp(beta Q) / Z;
  * `kl_regularised_response`: pi = pibar exp(Q / alpha) / Z and alpha log Z
    (eq. 12 of MF-BQL), finite for every alpha > 0.

and checks its parameters: `check_temperature` (alpha > 0, and large enough
that returns divided by it stay finite) and `check_step` (beta in (0, 1]).
Arrays carry the actions on `axis` and any leading or trailing axes.

The functions equal `scipy.special.log_softmax`, `softmax` and `logsumexp` on
the masked logits (tests/test_logit.py checks it to 1e-14); they are written
with numpy because scipy's versions cost several times as much on the small
per-layer arrays the solvers pass (logsumexp 7-17x, log_softmax 2-8x in
benchmarks/logit.py), a cost paid several times per layer and iteration; on
large arrays the two cost about the same. `softmax` and
`kl_regularised_response` (half a dozen and a dozen array operations per
call) run compiled (numba) on the (n, A) float arrays the mean-field solvers
pass at every layer (`_softmax_rows`, `_kl_response_rows`: the same numbers
to rounding, checked to 1e-12 in tests/test_logit.py); other shapes keep the
numpy path.
"""

import numba
import numpy as np

from vsg_spiel import parameters

# Solvers that divide rewards by the temperature (Q in units of 1/alpha) need
# returns / alpha below this, which leaves a factor 1e8 of headroom under the
# largest float (1.8e308) for the sums of Q, log pi and soft values.
LARGEST_SCALED_RETURN = 1e300


def log_softmax(logits, legal, axis=-1):
  """log softmax of `logits` over `axis`, restricted to `legal` entries.

  Args:
    logits: array of real scores (finite at legal entries or -inf).
    legal: boolean array broadcastable to `logits`; at least one legal entry
      with a finite logit along `axis`.
    axis: the action axis.

  Returns:
    Array like `logits`: log-probabilities, -inf at illegal entries.
  """
  masked = np.where(legal, logits, -np.inf)
  shifted = masked - masked.max(axis=axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, legal, axis=-1):
  """Probabilities softmax(logits) over the legal entries, 0 at the others."""
  if _rows_of_floats(logits, logits, legal, axis):
    probabilities = np.empty_like(logits)
    _softmax_rows(logits, legal, probabilities)
    return probabilities
  masked = np.where(legal, logits, -np.inf)
  weights = np.exp(masked - masked.max(axis=axis, keepdims=True))
  return weights / weights.sum(axis=axis, keepdims=True)


def log_sum_exp(logits, legal, axis=-1):
  """log sum over the legal entries of exp(logits), along `axis` (removed)."""
  masked = np.where(legal, logits, -np.inf)
  top = masked.max(axis=axis)
  return top + np.log(np.exp(masked - np.expand_dims(top, axis)).sum(axis))


def soft_expectation(log_policy, values, axis=-1):
  """E_pi[values - log pi] along `axis`, with 0 log 0 = 0.

  Args:
    log_policy: log-probabilities, -inf where pi is 0 (illegal actions, or
      legal actions a pure policy never plays).
    values: finite array broadcastable to `log_policy` (0 for the entropy).
    axis: the action axis (removed).
  """
  policy = np.exp(log_policy)
  safe_log = np.where(policy > 0, log_policy, 0.0)
  return np.sum(policy * (values - safe_log), axis=axis)


def mirror_step(log_policy, q_values, legal, step, axis=-1):
  """The natural policy gradient step of eq. 4 in log space:

    log pi' = log_softmax((1 - beta) log pi + beta Q),   beta = `step`.

  With beta = 1 the result is the soft best response softmax(Q) (the prior
  drops out, also where it is 0); with beta < 1 an action of probability 0
  keeps probability 0, as pi^(1 - beta) = 0.

  Args:
    log_policy: (..., A, ...) log pi, -inf at illegal or zero-probability
      actions.
    q_values: soft action values broadcastable to `log_policy`, in units of
      1/alpha.
    legal: boolean mask broadcastable to `log_policy`.
    step: beta in (0, 1].
    axis: the action axis.
  """
  prior = np.where(legal, log_policy, 0.0)
  logits = q_values if step == 1.0 else (1.0 - step) * prior + step * q_values
  return log_softmax(logits, legal, axis=axis)


def kl_regularised_response(log_prior, q_values, legal, temperature,
                            axis=-1):
  """argmax_pi E_pi[Q] - alpha KL(pi || pibar), and its value:

    pi(a) = pibar(a) exp(Q(a) / alpha) / Z,   value = alpha log Z,
    Z = sum_a pibar(a) exp(Q(a) / alpha).

  Computed after subtracting the largest Q on the prior's legal support, so
  that Q / alpha never overflows: for any alpha > 0 the result is finite,
  sums to 1, equals the prior where Q is tied and tends to the best response
  on the prior's support as alpha -> 0.

  Args:
    log_prior: (..., A, ...) log pibar, -inf at illegal actions (and where
      pibar is 0).
    q_values: array like `log_prior`, finite at legal actions, reward units.
    legal: boolean mask like `log_prior`.
    temperature: alpha > 0.
    axis: the action axis.

  Returns:
    (log_posterior, value): log pi like `log_prior` (-inf outside the
    prior's support) and alpha log Z with `axis` removed.
  """
  if _rows_of_floats(log_prior, q_values, legal, axis):
    log_posterior = np.empty_like(log_prior)
    value = np.empty(len(log_prior))
    _kl_response_rows(log_prior, q_values, legal, float(temperature),
                      log_posterior, value)
    return log_posterior, value
  support = legal & (log_prior > -np.inf)
  top = np.max(np.where(support, q_values, -np.inf), axis=axis,
               keepdims=True)
  gaps = np.where(support, q_values - top, 0.0)  # <= 0 on the support
  with np.errstate(over="ignore"):  # -inf for gaps beyond float range
    scaled = gaps / temperature
  logits = np.where(support, log_prior + scaled, -np.inf)
  log_normaliser = np.expand_dims(log_sum_exp(logits, support, axis=axis),
                                  axis)
  value = temperature * log_normaliser + top
  return logits - log_normaliser, np.squeeze(value, axis=axis)


def _rows_of_floats(log_prior, q_values, legal, axis):
  """Whether the arguments are (n, A) C-contiguous float64 arrays (legal
  boolean) of one shape, actions on the last axis: `_kl_response_rows`'s
  case."""
  return (axis in (1, -1) and type(log_prior) is np.ndarray and
          type(q_values) is np.ndarray and type(legal) is np.ndarray and
          log_prior.ndim == 2 and log_prior.shape == q_values.shape ==
          legal.shape and log_prior.dtype == q_values.dtype == np.float64 and
          legal.dtype == np.bool_ and log_prior.flags.c_contiguous and
          q_values.flags.c_contiguous and legal.flags.c_contiguous)


@numba.njit(cache=True)
def _softmax_rows(logits, legal, probabilities):
  """`softmax` on (n, A) rows, into `probabilities`: the numpy path's
  operations in its order, per row."""
  num_rows, width = logits.shape
  for row in range(num_rows):
    top = -np.inf
    for action in range(width):
      if legal[row, action]:
        top = max(top, logits[row, action])
    total = 0.0
    for action in range(width):
      weight = (np.exp(logits[row, action] - top) if legal[row, action]
                else 0.0)
      probabilities[row, action] = weight
      total += weight
    for action in range(width):
      probabilities[row, action] /= total


@numba.njit(cache=True)
def _kl_response_rows(log_prior, q_values, legal, temperature,
                      log_posterior, value):
  """`kl_regularised_response` on (n, A) rows, into `log_posterior` (n, A)
  and `value` (n,): the numpy path's operations in its order, per row (a
  row without support gives NaN, as there)."""
  num_rows, width = log_prior.shape
  for row in range(num_rows):
    top = -np.inf
    for action in range(width):
      if (legal[row, action] and log_prior[row, action] > -np.inf and
          q_values[row, action] > top):
        top = q_values[row, action]
    logit_top = -np.inf
    for action in range(width):
      if legal[row, action] and log_prior[row, action] > -np.inf:
        logit = log_prior[row, action] + (
            q_values[row, action] - top) / temperature
        logit_top = max(logit_top, logit)
      else:
        logit = -np.inf
      log_posterior[row, action] = logit
    total = 0.0
    for action in range(width):
      total += np.exp(log_posterior[row, action] - logit_top)
    log_normaliser = logit_top + np.log(total)
    value[row] = temperature * log_normaliser + top
    for action in range(width):
      log_posterior[row, action] -= log_normaliser


def check_temperature(value, return_bound=0.0, name="temperature"):
  """alpha as a float: finite, > 0 and >= return_bound / 1e300.

  Args:
    value: the temperature.
    return_bound: the largest |return| of the game (0 skips that bound), so
      that return / alpha stays finite in solvers that divide by alpha.
    name: the parameter's name, for the message.

  Raises:
    ValueError: naming the parameter and the bound.
  """
  alpha = parameters.check_real(name, value, 0.0, low_open=True)
  smallest = return_bound / LARGEST_SCALED_RETURN
  if alpha < smallest:
    raise ValueError(
        f"{name} must be >= {smallest:.3g} for this game (its returns reach "
        f"{return_bound:.3g}, and return / {name} must stay below "
        f"{LARGEST_SCALED_RETURN:g} to be computed in floating point); got "
        f"{alpha!r}")
  return alpha


def check_step(value, name="step"):
  """beta in (0, 1] as a float; ValueError naming the parameter."""
  return parameters.check_real(name, value, 0.0, 1.0, low_open=True)
