#!/usr/bin/env python3
"""Summarise a gemm_sweep.py CSV: how the profile's curve compares, and the curve the measurement implies.

Run: python benchmarks/gpu/fit_curve.py MEASURED.csv --hardware h100-sxm [--mode burst|sustained]

Prints (1) the FLOP-share-weighted mean of predicted / measured efficiency over the measured shapes (above
1: the profile is optimistic where the validation runs sit), per precision and mode; (2) the sustained /
burst ratio on the anchor shapes; (3) gemm_efficiency points fitted to the measurement, as YAML lines to
paste into the profile with the CSV named as their source. Nothing here changes a profile by itself.
"""

from __future__ import annotations

import argparse
import sys

from sim.cluster.gemm_fit import curve_vs_measured, fit_curve, read_sweep, sustained_ratio
from sim.config.load import load_hardware
from sim.errors import UserError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--hardware", required=True, help="profile to compare with (name or YAML path)")
    ap.add_argument("--mode", default="burst", choices=("burst", "sustained", "burst_grouped"))
    args = ap.parse_args(argv)
    try:
        rows = read_sweep(args.csv)
        hw = load_hardware(args.hardware)
    except (OSError, KeyError, ValueError, UserError) as e:
        print(f"fit_curve: {args.csv}: {e}", file=sys.stderr)
        return 2
    for prec in ("bf16", "fp8"):
        for mode in ("burst", "sustained", "burst_grouped"):
            ratio, pairs = curve_vs_measured(rows, hw, prec, mode)
            if pairs:
                print(f"{prec} {mode:13s} shapes {len(pairs):4d}  profile / measured (FLOP-weighted) {ratio:.3f}")
        r = sustained_ratio(rows, prec)
        if r is not None:
            print(f"{prec} sustained / burst on the anchor shapes: {r:.3f}")
    for prec in ("bf16", "fp8"):
        pts = fit_curve(rows, prec, args.mode)
        if pts:
            print(f"# {prec} gemm_efficiency fitted to {args.csv} ({args.mode}; FLOP-share-weighted median within half a decade)")
            for g, e, n in pts:
                print(f"    - [{g:g}, {e:.3f}]   # {n} measured shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
