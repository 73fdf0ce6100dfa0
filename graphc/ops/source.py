"""Source nodes: inputs (fed at each run), params (with a stored value) and constants.

A source is a kind of node (``node.kind``), not an op: it applies no primitive,
has no inputs, and the plan gives it a buffer of its kind instead of an instruction.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Value, check_name, current_graph, is_int, is_real
from graphc.ops.core import ShapeError, as_dtype, as_shape, constant_node

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "input", "param", "constant",
]


def _check_shape(kind: str, name: str, shape: Sequence[int]) -> tuple[int, ...]:
    try:
        return as_shape(shape)
    except ShapeError as err:
        raise GraphError(f"{kind} {name!r}: {err}; give the shape as a tuple of ints >= 0, e.g. (8, 4)") from None


def _check_input_shape(name: str, shape: Sequence[int | None]) -> tuple[int | None, ...]:
    """An input's shape: ints >= 0, and ``None`` where the batch size goes."""
    if not isinstance(shape, (tuple, list)) or None not in shape:
        return _check_shape("input", name, shape)
    fixed = _check_shape("input", name, [1 if d is None else d for d in shape])
    return tuple(None if d is None else f for d, f in zip(shape, fixed))


def _check_dtype(kind: str, name: str, dtype: Any, allowed: Sequence[np.dtype]) -> np.dtype:
    try:
        return as_dtype(dtype, allowed)
    except ShapeError as err:
        raise GraphError(f"{kind} {name!r}: {err}") from None


def input(name: str, shape: Sequence[int | None], dtype: Any = "float32") -> Value:  # noqa: A001
    """A value fed by name at every run: ``gc.input("x", shape=(8, 4))``.

    Float inputs can be differentiated; int32/int64 inputs serve as labels. A
    ``None`` dimension is the batch size (``shape=(None, 784)``): one size per run,
    shared by every input of the graph; a program of such a graph specialises for
    each size it runs with (see :mod:`graphc.specialize`).
    """
    graph = current_graph()
    check_name(name, "input name")
    aval = Aval(_check_input_shape(name, shape), _check_dtype("input", name, dtype, FLOAT_DTYPES + INT_DTYPES))
    return Value(graph.add_source("input", aval, name))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: ``(in, out)`` for a matrix used as ``x @ W`` and for
    stacks of them (3-D); ``(C·kH·kW, O·kH·kW)`` for conv2d's ``(O, C/groups, kH, kW)``
    (4-D and more, as torch counts a convolution's fans)."""
    if len(shape) < 2:
        return 1, 1
    if len(shape) <= 3:
        return shape[-2], shape[-1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def glorot_uniform(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """U(-a, a) with a = √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), fans by :func:`_fans`."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / max(fan_in + fan_out, 1))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def default_init(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Glorot-uniform for matrices, stacks of them and conv2d weights; zeros for vectors and scalars."""
    if len(shape) >= 2:
        return glorot_uniform(shape, dtype, rng)
    return np.zeros(shape, dtype)


@dataclass(frozen=True)
class NormalInit:
    """``init=NormalInit(std)``: draws from N(mean, std²), e.g. He's std = √(2 / fan) for a ReLU layer.

    The published models use it (GPT-2's std 0.02; ResNet's and VGG's He init).
    Like :func:`default_init` it is graphc's own, so the param's array is only
    drawn when first read: building a model of 10^8 parameters allocates none.
    """

    std: float
    mean: float = 0.0

    def __post_init__(self) -> None:
        if not (is_real(self.std) and is_real(self.mean) and math.isfinite(self.std) and math.isfinite(self.mean)
                and self.std >= 0):
            raise GraphError(f"NormalInit(std={self.std!r}, mean={self.mean!r}): give a finite std >= 0 and a finite mean")

    def __call__(self, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
        draws = rng.standard_normal(size=shape, dtype=np.float64 if dtype == np.float64 else np.float32)
        return (draws * self.std + self.mean).astype(dtype, copy=False)


def _is_deferrable(init: Any) -> bool:
    """Whether ``init`` is one of graphc's initialisers, which give finite arrays of the right shape."""
    return init is None or init is default_init or init is glorot_uniform or isinstance(init, NormalInit)


PARAM_ROLES = ("param", "state")
"""What a param's stored array is for: trained (``"param"``), or kept and updated by plans (``"state"``)."""

Init = Callable[[tuple[int, ...], np.dtype, np.random.Generator], np.ndarray]


def param(
    name: str,
    shape: Sequence[int],
    dtype: Any = "float32",
    init: Init | np.ndarray | float | None = None,
    seed: int | None = None,
    *,
    role: str = "param",
) -> Value:
    """A value with a stored array, fed by name or read from storage.

    ``init`` is an array (copied), a number (filled), or a callable
    ``init(shape, dtype, rng)``; by default :func:`default_init` with a
    generator seeded from ``seed`` or, when none is given, from the name, so a
    graph is built the same way every time. graphc's own initialisers
    (:func:`default_init`, :func:`glorot_uniform`, :class:`NormalInit`) run when
    the stored value is first read (a run, ``.value``, saving), not when the
    param is built, so building and planning a large model allocates nothing;
    any other init runs, and is checked, at once. Compiled ``updates`` write
    the stored array in place, and every program of the graph sees the new value.

    ``role`` says what the stored array is for: ``"param"`` (the default) is
    trained; ``"state"`` is stored and updated by plans but never trained, as
    the moments of :mod:`graphc.optim`'s optimizers (which create theirs).
    ``node.role`` and ``Value.role`` read it; ``Program.params`` and
    ``Program.state`` report the stored arrays of each role.
    """
    graph = current_graph()
    check_name(name, "param name")
    if not (isinstance(role, str) and role in PARAM_ROLES):
        raise GraphError(f"param {name!r}: role={role!r} is not a param role; choose one of {', '.join(map(repr, PARAM_ROLES))}")
    if isinstance(shape, (tuple, list)) and None in shape:
        raise GraphError(
            f"param {name!r}: shape {tuple(shape)} holds the batch size (None), but a param has one stored value "
            "of fixed shape; give every dimension as an int (only inputs take the batch size)"
        )
    aval = Aval(_check_shape("param", name, shape), _check_dtype("param", name, dtype, FLOAT_DTYPES))
    if seed is not None and not (is_int(seed) and seed >= 0):
        raise GraphError(f"param {name!r}: seed must be an int >= 0 or None, got {seed!r}")
    rng_seed = zlib.crc32(name.encode()) if seed is None else int(seed)
    init = default_init if init is None else init
    if _is_deferrable(init):
        node = graph.add_source("param", aval, name)
        node.defer_data(lambda: _initial_value(name, aval, init, np.random.default_rng(rng_seed)))
    else:
        data = _initial_value(name, aval, init, np.random.default_rng(rng_seed))
        node = graph.add_source("param", aval, name)
        node.data = data
    node.role = role
    return Value(node)


def _initial_value(name: str, aval: Aval, init: Init | np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """The param's first stored value: finite numbers of its shape, converted to its dtype.

    A number fills the shape; an array of any real dtype is converted (so
    ``np.random.randn`` can initialise a float32 param); a callable is called
    as ``init(shape, dtype, rng)``.
    """
    if callable(init):
        try:
            init = init(aval.shape, aval.dtype, rng)
        except TypeError as err:
            raise GraphError(f"param {name!r}: init must be called as init(shape, dtype, rng), and failed: {err}") from None
    try:
        data = np.asarray(init)
    except (ValueError, TypeError) as err:
        raise GraphError(f"param {name!r}: init {init!r:.60} is not a rectangular array of numbers ({err})") from None
    if data.dtype.kind not in "fiu":
        raise GraphError(f"param {name!r}: init has dtype {data.dtype}; give real numbers (an array of {aval.dtype.name})")
    if data.ndim == 0:
        data = np.broadcast_to(data, aval.shape)
    if data.shape != aval.shape:
        raise GraphError(f"param {name!r}: init has shape {data.shape}, expected {aval.shape}")
    data = np.array(data, dtype=aval.dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    if not np.isfinite(data).all():
        raise GraphError(f"param {name!r}: init is not finite (it holds NaN or infinity); give finite starting values")
    return data


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Value:
    """A constant of the open graph (arrays are copied and made read-only).

    NaN and infinities are fine; the dtype must be float32/float64 (int32/int64 for labels).
    """
    graph = current_graph()
    if name is not None:
        check_name(name, "constant: name")
    if dtype is not None:
        try:
            dtype = as_dtype(dtype, FLOAT_DTYPES + INT_DTYPES)
        except ShapeError as err:
            raise GraphError(f"constant: {err}") from None
    node = constant_node(graph, value, dtype)
    if name:
        node.name = name
    return Value(node)
