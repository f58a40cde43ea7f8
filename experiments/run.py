"""Entry point: ``python -m experiments.run [overrides]`` runs one job, ``-m`` a sweep.

The logic lives in :func:`experiments.runner.execute`; this module only binds it to Hydra.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments import tracking
from experiments.config import ConfigError, hide_credentials, refuse, validate
from experiments.overrides import check_group_choices, check_keys
from experiments.sweep.interrupts import Interrupted, sigterm_raises
from experiments.sweep.progress import reporting
from experiments.runner import execute

@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        # The sweeper validated every job and checked the store up front; a ConfigError
        # here fails this job alone. Its end is recorded for the sweep's progress lines.
        with reporting(cfg.tracking.get("progress")):
            return execute(cfg, overrides=hc.overrides.task)
    with sigterm_raises():
        try:
            validate(cfg)
            tracking.preflight(cfg.tracking.uri)
            tracking.experiment_id(cfg.tracking.uri, cfg.tracking.experiment)  # a deleted one is refused
        except ConfigError as err:
            refuse(str(err))
        return execute(cfg, overrides=hc.overrides.task)


def cli() -> None:
    sys.argv[1:] = hide_credentials(sys.argv[1:])
    try:
        check_group_choices(sys.argv[1:])
        check_keys(sys.argv[1:])
    except ConfigError as err:
        refuse(str(err))
    try:
        main()
    except KeyboardInterrupt as err:
        print("mcgrad-bench: interrupted; the active runs were marked KILLED", file=sys.stderr)
        raise SystemExit(143 if isinstance(err, Interrupted) else 130) from None


if __name__ == "__main__":
    cli()
