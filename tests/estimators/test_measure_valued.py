"""Measure-valued derivatives: the variates, unbiasedness, and variances in closed form on the quadratic."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams
from estimators.families import double_sided_maxwell, rayleigh
from problems.quadratic import Quadratic
from tests.estimators.checks import Z, assert_unbiased, assert_variance, estimates, exact_grad, exact_variance

MV = estimators.measure_valued
UNCOUPLED = functools.partial(MV, coupling=False)
SETTINGS = [(1, 0.0, 1.0, 1), (2, 3.0, 1.0, 1), (2, 10.0, 0.5, 4), (5, 2.0, 2.0, 3)]


def _moments_match(x, truths):
    for power, truth in truths:
        v = x**power
        assert abs(v.mean() - truth) < Z * v.std(ddof=1) / math.sqrt(len(v)), power


def test_variates_have_their_distributions():
    n = np.random.default_rng(0).standard_normal(400_000)
    # Rayleigh: E W = √(π/2), E W² = 2, E W⁴ = 8. Double-sided Maxwell: E M = 0, E M² = 3, E M⁴ = 15.
    _moments_match(rayleigh(n), [(1, math.sqrt(math.pi / 2)), (2, 2.0), (4, 8.0)])
    _moments_match(double_sided_maxwell(n), [(1, 0.0), (2, 3.0), (4, 15.0)])
    # Maxwell × U(0, 1) is N(0, 1): the coupling of the scale's two parts.
    u = np.random.default_rng(1).random(n.size)
    _moments_match(double_sided_maxwell(n) * u, [(1, 0.0), (2, 1.0), (4, 3.0)])
    assert np.all(np.isfinite(rayleigh(np.array([-40.0, 0.0, 40.0]))))
    assert np.all(np.isfinite(double_sided_maxwell(np.array([-40.0, 0.0, 40.0]))))


@pytest.mark.parametrize("estimator", [MV, UNCOUPLED], ids=["coupled", "uncoupled"])
@pytest.mark.parametrize("d, D, sigma, N", SETTINGS)
def test_mean_gradient_unbiased_with_the_closed_form_variance(estimator, d, D, sigma, N):
    problem = Quadratic(dim=d, distance=D, sigma=sigma)
    theta = problem.params0.mean + 0.3 * problem.optimum - 0.5
    est = estimates(estimator, problem, theta, sigma, samples=N, replicates=200_000, seed=1)
    truth = exact_grad(problem, theta, sigma)
    assert_unbiased(est, truth)
    assert_variance(est, truth, exact_variance(problem, estimator, theta, sigma, N)["mean"])


@pytest.mark.parametrize("estimator", [MV, UNCOUPLED], ids=["coupled", "uncoupled"])
def test_scale_gradient_unbiased_per_coordinate_scale(estimator):
    problem = Quadratic(dim=3, distance=2.0, sigma=1.0)
    theta, scale = np.array([0.1, 0.5, -0.3]), np.array([0.5, 1.0, 2.0])
    est = estimates(estimator, problem, theta, scale, samples=2,
                    replicates=200_000, seed=2, learn_scale=True)
    assert_unbiased(est, exact_grad(problem, theta, scale, learn_scale=True))


def test_coupling_reduces_the_variance_on_the_quadratic():
    """(16/π − 4)s against [8(2 − π/2)s + 8dσ² + 8(d − 1)s + 4d(d − 1)σ²]/(2π)."""
    problem = Quadratic(dim=2, distance=3.0)
    coupled = exact_variance(problem, MV, problem.params0.mean, problem.sigma, 1)["mean"]
    uncoupled = exact_variance(problem, UNCOUPLED, problem.params0.mean, problem.sigma, 1)["mean"]
    assert coupled == pytest.approx((16 / math.pi - 4) * 9.0)
    assert coupled < uncoupled


def test_shares_nothing_it_should_not_and_draws_one_block_of_noise():
    """One call draws (…, widths·d) normals from the scheme: same rng state, same estimate."""
    problem = Quadratic(dim=2, distance=1.0)
    family, params = Gaussian(learn_scale=True), GaussianParams(np.zeros(2), 1.0)
    a = MV(problem, family, params, np.random.default_rng(3), (4, 3))
    b = MV(problem, family, params, np.random.default_rng(3), (4, 3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 3, 4)


def test_background_is_the_base_noise_the_other_estimators_draw():
    """Same generator state: the coordinates not replaced are μ + σε with the pathwise estimator's ε."""
    seen = []

    class Spy(Quadratic):
        def __call__(self, z):
            seen.append(z)
            return super().__call__(z)

    problem, theta = Spy(dim=3, distance=1.0, sigma=0.5), np.array([0.1, 0.2, 0.3])
    MV(problem, Gaussian(), GaussianParams(theta, 0.5), np.random.default_rng(8), 5)
    eps = np.random.default_rng(8).standard_normal((5, 3))
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(seen[0][:, off], np.broadcast_to((theta + 0.5 * eps)[:, None, :], (5, 3, 3))[:, off])
