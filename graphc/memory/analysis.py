"""Memory analysis: which values own storage, how long each lives, and the peak of live bytes.

Every intermediate is a slice of one preallocated arena. A view (reshape,
transpose, broadcast_to, slice) owns no storage: it aliases its base and keeps
it alive as long as the view is read. Liveness is measured in schedule steps;
a value lives from the step that writes it to the last step that reads it.

The lower bound is the largest sum of live bytes at any step of the schedule
(XLA's heap simulator calls it the no-fragmentation bound): no placement on
this schedule can use less. The schedule and the recompute stage compare
orders with it; :mod:`graphc.memory.placement` then gives each block its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

from graphc.dataflow import Dataflow
from graphc.ir import Aval, Node

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


def alias_analysis(flow: Dataflow) -> dict[Node, Node]:
    """For each node, the node that owns its storage: itself, unless it is a true view
    (its base's owner) or a writer (the param whose stored array it writes).

    A view whose op needs a C-contiguous operand (``Primitive.needs_contiguous``:
    reshape, which NumPy would otherwise copy) of a value that may not be
    C-contiguous is planned as a copy into storage of its own instead; each view
    op says whether it keeps contiguity (``Primitive.view_keeps_contiguous``).
    """
    owner: dict[Node, Node] = {}
    contiguous: dict[Node, bool] = {}
    writes = flow.writes
    for node in flow.nodes:
        if node in writes:
            owner[node] = writes[node]
            contiguous[node] = True
            continue
        op = node.op
        if op is not None and op.view:
            base = flow.args[node][0]
            if not op.needs_contiguous or contiguous[base]:
                owner[node] = owner[base]
                contiguous[node] = contiguous[base] and op.view_keeps_contiguous(base.aval, node.aval, node.attrs)
                continue
        owner[node] = node
        contiguous[node] = True
    return owner


def view_base(node: Node, flow: Dataflow, owner: dict[Node, Node]) -> Node:
    """The value a bound view reads (through any chain of views); ``node`` itself otherwise."""
    while node.is_view and owner[node] is not node:
        node = flow.args[node][0]
    return node


def runs_kernel(node: Node, owner: dict[Node, Node]) -> bool:
    """Whether the plan runs a kernel for ``node``: no source, and no view bound once on its base."""
    return not node.is_source and not (node.is_view and owner[node] is not node)


def old_value_readers(flow: Dataflow, owner: dict[Node, Node]) -> dict[Node, set[Node]]:
    """For each param a writer writes, the kernels that read its old value (directly or through views).

    Each must run before the writer; a writer reading its own param is not among them.
    """
    written = set(flow.writes.values())
    readers: dict[Node, set[Node]] = {p: set() for p in written}
    if not written:
        return readers
    writer_of = {p: w for w, p in flow.writes.items()}
    for node in flow.nodes:
        if not runs_kernel(node, owner):
            continue
        for operand in flow.args[node]:
            base = view_base(operand, flow, owner)
            if base in written and writer_of[base] is not node:
                readers[base].add(node)
    return readers


def reads_before_writes(flow: Dataflow, owner: dict[Node, Node]) -> dict[Node, list[Node]]:
    """For each writer, the kernels that must run before it: the reads of its param's old value."""
    readers = old_value_readers(flow, owner)
    return {w: sorted(readers[p], key=lambda n: n.id) for w, p in flow.writes.items()}


def is_copying_view(node: Node, storage: dict[Node, Node]) -> bool:
    """A view op that the plan runs as a copy (a reshape of a non-contiguous value)."""
    return node.is_view and storage[node] is node


def overlay_operands(flow: Dataflow, node: Node, view_owner: dict[Node, Node], pinned: set[Node]) -> list[Node]:
    """The operands whose storage ``node`` may be written into, whatever the order: ``node`` is an
    elementwise kernel and no output (``pinned``: the roots' storage), the operand has its shape and
    dtype, is no view, no source and no output, and no other operand reads it through a view
    (``x + x`` is fine, ``x + xᵀ`` is not). :func:`storage_assignment` takes the first of them
    read for the last time at the node's step."""
    if not node.op.elementwise or node in pinned:
        return []
    operands = flow.args[node]
    return [operand for operand in operands
            if view_owner[operand] is operand and not operand.is_source and operand not in pinned
            and operand.aval == node.aval
            and all(view_owner[other] is not operand or other is operand for other in operands)]


def storage_assignment(
    flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node], inplace: bool = True
) -> dict[Node, Node]:
    """For each node, the node whose storage holds its value, with in-place reuse.

    An elementwise op writes into the storage of the first of its
    :func:`overlay_operands` (its shape and dtype, no view, no source, no output,
    read through no other view) that is read for the last time at this step.
    An output is never written into an operand's storage: it is returned, so it
    has storage of its own outside the arena; a writer's storage is its param.

    An update's first step may also be written into its param (see
    :func:`_opens_its_update`): ``β·v`` of ``v ← β·v + (1-β)·g²`` then needs no
    arena copy of ``v``, as ``v.mul_(β).addcmul_(g, g)`` needs none in PyTorch.
    """
    last_read = value_last_reads(flow, order, view_owner)
    pinned = {view_owner[r] for r in flow.roots}
    opening = _update_openers(flow, order, view_owner) if inplace else {}
    storage: dict[Node, Node] = {}
    for step, node in enumerate(order):
        if view_owner[node] is not node:
            continue
        storage[node] = opening.get(node, node)
        if not inplace or node in opening:
            continue
        for operand in overlay_operands(flow, node, view_owner, pinned):
            if last_read[operand] == step and not storage[operand].is_source:
                storage[node] = storage[operand]
                break
    computed = {}
    sources = {}
    for node in flow.nodes:
        owner = view_owner[node]
        if owner.is_source:
            sources[node] = owner
        else:
            computed[node] = storage[owner]
    return computed | sources


def _update_openers(flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node]) -> dict[Node, Node]:
    """The nodes that open an update in its param's storage: node → the param.

    Such a node reads the param's old value directly (no view) as the last read
    of that value in ``order``, is elementwise of the param's shape and dtype, and
    is read by the param's writer alone, directly: it can overwrite the old value
    (no one reads it later) and its own value lives in the param's storage until
    the writer, reading it element by element, writes the new value over it. The
    writer must not read the old value itself as well (``w + w·x``: ``w·x`` written
    over ``w`` would leave the writer ``w·x + w·x``).
    """
    if not flow.writes:
        return {}
    step = {n: k for k, n in enumerate(order)}
    writer_of = {p: w for w, p in flow.writes.items()}
    users = flow.consumers()
    openers: dict[Node, Node] = {}
    for param, readers in old_value_readers(flow, view_owner).items():
        if not readers:
            continue
        last = max(readers, key=step.__getitem__)
        writer = writer_of[param]
        if (
            last.op.elementwise
            and view_owner[last] is last
            and last.aval == param.aval
            and param in flow.args[last]
            and all(a is param or view_base(a, flow, view_owner) is not param for a in flow.args[last])
            and users[last] == [writer]
            and last not in flow.writes
            and last not in flow.outputs
            and all(view_owner[a] is not last or a is last for a in flow.args[writer])
            and all(a is last or view_base(a, flow, view_owner) is not param for a in flow.args[writer])
        ):
            openers[last] = param
    return openers


def value_last_reads(flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node]) -> dict[Node, int]:
    """The last step that reads each owning value (through any of its views); roots are read at the end."""
    last: dict[Node, int] = {}
    args = flow.args
    for i, node in enumerate(order):  # steps only grow: the latest read is the last
        if node.is_view and view_owner[node] is not node:
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
    """The arena's storage intervals of a schedule: one per storage block, one per scratch.

    A block lives from the step that first writes it to the last step that
    reads any value it holds (values that share it in place come one after
    another). Sources, params written by updates and outputs (returned arrays,
    allocated per run) are outside the arena and have no interval.
    """
    args = flow.args
    outside = {storage[o] for o in flow.outputs}
    first: dict[Node, int] = {}
    last: dict[Node, int] = {}
    for step, node in enumerate(order):  # steps only grow: the latest touch is the last
        block = storage[node]
        if not (block.is_source or block in outside):
            if block not in first:
                first[block] = step
            last[block] = step
        if node.is_view and block is not node:
            continue  # a bound view reads nothing when the plan runs
        for operand in args[node]:
            other = storage[operand]
            if not (other.is_source or other in outside):
                last[other] = step
    intervals = [Interval(block, block.aval.nbytes, start, last[block]) for block, start in first.items()]
    if scratch:
        for step, node in enumerate(order):
            for k, aval in enumerate(scratch.get(node, ())):
                intervals.append(Interval((node, k), aval.nbytes, step, step))
    return intervals


def live_bytes_per_step(intervals: Sequence[Interval], steps: int) -> list[int]:
    """Σ bytes of the intervals live at each of ``steps`` steps (a difference array, then a prefix sum)."""
    delta = [0] * (steps + 1)
    for iv in intervals:
        delta[iv.start] += iv.nbytes
        delta[iv.end + 1] -= iv.nbytes
    live, running = [], 0
    for d in delta[:steps]:
        running += d
        live.append(running)
    return live


def node_scratch(flow: Dataflow, order: Sequence[Node]) -> dict[Node, list[Aval]]:
    """The temporaries each kernel declares (``Primitive.scratch``)."""
    return {n: n.op.scratch(*(a.aval for a in flow.args[n]), **n.attrs) for n in order if n.op.scratch}


def live_bytes(
    flow: Dataflow,
    order: Sequence[Node],
    view_owner: dict[Node, Node] | None = None,
    scratch: dict[Node, list[Aval]] | None = None,
) -> list[int]:
    """The bytes live at each step of a schedule (in-place reuse and scratch included).

    ``view_owner`` (:func:`alias_analysis`) and ``scratch`` (:func:`node_scratch`)
    depend on the flow alone: a caller comparing several orders passes them once.
    """
    view_owner = alias_analysis(flow) if view_owner is None else view_owner
    scratch = node_scratch(flow, order) if scratch is None else scratch
    storage = storage_assignment(flow, order, view_owner)
    return live_bytes_per_step(liveness(flow, order, storage, scratch), len(order))


def peak_live_bytes(
    flow: Dataflow,
    order: Sequence[Node],
    view_owner: dict[Node, Node] | None = None,
    scratch: dict[Node, list[Aval]] | None = None,
) -> int:
    """The lower bound of a schedule: the most bytes live at any one step (:func:`live_bytes`)."""
    return max(live_bytes(flow, order, view_owner, scratch), default=0)


def no_reuse_bytes(flow: Dataflow, order: Sequence[Node], view_owner: dict[Node, Node],
                   scratch: dict[Node, list[Aval]]) -> int:
    """The arena if every intermediate and scratch had aligned storage of its own.

    Without reuse each computed value that owns its storage is one block (views
    and writers own none, outputs are outside the arena), so no interval needs
    to be built to add them up.
    """
    outputs = set(flow.outputs)
    values = sum(align(node.aval.nbytes) for node in order if view_owner[node] is node and node not in outputs)
    return values + sum(align(aval.nbytes) for avals in scratch.values() for aval in avals)


