"""Figures of the MoGE study from results.csv only.

imbalance_vs_ep.png       (a) imbalance score and max/mean EP-rank load vs EP size, by router
step_time_vs_ep.png       (b) simulated step time vs EP size, by router (forced-uniform reference)
p_imbalance_vs_tokens.png (c) Monte Carlo P(IS > 0) and mean IS vs tokens per batch

Usage: python experiments/moge_vs_moe/plot.py [--out DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import plot_parser, read_results  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.plot.style import save_figure, style  # noqa: E402

ROUTER_STYLE = {
    "topk": {"color": "tab:blue", "marker": "o", "label": "top-k"},
    "group_limited": {"color": "tab:orange", "marker": "s", "label": "group-limited (4 of 8 groups)"},
    "moge": {"color": "tab:green", "marker": "^", "label": "MoGE (1 expert per group)"},
}
REFERENCE = {"color": "black", "linestyle": "--", "marker": "", "label": "forced-uniform load (ideal)"}
SKEW_TITLE = {"balanced": "skew: balanced (i.i.d. logits)", "aux_loss": "skew: aux_loss",
              "no_balancing": "skew: no_balancing"}
MODEL_TITLE = {"pangu-pro-moe-72b": "Pangu Pro MoE 72B (64 experts, K=8)",
               "deepseek-v3": "DeepSeek-V3 (256 experts, K=8)"}


def _ordered(values, order):
    return [v for v in order if v in set(values)] + sorted(set(values) - set(order))


def _ep_axis(ax, eps, bottom: bool) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(eps)
    ax.set_xticklabels([str(e) for e in eps])
    ax.minorticks_off()
    if bottom:
        ax.set_xlabel("EP size (devices)")


def plot_imbalance(step, out: Path) -> Path:
    models = _ordered(step["model"], list(MODEL_TITLE))
    skews = _ordered(step.loc[step["router"] != "balanced", "skew"], list(SKEW_TITLE))
    metrics = [("imbalance_score_ratio", "imbalance score\n(max-min)/|X| (ratio)"),
               ("max_over_mean_device_load_ratio", "max/mean EP-rank load\n(ratio)")]
    rows = [(m, met) for m in models for met in metrics]
    eps = sorted(step["ep_devices"].unique())
    with style():
        fig = Figure(figsize=(4.0 * len(skews), 2.6 * len(rows) + 0.8), layout="constrained")
        axes = fig.subplots(len(rows), len(skews), squeeze=False, sharex=True)
        for i, (model, (col, ylabel)) in enumerate(rows):
            for j, skew in enumerate(skews):
                ax = axes[i][j]
                d = step[(step["model"] == model) & (step["skew"] == skew)]
                for router, st in ROUTER_STYLE.items():
                    r = d[d["router"] == router].sort_values("ep_devices")
                    if len(r):
                        ax.plot(r["ep_devices"], r[col], **st)
                _ep_axis(ax, eps, i == len(rows) - 1)
                ax.set_ylim(bottom=0 if col.startswith("imbalance") else 0.95)
                if j == 0:
                    ax.set_ylabel(ylabel)
                ax.set_title(f"{MODEL_TITLE.get(model, model)}\n{SKEW_TITLE.get(skew, skew)}",
                             fontsize=9)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        fig.suptitle("(a) Load balance over EP ranks vs EP size, by router "
                     "(simulated step: every MoE layer x 8 micro-batch rounds; |X| = 4096 x EP tokens)")
    return save_figure(fig, out / "imbalance_vs_ep.png")


def plot_step_time(step, out: Path) -> Path:
    models = _ordered(step["model"], list(MODEL_TITLE))
    skews = _ordered(step.loc[step["router"] != "balanced", "skew"], list(SKEW_TITLE))
    eps = sorted(step["ep_devices"].unique())
    with style():
        fig = Figure(figsize=(4.4 * len(skews), 3.4 * len(models) + 0.8), layout="constrained")
        axes = fig.subplots(len(models), len(skews), squeeze=False, sharex=True)
        for i, model in enumerate(models):
            dm = step[step["model"] == model]
            ref = dm[dm["router"] == "balanced"].sort_values("ep_devices")
            first = dm.iloc[0]
            layout = (f"{first['hardware']}, {int(first['num_devices'])} dev., "
                      f"pp {int(first['pp_stages'])}, dp {int(first['dp_ranks'])}")
            for j, skew in enumerate(skews):
                ax = axes[i][j]
                d = dm[dm["skew"] == skew]
                for router, st in ROUTER_STYLE.items():
                    r = d[d["router"] == router].sort_values("ep_devices")
                    if len(r):
                        ax.plot(r["ep_devices"], r["step_time_s"], **st)
                if len(ref):
                    ax.plot(ref["ep_devices"], ref["step_time_s"], **REFERENCE)
                _ep_axis(ax, eps, i == len(models) - 1)
                ax.set_ylim(bottom=0)
                if j == 0:
                    ax.set_ylabel("step time (s)")
                ax.set_title(f"{MODEL_TITLE.get(model, model)}\n{layout}\n"
                             f"{SKEW_TITLE.get(skew, skew)}", fontsize=9)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        executor = ", ".join(sorted(step["executor"].unique()))
        fig.suptitle(f"(b) Simulated training-step time vs EP size, by router "
                     f"(executor: {executor}; flat all-to-all, full recompute, bf16)")
    return save_figure(fig, out / "step_time_vs_ep.png")


def plot_monte_carlo(mc, out: Path) -> Path:
    skews = _ordered(mc["skew"], list(SKEW_TITLE))
    colors = {s: c for s, c in zip(skews, ["tab:blue", "tab:purple", "tab:red", "tab:gray"],
                                   strict=False)}
    first = mc.iloc[0]
    shape = str(first["model"]).replace("_", ", ")
    trials = int(first["num_samples"])
    with style():
        fig = Figure(figsize=(11.0, 4.4), layout="constrained")
        ax_p, ax_m = fig.subplots(1, 2)
        for skew in skews:
            for router, ls, mk in (("topk", "-", "o"), ("moge", ":", "^")):
                d = mc[(mc["skew"] == skew) & (mc["router"] == router)].sort_values("tokens_per_batch")
                if not len(d):
                    continue
                name = "top-k" if router == "topk" else "MoGE"
                ax_p.plot(d["tokens_per_batch"], d["p_imbalance_gt0_prob"], linestyle=ls, marker=mk,
                          color=colors[skew], label=f"{name}, skew {skew}",
                          markersize=7 if router == "topk" else 5)
                if router == "topk":
                    ax_m.plot(d["tokens_per_batch"], d["imbalance_score_ratio"], linestyle=ls,
                              marker=mk, color=colors[skew], label=f"{name}, skew {skew}")
        ticks = [int(t) for t in sorted(mc["tokens_per_batch"].unique())]
        ticks = ticks[::2] if len(ticks) > 7 else ticks
        for ax in (ax_p, ax_m):
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(int(t)) for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("tokens per batch |X| (tokens)")
        ax_p.set_ylim(-0.05, 1.05)
        ax_p.set_ylabel("P(imbalance score > 0) (probability)")
        ax_p.set_title(f"P(IS > 0), {trials} batches per point")
        ax_p.legend(fontsize=8, loc="center right")
        ax_m.set_yscale("log")
        ax_m.set_ylabel("mean imbalance score (max-min)/|X| (ratio)")
        ax_m.set_title("mean IS of top-k (MoGE: IS = 0 at every |X|, not drawable on a log axis)",
                       fontsize=9)
        ax_m.legend(fontsize=8)
        fig.suptitle(f"(c) Monte Carlo of the Pangu Pro MoE analysis: {shape} "
                     f"(N experts, top-K, M devices = M MoGE groups), token-level routing")
    return save_figure(fig, out / "p_imbalance_vs_tokens.png")


def main(argv=None) -> None:
    args = plot_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    df = read_results(args.out)
    step, mc = df[df["part"] == "step"], df[df["part"] == "mc"]
    paths = []
    if len(step):
        paths += [plot_imbalance(step, args.out), plot_step_time(step, args.out)]
    if len(mc):
        paths.append(plot_monte_carlo(mc, args.out))
    for p in paths:
        print(p)


if __name__ == "__main__":
    main()
