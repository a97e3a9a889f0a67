"""SweepSpec: the YAML that describes a sweep.

```yaml
base: {model: mixtral-8x7b, hardware: h100-sxm, parallel: {devices: 64, global_batch_size: 256}}
axes:                                # one mapping = one grid; or a list of groups, multiplied in order
  - grid: {model.num_layers: [16, 32], routing.a2a: [flat, hierarchical]}
  - zip: {model.hidden_size: [4096, 6144], model.num_attention_heads: [32, 48]}
  - random: {samples: 8, fields: {routing.skew: {min: 0.3, max: 30, log: true}}}
derive: [{fit: total_params_b, target: 47, fields: [model.moe.expert_ffn_hidden_size], multiple_of: 128}]
constraints: {total_params_b: [40, 55]}   # [min, max] on input or derived columns, before simulating
objective: max tokens_per_s
layout: fixed                             # or {mode: search, tp: [2, 4], top: 3}
executor: analytic
seed: 0
```
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from sim.config.base import StrictModel
from sim.config.load import parse, read_yaml
from sim.search.layouts import LayoutOptions
from sim.search.objective import parse_objective
from sim.search.paths import stable_hash


class Range(StrictModel):
    """Numbers from min to max: a grid (every ``step``, both ends included) or, in a random group,
    uniform draws (log-uniform with ``log``; integers when min and max are integers and no step)."""

    min: int | float = Field(description="Smallest value (unit: the field's)")
    max: int | float = Field(description="Largest value (unit: the field's)")
    step: int | float | None = Field(None, description="Grid spacing; required in grid and zip groups (unit: the field's)", gt=0)
    log: bool = Field(False, description="Draw log-uniformly (random groups only) (unit: none)")

    @model_validator(mode="after")
    def _check(self) -> Range:
        if self.max < self.min:
            raise ValueError(f"range max ({self.max}) must be >= min ({self.min})")
        if self.log and self.min <= 0:
            raise ValueError(f"range with log needs min > 0 (got {self.min})")
        if self.log and self.step is not None:
            raise ValueError("range takes step or log, not both")
        return self

    @property
    def integral(self) -> bool:
        return all(isinstance(v, int) for v in (self.min, self.max, self.step if self.step is not None else 1))

    def values(self) -> list:
        if self.step is None:
            raise ValueError("range needs a step in grid and zip groups (or give a list)")
        n = int(math.floor((self.max - self.min) / self.step + 1e-9)) + 1
        if self.integral:
            return [int(self.min + i * self.step) for i in range(n)]
        return [round(self.min + i * self.step, 12) for i in range(n)]

    def sample(self, rng: np.random.Generator) -> Any:
        if self.step is not None:
            vals = self.values()
            return vals[int(rng.integers(len(vals)))]
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.min), math.log(self.max))))
        if self.integral:
            return int(rng.integers(self.min, self.max + 1))
        return float(rng.uniform(self.min, self.max))


AxisValues = list[Any] | Range


def _values(path: str, v: AxisValues) -> list:
    if isinstance(v, Range):
        return v.values()
    if not v:
        raise ValueError(f"axis {path}: needs at least one value")
    return list(v)


class RandomGroup(StrictModel):
    samples: int = Field(description="Points drawn (unit: count)", gt=0)
    fields: dict[str, AxisValues] = Field(description="Field -> list (drawn uniformly) or range (unit: none)", min_length=1)


class AxisGroup(StrictModel):
    """One group of axes: exactly one of grid (cartesian product), zip (lists walked together) or random."""

    grid: dict[str, AxisValues] | None = Field(None, description="Every combination of the fields' values", min_length=1)
    zip: dict[str, AxisValues] | None = Field(None, description="The i-th values of all fields together", min_length=1)
    random: RandomGroup | None = Field(None, description="Seeded random samples")

    @model_validator(mode="after")
    def _check(self) -> AxisGroup:
        given = [k for k in ("grid", "zip", "random") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an axis group needs exactly one of grid, zip, random (got {', '.join(given) or 'none'})")
        if self.grid:
            for k, v in self.grid.items():
                _values(k, v)
        if self.zip:
            lens = {k: len(_values(k, v)) for k, v in self.zip.items()}
            if len(set(lens.values())) > 1:
                raise ValueError("zip lists must have equal lengths (" + ", ".join(f"{k}: {n}" for k, n in lens.items()) + ")")
        return self

    @property
    def paths(self) -> list[str]:
        if self.random is not None:
            return list(self.random.fields)
        return list(self.grid or self.zip)

    def candidates(self, path: str) -> list:
        """The values ``path`` can take in this group (a random range without step gives none)."""
        src = self.random.fields if self.random is not None else (self.grid or self.zip)
        v = src[path]
        if isinstance(v, Range):
            return v.values() if v.step is not None else []
        return list(v)

    def points(self, rng: np.random.Generator) -> list[dict]:
        """Assignments {path: value}, in order (first field outermost in a grid)."""
        if self.grid is not None:
            keys = list(self.grid)
            combos: list[dict] = [{}]
            for k in keys:
                combos = [{**c, k: v} for c in combos for v in _values(k, self.grid[k])]
            return combos
        if self.zip is not None:
            cols = {k: _values(k, v) for k, v in self.zip.items()}
            n = len(next(iter(cols.values())))
            return [{k: cols[k][i] for k in cols} for i in range(n)]
        out = []
        for _ in range(self.random.samples):
            pt = {}
            for k, v in self.random.fields.items():
                pt[k] = v.sample(rng) if isinstance(v, Range) else _values(k, v)[int(rng.integers(len(v)))]
            out.append(pt)
        return out


class FitRule(StrictModel):
    """Set width fields (all to one value, a multiple of ``multiple_of``) so that the model's total or
    active parameters land nearest ``target``; parameters grow linearly with FFN widths."""

    fit: Literal["total_params_b", "active_params_b"] = Field(description="Which parameter count to hit (unit: none)")
    target: float = Field(description="Target parameter count (unit: billions of parameters)", gt=0)
    fields: list[str] = Field(description="model.* width fields set together, e.g. model.moe.expert_ffn_hidden_size (unit: none)", min_length=1)
    multiple_of: int = Field(1, description="The width is a multiple of this (hardware-friendly GEMM shapes) (unit: dims)", gt=0)

    @field_validator("fields")
    @classmethod
    def _model_fields(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not f.startswith("model.")]
        if bad:
            raise ValueError(f"derive fields must be model.* widths (got {', '.join(bad)})")
        return v


class BaseRun(StrictModel):
    """A run spec, as ``moe-sim run`` takes it (parallel may leave out what a layout search picks)."""

    model: str | dict[str, Any] = Field(description="Model preset name, YAML path or a model mapping (unit: none)")
    hardware: str | dict[str, Any] = Field(description="Hardware profile name, YAML path or a mapping (unit: none)")
    parallel: dict[str, Any] = Field(default_factory=dict, description="ParallelConfig fields (unit: none)")
    workload: dict[str, Any] = Field(default_factory=dict, description="Workload fields (unit: none)")
    routing: dict[str, Any] = Field(default_factory=dict, description="RoutingConfig fields (unit: none)")


class LayoutSpec(LayoutOptions):
    """fixed: every point uses base.parallel; search: every point gets its own best layout."""

    mode: Literal["fixed", "search"] = Field("fixed", description="fixed or search (unit: none)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"mode": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _fixed_has_no_options(self) -> LayoutSpec:
        extra = sorted(self.model_fields_set - {"mode"})
        if self.mode == "fixed" and extra:
            raise ValueError(f"{', '.join(extra)}: only with mode search")
        return self

    def options(self) -> LayoutOptions:
        return LayoutOptions(**self.model_dump(exclude={"mode"}))


class SweepSpec(StrictModel):
    """A sweep: a base run, axes over its fields, derived fields, constraints, an objective."""

    name: str = Field("", description="Sweep name (unit: none)")
    description: str = Field("", description="What the sweep asks (unit: none)")
    base: BaseRun = Field(description="The run every point starts from (unit: none)")
    axes: list[AxisGroup] = Field(default_factory=list, description="Axis groups, multiplied in order (unit: none)")
    derive: list[FitRule] = Field(default_factory=list, description="Fields computed per point, in order (unit: none)")
    constraints: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict, description="column: [min, max] (null = open) on input or derived columns (unit: the column's)")
    objective: str = Field("max tokens_per_s", description="'max COLUMN' or 'min COLUMN' over report columns (unit: none)")
    layout: LayoutSpec = Field(default_factory=LayoutSpec, description="fixed or search (unit: none)")
    executor: Literal["analytic", "des"] = Field("analytic", description="Simulator for each point (unit: none)")
    seed: int = Field(0, description="Seed of the random axis groups (unit: none)", ge=0)
    check_memory: bool = Field(True, description="Skip simulating points that do not fit device memory (unit: none)")

    @field_validator("axes", mode="before")
    @classmethod
    def _mapping_is_one_grid(cls, v: Any) -> Any:
        return [{"grid": v}] if isinstance(v, dict) else v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        parse_objective(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        seen: set[str] = set()
        for g in self.axes:
            for p in g.paths:
                if p in seen:
                    raise ValueError(f"axes: '{p}' appears in more than one group")
                seen.add(p)
        for col, (lo, hi) in self.constraints.items():
            if lo is not None and hi is not None and hi < lo:
                raise ValueError(f"constraints.{col}: max ({hi}) < min ({lo})")
        derived = {f for r in self.derive for f in r.fields}
        both = sorted(derived & seen)
        if both:
            raise ValueError(f"{', '.join(both)}: set by both an axis and derive")
        return self

    def spec_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


def load_sweep_spec(path: str) -> SweepSpec:
    return parse(SweepSpec, read_yaml(path), f"sweep spec {path}")
