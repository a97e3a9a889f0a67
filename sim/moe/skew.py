"""Routing-skew model: per-layer expert popularity, per-batch jitter, per-token noise, drift.

Model. Layer l has a popularity vector p_l ~ Dirichlet(alpha * 1_E) (alpha = ``concentration``;
inf = uniform). It persists across micro-batches (popularity is a property of the layer) and
drifts between steps: log p <- log p + drift * N(0, 1), renormalised. A micro-batch perturbs it:
log b = log p + batch_jitter * N(0, 1). A token's router logits are
``logit_e = log b_e + token_noise * Gumbel(0, 1)``, so its top-k is a Plackett-Luce draw
without replacement with weights b_e ** (1 / token_noise) (the Gumbel-top-k identity). The
count-level sampler (``sim.moe.load``) uses exactly these weights, so the two levels agree.
The coefficient of variation of popularity is about 1 / sqrt(alpha). MaxVio_global (the hottest
expert's load over the mean, minus one, over a whole validation set, averaged over layers; arXiv
2408.15664 eq. 4) is the popularity statistic the presets are anchored to.

Presets (the number, then where it comes from):

| preset         | alpha | jitter | drift | source / reason |
|----------------|-------|--------|-------|-----------------|
| ``balanced``   | inf   | 0      | 0     | definition: no persistent preference; only sampling noise remains (the ``balanced`` *router* forces exact uniformity, as Megatron's force-load-balancing benchmarks do) |
| ``aux_loss``   | 16    | 0.05   | 0.02  | arXiv 2408.15664 (DeepSeek, Loss-Free Balancing) Table 2: auxiliary-loss-controlled MoE (64 routed experts, top-6, coefficient 1e-3) has MaxVio_global 0.72 (1B) and 0.52 (3B), averaged over layers; alpha = 16 gives 0.63 on that shape (tests/test_moe_load.py). Table 6 (softmax gate, coefficient 3e-4) reads 0.94. Jitter and drift: ASSUMPTION, small |
| ``loss_free``  | 3000  | 0.05   | 0.02  | the same Table 2: auxiliary-loss-free balancing (DeepSeek-V3 sec. 2.1.2) has MaxVio_global 0.04 at both sizes (0.027-0.048 across Tables 3, 4, 6); alpha = 3000 gives 0.041. Jitter and drift as ``aux_loss`` |
| ``aux_loss_dynamic`` | 16 | 0.56 | 0.02 | ``aux_loss``'s popularity, plus the per-micro-batch swings measured in real training: arXiv 2606.04101 v3 (UltraEP) Fig. 11, Megatron-LM baseline (real routing, resumed from mid-to-late pre-training checkpoints, EP64, GShard aux loss weight 1e-2): inter-rank max:mean load 2.23 (GLM4.5-106B) and 2.86 (Qwen3-235B), both 128 experts top-8. Jitter 0.56 gives their mean, 2.55, on that shape at EP64 (tests/test_moe_load.py); the values are the figure's printed labels (read from the v3 TeX source) |
| ``loss_free_dynamic`` | 3000 | 0.23 | 0.02 | ``loss_free``'s popularity, plus the same measurement for DeepSeek-V3 (256 experts top-8, bias update 1e-3 + sequence-wise loss 1e-4, EP64): max:mean 1.30; jitter 0.23 gives 1.30 |
| ``global_batch_dynamic`` | 16 | 0.90 | 0.02 | the routing of a released checkpoint trained with a global-batch balance loss (Qwen3 Technical Report, arXiv 2505.09388; the method, arXiv 2501.11873, balances over the global batch, not the micro-batch), on real text with nothing rebalancing it: UltraEP (arXiv 2606.04101 v3) Fig. 12, SGLang prefill of the released Qwen3-235B-A22B at EP64 (128 experts top-8, no EPLB), inter-rank max:mean 3.68 (STEM prompts) and 4.01 (mixed, with LongBench); jitter 0.90 gives their mean, 3.85 (tests/test_moe_load.py). Popularity: ``aux_loss``'s (ASSUMPTION: the figure gives the total, not its split into persistent and per-batch parts) |
| ``no_balancing`` | 0.45 | 0.10   | 0.05  | calibrated so the hottest of 160 experts (top-6, the DeepSeek-V2 shape) takes ~30 % of tokens in expectation, the figure the issue attributes to DeepSeek-V2 without an aux loss (see tests/test_moe_load.py); jitter/drift ASSUMPTION |

A float skew is a Dirichlet concentration alpha > 0 with the ``aux_loss`` jitter and drift.

The ``_dynamic`` presets differ from their base only in the per-micro-batch jitter
(``global_batch_dynamic`` shares ``aux_loss``'s popularity). The base presets keep the small assumed
jitter and stay the default: with the measured one, the validation set improves on some entries and
worsens on others (experiments/validation/skew_sensitivity.csv), and the measurement's runs used a 10x
larger aux-loss weight than the Megatron-MoE Qwen3 recipe. ``global_batch_dynamic`` is for a run that
routes with a released global-batch-balanced checkpoint, such as a fine-tune of Qwen3.

The jitter is one draw per (layer, micro-batch round of the EP group), whatever the number of
sequences in the round; no public measurement gives that dependence. The anchors are EP64 figures;
what a preset gives at another EP (fewer or more experts per rank) follows from the independent
per-expert swings of this model (ASSUMPTION: correlated or heavier-tailed hot experts would change it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import UserError


@dataclass(frozen=True)
class SkewParams:
    """Resolved routing skew. concentration: Dirichlet alpha per expert (inf = uniform);
    token_noise: Gumbel scale of per-token logits; batch_jitter: std of per-micro-batch
    log-popularity noise; drift: std of the per-step log-popularity random walk."""

    name: str
    concentration: float
    token_noise: float = 1.0
    batch_jitter: float = 0.0
    drift: float = 0.0


SKEW_PRESETS: dict[str, SkewParams] = {
    "balanced": SkewParams("balanced", math.inf, 1.0, 0.0, 0.0),
    "aux_loss": SkewParams("aux_loss", 16.0, 1.0, 0.05, 0.02),
    "loss_free": SkewParams("loss_free", 3000.0, 1.0, 0.05, 0.02),
    "no_balancing": SkewParams("no_balancing", 0.45, 1.0, 0.10, 0.05),
    "aux_loss_dynamic": SkewParams("aux_loss_dynamic", 16.0, 1.0, 0.56, 0.02),
    "loss_free_dynamic": SkewParams("loss_free_dynamic", 3000.0, 1.0, 0.23, 0.02),
    "global_batch_dynamic": SkewParams("global_batch_dynamic", 16.0, 1.0, 0.90, 0.02),
}
DEFAULT_SKEW = "aux_loss"


def resolve_skew(skew: str | float | SkewParams) -> SkewParams:
    """Preset name, or a Dirichlet concentration (number or numeric string) -> SkewParams."""
    if isinstance(skew, SkewParams):
        return skew
    if isinstance(skew, str):
        key = skew.strip().lower()
        if key in SKEW_PRESETS:
            return SKEW_PRESETS[key]
        try:
            value = float(key)
        except ValueError:
            raise UserError(
                f"unknown skew preset {skew!r}; choose {', '.join(SKEW_PRESETS)} or a positive number"
            ) from None
    elif isinstance(skew, int | float | np.integer | np.floating) and not isinstance(skew, bool):
        value = float(skew)
    else:
        raise UserError(f"skew must be a preset name or a number, got {skew!r}")
    if math.isnan(value) or value <= 0:
        raise UserError(f"skew concentration must be > 0, got {skew!r}")
    base = SKEW_PRESETS[DEFAULT_SKEW]
    return SkewParams(f"alpha={value:g}", value, base.token_noise, base.batch_jitter, base.drift)


def layer_popularity(params: SkewParams, num_experts: int, num_layers: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Per-layer expert popularity (L, E), rows sum to 1."""
    if math.isinf(params.concentration):
        return np.full((num_layers, num_experts), 1.0 / num_experts)  # (L, E)
    g = rng.gamma(params.concentration, size=(num_layers, num_experts))  # (L, E)
    g = np.maximum(g / g.sum(axis=-1, keepdims=True), 1e-12)  # no exactly-dead expert
    return g / g.sum(axis=-1, keepdims=True)


def drift_popularity(popularity: np.ndarray, params: SkewParams, rng: np.random.Generator) -> np.ndarray:
    """One step of popularity drift (..., E): a log-space random walk, renormalised."""
    if params.drift == 0:
        return popularity
    logp = np.log(popularity) + params.drift * rng.standard_normal(popularity.shape)
    p = np.exp(logp - logp.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def batch_log_bias(popularity: np.ndarray, params: SkewParams, rng: np.random.Generator,
                   num_samples: int) -> np.ndarray:
    """Per-micro-batch log bias (..., S, E) = log p + jitter * N(0, 1), from popularity (..., E)."""
    logp = np.log(popularity)[..., None, :]  # (..., 1, E)
    shape = (*popularity.shape[:-1], num_samples, popularity.shape[-1])
    if params.batch_jitter == 0:
        return np.broadcast_to(logp, shape).copy()  # (..., S, E)
    return logp + params.batch_jitter * rng.standard_normal(shape)  # (..., S, E)


def selection_weights(log_bias: np.ndarray, params: SkewParams) -> np.ndarray:
    """Plackett-Luce weights (..., E) of a token's top-k under ``sample_logits``; rows sum to 1."""
    z = log_bias / params.token_noise
    w = np.exp(z - z.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def sample_logits(log_bias: np.ndarray, tokens: int, params: SkewParams, rng: np.random.Generator,
                  dtype=np.float32) -> np.ndarray:
    """Router logits (T, E) for one micro-batch: log_bias (E,) + token_noise * Gumbel."""
    x = rng.random((tokens, log_bias.shape[-1]), dtype=np.float32)  # (T, E) uniform
    np.maximum(x, np.float32(1e-30), out=x)
    np.log(x, out=x)
    np.negative(x, out=x)
    np.log(x, out=x)
    np.negative(x, out=x)  # (T, E) standard Gumbel, built in place (no T x E temporaries)
    if params.token_noise != 1.0:
        x *= np.float32(params.token_noise)
    x += log_bias.astype(np.float32)
    return x if dtype == np.float32 else x.astype(dtype)
