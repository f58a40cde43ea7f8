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

import math
import time
from typing import NamedTuple

import numpy as np

import estimators
from estimators import families
from experiments import optimizers
from experiments.optimizers import Optimizer
from problems.base import (HasAnalyticGrad, HasCurves, HasExactBias, HasExactGradient, HasExactVariance, Trainable,
                           optimum)

CURVES = ("loss", "dist_to_opt", "grad_variance", "grad_variance_se", "grad_variance_exact", "grad_snr",
          "work_normalized_variance")
# For a problem that knows ∇L: the estimate's bias, its mean squared error and its alignment.
BIAS_CURVES = ("grad_bias_sq", "grad_bias_sq_se", "grad_bias_sq_exact", "grad_mse", "grad_cosine")
# Per learned block of the family, when it learns more than one: grad_variance/<block>, ...
BLOCK_MEASURES = ("grad_variance", "grad_variance_se", "grad_variance_exact")
SUMMARY = (
    "final_loss",
    "final_dist",
    "best_dist",
    "steps_to_tol",
    "converged",
    "diverged",
    "mean_grad_variance",
    "wall_time_s",
    "evals_per_estimate",
    "wall_time_per_estimate_s",
)
# Summaries measured on the clock, not computed: they differ between two runs of one config.
TIMINGS = ("wall_time_s", "wall_time_per_estimate_s")
# Curves and summaries measured against the optimum: only for a problem that has one.
DISTANCE = ("dist_to_opt", "final_dist", "best_dist", "steps_to_tol", "converged")


class VarianceProbe(NamedTuple):
    """Trace of the covariance of an N-sample estimate, from V independent estimates."""

    value: float  # tr Ĉov = Σ_i ‖ĝ_i − ḡ‖² / (V − 1)
    se: float  # standard error of ``value``


class RunResult(NamedTuple):
    trajectory: np.ndarray  # θ_0 … θ_stop (the learned blocks, flat), shape (stop + 1, k)
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


def call(estimator, problem, family, params, rng, samples, state) -> tuple[np.ndarray, object]:
    """Per-sample gradients at ``params`` (and the estimator's next state, if it carries one)."""
    if state is None:
        return estimator(problem, family, params, rng, samples), None
    return estimator(problem, family, params, rng, samples, state=state)


def probe(estimator, problem, family, params, rng: np.random.Generator, samples: int, replicates: int, *,
          state=None) -> np.ndarray:
    """``replicates`` independent ``samples``-sample estimates at ``params``, shape (V, k).

    Drawn as the optimizer draws its own (same N, sampling scheme and baseline, the
    estimator's state at that step, which the probe does not advance), in one call of
    shape (V, N).
    """
    per_sample, _ = call(estimator, problem, family, params, rng, (replicates, samples), state)
    return per_sample.mean(axis=1)


def probe_variance(est: np.ndarray, family, params) -> dict[str, VarianceProbe]:
    r"""tr Cov[ḡ] of the N-sample estimate ḡ, from V independent estimates ``est`` (V, k).

    r_i = V/(V−1)·‖ḡ_i − ḡ‖² has mean tr Ĉov (unbiased), and the standard error is taken as
    std(r)/√V. Returns the total (key "") and, when the family learns more than one block,
    each block by name.
    """
    dev = est - est.mean(axis=0)
    blocks = families.block_slices(family, params)
    parts = {"": slice(None)} | (blocks if len(blocks) > 1 else {})
    out = {}
    for name, block in parts.items():
        out[name] = trace_variance(dev[:, block])
    return out


def trace_variance(dev: np.ndarray) -> VarianceProbe:
    """tr Cov from V estimates' deviations from their mean ``dev`` (V, k): see :func:`probe_variance`."""
    replicates = dev.shape[0]
    r = np.einsum("ij,ij->i", dev, dev) * (replicates / (replicates - 1))
    return VarianceProbe(float(r.mean()), float(r.std(ddof=1) / math.sqrt(replicates)))


class BiasProbe(NamedTuple):
    bias_sq: float  # unbiased estimate of ‖E ḡ − ∇L‖²
    bias_sq_se: float
    mse: float  # mean of ‖ḡ_i − ∇L‖²: bias² plus tr Cov
    cosine: float  # mean of cos(ḡ_i, ∇L)


def probe_bias(est: np.ndarray, grad: np.ndarray) -> BiasProbe:
    r"""Bias of the N-sample estimate against the exact ∇L, from V independent estimates ``est``.

    With x_i = ḡ_i − ∇L, the U-statistic b̂² = Σ_{i≠j} x_i·x_j / (V(V − 1)) = ‖x̄‖² − tr Ĉov/V
    is unbiased for ‖E ḡ − ∇L‖² (it can be negative when the bias is small). Its variance is
    that of a U-statistic of order 2, 4ζ₁/V + 2ζ₂/(V(V − 1)), with ζ₂ = Var(x_i·x_j) estimated
    by the mean of (x_i·x_j)² over i ≠ j less b̂⁴, and ζ₁ = Var(x·b) by the variance of the
    leave-one-out projections h_i = x_i·x̄_(−i) less ζ₂/(V − 1). The second term is what remains when the bias
    is 0 (then ζ₁ = 0 and the first term alone would understate the error); there, with ζ̂₁
    clipped at 0, the standard error errs on the large side (about 1.25× in simulations).
    Reference: Hoeffding (1948); Serfling (1980), section 5.2.
    """
    v = est.shape[0]
    x = est - grad
    total = x.sum(axis=0)
    norms = np.einsum("ij,ij->i", x, x)
    bias_sq = float((total @ total - norms.sum()) / (v * (v - 1)))
    h = np.einsum("ij,ij->i", x, (total - x) / (v - 1))
    gram = x.T @ x  # Σ_{i≠j} (x_i·x_j)² = ‖XᵀX‖²_F − Σ_i ‖x_i‖⁴
    zeta2 = max(float((np.sum(gram * gram) - norms @ norms) / (v * (v - 1))) - bias_sq**2, 0.0)
    # Var h_i = ζ₁ + ζ₂/(V − 1) to first order: the projections carry the second-order noise too.
    zeta1 = max(float(h.var(ddof=1)) - zeta2 / (v - 1), 0.0)
    variance = 4.0 * zeta1 / v + 2.0 * zeta2 / (v * (v - 1))
    g2 = float(grad @ grad)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.einsum("ij,j->i", est, grad) / np.sqrt(np.einsum("ij,ij->i", est, est) * g2)
    return BiasProbe(bias_sq, math.sqrt(variance), float(norms.mean()),
                     float(np.nanmean(cosine)) if np.isfinite(cosine).any() else math.nan)


def exact_variance(problem, config, family, params, samples: int) -> dict[str, float]:
    """The problem's exact variance per learned block, and the total (key ""); NaN where unknown."""
    known = problem.exact_variance(config, family, params, samples) if isinstance(problem, HasExactVariance) else {}
    blocks = {name: float(known.get(name, math.nan)) for name in family.learned}
    return {"": float(sum(blocks.values()))} | (blocks if len(blocks) > 1 else {})


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

    θ is the flat vector of the learned blocks of the problem's family (the Gaussian's
    mean, and its scale too with ``learn_scale``). ḡ_t is the mean of N per-sample estimates
    (plus the part of ∇L the problem knows exactly, where it has one); with the default
    optimizer (SGD), delta_t = α·ḡ_t. The trajectory holds θ_0 … θ_stop.

    The run diverges, and stops at that step, when θ_t or the gradient is non-finite or the
    first block is farther than ``divergence_factor``·``problem.length_scale`` from the
    optimum x (from θ₀ when the problem has none). Curves are measured at :func:`log_steps`
    up to the stop (and at the stop itself when the run diverged). ``dist_to_opt`` and the
    distance summaries are measured only for a problem with an optimum.

    Cost: ``evals_per_estimate`` is what the estimator declares one N-sample estimate costs
    (:func:`estimators.evaluations`; absent where it declares nothing), and
    ``work_normalized_variance`` = ``grad_variance`` × that, the variance at equal work.
    ``wall_time_per_estimate_s`` is measured: the mean time of the optimizer's estimator
    calls, or with ``steps`` = 0 the probe at θ₀'s time over its V estimates (one vectorised
    call, so cheaper per estimate than a call of its own).
    """
    if isinstance(problem, Trainable):  # a model trained on minibatches: its own loop
        from experiments.training import run_training

        return run_training(problem, estimator, step_size=step_size, steps=steps, samples=samples, seed=seed,
                            variance_samples=variance_samples, log_points=log_points, optimizer=optimizer)
    tic = time.perf_counter()
    optimizer = optimizer or optimizers.sgd()
    family = families.with_learned(problem.family, ("scale",)) if learn_scale else problem.family
    params0 = problem.params0
    x = optimum(problem)
    anchor = np.asarray(params0[0], dtype=np.float64) if x is None else x
    bound2 = (divergence_factor * problem.length_scale) ** 2
    rng = trajectory_rng(seed)
    config = estimators.describe(estimator)

    theta = families.flatten(family, params0)
    d = anchor.size
    # A part of ∇L a problem knows exactly (an entropy term) is added, not estimated.
    analytic = problem.analytic_grad if isinstance(problem, HasAnalyticGrad) else None
    state = estimators.initial_state(estimator)
    states = [state]  # the estimator's state at each θ_t, so that a probe measures it as used
    opt_state = optimizer.init(theta)
    trajectory = np.empty((steps + 1, theta.size))
    trajectory[0] = theta
    stop, diverged = steps, False
    several = len(family.learned) > 1
    clock, estimating = time.perf_counter, 0.0
    # Overflow is detected below and recorded as divergence, not reported as a warning.
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            params = families.unflatten(family, theta, params0)
            start = clock()
            if state is None:  # the plain case, kept lean: it runs T times
                per_sample = estimator(problem, family, params, rng, samples)
            else:
                per_sample, state = estimator(problem, family, params, rng, samples, state=state)
            estimating += clock() - start
            # np.mean's own steps, without its Python wrapper: it costs more than a 2-d step.
            grad = np.add.reduce(per_sample, axis=0) / per_sample.shape[0]
            if analytic is not None:
                grad = grad + analytic(family, params)
            delta, opt_state = optimizer.update(grad, opt_state, step_size)
            theta = theta - delta
            trajectory[t] = theta
            states.append(state)
            r = theta[:d] - anchor
            if not r @ r <= bound2 or (several and not np.all(np.isfinite(theta))):  # also catches NaN
                stop, diverged = t, True
                break
        trajectory = trajectory[: stop + 1]
        if x is not None:
            dist = np.sqrt(np.einsum("ij,ij->i", trajectory[:, :d] - x, trajectory[:, :d] - x))

        logged = log_steps(steps, log_points)
        logged = logged[logged < stop] if diverged else logged
        if diverged:
            logged = np.append(logged, stop)
        exact_grad = problem.exact_grad if isinstance(problem, HasExactGradient) else None
        names = [c for c in CURVES if x is not None or c not in DISTANCE]
        names += list(BIAS_CURVES) if exact_grad is not None else []
        if several:
            names += [f"{name}/{block}" for block in family.learned for name in BLOCK_MEASURES]
        curves = {name: np.full(logged.size, math.nan) for name in names}
        biased = estimators.biased(estimator)
        exact_bias = problem.exact_bias if isinstance(problem, HasExactBias) else None
        extra = problem.curve_values if isinstance(problem, HasCurves) else None
        cost = estimators.evaluations(estimator, family, params0, samples)
        if cost is None:
            del curves["work_normalized_variance"]
        for k, t in enumerate(logged):
            params = families.unflatten(family, trajectory[t], params0)
            start = clock()
            est = probe(estimator, problem, family, params, probe_rng(seed, int(t)), samples, variance_samples,
                        state=states[t])
            if t == 0 and stop == 0:
                estimating = (clock() - start) / variance_samples
            measured = probe_variance(est, family, params)
            exact = exact_variance(problem, config, family, params, samples)
            curves["loss"][k] = problem.loss(params)
            if x is not None:
                curves["dist_to_opt"][k] = dist[t]
            for block, value in measured.items():
                suffix = f"/{block}" if block else ""
                curves["grad_variance" + suffix][k] = value.value
                curves["grad_variance_se" + suffix][k] = value.se
                curves["grad_variance_exact" + suffix][k] = exact[block]
            total = measured[""].value
            if cost is not None:
                curves["work_normalized_variance"][k] = total * cost
            if exact_grad is not None:
                g = families.flatten(family, exact_grad(params))
                curves["grad_snr"][k] = (g @ g) / total if total > 0 else math.nan
                b = probe_bias(est, g)
                curves["grad_bias_sq"][k], curves["grad_bias_sq_se"][k] = b.bias_sq, b.bias_sq_se
                curves["grad_mse"][k], curves["grad_cosine"][k] = b.mse, b.cosine
                # An unbiased estimator's bias is 0 exactly; a biased one's only where derived.
                known = exact_bias(config, family, params) if biased and exact_bias is not None else None
                curves["grad_bias_sq_exact"][k] = (math.nan if known is None else known) if biased else 0.0
            for name, value in (extra(params) if extra is not None else {}).items():
                curves.setdefault(name, np.full(logged.size, math.nan))[k] = value
        final = families.unflatten(family, trajectory[-1], params0)
        summary = {"final_loss": _finite(problem.loss(final))}
        if x is not None:
            tol = tolerance * problem.distance
            hits = np.flatnonzero(dist <= tol)
            summary |= {
                "final_dist": _finite(dist[-1]),
                "best_dist": _finite(np.nanmin(dist)) if np.isfinite(dist).any() else math.nan,
                "steps_to_tol": float(hits[0]) if hits.size else float(steps + 1),
                "converged": float(not diverged and dist[-1] <= tol),
            }
        summary |= summarize(curves, diverged=diverged, started=tic, estimating=estimating, stop=stop, cost=cost)
    return RunResult(trajectory, logged, curves, summary)


def summarize(curves: dict[str, np.ndarray], *, diverged: bool, started: float, estimating: float, stop: int,
              cost: float | None) -> dict[str, float]:
    """The summaries every run logs after its own: ``diverged``, ``mean_grad_variance``, the timings
    (``started`` the run's ``perf_counter`` at its start, ``estimating`` the seconds spent in the
    estimator over ``stop`` steps, or in the probe at θ₀ per estimate when no step was taken) and
    ``evals_per_estimate`` where the cost is known. Non-finite curve values become NaN, in place."""
    for values in curves.values():
        values[~np.isfinite(values)] = np.nan
    variances = curves["grad_variance"][np.isfinite(curves["grad_variance"])]
    summary = {
        "diverged": float(diverged),
        "mean_grad_variance": float(variances.mean()) if variances.size else math.nan,
        "wall_time_s": time.perf_counter() - started,
        "wall_time_per_estimate_s": estimating / stop if stop else estimating,
    }
    if cost is not None:
        summary["evals_per_estimate"] = cost
    return summary
