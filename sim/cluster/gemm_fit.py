"""From measured GEMM throughput to a profile's efficiency curve, and how far a curve is from a measurement.

Input rows are those of benchmarks/gpu/gemm_sweep.py (m, n, k, precision, mode, efficiency, share). The
profile's ``gemm_efficiency`` curve is a function of FLOPs per GEMM only, so fitting it means summarising
the measured efficiencies of all shapes near each grid size: the FLOP-share-weighted median of the shapes
within half a decade of the grid point (shapes that carry more of a step's FLOPs count more). Grid points
no measured shape is near are left out: the curve is only as wide as the measurement.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from sim.cluster.compute import ComputeModel
from sim.config.hardware import HardwareProfile

GRID_GFLOP = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)   # the stock profiles' grid
HALF_DECADE = 0.5


@dataclass(frozen=True)
class Measured:
    """One measured GEMM: shape, precision, mode (burst, sustained, burst_grouped), efficiency of dense peak."""

    m: int
    n: int
    k: int
    precision: str
    mode: str
    efficiency: float
    share: float
    grouped: int = 1

    @property
    def flops(self) -> float:
        """FLOPs of one GEMM (one expert of a grouped row)."""
        return 2.0 * self.m * self.n * self.k


def read_sweep(path: str) -> list[Measured]:
    """Rows of a gemm_sweep.py CSV."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append(Measured(int(r["m"]), int(r["n"]), int(r["k"]), r["precision"], r["mode"],
                                float(r["efficiency"]), float(r["share"]), int(r.get("grouped") or 1)))
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    c = np.cumsum(w)
    return float(v[np.searchsorted(c, 0.5 * c[-1])])


def fit_curve(rows: list[Measured], precision: str = "bf16", mode: str = "burst",
              grid_gflop: tuple[float, ...] = GRID_GFLOP) -> list[tuple[float, float, int]]:
    """(GFLOP, efficiency, shapes used) per grid point with measured shapes within half a decade."""
    sel = [r for r in rows if r.precision == precision and r.mode == mode]
    if not sel:
        return []
    x = np.log10(np.array([r.flops for r in sel]) / 1e9)
    eff = np.array([r.efficiency for r in sel])
    w = np.array([max(r.share, 1e-12) for r in sel])
    out = []
    for g in grid_gflop:
        near = np.abs(x - np.log10(g)) <= HALF_DECADE
        if near.any():
            out.append((g, _weighted_median(eff[near], w[near]), int(near.sum())))
    return out


def sustained_ratio(rows: list[Measured], precision: str = "bf16") -> float | None:
    """Mean sustained / burst efficiency over the shapes measured both ways (None when none are)."""
    burst = {(r.m, r.n, r.k): r.efficiency for r in rows if r.precision == precision and r.mode == "burst"}
    pairs = [r.efficiency / burst[(r.m, r.n, r.k)] for r in rows
             if r.precision == precision and r.mode == "sustained" and burst.get((r.m, r.n, r.k), 0) > 0]
    return float(np.mean(pairs)) if pairs else None


def curve_vs_measured(rows: list[Measured], hw: HardwareProfile, precision: str = "bf16",
                      mode: str = "burst") -> tuple[float, list[tuple[Measured, float]]]:
    """The profile's predicted efficiency for each measured shape, and the FLOP-share-weighted mean of
    predicted / measured (above 1: the profile is optimistic on these shapes).

    FP8 rows are compared with the FP8 rate the cost model uses: curve x fp8_gemm_efficiency_scale, over
    the FP8 peak.
    """
    cm = ComputeModel(hw, "fp8" if precision == "fp8" else "bf16")
    sel = [r for r in rows if r.precision == precision and r.mode == mode and r.efficiency > 0]
    pairs = []
    for r in sel:
        pred = float(cm.efficiency(r.flops))
        if precision == "fp8":
            pred *= cm.fp8_scale
        pairs.append((r, pred))
    if not pairs:
        return float("nan"), []
    w = np.array([max(r.share, 1e-12) for r, _ in pairs])
    ratio = np.array([p / r.efficiency for r, p in pairs])
    return float(np.sum(w * ratio) / np.sum(w)), pairs


def monotone(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Least-squares non-decreasing fit of (x, efficiency) points sorted by x (pool adjacent violators):
    a run of points whose efficiency falls as x grows takes its mean. For profiles built from a few
    measured shapes, one point per shape, where a FLOP-only curve should not fall with size."""
    blocks: list[list[float]] = []                     # [sum, count] per pooled run
    for _, e in sorted(points):
        blocks.append([e, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    ys = [s / n for s, n in blocks for _ in range(int(n))]
    return [(x, y) for (x, _), y in zip(sorted(points), ys, strict=True)]
