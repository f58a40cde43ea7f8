"""Baselines for the score function: unbiased, the optimal constant, and their variances in closed form.

In one dimension with f(z) = (z − x)², a = θ − x and a constant baseline b, c = a² − b:
Var[(f − b)ε/σ] = (c² + 12a²σ² + 15σ⁴ + 6cσ²)/σ² − 4a² (moments of ε up to the sixth), and
the variance-optimal constant is b* = E[f ε²]/E[ε²] = a² + 3σ², where that variance is 8a² + 6σ².
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams, baselines
from problems.quadratic import Quadratic
from tests.estimators.checks import Z, assert_unbiased, assert_variance, estimates, exact_grad

SF = estimators.score_function


def with_baseline(baseline):
    """The score function with ``baseline``, as the config path builds it."""
    return estimators.configure(functools.partial(SF, baseline=baseline))


def constant_baseline_variance(a: float, sigma: float, b: float) -> float:
    c = a * a - b
    return (c * c + 12 * a * a * sigma**2 + 15 * sigma**4 + 6 * c * sigma**2) / sigma**2 - 4 * a * a


def one_dim(a=3.0, sigma=0.7):
    problem = Quadratic(dim=1, distance=abs(a), sigma=sigma)
    return problem, problem.optimum - a  # θ with θ − x = −a: the sign does not enter the variance


def test_no_baseline_is_the_plain_estimator_bit_for_bit():
    problem, theta = one_dim()
    params = GaussianParams(theta, 0.7)
    plain = SF(problem, Gaussian(), params, np.random.default_rng(4), 50)
    none = with_baseline(baselines.none())(problem, Gaussian(), params, np.random.default_rng(4), 50)
    np.testing.assert_array_equal(plain, none)


@pytest.mark.parametrize("b", [0.0, 5.0, 9.0 + 3 * 0.49])
def test_moving_average_at_a_given_state_is_that_constant_baseline(b):
    """The estimate at carried state b uses b; its variance is the constant-baseline closed form."""
    problem, theta = one_dim()
    ma = with_baseline(baselines.moving_average(0.9))
    est = estimates(lambda *args: ma(*args, state=b)[0],
                    problem, theta, 0.7, samples=1, replicates=400_000, seed=3)
    truth = exact_grad(problem, theta, 0.7)
    assert_unbiased(est, truth)
    assert_variance(est, truth, constant_baseline_variance(3.0, 0.7, b))


def test_moving_average_update_and_state_threading():
    problem, theta = one_dim()
    ma = baselines.moving_average(0.8)
    assert ma.init == 0.0
    rng = np.random.default_rng(0)
    eps = np.random.default_rng(0).standard_normal((6, 1))
    _, state = with_baseline(ma)(problem, Gaussian(), GaussianParams(theta, 0.7), rng, 6, state=2.0)
    assert state == pytest.approx(0.8 * 2.0 + 0.2 * problem(theta + 0.7 * eps).mean())
    assert estimators.initial_state(with_baseline(ma)) == 0.0
    assert estimators.initial_state(SF) is None


def test_optimal_baseline_estimates_the_variance_optimal_constant():
    """b̂_j = Σ f s_j² / Σ s_j² over a pilot, against b* = a² + 3σ²."""
    problem, theta = one_dim()
    rng = np.random.default_rng(2)

    def pilot(n):
        eps = rng.standard_normal((n, 1))
        return problem(theta + 0.7 * eps), eps / 0.7

    b = baselines.optimal(pilot=1_000_000).value(None, None, None, pilot)
    # Delta-method standard error of the ratio estimator, from a second pilot.
    w, s = pilot(1_000_000)
    r = w[:, None] * s**2 - b[0] * s**2
    se = r.std() / (s**2).mean() / math.sqrt(len(r))
    assert abs(b.item() - (9.0 + 3 * 0.49)) < Z * se


def test_optimal_baseline_is_unbiased_and_near_the_optimal_variance():
    """Its variance is Var(b*) plus E[(b̂ − b*)²]E[s²], a fraction of order 1/pilot above it."""
    problem, theta = one_dim()
    est = estimates(with_baseline(baselines.optimal(pilot=200)), problem, theta, 0.7,
                    samples=1, replicates=50_000, seed=8)
    truth = exact_grad(problem, theta, 0.7)
    assert_unbiased(est, truth)
    sq = ((est - truth) ** 2).sum(axis=1)
    best, plain = constant_baseline_variance(3.0, 0.7, 9.0 + 3 * 0.49), constant_baseline_variance(3.0, 0.7, 0.0)
    se = sq.std(ddof=1) / math.sqrt(len(sq))
    assert best - Z * se < sq.mean() < 1.15 * best + Z * se  # about 5% above at pilot = 200
    assert sq.mean() < plain / 3  # 75 against 299 here


@pytest.mark.parametrize("samples", [2, 5])
def test_leave_one_out_is_unbiased_and_equals_the_rescaled_centred_estimate(samples):
    problem = Quadratic(dim=3, distance=4.0, sigma=0.8)
    theta = np.array([0.3, -0.2, 1.0])
    est = estimates(with_baseline(baselines.leave_one_out()), problem, theta, 0.8,
                    samples=samples, replicates=200_000, seed=5)
    assert_unbiased(est, exact_grad(problem, theta, 0.8))
    # The identity with the centred form, sample by sample, on the same noise.
    g = with_baseline(baselines.leave_one_out())(problem, Gaussian(), GaussianParams(theta, 0.8),
                                                 np.random.default_rng(1), samples)
    eps = np.random.default_rng(1).standard_normal((samples, 3))
    f = problem(theta + 0.8 * eps)
    centred = ((f - f.mean())[:, None] * eps / 0.8).mean(axis=0)
    np.testing.assert_allclose(g.mean(axis=0), samples / (samples - 1) * centred, rtol=1e-10, atol=1e-12)


def test_leave_one_out_needs_two_samples():
    problem, theta = one_dim()
    with pytest.raises(ValueError, match="at least 2"):
        with_baseline(baselines.leave_one_out())(problem, Gaussian(), GaussianParams(theta, 0.7),
                                                 np.random.default_rng(0), 1)


def test_invalid_baseline_parameters_are_refused():
    with pytest.raises(ValueError):
        baselines.moving_average(1.0)
    with pytest.raises(ValueError):
        baselines.optimal(pilot=0)


# --- The oracle: b* exactly, from a problem that knows it.


def test_the_oracle_baseline_and_its_variance_against_closed_forms():
    """f = (z − k)² under N(μ, σ²), a = μ − k: b* = (a² + 3σ², a² + 5σ²) for (mean, scale), and at b*
    the one-sample variances 8a² + 6σ² and 40a² + 24σ² (moments of ε up to the eighth; the scale's
    24σ² at a = 0 is the reference study's value, figure 2). The problem's quadrature against these,
    and the estimator's sample variance against them within 5 SE."""
    from problems.gaussian_expectation import GaussianExpectation

    mu, sigma, k = 1.6, 0.8, 1.0
    a = mu - k
    problem = GaussianExpectation(f="square", k=k, dim=1, mu0=mu, sigma0=sigma)
    family, params = Gaussian(learn_scale=True), GaussianParams(np.array([mu]), np.array([sigma]))
    np.testing.assert_allclose(problem.optimal_baseline(family, params), [a * a + 3 * sigma**2, a * a + 5 * sigma**2],
                               rtol=1e-12)
    oracle = with_baseline(baselines.oracle())
    exact = problem.exact_variance(estimators.describe(oracle), family, params, 1)
    np.testing.assert_allclose([exact["mean"], exact["scale"]],
                               [8 * a * a + 6 * sigma**2, 40 * a * a + 24 * sigma**2], rtol=1e-10)
    est = oracle(problem, family, params, np.random.default_rng(8), (100_000, 1)).mean(axis=1)
    truth = exact_grad(problem, params.mean, params.scale, learn_scale=True)
    assert_unbiased(est, truth)
    assert_variance(est[:, :1], truth[:1], exact["mean"])
    assert_variance(est[:, 1:], truth[1:], exact["scale"])


def test_the_oracle_baseline_is_refused_where_the_problem_does_not_know_it():
    problem, _ = one_dim()
    with pytest.raises(estimators.Inapplicable, match="baseline=oracle needs a problem that knows"):
        estimators.check(with_baseline(baselines.oracle()), Gaussian(), "independent", f=problem)
    # It is no baseline at all without the problem: the plain estimator is not what it becomes.
    assert estimators.describe(with_baseline(baselines.oracle())) >= {("baseline", "oracle")}
