"""Tests against real services (PostgreSQL, an MLflow server on it, SLURM), started on 127.0.0.1.

``scripts/install-test-services`` installs the Debian packages; each service is started by
the test session on a data directory of its own and stopped at its end. Where a service
cannot run here the tests that need it are skipped with the reason, or fail with it when
``MCGRAD_REQUIRE_SERVICES=1`` (CI, where the services must run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_services(reason: str):
    """Skip the calling test (or fixture) with ``reason``; fail instead under MCGRAD_REQUIRE_SERVICES=1."""
    if os.environ.get("MCGRAD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def processes_in_group(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose process group is ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, the live (not zombie) ones only.

    PostgreSQL's children each start a session of their own, so a process group does not
    hold them; their parent does.
    """
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    tree = {pid} & parents.keys()
    grew = True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sorted(tree)
