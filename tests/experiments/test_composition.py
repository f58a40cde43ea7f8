"""A sweep's jobs composed with shared composition are Hydra's own configs, key for key."""

from __future__ import annotations

import pickle

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn
from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf

from experiments.sweep.composition import (
    ReleaseJobConfigs,
    SharedCompositionLoader,
    _Frozen,
    release_job_configs,
    share_composition,
)
from tests.conftest import CONF_DIR

# Hydra's registry of callbacks, private: the suite only needs the ``callbacks`` list of the
# one Hydra passes in, and these tests need the class to build one.
try:
    from hydra._internal.callbacks import Callbacks
except ImportError:
    Callbacks = None
needs_callbacks = pytest.mark.skipif(Callbacks is None, reason="Hydra has no hydra._internal.callbacks.Callbacks")

JOBS = [
    ["seed=3"],
    ["estimator=reparameterization", "step_size=0.01", "problem.distance=10", "seed=4"],
    ["step_size=0.01", "estimator=reparameterization", "seed=4"],  # a group after a value
    ["problem=gaussian_expectation", "problem.k=3", "problem.f=cos"],
    ["estimator/baseline=optimal", "estimator.baseline.pilot=8", "samples=4"],
    ["+extra_key=1", "~learn_scale", "seed=2", "seed=5"],  # add, delete, a key set twice
    ["++tracking.parent_run_id='abc'", "++tracking.sweep_id='s-1'", "tracking.uri=sqlite:///x.db"],
    ["hydra.job.chdir=true", "seed=1"],
    ["steps=${log_points}"],  # an interpolation stays unresolved, as Hydra leaves it
    ["estimator=score_function"],  # nothing to share: composed by Hydra alone
]


@pytest.fixture(scope="module")
def loaders():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra_loader = GlobalHydra.instance().config_loader()
        master = hydra_loader.load_configuration(
            "config", overrides=["hydra.sweep.dir=/tmp/sweep"], run_mode=RunMode.MULTIRUN
        )
        yield hydra_loader, SharedCompositionLoader(hydra_loader), master


@pytest.mark.parametrize("overrides", JOBS, ids=lambda o: " ".join(o))
def test_same_config_as_hydra(loaders, overrides):
    hydra_loader, shared, master = loaders
    expected = hydra_loader.load_sweep_config(master, list(overrides))
    for _ in range(2):  # the first call composes the shared part, the second reuses it
        got = shared.load_sweep_config(master, list(overrides))
        assert OmegaConf.to_container(got) == OmegaConf.to_container(expected)
        assert OmegaConf.is_struct(got) and not OmegaConf.is_readonly(got.hydra)
        assert got.hydra.overrides.task == expected.hydra.overrides.task
        assert got.hydra.job.override_dirname == expected.hydra.job.override_dirname


def test_jobs_do_not_share_state(loaders):
    _, shared, master = loaders
    first = shared.load_sweep_config(master, ["seed=1"])
    first.seed = 99
    assert shared.load_sweep_config(master, ["seed=2"]).seed == 2
    assert shared.load_sweep_config(master, ["seed=1"]).seed == 1


def test_a_pickled_loader_shares_its_cache_a_new_one_does_not(loaders):
    hydra_loader, shared, master = loaders
    shared.load_sweep_config(master, ["seed=1"])
    assert shared._bases
    clone = pickle.loads(pickle.dumps(shared))  # as joblib sends it with each job
    assert clone._bases is shared._bases
    assert OmegaConf.to_container(clone.load_sweep_config(master, ["seed=1"])) == OmegaConf.to_container(
        shared.load_sweep_config(master, ["seed=1"])
    )
    assert SharedCompositionLoader(hydra_loader)._bases == {}


@pytest.mark.parametrize("overrides", [["no_such_key=1"], ["problem.no_such_key=1"], ["~no_such_key"]])
def test_same_error_as_hydra(loaders, overrides):
    hydra_loader, shared, master = loaders
    with pytest.raises(ConfigCompositionException) as hydra_err:
        hydra_loader.load_sweep_config(master, overrides)
    with pytest.raises(ConfigCompositionException) as shared_err:
        shared.load_sweep_config(master, overrides)
    assert str(shared_err.value) == str(hydra_err.value)


class _Recorder(Callback):
    def __init__(self):
        self.seen = []

    def on_job_end(self, config, job_return, **kwargs):
        self.seen.append(job_return.cfg)


@needs_callbacks
def test_a_sweep_shares_composition_and_releases_job_configs(loaders, caplog):
    hydra_loader, _, _ = loaders
    callbacks = Callbacks()
    context = share_composition(HydraContext(config_loader=hydra_loader, callbacks=callbacks))
    assert isinstance(context.config_loader, SharedCompositionLoader) and not context.config_loader.missing
    assert context.callbacks is callbacks and isinstance(callbacks.callbacks[0], ReleaseJobConfigs)
    assert not caplog.records  # every private name it needs is there


@needs_callbacks
def test_job_configs_are_released_after_every_other_callback():
    recorder = _Recorder()
    callbacks = Callbacks()
    callbacks.callbacks.append(recorder)  # as Hydra registers a user's ``hydra.callbacks``
    assert release_job_configs(callbacks)
    assert release_job_configs(callbacks)  # a second sweep in the same process registers nothing
    assert sum(isinstance(c, ReleaseJobConfigs) for c in callbacks.callbacks) == 1
    ret = JobReturn(cfg=OmegaConf.create({"seed": 1}), hydra_cfg=OmegaConf.create({"hydra": {}}))
    callbacks.on_job_end(config=OmegaConf.create(), job_return=ret)
    assert recorder.seen == [{"seed": 1}]
    assert ret.cfg is None and ret.hydra_cfg is None
    assert pickle.loads(pickle.dumps(callbacks)).callbacks  # joblib sends them to its workers


def test_a_launcher_config_is_copied_by_pickle_after_a_plugin_scan(loaders):
    # Joblib's workers restore Hydra's state before each job, which scans the plugins
    # again: a launcher's structured config then refers to a class its module no longer holds.
    hydra_loader, _, _ = loaders
    master = hydra_loader.load_configuration(
        "config", overrides=["hydra/launcher=joblib", "hydra.sweep.dir=/tmp/sweep"], run_mode=RunMode.MULTIRUN
    )
    Singleton.set_state(Singleton.get_state())
    shared = SharedCompositionLoader(hydra_loader)
    got = shared.load_sweep_config(master, ["seed=3"])
    assert all(isinstance(base, _Frozen) for base in shared._bases.values())  # not deep-copied
    expected = hydra_loader.load_sweep_config(master, ["seed=3"])
    assert OmegaConf.to_container(got) == OmegaConf.to_container(expected)
    assert OmegaConf.get_type(got.hydra.launcher) is OmegaConf.get_type(expected.hydra.launcher)
