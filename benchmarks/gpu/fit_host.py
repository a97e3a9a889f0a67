#!/usr/bin/env python3
"""Print the host-cost numbers a benchmarks/gpu/layer_host.py measurement implies, as YAML for a profile.

Run: python benchmarks/gpu/fit_host.py hw_profiles/measurements/h100-sxm-2026-11-23/parts.csv
Nothing here changes a profile by itself.
"""

from __future__ import annotations

import argparse
import sys

from sim.cluster.host_fit import fit_host, read_parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts_csv")
    args = ap.parse_args(argv)
    try:
        fit = fit_host(read_parts(args.parts_csv))
    except (OSError, KeyError, ValueError) as e:
        print(f"fit_host: {args.parts_csv}: {e}", file=sys.stderr)
        return 2
    print("host:")
    for k, (f, b) in fit.items():
        print(f"  {k}: [{f:.0f}, {b:.0f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
