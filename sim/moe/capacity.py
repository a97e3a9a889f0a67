"""Expert capacity: dropless, or a capacity factor with token dropping (GShard / Megatron)."""

from __future__ import annotations

import math

import numpy as np

from sim.errors import UserError


def expert_capacity(tokens: int, num_experts: int, top_k: int, capacity_factor: float | None) -> int | None:
    """Tokens one expert may take: ceil(F * T * K / E) (Megatron ``get_capacity``); None = dropless."""
    if capacity_factor is None:
        return None
    f = float(capacity_factor)
    if not math.isfinite(f) or f <= 0:
        raise UserError(f"capacity_factor must be a positive number, got {capacity_factor!r}")
    return int(math.ceil(f * tokens * top_k / num_experts))


def apply_capacity(tokens_per_expert: np.ndarray, capacity: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Clip counts (..., E) at capacity; return (kept (..., E), dropped (...)) as int64."""
    tpe = np.asarray(tokens_per_expert, dtype=np.int64)
    if capacity is None:
        return tpe, np.zeros(tpe.shape[:-1], dtype=np.int64)
    kept = np.minimum(tpe, capacity)  # (..., E)
    return kept, (tpe - kept).sum(axis=-1)


def drop_by_position(expert_idx: np.ndarray, num_experts: int, capacity: int) -> np.ndarray:
    """kept (T, K) bool: each expert keeps its first `capacity` assignments in token order."""
    flat = expert_idx.ravel()  # (T*K,) token-major
    order = np.argsort(flat, kind="stable")  # (T*K,)
    starts = np.concatenate(([0], np.cumsum(np.bincount(flat, minlength=num_experts))[:-1]))  # (E,)
    pos = np.arange(flat.size) - starts[flat[order]]  # rank of each assignment inside its expert
    kept = np.empty(flat.size, dtype=bool)
    kept[order] = pos < capacity
    return kept.reshape(expert_idx.shape)


def drop_rate(dropped: np.ndarray | int, tokens: int, top_k: int) -> float:
    """Share of token-expert assignments dropped."""
    return float(np.sum(dropped)) / float(np.size(dropped) * tokens * top_k) if tokens else 0.0
