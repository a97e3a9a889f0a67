"""Cross-config validation: a model, a layout, a workload and a profile that belong together."""

from __future__ import annotations

from sim.config.hardware import HardwareProfile
from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig
from sim.config.workload import Workload


def compat_errors(
    model: ModelConfig, par: ParallelConfig, work: Workload | None = None, hw: HardwareProfile | None = None
) -> list[str]:
    """Every reason the combination is invalid, one sentence each (empty when valid)."""
    errs: list[str] = []
    if model.num_attention_heads % par.tp:
        errs.append(f"parallel.tp ({par.tp}) must divide num_attention_heads ({model.num_attention_heads})")
    if model.attention == "gqa" and model.kv_heads % par.tp and par.tp % model.kv_heads:
        errs.append(f"parallel.tp ({par.tp}) and num_query_groups ({model.kv_heads}) must divide one another")
    if model.ffn_hidden_size % par.tp:
        errs.append(f"parallel.tp ({par.tp}) must divide ffn_hidden_size ({model.ffn_hidden_size})")
    first, last = par.pipeline_slots(model.mtp_layers)
    if model.num_layers + first + last < par.pp * par.vpp:
        slots = f" + {first + last} embedding/loss slots" if first + last else ""
        errs.append(f"num_layers ({model.num_layers}){slots} must be >= pp*vpp ({par.pp * par.vpp})")
    elif (first or last) and par.pp * par.vpp == 1:
        errs.append("account_for_embedding/loss_in_pipeline_split need pp*vpp > 1")
    if par.tp_comm_overlap and (par.tp == 1 or not par.sequence_parallel):
        errs.append("parallel.tp_comm_overlap needs tp > 1 and sequence_parallel (it overlaps the "
                    "sequence-parallel all-gather / reduce-scatter)")
    if model.moe is None:
        if par.ep > 1:
            errs.append(f"parallel.ep ({par.ep}) > 1 needs an MoE model ('{model.name}' is dense)")
    else:
        moe = model.moe
        if moe.num_experts % par.ep_effective:
            errs.append(
                f"expert-parallel size ({par.ep_effective}) must divide moe.num_experts ({moe.num_experts})"
            )
        if moe.expert_ffn_hidden_size % par.etp:
            errs.append(f"parallel.expert_tp ({par.etp}) must divide moe.expert_ffn_hidden_size ({moe.expert_ffn_hidden_size})")
    if work is not None:
        if work.seq_len % par.cp:
            errs.append(f"parallel.cp ({par.cp}) must divide workload.seq_len ({work.seq_len})")
        if par.tp > 1 and par.sequence_parallel and work.seq_len % (par.tp * par.cp):
            errs.append(f"tp*cp ({par.tp * par.cp}) must divide workload.seq_len ({work.seq_len}) with sequence parallelism")
        if hw is not None and work.precision == "fp8" and hw.device.peak_tflops.fp8 is None:
            errs.append(f"workload.precision fp8: hardware '{hw.name}' has no FP8 tensor path")
    return errs
