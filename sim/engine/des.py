"""The discrete-event executor: one training step played with SimPy.

One process per pipeline stage (``pipeline_stage``) runs its schedule's tasks; each task
(``run_task``) walks its segment list, holding the stage's compute stream for compute and
pushing communication bytes through the stage's shared scale-up link and NIC. Data-parallel
replicas are symmetric and represented by one; the EP ranks of a stage enter as the hottest
rank's costs, prepared with numpy (see engine.routing_costs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import simpy

from sim.cluster.link import SharedLink
from sim.engine.step import StepInputs
from sim.schedule.pipeline import dependency, schedule

KINDS = ("tp", "cp", "ep_a2a", "pp_p2p", "dp")


@dataclass
class StageLog:
    busy_s: float = 0.0                      # wall time with at least one task running
    compute_s: float = 0.0
    exposed: dict = field(default_factory=lambda: defaultdict(float))
    last_task_end: float = 0.0
    end: float = 0.0


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
        self.log = StageLog()
        self.active = 0
        self.active_since = 0.0
        self.trace = trace

    def enter(self):
        if self.active == 0:
            self.active_since = self.env.now
        self.active += 1

    def leave(self):
        self.active -= 1
        if self.active == 0:
            self.log.busy_s += self.env.now - self.active_since

    def record(self, name, cat, start, stream):
        if self.trace is not None and self.env.now > start:
            self.trace.append((self.idx, stream, name, cat, start, self.env.now - start))


def simulate_des(inp: StepInputs, trace: bool = False) -> DESResult:
    par = inp.spec.parallel
    pp, vpp, m = par.pp, par.vpp, par.num_microbatches
    env = simpy.Environment()
    tr: list | None = [] if trace else None
    stages = [_Stage(env, s, inp, tr) for s in range(pp)]
    ready: dict = {}                      # (phase, stage, chunk, mb) -> event (activation/gradient arrived)
    arrived_dur: dict = {}                # same key -> p2p transfer duration
    orders = schedule(inp.order_name, pp, vpp, m)
    progs = inp.programs
    S = progs.num_samples
    overlap = par.a2a_overlap or par.schedule_name == "dualpipe"
    param_ready = {}
    grad_events = defaultdict(list)

    def ev(key):
        if key not in ready:
            ready[key] = env.event()
        return ready[key]

    def push(st: _Stage, intra, inter, lat):
        """Latency, then the bytes through the stage's scale-up link and NIC at once."""
        if lat:
            yield env.timeout(lat)
        evs = [lk.transfer(n) for lk, n in ((st.intra, intra), (st.nic, inter)) if n]
        if evs:
            yield env.all_of(evs)

    def comm(st: _Stage, kind, intra, inter, lat, name):
        start = env.now
        busy0 = st.log.compute_s
        yield from push(st, intra, inter, lat)
        dur = env.now - start
        hidden = min(dur, st.log.compute_s - busy0) if overlap else 0.0
        st.log.exposed[kind] += dur - hidden
        st.record(name, kind, start, "comm")

    def grad_reduce(st: _Stage, dense, expert):
        c = inp.grad_reduce(dense, expert)
        start = env.now
        yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
        st.record("grad_reduce", "dp", start, "dp")

    def param_gather(st: _Stage, c, key):
        start = env.now
        yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
        st.record("param_gather", "dp", start, "dp")
        param_ready[key].succeed()

    def run_task(st: _Stage, task):
        ph, c, mb = task
        s = st.idx
        dep = dependency(task, s, pp, vpp)
        if dep is not None:
            wait0 = env.now
            yield ev(dep)
            waited = env.now - wait0
            if waited > 0:
                st.log.exposed["pp_p2p"] += min(waited, arrived_dur.get(dep, 0.0))
        elif ph == "B" and s == pp - 1:
            yield ev(("F", s, c, mb))   # own forward of the last chunk (already done in order)
        if ph == "F" and mb == 0 and (s, c) in param_ready:
            w0 = env.now
            yield param_ready[(s, c)]
            st.log.exposed["dp"] += env.now - w0
        st.enter()
        start = env.now
        segs = (progs.fwd if ph == "F" else progs.bwd)[s][c][mb % S]
        last_mb = ph == "B" and mb == m - 1
        for kind, t, a, b, lat in segs:
            if kind == "compute":
                with st.compute.request() as req:
                    yield req
                    t0 = env.now
                    yield env.timeout(t)
                    st.log.compute_s += t
                    st.record(f"{ph}{mb}.c{c}", "compute", t0, "compute")
            elif kind == "grad":
                if last_mb:
                    grad_events[s].append(env.process(grad_reduce(st, a, b)))
            else:
                yield from comm(st, kind, a, b, lat, f"{kind}:{ph}{mb}")
        st.leave()
        st.record(f"{ph}{mb}.c{c}", "task", start, "task")
        st.log.last_task_end = max(st.log.last_task_end, env.now)
        key = (ph, s, c, mb)
        if (ph == "F" and s == pp - 1 and c == vpp - 1) or (ph == "B" and s == 0 and c == 0):
            if ph == "F":
                ev(key).succeed()          # the last stage's own backward consumes it, no send
        else:
            env.process(p2p_send(st, key))  # activation (F) or gradient (B) to the neighbour stage

    def p2p_send(st: _Stage, key):
        start = env.now
        c = inp.p2p
        yield from push(st, c.intra_bytes, c.inter_bytes, c.latency_s)
        arrived_dur[key] = env.now - start
        st.record(f"send {key[0]}{key[3]}", "pp_p2p", start, "p2p")
        e = ev(key)
        if not e.triggered:
            e.succeed()

    def pipeline_stage(st: _Stage):
        order = orders[st.idx]
        i = 0
        while i < len(order):
            task = order[i]
            nxt = order[i + 1] if i + 1 < len(order) else None
            if overlap and nxt is not None and task[0] != nxt[0] and task[1:] != nxt[1:]:
                # steady state: one micro-batch's forward and another's backward run side by side,
                # so one's all-to-all hides behind the other's compute (Megatron 1F1B a2a overlap, DualPipe)
                pf = env.process(run_task(st, task))
                pb = env.process(run_task(st, nxt))
                yield pf & pb
                i += 2
            else:
                yield env.process(run_task(st, task))
                i += 1
        if grad_events[st.idx]:
            w0 = env.now
            yield env.all_of(grad_events[st.idx])
            st.log.exposed["dp"] += env.now - w0
        t0 = env.now
        yield env.timeout(inp.optimizer_s[st.idx])
        st.record("optimizer", "optimizer", t0, "compute")
        st.log.end = env.now

    # the ready-events of a task are keyed by its own identity; a consumer waits on its producer's key
    # (dependency() returns the producer), so p2p_send fires the producer's key on arrival.
    for st in stages:
        for c in range(vpp):
            cost = inp.param_gather[st.idx][c]
            if cost.intra_bytes or cost.inter_bytes:
                param_ready[(st.idx, c)] = env.event()
                env.process(param_gather(st, cost, (st.idx, c)))
        env.process(pipeline_stage(st))
    env.run()
    step = max(st.log.end for st in stages)
    span = max(st.log.last_task_end for st in stages)
    return DESResult(step_time_s=step, stages=[st.log for st in stages], pipeline_span_s=span, trace=tr)
