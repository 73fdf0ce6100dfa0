"""graphc/passes.py: dead-code elimination, common subexpressions, running sums.

The laws, checked over random DAGs (tests/random_graphs.py):
- DCE keeps exactly the ancestors of the roots (networkx is the oracle), in topological order;
- CSE maps every node to one with the same op, attributes and canonical operands, leaves no
  two survivors alike, is idempotent, and preserves every result;
- running sums replace each ``add_n`` of k terms by k − 1 additions in topological order.
"""

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import graphc as gc
from graphc.passes import (
    Dataflow,
    common_subexpression_elimination,
    dead_code_elimination,
    optimize,
    split_accumulations,
)
from random_graphs import build, recipes

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_networkx(graph: gc.Graph) -> nx.DiGraph:
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from((a, n) for n in graph.nodes for a in n.inputs)
    return dag


def structure(flow: Dataflow, node) -> tuple:
    """What CSE compares: op, attributes, operands after rewriting, aval (constants by content)."""
    if node.kind == "const":
        return ("const", node.data.dtype.str, node.data.shape, node.data.tobytes())
    return (node.op_name, tuple(a.id for a in flow.args[node]), tuple(sorted(node.attrs.items())), node.aval)


def is_topological(flow: Dataflow) -> bool:
    position = {n: k for k, n in enumerate(flow.nodes)}
    return all(position[a] < position[n] for n in flow.nodes for a in flow.args[n])


# --- dead-code elimination -----------------------------------------------------------


@PROPERTY
@given(recipes, recipes)
def test_dce_keeps_exactly_the_ancestors_of_the_roots(recipe, picks):
    built = build(recipe)
    values = built.values
    roots = [values[i % len(values)].node for _, i, _ in picks]
    flow = dead_code_elimination(roots)
    dag = as_networkx(built.graph)
    expected = set(roots).union(*(nx.ancestors(dag, r) for r in roots))
    assert set(flow.nodes) == expected
    assert len(flow.nodes) == len(expected)  # no node twice
    assert is_topological(flow)
    assert flow.roots == roots


def test_dce_drops_a_dead_branch_and_an_unread_input():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        unused_input = gc.input("u", shape=(2,))
        dead = gc.exp(x) + unused_input
        y = gc.tanh(x)
    kept = dead_code_elimination([y.node]).nodes
    assert kept == [x.node, y.node]
    assert dead.node not in kept and unused_input.node not in kept


def test_dce_leaves_the_users_graph_alone():
    with gc.Graph("g") as g:
        x = gc.input("x", shape=(2,))
        gc.exp(x)
        y = gc.tanh(x)
    before = list(g.nodes)
    dead_code_elimination([y.node])
    assert g.nodes == before


# --- common subexpressions --------------------------------------------------------------


@PROPERTY
@given(recipes)
def test_cse_maps_each_node_to_an_equal_one_and_leaves_no_two_alike(recipe):
    built = build(recipe)
    nodes = built.graph.nodes
    before = dead_code_elimination(nodes)  # every node a root: roots report each node's canonical
    after = common_subexpression_elimination(before)
    canonical = dict(zip(nodes, after.roots))
    for node, rep in canonical.items():
        assert rep in after.args and rep.op is node.op and rep.attrs == node.attrs and rep.aval == node.aval
        if not node.is_source:
            assert after.args[rep] == tuple(canonical[a] for a in node.inputs)
    merged = [structure(after, n) for n in after.nodes if not n.is_source]
    assert len(merged) == len(set(merged)), "two survivors compute the same thing"
    assert is_topological(after)


@PROPERTY
@given(recipes)
def test_cse_is_idempotent(recipe):
    built = build(recipe)
    once = common_subexpression_elimination(dead_code_elimination(built.graph.nodes))
    twice = common_subexpression_elimination(once)
    assert twice.nodes == once.nodes and twice.args == once.args and twice.roots == once.roots


@PROPERTY
@given(recipes)
def test_optimized_program_computes_every_value_as_numpy_does(recipe):
    built = build(recipe)
    with np.errstate(all="ignore"):
        results = gc.compile(built.values).run(built.feeds)
    for got, want in zip(results, built.expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_cse_merges_repeated_expressions_and_equal_constants():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        first = gc.tanh(x) * 2.0
        second = gc.tanh(x) * 2.0
    flow = common_subexpression_elimination(dead_code_elimination([first.node, second.node]))
    assert flow.roots[0] is flow.roots[1]
    assert [n.op_name for n in flow.nodes] == ["input", "tanh", "const", "mul"]


@pytest.mark.parametrize(
    "make_pair, merged",
    [
        pytest.param(lambda x: (gc.sum(x, axis=0), gc.sum(x, axis=1)), False, id="axis"),
        pytest.param(lambda x: (gc.max(x, axis=0), gc.sum(x, axis=0)), False, id="op"),
        pytest.param(lambda x: (gc.sum(x, axis=0), gc.sum(x, axis=0, keepdims=True)), False, id="keepdims"),
        pytest.param(lambda x: (x * 2.0, x * 3.0), False, id="constant-value"),
        pytest.param(lambda x: (x - gc.tanh(x), gc.tanh(x) - x), False, id="operand-order"),
        pytest.param(lambda x: (gc.sum(x, axis=1), gc.sum(x, axis=-1)), True, id="equal-after-normalizing-axis"),
        pytest.param(lambda x: (gc.transpose(x), gc.transpose(x, (1, 0))), True, id="default-axes-spelled-out"),
    ],
)
def test_cse_merges_only_nodes_with_equal_attributes_and_operands(make_pair, merged):
    with gc.Graph("g"):
        x = gc.input("x", shape=(3, 3))  # square: the two sums of different axes have one shape
        a, b = make_pair(x)
    flow = common_subexpression_elimination(dead_code_elimination([a.node, b.node]))
    assert (flow.roots[0] is flow.roots[1]) == merged


def test_cse_never_merges_inputs_or_params():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        y = gc.input("y", shape=(2,))
        w = gc.param("w", shape=(2,), init=1.0)
        v = gc.param("v", shape=(2,), init=1.0)
    flow = common_subexpression_elimination(dead_code_elimination([x.node, y.node, w.node, v.node]))
    assert len(set(flow.roots)) == 4


def test_cse_never_merges_two_random_draws_of_one_graph():
    with gc.Graph("g"):
        key = gc.input("key", shape=(), dtype="int64")
        first = gc.uniform(key, (3,))
        second = gc.uniform(key, (3,))
    assert first.node.attrs["stream"] != second.node.attrs["stream"]
    flow = common_subexpression_elimination(dead_code_elimination([first.node, second.node]))
    assert flow.roots[0] is not flow.roots[1]
    one, two = gc.compile([first, second]).run({"key": np.int64(7)})
    assert not np.array_equal(one, two)


def test_cse_merges_draws_of_one_key_and_stream():
    """Same key and stream are the same numbers by construction, so one draw is enough."""
    with gc.Graph("g"):
        key = gc.input("key", shape=(), dtype="int64")
        first = gc.uniform(key, (3,), stream=5)
        second = gc.uniform(key, (3,), stream=5)
    flow = common_subexpression_elimination(dead_code_elimination([first.node, second.node]))
    assert flow.roots[0] is flow.roots[1]


def test_cse_leaves_a_custom_op_with_unhashable_attributes_alone():
    op = gc.defop(
        "scale_by_list", infer=lambda x, factors: x,
        kernel=lambda out, x, factors: np.multiply(x, factors[0], out=out), replace=True,
    )
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        a, b = op(x, factors=[2.0]), op(x, factors=[2.0])
    flow = common_subexpression_elimination(dead_code_elimination([a.node, b.node]))
    assert flow.roots[0] is not flow.roots[1]


# --- running sums ---------------------------------------------------------------------------


def fan_out_gradient(uses: int):
    """``y = Σ_k tanh(k·x)``: ∂y/∂x sums ``uses`` contributions in one ``add_n``."""
    with gc.Graph("fan-out") as g:
        x = gc.input("x", shape=(3,), dtype="float64")
        y = gc.sum(sum((gc.tanh(x * float(k + 1)) for k in range(uses)), start=gc.tanh(x * 0.0)))
    (dx,) = gc.grad(y, [x])
    return g, x, dx


@pytest.mark.parametrize("uses", [2, 3, 6])
def test_running_sums_replace_each_add_n_by_k_minus_1_additions_in_order(uses):
    _, _, dx = fan_out_gradient(uses)
    before = common_subexpression_elimination(dead_code_elimination([dx.node]))
    sums = [n for n in before.nodes if n.op_name == "add_n" and len(before.args[n]) >= 2]
    assert sums, "the gradient of a fan-out is an add_n"
    after = split_accumulations(before)
    assert not [n for n in after.nodes if n.op_name == "add_n" and len(after.args[n]) >= 2]
    added = sum(len(before.args[n]) - 1 for n in sums)
    new_adds = [n for n in after.nodes if n.op_name == "add" and n.id < 0]  # compile-time nodes
    assert len(new_adds) == added
    position = {n: k for k, n in enumerate(before.nodes)}
    for step in new_adds:
        running, term = after.args[step]
        if running.id >= 0:  # the first addition of a sum: its two earliest terms
            assert position[running] < position[term]
    assert is_topological(after)


def test_running_sums_keep_the_gradient():
    _, x, dx = fan_out_gradient(4)
    x_val = np.array([0.1, -0.5, 2.0])
    got = gc.compile(dx).run({"x": x_val})
    want = sum((k + 1) * (1 - np.tanh((k + 1) * x_val) ** 2) for k in range(4))
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_optimize_is_dce_then_cse_then_running_sums():
    _, _, dx = fan_out_gradient(3)
    flow = optimize([dx.node])
    expected = split_accumulations(common_subexpression_elimination(dead_code_elimination([dx.node])))
    assert [(n.op_name, n.name) for n in flow.nodes] == [(n.op_name, n.name) for n in expected.nodes]


def test_consumers_are_the_inverse_of_operands():
    built = build([("add", 0, 1), ("mul", 2, 2), ("tanh", 3, 0), ("add", 4, 2)])
    flow = optimize([built.values[-1].node])
    users = flow.consumers()
    for node in flow.nodes:
        for operand in flow.args[node]:
            assert node in users[operand]
    assert sum(map(len, users.values())) == sum(len(flow.args[n]) for n in flow.nodes)
