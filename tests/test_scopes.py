"""Name scopes: ``with gc.scope("block3"):`` and where the scope path goes.

A node records the path of the scopes it was built in; gradient nodes take
the scope of the forward op they differentiate; optimizers work in
``optim/<param>``; the plan carries each instruction's scope through JSON, its
listing labels runs of one scope, the memory report splits the peak by scope,
and the images draw each scope as a cluster.
"""

from __future__ import annotations

import doctest
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
import graphc.ir
from graphc import zoo
from graphc.memory import peak_by_scope
from graphc.memory.analysis import Interval
from graphc.render import common_scope, fit, make_scene
from graphc.runtime import Executable

DATA = Path(__file__).parent / "data"


def scoped_mlp(blocks: int = 3, width: int = 4, batch: int = 2, nest: bool = True) -> tuple[gc.Graph, dict]:
    """An MLP whose layer k is built in scope ``model/block<k>`` (``block<k>`` without ``nest``); the loss in ``head``."""
    with gc.Graph("scoped") as g:
        x = gc.input("x", shape=(batch, width), dtype="float64")
        h, params = x, []
        outer = gc.scope("model") if nest else None
        if outer is not None:
            outer.__enter__()
        for k in range(blocks):
            with gc.scope(f"block{k}"):
                w = gc.param(f"w{k}", shape=(width, width), dtype="float64", init=np.eye(width) * 0.5)
                b = gc.param(f"b{k}", shape=(width,), dtype="float64", init=0.1)
                h = gc.tanh(h @ w + b) + h * 0.5  # h read twice: its gradient is a sum
                params += [w, b]
        if outer is not None:
            outer.__exit__(None, None, None)
        with gc.scope("head"):
            loss = gc.mean(h * h)
    return g, {"x": x, "loss": loss, "params": params}


def scope_paths(paths) -> set[str]:
    """Every scope path and every enclosing path of ``paths`` (``"a/b"`` gives ``"a"`` and ``"a/b"``)."""
    found = set()
    for path in paths:
        names = path.split("/") if path else []
        found.update("/".join(names[:k]) for k in range(1, len(names) + 1))
    return found


def cluster_labels(source: str) -> list[str]:
    """The labels of the scope clusters in a DOT text."""
    return re.findall(r"subgraph cluster_scope_\d+ \{\n\s*graph \[[^\]]*?label=\"?([^\" \]]+)\"?", source)


# --- building ------------------------------------------------------------------------------


def test_scopes_nest_and_each_node_records_its_path():
    with gc.Graph("g") as g:
        x = gc.input("x", shape=(2,))
        with gc.scope("encoder") as outer:
            a = gc.tanh(x)
            with gc.scope("block3") as inner:
                b = gc.exp(a)
            c = a + b
        d = gc.sum(c)
    assert (outer, inner) == ("encoder", "encoder/block3")
    assert [x.scope, a.scope, b.scope, c.scope, d.scope] == ["", "encoder", "encoder/block3", "encoder", ""]
    assert b.scope == b.node.scope
    assert g.current_scope == ""


def test_a_promoted_constant_is_in_the_scope_of_its_op():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        with gc.scope("scale"):
            y = x * 3.0
    assert [n.scope for n in y.node.inputs] == ["", "scale"]


def test_a_scope_is_left_when_its_block_raises():
    with gc.Graph("g") as g:
        with pytest.raises(gc.GraphError):
            with gc.scope("broken"):
                gc.input("x", shape=(2.5,))
        y = gc.input("y", shape=(2,))
    assert y.node.scope == "" and g.current_scope == ""


def test_scopes_are_per_graph():
    with gc.Graph("outer") as outer:
        with gc.scope("block"):
            with gc.Graph("inner"):
                z = gc.input("z", shape=(1,))
            y = gc.input("y", shape=(1,))
    assert z.node.scope == "" and y.node.scope == "block" and outer.current_scope == ""


def test_scopes_are_per_thread():
    """Two threads building one graph, each in its own scope, at the same time: each node gets its thread's."""
    with gc.Graph("shared") as g:
        x = gc.input("x", shape=(3,))
    barrier = threading.Barrier(2)
    built: list[list[gc.Value]] = [[], []]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with g, gc.scope(f"thread{i}"):
                barrier.wait()
                y = x
                for _ in range(200):
                    y = gc.tanh(y)
                    built[i].append(y)
        except BaseException as err:  # noqa: BLE001  (handed to the main thread)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        assert {v.node.scope for v in built[i]} == {f"thread{i}"}
    assert g.current_scope == "" and x.node.scope == ""


def test_the_scope_docstring_example_runs():
    runner = doctest.DocTestRunner(verbose=False)
    for test in doctest.DocTestFinder().find(graphc.ir.scope, "scope", globs={}):
        runner.run(test)
    assert runner.tries >= 3 and runner.failures == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abc"), max_size=3).map("/".join), min_size=1, max_size=4))
def test_common_scope_is_the_longest_common_path_of_whole_names(paths):
    split = [p.split("/") if p else [] for p in paths]
    common = common_scope(paths)
    names = common.split("/") if common else []
    assert all(s[: len(names)] == names for s in split)  # a path enclosing every one
    next_names = {tuple(s[: len(names) + 1]) for s in split}
    assert len(next_names) > 1 or any(len(s) == len(names) for s in split)  # and no longer one does


# --- gradients -------------------------------------------------------------------------------


def test_gradient_nodes_take_the_scope_of_the_forward_op_they_differentiate():
    g, v = scoped_mlp()
    with g, gc.scope("elsewhere"):  # the scope open at grad does not matter
        grads = gc.grad(v["loss"], v["params"])
    adjoint = [n for n in g.nodes if n.adjoint is not None]
    assert adjoint
    for node in adjoint:
        info = node.adjoint
        home = info.consumer if info.role in ("vjp", "contribution") else info.forward
        assert node.scope == home.scope, (node, info.role, home)
    for k in range(3):  # every gradient node of block k's params is in block k's scope
        for p, dp in zip(v["params"][2 * k: 2 * k + 2], grads[2 * k: 2 * k + 2]):
            assert dp.node.scope.startswith(f"model/block{k}")
            terms = [n for n in adjoint if n.adjoint.forward is p.node]
            assert terms and {n.scope for n in terms} == {f"model/block{k}"}


def test_the_sum_of_a_values_gradient_terms_is_in_the_values_scope():
    g, v = scoped_mlp()
    gc.grad(v["loss"], v["params"])
    sums = [n for n in g.nodes if n.adjoint is not None and n.adjoint.role == "accumulate"]
    assert sums
    assert all(n.scope == n.adjoint.forward.scope for n in sums)
    assert {n.scope for n in sums} >= {"model/block0", "model/block1", "model/block2"}


def test_the_zero_gradient_of_an_unreached_param_is_in_its_scope():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        with gc.scope("unused"):
            w = gc.param("w", shape=(2,))
        loss = gc.sum(x * x)
    (dw,) = gc.grad(loss, [w])
    assert dw.node.scope == "unused"


def test_optimizer_updates_and_state_are_in_the_optim_scope_of_their_param():
    g, v = scoped_mlp(blocks=2)
    with g, gc.scope("train"):
        updates = gc.optim.adam(v["loss"], v["params"])
    for param, new in updates.items():
        served = param.name.split(".")[0]  # "w0.exp_avg" serves w0
        assert new.node.scope == f"train/optim/{served}", (param.name, new.node.scope)
        if param.role == "state":
            assert param.node.scope == f"train/optim/{served}"
    plain = gc.sgd(v["loss"], v["params"][:1], 0.1)
    assert [n.node.scope for n in plain.values()] == ["optim/w0"]


# --- the plan -----------------------------------------------------------------------------------


def training_program(**options) -> tuple[gc.Graph, dict, gc.Program]:
    g, v = scoped_mlp()
    updates = gc.optim.sgd(v["loss"], v["params"], lr=0.1, momentum=0.9)
    return g, v, gc.compile([v["loss"]], updates=updates, **options)


def test_each_instruction_carries_the_scope_of_the_node_it_computes():
    g, v, prog = training_program()
    by_name = {n.name: n for n in g.nodes}
    scopes = {ins.scope for ins in prog.plan.instructions}
    assert {"model/block0", "model/block2", "head", "optim/w1"} <= scopes
    for ins in prog.plan.instructions:
        node = by_name.get(prog.plan.buffers[ins.out].name)
        if node is not None and ins.tag != "update":
            assert ins.scope == node.scope, ins


def test_recomputed_instructions_keep_the_scope_of_what_they_recompute():
    g, v = scoped_mlp(blocks=6)
    prog = gc.compile([v["loss"], *gc.grad(v["loss"], v["params"])], remat="sqrt")
    scope_of = {n.name: n.scope for n in g.nodes}
    again = [ins for ins in prog.plan.instructions if ins.tag == "recompute"]
    assert again
    assert all(ins.scope == scope_of[ins.origin] for ins in again)


def test_a_plan_keeps_its_scopes_through_json_and_a_saved_program(tmp_path):
    g, v, prog = training_program()
    again = gc.Plan.from_json(prog.plan.to_json())
    assert again == prog.plan
    assert [i.scope for i in again.instructions] == [i.scope for i in prog.plan.instructions]
    prog.save(tmp_path / "step.graphc")
    loaded = gc.load(tmp_path / "step.graphc")
    assert [i.scope for i in loaded.plan.instructions] == [i.scope for i in prog.plan.instructions]


def test_a_version_3_plan_file_loads_with_every_scope_at_top_level():
    """tests/data/seed-plan-v3.json: the seed training step, written by graphc when plans were version 3."""
    text = (DATA / "seed-plan-v3.json").read_text()
    assert json.loads(text)["version"] == 3
    plan = gc.Plan.from_json(text)
    assert plan.instructions and {i.scope for i in plan.instructions} == {""}
    assert json.loads(plan.to_json())["version"] == gc.plan.VERSION == 4
    g, v = zoo.ZOO["seed"]()
    feeds = zoo.feeds(g)
    stored = {name: node.data for name, node in g.params.items()}
    want = gc.compile(zoo.training_outputs(v)).run(feeds)
    got = Executable(plan, stored).run(feeds)
    assert len(got) == len(want) == 3
    assert all(np.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(want, got))


def test_the_listing_labels_each_run_of_instructions_of_one_scope():
    g, v, prog = training_program()
    lines = str(prog.plan).splitlines()
    headers = [k for k, line in enumerate(lines) if re.fullmatch(r"  \[[^\]]+\]", line)]
    steps = [line for line in lines if re.match(r"\s+\d+ ", line)]
    assert len(steps) == len(prog.plan.instructions)
    labels = [lines[k].strip()[1:-1] for k in headers]
    runs = [s or "(top level)" for k, s in enumerate(i.scope for i in prog.plan.instructions)
            if k == 0 or prog.plan.instructions[k - 1].scope != s]
    assert labels == runs
    assert {"model/block0", "head", "optim/w2"} <= set(labels)


def test_an_unscoped_plan_lists_no_scope_lines():
    with gc.Graph("plain"):
        x = gc.input("x", shape=(2,))
        y = gc.sum(gc.tanh(x))
    assert not re.search(r"^  \[", str(gc.compile(y).plan), re.MULTILINE)


def test_a_run_time_error_names_the_instructions_scope():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        with gc.scope("risky"):
            y = gc.log(x)
        loss = gc.sum(y)
    prog = gc.compile(loss, check_numerics=True)
    with pytest.raises(gc.GraphError, match=r"in scope 'risky'"), np.errstate(invalid="ignore"):
        prog.run({"x": np.array([-1.0, 1.0], dtype=np.float32)})


def test_a_program_specialised_for_a_batch_size_keeps_the_scopes():
    with gc.Graph("batched"):
        x = gc.input("x", shape=(None, 3))
        with gc.scope("layer"):
            w = gc.param("w", shape=(3, 3))
            h = gc.tanh(x @ w)
        loss = gc.sum(h)
    prog = gc.compile([loss, gc.grad(loss, w)])
    prog.run({"x": np.ones((5, 3), np.float32)})
    assert "layer" in {i.scope for i in prog.plan.instructions}


# --- the memory report -------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(blocks=st.integers(1, 4), width=st.integers(1, 5), nest=st.booleans(),
       optimizer=st.sampled_from([None, "sgd", "adam"]), remat=st.sampled_from(["none", "sqrt"]))
def test_the_peak_bytes_by_scope_sum_to_the_lower_bound(blocks, width, nest, optimizer, remat):
    g, v = scoped_mlp(blocks=blocks, width=width, nest=nest)
    if optimizer is None:
        prog = gc.compile([v["loss"], *gc.grad(v["loss"], v["params"])], remat=remat)
    else:
        make = {"sgd": lambda: gc.optim.sgd(v["loss"], v["params"], lr=0.1, momentum=0.9),
                "adam": lambda: gc.optim.adam(v["loss"], v["params"])}[optimizer]
        prog = gc.compile([v["loss"]], updates=make(), remat=remat)
    memory = prog.memory
    by_scope = memory.peak_bytes_by_scope
    assert sum(by_scope.values()) == memory.lower_bound_bytes == sum(memory.peak_bytes_by_kind.values())
    assert list(by_scope.values()) == sorted(by_scope.values(), reverse=True)
    assert all("/" not in scope for scope in by_scope)
    assert set(by_scope) <= {"", "model", "head", "optim"} | {f"block{k}" for k in range(blocks)}


def test_the_memory_report_prints_bytes_by_scope_largest_first():
    g, v, prog = training_program()
    text = str(prog.memory)
    section = text.split("live at the peak, by scope:\n")[1].split("  outside the arena")[0].splitlines()
    names = [line.split()[0] for line in section]
    assert names == [s or "(top" for s in prog.memory.peak_bytes_by_scope]
    with gc.Graph("plain"):
        x = gc.input("x", shape=(2,))
    assert "by scope" not in str(gc.compile(gc.sum(gc.tanh(x))).memory)


def test_a_block_reused_in_place_counts_in_the_scope_of_the_value_it_holds():
    """y (scope a) is overwritten in place by z (scope b): the block is a's until z is written, then b's."""
    with gc.Graph("g"):
        x = gc.input("x", shape=(8,), dtype="float64")
        with gc.scope("a"):
            y = gc.exp(x)
        with gc.scope("b"), gc.scope("inner"):
            z = gc.exp(y)
    storage = {x.node: x.node, y.node: y.node, z.node: y.node}
    order = [y.node, z.node]
    block = [Interval(y.node, 64, 0, 1), Interval((z.node, 0), 32, 1, 1)]  # and z's scratch at step 1
    assert peak_by_scope(block, 0, order, storage) == {"a": 64}
    assert peak_by_scope(block, 1, order, storage) == {"b": 96}


# --- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["forward", "adjoint", "plan"])
def test_the_picture_has_one_cluster_per_scope(view):
    g, v, prog = training_program()
    target = prog if view == "plan" else g
    labels = cluster_labels(gc.to_dot(target, view, max_nodes=None).source)
    assert len(labels) == len(set(labels)), f"a scope drawn twice: {sorted(labels)}"
    assert set(labels) == scope_paths(box.scope for box in make_scene(target, view).boxes)
    expected = {"plan": {"model", "model/block2", "head", "optim", "optim/w0"},
                "forward": {"model", "model/block2", "head", "optim/w0"},  # optimizer state and scalar steps
                "adjoint": {"model", "model/block2", "head", "optim/b2"}}[view]
    assert expected <= set(labels)


def test_nested_scopes_are_nested_clusters():
    g, v = scoped_mlp(blocks=2)
    source = gc.to_dot(g, "forward").source
    outer = source.index('label=model ')
    inner = source.index('label="model/block1"')
    closing = source.index("\n\t}", outer)  # the model cluster closes after its inner clusters
    assert outer < inner < closing


def test_the_joint_view_has_scope_clusters_inside_the_forward_and_the_adjoint_cluster():
    g, v = scoped_mlp(blocks=2)
    gc.grad(v["loss"], v["params"])
    source = gc.to_dot(g, "joint").source
    assert cluster_labels(source).count("model/block0") == 2


def test_an_image_of_a_scoped_graph_renders(tmp_path):
    g, v, prog = training_program()
    path = gc.render(prog, tmp_path / "plan.svg")
    assert "model/block1" in path.read_text()


def test_collapsed_repeats_of_scoped_layers_are_drawn_in_their_common_scope():
    with gc.Graph("deep") as g:
        h = gc.input("x", shape=(2, 2))
        with gc.scope("stack"):
            for k in range(40):
                with gc.scope(f"layer{k}"):
                    h = gc.tanh(h) * 0.5
        gc.sum(h)
    source = gc.to_dot(g, "forward", max_nodes=30).source
    labels = cluster_labels(source)
    assert "stack" in labels and "stack/layer0" in labels and len(labels) < 40
    groups = [box for box in fit(make_scene(g, "forward"), 30).boxes if box.op == "group"]
    assert groups and {box.scope for box in groups} == {"stack"}
