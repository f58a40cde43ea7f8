r"""Monte Carlo estimators of the gradient of a Gaussian expectation.

For q_θ = N(θ, σ²I) on R^d and an integrand f, every estimator here approximates

    ∇_θ L(θ),   L(θ) = E_{z ~ q_θ}[f(z)],

and shares one signature::

    estimator(f, mean, scale, rng, num_samples) -> array of shape (num_samples, d)

Row i is the gradient estimate from the i-th sample alone: the row mean is the
N-sample estimate an optimizer uses, and the spread of the rows is its variance.
All estimators draw their base noise first, as ``rng.standard_normal((num_samples, d))``,
so two estimators given generators in the same state see the same ε.

Reference: S. Mohamed, M. Rosca, M. Figurnov, A. Mnih, "Monte Carlo Gradient Estimation in
Machine Learning", JMLR 21(132), 2020, sections 4 and 5.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Integrand(Protocol):
    """A function f: R^d → R evaluated on a batch, with its gradient where it has one."""

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """f at each row of ``z`` (shape (..., d)); returns shape (...)."""

    def grad(self, z: np.ndarray) -> np.ndarray:
        """∇f at each row of ``z`` (shape (..., d)); returns shape (..., d)."""


class Estimator(Protocol):
    def __call__(
        self,
        f: Integrand,
        mean: np.ndarray,
        scale: float | np.ndarray,
        rng: np.random.Generator,
        num_samples: int,
    ) -> np.ndarray: ...


def score_function(
    f: Integrand,
    mean: np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    num_samples: int,
) -> np.ndarray:
    r"""Score-function (likelihood-ratio, REINFORCE) estimator of the mean gradient.

    .. math::

        \hat g_i = f(z_i)\,\nabla_\theta \log q_\theta(z_i)
                 = f(z_i)\,\frac{z_i - \theta}{\sigma^2}
                 = \frac{f(\theta + \sigma\varepsilon_i)\,\varepsilon_i}{\sigma},
        \qquad \varepsilon_i \sim N(0, I).

    Needs only point evaluations of f (no derivative, f may be discontinuous) and the
    score of q. Unbiased whenever E|f(z)|·‖z − θ‖ < ∞; its variance grows with the
    magnitude of f, so with f(z) = ‖z − x‖² it grows like ‖θ − x‖⁴.
    References: Glynn (1990); Williams (1992); Mohamed et al. (2020), section 4.
    """
    eps = rng.standard_normal((num_samples, np.shape(mean)[-1]))
    values = f(mean + scale * eps)
    return values[:, None] * (eps / scale)


def reparameterization(
    f: Integrand,
    mean: np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    num_samples: int,
) -> np.ndarray:
    r"""Reparameterization (pathwise) estimator of the mean gradient.

    With z = g(θ, ε) = θ + σε and ∂z/∂θ = I,

    .. math::

        \hat g_i = \nabla_\theta f(g(\theta, \varepsilon_i)) = \nabla f(\theta + \sigma\varepsilon_i),
        \qquad \varepsilon_i \sim N(0, I).

    Needs f differentiable (``f.grad``) and q reparameterisable. Unbiased when ∇f is
    integrable; its variance is bounded by the smoothness of f (for L-Lipschitz ∇f it is
    at most L²σ²d), independent of how far θ is from the optimum.
    References: Kingma & Welling (2014); Rezende et al. (2014); Mohamed et al. (2020),
    section 5.
    """
    eps = rng.standard_normal((num_samples, np.shape(mean)[-1]))
    return f.grad(mean + scale * eps)
