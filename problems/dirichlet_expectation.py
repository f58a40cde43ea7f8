r"""A cross-entropy under a Dirichlet: f(z) = −Σ_j c_j log z_j, z ~ Dirichlet(α) on the simplex.

The parameters are the concentrations α (family :class:`estimators.Dirichlet`, d ≥ 2), the
counts c ≥ 0 fixed (c_j = j by default); α_s = Σ_j α_j, C = Σ_j c_j. With X_j ~ Gamma(α_j, 1)
independent and S = Σ_j X_j, z = X/S, and z is independent of S ~ Gamma(α_s, 1). So
log X_j = log z_j + log S, and the joint cumulants of Y = log z are those of log X (independent:
κ_n(log X_i, …, log X_i) = ψ^{(n−1)}(α_i), the others 0) less those of log S:

    E Y_j = ψ(α_j) − ψ(α_s),
    κ_n(Y_{i1}, …, Y_{in}) = 1[i1 = … = in]·ψ^{(n−1)}(α_{i1}) − ψ^{(n−1)}(α_s),  n ≥ 2.

* L(α) = Σ_j c_j(ψ(α_s) − ψ(α_j)),  ∂L/∂α_j = g_j = Cψ'(α_s) − c_jψ'(α_j).
  L falls towards its infimum as α grows along c (then z concentrates at c/C, and L tends to
  C times the entropy of c/C), never attaining it: the problem has no optimum.
* Score function, one sample: ĝ_j = f·D_j, with D_j = Y_j − E Y_j the score and f = L + F,
  F = −cᵀD. Both are linear in D, so with the moments of a zero-mean vector by its cumulants
  (E[D_iD_lD_j²] = κ₄(i, l, j, j) + κ₂(i, l)κ₂(j, j) + 2κ₂(i, j)κ₂(l, j)) and Cov(F, D_j) = g_j:
      E[ĝ_j²] = L²κ₂(j, j) + 2L·E[F D_j²] + Σ_{i,l} c_i c_l κ₄(i, l, j, j) + Var F·κ₂(j, j) + 2g_j²,
  where κ₂(j, j) = ψ'(α_j) − ψ'(α_s), E[F D_j²] = −(c_jψ''(α_j) − Cψ''(α_s)),
  Σ c_i c_l κ₄(i, l, j, j) = c_j²ψ'''(α_j) − C²ψ'''(α_s), Var F = Σ_i c_i²ψ'(α_i) − C²ψ'(α_s);
  Var ĝ_j = E[ĝ_j²] − g_j².
* Pathwise, from the family's implicit gradient z_j·λ_j·(∇_j f − ∇fᵀz) with ∇f = −c/z and
  λ_j = ∂ log X_j/∂α_j (:func:`estimators.families.log_gamma_sample_grad`): ∇fᵀz = −C, so
      ĝ_j = λ_j(X_j)·(C z_j − c_j).
  It depends on X_j and z_j = X_j/(X_j + R) only, R = Σ_{i≠j} X_i ~ Gamma(α_s − α_j, 1)
  independent of X_j, so E[ĝ_j²] = E[λ_j(X_j)²·w(X_j)], w(x) = E[(Cx/(x + R) − c_j)²]: two
  one-dimensional expectations, nested, each by Gauss–Legendre panels in the logarithm (where
  the densities are smooth and λ grows only like |log X|; :func:`problems.gamma_expectation.
  log_gamma_rule`), λ evaluated at the outer nodes only. The inner panels also break where z
  crosses over from 1 to 0 (log R − log x ∈ [−24, 24]), which moves with x.
  Var ĝ_j = E[ĝ_j²] − g_j².

N independent samples divide both; other configurations have no closed form here ({}).

References: Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018
(the Dirichlet's pathwise gradient through Gammas); Mohamed, Rosca, Figurnov & Mnih, "Monte
Carlo Gradient Estimation in Machine Learning", JMLR 21(132), 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import digamma, expit, polygamma, xlogy

from estimators import Dirichlet, DirichletParams, spec
from estimators.families import log_gamma_sample_grad
from problems.base import require, require_finite, require_int
from problems.gamma_expectation import log_gamma_density, log_gamma_edges, log_gamma_rule, panels

# Gauss–Legendre nodes per panel, in log X_j (outer) and log R (inner): with them E ĝ_j matches ∂L/∂α_j
# to ~1e-9 relative or better for 0.05 ≤ α ≤ 100, and E ĝ_j² a nested adaptive quadrature to ~3e-10.
_OUTER_NODES, _INNER_NODES = 24, 16
# Breaks in log R − log x where z = x/(x + R) crosses over from 1 to 0 (beyond ±24 it is within
# e^{−24} of either): panels of 8 units where it bends, resolved at every x.
_CROSSOVER = np.array([-24.0, -8.0, 0.0, 8.0, 24.0])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DirichletExpectation:
    """f(z) = −Σ_j c_j log z_j under Dirichlet(α), α₀ = ``concentration0``·1; counts ``counts``,
    or c_j = j (j = 1 … d) by default."""

    dim: int = 3
    concentration0: float = 1.0
    counts: Any = None  # None, or ``dim`` finite numbers >= 0, not all 0 (a list from the config; kept as a tuple)
    family = Dirichlet()
    formula = "f(z) = −Σ_j c_j log z_j"  # as the report titles it

    def __post_init__(self) -> None:
        require_int(self, "dim", 2)
        require_finite(self, "concentration0")
        require(self.concentration0 > 0, "concentration0", self.concentration0, "a finite number > 0")
        if self.counts is not None:
            counts = self.counts
            require(isinstance(counts, (list, tuple)) and len(counts) == self.dim
                    and all(_finite(c) and c >= 0 for c in counts) and any(c > 0 for c in counts),
                    "counts", counts, f"null or a list of problem.dim ({self.dim}) finite numbers >= 0, not all 0")
            # A tuple: the problem stays hashable and immutable, as a frozen dataclass should be.
            object.__setattr__(self, "counts", tuple(float(c) for c in counts))

    @property
    def c(self) -> np.ndarray:
        """The counts, shape (d,)."""
        return np.array(self.counts) if self.counts is not None else np.arange(1.0, self.dim + 1.0)

    @property
    def params0(self) -> DirichletParams:
        return DirichletParams(np.full(self.dim, float(self.concentration0)))

    @property
    def length_scale(self) -> float:
        """The unit of the divergence bound, measured from α₀ (there is no optimum): √d·(1 + α₀)."""
        return math.sqrt(self.dim) * (1.0 + self.concentration0)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return -np.sum(xlogy(self.c, z), axis=-1)  # a zero count contributes 0, even where z_j = 0

    def grad(self, z: np.ndarray) -> np.ndarray:
        return -self.c / z

    def hessian(self, z: np.ndarray) -> np.ndarray:
        return (self.c / (z * z))[..., None] * np.eye(self.dim)

    def _alpha(self, params: DirichletParams) -> np.ndarray | None:
        """α as a (d,) array, or None where it is no distribution."""
        a = np.broadcast_to(np.asarray(params.concentration, dtype=np.float64), (self.dim,))
        return a if np.all(a > 0) and np.all(np.isfinite(a)) else None

    def loss(self, params: DirichletParams) -> float:
        a = self._alpha(params)
        if a is None:
            return math.nan
        c = self.c
        return float(c.sum() * digamma(a.sum()) - c @ digamma(a))

    def _grad(self, a: np.ndarray) -> np.ndarray:
        c = self.c
        return c.sum() * polygamma(1, a.sum()) - c * polygamma(1, a)

    def exact_grad(self, params: DirichletParams) -> DirichletParams:
        a = self._alpha(params)
        return DirichletParams(np.full(self.dim, np.nan) if a is None else self._grad(a))

    def exact_variance(self, config, family, params: DirichletParams, samples: int) -> dict[str, float]:
        """tr Cov of the ``samples``-sample estimate for the score function (closed form) and the
        pathwise estimator (quadrature), independent sampling (module docstring); {} for any other
        configuration, or where α is no distribution."""
        form = _DERIVED.get(config)
        a = self._alpha(params)
        if form is None or a is None:
            return {}
        return {"concentration": float(np.sum(form(self, a))) / samples}

    def _score_function(self, a: np.ndarray) -> np.ndarray:
        c, s = self.c, a.sum()
        total = c.sum()
        loss = total * digamma(s) - c @ digamma(a)
        k2 = polygamma(1, a) - polygamma(1, s)
        fd2 = -(c * polygamma(2, a) - total * polygamma(2, s))
        k4 = c * c * polygamma(3, a) - total**2 * polygamma(3, s)
        var_f = c * c @ polygamma(1, a) - total**2 * polygamma(1, s)
        g = self._grad(a)
        return loss**2 * k2 + 2.0 * loss * fd2 + k4 + var_f * k2 + g * g

    def _pathwise(self, a: np.ndarray) -> np.ndarray:
        return pathwise_moment(self, a, 2) - self._grad(a) ** 2


def pathwise_moment(problem: DirichletExpectation, a: np.ndarray, m: int) -> np.ndarray:
    r"""E[ĝ_j^m] of the pathwise estimator per coordinate, ĝ_j = λ_j(X_j)(C z_j − c_j), by quadrature
    (module docstring); m = 1 is ∂L/∂α_j, a check of the rules and λ.

    Outer: E over t = log X_j (:func:`problems.gamma_expectation.log_gamma_rule`) of λ_j^m·w(t),
    inner: w(t) = E[(C σ(t − v) − c_j)^m] over v = log R, R ~ Gamma(α_s − α_j, 1), by panels
    between the edges of R's density (:func:`problems.gamma_expectation.log_gamma_edges`) and
    the crossover of σ(t − v) about v = t, so that both are resolved for every t.
    """
    c, r = problem.c, a.sum() - a
    t, wt = log_gamma_rule(a, n=_OUTER_NODES)  # (d, n_t)
    # Only the nodes that carry weight (a panel between coinciding edges has none), flat.
    j, i = np.nonzero(wt > 0)
    t, wt = t[j, i], wt[j, i]
    with np.errstate(under="ignore"):
        x = np.exp(t)
    lam = log_gamma_sample_grad(a[j], x, t)
    edges = log_gamma_edges(r)[j]  # (n, 6)
    cross = np.clip(t[:, None] + _CROSSOVER, edges[:, :1], edges[:, -1:])
    v, wv = panels(np.sort(np.concatenate([edges, cross], axis=-1)), _INNER_NODES)  # (n, n_v)
    row, col = np.nonzero(wv > 0)
    v = v[row, col]
    terms = wv[row, col] * log_gamma_density(r[j[row]], v) * (c.sum() * expit(t[row] - v) - c[j[row]]) ** m
    inner = np.bincount(row, weights=terms, minlength=t.size)
    return np.bincount(j, weights=wt * lam**m * inner, minlength=a.size)


# The configurations the closed form and the quadrature above were derived for, and no other.
_DERIVED = {
    spec("score_function"): DirichletExpectation._score_function,
    spec("reparameterization"): DirichletExpectation._pathwise,
}
