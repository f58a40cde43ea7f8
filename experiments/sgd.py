r"""SGD on L(θ) = E_{z~q_θ}[f(z)] with a Monte Carlo gradient estimator, and its diagnostics.

Pure computation: no tracking, no configuration. :func:`run_sgd` returns a
:class:`RunResult` that the caller logs.

Randomness: the trajectory draws from ``SeedSequence(seed, spawn_key=(0,))``; the variance
probe at step t from ``SeedSequence(seed, spawn_key=(1, t))``. So the trajectory does not
depend on how (or how often) it is measured, a probe at step t does not depend on which
other steps are probed, and estimators that draw the same base noise share it.

State: an estimator that carries state across steps (a moving-average baseline) gets it
threaded through the loop; the state at each θ_t is kept, so the probe at step t measures
the estimate as the optimizer used it there, without advancing it.
"""

from __future__ import annotations

import functools
import math
import time
from typing import NamedTuple

import numpy as np

import estimators
from experiments import optimizers
from experiments.optimizers import Optimizer

CURVES = ("loss", "dist_to_opt", "grad_variance", "grad_variance_se", "grad_variance_exact", "grad_snr")
# With a learned scale, the same measures per block of θ = (μ, σ).
BLOCK_CURVES = [f"{name}/{block}" for block in ("mean", "scale")
                for name in ("grad_variance", "grad_variance_se", "grad_variance_exact")]
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


def split(problem, theta: np.ndarray, learn_scale: bool) -> tuple[np.ndarray, float | np.ndarray]:
    """(mean, scale) of the parameters θ: θ itself and the problem's σ, or θ = (μ, σ)."""
    if not learn_scale:
        return theta, problem.sigma
    d = theta.size // 2
    return theta[:d], theta[d:]


def call(estimator, problem, theta, rng, samples, state, learn_scale: bool) -> tuple[np.ndarray, object]:
    """Per-sample gradients at θ (and the estimator's next state, if it carries one)."""
    mean, scale = split(problem, theta, learn_scale)
    if state is None:
        return estimator(problem, mean, scale, rng, samples), None
    return estimator(problem, mean, scale, rng, samples, state=state)


def probe_variance(
    estimator,
    problem,
    theta: np.ndarray,
    rng: np.random.Generator,
    samples: int,
    replicates: int,
    *,
    state=None,
    learn_scale: bool = False,
) -> dict[str, VarianceProbe]:
    r"""Measure tr Cov[ḡ] for the ``samples``-sample mean ḡ at θ from ``replicates`` estimates.

    The estimates are drawn as the optimizer draws its own (same N, sampling scheme and
    baseline, the estimator's state at that step, which the probe does not advance), in one
    call of shape (V, N). With V replicates ḡ_1…ḡ_V, r_i = V/(V−1)·‖ḡ_i − ḡ‖² has mean
    tr Ĉov (unbiased), and the standard error is taken as std(r)/√V. Returns the total
    (key "") and, when the scale is learned, the blocks "mean" and "scale".
    """
    per_sample, _ = call(estimator, problem, theta, rng, (replicates, samples), state, learn_scale)
    est = per_sample.mean(axis=1)
    dev = est - est.mean(axis=0)
    d = est.shape[-1] // 2
    parts = {"": slice(None)} | ({"mean": slice(0, d), "scale": slice(d, None)} if learn_scale else {})
    out = {}
    for name, block in parts.items():
        r = np.einsum("ij,ij->i", dev[:, block], dev[:, block]) * (replicates / (replicates - 1))
        out[name] = VarianceProbe(float(r.mean()), float(r.std(ddof=1) / math.sqrt(replicates)))
    return out


def exact_variance(problem, estimator, theta: np.ndarray, samples: int, learn_scale: bool) -> dict[str, float]:
    """The problem's exact variance per block, and the total (key ""); NaN where unknown."""
    mean, scale = split(problem, theta, learn_scale)
    blocks = problem.grad_variance_blocks(estimator, mean, scale, samples)
    known = {name: math.nan if v is None else float(v) for name, v in blocks.items()}
    return {"": float(sum(known.values()))} | (known if learn_scale else {})


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
    learn_scale: bool = False,
    optimizer: Optimizer | None = None,
) -> RunResult:
    r"""Run θ_{t+1} = θ_t − delta_t for t < T from θ₀, delta_t from the optimizer and ḡ_t.

    ḡ_t is the mean of N per-sample estimates (plus ``problem.analytic_grad``, the part
    of ∇L known exactly, where the problem has one); with the default optimizer (SGD),
    delta_t = α·ḡ_t. With ``learn_scale`` the parameters are θ = (μ, σ), σ per coordinate
    starting at the problem's σ, and the estimator also estimates ∇_σ L; otherwise θ = μ
    and σ stays fixed. The trajectory holds θ_0 … θ_stop either way.

    The run diverges, and stops at that step, when θ_t or the gradient is non-finite or
    ‖μ_t − x‖ > ``divergence_factor``·``problem.scale`` (measured from θ₀ when the problem
    has no optimum x). Curves are measured at :func:`log_steps` up to the stop (and at the
    stop itself when the run diverged). ``dist_to_opt`` is ‖μ_t − x‖, NaN without an x.
    """
    tic = time.perf_counter()
    optimizer = optimizer or optimizers.sgd()
    if learn_scale:
        estimator = functools.partial(estimator, with_scale=True)
    x, sigma = problem.optimum, problem.sigma
    anchor = x if np.all(np.isfinite(x)) else problem.theta0
    bound2 = (divergence_factor * problem.scale) ** 2
    rng = trajectory_rng(seed)

    theta = np.array(problem.theta0, dtype=np.float64)
    d = theta.size
    if learn_scale:
        theta = np.concatenate([theta, np.broadcast_to(np.asarray(problem.sigma, dtype=np.float64), (d,))])
    # A part of ∇L a problem knows exactly (an entropy term) is added, not estimated.
    analytic = getattr(problem, "analytic_grad", None)
    state = estimators.initial_state(estimator)
    states = [state]  # the estimator's state at each θ_t, so that a probe measures it as used
    opt_state = optimizer.init(theta)
    trajectory = np.empty((steps + 1, theta.size))
    trajectory[0] = theta
    stop, diverged = steps, False
    # Overflow is detected below and recorded as divergence, not reported as a warning.
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            if state is None and not learn_scale:  # the plain case, kept lean: it runs T times
                per_sample = estimator(problem, theta, sigma, rng, samples)
            else:
                per_sample, state = call(estimator, problem, theta, rng, samples, state, learn_scale)
            # np.mean's own steps, without its Python wrapper: it costs more than a 2-d step.
            grad = np.add.reduce(per_sample, axis=0) / per_sample.shape[0]
            if analytic is not None:
                grad = grad + analytic(*split(problem, theta, learn_scale), learn_scale)
            delta, opt_state = optimizer.update(grad, opt_state, step_size)
            theta = theta - delta
            trajectory[t] = theta
            states.append(state)
            r = theta[:d] - anchor
            if not r @ r <= bound2 or (learn_scale and not np.all(np.isfinite(theta))):  # also catches NaN
                stop, diverged = t, True
                break
        trajectory = trajectory[: stop + 1]
        dist = np.sqrt(np.einsum("ij,ij->i", trajectory[:, :d] - x, trajectory[:, :d] - x))

        logged = log_steps(steps, log_points)
        logged = logged[logged < stop] if diverged else logged
        if diverged:
            logged = np.append(logged, stop)
        names = list(CURVES) + (BLOCK_CURVES if learn_scale else [])
        curves = {name: np.full(logged.size, math.nan) for name in names}
        for k, t in enumerate(logged):
            theta_t = trajectory[t]
            mean, scale = split(problem, theta_t, learn_scale)
            probe = probe_variance(estimator, problem, theta_t, probe_rng(seed, int(t)), samples, variance_samples,
                                   state=states[t], learn_scale=learn_scale)
            exact = exact_variance(problem, estimator, theta_t, samples, learn_scale)
            g = problem.true_grad(mean, scale) if learn_scale else problem.true_grad(theta_t)
            if learn_scale:
                g = np.concatenate([g, problem.true_grad_scale(mean, scale)])
            curves["loss"][k] = problem.loss(mean, scale) if learn_scale else problem.loss(theta_t)
            curves["dist_to_opt"][k] = dist[t]
            for block, value in probe.items():
                suffix = f"/{block}" if block else ""
                curves["grad_variance" + suffix][k] = value.value
                curves["grad_variance_se" + suffix][k] = value.se
                curves["grad_variance_exact" + suffix][k] = exact[block]
            total = probe[""].value
            curves["grad_snr"][k] = (g @ g) / total if total > 0 else math.nan
            for name, value in getattr(problem, "metrics", lambda m, s: {})(mean, scale).items():
                curves.setdefault(name, np.full(logged.size, math.nan))[k] = value
        for values in curves.values():
            values[~np.isfinite(values)] = np.nan

        tol = tolerance * problem.distance
        hits = np.flatnonzero(dist <= tol)
        variances = curves["grad_variance"][np.isfinite(curves["grad_variance"])]
        final_mean, final_scale = split(problem, trajectory[-1], learn_scale)
        summary = {
            "final_loss": _finite(problem.loss(final_mean, final_scale) if learn_scale else problem.loss(trajectory[-1])),
            "final_dist": _finite(dist[-1]),
            "best_dist": _finite(np.nanmin(dist)) if np.isfinite(dist).any() else math.nan,
            "steps_to_tol": float(hits[0]) if hits.size else float(steps + 1),
            "converged": float(not diverged and dist[-1] <= tol),
            "diverged": float(diverged),
            "mean_grad_variance": float(variances.mean()) if variances.size else math.nan,
            "wall_time_s": time.perf_counter() - tic,
        }
    return RunResult(trajectory, logged, curves, summary)
