"""Collective bandwidth by message size, and the A100 profile's measured curves.

The a100-80g profile's GEMM points (>= 2 GFLOP) and its intra-node bus-bandwidth curve are copies of one public
measurement (hw_profiles/measurements/azure-nd-a100-v4/); these tests recompute them from the CSVs and check that
the collective cost model reads the curve with nccl-tests' conventions (busbw = algbw x 2(n-1)/n for all-reduce).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sim.cluster.gemm_fit import monotone
from sim.collectives.cost import CommModel
from sim.config.load import load_hardware

DATA = Path(__file__).resolve().parents[1] / "hw_profiles" / "measurements" / "azure-nd-a100-v4"
A100_BF16_PEAK = 312.0       # TFLOPS, NVIDIA A100 datasheet (the profile's peak_tflops.bf16 / fp16)
A100_NVLINK_GBPS = 300.0     # GB/s per direction, NVIDIA A100 datasheet (the profile's intra_node_bandwidth_GBps)
NARROWEST_N = 256            # shapes with fewer output columns are left out of the FLOP-only curve (README)


def _rows(name):
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def test_a100_gemm_points_are_the_measured_shapes():
    hw = load_hardware("a100-80g")
    assert hw.device.peak_tflops.bf16 == A100_BF16_PEAK
    want = monotone([(2.0 * int(r["m"]) * int(r["n"]) * int(r["k"]) / 1e9, float(r["tflops"]) / A100_BF16_PEAK)
                     for r in _rows("gemm.csv") if int(r["n"]) >= NARROWEST_N])
    got = [p for p in hw.device.gemm_efficiency if p[0] >= 2.0]
    assert len(got) == len(want) == 7
    for (gf, eff), (wgf, weff) in zip(got, want, strict=True):
        assert gf == pytest.approx(wgf, rel=1e-3)
        assert eff == pytest.approx(weff, abs=6e-4)      # three decimals in the profile


def test_a100_bus_bandwidth_curve_is_the_measured_sweep():
    hw = load_hardware("a100-80g")
    assert hw.node.intra_node_bandwidth_GBps == A100_NVLINK_GBPS
    want = [(int(r["bytes"]), float(r["busbw_GBps"]) / A100_NVLINK_GBPS) for r in _rows("allreduce.csv")]
    got = hw.collective_efficiency.intra_node_by_size
    assert [b for b, _ in got] == [b for b, _ in want] == [1024 * 2 ** i for i in range(24)]
    for (_, e), (_, w) in zip(got, want, strict=True):
        assert e == pytest.approx(w, rel=1e-6)


def test_monotone_pools_only_the_falling_runs():
    pts = [(1.0, 0.4), (2.0, 0.7), (3.0, 0.6), (4.0, 0.5), (5.0, 0.9)]
    fit = monotone(pts)
    assert [x for x, _ in fit] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [y for _, y in fit] == pytest.approx([0.4, 0.6, 0.6, 0.6, 0.9])
    assert monotone([(1.0, 0.2), (2.0, 0.3)]) == [(1.0, 0.2), (2.0, 0.3)]


def test_eight_gpu_all_reduce_takes_the_measured_time_at_every_measured_size():
    """nccl-tests: busbw = size / time x 2(n-1)/n, so time = size x 2(n-1)/n / busbw."""
    comm = CommModel(load_hardware("a100-80g"))
    node = comm.group(8, 1)
    for r in _rows("allreduce.csv"):
        size, busbw = int(r["bytes"]), float(r["busbw_GBps"]) * 1e9
        measured = size * 2 * 7 / 8 / busbw
        assert comm.time(comm.all_reduce(node, size)) == pytest.approx(measured, rel=1e-6)


def test_bandwidth_rises_with_size_and_reduce_scatter_is_half_an_all_reduce():
    comm = CommModel(load_hardware("a100-80g"))
    node = comm.group(8, 1)
    sizes = [2 ** 20 * k for k in (1, 4, 25, 100, 400, 2000)]
    busbw = [s * 2 * 7 / 8 / comm.time(comm.all_reduce(node, s)) for s in sizes]
    assert all(a < b for a, b in zip(busbw, busbw[1:], strict=False))
    best = max(e for _, e in load_hardware("a100-80g").collective_efficiency.intra_node_by_size)
    for s in sizes:
        c = comm.all_reduce(node, s)
        # the link is held at the best measured rate; the rest of the measured time holds no link
        assert c.intra_bytes == pytest.approx(2 * 7 / 8 * s / best) and c.latency_s > 0
        ar = comm.time(c)
        assert comm.time(comm.reduce_scatter(node, s)) == pytest.approx(ar / 2)
        assert comm.time(comm.all_gather(node, s)) == pytest.approx(ar / 2)


def test_hopper_bus_bandwidth_curve_is_the_mean_of_the_measured_reduce_scatter_and_all_gather():
    path = DATA.parent / "nccl-tests-h100-4gpu" / "busbw.csv"
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["bytes"]) >= 1024]     # below 1 KB the log prints 0.00
    want = [(int(r["bytes"]), (float(r["reduce_scatter_busbw_GBps"]) + float(r["all_gather_busbw_GBps"])) / 2 / 450.0)
            for r in rows]
    for name in ("h100-sxm", "h200"):               # same NVLink4 links and NVSwitch (the h200 profile says so)
        hw = load_hardware(name)
        assert hw.node.intra_node_bandwidth_GBps == 450.0
        got = hw.collective_efficiency.intra_node_by_size
        assert [b for b, _ in got] == [b for b, _ in want]
        for (_, e), (_, w) in zip(got, want, strict=True):
            assert e == pytest.approx(w, rel=1e-6), name


def test_a_profile_without_the_curve_keeps_flat_efficiency_and_per_step_latency():
    hw = load_hardware("h800")
    assert hw.collective_efficiency.intra_node_by_size is None
    comm = CommModel(hw)
    node = comm.group(8, 1)
    size = 64 * 2 ** 20
    c = comm.all_reduce(node, size)
    assert c.latency_s == pytest.approx(14 * hw.node.intra_node_latency_us * 1e-6)
    assert c.intra_bytes == pytest.approx(2 * 7 / 8 * size / hw.collective_efficiency.intra_node)


def test_size_curve_must_increase_in_size():
    from sim.config.hardware import CollectiveEfficiency

    with pytest.raises(ValueError, match="strictly increasing"):
        CollectiveEfficiency(intra_node_by_size=[(2e6, 0.5), (1e6, 0.6)])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        CollectiveEfficiency(intra_node_by_size=[(1e6, 1.2)])
