"""Pareto frontier of two result columns, with chosen configurations marked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.plot.frontier import pareto_front
from sim.plot.labels import column_label
from sim.plot.scatter import POINT_SIZE, draw_infeasible, hidden_note, setup_axes, split_points
from sim.plot.style import FAINT, HIGHLIGHT, add_footnote, new_axes, style
from sim.plot.table import mark_label, match_rows, parse_mark, require_columns

FRONT_COLOR = "C0"


def _normalize_marks(mark, mark_labels) -> list[tuple[dict, str]]:
    if mark is None:
        return []
    if isinstance(mark, (str, dict)):
        mark = [mark]
    specs = [parse_mark(m) if isinstance(m, str) else dict(m) for m in mark]
    labels = list(mark_labels or [])
    return [(s, labels[i] if i < len(labels) else mark_label(s)) for i, s in enumerate(specs)]


def _annotate(ax, xv, yv, rows, text: str, on_front: bool, k: int) -> None:
    ax.scatter(xv[rows], yv[rows], marker="*", s=POINT_SIZE * 6, color=HIGHLIGHT,
               edgecolors="black", linewidths=0.6, zorder=4)
    status = "on frontier" if on_front else "dominated"
    i = rows[0]
    more = f" (+{len(rows) - 1} rows)" if len(rows) > 1 else ""
    # put the label toward the middle of the data (rank, so log axes behave the same)
    right = np.nanmean(xv < xv[i]) < 0.5
    up = np.nanmean(yv < yv[i]) < 0.5
    offset = (16 if right else -16, (28 if up else -28) + (1 if up else -1) * 26 * k)
    ax.annotate(f"{text}{more}\n({status})", xy=(xv[i], yv[i]), xytext=offset,
                textcoords="offset points", fontsize=9, color=HIGHLIGHT, zorder=5,
                ha="left" if right else "right", va="bottom" if up else "top",
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": HIGHLIGHT, "alpha": 0.9},
                arrowprops={"arrowstyle": "->", "color": HIGHLIGHT, "lw": 1.0})


def pareto(df: pd.DataFrame, x: str, y: str, *, maximize_x: bool = False, maximize_y: bool = True,
           mark=None, mark_labels=None, ax=None, title: str | None = None,
           show_infeasible: bool = True, logx: bool = False, logy: bool = False):
    """Frontier of the ok rows as a step line, dominated points faded; returns the Figure.

    mark: 'COL=VAL,COL=VAL' strings or {col: value} dicts (one or a list); the matching rows are
    starred and annotated with mark_labels (default: the COL=VAL pairs) and whether they lie on
    the frontier. A marked row that failed is still starred where it has both coordinates.
    """
    require_columns(df, x, y)
    marks = _normalize_marks(mark, mark_labels)
    masks = [match_rows(df, spec) for spec, _ in marks]
    with style():
        fig, ax = new_axes(ax)
        xv, yv, ok, bad, n_hidden = split_points(df, x, y, show_infeasible)
        okidx = np.flatnonzero(ok)
        front = okidx[pareto_front(xv[ok], yv[ok], maximize_x=maximize_x, maximize_y=maximize_y)]
        behind = ok.copy()
        behind[front] = False
        draw_infeasible(ax, xv, yv, bad)
        ax.scatter(xv[behind], yv[behind], s=POINT_SIZE, color=FAINT, alpha=0.35, linewidths=0,
                   label=f"dominated ({int(behind.sum())})", zorder=2)
        if len(front):
            ax.step(xv[front], yv[front], where="post" if not maximize_x else "pre",
                    color=FRONT_COLOR, lw=1.6, zorder=3)
        ax.scatter(xv[front], yv[front], s=POINT_SIZE * 1.3, color=FRONT_COLOR, edgecolors="white",
                   linewidths=0.5, label=f"Pareto frontier ({len(front)})", zorder=3)
        front_set = set(front.tolist())
        notes = [hidden_note(n_hidden, len(df))]
        for k, ((_, text), m) in enumerate(zip(marks, masks, strict=True)):
            rows = np.flatnonzero(m & np.isfinite(xv) & np.isfinite(yv))
            if len(rows):
                _annotate(ax, xv, yv, rows, text, bool(front_set & set(rows.tolist())), k)
            else:
                notes.append(f"{text}: {int(m.sum())} matching row(s) have no value to plot")
        setup_axes(ax, x, y, logx, logy)
        goal = (f"{'max' if maximize_y else 'min'} {column_label(y).split(' (')[0]}, "
                f"{'max' if maximize_x else 'min'} {column_label(x).split(' (')[0]}")
        ax.set_title(title or f"Pareto frontier: {goal}")
        ax.legend(loc="best")
        add_footnote(fig, *notes)
    return fig
