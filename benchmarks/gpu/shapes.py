#!/usr/bin/env python3
"""Write benchmarks/gpu/shapes.csv: the distinct GEMM shapes of every validation entry, with FLOP shares.

Run: python benchmarks/gpu/shapes.py [--out FILE]   (here, where moe-sim is installed; the GPU sweep
benchmarks/gpu/gemm_sweep.py then reads the CSV on a machine that needs only PyTorch)

Columns: hardware (the entry's profile), precision, m, n, k, grouped (local experts issued together), share
(the shape's share of the step's GEMM FLOPs, averaged over the entries on that hardware), entries (how many
entries use the shape). Shapes come from sim.model.gemm_inventory, the program builder's own conventions.

Beside it, grouped.csv lists the routed-expert GEMMs whose row dimension is the token count (forward and
data-gradient): hardware, name, pass, groups (local experts), m (balanced tokens per expert), n, k, entries.
benchmarks/gpu/kernel_sweep.py times them as one grouped GEMM at balanced and imbalanced token counts.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict

from sim.model.gemm_shapes import gemm_inventory, unique_shapes
from sim.validate.load import entry_runspec, load_entries


def shape_table(directory: str | None = None) -> list[dict]:
    """Rows of the CSV, sorted by hardware then FLOP share (largest first)."""
    share: dict = defaultdict(float)
    users: dict = defaultdict(int)
    per_hw: dict = defaultdict(int)
    for e in load_entries(directory):
        spec = entry_runspec(e)
        hw = spec.hardware.name
        per_hw[hw] += 1
        for m, n, k, prec, grouped, s in unique_shapes(gemm_inventory(spec.model, spec.parallel, spec.workload)):
            share[(hw, prec, m, n, k, grouped)] += s
            users[(hw, prec, m, n, k, grouped)] += 1
    rows = [dict(hardware=hw, precision=prec, m=m, n=n, k=k, grouped=g, share=f"{s / per_hw[hw]:.6f}",
                 entries=users[(hw, prec, m, n, k, g)])
            for (hw, prec, m, n, k, g), s in share.items()]
    rows.sort(key=lambda r: (r["hardware"], -float(r["share"]), r["m"], r["n"], r["k"]))
    return rows


def grouped_table(directory: str | None = None) -> list[dict]:
    """Routed-expert GEMMs with the token count as row dimension (fprop, dgrad), one row per distinct case."""
    users: dict = defaultdict(int)
    for e in load_entries(directory):
        spec = entry_runspec(e)
        for g in gemm_inventory(spec.model, spec.parallel, spec.workload):
            if g.name.startswith("expert.") and g.pass_ in ("fprop", "dgrad") and g.grouped > 1:
                users[(spec.hardware.name, g.name, g.pass_, g.grouped, g.m, g.n, g.k)] += 1
    rows = [dict(hardware=hw, name=name, **{"pass": p}, groups=grp, m=m, n=n, k=k, entries=c)
            for (hw, name, p, grp, m, n, k), c in users.items()]
    rows.sort(key=lambda r: (r["hardware"], r["name"], r["pass"], r["groups"], r["m"], r["n"], r["k"]))
    return rows


def _write(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.csv"))
    ap.add_argument("--dir", default=None, help="validation folder (default: validation/)")
    args = ap.parse_args(argv)
    rows = shape_table(args.dir)
    _write(args.out, rows)
    grouped = grouped_table(args.dir)
    gpath = os.path.join(os.path.dirname(os.path.abspath(args.out)), "grouped.csv")
    _write(gpath, grouped)
    print(f"wrote {len(rows)} shapes to {args.out} and {len(grouped)} grouped-GEMM cases to {gpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
