"""Start a parallel launcher's worker processes while the sweep is still being planned.

Hydra's joblib launcher starts its loky workers only when it launches the first batch,
after the sweeping process has composed and checked every job and opened the store. Each
worker then starts Python and imports MLflow and the suite, about 2.5 s on a 2-core machine,
while no job runs. Joblib keeps one pool of loky workers per process and reuses it for the
next ``Parallel`` call with the same arguments, so a ``Parallel`` call with the launcher's
own arguments, made in the background once the sweep's jobs are checked, leaves the
launcher a pool that is already up and has the job's modules imported. The workers'
start-up then overlaps the store being opened (or created), on the core that process
leaves idle.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Mapping, Optional, Set

log = logging.getLogger(__name__)


def start_workers(launcher: Any) -> Optional[JoblibWorkers]:
    """Start the workers of Hydra's joblib launcher in the background; None for other launchers."""
    # By name: Hydra's plugin scan may have imported the launcher's module more than once.
    if type(launcher).__name__ != "JoblibLauncher" or not hasattr(launcher, "joblib"):
        return None
    workers = JoblibWorkers(launcher.joblib)
    workers.start()
    return workers


def import_job_modules() -> int:
    """Run in a worker: import what a job needs; returns the worker's pid."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (a SQLite store's first use)

    import experiments.runner  # noqa: F401

    return os.getpid()


class JoblibWorkers(threading.Thread):
    """Starts the workers of a joblib launcher configured with ``joblib_cfg``, in the background.

    Join it before launching, so that the launcher finds the pool idle; ``pids`` are then
    the workers that imported the job's modules.
    """

    def __init__(self, joblib_cfg: Mapping[str, Any]) -> None:
        super().__init__(name="prestart-joblib-workers", daemon=True)
        self.kwargs = launcher_arguments(joblib_cfg)
        self.pids: Set[int] = set()

    def run(self) -> None:
        from joblib import Parallel, delayed, effective_n_jobs

        try:
            calls = (delayed(import_job_modules)() for _ in range(effective_n_jobs(self.kwargs.get("n_jobs"))))
            self.pids = set(Parallel(**self.kwargs)(calls))
            log.debug("joblib workers started: %s", sorted(self.pids))
        except Exception as err:  # the launcher starts its own workers and reports any error
            log.debug("could not start the joblib workers ahead: %s", err)


def launcher_arguments(joblib_cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``joblib.Parallel``'s arguments exactly as Hydra's joblib launcher passes them."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    kwargs = dict(joblib_cfg)
    kwargs["backend"] = "loky"
    process_joblib_cfg(kwargs)
    return kwargs
