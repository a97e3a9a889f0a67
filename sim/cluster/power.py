"""Power-capped clocks: how much a device's tensor-core work slows when its board power would exceed the cap.

A GPU at its power limit lowers its SM clock until the power it draws fits. On an H100 SXM at 700 W an
8192^3 BF16 GEMM runs at 1,980 MHz (0.784 of dense peak) when it keeps the tensor cores busy half the time,
and at ~1,340 MHz (0.68) when it runs back to back (hw_profiles/measurements/h100-sxm-2026-11-22/). A training
step sits in between: its GEMMs alternate with memory-bound kernels and communication waits. The profiles'
GEMM and attention curves are full-clock curves; this module gives the clock scale a step's mix allows.

Model (every parameter measured; see benchmarks/gpu/kernel_sweep.py's power and duty sections):
board power = idle + f_gemm * gemm_w * s^a + f_attn * attention_w * s^a + f_other * memory_w, where f_* are
the fractions of the busy time each kind of kernel runs (at the throttled clock), s the clock scale (1 at the
full boost clock) and a the exponent of dynamic power in the clock (voltage falls with the clock). The device
runs at the largest s <= 1 whose power fits the cap; tensor-core work then takes 1/s as long, memory-bound
work is taken as clock-insensitive (HBM-bound).
"""

from __future__ import annotations

from sim.config.hardware import PowerSpec


def power_w(spec: PowerSpec, s: float, f_gemm: float, f_attn: float, f_other: float) -> float:
    """Board power (W) at clock scale s with the given time fractions (at that clock)."""
    dyn = s ** spec.clock_exponent
    return spec.idle_w + (f_gemm * spec.gemm_w + f_attn * spec.attention_w) * dyn + f_other * spec.memory_w


def throttle(spec: PowerSpec, cap_w: float, f_gemm: float, f_attn: float, f_other: float) -> float:
    """Clock scale s for time fractions observed at the throttled clock (what a measurement sees): the
    clock at which the power of that mix equals the cap, or 1 if it fits at full clock."""
    if power_w(spec, 1.0, f_gemm, f_attn, f_other) <= cap_w:
        return 1.0
    tensor = f_gemm * spec.gemm_w + f_attn * spec.attention_w
    room = cap_w - spec.idle_w - f_other * spec.memory_w
    if room <= 0 or tensor <= 0:
        return 1.0 if tensor <= 0 else 0.05
    return max(0.05, (room / tensor) ** (1.0 / spec.clock_exponent))


def clock_scale(spec: PowerSpec | None, cap_w: float | None, t_gemm: float, t_attn: float, busy: float) -> float:
    """Clock scale of a device whose busy time ``busy`` holds ``t_gemm`` of GEMMs and ``t_attn`` of fused
    attention at the full clock (the rest memory-bound kernels and communication waits, at memory power).

    Throttling stretches the tensor-core time by 1/s, which lowers the other kinds' share; the scale is the
    fixed point, found by bisection (power falls monotonically as s falls)."""
    if spec is None or cap_w is None or busy <= 0 or t_gemm + t_attn <= 0:
        return 1.0
    t_tc = t_gemm + t_attn
    other = max(0.0, busy - t_tc)

    def over(s: float) -> float:
        span = other + t_tc / s
        return power_w(spec, s, t_gemm / s / span, t_attn / s / span, other / span) - cap_w

    if over(1.0) <= 0:
        return 1.0
    lo, hi = 0.05, 1.0
    if over(lo) > 0:
        return lo
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if over(mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo
