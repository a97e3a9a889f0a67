"""Objective: which report column a search maximises or minimises (``max tokens_per_s``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sim.report.report import KINDS, StepReport

_NOT_OBJECTIVES = {"fits", "worst_stage", "executor", "reason"}


def _dict_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(StepReport) if f.default_factory is dict]


def objective_columns() -> list[str]:
    """Numeric StepReport columns an objective may name (new report fields join automatically);
    dict-valued fields are named per key, e.g. exposed_comm_s.ep_a2a."""
    dicts = _dict_fields()
    cols = [f.name for f in dataclasses.fields(StepReport) if f.name not in _NOT_OBJECTIVES and f.name not in dicts]
    return cols + [f"exposed_comm_s.{k}" for k in KINDS] + [f"{d}.KEY" for d in dicts if d != "exposed_comm_s"]


def _known(col: str) -> bool:
    if col in objective_columns():
        return True
    head, _, key = col.partition(".")
    return head in _dict_fields() and key.isidentifier()


@dataclass(frozen=True)
class Objective:
    sense: str      # "max" or "min"
    column: str     # a flattened report column, e.g. tokens_per_s or exposed_comm_s.ep_a2a

    def __str__(self) -> str:
        return f"{self.sense} {self.column}"

    def value(self, row: dict) -> float | None:
        v = row.get(self.column)
        if v is None or isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        return float(v)

    def key(self, row: dict) -> float:
        """Sort key, smaller is better; rows without a value sort last."""
        v = self.value(row)
        if v is None:
            return math.inf
        return -v if self.sense == "max" else v


def parse_objective(text: str) -> Objective:
    """``"max tokens_per_s"`` -> Objective; ValueError with one clear line otherwise."""
    parts = str(text).split()
    if len(parts) != 2 or parts[0] not in ("max", "min"):
        raise ValueError(f"'{text}': expected 'max COLUMN' or 'min COLUMN' (e.g. 'max tokens_per_s')")
    if not _known(parts[1]):
        raise ValueError(f"'{text}': unknown column '{parts[1]}' (one of: {', '.join(objective_columns())})")
    return Objective(parts[0], parts[1])
