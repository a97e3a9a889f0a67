"""Reports: StepReport, Chrome-trace export."""

from sim.report.report import KINDS, StepReport

__all__ = ["KINDS", "StepReport"]
