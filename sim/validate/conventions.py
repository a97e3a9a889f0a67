"""FLOP-counting conventions of published runs, so our output is compared in the source's units.

Each convention turns a simulated step (its spec and StepReport) into achieved TFLOPS per device,
counted the way the source counts them. Where the source states its formula we recompute its FLOPs
per step from the spec and divide by our simulated step time; otherwise we use our own counts.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.config.model import ModelConfig
from sim.engine.spec import RunSpec
from sim.errors import UserError
from sim.model.params import param_counts
from sim.report.report import StepReport


def megatron_2104_flops_per_step(spec: RunSpec) -> float:
    """FLOPs per iteration as arXiv 2104.04473 eq. 3 counts them: 96 B s l h^2 (1 + s/6h + V/16lh).

    GEMMs of the transformer and logit layers only, non-causal attention scores, and the forward
    pass counted twice ("assumes activation recomputation"): 4 passes x 2 FLOPs per MAC x 12 l h^2
    per token. B is the global batch size in sequences.
    """
    m = spec.model
    B, s = spec.parallel.global_batch_size, spec.workload.seq_len
    layers, h, V = m.num_layers, m.hidden_size, m.vocab_size
    return 96.0 * B * s * layers * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * layers * h))


def _megatron_core_attention(m: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per token of one attention block, Megatron-Core convention (causal scores)."""
    h, n = m.hidden_size, m.num_attention_heads
    if m.attention == "mla":
        a = m.mla
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = a.q_lora_rank * (h + n * qk + 1) if a.q_lora_rank else h * n * qk
        kv = a.kv_lora_rank * (h + n * (a.qk_nope_head_dim + a.v_head_dim) + 1)
        kv += h * a.qk_rope_head_dim
        core = seq_len * n * qk / 2 + seq_len * n * a.v_head_dim / 2
        return 2.0 * (q + kv + n * a.v_head_dim * h + core)
    q = m.dim_per_head * n
    kv = m.dim_per_head * m.kv_heads
    return 2.0 * (h * (q + 2 * kv) + q * seq_len / 2 * 2 + q * h)


def megatron_core_flops_per_token(m: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token as Megatron-LM's num_floating_point_operations counts them.

    megatron/training/training.py (2025): 3 (fwd + wgrad + dgrad) x 2 FLOPs per MAC over the
    attention projections, causal attention scores (seq/2 keys per query), the dense FFN, the
    top-k routed and the shared experts, and the logit layer; no router, norms or recompute.
    That function's MTP branch is not reproduced, so MTP models are refused.
    """
    if m.mtp_layers:
        raise UserError(f"flop convention megatron_core: '{m.name}' has MTP modules (not modelled)")
    h = m.hidden_size
    gate = 3 if m.activation == "swiglu" else 2  # matrices per FFN
    ffn = m.num_dense_layers * m.ffn_hidden_size  # summed FFN width over layers
    if m.moe:
        e = m.moe
        per_layer = e.top_k * e.expert_ffn_hidden_size + e.num_shared_experts * e.shared_ffn
        ffn += m.num_moe_layers * per_layer
    attn = m.num_layers * _megatron_core_attention(m, seq_len)
    return 3.0 * (attn + 2.0 * gate * h * ffn + 2.0 * h * m.vocab_size)


def palm_flops_per_token(m: ModelConfig, seq_len: int) -> float:
    """Model FLOPs per token as PaLM defines MFU (arXiv 2204.02311 App. B): 6N + 12 L H Q T.

    N: parameters one token uses, without the input embedding (a lookup, not a GEMM; our
    reading). L H Q T: layers x query heads x head dim x sequence length (non-causal scores).
    Llama 3 (arXiv 2407.21783 sec 3.3.2) cites this definition for its BF16 MFU.
    """
    pc = param_counts(m)
    if m.attention == "mla":
        a = m.mla
        hq = m.num_attention_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) / 2
    else:
        hq = m.num_attention_heads * m.dim_per_head
    return 6.0 * (pc.active - pc.embedding) + 12.0 * m.num_layers * hq * seq_len


def _tflops_from_step(flops_per_step: float, spec: RunSpec, rep: StepReport) -> float:
    """A source's FLOPs per step over our simulated step time, per device (unit: TFLOPS)."""
    return flops_per_step / rep.step_time_s / spec.parallel.devices / 1e12


def _tokens(spec: RunSpec) -> int:
    return spec.parallel.global_batch_size * spec.workload.seq_len


def sim_model_tflops(spec: RunSpec, rep: StepReport) -> float:
    """Our model FLOPs: 6 x active params + causal attention, no recompute, MTP excluded."""
    return rep.model_tflops_per_device


def sim_hardware_tflops(spec: RunSpec, rep: StepReport) -> float:
    """Our hardware FLOPs including recompute: hfu x dense BF16 peak."""
    return rep.hfu * spec.hardware.peak_flops("bf16") / 1e12


def megatron_2104_tflops(spec: RunSpec, rep: StepReport) -> float:
    return _tflops_from_step(megatron_2104_flops_per_step(spec), spec, rep)


def megatron_core_tflops(spec: RunSpec, rep: StepReport) -> float:
    per_token = megatron_core_flops_per_token(spec.model, spec.workload.seq_len)
    return _tflops_from_step(per_token * _tokens(spec), spec, rep)


def palm_tflops(spec: RunSpec, rep: StepReport) -> float:
    per_token = palm_flops_per_token(spec.model, spec.workload.seq_len)
    return _tflops_from_step(per_token * _tokens(spec), spec, rep)


CONVENTIONS: dict[str, Callable[[RunSpec, StepReport], float]] = {
    "sim_model": sim_model_tflops,
    "sim_hardware": sim_hardware_tflops,
    "megatron_2104": megatron_2104_tflops,
    "megatron_core": megatron_core_tflops,
    "palm": palm_tflops,
}


def achieved_tflops(convention: str, spec: RunSpec, rep: StepReport) -> float:
    """Achieved TFLOPS per device of a simulated step, counted under the named convention."""
    return CONVENTIONS[convention](spec, rep)
