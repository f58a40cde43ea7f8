r"""Training a model whose gradient is partly estimated: the loop for a :class:`problems.base.Trainable`.

Each step t takes a minibatch x_t, the family's parameters per datum at θ_t and the integrand f
(``problem.integrand``); the estimator gives N per-sample estimates of ∇ E_q[f] per datum, whose
mean g the problem turns into ∇θ (``problem.backward``): the chain rule for the encoder, and the
rest of the model's gradient exactly, given the samples z = sample(params, ε) from the estimator's
own base noise ε (its first draw, replayed from a copy of the generator: the same draws, without
the estimator having to return them). The optimizer (Adam in the preset) then steps θ.

Randomness: θ₀ from ``SeedSequence(seed, spawn_key=(2,))``; minibatches and the estimator's
draws from the trajectory's stream (as :func:`experiments.sgd.run_sgd`'s); the probe at step t
from the probe's stream at t, the curves and the loss at t from ``spawn_key=(3, t)``. So a run's
numbers depend on its config and seed alone, not on ``variance_samples`` or ``log_points``.

Curves at the logged steps: the problem's (``elbo``, ``test_elbo``), ``loss`` (its objective),
``grad_variance`` (and ``grad_variance_se``) of the encoder's gradient on the problem's fixed
probe batch, from ``variance_samples`` estimates in one vectorised call, and
``work_normalized_variance``; the summaries of :func:`experiments.sgd.summarize`.
"""

from __future__ import annotations

import math
import time

import numpy as np

import estimators
from estimators.core import Wrapper
from estimators.sampling import independent
from experiments import optimizers
from experiments.optimizers import Optimizer
from experiments.sgd import RunResult, _finite, log_steps, probe_rng, summarize, trace_variance, trajectory_rng

CURVES = ("loss", "grad_variance", "grad_variance_se", "work_normalized_variance")


def init_rng(seed: int) -> np.random.Generator:
    """θ₀'s own stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))


def curve_rng(seed: int, step: int) -> np.random.Generator:
    """The stream of the problem's curves and loss at ``step`` (each gets a fresh copy of it)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, step)))


def sampling_of(estimator):
    """The sampling scheme bound to the estimator at the centre of ``estimator``'s wrappers."""
    while isinstance(estimator, Wrapper):
        estimator = estimator.estimator
    return estimators.options(estimator)[1].get("sampling", independent)


def probe(problem, estimator, theta: np.ndarray, rng: np.random.Generator, samples: int, replicates: int,
          state=None) -> np.ndarray:
    """``replicates`` independent ``samples``-sample estimates of the encoder's gradient on the probe
    batch at θ, (V, m), from one call of shape (V, N)."""
    x = problem.probe_batch
    f, params = problem.integrand(theta, x)
    shape = (replicates, samples)
    per_sample = (estimator(f, problem.family, params, rng, shape) if state is None
                  else estimator(f, problem.family, params, rng, shape, state=state)[0])
    return problem.encoder_grad(x, per_sample.mean(axis=1), params)


def replica(rng: np.random.Generator) -> np.random.Generator:
    """A generator in ``rng``'s state, drawing what ``rng`` will draw next (a third of a deepcopy's time)."""
    bits = type(rng.bit_generator)(0)
    bits.state = rng.bit_generator.state
    return np.random.Generator(bits)


def gradient(problem, estimator, theta: np.ndarray, x: np.ndarray, rng: np.random.Generator, samples: int,
             sampling=independent, state=None) -> tuple[np.ndarray, object, float]:
    """One step's ∇θ on the minibatch ``x`` (flat), the estimator's next state, and the seconds its call
    took: the encoder's part from the ``samples``-sample estimate, the model's exact given the samples
    z that the estimator's base noise gives (replayed from a copy of ``rng``)."""
    family = problem.family
    f, params = problem.integrand(theta, x)
    replay = replica(rng)
    start = time.perf_counter()
    if state is None:
        per_sample = estimator(f, family, params, rng, samples)
    else:
        per_sample, state = estimator(f, family, params, rng, samples, state=state)
    seconds = time.perf_counter() - start
    z = family.sample(params, family.noise(sampling, replay, (samples,), params))
    return problem.backward(theta, x, per_sample.mean(axis=0), params, z), state, seconds


def run_training(problem, estimator, *, step_size: float, steps: int, samples: int, seed: int,
                 variance_samples: int, log_points: int, optimizer: Optimizer | None = None) -> RunResult:
    r"""Train ``problem``'s model for ``steps`` steps from θ₀; see the module docstring.

    The run diverges, and stops at that step, when θ or its gradient is non-finite. The
    trajectory holds θ at the logged steps only (θ has thousands of entries), in the order of
    ``RunResult.steps``. ``wall_time_per_estimate_s`` is the mean time of the estimator's calls
    in the loop (with ``steps`` = 0, of the probe at θ₀ per estimate).
    """
    tic = time.perf_counter()
    optimizer = optimizer or optimizers.sgd()
    family = problem.family
    theta = problem.init(init_rng(seed))
    rng = trajectory_rng(seed)
    sampling = sampling_of(estimator)
    batches = problem.minibatches(rng)
    state = estimators.initial_state(estimator)
    opt_state = optimizer.init(theta)
    logged = log_steps(steps, log_points)
    wanted = set(logged.tolist())
    kept = {0: (theta, state)}  # θ and the estimator's state at the logged steps, for the probe
    stop, diverged = steps, False
    clock, estimating = time.perf_counter, 0.0
    with np.errstate(all="ignore"):  # overflow is recorded as divergence below
        for t in range(1, steps + 1):
            grad, state, seconds = gradient(problem, estimator, theta, next(batches), rng, samples, sampling, state)
            estimating += seconds
            delta, opt_state = optimizer.update(grad, opt_state, step_size)
            theta = theta - delta
            if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(grad))):
                stop, diverged = t, True
                break
            if t in wanted:
                kept[t] = (theta, state)
        if diverged:
            logged = np.append(logged[logged < stop], stop)
            kept[stop] = (theta, state)

        names = list(CURVES) + list(problem.curves)
        curves = {name: np.full(logged.size, math.nan) for name in names}
        cost = estimators.evaluations(estimator, family, problem.integrand(kept[0][0], problem.probe_batch)[1],
                                      samples)
        if cost is None:
            del curves["work_normalized_variance"]
        for k, t in enumerate(logged):
            theta_t, state_t = kept[int(t)]
            start = clock()
            est = probe(problem, estimator, theta_t, probe_rng(seed, int(t)), samples, variance_samples, state_t)
            if t == 0 and stop == 0:
                estimating = (clock() - start) / variance_samples
            measured = trace_variance(est - est.mean(axis=0))
            curves["grad_variance"][k], curves["grad_variance_se"][k] = measured.value, measured.se
            if cost is not None:
                curves["work_normalized_variance"][k] = measured.value * cost
            values = problem.curve_values(theta_t, curve_rng(seed, int(t)))
            for name in ("loss", *problem.curves):
                curves[name][k] = values[name]
        trajectory = np.stack([kept[int(t)][0] for t in logged])
        final_loss = _finite(curves["loss"][-1])
        summary = {"final_loss": final_loss}
        summary |= summarize(curves, diverged=diverged, started=tic, estimating=estimating, stop=stop, cost=cost)
    return RunResult(trajectory, logged, curves, summary)

