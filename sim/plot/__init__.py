"""Figures from result tables and traces (matplotlib, no display needed).

Each function takes a DataFrame (or a trace) and column names, draws onto `ax` if given, and
returns the Figure; `save_figure(fig, "out.png" | "out.svg")` writes it reproducibly.
"""

from sim.plot.frontier import pareto_front
from sim.plot.labels import column_label
from sim.plot.pareto import pareto
from sim.plot.routing_bars import bar_stats, routing_bars
from sim.plot.scatter import scatter
from sim.plot.style import save_figure
from sim.plot.table import filter_rows, read_table
from sim.plot.timeline import timeline
from sim.plot.trace_io import read_trace

__all__ = ["bar_stats", "column_label", "filter_rows", "pareto", "pareto_front", "read_table",
           "read_trace", "routing_bars", "save_figure", "scatter", "timeline"]
