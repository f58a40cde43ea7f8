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
from tests.services import require_services
from tests.services.slurm import SlurmCluster, Unavailable, missing

SMALL = ["hydra.sweeper.params=null", "variance_samples=20", "log_points=11"]
SLOW = "1000000"  # steps of the grid point that is cancelled while it runs


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; ``SLURM_CONF`` points at it while it runs."""
    reason = missing()
    if reason:
        require_services(reason)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except Unavailable as exc:
        cluster.stop()
        require_services(f"the SLURM cluster did not start: {exc}")
    yield cluster
    cluster.stop()  # raises if a process is left or a port still listens


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


def wait_for_slow_task(proc: subprocess.Popen, tracking_uri: str, name: str, timeout: float = 180):
    """The slow grid point's run, as soon as it is RUNNING with its params logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended ({proc.returncode}) before its slow task could be cancelled: "
                        f"{proc.stderr.read()[-3000:]}")
        jobs, _ = jobs_and_parents(runs_of(tracking_uri, name))
        running = [r for r in jobs if r.info.status == "RUNNING" and r.data.params.get("steps") == SLOW]
        if running:
            return running[0]
        time.sleep(0.2)
    pytest.fail(f"the slow task did not start within {timeout:.0f} s")


def test_cancelled_task_then_rerun_finishes_every_grid_point_once(slurm_cluster, tracking_server, tmp_path):
    name = "slurm-resume"
    # Three grid points, the last one slow (10-30 s here, by load) so that it can be cancelled
    # while it runs; the two quick ones take the two cores first, and end before the launcher
    # looks at the last task.
    grid = ["estimator=reparameterization", "step_size=1e-2", f"steps=100,200,{SLOW}"]
    proc = sweep(slurm_cluster, tracking_server.uri, tmp_path, name, *grid)
    try:
        slow = wait_for_slow_task(proc, tracking_server.uri, name)
        # The slow grid point is the array's last task (index 2).
        (array_id,) = set(slurm_cluster.client("squeue", "-h", f"--name={name}", "-o", "%F").split())
        slurm_cluster.client("scancel", f"{array_id}_2")
    except BaseException:
        proc.kill()  # the sweep, not its jobs: the cluster's teardown cancels those
        proc.communicate()
        raise
    code, err = finish(proc)
    assert code != 0, "the sweep did not report the cancelled task (did it finish before the scancel?)"

    runs = runs_of(tracking_server.uri, name)
    jobs, parents = jobs_and_parents(runs)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    finished_before = {r.info.run_id for r in jobs if r.info.status == "FINISHED"}
    assert len(finished_before) == 2
    (cancelled,) = [r for r in jobs if r.info.run_id == slow.info.run_id]
    assert cancelled.info.status in ("FAILED", "KILLED")

    # The same command again resumes the sweep: only the cancelled grid point runs.
    code, err = finish(sweep(slurm_cluster, tracking_server.uri, tmp_path, name, *grid))
    assert code == 0, err[-3000:]
    runs = runs_of(tracking_server.uri, name)
    jobs, parents = jobs_and_parents(runs)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(jobs) == 4  # the two finished grid points were not run again
    finished = [r for r in jobs if r.info.status == "FINISHED"]
    assert sorted(int(r.data.params["steps"]) for r in finished) == [100, 200, int(SLOW)]
    assert finished_before <= {r.info.run_id for r in finished}

    states = accounting(slurm_cluster, name, 4)
    assert states.get(f"{array_id}_2") == "CANCELLED", states
    assert sorted(states.values()) == ["CANCELLED"] + ["COMPLETED"] * 3, states
