"""The ``specinterp report`` main job: analysis, figures and the written report."""

from .analysis import ReportData, analyse
from .render import METRICS_SCHEMA, metrics, write_report

__all__ = ["METRICS_SCHEMA", "ReportData", "analyse", "metrics", "write_report"]
