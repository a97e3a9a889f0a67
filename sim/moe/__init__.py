"""Routing and load balance: routers, skew model, capacity, count-level sampler, placement, metrics."""

from sim.moe.capacity import apply_capacity, drop_by_position, drop_rate, expert_capacity
from sim.moe.load import LoadSample, race_inclusion, sample_tokens_per_expert
from sim.moe.metrics import balance_stats, imbalance_score
from sim.moe.placement import (
    PLACEMENTS,
    DynamicPlacer,
    Placement,
    Traffic,
    a2a_traffic,
    place_experts,
    split_tokens_by_source,
)
from sim.moe.router import ROUTERS, RouterOutput, count_routed, route, topk_mask, validate_router
from sim.moe.skew import (
    SKEW_PRESETS,
    SkewParams,
    batch_log_bias,
    drift_popularity,
    layer_popularity,
    resolve_skew,
    sample_logits,
    selection_weights,
)

__all__ = [
    "PLACEMENTS", "ROUTERS", "SKEW_PRESETS", "DynamicPlacer", "LoadSample", "Placement", "RouterOutput",
    "SkewParams", "Traffic", "a2a_traffic", "apply_capacity", "balance_stats", "batch_log_bias",
    "count_routed", "drift_popularity", "drop_by_position", "drop_rate", "expert_capacity",
    "imbalance_score", "layer_popularity", "place_experts", "race_inclusion", "resolve_skew", "route",
    "sample_logits", "sample_tokens_per_expert", "selection_weights", "split_tokens_by_source",
    "topk_mask", "validate_router",
]
