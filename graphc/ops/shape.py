"""Ops that move elements without arithmetic: reshape, transpose, broadcast_to,
concat, and the slice/pad pair that are each other's transpose.

``reshape``, ``transpose``, ``broadcast_to`` and ``slice_axis`` are views: their
kernel returns a view of the input instead of writing into an output buffer, and
each says whether its view of a C-contiguous array is C-contiguous
(``keeps_contiguous``), which the memory planner needs to know whether a later
reshape is a view or a copy.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Aval, Value, is_int
from graphc.ops.core import Apply, Primitive, ShapeError, Term, as_int, as_shape, normalize_axis

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "reshape", "transpose", "broadcast_to", "slice_axis", "pad_axis", "concat",
]


def _no_flops(ins: Sequence[Aval], out: Aval, **attrs: Any) -> int:
    return 0


# --- reshape ------------------------------------------------------------------


def _reshape_normalize(x: Aval, shape: Sequence[int]) -> dict[str, Any]:
    if is_int(shape):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(f"shape must be a tuple of ints, got {shape!r}")
    dims = [as_int(d, f"shape {tuple(shape)!r}: dimension") for d in shape]
    if dims.count(-1) > 1:
        raise ShapeError(f"shape {tuple(dims)} has more than one -1")
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise ShapeError(f"cannot reshape {x.size} elements into {tuple(dims)}")
        dims[dims.index(-1)] = x.size // known
    return {"shape": tuple(dims)}


def _reshape_aval(x: Aval, shape: tuple[int, ...]) -> Aval:
    if any(d < 0 for d in shape) or math.prod(shape) != x.size:
        raise ShapeError(f"cannot reshape {x.shape} ({x.size} elements) into {shape}")
    return Aval(shape, x.dtype)


def _to_shape_simplify(t: Term) -> Term | Apply | None:
    """A reshape or broadcast to x's own shape → x;  the same op twice → once, to the outer shape
    (reshape: the same elements, in order; broadcast: the same elements, repeated)."""
    (a,) = t.args
    if a.shape == t.shape:
        return a
    if a.op is t.op:
        return Apply(t.op, a.args, {"shape": t.shape})
    return None


reshape_op = Primitive(
    "reshape",
    infer=_reshape_aval,
    normalize=_reshape_normalize,
    kernel=lambda x, shape: x.reshape(shape),
    vjp=[lambda g, y, x, shape: reshape(g, x.shape)],
    flops=_no_flops,
    view=True,
    keeps_contiguous=lambda x, y, shape: True,
    needs_contiguous=True,  # ndarray.reshape copies a non-contiguous array
    copy_kernel=lambda out, x, shape: np.copyto(out.reshape(x.shape), x),  # out is contiguous: no copy made
    shape_attrs=frozenset({"shape"}),
    doc="The same elements in a new shape.  J^T: reshape back.",
    simplify=_to_shape_simplify,
)


def reshape(x: Any, shape: Sequence[int] | int, name: str | None = None) -> Value:
    """``x`` with shape ``shape`` (one entry may be -1)."""
    return reshape_op(x, shape=shape, name=name)


# --- transpose ----------------------------------------------------------------


def _transpose_normalize(x: Aval, axes: Sequence[int] | None = None) -> dict[str, Any]:
    if axes is None:
        return {"axes": tuple(reversed(range(x.ndim)))}
    if not isinstance(axes, (tuple, list)):
        raise ShapeError(f"axes must be a sequence of ints (a permutation of {x.ndim} axes) or None, got {axes!r}")
    perm = tuple(normalize_axis(a, x.ndim) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"axes {tuple(axes)} are not a permutation of {x.ndim} axes")
    return {"axes": perm}


def _transpose_keeps_contiguous(x: Aval, y: Aval, axes: tuple[int, ...]) -> bool:
    """Contiguous when the axes longer than 1 keep their order (those of length 1 move freely)."""
    moved = [a for a in axes if x.shape[a] != 1]
    return moved == sorted(moved)


def _transpose_simplify(t: Term) -> Term | Apply | None:
    """The identity permutation → x;  transpose(transpose(x, p), q) → transpose(x, p∘q), or x when that is the identity
    (the VJP of a transpose is the transpose back)."""
    (a,) = t.args
    axes = t.attrs["axes"]
    if a.op is transpose_op:
        axes = tuple(a.attrs["axes"][i] for i in axes)
        (a,) = a.args
        if axes != tuple(range(len(axes))):
            return Apply(transpose_op, (a,), {"axes": axes})
    return a if axes == tuple(range(len(axes))) else None


transpose_op = Primitive(
    "transpose",
    infer=lambda x, axes: Aval(tuple(x.shape[a] for a in axes), x.dtype),
    normalize=_transpose_normalize,
    kernel=lambda x, axes: x.transpose(axes),
    vjp=[lambda g, y, x, axes: transpose(g, tuple(int(a) for a in np.argsort(axes)))],
    flops=_no_flops,
    view=True,
    keeps_contiguous=_transpose_keeps_contiguous,
    doc="Permute axes (reverse them by default).  J^T: the inverse permutation.",
    simplify=_transpose_simplify,
)


def transpose(x: Any, axes: Sequence[int] | None = None, name: str | None = None) -> Value:
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""
    return transpose_op(x, axes=axes, name=name)


# --- broadcast_to -------------------------------------------------------------


def _broadcast_aval(x: Aval, shape: tuple[int, ...]) -> Aval:
    lead = len(shape) - x.ndim
    if lead < 0 or any(d not in (1, t) for d, t in zip(x.shape, shape[lead:])):
        raise ShapeError(f"cannot broadcast {x.shape} to {shape}")
    return Aval(shape, x.dtype)


def _broadcast_vjp(g: Value, y: Value, x: Value, shape: tuple[int, ...]) -> Value:
    from graphc.ops.elementwise import unbroadcast

    return unbroadcast(g, x.shape)


broadcast_to_op = Primitive(
    "broadcast_to",
    infer=_broadcast_aval,
    normalize=lambda x, shape: {"shape": as_shape(shape)},
    kernel=lambda x, shape: np.broadcast_to(x, shape),
    vjp=[_broadcast_vjp],
    flops=_no_flops,
    view=True,
    keeps_contiguous=lambda x, y, shape: y.shape == x.shape,  # a broadcast that repeats nothing
    shape_attrs=frozenset({"shape"}),
    doc="Repeat along broadcast axes (a read-only view).  J^T: sum over those axes.",
    simplify=_to_shape_simplify,
)


def broadcast_to(x: Any, shape: Sequence[int], name: str | None = None) -> Value:
    """``x`` broadcast to ``shape`` by NumPy's rules."""
    return broadcast_to_op(x, shape=shape, name=name)


# --- slice_axis and pad_axis ---------------------------------------------------


def _index(ndim: int, axis: int, start: int, stop: int) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(start, stop),)


def _slice_normalize(x: Aval, axis: int, start: int, stop: int) -> dict[str, Any]:
    axis = normalize_axis(axis, x.ndim)
    start, stop = as_int(start, "start"), as_int(stop, "stop")
    if not 0 <= start <= stop <= x.shape[axis]:
        raise ShapeError(f"slice [{start}:{stop}] is outside axis {axis} of length {x.shape[axis]}")
    return {"axis": axis, "start": int(start), "stop": int(stop)}


def _slice_aval(x: Aval, axis: int, start: int, stop: int) -> Aval:
    shape = list(x.shape)
    shape[axis] = stop - start
    return Aval(tuple(shape), x.dtype)


def _slice_vjp(g: Value, y: Value, x: Value, axis: int, start: int, stop: int) -> Value:
    if x.shape[axis] is None:
        raise GraphError(
            f"slice_axis [{start}:{stop}] of {x.node.describe()} along its batch axis {axis}: the gradient pads "
            "back to the batch size, which is known only when a run gives it, and graphc has no such padding; "
            "slice along the other axes, or feed the rows as an input of their own"
        )
    return pad_axis(g, axis, start, x.shape[axis] - stop)


_SLICE = Primitive(
    "slice_axis",
    infer=_slice_aval,
    normalize=_slice_normalize,
    kernel=lambda x, axis, start, stop: x[_index(x.ndim, axis, start, stop)],
    vjp=[_slice_vjp],
    flops=_no_flops,
    view=True,
    keeps_contiguous=lambda x, y, axis, start, stop: all(d == 1 for d in x.shape[:axis]),  # one block of rows
    doc="x[..., start:stop, ...] along one axis.  J^T: pad with zeros back to x's shape.",
)


def slice_axis(x: Any, axis: int, start: int, stop: int, name: str | None = None) -> Value:
    """The elements ``start:stop`` of ``x`` along ``axis``."""
    return _SLICE(x, axis=axis, start=start, stop=stop, name=name)


def _pad_normalize(x: Aval, axis: int, before: int, after: int) -> dict[str, Any]:
    before, after = as_int(before, "before"), as_int(after, "after")
    if before < 0 or after < 0:
        raise ShapeError(f"padding ({before}, {after}) is negative")
    return {"axis": normalize_axis(axis, x.ndim), "before": int(before), "after": int(after)}


def _pad_aval(x: Aval, axis: int, before: int, after: int) -> Aval:
    shape = list(x.shape)
    shape[axis] += before + after
    return Aval(tuple(shape), x.dtype)


def _pad_kernel(out: np.ndarray, x: np.ndarray, axis: int, before: int, after: int) -> None:
    out[_index(out.ndim, axis, 0, before)] = 0
    out[_index(out.ndim, axis, before + x.shape[axis], out.shape[axis])] = 0
    out[_index(out.ndim, axis, before, before + x.shape[axis])] = x


_PAD = Primitive(
    "pad_axis",
    infer=_pad_aval,
    normalize=_pad_normalize,
    kernel=_pad_kernel,
    vjp=[lambda g, y, x, axis, before, after: slice_axis(g, axis, before, before + x.shape[axis])],
    flops=_no_flops,
    doc="Zeros before and after x along one axis.  J^T: the slice that drops them.",
)


def pad_axis(x: Any, axis: int, before: int, after: int, name: str | None = None) -> Value:
    """``x`` with ``before`` zeros in front and ``after`` behind along ``axis``."""
    return _PAD(x, axis=axis, before=before, after=after, name=name)


# --- concat ---------------------------------------------------------------------


def _concat_aval(*xs: Aval, axis: int) -> Aval:
    if not xs:
        raise ShapeError("needs at least one operand")
    first = xs[0]
    if len({x.dtype for x in xs}) != 1:
        names = ", ".join(sorted({x.dtype.name for x in xs}))
        raise ShapeError(f"operands have different dtypes ({names}); cast them to one dtype first")
    for x in xs[1:]:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise ShapeError(f"shapes {first.shape} and {x.shape} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Aval(tuple(shape), first.dtype)


def _concat_vjp(index: int):
    def rule(g: Value, y: Value, *xs: Value, axis: int) -> Value:
        start = sum(x.shape[axis] for x in xs[:index])
        return slice_axis(g, axis, start, start + xs[index].shape[axis])

    return rule


_CONCAT = Primitive(
    "concat",
    infer=_concat_aval,
    normalize=lambda *xs, axis=0: {"axis": normalize_axis(axis, xs[0].ndim) if xs else axis},
    kernel=lambda out, *xs, axis: np.concatenate(xs, axis=axis, out=out),
    vjp=_concat_vjp,
    flops=_no_flops,
    doc="Join along an axis.  J^T: each operand's slice of g.",
)


def concat(values: Sequence[Any], axis: int = 0, name: str | None = None) -> Value:
    """The operands joined along ``axis`` (a list of at least one Value)."""
    if not isinstance(values, (list, tuple)):
        raise GraphError(f"concat takes a list of Values, got {type(values).__name__}; write gc.concat([a, b], axis)")
    if not values:
        raise GraphError("concat needs at least one operand; give a non-empty list of Values")
    return _CONCAT(*values, axis=axis, name=name)
