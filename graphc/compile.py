"""``compile``: the pipeline from Values to a runnable :class:`Program`.

    outputs, updates
      ─► passes     Dataflow: dead code, common subexpressions, running sums,
                    constants folded and exact identities (simplify=True),
                    writers of the updates, storage of their own for the outputs
      ─► remat      the same Dataflow with recomputed clones (memory budget)
      ─► schedule   one order: updates as early as their reads allow
      ─► memory     MemoryPlan: aliasing, in-place reuse, liveness, arena offsets
      ─► lower      Plan: instructions over numbered buffers
      ─► runtime    Executable: the Plan bound to an arena, run again and again
                    (``bind=False`` stops before this stage: a plan, no memory)

Each stage is a function of the previous stage's value; this module only
glues them and checks the user's arguments.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Any, Iterable, Mapping, Sequence

import numpy as np

from graphc.autodiff import grad
from graphc.errors import GraphError
from graphc.gcpause import without_cyclic_gc
from graphc.ir import Aval, Node, Value, ancestors, as_values, is_real, optimizer_scope
from graphc.memory import MEMORY_MODES, MemoryPlan, plan_memory, planned_bytes
from graphc.ops.core import lookup
from graphc.ops import fused as fused_ops
from graphc.passes import fuse as fuse_chains
from graphc.passes import optimize
from graphc.plan import Plan, lower
from graphc.runtime import Executable, check_feeds_mapping
from graphc.remat import RematReport, check_budget, check_solver, check_time_limit, rematerialize
from graphc.remat.progress import print_progress
from graphc.schedule import schedule
from graphc import validate

REMAT_POLICIES = ("none", "sqrt", "revolve", "optimal", "optimal-lp")


@dataclass(frozen=True)
class Cost:
    """FLOPs of one run, split as the lecture counts them (backward ≈ 2× forward)."""

    forward_flops: int
    backward_flops: int
    recompute_flops: int
    update_flops: int = 0

    @property
    def total_flops(self) -> int:
        return self.forward_flops + self.backward_flops + self.recompute_flops + self.update_flops

    def __str__(self) -> str:
        ratio = self.backward_flops / self.forward_flops if self.forward_flops else float("nan")
        return (
            f"forward {self.forward_flops:,d} FLOPs, backward {self.backward_flops:,d} ({ratio:.2f}x forward), "
            f"recompute {self.recompute_flops:,d}"
        )


def plan_cost(plan: Plan) -> Cost:
    """Count each instruction's FLOPs with its op's cost model, by tag."""
    totals = {"forward": 0, "backward": 0, "recompute": 0, "update": 0}
    avals: dict[int, Aval] = {}  # each buffer's, built once: a buffer is read by many instructions

    def aval(buffer: int) -> Aval:
        if buffer not in avals:
            avals[buffer] = plan.buffers[buffer].aval
        return avals[buffer]

    for ins in plan.instructions:
        flops = lookup(ins.op).flops([aval(a) for a in ins.args], aval(ins.out), **ins.attrs)
        totals[ins.tag] += int(flops)
    return Cost(totals["forward"], totals["backward"], totals["recompute"], totals["update"])


class Program:
    """A compiled plan bound to memory: ``run(feeds)`` returns the outputs.

    Attributes: ``plan`` (printable :class:`~graphc.plan.Plan`), ``memory``
    (:class:`~graphc.memory.MemoryPlan`), ``cost`` (:class:`Cost`), ``remat``
    (:class:`~graphc.remat.RematReport`: what the recompute stage chose).

    Binding: a program compiled with ``bind=False`` has all of these but no
    memory (no arena, no executable), so a model whose arena would not fit in
    this machine can still be planned and measured. ``bind()`` allocates it in
    place (once; ``bound`` says whether it has been); until then ``run`` is a
    GraphError saying so. ``save`` needs no binding.

    Threads: ``run`` may be called from several threads at once. Each concurrent
    run takes a bound executable (its own arena) from a pool, which grows lazily
    to the number of runs in flight, so memory is the arena times the largest
    concurrency seen; the kernels release the GIL in BLAS and large ufuncs, so
    large steps run in parallel (``benchmarks/threads.py`` measured this against
    one lock around ``run``). Runs of a program with ``updates`` take turns (one
    lock): each reads and writes the stored params as if the runs were made one
    after the other, in some order. Stored params are shared by every program of
    the graph: a run of one program is not synchronised with ``assign`` or with
    the updates of another program.
    """

    def __init__(
        self,
        plan: Plan,
        stored_params: Mapping[str, np.ndarray] | None = None,
        memory: MemoryPlan | None = None,
        feedable: frozenset[str] | None = None,
        single: bool = False,
        check_numerics: bool = False,
        bind: bool = True,
    ) -> None:
        if not isinstance(check_numerics, bool):
            raise GraphError(f"check_numerics={check_numerics!r}: pass True or False")
        check_bind(bind)
        if validate.VALIDATE_PLANS:
            validate.validate(plan)
        self.plan = plan
        self.memory = memory
        self.cost = plan_cost(plan)
        self.check_numerics = check_numerics
        self._feedable = feedable if feedable is not None else frozenset(plan.inputs) | frozenset(plan.params)
        self._single = single
        self._stored = stored_params if stored_params is not None else {}
        self._executable: Executable | None = None  # the first binding: runs with updates use it alone
        self._idle: list[Executable] = []  # executables no run is using
        self._pool_lock = threading.Lock()
        self._update_lock = threading.Lock() if plan.updated_params else None
        self.remat: RematReport | None = None
        if bind:
            self.bind()

    @property
    def bound(self) -> bool:
        """Whether the program has memory to run in (compiled with ``bind=True``, or ``bind()`` called)."""
        return self._executable is not None

    def bind(self) -> "Program":
        """Allocate the program's memory (its arena of ``plan.arena_bytes``, feed slots) and prepare
        its kernels, in place; return the program. Binding a bound program does nothing."""
        with self._pool_lock:
            if self._executable is None:
                self._executable = Executable(self.plan, self._stored, check_numerics=self.check_numerics)
                self._idle.append(self._executable)
        return self

    def run(self, feeds: Mapping[str, Any] | None = None) -> list[np.ndarray] | np.ndarray:
        """Run once. ``feeds`` maps input (and optionally param) names to arrays.

        Returns new arrays in output order (one array if one Value was compiled).
        Feeds the outputs do not need are accepted; unknown names are an error.
        Safe to call from several threads at once (see the class docstring).
        """
        if type(feeds) is not dict or not self._feedable.issuperset(feeds):  # else a dict of known names
            feeds = checked_feeds(feeds, self._feedable)
        if self._executable is None:
            raise GraphError(
                f"program {self.plan.name!r} was compiled with bind=False: it has a plan but no memory to run in; "
                f"call prog.bind() once (it allocates the {self.plan.arena_bytes:,d}-byte arena) and run it, "
                "or compile with bind=True"
            )
        if self._update_lock is not None:
            with self._update_lock:  # one updating run at a time: one executable suffices
                return self._unpack(self._executable.run(feeds))
        executable = self._take_executable()
        try:
            return self._unpack(executable.run(feeds))
        finally:
            self._idle.append(executable)  # list.append and list.pop are atomic

    __call__ = run

    def _take_executable(self) -> Executable:
        try:
            return self._idle.pop()
        except IndexError:
            return Executable(self.plan, self._stored, check_numerics=self.check_numerics)

    def _unpack(self, results: list[np.ndarray]) -> list[np.ndarray] | np.ndarray:
        return results[0] if self._single else results

    param_roles: Mapping[str, str] = MappingProxyType({})
    """Each stored param's role by name (``"param"`` or ``"state"``); a param missing here is ``"param"``."""

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Copies of the stored arrays of the trained params (role ``"param"``) the plan reads or updates."""
        return self._stored_copies("param")

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Copies of the stored arrays of the state params (role ``"state"``: optimizer moments, step
        counts) the plan reads or updates, by name: ``prog.state["w.exp_avg"]``.

        Copies, taken now: a later run does not change them, and writing them changes nothing
        (``Value.assign`` sets a stored array).
        """
        return self._stored_copies("state")

    def _stored_copies(self, role: str) -> dict[str, np.ndarray]:
        return {
            name: np.array(self._stored[name], copy=True)
            for name in self.plan.params
            if self.param_roles.get(name, "param") == role and self._stored.get(name) is not None
        }

    def save(self, path: "str | os.PathLike[str] | IO[bytes]") -> None:
        """Write this program to one file (an ``.npz``): its plan, the stored array of
        every param it reads or updates (optimizer state included, each with its
        role), and whether it returns one array or a list.

        ``gc.load(path)`` gives a program that runs without the graph and continues
        training bit for bit (its ``memory`` and ``remat`` reports are not saved:
        None). Runs with updates wait while the arrays are written, so the file
        holds the params of one step. See :mod:`graphc.saving` for the format.
        """
        from graphc.saving import DEFAULT_ROLE, save_program  # graphc.saving imports this module

        stored = self._stored
        arrays = {name: stored[name] for name in self.plan.params if stored.get(name) is not None}
        roles = {name: self.param_roles.get(name, DEFAULT_ROLE) for name in arrays}
        with self._update_lock or contextlib.nullcontext():
            save_program(path, self.plan, arrays, roles, single=self._single,
                         feedable=self._feedable, check_numerics=self.check_numerics)

    def to_source(self) -> str:
        """This program as the source of a Python module that runs with NumPy alone.

        The module's ``run(feeds, params, arena=None)`` returns what ``run(feeds)`` returns, bit
        for bit, reading ``params`` (name → array) where this program reads its stored params
        and updating them in place as this program's updates do; one line of NumPy per
        instruction, the arena's views made once. ``prog.params`` and ``prog.state`` are the
        arrays to start from. A kernel that needs more than NumPy (``erf``, the exact ``gelu``)
        is a GraphError naming the instruction and its op. See :mod:`graphc.codegen`.
        """
        from graphc.codegen import program_source

        return program_source(self.plan, single=self._single, feedable=self._feedable,
                              check_numerics=self.check_numerics)

    def __repr__(self) -> str:
        unbound = "" if self.bound else ", not bound"
        return (f"<Program {self.plan.name!r}: {len(self.plan.instructions)} instructions, "
                f"arena {self.plan.arena_bytes:,d} B{unbound}>")


def check_bind(bind: Any) -> None:
    """``bind`` must be True or False (a truthy string is not a choice)."""
    if not isinstance(bind, bool):
        raise GraphError(
            f"bind={bind!r}: pass True (allocate the program's memory now) or False (plan only; prog.bind() "
            "allocates it later)"
        )


def checked_feeds(feeds: Any, feedable: frozenset[str]) -> Mapping[str, Any]:
    """``feeds`` as a mapping of names to arrays, every name an input or param of the graph."""
    feeds = check_feeds_mapping(feeds)
    unknown = sorted(set(feeds) - feedable)
    if unknown:
        raise GraphError(
            f"feed {', '.join(map(repr, unknown))} names no input or param of the graph; "
            f"inputs and params: {', '.join(sorted(feedable))}"
        )
    return feeds


class _StoredParams(Mapping):
    """The graph's params' stored arrays, read live (``node.data``), so a run can tell
    when one was replaced after binding."""

    def __init__(self, graph) -> None:
        self._params = graph.params

    def __getitem__(self, name: str) -> np.ndarray:
        return self._params[name].data

    def get(self, name: str, default: Any = None) -> Any:  # Mapping.get's try/except costs a run µs
        node = self._params.get(name)
        return default if node is None else node.data

    def __iter__(self):
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def holders(self, names: Iterable[str]) -> dict[str, Any]:
        """The param nodes of ``names``, each with its name and its live array as ``.data``: a run checks
        them directly, without a lookup per param."""
        return {name: self._params[name] for name in names}


def _update_pairs(updates: Any) -> list[tuple[Any, Any]]:
    """``updates`` as (param, new value) pairs: a mapping, a list of pairs, or None."""
    if updates is None:
        return []
    if isinstance(updates, Mapping):
        return list(updates.items())
    if not isinstance(updates, (list, tuple)):
        raise GraphError(
            f"updates={updates!r:.40} must be a mapping {{param: new value}} or a list of (param, new value) pairs"
        )
    for index, pair in enumerate(updates):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise GraphError(f"updates[{index}] must be a (param, new value) pair, got {pair!r:.60}")
    return [tuple(pair) for pair in updates]


def _check_updates(updates: Any, graph) -> list[tuple[Node, Node]]:
    checked = []
    for target, value in _update_pairs(updates):
        if not isinstance(target, Value):
            raise GraphError(f"updates: the key {target!r:.40} must be a param Value, got {type(target).__name__}")
        if target.node.kind != "param":
            raise GraphError(f"updates: {target.node.describe()} is not a param; only params can be updated")
        if not isinstance(value, Value):
            raise GraphError(
                f"updates: the new value of {target.node.describe()} must be a Value of its graph, got "
                f"{type(value).__name__}; write it with graph ops, e.g. {{w: w - lr * dw}}"
            )
        if value.graph is not graph or target.graph is not graph:
            raise GraphError(
                f"updates: {target.node.describe()} and its new value must belong to the compiled graph "
                f"{graph.name!r}; update params of the graph whose outputs are compiled"
            )
        if value.aval != target.aval:
            raise GraphError(
                f"updates: new value {value.node.describe()} has {value.aval}, which does not match param "
                f"{target.node.describe()} of {target.aval}; the new value must have the param's shape and dtype"
            )
        checked.append((target.node, value.node))
    seen: set[Node] = set()
    for target, _ in checked:
        if target in seen:
            raise GraphError(f"updates: param {target.name!r} is updated twice; give each param one new value")
        seen.add(target)
    return checked


def _with_state_updates(pairs: list[tuple[Node, Node]], values: list[Value], graph) -> list[tuple[Node, Node]]:
    """``pairs`` and the state updates the graph records for the nodes this program computes.

    An op records on the graph the updates every program computing one of its nodes makes
    (``Graph.state_updates``: batch norm's running statistics in training); a program
    whose outputs or updates read that node makes them. A state param the user's
    ``updates`` update too is a GraphError: one run writes each param once.
    """
    if not graph.state_updates:
        return pairs
    needed = set(ancestors([v.node for v in values] + [value for _, value in pairs]))
    user = {param for param, _ in pairs}
    recorded = [(param, value) for param, (trigger, value) in list(graph.state_updates.items()) if trigger in needed]
    for param, _ in recorded:
        if param in user:
            trigger = graph.state_updates[param][0]
            raise GraphError(
                f"updates: state param {param.name!r} is updated by batch-norm node {trigger.name!r} "
                "(training=True) already, in every program that computes it; drop it from updates"
            )
    return pairs + recorded


def _check_outputs(outputs: Any) -> list[Value]:
    if isinstance(outputs, Value):
        return [outputs]
    if not isinstance(outputs, (list, tuple)):
        raise GraphError(f"compile: outputs must be a Value or a list of Values, got {outputs!r:.40}")
    values = as_values(outputs, "compile: outputs")
    if not values:
        raise GraphError("compile needs at least one output; give a Value or a non-empty list of Values")
    return values


def _check_options(remat: Any, memory: Any, memory_budget: Any, time_limit: Any, name: Any, bind: Any,
                   solver: Any = "auto", progress: Any = False, simplify: Any = True, fuse: Any = False) -> None:
    """The compile options, checked before any work: each wrong one is a GraphError naming it."""
    if not isinstance(remat, str) or remat not in REMAT_POLICIES:
        raise GraphError(f"remat={remat!r} is not a known policy; choose one of {', '.join(REMAT_POLICIES)}")
    if not isinstance(memory, str) or memory not in MEMORY_MODES:
        raise GraphError(f"memory={memory!r} is not a placement mode; choose one of {', '.join(MEMORY_MODES)}")
    if check_budget(memory_budget) is not None and memory_budget < 0:
        raise GraphError(f"memory_budget={memory_budget!r} must be an int number of bytes >= 0, or None for no budget")
    check_time_limit(time_limit)
    check_solver(solver)
    if not isinstance(progress, bool):
        raise GraphError(f"compile: progress={progress!r} must be True or False")
    if not isinstance(simplify, bool):
        raise GraphError(f"compile: simplify={simplify!r} must be True or False")
    if not isinstance(fuse, bool):
        raise GraphError(f"compile: fuse={fuse!r} must be True or False")
    if fuse and not fused_ops.available():
        raise GraphError(
            f"compile(fuse=True) evaluates fused chains with {fused_ops.LIBRARY}, which is not installed: "
            "pip install graphc[fast] (or compile with fuse=False, the NumPy path)"
        )
    if name is not None and not (isinstance(name, str) and name):
        raise GraphError(f"compile: name must be a non-empty string or None, got {name!r}")
    check_bind(bind)


@without_cyclic_gc
def compile(  # noqa: A001
    outputs: Value | Sequence[Value],
    *,
    remat: str = "none",
    memory_budget: int | None = None,
    updates: Mapping[Value, Value] | Sequence[tuple[Value, Value]] | None = None,
    memory: str = "auto",
    time_limit: float = 60.0,
    solver: str = "auto",
    progress: bool = False,
    name: str | None = None,
    check_numerics: bool = False,
    bind: bool = True,
    simplify: bool = True,
    fuse: bool = False,
) -> Program:
    """Compile ``outputs`` into a :class:`Program`.

    ``updates`` maps params to new values (``{w: w - lr * dw}``, Theano's
    ``updates``; the optimizers of :mod:`graphc.optim` return one): each new
    value is written into the param's stored array inside the backward pass, as
    soon as it can be computed and every read of the old value has run, by the
    kernel that computes it where that kernel is elementwise. All new values are
    computed from the old ones, and outputs have the values the run read. One
    training step is one run.
    A program that computes a training-mode ``batch_norm`` node also updates its
    running statistics (state params) this way; ``updates`` may not name them.

    ``memory`` picks the arena placement: ``"auto"`` (the smallest of
    greedy-by-size, best-fit-by-start and first-fit-by-start, with in-place
    reuse), one of those by name, or ``"no-reuse"`` (every value its own storage).

    ``remat`` trades memory for compute (see :mod:`graphc.remat`): ``"none"``,
    ``"sqrt"``, ``"revolve"``, ``"optimal"`` (Checkmate's MILP, solved within
    ``time_limit`` seconds; the best schedule found when the limit is hit, as
    ``prog.remat`` reports) or ``"optimal-lp"`` (its LP relaxation, rounded);
    with ``memory_budget`` (bytes of the arena), the policy's least recompute
    that fits, or a GraphError naming the least feasible budget.
    ``solver`` picks the "optimal" policy's solver: ``"auto"`` (by the problem's
    size), ``"milp"`` or ``"cpsat"``; ``progress=True`` prints the solver's best
    schedule and bound to stderr as they improve.

    ``check_numerics=True`` checks every result as it is computed: the first
    instruction that produces a NaN or Inf raises a GraphError naming it (index
    and listing line), its op, its forward node, and which input was non-finite
    (or that the op itself overflowed). Without it, runs do no such checks.

    ``bind=False`` plans without allocating: the program's ``plan``, ``memory``,
    ``cost`` and ``remat`` are there, its arena is not, so a model of gigabytes
    is planned in the memory of its graph. ``prog.bind()`` allocates it later,
    in place; running an unbound program is a GraphError saying to.

    ``simplify=False`` leaves out the simplification pass (constants folded at
    compile time, exact algebraic identities such as ``x·1 → x``; see
    :mod:`graphc.passes.simplification`): the plan then computes every op the
    graph applies (equal ones once), which is how tests compare a simplified plan
    with the unsimplified one: they compute the same bits.
    """
    single = isinstance(outputs, Value)
    values = _check_outputs(outputs)
    graph = values[0].graph
    for v in values:
        if v.graph is not graph:
            raise GraphError(
                f"compile: output {v.node.describe()} belongs to graph {v.graph.name!r}, another graph than "
                f"the first output's ({graph.name!r}); compile Values of one graph"
            )
    _check_options(remat, memory, memory_budget, time_limit, name, bind, solver, progress, simplify, fuse)
    pairs = _with_state_updates(_check_updates(updates, graph), values, graph)
    batched = _batch_program(values, pairs, single, remat=remat, memory_budget=memory_budget, memory=memory,
                             time_limit=time_limit, solver=solver, progress=progress, name=name,
                             check_numerics=check_numerics, bind=bind, simplify=simplify, fuse=fuse)
    if batched is not None:
        return batched

    out_nodes = [v.node for v in values]
    flow = optimize(out_nodes, pairs, simplify=simplify)
    if fuse:
        flow = fuse_chains(flow)
    flow, remat_report = rematerialize(
        flow, remat, memory_budget, lambda f: planned_bytes(f, schedule(f), memory), time_limit,
        solver=solver, progress=print_progress if progress else None,
    )
    order = schedule(flow)
    memory_plan = plan_memory(flow, order, memory)
    plan = lower(name or graph.name, flow, order, memory_plan)

    feedable = frozenset(graph.inputs) | frozenset(graph.params)
    prog = Program(plan, _StoredParams(graph), memory_plan, feedable, single, check_numerics, bind)
    prog.remat = remat_report
    prog.param_roles = MappingProxyType({name: graph.params[name].role for name in plan.params})
    return prog


def _batch_program(values: list[Value], pairs: list[tuple[Node, Node]], single: bool, **options: Any) -> Program | None:
    """A program specialised per batch size when the outputs or updates read the batch size (None), else None."""
    from graphc.specialize import BatchProgram, holds_batch  # it builds on Program and compile

    if not holds_batch([v.node for v in values] + [value for _, value in pairs]):
        return None
    if not isinstance(options["check_numerics"], bool):
        raise GraphError(f"check_numerics={options['check_numerics']!r}: pass True or False")
    return BatchProgram([v.node for v in values], pairs, single, options)


def sgd(loss: Value, params: Sequence[Value], lr: float) -> dict[Value, Value]:
    """Plain gradient-descent updates ``{W: W - lr · ∂loss/∂W}`` for ``compile(updates=...)``.

    Each update is built in the scope ``optim/<W's name>``, as :mod:`graphc.optim` builds its own.
    """
    if not (is_real(lr) and np.isfinite(lr)):
        raise GraphError(f"sgd: lr={lr!r} must be a finite number (the step size)")
    params = as_values(params, "sgd: params")
    grads = grad(loss, params)
    updates = {}
    for p, g in zip(params, grads):
        with optimizer_scope(p):
            updates[p] = p - lr * g
    return updates
