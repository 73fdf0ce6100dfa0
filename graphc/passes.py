"""Graph rewrites run by ``compile``: dead-code elimination and common subexpressions.

The passes never change the user's graph. They produce a :class:`Dataflow`,
the compile-time view of the part of the graph the outputs need: canonical
nodes in topological order, each with its (rewritten) operands.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np

from graphc.ir import Node, ancestors
from graphc.ops.core import lookup


@dataclass
class Dataflow:
    """The nodes a program computes, in topological order, with their operands.

    ``args[n]`` are n's operands after rewriting (``n.inputs`` stays as the
    user built it); ``roots`` are the values the program must produce.
    """

    nodes: list[Node]
    args: dict[Node, tuple[Node, ...]]
    roots: list[Node]

    def ancestors(self, nodes: Sequence[Node]) -> set[Node]:
        """``nodes`` and every node they depend on."""
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


def dead_code_elimination(roots: Sequence[Node]) -> Dataflow:
    """Keep only the ancestors of ``roots`` (iteratively: no recursion limit)."""
    nodes = ancestors(roots)
    return Dataflow(nodes, {n: n.inputs for n in nodes}, list(roots))


def _cse_key(node: Node, args: tuple[Node, ...]) -> Hashable | None:
    """Nodes with equal keys compute equal values; None for nodes never merged."""
    name = node.op.name
    if name == "input" or name == "param":
        return None
    if name == "const":
        data = node.data
        return ("const", data.dtype.str, data.shape, data.tobytes())
    attrs = ()
    if node.attrs:
        try:
            attrs = tuple(sorted(node.attrs.items()))
            hash(attrs)
        except TypeError:  # a custom op with unhashable attributes: leave it alone
            return None
    return (name, tuple([a.id for a in args]), attrs, node.aval)


def common_subexpression_elimination(flow: Dataflow) -> Dataflow:
    """Merge nodes that apply the same op with the same attributes to the same operands.

    One sweep in topological order: operands are canonical before their
    consumers are keyed, so chains of duplicates collapse together.
    """
    canonical: dict[Node, Node] = {}
    seen: dict[Hashable, Node] = {}
    nodes: list[Node] = []
    args: dict[Node, tuple[Node, ...]] = {}
    flow_args = flow.args
    for node in flow.nodes:
        node_args = tuple([canonical[a] for a in flow_args[node]])
        key = _cse_key(node, node_args)
        if key is not None and key in seen:
            canonical[node] = seen[key]
            continue
        if key is not None:
            seen[key] = node
        canonical[node] = node
        nodes.append(node)
        args[node] = node_args
    return Dataflow(nodes, args, [canonical[r] for r in flow.roots])


_synthetic_ids = itertools.count(-1, -1)


def synthetic_node(like: Node, op_name: str, args: tuple[Node, ...], name: str) -> Node:
    """A compile-time node, outside the user's graph, that inherits ``like``'s aval and metadata."""
    node = Node(like.graph, lookup(op_name), args, {}, like.aval, name, next(_synthetic_ids))
    node.adjoint = like.adjoint
    return node


def split_accumulations(flow: Dataflow) -> Dataflow:
    """Rewrite each ``add_n(t1 … tk)`` as a running sum ``((t1 + t2) + t3) + …``.

    Terms are added in topological order, so the schedule can add each term as
    soon as it exists and free it, instead of holding all k terms for one sum
    (the problem of tensorflow#10607); with in-place reuse the running sum
    stays in one buffer.
    """
    replaced: dict[Node, Node] = {}
    position = {n: i for i, n in enumerate(flow.nodes)}
    nodes: list[Node] = []
    args: dict[Node, tuple[Node, ...]] = {}
    flow_args = flow.args
    for node in flow.nodes:
        node_args = tuple([replaced.get(a, a) for a in flow_args[node]]) if replaced else flow_args[node]
        if node.op.name != "add_n" or len(node_args) < 2:
            nodes.append(node)
            args[node] = node_args
            continue
        terms = sorted(node_args, key=lambda t: position.get(t, len(position)))
        total = terms[0]
        for k, term in enumerate(terms[1:], start=1):
            last = k == len(terms) - 1
            step = synthetic_node(node, "add", (total, term), node.name if last else f"{node.name}.{k}")
            nodes.append(step)
            args[step] = (total, term)
            total = step
        replaced[node] = total
    return Dataflow(nodes, args, [replaced.get(r, r) for r in flow.roots])


def optimize(roots: Sequence[Node]) -> Dataflow:
    """The default pass pipeline: DCE, CSE, then running sums for gradient accumulation."""
    return split_accumulations(common_subexpression_elimination(dead_code_elimination(roots)))
