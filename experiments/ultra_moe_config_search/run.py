"""Pangu Ultra MoE config search: ~718B MoE shapes on 6,144 Ascend 910B NPUs, best layout each.

Runs the sweep in sweep.yaml (hidden size x layers x routed experts x top-k; expert width derived
so every shape has ~718B parameters; active parameters kept in 30B-50B; each shape gets the best
layout of the layout search, ranked by MFU) through the sweep machinery (sim.search.run_sweep, the
same code as ``moe-sim sweep``) and writes a tidy subset of the sweep's table: one row per shape,
its chosen layout, throughput, MFU and its rank, and which row is the published Pangu Ultra MoE
configuration (hidden 7680, 61 layers, 256 experts, top-8).

The batch in sweep.yaml (1,536 sequences) is an assumption, and at 16-32 micro-batches per
pipeline the bubble is a large share of the step. The same sweep is therefore run a second time at
15,360 sequences (DeepSeek-V3's pre-training batch, which validation/pangu-ultra-moe.yaml assumes
for this run) to show whether the ranking depends on it: column global_batch_sequences.

Usage: python experiments/ultra_moe_config_search/run.py [--out DIR] [--reduced] [--workers N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import RESULTS, run_parser, write_csv, write_run_info  # noqa: E402

from sim.search import run_sweep  # noqa: E402

STUDY = "ultra_moe_config_search"
SPEC = HERE / "sweep.yaml"
# the configuration Pangu Ultra MoE chose by simulation (arXiv 2505.04519)
PUBLISHED = {"hidden_size": 7680, "num_layers": 61, "num_experts": 256, "top_k": 8}

# global batch sizes (sequences): None = sweep.yaml's own (1,536); 15,360 = DeepSeek-V3's
# pre-training batch (arXiv 2412.19437 sec 4.2), as validation/pangu-ultra-moe.yaml assumes
BATCHES = (None, 15360)

# --reduced (tests): the published shape and three neighbours, one candidate layout each, at the
# spec's batch and twice it
REDUCED_BATCHES = (None, 3072)
REDUCED_AXES = {"model.hidden_size": [7680], "model.num_layers": [61],
                "model.moe.num_experts": [128, 256], "model.moe.top_k": [4, 8]}
REDUCED_LAYOUT = {"mode": "search", "tp": [8], "pp": [16], "vpp": [1], "tp_extends_ep": [True],
                  "micro_batch_size": [1], "recompute": ["selective"], "top": 1}

# results.csv column <- sweep table column (None: computed here)
COLUMNS = {
    "global_batch_sequences": "parallel.global_batch_size",
    "point_index": "point_index", "point_id": "point_id", "status": "status",
    "hidden_size": "model.hidden_size", "num_layers": "model.num_layers",
    "num_experts": "model.moe.num_experts", "top_k": "model.moe.top_k",
    "expert_ffn_hidden_size": "model.moe.expert_ffn_hidden_size",
    "total_params_b": "total_params_b", "active_params_b": "active_params_b",
    "published_config": None,
    "tp": "parallel.tp", "pp": "parallel.pp", "vpp": "parallel.vpp",
    "ep_effective": None, "micro_batch_sequences": "parallel.micro_batch_size",
    "recompute": "parallel.recompute", "dp": "dp", "num_microbatches": "num_microbatches",
    "layouts_enumerated": "layouts_enumerated", "layouts_screened": "layouts_screened",
    "step_time_s": "step_time_s", "tokens_per_s": "tokens_per_s",
    "tokens_per_s_per_device": "tokens_per_s_per_device", "mfu_fraction": "mfu",
    "mfu_rank": None, "tokens_per_s_rank": None, "bubble_fraction": "bubble_fraction",
    "peak_memory_gib": "peak_memory_gib",
    "exposed_ep_a2a_s": "exposed_comm_s.ep_a2a", "exposed_pp_p2p_s": "exposed_comm_s.pp_p2p",
    "exposed_dp_s": "exposed_comm_s.dp", "exposed_tp_s": "exposed_comm_s.tp",
    # mean per pipeline stage: what each instant of the step ran (idle = bubble and waits)
    "forward_s": "time_breakdown_s.forward", "backward_s": "time_breakdown_s.backward",
    "idle_s": "time_breakdown_s.bubble", "optimizer_s": "time_breakdown_s.optimizer",
    "executor": "executor", "reason": "reason",
}


def spec_variant(folder: Path, batch: int | None, reduced: bool) -> Path:
    """sweep.yaml itself, or a copy in ``folder`` with another global batch and/or the reduced
    axes and layout options."""
    if batch is None and not reduced:
        return SPEC
    spec = yaml.safe_load(SPEC.read_text())
    name = spec.get("name", STUDY)
    if batch is not None:
        spec["base"]["parallel"]["global_batch_size"] = batch
        name += f" (global batch {batch})"
    if reduced:
        spec["axes"] = REDUCED_AXES
        spec["layout"] = REDUCED_LAYOUT
        name += " (reduced)"
    spec["name"] = name
    path = folder / f"sweep_{batch or 'spec'}{'_reduced' if reduced else ''}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _ranks(rows: list[dict], col: str) -> dict[int, int]:
    """point_index -> rank by ``col`` (1 = largest) over the ok rows; ties by point index."""
    ok = [r for r in rows if r["status"] == "ok" and r.get(col) is not None]
    ok.sort(key=lambda r: (-r[col], r["point_index"]))
    return {r["point_index"]: i for i, r in enumerate(ok, 1)}


def tidy(rows: list[dict]) -> list[dict]:  # rows of one sweep
    """The sweep's rows as results.csv rows (COLUMNS), with ranks and the published-config flag."""
    mfu_rank, tps_rank = _ranks(rows, "mfu"), _ranks(rows, "tokens_per_s")
    out = []
    for r in rows:
        t = {k: r.get(src) for k, src in COLUMNS.items() if src is not None}
        if t["status"] == "ok" and r.get("mfu") is None:
            # The sweep says ok but has no metrics: the layout search's DES re-runs of its top
            # layouts all exceeded device memory (the DES samples routing in every layer, a
            # heavier worst case than the analytic screen) and search_layouts still returned
            # one of them as the best. Reported as an error of the search, not as a result.
            t["status"] = "error"
            t["reason"] = (f"layout search returned a layout the DES finds over memory "
                           f"({r.get('peak_memory_gib', float('nan')):.1f} GiB of "
                           f"{r.get('memory_limit_gib', float('nan')):.1f} GiB): no metrics; a "
                           "fitting layout may exist further down the search's ranking")
        t["published_config"] = all(t[k] == v for k, v in PUBLISHED.items())
        tp, ep = r.get("parallel.tp"), r.get("parallel.ep")   # ep * tp with tp_extends_ep
        t["ep_effective"] = (None if ep is None else
                             ep * tp if r.get("parallel.tp_extends_ep") else ep)
        t["mfu_rank"] = mfu_rank.get(r["point_index"])
        t["tokens_per_s_rank"] = tps_rank.get(r["point_index"])
        out.append(t)
    return out


def main(argv=None) -> int:
    p = run_parser(__doc__.splitlines()[0], HERE)
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = p.parse_args(argv)
    out_rows, sweeps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in REDUCED_BATCHES if args.reduced else BATCHES:
            t0 = time.perf_counter()
            spec = spec_variant(Path(tmp), batch, args.reduced)
            table = Path(tmp) / f"sweep_{batch or 'spec'}.json"
            res = run_sweep(str(spec), str(table), workers=args.workers, progress=False,
                            command=" ".join(sys.argv))
            rows = json.loads(table.read_text())
            meta = json.loads(Path(f"{table}.meta.json").read_text())
            out_rows += tidy(rows)
            gbs = meta["spec"]["base"]["parallel"]["global_batch_size"]
            sweeps.append({"global_batch_size": gbs, "spec_resolved": meta["spec"],
                           "spec_hash": meta["spec_hash"], "status": meta["status"]})
            best = res.best
            note = f"; best MFU {best['mfu']:.4f} at point {best['point_index']}" if best else ""
            print(f"sweep at global batch {gbs}: {res.points} points {dict(res.status)} in "
                  f"{time.perf_counter() - t0:.1f} s{note}")
    write_csv(args.out / RESULTS, out_rows, list(COLUMNS),
              sort_by=("global_batch_sequences", "point_index"))
    write_run_info(args.out, STUDY, {
        "reduced": args.reduced, "workers": args.workers,
        "sweep_spec_file": str(SPEC.relative_to(HERE.parent.parent)),
        "batch_variants": "sweep.yaml as written, then the same spec with "
                          "base.parallel.global_batch_size replaced",
        "sweeps": sweeps, "published_config": PUBLISHED,
        "columns_from_sweep_table": {k: v for k, v in COLUMNS.items() if v is not None}})
    print(f"wrote {args.out / RESULTS}: {len(out_rows)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
