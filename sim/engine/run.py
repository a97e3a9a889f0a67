"""simulate(spec): memory check, then the DES (or the analytic estimate), then the report."""

from __future__ import annotations

from sim.cluster.power import clock_scale
from sim.engine.constants import ANALYTIC_ROUTING_LAYERS, ANALYTIC_SAMPLES
from sim.engine.des import PHASES, simulate_des
from sim.engine.spec import RunSpec
from sim.engine.step import StepInputs, build_step, device_tensor_time
from sim.model.flops import flops_per_token
from sim.model.memory import GIB, MEMORY_PARTS, peak_memory
from sim.report.report import KINDS, StepReport


def power_clock_scale(inp: StepInputs) -> float:
    """The SM clock scale the step's kernel mix allows under the board power cap (sim.cluster.power): 1 for
    a profile without a power model. Each pipeline rank's mix comes from its tensor-core time (the
    programs) over its busy time (the closed-form estimate: compute and exposed communication, bubbles
    excluded); the most loaded rank sets the clock for all (ASSUMPTION: one clock per run; a lightly
    loaded stage off the critical path would run faster, which changes little)."""
    return _power_clock(inp)[0]


def _power_clock(inp: StepInputs):
    """(clock scale, the closed-form estimate it was worked out from, or None without a power model)."""
    dev = inp.spec.hardware.device
    if dev.power is None or dev.power_w is None:
        return 1.0, None
    from sim.analytic.estimate import estimate
    res = estimate(inp)
    scales = [clock_scale(dev.power, dev.power_w, g, a, st.busy_s)
              for (g, a), st in zip(device_tensor_time(inp), res.stages, strict=True)]
    return (float(min(scales)) if scales else 1.0), res


def simulate(spec: RunSpec, executor: str = "des", trace_path: str | None = None,
             check_memory: bool = True) -> StepReport:
    """Simulate one step. A layout that does not fit is reported (fits false, stage, shortfall) and
    not simulated, unless check_memory is False (timing studies of layouts known to be tight)."""
    m, par, w, hw = spec.model, spec.parallel, spec.workload, spec.hardware
    # the analytic screen samples routing for a few MoE layers and micro-batches (layers are
    # statistically alike); the DES samples every layer
    kw = dict(num_samples=ANALYTIC_SAMPLES, routing_layers=ANALYTIC_ROUTING_LAYERS) if executor == "analytic" else {}
    inp = build_step(spec, **kw)
    rc = inp.programs.routing
    load_factor = rc.max_over_mean_worst if rc is not None else 1.0
    mem = peak_memory(m, par, w, load_factor)
    limit = hw.device.hbm_gib - hw.device.reserved_memory_gib
    rep = StepReport(fits=mem.total_gib <= limit, peak_memory_gib=mem.total_gib, memory_limit_gib=limit,
                     worst_stage=mem.stage, executor=executor,
                     memory_gib={k: getattr(mem, k) / GIB for k in MEMORY_PARTS})
    if rc is not None:
        rep.imbalance_score = rc.imbalance_score
        rep.max_over_mean_device_load = rc.max_over_mean
        rep.drop_rate = rc.drop_rate
    if not rep.fits:
        rep.memory_shortfall_gib = mem.total_gib - limit
        rep.reason = (f"does not fit: stage {mem.stage} needs {mem.total_gib:.1f} GiB of {limit:.1f} GiB "
                      f"(short {rep.memory_shortfall_gib:.1f} GiB)")
        if check_memory:
            return rep
    # the clock the power cap allows changes GEMM and attention times, not routing or memory: worked out
    # only for a layout that is simulated, then the programs are rebuilt at that clock
    rep.clock_scale, est = _power_clock(inp)
    if rep.clock_scale < 1.0:
        inp = build_step(spec, clock_scale=rep.clock_scale, **kw)
        est = None                   # worked out at the full clock: not this step's estimate
    if executor == "analytic":
        from sim.analytic.estimate import estimate
        res = est if est is not None else estimate(inp)
    else:
        res = simulate_des(inp, trace=trace_path is not None)
        if trace_path:
            from sim.report.trace import write_chrome_trace
            write_chrome_trace(res.trace, trace_path)
    step = res.step_time_s
    tokens = par.global_batch_size * w.seq_len
    fl = flops_per_token(m, w.seq_len)
    peak = hw.peak_flops("bf16")
    rep.step_time_s = step
    rep.tokens_per_s = tokens / step
    rep.tokens_per_s_per_device = tokens / step / par.devices
    rep.model_tflops_per_device = fl.model_flops * tokens / step / par.devices / 1e12
    rep.mfu = rep.model_tflops_per_device * 1e12 / peak
    pr = inp.programs
    mbs = par.num_microbatches
    hw_flops = sum(sum(pr.hw_flops_fwd[s]) + sum(pr.hw_flops_bwd[s]) for s in range(par.pp)) * mbs / par.pp
    rep.hfu = hw_flops / step / peak
    span = res.pipeline_span_s
    rep.bubble_fraction = sum((span - st.busy_s) / span for st in res.stages) / len(res.stages)
    rep.exposed_comm_s = {k: sum(st.exposed.get(k, 0.0) for st in res.stages) / len(res.stages) for k in KINDS}
    rep.host_wait_s = sum(st.host_wait_s for st in res.stages) / len(res.stages)
    rep.time_breakdown_s = {k: sum(st.phases.get(k, 0.0) for st in res.stages) / len(res.stages) for k in PHASES}
    return rep
