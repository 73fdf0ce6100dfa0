"""The picture before it is DOT: boxes, arrows and a title, with the colours and the legend.

A :class:`Scene` is what every view builds (graph views, the plan view), what
collapsing shrinks, and what :func:`graphc.render.scene_to_dot` writes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import graphviz
import numpy as np

from graphc.plots import format_bytes

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
    "unit": "#f7f7f7",
    "reference": "#ffffff",
}
EDGE = "#5f5f5f"
CONTRIBUTION_EDGE = "#c0392b"
CHECKPOINT_EDGE = "#7f9fc8"
CHECKPOINT_BORDER = "#1f4e8c"
CLUSTER_FILL = "#fff6f3"
CLUSTER_BORDER = "#e3a99c"
UPDATE_CLUSTER_FILL = "#f8f5fc"
UPDATE_CLUSTER_BORDER = "#b9a6d9"

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
    "unit": ("unit: a scope or repeat, its boxes by kind", COLOURS["unit"], ""),
    "bytes_peak": ("at the peak: bytes live at the peak step", "#ffffff", ""),
    "bytes_values": ("Σ values: sum of their sizes", "#ffffff", ""),
}

# The counts a collapsed box shows, in this order: kind -> (text after the count, fill, border).
TALLY = {
    "forward": ("fwd", COLOURS["forward"], ""),
    "adjoint": ("∂", COLOURS["adjoint"], ""),
    "recompute": ("↻", COLOURS["recompute"], ""),
    "kept": ("kept", "#ffffff", CHECKPOINT_BORDER),
    "update": ("←", COLOURS["update"], ""),
    "source": ("src", COLOURS["input"], ""),
    "reference": ("read", "#ffffff", "#8c8c8c"),
}


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
    group: bool = False  # a box standing for a collapsed group of boxes (an op may be named "group")
    # What collapsing into units needs (graphc.render.units):
    kind: str = ""  # a key of TALLY other than "kept": what the box is counted as in a collapsed unit
    kept: bool = False  # a forward value the backward pass reads (drawn with a double border)
    nbytes: int | None = 0  # bytes a unit counts: the value's size (graphs) or what it holds at the peak (plans)
    anchor: int | None = None  # the forward box it belongs with (an adjoint box: its consumer's), a unit takes both
    home: str | None = None  # the scope it is counted in when it has none of its own (a plan's params: their readers')
    motif: Hashable = None  # the signature repeats are found by (None: ``signature``); loop indices left out
    tally: dict[str, int] | None = None  # a collapsed box: the boxes it stands for, counted by kind
    html: str | None = None  # an HTML-like label (a collapsed box's table of counts), drawn instead of ``lines``


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
    bytes_meaning: str = ""  # what Box.nbytes counts: "peak" (plans), "values" (graphs) or "" (not known)
    legend_column: bool = False  # the legend as a column (a picture in units keeps its width for the units)


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


def value_text(value: Any) -> str:
    """A scalar as a label writes it: floats with 4 significant digits (``1e-05``, ``0.3333``), integers whole."""
    value = np.asarray(value).reshape(())[()]
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4g}"


def count_text(shown: int, total: int, things: str) -> str:
    """``all 30 nodes``, or ``12 of 30 nodes``: how much of the selection a picture shows."""
    return f"all {total:,d} {things}" if shown == total else f"{shown:,d} of {total:,d} {things}"


# --- collapsed boxes: counts by kind --------------------------------------------------------------


def box_tally(box: Box) -> dict[str, int]:
    """What ``box`` counts as in a collapsed unit: its own tally, or one box of its kind (and kept)."""
    if box.tally is not None:
        return box.tally
    counts = {box.kind: 1} if box.kind else {}
    if box.kept:
        counts["kept"] = 1
    return counts


def add_tallies(tallies: Iterable[dict[str, int]]) -> dict[str, int]:
    """The sum of several tallies, kind by kind."""
    total: dict[str, int] = {}
    for tally in tallies:
        for kind, count in tally.items():
            total[kind] = total.get(kind, 0) + count
    return total


def sum_bytes(values: Iterable[int | None]) -> int | None:
    """The sum, or None if any part is not known (a shape holding the batch size)."""
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def html_text(text: str) -> str:
    """``text`` safe inside an HTML-like label: ``& < > "`` as entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def tally_html(titles: Sequence[str], tally: dict[str, int], columns: Sequence[str], nbytes: int | None,
               bytes_meaning: str) -> str:
    """The label of a collapsed box: its title lines, a row of coloured counts, its bytes.

    ``columns`` are the kinds every collapsed box of the picture shows (the same
    cells in the same order in each, zeros included, so a box without
    recomputes says ``0 ↻``); ``bytes_meaning`` ``"peak"`` or ``"values"``
    says what ``nbytes`` is, and nothing is written when it is not known.
    """
    width = max(len(columns), 1)
    rows = [f'<TR><TD COLSPAN="{width}" BORDER="0">{"<BR/>".join(html_text(t) for t in titles)}</TD></TR>']
    cells = []
    for kind in columns:
        text, fill, border = TALLY[kind]
        count = f"{tally.get(kind, 0):,d} {html_text(text)}"
        colour = f' COLOR="{border}"' if border else ""
        font = f'<FONT COLOR="{border}">{count}</FONT>' if border else count
        cells.append(f'<TD BGCOLOR="{fill}"{colour}>{font}</TD>')
    if cells:
        rows.append("<TR>" + "".join(cells) + "</TR>")
    if nbytes is not None and bytes_meaning:
        said = "at the peak" if bytes_meaning == "peak" else "Σ values"
        text = f'<FONT POINT-SIZE="8">{format_bytes(nbytes)} {said}</FONT>'
        rows.append(f'<TR><TD COLSPAN="{width}" BORDER="0">{text}</TD></TR>')
    return '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="2">' + "".join(rows) + "</TABLE>>"


def tally_columns(boxes: Iterable[Box]) -> list[str]:
    """The kinds of TALLY some box of ``boxes`` counts, in TALLY's order: the cells every collapsed box shows."""
    seen = add_tallies(box_tally(b) for b in boxes)
    return [kind for kind in TALLY if seen.get(kind)]
