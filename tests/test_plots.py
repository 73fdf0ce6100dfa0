"""graphc.plots: the memory timeline, the live bytes by kind, the arena layout and the frontier produce figures and files."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgba
from matplotlib.patches import StepPatch

import graphc as gc
from graphc import plots, zoo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def step() -> gc.Program:
    """The MLP's training step: forward, backward and update instructions."""
    _, v = zoo.mlp(16, sizes=(12, 20, 5))
    return gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1))


@pytest.fixture(scope="module")
def sqrt_step() -> gc.Program:
    """A residual MLP's training step with recomputed activations: forward, backward, recompute and update
    instructions, and transposes for the backward pass bound among the forward ones."""
    _, v = zoo.residual_mlp(depth=4, width=16, batch=8)
    return gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1), remat="sqrt")


@pytest.fixture(scope="module")
def adam_step() -> gc.Program:
    """A residual MLP trained with Adam: update temporaries in the arena, optimizer state outside it."""
    _, v = zoo.residual_mlp(depth=2, width=16, batch=8)
    return gc.compile([v["loss"]], updates=gc.optim.adam(v["loss"], v["params"], 0.01))


def _stairs(ax, label: str) -> StepPatch:
    (patch,) = [p for p in ax.patches if isinstance(p, StepPatch) and p.get_label() == label]
    return patch


def test_memory_timeline_draws_live_bytes_arena_bound_and_budget(step, tmp_path):
    fig = gc.plot_memory_timeline(step, tmp_path / "timeline.png", budget=step.memory.planned_bytes * 2)
    assert (tmp_path / "timeline.png").read_bytes()[:8] == PNG_MAGIC
    lanes, ax = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("arena (planned)") for label in labels)
    assert any(label.startswith("lower bound") for label in labels)
    assert any(label.startswith("budget") for label in labels)
    scale, _ = plots.byte_unit(step.memory.planned_bytes * 2)
    live = _stairs(ax, "live intermediates").get_data()
    assert list(live.edges) == list(range(len(step.memory.live_bytes) + 1)), "instruction i spans [i, i + 1]"
    assert [round(v * scale) for v in live.values] == step.memory.live_bytes
    assert [c.get_label() for c in lanes.collections] == ["forward steps", "backward (∂) steps", "update (←) steps"]
    assert [t.get_text() for t in lanes.get_yticklabels()] == ["forward", "backward (∂)", "update (←)"]
    assert ax.get_ylim()[1] > max(live.values)  # the plot fits under its top


def _lanes(lanes) -> dict[str, list[tuple[float, float]]]:
    """The tag lanes of a plot: each lane's name → the x intervals of its bars."""
    bars = {}
    for collection, tick in zip(lanes.collections, lanes.get_yticklabels()):
        extents = [path.get_extents() for path in collection.get_paths()]
        bars[tick.get_text()] = [(round(e.x0, 6), round(e.x1, 6)) for e in extents]
        assert to_rgba(collection.get_facecolor()[0])[:3] == to_rgba(plots.TAG_COLOURS[collection.get_label().split()[0]])[:3]
    return bars


@pytest.mark.parametrize("program, apart", [("step", False), ("sqrt_step", True)])
@pytest.mark.parametrize("plot", ["timeline", "by_kind"])
def test_every_instruction_has_a_bar_in_the_lane_of_its_tag(program, apart, plot, request):
    """Lanes, not shades: a recompute among backward steps, or updates among forward ones, keep their own colour."""
    program = request.getfixturevalue(program)
    tags = [ins.tag for ins in program.plan.instructions]
    draw = gc.plot_memory_timeline if plot == "timeline" else gc.plot_memory_by_kind
    lanes, ax = draw(program).axes
    names = {plots.TAG_NAMES[tag]: tag for tag in plots.TAG_COLOURS}
    bars = _lanes(lanes)
    assert [names[name] for name in bars] == [tag for tag in plots.TAG_ORDER if tag in tags]
    covered = sorted(span for spans in bars.values() for span in spans)
    assert covered[0][0] == 0 and covered[-1][1] == len(tags), "the bars cover every instruction"
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:])), "no gaps, no overlaps"
    for name, spans in bars.items():  # a bar is one run of one tag, in that tag's lane
        for x0, x1 in spans:
            assert set(tags[int(x0): int(x1)]) == {names[name]}
    lonely = [i for i in range(1, len(tags) - 1) if tags[i - 1] != tags[i] != tags[i + 1]]
    assert bool(lonely) == apart
    for i in lonely:  # e.g. a transpose bound for the backward pass among forward steps
        assert (i, i + 1) in bars[plots.TAG_NAMES[tags[i]]]
    assert ax.get_xlim() == (0, len(tags)) == lanes.get_xlim()


def test_tag_runs_merge_only_adjacent_instructions_of_one_tag():
    tags = ["backward", "forward", "forward", "backward", "forward", "update", "update"]
    assert plots._tag_runs(tags) == [("backward", 0, 1), ("forward", 1, 3), ("backward", 3, 4), ("forward", 4, 5),
                                     ("update", 5, 7)]


@pytest.mark.parametrize("program", ["step", "sqrt_step", "adam_step"])
@pytest.mark.parametrize("by", ["kind", "scope"])
def test_live_bytes_by_kind_or_scope_sum_to_the_live_bytes(program, by, request):
    program = request.getfixturevalue(program)
    parts = plots.live_bytes_by(program, by)
    assert all(len(nbytes) == len(program.memory.live_bytes) for nbytes in parts.values())
    assert [sum(column) for column in zip(*parts.values())] == program.memory.live_bytes
    assert all(b >= 0 for nbytes in parts.values() for b in nbytes)


def test_live_bytes_by_kind_has_the_kinds_of_a_training_step(step, sqrt_step, adam_step):
    assert list(plots.live_bytes_by(step)) == list(plots.KINDS)
    for program, kinds in ((step, {"activations", "gradients"}), (sqrt_step, {"activations", "gradients"}),
                           (adam_step, {"activations", "gradients", "update"})):
        live = {kind for kind, nbytes in plots.live_bytes_by(program).items() if any(nbytes)}
        assert kinds <= live <= set(plots.KINDS)
    inference = gc.compile([zoo.mlp(4, sizes=(3, 5, 2))[1]["loss"]])
    live = {kind for kind, nbytes in plots.live_bytes_by(inference).items() if any(nbytes)}
    assert "other" in live and live <= {"other", "scratch"}, "with no backward pass no value is kept for one"


def test_live_bytes_by_scope_match_the_memory_report_at_the_peak(adam_step):
    parts = plots.live_bytes_by(adam_step, "scope")
    peak = adam_step.memory.peak_step
    at_peak = {scope: nbytes[peak] for scope, nbytes in parts.items() if nbytes[peak]}
    report = {scope or "(top level)": nbytes for scope, nbytes in adam_step.memory.peak_bytes_by_scope.items() if nbytes}
    assert at_peak == report
    assert "optim" in parts


@pytest.mark.parametrize("by", ["kind", "scope"])
def test_memory_by_kind_stack_tops_out_at_the_live_bytes(sqrt_step, by, tmp_path):
    fig = gc.plot_memory_by_kind(sqrt_step, tmp_path / f"by_{by}.png", by=by)
    assert (tmp_path / f"by_{by}.png").read_bytes()[:8] == PNG_MAGIC
    lanes, ax = fig.axes
    live = _stairs(ax, "live intermediates").get_data().values
    stack = [p for p in ax.patches if isinstance(p, StepPatch) and p.get_label() != "live intermediates"]
    parts = {k: v for k, v in plots.live_bytes_by(sqrt_step, by).items() if any(v)}
    assert len(stack) == len(parts)
    for lower, upper in zip(stack, stack[1:]):  # each part sits on the one below
        assert list(upper.get_data().baseline) == pytest.approx(list(lower.get_data().values))
    assert list(stack[-1].get_data().values) == pytest.approx(list(live))
    assert ax.get_xlim() == (0, len(sqrt_step.plan.instructions))


def test_memory_by_kind_rejects_an_unknown_split(step):
    with pytest.raises(gc.GraphError, match="by='tag'"):
        gc.plot_memory_by_kind(step, by="tag")


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


def test_a_block_name_is_shortened_to_fit_its_block_or_left_out():
    """ResNet-50's names ran out of their blocks over their neighbours' (conv2d_input_grad_1778 → add_n_1855 → …)."""
    label = "conv2d_input_grad_1778 → add_n_1855 → mul_1858 → … (+7)"
    assert plots._fitted(label, 60) == label
    assert plots._fitted(label, 40) == "conv2d_input_grad_1778 → … (+9)"
    assert plots._fitted(label, 25) == "conv2d_input_grad_1778"
    assert plots._fitted(label, 20) == ""
    assert plots._fitted("h1 → h2", 4) == "h1"


def test_arena_layout_names_fit_inside_their_blocks(sqrt_step):
    (ax,) = gc.plot_arena_layout(sqrt_step, label_blocks=50).axes
    steps = len(sqrt_step.memory.live_bytes)
    blocks = [p.get_extents() for p in ax.collections[0].get_paths()]
    assert ax.texts
    for text in ax.texts:
        x, y = text.get_position()
        (block,) = [b for b in blocks if b.x0 <= x <= b.x1 and b.y0 <= y <= b.y1]
        assert len(text.get_text()) <= (block.x1 - block.x0 + 0.1) / steps * plots.LABEL_CHARS_ACROSS


def test_arena_block_edges_are_a_darker_shade_of_their_fill(sqrt_step):
    """No grey of its own: a thousand thin blocks (GPT-2's) stacked read as their tag's colour, which the legend names."""
    (ax,) = gc.plot_arena_layout(sqrt_step).axes
    (collection,) = ax.collections
    for face, edge in zip(collection.get_facecolor(), collection.get_edgecolor()):
        assert tuple(edge[:3]) == pytest.approx(tuple(0.55 * c for c in face[:3]))
    named = {to_rgba(colour)[:3] for colour in plots.TAG_COLOURS.values()}
    assert {tuple(round(c, 6) for c in face[:3]) for face in collection.get_facecolor()} <= {
        tuple(round(c, 6) for c in rgb) for rgb in named}


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


def test_frontier_draws_every_policy_even_on_shared_points():
    rows = [{"policy": policy, "budget": None, "planned_bytes": 6 * 2**20, "recompute_flops": 0, "forward_flops": 100}
            for policy in ("none", "sqrt", "revolve", "greedy")]  # four policies, one point
    rows.append({"policy": "sqrt", "budget": 2_000_000, "planned_bytes": 1_500_000, "recompute_flops": 85,
                 "forward_flops": 100})
    fig = gc.plot_frontier(rows)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["none", "sqrt", "revolve", "greedy", "frontier"]
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    series = {line.get_label(): line for line in ax.get_lines()}
    drawn = [series[policy] for policy in ("none", "sqrt", "revolve", "greedy")]
    for line in drawn:
        assert line.get_marker() not in ("", "None", None) and (0.0, 6.0) in zip(line.get_xdata(), line.get_ydata())
    assert len({line.get_marker() for line in drawn}) == len(drawn), "a shape per policy"
    sizes = [line.get_markersize() for line in drawn]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), "each later marker inside the last"
    assert all(line.get_markerfacecolor() == "none" for line in drawn[1:]), "later markers hollow"


def test_frontier_ticks_are_few_and_in_byte_units():
    rows = [{"policy": "p", "budget": None, "planned_bytes": n, "recompute_flops": r, "forward_flops": 1000}
            for n, r in ((3_000_000_000, 0), (1_234_567_890, 417), (987_654_321, 1333))]
    fig = gc.plot_frontier(rows)
    fig.canvas.draw()
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_ylabel().endswith("(GiB)")
    for axis in (ax.xaxis, ax.yaxis):
        low, high = axis.get_view_interval()
        shown = [t for t in axis.get_majorticklocs() if low <= t <= high]
        assert 2 <= len(shown) <= 7
    assert max(ax.get_yticks()) < 10, "ticks in GiB, not bytes"


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
