"""compile(fuse=True): chains of elementwise nodes as one numexpr kernel (graphc/passes/fusion.py).

The fused plan is checked against the unfused one, the NumPy path: bit for bit where a
chain is arithmetic, within the measured ulps where it calls exp, log or tanh (those
come from the C library instead of NumPy's loops; graphc.ops.fused has the figures).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import graphc as gc
from graphc import zoo
from graphc.ops import fused as fused_ops
from graphc.passes import fuse, optimize

numexpr = pytest.importorskip("numexpr", reason="compile(fuse=True) needs numexpr: pip install graphc[fast]")

from random_graphs import build, recipes  # noqa: E402


def fused_count(prog: gc.Program) -> int:
    return sum(ins.op == "fused" for ins in prog.plan.instructions)


def ulps_of_largest(got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference, in ulps of the largest magnitude of ``want``."""
    if want.size == 0 or np.array_equal(got, want):
        return 0.0
    scale = float(np.spacing(np.max(np.abs(want))))
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def _dense_tanh(dtype="float32"):
    with gc.Graph("dense", ) as g:
        x = gc.input("x", shape=(8, 6), dtype=dtype)
        w = gc.param("w", shape=(6, 5), dtype=dtype)
        b = gc.param("b", shape=(5,), dtype=dtype)
        h = gc.tanh(x @ w + b)
        loss = gc.mean(h * h)
    return g, x, w, b, loss


def test_bias_and_activation_become_one_instruction_and_the_tanh_vjp_another():
    g, x, w, b, loss = _dense_tanh()
    outputs = [loss, *gc.grad(loss, [w, b])]
    plain, fused = gc.compile(outputs), gc.compile(outputs, fuse=True)
    assert len(fused.plan.instructions) < len(plain.plan.instructions)
    exprs = [ins.attrs["expr"] for ins in fused.plan.instructions if ins.op == "fused"]
    assert "tanh((a0 + a1))" in exprs
    assert any("(a3 - a1) * (a3 + a1)" in e for e in exprs)  # g·(1 - y)(1 + y), y = tanh read by both
    assert fused.cost == plain.cost  # a fused node costs the FLOPs of the nodes it replaces
    feeds = {"x": np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)}
    for got, want in zip(fused.run(feeds), plain.run(feeds)):
        assert ulps_of_largest(got, want) <= 2 * fused_ops.ULP_TOLERANCE


def test_arithmetic_chains_are_bit_identical_with_broadcasting_and_in_place():
    with gc.Graph("arith"):
        m = gc.input("m", shape=(16, 32), dtype="float64")
        v = gc.input("v", shape=(16, 32), dtype="float64")
        s = gc.input("s", shape=(32,), dtype="float64")
        y = (m * 0.9 + s * 0.1) / (gc.sqrt(v) + 1e-8) - (-m) * s
    rng = np.random.default_rng(1)
    feeds = {"m": rng.standard_normal((16, 32)), "v": rng.random((16, 32)), "s": rng.standard_normal(32)}
    plain, fused = gc.compile(y), gc.compile(y, fuse=True)
    assert [ins.op for ins in fused.plan.instructions] == ["fused"]
    np.testing.assert_array_equal(fused.run(feeds), plain.run(feeds))


def test_relu_and_its_mask_fuse_bit_for_bit_with_nan_and_signed_zeros():
    with gc.Graph("relu"):
        x = gc.input("x", shape=(2, 4), dtype="float32")
        g = gc.input("g", shape=(2, 4), dtype="float32")
        c = gc.input("c", shape=(4,), dtype="float32")
        y = gc.relu(x + c)
        masked = g * gc.greater(y, 0.0) - gc.less_equal(x, c) * g  # g·[y > 0], the ReLU's J^T, and more
    special = np.array([[-0.0, 0.0, np.nan, -np.inf], [np.inf, -1.5, 2.5, 1e-40]], np.float32)
    feeds = {"x": special, "g": -special[::-1], "c": np.array([0.0, -0.0, 1.0, 0.5], np.float32)}
    plain, fused = gc.compile([y, masked]), gc.compile([y, masked], fuse=True)
    assert fused_count(fused) == 2 and len(fused.plan.instructions) == 2
    with np.errstate(all="ignore"):
        for got, want in zip(fused.run(feeds), plain.run(feeds)):
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_a_value_read_outside_the_chain_is_not_absorbed_and_outputs_stay():
    with gc.Graph("shared"):
        x = gc.input("x", shape=(4, 4))
        t = gc.exp(x) + 1.0
        a, c = t * 2.0, gc.tanh(t)
    flow = fuse(optimize([a.node, c.node]))
    (made,) = [n for n in flow.nodes if n.op is fused_ops.fused]  # exp(x) + 1, read by both: a root of its own
    assert made.attrs["expr"] == "(exp(a0) + a1)"
    assert [r.op.name for r in flow.roots] == ["mul", "tanh"] and all(flow.args[r][0] is made for r in flow.roots)
    prog = gc.compile([a, c, t], fuse=True)  # t returned: its chain stops there
    assert fused_count(prog) == 1
    X = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    for got, want in zip(prog.run({"x": X}), gc.compile([a, c, t]).run({"x": X})):
        assert ulps_of_largest(got, want) <= fused_ops.ULP_TOLERANCE


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("expr, reference, domain", [
    ("exp(a0)", np.exp, "real"), ("log(a0)", np.log, "positive"), ("sqrt(a0)", np.sqrt, "positive"),
    ("tanh(a0)", np.tanh, "real"), ("(1 / (1 + exp(-a0)))", lambda a: 1 / (1 + np.exp(-a)), "real"),
])
def test_each_function_is_within_the_documented_ulps(dtype, expr, reference, domain):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(20000) * 4, rng.uniform(-80, 80, 20000)]).astype(dtype)
    if domain == "positive":
        x = np.abs(x) + np.asarray(1e-3, dtype)
    out = np.empty_like(x)
    fused_ops.fused.kernel(out, x, expr=expr, flops=0)
    with np.errstate(over="ignore"):
        want = reference(x)
    ulps = np.abs(out.astype(np.float64) - want) / np.spacing(np.abs(want)).astype(np.float64)
    assert ulps.max() <= fused_ops.ULP_TOLERANCE


# On zoo.training_outputs (float32), the fused results' largest difference from the NumPy path's,
# in ulps of each output's largest magnitude; 0 means bit-identical. Measured: see graphc/ops/fused.py.
ZOO_BOUNDS = {"seed": 0, "mlp": 4, "residual": 0, "unet": 0, "attention": 0, "random-100": 4, "chain-100": 128}


@pytest.mark.parametrize("name", sorted(ZOO_BOUNDS))
def test_zoo_training_steps_match_the_numpy_path(name):
    graph, values = zoo.ZOO[name]()
    outputs = zoo.training_outputs(values)
    plain, fused = gc.compile(outputs), gc.compile(outputs, fuse=True)
    assert len(fused.plan.instructions) < len(plain.plan.instructions)
    feeds = zoo.feeds(graph)
    worst = max(ulps_of_largest(got, want) for got, want in zip(fused.run(feeds), plain.run(feeds)))
    assert worst <= ZOO_BOUNDS[name]


@settings(max_examples=20, deadline=None)
@given(recipes)
def test_random_graphs_fused_compute_what_numpy_computes(recipe):
    built = build(recipe)
    picks = built.values[-2:]  # a few outputs, so chains have intermediates nothing else reads
    with np.errstate(all="ignore"):
        plain = gc.compile(picks).run(built.feeds)
        fused = gc.compile(picks, fuse=True).run(built.feeds)
    for got, want, numpy_value in zip(fused, plain, built.expected[-2:]):
        assert got.shape == want.shape and got.dtype == want.dtype
        finite = np.isfinite(want)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        # float64: only tanh differs (≤ 3 ulps), amplified at most by the chain's few steps
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(got[finite], numpy_value[finite], rtol=1e-12, atol=1e-300)


def test_training_with_fuse_trains_as_the_numpy_path_does():
    def step(fuse_flag):
        g, x, w, b, loss = _dense_tanh("float64")
        w.assign(np.random.default_rng(4).standard_normal((6, 5)) * 0.5)
        b.assign(np.zeros(5))
        prog = gc.compile(loss, updates=gc.optim.adam(loss, [w, b], lr=0.01), fuse=fuse_flag)
        X = np.random.default_rng(5).standard_normal((8, 6))
        losses = [float(prog.run({"x": X})) for _ in range(20)]
        return prog, losses, prog.params
    plain, plain_losses, plain_params = step(False)
    fused, fused_losses, fused_params = step(True)
    assert len(fused.plan.instructions) < len(plain.plan.instructions)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-14)
    assert fused_losses[-1] < fused_losses[0]
    for name in plain_params:
        assert ulps_of_largest(fused_params[name], plain_params[name]) <= 8


def test_a_fused_plan_saves_loads_and_recomputes(tmp_path):
    g, x, w, b, loss = _dense_tanh()
    outputs = [loss, *gc.grad(loss, [w, b])]
    feeds = {"x": np.random.default_rng(6).standard_normal((8, 6)).astype(np.float32)}
    prog = gc.compile(outputs, fuse=True)
    want = prog.run(feeds)
    prog.save(tmp_path / "p.npz")
    for got, expected in zip(gc.load(tmp_path / "p.npz").run(feeds), want):
        np.testing.assert_array_equal(got, expected)
    recomputing = gc.compile(outputs, fuse=True, remat="sqrt")
    for got, expected in zip(recomputing.run(feeds), want):
        np.testing.assert_array_equal(got, expected)


def test_to_source_refuses_a_fused_plan_by_name():
    g, x, w, b, loss = _dense_tanh()
    prog = gc.compile([loss, *gc.grad(loss, [w, b])], fuse=True)
    with pytest.raises(gc.GraphError, match=r"op 'fused'.*cannot be written as NumPy code: .* imports numexpr"):
        prog.to_source()


def test_fuse_must_be_a_bool_and_needs_numexpr(monkeypatch):
    g, x, w, b, loss = _dense_tanh()
    with pytest.raises(gc.GraphError, match="fuse='yes' must be True or False"):
        gc.compile(loss, fuse="yes")
    monkeypatch.setattr(fused_ops, "available", lambda: False)
    with pytest.raises(gc.GraphError, match=r"pip install graphc\[fast\]"):
        gc.compile(loss, fuse=True)
    gc.compile(loss)  # the NumPy path needs nothing


def test_a_batch_sized_program_fuses_each_size():
    with gc.Graph("batch"):
        x = gc.input("x", shape=(None, 4), dtype="float64")
        y = gc.tanh(x * 2.0 + 1.0)
    prog = gc.compile(y, fuse=True)
    X = np.random.default_rng(7).standard_normal((3, 4))
    np.testing.assert_allclose(prog.run({"x": X}), np.tanh(X * 2.0 + 1.0), rtol=1e-15)
