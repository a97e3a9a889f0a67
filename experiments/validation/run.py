"""Predicted vs published for every entry under validation/ (the calibration set).

Writes results.csv: one row per entry (headline metric) and one per published phase figure.
Usage: python experiments/validation/run.py [--out DIR] [--reduced]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from sim import __version__
from sim.validate.load import load_entries
from sim.validate.runner import run_entry

HERE = Path(__file__).resolve().parent
REDUCED = ("megatron-gpt-1.7b-32xa100",)      # one fast entry for the test


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--reduced", action="store_true", help="one fast entry (for the test)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = load_entries()
    if args.reduced:
        entries = [e for e in entries if e.name in REDUCED]
    rows = []
    for e in entries:
        r = run_entry(e)
        rows.append(dict(name=r.name, metric=r.metric, kind="headline", published=r.published,
                         predicted=r.predicted, error_pct=r.error_pct, fits=r.fits))
        for b in r.breakdown:
            rows.append(dict(name=r.name, metric=b.key, kind="breakdown", published=b.published,
                             predicted=b.predicted, error_pct=b.error_pct, fits=r.fits))
    df = pd.DataFrame(rows).sort_values(["kind", "name", "metric"], kind="stable")
    df.to_csv(out / "results.csv", index=False, float_format="%.6g")
    (out / "run_info.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "version": __version__, "entries": [e.name for e in entries]},
        indent=2) + "\n")
    print(f"wrote {out / 'results.csv'} ({len(df)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
