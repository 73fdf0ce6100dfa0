"""Training steps: updates written in place inside the backward pass, outputs outside the arena.

The laws, on the zoo's graphs with every optimizer and every recompute policy:
- each param is written once, in place (no arena copy of its new value), by the
  kernel that computes it, after every read of its old value;
- no gradient is read after its param's update: it dies with the update;
- loss and params after a step are bit-identical whatever the recompute policy;
- a run returns arrays of its own, outside the arena, that no later run touches.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import graphc as gc
from graphc import zoo
from graphc.plan import OUTPUT, PARAM, TEMP, Plan

OPTIMIZERS = {
    "sgd": lambda loss, params: gc.sgd(loss, params, 0.05),
    "momentum": lambda loss, params: gc.optim.sgd(loss, params, 0.05, momentum=0.9, nesterov=True),
    "adam": lambda loss, params: gc.optim.adam(loss, params, lr=1e-2),
    "adamw": lambda loss, params: gc.optim.adamw(loss, params, lr=1e-2, amsgrad=True),
    "rmsprop": lambda loss, params: gc.optim.rmsprop(loss, params, centered=True, momentum=0.5),
}
MODELS = {  # the zoo's graphs, small
    "seed": lambda: zoo.ZOO["seed"](),
    "mlp": lambda: zoo.mlp(8, (6, 7, 3), dtype="float64"),
    "chain": lambda: zoo.chain(5, width=6, batch=4, dtype="float64"),
    "residual": lambda: zoo.residual_mlp(3, width=6, batch=4, classes=3, dtype="float64"),
    "unet": lambda: zoo.unet(depth=2, width=4, length=16, batch=2, dtype="float64"),
    "attention": lambda: zoo.attention(seq=8, dim=8, heads=2, dtype="float64"),
    "random": lambda: zoo.random_dag(30, dtype="float64"),
}
POLICIES = ("none", "sqrt", "revolve", "optimal")


def _step(model: str, optimizer: str, remat: str = "none", **options):
    graph, values = MODELS[model]()
    updates = OPTIMIZERS[optimizer](values["loss"], values["params"])
    prog = gc.compile(values["loss"], updates=updates, remat=remat, **options)
    return graph, values, prog


@functools.lru_cache(maxsize=None)
def _shared_step(model: str, optimizer: str, remat: str):
    """``_step(model, optimizer, remat)`` compiled once per worker, with its params' initial values:
    the two tests over every model, optimizer and policy share these programs. A test that runs
    one calls ``_initial_params`` first (a run writes the params and optimizer state in place)."""
    graph, values, prog = _step(model, optimizer, remat)
    initial = {name: node.data.copy() for name, node in graph.params.items()}
    return graph, values, prog, initial


def _initial_params(graph: gc.Graph, initial: dict[str, np.ndarray]) -> None:
    for name, node in graph.params.items():
        node.data[...] = initial[name]


def _writes(plan: Plan) -> dict[str, int]:
    """Param name → the step that writes its stored array."""
    return {plan.buffers[ins.out].name: k for k, ins in enumerate(plan.instructions)
            if plan.buffers[ins.out].kind == PARAM}


def _last_reads(plan: Plan) -> dict[int, int]:
    """Buffer → the last step that reads it (through views: a view's reads are its base's)."""
    base: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, ins in enumerate(plan.instructions):
        if ins.mode == "view":
            base[ins.out] = base.get(ins.args[0], ins.args[0])
            continue
        for a in ins.args:
            last[base.get(a, a)] = k
    return last


@pytest.mark.parametrize("remat", POLICIES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_update_is_written_in_place_and_its_gradient_dies_with_it(model, optimizer, remat):
    graph, values, prog, _ = _shared_step(model, optimizer, remat)
    plan = prog.plan
    writes = _writes(plan)
    assert set(writes) == set(plan.params), "every param and state param is written once"
    for name, k in writes.items():
        ins = plan.instructions[k]
        assert ins.op != "copy", f"{name} is written in place by the kernel computing it, not copied"
    last = _last_reads(plan)
    gradients = {f"dloss/d{p.name}": p.name for p in values["params"]}
    completed = {}
    for k, ins in enumerate(plan.instructions):
        if plan.buffers[ins.out].name in gradients:
            completed[plan.buffers[ins.out].name] = k
    for buf in plan.buffers:
        if buf.kind == TEMP and buf.name in gradients:
            assert last[buf.id] <= writes[gradients[buf.name]], f"{buf.name} is read after {gradients[buf.name]}'s update"
    assert min(writes[p.name] for p in values["params"]) < max(completed.values()), \
        "the first update is written before the last gradient is computed: updates run inside the backward pass"


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_recompute_policy_trains_bit_for_bit_as_store_all(model, optimizer):
    results = {}
    for remat in POLICIES:
        graph, values, prog, initial = _shared_step(model, optimizer, remat)
        _initial_params(graph, initial)
        feeds = zoo.feeds(graph)
        losses = [prog.run(feeds) for _ in range(2)]
        results[remat] = (losses, {name: node.data.copy() for name, node in graph.params.items()})
    reference_losses, reference_params = results["none"]
    for remat, (losses, params) in results.items():
        assert [loss.tobytes() for loss in losses] == [loss.tobytes() for loss in reference_losses], remat
        for name, value in params.items():
            assert np.array_equal(value, reference_params[name]), f"{name} after remat={remat!r}"


@pytest.mark.parametrize("remat", ["revolve", "optimal"])
def test_half_the_store_all_arena_fits_revolve_and_optimal(remat):
    graph, values = zoo.chain(8, width=16, batch=8, dtype="float64")
    store_all = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.01))
    budget = store_all.memory.planned_bytes // 2
    graph, values = zoo.chain(8, width=16, batch=8, dtype="float64")
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.01),
                      remat=remat, memory_budget=budget, time_limit=3)  # the best schedule found in 3 s
    assert prog.memory.planned_bytes <= budget
    assert prog.cost.recompute_flops > 0


def test_the_training_step_arena_holds_no_gradient_past_its_update():
    """A chain's training step needs the activations and about one layer's gradients, not all of
    them: the arena is below store-all activations + every gradient (what holding them to the end costs)."""
    graph, values = zoo.chain(12, width=32, batch=16, dtype="float64")
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.01))
    activations = 12 * 16 * 32 * 8
    gradients = sum(p.node.aval.nbytes for p in values["params"])
    assert prog.memory.planned_bytes < activations + gradients / 2
    kinds = prog.memory.peak_bytes_by_kind
    assert kinds["gradients"] <= 2 * 32 * 32 * 8  # at most two layers' weight gradients at the peak


def test_updates_whose_in_place_writes_would_wait_for_each_other_are_still_right():
    """{a: a + b, b: b + a}: each new value reads the other's old value, so at most one can be
    written in place; the other is computed into the arena and copied."""
    with gc.Graph("cross"):
        a = gc.param("a", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        b = gc.param("b", shape=(3,), dtype="float64", init=np.array([10.0, 20.0, 30.0]))
        total = gc.sum(a * b)
    prog = gc.compile(total, updates={a: a + b, b: b + a})
    np.testing.assert_array_equal(prog.run(), 140.0)
    np.testing.assert_array_equal(a.value, [11.0, 22.0, 33.0])
    np.testing.assert_array_equal(b.value, [11.0, 22.0, 33.0])
    ops = sorted(prog.plan.instructions[k].op for k in _writes(prog.plan).values())
    assert ops == ["add", "copy"]


def test_an_update_that_is_its_own_param_writes_nothing():
    with gc.Graph("identity"):
        w = gc.param("w", shape=(2,), dtype="float64", init=np.array([1.0, 2.0]))
        y = gc.sum(w * w)
    prog = gc.compile(y, updates={w: w})
    assert _writes(prog.plan) == {}
    np.testing.assert_allclose(prog.run(), 5.0)
    np.testing.assert_array_equal(w.value, [1.0, 2.0])


def test_a_param_returned_beside_its_update_is_the_value_the_run_read():
    with gc.Graph("returned"):
        w = gc.param("w", shape=(2, 2), dtype="float64", init=np.eye(2))
        y = gc.sum(w * w)
    prog = gc.compile([y, w, w.T], updates={w: w * 3.0})
    loss, old, old_t = prog.run()
    np.testing.assert_array_equal(old, np.eye(2))
    np.testing.assert_array_equal(old_t, np.eye(2))
    np.testing.assert_array_equal(w.value, 3 * np.eye(2))


def test_outputs_are_outside_the_arena_and_each_run_returns_arrays_of_its_own():
    graph, values, prog = _step("mlp", "adam")
    grads = gc.grad(values["loss"], values["params"])
    prog = gc.compile([values["loss"], *grads])
    plan = prog.plan
    assert all(plan.buffers[o].kind == OUTPUT and plan.buffers[o].offset is None for o in plan.outputs)
    assert prog.memory.outputs_bytes == sum(plan.buffers[o].nbytes for o in plan.outputs)
    feeds = zoo.feeds(graph)
    first = prog.run(feeds)
    kept = [a.copy() for a in first]
    second = prog.run({**feeds, "x": feeds["x"] * 2.0})
    for a, b, c in zip(first, kept, second):
        assert np.array_equal(a, b), "a later run changed an array an earlier one returned"
        assert not np.shares_memory(a, c)
        assert not np.shares_memory(a, prog._executable.arena)


def test_the_memory_report_names_what_is_live_at_the_peak():
    _, _, prog = _step("mlp", "adam")
    text = str(prog.memory)
    for label in ("live at the peak", "forward values", "gradients", "update temporaries", "scratch",
                  "outside the arena", "optimizer state", "outputs"):
        assert label in text
    memory = prog.memory
    assert sum(memory.peak_bytes_by_kind.values()) == memory.lower_bound_bytes
    assert memory.state_bytes == sum(a.nbytes for a in prog.state.values()) > 0
    assert memory.params_bytes == sum(a.nbytes for a in prog.params.values())


@pytest.mark.parametrize(("model", "optimizer", "remat"), [
    ("residual", "sgd", "optimal"), ("residual", "momentum", "optimal-lp"), ("residual", "adam", "revolve"),
    ("chain", "sgd", "sqrt"), ("chain", "momentum", "revolve"),
])
def test_recompute_under_a_budget_trains_bit_for_bit_as_store_all(model, optimizer, remat):
    """Each policy at budgets between its least feasible one and store-all: the solver's and the
    constructed schedules both carry the writers (which take no arena bytes) through."""
    graph, values, store_all = _step(model, optimizer)
    feeds = zoo.feeds(graph)
    reference = [store_all.run(feeds)] + [node.data.copy() for node in graph.params.values()]
    fitted = 0
    for fraction in (0.8, 0.6):
        budget = int(store_all.memory.planned_bytes * fraction)
        try:
            graph, values, prog = _step(model, optimizer, remat, memory_budget=budget, time_limit=5)
        except gc.GraphError as err:
            assert "least feasible budget" in str(err)
            continue
        fitted += 1
        assert prog.memory.planned_bytes <= budget
        got = [prog.run(zoo.feeds(graph))] + [node.data.copy() for node in graph.params.values()]
        assert all(np.array_equal(a, b) for a, b in zip(got, reference)), f"{remat} at {budget:,d} B"
    assert fitted, "no budget below store-all fitted"


def test_the_solver_schedules_the_writers_of_a_training_step():
    """The MILP's schedule must compute every writer (a root whose storage is its param):
    at a budget between the least feasible and store-all it recomputes, and trains as store-all."""
    def step(**options):
        graph, values = zoo.residual_mlp(depth=2, width=16, batch=256)
        loss = values["loss"]
        return graph, gc.compile(loss, updates=gc.sgd(loss, values["params"], 0.01), **options)

    graph, reference = step()
    graph_b, prog = step(remat="optimal", memory_budget=69_600, time_limit=20)
    assert prog.memory.planned_bytes <= 69_600 < reference.memory.planned_bytes
    assert prog.cost.recompute_flops > 0
    feeds = zoo.feeds(graph)
    assert np.array_equal(prog.run(feeds), reference.run(feeds))
    for name, node in graph.params.items():
        assert np.array_equal(node.data, graph_b.params[name].data), name
