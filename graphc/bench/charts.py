"""A sweep's frontier charts: peak memory against extra compute and against measured time.

One row of two panels per step: the planned arena against the recompute (FLOPs,
% of one forward pass) and against the measured step-time overhead (% of
store-all's step), a marker per policy, and the frontier (the points no other
point beats on both axes) drawn as a dashed step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphc.bench.tables import Row, extra_compute_percent, time_overhead_percent
from graphc.plots import pareto_front

MARKERS = "osD^v<>"
PANELS = (
    (extra_compute_percent, "extra compute (FLOPs, % of a forward; log above 10 %)"),
    (time_overhead_percent, "step time overhead (measured, % of store-all; log above 10 %)"),
)


def frontier_figure(rows: Sequence[Row]) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    """The figure, and per step its (compute panel, time panel) axes for callers to add to
    (:func:`save_figure` adds the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    graphs = list(dict.fromkeys(r["graph"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    fig = Figure(figsize=(11, 3.6 * len(graphs) + 0.8), layout="constrained")
    axes = fig.subplots(len(graphs), 2, squeeze=False)
    panels: dict[str, tuple[Any, Any]] = {}
    for (ax_compute, ax_time), graph in zip(axes, graphs):
        measured = [r for r in rows if r["graph"] == graph and r["planned_bytes"] is not None]
        for ax, (x_of, label) in zip((ax_compute, ax_time), PANELS):
            _panel(ax, measured, policies, x_of)
            ax.set_xlabel(label, fontsize=8)
            ax.set_title(f"{graph}: training step", fontsize=10)
        panels[graph] = (ax_compute, ax_time)
    fig.suptitle("peak memory against recompute: each point is one compiled and measured plan", fontsize=11)
    return fig, panels


def _panel(ax: Any, rows: Sequence[Row], policies: list[str], x_of: Any) -> None:
    points = []
    for k, policy in enumerate(policies):
        mine = sorted((x_of(r), r["planned_bytes"] / 1e6) for r in rows if r["policy"] == policy)
        points += mine
        ax.plot([x for x, _ in mine], [y for _, y in mine], ls="none", marker=MARKERS[k % len(MARKERS)], ms=5,
                alpha=0.85, color=f"C{k}",
                label="store-all (timed against itself: the noise)" if policy == "none" else policy)
    front = pareto_front(points)
    ax.step([x for x, _ in front], [y for _, y in front], where="post", color="#222222", ls="--", lw=1.1,
            label="frontier")
    ax.set_xscale("symlog", linthresh=10)  # linear to 10 %, then logarithmic
    ax.set_ylabel("planned arena (MB)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def save_figure(fig: Any, path: Path) -> Path:
    """Add one legend for every panel's lines (including any drawn after :func:`frontier_figure`) and save."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 4),
               fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
