"""Simplification: constant folding and algebraic identities, in one sweep.

One pass over the nodes in topological order. Each node, its operands already
final, is

1. merged with an equal node seen before (the key of common-subexpression
   elimination), so ``tanh(x) + tanh(x)`` is seen as ``add(t, t)``;
2. folded (:func:`~graphc.passes.folding.fold`) when its operands are all constants,
   and then merged with an equal constant;
3. rewritten by its op's rule (``Primitive.simplify``, beside the op's kernel and
   VJP in ``graphc/ops/``): the rule names an existing value or new nodes, which
   go through the same three steps at once, so chains settle in the one sweep
   (``pow(h, 2.0 - 1.0)`` folds the exponent, then ``pow(h, 1) → h``).

A rule may drop an op only when the value it keeps has the node's shape and
dtype; a kept value of another shape that broadcasts to the node's becomes a
``broadcast_to`` view of it, and one of another dtype keeps the node.

Every rewrite is exact: the simplified program computes the very bits of the
unsimplified one, for every input, inf and the sign of zero included (a NaN stays
a NaN; where a rule moves a neg, its sign bit, which no op of graphc reads, may
differ). Exact, not "within a few ulps": results are checked against the
unsimplified plan, and a reassociation that only moved last bits in the normal
range would still turn an overflow into a finite number, or a subnormal into
another, which no tolerance in ulps describes. The rules (in ``graphc/ops/``):

- folding, any op of graphc's but random draws: the kernel the run would use;
- ``x·1``, ``1·x``, ``x/1``, ``x + (-0)``, ``x - 0``, ``x¹`` → x; ``x + x`` → ``x·2``;
  ``x²`` → ``x·x`` (NumPy squares a one-element exponent 2 that way itself);
  ``-(-x)`` → x; ``(-x)·c``, ``-(x·c)`` → ``x·(-c)``; ``(-x)·(-y)`` → ``x·y``;
  ``x + (-y)`` → ``x - y``; ``x - (-y)`` → ``x + y``;
- ``(x·a)·b`` → ``x·(a·b)`` for one-element constants with |a| a power of two ≥ 1 and
  |b| ≥ 1, the chains where it is exact for every x;
- ``transpose(transpose(x))`` → one transpose, or x when the permutations compose
  to the identity; two reshapes or two broadcasts → one; a reshape, broadcast or
  cast to x's own shape or dtype → x; float32 → float64 → float32 → x.

Left out as not exact: ``x + 0`` (-0 + 0 is +0, and 1/x tells them apart), ``x - x``
→ 0 (inf - inf is NaN), ``x·0`` → 0 (-3·0 is -0, inf·0 NaN), and every other scalar
chain. Nodes the rewrites leave unread are dropped at the end.
"""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from graphc.dataflow import Dataflow
from graphc.ir import Node
from graphc.ops.core import Apply, ShapeError, Term, infer_aval
from graphc.ops.shape import broadcast_to_op
from graphc.passes.cse import cse_key
from graphc.passes.folding import fold

MAX_REWRITES = 8
"""How many rules may rewrite one node in a row (rules that undid each other would stop here)."""


def simplify(flow: Dataflow) -> Dataflow:
    """``flow`` with constants folded, identities applied and equal nodes merged (one sweep)."""
    sweep = _Sweep(flow)
    replaced: dict[Node, Node] = {}
    flow_args = flow.args
    for node in flow.nodes:
        replaced[node] = sweep.settle(node, tuple([replaced[a] for a in flow_args[node]]))
    return flow.derive(sweep.nodes, sweep.args, [replaced[r] for r in flow.roots]).without_dead_code()


class _Sweep:
    """The simplified flow as it is built: its nodes in order, their operands, the nodes seen by key."""

    def __init__(self, flow: Dataflow) -> None:
        self.flow = flow
        self.nodes: list[Node] = []
        self.args: dict[Node, tuple[Node, ...]] = {}
        self.seen: dict[Hashable, Node] = {}
        self.scalars: dict[Node, float | int | None] = {}  # what Term.scalar found, per constant

    def args_of(self, node: Node) -> tuple[Node, ...]:
        return self.args[node]

    def emit(self, node: Node, args: tuple[Node, ...], key: Hashable | None) -> Node:
        self.nodes.append(node)
        self.args[node] = args
        if key is not None:
            self.seen[key] = node
        return node

    def settle(self, node: Node, args: tuple[Node, ...], rewrites: int = 0) -> Node:
        """The node of the simplified flow that computes ``node`` over ``args`` (final operands)."""
        key = cse_key(node, args)
        if key is not None and key in self.seen:
            return self.seen[key]
        if node.is_source or node.aval.has_batch:
            return self.emit(node, args, key)
        value = fold(node, args)
        if value is not None:
            return self.constant(node, value)
        rule = node.op.simplify
        if rule is not None and rewrites < MAX_REWRITES:
            result = rule(Term(node, args, self.args_of, self.scalars))
            if result is not None:
                found = self.result(result, node, rewrites + 1)
                if found is not None:
                    return found
        return self.emit(node, args, key)

    def constant(self, like: Node, array: np.ndarray) -> Node:
        """A constant node holding ``array``, or the equal one already there."""
        node = self.flow.constant(like, array)
        key = cse_key(node, ())
        return self.seen[key] if key in self.seen else self.emit(node, (), key)

    def result(self, result: Term | Apply, like: Node, rewrites: int) -> Node | None:
        """The node for a rule's result, with ``like``'s aval (a broadcast of it if need be), or None."""
        node = self.build(result, like, rewrites)
        if node.aval == like.aval:
            return node
        if node.dtype != like.dtype:
            return None
        try:
            aval, attrs = infer_aval(broadcast_to_op, [node.aval], {"shape": like.shape})
        except ShapeError:  # it does not broadcast to the node's shape: keep the node
            return None
        view = self.flow.instance(like, (node,), op=broadcast_to_op, attrs=attrs, aval=aval)
        return self.settle(view, (node,), rewrites)

    def build(self, item: Term | Apply, like: Node, rewrites: int) -> Node:
        if isinstance(item, Term):
            return item.node
        operands = tuple(self.operand(o, like, rewrites) for o in item.operands)
        aval, attrs = infer_aval(item.prim, [o.aval for o in operands], dict(item.attrs))
        node = self.flow.instance(like, operands, op=item.prim, attrs=attrs, aval=aval)
        return self.settle(node, operands, rewrites)

    def operand(self, item: Any, like: Node, rewrites: int) -> Node:
        if isinstance(item, (Term, Apply)):
            return self.build(item, like, rewrites)
        array = np.asarray(item)
        if not (isinstance(item, np.ndarray) and array.dtype == like.dtype):
            array = np.asarray(item, dtype=like.dtype)
        return self.constant(like, np.array(array, copy=True))
