"""The Bernoulli toy problem against enumeration over {0, 1}^d, and its runs end to end."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

import estimators
from estimators.arm import arm, disarm
from experiments.sgd import run_sgd
from problems.bernoulli_toy import BernoulliToy
from tests.estimators.checks import Z, assert_unbiased, assert_variance
from tests.estimators.test_arm import pair_variance
from tests.problems.test_binary_polynomial import leave_one_out_variance, measure_valued_variance

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
    for est in (estimators.baselines.optimal(20).wrap(estimators.score_function),
                functools.partial(estimators.score_function, sampling=estimators.sampling.antithetic),
                functools.partial(estimators.measure_valued, coupling=False, sampling=estimators.sampling.qmc),
                functools.partial(arm, sampling=estimators.sampling.antithetic)):
        assert problem.exact_variance(estimators.describe(est), problem.family, params, 2) == {}
    assert problem.exact_variance(estimators.describe(RLOO), problem.family, params, 1) == {}  # N < 2: undefined


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
    assert np.isfinite(result.curves["grad_variance_exact"]).all()  # the leave-one-out closed form


def test_the_score_function_curve_has_its_exact_variance():
    problem = BernoulliToy(dim=2)
    result = run_sgd(problem, estimators.score_function, step_size=0.1, steps=10, samples=3, seed=0,
                     variance_samples=20_000, log_points=3, tolerance=0.05, divergence_factor=100.0)
    c = result.curves
    np.testing.assert_array_less(np.abs(c["grad_variance"] - c["grad_variance_exact"]), Z * c["grad_variance_se"])


# --- Exact variances of the leave-one-out baseline, ARM, DisARM and the measure-valued estimator,
# against enumeration (over N-tuples of outcomes, pairs of outcomes, or the cells of u) and measurement.

RLOO = estimators.baselines.leave_one_out().wrap(estimators.score_function)
LOGIT_SETS = [LOGITS, np.array([-6.0, 0.0, 4.5]), np.array([8.0, -9.0, 0.5])]


def exact(problem, estimator, logits, samples):
    value = problem.exact_variance(estimators.describe(estimator), problem.family, estimators.BernoulliParams(logits),
                                   samples)
    return value["logits"]


@pytest.mark.parametrize("target", [0.45, -0.3])
@pytest.mark.parametrize("logits", LOGIT_SETS, ids=["moderate", "saturated", "far"])
def test_closed_forms_match_enumeration(logits, target):
    problem = BernoulliToy(dim=3, target=target)
    for n in (2, 3):
        assert exact(problem, RLOO, logits, n) == pytest.approx(leave_one_out_variance(problem, logits, n), rel=1e-9)
    for name, estimator in (("arm", arm), ("disarm", disarm)):
        truth = float(pair_variance(problem, logits, name).sum())
        assert exact(problem, estimator, logits, 1) == pytest.approx(truth, rel=1e-9, abs=1e-15)
        assert exact(problem, estimator, logits, 4) == pytest.approx(truth / 4, rel=1e-9, abs=1e-15)
    uncoupled = functools.partial(estimators.measure_valued, coupling=False)
    assert exact(problem, uncoupled, logits, 1) == pytest.approx(measure_valued_variance(problem, logits, False),
                                                                 rel=1e-9)
    assert measure_valued_variance(problem, logits, True) == pytest.approx(0.0, abs=1e-15)
    for scheme in (estimators.sampling.independent, estimators.sampling.antithetic, estimators.sampling.qmc):
        assert exact(problem, functools.partial(estimators.measure_valued, sampling=scheme), logits, 3) == 0.0


@pytest.mark.parametrize("samples", [2, 3, 5])
def test_leave_one_out_variance_matches_measurement(samples):
    problem = BernoulliToy(dim=3)
    for k, logits in enumerate(LOGIT_SETS[:2]):
        params = estimators.BernoulliParams(logits)
        est = RLOO(problem, problem.family, params, np.random.default_rng(50 + k), (200_000, samples)).mean(axis=1)
        assert_variance(est, problem.exact_grad(params).logits, exact(problem, RLOO, logits, samples))


@pytest.mark.parametrize("estimator", [arm, disarm, functools.partial(estimators.measure_valued, coupling=False),
                                       estimators.measure_valued], ids=["arm", "disarm", "mv_uncoupled", "mv_coupled"])
def test_pair_and_measure_valued_variances_match_measurement(estimator):
    problem = BernoulliToy(dim=3)
    for k, logits in enumerate(LOGIT_SETS):
        params = estimators.BernoulliParams(logits)
        for samples in (1, 4):
            est = estimator(problem, problem.family, params, np.random.default_rng(60 + k), (100_000, samples))
            assert_variance(est.mean(axis=1), problem.exact_grad(params).logits,
                            exact(problem, estimator, logits, samples))


def test_disarm_never_has_the_larger_variance():
    for target in (0.45, -0.3, 1.7):
        problem = BernoulliToy(dim=3, target=target)
        for logits in LOGIT_SETS:
            assert exact(problem, disarm, logits, 1) <= exact(problem, arm, logits, 1)


def test_a_leave_one_out_run_logs_its_exact_variance():
    problem = BernoulliToy(dim=3, logit0=0.5)
    result = run_sgd(problem, RLOO, step_size=0.3, steps=20, samples=3, seed=0, variance_samples=20_000,
                     log_points=3, tolerance=0.05, divergence_factor=100.0)
    c = result.curves
    np.testing.assert_array_less(np.abs(c["grad_variance"] - c["grad_variance_exact"]), Z * c["grad_variance_se"])
