"""Reductions over axes: sum, mean, max (``axis=None`` is every axis)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from graphc.ir import Aval, Value
from graphc.ops import elementwise as E
from graphc.ops import shape as S
from graphc.ops.core import Primitive, ShapeError, normalize_axes, same_float_dtype

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "sum", "mean", "max", "logsumexp", "var", "std",
]


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


def mean_into(out: np.ndarray, x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> None:
    """out = mean of x over ``axis``: the sum, then a division by the count, which is how ``np.mean``
    computes a float32 or float64 mean (the same bits), without its Python-level overhead (3.4 µs
    against 7 on a small array). An empty mean is 0/0 = NaN, with NumPy's warning of it."""
    np.add.reduce(x, axis=axis, keepdims=keepdims, out=out)
    np.divide(out, math.prod(x.shape[a] for a in axis), out=out)


_MEAN = Primitive(
    "mean",
    infer=_reduced_aval,
    normalize=_normalize,
    kernel=mean_into,
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


# --- log-sum-exp and the moments ---------------------------------------------------------


def _kept_scratch(x: Aval, axis: tuple[int, ...], keepdims: bool, **attrs: Any) -> list[Aval]:
    """A temporary of x's shape and one of the reduced shape with kept dims."""
    return [x, Aval(kept_shape(x.shape, axis), x.dtype)]


def _logsumexp_kernel(out: np.ndarray, x: np.ndarray, axis: tuple[int, ...], keepdims: bool,
                      scratch: Sequence[np.ndarray]) -> None:
    """m + log Σ exp(x - m) with m the maximum over ``axis`` (0 where m is ±inf, as SciPy's).

    Shifted by the maximum, no exponential overflows and the largest term is 1,
    so the sum lies in [1, n] and its log loses no digits.
    """
    shifted, row_max = scratch
    np.maximum.reduce(x, axis=axis, keepdims=True, out=row_max)
    np.copyto(row_max, 0.0, where=~np.isfinite(row_max))
    np.subtract(x, row_max, out=shifted)
    np.exp(shifted, out=shifted)
    np.add.reduce(shifted, axis=axis, keepdims=keepdims, out=out)
    np.log(out, out=out)
    np.add(out, row_max if keepdims else row_max.reshape(out.shape), out=out)


def _logsumexp_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool) -> Value:
    """softmax(x)·g over the reduced axes, as e^(x - m) / Σ e^(x - m) with m the maximum.

    Not e^(x - y): y = m + log Σ is rounded to the spacing of m (1e-3 at 1e4 in
    float32), and e^(x - y) would carry that absolute error as a relative one.
    """
    shifted = E.exp(x - max(x, axis=axis, keepdims=True))
    return shifted * (_with_kept_dims(g, x, axis) / sum(shifted, axis=axis, keepdims=True))


_LOGSUMEXP = Primitive(
    "logsumexp",
    infer=_reduced_aval,
    normalize=_normalize,
    kernel=_logsumexp_kernel,
    vjp=[_logsumexp_vjp],
    flops=lambda ins, out, **attrs: 4 * ins[0].size,
    scratch=_kept_scratch,
    doc="log Σ eˣ over axes, shifted by the maximum.  J^T: softmax(x)·g.",
)


def _moment_normalize(x: Aval, axis: int | Sequence[int] | None = None, keepdims: bool = False,
                      ddof: Any = 0) -> dict[str, Any]:
    if isinstance(ddof, (bool, np.bool_)) or not isinstance(ddof, (int, float, np.integer, np.floating)) \
            or not ddof >= 0 or not np.isfinite(ddof):
        raise ShapeError(f"ddof must be a number >= 0 (0: population, 1: sample variance), got {ddof!r:.40}")
    ddof = int(ddof) if float(ddof).is_integer() else float(ddof)
    return {**_normalize(x, axis, keepdims), "ddof": ddof}


def _moment_kernel(out: np.ndarray, x: np.ndarray, axis: tuple[int, ...], keepdims: bool, ddof: float,
                   scratch: Sequence[np.ndarray], root: bool) -> None:
    """(Σ d² - (Σ d)²/n) / (n - ddof) with d = x - mean: the corrected two-pass algorithm.

    The one-pass E[x²] - E[x]² cancels catastrophically when the mean is large
    against the spread (1e8 ± 1 in float64 gives 0 or negative variances). The
    second pass squares the deviations from the rounded mean m̃; (Σ d)²/n removes
    what m̃'s rounding adds, n·(m - m̃)² (Chan, Golub and LeVeque 1983), so five
    equal values have variance 0 even where their mean rounds. n - ddof <= 0
    gives inf or NaN, as NumPy's var.
    """
    deviation, mean_kept = scratch
    deviation_sums(mean_kept, mean_kept, out, x, axis, keepdims, deviation)
    variance_from_sums(out, out, mean_kept, math.prod(x.shape[i] for i in axis), ddof, mean_kept)
    if root:
        np.sqrt(out, out=out)


def deviation_sums(shift: np.ndarray, sums: np.ndarray, squares: np.ndarray, x: np.ndarray,
                   axis: tuple[int, ...], keepdims: bool, deviation: np.ndarray) -> None:
    """The two passes of the corrected two-pass algorithm: the rounded mean m̃ into ``shift``, then
    with d = x - m̃ (in ``deviation``, x's size) Σ d into ``sums`` (both with the axes kept) and Σ d²
    into ``squares`` (``keepdims`` as given). ``shift`` may be ``sums``: m̃ is read before Σ d is written."""
    mean_into(shift, x, axis, True)
    np.subtract(x, shift, out=deviation)
    np.add.reduce(deviation, axis=axis, keepdims=True, out=sums)  # Σ d = n·(m - m̃), up to rounding
    np.multiply(deviation, deviation, out=deviation)
    np.add.reduce(deviation, axis=axis, keepdims=keepdims, out=squares)


def variance_from_sums(out: np.ndarray, squares: np.ndarray, sums: np.ndarray, n: int, ddof: float,
                       square: np.ndarray) -> None:
    """out = (Σ d² - (Σ d)²/n) / (n - ddof) from :func:`deviation_sums`' ``squares`` and ``sums``
    (``out`` may be ``squares``; ``square``, of sums' shape, is overwritten and may be ``sums``)."""
    if n:
        np.multiply(sums, sums, out=square)
        np.divide(square, n, out=square)
        np.subtract(squares, square.reshape(out.shape), out=out)
        np.maximum(out, 0.0, out=out)  # Σ d² ≥ (Σ d)²/n exactly; rounding must not make it negative
    count = n - ddof
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, count if count > 0 else 0.0, out=out)


def per_degree_of_freedom(term: Value, x: Value, axis: tuple[int, ...], ddof: float) -> Value:
    """``term / (n - ddof)`` with n the count of ``axis``, which may hold the batch size (None).

    With the batch in the count, 1/n is a ``div_by_count`` node that specialising
    fills in, and 1/(n - ddof) = (1/n) / (1 - ddof/n).
    """
    dims = tuple(x.shape[i] for i in axis)
    if None not in dims:
        count = math.prod(dims) - ddof
        return term * (1.0 / count if count > 0 else math.inf)
    if ddof == 0:
        return E.times_inverse_count(term, dims)
    from graphc.ops.core import constant_node

    inverse_n = E.times_inverse_count(Value(constant_node(x.graph, 1.0, x.dtype)), dims)
    return term * (inverse_n / (1.0 - ddof * inverse_n))


def _centred(x: Value, axis: tuple[int, ...]) -> Value:
    """x - mean(x), corrected for the mean's rounding: d - mean(d) with d = x - m̃.

    The rounded mean m̃ is off by up to half an ulp of the mean (7e-9 at 1e8 in
    float64), an absolute error of every deviation; mean(d) = m - m̃ up to rounding
    of the small d, so d - mean(d) has the deviations' own precision (the corrected
    two-pass algorithm of Chan, Golub and LeVeque).
    """
    first = x - mean(x, axis=axis, keepdims=True)
    return first - mean(first, axis=axis, keepdims=True)


def _var_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool, ddof: float) -> Value:
    """∂ var/∂x = 2(x - mean)/(n - ddof) (the mean's own derivative sums to zero)."""
    return per_degree_of_freedom(2.0 * _centred(x, axis) * _with_kept_dims(g, x, axis), x, axis, ddof)


def _std_vjp(g: Value, y: Value, x: Value, axis: tuple[int, ...], keepdims: bool, ddof: float) -> Value:
    """∂ std/∂x = (x - mean)/((n - ddof)·std): inf or NaN where std = 0, as torch's."""
    return per_degree_of_freedom(_centred(x, axis) * (_with_kept_dims(g, x, axis) / _with_kept_dims(y, x, axis)), x, axis, ddof)


_VAR = Primitive(
    "var",
    infer=lambda x, axis, keepdims, ddof: _reduced_aval(x, axis, keepdims),
    normalize=_moment_normalize,
    kernel=lambda out, x, axis, keepdims, ddof, scratch: _moment_kernel(out, x, axis, keepdims, ddof, scratch, False),
    vjp=[_var_vjp],
    flops=lambda ins, out, **attrs: 4 * ins[0].size,
    scratch=_kept_scratch,
    doc="Σ (x - mean)² / (n - ddof) over axes, corrected two-pass.  J^T: 2(x - mean)·g / (n - ddof).",
)
_STD = Primitive(
    "std",
    infer=lambda x, axis, keepdims, ddof: _reduced_aval(x, axis, keepdims),
    normalize=_moment_normalize,
    kernel=lambda out, x, axis, keepdims, ddof, scratch: _moment_kernel(out, x, axis, keepdims, ddof, scratch, True),
    vjp=[_std_vjp],
    flops=lambda ins, out, **attrs: 4 * ins[0].size + out.size,
    scratch=_kept_scratch,
    doc="√var over axes.  J^T: (x - mean)·g / ((n - ddof)·std).",
)


def logsumexp(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None) -> Value:
    """``log Σ exp(x)`` over ``axis`` (all axes when None), computed without overflow (SciPy's ``logsumexp``)."""
    return _LOGSUMEXP(x, axis=axis, keepdims=keepdims, name=name)


def var(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, ddof: float = 0,
        name: str | None = None) -> Value:
    """Variance over ``axis``, ``Σ (x - mean)² / (n - ddof)`` (NumPy's ``var``; ``ddof=1`` is the sample variance)."""
    return _VAR(x, axis=axis, keepdims=keepdims, ddof=ddof, name=name)


def std(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False, ddof: float = 0,
        name: str | None = None) -> Value:
    """Standard deviation over ``axis``, ``√var`` (NumPy's ``std``)."""
    return _STD(x, axis=axis, keepdims=keepdims, ddof=ddof, name=name)
