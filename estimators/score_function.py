r"""The score-function (likelihood-ratio, REINFORCE) estimator, for any family."""

from __future__ import annotations

import numpy as np

from estimators.core import needs, sample_shape
from estimators.sampling import independent


def terms(f, family, params, rng, shape: tuple[int, ...], sampling) -> tuple[np.ndarray, np.ndarray]:
    """f(z_i) (shape (*shape,)) and the scores ∇_θ log q(z_i) (shape (*shape, k)), z_i from the base noise."""
    eps = family.noise(sampling, rng, shape, params)
    z = family.sample(params, eps)
    return f(z), family.score(params, z, eps)


@needs(cost=1)
def score_function(f, family, params, rng: np.random.Generator, num_samples, *, sampling=independent) -> np.ndarray:
    r"""Score-function estimator: ĝ_i = f(z_i)·∇_θ log q_θ(z_i), z_i ~ q_θ.

    Unbiased whenever E|f(z)|·‖∇ log q(z)‖ < ∞, since ∇E_q f = E_q[f ∇ log q]. Needs only
    point evaluations of f (no derivative; f may be discontinuous, z discrete) and the
    family's score: it applies to every family. Its variance grows with the magnitude of f
    (for a Gaussian and f(z) = ‖z − x‖², like ‖μ − x‖⁴); baselines and control variates
    (:mod:`estimators.baselines`, :mod:`estimators.control_variates`) wrap it to reduce it.
    References: Glynn (1990); Williams (1992); Mohamed et al. (2020), section 4.
    """
    values, score = terms(f, family, params, rng, sample_shape(num_samples), sampling)
    score *= values[..., None]  # in place: a fresh (N, k) array costs as much as the product
    return score


score_function.terms = terms  # what a baseline builds on (estimators.baselines.WithBaseline)
