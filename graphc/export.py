"""Graphs and plans for other tools: :func:`to_networkx`, a :class:`networkx.DiGraph` of values.

``gc.to_networkx(target)`` takes what ``gc.render`` takes — a :class:`~graphc.Graph`
(every node), a Value or a list of Values (the nodes they need) or a compiled
:class:`~graphc.Program` (or its :class:`~graphc.Plan`) — and returns a
``networkx.DiGraph`` with a node per value and an edge per operand, so the graph
can be analysed with networkx's algorithms (``nx.dag_longest_path``,
``nx.ancestors``, ``G.out_degree``) or saved with ``nx.write_graphml`` for Gephi,
yEd or Cytoscape. Every attribute is a str, int, float or bool (an absent fact is
an absent attribute, never None), so ``write_graphml`` / ``read_graphml`` give the
same nodes, edges and attributes back.

Nodes are keyed by the value's name (``"x3"``, ``"dloss/dw1"``); a name met again
gets ``#`` and the node's id (a program: its step) after it, ``"w1#12"``. Node
attributes:

- ``name``, ``op`` (a source's kind for inputs, params and constants), ``shape``
  (``"8x4"``; ``"scalar"``; the batch size, ``None`` in a shape, is ``?``),
  ``dtype``, ``bytes`` (when the shape has no batch size);
- ``kind``: ``input``, ``param`` or ``const`` for a source; ``forward``, ``adjoint``
  (a node of the gradient), ``recompute`` (a program's clone of a forward value) or
  ``update`` (an op that reads a gradient, as an optimizer's do), as the pictures
  colour them;
- ``scope``: the :func:`graphc.scope` path (``""`` at top level);
- a graph's nodes: ``id``; ``role`` for a param (``param`` or ``state``);
  ``adjoint`` for a node the adjoint pass built (``seed``, ``vjp``, ``contribution``,
  ``accumulate`` or ``zero``, see :class:`graphc.ir.AdjointInfo`) and ``grad_of``, the
  key of the forward value it is (a step of) the gradient of, when that value is
  exported too; ``value`` for a constant of one element;
- a program's nodes: ``step`` (the instruction's position in the plan), ``buffer``
  (its number), ``storage`` (the buffer's kind: ``temp``, ``view``, ``output``,
  ``param``, or a source's), ``offset`` (in the arena, for ``temp`` buffers),
  ``mode`` and ``origin`` (see :class:`graphc.plan.Instruction`).

Edges go from an operand to the node that reads it: ``position`` is the operand's
place among the node's inputs (the first, if it is read at several places; then
``positions`` lists them all, ``"0,1"`` for ``x * x``). An edge that carries a
Jacobian-transpose term of ``∂ℓ/∂x = Σ_c J^T_{φc|x} · ∂ℓ/∂x(c)`` has ``term``, the
term as the pictures label it, ``"Jᵀ x3|w1"`` (consumer ``x3``, forward value ``w1``);
a plan does not record the terms, so a program's edges have none. In a program an
operand is the value its buffer holds at that step (a param read after its update
is the update's node). The graph's own attributes: ``name``, ``source`` (``graph``
or ``program``) and, for a program, ``arena_bytes`` and ``instructions``.

networkx is imported when :func:`to_networkx` is first called, so ``import graphc``
does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from graphc.compile import Program
from graphc.errors import GraphError
from graphc.gcpause import without_cyclic_gc
from graphc.ir import Graph, Node, Value, ancestors, dtype_name
from graphc.plan import Buffer, Plan
# The pictures' own rules, imported so that the kinds and J^T labels here are the ones the images show.
from graphc.render.graph_view import adjoint_facts, node_parts

if TYPE_CHECKING:
    import networkx

KINDS = ("input", "param", "const", "forward", "adjoint", "recompute", "update")
"""The values of a node's ``kind`` attribute."""

_TAG_KIND = {"forward": "forward", "backward": "adjoint", "recompute": "recompute", "update": "update"}
"""A plan instruction's tag → the kind of the value it computes."""

_SOURCE_STORAGE = ("input", "param", "const")


@without_cyclic_gc
def to_networkx(target: Graph | Value | Sequence[Value] | Program | Plan) -> "networkx.DiGraph":
    """A :class:`networkx.DiGraph` of ``target``'s values: a node per value, an edge per operand.

    ``target`` is a Graph (all its nodes), a Value or a list of Values of one graph
    (the nodes they need, as ``gc.render`` draws them), or a compiled Program or
    Plan (its sources and one node per instruction, with the plan's step and
    arena offset). See :mod:`graphc.export` for the attributes; all are GraphML
    types, so ``networkx.write_graphml`` writes the result as it is.

    Examples
    --------
    >>> import networkx as nx
    >>> import graphc as gc
    >>> with gc.Graph("g"):
    ...     x = gc.input("x", shape=(8, 4))
    ...     w = gc.param("w", shape=(4, 4))
    ...     y = gc.tanh(gc.matmul(x, w, name="z"), name="y")
    >>> G = gc.to_networkx(y)
    >>> sorted(G.nodes), G.nodes["z"]["shape"], G.edges["w", "z"]["position"]
    (['w', 'x', 'y', 'z'], '8x4', 1)
    >>> nx.dag_longest_path(G)
    ['x', 'z', 'y']
    """
    import networkx as nx

    plan = _plan_of(target)
    if plan is not None:
        return _plan_digraph(nx.DiGraph(), plan)
    graph, nodes = _selected(target)
    return _graph_digraph(nx.DiGraph(), graph, nodes)


def _plan_of(target: Any) -> Plan | None:
    if isinstance(target, Plan):
        return target
    if isinstance(target, Program):
        return target.plan  # a batch program not yet specialised says so here
    return None


def _selected(target: Any) -> tuple[Graph, list[Node]]:
    """The graph and the nodes to export (id order), or a GraphError saying what ``target`` should be."""
    if isinstance(target, Graph):
        return target, list(target.nodes)
    if isinstance(target, Value):
        return target.graph, ancestors([target.node])
    if isinstance(target, (list, tuple)):
        if not target:
            raise GraphError("to_networkx: the list of Values is empty; give a Graph, Values of one graph, or a Program")
        for index, item in enumerate(target):
            if not isinstance(item, Value):
                raise GraphError(
                    f"to_networkx: item {index} of the list is a {type(item).__name__} ({item!r:.40}); "
                    "give a Graph, a Value, a list of Values of one graph, or a compiled Program"
                )
        graph = target[0].graph
        for item in target:
            if item.graph is not graph:
                raise GraphError(
                    f"to_networkx: {item.node.describe()} belongs to graph {item.graph.name!r}, the first Value to "
                    f"graph {graph.name!r}; export Values of one graph"
                )
        return graph, ancestors(v.node for v in target)
    raise GraphError(
        f"to_networkx: expected a Graph, a Value, a list of Values or a compiled Program (or its Plan), "
        f"got a {type(target).__name__} ({target!r:.40})"
    )


# --- attribute values, GraphML types only -------------------------------------------------------


def shape_text(shape: Iterable[int | None]) -> str:
    """``"8x4"``; ``"scalar"`` for ``()``; ``"?x784"`` for a batch size."""
    dims = ["?" if d is None else str(int(d)) for d in shape]
    return "x".join(dims) if dims else "scalar"


def _unique_key(name: str, suffix: int, taken: set[str]) -> str:
    """``name``, or ``name#suffix`` when it is taken (``#`` again until free)."""
    key = name
    while key in taken:
        key = f"{key}#{suffix}"
    taken.add(key)
    return key


def _positions_attrs(positions: list[int]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"position": positions[0]}
    if len(positions) > 1:
        attrs["positions"] = ",".join(map(str, positions))
    return attrs


def _operand_positions(operands: Sequence[Any]) -> dict[Any, list[int]]:
    """Each distinct operand and the places it is read at, in order."""
    places: dict[Any, list[int]] = {}
    for index, operand in enumerate(operands):
        places.setdefault(operand, []).append(index)
    return places


# --- a graph's nodes ------------------------------------------------------------------------------


def _graph_digraph(G: "networkx.DiGraph", graph: Graph, nodes: list[Node]) -> "networkx.DiGraph":
    part = node_parts(nodes)
    facts = adjoint_facts(graph, set(nodes))
    taken: set[str] = set()
    key = {node: _unique_key(node.name, node.id, taken) for node in nodes}
    G.graph.update(name=graph.name, source="graph")
    for node in nodes:
        G.add_node(key[node], **_node_attrs(node, node.kind if node.is_source else part[node], key))
    for node in nodes:
        for operand, positions in _operand_positions(node.inputs).items():
            attrs = _positions_attrs(positions)
            terms = facts.labels.get((operand, node))
            if terms:
                attrs["term"] = "; ".join(dict.fromkeys(terms))
            G.add_edge(key[operand], key[node], **attrs)
    return G


def _node_attrs(node: Node, kind: str, key: dict[Node, str]) -> dict[str, Any]:
    aval = node.aval
    attrs: dict[str, Any] = {"name": node.name, "id": node.id, "op": node.op_name, "shape": shape_text(aval.shape),
                             "dtype": dtype_name(aval.dtype), "kind": kind, "scope": node.scope}
    if not aval.has_batch:
        attrs["bytes"] = int(aval.nbytes)
    if node.kind == "param" and node.role is not None:
        attrs["role"] = node.role
    info = node.adjoint
    if info is not None:
        attrs["adjoint"] = info.role
        if info.forward in key:
            attrs["grad_of"] = key[info.forward]
    if node.kind == "const":
        data = node.data
        if data is not None and data.size == 1:
            attrs["value"] = float(data.reshape(()))
    return attrs


# --- a plan's values ------------------------------------------------------------------------------


def _plan_digraph(G: "networkx.DiGraph", plan: Plan) -> "networkx.DiGraph":
    taken: set[str] = set()
    holder: dict[int, str] = {}  # buffer -> the key of the node whose value it holds now
    G.graph.update(name=plan.name, source="program", arena_bytes=int(plan.arena_bytes),
                   instructions=len(plan.instructions))
    for buf in plan.buffers:
        if buf.kind in _SOURCE_STORAGE:  # bound before the first step: inputs, params, constants
            key = _unique_key(buf.name, buf.id, taken)
            holder[buf.id] = key
            attrs = _buffer_attrs(buf, buf.kind)
            value = plan.constants.get(buf.id)
            if value is not None and value.size == 1:
                attrs["value"] = float(value.reshape(()))
            G.add_node(key, **attrs)
    for step, ins in enumerate(plan.instructions):
        buf = plan.buffers[ins.out]
        key = _unique_key(buf.name, step, taken)
        attrs = _buffer_attrs(buf, _TAG_KIND[ins.tag])
        attrs.update(op=ins.op, scope=ins.scope, step=step, mode=ins.mode)
        if ins.origin:
            attrs["origin"] = ins.origin
        G.add_node(key, **attrs)
        for operand, positions in _operand_positions(ins.args).items():
            G.add_edge(holder[operand], key, **_positions_attrs(positions))
        holder[ins.out] = key
    return G


def _buffer_attrs(buf: Buffer, kind: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"name": buf.name, "op": buf.kind, "shape": shape_text(buf.shape), "dtype": buf.dtype,
                             "bytes": int(buf.nbytes), "kind": kind, "scope": "", "buffer": buf.id,
                             "storage": buf.kind}
    if buf.offset is not None:
        attrs["offset"] = int(buf.offset)
    return attrs
