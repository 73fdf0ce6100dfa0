"""Ordering: one topological order of the nodes a program computes, chosen for memory.

Sources (inputs, params, constants) are not scheduled: they are bound before
the first step. Every order runs a writer (a node writing a param's stored
array: an update) after every read of the param's old value — recomputed
reads included — and as soon as that and its operands allow. Two candidate
orders are built and the one whose peak of live bytes is lower is kept (ties
go to creation order):

- creation order — forward in the order the user wrote it, then the adjoint
  pass in reverse topological order, each update's arithmetic and writer as
  soon as they are ready;
- a greedy list schedule that, among the ready nodes, runs the one that
  allocates the least net of what it frees (the last read of a value frees
  it), ties broken by creation order. It sums gradient terms as they arrive
  and frees activations as soon as their last gradient use has run.

The order kept then has its peak lowered by deferring nodes run just before it
past it (:func:`lower_peak`). All of this is deterministic: the same graph
always gives the same plan.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from graphc.ir import Node
from graphc.dataflow import Dataflow
from graphc.memory.analysis import alias_analysis, live_bytes, node_scratch, reads_before_writes, runs_kernel


@dataclass(frozen=True)
class Constraints:
    """What every order of a flow must respect, computed once for both candidate orders:
    ``successors[n]`` wait for n, n waits for ``waiting[n]`` nodes (a count to copy), and
    ``arithmetic`` are the nodes of the updates' arithmetic, which run first when ready."""

    successors: dict[Node, list[Node]]
    waiting: dict[Node, int]
    arithmetic: frozenset[Node]


def constraints(flow: Dataflow) -> Constraints:
    """The :class:`Constraints` of ``flow`` (see :func:`_dependencies`)."""
    computed = [node for node in flow.nodes if not node.is_source]
    arithmetic, deferred = _update_arithmetic(flow)
    successors, waiting = _dependencies(flow, computed, deferred)
    return Constraints(successors, waiting, frozenset(arithmetic))


def creation_order(flow: Dataflow, given: Constraints | None = None) -> list[Node]:
    """The computed nodes of ``flow`` in its list order, updates moved as early as they may run.

    Without writers this is the list order itself. With them, the list is
    re-sorted topologically (over operands and reads-before-writes) by position,
    except that a ready writer, or a ready node of an update's arithmetic,
    goes first: so each gradient dies as soon as its update has run.
    """
    computed = [node for node in flow.nodes if not node.is_source]
    if not flow.writes:
        return computed
    given = given or constraints(flow)
    position = {n: i for i, n in enumerate(computed)}
    first = {n: 0 if n in given.arithmetic else 1 for n in computed}
    successors, waiting = given.successors, dict(given.waiting)
    ready = [(first[n], position[n], n) for n in computed if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        _, _, node = heapq.heappop(ready)
        order.append(node)
        for nxt in successors[node]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (first[nxt], position[nxt], nxt))
    return order


def _dependencies(flow: Dataflow, computed: list[Node],
                  deferred: list[tuple[Node, Node]]) -> tuple[dict[Node, list[Node]], dict[Node, int]]:
    """For each computed node, the nodes that wait for it, and how many computed nodes it waits for.

    A node waits for its operands; a writer for every read of its param's old
    value; and the nodes of an update's arithmetic for the gradients it reads
    (:func:`_update_arithmetic`), unless those last edges would close a cycle.
    """
    edges = [(operand, node) for node in computed for operand in flow.args[node] if not operand.is_source]
    edges += [(reader, writer) for writer, readers in reads_before_writes(flow, alias_analysis(flow)).items()
              for reader in readers]
    successors, waiting = _waiting_for(computed, edges + deferred)
    if deferred and not _acyclic(successors, waiting):
        successors, waiting = _waiting_for(computed, edges)
    return successors, waiting


def _waiting_for(computed: list[Node], edges: list[tuple[Node, Node]]) -> tuple[dict[Node, list[Node]], dict[Node, int]]:
    """For each node, the nodes that wait for it and how many it waits for, from (before, after) edges."""
    successors: dict[Node, list[Node]] = {n: [] for n in computed}
    waiting = dict.fromkeys(computed, 0)
    for before, after in edges:
        successors[before].append(after)
        waiting[after] += 1
    return successors, waiting


def _update_arithmetic(flow: Dataflow) -> tuple[set[Node], list[tuple[Node, Node]]]:
    """The nodes of the updates' arithmetic, and (gradient, node) pairs: each waits for the
    gradients its update combines.

    The arithmetic of an update is what its writer needs that no output needs and
    that is no gradient: ``μ·b`` of a momentum update reads only state, so it is
    ready at the first step. Left free, a schedule could compute it long before
    the gradient it is added to (holding it through the forward pass), or, placing
    it by its position in the list, run the whole update (and free the gradient)
    only at the end. Waiting for the gradients lets the update run as soon as the
    gradient exists.
    """
    if not flow.writes:
        return set(), []
    roles = flow.roles()
    needed = flow.ancestors(flow.outputs)
    arithmetic: set[Node] = set()
    pairs: list[tuple[Node, Node]] = []
    for writer in flow.writes:
        chain: set[Node] = set()
        gradients: set[Node] = set()
        stack = [writer]
        while stack:
            node = stack.pop()
            if node in chain:
                continue
            chain.add(node)
            for operand in flow.args[node]:
                if operand.is_source or operand in needed:
                    continue
                if roles[operand] == "backward":
                    gradients.add(operand)
                else:
                    stack.append(operand)
        pairs += [(gradient, node) for node in chain for gradient in gradients]
        arithmetic |= chain
    return arithmetic, pairs


def _acyclic(successors: dict[Node, list[Node]], waiting: dict[Node, int]) -> bool:
    """Whether every node can be ordered (Kahn's algorithm runs to the end)."""
    # Not nx.is_directed_acyclic_graph: on 10⁵ nodes this takes 113–126 ms, networkx 218–302 ms on a
    # DiGraph built beforehand and 0.65–0.76 s with building it (benchmarks/networkx_algorithms.py).
    left = dict(waiting)
    ready = [n for n, k in left.items() if k == 0]
    count = 0
    while ready:
        node = ready.pop()
        count += 1
        for nxt in successors[node]:
            left[nxt] -= 1
            if left[nxt] == 0:
                ready.append(nxt)
    return count == len(left)


def greedy_order(flow: Dataflow, given: Constraints | None = None) -> list[Node]:
    """List scheduling by net allocation: min(bytes written − bytes freed), then position;
    a ready node of an update's arithmetic first (updates run as soon as they can).

    A node's net only falls as the schedule goes on (a value it reads gets
    freed by it once every other reader has run), so a heap with a fresh entry
    pushed at each fall keeps the choice exact in O(n log n).
    """
    owner = alias_analysis(flow)
    given = given or constraints(flow)
    computed = creation_order(flow, given)
    position = {n: i for i, n in enumerate(computed)}
    pinned = {owner[r] for r in flow.roots}
    successors, waiting = given.successors, dict(given.waiting)
    reads = _storages_read_by(computed, flow, owner)
    readers: dict[Node, list[Node]] = {}
    for node in computed:
        for base in reads[node]:
            readers.setdefault(base, []).append(node)
    remaining = {base: len(nodes) for base, nodes in readers.items()}
    allocates = {n: n.aval.nbytes if owner[n] is n and n not in pinned else 0 for n in computed}
    frees = {base: 0 if base in pinned else base.aval.nbytes for base in readers}  # when its last reader runs
    done: set[Node] = set()

    def net(node: Node) -> int:
        return allocates[node] - sum(frees[b] for b in reads[node] if remaining[b] == 1)

    first = {n: 0 if n in given.arithmetic else 1 for n in computed}
    heap = [(first[n], net(n), position[n], n) for n in computed if waiting[n] == 0]
    heapq.heapify(heap)
    order: list[Node] = []
    while heap:
        _, priority, _, node = heapq.heappop(heap)
        if node in done or priority != net(node):
            continue  # a stale entry: a fresher one is in the heap
        done.add(node)
        order.append(node)
        for base in reads[node]:
            remaining[base] -= 1
            if remaining[base] == 1:
                last = next(r for r in readers[base] if r not in done)
                if waiting[last] == 0:
                    heapq.heappush(heap, (first[last], net(last), position[last], last))
        for user in successors[node]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(heap, (first[user], net(user), position[user], user))
    return order


def _storages_read_by(computed: list[Node], flow: Dataflow, owner: dict[Node, Node]) -> dict[Node, frozenset[Node]]:
    """For each computed node, the storages its kernel reads (a bound view reads nothing itself)."""
    nothing: frozenset[Node] = frozenset()
    args = flow.args
    reads = {}
    for node in computed:
        if not runs_kernel(node, owner):
            reads[node] = nothing
        else:
            reads[node] = frozenset([base for base in map(owner.__getitem__, args[node]) if not base.is_source])
    return reads


def schedule(flow: Dataflow) -> list[Node]:
    """The lower-peak of the creation order and the greedy order, its peak then lowered (:func:`lower_peak`)."""
    given = constraints(flow)
    first = creation_order(flow, given)
    second = greedy_order(flow, given)
    owner, scratch = alias_analysis(flow), node_scratch(flow, first)
    live = live_bytes(flow, first, owner, scratch)
    if second != first:
        second_live = live_bytes(flow, second, owner, scratch)
        if max(second_live, default=0) < max(live, default=0):
            first, live = second, second_live
    return lower_peak(flow, first, given, owner, scratch, live)


PEAK_WINDOW = 16
""":func:`lower_peak` tries to defer each of the nodes this many steps before the peak."""
PEAK_WORK = 100_000
""":func:`lower_peak` makes at most this many node-steps of liveness passes (one pass per move tried): about
50 passes on a ResNet-50 step (2,000 nodes, 30 ms a pass). An order too long for one pass per move of a
window (above 6,250 nodes) is kept as it is."""


def lower_peak(flow: Dataflow, order: list[Node], given: Constraints | None = None,
               owner: dict[Node, Node] | None = None, scratch: dict[Node, list] | None = None,
               live: list[int] | None = None) -> list[Node]:
    """``order`` with its peak of live bytes lowered by deferring nodes past it.

    A node run shortly before the peak step whose successors all run after it can run right after
    the peak instead (a writer aside: updates run as soon as they may). Its value is then not held
    at the peak, though its operands may be held longer. Of the ``PEAK_WINDOW`` nodes before the
    peak, the move that lowers (peak, steps at the peak) the most is made (the nearest on a tie),
    and again at the new peak, until no move helps or ``PEAK_WORK`` is spent.

    A backward batch norm, for one: the gradient's product is listed before the variance whose
    kernel needs a temporary as large as its input, so both are held at once; deferring the
    product past the variance holds one of them. ``live``: ``order``'s live bytes, when known.
    """
    order = list(order)
    passes = PEAK_WORK // max(len(order), 1) - 1
    if passes < PEAK_WINDOW:
        return order
    given = given or constraints(flow)
    owner = alias_analysis(flow) if owner is None else owner
    scratch = node_scratch(flow, order) if scratch is None else scratch
    live = live_bytes(flow, order, owner, scratch) if live is None else live
    best = _peak_score(live)
    while passes > 0:
        peak = live.index(best[0])
        position = {n: i for i, n in enumerate(order)}
        movable = [step for step in range(peak - 1, max(0, peak - PEAK_WINDOW) - 1, -1)
                   if order[step] not in flow.writes and all(position[s] > peak for s in given.successors[order[step]])]
        if not movable:
            break
        moves = []
        for step in movable[:passes]:
            trial = order[:step] + order[step + 1:peak + 1] + [order[step]] + order[peak + 1:]
            trial_live = live_bytes(flow, trial, owner, scratch)
            moves.append((_peak_score(trial_live), -step, trial, trial_live))
        passes -= len(moves)
        score, _, trial, trial_live = min(moves, key=lambda move: move[:2])
        if score >= best:
            break
        best, order, live = score, trial, trial_live
    return order


def _peak_score(live: list[int]) -> tuple[int, int]:
    """The peak and how many steps reach it: fewer such steps is progress toward a lower peak."""
    top = max(live, default=0)
    return top, live.count(top)
