r"""Control variates: a surrogate h of f whose expected gradient is known, wrapped around an estimator.

    ĝ = estimator(f − h) + ∇_θ E_q[h]

is unbiased for ∇E_q[f] whenever the wrapped estimator is unbiased for ∇E_q[f − h], and of
low variance where h tracks f (as optax's control variates wrap a gradient estimator).
A control variate is a small tuple::

    surrogate(f, family, params) -> h, an integrand (h(z), h.grad(z))
    expected_grad(h, family, params) -> ∇_θ E_q[h] for the learned blocks, shape (k,)
    families                         the families whose E_q[h] it knows
    evaluations                      of f, ∇f or ∇²f per estimate that building h costs

Reference: Mohamed et al. (2020), section 7.2 (control variates); Paisley, Blei, Jordan
(2012); Miller, Foti, D'Amour, Adams (2017).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from estimators.core import Inapplicable, Wrapper


class ControlVariate(NamedTuple):
    surrogate: Callable[..., Any]
    expected_grad: Callable[..., np.ndarray]
    families: tuple[str, ...] = ()
    name: str = "unnamed"
    order: int = 1  # outermost: a baseline inside it sees the residual f − h
    evaluations: int = 0

    def wrap(self, estimator):
        """``estimator`` with this control variate; None for no control variate (h = 0)."""
        return None if self.surrogate is _no_surrogate else WithControlVariate(estimator, self)


def _no_surrogate(f, family, params):
    return None


NONE = ControlVariate(_no_surrogate, lambda f, family, params: None, name="none")


def none() -> ControlVariate:
    """h = 0: the estimator as it is."""
    return NONE


class Residual:
    """The integrand f − h, with its gradient where both have one."""

    def __init__(self, f, h) -> None:
        self.f, self.h = f, h

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.f(z) - self.h(z)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return self.f.grad(z) - self.h.grad(z)


@dataclass(frozen=True)
class WithControlVariate(Wrapper):
    estimator: Any
    control_variate: ControlVariate

    @property
    def entries(self) -> dict[str, Any]:
        return {"control_variate": self.control_variate.name}

    def evaluations(self, family, params) -> float:
        return float(self.control_variate.evaluations)

    def check(self, family, sampling: str, f=None) -> None:
        if family.name not in self.control_variate.families:
            raise Inapplicable(f"control_variate={self.control_variate.name} knows E_q[h] for the "
                               f"{', '.join(self.control_variate.families)} family only, not {family.name}")
        if getattr(family, "batch_shape", ()):
            raise Inapplicable(f"control_variate={self.control_variate.name} expands f around one mean; "
                               "it does not apply to a batch of distributions")

    def __call__(self, f, family, params, rng, num_samples, *, state: Any = None):
        cv = self.control_variate
        surrogate = cv.surrogate(f, family, params)
        residual = Residual(f, surrogate)
        if state is None:
            grads, new_state = self.estimator(residual, family, params, rng, num_samples), None
        else:
            grads, new_state = self.estimator(residual, family, params, rng, num_samples, state=state)
        grads = grads + cv.expected_grad(surrogate, family, params)
        return grads if state is None else (grads, new_state)


class _Taylor:
    """h(z) = f(μ) + ∇f(μ)ᵀ(z − μ) + ½(z − μ)ᵀ∇²f(μ)(z − μ), with μ held fixed."""

    def __init__(self, f, mean: np.ndarray) -> None:
        self.mean, self.value, self.g, self.h = mean, f(mean), f.grad(mean), f.hessian(mean)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        r = z - self.mean
        return self.value + r @ self.g + 0.5 * np.einsum("...i,ij,...j->...", r, self.h, r)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return self.g + (z - self.mean) @ self.h


def _delta_surrogate(f, family, params):
    return _Taylor(f, params.mean)


def _delta_expected_grad(h: _Taylor, family, params):
    # E h = f(μ₀) + ½ Σ_j H_jj σ_j² with the expansion point μ₀ held fixed at μ.
    g_mean = np.array(h.g, dtype=float)
    if not family.learn_scale:
        return g_mean
    return np.concatenate([g_mean, np.diagonal(h.h) * params.scale])


def delta() -> ControlVariate:
    r"""The delta-method control variate: f's second-order Taylor expansion at the mean.

    h(z) = f(μ) + ∇f(μ)ᵀ(z − μ) + ½(z − μ)ᵀ∇²f(μ)(z − μ), with μ held fixed. Under
    q = N(μ, diag σ²) its expected gradients are known: ∇_μ E h = ∇f(μ) and
    ∂E h/∂σ_j = [∇²f(μ)]_jj σ_j (Gaussian families only). Needs ``f.grad`` and ``f.hessian``
    at the mean (one evaluation each per estimate); exact, so of zero variance, when f is
    quadratic. Costs f, ∇f and ∇²f at the mean once per estimate, whatever N.
    Reference: Paisley et al. (2012); Mohamed et al. (2020), section 7.2.2.
    """
    return ControlVariate(_delta_surrogate, _delta_expected_grad, families=("gaussian",), name="delta",
                          evaluations=3)
