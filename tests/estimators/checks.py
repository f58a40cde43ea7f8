"""Shared checks for estimator tests: unbiasedness and variance against closed forms, within Z standard errors."""

from __future__ import annotations

import math

import numpy as np

Z = 5.0  # standard errors allowed; a correct estimator fails one check with probability ~6e-7


def estimates(estimator, problem, mean, scale, samples, replicates, seed):
    """``replicates`` independent ``samples``-sample estimates (shape (replicates, k)), in one call."""
    return estimator(problem, mean, scale, np.random.default_rng(seed), (replicates, samples)).mean(axis=1)


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
