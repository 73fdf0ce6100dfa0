"""graphc/schedule.py: one topological order of the computed nodes, chosen for memory.

The laws, checked over random DAGs with their gradients (tests/random_graphs.py):
- every order (creation, greedy, the chosen one) runs each computed node once, after its operands;
- the greedy order takes, at each step, the ready node of least net allocation
  (bytes written − bytes freed), ties to the earliest — checked against a naive O(n²) replay;
- ``schedule`` keeps the order of lower peak, creation order on a tie, and lowers its peak by
  deferring nodes past it (never raising it, keeping every constraint); it is deterministic.
"""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.dataflow import Dataflow
from graphc import zoo
from graphc.memory.analysis import alias_analysis, peak_live_bytes, reads_before_writes
from graphc.passes import optimize
from graphc.schedule import constraints, creation_order, greedy_order, lower_peak, schedule
from random_graphs import build, recipes

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def training_flow(recipe) -> Dataflow:
    """The optimized dataflow of the recipe's last value and its gradient to both inputs."""
    built = build(recipe)
    a, b = built.values[:2]
    loss = gc.sum(built.values[-1] * built.values[-1])
    return optimize([loss.node, *(g.node for g in gc.grad(loss, [a, b]))])


def momentum_step_flow(size: int, seed: int) -> Dataflow:
    """The optimized flow of a random DAG's loss with momentum SGD updates of its params."""
    _, values = zoo.random_dag(size, seed=seed, dtype="float64")
    assume(values["params"])
    updates = gc.optim.sgd(values["loss"], values["params"], 0.1, momentum=0.9)
    return optimize([values["loss"].node], [(p.node, v.node) for p, v in updates.items()])


def assert_topological_order_of_computed_nodes(flow: Dataflow, order: list) -> None:
    computed = [n for n in flow.nodes if not n.is_source]
    assert sorted(order, key=id) == sorted(computed, key=id), "each computed node exactly once"
    step = {n: k for k, n in enumerate(order)}
    for node in order:
        for operand in flow.args[node]:
            assert operand.is_source or step[operand] < step[node], f"{node.name} runs before {operand.name}"


def naive_greedy_order(flow: Dataflow) -> list:
    """The greedy rule replayed from scratch at every step: min (net bytes, position) among ready nodes."""
    owner = alias_analysis(flow)
    computed = [n for n in flow.nodes if not n.is_source]
    position = {n: k for k, n in enumerate(computed)}
    pinned = {owner[r] for r in flow.roots}

    def reads(node):
        if node.op.view and owner[node] is not node:
            return set()
        return {owner[a] for a in flow.args[node] if not owner[a].is_source}

    done: list = []
    while len(done) < len(computed):
        ready = [n for n in computed if n not in done and all(a.is_source or a in done for a in flow.args[n])]

        def net(node):
            later_readers = lambda base: [r for r in computed if r not in done and r is not node and base in reads(r)]
            freed = sum(b.aval.nbytes for b in reads(node) if b not in pinned and not later_readers(b))
            return (node.aval.nbytes if owner[node] is node and node not in pinned else 0) - freed  # outputs: outside the arena

        done.append(min(ready, key=lambda n: (net(n), position[n])))
    return done


# --- laws over random DAGs ---------------------------------------------------------------


@PROPERTY
@given(recipes)
def test_every_order_is_a_topological_order_of_the_computed_nodes(recipe):
    flow = training_flow(recipe)
    for order in (creation_order(flow), greedy_order(flow), schedule(flow)):
        assert_topological_order_of_computed_nodes(flow, order)


@PROPERTY
@given(recipes)
def test_greedy_order_takes_the_ready_node_of_least_net_allocation(recipe):
    flow = training_flow(recipe)
    assert greedy_order(flow) == naive_greedy_order(flow)


@PROPERTY
@given(recipes)
def test_schedule_lowers_the_peak_of_the_lower_peak_order_creation_order_on_a_tie(recipe):
    flow = training_flow(recipe)
    created, greedy = creation_order(flow), greedy_order(flow)
    chosen = schedule(flow)
    peaks = peak_live_bytes(flow, created), peak_live_bytes(flow, greedy)
    assert peak_live_bytes(flow, chosen) <= min(peaks)
    assert chosen == lower_peak(flow, created if peaks[0] <= peaks[1] else greedy)


@settings(max_examples=15, deadline=None)
@given(st.integers(20, 60), st.integers(0, 2**16))
def test_lowering_the_peak_never_raises_it_and_keeps_every_constraint(size, seed):
    flow = momentum_step_flow(size, seed)
    given_order = creation_order(flow)
    lowered = lower_peak(flow, given_order)
    assert_topological_order_of_computed_nodes(flow, lowered)
    step = {n: k for k, n in enumerate(lowered)}
    successors = constraints(flow).successors
    assert all(step[node] < step[after] for node in lowered for after in successors[node])
    assert peak_live_bytes(flow, lowered) <= peak_live_bytes(flow, given_order)


@settings(max_examples=15, deadline=None)
@given(recipes)
def test_schedule_is_the_same_for_the_same_graph_built_twice(recipe):
    first, second = training_flow(recipe), training_flow(recipe)
    names = lambda flow: [(n.op_name, n.name) for n in schedule(flow)]
    assert names(first) == names(second)


# --- examples ---------------------------------------------------------------------------------


def test_sources_are_not_scheduled():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        w = gc.param("w", shape=(2,))
        y = gc.tanh(x * w + 1.0)
    order = schedule(optimize([y.node]))
    assert [n.op_name for n in order] == ["mul", "add", "tanh"]


def test_greedy_order_frees_each_branch_before_starting_the_next():
    """Branches written one after another: creation order holds every big value at once."""
    branches = 6
    with gc.Graph("branches"):
        x = gc.input("x", shape=(64, 64), dtype="float64")
        big = [gc.tanh(x * float(k + 1)) for k in range(branches)]  # all built first
        small = [gc.sum(b) for b in big]
        total = gc.add_n(*small)
    flow = optimize([total.node])
    created, chosen = creation_order(flow), schedule(flow)
    big_bytes = 64 * 64 * 8
    assert peak_live_bytes(flow, created) >= branches * big_bytes
    assert peak_live_bytes(flow, chosen) < 2 * big_bytes + big_bytes  # a product, a tanh, nothing more
    np.testing.assert_allclose(
        gc.compile(total).run({"x": np.full((64, 64), 0.1)}),
        sum(np.tanh(0.1 * (k + 1)) * 64 * 64 for k in range(branches)),
    )


def test_a_product_listed_before_a_variance_runs_after_it():
    """A backward batch norm's pattern: a product read only later is listed before a variance whose
    kernel needs a temporary as large as its input. In that order the input, the product and the
    temporary are held at once; deferring the product holds two of them, and it then overwrites
    the input it is the last to read."""
    with gc.Graph("variance"):
        x = gc.input("x", shape=(256, 64), dtype="float64")
        a = gc.exp(x)
        product = a * 3.0
        variance = gc.var(a, axis=0)
        out = gc.sum(product * variance)
    flow = optimize([out.node])
    block = 256 * 64 * 8
    created = creation_order(flow)
    assert [n.op_name for n in created][:3] == ["exp", "mul", "var"]
    assert peak_live_bytes(flow, created) >= 3 * block
    lowered = lower_peak(flow, created)
    assert [n.op_name for n in lowered][:3] == ["exp", "var", "mul"]
    assert peak_live_bytes(flow, lowered) < 2.1 * block
    data = {"x": np.linspace(-1.0, 1.0, 256 * 64).reshape(256, 64)}
    want = np.sum(np.exp(data["x"]) * 3.0 * np.var(np.exp(data["x"]), axis=0))
    np.testing.assert_allclose(gc.compile(out).run(data), want, rtol=1e-12)


def test_a_plain_chain_keeps_creation_order():
    with gc.Graph("chain"):
        h = gc.input("x", shape=(4,))
        for _ in range(5):
            h = gc.tanh(h)
    flow = optimize([h.node])
    assert schedule(flow) == creation_order(flow)


# --- updates: writers after every read of the old value, as early as that allows -------------------


@settings(max_examples=10, deadline=None)
@given(st.integers(20, 40), st.integers(0, 2**16))
def test_every_order_runs_each_writer_after_every_read_of_its_old_value(size, seed):
    flow = momentum_step_flow(size, seed)
    readers = reads_before_writes(flow, alias_analysis(flow))
    for order in (creation_order(flow), greedy_order(flow), schedule(flow)):
        assert_topological_order_of_computed_nodes(flow, order)
        step = {n: k for k, n in enumerate(order)}
        for writer, reads in readers.items():
            assert all(step[r] < step[writer] for r in reads), f"{flow.writes[writer].name} written before a read"
