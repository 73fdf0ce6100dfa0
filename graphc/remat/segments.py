"""The forward graph, its separators, and √n checkpointing as a rewrite of the dataflow.

A separator is a forward value every input-to-loss path passes through; the values between
two separators form a segment. :class:`_Builder` writes the rewritten dataflow of *instances*
(first evaluations and their recompute clones), which every constructed policy shares.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Sequence


from graphc.errors import GraphError
from graphc.ir import Node
from graphc.dataflow import Dataflow


def forward_nodes(flow: Dataflow) -> list[Node]:
    """Computed nodes of the forward pass (:meth:`Dataflow.roles`): no gradient behind them, no writer."""
    roles = flow.roles()
    return [n for n in flow.nodes if roles.get(n) == "forward"]


def last_reads(flow: Dataflow, nodes: Sequence[Node]) -> dict[Node, int]:
    """For each of ``nodes``, the position in ``nodes`` of its last reader among them (its own if none)."""
    position = {n: i for i, n in enumerate(nodes)}
    last = dict(position)
    for i, node in enumerate(nodes):
        for a in flow.args[node]:
            if a in position:
                last[a] = max(last[a], i)
    return last


def separators(flow: Dataflow, forward: Sequence[Node]) -> list[int]:
    """Positions i in ``forward`` after which exactly one forward value is still needed.

    Walking the forward nodes in topological order, the *frontier* after
    position i is the set of values computed at or before i that a later
    forward node reads. Where it is the single value ``forward[i]``, every path
    from the inputs to the rest of the graph passes through it: it is a cut
    vertex on all input-to-loss paths (the articulation points the
    gradient-checkpointing project for TensorFlow uses, restricted to those on
    every path). A linear sweep over last uses finds them all.
    """
    # The same positions are the dominators of the last forward node in the forward graph with an edge
    # from each step to the next (tests/test_networkx.py), but nx.immediate_dominators is slower: on
    # 10⁵ nodes this takes 55–110 ms, networkx 144–222 ms and 274–440 ms with building its graph
    # (benchmarks/networkx_algorithms.py).
    last_forward_use = last_reads(flow, forward)
    open_count, cuts = 0, []
    for i, node in enumerate(forward):
        open_count += 1
        for a in {a for a in flow.args[node] if a in last_forward_use}:
            if last_forward_use[a] == i:
                open_count -= 1
        if last_forward_use[node] == i:
            open_count -= 1  # a value nothing later reads (the loss) closes at once
        if open_count == 1 and last_forward_use[node] > i or open_count == 0:
            cuts.append(i)
    return cuts


def segments_between(forward: Sequence[Node], cuts: Sequence[int]) -> list[list[Node]]:
    """The forward nodes split after each cut position (the last segment runs to the end)."""
    result, start = [], 0
    for cut in cuts:
        if cut >= start:
            result.append(list(forward[start: cut + 1]))
            start = cut + 1
    if start < len(forward):
        result.append(list(forward[start:]))
    return result


# --- instances: the rewritten dataflow ---------------------------------------------------------


class _Builder:
    """Emits instances in execution order: forward evaluations, recomputes, backward nodes."""

    def __init__(self, flow: Dataflow, segments: list[list[Node]]) -> None:
        self.flow = flow
        self.segments = segments
        self.segment_of = {n: k for k, seg in enumerate(segments) for n in seg}
        self.current: dict[Node, Node] = {}
        self.nodes: list[Node] = []
        self.args: dict[Node, tuple[Node, ...]] = {}
        for node in flow.nodes:
            if node.is_source:
                self._emit(node, ())
        self._backward = [n for n in flow.nodes if not n.is_source and n not in self.segment_of]
        self._position = {n: i for i, n in enumerate(self._backward)}
        self._step_of = {b: self._reverse_step(b) for b in self._backward}
        self._by_step: dict[int | None, list[Node]] = {}
        for b in self._backward:
            self._by_step.setdefault(self._step_of[b], []).append(b)
        self._waiting = {b: sum(1 for a in flow.args[b] if a in self._position) for b in self._backward}
        self._users: dict[Node, list[Node]] = {}
        for b in self._backward:
            for a in flow.args[b]:
                if a in self._position:
                    self._users.setdefault(a, []).append(b)
        self._released: set[Node] = {b for b in self._backward if self._step_of[b] is None}
        self._ready: list[tuple[int, Node]] = []
        self._done: set[Node] = set()
        for b in self._released:
            if self._waiting[b] == 0:
                heapq.heappush(self._ready, (self._position[b], b))

    def _reverse_step(self, node: Node) -> int | None:
        """The segment whose backward this node belongs to: its VJP's forward consumer's."""
        consumer = node.adjoint.consumer if node.adjoint is not None else None
        return self.segment_of.get(consumer) if consumer is not None else None

    def _emit(self, node: Node, args: tuple[Node, ...]) -> None:
        self.nodes.append(node)
        self.args[node] = args

    def _mapped(self, node: Node) -> tuple[Node, ...]:
        return tuple(self.current.get(a, a) for a in self.flow.args[node])

    def evaluate(self, k: int, first: bool, needed: set[Node] | None = None) -> None:
        """Evaluate segment k (only ``needed`` nodes if given): the originals the first time, else clones."""
        for node in self.segments[k]:
            if needed is not None and node not in needed:
                continue
            args = self._mapped(node)
            instance = node if first else self.flow.instance(node, args, recompute=True)
            self._emit(instance, args)
            self.current[node] = instance

    def needed_by_backward(self, k: int, kept: Node | None = None) -> set[Node]:
        """Values of segment k that its backward nodes read, with their ancestors inside segment k;
        ``kept`` is held, so what only it needs is not."""
        segment = set(self.segments[k])
        wanted = {a for b in self._by_step.get(k, ()) for a in self.flow.args[b] if a in segment} - {kept}
        return self._with_ancestors_in(segment, wanted)

    def needed_for_state(self, k: int) -> set[Node]:
        """Segment k's last node (the state the next segment starts from) with its ancestors inside segment k:
        what a run that only advances computes."""
        return self._with_ancestors_in(set(self.segments[k]), {self.segments[k][-1]})

    def _with_ancestors_in(self, segment: set[Node], wanted: set[Node]) -> set[Node]:
        stack = list(wanted)
        while stack:
            for a in self.flow.args[stack.pop()]:
                if a in segment and a not in wanted:
                    wanted.add(a)
                    stack.append(a)
        return wanted

    def restore(self, state: Node, instance: Node) -> None:
        """Make ``instance`` (a kept snapshot) the value later instances read for ``state``."""
        self.current[state] = instance

    def reverse(self, k: int) -> None:
        """Release segment k's backward nodes and emit every backward node that is ready."""
        self._released.update(self._by_step.get(k, ()))
        for b in self._by_step.get(k, ()):
            if self._waiting[b] == 0 and b not in self._done:
                heapq.heappush(self._ready, (self._position[b], b))
        self._drain()

    def _drain(self) -> None:
        users = self._users
        while self._ready:
            _, b = heapq.heappop(self._ready)
            if b in self._done:
                continue
            self._done.add(b)
            self._emit(b, self._mapped(b))
            for user in users.get(b, ()):
                self._waiting[user] -= 1
                if self._waiting[user] == 0 and user in self._released:
                    heapq.heappush(self._ready, (self._position[user], user))

    def finish(self) -> Dataflow:
        self._released.update(self._backward)
        for b in self._backward:
            if self._waiting[b] == 0 and b not in self._done:
                heapq.heappush(self._ready, (self._position[b], b))
        self._drain()
        if len(self._done) != len(self._backward):
            raise GraphError("recompute: the backward nodes could not all be ordered (a cycle through the forward graph?)")
        nodes = _without_unread_recomputes(self.nodes, self.args, self.flow.roots)
        return self.flow.derive(nodes, {n: self.args[n] for n in nodes}, list(self.flow.roots))


def _without_unread_recomputes(nodes: list[Node], args: dict[Node, tuple[Node, ...]], roots: Sequence[Node]) -> list[Node]:
    """``nodes`` less the recomputes nothing reads (a value computed again and then computed once
    more before any read, or what only a held value needed), and what only those read."""
    readers = dict.fromkeys(roots, 1)
    for node in nodes:
        for a in args[node]:
            readers[a] = readers.get(a, 0) + 1
    dropped: set[Node] = set()
    for node in reversed(nodes):
        if node.recompute_of is not None and not readers.get(node):
            dropped.add(node)
            for a in args[node]:
                readers[a] -= 1
    return [n for n in nodes if n not in dropped] if dropped else nodes


# --- √n checkpointing --------------------------------------------------------------------------


def checkpoint_recompute_flops(flow: Dataflow, segments: list[list[Node]], keep_every: int) -> int:
    """The FLOPs :func:`checkpoint_segments` recomputes at ``keep_every``, without building its flow.

    Run r (``keep_every`` segments) is computed again, but for the last run, as far as its own
    backward nodes (those whose forward consumer is in it) read it: those values and their
    ancestors inside the run, less the run's kept last state and what only it needs.
    """
    from graphc.remat.candidates import node_flops
    run_of = {n: i // keep_every for i, segment in enumerate(segments) for n in segment}
    last_run = (len(segments) - 1) // keep_every
    wanted: dict[int, set[Node]] = {}
    for b in flow.nodes:
        if b.is_source or b in run_of or b.adjoint is None or b.adjoint.consumer not in run_of:
            continue
        run = run_of[b.adjoint.consumer]
        wanted.setdefault(run, set()).update(a for a in flow.args[b] if run_of.get(a) == run)
    total = 0
    for run, values in wanted.items():
        if run == last_run:
            continue
        kept = segments[min((run + 1) * keep_every, len(segments)) - 1][-1]
        values.discard(kept)
        stack = list(values)
        while stack:
            for a in flow.args[stack.pop()]:
                if run_of.get(a) == run and a not in values:
                    values.add(a)
                    stack.append(a)
        total += sum(node_flops(n, flow) for n in values)
    return total


def checkpoint_segments(flow: Dataflow, segments: list[list[Node]], keep_every: int) -> Dataflow:
    """√n checkpointing: group the chain into runs of ``keep_every`` segments, keep each run's
    last state, and compute each run once more (from the previous kept state) before its backward.
    The last run is not recomputed: its values are still live when the backward starts."""
    runs = [list(itertools.chain.from_iterable(segments[i: i + keep_every])) for i in range(0, len(segments), keep_every)]
    builder = _Builder(flow, runs)
    for k in range(len(runs)):
        builder.evaluate(k, first=True)
    for k in reversed(range(len(runs))):
        if k < len(runs) - 1:
            kept = runs[k][-1]
            needed = builder.needed_by_backward(k, kept)
            builder.evaluate(k, first=False, needed=needed)
        builder.reverse(k)
    return builder.finish()
