"""Finite-difference checks of the gradients graphc builds.

:func:`gradcheck` compares the vector-Jacobian product that :func:`graphc.grad`
builds with central differences of the forward graph, in float64, along a few
random directions (JAX's ``check_grads``); when a check fails it locates the
worst element with a per-element finite-difference gradient (PyTensor's
``verify_grad``) and says which parameter, which element, and by how much.

The math. Let ``y = F(w)`` with Jacobian ``J = ∂y/∂w``, let ``c`` be a random
cotangent of y's shape (``c = 1`` when y is a scalar) and ``t`` a random unit
direction of w's shape. With ``f(w) = ⟨F(w), c⟩``:

    numeric   = (f(w + εt) - f(w - εt)) / 2ε  =  ⟨J t, c⟩ + O(ε²)
    analytic  = ⟨t, Jᵀ c⟩,   Jᵀ c = grad(y, w, seed=c)

so the check is the transpose identity ``⟨J t, c⟩ = ⟨t, Jᵀ c⟩``: the left side
needs only the forward kernels, the right side only the adjoint graph. The two
agree when ``|analytic - numeric| ≤ atol + rtol · max(|analytic|, |numeric|)``.

Why float64: the central difference has truncation error ``ε²/6 · f'''`` and
rounding error about ``u · |f| / ε`` (u the unit round-off). In float64
(u ≈ 1.1e-16) with ε = 1e-6 both are near 1e-10 relative, far below rtol =
1e-6; in float32 (u ≈ 6e-8) no ε makes both small. A float32 graph is
therefore cloned into float64 first. If a check fails only from noise (very
large values, steep functions), raise ``eps`` rather than loosen ``rtol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from graphc import ops
from graphc.autodiff import grad
from graphc.compile import compile as compile_program
from graphc.errors import GraphError
from graphc.ir import Graph, Node, Value, ancestors, as_values, check_array
from graphc.ops.core import bind
from graphc.specialize import batch_size_of, holds_batch, specialize_graph

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
_COTANGENT = "gradcheck_cotangent"


class GradcheckError(AssertionError):
    """The gradient graphc builds disagrees with finite differences.

    ``failures`` holds one :class:`ElementMismatch` per failing ``wrt`` (the
    worst element found by the per-element finite differences).
    """

    def __init__(self, message: str, failures: Sequence["ElementMismatch"]) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass(frozen=True)
class ElementMismatch:
    """The worst element of one wrt's gradient: where it is and both values there."""

    name: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    rel_error: float


@dataclass
class GradcheckReport:
    """What :func:`gradcheck` measured, per ``wrt`` name (all checks passed).

    ``max_rel_error[name]`` is the largest ``|a - n| / max(|a|, |n|)`` over the
    directions (0 where both are 0), ``max_abs_error[name]`` the largest ``|a - n|``.
    """

    max_rel_error: dict[str, float] = field(default_factory=dict)
    max_abs_error: dict[str, float] = field(default_factory=dict)
    directions: int = 0
    eps: float = 0.0
    graph_dtype: str = "float64"  # the dtype of y's graph; the check itself ran in float64

    def __str__(self) -> str:
        rows = [f"gradcheck ({self.graph_dtype} graph, checked in float64): {self.directions} directions, eps {self.eps:g}"]
        for name in self.max_rel_error:
            rows.append(f"  {name:<20} max rel error {self.max_rel_error[name]:.2e}, max abs error {self.max_abs_error[name]:.2e}")
        return "\n".join(rows)


# --- cloning the needed subgraph into float64 -----------------------------------


_ancestors = ancestors


def _f64(dtype: np.dtype) -> np.dtype:
    return F64 if dtype == F32 else dtype


def _clone_f64(roots: Sequence[Node]) -> tuple[Graph, dict[Node, Value]]:
    """A new graph holding ``roots`` and their ancestors with float32 replaced by float64.

    Sources are rebuilt with ``gc.input`` / ``gc.param`` / ``gc.constant``
    (int values kept as they are), every other node with ``bind`` on its op and
    attributes; an attribute named ``dtype`` that says float32 (``one_hot``)
    says float64 in the clone.
    """
    old = roots[0].graph
    clone: dict[Node, Value] = {}
    with Graph(f"{old.name}/gradcheck") as graph:
        for node in _ancestors(roots):
            kind = node.kind
            if kind == "input":
                clone[node] = ops.input(node.name, node.shape, _f64(node.dtype))
            elif kind == "param":
                clone[node] = ops.param(node.name, node.shape, _f64(node.dtype), init=node.data.astype(_f64(node.dtype)))
            elif kind == "const":
                clone[node] = ops.constant(node.data.astype(_f64(node.dtype)), name=node.name)
            else:
                attrs = dict(node.attrs)
                if "dtype" in attrs and np.dtype(attrs["dtype"]) == F32:
                    attrs["dtype"] = "float64"
                operands = [clone[i] for i in node.inputs]
                clone[node] = bind(node.op, operands, attrs, node.name)
            if clone[node].dtype != _f64(node.dtype):
                raise GraphError(
                    f"gradcheck: cannot clone {node.describe()} into float64: the clone has dtype "
                    f"{clone[node].dtype.name} (does op {node.op.name!r} fix its dtype?)"
                )
    return graph, clone


def _specialized_for_feeds(y: Value, targets: list[Value], feeds: Mapping[str, Any]) -> tuple[Value, list[Value]]:
    """``y`` and ``targets`` in y's graph specialised for the batch size of ``feeds``, if it holds
    one (None in input shapes); else unchanged."""
    roots = [y.node] + [w.node for w in targets]
    if not holds_batch(roots):
        return y, targets
    batched = [(name, node) for name, node in y.graph.inputs.items() if node.aval.has_batch]
    copies = specialize_graph(y.graph, roots, batch_size_of(batched, feeds))
    return Value(copies[y.node]), [Value(copies[w.node]) for w in targets]


# --- the check ------------------------------------------------------------------


def _unique_name(graph: Graph, name: str) -> str:
    while name in graph.inputs or name in graph.params:
        name += "_"
    return name


def _index_text(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else f"{name}[()]"


def _rel(a: float, n: float) -> float:
    scale = max(abs(a), abs(n))
    return abs(a - n) / scale if scale > 0 else 0.0


def gradcheck(
    y: Value,
    wrt: Sequence[Value],
    feeds: Mapping[str, Any] | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    directions: int = 3,
    seed: int = 0,
    max_elements: int = 4096,
) -> GradcheckReport:
    """Check ``grad(y, wrt)`` against central finite differences, in float64.

    For each ``w`` in ``wrt`` (inputs or params of y's graph) and each of
    ``directions`` random unit directions ``t``, with ``f(w) = ⟨y(w), c⟩`` for
    a random cotangent ``c`` (``c = 1`` for a scalar y)::

        (f(w + εt) - f(w - εt)) / 2ε  ≈  ⟨J t, c⟩  =  ⟨t, Jᵀ c⟩  =  ⟨t, grad(y, w, seed=c)⟩

    and the two sides must agree within ``atol + rtol · max(|lhs|, |rhs|)``.

    Parameters
    ----------
    y : Value
        Any float value; its graph may be float32 or float64. y's graph is
        never modified: the needed subgraph is cloned into float64 (float32
        inputs, params and constants become float64, int inputs stay as they are).
    wrt : sequence of Value
        Inputs or params of y's graph.
    feeds : mapping of name to array
        Values of the inputs y needs, in their graph dtype; a param not fed
        uses its stored value. Names of other inputs or params are accepted.
    eps, rtol, atol : float
        Step and tolerances. Raise ``eps`` rather than loosen ``rtol``.
    directions : int
        Random directions per ``wrt``.
    seed : int
        Seed of the generator of the directions and of ``c``.
    max_elements : int
        On failure, at most this many elements of the failing ``wrt`` get a
        per-element finite difference (a random sample beyond that).

    Returns
    -------
    GradcheckReport
        The largest relative and absolute errors per ``wrt`` name.

    Raises
    ------
    GradcheckError
        (an ``AssertionError``) when a check fails; the message names the
        ``wrt``, its worst element, the analytic and numeric values there and
        their relative error.
    GraphError
        For a bad argument: a non-float y, a ``wrt`` that is no input or param
        of y's graph, a feed of the wrong shape or dtype, an input not fed.

    Examples
    --------
    >>> import numpy as np, graphc as gc
    >>> with gc.Graph("g") as g:
    ...     x = gc.input("x", shape=(3,))
    ...     w = gc.param("w", shape=(3,), init=np.array([0.5, -1.0, 2.0]))
    ...     loss = gc.sum(gc.tanh(x * w) * w)
    >>> report = gc.gradcheck(loss, [x, w], {"x": np.array([1.0, 2.0, 3.0], np.float32)})
    >>> sorted(report.max_rel_error) == ["w", "x"] and max(report.max_rel_error.values()) < 1e-6
    True
    """

    (y,) = as_values([y])
    targets = as_values(wrt)
    old = y.graph
    if y.dtype not in (F32, F64):
        raise GraphError(f"gradcheck: y {y.node.describe()} is not a float value")
    for w in targets:
        if w.graph is not old:
            raise GraphError(f"gradcheck: wrt {w.node.describe()} belongs to graph {w.graph.name!r}, y to {old.name!r}")
        if w.node.kind not in ("input", "param") or w.dtype not in (F32, F64):
            raise GraphError(f"gradcheck: wrt {w.node.describe()} must be a float input or param of the graph")
    if len({w.name for w in targets}) != len(targets):
        raise GraphError("gradcheck: a wrt is listed twice")

    y, targets = _specialized_for_feeds(y, targets, feeds or {})
    old = y.graph
    graph, clone = _clone_f64([y.node] + [w.node for w in targets])
    feeds64 = _feeds_f64(old, clone, feeds or {})

    rng = np.random.default_rng(seed)
    cot = np.ones(()) if y.shape == () else rng.standard_normal(y.shape)
    with graph:  # the cotangent is an input, so one compiled program serves any c
        cot_in = ops.input(_unique_name(graph, _COTANGENT), y.shape, F64)
    y64 = clone[y.node]
    grads = grad(y64, [clone[w.node] for w in targets], seed=cot_in)
    analytic = compile_program(grads).run({**feeds64, cot_in.name: cot})
    forward = compile_program(y64)

    def f(name: str, value: np.ndarray) -> float:
        """⟨y, c⟩ with the value of ``name`` replaced."""
        return float(np.vdot(forward.run({**feeds64, name: value}), cot))

    report = GradcheckReport(directions=directions, eps=eps, graph_dtype=y.dtype.name)
    failed: list[tuple[Value, np.ndarray, str]] = []
    for w, g in zip(targets, analytic):
        base = feeds64[w.name]
        worst_rel, worst_abs, verdicts = 0.0, 0.0, []
        for _ in range(directions if base.size else 0):
            t = rng.standard_normal(base.shape)
            t /= np.linalg.norm(t)
            numeric = (f(w.name, base + eps * t) - f(w.name, base - eps * t)) / (2 * eps)  # ⟨J t, c⟩
            exact = float(np.vdot(g, t))  # ⟨t, Jᵀ c⟩
            err = abs(exact - numeric)
            worst_rel, worst_abs = max(worst_rel, _rel(exact, numeric)), max(worst_abs, err)
            if err > atol + rtol * max(abs(exact), abs(numeric)):
                verdicts.append(f"⟨t, Jᵀc⟩ = {exact:.9g} but (f(w+εt) - f(w-εt))/2ε = {numeric:.9g}")
        report.max_rel_error[w.name] = worst_rel
        report.max_abs_error[w.name] = worst_abs
        if verdicts:
            failed.append((w, g, verdicts[0]))
    if not failed:
        return report

    mismatches, lines = [], []
    for w, g, verdict in failed:
        base = feeds64[w.name]
        flat = np.arange(base.size)
        if base.size > max_elements:
            flat = np.sort(rng.choice(base.size, size=max_elements, replace=False))
        m = _worst_element(w.name, g, lambda value: f(w.name, value), base, flat, eps, rtol, atol)
        mismatches.append(m)
        sampled = f" (a sample of {flat.size} of {base.size} elements)" if flat.size < base.size else ""
        lines.append(
            f"gradient of {w.node.kind} {w.name!r} {w.shape} is wrong: worst element {_index_text(w.name, m.index)}"
            f"{sampled}: analytic {m.analytic:.9g}, numeric {m.numeric:.9g}, relative error {m.rel_error:.3g} "
            f"(rtol {rtol:g}, atol {atol:g}, eps {eps:g}); along a random direction t, {verdict}"
        )
    head = f"gradcheck of {y.node.describe()} failed for {', '.join(repr(w.name) for w, _, _ in failed)}:"
    raise GradcheckError("\n".join([head] + ["  " + line for line in lines]), mismatches)


def _feeds_f64(old: Graph, clone: dict[Node, Value], feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Feeds for the clone: checked against the original graph, cast to float64, params filled in."""
    result: dict[str, np.ndarray] = {}
    for name, value in feeds.items():
        node = old.inputs.get(name) or old.params.get(name)
        if node is None:
            raise GraphError(
                f"gradcheck: feed {name!r} names no input or param of graph {old.name!r}; "
                f"inputs and params: {', '.join(sorted(old.inputs) + sorted(old.params))}"
            )
        if node in clone:  # feeds y does not need are accepted and dropped
            result[name] = check_array(node, value, what="feed").astype(_f64(node.dtype))
    for node, value in clone.items():
        if node.kind == "input" and node.name not in result:
            raise GraphError(f"gradcheck: input {node.describe()} is needed but was not fed")
        if node.kind == "param" and node.name not in result:
            result[node.name] = value.value  # the stored value, as float64
    return result


def _worst_element(
    name: str, g: np.ndarray, f: Any, base: np.ndarray, flat: np.ndarray, eps: float, rtol: float, atol: float
) -> ElementMismatch:
    """Per-element central differences of ``f`` at the flat indices ``flat``; the worst one.

    Worst is the largest ``|a - n| / (atol + rtol · max(|a|, |n|))``: how many
    times over the tolerance the element is.
    """
    numeric = np.empty(flat.size)
    for k, i in enumerate(flat):
        step = np.zeros(base.size)
        step[i] = eps
        step = step.reshape(base.shape)
        numeric[k] = (f(base + step) - f(base - step)) / (2 * eps)
    exact = g.reshape(-1)[flat]
    err = np.abs(exact - numeric)
    k = int(np.argmax(err / (atol + rtol * np.maximum(np.abs(exact), np.abs(numeric)))))
    index = tuple(int(i) for i in np.unravel_index(flat[k], base.shape))
    return ElementMismatch(name, index, float(exact[k]), float(numeric[k]), _rel(float(exact[k]), float(numeric[k])))
