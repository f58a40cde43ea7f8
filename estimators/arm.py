r"""Antithetic estimators for binary variables: ARM and DisARM, for the Bernoulli family.

Both draw the family's base noise u ~ U(0, 1)^d and evaluate f at an antithetic pair of
samples built from it,

    b = 1[u < σ(φ)],   b̃ = 1[1 − u < σ(φ)],

each exactly Bernoulli(σ(φ)), coupled through u: b_j and b̃_j differ only where
u_j < min(p_j, 1 − p_j) or u_j > max(p_j, 1 − p_j). One sample of these estimators is one pair: ``num_samples`` N
costs 2N evaluations of f. Neither needs ∇f or a relaxation of f.

ARM augments the Bernoulli with its uniform noise, applies the score function to the
logistic variable behind it and merges the two antithetic halves; DisARM integrates the
augmenting u out given the pair (b, b̃), a Rao–Blackwellization of ARM: the same pair,
the same cost, and per coordinate a variance never above ARM's.

Sampling: u may come from any scheme that gives it the uniform marginal, and each pair is
then exact. Under ``antithetic`` the set's rows u and 1 − u give the same pair with b and
b̃ exchanged, and the same estimate (for either estimator), so a set of N holds N/2
distinct pairs: unbiased, at twice the variance of independent pairs.

References: Yin & Zhou, "ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary
Networks", ICLR 2019 (section 2); Dong, Mnih & Tucker, "DisARM: An Antithetic Gradient
Estimator for Binary Latent Variables", NeurIPS 2020 (section 3).
"""

from __future__ import annotations

import numpy as np

from estimators.core import needs, sample_shape
from estimators.families import sigmoid
from estimators.sampling import independent


def pair(f, family, params, rng, shape: tuple[int, ...], sampling):
    """u, and f at the antithetic pair b = 1[u < σ(φ)], b̃ = 1[1 − u < σ(φ)] with the pair itself."""
    u = family.noise(sampling, rng, shape, params)
    b, b_tilde = family.sample(params, u), family.sample(params, 1.0 - u)
    # One call of f on both halves: one pass over the batch instead of two.
    values = f(np.stack([b, b_tilde]))
    return u, b, b_tilde, values[0], values[1]


@needs(families=("bernoulli",), cost=2)
def arm(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent) -> np.ndarray:
    r"""ARM estimator of ∂/∂φ E f(b), b_j ~ Bernoulli(σ(φ_j)): per coordinate j,

    .. math::  \hat g_j = \big(f(\tilde b) - f(b)\big)\,(u_j - \tfrac12),
               \quad b = 1[u < σ(φ)],\ \tilde b = 1[1 - u < σ(φ)],\ u \sim U(0, 1)^d.

    Yin & Zhou (section 2) write it (f(1[u > σ(−φ)]) − f(1[u < σ(φ)]))(u − ½): the first
    point 1[u > σ(−φ)] = 1[1 − u < σ(φ)] is b̃, the second is b (not the complement
    1[u < σ(−φ)] of the first, whose other coordinates would be Bernoulli(1 − p): biased).
    Unbiased for any f on {0, 1}^d: u_j is independent of the other coordinates, and
    E[(u_j − ½)·1[u_j > 1 − p_j]] = −E[(u_j − ½)·1[u_j < p_j]] = p_j(1 − p_j)/2, so
    E ĝ_j = p_j(1 − p_j)(E[f | b_j = 1] − E[f | b_j = 0]). Needs point evaluations of f,
    two per sample (N samples are N pairs, 2N evaluations), and a Bernoulli family.
    Reference: Yin & Zhou (2019).
    """
    u, _, _, f_b, f_tilde = pair(f, family, params, rng, sample_shape(num_samples), sampling)
    u -= 0.5  # in place: u is not needed again
    u *= (f_tilde - f_b)[..., None]
    return u


@needs(families=("bernoulli",), cost=2)
def disarm(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent) -> np.ndarray:
    r"""DisARM estimator of ∂/∂φ E f(b), b_j ~ Bernoulli(σ(φ_j)): per coordinate j,

    .. math::  \hat g_j = \tfrac12\big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b_j}\,
               1[b_j \ne \tilde b_j]\,σ(|φ_j|),

    on the same antithetic pair as :func:`arm` (Dong, Mnih & Tucker (2020), section 3; also
    written ½(f(b̃) − f(b))(−1)^{b_j}1[b_j ≠ b̃_j]σ(|φ_j|), the same value). It is
    E[ĝ_ARM,j | b, b̃]: given the pair, u_j is uniform on the cell where (b_j, b̃_j) is what
    it is, the mean of (u_j − ½) there is ∓max(p_j, 1 − p_j)/2 for (1, 0) and (0, 1) and 0
    where they agree, and the other coordinates depend on u_j only through b_j, b̃_j. So it
    is unbiased where ARM is, its variance is ARM's less E Var[ĝ_ARM,j | b, b̃], and it is 0
    whenever b_j = b̃_j. As (−1)^{b̃_j}1[b_j ≠ b̃_j] = b_j − b̃_j, it is computed as
    ½(f(b) − f(b̃))(b_j − b̃_j)σ(|φ_j|). Needs two evaluations of f per sample (N pairs, 2N
    evaluations) and a Bernoulli family. Reference: Dong, Mnih & Tucker (2020).
    """
    _, b, b_tilde, f_b, f_tilde = pair(f, family, params, rng, sample_shape(num_samples), sampling)
    b -= b_tilde  # in place: b_j − b̃_j ∈ {−1, 0, 1}
    b *= (0.5 * (f_b - f_tilde))[..., None]
    b *= sigmoid(np.abs(params.logits))
    return b
