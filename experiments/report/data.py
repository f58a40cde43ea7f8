"""Reading one sweep out of the tracking store: runs, curves and trajectories, nothing computed.

Everything comes from MLflow through :class:`mlflow.MlflowClient` with explicit ids. The
runs are searched with ``MlflowClient.search_runs`` and laid out like
``mlflow.search_runs`` lays them out (``params.*``, ``metrics.*``, ``tags.*``), then made
tidy; ``mlflow.search_runs`` itself is not called because it reads the global tracking URI,
and setting that also sets ``MLFLOW_TRACKING_URI`` in ``os.environ`` for the rest of the
process.

Curves: ``MlflowClient.get_metric_history``, the client's only history call, costs one
query per run and key: about 14 s per key for 1,000 runs here (5.5 s in 4 threads). A SQL
store also answers ``get_metric_history_bulk``, the store method behind the MLflow server's
``get-history-bulk`` endpoint, with one query per key: about 2.5 s per key for 1,000 runs.
The client exposes its store only as ``MlflowClient._tracking_client.store``; when that is
not there or has no such method (a tracking server), the per-run calls run in threads.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from experiments import tracking
from experiments.config import ConfigError, redact_uri
from experiments.sgd import CURVES as LOOP_CURVES
from experiments.sgd import SUMMARY

# Curves read for every complete run. The distance to the optimum is read for the runs that
# measured one (a problem with an optimum), the loss for the others: what their report draws.
CURVES = ("grad_variance", "grad_variance_exact")
DISTANCE_CURVE, LOSS_CURVE = "dist_to_opt", "loss"
# The variance study's step-0 measures, each also per block of θ as ``<measure>/<block>``.
STUDY_MEASURES = ("grad_variance", "grad_variance_se", "grad_variance_exact")
# The bias probe's step-0 measures (runs of a problem that knows ∇L log them): the bias study
# and the split of the MSE at θ₀ into bias² and variance.
BIAS_MEASURES = ("grad_bias_sq", "grad_bias_sq_se", "grad_bias_sq_exact")
# Curves of the bias against step, read only in a sweep with a biased estimator (:func:`biased`).
BIAS_CURVES = ("grad_bias_sq", "grad_bias_sq_exact")
_LONG = ["run_id", "key", "step", "value"]
# Params that are never a factor of the grid: the seed (the replicate), where the run was
# logged, and the estimator's own options (part of its label, see :func:`estimator_labels`).
NOT_FACTORS = ("seed", "tracking.", "estimator.")
PRIMARY = ("estimator", "step_size", "problem.distance")

_SWEEP_ID = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclass
class Sweep:
    """One sweep as read from the store.

    ``parent``: the sweep's parent run (id, status, start time, tags, metrics), None if absent.
    ``runs``: one row per job run, sorted; params cast to numbers, the summary metrics, and
    ``complete`` (FINISHED with its summary logged), and the tag ``curves`` (the problem's
    declared curves, comma-separated). ``curves``: long frame (``run_id``, ``key``, ``step``,
    ``value``) of the curves drawn against step. ``start``: the same layout, step 0 only, for
    measures drawn at θ₀ alone: the variance study's (:data:`STUDY_MEASURES`, per block) and
    the bias probe's (:data:`BIAS_MEASURES`), with the variance's standard error.
    ``trajectories``: for the runs drawn in the plane, ``{"theta": θ_0…θ_stop, "optimum": x
    or None}``, filled by whoever picks those runs (:func:`trajectories`). ``factors``: the
    grid's columns, the estimator, step size and distance (where the runs have one) first,
    then any other param the sweep varies. ``problem_curves``: the union of the runs'
    declared curves, in the order declared.
    """

    uri: str
    experiment: str
    experiment_id: str
    sweep_id: str
    parent: dict | None
    runs: pd.DataFrame
    curves: pd.DataFrame
    trajectories: dict[str, dict] = field(default_factory=dict)
    factors: list[str] = field(default_factory=list)
    problem_curves: list[str] = field(default_factory=list)
    start: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_LONG))

    @property
    def extras(self) -> list[str]:
        """Factors other than the estimator, step size and distance (panels inside each figure)."""
        return [f for f in self.factors if f not in PRIMARY]


class ReportError(ConfigError):
    """The store, experiment or sweep asked for is not there; one line, like a config error."""


def open_store(uri: str) -> MlflowClient:
    """A client of an existing store; a SQLite file that is not there is refused, not created, and so
    is a URI that MLflow refuses by design (:func:`experiments.tracking.refused_by_design`)."""
    reason = tracking.refused_by_design(uri)
    if reason is not None:
        raise ReportError(f"invalid tracking.uri={redact_uri(uri)!r}: {reason}")
    path = tracking.sqlite_path(uri)
    if path is not None and not path.is_file():
        raise ReportError(
            f"invalid tracking.uri={redact_uri(uri)!r}: no tracking store at {path}; "
            "allowed: the URI of an existing store (run `python -m experiments.run -m` first)"
        )
    return tracking.client(uri)


def _search(client: MlflowClient, experiment_id: str, filter_string: str, max_results: int | None = None,
            order_by: list[str] | None = None) -> list:
    """The matching runs: all of them, or the first ``max_results`` (one request)."""
    pages = tracking.search_pages(client, [experiment_id], filter_string, max_results or 50_000, order_by)
    return list(itertools.islice(pages, max_results))


def sweep_ids(client: MlflowClient, experiment_id: str, limit: int = 5) -> list[str]:
    """The latest sweeps' ids, newest first (a sweep is a run tagged ``sweep_jobs``)."""
    # ``sweep_jobs`` rather than ``run_kind=sweep``: stores written before ``run_kind`` existed.
    runs = _search(client, experiment_id, "tags.sweep_jobs LIKE '%'", max_results=limit,
                   order_by=["attributes.start_time DESC"])
    return [r.data.tags["sweep_id"] for r in runs if r.data.tags.get("sweep_id")]


def find_sweep(client: MlflowClient, experiment: str, sweep_id: str | None) -> tuple[str, str]:
    """(experiment id, sweep id): the one asked for, or the experiment's latest sweep."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage != "active":
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"invalid tracking.experiment={experiment!r}: no such experiment in {redact_uri(client.tracking_uri)}; "
            f"allowed: one of {', '.join(names) or '(none: the store is empty)'}"
        )
    latest = sweep_ids(client, exp.experiment_id)
    if sweep_id is None:
        if not latest:
            raise ReportError(
                f"invalid tracking.experiment={experiment!r}: it holds no sweep; "
                "allowed: an experiment with a sweep (run `python -m experiments.run -m` first)"
            )
        return exp.experiment_id, latest[0]
    sweep_id = str(sweep_id)
    found = _SWEEP_ID.match(sweep_id) and _search(
        client, exp.experiment_id, f"tags.sweep_id = '{sweep_id}'", max_results=1
    )
    if not found:
        known = ", ".join(latest) + (", …" if len(latest) == 5 else "") if latest else "(none)"
        raise ReportError(
            f"invalid sweep_id={sweep_id!r}: no run of experiment {experiment!r} has it; "
            f"allowed: null (the latest sweep) or a sweep id such as {known}"
        )
    return exp.experiment_id, sweep_id


def _frame(runs: Sequence) -> pd.DataFrame:
    """Runs laid out as ``mlflow.search_runs`` lays them out (params and tags as strings)."""
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "run_name": run.data.tags.get(MLFLOW_RUN_NAME, run.info.run_name),
        }
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["run_id", "status", "start_time", "run_name"])


def _cast(values: pd.Series) -> pd.Series:
    """Params are strings in MLflow: numbers where every value is one."""
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError):
        return values


def estimator_labels(params: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """Each run's estimator: its name, and the options the sweep varies under that name.

    ``estimator=score_function estimator/baseline=none,optimal`` gives
    ``score_function (baseline=none)`` and ``score_function (baseline=optimal)``.
    """
    tag = frame.get("tags.estimator", pd.Series(None, index=frame.index))
    name = params["estimator.name"] if "estimator.name" in params else pd.Series(None, index=frame.index)
    name = name.fillna(tag).fillna("unknown").astype(str)
    options = [c for c in params.columns if c.startswith("estimator.") and c != "estimator.name"]
    varying = [c for c in options if (params[c].astype(str).groupby(name).nunique() > 1).any()]
    if not varying:
        return name
    short = {c: c[len("estimator.") :].removesuffix(".name") for c in varying}
    labels = []
    for n, (_, row) in zip(name, params[varying].iterrows()):
        opts = ", ".join(f"{short[c]}={row[c]}" for c in varying if pd.notna(row[c]))
        labels.append(f"{n} ({opts})" if opts else n)
    return pd.Series(labels, index=frame.index)


def tidy(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The job runs with plain column names and numeric params, and the grid's factors."""
    out = pd.DataFrame({"run_id": frame["run_id"], "run_name": frame["run_name"], "status": frame["status"]})
    params = sorted(c[len("params.") :] for c in frame.columns if c.startswith("params."))
    for key in params:
        out[key] = _cast(frame[f"params.{key}"])
    out["estimator"] = estimator_labels(out, frame)
    for key in ("git_commit", "config_hash", "curves", "formula"):
        out[key] = frame.get(f"tags.{key}", pd.Series(None, index=frame.index))
    for key in SUMMARY:
        out[key] = pd.to_numeric(frame.get(f"metrics.{key}", pd.Series(np.nan, index=frame.index)))
    out["complete"] = (out["status"] == tracking.FINISHED) & out["diverged"].notna()
    # A grid point that a resumed sweep ran again keeps its failed or killed attempt in the
    # store; the finished run stands for that point.
    finished = set(out.loc[out["status"] == tracking.FINISHED, "config_hash"].dropna())
    out = out[~((out["status"] != tracking.FINISHED) & out["config_hash"].isin(finished))]
    for key in PRIMARY:
        if key not in out:
            out[key] = np.nan
    # A problem without an optimum has no distance: then it is no factor (no column of NaN).
    primary = [k for k in PRIMARY if k != "problem.distance" or out[k].notna().any()]
    varying = [
        k for k in params
        if not k.startswith(NOT_FACTORS) and k not in PRIMARY and out[k].nunique(dropna=False) > 1
    ]
    factors = primary + varying
    out = out.sort_values([*factors, "seed", "run_id"] if "seed" in out else [*factors, "run_id"], kind="stable")
    return out.reset_index(drop=True), factors


def run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per job run, for users (:func:`experiments.load_sweep`): :func:`tidy`'s columns
    (its ``estimator`` is the report's label), params that are all ``True``/``False`` as
    booleans, then the suite's other tags (``problem``, ``family``, ``sweep_id``, ``run_kind``,
    …; MLflow's own ``mlflow.*`` tags left out)."""
    runs, _ = tidy(frame)
    params = [c[len("params.") :] for c in frame.columns if c.startswith("params.")]
    for key in params:
        values = runs[key].dropna()
        if len(values) and values.isin(["True", "False"]).all():
            runs[key] = runs[key].map({"True": True, "False": False})
    by_id = frame.set_index("run_id")
    for column in sorted(c for c in frame.columns if c.startswith("tags.") and not c.startswith("tags.mlflow.")):
        if column[len("tags.") :] not in runs:
            runs[column[len("tags.") :]] = runs["run_id"].map(by_id[column])
    return runs


def _sql_store(client: MlflowClient):
    """The client's store where it answers bulk history queries (a SQL store), else None."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if hasattr(store, "get_metric_history_bulk") else None


def histories(client: MlflowClient, run_ids: Iterable[str], key: str) -> pd.DataFrame:
    """Every logged value of metric ``key`` of each run: (``run_id``, ``key``, ``step``, ``value``)."""
    run_ids = sorted(run_ids)
    store = _sql_store(client)
    rows: list[tuple[str, int, float]] | None = None
    if store is not None:
        try:
            rows = []
            for i in range(0, len(run_ids), 500):  # well under SQLite's bound on query variables
                chunk = store.get_metric_history_bulk(run_ids[i : i + 500], key, max_results=2**62)
                rows.extend((m.run_id, m.step, m.value) for m in chunk)
        # A private method can change its arguments or results, or become a stub, unannounced.
        except (AttributeError, TypeError, NotImplementedError):
            rows = None
    if rows is None:  # a tracking server: up to 100 runs per request (experiments.history)
        from experiments.history import bulk_histories

        rows = bulk_histories(client, run_ids, key)
    if rows is None:
        rows = []

        def one(run_id: str) -> list[tuple[str, int, float]]:
            return [(run_id, m.step, m.value) for m in client.get_metric_history(run_id, key)]

        with ThreadPoolExecutor(8) as pool:
            for part in pool.map(one, run_ids):
                rows.extend(part)
    frame = pd.DataFrame(rows, columns=["run_id", "step", "value"])
    frame.insert(1, "key", key)
    # A value logged twice at one step (a retried write) counts once: keep the last.
    return frame.drop_duplicates(["run_id", "step"], keep="last").astype({"step": "int64", "value": "float64"})


def first_values(client: MlflowClient, run_ids: Iterable[str], key: str) -> pd.DataFrame:
    """The value of metric ``key`` each run logged at step 0, laid out as :func:`histories`.

    A SQL store's ``get_metric_history_bulk_interval`` over steps [0, 0] asks for that point
    alone (one small query per run, in one session): about half the time of the whole
    histories of a 101-point curve. Elsewhere, or if that method changed, the histories are
    read and cut.
    """
    run_ids = sorted(run_ids)
    store = _sql_store(client)
    if store is not None:
        try:
            rows = []
            for i in range(0, len(run_ids), 500):
                chunk = store.get_metric_history_bulk_interval(run_ids[i : i + 500], key, 1, 0, 0)
                rows.extend((m.run_id, m.step, m.value) for m in chunk)
        except (AttributeError, TypeError, NotImplementedError):  # a private method, as in histories
            rows = None
        if rows is not None:
            frame = pd.DataFrame(rows, columns=["run_id", "step", "value"])
            frame.insert(1, "key", key)
            frame = frame.astype({"step": "int64", "value": "float64"})
            return frame[frame["step"] == 0].drop_duplicates(["run_id"], keep="last")
    frame = histories(client, run_ids, key)
    return frame[frame["step"] == 0]


def study_param(runs: pd.DataFrame) -> str | None:
    """The parameter of a θ₀ study, drawn on the x axis: among the complete runs measured at
    θ₀ only (``steps`` = 0), the number of samples N (``samples``) where it takes several
    values, else the numeric ``problem.*`` param with the most values (the first by name on a
    tie); None if there is no such run or param. The distance has a figure of its own (the
    variance against D), so it is never the study's parameter."""
    if "steps" not in runs:
        return None
    at_start = runs[runs["complete"] & (runs["steps"] == 0)]
    if "samples" in at_start and at_start["samples"].nunique() > 1:
        return "samples"
    swept = [
        c for c in sorted(runs.columns)
        if c.startswith("problem.") and c != "problem.distance" and pd.api.types.is_numeric_dtype(runs[c])
        and not pd.api.types.is_bool_dtype(runs[c]) and at_start[c].nunique() > 1
    ]
    return max(swept, key=lambda c: at_start[c].nunique()) if swept else None


def study_facets(runs: pd.DataFrame, param: str) -> list[str]:
    """The study's other facets, one panel column per combination of their values:
    ``problem.f`` where the runs have it, and any other ``problem.*`` param that takes several
    values (another number, such as the dimension, included)."""
    return sorted(
        c for c in runs.columns
        if c.startswith("problem.") and c != param
        and (c == "problem.f" and not pd.api.types.is_numeric_dtype(runs[c]) or runs[c].nunique() > 1)
    )


def variance_study(runs: pd.DataFrame) -> pd.Series:
    """The complete runs of a θ₀ study (the reference study's figure 2 over k, or any
    :func:`study_param`): runs measured at θ₀ only (``steps`` = 0) over several values of one
    numeric param of the problem."""
    if study_param(runs) is None:
        return pd.Series(False, index=runs.index)
    return runs["complete"] & (runs["steps"] == 0)


def one_per_seed(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One complete run per grid cell but the step size, and seed: θ₀ and the probe's random
    stream at step 0 do not depend on the step size, so such runs repeat one measurement there."""
    keys = [f for f in factors if f != "step_size"] + (["seed"] if "seed" in runs else [])
    done = runs[runs["complete"]]
    return done.drop_duplicates(keys) if keys else done.iloc[:1]


def measured_distance(runs: pd.DataFrame) -> pd.Series:
    """The complete runs that measured a distance to an optimum: ``best_dist`` is finite from
    θ₀ on for those, even after a divergence, and absent for a problem without an optimum."""
    return runs["complete"] & runs["best_dist"].notna()


def declared_curves(runs: pd.DataFrame) -> list[str]:
    """The union of the runs' declared curves (tag ``curves``), in the order declared."""
    names = runs["curves"].dropna().astype(str) if "curves" in runs else []
    return list(dict.fromkeys(n for value in names for n in value.split(",") if n))


def _blocks(frame: pd.DataFrame, run_ids: Iterable[str]) -> list[str]:
    """The blocks of θ whose measures the runs logged (``grad_variance/<block>``), sorted."""
    rows = frame[frame["run_id"].isin(set(run_ids))]
    prefix = "metrics.grad_variance/"
    return sorted(c[len(prefix) :] for c in rows.columns if c.startswith(prefix) and rows[c].notna().any())


def _optimum(config: Path) -> np.ndarray | None:
    """The optimum x of the run's problem, built from its logged config (no estimator runs)."""
    from omegaconf import OmegaConf

    from experiments.config import build

    try:
        problem = build(OmegaConf.load(config).problem)
        return np.asarray(problem.optimum, dtype=float)
    except Exception:  # a problem without a known optimum, or code that has moved since
        return None


def trajectories(uri: str, run_ids: Iterable[str]) -> dict[str, dict]:
    """Per run: θ_0 … θ_stop from its ``trajectory.npy`` artifact, and the optimum x of its
    problem from ``config.yaml`` (None if unknown). Runs without a trajectory are left out."""
    client = open_store(uri)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run_id in run_ids:
            dst = Path(tmp) / run_id
            dst.mkdir()
            try:
                theta = np.load(client.download_artifacts(run_id, "trajectory.npy", str(dst)))
            except Exception:  # a failed job may have logged no artifact; the report says so
                continue
            try:
                optimum = _optimum(Path(client.download_artifacts(run_id, "config.yaml", str(dst))))
            except Exception:
                optimum = None
            out[run_id] = {"theta": theta, "optimum": optimum}
    return out


@dataclass
class SweepRuns:
    """Every run of one sweep as the store holds them, laid out by :func:`_frame`."""

    client: MlflowClient
    experiment_id: str
    sweep_id: str
    frame: pd.DataFrame
    is_parent: pd.Series  # True on the sweep's parent run(s), False on its job runs

    @property
    def jobs(self) -> pd.DataFrame:
        return self.frame[~self.is_parent].reset_index(drop=True)


def read_runs(uri: str, experiment: str, sweep_id: str | None = None) -> SweepRuns:
    """The runs of sweep ``sweep_id`` (None: the latest) of ``experiment``, parent and jobs
    told apart: what :func:`read_sweep` (the report) and :func:`experiments.load_sweep` both read.

    Raises :class:`ReportError` (one line) for a store, experiment or sweep that is not there.
    """
    client = open_store(uri)
    experiment_id, sweep_id = find_sweep(client, experiment, sweep_id)
    frame = _frame(_search(client, experiment_id, f"tags.sweep_id = '{sweep_id}'"))
    tags = frame.get("tags.run_kind", pd.Series(None, index=frame.index))
    no_parent = frame.get(f"tags.{MLFLOW_PARENT_RUN_ID}", pd.Series(None, index=frame.index)).isna()
    has_jobs = frame.get("tags.sweep_jobs", pd.Series(None, index=frame.index)).notna()
    is_parent = (tags == "sweep") | (tags.isna() & no_parent & has_jobs)
    return SweepRuns(client, experiment_id, sweep_id, frame, is_parent)


def read_sweep(uri: str, experiment: str, sweep_id: str | None = None) -> Sweep:
    """Read sweep ``sweep_id`` (None: the latest) of ``experiment``: its runs and the curves the
    report draws. The trajectories of the runs it draws in the plane are read apart
    (:func:`trajectories`): which runs those are is the report's choice, not the reader's."""
    found = read_runs(uri, experiment, sweep_id)
    client, experiment_id, sweep_id = found.client, found.experiment_id, found.sweep_id
    frame, is_parent = found.frame, found.is_parent
    parent = None
    if is_parent.any():
        row = frame[is_parent].sort_values("start_time").iloc[-1]
        parent = {
            "run_id": row["run_id"],
            "status": row["status"],
            "start_time": int(row["start_time"]),
            "tags": {c[5:]: v for c, v in row.items() if c.startswith("tags.") and isinstance(v, str)},
            "metrics": {c[8:]: v for c, v in row.items() if c.startswith("metrics.") and pd.notna(v)},
        }
    runs, factors = tidy(found.jobs)
    done = runs.loc[runs["complete"], "run_id"].tolist()
    measured = measured_distance(runs)
    # A declared name the loop also logs is read (and drawn) once, as the loop's curve.
    extra = [c for c in declared_curves(runs) if c not in LOOP_CURVES]
    parts = [histories(client, done, key) for key in (*CURVES, *extra)]
    parts.append(histories(client, runs.loc[measured, "run_id"], DISTANCE_CURVE))
    parts.append(histories(client, runs.loc[runs["complete"] & ~measured, "run_id"], LOSS_CURVE))
    start = _start(client, frame, runs, factors)
    if biased(start):  # the bias then moves with θ_t: worth a curve, read only for such a sweep
        moved = runs.loc[runs["complete"] & (runs["steps"] > 0), "run_id"] if "steps" in runs else []
        parts += [histories(client, moved, key) for key in BIAS_CURVES]
    curves = pd.concat(parts, ignore_index=True).sort_values(["key", "run_id", "step"], kind="stable")
    return Sweep(uri, experiment, experiment_id, sweep_id, parent, runs, curves.reset_index(drop=True),
                 factors=factors, problem_curves=extra, start=start)


def biased(start: pd.DataFrame) -> bool:
    """Whether a run measured its estimator's bias at θ₀ and that estimator is biased: its
    exact bias² there is not 0 (an unbiased estimator's is 0 exactly), or was not derived."""
    probed = set(start.loc[start["key"] == "grad_bias_sq", "run_id"])
    exact = start[(start["key"] == "grad_bias_sq_exact") & start["run_id"].isin(probed)].set_index("run_id")["value"]
    return bool(probed) and not (exact.reindex(sorted(probed)) == 0).all()


def _start(client: MlflowClient, frame: pd.DataFrame, runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """The step-0 values of :attr:`Sweep.start`: the study's per-block measures for its runs,
    the bias probe's for the runs that logged it, the variance's standard error for both.

    Read (:func:`first_values`) for one run per cell and seed (:func:`one_per_seed`): that
    divides the cost by the number of step sizes.
    """
    keys: dict[str, pd.Series] = {}
    study = runs.loc[variance_study(runs), "run_id"]
    if len(study):
        blocks = _blocks(frame, study)
        for key in (f"{m}/{b}" for m in STUDY_MEASURES for b in blocks):
            keys[key] = study
    logged = [m for m in BIAS_MEASURES if f"metrics.{m}" in frame]
    if logged or len(study):
        probed = one_per_seed(runs, factors)["run_id"]
        probed = pd.concat([probed, study]).drop_duplicates() if len(study) else probed
        for key in ("grad_variance_se", *logged):
            keys[key] = probed
    parts = [pd.DataFrame(columns=_LONG).astype({"step": "int64", "value": "float64"})]
    parts += [first_values(client, ids, key) for key, ids in keys.items()]
    start = pd.concat(parts, ignore_index=True).sort_values(["key", "run_id"], kind="stable")
    return start.reset_index(drop=True)
