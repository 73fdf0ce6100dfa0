"""graphc/passes/: dead-code elimination, common subexpressions, running sums, simplification.

The laws, checked over random DAGs (tests/random_graphs.py):
- DCE keeps exactly the ancestors of the roots (networkx is the oracle), in topological order;
- CSE maps every node to one with the same op, attributes and canonical operands, leaves no
  two survivors alike, is idempotent, and preserves every result;
- running sums replace each ``add_n`` of k terms by k − 1 additions in topological order;
- simplification (constants folded, exact identities) leaves a plan that computes the very
  bits of the unsimplified one — outputs and gradients, at inf, NaN, ±0 and subnormal inputs
  too — and each rewrite removes what it says it removes.
"""

import sys

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import zoo
from graphc.ops.core import Apply, Primitive
from graphc.passes import (
    FOLD_LIMIT_BYTES,
    Dataflow,
    common_subexpression_elimination,
    dead_code_elimination,
    optimize,
    simplify,
    split_accumulations,
)
from random_graphs import SHAPE, build, recipes, simplifiable_recipes

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


def test_optimize_is_dce_then_cse_then_running_sums_then_simplification():
    _, _, dx = fan_out_gradient(3)
    summed = split_accumulations(common_subexpression_elimination(dead_code_elimination([dx.node])))
    for on, expected in ((False, summed), (True, simplify(summed))):
        flow = optimize([dx.node], simplify=on)
        assert [(n.op_name, n.name) for n in flow.nodes] == [(n.op_name, n.name) for n in expected.nodes]


def test_consumers_are_the_inverse_of_operands():
    built = build([("add", 0, 1), ("mul", 2, 2), ("tanh", 3, 0), ("add", 4, 2)])
    flow = optimize([built.values[-1].node])
    users = flow.consumers()
    for node in flow.nodes:
        for operand in flow.args[node]:
            assert node in users[operand]
    assert sum(map(len, users.values())) == sum(len(flow.args[n]) for n in flow.nodes)


# --- simplification: each rewrite on a small graph -------------------------------------------------


def same_bits(got, want) -> None:
    """Equal bit for bit, the sign of zero included; a NaN matches a NaN (its sign bit aside)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    flat_got, flat_want = got.reshape(-1), want.reshape(-1)
    same = flat_got.view(f"u{got.dtype.itemsize}") == flat_want.view(f"u{want.dtype.itemsize}")
    if got.dtype.kind == "f":
        same |= np.isnan(flat_got) & np.isnan(flat_want)
    assert same.all(), f"differ at {np.flatnonzero(~same)[:5]}: {flat_got[~same][:5]} vs {flat_want[~same][:5]}"


def ops_of(prog: gc.Program) -> list[str]:
    return [ins.op for ins in prog.plan.instructions]


SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -2.5, 1e308, -1e308, 5e-324, -1e-310, 3.0])


def _both(outputs, feeds):
    """The simplified and the unsimplified program of ``outputs`` and what each computes from ``feeds``."""
    on, off = gc.compile(outputs, simplify=True), gc.compile(outputs, simplify=False)
    with np.errstate(all="ignore"):
        return on, off, on.run(feeds), off.run(feeds)


def _x32(shape=(2, 3)):
    return gc.input("x", shape=shape, dtype="float32")


# (id, the output as a function of t = tanh(x) and u = exp(x) (float32, x of shape (2, 3)), the op the
# simplified plan has fewer of, how many fewer instructions)
REWRITES = [
    ("fold-constants", lambda t, u: t * (gc.constant(1.0, "float32") * 0.03125), "mul", 1),
    ("times-one", lambda t, u: t * 1.0, "mul", 1),
    ("one-times", lambda t, u: 1.0 * t, "mul", 1),
    ("plus-minus-zero", lambda t, u: t + (-0.0), "add", 1),
    ("minus-zero", lambda t, u: t - 0.0, "sub", 1),
    ("over-one", lambda t, u: t / 1.0, "div", 1),
    ("double-to-times-two", lambda t, u: t + t, "add", 0),
    ("pow-one", lambda t, u: t ** 1.0, "pow", 1),
    ("pow-two", lambda t, u: t ** 2.0, "pow", 0),
    ("neg-neg", lambda t, u: -(-t), "neg", 2),
    ("neg-times-constant", lambda t, u: (-t) * 3.0, "neg", 1),
    ("neg-of-product", lambda t, u: -(t * 3.0), "neg", 1),
    ("neg-times-neg", lambda t, u: (-t) * (-u), "neg", 2),
    ("plus-neg", lambda t, u: t + (-u), "neg", 1),
    ("minus-neg", lambda t, u: t - (-u), "neg", 1),
    ("exact-scalar-chain", lambda t, u: (t * 4.0) * 3.0, "mul", 1),
    ("transpose-back", lambda t, u: gc.transpose(gc.transpose(t)), "transpose", 3),  # and the copy of a returned view
    ("transposes-compose", lambda t, u: gc.transpose(gc.transpose(gc.reshape(t, (1, 2, 3)), (1, 2, 0)), (1, 2, 0)),
     "transpose", 1),
    ("reshape-reshape", lambda t, u: gc.reshape(gc.reshape(t, (6,)), (3, 2)), "reshape", 1),
    ("broadcast-broadcast", lambda t, u: gc.broadcast_to(gc.broadcast_to(t, (2, 2, 3)), (4, 2, 2, 3)), "broadcast_to", 1),
    ("cast-there-and-back", lambda t, u: gc.astype(gc.astype(t, "float64"), "float32"), "astype", 2),
]


@pytest.mark.parametrize("make, op, fewer", [pytest.param(*r[1:], id=r[0]) for r in REWRITES])
def test_each_rewrite_removes_its_op_and_keeps_the_bits(make, op, fewer):
    with gc.Graph("rewrite"):
        x = _x32()
        y = make(gc.tanh(x), gc.exp(x))
    feeds = {"x": SPECIALS[:6].reshape(2, 3).astype(np.float32)}
    on, off, got, want = _both(y, feeds)
    same_bits(got, want)
    assert ops_of(on).count(op) < ops_of(off).count(op)
    assert len(on.plan.instructions) == len(off.plan.instructions) - fewer


@pytest.mark.parametrize("make", [
    pytest.param(lambda t: t + 0.0, id="plus-zero: -0 + 0 is +0"),
    pytest.param(lambda t: 0.0 + t, id="zero-plus"),
    pytest.param(lambda t: t - t, id="self-sub: inf - inf is NaN"),
    pytest.param(lambda t: t * 0.0, id="times-zero: -3·0 is -0, inf·0 NaN"),
    pytest.param(lambda t: (t * 0.1) * 3.0, id="inexact-scalar-chain"),
    pytest.param(lambda t: (t * 3.0) * 0.5, id="chain-whose-second-factor-shrinks"),
    pytest.param(lambda t: t ** np.full((2, 3), 2.0), id="pow-with-an-array-of-twos"),
    pytest.param(lambda t: gc.astype(gc.astype(gc.astype(t, "float64") * 3.0, "float32"), "float64"),
                 id="cast-to-narrower-and-back"),
])
def test_identities_that_are_not_exact_are_left_alone(make):
    with gc.Graph("kept"):
        x = _x32()
        y = make(gc.exp(x))
    on, off, got, want = _both(y, {"x": np.array([[-np.inf, 0.0, -0.0], [np.inf, np.nan, -1e30]], np.float32)})
    same_bits(got, want)
    assert ops_of(on) == ops_of(off)


def test_plus_zero_is_kept_because_the_sign_of_zero_shows():
    with gc.Graph("signed-zero"):
        x = gc.input("x", shape=(2,), dtype="float64")
        y = 1.0 / (-x + 0.0)
    on, off, got, want = _both(y, {"x": np.array([0.0, 2.0])})
    assert got[0] == np.inf  # -0 + 0 = +0; x itself (-0) would give -inf
    same_bits(got, want)


def test_an_identity_that_drops_a_broadcast_keeps_the_shape_with_a_view():
    with gc.Graph("broadcast"):
        x = gc.input("x", shape=(3,), dtype="float64")
        y = gc.tanh(x) * np.ones((2, 3))  # x·1, of shape (2, 3)
        z = gc.tanh(x) ** np.ones((4, 1))  # x¹, of shape (4, 3)
    on, off, got, want = _both([y, z], {"x": np.array([-1.0, 0.0, 2.0])})
    for a, b in zip(got, want):
        same_bits(a, b)
    assert "mul" not in ops_of(on) and "pow" not in ops_of(on) and ops_of(on).count("broadcast_to") == 2


def test_a_rewrite_to_another_dtype_is_refused():
    """A rule may only drop an op for a value of the node's dtype (the pass checks what rules return)."""
    widen = Primitive("test_widen_simplified", infer=lambda x: gc.Aval(x.shape, np.dtype("float64")),
                      kernel=lambda out, x: np.copyto(out, x), simplify=lambda t: t.args[0])
    with gc.Graph("dtype"):
        x = _x32((3,))
        y = widen(gc.tanh(x))
    prog = gc.compile(y)
    assert "test_widen_simplified" in ops_of(prog)
    assert prog.run({"x": np.ones(3, np.float32)}).dtype == np.float64


def test_rules_that_undo_each_other_stop():
    """A rule that rewrites a node into itself forever is cut off after MAX_REWRITES; the node stays."""
    loop = Primitive("test_rewrites_forever", infer=lambda x: x, kernel=lambda out, x: np.copyto(out, x))
    loop.simplify = lambda t: Apply(loop, t.args)
    with gc.Graph("loop"):
        x = _x32((3,))
        y = loop(gc.tanh(x))
    got = gc.compile(y).run({"x": np.ones(3, np.float32)})
    np.testing.assert_array_equal(got, np.tanh(np.ones(3, np.float32)))


def test_numpy_squares_a_power_with_a_one_element_exponent_two():
    """What makes pow(x, 2) → x·x exact: NumPy's power with a one-element exponent 2 is x·x,
    contiguous or strided, in place or not (NumPy's general pow differs in the last bit)."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        big = (rng.standard_normal((60, 70)) * 1e3).astype(dtype)
        bits = rng.integers(0, 2 ** 31, size=4000, dtype=np.uint64).astype(f"u{np.dtype(dtype).itemsize}")
        for x in (big, big.T, big[::3, ::2], bits.view(dtype)):
            for exponent in (np.array(2.0, dtype), np.array([2.0], dtype)):
                out = np.empty(np.broadcast_shapes(x.shape, exponent.shape), dtype)
                with np.errstate(all="ignore"):
                    np.power(x, exponent, out=out)
                    same_bits(out, x * x)


def test_the_pow_in_a_vjp_is_gone():
    """∂ Σ x²/∂x = 2·x^(2-1): the exponent folds to 1 and x¹ is x; x² itself is x·x."""
    with gc.Graph("pow-vjp"):
        x = gc.input("x", shape=(4,), dtype="float64")
        loss = gc.sum(x ** 2.0)
        dx = gc.grad(loss, x)
    on, off, got, want = _both([loss, dx], {"x": SPECIALS[:4]})
    assert "pow" in ops_of(off) and "pow" not in ops_of(on)
    for a, b in zip(got, want):
        same_bits(a, b)


# --- constant folding --------------------------------------------------------------------------------


def _constant_values(flow: Dataflow) -> list[np.ndarray]:
    return [n.data for n in flow.nodes if n.kind == "const"]


def test_folding_computes_in_the_nodes_dtype_and_the_constant_owns_its_data():
    with gc.Graph("fold") as g:
        x = _x32((3,))
        scale = gc.exp(gc.constant(np.array([0.0, 1.0, 2.0]), "float32")) * 0.5
        y = x * scale
    before = [(n, n.inputs) for n in g.nodes]
    flow = optimize([y.node])
    (folded,) = [c for c in _constant_values(flow) if c.shape == (3,)]
    assert folded.dtype == np.float32 and folded.flags.owndata and not folded.flags.writeable
    same_bits(folded, np.exp(np.array([0.0, 1.0, 2.0], np.float32)) * np.float32(0.5))
    assert [(n, n.inputs) for n in g.nodes] == before  # the user's graph is untouched
    assert [n.op_name for n in flow.nodes if not n.is_source] == ["mul"]
    with pytest.raises(ValueError):
        folded[0] = 1.0


def test_what_is_not_folded():
    with gc.Graph("not-folded"):
        key = gc.constant(np.int64(3))
        big = gc.exp(gc.constant(np.zeros(FOLD_LIMIT_BYTES // 8 + 1), "float64"))  # a result over the size cap
        spread = gc.broadcast_to(gc.constant(2.0, "float64"), (100, 100))  # a view that would grow its operand
        noise = gc.uniform(key, (3,), "float64")  # random
        overflow = gc.exp(gc.constant(1000.0, "float64"))  # inf: the run computes it
        hot = gc.one_hot(gc.constant(np.array([0, 7])), 4, "float64")  # labels out of range: the run reports it
    flow = optimize([big.node, spread.node, noise.node, overflow.node])
    computed = sorted(n.op_name for n in flow.nodes if not n.is_source and n.op_name != "copy")  # copies: returned views
    assert computed == ["broadcast_to", "exp", "exp", "uniform"]
    with pytest.raises(gc.GraphError, match=r"one_hot.*\[0, 4\)"):
        gc.compile(hot).run()


def test_equal_folded_constants_merge():
    with gc.Graph("merge"):
        x = _x32((3,))
        y = x * (gc.constant(2.0, "float32") * 0.5) + x * (gc.constant(0.5, "float32") * 2.0)  # both fold to 1
        z = x * (gc.constant(4.0, "float32") / 2.0) + x * (gc.constant(1.0, "float32") + 1.0)  # both fold to 2
    on = gc.compile([y, z])
    assert ops_of(on) == ["mul", "mul"]  # x·1 + x·1 = x + x = x·2;  x·2 + x·2 = (x·2)·2 = x·4
    for a, b in zip(on.run({"x": SPECIALS[:3].astype(np.float32)}),
                    gc.compile([y, z], simplify=False).run({"x": SPECIALS[:3].astype(np.float32)})):
        same_bits(a, b)


def test_compile_rejects_a_simplify_that_is_not_a_bool():
    with gc.Graph("option"):
        x = _x32((3,))
    with pytest.raises(gc.GraphError, match="simplify='no' must be True or False"):
        gc.compile(gc.tanh(x), simplify="no")


def test_a_batch_program_forwards_simplify():
    with gc.Graph("batch"):
        x = gc.input("x", shape=(None, 3), dtype="float64")
        y = gc.tanh(x) * 1.0
    on, off = gc.compile(y, simplify=True), gc.compile(y, simplify=False)
    feeds = {"x": np.ones((5, 3))}
    same_bits(on.run(feeds), off.run(feeds))
    assert ops_of(on.specialize(5)) == ["tanh"] and ops_of(off.specialize(5)) == ["tanh", "mul"]


# --- simplification: the law over random graphs ------------------------------------------------------

feeds_kinds = st.sampled_from(["normal", "special"])


def _feeds_of(kind: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return {name: rng.standard_normal(SHAPE) for name in "ab"}
    return {name: rng.choice(SPECIALS, size=SHAPE) for name in "ab"}


@PROPERTY
@given(simplifiable_recipes, feeds_kinds, st.integers(0, 3))
def test_simplified_plans_compute_the_bits_of_unsimplified_ones(recipe, kind, seed):
    """Outputs and gradients, bit for bit, on random graphs with constants, x·1, x + x, x¹, x², chains…"""
    built = build(recipe, feeds=_feeds_of(kind, seed))
    values = built.values
    loss = gc.sum(sum(values[2:], start=values[2] * 0.0))
    grads = gc.grad(loss, values[:2])
    outputs = [*values[2:], loss, *grads]
    on, off, got, want = _both(outputs, built.feeds)
    for a, b in zip(got, want):
        same_bits(a, b)
    assert len(on.plan.instructions) <= len(off.plan.instructions)


@PROPERTY
@given(simplifiable_recipes)
def test_simplified_random_graphs_compute_what_numpy_does(recipe):
    built = build(recipe)
    with np.errstate(all="ignore"):
        results = gc.compile(built.values).run(built.feeds)
    for got, want in zip(results, built.expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


# --- the training steps of the zoo --------------------------------------------------------------------


def _mlp_step(simplified: bool):
    graph, values = zoo.mlp(32)
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], list(values["params"]), 0.1), simplify=simplified)
    return graph, values, prog


def test_the_mlp_training_step_is_smaller_and_trains_to_the_same_bits():
    (g_on, v_on, on), (g_off, v_off, off) = _mlp_step(True), _mlp_step(False)
    assert len(on.plan.instructions) < len(off.plan.instructions)
    assert on.cost.total_flops < off.cost.total_flops
    assert {"one_hot", "softmax"}.isdisjoint(ops_of(on) + ops_of(off))  # the cross-entropy's backward builds neither
    feeds = zoo.feeds(g_on, seed=1)
    for _ in range(3):
        same_bits(on.run(feeds), off.run(feeds))
    for p, q in zip(v_on["params"], v_off["params"]):
        same_bits(p.value, q.value)


def test_simplification_is_a_loop_over_a_long_chain(monkeypatch):
    """Every node of a 5000-deep chain is rewritten (·1, -(-h)), at a recursion limit of 1000."""
    with gc.Graph("long") as g:
        x = gc.input("x", shape=(2,), dtype="float64")
        h = x
        for _ in range(2500):
            h = -(h * 1.0)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        flow = optimize([h.node])
    finally:
        sys.setrecursionlimit(before)
    assert [n.op_name for n in flow.nodes] == ["input", "copy"] and len(g.nodes) > 5000


def test_updates_whose_new_value_simplifies_to_a_param():
    """{w: w·1} writes nothing; {a: b·1, b: a·1} is still a swap: both old values read first."""
    with gc.Graph("updates"):
        w = gc.param("w", shape=(2,), dtype="float64", init=np.array([1.0, 2.0]))
        a = gc.param("a", shape=(2,), dtype="float64", init=np.array([3.0, 4.0]))
        b = gc.param("b", shape=(2,), dtype="float64", init=np.array([5.0, 6.0]))
        total = gc.sum(w + a + b)
    prog = gc.compile(total, updates={w: w * 1.0, a: b * 1.0, b: a * 1.0})
    assert "mul" not in ops_of(prog)
    assert prog.run() == 21.0
    np.testing.assert_array_equal(w.value, [1.0, 2.0])
    np.testing.assert_array_equal(a.value, [5.0, 6.0])
    np.testing.assert_array_equal(b.value, [3.0, 4.0])
