"""A lower bound on the recompute of every schedule within a budget, whatever its order: the moment bound.

The solvers' bounds hold in their own models (a fixed order of first computations, memory
counted their way) and none runs on graphs of thousands of values. This bound holds for
every schedule, at any size, and is what ``prog.remat`` measures a gap against.

The argument, at one moment. Take a node m and any schedule. When m is computed for the
first time, its ancestors A(m) have all been computed and none of its descendants D(m) has;
every other node was computed first either before (b_v = 1) or after (b_v = 0), its reads
before it. A value computed before the moment that a node computed after it reads (or that
is an output) is needed later: it is held through the moment (k_v = 1) or computed again
afterwards (y_v = 1, at cost c_v). Computing v again needs what v reads: each value p it
reads is held through the moment or computed again too. What is held fits in the budget B,
right after m and while m runs (its reads and its workspace W_m held too). So every
schedule recomputes at least

    LB(m) = min Σ c_v y_v   subject to   b_v = 1 on A(m) ∪ {m},  b_v = 0 on D(m),  b_u ≤ b_p   (p read by u)
                                         k_v + y_v ≥ b_v − b_u                     (u reads v; b_u = 0 for outputs)
                                         k_p + y_p ≥ y_v,  k_v ≤ b_v,  y_v ≤ b_v   (p read by v)
                                         Σ s_v k_v ≤ B,  Σ_{v ≠ m, v not read by m} s_v k_v + Σ_{p read by m} s_p + W_m ≤ B
                                         y_v = 0 where v may not be recomputed;  b, k, y ∈ {0, 1}

and so at least max_m LB(m). HiGHS solves LB(m) for the moments where storing everything
holds the most; a solve stopped at its time limit still gives a valid bound (its dual bound).

The bound is of the bytes a schedule *holds*, which any arena holds apart, so it is valid
for the planner's arenas (in-place reuse included) and for the solvers' models alike. For the
solvers' fixed order of first computations (``fixed_order``) the split is known, b_v = [v ≤ m],
and the bound is stronger. One moment cannot see a value dropped at it being needed again to
bring another back after it (``tests/test_remat_bound.py`` has a chain where it counts 2 of 3).

A moment's solution is also a schedule (:func:`drop_stages`): free what it drops, compute it
again just before it is read after the moment. Where that schedule fits, its recompute equals
the bound and it is optimal; "optimal" offers these schedules as candidates
(:func:`graphc.remat.optimal.moment_candidates`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from graphc.remat.milp import _Rows
from graphc.remat.problem import RematProblem

MOMENTS_SOLVED = 6
"""How many moments get the integer program: where storing everything in index order holds the most
and (any order) half of them where every order must hold the most."""


@dataclass(frozen=True)
class RecomputeBound:
    """The moment bound: no schedule within ``budget`` recomputes less than ``value``.

    ``moment`` is the node whose moment gave it (None when nothing must be recomputed);
    ``proven`` says whether every moment tried was solved to optimality (if not, ``value``
    rests on HiGHS's dual bounds, still a bound); ``feasible`` is False when no schedule
    fits the budget at some moment.
    """

    value: float
    moment: int | None
    seconds: float
    proven: bool = True
    feasible: bool = True
    drops: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (moment, the values its best solution computes again)


def _bitsets(edges: list[list[int]], n: int, order: range) -> np.ndarray:
    """Row i: the nodes reachable from i by ``edges`` (bit j of the uint64 words set when j is)."""
    closure = np.zeros((n, (n + 63) // 64), dtype=np.uint64)
    for i in order:
        row = closure[i]
        for j in edges[i]:
            row |= closure[j]
            row[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    return closure


def _unpack(row: np.ndarray, n: int) -> np.ndarray:
    """A bitset row as a bool vector of n."""
    return np.unpackbits(row.view(np.uint8), bitorder="little")[:n].astype(bool)


def own_bytes(problem: RematProblem, in_place: bool | Sequence[bool]) -> np.ndarray:
    """Per node: the bytes its value adds while it runs, beyond its reads. A node that may write in
    place (``in_place``: every node when True, else per node) overlays its largest read."""
    sizes = np.asarray(problem.sizes, dtype=float)
    overlays = np.full(problem.n, in_place) if isinstance(in_place, bool) else np.asarray(in_place, dtype=bool)
    if not overlays.any():
        return sizes
    largest = np.array([max((sizes[p] for p in reads), default=0.0) for reads in problem.deps])
    return np.where(overlays, np.maximum(sizes - largest, 0.0), sizes)


def store_all_held(problem: RematProblem, own: np.ndarray) -> np.ndarray:
    """Per node: the most its moment's rows hold when everything is stored and nodes run in index
    order (right after it, or while it runs): where the moments are heaviest."""
    n = problem.n
    sizes = np.asarray(problem.sizes, dtype=float)
    last = np.arange(n)
    for v, reads in enumerate(problem.deps):
        for p in reads:
            last[p] = max(last[p], v)
    last[list(problem.keep)] = n
    change = np.zeros(n + 2)
    np.add.at(change, np.arange(n) + 1, sizes)  # held from the step after v ...
    np.add.at(change, last + 1, -sizes)  # ... through its last read
    before = np.cumsum(change)[:n]  # computed before m, read by m or later
    after = before + sizes - np.where(last == np.arange(n), sizes, 0.0)
    after -= np.array([sum(sizes[p] for p in set(reads) if last[p] == v) for v, reads in enumerate(problem.deps)])
    return np.maximum(after, before + own + problem.extra())


def heaviest(held: np.ndarray, count: int, spacing: int) -> list[int]:
    """Up to ``count`` moments, heaviest first, at least ``spacing`` apart."""
    chosen: list[int] = []
    for m in np.argsort(-held, kind="stable"):
        if all(abs(int(m) - c) >= spacing for c in chosen):
            chosen.append(int(m))
            if len(chosen) == count:
                break
    return chosen


def readers(problem: RematProblem) -> list[list[int]]:
    """Per node, the nodes that read its value (each once, in index order)."""
    out: list[list[int]] = [[] for _ in range(problem.n)]
    for v, reads in enumerate(problem.deps):
        for p in set(reads):
            out[p].append(v)
    return out


def _moment_program(problem: RematProblem, m: int, ancestors: np.ndarray, descendants: np.ndarray,
                    users: list[list[int]], own: float, fixed_order: bool, time_limit: float) -> tuple[float, bool, tuple[int, ...] | None]:
    """LB(m) by HiGHS: the bound, whether it is solved to optimality, and the values the best solution
    found computes again (None without one). Columns: b, k, y of every node not in D(m)."""
    from scipy.optimize import Bounds, milp

    n = problem.n
    values = np.nonzero(~descendants)[0]
    col = {int(v): i for i, v in enumerate(values)}
    count = len(values)
    b, k, y = (lambda v: col[v]), (lambda v: count + col[v]), (lambda v: 2 * count + col[v])
    sizes = np.asarray(problem.sizes, dtype=float)
    costs = np.asarray(problem.costs, dtype=float)
    recompute = problem.may_recompute()
    budget = max(float(problem.budget), 1.0)
    keep = set(problem.keep)
    reads_of_m = set(problem.deps[m])

    lower, upper = np.zeros(3 * count), np.ones(3 * count)
    before = ancestors.copy()
    before[m] = True
    if fixed_order:  # first computations in index order: the split is the index
        before[:m + 1] = True
        upper[[col[int(v)] for v in values if v > m]] = 0.0
    lower[[col[int(v)] for v in np.nonzero(before)[0]]] = 1.0
    upper[[y(int(v)) for v in values if not recompute[v]]] = 0.0

    rows = _Rows()
    after_m, during_m = [], []
    for v in map(int, values):
        rows.row([(k(v), 1.0), (b(v), -1.0)], -np.inf, 0.0)
        rows.row([(y(v), 1.0), (b(v), -1.0)], -np.inf, 0.0)
        for p in problem.deps[v]:
            rows.row([(b(v), 1.0), (b(p), -1.0)], -np.inf, 0.0)
            if recompute[v]:
                rows.row([(k(p), 1.0), (y(p), 1.0), (y(v), -1.0)], 0.0)
        readers_after = [u for u in users[v] if descendants[u]]
        if v in keep or readers_after:  # read after the moment whenever it was computed before it
            rows.row([(k(v), 1.0), (y(v), 1.0), (b(v), -1.0)], 0.0)
        for u in users[v]:
            if not descendants[u]:
                rows.row([(k(v), 1.0), (y(v), 1.0), (b(v), -1.0), (b(u), 1.0)], 0.0)
        if sizes[v] > 0:
            after_m.append((k(v), sizes[v] / budget))
            if v != m and v not in reads_of_m:
                during_m.append((k(v), sizes[v] / budget))
    rows.row(after_m, -np.inf, 1.0)
    running = (sum(sizes[p] for p in reads_of_m) + own + problem.extra()[m]) / budget
    rows.row(during_m, -np.inf, 1.0 - running)

    scale = max(costs[values].max(initial=0.0), 1.0)
    objective = np.zeros(3 * count)
    objective[2 * count:] = costs[values] / scale
    result = milp(objective, integrality=np.ones(3 * count), bounds=Bounds(lower, upper),
                  constraints=[rows.constraint(3 * count)],
                  options={"time_limit": max(time_limit, 0.05), "disp": False})
    if result.status == 2:  # infeasible: no schedule meets this moment within the budget
        return np.inf, True, None
    dropped = None if result.x is None else tuple(int(v) for v in values[result.x[2 * count:] > 0.5])
    dual = getattr(result, "mip_dual_bound", None)
    if result.status == 0:
        return max(float(result.fun if dual is None else min(dual, result.fun)), 0.0) * scale, True, dropped
    value = max(float(dual), 0.0) * scale if dual is not None and np.isfinite(dual) else 0.0
    return value, False, dropped


class Moments:
    """The moments of one problem: its reachability computed once, each moment's program solved on demand."""

    def __init__(self, problem: RematProblem, in_place: bool | Sequence[bool] = False, fixed_order: bool = False) -> None:
        n = problem.n
        self.problem = problem
        self.fixed_order = fixed_order
        self.own = own_bytes(problem, in_place)
        self.users = readers(problem)
        self.ancestors = _bitsets([list(d) for d in problem.deps], n, range(n))
        self.descendants = _bitsets(self.users, n, range(n - 1, -1, -1))

    def order_free_held(self, chunk: int = 256) -> np.ndarray:
        """Per node m: the bytes every order holds right after m, storing everything: the values of
        A(m) ∪ {m} that a descendant of m reads, or that are kept."""
        problem, n = self.problem, self.problem.n
        pairs = [(p, v) for p, users in enumerate(self.users) for v in users]
        read_by = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), ([p for p, _ in pairs], [v for _, v in pairs])),
                                shape=(n, n))
        keep = np.zeros(n, dtype=bool)
        keep[list(problem.keep)] = True
        sizes = np.asarray(problem.sizes, dtype=float)
        held = np.zeros(n)
        for start in range(0, n, chunk):
            block = np.arange(start, min(start + chunk, n))
            before = np.unpackbits(self.ancestors[block].view(np.uint8), axis=1, bitorder="little")[:, :n].astype(bool)
            before[np.arange(len(block)), block] = True
            after = np.unpackbits(self.descendants[block].view(np.uint8), axis=1, bitorder="little")[:, :n]
            read_later = (read_by @ after.T.astype(np.float32)).T > 0
            held[block] = (before & (read_later | keep)) @ sizes
        return held

    def solve(self, m: int, time_limit: float, budget: int | None = None) -> tuple[float, bool, tuple[int, ...] | None]:
        """LB(m) at ``budget`` (default: the problem's): the bound, whether proven, the values computed again."""
        problem = self.problem if budget is None else replace(self.problem, budget=budget)
        n = problem.n
        return _moment_program(problem, m, _unpack(self.ancestors[m], n), _unpack(self.descendants[m], n),
                               self.users, float(self.own[m]), self.fixed_order, time_limit)


def moment_bound(problem: RematProblem, *, time_limit: float = 10.0, moments: int | None = None,
                 in_place: bool | Sequence[bool] = False, fixed_order: bool = False,
                 moments_of: Moments | None = None) -> RecomputeBound:
    """max_m LB(m) (module docstring) over ``moments`` nodes (``MOMENTS_SOLVED`` by default): where storing
    everything in index order holds the most, and (any order) half of them where every order must hold
    the most.

    Memory is ``problem.sizes`` (and ``problem.workspace`` while a node runs) against
    ``problem.budget``; costs are ``problem.costs``; ``problem.recomputable`` says which
    values may be computed again. ``time_limit`` is shared among the moments' programs.
    ``in_place``: a node's value may overlay its largest read (every node when True, else the
    nodes marked: graphc's planner does this for elementwise kernels), so while it runs it adds
    only what it holds beyond that read.
    ``fixed_order``: the bound of schedules that first compute nodes in index order (the MILP's and
    CP-SAT's model), where the split at each moment is known: stronger, and valid only for those.
    ``moments_of`` passes the problem's :class:`Moments` when the caller keeps them (to solve again).
    """
    started = time.perf_counter()
    moments = MOMENTS_SOLVED if moments is None else moments
    if problem.n == 0:
        return RecomputeBound(0.0, None, 0.0)
    every = Moments(problem, in_place, fixed_order) if moments_of is None else moments_of
    n = problem.n
    held = store_all_held(problem, every.own)
    if held.max() <= problem.budget:  # storing everything meets every moment
        return RecomputeBound(0.0, None, time.perf_counter() - started)
    best, best_moment, proven, drops = 0.0, None, True, []
    spacing = max(n // (4 * moments), 1)
    chosen = heaviest(held, moments, spacing)
    if not every.fixed_order:  # half of them where every order holds the most (held in index order can
        mandatory = every.order_free_held()  # peak where another order need not, e.g. at a weight's gradient)
        chosen = list(dict.fromkeys(heaviest(mandatory, moments - moments // 2, spacing) + chosen))[:moments]
    for rank, m in enumerate(chosen):
        left = time_limit - (time.perf_counter() - started)
        if left <= 0:
            proven = False
            break
        value, solved, dropped = every.solve(m, left / (len(chosen) - rank))
        proven &= solved
        if dropped is not None:
            drops.append((m, dropped))
        if value > best:
            best, best_moment = value, m
        if not np.isfinite(best):
            return RecomputeBound(np.inf, m, time.perf_counter() - started, proven, feasible=False)
    drops.sort(key=lambda d: d[0] != best_moment)  # the moment that gave the bound first
    return RecomputeBound(best, best_moment, time.perf_counter() - started, proven, drops=tuple(drops))


def drop_stages(problem: RematProblem, drops: Sequence[tuple[int, Sequence[int]]]) -> np.ndarray:
    """The stage schedule of moments' solutions: each (moment, dropped values) frees those values (the
    ones computed before it) after their last read before the moment, and computes each again in the
    stage of its next read after it.

    A read is also a recompute that needs the value, so a dropped value read by another computed
    again is computed again by that one's stage at the latest; within a stage values run in index
    order, so what a value reads comes first. At a node's own stage, reads come before its moment.
    """
    n = problem.n
    read_by = readers(problem)
    dropped_at: dict[int, list[int]] = {}
    for moment, dropped in drops:
        for v in dropped:
            if v < moment:
                dropped_at.setdefault(int(v), []).append(int(moment))
    keep = set(problem.keep)
    again: dict[int, set[int]] = {}  # value -> the stages that compute it again
    R = np.eye(n, dtype=bool)
    for v in sorted(dropped_at, reverse=True):  # readers (all later) are settled first
        reads = sorted(set(read_by[v]) | {t for u in read_by[v] for t in again.get(u, ())}
                       | ({n - 1} if v in keep else set()))
        events = sorted([(t, 0) for t in reads] + [(m, 1) for m in dropped_at[v]])  # a read before a drop
        held = True
        for time_, is_drop in events:
            if is_drop:
                held = False
            elif not held:
                again.setdefault(v, set()).add(time_)
                R[time_, v] = True
                held = True
    return R
