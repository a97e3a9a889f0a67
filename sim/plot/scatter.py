"""Trade-off scatter of two result columns, coloured by a third."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.plot.colors import CMAP, category_label, category_order, is_categorical, palette
from sim.plot.labels import column_label, format_axis
from sim.plot.style import FAINT, add_footnote, new_axes, style
from sim.plot.table import numeric_values, ok_mask, require_columns

POINT_SIZE = 28


def split_points(df: pd.DataFrame, x: str, y: str, show_infeasible: bool = True):
    """(xv, yv, ok, bad_drawn, n_hidden): ok = status ok with finite x and y; bad_drawn = failed
    rows that still have both coordinates (none unless show_infeasible); n_hidden = rows not drawn
    (no coordinates, or failed and show_infeasible false)."""
    xv, yv = numeric_values(df, x), numeric_values(df, y)
    finite = np.isfinite(xv) & np.isfinite(yv)
    good = ok_mask(df)
    bad = ~good & finite
    n_hidden = int((~finite).sum())
    if not show_infeasible:
        n_hidden += int(bad.sum())
        bad = np.zeros_like(bad)
    return xv, yv, good & finite, bad, n_hidden


def draw_infeasible(ax, xv, yv, bad, label: str = "infeasible / error") -> None:
    """Failed rows that still have coordinates: faint grey x markers."""
    if bad.any():
        ax.scatter(xv[bad], yv[bad], marker="x", s=POINT_SIZE, color=FAINT, alpha=0.6,
                   linewidths=1.0, label=f"{label} ({int(bad.sum())})", zorder=1)


def hidden_note(n_hidden: int, n_total: int) -> str:
    return f"{n_hidden} of {n_total} rows not shown (no value on an axis: infeasible or error)" \
        if n_hidden else ""


def setup_axes(ax, x: str, y: str, logx: bool = False, logy: bool = False) -> None:
    ax.set_xlabel(column_label(x))
    ax.set_ylabel(column_label(y))
    format_axis(ax.xaxis, x)
    format_axis(ax.yaxis, y)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")


def _draw_colored(fig, ax, df, xv, yv, ok, color: str) -> None:
    s = df[color]
    if is_categorical(s):
        cats = category_order(s)
        keys = s.astype(object).where(s.notna(), "(missing)").to_numpy()
        for c, col in zip(cats, palette(len(cats)), strict=True):
            m = ok & (keys == c)
            if m.any():
                ax.scatter(xv[m], yv[m], s=POINT_SIZE, color=col, edgecolors="white", linewidths=0.4,
                           label=category_label(c), zorder=2)
        ax.legend(title=column_label(color), loc="best", frameon=True)
        return
    cv = numeric_values(df, color)
    m = ok & np.isfinite(cv)
    sc = ax.scatter(xv[m], yv[m], c=cv[m], cmap=CMAP, s=POINT_SIZE, edgecolors="white",
                    linewidths=0.4, zorder=2)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(column_label(color))
    format_axis(cb.ax.yaxis, color)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")


def scatter(df: pd.DataFrame, x: str, y: str, color: str | None = None, ax=None, *,
            title: str | None = None, show_infeasible: bool = True, logx: bool = False,
            logy: bool = False):
    """Scatter y against x for the ok rows; returns the Figure.

    color: a numeric column gives a colormap and a labelled colorbar, a categorical one (or an
    integer column with few values) a legend. Failed rows (status != ok) are faint x markers when
    show_infeasible, and are counted in a footnote when they cannot be placed.
    """
    require_columns(df, x, y, color)
    with style():
        fig, ax = new_axes(ax)
        xv, yv, ok, bad, n_hidden = split_points(df, x, y, show_infeasible)
        draw_infeasible(ax, xv, yv, bad)
        if color is None:
            ax.scatter(xv[ok], yv[ok], s=POINT_SIZE, color="C0", edgecolors="white",
                       linewidths=0.4, label=f"ok ({int(ok.sum())})", zorder=2)
            if bad.any():
                ax.legend(loc="best")
        else:
            _draw_colored(fig, ax, df, xv, yv, ok, color)
        setup_axes(ax, x, y, logx, logy)
        ax.set_title(title or f"{column_label(y)} vs {column_label(x)}")
        add_footnote(fig, hidden_note(n_hidden, len(df)))
    return fig
