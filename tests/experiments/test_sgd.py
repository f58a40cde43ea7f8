"""The SGD loop and its diagnostics, without tracking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import estimators
from problems.quadratic import Quadratic
from experiments.sgd import TIMINGS, log_steps, run_sgd

BASE = dict(step_size=1e-2, steps=300, samples=2, seed=3, variance_samples=50, log_points=11, tolerance=0.05,
            divergence_factor=100.0)


def run(estimator=estimators.reparameterization, problem=None, **overrides):
    return run_sgd(problem or Quadratic(dim=2, distance=10.0), estimator, **{**BASE, **overrides})


@pytest.mark.parametrize("steps, points", [(0, 5), (1, 5), (10, 2), (10, 11), (10, 50), (5000, 101), (7, 3)])
def test_log_steps_bounded_and_include_ends(steps, points):
    ls = log_steps(steps, points)
    assert ls[0] == 0 and ls[-1] == steps
    assert len(ls) <= points and np.all(np.diff(ls) > 0)


def test_same_config_same_numbers():
    a, b = run(), run()
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    for name in a.curves:
        np.testing.assert_array_equal(a.curves[name], b.curves[name])
    assert {k: v for k, v in a.summary.items() if k not in TIMINGS} == {
        k: v for k, v in b.summary.items() if k not in TIMINGS
    }


@pytest.mark.parametrize("estimator", [estimators.score_function, estimators.reparameterization])
def test_measurement_does_not_change_trajectory(estimator):
    ref = run(estimator)
    for changed in (dict(variance_samples=7), dict(log_points=2), dict(log_points=300)):
        other = run(estimator, **changed)
        np.testing.assert_array_equal(ref.trajectory, other.trajectory)
        for k in ("final_dist", "final_loss", "steps_to_tol", "best_dist", "diverged"):
            assert ref.summary[k] == other.summary[k]


def test_probe_at_a_step_does_not_depend_on_other_probes():
    few, many = run(log_points=2), run(log_points=301)
    last = np.flatnonzero(many.steps == BASE["steps"])[0]
    assert few.curves["grad_variance"][-1] == many.curves["grad_variance"][last]


def test_curves_and_summary_are_consistent():
    problem = Quadratic(dim=2, distance=10.0)
    res = run(problem=problem)
    x = problem.optimum
    np.testing.assert_allclose(res.curves["dist_to_opt"], np.linalg.norm(res.trajectory[res.steps] - x, axis=1))
    np.testing.assert_allclose(res.curves["loss"], res.curves["dist_to_opt"] ** 2 + 2 * problem.sigma**2)
    np.testing.assert_allclose(res.curves["grad_variance_exact"], 4 * 2 / BASE["samples"])
    assert res.summary["final_dist"] == res.curves["dist_to_opt"][-1]
    dist = np.linalg.norm(res.trajectory - x, axis=1)
    hit = np.flatnonzero(dist <= BASE["tolerance"] * problem.distance)
    assert res.summary["steps_to_tol"] == (hit[0] if hit.size else BASE["steps"] + 1)
    assert res.summary["best_dist"] == dist.min()


def test_steps_zero_only_evaluates_at_start():
    problem = Quadratic(dim=3, distance=7.0)
    res = run(problem=problem, steps=0)
    assert res.trajectory.shape == (1, 3) and list(res.steps) == [0]
    assert res.summary["final_dist"] == pytest.approx(7.0)
    assert res.summary["steps_to_tol"] == 1.0


def test_score_function_diverges_far_away_with_a_large_step_and_is_recorded_quietly():
    problem = Quadratic(dim=2, distance=100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning spam on overflow
        res = run(estimators.score_function, problem=problem, steps=5000, step_size=1e-2, samples=1)
    assert res.summary["diverged"] == 1.0 and res.summary["converged"] == 0.0
    stop = len(res.trajectory) - 1
    assert stop < 5000 and res.steps[-1] == stop
    assert np.all(np.isfinite(res.trajectory[:-1]))


def test_reparameterization_converges_on_the_founding_setting():
    res = run(problem=Quadratic(), steps=5000, step_size=1e-2, samples=1)
    assert res.summary["diverged"] == 0.0 and res.summary["converged"] == 1.0
    assert res.summary["steps_to_tol"] < 5000


# --- Options: the plain default pinned to today's loop, a learned scale, carried state, optimizers.
import functools  # noqa: E402

from experiments import optimizers  # noqa: E402
from problems.gaussian_expectation import GaussianExpectation  # noqa: E402
from experiments.sgd import BIAS_CURVES, probe_rng, trajectory_rng  # noqa: E402


def _today_loop(problem, kind, step_size, steps, samples, seed):
    """SGD as first written, with the estimators' first formulas: the trajectory to reproduce."""
    rng, theta, out = trajectory_rng(seed), np.array(problem.params0.mean, dtype=float), [problem.params0.mean]
    for _ in range(steps):
        eps = rng.standard_normal((samples, theta.size))
        z = theta + problem.sigma * eps
        g = problem(z)[:, None] * (eps / problem.sigma) if kind == "score_function" else problem.grad(z)
        theta = theta - step_size * g.mean(axis=0)
        out.append(theta)
    return np.array(out)


def _today_probe(problem, kind, theta, seed, t, samples, replicates):
    eps = probe_rng(seed, t).standard_normal((replicates * samples, theta.size))
    z = theta + problem.sigma * eps
    g = problem(z)[:, None] * (eps / problem.sigma) if kind == "score_function" else problem.grad(z)
    est = g.reshape(replicates, samples, -1).mean(axis=1)
    dev = est - est.mean(axis=0)
    return float((np.einsum("ij,ij->i", dev, dev) * (replicates / (replicates - 1))).mean())


@pytest.mark.parametrize("kind", ["score_function", "reparameterization"])
def test_default_configuration_reproduces_todays_run_bit_for_bit(kind):
    """Estimator bound to its default options, as the runner builds it: same θ_t and probes as before."""
    configured = functools.partial(getattr(estimators, kind), sampling=estimators.sampling.independent)
    if kind == "score_function":
        configured = functools.partial(configured, baseline=estimators.baselines.none(),
                                       control_variate=estimators.control_variates.none())
    configured = estimators.configure(configured)  # as the runner builds it: "none" wrappers are the identity
    problem = Quadratic(dim=2, distance=10.0)
    res = run(configured, problem=problem, step_size=1e-3, steps=200, samples=3)
    np.testing.assert_array_equal(res.trajectory, _today_loop(problem, kind, 1e-3, 200, 3, BASE["seed"]))
    for t, value in zip(res.steps, res.curves["grad_variance"]):
        assert value == _today_probe(problem, kind, res.trajectory[t], BASE["seed"], int(t), 3,
                                     BASE["variance_samples"])
    # The contract's curves, the bias curves every problem with an exact gradient logs since, and
    # the variance at equal work every estimator that declares its cost logs.
    assert set(res.curves) == {"loss", "dist_to_opt", "grad_variance", "grad_variance_se", "grad_variance_exact",
                               "grad_snr", *BIAS_CURVES, "work_normalized_variance"}
    np.testing.assert_array_equal(res.curves["work_normalized_variance"], res.curves["grad_variance"] * 3)
    assert res.summary["evals_per_estimate"] == 3


def test_learned_scale_logs_both_blocks_and_their_exact_values():
    problem = GaussianExpectation(f="cos", k=2.0, dim=2)
    res = run(estimators.measure_valued, problem=problem, learn_scale=True, steps=50, step_size=0.05,
              variance_samples=4000, samples=1)
    assert res.trajectory.shape == (51, 4) and res.trajectory[0].tolist() == [1.0, 1.0, 1.0, 1.0]
    c = res.curves
    np.testing.assert_allclose(c["grad_variance"], c["grad_variance/mean"] + c["grad_variance/scale"], rtol=1e-12)
    np.testing.assert_allclose(c["grad_variance_exact"], c["grad_variance_exact/mean"] + c["grad_variance_exact/scale"])
    for block in ("mean", "scale"):
        err = np.abs(c[f"grad_variance/{block}"] - c[f"grad_variance_exact/{block}"])
        np.testing.assert_array_less(err, 5 * c[f"grad_variance_se/{block}"])
    final = res.trajectory[-1]
    assert c["loss"][-1] == pytest.approx(problem.loss(estimators.GaussianParams(final[:2], final[2:])))


def test_learned_scale_shrinks_sigma_on_the_quadratic():
    """∂L/∂σ = 2σ: the scale decays geometrically, σ_T ≈ σ₀(1 − 2α)^T for the pathwise estimator's mean."""
    res = run(estimators.reparameterization, problem=Quadratic(dim=2, distance=10.0), learn_scale=True, steps=300,
              step_size=1e-2, samples=16)
    sigma = res.trajectory[-1, 2:]
    assert np.all(sigma > 0) and np.all(sigma < 0.1) and res.summary["diverged"] == 0.0


def test_carried_state_is_threaded_and_not_advanced_by_probes():
    estimator = estimators.configure(
        functools.partial(estimators.score_function, baseline=estimators.baselines.moving_average(0.9)))
    ref = run(estimator, step_size=1e-3)
    for changed in (dict(variance_samples=7), dict(log_points=2)):
        np.testing.assert_array_equal(ref.trajectory, run(estimator, step_size=1e-3, **changed).trajectory)
    # By hand: b_{t+1} = 0.9 b_t + 0.1 mean f(z_t); the step uses b_t.
    problem, rng, theta, b = Quadratic(dim=2, distance=10.0), trajectory_rng(BASE["seed"]), np.zeros(2), 0.0
    for t in range(1, 6):
        eps = rng.standard_normal((2, 2))
        f = problem(theta + eps)
        theta = theta - 1e-3 * ((f - b)[:, None] * eps).mean(axis=0)
        b = 0.9 * b + 0.1 * f.mean()
        np.testing.assert_allclose(ref.trajectory[t], theta, rtol=1e-12)


def test_adam_converges_on_the_founding_setting_and_sgd_is_the_default():
    res = run(estimators.reparameterization, problem=Quadratic(), steps=3000, step_size=0.5, samples=1,
              optimizer=optimizers.adam())
    assert res.summary["converged"] == 1.0
    plain = run(optimizer=optimizers.sgd())
    np.testing.assert_array_equal(plain.trajectory, run().trajectory)


def test_a_problem_without_an_optimum_logs_no_distances_and_never_converges():
    res = run(estimators.reparameterization, problem=GaussianExpectation(f="exp", k=1.0), steps=100, step_size=0.1)
    assert res.summary["diverged"] == 0.0 and len(res.trajectory) == 101
    # Intended change of the family/problem API: without an optimum the distance curve and the
    # distance summaries are absent, where they were NaN (and steps_to_tol = T + 1, converged = 0).
    assert "dist_to_opt" not in res.curves and "final_dist" not in res.summary
    assert "steps_to_tol" not in res.summary and "converged" not in res.summary
    assert "best_dist" not in res.summary
    assert res.trajectory[-1, 0] > 1.0  # the mean moves away from 0, down the slope of exp(−x²)


# --- The bias probe: an unbiased estimate of ‖E ḡ − ∇L‖², checked on draws with a known bias.
from experiments.sgd import probe_bias  # noqa: E402


def test_bias_probe_is_the_u_statistic_and_recovers_a_known_bias():
    rng = np.random.default_rng(11)
    grad, bias = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.0, -0.4])
    est = grad + bias + rng.standard_normal((50_000, 3)) * np.array([1.0, 2.0, 0.5])
    b = probe_bias(est, grad)
    x = est - grad
    v = len(x)
    cov_trace = np.sum(np.var(x, axis=0, ddof=1))
    assert b.bias_sq == pytest.approx(float(x.mean(axis=0) @ x.mean(axis=0)) - cov_trace / v, rel=1e-9)
    assert abs(b.bias_sq - bias @ bias) < 5 * b.bias_sq_se
    assert b.mse == pytest.approx(float(np.mean(np.sum(x * x, axis=1))))
    assert -1.0 <= b.cosine <= 1.0


def test_unbiased_estimators_show_no_bias_on_the_quadratic():
    for estimator in (estimators.score_function, estimators.reparameterization, estimators.measure_valued):
        res = run(estimator, problem=Quadratic(dim=2, distance=10.0), steps=0, variance_samples=20_000)
        c = res.curves
        assert abs(c["grad_bias_sq"][0]) < 5 * c["grad_bias_sq_se"][0] and c["grad_bias_sq_exact"][0] == 0.0
        assert c["grad_mse"][0] == pytest.approx(c["grad_bias_sq"][0] + c["grad_variance"][0], rel=1e-3)
