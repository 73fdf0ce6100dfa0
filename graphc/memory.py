"""Memory: which values own storage, how long each lives, and where it sits in one arena.

Every intermediate is a slice of one preallocated arena. A view (reshape,
transpose, broadcast_to, slice) owns no storage: it aliases its base and keeps
it alive as long as the view is read. Liveness is measured in schedule steps;
a value lives from the step that writes it to the last step that reads it, and
outputs live to the end of the run (they are copied out then).

The lower bound is the largest sum of live bytes at any step of the schedule
(XLA's heap simulator calls it the no-fragmentation bound): no placement on
this schedule can use less.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np

from graphc.ir import Aval, Node
from graphc.passes import Dataflow

ALIGNMENT = 64


def align(nbytes: int, alignment: int = ALIGNMENT) -> int:
    return -(-nbytes // alignment) * alignment


@dataclass(frozen=True)
class Interval:
    """A block of storage: ``nbytes`` live from step ``start`` to step ``end`` (inclusive)."""

    key: Hashable
    nbytes: int
    start: int
    end: int


def _keeps_contiguity(node: Node) -> bool:
    """Whether a view of a C-contiguous array is itself C-contiguous (conservatively)."""
    op, attrs = node.op.name, node.attrs
    if op == "reshape":
        return True
    if op == "transpose":
        moved = [a for a in attrs["axes"] if node.inputs[0].shape[a] != 1]
        return moved == sorted(moved)
    if op == "broadcast_to":
        return node.shape == node.inputs[0].shape
    if op == "slice_axis":
        return all(d == 1 for d in node.inputs[0].shape[: attrs["axis"]])
    return False


def alias_analysis(flow: Dataflow) -> dict[Node, Node]:
    """For each node, the node that owns its storage (itself unless it is a true view).

    A reshape of a value that may not be C-contiguous would make NumPy copy;
    such a reshape is planned as a copy into storage of its own instead.
    """
    owner: dict[Node, Node] = {}
    contiguous: dict[Node, bool] = {}
    for node in flow.nodes:
        if node.op.view:
            base = flow.args[node][0]
            if node.op.name != "reshape" or contiguous[base]:
                owner[node] = owner[base]
                contiguous[node] = contiguous[base] and _keeps_contiguity(node)
                continue
        owner[node] = node
        contiguous[node] = True
    return owner


def is_copying_view(node: Node, storage: dict[Node, Node]) -> bool:
    """A view op that the plan runs as a copy (a reshape of a non-contiguous value)."""
    return node.op.view and storage[node] is node


@dataclass
class MemoryPlan:
    """Where every intermediate lives, and the figures that judge the placement.

    - ``planned_bytes``: the arena that holds every intermediate and scratch;
    - ``lower_bound_bytes``: max over steps of the bytes live at that step;
    - ``no_reuse_bytes``: the arena if nothing shared storage;
    - ``params_bytes`` / ``inputs_bytes``: the program's copies of params and feeds;
    - ``live_bytes``: bytes live at each step of the schedule.
    """

    offsets: dict[Hashable, int]
    intervals: list[Interval]
    planned_bytes: int
    lower_bound_bytes: int
    no_reuse_bytes: int
    params_bytes: int
    inputs_bytes: int
    live_bytes: list[int] = field(repr=False)
    strategy: str = "no-reuse"
    strategy_bytes: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        def mib(n: int) -> str:
            return f"{n:>12,d} B  ({n / 2**20:8.3f} MiB)"

        ratio = self.planned_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0
        lines = [
            f"memory plan ({self.strategy}, {len(self.intervals)} blocks, {len(self.live_bytes)} steps)",
            f"  arena (planned)    {mib(self.planned_bytes)}",
            f"  lower bound        {mib(self.lower_bound_bytes)}   planned/LB = {ratio:.3f}",
            f"  without reuse      {mib(self.no_reuse_bytes)}",
            f"  params             {mib(self.params_bytes)}",
            f"  inputs             {mib(self.inputs_bytes)}",
        ]
        return "\n".join(lines)


def storage_assignment(
    flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node], inplace: bool = True
) -> dict[Node, Node]:
    """For each node, the node whose storage holds its value, with in-place reuse.

    An elementwise op writes into an operand's storage when that operand is
    read for the last time at this step, has the op's shape and dtype, is no
    view and no source, is not an output, and no other operand reads the same
    storage through a different view (``x + x`` is fine, ``x + xᵀ`` is not).
    """
    last_read = value_last_reads(flow, order, view_owner)
    pinned = {view_owner[r] for r in flow.roots}
    args = flow.args
    storage: dict[Node, Node] = {}
    for step, node in enumerate(order):
        if view_owner[node] is not node:
            continue
        storage[node] = node
        if not (inplace and node.op.elementwise):
            continue
        operands = args[node]
        for operand in operands:
            if (
                view_owner[operand] is operand
                and last_read[operand] == step
                and not operand.op.source
                and operand not in pinned
                and operand.aval == node.aval
                and all(view_owner[other] is not operand or other is operand for other in operands)
            ):
                storage[node] = storage[operand]
                break
    computed = {}
    sources = {}
    for node in flow.nodes:
        owner = view_owner[node]
        if owner.op.source:
            sources[node] = owner
        else:
            computed[node] = storage[owner]
    return computed | sources


def value_last_reads(flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node]) -> dict[Node, int]:
    """The last step that reads each owning value (through any of its views); outputs read at the end."""
    last: dict[Node, int] = {}
    args = flow.args
    for i, node in enumerate(order):  # steps only grow: the latest read is the last
        if node.op.view and view_owner[node] is not node:
            continue  # a bound view reads nothing when the plan runs
        for operand in args[node]:
            last[view_owner[operand]] = i
    for root in flow.roots:
        last[view_owner[root]] = len(order)
    return last


def liveness(
    flow: Dataflow,
    order: Sequence[Node],
    storage: dict[Node, Node],
    scratch: dict[Node, list[Aval]],
) -> list[Interval]:
    """The storage intervals of a schedule: one per storage block, one per scratch.

    A block lives from the step that first writes it to the last step that
    reads any value it holds (values that share it in place come one after
    another). Outputs live to the end of the run, when they are copied out.
    """
    end = len(order)
    args = flow.args
    first: dict[Node, int] = {}
    last: dict[Node, int] = {}
    for step, node in enumerate(order):  # steps only grow: the latest touch is the last
        block = storage[node]
        if block.op.source:
            continue
        if block not in first:
            first[block] = step
        last[block] = step
        if node.op.view and block is not node:
            continue
        for operand in args[node]:
            other = storage[operand]
            if not other.op.source:
                last[other] = step
    for root in flow.roots:
        if not storage[root].op.source:
            last[storage[root]] = end
    intervals = [Interval(block, block.aval.nbytes, start, last[block]) for block, start in first.items()]
    if scratch:
        for step, node in enumerate(order):
            for k, aval in enumerate(scratch.get(node, ())):
                intervals.append(Interval((node, k), aval.nbytes, step, step))
    return intervals


def live_bytes_per_step(intervals: Sequence[Interval], steps: int) -> list[int]:
    """Σ bytes of the intervals live at each step (a difference array, then a prefix sum)."""
    delta = [0] * (steps + 2)
    for iv in intervals:
        delta[iv.start] += iv.nbytes
        delta[iv.end + 1] -= iv.nbytes
    live, running = [], 0
    for d in delta[: steps + 1]:
        running += d
        live.append(running)
    return live


def node_scratch(flow: Dataflow, order: Sequence[Node]) -> dict[Node, list[Aval]]:
    """The temporaries each kernel declares (``Primitive.scratch``)."""
    return {n: n.op.scratch(*(a.aval for a in flow.args[n]), **n.attrs) for n in order if n.op.scratch}


def peak_live_bytes(
    flow: Dataflow,
    order: Sequence[Node],
    view_owner: dict[Node, Node] | None = None,
    scratch: dict[Node, list[Aval]] | None = None,
) -> int:
    """The lower bound of a schedule: the most bytes live at any one step.

    ``view_owner`` (:func:`alias_analysis`) and ``scratch`` (:func:`node_scratch`)
    depend on the flow alone: a caller comparing several orders passes them once.
    """
    view_owner = alias_analysis(flow) if view_owner is None else view_owner
    scratch = node_scratch(flow, order) if scratch is None else scratch
    storage = storage_assignment(flow, order, view_owner)
    intervals = liveness(flow, order, storage, scratch)
    return max(live_bytes_per_step(intervals, len(order)), default=0)


def no_reuse_bytes(order: Sequence[Node], view_owner: dict[Node, Node], scratch: dict[Node, list[Aval]]) -> int:
    """The arena if every value and scratch had aligned storage of its own.

    Without reuse each computed value that owns its storage is one block (views
    own none), so no interval needs to be built to add them up.
    """
    values = sum(align(node.aval.nbytes) for node in order if view_owner[node] is node)
    return values + sum(align(aval.nbytes) for avals in scratch.values() for aval in avals)


# --- placement in the arena ----------------------------------------------------------


class _Placed:
    """Blocks placed so far, as arrays sorted by offset, so the time-overlap query is vectorised.

    Blocks at the same offset stay in the order they were added.
    """

    def __init__(self, capacity: int) -> None:
        self.start = np.empty(capacity, np.int64)
        self.end = np.empty(capacity, np.int64)
        self.offset = np.empty(capacity, np.int64)
        self.size = np.empty(capacity, np.int64)
        self.count = 0

    def add(self, iv: Interval, offset: int) -> None:
        k = self.count
        at = int(np.searchsorted(self.offset[:k], offset, side="right"))
        for column in (self.start, self.end, self.offset, self.size):
            column[at + 1: k + 1] = column[at:k]
        self.start[at], self.end[at], self.offset[at], self.size[at] = iv.start, iv.end, offset, align(iv.nbytes)
        self.count += 1

    def fit(self, iv: Interval, best: bool) -> int:
        """The offset for ``iv``: the lowest (first fit) or the tightest (best fit) gap
        among the blocks live at the same time, else the top of those blocks."""
        k = self.count
        live = np.flatnonzero((self.start[:k] <= iv.end) & (self.end[:k] >= iv.start))  # by offset
        if live.size == 0:
            return 0
        offsets = self.offset[live]
        ends = offsets + self.size[live]
        tops = np.maximum.accumulate(np.concatenate(([0], ends)))  # tops[i]: highest end below block i
        gaps = offsets - tops[:-1]
        fits = np.flatnonzero(gaps >= align(iv.nbytes))
        if fits.size == 0:
            return int(tops[-1])
        chosen = fits[np.argmin(gaps[fits])] if best else fits[0]
        return int(tops[chosen])


def _place(intervals: Sequence[Interval], key, best: bool) -> dict[Hashable, int]:
    placed = _Placed(len(intervals))
    offsets = {}
    for iv in sorted(intervals, key=key):
        offsets[iv.key] = placed.fit(iv, best)
        placed.add(iv, offsets[iv.key])
    return offsets


def greedy_by_size(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Largest blocks first (longer-lived first among equals), each into the tightest gap
    that fits (Pisarchyk & Lee 2020; TFLite's planner).

    Each block is checked against every block placed before it: quadratic in the
    number of blocks, which is why ``"auto"`` leaves it out of large plans
    (:data:`GREEDY_BY_SIZE_MAX_BLOCKS`).
    """
    return _place(intervals, key=lambda iv: (-iv.nbytes, iv.start - iv.end, iv.start), best=True)


def _by_start(iv: Interval) -> tuple[int, int, int]:
    return (iv.start, -iv.nbytes, iv.end)


def best_fit_by_start(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Blocks in the order they come alive, each into the tightest gap that fits."""
    return _place_by_start(intervals, best=True)


def first_fit_by_start(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Blocks in the order they come alive, each at the lowest offset that fits (a heap simulator)."""
    return _place_by_start(intervals, best=False)


_HEAD = -1  # the sentinel below every block of the sweep: it ends at offset 0


def _place_by_start(intervals: Sequence[Interval], best: bool) -> dict[Hashable, int]:
    """The offsets :meth:`_Placed.fit` gives blocks taken in the order they come alive, by a sweep.

    Taken by start, the placed blocks that overlap a new block in time are
    those still alive at its start: they are live together, so no two of them
    share a byte, and the gaps between them (sorted by offset) are the free
    holes of the arena. The sweep keeps those blocks in a list linked by
    offset, retires a block when the sweep passes its last step (a heap by
    end), and keeps the positive holes sorted by offset and by size. A block
    then takes the lowest hole that fits (first fit) or the smallest, lowest
    among equals (best fit), else the top of the live blocks — the choice
    ``_Placed.fit`` makes by scanning every placed block, without the scan.
    Blocks of zero bytes would sit between others, so a plan with one takes
    that scan instead.
    """
    order = sorted(intervals, key=_by_start)
    need = [align(iv.nbytes) for iv in order]
    if not all(need):
        return _place(intervals, key=_by_start, best=best)
    offset = [0] * len(order)
    end = [0] * len(order)  # offset + aligned size
    after: dict[int, int | None] = {_HEAD: None}  # the next live block up, by offset
    before: dict[int, int] = {}
    hole_size: dict[int, int] = {}  # the positive hole above a live block (or above offset 0)
    starts: list[int] = []  # the holes' offsets, ascending
    sizes: list[tuple[int, int]] = []  # the holes as (size, offset), ascending
    at_offset: dict[int, int] = {}  # a hole's offset -> the block below it
    retiring: list[tuple[int, int]] = []  # (last step, block) of the live blocks
    top_block = _HEAD

    def base(block: int) -> int:
        return 0 if block == _HEAD else end[block]

    def open_hole(below: int, size: int) -> None:
        if size > 0:
            hole_size[below] = size
            at = base(below)
            at_offset[at] = below
            bisect.insort(starts, at)
            bisect.insort(sizes, (size, at))

    def close_hole(below: int) -> None:
        size = hole_size.pop(below, 0)
        if size:
            at = base(below)
            del at_offset[at]
            del starts[bisect.bisect_left(starts, at)]
            del sizes[bisect.bisect_left(sizes, (size, at))]

    def retire(block: int) -> None:
        nonlocal top_block
        low, high = before.pop(block), after.pop(block)
        close_hole(low)
        close_hole(block)
        after[low] = high
        if high is None:
            top_block = low
        else:
            before[high] = low
            open_hole(low, offset[high] - base(low))

    def choose(size: int) -> int | None:
        """The block below the hole the new block takes, or None for the top."""
        if best:
            k = bisect.bisect_left(sizes, (size, -1))
            return at_offset[sizes[k][1]] if k < len(sizes) else None
        for at in starts:
            if hole_size[at_offset[at]] >= size:
                return at_offset[at]
        return None

    offsets = {}
    for k, iv in enumerate(order):
        while retiring and retiring[0][0] < iv.start:
            retire(heapq.heappop(retiring)[1])
        low = choose(need[k])
        if low is None:
            low, high = top_block, None
            top_block = k
        else:
            high = after[low]
            room = hole_size[low]
            close_hole(low)
        offset[k] = base(low)
        end[k] = offset[k] + need[k]
        after[low], before[k], after[k] = k, low, high
        if high is not None:
            before[high] = k
            open_hole(k, room - need[k])
        heapq.heappush(retiring, (iv.end, k))
        offsets[iv.key] = offset[k]
    return offsets


def place_without_reuse(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Every block at its own aligned offset: the baseline every strategy must beat."""
    offsets, top = {}, 0
    for iv in intervals:
        offsets[iv.key] = top
        top += align(iv.nbytes)
    return offsets


STRATEGIES = {
    "greedy-by-size": greedy_by_size,
    "best-fit-by-start": best_fit_by_start,
    "first-fit-by-start": first_fit_by_start,
    "no-reuse": place_without_reuse,
}


def arena_bytes(intervals: Sequence[Interval], offsets: dict[Hashable, int]) -> int:
    """The arena ends at the last byte of its highest block (blocks start aligned; ends need not)."""
    return max((offsets[iv.key] + iv.nbytes for iv in intervals), default=0)


MEMORY_MODES = ("auto", "greedy-by-size", "best-fit-by-start", "first-fit-by-start", "no-reuse")

GREEDY_BY_SIZE_MAX_BLOCKS = 10_000
"""``"auto"`` tries greedy-by-size only on plans of at most this many blocks.

Greedy-by-size compares each block with every block placed before it, so its
time grows with the square of the blocks (about a second at 10,000 blocks,
ten at 30,000), while the two by-start strategies are a sweep (a fraction of a
second at 10⁵ blocks). Above the limit ``"auto"`` keeps the smaller of the
by-start placements; ``memory="greedy-by-size"`` still runs it at any size.
"""


def auto_strategies(blocks: int) -> list[str]:
    """The placement strategies ``"auto"`` tries on a plan of ``blocks`` blocks."""
    by_start = ["best-fit-by-start", "first-fit-by-start"]
    return by_start if blocks > GREEDY_BY_SIZE_MAX_BLOCKS else ["greedy-by-size", *by_start]


def plan_memory(
    flow: Dataflow, order: Sequence[Node], mode: str = "auto"
) -> tuple[MemoryPlan, dict[Node, Node], dict[Node, list[Aval]]]:
    """Liveness, in-place reuse and arena offsets for one schedule.

    ``mode`` ``"auto"`` places the blocks with every strategy and keeps the
    smallest arena (ExecuTorch does the same; greedy-by-size only up to
    :data:`GREEDY_BY_SIZE_MAX_BLOCKS` blocks); a strategy's name uses that one
    alone; ``"no-reuse"`` gives every value storage of its own (no in-place,
    no sharing), the baseline the others are measured against. Returns the
    plan, the storage of each node and each node's scratch.
    """
    view_owner = alias_analysis(flow)
    scratch = node_scratch(flow, order)
    if mode == "no-reuse":
        storage = storage_assignment(flow, order, view_owner, inplace=False)
        intervals, strategies = liveness(flow, order, storage, scratch), ["no-reuse"]
    else:
        storage = storage_assignment(flow, order, view_owner)
        intervals = liveness(flow, order, storage, scratch)
        strategies = auto_strategies(len(intervals)) if mode == "auto" else [mode]
    live = live_bytes_per_step(intervals, len(order))
    sizes, best = {}, None
    for name in strategies:
        offsets = STRATEGIES[name](intervals)
        sizes[name] = arena_bytes(intervals, offsets)
        if best is None or sizes[name] < sizes[best[0]]:
            best = (name, offsets)
    sources = [n for n in flow.nodes if n.op.name in ("input", "param")]
    plan = MemoryPlan(
        offsets=best[1],
        intervals=intervals,
        planned_bytes=sizes[best[0]],
        lower_bound_bytes=max(live, default=0),
        no_reuse_bytes=no_reuse_bytes(order, view_owner, scratch),
        params_bytes=sum(n.aval.nbytes for n in sources if n.op.name == "param"),
        inputs_bytes=sum(n.aval.nbytes for n in sources if n.op.name == "input"),
        live_bytes=live,
        strategy=best[0],
        strategy_bytes=sizes,
    )
    return plan, storage, scratch
