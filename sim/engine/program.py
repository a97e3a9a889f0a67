"""The work of one (stage, chunk, phase, routing sample) as an ordered list of segments.

A segment is a tuple ``(kind, compute_s, intra_bytes, inter_bytes, latency_s)``:

- "compute": runs on the device's compute stream for compute_s;
- "wgrad": weight-gradient GEMMs, also compute; a zero-bubble schedule (DualPipe) defers them
  to a separate W task, other schedules run them inside the backward;
- "tp", "cp", "ep_a2a": blocking communication whose effective bytes go through the stage's
  scale-up link and NIC;
- "cast" pieces (FP8 quantization kernels) carry their own backward time, like "core";
- "grad": marks where a layer's gradients are complete (intra_bytes holds the dense gradient
  element count, inter_bytes the expert one; compute_s unused);
- "host" (profiles with a ``host`` block): the CPU time to issue the kernels of the part it ends
  (forward s, backward s, like "core"). The executors keep a host clock per task, started with the
  task and advanced by each marker; a part cannot finish before the host has issued it, so the
  device waits when the host falls behind (many small kernels: fine-grained experts, high TP, short
  sequences) and the host runs ahead, banking time, while large kernels run;
- "hsync": the host waits for the device (the dropless token dispatcher copies the per-expert token
  counts to the host to size its buffers): the host clock catches up with the device, so time the
  host banked before it is lost;
- "fsdp_ag" (ZeRO-3 only): the all-gather of a block's weights that the segments after it need. It
  runs on its own stream one block ahead: the task's first gather starts with the task, each next one
  when the block before it starts computing (two whole-weight buffers, as the memory model counts),
  so only what a gather has not finished when its block is reached is waited for.

The builder first emits typed pieces per layer ("gemm", "core", "elem" and communication); the
backward is derived from them: a GEMM's backward is a data-gradient GEMM plus a weight-gradient
GEMM of the same size, the attention core carries its own backward time (flash attention: 2.5x
its forward, five matmuls against two: Dao 2023, FlashAttention-2 sec. 3.1; the unfused kernel:
its batched GEMMs and passes over the score matrix), a memory-bound op's backward moves twice its
bytes (it reads the saved input and the incoming gradient). A selective recompute re-runs the
pieces of the modules ``ParallelConfig.recomputed`` names before the layer's backward. Both the DES and the analytic
estimate read these lists: one cost model, two executors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from sim.cluster.compute import ComputeModel
from sim.collectives.cost import ZERO, CommCost, CommModel
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.engine.routing_costs import RoutingCosts, fp8_cast_bytes, routing_costs
from sim.model.flops import attention_core_flops, attention_proj_flops
from sim.model.gemm_shapes import ffn_gemm_shapes, layer_gemm_shapes
from sim.model.params import attention_params, ffn_params, norm_params
from sim.model.partition import Chunk, partition

ACT = 2.0                 # bf16 activation bytes
PARAM_BYTES = 2.0         # bf16 weights, all-gathered after a distributed-optimizer step or, under ZeRO-3, per layer
CORE_BWD = 2.5            # flash-attention backward / forward FLOPs (FlashAttention-2: 5 matmuls vs 2)
# --tp-comm-overlap: the forward reduce-scatters run as a chunked "pipeline" overlap that reserves SMs
# from the GEMM (set_sm_margin): 24 SMs beside the attention output projection and 8 beside the MLP down
# projection, 4 splits each (NVIDIA/NeMo-Framework-Launcher conf/training/tp_overlap/
# ub_cfg_h100_bf16_h16384_tp8_cp2_mbs1_seqlen8192.yaml, proj_fprop / fc2_fprop). Taken as fractions of
# H100's 132 SMs for every GPU (ASSUMPTION); the all-gathers use ring exchange (peer copies, no SMs).
TP_RS_SM_PROJ = 24 / 132
TP_RS_SM_FC2 = 8 / 132
TP_RS_SPLITS = 4
ELEM_BWD = 2.0            # memory-bound backward / forward bytes (reads saved input and gradient, writes gradient)

Seg = tuple  # (kind, compute_s, intra_bytes, inter_bytes, latency_s)
COMPUTE_PIECES = ("gemm", "core", "elem", "cast")
HSYNC: Seg = ("hsync", 0.0, 0.0, 0.0, 0.0)


class Part(NamedTuple):
    """A layer part's forward pieces, forward FLOPs, and what a selective recompute redoes."""

    segs: list
    flops: float
    recompute: list
    recompute_flops: float


def dp_groups(par: ParallelConfig, comm: CommModel):
    """(dense, expert) data-parallel groups of one device (``ParallelConfig.state_shard_ranks``; under
    DualPipe the added members sit in another pipeline stage, another node)."""
    dense, expert = par.state_shard_ranks
    return comm.group(dense, par.tp), comm.group(expert, par.ep_effective * par.etp)


def weight_gather(comm: CommModel, groups, dense: float, expert: float) -> CommCost:
    """All-gather of one block's bf16 weights (dense and expert elements on one device) over its
    data-parallel groups: after a distributed-optimizer step, or under ZeRO-3 before each use."""
    g_dense, g_expert = groups
    c = ZERO
    if dense and g_dense.size > 1:
        c = c + comm.all_gather(g_dense, dense * PARAM_BYTES)
    if expert and g_expert.size > 1:
        c = c + comm.all_gather(g_expert, expert * PARAM_BYTES)
    return c


def _comm(kind: str, c: CommCost) -> Seg:
    return (kind, 0.0, c.intra_bytes, c.inter_bytes, c.latency_s)


def _piece(kind: str, t: float) -> Seg:
    return (kind, float(t), 0.0, 0.0, 0.0)


def _host_marker(fwd_us: float, bwd_us: float) -> list[Seg]:
    """A part's host marker: its kernels take the host fwd_us / bwd_us to issue."""
    return [("host", fwd_us * 1e-6, bwd_us * 1e-6, 0.0, 0.0)]


@dataclass
class Block:
    """One layer (or the embedding / LM-head extras) of a stage: its raw forward and backward
    segments (backward in execution order, weight gradients as "wgrad") and forward FLOPs."""

    fwd: list
    bwd: list
    flops_f: float
    flops_re: float
    tensor_s: tuple = (0.0, 0.0)   # (GEMM s, attention-core s) of one forward + backward (recompute included)


@dataclass
class Programs:
    """Per [stage][chunk][sample], the blocks a task runs (``layout``, forward order) and, built on
    first use, the merged segment lists the DES plays: fwd (forward), bwd (full backward, weight
    gradients inline), bwd_input (zero-bubble "b": without weight gradients), bwd_weight ("W")."""

    blocks: dict
    layout: list
    num_samples: int
    chunks: list[list[Chunk]]
    routing: RoutingCosts | None
    hw_flops_fwd: list      # [stage][chunk] hardware FLOPs of one forward (per device)
    hw_flops_bwd: list      # [stage][chunk] incl. recompute

    def __post_init__(self):
        self._tables: dict = {}

    def raw(self, st: int, c: int, s: int) -> tuple[list[Seg], list[Seg]]:
        keys = self.layout[st][c][s]
        F = [sg for k in keys for sg in self.blocks[k].fwd]
        B = [sg for k in reversed(keys) for sg in self.blocks[k].bwd]
        return F, B

    def forward_by_block(self, st: int, c: int, s: int) -> list[Seg]:
        """The forward of (stage, chunk, sample) with a ("pg_wait", 0, 0, 0, 0) marker before each
        block: where the step's first forward waits for that block's weights after a
        distributed-optimizer step. Built on first use."""
        key = ("pgF", st, c, s)
        if key not in self._tables:
            out: list[Seg] = []
            for k in self.layout[st][c][s]:
                out.append(("pg_wait", 0.0, 0.0, 0.0, 0.0))
                out += merge(self.blocks[k].fwd)
            self._tables[key] = out
        return self._tables[key]

    def _build(self, ph: str):
        out = []
        for st, row in enumerate(self.layout):
            out.append([])
            for c, per in enumerate(row):
                lists = []
                for s in range(len(per)):
                    F, B = self.raw(st, c, s)
                    if ph == "F":
                        lists.append(merge(F))
                    elif ph == "B":
                        lists.append(merge([("compute",) + sg[1:] if sg[0] == "wgrad" else sg for sg in B]))
                    else:
                        b, w = split_backward(B)
                        lists.append(b if ph == "b" else w)
                out[-1].append(lists)
        return out

    def table(self, ph: str) -> list:
        if ph not in self._tables:
            self._tables[ph] = self._build(ph)
        return self._tables[ph]

    @property
    def fwd(self):
        return self.table("F")

    @property
    def bwd(self):
        return self.table("B")

    @property
    def bwd_input(self):
        return self.table("b")

    @property
    def bwd_weight(self):
        return self.table("W")


class ProgramBuilder:
    """Pieces of one layer of each kind, computed once per run (layers of a kind are identical
    except for the routed experts, which come from the routing costs per (layer, sample))."""

    def __init__(self, model: ModelConfig, par: ParallelConfig, work: Workload, routing: RoutingConfig,
                 cm: ComputeModel, comm: CommModel, num_samples: int = 8):
        self.m, self.p, self.w, self.r, self.cm, self.comm = model, par, work, routing, cm, comm
        self.t = par.micro_batch_size * work.seq_len / par.cp          # tokens per micro-batch on a CP rank
        self.tp = par.tp
        self.tsp = self.t / par.tp if (par.sequence_parallel and par.tp > 1) else self.t
        self.S = max(1, min(num_samples, par.num_microbatches))
        self.fp8 = work.precision == "fp8"
        self.wb = 1.0 if self.fp8 else 2.0                               # GEMM weight bytes read
        self.tp_group = comm.group(par.tp, 1)
        self.cp_group = comm.group(par.cp, par.tp)

    # ---- host issue time (profiles with a host block) -----------------------------------------
    def host(self, part: str) -> list[Seg]:
        """The marker ending a part whose kernels the profile's host block times (``HostSpec.<part>``:
        attention_us, mlp_us); none without a host block."""
        hs = self.cm.hw.host
        return [] if hs is None else _host_marker(*getattr(hs, part))

    def host_redo(self, segs: list[Seg], recompute: list[Seg]) -> list[Seg]:
        """The host marker of a selective recompute: the part's forward issue time in proportion to
        the compute pieces it re-runs (ASSUMPTION: the recomputed kernels cost the host what the
        part's kernels cost on average)."""
        issue = sum(sg[1] for sg in segs if sg[0] == "host")
        n_all = sum(1 for sg in segs if sg[0] in COMPUTE_PIECES)
        n_re = sum(1 for sg in recompute if sg[0] in COMPUTE_PIECES)
        if not issue or not n_re or not n_all:
            return []
        return [("host", issue * n_re / n_all, 0.0, 0.0, 0.0)]

    @property
    def host_sync(self) -> list[Seg]:
        """The dropless dispatcher's token-count copy to the host (Megatron-Core's all-to-all and DeepEP
        dispatchers; ASSUMPTION: capacity-factor runs pad to capacity, static shapes and no copy)."""
        if self.cm.hw.host is None or self.r.mode == "capacity":
            return []
        return [HSYNC]

    # ---- building blocks -------------------------------------------------------------
    def gemm(self, flops: float, n_gemm: int, params: float, low_precision: bool = True) -> float:
        return float(self.cm.gemm_time(flops, flops / n_gemm, weight_bytes=params * self.wb,
                                       low_precision=low_precision))

    def gemms(self, shapes, chunks: int = 1, low_precision: bool = True) -> float:
        """Seconds for GEMMs of the given (m, n, k) shapes ([m x k] @ [k x n]), each run as ``chunks``
        GEMMs of m / chunks rows (TP communication overlap splits the tokens)."""
        return float(sum(self.cm.gemm_time(2.0 * m * n * k, 2.0 * m * n * k / chunks, weight_bytes=n * k * self.wb,
                                           low_precision=low_precision) for m, n, k in shapes))

    @cached_property
    def layer_gemms(self) -> dict:
        """One layer's forward GEMM shapes by name (Megatron-Core's fused QKV and gated fc1 are one GEMM each)."""
        return layer_gemm_shapes(self.m, self.p, self.w)

    def mem(self, nbytes: float) -> float:
        return float(self.cm.memory_time(nbytes))

    def cast(self, inputs: list[tuple[float, float]], outputs: list[tuple[float, float]],
             prequantized: list[tuple[float, float]] = ()) -> list[Seg]:
        """FP8 quantization of GEMM operands (FP8 workloads only): memory-bound kernels beside the GEMMs,
        given (rows, columns) of each distinct GEMM input, of inputs already in FP8, and of each GEMM
        output; the bytes are ``routing_costs.fp8_cast_bytes``."""
        if not self.fp8:
            return []
        fwd, bwd = fp8_cast_bytes(sum(r * c for r, c in inputs), sum(r * c for r, c in prequantized),
                                  sum(r * c for r, c in outputs), ACT)
        return [("cast", self.mem(fwd), self.mem(bwd), 0.0, 0.0)]

    @cached_property
    def tp_gather(self) -> CommCost:
        if self.tp <= 1 or not self.p.sequence_parallel:
            return ZERO
        return self.comm.all_gather(self.tp_group, self.t * self.m.hidden_size * ACT)

    @cached_property
    def tp_reduce(self) -> CommCost:
        nbytes = self.t * self.m.hidden_size * ACT
        if self.tp <= 1:
            return ZERO
        if self.p.sequence_parallel:
            return self.comm.reduce_scatter(self.tp_group, nbytes)
        return self.comm.all_reduce(self.tp_group, nbytes)

    @property
    def tp_overlap(self) -> bool:
        """Megatron-Core --tp-comm-overlap is on and there is a TP group to overlap."""
        return self.p.tp_comm_overlap and self.tp > 1

    @property
    def overlap_chunks(self) -> int:
        """GEMM chunks per projection under --tp-comm-overlap: each chunk is a smaller GEMM, lower on
        the efficiency curve (ASSUMPTION: tp chunks for every projection; the ring exchange uses tp,
        the chunked reduce-scatter TP_RS_SPLITS, equal at TP 4)."""
        return self.tp if self.tp_overlap else 1

    def overlapped(self, c: CommCost, t_gemm: float, splits: int) -> CommCost:
        """A sequence-parallel collective pipelined with its GEMM (Megatron-Core --tp-comm-overlap):
        the GEMM runs in ``splits`` chunks while the next chunk moves, so what stays exposed is the
        transfer the chunked GEMM cannot cover, and at least one chunk's transfer."""
        if not self.tp_overlap:
            return c
        t_comm = self.comm.time(c)
        if t_comm <= 0.0:
            return c
        exposed = max(t_comm / splits, t_comm - t_gemm * (splits - 1) / splits)
        return c.scaled(min(1.0, exposed / t_comm))

    def sm_margin(self, t_gemm: float, frac: float) -> list[Seg]:
        """The forward GEMM's extra time while a chunked reduce-scatter holds ``frac`` of the SMs
        (GPUs only: NPU collectives run on DMA engines); the backward is unaffected."""
        if not self.tp_overlap or self.cm.hw.device.comm_sm_fraction == 0:
            return []
        return [("core", t_gemm * frac / (1.0 - frac), 0.0, 0.0, 0.0)]

    # ---- one layer, forward: Part(pieces, forward FLOPs, recompute pieces, recompute FLOPs) ----
    @cached_property
    def core(self) -> tuple[float, float, float]:
        """Attention core of one micro-batch on one device: (forward s, backward s, hardware FLOPs)."""
        m, t, tp, w = self.m, self.t, self.tp, self.w
        if w.attention_kernel == "flash":
            flops = t * attention_core_flops(m, w.seq_len) / tp        # causal: the kernel skips masked tiles
            kv = w.seq_len / self.p.cp                                 # keys per kernel call (a ring-attention chunk under CP)
            t_f = float(self.cm.attention_time(flops, flops, kv))
            t_b = float(self.cm.attention_time(CORE_BWD * flops, flops, kv, backward=True))
            return t_f, t_b, flops
        # unfused (Megatron-LM 2021, arXiv 2104.04473 sec. 4.2): QK^T writes the full s x s scores
        # (the causal mask is applied by the fused scale-mask-softmax kernel, which reads and writes
        # them), attention dropout reads them and writes its output and a 1-byte mask, AV reads them.
        # Backward: AV's two batched GEMMs (dP written, P read), dropout backward (dP, mask in, grad
        # out), softmax backward (output and grad in, grad out), QK^T's two batched GEMMs (dS read).
        if m.attention == "mla":
            dqk, dv = m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim, m.mla.v_head_dim
        else:
            dqk = dv = m.dim_per_head
        heads = m.num_attention_heads / tp
        E = heads * t * w.seq_len                                   # score elements (local queries x keys)
        f1, f2 = 2.0 * E * dqk, 2.0 * E * dv
        bmm1 = float(self.cm.gemm_time(f1, f1, act_bytes=ACT * (E + 2 * t * heads * dqk), low_precision=False))
        bmm2 = float(self.cm.gemm_time(f2, f2, act_bytes=ACT * (E + 2 * t * heads * dv), low_precision=False))
        dropout = self.mem((2 * ACT + 1) * E) if w.attention_dropout > 0 else 0.0
        fwd = bmm1 + self.mem(2 * ACT * E) + dropout + bmm2
        bwd = 2 * bmm2 + dropout + self.mem(3 * ACT * E) + 2 * bmm1
        return fwd, bwd, f1 + f2

    @cached_property
    def attention(self) -> Part:
        m, t, tp = self.m, self.t, self.tp
        h = m.hidden_size
        mods = self.p.recomputed
        proj = t * attention_proj_flops(m) / tp
        g = self.layer_gemms
        t_out = self.gemms([g["attn.out"]], self.overlap_chunks)                # row-parallel output projection
        t_proj = self.gemms([v for k, v in g.items() if k.startswith("attn.") and k != "attn.out"],
                            self.overlap_chunks) + t_out
        t_core, t_core_bwd, core = self.core
        heads_dim = m.num_attention_heads * (m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim
                                             if m.attention == "mla" else m.dim_per_head)
        t_elem = self.mem(ACT * (6 * self.tsp * h + 4 * t * heads_dim / tp))   # norm, rope, residual
        core_piece = ("core", t_core, t_core_bwd, 0.0, 0.0)
        recompute, re_flops = [], 0.0
        if "layernorm" in mods:
            recompute.append(_piece("elem", t_elem))
        if m.attention == "mla" and "mla_up_proj" in mods:
            # selective recompute regenerates Q, K, V from the latents: the MLA up-projections
            # (DeepSeek-V3 sec. 3.2.3 "Recomputation of RMSNorm and MLA Up-Projection")
            a, n = m.mla, m.num_attention_heads
            up = 2.0 * t * n * ((a.q_lora_rank or 0) * (a.qk_nope_head_dim + a.qk_rope_head_dim)
                                + a.kv_lora_rank * (a.qk_nope_head_dim + a.v_head_dim)) / tp
            recompute.append(_piece("gemm", self.gemm(up, 2, up / (2 * t))))
            re_flops += up
        if "core_attn" in mods:                     # Korthikanti et al. 2022 (arXiv 2205.05198) sec. 4.2
            recompute.append(core_piece)
            re_flops += core
        first = ("attn.qkv", "attn.q", "attn.q_down", "attn.kv_down")     # the GEMMs reading the layer input
        casts = self.cast([(self.tsp, h)] + [(v[0], v[2]) for k, v in g.items() if k.startswith("attn.") and k not in first],
                          [(v[0], v[1]) for k, v in g.items() if k.startswith("attn.")])
        if self.fp8 and m.attention == "mla" and "mla_up_proj" in mods:
            recompute += self.cast([(v[0], v[2]) for k, v in g.items() if k in ("attn.q_up", "attn.kv_up")], [])
        segs = [_comm("tp", self.overlapped(self.tp_gather, t_proj - t_out, self.tp)), _piece("elem", t_elem),
                *casts, _piece("gemm", t_proj), *self.sm_margin(t_out, TP_RS_SM_PROJ), core_piece]
        if self.p.cp > 1:
            kv = (m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) if m.attention == "mla" else 2 * m.kv_heads * m.dim_per_head / tp
            c = self.comm.p2p(ACT * t * kv * (self.p.cp - 1), inter_node=self.cp_group.nodes > 1)
            exposed = max(0.0, self.comm.time(c) - t_core)                 # ring attention overlaps KV passing
            segs.append(("cp", exposed, 0.0, 0.0, 0.0))
        segs.append(_comm("tp", self.overlapped(self.tp_reduce, t_out, TP_RS_SPLITS)))
        segs += self.host("attention_us")
        return Part(segs, proj + core, recompute + self.host_redo(segs, recompute), re_flops)

    def ffn(self, ffn: int) -> Part:
        m, t, tp = self.m, self.t, self.tp
        mods = self.p.recomputed
        flops = 2.0 * t * ffn_params(m, ffn) / tp
        fc1, fc2 = ffn_gemm_shapes(m, t, ffn, tp)
        t_fc2 = self.gemms([fc2], self.overlap_chunks)   # the row-parallel down projection
        t_gemm = self.gemms([fc1], self.overlap_chunks) + t_fc2
        t_act = self.mem(ACT * 3 * t * ffn / tp)
        t_norm = self.mem(ACT * 4 * self.tsp * m.hidden_size)
        casts = self.cast([(self.tsp, m.hidden_size), (fc2[0], fc2[2])], [(fc1[0], fc1[1]), (fc2[0], fc2[1])])
        segs = [_comm("tp", self.overlapped(self.tp_gather, t_gemm - t_fc2, self.tp)), _piece("elem", t_norm),
                *casts, _piece("gemm", t_gemm), *self.sm_margin(t_fc2, TP_RS_SM_FC2), _piece("elem", t_act),
                _comm("tp", self.overlapped(self.tp_reduce, t_fc2, TP_RS_SPLITS))]
        segs += self.host("mlp_us")
        if "mlp" in mods:                           # the whole FFN block, its TP collectives included
            return Part(segs, flops, list(segs), flops)
        recompute = [_piece("elem", t) for t, mod in ((t_norm, "layernorm"), (t_act, "mlp_act")) if mod in mods]
        return Part(segs, flops, recompute + self.host_redo(segs, recompute), 0.0)

    @cached_property
    def dense_ffn(self) -> Part:
        return self.ffn(self.m.ffn_hidden_size)

    @cached_property
    def moe_fixed(self) -> Part:
        """The routing-independent part of an MoE block: norm, router, shared experts."""
        m, t, tp = self.m, self.t, self.tp
        mods = self.p.recomputed
        e, h = m.moe, m.hidden_size
        flops = 2.0 * self.tsp * h * e.num_experts
        t_router = self.gemm(flops, 1, h * e.num_experts, low_precision=False)
        t_router_elem = self.mem(4.0 * self.tsp * e.num_experts * 3)
        t_norm = self.mem(ACT * 4 * self.tsp * h)
        pre = [_comm("tp", self.tp_gather)] if (tp > 1 and e.num_shared_experts) else []
        pieces = pre + [_piece("elem", t_norm + t_router_elem), _piece("gemm", t_router)]
        recompute = [_piece("elem", t_norm)] if "layernorm" in mods else []
        re_flops = 0.0
        if e.num_shared_experts:
            sf = e.num_shared_experts * e.shared_ffn
            sflops = 2.0 * t * ffn_params(m, sf) / tp
            fc1, fc2 = ffn_gemm_shapes(m, t, sf, tp)
            t_shared = self.gemms([fc1, fc2])
            t_act = self.mem(ACT * 3 * t * sf / tp)
            # its input is the routed experts' input, quantised once before the FP8 dispatch (moe())
            casts = self.cast([(fc2[0], fc2[2])], [(fc1[0], fc1[1]), (fc2[0], fc2[1])], prequantized=[(fc1[0], fc1[2])])
            pieces += [*casts, _piece("gemm", t_shared), _piece("elem", t_act)]
            if "shared_experts" in mods:
                recompute += [*casts, _piece("gemm", t_shared), _piece("elem", t_act)]
                re_flops += sflops
            elif "moe_act" in mods:
                recompute.append(_piece("elem", t_act))
            flops += sflops
        return Part(pieces, flops, recompute, re_flops)

    def moe(self, li: int, s: int, rc: RoutingCosts) -> Part:
        pieces, flops, recompute, re_flops = self.moe_fixed
        dispatch_scale = 0.5 * (1.0 + 1.0 / 64) if self.fp8 else 1.0    # FP8 dispatch with 1/128 scales (DeepSeek-V3 sec 3.3)
        lat = rc.a2a_latency_s
        dispatch = ("ep_a2a", 0.0, rc.a2a_intra[li, s] * dispatch_scale, rc.a2a_inter[li, s] * dispatch_scale, lat)
        combine = ("ep_a2a", 0.0, rc.a2a_intra[li, s], rc.a2a_inter[li, s], lat)
        # FP8: the tokens are quantised once before the dispatch (DeepSeek-V3 sec. 3.3.3), the experts'
        # other operands beside their GEMMs (RoutingCosts.expert_cast_*)
        quant = [("cast", self.mem(fp8_cast_bytes(self.tsp * self.m.hidden_size, 0.0, 0.0, ACT)[0]), 0.0, 0.0, 0.0)] \
            if self.fp8 else []
        expert_cast = [("cast", float(rc.expert_cast_fwd_s[li, s]), float(rc.expert_cast_bwd_s[li, s]), 0.0, 0.0)] if self.fp8 else []
        hs = self.cm.hw.host
        pre_host, post_host = [], []
        if hs is not None:
            # the router's share of the block's issue time comes before the token-count copy; the
            # rest, the local experts' GEMM launches and a shared expert's kernels after it
            e_loc = self.m.moe.num_experts / self.p.ep_effective
            shared = self.m.moe.num_shared_experts > 0
            f = hs.moe_us[0] + hs.moe_per_expert_us[0] * e_loc + (hs.mlp_us[0] if shared else 0.0)
            b = hs.moe_us[1] + hs.moe_per_expert_us[1] * e_loc + (hs.mlp_us[1] if shared else 0.0)
            pre_host = _host_marker(hs.moe_us[0] * hs.router_share, 0.0)
            post_host = _host_marker(f - hs.moe_us[0] * hs.router_share, b)
        segs = pieces + pre_host + self.host_sync + [*quant, dispatch, *expert_cast, _piece("gemm", rc.expert_gemm_s[li, s]),
                                                     _piece("elem", rc.expert_elem_s[li, s]), combine]
        if self.tp > 1 and self.m.moe.num_shared_experts:
            segs.append(_comm("tp", self.tp_reduce))
        segs += post_host
        flops = flops + float(rc.expert_flops_mean[li, s])
        if "moe" in self.p.recomputed:
            # the whole MoE block (router, dispatch, experts, combine) runs again (Megatron-Core
            # --recompute-modules moe); its all-to-alls are repeated too
            return Part(segs, flops, list(segs), flops)
        if "moe_act" in self.p.recomputed:      # the routed experts' activation function (SwiGLU output)
            recompute = recompute + [_piece("elem", rc.expert_elem_s[li, s])]
        return Part(segs, flops, recompute + self.host_redo(segs, recompute), re_flops)


def tensor_time(pieces: list[Seg], recomputed: list[Seg]) -> tuple[float, float]:
    """(GEMM seconds, attention-core seconds) of a layer's forward, backward and recompute: a GEMM runs
    once forward and twice backward (data and weight gradients); a "core" piece carries its backward."""
    g = sum(p[1] for p in pieces if p[0] == "gemm")
    a = sum(p[1] + p[2] for p in pieces if p[0] == "core")
    g_re = sum(p[1] for p in recomputed if p[0] == "gemm")
    a_re = sum(p[1] for p in recomputed if p[0] == "core")
    return 3.0 * g + g_re, a + a_re


def to_forward(pieces: list[Seg]) -> list[Seg]:
    out = []
    for p in pieces:
        if p[0] in COMPUTE_PIECES:
            out.append(("compute", p[1], 0.0, 0.0, 0.0))
        elif p[0] == "host":
            out.append(("host", p[1], 0.0, 0.0, 0.0))
        else:
            out.append(p)
    return out


def to_backward(pieces: list[Seg]) -> list[Seg]:
    """The backward of a layer's forward pieces: reversed; communication repeated (AG <-> RS and
    dispatch <-> combine swap roles but move the same bytes). A part's host marker, which ends its
    forward, ends its backward; the backward has no token-count copy (the splits are known)."""
    out: list[Seg] = []
    pending: Seg | None = None
    for k, c, a, b, lat in reversed(pieces):
        if k == "host":
            if pending is not None:
                out.append(pending)
            pending = ("host", a, 0.0, 0.0, 0.0)
        elif k == "hsync":
            continue
        elif k == "gemm":
            out.append(("compute", c, 0.0, 0.0, 0.0))      # data gradient
            out.append(("wgrad", c, 0.0, 0.0, 0.0))        # weight gradient
        elif k in ("core", "cast"):    # (kind, forward s, backward s, 0, 0): attention core, FP8 casts, TP-overlap SM margin
            out.append(("compute", a, 0.0, 0.0, 0.0))
        elif k == "elem":
            out.append(("compute", ELEM_BWD * c, 0.0, 0.0, 0.0))
        else:
            out.append((k, c, a, b, lat))
    if pending is not None:
        out.append(pending)
    return out


def merge(segs: list[Seg]) -> list[Seg]:
    """Drop empty communication, merge adjacent segments of the same compute kind."""
    out: list[Seg] = []
    for sg in segs:
        k = sg[0]
        if k not in ("compute", "wgrad", "grad", "hsync") and sg[1] == 0 and sg[2] == 0 and sg[3] == 0:
            continue
        if k in ("compute", "wgrad") and out and out[-1][0] == k:
            out[-1] = (k, out[-1][1] + sg[1], 0.0, 0.0, 0.0)
        else:
            out.append(sg)
    return out


def split_backward(bwd: list[Seg]) -> tuple[list[Seg], list[Seg]]:
    """(input-gradient part, weight-gradient part) of a backward segment list."""
    b = merge([s for s in bwd if s[0] not in ("wgrad", "grad")])
    w = merge([s for s in bwd if s[0] in ("wgrad", "grad")])
    return b, w


def build_programs(model: ModelConfig, par: ParallelConfig, work: Workload, routing: RoutingConfig,
                   cm: ComputeModel, comm: CommModel, rng: np.random.Generator, num_samples: int = 8,
                   routing_layers: int | None = None) -> Programs:
    """routing_layers: distinct MoE layers to sample routing for (None: every layer); layers beyond
    it reuse the samples cyclically (the analytic screen samples a few layers)."""
    b = ProgramBuilder(model, par, work, routing, cm, comm, num_samples)
    chunks = partition(model, par)
    S = b.S
    moe_layers = [i for i in range(model.num_layers) if model.is_moe and i >= model.first_k_dense_layers]
    n_moe = len(moe_layers) + (model.mtp_layers if model.is_moe else 0)
    moe_index = {li: j for j, li in enumerate(moe_layers)}
    rc = None
    L = n_moe
    if model.is_moe:
        L = n_moe if routing_layers is None else max(1, min(routing_layers, n_moe))
        rc = routing_costs(model, par, routing, cm, comm, int(round(b.tsp)), L, S, rng)
    h, t, tp = model.hidden_size, b.t, par.tp
    recompute = par.recompute
    blocks: dict = {}
    layout = [[[None] * S for _ in range(par.vpp)] for _ in range(par.pp)]
    hw_f = [[0.0] * par.vpp for _ in range(par.pp)]
    hw_b = [[0.0] * par.vpp for _ in range(par.pp)]
    att = b.attention
    # a layer's weights on one device (as sim.model.memory.stage_params counts them): what its gradient
    # reduction moves and, under ZeRO-3, what its all-gathers bring in; norms replicated over TP
    norms = 2 * norm_params(model)
    dense_grad = (attention_params(model) + ffn_params(model, model.ffn_hidden_size)) / tp + norms
    if model.is_moe:
        e = model.moe
        moe_grad = ((attention_params(model) + e.num_shared_experts * ffn_params(model, e.shared_ffn)) / tp
                    + norms + h * e.num_experts,                                                  # + router
                    (e.num_experts / par.ep_effective) * ffn_params(model, e.expert_ffn_hidden_size) / par.etp)

    groups = dp_groups(par, comm)

    def gather(dense: float, expert: float = 0.0) -> list[Seg]:
        """ZeRO-3: the all-gather of a block's weights before its forward and before its backward."""
        if not par.shard_parameters:
            return []
        c = weight_gather(comm, groups, dense, expert)
        return [_comm("fsdp_ag", c)] if (c.intra_bytes or c.inter_bytes) else []

    def layer(key, make_parts, grad_dense: float, grad_expert: float = 0.0):
        """Register (once) the block of one layer from its forward parts."""
        if key in blocks:
            return key
        pieces: list[Seg] = []
        re: list[Seg] = []
        fl = 0.0
        fre = 0.0
        for segs, f_, r_, rf_ in make_parts():
            pieces += segs
            fl += f_
            re += r_
            fre += rf_
        lb = to_backward(pieces)
        if recompute == "full":
            lb = to_forward(pieces) + lb
            fre = fl
        elif recompute == "selective":
            lb = to_forward(re) + lb
        redo = pieces if recompute == "full" else re if recompute == "selective" else []
        ag = gather(grad_dense, grad_expert)
        blocks[key] = Block(ag + to_forward(pieces), ag + lb + [("grad", 0.0, grad_dense, grad_expert, 0.0)], fl, fre,
                            tensor_time(pieces, redo))
        return key

    if any(ch.embedding for row in chunks for ch in row):
        t_emb = b.mem(ACT * 2 * t * h / max(tp, 1))
        emb = (model.vocab_size + model.learned_position_embeddings) * h / tp
        ag = gather(emb)
        # its gradient is complete when the embedding's backward is: the last work of the stage's backward
        blocks["embedding"] = Block(ag + [("compute", t_emb, 0.0, 0.0, 0.0), _comm("tp", b.tp_reduce)],
                                    ag + [_comm("tp", b.tp_gather), ("wgrad", t_emb, 0.0, 0.0, 0.0),
                                          ("grad", 0.0, emb, 0.0, 0.0)], 0.0, 0.0)
    heads = 1 + model.mtp_layers
    lm = 2.0 * t * h * model.vocab_size / tp
    # the output layer's own weights; tied to the embedding it still holds a copy (and reduces its
    # gradient) when the embedding sits on another pipeline stage (Megatron-LM word-embedding copy)
    head_w = norm_params(model) + (model.vocab_size * h / tp if (not model.tie_embeddings or par.pp > 1) else 0.0)
    ag_head = gather(norm_params(model) + model.vocab_size * h / tp)
    mtp_norms = 5 * norm_params(model)      # an MTP module: two input norms, the layer's two, its final norm
    if model.is_moe:
        mtp_grad = ((2 * h * h + attention_params(model) + e.num_shared_experts * ffn_params(model, e.shared_ffn)) / tp
                    + mtp_norms + h * e.num_experts, moe_grad[1])
    else:
        mtp_grad = ((2 * h * h + attention_params(model) + ffn_params(model, model.ffn_hidden_size)) / tp + mtp_norms, 0.0)
    for st in range(par.pp):
        for c, ch in enumerate(chunks[st]):
            for s in range(S):
                keys = ["embedding"] if ch.embedding else []
                for li, is_moe in zip(ch.layers, ch.moe, strict=True):
                    if is_moe:
                        j = moe_index[li] % L
                        keys.append(layer(("moe", j, s), lambda j=j, s=s: [att, b.moe(j, s, rc)], *moe_grad))
                    else:
                        keys.append(layer(("dense",), lambda: [att, b.dense_ffn], dense_grad))
                if ch.head:
                    for j in range(model.mtp_layers):
                        jj = (len(moe_layers) + j) % L

                        def mtp_parts(jj=jj, s=s):
                            mf = b.moe(jj, s, rc) if model.is_moe else b.dense_ffn
                            pf = 2.0 * t * 2 * h * h / tp
                            return [Part([_piece("gemm", b.gemm(pf, 1, 2 * h * h / tp))], pf, [], 0.0), att, mf]
                        keys.append(layer(("mtp", jj, s), mtp_parts, *mtp_grad))
                    if "head" not in blocks:
                        t_lm = heads * b.gemm(lm, 1, h * model.vocab_size / tp, low_precision=False)
                        t_loss = heads * b.mem(4.0 * 3 * t * model.vocab_size / tp)
                        blocks["head"] = Block(
                            ag_head + [_comm("tp", b.tp_gather), ("compute", t_lm + t_loss, 0.0, 0.0, 0.0)],
                            ag_head + [("compute", t_lm + t_loss, 0.0, 0.0, 0.0), ("wgrad", t_lm, 0.0, 0.0, 0.0),
                                       ("grad", 0.0, head_w, 0.0, 0.0), _comm("tp", b.tp_reduce)],
                            heads * lm, 0.0, (3.0 * t_lm, 0.0))
                    keys.append("head")
                layout[st][c][s] = keys
                if s == 0:
                    hw_f[st][c] = sum(blocks[k].flops_f for k in keys)
                    hw_b[st][c] = 2 * hw_f[st][c] + sum(blocks[k].flops_re for k in keys)
    return Programs(blocks=blocks, layout=layout, num_samples=S, chunks=chunks, routing=rc,
                    hw_flops_fwd=hw_f, hw_flops_bwd=hw_b)
