"""``hydra/sweeper=tracked``: Hydra's grid sweep, checked up front and recorded in MLflow.

Before any job runs, every job's config is composed and validated, so a sweep with one bad
value is refused whole and writes nothing. The sweep then runs under one MLflow parent run
whose id and ``sweep_id`` reach each job as ``tracking.*`` overrides; the parent is closed
in all cases: FINISHED, FAILED when a job failed, KILLED on an interrupt.
"""


from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from omegaconf import OmegaConf


@dataclass
class TrackedSweeperConf:
    _target_: str = "hydra_plugins.mcgrad_bench.tracked_sweeper.TrackedSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="tracked", node=TrackedSweeperConf, provider="mcgrad-bench")


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


class TrackedSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        # Imported here: Hydra imports every plugin module at start-up, MLflow is slow to import.
        from experiments import tracking
        from experiments.config import ConfigError, refuse, validate

        assert self.hydra_context is not None and self.launcher is not None and self.config is not None
        loader = self.hydra_context.config_loader
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(self._parse_config() + list(arguments))
        batches = self.split_arguments(overrides, self.max_batch_size)

        stores = set()
        for batch in batches:
            for job in batch:
                try:
                    cfg = loader.load_sweep_config(self.config, list(job))
                    validate(cfg)
                except ConfigError as err:
                    refuse(str(err))
                except HydraException as err:
                    refuse(_one_line(err))
                stores.add((cfg.tracking.uri, cfg.tracking.experiment))
        if len(stores) != 1:
            refuse("invalid sweep over tracking.uri or tracking.experiment: allowed: one store and experiment per sweep")
        ((uri, experiment),) = stores

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        jobs = sum(len(batch) for batch in batches)
        sweep_id = tracking.new_sweep_id()
        try:
            parent = tracking.start_run(
                uri,
                experiment,
                f"sweep {sweep_id}",
                tags={
                    "sweep_id": sweep_id,
                    "run_kind": "sweep",
                    "git_commit": tracking.git_commit(),
                    "sweep_jobs": str(jobs),
                    "sweep_overrides": " ".join(self._parse_config() + list(arguments)),
                },
            )
        except ConfigError as err:
            refuse(str(err))
        extra = [f"++tracking.parent_run_id='{parent}'", f"++tracking.sweep_id='{sweep_id}'"]

        returns: List[List[JobReturn]] = []
        failures: List[JobReturn] = []
        diverged = 0
        error: Optional[BaseException] = None
        try:
            start = 0
            for batch in batches:
                results = self.launcher.launch([list(job) + extra for job in batch], initial_job_idx=start)
                start += len(batch)
                returns.append(list(results))
                for r in results:
                    if r.status == JobStatus.FAILED:
                        failures.append(r)
                    elif isinstance(r.return_value, dict) and r.return_value.get("diverged"):
                        diverged += 1
        except BaseException as err:
            error = err
            raise
        finally:
            status = tracking.job_status(error) if error else (tracking.FAILED if failures else tracking.FINISHED)
            done = sum(len(r) for r in returns)
            tracking.end_run(
                uri,
                parent,
                status,
                metrics={"jobs": jobs, "jobs_done": done, "jobs_failed": len(failures), "runs_diverged": diverged},
            )
        if failures:
            _ = failures[0].return_value  # raises the first job's error, as Hydra's basic sweeper does
        return returns
