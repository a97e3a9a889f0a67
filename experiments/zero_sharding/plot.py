"""Figures of the ZeRO-stage study from results.csv only.

zero_throughput_vs_devices.png  tokens/s per device vs GPUs, one line per ZeRO stage and gradient
                                dtype (hollow: does not fit in memory); the pipelined layout as a point
zero_memory_256.png             peak memory per device at 256 GPUs split into its parts, per ZeRO stage
                                (bf16 reductions) and for the pipelined layout, with the device limit

Usage: python experiments/zero_sharding/plot.py [--out DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import plot_parser, read_results  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.plot.style import save_figure, style  # noqa: E402

FLAT = "TP2 EP8 PP1 mbs4 full"
STAGE_COLOR = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
DTYPE_LINE = {"bf16": "-", "fp32": "--"}
PARTS = (("weights_gib", "weights"), ("gradients_gib", "gradients"), ("optimizer_gib", "optimizer states"),
         ("activations_gib", "activations"), ("transient_gib", "transient"))


def plot_throughput(df, out: Path) -> Path:
    flat = df[df["layout"] == FLAT]
    with style():
        fig = Figure(figsize=(7.4, 4.8), layout="constrained")
        ax = fig.subplots()
        for (z, g), d in flat.groupby(["zero_stage", "grad_reduce_dtype"]):
            d = d.sort_values("num_devices")
            c, ls = STAGE_COLOR[int(z)], DTYPE_LINE[g]
            ax.plot(d["num_devices"], d["tokens_per_s_per_device"], color=c, linestyle=ls,
                    label=f"ZeRO-{int(z)}, {g} gradient reduction")
            fit = d["fits_memory_bool"].astype(bool)
            ax.scatter(d["num_devices"][fit], d["tokens_per_s_per_device"][fit], color=c, zorder=3)
            ax.scatter(d["num_devices"][~fit], d["tokens_per_s_per_device"][~fit], facecolors="none",
                       edgecolors=c, zorder=3)
        for _, r in df[df["layout"] != FLAT].iterrows():
            ax.scatter([r["num_devices"]], [r["tokens_per_s_per_device"]], marker="D", color="black", zorder=4,
                       label=f"{r['layout']}, ZeRO-{int(r['zero_stage'])}, {r['grad_reduce_dtype']}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(flat["num_devices"].unique()))
        ax.set_xticklabels([str(int(n)) for n in sorted(flat["num_devices"].unique())])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel("H100 GPUs (global batch 2,048 x 4,096 tokens)")
        ax.set_ylabel("tokens/s per GPU")
        ax.set_title(f"Qwen3-235B-A22B, {FLAT}: ZeRO stage and gradient dtype\n"
                     "filled: fits in 75.6 GiB; hollow: does not fit")
        ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, out / "zero_throughput_vs_devices.png")


def plot_memory(df, out: Path) -> Path:
    d = df[(df["num_devices"] == 256) & (df["grad_reduce_dtype"] == "bf16")]
    d = d.sort_values(["layout", "zero_stage"], ascending=[False, True])
    labels = [f"{r['layout']}\nZeRO-{int(r['zero_stage'])}" for _, r in d.iterrows()]
    with style():
        fig = Figure(figsize=(7.4, 4.8), layout="constrained")
        ax = fig.subplots()
        bottom = [0.0] * len(d)
        for col, name in PARTS:
            vals = list(d[col])
            ax.bar(range(len(d)), vals, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.axhline(float(d["memory_limit_gib"].iloc[0]), color="black", linestyle="--", label="device limit")
        ax.set_xticks(range(len(d)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("peak memory per GPU, worst stage (GiB)")
        ax.set_title("Qwen3-235B-A22B on 256 H100: where the memory goes (bf16 gradient reduction)")
        ax.legend(fontsize=7)
    return save_figure(fig, out / "zero_memory_256.png")


def main(argv=None) -> None:
    args = plot_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    df = read_results(args.out)
    for p in (plot_throughput(df, args.out), plot_memory(df, args.out)):
        print(p)


if __name__ == "__main__":
    main()
