r"""Optimizers as (init, update) pairs: the loop owns θ, the optimizer turns a gradient into a step.

``init(theta) -> state``; ``update(grad, state, step_size) -> (delta, state)``; the loop then
sets θ ← θ − delta. Pure functions of their arguments, as in optax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Optimizer(NamedTuple):
    init: Callable[[np.ndarray], Any]
    update: Callable[[np.ndarray, Any, float], tuple[np.ndarray, Any]]


def sgd() -> Optimizer:
    """Plain SGD: delta = α·ĝ."""
    return Optimizer(lambda theta: None, lambda grad, state, step_size: (step_size * grad, state))


def adam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    r"""Adam: m ← β₁m + (1 − β₁)ĝ, v ← β₂v + (1 − β₂)ĝ², delta = α·m̂/(√v̂ + ε).

    m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) correct the zero initialisation. Its step is about α
    per coordinate whatever the gradient's scale, so a step size means something different
    than for SGD. Reference: Kingma & Ba (2015).
    """

    def init(theta):
        return (0, np.zeros_like(theta), np.zeros_like(theta))

    def update(grad, state, step_size):
        t, m, v = state
        t += 1
        m = beta1 * m + (1.0 - beta1) * grad
        v = beta2 * v + (1.0 - beta2) * grad * grad
        m_hat, v_hat = m / (1.0 - beta1**t), v / (1.0 - beta2**t)
        return step_size * m_hat / (np.sqrt(v_hat) + eps), (t, m, v)

    return Optimizer(init, update)
