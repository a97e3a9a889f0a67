"""`moe-sim validate`: simulate the published runs in validation/, compare with their figures."""

from __future__ import annotations

from sim.cli.output import add_format_arg, emit, format_rows
from sim.validate import (
    TOLERANCE_PCT,
    load_entries,
    median_abs_error,
    run_entries,
    within_tolerance,
)


def add_parser(sub):
    p = sub.add_parser(
        "validate",
        help="compare simulated step times/TFLOPS with published training runs",
        description="Simulate every published large-scale training run in validation/*.yaml "
        "with the stock presets and hardware profiles (one profile per device type, no "
        "per-run tuning) and print predicted vs published with the signed error, "
        "(predicted - published) / published. Layouts that do not fit in memory are still "
        "simulated and flagged.",
    )
    p.add_argument(
        "--only", metavar="NAME", help="one entry by name, or a shell pattern such as 'qwen3-*'"
    )
    p.add_argument(
        "--plot", metavar="FILE", help="write a predicted-vs-published figure (PNG, PDF or SVG)"
    )
    p.add_argument(
        "--dir", metavar="DIR", help="folder of validation YAML files (default: validation/)"
    )
    p.add_argument("--executor", choices=["des", "analytic"], default="des")
    add_format_arg(p)
    return p


def _fmt(v: float) -> str:
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"


def table(results) -> str:
    rows = [
        {
            "name": r.name,
            "metric": r.metric,
            "published": _fmt(r.published),
            "predicted": _fmt(r.predicted),
            "error_%": f"{r.error_pct:+.1f}",
            "fits": "yes" if r.fits else "NO",
        }
        for r in results
    ]
    lines = [format_rows(rows)]
    parts = [(r.name, b) for r in results for b in r.breakdown if b.predicted is not None]
    if parts:
        lines += ["", "breakdown (published per-phase figures vs the report key of the same name):"]
        lines += [
            f"  {name}  {b.key}: published {_fmt(b.published)}, predicted {_fmt(b.predicted)} "
            f"({b.error_pct:+.1f}%)"
            for name, b in parts
        ]
    n_in = sum(within_tolerance(r) for r in results)
    lines += [
        "",
        f"median |error| {median_abs_error(results):.1f}% over {len(results)} "
        f"{'entry' if len(results) == 1 else 'entries'}; "
        f"{n_in} of {len(results)} within \u00b1{TOLERANCE_PCT:.0f}%",
    ]
    if not all(r.fits for r in results):
        lines.append(
            "fits NO: the layout exceeds device memory in our model; it was simulated anyway"
        )
    return "\n".join(lines)


def run(args) -> int:
    entries = load_entries(args.dir, args.only)
    results = run_entries(entries, executor=args.executor)
    if args.format == "json":
        emit([r.to_json() for r in results], "json")
    else:
        print(table(results))
    if args.plot:
        from sim.validate.plot import plot_results

        plot_results(results, args.plot)
    return 0
