"""Parallel-layout search: enumerate TP/PP/VPP/EP/CP/micro-batch layouts for one model on N devices,
drop invalid and non-fitting ones, screen the rest with the analytic estimate, simulate the best K
with the DES and rank them by an objective."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from sim.config.base import StrictModel
from sim.config.compat import compat_errors
from sim.config.hardware import HardwareProfile
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.engine.run import simulate
from sim.engine.spec import RunSpec
from sim.errors import UserError
from sim.model.memory import peak_memory
from sim.search.columns import report_columns
from sim.search.objective import Objective

PosInt = Annotated[int, Field(gt=0)]
NOT_FIT = "does not fit memory"

# ParallelConfig fields the search chooses; every other base.parallel field is kept as given
SEARCHED = ("tp", "pp", "vpp", "ep", "cp", "expert_tp", "tp_extends_ep", "micro_batch_size", "recompute",
            "schedule", "a2a_overlap", "tp_comm_overlap")


class LayoutOptions(StrictModel):
    """What the layout search tries. A null list is filled per model and cluster (see each field)."""

    tp: list[PosInt] | None = Field(
        None, min_length=1,
        description="Tensor-parallel sizes; null = divisors of hardware devices_per_node that divide devices (unit: devices)")
    pp: list[PosInt] | None = Field(
        None, min_length=1,
        description="Pipeline stages; null = divisors of devices/(tp*cp) up to num_layers; uneven layer "
        "splits are allowed, as sim/model/partition.py supports them (unit: devices)")
    vpp: list[PosInt] = Field([1, 2], min_length=1, description="Virtual pipeline chunks per stage (unit: count)")
    ep: list[PosInt] | None = Field(
        None, min_length=1,
        description="Expert-parallel sizes; null = every ep whose effective size divides moe.num_experts and "
        "tp*cp*dp (1 for a dense model) (unit: devices)")
    cp: list[PosInt] = Field([1], min_length=1, description="Context-parallel sizes (unit: devices)")
    expert_tp: list[PosInt] = Field([1], min_length=1, description="Tensor-parallel sizes inside one expert (unit: devices)")
    tp_extends_ep: list[bool] = Field([False], min_length=1, description="Spread experts over the TP group (Pangu/MindSpeed) (unit: none)")
    micro_batch_size: list[PosInt] = Field([1, 2], min_length=1, description="Micro-batch sizes (unit: sequences)")
    recompute: list[Literal["none", "selective", "full"]] = Field(
        ["selective", "full"], min_length=1, description="Activation-recompute modes (unit: none)")
    schedule: list[Literal["1f1b", "interleaved", "dualpipe"] | None] = Field(
        [None], min_length=1, description="Pipeline schedules; null = interleaved when vpp > 1 else 1f1b (unit: none)")
    a2a_overlap: list[bool] = Field([False], min_length=1, description="EP all-to-all overlap settings (unit: none)")
    tp_comm_overlap: list[bool] = Field(
        [False], min_length=1,
        description="TP communication overlap settings (Megatron-Core --tp-comm-overlap; only with tp > 1) (unit: none)")
    zero: list[Literal[0, 1, 2, 3]] | None = Field(
        None, min_length=1,
        description="Data-parallel sharding stages: 0 plain data parallelism, 1 distributed optimizer "
        "(ZeRO-1), 2 + sharded gradients (ZeRO-2), 3 + sharded weights (ZeRO-3 / FSDP); null = keep "
        "base.parallel's distributed_optimizer / shard_gradients / shard_parameters (unit: none)")
    top: PosInt = Field(3, description="Best analytic layouts re-run with the DES (unit: count)")


# the ParallelConfig switches a ZeRO stage sets (LayoutOptions.zero)
ZERO_FIELDS = ("distributed_optimizer", "shard_gradients", "shard_parameters")


def zero_switches(stage: int) -> dict:
    return dict(zip(ZERO_FIELDS, (stage >= 1, stage >= 2, stage >= 3), strict=True))


def zero_stage(par: ParallelConfig) -> int:
    return 3 if par.shard_parameters else 2 if par.shard_gradients else 1 if par.distributed_optimizer else 0


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _default_eps(model: ModelConfig, devices: int, tp: int, cp: int, pp: int, tpe: bool, etp: int) -> list[int]:
    if model.moe is None or devices % (tp * cp * pp):
        return [1]
    ranks = devices // pp                                # tp * cp * dp: the ranks of one pipeline stage
    out = []
    for ep in divisors(model.moe.num_experts):
        eff = ep * tp if tpe else ep
        if model.moe.num_experts % eff == 0 and ranks % (eff * (1 if tpe else etp)) == 0:
            out.append(ep)
    return out or [1]


def enumerate_layouts(model: ModelConfig, hw: HardwareProfile, base_parallel: dict,
                      opts: LayoutOptions) -> Iterator[dict]:
    """Candidate ParallelConfig dicts (base_parallel with the searched fields set), in a fixed order."""
    devices = int(base_parallel["devices"])
    tps = opts.tp or [d for d in divisors(hw.node.devices_per_node) if devices % d == 0]
    rest = list(itertools.product(opts.micro_batch_size, opts.recompute, opts.schedule, opts.a2a_overlap,
                                  opts.tp_comm_overlap, opts.zero or [None]))
    for tp, cp in itertools.product(tps, opts.cp):
        grid = tp * cp
        pps = opts.pp or ([d for d in divisors(devices // grid) if d <= model.num_layers]
                          if devices % grid == 0 else [1])
        for pp, vpp, tpe, etp in itertools.product(pps, opts.vpp, opts.tp_extends_ep, opts.expert_tp):
            if tpe and tp == 1 and False in opts.tp_extends_ep:
                continue   # with tp 1, extending EP over TP changes nothing
            eps = opts.ep or _default_eps(model, devices, tp, cp, pp, tpe, etp)
            for ep, (mbs, rec, sched, a2a, tpo, zero) in itertools.product(eps, rest):
                if tpo and tp == 1:
                    if False in opts.tp_comm_overlap:
                        continue   # nothing to overlap at tp 1; the False variant covers it
                    tpo = False
                d = dict(base_parallel)
                d.update(tp=tp, pp=pp, vpp=vpp, ep=ep, cp=cp, expert_tp=etp, tp_extends_ep=tpe,
                         micro_batch_size=mbs, recompute=rec, schedule=sched, a2a_overlap=a2a, tp_comm_overlap=tpo)
                if zero is not None:
                    d.update(zero_switches(zero))
                yield d


def reason_key(msg: str) -> str:
    """A reason without its numbers, to count layouts by why they were dropped:
    'devices (6144) must be divisible by tp*pp*cp (8*5*1=40)' -> 'devices must be divisible by tp*pp*cp'."""
    s = re.sub(r"\s*\([^()]*\)", "", msg)
    s = re.sub(r"'[^']*'", "'...'", s)
    return s.strip().rstrip(".")


def check_layout(model: ModelConfig, pdict: dict, work: Workload, hw: HardwareProfile) -> tuple[ParallelConfig | None, str]:
    """(layout, "") when valid and within device memory at balanced routing, else (None, reason)."""
    try:
        par = ParallelConfig(**pdict)
    except ValidationError as e:
        return None, e.errors()[0].get("msg", "invalid layout").removeprefix("Value error, ")
    errs = compat_errors(model, par, work, hw)
    if errs:
        return None, errs[0]
    mem = peak_memory(model, par, work)
    limit = hw.device.hbm_gib - hw.device.reserved_memory_gib
    if mem.total_gib > limit:
        return None, f"{NOT_FIT}: stage {mem.stage} needs {mem.total_gib:.1f} GiB of {limit:.1f} GiB"
    return par, ""


def layout_columns(par: ParallelConfig) -> dict:
    """The searched fields of a layout plus dp and micro-batches, for tables."""
    return dict(tp=par.tp, pp=par.pp, vpp=par.vpp, ep=par.ep, cp=par.cp, expert_tp=par.expert_tp,
                tp_extends_ep=par.tp_extends_ep, mbs=par.micro_batch_size, recompute=par.recompute,
                schedule=par.schedule_name, a2a_overlap=par.a2a_overlap, tp_comm_overlap=par.tp_comm_overlap,
                zero=zero_stage(par), dp=par.dp,
                num_microbatches=par.num_microbatches)


@dataclass
class RankedLayout:
    parallel: ParallelConfig
    report: dict          # report_columns() of its best-fidelity simulation
    executor: str         # executor that produced ``report``


@dataclass
class SearchResult:
    layouts: list[RankedLayout]                      # best first: DES-simulated ones, then analytic-only
    enumerated: int = 0
    infeasible: dict[str, int] = field(default_factory=dict)   # reason -> layouts dropped
    screened: int = 0                                # analytic estimates run
    simulated: int = 0                               # DES runs

    @property
    def best(self) -> RankedLayout | None:
        return self.layouts[0] if self.layouts else None

    def counts(self) -> dict:
        return dict(enumerated=self.enumerated, infeasible=sum(self.infeasible.values()),
                    screened=self.screened, simulated=self.simulated)

    def infeasible_summary(self) -> str:
        return "; ".join(f"{n} {k}" for k, n in self.infeasible.items())


def search_layouts(model: ModelConfig, hw: HardwareProfile, work: Workload, routing: RoutingConfig,
                   base_parallel: dict, opts: LayoutOptions, objective: Objective,
                   executor: str = "des") -> SearchResult:
    """Best layouts for the model by ``objective``: screen every valid, fitting layout with the analytic
    estimate; with executor 'des', re-run the best ``opts.top`` with the DES and rank those first."""
    drop: Counter[str] = Counter()
    screened: list[RankedLayout] = []
    n = n_screened = 0
    for pdict in enumerate_layouts(model, hw, base_parallel, opts):
        n += 1
        par, why = check_layout(model, pdict, work, hw)
        if par is None:
            drop[NOT_FIT if why.startswith(NOT_FIT) else reason_key(why)] += 1
            continue
        try:
            spec = RunSpec(model=model, parallel=par, workload=work, hardware=hw, routing=routing)
            rep = simulate(spec, executor="analytic")
        except (UserError, ValidationError) as e:
            drop[reason_key(str(e).splitlines()[0])] += 1
            continue
        n_screened += 1
        row = report_columns(rep)
        if not rep.fits or objective.value(row) is None:
            drop[NOT_FIT if not rep.fits else f"no {objective.column}"] += 1
            continue
        screened.append(RankedLayout(par, row, "analytic"))
    screened.sort(key=lambda r: objective.key(r.report))
    res = SearchResult(layouts=screened, enumerated=n, screened=n_screened)
    res.infeasible = dict(sorted(drop.items(), key=lambda kv: (-kv[1], kv[0])))
    if executor == "des" and screened:
        # the DES samples routing in every layer, so its hottest-rank memory can exceed the screen's:
        # walk down the ranking until `top` layouts fit under the DES too
        top, rest, n_des = [], [], 0
        for i, cand in enumerate(screened):
            if len(top) >= opts.top:
                rest = screened[i:]
                break
            spec = RunSpec(model=model, parallel=cand.parallel, workload=work, hardware=hw, routing=routing)
            rep = simulate(spec, executor="des")
            n_des += 1
            if not rep.fits:
                drop[NOT_FIT] += 1
                continue
            top.append(RankedLayout(cand.parallel, report_columns(rep), "des"))
        top.sort(key=lambda r: objective.key(r.report))
        res.layouts = top + rest
        res.simulated = n_des
        res.infeasible = dict(sorted(drop.items(), key=lambda kv: (-kv[1], kv[0])))
    return res
