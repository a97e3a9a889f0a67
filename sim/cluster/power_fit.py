"""Fit the power-capped clock model (sim.cluster.power) to kernel_sweep.py's power and duty measurements,
and check it on the patterns the fit did not use.

Fit (each parameter from its own rows; nothing is fitted to a training run):
- idle_w, gemm_w: a least-squares line of board power against the GEMM's time fraction over the large-GEMM /
  idle patterns that ran at full clock (SM clock >= 1,900 MHz);
- memory_w: (power - idle) / time fraction of the copy / idle patterns at full clock;
- attention_w: the same for the fused-attention / idle patterns;
- clock_exponent: from the back-to-back large GEMM alone: it draws the cap at clock scale s = (its rate) /
  (its full-clock rate), so s^a = (cap - idle) / gemm_w.
Every other throttled pattern (GEMM with idle or copy gaps at other duty cycles, attention and a mid-size GEMM
back to back) is a held-out check: predicted s against measured rate / full-clock rate.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass

from sim.cluster.power import throttle
from sim.config.hardware import PowerSpec

FULL_CLOCK_MHZ = 1900.0
TENSOR_OPS = {"gemm8192": "gemm", "gemm4096x3072x4096": "gemm", "attention_fb": "attention"}


@dataclass(frozen=True)
class Pattern:
    on_op: str
    off_op: str
    on_ms: float
    off_ms: float
    efficiency: float     # rate inside the on-phases, as a fraction of the datasheet peak (or bandwidth)
    on_fraction: float
    clock_mhz: float
    power_w: float


def read_patterns(power_csv: str, duty_csv: str | None = None) -> list[Pattern]:
    out = []
    with open(power_csv, newline="") as f:
        for r in csv.DictReader(f):
            out.append(Pattern(r["on_op"], r["off_op"], float(r["on_ms"]), float(r["off_ms"]),
                               float(r["efficiency_in_on_phase"]), float(r["on_fraction"]),
                               float(r["sm_clock_mhz"]), float(r["power_w"])))
    if duty_csv:
        with open(duty_csv, newline="") as f:
            for r in csv.DictReader(f):
                out.append(Pattern("gemm8192", "sleep", float(r["on_ms"]), float(r["off_ms"]),
                                   float(r["efficiency_in_burst"]), float(r["gemm_duty"]),
                                   float(r["sm_clock_mhz"]), float(r["power_w"])))
    return out


def _full(p: Pattern) -> bool:
    return p.clock_mhz >= FULL_CLOCK_MHZ


def full_clock_efficiency(patterns: list[Pattern]) -> dict[str, float]:
    """Median in-phase efficiency of each kernel over the patterns that ran at full clock."""
    acc: dict[str, list[float]] = {}
    for p in patterns:
        if _full(p):
            acc.setdefault(p.on_op, []).append(p.efficiency)
    return {k: statistics.median(v) for k, v in acc.items()}


def fit_power(patterns: list[Pattern], cap_w: float) -> PowerSpec:
    pts = [(p.on_fraction, p.power_w) for p in patterns
           if p.on_op == "gemm8192" and p.off_op == "sleep" and _full(p) and p.on_fraction < 0.99]
    if len(pts) < 2:
        raise ValueError("need at least two full-clock GEMM / idle patterns")
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    idle = my - slope * mx

    def added(op: str) -> float:
        v = [(p.power_w - idle) / p.on_fraction for p in patterns if p.on_op == op and p.off_op == "sleep" and _full(p)]
        if not v:
            raise ValueError(f"no full-clock {op} / idle pattern")
        return statistics.median(v)
    full = full_clock_efficiency(patterns)
    cont = [p for p in patterns if p.on_op == "gemm8192" and p.off_op == "sleep" and p.on_fraction >= 0.99]
    s = statistics.median(p.efficiency for p in cont) / full["gemm8192"]
    alpha = math.log((cap_w - idle) / slope) / math.log(s)
    return PowerSpec(idle_w=idle, gemm_w=slope, attention_w=added("attention_fb"), memory_w=added("copy"),
                     clock_exponent=alpha)


def held_out(patterns: list[Pattern], spec: PowerSpec, cap_w: float) -> list[tuple[Pattern, float, float]]:
    """(pattern, predicted clock scale, measured rate / full-clock rate) for every throttled tensor-core
    pattern except the continuous large GEMM the exponent came from."""
    full = full_clock_efficiency(patterns)
    out = []
    for p in patterns:
        kind = TENSOR_OPS.get(p.on_op)
        if kind is None or _full(p) or p.on_op not in full:
            continue
        if p.on_op == "gemm8192" and p.off_op == "sleep" and p.on_fraction >= 0.99:
            continue
        f_on, f_off = p.on_fraction, 1.0 - p.on_fraction
        f_mem = f_off if p.off_op == "copy" else 0.0
        pred = throttle(spec, cap_w, f_on if kind == "gemm" else 0.0, f_on if kind == "attention" else 0.0, f_mem)
        out.append((p, pred, p.efficiency / full[p.on_op]))
    return out
