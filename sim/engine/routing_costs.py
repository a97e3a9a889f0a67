"""Routing-dependent costs per (MoE layer, sample): the hottest EP rank's expert GEMM time and
all-to-all bytes. numpy only; one sample is one micro-batch round of the whole EP group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cluster.compute import ComputeModel
from sim.collectives.cost import CommModel
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.moe import metrics as moe_metrics
from sim.moe.load import sample_tokens_per_expert
from sim.moe.placement import place_experts

# FP8 GEMM operands: one byte per element plus one FP32 scale per 1x128 (or 128x1) tile of activations
# (DeepSeek-V3, arXiv 2412.19437 sec. 3.3.2 "fine-grained quantization").
FP8_Q = 1.0 + 4.0 / 128


def fp8_cast_bytes(inputs, prequantized, outputs, act_bytes: float = 2.0):
    """(forward, backward) HBM bytes of the FP8 quantization kernels beside GEMMs, given the element
    counts of their distinct inputs, of inputs that arrive in FP8 already (tokens quantised before an
    FP8 dispatch), and of their outputs.

    Forward: each input is read in BF16 and written in FP8 with 1x128 tile scales. Backward: each saved
    FP8 input is read, transposed and re-quantised to 128x1 tiles for the weight gradient, and each output
    gradient is read in BF16 and written in both tilings (data and weight gradient). DeepSeek-V3 (arXiv
    2412.19437) sec. 3.3.2-3.3.3: activations cached in FP8, 1x128 tiles forward, 128x1 backward; sec.
    3.5.2: quantization reads the BF16 activations from HBM and writes FP8 back, a transposed operand is
    read, dequantised, transposed, re-quantised and stored back. Weights are cast once per step
    (Megatron's is_first_microbatch / a cached FP8 copy), which this leaves out.
    """
    return inputs * (act_bytes + FP8_Q), (inputs + prequantized) * 2 * FP8_Q + outputs * (act_bytes + 2 * FP8_Q)


@dataclass(frozen=True)
class RoutingCosts:
    """Per (moe_layer, sample) arrays; times in seconds, bytes per device already /efficiency."""

    expert_gemm_s: np.ndarray       # (L, S) hottest rank's grouped-GEMM forward time
    expert_elem_s: np.ndarray       # (L, S) the same rank's activation function and permutes
    expert_flops_mean: np.ndarray   # (L, S) mean routed-expert FLOPs per rank (forward)
    expert_cast_fwd_s: np.ndarray   # (L, S) the same rank's FP8 quantization kernels, forward (0 unless FP8)
    expert_cast_bwd_s: np.ndarray   # (L, S) and backward
    a2a_intra: np.ndarray           # (L, S) hottest rank's intra-node bytes of one all-to-all (bf16 payload)
    a2a_inter: np.ndarray           # (L, S) hottest rank's inter-node bytes of one all-to-all (bf16 payload)
    a2a_peers_intra: int
    a2a_peers_inter: int
    a2a_latency_s: float            # one all-to-all's latency term
    imbalance_score: float          # mean over (L, S) of (max_i T_i - min_i T_i) / |X| over EP ranks
    max_over_mean: float            # mean over (L, S) of max/mean EP-rank load
    drop_rate: float
    max_over_mean_worst: float      # worst (L, S) max/mean


def _expert_time(cm: ComputeModel, flops, n_mat: int, matrix_bytes):
    """An expert's two GEMMs (fc1: the gate and up projections fused under SwiGLU, n_mat - 1 of the
    n_mat weight matrices; fc2: one), each on the efficiency curve at its own size."""
    fc1 = flops * (n_mat - 1) / n_mat
    fc2 = flops / n_mat
    return (cm.gemm_time(fc1, np.maximum(fc1, 1.0), weight_bytes=(n_mat - 1) * matrix_bytes)
            + cm.gemm_time(fc2, np.maximum(fc2, 1.0), weight_bytes=matrix_bytes))


def routing_costs(
    model: ModelConfig, par: ParallelConfig, routing: RoutingConfig, cm: ComputeModel, comm: CommModel,
    tokens_per_rank: int, num_layers: int, num_samples: int, rng: np.random.Generator, act_bytes: float = 2.0,
) -> RoutingCosts:
    """tokens_per_rank: tokens each EP rank dispatches per micro-batch (its sequence-parallel shard)."""
    e = model.moe
    E, k, ep = e.num_experts, e.top_k, par.ep_effective
    tokens = tokens_per_rank * ep                                   # one round: every EP rank's micro-batch
    router = "balanced" if routing.mode == "balanced" else e.router
    cap = routing.capacity_factor if routing.mode == "capacity" else None
    sample = sample_tokens_per_expert(
        num_experts=E, top_k=k, router=router, num_groups=e.num_groups, topk_groups=e.topk_groups,
        tokens=tokens, num_layers=num_layers, num_samples=num_samples, skew=routing.skew, rng=rng,
        capacity_factor=cap,
    )
    tpe = sample.tokens_per_expert.astype(float)                    # (L, S, E)
    kind = routing.placement
    if kind == "group_per_device" and e.router != "moge":
        kind = "contiguous"
    load_hint = tpe.mean(axis=(0, 1)) if kind in ("redundant", "dynamic") else None
    placement = place_experts(E, ep, kind if kind != "group_per_device" else "group_per_device",
                              num_groups=e.num_groups, load=load_hint)
    share = placement.expert_rank                                   # (E, ep)
    # --- expert GEMMs on each rank: per-expert token counts, grouped-GEMM efficiency per expert
    h, f = model.hidden_size, e.expert_ffn_hidden_size
    n_mat = 3 if model.activation == "swiglu" else 2
    etp = par.etp
    wb = 1.0 if cm.precision == "fp8" else 2.0
    if np.all((share == 0) | (share == 1)):
        # each expert lives on one rank: time every expert once, then sum onto its rank
        flops_x = 2.0 * tpe * h * f * n_mat / etp                      # (L, S, E)
        t_x = _expert_time(cm, flops_x, n_mat, h * f / etp * wb)
        t_x = np.where(tpe > 0, t_x, 0.0)
        t_gemm_rank = t_x @ share                                       # (L, S, ep)
        flops_rank = flops_x @ share                                    # (L, S, ep)
    else:
        counts = tpe[..., :, None] * share[None, None]                  # (L, S, E, ep) tokens of expert e on rank r
        flops_e = 2.0 * counts * h * f * n_mat / etp                    # (L, S, E, ep)
        wbytes = (share > 0) * (n_mat * h * f / etp) * wb               # (E, ep)
        t_gemm = _expert_time(cm, flops_e, n_mat, wbytes[None, None] / n_mat)
        t_gemm_rank = np.where(counts > 0, t_gemm, 0.0).sum(axis=2)     # (L, S, ep)
        flops_rank = flops_e.sum(axis=2)
    # activation function and permute/unpermute on the routed tokens (memory-bound)
    rank_tokens = tpe @ share                                           # (L, S, ep)
    t_elem_rank = cm.memory_time(act_bytes * rank_tokens * (3 * f / etp + 4 * h))
    # FP8 operands of the expert GEMMs (ProgramBuilder.cast): fc1's input arrives quantised by the
    # dispatch; forward quantises fc2's input, backward re-tiles both inputs and quantises both output grads
    if cm.precision == "fp8":
        f_loc, fc1_out = f / etp, (n_mat - 1) * f / etp
        fwd, bwd = fp8_cast_bytes(rank_tokens * f_loc, rank_tokens * h, rank_tokens * (fc1_out + h), act_bytes)
        cast_f, cast_b = cm.memory_time(fwd), cm.memory_time(bwd)
    else:
        cast_f = cast_b = np.zeros_like(t_elem_rank)
    hot = np.argmax(t_gemm_rank + t_elem_rank + cast_f, axis=-1)[..., None]   # (L, S, 1) the straggler rank
    expert_gemm = np.take_along_axis(t_gemm_rank, hot, -1)[..., 0]
    expert_elem = np.take_along_axis(t_elem_rank, hot, -1)[..., 0]
    expert_cast_f = np.take_along_axis(cast_f, hot, -1)[..., 0]
    expert_cast_b = np.take_along_axis(cast_b, hot, -1)[..., 0]
    expert_flops_mean = flops_rank.mean(axis=-1)
    # --- all-to-all traffic: every source rank sends tokens/ep of the round; split (E,) over sources
    dpn = comm.dpn
    node_of = np.arange(ep) // max(1, min(dpn, ep))
    same = node_of[:, None] == node_of[None, :]                     # (ep_src, ep_dst)
    # expected pair traffic src->dst: each source holds 1/ep of every expert's tokens
    to_rank = rank_tokens / ep                                      # (L, S, ep_dst) pairs one source sends to each dst
    bpt = h * act_bytes
    n_nodes = int(node_of.max()) + 1
    local = ep // n_nodes
    # flat: a source sends to every other rank; receiver r gets to_rank[r] from each source
    recv_intra = to_rank * (local - 1)                              # (L, S, ep) from same-node sources
    recv_inter = to_rank * (ep - local)
    send_tot = to_rank.sum(axis=-1, keepdims=True)                  # (L, S, 1) what one source sends in total
    peers0 = same[0].copy()
    peers0[0] = False                                               # a rank's tokens for itself stay local
    frac_local_dst = (to_rank * peers0[None, None]).sum(-1, keepdims=True) / np.maximum(send_tot, 1e-9)
    send_intra = send_tot * frac_local_dst                          # identical for every source (expected split)
    send_inter = (to_rank * ~same[0][None, None]).sum(-1)           # (L, S) to ranks on other nodes
    if routing.a2a == "hierarchical" and n_nodes > 1:
        # inter-node step: each token crosses to a remote node once, however many experts it uses there
        # (Pangu Ultra MoE hierarchical EP; DeepEP node-limited dispatch); then an intra-node step forwards it.
        node_pairs = to_rank.reshape(*to_rank.shape[:-1], n_nodes, local).sum(-1)   # (L, S, nodes) per source
        t_src = tokens_per_rank
        if e.router == "group_limited" and e.num_groups == n_nodes:
            unique = node_pairs * (e.topk_groups / k)               # a chosen node gets k/topk_groups experts per token
        elif e.router == "moge":
            unique = np.minimum(node_pairs, t_src)                  # every token visits every node
        else:
            unique = t_src * (1.0 - np.exp(-node_pairs / t_src))    # Poisson occupancy of a node by a token's pairs
        unique = np.minimum(unique, node_pairs)
        inter_send = unique.sum(-1) - unique.mean(-1)               # remote nodes only (expected, one node local)
        inter = np.maximum(inter_send, recv_inter.max(-1) * (inter_send / np.maximum(recv_inter.mean(-1), 1e-9)))
        intra = np.maximum(send_intra[..., 0], recv_intra.max(-1)) + recv_inter.max(-1) * (local - 1) / local
    else:
        inter = np.maximum(send_inter, recv_inter.max(-1))
        intra = np.maximum(send_intra[..., 0], recv_intra.max(-1))
    a2a_intra = intra * bpt / (comm.ce.all_to_all_intra * comm._intra_peer_share(max(local - 1, 1)))
    a2a_inter = inter * bpt / comm.ce.all_to_all_inter
    # balance metrics over EP ranks
    rank_load = placement.rank_load(tpe)                            # (L, S, ep)
    is_ = moe_metrics.imbalance_score(rank_load, tokens)
    mean = rank_load.mean(-1)
    mom = rank_load.max(-1) / np.maximum(mean, 1e-12)
    dropped = sample.dropped.astype(float)
    return RoutingCosts(
        expert_gemm_s=expert_gemm, expert_elem_s=expert_elem, expert_flops_mean=expert_flops_mean,
        expert_cast_fwd_s=expert_cast_f, expert_cast_bwd_s=expert_cast_b, a2a_intra=a2a_intra, a2a_inter=a2a_inter,
        a2a_peers_intra=local - 1, a2a_peers_inter=ep - local,
        a2a_latency_s=comm.all_to_all(0.0, 0.0, local - 1, ep - local).latency_s,
        imbalance_score=float(np.mean(is_)), max_over_mean=float(np.mean(mom)),
        drop_rate=float(dropped.sum() / (tokens * k * dropped.size)) if dropped.size else 0.0,
        max_over_mean_worst=float(np.max(mom)),
    )
