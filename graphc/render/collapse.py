"""Collapsing: big scenes shrunk to a number of boxes that graphviz lays out and a reader reads.

Runs of a repeated block (a layer of a deep chain, say) keep their first and
last copies and draw the copies in between as one ``×k`` box; if that is not
enough, consecutive boxes of one part are grouped into bands that list their
ops. A group is a stretch of a topological order, so the picture stays acyclic.
Each group box counts what it holds by kind, as a unit's box does.

:func:`graphc.render.to_dot` draws big scenes in units first
(:mod:`graphc.render.units`); it shrinks here what units alone cannot (a big
graph without scopes or repeats, say).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Hashable, Iterable

import numpy as np

from graphc.render.scene import (
    CHECKPOINT_BORDER, COLOURS, Arrow, Box, Scene, add_tallies, box_tally, sum_bytes, tally_columns, tally_html,
)

MAX_PERIOD = 64  # the longest repeated block looked for, in boxes
MIN_HIDDEN = 4  # a repeated block is collapsed only if that hides at least this many boxes
EDGES_PER_BOX = 1.0  # a shrunk picture with more arrows than this × max_nodes is shrunk further
ONE_SCREEN_INCHES = "20.8,20.8"  # a shrunk picture is scaled to at most this size: 2,000 px at 96 dpi
BAND_SIZES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # boxes per band, tried in turn


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
        if keep_groups and (len(unit) > 1 or scene.boxes[unit[0]].group):  # a group, or a unit drawn before
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


def _group_box(scene: Scene, group: _Group, columns: list[str]) -> Box:
    """One box for a group: what it holds in words, its counts by kind in their colours, its bytes."""
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
    attrs = {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": COLOURS["group"], "penwidth": "1.4",
             "margin": "0.04,0.02"}
    if any(b.attrs.get("peripheries") == "2" for b in members):
        attrs.update(peripheries="2", color=CHECKPOINT_BORDER)
    tally = add_tallies(box_tally(b) for b in members)
    nbytes = sum_bytes(b.nbytes for b in members)
    return Box(lines, attrs, part, ("group",), "group", span, in_order=any(b.in_order for b in members), group=True,
               scope=common_scope(b.scope for b in members), tally=tally, nbytes=nbytes,
               html=tally_html(lines, tally, columns, nbytes, scene.bytes_meaning))


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
        notes.append(f"{len(groups)} repeated block{'s' if len(groups) > 1 else ''} collapsed "
                     f"({hidden:,d} nodes drawn as {len(groups)} box{'es' if len(groups) > 1 else ''})")
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
    columns = tally_columns(scene.boxes)
    for i, box in enumerate(scene.boxes):
        g = owner[i]
        if g is None:
            new_index[i] = len(boxes)
            boxes.append(box)
        elif g in placed:
            new_index[i] = placed[g]
        else:
            placed[g] = new_index[i] = len(boxes)
            boxes.append(_group_box(scene, groups[g], columns))
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
    title = f"{scene.title}, drawn as {len(boxes):,d} boxes"
    return replace(scene, title=title, boxes=boxes, arrows=arrows, legend=legend, notes=scene.notes + notes)


def fit(scene: Scene, max_nodes: int) -> Scene:
    """:func:`shrink` to ``max_nodes`` boxes, and further while arrows are too many to lay out quickly."""
    limit = max_nodes
    while True:
        small = _without_crossing_reads(shrink(scene, limit))
        if len(small.arrows) <= EDGES_PER_BOX * max_nodes or limit <= 20:
            break
        limit = int(limit * 0.75)
    hint = "max_nodes=None draws every node; gc.render([values], ...) draws what those values need"
    said = any("max_nodes=None" in note for note in small.notes)  # drawn in units first, which says it
    attrs = {**small.graph_attrs, "size": ONE_SCREEN_INCHES}
    return replace(small, notes=small.notes + ([] if said else [hint]), graph_attrs=attrs)


def _without_crossing_reads(scene: Scene) -> Scene:
    """A shrunk joint view without the arrows from forward boxes into the adjoint cluster.

    Those reads (the kept checkpoints) wrap around the whole picture once
    boxes are grouped; the double borders still mark what the backward pass reads.
    """
    if "adjoint" not in scene.clusters or not any(box.group for box in scene.boxes):
        return scene
    inside = [box.part == "adjoint" for box in scene.boxes]
    arrows = [a for a in scene.arrows if inside[a.src] or not inside[a.dst]]
    if len(arrows) == len(scene.arrows):
        return scene
    note = "arrows from forward values into the adjoint graph left out (double borders mark the values it reads)"
    return replace(scene, arrows=arrows, notes=scene.notes + [note])

