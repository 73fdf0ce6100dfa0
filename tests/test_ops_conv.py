"""conv2d, the pools, and their gradient primitives: finite differences, PyTorch, memory and a small CNN.

Every op and every gradient primitive is checked by :func:`graphc.gradcheck` (float64,
random directions) over strides, padding, dilation, groups (depthwise too),
rectangular kernels and non-square images; forward values and gradients are compared
with ``torch.nn.functional`` on the same inputs in float64 (to a few ulps) and
float32; a training step of a small CNN allocates nothing but its outputs, plans an
arena no smaller than its lower bound, and follows torch's SGD step for step.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops import registered

import conv_reference as ref
from allocation import run_peak

MAX_POOL_GRAD = registered()["max_pool2d_grad"]
MAX_POOL_GATHER = registered()["max_pool2d_gather"]
AVG_POOL_GRAD = registered()["avg_pool2d_grad"]

# (id, x shape, weight shape, keyword arguments)
CONVS = [
    ("plain", (2, 3, 5, 6), (4, 3, 3, 3), {}),
    ("stride2-pad1", (2, 3, 7, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1}),
    ("dilation2-rect-kernel", (1, 2, 7, 8), (3, 2, 2, 3), {"dilation": 2, "padding": (1, 2)}),
    ("groups2-stride-pair", (2, 4, 5, 5), (6, 2, 3, 2), {"groups": 2, "stride": (1, 2)}),
    ("depthwise-same", (2, 3, 6, 5), (3, 1, 3, 3), {"groups": 3, "padding": "same"}),
    ("same-even-kernel", (1, 2, 5, 6), (2, 2, 2, 4), {"padding": "same", "dilation": (1, 2)}),
    ("pointwise", (2, 4, 3, 5), (2, 4, 1, 1), {}),
    ("stride3-leftover-rows", (1, 2, 8, 7), (2, 2, 2, 2), {"stride": 3, "padding": (0, 1)}),
    ("one-pixel-map-centre-tap", (3, 4, 1, 1), (5, 4, 3, 3), {"padding": 1}),  # 8 of 9 offsets read padding
    ("5x5-on-a-1x2-map", (2, 3, 1, 2), (4, 3, 5, 5), {"padding": 2}),  # 1×3 of 5×5 offsets read x
    ("5x1-on-one-row", (1, 2, 1, 260), (3, 2, 5, 1), {"padding": (2, 0)}),  # one image per product, cut to 1×1
    # stride 1 on ≥ 128 pixels: the input gradient is the convolution with the flipped weights
    ("depthwise-input-grad-as-conv", (4, 4, 6, 6), (4, 1, 3, 3), {"groups": 4, "padding": 1}),
    ("groups2-dilation2-input-grad-as-conv", (2, 4, 9, 8), (6, 2, 3, 2), {"groups": 2, "dilation": 2, "padding": (2, 1)}),
]
CONV_IDS = [c[0] for c in CONVS]

# (id, op name, image shape, keyword arguments)
POOLS = [
    ("max-2", "max_pool2d", (2, 3, 4, 6), {"kernel_size": 2}),
    ("max-3-stride2-pad1", "max_pool2d", (2, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max-rect-dilation2", "max_pool2d", (1, 2, 8, 9), {"kernel_size": (2, 3), "stride": (1, 2), "dilation": 2}),
    ("max-ceil-mode", "max_pool2d", (1, 2, 7, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("avg-2", "avg_pool2d", (2, 3, 4, 6), {"kernel_size": 2}),
    ("avg-3-stride2-pad1", "avg_pool2d", (2, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg-no-pad-count", "avg_pool2d", (1, 2, 7, 6), {"kernel_size": (3, 2), "stride": 2, "padding": 1,
                                                       "count_include_pad": False}),
    ("avg-ceil-mode", "avg_pool2d", (1, 2, 8, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
]
POOL_IDS = [p[0] for p in POOLS]


def _distinct(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values at least 0.05 apart: no ties within a pooling window, so max is differentiable."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.1 + rng.uniform(0, 0.05, shape)


def _inputs(arrays: dict[str, np.ndarray], dtype: str = "float64") -> dict[str, gc.Value]:
    return {name: gc.input(name, a.shape, dtype) for name, a in arrays.items()}


# --- finite differences ------------------------------------------------------------------------


@pytest.mark.parametrize("case_id, x_shape, w_shape, kwargs", CONVS, ids=CONV_IDS)
def test_conv2d_gradients_match_finite_differences(case_id, x_shape, w_shape, kwargs) -> None:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal(x_shape), "w": rng.standard_normal(w_shape), "b": rng.standard_normal(w_shape[0])}
    with gc.Graph("conv-fd"):
        v = _inputs(arrays)
        y = gc.conv2d(v["x"], v["w"], v["b"], **kwargs)
    gc.gradcheck(y, [v["x"], v["w"], v["b"]], arrays)


@pytest.mark.parametrize("case_id, x_shape, w_shape, kwargs", CONVS, ids=CONV_IDS)
def test_conv2d_grad_primitives_match_finite_differences(case_id, x_shape, w_shape, kwargs) -> None:
    """conv2d_input_grad (in g and w) and conv2d_weight_grad (in x and g): their own VJPs are right."""
    rng = np.random.default_rng(1)
    y_shape = ref.conv2d(np.zeros(x_shape), np.zeros(w_shape), **kwargs).shape
    arrays = {"x": rng.standard_normal(x_shape), "w": rng.standard_normal(w_shape), "g": rng.standard_normal(y_shape)}
    with gc.Graph("conv-grads-fd"):
        v = _inputs(arrays)
        dx = gc.ops.conv2d_input_grad(v["g"], v["w"], input_hw=x_shape[2:], **kwargs)
        dw = gc.ops.conv2d_weight_grad(v["x"], v["g"], kernel_size=w_shape[2:], **kwargs)
    gc.gradcheck(dx, [v["g"], v["w"]], arrays)
    gc.gradcheck(dw, [v["x"], v["g"]], arrays)


def test_conv2d_second_derivative_matches_finite_differences() -> None:
    """d/dx and d/dw of a weight gradient: the grad primitives differentiated through autodiff."""
    rng = np.random.default_rng(2)
    arrays = {"x": rng.standard_normal((2, 2, 5, 5)), "w": rng.standard_normal((3, 2, 3, 3))}
    with gc.Graph("conv-second"):
        v = _inputs(arrays)
        loss = gc.sum(gc.tanh(gc.conv2d(v["x"], v["w"], stride=2, padding=1)))
        dx, dw = gc.grad(loss, [v["x"], v["w"]])
        penalty = gc.sum(dw * dw) + gc.sum(dx * dx)
    gc.gradcheck(penalty, [v["x"], v["w"]], arrays)


def test_conv2d_fan_out_of_one_value_as_image_and_weight() -> None:
    """x is both the image and the weight: the two VJP terms are summed."""
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 3))
    with gc.Graph("conv-fanout"):
        xv = gc.input("x", x.shape, "float64")
        y = gc.conv2d(xv, xv, padding=1) * gc.conv2d(xv, xv, stride=2)
    gc.gradcheck(gc.sum(y), [xv], {"x": x})


def _pool(op: str, x: gc.Value, kwargs: dict) -> gc.Value:
    return getattr(gc, op)(x, **kwargs)


@pytest.mark.parametrize("case_id, op, shape, kwargs", POOLS, ids=POOL_IDS)
def test_pool_gradients_match_finite_differences(case_id, op, shape, kwargs) -> None:
    x = _distinct(shape, np.random.default_rng(4))
    with gc.Graph("pool-fd"):
        xv = gc.input("x", shape, "float64")
        y = _pool(op, xv, kwargs)
    gc.gradcheck(y, [xv], {"x": x})


@pytest.mark.parametrize("case_id, op, shape, kwargs", POOLS, ids=POOL_IDS)
def test_pool_grad_primitives_match_finite_differences(case_id, op, shape, kwargs) -> None:
    """avg_pool2d_grad in g; max_pool2d_grad and max_pool2d_gather in their cotangents (x fixed)."""
    rng = np.random.default_rng(5)
    x = _distinct(shape, rng)
    y_shape = _pool_reference(op, x, kwargs).shape
    arrays = {"x": x, "g": rng.standard_normal(y_shape), "c": rng.standard_normal(shape)}
    with gc.Graph("pool-grads-fd"):
        v = _inputs(arrays)
        if op == "avg_pool2d":
            gc.gradcheck(AVG_POOL_GRAD(v["g"], input_hw=shape[2:], **kwargs), [v["g"]], arrays)
            return
        y = gc.max_pool2d(v["x"], **kwargs)
        gc.gradcheck(MAX_POOL_GRAD(v["g"], v["x"], y, **kwargs), [v["g"]], arrays)
        gc.gradcheck(MAX_POOL_GATHER(v["c"], v["x"], y, **kwargs), [v["c"]], arrays)


def test_pool_fan_out() -> None:
    """x read by both pools and by the product: three VJP terms summed."""
    x = _distinct((2, 2, 4, 4), np.random.default_rng(6))
    with gc.Graph("pool-fanout"):
        xv = gc.input("x", x.shape, "float64")
        y = gc.sum(gc.max_pool2d(xv, 2) * gc.avg_pool2d(xv, 3, stride=2, padding=1)) \
            + gc.sum(gc.max_pool2d(xv, 3, stride=1, padding=1) * xv)
    gc.gradcheck(y, [xv], {"x": x})


def test_max_pool_second_derivative_matches_finite_differences() -> None:
    """Through max_pool2d_grad and max_pool2d_gather: d/dg of a gradient penalty."""
    rng = np.random.default_rng(7)
    arrays = {"x": _distinct((1, 2, 4, 4), rng), "w": rng.standard_normal((2, 2, 3, 3))}
    with gc.Graph("max-pool-second"):
        v = _inputs(arrays)
        loss = gc.sum(gc.max_pool2d(gc.conv2d(v["x"], v["w"], padding=1), 2) ** 2)
        (dw,) = gc.grad(loss, [v["w"]])
    gc.gradcheck(gc.sum(dw * dw), [v["w"]], arrays)


# --- the NumPy reference, independently written -------------------------------------------------


def _pool_reference(op: str, x: np.ndarray, kwargs: dict) -> np.ndarray:
    return getattr(ref, op)(x, **kwargs)


@pytest.mark.parametrize("case_id, x_shape, w_shape, kwargs", CONVS, ids=CONV_IDS)
def test_conv2d_and_its_grads_match_the_numpy_reference(case_id, x_shape, w_shape, kwargs) -> None:
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    g = rng.standard_normal(ref.conv2d(x, w, **kwargs).shape)
    with gc.Graph("conv-ref"):
        v = _inputs({"x": x, "w": w, "g": g})
        outputs = [gc.conv2d(v["x"], v["w"], **kwargs),
                   gc.ops.conv2d_input_grad(v["g"], v["w"], input_hw=x_shape[2:], **kwargs),
                   gc.ops.conv2d_weight_grad(v["x"], v["g"], kernel_size=w_shape[2:], **kwargs)]
    got = gc.compile(outputs).run({"x": x, "w": w, "g": g})
    expected = [ref.conv2d(x, w, **kwargs), ref.conv2d_input_grad(g, w, x_shape[2:], **kwargs),
                ref.conv2d_weight_grad(x, g, w_shape[2:], **kwargs)]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --- PyTorch ------------------------------------------------------------------------------------


def _compare_with_torch(graphc_fn, torch_fn, arrays: dict[str, np.ndarray], dtype: str, rtol: float, atol: float):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    arrays = {k: a.astype(dtype) for k, a in arrays.items()}
    tensors = {k: torch.tensor(a, requires_grad=True) for k, a in arrays.items()}
    expected = torch_fn(**tensors)
    cotangent = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.tensor(cotangent))
    with gc.Graph("torch-conv"):
        v = _inputs(arrays, dtype)
        y = graphc_fn(**v)
        seed = gc.input("cotangent", y.shape, dtype)
        grads = gc.grad(y, list(v.values()), seed=seed)
    value, *grad_values = gc.compile([y, *grads]).run({**arrays, "cotangent": cotangent})
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=rtol, atol=atol, err_msg="value")
    for (name, t), got in zip(tensors.items(), grad_values):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"gradient of {name}")


TOLERANCES = {"float64": (1e-12, 1e-12), "float32": (2e-5, 2e-5)}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's note on its own copy
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_id, x_shape, w_shape, kwargs", CONVS, ids=CONV_IDS)
def test_conv2d_matches_torch(case_id, x_shape, w_shape, kwargs, dtype) -> None:
    F = pytest.importorskip("torch").nn.functional
    rng = np.random.default_rng(10)
    arrays = {"x": rng.standard_normal(x_shape), "w": rng.standard_normal(w_shape), "b": rng.standard_normal(w_shape[0])}
    _compare_with_torch(lambda x, w, b: gc.conv2d(x, w, b, **kwargs), lambda x, w, b: F.conv2d(x, w, b, **kwargs),
                        arrays, dtype, *TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_id, op, shape, kwargs", POOLS, ids=POOL_IDS)
def test_pool_matches_torch(case_id, op, shape, kwargs, dtype) -> None:
    F = pytest.importorskip("torch").nn.functional
    x = _distinct(shape, np.random.default_rng(11))
    _compare_with_torch(lambda x: _pool(op, x, kwargs), lambda x: getattr(F, op)(x, **kwargs), {"x": x}, dtype,
                        *TOLERANCES[dtype])


def test_global_avg_pool_and_flatten_match_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(12).standard_normal((2, 3, 4, 5))
    _compare_with_torch(lambda x: gc.global_avg_pool(x), lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1),
                        {"x": x}, "float64", 1e-13, 1e-15)
    _compare_with_torch(lambda x: gc.flatten(x, 1) * 2.0, lambda x: torch.flatten(x, 1) * 2.0, {"x": x}, "float64", 0, 0)
    _compare_with_torch(lambda x: gc.flatten(x, 1, 2), lambda x: torch.flatten(x, 1, 2), {"x": x}, "float64", 0, 0)


def test_max_pool_ties_route_the_gradient_to_the_first_maximum_as_torch() -> None:
    """Windows full of equal values (and -inf padding beside them): g goes to the first in row-major order."""
    x = np.zeros((1, 1, 4, 5))
    x[0, 0, 2:, :2] = 1.0
    kwargs = {"kernel_size": 3, "stride": 1, "padding": 1}
    _compare_with_torch(lambda x: gc.max_pool2d(x, **kwargs),
                        lambda x: pytest.importorskip("torch").nn.functional.max_pool2d(x, **kwargs),
                        {"x": x}, "float64", 1e-15, 0)  # a wrong routing is off by O(1); sums of terms by an ulp


def test_max_pool_grad_sends_an_infinite_cotangent_to_the_maximum_alone() -> None:
    """g = inf reaches only the window's maximum: the other pixels get 0, not 0·inf = NaN (as torch)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    g = np.array([[[[np.inf, 1.0], [-np.inf, 2.0]]]])
    with gc.Graph("inf-cotangent"):
        xv = gc.input("x", x.shape, "float64")
        y = gc.max_pool2d(xv, 2)
        gv = gc.input("g", y.shape, "float64")
        (dx,) = gc.grad(y, [xv], seed=gv)
    (got,) = gc.compile([dx]).run({"x": x, "g": g})
    expected = np.zeros_like(x)
    expected[0, 0, 1::2, 1::2] = g[0, 0]
    np.testing.assert_array_equal(got, expected)


# --- batch, memory, cost ------------------------------------------------------------------------


def test_conv_with_the_batch_as_none_runs_at_two_batch_sizes() -> None:
    rng = np.random.default_rng(13)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with gc.Graph("conv-batch"):
        x = gc.input("x", (None, 3, 6, 6))
        wv = gc.param("w", w.shape, init=w)
        y = gc.flatten(gc.max_pool2d(gc.conv2d(x, wv, padding=1), 2), 1)
        loss = gc.sum(y * y)
    prog = gc.compile([y, *gc.grad(loss, [wv])])
    for batch in (2, 5):
        xs = rng.standard_normal((batch, 3, 6, 6)).astype(np.float32)
        value, dw = prog.run({"x": xs})
        expected = ref.max_pool2d(ref.conv2d(xs, w, padding=1), 2).reshape(batch, -1)
        assert value.shape == (batch, 4 * 9)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
        assert dw.shape == w.shape


def test_conv_flops_follow_the_formula() -> None:
    """2·N·O·OH·OW·(C/groups)·kH·kW for conv2d, and each gradient the same; one per window element for a pool."""
    with gc.Graph("flops"):
        x = gc.input("x", (2, 4, 9, 8))
        w = gc.input("w", (6, 2, 3, 2))
        y = gc.conv2d(x, w, stride=2, padding=1, groups=2)  # (2, 6, 5, 5)
        pooled = gc.max_pool2d(y, 2, stride=1)  # (2, 6, 4, 4)
        loss = gc.sum(pooled)
    conv_flops = 2 * 2 * 6 * 5 * 5 * 2 * 3 * 2
    prog = gc.compile(y)
    assert prog.cost.forward_flops == conv_flops
    assert gc.compile(pooled).cost.forward_flops == conv_flops + 2 * 6 * 4 * 4 * 4
    dx, dw = gc.grad(loss, [x, w])
    by_op = {n.op.name: n.op.flops([a.aval for a in n.inputs], n.aval, **n.attrs) for n in (dx.node, dw.node)}
    assert by_op == {"conv2d_input_grad": conv_flops, "conv2d_weight_grad": conv_flops}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(size=st.integers(1, 6), kernel=st.integers(1, 5), stride=st.integers(1, 3), before=st.integers(0, 4),
       after=st.integers(0, 4), dilation=st.integers(1, 3))
def test_live_taps_are_the_offsets_that_read_the_image(size, kernel, stride, before, after, dilation) -> None:
    """The cut window spans exactly the offsets that read a pixel of the image at some output, and its
    padding puts every output's window where it was."""
    from graphc.ops import conv
    span = dilation * (kernel - 1) + 1
    assume(size + before + after >= span)
    out = (size + before + after - span) // stride + 1
    reading = [i for i in range(kernel) if any(0 <= o * stride + i * dilation - before < size for o in range(out))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv, "LIVE_TAPS_CUT", 1.0)  # cut whenever an offset is dead
        taps = conv.live_taps((size, 1), (kernel, 1), (stride, 1), ((before, after), (0, 0)), (dilation, 1), (out, 1))
    if taps is None:  # nothing to cut, nothing read at all, or a cut that would need a negative padding
        whole = bool(reading) and reading[0] == 0 and reading[-1] == kernel - 1
        negative = bool(reading) and (reading[0] * dilation > before or (kernel - 1 - reading[-1]) * dilation > after)
        assert not reading or whole or negative
        return
    (first, _), (length, width), ((top, bottom), _) = taps
    assert (first, length, width) == (reading[0], reading[-1] + 1 - reading[0], 1)
    assert top == before - first * dilation and min(top, bottom) >= 0
    assert (size + top + bottom - dilation * (length - 1) - 1) // stride + 1 == out


def test_a_window_cut_to_its_live_taps_counts_only_their_flops() -> None:
    """A 3×3 convolution padded by 1 on a 1×1 map multiplies its centre tap alone, in all three kernels."""
    with gc.Graph("centre"):
        x = gc.input("x", (2, 4, 1, 1))
        w = gc.input("w", (6, 4, 3, 3))
        loss = gc.sum(gc.conv2d(x, w, padding=1))
    dx, dw = gc.grad(loss, [x, w])
    centre = 2 * 2 * 6 * 4
    assert gc.compile(loss).cost.forward_flops == centre + 2 * 6
    by_op = {n.op.name: n.op.flops([a.aval for a in n.inputs], n.aval, **n.attrs) for n in (dx.node, dw.node)}
    assert by_op == {"conv2d_input_grad": centre, "conv2d_weight_grad": centre}


def _small_cnn(batch: int, dtype: str = "float32", seed: int = 0):
    """conv → relu → max_pool → conv → global_avg_pool → matmul → softmax_cross_entropy, and its weights."""
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(8) * 0.1,
        "w2": rng.standard_normal((12, 8, 3, 3)) * 0.2, "b2": rng.standard_normal(12) * 0.1,
        "w3": rng.standard_normal((12, 5)) * 0.3,
    }
    weights = {k: v.astype(dtype) for k, v in weights.items()}
    with gc.Graph("small-cnn") as g:
        x = gc.input("x", (batch, 3, 12, 10), dtype)
        labels = gc.input("labels", (batch,), "int64")
        p = {k: gc.param(k, v.shape, dtype, init=v) for k, v in weights.items()}
        h = gc.max_pool2d(gc.relu(gc.conv2d(x, p["w1"], p["b1"], padding=1)), 2)
        h = gc.conv2d(h, p["w2"], p["b2"], stride=2, padding=1)
        loss = gc.softmax_cross_entropy(gc.global_avg_pool(h) @ p["w3"], labels)
    return g, loss, p, weights


def _torch_cnn_loss(torch, t: dict, x: np.ndarray, labels: np.ndarray):
    F = torch.nn.functional
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), t["w1"], t["b1"], padding=1)), 2)
    h = F.conv2d(h, t["w2"], t["b2"], stride=2, padding=1)
    return F.cross_entropy(F.adaptive_avg_pool2d(h, 1).flatten(1) @ t["w3"], torch.tensor(labels))


def _torch_sgd_step(torch, t: dict, momentum: dict, lr: float, beta: float) -> None:
    """torch.optim.SGD's step with momentum (b ← βb + g, the first b = g; p ← p - lr·b), written out:
    constructing torch.optim.SGD imports torch's compiler, seconds of the suite's time."""
    with torch.no_grad():
        for k, p in t.items():
            momentum[k] = p.grad.clone() if momentum[k] is None else beta * momentum[k] + p.grad
            p -= lr * momentum[k]
            p.grad = None


def test_small_cnn_trains_with_sgd_as_torch_does() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    _, loss, p, weights = _small_cnn(4, "float64")
    names = list(p)
    grads = gc.grad(loss, list(p.values()))
    prog = gc.compile([loss, *grads], updates=gc.optim.sgd(loss, list(p.values()), lr=0.1, momentum=0.9))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    momentum = {k: None for k in t}
    losses = []
    for step in range(4):
        x, labels = rng.standard_normal((4, 3, 12, 10)), rng.integers(0, 5, 4)
        value, *grad_values = prog.run({"x": x, "labels": labels})
        expected = _torch_cnn_loss(torch, t, x, labels)
        expected.backward()
        np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
        for name, got in zip(names, grad_values):
            np.testing.assert_allclose(got, t[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        _torch_sgd_step(torch, t, momentum, lr=0.1, beta=0.9)
        losses.append(float(value))
    x, labels = rng.standard_normal((4, 3, 12, 10)), rng.integers(0, 5, 4)
    fixed = {"x": x, "labels": labels}
    before = prog.run(fixed)[0]
    for _ in range(30):
        prog.run(fixed)
    assert prog.run(fixed)[0] < 0.5 * before  # it learns a fixed batch


def test_a_cnn_training_step_plans_no_less_than_its_lower_bound_and_allocates_only_its_outputs() -> None:
    from graphc.validate import validate

    _, loss, p, _ = _small_cnn(16)
    grads = gc.grad(loss, list(p.values()))
    prog = gc.compile([loss, *grads], updates=gc.sgd(loss, list(p.values()), 0.01))
    validate(prog.plan)
    memory = prog.memory
    assert memory.lower_bound_bytes <= memory.planned_bytes < memory.no_reuse_bytes
    assert sum(b.kind == "scratch" for b in prog.plan.buffers) >= 6  # im2col, padding and pooling masks
    rng = np.random.default_rng(15)
    feeds = {"x": rng.standard_normal((16, 3, 12, 10)).astype(np.float32), "labels": rng.integers(0, 5, 16)}
    peak, outputs_bytes = run_peak(prog, feeds)
    slack = 64 * 1024
    assert memory.planned_bytes > 2 * slack  # the arena itself would not fit in the slack
    assert peak <= outputs_bytes + slack


def test_the_runtime_does_not_write_into_the_fed_image() -> None:
    x = np.random.default_rng(16).standard_normal((1, 2, 5, 5))
    kept = x.copy()
    with gc.Graph("no-write"):
        xv = gc.input("x", x.shape, "float64")
        loss = gc.sum(gc.max_pool2d(xv, 3, stride=1, padding=1) * gc.avg_pool2d(xv, 3, stride=1, padding=1))
    gc.compile([loss, *gc.grad(loss, [xv])]).run({"x": x})
    np.testing.assert_array_equal(x, kept)


# --- laws: each gradient primitive is the transpose of its forward op ------------------------------


@st.composite
def _conv_problems(draw):
    """A convolution's sizes: groups dividing both channel counts, a kernel that fits the padded image."""
    groups = draw(st.integers(1, 3))
    per_group_in, per_group_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    hw = tuple(draw(st.integers(max(1, s - 2 * p), s - 2 * p + 5)) for s, p in zip(span, padding))
    x_shape = (draw(st.integers(1, 2)), groups * per_group_in, *hw)
    w_shape = (groups * per_group_out, per_group_in, *kernel)
    return x_shape, w_shape, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def assert_conv_and_its_transposes(x_shape, w_shape, kwargs, seed: int) -> tuple:
    """conv2d against the reference, and ⟨conv2d(x, w), g⟩ = ⟨x, conv2d_input_grad(g, w)⟩ =
    ⟨w, conv2d_weight_grad(x, g)⟩, in float64. Returns the output's shape."""
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    with gc.Graph("conv-law"):
        xv, wv = gc.input("x", x_shape, "float64"), gc.input("w", w_shape, "float64")
        y = gc.conv2d(xv, wv, **kwargs)
        gv = gc.input("g", y.shape, "float64")
        dx = gc.ops.conv2d_input_grad(gv, wv, input_hw=x_shape[2:], **kwargs)
        dw = gc.ops.conv2d_weight_grad(xv, gv, kernel_size=w_shape[2:], **kwargs)
    g = rng.standard_normal(y.shape)
    y_value, dx_value, dw_value = gc.compile([y, dx, dw]).run({"x": x, "w": w, "g": g})
    np.testing.assert_allclose(y_value, ref.conv2d(x, w, **kwargs), rtol=1e-12, atol=1e-12)
    pairing = np.vdot(y_value, g)
    assert np.isclose(np.vdot(x, dx_value), pairing, rtol=1e-12, atol=1e-12)
    assert np.isclose(np.vdot(w, dw_value), pairing, rtol=1e-12, atol=1e-12)
    return y.shape


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problem=_conv_problems())
def test_conv2d_grads_are_its_transposes(problem) -> None:
    """⟨conv2d(x, w), g⟩ = ⟨x, conv2d_input_grad(g, w)⟩ = ⟨w, conv2d_weight_grad(x, g)⟩, and conv2d is the reference's."""
    assert_conv_and_its_transposes(*problem, seed=17)


@pytest.mark.parametrize("hw, kwargs", [  # 10×10 outputs: 3, 3 and 1 images to a product; 10×8: 4 and 3
    ((10, 10), {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}),
    ((20, 10), {"stride": (2, 1), "padding": (2, 0), "dilation": (2, 1), "groups": 2}),
])
def test_conv_kernels_on_groups_of_images_with_a_smaller_last_group(hw, kwargs) -> None:
    """Seven images taken a few to a product, the last group smaller: conv2d against the reference,
    and both gradients against it by the pairing law, in float64."""
    from graphc.ops.conv import images_per_product
    out_shape = assert_conv_and_its_transposes((7, 4, *hw), (6, 4 // kwargs["groups"], 3, 3), kwargs, seed=23)
    per = images_per_product(7, out_shape[2:])
    assert 1 < per < 7 and 7 % per


@st.composite
def _pool_problems(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    hw = tuple(draw(st.integers(max(1, k - 2 * p), k - 2 * p + 5)) for k, p in zip(kernel, padding))
    return (draw(st.integers(1, 2)), 2, *hw), {"kernel_size": kernel, "stride": stride, "padding": padding,
                                                 "ceil_mode": draw(st.booleans())}


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problem=_pool_problems(), count_include_pad=st.booleans())
def test_pool_grads_are_their_transposes(problem, count_include_pad) -> None:
    """⟨avg_pool2d(x), g⟩ = ⟨x, avg_pool2d_grad(g)⟩ and ⟨max_pool2d_grad(g), c⟩ = ⟨g, max_pool2d_gather(c)⟩."""
    shape, kwargs = problem
    rng = np.random.default_rng(18)
    x, c = _distinct(shape, rng), rng.standard_normal(shape)
    with gc.Graph("pool-law"):
        xv, cv = gc.input("x", shape, "float64"), gc.input("c", shape, "float64")
        mean = gc.avg_pool2d(xv, count_include_pad=count_include_pad, **kwargs)
        top = gc.max_pool2d(xv, **kwargs)
        gv = gc.input("g", top.shape, "float64")
        outputs = [mean, top, AVG_POOL_GRAD(gv, input_hw=shape[2:], count_include_pad=count_include_pad, **kwargs),
                   MAX_POOL_GRAD(gv, xv, top, **kwargs), MAX_POOL_GATHER(cv, xv, top, **kwargs)]
    g = rng.standard_normal(top.shape)
    mean_v, top_v, avg_dx, max_dx, gathered = gc.compile(outputs).run({"x": x, "c": c, "g": g})
    np.testing.assert_allclose(mean_v, ref.avg_pool2d(x, count_include_pad=count_include_pad, **kwargs), rtol=1e-12)
    np.testing.assert_array_equal(top_v, ref.max_pool2d(x, **kwargs))
    assert np.isclose(np.vdot(x, avg_dx), np.vdot(mean_v, g), rtol=1e-12, atol=1e-12)
    assert np.isclose(np.vdot(max_dx, c), np.vdot(g, gathered), rtol=1e-12, atol=1e-12)


def test_a_saved_conv_program_loads_and_runs_as_the_original(tmp_path) -> None:
    """Attributes (pairs, pairs of pairs) survive the plan's JSON; pointwise and padded kernels alike."""
    rng = np.random.default_rng(19)
    feeds = {"x": rng.standard_normal((2, 4, 6, 7)), "w": rng.standard_normal((3, 4, 1, 1)),
             "w2": rng.standard_normal((2, 1, 3, 3))}
    with gc.Graph("saved-conv"):
        v = _inputs(feeds)
        y = gc.max_pool2d(gc.conv2d(v["x"], v["w"]), 3, 2, 1, ceil_mode=True)
        z = gc.avg_pool2d(gc.conv2d(gc.slice_axis(v["x"], 1, 0, 2), v["w2"], groups=2, padding="same"), 2,
                          ceil_mode=True, count_include_pad=False)
        loss = gc.sum(y * y) + gc.sum(z)
    prog = gc.compile([loss, *gc.grad(loss, list(v.values()))])
    prog.save(tmp_path / "conv.graphc")
    for got, expected in zip(gc.load(tmp_path / "conv.graphc").run(feeds), prog.run(feeds)):
        np.testing.assert_array_equal(got, expected)


# --- scratch in chunks of images ----------------------------------------------------------------


def _conv_pool_step(batch: int):
    """A training step's gradients through every kind of convolution and pool kernel (max_pool2d_gather
    and max_pool2d_grad too), at ``batch``."""
    rng = np.random.default_rng(3)
    with gc.Graph("chunked") as g:
        x = gc.input("x", (batch, 4, 9, 8))
        w1 = gc.param("w1", (6, 4, 3, 3), init=rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
        w2 = gc.param("w2", (6, 3, 3, 2), init=rng.standard_normal((6, 3, 3, 2)).astype(np.float32))
        w3 = gc.param("w3", (5, 6, 1, 1), init=rng.standard_normal((5, 6, 1, 1)).astype(np.float32))
        h = gc.conv2d(x, w1, padding=1)
        h = gc.conv2d(h, w2, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
        pooled = gc.max_pool2d(h, 3, stride=2, padding=1)
        gathered = MAX_POOL_GATHER(gc.tanh(h), h, pooled, kernel_size=3, stride=2, padding=1)
        h = gc.conv2d(pooled + gathered, w3)
        loss = gc.sum(gc.avg_pool2d(h, 2, ceil_mode=True, count_include_pad=False) ** 2)
        grads = gc.grad(loss, [x, w1, w2, w3])
    return g, [loss, *grads], rng.standard_normal((batch, 4, 9, 8)).astype(np.float32)


def _largest_scratch(batch: int) -> int:
    _, outputs, _ = _conv_pool_step(batch)
    memory = gc.compile(outputs, bind=False).memory
    return max(sum(a.nbytes for a in avals) for avals in memory.scratch.values())


def test_conv_and_pool_scratch_does_not_grow_with_the_batch(monkeypatch) -> None:
    """Each kernel takes a batch a part at a time: as many images as the bound's bytes hold, or
    (a convolution on a small map) as many as make PRODUCT_PIXELS output pixels. Past that its
    scratch stops growing with the batch."""
    one_image = _largest_scratch(1)
    monkeypatch.setattr("graphc.ops.conv.SCRATCH_BOUND_BYTES", 3 * one_image)
    assert _largest_scratch(2) > one_image  # a small batch is taken at once
    assert _largest_scratch(64) == _largest_scratch(512)


@pytest.mark.parametrize("hw", [(5, 4), (13, 13)])  # 3×2 outputs: 20 images in one product; 7×7: 6, 6, 6 and 2
def test_a_weight_gradient_sums_over_groups_of_images(hw) -> None:
    """Small maps are taken several images to a product (depth at least PRODUCT_PIXELS pixels);
    the groups depend on the shapes alone. Checked against the sum over windows in float64."""
    from graphc.ops import conv2d_weight_grad
    from graphc.ops.conv import PRODUCT_PIXELS, images_per_product
    assert images_per_product(32, (56, 56)) == 1 and images_per_product(32, (4, 4)) == PRODUCT_PIXELS // 16
    assert images_per_product(3, (4, 4)) == 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6, *hw))
    out_hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)  # kernel 3, stride 2, padding 1
    gs = rng.standard_normal((20, 8, *out_hw))
    with gc.Graph("weight grad"):
        xs = gc.input("x", x.shape, dtype="float64")
        g = gc.input("g", gs.shape, dtype="float64")
        dw = conv2d_weight_grad(xs, g, kernel_size=(3, 3), stride=(2, 2), padding=1, groups=2)
    got = gc.compile(dw).run({"x": x, "g": gs})
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((8, 3, 3, 3))
    for o in range(8):
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    window = padded[:, o // 4 * 3 + c, i:i + 2 * out_hw[0]:2, j:j + 2 * out_hw[1]:2]
                    want[o, c, i, j] = np.sum(window * gs[:, o])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kernels_taking_the_batch_one_image_at_a_time_give_the_same_bits(monkeypatch) -> None:
    _, outputs, x = _conv_pool_step(5)
    whole = gc.compile(outputs).run({"x": x})
    monkeypatch.setattr("graphc.ops.conv.SCRATCH_BOUND_BYTES", 1)
    _, outputs, x = _conv_pool_step(5)
    chunked = gc.compile(outputs).run({"x": x})
    for a, b in zip(whole, chunked):
        assert np.array_equal(a, b)
