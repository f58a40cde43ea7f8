r"""Monte Carlo estimators of the gradient of a Gaussian expectation.

For q_θ = N(μ, diag σ²) on R^d and an integrand f, every estimator here approximates

    ∇_μ L,   L(μ, σ) = E_{z ~ q}[f(z)],

and, with ``with_scale=True``, also ∇_σ L (σ per coordinate). They share one signature::

    estimator(f, mean, scale, rng, num_samples, *, sampling=independent, with_scale=False, ...)
        -> array of shape (*shape, k)

with ``shape = (num_samples,)`` for an int, or ``num_samples`` itself for a shape
``(V, N)``: V independent sets of N samples in one vectorised call. Row i of a set is the
gradient estimate from the i-th sample alone, so the mean over the set's axis is the
N-sample estimate an optimizer uses, and the spread across sets is its variance. k = d, or
2d with ``with_scale`` (∇_μ, then ∇_σ). ``scale`` is a float or a per-coordinate array.

Base noise comes from ``sampling`` (see :mod:`estimators.sampling`), first and before any
other draw: with the default, ``rng.standard_normal((*shape, d))``, so two estimators given
generators in the same state see the same ε. Further keyword options are the estimator's
own (a baseline, a control variate, a coupling); the defaults give the plain estimator.
An estimator whose options carry state across calls (a moving-average baseline) takes
``state=`` and then returns ``(per-sample gradients, new state)``; see
:func:`initial_state`.

Reference: S. Mohamed, M. Rosca, M. Figurnov, A. Mnih, "Monte Carlo Gradient Estimation in
Machine Learning", JMLR 21(132), 2020, sections 4 to 7.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np

from estimators import baselines, control_variates
from estimators.baselines import Baseline
from estimators.control_variates import ControlVariate
from estimators.sampling import Sampler, independent


class Integrand(Protocol):
    """A function f: R^d → R evaluated on a batch, with derivatives where it has them."""

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """f at each row of ``z`` (shape (..., d)); returns shape (...)."""

    def grad(self, z: np.ndarray) -> np.ndarray:
        """∇f at each row of ``z`` (shape (..., d)); returns shape (..., d)."""

    def hessian(self, z: np.ndarray) -> np.ndarray:
        """∇²f at each row of ``z`` (shape (..., d)); returns shape (..., d, d)."""


class Estimator(Protocol):
    def __call__(
        self,
        f: Integrand,
        mean: np.ndarray,
        scale: float | np.ndarray,
        rng: np.random.Generator,
        num_samples: int | tuple[int, ...],
        **options: Any,
    ) -> np.ndarray: ...


def sample_shape(num_samples: int | tuple[int, ...]) -> tuple[int, ...]:
    """``(N,)`` for an int N, else the given shape; its last axis is one set of samples."""
    if isinstance(num_samples, (int, np.integer)):
        return (int(num_samples),)
    return tuple(int(n) for n in num_samples)


def options(estimator) -> tuple[Any, dict[str, Any]]:
    """The function behind ``estimator`` and the keyword options bound to it by partials."""
    keywords: dict[str, Any] = {}
    while isinstance(estimator, functools.partial):
        keywords = {**estimator.keywords, **keywords}
        estimator = estimator.func
    return estimator, keywords


def initial_state(estimator) -> Any:
    """The state ``estimator`` carries across calls (pass it as ``state=``), or None."""
    baseline = options(estimator)[1].get("baseline")
    return None if baseline is None else baseline.init


def score_function(
    f: Integrand,
    mean: np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    num_samples: int | tuple[int, ...],
    *,
    sampling: Sampler = independent,
    with_scale: bool = False,
    baseline: Baseline | None = None,
    control_variate: ControlVariate | None = None,
    state: Any = None,
):
    r"""Score-function (likelihood-ratio, REINFORCE) estimator.

    .. math::

        \hat g_i = (f(z_i) - h(z_i) - b)\,\nabla \log q(z_i) + \nabla E_q[h],
        \qquad z_i = \mu + \sigma\varepsilon_i,

    with scores ∇_μ log q = ε/σ and ∇_σ log q = (ε² − 1)/σ (per coordinate). Plain
    (b = h = 0) it needs only point evaluations of f (no derivative, f may be
    discontinuous). ``baseline`` (:mod:`estimators.baselines`) sets b, ``control_variate``
    (:mod:`estimators.control_variates`) sets h; both leave it unbiased. Unbiased whenever
    E|f(z)|·‖∇ log q(z)‖ < ∞; its variance grows with the magnitude of f, so with
    f(z) = ‖z − x‖² it grows like ‖μ − x‖⁴.
    References: Glynn (1990); Williams (1992); Mohamed et al. (2020), sections 4 and 7.
    """
    d = np.shape(mean)[-1]
    shape = sample_shape(num_samples)
    # "none" options are singletons: compared by identity, the plain path costs nothing extra.
    baseline = None if baseline is baselines.NONE else baseline
    cv = None if control_variate is control_variates.NONE else control_variate
    if baseline is not None and baseline.uses_set and sampling is not independent:
        raise ValueError("a baseline built from the other samples of a set needs independent sampling")
    eps = sampling(rng, shape, d)
    values, score = _score_terms(f, mean, scale, eps, cv, with_scale)
    if baseline is None:
        score *= values[..., None]  # in place: a fresh (N, d) array costs as much as the product
        grads = score
    else:
        # A pilot for the baseline: fresh independent samples, drawn after the base noise.
        def pilot(n: int):
            return _score_terms(f, mean, scale, rng.standard_normal((*shape[:-1], n, d)), cv, with_scale)

        b = baseline.value(values, score, baseline.init if state is None else state, pilot)
        grads = (values[..., None] - b) * score
    if cv is not None:
        g_mean, g_scale = cv.expected_grad(f, mean, scale)
        grads = grads + (np.concatenate([g_mean, g_scale]) if with_scale else g_mean)
    if state is None:
        return grads
    new_state = state if baseline is None or baseline.update is None else baseline.update(state, values)
    return grads, new_state


def _location_scale(mean, scale, eps: np.ndarray) -> np.ndarray:
    """z = μ + σε, in σε's memory when μ broadcasts into it (same values, one array fewer)."""
    z = scale * eps
    try:
        z += mean
    except ValueError:  # μ has more axes than σε: numpy refuses before writing anything
        return mean + scale * eps
    return z


def _score_terms(f, mean, scale, eps, cv, with_scale):
    """f(z) − h(z) at z = μ + σε, and the score ∇ log q(z) (μ, then σ with ``with_scale``)."""
    z = _location_scale(mean, scale, eps)
    values = f(z) if cv is None else f(z) - cv.value(f, mean, scale, z)
    score = eps / scale
    if with_scale:
        score = np.concatenate([score, (eps * eps - 1.0) / scale], axis=-1)
    return values, score


def reparameterization(
    f: Integrand,
    mean: np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    num_samples: int | tuple[int, ...],
    *,
    sampling: Sampler = independent,
    with_scale: bool = False,
) -> np.ndarray:
    r"""Reparameterization (pathwise) estimator.

    With z = g(θ, ε) = μ + σε, ∂z/∂μ = I and ∂z_j/∂σ_j = ε_j,

    .. math::

        \hat g_i = \nabla f(\mu + \sigma\varepsilon_i)\ \text{(mean)},\qquad
        \nabla f(\mu + \sigma\varepsilon_i) \odot \varepsilon_i\ \text{(scale)}.

    Needs f differentiable (``f.grad``) and q reparameterisable. Unbiased when ∇f is
    integrable; its variance is bounded by the smoothness of f (for L-Lipschitz ∇f it is
    at most L²σ²d), independent of how far μ is from the optimum.
    References: Kingma & Welling (2014); Rezende et al. (2014); Mohamed et al. (2020),
    section 5.
    """
    eps = sampling(rng, sample_shape(num_samples), np.shape(mean)[-1])
    grads = f.grad(_location_scale(mean, scale, eps))
    if with_scale:
        return np.concatenate([grads, grads * eps], axis=-1)
    return grads
