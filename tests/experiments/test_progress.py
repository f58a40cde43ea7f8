"""A sweep says where it is (one line per finished job), leaves its per-cell summary on its
parent run as an MLflow table, and ``python -m experiments.ui`` links to both."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from experiments.sweep.progress import Progress, reporting
from experiments.sweep.summary import COLUMNS, TABLE_FILE

LINE = re.compile(r"^\[sweep (\S+)\] (\d+)/(\d+) jobs done, (\d+) failed, (\d+:\d\d:\d\d) elapsed, "
                  r"(about \d+:\d\d:\d\d left|time left unknown yet)$")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three jobs, the one at distance 10 failing after validation; basic launcher."""
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("progress"))
    proc = store.run("-m", "hydra.sweeper.params=null", "problem._target_=tests.experiments.failing.FailsAtDistanceTen",
                     "problem.distance=1,10,100", "seed=0", "steps=20", "variance_samples=10", "log_points=3")
    assert proc.returncode != 0  # the failed job's error, as Hydra's basic sweeper reports it
    return store, proc, store.runs()


def test_one_line_per_finished_job(sweep):
    store, proc, runs = sweep
    lines = [LINE.match(line) for line in proc.stdout.splitlines() if line.startswith("[sweep ")]
    assert all(lines), proc.stdout
    sweep_id = runs.loc[runs["tags.run_kind"] == "sweep", "tags.sweep_id"].item()
    assert [m.group(1) for m in lines] == [sweep_id] * 3
    assert [(int(m.group(2)), int(m.group(3))) for m in lines] == [(1, 3), (2, 3), (3, 3)]
    failed = [int(m.group(4)) for m in lines]
    assert failed == sorted(failed) and failed[-1] == 1 and failed[0] <= 1
    assert lines[-1].group(6) == "about 0:00:00 left"
    assert not list((store.root / "multirun").glob(".progress-*"))  # the jobs' marks are tidied away


def test_the_parent_run_holds_the_summary_table(sweep):
    store, _, runs = sweep
    parent = runs[runs["tags.run_kind"] == "sweep"]
    run_id = parent["run_id"].item()
    assert json.loads(parent["tags.mlflow.loggedArtifacts"].item()) == [{"path": TABLE_FILE, "type": "table"}]
    path = Path(store.client().download_artifacts(run_id, TABLE_FILE, str(store.root)))
    table = json.loads(path.read_text())
    assert table["columns"] == COLUMNS and all("." not in c for c in table["columns"])
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    # The finished jobs only, one cell each (one seed): distances 1 and 100.
    kids = runs[(runs["tags.run_kind"] == "job") & (runs["status"] == "FINISHED")].set_index("params.problem.distance")
    assert [(r["estimator"], r["step_size"], r["distance"], r["runs"]) for r in rows] == [
        ("score_function", 1e-4, 1.0, 1), ("score_function", 1e-4, 100.0, 1)]
    for row in rows:  # pandas writes the JSON with 10 decimals
        kid = kids.loc[f"{row['distance']:g}"]
        assert row["median_final_dist"] == pytest.approx(kid["metrics.final_dist"], rel=1e-9, abs=1e-10)
        assert row["median_steps_to_tol"] == kid["metrics.steps_to_tol"]
        assert row["mean_grad_variance"] == pytest.approx(kid["metrics.mean_grad_variance"], rel=1e-9, abs=1e-10)
        assert row["diverged"] == kid["metrics.diverged"]


def test_ui_links_to_the_latest_sweep(sweep, capsys):
    from experiments.ui import main

    store, _, runs = sweep
    parent = runs[runs["tags.run_kind"] == "sweep"]
    main([f"tracking.uri={store.uri}", "--port", "5123"])
    out = capsys.readouterr().out.splitlines()
    exp = parent["experiment_id"].item()
    assert out[0].endswith(f"http://127.0.0.1:5123/#/experiments/{exp}/runs")
    assert out[1].endswith(f"http://127.0.0.1:5123/#/experiments/{exp}/runs/{parent['run_id'].item()}")


def test_ui_does_not_create_a_store(tmp_path, capsys):
    from experiments.ui import main

    main([f"tracking.uri=sqlite:///{tmp_path / 'none.db'}"])
    assert "No runs yet" in capsys.readouterr().out and not (tmp_path / "none.db").exists()


def test_counts_from_the_jobs_marks_and_from_returned_batches(tmp_path):
    """Each job gets one line, whether its mark or its batch's return is seen first; a job
    that died without leaving its mark is counted when its batch returns."""
    out = io.StringIO()
    path = tmp_path / ".progress-x"
    with Progress("x", 4, path, stream=out, interval=3600) as progress:
        with reporting(path):  # job 1 ends
            pass
        progress.poll()
        progress.update(1, 1)  # batch 1 (jobs 1, 2) returned: job 2 failed and left no mark
        with reporting(path):  # job 3
            pass
        progress.poll()
        with pytest.raises(RuntimeError), reporting(path):  # job 4 fails
            raise RuntimeError("a job fails")
        progress.update(2, 2)  # batch 2 returned
    lines = out.getvalue().splitlines()
    assert [LINE.match(line).group(2, 4) for line in lines] == [("1", "0"), ("2", "1"), ("3", "1"), ("4", "2")]
    assert not path.exists()
