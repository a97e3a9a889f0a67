"""Shared helpers for the studies under experiments/: arguments, tidy CSV, run records.

Every study is a folder with ``run.py`` (writes ``results.csv`` and ``run_info.json``) and
``plot.py`` (reads only ``results.csv``, writes PNGs). Both take ``--out DIR`` (default: the
study's own folder); ``run.py`` also takes ``--reduced`` (a seconds-long version for the tests)
and ``--seed``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = "results.csv"
RUN_INFO = "run_info.json"


def run_parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    """The argument parser of a study's run.py: --out, --reduced, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=default_out,
                   help=f"output folder for {RESULTS} and {RUN_INFO} (default: {default_out})")
    p.add_argument("--reduced", action="store_true",
                   help="tiny version of the study (seconds; for tests), not the committed result")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    return p


def plot_parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    """The argument parser of a study's plot.py: --out (reads DIR/results.csv, writes PNGs there)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=default_out,
                   help=f"folder holding {RESULTS}; the figures are written next to it "
                        f"(default: {default_out})")
    return p


def _cell(v) -> str:
    """One CSV cell, written the same way on every run: floats with 10 significant digits."""
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return format(f, ".10g")
    return str(v)


def write_csv(path: Path, rows: Iterable[dict], columns: Sequence[str], sort_by: Sequence[str]) -> Path:
    """Write tidy rows (one measurement each) with the given column order, sorted by sort_by.

    Every row must have exactly these columns (a typo in a key is an error, not a blank cell).
    """
    rows = list(rows)
    for r in rows:
        if set(r) != set(columns):
            raise ValueError(f"row keys {sorted(r)} differ from columns {sorted(columns)}")
    rows.sort(key=lambda r: tuple(r[c] for c in sort_by))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r[c]) for c in columns])
    return path


def write_run_info(out: Path, study: str, config: dict) -> Path:
    """run_info.json next to the results: command line, package versions, resolved config.

    No time stamps, so a re-run with the same arguments writes the same bytes.
    """
    import matplotlib
    import pydantic

    import sim

    info = {
        "study": study,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "moe_sim_version": sim.__version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "pandas_version": pd.__version__,
        "pydantic_version": pydantic.__version__,
        "matplotlib_version": matplotlib.__version__,
        "config": config,
    }
    path = Path(out) / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1, sort_keys=True, default=str) + "\n")
    return path


def read_results(out: Path) -> pd.DataFrame:
    """results.csv of a study (what plot.py is allowed to read)."""
    path = Path(out) / RESULTS
    if not path.exists():
        raise SystemExit(f"{path} not found: run the study's run.py --out {out} first")
    return pd.read_csv(path)
