r"""What every estimator shares: its signature, its configuration, and where it applies.

An estimator approximates ∇_θ L, L(θ) = E_{z ~ q_θ}[f(z)], for a distribution family q
(:mod:`estimators.families`) at parameters θ, with one signature::

    estimator(f, family, params, rng, num_samples, *, sampling=independent, ...)
        -> array of shape (*shape, k)

``shape = (num_samples,)`` for an int, or ``num_samples`` itself for a shape ``(V, N)``:
V independent sets of N samples in one vectorised call. Row i of a set is the gradient
estimate from the i-th sample alone, so the mean over the set's axis is the N-sample
estimate an optimizer uses, and the spread across sets is its variance. k is the size of
the family's learned blocks, concatenated in order. A family with a ``batch_shape`` (one
distribution per datum, :mod:`estimators.families`) gives (*shape, *batch_shape, k): per datum.

Base noise comes first, from ``family.noise(sampling, …)``, before any other draw: two
estimators given generators in the same state see the same ε. An estimator that carries
state across calls (a moving-average baseline) takes ``state=`` and then returns
``(per-sample gradients, new state)``; :func:`initial_state` gives the first.

Variance reduction wraps an estimator (:mod:`estimators.baselines`,
:mod:`estimators.control_variates`): a wrapper is itself an estimator, and states where
it applies. :func:`describe` names a configured estimator's configuration, the key under
which problems file the closed forms derived for it.

Reference: Mohamed, Rosca, Figurnov, Mnih, "Monte Carlo Gradient Estimation in Machine
Learning", JMLR 21(132), 2020.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from estimators.families import Family


class Integrand(Protocol):
    """A function f evaluated on a batch, with derivatives where it has them."""

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """f at each row of ``z`` (shape (..., d)); returns shape (...)."""

    def grad(self, z: np.ndarray) -> np.ndarray:
        """∇f at each row of ``z`` (shape (..., d)); returns shape (..., d)."""

    def hessian(self, z: np.ndarray) -> np.ndarray:
        """∇²f at each row of ``z`` (shape (..., d)); returns shape (..., d, d)."""


class Estimator(Protocol):
    def __call__(self, f: Integrand, family: Family, params: Any, rng: np.random.Generator,
                 num_samples: int | tuple[int, ...], **options: Any) -> np.ndarray: ...


class Inapplicable(ValueError):
    """An estimator, wrapper or scheme used where its maths does not hold; one line saying why."""


def sample_shape(num_samples: int | tuple[int, ...]) -> tuple[int, ...]:
    """``(N,)`` for an int N, else the given shape; its last axis is one set of samples."""
    if isinstance(num_samples, (int, np.integer)):
        return (int(num_samples),)
    return tuple(int(n) for n in num_samples)


def needs(*capabilities: type, families: tuple[str, ...] = (), grad: bool = False, biased: bool = False,
          cost: float | Callable[..., float] | None = None):
    """Declare what an estimator needs, for :func:`check`: families with these protocols
    (``capabilities``), or of these names (``families``), an integrand with a gradient
    (``grad``); whether it is biased (then the loop logs no exact bias of 0 for it); and what
    one sample costs (``cost``, for :func:`evaluations`): evaluations of f, ∇f or ∇²f per
    sample, a number or ``cost(family, params, **options)``. Undeclared, the cost is unknown."""

    def mark(function):
        function.needs, function.families, function.grad, function.biased = capabilities, families, grad, biased
        function.cost = cost
        return function

    return mark


def options(estimator) -> tuple[Any, dict[str, Any]]:
    """The function behind ``estimator`` and the keyword options bound to it by partials."""
    keywords: dict[str, Any] = {}
    while isinstance(estimator, functools.partial):
        keywords = {**estimator.keywords, **keywords}
        estimator = estimator.func
    return estimator, keywords


class Wrapper:
    """An estimator built around another (``estimator``): a baseline, a control variate.

    Subclasses set ``estimator`` and implement ``__call__``, ``entries`` (what it adds to
    :func:`describe`) and ``check(family, sampling, f)`` (``f`` None where the integrand is not
    known yet); and ``evaluations`` where it
    evaluates f itself (a pilot, an expansion point).
    """

    estimator: Any

    def evaluations(self, family: Family, params: Any) -> float:
        """Evaluations of f, ∇f or ∇²f it adds to one estimate, whatever N: none by default."""
        return 0.0

    @property
    def entries(self) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, family: Family, sampling: str, f=None) -> None:
        raise NotImplementedError

    @property
    def initial_state(self) -> Any:
        return initial_state(self.estimator)


def core(estimator):
    """The estimator function at the centre of any wrappers and partials."""
    while isinstance(estimator, Wrapper):
        estimator = estimator.estimator
    return options(estimator)[0]


def initial_state(estimator) -> Any:
    """The state ``estimator`` carries across calls (pass it as ``state=``), or None."""
    return estimator.initial_state if isinstance(estimator, Wrapper) else None


def _label(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return getattr(value, "name", None) or getattr(value, "__name__", None) or repr(value)


Spec = frozenset  # of (key, value) pairs: see describe()


def describe(estimator) -> Spec:
    """The configuration of ``estimator``: the function's name, every keyword option (its
    defaults included, the sampling scheme by name), and what each wrapper adds.

    ``score_function`` with independent sampling and a delta control variate is
    ``{estimator: score_function, sampling: independent, control_variate: delta}``.
    """
    if isinstance(estimator, Wrapper):
        return Spec({**dict(describe(estimator.estimator)), **estimator.entries}.items())
    func, keywords = options(estimator)
    defaults = {
        name: p.default for name, p in inspect.signature(func).parameters.items()
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and name != "state"
    }
    return Spec({"estimator": func.__name__, **{k: _label(v) for k, v in {**defaults, **keywords}.items()}}.items())


def spec(estimator: str, **entries: Any) -> Spec:
    """A configuration as :func:`describe` gives it, written out: independent sampling unless
    ``sampling`` says otherwise. ``spec("measure_valued", coupling=True)``."""
    return Spec({"estimator": estimator, "sampling": "independent", **entries}.items())


def check(estimator, family: Family, sampling: str = "independent", f=None) -> None:
    """Raise :class:`Inapplicable` if ``estimator`` (wrappers included) or the sampling scheme
    does not apply to ``family`` (or, given ``f``, to an integrand without a gradient)."""
    if sampling not in family.schemes:
        raise Inapplicable(f"sampling={sampling} does not apply to the {family.name} family "
                           f"(allowed: {', '.join(family.schemes)})")
    layer = estimator
    while isinstance(layer, Wrapper):
        layer.check(family, sampling, f)
        layer = layer.estimator
    func = options(layer)[0]
    for capability in getattr(func, "needs", ()):
        if not isinstance(family, capability):
            raise Inapplicable(f"estimator={func.__name__} needs a family with {capability.__doc__}; "
                               f"the {family.name} family has none")
    names = getattr(func, "families", ())
    if names and family.name not in names:
        raise Inapplicable(f"estimator={func.__name__} applies to the {', '.join(names)} family only, "
                           f"not {family.name}")
    if f is not None and getattr(func, "grad", False) and not callable(getattr(f, "grad", None)):
        raise Inapplicable(f"estimator={func.__name__} needs the gradient of f, which this problem does not give")


def configure(estimator, sampling=None):
    """``estimator`` (as a config builds it: a function or partial whose keyword options may
    hold wrappers) with ``sampling`` bound and its wrappers applied, innermost first.

    A wrapper is an option value with a ``wrap(estimator)`` method and an ``order``
    (baselines 0, control variates 1); a wrapper whose ``wrap`` returns ``None`` is the
    identity (``baseline: none``).
    """
    func, keywords = options(estimator)
    wrappers = sorted((v for v in keywords.values() if hasattr(v, "wrap")), key=lambda w: w.order)
    plain = {k: v for k, v in keywords.items() if not hasattr(v, "wrap")}
    if sampling is not None:
        plain["sampling"] = sampling
    out = functools.partial(func, **plain) if plain else func
    for wrapper in wrappers:
        out = wrapper.wrap(out) or out
    return out


def evaluations(estimator, family: Family, params: Any, samples: int) -> float | None:
    """Evaluations of f, ∇f or ∇²f (a Hessian counts as one) that one ``samples``-sample
    estimate costs, as the estimators declare it (:func:`needs`): per sample, times N, plus
    what each wrapper adds per estimate (the optimal baseline's pilot, the delta method's
    expansion point). None where the core estimator declares no cost.

    Per data point: f is one datum's integrand (a problem whose f sums over a batch counts
    one evaluation of that sum as one). What makes comparisons at equal cost possible:
    ``grad_variance`` × this is the variance per unit of work.
    """
    extra, layer = 0.0, estimator
    while isinstance(layer, Wrapper):
        extra += layer.evaluations(family, params)
        layer = layer.estimator
    func, keywords = options(layer)
    cost = getattr(func, "cost", None)
    if cost is None:
        return None
    if callable(cost):
        cost = cost(family, params, **{k: v for k, v in keywords.items() if k != "sampling"})
    return float(cost) * samples + extra


def biased(estimator) -> bool:
    """Whether ``estimator`` is biased by construction (a relaxation); wrappers keep it as it is."""
    return bool(getattr(core(estimator), "biased", False))
