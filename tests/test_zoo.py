"""The reference graphs (graphc.zoo): they build, compile, run, differentiate correctly,
and the memory planner keeps its invariants on every one of them.

Gradients of small instances are checked against finite differences
(``gc.gradcheck``, float64) and against JAX: a small interpreter evaluates a
forward graph with jax.numpy, node by node, and ``jax.grad`` differentiates it,
so the oracle shares graphc's graph but none of its kernels or VJP rules. Two
builders are also checked against their docstring's formula written in JAX.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import graphc as gc
from graphc import zoo
from graphc.ir import Graph, Node

jax.config.update("jax_enable_x64", True)


# --- every ZOO entry --------------------------------------------------------------------


LARGE = ("chain-1000", "random-1000")  # ten times the 100-node instances of the same builders


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_entry_compiles_runs_and_matches_the_no_reuse_plan(name):
    """Every entry runs; the smaller ones also match the no-reuse plan bit for bit (the
    1000-node ones repeat the structure of their 100-node siblings, so one compile is enough)."""
    graph, values = zoo.ZOO[name]()
    outputs = zoo.training_outputs(values)
    data = zoo.feeds(graph)
    planned = gc.compile(outputs)
    got = planned.run(data)
    assert got[0].shape == () and len(got) == 1 + len(values["params"])
    for array, param in zip(got[1:], values["params"]):
        assert array.shape == param.shape and array.dtype == param.dtype
    assert all(np.isfinite(a).all() for a in got)
    if name not in LARGE:
        for a, b in zip(got, gc.compile(outputs, memory="no-reuse").run(data)):
            np.testing.assert_array_equal(a, b)
    m = planned.memory
    assert 0 < m.lower_bound_bytes <= m.planned_bytes <= m.no_reuse_bytes


@pytest.mark.parametrize("name", [n for n in zoo.ZOO if n not in LARGE])
def test_every_placement_keeps_lower_bound_le_planned_le_no_reuse(name):
    graph, values = zoo.ZOO[name]()
    outputs = zoo.training_outputs(values)
    data = zoo.feeds(graph)
    reference = gc.compile(outputs, memory="no-reuse").run(data)
    planned = {}
    strategies = ("greedy-by-size", "best-fit-by-start", "first-fit-by-start")
    for mode in (*strategies, "auto"):
        prog = gc.compile(outputs, memory=mode)
        m = prog.memory
        assert m.lower_bound_bytes <= m.planned_bytes <= m.no_reuse_bytes, mode
        planned[mode] = m.planned_bytes
        for a, b in zip(prog.run(data), reference):
            np.testing.assert_array_equal(a, b)
    assert planned["auto"] == min(planned[s] for s in strategies)


def test_registry_has_the_standard_instances():
    expected = {"seed", "mlp", "chain-100", "chain-1000", "residual", "unet", "attention", "random-100", "random-1000"}
    assert expected <= set(zoo.ZOO)
    for name in ("seed", "residual", "random-100"):
        graph, values = zoo.ZOO[name]()
        assert isinstance(graph, gc.Graph) and values["loss"].shape == ()
        assert values["params"] and all(p.op == "param" for p in values["params"])


def test_seed_and_mlp_builders_keep_their_values():
    """The registry adds keys to copies; the builders themselves are unchanged."""
    _, v = zoo.seed_dag()
    assert set(v) == {"x", "w1", "w2", "x1", "x2", "x3", "loss"}
    _, v = zoo.ZOO["seed"]()
    assert [p.name for p in v["params"]] == ["w1", "w2"]
    _, v = zoo.ZOO["mlp"]()
    assert v["classes"] == 10 and v["logits"].shape[-1] == 10


# --- gradients: finite differences and JAX -----------------------------------------------

SMALL: dict[str, Callable[[], tuple[Graph, dict]]] = {
    "seed": lambda: zoo.ZOO["seed"](),
    "mlp": lambda: zoo.mlp(5, sizes=(4, 6, 3), dtype="float64"),
    "chain": lambda: zoo.chain(4, width=5, batch=3, dtype="float64"),
    "residual": lambda: zoo.residual_mlp(depth=3, width=5, batch=4, classes=3, dtype="float64"),
    "unet": lambda: zoo.unet(depth=2, width=2, length=8, batch=2, dtype="float64"),
    "attention": lambda: zoo.attention(seq=5, dim=4, heads=1, dtype="float64"),
    "attention-2h": lambda: zoo.attention(seq=5, dim=6, heads=2, dtype="float64"),
    "random": lambda: zoo.random_dag(40, seed=3, width=4, batch=3, dtype="float64"),
}


def _jittered_params(params: list[gc.Value], seed: int) -> dict[str, np.ndarray]:
    """Stored values plus noise: zero biases would put relu units exactly on their kink
    (a dead row times any W is 0, and 0 + b = 0), where finite differences are one-sided."""
    rng = np.random.default_rng(seed)
    return {p.name: p.value + 0.1 * rng.standard_normal(p.shape).astype(p.dtype) for p in params}


@pytest.mark.parametrize("name", list(SMALL))
def test_small_instance_passes_gradcheck(name):
    graph, values = SMALL[name]()
    data = {**zoo.feeds(graph, seed=1), **_jittered_params(values["params"], seed=1)}
    report = gc.gradcheck(values["loss"], values["params"], data)
    assert set(report.max_rel_error) == {p.name for p in values["params"]}


_JAX_OPS: dict[str, Callable[..., Any]] = {
    "add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide,
    "maximum": jnp.maximum, "neg": jnp.negative, "exp": jnp.exp, "log": jnp.log, "sqrt": jnp.sqrt,
    "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "matmul": jnp.matmul,
    "sum": lambda x, axis, keepdims: jnp.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis, keepdims: jnp.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis, keepdims: jnp.max(x, axis=axis, keepdims=keepdims),
    "reshape": lambda x, shape: jnp.reshape(x, shape),
    "transpose": lambda x, axes: jnp.transpose(x, axes),
    "broadcast_to": lambda x, shape: jnp.broadcast_to(x, shape),
    "concat": lambda *xs, axis: jnp.concatenate(xs, axis=axis),
    "softmax": lambda x, axis: jax.nn.softmax(x, axis=axis),
    "softmax_cross_entropy": lambda logits, labels: -jnp.mean(
        jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), labels[..., None], axis=-1)
    ),
    "log_softmax": lambda x, axis: jax.nn.log_softmax(x, axis=axis),
    "nll_loss": lambda log_probs, labels: -jnp.mean(jnp.take_along_axis(log_probs, labels[..., None], axis=-1)),
}


def _jax_loss(graph: Graph, loss: Node, data: dict[str, np.ndarray]) -> Callable[[dict], Any]:
    """ℓ as a function of the params, evaluated by walking the forward graph with jax.numpy."""
    needed = sorted(_ancestors(loss), key=lambda n: n.id)

    def loss_fn(params: dict[str, Any]) -> Any:
        env: dict[Node, Any] = {}
        for node in needed:
            kind = node.op_name
            if kind == "input":
                env[node] = jnp.asarray(data[node.name])
            elif kind == "param":
                env[node] = params[node.name]
            elif kind == "const":
                env[node] = jnp.asarray(node.data)
            else:
                env[node] = _JAX_OPS[kind](*(env[i] for i in node.inputs), **node.attrs)
        return env[loss]

    return loss_fn


def _ancestors(root: Node) -> set[Node]:
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.inputs)
    return seen


@pytest.mark.parametrize("name", [n for n in SMALL if n != "seed"])
def test_small_instance_matches_jax(name):
    graph, values = SMALL[name]()
    data = zoo.feeds(graph, seed=2)
    got = gc.compile(zoo.training_outputs(values)).run(data)
    params = {p.name: jnp.asarray(p.value) for p in values["params"]}
    loss, grads = jax.jit(jax.value_and_grad(_jax_loss(graph, values["loss"].node, data)))(params)
    np.testing.assert_allclose(got[0], loss, rtol=1e-12)
    for array, p in zip(got[1:], values["params"]):
        np.testing.assert_allclose(array, grads[p.name], rtol=1e-9, atol=1e-12, err_msg=p.name)


def test_attention_is_the_formula_of_its_docstring():
    """softmax(q kᵀ/√d) v per head, heads merged, output projection, residual, mse."""
    seq, dim, heads = 6, 8, 2
    graph, v = zoo.attention(seq, dim, heads, dtype="float64")
    data = zoo.feeds(graph, seed=4)
    x, y = data["x"], data["y"]
    names = ["Wq", "Wk", "Wv", "Wo"]

    def reference(p):
        def split(h):
            return h.reshape(seq, heads, dim // heads).transpose(1, 0, 2)

        q, k, val = split(x @ p["Wq"]), split(x @ p["Wk"]), split(x @ p["Wv"])
        a = jax.nn.softmax(q @ k.transpose(0, 2, 1) / math.sqrt(dim // heads), axis=-1)
        o = (a @ val).transpose(1, 0, 2).reshape(seq, dim)
        return jnp.mean((x + o @ p["Wo"] - y) ** 2)

    params = {p.name: jnp.asarray(p.value) for p in v["params"]}
    assert [p.name for p in v["params"]] == names
    loss, grads = jax.jit(jax.value_and_grad(reference))(params)
    got = gc.compile(zoo.training_outputs(v)).run(data)
    np.testing.assert_allclose(got[0], loss, rtol=1e-12)
    for array, name in zip(got[1:], names):
        np.testing.assert_allclose(array, grads[name], rtol=1e-9, atol=1e-12)


def test_unet_is_the_formula_of_its_docstring():
    depth, width, length, batch = 2, 3, 8, 2
    graph, v = zoo.unet(depth, width, length, batch, dtype="float64")
    data = zoo.feeds(graph, seed=5)
    p = {w.name: w.value for w in v["params"]}

    def dense(h, tag):
        return np.maximum(h @ p[f"W{tag}"] + p[f"b{tag}"], 0)

    s = [dense(data["x"], "_in")]
    for k in range(depth):
        pooled = s[k].reshape(batch, s[k].shape[1] // 2, 2, -1).mean(axis=2)
        s.append(dense(pooled, f"D{k}"))
    t = s[depth]
    for k in reversed(range(depth)):
        u = dense(np.repeat(t, 2, axis=1), f"U{k}")
        t = dense(np.concatenate([u, s[k]], axis=-1), f"M{k}")
    out = t @ p["W_out"] + p["b_out"]
    expected = np.mean((out - data["y"]) ** 2)
    np.testing.assert_allclose(gc.compile(v["loss"]).run(data), expected, rtol=1e-12)
    assert [s_k.shape for s_k in s] == [(2, 8, 3), (2, 4, 6), (2, 2, 12)]


# --- the builders' structure -----------------------------------------------------------------


def _ops(graph: Graph) -> list[str]:
    return [n.op_name for n in graph.nodes]


def test_chain_has_n_layers_of_one_tanh_each():
    graph, v = zoo.chain(7, width=3, batch=2)
    assert _ops(graph).count("tanh") == 7 and _ops(graph).count("matmul") == 7
    assert len(v["params"]) == 14 and v["h"].name == "h7"
    assert v["loss"].dtype == np.float32


def test_chain_of_a_thousand_layers_builds():
    graph, v = zoo.ZOO["chain-1000"]()
    assert _ops(graph).count("tanh") == 1000 and len(v["params"]) == 2000


def test_residual_blocks_add_their_input():
    graph, v = zoo.residual_mlp(depth=4, width=6, batch=3, classes=5)
    h = {n.name: n for n in graph.nodes}
    for k in range(1, 5):
        skip = h[f"h{k}"]
        assert skip.op.name == "add" and skip.inputs[0] is h.get(f"h{k - 1}", v["x"].node)
    assert v["logits"].shape == (3, 5) and v["classes"] == 5


def test_unet_joins_long_skips_with_concat():
    graph, _ = zoo.unet(depth=3, width=4, length=16, batch=2)
    cats = [n for n in graph.nodes if n.op_name == "concat"]
    assert [c.shape for c in cats] == [(2, 4, 32), (2, 8, 16), (2, 16, 8)]
    with pytest.raises(gc.GraphError, match="divisible"):
        zoo.unet(depth=3, length=12)


def test_attention_multi_head_shapes():
    graph, v = zoo.attention(seq=10, dim=12, heads=3)
    assert v["attn"].shape == (3, 10, 10)
    with pytest.raises(gc.GraphError, match="divisible"):
        zoo.attention(dim=10, heads=3)


def test_random_dag_counts_nodes_has_fan_out_and_skips():
    n = 200
    graph, v = zoo.random_dag(n, seed=7)
    random_nodes = [node for node in graph.nodes if node.name.startswith("n") and not node.is_source]
    assert len(random_nodes) == n
    readers: dict[Node, int] = {}
    for node in graph.nodes:
        for operand in node.inputs:
            readers[operand] = readers.get(operand, 0) + 1
    assert max(readers[node] for node in random_nodes if node in readers) >= 3  # fan-out
    ops = set(_ops(graph))
    assert {"matmul", "add", "mul", "tanh"} <= ops and len(v["params"]) > 0
    assert v["loss"].shape == () and len(v["sinks"]) >= 1


def test_random_dag_is_deterministic_and_seeded():
    g1, _ = zoo.random_dag(120, seed=1)
    g2, _ = zoo.random_dag(120, seed=1)
    g3, _ = zoo.random_dag(120, seed=2)
    shape = lambda g: [(n.op_name, tuple(i.id for i in n.inputs)) for n in g.nodes]  # noqa: E731
    assert shape(g1) == shape(g2) and shape(g1) != shape(g3)
    p1 = gc.compile(zoo.training_outputs(zoo.random_dag(120, seed=1)[1]))
    p2 = gc.compile(zoo.training_outputs(zoo.random_dag(120, seed=1)[1]))
    assert str(p1.plan) == str(p2.plan)


@pytest.mark.parametrize("builder", [zoo.chain, zoo.residual_mlp, zoo.unet, zoo.attention, zoo.random_dag])
def test_builders_take_a_dtype(builder):
    graph, v = builder(dtype="float64")
    assert v["loss"].dtype == np.float64
    assert all(p.dtype == np.float64 for p in v["params"])
    assert all(n.dtype == np.float64 for n in graph.inputs.values() if n.dtype.kind == "f")


# --- feeds ---------------------------------------------------------------------------------


def test_feeds_cover_every_input_with_labels_in_range():
    graph, v = zoo.residual_mlp(depth=2, width=4, batch=50, classes=3)
    data = zoo.feeds(graph, seed=3)
    assert set(data) == set(graph.inputs) == {"x", "y"}
    assert data["x"].dtype == np.float32 and data["x"].shape == (50, 4)
    assert data["y"].dtype == np.int64 and set(np.unique(data["y"])) == {0, 1, 2}
    again = zoo.feeds(graph, seed=3)
    for name in data:
        np.testing.assert_array_equal(data[name], again[name])
    assert not np.array_equal(zoo.feeds(graph, seed=4)["x"], data["x"])


def test_feeds_need_the_number_of_classes_of_a_bare_label():
    with gc.Graph("labels") as graph:
        gc.input("y", shape=(4,), dtype="int32")
    with pytest.raises(gc.GraphError, match="classes="):
        zoo.feeds(graph)
    y = zoo.feeds(graph, classes=2)["y"]
    assert y.dtype == np.int32 and set(np.unique(y)) <= {0, 1}


def test_rnn_unrolls_one_step_per_time_step_with_shared_weights():
    """h(t) = tanh(x[t]·W + h(t-1)·W_h + b) from h(0) = h0: the loss against NumPy's loop, the gradients by gradcheck."""
    graph, values = zoo.rnn(steps=5, features=3, hidden=4, batch=2, dtype="float64")
    data = zoo.feeds(graph, seed=3)
    w, w_h, b, h0 = (p.value for p in values["params"])
    h = h0
    for t in range(5):
        h = np.tanh(data["x"][t] @ w + h @ w_h + b)
    (loss,) = gc.compile([values["loss"]]).run(data)
    np.testing.assert_allclose(loss, np.mean((h - data["y"]) ** 2), rtol=1e-12)
    assert sum(1 for n in graph.nodes if n.op_name == "tanh") == 5
    report = gc.gradcheck(values["loss"], values["params"], data)  # raises where a gradient is wrong
    assert set(report.max_rel_error) == {"W", "W_h", "b", "h0"}
