"""Grouped bars comparing one metric across routers (or any category), with spread error bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.errors import UserError
from sim.plot.colors import category_label, category_order, palette
from sim.plot.labels import column_label, format_axis
from sim.plot.style import add_footnote, new_axes, style
from sim.plot.table import numeric_values, ok_mask, require_columns

ERRORS = ("minmax", "std", "none")
ERR_TEXT = {"minmax": "min-max", "std": "±1 std"}


def bar_stats(df: pd.DataFrame, by: str, metric: str, group: str | None = None) -> pd.DataFrame:
    """mean, std, min, max, n of metric per (by, group) over ok rows with a value.

    Columns: by, group (when given), mean, std (0 for one row), min, max, n.
    """
    require_columns(df, by, metric, group)
    v = numeric_values(df, metric)
    keep = ok_mask(df) & np.isfinite(v)
    keys = [by] + ([group] if group else [])
    t = df.loc[keep, keys].astype(object).where(df.loc[keep, keys].notna(), "(missing)")
    t["_v"] = v[keep]
    g = t.groupby(keys, sort=False)["_v"]
    out = g.agg(mean="mean", std="std", min="min", max="max", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def routing_bars(df: pd.DataFrame, by: str, metric: str, group: str | None = None, ax=None, *,
                 err: str = "minmax", title: str | None = None):
    """Bars of mean(metric) for each value of `by`, one bar per `group` value side by side;
    error bars (min-max or std) where a bar averages several rows. Returns the Figure."""
    if err not in ERRORS:
        raise UserError(f"--err {err}: expected one of {', '.join(ERRORS)}")
    stats = bar_stats(df, by, metric, group)
    if stats.empty:
        raise UserError(f"no ok rows with a value for '{metric}'")
    n_dropped = len(df) - int(stats["n"].sum())
    xcats = category_order(stats[by])
    gcats = category_order(stats[group]) if group else [None]
    width = 0.8 / len(gcats)
    with style():
        fig, ax = new_axes(ax, size_in=(max(6.4, 1.1 * len(xcats) * max(1, len(gcats)) ** 0.5), 4.4))
        multi = False
        for j, (gv, color) in enumerate(zip(gcats, palette(len(gcats)), strict=True)):
            sub = stats if gv is None else stats[stats[group] == gv]
            pos = {c: i for i, c in enumerate(xcats)}
            xs = np.array([pos[c] for c in sub[by]], dtype=float) + (j - (len(gcats) - 1) / 2) * width
            mean = sub["mean"].to_numpy(float)
            if err == "minmax":
                yerr = np.vstack([mean - sub["min"].to_numpy(float), sub["max"].to_numpy(float) - mean])
            elif err == "std":
                yerr = np.vstack([sub["std"].to_numpy(float)] * 2)
            else:
                yerr = None
            if yerr is not None:
                yerr[:, sub["n"].to_numpy() < 2] = 0.0
                multi = multi or bool((sub["n"] > 1).any())
            ax.bar(xs, mean, width=width * 0.95, color=color, edgecolor="white", linewidth=0.5,
                   label=None if gv is None else category_label(gv), zorder=2)
            if yerr is not None and (sub["n"] > 1).any():
                ax.errorbar(xs, mean, yerr=yerr, fmt="none", ecolor="black", elinewidth=1.0,
                            capsize=3, zorder=3)
        ax.set_xticks(range(len(xcats)), [category_label(c) for c in xcats])
        ax.set_xlabel(column_label(by))
        ax.set_ylabel(column_label(metric) + (" (mean)" if multi else ""))
        format_axis(ax.yaxis, metric)
        ax.grid(axis="x", visible=False)
        if group:
            ax.legend(title=column_label(group), loc="best")
        ax.set_title(title or f"{column_label(metric)} by {column_label(by)}")
        notes = []
        if multi and err != "none":
            notes.append(f"bars: mean over rows; error bars: {ERR_TEXT[err]}")
        if n_dropped:
            notes.append(f"{n_dropped} of {len(df)} rows without an ok '{metric}' left out")
        add_footnote(fig, *notes)
    return fig
