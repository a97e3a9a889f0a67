"""Per-stage timeline of a simulated step: one row per (pipeline stage, stream), coloured by category."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.patches import Patch

from sim.errors import UserError
from sim.plot.style import new_axes, style
from sim.plot.trace_io import read_trace, trace_events

# trace categories (sim/report/trace.py) in legend order, with fixed colours
CATEGORY_COLORS = {
    "compute": "#1f77b4", "tp": "#ff7f0e", "cp": "#bcbd22", "ep_a2a": "#d62728",
    "pp_p2p": "#9467bd", "dp": "#2ca02c", "optimizer": "#8c564b", "task": "#c7c7c7",
}
CATEGORY_NAMES = {
    "compute": "compute", "tp": "TP comm", "cp": "CP comm", "ep_a2a": "EP all-to-all",
    "pp_p2p": "PP p2p", "dp": "DP grad/param comm", "optimizer": "optimizer", "task": "task (span)",
}
BAR_HEIGHT = 0.8
MAX_TASK_LABELS = 300
TEXT_IN_PER_CHAR = 0.075  # width of one 9 pt character, inches (for deciding which tasks to label)


def _category_colors(cats) -> dict:
    extra = sorted(c for c in cats if c not in CATEGORY_COLORS)
    cmap = colormaps["tab20"]
    return {**CATEGORY_COLORS, **{c: cmap((2 * i + 1) % cmap.N) for i, c in enumerate(extra)}}


def _load(trace):
    if isinstance(trace, (str, Path)):
        return read_trace(trace)
    if isinstance(trace, pd.DataFrame):
        return trace, {}, {}
    return trace_events(trace)


def _window(ev: pd.DataFrame, start_s, end_s) -> tuple[float, float]:
    lo = float(ev["start_s"].min()) if start_s is None else float(start_s)
    hi = float((ev["start_s"] + ev["dur_s"]).max()) if end_s is None else float(end_s)
    if hi <= lo:
        raise UserError(f"time window is empty: --start {lo:g} s must be before --end {hi:g} s")
    return lo, hi


def timeline(trace, stages: int | None = None, start_s: float | None = None,
             end_s: float | None = None, ax=None, *, unit: str = "auto", title: str | None = None):
    """Draw a trace (path, parsed Chrome-trace JSON, or events table from read_trace).

    stages: show only the first N pipeline stages; start_s/end_s: the time window in seconds
    (events are clipped to it); unit: 's', 'ms' or 'auto' (ms below one second). Returns the Figure.
    """
    ev, procs, threads = _load(trace)
    pids = sorted(ev["pid"].unique())
    if stages is not None:
        if stages < 1:
            raise UserError(f"--stages must be >= 1, got {stages}")
        pids = pids[:stages]
    lo, hi = _window(ev, start_s, end_s)
    end = ev["start_s"] + ev["dur_s"]
    ev = ev[ev["pid"].isin(pids) & (end >= lo) & (ev["start_s"] <= hi)].copy()
    if ev.empty:
        raise UserError(f"no trace events between {lo:g} s and {hi:g} s")
    ev["t0"] = ev["start_s"].clip(lower=lo)
    ev["t1"] = (ev["start_s"] + ev["dur_s"]).clip(upper=hi)
    if unit not in ("auto", "s", "ms"):
        raise UserError(f"--unit {unit}: expected auto, s or ms")
    unit = ("ms" if hi - lo < 1.0 else "s") if unit == "auto" else unit
    scale = 1e3 if unit == "ms" else 1.0

    rows = sorted({(p, t) for p, t in zip(ev["pid"], ev["tid"], strict=True)})
    row_of = {r: i for i, r in enumerate(rows)}
    colors = _category_colors(ev["cat"].unique())
    width_in = 10.0
    with style():
        fig, ax = new_axes(ax, size_in=(width_in, 1.4 + 0.32 * len(rows)))
        for (pid, tid, cat), g in ev.groupby(["pid", "tid", "cat"], sort=True):
            y = row_of[(pid, tid)]
            spans = np.column_stack([g["t0"] * scale, (g["t1"] - g["t0"]) * scale])
            ax.broken_barh(spans, (y - BAR_HEIGHT / 2, BAR_HEIGHT), facecolors=colors[cat],
                           linewidth=0, zorder=2)
        _label_tasks(ax, ev, row_of, lo, hi, scale, width_in * 0.8)
        for i in range(1, len(rows)):  # a line between stages
            if rows[i][0] != rows[i - 1][0]:
                ax.axhline(i - 0.5, color="#555555", lw=0.8, zorder=1)
        ax.set_yticks(range(len(rows)),
                      [f"stage {p}: {threads.get((p, t), f'stream {t}')}" for p, t in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # stage 0 on top
        ax.set_xlim(lo * scale, hi * scale)
        ax.set_xlabel(f"time ({unit})")
        ax.grid(axis="y", visible=False)
        present = [c for c in colors if c in set(ev["cat"])]
        handles = [Patch(color=colors[c], label=CATEGORY_NAMES.get(c, c)) for c in present]
        ax.legend(handles=handles, title="category", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        shown = f"{len(pids)} stage{'s' if len(pids) != 1 else ''}"
        ax.set_title(title or f"Per-stage timeline ({shown}, {(hi - lo) * scale:.4g} {unit})")
    return fig


def _label_tasks(ax, ev, row_of, lo, hi, scale, axes_width_in) -> None:
    """Write task names (F0.c0, B3 ...) inside task spans wide enough to hold them."""
    tasks = ev[ev["cat"] == "task"]
    width_in = (tasks["t1"] - tasks["t0"]) / (hi - lo) * axes_width_in
    fits = tasks[width_in >= tasks["name"].str.len() * TEXT_IN_PER_CHAR + 0.08]
    if len(fits) > MAX_TASK_LABELS:
        return
    for r in fits.itertuples():
        ax.text((r.t0 + r.t1) / 2 * scale, row_of[(r.pid, r.tid)], r.name, ha="center",
                va="center", fontsize=9, color="#222222", zorder=3, clip_on=True)
