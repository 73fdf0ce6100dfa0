"""A batch that varies: graphs with None in input shapes against graphs built for one size.

The law: the program a varying-batch graph specialises for B computes what the same
graph built with B in place of None computes, to the last bit (float64), losses,
gradients and training steps alike; a mean over the batch divides by the actual size.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import zoo
from graphc.specialize import BatchProgram

F64 = "float64"


def _build(batch: int | None, body: Callable[..., list[gc.Value]], features: int = 4, classes: int = 3):
    """Inputs x (batch, features), labels (batch,), params w (features, classes), b (classes,); body's outputs."""
    with gc.Graph("model") as g:
        x = gc.input("x", (batch, features), F64)
        labels = gc.input("labels", (batch,), "int64")
        w = gc.param("w", (features, classes), F64)
        b = gc.param("b", (classes,), F64, init=np.linspace(-0.3, 0.2, classes))
        outputs = body(x, labels, w, b)
    return g, x, labels, w, b, outputs


def _feeds(rows: int, features: int = 4, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + rows)
    return {"x": rng.normal(size=(rows, features)), "labels": rng.integers(0, classes, size=rows)}


def _loss_and_grads(loss_of: Callable[..., gc.Value]) -> Callable[..., list[gc.Value]]:
    def body(x, labels, w, b):
        loss = loss_of(x, labels, w, b)
        return [loss, *gc.grad(loss, [w, b, x])]

    return body


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=0)


def _check_against_fixed(loss_of: Callable[..., gc.Value], rows: int = 5) -> None:
    """Loss and gradients of the None graph run at ``rows`` equal those of the graph built for ``rows``."""
    body = _loss_and_grads(loss_of)
    *_, varying = _build(None, body)
    *_, fixed = _build(rows, body)
    feeds = _feeds(rows)
    _assert_same(gc.compile(varying).run(feeds), gc.compile(fixed).run(feeds))


# --- each place where a count of the batch enters a value -----------------------------------


def test_mean_over_the_batch_gradient_equals_fixed_size_graph():
    _check_against_fixed(lambda x, labels, w, b: gc.mean(gc.tanh(x @ w + b)))


def test_mean_over_the_batch_axis_only_equals_fixed_size_graph():
    _check_against_fixed(lambda x, labels, w, b: gc.sum(gc.mean(gc.tanh(x @ w) * b, axis=0) ** 2.0))


def test_softmax_cross_entropy_gradient_equals_fixed_size_graph():
    _check_against_fixed(lambda x, labels, w, b: gc.softmax_cross_entropy(x @ w + b, labels))


def test_mse_gradient_equals_fixed_size_graph():
    _check_against_fixed(lambda x, labels, w, b: gc.mse(gc.sigmoid(x @ w), gc.softmax(x @ w + b)))


def test_max_and_broadcast_gradients_equal_fixed_size_graph():
    """max's VJP and a row vector broadcast against the batch (unbroadcast sums over it)."""
    _check_against_fixed(lambda x, labels, w, b: gc.sum(gc.max(x @ w, axis=1) * gc.sum(b)) + gc.mean(x * 0.5))


@pytest.mark.parametrize("ddof", [0, 1])
def test_var_and_std_over_the_batch_gradients_equal_fixed_size_graph(ddof):
    """var's and std's VJPs divide by n - ddof where n counts the batch: 1/(n - ddof) = (1/n)/(1 - ddof/n)."""
    _check_against_fixed(lambda x, labels, w, b: gc.sum(gc.var(x @ w, axis=0, ddof=ddof) * b)
                         + gc.std(gc.tanh(x), ddof=ddof) + gc.sum(gc.std(x, axis=(0, 1), keepdims=True, ddof=ddof)))


def test_logsumexp_over_the_batch_gradient_equals_fixed_size_graph():
    _check_against_fixed(lambda x, labels, w, b: gc.sum(gc.logsumexp(x @ w + b, axis=0)) + gc.logsumexp(x))


def test_reshape_that_keeps_the_batch_equals_fixed_size_graph():
    def loss(x, labels, w, b):
        cube = gc.reshape(x, (-1, 2, 2))  # (None, 2, 2): the batch stays a dimension of its own
        return gc.mean(gc.reshape(gc.tanh(cube), (-1, 4)) @ w)

    _check_against_fixed(loss)


def test_batched_matmul_gradient_equals_fixed_size_graph():
    """(None, 2, 2) @ (2, 3): matmul's VJP broadcasts batch shapes that hold None."""
    _check_against_fixed(lambda x, labels, w, b: gc.mean(gc.reshape(x, (-1, 2, 2)) @ gc.slice_axis(w, 0, 0, 2)))


def test_dropout_specialised_draws_the_fixed_size_graphs_numbers():
    """A random op keeps its stream: the specialised program draws what the fixed graph draws."""

    def body(x, labels, w, b):
        key = gc.input("key", (), "int64")
        loss = gc.mean(gc.dropout(gc.tanh(x @ w), key, 0.5))
        return [loss, *gc.grad(loss, [w])]

    *_, varying = _build(None, body)
    *_, fixed = _build(6, body)
    feeds = {**_feeds(6), "key": np.int64(11)}
    _assert_same(gc.compile(varying).run(feeds), gc.compile(fixed).run(feeds))


def test_mean_over_the_batch_uses_the_actual_size():
    """∂ mean(x)/∂x = 1/(B·cols) for each B run, not a size fixed when the graph was built."""
    with gc.Graph("mean"):
        x = gc.input("x", (None, 3), F64)
        loss = gc.mean(x)
        dx = gc.grad(loss, x)
    prog = gc.compile([loss, dx])
    for rows in (1, 4, 7):
        value, grad_x = prog.run({"x": np.ones((rows, 3))})
        assert value == 1.0
        np.testing.assert_array_equal(grad_x, np.full((rows, 3), 1.0 / (rows * 3)))


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_any_batch_size_computes_what_the_graph_built_for_it_computes(rows: int, seed: int):
    body = _loss_and_grads(lambda x, labels, w, b: gc.softmax_cross_entropy(gc.tanh(x @ w) + b, labels)
                           + 0.1 * gc.mean(x @ w))
    *_, varying = _build(None, body)
    *_, fixed = _build(rows, body)
    feeds = _feeds(rows, seed=seed)
    _assert_same(gc.compile(varying).run(feeds), gc.compile(fixed).run(feeds))


# --- training with sgd ----------------------------------------------------------------------


def _training_step(batch: int | None):
    def body(x, labels, w, b):
        loss = gc.softmax_cross_entropy(gc.tanh(x @ w) * 2.0 + b, labels)
        return [loss]

    g, x, labels, w, b, (loss,) = _build(batch, body)
    return gc.compile(loss, updates=gc.sgd(loss, [w, b], 0.5)), w, b


def test_training_steps_of_sizes_32_32_7_equal_fixed_size_programs():
    varying, w, b = _training_step(None)
    fixed32, w32, b32 = _training_step(32)
    fixed7, w7, b7 = _training_step(7)
    losses, fixed_losses = [], []
    for step, rows in enumerate((32, 32, 7)):
        feeds = _feeds(rows, seed=step)
        losses.append(varying.run(feeds))
        if rows == 7:
            w7.assign(w32.value)
            b7.assign(b32.value)
        fixed_losses.append((fixed32 if rows == 32 else fixed7).run(feeds))
    np.testing.assert_allclose(losses, fixed_losses, rtol=1e-14, atol=0)
    np.testing.assert_allclose(w.value, w7.value, rtol=1e-14, atol=0)
    np.testing.assert_allclose(b.value, b7.value, rtol=1e-14, atol=0)
    assert not np.array_equal(w.value, _training_step(None)[1].value)  # the steps did move the params
    assert list(varying.specializations) == [32, 7]


# --- the cache ------------------------------------------------------------------------------


def _mean_program():
    with gc.Graph("cache"):
        x = gc.input("x", (None, 2), F64)
        return gc.compile(gc.mean(x * x))


def test_same_size_reuses_its_program_and_a_new_size_adds_one():
    prog = _mean_program()
    assert isinstance(prog, BatchProgram) and isinstance(prog, gc.Program)
    assert prog.specializations == {}
    prog.run({"x": np.ones((5, 2))})
    first = prog.specializations[5]
    prog.run({"x": np.zeros((5, 2))})
    assert prog.specializations[5] is first
    prog.run({"x": np.ones((3, 2))})
    assert list(prog.specializations) == [5, 3]
    assert prog.specializations[3].plan.buffers[0].shape == (3, 2)


def test_specialize_ahead_of_time_and_plan_of_the_last_size_used():
    prog = _mean_program()
    with pytest.raises(gc.GraphError, match=r"run it or call prog.specialize\(size\)"):
        prog.plan
    with pytest.raises(gc.GraphError, match=r"specialize\(size\)"):
        prog.memory
    made = prog.specialize(4)
    assert prog.specializations == {4: made}
    assert prog.plan is made.plan and prog.cost == made.cost
    assert "(4, 2)" in str(prog.plan)
    prog.run({"x": np.ones((6, 2))})
    assert "(6, 2)" in str(prog.plan) and prog.memory is prog.specializations[6].memory


def test_two_threads_running_one_new_size_make_one_specialization(monkeypatch):
    prog = _mean_program()
    made = []
    compile_for = BatchProgram._compile_for

    def counted(self, size):
        made.append(size)
        return compile_for(self, size)

    monkeypatch.setattr(BatchProgram, "_compile_for", counted)
    barrier = threading.Barrier(4)
    results = []

    def worker():
        barrier.wait()
        results.append(prog.run({"x": np.full((9, 2), 2.0)}))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [9] and results == [4.0] * 4


def test_specialised_plan_keeps_tags_and_origins_of_the_fixed_graph():
    """Adjoint metadata is carried over: the same instructions are backward, with the same forward origins."""
    body = _loss_and_grads(lambda x, labels, w, b: gc.softmax_cross_entropy(gc.tanh(x @ w) + b, labels))
    *_, varying = _build(None, body)
    *_, fixed = _build(5, body)
    prog = gc.compile(varying)
    prog.specialize(5)
    tags = [(i.tag, i.origin) for i in prog.plan.instructions]
    assert tags == [(i.tag, i.origin) for i in gc.compile(fixed).plan.instructions]
    assert ("backward", "w") in tags


def test_specialised_updates_write_the_params_the_user_sees():
    prog, w, b = _training_step(None)
    before = w.value
    prog.run(_feeds(3))
    assert not np.array_equal(w.value, before)
    spec_graph_w = prog.specializations[3]._stored["w"]
    assert np.shares_memory(spec_graph_w, w.node.data)


# --- what is refused -------------------------------------------------------------------------


def test_inputs_that_disagree_on_the_batch_size_are_named():
    body = _loss_and_grads(lambda x, labels, w, b: gc.softmax_cross_entropy(x @ w, labels))
    *_, outputs = _build(None, body)
    prog = gc.compile(outputs)
    feeds = {"x": np.zeros((5, 4)), "labels": np.zeros(4, np.int64)}
    with pytest.raises(gc.GraphError, match=r"inputs 'x' and 'labels' disagree on the batch size.*\(5, 4\).*batch 5.*\(4,\).*batch 4"):
        prog.run(feeds)
    assert prog.specializations == {}


def test_a_param_with_none_in_its_shape_is_refused():
    """A param has one stored value: its shape is fixed, and the batch is for inputs only."""
    with gc.Graph("param"):
        with pytest.raises(gc.GraphError, match=r"param 'w': shape \(None, 3\) holds the batch size.*only inputs"):
            gc.param("w", (None, 3))


def test_a_batch_of_zero_rows_is_refused():
    prog = _mean_program()
    with pytest.raises(gc.GraphError, match=r"at least one row"):
        prog.run({"x": np.zeros((0, 2))})
    with pytest.raises(gc.GraphError, match=r"at least one row"):
        prog.specialize(0)


def test_fixed_dims_of_a_feed_are_checked_before_specialising():
    prog = _mean_program()
    with pytest.raises(gc.GraphError, match=r"feed 'x'.*\(None, 2\).*has shape \(5, 3\)"):
        prog.run({"x": np.zeros((5, 3))})
    with pytest.raises(gc.GraphError, match=r"names no input or param"):
        prog.run({"x": np.zeros((5, 2)), "y": 1.0})
    assert prog.specializations == {}


def test_reshape_that_multiplies_the_batch_is_refused_when_built():
    with gc.Graph("flatten"):
        x = gc.input("x", (None, 2, 3))
        with pytest.raises(gc.GraphError, match=r"reshape: the result's shape is \(6054,\) when the batch size"):
            gc.reshape(x, (-1,))
        assert gc.reshape(x, (-1, 6)).shape == (None, 6)


def test_a_batch_that_broadcasts_against_a_fixed_size_is_refused_when_built():
    with gc.Graph("broadcast"):
        x = gc.input("x", (None, 3))
        with pytest.raises(gc.GraphError, match=r"add: shapes \(1009, 3\) and \(5, 3\) do not broadcast.*batch size None"):
            x + np.ones((5, 3), np.float32)
        assert (x + np.ones((1, 3), np.float32)).shape == (None, 3)


# --- size ----------------------------------------------------------------------------------


def test_a_chain_of_ten_thousand_nodes_specialises_without_recursion():
    limit = sys.getrecursionlimit()
    with gc.Graph("chain"):
        x = gc.input("x", (None, 2), F64)
        h = x
        for _ in range(10_000):
            h = gc.tanh(h)
        prog = gc.compile(gc.sum(h, axis=1))
    want = np.ones((3, 2))
    for _ in range(10_000):
        want = np.tanh(want)
    sys.setrecursionlimit(1_000)  # ten times fewer frames than nodes: any recursion over the graph fails
    try:
        out = prog.run({"x": np.ones((3, 2))})
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(out, want.sum(axis=1), rtol=1e-14)


def test_a_slice_past_the_actual_batch_size_is_refused_when_specialising():
    """The op's attribute checks run again for the size: rows 0:6 of a batch of 4 do not exist."""
    with gc.Graph("slice"):
        x = gc.input("x", (None, 3), F64)
        prog = gc.compile(gc.sum(gc.slice_axis(x, 0, 0, 6)))
    with pytest.raises(gc.GraphError, match=r"batch size 4: .*slice_axis.*outside axis 0 of length 4"):
        prog.run({"x": np.ones((4, 3))})
    assert prog.run({"x": np.ones((7, 3))}) == 18.0


def test_size_limits_do_not_fire_on_probe_sizes():
    """(None, 2^51) is a valid shape, though a probe's 1009 · 2^51 elements would pass the 2^60 limit."""
    with gc.Graph("huge"):
        x = gc.input("x", (None, 1))
        wide = gc.broadcast_to(x, (None, 2**51))
        assert wide.shape == (None, 2**51)
        prog = gc.compile(gc.sum(wide))
    with pytest.raises(gc.GraphError, match=r"too large"):
        prog.specialize(2**10)  # 2^61 elements: the limit applies to the actual size


def test_gradcheck_of_a_graph_with_a_varying_batch():
    """gradcheck specialises for the batch size of its feeds (it used to compare (3, 4) with (None, 4))."""
    with gc.Graph("check"):
        x = gc.input("x", (None, 4), F64)
        w = gc.param("w", (4, 3), F64)
        loss = gc.mean(gc.tanh(x @ w)) + gc.mse(x @ w, gc.sigmoid(x @ w))
    report = gc.gradcheck(loss, [x, w], {"x": np.random.default_rng(0).normal(size=(3, 4))})
    assert max(report.max_rel_error.values()) < 1e-6


def test_compile_options_apply_to_every_size():
    """remat, memory and name given to compile are those of each specialisation."""

    def chain(batch):
        with gc.Graph("chain") as g:
            x = gc.input("x", (batch, 3), F64)
            w = gc.param("w", (3, 3), F64)
            h = x
            for _ in range(6):
                h = gc.tanh(h @ w)
            loss = gc.mean(h)
            return [loss, gc.grad(loss, w)]

    options = {"remat": "sqrt", "memory": "no-reuse", "name": "step"}
    prog = gc.compile(chain(None), **options)
    feeds = {"x": np.linspace(-1, 1, 15).reshape(5, 3)}
    _assert_same(prog.run(feeds), gc.compile(chain(5), **options).run(feeds))
    spec = prog.specializations[5]
    assert spec.plan.name == "step" and spec.remat.policy == "sqrt" and prog.remat is spec.remat
    assert spec.memory.strategy == "no-reuse"


def test_gradient_of_an_input_the_loss_does_not_read_has_the_batch_size():
    """grad's zero for an unreached wrt is broadcast to the input's shape, None included."""
    with gc.Graph("unreached"):
        x = gc.input("x", (None, 2), F64)
        unused = gc.input("unused", (None, 3), F64)
        loss = gc.sum(x * x)
        d_unused = gc.grad(loss, unused)
    assert d_unused.shape == (None, 3)
    out = gc.compile(d_unused).run({"x": np.ones((4, 2)), "unused": np.ones((4, 3))})
    np.testing.assert_array_equal(out, np.zeros((4, 3)))


def test_a_batch_program_reports_its_last_sizes_state_and_saves_one_size(tmp_path):
    graph, values = zoo.mlp(None, (4, 5, 3), dtype="float64")
    step = gc.compile(values["loss"], updates=gc.optim.adam(values["loss"], values["params"], lr=0.1))
    rng = np.random.default_rng(0)
    step.run({"x": rng.standard_normal((6, 4)), "y": rng.integers(0, 3, 6)})
    assert set(step.state) == {n for n, node in graph.params.items() if node.role == "state"}
    assert step.state["W1.step"] == 1.0
    assert step.memory.state_bytes > 0
    with pytest.raises(gc.GraphError, match=r"specializations\[size\]\.save"):
        step.save(tmp_path / "step.npz")
    step.specializations[6].save(tmp_path / "step.npz")
    assert gc.load(tmp_path / "step.npz").state.keys() == step.state.keys()
