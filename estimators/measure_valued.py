r"""The measure-valued gradient estimator, for any family with a weak-derivative decomposition.

The derivative of a density with respect to a parameter is a signed measure, and splits
as the difference of two probability densities over a constant,

    ∂_θ q_θ(z) = (q⁺_θ(z) − q⁻_θ(z))/c_θ,   so   ∂_θ E_q[f] = (E_{q⁺}[f] − E_{q⁻}[f])/c_θ.

The family supplies q^± per learned coordinate (:meth:`estimators.families.Gaussian.
weak_derivative`: Weibull for the mean, double-sided Maxwell against Normal for the scale;
Bernoulli: b_j set to 1 and to 0). Each sample costs two evaluations of f per learned
coordinate (fewer where q⁻ is shared). Needs only point evaluations of f (f may be
non-differentiable), and is unbiased whenever f is integrable under q^±. With
``coupling`` the two parts share their random numbers, which is what keeps the variance
bounded as f becomes flat or rough; without it the parts are independent.

Reference: Pflug (1989); Heidergott & Vázquez-Abad (2008); Mohamed et al. (2020),
section 6, table 1 and section 7.3 (coupling).
"""

from __future__ import annotations

import numpy as np

from estimators.core import needs, sample_shape
from estimators.families import WeakDifferentiable
from estimators.sampling import independent


def _cost(family, params, coupling: bool = True) -> int:
    """Points of f per sample: each term's q⁺ and q⁻ points (one q⁻ where it is shared), read
    off the decomposition's shapes (..., k, *event) at one sample."""
    terms = family.weak_derivative(params, np.random.default_rng(0), (1,), independent, coupling)
    return sum(t.plus.shape[-2] + t.minus.shape[-2] for t in terms)


def _per_datum(f, points: np.ndarray, batch: int) -> np.ndarray:
    """f at ``points`` (..., *batch, k, d) as (..., *batch, k): with a batch, the coordinate axis k
    goes before the batch axes while f runs, since f reads the axes before d as (..., *batch)."""
    if not batch:
        return f(points)
    return np.moveaxis(f(np.moveaxis(points, -2, -2 - batch)), -1 - batch, -1)


@needs(WeakDifferentiable, cost=_cost)
def measure_valued(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent,
                   coupling: bool = True) -> np.ndarray:
    r"""Measure-valued derivative estimator: per learned coordinate j,

    .. math::  \hat g_j = \big(f(z^{+}_j) - f(z^{-}_j)\big) / c_j,\qquad z^\pm_j \sim q^\pm_j.

    Gaussian mean: c_j = σ_j√(2π), z^±_j = (μ + σε) with z_j = μ_j ± σ_jW; scale: c_j = σ_j,
    z^M against z^N. Unbiased for any integrable f. Reference: Mohamed et al. (2020), section 6.
    """
    terms = family.weak_derivative(params, rng, sample_shape(num_samples), sampling, coupling)
    batch = len(getattr(family, "batch_shape", ()))
    grads = [(_per_datum(f, t.plus, batch) - _per_datum(f, t.minus, batch)) / t.divisor for t in terms]
    return grads[0] if len(grads) == 1 else np.concatenate(grads, axis=-1)
