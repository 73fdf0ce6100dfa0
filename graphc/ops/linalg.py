"""Matrix product with NumPy's ``matmul`` rules (1-D promotion, batch broadcasting).

For ``y = a @ b`` with 2-D operands, ``J^T_{φ|a} g = g @ bᵀ`` and
``J^T_{φ|b} g = aᵀ @ g``. 1-D operands are promoted to matrices first, and a
batch dimension that was broadcast is summed away again.
"""

from __future__ import annotations

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


def _swap_last(x: Value) -> Value:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return S.transpose(x, axes)


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


def _vjp_a(g: Value, y: Value, a: Value, b: Value) -> Value:
    g2, a2, b2 = _as_matrices(g, a, b)
    return _to_shape(matmul(g2, _swap_last(b2)), a.shape, a2.shape)


def _vjp_b(g: Value, y: Value, a: Value, b: Value) -> Value:
    g2, a2, b2 = _as_matrices(g, a, b)
    return _to_shape(matmul(_swap_last(a2), g2), b.shape, b2.shape)


def _matmul_flops(ins: Sequence[Aval], out: Aval) -> int:
    pa, _ = _promoted(ins[0].shape, ins[1].shape)
    return 2 * out.size * pa[-1]


matmul = Primitive(
    "matmul",
    infer=_matmul_aval,
    kernel=lambda out, a, b: np.matmul(a, b, out=out),
    vjp=[_vjp_a, _vjp_b],
    flops=_matmul_flops,
    doc="a @ b.  J^T: (g @ bᵀ, aᵀ @ g).",
)
