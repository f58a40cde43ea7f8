r"""The founding problem: f(z) = ‖z − x‖² under q_θ = N(θ, σ²I) (see :class:`Quadratic`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from estimators import Gaussian, GaussianParams, spec


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
    * One-sample variance, measure-valued (mean): coupled, ĝ_j = 4a_jW/√(2π) with
      Var W = 2 − π/2, so (16/π − 4)·s; uncoupled, Σ_j of
      [8a_j²σ²(2 − π/2) + 8σ⁴ + Σ_{i≠j}(8a_i²σ² + 4σ⁴)]/(2πσ²), which sums to
      [8(2 − π/2)s + 8dσ² + 8(d − 1)s + 4d(d − 1)σ²]/(2π).

    An N-sample average divides both by N. Known for the mean block at a σ shared by every
    coordinate, with the scale held fixed.
    """

    dim: int = 2
    distance: float = 100.0 * math.sqrt(2.0)
    sigma: float = 1.0
    family = Gaussian()

    @functools.cached_property
    def optimum(self) -> np.ndarray:
        return np.full(self.dim, self.distance / math.sqrt(self.dim))

    @property
    def params0(self) -> GaussianParams:
        return GaussianParams(np.zeros(self.dim), self.sigma)

    @property
    def length_scale(self) -> float:
        """Length scale of the problem, D + σ√d: the unit of the divergence bound."""
        return self.distance + self.sigma * math.sqrt(self.dim)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        r = z - self.optimum
        return np.einsum("...i,...i->...", r, r)

    def grad(self, z: np.ndarray) -> np.ndarray:
        r = z - self.optimum
        r *= 2.0  # in place: the same values as 2.0 * r, without a second (N, d) array
        return r

    def hessian(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(2.0 * np.eye(self.dim), (*np.shape(z)[:-1], self.dim, self.dim))

    def loss(self, params: GaussianParams) -> float:
        """L = ‖μ − x‖² + Σ_j σ_j² (dσ² for a shared σ)."""
        r = params.mean - self.optimum
        if np.ndim(params.scale) == 0:
            return float(r @ r + self.dim * params.scale**2)
        return float(r @ r + np.sum(np.broadcast_to(np.square(params.scale), (self.dim,))))

    def exact_grad(self, params: GaussianParams) -> GaussianParams:
        """∇_μ L = 2(μ − x), whatever σ; ∂L/∂σ_j = 2σ_j."""
        return GaussianParams(2.0 * (params.mean - self.optimum),
                              2.0 * np.broadcast_to(np.asarray(params.scale, dtype=float), (self.dim,)))

    def exact_variance(self, config, family, params: GaussianParams, samples: int) -> dict[str, float]:
        """The closed forms of the class docstring, for the configurations they were derived for."""
        sig = np.unique(np.asarray(params.scale, dtype=float))
        form = _VARIANCE.get(config)
        if form is None or family.learn_scale or sig.size != 1:
            return {}
        d, sigma = self.dim, float(sig[0])
        r = params.mean - self.optimum
        return {"mean": form(d, float(r @ r), sigma**2) / samples}


# One-sample variance of the mean block, (d, s = ‖μ − x‖², σ²) -> tr Cov, per configuration.
_VARIANCE = {
    spec("score_function"): lambda d, s, sig2: d * (s * s / sig2 + (2 * d + 8) * s + (d + 2) * (d + 4) * sig2) + 4 * s,
    # The second-order expansion of a quadratic is the quadratic itself.
    spec("score_function", control_variate="delta"): lambda d, s, sig2: 0.0,
    spec("reparameterization"): lambda d, s, sig2: 4.0 * d * sig2,
    spec("measure_valued", coupling=True): lambda d, s, sig2: (16.0 / math.pi - 4.0) * s,
    spec("measure_valued", coupling=False): lambda d, s, sig2: (
        8.0 * (2.0 - math.pi / 2.0) * s + 8.0 * d * sig2 + 8.0 * (d - 1) * s + 4.0 * d * (d - 1) * sig2
    ) / (2.0 * math.pi),
}
