"""Cost accounting: parameters, FLOPs and bytes per op, memory per device."""

from sim.model.flops import FlopsPerToken, flops_per_token, model_flops_per_token
from sim.model.memory import MemoryBreakdown, peak_memory, stage_memory
from sim.model.params import ParamCounts, param_counts
from sim.model.partition import Chunk, partition

__all__ = [
    "Chunk", "FlopsPerToken", "MemoryBreakdown", "ParamCounts", "flops_per_token", "model_flops_per_token",
    "param_counts", "partition", "peak_memory", "stage_memory",
]
