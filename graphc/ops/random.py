"""Random numbers as a pure function of a key: uniform, and dropout built on it.

``uniform(key, shape)`` fills its output from a Philox counter-based generator
keyed by ``(key, stream)``: the int ``key`` is fed at each run (a step counter,
say) and ``stream`` tells the uniform nodes of one graph apart, so CSE never
merges two draws. The same key gives the same numbers however often the node
runs: a recomputed dropout mask is the mask the forward pass drew (PyTorch has
to save and restore its generator's state around a checkpoint for this; here
it holds by construction). The numbers are drawn in float64 and rounded for a
float32 graph, so a model and its float64 copy see the same masks.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Value, is_int, is_real
from graphc.ops import elementwise as E
from graphc.ops.core import ZERO, Primitive, ShapeError, as_dtype, as_shape, constant_node

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "uniform", "dropout",
]


def _uniform_aval(key: Aval, shape: tuple[int, ...], dtype: str, stream: int) -> Aval:
    if key.dtype not in INT_DTYPES or key.shape != ():
        raise ShapeError(f"the key must be an int32 or int64 scalar, got {key.dtype.name} of shape {key.shape}")
    return Aval(shape, np.dtype(dtype))


def _uniform_normalize(key: Aval, shape: Sequence[int], dtype: Any = "float32", stream: int | None = None) -> dict[str, Any]:
    if stream is not None and not (is_int(stream) and stream >= 0):
        raise ShapeError(f"stream must be an int >= 0 or None, got {stream!r}")
    return {
        "shape": as_shape(shape),
        "dtype": as_dtype(dtype, FLOAT_DTYPES).name,
        "stream": None if stream is None else int(stream),
    }


def _stream_of_node(attrs: dict[str, Any], node_id: int) -> dict[str, Any]:
    """A default stream is the node's id in its own graph: one stream per node, never shared."""
    return attrs if attrs["stream"] is not None else {**attrs, "stream": node_id}


def generator(key: int, stream: int) -> np.random.Generator:
    """The Philox generator of ``(key, stream)`` (both reduced mod 2⁶⁴)."""
    words = np.array([int(key) % 2**64, int(stream) % 2**64], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=words))


def _uniform_scratch(key: Aval, shape: tuple[int, ...], dtype: str, stream: int) -> list[Aval]:
    """float32 draws go through float64 (the numbers of a float64 graph, rounded)."""
    return [Aval(shape, np.dtype(np.float64))] if dtype == "float32" else []


_BELOW_ONE_32 = np.nextafter(np.float32(1), np.float32(0))


def _uniform_kernel(out: np.ndarray, key: np.ndarray, shape: tuple[int, ...], dtype: str, stream: int,
                    scratch: Sequence[np.ndarray] = ()) -> None:
    draws = scratch[0] if scratch else out
    generator(int(key), stream).random(out=draws)
    if scratch:
        np.minimum(draws, _BELOW_ONE_32, out=out, casting="same_kind")  # rounding must not reach 1.0


uniform_op = Primitive(
    "uniform",
    infer=_uniform_aval,
    normalize=_uniform_normalize,
    kernel=_uniform_kernel,
    scratch=_uniform_scratch,
    vjp=[ZERO],
    flops=lambda ins, out, **attrs: 4 * out.size,
    int_operands=frozenset({0}),
    with_node_id=_stream_of_node,
    shape_attrs=frozenset({"shape"}),
    foldable=False,  # a key known at compile time still draws at run time: no megabyte constants of noise
    doc="U[0, 1) numbers of the given shape, a pure function of (key, stream).",
)


def uniform(key: Any, shape: Sequence[int], dtype: Any = "float32", *, stream: int | None = None,
            name: str | None = None) -> Value:
    """Numbers uniform in [0, 1), drawn by Philox from ``(key, stream)``.

    ``key``: an int32/int64 scalar Value (``gc.input("step", (), "int64")``).
    ``stream`` defaults to the node's position in the graph (the key's graph
    when it is a Value, else the open one).
    """
    return uniform_op(key, shape=shape, dtype=dtype, stream=stream, name=name)


def dropout(x: Any, key: Any, rate: float, train: bool = True, name: str | None = None) -> Value:
    """Inverted dropout: ``x · [u > rate] / (1 - rate)`` with ``u = uniform(key, x.shape)``.

    Zeroes each element with probability ``rate`` and scales the rest so that the
    expectation is unchanged; the gradient flows through the kept elements only.
    ``train=False`` (evaluation) returns ``x`` itself and adds no node.
    """
    if not isinstance(x, Value):
        raise GraphError(f"dropout needs a graph Value to drop from, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise GraphError(f"dropout of {x.node.describe()}: x must be float32 or float64, got {x.dtype.name}")
    if not (is_real(rate) and 0.0 <= rate < 1.0):
        raise GraphError(
            f"dropout of {x.node.describe()}: rate must be in [0, 1), got {rate!r}; "
            "give the probability of zeroing an element as a float"
        )
    if not isinstance(train, (bool, np.bool_)):
        raise GraphError(f"dropout of {x.node.describe()}: train must be True or False, got {train!r:.40}")
    if not train:
        return x
    if not isinstance(key, Value):  # a Python int key: a constant of x's graph, not of the open one
        key = Value(constant_node(x.graph, key, None, f"dropout of {x.node.describe()}: key"))
    elif key.graph is not x.graph:
        raise GraphError(
            f"dropout of {x.node.describe()}: the key {key.node.describe()} belongs to another graph; "
            "use a key input of x's graph"
        )
    keep = E.greater(uniform(key, x.shape, x.dtype), float(rate))
    return E.mul(E.mul(x, keep), 1.0 / (1.0 - float(rate)), name=name)
