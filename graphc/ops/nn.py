"""Softmax and the losses: softmax, log_softmax, softmax_cross_entropy, mse.

The kernels subtract the row maximum before exponentiating (no overflow) and
keep it apart from the log-sum (no loss of digits when the logits are large);
the few temporaries they need are declared as ``scratch`` so the memory
planner can place them.
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


def _labels_out_of_range(labels: np.ndarray, classes: int) -> str | None:
    """Why ``labels`` do not index ``classes`` classes, or None: a negative label would
    silently pick a class from the end."""
    if labels.size and (np.minimum.reduce(labels, axis=None) < 0 or np.maximum.reduce(labels, axis=None) >= classes):
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
    """∂ mean(-log p[label]) / ∂ logits = (softmax(logits) - onehot(labels)) / N."""
    rows = labels.shape if labels.shape else (1,)  # the count is Π labels.shape, at least 1 (0 rows: no terms)
    return (softmax(logits) - one_hot(labels, logits.shape[-1], logits.dtype)) * E.times_inverse_count(g, rows)


softmax_cross_entropy_op = Primitive(
    "softmax_cross_entropy",
    infer=_sce_aval,
    kernel=_sce_kernel,
    vjp=[_sce_vjp, ZERO],
    flops=lambda ins, out: 7 * ins[0].size,
    scratch=lambda logits, labels: [logits] + _row_scratch(logits, logits.ndim - 1),
    int_operands=frozenset({1}),
    check_operands=lambda logits, labels: _labels_out_of_range(labels, logits.shape[-1]),
    doc="mean over rows of -log softmax(logits)[label].  J^T: (softmax - onehot)·g / N.",
)


def softmax_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Value:
    """Mean cross-entropy of int ``labels`` (shape ``logits.shape[:-1]``) under softmax(logits)."""
    return softmax_cross_entropy_op(logits, labels, name=name)


def mse(prediction: Any, target: Any, name: str | None = None) -> Value:
    """Mean squared error, ``mean((prediction - target)²)``, built from sub, mul and mean."""
    diff = E.sub(prediction, target)
    return R.mean(diff * diff, name=name)
