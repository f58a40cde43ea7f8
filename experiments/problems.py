r"""Test problems: an integrand f, a Gaussian family q_θ = N(θ, σ²I), and a start θ₀.

A problem is itself the :class:`estimators.Integrand` (``problem(z)`` and
``problem.grad(z)``), and knows what the run measures against: the exact loss, the true
gradient and, where a closed form exists, the exact variance of an estimator.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

import estimators


def _bare(estimator):
    """The plain estimator function behind ``estimator``, or None if it carries arguments.

    A closed form applies to an estimator as written, not to one configured with options
    (a baseline, a sampling scheme) that change its variance.
    """
    if isinstance(estimator, functools.partial):
        return None if (estimator.args or estimator.keywords) else _bare(estimator.func)
    return estimator


@dataclass(frozen=True)
class Quadratic:
    r"""The founding problem: f(z) = ‖z − x‖² under q_θ = N(θ, σ²I) in d dimensions.

    θ₀ = 0 and the optimum x = D·(1, …, 1)/√d lies at distance D from θ₀, so D = 100√2
    gives x = (100, 100) in two dimensions. With a = θ − x and s = ‖a‖²:

    * L(θ) = s + dσ², ∇L(θ) = 2a.
    * One-sample variance (trace of the covariance), score function:
      d·(s²/σ² + (2d + 8)·s + (d + 2)(d + 4)·σ²) + 4s.
      (Write ĝ = σ·h(b) with b = a/σ and h(b) = ‖b + ε‖²ε, the σ = 1 estimator at
      s' = s/σ², whose variance is d·(s'² + (2d + 8)s' + (d + 2)(d + 4)) + 4s'.)
    * One-sample variance, reparameterization: 4dσ² (ĝ = 2(a + σε)).

    An N-sample average divides both by N.
    """

    dim: int = 2
    distance: float = 100.0 * math.sqrt(2.0)
    sigma: float = 1.0

    @functools.cached_property
    def optimum(self) -> np.ndarray:
        return np.full(self.dim, self.distance / math.sqrt(self.dim))

    @property
    def theta0(self) -> np.ndarray:
        return np.zeros(self.dim)

    @property
    def scale(self) -> float:
        """Length scale of the problem, D + σ√d: the unit of the divergence bound."""
        return self.distance + self.sigma * math.sqrt(self.dim)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        r = z - self.optimum
        return np.einsum("...i,...i->...", r, r)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return 2.0 * (z - self.optimum)

    def loss(self, theta: np.ndarray) -> float:
        r = theta - self.optimum
        return float(r @ r + self.dim * self.sigma**2)

    def true_grad(self, theta: np.ndarray) -> np.ndarray:
        return 2.0 * (theta - self.optimum)

    def grad_variance_exact(self, estimator, theta: np.ndarray, samples: int) -> float | None:
        """Trace of the covariance of the ``samples``-sample estimate at θ, or None."""
        d, sig2 = self.dim, self.sigma**2
        r = theta - self.optimum
        s = float(r @ r)
        bare = _bare(estimator)
        if bare is estimators.score_function:
            one = d * (s * s / sig2 + (2 * d + 8) * s + (d + 2) * (d + 4) * sig2) + 4 * s
        elif bare is estimators.reparameterization:
            one = 4.0 * d * sig2
        else:
            return None
        return one / samples
