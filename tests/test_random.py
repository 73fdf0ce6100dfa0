"""graphc.ops.random: draws are a pure function of (key, stream)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _draws(dtype: str = "float32", shape=(1000,)):
    with gc.Graph("draws"):
        step = gc.input("step", (), "int64")
        first, second = gc.uniform(step, shape, dtype), gc.uniform(step, shape, dtype)
    return gc.compile([first, second])


def test_same_key_same_numbers_new_key_new_numbers():
    prog = _draws()
    a1, b1 = prog.run({"step": np.int64(7)})
    a2, b2 = prog.run({"step": np.int64(7)})
    a3, _ = prog.run({"step": np.int64(8)})
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)  # two nodes, two streams (CSE does not merge them)
    assert not np.array_equal(a1, a3)
    assert 0.0 <= a1.min() and a1.max() < 1.0 and abs(a1.mean() - 0.5) < 0.05


def test_float32_draws_are_the_float64_draws_rounded():
    a32, _ = _draws("float32").run({"step": np.int64(3)})
    a64, _ = _draws("float64").run({"step": np.int64(3)})
    assert a32.dtype == np.float32 and a64.dtype == np.float64
    np.testing.assert_array_equal(a32, np.minimum(a64, np.nextafter(np.float32(1), np.float32(0))).astype(np.float32))


def test_dropout_keeps_about_one_minus_rate_and_scales():
    with gc.Graph("dropout"):
        x = gc.input("x", (200, 50), "float64")
        step = gc.input("step", (), "int32")
        y = gc.dropout(x, step, 0.25)
    out = gc.compile(y).run({"x": np.ones((200, 50)), "step": np.int32(1)})
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(out[kept], 1 / 0.75)


@pytest.mark.parametrize(("key_dtype", "shape", "message"), [
    ("float32", (), "key must be an int32 or int64 scalar"),
    ("int64", (2,), "key must be an int32 or int64 scalar"),
])
def test_bad_keys_are_graph_errors(key_dtype, shape, message):
    with gc.Graph("bad"):
        key = gc.input("key", shape, key_dtype)
        with pytest.raises(gc.GraphError, match=message):
            gc.uniform(key, (3,))


def test_bad_dropout_rates_are_graph_errors():
    with gc.Graph("bad"):
        x = gc.input("x", (3,))
        key = gc.input("key", (), "int64")
        for rate in (-0.1, 1.0):
            with pytest.raises(gc.GraphError, match="rate must be in"):
                gc.dropout(x, key, rate)


# --- a random node belongs to its operands' graph -------------------------------------


def _two_dropouts_of(graph_name: str):
    with gc.Graph(graph_name) as g:
        x = gc.input("x", (64,), "float64")
        step = gc.input("step", (), "int64")
    return g, x, step


def test_dropouts_built_while_another_graph_is_open_get_distinct_streams():
    g, x, step = _two_dropouts_of("a")
    with gc.Graph("b"):
        first, second = gc.dropout(x, step, 0.5), gc.dropout(x, step, 0.5)
    streams = [n.attrs["stream"] for n in g.nodes if n.op_name == "uniform"]
    assert len(streams) == 2 and streams[0] != streams[1]
    a, b = gc.compile([first, second]).run({"x": np.ones(64), "step": np.int64(5)})
    assert not np.array_equal(a, b)  # not merged by CSE: two masks


def test_uniform_built_while_another_graph_is_open_belongs_to_the_keys_graph():
    g, x, step = _two_dropouts_of("a")
    with gc.Graph("b") as other:
        u = gc.uniform(step, (3,))
    assert u.graph is g and len(other.nodes) == 0
    assert u.node.attrs["stream"] == u.node.id


def test_dropout_outside_a_with_block_works_like_every_other_op():
    g, x, step = _two_dropouts_of("a")
    first, second = gc.dropout(x, step, 0.5), gc.dropout(x, step, 0.5)
    u = gc.uniform(step, (4,))
    assert first.graph is g and u.graph is g
    a, b, draws = gc.compile([first, second, u]).run({"x": np.ones(64), "step": np.int64(1)})
    assert not np.array_equal(a, b) and draws.shape == (4,)


def test_dropout_with_a_python_int_key_uses_the_graph_of_x():
    g, x, _ = _two_dropouts_of("a")
    with gc.Graph("b") as other:
        y = gc.dropout(x, 7, 0.5)
    assert y.graph is g and len(other.nodes) == 0
    out = gc.compile(y).run({"x": np.ones(64)})
    assert set(np.unique(out)) <= {0.0, 2.0}


def test_an_explicit_stream_is_kept():
    _, _, step = _two_dropouts_of("a")
    u, v = gc.uniform(step, (8,), stream=3), gc.uniform(step, (8,), stream=3)
    assert u.node.attrs["stream"] == v.node.attrs["stream"] == 3
    a, b = gc.compile([u, v]).run({"step": np.int64(2)})
    np.testing.assert_array_equal(a, b)
