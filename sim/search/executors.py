"""Where sweep batches run: in this process, in local worker processes, or on a Dask cluster.

Each executor yields the result of every batch exactly once, in completion order; the caller
writes results to the journal as they come, so a batch lost with a dying worker is simply run
again (process pool: a new pool after BrokenProcessPool; Dask: task retries and rescheduling).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from sim.errors import UserError

MAX_POOL_RESTARTS = 3     # pool breaks in a row without a finished batch before giving up
DASK_RETRIES = 3          # per-task retries on the Dask cluster (on top of rescheduling after a worker loss)

Batch = list
BatchFn = Callable[[Batch], list]


def run_inline(batches: list[Batch], fn: BatchFn) -> Iterator[list]:
    for b in batches:
        yield fn(b)


def run_local(batches: list[Batch], fn: BatchFn, workers: int) -> Iterator[list]:
    """Batches on ``workers`` local processes (in this process when workers is 1)."""
    if workers <= 1:
        yield from run_inline(batches, fn)
        return
    pending = dict(enumerate(batches))
    breaks = 0
    while pending:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(pending)))
        try:
            futs = {pool.submit(fn, b): k for k, b in pending.items()}
            todo = set(futs)
            while todo:
                done, todo = wait(todo, return_when=FIRST_COMPLETED)
                done = sorted(done, key=lambda f: futs[f])
                for f in done:
                    if f.exception() is None:
                        del pending[futs[f]]
                        breaks = 0
                        yield f.result()
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()   # BrokenProcessPool when a worker died
        except BrokenProcessPool:
            breaks += 1
            if breaks > MAX_POOL_RESTARTS:
                raise UserError(f"worker processes keep dying ({breaks} pool failures in a row); "
                                f"{sum(len(b) for b in pending.values())} points not evaluated; "
                                "finished points are saved: rerun the same command to resume") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def dask_client(address: str):
    """A dask.distributed Client connected to ``address``; UserError when dask is missing or unreachable."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--dask-scheduler needs dask.distributed: pip install 'moe-sim[dask]'") from None
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(e).split())}") from None


def dask_threads(client) -> int:
    return max(1, sum(client.nthreads().values()))


def run_dask(batches: list[Batch], fn: BatchFn, client, tag: str) -> Iterator[list]:
    """Batches as Dask tasks (retried DASK_RETRIES times; the scheduler reruns a lost worker's tasks).
    Batches that still fail are reported after every other batch has been yielded."""
    from distributed import as_completed

    futs = [client.submit(fn, b, key=f"moe-sim-{tag}-{i}", pure=False, retries=DASK_RETRIES)
            for i, b in enumerate(batches)]
    size = {f.key: len(b) for f, b in zip(futs, batches, strict=True)}
    failed: list[tuple[int, BaseException]] = []
    try:
        for f in as_completed(futs):
            if f.status == "finished":
                yield f.result()
            else:
                failed.append((size[f.key], f.exception()))
    finally:
        for f in futs:
            f.release()
    if failed:
        n = sum(k for k, _ in failed)
        e = failed[0][1]
        raise UserError(f"{n} points failed on the Dask cluster ({type(e).__name__}: {' '.join(str(e).split())}); "
                        "finished points are saved: rerun the same command to resume")


def default_workers() -> int:
    return os.cpu_count() or 1
