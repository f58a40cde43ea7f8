"""Test functions under a Gamma: closed forms against quadrature, exact variances against the estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import digamma, polygamma

import estimators
from estimators import GammaParams, spec
from estimators.special import gamma_sample_grad
from problems.base import HasExactGradient, HasExactVariance, HasOptimum, Problem, optimum
from problems.gamma_expectation import GammaExpectation, log_gamma_rule, pathwise_concentration_moment
from tests.estimators.checks import (
    assert_no_closed_form_for_other_configurations,
    assert_unbiased,
    assert_variance,
    family_estimates,
)

ESTIMATORS = {"score_function": estimators.score_function, "reparameterization": estimators.reparameterization}
FUNCTIONS = [("power", 2.0), ("power", -0.3), ("log", 1.0), ("exp", 1.0), ("exp", -0.3)]


def expect(fun, a: float, b: float, pdf=None) -> float:
    """E fun(z) under Gamma(a, rate b), by adaptive quadrature in t = log z, where the density is
    smooth (∝ e^{at − be^t}), split at its mode. The density is written out (scipy.stats' ``pdf``,
    when given, is slower per point). Over −460 ≤ t ≤ 700: below, z^(−1.3) and the like overflow,
    and every integrand here (∝ z^γ near 0, γ ≥ 0.1) has less than e^{−40} of its mass there."""
    log_norm = a * math.log(b) - math.lgamma(a)

    def integrand(t):
        with np.errstate(over="ignore", invalid="ignore"):
            z = math.exp(t)
            w = pdf(z) * z if pdf is not None else math.exp(a * t - b * z + log_norm)
            return float(fun(z) * w) if w > 0 else 0.0  # 0 where the density underflows, whatever fun is

    mode = math.log(a / b)
    return sum(integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for lo, hi in ((-460.0, mode), (mode, 700.0)))


def quad_mean(problem: GammaExpectation, a: float, b: float, pdf=None) -> float:
    """E h(z) of one coordinate, z ~ Gamma(a, b), by quadrature."""
    return expect(lambda z: problem(np.array([z])), a, b, pdf)


@pytest.mark.parametrize("f, k", FUNCTIONS)
def test_loss_is_the_expectation_and_gradients_its_derivatives(f, k):
    """Loss against quadrature, gradient against central differences of the quadrature loss
    (α < 1 in one coordinate, > 1 in the other; L is a sum over coordinates, so coordinate j's
    derivatives are those of its own term); f's derivatives against differences of f."""
    problem = GammaExpectation(f=f, k=k, dim=2)
    a, b = np.array([0.8, 3.0]), np.array([1.0, 1.7])
    by_stats = sum(quad_mean(problem, aj, bj, stats.gamma(aj, scale=1.0 / bj).pdf) for aj, bj in zip(a, b))
    assert problem.loss(GammaParams(a, b)) == pytest.approx(by_stats, rel=1e-10)
    grad, eps = problem.exact_grad(GammaParams(a, b)), 1e-4
    for j in range(2):
        fd_a = (quad_mean(problem, a[j] + eps, b[j]) - quad_mean(problem, a[j] - eps, b[j])) / (2 * eps)
        fd_b = (quad_mean(problem, a[j], b[j] + eps) - quad_mean(problem, a[j], b[j] - eps)) / (2 * eps)
        assert grad.concentration[j] == pytest.approx(fd_a, rel=1e-6)
        assert grad.rate[j] == pytest.approx(fd_b, rel=1e-6)
    z, h = np.array([[0.3, 1.9]]), 1e-6
    fd = [(problem(z + h * np.eye(2)[j]) - problem(z - h * np.eye(2)[j]))[0] / (2 * h) for j in range(2)]
    np.testing.assert_allclose(problem.grad(z)[0], fd, rtol=1e-7)
    fd2 = [(problem.grad(z + h * np.eye(2)[j]) - problem.grad(z - h * np.eye(2)[j]))[0, j] / (2 * h) for j in range(2)]
    np.testing.assert_allclose(np.diagonal(problem.hessian(z)[0]), fd2, rtol=1e-6)
    assert problem.hessian(z).shape == (1, 2, 2) and problem.hessian(z)[0, 0, 1] == 0.0


@pytest.mark.parametrize("f, k", FUNCTIONS)
@pytest.mark.parametrize("a, b", [(0.7, 1.0), (2.5, 3.0)])
def test_one_coordinate_variances_match_quadrature(f, k, a, b):
    """In one dimension both estimators' second moments are integrals of one variable: the
    score function's closed forms and the pathwise quadrature against adaptive quadrature (the
    latter of (h'(z)·∂z/∂α)², with ∂z/∂α = gamma_sample_grad(α, βz)/β)."""
    problem = GammaExpectation(f=f, k=k, dim=1, concentration0=a, rate0=b)
    params = GammaParams(np.array([a]), np.array([b]))
    g = problem.exact_grad(params)
    h = lambda z: problem(np.array([z]))  # noqa: E731
    dh = lambda z: problem.grad(np.array([z]))[0]  # noqa: E731
    sf = problem.exact_variance(spec("score_function"), problem.family, params, 1)
    assert sf["concentration"] == pytest.approx(
        expect(lambda z: (h(z) * (np.log(b * z) - digamma(a))) ** 2, a, b) - g.concentration[0] ** 2, rel=1e-9)
    assert sf["rate"] == pytest.approx(expect(lambda z: (h(z) * (a / b - z)) ** 2, a, b) - g.rate[0] ** 2, rel=1e-9)
    pw = problem.exact_variance(spec("reparameterization"), problem.family, params, 1)
    second = expect(lambda z: (dh(z) * gamma_sample_grad(a, b * z) / b) ** 2, a, b)
    assert pw["concentration"] == pytest.approx(second - g.concentration[0] ** 2, rel=1e-8)
    assert pw["rate"] == pytest.approx(expect(lambda z: (dh(z) * z / b) ** 2, a, b) - g.rate[0] ** 2,
                                       rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("f, k", FUNCTIONS)
def test_pathwise_quadrature_mean_is_the_closed_form_gradient(f, k):
    """The same rule and λ give E ĝ_α = ∂L/∂α (closed form) to ~1e-12, over 0.05 ≤ α ≤ 100."""
    problem = GammaExpectation(f=f, k=k, dim=6)
    a, b = np.array([0.05, 0.3, 0.9, 4.0, 25.0, 100.0]), np.array([0.5, 1.0, 2.0, 1.0, 3.0, 10.0])
    if f == "power" and k < 0:
        a = a + 0.35  # α + k > 0
    np.testing.assert_allclose(pathwise_concentration_moment(problem, a, b, 1),
                               problem.exact_grad(GammaParams(a, b)).concentration, rtol=1e-11)


def test_log_gamma_rule_integrates_log_moments():
    shape = np.array([0.003, 0.1, 0.7, 5.0, 300.0])
    t, w = log_gamma_rule(shape, rate=2.0)
    log_x = t + np.log(2.0)  # log of the Gamma(γ, 1) variate
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(np.sum(w * log_x, axis=1), digamma(shape), rtol=1e-13, atol=1e-13)
    fourth = polygamma(3, shape) + 3.0 * polygamma(1, shape) ** 2  # from the cumulants ψ^(n−1)(γ)
    np.testing.assert_allclose(np.sum(w * (log_x - digamma(shape)[:, None]) ** 4, axis=1), fourth, rtol=1e-12)


CASES = {  # (f, k, α, β): α < 1 and > 1, dim 1 and 2, moments of ĝ up to the fourth finite
    "power2-d2": ("power", 2.0, [0.7, 2.0], [1.0, 1.5]),
    "power2-d1": ("power", 2.0, [0.5], [2.0]),
    "power-0.3": ("power", -0.3, [2.5, 4.0], [1.0, 0.5]),
    "log-d2": ("log", 1.0, [0.5, 3.0], [1.0, 2.0]),
    "log-d1": ("log", 1.0, [5.0], [0.7]),
    "exp1": ("exp", 1.0, [0.7, 5.0], [1.0, 0.7]),
    "exp-0.3": ("exp", -0.3, [0.7, 2.0], [3.0, 2.5]),
}


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("case", CASES)
def test_estimators_are_unbiased_and_their_variance_is_the_exact_one(case, name):
    """N = 2: mean within 5 SE of the gradient, mean square error per block within 5 SE of exact."""
    f, k, a, b = CASES[case]
    problem = GammaExpectation(f=f, k=k, dim=len(a))
    params = GammaParams(np.array(a), np.array(b))
    estimator = ESTIMATORS[name]
    est = family_estimates(estimator, problem, problem.family, params, samples=2, replicates=40_000, seed=5)
    truth = np.concatenate(problem.exact_grad(params))
    assert_unbiased(est, truth)
    exact = problem.exact_variance(estimators.describe(estimator), problem.family, params, 2)
    d = len(a)
    assert_variance(est[:, :d], truth[:d], exact["concentration"])
    assert_variance(est[:, d:], truth[d:], exact["rate"])


def test_infinite_and_unknown_variances():
    sf, pw = spec("score_function"), spec("reparameterization")
    power = GammaExpectation(f="power", k=-0.3, dim=2)
    # α + 2k ≤ 0 in one coordinate: infinite second moments (through E[A²] for the other).
    params = GammaParams(np.array([0.5, 3.0]), np.array([1.0, 1.0]))
    assert power.exact_variance(sf, power.family, params, 1) == {"concentration": math.inf, "rate": math.inf}
    assert power.exact_variance(pw, power.family, params, 1) == {"concentration": math.inf, "rate": math.inf}
    exp = GammaExpectation(f="exp", k=-0.3, rate0=2.0)
    params = GammaParams(np.array([1.0]), np.array([0.5]))
    assert exp.exact_variance(sf, exp.family, params, 1)["rate"] == math.inf
    # The loss itself: infinite where α + k ≤ 0, its gradient undefined.
    assert power.loss(GammaParams(np.array([0.2, 1.0]), np.array([1.0, 1.0]))) == math.inf
    assert np.isnan(power.exact_grad(GammaParams(np.array([0.2, 1.0]), np.array([1.0, 1.0]))).concentration[0])
    # No distribution: unknown, no error.
    bad = GammaParams(np.array([-0.1, 1.0]), np.array([1.0, 1.0]))
    assert power.exact_variance(sf, power.family, bad, 1) == {} and math.isnan(power.loss(bad))
    # log's rate block is the constant −1/β: variance 0.
    log = GammaExpectation(f="log", dim=2)
    assert log.exact_variance(pw, log.family, log.params0, 3)["rate"] == 0.0


def test_no_closed_form_for_configurations_nobody_derived():
    problem = GammaExpectation(f="exp", k=1.0, dim=2)
    assert_no_closed_form_for_other_configurations(problem)


def test_a_problem_without_optimum():
    problem = GammaExpectation(dim=4, concentration0=0.5, rate0=2.0)
    assert isinstance(problem, Problem) and isinstance(problem, HasExactGradient)
    assert isinstance(problem, HasExactVariance) and not isinstance(problem, HasOptimum)
    assert optimum(problem) is None
    assert problem.length_scale == pytest.approx(2.0 * 1.5)
    np.testing.assert_array_equal(problem.params0.concentration, [0.5] * 4)
    np.testing.assert_array_equal(problem.params0.rate, [2.0] * 4)


@pytest.mark.parametrize("kwargs, key", [
    ({"f": "sin"}, "f"),
    ({"k": math.nan}, "k"),
    ({"k": math.inf}, "k"),
    ({"k": True}, "k"),
    ({"concentration0": 0.0}, "concentration0"),
    ({"concentration0": -1.0}, "concentration0"),
    ({"rate0": 0.0}, "rate0"),
    ({"rate0": math.inf}, "rate0"),
    ({"dim": 0}, "dim"),
    ({"dim": 1.5}, "dim"),
    ({"f": "power", "k": -1.0}, "k"),  # α₀ + k ≤ 0: E z^k infinite
    ({"f": "exp", "k": -2.0, "rate0": 1.5}, "k"),  # β₀ + k ≤ 0: E e^{−kz} infinite
])
def test_invalid_keys_are_refused_in_one_line_naming_the_key(kwargs, key):
    with pytest.raises(ValueError) as err:
        GammaExpectation(**kwargs)
    message = str(err.value)
    assert message.startswith(f"invalid problem.{key}=") and "allowed:" in message and "\n" not in message
