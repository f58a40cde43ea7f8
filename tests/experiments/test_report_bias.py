"""The report's θ₀ study over any one param of the problem, and the bias beside the variance:
small real sweeps of the discrete (Bernoulli) problem, built by the CLI from temporary stores."""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from experiments.config import PROJECT_ROOT
from experiments.report import build_report, figures, read_sweep, tables

STUDY = ["hydra.sweeper.params=null", "problem=bernoulli_toy", "steps=0", "problem.logit0=-2,0,2",
         "estimator=score_function,measure_valued", "samples=2", "variance_samples=2000", "seed=0"]
# Two step sizes: their runs repeat one measurement at θ₀, which must count once per seed.
STEPPED = ["hydra.sweeper.params=null", "problem=bernoulli_toy", "problem.logit0=-1,1",
           "estimator/baseline=none,leave_one_out", "samples=2", "seed=0,1", "steps=20", "log_points=3",
           "step_size=0.3,1.0", "variance_samples=500"]
# A biased estimator beside an unbiased one, where the suite has one (a relaxation).
BIASED = ["hydra.sweeper.params=null", "problem=bernoulli_toy", "problem.logit0=-1",
          "estimator=score_function,gumbel_softmax", "samples=2", "seed=0", "steps=10", "log_points=3",
          "step_size=0.3", "variance_samples=500"]
HAS_BIASED = (PROJECT_ROOT / "conf" / "estimator" / "gumbel_softmax.yaml").is_file()
CELL = ["estimator", "problem.logit0"]


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The sweeps (the biased one where the suite has a biased estimator), run side by side
    (separate stores), then each one's report by the CLI."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import Store

    grids = {"study": STUDY, "stepped": STEPPED} | ({"biased": BIASED} if HAS_BIASED else {})
    stores = {name: Store(tmp_path_factory.mktemp(name)) for name in grids}
    with ThreadPoolExecutor(len(grids)) as pool:
        procs = {name: pool.submit(stores[name].run, "-m", *grid) for name, grid in grids.items()}
    out = {}
    for name, proc in procs.items():
        assert proc.result().returncode == 0, proc.result().stderr[-3000:]
        store = stores[name]
        report = store.run(f"output_dir={store.root / 'reports'}", module="experiments.report")
        assert report.returncode == 0, report.stderr[-3000:]
        runs = store.runs()
        sweep_id = runs.loc[runs["tags.run_kind"] == "sweep", "tags.sweep_id"].item()
        folder = store.root / "reports" / "mcgrad-bench" / sweep_id
        assert str(folder / "index.html") in report.stdout
        out[name] = (store, folder)
    return out


def at_start(store, run_id: str, key: str) -> float:
    """The value of ``key`` the run logged at step 0 (NaN if it logged none)."""
    return next((m.value for m in store.client().get_metric_history(run_id, key) if m.step == 0), math.nan)


def jobs(store) -> pd.DataFrame:
    runs = store.runs()
    return runs[runs["tags.run_kind"] == "job"].reset_index(drop=True)


def test_a_study_over_logit0_draws_the_variance_against_logit0(reports):
    store, folder = reports["study"]
    names = set(files(folder))
    assert {"variance_vs_logit0.png", "variance_vs_logit0.csv"} <= names
    assert not [n for n in names if n.startswith(("variance_vs_k", "mse_split", "loss", "variance_along"))]
    page = (folder / "index.html").read_text()
    assert 'href="variance_vs_logit0.png"' in page and "Gradient variance at θ₀ against logit0" in page
    table = pd.read_csv(folder / "variance_vs_logit0.csv")
    assert list(table.columns) == ["block", "estimator", "problem.logit0", "seeds", "value", "se", "exact"]
    assert len(table) == 6 and (table["block"] == "total").all() and (table["seeds"] == 1).all()
    point = table.set_index(CELL)
    exact_seen = set()
    for _, run in jobs(store).iterrows():  # one seed: each number is one run's logged value
        row = point.loc[(run["params.estimator.name"], float(run["params.problem.logit0"]))]
        assert row["value"] == pytest.approx(at_start(store, run.run_id, "grad_variance"), rel=1e-5, abs=1e-30)
        assert row["se"] == pytest.approx(at_start(store, run.run_id, "grad_variance_se"), rel=1e-5, abs=1e-30)
        # The closed form where the run logged one (the problem derives it per estimator), else NaN.
        exact = at_start(store, run.run_id, "grad_variance_exact")
        assert row["exact"] == pytest.approx(exact, rel=1e-5, nan_ok=True)
        exact_seen.add(bool(np.isfinite(exact)))
    assert True in exact_seen  # the plain score function's is known


def test_the_study_draws_the_bias_beside_the_variance(reports):
    store, folder = reports["study"]
    assert {"bias_vs_logit0.png", "bias_vs_logit0.csv"} <= set(files(folder))
    page = (folder / "index.html").read_text()
    assert 'href="bias_vs_logit0.png"' in page and "Bias of the gradient at θ₀ against logit0" in page
    assert "should sit at 0 within a few of their standard errors" in page
    table = pd.read_csv(folder / "bias_vs_logit0.csv")
    assert list(table.columns) == ["estimator", "problem.logit0", "seeds", "value", "se", "exact"]
    assert len(table) == 6 and (table["exact"] == 0).all()  # both estimators are unbiased
    point = table.set_index(CELL)
    for _, run in jobs(store).iterrows():
        row = point.loc[(run["params.estimator.name"], float(run["params.problem.logit0"]))]
        assert row["value"] == pytest.approx(at_start(store, run.run_id, "grad_bias_sq"), rel=1e-5, abs=1e-30)
        assert row["se"] == pytest.approx(at_start(store, run.run_id, "grad_bias_sq_se"), rel=1e-5, abs=1e-30)
        assert row["exact"] == at_start(store, run.run_id, "grad_bias_sq_exact") == 0


def test_the_study_axes_take_negative_logits_and_a_zero_variance(reports):
    """Linear axes where a log one would drop points: logits below 0, the measure-valued
    estimator's variance of 0 (its Bernoulli estimate is deterministic) and signed bias²."""
    store, _ = reports["study"]
    sweep = read_sweep(store.uri, "mcgrad-bench")
    param, facets = tables.study_columns(sweep)
    assert (param, facets) == ("problem.logit0", [])
    variance, bias = tables.variance_vs_param(sweep), tables.bias_vs_param(sweep)
    colors = figures.palette(sorted(sweep.runs["estimator"].unique()))
    for fig in (figures.variance_vs_param(variance, colors, "", param, facets),
                figures.bias_vs_param(bias, colors, "", param, facets)):
        (ax,) = fig.axes
        assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "linear")
        assert ax.get_xlabel() == "problem.logit0"
        plt.close(fig)


def test_a_stepped_sweep_splits_the_mse_at_theta0_into_bias_and_variance(reports):
    store, folder = reports["stepped"]
    names = set(files(folder))
    page = (folder / "index.html").read_text()
    # One figure for the sweep, a panel per start φ₀ (a factor beyond the primary ones).
    assert "mse_split.png" in names and 'href="mse_split.png"' in page
    assert not [n for n in names if n.startswith(("variance_vs_", "bias_vs_"))]
    headings = re.findall(r"<h2>\d+\. ([^<(]+)", page)
    assert headings.count("Mean squared error at θ₀: bias² and variance") == 1
    table = pd.read_csv(folder / "mse_split.csv")
    assert list(table.columns) == [*CELL, "seeds", "bias_sq", "bias_sq_se", "bias_sq_exact", "variance",
                                   "variance_se", "mse"]
    assert len(table) == 4 and (table["seeds"] == 2).all() and (table["bias_sq_exact"] == 0).all()
    kids = jobs(store)
    keys = ["grad_bias_sq", "grad_bias_sq_se", "grad_variance", "grad_variance_se", "grad_mse"]
    logged = pd.DataFrame([{"baseline": run["params.estimator.baseline.name"],
                            "logit0": float(run["params.problem.logit0"]), "seed": run["params.seed"],
                            **{k: at_start(store, run.run_id, k) for k in keys}} for _, run in kids.iterrows()])
    # θ₀ and the probe's draws at step 0 do not depend on the step size: both runs of a seed agree.
    assert len(logged) == 16 and (logged.groupby(["baseline", "logit0", "seed"])[keys].nunique() == 1).all().all()
    once = logged.drop_duplicates(["baseline", "logit0", "seed"])
    for row in table.itertuples(index=False):
        baseline = row.estimator.split("baseline=")[1].rstrip(")")  # "score_function (baseline=…)"
        cell = once[(once["baseline"] == baseline) & (once["logit0"] == row[1])]
        assert len(cell) == 2
        assert row.bias_sq == pytest.approx(cell["grad_bias_sq"].mean(), rel=1e-5, abs=1e-12)
        assert row.variance == pytest.approx(cell["grad_variance"].mean(), rel=1e-5)
        assert row.bias_sq_se == pytest.approx(math.sqrt((cell["grad_bias_sq_se"] ** 2).sum()) / 2, rel=1e-5)
        assert row.variance_se == pytest.approx(math.sqrt((cell["grad_variance_se"] ** 2).sum()) / 2, rel=1e-5)
        # bias² + variance is the probe's mean squared error: the same estimates, split.
        assert row.mse == pytest.approx(cell["grad_mse"].mean(), rel=1e-5)


def test_the_curves_against_step_hold_no_bias(reports):
    """The bias is read at step 0 only, beside the curves, not among them."""
    store, _ = reports["stepped"]
    sweep = read_sweep(store.uri, "mcgrad-bench")
    assert set(sweep.curves["key"]) == {"loss", "grad_variance", "grad_variance_exact"}
    assert (sweep.start["step"] == 0).all()
    assert {"grad_bias_sq", "grad_bias_sq_se", "grad_bias_sq_exact"} <= set(sweep.start["key"])
    assert sweep.start["run_id"].nunique() == 8  # one run per seed and cell of the 16


@pytest.mark.skipif(not HAS_BIASED, reason="no biased estimator in this tree")
def test_a_biased_estimator_gets_its_bias_along_the_trajectory(reports):
    """Its bias moves with θ_t, so the bias is read and drawn against step too; the split
    at θ₀ marks its exact bias², and the unbiased estimator's 0."""
    store, folder = reports["biased"]
    names = set(files(folder))
    assert {"bias_along_trajectory.png", "mse_split.png", "mse_split.csv"} <= names
    sweep = read_sweep(store.uri, "mcgrad-bench")
    assert {"grad_bias_sq", "grad_bias_sq_exact"} <= set(sweep.curves["key"])
    band = tables.bands(sweep, "grad_bias_sq", far_after_stop=False)
    assert band["step"].drop_duplicates().tolist() == [0, 5, 10]
    for row in band.itertuples(index=False):  # one seed: the median is that run's logged value
        run_id = sweep.runs.loc[sweep.runs["estimator"] == row.estimator, "run_id"].item()
        logged = {m.step: m.value for m in store.client().get_metric_history(run_id, "grad_bias_sq")}
        assert row.median == pytest.approx(logged[row.step])
    split = pd.read_csv(folder / "mse_split.csv").set_index("estimator")
    assert split.loc["score_function", "bias_sq_exact"] == 0 and split.loc["gumbel_softmax", "bias_sq_exact"] > 0


@pytest.mark.parametrize("name", ["study", "stepped", "biased"])
def test_a_rebuild_is_byte_identical(reports, compose_config, name):
    """The CLI's report, then one built again in this process over it: same bytes."""
    if name not in reports:
        pytest.skip("no biased estimator in this tree")
    store, folder = reports[name]
    first = files(folder)
    cfg = compose_config(f"tracking.uri={store.uri}", f"output_dir={store.root / 'reports'}", "log_to_mlflow=false",
                         config_name="report")
    assert build_report(cfg) == folder / "index.html"
    assert files(folder) == first
