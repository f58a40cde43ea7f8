"""Entry point: ``python -m experiments.report [overrides]`` builds the report of one sweep.

The logic lives in :func:`experiments.report.build_report`; this module only binds it to Hydra.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from experiments.config import ConfigError, hide_credentials, refuse  # also registers ${project_root:}
from experiments.overrides import check_keys


@hydra.main(version_base="1.3", config_path="../../conf", config_name="report")
def main(cfg: DictConfig) -> None:
    from experiments.report import build_report  # after Hydra's start-up: matplotlib and MLflow are slow to import

    try:
        index = build_report(cfg)
    except ConfigError as err:
        refuse(str(err))
    print(f"Report: {index}")
    print(f"Open it with: python -m webbrowser {index.as_uri()}")


if __name__ == "__main__":
    sys.argv[1:] = hide_credentials(sys.argv[1:])
    try:
        check_keys(sys.argv[1:], config_name="report")
    except ConfigError as err:
        refuse(str(err))
    main()
