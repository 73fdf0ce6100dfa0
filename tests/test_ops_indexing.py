"""Indexing: x[key] (basic, and one gather), take, embedding, scatter_add, dropout(train=).

Finite differences of every op are in tests/test_ops.py (its cases ``getitem``,
``getitem_grad``, ``take``, ``embedding``, ``scatter_add``); here: a property test
against NumPy's indexing and a dense 0/1 Jacobian, gradients adding over several
indexings of one value, PyTorch's embedding and indexing with autograd, the
scatter-add kernels against ``np.add.at``, the memory invariants (views, feeds and
outputs), the batch size, and saved plans.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ir import Aval
from graphc.ops import indexing

# --- x[key] against NumPy: values, and J^T c = (0/1 Jacobian)^T c ------------------------


def _entry(draw, length: int | None):
    """One index entry for an axis of ``length`` (None: an entry that consumes no axis)."""
    if length is None:
        return None
    kind = draw(st.sampled_from(["int", "slice", "slice", "array"]))
    if kind == "int":
        return draw(st.integers(-length, length - 1)) if length else slice(None)
    if kind == "array":
        if not length:
            return slice(None)
        return draw(st.lists(st.integers(-length, length - 1), min_size=0, max_size=4))
    bound = st.none() | st.integers(-length - 2, length + 2)
    return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2])))


@st.composite
def shapes_and_keys(draw):
    """A shape of 0 to 3 axes and a key of ints, slices, None, at most one ... and at most one int list."""
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    front = draw(st.integers(0, len(shape)))  # axes the key names before ... (or all it names)
    back = draw(st.integers(0, len(shape) - front)) if draw(st.booleans()) else None  # axes named after ...
    entries = [_entry(draw, n) for n in shape[:front]]
    if back is not None:
        entries += [Ellipsis] + [_entry(draw, n) for n in shape[len(shape) - back:]]
    arrays = [k for k, e in enumerate(entries) if isinstance(e, list)]
    for k in arrays[1:]:
        entries[k] = slice(None)
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    key = tuple(entries) if len(entries) != 1 or draw(st.booleans()) else entries[0]
    return shape, key


def _source_positions(shape, key):
    """For each element of x[key], the flat position in x it comes from (NumPy's own indexing)."""
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[key]


@settings(max_examples=60, deadline=None)
@given(shapes_and_keys())
def test_indexing_matches_numpy_values_and_one_hot_jacobian(case) -> None:
    shape, key = case
    rng = np.random.default_rng(1)
    x_value = rng.standard_normal(shape)
    expected = x_value[key]
    with gc.Graph("index") as g:
        x = gc.input("x", shape, "float64")
        y = x[key]
    assert y.shape == expected.shape
    cot = rng.standard_normal(y.shape)
    (dx,) = gc.grad(y, [x], seed=cot)
    got, got_dx = gc.compile([y, dx]).run({"x": x_value})
    np.testing.assert_array_equal(got, expected)
    positions = _source_positions(shape, key).reshape(-1)
    jacobian = np.zeros((positions.size, x_value.size))
    jacobian[np.arange(positions.size), positions] = 1.0
    np.testing.assert_allclose(got_dx.reshape(-1), jacobian.T @ cot.reshape(-1), rtol=1e-12, atol=1e-12)
    if y.node.op is indexing.getitem_op:
        contiguous = indexing.getitem_keeps_contiguous(x.aval, y.aval, **y.node.attrs)
        assert contiguous == np.ascontiguousarray(x_value)[key].flags.c_contiguous


def test_equal_keys_make_one_canonical_index() -> None:
    """x[0], x[0, :], x[-3] and x[0, ...] are one index; a slice past the end is clipped as NumPy does."""
    with gc.Graph("canonical"):
        x = gc.input("x", (3, 4))
        attrs = {str(k): x[k].node.attrs["index"] for k in [0, (0, slice(None)), -3, (0, Ellipsis)]}
        assert len(set(attrs.values())) == 1
        assert x[1:99].node.attrs == x[1:].node.attrs == x[1:3].node.attrs
        assert x[::-1].node.attrs["index"][0] == (2, None, -1)


def test_gradients_of_several_indexings_of_one_value_add_up() -> None:
    """Fan-out: each read contributes J^T of its own index, and the contributions add."""
    x_value = np.arange(12.0).reshape(4, 3)
    with gc.Graph("fanout"):
        x = gc.input("x", (4, 3), "float64")
        loss = gc.sum(x[1:]) + gc.sum(x[:-1]) + gc.sum(x[1]) + gc.sum(x[:, None, 2]) + gc.sum(x[[0, 0, 3]])
        (dx,) = gc.grad(loss, [x])
    (got,) = gc.compile([dx]).run({"x": x_value})
    expected = np.ones((4, 3)) * 2.0
    expected[0] -= 1.0  # x[1:] misses row 0
    expected[3] -= 1.0  # x[:-1] misses row 3
    expected[1] += 1.0
    expected[:, 2] += 1.0
    expected[0] += 2.0  # gathered twice
    expected[3] += 1.0
    np.testing.assert_array_equal(got, expected)


# --- PyTorch: embedding and indexing with autograd ----------------------------------------


def _torch_vjp(torch, fn, arrays, cot):
    tensors = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(cot))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors if t.requires_grad]


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(padding_idx) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((6, 3))
    tokens = np.array([[2, 5, 2, 0], [1, 2, 5, 5]])
    cot = rng.standard_normal((2, 4, 3))
    with gc.Graph("embedding"):
        w = gc.input("w", (6, 3), "float64")
        t = gc.input("t", (2, 4), "int64")
        y = gc.embedding(t, w, padding_idx=padding_idx)
        (dw,) = gc.grad(y, [w], seed=cot)
    got, got_dw = gc.compile([y, dw]).run({"w": weight, "t": tokens})
    expected, (expected_dw,) = _torch_vjp(
        torch, lambda t_, w_: torch.nn.functional.embedding(t_, w_, padding_idx=padding_idx), [tokens, weight], cot)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got_dw, expected_dw, rtol=1e-13, atol=1e-13)


TORCH_KEYS = [
    (lambda x: x[1], lambda x: x[1]),
    (lambda x: x[:, -1], lambda x: x[:, -1]),
    (lambda x: x[::2, None, 1:], lambda x: x[::2, None, 1:]),
    (lambda x: x[..., None, 0], lambda x: x[..., None, 0]),
    (lambda x: x[[2, 0, 2]], lambda x: x[[2, 0, 2]]),
    (lambda x: x[:, [1, -1, 1]], lambda x: x[:, [1, -1, 1]]),
    (lambda x: x[:, 0, [1, 2]], lambda x: x[:, 0, [1, 2]]),
    (lambda x: x[1:, [[0, 1], [1, 1]]], lambda x: x[1:, [[0, 1], [1, 1]]]),
    (lambda x: gc.take(x, [3, 0, 3], axis=-1), lambda x: torch_take(x, [3, 0, 3], -1)),
    (lambda x: gc.take(x, [[5, 1], [-1, 5]]), lambda x: torch_take(x.reshape(-1), [[5, 1], [23, 5]], 0)),
]


def torch_take(x, indices, dim):
    import torch

    index = torch.tensor(indices)
    picked = torch.index_select(x, dim % x.ndim, index.reshape(-1))
    dim = dim % x.ndim
    return picked.reshape(x.shape[:dim] + index.shape + x.shape[dim + 1:])


@pytest.mark.parametrize("k", range(len(TORCH_KEYS)))
def test_indexing_and_take_match_torch_autograd(k: int) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH_KEYS[k]
    rng = np.random.default_rng(3)
    x_value = rng.standard_normal((3, 2, 4))
    with gc.Graph("torch-index"):
        x = gc.input("x", (3, 2, 4), "float64")
        y = ours(x)
        cot = rng.standard_normal(y.shape)
        (dx,) = gc.grad(y, [x], seed=cot)
    got, got_dx = gc.compile([y, dx]).run({"x": x_value})
    expected, (expected_dx,) = _torch_vjp(torch, theirs, [x_value], cot)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got_dx, expected_dx, rtol=1e-13, atol=1e-13)


# --- scatter_add: both kernels against np.add.at --------------------------------------------


@pytest.mark.parametrize("rows, width, count, padding_idx, sparse", [
    (7, 1, 20, None, False), (50, 128, 96, 3, True), (5, 8, 2000, -1, True), (4, 2, 3, None, False),
    (100, 1, 5000, 0, False),
])
def test_scatter_add_kernel_adds_repeated_indices_as_add_at(rows, width, count, padding_idx, sparse, monkeypatch) -> None:
    """The sparse product (from 4096 elements of g in rows of 8 or more) and np.add.at give the same sums."""
    rng = np.random.default_rng(4)
    indices = rng.integers(-rows, rows, size=count)
    g = rng.standard_normal((count, width))
    expected = np.zeros((rows, width))
    np.add.at(expected, indices, g)
    attrs = indexing._scatter_normalize(Aval(g.shape, g.dtype), Aval(indices.shape, indices.dtype), 0,
                                        (rows, width), padding_idx)
    if attrs["padding_idx"] is not None:
        expected[attrs["padding_idx"]] = 0
    used = []
    product = indexing._scatter_rows
    monkeypatch.setattr(indexing, "_scatter_rows", lambda *a: (used.append(True), product(*a)))
    out = np.full((rows, width), np.nan)
    indexing._scatter_kernel(out, g, indices, **attrs)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert bool(used) == sparse


def test_take_gradient_adds_repeated_indices() -> None:
    with gc.Graph("repeats"):
        a = gc.input("a", (3, 2), "float64")
        (da,) = gc.grad(gc.sum(gc.take(a, [2, 2, 0, 2], axis=0)), [a])
    (got,) = gc.compile([da]).run({"a": np.zeros((3, 2))})
    np.testing.assert_array_equal(got, [[1, 1], [0, 0], [3, 3]])


# --- run-time checks, memory invariants, batch size, saved plans ------------------------------


def test_take_index_out_of_range_is_a_graph_error_naming_op_index_and_axis() -> None:
    with gc.Graph("range"):
        a = gc.input("a", (4, 3))
        i = gc.input("i", (2,), "int64")
        y = gc.take(a, i, axis=1)
    program = gc.compile([y])
    program.run({"a": np.ones((4, 3), np.float32), "i": np.array([-3, 2])})
    with pytest.raises(gc.GraphError, match=r"take.*indices must lie in \[-3, 3\) for axis 1 of length 3.*e\.g\. 3"):
        program.run({"a": np.ones((4, 3), np.float32), "i": np.array([0, 3])})


def test_views_of_feeds_and_outputs_neither_write_feeds_nor_change_earlier_results() -> None:
    """Outputs that are views (of a feed, of another output, of an intermediate read later by an
    in-place op) come back as the caller's arrays: a second run leaves the first results alone."""
    with gc.Graph("views"):
        x = gc.input("x", (4, 3), "float64")
        h = gc.exp(x)
        tail = h[1:]  # read after h's last direct read: h must not be overwritten in place
        doubled = h * 2.0
        outputs = [x[::2, None], h, h[0], gc.sum(doubled[:-1] + tail, axis=1), tail.reshape(-1)]
    program = gc.compile(outputs)
    first_feed = np.arange(12.0).reshape(4, 3) / 10
    kept = first_feed.copy()
    first = program.run({"x": first_feed})
    snapshot = [a.copy() for a in first]
    program.run({"x": -first_feed})
    np.testing.assert_array_equal(first_feed, kept)
    for got, before in zip(first, snapshot):
        np.testing.assert_array_equal(got, before)
    e = np.exp(kept)
    expected = [kept[::2, None], e, e[0], np.sum(2 * e[:-1] + e[1:], axis=1), e[1:].reshape(-1)]
    for got, want in zip(first, expected):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    assert not any(np.shares_memory(got, first_feed) for got in first)


def test_reshape_of_a_strided_index_is_copied() -> None:
    """A strided view is not contiguous: its reshape is planned as a copy, with the right values."""
    with gc.Graph("strided"):
        x = gc.input("x", (4, 6), "float64")
        y = gc.tanh(x)[:, ::2].reshape(-1) * 1.0
    x_value = np.arange(24.0).reshape(4, 6) / 24
    (got,) = gc.compile([y]).run({"x": x_value})
    np.testing.assert_allclose(got, np.tanh(x_value)[:, ::2].reshape(-1), rtol=1e-15)


def test_batch_axis_is_sliced_whole_and_gathered_across() -> None:
    with gc.Graph("batch"):
        x = gc.input("x", (None, 5), "float64")
        j = gc.input("j", (), "int64")
        y = x[:, j] + gc.sum(x[:, 1:3] * x[..., None, 4], axis=1)
        (dx,) = gc.grad(gc.sum(y * y), [x])
    program = gc.compile([y, dx])
    rng = np.random.default_rng(5)
    for rows in (3, 6):
        x_value = rng.standard_normal((rows, 5))
        got, got_dx = program.run({"x": x_value, "j": np.array(-2)})
        expected = x_value[:, -2] + np.sum(x_value[:, 1:3] * x_value[:, None, 4], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-14)
        assert got_dx.shape == (rows, 5)


def test_a_plan_with_indexing_is_saved_and_loaded(tmp_path) -> None:
    with gc.Graph("saved"):
        w = gc.param("w", (5, 3), "float64", init=np.arange(15.0).reshape(5, 3))
        t = gc.input("t", (4,), "int64")
        h = gc.embedding(t, w, padding_idx=0)
        loss = gc.sum(h[::-1, None, 1:] * gc.take(w, [4, 4, 1, 0], axis=0)[..., None, :2]) + gc.sum(h[2])
        (dw,) = gc.grad(loss, [w])
    program = gc.compile([loss, dw])
    path = tmp_path / "index.graphc"
    program.save(path)
    feeds = {"t": np.array([1, 0, 4, 1])}
    for got, want in zip(gc.load(path).run(feeds), program.run(feeds)):
        np.testing.assert_array_equal(got, want)


# --- dropout(train=) and Values that are not sequences ----------------------------------------


def test_dropout_in_evaluation_is_x_itself_and_adds_no_node() -> None:
    with gc.Graph("eval") as g:
        x = gc.input("x", (2, 3))
        step = gc.input("step", (), "int64")
        before = len(g)
        assert gc.dropout(x, step, 0.5, train=False) is x
        assert len(g) == before
        assert gc.dropout(x, step, 0.5, train=True) is not x


def test_iterating_over_a_value_is_a_graph_error_not_a_stream_of_nodes() -> None:
    with gc.Graph("iterate") as g:
        x = gc.input("x", (3,))
        before = len(g)
        with pytest.raises(gc.GraphError, match=r"cannot be iterated.*x\[0\]"):
            list(x)
        assert len(g) == before
