"""Predicted-vs-published figure: each entry a labelled point, the y = x line, the +-15% band."""

from __future__ import annotations

from pathlib import Path

from sim.validate.runner import TOLERANCE_PCT, Result, median_abs_error

UNITS = {
    "step_time_s": "s",
    "tokens_per_s_per_device": "tokens/s/device",
    "model_tflops_per_device": "TFLOPS/device",
    "mfu": "fraction of peak",
    "hfu": "fraction of peak",
}


def plot_results(results: list[Result], path: str | Path) -> None:
    """Two panels: predicted vs published (log-log when values span more than a decade, points
    numbered), and predicted / published per entry (rows named), both with y = x and the band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(results)
    pub = np.array([r.published for r in results])  # (entries,)
    ours = np.array([r.predicted for r in results])  # (entries,)
    ratio = ours / pub  # (entries,)
    tol = TOLERANCE_PCT / 100.0
    inside = np.abs(ratio - 1.0) <= tol
    fits = np.array([r.fits for r in results])
    colors = np.where(inside, "tab:blue", "tab:red")
    faces = np.where(fits, colors, "none")

    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(15, max(5.5, 0.42 * n + 2.5)), gridspec_kw={"width_ratios": [1, 1.35]}
    )

    # left: predicted vs published, in each entry's own unit
    lo, hi = min(pub.min(), ours.min()) / 1.3, max(pub.max(), ours.max()) * 1.3
    log = hi / lo > 10.0
    x = np.geomspace(lo, hi, 200) if log else np.linspace(lo, hi, 200)
    ax.fill_between(x, x * (1 - tol), x * (1 + tol), color="tab:green", alpha=0.15)
    ax.plot(x, x, color="black", lw=1.0)
    ax.scatter(pub, ours, s=36, edgecolors=colors, facecolors=faces, zorder=3)
    for i, r in enumerate(results):
        ax.annotate(
            str(i + 1),
            (r.published, r.predicted),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=8,
        )
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (entry's unit: s, TFLOPS/device, tokens/s/device or fraction)")
    ax.set_ylabel("predicted by moe-sim (same unit)")
    ax.set_title("predicted vs published (numbers: rows at right)")
    ax.grid(True, which="both", alpha=0.3)

    # right: predicted / published per entry
    rows = np.arange(n)[::-1]  # first entry on top
    bx.axvspan(
        1 - tol, 1 + tol, color="tab:green", alpha=0.15, label=f"within \u00b1{TOLERANCE_PCT:.0f}%"
    )
    bx.axvline(1.0, color="black", lw=1.0, label="y = x (predicted = published)")
    bx.scatter(ratio, rows, s=36, edgecolors=colors, facecolors=faces, zorder=3)
    bx.scatter([], [], s=36, color="tab:blue", label="inside the band")
    bx.scatter([], [], s=36, color="tab:red", label="outside the band")
    bx.scatter(
        [], [], s=36, edgecolors="gray", facecolors="none", label="hollow: does not fit in memory"
    )
    for row, rt, r in zip(rows, ratio, results, strict=True):
        bx.annotate(
            f"{r.error_pct:+.1f}%",
            (rt, row),
            textcoords="offset points",
            xytext=(6, -3),
            fontsize=8,
        )
    bx.set_yticks(rows)
    bx.set_yticklabels(
        [f"{i + 1}. {r.name} [{UNITS[r.metric]}]" for i, r in enumerate(results)], fontsize=8
    )
    bx.set_xlim(min(0.4, ratio.min() * 0.9), max(1.6, ratio.max() * 1.15))
    bx.set_xlabel("predicted / published (dimensionless)")
    bx.set_title(f"{n} published runs, median |error| {median_abs_error(results):.1f}%")
    bx.grid(True, axis="x", alpha=0.3)
    bx.legend(loc="lower right", fontsize=8)

    fig.suptitle("moe-sim validation against published training runs")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
