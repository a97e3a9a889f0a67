"""ModelConfig: a dense or Mixture-of-Experts decoder-only transformer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.config.base import StrictModel


class MLAConfig(StrictModel):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank compressed queries and keys/values."""

    q_lora_rank: int | None = Field(
        description="Rank of the query down-projection (tokens); null means queries are not compressed (unit: dims)",
        gt=0,
    )
    kv_lora_rank: int = Field(description="Rank of the joint key/value compression (unit: dims)", gt=0)
    qk_nope_head_dim: int = Field(description="Per-head query/key dims without rotary embedding (unit: dims)", gt=0)
    qk_rope_head_dim: int = Field(description="Per-head query/key dims carrying rotary embedding; the key part is shared across heads (unit: dims)", gt=0)
    v_head_dim: int = Field(description="Per-head value dims (unit: dims)", gt=0)


class MoEConfig(StrictModel):
    """The Mixture-of-Experts block that replaces the dense FFN in MoE layers."""

    num_experts: int = Field(description="Routed experts per MoE layer (unit: count)", gt=0)
    top_k: int = Field(description="Routed experts each token is sent to (unit: count)", gt=0)
    expert_ffn_hidden_size: int = Field(description="FFN hidden size of one routed expert (unit: dims)", gt=0)
    num_shared_experts: int = Field(0, description="Shared experts every token passes through (unit: count)", ge=0)
    shared_expert_ffn_hidden_size: int | None = Field(
        None,
        description="FFN hidden size of one shared expert; null means equal to expert_ffn_hidden_size (unit: dims)",
        gt=0,
    )
    router: Literal["topk", "group_limited", "moge"] = Field(
        "topk",
        description="Routing rule: plain top-k; DeepSeek group-limited (top groups, then top-k inside); "
        "Pangu MoGE (top-k/M inside each of M groups) (unit: none)",
    )
    num_groups: int | None = Field(None, description="Expert groups for group_limited or moge routing (unit: count)", gt=0)
    topk_groups: int | None = Field(None, description="Groups each token may use under group_limited routing (unit: count)", gt=0)
    score_function: Literal["softmax", "sigmoid"] = Field(
        "softmax", description="Router score function (DeepSeek-V3 uses sigmoid) (unit: none)"
    )

    @property
    def shared_ffn(self) -> int:
        return self.shared_expert_ffn_hidden_size or self.expert_ffn_hidden_size

    @model_validator(mode="after")
    def _check(self) -> MoEConfig:
        if self.top_k > self.num_experts:
            raise ValueError(f"moe.top_k ({self.top_k}) must be <= moe.num_experts ({self.num_experts})")
        if self.router in ("group_limited", "moge"):
            if self.num_groups is None:
                raise ValueError(f"moe.num_groups is required for router '{self.router}'")
            if self.num_experts % self.num_groups:
                raise ValueError(
                    f"moe.num_experts ({self.num_experts}) must be divisible by moe.num_groups ({self.num_groups})"
                )
        if self.router == "moge" and self.top_k % self.num_groups:
            raise ValueError(f"moe.top_k ({self.top_k}) must be divisible by moe.num_groups ({self.num_groups}) for moge")
        if self.router == "group_limited":
            if self.topk_groups is None:
                raise ValueError("moe.topk_groups is required for router 'group_limited'")
            if self.topk_groups > self.num_groups:
                raise ValueError(f"moe.topk_groups ({self.topk_groups}) must be <= moe.num_groups ({self.num_groups})")
            per_group = self.num_experts // self.num_groups
            if self.topk_groups * per_group < self.top_k:
                raise ValueError(
                    f"moe.topk_groups ({self.topk_groups}) x experts per group ({per_group}) must be >= moe.top_k ({self.top_k})"
                )
        return self


class ModelConfig(StrictModel):
    """A decoder-only transformer, dense or Mixture-of-Experts."""

    name: str = Field(description="Model name (unit: none)")
    source: str = Field("", description="Where the numbers come from: paper/table or repository/file (unit: none)")
    num_layers: int = Field(description="Transformer layers in the main model, excluding MTP modules (unit: count)", gt=0)
    hidden_size: int = Field(description="Model (residual stream) width (unit: dims)", gt=0)
    num_attention_heads: int = Field(description="Query heads (unit: count)", gt=0)
    num_query_groups: int | None = Field(
        None, description="Key/value heads for gqa; null means equal to num_attention_heads (unit: count)", gt=0
    )
    head_dim: int | None = Field(None, description="Per-head dims for mha/gqa; null means hidden_size / heads (unit: dims)", gt=0)
    attention: Literal["mha", "gqa", "mla"] = Field("mha", description="Attention kind (unit: none)")
    mla: MLAConfig | None = Field(None, description="MLA dimensions, required when attention is mla (unit: none)")
    ffn_hidden_size: int = Field(description="Hidden size of the dense FFN (dense layers) (unit: dims)", gt=0)
    activation: Literal["swiglu", "gelu"] = Field(
        "swiglu", description="FFN activation: swiglu (3 matrices) or gelu (2 matrices) (unit: none)"
    )
    first_k_dense_layers: int = Field(0, description="Leading layers that use a dense FFN instead of MoE (unit: count)", ge=0)
    moe: MoEConfig | None = Field(None, description="MoE block; null for a dense model (unit: none)")
    mtp_layers: int = Field(0, description="Multi-token-prediction modules (DeepSeek-V3 style) (unit: count)", ge=0)
    vocab_size: int = Field(description="Vocabulary size, padded as trained (unit: tokens)", gt=0)
    tie_embeddings: bool = Field(False, description="Input embedding and LM head share one matrix (unit: none)")
    add_bias_linear: bool = Field(False, description="Linear layers carry biases (GPT-3 style) (unit: none)")
    learned_position_embeddings: int = Field(
        0, description="Rows of a learned absolute position embedding (GPT-3: 2048); 0 for rotary (unit: positions)", ge=0
    )

    @property
    def kv_heads(self) -> int:
        return self.num_query_groups or self.num_attention_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_k_dense_layers if self.moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.attention == "mla" and self.mla is None:
            raise ValueError("mla: required when attention is 'mla'")
        if self.attention != "mla" and self.mla is not None:
            raise ValueError(f"mla: given but attention is '{self.attention}'")
        if self.attention == "gqa" and self.num_query_groups is None:
            raise ValueError("num_query_groups: required when attention is 'gqa'")
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(
                f"num_query_groups ({self.kv_heads}) must divide num_attention_heads ({self.num_attention_heads})"
            )
        if self.head_dim is None and self.attention != "mla" and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads}) or head_dim given"
            )
        if self.first_k_dense_layers > self.num_layers:
            raise ValueError(f"first_k_dense_layers ({self.first_k_dense_layers}) must be <= num_layers ({self.num_layers})")
        return self
