"""``hydra/launcher=submitit_local`` resolves to the project's launcher, which awaits every job.

A job killed from outside leaves no result; the launcher turns it into a FAILED job and
waits for the others, which finish and stay FINISHED; the same sweep again runs only the
killed grid point.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR, Store
from tests.sweeps import assert_complete, start_sweep

# Steps of the grid point killed while it runs (a few seconds of computation), and of the
# other one, which runs on after the kill.
SLOW, OTHER = "300001", "200000"
GRID = ["hydra/launcher=submitit_local", "hydra.sweeper.params=null", "variance_samples=20", "log_points=11",
        "estimator=reparameterization", "step_size=1e-2", f"steps={SLOW},{OTHER}"]


def test_usual_names_resolve_to_the_awaiting_launchers():
    """Same options, same defaults as the plugin's configs; only ``_target_`` differs."""
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
    from omegaconf import OmegaConf

    for name, plugin in (("submitit_local", LocalQueueConf), ("submitit_slurm", SlurmQueueConf)):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", [f"hydra/launcher={name}", "hydra.launcher.timeout_min=7"],
                          return_hydra_config=True)
        launcher = OmegaConf.to_container(cfg.hydra.launcher)
        expected = {**OmegaConf.to_container(OmegaConf.structured(plugin)), "timeout_min": 7}
        assert launcher.pop("_target_") == f"hydra_plugins.mcgrad_bench.launchers.{plugin.__name__[:-9]}Launcher"
        expected.pop("_target_")
        assert launcher == expected


def task_of(root: Path, needle: str) -> int:
    """Pid of the submitit task process under ``root`` whose submitted job holds ``needle``.

    Each local job runs ``python -m submitit.core._submit <folder with %j>``, with its job id
    in ``SUBMITIT_LOCAL_JOB_ID``; its folder holds the pickled job, whose overrides are plain
    strings in the pickle.
    """
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            if b"submitit.core._submit" not in args or not args[-2].startswith(str(root).encode()):
                continue
            env = dict(v.split(b"=", 1) for v in (cmdline.parent / "environ").read_bytes().split(b"\0") if b"=" in v)
        except OSError:  # the process ended while we looked
            continue
        folder = Path(args[-2].decode().replace("%j", env[b"SUBMITIT_LOCAL_JOB_ID"].decode()))
        if any(needle.encode() in p.read_bytes() for p in folder.glob("*_submitted.pkl")):
            return int(cmdline.parent.name)
    raise LookupError(needle)


def test_killed_job_fails_alone_and_the_sweep_resumes(tmp_path):
    store = Store(tmp_path)
    proc = start_sweep(store, *GRID)
    try:
        deadline = time.monotonic() + 120
        while True:  # until the slow job's run has started
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the slow job did not start"
            runs = store.runs() if store.db.exists() else None
            if runs is not None and "params.steps" in runs and (
                    (runs["params.steps"] == SLOW) & (runs["status"] == "RUNNING")).any():
                break
            time.sleep(0.2)
        os.kill(task_of(tmp_path, f"steps={SLOW}"), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode != 0  # the sweep reports the killed job
    assert "has not produced any output" in err, err[-3000:]  # submitit's UncompletedJobError
    runs = store.runs()
    jobs = runs[runs["tags.run_kind"] == "job"]
    slow = jobs[jobs["params.steps"] == SLOW]
    other = jobs[jobs["params.steps"] != SLOW]
    # The other job was awaited: it finished, and was not closed as FAILED while it ran.
    assert len(other) == 1 and other["status"].item() == "FINISHED"
    assert len(slow) == 1 and slow["status"].item() != "FINISHED"
    assert runs.loc[runs["tags.run_kind"] == "sweep", "status"].item() == "FAILED"
    finished_before = set(other["run_id"])

    # The same sweep again runs only the killed grid point; each point has one FINISHED run.
    again = start_sweep(store, *GRID)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    runs = store.runs()
    assert_complete(runs, 2)
    jobs = runs[runs["tags.run_kind"] == "job"]
    assert len(jobs) == 3 and finished_before <= set(jobs["run_id"])
    assert runs.loc[runs["tags.run_kind"] == "sweep", "status"].item() == "FINISHED"


class StubJob:
    """A submitit job as the launcher sees it: ``results()``, ``paths.result_pickle``, ``cancel``."""

    def __init__(self, tmp: Path, name: str, outcome):
        self.job_id, self.outcome, self.cancelled = name, outcome, False
        self.paths = type("Paths", (), {"result_pickle": tmp / f"{name}_result.pkl"})()

    def results(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        self.paths.result_pickle.touch()
        return [self.outcome]

    def cancel(self, check: bool = True) -> None:
        assert check is False
        self.cancelled = True


def test_every_job_is_awaited_after_one_left_no_result(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from submitit.core.utils import UncompletedJobError

    from hydra_plugins.mcgrad_bench.launchers import await_all

    done = JobReturn(overrides=["seed=1"], status=JobStatus.COMPLETED, _return_value={"ok": 1})
    lost = UncompletedJobError("Job 7_0 has not produced any output (state: CANCELLED)")
    jobs = [StubJob(tmp_path, "7_0", lost), StubJob(tmp_path, "7_1", done)]
    first, second = await_all(jobs, [["seed=0"], ["seed=1"]])
    assert first.status == JobStatus.FAILED and first.overrides == ["seed=0"] and first._return_value is lost
    assert second is done
    assert not any(job.cancelled for job in jobs)


def test_an_interrupt_cancels_every_job_without_a_result(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.mcgrad_bench.launchers import await_all

    done = JobReturn(overrides=["seed=0"], status=JobStatus.COMPLETED, _return_value={})
    jobs = [StubJob(tmp_path, "8_0", done), StubJob(tmp_path, "8_1", KeyboardInterrupt()),
            StubJob(tmp_path, "8_2", done)]
    with pytest.raises(KeyboardInterrupt):
        await_all(jobs, [["seed=0"], ["seed=1"], ["seed=2"]])
    assert [job.cancelled for job in jobs] == [False, True, True]
