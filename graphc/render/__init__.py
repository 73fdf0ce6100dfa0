"""Pictures of graphs and plans, drawn with graphviz.

``to_dot(target, view)`` returns a :class:`graphviz.Digraph` (it shows inline in
Jupyter) and ``render(target, path, view)`` writes it as an image whose type
comes from the suffix (``.png``, ``.svg``, ``.pdf``). The target is a
:class:`~graphc.Graph`, a list of :class:`~graphc.Value` (the part of the graph
they need), or a :class:`~graphc.Program`. The views:

- ``"forward"``: the φ nodes the user wrote;
- ``"adjoint"``: the nodes ``grad`` built, with the forward values they read
  drawn as dashed references;
- ``"joint"`` (the default for graphs): both, in two clusters, and the
  updates (ops that read the gradients, as an optimizer's) in a third;
- ``"plan"`` (the default for programs): the instructions of the compiled
  plan, numbered in execution order, with their buffers and arena offsets.

What the pictures show:

- the title: which view of what, and how many of its nodes (or instructions)
  are drawn, ``forward view of graph 'mlp': 12 of 45 nodes``;
- inputs, params and constants have shapes and colours of their own, ops are
  rounded boxes; adjoint nodes are rose-coloured, updates lavender;
- a scalar constant that an op reads (a learning rate, a scale factor) is no
  box: the op's label writes it, ``mul(x, 0.5)``, and an update that reads
  one is written out where it is read, ``sub(W, mul(0.3, dloss/dW))``;
  values are written with 4 significant digits (``1e-05``, ``0.0009766``);
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

The package, one module per job: :mod:`~graphc.render.scene` (boxes, arrows,
colours, the legend), :mod:`~graphc.render.graph_view` (the forward, adjoint
and joint views of a graph), :mod:`~graphc.render.plan_view` (the plan view),
:mod:`~graphc.render.collapse` (shrinking big scenes) and
:mod:`~graphc.render.dot` (DOT output and the entry points below).
"""

from graphc.render.collapse import BAND_SIZES, EDGES_PER_BOX, MAX_PERIOD, MIN_HIDDEN, common_scope, fit, shrink
from graphc.render.dot import (
    CHAIN_MAX, CLUSTER_STYLE, DEFAULT_MAX_NODES, FONT, FORMATS, SCOPE_CLUSTER_STYLE, VIEWS, drawn_scene, make_scene,
    render, scene_to_dot, to_dot,
)
from graphc.render.graph_view import ADJOINT_TITLE, graph_scene
from graphc.render.plan_view import PLAN_TAGS, plan_scene
from graphc.render.scene import (
    CHECKPOINT_BORDER, CHECKPOINT_EDGE, CLUSTER_BORDER, CLUSTER_FILL, COLOURS, CONTRIBUTION_EDGE, EDGE, LEGEND, TALLY,
    Arrow, Box, Scene, add_tallies, box_tally, dot_label, dot_text, shape_text, value_text,
)
from graphc.render.units import Unit, expanded_units, outline, unit_tree

__all__ = [
    "render", "to_dot", "make_scene", "drawn_scene", "scene_to_dot", "graph_scene", "plan_scene", "fit", "shrink",
    "common_scope", "outline", "unit_tree", "expanded_units", "Unit", "box_tally", "add_tallies", "TALLY",
    "Scene", "Box", "Arrow", "dot_text", "dot_label", "shape_text", "value_text",
    "VIEWS", "FORMATS", "DEFAULT_MAX_NODES", "CHAIN_MAX", "PLAN_TAGS", "MAX_PERIOD", "MIN_HIDDEN", "EDGES_PER_BOX",
    "BAND_SIZES", "FONT", "COLOURS", "EDGE", "CONTRIBUTION_EDGE", "CHECKPOINT_EDGE", "CHECKPOINT_BORDER", "CLUSTER_FILL",
    "CLUSTER_BORDER", "ADJOINT_TITLE", "SCOPE_CLUSTER_STYLE", "CLUSTER_STYLE", "LEGEND",
]
