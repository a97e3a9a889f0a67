"""Memory per device: weights, gradients, optimizer states, activations of in-flight micro-batches.

Byte conventions follow Megatron-LM's distributed-optimizer notes (docs/source/api-guide/dist_optimizer.md):
bf16 weights (2 B), fp32 gradient buffers (4 B), fp32 master weights + Adam m and v (12 B), the last
sharded over data-parallel ranks when the distributed optimizer (ZeRO-1) is on, and the gradients too
with shard_gradients (ZeRO-2).
Activation bytes generalise Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models", sec. 4) to flash attention (no s^2 score matrix kept), GQA, MLA, SwiGLU and MoE.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.workload import Workload
from sim.model.params import attention_params, ffn_params, norm_params
from sim.model.partition import Chunk, partition

GIB = 1024**3
MEMORY_PARTS = ("weights", "gradients", "optimizer", "activations", "transient")   # MemoryBreakdown's byte fields
WEIGHT_BYTES = 2.0          # bf16 weights
GRAD_BYTES = 4.0            # fp32 main_grad buffer (Megatron)
OPTIM_BYTES = 12.0          # fp32 master + Adam exp_avg + exp_avg_sq
ACT_BYTES = 2.0             # bf16 activations


@dataclass(frozen=True)
class StageParams:
    """Parameters held by one device of a stage, split by how the optimizer shards them."""

    dense: float      # non-expert parameters on this device (sharded over dp*cp by ZeRO-1)
    expert: float     # routed-expert parameters on this device (sharded over expert_dp)


def grad_bytes(par: ParallelConfig) -> float:
    """Bytes per gradient element of Megatron's gradient buffers, which the data-parallel reductions
    move: fp32 main_grad for bf16 training (arguments.py: bf16 implies accumulate_allreduce_grads_in_fp32),
    bf16 with --grad-reduce-in-bf16."""
    return 2.0 if par.grad_reduce_in_bf16 else GRAD_BYTES


def stage_params(model: ModelConfig, par: ParallelConfig, chunks: list[Chunk]) -> StageParams:
    """Parameters on one device of a pipeline stage (all its virtual chunks)."""
    h, tp = model.hidden_size, par.tp
    dense = expert = 0.0
    att = attention_params(model) / tp + 2 * norm_params(model)
    dense_ffn = ffn_params(model, model.ffn_hidden_size) / tp
    if model.moe:
        e = model.moe
        moe_dense = e.num_shared_experts * ffn_params(model, e.shared_ffn) / tp + h * e.num_experts
        moe_expert = (e.num_experts / par.ep_effective) * ffn_params(model, e.expert_ffn_hidden_size) / par.etp
    for ch in chunks:
        n_moe = ch.num_moe
        n_dense = len(ch.layers) - n_moe
        dense += (n_moe + n_dense) * att + n_dense * dense_ffn
        if n_moe:
            dense += n_moe * moe_dense
            expert += n_moe * moe_expert
        if ch.embedding:
            dense += (model.vocab_size + model.learned_position_embeddings) * h / tp
        if ch.head:
            # tied to the input embedding, the output layer still keeps its own copy when the embedding
            # sits on another pipeline stage (Megatron-LM: the last stage's word-embedding copy)
            dense += norm_params(model) + (0 if model.tie_embeddings and par.pp == 1 else model.vocab_size * h / tp)
            for _ in range(model.mtp_layers):
                dense += (attention_params(model) / tp + 5 * norm_params(model) + 2 * h * h / tp)
                if model.moe:
                    e = model.moe
                    dense += e.num_shared_experts * ffn_params(model, e.shared_ffn) / tp + h * e.num_experts
                    expert += (e.num_experts / par.ep_effective) * ffn_params(model, e.expert_ffn_hidden_size) / par.etp
                else:
                    dense += ffn_params(model, model.ffn_hidden_size) / tp
    return StageParams(dense=dense, expert=expert)


def layer_activation_bytes(
    model: ModelConfig, par: ParallelConfig, work: Workload, is_moe: bool, moe_load_factor: float = 1.0
) -> float:
    """Activation bytes one layer keeps for backward, per micro-batch, on one device.

    moe_load_factor: routed tokens on this device relative to the balanced mean (>1 on a hot EP rank).
    """
    h, tp = model.hidden_size, par.tp
    t = par.micro_batch_size * work.seq_len / par.cp          # tokens of the micro-batch on this CP rank
    tsp = t / tp if (par.sequence_parallel and tp > 1) else t  # sequence-parallel shard
    if par.recompute == "full":
        return ACT_BYTES * tsp * h                            # only the layer input is checkpointed
    mods = par.recomputed                                     # empty unless selective
    # FP8 training caches the inputs of Linear layers in FP8 for their backward (DeepSeek-V3 sec 3.3.2)
    lin = 1.0 if work.precision == "fp8" else ACT_BYTES
    b = ACT_BYTES * 2 * tsp * h                               # layer input + residual before the FFN norm
    if "layernorm" not in mods:
        b += lin * 2 * tsp * h                                # the two norm outputs (inputs of linears)
    n = model.num_attention_heads
    if model.attention == "mla":
        a = model.mla
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        b += lin * t * ((a.q_lora_rank or 0) + a.kv_lora_rank + a.qk_rope_head_dim)   # latents (replicated over TP)
        if "mla_up_proj" not in mods:   # recomputing the MLA up-projection regenerates Q, K, V from the latents
            b += ACT_BYTES * t * n * (2 * qk + a.v_head_dim) / tp
        b += lin * t * n * a.v_head_dim / tp                                        # attention output
    else:
        d, g = model.dim_per_head, model.kv_heads
        b += ACT_BYTES * t * (n * d + 2 * g * d) / tp + lin * t * n * d / tp       # Q, K, V; attention output
    if work.attention_kernel == "flash":
        b += 4.0 * t * n / tp                                                       # softmax statistics (fp32)
    elif "core_attn" not in mods:
        # unfused attention keeps the s x s softmax output, and with attention dropout its 1-byte mask and
        # its output: the 5as/h term of Korthikanti et al. 2022 (arXiv 2205.05198) eq. 1 (2as/h without dropout)
        b += (2 * ACT_BYTES + 1 if work.attention_dropout > 0 else ACT_BYTES) * t * work.seq_len * n / tp

    def ffn(tokens: float, f: float, split: int, act_mod: str) -> float:
        fc1 = lin * tokens * (2 * f if model.activation == "swiglu" else f) / split  # fc1 output (activation input)
        act = 0.0 if act_mod in mods else lin * tokens * f / split                  # activation output (fc2 input)
        return fc1 + act

    if not is_moe:
        if "mlp" not in mods:                                  # a recomputed FFN keeps only its input
            b += ffn(t, model.ffn_hidden_size, tp, "mlp_act")
    elif "moe" not in mods:                                    # a recomputed MoE block keeps only its input
        e = model.moe
        b += 4.0 * tsp * e.num_experts                                              # router scores (fp32)
        if e.num_shared_experts and "shared_experts" not in mods:
            b += ffn(t, e.num_shared_experts * e.shared_ffn, tp, "moe_act")
        # routed tokens on this device: each token of the SP shard goes to top_k experts; with expert TP
        # the tokens of the expert-TP group are gathered first
        r = tsp * e.top_k * par.etp * moe_load_factor
        # the dispatched input (fc1's weight gradient). Not the expert output: the routing probabilities
        # multiply the activation output inside the fused SwiGLU (Megatron-Core moe/experts.py TEGroupedMLP:
        # weighted_bias_swiglu_impl(intermediate, bias, permuted_probs)), so their gradient reads the saved
        # activation input and the combine is a plain sum with nothing to save
        b += r * h * lin
        b += ffn(r, e.expert_ffn_hidden_size, par.etp, "moe_act")
    return b


def inflight_microbatches(par: ParallelConfig, stage: int) -> float:
    """Micro-batches whose activations a stage holds at its peak, in units of the stage's whole layer set."""
    p, v, m = par.pp, par.vpp, par.num_microbatches
    if par.schedule_name == "dualpipe":
        return min(p + 1, m)            # DeepSeek-V3 Table 2: PP+1 micro-batches of activations
    if v == 1:
        return min(p - stage, m)
    # interleaved 1F1B (Megatron): warm-up chunk-micro-batches of stage s, each 1/v of the stage
    chunks = min((p - stage - 1) * 2 + (v - 1) * p + 1, m * v)
    return chunks / v


@dataclass(frozen=True)
class MemoryBreakdown:
    """Peak memory on one device of one stage (unit: bytes)."""

    stage: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    transient: float        # largest short-lived buffer: logits and loss, or a recomputed layer

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.transient

    @property
    def total_gib(self) -> float:
        return self.total / GIB


def stage_memory(
    model: ModelConfig, par: ParallelConfig, work: Workload, stage: int, moe_load_factor: float = 1.0,
    parts: list[list[Chunk]] | None = None,
) -> MemoryBreakdown:
    parts = parts or partition(model, par)
    chunks = parts[stage]
    inflight = inflight_microbatches(par, stage)
    if par.schedule_name == "dualpipe":
        # DualPipe rank r holds model stages r and pp-1-r (two parameter copies overall); its PP+1
        # in-flight micro-batches are counted in units of one stage, so take the two stages' mean
        chunks = chunks + parts[par.pp - 1 - stage]
        inflight /= 2
    sp = stage_params(model, par, chunks)
    per_chunk = ((stage_params(model, par, [ch]), max(1, len(ch.layers))) for ch in chunks)
    layer = max(((p.dense + p.expert) / n for p, n in per_chunk), default=0.0)   # one layer's weights (mean of its chunk)
    dense_ranks, expert_ranks = par.state_shard_ranks
    shard = sp.dense / dense_ranks + sp.expert / expert_ranks       # this rank's share of sharded states
    gb = grad_bytes(par)
    if par.shard_parameters:
        # ZeRO-3: the bf16 weights live sharded; whole ones exist for the layer computing and the one
        # being gathered ahead (Megatron-FSDP --fsdp-double-buffer keeps two such buffers), per task
        # running at once (two when a forward runs beside a backward)
        paired = 2 if (par.schedule_name == "dualpipe" or par.a2a_overlap) else 1
        weights = WEIGHT_BYTES * (shard + 2 * paired * layer)
    else:
        weights = WEIGHT_BYTES * (sp.dense + sp.expert)
    if par.shard_gradients:
        # ZeRO-2: the gradient lives as the optimizer's shard; a layer's full gradient exists only
        # until its reduce-scatter (one layer's worth counted: the one being reduced)
        grads = gb * (shard + layer)
    else:
        grads = gb * (sp.dense + sp.expert)
    if par.distributed_optimizer:
        optim = OPTIM_BYTES * shard
    else:
        optim = OPTIM_BYTES * (sp.dense + sp.expert)
    per_mb = 0.0
    biggest_layer = 0.0
    act = {k: layer_activation_bytes(model, par, work, k, moe_load_factor)
           for k in ({False, model.is_moe} if model.num_dense_layers else {model.is_moe})}
    for ch in chunks:
        per_mb += ch.num_moe * act.get(True, 0.0) + ch.num_dense * act.get(False, 0.0)
        if ch.head:
            per_mb += model.mtp_layers * act[model.is_moe]
    acts = per_mb * inflight
    t = par.micro_batch_size * work.seq_len / par.cp
    transient = 0.0
    if any(ch.head for ch in chunks):
        # fp32 logits and their gradient for the micro-batch in flight (vocab-parallel over TP)
        transient = 2 * 4.0 * t * model.vocab_size / par.tp * (1 + model.mtp_layers)
    if par.recompute != "none":
        full = par.model_copy(update={"recompute": "none", "recompute_modules": None})
        biggest_layer = max(layer_activation_bytes(model, full, work, m, moe_load_factor) for m in (False, True)
                            if (m and model.is_moe) or (not m and model.num_dense_layers))
        transient = max(transient, biggest_layer)
    return MemoryBreakdown(stage=stage, weights=weights, gradients=grads, optimizer=optim,
                           activations=acts, transient=transient)


def peak_memory(
    model: ModelConfig, par: ParallelConfig, work: Workload, moe_load_factor: float = 1.0
) -> MemoryBreakdown:
    """The stage with the largest memory footprint."""
    parts = partition(model, par)
    return max((stage_memory(model, par, work, s, moe_load_factor, parts) for s in range(par.pp)),
               key=lambda m: m.total)
