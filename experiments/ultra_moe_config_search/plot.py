"""Figures of the Pangu Ultra MoE config search, from results.csv only.

- pareto_tokens_vs_active.png: throughput against active parameters of every simulated ~718B
  shape (both maximised: more compute per token at the same throughput is the better model to
  train), one panel per global batch, Pareto frontier drawn, the published shape and the
  simulator's MFU-best one starred.
- mfu_ranking.png: every simulated shape ranked by MFU (the sweep's objective) at the smallest
  batch (sweep.yaml's), coloured by experts / top-k, the published shape outlined with its rank
  and gap to the best; dots give the MFU of the same shape at the larger batch.

Usage: python experiments/ultra_moe_config_search/plot.py [--out DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, PercentFormatter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import plot_parser, read_results  # noqa: E402

from sim.plot import pareto, save_figure  # noqa: E402
from sim.plot.colors import palette  # noqa: E402
from sim.plot.style import HIGHLIGHT, add_footnote, style  # noqa: E402

SHAPE = ("hidden_size", "num_layers", "num_experts", "top_k")


def shape_label(r) -> str:
    return f"h{r.hidden_size} L{r.num_layers} E{r.num_experts} k{r.top_k}"


def layout_label(r) -> str:
    return (f"TP{int(r.tp)} PP{int(r.pp)} VPP{int(r.vpp)} EP{int(r.ep_effective)} "
            f"mbs{int(r.micro_batch_sequences)}")


def published_and_best(ok):
    """(published row or None, MFU-best row) of the simulated rows."""
    pub = ok[ok["published_config"]]
    return (pub.iloc[0] if len(pub) else None), ok.sort_values("mfu_rank").iloc[0]


def _pareto_panel(ax, df, gbs: int) -> None:
    ok = df[df["status"] == "ok"]
    pub, best = published_and_best(ok)
    marks, labels = [], []
    n = len(ok)
    if pub is not None:
        marks.append({k: pub[k] for k in SHAPE})
        labels.append(f"published {shape_label(pub)}\nMFU rank {int(pub.mfu_rank)}/{n}, "
                      f"{layout_label(pub)}")
    if pub is None or best.point_index != pub.point_index:
        marks.append({k: best[k] for k in SHAPE})
        labels.append(f"MFU-best {shape_label(best)}\n{layout_label(best)}")
    pareto(df, "active_params_b", "tokens_per_s", maximize_x=True, maximize_y=True,
           mark=marks, mark_labels=labels, ax=ax,
           title=f"global batch {gbs:,} x 4,096-token sequences")
    ax.set_xlabel("active parameters per token (billions)")
    ax.set_ylabel("training throughput, whole cluster (million tokens/s)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:.2f}"))
    # the labels go to the empty left side of the cloud (pareto() points them at its middle)
    for ann in (t for t in ax.texts if isinstance(t, Annotation)):
        up = ann.xy[1] > ok["tokens_per_s"].median()
        ann.xyann = (-50, 0) if up else (-40, -45)
        ann.set_horizontalalignment("right")
        ann.set_verticalalignment("center" if up else "top")


def plot_pareto(df, out: Path) -> Path:
    batches = sorted(df["global_batch_sequences"].unique())
    fig = Figure(figsize=(7.6 * len(batches), 5.6), layout="constrained")
    axes = fig.subplots(1, len(batches), squeeze=False)[0]
    for ax, gbs in zip(axes, batches, strict=True):
        _pareto_panel(ax, df[df["global_batch_sequences"] == gbs], int(gbs))
    counts = ", ".join(
        f"{int((d['status'] == 'ok').sum())} of {len(d)} at batch {int(g):,}"
        for g, d in df.groupby("global_batch_sequences"))
    with style():
        fig.suptitle("~718B MoE shapes on 6,144 Ascend 910B: throughput vs active parameters "
                     "(each shape with its best layout by MFU)")
        add_footnote(fig, f"Shapes with a result: {counts}; the rest were excluded before "
                          "simulating (total or active parameters outside the sweep's constraints) "
                          "or got no result from the layout search (status error; see README). "
                          "Frontier: no other shape has both more active parameters and more "
                          "tokens/s.")
    return save_figure(fig, out / "pareto_tokens_vs_active.png")


def plot_ranking(df, out: Path) -> Path:
    batches = sorted(df["global_batch_sequences"].unique())
    main_gbs, other = batches[0], batches[1:]
    ok = df[(df["status"] == "ok") & (df["global_batch_sequences"] == main_gbs)]
    ok = ok.sort_values("mfu_rank", ascending=False)
    pub, best = published_and_best(ok)
    alt = {}
    if other:
        o = df[(df["status"] == "ok") & (df["global_batch_sequences"] == other[-1])]
        alt = {tuple(r[k] for k in SHAPE): r for _, r in o.iterrows()}
    groups = sorted({(int(r.num_experts), int(r.top_k)) for r in ok.itertuples()})
    colors = dict(zip(groups, palette(len(groups)), strict=True))
    with style():
        fig = Figure(figsize=(8.2, max(4.0, 0.17 * len(ok) + 2.0)), layout="constrained")
        ax = fig.add_subplot()
        y = list(range(len(ok)))
        rows = list(ok.itertuples())
        ax.barh(y, ok["mfu_fraction"], color=[colors[(r.num_experts, r.top_k)] for r in rows],
                edgecolor=["black" if r.published_config else "none" for r in rows],
                linewidth=[1.8 if r.published_config else 0 for r in rows], height=0.75)
        ticks = []
        for i, r in zip(y, rows, strict=True):
            a = alt.get(tuple(getattr(r, k) for k in SHAPE))
            label = f"#{int(r.mfu_rank)} {shape_label(r)}"
            if a is not None:
                ax.plot(a["mfu_fraction"], i, "o", ms=4, color="black", zorder=3)
                label += f" (#{int(a['mfu_rank'])})"
            elif other:
                label += " (no result)"
            ticks.append(label)
        ax.set_yticks(y, ticks, fontsize=9)
        for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
            if r.published_config:
                tick.set_color(HIGHLIGHT)
                tick.set_fontweight("bold")
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_xlabel("MFU (model FLOPs / BF16 peak, %)")
        ylabel = f"shape, ranked by MFU at global batch {int(main_gbs):,}"
        if other:
            ylabel += f" (rank at {int(other[-1]):,})"
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.7, len(ok) - 0.3)
        ax.set_title("MFU of ~718B MoE shapes on 6,144 Ascend 910B (best layout each)")
        handles = [Patch(color=colors[g], label=f"{g[0]} experts, top-{g[1]}: "
                         f"batch {int(main_gbs):,}") for g in groups]
        if other:
            handles.append(Line2D([], [], ls="none", marker="o", ms=4, color="black",
                                  label=f"same shape at batch {int(other[-1]):,}"))
        xmax = max(ok["mfu_fraction"].max(), max((a["mfu_fraction"] for a in alt.values()),
                                                  default=0))
        if pub is not None:
            handles.append(Patch(facecolor="white", edgecolor="black", linewidth=1.8,
                                 label="published Pangu Ultra MoE shape"))
            gap = 1 - pub.mfu_fraction / best.mfu_fraction
            i = rows.index(next(r for r in rows if r.published_config))
            text = (f"published: #{int(pub.mfu_rank)} of {len(ok)}\n"
                    f"MFU {pub.mfu_fraction:.1%}, {gap:.1%} below\n"
                    f"the best ({best.mfu_fraction:.1%})")
            a = alt.get(tuple(pub[k] for k in SHAPE))
            if a is not None:
                top = max(alt.values(), key=lambda r: r["mfu_fraction"])
                text += (f"\nat {int(other[-1]):,}: #{int(a['mfu_rank'])} of {len(alt)},\n"
                         f"{1 - a['mfu_fraction'] / top['mfu_fraction']:.1%} below the best")
            ax.annotate(text,
                        xy=(xmax * 1.02, i), xytext=(10, 0), textcoords="offset points",
                        va="center", fontsize=9, color=HIGHLIGHT,
                        arrowprops={"arrowstyle": "->", "color": HIGHLIGHT})
        ax.set_xlim(0, xmax * 1.6)
        ax.legend(handles=handles, loc="lower right")
    return save_figure(fig, out / "mfu_ranking.png")


def main(argv=None) -> int:
    args = plot_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    df = read_results(args.out)
    for path in (plot_pareto(df, args.out), plot_ranking(df, args.out)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
