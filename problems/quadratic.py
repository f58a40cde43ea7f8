r"""Test problems: an integrand f, a Gaussian family q_θ = N(θ, σ²I), and a start θ₀.

A problem is itself the :class:`estimators.Integrand` (``problem(z)``, ``problem.grad(z)``,
``problem.hessian(z)``), and knows what the run measures against. Its interface, used by
:mod:`experiments.sgd`:

* ``dim``, ``theta0`` (the initial mean), ``sigma`` (the initial, or fixed, scale),
  ``optimum`` (the minimising mean x; NaN where there is none), ``distance`` (‖x − θ₀‖),
  ``scale`` (a length: the unit of the divergence bound);
* ``loss(mean, scale=None)``, ``true_grad(mean, scale=None)`` (∇_μ L; None: at ``sigma``) and
  ``true_grad_scale(mean, scale)`` (∇_σ L);
* ``grad_variance_blocks(estimator, mean, scale, samples)``: the exact trace of the
  covariance per block ("mean", and "scale" when the estimator learns it), None where not
  known; ``grad_variance_exact(estimator, theta, samples)`` is the mean block at σ;
* optionally ``metrics(mean, scale) -> dict`` of further curves to log, and
  ``analytic_grad(mean, scale, learn_scale)``: a part of ∇L known exactly (an entropy
  term), added to the estimate rather than estimated.

Other problems: :mod:`problems.gaussian_expectation` and
:mod:`problems.logistic_regression`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

import estimators


def textbook(estimator) -> tuple[object, dict] | None:
    """(function, options) of ``estimator`` if its closed forms apply, else None.

    A closed form applies to the configuration it was derived for: here, independent
    sampling and no baseline. Options that change the variance (a scheme, a baseline) make
    it unknown, so a problem reports None rather than a wrong number. ``opts["control_variate"]``
    is None or the control variate; a problem that has no form for it must check.
    """
    func, opts = estimators.options(estimator)
    if opts.get("sampling", estimators.sampling.independent) is not estimators.sampling.independent:
        return None
    if opts.get("baseline") not in (None, estimators.baselines.NONE):
        return None
    if opts.get("control_variate") == estimators.control_variates.NONE:
        opts = {**opts, "control_variate": None}
    return func, opts


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
        r = z - self.optimum
        r *= 2.0  # in place: the same values as 2.0 * r, without a second (N, d) array
        return r

    def hessian(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(2.0 * np.eye(self.dim), (*np.shape(z)[:-1], self.dim, self.dim))

    def loss(self, theta: np.ndarray, scale: float | np.ndarray | None = None) -> float:
        """L at mean θ and scale σ (the problem's σ when None): ‖θ − x‖² + Σ_j σ_j²."""
        r = theta - self.optimum
        if scale is None:
            return float(r @ r + self.dim * self.sigma**2)
        return float(r @ r + np.sum(np.broadcast_to(np.square(scale), (self.dim,))))

    def true_grad(self, theta: np.ndarray, scale: float | np.ndarray | None = None) -> np.ndarray:
        """∇_μ L = 2(θ − x), whatever σ."""
        return 2.0 * (theta - self.optimum)

    def true_grad_scale(self, theta: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
        """∂L/∂σ_j = 2σ_j for a per-coordinate scale."""
        return 2.0 * np.broadcast_to(np.asarray(scale, dtype=float), (self.dim,))

    def grad_variance_exact(self, estimator, theta: np.ndarray, samples: int) -> float | None:
        """Trace of the covariance of the ``samples``-sample estimate at θ, or None."""
        return self.grad_variance_blocks(estimator, theta, self.sigma, samples)["mean"]

    def grad_variance_blocks(self, estimator, theta, scale, samples: int) -> dict[str, float | None]:
        """Per block ("mean", and "scale" when the estimator learns it), or None where unknown.

        Known here for the mean block at a common σ: the score function, the pathwise
        estimator and the measure-valued one (see the class docstring); None otherwise.
        """
        config = textbook(estimator)
        with_scale = estimators.options(estimator)[1].get("with_scale", False)
        blocks: dict[str, float | None] = {"mean": None, "scale": None} if with_scale else {"mean": None}
        sig = np.unique(np.asarray(scale, dtype=float))
        if config is None or with_scale or sig.size != 1:
            return blocks
        (func, opts), sigma = config, float(sig[0])
        d, sig2 = self.dim, sigma**2
        r = theta - self.optimum
        s = float(r @ r)
        if func is estimators.score_function and opts.get("control_variate") == estimators.control_variates.delta():
            one = 0.0  # the second-order expansion of a quadratic is the quadratic itself
        elif opts.get("control_variate") is not None:
            return blocks
        elif func is estimators.score_function:
            one = d * (s * s / sig2 + (2 * d + 8) * s + (d + 2) * (d + 4) * sig2) + 4 * s
        elif func is estimators.reparameterization:
            one = 4.0 * d * sig2
        elif func is estimators.measure_valued and opts.get("coupling", True):
            one = (16.0 / math.pi - 4.0) * s
        elif func is estimators.measure_valued:
            one = (8.0 * (2.0 - math.pi / 2.0) * s + 8.0 * d * sig2 + 8.0 * (d - 1) * s
                   + 4.0 * d * (d - 1) * sig2) / (2.0 * math.pi)
        else:
            return blocks
        return {"mean": one / samples}
