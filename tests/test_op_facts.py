"""Facts an op declares about memory (views, contiguity, scratch) are used from the op alone.

A custom op defined with ``gc.defop(view=..., scratch=...)`` is planned and run as
graphc's own views and scratch-using kernels are, with nothing outside its definition.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import zoo
from graphc.ops import ZERO
from graphc.plan import BIND_VIEW, COPY, SCRATCH


def _even_rows_vjp(g, y, x):
    """J^T of x[::2] (x of shape (2n, m)): g in the even rows, zeros in the odd ones."""
    n, m = g.shape
    return gc.reshape(gc.pad_axis(gc.reshape(g, (n, 1, m)), 1, 0, 1), (2 * n, m))


EVEN_ROWS = gc.defop(
    "test_opfacts.even_rows",
    infer=lambda x: gc.Aval((x.shape[0] // 2,) + x.shape[1:], x.dtype),
    kernel=lambda x: x[::2],
    vjp=[_even_rows_vjp],
    flops=lambda ins, out: 0,
    view=True,
    replace=True,
)

FLAT_VIEW = gc.defop(  # a reshape to one dimension, as a custom op: a view only of a contiguous operand
    "test_opfacts.flat_view",
    infer=lambda x: gc.Aval((x.size,), x.dtype),
    kernel=lambda x: x.reshape(-1),
    vjp=[lambda g, y, x: gc.reshape(g, x.shape)],
    flops=lambda ins, out: 0,
    view=True,
    keeps_contiguous=lambda x, y: True,
    needs_contiguous=True,
    copy_kernel=lambda out, x: np.copyto(out.reshape(x.shape), x),
    replace=True,
)


def _centred_kernel(out, x, scratch):
    """x minus its row means, with the means in the planned scratch (nothing allocated)."""
    (means,) = scratch
    np.mean(x, axis=-1, keepdims=True, out=means)
    np.subtract(x, means, out=out)


CENTRED = gc.defop(
    "test_opfacts.centred",
    infer=lambda x: x,
    kernel=_centred_kernel,
    vjp=[lambda g, y, x: g - gc.mean(g, axis=-1, keepdims=True)],
    scratch=lambda x: [gc.Aval(x.shape[:-1] + (1,), x.dtype)],
    replace=True,
)


def _instruction(prog: gc.Program, op: str):
    return next(ins for ins in prog.plan.instructions if ins.op == op)


def _rows(seed: int, shape=(6, 3)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_a_custom_view_op_is_bound_once_and_reads_each_runs_values():
    with gc.Graph("custom-view"):
        x = gc.input("x", shape=(6, 3), dtype="float64")
        h = gc.tanh(x)
        y = EVEN_ROWS(h) * 2.0
    prog = gc.compile(y)
    assert _instruction(prog, "test_opfacts.even_rows").mode == BIND_VIEW
    for seed in (0, 1):  # the second run reads the view bound at the first
        X = _rows(seed)
        np.testing.assert_allclose(prog.run({"x": X}), np.tanh(X)[::2] * 2.0)


def test_a_custom_view_op_owns_no_storage():
    def planned(view: bool) -> int:
        with gc.Graph("custom-view-storage"):
            x = gc.input("x", shape=(64, 32), dtype="float64")
            h = gc.tanh(x)
            rows = EVEN_ROWS(h) if view else gc.slice_axis(h, 0, 0, 32)  # 32 rows either way, both views
            y = gc.sum(gc.exp(rows))
        return gc.compile([y], bind=False).memory.planned_bytes

    assert planned(view=True) == planned(view=False)


def test_a_custom_view_op_is_differentiated_through_its_vjp():
    with gc.Graph("custom-view-grad"):
        x = gc.input("x", shape=(6, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64")
        h = EVEN_ROWS(gc.tanh(x @ w))
        loss = gc.sum(h * EVEN_ROWS(x @ w))  # fan-out: x @ w viewed twice
    gc.gradcheck(loss, [x, w], {"x": _rows(2)})


def test_a_view_that_needs_a_contiguous_operand_is_copied_from_a_transpose():
    with gc.Graph("custom-view-copy"):
        x = gc.input("x", shape=(4, 3), dtype="float64")
        flat_of_transposed = FLAT_VIEW(gc.transpose(gc.tanh(x)))
        flat_of_plain = FLAT_VIEW(gc.tanh(x) * 3.0)
    prog = gc.compile([flat_of_transposed * 1.0, flat_of_plain * 1.0])
    modes = [ins.mode for ins in prog.plan.instructions if ins.op == "test_opfacts.flat_view"]
    assert sorted(modes) == sorted([COPY, BIND_VIEW])
    X = _rows(3, (4, 3))
    first, second = prog.run({"x": X})
    np.testing.assert_allclose(first, np.tanh(X).T.reshape(-1))
    np.testing.assert_allclose(second, (np.tanh(X) * 3.0).reshape(-1))


def test_reshape_after_a_view_that_may_break_contiguity_is_a_copy():
    """EVEN_ROWS does not say it keeps contiguity (its rows are strided): a reshape of it is copied."""
    with gc.Graph("view-contiguity"):
        x = gc.input("x", shape=(6, 4), dtype="float64")
        strided = gc.reshape(EVEN_ROWS(gc.tanh(x)), (12,))
        kept = gc.reshape(gc.slice_axis(gc.tanh(x), 0, 0, 3), (12,))  # whole rows: contiguous
    prog = gc.compile([strided * 1.0, kept * 1.0])
    modes = [ins.mode for ins in prog.plan.instructions if ins.op == "reshape"]
    assert sorted(modes) == sorted([COPY, BIND_VIEW])
    X = _rows(4, (6, 4))
    first, second = prog.run({"x": X})
    np.testing.assert_allclose(first, np.tanh(X)[::2].reshape(-1))
    np.testing.assert_allclose(second, np.tanh(X)[:3].reshape(-1))


def test_a_view_kernel_that_copies_is_refused_when_compiled():
    copying = gc.defop(
        "test_opfacts.copying_view", infer=lambda x: x, kernel=lambda x: x.copy(),
        vjp=[lambda g, y, x: g], view=True, replace=True,
    )
    with gc.Graph("copying-view"):
        x = gc.input("x", shape=(3,), dtype="float64")
        y = copying(gc.exp(x)) * 2.0
    with pytest.raises(gc.GraphError, match=r"copying_view .*returned a new array, not a view of its operand.*view=False"):
        gc.compile([y])


def test_a_kernel_with_scratch_gets_planned_scratch_buffers():
    with gc.Graph("custom-scratch"):
        x = gc.input("x", shape=(5, 4), dtype="float64")
        y = CENTRED(gc.tanh(x))
        loss = gc.sum(y * y)
    prog = gc.compile(y * 1.0)
    ins = _instruction(prog, "test_opfacts.centred")
    assert [prog.plan.buffers[s].kind for s in ins.scratch] == [SCRATCH]
    assert prog.plan.buffers[ins.scratch[0]].shape == (5, 1)
    X = _rows(5, (5, 4))
    h = np.tanh(X)
    np.testing.assert_allclose(prog.run({"x": X}), h - h.mean(axis=-1, keepdims=True))
    gc.gradcheck(loss, [x], {"x": X})


# --- sources are a kind of node, not ops ------------------------------------------------------


def test_sources_are_nodes_of_their_own_kind_with_no_op():
    with gc.Graph("kinds"):
        x = gc.input("x", shape=(2, 3))
        w = gc.param("w", shape=(3, 3))
        c = gc.constant(2.0, dtype="float32")
        y = x @ w * c
    assert [(v.node.kind, v.node.op, v.node.is_source) for v in (x, w, c)] == [
        ("input", None, True), ("param", None, True), ("const", None, True)]
    assert (y.node.kind, y.node.op.name, y.node.is_source) == ("op", "mul", False)
    assert [v.op for v in (x, w, c, y)] == ["input", "param", "const", "mul"]  # Value.op: the op or the kind
    assert c.node.name == f"const_{c.node.id}"
    assert not {"input", "param", "const"} & set(gc.ops.registered())


def test_a_source_kind_is_no_op_of_a_plan_file():
    with pytest.raises(gc.GraphError, match=r"no op named 'param' is registered"):
        gc.ops.lookup("param")


def test_a_graph_refuses_an_unknown_source_kind():
    graph = gc.Graph("kinds")
    with pytest.raises(gc.GraphError, match=r"'label' is no kind of source node; use one of input, param, const"):
        graph.add_source("label", gc.Aval((2,), np.dtype("int64")), "y")


# --- the ops that read indices say what range they index ----------------------------------------


def _row_gather_aval(table: gc.Aval, rows: gc.Aval) -> gc.Aval:
    return gc.Aval(rows.shape + table.shape[1:], table.dtype)


ROW_GATHER = gc.defop(  # a gather of table rows, defined with the index fact alone
    "test_opfacts.row_gather",
    infer=_row_gather_aval,
    kernel=lambda out, table, rows: np.take(table, rows, axis=0, out=out),
    vjp=[None, ZERO],
    int_operands=[1],
    index_bound=lambda k, table, rows: table.shape[0] if k == 1 else None,
    replace=True,
)


def test_random_labels_are_drawn_in_the_range_the_consuming_op_indexes():
    with gc.Graph("labels") as graph:
        table = gc.param("table", shape=(5, 2), dtype="float64")
        rows = gc.input("rows", shape=(40,), dtype="int64")
        logits = gc.input("logits", shape=(40, 3), dtype="float64")
        labels = gc.input("labels", shape=(40,), dtype="int64")
        hot = gc.input("hot", shape=(40,), dtype="int64")
        gc.sum(ROW_GATHER(table, rows)) + gc.softmax_cross_entropy(logits, labels) + gc.sum(gc.one_hot(hot, 7, dtype="float64"))
    assert [zoo.label_classes(graph, v.node) for v in (rows, labels, hot, logits)] == [5, 3, 7, None]
    feeds = zoo.feeds(graph, seed=1)
    assert feeds["rows"].max() < 5 and feeds["labels"].max() < 3 and feeds["hot"].max() < 7
