"""Result-row columns: report fields as plain scalars, derived columns, and a canonical column order."""

from __future__ import annotations

from typing import Any

from sim.report.report import StepReport
from sim.search.paths import flatten

HEAD = ("point_index", "point_id", "status")
TAIL = ("reason",)
DERIVED = ("total_params_b", "active_params_b", "dp", "num_microbatches")
SEARCH_COUNTS = ("layouts_enumerated", "layouts_infeasible", "layouts_screened", "layouts_simulated")
INPUT_PREFIXES = ("model_preset", "model.", "hardware.", "parallel.", "workload.", "routing.")


def plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so rows pickle, JSON-encode and compare exactly."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return v.item()
    return v


def report_columns(rep: StepReport) -> dict:
    """Every field of ``rep.to_dict()`` as a scalar column (dict fields flattened: exposed_comm_s.tp),
    without ``reason`` (the row's own reason column carries it)."""
    d = rep.to_dict()
    d.pop("reason", None)
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            for kk, vv in flatten({k: v}, "").items():
                out[kk] = plain(vv)
        else:
            out[k] = plain(v)
    return out


def _group(col: str) -> int:
    if col in HEAD:
        return 0
    for i, p in enumerate(INPUT_PREFIXES):
        if col == p or (p.endswith(".") and col.startswith(p)):
            return 1 + i
    if col in DERIVED:
        return 10
    if col in SEARCH_COUNTS:
        return 11
    if col in TAIL:
        return 13
    return 12   # report columns


def column_order(rows: list[dict]) -> list[str]:
    """Columns of all rows: grouped (head, inputs, derived, search counts, report, reason), each group in
    order of first appearance over the rows as given (callers pass rows sorted by point index)."""
    seen: dict[str, int] = {}
    for r in rows:
        for k in r:
            if k not in seen:
                seen[k] = len(seen)
    head = {c: i for i, c in enumerate(HEAD)}
    return sorted(seen, key=lambda c: (_group(c), head.get(c, seen[c])))
