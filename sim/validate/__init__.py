"""Validation harness: simulate published large-scale training runs, compare with their figures."""

from sim.validate.conventions import (
    CONVENTIONS,
    achieved_tflops,
    megatron_2104_flops_per_step,
    megatron_core_flops_per_token,
    palm_flops_per_token,
)
from sim.validate.load import entry_runspec, load_entries, validation_dir
from sim.validate.runner import (
    JSON_KEYS,
    TOLERANCE_PCT,
    Result,
    median_abs_error,
    run_entries,
    run_entry,
    within_tolerance,
)
from sim.validate.schema import ValidationEntry, ValidationFile

__all__ = [
    "CONVENTIONS",
    "JSON_KEYS",
    "TOLERANCE_PCT",
    "Result",
    "ValidationEntry",
    "ValidationFile",
    "achieved_tflops",
    "entry_runspec",
    "load_entries",
    "median_abs_error",
    "megatron_2104_flops_per_step",
    "megatron_core_flops_per_token",
    "palm_flops_per_token",
    "run_entries",
    "run_entry",
    "validation_dir",
    "within_tolerance",
]
