#!/usr/bin/env python3
"""Measure the non-GEMM-table costs the profiles assume, on one GPU: grouped expert GEMMs under balanced and
imbalanced routing, memory-bound kernels, fused attention, kernel launch cost, and clocks under a sustained load.

Run on a machine with an NVIDIA GPU and PyTorch (nothing from moe-sim is imported; numpy and pynvml are used
when present):

    python3 benchmarks/gpu/kernel_sweep.py --out-dir OUT [--sections clocks,launch,memory,attention,grouped,duty]
    python3 benchmarks/gpu/compare_kernels.py OUT --hardware h100-sxm     # back on any machine

Sections, each written to its own CSV in OUT (a section that fails writes its error and the rest go on):

- grouped.csv: every case of benchmarks/gpu/grouped.csv (the validation entries' routed-expert GEMMs whose row
  dimension is the token count), plus a few finer-grained cases, timed three ways: one grouped GEMM
  (torch._grouped_mm, CUTLASS on sm_90), the same experts as back-to-back torch.mm calls (a sequential MLP),
  and each expert's torch.mm alone (so the sum of isolated GEMMs the cost model assumes can be compared). Token
  counts per expert: balanced, and drawn (numpy, fixed seed) as a multinomial over the experts with Dirichlet
  weights of concentration 10 (mild skew) and 1 (heavy skew), the group's total held equal.
- memory.csv: copy, add, SwiGLU's silu(a) * b and a row gather (token permutation) at 256 MiB-1 GiB: bytes
  moved / time, as a fraction of the datasheet HBM bandwidth given with --hbm-GBps.
- attention.csv: torch scaled_dot_product_attention, causal, BF16, per backend (cuDNN, flash) at sequence
  lengths 512-16384 with 16K tokens per call (FlashAttention-3 paper's setting: batch x seq = 16384, 16 heads of
  128), head dims 128 and MLA's 192/128; forward, and backward as (forward + backward) - forward. FLOPs count
  the causal half: forward 4 * b * h * s^2 * d / 2 (d the mean of the QK and V head dims), backward 2.5x that.
- launch.csv: back-to-back tiny kernels (1-element add) and tiny GEMMs: seconds per kernel.
- clocks.csv: one large GEMM back to back for --clock-s seconds, one row per 0.25 s (TFLOPS, SM clock, power):
  how the clocks settle at the power limit (run it first, on a cool card, to see the transition).
- power.csv: alternating phases of two kernels (a large or a mid-size GEMM, fused attention forward+backward,
  a 256 MiB copy, or near-idle sleep) for a few seconds per pattern: the rate inside the first kind's phases,
  the fraction of time it runs, and the median SM clock and board power over the second half.
- duty.csv: the same GEMM in bursts of on_ms separated by off_ms of near-idle GPU (torch.cuda._sleep), a few
  seconds per pattern: the GEMM rate inside the bursts, to show how much of the burst clock a training step
  that interleaves GEMMs with communication and memory-bound work can keep.

Inputs are standard-normal and rotate past L2 as in gemm_sweep.py. Clocks and power limits are left as found.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
import traceback

# the sibling script: its folder is on sys.path when this one runs
from gemm_sweep import Nvml, cuda_torch, peak_for, time_batches

HBM_GBPS = {"H100": 3350.0, "H800": 3350.0, "H200": 4800.0, "A100": 2039.0}       # NVIDIA datasheets (SXM)
EXTRA_GROUPED = [   # finer-grained expert layouts than the validation entries (many local experts, few tokens each)
    # (name, pass, groups, m, n, k): DeepSeek-V3 expert fc1/fc2 (h 7168, f 2048) with 32 and 8 local experts
    ("extra.dsv3_fc1", "fprop", 32, 128, 4096, 7168),
    ("extra.dsv3_fc2", "fprop", 32, 128, 7168, 2048),
    ("extra.dsv3_fc1", "fprop", 32, 512, 4096, 7168),
    ("extra.dsv3_fc2", "fprop", 32, 512, 7168, 2048),
    ("extra.dsv3_fc1", "fprop", 8, 1024, 4096, 7168),
    ("extra.dsv3_fc2", "fprop", 8, 1024, 7168, 2048),
]


def device_lookup(table: dict, name: str):
    for key, v in table.items():
        if key in name:
            return v
    return None


def timed(torch, fn, iters: int = 10, batches: int = 5, warmup: int = 3) -> float:
    """Median seconds per call over event-timed batches."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    return time_batches(torch, fn, iters, batches)


class Writer:
    def __init__(self, path: str, columns: tuple):
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=columns)
        self.w.writeheader()

    def row(self, **kw):
        self.w.writerow(kw)
        self.f.flush()
        print(" ".join(f"{k}={v}" for k, v in kw.items() if k not in ("device", "torch")), flush=True)

    def close(self):
        self.f.close()


# ----------------------------------------------------------------------------------------------- grouped
def token_counts(np_rng, groups: int, m: int, kind: str) -> list[int]:
    total = groups * m
    if kind == "balanced":
        return [m] * groups
    alpha = {"mild": 10.0, "heavy": 1.0}[kind]
    w = np_rng.dirichlet([alpha] * groups)
    return [int(c) for c in np_rng.multinomial(total, w)]


def grouped_op(torch, counts, n, k, l2, gen):
    """(grouped, sequential, per-expert) callables over rotating buffers for one set of token counts."""
    total = sum(counts)
    g = len(counts)
    one = (total * k + g * k * n) * 2
    nbuf = max(2, min(8, math.ceil(3 * l2 / max(one, 1))))
    A = [torch.randn(max(total, 1), k, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(nbuf)]
    # B as (G, N, K) transposed to (G, K, N): the column-major layout CUTLASS grouped GEMMs take on sm_90
    B = [torch.randn(g, n, k, device="cuda", dtype=torch.bfloat16, generator=gen).transpose(-2, -1) for _ in range(nbuf)]
    offs = torch.tensor([sum(counts[: i + 1]) for i in range(g)], device="cuda", dtype=torch.int32)
    bounds = [(sum(counts[:i]), sum(counts[: i + 1])) for i in range(g)]
    st = {"i": 0}

    def grouped():
        i = st["i"] = (st["i"] + 1) % nbuf
        return torch._grouped_mm(A[i], B[i], offs=offs)

    def sequential():
        i = st["i"] = (st["i"] + 1) % nbuf
        for e, (lo, hi) in enumerate(bounds):
            if hi > lo:
                torch.mm(A[i][lo:hi], B[i][e])

    def single(e):
        lo, hi = bounds[e]

        def f():
            i = st["i"] = (st["i"] + 1) % nbuf
            return torch.mm(A[i][lo:hi], B[i][e])
        return f
    return grouped, sequential, single


def section_grouped(torch, args, name, peak, l2, w):
    import numpy as np
    cases = []
    with open(args.grouped, newline="") as f:
        for r in csv.DictReader(f):
            if r["hardware"] in args.hardware:
                cases.append((r["name"], r["pass"], int(r["groups"]), int(r["m"]), int(r["n"]), int(r["k"])))
    cases = sorted(set(cases)) + EXTRA_GROUPED
    if args.quick:
        cases = cases[:2]
    rng = np.random.default_rng(20261122)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for case in cases:
        cname, pas, g, m, n, k = case
        for kind in ("balanced", "mild", "heavy"):
            counts = token_counts(rng, g, m, kind)
            grouped, sequential, single = grouped_op(torch, counts, n, k, l2, gen)
            fl = 2.0 * sum(counts) * n * k
            try:
                t_g = timed(torch, grouped)
            except Exception as e:   # noqa: BLE001 - report the kernel's refusal, keep measuring
                t_g = math.nan
                print(f"grouped_mm failed: {e}", file=sys.stderr)
            t_s = timed(torch, sequential)
            t_each = [timed(torch, single(e), iters=5, batches=3) if c > 0 else 0.0 for e, c in enumerate(counts)]
            w.row(device=name, torch=torch.__version__, case=cname, pass_=pas, groups=g, m_balanced=m, n=n, k=k,
                  routing=kind, counts=";".join(map(str, counts)), flops=f"{fl:.6g}",
                  grouped_s=f"{t_g:.6e}", sequential_s=f"{t_s:.6e}", sum_isolated_s=f"{sum(t_each):.6e}",
                  max_isolated_s=f"{max(t_each):.6e}",
                  grouped_eff=f"{fl / t_g / 1e12 / peak:.4f}" if t_g == t_g else "nan",
                  sequential_eff=f"{fl / t_s / 1e12 / peak:.4f}")
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- memory
def section_memory(torch, args, name, hbm, w):
    import torch.nn.functional as F
    sizes = [256 * 2**20, 1024 * 2**20] if not args.quick else [64 * 2**20]
    for nbytes in sizes:
        n = nbytes // 2
        x = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        y = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(x)
        hidden = 7168
        rows = n // hidden
        xr = x[: rows * hidden].view(rows, hidden)
        perm = torch.randperm(rows, device="cuda")
        ops = {
            "copy": (lambda x=x, out=out: out.copy_(x), 2 * nbytes),
            "add": (lambda x=x, y=y, out=out: torch.add(x, y, out=out), 3 * nbytes),
            "silu_mul": (lambda x=x, y=y: F.silu(x) * y, 5 * nbytes),      # silu: read + write; mul: 2 reads + write
            "gather_rows": (lambda xr=xr, perm=perm: xr.index_select(0, perm), 2 * rows * hidden * 2),
        }
        for op, (fn, moved) in ops.items():
            t = timed(torch, fn, iters=10, batches=5)
            w.row(device=name, torch=torch.__version__, op=op, bytes=nbytes, bytes_moved=moved, seconds=f"{t:.6e}",
                  GBps=f"{moved / t / 1e9:.1f}", fraction_of_datasheet=f"{moved / t / 1e9 / hbm:.4f}")
        ops.clear()
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- attention
def _attention_times(torch, F, sdpa_kernel, backend, b, heads, s, dqk, dv) -> tuple[float, float]:
    """(forward seconds, backward seconds) of one causal SDPA call on one backend."""
    q = torch.randn(b, heads, s, dqk, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(b, heads, s, dqk, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(b, heads, s, dv, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    go = torch.randn(b, heads, s, dv, device="cuda", dtype=torch.bfloat16)
    with sdpa_kernel([backend]):
        def fwd():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def fwd_bwd():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), go)
        t_f = timed(torch, fwd, iters=10, batches=5)
        t_fb = timed(torch, fwd_bwd, iters=5, batches=5)
    return t_f, t_fb - t_f


def section_attention(torch, args, name, peak, w):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
    seqs = [512, 1024, 2048, 4096, 8192, 16384] if not args.quick else [2048]
    dims = [(16, 128, 128), (16, 192, 128)]     # heads, qk head dim, v head dim
    for bname, be in backends.items():
        for heads, dqk, dv in dims:
            for s in seqs:
                b = max(1, 16384 // s)
                try:
                    t_f, t_b = _attention_times(torch, F, sdpa_kernel, be, b, heads, s, dqk, dv)
                    fl_f = 4.0 * b * heads * s * s * (dqk + dv) / 2.0 / 2.0
                    w.row(device=name, torch=torch.__version__, backend=bname, heads=heads, d_qk=dqk, d_v=dv, batch=b,
                          seq=s, fwd_s=f"{t_f:.6e}", bwd_s=f"{t_b:.6e}",
                          fwd_eff=f"{fl_f / t_f / 1e12 / peak:.4f}", bwd_eff=f"{2.5 * fl_f / t_b / 1e12 / peak:.4f}",
                          error="")
                except Exception as e:   # noqa: BLE001 - a backend may refuse a head dim; record it
                    w.row(device=name, torch=torch.__version__, backend=bname, heads=heads, d_qk=dqk, d_v=dv,
                          batch=b, seq=s, fwd_s="", bwd_s="", fwd_eff="", bwd_eff="",
                          error=str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
                torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- launch
def section_launch(torch, args, name, w):
    x = torch.zeros(1, device="cuda")
    n = 2000 if not args.quick else 200
    t = timed(torch, lambda: x.add_(1.0), iters=n, batches=5)
    w.row(device=name, torch=torch.__version__, kernel="add_1_element", seconds_per_kernel=f"{t:.4e}")
    for mm in (64, 256, 1024):
        a = torch.randn(mm, mm, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(mm, mm, device="cuda", dtype=torch.bfloat16)
        t = timed(torch, lambda a=a, b=b: torch.mm(a, b), iters=n // 4, batches=5)
        w.row(device=name, torch=torch.__version__, kernel=f"mm_bf16_{mm}^3", seconds_per_kernel=f"{t:.4e}")


# ----------------------------------------------------------------------------------------------- clocks
def section_clocks(torch, args, name, peak, nv, w):
    s = 8192
    a = [torch.randn(s, s, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    b = [torch.randn(s, s, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    fl = 2.0 * s ** 3
    secs = args.clock_s if not args.quick else 3
    step = 0.25
    i = 0
    t0 = time.perf_counter()
    for tick in range(int(secs / step)):
        st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        calls = 0
        st.record()
        t_end = t0 + (tick + 1) * step
        while time.perf_counter() < t_end:
            for _ in range(5):
                i = (i + 1) % 3
                torch.mm(a[i], b[i])
            calls += 5
            torch.cuda.synchronize()
        en.record()
        en.synchronize()
        span = st.elapsed_time(en) / 1e3
        clk, pw = nv.read()
        w.row(device=name, torch=torch.__version__, second=f"{(tick + 1) * step:.2f}", gemm=f"{s}^3", calls=calls,
              tflops=f"{fl * calls / span / 1e12:.1f}", efficiency=f"{fl * calls / span / 1e12 / peak:.4f}",
              sm_clock_mhz=clk, power_w=pw)


def section_duty(torch, args, name, peak, nv, w):
    s = 8192
    a = [torch.randn(s, s, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    b = [torch.randn(s, s, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    fl = 2.0 * s ** 3
    # cycles of torch.cuda._sleep per millisecond at the SM clock the card idles up to (~1.98 GHz boost)
    cyc_per_ms = 1.98e6
    t_gemm = 1.0 / (0.7 * peak * 1e12 / fl)     # ~seconds per GEMM, for the number of GEMMs in a burst
    patterns = [(50, 0), (20, 5), (10, 10), (5, 5), (2, 2), (2, 8)] if not args.quick else [(5, 5)]
    seconds = 4.0 if not args.quick else 1.0
    for on_ms, off_ms in patterns:
        n_on = max(1, round(on_ms / 1e3 / t_gemm))
        rounds = max(1, int(seconds / ((on_ms + off_ms) / 1e3)))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(rounds)]
        i = 0
        for r in range(rounds):
            ev[r][0].record()
            for _ in range(n_on):
                i = (i + 1) % 3
                torch.mm(a[i], b[i])
            ev[r][1].record()
            if off_ms:
                torch.cuda._sleep(int(off_ms * cyc_per_ms))
            if r % 20 == 19:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        clk, pw = nv.read()
        tail = ev[rounds // 2:]                      # the second half: after the power controller settles
        busy = sum(st.elapsed_time(en) for st, en in tail) / 1e3
        whole = tail[0][0].elapsed_time(tail[-1][1]) / 1e3
        tflops = fl * n_on * len(tail) / busy / 1e12
        w.row(device=name, torch=torch.__version__, on_ms=on_ms, off_ms=off_ms, gemms_per_burst=n_on,
              rounds_timed=len(tail), tflops_in_burst=f"{tflops:.1f}", efficiency_in_burst=f"{tflops / peak:.4f}",
              gemm_duty=f"{busy / whole:.3f}", sm_clock_mhz=clk, power_w=pw)


def section_power(torch, args, name, peak, nv, w):
    """Tensor-core and memory-bound kernels in alternating phases: rates inside the phases and board power,
    to separate the power each kind of kernel draws and how the clock falls when their sum passes the cap."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    big = [(torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16),
            torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)) for _ in range(3)]
    small = [(torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16),
              torch.randn(4096, 3072, device="cuda", dtype=torch.bfloat16)) for _ in range(8)]
    src = torch.randn(128 * 2**20, device="cuda", dtype=torch.bfloat16)        # 256 MiB
    dst = torch.empty_like(src)
    q, k, v = (torch.randn(4, 16, 4096, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    go = torch.randn(4, 16, 4096, 128, device="cuda", dtype=torch.bfloat16)
    st = {"i": 0}

    def gemm_big():
        st["i"] = (st["i"] + 1) % 3
        torch.mm(*big[st["i"]])

    def gemm_small():
        st["i"] = (st["i"] + 1) % 8
        torch.mm(*small[st["i"]])

    def attention():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), go)

    def copy():
        dst.copy_(src)

    def sleep_1ms():
        torch.cuda._sleep(int(1.98e6))
    # (name, callable, work per call, unit): FLOPs (attention: forward + backward of the causal half) or bytes
    ops = {"gemm8192": (gemm_big, 2.0 * 8192 ** 3, "flop"), "gemm4096x3072x4096": (gemm_small, 2.0 * 4096 * 3072 * 4096, "flop"),
           "attention_fb": (attention, 3.5 * 4.0 * 4 * 16 * 4096 ** 2 * 128 / 2.0, "flop"), "copy": (copy, 2.0 * src.numel() * 2, "byte"),
           "sleep": (sleep_1ms, 0.0, "none")}
    per_call = {}
    for key, (fn, _, _) in ops.items():
        per_call[key] = timed(torch, fn, iters=5, batches=3)
    patterns = [("gemm8192", "sleep", 50, 0), ("gemm8192", "sleep", 9, 1), ("gemm8192", "sleep", 8, 2),
                ("gemm8192", "sleep", 7, 3), ("gemm8192", "sleep", 6, 4), ("gemm8192", "sleep", 40, 10),
                ("gemm8192", "copy", 10, 10), ("gemm8192", "copy", 20, 5), ("gemm8192", "copy", 5, 5),
                ("copy", "sleep", 50, 0), ("copy", "sleep", 10, 10),
                ("attention_fb", "sleep", 50, 0), ("attention_fb", "sleep", 10, 10),
                ("gemm4096x3072x4096", "sleep", 50, 0), ("gemm4096x3072x4096", "sleep", 10, 10)]
    if args.quick:
        patterns = patterns[:2]
    seconds = 4.0 if not args.quick else 1.0
    for on, off, on_ms, off_ms in patterns:
        fn_on, work, unit = ops[on]
        n_on = max(1, round(on_ms / 1e3 / per_call[on]))
        n_off = round(off_ms / 1e3 / per_call[off]) if off_ms else 0
        rounds = max(2, int(seconds / ((on_ms + off_ms) / 1e3)))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(rounds)]
        powers, clocks = [], []
        for r in range(rounds):
            ev[r][0].record()
            for _ in range(n_on):
                fn_on()
            ev[r][1].record()
            for _ in range(n_off):
                ops[off][0]()
            if r % 10 == 9:
                torch.cuda.synchronize()
                if r >= rounds // 2:
                    clk, pw = nv.read()
                    clocks.append(clk)
                    powers.append(pw)
        torch.cuda.synchronize()
        tail = ev[rounds // 2:]
        busy = sum(a.elapsed_time(b) for a, b in tail) / 1e3
        whole = tail[0][0].elapsed_time(tail[-1][1]) / 1e3
        rate = work * n_on * len(tail) / busy
        eff = rate / 1e12 / peak if unit == "flop" else rate / 1e9 / args.hbm_GBps
        w.row(device=name, torch=torch.__version__, on_op=on, off_op=off, on_ms=on_ms, off_ms=off_ms,
              calls_on=n_on, calls_off=n_off, rounds_timed=len(tail),
              rate_in_on_phase=f"{rate / 1e12:.1f} TFLOP/s" if unit == "flop" else f"{rate / 1e9:.0f} GB/s",
              efficiency_in_on_phase=f"{eff:.4f}", on_fraction=f"{busy / whole:.3f}",
              sm_clock_mhz=f"{statistics.median(clocks):.0f}" if clocks else "nan",
              power_w=f"{statistics.median(powers):.1f}" if powers else "nan")


COLUMNS = {
    "grouped": ("device", "torch", "case", "pass_", "groups", "m_balanced", "n", "k", "routing", "counts", "flops",
                "grouped_s", "sequential_s", "sum_isolated_s", "max_isolated_s", "grouped_eff", "sequential_eff"),
    "memory": ("device", "torch", "op", "bytes", "bytes_moved", "seconds", "GBps", "fraction_of_datasheet"),
    "attention": ("device", "torch", "backend", "heads", "d_qk", "d_v", "batch", "seq", "fwd_s", "bwd_s", "fwd_eff",
                  "bwd_eff", "error"),
    "launch": ("device", "torch", "kernel", "seconds_per_kernel"),
    "clocks": ("device", "torch", "second", "gemm", "calls", "tflops", "efficiency", "sm_clock_mhz", "power_w"),
    "power": ("device", "torch", "on_op", "off_op", "on_ms", "off_ms", "calls_on", "calls_off", "rounds_timed",
              "rate_in_on_phase", "efficiency_in_on_phase", "on_fraction", "sm_clock_mhz", "power_w"),
    "duty": ("device", "torch", "on_ms", "off_ms", "gemms_per_burst", "rounds_timed", "tflops_in_burst",
             "efficiency_in_burst", "gemm_duty", "sm_clock_mhz", "power_w"),
}


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--sections", default="clocks,launch,memory,attention,grouped,duty")
    ap.add_argument("--grouped", default=os.path.join(here, "grouped.csv"))
    ap.add_argument("--hardware", default="h100-sxm,h800,h200")
    ap.add_argument("--clock-s", type=float, default=60.0)
    ap.add_argument("--hbm-GBps", type=float, default=None, help="datasheet HBM bandwidth (default: by device name)")
    ap.add_argument("--quick", action="store_true", help="a few points per section (a smoke test)")
    args = ap.parse_args(argv)
    args.hardware = {h.strip() for h in args.hardware.split(",") if h.strip()}
    torch = cuda_torch("kernel_sweep")
    if torch is None:
        return 2
    os.makedirs(args.out_dir, exist_ok=True)
    name = torch.cuda.get_device_name(0)
    peak = peak_for(name, "bf16") or 989.4
    hbm = args.hbm_GBps = args.hbm_GBps or device_lookup(HBM_GBPS, name) or 3350.0
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20)
    nv = Nvml()
    failed = 0
    for sec in [s.strip() for s in args.sections.split(",") if s.strip()]:
        if sec not in COLUMNS:
            print(f"kernel_sweep: unknown section {sec!r} (known: {', '.join(COLUMNS)})", file=sys.stderr)
            return 2
        w = Writer(os.path.join(args.out_dir, f"{sec}.csv"), COLUMNS[sec])
        t0 = time.perf_counter()
        try:
            if sec == "grouped":
                section_grouped(torch, args, name, peak, l2, w)
            elif sec == "memory":
                section_memory(torch, args, name, hbm, w)
            elif sec == "attention":
                section_attention(torch, args, name, peak, w)
            elif sec == "launch":
                section_launch(torch, args, name, w)
            elif sec == "clocks":
                section_clocks(torch, args, name, peak, nv, w)
            elif sec == "power":
                section_power(torch, args, name, peak, nv, w)
            elif sec == "duty":
                section_duty(torch, args, name, peak, nv, w)
        except Exception:   # noqa: BLE001 - one broken section must not lose the others
            failed += 1
            traceback.print_exc()
        finally:
            w.close()
            print(f"# section {sec}: {time.perf_counter() - t0:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
