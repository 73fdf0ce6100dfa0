"""Graph rewrites run by ``compile``: dead code, common subexpressions, running sums,
and the nodes that write updates and outputs.

The passes never change the user's graph. They produce a :class:`Dataflow`,
the compile-time view of the part of the graph the outputs and updates need:
canonical nodes in topological order, each with its (rewritten) operands.
One module per job:

- :mod:`~graphc.passes.dce`: dead code (only the ancestors of the roots);
- :mod:`~graphc.passes.cse`: common subexpressions;
- :mod:`~graphc.passes.accumulations`: gradient sums as running sums;
- :mod:`~graphc.passes.updates`: the writers of updates, and storage of their own
  for the returned values.
"""

from __future__ import annotations

from typing import Sequence

from graphc.dataflow import Dataflow
from graphc.ir import Node
from graphc.passes.accumulations import split_accumulations
from graphc.passes.cse import common_subexpression_elimination
from graphc.passes.dce import dead_code_elimination
from graphc.passes.updates import own_outputs, write_updates

__all__ = [
    "Dataflow", "dead_code_elimination", "common_subexpression_elimination", "split_accumulations",
    "write_updates", "own_outputs", "optimize",
]


def optimize(outputs: Sequence[Node], updates: Sequence[tuple[Node, Node]] = ()) -> Dataflow:
    """The default pass pipeline: DCE, CSE, running sums for gradient accumulation, then the
    writers of ``updates`` (param, new value) and storage of their own for the outputs."""
    roots = list(outputs) + [value for _, value in updates]
    flow = split_accumulations(common_subexpression_elimination(dead_code_elimination(roots)))
    return own_outputs(write_updates(flow, [param for param, _ in updates]))
