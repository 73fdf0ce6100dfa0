"""``compile(..., bind=False)``: a plan, its memory report and its cost, and no memory allocated."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import graphc as gc
from graphc.plan import BIND_VIEW


def _wide_regression(batch: int, name: str = "wide"):
    """A three-layer MLP regression step whose params are small (a third of a MB) and whose
    activations grow with ``batch``: at a million rows, float32, each hidden value is 1 GB."""
    with gc.Graph(name):
        x = gc.input("x", shape=(batch, 64))
        y = gc.input("y", shape=(batch, 8))
        w1 = gc.param("w1", shape=(64, 256))
        w2 = gc.param("w2", shape=(256, 256))
        w3 = gc.param("w3", shape=(256, 8))
        h = gc.tanh(gc.relu(x @ w1) @ w2)
        loss = gc.mse(h @ w3, y)
    return loss, [w1, w2, w3]


def _small_step(name: str, batch=4):
    """A float64 training step with fixed initial params, so two builds compute the same."""
    rng = np.random.default_rng(0)
    with gc.Graph(name) as graph:
        x = gc.input("x", shape=(batch, 3), dtype="float64")
        w = gc.param("w", shape=(3, 2), dtype="float64", init=rng.standard_normal((3, 2)))
        b = gc.param("b", shape=(2,), dtype="float64", init=rng.standard_normal(2))
        loss = gc.mean(gc.tanh(x @ w + b) ** 2)
    return graph, loss, [w, b]


def _feeds(batch=4, seed=1):
    return {"x": np.random.default_rng(seed).standard_normal((batch, 3))}


@pytest.mark.parametrize("remat", ["none", "sqrt"])
def test_unbound_compile_plans_a_gigabyte_training_step_without_allocating_it(remat):
    loss, params = _wide_regression(1_000_000)
    updates = gc.sgd(loss, params, lr=0.1)
    tracemalloc.start()
    try:
        prog = gc.compile(loss, updates=updates, remat=remat, bind=False)
        _, compile_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    planned = prog.memory.planned_bytes
    assert planned >= 2 * 10**9  # several GB of activations and gradients...
    assert planned == prog.plan.arena_bytes
    assert compile_peak < 20 * 2**20 and compile_peak < planned / 100  # ...planned in a few MB
    assert prog.memory.lower_bound_bytes <= planned <= prog.memory.no_reuse_bytes
    assert prog.cost.forward_flops > 0 and prog.cost.backward_flops > 0
    assert prog.remat is not None and not prog.bound
    assert "not bound" in repr(prog)


def test_running_an_unbound_program_raises_and_says_to_bind():
    _, loss, _ = _small_step("unbound-run")
    prog = gc.compile(loss, bind=False)
    with pytest.raises(gc.GraphError, match=r"bind=False.*prog\.bind\(\)"):
        prog.run(_feeds())
    assert prog.bind() is prog and prog.bound
    assert prog.bind() is prog  # binding again does nothing


def test_a_program_bound_later_trains_as_one_bound_at_compile():
    results = {}
    for bind in (True, False):
        graph, loss, params = _small_step(f"bound-{bind}")
        prog = gc.compile(loss, updates=gc.sgd(loss, params, lr=0.5), bind=bind)
        if not bind:
            prog.bind()
        losses = [prog.run(_feeds(seed=s)) for s in range(3)]
        results[bind] = (losses, {n: p.data.copy() for n, p in graph.params.items()})
    (losses_a, params_a), (losses_b, params_b) = results[True], results[False]
    np.testing.assert_array_equal(losses_a, losses_b)
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name])


def test_an_unbound_run_changes_no_param():
    graph, loss, params = _small_step("unbound-no-write")
    before = {n: p.data.copy() for n, p in graph.params.items()}
    prog = gc.compile(loss, updates=gc.sgd(loss, params, lr=0.5), bind=False)
    with pytest.raises(gc.GraphError, match="bind"):
        prog.run(_feeds())
    for name, value in before.items():
        np.testing.assert_array_equal(graph.params[name].data, value)


def test_an_unbound_batch_program_plans_each_size_and_bind_binds_them_all():
    _, loss, params = _small_step("unbound-batch", batch=None)
    prog = gc.compile(loss, updates=gc.sgd(loss, params, lr=0.1), bind=False)
    eight = prog.specialize(8)
    assert not prog.bound and not eight.bound
    assert prog.memory.planned_bytes == eight.plan.arena_bytes > 0
    with pytest.raises(gc.GraphError, match=r"bind=False.*prog\.bind\(\)"):
        prog.run(_feeds(8))
    assert prog.bind() is prog and prog.bound and eight.bound
    assert np.isfinite(prog.run(_feeds(8))) and np.isfinite(prog.run(_feeds(5)))
    assert prog.specializations[5].bound  # a size made after bind() is bound


def test_an_unbound_program_saves_and_loads_as_a_bound_one(tmp_path):
    losses = {}
    for bind in (True, False):
        _, loss, params = _small_step(f"saved-{bind}")
        prog = gc.compile(loss, updates=gc.sgd(loss, params, lr=0.5), bind=bind)
        prog.save(tmp_path / f"{bind}.npz")
        loaded = gc.load(tmp_path / f"{bind}.npz")
        assert loaded.bound
        losses[bind] = [loaded.run(_feeds(seed=s)) for s in range(3)]
    np.testing.assert_array_equal(losses[True], losses[False])


def test_a_saved_program_loads_unbound_and_binds_in_place(tmp_path):
    _, loss, params = _small_step("load-unbound")
    gc.compile(loss, updates=gc.sgd(loss, params, lr=0.5)).save(tmp_path / "p.npz")
    bound, unbound = gc.load(tmp_path / "p.npz"), gc.load(tmp_path / "p.npz", bind=False)
    assert not unbound.bound and unbound.plan.arena_bytes == bound.plan.arena_bytes
    with pytest.raises(gc.GraphError, match=r"prog\.bind\(\)"):
        unbound.run(_feeds())
    unbound.bind()
    for seed in range(3):
        np.testing.assert_array_equal(unbound.run(_feeds(seed=seed)), bound.run(_feeds(seed=seed)))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_check_numerics_of_an_unbound_program_checks_once_bound():
    with gc.Graph("unbound-numerics"):
        x = gc.input("x", shape=(3,), dtype="float64")
        loss = gc.sum(gc.log(x))
    prog = gc.compile(loss, check_numerics=True, bind=False)
    prog.bind()
    with pytest.raises(gc.GraphError, match=r"op 'log'.*produced Inf"):
        prog.run({"x": np.array([1.0, 0.0, 2.0])})


def test_a_gigabyte_plan_validates_and_loads_from_json_without_allocating_its_buffers():
    loss, params = _wide_regression(1_000_000, name="wide-json")
    prog = gc.compile(loss, updates=gc.sgd(loss, params, lr=0.1), bind=False)
    text = prog.plan.to_json()
    assert any(ins.mode == BIND_VIEW for ins in prog.plan.instructions)  # the validator probes its views
    tracemalloc.start()
    try:
        loaded = gc.Plan.from_json(text)  # validates the plan
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.arena_bytes == prog.memory.planned_bytes
    assert peak < 20 * 2**20
