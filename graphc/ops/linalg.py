"""Matrix product with NumPy's ``matmul`` rules (1-D promotion, batch broadcasting).

For ``y = a @ b`` with 2-D operands, ``J^T_{φ|a} g = g @ bᵀ`` and
``J^T_{φ|b} g = aᵀ @ g``. 1-D operands are promoted to matrices first, and a
batch dimension that was broadcast is summed away again.

Two choices make a dense layer's step cheaper (``x @ W`` with ``x`` of shape
(B, T, K) and ``W`` 2-D):

- the weight gradient ``Σ_b x[b]ᵀ g[b]`` is one GEMM of the stacked rows,
  ``reshape(x, (B·T, K))ᵀ @ reshape(g, (B·T, N))``, rather than B products of
  shape (K, N) summed afterwards (one pass over (B, K, N) less, and a larger,
  faster GEMM);
- when an operand is itself a transpose that swaps the last two axes (the
  tied output projection ``h @ wteᵀ``), its gradient is computed in the
  layout of the transposed value, ``(aᵀ g)ᵀ = gᵀ a``, so the transpose's own
  J^T cancels against it and the gradient lands contiguous where it is added.

The kernel also runs a C-contiguous stacked operand times a 2-D one as one
GEMM of its rows (the same products; NumPy's matmul would loop over the batch).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from graphc.ir import Aval, Value
from graphc.ops import shape as S
from graphc.ops.core import Primitive, ShapeError, broadcast_shapes, same_float_dtype

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "matmul",
]


def _promoted(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (a if len(a) >= 2 else (1,) + a), (b if len(b) >= 2 else b + (1,))


def _matmul_aval(a: Aval, b: Aval) -> Aval:
    dtype = same_float_dtype(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("operands must have at least one dimension (use * for scalars)")
    pa, pb = _promoted(a.shape, b.shape)
    if pa[-1] != pb[-2]:
        raise ShapeError(f"contracted dimensions differ: {a.shape} @ {b.shape} ({pa[-1]} vs {pb[-2]})")
    batch = broadcast_shapes(pa[:-2], pb[:-2])
    shape = batch + (pa[-2],) * (a.ndim >= 2) + (pb[-1],) * (b.ndim >= 2)
    return Aval(shape, dtype)


def _matmul_kernel(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """out = a @ b; a stack of matrices times one matrix as one GEMM of all the stack's rows.

    ``a.reshape`` is a view only for a C-contiguous ``a`` (``out`` always is one),
    so other layouts keep NumPy's loop over the batch.
    """
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous and out.flags.c_contiguous:
        np.matmul(a.reshape(-1, a.shape[-1]), b, out=out.reshape(-1, out.shape[-1]))
    else:
        np.matmul(a, b, out=out)


def _swap_last(x: Value) -> Value:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return S.transpose(x, axes)


def _is_swap_last(x: Value) -> bool:
    """Whether ``x`` is a transpose node that swaps its last two axes and keeps the others."""
    if x.node.op is not S.transpose_op or x.ndim < 2:
        return False
    axes = x.node.attrs["axes"]
    return axes == tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)


def _as_matrices(g: Value, a: Value, b: Value) -> tuple[Value, Value, Value]:
    """Operands and cotangent with 1-D operands promoted as ``matmul`` does."""
    pa, pb = _promoted(a.shape, b.shape)
    a2 = a if a.shape == pa else S.reshape(a, pa)
    b2 = b if b.shape == pb else S.reshape(b, pb)
    batch = broadcast_shapes(pa[:-2], pb[:-2])
    g_shape = batch + (pa[-2], pb[-1])
    return (g if g.shape == g_shape else S.reshape(g, g_shape)), a2, b2


def _to_shape(x: Value, shape: tuple[int, ...], promoted: tuple[int, ...]) -> Value:
    from graphc.ops.elementwise import unbroadcast

    x = unbroadcast(x, promoted)
    return x if x.shape == shape else S.reshape(x, shape)


def _laid_out_contiguous(x: Value) -> bool:
    """Whether ``x`` is a C-contiguous array without a copy of its own: a kernel's result or a source,
    or a chain of views that each keep a contiguous operand contiguous (the planner's facts)."""
    node = x.node
    while node.op is not None and node.op.view:
        (operand,) = node.inputs
        if not node.op.view_keeps_contiguous(operand.aval, node.aval, node.attrs):
            return False
        node = operand
    return True


def _stacked_rows(x: Value) -> Value | None:
    """``x`` of shape (..., M, K) as the (… ·M, K) matrix of its rows, when that reshape is a view.

    None when a dim is unknown (the batch), or when ``x`` is a reshape of a strided view:
    that reshape is a copy already, and the two reshapes simplify to one of the strided
    view, a second copy.
    """
    if any(d is None for d in x.shape):
        return None
    source = x
    while source.node.op is S.reshape_op:
        source = Value(source.node.inputs[0])
    if not _laid_out_contiguous(source):
        return None
    return S.reshape(x, (math.prod(x.shape[:-1]), x.shape[-1]))


def _product_into(left: Value, right: Value, transposed: bool) -> Value:
    """``left @ right``, or when ``transposed`` the same matrix computed as ``(rightᵀ @ leftᵀ)ᵀ``,
    so that a transpose applied to it afterwards cancels and the GEMM writes that layout."""
    if transposed:
        return _swap_last(matmul(_swap_last(right), _swap_last(left)))
    return matmul(left, right)


def _vjp_a(g: Value, y: Value, a: Value, b: Value) -> Value:
    """g @ bᵀ (summed over a's broadcast batch dims); as (b gᵀ)ᵀ when a is a swapped transpose."""
    g2, a2, b2 = _as_matrices(g, a, b)
    return _to_shape(_product_into(g2, _swap_last(b2), _is_swap_last(a)), a.shape, a2.shape)


def _vjp_b(g: Value, y: Value, a: Value, b: Value) -> Value:
    """aᵀ @ g (summed over b's broadcast batch dims); as (gᵀ a)ᵀ when b is a swapped transpose.

    With a stacked ``a`` and a 2-D ``b`` the batch sum is the contraction of one GEMM
    over the stacked rows of a and g.
    """
    g2, a2, b2 = _as_matrices(g, a, b)
    if b2.ndim == 2 and a2.ndim > 2:
        rows_a, rows_g = _stacked_rows(a2), _stacked_rows(g2)
        if rows_a is not None and rows_g is not None:
            a2, g2 = rows_a, rows_g
    return _to_shape(_product_into(_swap_last(a2), g2, _is_swap_last(b)), b.shape, b2.shape)


def _matmul_flops(ins: Sequence[Aval], out: Aval) -> int:
    pa, _ = _promoted(ins[0].shape, ins[1].shape)
    return 2 * out.size * pa[-1]


matmul = Primitive(
    "matmul",
    infer=_matmul_aval,
    kernel=_matmul_kernel,
    vjp=[_vjp_a, _vjp_b],
    flops=_matmul_flops,
    doc="a @ b.  J^T: (g @ bᵀ, aᵀ @ g).",
)
