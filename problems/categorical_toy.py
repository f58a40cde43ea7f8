r"""A categorical toy problem: f(z) = Σ_j Σ_k c_k z_jk over d independent categoricals with K classes.

The parameters are the logits φ (d × K, family :class:`estimators.families.Categorical`),
π_j = softmax(φ_j); z_j is one-hot, so f(z) = Σ_j c_{k_j}, the cost of the class drawn in
each row. f is linear, so it also takes relaxed z (rows in the simplex) with ∇f = c in
every row, for estimators that feed it a continuous relaxation. The costs default to
c_k = (k/(K − 1) − t)², the Bernoulli toy's (b − t)² on K evenly spaced points of [0, 1]
(K = 2 is that toy with φ_j1 − φ_j0 as its logit); ``costs`` sets them directly.

With m_j = π_j·c (the expected cost of row j):

* L(φ) = Σ_j m_j,  ∂L/∂φ_jk = π_jk(c_k − m_j).
  L falls as each row's mass moves to the cheapest class: the infimum is not attained at a
  finite φ, so the problem has no optimum and logs no distances.
* Score function, one sample: ĝ = f(z)·s with s_jk = z_jk − π_jk, so
  tr Cov ĝ = E[f² ‖s‖²] − ‖∇L‖². Row j contributes a_j = c_{k_j} to f and
  r_j = ‖z_j − π_j‖² = 1 − 2π_{j,k_j} + ‖π_j‖² to ‖s‖²; with A = Σ_{i≠j} a_i, independent
  of row j,
      E[f² r_j] = E[a_j² r_j] + 2E[a_j r_j]E[A] + E[A²]E[r_j],
      E[a_j^n r_j] = Σ_k π_jk c_k^n (1 − 2π_jk + ‖π_j‖²),  E[r_j] = 1 − ‖π_j‖²,
      E[A] = Σ_{i≠j} m_i,  E[A²] = Σ_{i≠j} v_i + E[A]²,  v_i = π_i·c² − m_i²,
  and E[f² ‖s‖²] = Σ_j E[f² r_j]; N independent samples divide the trace by N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from estimators import spec
from estimators.families import Categorical, CategoricalParams, softmax
from problems.base import require, require_finite, require_int


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class CategoricalToy:
    """f(z) = Σ_j c·z_j over ``dim`` independent categoricals with ``classes`` classes, all logits
    starting at ``logit0`` (uniform π); costs ``costs``, or (k/(K − 1) − ``target``)² by default."""

    dim: int = 1
    classes: int = 4
    target: float = 0.45
    costs: Any = None  # None, or ``classes`` finite numbers (a list from the config; kept as a tuple)
    logit0: float = 0.0

    def __post_init__(self) -> None:
        require_int(self, "dim", 1)
        require_int(self, "classes", 2)
        require_finite(self, "target", "logit0")
        if self.costs is not None:
            costs = self.costs
            require(isinstance(costs, (list, tuple)) and len(costs) == self.classes and all(map(_finite, costs)),
                    "costs", costs, f"null or a list of problem.classes ({self.classes}) finite numbers")
            # A tuple: the problem stays hashable and immutable, as a frozen dataclass should be.
            object.__setattr__(self, "costs", tuple(float(c) for c in costs))

    @property
    def family(self) -> Categorical:
        return Categorical(self.classes)

    @property
    def cost(self) -> np.ndarray:
        """c, shape (K,)."""
        if self.costs is not None:
            return np.array(self.costs)
        return (np.arange(self.classes) / (self.classes - 1) - self.target) ** 2

    @property
    def params0(self) -> CategoricalParams:
        # Flat, d·K logits row by row: the loop hands θ back flat, and measures its
        # distance from θ₀ in that shape.
        return CategoricalParams(np.full(self.dim * self.classes, float(self.logit0)))

    @property
    def length_scale(self) -> float:
        """The unit of the divergence bound, measured from φ₀: √(dK)·(1 + |φ₀|) (in logits)."""
        return math.sqrt(self.dim * self.classes) * (1.0 + abs(self.logit0))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.einsum("...jk,k->...", z, self.cost)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.cost, np.shape(z))

    def _pi(self, params: CategoricalParams) -> np.ndarray:
        return softmax(self.family.logits(params))

    def loss(self, params: CategoricalParams) -> float:
        return float(np.sum(self._pi(params) @ self.cost))

    def exact_grad(self, params: CategoricalParams) -> CategoricalParams:
        pi, c = self._pi(params), self.cost
        grad = pi * (c - (pi @ c)[:, None])
        return CategoricalParams(grad.reshape(np.shape(params.logits)))

    def exact_variance(self, config, family, params: CategoricalParams, samples: int) -> dict[str, float]:
        """The score function's, independent sampling, no baseline (module docstring); {} otherwise."""
        if config != _SCORE_FUNCTION:
            return {}
        pi, c = self._pi(params), self.cost
        m, sq = pi @ c, np.sum(pi * pi, axis=1)
        v = pi @ (c * c) - m * m
        r = 1.0 - 2.0 * pi + sq[:, None]  # r_j when row j draws class k, (d, K)
        a1r, a2r = (pi * r) @ c, (pi * r) @ (c * c)
        mean_a = m.sum() - m
        second_a = v.sum() - v + mean_a**2
        second = np.sum(a2r + 2.0 * a1r * mean_a + second_a * (1.0 - sq))
        grad = pi * (c - m[:, None])
        return {"logits": float(second - np.sum(grad * grad)) / samples}


_SCORE_FUNCTION = spec("score_function")
