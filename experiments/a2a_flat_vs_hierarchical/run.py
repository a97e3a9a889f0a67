"""Flat vs hierarchical EP all-to-all: exposed all-to-all time and its share of the step vs EP span.

DeepSeek-V3 (256 routed experts, top-8, group-limited routing to 4 of 8 groups) on NPU and GPU
profiles; EP grows from one node to 32 nodes of 8 devices (EP 8 .. 256). ``flat`` sends every
(token, expert) pair directly; ``hierarchical`` first moves each token once to every remote node
it needs (the inter-node step), then forwards it inside the node (Pangu Ultra MoE's hierarchical
EP, DeepEP's node-limited dispatch). One simulated training step per (profile, EP, algorithm).

Usage: python experiments/a2a_flat_vs_hierarchical/run.py [--out DIR] [--reduced] [--seed N]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import RESULTS, run_parser, write_csv, write_run_info  # noqa: E402

from sim.engine.run import simulate  # noqa: E402
from sim.engine.spec import make_runspec  # noqa: E402

STUDY = "a2a_flat_vs_hierarchical"
MODEL = "deepseek-v3"
SEQ_LEN = 4096
SKEW = "aux_loss"
# Layout: tp 1, pp 16 (DeepSeek-V3's own), dp 256 fixed (so every EP size divides it and the
# cluster, 4096 devices, stays the same), 32 micro-batches of 1 x 4096 tokens per pipeline,
# full recompute (fits every profile's memory at every EP size), bf16 (the 910B has no FP8).
PP, DP, MICROBATCHES = 16, 256, 32
PROFILES = ("ascend-910b", "h800", "h100-sxm", "ascend-910c-supernode", "gb200-nvl72")
EP_SIZES = (8, 16, 32, 64, 128, 256)
ALGORITHMS = ("flat", "hierarchical")

COLUMNS = [
    "hardware", "devices_per_node", "a2a_algorithm", "ep_devices", "nodes_spanned", "num_devices",
    "pp_stages", "dp_ranks", "global_batch_sequences", "executor", "skew",
    "step_time_s", "exposed_ep_a2a_s", "ep_a2a_share_of_step_frac", "tokens_per_s_per_device",
    "mfu_frac", "imbalance_score_ratio", "max_over_mean_device_load_ratio", "peak_memory_gib",
    "fits_memory_bool",
]


def runspec_dict(hardware: str, ep: int, a2a: str, seed: int, microbatches: int) -> dict:
    return {
        "model": MODEL,
        "hardware": hardware,
        "parallel": {"devices": PP * DP, "tp": 1, "pp": PP, "ep": ep, "micro_batch_size": 1,
                     "global_batch_size": DP * microbatches, "recompute": "full"},
        "workload": {"seq_len": SEQ_LEN, "precision": "bf16"},
        "routing": {"mode": "dropless", "skew": SKEW, "placement": "contiguous", "a2a": a2a,
                    "seed": seed},
    }


def measure(hardware: str, ep: int, a2a: str, seed: int, executor: str, microbatches: int) -> dict:
    spec = make_runspec(runspec_dict(hardware, ep, a2a, seed, microbatches), f"{STUDY} {hardware}")
    rep = simulate(spec, executor=executor, check_memory=False)
    par, dpn = spec.parallel, spec.hardware.node.devices_per_node
    a2a_s = float(rep.exposed_comm_s["ep_a2a"])
    return {
        "hardware": hardware, "devices_per_node": dpn, "a2a_algorithm": a2a, "ep_devices": ep,
        "nodes_spanned": math.ceil(ep / dpn), "num_devices": par.devices, "pp_stages": par.pp,
        "dp_ranks": par.dp, "global_batch_sequences": par.global_batch_size, "executor": executor,
        "skew": SKEW,
        "step_time_s": float(rep.step_time_s),
        "exposed_ep_a2a_s": a2a_s,
        "ep_a2a_share_of_step_frac": a2a_s / float(rep.step_time_s),
        "tokens_per_s_per_device": float(rep.tokens_per_s_per_device),
        "mfu_frac": float(rep.mfu),
        "imbalance_score_ratio": float(rep.imbalance_score),
        "max_over_mean_device_load_ratio": float(rep.max_over_mean_device_load),
        "peak_memory_gib": float(rep.peak_memory_gib),
        "fits_memory_bool": bool(rep.fits),
    }


def main(argv=None) -> None:
    args = run_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    t0 = time.perf_counter()
    if args.reduced:
        profiles, eps, executor, nmb = ("ascend-910b", "h800"), (8, 16), "analytic", PP
    else:
        profiles, eps, executor, nmb = PROFILES, EP_SIZES, "des", MICROBATCHES
    rows = [measure(hw, ep, a2a, args.seed, executor, nmb)
            for hw in profiles for ep in eps for a2a in ALGORITHMS]
    write_csv(args.out / RESULTS, rows, COLUMNS, sort_by=("hardware", "a2a_algorithm", "ep_devices"))
    resolved = make_runspec(runspec_dict(profiles[0], eps[-1], "hierarchical", args.seed, nmb),
                            STUDY).model_dump()
    write_run_info(args.out, STUDY, {
        "reduced": args.reduced, "seed": args.seed, "executor": executor, "model": MODEL,
        "profiles": list(profiles), "ep_sizes": list(eps), "algorithms": list(ALGORITHMS),
        "layout": {"tp": 1, "pp": PP, "dp": DP, "devices": PP * DP, "micro_batches": nmb,
                   "micro_batch_size": 1, "seq_len": SEQ_LEN, "recompute": "full",
                   "precision": "bf16", "a2a_overlap": False},
        "skew": SKEW,
        "resolved_runspec_example (first profile, largest EP, hierarchical)": resolved,
    })
    print(f"{STUDY}: {len(rows)} rows -> {args.out / RESULTS} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
