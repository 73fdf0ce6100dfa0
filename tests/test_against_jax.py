"""graphc against JAX as the oracle: an MLP, random DAGs, and second derivatives.

The random-DAG test follows tinygrad's ``helper_test_op``: one generated
program is interpreted twice, once with graphc ops and once with jax.numpy,
and losses and every gradient are compared in float64. The largest error
seen is printed (``pytest -s``) and recorded as the test's ``max_error_vs_jax`` property
(``--junitxml``).
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc

jax.config.update("jax_enable_x64", True)

# --- (a) an MLP with softmax cross-entropy ------------------------------------------------


N, D, H1, H2, C = 16, 6, 8, 7, 5


def _mlp_data(dtype):
    rng = np.random.default_rng(1)
    params = {
        "W1": rng.normal(size=(D, H1)) / np.sqrt(D),
        "b1": rng.normal(size=(H1,)) * 0.1,
        "W2": rng.normal(size=(H1, H2)) / np.sqrt(H1),
        "b2": rng.normal(size=(H2,)) * 0.1,
        "W3": rng.normal(size=(H2, C)) / np.sqrt(H2),
        "b3": rng.normal(size=(C,)) * 0.1,
    }
    params = {k: v.astype(dtype) for k, v in params.items()}
    X = rng.normal(size=(N, D)).astype(dtype)
    y = rng.integers(0, C, size=N).astype(np.int64)
    return params, X, y


def _mlp_graphc(params, dtype):
    with gc.Graph(f"mlp-{dtype}"):
        x = gc.input("x", shape=(N, D), dtype=dtype)
        y = gc.input("y", shape=(N,), dtype="int64")
        p = {k: gc.param(k, shape=v.shape, dtype=dtype, init=v) for k, v in params.items()}
        h1 = gc.tanh(x @ p["W1"] + p["b1"])
        h2 = gc.relu(h1 @ p["W2"] + p["b2"])
        logits = h2 @ p["W3"] + p["b3"]
        loss = gc.softmax_cross_entropy(logits, y)
    return loss, p


def _mlp_jax(params, X, y):
    h1 = jnp.tanh(X @ params["W1"] + params["b1"])
    h2 = jax.nn.relu(h1 @ params["W2"] + params["b2"])
    logits = h2 @ params["W3"] + params["b3"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


# Jitted once for both dtypes (the oracle is float64): one XLA program compiles in ~1 s, where
# eager JAX compiles each op at its shape (~3 s).
_mlp_jax_value_and_grad = jax.jit(jax.value_and_grad(_mlp_jax))


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-13), ("float32", 2e-4, 2e-6)])
def test_mlp_gradients_match_jax(dtype, rtol, atol):
    params, X, y = _mlp_data(dtype)
    loss, p = _mlp_graphc(params, dtype)
    names = list(params)
    grads = gc.grad(loss, [p[k] for k in names])
    got = gc.compile([loss, *grads]).run({"x": X, "y": y})
    for arr in got:
        assert arr.dtype == np.dtype(dtype)
    # Oracle in float64 from the same (possibly float32-rounded) data.
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    ref_loss, ref_grads = _mlp_jax_value_and_grad(p64, X.astype(np.float64), y)
    np.testing.assert_allclose(got[0], ref_loss, rtol=rtol)
    for k, g in zip(names, got[1:]):
        np.testing.assert_allclose(g, ref_grads[k], rtol=rtol, atol=atol, err_msg=k)


# --- (b) random DAGs, one recipe interpreted by graphc and by JAX ----------------------

SHAPES = {"x": (3, 3), "c": (3, 1), "W": (3, 3), "b": (3,), "V": (3, 3)}
INPUTS = ("x", "c")

GC = types.SimpleNamespace(
    tanh=gc.tanh, sigmoid=gc.sigmoid, relu=gc.relu, exp=gc.exp, log=gc.log, sqrt=gc.sqrt,
    maximum=gc.maximum, sum=gc.sum, mean=gc.mean, max=gc.max, softmax=gc.softmax,
    log_softmax=gc.log_softmax, transpose=gc.transpose, broadcast_to=gc.broadcast_to, reshape=gc.reshape,
)
JX = types.SimpleNamespace(
    tanh=jnp.tanh, sigmoid=jax.nn.sigmoid, relu=jax.nn.relu, exp=jnp.exp, log=jnp.log, sqrt=jnp.sqrt,
    maximum=jnp.maximum, sum=jnp.sum, mean=jnp.mean, max=jnp.max, softmax=jax.nn.softmax,
    log_softmax=jax.nn.log_softmax, transpose=jnp.transpose, broadcast_to=jnp.broadcast_to, reshape=jnp.reshape,
)

UNARY = {
    "tanh": lambda L, a: L.tanh(a),
    "sigmoid": lambda L, a: L.sigmoid(a),
    "relu": lambda L, a: L.relu(a),
    "neg": lambda L, a: -a,
    "square": lambda L, a: a * a,
    "affine": lambda L, a: 0.5 * a - 1.0,
    "exp_tanh": lambda L, a: L.exp(L.tanh(a)),
    "log1p_sq": lambda L, a: L.log(1.0 + a * a),
    "sqrt1p_sq": lambda L, a: L.sqrt(a * a + 1.0),
    "pow": lambda L, a: (a * a + 1.0) ** 1.5,
    "rdiv": lambda L, a: 2.0 / (a * a + 1.0),
}
BINARY = {
    "add": lambda L, a, b: a + b,
    "sub": lambda L, a, b: a - b,
    "mul": lambda L, a, b: a * b,
    "div": lambda L, a, b: a / (b * b + 1.0),
    "maximum": lambda L, a, b: L.maximum(a, b),
}


def _matmul_shape(a, b):
    if not a or not b or a[-1] != (b[-2] if len(b) >= 2 else b[0]):
        return None
    return np.matmul(np.empty(a), np.empty(b)).shape


def _reduced_shape(shape, axis, keepdims):
    return np.sum(np.empty(shape), axis=axis, keepdims=keepdims).shape


@st.composite
def programs(draw):
    """A list of steps over a pool of values that starts with the sources."""
    pool = list(SHAPES.values())
    steps = []
    for _ in range(draw(st.integers(1, 9))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "matmul", "reduce", "softmax", "shape"]))
        i = draw(st.integers(0, len(pool) - 1))
        a = pool[i]
        if kind == "unary":
            step, shape = ("unary", draw(st.sampled_from(sorted(UNARY))), i), a
        elif kind == "binary":
            j = draw(st.integers(0, len(pool) - 1))
            step, shape = ("binary", draw(st.sampled_from(sorted(BINARY))), i, j), np.broadcast_shapes(a, pool[j])
        elif kind == "matmul":
            options = [j for j, b in enumerate(pool) if _matmul_shape(a, b) is not None]
            if not options:
                continue
            j = draw(st.sampled_from(options))
            step, shape = ("matmul", i, j), _matmul_shape(a, pool[j])
        elif kind == "reduce":
            axes = [None] + list(range(len(a))) + ([(0, 1)] if len(a) == 2 else [])
            axis = draw(st.sampled_from(axes))
            keepdims = draw(st.booleans())
            step = ("reduce", draw(st.sampled_from(["sum", "mean", "max"])), i, axis, keepdims)
            shape = _reduced_shape(a, axis, keepdims)
        elif kind == "softmax":
            if not a:
                continue
            axis = draw(st.sampled_from(range(-len(a), len(a))))
            step, shape = ("softmax", draw(st.sampled_from(["softmax", "log_softmax"])), i, axis), a
        else:
            size = int(np.prod(a))
            targets = [s for s in [(3, 3), (3,), (1, 3), (3, 1), (), (1, 1), (1,)] if int(np.prod(s)) == size]
            choice = draw(st.sampled_from(["transpose", "broadcast", "reshape"]))
            if choice == "transpose":
                step, shape = ("transpose", i), a[::-1]
            elif choice == "broadcast":
                target = np.broadcast_shapes(a, (3, 3))
                step, shape = ("broadcast", i, target), target
            else:
                target = draw(st.sampled_from(targets))
                step, shape = ("reshape", i, target), target
        steps.append(step)
        pool.append(tuple(shape))
    if not steps:  # every draw was skipped: still build one node
        steps.append(("unary", "tanh", 0))
        pool.append(pool[0])
    return steps, pool


def _interpret(L, steps, pool_shapes, sources, weights):
    """Run the recipe with library L; the loss weighs every unused result by a fixed array."""
    vals = [sources[k] for k in SHAPES]
    used = set()
    for step in steps:
        kind = step[0]
        if kind == "unary":
            _, name, i = step
            v = UNARY[name](L, vals[i]); used.add(i)
        elif kind == "binary":
            _, name, i, j = step
            v = BINARY[name](L, vals[i], vals[j]); used.update((i, j))
        elif kind == "matmul":
            _, i, j = step
            v = vals[i] @ vals[j]; used.update((i, j))
        elif kind == "reduce":
            _, name, i, axis, keepdims = step
            v = getattr(L, name)(vals[i], axis=axis, keepdims=keepdims); used.add(i)
        elif kind == "softmax":
            _, name, i, axis = step
            v = getattr(L, name)(vals[i], axis=axis); used.add(i)
        elif kind == "transpose":
            v = L.transpose(vals[step[1]]); used.add(step[1])
        elif kind == "broadcast":
            v = L.broadcast_to(vals[step[1]], step[2]); used.add(step[1])
        else:
            v = L.reshape(vals[step[1]], step[2]); used.add(step[1])
        assert tuple(v.shape) == pool_shapes[len(vals)], (step, v.shape)
        vals.append(v)
    sinks = [k for k in range(len(SHAPES), len(vals)) if k not in used]
    loss = 0.0
    for k in sinks:
        loss = loss + L.sum(vals[k] * weights[k])
    return loss


def _errors(got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    abs_err = float(np.max(np.abs(got - ref), initial=0.0))
    scale = float(np.max(np.abs(ref), initial=0.0))
    return abs_err, abs_err / scale if scale > 0 else abs_err


@pytest.fixture
def fast_xla_compile():
    """Each random DAG is a new tiny XLA program: compile time, not run time, is what
    the test waits for, so ask XLA for less optimisation while it runs (restored after)."""
    flag = "jax_disable_most_optimizations"
    before = jax.config.values.get(flag, False)
    jax.config.update(flag, True)
    yield
    jax.config.update(flag, before)


def test_random_dags_match_jax(fast_xla_compile, record_property):
    worst = {"abs": 0.0, "rel": 0.0, "examples": 0, "max_nodes": 0}

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(programs(), st.integers(0, 2**32 - 1))
    def check(program, seed):
        steps, pool = program
        rng = np.random.default_rng(seed)
        feeds = {k: rng.normal(size=s) for k, s in SHAPES.items()}
        weights = {k: rng.normal(size=pool[k]) for k in range(len(SHAPES), len(pool))}

        with gc.Graph("random") as g:
            sources = {
                k: (gc.input(k, shape=s, dtype="float64") if k in INPUTS
                    else gc.param(k, shape=s, dtype="float64", init=feeds[k]))
                for k, s in SHAPES.items()
            }
            loss = _interpret(GC, steps, pool, sources, weights)
        names = list(SHAPES)
        grads = gc.grad(loss, [sources[k] for k in names])
        got = gc.compile([loss, *grads]).run({k: feeds[k] for k in INPUTS})

        def f(*arrays):
            return _interpret(JX, steps, pool, dict(zip(names, arrays)), weights)

        ref_loss, ref_grads = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(names)))))(*(feeds[k] for k in names))
        ref = [ref_loss, *ref_grads]
        assert all(np.all(np.isfinite(np.asarray(r))) for r in ref)
        for name, a, b in zip(["loss"] + names, got, ref):
            assert a.shape == np.shape(b), name
            scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * scale, err_msg=f"{name} of {steps}")
            abs_err, rel_err = _errors(a, b)
            worst["abs"] = max(worst["abs"], abs_err)
            worst["rel"] = max(worst["rel"], rel_err)
        worst["examples"] += 1
        worst["max_nodes"] = max(worst["max_nodes"], len(g.nodes))

    check()
    line = (
        f"max error vs JAX over random DAGs: abs {worst['abs']:.3e}, rel {worst['rel']:.3e} "
        f"({worst['examples']} examples, float64, up to {worst['max_nodes']} nodes with the adjoint graph)"
    )
    print("\n" + line)
    record_property("max_error_vs_jax", line)
    assert worst["examples"] >= 30


# --- (c) second derivatives -------------------------------------------------------------


def _jax_hvp(f, W, X, V):
    return jax.jvp(jax.grad(lambda w: f(X, w)), (W,), (V,))[1]


CHAINS = {
    "tanh": lambda L, x, w: L.sum(L.tanh(L.tanh(x @ w) @ w)),
    "sigmoid": lambda L, x, w: L.sum(L.sigmoid(x @ w) * L.sigmoid(x @ w * 2.0 - 1.0)),
    "softmax": lambda L, x, w: L.sum(L.softmax(x @ w) * x),
    "mixed": lambda L, x, w: L.mean(L.relu(x @ w) * L.tanh(x) + L.exp(L.tanh(x @ w)) / (1.0 + (x @ w) ** 2)),
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_hessian_vector_product(chain):
    rng = np.random.default_rng(3)
    X, W, V = rng.normal(size=(4, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    body = CHAINS[chain]
    with gc.Graph("hvp"):
        x = gc.input("x", shape=(4, 3), dtype="float64")
        v = gc.input("v", shape=(3, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64", init=W)
        loss = body(GC, x, w)
    g = gc.grad(loss, w)
    hv = gc.grad(gc.sum(g * v), w)  # ∇(⟨∇ℓ, v⟩) = H v
    got_g, got_hv = gc.compile([g, hv]).run({"x": X, "v": V})
    f = lambda X_, W_: body(JX, X_, W_)  # noqa: E731
    # one jitted program for both references: eager JAX compiles each op of jvp-of-grad on its own
    ref_g, ref_hv = jax.jit(lambda W_: (jax.grad(lambda w_: f(X, w_))(W_), _jax_hvp(f, W_, X, V)))(W)
    np.testing.assert_allclose(got_g, ref_g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_hv, ref_hv, rtol=1e-9, atol=1e-12)


def _sce_jax(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def test_softmax_cross_entropy_hessian_matches_jax():
    """The full Hessian of a softmax-CE chain, row by row, via grad with a one-hot seed."""
    rng = np.random.default_rng(4)
    X, W = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    labels = rng.integers(0, 4, size=5)
    with gc.Graph("sce-hessian"):
        x = gc.input("x", shape=(5, 3), dtype="float64")
        y = gc.input("y", shape=(5,), dtype="int64")
        w = gc.param("w", shape=(3, 4), dtype="float64", init=W)
        loss = gc.softmax_cross_entropy(gc.tanh(x @ w), y)
    g = gc.grad(loss, w)
    rows = []
    for k in range(W.size):
        e = np.zeros(W.size)
        e[k] = 1.0
        rows.append(gc.grad(g, w, seed=e.reshape(W.shape)))  # eₖᵀ ∂g/∂w = row k of the Hessian
    got = gc.compile(rows).run({"x": X, "y": labels})
    got = np.stack([r.ravel() for r in got])
    # jitted: eager jax.hessian (forward over reverse, vmapped) takes ~4 s here, jitted ~1 s
    ref = jax.jit(jax.hessian(lambda w_: _sce_jax(jnp.tanh(X @ w_), labels)))(W).reshape(W.size, W.size)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got, got.T, rtol=1e-9, atol=1e-12)  # a Hessian is symmetric


@pytest.mark.parametrize("fn", ["tanh", "sigmoid"])
def test_elementwise_second_and_third_derivatives(fn):
    """d²/dx² and d³/dx³ of tanh and sigmoid, by repeated grad of a sum."""
    X = np.linspace(-3, 3, 13)
    with gc.Graph("derivs"):
        x = gc.input("x", shape=(13,), dtype="float64")
        y = gc.sum(getattr(gc, fn)(x))
    d1 = gc.grad(y, x)
    d2 = gc.grad(gc.sum(d1), x)
    d3 = gc.grad(gc.sum(d2), x)
    got = gc.compile([d1, d2, d3]).run({"x": X})
    f = getattr(JX, fn)
    j1 = jax.grad(lambda t: f(t))
    j2 = jax.grad(j1)
    j3 = jax.grad(j2)
    for got_k, jk in zip(got, (j1, j2, j3)):
        np.testing.assert_allclose(got_k, jax.vmap(jk)(X), rtol=1e-10, atol=1e-13)
    # And by hand for tanh: t' = 1 - t², t'' = -2 t (1 - t²).
    if fn == "tanh":
        t = np.tanh(X)
        np.testing.assert_allclose(got[1], -2 * t * (1 - t**2), rtol=1e-12, atol=1e-14)
