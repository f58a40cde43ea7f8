"""The analysis step: figures, tables and a reproducible report of one sweep, from MLflow alone.

``python -m experiments.report [overrides]`` (see ``conf/report.yaml``) calls
:func:`build_report`. Reading (:func:`read_sweep`) is kept apart from drawing
(:func:`write_report`) so each can be timed and tested alone.
"""

from experiments.report.build import build_report, report_dir, write_report
from experiments.report.data import ReportError, Sweep, read_sweep

__all__ = ["ReportError", "Sweep", "build_report", "read_sweep", "report_dir", "write_report"]
