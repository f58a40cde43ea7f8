"""Families as objects: the Bernoulli family's estimators against an exact enumeration, where each
estimator, wrapper and sampling scheme applies (``estimators.check``), and the configuration
names under which problems file their closed forms (``estimators.describe``)."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, BernoulliParams, Gaussian, GaussianParams, baselines, control_variates, sampling
from problems.gaussian_expectation import GaussianExpectation
from problems.quadratic import Quadratic
from tests.estimators.checks import assert_unbiased, family_estimates

SF = estimators.score_function
MV = estimators.measure_valued
SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]
LOGITS = np.array([-1.2, 0.3, 1.7])


def separable(b: np.ndarray) -> np.ndarray:
    """f(b) = Σ_j (b_j − 0.45)²."""
    return ((b - 0.45) ** 2).sum(axis=-1)


def interacting(b: np.ndarray) -> np.ndarray:
    """f(b) = Σ_j (b_j − 0.45)² + 2 b₁b₂ − 1.5 b₂b₃ + b₁b₂b₃: the coordinates interact, so the
    coupled measure-valued estimate is not exact per sample."""
    b1, b2, b3 = b[..., 0], b[..., 1], b[..., 2]
    return separable(b) + 2.0 * b1 * b2 - 1.5 * b2 * b3 + b1 * b2 * b3


INTEGRANDS = {"separable": separable, "interacting": interacting}


def enumerated_loss(f, logits: np.ndarray) -> float:
    """L(φ) = Σ_b q(b) f(b) over all 2^d outcomes b ∈ {0, 1}^d, q(b) = Π_j p_j^{b_j}(1 − p_j)^{1 − b_j}."""
    p = 1.0 / (1.0 + np.exp(-logits))
    total = 0.0
    for b in itertools.product((0.0, 1.0), repeat=logits.size):
        b = np.array(b)
        total += float(np.prod(np.where(b == 1.0, p, 1.0 - p))) * float(f(b))
    return total


def enumerated_grad(f, logits: np.ndarray) -> np.ndarray:
    """∂L/∂φ_j = Σ_b f(b)·∂q(b)/∂φ_j with ∂q/∂φ_j = q(b)(b_j − p_j), by enumeration, checked
    against central differences of the enumerated L."""
    p = 1.0 / (1.0 + np.exp(-logits))
    grad = np.zeros(logits.size)
    for b in itertools.product((0.0, 1.0), repeat=logits.size):
        b = np.array(b)
        q = float(np.prod(np.where(b == 1.0, p, 1.0 - p)))
        grad += q * float(f(b)) * (b - p)
    h = 1e-6
    fd = [(enumerated_loss(f, logits + h * e) - enumerated_loss(f, logits - h * e)) / (2 * h)
          for e in np.eye(logits.size)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    return grad


def test_the_enumerated_truth_of_the_separable_integrand():
    """For f = Σ_j (b_j − t)² the gradient is p_j(1 − p_j)((1 − t)² − t²), coordinate by coordinate."""
    p = 1.0 / (1.0 + np.exp(-LOGITS))
    np.testing.assert_allclose(enumerated_grad(separable, LOGITS), p * (1 - p) * (0.55**2 - 0.45**2), rtol=1e-12)


# --- (a) Unbiasedness on the Bernoulli family.


@pytest.mark.parametrize("f", INTEGRANDS)
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
def test_score_function_unbiased_on_bernoulli(scheme, f):
    estimator = estimators.configure(SF, sampling=scheme)
    est = family_estimates(estimator, INTEGRANDS[f], Bernoulli(), BernoulliParams(LOGITS), samples=4,
                           replicates=20_000, seed=21)
    assert est.shape == (20_000, 3)
    assert_unbiased(est, enumerated_grad(INTEGRANDS[f], LOGITS))


@pytest.mark.parametrize("f", INTEGRANDS)
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("coupling", [True, False], ids=["coupled", "uncoupled"])
def test_measure_valued_unbiased_on_bernoulli(coupling, scheme, f):
    estimator = estimators.configure(functools.partial(MV, coupling=coupling), sampling=scheme)
    est = family_estimates(estimator, INTEGRANDS[f], Bernoulli(), BernoulliParams(LOGITS), samples=4,
                           replicates=20_000, seed=22)
    assert est.shape == (20_000, 3)
    assert_unbiased(est, enumerated_grad(INTEGRANDS[f], LOGITS))


def test_coupled_measure_valued_is_exact_on_a_separable_integrand():
    """With b_j set to 1 and to 0 in the same sample, the other coordinates cancel in f(b⁺) − f(b⁻)."""
    g = MV(separable, Bernoulli(), BernoulliParams(LOGITS), np.random.default_rng(0), 50)
    np.testing.assert_allclose(g, np.broadcast_to(enumerated_grad(separable, LOGITS), g.shape), rtol=1e-12)


# --- (b) Where estimators, wrappers and schemes apply.


def test_reparameterization_is_inapplicable_to_bernoulli():
    with pytest.raises(estimators.Inapplicable, match="bernoulli") as err:
        estimators.check(estimators.reparameterization, Bernoulli())
    assert "reparameterization" in str(err.value)
    # What does apply is not refused.
    for estimator in (SF, MV, estimators.reparameterization):
        estimators.check(estimator, Gaussian())
    for estimator in (SF, MV):
        estimators.check(estimator, Bernoulli())


def test_a_baseline_is_refused_around_anything_but_the_score_function():
    with pytest.raises(estimators.Inapplicable, match="score function"):
        estimators.check(baselines.optimal().wrap(estimators.reparameterization), Gaussian())
    with pytest.raises(estimators.Inapplicable, match="score function"):
        estimators.check(baselines.moving_average().wrap(MV), Bernoulli())
    estimators.check(baselines.optimal().wrap(SF), Gaussian())
    estimators.check(baselines.optimal().wrap(SF), Bernoulli())


def test_the_delta_control_variate_is_refused_on_bernoulli():
    """Its E_q[h] is known for Gaussians only."""
    wrapped = control_variates.delta().wrap(SF)
    with pytest.raises(estimators.Inapplicable, match="bernoulli"):
        estimators.check(wrapped, Bernoulli())
    estimators.check(wrapped, Gaussian())


@dataclass(frozen=True)
class IndependentOnly(Bernoulli):
    """A family exact under independent sampling only."""

    name: ClassVar[str] = "independent_only"
    schemes: ClassVar[tuple[str, ...]] = ("independent",)


def test_a_family_refuses_the_schemes_it_does_not_name():
    family = IndependentOnly()
    with pytest.raises(estimators.Inapplicable, match="qmc") as err:
        estimators.check(SF, family, sampling="qmc")
    assert "independent_only" in str(err.value)
    with pytest.raises(estimators.Inapplicable, match="antithetic"):
        estimators.check(SF, family, sampling="antithetic")
    estimators.check(SF, family, sampling="independent")
    estimators.check(SF, Bernoulli(), sampling="qmc")


# --- (c) Configurations, and the closed forms filed under them.


def test_describe_names_the_whole_configuration():
    configured = estimators.configure(
        functools.partial(SF, baseline=baselines.optimal(), control_variate=control_variates.delta()),
        sampling=sampling.antithetic,
    )
    assert estimators.describe(configured) == estimators.spec(
        "score_function", sampling="antithetic", baseline="optimal", control_variate="delta")
    # The "none" wrappers are the identity: the plain estimator's configuration.
    plain = estimators.configure(
        functools.partial(SF, baseline=baselines.none(), control_variate=control_variates.none()))
    assert estimators.describe(plain) == estimators.spec("score_function")
    uncoupled = functools.partial(MV, coupling=False)
    assert estimators.describe(uncoupled) == estimators.spec("measure_valued", coupling=False)


def test_no_exact_variance_for_a_configuration_nobody_derived():
    problem = Quadratic()
    optimal = estimators.describe(estimators.configure(functools.partial(SF, baseline=baselines.optimal())))
    assert problem.exact_variance(optimal, Gaussian(), problem.params0, 1) == {}
    # The plain one is derived: the test above is not vacuous.
    assert set(problem.exact_variance(estimators.describe(SF), Gaussian(), problem.params0, 1)) == {"mean"}


def test_a_new_control_variate_does_not_inherit_the_delta_methods_variance():
    """A control variate named "other", with the delta method's functions: nobody derived its variance
    (the old code keyed on "some control variate" and gave it the delta method's value)."""
    problem = GaussianExpectation(f="cos", k=1.0, dim=2)
    params = GaussianParams(np.array([1.0, 0.3]), np.array([1.0, 0.7]))
    other = control_variates.delta()._replace(name="other")
    assert problem.exact_variance(estimators.describe(other.wrap(SF)), Gaussian(), params, 1) == {}
    assert problem.exact_variance(estimators.describe(other.wrap(SF)), Gaussian(learn_scale=True), params, 1) == {}
    delta = problem.exact_variance(estimators.describe(control_variates.delta().wrap(SF)), Gaussian(), params, 1)
    assert set(delta) == {"mean"} and math.isfinite(delta["mean"])
