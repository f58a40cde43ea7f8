"""Sampling schemes: exact N(0, I) rows, the structure of a set, and what each scheme buys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import sampling
from tests.estimators.checks import Z

SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 8), (2, 5)])
def test_shape_and_finite(scheme, shape):
    x = scheme(np.random.default_rng(0), shape, 3)
    assert x.shape == (*shape, 3) and np.all(np.isfinite(x))


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_every_row_is_standard_normal(scheme, n):
    """Moments of each row position across independent sets: mean 0, variance 1, E x⁴ = 3, P(x < 1) = Φ(1)."""
    x = scheme(np.random.default_rng(1), (40_000, n), 2)
    for stat, truth in [(x, 0.0), (x**2, 1.0), (x**4, 3.0), ((x < 1.0).astype(float), 0.8413447460685429)]:
        se = stat.std(axis=0, ddof=1) / math.sqrt(len(stat))
        np.testing.assert_array_less(np.abs(stat.mean(axis=0) - truth), Z * se)


def test_independent_draws_as_the_plain_generator_does():
    a = sampling.independent(np.random.default_rng(3), (4, 5), 2)
    np.testing.assert_array_equal(a, np.random.default_rng(3).standard_normal((20, 2)).reshape(4, 5, 2))


def test_antithetic_pairs_within_a_set_and_odd_sets_end_with_an_independent_row():
    x = sampling.antithetic(np.random.default_rng(0), (3, 6), 2)
    np.testing.assert_array_equal(x[:, 3:], -x[:, :3])
    odd = sampling.antithetic(np.random.default_rng(0), (5,), 2)
    np.testing.assert_array_equal(odd[2:4], -odd[:2])
    one = sampling.antithetic(np.random.default_rng(9), (1,), 2)
    np.testing.assert_array_equal(one, sampling.independent(np.random.default_rng(9), (1,), 2))


def test_qmc_sets_are_stratified_and_independent():
    """A scrambled Sobol set of 2^m points has one point in each of the 2^m equal intervals per coordinate."""
    from scipy.special import ndtr

    u = ndtr(sampling.qmc(np.random.default_rng(0), (50, 16), 3))
    cells = np.sort(np.floor(u * 16).astype(int), axis=1)
    np.testing.assert_array_equal(cells, np.broadcast_to(np.arange(16)[None, :, None], cells.shape))
    assert not np.allclose(u[0], u[1])  # sets are scrambled independently


def _mean_variance(scheme, f, n, sets=4000, seed=5):
    y = f(scheme(np.random.default_rng(seed), (sets, n), 2)).mean(axis=1)
    return y.mean(), y.var(ddof=1), y.std(ddof=1) / math.sqrt(sets)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
def test_set_means_are_unbiased(scheme):
    """E[exp(x₁/2) cos x₂] = e^{1/8}·e^{−1/2}."""
    mean, _, se = _mean_variance(scheme, lambda e: np.exp(0.5 * e[..., 0]) * np.cos(e[..., 1]), 8)
    assert abs(mean - math.exp(0.125 - 0.5)) < Z * se


def test_what_the_schemes_buy_on_smooth_integrands():
    """Antithetic removes an odd integrand's variance entirely; QMC cuts a smooth one's by far more than 4×."""
    odd = lambda e: e[..., 0] + e[..., 1] ** 3  # noqa: E731
    assert _mean_variance(sampling.antithetic, odd, 8)[1] == pytest.approx(0.0, abs=1e-20)
    smooth = lambda e: np.exp(0.5 * e[..., 0]) * np.cos(e[..., 1])  # noqa: E731
    plain, rqmc = _mean_variance(sampling.independent, smooth, 64)[1], _mean_variance(sampling.qmc, smooth, 64)[1]
    # The F-ratio of two 4,000-set variance estimates is within ±15% with overwhelming probability.
    assert rqmc < plain / 4
