"""`moe-sim route`: Monte Carlo of one MoE layer's routing balance over EP devices.

Each trial routes one batch of --tokens tokens token by token (real top-k on sampled logits),
places experts contiguously on --devices ranks (for moge: whole groups per device) and measures
the Pangu Pro MoE imbalance score, max/mean device load and the drop rate. Expert popularity is
drawn once (one layer) and drifts between trials as between training steps.
"""

from __future__ import annotations

import numpy as np

from sim.cli.output import add_format_arg, emit
from sim.errors import UserError
from sim.moe.capacity import apply_capacity, expert_capacity
from sim.moe.metrics import balance_stats, imbalance_score
from sim.moe.placement import place_experts
from sim.moe.router import ROUTERS, SCORE_FUNCTIONS, count_routed, validate_router
from sim.moe.skew import (
    SKEW_PRESETS,
    batch_log_bias,
    drift_popularity,
    layer_popularity,
    resolve_skew,
    sample_logits,
)


def add_parser(subparsers):
    p = subparsers.add_parser("route", help="measure routing load balance over EP devices (Monte Carlo)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--experts", type=int, required=True, help="routed experts N")
    p.add_argument("--top-k", type=int, required=True, help="experts per token K")
    p.add_argument("--router", choices=ROUTERS, required=True, help="routing rule")
    p.add_argument("--groups", type=int, default=None, help="expert groups M (moge: default = devices)")
    p.add_argument("--topk-groups", type=int, default=None, help="groups per token G (group_limited)")
    p.add_argument("--devices", type=int, required=True, help="EP devices D (must divide N)")
    p.add_argument("--tokens", type=int, required=True, help="tokens per batch |X|")
    p.add_argument("--trials", type=int, required=True, help="batches to route")
    p.add_argument("--skew", default="aux_loss", help=f"{' | '.join(SKEW_PRESETS)} | Dirichlet concentration")
    p.add_argument("--capacity-factor", type=float, default=None, help="expert capacity factor (default: dropless)")
    p.add_argument("--score-function", choices=SCORE_FUNCTIONS, default="softmax", help="router score function")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_format_arg(p)
    return p


def route_trials(*, experts: int, top_k: int, router: str, groups: int | None, topk_groups: int | None,
                 devices: int, tokens: int, trials: int, skew: str | float, capacity_factor: float | None,
                 score_function: str, seed: int) -> dict:
    """Run the Monte Carlo; return the summary dict the command prints."""
    for name, v in (("devices", devices), ("tokens", tokens), ("trials", trials)):
        if v < 1:
            raise UserError(f"--{name} must be a positive integer, got {v}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if router == "moge" and groups is None:
        groups = devices
    m, g = validate_router(experts, top_k, router, groups, topk_groups)
    if experts % devices:
        raise UserError(f"--devices ({devices}) must divide --experts ({experts})")
    params = resolve_skew(skew)
    cap = expert_capacity(tokens, experts, top_k, capacity_factor)
    placement = place_experts(experts, devices)
    rng = np.random.default_rng(seed)
    pop = layer_popularity(params, experts, 1, rng)[0]  # (E,)
    tpe = np.empty((trials, experts), dtype=np.int64)  # (trials, E)
    for t in range(trials):
        logits = sample_logits(batch_log_bias(pop, params, rng, 1)[0], tokens, params, rng)  # (T, E)
        tpe[t] = count_routed(logits, top_k=top_k, router=router, num_groups=m, topk_groups=g,
                              score_function=score_function)
        pop = drift_popularity(pop, params, rng)
    kept, dropped = apply_capacity(tpe, cap)  # (trials, E), (trials,)
    dev = placement.rank_load(kept)  # (trials, D)
    score = imbalance_score(dev, tokens)  # (trials,)
    dstats, estats = balance_stats(dev), balance_stats(kept)
    return {
        "router": router, "experts": experts, "top_k": top_k, "groups": m if router in ("moge", "group_limited") else None,
        "topk_groups": g if router == "group_limited" else None, "devices": devices, "tokens": tokens,
        "trials": trials, "skew": params.name, "capacity_factor": capacity_factor, "seed": seed,
        "imbalance_score_mean": float(score.mean()),
        "imbalance_score_p50": float(np.median(score)),
        "imbalance_score_max": float(score.max()),
        "p_imbalance_positive": float(np.mean(score > 0)),
        "max_over_mean_device_load": float(np.mean(dstats["max_over_mean"])),
        "cv_device_load": float(np.mean(dstats["cv"])),
        "max_over_mean_expert_load": float(np.mean(estats["max_over_mean"])),
        "drop_rate": float(dropped.sum()) / float(trials * tokens * top_k),
    }


def run(args) -> int:
    emit(route_trials(experts=args.experts, top_k=args.top_k, router=args.router, groups=args.groups,
                      topk_groups=args.topk_groups, devices=args.devices, tokens=args.tokens,
                      trials=args.trials, skew=args.skew, capacity_factor=args.capacity_factor,
                      score_function=args.score_function, seed=args.seed), args.format)
    return 0
