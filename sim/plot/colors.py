"""Colour for a third column: a colormap for numbers, a palette for categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps

MAX_NUMERIC_CATEGORIES = 8  # integer columns with at most this many values get a legend, not a colorbar
CMAP = "viridis"


def is_categorical(s: pd.Series) -> bool:
    """True for strings/bools, and for integer-valued columns with few distinct values (EP, top-k)."""
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return True
    v = s.dropna().to_numpy(dtype=float)
    return bool(len(v)) and bool(np.all(v == np.round(v))) and len(np.unique(v)) <= MAX_NUMERIC_CATEGORIES


def category_order(s: pd.Series) -> list:
    """Distinct values in a stable order: numeric ascending, else alphabetical; missing last."""
    vals = list(s.dropna().unique())
    try:
        vals = sorted(vals)
    except TypeError:
        vals = sorted(vals, key=str)
    return vals + (["(missing)"] if s.isna().any() else [])


def palette(n: int) -> list:
    """n distinct colours (tab10, then tab20, cycled beyond 20)."""
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def category_label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
