"""DOT output and the entry points: a scene as graphviz source, and ``to_dot``/``render``/``make_scene``.

:func:`make_scene` picks the view of a target (a Graph, Values, a Plan or a
Program), :func:`to_dot` shrinks the scene when it is too big and writes it as
a :class:`graphviz.Digraph`, and :func:`render` has graphviz's ``dot`` program
draw it into an image file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import graphviz

from graphc.compile import Program
from graphc.compile import compile as compile_values
from graphc.errors import GraphError
from graphc.ir import Graph, Value
from graphc.plan import Plan
from graphc.render.collapse import fit
from graphc.render.graph_view import graph_scene, select_nodes
from graphc.render.plan_view import plan_scene
from graphc.render.scene import (
    CLUSTER_BORDER, CLUSTER_FILL, EDGE, LEGEND, UPDATE_CLUSTER_BORDER, UPDATE_CLUSTER_FILL, Scene, dot_label,
)
from graphc.render.units import outline

VIEWS = ("forward", "adjoint", "joint", "plan")
FORMATS = ("png", "svg", "pdf")
DEFAULT_MAX_NODES = 150
CHAIN_MAX = 60  # plans of at most this many boxes are drawn strictly in execution order
MAX_RANKS = 48  # a picture drawn node by node is at most this many boxes deep: about two screens tall
MAX_LAID_OUT = 800  # ... and graphviz lays out at most this many boxes and bends of long arrows (see layout_load)

FONT = "Helvetica,Arial,sans-serif"
SCOPE_CLUSTER_STYLE = {"style": "rounded,dashed", "color": "#9a9a9a", "fontcolor": "#555555", "fontsize": "10"}
CLUSTER_STYLE = {
    "forward": {"style": "rounded", "color": "#a9c1e0", "fontcolor": "#2c5282"},
    "adjoint": {"style": "rounded,filled", "fillcolor": CLUSTER_FILL, "color": CLUSTER_BORDER, "fontcolor": "#9c3d2e"},
    "backward": {"style": "rounded,filled", "fillcolor": CLUSTER_FILL, "color": CLUSTER_BORDER, "fontcolor": "#9c3d2e"},
    "update": {"style": "rounded,filled", "fillcolor": UPDATE_CLUSTER_FILL, "color": UPDATE_CLUSTER_BORDER,
               "fontcolor": "#5b3f8c"},
}


def scene_to_dot(scene: Scene, name: str = "graphc") -> graphviz.Digraph:
    """The scene as a graphviz Digraph; every label escaped."""
    title = [scene.title] + scene.notes
    graph_attrs = {"rankdir": "TB", "fontname": FONT, "fontsize": "12", "labelloc": "t", "labeljust": "l",
                   "label": dot_label(title), "nodesep": "0.25", "ranksep": "0.35", "newrank": "true",
                   **scene.graph_attrs}
    dot = graphviz.Digraph(
        name=name,
        graph_attr={key: value for key, value in graph_attrs.items() if value != ""},  # "": the attribute left out
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
        where.node(f"n{i}", label=box.html if box.html is not None else dot_label(box.lines), **box.attrs)
    _nest_scope_clusters(scopes, clusters, dot)
    for cluster in clusters.values():
        dot.subgraph(cluster)
    for a in scene.arrows:
        dot.edge(f"n{a.src}", f"n{a.dst}", label=dot_label(a.label.split("\n")) if a.label else None, **a.attrs)
    for a, b in _execution_chain(scene):  # execution order top to bottom (too slow for dot on big plans)
        dot.edge(f"n{a}", f"n{b}", style="invis", weight="4")
    if scene.legend:
        legend = _legend_html(list(dict.fromkeys(scene.legend)), scene.legend_column)
        dot.node("legend", label=legend, shape="plain", fontsize="9")
    return dot


def _execution_chain(scene: Scene) -> list[tuple[int, int]]:
    """The invisible arrows that draw a small plan's instructions one below the other, in execution order."""
    if len(scene.boxes) > CHAIN_MAX or any(box.group for box in scene.boxes):
        return []
    sequence = [i for i, box in enumerate(scene.boxes) if box.in_order]
    return list(zip(sequence, sequence[1:]))


def layout_load(scene: Scene) -> tuple[int, int]:
    """How deep and how big a picture drawn node by node is, as graphviz's ``dot`` would rank it.

    Returns ``(ranks, laid_out)``. Boxes are ranked as ``dot`` ranks them,
    about: each below the boxes it reads (the longest path from the top), a
    box that reads nothing just above its first reader, a small plan's
    instructions one per rank. ``ranks`` is the longest path, in boxes: a
    rank is about 90 pixels at 96 dpi (a box, its arrows' labels and the
    space between), so 48 ranks are about two screens. ``laid_out`` counts the
    boxes and the bends of the arrows that span several ranks (``dot`` lays out
    an arrow by a point on every rank it crosses): a weight read by every step
    of a 20-step RNN makes thousands of them, and ``dot`` takes a minute to
    order them where a 10-layer chain of the same number of boxes takes a
    fraction of a second.
    """
    n = len(scene.boxes)
    pairs = [(a.src, a.dst) for a in scene.arrows if a.attrs.get("constraint") != "false" and a.src != a.dst]
    pairs += _execution_chain(scene)
    reads: list[list[int]] = [[] for _ in range(n)]
    readers: list[list[int]] = [[] for _ in range(n)]
    for src, dst in pairs:
        reads[dst].append(src)
        readers[src].append(dst)
    order, waiting = [], [len(r) for r in reads]
    ready = [i for i in range(n) if not waiting[i]]
    while ready:
        i = ready.pop()
        order.append(i)
        for j in readers[i]:
            waiting[j] -= 1
            if not waiting[j]:
                ready.append(j)
    rank = [0] * n
    for i in order:
        rank[i] = max((rank[j] + 1 for j in reads[i]), default=0)
    for i in reversed(order):  # what reads nothing sits just above its first reader
        if not reads[i] and readers[i]:
            rank[i] = min(rank[j] for j in readers[i]) - 1
    bends = sum(max(rank[dst] - rank[src] - 1, 0) for src, dst in pairs)
    return (max(rank) - min(rank) + 1 if n else 0), n + bends


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


def _legend_html(keys: Sequence[str], column: bool = False) -> str:
    """One row (or one column) of coloured cells (an HTML-like label: only our own fixed words go in)."""
    cells = []
    for key in keys:
        text, fill, border = LEGEND[key]
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        font = f'<FONT COLOR="{border}">{text}</FONT>' if border else text
        cells.append(f'<TD BGCOLOR="{fill}"{f" COLOR={chr(34)}{border}{chr(34)}" if border else ""}>{font}</TD>')
    if column:
        rows = "".join(f"<TR>{cell}</TR>" for cell in ['<TD BORDER="0">legend</TD>'] + cells)
        return f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3">{rows}</TABLE>>'
    return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3"><TR><TD BORDER="0">legend</TD>'
            + "".join(cells) + "</TR></TABLE>>")


def make_scene(target: Any, view: str | None = None, *, focus: str | None = None,
               max_nodes: int | None = DEFAULT_MAX_NODES) -> Scene:
    """The scene of ``target`` in ``view`` (None: joint for graphs, plan for plans and programs).

    Without ``focus``, every node (or instruction) is a box: the scene before
    any shrinking. With ``focus`` (a scope path, ``"layer3/block2"``), the
    scene in units (:func:`graphc.render.units.outline`): that scope expanded
    as far as ``max_nodes`` boxes allow, the path to it one level at each step,
    the rest collapsed; an unknown path is a :class:`GraphError` that lists the
    top-level scopes.

    The plan view draws a plan that exists, a :class:`~graphc.Plan` or a
    :class:`~graphc.Program`'s. Values in the plan view are compiled here, with
    :func:`graphc.compile`'s defaults: the one place where drawing compiles. A
    Graph in the plan view is an error, since it does not say which of its values
    to compile.
    """
    planned = isinstance(target, (Plan, Program))
    view = view or ("plan" if planned else "joint")
    if view not in VIEWS:
        raise GraphError(f"view={view!r} is not a view; choose one of {', '.join(VIEWS)}")
    if planned:
        scene = plan_scene(target, view)
    elif view == "plan":
        scene = plan_scene(_compiled(target), "plan")
    elif not isinstance(target, (Graph, Value, list, tuple)):
        raise GraphError(f"render: expected a Graph, a list of Values or a Program, got {type(target).__name__}")
    else:
        scene = graph_scene(target, view)
    return scene if focus is None else outline(scene, max_nodes, focus)


def drawn_scene(target: Any, view: str | None = None, *, max_nodes: int | None = DEFAULT_MAX_NODES,
                collapse: bool = True, focus: str | None = None) -> Scene:
    """The scene :func:`to_dot` draws: within ``max_nodes`` boxes, in units when it has to shrink.

    Up to ``max_nodes`` boxes, every node is drawn, unless the picture would be
    more than about two screens deep or too slow to lay out (:func:`layout_load`:
    more than MAX_RANKS ranks or MAX_LAID_OUT boxes and bends). Above, the scene
    is drawn in units (scopes and repeated blocks, :mod:`graphc.render.units`),
    and if the units alone are still too many, consecutive boxes are grouped
    into bands (:func:`graphc.render.collapse.fit`). ``collapse=False`` raises
    instead of shrinking (and draws a scene within ``max_nodes`` node by node).
    """
    scene = make_scene(target, view, focus=focus, max_nodes=max_nodes)
    if max_nodes is None:
        return scene
    if len(scene.boxes) <= max_nodes:
        if focus is not None or not collapse:
            return scene
        ranks, laid_out = layout_load(scene)
        return scene if ranks <= MAX_RANKS and laid_out <= MAX_LAID_OUT else outline(scene, max_nodes)
    if focus is None:
        if not collapse:
            raise GraphError(
                f"{scene.title}: {len(scene.boxes):,d} boxes to draw, more than max_nodes={max_nodes}; "
                "draw a part (pass the Values whose subgraph you want, e.g. gc.render([h10], ...)), "
                "raise max_nodes (max_nodes=None draws all, slowly), or let repeated blocks collapse (collapse=True)"
            )
        scene = outline(scene, max_nodes)
    return scene if len(scene.boxes) <= max_nodes else fit(scene, max_nodes)


def _compiled(target: Any) -> Program:
    """The program of the Values ``target``, for their plan view."""
    if isinstance(target, Graph):
        raise GraphError("view='plan' draws a compiled plan: pass a Program, or the Values to compile")
    select_nodes(target)  # checks the Values
    values = [target] if isinstance(target, Value) else list(target)
    return compile_values(values)


def to_dot(
    target: Any, view: str | None = None, *, max_nodes: int | None = DEFAULT_MAX_NODES, collapse: bool = True,
    focus: str | None = None,
) -> graphviz.Digraph:
    """A :class:`graphviz.Digraph` of ``target`` (a Graph, Values, or a Program) in ``view``.

    ``view`` is ``"forward"``, ``"adjoint"``, ``"joint"`` (default for graphs) or
    ``"plan"`` (default for programs; Values are compiled first). Above
    ``max_nodes`` boxes, scopes and repeated blocks are drawn as units, one box
    each with its counts by kind, expanded while the budget allows;
    ``collapse=False`` raises :class:`GraphError` instead, and ``max_nodes=None``
    draws every node. ``focus="stage3/block2"`` expands that scope and collapses
    the rest. In Jupyter the result shows inline.

    Examples
    --------
    >>> import graphc as gc
    >>> from graphc import zoo
    >>> g, v = zoo.seed_dag()
    >>> _ = gc.grad(v["loss"], [v["w1"], v["w2"]])
    >>> "Jᵀ x3|w1" in gc.to_dot(g, "joint").source
    True
    """
    return scene_to_dot(drawn_scene(target, view, max_nodes=max_nodes, collapse=collapse, focus=focus))


def render(
    target: Any,
    path: str | Path,
    view: str | None = None,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    collapse: bool = True,
    dpi: int = 96,
    focus: str | None = None,
) -> Path:
    """Draw ``target`` into ``path``; the suffix picks the format (``.png``, ``.svg``, ``.pdf``).

    Arguments as for :func:`to_dot`; ``dpi`` sets the resolution of PNGs (a
    picture drawn in units is scaled to at most 2,000 pixels a side at 96 dpi).
    Returns the path written. Raises :class:`GraphError` for an unknown view or
    suffix, and ``RuntimeError`` if graphviz's ``dot`` program is not installed.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise GraphError(f"render: cannot tell the image type of {str(path)!r}; use a suffix among "
                         + ", ".join("." + f for f in FORMATS))
    dot = to_dot(target, view, max_nodes=max_nodes, collapse=collapse, focus=focus)
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
