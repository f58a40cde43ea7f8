"""The benchmark's runs: problems, the SGD loop and its diagnostics, configs and tracking.

The public API for Python and notebooks (:mod:`experiments.api`): :func:`load_sweep` reads a
sweep into a DataFrame, :func:`run_config` runs one configuration. Both are imported on first
use, so ``import experiments`` stays light (no MLflow, no pandas).
"""

import importlib
import os

# MLflow (3.x) sends usage telemetry over the network from every process that imports it,
# unless told not to before that import. A benchmark's processes talk to their tracking
# store only; MLFLOW_DISABLE_TELEMETRY=false turns it back on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__all__ = ["load_sweep", "run_config"]


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module("experiments.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
