"""A batch that varies: a graph whose shapes hold the batch size (None), specialised per size.

    Graph with None dims ──► specialize_graph(·, B) ──► Graph of concrete shapes ──► compile

``gc.input("x", shape=(None, 784))`` builds a graph whose avals hold ``None``
where the batch size goes (:func:`graphc.ops.core.infer_with_batch` works out
where, when each node is built). Nothing downstream of the graph knows of
None: the stages plan buffers of known sizes. So a program of such a graph is a
:class:`BatchProgram`: the first run with a batch size B replays the graph with
None → B (every shape rule runs again and must give the template's shape with
B in place of None), compiles the copy with the options given, and caches the
program for B, as ``jax.jit`` caches a trace per input shape; later runs of B
reuse it. ``prog.specializations`` lists the programs made.

A specialised graph shares with its template what the user sees: params'
stored arrays (its updates write the very arrays ``w.value`` reads), constants'
data, random ops' streams (a size-B program draws what a graph built for B
draws), node names, and adjoint metadata (plan tags, origins, rendering).
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import numpy as np

from graphc.compile import Program, checked_feeds, compile
from graphc.errors import GraphError
from graphc.ir import AdjointInfo, Aval, Graph, Node, Value, is_int
from graphc.ops.core import MAX_ELEMENTS, ShapeError, attrs_hold_batch, attrs_with_batch, infer_aval


def holds_batch(roots: Sequence[Node]) -> bool:
    """Whether any node that ``roots`` read has the batch size (None) in its shape or attributes."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if None in node.aval.shape or (node.op is not None and node.op.shape_attrs
                                       and attrs_hold_batch(node.op, node.attrs)):
            return True
        stack.extend(node.inputs)
    return False


def check_batch_size(size: Any) -> int:
    """``size`` as a batch size: an int >= 1, else a GraphError.

    A batch of 0 rows is refused: a mean over it (the loss) has no value, and a
    step that learns nothing is better skipped than run.
    """
    if not is_int(size):
        raise GraphError(f"batch size {size!r} is not an int; give the number of rows, e.g. prog.specialize(32)")
    if size < 1:
        raise GraphError(
            f"batch size {int(size)}: a batch needs at least one row (a mean over an empty batch has no value); "
            "skip the run instead"
        )
    return int(size)


def _nodes_to_replay(template: Graph, roots: Sequence[Node]) -> list[Node]:
    """The roots, every input and param (so that every name stays feedable), what they read,
    and the forward nodes their adjoint metadata names; in creation (topological) order."""
    seen: set[Node] = set()
    stack = list(roots) + list(template.inputs.values()) + list(template.params.values())
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(node.inputs)
        info = node.adjoint
        if info is not None:
            stack.extend(n for n in (info.forward, info.consumer) if n is not None)
    return sorted(seen, key=lambda n: n.id)


def _specialized(node: Node, inputs: tuple[Node, ...], attrs: dict[str, Any], size: int) -> tuple[Aval, dict[str, Any]]:
    """The node's attribute check and shape rule run again on the specialised operands (a slice's
    bounds are checked against the actual size), the aval checked against the template's."""
    expected = node.aval.with_batch(size)
    operands = ", ".join(f"{i.name!r} {i.shape}" for i in inputs)
    try:
        aval, attrs = infer_aval(node.op, [i.aval for i in inputs], attrs)
        if aval.size > MAX_ELEMENTS:
            raise ShapeError(f"the result's shape {aval.shape} has {aval.size:,d} elements, too large (at most 2^60)")
    except (ShapeError, ValueError, TypeError) as err:
        raise GraphError(
            f"batch size {size}: {node.describe()} cannot be built for this size: {err}; operands: {operands}. "
            "Its shape rule accepted the probe sizes but not this one; run with another batch size"
        ) from None
    if aval != expected:
        raise GraphError(
            f"batch size {size}: {node.describe()} gets {aval} from its shape rule, but the graph was built for "
            f"{expected} ({node.aval} with None = {size}); operands: {operands}. The op's shapes depend on the "
            "batch size in a way graphc does not support"
        )
    return aval, attrs


def specialize_graph(template: Graph, roots: Sequence[Node], size: int) -> dict[Node, Node]:
    """Replay the nodes ``roots`` need in a new graph with the batch size ``size``: template node → copy.

    One linear sweep in creation order (no recursion: 10⁵ nodes are fine). A source
    node gets its aval with None → size and shares its data (a param's stored array,
    a constant's read-only array); every other node gets its attributes with None →
    size, checked by its op's normalize rule, and the aval its shape rule gives,
    which must equal the template's with None → size. Random ops keep their stream
    (an attribute). Adjoint metadata and the graph's contribution records are
    carried over to the copies, and so are the nodes' scopes.
    """
    size = check_batch_size(size)
    graph = Graph(template.name)
    copies: dict[Node, Node] = {}
    for node in _nodes_to_replay(template, roots):
        if node.is_source:
            copy = graph.add_source(node.kind, node.aval.with_batch(size), node.name)
            copy.data = node.data
            copy.role = node.role
        else:
            attrs = attrs_with_batch(node.op, node.attrs, size) if node.op.shape_attrs else node.attrs
            inputs = tuple(copies[i] for i in node.inputs)
            aval, attrs = _specialized(node, inputs, attrs, size) if _sees_batch(node) else (node.aval, attrs)
            copy = graph.add(node.op, inputs, dict(attrs), aval, node.name)
        copy.scope = node.scope
        copies[node] = copy
    for node, copy in copies.items():
        info = node.adjoint
        if info is not None:
            copy.adjoint = AdjointInfo(info.role, copies.get(info.forward), copies.get(info.consumer))
    graph.contributions = [
        type(c)(copies[c.term], copies[c.forward], copies[c.consumer], copies[c.cotangent])
        for c in template.contributions
        if all(n in copies for n in (c.term, c.forward, c.consumer, c.cotangent))
    ]
    return copies


def _sees_batch(node: Node) -> bool:
    """Whether the node's shape rule must run again: the batch is in its result, operands or attributes."""
    return (None in node.aval.shape or any(None in i.aval.shape for i in node.inputs)
            or bool(node.op.shape_attrs and attrs_hold_batch(node.op, node.attrs)))


class BatchProgram(Program):
    """The program of a graph whose inputs hold the batch size: one compiled program per size.

    ``run(feeds)`` reads the batch size from the fed inputs (every None of every
    input is one size per run), makes the program for that size on first use (see
    the module docstring) and runs it. ``specialize(size)`` makes one ahead of
    time; ``specializations`` maps each size to its program, in the order made.

    ``plan``, ``memory``, ``cost`` and ``remat`` are those of the program last
    run (or made by ``specialize``); before any, reading them is a GraphError
    saying to run the program or call ``specialize(size)``.

    Threads: runs may come from several threads; a new size is specialised under
    a lock, so two threads running the same new size make one program, and each
    size's program is thread-safe as any :class:`~graphc.Program`. The compile
    options apply to every size: a ``memory_budget`` that a larger batch cannot
    meet is a GraphError at the run that needs that size.

    Binding: compiled with ``bind=False``, every size's program is planned
    without memory (``specialize(size).memory`` reports it) and ``run`` is a
    GraphError until ``bind()``, which binds the programs made and every one
    made after.
    """

    def __init__(self, outputs: Sequence[Node], updates: Sequence[tuple[Node, Node]], single: bool,
                 options: Mapping[str, Any]) -> None:
        self._graph = outputs[0].graph
        self._outputs = list(outputs)
        self._updates = list(updates)
        self._single = single
        self._options = dict(options)
        self.check_numerics = self._options["check_numerics"]
        self._feedable = frozenset(self._graph.inputs) | frozenset(self._graph.params)
        self._batched_inputs = [(name, node) for name, node in self._graph.inputs.items() if node.aval.has_batch]
        self._programs: dict[int, Program] = {}
        self._shared_params: dict[int, list[tuple[Node, Node]]] = {}
        self._lock = threading.Lock()
        self._last: Program | None = None

    # --- specialisation -------------------------------------------------------------
    @property
    def specializations(self) -> dict[int, Program]:
        """``{batch size: Program}``, in the order they were made."""
        return dict(self._programs)

    def specialize(self, size: int) -> Program:
        """The program for batch size ``size``, made (and cached) if this is its first use."""
        program = self._programs.get(size) if is_int(size) else None
        if program is None:
            size = check_batch_size(size)
            with self._lock:  # two threads running one new size make one program
                program = self._programs.get(size)
                if program is None:
                    program = self._programs[size] = self._compile_for(size)
        self._last = program
        return program

    def _compile_for(self, size: int) -> Program:
        roots = self._outputs + [n for pair in self._updates for n in pair]
        copies = specialize_graph(self._graph, roots, size)
        outputs = [Value(copies[n]) for n in self._outputs]
        updates = [(Value(copies[p]), Value(copies[v])) for p, v in self._updates] or None
        program = compile(outputs[0] if self._single else outputs, updates=updates, **self._options)
        self._shared_params[size] = [(node, copies[node]) for node in self._graph.params.values()]
        return program

    # --- binding ---------------------------------------------------------------------
    @property
    def bound(self) -> bool:  # type: ignore[override]
        """Whether each size's program gets memory (compiled with ``bind=True``, or ``bind()`` called)."""
        return self._options["bind"]

    def bind(self) -> "BatchProgram":  # type: ignore[override]
        """Bind every size's program, those made so far and those made after; return the program."""
        with self._lock:
            self._options["bind"] = True
            for program in self._programs.values():
                program.bind()
        return self

    # --- running --------------------------------------------------------------------
    def run(self, feeds: Mapping[str, Any] | None = None) -> list[np.ndarray] | np.ndarray:
        """Run once with the program for the batch size of ``feeds`` (made on first use)."""
        feeds = checked_feeds(feeds, self._feedable)
        if not self._options["bind"]:
            raise GraphError(
                f"program {self._options['name'] or self._graph.name!r} was compiled with bind=False: its sizes are "
                "planned but have no memory to run in; call prog.bind() once (it binds every size's program) and "
                "run it, or compile with bind=True"
            )
        size = batch_size_of(self._batched_inputs, feeds)
        program = self.specialize(size)
        for template, copy in self._shared_params[size]:
            if copy.data is not template.data:  # the stored array was replaced: the program sees it as a fixed one would
                copy.data = template.data
        return program.run(feeds)

    __call__ = run

    # --- what the last specialisation planned -------------------------------------------
    def _current(self) -> Program:
        if self._last is None:
            raise GraphError(
                f"program {self._options['name'] or self._graph.name!r} has no plan yet: its graph holds the batch "
                "size (None), and each batch size gets a plan of its own; run it or call prog.specialize(size) "
                "first (then .plan, .memory and .cost are those of the last size used)"
            )
        return self._last

    @property
    def plan(self):  # type: ignore[override]
        return self._current().plan

    @property
    def memory(self):  # type: ignore[override]
        return self._current().memory

    @property
    def cost(self):  # type: ignore[override]
        return self._current().cost

    @property
    def remat(self):  # type: ignore[override]
        return self._current().remat

    @property
    def params(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._current().params

    @property
    def state(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self._current().state

    def save(self, path: Any) -> None:
        """A saved program has one plan: save the specialisation of one size."""
        sizes = ", ".join(map(str, self._programs)) or "none yet"
        raise GraphError(
            f"program {self._options['name'] or self._graph.name!r}: its batch size varies, and a saved program has "
            f"one plan; save one size's program, prog.specializations[size].save(path) (sizes made: {sizes})"
        )

    def to_source(self) -> str:
        """A module has one plan: write the specialisation of one size."""
        sizes = ", ".join(map(str, self._programs)) or "none yet"
        raise GraphError(
            f"program {self._options['name'] or self._graph.name!r}: its batch size varies, and a module holds one "
            f"plan; write one size's program, prog.specialize(size).to_source() (sizes made: {sizes})"
        )

    def __repr__(self) -> str:
        name = self._options["name"] or self._graph.name
        unbound = "" if self.bound else ", not bound"
        return f"<Program {name!r}: batch size varies; specialised for {list(self._programs) or 'no size yet'}{unbound}>"


def batch_size_of(batched_inputs: Sequence[tuple[str, Node]], feeds: Mapping[str, Any]) -> int:
    """The batch size that the fed inputs among ``batched_inputs`` (name, input node with None
    dims) agree on, or a GraphError naming the inputs that disagree."""
    first: tuple[str, tuple[int, ...], int] | None = None
    for name, node in batched_inputs:
        if name not in feeds:
            continue
        shape = _fed_shape(node, feeds[name])
        sizes = {s for d, s in zip(node.shape, shape) if d is None}
        if len(sizes) > 1:
            raise GraphError(
                f"feed {name!r} (the graph's input of shape {node.shape}) has shape {shape}: its None "
                f"dimensions get sizes {sorted(sizes)}, but every None is the one batch size of the run"
            )
        size = sizes.pop()
        if first is None:
            first = (name, shape, size)
        elif size != first[2]:
            raise GraphError(
                f"inputs {first[0]!r} and {name!r} disagree on the batch size: {first[0]!r} is fed shape "
                f"{first[1]} (batch {first[2]}) and {name!r} shape {shape} (batch {size}); every None of "
                "every input stands for one batch size per run"
            )
    if first is None:
        names = ", ".join(repr(name) for name, _ in batched_inputs) or "none"
        raise GraphError(
            f"no fed input gives the batch size (None) of this run (inputs with None: {names}); feed them, "
            "or run prog.specialize(size).run(feeds)"
        )
    name, shape, size = first
    if size < 1:
        raise GraphError(
            f"feed {name!r} has shape {shape}: a batch of {size} rows; a batch needs at least one row (a mean "
            "over an empty batch has no value), so skip the run instead"
        )
    return size


def _fed_shape(node: Node, value: Any) -> tuple[int, ...]:
    """The shape of a feed for a batched input, checked against the input's fixed dimensions."""
    if isinstance(value, np.ndarray):
        shape = value.shape
    elif isinstance(value, Value):
        raise GraphError(f"{_feed_phrase(node)} is a graph Value; feed a NumPy array with the data")
    else:
        try:
            shape = tuple(np.shape(value))
        except (ValueError, TypeError) as exc:
            raise GraphError(f"{_feed_phrase(node)} cannot be made an array ({exc}); feed a rectangular NumPy array") from None
    if len(shape) != len(node.shape) or any(d is not None and d != s for d, s in zip(node.shape, shape)):
        raise GraphError(f"{_feed_phrase(node)} has shape {shape}; feed an array of shape {node.shape} with the batch size for None")
    return shape


def _feed_phrase(node: Node) -> str:
    return f"feed {node.name!r} (the graph's input of shape {node.shape} {node.dtype.name}; None is the batch size)"
