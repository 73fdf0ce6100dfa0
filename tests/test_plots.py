"""graphc.plots: the memory timeline, the arena layout and the frontier produce figures and files."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

import graphc as gc
from graphc import plots, zoo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def step() -> gc.Program:
    """The MLP's training step: forward, backward and update instructions."""
    _, v = zoo.mlp(16, sizes=(12, 20, 5))
    return gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1))


def test_memory_timeline_draws_live_bytes_arena_bound_and_budget(step, tmp_path):
    fig = gc.plot_memory_timeline(step, tmp_path / "timeline.png", budget=step.memory.planned_bytes * 2)
    assert (tmp_path / "timeline.png").read_bytes()[:8] == PNG_MAGIC
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert "live intermediates" in labels
    assert any(label.startswith("arena (planned)") for label in labels)
    assert any(label.startswith("lower bound") for label in labels)
    assert any(label.startswith("budget") for label in labels)
    live = ax.get_lines()[0].get_ydata()
    assert len(live) == len(step.memory.live_bytes)
    shaded = {p.get_label() for p in ax.patches}
    assert {"forward steps", "backward (∂) steps", "update (←) steps"} <= shaded


def test_step_tags_give_views_the_tag_of_the_next_kernel(step):
    tags = plots.step_tags(step, len(step.memory.live_bytes))
    instructions = step.plan.instructions
    for i, tag in enumerate(tags[: len(instructions)]):
        if instructions[i].mode != "view":
            assert tag == instructions[i].tag
    assert len(tags) == len(instructions), "one step per instruction: runs return arrays written in place"


def test_arena_layout_rectangles_never_overlap_while_live(step, tmp_path):
    fig = gc.plot_arena_layout(step, tmp_path / "arena.svg")
    assert (tmp_path / "arena.svg").read_text().lstrip().startswith("<?xml")
    (ax,) = fig.axes
    (collection,) = ax.collections
    assert len(collection.get_paths()) == len(step.memory.intervals)
    boxes = [p.get_extents() for p in collection.get_paths()]
    for k, a in enumerate(boxes):  # rectangles of blocks live at the same steps are disjoint
        for b in boxes[k + 1:]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 0.1 or overlap_y <= 1e-9


def test_frontier_one_panel_per_graph_and_the_pareto_points(tmp_path):
    rows = [
        {"graph": "chain", "policy": "none", "budget": None, "planned_bytes": 6_000_000, "recompute_flops": 0, "forward_flops": 100},
        {"graph": "chain", "policy": "sqrt", "budget": None, "planned_bytes": 1_500_000, "recompute_flops": 85, "forward_flops": 100},
        {"graph": "chain", "policy": "revolve", "budget": 2_000_000, "planned_bytes": 1_600_000, "recompute_flops": 95, "forward_flops": 100},
        {"graph": "unet", "policy": "none", "budget": None, "planned_bytes": 270_000, "recompute_flops": 0, "forward_flops": 10},
    ]
    fig = gc.plot_frontier(rows, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").read_bytes()[:8] == PNG_MAGIC
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["chain", "unet"]
    assert plots.pareto_front([(0, 6.0), (85, 1.5), (95, 1.6)]) == [(0, 6.0), (85, 1.5)]


def test_frontier_without_graph_key_is_one_panel():
    rows = [{"policy": "none", "budget": None, "planned_bytes": 1000, "recompute_flops": 0, "forward_flops": 10}]
    fig = gc.plot_frontier(rows)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1


def test_bad_inputs_raise_graph_errors(step):
    with pytest.raises(gc.GraphError, match="no rows"):
        gc.plot_frontier([])
    with pytest.raises(gc.GraphError, match="row 0 lacks planned_bytes"):
        gc.plot_frontier([{"policy": "none", "recompute_flops": 0, "forward_flops": 1}])
    _, v = zoo.seed_dag()
    bare = gc.Program(gc.compile(v["loss"]).plan)  # a program from a bare plan has no memory plan
    with pytest.raises(gc.GraphError, match="no memory plan"):
        gc.plot_memory_timeline(bare)


def test_byte_units():
    assert plots.format_bytes(832) == "832 B"
    assert plots.format_bytes(54_852) == "53.6 KiB"
    assert plots.format_bytes(6_684_676) == "6.38 MiB"


def test_importing_graphc_does_not_import_matplotlib():
    code = "import sys, graphc; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
