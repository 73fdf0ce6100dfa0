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
A picture of at most ``max_nodes`` boxes (150 by default) draws every node,
unless it would be more than about two screens deep or too slow to lay out
(:func:`layout_load`): a 20-step RNN's forward view, 129 boxes whose three
weights and input are read by every step, took ``dot`` 10 to 80 seconds to lay
out at 4,289 × 6,658 pixels; it is drawn in units, in a third of a second.

A bigger one is drawn hierarchy first, in units (:mod:`~graphc.render.units`):

- the units are the :func:`graphc.scope` paths, nested as the scopes nest
  (a scope holds its forward nodes and the adjoint nodes of their J^T, and
  in a plan their recomputed copies), and the repeated blocks found among the
  boxes of one scope (a deep chain's layers, an unrolled RNN's time steps:
  ``repeat 3 of 20``); a run of copies keeps its first and last copies apart
  and the ones between in one ``× k repeats of a p-node block`` unit;
- a collapsed unit is ONE box that says what it holds: its path (or which
  copy it is), its counts of forward, ``∂`` adjoint, ``↻`` recomputed, kept
  (read by the backward pass), ``←`` update and source boxes, each in its
  colour (zeros too, so a unit without recomputes says ``0 ↻``), and its
  bytes: those live at the peak step for a compiled program's plan (as
  ``memory.peak_bytes_by_scope`` counts them, per block), the sum of its
  values' sizes for a graph (``Σ values``; a shape with the batch size has none);
- the top-level units are drawn collapsed, then units are expanded one level
  at a time, the biggest first (the first and last copies of a run together,
  the ones between together), while the picture stays within a quarter of
  ``max_nodes`` boxes (a unit's box is bigger than a node's): ResNet-50's four stages open into
  their 16 blocks, GPT-2's twelve blocks stay one box each. An expanded
  scope is a dashed cluster labelled with its path; a unit box sits in the
  cluster of the scope that holds it;
- ``focus="layer3/block2"`` (``render``, ``to_dot``, ``make_scene``, and
  ``graphc render --focus``) expands that scope as far as ``max_nodes``
  allows, the scopes on the way to it one level each (their other children
  collapsed), and collapses the rest; it applies to small pictures too. An
  unknown path is a :class:`~graphc.GraphError` that names it and lists the
  top-level scopes;
- arrows between units are merged and counted (``×12``); one that points back
  (the gradient flowing into an earlier unit) is dashed and does not shape
  the layout, nor do the light ones into an optimizer's updates; a source
  read by more than four units (a constant every block reads) is left out and
  named in the title's notes;
- the part clusters of the joint views are left out (a unit holds forward and
  backward work), and the picture is scaled to at most 2,000 pixels a side
  at 96 dpi (``size``).

What units cannot shrink enough (a big graph without scopes or repeats) is
then grouped into bands of consecutive boxes, each counted the same way.
``max_nodes=None`` draws every node; ``collapse=False`` raises instead of
shrinking. :func:`drawn_scene` gives the scene ``to_dot`` draws, without
running graphviz.

The package, one module per job: :mod:`~graphc.render.scene` (boxes, arrows,
colours, the legend, the counts of a collapsed box), :mod:`~graphc.render.graph_view`
(the forward, adjoint and joint views of a graph), :mod:`~graphc.render.plan_view`
(the plan view), :mod:`~graphc.render.units` (scopes and repeated blocks as
units), :mod:`~graphc.render.collapse` (repeats and bands, for what units do
not shrink) and :mod:`~graphc.render.dot` (DOT output and the entry points below).
"""

from graphc.render.collapse import BAND_SIZES, EDGES_PER_BOX, MAX_PERIOD, MIN_HIDDEN, common_scope, fit, shrink
from graphc.render.dot import (
    CHAIN_MAX, CLUSTER_STYLE, DEFAULT_MAX_NODES, FONT, FORMATS, MAX_LAID_OUT, MAX_RANKS, SCOPE_CLUSTER_STYLE, VIEWS,
    drawn_scene, layout_load, make_scene, render, scene_to_dot, to_dot,
)
from graphc.render.graph_view import ADJOINT_TITLE, graph_scene
from graphc.render.plan_view import PLAN_TAGS, plan_scene
from graphc.render.scene import (
    CHECKPOINT_BORDER, CHECKPOINT_EDGE, CLUSTER_BORDER, CLUSTER_FILL, COLOURS, CONTRIBUTION_EDGE, EDGE, LEGEND, TALLY,
    Arrow, Box, Scene, add_tallies, box_tally, dot_label, dot_text, shape_text, value_text,
)
from graphc.render.units import Unit, expanded_units, outline, unit_tree

__all__ = [
    "render", "to_dot", "make_scene", "drawn_scene", "scene_to_dot", "layout_load", "MAX_RANKS", "MAX_LAID_OUT", "graph_scene", "plan_scene", "fit", "shrink",
    "common_scope", "outline", "unit_tree", "expanded_units", "Unit", "box_tally", "add_tallies", "TALLY",
    "Scene", "Box", "Arrow", "dot_text", "dot_label", "shape_text", "value_text",
    "VIEWS", "FORMATS", "DEFAULT_MAX_NODES", "CHAIN_MAX", "PLAN_TAGS", "MAX_PERIOD", "MIN_HIDDEN", "EDGES_PER_BOX",
    "BAND_SIZES", "FONT", "COLOURS", "EDGE", "CONTRIBUTION_EDGE", "CHECKPOINT_EDGE", "CHECKPOINT_BORDER", "CLUSTER_FILL",
    "CLUSTER_BORDER", "ADJOINT_TITLE", "SCOPE_CLUSTER_STYLE", "CLUSTER_STYLE", "LEGEND",
]
