"""Result tables for plotting: read CSV/Parquet, check columns, filter rows, match --mark specs."""

from __future__ import annotations

import difflib
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import UserError

TABLE_FORMATS = (".csv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """A results table (CSV or Parquet, one row per point); UserError if missing, unreadable or empty."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in TABLE_FORMATS:
        raise UserError(f"{path}: expected a .csv or .parquet results table, got '{ext or '(none)'}'")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        if ext == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty table") from None
    except Exception as e:  # parser errors: report one line
        raise UserError(f"{path}: cannot read table: {str(e).splitlines()[0]}") from None
    if df.empty:
        raise UserError(f"{path}: empty table (no rows)")
    df.attrs["source"] = str(path)  # names the file in later errors
    return df


def require_columns(df: pd.DataFrame, *cols: str | None) -> None:
    """UserError naming the first unknown column, a close match and (briefly) the available ones."""
    source = df.attrs.get("source", "table")
    for col in cols:
        if col is None or col in df.columns:
            continue
        names = [str(c) for c in df.columns]
        close = difflib.get_close_matches(col, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        shown = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "")
        raise UserError(f"unknown column '{col}' in {source}; {hint}available: {shown}")


def numeric_values(df: pd.DataFrame, col: str) -> np.ndarray:
    """The column as float64 (NaN where missing); UserError if it holds no numbers at all."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    v = pd.to_numeric(s, errors="coerce")
    if v.notna().sum() == 0 and s.notna().any():
        raise UserError(f"column '{col}' is not numeric (e.g. {s.dropna().iloc[0]!r})")
    return v.to_numpy(dtype=float, na_value=np.nan)


def ok_mask(df: pd.DataFrame) -> np.ndarray:
    """Rows whose simulation succeeded: status == 'ok' (all rows when there is no status column)."""
    if "status" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return (df["status"].astype(str).str.strip().str.lower() == "ok").to_numpy()


_QUOTED = re.compile(r"(`[^`]*`|'[^']*'|\"[^\"]*\")")


def _backtick_dotted(expr: str, columns) -> str:
    """Wrap dotted column names in backticks so pandas.query reads them as names, not attributes."""
    dotted = sorted((str(c) for c in columns if "." in str(c)), key=len, reverse=True)
    if not dotted:
        return expr
    pattern = re.compile(r"(?<![\w.`])(" + "|".join(map(re.escape, dotted)) + r")(?![\w.])")
    parts = _QUOTED.split(expr)  # odd indices are quoted strings or `names`: leave them alone
    return "".join(p if i % 2 else pattern.sub(r"`\1`", p) for i, p in enumerate(parts))


def filter_rows(df: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """Rows matching a pandas query expression (dotted column names may be written bare)."""
    if not where:
        return df
    try:
        out = df.query(_backtick_dotted(where, df.columns), engine="python")
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"--where {where!r}: {msg}") from None
    if out.empty:
        raise UserError(f"--where {where!r}: no rows match")
    return out


def parse_mark(spec: str) -> dict[str, str]:
    """'model.hidden_size=7680,model.num_layers=61' -> {'model.hidden_size': '7680', ...}."""
    out = {}
    for item in spec.split(","):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--mark {spec!r}: expected COL=VAL[,COL=VAL...]")
        out[key.strip()] = val.strip()
    return out


def _equal(s: pd.Series, value) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s):
        return (s.astype(str).str.lower() == str(value).strip().lower()).to_numpy()
    if pd.api.types.is_numeric_dtype(s):
        try:
            v = float(value)
        except (TypeError, ValueError):
            return np.zeros(len(s), dtype=bool)
        return np.isclose(s.to_numpy(dtype=float, na_value=np.nan), v, rtol=1e-9, atol=0.0)
    return (s.astype(str) == str(value)).to_numpy()


def match_rows(df: pd.DataFrame, spec: dict) -> np.ndarray:
    """Boolean mask of rows equal to every COL=VAL in spec; UserError if none match."""
    require_columns(df, *spec)
    mask = np.ones(len(df), dtype=bool)
    for col, val in spec.items():
        hit = _equal(df[col], val)
        if not (mask & hit).any():
            seen = ", ".join(map(str, sorted(df[col].dropna().unique(), key=_sort_key)[:8]))
            raise UserError(f"mark {col}={val}: no row matches (values there: {seen})")
        mask &= hit
    return mask


def _sort_key(v):
    return (0, float(v), "") if isinstance(v, (int, float, np.number)) else (1, 0.0, str(v))


def mark_label(spec: dict) -> str:
    """Compact annotation text, wrapped: 'hidden_size=7680 num_layers=61\nnum_experts=256'."""
    return textwrap.fill(" ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in spec.items()), 34)
