"""Pictures of graphs and plans, drawn with graphviz.

``to_dot(target, view)`` returns a :class:`graphviz.Digraph` (it shows inline in
Jupyter) and ``render(target, path, view)`` writes it as an image whose type
comes from the suffix (``.png``, ``.svg``, ``.pdf``). The target is a
:class:`~graphc.Graph`, a list of :class:`~graphc.Value` (the part of the graph
they need), or a :class:`~graphc.Program`. The views:

- ``"forward"``: the φ nodes the user wrote;
- ``"adjoint"``: the nodes ``grad`` built, with the forward values they read
  drawn as dashed references;
- ``"joint"`` (the default for graphs): both, the adjoint inside a cluster;
- ``"plan"`` (the default for programs): the instructions of the compiled
  plan, numbered in execution order, with their buffers and arena offsets.

What the pictures show:

- inputs, params and constants have shapes and colours of their own, ops are
  rounded boxes; adjoint nodes are rose-coloured;
- an edge carries the shape of its value (``8×4``); an edge that carries a
  Jacobian-transpose term of ``∂ℓ/∂x = Σ_c J^T_{φc|x} · ∂ℓ/∂x(c)`` is red and
  says which one, ``Jᵀ x3|w1`` (consumer ``x3``, forward value ``w1``);
- an accumulation of several terms (``add_n``) is marked ``Σ``;
- a forward value the backward pass reads (a kept checkpoint) has a double
  border; in a plan, recomputed instructions are orange and marked ``↻``;
- the nodes (or instructions) of a :func:`graphc.scope` are drawn inside a
  dashed cluster labelled with the scope's path, nested as the scopes are (in
  the joint view, inside the forward and the adjoint clusters each).

Every label is escaped, so names with ``: / " < \\`` are drawn as written.
A picture of more than ``max_nodes`` boxes (150 by default) is shrunk: runs
of a repeated block (a layer of a deep chain, say) keep their first and last
copies and draw the copies in between as one ``×k`` box, and if that is not
enough, consecutive nodes are grouped into boxes that list their ops.
``max_nodes=None`` draws every node; ``collapse=False`` raises instead.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Sequence

import graphviz
import numpy as np

from graphc.errors import GraphError
from graphc.ir import Graph, Node, Value, ancestors

if TYPE_CHECKING:
    from graphc.compile import Program
    from graphc.plan import Plan

VIEWS = ("forward", "adjoint", "joint", "plan")
FORMATS = ("png", "svg", "pdf")
DEFAULT_MAX_NODES = 150
MAX_PERIOD = 64  # the longest repeated block looked for, in boxes
MIN_HIDDEN = 4  # a repeated block is collapsed only if that hides at least this many boxes
EDGES_PER_BOX = 1.0  # a shrunk picture with more arrows than this × max_nodes is shrunk further
CHAIN_MAX = 60  # plans of at most this many boxes are drawn strictly in execution order

FONT = "Helvetica,Arial,sans-serif"

# Fill colours, one per kind of box.
COLOURS = {
    "input": "#cfe8cf",
    "param": "#fbe3b0",
    "const": "#f0f0f0",
    "forward": "#dce9f7",
    "adjoint": "#f9d9d4",
    "accumulate": "#f0a898",
    "update": "#e4d9f3",
    "recompute": "#ffcf99",
    "group": "#ececec",
    "reference": "#ffffff",
}
EDGE = "#5f5f5f"
CONTRIBUTION_EDGE = "#c0392b"
CHECKPOINT_EDGE = "#7f9fc8"
CHECKPOINT_BORDER = "#1f4e8c"
CLUSTER_FILL = "#fff6f3"
CLUSTER_BORDER = "#e3a99c"
ADJOINT_TITLE = "adjoint graph: ∂ℓ/∂x = Σ over the consumers c of x of Jᵀ c|x · ∂ℓ/∂c"
SCOPE_CLUSTER_STYLE = {"style": "rounded,dashed", "color": "#9a9a9a", "fontcolor": "#555555", "fontsize": "10"}
CLUSTER_STYLE = {
    "forward": {"style": "rounded", "color": "#a9c1e0", "fontcolor": "#2c5282"},
    "adjoint": {"style": "rounded,filled", "fillcolor": CLUSTER_FILL, "color": CLUSTER_BORDER, "fontcolor": "#9c3d2e"},
    "backward": {"style": "rounded,filled", "fillcolor": CLUSTER_FILL, "color": CLUSTER_BORDER, "fontcolor": "#9c3d2e"},
}


# --- a picture before it is DOT ------------------------------------------------------------


@dataclass
class Box:
    """One box of the picture: label lines, graphviz attributes and what collapsing needs."""

    lines: list[str]
    attrs: dict[str, str]
    part: str  # "forward", "adjoint", "update", "reference", "source" (decides the cluster)
    signature: Hashable  # equal signatures: the same kind of box (for repeated blocks)
    op: str  # for the summary of a group
    name: str
    computed: bool = True  # False for inputs, params and constants
    in_order: bool = False  # plan instructions: drawn one below the other, in execution order
    scope: str = ""  # the gc.scope path of the node or instruction: its box is drawn in that scope's cluster


@dataclass
class Arrow:
    """An edge between boxes ``src`` and ``dst`` (indices into the box list)."""

    src: int
    dst: int
    label: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Scene:
    """Boxes in a topological order, arrows, the legend and the title of one picture."""

    title: str
    boxes: list[Box]
    arrows: list[Arrow]
    legend: list[str]  # keys of LEGEND
    clusters: dict[str, str]  # part -> cluster label
    notes: list[str] = field(default_factory=list)
    graph_attrs: dict[str, str] = field(default_factory=dict)


# --- labels ----------------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """``text`` safe inside a DOT label: backslashes doubled (``\\n`` etc. stay literal)."""
    return str(text).replace("\\", "\\\\")


def dot_label(lines: Iterable[str]) -> graphviz.quoting.NoHtml:
    """Lines joined by DOT's line break, never read as an HTML-like label (quoted on output)."""
    return graphviz.nohtml("\\n".join(dot_text(line) for line in lines))


def shape_text(shape: Sequence[int]) -> str:
    """``8×4``; ``scalar`` for ``()``."""
    return "×".join(str(d) for d in shape) if shape else "scalar"


def _auto_named(node: Node) -> bool:
    return node.name == f"{node.op.name}_{node.id}"


# --- graph views --------------------------------------------------------------------------------


_ancestors = ancestors


def _parts(nodes: Sequence[Node]) -> dict[Node, str]:
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


@dataclass
class _AdjointFacts:
    """What the contribution records say, arranged for drawing."""

    labels: dict[tuple[Node, Node], list[str]]  # (src, dst) edge -> Jᵀ labels
    totals: dict[Node, list[str]]  # node -> names of the forward values it is ∂ℓ/∂ of


def _contribution_text(consumer: Node, forward: Node) -> str:
    return f"Jᵀ {consumer.name}|{forward.name}"


def _vjp_path_input(term: Node, forward: Node, consumer: Node) -> Node | None:
    """The input of ``term`` through which the cotangent ∂ℓ/∂consumer reaches it.

    The nodes of one J^T (the VJP rule's steps) carry ``AdjointInfo(forward,
    consumer)``; an input of those steps that is none of them, nor the consumer
    or one of its operands, is the cotangent. Walks the steps in id order.
    """
    def own(n: Node) -> bool:
        info = n.adjoint
        return info is not None and info.forward is forward and info.consumer is consumer

    fixed = {consumer, *consumer.inputs}
    steps: list[Node] = []
    stack, seen = [term], {term}
    while stack:
        node = stack.pop()
        steps.append(node)
        for i in node.inputs:
            if i not in seen and own(i):
                seen.add(i)
                stack.append(i)
    reaches: dict[Node, bool] = {}
    for node in sorted(steps, key=lambda n: n.id):
        reaches[node] = any(
            reaches.get(i, False) or (not own(i) and i not in fixed and i.adjoint is not None) for i in node.inputs
        )
    for i in term.inputs:
        if reaches.get(i, False) or (not own(i) and i not in fixed and i.adjoint is not None):
            return i
    return None


def _adjoint_facts(graph: Graph, shown: set[Node]) -> _AdjointFacts:
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
        info = c.term.adjoint
        created_here = info is not None and info.forward is c.forward and info.consumer is c.consumer
        source = _vjp_path_input(c.term, c.forward, c.consumer) if created_here else None
        if source is not None and source in shown:
            labels.setdefault((source, c.term), []).append(text)
    for forward, sums in accumulations.items():
        for a in sums:
            totals.setdefault(a, []).append(forward.name)
    return _AdjointFacts(labels, totals)


def _source_box(node: Node, part: str) -> Box:
    kind = node.op.name
    shape = shape_text(node.shape)
    if kind == "const":
        data = node.data
        text = np.format_float_positional(float(data), precision=4, trim="-") if data is not None and data.size == 1 else f"const {shape}"
        lines = [text]
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": COLOURS["const"], "fontsize": "8",
                 "height": "0.25", "margin": "0.02"}
        if node.adjoint is not None and node.adjoint.role == "seed":
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


def _op_box(node: Node, part: str, facts: _AdjointFacts, kept: bool) -> Box:
    info = node.adjoint
    op = node.op.name
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
                 tuple((i.op.name, i.shape) for i in node.inputs), tuple(sorted(map(str, node.attrs.items()))))
    return Box(lines, attrs, part, signature, op, node.name)


def _reference_box(node: Node) -> Box:
    lines = [node.name, f"{node.op.name} (read)" if node.is_source else "forward value (read)"]
    attrs = {"shape": "box", "style": "rounded,dashed", "color": "#8c8c8c", "fontcolor": "#6b6b6b"}
    return Box(lines, attrs, "reference", ("reference", node.op.name, node.shape), node.op.name, node.name,
               computed=not node.is_source)


def _select(target: Graph | Sequence[Value]) -> tuple[Graph, list[Node], str]:
    """The graph, the nodes to draw (id order), and a phrase naming them."""
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
    return graph, _ancestors(v.node for v in values), f"graph {graph.name!r}, what {names} need"


def graph_scene(target: Graph | Sequence[Value], view: str) -> Scene:
    """The boxes and arrows of a forward, adjoint or joint view of a graph."""
    graph, nodes, what = _select(target)
    part = _parts(nodes)
    wanted = {"forward": ("forward",), "adjoint": ("adjoint", "update"), "joint": ("forward", "adjoint", "update")}[view]
    drawn = [n for n in nodes if part[n] in wanted]
    if view == "adjoint":
        read = {i for n in drawn for i in n.inputs if part.get(i) == "forward"}
        drawn = sorted(set(drawn) | read, key=lambda n: n.id)
    drawn_set = set(drawn)
    facts = _adjoint_facts(graph, drawn_set) if view != "forward" else _AdjointFacts({}, {})
    read_by_backward = {i for n in drawn if part[n] != "forward" for i in n.inputs if part.get(i) == "forward"}
    index: dict[Node, int] = {}
    boxes: list[Box] = []
    for node in drawn:
        index[node] = len(boxes)
        if view == "adjoint" and part[node] == "forward":
            boxes.append(_reference_box(node))
        elif node.is_source:
            boxes.append(_source_box(node, "adjoint" if part[node] == "adjoint" else "forward"))
        else:
            kept = view == "joint" and node in read_by_backward
            boxes.append(_op_box(node, part[node], facts, kept))
        boxes[-1].scope = node.scope
    arrows = [_graph_arrow(i, n, index, part, facts) for n in drawn for i in n.inputs
              if i in drawn_set and not (view == "adjoint" and part[n] == "forward")]
    legend = _graph_legend(view, drawn, part, facts)
    clusters = {"forward": "forward graph", "adjoint": ADJOINT_TITLE} if view == "joint" else {}
    title = f"{what} — {view} view, {len(drawn)} nodes"
    return Scene(title, boxes, arrows, legend, clusters)


def _graph_arrow(src: Node, dst: Node, index: dict[Node, int], part: dict[Node, str], facts: _AdjointFacts) -> Arrow:
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


def _graph_legend(view: str, drawn: Sequence[Node], part: dict[Node, str], facts: _AdjointFacts) -> list[str]:
    if view == "adjoint":
        ops = {n.op.name for n in drawn if part[n] != "forward"}
        keys = ["const"] if "const" in ops else []
    else:
        ops = {n.op.name for n in drawn}
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


# --- plan views ------------------------------------------------------------------------------------


def plan_scene(plan: "Plan", view: str = "plan") -> Scene:
    """The instructions of a plan as boxes, in execution order, with buffers and offsets.

    ``view`` ``"plan"`` draws every instruction; ``"forward"`` the forward and
    recompute ones; ``"adjoint"`` the backward ones (with the forward buffers
    they read as references); ``"joint"`` all, the backward ones in a cluster.
    """
    wanted = {"plan": PLAN_TAGS, "joint": PLAN_TAGS, "forward": ("forward", "recompute"), "adjoint": ("backward",)}[view]
    steps = [k for k, ins in enumerate(plan.instructions) if ins.tag in wanted]
    kept = _kept_checkpoints(plan)
    boxes, where, references = _plan_sources(plan, steps)
    arrows = _plan_instructions(plan, steps, kept, boxes, where)
    legend = _plan_legend(plan, steps, kept, boxes, references)
    clusters = {"adjoint": "backward instructions"} if view == "joint" else {}
    title = (f"plan {plan.name!r} — {len(plan.instructions)} instructions, arena {plan.arena_bytes:,d} B"
             f"{'' if view == 'plan' else f' ({view} view)'};  #step  %buffer = op %args  @arena offset")
    return Scene(title, boxes, arrows, legend, clusters, graph_attrs={"ranksep": "0.25"})


PLAN_TAGS = ("forward", "backward", "recompute", "update")


def _plan_sources(plan: "Plan", steps: list[int]) -> tuple[list[Box], dict[int, int], list[int]]:
    """Boxes for the buffers the drawn steps read but do not write: sources, then references.

    Returns the boxes, ``where`` (buffer id -> its box) and the referenced buffers
    (values of instructions not drawn, e.g. the forward values of an adjoint view).
    """
    writer = {ins.out: k for k, ins in enumerate(plan.instructions) if not _is_update_write(plan, ins)}
    drawn = set(steps)
    reads = [a for k in steps for a in plan.instructions[k].args]
    assigned = [plan.instructions[k].out for k in steps if _is_update_write(plan, plan.instructions[k])]
    sources = sorted({a for a in reads if a not in writer} | set(assigned))
    references = sorted({a for a in reads if a in writer and writer[a] not in drawn})
    boxes: list[Box] = []
    where: dict[int, int] = {}
    for b in sources:
        where[b] = len(boxes)
        boxes.append(_buffer_box(plan.buffers[b], plan))
    for b in references:
        where[b] = len(boxes)
        buf = plan.buffers[b]
        lines = [f"%{b} {buf.name}", f"{plan.instructions[writer[b]].tag} value"]
        attrs = {"shape": "box", "style": "rounded,dashed", "color": "#8c8c8c", "fontcolor": "#6b6b6b"}
        boxes.append(Box(lines, attrs, "reference", ("reference", buf.shape), "ref", buf.name))
    return boxes, where, references


def _is_update_write(plan: "Plan", ins) -> bool:
    """An instruction that writes a param's stored array (an update)."""
    return plan.buffers[ins.out].kind == "param"


def _plan_instructions(plan: "Plan", steps: list[int], kept: set[int], boxes: list[Box], where: dict[int, int]) -> list[Arrow]:
    """Append a box per drawn instruction, in order; return the dataflow arrows."""
    from graphc.plan import BIND_VIEW

    arrows: list[Arrow] = []
    for k in steps:
        ins = plan.instructions[k]
        me = len(boxes)
        boxes.append(_instruction_box(plan, k, ins.out in kept, ins.mode == BIND_VIEW))
        for a in dict.fromkeys(ins.args):
            if a in where:
                attrs = {"color": CHECKPOINT_EDGE} if ins.tag in ("backward", "recompute") and a in kept else {}
                arrows.append(Arrow(where[a], me, "", attrs))
        if _is_update_write(plan, ins):  # W ← new W: the update writes the stored param
            arrows.append(Arrow(me, where[ins.out], "writes", {"style": "dashed", "color": "#7d5ba6",
                                                             "fontcolor": "#7d5ba6", "constraint": "false"}))
        else:
            where[ins.out] = me
    return arrows


def _plan_legend(plan: "Plan", steps: list[int], kept: set[int], boxes: list[Box], references: list[int]) -> list[str]:
    kinds = {b.op for b in boxes if not b.computed}
    tags = {plan.instructions[k].tag for k in steps}
    legend = [k for k in ("input", "param", "const") if k in kinds]
    legend += ["forward_ins"] + [t for t in ("backward", "recompute", "update") if t in tags]
    if any(plan.instructions[k].out in kept for k in steps):
        legend.append("kept")
    if references:
        legend.append("reference")
    return legend


def _kept_checkpoints(plan: "Plan") -> set[int]:
    """Buffers written by forward instructions and read by backward or recompute ones."""
    forward_out = {ins.out for ins in plan.instructions if ins.tag == "forward"}
    return {a for ins in plan.instructions if ins.tag in ("backward", "recompute") for a in ins.args if a in forward_out}


def _buffer_box(buf, plan: "Plan") -> Box:
    shape = shape_text(buf.shape)
    if buf.kind == "const":
        value = plan.constants.get(buf.id)
        text = (np.format_float_positional(float(value), precision=4, trim="-")
                if value is not None and value.size == 1 else f"const {shape}")
        return Box([f"%{buf.id} = {text}"], {"shape": "ellipse", "style": "filled", "fillcolor": COLOURS["const"],
                   "fontsize": "8", "height": "0.25", "margin": "0.02"}, "source", ("const", buf.shape), "const",
                   buf.name, computed=False)
    shape_attr = "invhouse" if buf.kind == "input" else "cylinder"
    fill = COLOURS["input"] if buf.kind == "input" else COLOURS["param"]
    return Box([f"%{buf.id} {buf.name}", f"{buf.kind} {shape}"], {"shape": shape_attr, "style": "filled",
               "fillcolor": fill}, "source", (buf.kind, buf.shape), buf.kind, buf.name, computed=False)


_TAG_MARK = {"backward": "∂ ", "recompute": "↻ ", "update": "← "}
_TAG_FILL = {"forward": COLOURS["forward"], "backward": COLOURS["adjoint"], "recompute": COLOURS["recompute"],
             "update": COLOURS["update"]}


def _instruction_box(plan: "Plan", step: int, kept: bool, is_view: bool) -> Box:
    ins = plan.instructions[step]
    out = plan.buffers[ins.out]
    if _is_update_write(plan, ins):
        lines = [f"#{step} ← {out.name} = {ins.op} " + " ".join(f"%{a}" for a in ins.args),
                 f"%{ins.out} {shape_text(out.shape)}  written in place"]
    else:
        args = " ".join(f"%{a}" for a in ins.args)
        place = "view" if is_view else f"@{out.offset}"
        lines = [f"#{step} {_TAG_MARK.get(ins.tag, '')}%{ins.out} = {ins.op} {args}",
                 f"{out.name}  {shape_text(out.shape)}  {place}"]
    if kept:
        lines.append("kept for backward")
    attrs = {"shape": "box", "style": "rounded,filled", "fillcolor": _TAG_FILL.get(ins.tag, COLOURS["forward"])}
    if kept:
        attrs.update(peripheries="2", color=CHECKPOINT_BORDER)
    part = "adjoint" if ins.tag == "backward" else ins.tag
    signature = (ins.tag, ins.op, ins.mode, out.shape, kept, tuple(plan.buffers[a].shape for a in ins.args))
    return Box(lines, attrs, part, signature, ins.op, out.name, in_order=True, scope=ins.scope)


# --- the legend ------------------------------------------------------------------------------------

LEGEND = {
    "input": ("input", COLOURS["input"], ""),
    "param": ("param", COLOURS["param"], ""),
    "const": ("constant", COLOURS["const"], ""),
    "op": ("forward op", COLOURS["forward"], ""),
    "forward_ins": ("forward", COLOURS["forward"], ""),
    "adjoint": ("adjoint op", COLOURS["adjoint"], ""),
    "backward": ("∂ backward", COLOURS["adjoint"], ""),
    "accumulate": ("Σ sum of terms", COLOURS["accumulate"], ""),
    "contribution": ("Jᵀ c|x: a term of ∂ℓ/∂x", "#ffffff", CONTRIBUTION_EDGE),
    "update": ("← update", COLOURS["update"], ""),
    "recompute": ("↻ recomputed", COLOURS["recompute"], ""),
    "kept": ("kept for backward", "#ffffff", CHECKPOINT_BORDER),
    "reference": ("forward value read", "#ffffff", "#8c8c8c"),
    "group": ("collapsed nodes", COLOURS["group"], ""),
}


def _legend_html(keys: Sequence[str]) -> str:
    """One row of coloured cells (an HTML-like label: only our own fixed words go in)."""
    cells = []
    for key in keys:
        text, fill, border = LEGEND[key]
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        font = f'<FONT COLOR="{border}">{text}</FONT>' if border else text
        cells.append(f'<TD BGCOLOR="{fill}"{f" COLOR={chr(34)}{border}{chr(34)}" if border else ""}>{font}</TD>')
    return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3"><TR><TD BORDER="0">legend</TD>'
            + "".join(cells) + "</TR></TABLE>>")


# --- shrinking big pictures ----------------------------------------------------------------------------


@dataclass
class _Group:
    """Boxes ``members`` drawn as one box."""

    members: list[int]
    kind: str  # "repeat" or "band"
    repeats: int = 0
    period: int = 0


def _find_best_run(codes: np.ndarray, free: np.ndarray, max_period: int) -> tuple[int, int, int] | None:
    """The run of a repeated block that hides the most boxes: ``(start, period, repeats)``.

    For each period p, positions i with ``codes[i] == codes[i + p]`` (both free)
    form stretches; a stretch of length L from s is a block of p boxes repeated
    ``(L + p) // p`` times. The first and last copies stay drawn.
    """
    n = len(codes)
    best: tuple[int, int, int, int] | None = None  # (hidden, start, period, repeats)
    for p in range(1, min(max_period, n // 3) + 1):
        same = (codes[:-p] == codes[p:]) & free[:-p] & free[p:]
        if not same.any():
            continue
        edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        repeats = (ends - starts + p) // p
        hidden = np.where(repeats >= 4, (repeats - 2) * p, 0)  # at least 4 copies: not a coincidence
        k = int(np.argmax(hidden))
        if hidden[k] >= MIN_HIDDEN and (best is None or hidden[k] > best[0]):
            best = (int(hidden[k]), int(starts[k]), p, int(repeats[k]))
    return None if best is None else best[1:]


def _repeat_groups(scene: Scene, max_nodes: int) -> list[_Group]:
    """Collapse the middle copies of repeated blocks, largest first, until the picture fits."""
    codes_of: dict[Hashable, int] = {}
    codes = np.array([codes_of.setdefault(b.signature, len(codes_of)) for b in scene.boxes], dtype=np.int64)
    free = np.ones(len(codes), dtype=bool)
    groups: list[_Group] = []
    shown = len(codes)
    while shown > max_nodes:
        found = _find_best_run(codes, free, MAX_PERIOD)
        if found is None:
            break
        start, period, repeats = found
        hidden = list(range(start + period, start + (repeats - 1) * period))
        free[start: start + repeats * period] = False
        groups.append(_Group(hidden, "repeat", repeats - 2, period))
        shown -= len(hidden) - 1
    return groups


BAND_SIZES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _drawn_units(owner: list[int | None], groups: list[_Group]) -> list[list[int]]:
    """The boxes as drawn so far, in order: single boxes, and whole groups as one unit."""
    units: list[list[int]] = []
    seen: set[int] = set()
    for i, g in enumerate(owner):
        if g is None:
            units.append([i])
        elif g not in seen:
            seen.add(g)
            units.append(list(groups[g].members))
    return units


def _bandable_runs(scene: Scene, units: list[list[int]], keep_groups: bool) -> tuple[list[list[list[int]]], int]:
    """Stretches of units of one part that bands may merge, and the number of units kept apart."""
    runs: list[list[list[int]]] = []
    barrier = object()  # a kept group ends a run
    kept, previous = 0, barrier
    for unit in units:
        if keep_groups and len(unit) > 1:
            kept, previous = kept + 1, barrier
            continue
        part = scene.boxes[unit[0]].part
        part = part if part in scene.clusters else ""  # bands never straddle a cluster's border
        if part == previous:
            runs[-1].append(unit)
        else:
            runs.append([unit])
        previous = part
    return runs, kept


def _window(length: int, fraction: float) -> tuple[int, int]:
    """The middle ``fraction`` of a run: ``(start, size)``; the ends stay drawn one by one."""
    size = length if fraction >= 1 else int(round(fraction * length))
    return (length - size) // 2, size


def _fit_bands(runs: list[list[list[int]]], kept: int, max_nodes: int) -> tuple[list[tuple[int, int]], int] | None:
    """The smallest band size, then the narrowest middle windows, that fit ``max_nodes``."""
    for size in BAND_SIZES:
        for tenth in range(1, 11):
            windows = [_window(len(run), tenth / 10) for run in runs]
            count = kept + sum(len(r) - w + math.ceil(w / size) for r, (_, w) in zip(runs, windows))
            if count <= max_nodes:
                return windows, size
    return None


def _band_groups(scene: Scene, owner: list[int | None], groups: list[_Group], max_nodes: int) -> list[_Group]:
    """Bands of consecutive boxes of one part, in the middle of each run, until ``max_nodes`` fit.

    A band is a stretch of the topological order, so the picture stays acyclic.
    The beginning and end of each part (the inputs, the loss, the last
    gradients) stay drawn box by box when possible; repeat groups stay whole
    unless bands alone cannot make the picture fit, and then bands absorb them.
    """
    units = _drawn_units(owner, groups)
    for keep_groups in (True, False):
        runs, kept = _bandable_runs(scene, units, keep_groups)
        found = _fit_bands(runs, kept, max_nodes)
        if found is not None:
            break
    if found is None:  # nothing fits: the coarsest bands over everything
        found = ([_window(len(run), 1.0) for run in runs], BAND_SIZES[-1])
    windows, size = found
    bands: list[_Group] = []
    for run, (start, width) in zip(runs, windows):
        middle = run[start: start + width]
        for k in range(0, len(middle), size):
            members = sorted(i for unit in middle[k: k + size] for i in unit)
            if len(members) > 1:
                bands.append(_Group(members, "band"))
    absorbed = {i for band in bands for i in band.members}
    return [g for g in groups if g.members[0] not in absorbed] + bands


def _group_box(scene: Scene, group: _Group) -> Box:
    members = [scene.boxes[i] for i in group.members]
    computed = [b for b in members if b.computed]
    named = computed or members
    span = named[0].name if len(named) == 1 else f"{named[0].name} … {named[-1].name}"
    if group.kind == "repeat":
        unit = members[: group.period]
        ops = [b.op for b in unit if b.computed]
        sources = len(unit) - len(ops)
        block = " → ".join(ops[:6]) + (" → …" if len(ops) > 6 else "")
        extra = f" (+{sources} source{'s' if sources > 1 else ''})" if sources and ops else ""
        block = block or ", ".join(b.op for b in unit)
        lines = [f"× {group.repeats} repeats of a {group.period}-node block", block + extra, span]
    else:
        counts = Counter(b.op for b in members)
        common = ", ".join(f"{op} ×{c}" if c > 1 else op for op, c in counts.most_common(4))
        more = ", …" if len(counts) > 4 else ""
        lines = [f"{len(members)} nodes grouped", common + more, span]
    parts = Counter(b.part for b in members)
    part = parts.most_common(1)[0][0]
    attrs = {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": COLOURS["group"], "penwidth": "1.4"}
    if any(b.attrs.get("peripheries") == "2" for b in members):
        attrs.update(peripheries="2", color=CHECKPOINT_BORDER)
    return Box(lines, attrs, part, ("group",), "group", span, in_order=any(b.in_order for b in members),
               scope=common_scope(b.scope for b in members))


def common_scope(paths: Iterable[str]) -> str:
    """The innermost scope holding every path: their longest common prefix of whole names."""
    common: list[str] | None = None
    for path in paths:
        names = path.split("/") if path else []
        if common is None:
            common = names
        else:
            k = 0
            while k < min(len(common), len(names)) and common[k] == names[k]:
                k += 1
            del common[k:]
        if not common:
            return ""
    return "/".join(common or [])


def shrink(scene: Scene, max_nodes: int) -> Scene:
    """A scene of at most about ``max_nodes`` boxes: repeated blocks collapsed, then bands."""
    if len(scene.boxes) <= max_nodes:
        return scene
    groups = _repeat_groups(scene, max_nodes)
    owner: list[int | None] = [None] * len(scene.boxes)
    for g, group in enumerate(groups):
        for i in group.members:
            owner[i] = g
    drawn = sum(1 for o in owner if o is None) + len(groups)
    notes = []
    if groups:
        hidden = sum(len(g.members) for g in groups)
        notes.append(f"{len(groups)} repeated block{'s' if len(groups) > 1 else ''} collapsed ({hidden:,d} nodes drawn as {len(groups)} boxes)")
    if drawn > max_nodes:
        groups = _band_groups(scene, owner, groups, max_nodes)
        owner = [None] * len(scene.boxes)
        for g, group in enumerate(groups):
            for i in group.members:
                owner[i] = g
        notes.append("consecutive nodes grouped into boxes that list their ops")
    return _quotient(scene, groups, owner, notes)


def _quotient(scene: Scene, groups: list[_Group], owner: list[int | None], notes: list[str]) -> Scene:
    """The scene with every group drawn as one box; parallel arrows merged and counted."""
    boxes: list[Box] = []
    new_index: list[int] = [0] * len(scene.boxes)
    placed: dict[int, int] = {}
    for i, box in enumerate(scene.boxes):
        g = owner[i]
        if g is None:
            new_index[i] = len(boxes)
            boxes.append(box)
        elif g in placed:
            new_index[i] = placed[g]
        else:
            placed[g] = new_index[i] = len(boxes)
            boxes.append(_group_box(scene, groups[g]))
    merged: dict[tuple[int, int], list[Arrow]] = {}
    for a in scene.arrows:
        s, d = new_index[a.src], new_index[a.dst]
        if s != d:
            merged.setdefault((s, d), []).append(a)
    arrows = []
    for (s, d), group in merged.items():
        if len(group) == 1 and owner[group[0].src] is None and owner[group[0].dst] is None:
            arrows.append(Arrow(s, d, group[0].label, group[0].attrs))
        else:
            label = f"{len(group)} edges" if len(group) > 1 else group[0].label.split("\n")[-1]
            attrs = {"penwidth": "1.4", **({"style": "bold"} if len(group) > 1 else {})}
            if all(a.attrs.get("constraint") == "false" for a in group):  # writes back to params
                attrs = dict(group[0].attrs)
                label = group[0].label + (f" ({len(group)})" if len(group) > 1 else "")
            arrows.append(Arrow(s, d, label, attrs))
    legend = list(scene.legend) + (["group"] if groups else [])
    return Scene(scene.title, boxes, arrows, legend, scene.clusters, scene.notes + notes, scene.graph_attrs)


# --- DOT -----------------------------------------------------------------------------------------------


def scene_to_dot(scene: Scene, name: str = "graphc") -> graphviz.Digraph:
    """The scene as a graphviz Digraph; every label escaped."""
    title = [scene.title] + scene.notes
    dot = graphviz.Digraph(
        name=name,
        graph_attr={"rankdir": "TB", "fontname": FONT, "fontsize": "12", "labelloc": "t", "labeljust": "l",
                    "label": dot_label(title), "nodesep": "0.25", "ranksep": "0.35", "newrank": "true",
                    **scene.graph_attrs},
        node_attr={"fontname": FONT, "fontsize": "10", "height": "0.3", "margin": "0.08,0.03"},
        edge_attr={"fontname": FONT, "fontsize": "8", "color": EDGE, "fontcolor": "#404040", "arrowsize": "0.6"},
    )
    clusters = {part: graphviz.Digraph(name=f"cluster_{part}", graph_attr={
        "label": dot_label([label]), "labeljust": "l", **CLUSTER_STYLE.get(part, CLUSTER_STYLE["adjoint"])})
        for part, label in scene.clusters.items()}
    scopes: dict[tuple[str, str], graphviz.Digraph] = {}
    for i, box in enumerate(scene.boxes):
        part = box.part if box.part in clusters else ""
        where = _scope_cluster(scopes, part, box.scope) if box.scope else clusters.get(part, dot)
        where.node(f"n{i}", label=dot_label(box.lines), **box.attrs)
    _nest_scope_clusters(scopes, clusters, dot)
    for cluster in clusters.values():
        dot.subgraph(cluster)
    for a in scene.arrows:
        dot.edge(f"n{a.src}", f"n{a.dst}", label=dot_label(a.label.split("\n")) if a.label else None, **a.attrs)
    sequence = [i for i, box in enumerate(scene.boxes) if box.in_order]
    whole = not any(box.op == "group" for box in scene.boxes)
    if whole and len(scene.boxes) <= CHAIN_MAX:  # execution order top to bottom (too slow for dot on big plans)
        for a, b in zip(sequence, sequence[1:]):
            dot.edge(f"n{a}", f"n{b}", style="invis", weight="4")
    if scene.legend:
        dot.node("legend", label=_legend_html(list(dict.fromkeys(scene.legend))), shape="plain", fontsize="9")
    return dot


def _scope_cluster(scopes: dict[tuple[str, str], graphviz.Digraph], part: str, path: str) -> graphviz.Digraph:
    """The cluster of scope ``path`` inside the cluster of ``part`` (made, with its enclosing scopes, on first use)."""
    names = path.split("/")
    for depth in range(1, len(names) + 1):
        prefix = "/".join(names[:depth])
        if (part, prefix) not in scopes:
            scopes[(part, prefix)] = graphviz.Digraph(
                name=f"cluster_scope_{len(scopes)}",
                graph_attr={"label": dot_label([prefix]), "labeljust": "l", **SCOPE_CLUSTER_STYLE})
    return scopes[(part, path)]


def _nest_scope_clusters(scopes: dict[tuple[str, str], graphviz.Digraph], clusters: dict[str, graphviz.Digraph],
                         dot: graphviz.Digraph) -> None:
    """Put each scope's cluster into its enclosing scope's, innermost first (a subgraph is copied when added)."""
    for part, path in sorted(scopes, key=lambda key: -key[1].count("/")):
        outer = path.rpartition("/")[0]
        parent = scopes[(part, outer)] if outer else clusters.get(part, dot)
        parent.subgraph(scopes[(part, path)])


# --- the public functions ------------------------------------------------------------------------------


def _is_program(target: Any) -> bool:
    from graphc.compile import Program

    return isinstance(target, Program)


def make_scene(target: Any, view: str | None = None) -> Scene:
    """The unshrunk scene of ``target`` in ``view`` (None: joint for graphs, plan for programs)."""
    program = _is_program(target)
    view = view or ("plan" if program else "joint")
    if view not in VIEWS:
        raise GraphError(f"view={view!r} is not a view; choose one of {', '.join(VIEWS)}")
    if program:
        return plan_scene(target.plan, view)
    from graphc.plan import Plan

    if isinstance(target, Plan):
        return plan_scene(target, view)
    if view == "plan":
        if isinstance(target, Graph):
            raise GraphError("view='plan' draws a compiled plan: pass a Program, or the Values to compile")
        from graphc.compile import compile as compile_values

        _select(target)  # checks the Values
        values = [target] if isinstance(target, Value) else list(target)
        return plan_scene(compile_values(values).plan, "plan")
    if not isinstance(target, (Graph, Value, list, tuple)):
        raise GraphError(f"render: expected a Graph, a list of Values or a Program, got {type(target).__name__}")
    return graph_scene(target, view)


def to_dot(
    target: Any, view: str | None = None, *, max_nodes: int | None = DEFAULT_MAX_NODES, collapse: bool = True
) -> graphviz.Digraph:
    """A :class:`graphviz.Digraph` of ``target`` (a Graph, Values, or a Program) in ``view``.

    ``view`` is ``"forward"``, ``"adjoint"``, ``"joint"`` (default for graphs) or
    ``"plan"`` (default for programs; Values are compiled first). Above
    ``max_nodes`` boxes, repeated blocks are collapsed and then consecutive
    nodes grouped; ``collapse=False`` raises :class:`GraphError` instead, and
    ``max_nodes=None`` draws every node. In Jupyter the result shows inline.

    Examples
    --------
    >>> import graphc as gc
    >>> from graphc import zoo
    >>> g, v = zoo.seed_dag()
    >>> _ = gc.grad(v["loss"], [v["w1"], v["w2"]])
    >>> "Jᵀ x3|w1" in gc.to_dot(g, "joint").source
    True
    """
    scene = make_scene(target, view)
    if max_nodes is not None and len(scene.boxes) > max_nodes:
        if not collapse:
            raise GraphError(
                f"{scene.title.split(' — ')[0]} has {len(scene.boxes):,d} nodes to draw, more than max_nodes={max_nodes}: "
                "draw a part (pass the Values whose subgraph you want, e.g. gc.render([h10], ...)), "
                "raise max_nodes (max_nodes=None draws all, slowly), or let repeated blocks collapse (collapse=True)"
            )
        scene = fit(scene, max_nodes)
    return scene_to_dot(scene)


def fit(scene: Scene, max_nodes: int) -> Scene:
    """:func:`shrink` to ``max_nodes`` boxes, and further while arrows are too many to lay out quickly."""
    limit = max_nodes
    while True:
        small = _without_crossing_reads(shrink(scene, limit))
        if len(small.arrows) <= EDGES_PER_BOX * max_nodes or limit <= 20:
            break
        limit = int(limit * 0.75)
    hint = "max_nodes=None draws every node; gc.render([values], ...) draws what those values need"
    return Scene(small.title, small.boxes, small.arrows, small.legend, small.clusters, small.notes + [hint],
                 small.graph_attrs)


def _without_crossing_reads(scene: Scene) -> Scene:
    """A shrunk joint view without the arrows from forward boxes into the adjoint cluster.

    Those reads (the kept checkpoints) wrap around the whole picture once
    boxes are grouped; the double borders still mark what the backward pass reads.
    """
    if "adjoint" not in scene.clusters or not any(box.op == "group" for box in scene.boxes):
        return scene
    inside = [box.part == "adjoint" for box in scene.boxes]
    arrows = [a for a in scene.arrows if inside[a.src] or not inside[a.dst]]
    if len(arrows) == len(scene.arrows):
        return scene
    note = "arrows from forward values into the adjoint graph left out (double borders mark the values it reads)"
    return Scene(scene.title, scene.boxes, arrows, scene.legend, scene.clusters, scene.notes + [note], scene.graph_attrs)


def render(
    target: Any,
    path: str | Path,
    view: str | None = None,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    collapse: bool = True,
    dpi: int = 96,
) -> Path:
    """Draw ``target`` into ``path``; the suffix picks the format (``.png``, ``.svg``, ``.pdf``).

    Arguments as for :func:`to_dot`; ``dpi`` sets the resolution of PNGs.
    Returns the path written. Raises :class:`GraphError` for an unknown view or
    suffix, and ``RuntimeError`` if graphviz's ``dot`` program is not installed.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise GraphError(f"render: cannot tell the image type of {str(path)!r}; use a suffix among "
                         + ", ".join("." + f for f in FORMATS))
    dot = to_dot(target, view, max_nodes=max_nodes, collapse=collapse)
    if fmt == "png":
        dot.graph_attr["dpi"] = str(dpi)
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RuntimeError(
            "graphviz's `dot` program is not installed (it draws the images): "
            "`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
