"""Bayesian logistic regression: data, derivatives, the quadrature ELBO and gradients, and unbiased estimators."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import estimators
from problems.logistic_regression import LogisticRegression
from tests.estimators.checks import Z, assert_unbiased, estimates

PROBLEM = LogisticRegression()
MEAN = np.random.default_rng(0).normal(size=31) * 0.3
SCALE = np.linspace(0.05, 0.3, 31)


def test_data_split_and_standardisation():
    x, y, x_test, y_test = PROBLEM.data
    assert x.shape == (455, 31) and x_test.shape == (114, 31) and PROBLEM.dim == 31
    np.testing.assert_allclose(x[:, :30].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x[:, :30].std(axis=0), 1.0)
    assert set(np.unique(y)) == {0.0, 1.0} and (x[:, 30] == 1).all()


def test_derivatives_of_the_integrand_against_finite_differences():
    w, h = MEAN, 1e-5
    e = np.eye(31)
    fd = np.array([(PROBLEM(w + h * e[j]) - PROBLEM(w - h * e[j])) / (2 * h) for j in range(31)])
    np.testing.assert_allclose(PROBLEM.grad(w), fd, rtol=1e-6, atol=1e-6)
    fd2 = np.array([(PROBLEM.grad(w + h * e[j]) - PROBLEM.grad(w - h * e[j])) / (2 * h) for j in range(31)])
    np.testing.assert_allclose(PROBLEM.hessian(w), fd2, rtol=1e-5, atol=1e-5)


def test_quadrature_objective_and_gradients_against_monte_carlo():
    w = MEAN + SCALE * np.random.default_rng(1).standard_normal((100_000, 31))
    values = PROBLEM(w)
    assert abs(values.mean() - PROBLEM.expected_f(MEAN, SCALE)) < Z * values.std() / math.sqrt(len(values))
    est = estimates(functools.partial(estimators.reparameterization, with_scale=True), PROBLEM, MEAN, SCALE,
                    samples=1, replicates=30_000, seed=2)
    entropy_grad = np.concatenate([np.zeros(31), -1.0 / SCALE])
    truth = np.concatenate([PROBLEM.true_grad(MEAN, SCALE), PROBLEM.true_grad_scale(MEAN, SCALE)]) - entropy_grad
    assert_unbiased(est, truth)
    np.testing.assert_array_equal(PROBLEM.analytic_grad(MEAN, SCALE, True), entropy_grad)
    assert PROBLEM.loss(MEAN, SCALE) == pytest.approx(PROBLEM.expected_f(MEAN, SCALE) - PROBLEM.entropy(SCALE))


# The measure-valued estimator evaluates f 4d times per sample: fewer replicates, wider (honest) SE.
@pytest.mark.parametrize("estimator, replicates", [
    (estimators.score_function, 20_000),
    (functools.partial(estimators.score_function, control_variate=estimators.control_variates.delta()), 20_000),
    (estimators.measure_valued, 1_000),
], ids=["score_function", "score_function_delta", "measure_valued"])
def test_estimators_are_unbiased_on_the_expected_log_joint(estimator, replicates):
    est = estimates(functools.partial(estimator, with_scale=True), PROBLEM, MEAN, SCALE, samples=1,
                    replicates=replicates, seed=3)
    truth = np.concatenate([PROBLEM.true_grad(MEAN, SCALE), PROBLEM.true_grad_scale(MEAN, SCALE) + 1.0 / SCALE])
    assert_unbiased(est, truth)


def test_metrics_and_no_optimum():
    m = PROBLEM.metrics(MEAN, SCALE)
    assert m["elbo"] == pytest.approx(-PROBLEM.loss(MEAN, SCALE)) and 0.0 <= m["test_accuracy"] <= 1.0
    assert np.isnan(PROBLEM.optimum).all() and math.isnan(PROBLEM.distance)
    assert PROBLEM.grad_variance_exact(estimators.reparameterization, MEAN, 1) is None
