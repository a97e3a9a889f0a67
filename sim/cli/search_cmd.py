"""`moe-sim search`: the best TP/PP/VPP/EP/CP/micro-batch layouts for one model on N devices."""

from __future__ import annotations

from sim.cli.output import add_format_arg, emit
from sim.cli.run_cmd import routing_overrides
from sim.errors import UserError
from sim.moe.skew import SKEW_PRESETS

SHOWN = ("step_time_s", "tokens_per_s", "tokens_per_s_per_device", "mfu", "peak_memory_gib", "bubble_fraction")
CHOICE_LISTS = {"no": [False], "yes": [True], "both": [False, True]}


def _zero_stages(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v not in (0, 1, 2, 3) for v in vals):
        raise UserError(f"--zero {text}: expected comma-separated stages from 0 to 3, e.g. 1,3")
    return vals


def _ints(flag: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{flag} {text}: expected comma-separated integers, e.g. 1,2,4") from None
    if not vals or any(v <= 0 for v in vals):
        raise UserError(f"--{flag} {text}: expected positive integers")
    return vals


def _words(flag: str, text: str | None, allowed: tuple[str, ...]) -> list | None:
    if text is None:
        return None
    vals = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in vals if v not in allowed]
    if bad or not vals:
        raise UserError(f"--{flag} {text}: expected a comma-separated list of {', '.join(allowed)}")
    return [None if v == "auto" else v for v in vals]


def add_parser(sub):
    p = sub.add_parser(
        "search", help="find the best parallel layouts for a model",
        description="Enumerate TP/PP/VPP/EP/CP/micro-batch/recompute layouts (Megatron-LM meanings; "
        "dp = devices / (tp*pp*cp)), drop invalid ones and those that do not fit device memory, screen the "
        "rest with the analytic estimate and re-run the best --top with the DES. Prints the ranked layouts "
        "and how many were enumerated, dropped (by reason), screened and simulated.")
    p.add_argument("--model", required=True, help="model preset name or YAML path")
    p.add_argument("--hardware", required=True, help="hardware profile name or YAML path")
    p.add_argument("--devices", required=True, type=int, help="total devices")
    p.add_argument("--gbs", required=True, type=int, help="global batch size (sequences)")
    p.add_argument("--seq", type=int, default=4096, help="sequence length (tokens; default 4096)")
    p.add_argument("--precision", choices=["bf16", "fp8"], default="bf16")
    p.add_argument("--top", type=int, default=3, metavar="K", help="best analytic layouts re-run with the DES (default 3)")
    p.add_argument("--executor", choices=["des", "analytic"], default="des",
                   help="des: screen analytically, then simulate the top K (default); analytic: screening only")
    p.add_argument("--objective", default="max tokens_per_s", help="'max COLUMN' or 'min COLUMN' (default: max tokens_per_s)")
    p.add_argument("--tp", metavar="LIST", help="tensor-parallel sizes, e.g. 1,2,4,8 (default: divisors of devices per node)")
    p.add_argument("--pp", metavar="LIST", help="pipeline stages (default: divisors of devices/(tp*cp) up to num_layers)")
    p.add_argument("--vpp", metavar="LIST", help="virtual chunks per stage (default 1,2)")
    p.add_argument("--ep", metavar="LIST", help="expert-parallel sizes (default: every valid one)")
    p.add_argument("--cp", metavar="LIST", help="context-parallel sizes (default 1)")
    p.add_argument("--expert-tp", dest="expert_tp", metavar="LIST", help="tensor-parallel sizes inside an expert (default 1)")
    p.add_argument("--mbs", metavar="LIST", help="micro-batch sizes (default 1,2)")
    p.add_argument("--recompute", metavar="LIST", help="none,selective,full (default selective,full)")
    p.add_argument("--schedule", metavar="LIST", help="auto,1f1b,interleaved,dualpipe (default auto)")
    p.add_argument("--tp-extends-ep", dest="tp_extends_ep", choices=list(CHOICE_LISTS), default="no",
                   help="spread experts over the TP group (Pangu/MindSpeed): no, yes or both (default no)")
    p.add_argument("--a2a-overlap", dest="a2a_overlap", choices=list(CHOICE_LISTS), default="no",
                   help="overlap the EP all-to-all with compute: no, yes or both (default no)")
    p.add_argument("--tp-comm-overlap", dest="tp_comm_overlap", choices=list(CHOICE_LISTS), default="no",
                   help="overlap the TP all-gather / reduce-scatter with GEMMs (tp > 1): no, yes or both (default no)")
    p.add_argument("--zero", metavar="LIST", help="data-parallel sharding stages to try, e.g. 1,3: 0 plain DP, "
                   "1 distributed optimizer, 2 + sharded gradients, 3 + sharded weights (FSDP) (default 1)")
    p.add_argument("--routing", help="balanced (forced), dropless (default), or capacity:FACTOR")
    p.add_argument("--skew", help=f"routing-skew preset ({', '.join(SKEW_PRESETS)}) or a concentration")
    p.add_argument("--a2a", choices=["flat", "hierarchical"])
    p.add_argument("--seed", type=int)
    p.add_argument("--show", type=int, default=10, metavar="N", help="layouts to print (default 10)")
    p.add_argument("--out", metavar="FILE", help="write every screened layout, ranked, as .csv, .parquet or .json")
    add_format_arg(p)
    return p


def _options(args) -> dict:
    o = {"tp": _ints("tp", args.tp), "pp": _ints("pp", args.pp), "vpp": _ints("vpp", args.vpp),
         "ep": _ints("ep", args.ep), "cp": _ints("cp", args.cp), "expert_tp": _ints("expert-tp", args.expert_tp),
         "micro_batch_size": _ints("mbs", args.mbs),
         "recompute": _words("recompute", args.recompute, ("none", "selective", "full")),
         "schedule": _words("schedule", args.schedule, ("auto", "1f1b", "interleaved", "dualpipe")),
         "tp_extends_ep": CHOICE_LISTS[args.tp_extends_ep], "a2a_overlap": CHOICE_LISTS[args.a2a_overlap],
         "tp_comm_overlap": CHOICE_LISTS[args.tp_comm_overlap], "zero": _zero_stages(args.zero), "top": args.top}
    return {k: v for k, v in o.items() if v is not None}


def ranked_rows(res, columns: tuple[str, ...] | None = None) -> list[dict]:
    from sim.search.layouts import layout_columns
    rows = []
    for i, lay in enumerate(res.layouts, 1):
        rep = lay.report if columns is None else {c: lay.report.get(c) for c in columns}
        rows.append({"rank": i, "executor": lay.executor, **layout_columns(lay.parallel), **rep})
    return rows


def run(args) -> int:
    from sim.config.load import load_hardware, load_model, parse
    from sim.config.routing import RoutingConfig
    from sim.config.workload import Workload
    from sim.search.layouts import LayoutOptions, search_layouts
    from sim.search.objective import parse_objective
    from sim.search.results import table_format, write_table

    if args.devices <= 0 or args.gbs <= 0 or args.seq <= 0 or args.top <= 0:
        raise UserError("--devices, --gbs, --seq and --top must be positive")
    if args.out:
        table_format(args.out)
    try:
        objective = parse_objective(args.objective)
    except ValueError as e:
        raise UserError(f"--objective: {e}") from None
    model = load_model(args.model)
    hw = load_hardware(args.hardware)
    work = parse(Workload, {"seq_len": args.seq, "precision": args.precision}, "workload")
    routing = parse(RoutingConfig, routing_overrides(args), "routing")
    if isinstance(routing.skew, str):
        from sim.moe.skew import resolve_skew
        resolve_skew(routing.skew)
    opts = parse(LayoutOptions, _options(args), "search options")
    res = search_layouts(model, hw, work, routing, {"devices": args.devices, "global_batch_size": args.gbs},
                         opts, objective, executor=args.executor)
    if args.out:
        write_table(ranked_rows(res), args.out)
    cols = tuple(dict.fromkeys((*SHOWN, objective.column)))
    shown = ranked_rows(res, cols)[:max(args.show, 0)]
    if args.format == "table":   # leave out option columns that do not vary
        for k in ("cp", "expert_tp", "tp_extends_ep", "a2a_overlap", "tp_comm_overlap", "zero"):
            if len({r[k] for r in shown}) == 1:
                for r in shown:
                    del r[k]
    c = res.counts()
    if args.format == "json":
        emit({"model": model.name, "hardware": hw.name, "devices": args.devices, "global_batch_size": args.gbs,
              "seq_len": args.seq, "objective": str(objective), "counts": {**c, "infeasible_by_reason": res.infeasible},
              "layouts": shown}, "json")
    else:
        emit(shown, "table")
        print(f"\n{model.name} on {args.devices} x {hw.name}, gbs {args.gbs}, seq {args.seq}; objective {objective}")
        print(f"enumerated {c['enumerated']:,}; infeasible {c['infeasible']:,}; screened {c['screened']:,} (analytic); "
              f"simulated {c['simulated']:,} (des)")
        for reason, n in res.infeasible.items():
            print(f"  {n:>7,}  {reason}")
        if args.out:
            print(f"wrote {args.out}: {len(res.layouts)} layouts")
    return 0 if res.layouts else 1
