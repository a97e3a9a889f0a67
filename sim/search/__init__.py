"""Config search: sweep specs, parallel-layout search, resumable result tables, local and Dask executors."""

from sim.search.layouts import LayoutOptions, SearchResult, search_layouts
from sim.search.objective import Objective, parse_objective
from sim.search.spec import SweepSpec, load_sweep_spec
from sim.search.sweep import SweepResult, run_sweep

__all__ = ["LayoutOptions", "Objective", "SearchResult", "SweepResult", "SweepSpec", "load_sweep_spec",
           "parse_objective", "run_sweep", "search_layouts"]
