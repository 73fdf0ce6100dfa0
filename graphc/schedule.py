"""Ordering: one topological order of the nodes a program computes, chosen for memory.

Sources (inputs, params, constants) are not scheduled: they are bound before
the first step. Two candidate orders are built and the one whose peak of live
bytes is lower is kept (ties go to creation order):

- creation order — forward in the order the user wrote it, then the adjoint
  pass in reverse topological order;
- a greedy list schedule that, among the ready nodes, runs the one that
  allocates the least net of what it frees (the last read of a value frees
  it), ties broken by creation order. It sums gradient terms as they arrive
  and frees activations as soon as their last gradient use has run.

Both are deterministic: the same graph always gives the same plan.
"""

from __future__ import annotations

import heapq

from graphc.ir import Node
from graphc.memory import alias_analysis, node_scratch, peak_live_bytes
from graphc.passes import Dataflow


def creation_order(flow: Dataflow) -> list[Node]:
    """The computed nodes of ``flow`` in its topological list order."""
    return [node for node in flow.nodes if not node.is_source]


def greedy_order(flow: Dataflow) -> list[Node]:
    """List scheduling by net allocation: min(bytes written − bytes freed), then position.

    A node's net only falls as the schedule goes on (a value it reads gets
    freed by it once every other reader has run), so a heap with a fresh entry
    pushed at each fall keeps the choice exact in O(n log n).
    """
    owner = alias_analysis(flow)
    computed = creation_order(flow)
    position = {n: i for i, n in enumerate(computed)}
    pinned = {owner[r] for r in flow.roots}
    users = flow.consumers()
    reads = _storages_read_by(computed, flow, owner)
    readers: dict[Node, list[Node]] = {}
    for node in computed:
        for base in reads[node]:
            readers.setdefault(base, []).append(node)
    remaining = {base: len(nodes) for base, nodes in readers.items()}
    waiting = {n: sum(1 for a in flow.args[n] if not a.op.source) for n in computed}
    allocates = {n: n.aval.nbytes if owner[n] is n else 0 for n in computed}
    frees = {base: 0 if base in pinned else base.aval.nbytes for base in readers}  # when its last reader runs
    done: set[Node] = set()

    def net(node: Node) -> int:
        return allocates[node] - sum(frees[b] for b in reads[node] if remaining[b] == 1)

    heap = [(net(n), position[n], n) for n in computed if waiting[n] == 0]
    heapq.heapify(heap)
    order: list[Node] = []
    while heap:
        priority, _, node = heapq.heappop(heap)
        if node in done or priority != net(node):
            continue  # a stale entry: a fresher one is in the heap
        done.add(node)
        order.append(node)
        for base in reads[node]:
            remaining[base] -= 1
            if remaining[base] == 1:
                last = next(r for r in readers[base] if r not in done)
                if waiting[last] == 0:
                    heapq.heappush(heap, (net(last), position[last], last))
        for user in users[node]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(heap, (net(user), position[user], user))
    return order


def _storages_read_by(computed: list[Node], flow: Dataflow, owner: dict[Node, Node]) -> dict[Node, frozenset[Node]]:
    """For each computed node, the storages its kernel reads (a bound view reads nothing itself)."""
    nothing: frozenset[Node] = frozenset()
    args = flow.args
    reads = {}
    for node in computed:
        if node.op.view and owner[node] is not node:
            reads[node] = nothing
        else:
            reads[node] = frozenset([base for base in map(owner.__getitem__, args[node]) if not base.op.source])
    return reads


def schedule(flow: Dataflow) -> list[Node]:
    """The lower-peak of the creation order and the greedy order."""
    first = creation_order(flow)
    second = greedy_order(flow)
    if second == first:
        return first
    owner, scratch = alias_analysis(flow), node_scratch(flow, first)
    return second if peak_live_bytes(flow, second, owner, scratch) < peak_live_bytes(flow, first, owner, scratch) else first
