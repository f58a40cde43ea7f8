"""MLflow bookkeeping helpers against a real SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from experiments import tracking
from experiments.config import PROJECT_ROOT


@pytest.fixture
def sweep_runs(tmp_path, monkeypatch):
    """A store with one sweep of 7 job runs (4 FINISHED, 2 FAILED, 1 RUNNING) and a stranger."""
    monkeypatch.setattr(tracking, "_PAGE", 2)  # several pages, one of them partial
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.preflight(uri)
    statuses = [tracking.FINISHED] * 4 + [tracking.FAILED] * 2 + [tracking.RUNNING]
    ids = {}
    for i, status in enumerate(statuses):
        run_id = tracking.start_run(uri, "e", f"job {i}", {"sweep_id": "s1", "run_kind": "job"})
        if status != tracking.RUNNING:
            tracking.end_run(uri, run_id, status)
        ids[run_id] = status
    other = tracking.start_run(uri, "e", "other", {"sweep_id": "s2", "run_kind": "job"})
    tracking.end_run(uri, other, tracking.FINISHED)
    return uri, ids


@pytest.mark.parametrize(
    "statuses", [(), (tracking.FINISHED,), (tracking.RUNNING,), (tracking.FINISHED, tracking.FAILED)], ids=str
)
def test_runs_of_sweep_reads_every_page(sweep_runs, statuses):
    uri, ids = sweep_runs
    got = [r.info.run_id for r in tracking.runs_of_sweep(uri, "e", "s1", statuses)]
    assert len(got) == len(set(got))
    assert set(got) == {i for i, s in ids.items() if not statuses or s in statuses}


def test_mlflow_telemetry_is_off_in_the_suites_processes():
    # A minimal environment: none of the CI or test markers that also switch it off.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    code = "import experiments.runner; from mlflow.telemetry import get_telemetry_client; print(get_telemetry_client())"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def _refusal(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("mcgrad-bench: error: invalid tracking.uri=")
    return lines[0]


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "/tmp/mlruns", "mlruns", "C:/mlruns"])
def test_file_store_uris_are_refused_by_design(monkeypatch, uri):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert "file store" in tracking.refused_by_design(uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-out is respected
    assert tracking.refused_by_design(uri) is None


def test_database_uris_need_their_driver():
    assert tracking.refused_by_design("postgresql://u@127.0.0.1:9/db") is None  # psycopg: the extra, installed
    assert tracking.refused_by_design("sqlite:///mlflow.db") is None
    assert tracking.refused_by_design("http://127.0.0.1:9") is None
    assert "MySQLdb" in tracking.refused_by_design("mysql://127.0.0.1:9/db")
    assert "pg8000" in tracking.refused_by_design("postgresql+pg8000://127.0.0.1:9/db")


def test_file_store_is_refused_as_refused_by_mlflow_not_as_unreachable(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store.uri = f"file:{store.root}/mlruns"
    for args in ([], ["-m", "hydra.sweeper.params=null", "steps=1", "seed=0,1"]):
        line = _refusal(store.run(*args, timeout=120))
        assert "file store" in line and "MLFLOW_ALLOW_FILE_STORE" in line and "unreachable" not in line
    assert not (store.root / "mlruns").exists()


def test_postgresql_uri_without_its_driver_names_the_extra_to_install(store, tmp_path, monkeypatch):
    # psycopg made unimportable for the CLI's process only, as on a machine without the extra.
    blocker = tmp_path / "no-driver" / "psycopg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    store.uri = "postgresql://mcgrad:s3cr3t@127.0.0.1:9/mlflow"
    line = _refusal(store.run(timeout=120))
    assert "driver is not installed" in line and "pip install 'mcgrad-bench[postgres]'" in line
    assert "s3cr3t" not in line  # the password is redacted, as everywhere
