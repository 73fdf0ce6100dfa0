"""Reductions over axes: sum, mean, max (``axis=None`` is every axis)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.ir import Aval, Value
from graphc.ops import elementwise as E
from graphc.ops import shape as S
from graphc.ops.core import Primitive, ShapeError, normalize_axes, same_float_dtype


def _normalize(x: Aval, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> dict[str, Any]:
    if not isinstance(keepdims, (bool, np.bool_)):
        raise ShapeError(f"keepdims must be True or False, got {keepdims!r}")
    return {"axis": normalize_axes(axis, x.ndim), "keepdims": bool(keepdims)}


def _reduced_aval(x: Aval, axis: tuple[int, ...], keepdims: bool) -> Aval:
    same_float_dtype(x)
    if keepdims:
        shape = tuple(1 if i in axis else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axis)
    return Aval(shape, x.dtype)


def kept_shape(shape: tuple[int, ...], axis: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` with ``keepdims=True``."""
    return tuple(1 if i in axis else d for i, d in enumerate(shape))


def _with_kept_dims(g: Value, x: Value, axis: tuple[int, ...]) -> Value:
    """``g`` reshaped so that it broadcasts against ``x`` over the reduced axes."""
    shape = kept_shape(x.shape, axis)
    return g if g.shape == shape else S.reshape(g, shape)


def _reduction_flops(ins: Sequence[Aval], out: Aval, **attrs: Any) -> int:
    return ins[0].size


def _sum_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool) -> Value:
    return S.broadcast_to(_with_kept_dims(g, x, axis), x.shape)


def _mean_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool) -> Value:
    scaled = E.times_inverse_count(g, tuple(x.shape[i] for i in axis))
    return S.broadcast_to(_with_kept_dims(scaled, x, axis), x.shape)


def _max_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool) -> Value:
    """g flows to the maxima, shared equally among ties (as JAX's reduce_max)."""
    winners = E.equal(x, _with_kept_dims(y, x, axis))
    ties = sum(winners, axis=axis, keepdims=True)
    return winners * (_with_kept_dims(g, x, axis) / ties)


_SUM = Primitive(
    "sum",
    infer=_reduced_aval,
    normalize=_normalize,
    kernel=lambda out, x, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims, out=out),
    vjp=[_sum_vjp],
    flops=_reduction_flops,
    doc="Σ over axes.  J^T: g broadcast back over the summed axes.",
)
_MEAN = Primitive(
    "mean",
    infer=_reduced_aval,
    normalize=_normalize,
    kernel=lambda out, x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims, out=out),
    vjp=[_mean_vjp],
    flops=_reduction_flops,
    doc="Mean over axes.  J^T: g / n broadcast back.",
)
_MAX = Primitive(
    "max",
    infer=_reduced_aval,
    normalize=_normalize,
    kernel=lambda out, x, axis, keepdims: np.maximum.reduce(x, axis=axis, keepdims=keepdims, out=out),
    vjp=[_max_vjp],
    flops=_reduction_flops,
    doc="Max over axes.  J^T: g to the maxima, split among ties.",
)


def sum(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None) -> Value:  # noqa: A001
    """Σ of ``x`` over ``axis`` (all axes when None)."""
    return _SUM(x, axis=axis, keepdims=keepdims, name=name)


def mean(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None) -> Value:
    """Mean of ``x`` over ``axis`` (all axes when None)."""
    return _MEAN(x, axis=axis, keepdims=keepdims, name=name)


def max(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None) -> Value:  # noqa: A001
    """Max of ``x`` over ``axis`` (all axes when None)."""
    return _MAX(x, axis=axis, keepdims=keepdims, name=name)
