"""Shared checks for estimator tests: unbiasedness and variance against closed forms, within Z standard errors."""

from __future__ import annotations

import functools
import math

import numpy as np

import estimators
from estimators import Gaussian, GaussianParams

Z = 5.0  # standard errors allowed; a correct estimator fails one check with probability ~6e-7


def family_estimates(estimator, f, family, params, samples, replicates, seed):
    """``replicates`` independent ``samples``-sample estimates (shape (replicates, k)) under ``family``, in one call."""
    return estimator(f, family, params, np.random.default_rng(seed), (replicates, samples)).mean(axis=1)


def estimates(estimator, problem, mean, scale, samples, replicates, seed, learn_scale=False):
    """``replicates`` independent ``samples``-sample estimates (shape (replicates, k)) under N(mean, diag scale²),
    of the mean gradient, and of the scale gradient too with ``learn_scale``, in one call."""
    return family_estimates(estimator, problem, Gaussian(learn_scale=learn_scale), GaussianParams(mean, scale),
                            samples, replicates, seed)


def exact_grad(problem, mean, scale, learn_scale=False) -> np.ndarray:
    """The problem's ∇_μ L at N(mean, diag scale²), followed by ∇_σ L with ``learn_scale``."""
    g = problem.exact_grad(GaussianParams(mean, scale))
    return np.concatenate([g.mean, g.scale]) if learn_scale else np.asarray(g.mean)


def exact_variance(problem, estimator, mean, scale, samples, learn_scale=False) -> dict:
    """The problem's exact variance per learned block ({} where unknown) for ``estimator``'s configuration."""
    return problem.exact_variance(estimators.describe(estimator), Gaussian(learn_scale=learn_scale),
                                  GaussianParams(mean, scale), samples)


def assert_unbiased(est: np.ndarray, truth: np.ndarray) -> None:
    """|mean − truth| < Z·SE per coordinate; exact agreement passes for a zero-variance estimator."""
    se = est.std(axis=0, ddof=1) / math.sqrt(len(est))
    err = np.abs(est.mean(axis=0) - truth)
    assert np.all((err < Z * se) | (err <= 1e-9 * (1.0 + np.abs(truth)))), (err, se)


def assert_variance(est: np.ndarray, truth: np.ndarray, exact: float) -> None:
    """Mean of ‖ĝ − ∇L‖² (unbiased for tr Cov) within Z·SE of ``exact``."""
    sq = ((est - truth) ** 2).sum(axis=1)
    se = sq.std(ddof=1) / math.sqrt(len(sq))
    assert abs(sq.mean() - exact) < Z * se + 1e-9 * (1.0 + exact), (sq.mean(), exact, se)


def assert_no_closed_form_for_other_configurations(problem, samples: int = 2) -> None:
    """``problem`` files no exact variance under configurations its derivations do not cover:
    antithetic or QMC sampling, a leave-one-out baseline."""
    for estimator in (
        estimators.configure(estimators.score_function, sampling=estimators.sampling.antithetic),
        estimators.configure(estimators.reparameterization, sampling=estimators.sampling.qmc),
        estimators.configure(functools.partial(estimators.score_function,
                                               baseline=estimators.baselines.leave_one_out())),
    ):
        assert problem.exact_variance(estimators.describe(estimator), problem.family, problem.params0, samples) == {}
    assert problem.exact_variance(estimators.spec("score_function", sampling="antithetic"), problem.family,
                                  problem.params0, samples) == {}
