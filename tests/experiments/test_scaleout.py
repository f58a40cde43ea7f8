"""Parallel and cluster launchers, resume after interrupts, and refusals of a bad store, on SQLite.

The same against an MLflow server on PostgreSQL (a joblib sweep, resume after SIGTERM and
SIGKILL, credentials in the URI) is in tests/services/test_postgres_server.py.
"""

from __future__ import annotations

import signal

import pytest
from mlflow.entities import ViewType

from tests.conftest import Store
from tests.sweeps import (COMMON, GRID40, SMALL, ServerStore, assert_complete, assert_one_sweep_of,
                          check_interrupted_sweep_resumes, free_port, metrics_by_point)


@pytest.fixture(scope="module")
def joblib_sqlite(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("joblib"))
    proc = store.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL, *GRID40)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store


def test_joblib_sweep_into_one_sqlite_store(joblib_sqlite):
    assert_one_sweep_of(joblib_sqlite.runs(), 40)


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


def test_sweep_interrupted_by_sigint_closes_its_runs_and_resumes(tmp_path):
    check_interrupted_sweep_resumes(Store(tmp_path), signal.SIGINT, tmp_path / "reports")


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
