"""Host (CPU) issue costs of a layer's parts from a benchmarks/gpu/layer_host.py measurement.

parts.csv holds, per repetition, the wall seconds of each part's forward and backward at tiny shapes
(where the GPU work is a few percent of the wall, so the wall is the host's time to issue the part):
the attention block, the dense MLP block and the MoE block at 1-32 local experts. The profile's
``host`` numbers are the medians over repetitions; the MoE block's are a least-squares line in the
number of local experts (fixed part, part per expert). tests/test_host.py recomputes the profile's
numbers from the committed CSV with this function.
"""

from __future__ import annotations

import csv
import statistics

import numpy as np


def read_parts(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fit_host(rows: list[dict]) -> dict:
    """{attention_us, mlp_us, moe_us, moe_per_expert_us}: each a (forward, backward) pair, microseconds."""
    by: dict = {}
    for r in rows:
        key = (r["part"], int(r["local_experts"]))
        by.setdefault(key, []).append((float(r["fwd_wall_s"]), float(r["bwd_wall_s"])))

    def med(key, i):
        return statistics.median(v[i] for v in by[key]) * 1e6

    out = {"attention_us": (med(("attn", 0), 0), med(("attn", 0), 1)),
           "mlp_us": (med(("mlp", 0), 0), med(("mlp", 0), 1))}
    es = sorted(e for p, e in by if p == "moe")
    fixed, per = [], []
    for i in (0, 1):
        slope, icpt = np.polyfit(np.asarray(es, float), np.asarray([med(("moe", e), i) for e in es]), 1)
        fixed.append(float(icpt))
        per.append(float(slope))
    out["moe_us"] = tuple(fixed)
    out["moe_per_expert_us"] = tuple(per)
    return out
