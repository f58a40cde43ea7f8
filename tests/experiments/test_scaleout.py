"""Parallel and cluster launchers, a real tracking server, resume after interrupts, secrets.

Everything runs on loopback: the MLflow server is started here on 127.0.0.1 and stopped.
"""

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
from mlflow.entities import ViewType

from experiments.sgd import TIMINGS
from tests.conftest import Store

SMALL = ["hydra.sweeper.params=null", "steps=200", "variance_samples=20", "log_points=11"]
# 2 estimators × 4 distances × 5 seeds = 40 grid points.
GRID40 = ["estimator=score_function,reparameterization", "problem.distance=1,3,10,30", "seed=range(5)"]
COMMON = ["estimator=score_function,reparameterization", "problem.distance=10", "seed=0,1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend and a local artifact root."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("mlflow server exited at start-up")
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("mlflow server did not start within 90 s")
    yield root, port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


class ServerStore(Store):
    """The CLI pointed at the server; files (Hydra outputs) still under ``root``."""

    def __init__(self, root: Path, uri: str):
        super().__init__(root)
        self.uri = uri


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


def metrics_by_point(store: Store) -> dict:
    """config_hash -> {metric: [(step, value)]} for every FINISHED job run, wall time left out."""
    client = store.client()
    out = {}
    for _, run in store.runs().query("`tags.run_kind` == 'job' and status == 'FINISHED'").iterrows():
        keys = [k for k in client.get_run(run.run_id).data.metrics if k not in TIMINGS]
        out[run["tags.config_hash"]] = {k: [(m.step, m.value) for m in client.get_metric_history(run.run_id, k)]
                                        for k in keys}
    return out


@pytest.fixture(scope="module")
def joblib_sqlite(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("joblib"))
    proc = store.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL, *GRID40)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store


def test_joblib_sweep_into_one_sqlite_store(joblib_sqlite):
    runs = joblib_sqlite.runs()
    assert_complete(runs, 40)
    parent = runs[runs["tags.run_kind"] == "sweep"]
    assert len(parent) == 1 and parent["status"].item() == "FINISHED" and parent["metrics.jobs_done"].item() == 40
    assert (runs.loc[runs["tags.run_kind"] == "job", "tags.mlflow.parentRunId"] == parent["run_id"].item()).all()


def test_joblib_sweep_against_a_real_tracking_server(server, tmp_path):
    root, port = server
    store = ServerStore(tmp_path, f"http://127.0.0.1:{port}")
    proc = store.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "tracking.experiment=via-server",
                     *SMALL, *GRID40)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = store.runs()
    runs = runs[runs["tags.sweep_id"].notna()]
    assert_complete(runs, 40)
    assert runs.loc[runs["tags.run_kind"] == "sweep", "status"].item() == "FINISHED"
    run_id = runs.loc[runs["tags.run_kind"] == "job", "run_id"].iloc[0]
    assert {a.path for a in store.client().list_artifacts(run_id)} == {"config.yaml", "trajectory.npy"}


def test_submitit_local_sweep_and_identical_metrics_across_launchers(joblib_sqlite, tmp_path):
    submitit = Store(tmp_path / "submitit")
    proc = submitit.run("-m", "hydra/launcher=submitit_local", *SMALL, *COMMON)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_complete(submitit.runs(), 4)

    basic = Store(tmp_path / "basic")
    assert basic.run("-m", *SMALL, *COMMON).returncode == 0

    by_launcher = [metrics_by_point(s) for s in (basic, submitit, joblib_sqlite)]
    common = set(by_launcher[0])
    assert len(common) == 4 and common <= set(by_launcher[1]) and common <= set(by_launcher[2])
    for point in common:
        assert by_launcher[0][point] == by_launcher[1][point] == by_launcher[2][point]


def start_sweep(store: Store, *overrides: str) -> subprocess.Popen:
    # Create the store first: this process polls it while the sweep runs, and two processes
    # creating one SQLite store's schema at once can break it (see wait_for_finished).
    store.client().search_experiments()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    args = [sys.executable, "-m", "experiments.run", "-m", f"tracking.uri={store.uri}",
            f"hydra.sweep.dir={store.root / 'multirun'}", *overrides]
    return subprocess.Popen(args, cwd=Path(__file__).parents[2], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_finished(store: Store, proc: subprocess.Popen, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    query = "tags.run_kind = 'job' and attributes.status = 'FINISHED'"
    client = store.client()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (status {proc.returncode}) before it could be interrupted: "
                        f"{proc.stderr.read()[-3000:]}")
        ids = [e.experiment_id for e in client.search_experiments()]
        if len(client.search_runs(ids, query)) >= count:
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"fewer than {count} runs finished within {timeout} s")


# Jobs long enough (20,000 steps, about 0.3 s of computation each) that a signal sent after
# two have finished lands well before the last of the ten, even on a loaded machine.
INTERRUPTIBLE = ["hydra.sweeper.params=null", "steps=20000", "log_points=11", "seed=range(10)"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_sweep_closes_its_runs_and_resumes(tmp_path, sig):
    store = Store(tmp_path)
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
    report = store.run("log_to_mlflow=false", f"output_dir={tmp_path / 'reports'}", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    (summary,) = (tmp_path / "reports").rglob("summary.csv")
    table = pd.read_csv(summary)
    assert table["runs"].sum() == 10 and table["failed"].sum() == 0


def test_killed_sweep_leaves_stale_runs_that_the_next_invocation_fails_and_completes(tmp_path):
    store = Store(tmp_path)
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


def test_rerun_flag_runs_the_grid_again_as_a_new_sweep(tmp_path):
    store = Store(tmp_path)
    assert store.run("-m", *SMALL, "seed=0,1").returncode == 0
    assert store.run("-m", *SMALL, "seed=0,1").returncode == 0  # resumes: nothing to do
    runs = store.runs()
    assert len(runs) == 3
    assert store.run("-m", "hydra.sweeper.rerun=true", *SMALL, "seed=0,1").returncode == 0
    runs = store.runs()
    assert len(runs) == 6 and runs["tags.sweep_id"].nunique() == 2


def test_unreachable_server_fails_fast_in_one_line(tmp_path):
    port = free_port()  # nothing listens there
    for args in ([], ["-m", *SMALL, "seed=0,1"]):
        store = ServerStore(tmp_path, f"http://127.0.0.1:{port}")
        proc = store.run(*args, timeout=60)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("mcgrad-bench: error: invalid tracking.uri=") and "unreachable" in lines[0]


def test_unwritable_store_path_fails_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = ServerStore(tmp_path, f"sqlite:///{blocker / 'mlflow.db'}")
    proc = store.run()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("mcgrad-bench: error: invalid tracking.uri=") and "cannot write" in lines[0]


SECRET = "s3cr3t-T0ken"


def test_credentials_in_the_tracking_uri_are_never_written(server, tmp_path):
    root, port = server
    store = ServerStore(tmp_path, f"http://mcgrad:{SECRET}@127.0.0.1:{port}")
    proc = store.run("-m", *SMALL, "seed=0,1", "tracking.experiment=secrets")
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = store.run(*SMALL, "tracking.experiment=secrets")
    assert single.returncode == 0, single.stderr[-3000:]
    report = store.run("tracking.experiment=secrets", f"output_dir={tmp_path / 'reports'}", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    assert any((tmp_path / "reports").rglob("index.html"))
    outputs = [proc, single, report]
    assert not any(SECRET in p.stdout + p.stderr for p in outputs)

    clean = ServerStore(tmp_path, f"http://127.0.0.1:{port}")
    runs = clean.runs()
    runs = runs[runs["tags.sweep_id"].notna() & (runs["tags.mlflow.runName"].notna())]
    client = clean.client()
    secrets_runs = [r for r in runs["run_id"] if client.get_run(r).info.experiment_id
                    == client.get_experiment_by_name("secrets").experiment_id]
    assert len(secrets_runs) == 4
    for run_id in secrets_runs:  # the sweep's parent now holds the report too
        run = client.get_run(run_id)
        fields = [*run.data.params.items(), *run.data.tags.items(), run.info.run_name, run.info.artifact_uri]
        assert SECRET not in repr(fields)
        local = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl" / run_id)))
        for path in local.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    # Every file the runs and the report left: Hydra's outputs and logs, the report, the
    # server's database and artifacts.
    for base in (tmp_path, root):
        for path in base.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def test_deleted_experiment_is_refused_in_one_line_and_nothing_is_run(tmp_path):
    store = Store(tmp_path)
    client = store.client()
    client.delete_experiment(client.create_experiment("gone"))
    for args in ([], ["-m", *SMALL, "seed=0,1"]):
        proc = store.run("tracking.experiment=gone", *args)
        lines = [line for line in proc.stderr.splitlines() if line.strip() and "INFO mlflow" not in line]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("mcgrad-bench: error: invalid tracking.experiment='gone'")
    gone = client.get_experiment_by_name("gone").experiment_id
    assert not client.search_runs([gone], run_view_type=ViewType.ALL)


def test_unwritable_sweep_folder_leaves_no_open_parent(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = Store(tmp_path)
    proc = store.run("-m", *SMALL, "seed=0,1", f"hydra.sweep.dir={blocker / 'multirun'}")  # the last value wins
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "INFO mlflow" not in line]
    assert proc.returncode == 2 and len(lines) == 1 and "invalid hydra.sweep.dir=" in lines[0], proc.stderr
    runs = store.runs()
    assert runs.empty or not (runs["status"] == "RUNNING").any()
