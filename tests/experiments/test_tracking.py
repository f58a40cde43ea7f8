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
