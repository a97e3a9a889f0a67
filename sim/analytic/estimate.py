"""Closed-form step estimate from the same segment lists the DES plays (fast screening).

Each task costs the sum of its segments, communication at its uncontended time
(CommModel.time). Two tasks run side by side cost the larger of their compute (slowed by the
profile's comm_sm_fraction) and each one's own chain of compute and communication. The pipeline:

- 1F1B / interleaved: (m - 1) x the slowest stage's micro-batch + one pass through every stage;
  interleaving divides the fill and drain by vpp (Narayanan et al. 2021).
- DualPipe: each rank's slots summed in schedule order, plus the DualPipe bubble
  (PP/2 - 1)(F&B + B - 3W) (DeepSeek-V3 report, Table 2).

Gradient reduction overlaps the last backward; what does not fit is exposed. Results come back
in the DES's own types so the report reads both alike.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np

from sim.engine.des import PHASE_OF, DESResult, StageLog
from sim.engine.step import StepInputs
from sim.schedule.pipeline import dualpipe, microbatches_per_chunk, model_stage, schedule


class _Cost:
    """Time, compute and exposed communication of one task kind, averaged over routing samples."""

    __slots__ = ("time", "compute", "exposed", "host")

    def __init__(self, time=0.0, compute=0.0, exposed=None, host=0.0):
        self.time, self.compute, self.exposed, self.host = time, compute, exposed or {}, host


def _comm_time(inp: StepInputs, c: float, a: float, b: float, lat: float) -> float:
    """Uncontended seconds of a communication segment (fixed part, latency, slower link)."""
    return c + lat + max(a / inp.comm.intra_bw, b / inp.comm.nic_bw)


def _task(inp: StepInputs, segs, skip=()) -> tuple[float, float, dict, float, tuple]:
    """(time, compute, exposed communication by kind, ZeRO-3 gather seconds, host steps) of a segment
    list; the gathers are prefetched on their own stream, so they are returned apart (``_mean_cost``).
    Host steps: ((device seconds since the previous step, host seconds or -1 for a sync), ...), the
    device time after the last step not included; empty without host markers."""
    t = comp = gather = 0.0
    since = 0.0
    steps: list = []
    exposed: dict = {}
    for kind, c, a, b, lat in segs:
        if kind in skip or kind == "grad":
            continue
        if kind in ("host", "hsync"):
            steps.append((t - since, c if kind == "host" else -1.0))
            since = t
            continue
        if kind == "fsdp_ag":
            gather += _comm_time(inp, c, a, b, lat)
            continue
        if kind in ("compute", "wgrad"):
            t += c
            comp += c
        else:
            d = _comm_time(inp, c, a, b, lat)
            t += d
            exposed[kind] = exposed.get(kind, 0.0) + d
    return t, comp, exposed, gather, tuple(steps)


def _alone(cost: tuple) -> float:
    """A block's seconds played from an idle host and device (its host waits included)."""
    t, hs = cost[0], cost[4]
    return _host_play(0.0, 0.0, t, hs)[0] if hs else t


def _host_play(end: float, hclock: float, t: float, steps: tuple) -> tuple[float, float, float]:
    """(device end, host clock, device seconds waiting for the host) after a block of device time t
    with host steps, from a device end and host clock (the DES's host markers, in closed form)."""
    wait = 0.0
    done = 0.0
    for d, h in steps:
        end += d
        done += d
        if h < 0:
            hclock = max(hclock, end)
        else:
            hclock += h
            if hclock > end:
                wait += hclock - end
                end = hclock
    return end + (t - done), hclock, wait


def _block_costs(inp: StepInputs) -> dict:
    """(block, phase) -> (time, compute, exposed) of every distinct block of the run."""
    out = {}
    # a weight gradient X^T dY needs no weights; its issue time is counted with the input gradient's
    wgrad_only = ("compute", "tp", "cp", "ep_a2a", "fsdp_ag", "host", "hsync")
    for key, blk in inp.programs.blocks.items():
        out[key, "F"] = _task(inp, blk.fwd)
        out[key, "B"] = _task(inp, blk.bwd)
        out[key, "b"] = _task(inp, blk.bwd, skip=("wgrad",))
        out[key, "W"] = _task(inp, blk.bwd, skip=wgrad_only)
    return out


def _mean_cost(bc: dict, layout, ph: str, weights, gather_stretch: float = 1.0) -> _Cost:
    """A task's cost from its blocks in order. ZeRO-3: the blocks' weight all-gathers run one block
    ahead (a gather starts when the block before it starts, as in the DES), and a block starts no
    earlier than its own gather ends; each gather is ``gather_stretch`` times its uncontended time
    (it shares the link with the reduce-scatters)."""
    out = _Cost()
    for j, w in enumerate(weights):
        if w == 0:
            continue
        end = ready = 0.0            # end: the previous block's end; ready: when the next gather may start
        hclock = 0.0                 # when the host has issued the task's kernels so far
        for key in layout[j]:
            t, comp, ex, g, hs = bc[key, ph]
            if g:
                done = ready + g * gather_stretch
                if done > end:
                    out.exposed["dp"] = out.exposed.get("dp", 0.0) + w * (done - end)
                    end = done
                ready = end          # this block starts now: the next gather may begin
            if hs:
                end, hclock, wait = _host_play(end, hclock, t, hs)
                out.host += w * wait
            else:
                end += t
            out.compute += w * comp
            for k, v in ex.items():
                out.exposed[k] = out.exposed.get(k, 0.0) + w * v
        out.time += w * end
    return out


def _gather_time(bc: dict, layout, ph: str) -> float:
    """ZeRO-3 all-gather seconds of one task (routing sample 0: the weights do not depend on routing)."""
    return sum(bc[key, ph][3] for key in layout[0])


def _reduction_tail(inp: StepInputs, bc: dict, costs: dict, s: int, chunks: int, reduce_time, grad_of) -> float:
    """Seconds the gradient reductions run past stage s's last backward (--overlap-grad-reduce).
    The last backward of each chunk runs back to back, the highest chunk first (1F1B: one chunk);
    each block's reduction joins the DP stream's queue when its backward completes."""
    pr = inp.programs
    name, pp = inp.order_name, inp.spec.parallel.pp
    t = queue = 0.0
    for c in reversed(range(chunks)):
        ms, mc = model_stage(name, pp, s, c)
        for key in reversed(pr.layout[ms][mc][0]):
            t += _alone(bc[key, "B"])
            g = grad_of[key]
            if g[0] or g[1]:
                queue = max(queue, t) + reduce_time(g)
    return max(0.0, queue - t)


def _pair(a: _Cost, b: _Cost, slow: float) -> float:
    """Lower bound of two tasks side by side on one device: shared compute (slowed while
    communication is in flight beside it), each one's own chain of compute and communication."""
    comp = a.compute + b.compute
    comm = (a.time - a.compute) + (b.time - b.compute)
    return max(comp + (slow - 1.0) * min(comm, comp), a.time, b.time)


def _interleave(inp: StepInputs, a_segs, b_segs, slow: float) -> float:
    """Two tasks side by side as the DES plays them: each a chain of segments; compute segments
    queue first-come first-served on the one compute stream (slowed while the other task has a
    transfer in flight), communication segments run on the task's own chain."""
    def steps(segs):
        return [(True, c) if kind in ("compute", "wgrad") else (False, _comm_time(inp, c, a, b, lat))
                for kind, c, a, b, lat in segs if kind not in ("grad", "fsdp_ag", "host", "hsync")]   # gathers: prefetched

    chains = (steps(a_segs), steps(b_segs))
    ready = [0.0, 0.0]               # when each chain is ready for its next segment
    comms: tuple[list, list] = ([], [])   # each chain's transfer intervals
    pos = [0, 0]
    free = 0.0                       # when the compute stream is next free
    while True:
        for j in (0, 1):             # transfers need no compute: start them as soon as reached
            while pos[j] < len(chains[j]) and not chains[j][pos[j]][0]:
                t0 = ready[j]
                ready[j] += chains[j][pos[j]][1]
                comms[j].append((t0, ready[j]))
                pos[j] += 1
        live = [j for j in (0, 1) if pos[j] < len(chains[j])]
        if not live:
            return max(ready)
        i = min(live, key=lambda j: (ready[j], j))       # the earliest compute request goes first
        d = chains[i][pos[i]][1]
        pos[i] += 1
        start = max(ready[i], free)
        if any(t0 <= start < t1 for t0, t1 in comms[1 - i]):
            d *= slow                # the other task's transfer holds some compute units
        free = ready[i] = start + d


def _grad_elems(segs) -> tuple[float, float]:
    """(dense, expert) gradient elements a block's backward completes."""
    g = [(a, b) for kind, _c, a, b, _l in segs if kind == "grad"]
    return sum(a for a, _ in g), sum(b for _, b in g)


@lru_cache(maxsize=64)
def _overlap_slots(name: str, pp: int, vpp: int, m: int) -> tuple:
    return tuple(tuple(st) for st in schedule(name, pp, vpp, m, overlap=True))


@lru_cache(maxsize=64)
def _dualpipe_slots(pp: int, m: int) -> tuple:
    return tuple(tuple(dualpipe(pp, m, r)) for r in range(pp))


def _shared_nic(par, grads: list[float], per_mb: float) -> float:
    """Stretch of a pipeline send that shares the NIC with ZeRO-2's per-micro-batch gradient
    reductions. Those run one at a time on the DP stream, so a send that meets one gets half the
    link: on average 1 + u longer, u = one micro-batch's reduction time over its compute time."""
    if not par.shard_gradients or per_mb <= 0:
        return 1.0
    return 1.0 + min(1.0, max(grads) / per_mb)


def estimate(inp: StepInputs) -> DESResult:
    par = inp.spec.parallel
    pp, vpp, m = par.pp, par.vpp, par.num_microbatches
    name = inp.order_name
    pr = inp.programs
    S = pr.num_samples
    weights = np.bincount(np.arange(m) % S, minlength=S) / m      # micro-batches per routing sample
    slow = 1.0 / (1.0 - inp.spec.hardware.device.comm_sm_fraction)
    p2p = inp.comm.time(inp.p2p) if pp > 1 else 0.0
    chunks = 2 if name == "dualpipe" else vpp
    bc = _block_costs(inp)
    grad_of = {k: _grad_elems(blk.bwd) for k, blk in pr.blocks.items()}
    overlap = inp.spec.parallel.overlap_grad_reduce
    costs = {}                                                     # (stage, chunk, phase) -> _Cost
    grads = [0.0] * pp                                             # per stage: its gradient-reduction time
    layer_ag = [0.0] * pp                                          # per stage: ZeRO-3 gathers of one micro-batch
    reduce_s: dict = {}                                            # (dense, expert) elements -> seconds

    def reduce_time(g: tuple[float, float]) -> float:
        if g not in reduce_s:
            reduce_s[g] = inp.comm.time(inp.grad_reduce(*g))
        return reduce_s[g]

    for s in range(pp):
        stage_grads = []                                           # (dense, expert) elements per block
        for c in range(chunks):
            ms, mc = model_stage(name, pp, s, c)
            for ph in ("F", "B", "b", "W"):
                costs[s, c, ph] = _mean_cost(bc, pr.layout[ms][mc], ph, weights)
            layer_ag[s] += _gather_time(bc, pr.layout[ms][mc], "F") + _gather_time(bc, pr.layout[ms][mc], "B")
            chunk_grads = [grad_of[k] for k in pr.layout[ms][mc][0]]
            if overlap:                                            # one reduction per layer as it completes
                grads[s] += sum(reduce_time(g) for g in chunk_grads)
            stage_grads += chunk_grads
        if not overlap:                                            # one reduction after the whole backward
            grads[s] = reduce_time((sum(g[0] for g in stage_grads), sum(g[1] for g in stage_grads)))
        if par.shard_parameters and layer_ag[s]:
            # ZeRO-3: the backward's gathers share the link with the reduce-scatters its blocks issue
            # as they finish, which run a fraction u of the backward (u: one micro-batch's reductions
            # over its backward), so a gather meets one that often and then gets half the link: 1 + u
            # longer on average. Where the link is the bottleneck (gathers + reductions exceed the
            # backward) the NIC bound below takes over, so u counts only the reductions that fit
            # beside the gathers; the rest spills into the next forward and stretches its gathers the
            # same way. (Totals track the DES; in link-bound runs the forward/backward split of the
            # exposed time does not: the DES charges the backward.)
            f_time = sum(costs[s, c, "F"].time for c in range(chunks))
            b_time = sum(costs[s, c, "B"].time for c in range(chunks))
            b_ag = sum(_gather_time(bc, pr.layout[ms][mc], "B")
                       for ms, mc in (model_stage(name, pp, s, c) for c in range(chunks)))
            fits = max(0.0, min(grads[s], b_time - b_ag))
            u_b = fits / b_time if b_time > 0 else 0.0
            u_f = min(1.0, (grads[s] - fits) / f_time) if f_time > 0 else 0.0
            for c in range(chunks):
                ms, mc = model_stage(name, pp, s, c)
                for ph, u in (("F", u_f), ("B", u_b), ("b", u_b)):
                    costs[s, c, ph] = _mean_cost(bc, pr.layout[ms][mc], ph, weights, 1.0 + u)
    pair_cache: dict = {}

    def pair(s: int, ta: tuple, tb: tuple) -> float:
        """Mean over routing samples of two tasks (phase, chunk, ...) of stage s played side by side."""
        (pa, ca), (pb, cb) = ta[:2], tb[:2]
        key = (s, pa, ca, pb, cb)
        if key not in pair_cache:
            ma, mca = model_stage(name, pp, s, ca)
            mb_, mcb = model_stage(name, pp, s, cb)
            tot = sum(w * _interleave(inp, pr.table(pa)[ma][mca][j], pr.table(pb)[mb_][mcb][j], slow)
                      for j, w in enumerate(weights) if w)
            pair_cache[key] = max(tot, _pair(costs[s, ca, pa], costs[s, cb, pb], slow))
        return pair_cache[key]

    logs = [StageLog() for _ in range(pp)]
    exposed_mb = []
    if name == "dualpipe":
        busy = []
        for s, slots in enumerate(_dualpipe_slots(pp, m)):
            t = 0.0
            ex: dict = defaultdict(float)
            for slot in slots:
                if len(slot) == 1:
                    ph, c, _ = slot[0]
                    k = costs[s, c, ph]
                    t += k.time
                    logs[s].phases[PHASE_OF[ph]] += k.time
                    logs[s].host_wait_s += k.host
                    for kk, v in k.exposed.items():
                        ex[kk] += v
                else:
                    a, b = (costs[s, tk[1], tk[0]] for tk in slot)
                    d = pair(s, *slot)
                    t += d
                    logs[s].phases["overlapped"] += d
                    for kk in set(a.exposed) | set(b.exposed):   # exposed only past the other's compute
                        ex[kk] += max(0.0, d - (a.compute + b.compute)) * 0.5
            busy.append(t)
            exposed_mb.append(ex)
        mean = lambda ph, c: sum(costs[s, c, ph].time for s in range(pp)) / pp   # noqa: E731
        fb = sum(pair(s, ("F", 0), ("B", 1)) for s in range(pp)) / pp
        p2p_eff = p2p * _shared_nic(par, grads, max(busy) / m)
        bubble = max(0.0, (pp // 2 - 1) * (fb + mean("b", 0) - 3 * mean("W", 0))) + 2 * (pp - 1) * p2p_eff
        span = max(busy) + bubble
    else:
        # with 1F1B a2a overlap each stage walks its own slot order: a forward beside the next backward
        # of *another* micro-batch or chunk, singles where there is none (plain 1F1B's last stage runs
        # each micro-batch's F then its own B, so it stays unpaired, as in the DES)
        slot_lists = _overlap_slots(name, pp, vpp, m) if par.a2a_overlap else None
        per = []
        for s in range(pp):
            ex = defaultdict(float)
            for c in range(vpp):
                for kk, v in list(costs[s, c, "F"].exposed.items()) + list(costs[s, c, "B"].exposed.items()):
                    ex[kk] += v
            exposed_mb.append({k: v * m for k, v in ex.items()})
            ph_time = logs[s].phases
            if slot_lists is None:
                for c in range(vpp):
                    ph_time["forward"] += m * costs[s, c, "F"].time
                    ph_time["backward"] += m * costs[s, c, "B"].time
                    logs[s].host_wait_s += m * (costs[s, c, "F"].host + costs[s, c, "B"].host)
            else:
                for slot in slot_lists[s]:
                    if len(slot) == 1:
                        ph, c, _ = slot[0]
                        ph_time[PHASE_OF[ph]] += costs[s, c, ph].time
                        logs[s].host_wait_s += costs[s, c, ph].host
                    else:
                        ph_time["overlapped"] += pair(s, *slot)
            per.append(sum(ph_time.values()) / m)   # one micro-batch through all of the stage's chunks, F + B
        slowest = max(per)
        fill = sum(per) / vpp - slowest / vpp + 2 * (pp - 1) * p2p * _shared_nic(par, grads, slowest)
        span = m * slowest + fill
        busy = [m * t for t in per]
    every_mb = par.shard_gradients
    for s in range(pp):
        lg = logs[s]
        lg.busy_s = busy[s]
        lg.exposed = defaultdict(float, exposed_mb[s])
        f_mean = sum(costs[s, c, "F"].time for c in range(chunks)) / chunks
        ag, ag_exposed = 0.0, 0.0
        for c in range(chunks):
            # the all-gathers run block by block, one after another on the DP stream from the step's
            # start; chunk c's first forward starts after the c x pp chunk forwards before it (the
            # interleaved order) and each of its blocks waits for its own gather
            ms, mc = model_stage(name, pp, s, c)
            t = c * pp * f_mean
            for key, cost in zip(pr.layout[ms][mc][0], inp.param_gather[s][c], strict=False):
                ag += inp.comm.time(cost)
                ag_exposed = max(ag_exposed, ag - t)
                t += _alone(bc[key, "F"])
        if not par.overlap_param_gather:      # one blocking all-gather after the optimizer step
            ag_exposed = ag
        if overlap and name != "dualpipe" and not every_mb:
            grad_exposed = _reduction_tail(inp, bc, costs, s, chunks, reduce_time, grad_of)
        else:   # DualPipe, or ZeRO-2/3 (a backlog from earlier micro-batches): half the last backward hides them
            grad_exposed = max(0.0, grads[s] - (costs[s, 0, "B"].time / 2 if overlap else 0.0))
        dp = grad_exposed + max(0.0, ag_exposed)
        if every_mb:
            # ZeRO-2: every micro-batch reduces its gradients, one collective after another on the DP
            # stream; the first follows the stage's first backward: its warm-up forwards, then (1F1B)
            # the gradient's way back from the last stage (the interleaved warm-up already spans it)
            b_task = sum(costs[s, c, "B"].time for c in range(chunks)) / chunks
            # (the first forward waits for the parameter all-gather; the first reduction starts once
            # the chunk's last layer is through its backward, about half-way through the task)
            if name == "interleaved":
                first_b = (s + min(m * vpp, (pp - s - 1) * 2 + (vpp - 1) * pp) + 1) * f_mean + b_task / 2
            else:
                first_b = (s + min(m, pp - s - 1) + 1) * f_mean + (pp - s - 0.5) * b_task
            sends = 2 * chunks * p2p if inp.p2p.inter_bytes else 0.0   # the stage's own sends share the NIC
            if par.shard_parameters:
                # ZeRO-3's gathers keep the NIC busy from the stage's first forward on, which waits for
                # the stages before it (DualPipe feeds the pipeline from both ends)
                first_b = (min(s, pp - 1 - s) if name == "dualpipe" else s) * f_mean
            # grads, sends and gathers are summed over the rank's chunks; each chunk runs
            # microbatches_per_chunk of the m micro-batches (DualPipe: m / 2 each way)
            nic_end = ag + first_b + microbatches_per_chunk(name, m) * (grads[s] + sends + layer_ag[s])
            dp = max(dp, nic_end - span)
        lg.exposed["dp"] += dp
        lg.exposed["pp_p2p"] += 2 * (pp - 1) * p2p / pp if pp > 1 else 0.0
        lg.last_task_end = span
        lg.end = span + dp + inp.optimizer_s[s]
        lg.phases["bubble"] += span - busy[s]
        lg.phases["optimizer"] += dp + inp.optimizer_s[s]
    step = max(lg.end for lg in logs)
    return DESResult(step_time_s=step, stages=logs, pipeline_span_s=span, trace=None)
