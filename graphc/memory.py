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

from dataclasses import dataclass, field
from typing import Hashable, Sequence

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


def is_copying_view(node: Node, owner: dict[Node, Node]) -> bool:
    """A view op that the plan runs as a copy (a reshape of a non-contiguous value)."""
    return node.op.view and owner[node] is node


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


def liveness(
    flow: Dataflow,
    order: Sequence[Node],
    owner: dict[Node, Node],
    scratch: dict[Node, list[Aval]],
) -> list[Interval]:
    """The storage intervals of a schedule: one per owning intermediate, one per scratch."""
    step = {node: i for i, node in enumerate(order)}
    end = len(order)  # the step that copies outputs out
    last_use: dict[Node, int] = {}
    for node in order:
        for operand in flow.args[node]:
            base = owner[operand]
            last_use[base] = max(last_use.get(base, -1), step[node])
    for root in flow.roots:
        last_use[owner[root]] = end
    intervals = []
    for node in order:
        if owner[node] is node:
            intervals.append(Interval(node, node.aval.nbytes, step[node], last_use.get(node, step[node])))
        for k, aval in enumerate(scratch.get(node, ())):
            intervals.append(Interval((node, k), aval.nbytes, step[node], step[node]))
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


def place_without_reuse(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Every block at its own aligned offset: the baseline every strategy must beat."""
    offsets, top = {}, 0
    for iv in intervals:
        offsets[iv.key] = top
        top += align(iv.nbytes)
    return offsets


def plan_memory(
    flow: Dataflow,
    order: Sequence[Node],
    owner: dict[Node, Node],
    scratch: dict[Node, list[Aval]],
) -> MemoryPlan:
    """Liveness, the lower bound and arena offsets for one schedule."""
    intervals = liveness(flow, order, owner, scratch)
    live = live_bytes_per_step(intervals, len(order))
    offsets = place_without_reuse(intervals)
    no_reuse = sum(align(iv.nbytes) for iv in intervals)
    sources = [n for n in flow.nodes if n.op.name in ("input", "param")]
    return MemoryPlan(
        offsets=offsets,
        intervals=intervals,
        planned_bytes=no_reuse,
        lower_bound_bytes=max(live, default=0),
        no_reuse_bytes=no_reuse,
        params_bytes=sum(n.aval.nbytes for n in sources if n.op.name == "param"),
        inputs_bytes=sum(n.aval.nbytes for n in sources if n.op.name == "input"),
        live_bytes=live,
    )
