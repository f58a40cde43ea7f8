"""The delta-method control variate: exact on quadratics, unbiased elsewhere, known expectation."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams, control_variates
from problems.gaussian_expectation import GaussianExpectation
from problems.quadratic import Quadratic
from tests.estimators.checks import assert_unbiased, assert_variance, estimates, exact_grad, exact_variance

# The score function wrapped in the control variate, as the config path builds it.
SF_DELTA = estimators.configure(functools.partial(estimators.score_function, control_variate=control_variates.delta()))


@pytest.mark.parametrize("learn_scale", [False, True])
def test_exact_on_a_quadratic(learn_scale):
    """f equals its second-order expansion: every sample gives the exact gradient (2(θ − x), 2σ)."""
    problem = Quadratic(dim=3, distance=5.0, sigma=0.6)
    theta, scale = np.array([0.5, -1.0, 2.0]), np.array([0.6, 1.0, 0.2])
    g = SF_DELTA(problem, Gaussian(learn_scale=learn_scale), GaussianParams(theta, scale), np.random.default_rng(0),
                 100)
    truth = exact_grad(problem, theta, scale, learn_scale=learn_scale)
    np.testing.assert_allclose(g, np.broadcast_to(truth, g.shape), rtol=1e-9, atol=1e-9)
    assert exact_variance(problem, SF_DELTA, theta, problem.sigma, 1)["mean"] == 0.0


def test_expected_gradient_of_the_surrogate():
    """∇_μ E h = ∇f(μ) and ∂E h/∂σ_j = H_jj σ_j, checked against the surrogate's own Monte Carlo mean."""
    problem = GaussianExpectation(f="exp", k=0.7, dim=2)
    mean, scale = np.array([0.3, -0.9]), np.array([0.5, 1.2])
    cv = control_variates.delta()
    family, params = Gaussian(learn_scale=True), GaussianParams(mean, scale)
    g_mean, g_scale = np.split(cv.expected_grad(cv.surrogate(problem, family, params), family, params), 2)
    np.testing.assert_allclose(g_mean, problem.grad(mean))
    np.testing.assert_allclose(g_scale, np.diagonal(problem.hessian(mean)) * scale)

    class Surrogate:  # h as an integrand, with its own exact gradient ∇h(z) = ∇f(μ) + H(z − μ)
        def __call__(self, z):
            return cv.surrogate(problem, family, params)(z)

        def grad(self, z):
            return problem.grad(mean) + (z - mean) @ problem.hessian(mean)

    est = estimates(estimators.reparameterization, Surrogate(), mean, scale,
                    samples=1, replicates=200_000, seed=3, learn_scale=True)
    assert_unbiased(est, np.concatenate([g_mean, g_scale]))


@pytest.mark.parametrize("f, k", [("exp", 0.5), ("cos", 0.8), ("cos", 3.0)])
def test_unbiased_with_the_exact_variance_of_its_residual(f, k):
    problem = GaussianExpectation(f=f, k=k, dim=2)
    mean, scale = np.array([0.4, 1.0]), np.array([1.0, 0.6])
    est = estimates(SF_DELTA, problem, mean, scale, samples=2,
                    replicates=200_000, seed=7, learn_scale=True)
    truth = exact_grad(problem, mean, scale, learn_scale=True)
    assert_unbiased(est, truth)
    exact = exact_variance(problem, SF_DELTA, mean, scale, 2, learn_scale=True)
    assert_variance(est, truth, exact["mean"] + exact["scale"])
