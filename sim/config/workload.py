"""Workload: what one training step processes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config.base import StrictModel


class Workload(StrictModel):
    """Sequence length and GEMM precision of the training run."""

    seq_len: int = Field(4096, description="Tokens per sequence (unit: tokens)", gt=0)
    precision: Literal["bf16", "fp8"] = Field(
        "bf16",
        description="GEMM precision: bf16, or fp8 GEMMs with bf16 master compute elsewhere (DeepSeek-V3 style) (unit: none)",
    )
    attention_kernel: Literal["flash", "unfused"] = Field(
        "flash",
        description="Attention core: flash (fused, no s x s score matrix in HBM; Dao et al. 2022) or unfused "
        "(2021-era Megatron-LM: QK^T and AV as batched GEMMs with the scores written to HBM, a fused "
        "scale-mask-softmax kernel and a separate attention dropout; arXiv 2104.04473 sec. 4.2) (unit: none)",
    )
    attention_dropout: float = Field(
        0.0,
        description="Dropout probability on the attention probabilities; with the unfused kernel it is a "
        "separate pass over the s x s scores and keeps a 1-byte mask (arXiv 2205.05198 sec. 4.1) (unit: ratio)",
        ge=0.0, lt=1.0,
    )
