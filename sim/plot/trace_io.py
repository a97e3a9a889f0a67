"""Read a Chrome trace written by `moe-sim run --trace` into a table of complete events."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.errors import UserError

EVENT_COLUMNS = ["pid", "tid", "name", "cat", "start_s", "dur_s"]


def read_trace(path: str | Path) -> tuple[pd.DataFrame, dict, dict]:
    """(events, process_names, thread_names) from a Chrome trace JSON.

    events: one row per 'X' event with pid (pipeline stage), tid (stream), name, cat, start_s,
    dur_s (seconds); process_names: pid -> name; thread_names: (pid, tid) -> name.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise UserError(f"{path}: expected a Chrome trace .json (from moe-sim run --trace)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    return trace_events(data, source=str(path))


def trace_events(data, source: str = "trace") -> tuple[pd.DataFrame, dict, dict]:
    """As read_trace, from the already-parsed JSON (a dict with traceEvents, or a bare list)."""
    raw = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise UserError(f"{source}: no traceEvents list (is this a Chrome trace?)")
    rows, procs, threads = [], {}, {}
    for e in raw:
        if not isinstance(e, dict):
            continue
        ph = e.get("ph")
        if ph == "M":
            name = (e.get("args") or {}).get("name")
            if e.get("name") == "process_name" and name is not None:
                procs[e.get("pid")] = str(name)
            elif e.get("name") == "thread_name" and name is not None:
                threads[(e.get("pid"), e.get("tid"))] = str(name)
        elif ph == "X" and "ts" in e:
            rows.append((e.get("pid", 0), e.get("tid", 0), str(e.get("name", "")),
                         str(e.get("cat", "")), float(e["ts"]) * 1e-6, float(e.get("dur", 0)) * 1e-6))
    if not rows:
        raise UserError(f"{source}: no complete ('X') events to plot")
    return pd.DataFrame(rows, columns=EVENT_COLUMNS), procs, threads
