"""Layers mapped to pipeline stages and virtual chunks, with uneven first/last stages."""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.model import ModelConfig
from sim.config.parallel import ParallelConfig


@dataclass(frozen=True)
class Chunk:
    """The layers one (stage, virtual chunk) runs."""

    stage: int
    chunk: int
    layers: tuple[int, ...]      # global layer indices
    moe: tuple[bool, ...]        # per layer: MoE (True) or dense FFN
    embedding: bool              # holds the input embedding (first stage, first chunk)
    head: bool                   # holds final norm, LM head, loss and MTP modules (last stage, last chunk)

    @property
    def num_moe(self) -> int:
        return sum(self.moe)

    @property
    def num_dense(self) -> int:
        return len(self.layers) - self.num_moe


def chunk_sizes(num_layers: int, pp: int, vpp: int, first_slots: int = 0, last_slots: int = 0) -> list[int]:
    """Layers per model chunk, in model order (chunk c of stage s is model chunk c*pp + s).

    Layers are spread as evenly as possible; where they do not divide, the first and last
    model chunks (which also carry embedding, LM head and MTP) take the smaller share.
    first_slots / last_slots: layer positions the first / last model chunk gives up to the
    embedding / the loss and MTP modules (Megatron-LM --account-for-embedding-in-pipeline-split,
    --account-for-loss-in-pipeline-split); such a chunk may hold no transformer layer at all.
    """
    n = pp * vpp
    base, extra = divmod(num_layers + first_slots + last_slots, n)
    sizes = [base] * n
    # hand the remainder to the middle chunks first, then outward
    order = sorted(range(n), key=lambda i: (i in (0, n - 1), abs(i - (n - 1) / 2), i))
    for i in order[:extra]:
        sizes[i] += 1
    sizes[0] -= first_slots
    sizes[-1] -= last_slots
    return sizes


def partition(model: ModelConfig, par: ParallelConfig) -> list[list[Chunk]]:
    """chunks[stage][chunk] for the layout (vpp chunks per stage)."""
    pp, vpp = par.pp, par.vpp
    sizes = chunk_sizes(model.num_layers, pp, vpp, *par.pipeline_slots(model.mtp_layers))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    out: list[list[Chunk]] = [[] for _ in range(pp)]
    n = pp * vpp
    for c in range(vpp):
        for s in range(pp):
            mc = c * pp + s
            layers = tuple(range(starts[mc], starts[mc] + sizes[mc]))
            out[s].append(Chunk(
                stage=s, chunk=c, layers=layers,
                moe=tuple(model.is_moe and i >= model.first_k_dense_layers for i in layers),
                embedding=mc == 0, head=mc == n - 1,
            ))
    return out
