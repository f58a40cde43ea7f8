"""Session fixtures: a real PostgreSQL, an ``mlflow server`` on it, and a single-node SLURM
cluster, all on 127.0.0.1.

Started once per test session, on first use, and stopped at its end; teardown checks that
no process of theirs is left. Where PostgreSQL or its driver is missing the tests that use
them are skipped with the reason (or fail, under MCGRAD_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.services import process_tree, processes_in_group, require_services
from tests.services.postgres import Postgres, TrackingServer, Unavailable, bin_dir
from tests.services.slurm import SlurmCluster, missing
from tests.services.slurm import Unavailable as SlurmUnavailable


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL with an empty ``mlflow`` database; ``.uri`` is its SQLAlchemy URI."""
    try:
        bin_dir()
    except Unavailable as exc:
        require_services(str(exc))
    # Not under pytest's temporary directories: they are 0700 root's, out of the postgres user's reach.
    root = Path(tempfile.mkdtemp(prefix="mcgrad-bench-pg-"))
    pg = Postgres(root, durable=False)
    try:
        pg.start()
    except Unavailable as exc:
        with contextlib.suppress(Unavailable):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        require_services(f"PostgreSQL did not start: {exc}")
    postmaster = pg.pid()
    yield pg
    pg.stop()
    left = process_tree(postmaster) if postmaster else []
    shutil.rmtree(root, ignore_errors=True)
    assert not left, f"PostgreSQL processes left after stop: {left}"


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    """``mlflow server`` on the PostgreSQL store; ``.uri`` is ``http://127.0.0.1:PORT``."""
    if importlib.util.find_spec("psycopg") is None:
        require_services("the PostgreSQL driver is not installed: pip install 'mcgrad-bench[postgres]'")
    server = TrackingServer(postgres.uri, tmp_path_factory.mktemp("tracking-server"))
    server.start()
    yield server
    server.stop()
    left = processes_in_group(server.proc.pid)
    assert not left, f"mlflow server processes left after stop: {left}"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; ``SLURM_CONF`` points at it while it runs."""
    reason = missing()
    if reason:
        require_services(reason)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        cluster.stop()
        require_services(f"the SLURM cluster did not start: {exc}")
    yield cluster
    cluster.stop()  # raises if a process is left or a port still listens
