"""``hydra/launcher=submitit_slurm`` awaits every task of an array job on a real SLURM cluster.

The first task of a 4-task array is cancelled with ``scancel`` while the others run: the
sweep ends only once every task has ended, the others' runs FINISHED; the same sweep again
runs only the cancelled grid point, leaving one FINISHED run per grid point.
"""

from __future__ import annotations

import time

import pytest

# The session's cluster and the helpers of the SLURM sweep tests.
from tests.services.test_slurm import accounting, finish, jobs_and_parents, runs_of, sweep

SLOW = "5000001"  # steps of the first task, cancelled while it runs (about a minute if it were not)
GRID = ["estimator=reparameterization", "step_size=1e-2", f"steps={SLOW},20000,20001,20002"]


def test_cancelled_first_task_is_awaited_with_the_others_then_resumed(slurm_cluster, tracking_server, tmp_path):
    name = "slurm-first-cancelled"
    proc = sweep(slurm_cluster, tracking_server.uri, tmp_path, name, *GRID)
    try:
        deadline = time.monotonic() + 180
        while True:  # until the first task's run has started
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first task did not start"
            jobs, _ = jobs_and_parents(runs_of(tracking_server.uri, name))
            if any(r.info.status == "RUNNING" and r.data.params.get("steps") == SLOW for r in jobs):
                break
            time.sleep(0.2)
        (array_id,) = set(slurm_cluster.client("squeue", "-h", f"--name={name}", "-o", "%F").split())
        slurm_cluster.client("scancel", f"{array_id}_0")
        code, err = finish(proc)
    except BaseException:
        proc.kill()  # the sweep, not its jobs: the cluster's teardown cancels those
        proc.communicate()
        raise
    assert code != 0, "the sweep did not report the cancelled task"
    # The sweep ended after every task of its array had ended.
    assert slurm_cluster.client("squeue", "-h", f"--name={name}").strip() == ""
    jobs, parents = jobs_and_parents(runs_of(tracking_server.uri, name))
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    others = [r for r in jobs if r.data.params["steps"] != SLOW]
    assert len(others) == 3 and {r.info.status for r in others} == {"FINISHED"}
    (cancelled,) = [r for r in jobs if r.data.params["steps"] == SLOW]
    assert cancelled.info.status != "FINISHED"

    # The same sweep again: only the cancelled grid point runs.
    code, err = finish(sweep(slurm_cluster, tracking_server.uri, tmp_path, name, *GRID))
    assert code == 0, err[-3000:]
    runs = runs_of(tracking_server.uri, name)
    jobs, parents = jobs_and_parents(runs)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [r for r in jobs if r.info.status == "FINISHED"]
    assert sorted(r.data.params["steps"] for r in finished) == sorted([SLOW, "20000", "20001", "20002"])
    assert {r.info.run_id for r in others} <= {r.info.run_id for r in finished} and len(jobs) == 5

    states = accounting(slurm_cluster, name, 5)  # the first array's 4 tasks, the resume's 1
    assert states.get(f"{array_id}_0") == "CANCELLED", states
    assert sorted(states.values()) == ["CANCELLED"] + ["COMPLETED"] * 4, states
