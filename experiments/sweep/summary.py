"""The per-cell summary of a sweep, as the table its parent run shows in the MLflow UI.

One row per grid cell (estimator × step size × distance, over seeds): the finished runs,
how many diverged, the median final distance and steps to tolerance, the mean gradient
variance. Column names are plain words: the MLflow UI leaves dotted ones empty.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

TABLE_FILE = "sweep_summary.json"
COLUMNS = ["estimator", "step_size", "distance", "runs", "diverged", "median_final_dist",
           "median_steps_to_tol", "mean_grad_variance"]


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def cell_summary(runs: Iterable) -> dict[str, list]:
    """The table (column -> values) of FINISHED job runs (MLflow ``Run`` objects), sorted by
    estimator, step size and distance. A run diverged past its bound keeps its final distance
    (+inf where it is not finite), so the median says how far off the cell typically ends."""
    cells: dict[tuple, list] = {}
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        p, m = run.data.params, run.data.metrics
        key = (run.data.tags.get("estimator", ""), _number(p.get("step_size")), _number(p.get("problem.distance")))
        cells.setdefault(key, []).append(m)
    table: dict[str, list] = {c: [] for c in COLUMNS}
    for (estimator, step, distance), metrics in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        final = [m.get("final_dist", math.nan) for m in metrics]
        table["estimator"].append(estimator)
        table["step_size"].append(step)
        table["distance"].append(distance)
        table["runs"].append(len(metrics))
        table["diverged"].append(int(sum(m.get("diverged", 0.0) for m in metrics)))
        table["median_final_dist"].append(_median([v if not math.isnan(v) else math.inf for v in final]
                                                  if any("final_dist" in m for m in metrics) else []))
        table["median_steps_to_tol"].append(_median([m.get("steps_to_tol", math.nan) for m in metrics]))
        table["mean_grad_variance"].append(_mean([m.get("mean_grad_variance", math.nan) for m in metrics]))
    return table
