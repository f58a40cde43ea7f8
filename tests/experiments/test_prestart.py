"""Workers started ahead are the ones Hydra's joblib launcher then runs the jobs in."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from joblib import Parallel, delayed
from omegaconf import OmegaConf

from experiments.sweep.prestart import JoblibWorkers, launcher_arguments
from tests.conftest import CONF_DIR


def test_the_launcher_reuses_the_workers_started_ahead():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], return_hydra_config=True)
    joblib_cfg = {k: v for k, v in OmegaConf.to_container(cfg.hydra.launcher).items() if k != "_target_"}
    workers = JoblibWorkers(joblib_cfg)
    workers.start()
    workers.join()
    pool = loky_workers()
    assert workers.pids and workers.pids <= pool and len(pool) == 2
    # As the launcher calls joblib (hydra_joblib_launcher._core.launch), with its own copy.
    used = Parallel(**launcher_arguments(joblib_cfg))(delayed(os.getpid)() for _ in range(8))
    assert set(used) <= pool


def loky_workers() -> set[int]:
    """Pids of this process's loky workers (loky starts the whole pool at once)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"LokyProcess" in cmdline:
            pids.add(int(entry.name))
    return pids
