"""The public API (experiments.load_sweep, experiments.run_config) against the CLI's own runs in
temporary stores: the same numbers, the same refusals."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import load_sweep, run_config
from experiments.config import PROJECT_ROOT, ConfigError
from experiments.report import read_sweep
from experiments.report.data import ReportError
from experiments.sgd import TIMINGS

from tests.examples.sweeps import SMALL, small_sweep

# The score function at the seed's step size: noisy, so any change of random stream shows.
ONE = ["estimator=score_function", "step_size=1e-4", "seed=3", *SMALL]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A CLI sweep of 8 jobs (shared with the notebooks' tests) and a CLI single run in a store
    of its own, run side by side."""
    from tests.conftest import Store

    single = Store(tmp_path_factory.mktemp("single"))
    with ThreadPoolExecutor(2) as pool:
        sweep = pool.submit(small_sweep, tmp_path_factory)
        proc = pool.submit(single.run, *ONE).result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep.result(), single


def test_import_experiments_is_light_and_the_report_package_leaves_matplotlib_alone():
    """A notebook that reads a sweep keeps its own matplotlib backend: only drawing picks Agg."""
    code = (
        "import sys, experiments, experiments.report\n"
        "assert not {'mlflow', 'pandas', 'matplotlib'} & set(sys.modules), sorted(sys.modules)\n"
        "from experiments import load_sweep, run_config\n"
        "from experiments.report import read_sweep, ReportError\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_load_sweep_is_one_typed_row_per_job_run(stores):
    sweep, _ = stores
    raw = sweep.runs()
    jobs = raw[raw["tags.run_kind"] == "job"].set_index("run_id")
    runs = load_sweep(tracking_uri=sweep.uri)
    assert sorted(runs["run_id"]) == sorted(jobs.index)
    assert runs.attrs["sweep_id"] == jobs["tags.sweep_id"].iloc[0]
    for key in ("step_size", "seed", "steps", "problem.distance", "final_dist", "steps_to_tol"):
        assert pd.api.types.is_numeric_dtype(runs[key]), key
    assert runs["learn_scale"].dtype == bool and not runs["learn_scale"].any()
    assert set(runs["step_size"]) == {1e-4, 1e-2} and set(runs["seed"]) == {0, 1}
    assert (runs["status"] == "FINISHED").all() and runs["complete"].all()
    for _, row in runs.iterrows():
        logged = jobs.loc[row["run_id"]]
        assert row["estimator"] == logged["tags.estimator"] and row["problem"] == logged["tags.problem"]
        assert row["config_hash"] == logged["tags.config_hash"] and row["family"] == logged["tags.family"]
        for key in ("final_dist", "steps_to_tol", "diverged", "mean_grad_variance"):
            assert row[key] == logged[f"metrics.{key}"], key
    # The latest sweep by default, the same one by its id; and the report reads the same rows.
    by_id = load_sweep(runs.attrs["sweep_id"], tracking_uri=sweep.uri)
    pd.testing.assert_frame_equal(by_id, runs)
    report = read_sweep(sweep.uri, "mcgrad-bench")
    mine = runs[list(report.runs.columns)].copy()
    flags = [c for c in mine if mine[c].dtype == bool and report.runs[c].dtype != bool]  # params True/False
    assert flags == ["learn_scale"]
    mine[flags] = mine[flags].astype(str).astype(report.runs[flags].dtypes.iloc[0])
    pd.testing.assert_frame_equal(mine, report.runs)


def test_load_sweep_reads_the_logged_histories(stores):
    sweep, _ = stores
    runs, curves = load_sweep(tracking_uri=sweep.uri, curves=("grad_variance", "dist_to_opt"))
    assert list(curves.columns) == ["run_id", "step", "metric", "value"]
    assert set(curves["metric"]) == {"grad_variance", "dist_to_opt"}
    client = sweep.client()
    for run_id in runs["run_id"]:
        for key in ("grad_variance", "dist_to_opt"):
            logged = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            read = curves[(curves["run_id"] == run_id) & (curves["metric"] == key)].sort_values("step")
            assert list(zip(read["step"], read["value"])) == logged and len(logged) >= 2


def test_load_sweep_uses_the_default_store(stores, monkeypatch):
    sweep, _ = stores
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.uri)
    assert load_sweep().attrs["tracking_uri"] == sweep.uri


def test_load_sweep_refuses_what_is_not_there_in_one_line(stores, tmp_path):
    sweep, _ = stores
    with pytest.raises(ReportError, match=r"^invalid sweep_id='no-such-sweep': .*allowed: null") as err:
        load_sweep("no-such-sweep", tracking_uri=sweep.uri)
    assert "\n" not in str(err.value)
    with pytest.raises(ReportError, match=r"^invalid tracking\.experiment='nope'"):
        load_sweep(experiment="nope", tracking_uri=sweep.uri)
    with pytest.raises(ReportError, match=r"^invalid tracking\.uri=.*no tracking store"):
        load_sweep(tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def _logged(client, run_id: str, key: str) -> np.ndarray:
    return np.array([m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)])


def test_run_config_computes_what_the_cli_logs(stores):
    _, single = stores
    client = single.client()
    (cli,) = single.runs()["run_id"]
    run = run_config(*ONE, f"tracking.uri={single.uri}")
    assert run.run_id is None
    metrics = client.get_run(cli).data.metrics
    assert {k: v for k, v in run.summary.items() if k not in TIMINGS} == {
        k: metrics[k] for k in run.summary if k not in TIMINGS
    }
    assert list(run.curves.index) == sorted(m.step for m in client.get_metric_history(cli, "loss"))
    for key, values in run.curves.items():
        if np.isfinite(values).any():  # a curve without a finite value is not logged
            np.testing.assert_array_equal(values.to_numpy(), _logged(client, cli, key), err_msg=key)
    with tempfile.TemporaryDirectory() as tmp:
        logged = np.load(client.download_artifacts(cli, "trajectory.npy", tmp))
        config = Path(client.download_artifacts(cli, "config.yaml", tmp)).read_text()
    assert np.array_equal(run.trajectory, logged) and run.trajectory.shape == (61, 2)
    from omegaconf import OmegaConf

    assert OmegaConf.to_container(run.config) == OmegaConf.to_container(OmegaConf.create(config))


def test_run_config_logs_one_run_as_the_cli_does(stores, tmp_path):
    from tests.conftest import Store

    _, single = stores
    mine = Store(tmp_path)
    run = run_config(*ONE, f"tracking.uri={mine.uri}", log=True)
    (cli,) = single.runs()["run_id"]
    a, b = single.client().get_run(cli), mine.client().get_run(run.run_id)
    assert b.info.status == "FINISHED" and len(mine.runs()) == 1
    assert a.data.params == b.data.params
    skip = {"sweep_id", "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit", "mlflow.user"}
    assert {k: v for k, v in a.data.tags.items() if k not in skip} == {
        k: v for k, v in b.data.tags.items() if k not in skip
    }
    assert {k: v for k, v in a.data.metrics.items() if k not in TIMINGS} == {
        k: v for k, v in b.data.metrics.items() if k not in TIMINGS
    }
    for key in run.curves:
        if np.isfinite(run.curves[key]).any():
            np.testing.assert_array_equal(_logged(mine.client(), run.run_id, key), _logged(single.client(), cli, key))


def _cli_refusal(store, *overrides: str) -> str:
    proc = store.run(*overrides)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcgrad-bench: error: "), proc.stderr
    return lines[0].removeprefix("mcgrad-bench: error: ")


# A refusal before Hydra starts (an unknown key) and one after it composed the config (a value).
REFUSED = {"key": ["stepsize=1e-3"], "value": ["steps=-1"]}


def test_run_config_refuses_as_the_cli_does_and_writes_nothing(tmp_path):
    from tests.conftest import Store

    cli_store, api_store = Store(tmp_path / "cli"), Store(tmp_path / "api")
    cli_store.root.mkdir()
    with ThreadPoolExecutor(2) as pool:
        said = dict(zip(REFUSED, pool.map(lambda o: _cli_refusal(cli_store, *o), REFUSED.values())))
    for kind, overrides in REFUSED.items():
        with pytest.raises(ConfigError) as err:
            run_config(*overrides, f"tracking.uri={api_store.uri}", log=True)
        assert str(err.value) == said[kind], kind
    assert not cli_store.db.exists() and not api_store.root.exists()


def test_run_config_refuses_options_and_combinations_in_one_line():
    with pytest.raises(ConfigError, match=r"^invalid estimator=no_such_estimator: allowed: one of .*score_function"):
        run_config("estimator=no_such_estimator")
    with pytest.raises(ConfigError, match=r"^invalid estimator=reparameterization with problem=bernoulli_toy: "):
        run_config("estimator=reparameterization", "problem=bernoulli_toy")


def test_run_config_refuses_a_sweep_in_one_line():
    for overrides in (["seed=0,1"], ["step_size=range(1,3)"], ["-m"]):
        with pytest.raises(ConfigError, match=r"^invalid .*allowed: .*python -m experiments\.run -m"):
            run_config(*overrides)


def test_the_exact_variance_along_the_trajectory_is_the_closed_form():
    """The founding quadratic, σ = 1, N = 2: the contract's one-sample trace over N, at every θ_t."""
    run = run_config("estimator=score_function", "step_size=1e-4", "samples=2", "steps=40", "variance_samples=2",
                     "log_points=2")
    x = np.array([100.0, 100.0])
    s = ((run.trajectory - x) ** 2).sum(axis=1)
    d = 2
    np.testing.assert_allclose(run.exact_variance(), (d * (s**2 + (2 * d + 8) * s + (d + 2) * (d + 4)) + 4 * s) / 2,
                               rtol=1e-12)
    assert run.exact_variance()[0] == run.curves.loc[0, "grad_variance_exact"]
    pathwise = run_config("estimator=reparameterization", "steps=5", "variance_samples=2", "log_points=2")
    assert (pathwise.exact_variance() == 4.0 * d).all()


def test_run_config_finds_configs_on_the_search_path(tmp_path):
    """An estimator option of one's own, outside the repository, as on the command line: here one
    that only renames the built-in score function, so its numbers are the built-in's."""
    (tmp_path / "estimator").mkdir()
    (tmp_path / "estimator" / "renamed_score_function.yaml").write_text(
        "defaults:\n  - score_function\n  - _self_\nname: renamed_score_function\n")
    common = ["step_size=1e-4", "steps=20", "variance_samples=5", "log_points=3"]
    mine = run_config(f"hydra.searchpath=[file://{tmp_path}]", "estimator=renamed_score_function", *common)
    builtin = run_config("estimator=score_function", *common)
    assert mine.config.estimator.name == "renamed_score_function"
    assert np.array_equal(mine.trajectory, builtin.trajectory)
    pd.testing.assert_frame_equal(mine.curves, builtin.curves)
