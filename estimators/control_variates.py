r"""Control variates for the score-function estimator.

A control variate is a surrogate h of f whose score-function term has a known expectation:

    ĝ_i = (f(z_i) − h(z_i))·∇ log q(z_i) + ∇ E_q[h],

unbiased for ∇ E_q[f] whatever h is, and of low variance where h tracks f. As a tuple::

    value(f, mean, scale, z) -> h(z), shape z.shape[:-1]
    expected_grad(f, mean, scale) -> (∇_μ E h, ∇_σ E h), each shape (d,)

Reference: Mohamed et al. (2020), section 7.2 (control variates); Paisley, Blei, Jordan
(2012); Miller, Foti, D'Amour, Adams (2017).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class ControlVariate(NamedTuple):
    value: Callable[..., np.ndarray]
    expected_grad: Callable[..., tuple[np.ndarray, np.ndarray]]


def _zero_value(f, mean, scale, z):
    return np.zeros(np.shape(z)[:-1])


def _zero_grad(f, mean, scale):
    d = np.shape(mean)[-1]
    return np.zeros(d), np.zeros(d)


NONE = ControlVariate(_zero_value, _zero_grad)


def none() -> ControlVariate:
    """h = 0: the plain score-function estimator."""
    return NONE


def _delta_value(f, mean, scale, z):
    r = z - mean
    g, h = f.grad(mean), f.hessian(mean)
    return f(mean) + r @ g + 0.5 * np.einsum("...i,ij,...j->...", r, h, r)


def _delta_expected_grad(f, mean, scale):
    # E h = f(μ₀) + ½ Σ_j H_jj σ_j² with the expansion point μ₀ held fixed at μ.
    return np.array(f.grad(mean), dtype=float), np.diagonal(f.hessian(mean)) * scale


def delta() -> ControlVariate:
    r"""The delta-method control variate: f's second-order Taylor expansion at the mean.

    h(z) = f(μ) + ∇f(μ)ᵀ(z − μ) + ½(z − μ)ᵀ∇²f(μ)(z − μ), with μ held fixed. Under
    q = N(μ, diag σ²) its expected gradients are known: ∇_μ E h = ∇f(μ) and
    ∂E h/∂σ_j = [∇²f(μ)]_jj σ_j. Needs ``f.grad`` and ``f.hessian`` at the mean (one
    evaluation each per estimate); exact, so of zero variance, when f is quadratic.
    Reference: Paisley et al. (2012); Mohamed et al. (2020), section 7.2.2.
    """
    return ControlVariate(_delta_value, _delta_expected_grad)
