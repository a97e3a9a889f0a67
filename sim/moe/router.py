"""Token-level routers: top-k, group-limited (DeepSeek-V3), MoGE (Pangu Pro MoE), balanced.

Vocabulary follows Megatron-LM's ``moe/router.py``: ``logits`` (T, E) are the router outputs,
``scores`` are softmax or sigmoid of them, ``routing_map`` (T, E) bool marks each token's chosen
experts, ``tokens_per_expert`` (E,) counts them. Selection runs chunk by chunk with
``np.partition`` (a per-row threshold) and a comparison; counts are column sums of the mask, so
no per-token Python loop and no (T, K) argsort is needed on the fast path (``count_routed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import UserError
from sim.moe.capacity import drop_by_position, expert_capacity

ROUTERS = ("topk", "group_limited", "moge", "balanced")
SCORE_FUNCTIONS = ("softmax", "sigmoid")
CHUNK_TOKENS = 4096  # rows per chunk: keeps the working set in cache (measured best of 2k-32k)


def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
        raise UserError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def validate_router(num_experts: int, top_k: int, router: str, num_groups: int | None = None,
                    topk_groups: int | None = None) -> tuple[int, int]:
    """Check a router setting; return the effective (num_groups, topk_groups).

    topk and balanced act as one group picked by every token: (1, 1).
    """
    num_experts, top_k = _pos_int("num_experts", num_experts), _pos_int("top_k", top_k)
    if router not in ROUTERS:
        raise UserError(f"unknown router {router!r}; choose one of {', '.join(ROUTERS)}")
    if top_k > num_experts:
        raise UserError(f"top_k ({top_k}) must be <= num_experts ({num_experts})")
    if router in ("topk", "balanced"):
        return 1, 1
    if num_groups is None:
        raise UserError(f"router {router!r} needs num_groups (--groups)")
    m = _pos_int("num_groups", num_groups)
    if num_experts % m:
        raise UserError(f"num_experts ({num_experts}) must be divisible by num_groups ({m})")
    if router == "moge":
        if top_k % m:
            raise UserError(f"moge needs top_k ({top_k}) divisible by num_groups ({m})")
        return m, m
    if topk_groups is None:
        raise UserError("router 'group_limited' needs topk_groups (--topk-groups)")
    g = _pos_int("topk_groups", topk_groups)
    if g > m:
        raise UserError(f"topk_groups ({g}) must be <= num_groups ({m})")
    if g * (num_experts // m) < top_k:
        raise UserError(f"topk_groups ({g}) x experts per group ({num_experts // m}) must be >= top_k ({top_k})")
    return m, g


def topk_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the k largest entries along the last axis, exactly k per row.

    Threshold by ``np.partition``; rows where ties put more than k entries at the threshold are
    redone with ``np.argpartition`` (deterministic tie break).
    """
    n = x.shape[-1]
    if k >= n:
        return np.ones(x.shape, dtype=bool)
    th = np.partition(x, n - k, axis=-1)[..., n - k : n - k + 1]  # (..., 1)
    mask = x >= th  # (..., n)
    if np.count_nonzero(mask) != mask.size // n * k:  # ties at the threshold in some rows
        bad = np.count_nonzero(mask, axis=-1) != k  # (...)
        rows = x[bad]  # (B, n)
        idx = np.argpartition(rows, n - k, axis=-1)[:, n - k :]  # (B, k)
        fix = np.zeros(rows.shape, dtype=bool)
        np.put_along_axis(fix, idx, True, axis=-1)
        mask[bad] = fix
    return mask


def _group_scores(logits: np.ndarray, score_function: str) -> np.ndarray:
    """Scores up to a per-row positive factor (enough for ranking and group sums). (n, E)"""
    if score_function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    return np.exp(logits - logits.max(axis=-1, keepdims=True))  # softmax numerator


def select_mask(logits: np.ndarray, *, top_k: int, router: str, num_groups: int, topk_groups: int,
                score_function: str = "softmax") -> np.ndarray:
    """Routing map (n, E) bool for one chunk of logits (n, E); arguments already validated."""
    n, e = logits.shape
    if router == "topk":
        return topk_mask(logits, top_k)
    per = e // num_groups
    grouped = logits.reshape(n, num_groups, per)  # (n, M, E/M)
    if router == "moge":  # softmax is monotone: top-(K/M) of logits inside every group
        return topk_mask(grouped, top_k // num_groups).reshape(n, e)
    # group_limited: group score = sum of its top-2 expert scores; keep topk_groups groups
    s = _group_scores(logits, score_function).reshape(n, num_groups, per)  # (n, M, E/M)
    top2 = np.partition(s, per - 2, axis=-1)[..., per - 2 :] if per >= 2 else s  # (n, M, <=2)
    gmask = topk_mask(top2.sum(axis=-1), topk_groups)  # (n, M)
    masked = np.where(gmask[:, :, None], grouped, -np.inf).reshape(n, e)  # (n, E)
    return topk_mask(masked, top_k)


def balanced_counts(tokens: int, num_experts: int, top_k: int) -> np.ndarray:
    """Forced-uniform tokens_per_expert (E,): the remainder goes to the lowest expert ids."""
    q, r = divmod(tokens * top_k, num_experts)
    return q + (np.arange(num_experts) < r).astype(np.int64)  # (E,)


def balanced_expert_idx(tokens: int, num_experts: int, top_k: int) -> np.ndarray:
    """Round-robin assignment (T, K): token t gets experts (t*K + j) mod E, all distinct."""
    return ((np.arange(tokens)[:, None] * top_k + np.arange(top_k)) % num_experts).astype(np.int32)


def count_routed(logits: np.ndarray, *, top_k: int, router: str = "topk", num_groups: int | None = None,
                 topk_groups: int | None = None, score_function: str = "softmax",
                 chunk: int = CHUNK_TOKENS) -> np.ndarray:
    """tokens_per_expert (E,) int64 for logits (T, E), without building per-token indices."""
    t, e = logits.shape
    m, g = validate_router(e, top_k, router, num_groups, topk_groups)
    if router == "balanced":
        return balanced_counts(t, e, top_k)
    counts = np.zeros(e, dtype=np.int64)
    for i in range(0, t, chunk):
        mask = select_mask(logits[i : i + chunk], top_k=top_k, router=router, num_groups=m,
                           topk_groups=g, score_function=score_function)  # (n, E)
        counts += np.add.reduce(mask.view(np.uint8), axis=0, dtype=np.int64)
    return counts


@dataclass(frozen=True)
class RouterOutput:
    """One batch routed. expert_idx (T, K) sorted per token; probs (T, K) the chosen experts'
    scores; kept (T, K) False where capacity dropped the assignment."""

    expert_idx: np.ndarray
    probs: np.ndarray
    kept: np.ndarray
    tokens_per_expert: np.ndarray
    dropped: int
    num_experts: int

    @property
    def routing_map(self) -> np.ndarray:
        """(T, E) bool, Megatron's routing_map (after drops)."""
        rm = np.zeros((self.expert_idx.shape[0], self.num_experts), dtype=bool)
        rows = np.broadcast_to(np.arange(rm.shape[0])[:, None], self.expert_idx.shape)
        rm[rows[self.kept], self.expert_idx[self.kept]] = True
        return rm


def _scores(logits: np.ndarray, score_function: str) -> np.ndarray:
    if score_function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def route(logits: np.ndarray, *, top_k: int, router: str = "topk", num_groups: int | None = None,
          topk_groups: int | None = None, score_function: str = "softmax",
          capacity_factor: float | None = None, chunk: int = CHUNK_TOKENS) -> RouterOutput:
    """Route a batch: logits (T, E) -> RouterOutput with per-token expert ids and counts.

    Dropping (capacity_factor set) keeps the earliest tokens of each expert (Megatron's
    "position" drop policy); capacity = ceil(F * T * K / E).
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise UserError(f"logits must be 2-D (tokens, experts), got shape {logits.shape}")
    if score_function not in SCORE_FUNCTIONS:
        raise UserError(f"unknown score_function {score_function!r}; choose softmax or sigmoid")
    t, e = logits.shape
    m, g = validate_router(e, top_k, router, num_groups, topk_groups)
    if router == "balanced":
        idx = balanced_expert_idx(t, e, top_k)  # (T, K)
    else:
        idx = np.empty((t, top_k), dtype=np.int32)  # (T, K)
        for i in range(0, t, chunk):
            mask = select_mask(logits[i : i + chunk], top_k=top_k, router=router, num_groups=m,
                               topk_groups=g, score_function=score_function)  # (n, E)
            idx[i : i + chunk] = np.nonzero(mask)[1].reshape(-1, top_k)
    probs = np.take_along_axis(_scores(logits, score_function), idx, axis=1).astype(np.float32)  # (T, K)
    cap = expert_capacity(t, e, top_k, capacity_factor)
    kept = np.ones(idx.shape, dtype=bool) if cap is None else drop_by_position(idx, e, cap)  # (T, K)
    counts = np.bincount(idx[kept], minlength=e).astype(np.int64)  # (E,)
    return RouterOutput(idx, probs, kept, counts, int(kept.size - np.count_nonzero(kept)), e)
