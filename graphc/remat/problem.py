"""The recompute problem on an abstract DAG, its schedules and their replay; the model Checkmate's MILP solves.

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
``graphc.remat.milp._memory_rows``). Memory is counted in units of g = gcd(sizes): the budget becomes
floor(budget / g).

Two extensions the compiler needs: a node that may not be recomputed (``recomputable``;
graphc recomputes forward values only) has R[t,i] = 0 for t > i, and a node with a
workspace W_i (memory it needs only while it runs) adds U[t,i] + W_i R[t,i] <= budget.
Before solving, the R and S entries every canonical schedule has are fixed (``graphc.remat.milp._fixed``):
nothing is held or recomputed after its last possible use, and a value computed once is
held until its last read. :func:`~graphc.remat.fusion.fuse_chains` coarsens a graph to layers first.

The fixed topological order is part of the model: stage t is the first computation of
node t, and inside a stage nodes run in index order, each at most once. The optimum is
optimal among such schedules; a schedule that first-computes nodes in another order can
be cheaper or need less memory (``tests/test_remat_solvers.py`` has a four- and a three-node
example).

The approximation (:func:`~graphc.remat.rounding.solve_lp_rounding`) is Checkmate's two-phase rounding: solve
the LP relaxation, round S, compute the least R for it; then a local search on the
schedule (hold a value instead of recomputing it; trade one hold for another).

A solution is returned in canonical form: recomputations that no later event reads are
removed, a value is freed right after its last read (:func:`schedule_of`), and S is what
that schedule holds at each stage boundary. That schedule never holds more than the
MILP's U, so its peak (:func:`peak_of`) is within the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
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
    interrupted: bool = False  # the solve was stopped by Ctrl-C (KeyboardInterrupt); the best schedule so far


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


# --------------------------------------------------------------------------- vectorised index ranges


def _expand(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (g, v) with starts[g] <= v < stops[g], grouped by g: the vectorised double loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.maximum(np.asarray(stops, dtype=np.int64) - starts, 0)
    group = np.repeat(np.arange(len(starts)), lengths)
    first = np.cumsum(lengths) - lengths
    value = np.arange(int(lengths.sum()), dtype=np.int64) - first[group] + starts[group]
    return group, value


# --------------------------------------------------------------------------- answers that need no solver


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


SWEEP_MAX_READS = 4096
"""Up to this many reads, ``_reached`` sweeps them in Python; above, SciPy's graph search does
(building its sparse matrix costs about as much as sweeping a few thousand reads)."""


def _reached(prof: _Profile, roots: np.ndarray) -> np.ndarray:
    """The positions that a root reads, directly or through other reached positions (sorted).

    Every read points to an earlier position and ``prof.reader`` is sorted, so one sweep
    over the reads from the last reader to the first settles each position before its reads."""
    P = len(prof.node)
    if len(prof.reader) > SWEEP_MAX_READS:
        rows = np.concatenate((prof.reader, np.full(len(roots), P)))
        cols = np.concatenate((prof.read, roots))
        graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(P + 1, P + 1))
        reached = breadth_first_order(graph, P, directed=True, return_predecessors=False)
        return np.sort(reached[reached < P])
    marked = np.zeros(P, dtype=bool)
    marked[roots] = True
    marked = marked.tolist()
    for reader, read in zip(reversed(prof.reader.tolist()), reversed(prof.read.tolist())):
        if marked[reader]:
            marked[read] = True
    return np.flatnonzero(marked)


def _prune_fast(g: _Graph, R: np.ndarray) -> tuple[np.ndarray, _Profile]:
    """``_prune`` by reachability: keep the computes a frontier compute or a kept output reads,
    directly or through other kept computes (reads point backwards: one graph search)."""
    prof = _profile(g, R)
    P = len(prof.node)
    roots = np.nonzero((prof.node == prof.stage) | (prof.free_at < 0))[0]
    reached = _reached(prof, roots)
    if len(reached) == P:
        return R, prof
    pruned = np.zeros_like(R)
    pruned[prof.stage[reached], prof.node[reached]] = True
    return pruned, _profile(g, pruned)
