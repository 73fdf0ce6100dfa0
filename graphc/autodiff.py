"""The adjoint pass: ``grad(y, wrt)`` builds gradients as new nodes of y's graph.

For every node x between ``wrt`` and ``y``, in reverse topological order,

    ∂ℓ/∂x = Σ_{c consumes x}  J^T_{φc|x} · ∂ℓ/∂x(c)

where each term is the VJP rule of the consumer's op, written with graph ops
(TF1's ``tf.gradients``, Theano/PyTensor's ``grad``). A value used by several
consumers — fan-out, or a parameter shared by two φ like the lecture's w(1) —
gets one ``add_n`` accumulation node over its terms. Nothing flows where no
path exists: such terms are never built (a symbolic zero), and a ``wrt`` that
``y`` does not depend on gets a zero broadcast to its shape at the output.

Because gradients are ordinary nodes, they can be compiled, rendered, and
differentiated again.

Scopes (:func:`graphc.scope`): the nodes of the term J^T_{φc|x} · ∂ℓ/∂x(c) are
built in the scope of the consumer c whose VJP rule makes them, the sum over
the consumers of x in the scope of x, the seed in the scope of y, and the zero
of an unreached ``wrt`` in the scope of that ``wrt`` — so a block's scope
("encoder/block3") holds its forward nodes and the gradient nodes of its ops,
whatever scope ``grad`` is called in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.gcpause import without_cyclic_gc
from graphc.ir import FLOAT_DTYPES, AdjointInfo, Graph, Node, Value, as_values
from graphc.ops import add_n, broadcast_to
from graphc.ops.core import ZERO, constant_node


@dataclass(frozen=True)
class Contribution:
    """One term J^T_{φ consumer | forward} · ∂ℓ/∂consumer, held by node ``term``.

    ``cotangent`` is the node holding the ∂ℓ/∂consumer the term applies J^T to
    (the seed, a term, or the Σ of the consumer's terms); pictures label the
    edge through which it enters the term.
    """

    term: Node
    forward: Node
    consumer: Node
    cotangent: Node


@without_cyclic_gc
def grad(y: Value, wrt: Value | Sequence[Value], seed: Any = None) -> Value | list[Value]:
    """Gradients of ``y`` with respect to each of ``wrt``, as Values of y's graph.

    ``y`` must be a scalar unless ``seed``, the cotangent ∂ℓ/∂y (a Value or an
    array of y's shape), is given; then the result is the vector-Jacobian
    product ``seedᵀ · ∂y/∂w``. Returns one Value for one ``wrt``, else a list.
    A ``wrt`` that ``y`` does not depend on gets zeros of its shape. An empty
    ``wrt`` list is a GraphError (there is nothing to differentiate against).
    """
    if not isinstance(y, Value):
        raise GraphError(f"grad: y must be a graphc Value, got {type(y).__name__} {y!r:.40}")
    _check_differentiable(y, "y")
    single = isinstance(wrt, Value)
    targets = [wrt] if single else _wrt_values(wrt)
    graph = y.graph
    for w in targets:
        _check_differentiable(w, "wrt")
        if w.graph is not graph:
            raise GraphError(
                f"grad: wrt {w.node.describe()} belongs to graph {w.graph.name!r}, y {y.node.describe()} to "
                f"another graph {graph.name!r}; differentiate with respect to Values of y's graph"
            )

    seed_node = _seed_node(y, seed)
    between = _nodes_between([w.node for w in targets], y.node)
    adjoints = _adjoint_pass(graph, y.node, seed_node, between)
    results = [Value(adjoints[w.node]) if w.node in adjoints else _zero_like(w) for w in targets]
    _name_results(y, targets, results)
    return results[0] if single else results


def _wrt_values(wrt: Any) -> list[Value]:
    if not isinstance(wrt, (list, tuple)):
        raise GraphError(f"grad: wrt must be a Value or a list of Values, got {wrt!r:.40}")
    if not wrt:
        raise GraphError("grad: wrt is empty; give the Values to differentiate with respect to (a Value or a non-empty list)")
    return as_values(wrt, "grad: wrt")


def _check_differentiable(v: Value, role: str) -> None:
    if v.dtype not in FLOAT_DTYPES:
        raise GraphError(
            f"grad: {role} {v.node.describe()} is not a float value, so it has no gradient; "
            "differentiate float32/float64 values only"
        )


def _seed_node(y: Value, seed: Any) -> Node:
    if seed is None:
        if y.shape != ():
            raise GraphError(
                f"y {y.node.describe()} is not a scalar: give seed=, the cotangent of shape {y.shape}, "
                "or reduce y first (e.g. gc.sum(y))"
            )
        with y.graph.at_scope(y.node.scope):
            node = constant_node(y.graph, 1.0, y.dtype)
    elif isinstance(seed, Value):
        if seed.graph is not y.graph or seed.aval != y.aval:
            raise GraphError(
                f"grad: seed {seed.node.describe()} must be a Value of y's graph with y's shape and dtype "
                f"{y.aval} (y is {y.node.describe()})"
            )
        return seed.node
    else:
        try:
            array = np.asarray(seed)
        except ValueError as err:
            raise GraphError(f"grad: seed is not a rectangular array ({err}); give an array of y's shape {y.shape}") from None
        if array.dtype.kind not in "fiu":
            raise GraphError(f"grad: seed has dtype {array.dtype}; give a float array of y's shape {y.shape}")
        if array.shape != y.shape:
            raise GraphError(
                f"grad: seed has shape {array.shape}, but y {y.node.describe()} has shape {y.shape}; "
                "the seed is the cotangent of y and has its shape"
            )
        with y.graph.at_scope(y.node.scope):
            node = constant_node(y.graph, array, y.dtype, "grad: seed")
    node.adjoint = AdjointInfo("seed", forward=y.node)
    return node


def _nodes_between(sources: list[Node], y: Node) -> set[Node]:
    """Nodes that depend on some source and that y depends on (both included).

    Node ids are positions in creation order, a topological order, so two
    linear sweeps over ``graph.nodes[first source : y]`` suffice.
    """
    span = y.graph.nodes[min(s.id for s in sources): y.id + 1]
    downstream = set(sources)
    for node in span:
        if node not in downstream and any(i in downstream for i in node.inputs):
            downstream.add(node)
    if y not in downstream:
        return set()
    between = {y}
    for node in reversed(span):
        if node in between:
            between.update(i for i in node.inputs if i in downstream)
    return between


def _adjoint_pass(graph: Graph, y: Node, seed: Node, between: set[Node]) -> dict[Node, Node]:
    """∂ℓ/∂x for every x in ``between``, visiting consumers before what they consume."""
    terms: dict[Node, list[Node]] = {y: [seed]} if between else {}
    adjoints: dict[Node, Node] = {}
    for node in sorted(between, key=lambda n: n.id, reverse=True):
        pending = terms.pop(node, None)
        if not pending:
            continue
        total = pending[0] if len(pending) == 1 else _accumulate(node, pending)
        adjoints[node] = total
        for index, operand in enumerate(node.inputs):
            if operand in between:
                term = _contribution(graph, node, index, operand, total)
                if term is not None:
                    terms.setdefault(operand, []).append(term)
    return adjoints


def _accumulate(node: Node, pending: list[Node]) -> Node:
    with node.graph.at_scope(node.scope):
        total = add_n(*(Value(t) for t in pending)).node
    total.adjoint = AdjointInfo("accumulate", forward=node)
    return total


def _contribution(graph: Graph, consumer: Node, index: int, operand: Node, cotangent: Node) -> Node | None:
    """J^T_{φ consumer | operand} · cotangent, built by the consumer op's VJP rule."""
    rule = consumer.op.vjp_rule(index)
    if rule is ZERO:
        return None
    if rule is None:
        raise GraphError(
            f"op {consumer.op.name!r} defines no VJP for operand {index}: cannot differentiate "
            f"{consumer.describe()} with respect to {operand.describe()}"
        )
    # open: a rule may build constants with gc.constant; in the consumer's scope, like its forward node
    with graph, graph.at_scope(consumer.scope), graph.record() as created:
        term = rule(Value(cotangent), Value(consumer), *(Value(n) for n in consumer.inputs), **consumer.attrs)
    if isinstance(term, Value) and term.graph is not graph:
        raise GraphError(
            f"the VJP of op {consumer.op.name!r} (node {consumer.name!r}) for operand {index} returned a Value of "
            f"another graph, {term.node.describe()}; build the cotangent from the rule's arguments"
        )
    if not isinstance(term, Value) or term.aval != operand.aval:
        got = f"{term.shape} {term.dtype.name}" if isinstance(term, Value) else type(term).__name__
        raise GraphError(
            f"the VJP of op {consumer.op.name!r} (node {consumer.name!r}) for operand {index} returned {got}, "
            f"but operand {operand.describe()} needs {operand.aval}"
        )
    for node in created:
        node.adjoint = AdjointInfo("vjp", forward=operand, consumer=consumer)
    if term.node in created:
        term.node.adjoint = AdjointInfo("contribution", forward=operand, consumer=consumer)
    graph.contributions.append(Contribution(term.node, operand, consumer, cotangent))
    return term.node


def _zero_like(w: Value) -> Value:
    # A Value, not a bare Node: bind() finds the graph from Value operands only, so a
    # Node here would fall back to the open graph and fail outside `with gc.Graph()`.
    with w.graph.at_scope(w.node.scope):
        zero = broadcast_to(Value(constant_node(w.graph, 0.0, w.dtype)), w.shape)
    zero.node.adjoint = AdjointInfo("zero", forward=w.node)
    return zero


def _name_results(y: Value, targets: list[Value], results: list[Value]) -> None:
    """Name fresh gradient nodes as PyTensor does, ``dloss/dw1``."""
    for w, g in zip(targets, results):
        info = g.node.adjoint
        if info is not None and info.forward is w.node and info.role in ("contribution", "accumulate", "zero"):
            g.node.name = f"d{y.name}/d{w.name}"
