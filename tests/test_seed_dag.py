"""The lecture's DAG, checked against the slide's backward-pass equations term by term.

    x1 = φ1(x0; w1)      = tanh(x0 @ w1)
    x2 = φ2(x0, x1; w2)  = sigmoid((x0 + x1) @ w2)
    x3 = φ3(x1, x2; w1)  = (x1 * x2) @ w1
    ℓ  = Σ x3²

    ∂ℓ/∂x3 = 2 x3
    ∂ℓ/∂x2 = J^T_{φ3|x2} ∂ℓ/∂x3
    ∂ℓ/∂x1 = J^T_{φ3|x1} ∂ℓ/∂x3 + J^T_{φ2|x1} ∂ℓ/∂x2
    ∂ℓ/∂w1 = J^T_{φ3|w1} ∂ℓ/∂x3 + J^T_{φ1|w1} ∂ℓ/∂x1
    ∂ℓ/∂w2 = J^T_{φ2|w2} ∂ℓ/∂x2

The oracle is written by hand in NumPy from these equations; the Jacobian
transposes are derived on paper, not taken from graphc's VJP rules.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import graphc as gc

jax.config.update("jax_enable_x64", True)

RTOL, ATOL = 1e-12, 1e-12


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def seed():
    rng = np.random.default_rng(0)
    X0 = rng.normal(size=(8, 4))
    W1 = rng.normal(size=(4, 4)) * 0.7
    W2 = rng.normal(size=(4, 4)) * 0.7
    with gc.Graph("seed") as g:
        x0 = gc.input("x0", shape=(8, 4), dtype="float64")
        w1 = gc.param("w1", shape=(4, 4), dtype="float64", init=W1)
        w2 = gc.param("w2", shape=(4, 4), dtype="float64", init=W2)
        x1 = gc.tanh(x0 @ w1)
        x2 = gc.sigmoid((x0 + x1) @ w2)
        x3 = (x1 * x2) @ w1
        loss = gc.sum(x3 * x3)
    grads = gc.grad(loss, [x1, x2, x3, w1, w2])
    return dict(g=g, X0=X0, W1=W1, W2=W2, x0=x0, w1=w1, w2=w2, x1=x1, x2=x2, x3=x3, loss=loss, grads=grads)


def _by_hand(X0, W1, W2):
    """Forward pass and the slide's backward equations, each J^T written out."""
    X1 = np.tanh(X0 @ W1)
    Z2 = (X0 + X1) @ W2
    X2 = _sigmoid(Z2)
    X3 = (X1 * X2) @ W1
    loss = np.sum(X3**2)

    # J^T products, derived by hand for each φ and each of its arguments.
    def jt_phi3_x2(g):  # x3 = (x1*x2) @ w1  ⇒  ∂/∂x2: (g @ w1ᵀ) ⊙ x1
        return (g @ W1.T) * X1

    def jt_phi3_x1(g):
        return (g @ W1.T) * X2

    def jt_phi3_w1(g):  # ∂/∂w1: (x1 ⊙ x2)ᵀ @ g
        return (X1 * X2).T @ g

    def jt_phi2_x1(g):  # x2 = σ((x0+x1) @ w2)  ⇒  (g ⊙ σ(1-σ)) @ w2ᵀ
        return (g * X2 * (1 - X2)) @ W2.T

    def jt_phi2_w2(g):  # ∂/∂w2: (x0 + x1)ᵀ @ (g ⊙ σ(1-σ))
        return (X0 + X1).T @ (g * X2 * (1 - X2))

    def jt_phi1_w1(g):  # x1 = tanh(x0 @ w1)  ⇒  x0ᵀ @ (g ⊙ (1 - x1²))
        return X0.T @ (g * (1 - X1**2))

    d3 = 2 * X3
    d2 = jt_phi3_x2(d3)
    d1_terms = (jt_phi3_x1(d3), jt_phi2_x1(d2))
    d1 = d1_terms[0] + d1_terms[1]
    dw1_terms = (jt_phi3_w1(d3), jt_phi1_w1(d1))
    dw1 = dw1_terms[0] + dw1_terms[1]
    dw2 = jt_phi2_w2(d2)
    return dict(loss=loss, d1=d1, d2=d2, d3=d3, dw1=dw1, dw2=dw2, d1_terms=d1_terms, dw1_terms=dw1_terms)


def test_adjoints_match_the_slide_equations(seed):
    prog = gc.compile([seed["loss"], *seed["grads"]])
    loss, d1, d2, d3, dw1, dw2 = prog.run({"x0": seed["X0"]})
    ref = _by_hand(seed["X0"], seed["W1"], seed["W2"])
    np.testing.assert_allclose(loss, ref["loss"], rtol=RTOL)
    np.testing.assert_allclose(d3, ref["d3"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(d2, ref["d2"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(d1, ref["d1"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw1, ref["dw1"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw2, ref["dw2"], rtol=RTOL, atol=ATOL)


def _terms_by_consumer(acc: gc.Value) -> dict:
    """The add_n terms of an accumulation node, keyed by the consumer whose J^T they apply."""
    return {t.adjoint.consumer: t for t in acc.node.inputs}


def test_w1_gradient_is_one_accumulation_of_two_terms(seed):
    dw1 = seed["grads"][3]
    w1, x1, x3 = seed["w1"], seed["x1"], seed["x3"]
    assert dw1.op == "add_n"
    assert dw1.node.adjoint.role == "accumulate"
    assert dw1.node.adjoint.forward is w1.node
    assert len(dw1.node.inputs) == 2
    # φ3's use of w1 is the node x3 = matmul(x1*x2, w1); φ1's is the matmul inside tanh(x0 @ w1).
    phi1_matmul = x1.node.inputs[0]
    assert phi1_matmul.op.name == "matmul" and w1.node in phi1_matmul.inputs
    consumers = [t.adjoint.consumer for t in dw1.node.inputs]
    assert set(consumers) == {x3.node, phi1_matmul}
    for term in dw1.node.inputs:
        assert term.adjoint.forward is w1.node
        assert term.adjoint.role == "contribution"
    # The graph's record of contributions agrees.
    recorded = {(c.term, c.consumer) for c in seed["g"].contributions if c.forward is w1.node}
    assert recorded == {(t, t.adjoint.consumer) for t in dw1.node.inputs}


def test_each_term_of_the_sums_matches_its_jacobian_transpose(seed):
    """∂ℓ/∂w1 and ∂ℓ/∂x1 are sums of two J^T terms: compile each term on its own."""
    dw1, x1_grad = seed["grads"][3], seed["grads"][0]
    x1, x2, x3 = seed["x1"], seed["x2"], seed["x3"]
    ref = _by_hand(seed["X0"], seed["W1"], seed["W2"])

    w_terms = _terms_by_consumer(dw1)
    phi1_matmul = x1.node.inputs[0]
    got = gc.compile([gc.Value(w_terms[x3.node]), gc.Value(w_terms[phi1_matmul])]).run({"x0": seed["X0"]})
    np.testing.assert_allclose(got[0], ref["dw1_terms"][0], rtol=RTOL, atol=ATOL)  # J^T φ3|w1 ∂ℓ/∂x3
    np.testing.assert_allclose(got[1], ref["dw1_terms"][1], rtol=RTOL, atol=ATOL)  # J^T φ1|w1 ∂ℓ/∂x1

    # ∂ℓ/∂x1 accumulates over φ3 (through x1*x2) and φ2 (through x0 + x1). The φ2 term is
    # J^T of an add, the identity, so the term *is* the cotangent node of x0 + x1 and its
    # node.adjoint describes that other contribution; graph.contributions records both.
    assert x1_grad.op == "add_n" and x1_grad.node.adjoint.role == "accumulate"
    assert len(x1_grad.node.inputs) == 2
    x_terms = {c.consumer: c.term for c in seed["g"].contributions if c.forward is x1.node}
    assert set(x_terms.values()) == set(x1_grad.node.inputs)
    phi3_mul = x3.node.inputs[0]
    phi2_add = x2.node.inputs[0].inputs[0]
    assert phi3_mul.op.name == "mul" and phi2_add.op.name == "add"
    assert set(x_terms) == {phi3_mul, phi2_add}
    got = gc.compile([gc.Value(x_terms[phi3_mul]), gc.Value(x_terms[phi2_add])]).run({"x0": seed["X0"]})
    np.testing.assert_allclose(got[0], ref["d1_terms"][0], rtol=RTOL, atol=ATOL)  # J^T φ3|x1 ∂ℓ/∂x3
    np.testing.assert_allclose(got[1], ref["d1_terms"][1], rtol=RTOL, atol=ATOL)  # J^T φ2|x1 ∂ℓ/∂x2


def test_w2_gradient_is_a_single_term(seed):
    dw2 = seed["grads"][4]
    assert dw2.op != "add_n"
    assert dw2.node.adjoint.forward is seed["w2"].node
    assert dw2.node.adjoint.consumer is seed["x2"].node.inputs[0]  # the matmul inside φ2


def test_matches_jax_grad(seed):
    def f(x0, w1, w2):
        x1 = jnp.tanh(x0 @ w1)
        x2 = jax.nn.sigmoid((x0 + x1) @ w2)
        x3 = (x1 * x2) @ w1
        return jnp.sum(x3 * x3)

    w1, w2 = seed["grads"][3:]
    got_loss, got_w1, got_w2 = gc.compile([seed["loss"], w1, w2]).run({"x0": seed["X0"]})
    loss, (jw1, jw2) = jax.value_and_grad(f, argnums=(1, 2))(seed["X0"], seed["W1"], seed["W2"])
    np.testing.assert_allclose(got_loss, loss, rtol=1e-12)
    np.testing.assert_allclose(got_w1, jw1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_w2, jw2, rtol=1e-10, atol=1e-12)


def test_update_step_on_the_seed_dag(seed):
    """W ← W − η ∂ℓ/∂W for both params, against the hand-derived gradients."""
    with gc.Graph("seed-sgd"):
        x0 = gc.input("x0", shape=(8, 4), dtype="float64")
        w1 = gc.param("w1", shape=(4, 4), dtype="float64", init=seed["W1"])
        w2 = gc.param("w2", shape=(4, 4), dtype="float64", init=seed["W2"])
        x1 = gc.tanh(x0 @ w1)
        x2 = gc.sigmoid((x0 + x1) @ w2)
        x3 = (x1 * x2) @ w1
        loss = gc.sum(x3 * x3)
    lr = 0.01
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, w2], lr))
    prog.run({"x0": seed["X0"]})
    ref = _by_hand(seed["X0"], seed["W1"], seed["W2"])
    np.testing.assert_allclose(w1.value, seed["W1"] - lr * ref["dw1"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(w2.value, seed["W2"] - lr * ref["dw2"], rtol=1e-12, atol=1e-14)
