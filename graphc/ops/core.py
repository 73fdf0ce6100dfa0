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
- a view's facts (``view=True``: the kernel returns a view of its one operand,
  bound once when the plan is bound): ``keeps_contiguous(x, y, **attrs) -> bool``
  answers whether the view of a C-contiguous operand is C-contiguous (the
  default, None, answers no); ``needs_contiguous`` says the view exists only
  for a C-contiguous operand (reshape), and for any other the plan copies it
  into storage of its own with :meth:`Primitive.copy_view`, which uses
  ``copy_kernel(out, x, **attrs)`` where the kernel's view would allocate;
- ``check_operands``: ``check_operands(*inputs, **attrs) -> str | None``, a cheap
  run-time check of operand values the shape rule cannot see (labels in
  range, read from the int operands); the runtime calls it before the first
  instruction when those operands are feeds or constants (before any update
  is written), else just before the kernel, and raises the message it returns
  as a GraphError naming the instruction.
- ``fold_of``: for a variadic op that equals a left fold of a binary op over its
  operands (``add_n``: ``((t1 + t2) + t3) + …``), that binary op; the passes
  split such a node into a running fold, so each term is added and freed as it
  arrives (see :func:`graphc.passes.split_accumulations`).
- ``index_bound``: ``index_bound(k, *in_avals, **attrs) -> int | None``: for an
  int operand ``k`` whose values index something (labels, gather indices), the
  ``n`` of the range ``[0, n)`` they must lie in (None for other operands);
  :func:`graphc.zoo.feeds` draws random labels from it.
- ``shape_attrs``: the names of attributes that are shapes (reshape's ``shape``);
  a None in them is the batch size, as in an input's shape (see :func:`infer_with_batch`).
- ``with_node_id``: ``with_node_id(attrs, node_id) -> attrs`` fills in the
  attributes that depend on the new node's id (a random op's stream), called
  by :meth:`Graph.add <graphc.ir.Graph.add>` when the id is allocated.
- ``simplify``: ``simplify(term) -> Term | Apply | None``, the op's algebraic
  identities (``x·1 → x``, ``neg(neg(x)) → x``): given the node as a :class:`Term`
  (its operands after rewriting, constants with their values), the value it equals —
  an existing :class:`Term` or a new :class:`Apply` — or None to keep the node.
  A rule returns only rewrites that are exact: the same bits for every input,
  inf, NaN and the sign of zero included (:func:`graphc.passes.simplify` runs them).
- ``foldable``: whether a node whose operands are all constants may be evaluated
  once at compile time by its kernel (:func:`graphc.passes.fold`); False for an op
  whose result is not a function of its operands alone (random draws).
- ``fused_expr``: for an elementwise op without attributes, the op as a numexpr
  expression of its operands ``{0}``, ``{1}`` (``"({0} + {1})"``), which
  :func:`graphc.passes.fuse` uses to write a chain of such ops as one ``fused``
  node (``compile(fuse=True)``); None for an op that is never fused.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, INT_DTYPES, Aval, Node, Value, check_name, current_graph, is_int

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
    keeps_contiguous: Callable[..., bool] | None = None
    needs_contiguous: bool = False
    copy_kernel: Callable[..., None] | None = None
    scratch: Callable[..., list[Aval]] | None = None
    normalize: Callable[..., dict[str, Any]] | None = None
    int_operands: frozenset[int] = field(default_factory=frozenset)
    with_node_id: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    doc: str = ""
    check_operands: Callable[..., str | None] | None = None
    shape_attrs: frozenset[str] = field(default_factory=frozenset)
    fold_of: "Primitive | None" = None
    index_bound: Callable[..., int | None] | None = None
    simplify: "Callable[[Term], Term | Apply | None] | None" = None
    foldable: bool = True
    fused_expr: str | None = None

    trusted: bool = field(init=False, default=False)  # one of graphc's own ops: its rules need no checking

    def __post_init__(self) -> None:
        self.trusted = getattr(self.infer, "__module__", "").startswith("graphc.")
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

    def view_keeps_contiguous(self, x: Aval, y: Aval, attrs: dict[str, Any]) -> bool:
        """Whether this view of a C-contiguous operand ``x`` is C-contiguous (no unless the op says so)."""
        return self.keeps_contiguous is not None and bool(self.keeps_contiguous(x, y, **attrs))

    def copy_view(self, out: np.ndarray, x: np.ndarray, **attrs: Any) -> None:
        """Write the elements of this view of ``x`` into ``out``, allocating nothing.

        The plan runs a view this way when it cannot bind it (a reshape of a value
        that may not be contiguous): ``copy_kernel`` when the op has one, else
        ``out[...] = kernel(x)``, the view being taken without a copy.
        """
        if self.copy_kernel is not None:
            self.copy_kernel(out, x, **attrs)
        else:
            np.copyto(out, self.kernel(x, **attrs))

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
    view: bool = False,
    keeps_contiguous: Callable[..., bool] | None = None,
    needs_contiguous: bool = False,
    copy_kernel: Callable[..., None] | None = None,
    index_bound: Callable[..., int | None] | None = None,
) -> Primitive:
    """Define a new φ; the returned primitive builds nodes when called.

    ``elementwise=True`` promises that the kernel stays correct when ``out`` is
    the very array of an operand of its shape (the planner then reuses a dying
    operand's memory): read each operand element before writing it. ``scratch``
    lists temporaries the kernel receives as ``scratch=(...)``; ``int_operands``
    are operand positions that take integer arrays (labels). ``replace=True``
    redefines an op of the same name defined earlier with ``defop`` (a notebook
    cell run twice); graphc's own ops cannot be replaced.

    ``scratch(*in_avals, **attrs) -> [Aval]`` declares the temporaries the kernel
    needs: the planner places them in the arena beside the other intermediates
    and the kernel receives them as ``kernel(out, *inputs, scratch=(...), **attrs)``,
    so a run allocates nothing.

    ``view=True`` makes a view op of one operand: ``kernel(x, **attrs)`` returns
    a view of ``x`` (no ``out``), bound once when the program is bound, and the
    result shares the operand's storage. ``keeps_contiguous(x, y, **attrs)``
    says whether the view of a C-contiguous ``x`` is C-contiguous (default: no);
    ``needs_contiguous=True`` says the kernel would copy a non-contiguous
    operand (as ``ndarray.reshape`` does), so for such an operand the plan
    copies the view into storage of its own, with ``copy_kernel(out, x, **attrs)``
    if given, else ``out[...] = kernel(x)``.

    ``index_bound(k, *in_avals, **attrs) -> int | None`` gives, for an int operand
    ``k`` whose values index something, the ``n`` of the range ``[0, n)`` they
    lie in (random feeds of :func:`graphc.zoo.feeds` are drawn from it).

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
    _check_defop_arguments(name, infer, kernel, vjp, flops, int_operands)
    _check_memory_facts(name, elementwise, scratch, view, keeps_contiguous, needs_contiguous, copy_kernel, vjp, index_bound)
    previous = _REGISTRY.get(name)
    if previous is not None and replace:
        if previous.trusted:
            raise GraphError(f"{name!r} is one of graphc's own ops and cannot be replaced")
        del _REGISTRY[name]
    return Primitive(
        name=name, infer=infer, kernel=kernel, vjp=vjp, flops=flops, elementwise=elementwise,
        scratch=scratch, normalize=normalize, int_operands=frozenset(int_operands), doc=doc,
        view=view, keeps_contiguous=keeps_contiguous, needs_contiguous=needs_contiguous, copy_kernel=copy_kernel,
        index_bound=index_bound,
    )


def _check_defop_arguments(name: Any, infer: Any, kernel: Any, vjp: Any, flops: Any, int_operands: Any) -> None:
    """Reject what cannot define an op, when it is defined rather than when it is first used."""
    check_name(name, "defop: the op name")
    for role, rule in (("infer", infer), ("kernel", kernel), ("flops", flops)):
        if not callable(rule):
            raise GraphError(f"defop {name!r}: {role} must be callable, got {type(rule).__name__}")
    if vjp is not None and not callable(vjp):
        if not isinstance(vjp, (list, tuple)):
            raise GraphError(
                f"defop {name!r}: vjp must be a list of rules (one per operand), a function of the operand "
                f"index, or None; got {type(vjp).__name__}"
            )
        for index, rule in enumerate(vjp):
            if rule is not None and rule is not ZERO and not callable(rule):
                raise GraphError(f"defop {name!r}: vjp rule {index} must be callable, ZERO or None; got {rule!r:.40}")
    if not isinstance(int_operands, (list, tuple, set, frozenset)) or not all(is_int(i) and i >= 0 for i in int_operands):
        raise GraphError(f"defop {name!r}: int_operands must be operand positions (ints >= 0), got {int_operands!r}")


def _check_memory_facts(
    name: str, elementwise: Any, scratch: Any, view: Any, keeps_contiguous: Any, needs_contiguous: Any,
    copy_kernel: Any, vjp: Any, index_bound: Any = None,
) -> None:
    """Reject memory facts that contradict each other or are of the wrong type, naming the argument."""
    for role, flag in (("elementwise", elementwise), ("view", view), ("needs_contiguous", needs_contiguous)):
        if not isinstance(flag, (bool, np.bool_)):
            raise GraphError(f"defop {name!r}: {role} must be True or False, got {flag!r:.40}")
    for role, rule in (("scratch", scratch), ("keeps_contiguous", keeps_contiguous), ("copy_kernel", copy_kernel),
                       ("index_bound", index_bound)):
        if rule is not None and not callable(rule):
            raise GraphError(f"defop {name!r}: {role} must be callable or None, got {type(rule).__name__}")
    if view:
        if elementwise or scratch is not None:
            raise GraphError(
                f"defop {name!r}: a view op (view=True) returns a view of its operand and writes no output, "
                "so it cannot be elementwise or have scratch; drop those, or make it an ordinary op (view=False)"
            )
        if isinstance(vjp, (list, tuple)) and len(vjp) != 1:
            raise GraphError(f"defop {name!r}: a view op has one operand, but {len(vjp)} VJP rules are given; give one")
    elif keeps_contiguous is not None or needs_contiguous or copy_kernel is not None:
        raise GraphError(
            f"defop {name!r}: keeps_contiguous, needs_contiguous and copy_kernel describe a view op; "
            "pass view=True as well, or drop them"
        )


# --- simplification rules -------------------------------------------------------


class Term:
    """A node as a simplification rule (``Primitive.simplify``) sees it.

    ``op``, ``attrs`` and ``aval`` (``shape``, ``dtype``) are the node's, ``args``
    its operands after rewriting (Terms too), ``value`` the array of a constant
    (None for any other node) and ``scalar`` the one number all of a constant's
    elements are, bit for bit — seen through views, which only pick and repeat
    elements (a broadcast of the seed 1.0 is all ones) — or None. Rules read
    Terms; they never change a node.
    """

    __slots__ = ("node", "_args", "_args_of", "_terms", "_scalars")

    def __init__(self, node: Node, args: Sequence[Node], args_of: Callable[[Node], Sequence[Node]],
                 scalars: dict[Node, float | int | None] | None = None) -> None:
        self.node = node
        self._args = args
        self._args_of = args_of
        self._terms: tuple[Term, ...] | None = None
        self._scalars = {} if scalars is None else scalars  # per constant node, shared by a sweep's Terms

    @property
    def args(self) -> tuple["Term", ...]:
        if self._terms is None:
            args_of, scalars = self._args_of, self._scalars
            self._terms = tuple([Term(a, args_of(a), args_of, scalars) for a in self._args])
        return self._terms

    @property
    def op(self) -> "Primitive | None":
        return self.node.op

    @property
    def attrs(self) -> dict[str, Any]:
        return self.node.attrs

    @property
    def aval(self) -> Aval:
        return self.node.aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> np.dtype:
        return self.node.dtype

    @property
    def value(self) -> np.ndarray | None:
        return self.node.data if self.node.kind == "const" else None

    @property
    def scalar(self) -> float | int | None:
        """The number every element of this constant (or view of one) is, bit for bit (so -0.0 is not 0.0); else None."""
        term = self
        while term.op is not None and term.op.view:
            (term,) = term.args
        if term.node not in self._scalars:  # a rule asks several times; a large constant is scanned once
            self._scalars[term.node] = _every_element(term.value)
        return self._scalars[term.node]

    def is_number(self, number: float) -> bool:
        """Whether this is a constant whose every element is ``number`` (the sign of a zero included)."""
        value = self.scalar
        return (value is not None and value == number
                and math.copysign(1.0, value) == math.copysign(1.0, number))

    def __repr__(self) -> str:
        return f"<Term {self.node.name}: {self.node.op_name} {self.aval}>"


def _every_element(data: np.ndarray | None) -> float | int | None:
    """The number every element of ``data`` is, bit for bit; None when they differ, or for no array."""
    if data is None or data.size == 0:
        return None
    flat = data.reshape(-1)
    if data.size > 1:
        bits = flat.view(f"u{data.dtype.itemsize}")
        if not bool(np.all(bits == bits[0])):
            return None
    return flat[0].item()


@dataclass(frozen=True)
class Apply:
    """A node a simplification rule asks for: ``prim(*operands; **attrs)``.

    Each operand is a :class:`Term` (a value the program has), another ``Apply``,
    or a number or array: a new constant, of the dtype of the node rewritten
    unless it is an array of its own dtype.
    """

    prim: Primitive
    operands: tuple
    attrs: dict[str, Any] = field(default_factory=dict)


# --- building nodes -----------------------------------------------------------


_SUPPORTED_DTYPES = FLOAT_DTYPES + INT_DTYPES
_OTHER_OPERAND_TYPES = (Node, bool, int, float, np.ndarray, np.generic, list, tuple)  # numbers become constants


def _graph_of(prim: Primitive, operands: Sequence[Any]):
    """The graph of the Value operands (all must share it), else the open graph."""
    graph = None
    for index, item in enumerate(operands):
        if not isinstance(item, Value):
            if not isinstance(item, _OTHER_OPERAND_TYPES):
                raise GraphError(
                    f"{prim.name}: operand {index}: cannot use a {type(item).__name__} as an operand of a graph op; "
                    "operands are Values, numbers or arrays of numbers"
                )
            continue
        if graph is None:
            graph = item.graph
        elif item.graph is not graph:
            same_name = " (another graph of the same name)" if item.graph.name == graph.name else ""
            raise GraphError(
                f"{prim.name}: {item.node.describe()} belongs to another graph than the other operands: "
                f"graph {item.graph.name!r}{same_name}, not {graph.name!r}; build every operand in one graph"
            )
    if graph is not None:
        return graph
    if not operands:
        raise GraphError(f"{prim.name} needs at least one operand")
    return current_graph()


def _float_dtype_of(operands: Sequence[Any]) -> np.dtype | None:
    for item in operands:
        if isinstance(item, Value) and item.dtype in FLOAT_DTYPES:
            return item.dtype
    return None


def _as_number_array(value: Any, dtype: np.dtype | None, what: str) -> np.ndarray:
    """``value`` as an array of numbers (cast to ``dtype``), or a GraphError saying why not."""
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as err:
        raise GraphError(f"{what}: {value!r:.60} is not a rectangular array of numbers ({err})") from None
    if raw.dtype.kind not in "fiub":
        raise GraphError(
            f"{what}: cannot make a constant of dtype {raw.dtype} from {value!r:.60}; "
            "constants are real numbers or arrays of them"
        )
    return raw if dtype is None else raw.astype(dtype)


def constant_node(graph, value: Any, dtype: np.dtype | None, what: str = "constant") -> Node:
    """A constant node holding a read-only copy of ``value`` (cast to ``dtype`` if given).

    Floats become float32 or float64, ints int32 or int64 (labels); other
    dtypes are a GraphError. Non-finite numbers are fine (masks, -inf fills).
    """
    if dtype is not None and type(value) in (float, int):  # the common case, `x * 0.5`: one conversion
        array = np.array(value, dtype=dtype)
    else:
        array = np.array(_as_number_array(value, dtype, what))
    if array.dtype.kind == "f" and array.dtype not in FLOAT_DTYPES and array.dtype != np.float16:
        array = array.astype(np.float32)
    if array.dtype not in _SUPPORTED_DTYPES:
        raise GraphError(
            f"{what}: cannot make a constant of dtype {array.dtype}; "
            "use float32 or float64 (or int32/int64 for labels)"
        )
    array.setflags(write=False)
    node = graph.add_source("const", Aval(array.shape, array.dtype))
    node.data = array
    return node


def _operand_node(graph, item: Any, dtype: np.dtype | None, what: str) -> Node:
    if isinstance(item, Value):
        return item.node
    if isinstance(item, Node):
        return item
    return constant_node(graph, item, dtype, what)


def describe_operands(nodes: Sequence[Node]) -> str:
    return ", ".join(f"{n.name!r} {n.shape} {n.dtype.name}" for n in nodes)


def _check_vjp_arity(prim: Primitive, count: int) -> None:
    if isinstance(prim.vjp, (list, tuple)) and len(prim.vjp) != count:
        raise GraphError(
            f"{prim.name}: defines {len(prim.vjp)} VJP rules for {count} operand(s); "
            "give defop one rule per operand (ZERO or None where there is no gradient)"
        )


def checked_rule_result(aval: Any) -> Aval:
    """The Aval a shape rule returned, checked: a tuple of non-negative ints and a supported dtype."""
    if not isinstance(aval, Aval):
        raise ShapeError(f"its shape rule returned {type(aval).__name__}, not an Aval (return Aval(shape, dtype))")
    try:
        shape = as_shape(aval.shape)
    except ShapeError as err:
        raise ShapeError(f"its shape rule returned {aval!r}: {err}") from None
    if not isinstance(aval.dtype, np.dtype):
        raise ShapeError(f"its shape rule returned {aval!r}: dtype {aval.dtype!r} is not a numpy dtype (use np.dtype(...))")
    if aval.dtype not in _SUPPORTED_DTYPES:
        raise ShapeError(
            f"its shape rule returned {aval!r}: dtype {aval.dtype.name} is not supported "
            "(float32, float64, int32, int64)"
        )
    return aval if type(aval.shape) is tuple and shape == aval.shape else Aval(shape, aval.dtype)


def bind(prim: Primitive, operands: Sequence[Any], attrs: dict[str, Any] | None = None, name: str | None = None) -> Value:
    """Add ``prim(*operands; **attrs)`` to the operands' graph and return its Value.

    Python scalars and arrays become constants of the float dtype of the Value
    operands (JAX's weak typing), except at the op's integer operand positions.
    The shape rule runs here, so a mismatch is reported when the node is built;
    what a custom op's rule returns is checked here too.
    """
    attrs = attrs or {}
    if name is not None:
        check_name(name, f"{prim.name}: name")
    graph, nodes = _operand_nodes(prim, operands)
    if not prim.trusted:
        _check_vjp_arity(prim, len(nodes))
        if prim.view and len(nodes) != 1:
            raise GraphError(
                f"{prim.name}{f' {name!r}' if name else ''}: a view op takes one operand (the array it views), "
                f"got {len(nodes)}: {describe_operands(nodes)}; pass the others as attributes"
            )
    aval, attrs = _checked_aval(prim, nodes, attrs, name)
    return Value(graph.add(prim, nodes, attrs, aval, name))


def checked_operands(prim: Primitive, operands: Sequence[Any], attrs: dict[str, Any] | None = None,
                     name: str | None = None) -> tuple[Value, ...]:
    """The operands as :func:`bind` would take them for ``prim`` (numbers made constants), once ``prim``'s
    shape rule accepts them, else the GraphError ``bind`` would raise; no node of ``prim`` is added.

    For a function that computes ``prim``'s value with other ops (``softmax_cross_entropy`` builds
    ``nll_loss(log_softmax(x))``): its errors still name the function's op.
    """
    if name is not None:
        check_name(name, f"{prim.name}: name")
    _, nodes = _operand_nodes(prim, operands)
    _checked_aval(prim, nodes, attrs or {}, name)
    return tuple(Value(n) for n in nodes)


def _operand_nodes(prim: Primitive, operands: Sequence[Any]) -> tuple[Any, tuple[Node, ...]]:
    """The operands' graph and their nodes, numbers made constants of the operands' float dtype."""
    graph = _graph_of(prim, operands)
    float_dtype = _float_dtype_of(operands)
    nodes = tuple(
        _operand_node(graph, item, None if i in prim.int_operands else float_dtype, f"{prim.name}: operand {i}")
        for i, item in enumerate(operands)
    )
    return graph, nodes


def _checked_aval(prim: Primitive, nodes: Sequence[Node], attrs: dict[str, Any], name: str | None) -> tuple[Aval, dict[str, Any]]:
    """The aval and normalised attrs of ``prim`` over ``nodes``, or a GraphError naming the op and the shapes."""
    in_avals = [n.aval for n in nodes]
    label = f" {name!r}" if name else ""
    try:
        if any(None in a.shape for a in in_avals) or (prim.shape_attrs and attrs_hold_batch(prim, attrs)):
            return infer_with_batch(prim, in_avals, attrs)
        aval, attrs = infer_aval(prim, in_avals, attrs)
        if aval.size > MAX_ELEMENTS:
            raise ShapeError(f"the result's shape {aval.shape} has {aval.size:,d} elements, too large (at most 2^60)")
        return aval, attrs
    except (ShapeError, ValueError) as err:  # GraphError is a ValueError: the context is added once more
        raise GraphError(f"{prim.name}{label}: {err}; operands: {describe_operands(nodes)}") from None
    except TypeError as err:
        raise GraphError(f"{prim.name}{label}: bad arguments ({err}); operands: {describe_operands(nodes)}") from None
    except Exception as err:  # a custom shape rule that fails: name the op, keep the traceback
        raise GraphError(
            f"{prim.name}{label}: its shape rule raised {type(err).__name__}: {err}; "
            f"operands: {describe_operands(nodes)}"
        ) from err


def infer_aval(prim: Primitive, in_avals: Sequence[Aval], attrs: dict[str, Any]) -> tuple[Aval, dict[str, Any]]:
    """The op's attributes in canonical form and the aval its shape rule gives (checked)."""
    if prim.normalize is not None:
        attrs = prim.normalize(*in_avals, **attrs)
    aval = prim.infer(*in_avals, **attrs)
    return (aval if prim.trusted and type(aval) is Aval else checked_rule_result(aval)), attrs


# --- the batch dimension --------------------------------------------------------

BATCH_PROBES = (1009, 1013)
"""The two batch sizes a shape rule runs with when an operand's shape holds the batch (None).

Shape rules are written over ints. Run once per probe, a result dimension equal to
the probe in both runs is the batch, one equal in both runs is fixed, and anything
else (2·B from a reshape, B + 5 from a concat) depends on the batch in a way graphc
does not represent. The probes are primes, so no divisibility holds by accident (a
reshape of (None, 6) into (-1, 4) fails for both); they differ from 1, which
broadcasts, and from the small sizes models use, which a fixed dimension could match;
and they are small enough that a custom rule allocating an array of the probed shape
stays cheap.
"""

_probing = threading.local()  # set while a shape rule runs on probes: size limits do not apply


def probing() -> bool:
    """Whether a shape rule is running on probe sizes (see :data:`BATCH_PROBES`)."""
    return getattr(_probing, "active", False)


def attrs_hold_batch(prim: Primitive, attrs: dict[str, Any]) -> bool:
    """Whether a shape attribute of the op (``prim.shape_attrs``, e.g. reshape's ``shape``) holds None."""
    return any(isinstance(attrs.get(key), (tuple, list)) and None in attrs[key] for key in prim.shape_attrs)


def attrs_with_batch(prim: Primitive, attrs: dict[str, Any], size: int) -> dict[str, Any]:
    """``attrs`` with every None of the op's shape attributes replaced by the batch ``size``."""
    filled = dict(attrs)
    for key in prim.shape_attrs:
        value = attrs.get(key)
        if isinstance(value, (tuple, list)) and None in value:
            filled[key] = type(value)(size if d is None else d for d in value)
    return filled


def _merge_probed(first: Any, second: Any, what: str, shape: bool = True) -> Any:
    """One value from the results of the two probes.

    Equal values are kept. A shape (``shape=True``) merges dimension by dimension, the
    two probes giving None; any other difference is a ShapeError naming ``what``.
    """
    try:
        if type(first) is type(second) and bool(first == second):
            return first
    except (ValueError, TypeError):  # a custom op's array attribute: compared by the shape test below
        pass
    if (shape and isinstance(first, (tuple, list)) and isinstance(second, (tuple, list))
            and len(first) == len(second)
            and all(a == b or (is_int(a) and is_int(b) and (int(a), int(b)) == BATCH_PROBES)
                    for a, b in zip(first, second))):
        return type(first)(a if a == b else None for a, b in zip(first, second))
    raise ShapeError(
        f"{what} is {first!r} when the batch size (None) is {BATCH_PROBES[0]} and {second!r} when it is "
        f"{BATCH_PROBES[1]}: it depends on the batch size other than as a dimension equal to it. graphc "
        "supports the batch only as a dimension of its own that ops carry through unchanged (reshape so "
        "that it stays one dimension, e.g. (None, 8, 8) into (-1, 64), not into (-1,))"
    )


def infer_with_batch(prim: Primitive, in_avals: Sequence[Aval], attrs: dict[str, Any]) -> tuple[Aval, dict[str, Any]]:
    """The aval (with None where the batch is) and attrs of a node that sees the batch size.

    The shape rule runs twice, with the batch set to each of :data:`BATCH_PROBES`;
    the results must agree but for dimensions equal to the probe (see there).
    """
    results = []
    _probing.active = True
    try:
        for probe in BATCH_PROBES:
            try:
                results.append(infer_aval(prim, [a.with_batch(probe) for a in in_avals], attrs_with_batch(prim, attrs, probe)))
            except (ShapeError, ValueError, TypeError) as err:
                if not results:
                    raise ShapeError(f"{err} (checked with the batch size None = {probe})") from None
                raise ShapeError(
                    f"its shape rule accepts the batch size {BATCH_PROBES[0]} but not {probe} ({err}): the op's "
                    "shapes depend on the batch size in a way graphc does not support; graphc supports the batch "
                    "only as a dimension of its own that ops carry through unchanged"
                ) from None
    finally:
        _probing.active = False
    (aval1, attrs1), (aval2, attrs2) = results
    if aval1.dtype != aval2.dtype:
        raise ShapeError(f"its result's dtype is {aval1.dtype.name} or {aval2.dtype.name} depending on the batch size")
    shape = _merge_probed(aval1.shape, aval2.shape, "the result's shape")
    merged = {key: _merge_probed(value, attrs2.get(key), f"attribute {key}", shape=key in prim.shape_attrs)
              for key, value in attrs1.items()}
    return Aval(tuple(shape), aval1.dtype), merged


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


def broadcast_shapes(*shapes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """NumPy's broadcasting of shapes, as a ShapeError when they do not broadcast.

    A ``None`` (the batch size) broadcasts against 1 and against None only.
    """
    if any(None in s for s in shapes):
        probed = [broadcast_shapes(*(tuple(probe if d is None else d for d in s) for s in shapes)) for probe in BATCH_PROBES]
        return tuple(_merge_probed(probed[0], probed[1], "the broadcast shape"))
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"shapes {' and '.join(map(str, shapes))} do not broadcast "
            "(aligned from the right, each pair of dimensions must be equal or one of them 1)"
        ) from None


MAX_ELEMENTS = 2**60  # so that the bytes of any array fit in an int64


def as_int(value: Any, what: str) -> int:
    """``value`` as an int, or a ShapeError: ``what`` names the argument."""
    if not is_int(value):
        raise ShapeError(f"{what} {value!r} is not an int")
    return int(value)


def as_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints of at most 2^60 elements, else a ShapeError."""
    if not isinstance(shape, (tuple, list)):
        hint = f" (write ({shape},) for one dimension)" if is_int(shape) else ""
        raise ShapeError(f"shape must be a tuple of ints, got {shape!r}{hint}")
    for d in shape:
        if not is_int(d):
            raise ShapeError(f"shape {tuple(shape)!r}: dimension {d!r} is not an int")
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ShapeError(f"shape {dims} has a negative dimension")
    size = math.prod(dims)
    if size > MAX_ELEMENTS and not probing():
        raise ShapeError(f"shape {dims} has {size:,d} elements, too large (at most 2^60)")
    return dims


def as_dtype(dtype: Any, allowed: Sequence[np.dtype]) -> np.dtype:
    """``dtype`` as a NumPy dtype among ``allowed``, else a ShapeError naming the choices."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ShapeError(f"{dtype!r} is not a dtype; use one of {', '.join(d.name for d in allowed)}") from None
    if dt not in allowed:
        raise ShapeError(f"dtype {dt.name} is not supported; use one of {', '.join(d.name for d in allowed)}")
    return dt


def normalize_axis(axis: Any, ndim: int) -> int:
    """``axis`` in ``[0, ndim)``: an int in ``[-ndim, ndim)``, as NumPy counts, else a ShapeError."""
    axis = as_int(axis, "axis")
    if not -ndim <= axis < ndim:
        valid = f"use {-ndim} to {ndim - 1}" if ndim else "a 0-d value has no axes"
        raise ShapeError(f"axis {axis} is out of range for {ndim} dimensions ({valid})")
    return axis % ndim


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``None`` → all axes; an int or a tuple of ints → sorted, non-negative, unique axes."""
    if axis is None:
        return tuple(range(ndim))
    if is_int(axis):
        axes: tuple = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise ShapeError(f"axis {axis!r} is not an int, a tuple of ints or None")
    result = sorted({normalize_axis(a, ndim) for a in axes})
    if len(result) != len(axes):
        raise ShapeError(f"axis {axis} repeats an axis")
    return tuple(result)

