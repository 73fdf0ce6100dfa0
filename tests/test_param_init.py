"""Params initialised by graphc's own initialisers are drawn when first read, not when built."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import graphc as gc
from graphc.ops.source import NormalInit, default_init, glorot_uniform


def _eager(init):
    """The same initialiser wrapped in a plain callable, which graphc runs when the param is built."""
    return lambda shape, dtype, rng: init(shape, dtype, rng)


def test_building_a_large_param_allocates_nothing():
    tracemalloc.start()
    try:
        with gc.Graph("big"):
            gc.param("w", shape=(10_000, 10_000))  # 400 MB if drawn
            gc.param("e", shape=(10_000, 10_000), init=NormalInit(0.02))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("init", [None, default_init, glorot_uniform, NormalInit(0.5, mean=1.0)], ids=["none", "default", "glorot", "normal"])
def test_deferred_value_equals_the_value_drawn_when_built(init):
    with gc.Graph("lazy"):
        lazy = gc.param("w", shape=(3, 4), dtype="float64", init=init)
    with gc.Graph("eager"):
        eager = gc.param("w", shape=(3, 4), dtype="float64", init=_eager(default_init if init is None else init))
    np.testing.assert_array_equal(lazy.value, eager.value)


def test_deferred_param_is_drawn_once_and_updates_stay():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64")
        loss = gc.sum(x @ w)
    prog = gc.compile([loss], updates=gc.sgd(loss, [w], lr=0.5))
    before = w.value
    prog.run({"x": np.ones((2, 3))})
    assert w.node.data is w.node.data
    np.testing.assert_allclose(w.value, before - 0.5 * 2.0)


def test_assign_before_first_read_replaces_the_deferred_draw():
    with gc.Graph("g"):
        w = gc.param("w", shape=(2, 2))
    w.assign(np.full((2, 2), 7.0, np.float32))
    np.testing.assert_array_equal(w.value, np.full((2, 2), 7.0, np.float32))


def test_threads_reading_a_deferred_param_get_one_array():
    with gc.Graph("g"):
        w = gc.param("w", shape=(300, 300))
    seen: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        seen.append(w.node.data)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is seen[0] for a in seen)


def test_normal_init_draws_with_its_mean_and_std():
    with gc.Graph("g"):
        w = gc.param("w", shape=(200, 200), dtype="float64", init=NormalInit(0.02, mean=0.1))
    values = w.value
    assert values.dtype == np.float64
    assert abs(values.mean() - 0.1) < 0.001 and abs(values.std() - 0.02) < 0.001


def test_default_init_of_a_conv_weight_counts_the_kernel_in_its_fans():
    """A conv2d weight (O, C, kH, kW) is Glorot-uniform with torch's fans, C·kH·kW in and
    O·kH·kW out, not the (kH, kW) of its last two axes (which gave U(-1, 1) for 3×3)."""
    with gc.Graph("conv-init"):
        w = gc.param("w", (16, 3, 3, 3), dtype="float64")
    limit = np.sqrt(6.0 / (3 * 9 + 16 * 9))
    assert np.abs(w.value).max() <= limit
    assert np.abs(w.value).max() > 0.9 * limit  # 432 draws reach near the bound
