"""The categorical toy problem against enumeration over the K^d outcomes, and its runs end to end."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

import estimators
from estimators.families import Categorical, CategoricalParams
from experiments.sgd import run_sgd
from problems.bernoulli_toy import BernoulliToy
from problems.categorical_toy import CategoricalToy
from tests.estimators.checks import Z, assert_unbiased

LOGITS = np.array([[0.7, -0.4, 1.1, 0.0], [-1.2, 0.3, 0.3, 2.0], [0.5, 0.5, -0.8, 0.1]])


def exact_by_enumeration(costs: np.ndarray, logits: np.ndarray):
    """L, ∇L (flat) and the one-sample score-function covariance trace, summed over the K^d
    outcomes; f(z) = Σ_j c_{k_j}, the score z − π."""
    d, k = logits.shape
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    loss, grad, second = 0.0, np.zeros(d * k), 0.0
    for classes in itertools.product(range(k), repeat=d):
        rows = np.arange(d)
        w = float(np.prod(pi[rows, classes]))
        z = np.zeros((d, k))
        z[rows, classes] = 1.0
        f = float(np.sum(costs[list(classes)]))
        g = f * (z - pi).ravel()
        loss += w * f
        grad += w * g
        second += w * float(g @ g)
    return loss, grad, second - float(grad @ grad)


def default_costs(k: int, t: float = 0.45) -> np.ndarray:
    return np.array([(i / (k - 1) - t) ** 2 for i in range(k)])


@pytest.mark.parametrize("d, k, costs", [(2, 3, None), (3, 4, None), (1, 4, None), (2, 3, [1.0, -2.0, 0.5])])
def test_loss_gradient_and_score_function_variance_match_enumeration(d, k, costs):
    problem = CategoricalToy(dim=d, classes=k, costs=costs)
    logits = LOGITS[:d, :k]
    c = default_costs(k) if costs is None else np.array(costs)
    np.testing.assert_allclose(problem.cost, c, rtol=1e-15)
    loss, grad, variance = exact_by_enumeration(c, logits)
    sf = estimators.describe(estimators.score_function)
    for params in (CategoricalParams(logits.ravel()), CategoricalParams(logits)):  # flat, or (d, K)
        assert problem.loss(params) == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(np.ravel(problem.exact_grad(params).logits), grad, rtol=1e-10, atol=1e-15)
        assert problem.exact_variance(sf, problem.family, params, 1)["logits"] == pytest.approx(variance, rel=1e-10)
        assert problem.exact_variance(sf, problem.family, params, 4)["logits"] == pytest.approx(variance / 4,
                                                                                               rel=1e-10)


def test_the_enumerated_gradient_is_the_derivative_of_the_enumerated_loss():
    c, logits, h = default_costs(3), LOGITS[:2, :3], 1e-6
    _, grad, _ = exact_by_enumeration(c, logits)
    fd = [(exact_by_enumeration(c, logits + h * e.reshape(2, 3))[0]
           - exact_by_enumeration(c, logits - h * e.reshape(2, 3))[0]) / (2 * h) for e in np.eye(6)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-10)


def test_two_classes_are_the_bernoulli_toy():
    """K = 2 with the default costs is f = Σ_j (b_j − t)², b_j = z_j1, logit φ_j1 − φ_j0."""
    phi = np.array([-1.3, 0.2, 2.1])
    categorical, bernoulli = CategoricalToy(dim=3, classes=2), BernoulliToy(dim=3)
    params = CategoricalParams(np.stack([np.zeros(3), phi], axis=1).ravel())
    assert categorical.loss(params) == pytest.approx(bernoulli.loss(estimators.BernoulliParams(phi)), rel=1e-12)
    grad = categorical.exact_grad(params).logits.reshape(3, 2)
    np.testing.assert_allclose(grad[:, 1], bernoulli.exact_grad(estimators.BernoulliParams(phi)).logits, rtol=1e-10)
    np.testing.assert_allclose(grad[:, 0], -grad[:, 1], rtol=1e-10)


def test_measured_variance_matches_the_closed_form():
    problem = CategoricalToy(dim=2, classes=3)
    params = CategoricalParams(LOGITS[:2, :3].ravel())
    est = estimators.score_function(problem, problem.family, params, np.random.default_rng(1), (200_000, 1))[:, 0]
    grad = problem.exact_grad(params).logits
    sq = ((est - grad) ** 2).sum(axis=1)
    exact = problem.exact_variance(estimators.describe(estimators.score_function), problem.family, params, 1)
    assert abs(sq.mean() - exact["logits"]) < Z * sq.std(ddof=1) / math.sqrt(len(sq))
    assert_unbiased(est, grad)


def test_no_closed_form_for_configurations_nobody_derived():
    problem = CategoricalToy(dim=2, classes=3)
    params = problem.params0
    for est in (estimators.baselines.leave_one_out().wrap(estimators.score_function),
                functools.partial(estimators.score_function, sampling=estimators.sampling.antithetic)):
        assert problem.exact_variance(estimators.describe(est), problem.family, params, 2) == {}


def test_the_start_is_uniform_and_flat():
    problem = CategoricalToy(dim=3, classes=4, logit0=-2.0)
    assert problem.params0.logits.shape == (12,) and np.all(problem.params0.logits == -2.0)
    assert problem.family == Categorical(4)
    assert problem.loss(problem.params0) == pytest.approx(3 * default_costs(4).mean(), rel=1e-12)
    assert problem.length_scale == pytest.approx(math.sqrt(12) * 3.0)


def test_a_run_logs_no_distances_and_reaches_lower_loss():
    problem = CategoricalToy(dim=2, classes=3)
    result = run_sgd(problem, estimators.baselines.leave_one_out().wrap(estimators.score_function), step_size=1.0,
                     steps=300, samples=4, seed=0, variance_samples=200, log_points=5, tolerance=0.05,
                     divergence_factor=100.0)
    assert "dist_to_opt" not in result.curves and not {"final_dist", "best_dist", "steps_to_tol", "converged"} & set(
        result.summary)
    assert result.summary["diverged"] == 0.0 and result.trajectory.shape == (301, 6)
    assert result.curves["loss"][-1] < result.curves["loss"][0]


def test_the_score_function_curve_has_its_exact_variance():
    problem = CategoricalToy(dim=2, classes=3)
    result = run_sgd(problem, estimators.score_function, step_size=0.5, steps=10, samples=3, seed=0,
                     variance_samples=20_000, log_points=3, tolerance=0.05, divergence_factor=100.0)
    c = result.curves
    np.testing.assert_array_less(np.abs(c["grad_variance"] - c["grad_variance_exact"]), Z * c["grad_variance_se"])
    assert np.all(c["grad_bias_sq_exact"] == 0.0)


@pytest.mark.parametrize("key, value", [("dim", 0), ("dim", 1.5), ("classes", 1), ("classes", True),
                                        ("target", math.nan), ("logit0", math.inf), ("logit0", "abc"),
                                        ("costs", [1.0, 2.0]), ("costs", [1.0, 2.0, math.nan, 0.0]),
                                        ("costs", "1,2,3,4")])
def test_invalid_keys_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=rf"^invalid problem\.{key}=.*: allowed: "):
        CategoricalToy(**{key: value})


@pytest.mark.parametrize("override, refused", [
    ("estimator=reparameterization", "estimator=reparameterization"),
    ("estimator=rebar", "estimator=rebar"),
    ("estimator=measure_valued", "estimator=measure_valued"),
    ("problem.costs=[1,2]", "problem.costs"),
    ("problem.classes=1", "problem.classes"),
])
def test_the_harness_refuses_what_does_not_apply(compose_config, override, refused):
    from experiments.config import ConfigError, validate

    with pytest.raises(ConfigError) as err:
        validate(compose_config("problem=categorical_toy", override))
    message = str(err.value)
    assert f"invalid {refused}" in message and "allowed:" in message and "\n" not in message


def test_the_harness_accepts_the_relaxations_and_the_score_function(compose_config):
    from experiments.config import build, validate

    for overrides in (["estimator=gumbel_softmax"], ["estimator=straight_through", "estimator.temperature=0.3"],
                      ["estimator/baseline=leave_one_out", "samples=4"], ["problem.costs=[0.1,0.5,0.2,0.9]"]):
        cfg = compose_config("problem=categorical_toy", *overrides)
        validate(cfg)
        assert isinstance(build(cfg.problem), CategoricalToy)
