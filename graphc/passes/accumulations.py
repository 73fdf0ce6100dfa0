"""Running sums: gradient accumulations split so each term is added as it arrives."""

from __future__ import annotations

from graphc.dataflow import Dataflow
from graphc.ir import Node


def split_accumulations(flow: Dataflow) -> Dataflow:
    """Rewrite each ``add_n(t1 … tk)`` as a running sum ``((t1 + t2) + t3) + …``
    (any op with a ``fold_of`` fact as the running fold of that binary op).

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
        if node.op is None or node.op.fold_of is None or len(node_args) < 2:
            nodes.append(node)
            args[node] = node_args
            continue
        terms = sorted(node_args, key=lambda t: position.get(t, len(position)))
        total = terms[0]
        for k, term in enumerate(terms[1:], start=1):
            last = k == len(terms) - 1
            step = flow.instance(node, (total, term), op=node.op.fold_of, name=node.name if last else f"{node.name}.{k}")
            nodes.append(step)
            args[step] = (total, term)
            total = step
        replaced[node] = total
    return flow.derive(nodes, args, [replaced.get(r, r) for r in flow.roots])
