"""Fusion: chains of elementwise nodes as one ``fused`` node (``compile(fuse=True)``).

Runs last, on the flow the other passes made (after the gradient, the running sums,
simplification and the writers of updates), so a fused node never needs a VJP. A
*group* is a root node and the nodes it absorbs: an operand is absorbed when its op
has a ``fused_expr`` (graphc's attribute-free elementwise arithmetic), it is no root of
the flow (an output or a writer), it plays the root's role in the step (forward,
backward, update: the plan's tags stay true), and every node that reads it is in the
group already. Candidates are taken latest first, so a node is decided after all its
readers. A group of two nodes or more becomes one node of the op
:data:`~graphc.ops.fused.fused`, in the root's place, reading the group's operands
(``a0, a1, …``, broadcast as the unfused ops broadcast them), with the FLOPs of the
nodes it replaces. The intermediates of a group never exist: no buffer, no instruction.

Writers (a param's new value, written in place) are left alone, so an update's own
rules (:mod:`~graphc.passes.updates`) hold unchanged; the chain that computes the
value they write is fused. The remat stage, which runs after this pass, sees a fused
node as one node (recomputing it evaluates the whole expression again) and the memory
planner as one elementwise op.
"""

from __future__ import annotations

import heapq

from graphc.dataflow import Dataflow
from graphc.ir import FLOAT_DTYPES, Node
from graphc.ops.fused import fused as fused_op

MAX_OPERANDS = 16
"""The most operands one fused node reads (numexpr allows a few dozen); a larger group is left unfused."""

MAX_EXPRESSION = 4000
"""The longest expression, in characters, that one fused node evaluates; a larger group is left unfused."""


def _fusable(node: Node) -> bool:
    return (not node.is_source and node.op.fused_expr is not None and not node.attrs
            and node.dtype in FLOAT_DTYPES and not node.aval.has_batch)


def fuse(flow: Dataflow) -> Dataflow:
    """``flow`` with each maximal fusable chain replaced by one ``fused`` node (see the module's doc)."""
    users = flow.consumers()
    roles = flow.roles()
    position = {n: i for i, n in enumerate(flow.nodes)}
    roots = set(flow.roots)
    taken: set[Node] = set()
    groups: dict[Node, tuple[list[Node], str, int]] = {}  # root -> (operands, expression, flops)
    for root in reversed(flow.nodes):
        if root in taken or not _fusable(root) or root in flow.writes:
            continue
        members = {root}
        heap = [(-position[a], a.id, a) for a in set(flow.args[root])]
        heapq.heapify(heap)
        queued = set(flow.args[root])
        while heap:
            _, _, node = heapq.heappop(heap)
            if (node in taken or node in roots or not _fusable(node) or roles.get(node) != roles[root]
                    or not all(u in members for u in users[node])):
                continue
            members.add(node)
            for a in flow.args[node]:
                if a not in queued:
                    queued.add(a)
                    heapq.heappush(heap, (-position[a], a.id, a))
        if len(members) < 2:
            continue
        group = _expression(root, members, flow, position)
        if group is None:
            continue
        taken |= members
        groups[root] = group
    if not groups:
        return flow
    replaced: dict[Node, Node] = {}
    nodes: list[Node] = []
    args: dict[Node, tuple[Node, ...]] = {}
    for node in flow.nodes:
        if node in taken and node not in groups:
            continue
        if node in groups:
            operands, expr, flops = groups[node]
            node_args = tuple([replaced.get(a, a) for a in operands])
            made = flow.instance(node, node_args, op=fused_op, attrs={"expr": expr, "flops": flops}, aval=node.aval)
            replaced[node] = made
            node = made
        else:
            node_args = tuple([replaced.get(a, a) for a in flow.args[node]])
        nodes.append(node)
        args[node] = node_args
    return flow.derive(nodes, args, [replaced.get(r, r) for r in flow.roots])


def _expression(root: Node, members: set[Node], flow: Dataflow, position: dict[Node, int]) -> tuple[list[Node], str, int] | None:
    """(operands, numexpr expression over a0, a1, …, FLOPs) of the group, or None when it is too large."""
    operands: list[Node] = []
    names: dict[Node, str] = {}
    text: dict[Node, str] = {}
    flops = 0
    for node in sorted(members, key=position.__getitem__):  # topological: operands written before readers
        parts = []
        for a in flow.args[node]:
            if a in members:
                parts.append(text[a])
            else:
                if a not in names:
                    names[a] = f"a{len(operands)}"
                    operands.append(a)
                parts.append(names[a])
        text[node] = node.op.fused_expr.format(*parts)
        flops += int(node.op.flops([a.aval for a in flow.args[node]], node.aval, **node.attrs))
        if len(text[node]) > MAX_EXPRESSION:
            return None
    if len(operands) > MAX_OPERANDS:
        return None
    return operands, text[root], flops
