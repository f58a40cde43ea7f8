"""The report of a sweep that trains a model: a tiny ``experiment=binary_vae`` sweep (2 estimators ×
2 seeds, 20 steps, 4 latents) run from the CLI into a temporary store, then its report, built with
every warning raised as an error: the ELBO against step, wall time and evaluations, the training
table's numbers against the runs' logged values, and no section that needs an optimum."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from experiments.report import build_report, tables
from experiments.report.build import plan, read_report_sweep
from tests.conftest import CONF_DIR

STEPS = 20
GRID = ["-m", "experiment=binary_vae", "estimator=score_function,disarm", "seed=0,1", f"steps={STEPS}",
        "variance_samples=4", "log_points=5", "problem.latents=4", "problem.test_samples=5"]
PLAN = ["loss", "variance_along_trajectory", "training_vs_step", "training_vs_wall_time", "training_vs_evaluations"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("vae"))
    proc = store.run(*GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = read_report_sweep(store.uri, "mcgrad-bench")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="report", overrides=[f"tracking.uri={store.uri}", "log_to_mlflow=false",
                                                       f"output_dir={store.root / 'reports'}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index = build_report(cfg)
    return store, sweep, index


def test_a_training_sweep_gets_the_training_sections_and_none_that_needs_an_optimum(built):
    _, sweep, index = built
    assert tables.trains_a_model(sweep)
    assert plan(sweep) == PLAN
    folder = index.parent
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(PLAN)
    for name in PLAN:
        with Image.open(folder / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 100
    page = index.read_text()
    assert re.findall(r'<a href="([^"]+)\.png">', page) == PLAN
    # The ELBO curves are drawn by the training figures, not again among the problem's curves.
    assert not (folder / "problem_curves.png").exists()
    assert "The problem has no optimum (its runs logged no distance)" in page
    assert not {"trajectories.png", "convergence.png", "fair_comparison.csv"} & {p.name for p in folder.iterdir()}
    assert 'href="training.csv"' in page and "Training: ELBO and test ELBO against wall time" in page
    assert "wall_time_s" in page  # the caption says how steps are placed on the time axis


def test_the_training_table_holds_the_runs_logged_values(built):
    store, sweep, index = built
    table = pd.read_csv(index.parent / "training.csv")
    client = store.client()
    runs = sweep.runs
    assert sorted(table["estimator"]) == ["disarm", "score_function"]
    # What each estimator declares per datum for N = 2 samples: N f, and 2 f per antithetic pair.
    declared = {"score_function": 2.0, "disarm": 4.0}
    for row in table.itertuples():
        cell = runs[runs["estimator"] == row.estimator]
        assert row.runs == len(cell) == 2 and row.steps == STEPS
        assert row.evals_per_estimate == declared[row.estimator]
        assert row.evals_per_datum == STEPS * declared[row.estimator]
        logged = [client.get_run(rid).data.metrics for rid in cell["run_id"]]
        for key in ("wall_time_s", "wall_time_per_estimate_s", "evals_per_estimate"):
            assert getattr(row, key) == pytest.approx(np.median([m[key] for m in logged]), rel=1e-5)
        for key in ("elbo", "test_elbo"):
            finals = [{m.step: m.value for m in client.get_metric_history(rid, key)}[STEPS] for rid in cell["run_id"]]
            assert getattr(row, f"median_final_{key}") == pytest.approx(np.median(finals), rel=1e-5)


def test_the_training_axes_are_step_times_the_cost_of_a_step(built):
    _, sweep, _ = built
    band = tables.training_bands(sweep, "test_elbo")
    assert sorted(band["step"].unique()) == [0, 5, 10, 15, 20]
    for est, cell in band.groupby("estimator"):
        runs = sweep.runs[sweep.runs["estimator"] == est]
        per_step = np.median(runs["wall_time_s"] / STEPS)
        assert cell["wall_time"].to_numpy() == pytest.approx(cell["step"].to_numpy() * per_step)
        assert (cell["evaluations"] == cell["step"] * runs["evals_per_estimate"].iloc[0]).all()
