"""``gc.compile``: passes (CSE, DCE), updates, SGD, cost figures, and output conventions.

Expected values are derived by hand in NumPy; instruction counts are compared
between graphs that must compile to the same program, not to numbers taken
from graphc's own output.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import graphc as gc


def _ops(prog) -> Counter:
    return Counter(ins.op for ins in prog.plan.instructions)


def _kernels(prog) -> Counter:
    """Instructions that compute something (not view bindings)."""
    return Counter(ins.op for ins in prog.plan.instructions if ins.mode != "view")


# --- CSE ----------------------------------------------------------------------------------


def _duplicated(dup: bool):
    with gc.Graph("cse"):
        x = gc.input("x", shape=(5, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64", init=np.eye(3) * 0.5)
        a = gc.tanh(x @ w) * 0.5
        b = gc.tanh(x @ w) * 0.5 if dup else a  # a second, identical chain with its own 0.5
        y = gc.sum(a + b)
    return y


def test_cse_merges_duplicate_chains():
    dup, single = gc.compile(_duplicated(True), simplify=False), gc.compile(_duplicated(False), simplify=False)
    assert len(dup.plan.instructions) == len(single.plan.instructions)
    assert _ops(dup)["matmul"] == 1 and _ops(dup)["tanh"] == 1 and _ops(dup)["mul"] == 1
    assert len(dup.plan.buffers_of("const")) == len(single.plan.buffers_of("const"))
    X = np.arange(15.0).reshape(5, 3) / 10
    np.testing.assert_allclose(dup.run({"x": X}), np.sum(np.tanh(X @ (np.eye(3) * 0.5))), rtol=1e-13)
    np.testing.assert_allclose(dup.run({"x": X}), single.run({"x": X}), rtol=1e-15)


def test_cse_keeps_different_attributes_apart():
    with gc.Graph("cse-attrs"):
        x = gc.input("x", shape=(4, 3), dtype="float64")
        y = gc.sum(gc.sum(x, axis=0)) + gc.sum(gc.sum(x, axis=1)) + gc.sum(gc.mean(x, axis=0))
    prog = gc.compile(y)
    X = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(prog.run({"x": X}), 2 * X.sum() + X.mean(0).sum())
    assert _ops(prog)["mean"] == 1


def test_cse_does_not_merge_inputs_or_params_with_the_same_shape():
    with gc.Graph("cse-sources"):
        a = gc.param("a", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        b = gc.param("b", shape=(3,), dtype="float64", init=np.array([10.0, 20.0, 30.0]))
        y = gc.sum(gc.tanh(a)) + gc.sum(gc.tanh(b))
    prog = gc.compile(y)
    assert _ops(prog)["tanh"] == 2
    np.testing.assert_allclose(prog.run(), np.tanh([1, 2, 3]).sum() + np.tanh([10, 20, 30]).sum())


def test_cse_on_a_gradient_graph():
    """The adjoint of tanh(x @ w) + tanh(x @ w) built twice equals the one built once."""
    progs = []
    for dup in (True, False):
        y = _duplicated(dup)
        (w,) = [n for n in y.graph.nodes if n.name == "w"]
        progs.append(gc.compile([y, gc.grad(y, gc.Value(w))]))
    assert _kernels(progs[0])["matmul"] == _kernels(progs[1])["matmul"]
    X = np.linspace(-1, 1, 15).reshape(5, 3)
    for a, b in zip(progs[0].run({"x": X}), progs[1].run({"x": X})):
        np.testing.assert_allclose(a, b, rtol=1e-14)


# --- DCE ----------------------------------------------------------------------------------


def test_dce_drops_unused_branches():
    def build(branch: bool):
        with gc.Graph("dce"):
            x = gc.input("x", shape=(6, 4), dtype="float64")
            w = gc.param("w", shape=(4, 4), dtype="float64", init=np.eye(4))
            h = gc.tanh(x @ w)
            if branch:
                big = gc.exp(x) @ gc.transpose(x)  # (6, 6), never read by y
                gc.sum(gc.softmax(big))
            y = gc.sum(h)
        return y

    with_branch, without = gc.compile(build(True)), gc.compile(build(False))
    assert len(with_branch.plan.instructions) == len(without.plan.instructions)
    assert "exp" not in _ops(with_branch) and "softmax" not in _ops(with_branch)
    assert with_branch.memory.planned_bytes == without.memory.planned_bytes
    X = np.ones((6, 4))
    np.testing.assert_allclose(with_branch.run({"x": X}), np.tanh(X).sum())


def test_dce_of_an_unneeded_input():
    """An input only a dead branch reads is no longer required by the program."""
    with gc.Graph("dce-input"):
        x = gc.input("x", shape=(3,), dtype="float64")
        z = gc.input("z", shape=(3,), dtype="float64")
        gc.exp(z)
        y = gc.sum(x * 2.0)
    prog = gc.compile(y)
    assert "z" not in prog.plan.inputs
    np.testing.assert_allclose(prog.run({"x": np.ones(3)}), 6.0)


# --- updates and SGD ---------------------------------------------------------------------


def _regression(seed=0, lr=None):
    rng = np.random.default_rng(seed)
    X, T = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    W0, B0 = rng.normal(size=(3, 2)) * 0.5, rng.normal(size=(2,)) * 0.1
    with gc.Graph("regression"):
        x = gc.input("x", shape=(10, 3), dtype="float64")
        t = gc.input("t", shape=(10, 2), dtype="float64")
        w = gc.param("w", shape=(3, 2), dtype="float64", init=W0)
        b = gc.param("b", shape=(2,), dtype="float64", init=B0)
        loss = gc.mse(gc.tanh(x @ w + b), t)
    return dict(X=X, T=T, W0=W0, B0=B0, x=x, t=t, w=w, b=b, loss=loss)


def _numpy_step(X, T, W, B, lr):
    """loss = mean((tanh(XW + b) - T)²); one SGD step derived by hand."""
    H = np.tanh(X @ W + B)
    loss = np.mean((H - T) ** 2)
    dZ = 2.0 * (H - T) / H.size * (1 - H**2)
    dW, dB = X.T @ dZ, dZ.sum(axis=0)
    return loss, dW, dB, W - lr * dW, B - lr * dB


def test_updates_apply_one_sgd_step_in_place():
    r = _regression()
    lr = 0.3
    dw, db = gc.grad(r["loss"], [r["w"], r["b"]])
    prog = gc.compile([r["loss"], dw, db], updates={r["w"]: r["w"] - lr * dw, r["b"]: r["b"] - lr * db})
    stored = r["w"].node.data
    loss, got_dw, got_db = prog.run({"x": r["X"], "t": r["T"]})
    ref_loss, ref_dw, ref_db, W1, B1 = _numpy_step(r["X"], r["T"], r["W0"], r["B0"], lr)
    # Outputs are computed before the update: the loss and gradients at W0.
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-13)
    np.testing.assert_allclose(got_dw, ref_dw, rtol=1e-12)
    np.testing.assert_allclose(got_db, ref_db, rtol=1e-12)
    np.testing.assert_allclose(r["w"].value, W1, rtol=1e-13)
    np.testing.assert_allclose(r["b"].value, B1, rtol=1e-13)
    assert r["w"].node.data is stored  # written in place, not rebound
    # Each param is written once, in place, by the kernel that computes its new value.
    plan = prog.plan
    writes = [ins for ins in plan.instructions if plan.buffers[ins.out].kind == "param"]
    assert sorted(plan.buffers[ins.out].name for ins in writes) == ["b", "w"]
    assert all(ins.op == "sub" and ins.tag == "update" and ins.out in ins.args for ins in writes)

    # A second run starts from the updated value.
    loss2, *_ = prog.run({"x": r["X"], "t": r["T"]})
    ref_loss2, _, _, W2, B2 = _numpy_step(r["X"], r["T"], W1, B1, lr)
    np.testing.assert_allclose(loss2, ref_loss2, rtol=1e-13)
    np.testing.assert_allclose(r["w"].value, W2, rtol=1e-12)


def test_sgd_helper_and_other_programs_see_updated_params():
    r = _regression(seed=1)
    lr = 0.1
    step = gc.compile(r["loss"], updates=gc.sgd(r["loss"], [r["w"], r["b"]], lr))
    evaluate = gc.compile(r["loss"])
    feeds = {"x": r["X"], "t": r["T"]}
    before = step.run(feeds)
    ref_loss, _, _, W1, B1 = _numpy_step(r["X"], r["T"], r["W0"], r["B0"], lr)
    np.testing.assert_allclose(before, ref_loss, rtol=1e-13)
    np.testing.assert_allclose(r["w"].value, W1, rtol=1e-13)
    np.testing.assert_allclose(r["b"].value, B1, rtol=1e-13)
    # A program compiled before the step reads the stored value at run time.
    np.testing.assert_allclose(evaluate.run(feeds), np.mean((np.tanh(r["X"] @ W1 + B1) - r["T"]) ** 2), rtol=1e-13)


def test_sgd_returns_one_update_per_param():
    r = _regression()
    ups = gc.sgd(r["loss"], [r["w"], r["b"]], 0.5)
    assert set(ups) == {r["w"], r["b"]}
    for p, v in ups.items():
        assert v.aval == p.aval


def test_a_training_loop_reduces_the_loss():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)  # XOR-like: needs the hidden layer
    with gc.Graph("train"):
        x = gc.input("x", shape=(64, 2), dtype="float64")
        labels = gc.input("y", shape=(64,), dtype="int64")
        w1 = gc.param("w1", shape=(2, 16), dtype="float64", seed=1)
        b1 = gc.param("b1", shape=(16,), dtype="float64")
        w2 = gc.param("w2", shape=(16, 2), dtype="float64", seed=2)
        b2 = gc.param("b2", shape=(2,), dtype="float64")
        loss = gc.softmax_cross_entropy(gc.tanh(x @ w1 + b1) @ w2 + b2, labels)
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, b1, w2, b2], 0.5))
    losses = [float(prog.run({"x": X, "y": y})) for _ in range(150)]
    assert losses[0] == pytest.approx(np.log(2), abs=0.2)
    assert losses[-1] < 0.5 * losses[0]
    assert np.all(np.isfinite(losses))


# --- cost ----------------------------------------------------------------------------------


def test_cost_backward_is_about_twice_forward_for_an_mlp():
    """The lecture's "BP takes twice the computation of the forward pass".

    Each forward matmul X·W has two backward matmuls of the same size (∂/∂X and
    ∂/∂W), except the first layer, whose ∂/∂X (the data) is not needed; the
    elementwise and softmax terms are small next to the matmuls. So the ratio
    is a little under 2 here, and the range 1.5–3 allows for the cost model's
    per-op constants.
    """
    N, D, H, C = 64, 32, 64, 10
    with gc.Graph("mlp-cost"):
        x = gc.input("x", shape=(N, D))
        y = gc.input("y", shape=(N,), dtype="int64")
        params = [gc.param("W1", shape=(D, H)), gc.param("b1", shape=(H,)),
                  gc.param("W2", shape=(H, H)), gc.param("b2", shape=(H,)),
                  gc.param("W3", shape=(H, C)), gc.param("b3", shape=(C,))]
        W1, b1, W2, b2, W3, b3 = params
        h = gc.relu(gc.tanh(x @ W1 + b1) @ W2 + b2)
        loss = gc.softmax_cross_entropy(h @ W3 + b3, y)
    prog = gc.compile([loss, *gc.grad(loss, params)])
    cost = prog.cost
    matmul_fwd = 2 * N * (D * H + H * H + H * C)
    assert cost.forward_flops >= matmul_fwd  # at least the three matmuls
    assert cost.forward_flops < 1.5 * matmul_fwd
    assert cost.backward_flops > 0
    assert 1.5 <= cost.backward_flops / cost.forward_flops <= 3.0
    assert cost.recompute_flops == 0

    forward_only = gc.compile(loss)
    assert forward_only.cost.forward_flops == cost.forward_flops
    assert forward_only.cost.backward_flops == 0


def test_cost_counts_updates_apart():
    r = _regression()
    prog = gc.compile(r["loss"], updates=gc.sgd(r["loss"], [r["w"], r["b"]], 0.1))
    assert prog.cost.forward_flops > 0 and prog.cost.backward_flops > 0


# --- outputs -------------------------------------------------------------------------------


def test_outputs_come_back_in_the_order_asked():
    r = _regression()
    dw, db = gc.grad(r["loss"], [r["w"], r["b"]])
    h = gc.tanh(r["x"] @ r["w"] + r["b"])
    feeds = {"x": r["X"], "t": r["T"]}
    order = [dw, r["loss"], h, db]
    got = gc.compile(order).run(feeds)
    assert [a.shape for a in got] == [(3, 2), (), (10, 2), (2,)]
    ref_loss, ref_dw, ref_db, _, _ = _numpy_step(r["X"], r["T"], r["W0"], r["B0"], 0.0)
    np.testing.assert_allclose(got[0], ref_dw, rtol=1e-12)
    np.testing.assert_allclose(got[1], ref_loss, rtol=1e-13)
    np.testing.assert_allclose(got[2], np.tanh(r["X"] @ r["W0"] + r["B0"]), rtol=1e-13)
    np.testing.assert_allclose(got[3], ref_db, rtol=1e-12)
    rev = gc.compile(order[::-1]).run(feeds)
    for a, b in zip(got, rev[::-1]):
        np.testing.assert_array_equal(a, b)


def test_single_value_compile_returns_a_single_array():
    r = _regression()
    out = gc.compile(r["loss"]).run({"x": r["X"], "t": r["T"]})
    assert isinstance(out, np.ndarray) and out.shape == ()
    listed = gc.compile([r["loss"]]).run({"x": r["X"], "t": r["T"]})
    assert isinstance(listed, list) and len(listed) == 1
    np.testing.assert_array_equal(out, listed[0])


def test_program_is_callable_and_reports_memory():
    r = _regression()
    prog = gc.compile([r["loss"], *gc.grad(r["loss"], [r["w"], r["b"]])])
    feeds = {"x": r["X"], "t": r["T"]}
    for a, b in zip(prog(feeds), prog.run(feeds)):
        np.testing.assert_array_equal(a, b)
    mem = prog.memory
    assert 0 < mem.lower_bound_bytes <= mem.planned_bytes <= mem.no_reuse_bytes


def test_float32_program_computes_in_float32():
    with gc.Graph("f32"):
        x = gc.input("x", shape=(4, 3))
        w = gc.param("w", shape=(3, 2))
        y = gc.sum(gc.tanh(x @ w))
    dw = gc.grad(y, w)
    X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    out_y, out_dw = gc.compile([y, dw]).run({"x": X})
    assert out_y.dtype == np.float32 and out_dw.dtype == np.float32
    W = w.value.astype(np.float64)
    H = np.tanh(X.astype(np.float64) @ W)
    np.testing.assert_allclose(out_dw, X.T.astype(np.float64) @ (1 - H**2), rtol=1e-5, atol=1e-6)


def test_updates_read_the_values_from_before_the_step():
    """All new values are computed from the params as they were when the run started
    (Theano's ``updates`` semantics), so the order of the updates does not matter."""
    A0, B0 = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0]])
    with gc.Graph("simultaneous"):
        a = gc.param("a", shape=(2, 2), dtype="float64", init=A0)
        b = gc.param("b", shape=(2, 2), dtype="float64", init=B0)
        y = gc.sum(a * b)
    out = gc.compile(y, updates=[(a, a * 2.0), (b, b + a)]).run()
    np.testing.assert_allclose(out, np.sum(A0 * B0))
    np.testing.assert_array_equal(a.value, 2 * A0)
    np.testing.assert_array_equal(b.value, B0 + A0)
    # A swap, with a view: a ← b, b ← aᵀ.
    A1, B1 = a.value, b.value
    gc.compile(y, updates={a: b, b: gc.transpose(a)}).run()
    np.testing.assert_array_equal(a.value, B1)
    np.testing.assert_array_equal(b.value, A1.T)


def test_grad_and_compile_restore_the_cyclic_garbage_collector():
    """They pause it while they work, and leave it as they found it: on, or off."""
    import gc as cyclic

    with gc.Graph("gc-pause"):
        x = gc.input("x", shape=(3,), dtype="float64")
        loss = gc.sum(gc.tanh(x) * x)
    assert cyclic.isenabled()
    gc.compile(gc.grad(loss, x))
    assert cyclic.isenabled()
    cyclic.disable()
    try:
        gc.compile(gc.grad(loss, x))
        assert not cyclic.isenabled()
    finally:
        cyclic.enable()
