r"""Baselines for the score-function estimator: ĝ_i = (f(z_i) − b)·∇ log q(z_i).

A baseline wraps the score-function estimator of any family (:class:`WithBaseline`, made
by ``baseline.wrap(estimator)``), and is refused on any other estimator. It is a small
tuple of functions::

    value(weights, scores, state, pilot) -> b, broadcastable to scores' shape (..., N, k)
    update(state, weights) -> new state         (stateful baselines only)
    init                                        initial state (None: stateless)

``weights`` are the values f(z_i) the score multiplies (shape (..., N), the last axis one
set of N samples), ``scores`` the scores ∇ log q(z_i) (shape (..., N, k)), and
``pilot(n)`` returns ``(weights, scores)`` of n fresh samples per set, independent of the
set's own. Since E[∇ log q] = 0, a b independent of z_i leaves the estimate unbiased;
a b that depends on z_i (the sample's own value) would bias it.

Reference: Williams (1992); Mohamed et al. (2020), section 7.4 (baselines).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from estimators.core import Inapplicable, Wrapper, options, sample_shape
from estimators.sampling import independent


class Baseline(NamedTuple):
    value: Callable[..., Any]
    update: Callable[[Any, np.ndarray], Any] | None = None
    init: Any = None
    # b_i is built from the other samples of its set: unbiased only if they are independent
    # of sample i, so not with antithetic or quasi-Monte Carlo sets.
    uses_set: bool = False
    name: str = "unnamed"
    order: int = 0  # innermost: a control variate wraps the estimator with its baseline
    evaluations: int = 0  # of f per estimate beyond its N samples (a pilot's)
    # The value comes from the integrand itself, f.optimal_baseline(family, params), not from samples.
    exact: bool = False

    def wrap(self, estimator):
        """The score-function ``estimator`` with this baseline; None for no baseline (b = 0)."""
        return None if self.value is _zero and not self.exact else WithBaseline(estimator, self)


@dataclass(frozen=True)
class WithBaseline(Wrapper):
    """The score function with baseline b: ĝ_i = (f(z_i) − b_i)·∇ log q(z_i)."""

    estimator: Any
    baseline: Baseline

    @property
    def entries(self) -> dict[str, Any]:
        return {"baseline": self.baseline.name}

    @property
    def initial_state(self) -> Any:
        return self.baseline.init

    def evaluations(self, family, params) -> float:
        return float(self.baseline.evaluations)

    def check(self, family, sampling: str, f=None) -> None:
        func = options(self.estimator)[0]
        if not hasattr(func, "terms"):
            raise Inapplicable(f"a baseline applies to the score function only, not to estimator={func.__name__}")
        if self.baseline.exact and f is not None and not callable(getattr(f, "optimal_baseline", None)):
            raise Inapplicable(f"baseline={self.baseline.name} needs a problem that knows the optimal baseline "
                               "E[f s²]/E[s²] exactly; this one does not (baseline=optimal estimates it)")
        if self.baseline.uses_set and sampling != "independent":
            raise Inapplicable(f"baseline={self.baseline.name} needs sampling=independent: the other samples "
                               f"of a {sampling} set depend on this one, which would bias it")

    def __call__(self, f, family, params, rng, num_samples, *, state: Any = None):
        func, opts = options(self.estimator)
        sampling = opts.get("sampling", independent)
        baseline = self.baseline
        if baseline.uses_set and sampling is not independent:
            raise ValueError("a baseline built from the other samples of a set needs independent sampling")
        shape = sample_shape(num_samples)
        values, score = func.terms(f, family, params, rng, shape, sampling)
        # A batch of distributions (values (..., N, *batch)): each datum is its own set, its
        # sample axis moved last, so that the baseline pools over a datum's own samples only.
        batch = len(getattr(family, "batch_shape", ()))
        if batch:
            values, score = np.moveaxis(values, -1 - batch, -1), np.moveaxis(score, -2 - batch, -2)

        # A pilot for the baseline: fresh independent samples, drawn after the base noise.
        def pilot(n: int):
            w, s = func.terms(f, family, params, rng, (*shape[:-1], n), independent)
            return (np.moveaxis(w, -1 - batch, -1), np.moveaxis(s, -2 - batch, -2)) if batch else (w, s)

        if baseline.exact:
            b = f.optimal_baseline(family, params)
        else:
            b = baseline.value(values, score, baseline.init if state is None else state, pilot)
        grads = (values[..., None] - b) * score
        if batch:
            grads = np.moveaxis(grads, -2, -2 - batch)
        if state is None:
            return grads
        return grads, (state if baseline.update is None else baseline.update(state, values))


def _zero(weights, scores, state, pilot):
    return 0.0


NONE = Baseline(_zero, name="none")


def none() -> Baseline:
    """b = 0: the plain score-function estimator."""
    return NONE


def moving_average(decay: float = 0.9) -> Baseline:
    r"""b_t = exponential moving average of the mean of f over the samples of past steps.

    b_{t+1} = λ·b_t + (1 − λ)·mean_i f(z_{t,i}), b_0 = 0, λ = ``decay`` in (0, 1). State
    carried by the caller across steps; b_t depends only on past steps' samples, so the
    estimate at step t stays unbiased. A variance probe uses b_t and discards the update.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"moving-average decay must lie in (0, 1), got {decay}")

    def update(state, weights):
        return decay * state + (1.0 - decay) * float(np.mean(weights))

    return Baseline(lambda weights, scores, state, pilot: state, update, 0.0, name="moving_average")


def optimal(pilot: int = 100) -> Baseline:
    r"""The variance-optimal constant per coordinate, b_j = E[f s_j²] / E[s_j²], s = ∇ log q.

    Minimises Var[(f − b_j) s_j] over constants b_j. The expectations are estimated from
    ``pilot`` extra samples per estimate, independent of the estimate's own samples, so the
    estimate stays unbiased; its variance exceeds the one at the exact b* by
    E[(b̂_j − b*_j)²]·E[s_j²], of order 1/``pilot``. Costs ``pilot`` extra evaluations of f.
    Reference: Mohamed et al. (2020), section 7.4.2; Greensmith, Bartlett, Baxter (2004).
    """
    if pilot < 1:
        raise ValueError(f"the optimal baseline needs a pilot of at least 1 sample, got {pilot}")

    def value(weights, scores, state, draw):
        w, s = draw(pilot)  # (..., P), (..., P, k)
        s2 = s * s
        b = np.einsum("...p,...pk->...k", w, s2) / s2.sum(axis=-2)
        return b[..., None, :]

    return Baseline(value, name="optimal", evaluations=pilot)


def oracle() -> Baseline:
    r"""The variance-optimal constant per coordinate, b*_j = E[f s_j²]/E[s_j²], exactly, from the
    problem (``f.optimal_baseline(family, params)``): the reference study's "score function with
    the optimal baseline" (Mohamed et al. 2020, section 7.4.2), of the lowest variance a
    constant baseline reaches. An oracle, not a practical estimator: it needs expectations
    under q that only a problem with closed forms knows; :func:`optimal` estimates them.
    Refused on a problem without them.
    """
    return Baseline(_zero, name="oracle", exact=True)


def leave_one_out() -> Baseline:
    r"""b_i = mean of f over the other N − 1 samples of the set: (Σ_k f(z_k) − f(z_i))/(N − 1).

    Independent of z_i when the samples of a set are independent, so unbiased then; biased
    under antithetic or quasi-Monte Carlo sets, whose samples depend on each other (the
    wrapper refuses the combination). Needs N ≥ 2. With it the N-sample estimate
    equals N/(N − 1) times the one centred on the sample mean of f (the "RLOO" estimator).
    Reference: Kool, van Hoof, Welling (2019); Mohamed et al. (2020), section 7.4.
    """

    def value(weights, scores, state, pilot):
        n = weights.shape[-1]
        if n < 2:
            raise ValueError("the leave-one-out baseline needs at least 2 samples per estimate")
        return ((weights.sum(axis=-1, keepdims=True) - weights) / (n - 1))[..., None]

    return Baseline(value, uses_set=True, name="leave_one_out")
