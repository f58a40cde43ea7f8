"""The report of small real sweeps in temporary stores: files, numbers, rebuilds, failures."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments.report import build_report, read_sweep
from experiments.report.data import ReportError

FIGURES = ["variance_vs_distance", "convergence", "outcomes", "fair_comparison", "variance_along_trajectory",
           "trajectories"]
GRID = ["estimator=score_function,reparameterization", "step_size=1e-3,1e-2", "problem.distance=1,10", "seed=0,1"]
# Few steps and probes: the run path is the real one, only shorter.
SMALL = ["steps=200", "variance_samples=50", "log_points=21"]


def report_cfg(compose_config, store, *overrides):
    return compose_config(f"tracking.uri={store.uri}", f"output_dir={store.root / 'reports'}", *overrides,
                          config_name="report")


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """16 jobs: both estimators × two step sizes × two distances × two seeds; then the report, by the CLI."""
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("report"))
    proc = store.run("-m", *SMALL, *GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = store.run(f"output_dir={store.root / 'reports'}", "animation_frames=12", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    return store, report


def test_the_cli_writes_every_file_and_prints_where(sweep):
    store, report = sweep
    runs = store.runs()
    sweep_id = runs.loc[runs["tags.run_kind"] == "sweep", "tags.sweep_id"].item()
    folder = store.root / "reports" / "mcgrad-bench" / sweep_id
    assert str(folder / "index.html") in report.stdout
    names = set(files(folder))
    assert {"index.html", "summary.csv", "fair_comparison.csv", "trajectories.gif"} <= names
    assert {f"{name}.png" for name in FIGURES} <= names
    page = (folder / "index.html").read_text()
    git_commit = runs.loc[runs["tags.run_kind"] == "sweep", "tags.git_commit"].item()
    rebuild = f"python -m experiments.report sweep_id={sweep_id}"
    for text in [sweep_id, git_commit, "All 16 jobs logged a complete run", "seaborn 0.13", rebuild,
                 "data:image/png;base64,", "data:image/gif;base64,"]:
        assert text in page, text
    gif = Image.open(folder / "trajectories.gif")
    assert gif.n_frames == 12 and "loop" not in gif.info  # no loop extension: it plays once and stops
    for name in FIGURES:
        png = Image.open(folder / f"{name}.png")
        assert png.size[0] > 300 and "Software" not in png.info
    parent = runs.loc[runs["tags.run_kind"] == "sweep", "run_id"].item()
    logged = {a.path for a in store.client().list_artifacts(parent, "report")}
    assert {"report/index.html", "report/summary.csv", "report/convergence.png"} <= logged


def test_summary_numbers_match_the_runs(sweep):
    """Every number of summary.csv, recomputed here from ``mlflow.search_runs``."""
    store, _ = sweep
    runs = store.runs()
    kids = runs[runs["tags.run_kind"] == "job"].copy()
    sweep_id = kids["tags.sweep_id"].iloc[0]
    table = pd.read_csv(store.root / "reports" / "mcgrad-bench" / sweep_id / "summary.csv")
    assert len(table) == 8 and list(table.columns[:3]) == ["estimator", "step_size", "problem.distance"]
    assert table.equals(table.sort_values(["estimator", "step_size", "problem.distance"]).reset_index(drop=True))
    kids["alpha"] = kids["params.step_size"].astype(float)
    kids["D"] = kids["params.problem.distance"].astype(float)
    kids["final"] = kids["metrics.final_dist"].where(kids["metrics.final_dist"].notna(), np.inf)
    expected = kids.groupby(["params.estimator.name", "alpha", "D"]).agg(
        runs=("run_id", "size"), diverged_fraction=("metrics.diverged", "mean"),
        median_final_dist=("final", "median"), median_steps_to_tol=("metrics.steps_to_tol", "median"),
        mean_grad_variance=("metrics.mean_grad_variance", "mean"))
    ref = expected.xs("reparameterization", level=0)["mean_grad_variance"]
    for row in table.itertuples(index=False):
        want = expected.loc[(row.estimator, row.step_size, row[2])]
        assert row.runs == want["runs"] == 2 and row.failed == 0
        for col in ["diverged_fraction", "median_final_dist", "median_steps_to_tol", "mean_grad_variance"]:
            assert getattr(row, col) == pytest.approx(want[col], rel=1e-5, abs=1e-12), col
        ratio = want["mean_grad_variance"] / ref.loc[(row.step_size, row[2])]
        assert row.variance_ratio_to_reparameterization == pytest.approx(ratio, rel=1e-5)


def test_the_curves_read_are_the_logged_ones(sweep):
    store, _ = sweep
    data = read_sweep(store.uri, "mcgrad-bench")
    client = store.client()
    run_id = data.runs["run_id"].iloc[3]
    for key in ["dist_to_opt", "grad_variance"]:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        read = data.curves[(data.curves["run_id"] == run_id) & (data.curves["key"] == key)]
        assert list(zip(read["step"], read["value"])) == logged


def test_a_rebuild_is_byte_identical(sweep, compose_config):
    """The CLI's report, then one built again in this process: same bytes, figures included."""
    store, _ = sweep
    cfg = report_cfg(compose_config, store, "animation_frames=12", "log_to_mlflow=false")
    first = files(build_report(cfg).parent)
    again = build_report(cfg).parent
    assert files(again) == first
    for name in FIGURES:  # and so the same pixels
        a = np.asarray(Image.open(io.BytesIO(first[f"{name}.png"])))
        assert np.array_equal(a, np.asarray(Image.open(again / f"{name}.png")))


def test_a_sweep_with_failed_and_missing_runs_still_reports(store, compose_config):
    """Jobs at D = 10 really fail (the test problem raises there when its gradient is used), and
    one finished run is then deleted from the store to stand for a job that logged no run."""
    proc = store.run("-m", "hydra.sweeper.params=null", "problem._target_=tests.experiments.failing.FailsAtDistanceTen",
                     "steps=50", "variance_samples=10", "log_points=6", "estimator=score_function,reparameterization",
                     "step_size=1e-2", "problem.distance=1,10", "seed=0,1")
    assert proc.returncode != 0  # the sweep reports its failed jobs
    runs = store.runs()
    kids = runs[runs["tags.run_kind"] == "job"]
    failed = kids[kids["status"] == "FAILED"]
    assert len(failed) >= 1 and (failed["params.problem.distance"] == "10").all()
    gone = kids[(kids["status"] == "FINISHED") & (kids["params.problem.distance"] == "1")].sort_values("run_id").iloc[0]
    store.client().delete_run(gone["run_id"])

    index = build_report(report_cfg(compose_config, store, "animation_frames=4"))
    page = index.read_text()
    complete = 8 - len(failed) - 1
    assert f"{complete} of 8 jobs logged a complete run" in page
    assert f"{len(failed)} run(s) did not complete" in page and "1 job(s) logged no run at all" in page
    for name in failed["tags.mlflow.runName"]:
        assert name in page
    assert "parent run is FAILED" in page
    table = pd.read_csv(index.parent / "summary.csv")
    assert table["runs"].sum() == complete and table["failed"].sum() == len(failed)
    for est, n in failed["params.estimator.name"].value_counts().items():
        cell = table[(table["estimator"] == est) & (table["problem.distance"] == 10)]
        assert cell["failed"].item() == n and cell["runs"].item() == 2 - n
        if n == 2:  # no run left in the cell: no statistic, not a zero
            assert np.isnan(cell["median_final_dist"].item())
    # Complete runs at D = 1 only: no single-point figure against D, and a line saying why.
    assert {f"{name}.png" for name in FIGURES if name != "variance_vs_distance"} <= set(files(index.parent))
    assert "variance_vs_distance.png" not in set(files(index.parent))
    assert "Complete runs at one distance D only: no curve against D." in page


def test_a_bad_sweep_id_is_refused_in_one_line(sweep):
    store, _ = sweep
    proc = store.run("sweep_id=no-such-sweep", f"output_dir={store.root / 'bad'}", module="experiments.report")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcgrad-bench: error: invalid sweep_id='no-such-sweep'"), proc.stderr
    assert "allowed: null (the latest sweep)" in lines[0]
    assert not (store.root / "bad" / "mcgrad-bench").exists()


def test_no_store_or_no_sweep_is_refused_without_creating_anything(tmp_path, compose_config, sweep):
    store, _ = sweep
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ReportError, match=r"invalid tracking\.uri=.*no tracking store"):
        build_report(compose_config(f"tracking.uri={missing}", f"output_dir={tmp_path}", config_name="report"))
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(ReportError, match=r"invalid tracking\.uri='file:.*MLflow refuses the file store by design"):
        build_report(compose_config(f"tracking.uri=file:{tmp_path / 'mlruns'}", f"output_dir={tmp_path}",
                                    config_name="report"))
    assert not (tmp_path / "mlruns").exists()
    with pytest.raises(ReportError, match=r"invalid tracking\.experiment='empty'.*allowed: one of"):
        build_report(report_cfg(compose_config, store, "tracking.experiment=empty"))
    store.client().create_experiment("holds-no-sweep")
    with pytest.raises(ReportError, match=r"invalid tracking\.experiment='holds-no-sweep': it holds no sweep"):
        build_report(report_cfg(compose_config, store, "tracking.experiment=holds-no-sweep"))


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A shrunk variance-against-k sweep and a shrunk logistic-regression sweep, run side by side
    (separate stores) to halve the wait."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import Store

    grids = {
        "variance_vs_k": ["experiment=variance_vs_k", "variance_samples=2000", "problem.k=0.5,2.0", "_point_=k1",
                          "problem.f=cos,exp", "estimator=score_function,reparameterization"],
        "logreg": ["experiment=logreg", "steps=20", "estimator=reparameterization", "seed=0,1",
                   "variance_samples=5", "log_points=5"],
    }
    stores = {name: Store(tmp_path_factory.mktemp(name)) for name in grids}
    with ThreadPoolExecutor(2) as pool:
        procs = {name: pool.submit(stores[name].run, "-m", *grid) for name, grid in grids.items()}
    for proc in procs.values():
        assert proc.result().returncode == 0, proc.result().stderr[-3000:]
    return stores


def test_a_variance_vs_k_sweep_draws_the_logged_variances_against_k(studies, compose_config):
    from experiments.report import tables

    store = studies["variance_vs_k"]
    index = build_report(report_cfg(compose_config, store, "log_to_mlflow=false"))
    page = index.read_text()
    assert (index.parent / "variance_vs_k.png").is_file() and 'href="variance_vs_k.png"' in page
    assert "Gradient variance at θ₀ against k" in page and "convergence" not in page
    assert Image.open(index.parent / "variance_vs_k.png").size[0] > 300
    data = tables.variance_vs_k(read_sweep(store.uri, "mcgrad-bench"))
    assert pd.read_csv(index.parent / "variance_vs_k.csv").shape == data.shape == (16, 8)
    client = store.client()
    kids = store.runs()
    kids = kids[kids["tags.run_kind"] == "job"]
    point = data.set_index(["problem.f", "block", "estimator", "problem.k"])
    for _, run in kids.iterrows():  # one seed: each plotted number is one run's logged value
        for block in ("mean", "scale"):
            cell = (run["params.problem.f"], block, run["params.estimator.name"], float(run["params.problem.k"]))
            at0 = {key: next(m.value for m in client.get_metric_history(run.run_id, f"{key}/{block}") if m.step == 0)
                   for key in ("grad_variance", "grad_variance_se", "grad_variance_exact")}
            row = point.loc[cell]
            assert row["seeds"] == 1
            assert row["value"] == at0["grad_variance"] and row["se"] == at0["grad_variance_se"]
            assert row["exact"] == at0["grad_variance_exact"]


def test_a_logreg_sweep_draws_elbo_and_test_accuracy_from_the_runs(studies, compose_config):
    from experiments.report import tables

    store = studies["logreg"]
    index = build_report(report_cfg(compose_config, store, "log_to_mlflow=false"))
    page = index.read_text()
    assert (index.parent / "problem_curves.png").is_file() and 'href="problem_curves.png"' in page
    assert "ELBO and test accuracy" in page and "variance_along_trajectory.png" in page
    data = read_sweep(store.uri, "mcgrad-bench")
    client = store.client()
    ids = sorted(data.runs["run_id"])
    assert len(ids) == 2
    for key in ("elbo", "test_accuracy"):
        logged = {rid: {m.step: m.value for m in client.get_metric_history(rid, key)} for rid in ids}
        band = tables.bands(data, key, far_after_stop=False)
        assert band["step"].tolist() == [0, 5, 10, 15, 20] == sorted(logged[ids[0]])
        for row in band.itertuples():
            values = [logged[rid][row.step] for rid in ids]
            assert row.median == pytest.approx(np.median(values))
            assert (row.q25, row.q75) == pytest.approx(tuple(np.quantile(values, [0.25, 0.75])))


def test_a_logreg_sweep_has_its_loss_and_no_distance_sections(studies, compose_config):
    """No optimum: the loss and the problem's declared curves instead of anything measured against x."""
    store = studies["logreg"]
    index = build_report(report_cfg(compose_config, store, "log_to_mlflow=false"))
    page = index.read_text()
    names = set(files(index.parent))
    assert {"loss.png", "variance_along_trajectory.png", "problem_curves.png", "summary.csv"} <= names
    assert not names & {f"{name}.png" for name in FIGURES if name != "variance_along_trajectory"}
    assert "fair_comparison.csv" not in names
    assert "Curves of the problem: ELBO and test accuracy" in page
    assert "The problem has no optimum (its runs logged no distance)" in page
    table = pd.read_csv(index.parent / "summary.csv")
    assert not [c for c in table.columns if "dist" in c or "tol" in c]
    assert {"median_final_loss", "mean_grad_variance", "median_grad_variance"} <= set(table.columns)
    data = read_sweep(store.uri, "mcgrad-bench")
    assert data.problem_curves == ["elbo", "test_accuracy"]
