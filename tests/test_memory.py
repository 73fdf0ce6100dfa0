"""The memory planner: liveness, in-place reuse, arena placement, and the runtime's allocations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import zoo
from graphc.memory.analysis import Interval, align
from graphc.memory.placement import _Placed, arena_bytes, greedy_by_size
from graphc.plan import TEMP
from graphc.validate import validate

from allocation import run_peak


def _seed_training_program(**kwargs) -> tuple[gc.Program, dict]:
    g, v = zoo.seed_dag()
    dw1, dw2 = gc.grad(v["loss"], [v["w1"], v["w2"]])
    prog = gc.compile([v["loss"], dw1, dw2], **kwargs)
    return prog, {"x": np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)}


# --- the validator catches unsafe plans ------------------------------------------------------


def test_validator_accepts_the_compiled_plan():
    prog, _ = _seed_training_program()
    validate(prog.plan)


def test_validator_rejects_two_live_buffers_at_one_offset():
    prog, _ = _seed_training_program(memory="no-reuse")
    plan = prog.plan
    temps = [b for b in plan.buffers if b.kind == TEMP]
    a, b = temps[1], temps[2]  # x1 = tanh(z1), then s2 = x + x1: x1 is read again later
    plan.buffers[b.id] = dataclasses.replace(b, offset=a.offset)
    with pytest.raises(gc.GraphError, match="share memory while both are live"):
        validate(plan)


def test_validator_rejects_a_write_into_a_param():
    prog, _ = _seed_training_program()
    plan = prog.plan
    param = next(b for b in plan.buffers if b.kind == "param")
    k = next(i for i, ins in enumerate(plan.instructions) if ins.mode == "kernel")
    plan.instructions[k] = dataclasses.replace(plan.instructions[k], out=param.id)
    with pytest.raises(gc.GraphError, match="an update is an elementwise kernel"):
        validate(plan)


def test_validator_rejects_a_read_before_its_write():
    prog, _ = _seed_training_program()
    plan = prog.plan
    plan.instructions.reverse()
    with pytest.raises(gc.GraphError, match="before anything writes it"):
        validate(plan)


# --- placement --------------------------------------------------------------------------------


def test_a_gap_at_the_start_of_the_arena_is_used():
    # Largest first puts A at 0 and C above it; B, live only after A dies, fits below C.
    a = Interval("A", 128, 0, 1)
    c = Interval("C", 64, 0, 3)
    b = Interval("B", 64, 2, 3)
    offsets = greedy_by_size([a, b, c])
    assert offsets == {"A": 0, "C": 128, "B": 0}
    assert arena_bytes([a, b, c], offsets) == 192


def test_best_fit_takes_the_tightest_gap_and_first_fit_the_lowest():
    placed = _Placed(8)
    for key, offset in (("low", 0), ("mid", 320), ("top", 512)):  # gaps: 256 B at 64, 128 B at 384
        placed.add(Interval(key, 64, 0, 9), offset)
    new = Interval("new", 128, 2, 3)
    assert placed.fit(new, best=True) == 384
    assert placed.fit(new, best=False) == 64
    assert placed.fit(Interval("big", 512, 2, 3), best=True) == 576  # no gap fits: on top
    assert placed.fit(Interval("later", 512, 10, 11), best=True) == 0  # nothing live then


def test_offsets_are_aligned():
    prog, _ = _seed_training_program()
    assert all(b.offset % 64 == 0 for b in prog.plan.buffers if b.offset is not None)
    assert align(1) == 64 and align(64) == 64 and align(65) == 128


# --- bounds and invariants ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "greedy-by-size", "first-fit-by-start", "no-reuse"])
def test_planned_between_lower_bound_and_no_reuse(mode):
    prog, _ = _seed_training_program(memory=mode)
    m = prog.memory
    assert m.lower_bound_bytes <= m.planned_bytes <= m.no_reuse_bytes
    assert m.lower_bound_bytes == max(m.live_bytes)


_UNARY = [gc.tanh, gc.sigmoid, gc.exp, lambda v: v * 0.5, gc.relu]
_BINARY = [gc.add, gc.mul, gc.sub, gc.maximum, lambda a, b: a @ b]


@st.composite
def random_programs(draw):
    """A random DAG over a (4, 4) input and two params, as a recipe of (op, operand indices)."""
    steps = []
    for _ in range(draw(st.integers(3, 25))):
        count = 3 + len(steps)
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(_UNARY) - 1)), (draw(st.integers(0, count - 1)),)))
        else:
            pair = (draw(st.integers(0, count - 1)), draw(st.integers(0, count - 1)))
            steps.append(("b", draw(st.integers(0, len(_BINARY) - 1)), pair))
    return steps


def _build(steps):
    with gc.Graph("random") as g:
        values = [gc.input("x", (4, 4)), gc.param("p", (4, 4)), gc.param("q", (4, 4))]
        for kind, which, operands in steps:
            fn = _UNARY[which] if kind == "u" else _BINARY[which]
            values.append(fn(*(values[i] for i in operands)))
        loss = gc.sum(gc.tanh(values[-1]) * values[-1])
    grads = gc.grad(loss, values[1:3])
    return g, [loss, *grads]


@settings(max_examples=40, deadline=None)
@given(random_programs())
def test_random_dags_respect_the_bounds_and_match_the_no_reuse_plan(steps):
    _, outputs = _build(steps)
    feeds = {"x": np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)}
    planned = gc.compile(outputs)
    baseline = gc.compile(outputs, memory="no-reuse")
    m = planned.memory
    assert m.lower_bound_bytes <= m.planned_bytes <= m.no_reuse_bytes
    with np.errstate(all="ignore"):
        got, want = planned.run(feeds), baseline.run(feeds)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# --- in-place reuse and running sums --------------------------------------------------------


def test_a_chain_of_elementwise_ops_runs_in_one_buffer():
    with gc.Graph("elementwise") as g:
        x = gc.input("x", (256, 256))
        h = gc.exp(x)
        for _ in range(10):
            h = gc.tanh(h) * 0.5
        y = gc.sum(h)
    prog = gc.compile(y)
    one = 256 * 256 * 4
    assert prog.memory.no_reuse_bytes >= 20 * one
    assert prog.memory.planned_bytes < 2 * one  # every step overwrites its dying operand


def test_gradient_terms_are_summed_as_they_arrive():
    """x feeds k branches; ∂ℓ/∂x has k terms, which must not all be live at once (tensorflow#10607)."""
    k, shape = 12, (128, 128)
    with gc.Graph("fanout") as g:
        x = gc.param("x", shape)
        loss = gc.sum(gc.add_n(*(x * float(i + 1) for i in range(k))))
    dx = gc.grad(loss, x)
    prog = gc.compile([loss, dx])
    one = 128 * 128 * 4
    assert "add_n" not in {ins.op for ins in prog.plan.instructions}
    assert prog.memory.planned_bytes <= 3 * one  # a running sum and one term, not k terms
    np.testing.assert_allclose(prog.run()[1], np.full(shape, k * (k + 1) / 2), rtol=1e-6)


def test_an_output_is_never_overwritten_in_place():
    with gc.Graph("outputs") as g:
        x = gc.input("x", (8,))
        a = gc.exp(x)
        b = gc.tanh(a)  # a dies here, but a is an output: b must not take its buffer
    prog = gc.compile([a, b])
    xs = np.linspace(-1, 1, 8, dtype=np.float32)
    got_a, got_b = prog.run({"x": xs})
    np.testing.assert_allclose(got_a, np.exp(xs), rtol=1e-6)
    np.testing.assert_allclose(got_b, np.tanh(np.exp(xs)), rtol=1e-6)


def test_no_in_place_through_a_transposed_view():
    with gc.Graph("transposed") as g:
        x = gc.input("x", (16, 16))
        a = gc.exp(x)
        y = gc.sum(a + a.T)  # a dies at the add, but is also read transposed there
    prog = gc.compile(y)
    xs = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    np.testing.assert_allclose(prog.run({"x": xs}), np.sum(np.exp(xs) + np.exp(xs).T), rtol=1e-5)


def test_an_update_that_reads_its_param_beside_its_first_step_is_not_opened_in_place():
    """{w: w + w·x}: w·x is the last read of w before the writer, but the writer reads w too,
    so w·x may not be written over w (it was: the writer then added w·x to itself)."""
    with gc.Graph("reads twice") as g:
        x = gc.input("x", (3,), "float64")
        w = gc.param("w", (3,), "float64", init=np.ones(3))
        loss = gc.sum(x * 2.0)
    prog = gc.compile(loss, updates={w: w + w * x})
    prog.run({"x": np.full(3, 3.0)})
    np.testing.assert_array_equal(prog.params["w"], np.full(3, 4.0))


def test_bias_add_and_relu_mask_are_written_in_place_without_fusion():
    """The fusions NumPy allows directly, done by in-place reuse: the bias added into the
    matmul's output (np.matmul(a, b, out=o); np.add(o, bias, out=o)), the ReLU over it, and
    the backward pass's mask [h > 0] written over h where h dies."""
    graph, values = zoo.mlp(32, (64, 128, 10), activation="relu")
    plan = gc.compile(zoo.training_outputs(values)).plan
    offset = {ins.op + str(k): plan.buffers[ins.out].offset for k, ins in enumerate(plan.instructions)}
    first = [name for name in offset if name.startswith(("matmul", "add", "relu", "greater"))]
    matmul, add, relu = first[0], first[1], first[2]
    greater = next(name for name in first if name.startswith("greater"))
    assert offset[matmul] == offset[add] == offset[relu] == offset[greater]


# --- the runtime allocates nothing but its outputs ---------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_training_step_allocates_only_its_outputs(dtype):
    g, v = zoo.mlp(64, dtype=dtype)
    grads = gc.grad(v["loss"], v["params"])
    prog = gc.compile([v["loss"], *grads], updates=gc.sgd(v["loss"], v["params"], 0.01))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.random((64, 64)).astype(dtype), "y": rng.integers(0, 10, 64)}
    peak, out_bytes = run_peak(prog, feeds)
    assert prog.memory.planned_bytes > 64 * 1024  # the arena itself would not fit in the slack
    assert peak <= out_bytes + 64 * 1024


def test_the_seed_dag_allocates_only_its_outputs():
    prog, feeds = _seed_training_program()
    peak, out_bytes = run_peak(prog, feeds)
    assert peak <= out_bytes + 64 * 1024


def test_memory_report_is_readable():
    prog, _ = _seed_training_program()
    text = str(prog.memory)
    for label in ("arena (planned)", "lower bound", "without reuse", "params", "planned/LB"):
        assert label in text
