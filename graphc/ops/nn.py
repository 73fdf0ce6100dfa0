"""Softmax and the losses: softmax, log_softmax, softmax_cross_entropy, mse.

The kernels subtract the row maximum before exponentiating (no overflow); the
few temporaries they need are declared as ``scratch`` so the memory planner
can place them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Value, is_int
from graphc.ops import reduce as R
from graphc.ops import elementwise as E
from graphc.ops.core import ZERO, Primitive, ShapeError, as_dtype, normalize_axis, same_float_dtype


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


def _log_softmax_into(out: np.ndarray, x: np.ndarray, axis: int, row_max: np.ndarray, row_sum: np.ndarray) -> None:
    """out = x - max - log Σ exp(x - max), along ``axis``."""
    np.maximum.reduce(x, axis=axis, keepdims=True, out=row_max)
    np.subtract(x, row_max, out=out)
    np.exp(out, out=out)
    np.add.reduce(out, axis=axis, keepdims=True, out=row_sum)
    np.log(row_sum, out=row_sum)
    np.add(row_sum, row_max, out=row_sum)
    np.subtract(x, row_sum, out=out)


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

log_softmax_op = Primitive(
    "log_softmax",
    infer=_softmax_aval,
    normalize=_axis_normalize,
    kernel=lambda out, x, axis, scratch: _log_softmax_into(out, x, axis, *scratch),
    vjp=[lambda g, y, x, axis: g - E.exp(y) * R.sum(g, axis=axis, keepdims=True)],
    flops=lambda ins, out, axis: 6 * out.size,
    scratch=_row_scratch,
    doc="x - log Σ eˣ along an axis.  J^T: g - softmax(x)·Σ g.",
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
    doc="1.0 at each label's class, 0.0 elsewhere: shape labels.shape + (classes,).",
)


def one_hot(labels: Any, classes: int, dtype: Any = "float32", name: str | None = None) -> Value:
    """One-hot rows of length ``classes`` for int ``labels``."""
    return one_hot_op(labels, classes=classes, dtype=dtype, name=name)


def _sce_aval(logits: Aval, labels: Aval) -> Aval:
    same_float_dtype(logits)
    _check_labels(logits, labels)
    return Aval((), logits.dtype)


def _sce_kernel(out: np.ndarray, logits: np.ndarray, labels: np.ndarray, scratch: Sequence[np.ndarray]) -> None:
    log_p, row_max, row_sum = scratch
    _log_softmax_into(log_p, logits, -1, row_max, row_sum)
    picked = np.take_along_axis(log_p, labels[..., None], axis=-1)
    out[...] = -picked.mean()


def _sce_vjp(g: Value, y: Value, logits: Value, labels: Value) -> Value:
    """∂ mean(-log p[label]) / ∂ logits = (softmax(logits) - onehot(labels)) / N."""
    rows = max(labels.node.aval.size, 1)
    return (softmax(logits) - one_hot(labels, logits.shape[-1], logits.dtype)) * (g * (1.0 / rows))


softmax_cross_entropy_op = Primitive(
    "softmax_cross_entropy",
    infer=_sce_aval,
    kernel=_sce_kernel,
    vjp=[_sce_vjp, ZERO],
    flops=lambda ins, out: 7 * ins[0].size,
    scratch=lambda logits, labels: [logits] + _row_scratch(logits, logits.ndim - 1),
    int_operands=frozenset({1}),
    doc="mean over rows of -log softmax(logits)[label].  J^T: (softmax - onehot)·g / N.",
)


def softmax_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Value:
    """Mean cross-entropy of int ``labels`` (shape ``logits.shape[:-1]``) under softmax(logits)."""
    return softmax_cross_entropy_op(logits, labels, name=name)


def mse(prediction: Any, target: Any, name: str | None = None) -> Value:
    """Mean squared error, ``mean((prediction - target)²)``, built from sub, mul and mean."""
    diff = E.sub(prediction, target)
    return R.mean(diff * diff, name=name)
