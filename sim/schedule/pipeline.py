"""Pipeline schedules: the order in which each stage runs its tasks.

A task is ``(phase, chunk, microbatch)``. Phases: "F" forward; "B" full backward (weight
gradients inline); "b" input-gradient backward only (zero-bubble split); "W" the deferred weight
gradients of an earlier "b". A schedule gives each stage a list of *slots*; a slot is a tuple of
one task, or of two tasks that run side by side (one micro-batch's forward beside another's
backward, so each one's communication hides behind the other's compute: Megatron's 1F1B
all-to-all overlap, DeepSeek-V3's DualPipe).

Micro-batch numbers count per chunk direction: in 1F1B and interleaved every chunk sees
micro-batches 0..m-1; in DualPipe chunk 0 carries micro-batches 0..m/2-1 down the pipeline and
chunk 1 carries the other m/2 up it.
"""

from __future__ import annotations

Task = tuple[str, int, int]
Slot = tuple[Task, ...]


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


def pair_steady_state(order: list[Task]) -> list[Slot]:
    """Megatron 1F1B a2a overlap: each steady-state forward runs beside the next backward."""
    slots: list[Slot] = []
    i = 0
    while i < len(order):
        t = order[i]
        nxt = order[i + 1] if i + 1 < len(order) else None
        if nxt is not None and t[0] == "F" and nxt[0] == "B" and t[1:] != nxt[1:]:
            slots.append((t, nxt))
            i += 2
        else:
            slots.append((t,))
            i += 1
    return slots


Op = tuple    # ("recv", task) | ("send", task) | ("commit",) | ("run", slot)


def dualpipe_ops(pp: int, m: int, rank: int) -> list[Op]:
    """DualPipe (DeepSeek-V3 report sec. 3.2.1) as its reference implementation issues it
    (deepseek-ai/DualPipe, dualpipe/dualpipe.py): rank r holds model stage r as chunk 0
    (micro-batches flowing down) and stage pp-1-r as chunk 1 (flowing up). The eight phases, counted
    by the rank's distance h from the nearer pipeline end: nF0, nF0F1, nB1W1F1, nF0B1F1B0 (main,
    forward/backward pairs), nB1F1B0, nB1B0, nWB0, nW. "0" is the chunk whose pipeline starts at the
    rank's own end. Zero-bubble backwards ("b") defer their weight gradients to a later W.

    Point-to-point traffic is explicit, as the implementation batches it: ("recv", task) queues the
    receive of a task's input (an activation for "F", a gradient for "B"), ("send", task) queues the
    send of a task's output, and ("commit",) posts everything queued as one NCCL group and waits for
    all of it before the next compute. A send therefore completes only once the neighbour has posted
    the matching receive (NCCL p2p calls block until their group completes). The order of queues and
    commits, including the receives posted ahead of time (the next forward's input during nF0F1 and
    nB1W1F1) and the middle ranks' unpaired first main-phase pair, follows the implementation.
    """
    half_pp, half_m = pp // 2, m // 2
    h = min(rank, pp - 1 - rank)
    middle = h == half_pp - 1
    chunk_of = (0, 1) if rank < half_pp else (1, 0)     # phase 0: the chunk starting at the rank's own end
    nxt = {k: [0, 0] for k in ("F", "B", "rf", "rb", "sf", "sb")}
    nw: list[Task] = []                                  # deferred weight-gradient tasks, oldest first
    ops: list[Op] = []

    def first(c: int) -> bool:                           # the rank is this chunk's first pipeline stage
        return rank == (0 if c == 0 else pp - 1)

    def last(c: int) -> bool:
        return rank == (pp - 1 if c == 0 else 0)

    def take(kind: str, c: int) -> int:
        nxt[kind][c] += 1
        return nxt[kind][c] - 1

    def recv_f(p: int):
        c = chunk_of[p]
        if not first(c):
            ops.append(("recv", ("F", c, take("rf", c))))

    def recv_b(p: int):
        c = chunk_of[p]
        if not last(c):
            ops.append(("recv", ("B", c, take("rb", c))))

    def send_f(p: int):
        c = chunk_of[p]
        if not last(c):
            ops.append(("send", ("F", c, take("sf", c))))

    def send_b(p: int):
        c = chunk_of[p]
        if not first(c):
            ops.append(("send", ("B", c, take("sb", c))))

    def F(p: int) -> Task:
        c = chunk_of[p]
        return ("F", c, take("F", c))

    def B(p: int, zb: bool = False) -> Task:
        c = chunk_of[p]
        mb = take("B", c)
        if zb:
            nw.append(("W", c, mb))
            return ("b", c, mb)
        return ("B", c, mb)

    def fwd(p: int, recv: bool = True, send: bool = True):
        if recv:
            recv_f(p)
        ops.append(("commit",))
        ops.append(("run", (F(p),)))
        if send:
            send_f(p)

    def bwd(p: int, zb: bool = False, recv: bool = True, send: bool = True):
        if recv:
            recv_b(p)
        ops.append(("commit",))
        ops.append(("run", (B(p, zb),)))
        if send:
            send_b(p)

    def fwd_bwd(p0: int, p1: int, recv0: bool = True):
        if recv0:
            recv_f(p0)
        recv_b(p1)
        ops.append(("commit",))
        ops.append(("run", (F(p0), B(p1))))
        send_f(p0)
        send_b(p1)

    def weight():
        ops.append(("commit",))
        ops.append(("run", (nw.pop(0),)))

    for _ in range((half_pp - h - 1) * 2):                 # 1: nF0
        fwd(0)
    recv_f(0)                                               # 2: nF0F1, each next forward's input ahead
    for i in range(h + 1):
        fwd(0, recv=False, send=middle)
        recv_f(0)
        fwd(1, send=not middle or i < h)
        if not middle:
            send_f(0)
    for _ in range(half_pp - h - 1):                        # 3: nB1W1F1 (zero bubble)
        bwd(1, zb=True)
        recv_f(1)
        weight()
        fwd(1, recv=False)
    for i in range(half_m - pp + h + 1):                    # 4: nF0B1F1B0, overlapped pairs
        if i == 0 and middle:                               # the implementation runs this pair apart
            fwd(0, recv=False, send=False)
            send_f(1)
            bwd(1, send=False)
            send_f(0)
            send_b(1)
        else:
            fwd_bwd(0, 1, recv0=i != 0)
        fwd_bwd(1, 0)
    for _ in range(half_pp - h - 1):                        # 5: nB1F1B0
        bwd(1)
        fwd_bwd(1, 0)
    k = 0
    for _ in range(h + 1):                                  # 6: nB1B0, the second half zero bubble
        bwd(1, zb=k >= h + 1)
        k += 1
        bwd(0, zb=k >= h + 1)
        k += 1
    for _ in range(half_pp - h - 1):                        # 7: nWB0
        weight()
        bwd(0, zb=True)
    while nw:                                               # 8: nW
        weight()
    ops.append(("commit",))
    return ops


def dualpipe(pp: int, m: int, rank: int) -> list[Slot]:
    """The compute slots of ``dualpipe_ops``, in order."""
    return [op[1] for op in dualpipe_ops(pp, m, rank) if op[0] == "run"]


def schedule(name: str, pp: int, vpp: int, m: int, overlap: bool = False) -> list[list[Slot]]:
    """Slots for every stage. overlap: pair steady-state forwards and backwards (1F1B a2a overlap)."""
    if name == "dualpipe":
        return [dualpipe(pp, m, s) for s in range(pp)]
    if name == "interleaved":
        orders = [interleaved(pp, vpp, m, s) for s in range(pp)]
    else:
        orders = [one_f_one_b(pp, m, s) for s in range(pp)]
    if overlap:
        return [pair_steady_state(o) for o in orders]
    return [[(t,) for t in o] for o in orders]


def microbatches_per_chunk(name: str, m: int) -> int:
    return m // 2 if name == "dualpipe" else m


def model_stage(name: str, pp: int, stage: int, chunk: int) -> tuple[int, int]:
    """(model stage, chunk index in the program tables) that a rank's chunk runs."""
    if name == "dualpipe":
        return (stage, 0) if chunk == 0 else (pp - 1 - stage, 0)
    return stage, chunk


def dependency(task: Task, stage: int, pp: int, vpp: int, name: str = "1f1b") -> tuple[str, int, int, int] | None:
    """The (phase, stage, chunk, mb) a task waits for from another stage, or None.

    Backward keys use phase "B" whether the producer ran a full or a zero-bubble backward.
    """
    ph, c, mb = task
    if ph == "W":
        return None
    if name == "dualpipe":
        down = c == 0                         # chunk 0 flows to higher ranks, chunk 1 to lower
        prev, nxt = (stage - 1, stage + 1) if down else (stage + 1, stage - 1)
        if ph == "F":
            return ("F", prev, c, mb) if 0 <= prev < pp else None
        return ("B", nxt, c, mb) if 0 <= nxt < pp else ("F", stage, c, mb)
    if ph == "F":
        if stage > 0:
            return ("F", stage - 1, c, mb)
        return ("F", pp - 1, c - 1, mb) if c > 0 else None
    if stage < pp - 1:
        return ("B", stage + 1, c, mb)
    return ("B", 0, c + 1, mb) if c < vpp - 1 else ("F", stage, c, mb)


def has_consumer(phase: str, stage: int, chunk: int, pp: int, vpp: int, name: str = "1f1b") -> bool:
    """Whether a task's output (activation or gradient) goes to another stage."""
    if phase == "W":
        return False
    if name == "dualpipe":
        down = chunk == 0
        if phase == "F":
            return stage < pp - 1 if down else stage > 0
        return stage > 0 if down else stage < pp - 1
    if phase == "F":
        return not (stage == pp - 1 and chunk == vpp - 1)
    return not (stage == 0 and chunk == 0)
