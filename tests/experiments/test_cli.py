"""End to end through ``python -m experiments.run`` into a temporary SQLite store."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import estimators
from problems.quadratic import Quadratic
from experiments.runner import execute
from experiments.sgd import BIAS_CURVES, TIMINGS

CURVES = ["loss", "dist_to_opt", "grad_variance", "grad_variance_exact", "grad_snr", "work_normalized_variance"]
SUMMARY = ["final_loss", "final_dist", "best_dist", "steps_to_tol", "converged", "diverged", "mean_grad_variance",
           "wall_time_s", "evals_per_estimate", "wall_time_per_estimate_s"]
GRID = dict(estimator=["score_function", "reparameterization"], step_size=["0.001", "0.01"],
            distance=["1", "10"], seed=["0", "1"])


def children(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["tags.run_kind"] == "job"]


def parents(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["tags.run_kind"] == "sweep"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A small real multirun: 16 jobs of 200 steps, variance measured from 2,000 estimates.

    Launched in batches of 5 (5, 5, 5, 1), so every check below also covers batching.
    """
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("sweep"))
    proc = store.run(
        "-m",
        "steps=200",
        "variance_samples=2000",
        "log_points=5",
        "hydra.sweeper.max_batch_size=5",
        "estimator=" + ",".join(GRID["estimator"]),
        "step_size=" + ",".join(GRID["step_size"]),
        "problem.distance=" + ",".join(GRID["distance"]),
        "seed=" + ",".join(GRID["seed"]),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store, store.runs()


def test_one_finished_child_per_grid_point_under_one_parent(sweep):
    store, runs = sweep
    parent = parents(runs)
    assert len(parent) == 1 and parent["status"].item() == "FINISHED"
    kids = children(runs)
    assert (kids["tags.mlflow.parentRunId"] == parent["run_id"].item()).all()
    assert (kids["status"] == "FINISHED").all()
    points = set(zip(kids["params.estimator.name"], kids["params.step_size"].astype(float),
                     kids["params.problem.distance"].astype(float), kids["params.seed"].astype(int)))
    expected = {(e, float(a), float(d), int(s)) for e, a, d, s in itertools.product(*GRID.values())}
    assert points == expected and len(kids) == len(expected)
    assert parent["metrics.jobs"].item() == len(expected) and parent["metrics.jobs_failed"].item() == 0


def test_batches_number_their_jobs_on_from_the_last(sweep):
    store, _ = sweep
    folders = [p.name for p in (store.root / "multirun").iterdir() if p.is_dir() and p.name.isdigit()]
    assert sorted(map(int, folders)) == list(range(16))


def test_contract_names_are_logged(sweep):
    store, runs = sweep
    kids = children(runs)
    for name in CURVES + SUMMARY:
        assert kids[f"metrics.{name}"].notna().all(), name
    for tag in ["estimator", "problem", "sweep_id", "git_commit"]:
        assert kids[f"tags.{tag}"].notna().all(), tag
    assert kids["tags.sweep_id"].nunique() == 1
    assert kids["tags.sweep_id"].iloc[0] == parents(runs)["tags.sweep_id"].item()
    assert (kids["tags.estimator"] == kids["params.estimator.name"]).all()
    for key in ["step_size", "steps", "samples", "seed", "variance_samples", "log_points", "tolerance",
                "problem.distance", "problem.dim", "problem.sigma"]:
        assert kids[f"params.{key}"].notna().all(), key
    client = store.client()
    run_id = kids["run_id"].iloc[0]
    assert {a.path for a in client.list_artifacts(run_id)} == {"config.yaml", "trajectory.npy"}
    history = client.get_metric_history(run_id, "dist_to_opt")
    assert [m.step for m in history] == [0, 50, 100, 150, 200]


def test_grad_variance_at_start_matches_closed_form(sweep):
    """Measured tr Cov at θ₀ vs exact, within 5 of the probe's own standard errors."""
    store, runs = sweep
    client = store.client()
    for _, run in children(runs).iterrows():
        at_start = {
            key: next(m.value for m in client.get_metric_history(run.run_id, key) if m.step == 0)
            for key in ("grad_variance", "grad_variance_se", "grad_variance_exact")
        }
        problem = Quadratic(dim=2, distance=float(run["params.problem.distance"]))
        config = estimators.spec(run["params.estimator.name"])
        assert at_start["grad_variance_exact"] == pytest.approx(
            problem.exact_variance(config, problem.family, problem.params0, 1)["mean"])
        assert abs(at_start["grad_variance"] - at_start["grad_variance_exact"]) < 5 * at_start["grad_variance_se"]


def test_runs_that_share_a_seed_share_the_base_noise(sweep):
    """Two estimators, same seed: the first step's noise is the same ε (see the estimators' forms)."""
    store, runs = sweep
    kids = children(runs)
    pick = kids[(kids["params.step_size"].astype(float) == 0.01) & (kids["params.problem.distance"] == "10")
                & (kids["params.seed"] == "0")]
    theta1 = {}
    for _, run in pick.iterrows():
        path = store.client().download_artifacts(run.run_id, "trajectory.npy", str(store.root))
        theta1[run["params.estimator.name"]] = np.load(path)[1]
    problem = Quadratic(dim=2, distance=10.0)
    eps = (-theta1["reparameterization"] / 0.01 / 2 + problem.optimum) / problem.sigma
    expected_sf = -0.01 * problem(problem.sigma * eps) * eps / problem.sigma
    np.testing.assert_allclose(theta1["score_function"], expected_sf, rtol=1e-8)


def test_diverging_runs_are_results_and_the_sweep_completes(store):
    proc = store.run("-m", "estimator=score_function", "step_size=1e-2", "problem.distance=100", "seed=0,1",
                     "variance_samples=10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr
    runs = store.runs()
    kids = children(runs)
    assert len(kids) == 2 and (kids["status"] == "FINISHED").all()
    assert (kids["metrics.diverged"] == 1).all() and (kids["metrics.converged"] == 0).all()
    parent = parents(runs)
    assert parent["status"].item() == "FINISHED" and parent["metrics.runs_diverged"].item() == 2


def test_a_failing_job_fails_alone_and_the_parent_is_closed(store):
    proc = store.run("-m", "hydra.sweeper.params=null", "problem._target_=tests.experiments.failing.FailsAtDistanceTen",
                     "problem.distance=1,10,100",
                     "steps=20", "variance_samples=10")
    assert proc.returncode != 0
    runs = store.runs()
    kids = children(runs).set_index("params.problem.distance")
    assert kids.loc["10", "status"] == "FAILED"
    assert (kids.loc[["1", "100"], "status"] == "FINISHED").all()
    parent = parents(runs)
    assert parent["status"].item() == "FAILED" and parent["metrics.jobs_failed"].item() == 1
    assert not (runs["status"] == "RUNNING").any()


def test_same_config_twice_logs_identical_metrics(compose_config, tmp_path):
    cfg = compose_config(f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "steps=300", "step_size=1e-3",
                         "problem.distance=10", "samples=3")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    histories = []
    for _ in range(2):
        run_id = execute(cfg)["run_id"]
        metrics = client.get_run(run_id).data.metrics
        histories.append({
            key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
            for key in metrics if key not in TIMINGS
        })
    # Every curve (the bias curves included, since the quadratic knows ∇L), every summary but the
    # timings, and grad_variance_se.
    assert histories[0] == histories[1]
    assert len(histories[0]) == len(CURVES) + len(BIAS_CURVES) + len(SUMMARY) - len(TIMINGS) + 1


# One invalid value per key of the contract's table, on the command line; sweeps included.
CLI_BAD = [
    ("estimator=nope", "estimator"),
    ("problem=nope", "problem"),
    ("step_size=-1", "step_size"),
    ("step_size=abc", "step_size"),
    ("step_size=nan", "step_size"),
    ("tolerance=inf", "tolerance"),
    ("steps=-1", "steps"),
    ("samples=0", "samples"),
    ("seed=-2", "seed"),
    ("variance_samples=1", "variance_samples"),
    ("log_points=1", "log_points"),
    ("tolerance=0", "tolerance"),
    ("problem.distance=-5", "problem.distance"),
    ("problem.dim=0", "problem.dim"),
    ("problem.sigma=0", "problem.sigma"),
    ("tracking.experiment=''", "tracking.experiment"),
    ("-m step_size=1e-3,-1", "step_size"),
    ("-m estimator=score_function,nope", "estimator"),
    ("problem=bernoulli_toy estimator=reparameterization", "estimator=reparameterization"),
    ("-m hydra.sweeper.params=null problem=bernoulli_toy estimator=score_function,reparameterization",
     "estimator=reparameterization"),
    ("problem=bernoulli_toy problem.target=nan", "problem.target"),
    # Keys the config does not have: one line with the nearest ones, not Hydra's traceback-like lines.
    ("stepsize=1e-3", "stepsize"),
    ("problem=gamma_expectation problem.mu0=2", "problem.mu0"),
    ("-m problem=quadratic,gamma_expectation problem.rate0=2", "problem.rate0 with problem=quadratic"),
]


@pytest.mark.parametrize("args, key", CLI_BAD)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(store, args, key):
    proc = store.run(*args.split())
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"mcgrad-bench: error: invalid {key}"), proc.stderr
    assert "allowed:" in lines[0]
    assert not store.db.exists() and not (store.root / "mlruns").exists()
    assert proc.returncode == 2


def test_an_unknown_key_names_the_nearest_ones(store):
    proc = store.run("stepsize=1e-3")
    assert "nearest: step_size, steps" in proc.stderr and "+stepsize=… to add one" in proc.stderr
    report = store.run("report.output_dir=/nowhere", module="experiments.report")
    assert report.returncode == 2 and report.stderr.strip().splitlines() == [
        "mcgrad-bench: error: invalid report.output_dir: the config has no such key; allowed: an existing key "
        "(nearest: output_dir), or +report.output_dir=… to add one"]
