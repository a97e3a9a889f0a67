"""Simulate validation entries with stock presets and profiles; compare with published figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from sim.engine.run import simulate
from sim.engine.spec import RunSpec
from sim.report.report import StepReport
from sim.validate.conventions import achieved_tflops
from sim.validate.load import entry_runspec
from sim.validate.schema import ValidationEntry

TOLERANCE_PCT = 15.0  # the accuracy the project holds each entry to (signed error within +-15%)

JSON_KEYS = ("name", "metric", "published", "predicted", "error_pct")


@dataclass(frozen=True)
class BreakdownRow:
    """A published per-phase figure and, when the report has the key, our value."""

    key: str
    published: float
    predicted: float | None
    error_pct: float | None


@dataclass
class Result:
    """One entry simulated: our value against the published one.

    error_pct = (predicted - published) / published x 100, so positive means we predict more.
    """

    name: str
    metric: str
    published: float
    predicted: float
    error_pct: float
    fits: bool
    breakdown: list[BreakdownRow] = field(default_factory=list)
    report: StepReport | None = None

    def to_json(self) -> dict:
        """The machine-readable row: exactly JSON_KEYS."""
        return {
            "name": self.name,
            "metric": self.metric,
            "published": self.published,
            "predicted": round(self.predicted, 9),
            "error_pct": round(self.error_pct, 6),
        }


def error_pct(predicted: float, published: float) -> float:
    return (predicted - published) / published * 100.0


def predicted_value(entry: ValidationEntry, spec: RunSpec, rep: StepReport) -> float:
    """Our value of the entry's metric, in the source's units and FLOP convention."""
    m = entry.metric
    if m == "step_time_s":
        return rep.step_time_s
    if m == "tokens_per_s_per_device":
        return rep.tokens_per_s_per_device
    if m == "hfu":
        return rep.hfu
    tflops = achieved_tflops(entry.flop_convention, spec, rep)
    if m == "model_tflops_per_device":
        return tflops
    return (
        tflops * 1e12 / spec.hardware.peak_flops("bf16")
    )  # mfu: over dense BF16 peak, even for FP8 runs


def report_value(report: dict, key: str) -> float | None:
    """A numeric report field by name; dotted keys reach nested dicts (exposed_comm_s.ep_a2a)."""
    node = report
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def compare_breakdown(entry: ValidationEntry, rep: StepReport) -> list[BreakdownRow]:
    d = rep.to_dict()
    rows = []
    for key, pub in entry.breakdown.items():
        ours = report_value(d, key)
        rows.append(BreakdownRow(key, pub, ours, None if ours is None else error_pct(ours, pub)))
    return rows


def run_entry(entry: ValidationEntry, executor: str = "des") -> Result:
    """Simulate one entry. A layout that does not fit in memory is still simulated (fits false)."""
    spec = entry_runspec(entry)
    rep = simulate(spec, executor=executor, check_memory=False)
    ours = predicted_value(entry, spec, rep)
    return Result(
        entry.name,
        entry.metric,
        entry.published,
        ours,
        error_pct(ours, entry.published),
        rep.fits,
        compare_breakdown(entry, rep),
        rep,
    )


def run_entries(entries: list[ValidationEntry], executor: str = "des") -> list[Result]:
    return [run_entry(e, executor) for e in entries]


def median_abs_error(results: list[Result]) -> float:
    """Median of |error_pct| over the results (unit: percent)."""
    return statistics.median(abs(r.error_pct) for r in results)


def within_tolerance(result: Result, tol_pct: float = TOLERANCE_PCT) -> bool:
    return abs(result.error_pct) <= tol_pct
