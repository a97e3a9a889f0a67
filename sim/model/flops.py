"""FLOPs per token, forward and backward, by layer kind.

Convention (the one Megatron-LM and DeepSeek-V3 use for MFU): a GEMM costs 2 FLOPs per
multiply-accumulate; the backward pass costs twice the forward (data and weight gradients);
attention scores are counted with causal masking (each token attends to seq/2 keys on average);
the input-embedding lookup is not a GEMM and costs nothing; recompute is not counted in model
FLOPs (it is in hardware FLOPs, hfu).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.model import ModelConfig
from sim.model.params import ffn_params


def attention_proj_flops(m: ModelConfig) -> float:
    """Forward FLOPs per token of the attention projections (Q/K/V/O, MLA down/up projections)."""
    h = m.hidden_size
    if m.attention == "mla":
        a, n = m.mla, m.num_attention_heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = (h * a.q_lora_rank + a.q_lora_rank * n * qk) if a.q_lora_rank else h * n * qk
        kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank * n * (a.qk_nope_head_dim + a.v_head_dim)
        return 2.0 * (q + kv + n * a.v_head_dim * h)
    d, n, g = m.dim_per_head, m.num_attention_heads, m.kv_heads
    return 2.0 * (2 * h * n * d + 2 * h * g * d)


def attention_core_flops(m: ModelConfig, seq_len: int, causal: bool = True) -> float:
    """Forward FLOPs per token of QK^T and attention-times-V over a sequence of seq_len."""
    if m.attention == "mla":
        a = m.mla
        dqk, dv = a.qk_nope_head_dim + a.qk_rope_head_dim, a.v_head_dim
    else:
        dqk = dv = m.dim_per_head
    keys = seq_len / 2.0 if causal else float(seq_len)
    return 2.0 * m.num_attention_heads * (dqk + dv) * keys


@dataclass(frozen=True)
class FlopsPerToken:
    """Forward FLOPs per token of the whole model, by component (unit: FLOP)."""

    attention_proj: float
    attention_core: float
    dense_ffn: float
    routed_experts: float
    shared_experts: float
    router: float
    lm_head: float
    mtp: float

    @property
    def forward(self) -> float:
        """Forward FLOPs of the main model (MTP modules excluded, as DeepSeek-V3 counts MFU)."""
        return (self.attention_proj + self.attention_core + self.dense_ffn + self.routed_experts
                + self.shared_experts + self.router + self.lm_head)

    @property
    def model_flops(self) -> float:
        """Forward + backward model FLOPs per token of the main model: the MFU numerator per token."""
        return 3.0 * self.forward

    @property
    def training_flops(self) -> float:
        """Forward + backward FLOPs per token including MTP modules (work done, no recompute)."""
        return 3.0 * (self.forward + self.mtp)


def flops_per_token(m: ModelConfig, seq_len: int, causal: bool = True) -> FlopsPerToken:
    h = m.hidden_size
    L, n_moe, n_dense = m.num_layers, m.num_moe_layers, m.num_dense_layers
    proj = attention_proj_flops(m)
    core = attention_core_flops(m, seq_len, causal)
    dense_ffn = 2.0 * ffn_params(m, m.ffn_hidden_size)
    routed = shared = router = 0.0
    if m.moe:
        e = m.moe
        routed = 2.0 * e.top_k * ffn_params(m, e.expert_ffn_hidden_size)
        shared = 2.0 * e.num_shared_experts * ffn_params(m, e.shared_ffn)
        router = 2.0 * h * e.num_experts
    moe_layer = routed + shared + router
    # an MTP module: a 2h -> h projection, one layer of the last layer's kind, and the shared LM head
    mtp_layer = proj + core + (moe_layer if m.moe else dense_ffn) + 2.0 * 2 * h * h + 2.0 * h * m.vocab_size
    return FlopsPerToken(
        attention_proj=L * proj,
        attention_core=L * core,
        dense_ffn=n_dense * dense_ffn,
        routed_experts=n_moe * routed,
        shared_experts=n_moe * shared,
        router=n_moe * router,
        lm_head=2.0 * h * m.vocab_size,
        mtp=m.mtp_layers * mtp_layer,
    )


def model_flops_per_token(m: ModelConfig, seq_len: int, causal: bool = True) -> float:
    """Model FLOPs per token (forward + backward of the main model, no recompute, no MTP).

    For DeepSeek-V3 at seq 4,096 this gives ~250 GFLOP/token; the report's 385 TFLOPS/GPU at
    ~1,542 tokens/s/GPU (arXiv 2505.09343 Table 4) implies ~250 GFLOP/token, so MTP is excluded there.
    """
    return flops_per_token(m, seq_len, causal).model_flops
