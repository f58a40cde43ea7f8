"""Without the private Hydra names shared composition relies on, sweeps and single runs still
work and log the same results, with one warning.

Run as ``python -m tests.experiments.test_private_names [overrides]``, this module is the CLI
with the names in ``HIDE_PRIVATE`` gone, as a later Hydra would have them: ``module`` (the
module cannot be imported) or ``module:name`` (the module lacks ``name``), comma-separated.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf

from experiments.sgd import TIMINGS
from experiments.sweep import composition
from tests.conftest import CONF_DIR, Store

MODULE = "tests.experiments.test_private_names"
WARNING = "Hydra no longer has"
GRID = ["-m", "hydra.sweeper.params=null", "seed=0,1", "problem.distance=1,10", "steps=20", "log_points=5"]
HIDDEN = {
    # What Hydra's main branch has done (commit feca2598c6).
    "overrides_dirname": "hydra._internal.config_loader_impl:get_overrides_dirname",
    "config_loader_module": "hydra._internal.config_loader_impl",
}


def hide(spec: str) -> None:
    """Make the names in ``spec`` (see the module's docstring) unreachable to the suite.

    Hydra's own modules are imported first and keep the real objects: they run as before.
    """
    import contextlib
    import importlib
    import sys
    import types

    with contextlib.suppress(ImportError):
        importlib.import_module("hydra._internal.hydra")  # imports config_loader_impl for Hydra's own use

    for item in filter(None, spec.split(",")):
        module, _, name = item.partition(":")
        if not name:
            sys.modules[module] = None  # import raises ModuleNotFoundError
            continue
        try:
            real = importlib.import_module(module)
        except ImportError:
            continue
        proxy = types.ModuleType(module)
        proxy.__dict__.update(real.__dict__)
        head, _, attribute = name.partition(".")
        if attribute:  # a class without one of its attributes
            setattr(proxy, head, type(head, (), {}))
        else:
            proxy.__dict__.pop(head, None)
        sys.modules[module] = proxy


def job_runs(store: Store) -> dict:
    """{config_hash: (params, {metric: [(step, value), ...]})} of every job run, all FINISHED."""
    runs = store.runs()
    jobs = runs[runs["tags.run_kind"] == "job"]
    assert (jobs["status"] == "FINISHED").all()
    client = store.client()
    out = {}
    for run_id, key in zip(jobs["run_id"], jobs["tags.config_hash"]):
        run = client.get_run(run_id)
        metrics = {
            name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
            for name in run.data.metrics
            if name not in TIMINGS  # measured, not computed
        }
        out[key] = (run.data.params, metrics)
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("shared"))
    proc = store.run(*GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert WARNING not in proc.stdout + proc.stderr
    return job_runs(store)


@pytest.mark.parametrize("case", list(HIDDEN))
def test_a_sweep_without_the_private_names_logs_the_same_results(shared, tmp_path, monkeypatch, case):
    monkeypatch.setenv("HIDE_PRIVATE", HIDDEN[case])
    store = Store(tmp_path)
    proc = store.run(*GRID, module=MODULE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count(WARNING) == 1, output[-3000:]
    assert "get_overrides_dirname" in output
    got = job_runs(store)
    assert len(got) == 4 and got.keys() == shared.keys()
    for key, (params, metrics) in shared.items():
        assert got[key][0] == params
        assert got[key][1] == metrics  # every logged value of every metric, exactly


def test_a_single_run_without_the_private_names_works(tmp_path, monkeypatch):
    monkeypatch.setenv("HIDE_PRIVATE", ",".join(HIDDEN.values()))
    store = Store(tmp_path)
    proc = store.run("steps=20", "log_points=5", module=MODULE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert WARNING not in proc.stdout + proc.stderr  # nothing in a single run needs them
    runs = store.runs()
    assert len(runs) == 1 and runs["status"].item() == "FINISHED"


@pytest.fixture
def hydra_context():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", overrides=["hydra.sweep.dir=/tmp/sweep"], run_mode=RunMode.MULTIRUN)
        yield HydraContext(config_loader=loader, callbacks=type("Callbacks", (), {})()), master


def test_hydra_composes_every_job_when_a_name_is_gone(hydra_context, monkeypatch, caplog):
    context, master = hydra_context
    monkeypatch.setattr(composition, "_private", lambda: (None, ("hydra._internal.gone",)))
    monkeypatch.setattr(composition, "_WARNED", False)
    with caplog.at_level(logging.WARNING, logger=composition.__name__):
        shared = composition.share_composition(context)
        assert shared.config_loader is context.config_loader  # not wrapped
        loader = composition.SharedCompositionLoader(context.config_loader)
        for seed in (1, 2):
            got = loader.load_sweep_config(master, [f"seed={seed}"])
            expected = context.config_loader.load_sweep_config(master, [f"seed={seed}"])
            assert OmegaConf.to_container(got) == OmegaConf.to_container(expected)
        assert not loader._bases  # nothing composed ahead
    (record,) = caplog.records  # one warning, naming what is gone and what it costs
    assert "hydra._internal.gone" in record.getMessage() and "callbacks" in record.getMessage()


def test_job_configs_are_kept_when_hydra_callbacks_cannot_be_added_to(monkeypatch, caplog):
    monkeypatch.setattr(composition, "_WARNED", False)
    with caplog.at_level(logging.WARNING, logger=composition.__name__):
        assert composition.release_job_configs(object()) is False
        assert composition.release_job_configs(object()) is False
    (record,) = caplog.records
    assert "object.callbacks" in record.getMessage()


@pytest.mark.parametrize("overrides", [
    [],
    ["seed=range(3)", "estimator=score_function,reparameterization", "step_size=1e-3"],
    ["seed=0,1", "problem.distance=1,10", "seed=5,6", "+extra=a,b"],  # a key twice keeps its first place
    ["hydra.job.chdir=true", "~learn_scale", "problem=quadratic,gaussian_expectation"],
])
def test_the_grid_is_the_basic_sweepers(overrides):
    basic = pytest.importorskip("hydra._internal.core_plugins.basic_sweeper")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.mcgrad_bench.tracked_sweeper import grid

    parsed = OverridesParser.create().parse_overrides(overrides)
    assert grid(parsed) == basic.BasicSweeper.split_arguments(parsed, None)[0]


class Client:
    """Answers ``get_metric_history`` run by run; ``store``, if any, as MLflow's private store."""

    def __init__(self, store=None):
        if store is not None:
            self._tracking_client = SimpleNamespace(store=store)

    def get_metric_history(self, run_id, key):
        return [SimpleNamespace(step=step, value=step + (run_id == "b")) for step in range(3)]


class BulkStore:
    def get_metric_history_bulk(self, run_ids, metric_key, max_results):
        client = Client()
        return [SimpleNamespace(run_id=r, step=m.step, value=m.value) for r in run_ids
                for m in client.get_metric_history(r, metric_key)]


class OldSignature:
    def get_metric_history_bulk(self, run_ids, metric_key):
        raise AssertionError("not called with these arguments")


class Stub:
    def get_metric_history_bulk(self, run_ids, metric_key, max_results):
        raise NotImplementedError


class NoRunIds:
    def get_metric_history_bulk(self, run_ids, metric_key, max_results):
        return [SimpleNamespace(step=0, value=0.0)]


@pytest.mark.parametrize("store", [None, object(), OldSignature(), Stub(), NoRunIds(), BulkStore()],
                         ids=["no store", "no method", "old signature", "stub", "other results", "bulk"])
def test_curves_are_read_run_by_run_when_the_private_store_does_not_answer(store):
    from experiments.report.data import histories

    expected = histories(Client(), ["b", "a"], "loss")
    assert list(expected["value"]) == [0.0, 1.0, 2.0, 1.0, 2.0, 3.0]
    assert histories(Client(store), ["b", "a"], "loss").equals(expected)


if __name__ == "__main__":
    import os
    import runpy

    hide(os.environ.get("HIDE_PRIVATE", ""))
    runpy.run_module("experiments.run", run_name="__main__", alter_sys=True)
