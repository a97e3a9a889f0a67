"""Axis labels with units, derived from result-table column names.

A small table of known names first, then the unit suffix of the name (``_s`` -> s, ``_gib`` -> GiB,
``_b`` -> billions ...). Fraction columns (mfu, hfu, bubble_fraction ...) are plotted unchanged and
shown as percentages by the axis formatter.
"""

from __future__ import annotations

from matplotlib.ticker import PercentFormatter

# column name -> (words, unit or "")
KNOWN = {
    "step_time_s": ("step time", "s"),
    "tokens_per_s": ("throughput", "tokens/s"),
    "tokens_per_s_per_device": ("throughput per device", "tokens/s"),
    "model_tflops_per_device": ("model FLOPs per device", "TFLOP/s"),
    "mfu": ("MFU", "%"),
    "hfu": ("HFU", "%"),
    "bubble_fraction": ("pipeline bubble", "%"),
    "drop_rate": ("dropped tokens", "%"),
    "imbalance_score": ("imbalance score", ""),
    "max_over_mean_device_load": ("max/mean device load", ""),
    "peak_memory_gib": ("peak memory", "GiB"),
    "memory_limit_gib": ("memory limit", "GiB"),
    "memory_shortfall_gib": ("memory shortfall", "GiB"),
    "total_params_b": ("total parameters", "billions"),
    "active_params_b": ("active parameters", "billions"),
    "model.hidden_size": ("hidden size", ""),
    "model.num_layers": ("layers", ""),
    "model.moe.num_experts": ("routed experts", ""),
    "model.moe.top_k": ("experts per token (top-k)", ""),
    "model.moe.router": ("router", ""),
    "parallel.devices": ("devices", ""),
    "parallel.tp": ("TP", ""),
    "parallel.pp": ("PP", ""),
    "parallel.vpp": ("VPP", ""),
    "parallel.ep": ("EP", ""),
    "parallel.cp": ("CP", ""),
    "parallel.expert_tp": ("expert TP", ""),
    "parallel.micro_batch_size": ("micro-batch size", "sequences"),
    "parallel.global_batch_size": ("global batch size", "sequences"),
    "workload.seq_len": ("sequence length", "tokens"),
    "routing.a2a": ("all-to-all algorithm", ""),
}
# communication kinds in exposed_comm_s.<kind>
COMM_KINDS = {"tp": "TP", "cp": "CP", "ep_a2a": "EP all-to-all", "pp_p2p": "PP p2p", "dp": "DP"}
# name suffix -> unit, longest first
SUFFIXES = (
    ("_per_s", "/s"), ("_tflops", "TFLOP/s"), ("_GBps", "GB/s"), ("_gbps", "Gb/s"),
    ("_gib", "GiB"), ("_gb", "GB"), ("_ms", "ms"), ("_us", "µs"), ("_ns", "ns"), ("_s", "s"),
    ("_b", "billions"), ("_fraction", "%"),
)
PERCENT_OF_FRACTION = "%"  # unit marker: stored as a fraction 0..1, shown as a percentage


def _split_unit(word: str) -> tuple[str, str]:
    for suffix, unit in SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return word[: -len(suffix)], unit
    return word, ""


def column_words_unit(col: str) -> tuple[str, str]:
    """(words, unit) for a column name; unit is '' when none is known."""
    if col in KNOWN:
        return KNOWN[col]
    parts = col.split(".")
    if len(parts) == 2 and parts[0] == "exposed_comm_s":
        return f"exposed {COMM_KINDS.get(parts[1], parts[1])} comm", "s"
    unit = ""
    words = []
    for part in parts:
        stem, u = _split_unit(part)
        unit = unit or u
        words.append(stem.replace("_", " "))
    if parts[0] in ("model", "parallel", "workload", "routing") and len(words) > 1:
        words = words[1:]  # the namespace adds nothing to a label
    return " ".join(words), unit


def column_label(col: str) -> str:
    """Axis label with unit, e.g. 'step time (s)', 'MFU (%)', 'hidden size'."""
    words, unit = column_words_unit(col)
    return f"{words} ({unit})" if unit else words


def is_fraction(col: str) -> bool:
    """True when the column holds a 0..1 fraction that axes show as a percentage."""
    return column_words_unit(col)[1] == PERCENT_OF_FRACTION


def format_axis(axis, col: str) -> None:
    """Percent ticks for fraction columns (axis: ax.xaxis, ax.yaxis or a colorbar's axis)."""
    if is_fraction(col):
        axis.set_major_formatter(PercentFormatter(xmax=1.0))


def short_name(col: str) -> str:
    """The last dotted component: 'model.moe.top_k' -> 'top_k' (for compact annotations)."""
    return col.rsplit(".", 1)[-1]
