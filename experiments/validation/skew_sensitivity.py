"""How much the routing-skew assumption moves the MoE entries: every entry with real (not forced)
routing, run with the base skew preset and with its measured-dynamics variants (``aux_loss`` /
``aux_loss_dynamic`` / ``global_batch_dynamic``, ``loss_free`` / ``loss_free_dynamic``;
sim/moe/skew.py), whichever of them the entry states.

Writes skew_sensitivity.csv: name, metric, published, skew, stated (the entry's own preset), predicted,
error_pct, max_over_mean.
Usage: python experiments/validation/skew_sensitivity.py [--out DIR] [--only PATTERN]   (~3 min)
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import sys
from pathlib import Path

import pandas as pd

from sim.config.routing import RoutingConfig
from sim.validate.load import entry_runspec, load_entries
from sim.validate.runner import run_entry

HERE = Path(__file__).resolve().parent
# each base preset and its measured variants (same popularity, measured per-micro-batch swings)
VARIANTS = {"aux_loss": ("aux_loss_dynamic", "global_batch_dynamic"), "loss_free": ("loss_free_dynamic",)}
BASE = {v: k for k, vs in VARIANTS.items() for v in vs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--only", default="*", help="entry-name pattern (default: every entry)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    default_skew = RoutingConfig.model_fields["skew"].default
    rows = []
    for e in load_entries():
        routing = e.run.get("routing", {})
        if not fnmatch.fnmatch(e.name, args.only) or routing.get("mode", "dropless") == "balanced":
            continue
        stated = routing.get("skew", default_skew)
        base = BASE.get(stated, stated)
        if base not in VARIANTS or not entry_runspec(e).model.is_moe:
            continue
        for skew in (base, *VARIANTS[base]):
            entry = copy.deepcopy(e)
            entry.run.setdefault("routing", {})["skew"] = skew
            r = run_entry(entry)
            rows.append(dict(name=e.name, metric=r.metric, published=r.published, skew=skew,
                             stated=skew == stated, predicted=r.predicted, error_pct=r.error_pct,
                             max_over_mean=r.report.max_over_mean_device_load))
            print(f"{e.name:46s} {skew:20s} {r.error_pct:+7.1f}%  max/mean {rows[-1]['max_over_mean']:.2f}", flush=True)
    pd.DataFrame(rows).to_csv(out / "skew_sensitivity.csv", index=False, float_format="%.6g")
    print(f"wrote {out / 'skew_sensitivity.csv'} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
