"""Pipeline schedules: the order in which each stage runs its forward and backward tasks.

A task is ``(phase, chunk, microbatch)`` with phase "F" or "B". Dependencies are implied by
the pipeline: F(s, c, m) needs F(s-1, c, m) (or F(pp-1, c-1, m) on stage 0); B(s, c, m) needs
B(s+1, c, m) (or B(0, c+1, m) on the last stage, or F of the last chunk on the last stage).
"""

from __future__ import annotations

Task = tuple[str, int, int]


def one_f_one_b(pp: int, m: int, stage: int) -> list[Task]:
    """PipeDream-flush 1F1B (Narayanan et al. 2021): warm-up forwards, steady 1F1B, cool-down."""
    warm = min(pp - stage - 1, m)
    order: list[Task] = [("F", 0, i) for i in range(warm)]
    f, b = warm, 0
    while f < m:
        order.append(("F", 0, f))
        f += 1
        order.append(("B", 0, b))
        b += 1
    order += [("B", 0, i) for i in range(b, m)]
    return order


def interleaved(pp: int, vpp: int, m: int, stage: int) -> list[Task]:
    """Megatron-LM interleaved 1F1B: micro-batches in groups of pp, cycling over the vpp chunks."""
    total = m * vpp

    def fwd_id(k: int) -> Task:
        group, r = divmod(k, pp * vpp)
        return ("F", r // pp, group * pp + r % pp)

    def bwd_id(k: int) -> Task:
        group, r = divmod(k, pp * vpp)
        return ("B", vpp - 1 - r // pp, group * pp + r % pp)

    warm = min((pp - stage - 1) * 2 + (vpp - 1) * pp, total)
    order = [fwd_id(k) for k in range(warm)]
    f, b = warm, 0
    while f < total:
        order.append(fwd_id(f))
        f += 1
        order.append(bwd_id(b))
        b += 1
    order += [bwd_id(k) for k in range(b, total)]
    return order


def schedule(name: str, pp: int, vpp: int, m: int) -> list[list[Task]]:
    """Task order for every stage."""
    if name == "interleaved":
        return [interleaved(pp, vpp, m, s) for s in range(pp)]
    # "dualpipe" is run as 1F1B order with the paired F/B overlap the engine applies (see engine.des)
    return [one_f_one_b(pp, m, s) for s in range(pp)]


def dependency(task: Task, stage: int, pp: int, vpp: int) -> tuple[str, int, int, int] | None:
    """The (phase, stage, chunk, mb) a task waits for from another stage, or None."""
    ph, c, mb = task
    if ph == "F":
        if stage > 0:
            return ("F", stage - 1, c, mb)
        return ("F", pp - 1, c - 1, mb) if c > 0 else None
    if stage < pp - 1:
        return ("B", stage + 1, c, mb)
    return ("B", 0, c + 1, mb) if c < vpp - 1 else None
