"""The SGD loop and its diagnostics, without tracking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import estimators
from experiments.problems import Quadratic
from experiments.sgd import log_steps, run_sgd

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
    assert {k: v for k, v in a.summary.items() if k != "wall_time_s"} == {
        k: v for k, v in b.summary.items() if k != "wall_time_s"
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
