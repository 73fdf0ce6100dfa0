"""The picture before it is DOT: boxes, arrows and a title, with the colours and the legend.

A :class:`Scene` is what every view builds (graph views, the plan view), what
collapsing shrinks, and what :func:`graphc.render.scene_to_dot` writes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import graphviz
import numpy as np

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
