"""The binary polynomial problem against enumeration over {0, 1}^d, and its runs end to end.

The truths are sums over the 2^d outcomes (over N-tuples of them for the leave-one-out baseline,
over pairs for the uncoupled measure-valued estimator, over the 3^d cells of u for ARM and DisARM),
written from the estimators' definitions, never from the closed forms under test."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

import estimators
from estimators import BernoulliParams, baselines
from estimators.arm import arm, disarm
from experiments.config import ConfigError, validate
from experiments.sgd import run_sgd
from problems.base import HasExactGradient, HasExactVariance, HasOptimum
from problems.binary_polynomial import BinaryPolynomial
from tests.estimators.checks import Z, assert_unbiased, assert_variance, family_estimates
from tests.estimators.test_arm import pair_variance

LOGIT_SETS = [np.array([-1.3, 0.2, 2.1, -0.4]), np.array([-6.0, 0.0, 4.5, 1.0]), np.array([3.0, 2.0, -2.5, 0.7])]
RLOO = baselines.leave_one_out().wrap(estimators.score_function)


def outcomes(logits: np.ndarray):
    """Every b in {0, 1}^d with its probability under independent Bernoulli(σ(φ_j))."""
    p = 1.0 / (1.0 + np.exp(-logits))
    for b in itertools.product((0.0, 1.0), repeat=logits.size):
        b = np.array(b)
        yield b, float(np.prod(np.where(b == 1.0, p, 1.0 - p)))


def enumerated_loss_and_grad(f, logits: np.ndarray) -> tuple[float, np.ndarray]:
    p = 1.0 / (1.0 + np.exp(-logits))
    loss, grad = 0.0, np.zeros(logits.size)
    for b, w in outcomes(logits):
        loss += w * float(f(b))
        grad += w * float(f(b)) * (b - p)
    return loss, grad


def score_function_variance(f, logits: np.ndarray) -> float:
    """tr Cov of one score-function sample f(b)(b − p)."""
    p = 1.0 / (1.0 + np.exp(-logits))
    mean, second = np.zeros(logits.size), 0.0
    for b, w in outcomes(logits):
        g = float(f(b)) * (b - p)
        mean += w * g
        second += w * float(g @ g)
    return second - float(mean @ mean)


def leave_one_out_variance(f, logits: np.ndarray, n: int) -> float:
    """tr Cov of the n-sample estimate (1/n) Σ_i (f_i − mean of the others)(b_i − p), over all n-tuples."""
    p = 1.0 / (1.0 + np.exp(-logits))
    table = [(b, w, float(f(b))) for b, w in outcomes(logits)]
    mean, second = np.zeros(logits.size), 0.0
    for tup in itertools.product(table, repeat=n):
        values = np.array([t[2] for t in tup])
        weight = math.prod(t[1] for t in tup)
        others = (values.sum() - values) / (n - 1)
        g = sum((values[i] - others[i]) * (tup[i][0] - p) for i in range(n)) / n
        mean += weight * g
        second += weight * float(g @ g)
    return second - float(mean @ mean)


def measure_valued_variance(f, logits: np.ndarray, coupled: bool) -> float:
    """tr Cov of one sample q_j(f(b⁺ with b⁺_j = 1) − f(b⁻ with b⁻_j = 0)), b⁻ = b⁺ when coupled."""
    p = 1.0 / (1.0 + np.exp(-logits))
    q, d = p * (1.0 - p), logits.size
    table = list(outcomes(logits))
    pairs = ([(b, b, w) for b, w in table] if coupled
             else [(bp, bm, wp * wm) for (bp, wp), (bm, wm) in itertools.product(table, repeat=2)])
    mean, second = np.zeros(d), 0.0
    for bp, bm, w in pairs:
        g = np.empty(d)
        for j in range(d):
            up, down = bp.copy(), bm.copy()
            up[j], down[j] = 1.0, 0.0
            g[j] = q[j] * (float(f(up)) - float(f(down)))
        mean += w * g
        second += w * float(g @ g)
    return second - float(mean @ mean)


@pytest.mark.parametrize("target", [0.45, 0.1, 0.9])
@pytest.mark.parametrize("logits", LOGIT_SETS, ids=["moderate", "saturated", "mixed"])
def test_loss_and_gradient_match_enumeration(logits, target):
    problem = BinaryPolynomial(dim=4, target=target)
    loss, grad = enumerated_loss_and_grad(problem, logits)
    params = BernoulliParams(logits)
    assert problem.loss(params) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(problem.exact_grad(params).logits, grad, rtol=1e-10, atol=1e-15)
    h = 1e-6
    fd = [(problem.loss(BernoulliParams(logits + h * e)) - problem.loss(BernoulliParams(logits - h * e))) / (2 * h)
          for e in np.eye(4)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_the_default_instance():
    problem = BinaryPolynomial()
    assert problem.dim == 32 and problem.target == 0.45 and problem.logit0 == 0.0
    np.testing.assert_allclose(problem.weights, np.arange(1, 33) / 32)
    assert problem.offset == pytest.approx(0.45 * problem.weights.sum())
    b = np.zeros(32)
    b[25:] = 1.0  # the seven largest weights, 26/32 … 1: wᵀb = 203/32 against c = 7.425
    assert problem(b) == pytest.approx((203 / 32 - 7.425) ** 2)
    assert not isinstance(problem, HasOptimum)
    assert isinstance(problem, HasExactGradient) and isinstance(problem, HasExactVariance)


def test_relaxed_inputs_have_the_gradient_and_hessian_of_f():
    problem = BinaryPolynomial(dim=5)
    b = np.random.default_rng(0).random((3, 5))
    h = 1e-6
    fd = np.stack([(problem(b + h * e) - problem(b - h * e)) / (2 * h) for e in np.eye(5)], axis=-1)
    np.testing.assert_allclose(problem.grad(b), fd, rtol=1e-6, atol=1e-8)
    fd2 = np.stack([(problem.grad(b + h * e) - problem.grad(b - h * e)) / (2 * h) for e in np.eye(5)], axis=-1)
    np.testing.assert_allclose(problem.hessian(b), fd2, rtol=1e-6, atol=1e-8)


CONFIGURATIONS = {
    "score_function": (estimators.score_function, lambda f, x, n: score_function_variance(f, x) / n),
    "leave_one_out": (RLOO, leave_one_out_variance),
    "measure_valued": (estimators.measure_valued, lambda f, x, n: measure_valued_variance(f, x, True) / n),
    "measure_valued_uncoupled": (functools.partial(estimators.measure_valued, coupling=False),
                                 lambda f, x, n: measure_valued_variance(f, x, False) / n),
    "arm": (arm, lambda f, x, n: float(pair_variance(f, x, "arm").sum()) / n),
    "disarm": (disarm, lambda f, x, n: float(pair_variance(f, x, "disarm").sum()) / n),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
@pytest.mark.parametrize("logits", LOGIT_SETS, ids=["moderate", "saturated", "mixed"])
def test_exact_variances_match_enumeration(logits, name):
    estimator, truth = CONFIGURATIONS[name]
    problem = BinaryPolynomial(dim=4, target=0.3)
    config = estimators.describe(estimator)
    for n in ((2, 3) if name == "leave_one_out" else (1, 4)):
        exact = problem.exact_variance(config, problem.family, BernoulliParams(logits), n)
        assert exact["logits"] == pytest.approx(truth(problem, logits, n), rel=1e-9, abs=1e-14), n


def test_no_closed_form_for_configurations_nobody_derived():
    problem = BinaryPolynomial(dim=4)
    params = BernoulliParams(LOGIT_SETS[0])
    for est in (baselines.optimal(20).wrap(estimators.score_function),
                functools.partial(disarm, sampling=estimators.sampling.antithetic),
                functools.partial(estimators.measure_valued, sampling=estimators.sampling.qmc)):
        assert problem.exact_variance(estimators.describe(est), problem.family, params, 2) == {}
    assert problem.exact_variance(estimators.describe(RLOO), problem.family, params, 1) == {}


@pytest.mark.parametrize("name", ["score_function", "leave_one_out", "arm", "disarm", "measure_valued_uncoupled"])
def test_measured_variance_matches_the_closed_form_in_32_dimensions(name):
    """At the default d = 32 (no enumeration): unbiased against ∇L, and tr Cov within 5 SE of the closed form."""
    estimator = CONFIGURATIONS[name][0]
    problem = BinaryPolynomial()
    logits = np.random.default_rng(1).normal(0.0, 1.5, 32)
    params = BernoulliParams(logits)
    samples = 3
    est = family_estimates(estimator, problem, problem.family, params, samples, replicates=20_000, seed=2)
    grad = problem.exact_grad(params).logits
    assert_unbiased(est, grad)
    assert_variance(est, grad, problem.exact_variance(estimators.describe(estimator), problem.family, params,
                                                      samples)["logits"])


def test_keys_are_checked():
    refused = [({"dim": 0}, "dim"), ({"dim": 2.5}, "dim"), ({"dim": True}, "dim"), ({"target": math.nan}, "target"),
               ({"logit0": math.inf}, "logit0"), ({"logit0": "a"}, "logit0")]
    for kwargs, key in refused:
        with pytest.raises(ValueError, match=f"invalid problem.{key}="):
            BinaryPolynomial(**kwargs)


def test_the_config_composes_and_refuses_by_key(compose_config):
    for estimator in ("score_function", "arm", "disarm", "measure_valued"):
        validate(compose_config("problem=binary_polynomial", f"estimator={estimator}"))
    validate(compose_config("problem=binary_polynomial", "estimator/baseline=leave_one_out", "samples=4"))
    for override, key in [("problem.dim=0", "problem.dim"), ("problem.target=nan", "problem.target"),
                          ("problem.logit0=inf", "problem.logit0"), ("estimator=reparameterization", "estimator")]:
        with pytest.raises(ConfigError, match=f"invalid {key}"):
            validate(compose_config("problem=binary_polynomial", override))


@pytest.mark.parametrize("estimator", [RLOO, disarm], ids=["leave_one_out", "disarm"])
def test_a_run_reaches_lower_loss_and_logs_its_exact_variance(estimator):
    problem = BinaryPolynomial()
    result = run_sgd(problem, estimator, step_size=0.5, steps=200, samples=4, seed=0, variance_samples=4000,
                     log_points=4, tolerance=0.05, divergence_factor=100.0)
    assert "dist_to_opt" not in result.curves and "final_dist" not in result.summary
    assert result.summary["diverged"] == 0.0 and result.trajectory.shape == (201, 32)
    c = result.curves
    assert c["loss"][-1] < 0.5 * c["loss"][0]
    assert np.all(np.isfinite(c["grad_variance_exact"]))
    np.testing.assert_array_less(np.abs(c["grad_variance"] - c["grad_variance_exact"]), Z * c["grad_variance_se"])
    np.testing.assert_array_less(np.abs(c["grad_bias_sq"]), Z * c["grad_bias_sq_se"])
