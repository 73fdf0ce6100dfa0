"""Softmax and the losses: softmax, log_softmax, softmax_cross_entropy, mse.

The kernels subtract the row maximum before exponentiating (no overflow) and
keep it apart from the log-sum (no loss of digits when the logits are large);
the few temporaries they need are declared as ``scratch`` so the memory
planner can place them.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Value, is_int
from graphc.ops import reduce as R
from graphc.ops import elementwise as E
from graphc.ops.core import ZERO, Primitive, ShapeError, as_dtype, checked_operands, normalize_axis, same_float_dtype

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "softmax", "log_softmax", "softmax_cross_entropy", "one_hot", "mse", "gelu", "softplus",
]


def _axis_normalize(x: Aval, axis: int = -1) -> dict[str, Any]:
    return {"axis": normalize_axis(axis, x.ndim)}


def _softmax_aval(x: Aval, axis: int) -> Aval:
    same_float_dtype(x)
    if x.ndim == 0:
        raise ShapeError("needs at least one dimension")
    return x


def _row_scratch(x: Aval, axis: int) -> list[Aval]:
    row = tuple(1 if i == axis else d for i, d in enumerate(x.shape))
    return [Aval(row, x.dtype), Aval(row, x.dtype)]


def _log_sum_exp_shifted(out: np.ndarray, x: np.ndarray, axis: int, row_max: np.ndarray, row_lse: np.ndarray) -> None:
    """row_max = max x and row_lse = log Σ exp(x - max) along ``axis``; ``out`` is overwritten.

    The row maximum is kept apart from the small term: adding log Σ (between 0
    and log n) to a max of 1e16 would round it to the max's spacing (2 there).
    """
    np.maximum.reduce(x, axis=axis, keepdims=True, out=row_max)
    np.subtract(x, row_max, out=out)
    np.exp(out, out=out)
    np.add.reduce(out, axis=axis, keepdims=True, out=row_lse)
    np.log(row_lse, out=row_lse)


def _log_softmax_into(out: np.ndarray, x: np.ndarray, axis: int, row_max: np.ndarray, row_lse: np.ndarray) -> None:
    """out = (x - max) - log Σ exp(x - max) along ``axis``.

    x - max is exact for the row's large entries, and the subtraction of the
    small log-sum comes last, so the result has the precision of its own
    magnitude whatever the logits' (1e16 included), as JAX's log_softmax.
    """
    _log_sum_exp_shifted(out, x, axis, row_max, row_lse)
    np.subtract(x, row_max, out=out)
    np.subtract(out, row_lse, out=out)


def _softmax_kernel(out: np.ndarray, x: np.ndarray, axis: int, scratch: Sequence[np.ndarray]) -> None:
    row_max, row_sum = scratch
    np.maximum.reduce(x, axis=axis, keepdims=True, out=row_max)
    np.subtract(x, row_max, out=out)
    np.exp(out, out=out)
    np.add.reduce(out, axis=axis, keepdims=True, out=row_sum)
    np.divide(out, row_sum, out=out)


softmax_op = Primitive(
    "softmax",
    infer=_softmax_aval,
    normalize=_axis_normalize,
    kernel=_softmax_kernel,
    vjp=[lambda g, y, x, axis: y * (g - R.sum(g * y, axis=axis, keepdims=True))],
    flops=lambda ins, out, axis: 5 * out.size,
    scratch=_row_scratch,
    doc="eˣ / Σ eˣ along an axis.  J^T: y·(g - Σ g·y).",
)


def _log_softmax_vjp(g: Value, y: Value, x: Value, axis: int) -> Value:
    """g - eʸ·Σ g, where eʸ = softmax(x) comes from the forward's result y.

    When g is ``one_hot(labels)·c`` along the last axis, with c one number (what
    :func:`nll_loss`'s J^T gives: the cross-entropy), Σ g is c in every row, and
    the J^T is ``-(eʸ - onehot)·c``: one :data:`softmax_cross_entropy_grad_op`
    kernel, which builds no one-hot.
    """
    picked = _one_hot_times_number(g, y, axis)
    if picked is not None:
        labels, c = picked
        scale = Value(c.node.inputs[0]) if c.node.op is E.neg else E.neg(c)  # nll_loss's c is -g/N: g/N
        return softmax_cross_entropy_grad_op(y, labels, scale)
    return g - E.exp(y) * R.sum(g, axis=axis, keepdims=True)


def _one_hot_times_number(g: Value, y: Value, axis: int) -> tuple[Value, Value] | None:
    """(labels, c) when g is ``one_hot(labels, classes)·c`` with one class per row of y along ``axis``
    (the last) and c of shape (); else None."""
    node = g.node
    if node.op is not E.mul or axis != y.ndim - 1 or g.aval != y.aval:
        return None
    hot, c = node.inputs
    if hot.op is not one_hot_op:
        hot, c = c, hot
    if hot.op is not one_hot_op or c.shape != () or hot.aval != y.aval:
        return None
    return Value(hot.inputs[0]), Value(c)


log_softmax_op = Primitive(
    "log_softmax",
    infer=_softmax_aval,
    normalize=_axis_normalize,
    kernel=lambda out, x, axis, scratch: _log_softmax_into(out, x, axis, *scratch),
    vjp=[_log_softmax_vjp],
    flops=lambda ins, out, axis: 6 * out.size,
    scratch=_row_scratch,
    doc="x - log Σ eˣ along an axis.  J^T: g - softmax(x)·Σ g, with softmax(x) = eʸ.",
)


def softmax(x: Any, axis: int = -1, name: str | None = None) -> Value:
    """Softmax along ``axis`` (the last by default)."""
    return softmax_op(x, axis=axis, name=name)


def log_softmax(x: Any, axis: int = -1, name: str | None = None) -> Value:
    """Log-softmax along ``axis`` (the last by default)."""
    return log_softmax_op(x, axis=axis, name=name)


# --- labels -----------------------------------------------------------------------


def _check_labels(logits: Aval, labels: Aval) -> None:
    if labels.dtype not in INT_DTYPES:
        raise ShapeError(f"labels must be int32 or int64, got {labels.dtype.name}")
    if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
        raise ShapeError(f"labels of shape {labels.shape} do not index logits of shape {logits.shape} (want {logits.shape[:-1]})")


def _labels_out_of_range(labels: np.ndarray, classes: int) -> str | None:
    """Why ``labels`` do not index ``classes`` classes, or None: a negative label would
    silently pick a class from the end."""
    # seen as unsigned, a negative label is larger than any class: one reduction finds both kinds
    # (labels are int32 or int64, _check_labels; a view by a dtype string would cost 2 µs more)
    unsigned = labels.view(np.uint64 if labels.itemsize == 8 else np.uint32)
    if labels.size and np.maximum.reduce(unsigned, axis=None) >= classes:
        bad = labels[(labels < 0) | (labels >= classes)]
        return (f"labels must lie in [0, {classes}) for {classes} classes, got {bad.size} outside "
                f"(e.g. {bad.flat[0]}); fix the labels fed")
    return None


def _one_hot_aval(labels: Aval, classes: int, dtype: str) -> Aval:
    if labels.dtype not in INT_DTYPES:
        raise ShapeError(f"labels must be int32 or int64, got {labels.dtype.name}")
    return Aval(labels.shape + (classes,), np.dtype(dtype))


def _one_hot_normalize(labels: Aval, classes: int, dtype: Any = "float32") -> dict[str, Any]:
    if not (is_int(classes) and classes >= 1):
        raise ShapeError(f"classes must be an int >= 1, got {classes!r}")
    return {"classes": int(classes), "dtype": as_dtype(dtype, FLOAT_DTYPES).name}


def _one_hot_kernel(out: np.ndarray, labels: np.ndarray, classes: int, dtype: str) -> None:
    out[...] = 0
    np.put_along_axis(out, labels[..., None], 1, axis=-1)


one_hot_op = Primitive(
    "one_hot",
    infer=_one_hot_aval,
    normalize=_one_hot_normalize,
    kernel=_one_hot_kernel,
    vjp=[ZERO],
    flops=lambda ins, out, **attrs: out.size,
    int_operands=frozenset({0}),
    check_operands=lambda labels, classes, dtype: _labels_out_of_range(labels, classes),
    index_bound=lambda k, labels, classes, dtype: classes if k == 0 else None,
    doc="1.0 at each label's class, 0.0 elsewhere: shape labels.shape + (classes,).",
)


def one_hot(labels: Any, classes: int, dtype: Any = "float32", name: str | None = None) -> Value:
    """One-hot rows of length ``classes`` for int ``labels``."""
    return one_hot_op(labels, classes=classes, dtype=dtype, name=name)


def _sce_aval(logits: Aval, labels: Aval) -> Aval:
    same_float_dtype(logits)
    _check_labels(logits, labels)
    return Aval((), logits.dtype)


def _rows(labels: Value | Aval) -> tuple[int, ...]:
    """The dims whose product N a mean over rows divides by: labels.shape, or (1,) for one row
    (0 rows give 1/N = 0: no terms)."""
    return labels.shape if labels.shape else (1,)


def _nll_kernel(out: np.ndarray, log_probs: np.ndarray, labels: np.ndarray) -> None:
    """mean over rows of -log_probs[label]: each row's term, then NumPy's mean of them.

    With log_probs from log_softmax, a row's term is log Σ exp(x - max) - (x[label] - max)
    (the same two numbers subtracted the other way, so the same bits), as the fused
    softmax_cross_entropy kernel computes it, then averaged in the same order.
    """
    picked = log_probs.reshape(-1, log_probs.shape[-1])[_row_numbers(labels), labels.reshape(-1)]
    np.negative(picked, out=picked)
    if picked.size and picked.dtype.char in "fd":  # np.mean's arithmetic without its Python: 6 µs a call
        out[...] = np.add.reduce(picked, axis=None) / np.intp(picked.size)
    else:
        out[...] = picked.mean()


def _row_numbers(labels: np.ndarray) -> np.ndarray:
    """0 … N-1 for the N rows the labels pick from: with the labels, an index of one element per row.
    (Plain indexing; ``np.take_along_axis`` costs 15 µs more a call, more than a small step's kernels.)"""
    return np.arange(labels.size)


def _nll_vjp(g: Value, y: Value, log_probs: Value, labels: Value) -> Value:
    """∂ mean(-lp[label]) / ∂ lp = -onehot(labels)·g / N; log_softmax's J^T turns it into one kernel."""
    hot = one_hot(labels, log_probs.shape[-1], log_probs.dtype)
    return hot * E.neg(E.times_inverse_count(g, _rows(labels)))


nll_loss_op = Primitive(
    "nll_loss",
    infer=_sce_aval,
    kernel=_nll_kernel,
    vjp=[_nll_vjp, ZERO],
    flops=lambda ins, out: 2 * ins[1].size,
    int_operands=frozenset({1}),
    check_operands=lambda log_probs, labels: _labels_out_of_range(labels, log_probs.shape[-1]),
    index_bound=lambda k, log_probs, labels: log_probs.shape[-1] if k == 1 else None,
    doc="mean over rows of -log_probs[label], the classes along the last axis.  J^T: (-onehot·g / N, zero).",
)


def nll_loss(log_probs: Any, labels: Any, name: str | None = None) -> Value:
    """Mean over rows of ``-log_probs[label]`` for int ``labels`` of shape ``log_probs.shape[:-1]``.

    The negative log-likelihood of labels under log-probabilities whose classes lie
    along the last axis (torch's ``nll_loss`` with ``reduction="mean"`` has them at
    axis 1). Of ``log_softmax(logits)`` it is the cross-entropy, which is how
    :func:`softmax_cross_entropy` computes it.
    """
    return nll_loss_op(log_probs, labels, name=name)


def _sce_grad_aval(log_probs: Aval, labels: Aval, scale: Aval) -> Aval:
    same_float_dtype(log_probs, scale)
    _check_labels(log_probs, labels)
    if scale.shape != ():
        raise ShapeError(f"scale must be one number (shape ()), got shape {scale.shape}")
    return log_probs


def _sce_grad_kernel(out: np.ndarray, log_probs: np.ndarray, labels: np.ndarray, scale: np.ndarray) -> None:
    """(exp(log_probs) - onehot(labels))·scale: exp, 1 subtracted at each label, one product.

    ``out`` may be ``log_probs`` itself (each element is read before it is written).
    """
    np.exp(log_probs, out=out)
    if out.flags.c_contiguous:  # rows of a view; plain indexing is 15 µs a call cheaper than put_along_axis
        out.reshape(-1, out.shape[-1])[_row_numbers(labels), labels.reshape(-1)] -= 1
    else:
        index = labels[..., None]
        np.put_along_axis(out, index, np.take_along_axis(out, index, axis=-1) - 1, axis=-1)
    np.multiply(out, scale, out=out)


def _sce_grad_vjp_scale(g: Value, y: Value, log_probs: Value, labels: Value, scale: Value) -> Value:
    """Σ g·(e^lp - onehot): the result is linear in the scale."""
    hot = one_hot(labels, log_probs.shape[-1], log_probs.dtype)
    return R.sum(g * (E.exp(log_probs) - hot))


def softmax_cross_entropy_grad(log_probs: Any, labels: Any, scale: Any, name: str | None = None) -> Value:
    """``(exp(log_probs) - onehot(labels))·scale``, scale one number: the cross-entropy's J^T (an internal primitive)."""
    return softmax_cross_entropy_grad_op(log_probs, labels, scale, name=name)


softmax_cross_entropy_grad_op = Primitive(
    "softmax_cross_entropy_grad",
    infer=_sce_grad_aval,
    kernel=_sce_grad_kernel,
    vjp=[lambda g, y, log_probs, labels, scale: g * E.exp(log_probs) * scale, ZERO, _sce_grad_vjp_scale],
    flops=lambda ins, out: 6 * out.size,
    elementwise=True,
    int_operands=frozenset({1}),
    check_operands=lambda log_probs, labels, scale: _labels_out_of_range(labels, log_probs.shape[-1]),
    index_bound=lambda k, log_probs, labels, scale: log_probs.shape[-1] if k == 1 else None,
    doc="(exp(log_probs) - onehot(labels))·scale: the cross-entropy's J^T, with no one-hot built.  "
        "J^T: (g·e^lp·scale, zero, Σ g·(e^lp - onehot)).",
)


def _sce_kernel(out: np.ndarray, logits: np.ndarray, labels: np.ndarray, scratch: Sequence[np.ndarray]) -> None:
    """mean over rows of log Σ exp(x - max) - (x[label] - max).

    Only the picked logit of each row is shifted, and the row maximum never
    meets the log-sum (see :func:`_log_softmax_into`).
    """
    exp_shifted, row_max, row_lse = scratch
    _log_sum_exp_shifted(exp_shifted, logits, -1, row_max, row_lse)
    picked = np.take_along_axis(logits, labels[..., None], axis=-1)
    np.subtract(picked, row_max, out=picked)
    np.subtract(row_lse, picked, out=row_lse)
    out[...] = row_lse.mean()


def _sce_vjp(g: Value, y: Value, logits: Value, labels: Value) -> Value:
    """∂ mean(-log p[label]) / ∂ logits = (softmax(logits) - onehot(labels)) / N, softmax(logits) = e^log_softmax."""
    return softmax_cross_entropy_grad_op(log_softmax(logits), labels, E.times_inverse_count(g, _rows(labels)))


softmax_cross_entropy_op = Primitive(
    "softmax_cross_entropy",
    infer=_sce_aval,
    kernel=_sce_kernel,
    vjp=[_sce_vjp, ZERO],
    flops=lambda ins, out: 7 * ins[0].size,
    scratch=lambda logits, labels: [logits] + _row_scratch(logits, logits.ndim - 1),
    int_operands=frozenset({1}),
    check_operands=lambda logits, labels: _labels_out_of_range(labels, logits.shape[-1]),
    index_bound=lambda k, logits, labels: logits.shape[-1] if k == 1 else None,
    doc="mean over rows of -log softmax(logits)[label], in one kernel (plans saved before "
        "softmax_cross_entropy was log_softmax + nll_loss run it).  J^T: (softmax - onehot)·g / N.",
)


def fused_softmax_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Value:
    """The cross-entropy in the one ``softmax_cross_entropy`` kernel (an internal primitive, which
    plans saved before the loss was log_softmax + nll_loss run): the same value, no log-probabilities kept."""
    return softmax_cross_entropy_op(logits, labels, name=name)


def softmax_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Value:
    """Mean cross-entropy of int ``labels`` (shape ``logits.shape[:-1]``) under softmax(logits).

    Built as ``nll_loss(log_softmax(logits), labels)``: the forward computes the
    log-probabilities, exact for logits of any size (1e16 too), and the backward
    reads them, ``(e^lp - onehot)·g / N`` in one kernel, so the probabilities are
    neither recomputed nor a one-hot built; the planner keeps the log-probabilities
    for the backward or recomputes them, like any value. The loss has the bits of
    the single fused kernel graphc used before (:data:`softmax_cross_entropy_op`).
    """
    logits, labels = checked_operands(softmax_cross_entropy_op, (logits, labels), name=name)
    log_probs = log_softmax(logits, name=None if name is None else f"{name}.log_probs")
    loss = nll_loss(log_probs, labels, name=name)
    if name is None:  # what a plan listing or a run-time error calls it
        loss.node.name = f"softmax_cross_entropy_{loss.node.id}"
    return loss


def mse(prediction: Any, target: Any, name: str | None = None) -> Value:
    """Mean squared error, ``mean((prediction - target)²)``, built from sub, mul and mean."""
    diff = E.sub(prediction, target)
    return R.mean(diff * diff, name=name)


# --- smooth activations -------------------------------------------------------------

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the tanh approximation's coefficient (Hendrycks & Gimpel 2016)
# p = -2u = x·(A + B·x²), u = √(2/π)(x + 0.044715x³): the exponent of x·σ(2u) = x / (1 + e^p)
_GELU_P_LINEAR = -2.0 * _SQRT_2_OVER_PI
_GELU_P_CUBIC = -2.0 * _SQRT_2_OVER_PI * _GELU_CUBIC
_GELU_GRAD_TOP = 9.0  # above it the tanh form's derivative is 1 to the last bit of float64 (1 + 3e-27 at x = 9)


@functools.lru_cache(maxsize=None)
def _gelu_grad_floor(dtype: np.dtype) -> float:
    """The x below which the tanh form's derivative is computed at this x instead: where e^p = e^(-2u) is
    still finite in ``dtype`` with a margin (x ≈ -10.0 in float32, -21.3 in float64). There the derivative
    is below 1e-35 (1e-305), 0 in ulps of 1, and below it e^p would overflow, with NumPy's warning."""
    ceiling = math.log(float(np.finfo(dtype).max)) - 1.0
    roots = np.roots([_GELU_P_CUBIC, 0.0, _GELU_P_LINEAR, -ceiling])  # p(x) = ceiling; p falls, so one real root
    return float(roots[np.isreal(roots)].real[0])


def _gelu_normalize(x: Aval, approximate: Any = "none") -> dict[str, Any]:
    if approximate not in ("none", "tanh"):
        raise ShapeError(f"approximate must be 'none' (the exact erf formula) or 'tanh', got {approximate!r}")
    return {"approximate": approximate}


def _gelu_kernel(out: np.ndarray, x: np.ndarray, approximate: str) -> None:
    """x·Φ(x): exact as ½x·erfc(-x/√2), or ½x·(1 + tanh(√(2/π)(x + 0.044715x³))) as x·σ(2u).

    The exact form uses erfc rather than torch's 1 + erf(x/√2), which cancels to
    0 for x < -6 where x·Φ(x) is still a normal number. ``out`` never aliases x
    (not elementwise): x is read after out is written.
    """
    if approximate == "tanh":
        _gelu_tanh_into(out, x)
    else:
        from scipy.special import erfc

        np.multiply(x, -_SQRT_HALF, out=out)
        erfc(out, out=out)
        np.multiply(out, x, out=out)
        np.multiply(out, 0.5, out=out)


def _gelu_tanh_into(out: np.ndarray, x: np.ndarray) -> None:
    """out = x / (1 + e^p), p = -2u = x·(A + B·x²): ½x(1 + tanh u) = x·σ(2u), in 7 passes (one exp).

    e^p is half the cost of tanh here, and x·σ(2u) does not cancel where 1 + tanh(u) does
    (to 0 below x ≈ -5.4 in float32). Where e^p overflows (p > log(max)), out is x/∞ = -0, silently.
    """
    np.multiply(x, x, out=out)
    np.multiply(out, _GELU_P_CUBIC, out=out)
    np.add(out, _GELU_P_LINEAR, out=out)
    np.multiply(out, x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    np.add(out, 1.0, out=out)
    np.divide(x, out, out=out)


def _normal_cdf(x: Value, y: Value) -> Value:
    """Φ(x): ½(1 + erf(x/√2)) for x ≥ -1, and y/x below, where y = x·Φ(x) is the kernel's erfc result.

    1 + erf(x/√2) cancels for negative x (to 0 below -6, where Φ is still 1e-9 and
    less); GELU's own value keeps Φ's digits there, and x ≤ -1 is far from x = 0.
    """
    left = E.less(x, -1.0)
    below = y / E.where(left, x, -1.0)
    return E.where(left, below, 0.5 + 0.5 * E.erf(x * _SQRT_HALF))


def _gelu_vjp(g: Value, y: Value, x: Value, approximate: str) -> Value:
    """Exact: Φ(x) + x·φ(x).  Tanh: σ(2u)·(1 + 2x·u′·(1 - σ(2u))), u′ = √(2/π)(1 + 3·0.044715x²)."""
    if approximate == "none":
        cdf = _normal_cdf(x, y)
        pdf = E.exp(x * x * -0.5) * (1.0 / math.sqrt(2.0 * math.pi))
        return g * (cdf + x * pdf)
    return g * _gelu_tanh_derivative(x)


def _gelu_tanh_derivative(x: Value) -> Value:
    """d/dx x·σ(2u) = s + k·s(1 - s) = s·(1 + k·(1 - s)), s = σ(2u) = 1/(1 + E), E = e^(-2u), k = 2x·u′.

    1 - s is E/(1 + E), computed as 1/(1 + 1/E): no cancellation where s is near 1 (x > 0,
    where 1 - tanh(u) loses its digits). x is clipped to [:func:`_gelu_grad_floor`, 9], outside
    which the derivative is 0 in ulps of 1 (below 1e-35) or 1 to the last bit: E stays finite
    and > 0, so nothing overflows and 1/E is never a division by zero.
    """
    x = E.clip(x, _gelu_grad_floor(x.dtype), _GELU_GRAD_TOP)
    squared = x * x
    exp_p = E.exp(x * (_GELU_P_LINEAR + _GELU_P_CUBIC * squared))
    k = x * (2.0 * _SQRT_2_OVER_PI + 6.0 * _SQRT_2_OVER_PI * _GELU_CUBIC * squared)
    one_minus_s = 1.0 / (1.0 + 1.0 / exp_p)
    return (1.0 + k * one_minus_s) / (1.0 + exp_p)


gelu_op = Primitive(
    "gelu",
    infer=lambda x, approximate: E._unary_aval(x),
    normalize=_gelu_normalize,
    kernel=_gelu_kernel,
    vjp=[_gelu_vjp],
    flops=lambda ins, out, approximate: (20 if approximate == "none" else 10) * out.size,
    doc="x·Φ(x), exact (erf) or with the tanh approximation.  J^T: g·(Φ(x) + x·φ(x)) or its tanh form.",
)


def gelu(x: Any, approximate: str = "none", name: str | None = None) -> Value:
    """GELU, ``x·Φ(x)`` with Φ the normal CDF (torch.nn.functional.gelu's arguments).

    ``approximate="tanh"`` gives ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))``, GPT-2's form.
    """
    return gelu_op(x, approximate=approximate, name=name)


def _softplus_normalize(x: Aval, beta: Any = 1.0, threshold: Any = 20.0) -> dict[str, Any]:
    for what, value in (("beta", beta), ("threshold", threshold)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)):
            raise ShapeError(f"{what} must be a finite number, got {value!r:.40}")
    if beta <= 0:
        raise ShapeError(f"beta must be > 0, got {beta!r}")
    return {"beta": float(beta), "threshold": float(threshold)}


def _softplus_kernel(out: np.ndarray, x: np.ndarray, beta: float, threshold: float) -> None:
    """log(1 + e^(βx))/β as logaddexp(0, βx)/β (no overflow), and x where βx > threshold (torch's)."""
    np.multiply(x, beta, out=out)
    linear = out > threshold
    np.logaddexp(0.0, out, out=out)
    np.divide(out, beta, out=out)
    np.copyto(out, x, where=linear)


def _softplus_vjp(g: Value, y: Value, x: Value, beta: float, threshold: float) -> Value:
    """σ(βx)·g, and g itself where βx > threshold (torch's backward)."""
    scaled = x * beta
    return E.where(E.greater(scaled, threshold), g, g * E.sigmoid(scaled))


softplus_op = Primitive(
    "softplus",
    infer=lambda x, beta, threshold: E._unary_aval(x),
    normalize=_softplus_normalize,
    kernel=_softplus_kernel,
    vjp=[_softplus_vjp],
    flops=lambda ins, out, beta, threshold: 6 * out.size,
    doc="log(1 + e^(βx))/β, x where βx > threshold.  J^T: g·σ(βx), g where βx > threshold.",
)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0, name: str | None = None) -> Value:
    """Softplus, ``log(1 + e^(βx))/β`` (torch.nn.functional.softplus's arguments).

    Where ``βx > threshold`` the result is ``x`` itself, as in torch (the two differ
    there by less than e^(-threshold)/β).
    """
    return softplus_op(x, beta=beta, threshold=threshold, name=name)
