"""RoutingConfig: how tokens are routed in the simulated step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config.base import StrictModel


class RoutingConfig(StrictModel):
    """Routing behaviour for a run; the router rule itself comes from the model's MoE block."""

    mode: Literal["dropless", "balanced", "capacity"] = Field(
        "dropless",
        description="dropless: real skewed routing, no drops; balanced: forced uniform load "
        "(Megatron force-load-balancing); capacity: skewed routing with a capacity factor (unit: none)",
    )
    skew: str | float = Field(
        "aux_loss",
        description="Routing-skew preset name or a Dirichlet concentration (smaller = more skewed) (unit: none)",
    )
    capacity_factor: float | None = Field(
        None, description="Expert capacity as a multiple of the mean load, for mode capacity (unit: ratio)", gt=0
    )
    placement: Literal["contiguous", "group_per_device", "redundant", "dynamic"] = Field(
        "contiguous", description="Expert placement onto EP ranks (unit: none)"
    )
    a2a: Literal["flat", "hierarchical"] = Field(
        "flat", description="EP all-to-all algorithm: flat, or inter-node step then intra-node step (unit: none)"
    )
    seed: int = Field(0, description="Seed for every stochastic input of the run (unit: none)", ge=0)
