"""Compute-op time on one device: a roofline with a size-dependent GEMM efficiency curve.

This is the single compute cost model: the discrete-event engine and the analytic estimate
both call it.
"""

from __future__ import annotations

import numpy as np

from sim.config.hardware import HardwareProfile


class ComputeModel:
    """Times GEMMs, attention and memory-bound ops on one device of a profile."""

    def __init__(self, hw: HardwareProfile, precision: str = "bf16", clock_scale: float = 1.0):
        """clock_scale: the SM clock as a fraction of the full boost clock the curves were measured at
        (sim.cluster.power: below 1 when the step's mix of kernels would exceed the board power cap);
        tensor-core work (GEMMs, fused attention) takes 1 / clock_scale as long, HBM-bound work does not."""
        d = hw.device
        self.clock_scale = float(clock_scale)
        self.hw = hw
        self.bf16 = hw.peak_flops("bf16")
        self.gemm_peak = hw.peak_flops(precision)       # FP8 GEMMs run at the FP8 rate
        self.mem_bw = d.hbm_bandwidth_GBps * 1e9 * d.memory_efficiency   # bytes/s achieved
        pts = np.asarray(d.gemm_efficiency, dtype=float)  # (points, 2): GFLOP, efficiency
        self._logx = np.log(pts[:, 0] * 1e9)
        self._eff = pts[:, 1]
        self.precision = precision
        self.fp8_scale = d.fp8_gemm_efficiency_scale
        att = np.asarray(d.flash_attention_efficiency or [], dtype=float)   # (points, 3): seq, fwd, bwd
        self._attn = (np.log(att[:, 0]), att[:, 1], att[:, 2]) if len(att) else None

    def efficiency(self, flops_per_gemm) -> np.ndarray:
        """GEMM efficiency for GEMMs of the given size (FLOPs), interpolated in log size."""
        x = np.log(np.maximum(np.asarray(flops_per_gemm, dtype=float), 1.0))
        return np.interp(x, self._logx, self._eff)

    def gemm_time(self, flops, flops_per_gemm, weight_bytes=0.0, act_bytes=0.0, low_precision=True):
        """Seconds for GEMMs totalling ``flops`` made of GEMMs of ``flops_per_gemm`` each.

        A memory floor applies: the weights and activations must stream through HBM at least once.
        low_precision: run at the FP8 rate when the workload is FP8 (attention core and LM head stay BF16).
        """
        peak = self.gemm_peak if low_precision else self.bf16
        if low_precision and self.precision == "fp8":
            peak = peak * self.fp8_scale
        t_flop = np.asarray(flops, dtype=float) / (peak * self.efficiency(flops_per_gemm) * self.clock_scale)
        t_mem = (np.asarray(weight_bytes, dtype=float) + act_bytes) / self.mem_bw
        return np.maximum(t_flop, t_mem)

    def attention_time(self, flops, flops_per_call, seq_len=None, backward=False):
        """Flash-attention core (QK^T, softmax, AV; or its backward) in BF16.

        With the profile's measured fused-attention curve, the efficiency is read at the kernel's
        sequence length (forward or backward column); without one, the core runs on the GEMM curve.
        """
        if self._attn is None or seq_len is None:
            eff = self.efficiency(flops_per_call)
        else:
            logx, fwd, bwd = self._attn
            eff = np.interp(np.log(np.maximum(np.asarray(seq_len, dtype=float), 1.0)), logx, bwd if backward else fwd)
        return np.asarray(flops, dtype=float) / (self.bf16 * eff * self.clock_scale)

    def memory_time(self, nbytes):
        """A memory-bound op (norm, activation, permute, optimizer update) moving ``nbytes``."""
        return np.asarray(nbytes, dtype=float) / self.mem_bw
