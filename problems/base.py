r"""What a problem is, and what it may know exactly.

A problem is an integrand f (``problem(z)``, with ``grad`` and ``hessian`` where f has
them), the distribution family q_θ it is studied under, and a start θ₀ (:class:`Problem`).
What it knows beyond that it declares by having the matching member (the optional
capabilities below), never by returning a stand-in value: the loop logs a distance curve
only for a problem with an optimum, an exact variance only for an estimator configuration
the problem has a closed form for, and the problem's own curves by the names it declares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from estimators.core import Spec
from estimators.families import Family


@runtime_checkable
class Problem(Protocol):
    family: Family  # q_θ, learning its default blocks
    params0: Any  # θ₀, the family's parameters (a NamedTuple, one field per block)
    length_scale: float  # the unit of the divergence bound (see experiments.sgd.run_sgd)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """f at each row of ``z``."""

    def loss(self, params) -> float:
        """L(θ) = E_q[f] at ``params``, exactly where the problem knows it."""


@runtime_checkable
class HasOptimum(Protocol):
    """A known minimiser x of L in the family's first block (the location): ``optimum`` is
    x, or None for an instance without one; ``distance`` is ‖x − θ₀‖ in that block."""

    optimum: np.ndarray | None
    distance: float


@runtime_checkable
class HasExactGradient(Protocol):
    def exact_grad(self, params):
        """∇L at ``params``, one entry per block of the family (a NamedTuple like ``params``)."""


@runtime_checkable
class HasExactVariance(Protocol):
    def exact_variance(self, config: Spec, family: Family, params, samples: int) -> Mapping[str, float]:
        """tr Cov of the ``samples``-sample estimate per learned block, for the estimator
        configuration ``config`` (:func:`estimators.describe`); a block left out is unknown."""


@runtime_checkable
class HasExactBias(Protocol):
    def exact_bias(self, config: Spec, family: Family, params) -> float | None:
        """‖E ĝ − ∇L‖² of a biased estimator's configuration ``config`` (the same for any N),
        or None where nobody derived it. Unbiased estimators need none: theirs is 0."""


@runtime_checkable
class HasCurves(Protocol):
    curves: tuple[str, ...]  # names of the extra curves it logs (the report reads them by these names)

    def curve_values(self, params) -> Mapping[str, float]:
        """Each of ``curves`` at ``params``."""


@runtime_checkable
class HasAnalyticGrad(Protocol):
    def analytic_grad(self, family: Family, params) -> np.ndarray:
        """A part of ∇L known exactly (an entropy term), for the learned blocks, flat: it is
        added to the estimate of the rest instead of being estimated."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """A problem's check of its own config key, in ``__post_init__``: the harness turns the
    ValueError into its one-line refusal before anything is written."""
    if not ok:
        raise ValueError(f"invalid problem.{key}={value!r}: allowed: {allowed}")


def require_int(problem, key: str, least: int) -> None:
    """``problem.<key>`` is an integer >= ``least``."""
    value = getattr(problem, key)
    require(isinstance(value, int) and not isinstance(value, bool) and value >= least, key, value,
            f"an integer >= {least}")


def require_finite(problem, *keys: str) -> None:
    """Each ``problem.<key>`` is a finite number."""
    for key in keys:
        value = getattr(problem, key)
        require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), key, value,
                "a finite number")


def optimum(problem) -> np.ndarray | None:
    """The problem's optimum x, or None where it has none."""
    return getattr(problem, "optimum", None) if isinstance(problem, HasOptimum) else None


@runtime_checkable
class Trainable(Protocol):
    r"""A problem that trains a model (:func:`experiments.training.run_training`): parameters θ beyond
    the family's, data in minibatches, and one distribution per datum.

    At θ and a minibatch x, ``integrand(θ, x)`` gives the integrand f and the family's parameters
    per datum (the family has ``batch_shape`` (B,)); the estimator estimates ∇ E_q[f] in those
    parameters per datum, and ``backward(θ, x, g, params, z)`` turns that estimate ``g`` (B, k)
    into ∇θ: the chain rule for the part of θ that makes the distribution, and the exact
    gradient of the rest given the samples z (N, B, d) the estimate drew.
    """

    family: Family  # one distribution per datum of a minibatch
    curves: tuple[str, ...]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """θ₀, flat, from ``rng``."""

    def minibatches(self, rng: np.random.Generator):
        """An endless iterator of minibatches, drawn from ``rng``."""

    @property
    def probe_batch(self) -> np.ndarray:
        """The fixed minibatch on which the variance probe measures the estimate."""

    def integrand(self, theta: np.ndarray, x: np.ndarray) -> tuple[Any, Any]:
        """(f, the family's parameters per datum) at θ for the minibatch ``x``."""

    def encoder_grad(self, x: np.ndarray, g: np.ndarray, params) -> np.ndarray:
        """The chain rule alone: ∇ of the part of θ that makes the distribution, (..., m), from
        per-datum gradients ``g`` (..., B, k) in the family's parameters ``params``."""

    def backward(self, theta: np.ndarray, x: np.ndarray, g: np.ndarray, params, z: np.ndarray) -> np.ndarray:
        """∇θ of the minibatch's mean objective, flat."""

    def loss(self, theta: np.ndarray, rng: np.random.Generator) -> float:
        """The objective at θ (an estimate from ``rng`` where it is not known exactly)."""

    def curve_values(self, theta: np.ndarray, rng: np.random.Generator) -> Mapping[str, float]:
        """Each of ``curves`` at θ, from ``rng``, and ``loss``: what :meth:`loss` gives from a
        generator in ``rng``'s state (the training loop logs the curves without a second evaluation)."""
