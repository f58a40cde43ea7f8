"""A cross-entropy under a Dirichlet: closed forms against quadrature, exact variances against the estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import betaln, digamma

import estimators
from estimators import DirichletParams, spec
from problems.base import HasExactGradient, HasExactVariance, HasOptimum, Problem, optimum
from problems.dirichlet_expectation import DirichletExpectation, pathwise_moment
from tests.estimators.checks import (
    assert_no_closed_form_for_other_configurations,
    assert_unbiased,
    assert_variance,
    family_estimates,
)

ESTIMATORS = {"score_function": estimators.score_function, "reparameterization": estimators.reparameterization}


def mean_log(a: float, b: float, pdf=None) -> float:
    """E log z under Beta(a, b), by adaptive quadrature: in z against scipy.stats' ``pdf`` where
    given (split at the mean: the density may be singular at either end), else in u = logit z,
    where the density is smooth and log z = −log(1 + e^{−u}) keeps its accuracy (faster)."""
    if pdf is not None:
        mean = a / (a + b)
        return sum(integrate.quad(lambda z: math.log(z) * pdf(z), lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
                   for lo, hi in ((0.0, mean), (mean, 1.0)))
    norm = betaln(a, b)

    def integrand(u):
        soft = np.logaddexp(0.0, u)
        return (u - soft) * math.exp(a * u - (a + b) * soft - norm)

    mode = math.log(a / b)
    return sum(integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for lo, hi in ((-np.inf, mode), (mode, np.inf)))


def quad_loss(problem: DirichletExpectation, a: np.ndarray, by_stats: bool = False) -> float:
    """−Σ_j c_j E log z_j, each z_j ~ Beta(α_j, α_s − α_j) (the Dirichlet's marginals)."""
    s = a.sum()
    return -sum(c * mean_log(aj, s - aj, stats.beta(aj, s - aj).pdf if by_stats else None)
                for c, aj in zip(problem.c, a))


@pytest.mark.parametrize("counts", [None, [2.0, 0.0, 0.5]])
def test_loss_is_the_expectation_and_gradients_its_derivatives(counts):
    problem = DirichletExpectation(dim=3, counts=counts)
    a = np.array([0.6, 1.5, 4.0])
    assert problem.loss(DirichletParams(a)) == pytest.approx(quad_loss(problem, a, by_stats=True), rel=1e-10)
    grad = problem.exact_grad(DirichletParams(a)).concentration
    for j in range(3):
        step = 1e-4 * np.eye(3)[j]
        fd = (quad_loss(problem, a + step) - quad_loss(problem, a - step)) / 2e-4
        assert grad[j] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    z, h = np.array([[0.2, 0.3, 0.5]]), 1e-6
    fd = [(problem(z + h * np.eye(3)[j]) - problem(z - h * np.eye(3)[j]))[0] / (2 * h) for j in range(3)]
    np.testing.assert_allclose(problem.grad(z)[0], fd, rtol=1e-7, atol=1e-9)
    fd2 = [(problem.grad(z + h * np.eye(3)[j]) - problem.grad(z - h * np.eye(3)[j]))[0, j] / (2 * h) for j in range(3)]
    np.testing.assert_allclose(np.diagonal(problem.hessian(z)[0]), fd2, rtol=1e-6, atol=1e-9)
    # A zero count contributes nothing, even where its coordinate is 0.
    zero = DirichletExpectation(dim=2, counts=[1.0, 0.0])
    assert zero(np.array([1.0, 0.0])) == 0.0


@pytest.mark.parametrize("a", [[0.4, 1.3], [3.0, 0.7]])
def test_score_function_variance_in_two_dimensions_matches_quadrature(a):
    """With d = 2, z_2 = 1 − z_1: the estimate is a function of z_1 ~ Beta(α_1, α_2) alone; its
    second moment by adaptive quadrature in u = logit z_1, where the density is smooth and
    log z_1 = −log(1 + e^{−u}), log z_2 = −log(1 + e^u) keep their accuracy in both tails."""
    problem = DirichletExpectation(dim=2, counts=[1.5, 0.5])
    a = np.array(a)
    s = a.sum()
    grad = problem.exact_grad(DirichletParams(a)).concentration

    def second(u):
        log_z = np.array([-np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)])
        f = -(1.5 * log_z[0] + 0.5 * log_z[1])
        score = log_z - digamma(a) + digamma(s)
        density = np.exp(a[0] * u - s * np.logaddexp(0.0, u) - betaln(a[0], a[1]))
        return f * f * (score @ score) * density

    mode = math.log(a[0] / a[1])
    exact = sum(integrate.quad(second, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
                for lo, hi in ((-np.inf, mode), (mode, np.inf))) - grad @ grad
    value = problem.exact_variance(spec("score_function"), problem.family, DirichletParams(a), 1)["concentration"]
    assert value == pytest.approx(exact, rel=1e-11)


def test_pathwise_quadrature_mean_is_the_closed_form_gradient():
    """The rules and λ that give E ĝ² give E ĝ_j = ∂L/∂α_j (closed form) to 1e-9, from α = 0.05 to 100."""
    for a, counts in [([0.05, 1.0, 0.2], None), ([0.5, 0.7, 2.0], None), ([3.0, 5.0, 0.4], [2.0, 0.0, 1.0]),
                      ([100.0, 0.5], None), ([20.0, 30.0, 10.0, 5.0], None)]:
        problem, a = DirichletExpectation(dim=len(a), counts=counts), np.array(a)
        np.testing.assert_allclose(pathwise_moment(problem, a, 1), problem.exact_grad(DirichletParams(a)).concentration,
                                   rtol=1e-9)


CASES = {  # (α, counts): α < 1 and > 1, a zero count, d = 2 and 3
    "default": ([0.5, 0.7, 2.0], None),
    "zero-count": ([3.0, 5.0, 0.4], [2.0, 0.0, 1.0]),
    "d2": ([0.3, 0.3], None),
}


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("case", CASES)
def test_estimators_are_unbiased_and_their_variance_is_the_exact_one(case, name):
    """N = 2: mean within 5 SE of the gradient, mean square error within 5 SE of exact."""
    a, counts = CASES[case]
    problem = DirichletExpectation(dim=len(a), counts=counts)
    params = DirichletParams(np.array(a))
    estimator = ESTIMATORS[name]
    est = family_estimates(estimator, problem, problem.family, params, samples=2, replicates=40_000, seed=7)
    truth = problem.exact_grad(params).concentration
    assert_unbiased(est, truth)
    exact = problem.exact_variance(estimators.describe(estimator), problem.family, params, 2)
    assert_variance(est, truth, exact["concentration"])


def test_no_closed_form_for_configurations_nobody_derived():
    problem = DirichletExpectation()
    assert_no_closed_form_for_other_configurations(problem)
    bad = DirichletParams(np.array([1.0, -0.5, 1.0]))  # no distribution: unknown, no error
    assert problem.exact_variance(spec("score_function"), problem.family, bad, 1) == {}
    assert math.isnan(problem.loss(bad))


def test_a_problem_without_optimum():
    problem = DirichletExpectation(dim=4, concentration0=0.5)
    assert isinstance(problem, Problem) and isinstance(problem, HasExactGradient)
    assert isinstance(problem, HasExactVariance) and not isinstance(problem, HasOptimum)
    assert optimum(problem) is None
    assert problem.length_scale == pytest.approx(2.0 * 1.5)
    np.testing.assert_array_equal(problem.c, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(problem.params0.concentration, [0.5] * 4)
    given = DirichletExpectation(dim=2, counts=[1, 2.5])
    assert given.counts == (1.0, 2.5) and hash(given) == hash(DirichletExpectation(dim=2, counts=(1.0, 2.5)))


@pytest.mark.parametrize("kwargs, key", [
    ({"dim": 1}, "dim"),
    ({"dim": 2.5}, "dim"),
    ({"concentration0": 0.0}, "concentration0"),
    ({"concentration0": math.nan}, "concentration0"),
    ({"counts": [1.0, 2.0]}, "counts"),  # dim 3
    ({"counts": [1.0, -1.0, 2.0]}, "counts"),
    ({"counts": [1.0, math.inf, 2.0]}, "counts"),
    ({"counts": [0.0, 0.0, 0.0]}, "counts"),
    ({"counts": "abc"}, "counts"),
])
def test_invalid_keys_are_refused_in_one_line_naming_the_key(kwargs, key):
    with pytest.raises(ValueError) as err:
        DirichletExpectation(**kwargs)
    message = str(err.value)
    assert message.startswith(f"invalid problem.{key}=") and "allowed:" in message and "\n" not in message
