r"""A binary problem in many dimensions: f(b) = (wᵀb − c)², b_j ~ Bernoulli(σ(φ_j)) independently.

A polynomial program over {0, 1}^d in the spirit of Liu et al. (2023, ReinMax, section on
polynomial programming), whose objective ‖b − 0.45‖_p^p/d is separable: here the coordinates
interact through a weighted sum, so the gradient of one logit depends on all
the others, while everything stays exact. Weights w_j = j/d (j = 1 … d, from 1/d to 1),
and the offset c = t·Σ_j w_j = t(d + 1)/2 puts the target at the fraction t (``target``,
default 0.45) of the total weight: at φ = 0 the mean of wᵀb is half of it.

With p_j = σ(φ_j), q_j = p_j(1 − p_j), S = wᵀb, M = E S = Σ w_j p_j, V = Var S = Σ w_j²q_j:

* L(φ) = E f = V + (M − c)²;
  ∂L/∂φ_j = g_j = w_j q_j (w_j(1 − 2p_j) + 2(M − c))   (∂M/∂φ_j = w_j q_j, ∂V/∂φ_j = w_j²q_j(1 − 2p_j)).
  L is multilinear in p, so its infimum over [0, 1]^d is at a vertex: no finite minimiser,
  so the problem has no optimum and logs no distances.
* Moments: the sum X of independent w_i b_i has cumulants κ₁ = Σ w_i p_i, κ₂ = Σ w_i²q_i,
  κ₃ = Σ w_i³q_i(1 − 2p_i), κ₄ = Σ w_i⁴q_i(1 − 6q_i) (those of a Bernoulli, scaled), so with
  δ = κ₁ − a: E(X − a)² = κ₂ + δ², E(X − a)⁴ = κ₄ + 3κ₂² + 4κ₃δ + 6κ₂δ² + δ⁴. X_j = S − w_j b_j
  (the sum without coordinate j, independent of b_j) takes the cumulants less j's terms.

Exact variances (``exact_variance``: tr Cov of the N-sample estimate, independent sampling):

* Score function, ĝ_j = f(b)s_j, s_j = b_j − p_j: E ĝ_j² = E[f²s_j²] =
  p_j(1 − p_j)²E(X_j + w_j − c)⁴ + (1 − p_j)p_j²E(X_j − c)⁴; Var = that − g_j², over N.
* With the leave-one-out baseline (RLOO), N ≥ 2: Var G_j = (A_j − g_j²)/N + (Var f·q_j + g_j²)/(N(N − 1))
  (derived in :mod:`problems.bernoulli_toy`), A_j = E[f²s_j²] − 2μE[f s_j²] + μ²q_j, μ = E f,
  E[f s_j²] = p_j(1 − p_j)²E(X_j + w_j − c)² + (1 − p_j)p_j²E(X_j − c)², Var f = E(S − c)⁴ − μ².
* Measure-valued: ĝ_j = q_j(f(b with b_j = 1) − f(b' with b'_j = 0)). Coupled (b' = b):
  q_j w_j(w_j + 2(X_j − c)), Var = 4q_j²w_j²Var X_j. Uncoupled (b' independent):
  Var = q_j²(Var (X_j + w_j − c)² + Var (X_j − c)²), Var Y² = E Y⁴ − (E Y²)².
* ARM and DisARM (:mod:`estimators.arm`), one pair b = 1[u < p], b̃ = 1[1 − u < p]. Per
  coordinate, u_i falls in one of three cells: u_i < m_i (m_i = min(p_i, 1 − p_i)), where
  (b_i, b̃_i) = (1, 0); u_i > 1 − m_i, where it is (0, 1); else both are h_i = 1[p_i > ½].
  With D_i = b̃_i − b_i and A_i = b_i + b̃_i, f(b̃) − f(b) = E·T, E = Σ w_i D_i,
  T = Σ w_i A_i − 2c. D_i is ±1 with probability m_i each (r_i = 2m_i in all), and then
  A_i = 1; else D_i = 0 and A_i = 2h_i. So E A_i = 2p_i, Var A_i = r_i(1 − r_i), and the
  sign of D_i is symmetric given A_i: every term odd in one D_i has mean 0. Writing T_{−J}
  for T without the coordinates J and F(y, J) = E(y + T_{−J})² = Var T_{−J} + (y + E T_{−J})²,
      B_j = w_j²F(w_j, {j}) + Σ_{i≠j} w_i²r_i F(w_j + w_i, {i, j}),
      C_j = Σ_{i≠j} w_i²r_i F(2h_j w_j + w_i, {i, j}),
  (B_j: E[E²T²] given that the pair differs in j, C_j: given that it does not), and with
  K_j = ∫_0^{m_j}(u − ½)² du = (1/8 − (½ − m_j)³)/3:
  ARM, ĝ_j = (u_j − ½)E·T: E ĝ_j² = 2K_j B_j + (1/12 − 2K_j)C_j;
  DisARM, ĝ_j = ½σ(|φ_j|)D_j E·T, σ(|φ_j|) = 1 − m_j: E ĝ_j² = ¼(1 − m_j)²r_j B_j.
  Var = E ĝ_j² − g_j², over N. The sums over i are taken in O(d) from totals.

f also takes relaxed values b ∈ [0, 1]^d, with ∇f = 2(wᵀb − c)w. Every closed form is checked
against enumeration over {0, 1}^d (tests/problems/test_binary_polynomial.py).

Reference: Liu, Dong, Liu, Yu, Gao, "Bridging Discrete and Backpropagation: Straight-Through
and Beyond" (ReinMax), NeurIPS 2023, polynomial programming.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from estimators import Bernoulli, BernoulliParams, spec
from estimators.families import sigmoid
from problems.base import require_finite, require_int
from problems.bernoulli_toy import leave_one_out_variance


@dataclass(frozen=True)
class BinaryPolynomial:
    """f(b) = (wᵀb − c)² over d independent Bernoulli(σ(φ_j)), w_j = j/d, c = ``target``·Σw, φ₀ = ``logit0``·1."""

    dim: int = 32
    target: float = 0.45
    logit0: float = 0.0
    family = Bernoulli()

    def __post_init__(self) -> None:
        require_int(self, "dim", 1)
        require_finite(self, "target", "logit0")

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """w_j = j/d, j = 1 … d."""
        w = np.arange(1, self.dim + 1, dtype=float) / self.dim
        w.flags.writeable = False
        return w

    @property
    def offset(self) -> float:
        """c = target·Σ_j w_j."""
        return self.target * (self.dim + 1) / 2.0

    @property
    def params0(self) -> BernoulliParams:
        return BernoulliParams(np.full(self.dim, float(self.logit0)))

    @property
    def length_scale(self) -> float:
        """The unit of the divergence bound, measured from φ₀: √d·(1 + |φ₀|) (in logits)."""
        return math.sqrt(self.dim) * (1.0 + abs(self.logit0))

    def __call__(self, b: np.ndarray) -> np.ndarray:
        r = b @ self.weights - self.offset
        return r * r

    def grad(self, b: np.ndarray) -> np.ndarray:
        return (2.0 * (b @ self.weights - self.offset))[..., None] * self.weights

    def hessian(self, b: np.ndarray) -> np.ndarray:
        w = self.weights
        return np.broadcast_to(2.0 * np.outer(w, w), (*np.shape(b)[:-1], self.dim, self.dim))

    def loss(self, params: BernoulliParams) -> float:
        p, w = sigmoid(params.logits), self.weights
        mean = float(w @ p)
        return float(w * w @ (p * (1.0 - p))) + (mean - self.offset) ** 2

    def exact_grad(self, params: BernoulliParams) -> BernoulliParams:
        p, w = sigmoid(params.logits), self.weights
        excess = float(w @ p) - self.offset
        return BernoulliParams(w * p * (1.0 - p) * (w * (1.0 - 2.0 * p) + 2.0 * excess))

    def exact_variance(self, config, family, params: BernoulliParams, samples: int) -> dict[str, float]:
        """tr Cov of the ``samples``-sample estimate for the configurations the module docstring
        derives (score function, also with the leave-one-out baseline; measure-valued, coupled or
        not; ARM; DisARM), independent sampling; {} for any other configuration."""
        form = _DERIVED.get(config)
        if form is None:
            return {}
        p = sigmoid(params.logits)
        per = form(self.weights, self.offset, p, self.exact_grad(params).logits, samples)
        return {} if per is None else {"logits": float(np.sum(per))}


# --- Moments of weighted sums of independent Bernoullis (module docstring).


def _cumulants(w, p):
    """Per-coordinate cumulants κ₁ … κ₄ of w_i b_i, b_i ~ Bernoulli(p_i): sum them for a sum."""
    q = p * (1.0 - p)
    return np.stack([w * p, w**2 * q, w**3 * q * (1.0 - 2.0 * p), w**4 * q * (1.0 - 6.0 * q)])


def _moments(k, a):
    """E(X − a)² and E(X − a)⁴ of X with cumulants k = (κ₁, κ₂, κ₃, κ₄) (arrays broadcast with a)."""
    k1, k2, k3, k4 = k
    d = k1 - a
    return k2 + d * d, k4 + 3.0 * k2 * k2 + 4.0 * k3 * d + 6.0 * k2 * d * d + d**4


def _without_each(w, p):
    """Cumulants of X_j = S − w_j b_j for every j, shape (4, d)."""
    per = _cumulants(w, p)
    return per.sum(axis=1, keepdims=True) - per


# Per-coordinate variances of the N-sample estimate, as functions of (w, c, p, g, N).


def _score_moments(w, c, p):
    """E[f s_j²] and E[f² s_j²], s_j = b_j − p_j, per coordinate."""
    k = _without_each(w, p)
    up2, up4 = _moments(k, c - w)  # b_j = 1: f = (X_j + w_j − c)²
    down2, down4 = _moments(k, c)  # b_j = 0: f = (X_j − c)²
    one, zero = p * (1.0 - p) ** 2, (1.0 - p) * p**2  # P(b_j)·s_j² at b_j = 1, 0
    return one * up2 + zero * down2, one * up4 + zero * down4


def _score_function(w, c, p, g, n):
    return (_score_moments(w, c, p)[1] - g * g) / n


def _leave_one_out(w, c, p, g, n):
    fs2, f2s2 = _score_moments(w, c, p)
    q = p * (1.0 - p)
    mean, fourth = _moments(_cumulants(w, p).sum(axis=1), c)  # E f, E f²
    a = f2s2 - 2.0 * mean * fs2 + mean * mean * q
    return leave_one_out_variance(a, fourth - mean * mean, q, g, n)


def _measure_valued_coupled(w, c, p, g, n):
    q = p * (1.0 - p)
    return 4.0 * q * q * w * w * _without_each(w, p)[1] / n


def _measure_valued_uncoupled(w, c, p, g, n):
    k = _without_each(w, p)
    up2, up4 = _moments(k, c - w)
    down2, down4 = _moments(k, c)
    q = p * (1.0 - p)
    return q * q * (up4 - up2 * up2 + down4 - down2 * down2) / n


def _pair_moments(w, c, p):
    """B_j, C_j, m_j and r_j of the module docstring, per coordinate, in O(d)."""
    m = np.minimum(p, 1.0 - p)
    r, h = 2.0 * m, (p > 0.5).astype(float)
    mean_a, var_a = 2.0 * w * p, w * w * r * (1.0 - r)  # of w_i A_i
    mean_t, var_t = mean_a.sum() - 2.0 * c, var_a.sum()
    rho = w * w * r  # weight of coordinate i in the sums over i ≠ j
    # F(y_j + w_i, {i, j}) = V_j − var_a_i + (a_j + e_i)², a_j = y_j + E T_{−j}, e_i = w_i − mean_a_i.
    e = w - mean_a
    sums = [(rho * x).sum() - rho * x for x in (np.ones_like(w), var_a, e, e * e)]  # Σ_{i≠j} ρ_i·x_i

    def over_i(y):
        v, a = var_t - var_a, y + mean_t - mean_a
        return sums[0] * (v + a * a) - sums[1] + 2.0 * a * sums[2] + sums[3]

    own = var_t - var_a + (w + mean_t - mean_a) ** 2  # F(w_j, {j})
    return w * w * own + over_i(w), over_i(2.0 * h * w), m, r


def _arm(w, c, p, g, n):
    b, c_, m, _ = _pair_moments(w, c, p)
    k = (0.125 - (0.5 - m) ** 3) / 3.0
    return (2.0 * k * b + (1.0 / 12.0 - 2.0 * k) * c_ - g * g) / n


def _disarm(w, c, p, g, n):
    b, _, m, r = _pair_moments(w, c, p)
    return (0.25 * (1.0 - m) ** 2 * r * b - g * g) / n


_DERIVED = {
    spec("score_function"): _score_function,
    spec("score_function", baseline="leave_one_out"): _leave_one_out,
    spec("measure_valued", coupling=True): _measure_valued_coupled,
    spec("measure_valued", coupling=False): _measure_valued_uncoupled,
    spec("arm"): _arm,
    spec("disarm"): _disarm,
}
