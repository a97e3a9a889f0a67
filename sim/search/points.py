"""Sweep points: expand the axes, apply them to the base run, derive fields, apply the constraints
and give every point a stable id. Everything here is cheap and runs in the driver process; only
points that pass become simulation tasks."""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import dataclass

import numpy as np

from sim.config.hardware import HardwareProfile
from sim.config.load import load_hardware, load_model, parse
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.errors import UserError
from sim.model.params import param_counts
from sim.search.columns import DERIVED
from sim.search.layouts import SEARCHED, ZERO_FIELDS
from sim.search.paths import flatten, get_path, set_path, stable_hash
from sim.search.spec import FitRule, SweepSpec

SECTIONS = {"model": ModelConfig, "hardware": HardwareProfile, "parallel": ParallelConfig,
            "workload": Workload, "routing": RoutingConfig}


@dataclass
class Point:
    index: int            # position in the sweep (the final table is sorted by it)
    point_id: str         # hash of the resolved inputs
    inputs: dict          # input and derived columns of the row
    task: dict | None     # what a worker simulates; None when ruled out before simulating
    reason: str = ""      # why it was ruled out

    def infeasible_row(self) -> dict:
        return {"point_index": self.index, "point_id": self.point_id, "status": "infeasible",
                **self.inputs, "reason": self.reason}


@functools.lru_cache(maxsize=64)
def _model_dump(name: str) -> dict:
    return load_model(name).model_dump()


@functools.lru_cache(maxsize=64)
def _hardware_dump(name: str) -> dict:
    return load_hardware(name).model_dump()


def _section(name: str, value, source: str) -> dict:
    """A model or hardware section as a full dict: a preset/profile name is loaded, a mapping checked."""
    if isinstance(value, str):
        return copy.deepcopy(_model_dump(value) if name == "model" else _hardware_dump(value))
    return parse(SECTIONS[name], value, source).model_dump()


def resolve_base(spec: SweepSpec, source: str) -> dict:
    """The base run with every section a full dict (defaults filled in). In layout-search mode
    base.parallel is kept as given: the search fills in the fields it chooses."""
    b = spec.base
    out = {"model": _section("model", b.model, f"{source}: base.model"),
           "hardware": _section("hardware", b.hardware, f"{source}: base.hardware")}
    if spec.layout.mode == "search":
        unknown = sorted(set(b.parallel) - set(ParallelConfig.model_fields))
        if unknown:
            raise UserError(f"{source}: base.parallel.{unknown[0]}: unknown key")
        chosen = sorted(set(b.parallel) & (set(SEARCHED) | (set(ZERO_FIELDS) if spec.layout.zero else set())))
        if chosen:
            pin = "zero" if chosen[0] in ZERO_FIELDS else chosen[0]
            raise UserError(f"{source}: base.parallel.{chosen[0]} is chosen by the layout search; "
                            f"remove it or pin it with layout.{pin}: [value]")
        for need in ("devices", "global_batch_size"):
            if not isinstance(b.parallel.get(need), int):
                raise UserError(f"{source}: base.parallel.{need}: required (an integer) for the layout search")
        out["parallel"] = dict(b.parallel)
    else:
        out["parallel"] = parse(ParallelConfig, b.parallel, f"{source}: base.parallel").model_dump()
    out["workload"] = parse(Workload, b.workload, f"{source}: base.workload").model_dump()
    out["routing"] = parse(RoutingConfig, b.routing, f"{source}: base.routing").model_dump()
    return out


def _check_path(spec: SweepSpec, base: dict, path: str, what: str, source: str) -> None:
    top = path.split(".", 1)[0]
    if top not in SECTIONS:
        raise UserError(f"{source}: {what} '{path}': must start with one of {', '.join(SECTIONS)}")
    whole = any(p == top for g in spec.axes for p in g.paths)
    if path == top:
        if top not in ("model", "hardware"):
            raise UserError(f"{source}: {what} '{path}': give fields ({top}.FIELD), not the whole section")
        return
    if top == "parallel" and spec.layout.mode == "search":
        key = path.split(".", 1)[1]
        if key in SEARCHED:
            raise UserError(f"{source}: {what} '{path}' is chosen by the layout search; list its values in layout.{key}")
        if key not in ParallelConfig.model_fields:
            raise UserError(f"{source}: {what} '{path}': unknown field (parallel has no key '{key}')")
        return
    if whole:
        return   # the section itself varies; nested fields are checked per point
    try:
        get_path(base, path)
    except KeyError as e:
        raise UserError(f"{source}: {what} '{path}': unknown field ({e.args[0]})") from None


def check_spec(spec: SweepSpec, base: dict, source: str) -> None:
    """Cross-checks that need the resolved base: every axis, derive and constraint names a real field,
    and every model preset or hardware profile an axis names exists."""
    for g in spec.axes:
        for p in g.paths:
            _check_path(spec, base, p, "axis", source)
            if p in ("model", "hardware"):
                for v in g.candidates(p):
                    try:
                        _section(p, v, f"{source}: axis {p}")
                    except UserError as e:
                        msg = str(e)
                        raise UserError(msg if msg.startswith(source) else f"{source}: axis {p}: {msg}") from None
    for r in spec.derive:
        for f in r.fields:
            _check_path(spec, base, f, "derive field", source)
    cols = set(DERIVED) | set(_inputs(spec, base, "")) | {p for g in spec.axes for p in g.paths}
    cols |= {f for r in spec.derive for f in r.fields}
    for c in spec.constraints:
        if c not in cols:
            raise UserError(f"{source}: constraints.{c}: not an input or derived column (constraints apply before "
                            f"simulating; derived columns: {', '.join(DERIVED)}; filter report columns afterwards)")
        if spec.layout.mode == "search" and c in ("dp", "num_microbatches"):
            raise UserError(f"{source}: constraints.{c}: the layout search chooses it; constrain it through layout options")


def assignments(spec: SweepSpec) -> list[dict]:
    """Every point's {path: value}, in sweep order (the first group outermost)."""
    rng = np.random.default_rng(spec.seed)
    groups = [g.points(rng) for g in spec.axes]
    return [dict(itertools.chain.from_iterable(d.items() for d in combo)) for combo in itertools.product(*groups)]


def fit_width(model: dict, rule: FitRule) -> int:
    """The multiple of rule.multiple_of that puts the parameter count nearest the target."""
    m = rule.multiple_of

    def count(v: int) -> float:
        d = copy.deepcopy(model)
        for f in rule.fields:
            set_path(d, f.split(".", 1)[1], v)
        pc = param_counts(parse(ModelConfig, d, "model"))
        return (pc.total if rule.fit == "total_params_b" else pc.active) / 1e9

    p1, p2 = count(m), count(2 * m)
    slope = p2 - p1
    if slope <= 0:
        raise UserError(f"derive {rule.fit}: {', '.join(rule.fields)} do not change it")
    k = max(1, round((rule.target - p1) / slope) + 1)
    cands = [j for j in (k - 1, k, k + 1) if j >= 1]
    return m * min(cands, key=lambda j: (abs(count(j * m) - rule.target), j))


def _inputs(spec: SweepSpec, data: dict, preset: str) -> dict:
    """Input columns of a row: model (flattened, without its source note), hardware name and any
    hardware field an axis touches, parallel (without what the search picks), workload, routing."""
    row = {"model_preset": preset}
    flatten(data["model"], "model", row, skip=frozenset({"model.source"}))
    row["hardware.name"] = data["hardware"].get("name")
    for p in sorted({p for g in spec.axes for p in g.paths if p.startswith("hardware.")}):
        flatten({p: get_path(data, p, None)}, "", row)
    par = data["parallel"]
    if spec.layout.mode == "search":
        par = {k: v for k, v in par.items() if k not in SEARCHED}
    flatten(par, "parallel", row)
    flatten(data["workload"], "workload", row)
    flatten(data["routing"], "routing", row)
    return row


def _resolve(spec: SweepSpec, base: dict, base_preset: str, assign: dict) -> tuple[dict, str, str]:
    """(run data, model preset name, reason it is invalid or '') for one assignment."""
    data = copy.deepcopy(base)
    preset = base_preset
    reason = ""
    for path in sorted(assign, key=lambda p: p.count(".")):
        v = assign[path]
        if path in ("model", "hardware"):
            data[path] = _section(path, v, f"axis {path}")
            if path == "model":
                preset = v if isinstance(v, str) else ""
            continue
        try:
            set_path(data, path, v)
        except KeyError as e:
            reason = reason or f"axis {path}: {e.args[0]}"
    for rule in spec.derive:
        if reason:
            break
        try:
            w = fit_width(data["model"], rule)
            for f in rule.fields:
                set_path(data, f, w)
        except (UserError, KeyError) as e:
            reason = f"derive {rule.fit}: {e.args[0] if isinstance(e, KeyError) else e}"
    return data, preset, reason


def build_points(spec: SweepSpec, source: str) -> tuple[list[Point], int]:
    """(points in sweep order with duplicates removed, number of duplicates removed)."""
    base = resolve_base(spec, source)
    check_spec(spec, base, source)
    base_preset = spec.base.model if isinstance(spec.base.model, str) else ""
    search = spec.layout.mode == "search"
    common = {"executor": spec.executor, "check_memory": spec.check_memory,
              "layout": spec.layout.options().model_dump(mode="json") if search else None,
              "objective": spec.objective if search else None}
    points: list[Point] = []
    seen: set[str] = set()
    dup = 0
    for assign in assignments(spec) or [{}]:
        data, preset, reason = _resolve(spec, base, base_preset, assign)
        pid = stable_hash({"run": data, **common})
        if pid in seen:
            dup += 1
            continue
        seen.add(pid)
        inputs = _inputs(spec, data, preset)
        if not reason:
            try:
                pc = param_counts(parse(ModelConfig, data["model"], "model"))
                inputs["total_params_b"] = pc.total / 1e9
                inputs["active_params_b"] = pc.active / 1e9
            except UserError as e:
                reason = str(e)
        if not reason and not search:
            try:
                par = parse(ParallelConfig, data["parallel"], "parallel")
                inputs["dp"] = par.dp
                inputs["num_microbatches"] = par.num_microbatches
            except UserError as e:
                reason = str(e)
        if not reason:
            reason = _constraint_reason(spec, inputs)
        idx = len(points)
        task = None if reason else {"index": idx, "run": data, **common}
        points.append(Point(idx, pid, inputs, task, reason))
    return points, dup


def _constraint_reason(spec: SweepSpec, inputs: dict) -> str:
    for col, (lo, hi) in spec.constraints.items():
        v = inputs.get(col)
        if not isinstance(v, int | float) or isinstance(v, bool):
            return f"constraint {col}: no numeric value ({v!r})"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            return f"constraint {col} = {v:.6g} outside [{lo_s}, {hi_s}]"
    return ""
