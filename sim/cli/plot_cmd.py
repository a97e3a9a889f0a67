"""`moe-sim plot`: figures (PNG or SVG) from `moe-sim sweep` result tables and `run --trace` traces."""

from __future__ import annotations

import argparse

KINDS = ("scatter", "pareto", "routing", "timeline")


def _common(p, table: bool = True) -> None:
    p.add_argument("--out", required=True, metavar="FILE.png|FILE.svg",
                   help="output figure; the format follows the extension")
    p.add_argument("--title", help="figure title (default: from the columns)")
    if table:
        p.add_argument("--where", metavar="EXPR",
                       help="keep rows matching a pandas query, e.g. \"parallel.ep >= 8 and "
                       "hardware == 'h100-sxm'\" (dotted names may be written bare)")


def _xy(p) -> None:
    p.add_argument("results", metavar="RESULTS", help="results table (.csv or .parquet)")
    p.add_argument("--x", required=True, metavar="COL", help="column on the x axis")
    p.add_argument("--y", required=True, metavar="COL", help="column on the y axis")
    p.add_argument("--logx", action="store_true", help="log-scale x axis")
    p.add_argument("--logy", action="store_true", help="log-scale y axis")
    p.add_argument("--omit-infeasible", action="store_true",
                   help="leave out rows with status != ok (default: faint x markers), count them below")


def add_parser(sub):
    p = sub.add_parser("plot", help="plot sweep results or a step trace to PNG/SVG",
                       description="Figures (PNG or SVG) from `moe-sim sweep` result tables "
                       "(scatter, pareto, routing) and `moe-sim run --trace` traces (timeline).")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    s = kinds.add_parser("scatter", help="trade-off scatter of two columns, coloured by a third",
                         description="Scatter --y against --x over the result rows. --color: a "
                         "numeric column gives a colorbar, a categorical one a legend.")
    _xy(s)
    s.add_argument("--color", metavar="COL", help="colour points by this column")
    _common(s)

    q = kinds.add_parser("pareto", help="Pareto frontier of two columns, with marked configs",
                         description="Pareto frontier of the ok rows (default: maximize --y, "
                         "minimize --x) as a step line; dominated points faded.")
    _xy(q)
    q.add_argument("--maximize-x", dest="maximize_x", action="store_true", default=False)
    q.add_argument("--minimize-x", dest="maximize_x", action="store_false", help="(default)")
    q.add_argument("--maximize-y", dest="maximize_y", action="store_true", default=True,
                   help="(default)")
    q.add_argument("--minimize-y", dest="maximize_y", action="store_false")
    q.add_argument("--mark", action="append", metavar="COL=VAL[,COL=VAL...]",
                   help="star and annotate rows with these values (repeatable), e.g. "
                   "model.hidden_size=7680,model.num_layers=61,model.moe.num_experts=256,"
                   "model.moe.top_k=8")
    q.add_argument("--mark-label", action="append", metavar="TEXT",
                   help="annotation for the n-th --mark (default: its COL=VAL pairs)")
    _common(q)

    r = kinds.add_parser("routing", help="grouped bars of a metric per router (or any column)",
                         description="Mean of --metric for each value of --by, one bar per "
                         "--group value; error bars where a bar averages several rows.")
    r.add_argument("results", metavar="RESULTS", help="results table (.csv or .parquet)")
    r.add_argument("--by", required=True, metavar="COL", help="categories on the x axis, "
                   "e.g. model.moe.router")
    r.add_argument("--metric", required=True, metavar="COL", help="bar height, e.g. imbalance_score")
    r.add_argument("--group", metavar="COL", help="bars side by side within a category, "
                   "e.g. parallel.ep")
    r.add_argument("--err", choices=("minmax", "std", "none"), default="minmax",
                   help="error bars when a bar averages several rows (default: minmax)")
    _common(r)

    t = kinds.add_parser("timeline", help="per-stage timeline of a `moe-sim run --trace` file",
                         description="One row per (pipeline stage, stream), bars coloured by "
                         "category (compute, tp, ep_a2a, pp_p2p, dp, ...).")
    t.add_argument("trace", metavar="TRACE.json", help="Chrome trace from moe-sim run --trace")
    t.add_argument("--stages", type=int, metavar="N", help="show only the first N stages")
    t.add_argument("--start", type=float, metavar="S", help="window start (seconds)")
    t.add_argument("--end", type=float, metavar="S", help="window end (seconds)")
    t.add_argument("--unit", choices=("auto", "s", "ms"), default="auto",
                   help="time axis unit (auto: ms for windows under 1 s)")
    _common(t, table=False)
    return p


def _table(args):
    from sim.plot.table import filter_rows, read_table
    return filter_rows(read_table(args.results), args.where)


def make_figure(args: argparse.Namespace):
    """The Figure the parsed arguments ask for (the CLI's whole job, minus saving)."""
    import sim.plot as plot
    if args.kind == "timeline":
        return plot.timeline(args.trace, stages=args.stages, start_s=args.start, end_s=args.end,
                             unit=args.unit, title=args.title)
    df = _table(args)
    if args.kind == "scatter":
        return plot.scatter(df, args.x, args.y, color=args.color, title=args.title,
                            show_infeasible=not args.omit_infeasible, logx=args.logx,
                            logy=args.logy)
    if args.kind == "pareto":
        return plot.pareto(df, args.x, args.y, maximize_x=args.maximize_x,
                           maximize_y=args.maximize_y, mark=args.mark, mark_labels=args.mark_label,
                           title=args.title, show_infeasible=not args.omit_infeasible,
                           logx=args.logx, logy=args.logy)
    return plot.routing_bars(df, args.by, args.metric, group=args.group, err=args.err,
                             title=args.title)


def run(args) -> int:
    from sim.plot.style import check_out_path, save_figure
    check_out_path(args.out)  # fail before reading any input
    path = save_figure(make_figure(args), args.out)
    print(f"wrote {path}")
    return 0
