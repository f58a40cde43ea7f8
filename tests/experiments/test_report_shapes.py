"""The report fits the sweep it reports: sweeps of several shapes, each run small and real into
a temporary store, get only the sections they have data for (checked by name, per shape), with
no warning raised while the report is built."""

from __future__ import annotations

import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from hydra import compose, initialize_config_dir

from experiments.report import build_report, figures, tables
from tests.conftest import CONF_DIR
from experiments.report.build import plan, read_report_sweep

TINY = ["steps=10", "variance_samples=16", "log_points=3"]
SHAPES = {
    # The founding grid: estimator × step size × distance.
    "founding": ["hydra.sweeper.params=null", *TINY, "estimator=score_function,reparameterization",
                 "step_size=1e-3,1e-2", "problem.distance=1,10", "seed=0"],
    # A study at θ₀ (steps = 0) over the dimension.
    "study": ["hydra.sweeper.params=null", "steps=0", "variance_samples=16", "problem.dim=1,2",
              "estimator=score_function,reparameterization", "seed=0"],
    # A sweep with steps over N and d: both beyond the primary factors.
    "samples_and_dim": ["hydra.sweeper.params=null", *TINY, "estimator=reparameterization", "samples=1,4",
                        "problem.dim=1,2", "step_size=1e-2", "seed=0"],
    # The reference study's preset, shrunk: per-function k lists, the exact and the pilot-estimated baseline.
    "preset": ["experiment=variance_vs_k", "variance_samples=16", "problem.f=square,exp", "_point_=k1,k7",
               "estimator=score_function_oracle_baseline,score_function_optimal_baseline"],
}
PLANS = {
    "founding": ["variance_vs_distance", "work_normalized_variance_vs_distance", "mse_split", "convergence",
                 "outcomes", "fair_comparison", "variance_along_trajectory", "trajectories"],
    "study": ["variance_vs_dim", "work_normalized_variance_vs_dim", "bias_vs_dim"],
    "samples_and_dim": ["variance_vs_samples", "mse_split", "convergence", "outcomes", "fair_comparison",
                        "variance_along_trajectory", "trajectories"],
    "preset": ["variance_vs_k", "work_normalized_variance_vs_k", "bias_vs_k"],
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each shape's sweep (two at a time, separate stores), then its report built in this
    process with every warning raised as an error."""
    from tests.conftest import Store

    stores = {name: Store(tmp_path_factory.mktemp(name)) for name in SHAPES}
    with ThreadPoolExecutor(2) as pool:
        procs = {name: pool.submit(stores[name].run, "-m", *grid) for name, grid in SHAPES.items()}
    out = {}
    for name, proc in procs.items():
        assert proc.result().returncode == 0, proc.result().stderr[-3000:]
        store = stores[name]
        sweep = read_report_sweep(store.uri, "mcgrad-bench")
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="report", overrides=[f"tracking.uri={store.uri}", "log_to_mlflow=false",
                                                           f"output_dir={store.root / 'reports'}", "animation_frames=3"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            index = build_report(cfg)
        out[name] = (sweep, index)
    return out


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_gets_only_the_sections_it_has_data_for(reports, shape):
    sweep, index = reports[shape]
    assert plan(sweep) == PLANS[shape]
    folder = index.parent
    pngs = sorted(p.stem for p in folder.glob("*.png"))
    assert pngs == sorted(PLANS[shape])
    page = index.read_text()
    # Every figure once, in the planned order; no note standing for a section without data.
    shown = re.findall(r'<a href="([^"]+)\.png">', page)
    assert shown == PLANS[shape]
    assert '<p class="warn">' not in page
    assert len(re.findall(r"<h2>\d+\. ", page)) == len(PLANS[shape])
    for name in PLANS[shape]:
        assert Image.open(folder / f"{name}.png").size[0] > 300


def test_a_study_at_theta0_has_no_section_against_step(reports):
    sweep, index = reports["study"]
    assert set(sweep.runs["steps"]) == {0}
    names = {p.name for p in index.parent.iterdir()}
    assert not names & {"convergence.png", "outcomes.png", "trajectories.gif", "fair_comparison.csv"}
    table = pd.read_csv(index.parent / "summary.csv")
    assert not {"median_final_dist", "median_steps_to_tol"} & set(table.columns)


def test_factors_beyond_the_primary_ones_are_facets_of_one_copy(reports):
    """N and d vary: one convergence figure, a panel column per (D, N, d), titled with them."""
    sweep, index = reports["samples_and_dim"]
    assert sweep.extras == ["problem.dim", "samples"]
    page = index.read_text()
    assert page.count('href="convergence.png"') == 1 and "Setting (" not in page
    data = pd.read_csv(index.parent / "variance_vs_samples.csv")
    assert sorted(data["samples"].unique()) == [1, 4] and set(data["problem.dim"]) == {1, 2}
    band = tables.bands(sweep, "dist_to_opt")
    fig = figures.convergence(band, tables.summary_table(sweep.runs, sweep.factors), pd.DataFrame(
        columns=[*sweep.factors, "tol"]), figures.palette(sorted(sweep.runs["estimator"].unique())), "",
        facets=sweep.extras)
    titles = sorted(ax.get_title() for ax in fig.axes)
    plt.close(fig)
    assert len(titles) == 4 and all(re.search(r"dim = \d, samples = \d$", t) for t in titles)


def test_variance_against_n_has_the_one_over_n_reference(reports):
    """The dotted reference of each estimator falls as 1/N from its value at the smallest N."""
    sweep, index = reports["samples_and_dim"]
    data = pd.read_csv(index.parent / "variance_vs_samples.csv")
    colors = figures.palette(sorted(data["estimator"].unique()))
    fig = figures.variance_vs_param(data, colors, "", "samples", ["problem.dim"])
    dotted = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert dotted
    for line in dotted:
        n, v = line.get_xdata(), line.get_ydata()
        assert v[-1] * n[-1] == pytest.approx(v[0] * n[0])
    assert {ax.get_xscale() for ax in fig.axes} == {"log"}
    plt.close(fig)


def test_the_preset_draws_each_function_over_its_own_k_on_the_right_axis(reports):
    """(x − k)² over negative k on a linear axis, exp(−k x²) on a log one; the oracle baseline's
    legend entry says it is exact, the pilot's that it is estimated; every panel keeps y ticks."""
    sweep, index = reports["preset"]
    data = tables.variance_vs_param(sweep)
    assert sorted(data.loc[data["problem.f"] == "square", "problem.k"].unique()) == [-3.0, 3.0]
    assert sorted(data.loc[data["problem.f"] == "exp", "problem.k"].unique()) == [0.1, 10.0]
    from experiments.report.build import ESTIMATOR_NOTES

    colors = figures.palette(sorted(data["estimator"].unique()))
    fig = figures.variance_vs_param(data, colors, "", "problem.k", ["problem.f"], notes=ESTIMATOR_NOTES,
                                    order={"problem.f": ["square", "exp"]})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4
    for ax in panels:
        square = "(x − k)²" in ax.get_title()
        assert ax.get_xscale() == ("linear" if square else "log")
        fig.canvas.draw()
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()], ax.get_title()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "score_function_oracle_baseline: exact optimal baseline (oracle)" in labels
    assert "score_function_optimal_baseline: optimal baseline estimated from a pilot" in labels
    plt.close(fig)
