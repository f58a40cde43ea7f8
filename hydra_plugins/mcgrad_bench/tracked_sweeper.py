"""``hydra/sweeper=tracked``: Hydra's grid sweep, checked up front, recorded in MLflow, resumable.

- Before any job runs, every job's config is composed and validated and the store is
  checked, so a sweep with one bad value is refused whole and writes nothing.
- The sweep runs under one MLflow parent run whose id and ``sweep_id`` reach each job as
  ``tracking.*`` overrides. The parent is closed in all cases: FINISHED, FAILED when a job
  failed, KILLED on an interrupt (SIGINT or SIGTERM), with the sweep's still-running jobs.
- The same grid again (same job configs, tag ``sweep_key``) resumes that sweep: grid points
  with a FINISHED run are skipped, runs left RUNNING by a killed process are marked FAILED,
  and the rest run. ``hydra.sweeper.rerun=true`` starts a new sweep instead.
- Launcher options the launcher refuses (``hydra.launcher.n_jobs=0``) are refused before
  the parent run exists. One line per finished job says how far the sweep is
  (:mod:`experiments.sweep.progress`); when it ends, the parent run gets the per-cell
  summary as a table (:mod:`experiments.sweep.summary`).
"""

import hashlib
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from experiments.sweep.composition import share_composition

log = logging.getLogger(__name__)


@dataclass
class TrackedSweeperConf:
    _target_: str = "hydra_plugins.mcgrad_bench.tracked_sweeper.TrackedSweeper"
    # Jobs handed to the launcher at once: on a cluster, the size of one array job (SLURM's
    # MaxArraySize is 1001 unless raised); null launches every job at once.
    max_batch_size: Optional[int] = 256
    params: Optional[Dict[str, str]] = None
    # Run every grid point again, as a new sweep, even those that already finished.
    rerun: bool = False


ConfigStore.instance().store(group="hydra/sweeper", name="tracked", node=TrackedSweeperConf, provider="mcgrad-bench")


def _one_line(text: Any) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def grid(overrides: Sequence[Override]) -> List[List[str]]:
    """Every job's overrides, in the order of Hydra's basic sweeper: the product of the sweeps,
    a key given twice keeping its first place and its last value."""
    axes: Dict[str, List[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            assert override.value_type is not None
            raise HydraException(f"TrackedSweeper does not support sweep type : {override.value_type.name}")
    return [list(job) for job in itertools.product(*axes.values())]


# On Hydra's public Sweeper: its basic sweeper is private (hydra._internal), and of it this
# sweeper, which plans and launches the grid itself, needs only the grid's expansion (`grid`).
class TrackedSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = 256, params: Optional[Dict[str, str]] = None, rerun: bool = False):
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.rerun = rerun
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # The sweeper's own check and every launcher then compose jobs through the same loader.
        self.hydra_context = share_composition(hydra_context)
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=task_function, config=config
        )

    def _parse_config(self) -> List[str]:
        """``hydra.sweeper.params`` as overrides, to go before the command line's."""
        return [f"{key}={value}" for key, value in self.params.items()]

    def sweep(self, arguments: List[str]) -> Any:
        # Imported here: Hydra imports every plugin module at start-up, MLflow is slow to import.
        from experiments.sweep.interrupts import sigterm_raises

        with sigterm_raises():
            return self._sweep(arguments)

    def _plan(self, arguments: List[str]):
        """Every job's overrides and config hash, validated; and the one store they log to."""
        from experiments import tracking
        from experiments.config import ConfigError, config_hash, refuse, validate

        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(self._parse_config() + list(arguments))
        jobs, stores = [], set()
        for overrides in grid(parsed):
            try:
                cfg = loader.load_sweep_config(self.config, list(overrides))
                validate(cfg)
            except ConfigError as err:
                refuse(str(err))
            except HydraException as err:
                refuse(_one_line(err))
            stores.add((cfg.tracking.uri, cfg.tracking.experiment))
            jobs.append((list(overrides), config_hash(cfg)))
        if len(stores) != 1:
            refuse("invalid sweep over tracking.uri or tracking.experiment: allowed: one store and experiment per sweep")
        ((uri, experiment),) = stores
        try:
            tracking.preflight(uri)
            tracking.experiment_id(uri, experiment)  # refuses a deleted experiment, creates a new one
        except ConfigError as err:
            refuse(str(err))
        return jobs, uri, experiment

    def _sweep(self, arguments: List[str]) -> Any:
        from experiments import tracking
        from experiments.config import ConfigError, refuse

        assert self.launcher is not None and self.config is not None
        try:  # before the store is touched: a refused option leaves no parent run behind
            check_launcher(self.launcher)
        except (ValueError, TypeError) as err:
            refuse(launcher_refusal(self.launcher, err))
        jobs, uri, experiment = self._plan(arguments)
        # Before the parent run exists: a sweep folder that cannot be written fails here.
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        except OSError as err:
            refuse(f"invalid hydra.sweep.dir={sweep_dir}: {err.strerror}; allowed: a directory that can be written")
        sweep_key = hashlib.sha256("\n".join(sorted(h for _, h in jobs)).encode()).hexdigest()[:16]

        previous = None if self.rerun else tracking.find_sweep(uri, experiment, sweep_key)
        done: set = set()
        if previous is not None:
            parent = previous.info.run_id
            sweep_id = previous.data.tags["sweep_id"]
            # Listed before closing: closing runs while paging through them would shift the pages.
            stale = list(tracking.runs_of_sweep(uri, experiment, sweep_id, [tracking.RUNNING]))
            tracking.close_runs(uri, stale, tracking.FAILED, "left RUNNING by a process that died")
            finished = tracking.runs_of_sweep(uri, experiment, sweep_id, [tracking.FINISHED])
            done = {r.data.tags.get("config_hash") for r in finished}
            tracking.reopen(uri, parent)
            log.info(
                "Resuming sweep %s: %d of %d grid points already finished, %d stale runs marked FAILED",
                sweep_id, sum(h in done for _, h in jobs), len(jobs), len(stale),
            )
        else:
            sweep_id = tracking.new_sweep_id()
            try:
                parent = tracking.start_run(
                    uri,
                    experiment,
                    f"sweep {sweep_id}",
                    tags={
                        "run_kind": "sweep",
                        "sweep_id": sweep_id,
                        "sweep_key": sweep_key,
                        "git_commit": tracking.git_commit(),
                        "sweep_jobs": str(len(jobs)),
                        "sweep_overrides": " ".join(self._parse_config() + list(arguments)),
                    },
                )
            except ConfigError as err:
                refuse(str(err))

        from experiments.sweep.progress import Progress, progress_file

        marks = progress_file(sweep_dir, sweep_id)
        extra = [f"++tracking.parent_run_id='{parent}'", f"++tracking.sweep_id='{sweep_id}'",
                 f"++tracking.progress='{marks}'"]
        todo = [overrides + extra for overrides, h in jobs if h not in done]
        returns: List[Sequence[JobReturn]] = []
        failures: List[JobReturn] = []
        diverged = 0
        error: Optional[BaseException] = None
        try:
            with Progress(sweep_id, len(todo), marks) as progress:
                for start, batch in enumerate_batches(todo, self.max_batch_size):
                    results = self.launcher.launch(batch, initial_job_idx=start)
                    returns.append(results)
                    for r in results:
                        if r.status == JobStatus.FAILED:
                            failures.append(r)
                        elif isinstance(r.return_value, dict) and r.return_value.get("diverged"):
                            diverged += 1
                    ended = sum(len(b) for b in returns)
                    progress.update(ended - len(failures), len(failures))
        except BaseException as err:
            error = err
            raise
        finally:
            self._close(uri, experiment, sweep_id, parent, error, len(jobs), failures, diverged)
        if failures:
            _ = failures[0].return_value  # raises the first job's error, as Hydra's basic sweeper does
        return returns


    @staticmethod
    def _close(uri, experiment, sweep_id, parent, error, jobs, failures, diverged) -> None:
        """Close the sweep's still-running jobs (on an error) and, whatever happens, its parent."""
        from experiments import tracking

        status = tracking.job_status(error) if error else (tracking.FAILED if failures else tracking.FINISHED)
        metrics = {"jobs": jobs, "jobs_failed": len(failures), "runs_diverged": diverged}
        try:
            from experiments.sweep.summary import TABLE_FILE, cell_summary

            table: dict = {}
            try:
                if error is not None or failures:
                    # Jobs in other processes (parallel launchers) cannot close their own runs, nor can
                    # a job killed outright (scancel, a time limit): once the launcher has awaited every
                    # job, a run still RUNNING belongs to a job that has ended.
                    reason = f"sweep stopped: {type(error).__name__}" if error else "its job ended without a result"
                    running = list(tracking.runs_of_sweep(uri, experiment, sweep_id, [tracking.RUNNING]))
                    tracking.close_runs(uri, running, status, reason)
                # Read page by page; the summary keeps each run's metrics only.
                table = cell_summary(tracking.runs_of_sweep(uri, experiment, sweep_id, [tracking.FINISHED]))
                metrics["jobs_done"] = sum(table["runs"])
            except Exception as err:  # the parent must still be closed; the next resume tidies up
                log.warning("could not close the sweep's job runs: %s", err)
            if table.get("runs") and not isinstance(error, (KeyboardInterrupt, SystemExit)):
                try:
                    tracking.log_table(uri, parent, table, TABLE_FILE)
                except Exception as err:  # a convenience: the parent must still be closed
                    log.warning("could not log the sweep's summary table: %s", err)
        finally:
            tracking.end_run(uri, parent, status, metrics=metrics)


def check_launcher(launcher: Any) -> None:
    """Try the launcher's own setup with no job, raising what it raises for options it refuses.

    Hydra's joblib launcher builds ``joblib.Parallel`` from its options only when it launches,
    after the sweep's parent run exists; ``Parallel(...)([])`` checks them (``n_jobs=0``,
    ``batch_size=0``, ``pre_dispatch``) and starts no worker. Other launchers: nothing to try.
    """
    options = getattr(launcher, "joblib", None)
    if not isinstance(options, dict) or type(launcher).__name__ != "JoblibLauncher":
        return
    from joblib import Parallel

    settings = {**options, "backend": "loky"}  # as the launcher does: loky is hard-coded
    for key in ("pre_dispatch", "batch_size", "max_nbytes"):  # and so is this conversion
        if settings.get(key):
            try:
                settings[key] = int(settings[key])
            except ValueError:
                pass
    Parallel(**settings)([])


# What joblib accepts, for the options it checks (joblib.Parallel's documentation).
_JOBLIB_ALLOWED = {
    "n_jobs": "an integer other than 0 (-1: every core)",
    "batch_size": "auto or an integer >= 1",
    "pre_dispatch": "all, an integer, or an expression in n_jobs such as 2*n_jobs",
    "prefer": "processes, threads or null",
    "require": "sharedmem or null",
    "verbose": "an integer >= 0",
}


def launcher_refusal(launcher: Any, err: BaseException) -> str:
    """One line for launcher options the launcher refused: the option and its value where the
    launcher's message names it."""
    message = _one_line(err).rstrip(".")
    options = getattr(launcher, "joblib", None) or {}
    for key, value in options.items():
        named = message.startswith(key) or f"{key}=" in message
        if named or (key == "pre_dispatch" and "arithmetic expression" in message):
            allowed = _JOBLIB_ALLOWED.get(key, "a value joblib.Parallel accepts")
            return f"invalid hydra.launcher.{key}={value}: {message}; allowed: {allowed}"
    return f"invalid hydra.launcher options: {message}; allowed: values the launcher accepts"


def enumerate_batches(jobs: List[List[str]], size: Optional[int]):
    """(index of the first job, batch) pairs of at most ``size`` jobs (all at once if None)."""
    step = size if size and size > 0 else max(len(jobs), 1)
    for start in range(0, len(jobs), step):
        yield start, jobs[start : start + step]
