"""graphc/ir.py: Graph, Node and Value — creation order, names, operators, constants, describe()."""

import operator
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import graphc as gc
from graphc.ir import ancestors, current_graph


def run(value: gc.Value, feeds: dict | None = None) -> np.ndarray:
    return gc.compile(value).run(feeds or {})


# --- creation order --------------------------------------------------------------


def test_ids_are_positions_in_creation_order():
    with gc.Graph("g") as g:
        x = gc.input("x", shape=(3,))
        y = gc.tanh(x) * 2.0 + x
    assert [n.id for n in g.nodes] == list(range(len(g)))
    assert list(g) == g.nodes
    assert g.nodes[-1] is y.node


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from("+-*")), min_size=1, max_size=25))
def test_creation_order_is_topological(draws):
    """Whatever the user builds, every node reads only nodes created before it."""
    with gc.Graph("random") as g:
        values = [gc.input("x", shape=(2,)), gc.param("w", shape=(2,))]
        for i, j, op in draws:
            a, b = values[i % len(values)], values[j % len(values)]
            values.append({"+": operator.add, "-": operator.sub, "*": operator.mul}[op](a, b))
    position = {n: k for k, n in enumerate(g.nodes)}
    for node in g.nodes:
        assert all(position[a] < position[node] for a in node.inputs)


def test_ancestors_are_the_roots_and_what_they_read_in_creation_order():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        unused = gc.exp(x)
        y = gc.tanh(x)
        z = y * y
    found = ancestors([z.node])
    assert found == [x.node, y.node, z.node]
    assert unused.node not in found


def test_ancestors_of_a_chain_deeper_than_the_recursion_limit():
    depth = 3000  # deeper than Python's default recursion limit of 1000
    with gc.Graph("deep"):
        h = gc.input("x", shape=(1,))
        for _ in range(depth):
            h = gc.neg(h)
    assert len(ancestors([h.node])) == depth + 1


# --- names --------------------------------------------------------------------


def test_unnamed_nodes_are_named_by_op_and_id():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        y = gc.tanh(x)
    assert y.name == f"tanh_{y.node.id}"


def test_an_explicit_name_is_kept():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        y = gc.tanh(x, name="hidden")
    assert y.name == "hidden"


def test_inputs_and_params_are_indexed_by_name():
    with gc.Graph("g") as g:
        x = gc.input("x", shape=(2,))
        w = gc.param("w", shape=(2,))
    assert g.inputs == {"x": x.node}
    assert g.params == {"w": w.node}


@pytest.mark.parametrize("first, second", [("input", "input"), ("input", "param"), ("param", "input")])
def test_an_input_or_param_name_used_twice_is_an_error(first, second):
    make = {"input": gc.input, "param": gc.param}
    with gc.Graph("g"):
        make[first]("x", shape=(2,))
        with pytest.raises(gc.GraphError, match="already has an input or param named 'x'"):
            make[second]("x", shape=(2,))


# --- the open graph ------------------------------------------------------------------


def test_no_open_graph_is_an_error_that_says_what_to_do():
    with pytest.raises(gc.GraphError, match=r"with gc\.Graph"):
        current_graph()


def test_nested_graphs_build_into_the_innermost():
    with gc.Graph("outer") as outer:
        with gc.Graph("inner") as inner:
            x = gc.input("x", shape=(2,))
        assert current_graph() is outer
    assert x.graph is inner and len(outer) == 0


def test_the_open_graph_belongs_to_its_thread():
    seen = []
    with gc.Graph("main"):
        thread = threading.Thread(target=lambda: seen.append(_current_or_none()))
        thread.start()
        thread.join()
    assert seen == [None]


def _current_or_none():
    try:
        return current_graph()
    except gc.GraphError:
        return None


def test_values_of_two_graphs_do_not_mix():
    with gc.Graph("a"):
        x = gc.input("x", shape=(2,))
    with gc.Graph("b"):
        y = gc.input("y", shape=(2,))
    with pytest.raises(gc.GraphError, match="belongs to another graph.*graph 'b', not 'a'"):
        x + y


def test_an_op_on_values_needs_no_open_graph():
    with gc.Graph("a") as g:
        x = gc.input("x", shape=(2,))
    y = gc.tanh(x) + 1.0
    assert y.graph is g and y.node in g.nodes


# --- operators ---------------------------------------------------------------------------

BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
}


@pytest.mark.parametrize("op_name", sorted(BINARY))
def test_each_binary_operator_builds_its_op_in_operand_order(op_name):
    fn = BINARY[op_name]
    a_val, b_val = np.array([1.5, 2.0, 3.0]), np.array([0.5, 4.0, 2.5])
    with gc.Graph("g"):
        a = gc.input("a", shape=(3,), dtype="float64")
        b = gc.input("b", shape=(3,), dtype="float64")
        y = fn(a, b)
    assert y.op == op_name and y.node.inputs == (a.node, b.node)
    np.testing.assert_allclose(run(y, {"a": a_val, "b": b_val}), fn(a_val, b_val), rtol=1e-15)


@pytest.mark.parametrize("op_name", sorted(BINARY))
def test_reflected_operators_put_the_scalar_first(op_name):
    fn = BINARY[op_name]
    a_val = np.array([1.5, 2.0, 3.0])
    with gc.Graph("g"):
        a = gc.input("a", shape=(3,), dtype="float64")
        y = fn(2.0, a)
    const, operand = y.node.inputs
    assert const.kind == "const" and operand is a.node
    np.testing.assert_allclose(run(y, {"a": a_val}), fn(2.0, a_val), rtol=1e-15)


def test_matmul_and_its_reflection_with_an_ndarray():
    m = np.arange(6.0).reshape(2, 3)
    x_val = np.arange(12.0).reshape(3, 4) / 7
    with gc.Graph("g"):
        x = gc.input("x", shape=(3, 4), dtype="float64")
        right = m @ x  # ndarray on the left defers to Value.__rmatmul__
        left = x.T @ m.T
    assert isinstance(right, gc.Value) and right.op == "matmul"
    np.testing.assert_allclose(run(right, {"x": x_val}), m @ x_val)
    np.testing.assert_allclose(run(left, {"x": x_val}), x_val.T @ m.T)


def test_unary_minus_is_neg():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,), dtype="float64")
        y = -x
    assert y.op == "neg"
    np.testing.assert_array_equal(run(y, {"x": np.array([1.0, -2.0])}), [-1.0, 2.0])


@settings(max_examples=25, deadline=None)
@given(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=4),
    st.sampled_from(["add", "sub", "mul"]),
)
def test_a_scalar_operand_computes_as_numpy_does(scalar, xs, op_name):
    """``x ∘ c`` and ``c ∘ x`` in float64 give NumPy's result bit for bit."""
    fn, x_val = BINARY[op_name], np.array(xs)
    with gc.Graph("g"):
        x = gc.input("x", shape=x_val.shape, dtype="float64")
        left, right = fn(x, scalar), fn(scalar, x)
    prog = gc.compile([left, right])
    got_left, got_right = prog.run({"x": x_val})
    np.testing.assert_array_equal(got_left, fn(x_val, scalar))
    np.testing.assert_array_equal(got_right, fn(scalar, x_val))


COMPARISONS = {
    "less": operator.lt,
    "less_equal": operator.le,
    "greater": operator.gt,
    "greater_equal": operator.ge,
    "equal": operator.eq,
    "not_equal": operator.ne,
}


@pytest.mark.parametrize("op_name", sorted(COMPARISONS))
def test_each_comparison_operator_builds_a_mask_of_its_op(op_name):
    """``a < b`` etc. are elementwise, 0.0/1.0 in the operands' dtype, either way round with a scalar or array."""
    fn = COMPARISONS[op_name]
    a_val, b_val = np.array([1.0, 2.0, 3.0, 2.0], np.float32), np.array([2.0, 2.0, 1.0, 5.0], np.float32)
    with gc.Graph("g"):
        a = gc.input("a", shape=(4,), dtype="float32")
        b = gc.input("b", shape=(4,), dtype="float32")
        y, with_scalar, reflected, with_array = fn(a, b), fn(a, 2.0), fn(2.0, a), fn(b_val, a)
    assert y.op == op_name and y.node.inputs == (a.node, b.node) and y.dtype == np.float32
    got = gc.compile([y, with_scalar, reflected, with_array]).run({"a": a_val, "b": b_val})
    for result, expected in zip(got, [fn(a_val, b_val), fn(a_val, 2.0), fn(2.0, a_val), fn(b_val, a_val)]):
        np.testing.assert_array_equal(result, expected.astype(np.float32))


def test_values_stay_dict_keys_and_set_members_though_eq_is_elementwise():
    """``==`` builds a node, but hashing is by identity: ``{w: w - lr·dw}`` updates and sets of Values work,
    a Value equals only itself as a key, and a non-operand (None, a string) compares unequal."""
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,), dtype="float64")
        w = gc.param("w", shape=(2,), dtype="float64", init=np.array([1.0, 2.0]))
        loss = gc.sum(w * x)
        new_w = w - 0.5 * gc.grad(loss, w)
    same_node = gc.Value(w.node)
    updates = {w: new_w}
    assert updates[w] is new_w and w in updates and x not in updates and same_node not in updates
    assert len({w, x, w, new_w}) == 3 and hash(w) != hash(same_node)
    assert (w == None) is False and (w != "w") is True  # noqa: E711
    assert (w == x).op == "equal" and (w != x).op == "not_equal"
    gc.compile([loss], updates=updates).run({"x": np.array([2.0, 4.0])})
    np.testing.assert_array_equal(w.value, [0.0, 0.0])


def test_membership_of_a_value_in_a_list_says_to_use_is():
    """``x in [y]`` asks ``x == y`` for a truth value: the error names ``is`` (identity is found first)."""
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        y = gc.input("y", shape=(2,))
    assert x in [x, y]
    with pytest.raises(gc.GraphError, match=r"symbolic.*`a is b`"):
        x in [y]  # noqa: B015


def test_a_value_has_no_truth_value():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
    with pytest.raises(gc.GraphError, match="symbolic"):
        bool(x)


def test_transpose_property():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2, 3))
    assert x.T.shape == (3, 2) and x.T.op == "transpose"


def test_methods_take_numpys_arguments():
    """``.sum() .mean() .max() .reshape() .transpose() .astype()`` build the functions' nodes."""
    x_val = np.arange(24.0).reshape(2, 3, 4) / 7
    with gc.Graph("g"):
        x = gc.input("x", shape=(2, 3, 4), dtype="float64")
        results = [x.sum(), x.sum(axis=1, keepdims=True), x.mean(-1), x.max(axis=(0, 2)), x.reshape(6, 4),
                   x.reshape((4, -1)), x.transpose(), x.transpose(2, 0, 1), x.transpose((1, 0, 2)), x.astype("float32")]
    expected = [x_val.sum(), x_val.sum(axis=1, keepdims=True), x_val.mean(-1), x_val.max(axis=(0, 2)),
                x_val.reshape(6, 4), x_val.reshape((4, -1)), x_val.transpose(), x_val.transpose(2, 0, 1),
                x_val.transpose((1, 0, 2)), x_val.astype("float32")]
    assert [r.op for r in results] == ["sum", "sum", "mean", "max"] + ["reshape"] * 2 + ["transpose"] * 3 + ["astype"]
    for got, want in zip(gc.compile(results).run({"x": x_val}), expected):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-15)


# --- constant promotion ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_python_scalar_becomes_a_constant_of_the_values_dtype(dtype):
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,), dtype=dtype)
        y = x * 3
    const = y.node.inputs[1]
    assert const.kind == "const" and const.dtype == np.dtype(dtype) and const.shape == ()
    assert y.dtype == np.dtype(dtype)


def test_an_array_operand_becomes_a_read_only_copy():
    array = np.array([1.0, 2.0])
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,), dtype="float64")
        y = x + array
    const = y.node.inputs[1]
    array[0] = 100.0  # the caller's array changes after the build: the graph does not
    assert const.data[0] == 1.0 and not const.data.flags.writeable
    np.testing.assert_array_equal(run(y, {"x": np.zeros(2)}), [1.0, 2.0])


def test_a_float_array_is_cast_to_the_values_dtype():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,), dtype="float32")
        y = x + np.array([1.0, 2.0], dtype=np.float64)
    assert y.node.inputs[1].dtype == np.float32 and y.dtype == np.float32


def test_an_unsupported_operand_type_is_an_error():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
        with pytest.raises(gc.GraphError, match="cannot use a str"):
            x + "one"


# --- stored values -------------------------------------------------------------------------


def test_value_of_a_param_is_a_copy():
    with gc.Graph("g"):
        w = gc.param("w", shape=(2,), dtype="float64", init=np.array([1.0, 2.0]))
    got = w.value
    got[0] = 50.0
    np.testing.assert_array_equal(w.value, [1.0, 2.0])


def test_assign_checks_shape_and_dtype():
    with gc.Graph("g"):
        w = gc.param("w", shape=(2,), dtype="float64")
    w.assign(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(w.value, [3.0, 4.0])
    with pytest.raises(gc.GraphError, match=r"shape \(3,\), expected \(2,\)"):
        w.assign(np.zeros(3))
    with pytest.raises(gc.GraphError, match="dtype float32, expected float64"):
        w.assign(np.zeros(2, np.float32))


def test_only_params_can_be_assigned_and_inputs_have_no_value():
    with gc.Graph("g"):
        x = gc.input("x", shape=(2,))
    with pytest.raises(gc.GraphError, match="not a param"):
        x.assign(np.zeros(2, np.float32))
    with pytest.raises(gc.GraphError, match="no stored value"):
        x.value


# --- describe -------------------------------------------------------------------------------


def test_describe_names_node_op_shape_and_dtype():
    with gc.Graph("g"):
        x = gc.input("x", shape=(8, 4), dtype="float64")
        y = gc.tanh(x, name="h1")
    assert y.node.describe() == "'h1' (tanh, shape (8, 4), float64)"
    assert x.node.describe() == "'x' (input, shape (8, 4), float64)"


def test_reprs_show_the_node_and_its_operands():
    with gc.Graph("g") as g:
        x = gc.input("x", shape=(2,))
        y = gc.tanh(x, name="h")
    assert repr(y.node) == "<Node 1 h = tanh(x) : (2,) float32>"
    assert repr(y) == "<Value h: tanh (2,) float32>"
    assert repr(g) == "<Graph 'g': 2 nodes>"
