"""Bad input of a batch that varies (None in input shapes): cases for the catalogue of tests/test_bad_input.py."""

from __future__ import annotations

import numpy as np

import graphc as gc


def _batch_graph(build):
    """Run ``build()`` in a fresh graph holding an input x of shape (None, 3) (float64)."""
    with gc.Graph("batch"):
        return build(gc.input("x", (None, 3), "float64"))


def _batch_program(**options):
    """A program of mean(x · w) over a (None, 3) input x and int labels (None,)."""
    with gc.Graph("batch"):
        x = gc.input("x", (None, 3), "float64")
        labels = gc.input("labels", (None,), "int64")
        w = gc.param("w", (3, 2), "float64")
        loss = gc.softmax_cross_entropy(x @ w, labels)
        return gc.compile([loss, gc.grad(loss, w)], **options)


def _batch_feeds(rows=4, label_rows=None):
    return {"x": np.ones((rows, 3)), "labels": np.zeros(rows if label_rows is None else label_rows, np.int64)}


def _slice_grad_of_batch_axis():
    def build(x):
        return gc.grad(gc.sum(gc.slice_axis(x, 0, 0, 2)), x)

    return _batch_graph(build)


def _slice_past_the_batch():
    def build(x):
        return gc.compile(gc.sum(gc.slice_axis(x, 0, 0, 6)))

    return _batch_graph(build).run({"x": np.ones((4, 3))})


CASES_BATCH = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("batch-param-none", lambda: _batch_graph(lambda x: gc.param("w", (None, 3))), r"param 'w'.*batch size \(None\).*fixed shape"),
    ("batch-input-none-and-float", lambda: _batch_graph(lambda x: gc.input("y", (None, 2.5))), r"input 'y'.*dimension 2.5"),
    ("batch-reshape-multiplies", lambda: _batch_graph(lambda x: gc.reshape(x, (-1,))), r"reshape: the result's shape is \(3027,\).*batch size.*graphc supports the batch only as a dimension of its own"),
    ("batch-reshape-none-twice", lambda: _batch_graph(lambda x: gc.reshape(x, (None, None, 3))), r"reshape.*cannot reshape"),
    ("batch-broadcast-fixed", lambda: _batch_graph(lambda x: x + np.ones((5, 3))), r"add: shapes \(1009, 3\) and \(5, 3\) do not broadcast.*'x' \(None, 3\)"),
    ("batch-concat-batch-axis", lambda: _batch_graph(lambda x: gc.concat([x, x], axis=0)), r"concat: the result's shape is \(2018, 3\).*depends on the batch size"),
    ("batch-slice-grad-batch-axis", _slice_grad_of_batch_axis, r"slice_axis \[0:2\] of 'x'.*batch axis 0.*slice along the other axes"),
    ("batch-slice-past-the-size", _slice_past_the_batch, r"batch size 4: 'slice_axis_\d+' \(slice_axis.*cannot be built for this size.*outside axis 0 of length 4"),
    ("batch-inputs-disagree", lambda: _batch_program().run(_batch_feeds(4, label_rows=5)), r"inputs 'x' and 'labels' disagree on the batch size: 'x' is fed shape \(4, 3\) \(batch 4\) and 'labels' shape \(5,\) \(batch 5\)"),
    ("batch-size-zero-feed", lambda: _batch_program().run(_batch_feeds(0)), r"feed 'x' has shape \(0, 3\).*at least one row"),
    ("batch-specialize-zero", lambda: _batch_program().specialize(0), r"batch size 0.*at least one row"),
    ("batch-specialize-not-int", lambda: _batch_program().specialize(2.5), r"batch size 2.5 is not an int"),
    ("batch-specialize-bool", lambda: _batch_program().specialize(True), r"batch size True is not an int"),
    ("batch-feed-fixed-dim", lambda: _batch_program().run({"x": np.ones((4, 2)), "labels": np.zeros(4, np.int64)}), r"feed 'x' \(the graph's input of shape \(None, 3\) float64; None is the batch size\) has shape \(4, 2\)"),
    ("batch-feed-ndim", lambda: _batch_program().run({"x": np.ones(4), "labels": np.zeros(4, np.int64)}), r"feed 'x'.*has shape \(4,\); feed an array of shape \(None, 3\)"),
    ("batch-feed-ragged", lambda: _batch_program().run({"x": [[1.0, 2.0, 3.0], [1.0]], "labels": np.zeros(2, np.int64)}), r"feed 'x'.*cannot be made an array"),
    ("batch-feed-dtype", lambda: _batch_program().run({"x": np.ones((4, 3), np.float32), "labels": np.zeros(4, np.int64)}), r"feed 'x'.*has dtype float32"),
    ("batch-no-batched-input-fed", lambda: _batch_program().run({}), r"no fed input gives the batch size.*'x', 'labels'.*prog.specialize\(size\)"),
    ("batch-unknown-feed", lambda: _batch_program().run({**_batch_feeds(), "z": 1.0}), r"feed 'z' names no input or param"),
    ("batch-plan-before-run", lambda: _batch_program().plan, r"no plan yet.*batch size \(None\).*run it or call prog.specialize\(size\)"),
    ("batch-cost-before-run", lambda: _batch_program().cost, r"no plan yet.*prog.specialize\(size\)"),
    ("batch-budget-below-the-size", lambda: _batch_program(memory_budget=8).run(_batch_feeds(64)), r"budget"),
    ("batch-size-of-shape-none", lambda: _batch_graph(lambda x: x.aval.size), r"shape \(None, 3\) holds the batch size \(None\).*prog.specialize\(size\)"),
]
