"""Power-capped clocks (sim.cluster.power): the model recovers the measured H100 throttling on patterns its
fit did not use, the profiles carry the parameters the measurement gives, and the engine applies the scale
to tensor-core work only."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cluster.compute import ComputeModel
from sim.cluster.power import clock_scale, power_w, throttle
from sim.cluster.power_fit import fit_power, full_clock_efficiency, held_out, read_patterns
from sim.config.hardware import PowerSpec
from sim.config.load import load_hardware
from sim.engine.run import power_clock_scale
from sim.engine.step import build_step, device_tensor_time

ROOT = Path(__file__).resolve().parents[1]
MEAS = ROOT / "hw_profiles" / "measurements" / "h100-sxm-2026-11-22"
MEAS_H200 = ROOT / "hw_profiles" / "measurements" / "h200-2026-11-22"
CAP = 700.0
HELD_OUT_TOL = 0.03     # the model's accuracy on patterns the fit did not use (worst today: H100 1.5%, H200 2.7%)


@pytest.fixture(scope="module")
def patterns():
    return read_patterns(str(MEAS / "power.csv"), str(MEAS / "duty.csv"))


@pytest.fixture(scope="module")
def fitted(patterns):
    return fit_power(patterns, CAP)


@pytest.mark.parametrize("folder", [MEAS, MEAS_H200], ids=["h100-sxm", "h200"])
def test_fit_predicts_every_held_out_pattern(folder):
    pats = read_patterns(str(folder / "power.csv"), str(folder / "duty.csv"))
    rows = held_out(pats, fit_power(pats, CAP), CAP)
    kinds = {(p.on_op, p.off_op) for p, _, _ in rows}
    # GEMM with idle and with copy gaps, attention and a mid-size GEMM back to back: nine or ten patterns
    assert len(rows) >= 9 and {("gemm8192", "copy"), ("attention_fb", "sleep"), ("gemm4096x3072x4096", "sleep")} <= kinds
    for p, pred, meas in rows:
        assert abs(pred / meas - 1) < HELD_OUT_TOL, (p, pred, meas)


def test_the_repeat_run_on_a_second_machine_gives_the_same_parameters(fitted):
    again = fit_power(read_patterns(str(MEAS / "power.csv"), str(MEAS / "duty-repeat.csv")), CAP)
    assert again.gemm_w == pytest.approx(fitted.gemm_w, rel=0.03)
    assert again.idle_w == pytest.approx(fitted.idle_w, rel=0.05)
    assert again.clock_exponent == pytest.approx(fitted.clock_exponent, rel=0.03)


@pytest.mark.parametrize("name,folder", [("h100-sxm", MEAS), ("h800", MEAS), ("h200", MEAS_H200)])
def test_profiles_carry_the_measured_parameters(name, folder):
    patterns = read_patterns(str(folder / "power.csv"), str(folder / "duty.csv"))
    fitted = fit_power(patterns, CAP)
    dev = load_hardware(name).device
    assert dev.power_w == CAP
    for key in ("idle_w", "gemm_w", "attention_w", "memory_w"):
        assert getattr(dev.power, key) == pytest.approx(getattr(fitted, key), abs=0.06), key
    assert dev.power.clock_exponent == pytest.approx(fitted.clock_exponent, abs=0.005)
    # the curve's large-GEMM points are the full-clock measurements
    full = full_clock_efficiency(patterns)
    pts = dict(dev.gemm_efficiency)
    assert pts[1099.5] == pytest.approx(full["gemm8192"], abs=0.0005)
    assert pts[103.1] == pytest.approx(full["gemm4096x3072x4096"], abs=0.0005)


def test_throttle_is_one_below_the_cap_and_falls_with_the_tensor_share(fitted):
    assert throttle(fitted, CAP, 0.4, 0.0, 0.0) == 1.0
    s = [throttle(fitted, CAP, f, 0.0, 0.0) for f in (0.7, 0.8, 0.9, 1.0)]
    assert all(a > b for a, b in zip(s, s[1:], strict=False))
    # at the solution the board draws exactly the cap
    assert power_w(fitted, s[-1], 1.0, 0.0, 0.0) == pytest.approx(CAP)


def test_clock_scale_fixed_point_accounts_for_the_stretch(fitted):
    # 0.9 of the busy time in GEMMs at full clock: throttled, the GEMMs take longer and their share rises
    s = clock_scale(fitted, CAP, 0.9, 0.0, 1.0)
    span = 0.1 + 0.9 / s
    assert power_w(fitted, s, 0.9 / s / span, 0.0, 0.1 / span) == pytest.approx(CAP, abs=0.5)
    assert s < throttle(fitted, CAP, 0.9, 0.0, 0.1)       # the stretched share throttles harder
    assert clock_scale(None, CAP, 1.0, 0.0, 1.0) == 1.0     # no power model: full clock
    assert clock_scale(fitted, None, 1.0, 0.0, 1.0) == 1.0


def test_compute_model_slows_tensor_work_only():
    hw = load_hardware("h100-sxm")
    full, slow = ComputeModel(hw), ComputeModel(hw, clock_scale=0.8)
    assert slow.gemm_time(1e12, 1e12) == pytest.approx(full.gemm_time(1e12, 1e12) / 0.8)
    assert slow.attention_time(1e12, 1e12, 4096) == pytest.approx(full.attention_time(1e12, 1e12, 4096) / 0.8)
    assert slow.memory_time(1e9) == full.memory_time(1e9)
    # a memory-bound GEMM (weights streamed, few rows) stays at its memory floor
    assert slow.gemm_time(1e6, 1e6, weight_bytes=1e9) == full.gemm_time(1e6, 1e6, weight_bytes=1e9)


def _spec(hardware: str):
    from sim.validate.load import entry_runspec, load_entries
    e = next(e for e in load_entries() if e.name == "dgxc-llama3.1-70b-2048xh100")
    spec = entry_runspec(e)
    return spec.model_copy(update={"hardware": load_hardware(hardware)})


def test_engine_throttles_a_gemm_bound_dense_run_and_leaves_profiles_without_power_alone():
    spec = _spec("h100-sxm")
    inp = build_step(spec)
    s = power_clock_scale(inp)
    g, a = device_tensor_time(inp)[0]
    assert g > 0 and a > 0
    assert 0.8 < s < 0.95            # a dense 70B step keeps the tensor cores busy >90% of its busy time
    slowed = build_step(spec, clock_scale=s)
    g2, a2 = device_tensor_time(slowed)[0]
    assert g2 == pytest.approx(g / s, rel=1e-6) and a2 == pytest.approx(a / s, rel=1e-6)
    no_power = spec.hardware.model_copy(update={"device": spec.hardware.device.model_copy(update={"power": None})})
    assert power_clock_scale(build_step(spec.model_copy(update={"hardware": no_power}))) == 1.0


def test_power_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        PowerSpec(idle_w=100, gemm_w=0, attention_w=1, memory_w=1, clock_exponent=2)
