"""Expert placement onto EP ranks, per-rank load, and the all-to-all traffic matrix.

Kinds:
- ``contiguous``: expert e on rank e // (E / ep) (Megatron's default layout).
- ``group_per_device``: MoGE; whole expert groups per rank (groups are contiguous expert blocks,
  so this is contiguous placement with num_groups a multiple of ep, checked).
- ``redundant``: DeepSeek-V3 EPLB style; ``redundant_slots`` extra copies go one by one to the
  expert with the highest load per copy, then all copies are packed greedily (heaviest first,
  onto the least-loaded rank with a free slot not already holding that expert). Every rank holds
  (E + redundant_slots) / ep slots; a copy handles an equal share of its expert's tokens.
- ``dynamic``: the same packing from observed load, re-planned every N steps by
  ``DynamicPlacer`` (Pangu Ultra MoE's planner/executor); without ``redundant_slots`` it only
  moves experts between ranks.
The hierarchical (node-first) variant of EPLB is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sim.errors import UserError

PLACEMENTS = ("contiguous", "group_per_device", "redundant", "dynamic")


@dataclass(frozen=True)
class Placement:
    """expert_rank (E, ep): share of each expert's tokens handled by each EP rank (rows sum to 1)."""

    expert_rank: np.ndarray
    kind: str

    @property
    def num_experts(self) -> int:
        return self.expert_rank.shape[0]

    @property
    def ep(self) -> int:
        return self.expert_rank.shape[1]

    @cached_property
    def one_hot(self) -> bool:
        return bool(np.all((self.expert_rank == 0) | (self.expert_rank == 1)))

    @property
    def slots_per_rank(self) -> np.ndarray:
        """(ep,) expert copies hosted by each rank."""
        return np.count_nonzero(self.expert_rank, axis=0)

    def rank_load(self, tokens_per_expert: np.ndarray) -> np.ndarray:
        """(..., E) -> (..., ep); integer in, integer out when every expert sits on one rank."""
        tpe = np.asarray(tokens_per_expert)
        if tpe.shape[-1] != self.num_experts:
            raise UserError(f"tokens_per_expert has {tpe.shape[-1]} experts, placement has {self.num_experts}")
        if self.one_hot and np.issubdtype(tpe.dtype, np.integer):
            return tpe.astype(np.int64) @ self.expert_rank.astype(np.int64)  # (..., ep)
        return tpe @ self.expert_rank  # (..., ep)


def _check(num_experts: int, ep: int) -> None:
    for name, v in (("num_experts", num_experts), ("ep", ep)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if num_experts % ep:
        raise UserError(f"ep ({ep}) must divide num_experts ({num_experts})")


def _contiguous(num_experts: int, ep: int) -> np.ndarray:
    m = np.zeros((num_experts, ep))  # (E, ep)
    m[np.arange(num_experts), np.arange(num_experts) // (num_experts // ep)] = 1.0
    return m


def replicate(load: np.ndarray, redundant_slots: int, max_copies: int) -> np.ndarray:
    """Copies per expert (E,): each extra slot goes to the highest load-per-copy expert."""
    copies = np.ones(load.shape[0], dtype=np.int64)
    for _ in range(redundant_slots):
        per = np.where(copies < max_copies, load / copies, -np.inf)
        copies[int(np.argmax(per))] += 1
    return copies


def pack(load: np.ndarray, copies: np.ndarray, ep: int) -> np.ndarray:
    """Greedy balanced packing of expert copies onto ep equal-slot ranks -> expert_rank (E, ep)."""
    e = load.shape[0]
    slots = int(copies.sum()) // ep
    item_expert = np.repeat(np.arange(e), copies)  # (E + R,)
    item_load = load[item_expert] / copies[item_expert]
    order = np.lexsort((item_expert, -item_load))  # heaviest first, ties by expert id
    rank_load, rank_used = np.zeros(ep), np.zeros(ep, dtype=np.int64)
    out = np.zeros((e, ep))  # (E, ep)
    for i in order:
        x = item_expert[i]
        ok = (rank_used < slots) & (out[x] == 0)
        if not ok.any():
            ok = rank_used < slots  # only ranks already holding x have room: merge the copy
        r = int(np.argmin(np.where(ok, rank_load, np.inf)))
        out[x, r] += 1.0 / copies[x]
        rank_load[r] += item_load[i]
        rank_used[r] += 1
    return out


def place_experts(num_experts: int, ep: int, kind: str = "contiguous", *, num_groups: int | None = None,
                  load: np.ndarray | None = None, redundant_slots: int = 0) -> Placement:
    """Place num_experts experts on ep ranks; `load` (E,) is the observed tokens per expert."""
    _check(num_experts, ep)
    if kind not in PLACEMENTS:
        raise UserError(f"unknown placement {kind!r}; choose one of {', '.join(PLACEMENTS)}")
    if isinstance(redundant_slots, bool) or not isinstance(redundant_slots, int | np.integer) or redundant_slots < 0:
        raise UserError(f"redundant_slots must be a non-negative integer, got {redundant_slots!r}")
    if kind == "contiguous":
        return Placement(_contiguous(num_experts, ep), kind)
    if kind == "group_per_device":
        if num_groups is None or num_groups < 1 or num_experts % num_groups or num_groups % ep:
            raise UserError(
                f"group_per_device needs num_groups dividing num_experts ({num_experts}) and a multiple of ep ({ep}), "
                f"got {num_groups}"
            )
        return Placement(_contiguous(num_experts, ep), kind)
    if load is None:
        raise UserError(f"placement {kind!r} needs the observed load per expert")
    load = np.asarray(load, dtype=np.float64).reshape(-1)
    if load.shape[0] != num_experts or np.any(load < 0) or not np.all(np.isfinite(load)):
        raise UserError(f"load must be {num_experts} non-negative finite numbers")
    if redundant_slots % ep:
        raise UserError(f"redundant_slots ({redundant_slots}) must be a multiple of ep ({ep}) (equal slots per rank)")
    copies = replicate(load, int(redundant_slots), max_copies=ep)
    return Placement(pack(load, copies, ep), kind)


@dataclass(frozen=True)
class Traffic:
    """All-to-all dispatch (..., ep_src, ep_dst): tokens and bytes; intra/inter split by node
    (node = rank // devices_per_node). The diagonal (rank to itself, no link) is in intra_bytes
    so intra + inter == bytes; ``local_bytes`` gives it separately."""

    tokens: np.ndarray
    bytes: np.ndarray
    intra_bytes: np.ndarray
    inter_bytes: np.ndarray

    @property
    def local_bytes(self) -> np.ndarray:
        return np.diagonal(self.bytes, axis1=-2, axis2=-1)  # (..., ep)


def a2a_traffic(tokens_per_expert_by_src: np.ndarray, placement: Placement, *, devices_per_node: int,
                bytes_per_token: float) -> Traffic:
    """Traffic of one dispatch: (..., ep_src, E) tokens per source rank and expert -> Traffic."""
    src = np.asarray(tokens_per_expert_by_src)
    if src.ndim < 2 or src.shape[-1] != placement.num_experts or src.shape[-2] != placement.ep:
        raise UserError(f"tokens_per_expert_by_src must be (..., {placement.ep}, {placement.num_experts}), got {src.shape}")
    if isinstance(devices_per_node, bool) or not isinstance(devices_per_node, int | np.integer) or devices_per_node < 1:
        raise UserError(f"devices_per_node must be a positive integer, got {devices_per_node!r}")
    if not bytes_per_token >= 0:
        raise UserError(f"bytes_per_token must be >= 0, got {bytes_per_token!r}")
    tokens = placement.rank_load(src)  # (..., ep_src, ep_dst)
    nbytes = tokens * float(bytes_per_token)  # (..., ep_src, ep_dst)
    node = np.arange(placement.ep) // devices_per_node  # (ep,)
    same = node[:, None] == node[None, :]  # (ep_src, ep_dst)
    return Traffic(tokens, nbytes, np.where(same, nbytes, 0.0), np.where(same, 0.0, nbytes))


def split_tokens_by_source(tokens_per_expert: np.ndarray, ep_src: int, rng: np.random.Generator) -> np.ndarray:
    """(..., E) -> (..., ep_src, E): each source rank holds 1/ep_src of the batch, so each expert's
    tokens come from the sources as a uniform multinomial; sums over sources are exact."""
    tpe = np.asarray(tokens_per_expert, dtype=np.int64)
    parts = rng.multinomial(tpe, np.full(ep_src, 1.0 / ep_src))  # (..., E, ep_src)
    return np.swapaxes(parts, -1, -2)  # (..., ep_src, E)


@dataclass
class DynamicPlacer:
    """Re-place experts every `every_n_steps` from the load observed since the last plan.

    Planner: sums observed tokens_per_expert; executor: swaps in the new placement for the next
    step. Starts contiguous. Mutable by design (it is the state of a running job).
    """

    num_experts: int
    ep: int
    every_n_steps: int
    redundant_slots: int = 0
    placement: Placement = field(init=False)
    _observed: np.ndarray = field(init=False, repr=False)
    _steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise UserError(f"every_n_steps must be >= 1, got {self.every_n_steps}")
        self.placement = place_experts(self.num_experts, self.ep)
        self._observed = np.zeros(self.num_experts)

    def observe(self, tokens_per_expert: np.ndarray) -> Placement:
        """Record one step's load (..., E) (summed over leading axes); return the placement for the next step."""
        tpe = np.asarray(tokens_per_expert, dtype=np.float64)
        self._observed += tpe.reshape(-1, self.num_experts).sum(axis=0)
        self._steps += 1
        if self._steps % self.every_n_steps == 0:
            self.placement = place_experts(self.num_experts, self.ep, "dynamic", load=self._observed,
                                           redundant_slots=self.redundant_slots)
            self._observed = np.zeros(self.num_experts)
        return self.placement
