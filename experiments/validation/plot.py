"""Predicted vs published figure from results.csv (headline metric of every entry).

Usage: python experiments/validation/plot.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
TOL = 0.15


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    out = Path(args.out)
    df = pd.read_csv(out / "results.csv")
    df = df[df["kind"] == "headline"].reset_index(drop=True)
    ratio = (df["predicted"] / df["published"]).to_numpy()     # (entries,)
    inside = np.abs(ratio - 1) <= TOL
    fig, ax = plt.subplots(figsize=(10, max(5, 0.45 * len(df) + 2.6)))
    y = np.arange(len(df))
    ax.axvspan(1 - TOL, 1 + TOL, color="tab:green", alpha=0.12, label="within +-15%")
    ax.axvline(1.0, color="k", lw=1, label="predicted = published")
    ax.scatter(ratio[inside], y[inside], color="tab:blue", zorder=3, label="within tolerance")
    ax.scatter(ratio[~inside], y[~inside], color="tab:red", marker="x", zorder=3, label="outside tolerance")
    labels = [f"{n}  [{m}]" for n, m in zip(df["name"], df["metric"], strict=True)]
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("predicted / published (ratio of the entry's headline metric)")
    med = float(np.median(np.abs(df["error_pct"])))
    ax.set_title(f"moe-sim vs published training runs\nmedian |error| {med:.1f}%, "
                 f"{int(inside.sum())} of {len(df)} entries within 15%")
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))     # half an inch at the bottom for the legend
    fig.savefig(out / "validation.png", dpi=150, metadata={"Software": None})
    print(f"wrote {out / 'validation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
