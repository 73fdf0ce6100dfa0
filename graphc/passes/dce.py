"""Dead code: keep only what the roots need."""

from __future__ import annotations

from typing import Sequence

from graphc.dataflow import Dataflow
from graphc.ir import Node, ancestors


def dead_code_elimination(roots: Sequence[Node]) -> Dataflow:
    """Keep only the ancestors of ``roots`` (iteratively: no recursion limit)."""
    nodes = ancestors(roots)
    return Dataflow(nodes, {n: n.inputs for n in nodes}, list(roots))
