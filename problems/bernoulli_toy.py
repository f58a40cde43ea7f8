r"""The discrete toy problem: f(b) = Σ_j (b_j − t)², b_j ~ Bernoulli(σ(φ_j)) independently.

The parameters are the logits φ (family :class:`estimators.Bernoulli`). With p_j = σ(φ_j)
and c(b) = (b − t)² (so c(1) = (1 − t)², c(0) = t²):

* L(φ) = Σ_j [t² + p_j(1 − 2t)],  ∂L/∂φ_j = (1 − 2t)·p_j(1 − p_j).
  For t < ½ the loss falls as every p_j → 0 (φ → −∞), for t > ½ as p_j → 1: the infimum
  is not attained at a finite φ, so the problem has no optimum and logs no distances.
* Score function, one sample, coordinate j: ĝ_j = f(b)(b_j − p_j). With A = Σ_{i≠j} c(b_i),
  independent of b_j, and s = b_j − p_j (E s² = p_j(1 − p_j)):
  E[ĝ_j²] = E[c_j² s²] + 2E[c_j s²]E[A] + E[A²]E[s²], where
  E[c_j^m s²] = p_j(1 − p_j)²c(1)^m + (1 − p_j)p_j² c(0)^m, E[A] = Σ_{i≠j} m_i,
  E[A²] = Σ_{i≠j} v_i + E[A]², m_i = t² + p_i(1 − 2t), v_i = p_i(1 − p_i)(1 − 2t)².
  Var ĝ_j = E[ĝ_j²] − (∂L/∂φ_j)²; the trace sums over j, and N samples divide it by N.

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
from problems.base import require


@dataclass(frozen=True)
class BernoulliToy:
    """f(b) = Σ_j (b_j − t)² over d independent Bernoulli(σ(φ_j)), φ₀ = ``logit0``·1."""

    dim: int = 1
    target: float = 0.45
    logit0: float = 0.0
    family = Bernoulli()

    def __post_init__(self) -> None:
        require(isinstance(self.dim, int) and not isinstance(self.dim, bool) and self.dim >= 1, "dim", self.dim,
                "an integer >= 1")
        for key in ("target", "logit0"):
            value = getattr(self, key)
            require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), key,
                    value, "a finite number")

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
        """The score function's, independent sampling, no baseline (module docstring); {} otherwise."""
        if config != _SCORE_FUNCTION:
            return {}
        t, p = self.target, sigmoid(params.logits)
        c1, c0 = (1.0 - t) ** 2, t**2
        q = p * (1.0 - p)
        m, v = t**2 + p * (1.0 - 2.0 * t), q * (1.0 - 2.0 * t) ** 2
        mean_a = m.sum() - m
        second_a = v.sum() - v + mean_a**2
        cs2 = p * (1.0 - p) ** 2 * c1 + (1.0 - p) * p**2 * c0
        c2s2 = p * (1.0 - p) ** 2 * c1**2 + (1.0 - p) * p**2 * c0**2
        second = c2s2 + 2.0 * cs2 * mean_a + second_a * q
        grad = (1.0 - 2.0 * t) * q
        return {"logits": float(np.sum(second - grad**2)) / samples}


_SCORE_FUNCTION = spec("score_function")
