"""The GEMMs one training step runs on one device: shapes, passes, counts and FLOP shares.

The cost model times a GEMM by its FLOPs on the profile's efficiency curve; this inventory lists the
(M, N, K) shapes behind those FLOPs, so that the curve can be measured where the runs actually sit
(benchmarks/gpu/gemm_sweep.py) and so that a user sees which GEMMs dominate a layout.

Conventions (the program builder's, so that the FLOPs agree with it):
- tokens of a micro-batch on a CP rank t = mbs * seq / cp; a column-parallel GEMM splits its output
  dimension over TP, a row-parallel GEMM its reduction dimension; MLA down-projections are split over TP
  like the rest of the attention projections (sim.engine.program divides all projection FLOPs by tp);
- routed experts see the balanced mean load: tokens per local expert r = tsp * top_k * ep * etp / E,
  with tsp the sequence-parallel shard (t / tp under sequence parallelism);
- a forward GEMM (M, N, K) = [M x K] @ [K x N] has a data-gradient GEMM (M, K, N) and a
  weight-gradient GEMM (K, N, M) (the reduction runs over the tokens);
- a full recompute repeats every forward GEMM; a selective recompute the modules it names.
Layers are averaged over pipeline stages (layers / pp per device); the LM head and MTP modules sit on
one stage of pp, so they count 1 / pp per device.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.workload import Workload

PASSES = ("fprop", "dgrad", "wgrad")


@dataclass(frozen=True)
class GemmShape:
    """One GEMM shape of a step on one device: [m x k] @ [k x n] run ``count`` times per step."""

    name: str           # e.g. "attn.qkv", "ffn.fc1", "expert.fc2", "lm_head"
    pass_: str          # fprop, dgrad or wgrad
    m: int
    n: int
    k: int
    count: float        # per step per device (layers / pp x micro-batches x GEMMs per layer)
    precision: str      # "fp8" for the workload's low-precision GEMMs, else "bf16"
    grouped: int = 1    # GEMMs of this shape issued together (local experts of a grouped GEMM)

    @property
    def flops(self) -> float:
        """FLOPs of one GEMM of this shape."""
        return 2.0 * self.m * self.n * self.k

    @property
    def step_flops(self) -> float:
        """FLOPs of all GEMMs of this shape in one step on one device."""
        return self.flops * self.count


def _forward(model: ModelConfig, par: ParallelConfig, work: Workload) -> list[tuple[str, int, int, int, float, bool, str]]:
    """Forward GEMMs per micro-batch: (name, m, n, k, per-device count, low precision, recompute modules
    that repeat it, "|"-separated: the whole MoE block ("moe") includes its shared experts)."""
    m, tp, pp = model, par.tp, par.pp
    h = m.hidden_size
    t = int(round(par.micro_batch_size * work.seq_len / par.cp))
    tsp = int(round(t / tp)) if (par.sequence_parallel and tp > 1) else t
    L = m.num_layers
    n_moe = m.num_moe_layers if m.is_moe else 0
    n_dense = L - n_moe
    out: list = []

    def add(name, rows, cols, red, per_layer_count, low=True, module=""):
        out.append((name, max(1, int(rows)), max(1, int(round(cols))), max(1, int(round(red))),
                    per_layer_count, low, module))

    layers = L / pp
    if m.attention == "mla":
        a, n = m.mla, m.num_attention_heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            add("attn.q_down", t, a.q_lora_rank / tp, h, layers)
            add("attn.q_up", t, n * qk / tp, a.q_lora_rank, layers, module="mla_up_proj")
        else:
            add("attn.q", t, n * qk / tp, h, layers)
        add("attn.kv_down", t, (a.kv_lora_rank + a.qk_rope_head_dim) / tp, h, layers)
        add("attn.kv_up", t, n * (a.qk_nope_head_dim + a.v_head_dim) / tp, a.kv_lora_rank, layers,
            module="mla_up_proj")
        add("attn.out", t, h, n * a.v_head_dim / tp, layers)
    else:
        d, n, g = m.dim_per_head, m.num_attention_heads, m.kv_heads
        add("attn.qkv", t, (n + 2 * g) * d / tp, h, layers)
        add("attn.out", t, h, n * d / tp, layers)

    def ffn(prefix, rows, f, split, count, module):
        (r1, n1, k1), (r2, n2, k2) = ffn_gemm_shapes(m, rows, f, split)
        add(f"{prefix}.fc1", r1, n1, k1, count, module=module)
        add(f"{prefix}.fc2", r2, n2, k2, count, module=module)

    if n_dense:
        ffn("ffn", t, m.ffn_hidden_size, tp, n_dense / pp, "mlp")
    if n_moe:
        e = m.moe
        add("moe.router", tsp, e.num_experts, h, n_moe / pp, low=False, module="moe")
        if e.num_shared_experts:
            ffn("shared", t, e.num_shared_experts * e.shared_ffn, tp, n_moe / pp, "shared_experts|moe")
        local = e.num_experts / par.ep_effective
        r = tsp * e.top_k * par.ep_effective * par.etp / e.num_experts
        ffn("expert", r, e.expert_ffn_hidden_size, par.etp, local * n_moe / pp, "moe")
    heads = 1 + m.mtp_layers
    add("lm_head", t, m.vocab_size / tp, h, heads / pp, low=False)
    if m.mtp_layers:
        add("mtp.proj", t, h / tp, 2 * h, m.mtp_layers / pp)
    return out


def ffn_gemm_shapes(model: ModelConfig, rows: float, ffn: int, split: int) -> list[tuple[float, float, float]]:
    """(m, n, k) of an FFN's two GEMMs on ``rows`` tokens, its hidden size split ``split`` ways: fc1 (the
    gate and up projections fused into one GEMM under SwiGLU, as Megatron-Core's linear_fc1) and fc2."""
    h = model.hidden_size
    up = 2 * ffn / split if model.activation == "swiglu" else ffn / split
    return [(rows, up, h), (rows, h, ffn / split)]


def layer_gemm_shapes(model: ModelConfig, par: ParallelConfig, work: Workload) -> dict[str, tuple[int, int, int]]:
    """Forward (m, n, k) of each distinct GEMM of one layer by name (attn.*, ffn.*, shared.*, expert.*, ...)."""
    return {name: (m_, n_, k_) for name, m_, n_, k_, *_ in _forward(model, par, work)}


def gemm_inventory(model: ModelConfig, par: ParallelConfig, work: Workload) -> list[GemmShape]:
    """Every GEMM shape of one step on one (pipeline-averaged) device, forward, backward and recompute.

    MTP modules' attention and FFN GEMMs are left out (the LM head and the MTP projection are in).
    """
    mb = par.num_microbatches
    low_prec = "fp8" if work.precision == "fp8" else "bf16"
    recompute = par.recompute
    mods = par.recomputed
    out: list[GemmShape] = []
    for name, m_, n_, k_, count, low, module in _forward(model, par, work):
        prec = low_prec if low else "bf16"
        grouped = 1
        if name.startswith("expert."):
            grouped = max(1, int(round(model.moe.num_experts / par.ep_effective)))
        fwd_runs = 2 if recompute == "full" or any(mod in mods for mod in module.split("|") if mod) else 1
        per_step = count * mb
        out.append(GemmShape(name, "fprop", m_, n_, k_, per_step * fwd_runs, prec, grouped))
        out.append(GemmShape(name, "dgrad", m_, k_, n_, per_step, prec, grouped))
        out.append(GemmShape(name, "wgrad", k_, n_, m_, per_step, prec, grouped))
    return out


def unique_shapes(inventory: list[GemmShape]) -> list[tuple[int, int, int, str, int, float]]:
    """(m, n, k, precision, grouped, step FLOP share) per distinct shape, largest share first."""
    total = sum(g.step_flops for g in inventory) or 1.0
    acc: dict[tuple[int, int, int, str, int], float] = {}
    for g in inventory:
        key = (g.m, g.n, g.k, g.precision, g.grouped)
        acc[key] = acc.get(key, 0.0) + g.step_flops / total
    return sorted(((*key, share) for key, share in acc.items()), key=lambda r: (-r[5], r[:5]))
