"""How long the report of a 1,000-run sweep takes, against just reading that sweep from MLflow.

    .venv/bin/python benchmarks/bench_report.py [--store DIR] [--repeat N]

The first call fills ``DIR`` (default: ``$TMPDIR/mcgrad-bench-report``) with one sweep of
1,000 runs: 2 estimators × 5 step sizes × 5 distances × 20 seeds, default settings otherwise
(5,000 steps, 101 logged points per curve). Each job goes through
:func:`experiments.runner.execute`, the code that logs a job of a real sweep, under a parent
run tagged as the tracked sweeper tags it, in two processes; only Hydra's per-job composition
and start-up are skipped (the configs are composed once and edited). That took 2.5–3 min here,
where a real sweep costs about 0.2 s per job. Later calls reuse the store.

Then it times, in this process and after one untimed build (imports, font cache, database
engine), reading the sweep (:func:`experiments.report.read_sweep`) and building the whole
report (:func:`experiments.report.build_report`: reading again, tables, figures, page, and
logging it to the parent run), and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from experiments.config import PROJECT_ROOT  # noqa: E402

EXPERIMENT = "mcgrad-bench"
GRID = {
    "estimator": ["score_function", "reparameterization"],
    "step_size": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "problem.distance": [1.0, 3.0, 10.0, 30.0, 100.0],
    "seed": list(range(20)),
}
JOBS = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def _compose(uri: str, overrides: list[str], config_name: str = "config"):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=[f"tracking.uri={uri}", *overrides])


def _run_jobs(args: tuple[str, str, str, list[dict]]) -> int:
    from experiments.runner import execute

    uri, parent, sweep_id, jobs = args
    base = {name: _compose(uri, [f"estimator={name}"]) for name in GRID["estimator"]}
    diverged = 0
    for job in jobs:
        cfg = base[job["estimator"]].copy()
        OmegaConf.update(cfg, "step_size", job["step_size"])
        OmegaConf.update(cfg, "problem.distance", job["problem.distance"])
        OmegaConf.update(cfg, "seed", job["seed"])
        OmegaConf.update(cfg, "tracking.parent_run_id", parent)
        OmegaConf.update(cfg, "tracking.sweep_id", sweep_id)
        overrides = [f"{k}={v}" for k, v in job.items()]
        diverged += int(execute(cfg, overrides)["diverged"])
    return diverged


def make_sweep(root: Path) -> str:
    """The benchmark store's URI, with its 1,000-run sweep (written on the first call)."""
    from experiments import tracking

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = root / "sweep.done"
    if done.exists():
        return uri
    if (root / "mlflow.db").exists():
        sys.exit(f"{root} holds an unfinished benchmark store: remove it and run again")
    tic = time.perf_counter()
    # Created here, once: a fresh SQLite store must not be created by two processes at once.
    tracking.experiment_id(uri, EXPERIMENT)
    sweep_id = tracking.new_sweep_id()
    overrides = " ".join(f"{k}={','.join(map(str, v))}" for k, v in GRID.items())
    parent = tracking.start_run(
        uri,
        EXPERIMENT,
        f"sweep {sweep_id}",
        tags={
            "sweep_id": sweep_id,
            "run_kind": "sweep",
            "git_commit": tracking.git_commit(),
            "sweep_jobs": str(len(JOBS)),
            "sweep_overrides": overrides,
        },
    )
    workers = max(1, min(2, os.cpu_count() or 1))
    chunks = [(uri, parent, sweep_id, JOBS[i::workers]) for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        diverged = sum(pool.map(_run_jobs, chunks))
    tracking.end_run(
        uri,
        parent,
        tracking.FINISHED,
        metrics={"jobs": len(JOBS), "jobs_done": len(JOBS), "jobs_failed": 0, "runs_diverged": diverged},
    )
    done.write_text(sweep_id + "\n")
    print(f"wrote {len(JOBS)} runs to {uri} in {time.perf_counter() - tic:.0f} s", flush=True)
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "mcgrad-bench-report")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions; the median is printed")
    args = parser.parse_args()
    uri = make_sweep(args.store)

    from experiments.report import build_report, read_sweep

    cfg = _compose(uri, [f"output_dir={args.store / 'reports'}"], config_name="report")
    build_report(cfg)  # warm-up: imports, font cache, SQLAlchemy engine

    read, full = [], []
    for _ in range(args.repeat):
        tic = time.perf_counter()
        sweep = read_sweep(cfg.tracking.uri, cfg.tracking.experiment, cfg.sweep_id)
        read.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        build_report(cfg)
        full.append(time.perf_counter() - tic)
    r, f = statistics.median(read), statistics.median(full)
    print(f"sweep {sweep.sweep_id}: {len(sweep.runs)} runs, {len(sweep.curves)} curve points")
    print(f"read only     {r:6.2f} s   (median of {args.repeat})")
    print(f"whole report  {f:6.2f} s   (median of {args.repeat})")
    print(f"ratio         {f / r:6.2f}")


if __name__ == "__main__":
    main()
