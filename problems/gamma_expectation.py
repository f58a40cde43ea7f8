r"""Test functions under a Gamma distribution: E_{z ~ Gamma(α, β)}[f(z)], coordinate-wise in d.

f(z) = Σ_j h(z_j) under independent z_j ~ Gamma(α_j, β_j) (shape α, rate β, family
:class:`estimators.Gamma`, both blocks learned), with h one of

* ``power``: h = z^k,        E h = M_k = Γ(α + k)/(Γ(α)β^k)          (finite iff α + k > 0);
* ``log``:   h = log z,      E h = ψ(α) − log β                       (k unused);
* ``exp``:   h = e^{−kz},    E h = T_k = (β/(β + k))^α               (finite iff β + k > 0).

Gradients, per coordinate: power ∂_α = M_k(ψ(α + k) − ψ(α)), ∂_β = −kM_k/β; log ∂_α = ψ'(α),
∂_β = −1/β; exp ∂_α = T_k log(β/(β + k)), ∂_β = T_k αk/(β(β + k)). L has no minimiser at a
finite θ: it falls without bound (log, as β → ∞) or towards an infimum as α or β runs off
(power, exp; both constant for k = 0), so the problem declares no optimum.

Exact variances (``exact_variance``: tr Cov of the N-sample estimate per block, independent
sampling, N divides), with x = βz ~ Gamma(α, 1):

* Score function, ĝ_j = f(z)s_j, s_α = log x − ψ(α), s_β = α/β − z. With A = Σ_{i≠j} h(z_i),
  independent of z_j, E[ĝ_j²] = E[h_j²s_j²] + 2E[h_j s_j²]E[A] + E[A²]E[s_j²], and each
  E[h^m s²] is a closed form, by tilting:
  power: z^p·Gamma(α, β) = M_p·Gamma(α + p, β), where log x has mean ψ(α + p) and variance
  ψ'(α + p), and z mean (α + p)/β and variance (α + p)/β²; so E[z^p s_α²] = M_p(ψ'(α + p) +
  (ψ(α + p) − ψ(α))²), E[z^p s_β²] = M_p((α + p) + p²)/β² (p = k, 2k).
  exp: e^{−pz}·Gamma(α, β) = T_p·Gamma(α, β + p): E[e^{−pz} s_α²] = T_p(ψ'(α) + log²(β/(β + p))),
  E[e^{−pz} s_β²] = T_p(α/(β + p)² + (α/β − α/(β + p))²) (p = k, 2k).
  log: h = D + c with D = s_α = log x − ψ(α), c = ψ(α) − log β, and the cumulants of log x,
  κ_n = ψ^{(n−1)}(α): E[hD²] = κ₃ + cκ₂, E[h²D²] = κ₄ + 3κ₂² + 2cκ₃ + c²κ₂; and with
  (α − x)² = α² − 2αx + x² tilted term by term, E[h^m s_β²] = (α²e_m(α) − 2α²e_m(α + 1) +
  α(α + 1)e_m(α + 2))/β², e_1(a) = ψ(a) − log β, e_2(a) = ψ'(a) + e_1(a)².
  Var ĝ_j = E[ĝ_j²] − (∂_j L)².
* Pathwise, ĝ_αj = h'(z_j)·∂z_j/∂α_j, ĝ_βj = −h'(z_j)z_j/β_j: only coordinate j enters (f is
  separable). Rate block in closed form: power Var = k²Var(z^k)/β²; log h'(z)z = 1, so ĝ_β is
  the constant −1/β: variance 0; exp E[ĝ_β²] = k²T_{2k}α(α + 1)/(β²(β + 2k)²).
  Concentration block: with λ = ∂ log x/∂α (:func:`estimators.families.log_gamma_sample_grad`),
  ĝ_α = h'(z)z·λ, and tilting again turns E[ĝ_α²] into a constant times E[λ(α, X)²] for X ~
  Gamma(γ, ρ): power γ = α + 2k, ρ = 1; log γ = α, ρ = 1; exp γ = α + 2, ρ = 1 + 2k/β. That
  one-dimensional expectation is computed by Gauss–Legendre panels in log X
  (:func:`log_gamma_rule`), where the weight is smooth and λ grows only like |log X|.

Where the second moment is infinite the variance is ``inf``, for every block: power with
α_i + 2k ≤ 0 in some coordinate i (for the score function through E[A²] as well), exp with
β_i + 2k ≤ 0. Where θ is no distribution (α or β not > 0) it is unknown ({}).

References: Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018
(the pathwise gradient of the Gamma); Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient
Estimation in Machine Learning", JMLR 21(132), 2020 (such test functions, section 3).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaincinv, gammainccinv, gammaln, polygamma, roots_legendre

from estimators import Gamma, GammaParams, spec
from estimators.families import log_gamma_sample_grad
from problems.base import require, require_finite, require_int

# The values `problem.f` may take.
FUNCTIONS = ("power", "log", "exp")


@functools.cache
def legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    x, w = roots_legendre(n)
    return 0.5 * (x + 1.0), 0.5 * w


def panels(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n Gauss–Legendre nodes on each [edges[..., i], edges[..., i + 1]]: nodes and weights, (..., n·panels)."""
    x, w = legendre(n)
    left, width = edges[..., :-1, None], np.diff(edges, axis=-1)[..., None]
    shape = (*edges.shape[:-1], -1)
    return (left + width * x).reshape(shape), (width * w).reshape(shape)


# Tails beyond a 1e-4 quantile are covered for e^{-45} of their decay. 32 nodes per panel give
# E[t^m], m ≤ 4, to ~1e-14 relative for 0.003 ≤ γ ≤ 300 (against their closed forms, ψ^{(n)}).
_TAIL, _P, _NODES = 45.0, 1e-4, 32


def log_gamma_edges(shape) -> np.ndarray:
    r"""Panel edges (d, 6) in τ = log X, X ~ Gamma(γ, 1), γ = ``shape`` (d,).

    The density of τ, exp(γτ − e^τ)/Γ(γ), is exponential (rate γ) below the mode log γ and
    double exponential above. Edges: below the 1e−4 quantile by as much as the density needs
    to fall by e^{−45} (at its slope there, γ − e^τ); that quantile; 24 and 8 units below the
    mode, where they lie above the quantile (they resolve the onset of the factor e^{−e^τ}
    where the quantile lies far below, for small γ); the mode; the 1 − 1e−20 quantile.
    """
    a = np.atleast_1d(np.asarray(shape, dtype=np.float64))
    q = gammaincinv(a, _P)
    with np.errstate(divide="ignore"):
        # Where the quantile underflows: P(γ, x) = x^γ/Γ(γ + 1)·(1 + O(x)).
        lo = np.where(q > 1e-280, np.log(q), (math.log(_P) + gammaln(a + 1.0)) / a)
    mode = np.log(a)
    return np.stack([lo - _TAIL / (a - np.exp(lo)), lo, np.maximum(mode - 24.0, lo), np.maximum(mode - 8.0, lo),
                     mode, np.log(gammainccinv(a, 1e-20))], axis=-1)


def log_gamma_density(shape, tau: np.ndarray) -> np.ndarray:
    """The density of τ = log X, X ~ Gamma(γ, 1), at ``tau``; ``shape`` broadcasts against it."""
    return np.exp(shape * tau - np.exp(tau) - gammaln(shape))


def log_gamma_rule(shape, rate=1.0, n: int = _NODES) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes t and weights w, (d, 5n), with Σ w φ(t) ≈ E[φ(log X)] for X ~ Gamma(γ, ρ), per
    coordinate (``shape`` γ > 0 and ``rate`` ρ > 0 broadcast to (d,)), for φ growing at most
    polynomially in t: Gauss–Legendre panels (:func:`log_gamma_edges`) in t = τ − log ρ.
    """
    a = np.atleast_1d(np.asarray(shape, dtype=np.float64))
    rate = np.broadcast_to(np.asarray(rate, dtype=np.float64), a.shape)
    tau, w = panels(log_gamma_edges(a), n)
    return tau - np.log(rate)[:, None], w * log_gamma_density(a[:, None], tau)


def _lam(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """λ = ∂ log x/∂α at log x = ``t``, α = ``a`` (d, 1)."""
    with np.errstate(under="ignore"):
        x = np.exp(t)
    return log_gamma_sample_grad(np.broadcast_to(a, t.shape), x, t)


def _moment(a, b, p):
    """M_p = E z^p under Gamma(a, b): Γ(a + p)/(Γ(a)b^p), inf where a + p ≤ 0."""
    ok = a + p > 0
    return np.where(ok, np.exp(gammaln(np.where(ok, a + p, 1.0)) - gammaln(a) - p * np.log(b)), np.inf)


def _power_variance(a, b, k):
    """Var z^k = M_k²(Γ(a + 2k)Γ(a)/Γ(a + k)² − 1), without the cancellation of M_2k − M_k² (a + 2k > 0)."""
    return _moment(a, b, k) ** 2 * np.expm1(gammaln(a + 2.0 * k) + gammaln(a) - 2.0 * gammaln(a + k))


@dataclass(frozen=True)
class GammaExpectation:
    r"""f(z) = Σ_j h(z_j; k) (``f``: power z^k, log z, exp e^{−kz}) under independent
    Gamma(α_j, β_j), α₀ = ``concentration0``·1, β₀ = ``rate0``·1."""

    f: str = "power"
    k: float = 1.0
    dim: int = 1
    concentration0: float = 1.0
    rate0: float = 1.0
    family = Gamma()

    def __post_init__(self) -> None:
        require(self.f in FUNCTIONS, "f", self.f, f"one of {', '.join(FUNCTIONS)}")
        require_finite(self, "k", "concentration0", "rate0")
        require(self.concentration0 > 0, "concentration0", self.concentration0, "a finite number > 0")
        require(self.rate0 > 0, "rate0", self.rate0, "a finite number > 0")
        require_int(self, "dim", 1)
        a0, b0 = self.concentration0, self.rate0
        if self.f == "power" and a0 + self.k <= 0:
            raise ValueError(f"invalid problem.k={self.k!r} with problem.f=power: allowed: a finite number "
                             f"> -problem.concentration0 = {-a0!r} (E z^k under Gamma(α, β) is finite only while "
                             "α + k > 0)")
        if self.f == "exp" and b0 + self.k <= 0:
            raise ValueError(f"invalid problem.k={self.k!r} with problem.f=exp: allowed: a finite number "
                             f"> -problem.rate0 = {-b0!r} (E exp(−kz) under Gamma(α, β) is finite only while "
                             "β + k > 0)")

    @property
    def formula(self) -> str:
        """f per coordinate, as the report titles it (k left as a symbol: a study sweeps it)."""
        return {"power": "f(z) = z^k", "log": "f(z) = log z", "exp": "f(z) = exp(−k z)"}[self.f]

    @property
    def params0(self) -> GammaParams:
        return GammaParams(np.full(self.dim, float(self.concentration0)), np.full(self.dim, float(self.rate0)))

    @property
    def length_scale(self) -> float:
        """The unit of the divergence bound, measured from θ₀ in the first block (the
        concentration, there being no optimum): √d·(1 + α₀)."""
        return math.sqrt(self.dim) * (1.0 + self.concentration0)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self._h(z).sum(axis=-1)

    def _h(self, z):
        if self.f == "power":
            return z**self.k
        if self.f == "log":
            return np.log(z)
        return np.exp(-self.k * z)

    def grad(self, z: np.ndarray) -> np.ndarray:
        k = self.k
        if self.f == "power":
            return k * z ** (k - 1.0)
        if self.f == "log":
            return 1.0 / z
        return -k * np.exp(-k * z)

    def hessian(self, z: np.ndarray) -> np.ndarray:
        k = self.k
        if self.f == "power":
            d2 = k * (k - 1.0) * z ** (k - 2.0)
        elif self.f == "log":
            d2 = -1.0 / (z * z)
        else:
            d2 = k * k * np.exp(-k * z)
        return d2[..., None] * np.eye(self.dim)

    def _params(self, params: GammaParams) -> tuple[np.ndarray, np.ndarray] | None:
        """α, β as (d,) arrays, or None where they are no distribution."""
        a = np.broadcast_to(np.asarray(params.concentration, dtype=np.float64), (self.dim,))
        b = np.broadcast_to(np.asarray(params.rate, dtype=np.float64), (self.dim,))
        return (a, b) if np.all(a > 0) and np.all(b > 0) and np.all(np.isfinite(a) & np.isfinite(b)) else None

    def _means(self, a, b) -> np.ndarray:
        """E h per coordinate (inf where infinite)."""
        if self.f == "power":
            return _moment(a, b, self.k)
        if self.f == "log":
            return digamma(a) - np.log(b)
        b1 = b + self.k
        return np.where(b1 > 0, np.exp(a * (np.log(b) - np.log(np.where(b1 > 0, b1, 1.0)))), np.inf)

    def _grads(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """(∂L/∂α, ∂L/∂β) per coordinate (NaN where L is infinite)."""
        k, m = self.k, self._means(a, b)
        with np.errstate(invalid="ignore"):
            if self.f == "power":
                ok = a + k > 0
                da, db = m * (digamma(np.where(ok, a + k, 1.0)) - digamma(a)), -k * m / b
            elif self.f == "log":
                ok = np.ones_like(a, dtype=bool)
                da, db = polygamma(1, a), -1.0 / b
            else:
                ok = b + k > 0
                b1 = np.where(ok, b + k, 1.0)
                da, db = m * (np.log(b) - np.log(b1)), m * a * k / (b * b1)
        return np.where(ok, da, np.nan), np.where(ok, db, np.nan)

    def loss(self, params: GammaParams) -> float:
        ab = self._params(params)
        return math.nan if ab is None else float(np.sum(self._means(*ab)))

    def exact_grad(self, params: GammaParams) -> GammaParams:
        ab = self._params(params)
        if ab is None:
            nan = np.full(self.dim, np.nan)
            return GammaParams(nan, nan.copy())
        return GammaParams(*self._grads(*ab))

    def exact_variance(self, config, family, params: GammaParams, samples: int) -> dict[str, float]:
        """tr Cov of the ``samples``-sample estimate per block, for the score function and the
        pathwise estimator, independent sampling (module docstring); ``inf`` where the second
        moment is infinite; {} for any other configuration, or where θ is no distribution."""
        form = _DERIVED.get(config)
        ab = self._params(params)
        if form is None or ab is None:
            return {}
        a, b = ab
        if not self._finite_variance(a, b):
            return {"concentration": math.inf, "rate": math.inf}
        per = form(self, a, b)
        return {name: float(np.sum(per[name])) / samples for name in ("concentration", "rate")}

    def _finite_variance(self, a, b) -> bool:
        """Whether E h² is finite in every coordinate (then so are both estimators' second moments)."""
        if self.f == "power":
            return bool(np.all(a + 2.0 * self.k > 0))
        if self.f == "exp":
            return bool(np.all(b + 2.0 * self.k > 0))
        return True

    def _score_terms(self, a, b):
        """E h, Var h, and E[h^m s_α²], E[h^m s_β²] for m = 0, 1, 2, per coordinate (module docstring)."""
        k = self.k
        if self.f == "power":
            mean, var = _moment(a, b, k), _power_variance(a, b, k)
            t_a, t_b = [], []
            for m in range(3):
                p = m * k
                w, ap = _moment(a, b, p), a + p
                t_a.append(w * (polygamma(1, ap) + (digamma(ap) - digamma(a)) ** 2))
                t_b.append(w * (ap + p * p) / b**2)
        elif self.f == "log":
            k2, k3, k4 = polygamma(1, a), polygamma(2, a), polygamma(3, a)
            lb = np.log(b)
            c = digamma(a) - lb
            mean, var = c, k2
            t_a = [k2, k3 + c * k2, k4 + 3.0 * k2**2 + 2.0 * c * k3 + c * c * k2]

            def e(m, s):  # E[h^m] under Gamma(s, β)
                e1 = digamma(s) - lb
                return [np.ones_like(s), e1, polygamma(1, s) + e1**2][m]

            t_b = [(a * a * e(m, a) - 2.0 * a * a * e(m, a + 1.0) + a * (a + 1.0) * e(m, a + 2.0)) / b**2
                   for m in range(3)]
        else:
            lb = np.log(b)
            mean = np.exp(a * (lb - np.log(b + k)))
            var = mean**2 * np.expm1(a * np.log1p(k * k / (b * (b + 2.0 * k))))
            t_a, t_b = [], []
            for m in range(3):
                bp = b + m * k
                r = lb - np.log(bp)
                w = np.exp(a * r)
                t_a.append(w * (polygamma(1, a) + r * r))
                t_b.append(w * (a / bp**2 + (a / b - a / bp) ** 2))
        return mean, var, {"concentration": t_a, "rate": t_b}

    def _score_function(self, a, b) -> dict[str, np.ndarray]:
        mean, var, terms = self._score_terms(a, b)
        others = mean.sum() - mean  # E A
        rest = var.sum() - var  # Var A
        grads = dict(zip(("concentration", "rate"), self._grads(a, b)))
        out = {}
        for block, (t0, t1, t2) in terms.items():
            second = t2 + 2.0 * others * t1 + (rest + others**2) * t0
            out[block] = second - grads[block] ** 2
        return out

    def _pathwise(self, a, b) -> dict[str, np.ndarray]:
        k = self.k
        ga, gb = self._grads(a, b)
        if self.f == "power":
            rate = k * k * _power_variance(a, b, k) / b**2
        elif self.f == "log":
            rate = np.zeros_like(a)
        else:
            b2 = b + 2.0 * k
            rate = k * k * np.exp(a * (np.log(b) - np.log(b2))) * a * (a + 1.0) / (b * b2) ** 2 - gb**2
        return {"concentration": pathwise_concentration_moment(self, a, b, 2) - ga**2, "rate": rate}


def pathwise_concentration_moment(problem: GammaExpectation, a: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    r"""E[ĝ_α^m] of the pathwise estimator, per coordinate, by quadrature (m = 1, 2): ĝ_α =
    h'(z)z·λ with x = βz, so (module docstring) power: (kβ^{−k})^m·Γ(α + mk)/Γ(α)·E[λ^m] under
    Gamma(α + mk, 1); log: E[λ^m] under Gamma(α, 1); exp: (−k/β)^m·Γ(α + m)/Γ(α)·ρ^{−(α+m)}·E[λ^m]
    under Gamma(α + m, ρ), ρ = 1 + mk/β. Needs the tilted shape and rate > 0 (finite moment).
    m = 1 is ∂L/∂α, which checks the quadrature and λ against the closed form."""
    k = problem.k
    if problem.f == "power":
        shape, rate = a + m * k, 1.0
        scale = (k * b ** (-k)) ** m * np.exp(gammaln(shape) - gammaln(a))
    elif problem.f == "log":
        shape, rate, scale = a, 1.0, 1.0
    else:
        shape, rate = a + m, 1.0 + m * k / b
        scale = (-k / b) ** m * np.exp(gammaln(shape) - gammaln(a) - shape * np.log(rate))
    t, w = log_gamma_rule(shape, rate)
    return scale * np.sum(w * _lam(a[:, None], t) ** m, axis=-1)


# The configurations the closed forms and quadratures above were derived for, and no other.
_DERIVED = {
    spec("score_function"): GammaExpectation._score_function,
    spec("reparameterization"): GammaExpectation._pathwise,
}
