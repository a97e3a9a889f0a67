"""Figure of the NPU vs GPU study, from results.csv only.

throughput_per_device_and_kw.png: one panel per model; for every hardware profile two bars, the
throughput per device (left axis) and per kW of device power (right axis) of the best layout the
search found, the layout and MFU written under each profile; profiles where the model fits in no
layout are marked "does not fit".

Usage: python experiments/npu_vs_gpu/plot.py [--out DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import plot_parser, read_results  # noqa: E402

from sim.plot import save_figure  # noqa: E402
from sim.plot.style import FAINT, add_footnote, style  # noqa: E402

PER_DEVICE, PER_KW = "C0", "C2"
WIDTH = 0.38
MODEL_NAMES = {"deepseek-v3": "DeepSeek-V3 (671B total, 37B active)",
               "pangu-ultra-moe-718b": "Pangu Ultra MoE (718B total, 39B active)"}


def _tick(r) -> str:
    name = f"{r.hardware}\n({r.hardware_kind.upper()})"
    if r.status != "ok":
        return f"{name}\ndoes not fit"
    return (f"{name}\nTP{int(r.tp)} PP{int(r.pp)} VPP{int(r.vpp)}\nEP{int(r.ep)} mbs"
            f"{int(r.micro_batch_sequences)}\n{r.recompute} rc\nMFU {r.mfu_fraction:.1%}")


def _panel(ax, d) -> None:
    x = np.arange(len(d))
    ok = (d["status"] == "ok").to_numpy()
    dev = d["tokens_per_s_per_device"].to_numpy(dtype=float)
    kw = d["tokens_per_s_per_kw"].to_numpy(dtype=float)
    ax.bar(x - WIDTH / 2, np.where(ok, dev, 0), WIDTH, color=PER_DEVICE)
    ax2 = ax.twinx()
    ax2.bar(x + WIDTH / 2, np.where(ok, kw, 0), WIDTH, color=PER_KW)
    ax2.grid(False)
    top = np.nanmax(np.r_[dev[ok], kw[ok], 1.0]) * 1.15
    for a in (ax, ax2):
        a.set_ylim(0, top)   # one scale: per-device and per-kW bars compare by height
    for i in np.flatnonzero(~ok):
        ax.text(x[i], top * 0.05, "does not fit\nin any layout", ha="center", va="bottom",
                fontsize=9, color=FAINT, rotation=90)
    for i in np.flatnonzero(ok):
        ax.text(x[i] - WIDTH / 2, dev[i], f"{dev[i]:,.0f}", ha="center", va="bottom", fontsize=9,
                rotation=90, color=PER_DEVICE)
        if np.isfinite(kw[i]):
            ax2.text(x[i] + WIDTH / 2, kw[i], f"{kw[i]:,.0f}", ha="center", va="bottom",
                     fontsize=9, rotation=90, color=PER_KW)
    ax.set_xticks(x, [_tick(r) for r in d.itertuples()], fontsize=9)
    ax.set_ylabel("tokens/s per device", color=PER_DEVICE)
    ax2.set_ylabel("tokens/s per kW of device power", color=PER_KW)


def main(argv=None) -> int:
    args = plot_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    df = read_results(args.out)
    models = sorted(df["model"].unique())
    first = df.iloc[0]
    with style():
        fig = Figure(figsize=(max(7.0, 1.45 * df["hardware"].nunique() + 1.5), 5.2 * len(models)),
                     layout="constrained")
        axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
        for ax, m in zip(axes, models, strict=True):
            d = df[df["model"] == m].sort_values(["hardware_kind", "hardware"],
                                                 ascending=[False, True])  # NPUs first
            _panel(ax, d)
            ax.set_title(f"{MODEL_NAMES.get(m, m)}: best layout per profile")
        axes[0].legend(handles=[Patch(color=PER_DEVICE, label="tokens/s per device (left axis)"),
                                Patch(color=PER_KW, label="tokens/s per kW (right axis)")],
                       loc="upper left")
        fig.suptitle(f"NPU vs GPU training throughput: {int(first.num_devices):,} devices, "
                     f"{int(first.global_batch_sequences):,} x {int(first.seq_len_tokens):,}-token "
                     "sequences per step")
        add_footnote(fig, "Each profile: the layout with the most tokens/s among those that fit "
                          "(TP, PP, VPP, EP, micro-batch size, recompute searched; analytic "
                          "screen, best re-run with the DES; rc: activation recompute). Power: "
                          "device board/module power only (no host, network or cooling); Ascend "
                          "powers are assumptions.")
    path = save_figure(fig, args.out / "throughput_per_device_and_kw.png")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
