"""Indexing: NumPy's basic indexing as a view, and the gather along one axis with its scatter-add.

- ``getitem(x, key)`` is ``x[key]``: ints, slices (negative, stepped, empty or
  out of range as NumPy clips them), ``None`` (a new axis) and ``...``. A basic
  index is a strided view of x, so it owns no storage; its J^T places g into
  zeros of x's shape (``getitem_grad``). One integer array, list or int Value
  among the entries gathers along its axis (``take``), with NumPy's placement
  of the gathered dimensions.
- ``take(a, indices, axis)`` is ``numpy.take``; ``embedding(input, weight)`` is
  ``torch.nn.functional.embedding``. Both gather rows; their J^T is
  ``scatter_add``, where indices that repeat add their rows:
  ``∂ℓ/∂a[j] = Σ_{k: indices[k] = j} ∂ℓ/∂y[k]``.

The index of a ``getitem`` node is stored in a canonical form, one entry per
result-producing step: an int ``i ≥ 0`` picks element i of the next axis,
``None`` inserts an axis, and ``(start, stop, step)`` slices the next axis,
``(0, None, 1)`` being the whole axis (so that it holds for any batch size).
Every axis of x has an entry, so ``x[0]`` and ``x[0, :]`` are the same node.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import INT_DTYPES, Aval, Value, is_int
from graphc.ops.core import ZERO, Primitive, ShapeError, as_shape, constant_node, normalize_axis, same_float_dtype

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "getitem", "getitem_grad", "take", "embedding", "scatter_add",
]

Entry = Any  # int | None | tuple[int, int | None, int]
_WHOLE = (0, None, 1)


def _no_flops(ins: Sequence[Aval], out: Aval, **attrs: Any) -> int:
    return 0


# --- the canonical index --------------------------------------------------------------------


def _canonical_slice(bounds: tuple, length: int) -> tuple[int, int | None, int]:
    """``slice(*bounds)`` on an axis of ``length`` as ``(start, stop, step)``: the whole axis
    as ``(0, None, 1)`` (an empty axis too), another empty slice as ``(0, 0, 1)``, else the
    first element, one past the last (None when that is before element 0) and the step."""
    for what, bound in zip(("start", "stop", "step"), bounds):
        if bound is not None and not is_int(bound):
            raise ShapeError(f"slice {what} {bound!r} is not an int or None")
    if bounds[2] == 0:
        raise ShapeError("slice step cannot be zero")
    start, stop, step = slice(*bounds).indices(length)
    count = len(range(start, stop, step))
    if count == length and (step == 1 or length <= 1):
        return _WHOLE
    if count == 0:
        return (0, 0, 1)
    last = start + (count - 1) * step
    end = last + (1 if step > 0 else -1)
    return (int(start), None if end < 0 else int(end), int(step))


def _slice_length(entry: tuple, length: int) -> int:
    start, stop, step = entry
    if stop is None:
        stop = length if step > 0 else -1
    return len(range(start, stop, step))


def _is_slice_entry(entry: Any) -> bool:
    return isinstance(entry, slice) or (isinstance(entry, (tuple, list)) and len(entry) == 3)


def canonical_index(shape: tuple[int, ...], index: Any) -> tuple[Entry, ...]:
    """``index`` (ints, slices, None, one Ellipsis; or a canonical index) in canonical form
    for a value of ``shape``, every axis given an entry; a ShapeError says what does not fit."""
    if not isinstance(index, (tuple, list)):
        raise ShapeError(f"the index must be a tuple of ints, slices, None and ..., got {index!r:.60}")
    if sum(entry is Ellipsis for entry in index) > 1:
        raise ShapeError("an index can have only one ellipsis (...)")
    consumed = sum(entry is not None and entry is not Ellipsis for entry in index)
    ndim = len(shape)
    if consumed > ndim:
        raise ShapeError(f"too many indices: {consumed} for a value of {ndim} dimension{'s' * (ndim != 1)}")
    entries: list[Entry] = []
    axis = 0
    for entry in index:
        if entry is Ellipsis:
            entries.extend([_WHOLE] * (ndim - consumed))
            axis += ndim - consumed
        elif entry is None:
            entries.append(None)
        elif is_int(entry):
            length = shape[axis]
            if not -length <= entry < length:
                raise ShapeError(f"index {int(entry)} is out of range for axis {axis} of length {length}")
            entries.append(int(entry) % length)
            axis += 1
        elif _is_slice_entry(entry):
            bounds = (entry.start, entry.stop, entry.step) if isinstance(entry, slice) else tuple(entry)
            entries.append(_canonical_slice(bounds, shape[axis]))
            axis += 1
        else:
            raise ShapeError(f"index entry {entry!r:.40} is not an int, a slice, None or ...")
    entries.extend([_WHOLE] * (ndim - axis))
    return tuple(entries)


def indexed_shape(shape: tuple[int, ...], index: tuple[Entry, ...]) -> tuple[int, ...]:
    """The shape of ``x[index]`` for a canonical ``index``."""
    out = []
    axis = 0
    for entry in index:
        if entry is None:
            out.append(1)
            continue
        if isinstance(entry, (tuple, list)):
            out.append(_slice_length(entry, shape[axis]))
        axis += 1
    return tuple(out)


def numpy_key(index: tuple[Entry, ...]) -> tuple:
    """The NumPy key of a canonical index; the trailing ``...`` makes a full integer index a
    0-d view rather than a scalar copy."""
    return tuple(slice(*e) if isinstance(e, (tuple, list)) else e for e in index) + (Ellipsis,)


# --- getitem: a basic index, a view -------------------------------------------------------


def _getitem_normalize(x: Aval, index: Any) -> dict[str, Any]:
    return {"index": canonical_index(x.shape, index)}


def _getitem_vjp(g: Value, y: Value, x: Value, index: tuple) -> Value:
    return getitem_grad(g, index, x.shape)


def getitem_keeps_contiguous(x: Aval, y: Aval, index: tuple) -> bool:
    """Whether ``x[index]`` of a C-contiguous x is C-contiguous, by NumPy's rule: with x's
    strides (in elements) scaled by each slice's step, every axis of length > 1 has the
    stride of the axes after it times their lengths (an empty result is contiguous)."""
    x_strides = [1] * x.ndim
    for axis in range(x.ndim - 2, -1, -1):
        x_strides[axis] = x_strides[axis + 1] * x.shape[axis + 1]
    dims = []  # (length, stride) of each axis of the result
    axis = 0
    for entry in index:
        if entry is None:
            dims.append((1, 0))
            continue
        if isinstance(entry, (tuple, list)):
            dims.append((_slice_length(entry, x.shape[axis]), x_strides[axis] * entry[2]))
        axis += 1
    if any(length == 0 for length, _ in dims):
        return True
    expected = 1
    for length, stride in reversed(dims):
        if length != 1:
            if stride != expected:
                return False
            expected *= length
    return True


getitem_op = Primitive(
    "getitem",
    infer=lambda x, index: Aval(indexed_shape(x.shape, index), x.dtype),
    normalize=_getitem_normalize,
    kernel=lambda x, index: x[numpy_key(index)],
    vjp=[_getitem_vjp],
    flops=_no_flops,
    view=True,
    keeps_contiguous=getitem_keeps_contiguous,
    doc="x[index] with ints, slices and new axes (a strided view).  J^T: g placed into zeros of x's shape.",
)


def _getitem_grad_normalize(g: Aval, index: Any, shape: Sequence[int]) -> dict[str, Any]:
    shape = as_shape(shape)
    return {"index": canonical_index(shape, index), "shape": shape}


def _getitem_grad_aval(g: Aval, index: tuple, shape: tuple[int, ...]) -> Aval:
    same_float_dtype(g)
    expected = indexed_shape(shape, index)
    if g.shape != expected:
        raise ShapeError(f"g of shape {g.shape} is not the shape {expected} of x[index] for x of shape {shape}")
    return Aval(shape, g.dtype)


def _getitem_grad_kernel(out: np.ndarray, g: np.ndarray, index: tuple, shape: tuple[int, ...]) -> None:
    out[...] = 0
    out[numpy_key(index)] = g


getitem_grad_op = Primitive(
    "getitem_grad",
    infer=_getitem_grad_aval,
    normalize=_getitem_grad_normalize,
    kernel=_getitem_grad_kernel,
    vjp=[lambda gg, y, g, index, shape: getitem_op(gg, index=index)],
    flops=_no_flops,
    shape_attrs=frozenset({"shape"}),
    doc="Zeros of ``shape`` with g at ``[index]`` (the transpose of getitem).  J^T: gg[index].",
)


def getitem_grad(g: Any, index: Any, shape: Sequence[int], name: str | None = None) -> Value:
    """Zeros of ``shape`` with ``g`` written at the basic ``index``: the J^T of ``x[index]``."""
    return getitem_grad_op(g, index=tuple(index), shape=shape, name=name)


# --- take, embedding and their transpose, scatter_add ------------------------------------


def _check_indices(indices: Aval, what: str = "indices") -> None:
    if indices.dtype not in INT_DTYPES:
        raise ShapeError(f"{what} must be int32 or int64, got {indices.dtype.name} (cast with gc.astype(i, 'int64'))")


def indices_out_of_range(indices: np.ndarray, length: int, axis: int, negative: bool = True) -> str | None:
    """Why ``indices`` do not index an axis of ``length``, or None. With ``negative`` they may
    count from the end, as NumPy's (``-1`` is the last)."""
    low = -length if negative else 0
    if indices.size and (np.minimum.reduce(indices, axis=None) < low or np.maximum.reduce(indices, axis=None) >= length):
        bad = indices[(indices < low) | (indices >= length)]
        return f"indices must lie in [{low}, {length}) for axis {axis} of length {length}, got {bad.size} outside (e.g. {bad.flat[0]})"
    return None


def _fed_indices_out_of_range(indices: np.ndarray, length: int, axis: int, negative: bool = True) -> str | None:
    """:func:`indices_out_of_range` as the run-time check says it."""
    why = indices_out_of_range(indices, length, axis, negative)
    return None if why is None else why + "; fix the indices fed"


def _check_constant_indices(where: str, source: Value, indices: Any, axis: Any, negative: bool = True) -> None:
    """Indices given as numbers are checked against the axis when the node is built; a malformed
    axis or index array is left to the op's shape rule, which says what is wrong."""
    if isinstance(indices, Value) or source.ndim == 0:
        return
    try:
        axis = normalize_axis(axis, source.ndim)
        array = np.asarray(indices)
    except (ShapeError, ValueError, TypeError):
        return
    length = source.shape[axis]
    if array.dtype.kind in "iu" and length is not None:
        why = indices_out_of_range(array, length, axis, negative)
        if why is not None:
            raise GraphError(f"{where}: {why}; fix the indices")


def _take_normalize(a: Aval, indices: Aval, axis: Any) -> dict[str, Any]:
    if a.ndim == 0:
        raise ShapeError("cannot take along an axis of a 0-d value (use axis=None, which flattens it)")
    return {"axis": normalize_axis(axis, a.ndim)}


def _take_aval(a: Aval, indices: Aval, axis: int) -> Aval:
    _check_indices(indices)
    return Aval(a.shape[:axis] + indices.shape + a.shape[axis + 1:], a.dtype)


def _take_kernel(out: np.ndarray, a: np.ndarray, indices: np.ndarray, axis: int) -> None:
    """mode="wrap" gives NumPy's negative indices unbuffered; check_operands has ruled out the rest."""
    if out.size:
        np.take(a, indices, axis=axis, out=out, mode="wrap")


take_op = Primitive(
    "take",
    infer=_take_aval,
    normalize=_take_normalize,
    kernel=_take_kernel,
    vjp=[lambda g, y, a, indices, axis: scatter_add(g, indices, axis, a.shape), ZERO],
    flops=_no_flops,
    int_operands=frozenset({1}),
    check_operands=lambda a, indices, axis: _fed_indices_out_of_range(indices, a.shape[axis], axis),
    index_bound=lambda k, a, indices, axis: a.shape[axis] if k == 1 else None,
    doc="a's elements at int indices along an axis (numpy.take).  J^T: scatter-add of g at the indices.",
)


def take(a: Any, indices: Any, axis: int | None = None, name: str | None = None) -> Value:
    """``numpy.take(a, indices, axis)``: the elements of ``a`` at ``indices`` along ``axis``.

    The result's shape is ``a.shape[:axis] + indices.shape + a.shape[axis+1:]``;
    ``axis=None`` takes from the flattened ``a``. ``indices`` is an int Value, an
    int, or a list or array of ints (a constant); negative ones count from the end,
    and one outside ``[-n, n)`` is a GraphError when the program runs. The gradient
    adds ∂ℓ/∂y back at the indices (repeated indices add up).
    """
    if not isinstance(a, Value):
        raise GraphError(f"take needs a graph Value to take from, got {type(a).__name__}")
    if axis is None:
        from graphc.ops.shape import reshape

        a, axis = reshape(a, (-1,)), 0
    _check_constant_indices(f"take from {a.node.describe()}", a, indices, axis)
    return take_op(a, indices, axis=axis, name=name)


def _padding_normalize(rows: int | None, padding_idx: Any) -> int | None:
    if padding_idx is None:
        return None
    if not is_int(padding_idx) or rows is None or not -rows <= padding_idx < rows:
        raise ShapeError(f"padding_idx must be None or an int in [{-rows if rows else '-V'}, {rows or 'V'}), "
                         f"got {padding_idx!r:.40}")
    return int(padding_idx) % rows


def _embedding_normalize(input: Aval, weight: Aval, padding_idx: Any = None) -> dict[str, Any]:
    rows = weight.shape[0] if weight.ndim == 2 else None
    return {"padding_idx": _padding_normalize(rows, padding_idx)}


def _embedding_aval(input: Aval, weight: Aval, padding_idx: int | None) -> Aval:
    _check_indices(input, "input (the indices)")
    same_float_dtype(weight)
    if weight.ndim != 2:
        raise ShapeError(f"weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    return Aval(input.shape + weight.shape[1:], weight.dtype)


embedding_op = Primitive(
    "embedding",
    infer=_embedding_aval,
    normalize=_embedding_normalize,
    kernel=lambda out, input, weight, padding_idx: _take_kernel(out, weight, input, 0),
    vjp=[ZERO, lambda g, y, input, weight, padding_idx: scatter_add(g, input, 0, weight.shape, padding_idx)],
    flops=_no_flops,
    int_operands=frozenset({0}),
    check_operands=lambda input, weight, padding_idx: _fed_indices_out_of_range(input, weight.shape[0], 0, negative=False),
    index_bound=lambda k, input, weight, padding_idx: weight.shape[0] if k == 0 else None,
    doc="weight's rows at int input (torch's embedding).  J^T: scatter-add of g into rows, none into padding_idx.",
)


def embedding(input: Any, weight: Any, padding_idx: int | None = None, name: str | None = None) -> Value:
    """``torch.nn.functional.embedding``: the rows of ``weight`` (V, D) at the int ``input``.

    The result has shape ``input.shape + (D,)``; ``input`` must lie in ``[0, V)``
    (checked when the program runs). The row ``padding_idx`` (negative counts from
    the end) is looked up like any other but receives no gradient.
    """
    if isinstance(weight, Value):
        _check_constant_indices(f"embedding from {weight.node.describe()}", weight, input, 0, negative=False)
    return embedding_op(input, weight, padding_idx=padding_idx, name=name)


def _scatter_normalize(g: Aval, indices: Aval, axis: Any, shape: Sequence[int], padding_idx: Any = None) -> dict[str, Any]:
    shape = as_shape(shape)
    if not shape:
        raise ShapeError("cannot scatter into a 0-d value")
    axis = normalize_axis(axis, len(shape))
    return {"axis": axis, "shape": shape, "padding_idx": _padding_normalize(shape[axis], padding_idx)}


def _scatter_aval(g: Aval, indices: Aval, axis: int, shape: tuple[int, ...], padding_idx: int | None) -> Aval:
    _check_indices(indices)
    same_float_dtype(g)
    expected = shape[:axis] + indices.shape + shape[axis + 1:]
    if g.shape != expected:
        raise ShapeError(f"g of shape {g.shape} does not match indices {indices.shape} scattered along axis {axis} "
                         f"of {shape} (want {expected})")
    return Aval(shape, g.dtype)


# From these sizes the sparse product beats np.add.at (benchmarks/scatter_add.py); np.add.at has a
# fast path for single elements (width 1), where it is ten times faster than the product.
_SPARSE_FROM_ELEMENTS = 4096
_SPARSE_FROM_WIDTH = 8


def _scatter_rows(out: np.ndarray, g: np.ndarray, indices: np.ndarray) -> None:
    """out[i] = Σ_{k: indices[k] = i} g[k] along axis 0, as the product of a 0/1 CSR matrix
    (row i holds a 1 in each column k with indices[k] = i) with g's rows.

    np.add.at applies one row at a time; the sparse product is one compiled loop
    (1.3 to 10 times faster for embedding-sized rows, see benchmarks/scatter_add.py). It
    allocates, outside the plan, the matrix (about 24 bytes per index) and the product (the
    result's size, copied into ``out``): SciPy's product has no ``out=``.
    """
    from scipy.sparse import csr_matrix

    rows, count = out.shape[0], indices.size
    flat = indices.reshape(-1)
    flat = np.where(flat < 0, flat + rows, flat)
    columns = np.argsort(flat, kind="stable")
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=rows), out=indptr[1:])
    matrix = csr_matrix((np.ones(count, dtype=out.dtype), columns, indptr), shape=(rows, count))
    np.copyto(out.reshape(rows, -1), matrix @ g.reshape(count, -1))


def _scatter_kernel(out: np.ndarray, g: np.ndarray, indices: np.ndarray, axis: int, shape: tuple[int, ...],
                    padding_idx: int | None) -> None:
    width = out.size // out.shape[0] if out.size else 0
    if axis == 0 and g.size >= _SPARSE_FROM_ELEMENTS and width >= _SPARSE_FROM_WIDTH and out.flags.c_contiguous:
        _scatter_rows(out, g, indices)
    else:
        out[...] = 0
        np.add.at(out, (slice(None),) * axis + (indices,) if axis else indices, g)  # a bare array: NumPy's fast path
    if padding_idx is not None:
        out[(slice(None),) * axis + (padding_idx,)] = 0


def _scatter_vjp(gg: Value, y: Value, g: Value, indices: Value, axis: int, shape: tuple[int, ...],
                 padding_idx: int | None) -> Value:
    """∂out[i]/∂g[k] = [indices[k] = i ≠ padding_idx]: J^T gg is gg taken at the indices,
    zero where they name the padding row."""
    if padding_idx is not None:
        keep = np.ones(shape[axis], dtype=gg.dtype)
        keep[padding_idx] = 0
        gg = gg * Value(constant_node(gg.graph, keep.reshape((-1,) + (1,) * (len(shape) - axis - 1)), None))
    return take_op(gg, indices, axis=axis)


scatter_add_op = Primitive(
    "scatter_add",
    infer=_scatter_aval,
    normalize=_scatter_normalize,
    kernel=_scatter_kernel,
    vjp=[_scatter_vjp, ZERO],
    flops=lambda ins, out, **attrs: ins[0].size,
    int_operands=frozenset({1}),
    check_operands=lambda g, indices, axis, shape, padding_idx: _fed_indices_out_of_range(indices, shape[axis], axis),
    index_bound=lambda k, g, indices, axis, shape, padding_idx: shape[axis] if k == 1 else None,
    shape_attrs=frozenset({"shape"}),
    doc="Zeros of ``shape`` plus g added at the indices along an axis (repeats add; padding_idx stays 0).  "
        "J^T: gg taken at the indices.",
)


def scatter_add(g: Any, indices: Any, axis: int, shape: Sequence[int], padding_idx: int | None = None,
                name: str | None = None) -> Value:
    """Zeros of ``shape`` with the slices of ``g`` added at ``indices`` along ``axis``: the
    J^T of :func:`take` (``padding_idx``, if given, is a slice left at zero: the J^T of
    :func:`embedding`)."""
    return scatter_add_op(g, indices, axis=axis, shape=shape, padding_idx=padding_idx, name=name)


# --- x[key]: basic entries, at most one gather -----------------------------------------------


def _advanced_entry(entry: Any, x: Value, position: int) -> Any | None:
    """The entry as gather indices (an int Value or an int array), None if it is a basic entry;
    a GraphError for what graphc does not index with."""
    where = f"index entry {position} of {x.node.describe()}"
    if isinstance(entry, Value):
        if entry.dtype in INT_DTYPES:
            return entry
        raise GraphError(
            f"{where}: a {entry.dtype.name} Value {entry.node.describe()} cannot index; a comparison's 0/1 mask "
            "cannot select elements (the result's shape would depend on the data): use gc.where(mask, x, 0) "
            "to zero the others, or gather int indices with gc.take"
        )
    if entry is None or entry is Ellipsis or isinstance(entry, slice):
        if isinstance(entry, slice) and any(isinstance(b, Value) for b in (entry.start, entry.stop, entry.step)):
            raise GraphError(
                f"{where}: a Value as a slice bound ({entry!r:.80}); slice bounds must be Python ints, known when "
                "the graph is built. To pick positions known only at run time, gather them: gc.take(x, indices, axis)"
            )
        return None
    if isinstance(entry, (bool, np.bool_)):
        raise GraphError(f"{where}: {entry!r} is a boolean mask; graphc has no boolean indexing: use gc.where(mask, x, 0)")
    if is_int(entry):
        return None
    if isinstance(entry, (list, tuple, np.ndarray)):
        array = np.asarray(entry)
        if array.size == 0 and array.dtype.kind == "f":
            array = array.astype(np.int64)
        if array.dtype.kind == "b":
            raise GraphError(f"{where}: a boolean mask; graphc has no boolean indexing (the result's shape would "
                             "depend on the data): use gc.where(mask, x, 0) to zero the unselected elements")
        if array.dtype.kind not in "iu":
            raise GraphError(f"{where}: an array of {array.dtype} cannot index; indices are ints")
        return array.astype(np.int64)
    raise GraphError(f"{where}: cannot index with a {type(entry).__name__}; use ints, slices, None, ..., "
                     "or one int array, list or int Value (a gather)")


def _result_dims(entries: Sequence[Any], ndim: int) -> list[int]:
    """How many result dimensions each basic entry gives (an Ellipsis: the axes it spans)."""
    consumed = sum(e is not None and e is not Ellipsis for e in entries)
    return [max(ndim - consumed, 0) if e is Ellipsis else (0 if is_int(e) else 1) for e in entries]


def getitem(x: Any, key: Any, name: str | None = None) -> Value:
    """``x[key]`` as NumPy reads it, for ints, slices, ``None``, ``...`` and at most one integer
    array, list or int Value (which gathers along its axis, :func:`take`).

    The basic part is one view (:data:`getitem_op`). NumPy places the gathered
    dimensions where the array stands when it and the int entries are next to one
    another in the key, and first otherwise; so does this. Boolean masks, Values as
    slice bounds and more than one array are GraphErrors that say what to use.
    """
    if not isinstance(x, Value):
        raise GraphError(f"getitem needs a graph Value to index, got {type(x).__name__}")
    entries = list(key) if isinstance(key, tuple) else [key]
    gathers = [(k, idx) for k, entry in enumerate(entries) if (idx := _advanced_entry(entry, x, k)) is not None]
    if len(gathers) > 1:
        raise GraphError(
            f"indexing {x.node.describe()} with {len(gathers)} integer arrays (entries "
            f"{', '.join(str(k) for k, _ in gathers)}): graphc gathers along one axis at a time. Index one "
            "axis with an array, or flatten the axes first: gc.take(x.reshape(-1, ...), rows * n + cols, axis=0)"
        )
    if not gathers:
        return _basic_index(x, entries, name)
    position, indices = gathers[0]
    entries[position] = slice(None)
    whole = all(e is Ellipsis or e == slice(None) for e in entries)
    basic = x if whole else _basic_index(x, entries, None)
    source_axis = _source_axes(entries, x.ndim)[position]
    _check_constant_indices(f"x[...] of {x.node.describe()}: the gather along axis {source_axis}", x, indices,
                            source_axis)
    axis = sum(_result_dims(entries, x.ndim)[:position])
    width = np.ndim(indices) if not isinstance(indices, Value) else indices.ndim  # the gathered dimensions
    if not (_gathered_first(entries, position) and axis and width):
        return take_op(basic, indices, axis=axis, name=name)
    from graphc.ops.shape import transpose

    gathered = take_op(basic, indices, axis=axis)
    order = list(range(axis, axis + width)) + [d for d in range(gathered.ndim) if not axis <= d < axis + width]
    return transpose(gathered, tuple(order), name=name)


def _source_axes(entries: Sequence[Any], ndim: int) -> list[int | None]:
    """The axis of x each entry reads (None for None and ...)."""
    consumed = sum(e is not None and e is not Ellipsis for e in entries)
    axes: list[int | None] = []
    axis = 0
    for entry in entries:
        if entry is Ellipsis:
            axes.append(None)
            axis += max(ndim - consumed, 0)
        elif entry is None:
            axes.append(None)
        else:
            axes.append(axis)
            axis += 1
    return axes


def _basic_index(x: Value, entries: list, name: str | None) -> Value:
    """The view ``x[entries]``; on a batch axis (None) only a whole slice keeps the batch."""
    try:
        return getitem_op(x, index=tuple(entries), name=name)
    except GraphError:
        if x.aval.has_batch:
            for entry, axis in zip(entries, _source_axes(entries, x.ndim)):
                if axis is not None and axis < x.ndim and x.shape[axis] is None and entry != slice(None):
                    raise GraphError(
                        f"x[...] of {x.node.describe()}: entry {entry!r:.40} indexes axis {axis}, the batch axis "
                        "(None), whose size is known only when a run gives it; keep it whole (:) and index the "
                        "other axes, or index the program specialised for a size (prog.specialize(size))"
                    ) from None
        raise


def _gathered_first(entries: Sequence[Any], position: int) -> bool:
    """Whether NumPy puts the gathered dimensions first: the array and the int entries
    (advanced indices all, then) are not one run of neighbours in the key."""
    advanced = sorted({position} | {k for k, e in enumerate(entries) if is_int(e)})
    return advanced[-1] - advanced[0] + 1 != len(advanced)
