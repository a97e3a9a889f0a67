"""Benchmark: token-level routing of 1,048,576 tokens over 256 experts top-8 (one core), and the
count-level sampler at the engine's size (58 layers x 8 micro-batches x 16,384 tokens).

Run: python benchmarks/bench_routing.py   (set OMP_NUM_THREADS=1 etc. to pin BLAS; routing uses none)
"""

from __future__ import annotations

import time

import numpy as np

from sim.moe import count_routed, resolve_skew, sample_logits, sample_tokens_per_expert


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    tokens, experts, top_k = 1 << 20, 256, 8
    rng = np.random.default_rng(0)
    params = resolve_skew("aux_loss")
    t = time.perf_counter()
    logits = sample_logits(np.zeros(experts), tokens, params, rng)  # (T, E) float32
    print(f"score generation  {tokens:,} x {experts} float32: {time.perf_counter() - t:.3f} s (not routing)")
    for router, m, g in (("topk", None, None), ("moge", 8, None), ("group_limited", 8, 4)):
        sec, counts = best_of(lambda r=router, m=m, g=g: count_routed(logits, top_k=top_k, router=r,
                                                                     num_groups=m, topk_groups=g))
        assert counts.sum() == tokens * top_k
        print(f"route {router:<14s} {tokens:,} tokens, {experts} experts, top-{top_k}: {sec:.3f} s "
              f"({tokens / sec / 1e6:.2f} M tokens/s)")
    for router, m, g in (("topk", None, None), ("moge", 8, None), ("group_limited", 8, 4)):
        sec, s = best_of(lambda r=router, m=m, g=g: sample_tokens_per_expert(
            num_experts=256, top_k=8, router=r, num_groups=m, topk_groups=g, tokens=16384, num_layers=58,
            num_samples=8, skew="aux_loss", rng=np.random.default_rng(1)))
        print(f"sample_tokens_per_expert {router:<14s} (58, 8, 256) x 16,384 tokens: {sec * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
