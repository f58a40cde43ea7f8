"""The benchmark's runs: problems, the SGD loop and its diagnostics, configs and tracking."""

import os

# MLflow (3.x) sends usage telemetry over the network from every process that imports it,
# unless told not to before that import. A benchmark's processes talk to their tracking
# store only; MLFLOW_DISABLE_TELEMETRY=false turns it back on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
