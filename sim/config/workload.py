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
