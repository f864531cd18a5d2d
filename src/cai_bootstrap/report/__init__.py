"""report.md and a self-contained report.html for a run: fill ReportData, call render()."""

from .model import Example, GateOutcome, ReportData, StageReport
from .render import render

__all__ = ["Example", "GateOutcome", "ReportData", "StageReport", "render"]
