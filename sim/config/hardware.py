"""HardwareProfile: one accelerator type, its node and its scale-out network."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sim.config.base import StrictModel


class PeakTflops(StrictModel):
    """Dense (non-sparse) peak tensor throughput per device."""

    bf16: float = Field(description="Dense BF16 peak (unit: TFLOPS)", gt=0)
    fp16: float | None = Field(None, description="Dense FP16 peak; null means equal to bf16 (unit: TFLOPS)", gt=0)
    fp8: float | None = Field(None, description="Dense FP8 peak; null when the device has no FP8 tensor path (unit: TFLOPS)", gt=0)


def _check_curve(points: list[tuple], what: str) -> list[tuple]:
    """An efficiency curve: strictly increasing positive x, every efficiency column in (0, 1]."""
    xs = [p[0] for p in points]
    if any(x <= 0 for x in xs):
        raise ValueError(f"{what} must be > 0")
    if xs != sorted(xs) or len(set(xs)) != len(xs):
        raise ValueError(f"{what} must be strictly increasing")
    if any(not 0 < e <= 1 for p in points for e in p[1:]):
        raise ValueError("efficiencies must be in (0, 1]")
    return points


class PowerSpec(StrictModel):
    """Board power by kind of kernel at the full boost clock, for the power-capped clock model
    (sim.cluster.power). Measured with benchmarks/gpu/kernel_sweep.py (power and duty sections)."""

    idle_w: float = Field(description="Board power with the GPU idle between kernels (unit: W)", ge=0)
    gemm_w: float = Field(description="Power a large BF16 GEMM adds over idle while it runs, at full clock (unit: W)", gt=0)
    attention_w: float = Field(description="Power fused attention adds over idle while it runs, at full clock (unit: W)", gt=0)
    memory_w: float = Field(description="Power an HBM-bound kernel adds over idle while it runs (unit: W)", ge=0)
    clock_exponent: float = Field(description="Exponent of tensor-core dynamic power in the clock scale (unit: none)", gt=0)


class DeviceSpec(StrictModel):
    """One accelerator: compute, memory, and how well GEMMs use it."""

    name: str = Field(description="Device name (unit: none)")
    peak_tflops: PeakTflops = Field(description="Dense peak per dtype (unit: TFLOPS)")
    hbm_gib: float = Field(description="HBM capacity (unit: GiB)", gt=0)
    hbm_bandwidth_GBps: float = Field(description="HBM bandwidth (unit: GB/s, 1e9 bytes/s)", gt=0)
    reserved_memory_gib: float = Field(
        0.0, description="HBM not available to the model: runtime, workspace, fragmentation (unit: GiB)", ge=0
    )
    gemm_efficiency: list[tuple[float, float]] = Field(
        description="GEMM efficiency curve: (GFLOP of one GEMM, fraction of dense peak) points, "
        "interpolated in log(GFLOP), clamped at the ends (unit: GFLOP, fraction)",
        min_length=1,
    )
    memory_efficiency: float = Field(
        0.8, description="Achieved fraction of HBM bandwidth for memory-bound ops (unit: fraction)", gt=0, le=1
    )
    power_w: float | None = Field(None, description="Board/module power (unit: W)", gt=0)
    power: PowerSpec | None = Field(
        None, description="Power by kernel kind, for clocks capped at power_w: tensor-core work slows when a "
        "step's mix would draw more than power_w. Absent: full clocks throughout (unit: W)",
    )
    fp8_gemm_efficiency_scale: float = Field(
        1.0, description="Achieved FP8 GEMM efficiency relative to the BF16 curve on the same device "
        "(fine-grained scaling and higher-precision accumulation cost FP8 kernels part of their peak) "
        "(unit: ratio)", gt=0, le=1,
    )
    flash_attention_efficiency: list[tuple[float, float, float]] | None = Field(
        None, description="Fused (flash) attention kernel efficiency, causal, BF16: (sequence length, forward "
        "fraction of dense BF16 peak, backward fraction) points, interpolated in log(sequence length), clamped "
        "at the ends. Absent: the attention core runs on the GEMM efficiency curve (unit: tokens, fraction, "
        "fraction)", min_length=1,
    )
    comm_sm_fraction: float = Field(
        0.0, description="Fraction of the compute units that communication kernels occupy while they run "
        "beside compute (GPU all-to-all kernels run on SMs; NPU collectives on separate DMA engines) "
        "(unit: fraction)", ge=0, lt=1,
    )

    @field_validator("gemm_efficiency")
    @classmethod
    def _curve(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return _check_curve(v, "GFLOP points")

    @field_validator("flash_attention_efficiency")
    @classmethod
    def _attention_curve(cls, v: list[tuple[float, float, float]] | None) -> list[tuple[float, float, float]] | None:
        return v if v is None else _check_curve(v, "sequence lengths")


class NodeSpec(StrictModel):
    """The scale-up domain: devices joined by the fast intra-node fabric (HCCS, NVLink, UB)."""

    devices_per_node: int = Field(description="Devices in one scale-up domain (HGX node, NVL72 rack, CloudMatrix384) (unit: devices)", gt=0)
    intra_node_bandwidth_GBps: float = Field(
        description="Per-device unidirectional bandwidth into the scale-up fabric (unit: GB/s)", gt=0
    )
    intra_node_latency_us: float = Field(description="Per-message latency inside the node (unit: us)", ge=0)
    topology: Literal["full_mesh", "switch"] = Field(
        description="full_mesh: a dedicated link per device pair (bandwidth split over peers); "
        "switch: each device's full bandwidth reaches any peer (NVSwitch, UB switch) (unit: none)"
    )


class ScaleOutSpec(StrictModel):
    """The network between nodes."""

    nic_bandwidth_Gbps: float = Field(description="Per-device NIC bandwidth, one direction (unit: Gb/s)", gt=0)
    latency_us: float = Field(description="Per-message latency across the network (unit: us)", ge=0)
    oversubscription: float = Field(
        1.0, description="Fabric oversubscription above the leaf (1 = non-blocking fat tree) (unit: ratio)", ge=1
    )

    @property
    def nic_bandwidth_GBps(self) -> float:
        return self.nic_bandwidth_Gbps / 8.0


class CollectiveEfficiency(StrictModel):
    """Achieved fraction of link bandwidth for each collective family and tier."""

    intra_node: float = Field(0.8, description="Ring/tree collectives inside a node (unit: fraction)", gt=0, le=1)
    inter_node: float = Field(0.8, description="Ring/tree collectives across nodes (unit: fraction)", gt=0, le=1)
    all_to_all_intra: float = Field(0.7, description="All-to-all inside a node (unit: fraction)", gt=0, le=1)
    all_to_all_inter: float = Field(0.7, description="All-to-all across nodes (unit: fraction)", gt=0, le=1)
    intra_node_by_size: list[tuple[float, float]] | None = Field(
        None, description="Measured bus bandwidth of ring collectives inside a node by message size: (bytes of "
        "the per-rank buffer, as nccl-tests' size column; achieved bus bandwidth as a fraction of "
        "intra_node_bandwidth_GBps) points, interpolated in log(bytes), clamped at the ends. A collective takes "
        "the measured time at its size: its bytes hold the link at the curve's best fraction and the rest is "
        "latency (no per-step latency is added). Absent: the flat intra_node fraction plus the node's per-step "
        "latency (unit: bytes, fraction)", min_length=1,
    )

    @field_validator("intra_node_by_size")
    @classmethod
    def _size_curve(cls, v: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        return v if v is None else _check_curve(v, "message sizes")


class HostSpec(StrictModel):
    """CPU time an eager training framework spends issuing one layer part's kernels (Python, the
    dispatcher, autograd, the launches), forward and backward, measured with
    benchmarks/gpu/layer_host.py (fit: sim.cluster.host_fit). A stream cannot run ahead of its host:
    see sim.engine.program (host markers) for how the executors use these."""

    cpu: str = Field(description="The host CPU the numbers were measured on (unit: none)")
    attention_us: tuple[float, float] = Field(description="Attention block: norm, QKV, RoPE, attention, projection, residual; (forward, backward) (unit: us)")
    mlp_us: tuple[float, float] = Field(description="Dense SwiGLU MLP block, or a shared expert; (forward, backward) (unit: us)")
    moe_us: tuple[float, float] = Field(description="MoE block's part that does not grow with local experts: norm, router, top-k, token-count copy, permutation, combine; (forward, backward) (unit: us)")
    moe_per_expert_us: tuple[float, float] = Field(description="MoE block's part per local expert (its GEMM launches); (forward, backward) (unit: us)")
    router_share: float = Field(description="Share of moe_us's forward issued before the token-count copy (the router and top-k) (unit: fraction)", ge=0, le=1)

    @field_validator("attention_us", "mlp_us", "moe_us", "moe_per_expert_us")
    @classmethod
    def _nonneg(cls, v):
        if any(x < 0 for x in v):
            raise ValueError("host times must be >= 0")
        return v


class HardwareProfile(StrictModel):
    """A cluster made of one device type."""

    name: str = Field(description="Profile name, as passed to --hardware (unit: none)")
    description: str = Field("", description="One line about the system (unit: none)")
    kind: Literal["npu", "gpu"] = Field(description="Accelerator family (unit: none)")
    device: DeviceSpec
    node: NodeSpec
    scale_out: ScaleOutSpec
    collective_efficiency: CollectiveEfficiency = Field(default_factory=CollectiveEfficiency)
    host: HostSpec | None = Field(None, description="Host issue costs of an eager framework; absent: the host is never the bottleneck (unit: none)")

    @model_validator(mode="after")
    def _check(self) -> HardwareProfile:
        if self.device.reserved_memory_gib >= self.device.hbm_gib:
            raise ValueError("device.reserved_memory_gib must be below device.hbm_gib")
        return self

    def peak_flops(self, precision: str) -> float:
        """Dense peak in FLOP/s for a GEMM precision ('bf16' or 'fp8')."""
        p = self.device.peak_tflops
        if precision == "fp8":
            if p.fp8 is None:
                raise ValueError(f"hardware '{self.name}' has no FP8 tensor path; use precision bf16")
            return p.fp8 * 1e12
        return p.bf16 * 1e12
