"""Optimal rematerialisation on an abstract DAG: Checkmate's MILP and its LP rounding.

Reference: Jain et al. 2020, "Checkmate: Breaking the Memory Wall with Optimal Tensor
Rematerialization" (MLSys). The graph here is abstract: node ``i`` has a value of
``sizes[i]`` bytes, costs ``costs[i]`` to compute, and reads the values of ``deps[i]``
(all ``< i``, so ``0..n-1`` is a topological order). Sources such as params are not nodes.
The remat stage of the compiler maps its IR onto a :class:`RematProblem`.

Memory model (the one :func:`peak_of` replays). A schedule is a sequence of events
``("compute", i)`` and ``("free", i)``. Computing ``i`` needs every value of ``deps[i]``
in memory; while it runs, memory holds everything already there plus ``i`` itself. A
freed value may be computed again later (rematerialisation). The peak is the largest
memory at any compute; every node is computed at least once and the values of ``keep``
are in memory at the end.

The MILP (frontier-advancing stages, T = n; M_i = sizes[i], C_i = costs[i]). Binary

    R[t,i], i <= t    node i is computed in stage t; R[t,t] = 1: stage t computes t first
    S[t,i], i <  t    value i is in memory when stage t starts (kept from stage t-1)
    FREE[t,i,k]       value i is freed right after computing k in stage t, for every
                      edge i -> k with k < t (a free after k = t changes no U of stage t)

and continuous U[t,k], k <= t: the memory right after computing k in stage t.

    minimise    Σ_t Σ_{i<=t} C_i R[t,i]
    subject to  R[t,k]  <= R[t,i] + S[t,i]            i in deps[k], k <= t  (dependencies)
                S[t+1,i] <= S[t,i] + R[t,i]           i < t                 (storage)
                S[n-1,i] + R[n-1,i] >= 1              i in keep             (outputs)
                U[t,0] >= M_0 R[t,0] + Σ_{i<t} M_i S[t,i]
                U[t,k] >= U[t,k-1] + M_k R[t,k] - Σ_{i in deps[k-1]} M_i FREE[t,i,k-1]
                0 <= U[t,k] <= budget
                FREE[t,i,k] = R[t,k] (1 - S[t+1,i]) Π_{j in users(i), k<j<=t} (1 - R[t,j])

The product is linearised as in the paper with the number of hazards
``h = (1 - R[t,k]) + S[t+1,i] + Σ_{j in users(i), k<j<=t} R[t,j]`` and its maximum ``m``
(the number of terms): ``1 - FREE <= h`` and ``m (1 - FREE) >= h``, so FREE = 1 exactly
when h = 0. In the last stage S[n,i] reads as 1 for i in keep (those have no FREE) and
0 for the others. The paper's U recurrence is an equality; U is only bounded above, so
">=" admits the same schedules (and HiGHS's presolve handles it correctly, see
``_memory_rows``). Memory is counted in units of g = gcd(sizes): the budget becomes
floor(budget / g).

Two extensions the compiler needs: a node that may not be recomputed (``recomputable``;
graphc recomputes forward values only) has R[t,i] = 0 for t > i, and a node with a
workspace W_i (memory it needs only while it runs) adds U[t,i] + W_i R[t,i] <= budget.
Before solving, the R and S entries every canonical schedule has are fixed (``_fixed``):
nothing is held or recomputed after its last possible use, and a value computed once is
held until its last read. :func:`fuse_chains` coarsens a graph to layers first.

The fixed topological order is part of the model: stage t is the first computation of
node t, and inside a stage nodes run in index order, each at most once. The optimum is
optimal among such schedules; a schedule that first-computes nodes in another order can
be cheaper or need less memory (``tests/test_checkmate.py`` has a four- and a three-node
example).

The approximation (:func:`solve_lp_rounding`) is Checkmate's two-phase rounding: solve
the LP relaxation, round S, compute the least R for it; then a local search on the
schedule (hold a value instead of recomputing it; trade one hold for another).

A solution is returned in canonical form: recomputations that no later event reads are
removed, a value is freed right after its last read (:func:`schedule_of`), and S is what
that schedule holds at each stage boundary. That schedule never holds more than the
MILP's U, so its peak (:func:`peak_of`) is within the budget.
"""

from __future__ import annotations

import heapq
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import reduce
from types import SimpleNamespace
from typing import Callable, Sequence, TextIO

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp
from scipy.sparse.csgraph import breadth_first_order

Event = tuple[str, int]


@dataclass(frozen=True)
class RematProblem:
    """A DAG with value sizes, compute costs, outputs and a memory budget."""

    sizes: Sequence[int]  # bytes of node i's value (nodes 0..n-1 in a topological order)
    costs: Sequence[float]  # compute cost of node i (FLOPs; may be 0)
    deps: Sequence[Sequence[int]]  # deps[i]: nodes i reads (all < i); sources are not nodes
    keep: Sequence[int]  # nodes that must be in memory at the end (outputs)
    budget: int  # bytes
    recomputable: Sequence[bool] | None = None  # per node; None: every node may be computed again
    workspace: Sequence[int] | None = None  # bytes node i needs besides its value while it runs; None: 0

    def __post_init__(self) -> None:
        n = len(self.sizes)
        if len(self.costs) != n or len(self.deps) != n:
            raise ValueError(f"sizes, costs and deps differ in length: {n}, {len(self.costs)}, {len(self.deps)}")
        if any(int(s) != s or s < 0 for s in self.sizes):
            raise ValueError("sizes must be non-negative integers")
        if any(not math.isfinite(c) or c < 0 for c in self.costs):
            raise ValueError("costs must be finite and non-negative")
        for i, ds in enumerate(self.deps):
            if any(not 0 <= d < i for d in ds):
                raise ValueError(f"node {i} reads {list(ds)}: every dependency must be a node < {i}")
        if any(not 0 <= k < n for k in self.keep):
            raise ValueError(f"keep {list(self.keep)} names a node outside 0..{n - 1}")
        if self.budget < 0:
            raise ValueError(f"negative budget {self.budget}")
        if self.recomputable is not None and len(self.recomputable) != n:
            raise ValueError(f"recomputable has {len(self.recomputable)} entries for {n} nodes")
        if self.workspace is not None and (len(self.workspace) != n or any(int(w) != w or w < 0 for w in self.workspace)):
            raise ValueError(f"workspace must be {n} non-negative integers")

    def may_recompute(self) -> np.ndarray:
        """Per node: may it be computed more than once (bool array)."""
        if self.recomputable is None:
            return np.ones(self.n, dtype=bool)
        return np.asarray(self.recomputable, dtype=bool)

    @property
    def n(self) -> int:
        return len(self.sizes)

    def extra(self) -> np.ndarray:
        """Per node: the workspace bytes (int64 array; zeros when none is given)."""
        if self.workspace is None:
            return np.zeros(self.n, dtype=np.int64)
        return np.asarray(self.workspace, dtype=np.int64)


@dataclass(frozen=True)
class RematSolution:
    """A schedule in stage form, its cost, peak and how the solver ended."""

    R: np.ndarray  # bool (n × n): R[t, i] = node i is computed in stage t
    S: np.ndarray  # bool: S[t, i] = value i is in memory at the start of stage t
    cost: float  # Σ R·costs
    peak: int  # peak_of(problem, schedule_of(problem, self))
    status: str  # "optimal", "feasible", "infeasible", or "timeout" (limit hit, nothing found)
    solve_seconds: float
    lower_bound: float | None  # the solver's bound on the cost, when it has one
    build_seconds: float = 0.0  # time spent building the model


# --------------------------------------------------------------------------- schedules


def _deps(problem: RematProblem) -> list[list[int]]:
    """Dependencies without repeats (``x * x`` reads ``x`` once as far as memory goes)."""
    return [sorted(set(ds)) for ds in problem.deps]


def _instances(problem: RematProblem, R: np.ndarray) -> tuple[list[int], list[int]]:
    """The computes of R in stage order and, for each, the position after which it is freed."""
    return _lifetimes(problem, [int(k) for k in np.nonzero(R)[1]])  # row-major: stage by stage, index order


def _lifetimes(problem: RematProblem, order: list[int]) -> tuple[list[int], list[int]]:
    """For computes in ``order``, the position after which each is freed.

    A value lives from its compute to its last read before it is computed again; a
    value read by nobody is freed at once, unless it is the last instance of a node
    in ``keep`` (then it is never freed: position -1).
    """
    deps = _deps(problem)
    latest: dict[int, int] = {}
    free_at = list(range(len(order)))
    for p, k in enumerate(order):
        for d in deps[k]:
            if d not in latest:
                raise ValueError(f"node {k} reads {d} before any computation of it")
            free_at[latest[d]] = p
        latest[k] = p
    for k in set(problem.keep) & set(latest):
        free_at[latest[k]] = -1
    return order, free_at


def events_of(problem: RematProblem, R: np.ndarray) -> list[Event]:
    """The schedule of a compute matrix R: its computes, each value freed after its last read."""
    return _events(*_instances(problem, R))


def _events(order: list[int], free_at: list[int]) -> list[Event]:
    frees: list[list[int]] = [[] for _ in order]
    for q, p in enumerate(free_at):
        if p >= 0:
            frees[p].append(order[q])
    events: list[Event] = []
    for p, k in enumerate(order):
        events.append(("compute", k))
        events.extend(("free", j) for j in sorted(frees[p]))
    return events


def schedule_of(problem: RematProblem, solution: RematSolution) -> list[Event]:
    """The events of a solution: R's computes in stage order, frees right after last reads."""
    return events_of(problem, solution.R)


@dataclass(frozen=True)
class Replay:
    """What a schedule does: its peak, the values in memory at the end, the nodes it computed."""

    peak: int
    in_memory: frozenset[int]
    computed: frozenset[int]
    cost: float


def replay(problem: RematProblem, events: Sequence[Event]) -> Replay:
    """Run a schedule on the memory model; raise ValueError on an impossible event.

    memory(e) = Σ_{v in memory before e} M_v + M_i + W_i   at each ("compute", i)
    peak = max_e memory(e)    (W_i: the node's workspace, released when it ends)
    """
    deps = _deps(problem)
    extra = problem.extra()
    memory: set[int] = set()
    used = peak = 0
    computed: set[int] = set()
    cost = 0.0
    for kind, i in events:
        if kind == "compute":
            missing = [d for d in deps[i] if d not in memory]
            if missing or i in memory:
                raise ValueError(f"compute {i}: reads {missing} not in memory" if missing else f"compute {i}: already in memory")
            used += problem.sizes[i]
            peak = max(peak, used + int(extra[i]))
            memory.add(i)
            computed.add(i)
            cost += problem.costs[i]
        elif kind == "free":
            if i not in memory:
                raise ValueError(f"free {i}: not in memory")
            memory.remove(i)
            used -= problem.sizes[i]
        else:
            raise ValueError(f"unknown event {kind!r}")
    return Replay(int(peak), frozenset(memory), frozenset(computed), cost)


def peak_of(problem: RematProblem, events: Sequence[Event]) -> int:
    """The peak memory of a schedule (see :func:`replay`)."""
    return replay(problem, events).peak


def _stage_memory(problem: RematProblem, R: np.ndarray) -> np.ndarray:
    """S of a compute matrix: S[t, i] = value i is held when stage t starts under :func:`events_of`."""
    n = problem.n
    order, free_at = _instances(problem, R)
    stage = np.nonzero(R)[0]
    S = np.zeros((n, n), dtype=bool)
    for q, k in enumerate(order):
        last = len(order) - 1 if free_at[q] < 0 else free_at[q]
        # held at the start of every stage t with stage[q] < t <= stage[last]
        S[stage[q] + 1 : stage[last] + 1, k] = True
    return S


def _canonical(problem: RematProblem, R: np.ndarray, *, status: str, seconds: float,
               lower_bound: float | None, build_seconds: float = 0.0) -> RematSolution:
    """A solution from a compute matrix: pruned R, the S it implies, cost and replayed peak."""
    R, _ = _prune_fast(_graph(problem), R)
    events = events_of(problem, R)
    cost = float(np.asarray(problem.costs, dtype=float) @ R.sum(axis=0))
    return RematSolution(R=R, S=_stage_memory(problem, R), cost=cost, peak=peak_of(problem, events),
                         status=status, solve_seconds=seconds, lower_bound=lower_bound,
                         build_seconds=build_seconds)


def _infeasible(problem: RematProblem, status: str = "infeasible", seconds: float = 0.0,
                lower_bound: float | None = None, build_seconds: float = 0.0) -> RematSolution:
    n = problem.n
    empty = np.zeros((n, n), dtype=bool)
    return RematSolution(R=empty, S=empty.copy(), cost=math.inf, peak=0, status=status,
                         solve_seconds=seconds, lower_bound=lower_bound, build_seconds=build_seconds)


def store_all_peak(problem: RematProblem) -> int:
    """The peak of computing every node once, in index order, freeing after last reads."""
    return peak_of(problem, events_of(problem, np.eye(problem.n, dtype=bool)))


def budget_lower_bound(problem: RematProblem) -> int:
    """A budget no schedule can go below: max(max_i (M_i + W_i + Σ_{d in deps_i} M_d), Σ_{i in keep} M_i)."""
    sizes, extra = problem.sizes, problem.extra()
    local = max((sizes[i] + int(extra[i]) + sum(sizes[d] for d in ds) for i, ds in enumerate(_deps(problem))),
                default=0)
    return int(max(local, sum(sizes[k] for k in set(problem.keep))))


# --------------------------------------------------------------------------- fusion


@dataclass(frozen=True)
class Fused:
    """A problem with single-consumer runs fused, and the nodes of the original in each node."""

    problem: RematProblem
    groups: list[list[int]]  # groups[g]: original nodes of fused node g, in execution (index) order


def fuse_chains(problem: RematProblem) -> Fused:
    """Fuse every recomputable node that has one consumer into it, when that one is recomputable too.

    This is the granularity Checkmate works at (a layer, not its matmul, bias add and
    activation) and shrinks the MILP by the number of fused nodes. Nodes that are
    computed once (a backward pass) stay apart: fused, they would hold their operands
    until the group ends, and the model would overstate their memory. A fused node is
    computed as a whole: its members in index order, each freed after its last reader
    (all in the group but the last member, the group's value). Its workspace is the
    most its members hold at once beyond that value; its external operands are held
    until the group ends, so the fused model's peak bounds the original schedule's
    (:func:`fused_events`). Kept nodes are never fused into a consumer.
    """
    n = problem.n
    deps = _deps(problem)
    may = problem.may_recompute()
    consumers: list[set[int]] = [set() for _ in range(n)]
    for j, ds in enumerate(deps):
        for d in ds:
            consumers[d].add(j)
    kept = set(problem.keep)
    into = list(range(n))  # the group root of each node, resolved from the last node down
    for u in range(n - 1, -1, -1):
        if u not in kept and len(consumers[u]) == 1:
            (v,) = consumers[u]
            if may[u] and may[v]:
                into[u] = into[v]
    roots = sorted(set(into))
    index = {r: g for g, r in enumerate(roots)}
    groups: list[list[int]] = [[] for _ in roots]
    for i in range(n):
        groups[index[into[i]]].append(i)
    sizes, extra = problem.sizes, problem.extra()
    fused_deps, workspace = [], []
    for g, members in enumerate(groups):
        inside = set(members)
        fused_deps.append(sorted({index[into[d]] for m in members for d in deps[m] if d not in inside}))
        workspace.append(_group_peak(members, deps, sizes, extra) - int(sizes[members[-1]]))
    fused = RematProblem(sizes=[sizes[r] for r in roots],
                         costs=[float(sum(problem.costs[m] for m in members)) for members in groups],
                         deps=fused_deps, keep=sorted({index[k] for k in kept}), budget=problem.budget,
                         recomputable=[bool(may[r]) for r in roots], workspace=workspace)
    return Fused(fused, groups)


def _group_peak(members: list[int], deps: list[list[int]], sizes: Sequence[int], extra: np.ndarray) -> int:
    """The most a group's own values (and workspaces) take at once while it runs."""
    inside = set(members)
    last_read = {d: m for m in members for d in deps[m] if d in inside}
    live, peak = 0, 0
    for m in members:
        live += int(sizes[m])
        peak = max(peak, live + int(extra[m]))
        live -= sum(int(sizes[d]) for d in deps[m] if last_read.get(d) == m)
    return peak


def fused_events(problem: RematProblem, fused: Fused, R: np.ndarray) -> list[Event]:
    """The schedule, on the original problem, of a compute matrix R of the fused one."""
    order = [m for g in np.nonzero(R)[1] for m in fused.groups[g]]
    return _events(*_lifetimes(problem, order))


# --------------------------------------------------------------------------- the model


def _expand(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (g, v) with starts[g] <= v < stops[g], grouped by g: the vectorised double loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.maximum(np.asarray(stops, dtype=np.int64) - starts, 0)
    group = np.repeat(np.arange(len(starts)), lengths)
    first = np.cumsum(lengths) - lengths
    value = np.arange(int(lengths.sum()), dtype=np.int64) - first[group] + starts[group]
    return group, value


@dataclass(frozen=True)
class _Layout:
    """Index maps of the variables: R, S, U lower-triangular, FREE per edge and stage.

    R[t,i] -> t(t+1)/2 + i;  S[t,i] -> s0 + t(t-1)/2 + i;  U[t,k] -> u0 + t(t+1)/2 + k;
    FREE[t,e] (edge e = src -> dst, dst < t) -> f0 + free_start[e] + t - dst - 1.
    """

    n: int
    src: np.ndarray  # edges sorted by (src, dst)
    dst: np.ndarray
    group_end: np.ndarray  # one past the last edge with the same src
    free_start: np.ndarray
    free_stop_stage: np.ndarray  # FREE[t, e] exists for dst[e] < t < free_stop_stage[e]
    n_free: int

    @property
    def n_tri(self) -> int:
        return self.n * (self.n + 1) // 2

    @property
    def s0(self) -> int:
        return self.n_tri

    @property
    def u0(self) -> int:
        return self.s0 + self.n * (self.n - 1) // 2

    @property
    def f0(self) -> int:
        return self.u0 + self.n_tri

    @property
    def n_vars(self) -> int:
        return self.f0 + self.n_free

    def r(self, t: np.ndarray, i: np.ndarray) -> np.ndarray:
        return t * (t + 1) // 2 + i

    def s(self, t: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.s0 + t * (t - 1) // 2 + i

    def u(self, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        return self.u0 + t * (t + 1) // 2 + k

    def free(self, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        return self.f0 + self.free_start[e] + t - self.dst[e] - 1


def _layout(problem: RematProblem) -> _Layout:
    n = problem.n
    pairs = sorted({(d, k) for k, ds in enumerate(problem.deps) for d in ds})
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    dst = np.array([p[1] for p in pairs], dtype=np.int64)
    kept = np.zeros(n, dtype=bool)
    kept[list(problem.keep)] = True
    stop = n - kept[src].astype(np.int64)  # no FREE of a kept value in the last stage
    counts = np.maximum(stop - dst - 1, 0)
    group_end = np.searchsorted(src, src, side="right")
    return _Layout(n=n, src=src, dst=dst, group_end=group_end,
                   free_start=np.cumsum(counts) - counts, free_stop_stage=stop, n_free=int(counts.sum()))


class _Rows:
    """A sparse constraint matrix built block by block from (row, col, value) triplets."""

    def __init__(self) -> None:
        self.m = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []

    def block(self, m: int, lo: np.ndarray | float, hi: np.ndarray | float) -> int:
        """Reserve m rows with bounds lo <= A x <= hi; returns the first row."""
        base = self.m
        self.m += m
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (m,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (m,)))
        return base

    def term(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        vals = np.broadcast_to(np.asarray(vals, dtype=float), np.shape(rows))
        keep = vals != 0
        self.parts.append((np.asarray(rows)[keep], np.asarray(cols)[keep], vals[keep]))

    def constraint(self, n_vars: int) -> LinearConstraint:
        rows, cols, vals = (np.concatenate([p[j] for p in self.parts]) if self.parts else np.zeros(0) for j in range(3))
        A = sp.csr_matrix((vals, (rows.astype(np.int64), cols.astype(np.int64))), shape=(self.m, n_vars))
        return LinearConstraint(A, np.concatenate(self.lo or [np.zeros(0)]), np.concatenate(self.hi or [np.zeros(0)]))


def _dependency_rows(rows: _Rows, lay: _Layout) -> None:
    """R[t,k] - R[t,i] - S[t,i] <= 0 for every edge i -> k and stage t >= k."""
    e, t = _expand(lay.dst, np.full(len(lay.dst), lay.n))
    r = rows.block(len(t), -np.inf, 0.0) + np.arange(len(t))
    rows.term(r, lay.r(t, lay.dst[e]), 1.0)
    rows.term(r, lay.r(t, lay.src[e]), -1.0)
    rows.term(r, lay.s(t, lay.src[e]), -1.0)


def _storage_rows(rows: _Rows, lay: _Layout) -> None:
    """S[t+1,i] - S[t,i] - R[t,i] <= 0 for i < t < n-1 (i = t holds trivially: R[t,t] = 1)."""
    stages = np.arange(1, max(lay.n - 1, 1))
    g, i = _expand(np.zeros(len(stages)), stages)
    t = stages[g]
    r = rows.block(len(t), -np.inf, 0.0) + np.arange(len(t))
    rows.term(r, lay.s(t + 1, i), 1.0)
    rows.term(r, lay.s(t, i), -1.0)
    rows.term(r, lay.r(t, i), -1.0)


def _keep_rows(rows: _Rows, lay: _Layout, keep: Sequence[int]) -> None:
    """S[n-1,i] + R[n-1,i] >= 1 for i in keep (i = n-1 is computed in the last stage anyway)."""
    i = np.array(sorted(k for k in set(keep) if k < lay.n - 1), dtype=np.int64)
    t = np.full(len(i), lay.n - 1)
    r = rows.block(len(i), 1.0, np.inf) + np.arange(len(i))
    rows.term(r, lay.s(t, i), 1.0)
    rows.term(r, lay.r(t, i), 1.0)


def _memory_rows(rows: _Rows, lay: _Layout, M: np.ndarray) -> None:
    """U[t,0] >= M_0 R[t,0] + Σ_{i<t} M_i S[t,i];  U[t,k] >= U[t,k-1] + M_k R[t,k] - Σ M_i FREE[t,i,k-1].

    One row per U[t,k], numbered like U; FREE[t,e] (e = i -> k-1) enters row (t, k).
    U is only bounded above, so the least U of a schedule is the paper's equality.
    (With equalities, HiGHS 1.12's presolve returned dearer "optimal" schedules and
    declared feasible budgets infeasible on a few 6–8 node models; not with these.)
    """
    n = lay.n
    base = rows.block(lay.n_tri, 0.0, np.inf)
    t, k = np.tril_indices(n)
    r = base + lay.r(t, k)
    rows.term(r, lay.u(t, k), 1.0)
    rows.term(r, lay.r(t, k), -M[k])
    later = k > 0
    rows.term(r[later], lay.u(t[later], k[later] - 1), -1.0)
    stages = np.arange(1, n)
    g, i = _expand(np.zeros(len(stages)), stages)
    ts = stages[g]
    rows.term(base + lay.r(ts, 0 * ts), lay.s(ts, i), -M[i])
    e, tf = _expand(lay.dst + 1, lay.free_stop_stage)
    rows.term(base + lay.r(tf, lay.dst[e] + 1), lay.free(tf, e), M[lay.src[e]])


def _free_terms(lay: _Layout) -> tuple[np.ndarray, ...]:
    """FREE[t,e] and its factors, vectorised.

    Per FREE (in FREE order): stage t, edge e, whether S[t+1,src] exists (t < n-1), and the
    number of later users. Per (FREE, later user j) entry: the FREE's offset and R[t,j]'s column.
    """
    e, t = _expand(lay.dst + 1, lay.free_stop_stage)  # one entry per FREE, in FREE order
    # later users: pairs (e, e2) of edges from one src with dst[e2] > dst[e], in stages t >= dst[e2]
    p, e2 = _expand(np.arange(len(lay.dst)) + 1, lay.group_end)
    q, tq = _expand(lay.dst[e2], lay.free_stop_stage[p])
    fq = lay.free(tq, p[q]) - lay.f0
    later = np.bincount(fq, minlength=lay.n_free)
    return t, e, t < lay.n - 1, later, fq, lay.r(tq, lay.dst[e2[q]])


def _free_rows(rows: _Rows, lay: _Layout) -> None:
    """1 - FREE <= h and m (1 - FREE) >= h, h = 1 - R[t,k] + S[t+1,i] + Σ_{j in users(i), k<j<=t} R[t,j].

    As rows:  FREE - R[t,k] + S[t+1,i] + Σ R[t,j] >= 0  and  m FREE - R[t,k] + S[t+1,i] + Σ R[t,j] <= m - 1,
    m = 1 + [t < n-1] + #{j}. FREE must be binary: with h >= 1 these allow FREE <= 1 - h/m.
    """
    t, e, has_s, later, fq, rj = _free_terms(lay)
    f = lay.f0 + np.arange(lay.n_free)
    m = 1 + has_s + later
    lo_base = rows.block(len(f), 0.0, np.inf)
    hi_base = rows.block(len(f), -np.inf, m - 1.0)
    for base, free_coef in ((lo_base, 1.0), (hi_base, m)):
        r = base + np.arange(len(f))
        rows.term(r, f, free_coef)
        rows.term(r, lay.r(t, lay.dst[e]), -1.0)
        rows.term(r[has_s], lay.s(t[has_s] + 1, lay.src[e[has_s]]), 1.0)
        rows.term(base + fq, rj, 1.0)


def _free_rows_factors(rows: _Rows, lay: _Layout) -> None:
    """FREE below each factor of its product: FREE <= R[t,k], FREE <= 1 - S[t+1,i], FREE <= 1 - R[t,j].

    With R, S binary and FREE continuous this is 0 <= FREE <= R[t,k](1 - S[t+1,i])Π(1 - R[t,j]):
    a schedule may free less than it could, never more, and since freeing only lowers U
    the optimum is the paper's. In the LP relaxation FREE is held below the least factor
    instead of their mean (the hazard count lets an integral R, S free a fraction of a
    value still in use), which is what the rounding relies on.
    """
    t, e, has_s, later, fq, rj = _free_terms(lay)
    f = lay.f0 + np.arange(lay.n_free)
    r = rows.block(len(f), -np.inf, 0.0) + np.arange(len(f))
    rows.term(r, f, 1.0)
    rows.term(r, lay.r(t, lay.dst[e]), -1.0)
    m = int(has_s.sum())
    r = rows.block(m, -np.inf, 1.0) + np.arange(m)
    rows.term(r, f[has_s], 1.0)
    rows.term(r, lay.s(t[has_s] + 1, lay.src[e[has_s]]), 1.0)
    r = rows.block(len(fq), -np.inf, 1.0) + np.arange(len(fq))
    rows.term(r, lay.f0 + fq, 1.0)
    rows.term(r, rj, 1.0)


def _peak_rows(rows: _Rows, lay: _Layout, W: np.ndarray, t: np.ndarray, k: np.ndarray, *, peak: int | None,
               cap: float) -> None:
    """U[t,k] + W_k R[t,k] (- P) <= cap: memory while k runs, its workspace included."""
    r = rows.block(len(t), -np.inf, cap) + np.arange(len(t))
    rows.term(r, lay.u(t, k), 1.0)
    rows.term(r, lay.r(t, k), W[k])
    if peak is not None:
        rows.term(r, np.full(len(t), peak), -1.0)


@dataclass(frozen=True)
class _Model:
    lay: _Layout
    c: np.ndarray
    constraint: LinearConstraint
    bounds: Bounds
    integrality: np.ndarray
    unit: int  # bytes per memory unit (gcd of the sizes)


@dataclass(frozen=True)
class _Fixed:
    """Values of R and S every canonical schedule has, known before solving (bool, n × n).

    A node i is of use in stage t only if i is kept, or a consumer j reads it there:
    j = t itself, or a recomputable j of use in stage t. So with
    ``last_use[i] = n-1`` for kept i, else ``max_j (last_use[j] if j is recomputable else j)``,
    R[t,i] = S[t,i] = 0 for t > last_use[i]. A node that may not be recomputed has
    R[t,i] = 0 for t > i and, since every consumer j > i reads it in stage j,
    S[t,i] = 1 for i < t <= max(consumers) (to the end if kept).
    """

    zero_r: np.ndarray
    zero_s: np.ndarray
    one_s: np.ndarray


def _fixed(problem: RematProblem) -> _Fixed:
    n = problem.n
    may = problem.may_recompute()
    kept = np.zeros(n, dtype=bool)
    kept[list(problem.keep)] = True
    consumers: list[list[int]] = [[] for _ in range(n)]
    for j, ds in enumerate(_deps(problem)):
        for d in ds:
            consumers[d].append(j)
    last_use = np.arange(n)
    for i in range(n - 1, -1, -1):
        if kept[i]:
            last_use[i] = n - 1
        elif consumers[i]:
            last_use[i] = max(int(last_use[j]) if may[j] else j for j in consumers[i])
    stage = np.arange(n)[:, None]
    node = np.arange(n)[None, :]
    zero_r = (stage > last_use[None, :]) | ((stage > node) & ~may[None, :])
    last_read = np.array([n - 1 if kept[i] else max(consumers[i], default=i) for i in range(n)])
    one_s = (stage > node) & (stage <= last_read[None, :]) & ~may[None, :]
    return _Fixed(zero_r=zero_r, zero_s=stage > last_use[None, :], one_s=one_s)


def _unit(problem: RematProblem) -> int:
    positive = [int(s) for s in [*problem.sizes, *problem.extra()] if s > 0]
    return reduce(math.gcd, positive) if positive else 1


def _build(problem: RematProblem, *, budget: int | None, integral: bool, minimise_peak: bool = False,
           free_rows: str = "hazards") -> _Model:
    """The MILP (or its LP relaxation) in scipy's form.

    ``free_rows``: FREE linearised by the hazard count ("hazards", the paper's; FREE
    binary) or by the factors ("factors"; FREE continuous).
    With ``minimise_peak`` the objective is a new variable P >= U[t,k] for all (t, k)
    instead of Σ C R, and ``budget`` (if given) only bounds U from above.
    """
    lay = _layout(problem)
    unit = _unit(problem)
    M = np.asarray(problem.sizes, dtype=float) / unit
    rows = _Rows()
    _dependency_rows(rows, lay)
    _storage_rows(rows, lay)
    _keep_rows(rows, lay, problem.keep)
    _memory_rows(rows, lay, M)
    if free_rows not in ("hazards", "factors"):
        raise ValueError(f"free_rows must be 'hazards' or 'factors', not {free_rows!r}")
    (_free_rows if free_rows == "hazards" else _free_rows_factors)(rows, lay)
    n_vars = lay.n_vars + int(minimise_peak)
    lo, hi = np.zeros(n_vars), np.ones(n_vars)
    diag = np.arange(lay.n)
    lo[lay.r(diag, diag)] = 1.0
    fixed = _fixed(problem)
    t, i = np.nonzero(np.tril(fixed.zero_r, -1))
    hi[lay.r(t, i)] = 0.0
    t, i = np.nonzero(np.tril(fixed.zero_s, -1))
    hi[lay.s(t, i)] = 0.0
    t, i = np.nonzero(fixed.one_s)
    lo[lay.s(t, i)] = 1.0
    cap = np.inf if budget is None else math.floor(budget / unit)
    hi[lay.u0 : lay.f0] = cap
    W = problem.extra() / unit
    c = np.zeros(n_vars)
    t, k = np.tril_indices(lay.n)
    if minimise_peak:
        hi[-1] = np.inf
        c[-1] = 1.0
        _peak_rows(rows, lay, W, t, k, peak=n_vars - 1, cap=0.0)
    else:
        c[: lay.n_tri] = np.asarray(problem.costs, dtype=float)[k]
        busy = W[k] > 0
        _peak_rows(rows, lay, W, t[busy], k[busy], peak=None, cap=cap)
    integrality = np.zeros(n_vars)
    if integral:
        integrality[: lay.u0] = 1
        integrality[lay.f0 : lay.n_vars] = free_rows == "hazards"
    return _Model(lay, c, rows.constraint(n_vars), Bounds(lo, hi), integrality, unit)


def model_size(problem: RematProblem) -> tuple[int, int, int]:
    """(variables, constraints, nonzeros) of the MILP of ``problem``."""
    model = _build(problem, budget=problem.budget, integral=True)
    return len(model.c), model.constraint.A.shape[0], model.constraint.A.nnz


def _options(time_limit: float, mip_gap: float | None = None, presolve: bool = True) -> dict:
    options = {"time_limit": max(float(time_limit), 0.01), "disp": False, "presolve": presolve}
    if mip_gap is not None:
        options["mip_rel_gap"] = mip_gap
    return options


ISOLATE_NONZEROS = 250_000  # MILPs at least this large run in a child process (see ``_milp_in_child``)

_CHILD = """
import json, sys
import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
d = np.load(sys.argv[1] + "/model.npz")
A = sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))
res = milp(d["c"], integrality=d["integrality"], bounds=Bounds(d["lb"], d["ub"]),
           constraints=[LinearConstraint(A, d["rlb"], d["rub"])], options=json.load(open(sys.argv[1] + "/options.json")))
bound = getattr(res, "mip_dual_bound", None)
np.savez(sys.argv[1] + "/result.npz", status=res.status, message=res.message, has_x=res.x is not None,
         x=res.x if res.x is not None else np.zeros(0), fun=np.nan if res.fun is None else res.fun,
         bound=np.nan if bound is None else bound)
"""


CHILD_START_SECONDS = 1.0
"""Kept back from HiGHS's own limit in a child process: the interpreter's start and SciPy's import."""


def _milp_in_child(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraint: LinearConstraint,
                   options: dict) -> SimpleNamespace:
    """``milp`` in a separate interpreter, killed when ``options["time_limit"]`` seconds have passed.

    Past a few hundred thousand nonzeros HiGHS can run well beyond its time limit (on
    a 500-node graph: 550 s of a 30 s limit, after presolve); a child process can be
    stopped. HiGHS gets the limit less ``CHILD_START_SECONDS``; a child still running at
    the limit is killed and reports nothing found (status 1).
    """
    limit = options["time_limit"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        A = sp.csr_matrix(constraint.A)
        np.savez(f"{folder}/model.npz", c=c, integrality=integrality, lb=bounds.lb, ub=bounds.ub, data=A.data,
                 indices=A.indices, indptr=A.indptr, shape=np.array(A.shape), rlb=constraint.lb, rub=constraint.ub)
        with open(f"{folder}/options.json", "w") as f:
            json.dump({**options, "time_limit": max(limit - CHILD_START_SECONDS, 0.01)}, f)
        left = limit - (time.perf_counter() - started)
        stopped = SimpleNamespace(status=1, x=None, fun=None, mip_dual_bound=None, message="time limit (stopped)")
        if left <= 0:
            return stopped
        try:
            subprocess.run([sys.executable, "-c", _CHILD, folder], timeout=left, check=True, capture_output=True)
        except subprocess.TimeoutExpired:
            return stopped
        r = np.load(f"{folder}/result.npz")
        bound = float(r["bound"])
        return SimpleNamespace(status=int(r["status"]), x=r["x"] if bool(r["has_x"]) else None,
                               fun=None if np.isnan(r["fun"]) else float(r["fun"]),
                               mip_dual_bound=None if np.isnan(bound) else bound, message=str(r["message"]))


def _milp(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraints: list[LinearConstraint],
          options: dict) -> OptimizeResult | SimpleNamespace:
    """``scipy.optimize.milp``, in a child process when the MILP has ISOLATE_NONZEROS nonzeros or more."""
    if integrality.any() and sum(con.A.nnz for con in constraints) >= ISOLATE_NONZEROS:
        constraint = LinearConstraint(sp.vstack([con.A for con in constraints]).tocsr(),
                                      np.concatenate([con.lb for con in constraints]),
                                      np.concatenate([con.ub for con in constraints]))
        return _milp_in_child(c, integrality, bounds, constraint, options)
    return milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options=options)


def _run(model: _Model, time_limit: float, mip_gap: float | None = None, *, extra: Sequence[LinearConstraint] = (),
         presolve: bool = True, recheck: bool = False) -> OptimizeResult | SimpleNamespace:
    """HiGHS on the model (plus ``extra`` rows) within ``time_limit`` seconds.

    With ``recheck`` an "infeasible" verdict reached with presolve is checked again
    without it, in the time left: HiGHS's MIP presolve is known to declare some feasible
    models infeasible (HiGHS issues 1517, 2388, 3296), and did so on this model before
    the U rows became inequalities (see ``_memory_rows``).
    """
    if time_limit <= 0:
        return SimpleNamespace(status=1, x=None, fun=None, mip_dual_bound=None, message="no time left")
    start = time.perf_counter()
    constraints = [model.constraint, *extra]
    res = _milp(model.c, model.integrality, model.bounds, constraints, _options(time_limit, mip_gap, presolve))
    left = time_limit - (time.perf_counter() - start)
    if res.status == 2 and presolve and recheck and left > 0:
        res = _milp(model.c, model.integrality, model.bounds, constraints, _options(left, mip_gap, presolve=False))
    return res


def _matrices(lay: _Layout, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R and S (floats) of a solution vector."""
    n = lay.n
    R = np.zeros((n, n))
    S = np.zeros((n, n))
    R[np.tril_indices(n)] = x[: lay.s0]
    S[np.tril_indices(n, -1)] = x[lay.s0 : lay.u0]
    return R, S


def _status(res: OptimizeResult | SimpleNamespace) -> str:
    if res.status == 0:
        return "optimal"
    if res.status == 2:
        return "infeasible"
    if res.x is not None:
        return "feasible"
    if res.status == 1:
        return "timeout"
    raise RuntimeError(f"HiGHS ended with status {res.status}: {res.message}")


def _bound(res: OptimizeResult | SimpleNamespace) -> float | None:
    bound = getattr(res, "mip_dual_bound", None)
    return float(bound) if bound is not None and math.isfinite(bound) else None


# --------------------------------------------------------------------------- solvers


def _shortcut(problem: RematProblem) -> RematSolution | None:
    """Answers that need no solver: empty graph, budget below a lower bound, store-all fits.

    If computing each node once fits, its cost Σ C_i is optimal: every node is computed
    at least once and costs are non-negative.
    """
    if problem.n == 0:
        return _canonical(problem, np.zeros((0, 0), dtype=bool), status="optimal", seconds=0.0, lower_bound=0.0)
    if budget_lower_bound(problem) > problem.budget:
        return _infeasible(problem)
    if store_all_peak(problem) <= problem.budget:
        total = float(sum(problem.costs))
        return _canonical(problem, np.eye(problem.n, dtype=bool), status="optimal", seconds=0.0, lower_bound=total)
    return None


def _cutoff(problem: RematProblem, incumbent: float, gap: float) -> float:
    """The objective bound for "is there a schedule cheaper than the incumbent?".

    Σ C R <= incumbent - max(gap·incumbent, 1/2 if all costs are integers): a schedule
    within the relative gap of the incumbent is no better (HiGHS's own optimality test).
    """
    return incumbent - max(gap * abs(incumbent), 0.5 if _integral_costs(problem) else 0.0)


def _integral_costs(problem: RematProblem) -> bool:
    return all(float(c).is_integer() for c in problem.costs)


def _solution_of(problem: RematProblem, model: _Model, x: np.ndarray, **fields) -> RematSolution:
    """The canonical solution of a MILP point (R, S rounded; a held value is not recomputed)."""
    R, S = _matrices(model.lay, x)
    R, S = R > 0.5, S > 0.5
    np.fill_diagonal(R, True)
    return _canonical(problem, R & ~S, **fields)


def solve_milp(problem: RematProblem, *, time_limit: float = 60.0, mip_gap: float | None = None,
               incumbent: bool = True) -> RematSolution:
    """The least-cost schedule within the budget: Checkmate's MILP solved by HiGHS.

    With ``incumbent`` (the default) :func:`solve_lp_rounding` first finds a schedule
    (given at most half the time, one short local search) and the MILP gets the rest with the cut
    Σ C R <= ``_cutoff``: HiGHS then either finds a cheaper schedule or proves there is
    none, and its bound is the optimum's. The answer is the cheaper of the two.

    Status "optimal" (within HiGHS's relative gap, 1e-4 unless ``mip_gap``), "feasible"
    (time limit hit; the best schedule known), "infeasible" (proven), or "timeout" (time
    limit hit and no schedule known). ``lower_bound``: a proven bound on the optimum.
    A final "infeasible" verdict (no schedule known) is checked again without presolve.
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick
    start = time.perf_counter()
    gap = 1e-4 if mip_gap is None else mip_gap
    first = solve_lp_rounding(problem, time_limit=time_limit / 2, restarts=1, kicks=100) if incumbent else None
    known = first if first is not None and first.status == "feasible" else None
    b0 = time.perf_counter()
    model = _build(problem, budget=problem.budget, integral=True)
    build = time.perf_counter() - b0
    extra = []
    if known is not None:
        extra.append(LinearConstraint(sp.csr_matrix(model.c[None, :]), -np.inf, _cutoff(problem, known.cost, gap)))
    res = _run(model, time_limit - (time.perf_counter() - start), mip_gap, extra=extra, recheck=known is None)
    seconds = time.perf_counter() - start - build
    status, bound = _status(res), _bound(res)
    if res.x is not None:
        return _solution_of(problem, model, res.x, status=status, seconds=seconds, lower_bound=bound, build_seconds=build)
    if known is None:
        return _infeasible(problem, status, seconds, bound, build)
    if status == "infeasible":  # every schedule costs more than the cutoff: the incumbent is optimal
        cut = _cutoff(problem, known.cost, gap)
        bound, status = (math.floor(cut) + 1.0 if _integral_costs(problem) else cut), "optimal"
    else:
        bound = None if bound is None else min(bound, known.cost)
        status = "feasible"
    return replace(known, status=status, solve_seconds=seconds, lower_bound=bound, build_seconds=build)


class LeastBudgetTimeout(TimeoutError):
    """The least budget was not proven within the time limit; it lies in [lower, upper]."""

    def __init__(self, lower: int, upper: int, seconds: float) -> None:
        super().__init__(f"least budget not proven in {seconds:.0f} s: between {lower} and {upper} bytes")
        self.lower, self.upper = lower, upper


def minimal_least_budget(problem: RematProblem, *, time_limit: float = 60.0) -> int:
    """The least budget a schedule of this model can meet (the problem's own budget is ignored).

    min P  s.t. U[t,k] <= P and the constraints of the MILP (units of g = gcd(sizes));
    the answer is g·P*. ``budget_lower_bound`` <= answer <= ``store_all_peak``; when
    they meet no solver runs. Raises :class:`LeastBudgetTimeout` (with the bounds then
    known) if HiGHS cannot prove P* within the limit.
    """
    low, high = budget_lower_bound(problem), store_all_peak(problem)
    if low >= high:
        return high
    model = _build(problem, budget=high, integral=True, minimise_peak=True)
    res = _run(model, time_limit)
    if res.status == 0:
        return int(math.ceil(res.fun - 1e-6)) * model.unit
    bound = _bound(res)
    if bound is not None:
        low = max(low, int(math.ceil(bound - 1e-6)) * model.unit)
    if res.x is not None:
        high = min(high, int(math.ceil(res.fun - 1e-6)) * model.unit)
    raise LeastBudgetTimeout(low, high, time_limit)


def _compute_from_storage(problem: RematProblem, S: np.ndarray) -> np.ndarray:
    """The least R for a (rounded) S, stage by stage from the last.

    Needed at the end of stage t: keep (t = n-1) or what stage t+1 takes from storage.
    In stage t, from k = t down to 0, a needed k is taken from S[t,k] if stored (then it
    is needed at the end of stage t-1) and otherwise computed (R[t,k] = 1), which makes
    its dependencies needed. A node that may not be recomputed is always taken from
    storage (it is then held from its computation on).
    """
    n = problem.n
    deps = _deps(problem)
    S = S | ~problem.may_recompute()[None, :]
    R = np.zeros((n, n), dtype=bool)
    carry = set(problem.keep)
    for t in range(n - 1, -1, -1):
        need = carry | {t}
        carry = set()
        pending = [-k for k in need]  # a max-heap: dependencies (< k) come after k
        heapq.heapify(pending)
        while pending:
            k = -heapq.heappop(pending)
            if k < t and S[t, k]:
                carry.add(k)
                continue
            R[t, k] = True
            for d in deps[k]:
                if d not in need:
                    need.add(d)
                    heapq.heappush(pending, -d)
    return R


def _roundings(S_frac: np.ndarray, seed: int, n_random: int) -> list[np.ndarray]:
    """Candidate S: store all, store nothing (recompute what is read), thresholds S* >= τ,
    and Bernoulli(S*) draws (a seeded generator)."""
    rng = np.random.default_rng(seed)
    candidates = [np.ones_like(S_frac, dtype=bool), np.zeros_like(S_frac, dtype=bool)]
    candidates += [S_frac >= tau for tau in np.linspace(0.05, 0.95, 19)]
    candidates += [rng.random(S_frac.shape) < S_frac for _ in range(n_random)]
    return candidates


def _cost(problem: RematProblem, R: np.ndarray) -> float:
    """Σ_t Σ_i C_i R[t,i]."""
    return float(np.asarray(problem.costs, dtype=float) @ R.sum(axis=0))


@dataclass(frozen=True)
class _Graph:
    """The problem as arrays: dependencies in CSR form (deps of i: idx[ptr[i]:ptr[i+1]])."""

    ptr: np.ndarray
    idx: np.ndarray
    sizes: np.ndarray
    costs: np.ndarray
    keep: np.ndarray  # node indices
    extra: np.ndarray  # workspace bytes per node


def _graph(problem: RematProblem) -> _Graph:
    deps = _deps(problem)
    ptr = np.concatenate(([0], np.cumsum([len(ds) for ds in deps]))).astype(np.int64)
    idx = np.array([d for ds in deps for d in ds], dtype=np.int64)
    return _Graph(ptr, idx, np.asarray(problem.sizes, dtype=np.int64), np.asarray(problem.costs, dtype=float),
                  np.array(sorted(set(problem.keep)), dtype=np.int64), problem.extra())


@dataclass(frozen=True)
class _Profile:
    """The schedule of a compute matrix, vectorised (position p = p-th compute in stage order).

    read[r] is the position whose value reader[r] reads (the latest compute of that node
    before it); free_at[p] the position after which p's value is freed (-1: never);
    memory[p] = Σ_{q<=p} M_q - Σ_{q: 0<=free_at[q]<p} M_q + W_p, the memory while p runs.
    """

    stage: np.ndarray
    node: np.ndarray
    reader: np.ndarray
    read: np.ndarray
    free_at: np.ndarray
    memory: np.ndarray


def _profile(g: _Graph, R: np.ndarray) -> _Profile:
    stage, node = np.nonzero(R)
    P = len(node)
    pos = np.arange(P)
    reader, k = _expand(g.ptr[node], g.ptr[node + 1])
    dep = g.idx[k]
    by_node = np.argsort(node * P + pos, kind="stable")
    keys = (node * P + pos)[by_node]
    j = np.searchsorted(keys, dep * P + reader) - 1
    if np.any(j < 0) or np.any(keys[np.maximum(j, 0)] // P != dep):
        raise ValueError("a node reads a value before any computation of it")
    read = by_node[j]
    free_at = pos.copy()
    np.maximum.at(free_at, read, reader)
    last = np.full(len(g.ptr) - 1, -1)
    np.maximum.at(last, node, pos)
    final = last[g.keep]
    free_at[final[final >= 0]] = -1
    size = g.sizes[node]
    freed = np.zeros(P + 1, dtype=np.int64)
    np.add.at(freed, free_at[free_at >= 0] + 1, size[free_at >= 0])
    memory = np.cumsum(size) - np.cumsum(freed)[:-1] + g.extra[node]
    return _Profile(stage, node, reader, read, free_at, memory)


def _prune_fast(g: _Graph, R: np.ndarray) -> tuple[np.ndarray, _Profile]:
    """``_prune`` by reachability: keep the computes a frontier compute or a kept output reads,
    directly or through other kept computes (reads point backwards: one graph search)."""
    prof = _profile(g, R)
    P = len(prof.node)
    roots = np.nonzero((prof.node == prof.stage) | (prof.free_at < 0))[0]
    rows = np.concatenate((prof.reader, np.full(len(roots), P)))
    cols = np.concatenate((prof.read, roots))
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(P + 1, P + 1))
    reached = breadth_first_order(graph, P, directed=True, return_predecessors=False)
    reached = reached[reached < P]
    if len(reached) == P:
        return R, prof
    pruned = np.zeros_like(R)
    pruned[prof.stage[reached], prof.node[reached]] = True
    return pruned, _profile(g, pruned)


def _improve_recomputes(problem: RematProblem, R: np.ndarray, deadline: float,
                        move: Callable[[np.ndarray, int, int], np.ndarray | None]) -> np.ndarray:
    """First-improvement passes over the recomputes R[t,k] (k < t), dearest first.

    ``move(R, t, k)`` returns a better schedule that no longer recomputes k in stage t,
    or None; an accepted move replaces R. Passes repeat until one changes nothing or
    the deadline passes.
    """
    costs = np.asarray(problem.costs, dtype=float)
    changed = True
    while changed and time.perf_counter() < deadline:
        changed = False
        ts, ks = np.nonzero(np.tril(R, -1))
        for j in np.argsort(-costs[ks], kind="stable"):
            t, k = int(ts[j]), int(ks[j])
            if not R[t, k] or time.perf_counter() >= deadline:
                continue
            better = move(R, t, k)
            if better is not None:
                R, changed = better, True
    return R


def _without(R: np.ndarray, t: int, k: int) -> np.ndarray:
    """R with the computation of k in stage t dropped."""
    trial = R.copy()
    trial[t, k] = False
    return trial


def _hold_instead(problem: RematProblem, R: np.ndarray, deadline: float) -> np.ndarray:
    """Local search: drop one recompute R[t,k] (k < t) if the schedule still fits the budget.

    Without it the earlier value of k lives on until stage t reads it, and the
    recomputes that only fed it are pruned. Each accepted move removes at least one
    compute, so the cost never rises and the search ends.
    """
    g = _graph(problem)

    def drop(R: np.ndarray, t: int, k: int) -> np.ndarray | None:
        trial, profile = _prune_fast(g, _without(R, t, k))
        return trial if profile.memory.max(initial=0) <= problem.budget else None

    return _improve_recomputes(problem, _prune_fast(g, R)[0], deadline, drop)


def _repair(problem: RematProblem, R: np.ndarray, deadline: float) -> np.ndarray | None:
    """Bring a schedule's peak within the budget by recomputing instead of holding; None if stuck.

    At the peak (position p, stage t*), each value alive there and next read in a later
    stage t' is a candidate: stop holding it over stages t*..t' (clear S there) and let
    ``_compute_from_storage`` recompute it, with what it needs, in t'. The candidate
    with the lowest (peak, cost) is taken while the peak falls.
    """
    g = _graph(problem)
    may = problem.may_recompute()
    R, prof = _prune_fast(g, R)
    while prof.memory.max(initial=0) > problem.budget and time.perf_counter() < deadline:
        p = int(np.argmax(prof.memory))
        stage = int(prof.stage[p])
        S = _stage_memory(problem, R)
        best: tuple[int, float, np.ndarray, _Profile] | None = None
        alive = (np.arange(len(prof.node)) < p) & ((prof.free_at >= p) | (prof.free_at < 0))
        for q in np.nonzero(alive & may[prof.node])[0]:
            if best is not None and time.perf_counter() >= deadline:
                break
            later = prof.reader[(prof.read == q) & (prof.reader > p)]
            if not len(later) or prof.stage[later.min()] <= stage:
                continue
            trial = S.copy()
            trial[stage : prof.stage[later.min()] + 1, prof.node[q]] = False
            R2, prof2 = _prune_fast(g, _compute_from_storage(problem, trial))
            key = (int(prof2.memory.max(initial=0)), _cost(problem, R2))
            if best is None or key < best[:2]:
                best = (*key, R2, prof2)
        if best is None or best[0] >= prof.memory.max():
            return None
        R, prof = best[2], best[3]
    return R if prof.memory.max(initial=0) <= problem.budget else None


def _swap(problem: RematProblem, R: np.ndarray, deadline: float) -> np.ndarray:
    """Local search, second neighbourhood: hold one more value, pay for it elsewhere.

    Drop one recompute even if the budget is then exceeded, bring the peak back with
    ``_repair`` (which recomputes something else) and descend with ``_hold_instead``;
    keep the result if it is cheaper.
    """

    def trade(R: np.ndarray, t: int, k: int) -> np.ndarray | None:
        trial = _repair(problem, _without(R, t, k), deadline)
        if trial is None:
            return None
        trial = _hold_instead(problem, trial, deadline)
        return trial if _cost(problem, trial) < _cost(problem, R) else None

    return _improve_recomputes(problem, R, deadline, trade)


def _kick(problem: RematProblem, R: np.ndarray, rng: np.random.Generator, deadline: float) -> np.ndarray | None:
    """A random step away from a schedule that still fits: hold one to three recomputed
    values instead (then ``_repair`` the peak), or stop holding one value for one to five
    stages (recompute it where read; repair if needed). None if the step cannot fit."""
    g = _graph(problem)
    trial = R.copy()
    if rng.random() < 0.5:
        ts, ks = np.nonzero(np.tril(trial, -1))
        if not len(ts):
            return None
        for j in rng.choice(len(ts), size=min(len(ts), int(rng.integers(1, 4))), replace=False):
            trial[ts[j], ks[j]] = False
        return _repair(problem, trial, deadline)
    S = _stage_memory(problem, trial)
    ts, held = np.nonzero(S & problem.may_recompute()[None, :])
    if not len(ts):
        return None
    j = int(rng.integers(len(ts)))
    S[ts[j] : ts[j] + int(rng.integers(1, 6)), held[j]] = False
    trial, profile = _prune_fast(g, _compute_from_storage(problem, S))
    return trial if profile.memory.max(initial=0) <= problem.budget else _repair(problem, trial, deadline)


def _iterated_search(problem: RematProblem, R: np.ndarray, seed: int, kicks: int, deadline: float,
                     patience: int = 40) -> np.ndarray:
    """Iterated local search: up to ``kicks`` random kicks (``_kick``), each followed by
    ``_hold_instead``; a result no dearer than the current one replaces it (equal cost:
    a move along the plateau). Stops after ``patience`` kicks without a cheaper schedule,
    or when nothing is recomputed any more."""
    rng = np.random.default_rng(seed)
    best, cost = R, _cost(problem, R)
    once = float(sum(problem.costs))
    since = 0
    for _ in range(kicks):
        if time.perf_counter() >= deadline or since >= patience or cost <= once:
            break
        since += 1
        trial = _kick(problem, best, rng, deadline)
        if trial is None:
            continue
        trial = _hold_instead(problem, trial, deadline)
        trial_cost = _cost(problem, trial)
        if trial_cost < cost:
            since = 0
        if trial_cost <= cost:
            best, cost = trial, trial_cost
    return best


def solve_lp_rounding(problem: RematProblem, *, time_limit: float = 60.0, seed: int = 0, n_random: int = 16,
                      lp_budget_factors: Sequence[float] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7), improve: int = 3,
                      swap_seconds: float = 5.0, kicks: int = 250, restarts: int = 4) -> RematSolution:
    """The fast approximation: round the LP relaxation's S, complete R, then a local search.

    For LP budgets b·f, f in ``lp_budget_factors`` in turn (never below
    ``budget_lower_bound``; a smaller LP budget leaves the rounding room), until one
    gives a schedule within the budget b: solve the relaxation (FREE linearised by its
    factors), round S (store-all, store-nothing, thresholds 0.05..0.95, ``n_random`` seeded
    Bernoulli(S*) draws), complete each with the least R (``_compute_from_storage``) and
    replay it; the ``improve`` roundings nearest to the budget that exceed it go through
    ``_repair``. The ``improve`` cheapest schedules that fit go through ``_hold_instead``,
    the cheapest of those through ``_swap`` for at most ``swap_seconds``, then
    ``restarts`` runs of an iterated local search (``_iterated_search``, ``kicks``
    rounds each, seeded) from it; the cheapest result wins. ``improve=0``:
    the rounding alone. Everything stops at ``time_limit``.

    Status "feasible", or "infeasible" when no rounding fits (the budget may still be
    feasible: only the LP's infeasibility at f = 1 proves it is not). ``lower_bound`` is
    the optimum of the LP at b itself, when it was solved.
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick if quick.status == "infeasible" else replace(quick, status="feasible")
    start = time.perf_counter()
    deadline = start + time_limit
    g = _graph(problem)
    budgets = dict.fromkeys(max(budget_lower_bound(problem), int(problem.budget * f)) for f in lp_budget_factors)
    fitting: dict[bytes, np.ndarray] = {}
    bound: float | None = None
    build = 0.0
    for lp_budget in budgets:
        if fitting or time.perf_counter() >= deadline:
            break
        b0 = time.perf_counter()
        model = _build(problem, budget=lp_budget, integral=False, free_rows="factors")
        build += time.perf_counter() - b0
        res = _run(model, deadline - time.perf_counter())
        if res.x is None:
            if res.status == 2:
                break  # smaller LP budgets are infeasible too
            continue
        if lp_budget == problem.budget and res.status == 0:
            bound = float(res.fun)
        over: list[tuple[int, np.ndarray]] = []
        for S_round in _roundings(_matrices(model.lay, res.x)[1], seed, n_random):
            R, profile = _prune_fast(g, _compute_from_storage(problem, S_round))
            if profile.memory.max(initial=0) <= problem.budget:
                fitting.setdefault(np.packbits(R).tobytes(), R)
            else:
                over.append((int(profile.memory.max()), R))
        for _, R in sorted(over, key=lambda item: item[0])[:improve]:
            repaired = _repair(problem, R, deadline)
            if repaired is not None:
                fitting.setdefault(np.packbits(repaired).tobytes(), repaired)
    starts = sorted(fitting.values(), key=lambda R: _cost(problem, R))[: max(improve, 1)]
    if not starts:
        return _infeasible(problem, "infeasible", time.perf_counter() - start - build, bound, build)
    if improve > 0:
        starts = [_hold_instead(problem, R, deadline) for R in starts]
    best = min(starts, key=lambda R: _cost(problem, R))
    if improve > 0:
        best = _swap(problem, best, min(deadline, time.perf_counter() + swap_seconds))
        runs = [_iterated_search(problem, best, seed * restarts + r, kicks, deadline) for r in range(restarts)]
        best = min(runs, key=lambda R: _cost(problem, R))
    seconds = time.perf_counter() - start - build
    return _canonical(problem, best, status="feasible", seconds=seconds, lower_bound=bound, build_seconds=build)


# --------------------------------------------------------------------------- generators


def training_chain(n: int, *, size: int = 1, cost: float = 1.0, budget: int | None = None) -> RematProblem:
    """A forward chain of n nodes and its backward chain: 2n nodes, output the last gradient.

    f_j = node j reads f_{j-1};  g_j = node 2n-1-j reads f_j and g_{j+1} (g_{n-1} reads f_{n-1}).
    Keep: g_0. Default budget: the store-all peak, (n + 1)·size.
    """
    deps: list[list[int]] = [[j - 1] if j else [] for j in range(n)]
    deps += [[n - 1]] + [[j, 2 * n - 2 - j] for j in range(n - 2, -1, -1)]
    problem = RematProblem(sizes=[size] * 2 * n, costs=[cost] * 2 * n, deps=deps, keep=[2 * n - 1], budget=0)
    return replace(problem, budget=store_all_peak(problem) if budget is None else budget)


def random_training_dag(n: int, *, seed: int = 0, width: int = 4, max_deps: int = 3) -> RematProblem:
    """A random layered forward DAG of n//2 nodes and its adjoint: n nodes in all (n even).

    Forward node v (layer by layer, ``width`` per layer) reads 1..max_deps nodes of the
    previous layer (none in the first). Adjoint node b_v reads f_v and b_c for each
    consumer c of v. Sizes and costs are random in 1..4; keep: the adjoints of the first
    layer. Budget: halfway between ``budget_lower_bound`` and the store-all peak.
    """
    rng = np.random.default_rng(seed)
    nf = max(n // 2, 1)
    layer = np.arange(nf) // width
    deps: list[list[int]] = []
    for v in range(nf):
        prev = np.nonzero(layer == layer[v] - 1)[0]
        k = min(len(prev), int(rng.integers(1, max_deps + 1)))
        deps.append(sorted(rng.choice(prev, size=k, replace=False).tolist()) if k else [])
    consumers: list[list[int]] = [[] for _ in range(nf)]
    for v, ds in enumerate(deps):
        for d in ds:
            consumers[d].append(v)
    adjoint = {v: 2 * nf - 1 - v for v in range(nf)}  # b_v after all b_c of consumers c > v
    for v in range(nf - 1, -1, -1):
        deps.append([v] + sorted(adjoint[c] for c in consumers[v]))
    sizes = rng.integers(1, 5, size=2 * nf).tolist()
    costs = rng.integers(1, 5, size=2 * nf).astype(float).tolist()
    keep = [adjoint[v] for v in range(nf) if layer[v] == 0]
    problem = RematProblem(sizes=sizes, costs=costs, deps=deps, keep=keep, budget=0)
    return replace(problem, budget=mid_budget(problem))


def mid_budget(problem: RematProblem) -> int:
    """Halfway between ``budget_lower_bound`` and the store-all peak."""
    return (budget_lower_bound(problem) + store_all_peak(problem)) // 2


# --------------------------------------------------------------------------- benchmark


def _feasible_mid(problem: RematProblem, time_limit: float) -> tuple[RematProblem, RematSolution]:
    """The problem at ``mid_budget``, raised halfway to the store-all peak while it is infeasible."""
    budget, top = mid_budget(problem), store_all_peak(problem)
    while True:
        problem = replace(problem, budget=budget)
        solution = solve_milp(problem, time_limit=time_limit)
        if solution.status != "infeasible" or budget >= top:
            return problem, solution
        budget = (budget + top + 1) // 2


def recompute_ratio(problem: RematProblem, approx: RematSolution, exact: RematSolution) -> float:
    """Recompute (cost beyond computing each node once) of ``approx`` over that of ``exact``.

    1.0 when both recompute nothing; inf when only ``approx`` does; nan without both schedules.
    """
    if not (math.isfinite(approx.cost) and math.isfinite(exact.cost)):
        return math.nan
    once = float(sum(problem.costs))
    extra, best = approx.cost - once, exact.cost - once
    if best <= 1e-9:
        return 1.0 if extra <= 1e-9 else math.inf
    return extra / best


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def benchmark_solve_times(sizes: Sequence[int] = (10, 25, 50, 100, 200, 500), *, time_limit: float = 60.0,
                          seed: int = 0, milp_alone: bool = True, out: TextIO = sys.stdout) -> list[dict]:
    """Solve times at a mid budget for graphs of n nodes; prints a table, returns its rows.

    Graphs: ``training_chain(n // 2)`` and ``random_training_dag(n)``; budget
    ``mid_budget``, raised halfway to the store-all peak while infeasible (small random
    graphs need almost everything). Columns: the model's size and build time; the
    default :func:`solve_milp` (LP rounding first, then the MILP with a cutoff): seconds,
    status, cost, bound, ``proven`` (optimal within the limit); with ``milp_alone`` the
    MILP without the incumbent (seconds, status); :func:`solve_lp_rounding` alone
    (seconds, cost, and ``lp_extra``: its recompute over the MILP's, see
    :func:`recompute_ratio`). Times are wall-clock on this machine.
    """
    nan = math.nan
    rows: list[dict] = []
    header_done = False
    for n in sizes:
        for name, problem in (("chain", training_chain(max(n // 2, 1))), ("layered", random_training_dag(n, seed=seed))):
            problem, sol = _feasible_mid(problem, time_limit)
            n_vars, n_rows, _ = model_size(problem)
            row = {"graph": name, "n": problem.n, "vars": n_vars, "rows": n_rows, "budget": problem.budget,
                   "build_s": sol.build_seconds, "solve_s": sol.solve_seconds, "status": sol.status,
                   "cost": sol.cost, "bound": nan if sol.lower_bound is None else sol.lower_bound,
                   "proven": sol.status in ("optimal", "infeasible")}
            if milp_alone:
                alone = solve_milp(problem, time_limit=time_limit, incumbent=False)
                row.update(alone_s=alone.solve_seconds, alone_status=alone.status)
            lp = solve_lp_rounding(problem, time_limit=time_limit)
            row.update(lp_s=lp.solve_seconds + lp.build_seconds, lp_cost=lp.cost,
                       lp_extra=recompute_ratio(problem, lp, sol))
            if not header_done:
                print(" ".join(f"{k:>12}" for k in row), file=out, flush=True)
                header_done = True
            print(" ".join(f"{_fmt(v):>12}" for v in row.values()), file=out, flush=True)
            rows.append(row)
    return rows
