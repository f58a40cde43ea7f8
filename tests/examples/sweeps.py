"""One small CLI sweep per test session, shared by the notebooks' tests and the API's
(tests/experiments/test_api.py): a sweep costs seconds per job, and both read the same grid."""

from __future__ import annotations

import pytest

from tests.conftest import Store

# Few steps and probes: the run path is the real one, only shorter.
SMALL = ["steps=60", "variance_samples=20", "log_points=11"]
GRID = ["estimator=score_function,reparameterization", "step_size=1e-4,1e-2", "seed=0,1"]
_SWEEPS: dict[int, Store] = {}


def small_sweep(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store holding one sweep of :data:`GRID` (8 jobs), made on first call in the session."""
    key = id(tmp_path_factory)
    if key not in _SWEEPS:
        store = Store(tmp_path_factory.mktemp("small_sweep"))
        proc = store.run("-m", *SMALL, *GRID)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _SWEEPS[key] = store
    return _SWEEPS[key]
