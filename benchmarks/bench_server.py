"""How long the report's curves of a large sweep take to read: from an MLflow server on PostgreSQL
(bulk requests, 100 runs each), run by run from that server, and from a SQLite file.

    .venv/bin/python benchmarks/bench_server.py [--runs 10000] [--points 101] [--dir DIR]

The first call fills two stores in ``DIR`` (default ``$TMPDIR/mcgrad-bench-server``): a
PostgreSQL data directory and a SQLite file, each with one sweep of ``--runs`` FINISHED job
runs holding the curves the report reads for a problem with an optimum (``grad_variance``,
``grad_variance_exact``, ``dist_to_opt``) at ``--points`` steps each. The rows are written
straight into MLflow's tables (through its own ORM models): logging 10,000 real runs would
take about half an hour; the reads do not depend on how the rows got there. Later calls
with the same sizes reuse the stores.

Then it starts PostgreSQL and ``mlflow server`` on it (two workers, as ``make server``) on
127.0.0.1 and times, after one untimed warm-up read: finding the sweep's runs and reading the
three curves (:func:`experiments.report.data.histories`, what the report calls) through the
server, the same curves run by run for ``--sample`` runs (scaled to ``--runs``), and both
reads from the SQLite file directly. Needs root or a user that can run PostgreSQL's
binaries (Debian's ``postgresql`` package), and the ``postgres`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
CURVES = ("grad_variance", "grad_variance_exact", "dist_to_opt")
EXPERIMENT = "bench-server"
SWEEP = "bench-sweep"


def fill(uri: str, artifacts: Path, runs: int, points: int) -> None:
    """Write ``runs`` FINISHED job runs with :data:`CURVES` at ``points`` steps into ``uri``."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, artifacts.as_uri())
    experiment_id = store.create_experiment(EXPERIMENT)
    rng = np.random.default_rng(0)
    steps = np.linspace(0, 5000, points).astype(int).tolist()
    now = int(time.time() * 1000)
    batch = 500
    for start in range(0, runs, batch):
        ids = [uuid.uuid4().hex for _ in range(min(batch, runs - start))]
        run_rows = [dict(run_uuid=r, name=f"job {start + i}", source_type="LOCAL", source_name="", entry_point_name="",
                         user_id="bench", status="FINISHED", start_time=now, end_time=now + 1000, source_version="",
                         lifecycle_stage="active", artifact_uri=f"{artifacts.as_uri()}/{r}",
                         experiment_id=int(experiment_id)) for i, r in enumerate(ids)]
        tag_rows = [dict(key=k, value=v, run_uuid=r) for r in ids for k, v in (("sweep_id", SWEEP), ("run_kind", "job"))]
        values = rng.lognormal(size=(len(ids), len(CURVES), points)).tolist()
        metric_rows = [dict(key=key, value=v, timestamp=now + s, step=s, is_nan=False, run_uuid=r)
                       for r, per_run in zip(ids, values) for key, curve in zip(CURVES, per_run)
                       for s, v in zip(steps, curve)]
        with store.ManagedSessionMaker() as session:
            session.execute(SqlRun.__table__.insert(), run_rows)
            session.execute(SqlTag.__table__.insert(), tag_rows)
            session.execute(SqlMetric.__table__.insert(), metric_rows)
        print(f"  {start + len(ids)}/{runs} runs written", end="\r", flush=True)
    print()
    store.engine.dispose()


def timed(label: str, fn, results: dict) -> object:
    start = time.perf_counter()
    out = fn()
    results[label] = time.perf_counter() - start
    return out


def read(uri: str, sample: int, results: dict, prefix: str) -> int:
    """Find the sweep's runs and read every curve, as the report does; then run by run for a sample."""
    from mlflow import MlflowClient

    from experiments.report import data

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    data.histories(client, [], CURVES[0])  # warm-up: connections, imports
    runs = timed(f"{prefix} find runs", lambda: data._search(client, experiment_id, f"tags.sweep_id = '{SWEEP}'"),
                 results)
    ids = [r.info.run_id for r in runs]
    frames = timed(f"{prefix} curves", lambda: [data.histories(client, ids, key) for key in CURVES], results)
    assert all(len(f) == len(frames[0]) for f in frames)
    part = ids[:sample]
    timed(f"{prefix} per run, {len(part)} runs",
          lambda: [client.get_metric_history(r, key) for key in CURVES for r in part], results)
    return len(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=101)
    parser.add_argument("--sample", type=int, default=200, help="runs read one by one (scaled up)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mcgrad-bench-server")
    args = parser.parse_args()

    from tests.services.postgres import Postgres, TrackingServer, Unavailable

    root = args.dir / f"{args.runs}x{args.points}"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(args.dir, 0o755)
    os.chmod(root, 0o755)
    pg = Postgres(root / "pg", durable=False)  # throwaway data
    try:
        pg.start()
    except Unavailable as err:
        print(f"bench_server: PostgreSQL cannot run here: {err}")
        return 0
    server = None
    try:
        sqlite = f"sqlite:///{root / 'mlflow.db'}"
        for uri, flag in ((pg.uri, root / "pg.filled"), (sqlite, root / "sqlite.filled")):
            if not flag.exists():
                print(f"filling {uri.split(':')[0]} with {args.runs} runs × {len(CURVES)} curves × {args.points} points")
                start = time.perf_counter()
                fill(uri, root / "artifacts", args.runs, args.points)
                print(f"  took {time.perf_counter() - start:.0f} s")
                flag.touch()
        server = TrackingServer(pg.uri, root / "server").start()
        results: dict[str, float] = {}
        n = read(server.uri, args.sample, results, "server")
        read(sqlite, args.sample, results, "sqlite")
    finally:
        if server is not None:
            server.stop()
        pg.stop()

    load = os.getloadavg()[0]
    print(f"\n{n} runs, {len(CURVES)} curves × {args.points} points each; "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    for label, seconds in results.items():
        print(f"  {label:<32} {seconds:8.2f} s")
    per_run = results[f"server per run, {min(args.sample, n)} runs"] * n / min(args.sample, n)
    bulk = results["server find runs"] + results["server curves"]
    local = results["sqlite find runs"] + results["sqlite curves"]
    print(f"  {'server, run by run (scaled)':<32} {per_run + results['server find runs']:8.2f} s")
    print(f"\nreport's reads from the PostgreSQL-backed server: {bulk:.1f} s for {n} runs "
          f"({bulk / local:.1f}× SQLite's {local:.1f} s; run by run it would be "
          f"{(per_run + results['server find runs']) / bulk:.0f}× longer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
