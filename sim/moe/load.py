"""Count-level sampler of tokens_per_expert for the engine: (layers, samples, E) in milliseconds.

Nothing per token. For each (layer, micro-batch) the skew model gives Plackett-Luce weights w
(``sim.moe.skew``); a token's top-k is a draw of k experts without replacement with those
weights. Its inclusion probabilities are approximated by the exponential-race formula
pi_e = 1 - exp(-w_e * tau) with sum(pi) = k (successive sampling, Rosen 1972), and counts are
drawn with multinomials, so totals are exact:

- topk: multinomial(T*K, pi / K) over all experts.
- moge: every group gets exactly T*K/M; inside a group multinomial(T*K/M, pi_g / (K/M)).
- group_limited: stage 1, tokens per group ~ multinomial(T*G, rho / G) where rho is the race
  over group weights V_g = sum of w in the group with G picks; stage 2, a group selected by n_g
  tokens receives about n_g * k_g assignments, k_g = K * (V_g / rho_g) / sum(V) (the group's
  share, conditioned on being selected; exactly K/G when balanced), capped at the group size,
  totals rounded to sum to T*K; inside the group a multinomial as for moge.
- balanced: exactly T*K/E each, remainder to the lowest expert ids.

tests/test_moe_load.py holds this sampler to the token-level router on max/mean expert load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import UserError
from sim.moe.capacity import apply_capacity, expert_capacity
from sim.moe.router import balanced_counts, validate_router
from sim.moe.skew import (
    SkewParams,
    batch_log_bias,
    layer_popularity,
    resolve_skew,
    selection_weights,
)


@dataclass(frozen=True)
class LoadSample:
    """tokens_per_expert (layers, samples, E) int64 after drops; dropped (layers, samples) int64."""

    tokens_per_expert: np.ndarray
    dropped: np.ndarray
    tokens: int
    top_k: int

    @property
    def drop_rate(self) -> float:
        return float(self.dropped.sum()) / float(self.dropped.size * self.tokens * self.top_k)


def race_inclusion(w: np.ndarray, k: np.ndarray | float, iters: int = 60) -> np.ndarray:
    """Inclusion probabilities (..., n) of drawing k items without replacement with weights w.

    pi = 1 - exp(-w * tau), tau solved by Newton from tau = k / sum(w); the function is concave
    and increasing in tau, so the iteration climbs monotonically to the root. k may be real.
    k == 1 is exact (pi = w / sum(w)); the approximation is weakest for few picks from few,
    very unequal items.
    """
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[-1]
    k = np.broadcast_to(np.asarray(k, dtype=np.float64), w.shape[:-1])[..., None]  # (..., 1)
    full = k >= n - 1e-9
    tau = np.where(full, 0.0, k / w.sum(axis=-1, keepdims=True))  # (..., 1)
    for _ in range(iters):
        e = np.exp(-w * tau)  # (..., n)
        f = (1.0 - e).sum(axis=-1, keepdims=True) - k
        fp = (w * e).sum(axis=-1, keepdims=True)
        step = np.where(full, 0.0, -f / np.maximum(fp, 1e-300))
        tau = tau + step
        if np.all(np.abs(f) < 1e-10 * np.maximum(k, 1.0)):
            break
    pi = np.where(full, 1.0, 1.0 - np.exp(-w * tau))
    one = np.abs(k - 1.0) < 1e-12  # a single draw: exactly proportional to the weights
    return np.where(one, w / w.sum(axis=-1, keepdims=True), pi) if one.any() else pi


def _round_to_total(x: np.ndarray, total: int) -> np.ndarray:
    """Integers (..., M) near x, summing to total along the last axis (largest remainder)."""
    x = x * (total / x.sum(axis=-1, keepdims=True))
    base = np.floor(x).astype(np.int64)
    short = total - base.sum(axis=-1, keepdims=True)  # (..., 1)
    rank = np.argsort(np.argsort(-(x - base), axis=-1, kind="stable"), axis=-1, kind="stable")
    return base + (rank < short)


def _cap_group_picks(kg: np.ndarray, rho: np.ndarray, per: int, top_k: int) -> np.ndarray:
    """Cap per-group picks at the group size, moving the excess to uncapped groups (sum rho*k = K)."""
    for _ in range(8):
        over = kg > per
        if not over.any():
            break
        kg = np.minimum(kg, per)
        free = kg < per
        room = (rho * kg * free).sum(axis=-1, keepdims=True)
        need = top_k - (rho * kg * ~free).sum(axis=-1, keepdims=True)
        kg = np.where(free, kg * need / np.maximum(room, 1e-300), kg)
    return np.minimum(kg, per)


def grouped_counts(w: np.ndarray, *, tokens: int, top_k: int, num_groups: int, topk_groups: int,
                   moge: bool, rng: np.random.Generator) -> np.ndarray:
    """Counts (..., E) for weights w (..., E): see the module docstring."""
    lead, e = w.shape[:-1], w.shape[-1]
    m, g = num_groups, topk_groups
    per = e // m
    wg = w.reshape(*lead, m, per)  # (..., M, E/M)
    if moge or m == 1:
        kg = np.full((*lead, m), top_k / m)  # (..., M)
        totals = np.full((*lead, m), tokens * top_k // m, dtype=np.int64)  # (..., M)
    else:
        v = wg.sum(axis=-1)  # (..., M) group weights
        rho = race_inclusion(v, g)  # (..., M) P(group selected)
        kg = top_k * (v / rho) / v.sum(axis=-1, keepdims=True)  # (..., M) picks when selected
        kg = _cap_group_picks(kg, rho, per, top_k)
        sel = rng.multinomial(tokens * g, rho / rho.sum(axis=-1, keepdims=True))  # (..., M) tokens
        totals = _round_to_total(sel * kg + 1e-12, tokens * top_k)  # (..., M) assignments
    pi = race_inclusion(wg, kg)  # (..., M, E/M)
    p = pi / pi.sum(axis=-1, keepdims=True)
    return rng.multinomial(totals, p).reshape(*lead, e)  # (..., E)


def counts_for_bias(log_bias: np.ndarray, params: SkewParams, *, tokens: int, top_k: int, router: str,
                    num_groups: int | None, topk_groups: int | None, rng: np.random.Generator) -> np.ndarray:
    """Counts (..., E) of routing `tokens` tokens under per-batch log biases (..., E) (``skew.batch_log_bias``)
    with a weight-based router (topk, group_limited, moge): the sampler's second stage, after the biases."""
    m, g = validate_router(log_bias.shape[-1], top_k, router, num_groups, topk_groups)
    return grouped_counts(selection_weights(log_bias, params), tokens=tokens, top_k=top_k, num_groups=m,
                          topk_groups=g, moge=router == "moge", rng=rng)


def sample_tokens_per_expert(*, num_experts: int, top_k: int, router: str, num_groups: int | None,
                             topk_groups: int | None, tokens: int, num_layers: int, num_samples: int,
                             skew: str | float, rng: np.random.Generator,
                             capacity_factor: float | None = None,
                             popularity: np.ndarray | None = None) -> LoadSample:
    """tokens_per_expert (num_layers, num_samples, E) for micro-batches of `tokens` tokens.

    popularity (num_layers, E), if given, replaces the fresh per-layer draw (pass the output of
    ``skew.drift_popularity`` to model drift across steps).
    """
    m, g = validate_router(num_experts, top_k, router, num_groups, topk_groups)
    for name, v in (("tokens", tokens), ("num_layers", num_layers), ("num_samples", num_samples)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    params = resolve_skew(skew)
    cap = expert_capacity(tokens, num_experts, top_k, capacity_factor)
    if router == "balanced":
        tpe = np.broadcast_to(balanced_counts(tokens, num_experts, top_k),
                              (num_layers, num_samples, num_experts)).copy()  # (L, S, E)
    else:
        if popularity is None:
            popularity = layer_popularity(params, num_experts, num_layers, rng)  # (L, E)
        elif popularity.shape != (num_layers, num_experts):
            raise UserError(f"popularity must have shape ({num_layers}, {num_experts}), got {popularity.shape}")
        tpe = counts_for_bias(batch_log_bias(popularity, params, rng, num_samples), params, tokens=tokens,
                              top_k=top_k, router=router, num_groups=m, topk_groups=g, rng=rng)  # (L, S, E)
    kept, dropped = apply_capacity(tpe, cap)
    return LoadSample(kept, dropped, tokens, top_k)
