"""`moe-sim sweep`: evaluate every point of a sweep spec into one results table (resumable)."""

from __future__ import annotations

import sys
from collections import Counter

from sim.errors import UserError


def _positive(text: str) -> int:
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="run a sweep spec into a results table",
        description="Evaluate every point of a sweep spec (base run, axes, derive, constraints, objective, "
        "layout fixed|search, executor) and write one row per point: inputs, derived total/active "
        "parameters, report columns, point_id, status (ok|infeasible|error) and reason. Finished rows go "
        "to OUT.partial.jsonl as they complete; rerunning the same command after an interruption "
        "resumes. The final table is sorted by point index and identical however many workers ran it.")
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec")
    p.add_argument("--out", required=True, metavar="FILE", help="results table: .csv or .parquet")
    p.add_argument("--workers", type=_positive, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--dask-scheduler", metavar="tcp://HOST:PORT", help="run points on a Dask cluster instead")
    p.add_argument("--limit", type=_positive, metavar="N", help="evaluate only the first N points (the journal is "
                   "kept, so a later run without --limit continues)")
    p.add_argument("--dry-run", action="store_true", help="count the points and constraint exclusions; simulate nothing")
    return p


def _dry_run(args) -> int:
    from sim.search.sweep import plan
    spec, points, dup = plan(args.spec)
    if args.limit is not None:
        points = points[:args.limit]
    out = Counter("simulate" if p.task else p.reason.split(" = ")[0].split(":")[0] for p in points)
    print(f"{args.spec}: {len(points)} points ({spec.executor} executor, layout {spec.layout.mode})"
          + (f"; {dup} duplicate combinations removed" if dup else ""))
    for k, n in sorted(out.items(), key=lambda kv: (kv[0] != "simulate", -kv[1], kv[0])):
        print(f"  {n:>7,}  {'to simulate' if k == 'simulate' else 'ruled out: ' + k}")
    return 0


def run(args) -> int:
    if args.workers is not None and args.dask_scheduler:
        raise UserError("give --workers or --dask-scheduler, not both")
    if args.dry_run:
        return _dry_run(args)
    from sim.search.sweep import run_sweep
    try:
        res = run_sweep(args.spec, args.out, workers=args.workers, dask_scheduler=args.dask_scheduler,
                        limit=args.limit, command="moe-sim " + " ".join(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted: finished points are saved in {args.out}.partial.jsonl; "
                         "rerun the same command to resume\n")
        return 130
    counts = ", ".join(f"{k} {res.status.get(k, 0)}" for k in ("ok", "infeasible", "error"))
    print(f"wrote {res.out}: {res.points} points ({counts}); {res.evaluated} simulated now, "
          f"{res.resumed} from an earlier run, {res.elapsed_s:.1f} s")
    if res.duplicates:
        print(f"  {res.duplicates} axis combinations duplicated an earlier point and were left out")
    if not res.complete:
        print(f"  --limit: the spec has more points; rerun without --limit to continue ({args.out}.partial.jsonl kept)")
    if res.best is not None:
        sense, col = res.objective.split()
        print(f"  best ({res.objective}): point {res.best['point_index']} ({res.best['point_id']}) {col} = {res.best[col]:.6g}")
    return 0
