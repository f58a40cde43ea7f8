"""``hydra/launcher=submitit_slurm`` and ``submitit_local`` that await every job, or cancel them.

Hydra's submitit launchers collect results with ``[j.results()[0] for j in jobs]``: the
first task that left no result (cancelled with ``scancel``, over its time limit, killed)
raises there, and the tasks after it are neither awaited nor cancelled. The sweep then
ends while they run on, and a re-run of the sweep runs them again. These launchers:

- await every job; a job that left no result, or whose submitit wrapper failed, becomes a
  ``JobReturn`` with ``status=FAILED`` and the error as its return value, so the sweeper's
  failure path runs once every job has ended;
- on any exception while waiting (Ctrl-C, SIGTERM raised as an exception by
  :mod:`experiments.sweep.interrupts`), cancel every job not yet done before re-raising.

:class:`AwaitingLaunchers` gives these launchers the usual names, with every option of the
plugin's own configs (``SlurmQueueConf``, ``LocalQueueConf``: only ``_target_`` differs).
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as base
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class _Awaiting:
    """Mixin over ``BaseSubmititLauncher``: awaits every job of a batch, or cancels them."""

    # submitit waits up to 15 s for a result file that a cluster's shared file system may
    # show late; a local job writes its own before its process exits (see LocalLauncher).
    _results_timeout_s: Optional[float] = None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        jobs = self._submit(job_overrides, initial_job_idx)
        if self._results_timeout_s is not None:
            for job in jobs:
                job._results_timeout_s = self._results_timeout_s
        return await_all(jobs, job_overrides)

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[Any]:
        """Submit the batch as ``BaseSubmititLauncher.launch`` does (hydra-submitit-launcher
        1.2), as one array job, without waiting."""
        import submitit

        assert self.config is not None
        assert len(job_overrides) > 0
        executor_name = self._EXECUTOR  # type: ignore[attr-defined]
        params = self.params  # type: ignore[attr-defined]
        init_keys = {"max_num_timeout"}
        init_params = {"folder": params["submitit_folder"]}
        init_params.update({f"{executor_name}_{k}": v for k, v in params.items() if k in init_keys})
        executor = submitit.AutoExecutor(cluster=executor_name, **init_params)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in shared else f"{executor_name}_{k}": v
            for k, v in params.items() if k not in init_keys | {"submitit_folder"}
        })

        log.info(f"Submitit '{executor_name}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        job_params: List[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        return executor.map_array(self, *zip(*job_params))


def await_all(jobs: Sequence[Any], job_overrides: Sequence[Sequence[str]]) -> List[JobReturn]:
    """Every job's ``JobReturn``, a FAILED one for a job that left no result; on an exception
    while waiting (an interrupt), every job not yet done is cancelled and the exception re-raised."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    returns: List[JobReturn] = []
    try:
        for job, overrides in zip(jobs, job_overrides):
            try:
                returns.append(job.results()[0])
            except (UncompletedJobError, FailedJobError) as err:
                log.error("job %s ended without a result: %s", job.job_id, str(err).splitlines()[0])
                returns.append(failed(overrides, err))
    except BaseException:
        cancel_unfinished(jobs)
        raise
    return returns


def failed(overrides: Sequence[str], err: BaseException) -> JobReturn:
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = err  # the setter of hydra.core.utils.JobReturn
    return ret


def cancel_unfinished(jobs: Sequence[Any]) -> None:
    """``job.cancel(check=False)`` for each job without a result yet; errors are logged, not raised.

    The result file, not ``job.done()``: on SLURM that asks the scheduler, and cancelling a
    task that has just ended is harmless.
    """
    for job in jobs:
        try:
            if not job.paths.result_pickle.exists():
                job.cancel(check=False)
        except Exception as err:  # keep cancelling the others; the original error is re-raised
            log.warning("could not cancel job %s: %s", getattr(job, "job_id", "?"), err)


class SlurmLauncher(_Awaiting, base.SlurmLauncher):
    pass


class LocalLauncher(_Awaiting, base.LocalLauncher):
    _results_timeout_s = 0


@dataclass
class SlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mcgrad_bench.launchers.SlurmLauncher"


@dataclass
class LocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mcgrad_bench.launchers.LocalLauncher"


class AwaitingLaunchers(SearchPathPlugin):
    """Stores :class:`SlurmConf` and :class:`LocalConf` as ``hydra/launcher=submitit_slurm`` and
    ``submitit_local``, over the plugin's configs of those names; the search path is unchanged.

    Why a search-path plugin: Hydra re-imports every ``hydra_plugins`` module at each plugin
    scan, the submitit plugin's after this package's, so entries stored when this module is
    imported are overwritten; search-path plugins are called after the scan and before any
    config is composed (``hydra._internal.utils.create_config_search_path``). A file
    ``conf/hydra/launcher/submitit_slurm.yaml`` would instead be merged into the plugin's
    config of the same name (Hydra's deprecated automatic schema matching, with a warning).
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        store_configs()


def store_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="hydra/launcher", name="submitit_slurm", node=SlurmConf, provider="mcgrad-bench")
    cs.store(group="hydra/launcher", name="submitit_local", node=LocalConf, provider="mcgrad-bench")
