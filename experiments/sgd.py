r"""SGD on L(θ) = E_{z~q_θ}[f(z)] with a Monte Carlo gradient estimator, and its diagnostics.

Pure computation: no tracking, no configuration. :func:`run_sgd` returns a
:class:`RunResult` that the caller logs.

Randomness: the trajectory draws from ``SeedSequence(seed, spawn_key=(0,))``; the variance
probe at step t from ``SeedSequence(seed, spawn_key=(1, t))``. So the trajectory does not
depend on how (or how often) it is measured, a probe at step t does not depend on which
other steps are probed, and estimators that draw the same base noise share it.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

CURVES = ("loss", "dist_to_opt", "grad_variance", "grad_variance_se", "grad_variance_exact", "grad_snr")
SUMMARY = (
    "final_loss",
    "final_dist",
    "best_dist",
    "steps_to_tol",
    "converged",
    "diverged",
    "mean_grad_variance",
    "wall_time_s",
)


class VarianceProbe(NamedTuple):
    """Trace of the covariance of an N-sample estimate, from V independent estimates."""

    value: float  # tr Ĉov = Σ_i ‖ĝ_i − ḡ‖² / (V − 1)
    se: float  # standard error of ``value``


class RunResult(NamedTuple):
    trajectory: np.ndarray  # θ_0 … θ_stop, shape (stop + 1, d)
    steps: np.ndarray  # logged steps, shape (K,)
    curves: dict[str, np.ndarray]  # name -> values at ``steps``, shape (K,)
    summary: dict[str, float]


def trajectory_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))


def probe_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, step)))


def log_steps(steps: int, log_points: int) -> np.ndarray:
    """At most ``log_points`` evenly spaced steps in [0, T], always including 0 and T."""
    return np.unique(np.rint(np.linspace(0, steps, min(log_points, steps + 1))).astype(np.int64))


def probe_variance(
    estimator, problem, theta: np.ndarray, rng: np.random.Generator, samples: int, replicates: int
) -> VarianceProbe:
    r"""Measure tr Cov[ḡ] for the ``samples``-sample mean ḡ at θ from ``replicates`` estimates.

    With V replicates ḡ_1…ḡ_V, r_i = V/(V−1)·‖ḡ_i − ḡ‖² has mean tr Ĉov (unbiased), and
    the standard error is taken as std(r)/√V.
    """
    per_sample = estimator(problem, theta, problem.sigma, rng, replicates * samples)
    est = per_sample.reshape(replicates, samples, -1).mean(axis=1)
    dev = est - est.mean(axis=0)
    r = np.einsum("ij,ij->i", dev, dev) * (replicates / (replicates - 1))
    return VarianceProbe(float(r.mean()), float(r.std(ddof=1) / math.sqrt(replicates)))


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else math.nan


def run_sgd(
    problem,
    estimator,
    *,
    step_size: float,
    steps: int,
    samples: int,
    seed: int,
    variance_samples: int,
    log_points: int,
    tolerance: float,
    divergence_factor: float,
) -> RunResult:
    r"""Run θ_{t+1} = θ_t − α·ḡ_t for t < T from θ₀, where ḡ_t is the mean of N estimates.

    The run diverges, and stops at that step, when θ_t or the gradient is non-finite or
    ‖θ_t − x‖ > ``divergence_factor``·(D + σ√d). Curves are measured at
    :func:`log_steps` up to the stop (and at the stop itself when the run diverged).
    """
    tic = time.perf_counter()
    x, sigma = problem.optimum, problem.sigma
    bound2 = (divergence_factor * problem.scale) ** 2
    rng = trajectory_rng(seed)

    theta = np.array(problem.theta0, dtype=np.float64)
    trajectory = np.empty((steps + 1, theta.size))
    trajectory[0] = theta
    stop, diverged = steps, False
    # Overflow is detected below and recorded as divergence, not reported as a warning.
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            grad = estimator(problem, theta, sigma, rng, samples).mean(axis=0)
            theta = theta - step_size * grad
            trajectory[t] = theta
            r = theta - x
            if not r @ r <= bound2:  # also catches NaN
                stop, diverged = t, True
                break
        trajectory = trajectory[: stop + 1]
        dist = np.sqrt(np.einsum("ij,ij->i", trajectory - x, trajectory - x))

        logged = log_steps(steps, log_points)
        logged = logged[logged < stop] if diverged else logged
        if diverged:
            logged = np.append(logged, stop)
        curves = {name: np.empty(logged.size) for name in CURVES}
        for k, t in enumerate(logged):
            theta_t = trajectory[t]
            probe = probe_variance(estimator, problem, theta_t, probe_rng(seed, int(t)), samples, variance_samples)
            exact = problem.grad_variance_exact(estimator, theta_t, samples)
            g = problem.true_grad(theta_t)
            curves["loss"][k] = problem.loss(theta_t)
            curves["dist_to_opt"][k] = dist[t]
            curves["grad_variance"][k] = probe.value
            curves["grad_variance_se"][k] = probe.se
            curves["grad_variance_exact"][k] = math.nan if exact is None else exact
            curves["grad_snr"][k] = (g @ g) / probe.value if probe.value > 0 else math.nan
        for values in curves.values():
            values[~np.isfinite(values)] = np.nan

        tol = tolerance * problem.distance
        hits = np.flatnonzero(dist <= tol)
        variances = curves["grad_variance"][np.isfinite(curves["grad_variance"])]
        summary = {
            "final_loss": _finite(problem.loss(trajectory[-1])),
            "final_dist": _finite(dist[-1]),
            "best_dist": _finite(np.nanmin(dist)) if np.isfinite(dist).any() else math.nan,
            "steps_to_tol": float(hits[0]) if hits.size else float(steps + 1),
            "converged": float(not diverged and dist[-1] <= tol),
            "diverged": float(diverged),
            "mean_grad_variance": float(variances.mean()) if variances.size else math.nan,
            "wall_time_s": time.perf_counter() - tic,
        }
    return RunResult(trajectory, logged, curves, summary)
