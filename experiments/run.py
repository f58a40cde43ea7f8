"""Entry point: ``python -m experiments.run [overrides]`` runs one job, ``-m`` a sweep.

The logic lives in :func:`experiments.runner.execute`; this module only binds it to Hydra.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.config import ConfigError, refuse
from experiments.runner import execute


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    try:
        return execute(cfg, overrides=hc.overrides.task)
    except ConfigError as err:
        if hc.mode == RunMode.MULTIRUN:
            raise  # the sweeper validated every job up front; this one fails alone
        refuse(str(err))


if __name__ == "__main__":
    main()
