"""The implicit reparameterization gradient of Gamma variates and ∂P/∂a (``estimators.special``): against
mpmath at 40 digits on a grid of shapes and quantiles, branch against branch where they meet, at the edges
of the domain, under broadcasting, and through E[dx/da] = 1 and E[(dx/da)/x] = ψ′(a)."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaincinv, polygamma

from estimators import special
from estimators.special import gamma_sample_grad, gammainc_da
from tests.estimators.checks import Z

SHAPES = [1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1000.0, 1e4]
QUANTILES = [1e-10, 1e-4, 0.01, 0.1, 0.5, 0.9, 0.99, 1 - 1e-4, 1 - 1e-10]
DPS = 40
# Measured on this grid: 1.5e−15 for dx/da, 1.2e−14 for ∂P/∂a; the margin is for other platforms' libm.
RTOL = 1e-12


def references(a: float, x: float) -> tuple[float, float, float]:
    """(F, ∂P/∂a, dx/da) at the float point (a, x) from mpmath alone, F = P(a, x) at or below a and
    −Q(a, x) above (the same derivatives, without P's cancellation near 1): central differences in a
    with step h = 10⁻¹⁵a, of F at fixed x and of the root y of F(a ± h, y) = F(a, x), by Newton from x
    in log y (findroot's tolerance is absolute below 1)."""
    with mp.workdps(DPS):
        a_, x_ = mp.mpf(a), mp.mpf(x)
        if x_ > a_:
            def cdf(b, y):
                return -mp.gammainc(b, y, mp.inf, regularized=True)
        else:
            def cdf(b, y):
                return mp.gammainc(b, 0, y, regularized=True)

        def density(b, y):
            return mp.exp((b - 1) * mp.log(y) - y - mp.loggamma(b))

        h = a_ * mp.mpf(10) ** -15
        u = cdf(a_, x_)
        dp = (cdf(a_ + h, x_) - cdf(a_ - h, x_)) / (2 * h)
        up, down = (mp.exp(mp.findroot(lambda t: cdf(b, mp.exp(t)) - u, mp.log(x_), solver="newton",
                                       df=lambda t: density(b, mp.exp(t)) * mp.exp(t)))
                    for b in (a_ + h, a_ - h))
        return float(u), float(dp), float((up - down) / (2 * h))


@pytest.fixture(scope="module")
def grid():
    """Columns a, nominal u, x = gammaincinv(a, u), F, ∂P/∂a, dx/da. Where the quantile underflows
    (a = 10⁻³ at u ≤ 0.1 and a = 0.01 at u ≤ 10⁻⁴, where x < 10⁻⁴⁰⁰) x = 0 and both references are 0,
    the underflowed value of gradients that small."""
    rows = []
    for a in SHAPES:
        for u in QUANTILES:
            x = float(gammaincinv(a, u))
            rows.append((a, u, x, *(references(a, x) if x > 0 else (0.0, 0.0, 0.0))))
    return np.array(rows).T


def test_scipy_quantiles_sit_at_their_probabilities(grid):
    """The samples are gammaincinv's: there P(a, x) = u (Q = 1 − u above x = a) to 10⁻¹³ relative,
    wherever x is a normal float."""
    a, u, x, f, _, _ = grid
    ok = x > 0
    target = np.where(x > a, -(1.0 - u), u)  # 1 − u is exact in floating point for u ≥ ½
    np.testing.assert_allclose(f[ok], target[ok], rtol=1e-13, atol=0)
    assert np.count_nonzero(~ok) == 6  # the underflows listed in ``grid``


def test_gamma_sample_grad_matches_mpmath(grid):
    a, _, x, _, _, dx = grid
    np.testing.assert_allclose(gamma_sample_grad(a, x), dx, rtol=RTOL, atol=0)


def test_gammainc_da_matches_mpmath(grid):
    a, _, x, _, dp, _ = grid
    np.testing.assert_allclose(gammainc_da(a, x), dp, rtol=RTOL, atol=0)


def test_the_implicit_gradient_is_minus_dp_over_the_density(grid):
    """The references themselves: dx/da = −(∂P/∂a)/p, the identity both functions rest on."""
    a, _, x, _, dp, dx = grid
    ok = (x > 0) & (x < 100)  # p in float64 without underflow
    p = np.exp((a[ok] - 1) * np.log(x[ok]) - x[ok] - np.array([math.lgamma(v) for v in a[ok]]))
    np.testing.assert_allclose(dx[ok], -dp[ok] / p, rtol=1e-11)


@pytest.mark.parametrize("a", [1e-3, 0.3, 1.0, 3.0, 9.99])
def test_series_and_continued_fraction_agree_where_they_meet(a):
    """Around x = a + max(√a, 1), where one hands over to the other, both hold full accuracy."""
    a = np.full(5, a)
    x = (a + np.maximum(np.sqrt(a), 1.0)) * np.array([0.7, 0.9, 1.0, 1.1, 1.25])
    for density in (False, True):
        np.testing.assert_allclose(special._series(a, x, density), special._fraction(a, x, density), rtol=1e-13)


@pytest.mark.parametrize("a", [10.0, 30.0, 400.0])
def test_uniform_expansion_agrees_with_series_and_continued_fraction(a):
    """Over the whole region of the expansion, |η| ≤ 1, up to its edges (μ − log(1 + μ) = ½)."""
    lo = brentq(lambda m: m - math.log1p(m) - 0.5, -0.99, -0.1)
    hi = brentq(lambda m: m - math.log1p(m) - 0.5, 0.1, 5.0)
    a = np.full(41, a)
    x = a * (1.0 + np.linspace(lo * (1 - 1e-12), hi * (1 - 1e-12), 41))
    mu = (x - a) / a
    lm = special._log1pmx(mu)
    below = x <= a + np.sqrt(a)
    for density in (False, True):
        expected = np.where(below, special._series(a, x, density), special._fraction(a, x, density))
        np.testing.assert_allclose(special._temme(a, x, mu, lm, density), expected, rtol=1e-13)


def test_temme_coefficients_against_closed_forms():
    """C₀(η) = 1/μ − 1/η and C₁(η) = 1/η³ − 1/μ³ − 1/μ² − 1/(12μ) (Temme 1979; DLMF §8.12), and
    C_k(0) = −1/3, −1/540, 25/6048, 101/155520."""
    d, dd = special._temme_coefficients()
    np.testing.assert_allclose(d[:4, 0], [-1 / 3, -1 / 540, 25 / 6048, 101 / 155520], rtol=1e-15)
    for mu in (-0.5, -0.1, 0.2, 0.9):
        with mp.workdps(30):
            m = mp.mpf(mu)
            eta = mp.sign(m) * mp.sqrt(2 * (m - mp.log1p(m)))
            c0, c1 = 1 / m - 1 / eta, 1 / eta**3 - 1 / m**3 - 1 / m**2 - 1 / (12 * m)
            dc0 = -eta * (1 + m) / m**3 + 1 / eta**2  # dμ/dη = η(1 + μ)/μ
        powers = float(eta) ** np.arange(d.shape[1])
        np.testing.assert_allclose(d[:2] @ powers, [float(c0), float(c1)], rtol=1e-13)
        np.testing.assert_allclose(dd[0] @ powers[:-1], float(dc0), rtol=1e-12)


def test_edges_of_the_domain():
    a = np.array([2.0, 1e-3, 2.0, 2.0, 0.0, -1.0, np.inf, np.nan, 2.0, 2.0])
    x = np.array([0.0, 0.0, np.inf, -1.0, 1.0, 1.0, 1.0, 1.0, np.nan, -np.inf])
    nan, inf = np.nan, np.inf
    with np.errstate(all="raise"):  # nothing leaks a floating-point warning
        grad, dp = gamma_sample_grad(a, x), gammainc_da(a, x)
    np.testing.assert_array_equal(grad, [0.0, 0.0, inf, nan, nan, nan, nan, nan, nan, nan])
    np.testing.assert_array_equal(dp, [0.0, 0.0, 0.0, nan, nan, nan, nan, nan, nan, nan])


@pytest.mark.parametrize("a", [0.5, 3.0, 40.0])
def test_far_right_tail(a):
    """dx/da = log x − ψ(a) + O(log x/x) as x → ∞, while ∂P/∂a underflows to 0."""
    x = np.array([1e40, 1e200, 1e300])
    np.testing.assert_allclose(gamma_sample_grad(a, x), np.log(x) - polygamma(0, a), rtol=1e-14)
    np.testing.assert_array_equal(gammainc_da(a, x), 0.0)


def test_tiny_x_follows_the_leading_term():
    """x → 0: P ≈ x^a/Γ(a + 1), so dx/da ≈ (x/a)(ψ(a + 1) − log x)."""
    a = np.array([1e-3, 0.5, 7.0, 200.0])
    x = np.array([1e-300, 1e-200, 1e-100, 1e-30])
    np.testing.assert_allclose(gamma_sample_grad(a, x), x / a * (polygamma(0, a + 1) - np.log(x)), rtol=1e-14)


def test_broadcasting_scalars_and_chunks():
    a = np.array([[0.3], [4.0], [60.0]])
    x = np.array([0.1, 2.0, 45.0, 90.0])
    grad = gamma_sample_grad(a, x)
    assert grad.shape == (3, 4)
    one_by_one = [[gamma_sample_grad(float(ai), float(xj)) for xj in x] for ai in a[:, 0]]
    # Equal to rounding: where the uniform expansion stops, and how many more terms an element takes
    # once it has converged, depend on the other elements of its pass.
    np.testing.assert_allclose(grad, one_by_one, rtol=4e-15)
    np.testing.assert_allclose(gammainc_da(a, x), [[gammainc_da(float(ai), float(xj)) for xj in x] for ai in a[:, 0]],
                               rtol=4e-15)
    assert np.ndim(gamma_sample_grad(2.0, 1.0)) == 0 and isinstance(gamma_sample_grad(2.0, 1.0), float)
    assert gamma_sample_grad([1.0, 2.0], 1.5).shape == (2,)
    assert gamma_sample_grad(np.ones((0, 3)), 1.0).shape == (0, 3)
    # More elements than one pass takes, mixing all three branches.
    rng = np.random.default_rng(0)
    a = rng.choice([0.2, 3.0, 25.0], size=20_000)
    x = gammaincinv(a, rng.random(a.size))
    whole = gamma_sample_grad(a, x)
    pieces = np.concatenate([gamma_sample_grad(a[i:i + 997], x[i:i + 997]) for i in range(0, a.size, 997)])
    np.testing.assert_allclose(whole, pieces, rtol=4e-15)


@pytest.mark.parametrize("a", [0.01, 0.5, 2.0, 50.0, 1000.0])
def test_mean_gradient_is_one(a):
    """d/da E[x] = d/da a = 1: the mean of dx/da at x = P⁻¹(a, u), u ~ U(0, 1), within Z standard errors."""
    u = np.random.default_rng(0).random(100_000)
    grad = gamma_sample_grad(a, gammaincinv(a, u))
    assert abs(grad.mean() - 1.0) < Z * grad.std(ddof=1) / math.sqrt(u.size)


@pytest.mark.parametrize("a", [0.1, 2.0, 50.0])
def test_mean_log_gradient_is_trigamma(a):
    """d/da E[log x] = d/da ψ(a) = ψ′(a): the mean of (dx/da)/x, which weighs the left tail, within Z
    standard errors."""
    u = np.random.default_rng(0).random(100_000)
    x = gammaincinv(a, u)
    assert np.all(x > 0)
    ratio = gamma_sample_grad(a, x) / x
    assert abs(ratio.mean() - polygamma(1, a)) < Z * ratio.std(ddof=1) / math.sqrt(u.size)
