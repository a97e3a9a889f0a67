"""Everything one step needs, computed once from the cost model and shared by both executors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.cluster.compute import ComputeModel
from sim.collectives.cost import CommCost, CommModel
from sim.engine.constants import NUM_SAMPLES
from sim.engine.program import ACT, Programs, build_programs, dp_groups, weight_gather
from sim.engine.spec import RunSpec
from sim.model.memory import grad_bytes, stage_params

OPTIM_BYTES_MOVED = 30.0  # per sharded parameter: read grad/master/m/v (16 B), write master/m/v (12 B), bf16 param (2 B)


@dataclass
class StepInputs:
    spec: RunSpec
    cm: ComputeModel
    comm: CommModel
    programs: Programs
    order_name: str
    p2p: CommCost                        # one activation send between adjacent stages
    dp_group_dense: object
    dp_group_expert: object
    optimizer_s: list                    # [stage] optimizer step seconds
    param_gather: list                   # [stage][chunk] per block, in forward order: CommCost of the weight
                                         # all-gather after a distributed-optimizer step (empty without one)

    def grad_reduce(self, dense: float, expert: float) -> CommCost:
        """Gradient reduction for `dense` and `expert` parameters of one layer on one device."""
        par = self.spec.parallel
        c = CommCost()
        fn = self.comm.reduce_scatter if par.distributed_optimizer else self.comm.all_reduce
        nb = grad_bytes(par)
        if dense and self.dp_group_dense.size > 1:
            c = c + fn(self.dp_group_dense, dense * nb)
        if expert and self.dp_group_expert.size > 1:
            c = c + fn(self.dp_group_expert, expert * nb)
        return c


def build_step(spec: RunSpec, num_samples: int = NUM_SAMPLES, routing_layers: int | None = None,
               clock_scale: float = 1.0) -> StepInputs:
    """routing_layers: MoE layers with their own routing sample (None: all; the analytic screen uses few).
    clock_scale: SM clock / full boost clock for tensor-core work (sim.cluster.power)."""
    m, par, w, hw = spec.model, spec.parallel, spec.workload, spec.hardware
    cm = ComputeModel(hw, w.precision, clock_scale)
    comm = CommModel(hw)
    rng = np.random.default_rng(spec.routing.seed)
    programs = build_programs(m, par, w, spec.routing, cm, comm, rng, num_samples, routing_layers)
    tsp = par.micro_batch_size * w.seq_len / par.cp / (par.tp if (par.sequence_parallel and par.tp > 1) else 1)
    pp_stride = par.tp * par.cp * par.dp
    p2p = comm.p2p(tsp * m.hidden_size * ACT, inter_node=pp_stride >= comm.dpn or par.pp * pp_stride > comm.dpn)
    groups = g_dense, g_expert = dp_groups(par, comm)
    dense_ranks, expert_ranks = par.state_shard_ranks
    opt, pg = [], []
    for st in range(par.pp):
        chunks = programs.chunks[st]
        sp = stage_params(m, par, chunks)
        shard = (sp.dense / dense_ranks + sp.expert / expert_ranks) if par.distributed_optimizer \
            else sp.dense + sp.expert
        opt.append(float(cm.memory_time(OPTIM_BYTES_MOVED * shard)))
        gathered = par.distributed_optimizer and not par.shard_parameters   # ZeRO-3 gathers per layer instead
        pg.append([[weight_gather(comm, groups, *block_weights(programs.blocks[key]))
                    for key in programs.layout[st][c][0]] if gathered else []
                   for c in range(len(chunks))])
    if par.schedule_name == "dualpipe":
        # rank r holds model stage r (chunk 0) and stage pp-1-r (chunk 1): two parameter copies
        opt = [opt[r] + opt[par.pp - 1 - r] for r in range(par.pp)]
        pg = [[pg[r][0], pg[par.pp - 1 - r][0]] for r in range(par.pp)]
    return StepInputs(spec=spec, cm=cm, comm=comm, programs=programs, order_name=par.schedule_name, p2p=p2p,
                      dp_group_dense=g_dense, dp_group_expert=g_expert, optimizer_s=opt, param_gather=pg)


def block_weights(block) -> tuple[float, float]:
    """(dense, expert) weights of one block on one device: the elements its backward hands to the
    gradient reduction (they match sim.model.memory.stage_params; tests/test_sharding.py)."""
    g = [sg for sg in block.bwd if sg[0] == "grad"]
    return sum(sg[2] for sg in g), sum(sg[3] for sg in g)


def device_tensor_time(inp: StepInputs) -> list[tuple[float, float]]:
    """Per pipeline rank: (GEMM seconds, attention-core seconds) of its whole step at the inputs' clock."""
    from sim.schedule.pipeline import microbatches_per_chunk, model_stage
    par, pr = inp.spec.parallel, inp.programs
    name = inp.order_name
    chunks = 2 if name == "dualpipe" else par.vpp
    mpc = microbatches_per_chunk(name, par.num_microbatches)
    out = []
    for r in range(par.pp):
        g = a = 0.0
        for c in range(chunks):
            ms, mc = model_stage(name, par.pp, r, c)
            per = pr.layout[ms][mc]
            for mb in range(mpc):
                for k in per[mb % pr.num_samples]:
                    tg, ta = pr.blocks[k].tensor_s
                    g += tg
                    a += ta
        out.append((g, a))
    return out
