"""Shared fixtures: composing the project's configs, and running its CLI into a temporary store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from experiments.config import PROJECT_ROOT

CONF_DIR = PROJECT_ROOT / "conf"


@pytest.fixture
def compose_config():
    """``compose_config(*overrides, config_name="config")`` -> the composed job config."""

    def _compose(*overrides: str, config_name: str = "config") -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))

    return _compose


class Store:
    """A temporary SQLite tracking store and the CLI pointed at it."""

    def __init__(self, root: Path):
        self.root = root
        self.db = root / "mlflow.db"
        self.uri = f"sqlite:///{self.db}"

    def run(self, *overrides: str, module: str = "experiments.run", timeout: float = 300) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        flags = [o for o in overrides if o.startswith("-")]
        args = [
            sys.executable,
            "-m",
            module,
            *flags,
            f"tracking.uri={self.uri}",
            f"hydra.run.dir={self.root / 'outputs'}",
            f"hydra.sweep.dir={self.root / 'multirun'}",
            *(o for o in overrides if not o.startswith("-")),
        ]
        return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    def runs(self):
        """Every run of every experiment in the store, as ``mlflow.search_runs`` returns them."""
        import mlflow

        ids = [e.experiment_id for e in self.client().search_experiments()]
        # set_tracking_uri also exports MLFLOW_TRACKING_URI, which later configs would pick up.
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            mlflow.set_tracking_uri(self.uri)
            return mlflow.search_runs(experiment_ids=ids, max_results=10_000)
        finally:
            mlflow.set_tracking_uri(saved)
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)
