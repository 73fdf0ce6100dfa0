"""The graph views: the forward, adjoint and joint pictures of a graph's nodes.

Each node is one box: inputs, params and constants in shapes of their own, ops
as rounded boxes, adjoint nodes rose-coloured, updates (ops that read a
gradient, as an optimizer's do) lavender; the joint view draws the forward
graph, the adjoint graph and the updates in three clusters. What the
adjoint pass recorded (:class:`graphc.autodiff.Contribution`) labels the edges
that carry the Jacobian-transpose terms of ``∂ℓ/∂x = Σ_c J^T_{φc|x} · ∂ℓ/∂x(c)``.

Scalar hyper-parameters (a learning rate, a scale factor) are no boxes: their
value is written into the labels of the ops that read them, ``mul(x, 0.5)``,
and an update that reads one, read once, is written out where it is read:
``sub(W, mul(0.3, dloss/dW))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from graphc.autodiff import Contribution
from graphc.errors import GraphError
from graphc.ir import Graph, Node, Value, ancestors
from graphc.render.scene import (
    CHECKPOINT_BORDER, CHECKPOINT_EDGE, COLOURS, CONTRIBUTION_EDGE, Arrow, Box, Scene, count_text, shape_text,
    value_text,
)

ADJOINT_TITLE = "adjoint graph: ∂ℓ/∂x = Σ over the consumers c of x of Jᵀ c|x · ∂ℓ/∂c"
UPDATE_TITLE = "updates: ops that read the gradients (W ← W − η·∂ℓ/∂W)"


def _auto_named(node: Node) -> bool:
    return node.name == f"{node.op_name}_{node.id}"


def node_parts(nodes: Sequence[Node]) -> dict[Node, str]:
    """forward, adjoint, or update (an ordinary op that reads a gradient, e.g. ``w − η·dw``)."""
    part: dict[Node, str] = {}
    for node in nodes:  # id order: inputs first
        if node.adjoint is not None:
            part[node] = "adjoint"
        elif any(part.get(i, "forward") != "forward" for i in node.inputs):
            part[node] = "update"
        else:
            part[node] = "forward"
    return part


# --- hyper-parameters, written into labels ---------------------------------------------------------


def _is_seed(node: Node) -> bool:
    """The cotangent ∂ℓ/∂y that ``grad`` starts from (drawn as a rose ellipse of its own)."""
    return node.adjoint is not None and node.adjoint.role == "seed"


def _is_hyper_parameter(node: Node) -> bool:
    """A scalar constant that is no seed: a learning rate, a scale factor, the 1 of ``1 − y²``."""
    return node.kind == "const" and node.data is not None and node.data.size == 1 and not _is_seed(node)


@dataclass
class _Folds:
    """Nodes written into the labels of the ops that read them, instead of drawn as boxes.

    ``constants``: scalar hyper-parameters read by some op of the picture,
    written as their value. ``inlined``: updates that read one of them and are
    read by one update, written out in that update's label, ``mul(0.3, dW)``.
    """

    constants: set[Node]
    inlined: set[Node]

    def __contains__(self, node: Node) -> bool:
        return node in self.constants or node in self.inlined

    def operands(self, node: Node) -> list[Node]:
        """What arrows come from into ``node``'s box: its inputs, those of inlined updates, no constants."""
        found: list[Node] = []
        for i in node.inputs:
            if i in self.inlined:
                found.extend(self.operands(i))
            elif i not in self.constants:
                found.append(i)
        return found

    def written(self, node: Node) -> list[Node]:
        """The folded nodes that ``node``'s label writes, outermost first."""
        found: list[Node] = []
        for i in node.inputs:
            if i in self:
                found.append(i)
            if i in self.inlined:
                found.extend(self.written(i))
        return found

    def expression(self, node: Node) -> str:
        """``sub(W, mul(0.3, dW))``: the op applied to its operands, folded ones written out."""
        return f"{node.op_name}({', '.join(self._operand_text(i) for i in node.inputs)})"

    def _operand_text(self, node: Node) -> str:
        if node in self.constants:
            return value_text(node.data)
        if node in self.inlined:
            return self.expression(node)
        return _operand_name(node)


def _operand_name(node: Node) -> str:
    """How a label names a node drawn as a box of its own: by the text that box shows first."""
    if _is_seed(node):
        return f"∂ℓ/∂{node.adjoint.forward.name}"
    if node.kind == "const":
        return f"const {shape_text(node.shape)}"
    return node.name


def _folds(nodes: Sequence[Node], part: dict[Node, str]) -> _Folds:
    """The hyper-parameters among ``nodes`` that some op reads, and the updates that read them, read once."""
    consumers: dict[Node, list[Node]] = {}
    for node in nodes:
        for i in node.inputs:
            consumers.setdefault(i, []).append(node)
    constants = {n for n in nodes if _is_hyper_parameter(n) and n in consumers}
    inlined: set[Node] = set()
    for n in nodes:  # id order; what reads an inlined node is no box inlined in turn: labels nest one level
        if (part[n] == "update" and any(i in constants for i in n.inputs) and not any(i in inlined for i in n.inputs)
                and len(consumers.get(n, ())) == 1 and part[consumers[n][0]] == "update"):
            inlined.add(n)
    return _Folds(constants, inlined)


# --- what the adjoint pass recorded -----------------------------------------------------------------


@dataclass
class AdjointFacts:
    """What the contribution records say, arranged for drawing."""

    labels: dict[tuple[Node, Node], list[str]]  # (src, dst) edge -> Jᵀ labels
    totals: dict[Node, list[str]]  # node -> names of the forward values it is ∂ℓ/∂ of


def _contribution_text(consumer: Node, forward: Node) -> str:
    return f"Jᵀ {consumer.name}|{forward.name}"


def _cotangent_entry(c: Contribution) -> Node | None:
    """The input of the term through which the cotangent ∂ℓ/∂consumer enters it.

    That is the recorded cotangent itself, or the step of this J^T (a node the
    VJP rule built, e.g. the reshape before a broadcast) that carries it. None
    when the rule built no node of its own (``add`` passes the cotangent on).
    """
    if not _built_by_rule(c.term, c):
        return None
    carries = {c.cotangent}
    for step in _rule_steps(c):  # id order: what a step reads comes before it
        if any(i in carries for i in step.inputs):
            carries.add(step)
    return next((i for i in c.term.inputs if i in carries), None)


def _built_by_rule(node: Node, c: Contribution) -> bool:
    info = node.adjoint
    return info is not None and info.forward is c.forward and info.consumer is c.consumer


def _rule_steps(c: Contribution) -> list[Node]:
    """The nodes of c's VJP rule that its term is built from, in id order."""
    steps: set[Node] = set()
    stack = [c.term]
    while stack:
        for i in stack.pop().inputs:
            if i not in steps and _built_by_rule(i, c):
                steps.add(i)
                stack.append(i)
    return sorted(steps, key=lambda n: n.id)


def adjoint_facts(graph: Graph, shown: set[Node]) -> AdjointFacts:
    """Edge labels for the J^T terms and the ∂ℓ/∂x each adjoint node holds.

    A term added into a Σ labels its edge into the Σ; a term that is the whole
    gradient (one consumer) labels the edge through which the cotangent enters it.
    """
    accumulations: dict[Node, list[Node]] = {}
    for node in sorted(shown, key=lambda n: n.id):
        info = node.adjoint
        if info is not None and info.role == "accumulate" and info.forward is not None:
            accumulations.setdefault(info.forward, []).append(node)
    labels: dict[tuple[Node, Node], list[str]] = {}
    totals: dict[Node, list[str]] = {}
    for c in graph.contributions:
        if c.term not in shown:
            continue
        text = _contribution_text(c.consumer, c.forward)
        sums = [a for a in accumulations.get(c.forward, []) if c.term in a.inputs]
        if sums:
            labels.setdefault((c.term, sums[0]), []).append(text)
            continue
        totals.setdefault(c.term, []).append(c.forward.name)
        source = _cotangent_entry(c)
        if source is not None and source in shown:
            labels.setdefault((source, c.term), []).append(text)
    for forward, sums in accumulations.items():
        for a in sums:
            totals.setdefault(a, []).append(forward.name)
    return AdjointFacts(labels, totals)


# --- boxes ------------------------------------------------------------------------------------------


def _source_box(node: Node, part: str) -> Box:
    kind = node.op_name
    shape = shape_text(node.shape)
    if kind == "const":
        data = node.data
        text = value_text(data) if data is not None and data.size == 1 else f"const {shape}"
        lines = [text]
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": COLOURS["const"], "fontsize": "8",
                 "height": "0.25", "margin": "0.02"}
        if _is_seed(node):
            lines = [f"seed ∂ℓ/∂{node.adjoint.forward.name} = {text}"]
            attrs = {"shape": "ellipse", "style": "filled", "fillcolor": COLOURS["adjoint"]}
    elif kind == "input":
        lines = [node.name, f"input {shape}" + ("" if node.dtype.kind == "f" else f" {node.dtype.name}")]
        attrs = {"shape": "invhouse", "style": "filled", "fillcolor": COLOURS["input"]}
    else:
        lines = [node.name, f"param {shape}"]
        attrs = {"shape": "cylinder", "style": "filled", "fillcolor": COLOURS["param"]}
    value = None
    if kind == "const" and node.data is not None and node.data.size == 1:
        value = float(node.data)
    signature = (part, kind, node.shape, str(node.dtype), value)
    return Box(lines, attrs, part, signature, kind, node.name, computed=False)


def _op_box(node: Node, part: str, facts: AdjointFacts, kept: bool, folds: _Folds) -> Box:
    info = node.adjoint
    op = node.op_name
    written = folds.written(node)
    if written:
        lines = [node.name, folds.expression(node)]
    else:
        lines = [node.name] if _auto_named(node) else [node.name, op]
    fill = COLOURS[part] if part in COLOURS else COLOURS["forward"]
    attrs = {"shape": "box", "style": "rounded,filled", "fillcolor": fill}
    if info is not None and info.role == "accumulate":
        lines = [f"Σ {node.name}", op]
        attrs.update(fillcolor=COLOURS["accumulate"], penwidth="1.6")
    for name in facts.totals.get(node, []):
        if not (node.name.startswith("d") and node.name.endswith(f"/d{name}")):
            lines.append(f"= ∂ℓ/∂{name}")
    if kept:
        attrs.update(peripheries="2", color=CHECKPOINT_BORDER)
    role = info.role if info is not None else None
    signature = (part, op, role, node.shape, str(node.dtype), kept,
                 tuple((i.op_name, i.shape) for i in node.inputs), tuple(sorted(map(str, node.attrs.items()))),
                 tuple(value_text(n.data) for n in written if n in folds.constants))
    # Repeats are found by the shapes: a loop's first step reads an initial value where the others read the
    # previous step's (an op of another name), attribute values vary along a loop (x[t]), and the last step's
    # value may be kept for the backward pass where the others are not.
    motif = signature[:5] + (tuple(i.shape for i in node.inputs), tuple(sorted(node.attrs)))
    return Box(lines, attrs, part, signature, op, node.name, motif=motif)


def _reference_box(node: Node) -> Box:
    lines = [node.name, f"{node.op_name} (read)" if node.is_source else "forward value (read)"]
    attrs = {"shape": "box", "style": "rounded,dashed", "color": "#8c8c8c", "fontcolor": "#6b6b6b"}
    return Box(lines, attrs, "reference", ("reference", node.op_name, node.shape), node.op_name, node.name,
               computed=not node.is_source)


def select_nodes(target: Graph | Sequence[Value]) -> tuple[Graph, list[Node], str]:
    """The graph, the nodes to draw (id order), and a phrase naming them: ``graph 'mlp' (what loss needs)``."""
    if isinstance(target, Graph):
        return target, list(target.nodes), f"graph {target.name!r}"
    values = [target] if isinstance(target, Value) else list(target)
    if not values:
        raise GraphError("render: nothing to draw (an empty list of Values)")
    for v in values:
        if not isinstance(v, Value):
            raise GraphError(f"render: expected a Graph, a Program or Values, got a list holding {type(v).__name__}")
    graph = values[0].graph
    if any(v.graph is not graph for v in values):
        raise GraphError("render: the Values belong to different graphs")
    names = ", ".join(v.name for v in values[:3]) + (", …" if len(values) > 3 else "")
    needs = "needs" if len(values) == 1 else "need"
    return graph, ancestors(v.node for v in values), f"graph {graph.name!r} (what {names} {needs})"


def graph_scene(target: Graph | Sequence[Value], view: str) -> Scene:
    """The boxes and arrows of a forward, adjoint or joint view of a graph.

    The title says which view of what, and how many of the selected nodes it
    shows (folded hyper-parameters count as shown where a label writes them).
    """
    graph, nodes, what = select_nodes(target)
    part = node_parts(nodes)
    folds = _folds(nodes, part)
    drawn = _drawn_nodes(nodes, part, folds, view)
    drawn_set = set(drawn)
    facts = adjoint_facts(graph, drawn_set) if view != "forward" else AdjointFacts({}, {})
    read_by_backward = {i for n in drawn if part[n] != "forward" for i in folds.operands(n) if part.get(i) == "forward"}
    referenced = {n for n in drawn if view == "adjoint" and part[n] == "forward"}
    index: dict[Node, int] = {}
    boxes: list[Box] = []
    for node in drawn:
        index[node] = len(boxes)
        if node in referenced:
            boxes.append(_reference_box(node))
        elif node.is_source:
            boxes.append(_source_box(node, "adjoint" if part[node] == "adjoint" else "forward"))
        else:
            kept = view == "joint" and node in read_by_backward
            boxes.append(_op_box(node, part[node], facts, kept, folds))
            boxes[-1].kept = kept
        _unit_facts(boxes[-1], node, part[node], node in referenced, index)
    arrows = [_graph_arrow(i, n, index, part, facts) for n in drawn if n not in referenced
              for i in folds.operands(n) if i in drawn_set]
    legend = _graph_legend(view, drawn, part, facts)
    shown = drawn_set.union(*(folds.written(n) for n in drawn if n not in referenced))
    title = f"{view} view of {what}: {count_text(len(shown), len(nodes), 'nodes')}"
    return Scene(title, boxes, arrows, legend, _graph_clusters(view, drawn, part), bytes_meaning="values")


def _unit_facts(box: Box, node: Node, part: str, referenced: bool, index: dict[Node, int]) -> None:
    """What a collapsed unit counts of ``node``'s box: its scope, kind, size and the forward box it goes with.

    An adjoint node goes with its consumer (whose J^T it applies; its scope is
    the consumer's too), or else with the forward value it is the gradient of,
    unless that is a param or an input: the J^T of an RNN's ``x[t] · W`` for
    ``W`` goes with what it reads (``x[t]``, time step t), not with ``W``,
    which every step reads.
    """
    box.scope = node.scope
    if referenced:
        box.kind = "reference"
    elif part == "adjoint":
        box.kind = "adjoint"
    else:
        box.kind = "source" if node.is_source else part
    box.nbytes = None if node.aval.has_batch else node.aval.nbytes
    info = node.adjoint
    if info is not None:
        partner = info.consumer if info.consumer in index else info.forward
        box.anchor = None if partner is None or partner.is_source else index.get(partner)


def _drawn_nodes(nodes: Sequence[Node], part: dict[Node, str], folds: _Folds, view: str) -> list[Node]:
    """The nodes of ``view`` that get boxes, in id order; the adjoint view adds the forward values it reads."""
    wanted = {"forward": ("forward",), "adjoint": ("adjoint", "update"), "joint": ("forward", "adjoint", "update")}[view]
    drawn = [n for n in nodes if part[n] in wanted and n not in folds]
    if view == "adjoint":
        read = {i for n in drawn for i in folds.operands(n) if part.get(i) == "forward"}
        drawn = sorted(set(drawn) | read, key=lambda n: n.id)
    return drawn


def _graph_clusters(view: str, drawn: Sequence[Node], part: dict[Node, str]) -> dict[str, str]:
    """The joint view's clusters: the forward graph, the adjoint graph and, if any, the updates."""
    if view != "joint":
        return {}
    clusters = {"forward": "forward graph", "adjoint": ADJOINT_TITLE}
    if any(part[n] == "update" for n in drawn):
        clusters["update"] = UPDATE_TITLE
    return clusters


def _graph_arrow(src: Node, dst: Node, index: dict[Node, int], part: dict[Node, str], facts: AdjointFacts) -> Arrow:
    texts = facts.labels.get((src, dst))
    shape = shape_text(src.shape)
    if texts:
        label = "\n".join(dict.fromkeys(texts)) + "\n" + shape
        return Arrow(index[src], index[dst], label,
                     {"color": CONTRIBUTION_EDGE, "fontcolor": CONTRIBUTION_EDGE, "penwidth": "1.5"})
    attrs = {}
    if part.get(src) == "forward" and part.get(dst) != "forward":
        attrs = {"color": CHECKPOINT_EDGE, "fontcolor": CHECKPOINT_EDGE}
    return Arrow(index[src], index[dst], shape, attrs)


def _graph_legend(view: str, drawn: Sequence[Node], part: dict[Node, str], facts: AdjointFacts) -> list[str]:
    """The legend's keys for what the view draws (a seed is an adjoint box, not a grey constant)."""
    if view == "adjoint":
        ops = {n.op_name for n in drawn if part[n] != "forward" and not _is_seed(n)}
        keys = ["const"] if "const" in ops else []
    else:
        ops = {n.op_name for n in drawn if not _is_seed(n)}
        keys = [k for k in ("input", "param", "const") if k in ops] + ["op"]
    if view != "forward" and any(part[n] == "adjoint" for n in drawn):
        keys += ["adjoint", "accumulate", "contribution"] if facts.labels else ["adjoint"]
    if any(part[n] == "update" for n in drawn):
        keys.append("update")
    if view == "joint" and any(part[n] == "adjoint" for n in drawn):
        keys.append("kept")
    if view == "adjoint":
        keys.append("reference")
    return keys

