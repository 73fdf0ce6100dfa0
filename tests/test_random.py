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
