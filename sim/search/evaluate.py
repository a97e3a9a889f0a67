"""Worker side of a sweep: simulate one point (fixed layout, or the best layout a search finds).

Tasks and results are plain dicts so they travel to local processes and Dask workers alike.
Each point is deterministic given its task: the routing seed is part of the run data.
"""

from __future__ import annotations

import os
import time

from pydantic import ValidationError

from sim.config.hardware import HardwareProfile
from sim.config.load import parse
from sim.config.model import ModelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.engine.run import simulate
from sim.engine.spec import make_runspec
from sim.errors import UserError
from sim.search.columns import report_columns
from sim.search.layouts import LayoutOptions, search_layouts
from sim.search.objective import parse_objective
from sim.search.paths import flatten

# Test hook: seconds to sleep before each point, so a test can kill a sweep part-way through.
DELAY_ENV = "MOE_SIM_SWEEP_POINT_DELAY_S"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, UserError) else f"{type(e).__name__}: {text}"


def _fixed(task: dict) -> dict:
    spec = make_runspec(task["run"], "")
    rep = simulate(spec, executor=task["executor"], check_memory=task["check_memory"])
    out = report_columns(rep)
    simulated = rep.step_time_s is not None
    return {"status": "ok" if simulated else "infeasible", **out, "reason": rep.reason}


def _search(task: dict) -> dict:
    run = task["run"]
    model = parse(ModelConfig, run["model"], "model")
    hw = parse(HardwareProfile, run["hardware"], "hardware")
    work = parse(Workload, run["workload"], "workload")
    routing = parse(RoutingConfig, run["routing"], "routing")
    res = search_layouts(model, hw, work, routing, run["parallel"], LayoutOptions(**task["layout"]),
                         parse_objective(task["objective"]), executor=task["executor"])
    counts = {f"layouts_{k}": v for k, v in res.counts().items()}
    best = res.best
    if best is None:
        return {"status": "infeasible", **counts,
                "reason": f"no feasible layout of {res.enumerated}: {res.infeasible_summary()}"}
    par = best.parallel
    out = flatten(par.model_dump(), "parallel")
    out.update(dp=par.dp, num_microbatches=par.num_microbatches, **counts, **best.report)
    return {"status": "ok", **out, "reason": ""}


def evaluate_task(task: dict) -> dict:
    """Result columns of one point: status (ok|infeasible|error), reason, and the report columns
    (plus the chosen layout and search counts in layout-search mode). Never raises."""
    delay = os.environ.get(DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    try:
        return _search(task) if task.get("layout") else _fixed(task)
    except (UserError, ValidationError) as e:
        return {"status": "infeasible", "reason": _one_line(e)}
    except Exception as e:  # a simulator bug must not end the sweep; the row records it
        return {"status": "error", "reason": _one_line(e)}


def evaluate_batch(tasks: list[dict]) -> list[tuple[int, dict]]:
    """[(point index, result columns)] for a batch of tasks, in order."""
    return [(t["index"], evaluate_task(t)) for t in tasks]
