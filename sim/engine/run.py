"""simulate(spec): memory check, then the DES (or the analytic estimate), then the report."""

from __future__ import annotations

from sim.engine.constants import ANALYTIC_ROUTING_LAYERS, ANALYTIC_SAMPLES
from sim.engine.des import PHASES, simulate_des
from sim.engine.spec import RunSpec
from sim.engine.step import build_step
from sim.model.flops import flops_per_token
from sim.model.memory import peak_memory
from sim.report.report import KINDS, StepReport


def simulate(spec: RunSpec, executor: str = "des", trace_path: str | None = None,
             check_memory: bool = True) -> StepReport:
    """Simulate one step. A layout that does not fit is reported (fits false, stage, shortfall) and
    not simulated, unless check_memory is False (timing studies of layouts known to be tight)."""
    m, par, w, hw = spec.model, spec.parallel, spec.workload, spec.hardware
    # the analytic screen samples routing for a few MoE layers and micro-batches (layers are
    # statistically alike); the DES samples every layer
    inp = build_step(spec, num_samples=ANALYTIC_SAMPLES, routing_layers=ANALYTIC_ROUTING_LAYERS) \
        if executor == "analytic" else build_step(spec)
    rc = inp.programs.routing
    load_factor = rc.max_over_mean_worst if rc is not None else 1.0
    mem = peak_memory(m, par, w, load_factor)
    limit = hw.device.hbm_gib - hw.device.reserved_memory_gib
    rep = StepReport(fits=mem.total_gib <= limit, peak_memory_gib=mem.total_gib, memory_limit_gib=limit,
                     worst_stage=mem.stage, executor=executor)
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
    if executor == "analytic":
        from sim.analytic.estimate import estimate
        res = estimate(inp)
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
    rep.time_breakdown_s = {k: sum(st.phases.get(k, 0.0) for st in res.stages) / len(res.stages) for k in PHASES}
    return rep
