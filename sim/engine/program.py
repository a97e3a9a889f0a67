"""The work of one (stage, chunk, phase, routing sample) as an ordered list of segments.

A segment is a tuple ``(kind, compute_s, intra_bytes, inter_bytes, latency_s)``:
kind "compute" runs on the device's compute stream for compute_s; the other kinds
("tp", "cp", "ep_a2a") are blocking communication whose effective bytes go through the
stage's scale-up link and NIC. A kind "grad" marks where a layer's gradients are ready
(compute_s holds the gradient bytes of that layer, intra/inter unused).
Both the DES and the analytic estimate read these lists: one cost model, two executors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cluster.compute import ComputeModel
from sim.collectives.cost import ZERO, CommCost, CommModel
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.engine.routing_costs import RoutingCosts, routing_costs
from sim.model.flops import attention_core_flops, attention_proj_flops
from sim.model.params import attention_params, ffn_params
from sim.model.partition import Chunk, partition

ACT = 2.0   # bf16 activation bytes

Seg = tuple  # (kind, compute_s, intra_bytes, inter_bytes, latency_s)


def _comm(kind: str, c: CommCost) -> Seg:
    return (kind, 0.0, c.intra_bytes, c.inter_bytes, c.latency_s)


@dataclass
class Programs:
    """fwd[stage][chunk][sample] and bwd[...] segment lists, plus per-task FLOPs."""

    fwd: list
    bwd: list
    num_samples: int
    chunks: list[list[Chunk]]
    routing: RoutingCosts | None
    hw_flops_fwd: list      # [stage][chunk] hardware FLOPs of one forward (per device)
    hw_flops_bwd: list      # [stage][chunk] incl. recompute


class ProgramBuilder:
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

    # ---- building blocks -------------------------------------------------------------
    def gemm(self, flops: float, n_gemm: int, params: float, low_precision: bool = True) -> float:
        return float(self.cm.gemm_time(flops, flops / n_gemm, weight_bytes=params * self.wb,
                                       low_precision=low_precision))

    def mem(self, nbytes: float) -> float:
        return float(self.cm.memory_time(nbytes))

    def tp_gather(self) -> CommCost:
        nbytes = self.t * self.m.hidden_size * ACT
        if self.tp <= 1:
            return ZERO
        if self.p.sequence_parallel:
            return self.comm.all_gather(self.tp_group, nbytes)
        return ZERO

    def tp_reduce(self) -> CommCost:
        nbytes = self.t * self.m.hidden_size * ACT
        if self.tp <= 1:
            return ZERO
        if self.p.sequence_parallel:
            return self.comm.reduce_scatter(self.tp_group, nbytes)
        return self.comm.all_reduce(self.tp_group, nbytes)

    # ---- one layer, forward ----------------------------------------------------------
    def attention_fwd(self) -> tuple[list[Seg], float, float]:
        """Segments, forward FLOPs, and the time of the elementwise part (recomputed by selective)."""
        m, t, tp = self.m, self.t, self.tp
        h = m.hidden_size
        proj = t * attention_proj_flops(m) / tp
        core = t * attention_core_flops(m, self.w.seq_len) / tp
        n_gemm = 6 if m.attention == "mla" else 4
        t_proj = self.gemm(proj, n_gemm, attention_params(m) / tp)
        t_core = float(self.cm.attention_time(core, core))
        heads_dim = m.num_attention_heads * (m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim
                                             if m.attention == "mla" else m.dim_per_head)
        t_elem = self.mem(ACT * (6 * self.tsp * h + 4 * t * heads_dim / tp))   # norm, rope, residual
        segs = [_comm("tp", self.tp_gather()), ("compute", t_elem + t_proj + t_core, 0.0, 0.0, 0.0)]
        if self.p.cp > 1:
            kv = (m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) if m.attention == "mla" else 2 * m.kv_heads * m.dim_per_head / tp
            c = self.comm.p2p(ACT * t * kv * (self.p.cp - 1), inter_node=self.cp_group.nodes > 1)
            exposed = max(0.0, self.comm.time(c) - t_core)                 # ring attention overlaps KV passing
            segs.append(("cp", exposed, 0.0, 0.0, 0.0))
        segs.append(_comm("tp", self.tp_reduce()))
        return segs, proj + core, t_elem

    def ffn_fwd(self, ffn: int) -> tuple[list[Seg], float, float]:
        m, t, tp = self.m, self.t, self.tp
        flops = 2.0 * t * ffn_params(m, ffn) / tp
        n_gemm = 3 if m.activation == "swiglu" else 2
        t_gemm = self.gemm(flops, n_gemm, ffn_params(m, ffn) / tp)
        t_elem = self.mem(ACT * (3 * t * ffn / tp + 4 * self.tsp * m.hidden_size))
        segs = [_comm("tp", self.tp_gather()), ("compute", t_gemm + t_elem, 0.0, 0.0, 0.0),
                _comm("tp", self.tp_reduce())]
        return segs, flops, t_elem

    def moe_fwd(self, li: int, s: int, rc: RoutingCosts) -> tuple[list[Seg], float, float]:
        m, t, tp = self.m, self.t, self.tp
        e, h = m.moe, m.hidden_size
        flops = 2.0 * self.tsp * h * e.num_experts
        t_router = self.gemm(flops, 1, h * e.num_experts, low_precision=False)
        t_router += self.mem(4.0 * self.tsp * e.num_experts * 3)
        pre = [_comm("tp", self.tp_gather())] if (tp > 1 and e.num_shared_experts) else []
        t_shared = 0.0
        if e.num_shared_experts:
            sf = e.num_shared_experts * e.shared_ffn
            sflops = 2.0 * t * ffn_params(m, sf) / tp
            t_shared = self.gemm(sflops, 3 if m.activation == "swiglu" else 2, ffn_params(m, sf) / tp)
            t_shared += self.mem(ACT * 3 * t * sf / tp)
            flops += sflops
        t_norm = self.mem(ACT * 4 * self.tsp * h)
        dispatch_scale = 0.5 * (1.0 + 1.0 / 64) if self.fp8 else 1.0    # FP8 dispatch with 1/128 scales (DeepSeek-V3 sec 3.3)
        a2a = self.comm.all_to_all(0.0, 0.0, rc.a2a_peers_intra, rc.a2a_peers_inter)
        lat = a2a.latency_s
        dispatch = ("ep_a2a", 0.0, rc.a2a_intra[li, s] * dispatch_scale, rc.a2a_inter[li, s] * dispatch_scale, lat)
        combine = ("ep_a2a", 0.0, rc.a2a_intra[li, s], rc.a2a_inter[li, s], lat)
        segs = pre + [("compute", t_norm + t_router + t_shared, 0.0, 0.0, 0.0), dispatch,
                      ("compute", float(rc.expert_fwd_s[li, s]), 0.0, 0.0, 0.0), combine]
        if pre:
            segs.append(_comm("tp", self.tp_reduce()))
        flops += float(rc.expert_flops_mean[li, s])
        return segs, flops, t_norm


def _merge(segs: list[Seg]) -> list[Seg]:
    """Drop empty comm, merge adjacent compute segments."""
    out: list[Seg] = []
    for sg in segs:
        if sg[0] not in ("compute", "grad") and sg[1] == 0 and sg[2] == 0 and sg[3] == 0:
            continue
        if sg[0] == "compute" and out and out[-1][0] == "compute":
            out[-1] = ("compute", out[-1][1] + sg[1], 0.0, 0.0, 0.0)
        else:
            out.append(sg)
    return out


def _backward(segs: list[Seg]) -> list[Seg]:
    """The backward of a forward segment list: reversed, compute x2 (data + weight gradients),
    communication repeated (AG <-> RS swap, dispatch <-> combine swap)."""
    out = []
    for k, c, a, b, lat in reversed(segs):
        out.append((k, 2.0 * c, a, b, lat) if k == "compute" else (k, c, a, b, lat))
    return out


def build_programs(model: ModelConfig, par: ParallelConfig, work: Workload, routing: RoutingConfig,
                   cm: ComputeModel, comm: CommModel, rng: np.random.Generator, num_samples: int = 8) -> Programs:
    b = ProgramBuilder(model, par, work, routing, cm, comm, num_samples)
    chunks = partition(model, par)
    S = b.S
    moe_layers = [i for i in range(model.num_layers) if model.is_moe and i >= model.first_k_dense_layers]
    moe_index = {li: j for j, li in enumerate(moe_layers)}
    rc = None
    if model.is_moe:
        n = len(moe_layers) + model.mtp_layers
        tokens_per_rank = int(round(b.tsp))
        rc = routing_costs(model, par, routing, cm, comm, tokens_per_rank, n, S, rng)
    h, t, tp = model.hidden_size, b.t, par.tp
    recompute = par.recompute
    fwd = [[[None] * S for _ in range(par.vpp)] for _ in range(par.pp)]
    bwd = [[[None] * S for _ in range(par.vpp)] for _ in range(par.pp)]
    hw_f = [[0.0] * par.vpp for _ in range(par.pp)]
    hw_b = [[0.0] * par.vpp for _ in range(par.pp)]
    for st in range(par.pp):
        for c, ch in enumerate(chunks[st]):
            for s in range(S):
                F: list[Seg] = []
                B: list[Seg] = []
                flops_f = 0.0
                flops_re = 0.0

                def layer(layer_segs_fns, grad_dense: float, grad_expert: float = 0.0, F=F, B=B):
                    nonlocal flops_f, flops_re
                    lf: list[Seg] = []
                    elem = 0.0
                    fl = 0.0
                    for segs, f_, el in layer_segs_fns:
                        lf += segs
                        fl += f_
                        elem += el
                    lb = _backward(lf)
                    if recompute == "full":
                        lb = lf + lb
                        flops_re += fl
                    elif recompute == "selective":
                        lb = [("compute", elem, 0.0, 0.0, 0.0)] + lb
                    F.extend(lf)
                    B.extend(lb + [("grad", 0.0, grad_dense, grad_expert, 0.0)])
                    flops_f += fl

                if ch.embedding:
                    t_emb = b.mem(ACT * 2 * t * h / max(tp, 1))
                    F.append(("compute", t_emb, 0.0, 0.0, 0.0))
                    F.append(_comm("tp", b.tp_reduce()))
                for li, is_moe in zip(ch.layers, ch.moe, strict=True):
                    att = b.attention_fwd()
                    if is_moe:
                        mf = b.moe_fwd(moe_index[li], s, rc)
                        e = model.moe
                        gd = (attention_params(model) + e.num_shared_experts * ffn_params(model, e.shared_ffn)) / tp
                        ge = (e.num_experts / par.ep_effective) * ffn_params(model, e.expert_ffn_hidden_size) / par.etp
                    else:
                        mf = b.ffn_fwd(model.ffn_hidden_size)
                        gd, ge = (attention_params(model) + ffn_params(model, model.ffn_hidden_size)) / tp, 0.0
                    layer([att, mf], gd, ge)
                if ch.head:
                    heads = 1 + model.mtp_layers
                    for j in range(model.mtp_layers):
                        att = b.attention_fwd()
                        mf = b.moe_fwd(len(moe_layers) + j, s, rc) if model.is_moe else b.ffn_fwd(model.ffn_hidden_size)
                        proj = b.gemm(2.0 * t * 2 * h * h / tp, 1, 2 * h * h / tp)
                        layer([([("compute", proj, 0.0, 0.0, 0.0)], 2.0 * t * 2 * h * h / tp, 0.0), att, mf],
                              (2 * h * h + attention_params(model)) / tp)
                    lm = 2.0 * t * h * model.vocab_size / tp
                    t_head = heads * (b.gemm(lm, 1, h * model.vocab_size / tp, low_precision=False)
                                      + b.mem(4.0 * 3 * t * model.vocab_size / tp))
                    F += [_comm("tp", b.tp_gather()), ("compute", t_head, 0.0, 0.0, 0.0)]
                    B = [("compute", 2 * t_head, 0.0, 0.0, 0.0), _comm("tp", b.tp_reduce())] + B
                    flops_f += heads * lm
                if ch.embedding:
                    B.append(_comm("tp", b.tp_gather()))
                    B.append(("compute", b.mem(ACT * 2 * t * h / max(tp, 1)), 0.0, 0.0, 0.0))
                fwd[st][c][s] = _merge(F)
                bwd[st][c][s] = _merge(B)
                if s == 0:
                    hw_f[st][c] = flops_f
                    hw_b[st][c] = 2 * flops_f + flops_re
    return Programs(fwd=fwd, bwd=bwd, num_samples=S, chunks=chunks, routing=rc, hw_flops_fwd=hw_f, hw_flops_bwd=hw_b)
