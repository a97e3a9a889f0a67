"""Shared output helpers: a table or JSON for a flat dict or a list of rows."""

from __future__ import annotations

import json
import math
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "-"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0 or not math.isfinite(v):
            return str(v)
        a = abs(v)
        if a >= 1e6:
            return f"{v:.4e}"
        if a >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def format_kv(d: dict[str, Any]) -> str:
    w = max((len(k) for k in d), default=0)
    return "\n".join(f"{k:<{w}}  {_fmt(v)}" for k, v in d.items())


def format_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    head = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([head, "  ".join("-" * w for w in widths), *lines])


def emit(data: dict | list, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=False))
    elif isinstance(data, list):
        print(format_rows(data))
    else:
        print(format_kv(data))


def add_format_arg(p) -> None:
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
