"""Bad inputs of a run (feeds, labels, stored params, updates): each a GraphError.

``CASES_RUNTIME`` joins the bad-input catalogue: (id, thunk that must raise GraphError,
regex the message must match). The graphs are built inside the thunks.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def _mlp_program(**compile_args):
    with gc.Graph("bad-run") as g:
        x = gc.input("x", shape=(2, 3), dtype="float64")
        y = gc.input("y", shape=(2,), dtype="int64")
        w = gc.param("w", shape=(3, 4), dtype="float64", init=np.ones((3, 4)))
        loss = gc.softmax_cross_entropy(x @ w, y)
    return gc.compile(loss, **compile_args), g, x, w, loss


def _run(feeds):
    prog, *_ = _mlp_program()
    return prog.run(feeds)


def _good(**changes):
    feeds = {"x": np.zeros((2, 3)), "y": np.array([0, 3])}
    feeds.update(changes)
    return feeds


def _run_with_value_key():
    prog, _, x, _, _ = _mlp_program()
    return prog.run({x: np.zeros((2, 3)), "y": np.array([0, 1])})


def _run_with_value_fed():
    prog, _, x, _, _ = _mlp_program()
    return prog.run({"x": x, "y": np.array([0, 1])})


def _one_hot_run(labels):
    with gc.Graph("bad-one-hot"):
        y = gc.input("y", shape=(3,), dtype="int64")
        out = gc.one_hot(y, 4)
    return gc.compile(out).run({"y": np.array(labels)})


def _compile_with_stored(stored):
    prog, g, x, w, loss = _mlp_program()
    w.node.data = stored
    return gc.compile(loss)


def _program_with_stored(stored):
    prog, *_ = _mlp_program()
    return gc.Program(prog.plan, {"w": stored})


def _two_param_update(spoil):
    with gc.Graph("bad-update"):
        w1 = gc.param("w1", shape=(3,), dtype="float64", init=np.ones(3))
        w2 = gc.param("w2", shape=(3,), dtype="float64", init=np.ones(3))
        loss = gc.sum(w1 * w2)
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, w2], 0.1))
    spoil(w2)
    return prog.run()


def _make_read_only(w):
    w.node.data.flags.writeable = False


def _replace_stored(w):
    w.node.data = np.zeros(3)


CASES_RUNTIME = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("run-feeds-list", lambda: _run([np.zeros((2, 3))]), r"feeds must be a mapping.*list"),
    ("run-feeds-array", lambda: _run(np.zeros((2, 3))), r"feeds must be a mapping.*ndarray"),
    ("run-feeds-string", lambda: _run("x"), r"feeds must be a mapping.*str"),
    ("run-feeds-value-key", _run_with_value_key, r"keyed by name: use \{'x': \.\.\.\}"),
    ("run-feeds-int-key", lambda: _run({0: np.zeros((2, 3))}), r"feed key 0 is a int.*name"),
    ("run-feed-is-a-value", _run_with_value_fed, r"feed 'x'.*graph Value.*NumPy array"),
    ("run-feed-ragged-list", lambda: _run(_good(x=[[1.0, 2.0, 3.0], [1.0]])), r"feed 'x'.*rectangular"),
    ("run-feed-object-dtype", lambda: _run(_good(x=np.zeros((2, 3), dtype=object))), r"feed 'x'.*dtype object"),
    ("run-feed-string-values", lambda: _run(_good(x=np.full((2, 3), "a"))), r"feed 'x'.*dtype str"),
    ("run-feed-none-value", lambda: _run(_good(x=None)), r"feed 'x'.*dtype object"),
    ("run-feed-complex", lambda: _run(_good(x=np.zeros((2, 3), complex))), r"feed 'x'.*complex128"),
    ("run-feed-int-for-float", lambda: _run(_good(x=np.zeros((2, 3), int))), r"feed 'x'.*int64.*np\.asarray\(value, dtype=np\.float64\)"),
    ("run-feed-float32-for-float64", lambda: _run(_good(x=np.zeros((2, 3), np.float32))), r"feed 'x'.*float32.*dtype=np\.float64"),
    ("run-feed-wrong-shape", lambda: _run(_good(x=np.zeros((3, 2)))), r"feed 'x'.*shape \(3, 2\).*\(2, 3\)"),
    ("run-feed-missing", lambda: _run({"y": np.array([0, 1])}), r"input 'x'.*needed but was not fed"),
    ("run-feed-unknown-name", lambda: _run(_good(z=np.zeros(1))), r"'z' names no input or param"),
    ("run-fed-param-wrong-shape", lambda: _run(_good(w=np.ones((4, 3)))), r"feed 'w'.*param.*\(4, 3\)"),
    ("run-labels-negative", lambda: _run(_good(y=np.array([0, -1]))), r"softmax_cross_entropy.*\[0, 4\) for 4 classes.*-1"),
    ("run-labels-out-of-range", lambda: _run(_good(y=np.array([4, 0]))), r"softmax_cross_entropy.*\[0, 4\) for 4 classes.*4"),
    ("run-labels-float", lambda: _run(_good(y=np.array([0.0, 1.0]))), r"feed 'y'.*float64.*dtype=np\.int64"),
    ("run-labels-fractional", lambda: _run(_good(y=np.array([0.5, 1.0]))), r"feed 'y'.*non-integral"),
    ("run-labels-nan", lambda: _run(_good(y=np.array([np.nan, 1.0]))), r"feed 'y'.*NaN"),
    ("run-labels-int32-for-int64", lambda: _run(_good(y=np.array([0, 1], np.int32))), r"feed 'y'.*int32.*np\.int64"),
    ("run-one-hot-negative", lambda: _one_hot_run([0, -2, 1]), r"one_hot.*\[0, 4\) for 4 classes.*-2"),
    ("run-one-hot-out-of-range", lambda: _one_hot_run([0, 9, 1]), r"one_hot.*\[0, 4\) for 4 classes.*9"),
    ("stored-param-wrong-shape", lambda: _compile_with_stored(np.ones((1, 3, 4))), r"param 'w'.*\(1, 3, 4\).*\(3, 4\)"),
    ("stored-param-wrong-dtype", lambda: _compile_with_stored(np.ones((3, 4), np.float32)), r"param 'w'.*float32.*float64"),
    ("stored-param-not-an-array", lambda: _compile_with_stored([[1.0] * 4] * 3), r"param 'w'.*list, not a NumPy array"),
    ("program-stored-param-wrong-shape", lambda: _program_with_stored(np.ones((1, 4))), r"param 'w'.*\(1, 4\)"),
    ("update-read-only-param", lambda: _two_param_update(_make_read_only), r"param 'w2'.*read-only.*no param was written"),
    ("update-replaced-param", lambda: _two_param_update(_replace_stored), r"param 'w2'.*replaced.*assign"),
    ("compile-check-numerics-not-bool", lambda: _mlp_program(check_numerics="yes"), r"check_numerics.*True or False"),
]
