#!/usr/bin/env python3
"""Measure GEMM throughput on a GPU at the shapes the validation runs use: burst and sustained.

Run on a machine with an NVIDIA GPU and PyTorch (nothing from moe-sim is imported, so the device needs
only torch; pynvml is used for clocks and power when present):

    python3 benchmarks/gpu/gemm_sweep.py --out gemm_h100.csv
    python3 benchmarks/gpu/fit_curve.py gemm_h100.csv --hardware h100-sxm     # back on any machine

Input: benchmarks/gpu/shapes.csv (written by benchmarks/gpu/shapes.py from validation/*.yaml): one row per
distinct (m, n, k, precision) with its share of the step's GEMM FLOPs and the local-expert group size.

For every shape:
- burst: the median of ``--batches`` CUDA-event-timed batches of ``--iters`` GEMMs after a warm-up, the
  way isolated-GEMM tables (and the profiles' anchors) are measured;
- sustained (the ``--anchors`` shapes with the largest FLOP share): the same GEMM issued back to back for
  ``--sustain-s`` seconds, so that the clocks settle at the board power limit as they do in a training run
  that keeps the tensor cores busy for hours, then timed over the last ``--tail-s`` seconds;
- grouped shapes (routed experts) are also timed as one batched GEMM of their local experts (torch.bmm),
  the balanced-load case of a grouped GEMM.
Inputs are standard-normal (zeros draw less power and run faster: Horace He, "Strangely, Matrix
Multiplications on GPUs Run Faster When Given 'Predictable' Data!", thonking.ai 2024) and rotate over
enough buffers to exceed the L2 cache, so that operands come from HBM as they do in training.
FP8 rows use torch._scaled_mm (cuBLASLt, per-tensor scales) with e4m3 operands: DeepSeek-V3's DeepGEMM
uses 1x128 / 128x128 block scales, which this does not reproduce (stated in the CSV's notes column).

The card's clocks and power limit are left as found. Output: one CSV row per (shape, mode).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time

PEAK_TFLOPS = {   # dense peaks by device-name substring (NVIDIA datasheets; H800/H200 share the H100 SXM die)
    "H100": {"bf16": 989.4, "fp8": 1978.9},
    "H800": {"bf16": 989.4, "fp8": 1978.9},
    "H200": {"bf16": 989.4, "fp8": 1978.9},
    "A100": {"bf16": 312.0, "fp8": None},
}
COLUMNS = ("device", "torch", "precision", "m", "n", "k", "grouped", "share", "mode", "tflops", "efficiency",
           "seconds_timed", "sm_clock_mhz", "power_w", "notes")


def read_shapes(path: str) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in ("m", "n", "k", "grouped"):
            r[key] = int(r[key])
        r["share"] = float(r["share"])
    return rows


def cuda_torch(prog: str):
    """The torch module when a CUDA device is visible; else None after one line on stderr."""
    try:
        import torch
    except ImportError:
        print(f"{prog}: PyTorch is not installed here; run this on the GPU machine", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        print(f"{prog}: no CUDA device visible", file=sys.stderr)
        return None
    return torch


def peak_for(name: str, precision: str) -> float | None:
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks.get(precision)
    return None


class Nvml:
    """SM clock (MHz) and board power (W) of device 0, when pynvml is importable."""

    def __init__(self):
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nv = pynvml
            self.h = pynvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or 0))
        except Exception:
            self.nv = None

    def read(self) -> tuple[float, float]:
        if self.nv is None:
            return math.nan, math.nan
        try:
            clk = self.nv.nvmlDeviceGetClockInfo(self.h, self.nv.NVML_CLOCK_SM)
            pw = self.nv.nvmlDeviceGetPowerUsage(self.h) / 1000.0
            return float(clk), float(pw)
        except Exception:
            return math.nan, math.nan


def make_op(torch, prec: str, m: int, n: int, k: int, groups: int, device: str, l2_bytes: int):
    """A zero-argument callable running one GEMM (or one batched GEMM of ``groups``) on a rotating buffer."""
    elt = 1 if prec == "fp8" else 2
    one = (m * k + k * n) * elt * max(groups, 1)
    nbuf = max(2, min(16, math.ceil(3 * l2_bytes / max(one, 1))))
    gen = torch.Generator(device=device).manual_seed(0)
    if prec == "fp8":
        f8 = torch.float8_e4m3fn
        a = [torch.randn(m, k, device=device, generator=gen).to(f8) for _ in range(nbuf)]
        b = [torch.randn(n, k, device=device, generator=gen).to(f8).t() for _ in range(nbuf)]  # column-major B
        one_s = torch.ones((), device=device)
        state = {"i": 0}

        def op():
            i = state["i"] = (state["i"] + 1) % nbuf
            return torch._scaled_mm(a[i], b[i], scale_a=one_s, scale_b=one_s, out_dtype=torch.bfloat16)
        return op, "fp8 e4m3 x e4m3 -> bf16, per-tensor scales (torch._scaled_mm)"
    dt = torch.bfloat16
    if groups > 1:
        a = [torch.randn(groups, m, k, device=device, dtype=dt, generator=gen) for _ in range(nbuf)]
        b = [torch.randn(groups, k, n, device=device, dtype=dt, generator=gen) for _ in range(nbuf)]
        state = {"i": 0}

        def op():
            i = state["i"] = (state["i"] + 1) % nbuf
            return torch.bmm(a[i], b[i])
        return op, f"bf16 batched GEMM of {groups} (torch.bmm)"
    a = [torch.randn(m, k, device=device, dtype=dt, generator=gen) for _ in range(nbuf)]
    b = [torch.randn(k, n, device=device, dtype=dt, generator=gen) for _ in range(nbuf)]
    state = {"i": 0}

    def op():
        i = state["i"] = (state["i"] + 1) % nbuf
        return torch.mm(a[i], b[i])
    return op, "bf16 torch.mm"


def time_batches(torch, op, iters: int, batches: int) -> float:
    """Median seconds per call over ``batches`` event-timed batches of ``iters`` calls."""
    per = []
    for _ in range(batches):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters):
            op()
        e.record()
        e.synchronize()
        per.append(s.elapsed_time(e) / 1e3 / iters)
    return statistics.median(per)


def sustained(torch, op, seconds: float, tail: float, per_call: float) -> tuple[float, float]:
    """Seconds per call over the last ``tail`` seconds of ``seconds`` of back-to-back calls; and the timed span."""
    chunk = max(1, int(0.05 / max(per_call, 1e-7)))        # ~50 ms of work per host round trip
    t_end = time.perf_counter() + max(0.0, seconds - tail)
    while time.perf_counter() < t_end:
        for _ in range(chunk):
            op()
        torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls = 0
    s.record()
    t_end = time.perf_counter() + tail
    while time.perf_counter() < t_end:
        for _ in range(chunk):
            op()
        calls += chunk
        torch.cuda.synchronize()
    e.record()
    e.synchronize()
    span = s.elapsed_time(e) / 1e3
    return span / calls, span


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=os.path.join(here, "shapes.csv"))
    ap.add_argument("--out", required=True, help="CSV to write")
    ap.add_argument("--precisions", default="bf16,fp8", help="which of the shapes' precisions to measure")
    ap.add_argument("--hardware", default="h100-sxm,h800,h200",
                    help="profiles whose entries' shapes to measure (the shapes.csv hardware column)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--batches", type=int, default=7)
    ap.add_argument("--anchors", type=int, default=6, help="shapes (largest FLOP share first) timed sustained")
    ap.add_argument("--sustain-s", type=float, default=30.0)
    ap.add_argument("--tail-s", type=float, default=5.0)
    ap.add_argument("--max-shapes", type=int, default=0, help="0: all")
    args = ap.parse_args(argv)
    torch = cuda_torch("gemm_sweep")
    if torch is None:
        return 2
    dev = "cuda"
    name = torch.cuda.get_device_name(0)
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20)
    want = {p.strip() for p in args.precisions.split(",") if p.strip()}
    hws = {h.strip() for h in args.hardware.split(",") if h.strip()}
    best: dict = {}
    for r in read_shapes(args.shapes):
        key = (r["m"], r["n"], r["k"], r["precision"], r["grouped"])
        if r["precision"] in want and r["hardware"] in hws and r["share"] > best.get(key, {"share": -1.0})["share"]:
            best[key] = r
    shapes = sorted(best.values(), key=lambda r: -r["share"])
    if args.max_shapes:
        shapes = shapes[: args.max_shapes]
    anchors = {(r["m"], r["n"], r["k"], r["precision"]) for r in shapes[: args.anchors]}
    nv = Nvml()
    out_rows = []
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in shapes:
            prec, m, n, k, g = r["precision"], r["m"], r["n"], r["k"], r["grouped"]
            peak = peak_for(name, prec)
            if peak is None:
                continue
            modes = [("burst", 1)]
            if g > 1 and prec == "bf16":
                modes.append(("burst_grouped", g))
            for mode, groups in modes:
                op, note = make_op(torch, prec, m, n, k, groups, dev, l2)
                for _ in range(5):
                    op()
                torch.cuda.synchronize()
                per = time_batches(torch, op, args.iters, args.batches)
                clk, pw = nv.read()
                fl = 2.0 * m * n * k * groups
                row = dict(device=name, torch=torch.__version__, precision=prec, m=m, n=n, k=k, grouped=groups,
                           share=f"{r['share']:.6f}", mode=mode, tflops=f"{fl / per / 1e12:.2f}",
                           efficiency=f"{fl / per / 1e12 / peak:.4f}", seconds_timed=f"{per * args.iters * args.batches:.4f}",
                           sm_clock_mhz=clk, power_w=pw, notes=note)
                w.writerow(row)
                out_rows.append(row)
                if mode == "burst" and (m, n, k, prec) in anchors:
                    per_s, span = sustained(torch, op, args.sustain_s, args.tail_s, per)
                    clk, pw = nv.read()
                    row = dict(row, mode="sustained", tflops=f"{fl / per_s / 1e12:.2f}",
                               efficiency=f"{fl / per_s / 1e12 / peak:.4f}", seconds_timed=f"{span:.2f}",
                               sm_clock_mhz=clk, power_w=pw)
                    w.writerow(row)
                    out_rows.append(row)
                f.flush()
                del op
                torch.cuda.empty_cache()
    print(f"{'precision':9s} {'m':>6s} {'n':>6s} {'k':>6s} {'grp':>4s} {'mode':>14s} {'TFLOPS':>8s} {'eff':>6s} {'MHz':>6s} {'W':>6s}")
    for row in out_rows:
        print(f"{row['precision']:9s} {row['m']:6d} {row['n']:6d} {row['k']:6d} {row['grouped']:4d} {row['mode']:>14s} "
              f"{row['tflops']:>8s} {row['efficiency']:>6s} {row['sm_clock_mhz']!s:>6s} {row['power_w']!s:>6s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
