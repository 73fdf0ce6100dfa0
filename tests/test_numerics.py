"""Every op's kernel and VJP against JAX at the ends of the float range.

Each op runs forward and backward (``gc.grad`` with a cotangent fed as an
input) at extreme inputs — logits of magnitude 1e4, 1e8 and 1e16, sigmoid at
±40, ±100, ±1000, zero, huge and tiny magnitudes — in float32 and float64, and
is compared with ``jax.vjp`` of the same function. The tolerance of each op is
stated once, in :data:`TOLERANCE`, and repeated in docs/numerics.md.

Errors are counted in ulps: ``|got - ref| / spacing(max(|ref|, floor))``. The
floor is the smallest normal number, except for results that are a difference
of O(1) terms (log_softmax, cross-entropy), whose error is counted in ulps of 1.
An inf or NaN must match the reference exactly.

XLA on CPU flushes subnormal numbers to zero (``jnp.log(5e-324)`` is -inf), and
graphc keeps IEEE gradual underflow (NumPy's): where an input or a reference is
subnormal, the oracle is the same formula evaluated in ``np.longdouble``.

``python tests/test_numerics.py`` prints the table of largest errors measured.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import graphc as gc

jax.config.update("jax_enable_x64", True)

@dataclass(frozen=True)
class Tolerance:
    """Largest error allowed, in ulps of max(|reference|, floor), for float32 and float64.

    A floor of 1 counts the error in ulps of 1 below magnitude 1: for results that
    are differences of O(1) terms, whose error is absolute (log_softmax), and for
    gradients computed from the rounded forward value y, such as tanh's
    (1 - y)(1 + y), where y's last bit is an absolute error of the gradient.
    """

    float32: float
    float64: float
    value_floor: float | None = None
    grad_floor: float | None = None


TOLERANCE: dict[str, Tolerance] = {
    "neg": Tolerance(0, 0),
    "copy": Tolerance(0, 0),
    "add": Tolerance(0, 0),
    "sub": Tolerance(0, 0),
    "mul": Tolerance(0, 0),
    "div": Tolerance(3, 3),
    "maximum": Tolerance(0, 0),
    "relu": Tolerance(0, 0),
    "exp": Tolerance(2, 2),
    "log": Tolerance(2, 2),
    "sqrt": Tolerance(1, 1),
    "tanh": Tolerance(4, 4, grad_floor=1.0),
    "sigmoid": Tolerance(4, 4, grad_floor=1.0),
    "pow": Tolerance(4, 4),
    "div_by_count": Tolerance(1, 1),
    "sum": Tolerance(4, 4),
    "mean": Tolerance(4, 4),
    "max": Tolerance(0, 0),
    "matmul": Tolerance(8, 8),
    "softmax": Tolerance(8, 8, grad_floor=1.0),
    "log_softmax": Tolerance(4, 4, value_floor=1.0, grad_floor=1.0),
    "softmax_cross_entropy": Tolerance(4, 4, value_floor=1.0, grad_floor=1.0),
    "nll_loss": Tolerance(4, 4, value_floor=1.0, grad_floor=1.0),
    "softmax_cross_entropy_grad": Tolerance(4, 4, value_floor=1.0, grad_floor=1.0),
    "abs": Tolerance(0, 0),
    "minimum": Tolerance(0, 0),
    "where": Tolerance(0, 0),
    "clip": Tolerance(0, 0),
    "erf": Tolerance(2, 2),
    # erfc(-x/√2) of a rounded x/√2: relative error ~x²·eps, 140 ulps at x = -20 in graphc and JAX alike,
    # and JAX's gradient is 171 ulps off there (graphc's is within 2 ulps of the exact value).
    "gelu": Tolerance(8, 192),
    "softplus": Tolerance(8, 8),
    "logsumexp": Tolerance(4, 4),
    "var": Tolerance(4, 4),
    "std": Tolerance(4, 4),
    # Positive terms of magnitudes 1e-15 … 1e15: sums of up to 12 products (BLAS's order against XLA's),
    # and sums of g where pooling windows overlap.
    "conv2d": Tolerance(8, 8),
    "conv2d_input_grad": Tolerance(8, 8),
    "conv2d_weight_grad": Tolerance(8, 8),
    "max_pool2d": Tolerance(2, 2),
    "max_pool2d_grad": Tolerance(2, 2),
    "max_pool2d_gather": Tolerance(2, 2),
    "avg_pool2d": Tolerance(4, 4),
    "avg_pool2d_grad": Tolerance(4, 4),
    # Gradients (1/σ̂)(g - mean g - x̂·mean(g·x̂)): differences of O(1) terms, counted in ulps of 1.
    "layer_norm": Tolerance(8, 8, grad_floor=1.0),
    "batch_norm": Tolerance(16, 16, grad_floor=1.0),
    "norm_statistics": Tolerance(8, 8, grad_floor=1.0),
    "standardized": Tolerance(16, 16, grad_floor=1.0),
}

DTYPES = ("float32", "float64")


def ulp_error(got: np.ndarray, ref: np.ndarray, floor: float | None = None) -> float:
    """Largest |got - ref| in ulps of max(|ref|, floor); inf if inf/NaN do not match."""
    got, ref = np.asarray(got), np.asarray(ref, dtype=got.dtype)
    if got.shape != ref.shape:
        return np.inf
    finite = np.isfinite(ref)
    same_nan = np.isnan(got) == np.isnan(ref)
    same_inf = np.where(np.isinf(ref), got == ref, True)
    if not (same_nan.all() and same_inf.all() and np.isfinite(got[finite]).all()):
        return np.inf
    if not finite.any():
        return 0.0
    floor = np.finfo(got.dtype).tiny if floor is None else floor
    below_max = np.nextafter(np.finfo(got.dtype).max, 0)  # spacing(max) would be inf
    scale = np.spacing(np.clip(np.abs(ref[finite]), got.dtype.type(floor), below_max))
    return float(np.max(np.abs(got[finite].astype(np.float64) - ref[finite]) / scale))


# --- the cases ------------------------------------------------------------------------


@dataclass
class Case:
    """One op at some inputs: how graphc and JAX compute it, and its extreme inputs."""

    op: str
    graphc_fn: Callable[..., Any]
    jax_fn: Callable[..., Any]
    args: Callable[[np.dtype], list[np.ndarray]]
    extra: Callable[[np.dtype], list[np.ndarray]] = field(default=lambda dtype: [])  # not differentiated
    # The exact partial derivatives in np.longdouble, where JAX's formula over- or underflows.
    exact_grads: Callable[..., list[np.ndarray]] | None = None
    label: str = ""  # the test id, when one op has several cases
    # The exact value in np.longdouble, where JAX's is 0, inf or NaN but the exact one a normal number.
    exact_value: Callable[..., np.ndarray] | None = None
    tolerance: Tolerance | None = None  # this case's own, in place of TOLERANCE[op] (a form of the op apart)

    @property
    def allowed(self) -> Tolerance:
        return self.tolerance if self.tolerance is not None else TOLERANCE[self.op]

    def operands(self, dtype: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        dt = np.dtype(dtype)
        return [np.asarray(a, dtype=dt) for a in self.args(dt)], self.extra(dt)


def _big(dtype: np.dtype) -> float:
    return float(np.log(np.finfo(dtype).max))  # where exp overflows


def _signed(values: list[float]) -> np.ndarray:
    return np.array(sorted({v for x in values for v in (x, -x)}))


def _unary_points(dtype: np.dtype) -> np.ndarray:
    big = _big(dtype)
    return _signed([0.0, 1e-30, 0.5, 1.0, 10.0, 20.0, 40.0, 100.0, 1000.0, big * 0.99, big * 1.01, 1e30])


def _positive_points(dtype: np.dtype) -> np.ndarray:
    info = np.finfo(dtype)
    return np.array([0.0, float(info.tiny), 1e-30, 1e-8, 0.5, 1.0, 2.0, 1e8, 1e30, float(info.max) / 2, float(info.max)])


def _pairs(dtype: np.dtype) -> list[np.ndarray]:
    a = _positive_points(dtype)
    values = np.concatenate([a, -a[1:]])
    left, right = np.meshgrid(values, values, indexing="ij")
    return [left.ravel(), right.ravel()]


def _pow_pairs(dtype: np.dtype) -> list[np.ndarray]:
    base = np.array([0.0, 1e-30, 0.5, 1.0, 2.0, 10.0, 1e8, 1e30])
    exponent = np.array([0.0, 0.5, 1.0, 2.0, 3.0, -1.0, -0.5, 1.5])
    left, right = np.meshgrid(base, exponent, indexing="ij")
    return [left.ravel(), right.ravel()]


LOGIT_OFFSETS = (0.0, 1e4, -1e4, 1e8, -1e8, 1e16, -1e16)  # N(0, 1) logits shifted by these
LOGIT_SCALES = (1e4, 1e8, 1e16)  # and N(0, 1) logits scaled by these


def _shifted_logits(dtype: np.dtype) -> list[np.ndarray]:
    """Three rows of three N(0, 1) logits shifted by each offset."""
    rng = np.random.default_rng(7)
    return [np.concatenate([rng.normal(size=(3, 3)) + offset for offset in LOGIT_OFFSETS])]


def _scaled_logits(dtype: np.dtype) -> list[np.ndarray]:
    """Three rows of three N(0, 1) logits multiplied by each scale."""
    rng = np.random.default_rng(9)
    return [np.concatenate([rng.normal(size=(3, 3)) * scale for scale in LOGIT_SCALES])]


def _logits(dtype: np.dtype) -> list[np.ndarray]:
    """Every shifted and scaled row: one softmax per row."""
    return [np.concatenate(_shifted_logits(dtype) + _scaled_logits(dtype))]


def _labels_for(logits: Callable[[np.dtype], list[np.ndarray]]) -> Callable[[np.dtype], list[np.ndarray]]:
    def make(dtype: np.dtype) -> list[np.ndarray]:
        rows = logits(dtype)[0].shape[0]
        return [np.random.default_rng(8).integers(0, 3, size=rows)]

    return make


def _rows(dtype: np.dtype) -> list[np.ndarray]:
    """Rows of three (1/3 is inexact) for the reductions: cancellation, near-overflow, zeros."""
    quarter_max = float(np.finfo(dtype).max) / 4
    return [np.array([[1e30, 1.0, -1e30], [quarter_max] * 3, [0.0, -0.0, 1e-30], [0.5, 1.5, 2.5]])]


def _moment_rows(dtype: np.dtype) -> list[np.ndarray]:
    """Rows for var and std: a large mean against a small spread (where E[x²] - E[x]² cancels),
    a tiny spread, a tie. Not _rows: their squared deviations overflow or underflow. Nor
    large deviations that cancel (1e4, -1e4, 3): JAX's gradient is 236 ulps off there,
    graphc's is checked against exact arithmetic in a test of its own."""
    return [np.array([[1e8 + 1, 1e8, 1e8 - 1.5], [1e-10, 3e-10, -2e-10], [0.5, 1.5, 2.5], [-7.0, -7.0, 2.0]])]


def _norm_rows(dtype: np.dtype) -> list[np.ndarray]:
    """Rows of four to standardise: a large mean against a unit spread, a tiny spread (below eps),
    ties, and magnitudes from 0.25 to 1e10 in one row. Exactly representable in float32, with
    means that are too, so JAX's uncorrected two passes are exact enough to be the reference."""
    return [np.array([[1e4 + 1, 1e4, 1e4 - 1, 1e4 + 2], [1e-3, 3e-3, -2e-3, 0.0], [0.5, 1.5, 2.5, -4.0],
                      [-7.0, -7.0, 2.0, 2.0], [1e3, -1e3, 5.0, 0.25], [1e10, -1e10, 3e9, 0.0]])]


def _jax_standardized(x, axis, eps=1e-5):
    return (x - jnp.mean(x, axis=axis, keepdims=True)) / jnp.sqrt(jnp.var(x, axis=axis, keepdims=True) + eps)


_jax_logsumexp_rows = jax.jit(functools.partial(jax.nn.logsumexp, axis=-1))


def _jax_sce(logits, labels):
    return _jax_nll(jax.nn.log_softmax(logits, axis=-1), labels)


def _jax_nll(log_probs, labels):
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def _jax_sce_grad(log_probs, scale, labels):
    return (jnp.exp(log_probs) - jax.nn.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype)) * scale


def _log_probs(dtype: np.dtype) -> list[np.ndarray]:
    """log_softmax of every shifted and scaled row, in float64: log-probabilities from 0 down to -2e16."""
    (x,) = _logits(dtype)
    shifted = x - x.max(axis=-1, keepdims=True)
    return [shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))]


UNARY = {
    "neg": (gc.neg, jnp.negative, _unary_points),
    "copy": (gc.copy, jnp.array, _unary_points),
    "exp": (gc.exp, jnp.exp, _unary_points),
    "tanh": (gc.tanh, jnp.tanh, _unary_points),
    "sigmoid": (gc.sigmoid, jax.nn.sigmoid, _unary_points),
    "relu": (gc.relu, jax.nn.relu, _unary_points),
    "log": (gc.log, jnp.log, _positive_points),
    "sqrt": (gc.sqrt, jnp.sqrt, _positive_points),
    # |x| as x·sign(x): torch's subgradient 0 at 0 (JAX's abs has 1 there).
    "abs": (gc.abs, lambda x: x * jnp.sign(x), _unary_points),
    # Bounds off the points: at a bound JAX's clip splits the gradient in half, torch's (and graphc's) passes it.
    "clip": (lambda x: gc.clip(x, -0.75, 15.0), lambda x: jnp.clip(x, -0.75, 15.0), _unary_points),
    "erf": (gc.erf, jax.lax.erf, _unary_points),
    # torch's softplus: x itself above the threshold 20.
    "softplus": (gc.softplus, lambda x: jnp.where(x > 20.0, x, jax.nn.softplus(x)), _unary_points),
}
BINARY = {
    "add": (gc.add, jnp.add, _pairs),
    "sub": (gc.sub, jnp.subtract, _pairs),
    "mul": (gc.mul, jnp.multiply, _pairs),
    "maximum": (gc.maximum, jnp.maximum, _pairs),
    "minimum": (gc.minimum, jnp.minimum, _pairs),
}


def _where_mask(dtype: np.dtype) -> list[np.ndarray]:
    """A 0/1 mask for :func:`_pairs`, every other element chosen."""
    size = _pairs(dtype)[0].size
    return [(np.arange(size) % 2).astype(dtype)]


def _div_grads(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """1/b and -a/b²: JAX forms b², which is 0 for |b| < 1e-154 (float64) and gives NaN or -inf."""
    return [1 / b, -a / (b * b)]


def _pow_grads(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """b·a^(b-1), which is 0 where b = 0 (JAX's float rule gives 0·0⁻¹ = NaN at a = 0), and aᵇ·ln a."""
    with np.errstate(all="ignore"):
        base = np.where(b == 0, 0, b * a ** (b - 1))
        return [base, a ** b * np.log(np.where(a == 0, 1, a))]

def _gelu_tanh_exact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x·σ(2u) and its derivative σ + 2x·σ(1 − σ)·u′, u = √(2/π)(x + 0.044715x³), in ``x``'s precision (long double)."""
    c = np.sqrt(2 / np.asarray(np.pi, x.dtype))
    u = c * (x + 0.044715 * x ** 3)
    s = 1 / (1 + np.exp(-2 * u))
    return x * s, s + 2 * x * s * (1 - s) * c * (1 + 3 * 0.044715 * x * x)


# The tanh form below x ≈ -4 is x·e^p with p = -2u ≈ 0.07x³: p carries a rounding error of a few ulps of
# itself, which e^p turns into a relative error of about 2|p| ulps (|p| < 89 in float32, < 710 in float64 before
# e^p overflows; p = 87 at x = -10, 603 at x = -20), where JAX's ½x(1 + tanh u) is 0. Its gradient crosses 0 at
# x ≈ -0.75, where any formula's is a difference of O(1) terms: counted in ulps of 1.
GELU_TANH_TOLERANCE = Tolerance(256, 2048, grad_floor=1.0)

CASES: list[Case] = [Case(op, g, j, lambda dt, p=points: [p(dt)]) for op, (g, j, points) in UNARY.items()]
CASES += [Case(op, g, j, points) for op, (g, j, points) in BINARY.items()]
CASES += [
    Case("div", gc.div, jnp.divide, _pairs, exact_grads=_div_grads),
    Case("pow", gc.pow, jnp.power, _pow_pairs, exact_grads=_pow_grads),
]
CASES += [
    Case("sum", lambda x: gc.sum(x, axis=-1), lambda x: jnp.sum(x, axis=-1), _rows),
    Case("mean", lambda x: gc.mean(x, axis=-1), lambda x: jnp.mean(x, axis=-1), _rows),
    Case("div_by_count", lambda x: gc.ops.div_by_count(x, dims=(3, 7)), lambda x: x / 21, lambda dt: [_unary_points(dt)]),
    Case("max", lambda x: gc.max(x, axis=-1), lambda x: jnp.max(x, axis=-1), _rows),
    Case("matmul", gc.matmul, jnp.matmul,
         lambda dt: [np.array([[1e15, 1.0], [1e-15, -3.0]]), np.array([[2.0, -1e-10], [1e10, 0.5]])]),
]
CASES += [
    Case("where", lambda a, b, c: gc.where(c, a, b), lambda a, b, c: jnp.where(c != 0, a, b), _pairs, _where_mask),
    Case("gelu", gc.gelu, lambda x: jax.nn.gelu(x, approximate=False), lambda dt: [_unary_points(dt)]),
    Case("gelu", lambda x: gc.gelu(x, approximate="tanh"), lambda x: jax.nn.gelu(x, approximate=True),
         lambda dt: [_unary_points(dt)], label="gelu-tanh", exact_value=lambda x: _gelu_tanh_exact(x)[0],
         exact_grads=lambda x: [_gelu_tanh_exact(x)[1]], tolerance=GELU_TANH_TOLERANCE),
    # Jitted: JAX's logsumexp op by op takes 1.6 s per run.
    Case("logsumexp", lambda x: gc.logsumexp(x, axis=-1), _jax_logsumexp_rows, _logits),
    Case("logsumexp", lambda x: gc.logsumexp(x, axis=-1), _jax_logsumexp_rows, _rows, label="logsumexp-rows"),
    Case("var", lambda x: gc.var(x, axis=-1), lambda x: jnp.var(x, axis=-1), _moment_rows),
    Case("var", lambda x: gc.var(x, axis=-1, ddof=1), lambda x: jnp.var(x, axis=-1, ddof=1), _moment_rows,
         label="var-ddof1"),
    Case("std", lambda x: gc.std(x, axis=-1), lambda x: jnp.std(x, axis=-1), _moment_rows),
    Case("layer_norm", lambda x: gc.layer_norm(x, 4), jax.jit(functools.partial(_jax_standardized, axis=-1)),
         _norm_rows),
    Case("batch_norm", lambda x: gc.batch_norm(x, None, None, training=True),
         jax.jit(functools.partial(_jax_standardized, axis=0)), lambda dt: [_norm_rows(dt)[0].T.copy()]),
    Case("norm_statistics", lambda x: gc.ops.standardized(x, gc.ops.norm_statistics(x, (1,)), (1,)),
         jax.jit(functools.partial(_jax_standardized, axis=-1)), _norm_rows),
    Case("standardized", lambda x: gc.ops.standardized(x, gc.ops.norm_statistics(x, (0,)), (0,)),
         jax.jit(functools.partial(_jax_standardized, axis=0)), lambda dt: [_norm_rows(dt)[0].T.copy()]),
    Case("softmax", gc.softmax, lambda x: jax.nn.softmax(x, axis=-1), _logits),
    Case("log_softmax", gc.log_softmax, lambda x: jax.nn.log_softmax(x, axis=-1), _logits),
    # Separately: a mean with the large losses of scaled logits would hide the shifted rows' errors.
    Case("softmax_cross_entropy", gc.softmax_cross_entropy, _jax_sce, _shifted_logits, _labels_for(_shifted_logits),
         label="softmax_cross_entropy-shifted"),
    Case("softmax_cross_entropy", gc.softmax_cross_entropy, _jax_sce, _scaled_logits, _labels_for(_scaled_logits),
         label="softmax_cross_entropy-scaled"),
    # The op named softmax_cross_entropy: the one kernel plans saved before nll_loss run.
    Case("softmax_cross_entropy", gc.ops.fused_softmax_cross_entropy, _jax_sce, _shifted_logits,
         _labels_for(_shifted_logits), label="softmax_cross_entropy-fused-shifted"),
    Case("softmax_cross_entropy", gc.ops.fused_softmax_cross_entropy, _jax_sce, _scaled_logits,
         _labels_for(_scaled_logits), label="softmax_cross_entropy-fused-scaled"),
    Case("nll_loss", gc.ops.nll_loss, _jax_nll, _log_probs, _labels_for(_log_probs)),
    Case("softmax_cross_entropy_grad", lambda lp, scale, labels: gc.ops.softmax_cross_entropy_grad(lp, labels, scale),
         _jax_sce_grad, lambda dt: _log_probs(dt) + [np.array(0.75)], _labels_for(_log_probs)),
]


# --- convolution and pooling: positive values 1e-15 … 1e15 (no cancellation; products stay in float32) ---

_CONV = {"stride": (2, 1), "padding": ((1, 1), (0, 1)), "dilation": (1, 2), "groups": 2}
_CONV_X, _CONV_W, _CONV_Y = (2, 4, 5, 6), (4, 2, 3, 2), (2, 4, 3, 5)
_POOL = {"kernel_size": 3, "stride": 2, "padding": 1}
_POOL_X, _POOL_Y = (2, 2, 5, 6), (2, 2, 3, 3)


def _wide(*shapes: tuple[int, ...]) -> Callable[[np.dtype], list[np.ndarray]]:
    def make(dtype: np.dtype) -> list[np.ndarray]:
        rng = np.random.default_rng(11)
        return [10.0 ** rng.uniform(-15, 15, shape) for shape in shapes]

    return make


def _jax_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, _CONV["stride"], _CONV["padding"], rhs_dilation=_CONV["dilation"],
                                        feature_group_count=_CONV["groups"])


def _jax_max_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1)))


def _jax_avg_pool(x):
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1))) / 9


def _pullback(fn, shape, cotangent):
    """J^T of the linear map ``fn`` at a point of ``shape``, applied to ``cotangent``."""
    return jax.vjp(fn, jnp.zeros(shape, cotangent.dtype))[1](cotangent)[0]


def _jax_max_pool_grad(g, x):
    return jax.vjp(_jax_max_pool, x)[1](g)[0]


CASES += [
    Case("conv2d", lambda x, w: gc.conv2d(x, w, **_CONV), _jax_conv, _wide(_CONV_X, _CONV_W)),
    Case("conv2d_input_grad", lambda g, w: gc.ops.conv2d_input_grad(g, w, input_hw=_CONV_X[2:], **_CONV),
         lambda g, w: _pullback(lambda x: _jax_conv(x, w), _CONV_X, g), _wide(_CONV_Y, _CONV_W)),
    Case("conv2d_weight_grad", lambda x, g: gc.ops.conv2d_weight_grad(x, g, kernel_size=_CONV_W[2:], **_CONV),
         lambda x, g: _pullback(lambda w: _jax_conv(x, w), _CONV_W, g), _wide(_CONV_X, _CONV_Y)),
    Case("max_pool2d", lambda x: gc.max_pool2d(x, **_POOL), _jax_max_pool, _wide(_POOL_X)),
    # x is fed but not differentiated (the routing is piecewise constant in it).
    Case("max_pool2d_grad", lambda g, x: gc.ops.max_pool2d_grad(g, x, gc.max_pool2d(x, **_POOL), **_POOL),
         _jax_max_pool_grad, _wide(_POOL_Y), extra=lambda dt: [x.astype(dt) for x in _wide(_POOL_X)(dt)]),
    Case("max_pool2d_gather", lambda c, x: gc.ops.max_pool2d_gather(c, x, gc.max_pool2d(x, **_POOL), **_POOL),
         lambda c, x: _pullback(lambda g: _jax_max_pool_grad(g, x), _POOL_Y, c), _wide(_POOL_X),
         extra=lambda dt: [x.astype(dt) for x in _wide(_POOL_X)(dt)]),
    Case("avg_pool2d", lambda x: gc.avg_pool2d(x, **_POOL), _jax_avg_pool, _wide(_POOL_X)),
    Case("avg_pool2d_grad", lambda g: gc.ops.avg_pool2d_grad(g, input_hw=_POOL_X[2:], **_POOL),
         lambda g: _pullback(_jax_avg_pool, _POOL_X, g), _wide(_POOL_Y)),
]

# --- running both sides -----------------------------------------------------------------


def _cotangent(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A fixed cotangent in [0.5, 1.5): a VJP must scale it, not just reproduce the Jacobian."""
    return np.random.default_rng(3).uniform(0.5, 1.5, size=shape).astype(dtype)


def run_graphc(case: Case, dtype: str) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The op's value and the VJP of a cotangent for each differentiated operand."""
    args, extra = case.operands(dtype)
    with gc.Graph(f"numerics-{case.op}"):
        xs = [gc.input(f"x{i}", shape=a.shape, dtype=dtype) for i, a in enumerate(args)]
        ls = [gc.input(f"l{i}", shape=a.shape, dtype=a.dtype.name) for i, a in enumerate(extra)]
        y = case.graphc_fn(*xs, *ls)
        cot = gc.input("cotangent", shape=y.shape, dtype=dtype)
        grads = gc.grad(y, xs, seed=cot)
    ct = _cotangent(y.shape, np.dtype(dtype))
    feeds = {f"x{i}": a for i, a in enumerate(args)} | {f"l{i}": a for i, a in enumerate(extra)} | {"cotangent": ct}
    with np.errstate(all="ignore"):
        value, *grad_values = gc.compile([y, *grads]).run(feeds)
    return value, grad_values, ct


def run_jax(case: Case, dtype: str, cotangent: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    args, extra = case.operands(dtype)
    value, pullback = jax.vjp(lambda *xs: case.jax_fn(*xs, *map(jnp.asarray, extra)), *map(jnp.asarray, args))
    return np.asarray(value), [np.asarray(g) for g in pullback(jnp.asarray(cotangent))]


def flush_subnormals(x: np.ndarray) -> np.ndarray:
    """``x`` with subnormal numbers replaced by zero, as XLA computes on CPU."""
    x = np.array(x)
    x[np.abs(x) < np.finfo(x.dtype).tiny] = 0
    return x


def _where_jax_breaks_down(case: Case, dtype: str, cotangent: np.ndarray, ref_grads: list[np.ndarray]) -> list[np.ndarray]:
    """JAX's gradients, with the exact value where JAX's is inf, NaN or 0 but the exact one is a normal number."""
    args, _ = case.operands(dtype)
    tiny = np.finfo(dtype).tiny
    with np.errstate(all="ignore"):
        exact = [(cotangent * d).astype(dtype) for d in case.exact_grads(*(a.astype(np.longdouble) for a in args))]
    return [np.where((~np.isfinite(ref) | (ref == 0)) & np.isfinite(ex) & ((ex == 0) | (np.abs(ex) >= tiny)), ex, ref)
            for ref, ex in zip(ref_grads, exact)]


def _value_where_jax_breaks_down(case: Case, dtype: str, ref_value: np.ndarray) -> np.ndarray:
    """JAX's value, with the exact one where JAX's is inf, NaN or 0 but the exact one is a normal number."""
    args, _ = case.operands(dtype)
    with np.errstate(all="ignore"):
        exact = case.exact_value(*(a.astype(np.longdouble) for a in args)).astype(dtype)
    tiny = np.finfo(dtype).tiny
    return np.where((~np.isfinite(ref_value) | (ref_value == 0)) & np.isfinite(exact)
                    & ((exact == 0) | (np.abs(exact) >= tiny)), exact, ref_value)


def case_errors(case: Case, dtype: str) -> dict[str, float]:
    """Largest error in ulps of the value and of each operand's gradient against JAX."""
    value, grads, ct = run_graphc(case, dtype)
    ref_value, ref_grads = run_jax(case, dtype, ct)
    if case.exact_grads is not None:
        ref_grads = _where_jax_breaks_down(case, dtype, ct, ref_grads)
    if case.exact_value is not None:
        ref_value = _value_where_jax_breaks_down(case, dtype, ref_value)
    tol = case.allowed
    errors = {"value": ulp_error(flush_subnormals(value), ref_value, tol.value_floor)}
    for i, (got, ref) in enumerate(zip(grads, ref_grads)):
        errors[f"grad{i}"] = ulp_error(flush_subnormals(got), ref, tol.grad_floor)
    return errors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.label or c.op for c in CASES])
def test_op_matches_jax_at_extremes(case: Case, dtype: str):
    errors = case_errors(case, dtype)
    limit = getattr(case.allowed, dtype)
    assert max(errors.values()) <= limit, f"{case.op} {dtype}: errors in ulps {errors}, allowed {limit}"


def test_every_registered_differentiable_op_is_covered():
    """A new op of graphc's must get a row in the tolerance table and a case here (custom ops of other tests need not)."""
    from graphc.ops.core import registered

    not_numeric = {"const", "input", "param", "uniform", "one_hot",  # sources
                   "greater", "equal", "less", "less_equal", "greater_equal", "not_equal", "sign",  # masks
                   "reshape", "transpose", "broadcast_to", "concat", "slice_axis", "pad_axis",  # data movement
                   "add_n",  # the sum of gradient terms, an add
                   "getitem", "getitem_grad", "take", "embedding",  # indexing: copies of elements
                   "scatter_add",  # sums of gradient rows (adds), the transpose of take
                   "astype",  # a conversion, rounded to nearest by NumPy
                   "fused"}  # compile(fuse=True)'s chains of the ops above: ulps in tests/test_fusion.py
    own = {name for name, prim in registered().items() if prim.infer.__module__.startswith("graphc.")}
    missing = own - not_numeric - {c.op for c in CASES}
    assert not missing, f"ops without a numerics case against JAX: {sorted(missing)}"
    assert {c.op for c in CASES} == set(TOLERANCE)


# --- the defects, one test each ------------------------------------------------------------


def compiled(fn: Callable[..., Any], *shapes: tuple[int, ...], dtype: str = "float64", labels: tuple[int, ...] | None = None):
    """A program computing ``fn`` of inputs x0, x1... (and int labels) and its gradient for each x."""
    with gc.Graph("numerics"):
        xs = [gc.input(f"x{i}", shape=s, dtype=dtype) for i, s in enumerate(shapes)]
        extra = [] if labels is None else [gc.input("labels", shape=labels, dtype="int64")]
        y = fn(*xs, *extra)
        seed = None if y.ndim == 0 else np.ones(y.shape, dtype)
        grads = gc.grad(y, xs, seed=seed)
    program = gc.compile([y, *grads])

    def run(*arrays: np.ndarray, labels: np.ndarray | None = None) -> list[np.ndarray]:
        feeds = {f"x{i}": np.asarray(a, dtype) for i, a in enumerate(arrays)}
        if labels is not None:
            feeds["labels"] = labels
        with np.errstate(all="ignore"):
            return program.run(feeds)

    return run


def _offset_logits() -> tuple[np.ndarray, np.ndarray]:
    """N(0, 1) logits + 1e16 and labels (float64 rounds the logits to even integers)."""
    rng = np.random.default_rng(7)
    return rng.normal(size=(3, 3)) + 1e16, rng.integers(0, 3, size=3)


def test_log_softmax_exact_at_logits_1e16():
    logits, _ = _offset_logits()
    value, grad = compiled(gc.log_softmax, logits.shape)(logits)
    ref = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
    assert ulp_error(value, ref, floor=1.0) <= TOLERANCE["log_softmax"].float64
    assert np.all(value > -3.0)  # the largest logit of a row of three is at most log 3 from 0


@pytest.mark.parametrize("offset", [1e4, 1e8, 1e12, 1e16])
def test_cross_entropy_does_not_depend_on_the_logits_offset(offset):
    """mean -log softmax(x + c)[label] is that of x, up to the rounding of x + c itself."""
    rng = np.random.default_rng(7)
    logits, labels = rng.normal(size=(3, 3)), rng.integers(0, 3, size=3)
    shifted = logits + offset
    run = compiled(gc.softmax_cross_entropy, logits.shape, labels=labels.shape)
    value, grad = run(shifted, labels=labels)
    ref_value, ref_grad = jax.value_and_grad(_jax_sce)(jnp.asarray(shifted), jnp.asarray(labels))
    assert ulp_error(value, np.asarray(ref_value), floor=1.0) <= TOLERANCE["softmax_cross_entropy"].float64
    assert ulp_error(grad, np.asarray(ref_grad), floor=1.0) <= TOLERANCE["softmax_cross_entropy"].float64


def test_cross_entropy_at_logits_1e16_matches_jax():
    logits, labels = _offset_logits()
    value, _ = compiled(gc.softmax_cross_entropy, logits.shape, labels=labels.shape)(logits, labels=labels)
    ref = float(_jax_sce(jnp.asarray(logits), jnp.asarray(labels)))
    assert ref == pytest.approx(1.4789, abs=1e-4)  # the rounded logits' own cross-entropy, not 2.0
    assert float(value) == pytest.approx(ref, rel=4 * np.finfo(np.float64).eps)


def test_sigmoid_does_not_underflow_at_minus_40():
    value, grad = compiled(gc.sigmoid, (3,))(np.array([-40.0, -100.0, -700.0]))
    ref = np.asarray(jax.nn.sigmoid(jnp.array([-40.0, -100.0, -700.0])))
    assert value[0] == pytest.approx(4.248354255291589e-18, rel=1e-15)
    assert ulp_error(value, ref) <= TOLERANCE["sigmoid"].float64
    assert ulp_error(grad, ref) <= TOLERANCE["sigmoid"].float64  # σ' = σ(1 - σ) = σ there


def test_log_of_sigmoid_at_minus_40_is_minus_40_with_gradient_1():
    value, grad = compiled(lambda x: gc.log(gc.sigmoid(x)), (1,))(np.array([-40.0]))
    ref_value, ref_grad = jax.value_and_grad(lambda x: jnp.log(jax.nn.sigmoid(x)))(-40.0)
    assert value[0] == pytest.approx(float(ref_value), rel=1e-15) and value[0] == pytest.approx(-40.0, rel=1e-15)
    assert grad[0] == pytest.approx(float(ref_grad), rel=1e-15) and grad[0] == 1.0


@pytest.mark.parametrize("x", [-10.0, -20.0, -80.0])
def test_float32_sigmoid_has_float32_precision_at_large_negative_inputs(x):
    value, _ = compiled(gc.sigmoid, (1,), dtype="float32")(np.array([x]))
    exact = 1 / (1 + np.exp(-np.longdouble(x)))
    assert ulp_error(value, np.array([exact]).astype(np.float32)) <= TOLERANCE["sigmoid"].float32


def test_pow_exponent_gradient_finite_at_zero_base():
    """∂ Σ aᵇ / ∂b = Σ aᵇ ln a with 0 ln 0 taken as 0: 4 ln 2 for a = (0, 1, 2), b = 2."""
    a = np.array([0.0, 1.0, 2.0])
    loss, _, grad_b = compiled(lambda a, b: gc.sum(a ** b), (3,), ())(a, 2.0)
    ref = jax.grad(lambda b: jnp.sum(jnp.asarray(a) ** b))(2.0)
    assert np.isfinite(grad_b) and grad_b == pytest.approx(float(ref), rel=1e-15)
    assert grad_b == pytest.approx(4 * np.log(2.0), rel=1e-15)


def _exact_ulps(got: np.ndarray, exact: list) -> float:
    """Largest error of ``got`` in ulps of the exact values (Fractions or mpmath numbers)."""
    ref = np.array([float(e) for e in exact], dtype=got.dtype)
    return float(np.max(np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref))))


def test_gelu_gradient_keeps_digits_below_minus_6():
    """Φ(x) + x·φ(x) at x = -10, -20: Φ as ½(1 + erf(x/√2)) cancels to 0 there (4e4 ulps off at -10)."""
    import mpmath

    x = np.array([-10.0, -20.0, -3.0])
    _, grad = compiled(gc.gelu, (3,))(x)
    exact = [mpmath.ncdf(v) + mpmath.mpf(v) * mpmath.npdf(v) for v in x]
    assert _exact_ulps(grad, exact) <= 2


def test_logsumexp_gradient_keeps_digits_at_large_equal_values():
    """softmax of (1e4, 1e4, 1e4 + 1) in float32; e^(x - y) with y rounded to 1e-3 is 3e7 ulps off."""
    x = np.array([[1e4, 1e4, 1e4 + 1]])
    _, grad = compiled(lambda v: gc.logsumexp(v, axis=-1), (1, 3), dtype="float32")(x)
    e = np.exp(np.array([-1.0, -1.0, 0.0], dtype=np.longdouble))
    assert _exact_ulps(grad[0], list(e / e.sum())) <= 2


@pytest.mark.parametrize("value", [5.1051450715734874e-36, 0.1, 1e8 + 0.3])
def test_var_of_equal_values_is_zero_where_their_mean_rounds(value):
    """Five copies of v: the rounded mean m̃ ≠ v, and Σ (v - m̃)² alone is 5.6e-103 at v = 5.1e-36;
    the correction (Σ d)²/n removes it. std's gradient there is NaN (0/0), as torch's."""
    var, _ = compiled(lambda v: gc.var(v, ddof=1), (5,))(np.full(5, value))
    assert var == 0.0


@pytest.mark.parametrize("row", [[1e8 + 1, 1e8, 1e8 - 1.5], [1e4, -1e4, 3.0]])
@pytest.mark.parametrize("ddof", [0, 1])
def test_var_value_and_gradient_exact_where_the_mean_rounds(row, ddof):
    """2(x - m)/(n - ddof) with the deviations corrected for the rounded mean (7e-9 off at 1e8: 4e7 ulps
    of the deviations uncorrected); the two-pass value, where E[x²] - E[x]² is all rounding at 1e8."""
    from fractions import Fraction

    values = [Fraction(v) for v in row]
    mean = sum(values) / 3
    value, grad = compiled(lambda v: gc.var(v, ddof=ddof), (3,))(np.array(row))
    assert _exact_ulps(np.atleast_1d(value), [sum((v - mean) ** 2 for v in values) / (3 - ddof)]) <= 2
    assert _exact_ulps(grad, [2 * (v - mean) / (3 - ddof) for v in values]) <= 2


def test_pow_base_gradient_is_zero_where_the_exponent_is_zero():
    """a⁰ = 1 for every a, so ∂a⁰/∂a = 0, also at a = 0 where b·a^(b-1) is 0·∞."""
    _, grad_a, _ = compiled(lambda a, b: a ** b, (3,), (3,))(np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0]))
    np.testing.assert_array_equal(grad_a, [0.0, 0.0, 0.0])


def test_tanh_gradient_keeps_digits_at_10():
    """J^T = (1 - y)(1 + y) to one ulp of the y it is computed from; 1 - y² loses 8 digits at x = 10."""
    for dtype, x in (("float64", 10.0), ("float32", 4.0)):
        y, grad = compiled(gc.tanh, (2,), dtype=dtype)(np.array([x, -x]))
        exact = (1 - y.astype(np.longdouble)) * (1 + y.astype(np.longdouble))
        assert ulp_error(grad, exact.astype(dtype)) <= 1, dtype


def test_exp_overflows_to_inf_as_jax_does():
    value, grad = compiled(gc.exp, (2,))(np.array([1000.0, -1000.0]))
    np.testing.assert_array_equal(value, [np.inf, 0.0])
    np.testing.assert_array_equal(grad, [np.inf, 0.0])


SUBNORMALS = {"float64": [5e-324, 1e-310, 2e-308], "float32": [1e-45, 1e-40, 1e-38]}
# op: (graphc function, exact value, exact derivative), the exact ones evaluated in np.longdouble
GRADUAL_UNDERFLOW = {
    "log": (gc.log, np.log, lambda x: 1 / x),
    "sqrt": (gc.sqrt, np.sqrt, lambda x: 1 / (2 * np.sqrt(x))),
    "exp": (gc.exp, np.exp, np.exp),
    "tanh": (gc.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (gc.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "reciprocal": (lambda x: 1.0 / x, lambda x: 1 / x, lambda x: -1 / (x * x)),
    "square": (lambda x: x * x, lambda x: x * x, lambda x: 2 * x),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(GRADUAL_UNDERFLOW))
def test_ops_keep_gradual_underflow_at_subnormal_inputs(op, dtype):
    """IEEE subnormals are numbers: log(5e-324) = -744.4, not -inf (XLA on CPU flushes them to 0)."""
    fn, exact_value, exact_grad = GRADUAL_UNDERFLOW[op]
    x = np.array(SUBNORMALS[dtype], dtype=dtype)
    value, grad = compiled(fn, x.shape, dtype=dtype)(x)
    xl = x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        ref_value, ref_grad = exact_value(xl).astype(dtype), exact_grad(xl).astype(dtype)
    assert ulp_error(value, ref_value) <= 3 and ulp_error(grad, ref_grad) <= 3, (value, ref_value, grad, ref_grad)


# --- laws ---------------------------------------------------------------------------------------

@functools.cache
def _sigmoid_program():
    return compiled(gc.sigmoid, (1,))


@functools.cache
def _log_softmax_program():
    return compiled(gc.log_softmax, (4,))


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-708.0, max_value=1e300, allow_subnormal=True))
def test_sigmoid_is_accurate_to_a_few_ulps_everywhere(x):
    """Wherever σ(x) is a normal number (x > -708.4); below, SciPy's expit gives 0, as JAX."""
    value, grad = _sigmoid_program()(np.array([x]))
    xl = np.longdouble(x)
    exact = 1 / (1 + np.exp(-xl))
    assert ulp_error(value, np.array([exact], dtype=np.float64)) <= TOLERANCE["sigmoid"].float64
    assert ulp_error(grad, np.array([exact * (1 - exact)], dtype=np.float64), floor=1.0) <= TOLERANCE["sigmoid"].float64


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e300, max_value=1e300), min_size=4, max_size=4))
def test_log_softmax_is_a_log_distribution_at_any_magnitude(logits):
    """out ≤ 0, Σ e^out = 1, and the largest entry is within log n of 0, whatever the logits' size."""
    value, grad = _log_softmax_program()(np.array(logits))
    assert np.all(value <= 0.0)
    assert value.max() >= -np.log(4.0) - 1e-15
    assert abs(np.exp(value).sum() - 1.0) <= 8 * np.finfo(np.float64).eps


@functools.cache
def _moments_program():
    return compiled(lambda x: gc.concat([gc.reshape(gc.var(x, ddof=1), (1,)), gc.reshape(gc.logsumexp(x), (1,))]), (5,))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-10.0, max_value=10.0), min_size=5, max_size=5),
       st.floats(min_value=-1e8, max_value=1e8))
@example([0.0] * 5, 5.1051450715734874e-36)  # equal values whose mean rounds
def test_var_ignores_a_shift_and_logsumexp_carries_it(values, offset):
    """var(x + c) = var(x) (to the digits x + c keeps of x) and logsumexp(x + c) = logsumexp(x) + c:
    the two-pass variance and the max-shifted log-sum lose nothing to the offset itself."""
    x = np.array(values)
    shifted = x + offset
    (var, lse), _ = _moments_program()(x)
    (var_shifted, lse_shifted), _ = _moments_program()(shifted)
    lost = np.max(np.abs((shifted - offset) - x))  # the rounding of x + c, which no kernel can undo
    assert abs(var_shifted - var) <= 2 * lost * np.sum(np.abs(x - x.mean())) + 8 * np.spacing(var) + 4 * lost**2 * x.size
    assert abs(lse_shifted - (lse + offset)) <= lost + 4 * np.spacing(max(abs(lse + offset), 1.0))


@functools.cache
def _weighted_minimum_programs():
    """Σ w·minimum(u, v) written directly and as -maximum(-u, -v), each compiled once."""
    weights = np.array([1.0, 2.0, 3.0])
    via_min = compiled(lambda u, v: gc.sum(gc.minimum(u, v) * weights), (3,), (3,))
    via_max = compiled(lambda u, v: gc.sum(-gc.maximum(-u, -v) * weights), (3,), (3,))
    return via_min, via_max


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0]), min_size=6, max_size=6))
def test_minimum_is_maximum_mirrored(values):
    """minimum(a, b) = -maximum(-a, -b), value and gradients, ties included."""
    a, b = np.array(values[:3]), np.array(values[3:])
    min_program, max_program = _weighted_minimum_programs()
    via_min, via_max = min_program(a, b), max_program(a, b)
    for got, want in zip(via_min, via_max):
        np.testing.assert_array_equal(got, want)


def main() -> None:
    """Print the largest error against JAX per op and dtype (the table in docs/numerics.md)."""
    worst: dict[tuple[str, str], float] = {}
    for case in CASES:
        for dtype in DTYPES:
            key = (case.label if case.tolerance is not None else case.op, dtype)  # a case with its own row apart
            worst[key] = max(worst.get(key, 0.0), max(case_errors(case, dtype).values()))
    print(f"{'op':24s} {'float32 ulps':>14s} {'float64 ulps':>14s}")
    for op in [*TOLERANCE, *(c.label for c in CASES if c.tolerance is not None)]:
        print(f"{op:24s} {worst[(op, 'float32')]:14.3g} {worst[(op, 'float64')]:14.3g}")


if __name__ == "__main__":
    sys.exit(main())
