"""The training loop of a Trainable problem (experiments.training), on problem=binary_vae."""

from __future__ import annotations

import math

import numpy as np
import pytest

import estimators
from estimators import arm
from experiments import optimizers
from experiments.training import gradient, run_training
from problems import binary_vae as vae
from problems.binary_vae import BinaryVAE
from tests.experiments.test_cli import children

Z = 5.0


def negative_elbo(problem: BinaryVAE, theta: np.ndarray, x: np.ndarray) -> float:
    """The batch's mean −ELBO by enumerating the 2^L latents (independent of the loop's code)."""
    return -float(vae.exact_elbo(vae.unflatten(theta, problem._like), x).mean())


@pytest.mark.parametrize("estimator", [arm.disarm, estimators.score_function], ids=["disarm", "score_function"])
def test_the_loops_gradient_is_unbiased_for_the_exact_negative_elbo(estimator):
    problem = BinaryVAE(latents=4, batch=6)
    theta = problem.init(np.random.default_rng(1))
    theta += 0.3 * np.random.default_rng(2).standard_normal(theta.size)  # away from the symmetric start
    x = problem.data[0][:6]
    h = 1e-5
    exact = np.empty(theta.size)
    for i in range(theta.size):  # central differences of the enumerated objective
        e = np.zeros(theta.size)
        e[i] = h
        exact[i] = (negative_elbo(problem, theta + e, x) - negative_elbo(problem, theta - e, x)) / (2 * h)
    rng = np.random.default_rng(3)
    reps = 300
    grads = np.stack([gradient(problem, estimator, theta, x, rng, 50)[0] for _ in range(reps)])
    mean, se = grads.mean(axis=0), grads.std(axis=0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(mean - exact) <= Z * se + 1e-6), np.max(np.abs(mean - exact) / (se + 1e-12))


def test_runs_are_deterministic_and_do_not_depend_on_what_is_measured():
    problem = BinaryVAE(latents=5, batch=10, test_samples=5)
    settings = dict(step_size=0.01, steps=6, samples=2, seed=4, optimizer=optimizers.adam())
    one = run_training(problem, arm.disarm, variance_samples=4, log_points=7, **settings)
    two = run_training(problem, arm.disarm, variance_samples=9, log_points=2, **settings)
    np.testing.assert_array_equal(one.trajectory[-1], two.trajectory[-1])
    assert one.curves["elbo"][-1] == two.curves["elbo"][-1]
    assert one.curves["loss"][-1] == -one.curves["elbo"][-1]
    assert one.summary["evals_per_estimate"] == 4.0  # DisARM: two evaluations of f per pair


def test_bad_problem_keys_are_refused_in_one_line(store):
    proc = store.run("problem=binary_vae", "problem.latent=poisson", "steps=1")
    assert proc.returncode == 2 and "problem.latent='poisson'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not store.db.exists() or store.runs().empty


def test_a_short_cli_run_logs_every_curve(store):
    proc = store.run("-m", "problem=binary_vae", "estimator=rebar", "optimizer=adam", "step_size=0.01", "steps=20",
                     "samples=2", "variance_samples=5", "log_points=3", "problem.test_samples=10",
                     "hydra.sweeper.params=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [r for _, r in children(store.runs()).iterrows()]
    client = store.client()
    for name in ("loss", "elbo", "test_elbo", "grad_variance", "grad_variance_se", "work_normalized_variance"):
        history = client.get_metric_history(run.run_id, name)
        assert sorted(m.step for m in history) == [0, 10, 20], name
        assert all(math.isfinite(m.value) for m in history), name
    for name in ("final_loss", "evals_per_estimate", "wall_time_per_estimate_s", "mean_grad_variance", "diverged"):
        assert math.isfinite(run[f"metrics.{name}"]), name
    assert run["metrics.evals_per_estimate"] == 6.0  # REBAR: three evaluations per sample, N = 2
    assert run["tags.curves"] == "elbo,test_elbo"
