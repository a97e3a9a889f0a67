"""`moe-sim model NAME_OR_YAML`: parameter counts and FLOPs per token of a model."""

from __future__ import annotations

from sim.cli.output import add_format_arg, emit
from sim.config import load_model
from sim.errors import UserError
from sim.model import flops_per_token, param_counts


def add_parser(sub):
    p = sub.add_parser("model", help="parameter counts and FLOPs per token of a model preset or YAML",
                       description="Print total and active parameters and model FLOPs per token "
                       "(6 x active matmul params + causal attention, Megatron-LM/DeepSeek-V3 convention).")
    p.add_argument("model", metavar="NAME_OR_YAML", help="preset name (an unknown name lists the presets) or a YAML path")
    p.add_argument("--seq", type=int, default=4096, help="sequence length for attention FLOPs (tokens, default 4096)")
    add_format_arg(p)
    return p


def run(args) -> int:
    if args.seq <= 0:
        raise UserError(f"--seq must be a positive number of tokens (got {args.seq})")
    m = load_model(args.model)
    pc, fl = param_counts(m), flops_per_token(m, args.seq)
    out = {
        "name": m.name,
        "total_params": pc.total,
        "active_params": pc.active,
        "model_flops_per_token": fl.model_flops,
        "total_params_with_mtp": pc.total_with_mtp,
        "seq_len": args.seq,
        "forward_flops_per_token": {
            "attention_proj": fl.attention_proj, "attention_core": fl.attention_core, "dense_ffn": fl.dense_ffn,
            "routed_experts": fl.routed_experts, "shared_experts": fl.shared_experts, "router": fl.router,
            "lm_head": fl.lm_head, "mtp": fl.mtp,
        },
    }
    if args.format == "table":
        out["total_params"] = f"{pc.total / 1e9:.2f}B ({pc.total:,})"
        out["active_params"] = f"{pc.active / 1e9:.2f}B ({pc.active:,})"
        out["model_flops_per_token"] = f"{fl.model_flops / 1e9:.2f} GFLOP"
        out["total_params_with_mtp"] = f"{pc.total_with_mtp / 1e9:.2f}B"
        out["forward_flops_per_token"] = {k: f"{v / 1e9:.2f}G" for k, v in out["forward_flops_per_token"].items()}
    emit(out, args.format)
    return 0
