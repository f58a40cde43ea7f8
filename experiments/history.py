"""Many runs' metric histories from an MLflow tracking server, in a few requests.

MLflow's REST API reads one run's history of one metric per request (``GetMetricHistory``):
a report over N runs and k curves makes N·k round trips, about 14 ms each here, or 14 s
per curve per 1,000 runs. The server's UI draws its charts from
``/ajax-api/2.0/mlflow/metrics/get-history-bulk`` instead: up to 100 runs per request, up to
25,000 values per answer, sorted by run id (then timestamp, step, value). On a SQL store
the server answers it with one query.

That endpoint serves the UI and is not part of MLflow's documented REST API, so it can
change: where it is missing (404) or answers in another shape, :func:`bulk_histories`
returns None and the caller reads run by run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from mlflow import MlflowClient

BULK_PATH = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
MAX_RUNS = 100  # the server refuses more run ids per request
MAX_VALUES = 25_000  # the server's cap on values per answer: more are cut off, silently
_WORKERS = 4  # requests in flight; `make server` runs two workers of its own

Row = tuple[str, int, float]


class Unsupported(Exception):
    """The server does not answer bulk history requests as expected."""


def rest_store(client: MlflowClient):
    """The client's REST store (a tracking server), or None for a database or file store."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if callable(getattr(store, "get_host_creds", None)) else None


def _request(store, run_ids: Sequence[str], key: str) -> list[dict]:
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(store.get_host_creds(), BULK_PATH, "GET",
                            params={"run_id": list(run_ids), "metric_key": key, "max_results": MAX_VALUES})
    if response.status_code in (404, 405):
        raise Unsupported(f"{BULK_PATH} answered {response.status_code}")
    verify_rest_response(response, BULK_PATH)
    try:
        metrics = response.json().get("metrics", [])  # an empty list may be left out
    except (ValueError, KeyError, TypeError) as err:
        raise Unsupported(f"{BULK_PATH} answered in another shape ({err})") from None
    return metrics


def _value(raw) -> float:
    # JSON has no NaN or infinities: the server writes them as NaN/Infinity or as strings.
    return float(raw) if not isinstance(raw, str) else float(raw.replace("Infinity", "inf"))


def _chunk(client: MlflowClient, store, run_ids: Sequence[str], key: str) -> list[Row]:
    """Every value of ``key`` for ``run_ids`` (at most :data:`MAX_RUNS`).

    An answer of :data:`MAX_VALUES` values may have been cut off inside its last run: the
    runs before it are complete, the rest are asked again. A single run with that many
    values is read through the paginated per-run API.
    """
    rows: list[Row] = []
    pending = list(run_ids)
    while pending:
        metrics = _request(store, pending, key)
        try:
            got = [(m["run_id"], int(m.get("step", 0)), _value(m["value"])) for m in metrics]
        except (KeyError, TypeError, ValueError) as err:
            raise Unsupported(f"{BULK_PATH} answered in another shape ({err!r})") from None
        if len(got) < MAX_VALUES:
            rows.extend(got)
            return rows
        last = got[-1][0]
        done = {run for run, _, _ in got} - {last}
        if done:
            rows.extend(row for row in got if row[0] in done)
        else:  # one run alone fills an answer
            rows.extend((last, m.step, m.value) for m in client.get_metric_history(last, key))
            done = {last}
        pending = [run for run in pending if run not in done]
    return rows


def bulk_histories(client: MlflowClient, run_ids: Iterable[str], key: str) -> list[Row] | None:
    """(run_id, step, value) of every logged value of metric ``key`` of each run, read from a
    tracking server :data:`MAX_RUNS` runs per request; None if the client is not a server's
    or the server does not offer the bulk endpoint."""
    store = rest_store(client)
    if store is None:
        return None
    run_ids = sorted(set(run_ids))
    chunks = [run_ids[i : i + MAX_RUNS] for i in range(0, len(run_ids), MAX_RUNS)]
    try:
        with ThreadPoolExecutor(max(1, min(_WORKERS, len(chunks)))) as pool:
            parts = list(pool.map(lambda chunk: _chunk(client, store, chunk, key), chunks))
    except Unsupported:
        return None
    return [row for part in parts for row in part]

