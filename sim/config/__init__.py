"""Strict configuration models: model, parallel layout, workload, hardware, routing, run spec."""

from sim.config.compat import compat_errors
from sim.config.hardware import HardwareProfile
from sim.config.load import load_hardware, load_model, preset_names, profile_names
from sim.config.model import MLAConfig, ModelConfig, MoEConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload

__all__ = [
    "HardwareProfile", "MLAConfig", "ModelConfig", "MoEConfig", "ParallelConfig", "RoutingConfig",
    "Workload", "compat_errors", "load_hardware", "load_model", "preset_names", "profile_names",
]
