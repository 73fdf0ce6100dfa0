"""Units: the scopes and repeated blocks a big picture is drawn in, each collapsed into one box.

A big model is read from the top down: its stages, then the blocks of a stage,
then the ops of a block. The units of a scene are

- its :func:`graphc.scope` paths, nested as the scopes nest (the adjoint nodes
  of a block are in the block's scope, so a unit holds its forward and its
  backward work);
- the repeated blocks found among the boxes of one scope that no inner scope
  holds (the layers of a deep chain, the time steps of an unrolled RNN): copies
  of one sequence of forward boxes, each copy with the adjoint and recomputed
  boxes that go with its forward boxes (:attr:`Box.anchor`). A run of copies
  keeps its first and last copies as units of their own and puts the ones in
  between into one ``× k repeats`` unit.

:func:`outline` draws the top-level units collapsed, then expands units one
level at a time, the biggest first, while the picture stays within a quarter
of ``max_nodes`` boxes (OUTLINE_SHARE: a unit's box, a table of counts, is
bigger than a node's, and graphviz lays out fewer boxes faster);
``focus="stage3/block2"`` expands the path to that scope one level at
each step (its siblings stay collapsed) and that scope as far as the budget
allows. A collapsed unit is one box that counts what it holds by kind
(forward, ∂ adjoint, ↻ recomputed, kept for the backward pass, ← updates,
sources), each count in its colour, and its bytes: at the peak step for a plan
with a memory plan, the sum of its values' sizes for a graph.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Iterator, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.render.collapse import ONE_SCREEN_INCHES
from graphc.render.scene import (
    CONTRIBUTION_EDGE, EDGE, Arrow, Box, Scene, add_tallies, box_tally, sum_bytes, tally_columns, tally_html,
)

MIN_COPIES = 4  # a block is a repeated block when at least this many copies follow one another
MIN_REPEATED = 8  # ... and they hold at least this many forward boxes together
MIN_BLOCK = 2  # the shortest repeated block looked for, in forward boxes (four relus in a row are no layers)
MAX_BLOCK = 64  # the longest repeated block looked for, in forward boxes
SPINE = ("forward", "reference")  # the kinds of box repeats are found among; the other boxes follow them
MAX_PARTNERS = 8  # a box that goes with more forward boxes than this goes with none (see _partners)
UNIT_ATTRS = {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": "#f7f7f7", "color": "#6b6b6b",
              "penwidth": "1.3", "margin": "0.04,0.02"}
OUTLINE_SHARE = 0.25  # units are expanded while the picture has at most this share of max_nodes boxes (a focus: all)
UPDATE_EDGE = "#b9a6d9"  # arrows into an optimizer's updates: light, they do not shape the layout
SHARED_SOURCE = 4  # a source read by more units than this is drawn without its arrows into them


@dataclass(eq=False)
class Unit:
    """A scope, a copy of a repeated block, or a run of copies: drawn as one box or as its contents.

    ``own`` are the boxes drawn when the unit is expanded that no child holds;
    ``cluster`` is the path of the cluster its contents are drawn in then (a
    scope's path, a copy's title under its scope's). Units of one ``family``
    are expanded together or not at all: the first and last copies of a run,
    and the copies between them.
    """

    title: list[str]
    kind: str  # "root", "scope", "copy" or "run"
    path: str  # the scope path (scope units and the root); focus names units by it
    cluster: str
    own: list[int] = field(default_factory=list)
    children: list["Unit"] = field(default_factory=list)
    family: int | None = None

    def members(self) -> list[int]:
        """Every box the unit holds, in order."""
        return sorted(self.own + [i for child in self.children for i in child.members()])

    def growth(self) -> int:
        """How many more boxes the picture draws when this unit is expanded instead of drawn as one box."""
        return len(self.own) + len(self.children) - 1

    def walk(self) -> Iterator["Unit"]:
        """This unit and every unit inside it, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()


# --- the tree of units ------------------------------------------------------------------------------


def unit_tree(scene: Scene) -> Unit:
    """The units of ``scene``: its scopes, nested, and in each the repeated blocks of its own boxes."""
    root = Unit([scene.title], "root", "", "")
    scopes: dict[str, Unit] = {"": root}
    for i, box in enumerate(scene.boxes):
        _scope_unit(scopes, box.home if box.home is not None else box.scope).own.append(i)
    partner = _partners(scene)
    families = iter(range(1 << 30))
    for unit in list(scopes.values()):
        _add_repeats(scene, unit, partner, families)
    for unit in list(root.walk()):
        unit.children.sort(key=lambda u: u.members()[0])
        _add_scope_runs(scene, unit, families)
    return root


def _scope_unit(scopes: dict[str, Unit], path: str) -> Unit:
    """The unit of scope ``path``, made with its enclosing scopes' on first use."""
    if path not in scopes:
        outer = _scope_unit(scopes, path.rpartition("/")[0])
        scopes[path] = Unit([path], "scope", path, path)
        outer.children.append(scopes[path])
    return scopes[path]


def _partners(scene: Scene) -> list[frozenset[int]]:
    """For each box, the forward boxes it goes with: it joins a copy of a repeated block if they are all in it.

    A forward box goes with itself; an adjoint or recomputed box with its
    anchor; a box without one (a step of the running sum of a shared weight's
    gradient, say) with the latest of what the boxes it reads go with, if they
    go with one or two boxes (a Σ of the terms of every time step goes with
    none); a source (a param, an input) with its forward readers (or if it
    has none, its readers but its optimizer's updates), unless they are more
    than MAX_PARTNERS (a param of one layer joins the layer; a weight read by
    every time step joins none).
    """
    n = len(scene.boxes)
    reads: list[list[int]] = [[] for _ in range(n)]
    readers: list[list[int]] = [[] for _ in range(n)]
    for a in scene.arrows:
        if a.attrs.get("constraint") != "false" and a.src != a.dst:
            reads[a.dst].append(a.src)
            readers[a.src].append(a.dst)
    none: frozenset[int] = frozenset()
    partner = [frozenset([i]) if box.kind in SPINE else none for i, box in enumerate(scene.boxes)]
    for i, box in enumerate(scene.boxes):
        if box.kind in SPINE or box.kind == "source":
            continue
        if box.anchor is not None and partner[box.anchor]:
            partner[i] = partner[box.anchor]
        else:
            found = frozenset().union(*(partner[j] for j in reads[i] if scene.boxes[j].kind != "source"))
            partner[i] = frozenset([max(found)]) if 0 < len(found) <= 2 else none
    for i, box in enumerate(scene.boxes):
        if box.kind == "source":
            found = [j for j in readers[i] if scene.boxes[j].kind in SPINE]
            found = found or [j for j in readers[i] if scene.boxes[j].kind != "update"]
            joined = frozenset().union(*(partner[j] for j in found))
            partner[i] = joined if len(joined) <= MAX_PARTNERS else none
    return partner


def _add_repeats(scene: Scene, unit: Unit, partner: list[frozenset[int]], families: Iterator[int]) -> None:
    """Move the copies of repeated blocks among ``unit``'s own boxes into child units."""
    spine = [i for i in unit.own if scene.boxes[i].kind in SPINE]
    for copies in _repeated_blocks(scene, spine):
        copy_of = {i: c for c, copy in enumerate(copies) for i in copy}
        held: list[list[int]] = [[] for _ in copies]
        rest = []
        for i in unit.own:
            found = {copy_of.get(p) for p in partner[i]}
            (held[found.pop()] if len(found) == 1 and None not in found else rest).append(i)
        unit.own = rest
        unit.children += _run_units(scene, unit, held, next(families))


def _add_scope_runs(scene: Scene, unit: Unit, families: Iterator[int]) -> None:
    """Group runs of at least ``MIN_COPIES`` sibling scopes that hold the same ops (``layer0`` … ``layer39``)
    as the runs of repeated blocks are: the first, a ``× k repeats`` unit of the middle ones, the last."""
    children, grouped, k = unit.children, [], 0
    signatures = [_scope_signature(scene, child) for child in children]
    while k < len(children):
        end = k + 1
        while signatures[k] is not None and end < len(children) and signatures[end] == signatures[k]:
            end += 1
        if end - k >= MIN_COPIES:
            grouped += _scope_run(scene, unit, children[k:end], next(families))
        else:
            grouped += children[k:end]
        k = end
    unit.children = grouped


def _scope_signature(scene: Scene, unit: Unit) -> tuple | None:
    """What a scope holds, as its boxes' motifs in order (None for units that are no scope)."""
    return tuple(_motif(scene.boxes[i]) for i in unit.members()) if unit.kind == "scope" else None


def _scope_run(scene: Scene, unit: Unit, copies: list[Unit], family: int) -> list[Unit]:
    """Sibling scopes that hold the same ops: the first and the last expanded together, the middle ones too."""
    for k, copy in enumerate(copies):
        copy.family = 2 * family + (0 < k < len(copies) - 1)
    middle = copies[1:-1]
    size = len(middle[0].members())
    run = Unit([f"× {len(middle)} repeats of a {size}-node scope", _block_text(scene, middle[0].members()),
                f"{middle[0].path} … {middle[-1].path}"], "run", unit.path, unit.cluster, children=middle)
    return [copies[0], run, copies[-1]]


def _run_units(scene: Scene, unit: Unit, copies: list[list[int]], family: int) -> list[Unit]:
    """The first copy, a ``× k repeats`` unit of the middle ones, and the last copy."""
    n = len(copies)
    under = f"{unit.cluster}/" if unit.cluster else ""

    def copy_unit(k: int) -> Unit:  # the first and the last copy are expanded together, the middle ones too
        title = f"repeat {k + 1} of {n}"
        return Unit([title, _block_text(scene, copies[k])], "copy", unit.path, under + title, own=copies[k],
                    family=2 * family + (0 < k < n - 1))

    middle = [copy_unit(k) for k in range(1, n - 1)]
    size = len(copies[1])
    first, last = scene.boxes[copies[1][0]].name, scene.boxes[copies[-2][-1]].name
    run = Unit([f"× {n - 2} repeats of a {size}-node block", _block_text(scene, copies[1]), f"{first} … {last}"],
               "run", unit.path, unit.cluster, children=middle)
    return [copy_unit(0), run, copy_unit(n - 1)]


def _block_text(scene: Scene, members: Sequence[int]) -> str:
    """``matmul → add → tanh``: the forward ops of one copy (the first six)."""
    ops = [scene.boxes[i].op for i in members if scene.boxes[i].kind in SPINE]
    return " → ".join(ops[:6]) + (" → …" if len(ops) > 6 else "")


# --- repeated blocks --------------------------------------------------------------------------------


def _repeated_blocks(scene: Scene, spine: list[int]) -> list[list[list[int]]]:
    """Runs of copies of one block among the boxes ``spine`` (in order): each run a list of copies.

    Runs are taken largest first; each is a stretch of the spine where a box's
    motif equals the motif ``p`` boxes on, cut into copies of ``p`` boxes where
    the fewest arrows cross from one copy into the next (a time step begins
    where the previous step's state is read, not in the middle of a step).
    """
    codes_of: dict[Hashable, int] = {}
    codes = np.array([codes_of.setdefault(_motif(scene.boxes[i]), len(codes_of)) for i in spine], dtype=np.int64)
    position = {box: k for k, box in enumerate(spine)}
    links = np.array([(position[a.src], position[a.dst]) for a in scene.arrows
                      if a.src in position and a.dst in position], dtype=np.int64).reshape(-1, 2)
    free = np.ones(len(spine), dtype=bool)
    runs = []
    while True:
        found = _best_stretch(codes, free)
        if found is None:
            return sorted(runs, key=lambda run: run[0][0])
        start, period, length = found
        phase, count = _best_phase(links, start, period, length)
        begin = start + phase
        free[start: start + length] = False
        runs.append([[spine[k] for k in range(begin + c * period, begin + (c + 1) * period)] for c in range(count)])


def _motif(box: Box) -> Hashable:
    return box.signature if box.motif is None else box.motif


def _best_stretch(codes: np.ndarray, free: np.ndarray) -> tuple[int, int, int] | None:
    """The periodic stretch covering the most free boxes: ``(start, period, length)``.

    For each period p, the positions i with ``codes[i] == codes[i + p]`` (both
    free) form runs; a run of L positions from s makes a stretch of ``L + p``
    boxes from s, ``(L + p) // p`` copies of a p-box block.
    """
    n = len(codes)
    best: tuple[int, int, int, int] | None = None  # (covered, start, period, length)
    for p in range(MIN_BLOCK, min(MAX_BLOCK, n // MIN_COPIES) + 1):
        same = (codes[:-p] == codes[p:]) & free[:-p] & free[p:]
        if not same.any():
            continue
        edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = ends - starts + p
        covered = np.where(lengths // p >= MIN_COPIES, (lengths // p) * p, 0)
        k = int(np.argmax(covered))
        if covered[k] >= MIN_REPEATED and (best is None or covered[k] > best[0]):
            best = (int(covered[k]), int(starts[k]), p, int(lengths[k]))
    return None if best is None else best[1:]


def _best_phase(links: np.ndarray, start: int, period: int, length: int) -> tuple[int, int]:
    """Where copies begin in a stretch (an offset from its start) and how many fit: fewest arrows between copies.

    Ties go to more copies, then to the earliest offset.
    """
    best: tuple[float, int, int] | None = None  # (crossings per boundary, -count, phase)
    for phase in range(period):
        count = (length - phase) // period
        if count < MIN_COPIES:
            break
        lo, hi = start + phase, start + phase + count * period
        inside = (links[:, 0] >= lo) & (links[:, 0] < hi) & (links[:, 1] >= lo) & (links[:, 1] < hi)
        copy = (links[inside] - lo) // period
        crossings = int(np.count_nonzero(copy[:, 0] != copy[:, 1])) / (count - 1)
        key = (crossings, -count, phase)
        if best is None or key < best:
            best = key
    return (0, length // period) if best is None else (best[2], -best[1])


# --- which units are drawn expanded ---------------------------------------------------------------


def find_scope(root: Unit, path: str, what: str) -> Unit:
    """The unit of scope ``path``; a GraphError naming the path and the top-level scopes if there is none."""
    for unit in root.walk():
        if unit.kind == "scope" and unit.path == path:
            return unit
    tops = sorted(u.path for u in root.children if u.kind == "scope")
    known = ", ".join(tops) if tops else "none: it has no scopes"
    raise GraphError(f"focus={path!r}: {what} has no scope of that path; its top-level scopes are {known}")


def expanded_units(root: Unit, budget: float, focus: Unit | None = None) -> set[Unit]:
    """The units drawn as their contents; the others are drawn as one box each.

    Without a focus: the root, then level by level the units (a run's copies
    all together) that keep the picture within ``budget`` boxes, the biggest
    first (the stages of a model before its optimizer's updates). With one:
    the scopes on the path to it, and it and its descendants, level by level
    within the budget.
    """
    expanded = {root}
    drawn = len(root.own) + len(root.children)
    start = [root]
    if focus is not None:
        chain = _path_to(root, focus)
        for unit in chain[1:]:
            expanded.add(unit)
            drawn += unit.growth()
        start = [focus]
    level = [child for unit in start for child in unit.children]
    while level:
        grown = []
        for family in sorted(_families(level), key=lambda f: (-sum(len(u.members()) for u in f), f[0].members()[0])):
            growth = sum(u.growth() for u in family)
            if drawn + growth <= budget:
                expanded.update(family)
                drawn += growth
                grown += [child for u in family for child in u.children]
        level = grown
    return expanded


def _path_to(root: Unit, target: Unit) -> list[Unit]:
    """The units from the root down to ``target``, both included."""
    def search(unit: Unit) -> list[Unit] | None:
        if unit is target:
            return [unit]
        for child in unit.children:
            found = search(child)
            if found is not None:
                return [unit] + found
        return None

    return search(root) or [root]


def _families(units: list[Unit]) -> list[list[Unit]]:
    """The units grouped: the copies of one run together, each other unit alone."""
    groups: dict[object, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.family if unit.family is not None else id(unit), []).append(unit)
    return list(groups.values())


# --- the picture of the units ---------------------------------------------------------------------


def outline(scene: Scene, max_nodes: int | None, focus: str | None = None) -> Scene:
    """``scene`` drawn in units: collapsed scopes and repeated blocks, expanded while ``max_nodes`` boxes allow.

    ``focus`` (a scope path) expands that scope in its context and leaves the
    rest collapsed; an unknown path is a :class:`GraphError` naming it and the
    top-level scopes. A scene without scopes or repeats is returned as it is.
    """
    root = unit_tree(scene)
    if not root.children and focus is None:
        return scene  # no scopes and no repeats: nothing to draw in units
    target = find_scope(root, focus, _what(scene)) if focus is not None else None
    budget = math.inf if max_nodes is None else max_nodes if focus is not None else max_nodes * OUTLINE_SHARE
    expanded = expanded_units(root, budget, target)
    items = list(_drawn(root, expanded, ""))
    items.sort(key=lambda item: _place(scene, item[1]))
    columns = tally_columns(scene.boxes)
    boxes, new_index, leaves = [], [0] * len(scene.boxes), set()
    for k, (unit, members, cluster) in enumerate(items):
        for i in members:
            new_index[i] = k
        if unit is None:
            leaves.add(k)
            boxes.append(dataclasses.replace(scene.boxes[members[0]], scope=cluster))
        else:
            boxes.append(_unit_box(scene, unit, members, cluster, columns))
    boxes, arrows, notes = _without_shared_sources(boxes, _into_clusters(boxes, merge_arrows(scene, new_index, leaves)))
    return _outlined(scene, boxes, arrows, focus, notes)


def _into_clusters(boxes: list[Box], arrows: list[Arrow]) -> list[Arrow]:
    """The arrows, those into a cluster from a box that comes after some of its boxes made not to rank.

    An expanded scope holds its forward and its backward work: GPT-2's ``embed``
    holds the embedding, which block0 reads, and the sum of the embedding's
    gradient terms, which reads block0's backward work. ``dot`` ranks a cluster
    as one piece, so the arrow from block0 into the cluster's backward box put
    the whole cluster below block0, and block0 at the top of the picture.
    Such an arrow (the gradient flowing back into an earlier scope) is drawn
    dashed, as the other arrows pointing back are, and does not rank.
    """
    first: dict[str, int] = {}  # a cluster (and each scope around it) -> its first computed box in the order
    for i, box in enumerate(boxes):  # (a plan lists its sources first: a param read late is no earlier work)
        if box.tally is None and box.scope and box.kind not in ("source", "reference"):
            names = box.scope.split("/")
            for depth in range(1, len(names) + 1):
                first.setdefault("/".join(names[:depth]), i)
    result = []
    for a in arrows:
        cluster = boxes[a.dst].scope if boxes[a.dst].tally is None else ""
        outside = cluster and not (boxes[a.src].scope + "/").startswith(cluster + "/")
        if outside and a.attrs.get("constraint") != "false" and first.get(cluster, a.src) < a.src:
            attrs = {**a.attrs, "constraint": "false", "style": "dashed"}
            if attrs.get("color", EDGE) == EDGE:
                attrs.update(color=CONTRIBUTION_EDGE, fontcolor=CONTRIBUTION_EDGE)
            a = Arrow(a.src, a.dst, a.label, attrs)
        result.append(a)
    return result


def _place(scene: Scene, members: list[int]) -> int:
    """Where a drawn box goes in the order: at its first computed member.

    A plan lists every source first, and an adjoint view the forward values it
    reads (references) before its own work; a unit of the adjoint view of
    block 3 goes where block 3's backward work begins, after block 4's.
    """
    return next((i for i in members if scene.boxes[i].kind not in ("source", "reference")),
                next((i for i in members if scene.boxes[i].kind != "source"), members[0]))


def _without_shared_sources(boxes: list[Box], arrows: list[Arrow]) -> tuple[list[Box], list[Arrow], list[str]]:
    """The picture less the sources read by more than SHARED_SOURCE units, and a note naming them.

    A constant or a weight read by every block would tie every unit to one box
    (an RNN's weights, read by every time step, stay while its steps are few
    enough to be drawn together).
    """
    readers: dict[int, set[int]] = {}
    for a in arrows:
        if boxes[a.src].kind == "source" and boxes[a.src].tally is None:
            readers.setdefault(a.src, set()).add(a.dst)
    shared = {i for i, read in readers.items() if sum(1 for d in read if boxes[d].tally) > SHARED_SOURCE}
    if not shared:
        return boxes, arrows, []
    new_index, kept = {}, []
    for i, box in enumerate(boxes):
        if i not in shared:
            new_index[i] = len(kept)
            kept.append(box)
    moved = [Arrow(new_index[a.src], new_index[a.dst], a.label, a.attrs) for a in arrows
             if a.src not in shared and a.dst not in shared]
    names = [boxes[i].lines[0] for i in sorted(shared)]
    listed = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    sources = f"{len(shared)} source{'s' if len(shared) > 1 else ''}"
    note = f"left out: {sources} read by more than {SHARED_SOURCE} units ({listed})"
    return kept, moved, [note]


def _what(scene: Scene) -> str:
    """What the scene draws, as its title says it: ``graph 'mlp'``, ``plan 'step'``."""
    head = scene.title.split(":", 1)[0]
    return head.split(" of ", 1)[1] if " view of " in head else head


def _drawn(unit: Unit, expanded: set[Unit], cluster: str) -> Iterator[tuple[Unit | None, list[int], str]]:
    """What is drawn of ``unit``: ``(None, [box], cluster)`` per box, ``(unit, members, cluster)`` per collapsed one."""
    if unit not in expanded:
        yield unit, unit.members(), cluster
        return
    inner = unit.cluster if unit.kind != "run" else cluster
    for i in unit.own:
        yield None, [i], inner
    for child in unit.children:
        yield from _drawn(child, expanded, inner)


def _unit_box(scene: Scene, unit: Unit, members: list[int], cluster: str, columns: list[str]) -> Box:
    """One box for a collapsed unit: its title, its counts by kind in their colours, its bytes."""
    inner = [scene.boxes[i] for i in members]
    tally = add_tallies(box_tally(b) for b in inner)
    nbytes = sum_bytes(b.nbytes for b in inner)
    title = [line for line in unit.title if line]
    html = tally_html(title, tally, columns, nbytes, scene.bytes_meaning)
    return Box(title, dict(UNIT_ATTRS), "unit", ("unit", id(unit)), "unit", title[0],
               in_order=any(b.in_order for b in inner), scope=cluster, group=True, tally=tally, nbytes=nbytes, html=html)


def merge_arrows(scene: Scene, new_index: Sequence[int], leaves: set[int]) -> list[Arrow]:
    """The arrows between the drawn boxes: parallel ones merged and counted, none inside a box.

    An arrow between two boxes drawn as they were keeps its label; merged ones
    are labelled ``×k`` (beside the arrow) and drawn in the colour most of them had. One that
    points back in the order (the gradient flowing from a later unit into an
    earlier one) or into updates does not rank the boxes
    (``constraint=false``), so the forward flow decides the layout. An update
    writing back a param inside a unit is not drawn (its param's unit reads
    the update's unit already).
    """
    merged: dict[tuple[int, int], list[Arrow]] = {}
    for a in scene.arrows:
        s, d = new_index[a.src], new_index[a.dst]
        if s != d:
            merged.setdefault((s, d), []).append(a)
    result = []
    for (s, d), group in merged.items():
        writes = all(a.attrs.get("constraint") == "false" for a in group)  # updates writing back their params
        if len(group) == 1 and s in leaves and d in leaves:
            result.append(Arrow(s, d, group[0].label, group[0].attrs))
        elif writes and d in leaves:
            label = group[0].label + (f" ({len(group)})" if len(group) > 1 else "")
            result.append(Arrow(s, d, label, dict(group[0].attrs)))
        elif not writes:
            updates = all(scene.boxes[a.dst].kind == "update" for a in group)
            attrs = _merged_attrs(group, s > d, updates)
            if len(group) > 1:  # an xlabel takes no rank of its own, as an edge's label does in dot's layout
                attrs["xlabel"] = f"×{len(group)}"
            result.append(Arrow(s, d, "", attrs))
    return result


def _merged_attrs(group: list[Arrow], backwards: bool, updates: bool) -> dict[str, str]:
    """Arrows drawn as one: their most common colour, a width that grows with their number."""
    colour = Counter(a.attrs.get("color", EDGE) for a in group).most_common(1)[0][0]
    attrs = {"color": colour, "fontcolor": colour, "penwidth": f"{1.0 + min(math.log2(len(group)), 4) * 0.4:.1f}"}
    if updates:
        attrs.update(color=UPDATE_EDGE, fontcolor=UPDATE_EDGE, constraint="false", penwidth="1.0")
    elif backwards:
        attrs.update(constraint="false", style="dashed")
        if colour == EDGE:
            attrs.update(color=CONTRIBUTION_EDGE, fontcolor=CONTRIBUTION_EDGE)
    return attrs


def _outlined(scene: Scene, boxes: list[Box], arrows: list[Arrow], focus: str | None, more: list[str]) -> Scene:
    """The scene of units: title, notes and legend say what the boxes count."""
    units = sum(1 for b in boxes if b.tally is not None)
    notes = [f"scopes and repeated blocks drawn as units: {units} collapsed unit{'s' if units != 1 else ''}, "
             "each box counting the nodes it holds by kind"] + more
    if focus is not None:
        notes.append(f"focus: {focus} expanded, the rest collapsed")
    notes.append("focus='a/scope' expands one scope; max_nodes=None draws every node; "
                 "gc.render([values], ...) draws what those values need")
    legend = list(scene.legend) + ["unit"]
    if scene.bytes_meaning:
        legend.append("bytes_" + scene.bytes_meaning)
    if any(b.kept for b in scene.boxes) and "kept" not in legend:
        legend.append("kept")
    title = f"{scene.title}, drawn as {len(boxes):,d} boxes"
    # No newrank: graphviz 2.43 crashes on some pictures of units with it (it reads any value as true: "" drops it).
    attrs = {**scene.graph_attrs, "size": ONE_SCREEN_INCHES, "newrank": ""}
    return dataclasses.replace(scene, title=title, boxes=boxes, arrows=arrows, clusters={}, legend=legend,
                               notes=scene.notes + notes, graph_attrs=attrs, legend_column=True)
