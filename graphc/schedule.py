"""Ordering: one topological order of the nodes a program computes.

Sources (inputs, params, constants) are not scheduled: they are bound before
the first step. The order is deterministic: the same graph always gives the
same plan.
"""

from __future__ import annotations

from graphc.ir import Node
from graphc.passes import Dataflow


def schedule(flow: Dataflow) -> list[Node]:
    """The computed nodes of ``flow`` in creation order (a topological order)."""
    return [node for node in flow.nodes if not node.is_source]
