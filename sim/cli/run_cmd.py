"""`moe-sim run`: simulate one training step from a run-spec YAML or from flags."""

from __future__ import annotations

from sim.cli.output import add_format_arg, emit
from sim.engine.run import simulate
from sim.engine.spec import load_runspec, make_runspec
from sim.errors import UserError
from sim.moe.skew import SKEW_PRESETS

PAR_FLAGS = {"devices": "devices", "tp": "tp", "pp": "pp", "vpp": "vpp", "ep": "ep", "cp": "cp",
             "mbs": "micro_batch_size", "gbs": "global_batch_size", "recompute": "recompute",
             "schedule": "schedule", "expert_tp": "expert_tp"}


def add_parser(sub):
    p = sub.add_parser("run", help="simulate one training step",
                       description="Simulate one training step. Give a run-spec YAML (model, parallel, workload, "
                       "hardware, routing) or flags. As in Megatron-LM, --mbs and --gbs count sequences and "
                       "dp = devices / (tp * pp * cp).")
    p.add_argument("spec", nargs="?", metavar="SPEC.yaml", help="run-spec YAML (flags below override it)")
    p.add_argument("--model", help="model preset name or YAML path")
    p.add_argument("--hardware", help="hardware profile name or YAML path")
    p.add_argument("--devices", type=int, help="total devices")
    p.add_argument("--tp", type=int)
    p.add_argument("--pp", type=int)
    p.add_argument("--vpp", type=int)
    p.add_argument("--ep", type=int)
    p.add_argument("--expert-tp", dest="expert_tp", type=int)
    p.add_argument("--cp", type=int)
    p.add_argument("--tp-extends-ep", action="store_true", default=None, help="Pangu/MindSpeed: experts spread over the TP group")
    p.add_argument("--mbs", type=int, help="micro-batch size (sequences)")
    p.add_argument("--gbs", type=int, help="global batch size (sequences)")
    p.add_argument("--seq", type=int, help="sequence length (tokens)")
    p.add_argument("--precision", choices=["bf16", "fp8"])
    p.add_argument("--recompute", choices=["none", "selective", "full"])
    p.add_argument("--recompute-modules", metavar="LIST",
                   help="with --recompute selective: comma-separated modules (layernorm, core_attn, mla_up_proj, "
                   "moe_act, mlp_act, mlp, moe, shared_experts)")
    p.add_argument("--attention-kernel", choices=["flash", "unfused"], help="attention core implementation")
    p.add_argument("--no-overlap-grad-reduce", action="store_true", default=None,
                   help="reduce gradients after the whole backward (2021 Megatron-LM)")
    p.add_argument("--no-overlap-param-gather", action="store_true", default=None,
                   help="all-gather the updated weights in one blocking collective after the optimizer step "
                   "instead of bucket by bucket ahead of the forward (distributed optimizer)")
    p.add_argument("--shard-gradients", action="store_true", default=None,
                   help="ZeRO-2 / FSDP gradient sharding: reduce-scatter every micro-batch's gradients (needs the distributed optimizer)")
    p.add_argument("--shard-parameters", action="store_true", default=None,
                   help="ZeRO-3 / FSDP full sharding: all-gather each layer's weights before its forward and "
                   "backward every micro-batch (implies --shard-gradients)")
    p.add_argument("--grad-reduce-in-bf16", action="store_true", default=None,
                   help="reduce data-parallel gradients in bf16 instead of fp32 (Megatron-LM flag of the same name)")
    p.add_argument("--account-for-embedding-and-loss", action="store_true", default=None,
                   help="embedding and loss (+ MTP) take a layer position each in the pipeline split")
    p.add_argument("--schedule", choices=["1f1b", "interleaved", "dualpipe"])
    p.add_argument("--a2a-overlap", action="store_true", default=None, help="overlap EP all-to-all with another micro-batch's compute")
    p.add_argument("--tp-comm-overlap", action="store_true", default=None,
                   help="pipeline the sequence-parallel all-gather / reduce-scatter with their GEMMs (Megatron-Core --tp-comm-overlap)")
    p.add_argument("--routing", help="balanced (forced), dropless (default), or capacity:FACTOR")
    p.add_argument("--skew", help=f"routing-skew preset ({', '.join(SKEW_PRESETS)}) or a concentration")
    p.add_argument("--a2a", choices=["flat", "hierarchical"])
    p.add_argument("--seed", type=int)
    p.add_argument("--executor", choices=["des", "analytic"], default="des")
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome trace (open in Perfetto)")
    p.add_argument("--ignore-memory", action="store_true", help="simulate even when the layout does not fit")
    add_format_arg(p)
    return p


def spec_from_args(args) -> dict:
    from sim.config.load import read_yaml
    data = read_yaml(args.spec) if args.spec else {}
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    if args.model:
        data["model"] = args.model
    if args.hardware:
        data["hardware"] = args.hardware
    par = data.setdefault("parallel", {})
    for flag, key in PAR_FLAGS.items():
        v = getattr(args, flag)
        if v is not None:
            par[key] = v
    if args.tp_extends_ep:
        par["tp_extends_ep"] = True
    if args.a2a_overlap:
        par["a2a_overlap"] = True
    if args.tp_comm_overlap:
        par["tp_comm_overlap"] = True
    if args.recompute_modules:
        par["recompute_modules"] = [w.strip() for w in args.recompute_modules.split(",") if w.strip()]
    if args.no_overlap_grad_reduce:
        par["overlap_grad_reduce"] = False
    if args.no_overlap_param_gather:
        par["overlap_param_gather"] = False
    if args.shard_gradients or args.shard_parameters:
        par["shard_gradients"] = True
    if args.shard_parameters:
        par["shard_parameters"] = True
    if args.grad_reduce_in_bf16:
        par["grad_reduce_in_bf16"] = True
    if args.account_for_embedding_and_loss:
        par["account_for_embedding_in_pipeline_split"] = True
        par["account_for_loss_in_pipeline_split"] = True
    work = data.setdefault("workload", {})
    if args.seq is not None:
        work["seq_len"] = args.seq
    if args.precision:
        work["precision"] = args.precision
    if args.attention_kernel:
        work["attention_kernel"] = args.attention_kernel
    data.setdefault("routing", {}).update(routing_overrides(args))
    for need in ("model", "hardware"):
        if need not in data:
            raise UserError(f"--{need} is required (or give a run-spec YAML)")
    if "devices" not in par or "global_batch_size" not in par:
        raise UserError("--devices and --gbs are required (or set parallel.devices and parallel.global_batch_size)")
    return data


def routing_overrides(args) -> dict:
    """The routing section set by --routing, --skew, --a2a and --seed (shared with `search`)."""
    rt: dict = {}
    if args.routing:
        if args.routing.startswith("capacity:"):
            try:
                rt["capacity_factor"] = float(args.routing.split(":", 1)[1])
            except ValueError:
                raise UserError(f"--routing {args.routing}: capacity factor must be a number") from None
            rt["mode"] = "capacity"
        elif args.routing in ("balanced", "dropless"):
            rt["mode"] = args.routing
        else:
            raise UserError(f"--routing {args.routing}: expected balanced, dropless or capacity:FACTOR")
    if args.skew is not None:
        try:
            rt["skew"] = float(args.skew)
        except ValueError:
            rt["skew"] = args.skew
    if args.a2a:
        rt["a2a"] = args.a2a
    if args.seed is not None:
        rt["seed"] = args.seed
    return rt


def run(args) -> int:
    data = spec_from_args(args)
    spec = make_runspec(data, args.spec or "run")
    if isinstance(spec.routing.skew, str):
        from sim.moe.skew import resolve_skew
        resolve_skew(spec.routing.skew)
    rep = simulate(spec, executor=args.executor, trace_path=args.trace, check_memory=not args.ignore_memory)
    out = rep.to_dict()
    emit(out, args.format)
    return 0


__all__ = ["add_parser", "run", "load_runspec"]
