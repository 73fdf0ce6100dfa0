"""Plots of where memory goes: the timeline, the arena layout, and the memory–recompute frontier.

matplotlib is imported inside each function (it is the ``plots`` extra, not a
core dependency). Figures are built without pyplot, so nothing depends on the
backend: each function returns a :class:`matplotlib.figure.Figure` (shown
inline by Jupyter) and, when ``path`` is given, saves it there too (the
format comes from the suffix: ``.png``, ``.svg``, ``.pdf``).

- :func:`plot_memory_timeline` — the bytes of intermediates live at each step
  of the plan, with the arena the planner placed them in, the schedule's lower
  bound (no placement can use less) and a budget; forward, backward and
  recompute steps are shaded.
- :func:`plot_arena_layout` — every block of the arena as a rectangle:
  steps it is live × the bytes it occupies.
- :func:`plot_frontier` — memory against recompute for several policies and
  budgets (the rows the recompute benchmark writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from graphc.errors import GraphError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from graphc.compile import Program

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
    """Maximal runs of equal tags: ``(tag, first step, last step + 1)``."""
    runs: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if runs and runs[-1][0] == tag and runs[-1][2] == i:
            runs[-1] = (tag, runs[-1][1], i + 1)
        else:
            runs.append((tag, i, i + 1))
    return runs


def step_tags(program: "Program", steps: int) -> list[str]:
    """The tag of each plan step for shading, ``steps`` long.

    A view bound once (a transpose of a param the backward pass reads, say)
    runs no kernel; it takes the tag of the next kernel, so the shading shows
    where the work is (a view after the last kernel takes that kernel's tag).
    """
    instructions = program.plan.instructions
    kernels = [ins.tag for ins in instructions if ins.mode != "view"]
    following = kernels[-1] if kernels else "forward"
    tags: list[str] = [following] * steps
    for i in reversed(range(min(steps, len(instructions)))):
        ins = instructions[i]
        if ins.mode != "view":
            following = ins.tag
        tags[i] = following
    return tags


def _shade_tags(ax: "Axes", tags: Sequence[str]) -> None:
    """Shade each run of forward/backward/recompute/update steps in its colour (one legend entry each)."""
    labelled: set[str] = set()
    for tag, start, stop in _tag_runs(tags):
        label = None if tag in labelled else f"{TAG_NAMES.get(tag, tag)} steps"
        labelled.add(tag)
        ax.axvspan(start - 0.5, stop - 0.5, color=TAG_COLOURS.get(tag, "#cccccc"), alpha=0.18, lw=0, label=label)


def plot_memory_timeline(
    program: "Program", path: str | Path | None = None, budget: int | None = None, title: str | None = None
) -> "Figure":
    """Bytes of intermediates live at each plan step, against the arena, the lower bound and ``budget``.

    The live bytes are the planner's own liveness (``program.memory.live_bytes``):
    a value is live from the step that writes it to the last step that reads
    it. Their maximum is the lower bound of this schedule; the arena (planned
    bytes) sits at or above it, the gap being fragmentation.
    """
    memory = _memory(program)
    live = list(memory.live_bytes)
    instructions = program.plan.instructions
    tags = step_tags(program, len(live))
    peak = max([memory.planned_bytes, memory.lower_bound_bytes, budget or 0, *live, 1])
    scale, unit = byte_unit(peak)
    fig, ax = _figure()
    _shade_tags(ax, tags)
    steps = range(len(live))
    ax.step(steps, [b / scale for b in live], where="mid", color="#1b1b1b", lw=1.4, label="live intermediates")
    ax.axhline(memory.planned_bytes / scale, color="#1f4e8c", ls="--", lw=1.3,
               label=f"arena (planned) {format_bytes(memory.planned_bytes)}")
    ax.axhline(memory.lower_bound_bytes / scale, color="#2e8b57", ls=":", lw=1.6,
               label=f"lower bound {format_bytes(memory.lower_bound_bytes)}")
    if budget is not None:
        ax.axhline(budget / scale, color="#c0392b", ls="-.", lw=1.3, label=f"budget {format_bytes(budget)}")
    ax.set_xlim(-0.5, len(live) - 0.5)
    ax.set_ylim(0, peak / scale * 1.12)
    ax.set_xlabel("plan step (instruction)")
    ax.set_ylabel(f"bytes live ({unit})")
    ax.set_title(title or (f"memory timeline — plan {program.plan.name!r}: {len(instructions)} instructions, "
                           f"without reuse {format_bytes(memory.no_reuse_bytes)}"), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: (not labels[k].endswith("steps"), k))
    fig.legend([handles[k] for k in order], [labels[k] for k in order], loc="outside right upper", fontsize=8)
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


def plot_arena_layout(program: "Program", path: str | Path | None = None, label_blocks: int = 12,
                      title: str | None = None) -> "Figure":
    """Each arena block as a rectangle: [first step, last step] × [offset, offset + bytes].

    Blocks that never overlap in time may share addresses; the rectangles
    never overlap. A block is coloured by the tag of the instruction that
    first writes it; the ``label_blocks`` largest are named.
    """
    from matplotlib.collections import PatchCollection
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
        rects.append(Rectangle((iv.start - 0.45, offset / scale), iv.end - iv.start + 0.9, iv.nbytes / scale))
        colours.append(TAG_COLOURS.get(tag, "#bbbbbb"))
    ax.add_collection(PatchCollection(rects, facecolors=colours, edgecolors="#333333", linewidths=0.4, alpha=0.85))
    steps = max(len(memory.live_bytes), 1)
    largest = sorted(memory.intervals, key=lambda iv: -iv.nbytes * (iv.end - iv.start + 1))[:label_blocks]
    for iv in largest:  # names only where they fit: wide enough and tall enough for a line of text
        offset = memory.offsets.get(iv.key)
        if offset is not None and (iv.end - iv.start + 1) >= steps / 12 and iv.nbytes >= memory.planned_bytes / 25:
            ax.text((iv.start + iv.end) / 2, (offset + iv.nbytes / 2) / scale, block_label(program, iv, offset),
                    ha="center", va="center", fontsize=7, clip_on=True)
    ax.axhline(memory.planned_bytes / scale, color="#1f4e8c", ls="--", lw=1.2)
    ax.set_xlim(-1, steps)
    ax.set_ylim(0, memory.planned_bytes / scale * 1.1 or 1)
    ax.set_xlabel("plan step (instruction)")
    ax.set_ylabel(f"arena offset ({unit})")
    tags_used = {instructions[iv.start].tag for iv in memory.intervals if iv.start < len(instructions)}
    handles = [Patch(color=TAG_COLOURS[t], label=f"written by {TAG_NAMES[t]}") for t in TAG_COLOURS if t in tags_used]
    handles.append(Patch(facecolor="none", edgecolor="#1f4e8c", ls="--", label=f"arena {format_bytes(memory.planned_bytes)}"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    ax.set_title(title or (f"arena layout — plan {program.plan.name!r}: {len(rects)} blocks in "
                           f"{format_bytes(memory.planned_bytes)} ({memory.strategy})"), fontsize=10)
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


def _frontier_panel(ax: "Axes", rows: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> None:
    """One graph's points: a series per policy, and the frontier over all of them."""
    markers = "osD^v<>ph*"
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
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[k % len(markers)], ms=6, lw=1,
                alpha=0.85, label=policy, color=f"C{k}")
    front = pareto_front(points)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#333333", ls="--", lw=1,
            label="frontier")
    ax.set_xlabel("recompute (extra FLOPs, % of forward)", fontsize=9)
    ax.set_ylabel(f"arena (planned, {unit})", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=-2)
    ax.grid(alpha=0.3)
