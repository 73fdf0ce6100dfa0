"""Common subexpressions: one node for each value computed twice."""

from __future__ import annotations

from typing import Hashable

from graphc.dataflow import Dataflow
from graphc.ir import Node


def cse_key(node: Node, args: tuple[Node, ...]) -> Hashable | None:
    """Nodes with equal keys compute equal values; None for nodes never merged."""
    if node.kind == "input" or node.kind == "param":
        return None
    if node.kind == "const":
        data = node.data
        return ("const", data.dtype.str, data.shape, data.tobytes())
    attrs = ()
    if node.attrs:
        try:
            attrs = tuple(sorted(node.attrs.items()))
            hash(attrs)
        except TypeError:  # a custom op with unhashable attributes: leave it alone
            return None
    return (node.op, tuple([a.id for a in args]), attrs, node.aval)


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
        key = cse_key(node, node_args)
        if key is not None and key in seen:
            canonical[node] = seen[key]
            continue
        if key is not None:
            seen[key] = node
        canonical[node] = node
        nodes.append(node)
        args[node] = node_args
    return flow.derive(nodes, args, [canonical[r] for r in flow.roots])
