"""Where a sweep's time goes, as ratios measured within one invocation (machine noise cancels).

    python benchmarks/bench_suite.py [--quick]

1. sweep overhead: the default 90-job sweep / the same grid in a no-op Hydra app (target <= 1.5),
   into a new store (which the sweep creates, about 2 s) and into that existing store
2. notebook-style run (one step at a time, one mlflow.log_metric per value) / the suite's run (target >= 50),
   logging the same 101 points per curve, both every step, and the notebook every step against the
   suite's default 101 points
3. one gradient estimate / drawing its normals, N = 10^4, d = 2 and 30 (target <= 2)
4. basic launcher / joblib launcher with 2 workers, same grid (target >= 1.6), every run present:
   the default 90-job grid, the same grid with 20 seeds (360 jobs), and with 4x the steps;
   "jobs_only" compares the spans from the first job's start to the last one's end
5. time per run and the sweep's peak memory as the grid grows from 10 to 1,000 runs (flat)

Not part of the test suite: timings depend on the machine; only the ratios are meant to be read.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


SUITE = ["-m", "experiments.run"]
NOOP = ["benchmarks/noop_app.py"]


# Runs ``-m module ...`` or ``script ...`` as python would, then writes the process's own
# peak RSS to $BENCH_PEAK_FILE. VmHWM starts afresh at exec; getrusage's ru_maxrss does not:
# a child inherits the parent's high-water mark at fork and keeps it across exec, so it
# would read at least the benchmark's own size.
PEAK = """
import atexit, os, runpy, sys
def peak():
    with open("/proc/self/status") as f:
        kib = next(line for line in f if line.startswith("VmHWM")).split()[1]
    with open(os.environ["BENCH_PEAK_FILE"], "w") as f:
        f.write(kib)
atexit.register(peak)
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def cli(args: list[str], store: Path, entry: list[str] = SUITE) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command, writing into ``store``."""
    store.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["BENCH_PEAK_FILE"] = str(store / "peak_kib")
    head = [sys.executable, "-c", PEAK, *entry]
    flags = [a for a in args if a.startswith("-")]
    rest = [a for a in args if not a.startswith("-")]
    cmd = [*head, *flags, f"tracking.uri=sqlite:///{store / 'mlflow.db'}", f"hydra.sweep.dir={store / 'multirun'}",
           f"hydra.run.dir={store / 'outputs'}", *rest]
    with tempfile.TemporaryFile() as err:
        tic = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        wall = time.perf_counter() - tic
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"command failed: {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
    return wall, int((store / "peak_kib").read_text()) / 1024


def finished_jobs(store: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, "tags.run_kind = 'job' and attributes.status = 'FINISHED'", max_results=50_000)


def jobs_span(runs: list) -> float:
    """Seconds from the first job's start to the last job's end: the sweep without its start-up."""
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def sweep_overhead(tmp: Path) -> list[dict]:
    """The default sweep into a new store (created by the sweep), then again into that store."""
    floor, _ = cli(["-m", "hydra/sweeper=basic"], tmp / "noop", entry=NOOP)
    fresh, _ = cli(["-m"], tmp / "suite")
    again, _ = cli(["-m", "hydra.sweeper.rerun=true"], tmp / "suite")
    return [{"store": store, "suite_s": suite, "hydra_floor_s": floor, "ratio": suite / floor, "target": "<= 1.5"}
            for store, suite in (("new", fresh), ("existing", again))]


def notebook_vs_suite(tmp: Path, every_step: bool = True) -> list[dict]:
    """The founding setting, T = 5,000, the contract's curves: a notebook-style loop against the suite.

    Rows: both log the same 101 points per curve; both log every step (the suite with
    ``log_points=T+1``); and the notebook logging every step, as such loops usually do,
    against the suite's default run (101 points per curve).
    """
    import mlflow
    from hydra import compose, initialize_config_dir

    import estimators
    from problems.quadratic import Quadratic
    from experiments.runner import execute
    from experiments.sgd import log_steps

    uri = f"sqlite:///{tmp / 'nb' / 'mlflow.db'}"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"tracking.uri={uri}", "step_size=1e-4"])
        dense = compose("config", overrides=[f"tracking.uri={uri}", "step_size=1e-4", f"log_points={cfg.steps + 1}"])
    execute(cfg)  # creates the store and warms imports, as a notebook's first cell would

    problem, alpha, T, V = Quadratic(), cfg.step_size, cfg.steps, cfg.variance_samples
    sf_config = estimators.describe(estimators.score_function)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("notebook")

    def notebook(logged: set) -> None:
        x = problem.optimum
        theta = np.zeros(2)
        with mlflow.start_run():
            for t in range(T + 1):
                if t in logged:
                    grads = np.array([(np.linalg.norm(z - x) ** 2) * (z - theta)
                                      for z in (np.random.randn(V, 2) + theta)])
                    var = grads.var(axis=0, ddof=1).sum()
                    exact = problem.exact_variance(sf_config, problem.family,
                                                   estimators.GaussianParams(theta, problem.sigma), 1)["mean"]
                    g = 2 * (theta - x)
                    mlflow.log_metric("loss", np.linalg.norm(theta - x) ** 2 + 2, step=t)
                    mlflow.log_metric("dist_to_opt", np.linalg.norm(theta - x), step=t)
                    mlflow.log_metric("grad_variance", var, step=t)
                    mlflow.log_metric("grad_variance_exact", exact, step=t)
                    mlflow.log_metric("grad_snr", g @ g / var, step=t)
                if t == T:
                    break
                z = np.random.randn(2) + theta
                theta = theta - alpha * (z - theta) * np.linalg.norm(z - x) ** 2

    sparse = set(log_steps(T, cfg.log_points).tolist())
    nb = min(timeit.repeat(lambda: notebook(sparse), number=1, repeat=2))
    suite = min(timeit.repeat(lambda: execute(cfg), number=1, repeat=5))
    rows = [{"points": f"{len(sparse)} / {len(sparse)}", "notebook_s": nb, "suite_s": suite, "ratio": nb / suite}]
    if every_step:
        nb_dense = min(timeit.repeat(lambda: notebook(set(range(T + 1))), number=1, repeat=1))
        suite_dense = min(timeit.repeat(lambda: execute(dense), number=1, repeat=3))
        rows.append({"points": f"{T + 1} / {T + 1}", "notebook_s": nb_dense, "suite_s": suite_dense,
                     "ratio": nb_dense / suite_dense})
        rows.append({"points": f"{T + 1} / {len(sparse)}", "notebook_s": nb_dense, "suite_s": suite,
                     "ratio": nb_dense / suite})
    for row in rows:
        row["target"] = ">= 50"
    return rows


def estimator_cost() -> list[dict]:
    import estimators
    from problems.quadratic import Quadratic

    rows = []
    for d in (2, 30):
        problem = Quadratic(dim=d, distance=10.0)
        params = estimators.GaussianParams(np.zeros(d), 1.0)
        rng = np.random.default_rng(0)
        draw = min(timeit.repeat(lambda: rng.standard_normal((10_000, d)), number=20, repeat=7)) / 20
        for est in (estimators.score_function, estimators.reparameterization):
            t = min(timeit.repeat(lambda: est(problem, problem.family, params, rng, 10_000), number=20,
                                  repeat=7)) / 20
            rows.append({"estimator": est.__name__, "d": d, "estimate_us": t * 1e6, "normals_us": draw * 1e6,
                         "ratio": t / draw, "target": "<= 2"})
    return rows


def parallel(tmp: Path, grids: dict[str, list[str]]) -> list[dict]:
    """Basic launcher against joblib with 2 workers, for each named grid (overrides of the default one)."""
    rows = []
    for i, (name, grid) in enumerate(grids.items()):
        basic, _ = cli(["-m", *grid], tmp / f"basic{i}")
        par, _ = cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *grid], tmp / f"joblib{i}")
        runs = finished_jobs(tmp / f"joblib{i}")
        jobs = jobs_span(finished_jobs(tmp / f"basic{i}")) / jobs_span(runs)
        rows.append({"grid": name, "basic_s": basic, "joblib2_s": par, "speedup": basic / par,
                     "jobs_only": jobs, "runs_present": len(runs), "target": ">= 1.6"})
    return rows


def scaling(tmp: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        grid = ["hydra.sweeper.params=null", "steps=500", f"seed=range({n})"]
        wall, peak = cli(["-m", *grid], tmp / f"scale{n}")
        rows.append({"runs": n, "wall_s": wall, "per_run_ms": 1000 * wall / n, "peak_rss_mib": peak})
    return rows


def show(title: str, rows) -> None:
    rows = rows if isinstance(rows, list) else [rows]
    print(f"\n{title}")
    keys = list(rows[0])
    print("  " + "  ".join(f"{k:>14}" for k in keys))
    for row in rows:
        cells = [f"{v:>14.3g}" if isinstance(v, float) else f"{v!s:>14}" for v in row.values()]
        print("  " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="skip the every-step notebook run and the larger grids (scaling up to 100 runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        show("1. sweep overhead (default grid, 90 jobs)", sweep_overhead(tmp))
        show("2. notebook-style run vs the suite's run (points per curve: notebook / suite)",
             notebook_vs_suite(tmp, every_step=not args.quick))
        show("3. estimator cost vs its normals (N = 10^4)", estimator_cost())
        grids = {"default, 90 jobs": [], "20 seeds, 360": ["seed=range(20)"], "T=20000, 90": ["steps=20000"]}
        show("4. joblib, 2 workers, vs the basic launcher",
             parallel(tmp, {k: grids[k] for k in list(grids)[:1]} if args.quick else grids))
        show("5. scaling (steps=500)", scaling(tmp, [10, 100] if args.quick else [10, 100, 1000]))


if __name__ == "__main__":
    main()
