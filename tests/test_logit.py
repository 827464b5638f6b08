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
