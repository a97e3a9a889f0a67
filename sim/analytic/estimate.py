"""Closed-form step estimate from the same segment lists the DES plays (fast screening).

Per stage, a forward and a backward of one micro-batch cost the sum of their segments, each
communication at its uncontended time (CommModel.time). The pipeline is the classic
(m - 1) x slowest stage + one pass through every stage; interleaving divides the fill and
drain by vpp. Gradient reduction overlaps the last backward; what does not fit is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.engine.step import StepInputs


@dataclass
class StageEstimate:
    busy_s: float
    exposed: dict = field(default_factory=dict)
    last_task_end: float = 0.0
    end: float = 0.0


@dataclass
class EstimateResult:
    step_time_s: float
    stages: list[StageEstimate]
    pipeline_span_s: float
    trace: None = None


def _task_time(inp: StepInputs, segs) -> tuple[float, dict, float]:
    t, exposed, grads = 0.0, {}, 0.0
    for kind, c, a, b, lat in segs:
        if kind == "compute":
            t += c
        elif kind == "grad":
            grads += inp.comm.time(inp.grad_reduce(a, b))
        else:
            d = c + lat + max(a / inp.comm.intra_bw, b / inp.comm.nic_bw)
            t += d
            exposed[kind] = exposed.get(kind, 0.0) + d
    return t, exposed, grads


def estimate(inp: StepInputs) -> EstimateResult:
    par = inp.spec.parallel
    pp, vpp, m = par.pp, par.vpp, par.num_microbatches
    pr = inp.programs
    S = pr.num_samples
    weights = np.bincount(np.arange(m) % S, minlength=S) / m      # micro-batches per routing sample
    per_stage, exposed_mb, grad_s = [], [], []
    for s in range(pp):
        tot, exp, g = 0.0, {}, 0.0
        for c in range(vpp):
            for j in range(S):
                for segs in (pr.fwd[s][c][j], pr.bwd[s][c][j]):
                    t, e, gr = _task_time(inp, segs)
                    tot += weights[j] * t
                    for k, v in e.items():
                        exp[k] = exp.get(k, 0.0) + weights[j] * v
                    g += weights[j] * gr
        per_stage.append(tot)          # one micro-batch through all of the stage's chunks, F + B
        exposed_mb.append(exp)
        grad_s.append(g)
    p2p = inp.comm.time(inp.p2p) if pp > 1 else 0.0
    slow = max(per_stage)
    fill = sum(per_stage) / vpp - slow / vpp + 2 * (pp - 1) * p2p
    span = m * slow + fill
    stages = []
    for s in range(pp):
        busy = m * per_stage[s]
        ex = {k: m * v for k, v in exposed_mb[s].items()}
        ag = sum(inp.comm.time(c) for c in inp.param_gather[s])
        dp = max(0.0, grad_s[s] - per_stage[s] / vpp / 2) + ag   # reduction hidden behind the last backward
        ex["dp"] = dp
        ex["pp_p2p"] = 2 * (pp - 1) * p2p / pp if pp > 1 else 0.0
        stages.append(StageEstimate(busy_s=busy, exposed=ex, last_task_end=span,
                                    end=span + dp + inp.optimizer_s[s]))
    return EstimateResult(step_time_s=max(st.end for st in stages), stages=stages, pipeline_span_s=span)
