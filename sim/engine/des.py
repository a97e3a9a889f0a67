"""The discrete-event executor: one training step played with SimPy.

One process per pipeline stage (``pipeline_stage``) walks its schedule's slots; a slot runs one
task, or two side by side (a forward beside another micro-batch's backward). Each task
(``run_task``) walks its segment list, holding the stage's compute stream for compute and pushing
communication bytes through the stage's shared scale-up link and NIC. While two tasks overlap,
GPU communication kernels take the profile's ``comm_sm_fraction`` of the compute units, so a
compute segment that starts while an in-layer collective (TP, CP, EP all-to-all) of the other task
is in flight runs that much slower (pipeline sends and DP collectives use a channel or two: ignored).
Data-parallel collectives (gradient reductions, parameter all-gathers) share one communicator and
stream, so they run one after another, in issue order, beside whatever else crosses the links;
ZeRO-3's per-layer weight all-gathers run on a stream of their own, one block ahead of compute
(the next gather starts when the block before it starts), and a block waits for its own. Data-parallel replicas are symmetric and represented by one; the
EP ranks of a stage enter as the hottest rank's costs, prepared with numpy (engine.routing_costs).

Pipeline sends: under 1F1B and interleaved a task's output leaves as soon as the task ends, into an
unbounded buffer. DualPipe walks its implementation's op list (``schedule.pipeline.dualpipe_ops``):
receives and sends queue up and go out as one group at each commit, which waits for the whole group
before the next compute, and a send moves no bytes until its receiver has posted the receive.

Every instant of a stage's step is attributed to one state (``PHASES``): idle (the pipeline
bubble), forward, backward, weight-gradient, overlapped forward+backward, or optimizer (the
tail after the stage's last task: waiting for the gradient reduction, then the update).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import simpy

from sim.cluster.link import SharedLink
from sim.engine.step import StepInputs
from sim.schedule.pipeline import (
    dependency,
    dualpipe_ops,
    has_consumer,
    microbatches_per_chunk,
    model_stage,
    schedule,
)

KINDS = ("tp", "cp", "ep_a2a", "pp_p2p", "dp")
PHASES = ("forward", "backward", "weight_grad", "overlapped", "bubble", "optimizer")
PHASE_OF = {"F": "forward", "B": "backward", "b": "backward", "W": "weight_grad", "FB": "overlapped"}


@dataclass
class StageLog:
    busy_s: float = 0.0                      # wall time with at least one task running
    compute_s: float = 0.0
    exposed: dict = field(default_factory=lambda: defaultdict(float))
    host_wait_s: float = 0.0                 # the stream idle, waiting for the host to issue kernels
    phases: dict = field(default_factory=lambda: defaultdict(float))
    last_task_end: float = 0.0
    end: float = 0.0
    done: bool = False


@dataclass
class DESResult:
    step_time_s: float
    stages: list[StageLog]
    pipeline_span_s: float
    trace: list | None


class _Stage:
    def __init__(self, env, idx, inp: StepInputs, trace):
        self.env, self.idx = env, idx
        self.compute = simpy.Resource(env, capacity=1)
        self.intra = SharedLink(env, inp.comm.intra_bw, f"intra{idx}")
        self.nic = SharedLink(env, inp.comm.nic_bw, f"nic{idx}")
        self.dp_stream = simpy.Resource(env, capacity=1)   # data-parallel collectives run one at a time
        self.ag_stream = simpy.Resource(env, capacity=1)   # ZeRO-3 weight all-gathers: their own stream
        self.log = StageLog()
        self.running: list[str] = []          # phases of the tasks running now
        self.since = 0.0
        self.compute_since: float | None = None
        self.comm_active = 0                  # in-layer collectives (tp, cp, ep_a2a) in flight
        self.dp_wait_mark = 0.0               # end of the last weight-gather wait already counted as exposed
        self.trace = trace

    def _state(self) -> str:
        if not self.running:
            return "bubble"
        kinds = {PHASE_OF[p] for p in self.running}
        return kinds.pop() if len(kinds) == 1 else "overlapped"

    def _close(self):
        now = self.env.now
        self.log.phases[self._state()] += now - self.since
        if self.running:
            self.log.busy_s += now - self.since
        self.since = now

    def enter(self, phase: str):
        self._close()
        self.running.append(phase)

    def leave(self, phase: str):
        self._close()
        self.running.remove(phase)

    def compute_done(self) -> float:
        """Compute-stream busy time so far, including the segment in progress."""
        extra = self.env.now - self.compute_since if self.compute_since is not None else 0.0
        return self.log.compute_s + extra

    def record(self, name, cat, start, stream):
        if self.trace is not None and self.env.now > start:
            self.trace.append((self.idx, stream, name, cat, start, self.env.now - start))


def simulate_des(inp: StepInputs, trace: bool = False) -> DESResult:
    par = inp.spec.parallel
    pp, vpp, m = par.pp, par.vpp, par.num_microbatches
    name = inp.order_name
    env = simpy.Environment()
    tr: list | None = [] if trace else None
    stages = [_Stage(env, s, inp, tr) for s in range(pp)]
    ready: dict = {}                      # (phase, stage, chunk, mb) -> event (activation/gradient arrived)
    posted: dict = {}                     # same key -> event (its receiver has posted the receive)
    arrived_dur: dict = {}                # same key -> p2p transfer duration
    # each stage's op list: DualPipe issues its point-to-point traffic as explicit groups
    # (sim.schedule.pipeline.dualpipe_ops); the other schedules only run slots, and each output leaves
    # as soon as it is ready, into an unbounded buffer
    grouped = name == "dualpipe"
    ops = [dualpipe_ops(pp, m, s) for s in range(pp)] if grouped else \
        [[("run", slot) for slot in row] for row in schedule(name, pp, vpp, m, overlap=par.a2a_overlap)]
    chunks_per_rank = 2 if name == "dualpipe" else vpp
    last_mb = microbatches_per_chunk(name, m) - 1
    progs = inp.programs
    tables = {"F": progs.fwd, "B": progs.bwd, "b": progs.bwd_input, "W": progs.bwd_weight}
    S = progs.num_samples
    slowdown = 1.0 / (1.0 - inp.spec.hardware.device.comm_sm_fraction)
    param_ready = {}
    grad_events = defaultdict(list)
    overlap_grads = inp.spec.parallel.overlap_grad_reduce
    every_mb = inp.spec.parallel.shard_gradients   # ZeRO-2: each micro-batch reduce-scatters its gradients
    overlap_params = inp.spec.parallel.overlap_param_gather
    held = defaultdict(lambda: [0.0, 0.0])     # stage -> gradient elements (dense, expert) not yet reduced

    def ev(key, table=ready):
        if key not in table:
            table[key] = env.event()
        return table[key]

    def push(st: _Stage, intra, inter, lat):
        """Latency, then the bytes through the stage's scale-up link and NIC at once."""
        if lat:
            yield env.timeout(lat)
        evs = [lk.transfer(n) for lk, n in ((st.intra, intra), (st.nic, inter)) if n]
        if evs:
            yield env.all_of(evs)

    def comm(st: _Stage, kind, intra, inter, lat, label):
        start = env.now
        busy0 = st.compute_done()
        st.comm_active += 1
        yield from push(st, intra, inter, lat)
        st.comm_active -= 1
        dur = env.now - start
        hidden = min(dur, st.compute_done() - busy0)     # the other task's compute ran meanwhile
        st.log.exposed[kind] += dur - hidden
        st.record(label, kind, start, "comm")

    def grad_reduce(st: _Stage, dense, expert):
        c = inp.grad_reduce(dense, expert)
        with st.dp_stream.request() as req:
            yield req
            start = env.now
            yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
        st.record("grad_reduce", "dp", start, "dp")

    def param_gather(st: _Stage, work):
        """The distributed optimizer's all-gather of the stage's weights, chunk after chunk and
        bucket (block) by bucket in forward order; each block's first forward waits for its own
        (--overlap-param-gather). work: [(costs, events)] per chunk."""
        for costs, events in work:
            for c, done in zip(costs, events, strict=True):
                with st.dp_stream.request() as req:
                    yield req
                    start = env.now
                    yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
                st.record("param_gather", "dp", start, "dp")
                done.succeed()

    def layer_gather(st: _Stage, c, done):
        with st.ag_stream.request() as req:
            yield req
            start = env.now
            yield from push(st, c[2], c[3], c[4])
        st.record("param_gather", "dp", start, "ag")
        done.succeed()

    def run_task(st: _Stage, task, paired: bool):
        ph, c, mb = task
        s = st.idx
        dep = dependency(task, s, pp, vpp, name)
        if dep is not None:
            wait0 = env.now
            yield ev(dep)
            waited = env.now - wait0
            if waited > 0 and dep[1] != s:
                st.log.exposed["pp_p2p"] += min(waited, arrived_dur.get(dep, 0.0))
        label = "FB" if paired else ph        # a paired slot's whole span counts as overlapped F&B
        st.enter(label)
        start = env.now
        ms, mc = model_stage(name, pp, s, c)
        segs = tables[ph][ms][mc][mb % S]
        waits = []                            # the step's first forward of the chunk: one wait per block
        if ph == "F" and mb == 0 and (s, c) in param_ready:
            segs = progs.forward_by_block(ms, mc, mb % S)
            waits = list(reversed(param_ready[(s, c)]))
        # ZeRO-3: the task's block all-gathers, one ahead: the first now, each next one when the block
        # before it starts computing (two whole-weight buffers: the one in use, the one filling)
        ag_segs = [sg for sg in segs if sg[0] == "fsdp_ag"]
        gathers: list = []

        def next_gather():
            if len(gathers) < len(ag_segs):
                gathers.append(env.event())
                env.process(layer_gather(st, ag_segs[len(gathers) - 1], gathers[-1]))

        next_gather()
        n_ag = 0
        hclock = env.now                      # when the host has issued the task's kernels so far
        for kind, t, a, b, lat in segs:
            if kind == "host":                # the part just played cannot end before its host issued it
                hclock += t
                if env.now < hclock:
                    h0 = env.now
                    yield env.timeout(hclock - h0)
                    st.log.host_wait_s += env.now - h0
                    st.record(f"host:{ph}{mb}", "host", h0, "compute")
            elif kind == "hsync":             # the host waits for the device (token counts)
                hclock = max(hclock, env.now)
            elif kind == "compute" or kind == "wgrad":
                with st.compute.request() as req:
                    yield req
                    t0 = env.now
                    scale = slowdown if st.comm_active else 1.0   # comm kernels hold some compute units
                    st.compute_since = t0
                    yield env.timeout(t * scale)
                    st.compute_since = None
                    st.log.compute_s += t * scale
                    st.record(f"{ph}{mb}.c{c}", "compute", t0, "compute")
            elif kind in ("fsdp_ag", "pg_wait"):
                w0, busy0 = env.now, st.compute_done()
                if kind == "fsdp_ag":
                    yield gathers[n_ag]
                    n_ag += 1
                    next_gather()
                else:
                    yield waits.pop()
                # exposed: the wait not covered by compute, and not already counted for a paired
                # task waiting over the same interval
                waited = env.now - max(w0, st.dp_wait_mark)
                if waited > 0:
                    st.log.exposed["dp"] += waited - min(waited, st.compute_done() - busy0)
                    st.dp_wait_mark = env.now
            elif kind == "grad":
                if every_mb or (mb == last_mb and overlap_grads):
                    grad_events[s].append(env.process(grad_reduce(st, a, b)))
                elif mb == last_mb:          # reduced in one go after the stage's whole backward
                    held[s][0] += a
                    held[s][1] += b
            else:
                yield from comm(st, kind, a, b, lat, f"{kind}:{ph}{mb}")
        st.leave(label)
        st.record(f"{ph}{mb}.c{c}", "task", start, "task")
        st.log.last_task_end = max(st.log.last_task_end, env.now)
        if ph == "W":
            return
        key = ("F" if ph == "F" else "B", s, c, mb)
        if not has_consumer(ph, s, c, pp, vpp, name):
            ev(key).succeed()                # consumed on this stage (the last stage's own backward)
        elif not grouped:
            env.process(p2p_send(st, key))   # activation (F) or gradient (B) to the neighbour stage

    def p2p_send(st: _Stage, key):
        if grouped:                          # a p2p group completes once the receiver has posted its side
            yield ev(key, posted)
        start = env.now
        c = inp.p2p
        yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
        arrived_dur[key] = env.now - start
        st.record(f"send {key[0]}{key[3]}", "pp_p2p", start, "p2p")
        e = ev(key)
        if not e.triggered:
            e.succeed()

    def run_slot(st: _Stage, slot):
        if len(slot) == 1:
            yield env.process(run_task(st, slot[0], False))
        else:
            yield env.all_of([env.process(run_task(st, t, True)) for t in slot])

    def commit(st: _Stage, queued):
        """Post the queued receives and sends as one group and wait for all of them (DualPipe)."""
        waits, keys = [], []
        for kind, task in queued:
            if kind == "recv":
                key = dependency(task, st.idx, pp, vpp, name)
                ev(key, posted).succeed()
                waits.append(ev(key))
            else:
                ph, c, mb = task
                key = (ph, st.idx, c, mb)
                waits.append(env.process(p2p_send(st, key)))
            keys.append(key)
        t0 = env.now
        yield env.all_of(waits)
        waited = env.now - t0
        if waited > 0:                   # the part of the wait that is transfer time, not the neighbour's lateness
            st.log.exposed["pp_p2p"] += min(waited, max(arrived_dur.get(k, 0.0) for k in keys))
            st.record("wait p2p group", "pp_p2p", t0, "p2p")

    def pipeline_stage(st: _Stage):
        queued: list = []
        for op in ops[st.idx]:
            if op[0] == "run":
                yield from run_slot(st, op[1])
            elif op[0] == "commit":
                if queued:
                    yield from commit(st, queued)
                    queued = []
            else:
                queued.append(op)
        st._close()
        t0 = env.now
        if any(held[st.idx]):
            grad_events[st.idx].append(env.process(grad_reduce(st, *held[st.idx])))
        if grad_events[st.idx]:                  # the optimizer step waits for its gradients
            yield env.all_of(grad_events[st.idx])
            st.log.exposed["dp"] += env.now - t0
        t1 = env.now
        yield env.timeout(inp.optimizer_s[st.idx])
        st.record("optimizer", "optimizer", t1, "compute")
        if not overlap_params:                   # one blocking all-gather of the updated weights
            t2 = env.now
            for cost in (cc for row in inp.param_gather[st.idx] for cc in row):
                yield from push(st, cost.intra_bytes, cost.inter_bytes, cost.latency_s)
            st.record("param_gather", "dp", t2, "dp")
            st.log.exposed["dp"] += env.now - t2
        st.log.phases["optimizer"] += env.now - t0
        st.since = env.now
        st.log.end = env.now
        st.log.done = True

    for st in stages:
        work = []
        for c in range(chunks_per_rank):
            costs = inp.param_gather[st.idx][c]
            if overlap_params and any(cc.intra_bytes or cc.inter_bytes for cc in costs):
                param_ready[(st.idx, c)] = [env.event() for _ in costs]
                work.append((costs, param_ready[(st.idx, c)]))
        if work:
            env.process(param_gather(st, work))
        env.process(pipeline_stage(st))
    env.run()
    if not all(st.log.done for st in stages):     # a schedule whose waits form a cycle: a bug, not an input error
        raise RuntimeError(f"pipeline schedule {name!r} deadlocked (pp {pp}, {m} micro-batches)")
    step = max(st.log.end for st in stages)
    for st in stages:                          # a stage that finished early idles until the step ends
        st.log.phases["bubble"] += step - st.log.end
    span = max(st.log.last_task_end for st in stages)
    return DESResult(step_time_s=step, stages=[st.log for st in stages], pipeline_span_s=span, trace=tr)
