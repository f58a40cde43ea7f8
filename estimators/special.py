r"""The implicit reparameterization gradient of Gamma variates, and ∂P/∂a of the incomplete gamma function.

A standard Gamma(a, 1) variate is x = P⁻¹(a, u), u ~ U(0, 1), with P(a, x) = γ(a, x)/Γ(a) the
regularised lower incomplete gamma function and Q = 1 − P. Holding u fixed (Figurnov et al., 2018),

.. math::  \frac{dx}{da} = -\frac{\partial P(a, x)/\partial a}{p(x; a)}
           = \frac{\partial Q(a, x)/\partial a}{p(x; a)},
           \qquad p(x; a) = \frac{x^{a-1} e^{-x}}{\Gamma(a)}.

A Gamma(a, rate β) variate is x/β, and Beta and Dirichlet variates are ratios of Gammas, so this
one function serves all of them. ∂P/∂a and p under- and overflow in the tails long before their
ratio does, so each of the three branches below divides analytically first and never forms them
apart. dx/da > 0 everywhere (Gamma(a, 1) grows stochastically with a).

* **Series**, for x ≤ a + max(√a, 1) outside the uniform region. P = x^a e^{−x}/Γ(a + 1) · S with
  S = Σ_{n≥0} c_n, c_n = x^n/((a + 1)⋯(a + n)), so P/p = x S/a and

  .. math::  \frac{dx}{da} = -\frac{x}{a}\Big[S\,(\log x - \psi(a + 1)) + \partial_a S\Big],
             \qquad \partial_a c_n = -c_n \sum_{k=1}^{n} \frac{1}{a + k}.

  Below x ≈ a + ½ (where log x = ψ(a + 1)) both terms of the bracket are negative; above it they
  cancel in part, by at most a factor 6 at the branch's edge, which costs under three bits where the
  series is still cheaper than the continued fraction (8 array operations a term against 22).
* **Continued fraction**, for larger x. Q = x^a e^{−x}/Γ(a) · C with Legendre's continued fraction
  C = 1/(b_0 + a_1/(b_1 + a_2/(b_2 + ⋯))), b_i = x + 2i + 1 − a, a_i = −i(i − a) (Numerical
  Recipes' ``gcf``), evaluated by the modified Lentz method, C = D_0 Π_{i≥1} D_i E_i with
  D_i = 1/(b_i + a_i D_{i−1}), E_i = b_i + a_i/E_{i−1}. Forward mode runs on these ratios:
  u_i = ∂ log D_i/∂a and v_i = ∂ log E_i/∂a follow recurrences of their own (∂b_i = −1, ∂a_i = i),
  and ∂ log C/∂a = Σ (u_i + v_i). Differentiating the numerator and denominator recurrences instead
  (Cephes' ``igamc``, as Eigen does) cancels in ∂p_k − C ∂q_k, an error that grows with the number
  of terms (10⁻¹³ to 10⁻¹² near x = 1). Q/p = x C, so

  .. math::  \frac{dx}{da} = x\,C\Big[\log x - \psi(a) + \frac{\partial \log C}{\partial a}\Big],

  with C, ∂C/∂a > 0 (C = ∫₀^∞ (1 + s/x)^{a−1} e^{−s} ds/x) and log x > ψ(a): nothing cancels.
* **Uniform asymptotic expansion**, for a ≥ 10 and |η| ≤ 1 (x ∈ [0.30a, 2.36a]), where the series
  and the continued fraction both need O(√a) terms. Temme's expansion (Temme 1979; DLMF 8.12),
  with λ = x/a, μ = λ − 1, η = sign(μ)·√(2(μ − log(1 + μ))):

  .. math::  Q(a, x) = \tfrac12 \operatorname{erfc}\big(\eta\sqrt{a/2}\big)
             + \frac{e^{-a\eta^2/2}}{\sqrt{2\pi a}} \sum_{k\ge0} C_k(\eta)\, a^{-k},
             \qquad C_k(\eta) = \sum_n d_{k,n}\,\eta^n.

  At fixed x, ∂η/∂a = −r/a with r = μ/η (→ 1 at η = 0), and
  p = e^{−aη²/2}/(√(2πa) λ Γ*(a)) with Γ*(a) = Γ(a)/(√(2π/a) a^a e^{−a}), so the derivative of the
  erfc term and the Gaussian factor divide out exactly:

  .. math::  \frac{dx}{da} = \lambda\,\Gamma^*(a)\Big[r - \frac{\eta}{2}
             + \Big(\log\lambda - \frac{1}{2a}\Big)\Sigma - \frac{r\,\Sigma' + T}{a}\Big],

  Σ = Σ_k C_k(η) a^{−k}, Σ' = Σ_k C_k′(η) a^{−k}, T = Σ_k k C_k(η) a^{−k}. The d_{k,n} are exact
  rationals (DLMF 8.12.12–13): d_{0,0} = −1/3, d_{0,n} = (n + 2) α_{n+2} with μ = Σ_n α_n η^n, whose
  recurrence (n + 1) α_n = α_{n−1} − Σ_{i=2}^{n−1} (n + 1 − i) α_i α_{n+1−i} follows from
  μ dμ/dη = η(1 + μ), and d_{k,n} = (−1)^k g_k d_{0,n} + (n + 2) d_{k−1,n+2} with g_k the Stirling
  coefficients of Γ*(a) ~ Σ_k g_k a^{−k} (DLMF 5.11.3). They are computed once in rational arithmetic
  and rounded; of the 20 × 34 kept, each call uses the fewest k and n whose left-out terms bound
  below 10⁻¹⁷ for its smallest a and largest |η|. Every u ∈ [10⁻³⁰⁰, 1) lands in this region once
  a ≳ 1500, so the cost does not grow with a.

:func:`gammainc_da` returns ∂P/∂a = −(dx/da)·p from the same brackets, times the prefactor
x^a e^{−x}/Γ(a) taken in log space; for a ≥ 10 as a(log(1 + μ) − μ) + ½ log(a/2π) − log Γ*(a),
which keeps its relative accuracy where a log x and x are large and nearly cancel.

Accuracy, against mpmath at 40 digits for a ∈ [10⁻³, 10⁵] and x at quantiles u ∈ [10⁻¹⁰, 1 − 10⁻¹⁰]
wherever x is a normal float: relative error below 5·10⁻¹⁵ for dx/da in every branch, and below
3·10⁻¹⁴ for ∂P/∂a, whose prefactor carries the rounding of an exponent of up to about 700
(tests/estimators/test_special.py). Where x is subnormal, x itself holds fewer digits.

References: M. Figurnov, S. Mohamed, A. Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018;
R. J. Moore, "Algorithm AS 187: Derivatives of the incomplete gamma integral", Appl. Statist. 31(3),
330–335, 1982 (the series and the continued fraction, differentiated in a); N. M. Temme, "The
asymptotic expansion of the incomplete gamma functions", SIAM J. Math. Anal. 10(4), 1979, and
DLMF §5.11, §8.12; W. H. Press et al., "Numerical Recipes", 3rd ed., §5.2 (modified Lentz) and §6.2;
S. L. Moshier, Cephes ``igam``/``igamc``, differentiated in forward mode in Eigen's
``igamma_der_a`` and ``gamma_sample_der_alpha`` (TensorFlow's ``random_gamma_grad``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
from scipy.special import digamma, gammaln

__all__ = ["gamma_sample_grad", "gammainc_da"]

_EPS = np.finfo(np.float64).eps
_TEMME_MIN_A = 10.0
_TEMME_MAX_ETA = 1.0
_TEMME_K, _TEMME_N = 20, 34  # enough for a ≥ 10 with |η| ≤ 1 (module docstring)
_MAX_TERMS = 1000  # far above what either branch needs in its region (≈ 100 at worst, a → 0, x ≈ 1)
_HUGE_X = 1e290  # beyond, x C = 1 to rounding and the Lentz ratios would leave the normal range
_CHUNK = 8192  # elements per pass: the working arrays stay in cache


def gamma_sample_grad(a, x) -> np.ndarray:
    r"""dx/da = −(∂P(a, x)/∂a)/p(x; a) for x = P⁻¹(a, u) ~ Gamma(a, 1) at fixed u, broadcasting a and x.

    0 at x = 0 (its limit), inf at x = inf, NaN where a ≤ 0, a = inf, x < 0 or either is NaN.
    """
    return _evaluate(a, x, density=False)


def gammainc_da(a, x) -> np.ndarray:
    r"""∂P(a, x)/∂a of the regularised lower incomplete gamma function, broadcasting a and x.

    0 at x = 0 and x = inf, NaN where a ≤ 0, a = inf, x < 0 or either is NaN.
    """
    return _evaluate(a, x, density=True)


def _evaluate(a, x, density: bool) -> np.ndarray:
    a, x = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(x, dtype=np.float64))
    shape = a.shape
    a, x = a.ravel(), x.ravel()
    out = np.full(a.shape, np.nan)
    with np.errstate(all="ignore"):
        valid = (a > 0.0) & (a < np.inf) & (x >= 0.0)  # false for NaN
        out[valid & (x == 0.0)] = 0.0
        out[valid & (x == np.inf)] = 0.0 if density else np.inf
        (regular,) = np.nonzero(valid & (x > 0.0) & (x < np.inf))
        for start in range(0, regular.size, _CHUNK):
            i = regular[start:start + _CHUNK]
            out[i] = _regular(a[i], x[i], density)
    return out.reshape(shape)[()]


def _regular(a: np.ndarray, x: np.ndarray, density: bool) -> np.ndarray:
    """dx/da (∂P/∂a with ``density``) for 0 < a < inf, 0 < x < inf, 1-D: each branch on its region."""
    out = np.empty(a.shape)
    rest = np.ones(a.shape, dtype=bool)
    (large,) = np.nonzero(a >= _TEMME_MIN_A)
    if large.size:
        al, xl = a[large], x[large]
        mu = (xl - al) / al
        lm = _log1pmx(mu)  # −η²/2
        near = lm >= -0.5 * _TEMME_MAX_ETA**2
        if near.any():
            out[large[near]] = _temme(al[near], xl[near], mu[near], lm[near], density)
            rest[large[near]] = False
    series = rest & (x <= a + np.maximum(np.sqrt(a), 1.0))
    fraction = rest & ~series
    if series.any():
        out[series] = _series(a[series], x[series], density)
    if fraction.any():
        out[fraction] = _fraction(a[fraction], x[fraction], density)
    return out


def _series(a: np.ndarray, x: np.ndarray, density: bool) -> np.ndarray:
    s, ds = _series_sum(a, x)
    bracket = s * (np.log(x) - digamma(a + 1.0)) + ds
    if density:
        return bracket * np.exp(_log_prefactor(a, x)) / a  # ∂P/∂a = bracket · x^a e^{−x}/Γ(a + 1)
    return -(x / a) * bracket


def _fraction(a: np.ndarray, x: np.ndarray, density: bool) -> np.ndarray:
    c, dlog_c = np.empty(a.shape), np.empty(a.shape)
    huge = x > _HUGE_X
    c[huge], dlog_c[huge] = 1.0 / x[huge], 0.0  # C = (1 + O(a/x))/x, ∂ log C/∂a = O(1/x)
    if not huge.all():
        c[~huge], dlog_c[~huge] = _fraction_sum(a[~huge], x[~huge])
    bracket = c * (np.log(x) - digamma(a) + dlog_c)  # C·(log x − ψ(a)) + ∂C/∂a
    if density:
        return -bracket * np.exp(_log_prefactor(a, x))  # ∂P/∂a = −∂Q/∂a = −bracket · x^a e^{−x}/Γ(a)
    return x * bracket


def _temme(a: np.ndarray, x: np.ndarray, mu: np.ndarray, lm: np.ndarray, density: bool) -> np.ndarray:
    inv_a = 1.0 / a
    eta = np.copysign(np.sqrt(-2.0 * lm), mu)
    r = np.ones(a.shape)
    nonzero = eta != 0.0
    r[nonzero] = mu[nonzero] / eta[nonzero]
    s, sp, t = np.empty(a.shape), np.empty(a.shape), np.empty(a.shape)
    # The bulk (|η| ≤ 1/4) needs about half the powers of η that the tails do.
    bulk = np.abs(eta) <= 0.25
    for part in (bulk, ~bulk):
        if part.any():
            s[part], sp[part], t[part] = _temme_sums(inv_a[part], eta[part])
    bracket = r - 0.5 * eta + (np.log1p(mu) - 0.5 * inv_a) * s - (r * sp + t) * inv_a
    if density:
        return -np.exp(a * lm) / np.sqrt(2.0 * np.pi * a) * bracket
    return (x * inv_a) * np.exp(_log_gamma_star(a)) * bracket


def _temme_sums(inv_a: np.ndarray, eta: np.ndarray):
    """Σ = Σ_k C_k(η) a^{−k}, Σ' = Σ_k C_k′(η) a^{−k} and T = Σ_k k C_k(η) a^{−k}."""
    d, dd = _temme_coefficients()
    big_k, big_n = _temme_terms(1.0 / inv_a.max(), np.abs(eta).max())
    powers = np.empty((big_n, eta.size))
    powers[0] = 1.0
    for n in range(1, big_n):
        np.multiply(powers[n - 1], eta, out=powers[n])
    # einsum, not a matmul: threaded BLAS on these thin products runs several times slower (thread
    # hand-off on every call), and single-threaded it is no faster.
    c = np.einsum("kn,nm->km", d[:big_k, :big_n], powers)
    dc = np.einsum("kn,nm->km", dd[:big_k, :big_n - 1], powers[:-1])
    # Horner in 1/a; T = (1/a)·dΣ/d(1/a) comes along.
    s, sp, t = c[-1].copy(), dc[-1].copy(), np.zeros(eta.shape)
    for k in range(big_k - 2, -1, -1):
        t *= inv_a
        t += s
        s *= inv_a
        s += c[k]
        sp *= inv_a
        sp += dc[k]
    t *= inv_a
    return s, sp, t


def _series_sum(a: np.ndarray, x: np.ndarray, check_every: int = 4):
    """S = Σ_n c_n and ∂S/∂a, c_n = x^n/((a + 1)⋯(a + n)), each element until its terms fall below ε."""
    s_out, ds_out = np.empty(a.shape), np.empty(a.shape)
    idx = np.arange(a.size)
    r, c, dc, s, ds = a.copy(), np.ones(a.shape), np.zeros(a.shape), np.ones(a.shape), np.zeros(a.shape)
    t, tmp = np.empty(a.shape), np.empty(a.shape)
    for _ in range(0, _MAX_TERMS, check_every):
        for _ in range(check_every):
            r += 1.0
            np.divide(x, r, out=t)
            np.divide(c, r, out=tmp)
            dc -= tmp  # ∂c_n = (∂c_{n−1} − c_{n−1}/(a + n))·x/(a + n)
            dc *= t
            c *= t
            s += c
            ds += dc
        # ∂c_n, ∂S ≤ 0, and |∂c_n| ≤ ε|∂S| gives c_n ≤ εS too (|∂S| ≤ S·Σ_{k≤n} 1/(a + k)).
        done = dc >= _EPS * ds
        if _worth_compacting(done):
            s_out[idx[done]], ds_out[idx[done]] = s[done], ds[done]
            keep = ~done
            idx = idx[keep]
            if not idx.size:
                return s_out, ds_out
            x, r, c, dc, s, ds = (v[keep] for v in (x, r, c, dc, s, ds))
            t, tmp = np.empty(x.shape), np.empty(x.shape)
    s_out[idx], ds_out[idx] = s, ds
    return s_out, ds_out


def _fraction_sum(a: np.ndarray, x: np.ndarray, check_every: int = 4):
    """C and ∂ log C/∂a, Q = x^a e^{−x}/Γ(a)·C, by modified Lentz with its forward-mode derivative."""
    c_out, dlog_out = np.empty(a.shape), np.empty(a.shape)
    idx = np.arange(a.size)
    # i = 0 and 1 (E_0 = ∞): D_0 = 1/b_0, u_0 = 1/b_0, E_1 = b_1, v_1 = −1/b_1.
    b = x + 1.0 - a
    d = 1.0 / b
    e = b + 2.0
    an = a - 1.0
    d1 = 1.0 / (e + an * d)
    u = d1 * (1.0 - d * (1.0 + an * d))
    v = -1.0 / e
    dlog = d + u + v
    c = d * (d1 * e)  # D_1 E_1 ≈ 1, while D_0 D_1 underflows for x ≳ 1e154
    b, d = e.copy(), d1
    ratio, tmp = np.empty(a.shape), np.empty(a.shape)
    i = 1
    for _ in range(0, _MAX_TERMS, check_every):
        for _ in range(check_every):
            i += 1
            np.subtract(a, i, out=an)
            an *= i  # a_i = −i(i − a)
            b += 2.0
            np.multiply(an, d, out=tmp)
            tmp += b  # 1/D_i
            np.multiply(an, u, out=u)
            u += i
            u *= d
            np.subtract(1.0, u, out=u)
            np.divide(1.0, tmp, out=d)
            u *= d  # u_i = D_i (1 − D_{i−1}(i + a_i u_{i−1}))
            np.multiply(an, v, out=v)
            np.subtract(i, v, out=v)
            v /= e
            v -= 1.0
            np.divide(an, e, out=e)
            e += b  # E_i
            v /= e  # v_i = ((i − a_i v_{i−1})/E_{i−1} − 1)/E_i
            np.multiply(d, e, out=ratio)
            c *= ratio
            dlog += u
            dlog += v
        done = (np.abs(ratio - 1.0) <= _EPS) & (np.abs(u + v) <= _EPS * np.abs(dlog))
        if _worth_compacting(done):
            c_out[idx[done]], dlog_out[idx[done]] = c[done], dlog[done]
            keep = ~done
            idx = idx[keep]
            if not idx.size:
                return c_out, dlog_out
            a, b, d, e, u, v, c, dlog = (w[keep] for w in (a, b, d, e, u, v, c, dlog))
            an, ratio, tmp = np.empty(a.shape), np.empty(a.shape), np.empty(a.shape)
    c_out[idx], dlog_out[idx] = c, dlog
    return c_out, dlog_out


def _worth_compacting(done: np.ndarray) -> bool:
    """Drop converged elements once they are an eighth of those left: dropping costs a copy of every
    state array, and further terms leave a converged element unchanged."""
    return np.count_nonzero(done) * 8 >= done.size


def _log1pmx(m: np.ndarray) -> np.ndarray:
    """log(1 + m) − m, to full relative accuracy near m = 0."""
    out = np.log1p(m) - m
    small = np.abs(m) < 0.25
    if small.any():
        # With t = m/(2 + m): log(1 + m) = 2 artanh t and 2t − m = −mt, so
        # log(1 + m) − m = −mt + 2t³ Σ_j t^{2j}/(2j + 3); |t| < 1/7, 11 terms.
        ms = m[small]
        t = ms / (2.0 + ms)
        t2 = t * t
        poly = np.full(ms.shape, 1.0 / 23.0)
        for j in range(9, -1, -1):
            poly *= t2
            poly += 1.0 / (2 * j + 3)
        out[small] = 2.0 * t * t2 * poly - ms * t
    return out


# B_{2j}/(2j(2j − 1)), j = 1…8: log Γ*(a) = Σ_j b_j a^{1−2j}, to 3e−17 at a = 10.
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400)


def _log_gamma_star(a: np.ndarray) -> np.ndarray:
    """log Γ*(a) = log Γ(a) − (a − ½) log a + a − ½ log 2π, for a ≥ 10."""
    z = 1.0 / a
    z2 = z * z
    acc = np.full(a.shape, _STIRLING[-1])
    for b in _STIRLING[-2::-1]:
        acc *= z2
        acc += b
    return acc * z


def _log_prefactor(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log(x^a e^{−x}/Γ(a))."""
    out = a * np.log(x) - x - gammaln(a)
    large = a >= _TEMME_MIN_A
    if large.any():
        al, xl = a[large], x[large]
        out[large] = al * _log1pmx((xl - al) / al) + 0.5 * np.log(al / (2.0 * np.pi)) - _log_gamma_star(al)
    return out


@functools.cache
def _temme_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """d_{k,n} (k < K, n < N) of C_k(η) = Σ_n d_{k,n} η^n, and (n + 1) d_{k,n+1} of C_k′, from exact rationals."""
    big_k, big_n = _TEMME_K, _TEMME_N
    m = big_n + 2 * big_k + 1
    alpha = [Fraction(0), Fraction(1)] + [Fraction(0)] * (m - 1)  # μ = Σ α_n η^n
    for n in range(2, m + 1):
        alpha[n] = (alpha[n - 1] - sum((n + 1 - i) * alpha[i] * alpha[n + 1 - i] for i in range(2, n))) / (n + 1)
    bernoulli = [Fraction(1)]
    for n in range(1, big_k + 2):
        bernoulli.append(-sum(math.comb(n + 1, j) * bernoulli[j] for j in range(n)) / (n + 1))
    log_coef = [Fraction(0)] * (big_k + 1)  # log Γ*(a) = Σ_j log_coef[j] a^{−j}
    for j in range(1, big_k + 1, 2):
        log_coef[j] = bernoulli[j + 1] / (j * (j + 1))
    g = [Fraction(1)] + [Fraction(0)] * big_k  # Γ*(a) = Σ_k g_k a^{−k}, the exponential of that series
    for k in range(1, big_k + 1):
        g[k] = sum(j * log_coef[j] * g[k - j] for j in range(1, k + 1)) / k
    d0 = [Fraction(-1, 3)] + [(n + 2) * alpha[n + 2] for n in range(1, m - 1)]
    rows = [d0]
    for k in range(1, big_k):
        prev = rows[-1]
        rows.append([(-1) ** k * g[k] * d0[n] + (n + 2) * prev[n + 2] for n in range(len(prev) - 2)])
    d = np.array([[float(v) for v in row[:big_n]] for row in rows])
    return d, d[:, 1:] * np.arange(1, big_n)


def _temme_terms(a_min: float, eta_max: float, tol: float = 1e-17) -> tuple[int, int]:
    """The fewest k and n for a ≥ ``a_min``, |η| ≤ ``eta_max``: the left-out terms of Σ, Σ' and T
    together bound below ``tol`` (the bracket is of order 1)."""
    d, _ = _temme_coefficients()
    k = np.arange(_TEMME_K)[:, None]
    n = np.arange(_TEMME_N)[None, :]
    bound = np.abs(d) * (1.0 + k + n) * eta_max ** np.maximum(n - 1, 0) * a_min ** -k.astype(float)
    tail_k = np.cumsum(bound.sum(axis=1)[::-1])[::-1]
    tail_n = np.cumsum(bound.sum(axis=0)[::-1])[::-1]
    big_k = next((i for i in range(1, _TEMME_K) if tail_k[i] < tol / 2), _TEMME_K)
    big_n = next((i for i in range(2, _TEMME_N) if tail_n[i] < tol / 2), _TEMME_N)
    return big_k, big_n
