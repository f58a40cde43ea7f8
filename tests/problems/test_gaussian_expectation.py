"""The reference study's test functions: closed-form means and gradients, exact variances by quadrature."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import estimators
from estimators import GaussianParams
from problems.base import optimum
from problems.gaussian_expectation import GaussianExpectation
from problems.quadratic import Quadratic
from tests.estimators.checks import Z, assert_unbiased, assert_variance, estimates, exact_grad, exact_variance

FUNCTIONS = [("square", 0.5), ("square", 3.0), ("exp", 0.5), ("exp", 3.0), ("cos", 0.5), ("cos", 3.0)]
ESTIMATORS = {
    "score_function": estimators.score_function,
    "sf_delta": estimators.configure(
        functools.partial(estimators.score_function, control_variate=estimators.control_variates.delta())),
    "reparameterization": estimators.reparameterization,
    "measure_valued": estimators.measure_valued,
    "measure_valued_uncoupled": functools.partial(estimators.measure_valued, coupling=False),
}
MEAN, SCALE = np.array([1.0, 0.3]), np.array([1.0, 0.7])


@pytest.mark.parametrize("f, k", FUNCTIONS)
def test_loss_is_the_expectation_and_gradients_its_derivatives(f, k):
    problem = GaussianExpectation(f=f, k=k, dim=2)
    z = MEAN + SCALE * np.random.default_rng(0).standard_normal((1_000_000, 2))
    values = problem(z)
    loss = lambda mean, scale: problem.loss(GaussianParams(mean, scale))  # noqa: E731
    assert abs(values.mean() - loss(MEAN, SCALE)) < Z * values.std() / 1000
    h = 1e-6
    grad = problem.exact_grad(GaussianParams(MEAN, SCALE))
    for j in range(2):
        e = np.eye(2)[j] * h
        fd_mu = (loss(MEAN + e, SCALE) - loss(MEAN - e, SCALE)) / (2 * h)
        fd_sigma = (loss(MEAN, SCALE + e) - loss(MEAN, SCALE - e)) / (2 * h)
        assert grad.mean[j] == pytest.approx(fd_mu, rel=1e-6, abs=1e-8)
        assert grad.scale[j] == pytest.approx(fd_sigma, rel=1e-6, abs=1e-8)
    # Derivatives of the integrand against finite differences.
    zz = np.array([[0.3, -1.2]])
    fd = [(problem(zz + h * np.eye(2)[j]) - problem(zz - h * np.eye(2)[j])) / (2 * h) for j in range(2)]
    np.testing.assert_allclose(problem.grad(zz)[0], np.ravel(fd), rtol=1e-6, atol=1e-8)
    fd2 = [(problem.grad(zz + h * np.eye(2)[j]) - problem.grad(zz - h * np.eye(2)[j]))[0, j] / (2 * h) for j in range(2)]
    np.testing.assert_allclose(np.diagonal(problem.hessian(zz)[0]), fd2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("f, k", FUNCTIONS)
def test_exact_variance_by_quadrature_matches_the_estimators(f, k, name):
    """Both blocks, per-coordinate σ, N = 2: mean within 5 SE of the gradient, mean square within 5 SE of exact."""
    problem = GaussianExpectation(f=f, k=k, dim=2)
    estimator = ESTIMATORS[name]
    est = estimates(estimator, problem, MEAN, SCALE, samples=2, replicates=100_000, seed=3, learn_scale=True)
    truth = exact_grad(problem, MEAN, SCALE, learn_scale=True)
    assert_unbiased(est, truth)
    exact = exact_variance(problem, estimator, MEAN, SCALE, 2, learn_scale=True)
    assert_variance(est[:, :2], truth[:2], exact["mean"])
    assert_variance(est[:, 2:], truth[2:], exact["scale"])


@pytest.mark.parametrize("name", ["score_function", "reparameterization", "measure_valued", "measure_valued_uncoupled"])
def test_square_is_the_quadratic_and_quadrature_matches_its_closed_forms(name):
    """g = (x − k)² coordinate-wise is f = ‖z − k·1‖²: the quadratic with x = k·1, at a common σ."""
    k, sigma = 2.0, 0.8
    square = GaussianExpectation(f="square", k=k, dim=2, mu0=0.0, sigma0=sigma)
    quadratic = Quadratic(dim=2, distance=k * math.sqrt(2), sigma=sigma)
    np.testing.assert_allclose(square.optimum, quadratic.optimum)
    theta = np.array([0.5, -1.5])
    exact = exact_variance(square, ESTIMATORS[name], theta, square.sigma0, 3)["mean"]
    assert exact == pytest.approx(exact_variance(quadratic, ESTIMATORS[name], theta, quadratic.sigma, 3)["mean"],
                                  rel=1e-9)
    assert square.loss(GaussianParams(theta, square.sigma0)) == pytest.approx(
        quadratic.loss(GaussianParams(theta, quadratic.sigma)))


def test_optimum_where_there_is_one():
    assert GaussianExpectation(f="square", k=2.5, dim=3).optimum.tolist() == [2.5] * 3
    cos = GaussianExpectation(f="cos", k=2.0, mu0=4.0)
    assert cos.optimum[0] == pytest.approx(3 * math.pi / 2)  # minimisers (2m + 1)π/k: π/2, 3π/2, … nearest 4
    assert exact_grad(cos, cos.optimum, cos.sigma0) == pytest.approx(0.0, abs=1e-12)
    exp = GaussianExpectation(f="exp", k=1.0)
    # Intended change: no optimum is None now (it was NaN); the length scale was ``scale``.
    assert exp.optimum is None and optimum(exp) is None
    assert math.isnan(exp.distance) and exp.length_scale == 1.0


def test_unknown_configurations_report_none():
    """Unknown is a block left out of the exact variance ({}), where it was None."""
    problem = GaussianExpectation(f="cos", k=1.0, dim=2)
    for estimator in (
        estimators.configure(estimators.reparameterization, sampling=estimators.sampling.antithetic),
        estimators.configure(functools.partial(estimators.score_function, baseline=estimators.baselines.optimal())),
    ):
        assert exact_variance(problem, estimator, MEAN, problem.sigma0, 1) == {}
        assert exact_variance(problem, estimator, MEAN, SCALE, 1, learn_scale=True) == {}


def test_the_problem_allows_exactly_its_test_functions():
    from problems.gaussian_expectation import FUNCTIONS

    for name in FUNCTIONS:
        GaussianExpectation(f=name)
    with pytest.raises(ValueError, match=r"^invalid problem.f='sin': allowed: one of square, exp, cos$"):
        GaussianExpectation(f="sin")
