"""RunSpec: one simulated run = a model, a layout, a workload, a cluster and a routing behaviour."""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.config.base import StrictModel
from sim.config.compat import compat_errors
from sim.config.hardware import HardwareProfile
from sim.config.load import load_hardware, load_model, parse, read_yaml
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload


class RunSpec(StrictModel):
    """Everything one simulated training step needs."""

    model: ModelConfig
    parallel: ParallelConfig
    workload: Workload = Field(default_factory=Workload)
    hardware: HardwareProfile
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    @model_validator(mode="after")
    def _compat(self) -> RunSpec:
        errs = compat_errors(self.model, self.parallel, self.workload, self.hardware)
        if errs:
            raise ValueError("; ".join(errs))
        return self


def resolve_refs(data: dict) -> dict:
    """Replace `model: NAME_OR_YAML` and `hardware: NAME_OR_YAML` strings by their configs."""
    out = dict(data)
    if isinstance(out.get("model"), str):
        out["model"] = load_model(out["model"]).model_dump()
    if isinstance(out.get("hardware"), str):
        out["hardware"] = load_hardware(out["hardware"]).model_dump()
    return out


def load_runspec(path: str) -> RunSpec:
    data = read_yaml(path)
    return parse(RunSpec, resolve_refs(data), f"run spec {path}")


def make_runspec(data: dict, source: str = "run") -> RunSpec:
    return parse(RunSpec, resolve_refs(data), source)
