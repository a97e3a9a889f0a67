"""Chrome-trace JSON (opens in Perfetto / chrome://tracing): one process per stage, one thread per stream."""

from __future__ import annotations

import json

STREAMS = {"task": 0, "compute": 1, "comm": 2, "p2p": 3, "dp": 4, "ag": 5}   # ag: ZeRO-3 weight all-gathers


def write_chrome_trace(events: list, path: str, dp_rank_note: str = "") -> None:
    """events: (stage, stream, name, category, start_s, dur_s)."""
    out = []
    stages = sorted({e[0] for e in events})
    for s in stages:
        out.append({"ph": "M", "pid": s, "name": "process_name",
                    "args": {"name": f"stage {s} (representative device{dp_rank_note})"}})
        for name, tid in STREAMS.items():
            out.append({"ph": "M", "pid": s, "tid": tid, "name": "thread_name", "args": {"name": name}})
    for s, stream, name, cat, start, dur in sorted(events, key=lambda e: (e[0], e[4], STREAMS.get(e[1], 9))):
        out.append({"ph": "X", "pid": s, "tid": STREAMS.get(stream, 9), "name": name, "cat": cat,
                    "ts": round(start * 1e6, 3), "dur": round(dur * 1e6, 3)})
    with open(path, "w") as f:
        json.dump({"traceEvents": out, "displayTimeUnit": "ms"}, f)
