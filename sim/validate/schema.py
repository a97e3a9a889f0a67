"""ValidationEntry: one published training-run figure and the run spec that reproduces it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.config.base import StrictModel

Metric = Literal["step_time_s", "tokens_per_s_per_device", "model_tflops_per_device", "mfu", "hfu"]
Convention = Literal["sim_model", "sim_hardware", "megatron_2104", "megatron_core", "palm"]

# metrics whose value depends on how FLOPs are counted: the entry must say how its source counts
FLOP_METRICS = ("model_tflops_per_device", "mfu")


class ValidationEntry(StrictModel):
    """A published figure of a large-scale training run, with what is needed to simulate the run."""

    name: str = Field(
        description="Unique entry name, used by --only (unit: none)",
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
    )
    source: str = Field(
        description="Where the figure is published: arXiv id + table/section, or repository + "
        "file path (unit: none)",
        min_length=8,
    )
    run: dict = Field(
        description="Run spec: model, hardware, parallel, workload, routing (unit: none)"
    )
    metric: Metric = Field(
        description="Compared quantity: step_time_s (s), tokens_per_s_per_device (tokens/s), "
        "model_tflops_per_device (TFLOPS per device under flop_convention), mfu or hfu "
        "(fraction of dense BF16 peak) (unit: see metric)"
    )
    published: float = Field(
        description="The published value, in the metric's unit (unit: see metric)", gt=0
    )
    derived: bool = Field(
        description="True when the value is computed from stated figures, not printed (unit: none)"
    )
    derivation: str = Field(
        "", description="How a derived value was computed from the source's figures (unit: none)"
    )
    flop_convention: Convention | None = Field(
        None,
        description="How the source counts FLOPs, for TFLOPS and MFU metrics: sim_model (6 x "
        "active params + causal attention, no recompute: StepReport.model_tflops_per_device); "
        "sim_hardware (our hardware FLOPs incl. recompute, hfu x peak); megatron_2104 (arXiv "
        "2104.04473 eq. 3, 96BslH^2(...), recompute counted); megatron_core (Megatron-LM "
        "num_floating_point_operations, causal); palm (PaLM App. B: 6N + 12LHQT, non-causal) "
        "(unit: none)",
    )
    breakdown: dict[str, float] = Field(
        default_factory=dict,
        description="Published per-phase figures keyed by StepReport key (dotted for nested keys); "
        "each is compared when the report has that key (unit: the key's unit)",
    )
    assumptions: list[str] = Field(
        default_factory=list,
        description="Inputs the source does not state, each marked ASSUMPTION with a reason "
        "(unit: none)",
    )
    notes: str = Field(
        "", description="Anything else a reader needs to judge the comparison (unit: none)"
    )

    @model_validator(mode="after")
    def _check(self) -> ValidationEntry:
        if self.derived and not self.derivation.strip():
            raise ValueError("derivation: required when derived is true")
        if self.metric in FLOP_METRICS and self.flop_convention is None:
            raise ValueError(f"flop_convention: required for metric {self.metric}")
        if self.metric == "hfu" and self.flop_convention not in (None, "sim_hardware"):
            raise ValueError(
                "flop_convention: metric hfu is our hardware-FLOPs utilisation (sim_hardware)"
            )
        if self.metric in ("mfu", "hfu") and self.published > 1:
            raise ValueError(f"published: {self.metric} is a fraction (got {self.published})")
        for key in ("model", "hardware", "parallel"):
            if key not in self.run:
                raise ValueError(f"run.{key}: required")
        return self


class ValidationFile(StrictModel):
    """One YAML file under validation/: the entries taken from one source."""

    entries: list[ValidationEntry] = Field(
        description="Published figures from this source (unit: none)", min_length=1
    )
