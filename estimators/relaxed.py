r"""Estimators through a continuous relaxation of a discrete sample: Gumbel-softmax,
straight-through Gumbel-softmax, REBAR.

A relaxable family (:class:`estimators.families.Relaxable`: Bernoulli, Categorical) draws
its base noise u once and gives from it both the discrete sample z = H(z̃) (``sample``) and
a continuous z̃ = g_τ(θ, u) at temperature τ (``relax``), with the vector–Jacobian product
∇f(z̃)ᵀ∂z̃/∂θ in closed form (``relaxed_pathwise``). The first two estimators differentiate
the relaxed problem instead of the discrete one: biased (marked so, for the loop's bias
probe), the bias shrinking as τ → 0 while the variance grows like 1/τ. REBAR uses the
relaxation only as a control variate for the score function: unbiased at every τ.

All need ∇f at relaxed points (f defined on the convex hull of the discrete values:
[0, 1]^d, or the simplex per row), so f must extend beyond its discrete domain.

References: Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR
2017; Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017; Bengio, Léonard &
Courville, "Estimating or Propagating Gradients Through Stochastic Neurons", 2013; Tucker,
Mnih, Maddison, Lawson & Sohl-Dickstein, "REBAR", NeurIPS 2017.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from estimators.core import needs, sample_shape
from estimators.families import Relaxable, sigmoid
from estimators.sampling import independent


def _number(value, key: str, positive: bool) -> float:
    """``value`` as a float, or the harness's one-line refusal naming ``estimator.<key>``."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ValueError(f"invalid estimator.{key}={value!r}: allowed: a finite number{' > 0' if positive else ''}")
    return float(value)


@needs(Relaxable, grad=True, biased=True, cost=1)
def gumbel_softmax(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent,
                   temperature: float = 1.0) -> np.ndarray:
    r"""Gumbel-softmax (Concrete) estimator: the pathwise gradient of the relaxed problem,

    .. math::  \hat g_i = \nabla f(\tilde z_i)^\top \frac{\partial \tilde z_i}{\partial \theta},
               \quad \tilde z_i = g_\tau(\theta, u_i),

    z̃ = softmax((φ + g)/τ) per row for a categorical (g Gumbel, Jang et al. eq. 2),
    σ((φ + L)/τ) for a Bernoulli (L logistic, binary Concrete). An unbiased estimate of
    ∇_θ E f(z̃), not of ∇_θ E f(z): biased for the discrete problem in general, linear f
    included (E z̃ ≠ E z for τ > 0). τ = ``temperature`` > 0, default 1 (Jang et al. anneal
    from 1 downwards): a lower τ brings z̃ nearer z and the bias down, and the variance up,
    like 1/τ (∂z̃/∂θ peaks at height 1/τ on a set of width τ). Needs a relaxable family and
    ∇f on the relaxed domain. References: Jang, Gu & Poole (2017), section 2; Maddison,
    Mnih & Teh (2017), section 3.
    """
    tau = _number(temperature, "temperature", positive=True)
    eps = family.noise(sampling, rng, sample_shape(num_samples), params)
    relaxed = family.relax(params, eps, tau)
    return family.relaxed_pathwise(params, relaxed, tau, f.grad(relaxed))


@needs(Relaxable, grad=True, biased=True, cost=1)
def straight_through(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent,
                     temperature: float = 1.0) -> np.ndarray:
    r"""Straight-through Gumbel-softmax: ∇f at the hard sample, passed back through the
    relaxed sample's Jacobian,

    .. math::  \hat g_i = \nabla f(H(\tilde z_i))^\top \frac{\partial \tilde z_i}{\partial \theta},
               \quad H(\tilde z_i) = z_i \text{ (one-hot argmax, or } 1[\tilde z > ½]).

    f and ∇f are evaluated only at discrete points (the forward pass is the discrete
    model's), but ∇f must exist there as the gradient of an extension of f. Biased at every
    τ > 0, and in general also as τ → 0: for a Bernoulli its mean then tends to
    p_j(1 − p_j)·E[(∂_j f(b_j = 0) + ∂_j f(b_j = 1))/2] instead of p_j(1 − p_j)·E[f(b_j = 1) −
    f(b_j = 0)], equal only where f is at most quadratic in b_j. Same ``temperature`` as
    :func:`gumbel_softmax`.
    References: Bengio, Léonard & Courville (2013); Jang, Gu & Poole (2017), section 2.2.
    """
    tau = _number(temperature, "temperature", positive=True)
    eps = family.noise(sampling, rng, sample_shape(num_samples), params)
    relaxed = family.relax(params, eps, tau)
    return family.relaxed_pathwise(params, relaxed, tau, f.grad(family.sample(params, eps)))


@needs(Relaxable, families=("bernoulli",), grad=True, cost=3)
def rebar(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent,
          temperature: float = 0.5, eta: float = 1.0) -> np.ndarray:
    r"""REBAR: the score function with the relaxation as control variate, for Bernoulli b.

    With z = φ + L (L = log(1 − u) − log u logistic, b = H(z) = 1[z > 0]), z̃ ~ p(z | b) and
    σ_λ(x) = σ(x/λ),

    .. math::  \hat g = \big[f(b) - \eta f(\sigma_\lambda(\tilde z))\big]\,\nabla_\phi \log p(b)
               + \eta\,\nabla_\phi f(\sigma_\lambda(z)) - \eta\,\nabla_\phi f(\sigma_\lambda(\tilde z)).

    Unbiased for every λ > 0 and η: E[f(σ_λ(z̃)) ∇log p(b)] + E[∇_φ f(σ_λ(z̃))] (b held,
    z̃ reparameterized given b) is ∇_φ E f(σ_λ(z)), which the middle term estimates.

    z̃ given b, from the same u (tied noise, as in the authors' implementation): u given b is
    uniform on [0, p) or [p, 1), so v = u/p (b = 1) or (u − p)/(1 − p) (b = 0) is U(0, 1) and
    independent of b, and z̃ = φ + L(u'), u' = vp or p + v(1 − p), reparameterizes z | b
    with v fixed. Its value is z itself; its derivative is not: ∂z̃/∂φ = 1 − (1 − p)/(1 − u)
    (b = 1) or 1 − p/u (b = 0), against ∂z/∂φ = 1. So, per coordinate j, with the binary
    Concrete's ∂σ_λ(z)/∂φ_j = s_j(1 − s_j)/λ, s = σ_λ(z):

        ĝ_j = [f(b) − η f(s)](b_j − p_j) + η ∂_j f(s)·s_j(1 − s_j)/λ·w_j,
        w_j = (1 − p_j)/(1 − u_j) if b_j = 1,  p_j/u_j if b_j = 0.

    λ = ``temperature`` > 0 (default 0.5) and η = ``eta`` (default 1) are fixed, not adapted
    online as Tucker et al. do by descending the estimator's variance: that needs ∂ĝ/∂λ,
    which brings in ∇²f at the relaxed point, and carries (η, λ) across steps as state with
    its own step size. Needs ∇f on [0, 1]^d and a Bernoulli family. Reference: Tucker et
    al. (2017), section 3 (the estimator, and z̃ | b for Bernoulli variables).
    """
    lam = _number(temperature, "temperature", positive=True)
    eta = _number(eta, "eta", positive=False)
    u = family.noise(sampling, rng, sample_shape(num_samples), params)
    b = family.sample(params, u)
    s = family.relax(params, u, lam)
    values = f(np.stack([b, s]))  # one call of f on both: one pass over the batch instead of two
    p = sigmoid(params.logits)
    # The floors keep the branch np.where discards finite (u = 0 or 1 have probability ~2⁻⁵³,
    # and there σ_λ saturates, so the term they multiply is 0).
    tiny = np.finfo(float).tiny
    w = np.where(b > 0.5, (1.0 - p) / np.maximum(1.0 - u, tiny), p / np.maximum(u, tiny))
    grads = family.score(params, b, u)
    grads *= (values[0] - eta * values[1])[..., None]
    grads += eta * w * family.relaxed_pathwise(params, s, lam, f.grad(s))
    return grads
