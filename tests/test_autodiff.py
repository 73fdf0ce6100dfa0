"""The adjoint pass: sums over consumers, zeros by structure, seeds, and what it builds.

Oracles are hand-derived NumPy expressions or JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import graphc as gc
from graphc.ir import AdjointInfo

jax.config.update("jax_enable_x64", True)

ROLES = {"seed", "vjp", "contribution", "accumulate", "zero"}


def _run(outputs, feeds):
    return gc.compile(outputs).run(feeds)


# --- fan-out: a value read by several consumers gets the sum of their J^T terms -----------


def test_fan_out_to_three_consumers():
    X = np.linspace(-1.5, 1.5, 12).reshape(3, 4)
    with gc.Graph("fanout"):
        x = gc.input("x", shape=(3, 4), dtype="float64")
        y = gc.sum(2.0 * gc.tanh(x) + gc.sigmoid(x) + gc.exp(x))
    dx = gc.grad(y, x)
    assert dx.op == "add_n" and dx.node.adjoint.role == "accumulate"
    assert dx.node.adjoint.forward is x.node
    assert len(dx.node.inputs) == 3
    assert {t.adjoint.consumer.op.name for t in dx.node.inputs} == {"tanh", "sigmoid", "exp"}
    got = _run(dx, {"x": X})
    t, s = np.tanh(X), 1 / (1 + np.exp(-X))
    np.testing.assert_allclose(got, 2 * (1 - t**2) + s * (1 - s) + np.exp(X), rtol=1e-13)


@pytest.mark.parametrize("expr, expected", [
    # y = Σ x⊙x: both operands of one mul are x, so there are two terms, 2x.
    (lambda x: gc.sum(x * x), lambda X: 2 * X),
    # y = Σ x @ x (Paddle #11977): ∂y/∂x = 1 @ xᵀ + xᵀ @ 1.
    (lambda x: gc.sum(x @ x), lambda X: np.ones_like(X) @ X.T + X.T @ np.ones_like(X)),
    # y = Σ (x + x) ⊙ x = Σ 2x²: 4x, three uses of x.
    (lambda x: gc.sum((x + x) * x), lambda X: 4 * X),
])
def test_same_operand_twice(expr, expected):
    X = np.arange(9.0).reshape(3, 3) / 7 - 0.5
    with gc.Graph("twice"):
        x = gc.input("x", shape=(3, 3), dtype="float64")
        y = expr(x)
    np.testing.assert_allclose(_run(gc.grad(y, x), {"x": X}), expected(X), rtol=1e-13, atol=1e-15)


def test_fan_out_with_broadcast_bias():
    """A (4,) bias broadcast into two (3, 4) sums: ∂/∂b sums over rows, then over the consumers."""
    rng = np.random.default_rng(0)
    X, B = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    with gc.Graph("bias"):
        x = gc.input("x", shape=(3, 4), dtype="float64")
        b = gc.param("b", shape=(4,), dtype="float64", init=B)
        y = gc.sum(gc.tanh(x + b)) + gc.sum((x * b) ** 2)
    got = _run(gc.grad(y, b), {"x": X})
    t = np.tanh(X + B)
    expected = (1 - t**2).sum(0) + (2 * (X * B) * X).sum(0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# --- zeros by structure ---------------------------------------------------------------


def _unreached_graph():
    with gc.Graph("unreached") as g:
        x = gc.input("x", shape=(2, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64", init=np.eye(3))
        u = gc.param("u", shape=(5,), dtype="float64", init=np.ones(5))
        gc.exp(u)  # u feeds a branch, but not y
        y = gc.sum(x @ w)
    return g, x, w, u, y


def test_wrt_not_reached_gets_zeros():
    g, x, w, u, y = _unreached_graph()
    dw, du = gc.grad(y, [w, u])  # outside any `with` block
    assert du.shape == (5,) and du.dtype == np.float64
    assert du.node.adjoint.role == "zero" and du.node.adjoint.forward is u.node
    assert du.graph is g
    X = np.arange(6.0).reshape(2, 3)
    got_dw, got_du = _run([dw, du], {"x": X})
    np.testing.assert_array_equal(got_du, np.zeros(5))
    np.testing.assert_allclose(got_dw, X.T @ np.ones((2, 3)))


def test_zero_gradient_lands_in_ys_graph_while_another_graph_is_open():
    g, x, w, u, y = _unreached_graph()
    with gc.Graph("other") as other:
        du = gc.grad(y, u)
    assert len(other.nodes) == 0
    assert du.graph is g and all(n.graph is g for n in g.nodes)
    np.testing.assert_array_equal(_run(du, {"x": np.ones((2, 3))}), np.zeros(5))


def test_nothing_reaches_y():
    with gc.Graph("const"):
        w = gc.param("w", shape=(2,), dtype="float64")
        x = gc.input("x", shape=(2,), dtype="float64")
        y = gc.sum(x * 3.0)
    dw = gc.grad(y, w)
    np.testing.assert_array_equal(_run(dw, {"x": np.ones(2)}), np.zeros(2))


# --- gradients with respect to intermediates, and of y itself --------------------------


def test_gradient_wrt_intermediates():
    rng = np.random.default_rng(1)
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    with gc.Graph("inter"):
        x = gc.input("x", shape=(4, 3), dtype="float64")
        w = gc.param("w", shape=(3, 2), dtype="float64", init=W)
        z = x @ w
        h = gc.tanh(z)
        y = gc.sum(h * h)
    dh, dz, dy, dw = gc.grad(y, [h, z, y, w])
    got_dh, got_dz, got_dy, got_dw = _run([dh, dz, dy, dw], {"x": X})
    H = np.tanh(X @ W)
    np.testing.assert_allclose(got_dh, 2 * H, rtol=1e-13)
    np.testing.assert_allclose(got_dz, 2 * H * (1 - H**2), rtol=1e-13)
    np.testing.assert_allclose(got_dy, 1.0)
    np.testing.assert_allclose(got_dw, X.T @ (2 * H * (1 - H**2)), rtol=1e-12)


def test_single_wrt_returns_a_value_and_a_list_returns_a_list():
    with gc.Graph("single"):
        w = gc.param("w", shape=(3,), dtype="float64")
        y = gc.sum(w * w)
    assert isinstance(gc.grad(y, w), gc.Value)
    out = gc.grad(y, [w])
    assert isinstance(out, list) and len(out) == 1
    a, b = gc.grad(y, [w, w])
    np.testing.assert_array_equal(*_run([a, b], {}))


# --- seeds: vector-Jacobian products of non-scalar y ------------------------------------


def test_seed_gives_the_vjp_of_a_non_scalar_y():
    rng = np.random.default_rng(2)
    X, W, C = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    with gc.Graph("vjp"):
        x = gc.input("x", shape=(5, 3), dtype="float64")
        w = gc.param("w", shape=(3, 4), dtype="float64", init=W)
        y = gc.sigmoid(x @ w) * gc.tanh(x @ w + 1.0)
    dx, dw = gc.grad(y, [x, w], seed=C)
    got = _run([dx, dw], {"x": X})

    def f(x_, w_):
        z = x_ @ w_
        return jax.nn.sigmoid(z) * jnp.tanh(z + 1.0)

    _, pullback = jax.vjp(f, X, W)
    ref_dx, ref_dw = pullback(C)
    np.testing.assert_allclose(got[0], ref_dx, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got[1], ref_dw, rtol=1e-11, atol=1e-14)


def test_seed_as_a_value_fed_at_run_time():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 2))
    with gc.Graph("vjp-value"):
        x = gc.input("x", shape=(4, 2), dtype="float64")
        c = gc.input("c", shape=(4, 2), dtype="float64")
        y = gc.exp(x) * x
    dx = gc.grad(y, x, seed=c)
    prog = gc.compile(dx)
    for _ in range(2):
        C = rng.normal(size=(4, 2))
        np.testing.assert_allclose(prog.run({"x": X, "c": C}), C * (np.exp(X) * (1 + X)), rtol=1e-13)


def test_seed_with_the_wrong_shape_raises():
    with gc.Graph("bad-seed"):
        x = gc.input("x", shape=(4, 2), dtype="float64")
        c = gc.input("c", shape=(2, 4), dtype="float64")
        y = gc.tanh(x)
    with pytest.raises(gc.GraphError, match=r"\(4, 3\)"):
        gc.grad(y, x, seed=np.ones((4, 3)))
    with pytest.raises(gc.GraphError, match="seed"):
        gc.grad(y, x, seed=c)


def test_non_scalar_y_without_seed_raises():
    with gc.Graph("nonscalar"):
        x = gc.input("x", shape=(4, 2), dtype="float64")
        y = gc.tanh(x)
    with pytest.raises(gc.GraphError, match=r"not a scalar.*seed") as info:
        gc.grad(y, x)
    assert "(4, 2)" in str(info.value) and y.name in str(info.value)


def test_grad_wrt_an_int_input_raises():
    with gc.Graph("labels"):
        logits = gc.input("logits", shape=(3, 4), dtype="float64")
        labels = gc.input("labels", shape=(3,), dtype="int64")
        loss = gc.softmax_cross_entropy(logits, labels)
    with pytest.raises(gc.GraphError, match="labels") as info:
        gc.grad(loss, labels)
    assert "int64" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_grad_wrt_a_value_of_another_graph_raises():
    with gc.Graph("a"):
        w = gc.param("w", shape=(2,), dtype="float64")
        y = gc.sum(w)
    with gc.Graph("b"):
        v = gc.param("v", shape=(2,), dtype="float64")
    with pytest.raises(gc.GraphError, match="graph"):
        gc.grad(y, v)


# --- only the nodes between wrt and y get adjoints --------------------------------------


def _build(side_branches: bool):
    with gc.Graph("between") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        z = gc.input("z", shape=(4, 2), dtype="float64")
        w = gc.param("w", shape=(3, 2), dtype="float64")
        v = gc.param("v", shape=(3, 2), dtype="float64")
        y = gc.sum(gc.tanh(x @ w) * 2.0)
        if side_branches:
            y = y + gc.sum(gc.exp(z) * gc.sigmoid(z))  # reaches y, but not from w
            gc.sum(gc.relu(x @ w) @ v.T)  # depends on w, but y does not read it
            y = y + gc.sum(gc.tanh(x @ v))  # depends on v only
    return g, w, y


def _downstream(graph, source):
    """The nodes that depend on ``source`` (itself included), by one sweep in creation order."""
    down = {source}
    for n in graph.nodes:
        if any(i in down for i in n.inputs):
            down.add(n)
    return down


def test_no_adjoint_nodes_off_the_wrt_to_y_paths():
    g0, w0, y0 = _build(side_branches=False)
    before0 = len(g0.nodes)
    gc.grad(y0, w0)
    added_plain = len(g0.nodes) - before0

    g1, w1, y1 = _build(side_branches=True)
    before1 = len(g1.nodes)
    on_path = _downstream(g1, w1.node)  # computed before grad adds anything
    gc.grad(y1, w1)
    added = g1.nodes[before1:]
    # The side branches only lengthen y's chain of scalar adds, whose J^T is the identity
    # (no new node), so the pass must add exactly as many nodes as without them.
    assert len(added) == added_plain
    for n in added:
        assert n.adjoint.forward in on_path, n
        if n.adjoint.consumer is not None:
            assert n.adjoint.consumer in on_path, n
    # The dead branch relu(x @ w) @ vᵀ depends on w but not y: none of its nodes is a forward.
    assert not any(n.adjoint.forward.op_name in ("relu", "exp", "sigmoid") for n in added)


def test_the_number_of_adjoint_nodes_for_a_chain():
    """y = Σ tanh(x·w): the pass builds the seed's path and one contribution per edge only."""
    with gc.Graph("chain") as g:
        x = gc.input("x", shape=(3,), dtype="float64")
        w = gc.param("w", shape=(3,), dtype="float64")
        extra = gc.param("extra", shape=(3,), dtype="float64")
        y = gc.sum(gc.tanh(x * w)) + gc.sum(gc.exp(extra) * x)
    before = len(g.nodes)
    dw = gc.grad(y, w)
    added = g.nodes[before:]
    for n in added:
        assert n.adjoint is not None
        assert n.adjoint.forward is not None
        assert n.adjoint.forward.name != "extra" and n.adjoint.forward.op_name != "exp"
    # One contribution per edge of the path w → mul → tanh → sum → add(y): four, and none
    # for the edges into the exp(extra) branch.
    recorded = g.contributions
    assert len(recorded) == 4
    assert [c.consumer.op.name for c in recorded] == ["add", "sum", "tanh", "mul"]
    assert all(c.forward.name != "extra" for c in recorded)
    X, W = np.array([0.5, -1.0, 2.0]), w.value
    t = np.tanh(X * W)
    np.testing.assert_allclose(_run(dw, {"x": X}), (1 - t**2) * X, rtol=1e-13)


# --- metadata -----------------------------------------------------------------------------


def test_every_new_node_carries_adjoint_metadata():
    with gc.Graph("meta") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64")
        b = gc.param("b", shape=(3,), dtype="float64")
        h = gc.tanh(x @ w + b)
        y = gc.mean(gc.softmax(h @ w) * h)
    before = len(g.nodes)
    forward_nodes = list(g.nodes)
    dw, db = gc.grad(y, [w, b])
    assert all(n.adjoint is None for n in forward_nodes)
    added = g.nodes[before:]
    assert added
    for n in added:
        info = n.adjoint
        assert isinstance(info, AdjointInfo), n
        assert info.role in ROLES
        assert info.forward is not None and info.forward.id < before
        if info.role in ("vjp", "contribution"):
            assert info.consumer is not None and info.consumer.id < before
            assert info.forward in info.consumer.inputs
    assert [n.adjoint.role for n in added].count("seed") == 1
    assert dw.node.adjoint.forward is w.node and db.node.adjoint.forward is b.node
    assert dw.name == f"d{y.name}/dw" and db.name == f"d{y.name}/db"
    # Contributions recorded by the pass point at their terms, forward nodes, consumers and the
    # cotangents ∂ℓ/∂consumer they apply J^T to (the seed, for the consumer y).
    for c in g.contributions:
        assert c.forward in c.consumer.inputs
        assert c.term.aval == c.forward.aval
        assert c.cotangent.aval == c.consumer.aval
        if c.consumer is y.node:
            assert c.cotangent.adjoint.role == "seed"


def test_gradients_are_differentiable_values_of_the_same_graph():
    with gc.Graph("again") as g:
        w = gc.param("w", shape=(3,), dtype="float64", init=np.array([0.1, -0.4, 0.9]))
        y = gc.sum(w * w * w)
    dw = gc.grad(y, w)
    d2 = gc.grad(gc.sum(dw), w)  # Σ 3w² → 6w
    assert dw.graph is g and d2.graph is g
    W = w.value
    got_dw, got_d2 = _run([dw, d2], {})
    np.testing.assert_allclose(got_dw, 3 * W**2, rtol=1e-14)
    np.testing.assert_allclose(got_d2, 6 * W, rtol=1e-14)
