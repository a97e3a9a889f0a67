"""Run a sweep: plan the points, skip those already in the journal, evaluate the rest on an executor,
journal every finished batch, then write the final table sorted by point index."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sim import __version__
from sim.errors import UserError
from sim.search.evaluate import evaluate_batch
from sim.search.executors import dask_client, dask_threads, default_workers, run_dask, run_local
from sim.search.objective import parse_objective
from sim.search.points import Point, build_points
from sim.search.progress import Progress
from sim.search.results import JOURNAL_SUFFIX, Journal, table_format, write_meta, write_table
from sim.search.spec import SweepSpec, load_sweep_spec

MAX_BATCH = 16        # points per task for fast (analytic, fixed-layout) sweeps
BATCHES_PER_WORKER = 8


@dataclass
class SweepResult:
    out: Path
    points: int                     # points in this run's table
    evaluated: int                  # simulated in this run
    resumed: int                    # taken from the journal of an earlier, interrupted run
    duplicates: int                 # axis combinations that resolved to an earlier point
    status: Counter = field(default_factory=Counter)
    best: dict | None = None        # best ok row by the spec's objective
    objective: str = ""
    elapsed_s: float = 0.0
    complete: bool = True           # False when --limit left points out (the journal is kept)


def plan(spec_path: str) -> tuple[SweepSpec, list[Point], int]:
    spec = load_sweep_spec(spec_path)
    points, dup = build_points(spec, f"sweep spec {spec_path}")
    return spec, points, dup


def batch_size(spec: SweepSpec, n_todo: int, n_workers: int) -> int:
    if spec.executor == "des" or spec.layout.mode == "search":
        return 1          # seconds per point: balance beats per-task overhead
    return max(1, min(MAX_BATCH, math.ceil(n_todo / (n_workers * BATCHES_PER_WORKER))))


def merge_row(p: Point, res: dict) -> dict:
    """One table row: ids and status, inputs, then the worker's columns, reason last."""
    row = {"point_index": p.index, "point_id": p.point_id, "status": res["status"], **p.inputs}
    row.update({k: v for k, v in res.items() if k not in ("status", "reason")})
    row["reason"] = res.get("reason", "")
    return row


def _best(spec: SweepSpec, rows: list[dict]) -> dict | None:
    obj = parse_objective(spec.objective)
    ok = [r for r in rows if r.get("status") == "ok" and obj.value(r) is not None]
    return min(ok, key=lambda r: (obj.key(r), r["point_index"])) if ok else None


def run_sweep(spec_path: str, out: str, workers: int | None = None, dask_scheduler: str | None = None,
              limit: int | None = None, progress: bool | None = None, command: str = "") -> SweepResult:
    t0 = time.perf_counter()
    table_format(out)
    out_p = Path(out)
    if not out_p.parent.is_dir():
        raise UserError(f"--out {out}: folder {out_p.parent} does not exist")
    spec, points, dup = plan(spec_path)
    total = len(points)
    if limit is not None:
        points = points[:limit]
    client = dask_client(dask_scheduler) if dask_scheduler else None
    try:
        journal = Journal(Path(f"{out}{JOURNAL_SUFFIX}"), spec.spec_hash())
    except BaseException:
        if client is not None:
            client.close()
        raise
    try:
        resumed = sum(p.point_id in journal.rows for p in points)
        ruled_out = [p.infeasible_row() for p in points if p.task is None and p.point_id not in journal.rows]
        if ruled_out:
            journal.append(ruled_out)
        todo = [p for p in points if p.task is not None and p.point_id not in journal.rows]
        if client is not None:
            n_workers = dask_threads(client)
        else:
            n_workers = workers or default_workers()
        size = batch_size(spec, len(todo), n_workers)
        batches = [[p.task for p in todo[i:i + size]] for i in range(0, len(todo), size)]
        if client is not None:
            results = run_dask(batches, evaluate_batch, client, tag=spec.spec_hash()[:8])
        else:
            results = run_local(batches, evaluate_batch, n_workers)
        bar = Progress(len(todo), enabled=progress)
        try:
            for batch in results:
                journal.append([merge_row(points[i], res) for i, res in batch])
                bar.update(len(batch))
        finally:
            bar.close()
        rows = [journal.rows[p.point_id] for p in points]
        write_table(rows, out_p)
        res = SweepResult(out=out_p, points=len(rows), evaluated=len(todo), resumed=resumed, duplicates=dup,
                          status=Counter(r["status"] for r in rows), best=_best(spec, rows), objective=spec.objective,
                          elapsed_s=time.perf_counter() - t0, complete=len(points) == total)
        write_meta(out_p, {"moe_sim_version": __version__, "command": command or " ".join(sys.argv),
                           "spec_file": str(spec_path), "spec_hash": spec.spec_hash(),
                           "spec": spec.model_dump(mode="json"), "points": res.points, "points_in_spec": total,
                           "duplicates_removed": dup, "status": dict(sorted(res.status.items()))})
        if res.complete:
            journal.remove()
        return res
    finally:
        journal.close()
        if client is not None:
            client.close()
