"""StepReport: the metrics of one simulated step, named once (see DESIGN.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

KINDS = ("tp", "cp", "ep_a2a", "pp_p2p", "dp")


@dataclass
class StepReport:
    fits: bool
    peak_memory_gib: float
    memory_limit_gib: float
    worst_stage: int
    step_time_s: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_per_device: float | None = None
    model_tflops_per_device: float | None = None
    mfu: float | None = None
    hfu: float | None = None
    bubble_fraction: float | None = None
    exposed_comm_s: dict = field(default_factory=dict)
    host_wait_s: float | None = None   # mean per stage: the device idle, waiting for the host to issue kernels (profiles with a host block)
    time_breakdown_s: dict = field(default_factory=dict)   # mean per stage: what each instant of the step ran
    imbalance_score: float | None = None
    max_over_mean_device_load: float | None = None
    drop_rate: float | None = None
    memory_gib: dict = field(default_factory=dict)          # the worst stage's peak: weights, gradients, optimizer, activations, transient
    memory_shortfall_gib: float = 0.0
    executor: str = "des"
    clock_scale: float | None = None   # SM clock / full boost clock under the board power cap (sim.cluster.power); None: not simulated
    reason: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 9)
        d["exposed_comm_s"] = {k: round(float(v), 9) for k, v in self.exposed_comm_s.items()}
        d["time_breakdown_s"] = {k: round(float(v), 9) for k, v in self.time_breakdown_s.items()}
        d["memory_gib"] = {k: round(float(v), 9) for k, v in self.memory_gib.items()}
        return d
