#!/usr/bin/env python3
"""Measure how much host (CPU) time one eager-PyTorch transformer layer's forward and backward spend
launching kernels, and how much of it the GPU waits for, at the per-device shapes of the validation runs.

Run on a machine with an NVIDIA GPU and PyTorch (nothing from moe-sim is imported):

    python3 benchmarks/gpu/layer_host.py --out-dir OUT [--quick]

The layer is a Megatron-Core-like decoder layer on one device of a TP/EP layout, written here in plain
PyTorch (no fused kernels beyond SDPA and torch's rms_norm): RMSNorm, the sequence-parallel all-gather
(emulated by a copy: one kernel where NCCL launches one), QKV projection, rotary embedding, causal SDPA
(grouped-query), output projection, the reduce-scatter (emulated by a sum over the TP copies), residual;
then either a dense SwiGLU MLP or a routed MoE block: router GEMM, softmax, top-k, forced-balance expert
assignment (as --moe-router-force-load-balancing), a device-to-host copy of the per-expert token counts (the
dropless all-to-all dispatcher needs them on the host to size its buffers), permutation, the all-to-all
(emulated by a copy), fc1 and fc2 as one autograd function each that issues one GEMM per local expert
(forward) and a data- and a weight-gradient GEMM per expert (backward) into slices of one buffer, as
Transformer Engine's GroupedLinear does on sm_90 (here from a Python loop, there from C++), with one SwiGLU
over all experts, the reverse all-to-all and the unpermutation weighted by the router probabilities.

Files in OUT:

- layer_host.csv: per case and pass (fwd, bwd): kernels launched (torch.profiler), the sum of their GPU
  durations, and the wall time of the pass without the profiler (median of --iters, the pass ended by
  torch.cuda.synchronize): wall - GPU sum is the time the GPU sat waiting for the host. Cases: the
  validation runs' Qwen3-235B-A22B layouts (TP2 EP32, TP4 EP8, TP2 EP8 at 4,096 tokens; TP4 EP8 at
  16,384) and a Llama-3-405B-like dense layer at TP8 (8,192 tokens), each at its real shapes; and "tiny"
  cases (the same code at hidden 256) where the GPU work is negligible, so the wall is host time:
  the host seconds per launched kernel.
- parts.csv: kernels and wall seconds per pass of the attention block, the MLP block and the MoE block at
  1-32 local experts, at tiny shapes (kernel counts do not depend on size, and the wall is host time): the
  host seconds each part costs, and the MoE block's fixed part and its part per local expert.
- kernels.csv: every kernel of each case's profiled passes in launch order (name, GPU microseconds), so
  a host/GPU queue model can be checked against the measured wall offline.

Clocks and power limits are left as found.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
import traceback

QWEN3 = dict(hidden=4096, q_heads=64, kv_heads=4, head_dim=128, experts=128, topk=8, ffn=1536)   # HF Qwen/Qwen3-235B-A22B config.json
LLAMA405 = dict(hidden=16384, q_heads=128, kv_heads=8, head_dim=128, ffn=53248)                  # arXiv 2407.21783 Table 3
CASES = [   # (name, model, tp, ep, tokens per micro-batch on a CP rank) -- validation/*.yaml layouts
    ("qwen3.tp2ep32.s4k", "qwen3", 2, 32, 4096),
    ("qwen3.tp4ep8.s4k", "qwen3", 4, 8, 4096),
    ("qwen3.tp2ep8.s4k", "qwen3", 2, 8, 4096),
    ("qwen3.tp4ep8.s16k", "qwen3", 4, 8, 16384),
    ("llama405.tp8.s8k", "llama405", 8, 1, 8192),
]
TINY = dict(hidden=256, q_heads=8, kv_heads=2, head_dim=32, experts=128, topk=8, ffn=64)


def shard(cfg: dict, tp: int, ep: int) -> dict:
    c = dict(cfg)
    c["q_heads"] = max(1, cfg["q_heads"] // tp)
    c["kv_heads"] = max(1, cfg["kv_heads"] // tp)
    if "experts" in cfg:
        c["local_experts"] = max(1, cfg["experts"] // ep)
    c["tp"] = tp
    return c


def grouped_linear(torch):
    """One autograd function for all local experts' GEMMs: one torch.mm per expert into slices of one
    output (forward), a data-gradient and a weight-gradient torch.mm per expert (backward); what
    Transformer Engine's GroupedLinear issues per expert, launched here from a Python loop."""

    class GroupedLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, counts, *ws):
            out = x.new_empty(x.shape[0], ws[0].shape[1])
            for xi, oi, w in zip(x.split(counts), out.split(counts), ws, strict=True):
                torch.mm(xi, w, out=oi)
            ctx.save_for_backward(x, *ws)
            ctx.counts = counts
            return out

        @staticmethod
        def backward(ctx, go):
            x, *ws = ctx.saved_tensors
            go = go.contiguous()
            gx = torch.empty_like(x)
            gws = []
            for xi, gi, gxi, w in zip(x.split(ctx.counts), go.split(ctx.counts), gx.split(ctx.counts), ws,
                                      strict=True):
                torch.mm(gi, w.t(), out=gxi)
                gws.append(xi.t() @ gi)
            return (gx, None, *gws)

    return GroupedLinear.apply


def build(torch, c: dict, tokens: int, moe: bool, device: str, dtype):
    """Parameters and the layer's forward as a closure over them: (params, forward(x) -> y)."""
    F = torch.nn.functional
    grouped = grouped_linear(torch)
    g = torch.Generator(device=device).manual_seed(0)
    h, d, qh, kvh, tp = c["hidden"], c["head_dim"], c["q_heads"], c["kv_heads"], c["tp"]

    def w(*shape, scale=0.02):
        return (torch.randn(*shape, device=device, dtype=dtype, generator=g) * scale).requires_grad_()

    P = {"n1": torch.ones(h, device=device, dtype=dtype, requires_grad=True),
         "n2": torch.ones(h, device=device, dtype=dtype, requires_grad=True),
         "qkv": w(h, (qh + 2 * kvh) * d), "proj": w(qh * d, h)}
    s = tokens                     # sequence on this rank (attention); the SP shard holds s / tp tokens
    pos = torch.arange(s, device=device, dtype=torch.float32)
    inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
    ang = torch.outer(pos, inv)
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(dtype)[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(dtype)[:, None, :]
    if moe:
        E, f = c["local_experts"], c["ffn"]
        P["router"] = w(h, c["experts"])
        P["w1"] = [w(h, 2 * f) for _ in range(E)]
        P["w2"] = [w(f, h) for _ in range(E)]
    else:
        f = c["ffn"] // tp
        P["w1"] = w(h, 2 * f)
        P["w2"] = w(f, h)

    def rope(t):
        t1, t2 = t.chunk(2, -1)
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def attn_block(x):
        y = F.rms_norm(x, (h,), P["n1"])
        if tp > 1:
            y = y.repeat(tp, 1)                                   # sequence-parallel all-gather (emulated)
        qkv = (y @ P["qkv"]).view(s, qh + 2 * kvh, d)
        q, kk, v = qkv.split([qh, kvh, kvh], 1)
        q, kk = rope(q), rope(kk)
        o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], kk.transpose(0, 1)[None],
                                           v.transpose(0, 1)[None], is_causal=True, enable_gqa=True)
        o = o[0].transpose(0, 1).reshape(s, qh * d) @ P["proj"]
        if tp > 1:
            o = o.view(tp, s // tp, h).sum(0)                     # reduce-scatter (emulated)
        return x + o

    def mlp_block(x):
        y = F.rms_norm(x, (h,), P["n2"])
        if tp > 1:
            y = y.repeat(tp, 1)
        a, b = (y @ P["w1"]).chunk(2, -1)
        o = (F.silu(a) * b) @ P["w2"]
        if tp > 1:
            o = o.view(tp, s // tp, h).sum(0)
        return x + o

    def moe_block(x):
        n = x.shape[0]
        E, k, ne = c["local_experts"], c["topk"], c["experts"]
        y = F.rms_norm(x, (h,), P["n2"])
        logits = (y @ P["router"]).float()
        probs = torch.softmax(logits, -1)
        topv, _ = torch.topk(probs, k, -1)
        topv = topv / topv.sum(-1, keepdim=True)
        # forced balance: assignment i goes to expert i mod experts; this rank receives n*k of them,
        # spread evenly over its local experts (what each EP rank gets under perfect balance)
        ids = torch.arange(n * k, device=x.device) % ne % E
        counts = torch.bincount(ids, minlength=E).tolist()       # device-to-host sync (dropless dispatch)
        order = torch.argsort(ids, stable=True)
        xin = y.repeat_interleave(k, 0)[order]                    # permute
        xin = xin.clone()                                         # all-to-all (emulated)
        a, b = grouped(xin, counts, *P["w1"]).chunk(2, -1)
        act = F.silu(a) * b
        out = grouped(act, counts, *P["w2"]).clone()              # fc2; reverse all-to-all (emulated)
        back = torch.empty_like(out).index_copy(0, order, out)    # unpermute
        comb = (back.view(n, k, h) * topv.to(back.dtype)[..., None]).sum(1)
        return x + comb

    def layer(x):
        return (moe_block if moe else mlp_block)(attn_block(x))
    return P, {"layer": layer, "attn": attn_block, "mlp": mlp_block, "moe": moe_block}


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def profile_pass(torch, fn, device):
    """(kernels, GPU seconds, [(name, us)]) of one call of fn, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    sync(torch, device)
    with profile(activities=acts) as p:
        fn()
        sync(torch, device)
    ks = []
    for e in p.events():
        dt = getattr(e, "device_type", None)
        if dt is not None and str(dt).endswith("CUDA"):
            ks.append((e.time_range.start, e.name[:80], float(e.time_range.elapsed_us())))
    ks.sort()
    return len(ks), sum(k[2] for k in ks) / 1e6, [(n, d) for _, n, d in ks]


def run_case(torch, cfg, tp, ep, tokens, moe, device, dtype, iters):
    c = shard(cfg, tp, ep)
    _, fns = build(torch, c, tokens, moe, device, dtype)
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(tokens // tp, c["hidden"], device=device, dtype=dtype, generator=g).requires_grad_()
    gy = torch.randn(tokens // tp, c["hidden"], device=device, dtype=dtype, generator=g)
    layer = fns["layer"]
    for _ in range(3):
        layer(x).backward(gy)
    sync(torch, device)
    wf, wb = time_passes(torch, layer, x, gy, iters, device)
    holder = {}
    kf, gf, lf = profile_pass(torch, lambda: holder.__setitem__("y", layer(x)), device)
    kb, gb, lb = profile_pass(torch, lambda: holder["y"].backward(gy), device)
    return c, {"fwd": (kf, gf, wf, lf), "bwd": (kb, gb, wb, lb)}


def time_passes(torch, fn, x, gy, iters, device) -> tuple[float, float]:
    """Median wall seconds of fn's forward and of its backward, each ended by a device sync."""
    fw, bw = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        y = fn(x)
        sync(torch, device)
        t1 = time.perf_counter()
        y.backward(gy)
        sync(torch, device)
        fw.append(t1 - t0)
        bw.append(time.perf_counter() - t1)
    return statistics.median(fw), statistics.median(bw)


def measure_part(torch, c, part, tokens, device, dtype, iters):
    """Kernels and wall seconds of one part's forward and backward at tiny shapes (the wall is host time)."""
    moe = part == "moe"
    _, fns = build(torch, c, tokens, moe, device, dtype)
    x = torch.randn(tokens // c["tp"], c["hidden"], device=device, dtype=dtype).requires_grad_()
    gy = torch.randn_like(x)
    fn = fns[part]
    for _ in range(3):
        fn(x).backward(gy)
    wf, wb = time_passes(torch, fn, x, gy, iters, device)
    holder = {}
    kf, gf, _ = profile_pass(torch, lambda: holder.__setitem__("y", fn(x)), device)
    kb, gb, _ = profile_pass(torch, lambda: holder["y"].backward(gy), device)
    return kf, kb, wf, wb, gf, gb


def host_info() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="tiny cases only, 3 iterations (a smoke test)")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (checks the script, measures nothing)")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("layer_host: PyTorch is not installed here; run this on the GPU machine", file=sys.stderr)
        return 2
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("layer_host: no CUDA device visible", file=sys.stderr)
        return 2
    dtype = torch.float32 if args.cpu else torch.bfloat16
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    host = host_info()
    iters = 3 if args.quick else args.iters
    os.makedirs(args.out_dir, exist_ok=True)
    failed = 0
    models = {"qwen3": QWEN3, "llama405": LLAMA405}
    cases = [(f"tiny.{n}", "tiny", tp, ep, 256 * tp) for n, _, tp, ep, _ in CASES]
    if not args.quick:
        cases += [(n, m, tp, ep, s) for n, m, tp, ep, s in CASES]
    cols = ("device", "host_cpu", "torch", "case", "tp", "ep", "tokens", "local_experts", "pass", "kernels",
            "gpu_s", "wall_s", "waiting_s", "wall_per_kernel_us")
    kfile = open(os.path.join(args.out_dir, "kernels.csv"), "w", newline="")
    kw = csv.writer(kfile)
    kw.writerow(("case", "pass", "index", "name", "gpu_us"))
    with open(os.path.join(args.out_dir, "layer_host.csv"), "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=cols)
        wr.writeheader()
        for name, mname, tp, ep, tokens in cases:
            base = name.removeprefix("tiny.")
            real = models["llama405" if base.startswith("llama405") else "qwen3"]
            cfg = dict(TINY) if mname == "tiny" else real
            moe = "experts" in real
            if mname == "tiny" and not moe:
                cfg = {k: v for k, v in TINY.items() if k not in ("experts", "topk")}
                cfg["ffn"] = 64 * tp
            t0 = time.perf_counter()
            try:
                c, res = run_case(torch, cfg, tp, ep, tokens, moe, device, dtype, iters)
                for ph, (k, gs, wall, kern) in res.items():
                    row = dict(device=dev_name, host_cpu=host, torch=torch.__version__, case=name, tp=tp, ep=ep,
                               tokens=tokens, local_experts=c.get("local_experts", ""), **{"pass": ph},
                               kernels=k, gpu_s=f"{gs:.6e}", wall_s=f"{wall:.6e}",
                               waiting_s=f"{max(0.0, wall - gs):.6e}",
                               wall_per_kernel_us=f"{wall / max(k, 1) * 1e6:.2f}")
                    wr.writerow(row)
                    fh.flush()
                    print(" ".join(f"{a}={b}" for a, b in row.items() if a not in ("device", "host_cpu", "torch")),
                          flush=True)
                    for i, (kn, us) in enumerate(kern):
                        kw.writerow((name, ph, i, kn, f"{us:.2f}"))
            except Exception:   # noqa: BLE001 - one failing case must not lose the others
                failed += 1
                traceback.print_exc()
            if device == "cuda":
                torch.cuda.empty_cache()
            print(f"# {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    kfile.close()
    with open(os.path.join(args.out_dir, "parts.csv"), "w", newline="") as fh:
        wr = csv.writer(fh)
        cols = ("part", "local_experts", "fwd_kernels", "bwd_kernels", "fwd_wall_s", "bwd_wall_s", "fwd_gpu_s",
                "bwd_gpu_s")
        wr.writerow(cols)
        for part, E in [("attn", 0), ("mlp", 0)] + [("moe", e) for e in (1, 2, 4, 8, 16, 32)]:
            try:
                c = shard(TINY, 1, TINY["experts"] // max(E, 1))
                vals = measure_part(torch, c, part, 256, device, dtype, 3 * iters)
                wr.writerow((part, E) + tuple(f"{v:.6e}" if isinstance(v, float) else v for v in vals))
                fh.flush()
                print(" ".join(f"{a}={b}" for a, b in zip(cols, (part, E) + vals, strict=True)), flush=True)
            except Exception:   # noqa: BLE001
                failed += 1
                traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
