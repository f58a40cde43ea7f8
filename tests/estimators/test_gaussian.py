"""Estimators against closed forms: unbiasedness and exact variance, tolerances from standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams
from problems.quadratic import Quadratic
from tests.estimators.checks import exact_grad, exact_variance

ESTIMATORS = [estimators.score_function, estimators.reparameterization]
Z = 5.0  # standard errors allowed; a correct estimator fails one check with probability ~6e-7

# (d, D, σ, N): dimensions, distances (including the optimum itself), scales, sample counts.
SETTINGS = [(1, 0.0, 1.0, 1), (2, 3.0, 1.0, 1), (2, 10.0, 0.5, 4), (5, 2.0, 2.0, 3), (10, 1.0, 0.3, 2)]


def replicate(estimator, problem, theta, samples, replicates, seed):
    """``replicates`` independent N-sample estimates ḡ (shape (replicates, d))."""
    rng = np.random.default_rng(seed)
    g = estimator(problem, Gaussian(), GaussianParams(theta, problem.sigma), rng, replicates * samples)
    return g.reshape(replicates, samples, -1).mean(axis=1)


def theta_off_optimum(problem: Quadratic) -> np.ndarray:
    """A point away from θ₀ and from x, so that a sign or scale slip shows."""
    return problem.params0.mean + 0.3 * problem.optimum - 0.5


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("d, D, sigma, N", SETTINGS)
def test_unbiased_for_true_gradient(estimator, d, D, sigma, N):
    problem = Quadratic(dim=d, distance=D, sigma=sigma)
    theta = theta_off_optimum(problem)
    est = replicate(estimator, problem, theta, N, 200_000, seed=1)
    se = est.std(axis=0, ddof=1) / math.sqrt(len(est))
    np.testing.assert_array_less(np.abs(est.mean(axis=0) - exact_grad(problem, theta, sigma)), Z * se)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("d, D, sigma, N", SETTINGS)
def test_variance_matches_closed_form(estimator, d, D, sigma, N):
    problem = Quadratic(dim=d, distance=D, sigma=sigma)
    theta = theta_off_optimum(problem)
    est = replicate(estimator, problem, theta, N, 200_000, seed=2)
    # Per-replicate squared deviations about the true mean: their average is tr Cov exactly
    # in expectation, and their spread gives the standard error.
    sq = ((est - exact_grad(problem, theta, sigma)) ** 2).sum(axis=1)
    exact = exact_variance(problem, estimator, theta, sigma, N)["mean"]
    assert abs(sq.mean() - exact) < Z * sq.std(ddof=1) / math.sqrt(len(sq))


def test_contract_formula_at_unit_scale():
    """The contract's σ = 1 forms: score function d(s² + (2d+8)s + (d+2)(d+4)) + 4s; pathwise 4d."""
    problem = Quadratic(dim=3, distance=4.0, sigma=1.0)
    theta = problem.params0.mean
    s = 16.0
    assert exact_variance(problem, estimators.score_function, theta, 1.0, 1)["mean"] == pytest.approx(
        3 * (s * s + 14 * s + 35) + 4 * s
    )
    assert exact_variance(problem, estimators.reparameterization, theta, 1.0, 2)["mean"] == pytest.approx(6.0)


def test_score_function_variance_grows_like_distance_to_the_fourth():
    sf = estimators.score_function
    var = [exact_variance(Quadratic(dim=2, distance=D), sf, np.zeros(2), 1.0, 1)["mean"] for D in (1e3, 1e4)]
    assert var[1] / var[0] == pytest.approx(1e4, rel=1e-3)


def test_estimators_share_base_noise():
    """Same generator state, same ε: ĝ_RP = 2(θ + σε − x) and ĝ_SF = f(θ + σε)·ε/σ."""
    problem = Quadratic(dim=3, distance=5.0, sigma=0.7)
    theta = np.array([0.5, -1.0, 2.0])
    params = GaussianParams(theta, problem.sigma)
    rp = estimators.reparameterization(problem, Gaussian(), params, np.random.default_rng(7), 64)
    sf = estimators.score_function(problem, Gaussian(), params, np.random.default_rng(7), 64)
    eps = (rp / 2 - theta + problem.optimum) / problem.sigma
    np.testing.assert_allclose(sf, problem(theta + problem.sigma * eps)[:, None] * eps / problem.sigma, rtol=1e-9)


def test_per_sample_shape_and_linear_integrand():
    """For f(z) = aᵀz both estimate ∇L = a; the pathwise one is then exact per sample."""

    class Linear:
        a = np.array([1.0, -2.0])

        def __call__(self, z):
            return z @ self.a

        def grad(self, z):
            return np.broadcast_to(self.a, z.shape)

    f, params, rng = Linear(), GaussianParams(np.array([3.0, 4.0]), 1.5), np.random.default_rng(0)
    rp = estimators.reparameterization(f, Gaussian(), params, rng, 10)
    assert rp.shape == (10, 2)
    np.testing.assert_array_equal(rp, np.broadcast_to(f.a, (10, 2)))
    sf = estimators.score_function(f, Gaussian(), params, rng, 100_000)
    se = sf.std(axis=0, ddof=1) / math.sqrt(len(sf))
    np.testing.assert_array_less(np.abs(sf.mean(axis=0) - f.a), Z * se)


# --- The generalised signature: shapes (V, N), the scale gradient, and the plain default pinned.


def _today_score_function(f, mean, scale, rng, num_samples):
    """The score function as first written: the reference the default must reproduce bit for bit."""
    eps = rng.standard_normal((num_samples, np.shape(mean)[-1]))
    values = f(mean + scale * eps)
    return values[:, None] * (eps / scale)


def _today_reparameterization(f, mean, scale, rng, num_samples):
    eps = rng.standard_normal((num_samples, np.shape(mean)[-1]))
    return f.grad(mean + scale * eps)


@pytest.mark.parametrize("estimator, today", [(estimators.score_function, _today_score_function),
                                              (estimators.reparameterization, _today_reparameterization)])
def test_default_options_reproduce_todays_estimators_bit_for_bit(estimator, today):
    import functools

    problem = Quadratic(dim=2, distance=100.0 * math.sqrt(2))
    theta = np.array([3.0, -4.0])
    params = GaussianParams(theta, 1.0)
    configured = functools.partial(estimator, sampling=estimators.sampling.independent)
    if estimator is estimators.score_function:
        configured = functools.partial(configured, baseline=estimators.baselines.none(),
                                       control_variate=estimators.control_variates.none())
    # As the config path builds it: sampling bound, the "none" wrappers applied (as the identity).
    configured = estimators.configure(configured)
    for n in (1, 7):
        np.testing.assert_array_equal(configured(problem, Gaussian(), params, np.random.default_rng(5), n),
                                      today(problem, theta, 1.0, np.random.default_rng(5), n))
    # The probe's (V, N) call draws what V·N samples drew before, in the same order.
    np.testing.assert_array_equal(configured(problem, Gaussian(), params, np.random.default_rng(6), (4, 3)),
                                  today(problem, theta, 1.0, np.random.default_rng(6), 12).reshape(4, 3, 2))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_scale_gradient_unbiased_with_per_coordinate_scale(estimator):
    """∂L/∂σ_j = 2σ_j for the quadratic; scores (ε² − 1)/σ and pathwise ∇f ⊙ ε."""
    problem = Quadratic(dim=3, distance=2.0)
    theta, scale = np.array([0.2, -0.4, 1.0]), np.array([0.5, 1.0, 1.5])
    # The scale gradient is the family's to ask for now (it was the estimator's with_scale=True).
    g = estimator(problem, Gaussian(learn_scale=True), GaussianParams(theta, scale), np.random.default_rng(4),
                  (100_000, 2)).mean(axis=1)
    assert g.shape == (100_000, 6)
    truth = exact_grad(problem, theta, scale, learn_scale=True)
    se = g.std(axis=0, ddof=1) / math.sqrt(len(g))
    np.testing.assert_array_less(np.abs(g.mean(axis=0) - truth), Z * se)


def test_antithetic_pathwise_on_a_quadratic_is_exact():
    """ĝ(ε) + ĝ(−ε) = 4(θ − x): an antithetic pair has no variance left."""
    problem = Quadratic(dim=2, distance=3.0)
    g = estimators.reparameterization(problem, Gaussian(), GaussianParams(np.zeros(2), 1.0), np.random.default_rng(0),
                                      (10, 4), sampling=estimators.sampling.antithetic).mean(axis=1)
    np.testing.assert_allclose(g, np.broadcast_to(exact_grad(problem, np.zeros(2), 1.0), g.shape), rtol=1e-12)
