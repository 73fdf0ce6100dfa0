"""The intermediate representation: a Graph of Nodes, handled through Values.

A :class:`Graph` owns its nodes in creation order. Each node is one φ: an
operation (a :class:`~graphc.ops.core.Primitive`), the nodes it reads, static
attributes, and the static shape and dtype of its single result, inferred
when the node is built. Since a node can only read nodes that exist already,
creation order is a topological order, and every pass can walk the graph with
plain loops (no recursion, so graphs of 10⁵ nodes are fine).

Users hold :class:`Value` handles, which carry the arithmetic operators::

    with gc.Graph("seed") as g:
        x = gc.input("x", shape=(8, 4))
        w = gc.param("w", shape=(4, 4))
        y = gc.tanh(x @ w) + 1.0
"""

from __future__ import annotations

import contextlib
import functools
from functools import cached_property
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from graphc.errors import GraphError

if TYPE_CHECKING:
    from graphc.ops.core import Primitive

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


@functools.lru_cache(maxsize=None)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached (NumPy computes it anew on every access)."""
    return dtype.name


@dataclass(frozen=True)
class Aval:
    """The abstract value of a node: its static shape and dtype.

    A ``None`` in the shape is the batch size, one size per run shared by every
    input of the graph (``gc.input("x", shape=(None, 784))``); such an aval has
    no size until a run gives the batch size (:meth:`with_batch`).
    """

    shape: tuple[int | None, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def has_batch(self) -> bool:
        """Whether the shape holds the batch size (a ``None``)."""
        return None in self.shape

    def with_batch(self, size: int) -> "Aval":
        """This aval with every ``None`` of its shape replaced by the batch ``size``."""
        if None not in self.shape:
            return self
        return Aval(tuple(size if d is None else d for d in self.shape), self.dtype)

    @cached_property
    def size(self) -> int:
        if None in self.shape:
            raise GraphError(
                f"shape {self.shape} holds the batch size (None), so its number of elements is known only "
                "when a run gives the batch size: ask the program specialised for a size "
                "(prog.specialize(size)) instead"
            )
        return math.prod(self.shape)

    @cached_property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.shape} {self.dtype.name}"


@dataclass(frozen=True)
class AdjointInfo:
    """Where an adjoint node comes from, for rendering and for reading plans.

    ``forward`` is the forward node whose gradient this node computes (or helps
    compute); ``consumer`` is the node whose Jacobian-transpose it applies,
    ``J^T_{φ consumer | forward}``. ``role`` is one of:

    - ``"seed"``: the cotangent ∂ℓ/∂y that starts the pass;
    - ``"vjp"``: an intermediate step of one J^T product;
    - ``"contribution"``: the finished term J^T_{φc|x} · ∂ℓ/∂x(c);
    - ``"accumulate"``: the sum of several contributions, ∂ℓ/∂x = Σ_c ...;
    - ``"zero"``: a zero gradient materialised for a ``wrt`` that ``y`` does not reach.
    """

    role: str
    forward: "Node | None" = None
    consumer: "Node | None" = None


_FILL_LOCK = threading.Lock()

SOURCE_KINDS = ("input", "param", "const")
"""The kinds of source node: fed at each run, stored (and updated by plans), and constant."""

OP = "op"
"""The kind of every node that applies a primitive."""


class Node:
    """One φ in a graph: ``op(*inputs; **attrs)`` with a static ``aval``, or a source.

    ``kind`` is ``"op"`` for a node that applies the primitive ``op``, and one
    of :data:`SOURCE_KINDS` for a source, which has no op (``op`` is None) and no
    inputs: ``"input"`` (fed at each run), ``"param"`` (a stored value) or
    ``"const"``. ``data`` holds the array of a constant (read-only) or the stored
    value of a param (updated in place by compiled ``updates``); a param
    initialised by one of graphc's own initialisers is filled when ``data`` is
    first read, so a model of 10^8 parameters is built and planned without
    allocating them. ``role`` says
    what a param's stored value is for: ``"param"`` (trained) or ``"state"``
    (stored and updated by plans, never trained: an optimizer's moments); None
    for every node that is no param. ``scope`` is the path of the :func:`scope`
    blocks the node was built in (``"encoder/block3"``; ``""`` at top level).
    """

    __slots__ = ("id", "kind", "op", "inputs", "attrs", "aval", "name", "graph", "adjoint", "recompute_of", "role", "scope",
                 "_data", "_fill")

    def __init__(
        self,
        graph: "Graph",
        op: "Primitive | None",
        inputs: tuple["Node", ...],
        attrs: dict[str, Any],
        aval: Aval,
        name: str,
        node_id: int,
        kind: str = OP,
    ) -> None:
        self.graph = graph
        self.kind = kind
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.aval = aval
        self.name = name
        self.id = node_id
        self._data: np.ndarray | None = None
        self._fill: Callable[[], np.ndarray] | None = None  # computes a lazily initialised param's data
        self.adjoint: AdjointInfo | None = None
        self.recompute_of: Node | None = None  # set on compile-time clones that recompute a forward node
        self.role: str | None = None  # set by gc.param: "param" or "state"
        self.scope = ""  # set by Graph.add from the scope open in the building thread

    @property
    def data(self) -> np.ndarray | None:
        """The stored array, computed on first read when the node was given a deferred fill."""
        if self._fill is not None:
            with _FILL_LOCK:  # two threads reading at once must get the same array
                if self._fill is not None:
                    self._data, self._fill = self._fill(), None
        return self._data

    @data.setter
    def data(self, array: np.ndarray | None) -> None:
        self._data, self._fill = array, None

    def defer_data(self, fill: Callable[[], np.ndarray]) -> None:
        """Let ``fill()`` compute ``data`` when it is first read (it must not fail)."""
        self._data, self._fill = None, fill

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def is_source(self) -> bool:
        """Inputs, params and constants: nodes computed by no kernel."""
        return self.op is None

    @property
    def is_view(self) -> bool:
        """Whether the node applies a view op (its result may alias its operand's storage)."""
        return self.op is not None and self.op.view

    @property
    def op_name(self) -> str:
        """The op's name, or a source's kind (``"input"``, ``"param"``, ``"const"``): what listings show."""
        return self.kind if self.op is None else self.op.name

    def describe(self) -> str:
        """``name: op (shape) dtype`` — the phrase errors use to name a node."""
        return f"'{self.name}' ({self.op_name}, shape {self.shape}, {self.dtype.name})"

    def __repr__(self) -> str:
        args = ", ".join(i.name for i in self.inputs)
        return f"<Node {self.id} {self.name} = {self.op_name}({args}) : {self.aval}>"


_context = threading.local()


def _graph_stack() -> list["Graph"]:
    if not hasattr(_context, "stack"):
        _context.stack = []
    return _context.stack


def current_graph() -> "Graph":
    """The innermost graph opened with ``with Graph(...)``."""
    stack = _graph_stack()
    if not stack:
        raise GraphError(
            "no graph is open: build inputs, params and constants inside "
            "`with gc.Graph('name') as g:`"
        )
    return stack[-1]


SCOPE_SEPARATOR = "/"
TOP_LEVEL = "(top level)"
"""How listings and reports name the scope ``""``, outside every :func:`scope`."""


def check_scope_name(name: Any) -> str:
    """``name`` if it can name a scope: a non-empty string without ``/`` (which joins the names of nested scopes)."""
    if not isinstance(name, str) or not name:
        raise GraphError(f"gc.scope: the name must be a non-empty string, got {name!r:.60}; write gc.scope('block3')")
    if SCOPE_SEPARATOR in name:
        names = [n for n in name.split(SCOPE_SEPARATOR) if n]
        nest = f"nest one `with gc.scope(...)` per name ({' and '.join(map(repr, names))}) or " if len(names) > 1 else ""
        raise GraphError(
            f"gc.scope: the name {name!r:.60} holds '/', which joins the names of nested scopes; "
            f"{nest}choose a name without '/'"
        )
    return name


def join_scope(*names: str) -> str:
    """The path of nested scopes: the non-empty ``names`` joined by ``/`` (``join_scope("", "optim", "w")`` is ``"optim/w"``)."""
    return SCOPE_SEPARATOR.join(n for n in names if n)


OPTIMIZER_SCOPE = "optim"
"""Optimizers build the update of param ``p`` in the scope ``optim/<p's name>`` (inside the scope open at the call)."""


def optimizer_scope(param: "Value") -> contextlib.AbstractContextManager[str]:
    """Build the nodes of ``param``'s update (and its state params) in ``<open scope>/optim/<param's name>``."""
    graph = param.graph
    return graph.at_scope(join_scope(graph.current_scope, OPTIMIZER_SCOPE, param.name))


def scope(name: str) -> contextlib.AbstractContextManager[str]:
    """Name a block of the graph: ``with gc.scope("block3"):``, as TensorFlow's ``name_scope``.

    Every node built inside, in the graph open at ``with`` (the innermost
    ``with gc.Graph(...)`` of this thread), records the scope's path in
    ``node.scope``; scopes nest, and the path joins their names with ``/``
    (``"encoder/block3"``). Scopes are per graph and per thread: another thread
    building into the same graph, or another graph opened inside the block,
    starts at the top level (``""``). The gradient nodes ``gc.grad`` builds take
    the scopes of the forward nodes they differentiate (see :mod:`graphc.autodiff`),
    and the plan listing, the memory report and the images group by scope.
    The ``with`` gives the path. ``name`` must be a non-empty string without ``/``.

    Examples
    --------
    >>> import graphc as gc
    >>> with gc.Graph("g"):
    ...     x = gc.input("x", shape=(2,))
    ...     with gc.scope("encoder"), gc.scope("block3") as path:
    ...         y = gc.tanh(x)
    >>> path, y.node.scope, x.node.scope
    ('encoder/block3', 'encoder/block3', '')
    """
    return _scope(check_scope_name(name))


@contextlib.contextmanager
def _scope(name: str) -> Iterator[str]:
    if not _graph_stack():
        raise GraphError(
            f"gc.scope({name!r}): no graph is open; a scope names a block of a graph: "
            "open it inside `with gc.Graph('name'):` (or `with g:` for a graph made before)"
        )
    graph = current_graph()
    outer = graph.current_scope
    with graph.at_scope(join_scope(outer, name)) as path:
        yield path


class _ThreadState(threading.local):
    """What one thread has open in one graph; the class attributes are every thread's defaults
    (reading a default costs no AttributeError, which ``getattr(local, name, default)`` would)."""

    scope = ""  # the path of the open gc.scope
    recording: list | None = None  # the nodes a Graph.record() block collects


class Graph:
    """A DAG of φ nodes. A context manager: nodes built inside belong to it.

    Nodes are kept in creation order, which is topological. Inputs and params
    are also indexed by name, since ``Program.run`` feeds them by name.

    Building is thread-safe: several threads may add nodes to one graph at
    once. A lock makes the allocation of a node's id, its name check and its
    append one step, so ids stay unique and dense (``graph.nodes[i].id == i``)
    and every node comes after the nodes it reads. The open graph of a
    ``with`` block is per thread: a thread that builds into a graph opened by
    another passes Values of it (an op whose operands are Values belongs to
    their graph) or opens it itself with ``with g:``. What ``grad`` records as
    adjoint nodes is per thread too, so another thread's nodes are never
    mistaken for gradient nodes. The open :func:`scope` is per thread as well.
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = check_name(name, "Graph name")
        self.nodes: list[Node] = []
        self.inputs: dict[str, Node] = {}
        self.params: dict[str, Node] = {}
        self.contributions: list = []  # autodiff.Contribution records, for rendering
        # Updates of state params that programs reading a node make (batch norm's running
        # statistics): state param -> (the node whose computation triggers it, its new value).
        self.state_updates: dict[Node, tuple[Node, Node]] = {}
        self._lock = threading.Lock()
        self._thread_state = _ThreadState()  # this thread's recorder and scope
        self._recorders = 0  # recorders open in any thread: add() looks up its thread's only then

    @property
    def _recording(self) -> list[Node] | None:
        return getattr(self._thread_state, "recording", None)

    @_recording.setter
    def _recording(self, nodes: list[Node] | None) -> None:
        self._thread_state.recording = nodes

    @property
    def current_scope(self) -> str:
        """The path of the scope this thread builds this graph's nodes in (``""``: top level)."""
        return self._thread_state.scope

    @contextlib.contextmanager
    def at_scope(self, path: str) -> Iterator[str]:
        """Build this thread's nodes of this graph in the scope ``path`` (a whole path, not nested in the open one).

        :func:`scope` nests through it; the adjoint pass uses it to build each
        gradient node in the scope of the forward node it differentiates.
        """
        state = self._thread_state
        outer = state.scope
        state.scope = path
        try:
            yield path
        finally:
            state.scope = outer

    def __enter__(self) -> "Graph":
        _graph_stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _graph_stack().pop()

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"

    def add(
        self,
        op: "Primitive",
        inputs: tuple[Node, ...],
        attrs: dict[str, Any],
        aval: Aval,
        name: str | None = None,
    ) -> Node:
        """Append a node whose aval has been inferred already (thread-safe).

        Attributes that depend on the node's id (a random op's stream) are
        filled in here, under the lock, by the op's ``with_node_id`` rule.
        """
        with self._lock:
            node_id = len(self.nodes)  # ids are positions in creation (topological) order
            if op.with_node_id is not None:
                attrs = op.with_node_id(attrs, node_id)
            node = Node(self, op, inputs, attrs, aval, name or f"{op.name}_{node_id}", node_id)
            node.scope = self._thread_state.scope
            self.nodes.append(node)
        self._record(node)
        return node

    def add_source(self, kind: str, aval: Aval, name: str | None = None) -> Node:
        """Append a source node of ``kind`` (one of :data:`SOURCE_KINDS`; thread-safe).

        Inputs and params are indexed by name (``graph.inputs``, ``graph.params``),
        and their names are unique among them.
        """
        if kind not in SOURCE_KINDS:
            raise GraphError(f"{kind!r} is no kind of source node; use one of {', '.join(SOURCE_KINDS)}")
        with self._lock:
            node_id = len(self.nodes)
            node = Node(self, None, (), {}, aval, name or f"{kind}_{node_id}", node_id, kind)
            node.scope = self._thread_state.scope
            if kind != "const":
                if node.name in self.inputs or node.name in self.params:
                    raise GraphError(
                        f"graph {self.name!r} already has an input or param named {node.name!r}; "
                        "give each input and param its own name"
                    )
                (self.inputs if kind == "input" else self.params)[node.name] = node
            self.nodes.append(node)
        self._record(node)
        return node

    def _record(self, node: Node) -> None:
        if self._recorders:
            recording = self._recording
            if recording is not None:
                recording.append(node)

    def record(self) -> "_Recorder":
        """Collect the nodes created inside a ``with`` block (used by the adjoint pass)."""
        return _Recorder(self)


class _Recorder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[Node] = []

    def __enter__(self) -> list[Node]:
        self._outer = self.graph._recording
        self.graph._recording = self.nodes
        with self.graph._lock:
            self.graph._recorders += 1
        return self.nodes

    def __exit__(self, *exc: object) -> None:
        with self.graph._lock:
            self.graph._recorders -= 1
        self.graph._recording = self._outer
        if self._outer is not None:
            self._outer.extend(self.nodes)


class Value:
    """A symbolic handle to a node's result, with NumPy-like operators.

    ``+ - * / ** @`` and unary ``-`` build nodes; Python scalars and NumPy
    arrays on either side become constants of this value's dtype.
    """

    __slots__ = ("node",)
    __array_ufunc__ = None  # make `ndarray @ Value` defer to Value.__rmatmul__

    def __init__(self, node: Node) -> None:
        self.node = node

    # --- static facts -----------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> np.dtype:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return self.node.aval.ndim

    @property
    def aval(self) -> Aval:
        return self.node.aval

    @property
    def graph(self) -> Graph:
        return self.node.graph

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def op(self) -> str:
        """The name of the node's op, or a source's kind: ``"input"``, ``"param"``, ``"const"``."""
        return self.node.op_name

    @property
    def role(self) -> str | None:
        """A param's role, ``"param"`` (trained) or ``"state"`` (optimizer state); None for other nodes."""
        return self.node.role

    @property
    def scope(self) -> str:
        """The path of the :func:`scope` blocks the node was built in (``"encoder/block3"``; ``""`` at top level)."""
        return self.node.scope

    @property
    def T(self) -> "Value":
        return ops.transpose(self)

    # --- the stored value of a param ----------------------------------------
    @property
    def value(self) -> np.ndarray:
        """A copy of a param's stored value or a constant's data."""
        if self.node.data is None:
            raise GraphError(f"{self.node.describe()} has no stored value: only params and constants do")
        return self.node.data.copy()

    def assign(self, array: Any) -> None:
        """Set a param's stored value (copied; shape and dtype must match)."""
        if self.node.kind != "param":
            raise GraphError(f"{self.node.describe()} is not a param; only params can be assigned")
        self.node.data[...] = check_array(self.node, array, what="assigned value")

    # --- operators --------------------------------------------------------
    def __add__(self, other: Any) -> "Value":
        return ops.add(self, other)

    def __radd__(self, other: Any) -> "Value":
        return ops.add(other, self)

    def __sub__(self, other: Any) -> "Value":
        return ops.sub(self, other)

    def __rsub__(self, other: Any) -> "Value":
        return ops.sub(other, self)

    def __mul__(self, other: Any) -> "Value":
        return ops.mul(self, other)

    def __rmul__(self, other: Any) -> "Value":
        return ops.mul(other, self)

    def __truediv__(self, other: Any) -> "Value":
        return ops.div(self, other)

    def __rtruediv__(self, other: Any) -> "Value":
        return ops.div(other, self)

    def __pow__(self, other: Any) -> "Value":
        return ops.pow(self, other)

    def __rpow__(self, other: Any) -> "Value":
        return ops.pow(other, self)

    def __matmul__(self, other: Any) -> "Value":
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> "Value":
        return ops.matmul(other, self)

    def __neg__(self) -> "Value":
        return ops.neg(self)

    # --- comparisons: 0.0/1.0 masks in the operands' float dtype ---------------
    # As in PyTorch and JAX, ``==`` and ``!=`` compare elementwise and build nodes;
    # ``__hash__`` stays the object's identity, so Values remain dict keys
    # (``{param: new_value}``) and set members, whose lookups test identity first.
    # Whether two handles are the same node is ``a is b`` (or ``a.node is b.node``).
    # Operands that cannot be graph operands (None, strings) compare unequal.
    __hash__ = object.__hash__

    def __lt__(self, other: Any) -> "Value":
        return ops.less(self, other)

    def __le__(self, other: Any) -> "Value":
        return ops.less_equal(self, other)

    def __gt__(self, other: Any) -> "Value":
        return ops.greater(self, other)

    def __ge__(self, other: Any) -> "Value":
        return ops.greater_equal(self, other)

    def __eq__(self, other: Any) -> "Value":  # type: ignore[override]
        if not _is_operand(other):
            return NotImplemented
        return ops.equal(self, other)

    def __ne__(self, other: Any) -> "Value":  # type: ignore[override]
        if not _is_operand(other):
            return NotImplemented
        return ops.not_equal(self, other)

    # --- methods with NumPy's names and arguments --------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> "Value":
        """``gc.sum(self, axis, keepdims)``."""
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> "Value":
        """``gc.mean(self, axis, keepdims)``."""
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> "Value":
        """``gc.max(self, axis, keepdims)``."""
        return ops.max(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> "Value":
        """``gc.reshape(self, shape)``; as NumPy's, ``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` are the same."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes: Any) -> "Value":
        """``gc.transpose(self, axes)``; as NumPy's, axes given one by one or as a tuple (none: reversed)."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return ops.transpose(self, tuple(axes) if axes else None)

    def astype(self, dtype: Any) -> "Value":
        """``gc.astype(self, dtype)``."""
        return ops.astype(self, dtype)

    def __getitem__(self, key: Any) -> "Value":
        """``gc.getitem(self, key)``: ``x[0]``, ``x[:, 1:]``, ``x[..., None]``, ``x[idx]`` (a gather)."""
        return ops.getitem(self, key)

    def __iter__(self) -> Iterator["Value"]:
        raise GraphError(
            f"{self.node.describe()} is symbolic and cannot be iterated over (its elements exist only when a "
            "program runs); index it instead: x[0], x[:, 1:], or gc.take(x, indices, axis)"
        )

    def __bool__(self) -> bool:
        raise GraphError(
            f"{self.node.describe()} is symbolic: it has no truth value until a program runs. Comparisons "
            "(==, <, ...) build graph nodes, so `if a == b` and `a in list_of_values` cannot be decided; "
            "test whether two Values are the same node with `a is b`"
        )

    def __repr__(self) -> str:
        return f"<Value {self.name}: {self.op} {self.aval}>"


def _is_operand(item: Any) -> bool:
    """Whether ``item`` can be an operand of a graph op (a Value, a number or an array of numbers)."""
    return isinstance(item, (Value, bool, int, float, np.ndarray, np.generic, list, tuple))


def check_array(node: Node, array: Any, what: str) -> np.ndarray:
    """Return ``array`` as an ndarray if its shape and dtype match ``node``'s, else raise."""
    arr = np.asarray(array)
    if arr.shape != node.shape:
        raise GraphError(f"{what} for {node.describe()} has shape {arr.shape}, expected {node.shape}")
    if arr.dtype != node.dtype:
        raise GraphError(
            f"{what} for {node.describe()} has dtype {arr.dtype.name}, expected {node.dtype.name}"
            f" (convert it with .astype(np.{node.dtype.name}))"
        )
    return arr


def check_name(name: Any, what: str) -> str:
    """``name`` if it is a non-empty string, else a GraphError saying ``what`` needs one."""
    if not isinstance(name, str) or not name:
        raise GraphError(f"{what} must be a non-empty string, got {name!r}")
    return name


def ancestors(roots: Iterable[Node]) -> list[Node]:
    """The roots and every node they read, in creation (topological) order; iterative, no recursion."""
    # Not nx.ancestors: on 10⁵ nodes this takes 77–98 ms, networkx 330–500 ms on a DiGraph built
    # beforehand and 0.8–1.2 s with building it (benchmarks/networkx_algorithms.py).
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.inputs)
    return sorted(seen, key=lambda n: n.id)


def as_values(items: Iterable[Any], where: str = "") -> list[Value]:
    """Check that every item is a Value (for APIs that take lists of Values).

    ``where`` names the argument in the message (``"compile: outputs"`` gives
    ``compile: outputs[1]: expected a graphc Value, got float``).
    """
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, Value):
            at = f"{where}[{index}]: " if where else ""
            raise GraphError(
                f"{at}expected a graphc Value, got {type(item).__name__} {item!r:.40}; "
                "pass Values built by graphc ops (gc.input, gc.param, gc.tanh, ...)"
            )
        out.append(item)
    return out


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, and not a bool (``True`` is no dimension, axis or count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A Python or NumPy int or float, and not a bool."""
    return (is_int(value) or isinstance(value, (float, np.floating))) and not isinstance(value, bool)


from graphc import ops  # noqa: E402  (the operators above need the op functions)
