"""Software-stack mechanisms: the measured flash-attention curve, unfused attention, selective-recompute modules, gradient-reduction overlap.

Each is checked against a hand calculation or a published formula, not only for direction.
"""

from __future__ import annotations

import math

import pytest

from sim.cluster.compute import ComputeModel
from sim.config import load_model
from sim.config.model import ModelConfig
from sim.config.parallel import DEFAULT_SELECTIVE, ParallelConfig
from sim.config.workload import Workload
from sim.engine.program import COMPUTE_PIECES, ProgramBuilder
from sim.engine.run import simulate
from sim.engine.spec import make_runspec
from sim.engine.step import build_step
from sim.errors import UserError
from sim.model.memory import layer_activation_bytes
from tests.helpers import device_only

GPT = dict(name="gpt-small", num_layers=4, hidden_size=2048, num_attention_heads=16, ffn_hidden_size=8192,
           vocab_size=32000, attention="mha", activation="gelu")


def _spec(work=None, model=None, hardware="a100-80g", routing=None, **par):
    p = dict(devices=8, tp=1, pp=1, global_batch_size=16, micro_batch_size=1, recompute="none",
             distributed_optimizer=False)
    p.update(par)
    return make_runspec(dict(model=model or GPT, hardware=device_only(hardware), parallel=p,
                             workload=work or dict(seq_len=2048), routing=routing or dict(mode="balanced")))


def _builder(spec):
    """(step inputs, program builder) of a run spec."""
    inp = build_step(spec)
    return inp, ProgramBuilder(spec.model, spec.parallel, spec.workload, spec.routing, inp.cm, inp.comm)


# --- flash attention on the profile's measured kernel curve --------------------------------


@pytest.mark.parametrize("seq", [512, 2048, 3000, 16384, 65536])
def test_flash_core_reads_the_profile_attention_curve(seq):
    """H100: forward at the fwd column, backward = 2.5x the FLOPs at the bwd column, both read
    at the kernel's sequence length (log-interpolated, flat beyond the last point)."""
    spec = _spec(hardware="h100-sxm", work=dict(seq_len=seq))
    inp, pb = _builder(spec)
    fwd, bwd, flops = pb.core
    assert flops == pytest.approx(seq * 16 * 2 * 128 * 2 * seq / 2)      # causal QK^T + AV, one sequence
    pts = spec.hardware.device.flash_attention_efficiency
    xs = [p[0] for p in pts]
    i = max(0, min(len(pts) - 2, sum(x <= seq for x in xs) - 1))
    (x0, f0, b0), (x1, f1, b1) = pts[i], pts[i + 1]
    w = min(1.0, max(0.0, (math.log(seq) - math.log(x0)) / (math.log(x1) - math.log(x0))))
    peak = 989.4e12
    assert fwd == pytest.approx(flops / (peak * (f0 + w * (f1 - f0))), rel=1e-12)
    assert bwd == pytest.approx(2.5 * flops / (peak * (b0 + w * (b1 - b0))), rel=1e-12)


def test_flash_core_without_a_curve_stays_on_the_gemm_curve():
    """A profile without flash_attention_efficiency (A100 here) times the core on the GEMM curve."""
    spec = _spec(work=dict(seq_len=4096))
    assert spec.hardware.device.flash_attention_efficiency is None
    inp, pb = _builder(spec)
    fwd, bwd, flops = pb.core
    cm = ComputeModel(spec.hardware)
    assert fwd == pytest.approx(flops / (312e12 * float(cm.efficiency(flops))), rel=1e-12)
    assert bwd == pytest.approx(2.5 * fwd, rel=1e-12)


def test_flash_curve_is_validated():
    from sim.config.hardware import DeviceSpec
    base = dict(name="x", peak_tflops=dict(bf16=1.0), hbm_gib=1, hbm_bandwidth_GBps=1,
                gemm_efficiency=[[1.0, 0.5]])
    with pytest.raises(ValueError, match="strictly increasing"):
        DeviceSpec(**base, flash_attention_efficiency=[[4096, 0.5, 0.5], [1024, 0.4, 0.4]])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        DeviceSpec(**base, flash_attention_efficiency=[[4096, 0.5, 1.5]])


# --- unfused attention -------------------------------------------------------------------


def test_unfused_attention_time_by_hand():
    """The unfused core = two batched GEMMs (memory floor: the s x s scores) + softmax + dropout passes."""
    spec = _spec(work=dict(seq_len=2048, attention_kernel="unfused", attention_dropout=0.1))
    inp, pb = _builder(spec)
    fwd, bwd, flops = pb.core
    s, n, d = 2048, 16, 128
    E = n * s * s
    cm = ComputeModel(spec.hardware)
    bmm = float(cm.gemm_time(2 * E * d, 2 * E * d, act_bytes=2 * (E + 2 * s * n * d), low_precision=False))
    mem = lambda nbytes: nbytes / cm.mem_bw  # noqa: E731
    assert fwd == pytest.approx(2 * bmm + mem(4 * E) + mem(5 * E), rel=1e-12)
    assert bwd == pytest.approx(4 * bmm + mem(5 * E) + mem(6 * E), rel=1e-12)
    assert flops == pytest.approx(4 * E * d)          # the full s x s, not the causal half


def test_unfused_attention_slower_than_flash_and_dropout_costs():
    flash = simulate(_spec())
    unfused = simulate(_spec(work=dict(seq_len=2048, attention_kernel="unfused")))
    dropout = simulate(_spec(work=dict(seq_len=2048, attention_kernel="unfused", attention_dropout=0.1)))
    assert flash.step_time_s < unfused.step_time_s < dropout.step_time_s


def test_unfused_attention_memory_is_korthikanti_5as_term():
    """Korthikanti et al. 2022 eq. 1: unfused attention keeps 5 a s^2 b bytes per layer with dropout
    (softmax output 2, mask 1, dropout output 2), 2 a s^2 b without; flash keeps fp32 softmax stats."""
    m = load_model("megatron-gpt-1.7b")
    par = ParallelConfig(devices=8, tp=2, global_batch_size=8, recompute="none", sequence_parallel=False)
    s, b, a = 2048, 1, m.num_attention_heads
    flash = layer_activation_bytes(m, par, Workload(seq_len=s), False)
    unf = layer_activation_bytes(m, par, Workload(seq_len=s, attention_kernel="unfused", attention_dropout=0.1), False)
    nodrop = layer_activation_bytes(m, par, Workload(seq_len=s, attention_kernel="unfused"), False)
    stats = 4.0 * s * b * a / par.tp
    assert unf - flash == pytest.approx(5 * a * s * s * b / par.tp - stats)
    assert nodrop - flash == pytest.approx(2 * a * s * s * b / par.tp - stats)
    # recomputing the attention core (Korthikanti's selective recompute) drops the s^2 term
    sel = par.model_copy(update={"recompute": "selective", "recompute_modules": ["core_attn"]})
    kept = layer_activation_bytes(m, sel, Workload(seq_len=s, attention_kernel="unfused", attention_dropout=0.1), False)
    assert kept == pytest.approx(unf - 5 * a * s * s * b / par.tp)


def test_workload_rejects_bad_attention_fields():
    with pytest.raises(UserError, match="attention_kernel"):
        _spec(work=dict(seq_len=2048, attention_kernel="paged"))
    with pytest.raises(UserError, match="attention_dropout"):
        _spec(work=dict(seq_len=2048, attention_dropout=1.5))


# --- selective recompute modules ---------------------------------------------------------


def test_default_selective_equals_explicit_default_modules():
    a = simulate(_spec(recompute="selective"))
    b = simulate(_spec(recompute="selective", recompute_modules=list(DEFAULT_SELECTIVE)))
    assert a.to_dict() == b.to_dict()


def test_recompute_modules_need_selective():
    with pytest.raises(UserError, match="recompute_modules needs recompute 'selective'"):
        _spec(recompute="full", recompute_modules=["moe"])
    with pytest.raises(UserError, match="recompute_modules"):
        _spec(recompute="selective", recompute_modules=["everything"])


def _moe_spec(mods):
    model = dict(GPT, name="tiny-moe", num_layers=2,
                 moe=dict(num_experts=8, top_k=2, expert_ffn_hidden_size=2048))
    return _spec(model=model, hardware="h100-sxm", devices=8, ep=8, global_batch_size=16,
                 recompute="selective", recompute_modules=mods)


def test_moe_recompute_repeats_the_whole_block():
    """Recomputing the MoE block adds its forward (router, experts and both all-to-alls) to the
    backward, in place of the norm alone; the attention part is untouched."""
    inp, pb = _builder(_moe_spec(["layernorm"]))
    base = inp.programs
    full = build_step(_moe_spec(["layernorm", "moe"])).programs
    key = next(k for k in base.blocks if k[0] == "moe")
    part = pb.moe(key[1], key[2], base.routing)
    moe_compute = sum(sg[1] for sg in part.segs if sg[0] in COMPUTE_PIECES)
    norm = sum(sg[1] for sg in part.recompute)
    bwd_compute = lambda blk: sum(sg[1] for sg in blk.bwd if sg[0] == "compute")  # noqa: E731
    extra = bwd_compute(full.blocks[key]) - bwd_compute(base.blocks[key])
    assert extra == pytest.approx(moe_compute - norm, rel=1e-9) and extra > 0
    n_a2a = lambda blk: sum(1 for sg in blk.bwd if sg[0] == "ep_a2a")  # noqa: E731
    assert n_a2a(full.blocks[key]) == n_a2a(base.blocks[key]) + 2
    assert full.blocks[key].flops_re == pytest.approx(part.flops) and base.blocks[key].flops_re == 0


def test_moe_recompute_trades_memory_for_time():
    lo = simulate(_moe_spec(["layernorm", "moe"]))
    hi = simulate(_moe_spec(["layernorm", "moe_act"]))
    assert lo.peak_memory_gib < hi.peak_memory_gib
    assert lo.step_time_s > hi.step_time_s
    # hardware FLOPs (hfu x step time) grow by the recomputed block; model FLOPs do not
    assert lo.hfu * lo.step_time_s > hi.hfu * hi.step_time_s
    assert lo.mfu * lo.step_time_s == pytest.approx(hi.mfu * hi.step_time_s, rel=1e-9)


# --- gradient-reduction overlap ----------------------------------------------------------


def test_grad_reduce_after_backward_exposes_the_whole_reduction():
    """Without overlap the stage's whole gradient reduction sits between its last backward and the
    optimizer step: the exposed DP time equals the reduction's own time."""
    spec = _spec(devices=16, global_batch_size=16, overlap_grad_reduce=False)
    inp = build_step(spec)
    pr = inp.programs
    dense = sum(sg[2] for k in pr.layout[0][0][0] for sg in pr.blocks[k].bwd if sg[0] == "grad")
    want = inp.comm.time(inp.grad_reduce(dense, 0.0))
    rep = simulate(spec)
    assert rep.exposed_comm_s["dp"] == pytest.approx(want, rel=1e-9)
    overlapped = simulate(_spec(devices=16, global_batch_size=16))
    assert overlapped.exposed_comm_s["dp"] < rep.exposed_comm_s["dp"]
    assert overlapped.step_time_s < rep.step_time_s
    analytic = simulate(spec, executor="analytic")
    assert analytic.exposed_comm_s["dp"] == pytest.approx(want, rel=1e-9)


# --- sharded gradients (ZeRO-2) ----------------------------------------------------------


def _zero2(**kw):
    par = dict(devices=16, global_batch_size=64, distributed_optimizer=True)
    par.update(kw)
    return _spec(**par)


def test_shard_gradients_needs_the_distributed_optimizer():
    with pytest.raises(UserError, match="shard_gradients needs distributed_optimizer"):
        _spec(devices=16, shard_gradients=True)


def test_shard_gradients_reduces_every_microbatch():
    """ZeRO-2 reduce-scatters each layer's gradients after every micro-batch's backward (m of them
    per layer), ZeRO-1 after the last one only; the reductions share one DP stream, so the step lasts
    at least m times one micro-batch's reductions."""
    from sim.engine.des import simulate_des
    spec = _zero2(shard_gradients=True)
    inp = build_step(spec)
    pr = inp.programs
    m = spec.parallel.num_microbatches
    grads = [sg[2] for k in pr.layout[0][0][0] for sg in pr.blocks[k].bwd if sg[0] == "grad" and sg[2]]
    count = lambda res: sum(1 for ev in res.trace if ev[2] == "grad_reduce")  # noqa: E731
    sharded = simulate_des(inp, trace=True)
    assert count(sharded) == m * len(grads)
    assert count(simulate_des(build_step(_zero2()), trace=True)) == len(grads)
    per_mb = sum(inp.comm.time(inp.grad_reduce(g, 0.0)) for g in grads)
    assert sharded.step_time_s >= m * per_mb
    assert sharded.step_time_s >= simulate(_zero2()).step_time_s


def test_shard_gradients_keeps_a_gradient_shard_and_one_layer():
    """Gradient memory: the fp32 shard (1/dp of the stage's parameters) plus one layer's full
    gradient in flight, instead of a full fp32 buffer."""
    from sim.model.memory import GRAD_BYTES, stage_memory, stage_params
    from sim.model.partition import partition
    spec = _zero2(shard_gradients=True)
    m, par = spec.model, spec.parallel
    chunks = partition(m, par)[0]
    sp = stage_params(m, par, chunks)
    got = stage_memory(m, par, spec.workload, 0).gradients
    assert got == pytest.approx(GRAD_BYTES * (sp.dense / par.dp + sp.dense / m.num_layers), rel=1e-12)
    full = stage_memory(m, _zero2().parallel, spec.workload, 0).gradients
    assert full == pytest.approx(GRAD_BYTES * sp.dense, rel=1e-12)


def test_dp_collectives_run_one_at_a_time():
    """Gradient reductions and parameter all-gathers share the DP communicator's stream: on every
    stage each starts only after the previous one has finished."""
    from sim.engine.des import simulate_des
    res = simulate_des(build_step(_zero2(shard_gradients=True, devices=32, pp=2, vpp=2)), trace=True)
    for stage in (0, 1):
        evs = sorted((ev[4], ev[4] + ev[5]) for ev in res.trace if ev[0] == stage and ev[1] == "dp")
        assert len(evs) > 2
        assert all(b[0] >= a[1] - 1e-12 for a, b in zip(evs, evs[1:], strict=False))


def test_analytic_tracks_des_with_sharded_gradients():
    """The screen's NIC bound (m reductions after the warm-up, beside the stage's sends) stays near
    the DES on a pipelined layout whose DP traffic dominates."""
    for extra in (dict(), dict(vpp=2), dict(global_batch_size=128)):     # 1F1B, interleaved, more micro-batches
        kw = dict(devices=32, pp=2, global_batch_size=64, work=dict(seq_len=256))
        kw.update(extra)
        spec = _zero2(shard_gradients=True, **kw)
        des = simulate(spec, check_memory=False).step_time_s
        assert des > 1.05 * simulate(_zero2(**kw), check_memory=False).step_time_s   # the DP traffic binds
        ana = simulate(spec, executor="analytic", check_memory=False).step_time_s
        assert ana == pytest.approx(des, rel=0.05)


# --- CLI ---------------------------------------------------------------------------------


def test_run_cli_stack_flags(capsys):
    import json

    from sim.cli.main import main
    base = ["run", "--model", "megatron-gpt-1.7b", "--hardware", "a100-80g", "--devices", "8", "--pp", "2",
            "--gbs", "8", "--seq", "2048", "--format", "json"]
    assert main(base + ["--recompute", "none"]) == 0
    flash = json.loads(capsys.readouterr().out)
    assert main(base + ["--recompute", "selective", "--recompute-modules", "layernorm,core_attn",
                        "--attention-kernel", "unfused", "--no-overlap-grad-reduce",
                        "--account-for-embedding-and-loss"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["step_time_s"] > flash["step_time_s"]
    assert main(base + ["--recompute", "full", "--recompute-modules", "moe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "recompute_modules" in err and len(err.strip().splitlines()) == 1
    assert main(base + ["--recompute", "none", "--shard-gradients"]) == 0
    zero2 = json.loads(capsys.readouterr().out)
    assert zero2["peak_memory_gib"] < flash["peak_memory_gib"]
    assert main(base + ["--shard-gradients", "--no-overlap-grad-reduce"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "shard_gradients" in err and len(err.strip().splitlines()) == 1


# --- TP communication overlap (Megatron-Core --tp-comm-overlap) ------------------------------


def _tp_spec(overlap: bool, hardware: str = "h100-sxm"):
    return _spec(hardware=hardware, devices=8, tp=4, sequence_parallel=True, tp_comm_overlap=overlap,
                 work=dict(seq_len=4096))


def test_tp_overlap_exposes_what_the_chunked_gemm_cannot_cover():
    spec = _tp_spec(True)
    inp, pb = _builder(spec)
    c = pb.tp_gather
    t = inp.comm.time(c)
    assert t > 0
    for t_gemm, splits in ((0.0, 4), (0.5 * t, 4), (10 * t, 4), (2 * t, 8)):
        want = max(t / splits, t - t_gemm * (splits - 1) / splits) / t
        got = pb.overlapped(c, t_gemm, splits)
        assert got.intra_bytes == pytest.approx(c.intra_bytes * min(1.0, want), rel=1e-12)
    assert pb.overlapped(c, 0.0, 4) == c                      # nothing to hide behind: fully exposed
    off = ProgramBuilder(spec.model, spec.parallel.model_copy(update={"tp_comm_overlap": False}),
                         spec.workload, spec.routing, inp.cm, inp.comm)
    assert off.overlapped(c, 10 * t, 4) is c and off.sm_margin(1.0, 0.2) == []


GPT_WIDE = dict(GPT, name="gpt-wide", num_layers=2, hidden_size=12288, num_attention_heads=96, ffn_hidden_size=49152)


def test_tp_overlap_hides_tp_time_and_costs_sm_margin_on_gpus_only():
    off, on = simulate(_tp_spec(False)), simulate(_tp_spec(True))
    assert on.exposed_comm_s["tp"] < 0.5 * off.exposed_comm_s["tp"]
    # the trade-off: at hidden 2,048 the tp-times-smaller chunked GEMMs lose more on the efficiency curve
    # than the overlap hides; at GPT-3's width (12,288) the overlap wins
    assert on.step_time_s > off.step_time_s
    wide = [simulate(_spec(hardware="h100-sxm", devices=8, tp=4, sequence_parallel=True, tp_comm_overlap=f,
                           model=GPT_WIDE)) for f in (False, True)]
    assert wide[1].exposed_comm_s["tp"] < 0.5 * wide[0].exposed_comm_s["tp"]
    assert wide[1].step_time_s < wide[0].step_time_s
    # the chunked GEMMs are tp times smaller, so they sit lower on the efficiency curve
    gemm = {}
    for flag in (False, True):
        sp = _tp_spec(flag)
        inp, pb = _builder(sp)
        gemm[flag] = [sg[1] for sg in pb.dense_ffn.segs if sg[0] == "gemm"][0]
    flops = 2.0 * 4096 * (2 * 2048 * 8192) / 4
    cm = ComputeModel(_tp_spec(True).hardware)
    assert gemm[True] == pytest.approx(flops / (989.4e12 * float(cm.efficiency(flops / 8))), rel=1e-9)
    assert gemm[True] > gemm[False]
    _, pb = _builder(_tp_spec(True))
    assert pb.sm_margin(1.0, 0.25) == [("core", 1.0 / 3.0, 0.0, 0.0, 0.0)]     # 25% of SMs gone: 4/3 the time
    npu = _tp_spec(True, hardware="ascend-910b")
    inp, pb = _builder(npu)
    assert pb.sm_margin(1.0, 0.25) == []                      # HCCL runs on DMA engines


def test_tp_overlap_needs_sequence_parallel_tp():
    with pytest.raises(UserError, match="tp_comm_overlap"):
        _spec(tp=1, tp_comm_overlap=True)
    with pytest.raises(UserError, match="tp_comm_overlap"):
        _spec(tp=2, sequence_parallel=False, tp_comm_overlap=True)


# --- FP8 operand quantization ------------------------------------------------------------


def test_fp8_casts_by_hand():
    """Dense FFN under FP8: forward quantises fc1's input (the layer input) and fc2's input, read in
    BF16 and written as FP8 + one FP32 scale per 128; backward re-tiles both saved inputs and
    quantises both output gradients in both tilings (DeepSeek-V3 sec. 3.3.2 / 3.5.2)."""
    spec = _spec(hardware="h100-sxm", work=dict(seq_len=2048, precision="fp8"))
    inp, pb = _builder(spec)
    t, h, f = 2048, 2048, 8192
    q = 1 + 4 / 128
    casts = [p for p in pb.dense_ffn[0] if p[0] == "cast"]
    assert len(casts) == 1
    bw = inp.cm.mem_bw
    assert casts[0][1] == pytest.approx((t * h + t * f) * (2 + q) / bw, rel=1e-12)
    assert casts[0][2] == pytest.approx(((t * h + t * f) * 2 * q + (t * f + t * h) * (2 + 2 * q)) / bw, rel=1e-12)


def test_bf16_has_no_casts_and_fp8_casts_add_their_time_to_a_serial_step(monkeypatch):
    """No casts under BF16. Under FP8 every layer's casts run on the compute stream: with PP1 and the
    clock held fixed, the step grows by exactly layers x micro-batches x (forward + backward casts)."""
    from sim.engine.des import simulate_des
    bf = _builder(_spec(hardware="h100-sxm", work=dict(seq_len=2048)))[1]
    assert not any(p[0] == "cast" for p in bf.dense_ffn[0] + bf.attention[0])
    spec = _spec(hardware="h100-sxm", work=dict(seq_len=2048, precision="fp8"), overlap_grad_reduce=False)
    inp, pb = _builder(spec)
    casts = [p for p in pb.attention[0] + pb.dense_ffn[0] if p[0] == "cast"]
    assert len(casts) == 2
    per_layer = sum(p[1] + p[2] for p in casts)
    with_casts = simulate_des(build_step(spec, clock_scale=1.0)).step_time_s
    monkeypatch.setattr(ProgramBuilder, "cast", lambda self, *a, **k: [])
    without = simulate_des(build_step(spec, clock_scale=1.0)).step_time_s
    mb = spec.parallel.num_microbatches
    assert with_casts - without == pytest.approx(4 * mb * per_layer, rel=1e-9)


def test_fp8_moe_casts_on_the_hot_expert_rank():
    """Routed experts: fc1's input arrives quantised (FP8 dispatch), so forward quantises only fc2's
    input; backward re-tiles both inputs and quantises both output gradients, per routed token."""
    moe = dict(GPT, name="moe-small", moe=dict(num_experts=8, top_k=2, expert_ffn_hidden_size=1024))
    spec = _spec(hardware="h100-sxm", model=moe, ep=8, work=dict(seq_len=2048, precision="fp8"))
    inp = build_step(spec)
    rc = inp.programs.routing
    # forward / backward bytes per routed token (GELU: fc1 has f outputs): f (2 + q) vs (h + f) 2q + (f + h)(2 + 2q)
    h, f, q = 2048, 1024, 1 + 4 / 128
    ratio = ((h + f) * 2 * q + (f + h) * (2 + 2 * q)) / (f * (2 + q))
    assert (rc.expert_cast_bwd_s / rc.expert_cast_fwd_s) == pytest.approx(ratio, rel=1e-12)
    tokens = rc.expert_cast_fwd_s * inp.cm.mem_bw / (f * (2 + q))      # routed tokens on the hot rank
    assert tokens.min() >= 2048 * 2 / 8 * 0.999                          # at least the balanced share


def test_moe_activation_per_routed_token_by_hand():
    """Each routed token copy keeps its dispatched input (h) and the fc1 output and activation output
    (f each, GELU); the expert output is not kept (Megatron-Core applies the routing probabilities
    inside the activation, so the combine saves nothing)."""
    h, f = 2048, 1024
    par = ParallelConfig(devices=8, tp=1, pp=1, ep=8, global_batch_size=8, micro_batch_size=1, recompute="none")
    w = Workload(seq_len=2048)

    def moe(k):
        return ModelConfig(**dict(GPT, name=f"moe-k{k}", moe=dict(num_experts=8, top_k=k, expert_ffn_hidden_size=f)))
    per_copy = layer_activation_bytes(moe(2), par, w, True) - layer_activation_bytes(moe(1), par, w, True)
    assert per_copy == pytest.approx(2048 * 2 * (h + 2 * f), rel=1e-12)
