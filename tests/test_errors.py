"""GraphError: raised early, a ValueError, and naming the node, its op and the shapes.

Each test asserts on the key facts a reader needs (op name, node name, shapes,
dtypes), not on the full wording.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _raises(fn, *fragments):
    """Call ``fn``; it must raise GraphError (a ValueError) whose message holds every fragment."""
    with pytest.raises(gc.GraphError) as info:
        fn()
    err = info.value
    assert isinstance(err, ValueError)
    message = str(err)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return err


def test_graph_error_is_a_value_error():
    assert issubclass(gc.GraphError, ValueError)


# --- at build time ------------------------------------------------------------------------


def test_matmul_shape_mismatch_names_op_operands_and_shapes():
    with gc.Graph("mm"):
        a = gc.input("a", shape=(8, 4))
        b = gc.input("b", shape=(5, 4))
        err = _raises(lambda: a @ b, "matmul", "'a'", "'b'", "(8, 4)", "(5, 4)")
        _raises(lambda: gc.matmul(a, b, name="proj"), "matmul", "proj", "(8, 4)", "(5, 4)")
    # Raised by graphc's shape rule, not by NumPy: no chained NumPy exception.
    assert err.__cause__ is None and err.__suppress_context__


def test_non_broadcastable_add():
    with gc.Graph("bcast") as g:
        a = gc.input("a", shape=(8, 4))
        b = gc.input("b", shape=(5, 4))
        n = len(g.nodes)
        _raises(lambda: a + b, "add", "'a'", "'b'", "(8, 4)", "(5, 4)", "broadcast")
        _raises(lambda: gc.mul(a, gc.input("c", shape=(4, 1))), "mul", "(8, 4)", "(4, 1)")
    assert len(g.nodes) == n + 1  # only the input c: failed ops leave no node behind


def test_dtype_mismatch_float32_plus_float64():
    with gc.Graph("dtypes"):
        a = gc.input("a", shape=(3,))
        b = gc.input("b", shape=(3,), dtype="float64")
        _raises(lambda: a + b, "add", "float32", "float64", "'a'", "'b'")
        _raises(lambda: a @ gc.input("m", shape=(3, 2), dtype="float64"), "matmul", "float32", "float64")


def test_python_scalars_and_arrays_take_the_values_dtype():
    """Constants are weakly typed (as in JAX): no dtype error for a + 1.0 or a * float64 array."""
    with gc.Graph("weak"):
        a = gc.input("a", shape=(3,))
        y = a * np.array([1.0, 2.0, 3.0]) + 1.0
    assert y.dtype == np.float32


def test_int_values_are_not_arithmetic_operands():
    with gc.Graph("ints"):
        labels = gc.input("labels", shape=(4,), dtype="int64")
        _raises(lambda: gc.tanh(labels), "tanh", "int64", "'labels'")


def test_bad_axis():
    with gc.Graph("axis"):
        a = gc.input("a", shape=(8, 4))
        _raises(lambda: gc.sum(a, axis=2), "sum", "axis 2", "'a'", "(8, 4)")
        _raises(lambda: gc.mean(a, axis=-3), "mean", "axis -3", "(8, 4)")
        _raises(lambda: gc.softmax(a, axis=5), "softmax", "axis 5")
        _raises(lambda: gc.max(a, axis=(1, 1)), "max", "axis")
        _raises(lambda: gc.transpose(a, (0, 0)), "transpose", "(0, 0)")


def test_reshape_to_the_wrong_size():
    with gc.Graph("reshape"):
        a = gc.input("a", shape=(8, 4))
        _raises(lambda: gc.reshape(a, (5, 7)), "reshape", "(8, 4)", "(5, 7)", "'a'")
        _raises(lambda: gc.reshape(a, (5, -1)), "reshape", "(5, -1)")
        _raises(lambda: gc.reshape(a, (-1, -1)), "reshape", "-1")


def test_other_shape_rules():
    with gc.Graph("shapes"):
        a = gc.input("a", shape=(8, 4))
        b = gc.input("b", shape=(5, 4))
        _raises(lambda: gc.broadcast_to(a, (3, 4)), "broadcast_to", "(8, 4)", "(3, 4)")
        _raises(lambda: gc.concat([a, b], axis=1), "concat", "(8, 4)", "(5, 4)")
        bad_labels = gc.input("labels", shape=(4,), dtype="int64")
        _raises(lambda: gc.softmax_cross_entropy(a, bad_labels), "softmax_cross_entropy", "(4,)", "(8, 4)")
        float_labels = gc.input("flabels", shape=(8,))
        _raises(lambda: gc.softmax_cross_entropy(a, float_labels), "softmax_cross_entropy", "float32")


def test_bad_sources():
    with gc.Graph("sources"):
        gc.input("x", shape=(2,))
        _raises(lambda: gc.input("x", shape=(3,)), "'x'", "already")
        _raises(lambda: gc.param("x", shape=(3,)), "'x'", "already")
        _raises(lambda: gc.input("h", shape=(2,), dtype="float16"), "'h'", "float16")
        _raises(lambda: gc.input("neg", shape=(2, -1)), "'neg'", "negative")
        _raises(lambda: gc.param("p", shape=(2, 3), init=np.ones((3, 2))), "'p'", "(3, 2)", "(2, 3)")


def test_mixing_two_graphs():
    with gc.Graph("first"):
        a = gc.input("a", shape=(3,))
    with gc.Graph("second"):
        b = gc.input("b", shape=(3,))
        _raises(lambda: a + b, "'first'", "'second'")
    _raises(lambda: gc.compile([gc.sum(a), gc.sum(b)]), "'first'", "'second'")
    _raises(lambda: gc.grad(gc.sum(a), b), "'first'", "'second'")


def test_input_outside_a_graph():
    _raises(lambda: gc.input("x", shape=(3,)), "no graph is open", "gc.Graph")
    _raises(lambda: gc.param("w", shape=(3,)), "no graph is open")
    _raises(lambda: gc.constant(1.0), "no graph is open")


def test_values_have_no_truth_value():
    with gc.Graph("bool"):
        a = gc.input("a", shape=(3,))
    total = gc.sum(a)
    _raises(lambda: bool(total), "symbolic", total.name)


# --- grad ---------------------------------------------------------------------------------


def test_non_scalar_grad_without_seed():
    with gc.Graph("grad"):
        x = gc.input("x", shape=(8, 4))
        y = gc.tanh(x, name="activations")
    _raises(lambda: gc.grad(y, x), "'activations'", "tanh", "(8, 4)", "seed")


def test_grad_wrt_int_input():
    with gc.Graph("grad-int"):
        logits = gc.input("logits", shape=(3, 2))
        labels = gc.input("labels", shape=(3,), dtype="int64")
        loss = gc.softmax_cross_entropy(logits, labels)
    _raises(lambda: gc.grad(loss, [logits, labels]), "'labels'", "int64")


_no_vjp = gc.defop(
    "test_errors_square_without_vjp",
    infer=lambda x: x,
    kernel=lambda out, x: np.multiply(x, x, out=out),
)
_bad_vjp = gc.defop(
    "test_errors_square_with_bad_vjp",
    infer=lambda x: x,
    kernel=lambda out, x: np.multiply(x, x, out=out),
    vjp=[lambda g, y, x: gc.sum(g * x)],  # wrong: a scalar for a (3,) operand
)


def test_differentiating_through_an_op_without_vjp_names_it():
    with gc.Graph("novjp"):
        x = gc.input("x", shape=(3,))
        y = gc.sum(_no_vjp(x))
    _raises(lambda: gc.grad(y, x), "test_errors_square_without_vjp", "'x'")
    # The forward pass itself is fine.
    np.testing.assert_allclose(gc.compile(y).run({"x": np.array([1, 2, 3], np.float32)}), 14.0)


def test_a_vjp_of_the_wrong_shape_is_caught_at_the_op():
    with gc.Graph("badvjp"):
        x = gc.input("x", shape=(3,))
        y = gc.sum(_bad_vjp(x))
    _raises(lambda: gc.grad(y, x), "test_errors_square_with_bad_vjp", "VJP", "(3,)")


# --- at run time ------------------------------------------------------------------------


@pytest.fixture
def program():
    with gc.Graph("run"):
        x = gc.input("x", shape=(8, 4))
        labels = gc.input("labels", shape=(8,), dtype="int64")
        w = gc.param("w", shape=(4, 3))
        loss = gc.softmax_cross_entropy(x @ w, labels)
    return gc.compile([loss, gc.grad(loss, w)])


def _feeds(**override):
    feeds = {"x": np.zeros((8, 4), np.float32), "labels": np.zeros(8, np.int64)}
    feeds.update(override)
    return feeds


def test_missing_feed(program):
    feeds = _feeds()
    del feeds["labels"]
    _raises(lambda: program.run(feeds), "'labels'", "(8,)", "not fed")


def test_unknown_feed_name(program):
    _raises(lambda: program.run(_feeds(z=np.zeros(3))), "'z'", "x", "labels", "w")


def test_wrong_shape_feed(program):
    _raises(lambda: program.run(_feeds(x=np.zeros((4, 8), np.float32))), "'x'", "(4, 8)", "(8, 4)")
    _raises(lambda: program.run(_feeds(w=np.zeros((3, 4), np.float32))), "'w'", "(3, 4)", "(4, 3)")


def test_wrong_dtype_feed(program):
    _raises(lambda: program.run(_feeds(x=np.zeros((8, 4)))), "'x'", "float64", "float32")
    _raises(lambda: program.run(_feeds(labels=np.zeros(8, np.int32))), "'labels'", "int32", "int64")


def test_a_failed_run_leaves_the_program_usable(program):
    with pytest.raises(gc.GraphError):
        program.run(_feeds(x=np.zeros((8, 5), np.float32)))
    loss, dw = program.run(_feeds())
    np.testing.assert_allclose(loss, np.log(3), rtol=1e-6)


# --- compile options ------------------------------------------------------------------------


def test_compile_argument_errors():
    with gc.Graph("opts"):
        x = gc.input("x", shape=(3,))
        w = gc.param("w", shape=(3,))
        v = gc.param("v", shape=(2,))
        y = gc.sum(x * w)
    _raises(lambda: gc.compile([]), "at least one output")
    _raises(lambda: gc.compile(y, remat="no-such-policy"), "no-such-policy")
    _raises(lambda: gc.compile([y, 3.0]), "float")
    _raises(lambda: gc.compile(y, updates={x: x * 2.0}), "'x'", "not a param")
    _raises(lambda: gc.compile(y, updates={v: w}), "'v'", "(2,)", "(3,)")
    _raises(lambda: gc.compile(y, updates=[(w, w * 0.5), (w, w * 2.0)]), "twice")


# --- shape rules agree with NumPy on what they accept ---------------------------------------

import warnings  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

_SHAPES = st.lists(st.integers(0, 3), max_size=4).map(tuple)
_AXES = st.one_of(st.none(), st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=4).map(tuple))


def _numpy_shape(fn):
    """The shape NumPy's ``fn()`` gives, or None when NumPy rejects the arguments."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the mean of an empty array warns
            return fn().shape
    except ValueError:  # AxisError is a ValueError
        return None


def _graphc_shape(fn):
    """The shape graphc gives, or None when it raises GraphError (any other exception fails the test)."""
    try:
        return fn().shape
    except gc.GraphError:
        return None


def _input(shape):
    with gc.Graph("law"):
        return gc.input("x", shape, "float64")


@settings(max_examples=150, deadline=None)
@given(shape=_SHAPES, axis=_AXES, keepdims=st.booleans())
def test_reductions_accept_exactly_the_axes_numpy_accepts(shape, axis, keepdims):
    """np.mean is the oracle: np.sum and np.max also take axis 0 of a 0-d array, np.mean does not."""
    x = _input(shape)
    expected = _numpy_shape(lambda: np.mean(np.zeros(shape), axis=axis, keepdims=keepdims))
    for reduction in (gc.sum, gc.mean, gc.max):
        assert _graphc_shape(lambda: reduction(x, axis=axis, keepdims=keepdims)) == expected


@settings(max_examples=150, deadline=None)
@given(shape=_SHAPES, axes=st.one_of(st.none(), st.lists(st.integers(-5, 5), max_size=4).map(tuple)))
def test_transpose_accepts_exactly_the_permutations_numpy_accepts(shape, axes):
    assert _graphc_shape(lambda: gc.transpose(_input(shape), axes)) == _numpy_shape(
        lambda: np.transpose(np.zeros(shape), axes)
    )


@settings(max_examples=150, deadline=None)
@given(shape=_SHAPES, target=st.lists(st.integers(-1, 4), max_size=4).map(tuple))
def test_reshape_and_broadcast_to_accept_exactly_what_numpy_accepts(shape, target):
    """(NumPy reads any negative reshape dimension as -1; graphc accepts -1 only.)"""
    x, ref = _input(shape), np.zeros(shape)
    assert _graphc_shape(lambda: gc.reshape(x, target)) == _numpy_shape(lambda: ref.reshape(target))
    assert _graphc_shape(lambda: gc.broadcast_to(x, target)) == _numpy_shape(lambda: np.broadcast_to(ref, target))
