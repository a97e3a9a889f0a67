"""ParallelConfig: how one model is laid out over the devices (Megatron-LM vocabulary)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sim.config.base import StrictModel

# What a selective recompute may redo, in Megatron-Core's --recompute-modules vocabulary
# (megatron/core/transformer/transformer_config.py: core_attn, moe_act, layernorm, mla_up_proj, mlp,
# moe, shared_experts) plus mlp_act, the activation function of a dense FFN (Megatron recomputes it
# with its fused bias-GeLU/SwiGLU kernels; we name it separately from the routed experts' moe_act).
RecomputeModule = Literal["layernorm", "core_attn", "mla_up_proj", "moe_act", "mlp_act", "mlp", "moe",
                          "shared_experts"]
DEFAULT_SELECTIVE: tuple[str, ...] = ("layernorm", "mla_up_proj", "moe_act", "mlp_act")


class ParallelConfig(StrictModel):
    """TP/PP/VPP/EP/CP/DP layout, batch sizes, recompute and optimizer sharding.

    Layout (Megatron-LM "parallel folding"): attention/dense ranks are tp x cp x dp x pp = devices;
    expert ranks are expert_tp x ep_effective x expert_dp x pp, with the expert-parallel group
    spanning the tp x cp x dp ranks of a pipeline stage (EP spans DP, as in Megatron and DeepSeek-V3).
    """

    devices: int = Field(description="Total accelerators in the job (unit: devices)", gt=0)
    tp: int = Field(1, description="Tensor-parallel size (Megatron tensor_model_parallel_size) (unit: devices)", gt=0)
    pp: int = Field(1, description="Pipeline-parallel stages (unit: devices)", gt=0)
    vpp: int = Field(1, description="Virtual pipeline chunks per stage (interleaved 1F1B); 1 = plain 1F1B (unit: count)", gt=0)
    ep: int = Field(1, description="Expert-parallel size (Megatron expert_model_parallel_size) (unit: devices)", gt=0)
    expert_tp: int = Field(
        1,
        description="Tensor-parallel size inside each expert (Megatron expert_tensor_parallel_size; "
        "modern MoE recipes use 1) (unit: devices)",
        gt=0,
    )
    tp_extends_ep: bool = Field(
        False,
        description="Pangu/MindSpeed style: experts are spread over the TP group instead of splitting their weights, "
        "so the effective expert-parallel size is ep x tp and expert_tp is 1 (unit: none)",
    )
    cp: int = Field(1, description="Context-parallel size (unit: devices)", gt=0)
    sequence_parallel: bool = Field(
        True, description="Megatron sequence parallelism for norms/dropout when tp > 1 (unit: none)"
    )
    micro_batch_size: int = Field(1, description="Sequences per micro-batch per data-parallel rank (unit: sequences)", gt=0)
    global_batch_size: int = Field(description="Sequences per optimizer step over all replicas (unit: sequences)", gt=0)
    recompute: Literal["none", "selective", "full"] = Field(
        "selective",
        description="Activation recompute: none; selective (the modules in recompute_modules are recomputed, "
        "default norms, activation functions and MLA up-projections); full (each layer's input kept, whole "
        "layer recomputed) (unit: none)",
    )
    recompute_modules: list[RecomputeModule] | None = Field(
        None,
        description="Modules a selective recompute redoes (Megatron-Core --recompute-modules vocabulary: "
        "layernorm, core_attn, mla_up_proj, moe_act, mlp_act, mlp, moe, shared_experts); null = "
        f"{','.join(DEFAULT_SELECTIVE)} (unit: none)",
    )
    distributed_optimizer: bool = Field(
        True, description="Shard fp32 master weights and Adam states over data-parallel ranks (ZeRO-1) (unit: none)"
    )
    account_for_embedding_in_pipeline_split: bool = Field(
        False,
        description="Count the input embedding as one layer when splitting layers over pipeline chunks "
        "(Megatron-LM flag of the same name): the first chunk holds one layer fewer (unit: none)",
    )
    account_for_loss_in_pipeline_split: bool = Field(
        False,
        description="Count the LM head and loss (and each MTP module) as one layer each when splitting "
        "layers over pipeline chunks (Megatron-LM flag of the same name) (unit: none)",
    )
    overlap_grad_reduce: bool = Field(
        True,
        description="Start each layer's data-parallel gradient reduction as soon as its last backward "
        "finishes (Megatron-Core --overlap-grad-reduce); false: one reduction after the whole backward "
        "(2021 Megatron-LM local DDP) (unit: none)",
    )
    overlap_param_gather: bool = Field(
        True,
        description="Distributed optimizer (ZeRO-1/2): all-gather the updated weights bucket by bucket "
        "ahead of the next step's forward, each layer's first forward waiting for its own bucket "
        "(Megatron-Core --overlap-param-gather); false: one blocking all-gather at the end of the "
        "optimizer step (unit: none)",
    )
    shard_gradients: bool = Field(
        False,
        description="Shard the gradients over the data-parallel ranks as well (ZeRO-2; FSDP that shards "
        "optimizer states and gradients): every micro-batch's backward reduce-scatters each layer's "
        "gradients as soon as they are complete and accumulates them into the local fp32 shard, instead "
        "of accumulating full gradients locally and reducing once per step; needs distributed_optimizer "
        "and overlap_grad_reduce (unit: none)",
    )
    shard_parameters: bool = Field(
        False,
        description="Shard the bf16 weights over the data-parallel ranks too (ZeRO-3; Megatron-FSDP "
        "optim_grads_params, PyTorch FSDP FULL_SHARD): every micro-batch all-gathers each layer's weights "
        "before its forward and again before its backward (a recompute included), prefetched one layer "
        "ahead on their own stream, and frees them after use; no all-gather after the optimizer step; "
        "needs shard_gradients (unit: none)",
    )
    grad_reduce_in_bf16: bool = Field(
        False,
        description="Reduce the data-parallel gradients in bf16 (2 bytes per element) instead of the fp32 "
        "main-grad buffers (Megatron-LM --grad-reduce-in-bf16) (unit: none)",
    )
    schedule: Literal["1f1b", "interleaved", "dualpipe"] | None = Field(
        None,
        description="Pipeline schedule; null picks interleaved when vpp > 1 else 1f1b (unit: none)",
    )
    a2a_overlap: bool = Field(
        False,
        description="Overlap one micro-batch's EP all-to-all with another's compute "
        "(Megatron 1F1B a2a overlap, DeepSeek DualPipe) (unit: none)",
    )
    tp_comm_overlap: bool = Field(
        False,
        description="Overlap the sequence-parallel all-gather with the column-parallel GEMM after it and "
        "the reduce-scatter with the row-parallel GEMM before it, chunk by chunk (Megatron-Core "
        "--tp-comm-overlap, Transformer Engine userbuffers); needs tp > 1 and sequence_parallel (unit: none)",
    )

    @property
    def dp(self) -> int:
        return self.devices // (self.tp * self.pp * self.cp)

    @property
    def ep_effective(self) -> int:
        """Devices the routed experts of one layer are spread over."""
        return self.ep * self.tp if self.tp_extends_ep else self.ep

    @property
    def etp(self) -> int:
        """Tensor-parallel split inside one expert."""
        return 1 if self.tp_extends_ep else self.expert_tp

    @property
    def expert_dp(self) -> int:
        """Data-parallel replicas of each expert."""
        return (self.tp * self.cp * self.dp) // (self.ep_effective * self.etp)

    @property
    def state_shard_ranks(self) -> tuple[int, int]:
        """(dense, expert) ranks that hold the same weights: the data-parallel groups that reduce their
        gradients and over which sharded states (ZeRO-1/2/3) are split. DualPipe's two parameter
        copies (ranks r and pp-1-r) double both: each rank holds a share of both its stages."""
        copies = 2 if self.schedule_name == "dualpipe" else 1
        return self.dp * self.cp * copies, self.expert_dp * copies

    @property
    def num_microbatches(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.dp)

    def pipeline_slots(self, mtp_layers: int = 0) -> tuple[int, int]:
        """(first, last) model-chunk layer positions taken by the embedding and by the loss. The loss
        slot also counts each MTP module as a layer (an MTP module is a transformer layer plus a
        projection; NVIDIA NeMo's DeepSeek-V3 recipe gives the last stage 64/pp - 2 of 61 layers)."""
        first = 1 if self.account_for_embedding_in_pipeline_split else 0
        last = 1 + mtp_layers if self.account_for_loss_in_pipeline_split else 0
        return first, last

    @property
    def recomputed(self) -> frozenset[str]:
        """The modules recomputed in the backward under selective recompute (empty otherwise)."""
        if self.recompute != "selective":
            return frozenset()
        return frozenset(DEFAULT_SELECTIVE if self.recompute_modules is None else self.recompute_modules)

    @property
    def schedule_name(self) -> str:
        if self.schedule:
            return self.schedule
        return "interleaved" if self.vpp > 1 else "1f1b"

    @model_validator(mode="after")
    def _check(self) -> ParallelConfig:
        grid = self.tp * self.pp * self.cp
        if self.devices % grid:
            raise ValueError(
                f"devices ({self.devices}) must be divisible by tp*pp*cp ({self.tp}*{self.pp}*{self.cp}={grid})"
            )
        attn_ranks = self.tp * self.cp * self.dp
        if attn_ranks % (self.ep_effective * self.etp):
            what = f"ep*tp ({self.ep}*{self.tp})" if self.tp_extends_ep else f"ep*expert_tp ({self.ep}*{self.expert_tp})"
            raise ValueError(
                f"{what} = {self.ep_effective * self.etp} must divide tp*cp*dp = {attn_ranks} "
                "(the expert-parallel group lives inside one pipeline stage)"
            )
        if self.tp_extends_ep and self.expert_tp != 1:
            raise ValueError("expert_tp must be 1 when tp_extends_ep is true")
        per_step = self.micro_batch_size * self.dp
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be divisible by micro_batch_size*dp "
                f"({self.micro_batch_size}*{self.dp}={per_step})"
            )
        if self.recompute_modules is not None and self.recompute != "selective":
            raise ValueError(f"recompute_modules needs recompute 'selective' (got {self.recompute!r})")
        if self.shard_gradients and not (self.distributed_optimizer and self.overlap_grad_reduce):
            what = "shard_parameters (with shard_gradients)" if self.shard_parameters else "shard_gradients"
            raise ValueError(f"{what} needs distributed_optimizer and overlap_grad_reduce (ZeRO-2/3 "
                             "reduce-scatter each layer's gradients into the optimizer's shard as they complete)")
        if self.shard_parameters and not self.overlap_param_gather:
            raise ValueError("overlap_param_gather false does not apply with shard_parameters (ZeRO-3 gathers "
                             "each layer's weights ahead of its use; there is no all-gather after the step)")
        if self.shard_parameters and not self.shard_gradients:
            raise ValueError("shard_parameters needs shard_gradients (ZeRO-3 shards the weights on top of the "
                             "gradients and optimizer states; FSDP optim_grads_params)")
        if self.vpp > 1 and self.pp == 1:
            raise ValueError("vpp > 1 needs pp > 1")
        if self.schedule == "interleaved" and self.vpp == 1:
            raise ValueError("schedule 'interleaved' needs vpp > 1")
        if self.schedule in ("1f1b", "dualpipe") and self.vpp > 1:
            raise ValueError(f"schedule '{self.schedule}' takes vpp = 1")
        if self.schedule_name == "interleaved" and self.num_microbatches % self.pp:
            raise ValueError(
                f"interleaved schedule needs micro-batches ({self.num_microbatches}) divisible by pp ({self.pp})"
            )
        if self.schedule == "dualpipe" and self.pp % 2:
            raise ValueError(f"schedule 'dualpipe' needs an even pp (got {self.pp})")
        if self.schedule == "dualpipe" and (self.num_microbatches % 2 or self.num_microbatches < 2 * self.pp):
            raise ValueError(f"schedule 'dualpipe' needs an even number of micro-batches >= 2*pp "
                             f"(got {self.num_microbatches} for pp {self.pp})")
        return self
