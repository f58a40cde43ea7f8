"""Bayesian logistic regression: data, derivatives, the quadrature ELBO and gradients, and unbiased estimators."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams
from problems.base import HasExactVariance, optimum
from problems.logistic_regression import LogisticRegression
from tests.estimators.checks import Z, assert_unbiased, estimates

PROBLEM = LogisticRegression()
MEAN = np.random.default_rng(0).normal(size=31) * 0.3
SCALE = np.linspace(0.05, 0.3, 31)
PARAMS = GaussianParams(MEAN, SCALE)


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
    est = estimates(estimators.reparameterization, PROBLEM, MEAN, SCALE, samples=1, replicates=30_000, seed=2,
                    learn_scale=True)
    entropy_grad = np.concatenate([np.zeros(31), -1.0 / SCALE])
    truth = np.concatenate([PROBLEM.true_grad(MEAN, SCALE), PROBLEM.true_grad_scale(MEAN, SCALE)]) - entropy_grad
    assert_unbiased(est, truth)
    np.testing.assert_array_equal(PROBLEM.analytic_grad(Gaussian(learn_scale=True), PARAMS), entropy_grad)
    assert PROBLEM.loss(PARAMS) == pytest.approx(PROBLEM.expected_f(MEAN, SCALE) - PROBLEM.entropy(SCALE))


# The measure-valued estimator evaluates f 4d times per sample: fewer replicates, wider (honest) SE.
@pytest.mark.parametrize("estimator, replicates", [
    (estimators.score_function, 20_000),
    (functools.partial(estimators.score_function, control_variate=estimators.control_variates.delta()), 20_000),
    (estimators.measure_valued, 1_000),
], ids=["score_function", "score_function_delta", "measure_valued"])
def test_estimators_are_unbiased_on_the_expected_log_joint(estimator, replicates):
    est = estimates(estimators.configure(estimator), PROBLEM, MEAN, SCALE, learn_scale=True, samples=1,
                    replicates=replicates, seed=3)
    truth = np.concatenate([PROBLEM.true_grad(MEAN, SCALE), PROBLEM.true_grad_scale(MEAN, SCALE) + 1.0 / SCALE])
    assert_unbiased(est, truth)


def test_metrics_and_no_optimum():
    m = PROBLEM.curve_values(PARAMS)
    assert m["elbo"] == pytest.approx(-PROBLEM.loss(PARAMS)) and 0.0 <= m["test_accuracy"] <= 1.0
    # No optimum and no exact variance: declared absent (they were NaN and None before).
    assert optimum(PROBLEM) is None and not isinstance(PROBLEM, HasExactVariance)
    assert set(PROBLEM.curves) == set(m)


# ℓ(a) = log(1 + e^{−ta}), ℓ' = σ(a) − y, ℓ'' = σ(a)(1 − σ(a)), t = 2y − 1.
def _ell(a, y):
    return np.logaddexp(0.0, -(2.0 * y - 1.0) * a)


def _ell1(a, y):
    return 0.5 * (1.0 + np.tanh(0.5 * a)) - y


def _ell2(a, y):
    p = 0.5 * (1.0 + np.tanh(0.5 * a))
    return p * (1.0 - p)


def _gaussian_integrand(g, m, s, y):
    """z ↦ φ(z) g(m + s z, y): E g(a) for a ~ N(m, s²) is its integral over z."""
    return lambda z: np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * g(m + s * z, y)


# Every coordinate's σ equal, and one per coordinate; √v_i reaches 40 at σ = 2, against ℓ's bend of width ~1.
SIGMAS = {"0.1": 0.1, "0.5": 0.5, "1": 1.0, "2": 2.0, "per_coordinate": np.linspace(2.0, 0.05, 31)}


@pytest.mark.parametrize("sigma", list(SIGMAS.values()), ids=list(SIGMAS))
def test_exact_objective_and_gradients_against_adaptive_quadrature(sigma):
    """E_q f, ∇_μ(−ELBO) and ∂(−ELBO)/∂σ to 1e−6 against adaptive quadrature of each case's integral over
    z = (a − m)/s (beyond |z| = 12 the integrands are below 1e−30), with Price's theorem for the scale."""
    from scipy import integrate

    x, y = PROBLEM.data[:2]
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (31,))
    m, s = x @ MEAN, np.sqrt((x * x) @ (sigma * sigma))
    # All cases at once on a shared adaptive mesh, for the totals ...
    ref = np.stack([integrate.quad_vec(_gaussian_integrand(g, m, s, y), -12.0, 12.0, epsabs=1e-13, epsrel=1e-12,
                                       norm="max")[0] for g in (_ell, _ell1, _ell2)])
    # ... and, as a check on it, a subset (with the widest cases) one at a time with the bend a = 0 as a break point.
    cases = np.union1d(np.arange(0, len(y), 15), np.argsort(s)[-8:])
    bends = -m / s
    per_case = np.array([[integrate.quad(_gaussian_integrand(g, m[i], s[i], y[i]), -12.0, 12.0, epsabs=1e-14,
                                         epsrel=1e-12, limit=200, points=[bends[i]] if abs(bends[i]) < 12 else None)[0]
                          for i in cases] for g in (_ell, _ell1, _ell2)])
    np.testing.assert_allclose(ref[:, cases], per_case, rtol=1e-10, atol=1e-13)

    _, ell, d1, d2 = PROBLEM._moments(MEAN, sigma)
    np.testing.assert_allclose(np.stack([ell, d1, d2])[:, cases], per_case, rtol=1e-6, atol=1e-9)
    s2 = PROBLEM.prior_scale**2
    expected_f = ref[0].sum() + 0.5 * (MEAN @ MEAN + sigma @ sigma) / s2 + 15.5 * math.log(2.0 * math.pi * s2)
    grad = x.T @ ref[1] + MEAN / s2
    grad_scale = sigma * ((x * x).T @ ref[2]) + sigma / s2 - 1.0 / sigma
    assert PROBLEM.expected_f(MEAN, sigma) == pytest.approx(expected_f, rel=1e-6)
    np.testing.assert_allclose(PROBLEM.true_grad(MEAN, sigma), grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(PROBLEM.true_grad_scale(MEAN, sigma), grad_scale, rtol=1e-6, atol=1e-6)
