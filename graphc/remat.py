"""Recompute: which forward values to keep, which to compute again for the backward pass.

The lecture's two costs — "BP needs all the intermediate results in memory"
and "takes twice the computation of the forward pass" — are one trade-off.
A policy rewrites the program's dataflow into *instances*: the first
evaluation of a forward node is the node itself; every later evaluation is a
clone (``Node.recompute_of``), and each backward node reads the instance that
is current when it runs. The rewritten dataflow's node list is the intended
execution order; the memory planner then measures what the choice costs.

Policies:

- ``"none"``: keep everything.
- ``"sqrt"``: Chen et al. 2016. The forward graph is cut at its *separators*
  (values every input-to-loss path passes through); every k-th separator is
  kept, and each segment is computed once more, from its checkpoint, just
  before its backward — one extra forward at most, O(√n) memory for k ≈ √n.
- ``"revolve"``: Griewank & Walther's binomial checkpointing over the chain of
  separators: with s snapshots, the reversal of l steps takes the least
  possible number of forward steps, r·l − C(s+r, s+1), r the least with
  C(s+r, s) ≥ l.
- ``"optimal"``: Checkmate (Jain et al. 2020), a MILP over compute and keep
  decisions per stage, solved with HiGHS (see :mod:`graphc.checkmate`). As in
  the other policies only forward values are recomputed, and single-consumer
  runs of forward ops are fused into one node first (a layer's matmul, bias
  add and activation), as Checkmate schedules layers; the optimum is over
  those schedules. Above ``MILP_MAX_NODES`` nodes, and for ``"optimal-lp"``,
  the LP relaxation is rounded and improved by local search. The constructed
  sqrt and revolve schedules stay candidates, so "optimal" never recomputes
  more than they do at the same budget.

Given a ``memory_budget``, a policy tries its candidate settings and keeps
the least recompute whose planned arena fits (ties: the smaller arena).
Guarantees (:func:`rematerialize`):

- **Never above store-all.** Storing everything is measured first and is a
  candidate of every policy; a recompute that saves no memory is never chosen.
- **Monotone in the budget.** A schedule that fits a budget fits every larger
  one, so the candidates only grow with the budget: the constructed settings
  do not depend on it, and every schedule a solver found for the same problem
  is remembered (``_FOUND``) and offered again. A larger budget then never
  gives more recompute, nor a larger arena at equal recompute (for compiles
  of one graph in one process; a solve cut short by ``time_limit`` can still
  find less than a later one with more time).
- **``time_limit`` bounds the stage.** One :class:`Deadline` is set on entry;
  the constructed ladders, each solve and re-solve, the LP, the local searches
  and the MILP's child process get the time left, and the best schedule
  known when it passes is returned.
- **A budget below the floor is reported at once.** :func:`least_budget_bound`
  (one linear pass) bounds every schedule's arena from below; a budget under it
  is a GraphError naming the bound and the store-all peak before any search.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Node, is_int, is_real
from graphc.memory.analysis import alias_analysis, align, peak_live_bytes
from graphc.dataflow import Dataflow

if TYPE_CHECKING:
    from graphc.checkmate import RematProblem

# --- the forward graph and its separators ---------------------------------------------------


def forward_nodes(flow: Dataflow) -> list[Node]:
    """Computed nodes of the forward pass (:meth:`Dataflow.roles`): no gradient behind them, no writer."""
    roles = flow.roles()
    return [n for n in flow.nodes if roles.get(n) == "forward"]


def separators(flow: Dataflow, forward: Sequence[Node]) -> list[int]:
    """Positions i in ``forward`` after which exactly one forward value is still needed.

    Walking the forward nodes in topological order, the *frontier* after
    position i is the set of values computed at or before i that a later
    forward node reads. Where it is the single value ``forward[i]``, every path
    from the inputs to the rest of the graph passes through it: it is a cut
    vertex on all input-to-loss paths (the articulation points the
    gradient-checkpointing project for TensorFlow uses, restricted to those on
    every path). A linear sweep over last uses finds them all.
    """
    position = {n: i for i, n in enumerate(forward)}
    last_forward_use = {n: i for i, n in enumerate(forward)}
    for i, node in enumerate(forward):
        for a in flow.args[node]:
            if a in position:
                last_forward_use[a] = max(last_forward_use[a], i)
    ends = [0] * (len(forward) + 1)  # how many frontier values stop being needed after each position
    open_count, cuts = 0, []
    for i, node in enumerate(forward):
        open_count += 1
        for a in {a for a in flow.args[node] if a in position}:
            if last_forward_use[a] == i:
                open_count -= 1
        if last_forward_use[node] == i:
            open_count -= 1  # a value nothing later reads (the loss) closes at once
        if open_count == 1 and last_forward_use[node] > i or open_count == 0:
            cuts.append(i)
    return cuts


def segments_between(forward: Sequence[Node], cuts: Sequence[int]) -> list[list[Node]]:
    """The forward nodes split after each cut position (the last segment runs to the end)."""
    result, start = [], 0
    for cut in cuts:
        if cut >= start:
            result.append(list(forward[start: cut + 1]))
            start = cut + 1
    if start < len(forward):
        result.append(list(forward[start:]))
    return result


# --- instances: the rewritten dataflow ---------------------------------------------------------


class _Builder:
    """Emits instances in execution order: forward evaluations, recomputes, backward nodes."""

    def __init__(self, flow: Dataflow, segments: list[list[Node]]) -> None:
        self.flow = flow
        self.segments = segments
        self.segment_of = {n: k for k, seg in enumerate(segments) for n in seg}
        self.current: dict[Node, Node] = {}
        self.nodes: list[Node] = []
        self.args: dict[Node, tuple[Node, ...]] = {}
        for node in flow.nodes:
            if node.is_source:
                self._emit(node, ())
        self._backward = [n for n in flow.nodes if not n.is_source and n not in self.segment_of]
        self._position = {n: i for i, n in enumerate(self._backward)}
        self._step_of = {b: self._reverse_step(b) for b in self._backward}
        self._by_step: dict[int | None, list[Node]] = {}
        for b in self._backward:
            self._by_step.setdefault(self._step_of[b], []).append(b)
        self._waiting = {b: sum(1 for a in flow.args[b] if a in self._position) for b in self._backward}
        self._users: dict[Node, list[Node]] = {}
        for b in self._backward:
            for a in flow.args[b]:
                if a in self._position:
                    self._users.setdefault(a, []).append(b)
        self._released: set[Node] = {b for b in self._backward if self._step_of[b] is None}
        self._ready: list[tuple[int, Node]] = []
        self._done: set[Node] = set()
        for b in self._released:
            if self._waiting[b] == 0:
                heapq.heappush(self._ready, (self._position[b], b))

    def _reverse_step(self, node: Node) -> int | None:
        """The segment whose backward this node belongs to: its VJP's forward consumer's."""
        consumer = node.adjoint.consumer if node.adjoint is not None else None
        return self.segment_of.get(consumer) if consumer is not None else None

    def _emit(self, node: Node, args: tuple[Node, ...]) -> None:
        self.nodes.append(node)
        self.args[node] = args

    def _mapped(self, node: Node) -> tuple[Node, ...]:
        return tuple(self.current.get(a, a) for a in self.flow.args[node])

    def evaluate(self, k: int, first: bool, needed: set[Node] | None = None) -> None:
        """Evaluate segment k (only ``needed`` nodes if given): the originals the first time, else clones."""
        for node in self.segments[k]:
            if needed is not None and node not in needed:
                continue
            args = self._mapped(node)
            instance = node if first else self.flow.instance(node, args, recompute=True)
            self._emit(instance, args)
            self.current[node] = instance

    def needed_by_backward(self, k: int) -> set[Node]:
        """Values of segment k that its backward nodes read, with their ancestors inside segment k."""
        segment = set(self.segments[k])
        wanted = {a for b in self._by_step.get(k, ()) for a in self.flow.args[b] if a in segment}
        stack = list(wanted)
        while stack:
            for a in self.flow.args[stack.pop()]:
                if a in segment and a not in wanted:
                    wanted.add(a)
                    stack.append(a)
        return wanted

    def restore(self, state: Node, instance: Node) -> None:
        """Make ``instance`` (a kept snapshot) the value later instances read for ``state``."""
        self.current[state] = instance

    def reverse(self, k: int) -> None:
        """Release segment k's backward nodes and emit every backward node that is ready."""
        self._released.update(self._by_step.get(k, ()))
        for b in self._by_step.get(k, ()):
            if self._waiting[b] == 0 and b not in self._done:
                heapq.heappush(self._ready, (self._position[b], b))
        self._drain()

    def _drain(self) -> None:
        users = self._users
        while self._ready:
            _, b = heapq.heappop(self._ready)
            if b in self._done:
                continue
            self._done.add(b)
            self._emit(b, self._mapped(b))
            for user in users.get(b, ()):
                self._waiting[user] -= 1
                if self._waiting[user] == 0 and user in self._released:
                    heapq.heappush(self._ready, (self._position[user], user))

    def finish(self) -> Dataflow:
        self._released.update(self._backward)
        for b in self._backward:
            if self._waiting[b] == 0 and b not in self._done:
                heapq.heappush(self._ready, (self._position[b], b))
        self._drain()
        if len(self._done) != len(self._backward):
            raise GraphError("recompute: the backward nodes could not all be ordered (a cycle through the forward graph?)")
        roots = [r for r in self.flow.roots]
        return self.flow.derive(self.nodes, self.args, roots)


# --- policies ----------------------------------------------------------------------------------


def checkpoint_segments(flow: Dataflow, segments: list[list[Node]], keep_every: int) -> Dataflow:
    """√n checkpointing: group the chain into runs of ``keep_every`` segments, keep each run's
    last state, and compute each run once more (from the previous kept state) before its backward.
    The last run is not recomputed: its values are still live when the backward starts."""
    runs = [list(itertools.chain.from_iterable(segments[i: i + keep_every])) for i in range(0, len(segments), keep_every)]
    builder = _Builder(flow, runs)
    for k in range(len(runs)):
        builder.evaluate(k, first=True)
    for k in reversed(range(len(runs))):
        if k < len(runs) - 1:
            kept = runs[k][-1]
            needed = builder.needed_by_backward(k) - {kept}
            builder.evaluate(k, first=False, needed=needed)
        builder.reverse(k)
    return builder.finish()


@lru_cache(maxsize=None)
def revolve_forward_steps(steps: int, snapshots: int) -> int:
    """Least forward steps to reverse ``steps`` steps with ``snapshots`` snapshots (one holds the start):
    t = r·l − C(s+r, s+1), r the least with C(s+r, s) ≥ l (Griewank & Walther 2000)."""
    if steps <= 1:
        return 0
    if snapshots < 1:
        raise GraphError("revolve needs at least one snapshot")
    r = 0
    while math.comb(snapshots + r, snapshots) < steps:
        r += 1
    return r * steps - math.comb(snapshots + r, snapshots + 1)


@lru_cache(maxsize=None)
def _revolve_split(steps: int, snapshots: int) -> int:
    """The advance m that minimises m + t(l − m, s − 1) + t(m, s)."""
    best, best_cost = 1, None
    for m in range(1, steps):
        cost = m + revolve_forward_steps(steps - m, snapshots - 1) + revolve_forward_steps(m, snapshots)
        if best_cost is None or cost < best_cost:
            best, best_cost = m, cost
    return best


def revolve_actions(steps: int, snapshots: int) -> list[tuple[str, int, int]]:
    """The binomial reversal schedule as actions over states 0..steps:

    ``("advance", a, b)`` computes states a+1..b from state a; ``("restore", a, 0)``
    makes the snapshot of state a current; ``("reverse", i, 0)`` runs the
    backward of step i (from state i−1). Built with an explicit stack.
    """
    if snapshots < 1:
        raise GraphError("revolve needs at least one snapshot")
    actions: list[tuple[str, int, int]] = []
    stack: list[tuple] = [("treeverse", 0, steps, snapshots)]
    while stack:
        task = stack.pop()
        if task[0] != "treeverse":
            actions.append(task)
            continue
        _, a, b, s = task
        length = b - a
        if length == 1:
            actions.append(("reverse", b, 0))
        elif s == 1:
            for i in range(b, a, -1):  # every step from the one snapshot, last first
                if i < b:
                    actions.append(("restore", a, 0))
                if i - 1 > a:
                    actions.append(("advance", a, i - 1))
                actions.append(("reverse", i, 0))
        else:
            m = _revolve_split(length, s)
            actions.append(("advance", a, a + m))
            stack.append(("treeverse", a, a + m, s))
            stack.append(("restore", a, 0))
            stack.append(("treeverse", a + m, b, s - 1))
    return actions


def revolve(flow: Dataflow, segments: list[list[Node]], snapshots: int) -> Dataflow:
    """Binomial checkpointing over the chain of segments with ``snapshots`` snapshots."""
    steps = len(segments)
    builder = _Builder(flow, segments)
    evaluated = [False] * steps
    snaps: dict[int, Node | None] = {0: None}
    state = 0

    def advance(a: int, b: int) -> None:
        for k in range(a, b):  # step k+1 is segment k
            builder.evaluate(k, first=not evaluated[k])
            evaluated[k] = True

    for action, a, b in revolve_actions(steps, snapshots):
        if action == "advance":
            advance(a, b)
            snaps[b] = builder.current[segments[b - 1][-1]]
            state = b
        elif action == "restore":
            if a > 0:
                builder.restore(segments[a - 1][-1], snaps[a])
            state = a
        else:  # reverse step a (segment a-1) from state a-1
            k = a - 1
            if not evaluated[k]:
                advance(k, a)  # the first turn: the originals of the last segment
            else:
                builder.evaluate(k, first=False, needed=builder.needed_by_backward(k))
            builder.reverse(k)
    return builder.finish()


# --- choosing a setting under a budget -------------------------------------------------------------


@dataclass
class Candidate:
    """One setting of a policy: its recompute FLOPs, and how to build (and measure) it."""

    label: str
    recompute_flops: int
    build: Callable[[], Dataflow]
    planned_bytes: int | None = None


@dataclass(frozen=True)
class RematReport:
    """What the remat stage chose: ``Program.remat``."""

    policy: str
    chosen: str
    recompute_flops: int
    planned_bytes: int | None
    candidates: int
    solver_status: str | None = None  # "optimal", "feasible" (time limit hit), "rounded", "infeasible", ...
    solve_seconds: float = 0.0

    def __str__(self) -> str:
        planned = "" if self.planned_bytes is None else f", arena {self.planned_bytes:,d} B"
        solver = f"; the solver ended {self.solver_status} after {self.solve_seconds:.2f} s" if self.solver_status else ""
        return (f"remat={self.policy!r}: {self.chosen} ({self.candidates} candidates), "
                f"recompute {self.recompute_flops:,d} FLOPs{planned}{solver}")


def node_flops(node: Node, flow: Dataflow) -> int:
    return int(node.op.flops([a.aval for a in flow.args[node]], node.aval, **node.attrs))


def recompute_flops(flow: Dataflow) -> int:
    """FLOPs of the clones in a rewritten flow."""
    return sum(node_flops(n, flow) for n in flow.nodes if n.recompute_of is not None)


def choose(candidates: Sequence[Candidate], budget: int, measure: Callable[[Dataflow], int],
           deadline: "Deadline | None" = None) -> tuple[Candidate, Dataflow] | None:
    """The least recompute whose arena fits the budget (ties: the smaller arena, then list order).

    Candidates are measured lazily in order of recompute, so the search stops at
    the first group that fits; a candidate not yet measured when the deadline
    passes is skipped. None when nothing measured fits. For a fixed list the
    choice is monotone in the budget: every candidate that fits B fits B' > B,
    so the least recompute at B' is at most the one at B, and at equal
    recompute the arena is the same.
    """
    ordered = sorted(enumerate(candidates), key=lambda ic: (ic[1].recompute_flops, ic[0]))
    for _, group in itertools.groupby(ordered, key=lambda ic: ic[1].recompute_flops):
        fits = []
        for index, c in group:
            if c.planned_bytes is None:
                if deadline is not None and deadline.passed():
                    continue
                flow = c.build()
                c.planned_bytes = measure(flow)
            if c.planned_bytes <= budget:
                fits.append((c.planned_bytes, index, c))
        if fits:
            _, _, chosen = min(fits, key=lambda f: f[:2])
            return chosen, chosen.build()
    return None


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.perf_counter()``) the remat stage must be done by.

    One deadline is passed down to every search and solve of a compile, each
    getting only the time left, so ``time_limit`` bounds the stage as a whole.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.perf_counter() + seconds)

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.perf_counter())

    def passed(self) -> bool:
        return time.perf_counter() >= self.at

    def sooner(self, seconds: float) -> "Deadline":
        """This deadline moved ``seconds`` earlier: time kept back for the work after a search."""
        return Deadline(self.at - max(seconds, 0.0))


def least_budget_bound(flow: Dataflow) -> int:
    """Arena bytes no schedule of ``flow`` can go below, whatever it recomputes: one linear pass.

    Every schedule runs each node at least once; while node v runs, the storage
    blocks of its operands are live and so is v's own block, which an elementwise
    op may share with an operand (in place), plus v's scratch; at the end every
    output's block is live. Blocks never overlap in the arena, so

        arena >= max( max_v [max(M_v, Σ_{b in blocks(args v)} M_b) + scratch_v],  Σ_{b in blocks(roots)} M_b )

    with M the bytes of a block; sources and views own no arena storage.
    """
    owner = alias_analysis(flow)

    def blocks_bytes(nodes: Iterable[Node]) -> int:
        return sum(b.aval.nbytes for b in {owner[n] for n in nodes if not owner[n].is_source})

    floor = blocks_bytes(flow.roots)
    for node in flow.nodes:
        if node.is_source or owner[node] is not node:
            continue
        scratch = node.op.scratch(*(a.aval for a in flow.args[node]), **node.attrs) if node.op.scratch else ()
        running = max(node.aval.nbytes, blocks_bytes(flow.args[node])) + sum(s.nbytes for s in scratch)
        floor = max(floor, running)
    return floor


def check_budget(budget: object) -> int | None:
    """``budget`` as bytes (None: no budget); a GraphError for anything but a whole number.
    A negative budget passes here: :func:`rematerialize` reports it against the least feasible one."""
    if budget is None:
        return None
    if not is_int(budget):
        raise GraphError(f"memory_budget={budget!r} must be an int number of bytes >= 0, or None for no budget; "
                         "a whole number of bytes, e.g. 1_000_000")
    return int(budget)


def check_time_limit(time_limit: object) -> float:
    """``time_limit`` as seconds; a GraphError unless it is a finite number > 0."""
    if not (is_real(time_limit) and 0 < time_limit < math.inf):  # NaN fails both comparisons
        raise GraphError(f"time_limit={time_limit!r} must be a number of seconds > 0, and finite; e.g. time_limit=10")
    return float(time_limit)


EXACT_LEAST_MAX_NODES = 2_000
"""Up to this many nodes, a budget below the floor is answered with the policy's exact least
feasible budget (its candidates are all measured); above, with the floor alone."""


def _store_all_peak(flow: Dataflow) -> int:
    """The most bytes live at once when every value is kept and nodes run in creation order
    (one liveness pass; the scheduler's order may peak lower)."""
    return peak_live_bytes(flow, [n for n in flow.nodes if not n.is_source])


def _below_floor(budget: int, floor: int, flow: Dataflow, policy: str) -> GraphError:
    return GraphError(
        f"memory_budget={budget:,d} B is below what any schedule of these outputs needs: the least feasible "
        f"budget is at least {floor:,d} B (the largest node with its operands, or all outputs at once); "
        f"storing every value peaks at {_store_all_peak(flow):,d} live bytes in creation order (remat='none'). "
        f"Raise memory_budget to {floor:,d} B or more for remat={policy!r}"
    )


def _infeasible(budget: int, policy: str, least: int, store_all: int, cut_short: bool) -> GraphError:
    searched = (" (the search stopped at time_limit before measuring every schedule: the least found so far)"
                if cut_short else "")
    return GraphError(
        f"memory_budget={budget:,d} B is below what remat={policy!r} can reach; "
        f"the least feasible budget for it is {least:,d} B{searched}; storing every value plans {store_all:,d} B. "
        "Raise memory_budget, or choose another policy"
    )


def rematerialize(
    flow: Dataflow,
    policy: str,
    budget: int | None,
    measure: Callable[[Dataflow], int],
    time_limit: float = 60.0,
) -> tuple[Dataflow, RematReport]:
    """Rewrite ``flow`` by ``policy`` under ``budget``; ``measure`` returns a flow's planned arena bytes.

    Guarantees, for every policy:

    - the result never plans more than storing everything, and a recompute
      that saves no memory is never chosen (the store-all plan is the answer then);
    - monotone in the budget: the choice is the least recompute that fits over a
      list of candidates that only grows with the budget (constructed settings,
      the solver's schedules, and every schedule a solver found for this
      problem before, see ``_FOUND``), so a larger budget never gives more
      recompute, nor a larger arena at equal recompute;
    - the stage ends within ``time_limit`` seconds (searches and solves get
      the time left of one :class:`Deadline`), with the best schedule known;
    - a budget below :func:`least_budget_bound` is reported before any search.
    """
    deadline = Deadline.after(check_time_limit(time_limit))
    budget = check_budget(budget)
    if policy not in ("none", "sqrt", "revolve", "optimal", "optimal-lp"):
        raise GraphError(f"remat={policy!r} is not a policy here")
    if budget is not None:
        floor = least_budget_bound(flow)
        if budget < floor and len(flow.nodes) > EXACT_LEAST_MAX_NODES:
            raise _below_floor(budget, floor, flow, policy)
    if policy == "none" and budget is None:
        return flow, RematReport(policy, "store all", 0, None, 1)
    measured_at = time.perf_counter()
    store_all = Candidate("store all", 0, lambda: flow, measure(flow))
    measure_seconds = time.perf_counter() - measured_at
    forward = forward_nodes(flow)
    segments = segments_between(forward, separators(flow, forward))
    if budget is None:
        return _unbudgeted(flow, policy, segments, store_all, measure)
    candidates = [store_all]
    if len(segments) >= 2 and policy != "none":
        if policy != "revolve":
            candidates += _sqrt_candidates(flow, segments, budget, deadline)
        if policy != "sqrt":
            candidates += _revolve_candidates(flow, segments, budget)
    solve_seconds, solver_status = 0.0, None
    if policy in ("optimal", "optimal-lp") and store_all.planned_bytes > budget >= floor:
        problem, nodes, groups = remat_problem(flow, budget)
        candidates += _remembered(flow, problem, nodes, groups)
        # the constructed and remembered schedules first, then the solver with the time left
        choose(candidates, budget, measure, deadline)
        solved, solver_status, solve_seconds = _solver_candidate(flow, problem, nodes, groups, policy, measure,
                                                                 deadline, measure_seconds)
        candidates += solved
    found = choose(candidates, budget, measure, deadline)
    if found is None and len(flow.nodes) <= EXACT_LEAST_MAX_NODES:
        found = choose(candidates, budget, measure)  # past the deadline: measuring a small flow is quick
    if found is None:  # every candidate measured, unless the deadline cut a large flow's search short
        least = min(c.planned_bytes for c in candidates if c.planned_bytes is not None)
        cut_short = any(c.planned_bytes is None for c in candidates)
        raise _infeasible(budget, policy, least, store_all.planned_bytes, cut_short)
    chosen, rewritten = found
    report = RematReport(policy, chosen.label, chosen.recompute_flops, chosen.planned_bytes, len(candidates),
                         solver_status, solve_seconds)
    return rewritten, report


def _unbudgeted(flow: Dataflow, policy: str, segments: list[list[Node]], store_all: Candidate,
                measure: Callable[[Dataflow], int]) -> tuple[Dataflow, RematReport]:
    """Without a budget: the policy's own setting, unless it plans no less than storing everything."""
    if policy not in ("sqrt", "revolve") or len(segments) < 2:
        return flow, RematReport(policy, "store all", 0, store_all.planned_bytes, 1)
    (own,) = (_sqrt_candidates if policy == "sqrt" else _revolve_candidates)(flow, segments, None)
    rewritten = own.build()
    own.planned_bytes = measure(rewritten)
    if own.planned_bytes < store_all.planned_bytes:
        return rewritten, RematReport(policy, own.label, own.recompute_flops, own.planned_bytes, 2)
    label = (f"store all ({own.label} plans {own.planned_bytes:,d} B, "
             f"no less than storing everything: nothing to trade the recompute for)")
    return flow, RematReport(policy, label, 0, store_all.planned_bytes, 2)


def _sqrt_candidates(flow: Dataflow, segments: list[list[Node]], budget: int | None,
                     deadline: Deadline | None = None) -> list[Candidate]:
    """√n checkpointing at the ladder of settings (one setting, k ≈ √n, without a budget);
    the ladder stops growing at ``deadline`` (each setting is one rewrite of the flow)."""
    count = len(segments)
    settings = [max(1, round(math.sqrt(count)))] if budget is None else _ladder(count)
    candidates = []
    for k in settings:
        if candidates and deadline is not None and deadline.passed():
            break
        rewritten = checkpoint_segments(flow, segments, k)
        candidates.append(Candidate(f"sqrt, a checkpoint every {k} segments", recompute_flops(rewritten), lambda r=rewritten: r))
    return candidates


def _ladder(count: int) -> list[int]:
    """Settings 1…32, then a geometric ladder (×1.25) up to ``count``: the candidates tried under a budget."""
    settings = list(range(1, min(count, 32) + 1))
    s = 32
    while s < count:
        s = min(count, int(s * 1.25) + 1)
        settings.append(s)
    return settings


def _revolve_candidates(flow: Dataflow, segments: list[list[Node]], budget: int | None) -> list[Candidate]:
    count = len(segments)
    if budget is None:  # the fewest snapshots that reverse with at most one extra forward step per step
        s = 1
        while revolve_forward_steps(count, s) > 2 * count:
            s += 1
        settings = [s]
    else:
        settings = _ladder(count - 1)
    builder = _Builder(flow, segments)
    segment_flops = [sum(node_flops(n, flow) for n in seg) for seg in segments]
    retaped = sum(sum(node_flops(n, flow) for n in builder.needed_by_backward(k)) for k in range(count - 1))
    candidates = []
    for s in settings:
        advanced = _revolve_advance_flops(revolve_actions(count, s), segment_flops)
        candidates.append(Candidate(f"revolve, {s} snapshots", advanced + retaped, lambda s=s: revolve(flow, segments, s)))
    return candidates


def _revolve_advance_flops(actions: list[tuple[str, int, int]], segment_flops: list[int]) -> int:
    """FLOPs of the advances that compute a segment again (first evaluations are the forward pass)."""
    prefix = list(itertools.accumulate(segment_flops, initial=0))
    reached, total = 0, 0
    for action, a, b in actions:
        if action == "advance":
            again_until = min(b, reached)
            total += prefix[again_until] - prefix[a] if again_until > a else 0
            reached = max(reached, b)
    return total


# --- optimal: Checkmate's MILP (or its LP rounding) on the whole dataflow -------------------------

MILP_MAX_NODES = 150
"""Above this many nodes (forward + backward values, after fusion), "optimal" solves the LP relaxation and rounds it."""
LP_MAX_NODES = 600
"""Above this many, the solver is not tried: the policy keeps the best of its constructed schedules."""
SOLVER_SHARE = 0.9
"""The share of the time left a solve is given: HiGHS ends a little after its limit (0.1–0.3 s measured)."""


def _solver_nodes(flow: Dataflow) -> tuple[list[Node], dict[Node, Node]]:
    """The values the solver schedules, and for each node the one of them it stands for.

    A computed node that owns its storage stands for itself; so does a writer
    (its storage is its param's: it takes no arena bytes); a view stands for
    what it is bound on, and a param or a constant for nothing.
    """
    owner = alias_analysis(flow)
    nodes: list[Node] = []
    stands_for: dict[Node, Node] = {}
    for n in flow.nodes:
        if n.is_source:
            continue
        if owner[n] is n or n in flow.writes:
            nodes.append(n)
            stands_for[n] = n
        elif n.op.view:
            base = flow.args[n][0]
            stands_for[n] = stands_for.get(base, owner[n])
    return nodes, stands_for


def remat_problem(flow: Dataflow, budget: int) -> tuple["RematProblem", list[Node], list[list[int]]]:
    """The dataflow as Checkmate's abstract problem: sizes (64-byte aligned), FLOPs + 1, reads, outputs.

    Only forward values may be recomputed, as with every other policy: a backward value
    is computed once and held until its last read. A writer takes no bytes (it writes
    its param). Single-consumer runs are fused
    (:func:`graphc.checkmate.fuse_chains`: a layer's matmul, bias add and activation
    become one node). Returns the fused problem, the solver's nodes, and the nodes
    (indices into them) of each fused node.
    """
    from graphc.checkmate import RematProblem, fuse_chains  # scipy loads only when a solver policy runs
    nodes, stands_for = _solver_nodes(flow)
    index = {n: i for i, n in enumerate(nodes)}

    def solver_index(a: Node) -> int | None:
        return index.get(stands_for.get(a))

    deps = [sorted({k for k in map(solver_index, flow.args[n]) if k is not None}) for n in nodes]
    keep = sorted({k for k in map(solver_index, flow.roots) if k is not None})
    sizes = [0 if n in flow.writes else align(n.aval.nbytes) for n in nodes]
    costs = [float(node_flops(n, flow) + 1) for n in nodes]
    forward = set(forward_nodes(flow))
    fused = fuse_chains(RematProblem(sizes, costs, deps, keep, budget, recomputable=[n in forward for n in nodes]))
    return fused.problem, nodes, fused.groups


def from_stages(flow: Dataflow, nodes: list[Node], R: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> Dataflow:
    """The instances of a stage schedule: stage t computes the nodes i with R[t, i], in index order
    (with ``groups``, column g of R stands for the nodes ``groups[g]``, run in that order).

    A node's first computation is the node itself, later ones are clones; each
    reads the latest instance of its operands, and views are re-bound onto the
    latest instance of their base when it changes.
    """
    current: dict[Node, Node] = {}
    out_nodes: list[Node] = [n for n in flow.nodes if n.is_source]
    args: dict[Node, tuple[Node, ...]] = {n: () for n in out_nodes}

    def instance(node: Node) -> Node:
        """The latest instance of ``node``, binding views of a newer base as needed."""
        chain = []
        while node.is_view and node not in nodes_set:
            chain.append(node)
            node = flow.args[node][0]
        base = node if node.is_source else current[node]
        for view in reversed(chain):
            made = current.get(view)
            if made is None or args[made][0] is not base:
                made = view if made is None and base is flow.args[view][0] else flow.instance(view, (base,), recompute=True)
                out_nodes.append(made)
                args[made] = (base,)
                current[view] = made
            base = made
        return base

    nodes_set = set(nodes)
    columns = np.nonzero(R)[1]
    order = [i for g in columns for i in groups[g]] if groups is not None else columns
    for i in order:
        node = nodes[i]
        node_args = tuple(instance(a) for a in flow.args[node])
        made = node if node not in current else flow.instance(node, node_args, recompute=True)
        out_nodes.append(made)
        args[made] = node_args
        current[node] = made
    roots = [instance(r) for r in flow.roots]
    return flow.derive(out_nodes, args, roots).without_dead_code()


_FOUND: "OrderedDict[tuple, dict[bytes, tuple[np.ndarray, int]]]" = OrderedDict()
"""Every stage schedule (R of the fused problem) the solver found, per problem (the budget aside),
for the last ``_FOUND_PROBLEMS`` problems: a schedule that fitted one budget fits every larger one,
so each stays a candidate of later compiles of the same graph (this is what keeps the solver
policies monotone in the budget when a solve at a larger budget finds less)."""
_FOUND_PROBLEMS = 16
_FOUND_PER_PROBLEM = 64


def _problem_key(problem: "RematProblem") -> tuple:
    return (tuple(problem.sizes), tuple(problem.costs), tuple(tuple(d) for d in problem.deps), tuple(problem.keep),
            tuple(problem.recomputable or ()), tuple(problem.workspace or ()))


def _remember(key: tuple, R: np.ndarray, recompute: int) -> None:
    """Keep a stage schedule (and its recompute FLOPs) of the problem ``key``."""
    schedules = _FOUND.setdefault(key, {})
    _FOUND.move_to_end(key)
    if len(schedules) < _FOUND_PER_PROBLEM:
        schedules.setdefault(np.packbits(R).tobytes() + bytes(str(R.shape), "ascii"), (R, recompute))
    while len(_FOUND) > _FOUND_PROBLEMS:
        _FOUND.popitem(last=False)


def _remembered(flow: Dataflow, problem: "RematProblem", nodes: list[Node],
                groups: list[list[int]]) -> list[Candidate]:
    """The schedules a solver found before for this problem (``_FOUND``), as candidates built on ``flow``."""
    return [Candidate("a schedule the solver found for this graph at another budget", recompute,
                      lambda R=R: from_stages(flow, nodes, R, groups))
            for R, recompute in _FOUND.get(_problem_key(problem), {}).values()]


def _solver_candidate(
    flow: Dataflow, problem: "RematProblem", nodes: list[Node], groups: list[list[int]], policy: str,
    measure: Callable[[Dataflow], int], deadline: Deadline, measure_seconds: float,
) -> tuple[list[Candidate], str, float]:
    """Solve for the budget; where the planned arena overshoots it (alignment, scratch), solve
    again with the model's budget lowered by the overshoot (at most three times), each solve
    getting the time left before ``deadline`` less twice what measuring a result takes
    (``measure_seconds`` at first: the store-all flow's).

    Every schedule found is remembered (``_FOUND``). Returns the candidates found now, how the
    solver ended, and its seconds."""
    from graphc.checkmate import solve_lp_rounding, solve_milp

    budget = problem.budget
    key = _problem_key(problem)
    candidates: list[Candidate] = []
    exact = policy == "optimal" and problem.n <= MILP_MAX_NODES
    if problem.n > LP_MAX_NODES:
        return candidates, f"not tried ({problem.n} values > {LP_MAX_NODES})", 0.0
    model_budget, seconds, status, reserve = budget, 0.0, "not run (time_limit reached)", measure_seconds
    for _ in range(3):
        solve_by = deadline.sooner(2 * reserve)
        if solve_by.left() <= 0:
            break
        problem = replace(problem, budget=max(model_budget, 0))
        solve = solve_milp if exact else solve_lp_rounding
        solution = solve(problem, time_limit=solve_by.left() * SOLVER_SHARE)
        seconds += solution.solve_seconds
        status = solution.status if exact else ("rounded" if solution.status == "feasible" else solution.status)
        if solution.status not in ("optimal", "feasible"):
            break
        started = time.perf_counter()
        rewritten = from_stages(flow, nodes, solution.R, groups)
        planned = measure(rewritten)
        reserve = time.perf_counter() - started
        label = f"{'MILP' if exact else 'LP rounding'} ({status})"
        candidates.append(Candidate(label, recompute_flops(rewritten), lambda r=rewritten: r, planned))
        _remember(key, solution.R, candidates[-1].recompute_flops)
        if planned <= budget:
            break
        model_budget -= planned - budget
    return candidates, status, seconds

