"""Every notebook in examples/ runs top to bottom, in the venv's Python, against a temporary
store holding a small sweep: a notebook that an API change breaks fails here, not in a reader's hands."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from experiments.config import PROJECT_ROOT
from tests.examples.sweeps import small_sweep

NOTEBOOKS = sorted((PROJECT_ROOT / "examples").glob("*.ipynb"))
KERNEL = "mcgrad-bench-test"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A small sweep of the grid the notebooks draw (estimator × step size × seed), by the CLI."""
    return small_sweep(tmp_path_factory)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, sweep):
    """A kernel spec that starts this interpreter (the venv's), found through JUPYTER_PATH; the
    kernel's Jupyter and IPython state in the test's directory; the store in MLFLOW_TRACKING_URI."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mcgrad-bench (tests)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.uri)
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_there_are_notebooks_and_their_outputs_are_not_committed():
    assert {p.name for p in NOTEBOOKS} >= {"seed_notebook.ipynb", "load_a_sweep.ipynb"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(kernel_env)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.executable
    # The notebooks draw figures: each one shows at least one, not only text.
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert any("image/png" in out.get("data", {}) for out in outputs)
    assert not list(kernel_env.iterdir())  # nothing written where the notebook ran
