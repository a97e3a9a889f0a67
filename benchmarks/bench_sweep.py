"""Sweep speed: a 1,000-point analytic sweep of ~718B MoE shapes on 6,144 Ascend 910B NPUs.

Run: python benchmarks/bench_sweep.py [--workers 2] [--points 1000]   (prints figures; asserts nothing)

Grid: hidden {6144, 6656, 7168, 7680, 8192} x layers 48..72 x routed experts {64, 128, 256, 512} x
top-k {4, 8} = 1,000 points, expert FFN width derived per point to land the total nearest 718B
(arXiv 2505.04519), on the layout Pangu Ultra MoE trained with (TP8 PP16 VPP2 EP4 with experts over
TP, micro-batch 2; /work/shared/REFERENCES.md), gbs 1536 x 4096 tokens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.search.points import build_points  # noqa: E402
from sim.search.spec import SweepSpec  # noqa: E402
from sim.search.sweep import run_sweep  # noqa: E402

SPEC = dict(
    name="bench_sweep",
    base=dict(model="pangu-ultra-moe-718b", hardware="ascend-910b", workload=dict(seq_len=4096),
              parallel=dict(devices=6144, tp=8, pp=16, vpp=2, ep=4, tp_extends_ep=True, micro_batch_size=2,
                            global_batch_size=1536, recompute="selective"),
              routing=dict(a2a="hierarchical")),
    axes={"model.hidden_size": [6144, 6656, 7168, 7680, 8192],
          "model.num_layers": {"min": 48, "max": 72, "step": 1},
          "model.moe.num_experts": [64, 128, 256, 512],
          "model.moe.top_k": [4, 8]},
    derive=[dict(fit="total_params_b", target=718, multiple_of=128,
                 fields=["model.moe.expert_ffn_hidden_size", "model.moe.shared_expert_ffn_hidden_size"])],
    constraints={"total_params_b": [650, 750]},
    objective="max mfu",
    executor="analytic",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=1000, help="evaluate the first N points (default all 1,000)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        spec_path = Path(d) / "bench.yaml"
        spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
        t0 = time.perf_counter()
        pts, _ = build_points(SweepSpec.model_validate(SPEC), "bench")
        plan_s = time.perf_counter() - t0
        res = run_sweep(str(spec_path), str(Path(d) / "results.csv"), workers=args.workers, limit=args.points,
                        progress=False)
    n = res.points
    print(f"bench_sweep: {n} points (of {len(pts)}), {args.workers} workers, analytic executor")
    print(f"  planning (expand axes, derive widths, constraints): {plan_s:.2f} s ({len(pts) / plan_s:,.0f} points/s)")
    print("  status: " + ", ".join(f"{k} {v}" for k, v in sorted(res.status.items())))
    print(f"  wall {res.elapsed_s:.1f} s  ->  {n / res.elapsed_s:.1f} points/s"
          f"  ({res.evaluated} sent to workers: {res.evaluated / res.elapsed_s:.1f} points/s)")
    if res.best:
        b = res.best
        print(f"  best mfu {b['mfu']:.4f}: hidden {b['model.hidden_size']}, {b['model.num_layers']} layers, "
              f"{b['model.moe.num_experts']} experts top-{b['model.moe.top_k']} "
              f"(expert ffn {b['model.moe.expert_ffn_hidden_size']}, {b['total_params_b']:.0f}B total)")


if __name__ == "__main__":
    main()
