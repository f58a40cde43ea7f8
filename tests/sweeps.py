"""Helpers shared by the tests that sweep into a store (SQLite, or an MLflow server on PostgreSQL):
tiny configs, starting and interrupting a sweep, and what a complete sweep looks like."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.config import PROJECT_ROOT
from experiments.sgd import TIMINGS
from tests.conftest import Store

SMALL = ["hydra.sweeper.params=null", "steps=200", "variance_samples=20", "log_points=11"]
# 2 estimators × 4 distances × 5 seeds = 40 grid points.
GRID40 = ["estimator=score_function,reparameterization", "problem.distance=1,3,10,30", "seed=range(5)"]
COMMON = ["estimator=score_function,reparameterization", "problem.distance=10", "seed=0,1"]
# Jobs long enough (20,000 steps, about 0.3 s of computation each) that a signal sent after
# two have finished lands well before the last of the ten, even on a loaded machine.
INTERRUPTIBLE = ["hydra.sweeper.params=null", "steps=20000", "log_points=11", "seed=range(10)"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerStore(Store):
    """The CLI pointed at a tracking server, in one experiment of its own (when named);
    files (Hydra outputs) still under ``root``."""

    def __init__(self, root: Path, uri: str, experiment: str | None = None):
        super().__init__(root)
        self.uri = uri
        self.experiment = experiment

    def run(self, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
        named = [f"tracking.experiment={self.experiment}"] if self.experiment else []
        return super().run(*named, *overrides, **kwargs)

    def experiment_ids(self) -> list[str]:
        if self.experiment is None:
            return [e.experiment_id for e in self.client().search_experiments()]
        found = self.client().get_experiment_by_name(self.experiment)
        return [] if found is None else [found.experiment_id]

    def runs(self) -> pd.DataFrame:
        if self.experiment is None:
            return super().runs()
        from mlflow.entities import ViewType

        runs = self.client().search_runs(self.experiment_ids(), run_view_type=ViewType.ALL, max_results=10_000)
        return pd.DataFrame([{"run_id": r.info.run_id, "status": r.info.status,
                              **{f"tags.{k}": v for k, v in r.data.tags.items()},
                              **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                              **{f"params.{k}": v for k, v in r.data.params.items()}} for r in runs])


def experiment_ids(store: Store) -> list[str]:
    if isinstance(store, ServerStore):
        return store.experiment_ids()
    return [e.experiment_id for e in store.client().search_experiments()]


def grid_points(runs: pd.DataFrame) -> pd.Series:
    kids = runs[runs["tags.run_kind"] == "job"]
    return kids.groupby("tags.config_hash")["status"].agg(list)


def assert_complete(runs: pd.DataFrame, expected: int) -> None:
    """Exactly one FINISHED run per grid point, nothing RUNNING, every parent closed."""
    per_point = grid_points(runs)
    assert len(per_point) == expected
    assert all(statuses.count("FINISHED") == 1 for statuses in per_point), per_point[
        per_point.map(lambda s: s.count("FINISHED") != 1)]
    assert not (runs["status"] == "RUNNING").any()


def assert_one_sweep_of(runs: pd.DataFrame, jobs: int) -> None:
    """One FINISHED grid point per job, and one FINISHED parent run that counts them all as its children."""
    assert_complete(runs, jobs)
    parent = runs[runs["tags.run_kind"] == "sweep"]
    assert len(parent) == 1 and parent["status"].item() == "FINISHED" and parent["metrics.jobs_done"].item() == jobs
    assert (runs.loc[runs["tags.run_kind"] == "job", "tags.mlflow.parentRunId"] == parent["run_id"].item()).all()


def metrics_by_point(store: Store) -> dict:
    """config_hash -> {metric: [(step, value)]} for every FINISHED job run, wall time left out."""
    client = store.client()
    out = {}
    for _, run in store.runs().query("`tags.run_kind` == 'job' and status == 'FINISHED'").iterrows():
        keys = [k for k in client.get_run(run.run_id).data.metrics if k not in TIMINGS]
        out[run["tags.config_hash"]] = {k: [(m.step, m.value) for m in client.get_metric_history(run.run_id, k)]
                                        for k in keys}
    return out


def start_sweep(store: Store, *overrides: str) -> subprocess.Popen:
    # Create the store first: this process polls it while the sweep runs, and two processes
    # creating one SQLite store's schema at once can break it (see wait_for_finished).
    store.client().search_experiments()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    named = [f"tracking.experiment={store.experiment}"] if getattr(store, "experiment", None) else []
    args = [sys.executable, "-m", "experiments.run", "-m", f"tracking.uri={store.uri}",
            f"hydra.sweep.dir={store.root / 'multirun'}", *named, *overrides]
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_finished(store: Store, proc: subprocess.Popen, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    query = "tags.run_kind = 'job' and attributes.status = 'FINISHED'"
    client = store.client()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (status {proc.returncode}) before it could be interrupted: "
                        f"{proc.stderr.read()[-3000:]}")
        ids = experiment_ids(store)
        if ids and len(client.search_runs(ids, query)) >= count:
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"fewer than {count} runs finished within {timeout} s")


def check_interrupted_sweep_resumes(store: Store, sig: signal.Signals, reports: Path) -> None:
    """A sweep stopped by ``sig`` after two jobs closes its runs (parent KILLED); run again, it
    completes every grid point once, keeps the finished runs, and the report counts each once."""
    proc = start_sweep(store, *INTERRUPTIBLE)
    wait_for_finished(store, proc, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    runs = store.runs()
    assert not (runs["status"] == "RUNNING").any()
    assert runs.loc[runs["tags.run_kind"] == "sweep", "status"].item() == "KILLED"
    finished_before = set(runs.query("status == 'FINISHED'")["run_id"])
    assert 2 <= len(finished_before) < 10

    again = start_sweep(store, *INTERRUPTIBLE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    runs = store.runs()
    assert_complete(runs, 10)
    assert finished_before <= set(runs["run_id"])  # finished runs were kept, not redone
    parents = runs[runs["tags.run_kind"] == "sweep"]
    assert len(parents) == 1 and parents["status"].item() == "FINISHED"

    # The report counts each grid point once: its finished run, not the interrupted attempt.
    report = store.run("log_to_mlflow=false", f"output_dir={reports}", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    (summary,) = reports.rglob("summary.csv")
    table = pd.read_csv(summary)
    assert table["runs"].sum() == 10 and table["failed"].sum() == 0


def check_killed_sweep_resumes(store: Store) -> None:
    """A sweep killed outright (SIGKILL) leaves RUNNING runs; the next invocation marks its
    stale job runs FAILED ("died") and completes every grid point once."""
    proc = start_sweep(store, *INTERRUPTIBLE)
    wait_for_finished(store, proc, 2)
    proc.kill()
    proc.communicate(timeout=60)
    before = store.runs()
    stale = set(before.query("status == 'RUNNING'")["run_id"])
    assert stale  # at least the parent; SIGKILL leaves no chance to close anything

    again = start_sweep(store, *INTERRUPTIBLE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    runs = store.runs().set_index("run_id")
    assert_complete(runs.reset_index(), 10)
    for run_id in stale - set(runs.index[runs["tags.run_kind"] == "sweep"]):
        assert runs.loc[run_id, "status"] == "FAILED"
        assert "died" in runs.loc[run_id, "tags.stopped_because"]
