"""Sweeps into an MLflow server on a real PostgreSQL: a parallel (joblib) sweep and its report,
resume after SIGTERM and after SIGKILL, and no credential of the URI written anywhere.

The server and the database are the session's (tests/services/conftest.py); each test works
in an experiment of its own.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import history
from experiments.report.data import histories
from tests.sweeps import (GRID40, ServerStore, assert_one_sweep_of, check_interrupted_sweep_resumes,
                          check_killed_sweep_resumes)

# Tiny jobs: the joblib sweep's cost is the launcher's and the server's, not the maths.
TINY = ["hydra.sweeper.params=null", "steps=20", "variance_samples=4", "log_points=5"]


@pytest.fixture(scope="module")
def joblib_sweep(tracking_server, tmp_path_factory):
    store = ServerStore(tmp_path_factory.mktemp("pg-joblib"), tracking_server.uri, "pg-joblib")
    proc = store.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, *GRID40)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store


def test_joblib_sweep_of_40_runs_into_the_postgres_backed_server(joblib_sweep):
    runs = joblib_sweep.runs()
    assert_one_sweep_of(runs, 40)
    jobs = runs[runs["tags.run_kind"] == "job"]
    # Curves went through the server into PostgreSQL: log_points=5 values per curve.
    client = joblib_sweep.client()
    history = client.get_metric_history(jobs["run_id"].iloc[0], "dist_to_opt")
    assert [m.step for m in history] == [0, 5, 10, 15, 20]
    assert {a.path for a in client.list_artifacts(jobs["run_id"].iloc[0])} == {"config.yaml", "trajectory.npy"}


def test_report_read_from_the_server_matches_the_runs(joblib_sweep, tmp_path):
    reports = tmp_path / "reports"
    proc = joblib_sweep.run("log_to_mlflow=false", f"output_dir={reports}", module="experiments.report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary,) = reports.rglob("summary.csv")
    table = pd.read_csv(summary).set_index(["estimator", "problem.distance"]).sort_index()

    # The same cells computed here from the runs as the server returns them.
    jobs = joblib_sweep.runs().query("`tags.run_kind` == 'job'")
    jobs = jobs.assign(distance=jobs["params.problem.distance"].astype(float))
    cells = jobs.groupby(["tags.estimator", "distance"]).agg(
        runs=("run_id", "size"),
        mean_grad_variance=("metrics.mean_grad_variance", "mean"),
        median_final_dist=("metrics.final_dist", "median"),
    )
    cells.index.names = table.index.names
    assert len(table) == 8 and list(table.index) == list(cells.index)
    assert (table["runs"] == 5).all() and (table["failed"] == 0).all()
    np.testing.assert_array_equal(table["runs"], cells["runs"])
    # summary.csv holds 6 significant digits.
    np.testing.assert_allclose(table["mean_grad_variance"], cells["mean_grad_variance"], rtol=1e-5)
    np.testing.assert_allclose(table["median_final_dist"], cells["median_final_dist"], rtol=1e-5)


def per_run(client, run_ids, key) -> list[tuple]:
    return [(r, m.step, m.value) for r in run_ids for m in client.get_metric_history(r, key)]


def canonical(rows) -> list[tuple]:
    return sorted((run, step, repr(float(value))) for run, step, value in rows)  # NaN == NaN


KEYS = ("dist_to_opt", "grad_variance")


@pytest.fixture(scope="module")
def read_per_run(joblib_sweep):
    """The sweep's job runs and one run with non-finite values, and every value of :data:`KEYS`
    read run by run (MLflow's documented API)."""
    client = joblib_sweep.client()
    ids = joblib_sweep.runs().query("`tags.run_kind` == 'job'")["run_id"].tolist()
    odd = client.create_run(client.create_experiment("pg-odd-values")).info.run_id
    for step, value in enumerate([1.5, float("nan"), float("inf"), -float("inf"), 0.0]):
        client.log_metric(odd, "dist_to_opt", value, step=step)
    client.set_terminated(odd)
    return client, [*ids, odd], {key: per_run(client, [*ids, odd], key) for key in KEYS}


@pytest.mark.parametrize(("max_runs", "max_values"), [(100, 25_000), (7, 25_000), (100, 12), (100, 3)],
                         ids=["one-request", "chunks", "cut-answers", "runs-over-the-cap"])
def test_bulk_histories_from_the_server_equal_per_run_reads(read_per_run, monkeypatch, max_runs, max_values):
    # Smaller caps than the server's make it cut answers for real (it takes the smaller
    # max_results): a cut inside a run is asked again; a run alone over the cap is read per run.
    monkeypatch.setattr(history, "MAX_RUNS", max_runs)
    monkeypatch.setattr(history, "MAX_VALUES", max_values)
    client, ids, expected = read_per_run
    if max_values < 5:  # every run is read twice: a few suffice
        ids = [*ids[:4], ids[-1]]
    for key in KEYS:
        bulk = history.bulk_histories(client, ids, key)
        rows = [row for row in expected[key] if row[0] in ids]
        assert len(bulk) == len(rows) >= 5 * (len(ids) - 1)
        assert canonical(bulk) == canonical(rows)


def test_report_reads_a_servers_curves_in_bulk(read_per_run, monkeypatch):
    client, ids, expected = read_per_run
    monkeypatch.setattr(client, "get_metric_history", None)  # a per-run read would fail
    frame = histories(client, ids, "dist_to_opt")
    assert canonical(frame[["run_id", "step", "value"]].itertuples(index=False)) == canonical(expected["dist_to_opt"])


@pytest.mark.parametrize("sig", [signal.SIGTERM], ids=lambda s: s.name)
def test_interrupted_sweep_resumes_on_the_server(tracking_server, tmp_path, sig):
    store = ServerStore(tmp_path, tracking_server.uri, f"pg-{sig.name.lower()}")
    check_interrupted_sweep_resumes(store, sig, tmp_path / "reports")


def test_killed_sweep_resumes_on_the_server(tracking_server, tmp_path):
    check_killed_sweep_resumes(ServerStore(tmp_path, tracking_server.uri, "pg-sigkill"))


SECRET = "s3cr3t-T0ken"


def test_credentials_in_the_tracking_uri_are_never_written(tracking_server, postgres, tmp_path):
    host = tracking_server.uri.removeprefix("http://")
    store = ServerStore(tmp_path, f"http://mcgrad:{SECRET}@{host}", "secrets")
    proc = store.run("-m", *TINY, "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = store.run(*TINY)
    assert single.returncode == 0, single.stderr[-3000:]
    report = store.run(f"output_dir={tmp_path / 'reports'}", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    assert any((tmp_path / "reports").rglob("index.html"))
    outputs = [proc, single, report]
    assert not any(SECRET in p.stdout + p.stderr for p in outputs)

    clean = ServerStore(tmp_path, tracking_server.uri, "secrets")
    runs = clean.runs()
    runs = runs[runs["tags.sweep_id"].notna() & runs["tags.mlflow.runName"].notna()]
    assert len(runs) == 4
    client = clean.client()
    for run_id in runs["run_id"]:  # the sweep's parent now holds the report too
        run = client.get_run(run_id)
        fields = [*run.data.params.items(), *run.data.tags.items(), run.info.run_name, run.info.artifact_uri]
        assert SECRET not in repr(fields)
        local = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl" / run_id)))
        for path in local.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    # Everything the store holds, every file the runs and the report left (Hydra's outputs
    # and logs, the report), and the server's artifacts.
    assert SECRET not in postgres.dump()
    for base in (tmp_path, tracking_server.root):
        for path in base.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
