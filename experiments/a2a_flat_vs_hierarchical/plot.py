"""Figures of the flat-vs-hierarchical all-to-all study from results.csv only.

a2a_share_vs_nodes.png  exposed EP all-to-all share of the step vs EP size / nodes spanned, one
                        panel per profile, lines for flat / hierarchical
a2a_time_vs_ep.png      exposed all-to-all time and step time (s) vs EP size / nodes spanned

Usage: python experiments/a2a_flat_vs_hierarchical/plot.py [--out DIR]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import plot_parser, read_results  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.plot.style import save_figure, style  # noqa: E402

ALGO_STYLE = {
    "flat": {"color": "tab:blue", "marker": "o", "linestyle": "-", "label": "flat"},
    "hierarchical": {"color": "tab:red", "marker": "s", "linestyle": "--",
                     "label": "hierarchical (inter-node, then intra-node)"},
}
PROFILE_ORDER = ("ascend-910b", "h800", "h100-sxm", "ascend-910c-supernode", "gb200-nvl72")


def _profiles(df) -> list[str]:
    present = set(df["hardware"])
    return [p for p in PROFILE_ORDER if p in present] + sorted(present - set(PROFILE_ORDER))


def _panel_title(d) -> str:
    hw, dpn = d["hardware"].iloc[0], int(d["devices_per_node"].iloc[0])
    eps = sorted(d["ep_devices"].unique())
    return f"{hw}\n({dpn} devices per node; EP {eps[0]}..{eps[-1]})"


def _ep_nodes_axis(ax, d, bottom: bool = True) -> None:
    """x = EP size on a log2 axis, each tick labelled with the EP size and the nodes it spans."""
    pts = d[["ep_devices", "nodes_spanned"]].drop_duplicates().sort_values("ep_devices")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(pts["ep_devices"]))
    ax.set_xticklabels([f"{int(e)}\n{int(n)}" for e, n in zip(pts["ep_devices"], pts["nodes_spanned"],
                                                                strict=True)])
    ax.minorticks_off()
    if bottom:
        ax.set_xlabel("EP size (devices)\nnodes spanned by the EP group (nodes)")


def plot_share(df, out: Path) -> Path:
    profiles = _profiles(df)
    top = min(1.0, math.ceil(df["ep_a2a_share_of_step_frac"].max() * 10 + 0.5) / 10)
    with style():
        fig = Figure(figsize=(3.4 * len(profiles), 4.2), layout="constrained")
        axes = fig.subplots(1, len(profiles), squeeze=False, sharey=True)[0]
        for ax, hw in zip(axes, profiles, strict=True):
            d = df[df["hardware"] == hw]
            for algo, st in ALGO_STYLE.items():
                r = d[d["a2a_algorithm"] == algo].sort_values("ep_devices")
                ax.plot(r["ep_devices"], r["ep_a2a_share_of_step_frac"], **st)
            _ep_nodes_axis(ax, d)
            ax.set_title(_panel_title(d), fontsize=9)
            ax.set_ylim(0, top)
        axes[0].set_ylabel("exposed EP all-to-all / step time (fraction)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        ex = ", ".join(sorted(df["executor"].unique()))
        first = df.iloc[0]
        fig.suptitle(f"Exposed EP all-to-all share of the training step, DeepSeek-V3, "
                     f"{int(first['num_devices'])} devices (pp {int(first['pp_stages'])}, "
                     f"dp {int(first['dp_ranks'])}), skew {first['skew']}, executor {ex}")
    return save_figure(fig, out / "a2a_share_vs_nodes.png")


def plot_times(df, out: Path) -> Path:
    profiles = _profiles(df)
    metrics = [("exposed_ep_a2a_s", "exposed EP all-to-all per step (s)"),
               ("step_time_s", "step time (s)")]
    with style():
        fig = Figure(figsize=(3.6 * len(profiles), 6.6), layout="constrained")
        axes = fig.subplots(len(metrics), len(profiles), squeeze=False)
        for j, hw in enumerate(profiles):
            d = df[df["hardware"] == hw]
            for i, (col, ylabel) in enumerate(metrics):
                ax = axes[i][j]
                for algo, st in ALGO_STYLE.items():
                    r = d[d["a2a_algorithm"] == algo].sort_values("ep_devices")
                    ax.plot(r["ep_devices"], r[col], **st)
                _ep_nodes_axis(ax, d, bottom=i == len(metrics) - 1)
                ax.set_ylim(bottom=0)
                if j == 0:
                    ax.set_ylabel(ylabel)
                if i == 0:
                    ax.set_title(_panel_title(d), fontsize=9)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        fig.suptitle("Exposed EP all-to-all time and step time vs EP size, DeepSeek-V3 "
                     "(flat vs hierarchical)")
    return save_figure(fig, out / "a2a_time_vs_ep.png")


def main(argv=None) -> None:
    args = plot_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    df = read_results(args.out)
    for p in (plot_share(df, args.out), plot_times(df, args.out)):
        print(p)


if __name__ == "__main__":
    main()
