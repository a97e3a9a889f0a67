"""Data-parallel state sharding: every weight's gradient is reduced, ZeRO-3 (FSDP) weight all-gathers,
bf16 gradient reduction.

Checked against hand counts (what each layer holds, what moves per micro-batch) and physical
bounds (a step cannot beat the bytes its NIC has to carry), not only for direction.
"""

from __future__ import annotations

import pytest

from sim.config import load_model
from sim.engine.des import simulate_des
from sim.engine.program import PARAM_BYTES
from sim.engine.run import simulate
from sim.engine.spec import make_runspec
from sim.engine.step import build_step
from sim.errors import UserError
from sim.model.memory import WEIGHT_BYTES, stage_memory, stage_params
from sim.model.partition import partition
from sim.schedule.pipeline import microbatches_per_chunk, model_stage
from tests.helpers import device_only

GPT = dict(name="gpt-small", num_layers=4, hidden_size=2048, num_attention_heads=16, ffn_hidden_size=8192,
           vocab_size=32000, attention="mha", activation="gelu")


def _moe_mtp() -> dict:
    """A DeepSeek-V3-shaped MoE (MLA, shared expert, first dense layers, one MTP module), 8 layers."""
    m = load_model("deepseek-v3").model_dump()
    m.update(name="dsv3-8l", num_layers=8, first_k_dense_layers=2)
    return m


def _spec(model=None, hardware="h100-sxm", work=None, routing=None, **par):
    p = dict(devices=16, tp=1, pp=1, global_batch_size=32, micro_batch_size=1, recompute="none",
             distributed_optimizer=True)
    p.update(par)
    return make_runspec(dict(model=model or GPT, hardware=device_only(hardware), parallel=p,
                             workload=work or dict(seq_len=2048), routing=routing or dict(mode="balanced")))


def _zero3(**kw):
    return _spec(shard_gradients=True, shard_parameters=True, **kw)


# --- every weight's gradient is reduced -------------------------------------------------------


@pytest.mark.parametrize("model, par", [
    (GPT, dict()),                                                     # tied embedding, one stage
    (GPT, dict(pp=2)),                                                 # tied: the last stage keeps a copy
    (dict(GPT, tie_embeddings=False, learned_position_embeddings=2048), dict(pp=2, tp=2)),
    ("mixtral-8x7b", dict(devices=32, pp=2, ep=8)),
    (_moe_mtp(), dict(devices=64, pp=2, ep=8, tp=2)),
    (_moe_mtp(), dict(devices=64, pp=2, ep=8, schedule="dualpipe", global_batch_size=256)),
])
def test_gradient_markers_cover_every_weight(model, par):
    """The gradient elements a stage's backward hands to the DP reduction (layers, embedding, head,
    MTP) are exactly the weights the stage holds (memory.stage_params), dense and expert apart."""
    spec = _spec(model=model, **par)
    inp = build_step(spec)
    pr, p = inp.programs, spec.parallel
    parts = partition(spec.model, p)
    for st in range(p.pp):
        for c, ch in enumerate(parts[st]):
            dense = expert = 0.0
            for k in pr.layout[st][c][0]:
                for sg in pr.blocks[k].bwd:
                    if sg[0] == "grad":
                        dense += sg[2]
                        expert += sg[3]
            want = stage_params(spec.model, p, [ch])
            assert dense == pytest.approx(want.dense, rel=1e-12)
            assert expert == pytest.approx(want.expert, rel=1e-12, abs=1e-9)


def test_embedding_gradient_is_reduced_after_the_backward():
    """Without overlap the stage reduces once, after its whole backward: its embedding (the last
    gradient completed) is inside that one reduction, and the exposed DP time is that reduction's."""
    kw = dict(overlap_grad_reduce=False, distributed_optimizer=False, pp=2)
    spec = _spec(**kw)
    inp = build_step(spec)
    sp = stage_params(spec.model, spec.parallel, partition(spec.model, spec.parallel)[0])
    res = simulate_des(inp, trace=True)
    want = inp.comm.time(inp.grad_reduce(sp.dense, 0.0))
    got = [ev[5] for ev in res.trace if ev[0] == 0 and ev[2] == "grad_reduce"]
    assert len(got) == 1 and got[0] == pytest.approx(want, rel=1e-9)


# --- bf16 gradient reduction ----------------------------------------------------------------


def test_grad_reduce_in_bf16_halves_the_bytes():
    fp32 = build_step(_spec(devices=32, ep=1)).grad_reduce(1e8, 0.0)
    bf16 = build_step(_spec(devices=32, grad_reduce_in_bf16=True)).grad_reduce(1e8, 0.0)
    assert fp32.inter_bytes > 0
    assert bf16.inter_bytes == pytest.approx(fp32.inter_bytes / 2, rel=1e-12)
    assert bf16.intra_bytes == pytest.approx(fp32.intra_bytes / 2, rel=1e-12)


# --- ZeRO-3 -------------------------------------------------------------------------------------


def test_shard_parameters_needs_shard_gradients():
    with pytest.raises(UserError, match="shard_parameters needs shard_gradients"):
        _spec(shard_parameters=True)


def test_zero3_weights_are_a_shard_and_two_layers():
    """bf16 weights: 1/dp of the stage's (experts: 1/expert-dp) plus two whole layers (the one
    computing, the one being gathered); gradients and optimizer states as under ZeRO-2."""
    spec = _zero3(model="mixtral-8x7b", devices=32, ep=8)
    m, p = spec.model, spec.parallel
    chunks = partition(m, p)[0]
    sp = stage_params(m, p, chunks)
    layer = (sp.dense + sp.expert) / m.num_layers
    got = stage_memory(m, p, spec.workload, 0)
    assert got.weights == pytest.approx(WEIGHT_BYTES * (sp.dense / p.dp + sp.expert / p.expert_dp + 2 * layer),
                                        rel=1e-12)
    zero2 = _spec(model="mixtral-8x7b", devices=32, ep=8, shard_gradients=True)
    z2 = stage_memory(m, zero2.parallel, spec.workload, 0)
    assert got.weights < z2.weights / 3          # experts dominate, sharded 4 ways (expert-dp 4)
    assert (got.gradients, got.optimizer, got.activations) == (z2.gradients, z2.optimizer, z2.activations)


def test_zero3_gathers_every_block_before_its_forward_and_backward():
    """Per micro-batch each block (layers, embedding, head) is gathered twice; there is no
    all-gather of the whole stage after the optimizer step."""
    spec = _zero3(pp=2, global_batch_size=16)
    inp = build_step(spec)
    assert all(not blocks for row in inp.param_gather for blocks in row)
    res = simulate_des(inp, trace=True)
    m = spec.parallel.num_microbatches
    for st in range(2):
        blocks = len(inp.programs.layout[st][0][0])
        n = sum(1 for ev in res.trace if ev[0] == st and ev[2] == "param_gather")
        assert n == 2 * m * blocks
    # the gathered bytes: each block's weights in bf16, all-gathered over the 8-way DP group
    g = inp.dp_group_dense
    sp = stage_params(spec.model, spec.parallel, partition(spec.model, spec.parallel)[0])
    want = inp.comm.all_gather(g, sp.dense * PARAM_BYTES)
    segs = [sg for k in inp.programs.layout[0][0][0] for sg in inp.programs.blocks[k].fwd if sg[0] == "fsdp_ag"]
    assert sum(sg[3] for sg in segs) == pytest.approx(want.inter_bytes, rel=1e-9)


def test_zero3_step_is_bound_by_the_nic_bytes():
    """Over 4 nodes every gather and reduce-scatter crosses the NIC: the step lasts at least the
    bytes one device's NIC carries (2 gathers + 1 reduce-scatter per block per micro-batch) over its
    bandwidth; with fast compute (short sequences) it sits close to that bound."""
    spec = _zero3(devices=32, work=dict(seq_len=256), global_batch_size=64)
    inp = build_step(spec)
    m = spec.parallel.num_microbatches
    blocks = [inp.programs.blocks[k] for k in inp.programs.layout[0][0][0]]
    nic = 0.0
    for blk in blocks:
        nic += sum(sg[3] for sg in blk.fwd + blk.bwd if sg[0] == "fsdp_ag")
        nic += sum(inp.grad_reduce(sg[2], sg[3]).inter_bytes for sg in blk.bwd if sg[0] == "grad")
    bound = m * nic / inp.comm.nic_bw
    des = simulate(spec, check_memory=False)
    assert des.step_time_s >= bound
    assert des.step_time_s < 1.25 * bound
    assert des.exposed_comm_s["dp"] > 0.5 * des.step_time_s


def test_zero3_gathers_hide_behind_compute():
    """Inside one node (NVLink) with long sequences the per-layer gathers run ahead of compute: only
    the first block of each task waits, so ZeRO-3 costs little over ZeRO-2 without its step-start
    all-gather (ZeRO-2 without the distributed-optimizer gather is plain ZeRO-2 compute + RS)."""
    kw = dict(devices=8, work=dict(seq_len=8192), global_batch_size=16)
    z3 = simulate(_zero3(**kw), check_memory=False)
    z2 = simulate(_spec(shard_gradients=True, **kw), check_memory=False)
    assert z3.step_time_s <= 1.05 * z2.step_time_s
    assert z3.exposed_comm_s["dp"] < 0.1 * z3.step_time_s


@pytest.mark.parametrize("extra", [dict(), dict(pp=2), dict(pp=2, vpp=2), dict(devices=32, work=dict(seq_len=256)),
                                   dict(devices=32, pp=2, vpp=2, work=dict(seq_len=1024))])
def test_analytic_tracks_des_with_zero3(extra):
    """The screen (gathers one block ahead, stretched by the reductions sharing the link, and the
    NIC bound) within 5% of the DES, NVLink-bound and NIC-bound, 1F1B and interleaved, at two layers
    per model chunk. Known gap: at one layer per chunk (every task's only gather exposed, interleaved
    warm-up) the screen runs 6-7% below the DES."""
    kw = dict(global_batch_size=64, model=dict(GPT, num_layers=8))
    kw.update(extra)
    spec = _zero3(**kw)
    des = simulate(spec, check_memory=False).step_time_s
    ana = simulate(spec, executor="analytic", check_memory=False).step_time_s
    assert ana == pytest.approx(des, rel=0.05)


def test_zero3_with_dualpipe_runs_and_uses_both_copies():
    """DualPipe holds two model stages per rank: both are sharded and gathered twice per micro-batch
    (forward; input-gradient b task). The W tasks gather nothing: a weight gradient X^T dY needs no
    weights. Paired tasks waiting on the same gathers count their exposed time once, and the screen
    stays within 5% of the DES."""
    spec = _zero3(model=_moe_mtp(), devices=64, pp=2, ep=8, schedule="dualpipe", global_batch_size=256)
    inp = build_step(spec)
    res = simulate_des(inp, trace=True)
    for st in res.stages:
        assert st.exposed["dp"] <= res.step_time_s
    ana = simulate(spec, executor="analytic", check_memory=False).step_time_s
    assert ana == pytest.approx(simulate(spec, check_memory=False).step_time_s, rel=0.05)
    per_chunk = microbatches_per_chunk("dualpipe", spec.parallel.num_microbatches)
    for r in range(2):
        blocks = 0
        for c in range(2):
            ms, mc = model_stage("dualpipe", 2, r, c)
            blocks += len(inp.programs.layout[ms][mc][0])
        n = sum(1 for ev in res.trace if ev[0] == r and ev[2] == "param_gather")
        assert n == 2 * per_chunk * blocks
    assert res.step_time_s > 0


# --- the layout search over ZeRO stages ---------------------------------------------------------


def test_layout_search_tries_each_zero_stage(capsys):
    """--zero 1,3 puts both stages on every layout; ZeRO-3 needs less memory than ZeRO-1 on the same
    layout, and a bad stage is one clear line."""
    import json

    from sim.cli.main import main
    argv = ["search", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--devices", "64", "--gbs", "256",
            "--tp", "2", "--pp", "2", "--vpp", "1", "--mbs", "1", "--recompute", "selective", "--executor", "analytic",
            "--show", "100", "--format", "json"]
    assert main(argv + ["--zero", "1,3"]) == 0
    rows = json.loads(capsys.readouterr().out)["layouts"]
    assert {r["zero"] for r in rows} == {1, 3}
    key = lambda r: (r["tp"], r["pp"], r["ep"])  # noqa: E731
    mem = {(key(r), r["zero"]): r["peak_memory_gib"] for r in rows}
    pairs = [k for (k, z) in mem if z == 1 and (k, 3) in mem]
    assert pairs and all(mem[k, 3] < mem[k, 1] for k in pairs)
    assert main(argv + ["--zero", "1,5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --zero") and err.count("\n") == 1


# --- the distributed optimizer's weight all-gather ------------------------------------------------


def _zero1(**kw):
    base = dict(devices=32, global_batch_size=64, model=dict(GPT, num_layers=8), work=dict(seq_len=1024))
    base.update(kw)
    return _spec(**base)


def test_param_gather_runs_block_by_block_ahead_of_the_first_forward():
    """--overlap-param-gather: one all-gather per block (bucket) of each chunk, in forward order
    from the step's start; the first forward waits only for what its blocks' gathers have not
    finished, so at most the first block's gather plus the gathers compute cannot cover."""
    spec = _zero1()
    inp = build_step(spec)
    res = simulate_des(inp, trace=True)
    costs = inp.param_gather[0][0]
    assert len(costs) == len(inp.programs.layout[0][0][0]) > 2
    evs = sorted((ev[4], ev[5]) for ev in res.trace if ev[0] == 0 and ev[2] == "param_gather")
    assert len(evs) == len(costs)
    assert [d for _, d in evs] == pytest.approx([inp.comm.time(c) for c in costs], rel=1e-6)
    total = sum(inp.comm.time(c) for c in costs)
    first = inp.comm.time(costs[0])
    exposed = res.stages[0].exposed["dp"]
    grads = inp.comm.time(inp.grad_reduce(*stage_grads(inp)))
    assert exposed < first + grads + 0.5 * total        # most of the gather hides behind the forwards


def stage_grads(inp) -> tuple[float, float]:
    from sim.engine.step import block_weights
    ws = [block_weights(inp.programs.blocks[k]) for k in inp.programs.layout[0][0][0]]
    return sum(d for d, _ in ws), sum(e for _, e in ws)


def test_blocking_param_gather_adds_the_whole_gather():
    """Without the overlap the updated weights are all-gathered in one blocking step after the
    optimizer: the step grows by the gather the overlapped run hid, and the exposed DP time holds
    the whole gather."""
    on = simulate(_zero1(), check_memory=False)
    off = simulate(_zero1(overlap_param_gather=False), check_memory=False)
    inp = build_step(_zero1())
    total = sum(inp.comm.time(c) for c in inp.param_gather[0][0])
    assert total > 0.02 * on.step_time_s
    assert off.exposed_comm_s["dp"] >= total
    assert off.step_time_s > on.step_time_s
    assert off.step_time_s - on.step_time_s <= total + 1e-9


@pytest.mark.parametrize("kw", [dict(), dict(overlap_param_gather=False), dict(pp=2, vpp=2),
                                dict(pp=2, overlap_param_gather=False)])
def test_analytic_tracks_des_with_the_param_gather(kw):
    spec = _zero1(**kw)
    des = simulate(spec, check_memory=False).step_time_s
    ana = simulate(spec, executor="analytic", check_memory=False).step_time_s
    assert ana == pytest.approx(des, rel=0.05)


def test_report_memory_breakdown_sums_to_the_peak():
    """StepReport.memory_gib splits the worst stage's peak into its parts; ZeRO-3 moves the weights
    part, nothing else."""
    kw = dict(model="mixtral-8x7b", devices=32, ep=8)
    z3 = simulate(_zero3(**kw), check_memory=False)
    z2 = simulate(_spec(shard_gradients=True, **kw), check_memory=False)
    for rep in (z3, z2):
        assert set(rep.memory_gib) == {"weights", "gradients", "optimizer", "activations", "transient"}
        assert sum(rep.memory_gib.values()) == pytest.approx(rep.peak_memory_gib, rel=1e-12)
    assert z3.memory_gib["weights"] < z2.memory_gib["weights"] / 3
    for part in ("gradients", "optimizer", "activations", "transient"):
        assert z3.memory_gib[part] == pytest.approx(z2.memory_gib[part], rel=1e-12)
    from sim.search.columns import report_columns
    assert report_columns(z3)["memory_gib.weights"] == pytest.approx(z3.memory_gib["weights"], rel=1e-8)


def test_grad_reduce_in_bf16_halves_the_gradient_buffers():
    """--grad-reduce-in-bf16 makes Megatron's gradient buffers bf16: half the gradient memory, at
    every ZeRO stage (ZeRO-1: the whole buffer; ZeRO-2/3: the shard and the layer in flight)."""
    kw = dict(model="mixtral-8x7b", devices=32, ep=8)
    for extra in (dict(), dict(shard_gradients=True), dict(shard_gradients=True, shard_parameters=True)):
        fp32 = stage_memory(*_parts(_spec(**kw, **extra)), 0).gradients
        bf16 = stage_memory(*_parts(_spec(grad_reduce_in_bf16=True, **kw, **extra)), 0).gradients
        assert bf16 == pytest.approx(fp32 / 2, rel=1e-12)


def _parts(spec):
    return spec.model, spec.parallel, spec.workload


def test_dualpipe_shards_over_the_doubled_group():
    """DualPipe's two parameter copies reduce over a doubled data-parallel group (dp_groups); the
    optimizer states are sharded over that same group, so a rank holds 1/(2 dp) of each of its two
    stages, and its optimizer step updates that much."""
    from sim.engine.step import OPTIM_BYTES_MOVED
    from sim.model.memory import OPTIM_BYTES
    spec = _spec(model=_moe_mtp(), devices=64, pp=2, ep=8, schedule="dualpipe", global_batch_size=256)
    m, p = spec.model, spec.parallel
    parts = partition(m, p)
    both = [stage_params(m, p, parts[0]), stage_params(m, p, parts[1])]
    shard = sum(sp.dense / (2 * p.dp * p.cp) + sp.expert / (2 * p.expert_dp) for sp in both)
    assert stage_memory(m, p, spec.workload, 0).optimizer == pytest.approx(OPTIM_BYTES * shard, rel=1e-12)
    inp = build_step(spec)
    assert inp.dp_group_dense.size == 2 * p.dp * p.cp
    assert inp.optimizer_s[0] == pytest.approx(float(inp.cm.memory_time(OPTIM_BYTES_MOVED * shard)), rel=1e-9)


@pytest.mark.parametrize("extra", [dict(pp=2), dict(pp=2, vpp=2, a2a_overlap=True), dict(pp=4, schedule="dualpipe")])
def test_analytic_tracks_des_with_zero3_on_a_link_bound_moe(extra):
    """Mixtral-8x7B on 64 H100 (TP2, 16-32 layers per stage): the expert gathers and reductions keep
    the NIC the bottleneck. The screen's NIC bound starts each stage when its first forward can
    (DualPipe: from both ends) and stays within 5% of the DES, 1F1B, interleaved with all-to-all
    overlap, and DualPipe."""
    spec = _zero3(model="mixtral-8x7b", devices=64, tp=2, global_batch_size=128, recompute="selective",
                  work=dict(seq_len=4096), **extra)
    des = simulate(spec, check_memory=False)
    ana = simulate(spec, executor="analytic", check_memory=False)
    assert des.exposed_comm_s["dp"] > 0.4 * des.step_time_s            # link-bound indeed
    assert ana.step_time_s == pytest.approx(des.step_time_s, rel=0.05)
