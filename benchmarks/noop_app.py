"""Hydra's floor: an app with the suite's conf tree whose task does nothing.

``python benchmarks/noop_app.py -m hydra/sweeper=basic`` sweeps the same default grid as
``python -m experiments.run -m``, composing every job's config as Hydra always does.
"""

import hydra
from omegaconf import DictConfig

import experiments.config  # noqa: F401  (registers the ${project_root:} resolver the conf tree uses)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    return None


if __name__ == "__main__":
    main()
