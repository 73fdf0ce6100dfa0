"""What a primitive is, the registry that finds it, and how a node is built.

A :class:`Primitive` keeps every fact about one φ together (JAX's autodidax
keeps them in tables keyed by the primitive; PyTensor on one ``Op`` class):

- ``infer``: the shape rule, ``infer(*in_avals, **attrs) -> Aval``; it raises
  :class:`ShapeError` with a reason, which :func:`bind` turns into a
  :class:`~graphc.GraphError` naming the node, op and shapes;
- ``kernel``: the NumPy implementation, ``kernel(out, *inputs, **attrs)``,
  writing its result into the preallocated ``out`` (a view op instead returns
  a view of its input: ``kernel(*inputs, **attrs) -> ndarray``);
- ``vjp``: one rule per input, ``rule(g, out, *inputs, **attrs) -> Value``,
  the Jacobian-transpose product ``J^T_{φ|input} · g`` written with graph ops,
  so the gradient is a graph of the same IR; :data:`ZERO` for an input the
  result does not depend on smoothly (masks, labels), ``None`` where no rule
  exists (differentiating through it raises, naming the op);
- ``flops``: ``flops(in_avals, out_aval, **attrs) -> int``, the cost model;
- ``normalize``: ``normalize(*in_avals, **attrs) -> attrs`` puts attributes in
  canonical form (axes sorted and non-negative), so equal nodes compare equal;
- ``elementwise`` / ``view`` / ``scratch``: facts the memory planner uses
  (``scratch(*in_avals, **attrs) -> [Aval]`` lists temporaries the kernel
  receives as ``scratch=(...)``);
- ``with_node_id``: ``with_node_id(attrs, node_id) -> attrs`` fills in the
  attributes that depend on the new node's id (a random op's stream), called
  by :meth:`Graph.add <graphc.ir.Graph.add>` when the id is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, Aval, Node, Value, current_graph

VjpRule = Callable[..., Value]


class ShapeError(Exception):
    """Raised by shape rules; :func:`bind` adds the node, op and input shapes."""


class _Zero:
    """The gradient that is zero by structure (PyTensor's DisconnectedType)."""

    def __repr__(self) -> str:
        return "ZERO"


ZERO = _Zero()

_REGISTRY: dict[str, "Primitive"] = {}


def _elementwise_flops(in_avals: Sequence[Aval], out: Aval, **attrs: Any) -> int:
    return out.size


@dataclass(eq=False)
class Primitive:
    """One φ: shape rule, NumPy kernel, VJP rules and cost, defined in one place."""

    name: str
    infer: Callable[..., Aval]
    kernel: Callable[..., Any] | None
    vjp: Sequence[VjpRule | _Zero | None] | Callable[[int], VjpRule | _Zero | None] | None = None
    flops: Callable[..., int] = _elementwise_flops
    elementwise: bool = False
    view: bool = False
    scratch: Callable[..., list[Aval]] | None = None
    normalize: Callable[..., dict[str, Any]] | None = None
    source: bool = False
    int_operands: frozenset[int] = field(default_factory=frozenset)
    with_node_id: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.name in _REGISTRY:
            raise GraphError(f"an op named {self.name!r} is registered already (defop(..., replace=True) redefines one of yours)")
        _REGISTRY[self.name] = self
        if self.doc:
            self.__doc__ = self.doc

    def __call__(self, *operands: Any, name: str | None = None, **attrs: Any) -> Value:
        """Build a node of this op: ``prim(x, y, axis=1)``."""
        return bind(self, operands, attrs, name)

    def vjp_rule(self, index: int) -> VjpRule | _Zero | None:
        """The rule giving ``J^T_{φ|input index} · g``, :data:`ZERO`, or None if undefined."""
        if self.vjp is None:
            return None
        if callable(self.vjp):
            return self.vjp(index)
        return self.vjp[index]

    def __repr__(self) -> str:
        return f"<Primitive {self.name}>"


def lookup(name: str) -> Primitive:
    """The registered primitive called ``name`` (used to load serialised plans)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphError(f"no op named {name!r} is registered (custom ops must be defined before use)") from None


def registered() -> dict[str, Primitive]:
    """All registered primitives by name."""
    return dict(_REGISTRY)


def defop(
    name: str,
    *,
    infer: Callable[..., Aval],
    kernel: Callable[..., Any],
    vjp: Sequence[VjpRule | _Zero | None] | Callable[[int], VjpRule | _Zero | None] | None = None,
    flops: Callable[..., int] = _elementwise_flops,
    elementwise: bool = False,
    scratch: Callable[..., list[Aval]] | None = None,
    normalize: Callable[..., dict[str, Any]] | None = None,
    int_operands: Sequence[int] = (),
    doc: str = "",
    replace: bool = False,
) -> Primitive:
    """Define a new φ; the returned primitive builds nodes when called.

    ``elementwise=True`` promises that the kernel stays correct when ``out`` is
    the very array of an operand of its shape (the planner then reuses a dying
    operand's memory): read each operand element before writing it. ``scratch``
    lists temporaries the kernel receives as ``scratch=(...)``; ``int_operands``
    are operand positions that take integer arrays (labels). ``replace=True``
    redefines an op of the same name defined earlier with ``defop`` (a notebook
    cell run twice); graphc's own ops cannot be replaced.

    Example — softplus, ``y = log(1 + eˣ)`` with ``∂y/∂x = σ(x)``::

        softplus = gc.defop(
            "softplus",
            infer=lambda x: x,                                # same shape and dtype
            kernel=lambda out, x: np.logaddexp(0, x, out=out),
            vjp=[lambda g, y, x: g * gc.sigmoid(x)],          # one rule per input
            elementwise=True,
        )
        y = softplus(x)
    """
    previous = _REGISTRY.get(name)
    if previous is not None and replace:
        if previous.infer.__module__.startswith("graphc."):
            raise GraphError(f"{name!r} is one of graphc's own ops and cannot be replaced")
        del _REGISTRY[name]
    return Primitive(
        name=name, infer=infer, kernel=kernel, vjp=vjp, flops=flops, elementwise=elementwise,
        scratch=scratch, normalize=normalize, int_operands=frozenset(int_operands), doc=doc,
    )


# --- building nodes -----------------------------------------------------------


def _graph_of(operands: Sequence[Any]):
    graph = None
    for item in operands:
        if isinstance(item, Value):
            if graph is None:
                graph = item.graph
            elif item.graph is not graph:
                raise GraphError(
                    f"{item.node.describe()} belongs to graph {item.graph.name!r}, "
                    f"but other operands belong to graph {graph.name!r}"
                )
    return graph if graph is not None else current_graph()


def _float_dtype_of(operands: Sequence[Any]) -> np.dtype | None:
    for item in operands:
        if isinstance(item, Value) and item.dtype in FLOAT_DTYPES:
            return item.dtype
    return None


def constant_node(graph, value: Any, dtype: np.dtype | None) -> Node:
    """A constant node holding a read-only copy of ``value`` (cast to ``dtype`` if given)."""
    array = np.array(value, dtype=dtype)
    if array.dtype == np.float16 or array.dtype.kind not in "fiub":
        raise GraphError(f"cannot make a constant of dtype {array.dtype}")
    if array.dtype.kind == "f" and array.dtype not in FLOAT_DTYPES:
        array = array.astype(np.float32)
    array.setflags(write=False)
    from graphc.ops.source import const

    node = graph.add(const, (), {}, Aval(array.shape, array.dtype))
    node.data = array
    return node


def _operand_node(graph, item: Any, dtype: np.dtype | None) -> Node:
    if isinstance(item, Value):
        return item.node
    if isinstance(item, Node):
        return item
    if isinstance(item, (bool, int, float, np.ndarray, np.generic, list, tuple)):
        return constant_node(graph, item, dtype)
    raise GraphError(f"cannot use a {type(item).__name__} as an operand of a graph op")


def describe_operands(nodes: Sequence[Node]) -> str:
    return ", ".join(f"{n.name!r} {n.shape} {n.dtype.name}" for n in nodes)


def bind(prim: Primitive, operands: Sequence[Any], attrs: dict[str, Any] | None = None, name: str | None = None) -> Value:
    """Add ``prim(*operands; **attrs)`` to the operands' graph and return its Value.

    Python scalars and arrays become constants of the float dtype of the Value
    operands (JAX's weak typing), except at the op's integer operand positions.
    The shape rule runs here, so a mismatch is reported when the node is built.
    """
    attrs = attrs or {}
    graph = _graph_of(operands)
    float_dtype = _float_dtype_of(operands)
    nodes = tuple(
        _operand_node(graph, item, None if i in prim.int_operands else float_dtype)
        for i, item in enumerate(operands)
    )
    in_avals = [n.aval for n in nodes]
    try:
        if prim.normalize is not None:
            attrs = prim.normalize(*in_avals, **attrs)
        aval = prim.infer(*in_avals, **attrs)
    except (ShapeError, ValueError) as err:  # GraphError is a ValueError: the context is added once more
        label = f" {name!r}" if name else ""
        raise GraphError(f"{prim.name}{label}: {err}; operands: {describe_operands(nodes)}") from None
    except TypeError as err:
        raise GraphError(f"{prim.name}: bad arguments ({err}); operands: {describe_operands(nodes)}") from None
    return Value(graph.add(prim, nodes, attrs, aval, name))


# --- helpers for shape rules --------------------------------------------------


def same_float_dtype(*avals: Aval) -> np.dtype:
    """The common float dtype of the operands; mixed or non-float dtypes are an error."""
    dtypes = {a.dtype for a in avals}
    if len(dtypes) != 1:
        raise ShapeError(f"dtypes differ ({', '.join(sorted(d.name for d in dtypes))}); cast one side first")
    (dtype,) = dtypes
    if dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects float32 or float64, got {dtype.name}")
    return dtype


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting of shapes, as a ShapeError when they do not broadcast."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def normalize_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ShapeError(f"axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim if ndim else 0


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``None`` → all axes; ints → sorted, non-negative, unique axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    result = sorted({normalize_axis(int(a), ndim) for a in axes})
    if len(result) != len(axes):
        raise ShapeError(f"axis {axis} repeats an axis")
    return tuple(result)
