"""Plots of where memory goes: the timeline, what it holds, the arena layout, and the memory–recompute frontier.

matplotlib is imported inside each function (it is the ``plots`` extra, not a
core dependency). Figures are built without pyplot, so nothing depends on the
backend: each function returns a :class:`matplotlib.figure.Figure` (shown
inline by Jupyter) and, when ``path`` is given, saves it there too (the
format comes from the suffix: ``.png``, ``.svg``, ``.pdf``).

- :func:`plot_memory_timeline` — the bytes of intermediates live at each step
  of the plan, with the arena the planner placed them in, the schedule's lower
  bound (no placement can use less) and a budget; a strip above it has a lane
  per tag (forward, recompute, backward, update) with a bar at each instruction
  of that tag.
- :func:`plot_memory_by_kind` — the same live bytes as a stack of what they
  hold: activations kept for the backward, gradients, optimizer updates,
  scratch and other values (:func:`live_bytes_by`), or the scopes that wrote them.
- :func:`plot_arena_layout` — every block of the arena as a rectangle:
  steps it is live × the bytes it occupies.
- :func:`plot_frontier` — memory against recompute for several policies and
  budgets (the rows the recompute benchmark writes).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from graphc.errors import GraphError
from graphc.ir import TOP_LEVEL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from graphc.compile import Program
    from graphc.plan import Plan

# One colour per instruction tag, the same as the plan images (graphc.render).
TAG_COLOURS = {
    "forward": "#6f9fd8",
    "backward": "#e07a6b",
    "recompute": "#f39c32",
    "update": "#9b7fc9",
}
TAG_NAMES = {"forward": "forward", "backward": "backward (∂)", "recompute": "recompute (↻)", "update": "update (←)"}


def _figure(width: float = 9.0, height: float = 4.2) -> tuple["Figure", "Axes"]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _save(fig: "Figure", path: str | Path | None) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)


def byte_unit(nbytes: float) -> tuple[float, str]:
    """A divisor and a unit name that show ``nbytes`` as a number between 1 and 1024."""
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes >= scale:
            return float(scale), unit
    return 1.0, "B"


def format_bytes(nbytes: float) -> str:
    """``832 B``, ``12.5 KiB``, ``3.07 MiB``."""
    scale, unit = byte_unit(nbytes)
    return f"{nbytes:,.0f} B" if unit == "B" else f"{nbytes / scale:.3g} {unit}"


def _memory(program: "Program"):
    memory = getattr(program, "memory", None)
    if memory is None:
        raise GraphError("this program has no memory plan (a Program built from a bare Plan); compile it with gc.compile")
    return memory


def _tag_runs(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of adjacent instructions of one tag: ``(tag, first instruction, last + 1)``."""
    runs: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if runs and runs[-1][0] == tag:
            runs[-1] = (tag, runs[-1][1], i + 1)
        else:
            runs.append((tag, i, i + 1))
    return runs


TAG_ORDER = ("forward", "recompute", "backward", "update")
"""The lanes of the instruction strip, top to bottom (see :func:`_tag_lanes`)."""


def _figure_with_lanes(tags: Sequence[str], width: float = 9.0, height: float = 4.6) -> tuple["Figure", "Axes", "Axes"]:
    """A figure of two panels sharing the step axis: a strip of tag lanes on top (:func:`_tag_lanes`), the plot below."""
    from matplotlib.figure import Figure

    present = [tag for tag in TAG_ORDER if tag in set(tags)] + sorted(set(tags) - set(TAG_ORDER))
    fig = Figure(figsize=(width, height), layout="constrained")
    lanes, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [0.2 + 0.16 * len(present), 3.4]})
    _tag_lanes(lanes, tags, present)
    return fig, lanes, ax


def _tag_lanes(ax: "Axes", tags: Sequence[str], present: Sequence[str]) -> None:
    """One lane per tag, named on the left: instruction ``i`` is a bar over ``[i, i + 1]`` in its tag's lane.

    Adjacent instructions of one tag make one bar. Each tag has a lane of its
    own, so a recompute among backward steps, or the updates a training step
    interleaves with its forward pass (batch norm's running statistics), show as
    such, where shades of the plot's background would blend into another
    colour. One collection of bars per tag, labelled ``"<tag> steps"``.
    """
    runs = _tag_runs(tags)
    for row, tag in enumerate(present):
        spans = [(start, stop - start) for t, start, stop in runs if t == tag]
        ax.broken_barh(spans, (row - 0.42, 0.84), facecolors=TAG_COLOURS.get(tag, "#cccccc"), lw=0,
                       label=f"{TAG_NAMES.get(tag, tag)} steps")
    ax.set_ylim(len(present) - 0.5, -0.5)
    ax.set_yticks(range(len(present)), [TAG_NAMES.get(tag, tag) for tag in present], fontsize=7)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


def _stairs(ax: "Axes", values: Sequence[float], edges: Sequence[float], *, color: str, fill: bool = False,
            baseline: Any = 0, **kwargs: Any) -> Any:
    """``ax.stairs`` without its cost: the StepPatch is added as an artist (no data limits computed from its
    thousands of segments, which took seconds a plot on a plan of 2,000 steps); the callers set the limits."""
    from matplotlib.patches import StepPatch

    colours = {"facecolor": color, "edgecolor": "none"} if fill else {"edgecolor": color, "facecolor": "none"}
    patch = StepPatch(values, edges, baseline=baseline, fill=fill, **colours, **kwargs)
    ax.add_artist(patch)
    return patch


def _step_axis(ax: "Axes", steps: int) -> None:
    """The x axis of plan steps: instruction ``i`` spans ``[i, i + 1]``, all of ``0 … steps`` shown."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0, max(steps, 1))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.set_xlabel("plan step (instruction)")


def _bytes_axis(ax: "Axes", top: float, unit: str, what: str) -> None:
    """A y axis of bytes shown in ``unit`` (values already divided by its scale), with a few round ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_ylim(0, top)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_ylabel(f"{what} ({unit})", fontsize=9)


def plot_memory_timeline(
    program: "Program", path: str | Path | None = None, budget: int | None = None, title: str | None = None
) -> "Figure":
    """Bytes of intermediates live at each plan step, against the arena, the lower bound and ``budget``.

    The live bytes are the planner's own liveness (``program.memory.live_bytes``):
    a value is live from the step that writes it to the last step that reads
    it. Their maximum is the lower bound of this schedule; the arena (planned
    bytes) sits at or above it, the gap being fragmentation. Instruction ``i``
    spans ``[i, i + 1]`` on the x axis; the strip above the plot has a lane per
    tag (forward, recompute, backward, update) and a bar in its tag's lane at
    every instruction, so a view bound for the backward pass among forward
    steps shows as a backward step, and every recompute as a recompute.
    """
    memory = _memory(program)
    live = list(memory.live_bytes)
    instructions = program.plan.instructions
    peak = max([memory.planned_bytes, memory.lower_bound_bytes, budget or 0, *live, 1])
    scale, unit = byte_unit(peak)
    fig, lanes, ax = _figure_with_lanes([ins.tag for ins in instructions])
    _stairs(ax, [b / scale for b in live], range(len(live) + 1), color="#1b1b1b", lw=1.4, label="live intermediates")
    ax.axhline(memory.planned_bytes / scale, color="#1f4e8c", ls="--", lw=1.3,
               label=f"arena (planned) {format_bytes(memory.planned_bytes)}")
    ax.axhline(memory.lower_bound_bytes / scale, color="#2e8b57", ls=":", lw=1.6,
               label=f"lower bound {format_bytes(memory.lower_bound_bytes)}")
    if budget is not None:
        ax.axhline(budget / scale, color="#c0392b", ls="-.", lw=1.3, label=f"budget {format_bytes(budget)}")
    _step_axis(ax, len(live))
    _bytes_axis(ax, peak / scale * 1.12, unit, "bytes live")
    lanes.set_title(title or (f"memory timeline — plan {program.plan.name!r}: {len(instructions)} instructions, "
                              f"without reuse {format_bytes(memory.no_reuse_bytes)}"), fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return fig


def _block_name(key: Any) -> str:
    """The name of an arena block: its node's, or ``node.scratchK``."""
    if isinstance(key, tuple) and key and hasattr(key[0], "name"):
        return f"{key[0].name}.scratch{key[1] if len(key) > 1 else ''}"
    return str(getattr(key, "name", key))


def block_label(program: "Program", iv: Any, offset: int) -> str:
    """The values a block holds in turn (in-place reuse), e.g. ``matmul_4 → z1 → h1 → … (+2)``.

    Read off the plan: the buffers written at this offset, with this size,
    while the block is live.
    """
    plan = program.plan
    names = []
    for ins in plan.instructions[iv.start: iv.end + 1]:
        out = plan.buffers[ins.out]
        if out.offset == offset and out.kind in ("temp", "scratch") and out.nbytes == iv.nbytes:
            names.append(out.name)
    names = names or [_block_name(iv.key)]
    return " → ".join(names) if len(names) <= 3 else " → ".join(names[:3]) + f" → … (+{len(names) - 3})"


LABEL_CHARS_ACROSS = 100
"""Characters of a block's name (7-point text) that the arena layout's plot area holds across: a name is
written inside its block only when it fits there."""


def _fitted(label: str, room: float) -> str:
    """``label`` (``a → b → c → … (+4)``) shortened to at most ``room`` characters by leaving out names; "" if the
    first name alone does not fit."""
    if len(label) <= room:
        return label
    names = label.split(" → ")
    if names[-1].startswith("… (+"):
        hidden = int(names[-1][4:-1])
        names = names[:-1]
    else:
        hidden = 0
    while len(names) > 1:
        hidden += 1
        names = names[:-1]
        shorter = " → ".join(names) + f" → … (+{hidden})"
        if len(shorter) <= room:
            return shorter
    return names[0] if len(names[0]) <= room else ""


def plot_arena_layout(program: "Program", path: str | Path | None = None, label_blocks: int = 12,
                      title: str | None = None) -> "Figure":
    """Each arena block as a rectangle: [first step, last step + 1] × [offset, offset + bytes].

    Blocks that never overlap in time may share addresses; the rectangles
    never overlap. A block is coloured by the tag of the instruction that
    first writes it; the ``label_blocks`` largest are named.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch, Rectangle

    memory = _memory(program)
    instructions = program.plan.instructions
    scale, unit = byte_unit(max(memory.planned_bytes, 1))
    fig, ax = _figure()
    rects, colours = [], []
    for iv in memory.intervals:
        offset = memory.offsets.get(iv.key)
        if offset is None:
            continue
        tag = instructions[iv.start].tag if iv.start < len(instructions) else "forward"
        rects.append(Rectangle((iv.start + 0.05, offset / scale), iv.end - iv.start + 0.9, iv.nbytes / scale))
        colours.append(TAG_COLOURS.get(tag, "#bbbbbb"))
    # Edges a darker shade of the fill, not grey: a stack of a thousand thin blocks is then a darker shade of its
    # tag's colour, where grey edges made one dark grey mass that no legend entry names.
    edges = [tuple(0.55 * c for c in to_rgb(colour)) for colour in colours]
    ax.add_collection(PatchCollection(rects, facecolors=colours, edgecolors=edges, linewidths=0.4, alpha=0.85))
    steps = max(len(memory.live_bytes), 1)
    largest = sorted(memory.intervals, key=lambda iv: -iv.nbytes * (iv.end - iv.start + 1))[:label_blocks]
    for iv in largest:  # names only where they fit: tall enough for a line of text, wide enough for the name
        offset = memory.offsets.get(iv.key)
        if offset is None or iv.nbytes < memory.planned_bytes / 25:
            continue
        label = _fitted(block_label(program, iv, offset), (iv.end - iv.start + 1) / steps * LABEL_CHARS_ACROSS)
        if label:
            ax.text((iv.start + iv.end + 1) / 2, (offset + iv.nbytes / 2) / scale, label,
                    ha="center", va="center", fontsize=7, clip_on=True)
    ax.axhline(memory.planned_bytes / scale, color="#1f4e8c", ls="--", lw=1.2)
    _step_axis(ax, steps)
    _bytes_axis(ax, memory.planned_bytes / scale * 1.1 or 1, unit, "arena offset")
    tags_used = {instructions[iv.start].tag for iv in memory.intervals if iv.start < len(instructions)}
    handles = [Patch(color=TAG_COLOURS[t], label=f"written by {TAG_NAMES[t]}") for t in TAG_COLOURS if t in tags_used]
    handles.append(Patch(facecolor="none", edgecolor="#1f4e8c", ls="--", label=f"arena {format_bytes(memory.planned_bytes)}"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(title or (f"arena layout — plan {program.plan.name!r}: {len(rects)} blocks in "
                           f"{format_bytes(memory.planned_bytes)} ({memory.strategy})"), fontsize=10)
    _save(fig, path)
    return fig


# What the bytes live in the arena hold, bottom to top of the stack (see live_bytes_by).
KINDS = ("activations", "gradients", "update", "scratch", "other")
KIND_NAMES = {
    "activations": "activations kept",
    "gradients": "gradients",
    "update": "optimizer update",
    "scratch": "scratch",
    "other": "other forward values",
}
KIND_COLOURS = {
    "activations": TAG_COLOURS["forward"],
    "gradients": TAG_COLOURS["backward"],
    "update": TAG_COLOURS["update"],
    "scratch": "#8c8c8c",
    "other": "#d9d0a3",
}
MAX_SCOPES = 10
"""Scopes drawn apart in :func:`plot_memory_by_kind`; the smaller ones are drawn as one, ``other scopes``."""


def _view_bases(plan: "Plan") -> dict[int, int]:
    """For each buffer a view is bound on, through any chain of views: view buffer → the buffer it reads."""
    bases: dict[int, int] = {}
    for ins in plan.instructions:
        if ins.mode == "view":
            base = ins.args[0]
            bases[ins.out] = bases.get(base, base)
    return bases


def _read_after_forward(plan: "Plan") -> set[int]:
    """The buffers a backward, recompute or update kernel reads (directly or through views): values kept for them.

    A value a recompute reads is a checkpoint: the backward pass rebuilds the rest from it.
    """
    bases = _view_bases(plan)
    return {
        bases.get(arg, arg)
        for ins in plan.instructions
        if ins.mode != "view" and ins.tag in ("backward", "recompute", "update")
        for arg in ins.args
    }


def _arena_writes(plan: "Plan") -> dict[tuple[int, int], list[int]]:
    """The steps writing a value into the arena, by the ``(offset, bytes)`` of the value, in order."""
    writes: dict[tuple[int, int], list[int]] = {}
    for step, ins in enumerate(plan.instructions):
        out = plan.buffers[ins.out]
        if out.kind == "temp" and ins.mode != "view":
            writes.setdefault((out.offset, out.nbytes), []).append(step)
    return writes


def _holders(iv: Any, offset: int | None, writes: dict[tuple[int, int], list[int]]) -> list[tuple[int, int, int]]:
    """The values a block holds in turn: ``(writing step, first step, last step)``, covering the block's life.

    A block's values are the writes at its offset with its size while it is live
    (values reused in place follow one another); no other block is live at that
    offset then, or the two would overlap in the arena.
    """
    steps = writes.get((offset, iv.nbytes), [])
    inside = steps[bisect_left(steps, iv.start): bisect_right(steps, iv.end)] or [iv.start]
    bounds = [iv.start, *inside[1:], iv.end + 1]
    return [(step, bounds[k], bounds[k + 1] - 1) for k, step in enumerate(inside)]


def _kind(plan: "Plan", step: int, kept: set[int]) -> str:
    """The kind of the value written at ``step`` (see :func:`live_bytes_by`)."""
    ins = plan.instructions[step]
    if ins.tag == "backward":
        return "gradients"
    if ins.tag == "update":
        return "update"
    if ins.tag in ("forward", "recompute") and ins.out in kept:
        return "activations"
    return "other"


def _top_scope(plan: "Plan", step: int) -> str:
    return plan.instructions[step].scope.split("/", 1)[0] or TOP_LEVEL


def live_bytes_by(program: "Program", by: str = "kind") -> dict[str, list[int]]:
    """The live bytes of each plan step (``program.memory.live_bytes``), split by kind or by scope.

    Every block of the arena counts, at each step it is live, under the value it
    holds then (the last value written into it; values reused in place follow
    one another in a block), so at every step the parts sum to the live bytes.

    ``by="kind"`` sorts a value by the tag of the instruction that wrote it and
    by who reads it:

    - ``activations``: a forward (or recomputed) value that a backward, recompute
      or update instruction reads, directly or through a view: kept for the
      backward pass (a checkpoint, when a recompute reads it);
    - ``gradients``: a value a backward instruction writes;
    - ``update``: a value an optimizer's instruction writes (the params and the
      optimizer state themselves are stored outside the arena);
    - ``scratch``: the workspace a kernel asks for, live at its own step;
    - ``other``: a forward value that only forward instructions read.

    ``by="scope"`` sorts a value by the first name of the scope of the
    instruction that wrote it (``"encoder"`` for ``"encoder/block3"``,
    ``"(top level)"`` for none), as ``memory.peak_bytes_by_scope`` does.
    Parts are listed bottom to top of the stack: the kinds in :data:`KINDS`
    order, the scopes largest at their peak first.
    """
    if by not in ("kind", "scope"):
        raise GraphError(f"live_bytes_by: by={by!r}; choose 'kind' or 'scope'")
    memory, plan = _memory(program), program.plan
    steps = len(memory.live_bytes)
    kept, writes = _read_after_forward(plan), _arena_writes(plan)
    deltas: dict[str, list[int]] = {kind: [0] * (steps + 1) for kind in KINDS} if by == "kind" else {}

    def add(part: str, first: int, last: int, nbytes: int) -> None:
        delta = deltas.setdefault(part, [0] * (steps + 1))
        delta[first] += nbytes
        delta[last + 1] -= nbytes

    for iv in memory.intervals:
        if isinstance(iv.key, tuple):  # a kernel's scratch, keyed (node, k)
            add("scratch" if by == "kind" else _top_scope(plan, iv.start), iv.start, iv.end, iv.nbytes)
            continue
        for step, first, last in _holders(iv, memory.offsets.get(iv.key), writes):
            part = _kind(plan, step, kept) if by == "kind" else _top_scope(plan, step)
            add(part, first, last, iv.nbytes)
    parts = {part: list(accumulate(delta[:steps])) for part, delta in deltas.items()}
    if by == "scope":
        parts = dict(sorted(parts.items(), key=lambda item: (-max(item[1], default=0), item[0])))
    return parts


def bytes_at_peak_by_step(program: "Program") -> dict[int, int]:
    """The bytes live at the peak step (``memory.peak_step``), by the plan step that wrote them.

    A block of the arena counts under the value it holds at the peak (the last
    one written into it), a kernel's scratch under its kernel's step, as
    :func:`live_bytes_by` sorts them; the parts sum to ``memory.lower_bound_bytes``.
    The picture of a plan adds them up by scope (:mod:`graphc.render`).
    """
    memory, plan = _memory(program), program.plan
    peak, writes = memory.peak_step, _arena_writes(plan)
    held: dict[int, int] = {}
    for iv in memory.intervals:
        if not iv.start <= peak <= iv.end:
            continue
        step = iv.start
        if not isinstance(iv.key, tuple):  # a value's block, not a kernel's scratch (keyed (node, k))
            step = next(s for s, first, last in _holders(iv, memory.offsets.get(iv.key), writes) if first <= peak <= last)
        held[step] = held.get(step, 0) + iv.nbytes
    return held


def _fewer_scopes(parts: dict[str, list[int]]) -> dict[str, list[int]]:
    """The :data:`MAX_SCOPES` largest scopes, and the rest summed as ``other scopes``."""
    if len(parts) <= MAX_SCOPES:
        return parts
    names = list(parts)
    kept = {name: parts[name] for name in names[: MAX_SCOPES - 1]}
    rest = [parts[name] for name in names[MAX_SCOPES - 1:]]
    kept["other scopes"] = [sum(column) for column in zip(*rest)]
    return kept


def plot_memory_by_kind(program: "Program", path: str | Path | None = None, by: str = "kind",
                        title: str | None = None) -> "Figure":
    """The live bytes of each plan step as a stack of what they hold: by kind, or by scope (``by="scope"``).

    The stack's top is the live-intermediates line of :func:`plot_memory_timeline`
    (the parts sum to it at every step); :func:`live_bytes_by` says how each
    byte is sorted; a part that is never live is left out. The strip above
    the plot has a lane per instruction tag, as the timeline's.
    """
    memory = _memory(program)
    parts = {part: nbytes for part, nbytes in live_bytes_by(program, by).items() if any(nbytes)}
    if by == "scope":
        parts = _fewer_scopes(parts)
    live = list(memory.live_bytes)
    scale, unit = byte_unit(max([memory.planned_bytes, *live, 1]))
    fig, lanes, ax = _figure_with_lanes([ins.tag for ins in program.plan.instructions])
    edges = range(len(live) + 1)
    bottom = [0.0] * len(live)
    for k, (part, nbytes) in enumerate(parts.items()):
        top = [b + n / scale for b, n in zip(bottom, nbytes)]
        colour = KIND_COLOURS[part] if by == "kind" else f"C{k % 10}"
        name = KIND_NAMES[part] if by == "kind" else part
        _stairs(ax, top, edges, baseline=bottom, fill=True, color=colour, alpha=0.9, lw=0,
                label=f"{name} (max {format_bytes(max(nbytes, default=0))})")
        bottom = top
    _stairs(ax, [b / scale for b in live], edges, color="#1b1b1b", lw=1.0, label="live intermediates")
    ax.axhline(memory.planned_bytes / scale, color="#1f4e8c", ls="--", lw=1.2,
               label=f"arena (planned) {format_bytes(memory.planned_bytes)}")
    _step_axis(ax, len(live))
    _bytes_axis(ax, max(memory.planned_bytes, *live, 1) / scale * 1.15, unit, "bytes live")
    outside = f"outside the arena: params {format_bytes(memory.params_bytes)}, optimizer state {format_bytes(memory.state_bytes)}"
    lanes.set_title(title or f"live bytes by {by} — plan {program.plan.name!r}\n{outside}", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    stack = len(parts)  # the stack's entries listed top first, as drawn
    order = [*reversed(range(stack)), *range(stack, len(labels))]
    fig.legend([handles[k] for k in order], [labels[k] for k in order], loc="outside right upper", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return fig


FRONTIER_KEYS = ("policy", "planned_bytes", "recompute_flops", "forward_flops")


def _check_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        raise GraphError("plot_frontier: no rows to plot")
    for k, row in enumerate(rows):
        missing = [key for key in FRONTIER_KEYS if key not in row]
        if missing:
            raise GraphError(f"plot_frontier: row {k} lacks {', '.join(missing)} (each row needs {', '.join(FRONTIER_KEYS)})")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (less recompute and less memory), by recompute."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def plot_frontier(rows: Sequence[Mapping[str, Any]], path: str | Path | None = None, title: str | None = None) -> "Figure":
    """Memory (planned arena) against recompute (extra forward FLOPs, % of the forward pass).

    ``rows`` are dicts with ``policy``, ``budget`` (None: no budget),
    ``planned_bytes``, ``recompute_flops`` and ``forward_flops``, one per
    compiled program; rows with a ``graph`` key are drawn one panel per graph.
    Each policy is one series (ordered by recompute); the dashed line joins
    the points no other point beats on both axes.
    """
    from matplotlib.figure import Figure

    _check_rows(rows)
    graphs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        graphs.setdefault(str(row.get("graph", "")), []).append(row)
    columns = min(len(graphs), 3)
    lines = -(-len(graphs) // columns)
    fig = Figure(figsize=(4.6 * columns + 1.5, 3.9 * lines), layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    policies = list(dict.fromkeys(str(r["policy"]) for r in rows))  # one marker per policy, in every panel
    for ax, (graph, graph_rows) in zip(axes, graphs.items()):
        _frontier_panel(ax, graph_rows, policies)
        if graph:
            ax.set_title(graph, fontsize=10)
    for ax in axes[len(graphs):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="policy", title_fontsize=8)
    fig.suptitle(title or "memory vs recompute: each point is one compiled plan", fontsize=11)
    _save(fig, path)
    return fig


MARKERS = "osD^v<>ph*"


def policy_marker(k: int) -> dict[str, Any]:
    """The marker of the ``k``-th policy: its own shape, smaller than the one before, hollow after the first.

    Policies often land on the same point (no recompute at a large budget); drawn
    in order, each later marker sits inside the earlier ones and every one shows.
    """
    colour = f"C{k % 10}"
    return {
        "marker": MARKERS[k % len(MARKERS)],
        "ms": max(12.0 - 2.0 * k, 4.0),
        "mec": colour,
        "mfc": colour if k == 0 else "none",
        "mew": 1.6,
        "color": colour,
    }


def _frontier_panel(ax: "Axes", rows: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> None:
    """One graph's points: a series per policy, and the frontier over all of them."""
    from matplotlib.ticker import MaxNLocator

    scale, unit = byte_unit(max(r["planned_bytes"] for r in rows))
    points = []
    by_policy: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
    for row in rows:
        x = 100.0 * row["recompute_flops"] / row["forward_flops"] if row["forward_flops"] else 0.0
        y = row["planned_bytes"] / scale
        by_policy[str(row["policy"])].append((x, y))
        points.append((x, y))
    for k, (policy, pts) in enumerate(by_policy.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, alpha=0.85, label=policy, zorder=2 + k,
                **policy_marker(k))
    front = pareto_front(points)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#333333", ls="--", lw=1,
            label="frontier", zorder=1)
    ax.set_xlabel("recompute (extra FLOPs, % of forward)", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    _bytes_axis(ax, max(y for _, y in points) * 1.1, unit, "arena (planned)")
    ax.set_xlim(left=-2)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
