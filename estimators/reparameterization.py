r"""The reparameterization (pathwise) estimator, for any family with dz/dθ."""

from __future__ import annotations

import numpy as np

from estimators.core import needs, sample_shape
from estimators.families import Reparameterizable
from estimators.sampling import independent


@needs(Reparameterizable, grad=True, cost=1)
def reparameterization(f, family, params, rng: np.random.Generator, num_samples, *,
                       sampling=independent) -> np.ndarray:
    r"""Pathwise estimator: with z = g(θ, ε), ε from the family's base noise,

    .. math::  \hat g_i = \nabla_z f(z_i)^\top \frac{\partial g(\theta, \varepsilon_i)}{\partial \theta}.

    (Gaussian: ∇f(μ + σε) for the mean, ∇f ⊙ ε for the scale.) Needs f differentiable
    (``f.grad``) and a family that provides ∂z/∂θ (explicitly, or implicitly from its CDF).
    Unbiased when ∇f is integrable; its variance is bounded by the smoothness of f (for a
    Gaussian and L-Lipschitz ∇f, at most L²σ²d), however far θ is from the optimum.
    References: Kingma & Welling (2014); Rezende et al. (2014); Figurnov et al. (2018);
    Mohamed et al. (2020), section 5.
    """
    eps = family.noise(sampling, rng, sample_shape(num_samples), params)
    z = family.sample(params, eps)
    return family.pathwise(params, z, eps, f.grad(z))
