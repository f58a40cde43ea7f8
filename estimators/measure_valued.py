r"""Measure-valued gradient estimators for the mean and scale of a Gaussian.

The derivative of a density with respect to a parameter is a signed measure, and splits
as a constant times the difference of two probability densities,

    ∂_θ q_θ(z) = c_θ·(q⁺_θ(z) − q⁻_θ(z)),   so   ∂_θ E_q[f] = c_θ·(E_{q⁺}[f] − E_{q⁻}[f]).

For q = N(μ, diag σ²), coordinate j, with ε ~ N(0, I) for the other coordinates:

* mean (Weibull decomposition): c = 1/(σ_j√(2π)); q^± put μ_j ± σ_j·W in coordinate j,
  W ~ Weibull(2, √2) (Rayleigh, density w·e^{−w²/2} on w > 0).
* scale (double-sided Maxwell against Normal): c = 1/σ_j; q⁺ puts μ_j + σ_j·M in
  coordinate j, M ~ double-sided Maxwell (density m²φ(m)), and q⁻ is q itself.

Each sample thus costs 2d evaluations of f per block. Needs only point evaluations of f
(f may be non-differentiable), and is unbiased whenever f is integrable under q^±.
With ``coupling`` the two parts share their random numbers: the same background ε and,
for the mean, the same W; for the scale the negative part takes M·U with U ~ U(0, 1),
which is N(0, 1) when M is double-sided Maxwell. Without it the parts are independent.

The background ε is the base noise the other estimators draw (same generator state, same
ε); the other variates come from standard normals n of the chosen scheme through exact
inverse-CDF maps (W = √(−2 log(1 − Φ(n))), M = sign(n)·√(2·Q⁻¹(3/2, P(|N| > |n|))),
U = Φ(n)), so antithetic and quasi-Monte Carlo schemes apply to them as well.

Reference: Pflug (1989); Heidergott & Vázquez-Abad (2008); Mohamed et al. (2020),
section 6, table 1 and section 7.3 (coupling).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc, gammainccinv, log_ndtr, ndtr

from estimators.gaussian import Integrand, sample_shape
from estimators.sampling import Sampler, independent


def rayleigh(n: np.ndarray) -> np.ndarray:
    """Weibull(2, √2) variates from standard normals n, monotone in n (inverse CDF of Φ(n))."""
    return np.sqrt(-2.0 * log_ndtr(-n))


def double_sided_maxwell(n: np.ndarray) -> np.ndarray:
    """Double-sided Maxwell variates (density m²φ(m)) from standard normals n: P(|M| > m) = P(|N| > |n|)."""
    # The tail probability underflows beyond |n| ≈ 38; the floor keeps M finite there.
    tail = np.maximum(erfc(np.abs(n) / math.sqrt(2.0)), np.finfo(float).tiny)
    return np.sign(n) * np.sqrt(2.0 * gammainccinv(1.5, tail))


def _replace_diagonal(background: np.ndarray, coordinate: np.ndarray) -> np.ndarray:
    """(..., d, d): row j is ``background`` with coordinate j set to ``coordinate[..., j]``."""
    d = background.shape[-1]
    return np.where(np.eye(d, dtype=bool), coordinate[..., None, :], background[..., None, :])


def measure_valued(
    f: Integrand,
    mean: np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    num_samples: int | tuple[int, ...],
    *,
    sampling: Sampler = independent,
    with_scale: bool = False,
    coupling: bool = True,
) -> np.ndarray:
    r"""Measure-valued derivative estimator (see the module docstring for the decompositions).

    .. math::

        \hat g_{\mu_j} = \frac{f(z^{+}_j) - f(z^{-}_j)}{\sigma_j\sqrt{2\pi}},\quad
        z^{\pm}_j = (\mu + \sigma\varepsilon)\ \text{with}\ z_j = \mu_j \pm \sigma_j W;
        \qquad
        \hat g_{\sigma_j} = \frac{f(z^{M}_j) - f(z^{N}_j)}{\sigma_j}.

    Unbiased for any integrable f; with ``coupling`` its variance stays bounded as f
    becomes rough or flat, where the score function's does not.
    Reference: Mohamed et al. (2020), section 6.
    """
    shape = sample_shape(num_samples)
    d = np.shape(mean)[-1]
    sigma = np.broadcast_to(np.asarray(scale, dtype=float), (d,))
    widths = (2 if coupling else 4) + ((2 if coupling else 1) if with_scale else 0)
    # The background ε is drawn first and alone, as every estimator draws its base noise, so
    # runs that differ only in the estimator share it; then the other variates in one block.
    eps = sampling(rng, shape, d)
    n = [eps, *np.split(sampling(rng, shape, (widths - 1) * d), widths - 1, axis=-1)]
    if coupling:
        eps_plus = eps_minus = n[0]
        w_plus = w_minus = rayleigh(n[1])
    else:
        eps_plus, eps_minus, w_plus, w_minus = n[0], n[1], rayleigh(n[2]), rayleigh(n[3])
    background_plus, background_minus = mean + sigma * eps_plus, mean + sigma * eps_minus
    f_plus = f(_replace_diagonal(background_plus, mean + sigma * w_plus))
    f_minus = f(_replace_diagonal(background_minus, mean - sigma * w_minus))
    grads = (f_plus - f_minus) / (sigma * math.sqrt(2.0 * math.pi))
    if not with_scale:
        return grads
    m = double_sided_maxwell(n[-2] if coupling else n[-1])
    f_maxwell = f(_replace_diagonal(background_plus, mean + sigma * m))
    if coupling:
        f_normal = f(_replace_diagonal(background_plus, mean + sigma * m * ndtr(n[-1])))
    else:
        f_normal = f(background_minus)[..., None]  # q⁻ = q: the same for every coordinate
    return np.concatenate([grads, (f_maxwell - f_normal) / sigma], axis=-1)
