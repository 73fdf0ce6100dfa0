"""The compile-time graph that every stage of ``compile`` takes and returns.

A :class:`Dataflow` is the part of the user's graph a program computes, as the
stages rewrite it: canonical nodes in topological order, each with its
(rewritten) operands, the outputs, and the *writers* — the nodes whose kernel
writes a param's stored array (the updates of a training step). The user's
graph is never changed: rewrites make new node *instances* outside it
(:meth:`Dataflow.instance`), numbered by the one allocator a compile shares
(:class:`NodeIds`), so that two compiles never depend on each other's numbering.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from graphc.ir import OP, Aval, Node
from graphc.ops.core import Primitive


class NodeIds:
    """Ids for the instances one compile makes: -1, -2, … (the user's nodes count up from 0)."""

    def __init__(self) -> None:
        self._next = itertools.count(-1, -1)

    def __call__(self) -> int:
        return next(self._next)


@dataclass
class Dataflow:
    """The nodes a program computes, in topological order, with their operands.

    - ``args[n]``: n's operands after rewriting (``n.inputs`` stays as the user built it);
    - ``roots``: the values the program must produce — the outputs, then the writers;
    - ``writes``: writer → the param whose stored array it writes (in ``roots`` order);
    - ``ids``: the compile's instance-id allocator, shared by every flow derived from this one.
    """

    nodes: list[Node]
    args: dict[Node, tuple[Node, ...]]
    roots: list[Node]
    writes: dict[Node, Node] = field(default_factory=dict)
    ids: NodeIds = field(default_factory=NodeIds, repr=False)

    @property
    def outputs(self) -> list[Node]:
        """The values the program returns (the roots before the writers)."""
        return self.roots[: len(self.roots) - len(self.writes)]

    def derive(self, nodes: list[Node], args: dict[Node, tuple[Node, ...]], roots: Sequence[Node]) -> "Dataflow":
        """A rewritten flow: ``roots`` are the new instances of ``self.roots``, position by position."""
        params = list(self.writes.values())
        writers = roots[len(roots) - len(params):] if params else []
        return Dataflow(nodes, args, list(roots), dict(zip(writers, params)), self.ids)

    def instance(self, like: Node, args: tuple[Node, ...], *, op: Primitive | None = None,
                 name: str | None = None, recompute: bool = False, attrs: dict | None = None,
                 aval: Aval | None = None) -> Node:
        """A compile-time node outside the user's graph: ``like``'s op (or ``op``), aval, scope and metadata.

        With ``recompute`` it is a clone that evaluates ``like`` again (``recompute_of``);
        otherwise a synthetic node (a step of a running sum, a copy, a simplified
        node), which keeps ``like``'s adjoint record so plans and images still say
        what it computes. ``attrs`` and ``aval`` default to ``like``'s (no attributes
        for another op); a simplified node passes its own.
        """
        op = like.op if op is None else op
        if attrs is None:
            attrs = like.attrs if op is like.op else {}
        default = f"{like.name}'" if recompute else like.name
        node = Node(like.graph, op, args, attrs, like.aval if aval is None else aval, name or default, self.ids(),
                    like.kind if op is like.op else OP)
        node.scope = like.scope
        if recompute:
            node.recompute_of = like
        else:
            node.adjoint = like.adjoint
            node.recompute_of = like.recompute_of
        return node

    def constant(self, like: Node, array: np.ndarray) -> Node:
        """A compile-time constant outside the user's graph, in ``like``'s scope, holding ``array``
        (which it owns: the caller hands over an array nobody else writes; it is made read-only)."""
        array.setflags(write=False)
        node = Node(like.graph, None, (), {}, Aval(array.shape, array.dtype), like.name, self.ids(), "const")
        node.data = array
        node.scope = like.scope
        return node

    def ancestors(self, nodes: Sequence[Node]) -> set[Node]:
        """``nodes`` and every node they depend on (iteratively: no recursion limit)."""
        # Not nx.ancestors: on 10⁵ nodes this takes 61–99 ms, networkx 300–350 ms on a DiGraph built
        # beforehand and 0.9–1.05 s with building it (benchmarks/networkx_algorithms.py).
        seen: set[Node] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.args[node])
        return seen

    def consumers(self) -> dict[Node, list[Node]]:
        """For each node, the nodes that read it (in topological order)."""
        users: dict[Node, list[Node]] = {n: [] for n in self.nodes}
        for node in self.nodes:
            for operand in self.args[node]:
                users[operand].append(node)
        return users

    def roles(self) -> dict[Node, str]:
        """What each computed node does in a training step, for plan tags and memory reports.

        ``"forward"`` (no gradient behind it, and read by an output or by the
        backward pass), ``"recompute"`` (a clone of a forward node), ``"backward"``
        (an adjoint node: a gradient or a step of one), or ``"update"`` (every
        writer, and the rest: an optimizer's arithmetic, on gradients or on state
        alone, such as β·v).
        """
        adjoint = [n for n in self.nodes if n.adjoint is not None and n not in self.writes]
        read_forward = self.ancestors(self.outputs) | self.ancestors(adjoint)
        after_gradient: set[Node] = set()
        roles: dict[Node, str] = {}
        for node in self.nodes:
            if node.is_source:
                continue
            if node in self.writes:
                roles[node] = "update"
            elif node.recompute_of is not None:
                roles[node] = "recompute"
            elif node.adjoint is not None:
                roles[node] = "backward"
            elif node not in read_forward or any(a in after_gradient for a in self.args[node]):
                roles[node] = "update"
            else:
                roles[node] = "forward"
            if roles[node] in ("backward", "update"):
                after_gradient.add(node)
        return roles

    def without_dead_code(self) -> "Dataflow":
        """Only the instances some root depends on."""
        live = self.ancestors(self.roots)
        nodes = [n for n in self.nodes if n in live]
        return self.derive(nodes, {n: self.args[n] for n in nodes}, self.roots)
