"""Graph rewrites run by ``compile``: dead code, common subexpressions, running sums,
simplification (constant folding, algebraic identities), and the nodes that write
updates and outputs.

The passes never change the user's graph. They produce a :class:`Dataflow`,
the compile-time view of the part of the graph the outputs and updates need:
canonical nodes in topological order, each with its (rewritten) operands.
One module per job:

- :mod:`~graphc.passes.dce`: dead code (only the ancestors of the roots);
- :mod:`~graphc.passes.cse`: common subexpressions;
- :mod:`~graphc.passes.accumulations`: gradient sums as running sums;
- :mod:`~graphc.passes.folding` and :mod:`~graphc.passes.simplification`: constants folded
  and exact algebraic identities, in one sweep that also merges equal nodes;
- :mod:`~graphc.passes.updates`: the writers of updates, and storage of their own
  for the returned values;
- :mod:`~graphc.passes.fusion`: chains of elementwise nodes as one numexpr kernel
  (``compile(fuse=True)``, after the others; not part of :func:`optimize`).
"""

from __future__ import annotations

from typing import Sequence

from graphc.dataflow import Dataflow
from graphc.ir import Node
from graphc.passes.accumulations import split_accumulations
from graphc.passes.cse import common_subexpression_elimination
from graphc.passes.dce import dead_code_elimination
from graphc.passes import simplification
from graphc.passes.folding import FOLD_LIMIT_BYTES, fold
from graphc.passes.fusion import fuse
from graphc.passes.simplification import simplify
from graphc.passes.updates import own_outputs, write_updates

__all__ = [
    "Dataflow", "dead_code_elimination", "common_subexpression_elimination", "split_accumulations", "fold",
    "FOLD_LIMIT_BYTES", "simplify", "write_updates", "own_outputs", "optimize", "fuse",
]


def optimize(outputs: Sequence[Node], updates: Sequence[tuple[Node, Node]] = (), *, simplify: bool = True) -> Dataflow:
    """The default pass pipeline: DCE, CSE, running sums for gradient accumulation, simplification
    (``simplify=False`` leaves it out), then the writers of ``updates`` (param, new value) and
    storage of their own for the outputs.

    Simplification runs after the running sums, so the additions they make are
    simplified too (the two terms of ``x + x``'s gradient are one value: ``add(g, g)``
    becomes ``2·g``); its sweep merges equal nodes as it goes, so constants it folds
    merge with equal ones, and it leaves no two nodes alike (CSE after it would
    find nothing).
    """
    roots = list(outputs) + [value for _, value in updates]
    flow = split_accumulations(common_subexpression_elimination(dead_code_elimination(roots)))
    if simplify:
        flow = simplification.simplify(flow)
    return own_outputs(write_updates(flow, [param for param, _ in updates]))

