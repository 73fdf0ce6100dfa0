"""Long graphs: every pass must be a loop, never a recursion.

A 10,000-node forward chain (ten times the recursion limit) is differentiated
and compiled (the adjoint graph more than doubles it), and a 10⁵-node forward
graph is compiled. Any pass that
recursed over the graph would raise RecursionError at Python's default limit
(1000). The compile times are printed (``pytest -s``) and recorded as test
properties; they are measurements, not assertions (``benchmarks/scale.py`` fits them).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
import graphc.validate
from graphc import zoo
from graphc.memory.analysis import Interval
from graphc.memory import placement
from graphc.memory.placement import _by_start, _place, best_fit_by_start, first_fit_by_start



def _report(record_property, key: str, line: str) -> None:
    """A measurement: printed, and kept in the test report (never asserted)."""
    print("\n" + line)
    record_property(key, line)


@pytest.fixture(autouse=True)
def default_recursion_limit():
    """Python's default limit, whatever a plugin set: a recursive pass over 10⁴ nodes fails."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(before)


@pytest.fixture(autouse=True)
def without_plan_validation(monkeypatch):
    """Scale is what these tests check; the validator, which doubles a compile's time here,
    checks the plans of every other test file."""
    monkeypatch.setattr(graphc.validate, "VALIDATE_PLANS", False)


def _chain(n_nodes: int, width: int = 4):
    """x ← tanh(x·½ + c), repeated until the graph holds ``n_nodes`` forward nodes."""
    with gc.Graph("chain") as g:
        x0 = gc.input("x", shape=(width,), dtype="float64")
        c = gc.param("c", shape=(width,), dtype="float64", init=np.linspace(-0.2, 0.2, width))
        half = gc.constant(0.5, dtype="float64")
        x, steps = x0, 0
        while len(g.nodes) < n_nodes - 2:
            x = gc.tanh(x * half + c)
            steps += 1
        loss = gc.sum(x * x)
    return g, x0, c, loss, steps


def _numpy_chain(X0, C, steps):
    """Forward by the recurrence, backward by hand: x_{k+1} = tanh(x_k/2 + c)."""
    xs = [X0]
    for _ in range(steps):
        xs.append(np.tanh(xs[-1] * 0.5 + C))
    loss = np.sum(xs[-1] ** 2)
    g = 2 * xs[-1]
    dc = np.zeros_like(C)
    for k in range(steps, 0, -1):
        dz = g * (1 - xs[k] ** 2)  # through tanh
        dc += dz
        g = dz * 0.5  # through x·½
    return loss, dc, g


def test_10k_node_chain_builds_grads_and_compiles(record_property):
    t0 = time.perf_counter()
    g, x0, c, loss, steps = _chain(10_000)
    n_forward = len(g.nodes)
    assert n_forward >= 10_000
    t1 = time.perf_counter()
    dc, dx0 = gc.grad(loss, [c, x0])
    t2 = time.perf_counter()
    prog = gc.compile([loss, dc, dx0])
    t3 = time.perf_counter()
    X0 = np.linspace(-1, 1, 4)
    got_loss, got_dc, got_dx0 = prog.run({"x": X0})
    t4 = time.perf_counter()

    ref_loss, ref_dc, ref_dx0 = _numpy_chain(X0, c.value, steps)
    np.testing.assert_allclose(got_loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(got_dc, ref_dc, rtol=1e-10)
    np.testing.assert_allclose(got_dx0, ref_dx0, rtol=1e-10, atol=1e-300)
    assert prog.cost.forward_flops > 0 and prog.cost.backward_flops > 0
    _report(
        record_property, "compile_time",
        f"10k-node chain ({n_forward} forward nodes, {len(g.nodes)} with the adjoint, "
        f"{len(prog.plan.instructions)} instructions): build {t1 - t0:.2f} s, grad {t2 - t1:.2f} s, "
        f"compile {t3 - t2:.2f} s, first run {t4 - t3:.3f} s"
    )


def test_1e5_node_forward_graph_compiles(record_property):
    """10⁵ forward nodes, compiled and run without gradients."""
    width = 8
    with gc.Graph("wide-chain") as g:
        x = gc.input("x", shape=(width,), dtype="float64")
        c = gc.param("c", shape=(width,), dtype="float64", init=np.full(width, 0.01))
        half = gc.constant(0.5, dtype="float64")
        h, steps = x, 0
        while len(g.nodes) < 100_000 - 2:
            h = gc.tanh(h * half + c)
            steps += 1
        y = gc.sum(h)
    assert len(g.nodes) >= 100_000
    t0 = time.perf_counter()
    prog = gc.compile(y)
    t1 = time.perf_counter()
    X = np.linspace(-2, 2, width)
    got = prog.run({"x": X})
    ref = X.copy()
    for _ in range(steps):
        ref = np.tanh(ref * 0.5 + 0.01)
    np.testing.assert_allclose(got, ref.sum(), rtol=1e-12)
    assert len(prog.plan.instructions) == len(g.nodes) - 3  # every op but x, c, ½
    _report(record_property, "compile_time", f"1e5-node forward graph ({len(g.nodes)} nodes): compile {t1 - t0:.2f} s")


@pytest.mark.parametrize("depth", [1500])
def test_deep_nested_gradient_of_gradient(depth):
    """A second derivative through a 1500-step chain: the adjoint of an adjoint graph."""
    with gc.Graph("deep2") as g:
        x = gc.input("x", shape=(2,), dtype="float64")
        h = x
        for _ in range(depth):
            h = gc.tanh(h) * 0.999
        y = gc.sum(h)
    d1 = gc.grad(y, x)
    d2 = gc.grad(gc.sum(d1), x)
    X = np.array([0.3, -0.2])
    got = gc.compile(d2).run({"x": X})
    # d/dx Σ ∂y/∂x, by forward-mode dual numbers in NumPy: (h, h', h'').
    h, dh, ddh = X.copy(), np.ones(2), np.zeros(2)
    for _ in range(depth):
        t = np.tanh(h)
        s = 1 - t**2
        h, dh, ddh = 0.999 * t, 0.999 * s * dh, 0.999 * (s * ddh - 2 * t * s * dh**2)
    np.testing.assert_allclose(got, ddh, rtol=1e-9, atol=1e-300)
    assert len(g.nodes) > 4 * depth


# --- placement: the by-start strategies are a sweep, not a scan ---------------------------------

_intervals = st.lists(
    st.tuples(
        st.integers(0, 40),  # start
        st.integers(0, 12),  # length in steps
        st.sampled_from([1, 8, 63, 64, 65, 128, 200, 1000, 4096]),  # bytes
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(_intervals, st.booleans())
def test_by_start_sweep_places_every_block_where_the_scan_does(items, best):
    """The sweep's offsets equal those of ``_Placed.fit`` checking each block against every placed one."""
    intervals = [Interval(k, nbytes, start, start + length) for k, (start, length, nbytes) in enumerate(items)]
    scanned = _place(intervals, key=_by_start, best=best)
    swept = best_fit_by_start(intervals) if best else first_fit_by_start(intervals)
    assert swept == scanned


def test_by_start_placement_of_a_zero_byte_block_matches_the_scan():
    """A zero-byte block may sit between two others; the scan is used then, and gives the same answer."""
    intervals = [Interval("a", 64, 0, 3), Interval("empty", 0, 1, 2), Interval("b", 128, 1, 3), Interval("c", 64, 2, 3)]
    for best in (True, False):
        placed = best_fit_by_start(intervals) if best else first_fit_by_start(intervals)
        assert placed == _place(intervals, key=_by_start, best=best)


def test_auto_placement_above_the_greedy_limit_never_scans_placed_blocks(monkeypatch):
    """Above GREEDY_BY_SIZE_MAX_BLOCKS, "auto" places blocks by the sweeps alone: no block is
    compared with every placed block (the quadratic scan that made 10⁵-node compiles take minutes)."""

    def quadratic_scan(*args, **kwargs):
        raise AssertionError("a block was placed by scanning every placed block")

    g, values = zoo.random_dag(60, width=4, batch=2)
    outputs = zoo.training_outputs(values)
    reference = gc.compile(outputs, memory="best-fit-by-start")
    monkeypatch.setattr(placement, "GREEDY_BY_SIZE_MAX_BLOCKS", 10)
    monkeypatch.setattr(placement._Placed, "fit", quadratic_scan)
    prog = gc.compile(outputs)
    assert len(prog.memory.intervals) > 10
    assert prog.memory.strategy in ("best-fit-by-start", "first-fit-by-start")
    assert prog.memory.strategy_bytes.keys() == {"best-fit-by-start", "first-fit-by-start"}
    assert prog.memory.planned_bytes <= reference.memory.planned_bytes
    with pytest.raises(AssertionError, match="scanning"):
        gc.compile(outputs, memory="greedy-by-size")


# --- work per node: counted, not timed ---------------------------------------------------------


def _calls_to_differentiate_and_compile(layers: int) -> tuple[int, int]:
    """(graph nodes, Python and C function calls made by grad + compile of ``zoo.chain(layers)``)."""
    g, values = zoo.chain(layers, width=4, batch=2)
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        gc.compile(zoo.training_outputs(values))
    finally:
        sys.setprofile(None)
    return len(g), calls


def test_grad_and_compile_make_a_number_of_calls_linear_in_the_graph():
    """About four times the nodes, at most 1.1 times as many calls per node: no pass loops
    over the graph once per node. (A loop inside NumPy is one call; the placement's is
    guarded above.)"""
    small_nodes, small_calls = _calls_to_differentiate_and_compile(25)
    large_nodes, large_calls = _calls_to_differentiate_and_compile(100)
    assert large_nodes > 3.5 * small_nodes
    assert large_calls / large_nodes <= 1.1 * small_calls / small_nodes, (small_calls, large_calls)
