"""MoGE vs top-k vs group-limited routing: device balance and simulated step time vs EP size.

Pangu Pro MoE (arXiv 2505.21411) groups the experts by device and takes the same number of a
token's experts from every group (MoGE), so every device gets exactly |X| K / M assignments.
This study measures, for three routers on two models:

- part ``step``: one simulated training step per (model, router, EP size, skew): the imbalance
  score and max/mean load over the EP ranks (the engine's own routing samples, every MoE layer
  x 8 micro-batch rounds) and the step time, plus a forced-uniform reference (router
  ``balanced``, skew ``none``);
- part ``mc``: the Monte Carlo of the paper's analysis, N=64 experts, K=8, M=8 devices: P(IS>0)
  and the mean IS versus tokens per batch |X|, token-level routing of sampled router logits.

Usage: python experiments/moge_vs_moe/run.py [--out DIR] [--reduced] [--seed N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import RESULTS, run_parser, write_csv, write_run_info  # noqa: E402

from sim.config.load import load_model  # noqa: E402
from sim.engine.run import simulate  # noqa: E402
from sim.engine.spec import make_runspec  # noqa: E402
from sim.moe import imbalance_score, place_experts  # noqa: E402
from sim.moe.metrics import balance_stats  # noqa: E402
from sim.moe.router import select_mask, validate_router  # noqa: E402
from sim.moe.skew import batch_log_bias, layer_popularity, resolve_skew, sample_logits  # noqa: E402

STUDY = "moge_vs_moe"
SEQ_LEN = 4096
GROUPS = 8          # M: expert groups of MoGE and group_limited (both presets use 8)
TOPK_GROUPS = 4     # G: groups a token may use under group_limited (DeepSeek-V3's 4 of 8)

# Layout per model: tp 1, pp stages, dp data-parallel ranks (fixed, so devices are fixed and only
# EP varies: expert_dp = dp / ep), micro-batches of 1 x 4096 tokens per pipeline, full recompute
# (the only recompute mode in which every EP size fits the device memory; see README).
MODELS = {
    "pangu-pro-moe-72b": {"hardware": "ascend-910b", "pp": 4, "dp": 64, "microbatches": 16},
    "deepseek-v3": {"hardware": "h800", "pp": 16, "dp": 64, "microbatches": 32},
}
ROUTERS = ("topk", "group_limited", "moge")
SKEWS = ("balanced", "aux_loss", "no_balancing")
EP_SIZES = (8, 16, 32, 64)

# Monte Carlo of the paper's analysis: N experts, K per token, M devices (= M MoGE groups)
MC_EXPERTS, MC_TOP_K, MC_DEVICES = 64, 8, 8
MC_TOKENS = tuple(2**i for i in range(13))   # |X| = 1 .. 4096
MC_TRIALS = 1000
MC_ROWS_PER_CHUNK = 16384                     # tokens routed at once (bounds memory)

COLUMNS = [
    "part", "model", "hardware", "router", "skew", "ep_devices", "tokens_per_batch", "num_devices",
    "pp_stages", "dp_ranks", "global_batch_sequences", "executor", "num_samples",
    "imbalance_score_ratio", "p_imbalance_gt0_prob", "max_over_mean_device_load_ratio",
    "step_time_s", "tokens_per_s_per_device", "mfu_frac", "exposed_ep_a2a_s",
    "peak_memory_gib", "fits_memory_bool",
]
NAN = float("nan")


def model_dict(name: str, router: str) -> dict:
    """The preset with its router replaced (M = 8 groups; G = 4 for group_limited)."""
    m = load_model(name).model_dump()
    moe = m["moe"]
    moe["router"] = router
    moe["num_groups"] = None if router == "topk" else GROUPS
    moe["topk_groups"] = TOPK_GROUPS if router == "group_limited" else None
    return m


def runspec_dict(name: str, router: str, ep: int, skew: str, seed: int, reduced: bool) -> dict:
    lay = MODELS[name]
    pp, dp, nmb = lay["pp"], lay["dp"], lay["microbatches"]
    if reduced:
        nmb = pp  # the fewest micro-batches that fill the pipeline
    mode = "balanced" if router == "balanced" else "dropless"
    return {
        "model": model_dict(name, "topk" if router == "balanced" else router),
        "hardware": lay["hardware"],
        "parallel": {"devices": pp * dp, "tp": 1, "pp": pp, "ep": ep, "micro_batch_size": 1,
                     "global_batch_size": dp * nmb, "recompute": "full"},
        "workload": {"seq_len": SEQ_LEN, "precision": "bf16"},
        "routing": {"mode": mode, "skew": "balanced" if skew == "none" else skew,
                    "placement": "contiguous", "a2a": "flat", "seed": seed},
    }


def step_row(name: str, router: str, ep: int, skew: str, seed: int, executor: str,
             reduced: bool) -> dict:
    spec = make_runspec(runspec_dict(name, router, ep, skew, seed, reduced), f"{STUDY} {name}")
    rep = simulate(spec, executor=executor, check_memory=False)
    par = spec.parallel
    n_moe = spec.model.num_layers - spec.model.first_k_dense_layers
    return {
        "part": "step", "model": name, "hardware": spec.hardware.name, "router": router, "skew": skew,
        "ep_devices": ep, "tokens_per_batch": SEQ_LEN * ep, "num_devices": par.devices,
        "pp_stages": par.pp, "dp_ranks": par.dp, "global_batch_sequences": par.global_batch_size,
        "executor": executor,
        "num_samples": n_moe * 8 if executor == "des" else 8,
        "imbalance_score_ratio": float(rep.imbalance_score),
        "p_imbalance_gt0_prob": NAN,
        "max_over_mean_device_load_ratio": float(rep.max_over_mean_device_load),
        "step_time_s": float(rep.step_time_s),
        "tokens_per_s_per_device": float(rep.tokens_per_s_per_device),
        "mfu_frac": float(rep.mfu),
        "exposed_ep_a2a_s": float(rep.exposed_comm_s["ep_a2a"]),
        "peak_memory_gib": float(rep.peak_memory_gib),
        "fits_memory_bool": bool(rep.fits),
    }


def monte_carlo_rows(tokens_list, trials: int, skews, rng: np.random.Generator) -> list[dict]:
    """P(IS > 0) and mean IS over M devices for token-level top-k and MoGE routing.

    Each trial is one batch of |X| tokens of a fresh layer (its own expert popularity under the
    skew preset); both routers route the same logits. Skew ``balanced`` makes the logits i.i.d.,
    so a token's top-K is a uniformly random K-subset: the paper's uniform-random-scores setting.
    """
    n, k, m = MC_EXPERTS, MC_TOP_K, MC_DEVICES
    placement = place_experts(n, m, "contiguous")  # = group_per_device: group g on device g
    rows = []
    for skew in skews:
        params = resolve_skew(skew)
        for x in tokens_list:
            pop = layer_popularity(params, n, trials, rng)                 # (trials, N)
            bias = batch_log_bias(pop, params, rng, 1)[:, 0, :]             # (trials, N)
            score = {"topk": [], "moge": []}
            mom = {"topk": [], "moge": []}
            per = max(1, MC_ROWS_PER_CHUNK // x)
            for i in range(0, trials, per):
                b = bias[i:i + per]
                noise = sample_logits(np.zeros(n), len(b) * x, params, rng)  # (c*|X|, N)
                logits = noise.reshape(len(b), x, n) + b[:, None, :].astype(np.float32)  # (c, |X|, N)
                flat = logits.reshape(-1, n)                                # (c*|X|, N)
                for router in ("topk", "moge"):
                    g, tg = validate_router(n, k, router, m if router == "moge" else None)
                    mask = select_mask(flat, top_k=k, router=router, num_groups=g, topk_groups=tg)
                    counts = mask.reshape(len(b), x, n).sum(axis=1)         # (c, N) tokens_per_expert
                    load = placement.rank_load(counts)                      # (c, M)
                    score[router].append(imbalance_score(load, x))
                    mom[router].append(balance_stats(load)["max_over_mean"])
            for router in ("topk", "moge"):
                s = np.concatenate(score[router])
                rows.append({
                    "part": "mc", "model": f"N{n}_K{k}_M{m}", "hardware": "", "router": router,
                    "skew": skew, "ep_devices": m, "tokens_per_batch": x, "num_devices": m,
                    "pp_stages": None, "dp_ranks": None, "global_batch_sequences": None,
                    "executor": "token_router_mc", "num_samples": trials,
                    "imbalance_score_ratio": float(s.mean()),
                    "p_imbalance_gt0_prob": float(np.mean(s > 0)),
                    "max_over_mean_device_load_ratio": float(np.concatenate(mom[router]).mean()),
                    "step_time_s": NAN, "tokens_per_s_per_device": NAN, "mfu_frac": NAN,
                    "exposed_ep_a2a_s": NAN, "peak_memory_gib": NAN,
                    "fits_memory_bool": None,
                })
    return rows


def main(argv=None) -> None:
    args = run_parser(__doc__.splitlines()[0], HERE).parse_args(argv)
    t0 = time.perf_counter()
    if args.reduced:
        models, eps, skews, executor = ("pangu-pro-moe-72b",), (8, 16), ("balanced", "no_balancing"), "analytic"
        mc_tokens, mc_trials, mc_skews = (1, 16), 20, ("balanced",)
    else:
        models, eps, skews, executor = tuple(MODELS), EP_SIZES, SKEWS, "des"
        mc_tokens, mc_trials, mc_skews = MC_TOKENS, MC_TRIALS, SKEWS
    rows = []
    for name in models:
        for ep in eps:
            rows.append(step_row(name, "balanced", ep, "none", args.seed, executor, args.reduced))
            for router in ROUTERS:
                for skew in skews:
                    rows.append(step_row(name, router, ep, skew, args.seed, executor, args.reduced))
    t_step = time.perf_counter() - t0
    rows += monte_carlo_rows(mc_tokens, mc_trials, mc_skews, np.random.default_rng(args.seed))
    write_csv(args.out / RESULTS, rows, COLUMNS,
              sort_by=("part", "model", "router", "skew", "ep_devices", "tokens_per_batch"))
    base = {name: runspec_dict(name, "moge", eps[0], "aux_loss", args.seed, args.reduced)
            for name in models}
    resolved = {name: make_runspec(d, name).model_dump() for name, d in base.items()}
    write_run_info(args.out, STUDY, {
        "reduced": args.reduced, "seed": args.seed, "executor": executor, "models": list(models),
        "layouts": {k: MODELS[k] for k in models}, "routers": list(ROUTERS), "ep_sizes": list(eps),
        "skews": list(skews), "num_groups": GROUPS, "topk_groups": TOPK_GROUPS, "seq_len": SEQ_LEN,
        "monte_carlo": {"num_experts": MC_EXPERTS, "top_k": MC_TOP_K, "devices": MC_DEVICES,
                        "tokens": list(mc_tokens), "trials": mc_trials, "skews": list(mc_skews)},
        "resolved_runspec_example (router moge, smallest EP, skew aux_loss)": resolved,
    })
    print(f"{STUDY}: {len(rows)} rows -> {args.out / RESULTS} "
          f"(step sims {t_step:.1f} s, total {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
