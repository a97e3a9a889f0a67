"""Parameter counts: total and active, per component."""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.model import ModelConfig


def attention_params(m: ModelConfig) -> int:
    """Weights of one attention block (projections and, for MLA, the latent norms)."""
    h = m.hidden_size
    if m.attention == "mla":
        a, n = m.mla, m.num_attention_heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = (h * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * n * qk) if a.q_lora_rank else h * n * qk
        kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank + a.kv_lora_rank * n * (a.qk_nope_head_dim + a.v_head_dim)
        o = n * a.v_head_dim * h
        return q + kv + o
    d, n, g = m.dim_per_head, m.num_attention_heads, m.kv_heads
    p = h * n * d + 2 * h * g * d + n * d * h
    if m.add_bias_linear:
        p += n * d + 2 * g * d + h
    return p


def ffn_params(m: ModelConfig, ffn: int) -> int:
    """Weights of one FFN of hidden size ``ffn`` (a dense FFN or one expert)."""
    h = m.hidden_size
    if m.activation == "swiglu":
        return 3 * h * ffn
    return 2 * h * ffn + ((ffn + h) if m.add_bias_linear else 0)


def norm_params(m: ModelConfig) -> int:
    """One norm: RMSNorm has a scale; LayerNorm (biased models) a scale and a bias."""
    return m.hidden_size * (2 if m.add_bias_linear else 1)


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by component (unit: parameters)."""

    embedding: int          # input embedding (+ learned positions)
    lm_head: int            # output projection (0 when tied) + final norm
    attention: int          # all main-model layers
    dense_ffn: int          # dense-FFN layers
    routed_experts: int     # all routed experts of all MoE layers
    shared_experts: int
    router: int
    norms: int              # per-layer norms
    mtp: int                # multi-token-prediction modules (embedding and head shared)
    active_routed: int      # routed-expert weights one token touches (top_k per MoE layer)
    mtp_active: int

    @property
    def total(self) -> int:
        """Total parameters excluding MTP modules (the convention of DeepSeek-V3's 671B)."""
        return (self.embedding + self.lm_head + self.attention + self.dense_ffn + self.routed_experts
                + self.shared_experts + self.router + self.norms)

    @property
    def total_with_mtp(self) -> int:
        return self.total + self.mtp

    @property
    def active(self) -> int:
        """Parameters one token touches in the main model (embedding and head included)."""
        return self.total - self.routed_experts + self.active_routed


def layer_params(m: ModelConfig, moe_layer: bool) -> tuple[int, int]:
    """(total, active) parameters of one transformer layer."""
    base = attention_params(m) + 2 * norm_params(m)
    if not moe_layer:
        p = base + ffn_params(m, m.ffn_hidden_size)
        return p, p
    e = m.moe
    shared = e.num_shared_experts * ffn_params(m, e.shared_ffn)
    router = m.hidden_size * e.num_experts
    expert = ffn_params(m, e.expert_ffn_hidden_size)
    return base + shared + router + e.num_experts * expert, base + shared + router + e.top_k * expert


def param_counts(m: ModelConfig) -> ParamCounts:
    h = m.hidden_size
    n_moe, n_dense = m.num_moe_layers, m.num_dense_layers
    emb = m.vocab_size * h + m.learned_position_embeddings * h
    head = (0 if m.tie_embeddings else m.vocab_size * h) + norm_params(m)
    routed = shared = router = active_routed = 0
    if m.moe:
        e = m.moe
        expert = ffn_params(m, e.expert_ffn_hidden_size)
        routed = n_moe * e.num_experts * expert
        active_routed = n_moe * e.top_k * expert
        shared = n_moe * e.num_shared_experts * ffn_params(m, e.shared_ffn)
        router = n_moe * h * e.num_experts
    # An MTP module (DeepSeek-V3 sec 2.2): two norms, a 2h -> h projection and one transformer
    # layer of the main model's last-layer kind; embedding and output head are shared.
    mtp_layer_total, mtp_layer_active = layer_params(m, moe_layer=m.is_moe)
    mtp_extra = 2 * norm_params(m) + 2 * h * h + norm_params(m)
    return ParamCounts(
        embedding=emb,
        lm_head=head,
        attention=m.num_layers * attention_params(m),
        dense_ffn=n_dense * ffn_params(m, m.ffn_hidden_size),
        routed_experts=routed,
        shared_experts=shared,
        router=router,
        norms=m.num_layers * 2 * norm_params(m),
        mtp=m.mtp_layers * (mtp_layer_total + mtp_extra),
        active_routed=active_routed,
        mtp_active=m.mtp_layers * (mtp_layer_active + mtp_extra),
    )
