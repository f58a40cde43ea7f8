"""MLflow bookkeeping for runs and sweeps.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids, never through
MLflow's fluent active-run stack: a worker process that runs several jobs in turn carries
no MLflow state from one to the next.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from experiments.config import PROJECT_ROOT, ConfigError, redact_uri
from experiments.sweep.interrupts import deferring

# Schema migrations of a new store log at INFO through alembic: noise in a job's output.
logging.getLogger("alembic").setLevel(logging.WARNING)
# Against a server MLflow prints a "View run at <uri>" line per closed run: noise, an extra
# request per job, and the URI may carry credentials.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

FINISHED = RunStatus.to_string(RunStatus.FINISHED)
FAILED = RunStatus.to_string(RunStatus.FAILED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
RUNNING = RunStatus.to_string(RunStatus.RUNNING)
_PAGE = 100  # runs per search request when reading a whole sweep (about 7 MB in flight)


@functools.cache
def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``sqlite:////abs`` or ``sqlite:///relative``)."""
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0]) if uri.startswith("sqlite:///") else ""
    return None if path in ("", ":memory:") else Path(path)


def artifact_location(uri: str) -> str | None:
    """Artifact root for a new experiment: beside the database for a SQLite store.

    MLflow's own default for SQLite is ``./mlruns`` under whatever the working directory
    is; artifacts would scatter across Hydra's job directories. A tracking server decides
    for itself (None).
    """
    path = sqlite_path(uri)
    return None if path is None else (path.resolve().parent / "mlruns").as_uri()


# Database URI schemes (before any "+driver") that MLflow's SQL store serves.
_DATABASES = ("postgresql", "mysql", "mssql", "sqlite")
_EXTRAS = {"postgresql": "pip install 'mcgrad-bench[postgres]' (psycopg, for postgresql:// and postgresql+psycopg://)"}


def refused_by_design(uri: str) -> str | None:
    """Why MLflow refuses ``uri`` whatever the machine, or None.

    A path or ``file:`` URI names the file store, which MLflow refuses since 3.13 unless
    ``MLFLOW_ALLOW_FILE_STORE=true``; a database URI needs its driver (the DB-API module
    SQLAlchemy's dialect imports) installed.
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (a drive letter on Windows)
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1"):
            return None
        return ("MLflow refuses the file store by design (maintenance mode since 3.13; "
                "MLFLOW_ALLOW_FILE_STORE=true opts out); allowed: sqlite:///<path>/mlflow.db, "
                "a database URI, or a tracking server")
    database = scheme.split("+", 1)[0]
    if database not in _DATABASES:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(uri).get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError) as err:
        return f"SQLAlchemy cannot use it ({' '.join(str(err).split())[:200]}); allowed: a SQLAlchemy database URL"
    except ImportError as err:
        install = _EXTRAS.get(database, f"install the driver for {scheme}://")
        return f"its database driver is not installed ({err}); allowed: {install}"
    return None


@deferring
def preflight(uri: str, timeout: float = 10.0) -> None:
    """Make sure the store answers (creating a new SQLite store) before any job runs.

    Raises :class:`ConfigError` in one line, within about ``timeout`` seconds, if MLflow
    refuses the URI by design (:func:`refused_by_design`), a SQLite path cannot be written
    or a remote store does not answer: MLflow itself would retry an unreachable server for
    minutes. Creating a new SQLite store here, in one process, also keeps parallel jobs from
    racing on its schema.
    """
    shown = redact_uri(uri)
    reason = refused_by_design(uri)
    if reason is not None:
        raise ConfigError(f"invalid tracking.uri={shown}: {reason}")
    path = sqlite_path(uri)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise PermissionError("not writable")
            client(uri).search_experiments(max_results=1)
        except (OSError, MlflowException) as err:
            reason = " ".join(str(getattr(err, "strerror", None) or err).split())[:200]
            raise ConfigError(
                f"invalid tracking.uri={shown}: cannot write the store ({reason}); "
                "allowed: a SQLite file in a writable directory, or a reachable tracking server"
            ) from None
        return

    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            outcome.append(None)
        except BaseException as err:  # reported below, in the caller's thread
            outcome.append(err)

    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(timeout)))
    # MLflow retries a database that does not answer with a multi-line warning per attempt;
    # the refusal below says it in one line.
    retries = logging.getLogger("mlflow.store.db.utils")
    level = retries.level
    retries.setLevel(logging.ERROR)
    try:
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if outcome and outcome[0] is None:
        retries.setLevel(level)  # else the probe may still be retrying: keep it quiet
    if not outcome or outcome[0] is not None:
        reason = f"no answer within {timeout:g} s" if not outcome else type(outcome[0]).__name__
        raise ConfigError(
            f"invalid tracking.uri={shown}: the tracking store is unreachable ({reason}); "
            f"allowed: a reachable MLflow tracking server or database ({urlsplit(uri).scheme or 'path'} URI given)"
        )


@deferring
def experiment_id(uri: str, name: str) -> str:
    """Id of experiment ``name``, created if missing (safe when jobs race to create it)."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        try:
            return c.create_experiment(name, artifact_location=artifact_location(uri))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = c.get_experiment_by_name(name)
    if exp.lifecycle_stage != "active":
        raise ConfigError(
            f"invalid tracking.experiment={name!r}: it is deleted in the store; "
            "allowed: an active or new experiment name (restore it in the MLflow UI or pick another)"
        )
    return exp.experiment_id


@functools.cache
def _run_experiment_id(uri: str, name: str) -> str:
    """:func:`experiment_id`, looked up once per process for the runs a worker creates.

    The sweep (or a single run) has already checked the experiment; its jobs need only its
    id, and asking again would be one more round trip to the store per run.
    """
    return experiment_id(uri, name)


@functools.cache
def git_commit() -> str:
    """Commit of the checkout the code runs from ("+dirty" with uncommitted changes)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def new_sweep_id() -> str:
    """A sortable, unique id: UTC time of the sweep's start and a random suffix."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@deferring
def start_run(
    uri: str,
    experiment: str,
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] = {},
    parent_run_id: str | None = None,
) -> str:
    """Create a RUNNING run with its tags and params; returns its id."""
    c = client(uri)
    all_tags = {**tags, MLFLOW_RUN_NAME: name}
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    run = c.create_run(_run_experiment_id(uri, experiment), tags=all_tags, run_name=name)
    if params:
        c.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return run.info.run_id


@deferring
def end_run(uri: str, run_id: str, status: str, metrics: Mapping[str, float] = {}) -> None:
    c = client(uri)
    if metrics:
        now = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    c.set_terminated(run_id, status=status)


@deferring
def log_tags(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    client(uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


@deferring
def log_curves(
    uri: str, run_id: str, steps: np.ndarray, curves: Mapping[str, np.ndarray], summary: Mapping[str, float]
) -> None:
    """Log every curve point and the summary in batched requests (MLflow splits at 1,000).

    A curve with no finite value (an exact variance the problem does not know) is left out.
    """
    now = int(time.time() * 1000)
    step_list = [int(s) for s in steps]
    metrics = [
        Metric(name, value, now, step)
        for name, values in curves.items()
        if np.isfinite(values).any()
        for step, value in zip(step_list, values.tolist())
    ]
    metrics += [Metric(k, float(v), now, 0) for k, v in summary.items()]
    client(uri).log_batch(run_id, metrics=metrics)


@deferring
def log_files(uri: str, run_id: str, files: Mapping[str, bytes | str | np.ndarray]) -> None:
    """Write ``files`` (name -> text, bytes or array saved as .npy) and log them as artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            path = Path(tmp) / name
            if isinstance(content, np.ndarray):
                np.save(path, content)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        client(uri).log_artifacts(run_id, tmp)


def search_pages(
    c: MlflowClient, experiment_ids: list[str], filter_string: str, page_size: int = _PAGE, order_by=None
) -> Iterator:
    """Every active run matching ``filter_string``, requested ``page_size`` at a time.

    A generator: a run with its params, tags and latest metrics is about 40 KB in memory,
    so callers keep only what they need and read any number of runs in bounded memory.
    """
    token = None
    while True:
        page = c.search_runs(experiment_ids, filter_string, ViewType.ACTIVE_ONLY, page_size, order_by, token)
        yield from page
        token = page.token
        if not token:
            return


def runs_of_sweep(uri: str, experiment: str, sweep_id: str, statuses: Iterable[str] = ()) -> Iterator:
    """The job runs of one sweep, optionally only those in ``statuses``, read page by page."""
    wanted = set(statuses)
    query = f"tags.sweep_id = '{sweep_id}' AND tags.run_kind = 'job'"
    if len(wanted) == 1:  # MLflow compares a status with one value only, not a list
        query += f" AND attributes.status = '{next(iter(wanted))}'"
    runs = search_pages(client(uri), [experiment_id(uri, experiment)], query)
    return (r for r in runs if not wanted or r.info.status in wanted)


def find_sweep(uri: str, experiment: str, sweep_key: str):
    """The latest parent run of a sweep over exactly this grid (tag ``sweep_key``), or None."""
    query = f"tags.run_kind = 'sweep' AND tags.sweep_key = '{sweep_key}'"
    found = client(uri).search_runs(
        [experiment_id(uri, experiment)], query, max_results=1, order_by=["attributes.start_time DESC"]
    )
    return found[0] if found else None


@deferring
def close_runs(uri: str, runs: Iterable, status: str, reason: str) -> int:
    """Terminate ``runs`` with ``status`` and a ``stopped_because`` tag; returns how many."""
    count = 0
    for run in runs:
        log_tags(uri, run.info.run_id, {"stopped_because": reason})
        client(uri).set_terminated(run.info.run_id, status=status)
        count += 1
    return count


@deferring
def reopen(uri: str, run_id: str) -> None:
    client(uri).update_run(run_id, status=RUNNING)


def job_status(error: BaseException | None) -> str:
    if error is None:
        return FINISHED
    return KILLED if isinstance(error, (KeyboardInterrupt, SystemExit)) else FAILED



@deferring
def log_table(uri: str, run_id: str, table: Mapping[str, list], artifact_file: str) -> None:
    """Log ``table`` (column -> values) as an MLflow table artifact, which the UI renders
    (Artifacts tab, and the Evaluation view), replacing an earlier one of the same name.

    ``MlflowClient.log_table`` appends to a file that exists (a resumed sweep would repeat
    its rows); such a file is rewritten whole, in the same format (pandas ``orient="split"``).
    """
    import pandas as pd

    c = client(uri)
    frame = pd.DataFrame(dict(table))
    folder = os.path.dirname(artifact_file)
    if artifact_file not in [f.path for f in c.list_artifacts(run_id, folder or None)]:
        c.log_table(run_id, data=frame, artifact_file=artifact_file)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / os.path.basename(artifact_file)
        frame.to_json(path, orient="split", index=False, date_format="iso")
        c.log_artifact(run_id, str(path), folder or None)
