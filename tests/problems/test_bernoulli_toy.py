"""The Bernoulli toy problem against enumeration over {0, 1}^d, and its runs end to end."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

import estimators
from experiments.sgd import run_sgd
from problems.bernoulli_toy import BernoulliToy
from tests.estimators.checks import Z, assert_unbiased

LOGITS = np.array([-1.3, 0.2, 2.1])


def enumerate_outcomes(logits):
    """Every b in {0, 1}^d with its probability under independent Bernoulli(σ(φ_j))."""
    p = 1.0 / (1.0 + np.exp(-logits))
    for b in itertools.product((0.0, 1.0), repeat=len(logits)):
        b = np.array(b)
        yield b, float(np.prod(np.where(b == 1.0, p, 1.0 - p)))


def exact_by_enumeration(problem, logits):
    """L, ∇L and the one-sample score-function covariance trace, summed over the 2^d outcomes."""
    p = 1.0 / (1.0 + np.exp(-logits))
    loss, grad, second = 0.0, np.zeros_like(logits), 0.0
    for b, w in enumerate_outcomes(logits):
        f = float(np.sum((b - problem.target) ** 2))
        g = f * (b - p)  # the score-function estimate for this outcome
        loss += w * f
        grad += w * g
        second += w * float(g @ g)
    return loss, grad, second - float(grad @ grad)


@pytest.mark.parametrize("target", [0.45, -0.3, 1.7])
def test_loss_gradient_and_score_function_variance_match_enumeration(target):
    problem = BernoulliToy(dim=3, target=target)
    params = estimators.BernoulliParams(LOGITS)
    loss, grad, variance = exact_by_enumeration(problem, LOGITS)
    assert problem.loss(params) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(problem.exact_grad(params).logits, grad, rtol=1e-12, atol=1e-15)
    sf = estimators.describe(estimators.score_function)
    assert problem.exact_variance(sf, problem.family, params, 1)["logits"] == pytest.approx(variance, rel=1e-12)
    assert problem.exact_variance(sf, problem.family, params, 4)["logits"] == pytest.approx(variance / 4, rel=1e-12)


def test_no_closed_form_for_configurations_nobody_derived():
    problem, params = BernoulliToy(dim=3), estimators.BernoulliParams(LOGITS)
    for est in (estimators.baselines.leave_one_out().wrap(estimators.score_function),
                functools.partial(estimators.score_function, sampling=estimators.sampling.antithetic),
                estimators.measure_valued):
        assert problem.exact_variance(estimators.describe(est), problem.family, params, 2) == {}


@pytest.mark.parametrize("estimator", [
    estimators.score_function,
    estimators.baselines.leave_one_out().wrap(estimators.score_function),
    estimators.baselines.optimal(50).wrap(estimators.score_function),
    estimators.measure_valued,
], ids=["score_function", "leave_one_out", "optimal", "measure_valued"])
def test_estimators_are_unbiased_for_the_enumerated_gradient(estimator):
    problem = BernoulliToy(dim=3)
    _, grad, _ = exact_by_enumeration(problem, LOGITS)
    est = estimator(problem, problem.family, estimators.BernoulliParams(LOGITS), np.random.default_rng(0),
                    (40_000, 4)).mean(axis=1)
    assert_unbiased(est, grad)


def test_measured_variance_matches_the_closed_form():
    problem = BernoulliToy(dim=3)
    params = estimators.BernoulliParams(LOGITS)
    est = estimators.score_function(problem, problem.family, params, np.random.default_rng(1), (200_000, 1))[:, 0]
    _, grad, variance = exact_by_enumeration(problem, LOGITS)
    sq = ((est - grad) ** 2).sum(axis=1)
    assert abs(sq.mean() - variance) < Z * sq.std(ddof=1) / math.sqrt(len(sq))


def test_a_run_logs_no_distances_and_reaches_lower_loss():
    problem = BernoulliToy(dim=2, logit0=1.0)
    result = run_sgd(problem, estimators.baselines.leave_one_out().wrap(estimators.score_function), step_size=0.5,
                     steps=400, samples=4, seed=0, variance_samples=200, log_points=5, tolerance=0.05,
                     divergence_factor=100.0)
    assert "dist_to_opt" not in result.curves and not {"final_dist", "best_dist", "steps_to_tol", "converged"} & set(
        result.summary)
    assert result.summary["diverged"] == 0.0 and result.trajectory.shape == (401, 2)
    assert result.curves["loss"][-1] < result.curves["loss"][0]
    assert np.isnan(result.curves["grad_variance_exact"]).all()  # no closed form with a baseline


def test_the_score_function_curve_has_its_exact_variance():
    problem = BernoulliToy(dim=2)
    result = run_sgd(problem, estimators.score_function, step_size=0.1, steps=10, samples=3, seed=0,
                     variance_samples=20_000, log_points=3, tolerance=0.05, divergence_factor=100.0)
    c = result.curves
    np.testing.assert_array_less(np.abs(c["grad_variance"] - c["grad_variance_exact"]), Z * c["grad_variance_se"])
