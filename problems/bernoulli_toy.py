r"""The discrete toy problem: f(b) = Σ_j (b_j − t)², b_j ~ Bernoulli(σ(φ_j)) independently.

The parameters are the logits φ (family :class:`estimators.Bernoulli`). With p_j = σ(φ_j),
q_j = p_j(1 − p_j), c(b) = (b − t)² (so c(1) = (1 − t)², c(0) = t²) and Δ = c(1) − c(0) = 1 − 2t:

* L(φ) = Σ_j [t² + p_jΔ],  ∂L/∂φ_j = g_j = Δ·q_j.
  For t < ½ the loss falls as every p_j → 0 (φ → −∞), for t > ½ as p_j → 1: the infimum
  is not attained at a finite φ, so the problem has no optimum and logs no distances.

Exact variances (``exact_variance``: tr Cov of the N-sample estimate), by configuration:

* Score function, one sample, coordinate j: ĝ_j = f(b)(b_j − p_j). With A = Σ_{i≠j} c(b_i),
  independent of b_j, and s = b_j − p_j (E s² = q_j):
  E[ĝ_j²] = E[c_j² s²] + 2E[c_j s²]E[A] + E[A²]E[s²], where
  E[c_j^m s²] = p_j(1 − p_j)²c(1)^m + (1 − p_j)p_j² c(0)^m, E[A] = Σ_{i≠j} m_i,
  E[A²] = Σ_{i≠j} v_i + E[A]², m_i = t² + p_iΔ, v_i = q_iΔ².
  Var ĝ_j = E[ĝ_j²] − g_j²; the trace sums over j, and N independent samples divide it by N.
* Score function with the leave-one-out baseline (RLOO), N ≥ 2 independent samples. With
  s = ∇ log q, the estimate G = (1/N) Σ_i (f_i − Σ_{k≠i} f_k/(N − 1)) s_i is a U-statistic of
  order 2, G = Σ_{i≠k} h(x_i, x_k)/(N(N − 1)), kernel h(x, y) = ½(f_x − f_y)(s_x − s_y).
  Hoeffding's decomposition: Var G = 2[2(N − 2)ζ₁ + ζ₂]/(N(N − 1)), where, with μ = E f,
  V_f = Var f, A_j = E[(f − μ)² s_j²] and E s = 0, h₁(x) = E h(x, Y) = ½((f_x − μ)s_x + g),
  ζ₁ = Var h₁ = ¼(A_j − g_j²), and ζ₂ = Var h = ½(A_j + V_f E[s_j²]) (expanding
  E[(f_x − f_y)²(s_x − s_y)²] = 2A_j + 2V_f E[s_j²] + 4g_j²). So, per coordinate,
      Var G_j = (A_j − g_j²)/N + (V_f E[s_j²] + g_j²)/(N(N − 1)):
  the variance with the exact mean μ as baseline, over N, plus the price of estimating μ
  from the other samples, of order 1/N² (:func:`leave_one_out_variance`). Here
  f − μ = Δ Σ_i s_i, so A_j = Δ²(E s_j⁴ + q_j Σ_{i≠j} q_i), E s_j⁴ = q_j(1 − 3q_j),
  V_f = Δ² Σ_i q_i, E[s_j²] = q_j.
* ARM and DisARM (:mod:`estimators.arm`), one sample being one pair b = 1[u < p],
  b̃ = 1[1 − u < p]. f is separable: f(b̃) − f(b) = Δ Σ_i D_i, D_i = b̃_i − b_i ∈ {−1, 0, 1}
  a function of u_i alone, E D_i = 0 and E D_i² = r_i = 2m_i, m_i = min(p_i, 1 − p_i) (the
  pair disagrees exactly where u_i < m_i or u_i > 1 − m_i). So the other coordinates enter
  only through S_j = Σ_{i≠j} D_i, independent of u_j, with E S_j = 0, E S_j² = Σ_{i≠j} r_i.
  ARM, ĝ_j = Δ(u_j − ½)(D_j + S_j): E[ĝ_j²] = Δ²(E[(u_j − ½)²D_j²] + E[S_j²]/12), where
  E[(u_j − ½)²D_j²] = 2∫_0^{m_j}(u − ½)² du = (2/3)(1/8 − (½ − m_j)³).
  DisARM, ĝ_j = ½(f(b) − f(b̃))(b_j − b̃_j)σ(|φ_j|) = ½Δσ(|φ_j|)(D_j² + D_j S_j), and
  σ(|φ_j|) = 1 − m_j: E[ĝ_j²] = ¼Δ²(1 − m_j)² r_j (1 + E[S_j²]).
  Var ĝ_j = E[ĝ_j²] − g_j²; independent pairs: N divides.
* Measure-valued. Coupled: f(b with b_j = 1) − f(b with b_j = 0) = Δ whatever the other
  coordinates, so every sample is g exactly: variance 0, under every sampling scheme.
  Uncoupled: the other coordinates of the two parts are independent samples b⁺, b⁻, so
  ĝ_j = q_jΔ(1 + Σ_{i≠j}(b⁺_i − b⁻_i)) and Var ĝ_j = 2Δ²q_j² Σ_{i≠j} q_i; N divides.

f also takes relaxed values b ∈ [0, 1]^d, with ∇f = 2(b − t), for estimators that feed
it a continuous relaxation. The problem used by Tucker et al. (2017, REBAR) and Grathwohl
et al. (2018, RELAX) in one dimension with t = 0.45.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from estimators import Bernoulli, BernoulliParams, spec
from estimators.families import sigmoid
from problems.base import require_finite, require_int


@dataclass(frozen=True)
class BernoulliToy:
    """f(b) = Σ_j (b_j − t)² over d independent Bernoulli(σ(φ_j)), φ₀ = ``logit0``·1."""

    dim: int = 1
    target: float = 0.45
    logit0: float = 0.0
    family = Bernoulli()

    def __post_init__(self) -> None:
        require_int(self, "dim", 1)
        require_finite(self, "target", "logit0")

    @property
    def params0(self) -> BernoulliParams:
        return BernoulliParams(np.full(self.dim, float(self.logit0)))

    @property
    def length_scale(self) -> float:
        """The unit of the divergence bound, measured from φ₀: √d·(1 + |φ₀|) (in logits)."""
        return math.sqrt(self.dim) * (1.0 + abs(self.logit0))

    def __call__(self, b: np.ndarray) -> np.ndarray:
        r = b - self.target
        return np.einsum("...i,...i->...", r, r)

    def grad(self, b: np.ndarray) -> np.ndarray:
        return 2.0 * (b - self.target)

    def hessian(self, b: np.ndarray) -> np.ndarray:
        return np.broadcast_to(2.0 * np.eye(self.dim), (*np.shape(b)[:-1], self.dim, self.dim))

    def loss(self, params: BernoulliParams) -> float:
        p = sigmoid(params.logits)
        return float(np.sum(self.target**2 + p * (1.0 - 2.0 * self.target)))

    def exact_grad(self, params: BernoulliParams) -> BernoulliParams:
        p = sigmoid(params.logits)
        return BernoulliParams((1.0 - 2.0 * self.target) * p * (1.0 - p))

    def exact_variance(self, config, family, params: BernoulliParams, samples: int) -> dict[str, float]:
        """tr Cov of the ``samples``-sample estimate for the configurations the module docstring
        derives (score function, also with the leave-one-out baseline; ARM; DisARM; measure-valued,
        coupled or not), independent sampling (any scheme for the coupled measure-valued one);
        {} for any other configuration."""
        form = _DERIVED.get(config)
        if form is None:
            return {}
        per = form(self.target, sigmoid(params.logits), samples)
        return {} if per is None else {"logits": float(np.sum(per))}

    def exact_bias(self, config, family, params: BernoulliParams) -> float | None:
        r"""‖E ĝ − ∇L‖² of ``gumbel_softmax`` or ``straight_through`` at any temperature τ,
        independent sampling, no wrapper (:mod:`estimators.relaxed`); None for any other
        configuration. The same for any N: the N-sample estimate has the one-sample mean.

        Both are separable here, coordinate j a function of u_j alone. With L_j logistic
        (density ℓ(y) = σ(y)σ(−y)) and x = (φ_j + L_j)/τ, z̃_j = σ(x), ∂z̃_j/∂φ_j = σ'(x)/τ,
        b_j = 1[x > 0], and x has density τℓ(τx − φ_j); so, with ∇f(z) = 2(z − t),

            Gumbel-softmax,   ĝ_j = 2(z̃_j − t)σ'(x)/τ:  E ĝ_j = ∫ 2(σ(x) − t) σ'(x) ℓ(τx − φ_j) dx,
            straight-through, ĝ_j = 2(b_j − t)σ'(x)/τ:  E ĝ_j = ∫ 2(1[x > 0] − t) σ'(x) ℓ(τx − φ_j) dx,

        over the real line, against ∂L/∂φ_j = (1 − 2t)p_j(1 − p_j). In x the integrands decay
        like e^{−|x|} at every τ (in u they would peak at height 1/τ on a width τ near u = p_j):
        adaptive quadrature, all coordinates at once, the straight-through one split at its
        jump x = 0. As τ → 0 both means tend to ∂L/∂φ_j = (1 − 2t)ℓ(−φ_j); for straight-through
        only because f is quadratic in b_j, so that the mean of ∂_j f at b_j = 0 and 1 is
        f(1) − f(0) (the limit is ℓ(−φ_j)·(∂_j f(0) + ∂_j f(1))/2).
        """
        from scipy.integrate import quad_vec

        entries = dict(config)
        name, tau = entries.get("estimator"), entries.get("temperature")
        positive = isinstance(tau, (int, float)) and not isinstance(tau, bool) and math.isfinite(tau) and tau > 0
        if (name not in ("gumbel_softmax", "straight_through") or getattr(family, "name", None) != "bernoulli"
                or set(entries) != {"estimator", "sampling", "temperature"} or entries["sampling"] != "independent"
                or not positive):
            return None
        t, phi = self.target, np.asarray(params.logits, dtype=np.float64)

        def weight(x):  # σ'(x)·ℓ(τx − φ_j), per coordinate
            y = tau * x - phi
            return sigmoid(x) * sigmoid(-x) * sigmoid(y) * sigmoid(-y)

        tol = {"epsabs": 1e-13, "epsrel": 1e-11}
        if name == "gumbel_softmax":
            mean = quad_vec(lambda x: 2.0 * (sigmoid(x) - t) * weight(x), -np.inf, np.inf, **tol)[0]
        else:
            mean = (quad_vec(lambda x: 2.0 * (1.0 - t) * weight(x), 0.0, np.inf, **tol)[0]
                    + quad_vec(lambda x: -2.0 * t * weight(x), -np.inf, 0.0, **tol)[0])
        p = sigmoid(phi)
        r = mean - (1.0 - 2.0 * t) * p * (1.0 - p)
        return float(r @ r)


def leave_one_out_variance(a, var_f: float, s2, g, n: int):
    """Var of the ``n``-sample score function with the leave-one-out baseline, per coordinate,
    from A_j = E[(f − E f)² s_j²], Var f, E[s_j²] and g_j = ∂L/∂φ_j (module docstring):
    (A_j − g_j²)/n + (Var f·E[s_j²] + g_j²)/(n(n − 1)); None for n < 2, where it is undefined."""
    if n < 2:
        return None
    return (a - g * g) / n + (var_f * s2 + g * g) / (n * (n - 1))


# Per-coordinate variances of the N-sample estimate, as functions of (t, p, N): module docstring.


def _score_function(t, p, n):
    c1, c0 = (1.0 - t) ** 2, t**2
    q = p * (1.0 - p)
    m, v = t**2 + p * (1.0 - 2.0 * t), q * (1.0 - 2.0 * t) ** 2
    mean_a = m.sum() - m
    second_a = v.sum() - v + mean_a**2
    cs2 = p * (1.0 - p) ** 2 * c1 + (1.0 - p) * p**2 * c0
    c2s2 = p * (1.0 - p) ** 2 * c1**2 + (1.0 - p) * p**2 * c0**2
    second = c2s2 + 2.0 * cs2 * mean_a + second_a * q
    grad = (1.0 - 2.0 * t) * q
    return (second - grad**2) / n


def _leave_one_out(t, p, n):
    delta2, q = (1.0 - 2.0 * t) ** 2, p * (1.0 - p)
    a = delta2 * (q * (1.0 - 3.0 * q) + q * (q.sum() - q))
    return leave_one_out_variance(a, delta2 * q.sum(), q, (1.0 - 2.0 * t) * q, n)


def _pair(p):
    """m = min(p, 1 − p), r = P(b ≠ b̃) = 2m, and Σ_{i≠j} r_i per coordinate."""
    m = np.minimum(p, 1.0 - p)
    r = 2.0 * m
    return m, r, r.sum() - r


def _arm(t, p, n):
    delta2, (m, _, others) = (1.0 - 2.0 * t) ** 2, _pair(p)
    second = delta2 * ((2.0 / 3.0) * (0.125 - (0.5 - m) ** 3) + others / 12.0)
    return (second - delta2 * (p * (1.0 - p)) ** 2) / n


def _disarm(t, p, n):
    delta2, (m, r, others) = (1.0 - 2.0 * t) ** 2, _pair(p)
    second = 0.25 * delta2 * (1.0 - m) ** 2 * r * (1.0 + others)
    return (second - delta2 * (p * (1.0 - p)) ** 2) / n


def _measure_valued_coupled(t, p, n):
    return np.zeros_like(p)


def _measure_valued_uncoupled(t, p, n):
    q = p * (1.0 - p)
    return 2.0 * (1.0 - 2.0 * t) ** 2 * q * q * (q.sum() - q) / n


_DERIVED = {
    spec("score_function"): _score_function,
    spec("score_function", baseline="leave_one_out"): _leave_one_out,
    spec("arm"): _arm,
    spec("disarm"): _disarm,
    # Every coupled sample is the exact gradient, whatever the scheme that drew it.
    **{spec("measure_valued", sampling=s, coupling=True): _measure_valued_coupled
       for s in ("independent", "antithetic", "qmc")},
    spec("measure_valued", coupling=False): _measure_valued_uncoupled,
}
