"""ZeRO stages for a 235B MoE: step time and memory per device of data-parallel sharding.

Qwen3-235B-A22B on H100 in the Megatron-MoE model zoo's Megatron-FSDP layout (TP2, EP8, no pipeline,
micro-batch 4, full recompute, 4,096-token sequences, global batch 2,048), on 128 to 1,024 GPUs, with
ZeRO-1 (distributed optimizer), ZeRO-2 (+ sharded gradients) and ZeRO-3 (+ sharded weights,
Megatron-FSDP), gradients reduced in fp32 or bf16. For reference, the zoo's pipelined layout (TP2,
EP32, PP8, VPP4, micro-batch 1, ZeRO-1) at 256 GPUs. One simulated step each, memory not enforced
(the study reports what fits).

Usage: python experiments/zero_sharding/run.py [--out DIR] [--reduced] [--seed N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import RESULTS, run_parser, write_csv, write_run_info  # noqa: E402

from sim.engine.run import simulate  # noqa: E402
from sim.engine.spec import make_runspec  # noqa: E402
from sim.search.layouts import zero_switches  # noqa: E402

STUDY = "zero_sharding"
MODEL, HARDWARE, SEQ_LEN, GBS = "qwen3-235b-a22b", "h100-sxm", 4096, 2048
DEVICES = (128, 256, 512, 1024)
ZERO = (1, 2, 3)
GRAD_DTYPES = ("fp32", "bf16")
# the zoo's Megatron-FSDP row (yanring/Megatron-MoE-ModelZoo best_practice/Qwen3/readme.md)
FLAT = dict(layout="TP2 EP8 PP1 mbs4 full", tp=2, ep=8, pp=1, vpp=1, micro_batch_size=4, recompute="full",
            recompute_modules=None)
# the zoo's cross-node EP row at 256 GPUs (same readme), as the pipelined reference
PIPELINED = dict(layout="TP2 EP32 PP8 VPP4 mbs1 norm+act", tp=2, ep=32, pp=8, vpp=4, micro_batch_size=1,
                 recompute="selective", recompute_modules=["layernorm", "moe_act"])

COLUMNS = [
    "layout", "num_devices", "dp_ranks", "zero_stage", "grad_reduce_dtype", "num_microbatches", "executor",
    "step_time_s", "tokens_per_s_per_device", "mfu_frac", "exposed_dp_s", "exposed_ep_a2a_s",
    "peak_memory_gib", "weights_gib", "gradients_gib", "optimizer_gib", "activations_gib", "transient_gib",
    "memory_limit_gib", "fits_memory_bool",
]


def runspec_dict(lay: dict, devices: int, zero: int, grad: str, seed: int) -> dict:
    par = {k: v for k, v in lay.items() if k != "layout"}
    par.update(devices=devices, expert_tp=1, cp=1, sequence_parallel=True, global_batch_size=GBS,
               grad_reduce_in_bf16=grad == "bf16", **zero_switches(zero))
    return {"model": MODEL, "hardware": HARDWARE, "parallel": par,
            "workload": {"seq_len": SEQ_LEN, "precision": "bf16"},
            "routing": {"mode": "dropless", "a2a": "hierarchical", "seed": seed}}


def measure(lay: dict, devices: int, zero: int, grad: str, seed: int, executor: str) -> dict:
    spec = make_runspec(runspec_dict(lay, devices, zero, grad, seed), f"{STUDY} {lay['layout']}")
    rep = simulate(spec, executor=executor, check_memory=False)
    mem = rep.memory_gib
    return {
        "layout": lay["layout"], "num_devices": devices, "dp_ranks": spec.parallel.dp, "zero_stage": zero,
        "grad_reduce_dtype": grad, "num_microbatches": spec.parallel.num_microbatches, "executor": executor,
        "step_time_s": float(rep.step_time_s), "tokens_per_s_per_device": float(rep.tokens_per_s_per_device),
        "mfu_frac": float(rep.mfu), "exposed_dp_s": float(rep.exposed_comm_s["dp"]),
        "exposed_ep_a2a_s": float(rep.exposed_comm_s["ep_a2a"]),
        "peak_memory_gib": float(rep.peak_memory_gib), "weights_gib": mem["weights"],
        "gradients_gib": mem["gradients"], "optimizer_gib": mem["optimizer"],
        "activations_gib": mem["activations"], "transient_gib": mem["transient"],
        "memory_limit_gib": float(rep.memory_limit_gib), "fits_memory_bool": bool(rep.fits),
    }


def main(argv=None) -> None:
    args = run_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    t0 = time.perf_counter()
    if args.reduced:
        devices, executor, pipelined = (256,), "analytic", False
    else:
        devices, executor, pipelined = DEVICES, "des", True
    rows = [measure(FLAT, n, z, g, args.seed, executor) for n in devices for z in ZERO for g in GRAD_DTYPES]
    if pipelined:
        rows += [measure(PIPELINED, 256, 1, g, args.seed, executor) for g in GRAD_DTYPES]
    write_csv(args.out / RESULTS, rows, COLUMNS,
              sort_by=("layout", "num_devices", "zero_stage", "grad_reduce_dtype"))
    write_run_info(args.out, STUDY, {
        "reduced": args.reduced, "seed": args.seed, "executor": executor, "model": MODEL, "hardware": HARDWARE,
        "devices": list(devices), "zero_stages": list(ZERO), "grad_reduce_dtypes": list(GRAD_DTYPES),
        "layouts": [FLAT] + ([PIPELINED] if pipelined else []), "seq_len": SEQ_LEN, "global_batch_size": GBS,
        "resolved_runspec_example (flat layout, 256 GPUs, ZeRO-3, bf16)":
            make_runspec(runspec_dict(FLAT, 256, 3, "bf16", args.seed), STUDY).model_dump(),
    })
    print(f"{STUDY}: {len(rows)} rows -> {args.out / RESULTS} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
