"""The report of a sweep of a problem without an optimum: a discrete (Bernoulli) problem,
swept over its start and the estimator's baseline, built by the CLI from a temporary store."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from experiments.report import build_report, read_sweep
from experiments.report import tables

GRID = ["hydra.sweeper.params=null", "problem=bernoulli_toy", "problem.logit0=-1,1",
        "estimator/baseline=none,optimal", "samples=2", "seed=0,1", "steps=50", "log_points=6",
        "step_size=0.3"]
NEED_DISTANCE = ["variance_vs_distance", "convergence", "outcomes", "fair_comparison", "trajectories"]
NONE, OPTIMAL = "score_function (baseline=none)", "score_function (baseline=optimal)"


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """8 jobs: two starts × two baselines × two seeds; then the report, by the CLI."""
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("bernoulli"))
    proc = store.run("-m", *GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = store.run(f"output_dir={store.root / 'reports'}", module="experiments.report")
    assert report.returncode == 0, report.stderr[-3000:]
    runs = store.runs()
    sweep_id = runs.loc[runs["tags.run_kind"] == "sweep", "tags.sweep_id"].item()
    folder = store.root / "reports" / "mcgrad-bench" / sweep_id
    assert str(folder / "index.html") in report.stdout
    return store, folder


def test_the_loss_and_the_variance_are_drawn_and_nothing_that_needs_a_distance(sweep):
    _, folder = sweep
    names = set(files(folder))
    page = (folder / "index.html").read_text()
    assert {"index.html", "summary.csv"} <= names and "fair_comparison.csv" not in names
    # One figure each for the sweep, the start φ₀ (a factor beyond the primary ones) in its panels.
    for name in ("loss", "variance_along_trajectory"):
        assert f"{name}.png" in names and f'href="{name}.png"' in page
    assert not [n for n in names if n.startswith(tuple(NEED_DISTANCE))]
    headings = re.findall(r"<h2>\d+\. ([^<(]+)", page)
    assert headings.count("Loss") == headings.count("Gradient variance along the trajectory") == 1
    for title in ("Convergence", "Outcomes", "A fair comparison", "Trajectories in the plane",
                  "Gradient variance at θ₀ against distance"):
        assert not any(h.startswith(title) for h in headings), title
    # One line says why the distance sections are absent.
    assert page.count("The problem has no optimum (its runs logged no distance)") == 1
    assert "fair_comparison.csv" not in page and "median_final_dist" not in page and "steps_to_tol" not in page


def test_the_summary_holds_the_loss_and_the_variance_not_a_distance(sweep):
    store, folder = sweep
    table = pd.read_csv(folder / "summary.csv")
    assert list(table.columns) == ["estimator", "step_size", "problem.logit0", "runs", "failed", "diverged_fraction",
                                   "median_final_loss", "mean_grad_variance", "median_grad_variance",
                                   "evals_per_estimate", "median_work_normalized_variance"]
    runs = store.runs()
    kids = runs[runs["tags.run_kind"] == "job"].copy()
    assert kids["tags.family"].eq("bernoulli").all() and "metrics.final_dist" not in kids
    kids["phi0"] = kids["params.problem.logit0"].astype(float)
    expected = kids.groupby(["params.estimator.baseline.name", "phi0"]).agg(
        final_loss=("metrics.final_loss", "median"), mean=("metrics.mean_grad_variance", "mean"),
        median=("metrics.mean_grad_variance", "median"), evals=("metrics.evals_per_estimate", "median"))
    assert len(table) == 4
    for row in table.itertuples(index=False):
        want = expected.loc[(row.estimator.split("baseline=")[1].rstrip(")"), row[2])]
        assert row.runs == 2 and row.failed == 0 and row.diverged_fraction == 0
        assert row.median_final_loss == pytest.approx(want["final_loss"], rel=1e-5)
        assert row.mean_grad_variance == pytest.approx(want["mean"], rel=1e-5)
        assert row.median_grad_variance == pytest.approx(want["median"], rel=1e-5)
        # N = 2 samples of the score function, plus the optimal baseline's pilot of 100 where it has one.
        assert row.evals_per_estimate == want["evals"] == (102 if "optimal" in row.estimator else 2)


def test_the_exact_variance_is_read_where_logged(sweep):
    """The closed form is the plain score function's: its runs log it, the optimal baseline's (none derived) do not."""
    store, _ = sweep
    data = read_sweep(store.uri, "mcgrad-bench")
    assert "problem.distance" not in data.factors and data.problem_curves == []
    assert set(data.curves["key"]) == {"loss", "grad_variance", "grad_variance_exact"}
    exact = tables.bands(data, "grad_variance_exact")
    assert set(exact["estimator"]) == {NONE}
    client = store.client()
    plain = data.runs[data.runs["estimator"] == NONE]
    for (phi0, step), group in exact.groupby(["problem.logit0", "step"]):
        ids = plain.loc[plain["problem.logit0"] == phi0, "run_id"]
        values = [next(m.value for m in client.get_metric_history(i, "grad_variance_exact") if m.step == step)
                  for i in ids]
        assert group["median"].item() == pytest.approx(np.median(values))
    assert not client.get_metric_history(data.runs.loc[data.runs["estimator"] == OPTIMAL, "run_id"].iloc[0],
                                         "grad_variance_exact")


def test_a_rebuild_is_byte_identical(sweep, compose_config):
    """The CLI's report, then one built again in this process over it: same bytes."""
    store, folder = sweep
    first = files(folder)
    cfg = compose_config(f"tracking.uri={store.uri}", f"output_dir={store.root / 'reports'}", "log_to_mlflow=false",
                         config_name="report")
    assert build_report(cfg) == folder / "index.html"
    assert files(folder) == first
