"""Every op, the same way: forward values against NumPy, VJPs against finite differences.

Each :class:`Case` is one lambda ``fn(m, *args)`` written against a namespace
``m`` that is either :mod:`graphc.ops` (symbolic) or :data:`NP` (a NumPy
reference written here, independently of graphc's kernels) — tinygrad's
``helper_test_op``: the oracle runs through the same lambda. Each case gets

- ``test_forward``: graphc's values against NumPy's, in float64 and float32;
- ``test_vjp_gradcheck``: :func:`graphc.gradcheck` (random directions, float64);
- ``test_vjp_elementwise``: an independent checker, a loop over every element
  of every input with central differences of the NumPy reference, against
  ``gc.grad(y, inputs, seed=c)`` — so gradcheck is itself checked;

and every op has a fan-out case (the same value read twice: ``x * x``,
``x @ x``, ``gc.maximum(x, x)``, ``gc.concat([x, x])``), the bug micrograd (#2)
and Paddle's ``matmul(x, x)`` (#11977) shipped with. Inputs stay away from kinks
(relu at 0, ties of max/maximum, log/sqrt/pow of non-positives).

``test_every_op_is_covered`` fails when an op is registered without a case here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

import graphc as gc
import graphc.autodiff
import graphc.ops as G
from graphc.gradcheck import GradcheckError
from graphc.ops import ZERO, registered

import conv_reference

# --- the NumPy reference --------------------------------------------------------


def _slice_axis(x, axis, start, stop):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _pad_axis(x, axis, before, after):
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, after)
    return np.pad(x, widths)


def _log_softmax(x, axis=-1):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def _nll_loss(log_probs, labels):
    return -np.mean(np.take_along_axis(log_probs, labels[..., None], axis=-1))


def _softmax_cross_entropy_grad(log_probs, labels, scale):
    return (np.exp(log_probs) - (labels[..., None] == np.arange(log_probs.shape[-1]))) * scale


def _softmax_cross_entropy(logits, labels):
    picked = np.take_along_axis(_log_softmax(logits), labels[..., None], axis=-1)
    return -np.mean(picked)


def _uniform(key, shape, dtype="float32", stream=0):
    """U[0, 1) from NumPy's Philox keyed by (key, stream), drawn into a fresh array."""
    words = np.array([int(key), stream], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=words)).random(size=shape).astype(dtype)


def _dropout(x, key, rate):
    return x * (_uniform(key, x.shape, x.dtype, stream=_DROPOUT_STREAM) > rate) / (1.0 - rate)


def _getitem_grad(g, index, shape):
    out = np.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out


def _scatter_add(g, indices, axis, shape, padding_idx=None):
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, (slice(None),) * axis + (indices,), g)
    if padding_idx is not None:
        out[(slice(None),) * axis + (padding_idx,)] = 0
    return out


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _logsumexp(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _standardized(x, axes, eps):
    centred = x - np.mean(x, axis=axes, keepdims=True)
    return centred / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps)


def _norm_statistics(x, axes, eps=1e-5):
    """[μ, 0, 1/√(σ² + eps), s²]: in exact arithmetic the rounded mean is μ and its correction 0."""
    mean = np.mean(x, axis=axes, keepdims=True)
    inverse_sigma = 1.0 / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps)
    return np.stack([mean, np.zeros_like(mean), inverse_sigma, np.var(x, axis=axes, keepdims=True, ddof=1)])


def _standardized_by(x, stats, axes):
    return (x - stats[0] - stats[1]) * stats[2]


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    y = _standardized(x, tuple(range(x.ndim - k, x.ndim)), eps)
    return y * (1.0 if weight is None else weight) + (0.0 if bias is None else bias)


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Training mode with batch statistics only (the running statistics are state params: tests/test_ops_norm.py)."""
    assert training and running_mean is None and running_var is None
    channel = (x.shape[1],) + (1,) * (x.ndim - 2)
    y = _standardized(x, (0,) + tuple(range(2, x.ndim)), eps)
    return y * (1.0 if weight is None else weight.reshape(channel)) + (0.0 if bias is None else bias.reshape(channel))


_DROPOUT_STREAM = 2  # the uniform node of a dropout case is the graph's third node (x0, x1, then it)


NP = SimpleNamespace(
    copy=np.copy,
    add=np.add,
    sub=np.subtract,
    mul=np.multiply,
    div=np.divide,
    neg=np.negative,
    pow=np.power,
    matmul=np.matmul,
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    tanh=np.tanh,
    sigmoid=lambda x: 1.0 / (1.0 + np.exp(-x)),
    relu=lambda x: np.where(x > 0, x, 0.0),
    maximum=np.maximum,
    astype=lambda x, dtype: np.asarray(x).astype(dtype),
    greater=lambda a, b: np.greater(a, b).astype(np.result_type(a, b)),
    equal=lambda a, b: np.equal(a, b).astype(np.result_type(a, b)),
    sum=lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    mean=lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    max=lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    reshape=np.reshape,
    transpose=lambda x, axes=None: np.transpose(x, axes),
    broadcast_to=np.broadcast_to,
    concat=lambda xs, axis=0: np.concatenate(xs, axis=axis),
    slice_axis=_slice_axis,
    pad_axis=_pad_axis,
    softmax=lambda x, axis=-1: np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True),
    log_softmax=_log_softmax,
    softmax_cross_entropy=_softmax_cross_entropy,
    fused_softmax_cross_entropy=_softmax_cross_entropy,
    nll_loss=_nll_loss,
    softmax_cross_entropy_grad=_softmax_cross_entropy_grad,
    one_hot=lambda labels, classes, dtype: (labels[..., None] == np.arange(classes)).astype(dtype),
    mse=lambda p, t: np.mean((p - t) ** 2),
    add_n=lambda *xs: functools.reduce(np.add, xs),
    less=lambda a, b: np.less(a, b).astype(np.result_type(a, b)),
    less_equal=lambda a, b: np.less_equal(a, b).astype(np.result_type(a, b)),
    greater_equal=lambda a, b: np.greater_equal(a, b).astype(np.result_type(a, b)),
    not_equal=lambda a, b: np.not_equal(a, b).astype(np.result_type(a, b)),
    where=lambda c, a, b: np.where(np.asarray(c) != 0, a, b),
    abs=np.abs,
    sign=np.sign,
    clip=lambda x, a_min=None, a_max=None: np.clip(x, a_min, a_max),
    minimum=np.minimum,
    erf=_erf,
    gelu=_gelu,
    softplus=_softplus,
    logsumexp=_logsumexp,
    var=lambda x, axis=None, keepdims=False, ddof=0: np.var(x, axis=axis, keepdims=keepdims, ddof=ddof),
    std=lambda x, axis=None, keepdims=False, ddof=0: np.std(x, axis=axis, keepdims=keepdims, ddof=ddof),
    div_by_count=lambda x, dims: x * (1.0 / np.prod(dims) if np.prod(dims) else 0.0),
    uniform=_uniform,
    dropout=_dropout,
    getitem=lambda x, key: x[key],
    getitem_grad=_getitem_grad,
    take=lambda a, indices, axis=None: np.take(a, indices, axis=axis),
    embedding=lambda indices, weight, padding_idx=None: weight[indices],
    scatter_add=_scatter_add,
    layer_norm=_layer_norm,
    norm_statistics=_norm_statistics,
    standardized=_standardized_by,
    batch_norm=_batch_norm,
)

# --- inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """An input of a case: its shape and the domain its values are drawn from.

    kinds: ``any`` U(-2, 2); ``pos`` U(0.5, 2); ``away`` ±U(0.2, 2) (no zeros);
    ``grid0`` / ``grid1`` multiples of 0.2 plus 0 / 0.1 (so a grid0 and a grid1
    value differ by ≥ 0.1: no ties); ``distinct`` all values ≥ 0.05 apart;
    ``labels`` ints in [0, classes).
    """

    shape: tuple[int, ...]
    kind: str = "any"
    classes: int = 0
    dtype: str = "float64"

    def make(self, rng: np.random.Generator, float_dtype: str = "float64") -> np.ndarray:
        shape, n = self.shape, int(np.prod(self.shape))
        if self.kind == "labels":
            return rng.integers(0, self.classes, size=shape).astype(self.dtype)
        if self.kind == "any":
            x = rng.uniform(-2, 2, shape)
        elif self.kind == "pos":
            x = rng.uniform(0.5, 2, shape)
        elif self.kind == "away":
            x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2, shape)
        elif self.kind in ("grid0", "grid1"):
            x = 0.2 * rng.integers(-8, 8, shape) + (0.1 if self.kind == "grid1" else 0.0)
        elif self.kind == "distinct":
            x = (rng.permutation(n).reshape(shape) - n / 2) * 0.1 + rng.uniform(0, 0.05, shape)
        else:
            raise ValueError(self.kind)
        return np.asarray(x, dtype=float_dtype)

    @property
    def is_float(self) -> bool:
        return self.kind != "labels"


def A(*shape: int) -> Arg:
    return Arg(shape)


def P(*shape: int) -> Arg:
    return Arg(shape, "pos")


def L(shape: tuple[int, ...], classes: int, dtype: str = "int64") -> Arg:
    return Arg(shape, "labels", classes, dtype)


@dataclass(frozen=True)
class Case:
    op: str  # the registered op under test
    label: str
    fn: Callable[..., Any]  # fn(m, *args) with m = graphc.ops or NP
    args: tuple[Arg, ...]
    eps: float = 1e-6

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"


def _shapes(*args: Arg) -> str:
    return "x".join(str(a.shape).replace(" ", "") for a in args)


CASES: list[Case] = []


def case(op: str, fn: Callable[..., Any], *args: Arg, label: str | None = None, eps: float = 1e-6) -> None:
    CASES.append(Case(op, label or _shapes(*args), fn, tuple(args), eps))


# --- binary elementwise ops, with broadcasting ------------------------------------

BROADCASTS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((), (2, 3)), ((4, 1), (1, 3)), ((1,), (2, 1, 3))]

for a, b in BROADCASTS:
    case("add", lambda m, x, y: m.add(x, y), A(*a), A(*b))
    case("sub", lambda m, x, y: m.sub(x, y), A(*a), A(*b))
    case("mul", lambda m, x, y: m.mul(x, y), A(*a), A(*b))
    case("div", lambda m, x, y: m.div(x, y), A(*a), P(*b))
    case("pow", lambda m, x, y: m.pow(x, y), P(*a), A(*b))
    case("maximum", lambda m, x, y: m.maximum(x, y), Arg(a, "grid0"), Arg(b, "grid1"))
case("add", lambda m, x: x + x, A(3, 4), label="fanout")
case("add", lambda m, x, y: 1.5 + x + y, A(3,), A(2, 3), label="operators-scalar")
case("sub", lambda m, x: x - x * x, A(3, 4), label="fanout")
case("sub", lambda m, x: 1.0 - x, A(3, 4), label="rsub-scalar")
case("mul", lambda m, x: x * x, A(3, 4), label="fanout")
case("mul", lambda m, x: m.mul(m.mul(x, x), x), A(5,), label="fanout-cube")
case("div", lambda m, x: x / (x * x + 1.0), A(3, 4), label="fanout")
case("div", lambda m, x: m.div(x, x), P(3, 4), label="fanout-x/x")
case("div", lambda m, x: 2.0 / x, P(2, 3), label="rtruediv-scalar")
case("pow", lambda m, x: m.pow(x, x), P(3, 4), label="fanout")
case("pow", lambda m, x: x ** 3.0, A(3, 4), label="scalar-exponent-negative-base")
case("pow", lambda m, x: 2.0 ** x, A(3, 4), label="rpow-scalar-base")
case("maximum", lambda m, x: m.maximum(x, x), A(3, 4), label="fanout-ties")
case("maximum", lambda m, x, y: m.maximum(x, y) * x, Arg((3, 4), "grid0"), Arg((4,), "grid1"), label="fanout-broadcast")
case("maximum", lambda m, x: m.maximum(x, 0.1), Arg((3, 4), "grid0"), label="scalar")

# --- unary ops ---------------------------------------------------------------------

UNARY = {
    "neg": ("any", lambda m, x: m.neg(x)),
    "exp": ("any", lambda m, x: m.exp(x)),
    "log": ("pos", lambda m, x: m.log(x)),
    "sqrt": ("pos", lambda m, x: m.sqrt(x)),
    "tanh": ("any", lambda m, x: m.tanh(x)),
    "sigmoid": ("any", lambda m, x: m.sigmoid(x)),
    "relu": ("away", lambda m, x: m.relu(x)),
}
for op, (kind, f) in UNARY.items():
    for shape in [(), (5,), (2, 3, 4)]:
        case(op, f, Arg(shape, kind))
    case(op, lambda m, x, f=f: f(m, x) * x, Arg((3, 4), kind), label="fanout")
    case(op, lambda m, x, f=f: (lambda u: u * u)(f(m, x)), Arg((3,), kind), label="fanout-output")
case("neg", lambda m, x: -x * x, A(3, 4), label="operator-fanout")
case("copy", lambda m, x: m.copy(x), A(2, 3))
case("copy", lambda m, x: m.copy(x) * x, A(3, 4), label="fanout")
case("astype", lambda m, x: m.astype(m.exp(m.astype(x, "float64")), x.dtype), A(2, 3), label="via-float64")
case("astype", lambda m, x: m.astype(m.astype(x, "float64"), x.dtype) * x, A(3, 4), label="fanout")
case("relu", lambda m, x: m.relu(x) * m.relu(-x) + m.relu(x), Arg((2, 5), "away"), label="fanout-both-signs")

# --- masks (ZERO VJP rules) and one_hot: the gradient flows around them ---------------

case("greater", lambda m, x, y: m.greater(x, y) * x, Arg((3, 4), "grid0"), Arg((4,), "grid1"))
case("greater", lambda m, x: m.greater(x, 0.1) * x * x, Arg((3, 4), "grid0"), label="fanout")
case("equal", lambda m, x, y: m.equal(x, m.maximum(x, y)) * y, Arg((3, 4), "grid0"), Arg((3, 4), "grid1"))
case("equal", lambda m, x: m.equal(x, x) * x, A(3, 4), label="fanout")
case("one_hot", lambda m, x, lab: m.one_hot(lab, 5, x.dtype) * x, A(4, 5), L((4,), 5))
case("one_hot", lambda m, x, lab: m.one_hot(lab, 3, x.dtype) * x * x, A(2, 3, 3), L((2, 3), 3, "int32"), label="fanout")

for op in ["less", "less_equal", "greater_equal", "not_equal"]:
    case(op, lambda m, x, y, op=op: getattr(m, op)(x, y) * x, Arg((3, 4), "grid0"), Arg((4,), "grid1"))
    case(op, lambda m, x, op=op: getattr(m, op)(x, 0.1) * x * x, Arg((3, 4), "grid0"), label="fanout")
case("less", lambda m, x, y: ((x < y) + (x <= y) * 2.0 + (x > y) * 4.0 + (x >= y) * 8.0 + (x == y) * 16.0
                              + (x != y) * 32.0 + (x == x) * 64.0) * x * y,
     Arg((3, 4), "grid0"), Arg((4,), "grid1"), label="operators")
case("greater", lambda m, x: (0.1 < x) * x + (x > x) + (x >= x), Arg((3, 4), "grid0"), label="operators-reflected")
case("sign", lambda m, x: m.sign(x) * x, Arg((3, 4), "away"))
case("sign", lambda m, x: m.sign(x) * m.sign(x) * x, Arg((2, 3), "away"), label="fanout")

# --- selecting and limiting: where, abs, clip, minimum ----------------------------------

case("where", lambda m, c, x, y: m.where(m.greater(c, 0.0), x, y), Arg((3, 4), "away"), A(3, 4), A(3, 4))
case("where", lambda m, c, x, y: m.where(m.greater(c, 0.0), x, y), Arg((3, 1), "away"), A(4), A(2, 3, 4),
     label="broadcast")
case("where", lambda m, x: m.where(m.greater(x, 0.0), x * x, 0.5), Arg((3, 4), "away"), label="scalar")
case("where", lambda m, x: m.where(m.greater(x, 0.0), x * x, x), Arg((3, 4), "away"), label="fanout")
case("abs", lambda m, x: m.abs(x), Arg((2, 3, 4), "away"))
case("abs", lambda m, x: m.abs(x) * x, Arg((3, 4), "away"), label="fanout")
for label, bounds in [("both", (-0.5, 0.7)), ("min-only", (-0.5, None)), ("max-only", (None, 0.7))]:
    case("clip", lambda m, x, b=bounds: m.clip(x, *b), A(3, 4), label=label)
case("clip", lambda m, x: m.clip(x, -0.5, 0.7) * x, A(3, 4), label="fanout")
for a, b in BROADCASTS:
    case("minimum", lambda m, x, y: m.minimum(x, y), Arg(a, "grid0"), Arg(b, "grid1"))
case("minimum", lambda m, x: m.minimum(x, x), A(3, 4), label="fanout-ties")
case("minimum", lambda m, x, y: m.minimum(x, y) * x, Arg((3, 4), "grid0"), Arg((4,), "grid1"), label="fanout-broadcast")

# --- smooth activations ------------------------------------------------------------------

for op, f in {
    "erf": lambda m, x: m.erf(x),
    "gelu": lambda m, x: m.gelu(x),
    "softplus": lambda m, x: m.softplus(x),
}.items():
    for shape in [(), (2, 3, 4)]:
        case(op, f, Arg(shape, "any"))
    case(op, lambda m, x, f=f: f(m, x) * x, A(3, 4), label="fanout")
case("gelu", lambda m, x: m.gelu(x, approximate="tanh"), A(2, 3, 4), label="tanh")
case("gelu", lambda m, x: m.gelu(x, approximate="tanh") * x, A(3, 4), label="fanout-tanh")
case("softplus", lambda m, x: m.softplus(x, beta=2.0, threshold=1.0), A(3, 4), label="beta2-threshold1")
case("softplus", lambda m, x: m.softplus(x * 30.0), A(3, 4), label="above-threshold")

# --- matmul ---------------------------------------------------------------------------

MATMULS = [((3, 4), (4, 5)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
           ((2, 3, 4), (2, 4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]
for a, b in MATMULS:
    case("matmul", lambda m, x, y: m.matmul(x, y), A(*a), A(*b))
case("matmul", lambda m, x: x @ x, A(3, 3), label="fanout")
case("matmul", lambda m, x: m.matmul(x, x), A(2, 3, 3), label="fanout-batched")
case("matmul", lambda m, x: x @ m.transpose(x), A(3, 4), label="fanout-xxT")
case("matmul", lambda m, x: x @ x, A(4,), label="fanout-dot")
# a dense layer's weight gradient is one GEMM of the stacked rows; a swapped transpose's gradient has its layout
case("matmul", lambda m, x, y: m.matmul(x, y), A(2, 3, 4, 5), A(5, 2), label="stacked-two-batch-dims")
case("matmul", lambda m, x, y: m.matmul(m.transpose(x, (1, 0, 2)), y), A(3, 2, 4), A(4, 5), label="stacked-non-contiguous")
case("matmul", lambda m, x, w: m.matmul(x, m.transpose(w)), A(2, 3, 4), A(5, 4), label="stacked-tied-transpose")
case("matmul", lambda m, x, y: m.matmul(m.transpose(x), y), A(4, 3), A(4, 5), label="transposed-a")
case("matmul", lambda m, x, y: m.matmul(m.transpose(x, (0, 2, 1)), m.transpose(y, (0, 2, 1))), A(2, 4, 3), A(2, 5, 4),
     label="batched-transposed-both")
case("matmul", lambda m, x, y: m.matmul(x, m.transpose(y, (0, 2, 1))), A(2, 3, 4), A(1, 5, 4),
     label="broadcast-batch-transposed-b")
case("matmul", lambda m, x, y: m.matmul(m.transpose(x, (1, 0)), y), A(4, 3), A(2, 4, 5), label="broadcast-transposed-a")
case("matmul", lambda m, x, w: m.matmul(m.matmul(x, m.transpose(w)), w), A(2, 3, 4), A(5, 4), label="fanout-tied")

# --- reductions ------------------------------------------------------------------------

for op, kind in [("sum", "any"), ("mean", "any"), ("max", "distinct")]:
    for axis in [None, 1, -1, (0, 2)]:
        for keepdims in [False, True]:
            case(op, lambda m, x, op=op, axis=axis, keepdims=keepdims: getattr(m, op)(x, axis=axis, keepdims=keepdims),
                 Arg((2, 3, 4), kind), label=f"(2,3,4)-axis={axis}-keepdims={keepdims}".replace(" ", ""))
    case(op, lambda m, x, op=op: getattr(m, op)(x), Arg((), kind), label="scalar")
    case(op, lambda m, x, op=op: getattr(m, op)(x, axis=0), Arg((5,), kind), label="(5,)-axis=0")
    case(op, lambda m, x, op=op: x * getattr(m, op)(x, axis=1, keepdims=True), Arg((3, 4), kind), label="fanout")
    case(op, lambda m, x, op=op: getattr(m, op)(x, axis=0) * getattr(m, op)(x, axis=0), Arg((3, 4), kind), label="fanout-twice")

for axis in [None, 1, -1, (0, 2)]:
    for keepdims in [False, True]:
        case("logsumexp", lambda m, x, axis=axis, keepdims=keepdims: m.logsumexp(x, axis=axis, keepdims=keepdims),
             A(2, 3, 4), label=f"(2,3,4)-axis={axis}-keepdims={keepdims}".replace(" ", ""))
case("logsumexp", lambda m, x: x * m.logsumexp(x, axis=1, keepdims=True), A(3, 4), label="fanout")
for op in ["var", "std"]:
    for axis, keepdims, ddof in [(None, False, 0), (1, False, 0), (-1, True, 1), ((0, 2), False, 1), (0, True, 0)]:
        case(op, lambda m, x, op=op, axis=axis, keepdims=keepdims, ddof=ddof:
             getattr(m, op)(x, axis=axis, keepdims=keepdims, ddof=ddof),
             A(2, 3, 4), label=f"(2,3,4)-axis={axis}-keepdims={keepdims}-ddof={ddof}".replace(" ", ""))
    case(op, lambda m, x, op=op: getattr(m, op)(x, axis=0) * getattr(m, op)(x, axis=0, ddof=1), A(3, 4),
         label="fanout")
    case(op, lambda m, x, op=op: x * getattr(m, op)(x, axis=1, keepdims=True), A(3, 4), label="fanout-times-x")

# --- Value methods (the functions with NumPy's method names) ------------------------------

case("sum", lambda m, x: x.sum(axis=1, keepdims=True) * x.sum(), A(3, 4), label="method")
case("mean", lambda m, x: x.mean(0) + x.mean(axis=(0, 1)), A(3, 4), label="method")
case("max", lambda m, x: x.max(axis=-1, keepdims=True) + x.max(), Arg((3, 4), "distinct"), label="method")
case("reshape", lambda m, x: x.reshape(4, 3) + x.reshape((4, 3)) + x.reshape([-1, 3]), A(3, 4), label="method")
case("transpose", lambda m, x: x.transpose(1, 2, 0) + x.transpose((1, 2, 0)) * x.transpose(2, 0, 1).transpose(1, 2, 0),
     A(2, 2, 2), label="method")
case("transpose", lambda m, x: x.transpose() * x.T, A(3, 4), label="method-reversed")
case("astype", lambda m, x: x.astype("float64").astype(x.dtype) * x, A(3, 4), label="method")

# --- moving elements -------------------------------------------------------------------

case("reshape", lambda m, x: m.reshape(x, (6, 4)), A(2, 3, 4))
case("reshape", lambda m, x: m.reshape(x, (-1,)), A(2, 3, 4), label="(2,3,4)-flatten")
case("reshape", lambda m, x: m.reshape(x, (4, 3, 2)), A(2, 3, 4), label="(2,3,4)-to-(4,3,2)")
case("reshape", lambda m, x: m.reshape(x, (1, 1)), A(), label="scalar-to-(1,1)")
case("reshape", lambda m, x: m.reshape(m.transpose(x), (12,)), A(3, 4), label="of-transposed")
case("reshape", lambda m, x: m.reshape(x, (4, 3)) * m.transpose(x), A(3, 4), label="fanout")

case("transpose", lambda m, x: m.transpose(x), A(3, 4))
case("transpose", lambda m, x: m.transpose(x, (1, 2, 0)), A(2, 3, 4), label="(2,3,4)-axes=(1,2,0)")
case("transpose", lambda m, x: m.transpose(x, (2, 0, 1)), A(2, 3, 4), label="(2,3,4)-axes=(2,0,1)")
case("transpose", lambda m, x: m.transpose(x, (0, 2, 1)), A(2, 3, 4), label="(2,3,4)-axes=(0,2,1)")
case("transpose", lambda m, x: m.transpose(x) * x, A(3, 3), label="fanout")
case("transpose", lambda m, x: m.transpose(x, (1, 2, 0)) * m.transpose(x, (2, 0, 1)), A(2, 2, 2), label="fanout-3d")

case("broadcast_to", lambda m, x: m.broadcast_to(x, (3, 4)), A(4))
case("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3, 5)), A(3, 1))
case("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3)), A())
case("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 4)), A(2, 4), label="(2,4)-identity")
case("broadcast_to", lambda m, x: m.broadcast_to(x, (3, 4)) * x, A(4), label="fanout")

case("concat", lambda m, x, y: m.concat([x, y]), A(2, 3), A(4, 3))
case("concat", lambda m, x, y, z: m.concat([x, y, z], axis=1), A(2, 3), A(2, 2), A(2, 1))
case("concat", lambda m, x, y: m.concat([x, y], axis=-1), A(2, 3, 1), A(2, 3, 2))
case("concat", lambda m, x: m.concat([x]), A(3,), label="one-operand")
case("concat", lambda m, x: m.concat([x, x]), A(2, 3), label="fanout")
case("concat", lambda m, x, y: m.concat([x, y, x], axis=1) * 2.0, A(2, 3), A(2, 1), label="fanout-axis1")

case("slice_axis", lambda m, x: m.slice_axis(x, 0, 1, 4), A(5, 4))
case("slice_axis", lambda m, x: m.slice_axis(x, -1, 0, 2), A(5, 4), label="(5,4)-axis=-1")
case("slice_axis", lambda m, x: m.slice_axis(x, 1, 2, 5), A(2, 5, 3), label="(2,5,3)-axis=1")
case("slice_axis", lambda m, x: m.slice_axis(x, 0, 0, 5), A(5,), label="(5,)-whole")
case("slice_axis", lambda m, x: m.slice_axis(x, 0, 0, 2) * m.slice_axis(x, 0, 1, 3), A(4, 3), label="fanout")

case("pad_axis", lambda m, x: m.pad_axis(x, 0, 1, 2), A(3, 4))
case("pad_axis", lambda m, x: m.pad_axis(x, 1, 0, 3), A(3, 4), label="(3,4)-axis=1")
case("pad_axis", lambda m, x: m.pad_axis(x, -1, 2, 0), A(2, 3, 4), label="(2,3,4)-axis=-1")
case("pad_axis", lambda m, x: m.pad_axis(x, 0, 1, 0) * m.pad_axis(x, 0, 0, 1), A(3, 2), label="fanout")

case("getitem", lambda m, x: x[1], A(3, 4))
case("getitem", lambda m, x: x[:, -1], A(3, 4), label="(3,4)-last-column")
case("getitem", lambda m, x: x[::-2, 1:3, None], A(5, 4, 2), label="(5,4,2)-reversed-stepped-newaxis")
case("getitem", lambda m, x: x[..., None, 0], A(2, 3), label="(2,3)-ellipsis")
case("getitem", lambda m, x: x[1, 2], A(3, 4), label="(3,4)-element")
case("getitem", lambda m, x: x[0] * x[1] + x[:, 1:] @ m.transpose(x[:, :-1]), A(3, 3), label="fanout")
case("getitem_grad", lambda m, g: m.getitem_grad(g, (slice(1, 3), 0), (4, 2)), A(2))
case("getitem_grad", lambda m, g: m.getitem_grad(g * g, (slice(None, None, -1), None), (3,)) * g[0], A(3, 1),
     label="fanout")
case("take", lambda m, x, i: m.take(x, i, axis=0), A(4, 3), L((5,), 4))
case("take", lambda m, x, i: m.take(x, i, axis=1), A(2, 4, 3), L((2, 2), 4, "int32"), label="(2,4,3)-axis=1")
case("take", lambda m, x, i: m.take(x, i), A(3, 2), L((4,), 6), label="(3,2)-flattened")
case("take", lambda m, x, i: m.take(x, i, axis=0) * m.take(x, i, axis=0), A(3, 2), L((5,), 3), label="fanout")
case("embedding", lambda m, w, i: m.embedding(i, w), A(5, 3), L((2, 4), 5))
case("embedding", lambda m, w, i: m.embedding(i, w) * m.embedding(i, w)[..., :1], A(4, 2), L((6,), 4), label="fanout")
case("scatter_add", lambda m, g, i: m.scatter_add(g, i, 0, (3, 2)), A(6, 2), L((6,), 3))
case("scatter_add", lambda m, g, i: m.scatter_add(g, i, 1, (2, 3), padding_idx=1), A(2, 5), L((5,), 3),
     label="(2,5)-axis=1-padding")
case("scatter_add", lambda m, g, i: m.scatter_add(g, i, 0, (3,)) * m.scatter_add(g, i, 0, (3,)), A(4), L((4,), 3),
     label="fanout")

# --- softmax and the losses ----------------------------------------------------------------

for op in ["softmax", "log_softmax"]:
    case(op, lambda m, x, op=op: getattr(m, op)(x), A(5))
    case(op, lambda m, x, op=op: getattr(m, op)(x), A(3, 4), label="(3,4)-axis=-1")
    case(op, lambda m, x, op=op: getattr(m, op)(x, axis=0), A(3, 4), label="(3,4)-axis=0")
    case(op, lambda m, x, op=op: getattr(m, op)(x, axis=1), A(2, 3, 4), label="(2,3,4)-axis=1")
    case(op, lambda m, x, op=op: getattr(m, op)(x) * x, A(3, 4), label="fanout")

# gc.softmax_cross_entropy is nll_loss(log_softmax(x)): its gradient is the one softmax_cross_entropy_grad kernel
for args in [(A(4, 5), L((4,), 5)), (A(2, 3, 5), L((2, 3), 5, "int32")), (A(5), L((), 5))]:
    case("nll_loss", lambda m, x, lab: m.softmax_cross_entropy(x, lab), *args,
         label="softmax_cross_entropy-" + _shapes(*args))
case("nll_loss", lambda m, x, l1, l2: m.softmax_cross_entropy(x, l1) * m.softmax_cross_entropy(x, l2),
     A(4, 3), L((4,), 3), L((4,), 3), label="softmax_cross_entropy-fanout")
case("nll_loss", lambda m, x, lab: m.nll_loss(x, lab), A(4, 5), L((4,), 5))  # any values, not log-probabilities
case("nll_loss", lambda m, x, lab: (lambda lp: m.nll_loss(lp, lab) + m.sum(lp * lp))(m.log_softmax(x)),
     A(3, 4), L((3,), 4), label="log-probs-read-twice")  # log_softmax's J^T of a sum: the general rule
case("nll_loss", lambda m, x, lab: m.nll_loss(x * x, lab) * m.nll_loss(x, lab), A(2, 3, 4), L((2, 3), 4), label="fanout")
case("softmax_cross_entropy_grad", lambda m, x, lab, s: m.softmax_cross_entropy_grad(x, lab, s), A(4, 5), L((4,), 5), A())
case("softmax_cross_entropy_grad", lambda m, x, lab, s: m.softmax_cross_entropy_grad(x, lab, s * s) * x,
     A(2, 3, 4), L((2, 3), 4, "int32"), A(), label="fanout")
# the op named softmax_cross_entropy: the one kernel of plans saved before
case("softmax_cross_entropy", lambda m, x, lab: m.fused_softmax_cross_entropy(x, lab), A(4, 5), L((4,), 5))
case("softmax_cross_entropy", lambda m, x, lab: m.fused_softmax_cross_entropy(x, lab), A(2, 3, 5), L((2, 3), 5, "int32"))
case("softmax_cross_entropy", lambda m, x, lab: m.fused_softmax_cross_entropy(x, lab), A(5), L((), 5))
case("softmax_cross_entropy",
     lambda m, x, l1, l2: m.fused_softmax_cross_entropy(x, l1) * m.fused_softmax_cross_entropy(x, l2),
     A(4, 3), L((4,), 3), L((4,), 3), label="fanout")

case("mse", lambda m, x, y: m.mse(x, y), A(3, 4), A(3, 4))
case("mse", lambda m, x, y: m.mse(x, y), A(3, 4), A(4))
case("mse", lambda m, x, y: m.mse(x, y), A(), A(2, 2))
case("mse", lambda m, x: m.mse(x, m.tanh(x)), A(3, 4), label="fanout")

case("add_n", lambda m, x, y: m.add_n(x, y), A(3, 4), A(3, 4))
case("add_n", lambda m, x, y, z: m.add_n(x, y, z), A(2, 3), A(2, 3), A(2, 3))
case("add_n", lambda m, x: m.add_n(x), A(3,), label="one-term")
case("add_n", lambda m, x, y: m.add_n(x, x, x * y), A(3, 4), A(3, 4), label="fanout")

case("div_by_count", lambda m, x: m.div_by_count(x, dims=(3, 4)), A(3, 4))
case("div_by_count", lambda m, x: m.div_by_count(x, dims=(2, 0)), A(2,), label="(2,)-empty-count")
case("div_by_count", lambda m, x: m.div_by_count(x, dims=(5,)) * x, A(3,), label="fanout")

# --- normalisation (running statistics, eval mode and torch: tests/test_ops_norm.py) ---------------

case("layer_norm", lambda m, x: m.layer_norm(x, 5), A(3, 5))
case("layer_norm", lambda m, x, w, b: m.layer_norm(x, (3, 4), w, b, eps=1e-3), A(2, 3, 4), A(3, 4), A(3, 4),
     label="(2,3,4)-affine")
case("layer_norm", lambda m, x, w: m.layer_norm(x, [4], w) * x, A(3, 4), A(4), label="fanout")
case("batch_norm", lambda m, x, w, b: m.batch_norm(x, None, None, w, b, training=True), A(6, 3), A(3), A(3))
case("batch_norm", lambda m, x: m.batch_norm(x, None, None, training=True, eps=1e-3), A(2, 3, 2, 2))
case("batch_norm", lambda m, x, b: m.batch_norm(x, None, None, None, b, training=True) * x, A(4, 3), A(3),
     label="fanout")
case("norm_statistics", lambda m, x, w: m.norm_statistics(x, (0, 2), eps=1e-3) * w, A(3, 2, 4), A(4, 2, 1))
case("norm_statistics", lambda m, x: m.norm_statistics(x, (1,))[2] * x, A(3, 4), label="fanout")
case("standardized", lambda m, x, s: m.standardized(x, s, (1,)), A(3, 4), Arg((4, 3, 1), "pos"))
case("standardized", lambda m, x: m.standardized(x, m.norm_statistics(x, (0,)), (0,)) * x, A(4, 3), label="fanout")

# --- random numbers: a pure function of an int key ---------------------------------------

case("uniform", lambda m, x, key: m.uniform(key, x.shape, x.dtype, stream=7) * x, A(3, 4), L((), 1000))
case("uniform", lambda m, x, key: m.uniform(key, (4,), x.dtype, stream=1) * x * x, A(2, 4), L((), 9, "int32"),
     label="fanout")
case("dropout", lambda m, x, key: m.dropout(x, key, 0.5), A(4, 5), L((), 1000))
case("dropout", lambda m, x, key: m.dropout(x, key, 0.25) * x, A(3, 3), L((), 1000), label="fanout")

# --- convolution and pooling (tests/test_ops_conv.py compares them with torch) ---------------

NP.conv2d = conv_reference.conv2d
NP.conv2d_input_grad = conv_reference.conv2d_input_grad
NP.conv2d_weight_grad = conv_reference.conv2d_weight_grad
NP.max_pool2d = conv_reference.max_pool2d
NP.max_pool2d_grad = conv_reference.max_pool2d_grad
NP.max_pool2d_gather = conv_reference.max_pool2d_gather
NP.avg_pool2d = conv_reference.avg_pool2d
NP.avg_pool2d_grad = conv_reference.avg_pool2d_grad
NP.global_avg_pool = lambda x: np.mean(x, axis=(2, 3))
NP.flatten = lambda x, start_dim=0, end_dim=-1: x.reshape(*x.shape[:start_dim], -1, *x.shape[end_dim:][1:])
DISTINCT_IMAGE = Arg((2, 2, 5, 4), "distinct")

case("conv2d", lambda m, x, w: m.conv2d(x, w, stride=2, padding=1), A(2, 2, 5, 4), A(3, 2, 3, 2))
case("conv2d", lambda m, x, w, b: m.conv2d(x, w, b, dilation=2, groups=2), A(1, 4, 6, 5), A(2, 2, 2, 2), A(2),
     label="dilation2-groups2-bias")
case("conv2d", lambda m, x: m.conv2d(x, x, padding=1), A(2, 2, 3, 3), label="fanout")
case("conv2d_input_grad", lambda m, g, w: m.conv2d_input_grad(g, w, input_hw=(5, 4), stride=2, padding=1),
     A(2, 3, 3, 3), A(3, 2, 3, 2))
case("conv2d_input_grad", lambda m, w: m.conv2d_input_grad(w, w, input_hw=(3, 3)), A(2, 2, 2, 2), label="fanout")
case("conv2d_weight_grad", lambda m, x, g: m.conv2d_weight_grad(x, g, kernel_size=(3, 2), stride=2, padding=1),
     A(2, 2, 5, 4), A(2, 3, 3, 3))
case("conv2d_weight_grad", lambda m, x: m.conv2d_weight_grad(x, x, kernel_size=3, padding=1), A(2, 2, 3, 3),
     label="fanout")
case("max_pool2d", lambda m, x: m.max_pool2d(x, 3, stride=2, padding=1), DISTINCT_IMAGE)
case("max_pool2d", lambda m, x: m.max_pool2d(x, 2) * m.avg_pool2d(x, 2), Arg((2, 2, 4, 4), "distinct"), label="fanout")
case("max_pool2d_grad", lambda m, g, x: m.max_pool2d_grad(g, x, m.max_pool2d(x, 3, 2, 1), 3, 2, 1),
     A(2, 2, 3, 2), DISTINCT_IMAGE)
case("max_pool2d_grad", lambda m, x: m.max_pool2d_grad(x, x, m.max_pool2d(x, 3, 1, 1), 3, 1, 1) * x, DISTINCT_IMAGE,
     label="fanout")
case("max_pool2d_gather", lambda m, c, x: m.max_pool2d_gather(c, x, m.max_pool2d(x, 3, 2, 1), 3, 2, 1),
     A(2, 2, 5, 4), DISTINCT_IMAGE)
case("max_pool2d_gather", lambda m, x: m.max_pool2d_gather(x, x, m.max_pool2d(x, 2), 2), DISTINCT_IMAGE,
     label="fanout")
case("avg_pool2d", lambda m, x: m.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), A(1, 2, 6, 5))
case("avg_pool2d", lambda m, x: m.avg_pool2d(x, 3, 1, 1) * x, A(2, 2, 3, 4), label="fanout")
case("avg_pool2d_grad", lambda m, g: m.avg_pool2d_grad(g, input_hw=(5, 4), kernel_size=3, stride=2, padding=1),
     A(2, 2, 3, 2))
case("avg_pool2d_grad", lambda m, g: m.avg_pool2d_grad(g, (3, 3), 3, 1, 1) * g, A(2, 2, 3, 3), label="fanout")
case("mean", lambda m, x: m.global_avg_pool(x) * m.global_avg_pool(x), A(2, 3, 4, 5), label="global_avg_pool")
case("reshape", lambda m, x: m.flatten(x, 1) * m.flatten(x, 1, -1), A(2, 3, 2, 2), label="flatten")
case("reshape", lambda m, x: m.flatten(x, 1, 2), A(2, 3, 2, 2), label="flatten-middle")

# Ops whose every VJP rule is ZERO (masks, one-hot rows: piecewise constant, or int
# operands). They still have forward cases and cases above where the gradient flows
# *around* them. (Sources are nodes of their own kind, not ops.)
NO_VJP = {"greater", "equal", "less", "less_equal", "greater_equal", "not_equal", "sign", "one_hot", "uniform"}
# Public functions built from other ops (no primitive of their own): tested like ops.
COMPOSITES = {"mse": "mean", "dropout": "uniform"}

_ids = [c.id for c in CASES]
assert len(set(_ids)) == len(_ids), sorted(i for i in _ids if _ids.count(i) > 1)


# --- the checkers ------------------------------------------------------------------------


def _build(c: Case, dtype: str, rng: np.random.Generator):
    """Graph, input Values, the Value of ``c.fn`` and the feeds, for case ``c``."""
    arrays = [a.make(rng, dtype) for a in c.args]
    with gc.Graph(c.id) as g:
        xs = [gc.input(f"x{i}", a.shape, arr.dtype) for i, (a, arr) in enumerate(zip(c.args, arrays))]
        y = c.fn(G, *xs)
    return g, xs, y, arrays


def _feeds(xs, arrays) -> dict[str, np.ndarray]:
    return {x.name: arr for x, arr in zip(xs, arrays)}


def numeric_vjp(fn: Callable[..., np.ndarray], arrays: list[np.ndarray], index: int, cot: np.ndarray, eps: float) -> np.ndarray:
    """Jᵀc for input ``index`` by central differences, one element at a time, NumPy only."""
    base = arrays[index]
    out = np.empty(base.shape)
    for i in np.ndindex(*base.shape):
        shifted = []
        for sign in (1.0, -1.0):
            x = base.copy()
            x[i] += sign * eps
            args = list(arrays)
            args[index] = x
            shifted.append(float(np.sum(np.asarray(fn(*args)) * cot)))
        out[i] = (shifted[0] - shifted[1]) / (2 * eps)
    return out


def elementwise_check(c: Case, rng: np.random.Generator, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """graphc's VJP against :func:`numeric_vjp` of the NumPy reference, every element."""
    g, xs, y, arrays = _build(c, "float64", rng)
    wrt = [x for x, a in zip(xs, c.args) if a.is_float]
    cot = rng.standard_normal(y.shape) if y.shape else np.ones(())
    grads = gc.grad(y, wrt, seed=cot if y.shape else None)
    analytic = gc.compile(grads).run(_feeds(xs, arrays))
    ref = functools.partial(c.fn, NP)
    for x, got in zip(wrt, analytic):
        index = next(i for i, v in enumerate(xs) if v is x)  # `xs.index(x)` would compare Values with ==
        expected = numeric_vjp(ref, arrays, index, cot, c.eps)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"gradient of {x.name} in {c.id}")


@pytest.mark.parametrize("c", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward(c: Case, dtype: str, rng: np.random.Generator) -> None:
    g, xs, y, arrays = _build(c, dtype, rng)
    got = gc.compile(y).run(_feeds(xs, arrays))
    expected = c.fn(NP, *[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays])
    assert got.shape == np.shape(expected) == y.shape
    assert got.dtype == y.dtype == np.dtype(dtype)
    tol = {"float64": dict(rtol=1e-12, atol=1e-14), "float32": dict(rtol=2e-6, atol=1e-6)}[dtype]
    np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("c", CASES, ids=_ids)
def test_vjp_gradcheck(c: Case, rng: np.random.Generator) -> None:
    g, xs, y, arrays = _build(c, "float64", rng)
    wrt = [x for x, a in zip(xs, c.args) if a.is_float]
    report = gc.gradcheck(y, wrt, _feeds(xs, arrays), eps=c.eps)
    assert set(report.max_rel_error) == {x.name for x in wrt}


@pytest.mark.parametrize("c", CASES, ids=_ids)
def test_vjp_elementwise(c: Case, rng: np.random.Generator) -> None:
    elementwise_check(c, rng)


# --- the checkers can fail ------------------------------------------------------------------

FANOUT = next(c for c in CASES if c.id == "mul-fanout")
TANH = next(c for c in CASES if c.id == "tanh-(2,3,4)")


def test_checkers_catch_a_missing_sum_over_consumers(monkeypatch, rng) -> None:
    """micrograd's first bug: keep the last contribution instead of summing them."""
    monkeypatch.setattr(graphc.autodiff, "_accumulate", lambda node, pending: pending[-1])
    g, xs, y, arrays = _build(FANOUT, "float64", rng)
    with pytest.raises(GradcheckError, match=r"'x0'"):
        gc.gradcheck(y, xs, _feeds(xs, arrays))
    with pytest.raises(AssertionError, match="gradient of x0"):
        elementwise_check(FANOUT, rng)


def test_checkers_catch_a_wrong_vjp_rule(monkeypatch, rng) -> None:
    """tanh's J^T with (1 - y) instead of (1 - y²): both checkers must object."""
    tanh = registered()["tanh"]
    monkeypatch.setattr(tanh, "vjp", [lambda g, y, x: g * (1.0 - y)])
    g, xs, y, arrays = _build(TANH, "float64", rng)
    with pytest.raises(AssertionError, match="x0"):
        gc.gradcheck(y, xs, _feeds(xs, arrays))
    with pytest.raises(AssertionError, match="gradient of x0"):
        elementwise_check(TANH, rng)


def test_numeric_vjp_matches_a_known_derivative() -> None:
    """The test's own finite differences, on a function whose gradient is known exactly."""
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    cot = np.array([[1.0, -2.0], [0.5, 3.0]])
    got = numeric_vjp(lambda a: a**3, [x], 0, cot, 1e-6)
    np.testing.assert_allclose(got, 3 * x**2 * cot, rtol=1e-8)


# --- coverage -------------------------------------------------------------------------------


def _builtin_ops() -> dict[str, gc.Primitive]:
    """Ops defined by graphc itself (custom ops that tests define with gc.defop are left out)."""
    return {name: p for name, p in registered().items() if getattr(p.infer, "__module__", "").startswith("graphc.")}


COMPILE_TIME = {"fused"}
"""Ops that compile's passes make after the gradient (compile(fuse=True)): no VJP, checked in tests/test_fusion.py."""


def test_every_op_is_covered() -> None:
    builtin = _builtin_ops()
    assert {"add", "matmul", "softmax_cross_entropy"} <= set(builtin)
    tested = {c.op for c in CASES}
    missing = sorted(set(builtin) - tested - COMPILE_TIME)
    assert not missing, f"ops with no case in tests/test_ops.py: {missing}"
    with_vjp = set(builtin) - NO_VJP - COMPILE_TIME
    fanout = {c.op for c in CASES if c.label.startswith("fanout")}
    assert with_vjp <= fanout, f"ops without a fan-out case: {sorted(with_vjp - fanout)}"
    unknown = tested - set(builtin) - set(COMPOSITES)
    assert not unknown, f"cases name unknown ops: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(NO_VJP))
def test_no_vjp_list_is_honest(name: str) -> None:
    """An op listed in NO_VJP really has only ZERO rules."""
    prim = registered()[name]
    arity = {"greater": 2, "equal": 2, "less": 2, "less_equal": 2, "greater_equal": 2, "not_equal": 2, "sign": 1,
             "one_hot": 1, "uniform": 1}[name]
    assert all(prim.vjp_rule(i) is ZERO for i in range(arity))


@pytest.mark.parametrize("name", sorted({"add", "mul", "matmul", "concat", "softmax_cross_entropy", "add_n"}))
def test_ops_with_vjp_have_a_rule(name: str) -> None:
    """The converse: ops outside NO_VJP define a rule for their first operand."""
    assert name not in NO_VJP
    rule = registered()[name].vjp_rule(0)
    assert rule is not None and rule is not ZERO


def test_every_case_reaches_its_op() -> None:
    """A case must actually build a node of the op it claims to test."""
    rng = np.random.default_rng(0)
    for c in CASES:
        g, _, _, _ = _build(c, "float64", rng)
        assert any(n.op_name == COMPOSITES.get(c.op, c.op) for n in g.nodes), c.id


# --- ties: not differentiable, so a convention (JAX's), checked directly -------------------


def test_max_ties_share_the_gradient_equally() -> None:
    """At a tie, max's J^T splits g equally among the maxima (as jax.lax.reduce_max)."""
    x = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, -1.0]])
    with gc.Graph("ties") as g:
        xv = gc.input("x", x.shape, "float64")
        rows = gc.max(xv, axis=1)
        total = gc.max(xv)
    d_rows, d_total = gc.compile([gc.grad(gc.sum(rows * np.array([1.0, 6.0])), xv), gc.grad(total, xv)]).run({"x": x})
    np.testing.assert_array_equal(d_rows, [[0, 0.5, 0.5, 0], [2, 2, 2, 0]])
    np.testing.assert_array_equal(d_total, [[0, 0.5, 0.5, 0], [0, 0, 0, 0]])


def test_maximum_ties_split_the_gradient_in_half() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    with gc.Graph("ties") as g:
        av, bv = gc.input("a", (3,), "float64"), gc.input("b", (3,), "float64")
        da, db = gc.grad(gc.sum(gc.maximum(av, bv)), [av, bv])
    got_a, got_b = gc.compile([da, db]).run({"a": a, "b": b})
    np.testing.assert_array_equal(got_a, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(got_b, [0.5, 1.0, 0.0])


# --- the cross-entropy: log_softmax + nll_loss, the backward one kernel -------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("offset", [0.0, 1e8, 1e16, -1e16])
def test_cross_entropy_has_the_bits_of_the_fused_kernel(dtype, offset, rng) -> None:
    """nll_loss(log_softmax(x)) subtracts the fused kernel's two numbers the other way round and
    averages them in the same order: the same loss, at logits of 1e16 too."""
    logits = (rng.standard_normal((6, 5)) * 3 + offset).astype(dtype)
    labels = rng.integers(0, 5, size=6)
    with gc.Graph("ce") as g:
        x = gc.input("x", logits.shape, dtype)
        y = gc.input("y", labels.shape, "int64")
        composed, fused = gc.softmax_cross_entropy(x, y), G.fused_softmax_cross_entropy(x, y)
    got, want = gc.compile([composed, fused]).run({"x": logits, "y": labels})
    assert got.tobytes() == want.tobytes()


def test_cross_entropy_backward_reads_the_forward_log_probabilities() -> None:
    """One log_softmax (forward), whose result the backward's one kernel reads; no softmax, no one-hot."""
    with gc.Graph("ce-step"):
        x = gc.input("x", (8, 4), "float32")
        y = gc.input("y", (8,), "int64")
        w = gc.param("w", (4, 10), "float32")
        loss = gc.softmax_cross_entropy(x @ w, y, name="loss")
        dw = gc.grad(loss, w)
    plan = gc.compile([loss, dw]).plan
    ops = [ins.op for ins in plan.instructions]
    assert ops.count("log_softmax") == 1 and ops.count("softmax_cross_entropy_grad") == 1
    assert {"softmax", "one_hot", "softmax_cross_entropy"}.isdisjoint(ops)
    forward = next(ins for ins in plan.instructions if ins.op == "log_softmax")
    backward = next(ins for ins in plan.instructions if ins.op == "softmax_cross_entropy_grad")
    assert backward.args[0] == forward.out and forward.tag == "forward" and backward.tag == "backward"
    assert plan.buffers[forward.out].name == "loss.log_probs"


def test_cross_entropy_errors_name_softmax_cross_entropy() -> None:
    with gc.Graph("ce-errors"):
        x = gc.input("x", (8, 4), "float32")
        with pytest.raises(gc.GraphError, match=r"softmax_cross_entropy: labels of shape \(3,\) do not index"):
            gc.softmax_cross_entropy(x, np.zeros(3, np.int64))
        loss = gc.softmax_cross_entropy(x, np.zeros(8, np.int64))
    assert loss.node.op_name == "nll_loss" and loss.name.startswith("softmax_cross_entropy_")


def test_the_cross_entropy_gradient_kernel_writes_a_strided_out_as_a_contiguous_one():
    """The kernel subtracts 1 at each label through a view of rows; an out that has none (strided) takes the
    general path, with the same bits."""
    from graphc.ops.nn import _sce_grad_kernel
    rng = np.random.default_rng(0)
    log_probs = np.log(rng.dirichlet(np.ones(5), size=(3, 4)))
    labels = rng.integers(0, 5, size=(3, 4))
    scale = np.array(0.125)
    contiguous = np.empty_like(log_probs)
    _sce_grad_kernel(contiguous, log_probs, labels, scale)
    strided = np.empty((3, 4, 10))[..., ::2]
    _sce_grad_kernel(strided, log_probs, labels, scale)
    np.testing.assert_array_equal(strided, contiguous)
    expected = (np.exp(log_probs) - np.eye(5)[labels]) * scale
    np.testing.assert_allclose(contiguous, expected, rtol=1e-15, atol=1e-17)


def test_a_dense_layers_weight_gradient_is_one_gemm_and_a_tied_one_lands_untransposed() -> None:
    """x @ W with x of shape (B, T, K): ∂W is reshape(x)ᵀ @ reshape(g), the reshapes views and no sum over B;
    the gradient of a tied Wᵀ (logits = h @ embᵀ) is written by its GEMM in emb's own layout, no transpose left."""
    with gc.Graph("dense-grads"):
        x = gc.input("x", (2, 3, 4), "float32")
        w = gc.param("w", (4, 6), "float32")
        emb = gc.param("emb", (5, 6), "float32")
        loss = gc.sum(gc.tanh(gc.matmul(gc.tanh(x @ w), gc.transpose(emb))))
        dw, demb = gc.grad(loss, [w, emb])
    prog = gc.compile([dw, demb])
    plan = prog.plan
    writer = {ins.out: ins for ins in plan.instructions}
    for grad in plan.outputs:
        assert writer[grad].op == "matmul", writer[grad]
    assert not [ins for ins in plan.instructions if ins.op == "sum"]
    assert all(ins.mode == "view" for ins in plan.instructions if ins.op in ("reshape", "transpose"))
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 3, 4)).astype(np.float32)
    wv, ev = (np.asarray(p.node.data, np.float64) for p in (w, emb))
    h = np.tanh(xv.astype(np.float64) @ wv)
    g = 1 - np.tanh(h @ ev.T) ** 2
    gh = (g @ ev) * (1 - h * h)
    got_w, got_emb = prog.run({"x": xv})
    np.testing.assert_allclose(got_emb, np.einsum("btv,btd->vd", g, h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_w, np.einsum("btk,btn->kn", xv, gh), rtol=1e-5, atol=1e-6)


def test_the_matmul_kernel_runs_stacked_rows_as_one_gemm_with_numpys_values() -> None:
    """A C-contiguous stack times a matrix is one GEMM of its rows; a strided stack takes NumPy's loop."""
    from graphc.ops.linalg import _matmul_kernel
    rng = np.random.default_rng(1)
    b = rng.standard_normal((4, 5))
    for a in (rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 2, 4)).transpose(1, 0, 2)):
        out = np.empty((2, 3, 5))
        _matmul_kernel(out, a, b)
        np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-14, atol=1e-14)
