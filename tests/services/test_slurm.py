"""Sweeps on a real single-node SLURM cluster into an MLflow server on PostgreSQL.

``hydra/launcher=submitit_slurm`` submits each batch of the sweep as one array job; the jobs
log to the session's ``tracking_server``. The cluster (``tests/services/slurm.py``) is
started once for the session on 127.0.0.1 and stopped at its end, and its teardown checks
that no SLURM, munge or MariaDB process is left and that its ports are free.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config import PROJECT_ROOT
from tests.services.slurm import SlurmCluster

SMALL = ["hydra.sweeper.params=null", "variance_samples=20", "log_points=11"]



def sweep(cluster: SlurmCluster, tracking_uri: str, tmp: Path, name: str, *overrides: str) -> subprocess.Popen:
    """``python -m experiments.run -m`` on the cluster, one array job per batch, named ``name``."""
    env = {k: v for k, v in cluster.env.items() if k != "MLFLOW_TRACKING_URI"}
    args = [sys.executable, "-m", "experiments.run", "-m", "hydra/launcher=submitit_slurm",
            f"hydra.launcher.partition={cluster.partition}", "hydra.launcher.timeout_min=5",
            "hydra.launcher.cpus_per_task=1", f"hydra.launcher.name={name}",
            f"hydra.launcher.submitit_folder={tmp / 'submitit' / '%j'}", f"hydra.sweep.dir={tmp / 'multirun'}",
            f"tracking.uri={tracking_uri}", f"tracking.experiment={name}", *SMALL, *overrides]
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the sweep did not end within {timeout:.0f} s: {err[-3000:]}")
    return proc.returncode, err


def runs_of(tracking_uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def jobs_and_parents(runs: list) -> tuple[list, list]:
    jobs = [r for r in runs if r.data.tags.get("run_kind") == "job"]
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    return jobs, parents


def accounting(cluster: SlurmCluster, name: str, count: int, timeout: float = 60) -> dict[str, str]:
    """``{job id: state}`` of the jobs named ``name`` from ``sacct``, once ``count`` of them have ended.

    slurmctld reports job ends to slurmdbd asynchronously, so the last ones can lag a little.
    """
    ended = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.client("sacct", "-X", "-n", "-P", f"--name={name}", "--starttime=2000-01-01",
                             "-o", "JobID,State")
        states = dict(line.split("|", 1) for line in out.splitlines() if line)
        # "CANCELLED by 0": the state's first word is enough here.
        states = {job: state.split()[0] for job, state in states.items()}
        if sum(s in ended for s in states.values()) >= count or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_array_job_sweep_into_the_postgresql_backed_server(slurm_cluster, tracking_server, tmp_path):
    name = "slurm-array"
    proc = sweep(slurm_cluster, tracking_server.uri, tmp_path, name, "steps=200",
                 "estimator=score_function,reparameterization", "seed=range(4)")
    code, err = finish(proc)
    assert code == 0, err[-3000:]

    jobs, parents = jobs_and_parents(runs_of(tracking_server.uri, name))
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(jobs) == 8 and {r.info.status for r in jobs} == {"FINISHED"}
    assert len({r.data.tags["config_hash"] for r in jobs}) == 8
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}

    # One array job of 8 tasks, all COMPLETED.
    states = accounting(slurm_cluster, name, 8)
    assert len(states) == 8 and set(states.values()) == {"COMPLETED"}, states
    array_ids = {job.split("_")[0] for job in states}
    assert len(array_ids) == 1 and sorted(int(job.split("_")[1]) for job in states) == list(range(8)), states
