"""ARM and DisARM against exact integration over the cells of the base noise u, and where they apply.

The truths come from the definitions alone: each u_j falls in one of the three intervals cut by
p_j and 1 − p_j, on which b = 1[u < p] and b̃ = 1[1 − u < p] are constant; the ARM weight
(u_j − ½) is integrated over its interval in closed form, DisARM's weight is constant there.
Summing over the 3^d cells gives the mean and the second moment of either estimator exactly."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, BernoulliParams, Gaussian, baselines, sampling
from estimators.arm import arm, disarm
from problems.bernoulli_toy import BernoulliToy
from tests.estimators.checks import assert_unbiased, assert_variance, family_estimates

SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]
# Moderate logits, a strongly saturated set, and one with p on both sides far from ½.
LOGIT_SETS = [np.array([-1.3, 0.2, 2.1]), np.array([-6.0, 0.0, 4.5]), np.array([8.0, -9.0, 0.5])]


def interacting(b: np.ndarray) -> np.ndarray:
    """f(b) = Σ_j (b_j − 0.45)² + 2 b₁b₂ − 1.5 b₂b₃ + b₁b₂b₃: not separable."""
    b1, b2, b3 = b[..., 0], b[..., 1], b[..., 2]
    return ((b - 0.45) ** 2).sum(axis=-1) + 2.0 * b1 * b2 - 1.5 * b2 * b3 + b1 * b2 * b3


def enumerated_grad(f, logits: np.ndarray) -> np.ndarray:
    """∂L/∂φ_j = Σ_b q(b) f(b)(b_j − p_j) over {0, 1}^d."""
    p = 1.0 / (1.0 + np.exp(-logits))
    grad = np.zeros(logits.size)
    for b in itertools.product((0.0, 1.0), repeat=logits.size):
        b = np.array(b)
        grad += float(np.prod(np.where(b == 1.0, p, 1.0 - p))) * float(f(b)) * (b - p)
    return grad


def cells(p: float):
    """The intervals [lo, hi) of u cut by p and 1 − p, each with its (b, b̃) from the definitions."""
    cuts = sorted({0.0, min(p, 1.0 - p), max(p, 1.0 - p), 1.0})
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        mid = 0.5 * (lo + hi)
        yield lo, hi, float(mid < p), float(1.0 - mid < p)


def pair_moments(f, logits: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """E ĝ and E ĝ_j² (per coordinate) of one ARM or DisARM pair, summed over the 3^d cells of u."""
    p = 1.0 / (1.0 + np.exp(-logits))
    d = logits.size
    mean, second = np.zeros(d), np.zeros(d)
    for combo in itertools.product(*(list(cells(pj)) for pj in p)):
        lo, hi, b, bt = (np.array(x) for x in zip(*combo))
        width = hi - lo
        weight = float(np.prod(width))
        if weight == 0.0:
            continue
        diff = float(f(bt) - f(b))
        if name == "arm":
            # (u_j − ½) averaged over its interval, and (u_j − ½)² likewise, in closed form.
            first = ((hi - 0.5) ** 2 - (lo - 0.5) ** 2) / (2.0 * width)
            square = ((hi - 0.5) ** 3 - (lo - 0.5) ** 3) / (3.0 * width)
            mean += weight * diff * first
            second += weight * diff**2 * square
        else:
            # ½(f(b) − f(b̃))(−1)^{b̃_j} 1[b_j ≠ b̃_j] σ(|φ_j|), as Dong, Mnih & Tucker write it.
            g = 0.5 * -diff * (-1.0) ** bt * (b != bt) / (1.0 + np.exp(-np.abs(logits)))
            mean += weight * g
            second += weight * g**2
    return mean, second


def pair_variance(f, logits: np.ndarray, name: str) -> np.ndarray:
    """Var ĝ_j of one pair, per coordinate, by :func:`pair_moments`."""
    mean, second = pair_moments(f, logits, name)
    return second - mean**2


ESTIMATORS = {"arm": arm, "disarm": disarm}


def test_the_cell_integration_gives_the_gradient():
    """The truth used below is itself unbiased: both estimators' exact means equal the enumerated ∇L."""
    for logits in LOGIT_SETS:
        for f in (interacting, BernoulliToy(dim=3)):
            for name in ESTIMATORS:
                np.testing.assert_allclose(pair_moments(f, logits, name)[0], enumerated_grad(f, logits),
                                           rtol=1e-10, atol=1e-15)


def test_the_complement_pair_would_be_biased():
    """ARM's second sample is 1[u < σ(φ)], not the complement 1[u < σ(−φ)] of the first: with the
    complement the other coordinates are drawn from Bernoulli(1 − p) and the mean is off."""
    logits = LOGIT_SETS[0]
    p = 1.0 / (1.0 + np.exp(-logits))
    mean = np.zeros(3)
    for combo in itertools.product(*(list(cells(pj)) for pj in p)):
        lo, hi, _, bt = (np.array(x) for x in zip(*combo))
        weight = float(np.prod(hi - lo))
        first = ((hi - 0.5) ** 2 - (lo - 0.5) ** 2) / (2.0 * (hi - lo))
        mean += weight * float(interacting(bt) - interacting(1.0 - bt)) * first
    assert np.max(np.abs(mean - enumerated_grad(interacting, logits))) > 0.1


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("logits", LOGIT_SETS, ids=["moderate", "saturated", "far"])
def test_unbiased_on_the_toy(logits, name, scheme):
    problem = BernoulliToy(dim=3)
    estimator = estimators.configure(ESTIMATORS[name], sampling=scheme)
    est = family_estimates(estimator, problem, problem.family, BernoulliParams(logits), samples=4,
                           replicates=20_000, seed=31)
    assert est.shape == (20_000, 3)
    assert_unbiased(est, enumerated_grad(problem, logits))


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_unbiased_on_a_non_separable_integrand(name, scheme):
    estimator = estimators.configure(ESTIMATORS[name], sampling=scheme)
    for k, logits in enumerate(LOGIT_SETS[:2]):
        est = family_estimates(estimator, interacting, Bernoulli(), BernoulliParams(logits), samples=4,
                               replicates=20_000, seed=32 + k)
        assert_unbiased(est, enumerated_grad(interacting, logits))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_measured_variance_matches_the_cell_integration(name):
    """On the non-separable integrand, where no closed form is filed: tr Cov of N pairs is Σ_j Var ĝ_j / N."""
    logits = LOGIT_SETS[0]
    exact = float(pair_variance(interacting, logits, name).sum())
    for samples in (1, 3):
        est = family_estimates(ESTIMATORS[name], interacting, Bernoulli(), BernoulliParams(logits), samples,
                               replicates=100_000, seed=40 + samples)
        assert_variance(est, enumerated_grad(interacting, logits), exact / samples)


def test_disarm_is_arm_given_the_pair():
    """Same generator state, same u: where the pair agrees in coordinate j DisARM is 0, and DisARM never
    has the larger variance (it is ARM's conditional mean given the pair)."""
    problem, params = BernoulliToy(dim=3), BernoulliParams(LOGIT_SETS[0])
    u = np.random.default_rng(5).random((1000, 3))  # what disarm draws from the same state
    p = 1.0 / (1.0 + np.exp(-params.logits))
    agree = (u < p) == (1.0 - u < p)
    g = disarm(problem, problem.family, params, np.random.default_rng(5), 1000)
    assert np.all(g[agree] == 0.0) and np.any(g[~agree] != 0.0)
    for f in (interacting, problem):
        for logits in LOGIT_SETS:
            assert np.all(pair_variance(f, logits, "disarm") <= pair_variance(f, logits, "arm") + 1e-15)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_antithetic_rows_repeat_the_pair(name):
    """Under sampling=antithetic the rows u and 1 − u are the same pair, b and b̃ exchanged: the same estimate."""
    problem = BernoulliToy(dim=3)
    est = ESTIMATORS[name](problem, problem.family, BernoulliParams(LOGIT_SETS[0]), np.random.default_rng(6), (50, 4),
                           sampling=sampling.antithetic)
    np.testing.assert_allclose(est[:, :2], est[:, 2:], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_shapes_and_configuration(name):
    estimator = ESTIMATORS[name]
    problem = BernoulliToy(dim=3)
    params = BernoulliParams(LOGIT_SETS[0])
    assert estimator(problem, problem.family, params, np.random.default_rng(0), 7).shape == (7, 3)
    assert estimator(problem, problem.family, params, np.random.default_rng(0), (5, 2)).shape == (5, 2, 3)
    assert estimators.describe(estimator) == estimators.spec(name)
    assert estimators.describe(functools.partial(estimator, sampling=sampling.qmc)) == estimators.spec(
        name, sampling="qmc")
    assert not estimators.biased(estimator)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_where_they_apply(name):
    estimator = ESTIMATORS[name]
    for scheme in ("independent", "antithetic", "qmc"):
        estimators.check(estimator, Bernoulli(), scheme)
    with pytest.raises(estimators.Inapplicable, match="bernoulli family only") as err:
        estimators.check(estimator, Gaussian())
    assert f"estimator={name}" in str(err.value)
    # They have no score-function terms for a baseline to act on.
    for baseline in (baselines.leave_one_out(), baselines.optimal(), baselines.moving_average()):
        with pytest.raises(estimators.Inapplicable, match="score function only"):
            estimators.check(baseline.wrap(estimator), Bernoulli())


def test_runs_share_base_noise():
    """Both estimators draw u first, from the family's noise: the same generator state gives the same pairs."""
    problem, params = BernoulliToy(dim=3), BernoulliParams(LOGIT_SETS[0])
    a = arm(problem, problem.family, params, np.random.default_rng(9), 200)
    u = np.random.default_rng(9).random((200, 3))
    p = 1.0 / (1.0 + np.exp(-params.logits))
    b, bt = (u < p).astype(float), (1.0 - u < p).astype(float)
    np.testing.assert_allclose(a, (problem(bt) - problem(b))[:, None] * (u - 0.5), rtol=1e-12, atol=1e-15)
