"""The analysis step: figures, tables and a reproducible report of one sweep, from MLflow alone.

``python -m experiments.report [overrides]`` (see ``conf/report.yaml``) calls
:func:`build_report`. Reading (:func:`read_sweep`) is kept apart from drawing
(:func:`write_report`) so each can be timed and tested alone.

The names below are imported on first use: drawing selects matplotlib's Agg backend, which a
notebook that only reads a sweep (:func:`experiments.load_sweep`) must not have forced on it.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "build_report": "build",
    "report_dir": "build",
    "write_report": "build",
    "ReportError": "data",
    "Sweep": "data",
    "read_sweep": "data",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
