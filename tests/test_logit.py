"""The logit family (vsg_spiel.logit) against scipy.special."""

import numpy as np
import pytest
from scipy import special

from vsg_spiel import logit


@pytest.fixture(name="logits")
def logits_fixture():
  rng = np.random.default_rng(0)
  logits = rng.normal(scale=50.0, size=(6, 5, 4))
  legal = rng.random(logits.shape) < 0.7
  return logits, legal


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_logit_family_equals_scipy_special(logits, axis):
  logits, legal = logits
  legal = legal.copy()
  np.moveaxis(legal, axis, 0)[0] = True  # a legal action in every slice
  masked = np.where(legal, logits, -np.inf)
  np.testing.assert_allclose(logit.log_softmax(logits, legal, axis),
                             special.log_softmax(masked, axis=axis),
                             rtol=1e-14, atol=1e-12)
  np.testing.assert_allclose(logit.softmax(logits, legal, axis),
                             special.softmax(masked, axis=axis),
                             rtol=1e-14, atol=1e-300)
  np.testing.assert_allclose(logit.log_sum_exp(logits, legal, axis),
                             special.logsumexp(masked, axis=axis),
                             rtol=1e-14)


def test_soft_expectation_drops_zero_probability_terms():
  log_policy = np.array([[np.log(0.5), np.log(0.5), -np.inf]])
  values = np.array([[1.0, 3.0, -7.0]])
  np.testing.assert_allclose(logit.soft_expectation(log_policy, values),
                             [2.0 + np.log(2.0)], rtol=1e-15)


def test_mirror_step_is_eq_4():
  log_policy = np.array([[np.log(0.2), np.log(0.3), np.log(0.5), -np.inf]])
  q_values = np.array([[1.0, -2.0, 0.5, 4.0]])
  legal = np.array([[True, True, True, True]])
  step = 0.3
  expected = 0.2**0.7 * np.exp(0.3 * 1.0), 0.3**0.7 * np.exp(-0.6), (
      0.5**0.7 * np.exp(0.15))
  expected = np.array(list(expected) + [0.0]) / np.sum(expected)
  np.testing.assert_allclose(
      np.exp(logit.mirror_step(log_policy, q_values, legal, step)),
      [expected], rtol=1e-14)
  # beta = 1: the soft best response, where the prior is 0 too.
  np.testing.assert_allclose(
      np.exp(logit.mirror_step(log_policy, q_values, legal, 1.0)),
      special.softmax(q_values, axis=1), rtol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 0.3, 1e-200])
def test_compiled_rows_equal_the_numpy_path(temperature):
  """softmax and kl_regularised_response on (n, A) float rows (compiled)
  equal the numpy path (taken for the same numbers with actions on axis 0)
  to 1e-12, with illegal actions, zero-probability priors and a row whose
  only supported action is its one legal action."""
  rng = np.random.default_rng(1)
  logits = rng.normal(scale=20.0, size=(50, 6))
  legal = rng.random(logits.shape) < 0.7
  legal[:, 0] = True
  log_prior = np.log(rng.dirichlet(np.ones(6), len(logits)))
  log_prior[rng.random(logits.shape) < 0.2] = -np.inf
  log_prior[:, 0] = np.log(0.5)
  legal[7] = [True] + [False] * 5
  q_values = rng.normal(scale=5.0, size=logits.shape)
  assert logit._rows_of_floats(log_prior, q_values, legal, -1)
  np.testing.assert_allclose(
      logit.softmax(logits, legal, axis=1),
      logit.softmax(logits.T, legal.T, axis=0).T, rtol=1e-12, atol=1e-300)
  compiled = logit.kl_regularised_response(log_prior, q_values, legal,
                                           temperature, axis=1)
  numpy_path = logit.kl_regularised_response(
      log_prior.T, q_values.T, legal.T, temperature, axis=0)
  np.testing.assert_allclose(compiled[0], numpy_path[0].T, rtol=1e-12,
                             atol=1e-12)
  np.testing.assert_allclose(compiled[1], numpy_path[1], rtol=1e-12)
  assert np.all(np.isneginf(compiled[0][~legal | np.isneginf(log_prior)]))
  np.testing.assert_allclose(np.exp(compiled[0][7]), [1, 0, 0, 0, 0, 0])
