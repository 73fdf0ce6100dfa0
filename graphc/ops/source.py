"""Source nodes: inputs (fed at each run), params (with a stored value) and constants."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Value, current_graph
from graphc.ops.core import Primitive, ShapeError, constant_node


def _no_infer(**attrs: Any) -> Aval:
    raise ShapeError("source nodes are built by gc.input, gc.param and gc.constant")


input_op = Primitive("input", infer=_no_infer, kernel=None, source=True, flops=lambda *a, **k: 0)
param_op = Primitive("param", infer=_no_infer, kernel=None, source=True, flops=lambda *a, **k: 0)
const = Primitive("const", infer=_no_infer, kernel=None, source=True, flops=lambda *a, **k: 0)


def _check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise GraphError(f"{name!r}: shape must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise GraphError(f"{name!r}: shape {dims} has a negative dimension")
    return dims


def _check_dtype(name: str, dtype: Any, allowed: Sequence[np.dtype]) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise GraphError(f"{name!r}: {dtype!r} is not a dtype") from None
    if dt not in allowed:
        raise GraphError(f"{name!r}: dtype {dt.name} is not supported; use one of {', '.join(d.name for d in allowed)}")
    return dt


def input(name: str, shape: Sequence[int], dtype: Any = "float32") -> Value:  # noqa: A001
    """A value fed by name at every run: ``gc.input("x", shape=(8, 4))``.

    Float inputs can be differentiated; int32/int64 inputs serve as labels.
    """
    graph = current_graph()
    aval = Aval(_check_shape(name, shape), _check_dtype(name, dtype, FLOAT_DTYPES + INT_DTYPES))
    return Value(graph.add(input_op, (), {}, aval, name))


def glorot_uniform(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """U(-a, a) with a = √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, 1)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def default_init(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Glorot-uniform for matrices (and stacks of them), zeros for vectors and scalars."""
    if len(shape) >= 2:
        return glorot_uniform(shape, dtype, rng)
    return np.zeros(shape, dtype)


Init = Callable[[tuple[int, ...], np.dtype, np.random.Generator], np.ndarray]


def param(
    name: str,
    shape: Sequence[int],
    dtype: Any = "float32",
    init: Init | np.ndarray | float | None = None,
    seed: int | None = None,
) -> Value:
    """A trainable value with a stored array, fed by name or read from storage.

    ``init`` is an array (copied), a number (filled), or a callable
    ``init(shape, dtype, rng)``; by default :func:`default_init` with a
    generator seeded from ``seed`` or, when none is given, from the name, so a
    graph is built the same way every time. Compiled ``updates`` write the
    stored array in place, and every program of the graph sees the new value.
    """
    graph = current_graph()
    aval = Aval(_check_shape(name, shape), _check_dtype(name, dtype, FLOAT_DTYPES))
    rng = np.random.default_rng(zlib.crc32(name.encode()) if seed is None else seed)
    if init is None:
        init = default_init
    data = init(aval.shape, aval.dtype, rng) if callable(init) else init
    data = np.array(np.broadcast_to(np.asarray(data), aval.shape) if np.ndim(data) == 0 else data)
    if data.shape != aval.shape:
        raise GraphError(f"param {name!r}: init has shape {data.shape}, expected {aval.shape}")
    node = graph.add(param_op, (), {}, aval, name)
    node.data = np.array(data, dtype=aval.dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    return Value(node)


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Value:
    """A constant of the open graph (arrays are copied and made read-only)."""
    node = constant_node(current_graph(), value, None if dtype is None else np.dtype(dtype))
    if name:
        node.name = name
    return Value(node)
