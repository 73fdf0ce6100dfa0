"""graphc.render: every view of every zoo graph draws; labels say what the pictures claim."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
import graphc.plots
import graphc.validate
from graphc import zoo
from graphc.render import collapse, plan_view

R = importlib.import_module("graphc.render")  # the package (gc.render is the function)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


@functools.lru_cache(maxsize=None)
def built(name: str) -> tuple[gc.Graph, gc.Program]:
    """A zoo graph with its training gradients, and the compiled training step (built once per worker).

    Compiled without the plan validator: tests/test_zoo.py compiles these very plans with it on
    (a third of the compile time of chain-1000); here they are only drawn."""
    graph, values = zoo.ZOO[name]()
    validating = graphc.validate.VALIDATE_PLANS
    graphc.validate.VALIDATE_PLANS = False
    try:
        program = gc.compile(zoo.training_outputs(values))
    finally:
        graphc.validate.VALIDATE_PLANS = validating
    return graph, program


def svg_texts(path: Path) -> list[str]:
    """The text of every <text> element of an SVG (parsing it checks it is well-formed XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    return ["".join(t.itertext()) for t in root.iter(SVG_NS + "text")]


def seed_with_grads() -> tuple[gc.Graph, dict, list[gc.Value]]:
    g, v = zoo.seed_dag()
    grads = gc.grad(v["loss"], [v["w1"], v["w2"]])
    return g, v, grads


# --- every view of every zoo graph -------------------------------------------------------------


@pytest.mark.parametrize("view", R.VIEWS)
@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_every_view_of_every_zoo_graph_renders_svg(name, view, tmp_path):
    graph, program = built(name)
    target = program if view == "plan" else graph
    texts = svg_texts(gc.render(target, tmp_path / "g.svg", view))
    title = " ".join(texts)
    assert (f"plan '{program.plan.name}'" if view == "plan" else f"graph '{graph.name}'") in title
    assert f"{view} view" in title or view == "plan"


@pytest.mark.parametrize("view", R.VIEWS)
def test_every_view_renders_png(view, tmp_path):
    """PNG is the same layout as SVG in another format: one graph per view proves it."""
    graph, program = built("seed")
    png = gc.render(program if view == "plan" else graph, tmp_path / "g.png", view)
    assert png == tmp_path / "g.png" and png.read_bytes()[:8] == PNG_MAGIC


def test_pdf_from_the_suffix(tmp_path):
    g, _, _ = seed_with_grads()
    assert gc.render(g, tmp_path / "seed.PDF").read_bytes()[:5] == b"%PDF-"


# --- what the seed DAG's pictures say -------------------------------------------------------------


def test_seed_joint_labels_each_term_with_its_jacobian(tmp_path):
    g, v, (dw1, dw2) = seed_with_grads()
    texts = svg_texts(gc.render(g, tmp_path / "seed.svg", "joint"))
    for name in ("x", "w1", "w2", "z1", "x1", "s2", "z2", "x2", "p3", "x3", "loss"):
        assert name in texts
    # ∂ℓ/∂w1 = J^T_{φ3|w1} ∂ℓ/∂x3 + J^T_{φ1|w1} ∂ℓ/∂x1: φ3's matmul is x3, φ1's is z1
    assert {"Jᵀ x3|w1", "Jᵀ z1|w1"} <= set(texts)
    assert "Σ dloss/dw1" in texts  # the accumulation, marked
    assert "Jᵀ z2|w2" in texts  # a single term (w2 has one consumer) labels the edge into it
    assert texts.count("Jᵀ x3_sq|x3") == 2  # x3 * x3: both operands are x3, two terms
    assert {"8×4", "4×4", "scalar"} <= set(texts)  # shapes on edges
    assert "adjoint graph: ∂ℓ/∂x = Σ over the consumers c of x of Jᵀ c|x · ∂ℓ/∂c" in texts
    assert "kept for backward" in texts  # the legend of the double border


def test_contribution_edges_match_the_records():
    """Each red edge ends at a Σ of its forward value, or at the term the cotangent enters."""
    g, v, _ = seed_with_grads()
    scene = R.graph_scene(g, "joint")
    labelled = [(a.src, a.dst, a.label.split("\n")[0]) for a in scene.arrows if a.label.startswith("Jᵀ")]
    sums = {i for i, box in enumerate(scene.boxes) if box.lines[0].startswith("Σ ")}
    terms = {c.term.name for c in g.contributions}
    assert labelled and all(dst in sums or scene.boxes[dst].name in terms for _, dst, _ in labelled)
    by_dst = {}
    for _, dst, text in labelled:
        by_dst.setdefault(scene.boxes[dst].name, []).append(text)
    assert sorted(by_dst["dloss/dw1"]) == ["Jᵀ x3|w1", "Jᵀ z1|w1"]


def test_forward_view_has_no_adjoint_nodes(tmp_path):
    g, _, _ = seed_with_grads()
    texts = svg_texts(gc.render(g, tmp_path / "f.svg", "forward"))
    assert "x3" in texts and not any(t.startswith("Jᵀ") or t.startswith("Σ") for t in texts)


def test_adjoint_view_draws_read_forward_values_as_references():
    g, _, _ = seed_with_grads()
    scene = R.graph_scene(g, "adjoint")
    references = {b.name for b in scene.boxes if b.part == "reference"}
    assert {"x1", "x2", "p3", "x3", "w1", "w2", "x"} <= references
    ref_index = {i for i, b in enumerate(scene.boxes) if b.part == "reference"}
    assert not any(a.src in ref_index and a.dst in ref_index for a in scene.arrows)


def test_values_target_draws_only_what_they_need():
    g, v, (dw1, dw2) = seed_with_grads()
    names = {b.name for b in R.graph_scene([v["x2"]], "forward").boxes}
    assert names == {"x", "w1", "w2", "z1", "x1", "s2", "z2", "x2"}
    adjoint = {b.name for b in R.graph_scene([dw2], "joint").boxes}
    assert "dloss/dw2" in adjoint and "dloss/dw1" not in adjoint


def test_plan_view_shows_steps_buffers_offsets_and_checkpoints():
    g, v, grads = seed_with_grads()
    program = gc.compile([v["loss"], *grads])
    source = gc.to_dot(program).source  # a Program: the plan view by default
    assert "#0 " in source and "@0" in source and "%" in source
    kept = plan_view._kept_checkpoints(program.plan)
    assert {program.plan.buffers[b].name for b in kept} >= {"x1", "x2", "p3", "x3"}
    assert "kept for backward" in source and "legend" in source
    assert "style=invis" in source  # small plans are drawn strictly in execution order


def test_an_output_is_said_to_be_one_not_at_offset_none():
    """The loss is returned, not placed in the arena: its box says ``output``, as the plan listing does."""
    g, v, grads = seed_with_grads()
    program = gc.compile([v["loss"], *grads])
    scene = R.make_scene(program)
    loss = next(b for b in scene.boxes if b.name == "loss")
    assert loss.lines[1].endswith("  output") and " output " in str(program.plan)
    assert not any("None" in line for b in scene.boxes for line in b.lines)


def test_values_in_plan_view_are_compiled():
    g, v, grads = seed_with_grads()
    assert "plan 'seed'" in gc.to_dot([v["loss"], *grads], "plan").source


def test_drawing_a_plan_or_a_program_compiles_nothing(monkeypatch):
    """The plan view draws the plan it is given; only Values in the plan view are compiled, by make_scene."""
    g, v, grads = seed_with_grads()
    program = gc.compile([v["loss"], *grads])

    def no_compile(values):
        raise AssertionError("compiled while drawing")

    monkeypatch.setattr(importlib.import_module("graphc.render.dot"), "compile_values", no_compile)
    for target, view in ((program, None), (program.plan, None), (program, "joint"), (program.plan, "adjoint")):
        assert f"plan '{program.plan.name}'" in gc.to_dot(target, view).source
    assert R.plan_scene(program).title == R.plan_scene(program.plan).title
    with pytest.raises(AssertionError, match="compiled while drawing"):
        gc.to_dot([v["loss"]], "plan")


def test_recomputed_instructions_are_marked():
    """A plan with an instruction tagged "recompute": orange, ↻, in the legend."""
    g, v, grads = seed_with_grads()
    plan = gc.compile([v["loss"], *grads]).plan
    k = next(i for i, ins in enumerate(plan.instructions) if ins.tag == "forward" and ins.mode == "kernel")
    instructions = list(plan.instructions)
    instructions[k] = dataclasses.replace(instructions[k], tag="recompute")
    scene = R.plan_scene(dataclasses.replace(plan, instructions=instructions))
    box = next(b for b in scene.boxes if b.lines[0].startswith(f"#{k} "))
    assert "↻" in box.lines[0] and box.attrs["fillcolor"] == R.COLOURS["recompute"]
    assert "recompute" in scene.legend
    assert "↻ recomputed" in R.scene_to_dot(scene).source


def test_remat_plan_marks_recompute_when_the_policy_exists():
    from graphc.compile import REMAT_POLICIES

    if "sqrt" not in REMAT_POLICIES:
        pytest.skip("remat='sqrt' is not available")
    _, v = zoo.chain(6, width=8, batch=4)
    program = gc.compile(zoo.training_outputs(v), remat="sqrt")
    if program.cost.recompute_flops == 0:
        pytest.skip("the policy recomputes nothing on this chain")
    assert "↻" in gc.to_dot(program).source


# --- labels that tell the truth -----------------------------------------------------------------------


def sgd_step() -> tuple[gc.Graph, dict]:
    """The zoo MLP with the updates of gc.sgd at lr 0.3 (W ← W − 0.3·∂ℓ/∂W for each of its 4 params)."""
    g, v = zoo.ZOO["mlp"]()
    v["updates"] = gc.sgd(v["loss"], v["params"], 0.3)
    return g, v


def cluster_text(source: str, name: str) -> str:
    """The body of DOT subgraph ``name``, nested subgraphs included (braces matched)."""
    start = source.index("{", source.index(f"subgraph {name} "))
    depth = 0
    for end in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[end], 0)
        if depth == 0:
            return source[start: end + 1]
    raise AssertionError(f"{name} is not closed")


def test_values_are_written_with_four_significant_digits():
    assert [R.value_text(x) for x in (1e-5, 1e-12, 1.0, 0.5, 1 / 3, 1 / 1024, 2.0**20)] == [
        "1e-05", "1e-12", "1", "0.5", "0.3333", "0.0009766", "1.049e+06"]
    assert R.value_text(np.int64(12345)) == "12345" and R.value_text(np.float32(0.3)) == "0.3"


def test_small_constants_are_not_drawn_as_zero():
    with gc.Graph("eps") as g:
        x = gc.input("x", shape=(4, 3))
        w = gc.param("w", shape=(3, 3))
        h = gc.add(gc.tanh(x @ w, name="t"), 1e-5, name="h")
        loss = gc.mul(gc.sum(h * h, name="s"), 1e-12, name="loss")
        gc.constant(1e-5)  # read by no op: drawn as a box of its own
    boxes = {b.name: b.lines for b in R.graph_scene(g, "forward").boxes}
    assert boxes["h"] == ["h", "add(t, 1e-05)"]
    assert boxes["loss"] == ["loss", "mul(s, 1e-12)"]
    assert ["1e-05"] in [b.lines for b in R.graph_scene(g, "forward").boxes if b.op == "const"]
    plan = gc.to_dot(gc.compile([loss])).source
    assert "= 1e-05" in plan and "= 1e-12" in plan and "= 0\"" not in plan


def test_a_forward_view_of_an_sgd_step_has_no_floating_constants():
    """The learning rates feed only the updates, which the forward view does not draw: no box for them."""
    g, v = sgd_step()
    scene = R.graph_scene(g, "forward")
    joined = {a.src for a in scene.arrows} | {a.dst for a in scene.arrows}
    assert [b.lines for i, b in enumerate(scene.boxes) if i not in joined] == []
    assert not any(b.op == "const" for b in scene.boxes)
    assert not any("0.3" in line for b in scene.boxes for line in b.lines)


def test_the_learning_rate_is_written_in_the_updates_label():
    g, v = sgd_step()
    scene = R.graph_scene(g, "joint")
    updates = {b.name: b.lines for b in scene.boxes if b.part == "update"}
    new_w1 = v["updates"][v["params"][0]]
    assert updates == {new.name: [new.name, f"sub({p.name}, mul(0.3, dloss/d{p.name}))"] for p, new in v["updates"].items()}
    assert not any(b.op == "const" or b.op == "mul" for b in scene.boxes if b.part == "update")
    arrows_in = {scene.boxes[a.src].name for a in scene.arrows if scene.boxes[a.dst].name == new_w1.name}
    assert arrows_in == {"W1", "dloss/dW1"}  # dW1 through the inlined mul(0.3, dW1)


def test_a_scale_factor_is_written_in_its_ops_label_in_every_view():
    with gc.Graph("scaled") as g:
        x = gc.input("x", shape=(4, 3))
        w = gc.param("w", shape=(3, 3))
        y = gc.mul(gc.tanh(x @ w, name="t"), 0.5, name="y")
        loss = gc.sum(y * y, name="loss")
    gc.grad(loss, [w])
    for view in ("forward", "joint"):
        assert ["y", "mul(t, 0.5)"] in [b.lines for b in R.graph_scene(g, view).boxes], view
    adjoint = R.graph_scene(g, "adjoint")
    assert not any(b.op == "const" and b.part == "reference" for b in adjoint.boxes)  # 0.5, read by J^T, no box
    assert any("0.5)" in line for b in adjoint.boxes for line in b.lines)


def test_updates_are_drawn_in_a_cluster_of_their_own():
    g, v = sgd_step()
    source = gc.to_dot(g, "joint").source
    updates = cluster_text(source, "cluster_update")
    forward = cluster_text(source, "cluster_forward")
    assert "updates: ops that read the gradients" in updates
    for p in v["params"]:
        assert f"sub({p.name}, mul(0.3, dloss/d{p.name}))" in updates
        assert "sub(" + p.name not in forward
    assert "cluster_update" not in gc.to_dot(seed_with_grads()[0], "joint").source  # no updates, no cluster


def test_titles_say_which_view_of_what_and_how_many_nodes():
    g, v, grads = seed_with_grads()
    forward = sum(1 for n in g.nodes if n.adjoint is None)
    assert R.graph_scene(g, "joint").title == f"joint view of graph 'seed': all {len(g.nodes)} nodes"
    assert R.graph_scene(g, "forward").title == f"forward view of graph 'seed': {forward} of {len(g.nodes)} nodes"
    assert R.graph_scene([v["x2"]], "forward").title == "forward view of graph 'seed' (what x2 needs): all 8 nodes"
    g, v = sgd_step()  # the learning rates and the updates are in the scopes optim/<param>
    forward = sum(1 for n in g.nodes if n.adjoint is None and not n.scope.startswith("optim"))
    assert R.graph_scene(g, "forward").title == f"forward view of graph '{g.name}': {forward} of {len(g.nodes)} nodes"


def test_plan_titles_count_instructions():
    g, v, grads = seed_with_grads()
    plan = gc.compile([v["loss"], *grads]).plan
    n, arena = len(plan.instructions), plan.arena_bytes
    assert R.plan_scene(plan).title == f"plan 'seed': all {n} instructions, arena {arena:,d} B"
    forward = sum(1 for ins in plan.instructions if ins.tag == "forward")
    assert R.plan_scene(plan, "forward").title == f"forward view of plan 'seed': {forward} of {n} instructions, arena {arena:,d} B"


def test_a_shrunk_picture_says_how_many_boxes_it_draws():
    g, v = zoo.chain(60, width=8, batch=2)
    zoo.training_outputs(v)
    small = R.fit(R.make_scene(g, "joint"), 100)
    assert small.title == f"joint view of graph '{g.name}': all {len(g.nodes):,d} nodes, drawn as {len(small.boxes)} boxes"


# --- quoting (Theano#1412) -------------------------------------------------------------------------


NASTY = ['a:b', 'c/d', 'say "hi"', "<lambda>", "<b>bold</b>", "back\\slash", "{x}", "x -> y", "n\\l", "a;b=c"]


def test_names_with_special_characters_are_drawn_as_written(tmp_path):
    with gc.Graph('g:"/<>') as g:
        x = gc.input(NASTY[0], shape=(2, 3))
        w = gc.param(NASTY[1], shape=(3, 3))
        h = gc.tanh(gc.matmul(x, w, name=NASTY[2]), name=NASTY[3])
        h = gc.mul(h, h, name=NASTY[4])
        h = gc.add(h, 1.0, name=NASTY[5])
        h = gc.relu(h, name=NASTY[6])
        h = gc.sigmoid(h, name=NASTY[7])
        h = gc.exp(h, name=NASTY[8])
        loss = gc.sum(h, name=NASTY[9])
    gc.grad(loss, [w])
    for view in ("forward", "joint"):
        texts = svg_texts(gc.render(g, tmp_path / f"{view}.svg", view))
        for name in NASTY:
            assert name in texts, (view, name)
        assert f"{view} view of graph 'g:\"/<>': " in " ".join(texts)
    assert "Jᵀ <b>bold</b>|<lambda>" in svg_texts(tmp_path / "joint.svg")
    plan_texts = svg_texts(gc.render(gc.compile([loss]), tmp_path / "plan.svg"))
    for name in NASTY:
        assert any(name in t for t in plan_texts), name
    assert gc.render(g, tmp_path / "nasty.png").read_bytes()[:8] == PNG_MAGIC


def test_dot_text_escapes_backslashes_only():
    assert R.dot_text("a\\nb") == "a\\\\nb"
    assert str(R.dot_label(["<x>", "y"])) == "<x>\\ny"  # nohtml: quoted on output, never HTML


# --- big graphs ---------------------------------------------------------------------------------------


def test_a_deep_chain_collapses_its_repeated_layers():
    g, v = zoo.chain(200)
    zoo.training_outputs(v)
    full = R.make_scene(g, "joint")
    assert len(full.boxes) > 2000
    dot = gc.to_dot(g, "joint")
    drawn = dot.source.count("label=") - dot.source.count("->")
    assert drawn <= R.DEFAULT_MAX_NODES + 2  # boxes (+ the graph's title and the legend)
    # all 200 layers are units: the first and the last drawn apart, the 198 between as one box; a layer's
    # unit holds its 3 forward ops, its W and b, and the 9 adjoint nodes of its J^T terms
    assert "× 198 repeats of a 14-node block" in dot.source
    assert "matmul → add → tanh" in dot.source or "add → tanh → matmul" in dot.source
    assert "max_nodes=None draws every node" in dot.source


def test_shrunk_scenes_stay_acyclic_and_small():
    """Groups are stretches of a topological order, so every arrow still points forward."""
    for graph, values in (zoo.chain(60, width=8, batch=2), zoo.random_dag(80, width=8, batch=2), zoo.unet()):
        program = gc.compile(zoo.training_outputs(values))
        for target, view in ((graph, "joint"), (graph, "adjoint"), (program, "plan")):
            scene = R.make_scene(target, view)
            assert len(scene.boxes) > 100, (graph.name, view)  # big enough to be shrunk
            small = R.fit(scene, 100)
            assert len(small.boxes) <= 100, (graph.name, view)
            for a in small.arrows:
                assert a.src < a.dst or a.attrs.get("constraint") == "false", (graph.name, view)


def test_collapse_false_refuses_with_advice():
    g, v = zoo.chain(100)
    with pytest.raises(gc.GraphError, match=r"max_nodes=150.*gc\.render\(\[h10\]"):
        gc.to_dot(g, "forward", collapse=False)


def test_max_nodes_none_draws_every_node():
    g, v = zoo.chain(40)
    source = gc.to_dot(g, "forward", max_nodes=None).source
    assert "repeats" not in source and "z40" in source and "h17" in source


def test_find_best_run_picks_the_longest_repeat():
    codes = np.array([9, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 8])
    start, period, repeats = collapse._find_best_run(codes, np.ones(len(codes), bool), 8)
    assert (start, period, repeats) == (1, 3, 5)


# --- errors -----------------------------------------------------------------------------------------------


def test_bad_arguments_raise_graph_errors(tmp_path):
    g, v, grads = seed_with_grads()
    with pytest.raises(gc.GraphError, match="view='sideways' is not a view"):
        gc.to_dot(g, "sideways")
    with pytest.raises(gc.GraphError, match=r"suffix among \.png, \.svg, \.pdf"):
        gc.render(g, tmp_path / "seed.gif")
    with pytest.raises(gc.GraphError, match="empty list"):
        gc.to_dot([])
    with pytest.raises(gc.GraphError, match="view='plan' draws a compiled plan"):
        gc.to_dot(g, "plan")
    with pytest.raises(gc.GraphError, match="expected a Graph"):
        gc.to_dot(42)


# --- hierarchy first: scopes and repeated blocks drawn as units --------------------------------------

U = importlib.import_module("graphc.render.units")
COUNTED = ("forward", "adjoint", "recompute", "update")


def compiled_step(graph: gc.Graph, values: dict, remat: str = "sqrt") -> gc.Program:
    """The SGD training step of a zoo model, planned without binding and without the validator (drawn only)."""
    updates = gc.sgd(values["loss"], values["params"], 0.01)
    validating = graphc.validate.VALIDATE_PLANS
    graphc.validate.VALIDATE_PLANS = False
    try:
        return gc.compile([values["loss"]], updates=updates, bind=False, remat=remat)
    finally:
        graphc.validate.VALIDATE_PLANS = validating


@pytest.fixture(scope="module")
def tiny_gpt2() -> tuple[gc.Graph, gc.Program]:
    """A 3-block GPT-2 (scopes embed, block0 … block2, head, optim) and its SGD step under √n recompute."""
    graph, values = zoo.gpt2(batch=2, layers=3, width=8, heads=2, context=4, vocab=11)
    return graph, compiled_step(graph, values)


@pytest.fixture(scope="module")
def big_plans() -> dict[str, gc.Program]:
    """The SGD training steps of ResNet-50 and GPT-2 small under √n recompute, planned once for the module."""
    return {"resnet50": compiled_step(*zoo.resnet50(batch=32)), "gpt2": compiled_step(*zoo.gpt2(batch=8))}


@pytest.fixture(scope="module")
def rnn20() -> tuple[gc.Graph, gc.Program]:
    """The 20-step unrolled RNN with its gradients, and its step under √n recompute."""
    graph, values = zoo.rnn(20)
    return graph, compiled_step(graph, values)


def inside(scope: str, path: str) -> bool:
    return scope == path or scope.startswith(path + "/")


def collapsed(scene: R.Scene) -> dict[str, R.Box]:
    """The collapsed boxes of a scene of units, by their title."""
    return {box.name: box for box in scene.boxes if box.tally is not None}


def test_a_units_counts_are_the_graphs(tiny_gpt2):
    """block1's box counts the nodes of scope block1, computed here from the graph alone."""
    graph, _ = tiny_gpt2
    box = collapsed(R.make_scene(graph, "joint", focus="block0"))["block1"]
    readers: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    nodes = [n for n in graph.nodes if inside(n.scope, "block1")]
    written = {n for n in nodes if n.kind == "const" and n.data.size == 1 and n in readers
               and (n.adjoint is None or n.adjoint.role != "seed")}
    drawn = [n for n in nodes if n not in written]  # scalar constants are written into the labels that read them
    expected = {
        "forward": sum(1 for n in drawn if n.adjoint is None and not n.is_source),
        "adjoint": sum(1 for n in drawn if n.adjoint is not None),
        "source": sum(1 for n in drawn if n.adjoint is None and n.is_source),
        "kept": sum(1 for n in drawn if n.adjoint is None and not n.is_source
                    and any(r.adjoint is not None for r in readers.get(n, []))),
    }
    assert box.tally == {kind: count for kind, count in expected.items() if count}
    assert box.nbytes == sum(n.aval.nbytes for n in drawn)
    assert "Σ values" in box.html and f'{expected["adjoint"]} ∂' in box.html


def test_a_units_counts_are_the_plans(tiny_gpt2):
    """block1's box counts the instructions of scope block1 by tag, and the bytes they hold at the peak."""
    _, program = tiny_gpt2
    plan = program.plan
    box = collapsed(R.make_scene(program, focus="block0"))["block1"]
    steps = [k for k, ins in enumerate(plan.instructions) if inside(ins.scope, "block1")]
    tags = [plan.instructions[k].tag for k in steps]
    forward_out = {ins.out for ins in plan.instructions if ins.tag == "forward"}
    read_later = {a for ins in plan.instructions if ins.tag in ("backward", "recompute") for a in ins.args}
    kept = sum(1 for k in steps if plan.instructions[k].out in forward_out & read_later)
    expected = {"forward": tags.count("forward"), "adjoint": tags.count("backward"),
                "recompute": tags.count("recompute"), "update": tags.count("update"), "kept": kept}
    assert expected["recompute"] > 0  # √n recomputes in this block: the count shows it
    assert {kind: box.tally.get(kind, 0) for kind in expected} == expected
    held = graphc.plots.bytes_at_peak_by_step(program)
    assert sum(held.values()) == program.memory.lower_bound_bytes
    assert box.nbytes == sum(held.get(k, 0) for k in steps)
    assert f'{expected["recompute"]} ↻' in box.html and "at the peak" in box.html


def test_focus_expands_exactly_that_scope(big_plans):
    program = big_plans["resnet50"]
    full = R.make_scene(program)
    scene = R.make_scene(program, focus="layer3/block2")
    units = collapsed(scene)
    home = [b.home if b.home is not None else b.scope for b in full.boxes]
    focused = sum(1 for h in home if inside(h, "layer3/block2"))
    assert sum(1 for b in scene.boxes if b.tally is None and inside(b.scope, "layer3/block2")) == focused
    assert not any(inside(title, "layer3/block2") for title in units)
    assert {f"layer3/block{k}" for k in (0, 1, 3, 4, 5)} <= set(units)  # its siblings, collapsed
    assert {"stem", "layer1", "layer2", "layer4", "head", "optim"} <= set(units)  # the rest, collapsed
    assert R.to_dot(program, focus="layer3/block2").source.count("layer3/block2") >= 1


def test_focus_in_a_small_picture_collapses_the_rest(tiny_gpt2):
    graph, _ = tiny_gpt2
    scene = R.make_scene(graph, "forward", focus="block2")
    assert set(collapsed(scene)) == {"embed", "block0", "block1", "head"}
    assert any(b.tally is None and b.scope == "block2" for b in scene.boxes)


def test_an_unknown_focus_names_it_and_the_top_level_scopes(tiny_gpt2, tmp_path):
    graph, program = tiny_gpt2
    with pytest.raises(gc.GraphError, match=r"focus='block7'.*block0, block1, block2, embed, head, optim"):
        gc.to_dot(program, focus="block7")
    with pytest.raises(gc.GraphError, match=r"focus='block1/attn'.*graph 'gpt2.*block0, block1, block2, embed, head"):
        gc.render(graph, tmp_path / "g.svg", "forward", focus="block1/attn")
    g, _, _ = seed_with_grads()
    with pytest.raises(gc.GraphError, match="top-level scopes are none: it has no scopes"):
        R.make_scene(g, focus="layer1")


def test_the_time_steps_of_an_unrolled_rnn_are_repeats(rnn20):
    graph, program = rnn20
    for scene in (R.make_scene(graph, "joint"), R.make_scene(graph, "forward"), R.make_scene(program)):
        copies = [u for u in U.unit_tree(scene).walk() if u.kind == "copy"]
        assert [u.title[0] for u in copies] == [f"repeat {k} of 20" for k in range(1, 21)], scene.title
        for k, unit in enumerate(copies, start=1):  # one step each: the tanh that makes h(k) and the ops before it
            states = [scene.boxes[i].name for i in unit.own if scene.boxes[i].op == "tanh" and scene.boxes[i].kind == "forward"]
            assert states == [f"h{k}"], scene.title
    shrunk = R.drawn_scene(graph, "joint")
    assert len(shrunk.boxes) <= R.DEFAULT_MAX_NODES and "× 18 repeats of a" in " ".join(collapsed(shrunk))


@pytest.mark.parametrize("name, stages", [
    ("resnet50", ["stem", "head", "optim"] + [f"layer{s}/block{b}" for s, n in enumerate((3, 4, 6, 3), 1) for b in range(n)]),
    ("gpt2", ["embed", "head", "optim"] + [f"block{b}" for b in range(12)]),
])
def test_a_big_plan_fits_with_every_stage_and_recompute_shown(big_plans, name, stages):
    program = big_plans[name]
    plan = program.plan
    scene = R.drawn_scene(program)
    assert len(scene.boxes) <= R.DEFAULT_MAX_NODES
    units = collapsed(scene)
    clusters = {b.scope for b in scene.boxes if b.tally is None}
    for stage in stages:  # a box of its own, or its contents drawn in its cluster
        assert stage in units or stage in clusters, stage
    assert not any("nodes grouped" in line for b in scene.boxes for line in b.lines)  # no bands
    shown = R.add_tallies(R.box_tally(b) for b in scene.boxes)
    tags = [ins.tag for ins in plan.instructions]
    for kind, tag in zip(COUNTED, ("forward", "backward", "recompute", "update")):
        assert shown.get(kind, 0) == tags.count(tag), kind  # every instruction counted once
    assert tags.count("recompute") > 0
    for box in units.values():  # each unit says how many of its instructions are recomputed, zeros too
        assert f'{box.tally.get("recompute", 0)} ↻' in box.html
    assert sum(b.nbytes for b in scene.boxes if b.nbytes) == program.memory.lower_bound_bytes


def test_units_nest_as_scopes_do(big_plans):
    """ResNet-50's stages are expanded one level: their blocks are units drawn in the stage's cluster."""
    scene = R.drawn_scene(big_plans["resnet50"])
    blocks = {name: box for name, box in collapsed(scene).items() if "/block" in name}
    assert len(blocks) == 16
    assert all(box.scope == name.split("/")[0] for name, box in blocks.items())


def test_a_picture_within_max_nodes_is_drawn_as_before():
    g, _, _ = seed_with_grads()
    scene = R.drawn_scene(g, "joint")
    assert scene == R.make_scene(g, "joint") and not any(b.html or b.group for b in scene.boxes)


@functools.lru_cache(maxsize=None)
def small_step(name: str) -> tuple[gc.Graph, gc.Program]:
    """The lecture's seed DAG, an MLP or a 10-layer chain with its SGD step under √n recompute."""
    graph, values = {"seed": zoo.seed_dag, "mlp": lambda: zoo.mlp(32), "chain-10": lambda: zoo.chain(10)}[name]()
    if name == "seed":
        values = {**values, "params": [values["w1"], values["w2"]]}
    return graph, compiled_step(graph, values)


@pytest.mark.parametrize("name", ["seed", "mlp", "chain-10"])
def test_small_pictures_are_drawn_node_by_node(name):
    """Every view of the small graphs within max_nodes stays a picture of every node: none is too deep or too big."""
    graph, program = small_step(name)
    for target, view in [(graph, v) for v in ("forward", "adjoint", "joint")] + [(program, "plan")]:
        scene = R.make_scene(target, view)
        if len(scene.boxes) > R.DEFAULT_MAX_NODES:
            continue  # the 10-layer chain's joint view and plan: in units already
        ranks, laid_out = R.layout_load(scene)
        assert ranks <= R.MAX_RANKS and laid_out <= R.MAX_LAID_OUT, (scene.title, ranks, laid_out)
        assert R.drawn_scene(target, view) == scene


def test_layout_load_counts_ranks_and_the_bends_of_long_arrows():
    """A chain is as deep as it is long and has no long arrows; a weight read by every step makes long ones."""
    g, v = zoo.chain(10)
    chain = R.make_scene(g, "forward")
    assert R.layout_load(chain) == (34, len(chain.boxes))  # x, W1, b1 at the top; 3 ops a layer; y, sub, mul, mean
    g, v = zoo.rnn(20)
    rnn = R.make_scene(g, "forward")
    ranks, laid_out = R.layout_load(rnn)
    assert len(rnn.boxes) == 129 and ranks > R.MAX_RANKS and laid_out > 10 * len(rnn.boxes)


def test_an_rnns_forward_view_is_drawn_in_units():
    """129 boxes, within max_nodes, but W, W_h, b and x read by all 20 steps: one screen of units, not 4289×6658 px."""
    g, v = zoo.rnn(20)
    scene = R.drawn_scene(g, "forward")
    units = collapsed(scene)
    assert len(scene.boxes) < 40 and units and scene.graph_attrs["size"] == collapse.ONE_SCREEN_INCHES
    assert R.layout_load(scene)[0] <= R.MAX_RANKS
    shown = R.add_tallies(R.box_tally(b) for b in scene.boxes)
    assert shown["forward"] == sum(1 for b in R.make_scene(g, "forward").boxes if b.kind == "forward")
    assert R.drawn_scene(g, "forward", collapse=False) == R.make_scene(g, "forward")  # within max_nodes: as asked


def test_an_adjoint_view_runs_from_the_last_block_to_the_first(tiny_gpt2):
    """A unit of the adjoint view goes where its backward work begins, not where the forward values it reads are listed:
    the gradient flows down the picture from the head to the embedding, every arrow ranking the units."""
    _, program = tiny_gpt2
    scene = U.outline(R.make_scene(program, "adjoint"), 20)
    assert [b.name for b in scene.boxes if b.tally is not None] == ["head", "block2", "block1", "block0", "embed"]
    between = [a for a in scene.arrows if scene.boxes[a.src].tally and scene.boxes[a.dst].tally]
    assert between and all(a.attrs.get("constraint") != "false" for a in between)
    assert R.layout_load(scene)[0] >= 5  # one below the other, not side by side


def test_the_time_steps_of_an_rnns_backward_pass_hold_their_jacobian_terms():
    """The J^T of x[t]·W for W goes with time step t (it reads x[t]), not with W, which every step reads."""
    g, v = zoo.rnn(20)
    gc.grad(v["loss"], v["params"])
    scene = R.drawn_scene(g, "adjoint")
    loose = [b for b in scene.boxes if b.tally is None and b.kind == "adjoint"]
    assert len(scene.boxes) < 40 and len(loose) < 15  # 121 boxes, 110 of them loose, when they went with W
    full = R.make_scene(g, "adjoint")
    copies = [u for u in U.unit_tree(full).walk() if u.kind == "copy"]
    assert len(copies) == 20
    for unit in copies[1:-1]:  # a step's cotangent, its J^T for h(t-1), W, W_h and b: 11 boxes
        held = [full.boxes[i] for i in unit.members()]
        assert sum(1 for b in held if b.kind == "adjoint") == 11
        assert sum(1 for b in held if b.op == "transpose") == 3


def test_a_plans_adjoint_view_puts_the_transposes_of_the_weights_with_their_blocks():
    """A backward instruction goes with the forward value it differentiates, read as a reference: computed, or
    recomputed (a buffer ``h3'``, whose writer's origin is ``h3``). Under √n the backward pass reads recomputed
    values, and the weights' transposes, bound before the forward pass, went with none: 57 loose boxes of 65."""
    g, v = zoo.residual_mlp(16, width=8, batch=4)
    program = gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1), bind=False, remat="sqrt")
    scene = U.outline(R.make_scene(program, "adjoint"), 60)
    loose = [b for b in scene.boxes if b.tally is None and b.kind in ("adjoint", "source")]
    assert len(loose) < 35
    assert not any(b.op == "ref" for b in R.make_scene(program, "adjoint").boxes)  # references named by their op


def test_the_gradient_flowing_back_into_an_expanded_scope_does_not_rank_it(tiny_gpt2):
    """embed holds the embedding (block0 reads it) and the sum of its gradient's terms (which reads block0's
    backward work): dot ranks a cluster as one piece, and that arrow put embed below block0."""
    _, program = tiny_gpt2
    scene = R.make_scene(program, focus="embed")
    names = {i: b.name for i, b in enumerate(scene.boxes)}
    block0 = next(i for i, b in enumerate(scene.boxes) if b.name == "block0")
    into = [a for a in scene.arrows if a.src == block0 and scene.boxes[a.dst].scope == "embed"]
    out_of = [a for a in scene.arrows if a.dst == block0 and scene.boxes[a.src].scope == "embed"
              and scene.boxes[a.src].kind == "forward"]  # the embedding; its recomputed copy is read later
    assert into and out_of, names
    assert all(a.attrs.get("constraint") == "false" and a.attrs.get("style") == "dashed" for a in into)
    assert all(a.attrs.get("constraint") != "false" for a in out_of)


def test_a_param_listed_first_does_not_make_its_block_earlier_work():
    """A plan lists its sources first: the last copy's weight comes before the run of copies in the order, its
    matmul after. The run's arrow into that matmul is the forward flow and ranks it (below the run)."""
    g, v = zoo.residual_mlp(30, width=8, batch=4)
    program = gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1), bind=False, remat="sqrt")
    scene = U.outline(R.make_scene(program, "forward"), 120)  # the first and last copies expanded
    run = next(i for i, b in enumerate(scene.boxes) if b.name.startswith("× 28 repeats"))
    last = [a for a in scene.arrows if a.src == run and scene.boxes[a.dst].scope == "repeat 30 of 30"]
    assert last and all(a.attrs.get("constraint") != "false" for a in last)
