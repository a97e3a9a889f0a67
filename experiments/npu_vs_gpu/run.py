"""NPU vs GPU: the best layout the search finds for one model on each hardware profile.

For DeepSeek-V3 and Pangu Ultra MoE (one model at a time) and every profile in hw_profiles/, the
layout search (sim.search.layouts.search_layouts: enumerate TP/PP/VPP/EP/micro-batch/recompute,
drop layouts that do not fit, screen the rest with the analytic estimate, re-run the best with the
DES) picks the layout with the most tokens/s on the same device count, global batch and sequence
length. One row per (model, hardware): the chosen layout, tokens/s, tokens/s per device, MFU and
tokens/s per kW of device power; a model that fits in no layout is a row with status infeasible.

Usage: python experiments/npu_vs_gpu/run.py [--out DIR] [--reduced] [--workers N]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import RESULTS, run_parser, write_csv, write_run_info  # noqa: E402

from sim.config.load import load_hardware, load_model, parse, profile_names  # noqa: E402
from sim.config.routing import RoutingConfig  # noqa: E402
from sim.config.workload import Workload  # noqa: E402
from sim.engine.run import simulate  # noqa: E402
from sim.engine.spec import RunSpec  # noqa: E402
from sim.search.columns import report_columns  # noqa: E402
from sim.search.layouts import LayoutOptions, search_layouts  # noqa: E402
from sim.search.objective import parse_objective  # noqa: E402

STUDY = "npu_vs_gpu"
MODELS = ("deepseek-v3", "pangu-ultra-moe-718b")
# 2,304 devices = 288 eight-device nodes = 32 GB200 NVL72 racks = 3 CloudMatrix384 supernodes
# (768 Ascend 910C dies each): a whole number of scale-up domains on every profile, so no profile
# runs a partial node. It sits between DeepSeek-V3's 2,048 H800 and the 4K-6K NPU Pangu runs.
DEVICES = 2304
GLOBAL_BATCH = 4608          # sequences per step (2 per device; 18.9M tokens per step)
SEQ_LEN = 4096               # tokens per sequence
OBJECTIVE = "max tokens_per_s"
MAX_EXTRA_DES = 6            # analytic candidates re-run with the DES when the top ones overflow
# The same options on every profile (tp up to 8 fits every scale-up domain; 8 is also the
# largest TP both teams trained with); EP: every valid size (null = filled per layout).
LAYOUT = {"tp": [1, 2, 4, 8], "pp": [4, 8, 16], "vpp": [1, 2], "micro_batch_size": [1, 2],
          "recompute": ["selective", "full"], "top": 2}
# hierarchical EP all-to-all (inter-node step, then intra-node), as both DeepSeek-V3
# (node-limited routing) and Pangu Ultra MoE train; routing is otherwise the default (dropless)
ROUTING = {"a2a": "hierarchical"}

FULL = {"models": MODELS, "hardware": None, "devices": DEVICES, "global_batch_size": GLOBAL_BATCH,
        "seq_len": SEQ_LEN, "layout": LAYOUT}
# --reduced (tests): one model, two profiles, one candidate layout, 16 micro-batches per pipeline
REDUCED = {"models": ("deepseek-v3",), "hardware": ("ascend-910b", "h800"), "devices": DEVICES,
           "global_batch_size": 288, "seq_len": SEQ_LEN,
           "layout": {"tp": [8], "pp": [16], "vpp": [1], "micro_batch_size": [1],
                      "recompute": ["full"], "top": 1}}

COLUMNS = [
    "model", "hardware", "hardware_kind", "num_devices", "global_batch_sequences", "seq_len_tokens",
    "status", "tp", "pp", "vpp", "ep", "micro_batch_sequences", "recompute", "schedule", "dp",
    "num_microbatches", "layout", "layouts_enumerated", "layouts_screened",
    "layouts_des_over_memory",
    "step_time_s", "tokens_per_s", "tokens_per_s_per_device", "mfu_fraction", "peak_bf16_tflops",
    "peak_memory_gib", "memory_limit_gib", "device_power_w", "tokens_per_s_per_kw", "reason",
]
EMPTY_RESULT = ("tp", "pp", "vpp", "ep", "micro_batch_sequences", "recompute", "schedule", "dp",
                "num_microbatches", "step_time_s", "tokens_per_s", "tokens_per_s_per_device",
                "mfu_fraction", "peak_memory_gib", "tokens_per_s_per_kw")


def layout_label(par) -> str:
    """'TP8 PP16 VPP2 EP4 mbs1 selective': the chosen layout, for tables and figure annotations."""
    return (f"TP{par.tp} PP{par.pp} VPP{par.vpp} EP{par.ep_effective} mbs{par.micro_batch_size} "
            f"{par.recompute}")


def des_choice(res, spec_for) -> tuple:
    """(layout, DES report, layouts the DES found over memory) of a search result: the best of the
    DES-simulated top layouts that fits; when none fits (the DES samples routing in every layer, so
    its worst-case expert load, and hence memory, can exceed the analytic screen's), the next
    analytic candidates are run with the DES, best first, until one fits (at most MAX_EXTRA_DES)."""
    over = 0
    extra = 0
    for lay in res.layouts:
        if lay.executor == "des":
            rep = lay.report
        elif extra < MAX_EXTRA_DES:
            extra += 1
            rep = report_columns(simulate(spec_for(lay.parallel), executor="des"))
        else:
            break
        if rep.get("tokens_per_s") is not None:
            return lay.parallel, rep, over
        over += 1
    return None, None, over


def best_layout(task: dict) -> dict:
    """One row: the search's best layout of task['model'] on task['hardware'] (or infeasible)."""
    model, hw = load_model(task["model"]), load_hardware(task["hardware"])
    work = parse(Workload, {"seq_len": task["seq_len"]}, "workload")
    routing = parse(RoutingConfig, ROUTING, "routing")
    base = {"devices": task["devices"], "global_batch_size": task["global_batch_size"]}
    res = search_layouts(model, hw, work, routing, base, LayoutOptions(**task["layout"]),
                         parse_objective(OBJECTIVE), executor="des")
    par, rep, over = des_choice(res, lambda p: RunSpec(model=model, parallel=p, workload=work,
                                                       hardware=hw, routing=routing))
    c = res.counts()
    power = hw.device.power_w
    row = {"model": task["model"], "hardware": hw.name, "hardware_kind": hw.kind,
           "num_devices": task["devices"], "global_batch_sequences": task["global_batch_size"],
           "seq_len_tokens": task["seq_len"], "layouts_enumerated": c["enumerated"],
           "layouts_screened": c["screened"], "layouts_des_over_memory": over,
           "peak_bf16_tflops": hw.device.peak_tflops.bf16,
           "memory_limit_gib": hw.device.hbm_gib - hw.device.reserved_memory_gib,
           "device_power_w": power}
    if par is None:
        why = (f"{over} DES-simulated layouts over memory" if res.layouts else
               f"no layout of {c['enumerated']} fits: {res.infeasible_summary()}")
        return {**row, **dict.fromkeys(EMPTY_RESULT), "status": "infeasible", "layout": "",
                "reason": why}
    per_dev = rep["tokens_per_s_per_device"]
    return {**row, "status": "ok", "tp": par.tp, "pp": par.pp, "vpp": par.vpp,
            "ep": par.ep_effective,
            "micro_batch_sequences": par.micro_batch_size, "recompute": par.recompute,
            "schedule": par.schedule_name, "dp": par.dp, "num_microbatches": par.num_microbatches,
            "layout": layout_label(par), "step_time_s": rep["step_time_s"],
            "tokens_per_s": rep["tokens_per_s"], "tokens_per_s_per_device": per_dev,
            "mfu_fraction": rep["mfu"], "peak_memory_gib": rep["peak_memory_gib"],
            "tokens_per_s_per_kw": per_dev / (power / 1000.0) if power else None, "reason": ""}


def main(argv=None) -> int:
    p = run_parser(__doc__.splitlines()[0], HERE)
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = p.parse_args(argv)
    cfg = REDUCED if args.reduced else FULL
    models, hardware = cfg["models"], cfg["hardware"] or tuple(profile_names())
    tasks = [{"model": m, "hardware": h, "layout": cfg["layout"], "devices": cfg["devices"],
              "global_batch_size": cfg["global_batch_size"], "seq_len": cfg["seq_len"]}
             for m in models for h in hardware]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            rows = list(pool.map(best_layout, tasks))
    else:
        rows = [best_layout(t) for t in tasks]
    write_csv(args.out / RESULTS, rows, COLUMNS, sort_by=("model", "hardware"))
    write_run_info(args.out, STUDY, {
        "reduced": args.reduced, "models": list(models), "hardware": list(hardware),
        "devices": cfg["devices"], "global_batch_size": cfg["global_batch_size"],
        "seq_len": cfg["seq_len"], "objective": OBJECTIVE,
        "executor": "des (analytic screen of every fitting layout, best `top` re-run with the DES)",
        "layout_options": LayoutOptions(**cfg["layout"]).model_dump(mode="json"),
        "routing": parse(RoutingConfig, ROUTING, "routing").model_dump(mode="json"),
        "hardware_profiles": {h: load_hardware(h).model_dump(mode="json") for h in hardware},
        "models_resolved": {m: load_model(m).model_dump(mode="json") for m in models}})
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"wrote {args.out / RESULTS}: {len(rows)} rows ({ok} ok) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
