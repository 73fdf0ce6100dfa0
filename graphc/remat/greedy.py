"""A schedule built forward, stage by stage, evicting under the budget: a first schedule in well under a second.

The exact solvers need a schedule to start from on large graphs. This one runs the stage form
of :mod:`graphc.remat.problem` forward, as a runtime would: stage t computes what t reads and
does not hold (with what that reads and does not hold, in index order), then t. When the next
compute does not fit, a held value v is evicted, to be computed again in stage a, where it is
next read. The choice follows Dynamic Tensor Rematerialization (Kirisame et al. 2021, ICLR),
with the read times known in advance as in Belady's rule: evict the v with the least

    price(v) = cost(v) / net(v)^α,   net(v) = M_v · (a − t) − Σ_{d held, last read before a} M_d · (a − last_read_d)

where cost(v) is C_v plus the cost of what comes back with it (its dependencies not held,
recursively), and net(v) the byte-stages saved: v's, less those of the dependencies that must
now live until a. Values with no positive saving go last, comebacks of more than
``COMEBACK_LIMIT`` values after them. Once v is evicted its dependencies count a read in stage a.
Values read later in the same stage, and values that may not be recomputed, are never
evicted; a value is freed once nothing reads it again. The simulation never holds less than the
replay of the stage matrix it returns (which frees each value at its last read before it is
computed again), so the schedule fits the budget whenever the simulation did.
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence

import numpy as np

from graphc.remat.bound import readers
from graphc.remat.problem import RematProblem, _deps

ALPHAS = (1.0, 2.0, 0.5, 4.0)
"""The weights of the saving tried (one schedule each)."""
COMEBACK_LIMIT = 64
"""A comeback that computes more values than this is priced out."""


def _readers(problem: RematProblem) -> list[list[int]]:
    """Per node, the stages whose own node reads it (ascending), then n for a kept output."""
    kept = set(problem.keep)
    return [rs + [problem.n] if v in kept else rs for v, rs in enumerate(readers(problem))]


def _next_read(readers: list[int], t: int) -> int | None:
    """The first stage after t that reads the value, or None."""
    j = bisect.bisect_right(readers, t)
    return readers[j] if j < len(readers) else None


def _stage_computes(t: int, needed: Sequence[int], deps: list[list[int]], held: np.ndarray) -> list[int]:
    """What stage t computes, in index order: ``needed`` that are not held, with what they read and
    is not held, then t itself."""
    todo = [d for d in needed if not held[d]]
    chosen: set[int] = set(todo)
    while todo:
        for d in deps[todo.pop()]:
            if not held[d] and d not in chosen:
                chosen.add(d)
                todo.append(d)
    chosen.discard(t)
    return sorted(chosen) + [t]


def _comeback(v: int, deps: list[list[int]], held: np.ndarray) -> tuple[list[int], list[int]]:
    """What computing v again computes (v and, recursively, what it reads that is not held), and the
    held values those read; the first list stops growing past ``COMEBACK_LIMIT`` + 1 values."""
    computed, read_held = [v], []
    todo, seen = [v], {v}
    while todo and len(computed) <= COMEBACK_LIMIT:
        for d in deps[todo.pop()]:
            if d not in seen:
                seen.add(d)
                (read_held if held[d] else computed).append(d)
                if not held[d]:
                    todo.append(d)
    return computed, read_held


def _eviction_price(v: int, t: int, at: int, deps: list[list[int]], sizes: np.ndarray, costs: np.ndarray,
                    held: np.ndarray, last_read: np.ndarray, alpha: float) -> tuple[int, float]:
    """What evicting v in stage t and computing it again in stage ``at`` costs per byte-stage saved.

    The comeback computes v and, recursively, what it reads that is not held; what it reads that
    is held must live until ``at``: M_d · (at − last_read_d) byte-stages lost. Saved: M_v · (at − t).
    (0, cost / net^α) when the net saving is positive, else (1, cost): evicting then saves
    memory now only to spend more later; (2, inf) past ``COMEBACK_LIMIT`` values computed."""
    computed, read_held = _comeback(v, deps, held)
    if len(computed) > COMEBACK_LIMIT:
        return 2, math.inf
    cost = float(costs[computed].sum())
    lost = sum(int(sizes[d]) * (at - int(last_read[d])) for d in read_held if last_read[d] < at)
    net = int(sizes[v]) * (at - t) - lost
    return (0, cost / net ** alpha) if net > 0 else (1, cost)


def _plan_comeback(v: int, at: int, deps: list[list[int]], held: np.ndarray, readers: list[list[int]],
                   last_read: np.ndarray) -> None:
    """Record that v will be computed again in stage ``at``: what that reads and is held now is read
    there too (it lives on until then, and its own eviction is weighed against that read)."""
    for d in _comeback(v, deps, held)[1]:
        if last_read[d] < at:
            bisect.insort(readers[d], at)
            last_read[d] = at


def evicting_schedule(problem: RematProblem, alpha: float = 1.0) -> np.ndarray | None:
    """The stage matrix R of the forward simulation with distance weight ``alpha``, or None when
    a compute does not fit even after every evictable value is evicted."""
    n, budget = problem.n, problem.budget
    deps = _deps(problem)
    readers = _readers(problem)
    sizes = np.asarray(problem.sizes, dtype=np.int64)
    costs = np.asarray(problem.costs, dtype=float)
    extra = problem.extra()
    pinned = ~problem.may_recompute()
    held = np.zeros(n, dtype=bool)
    used = 0
    R = np.zeros((n, n), dtype=bool)
    keep = sorted(set(problem.keep))
    last_read = np.array([rs[-1] if rs else -1 for rs in readers])
    for t in range(n):
        needed = deps[t] + (keep if t == n - 1 else [])
        order = _stage_computes(t, needed, deps, held)
        if any(pinned[k] for k in order[:-1]):
            return None
        reads_left: dict[int, int] = {}
        for k in order:
            for d in deps[k]:
                reads_left[d] = reads_left.get(d, 0) + 1
        if t == n - 1:  # the outputs stay to the end
            for d in keep:
                reads_left[d] = reads_left.get(d, 0) + 1

        def score(v: int) -> tuple[int, float]:
            after = _next_read(readers[v], t)
            at = n - 1 if after is None else min(after, n - 1)
            return _eviction_price(v, t, at, deps, sizes, costs, held, last_read, alpha)

        for k in order:
            while used + sizes[k] + extra[k] > budget:
                evictable = [v for v in np.nonzero(held)[0] if not pinned[v] and not reads_left.get(int(v))]
                if not evictable:
                    return None
                victim = int(min(evictable, key=lambda v: (score(int(v)), -int(sizes[v]))))
                held[victim] = False
                used -= int(sizes[victim])
                after = _next_read(readers[victim], t)
                _plan_comeback(victim, n - 1 if after is None else min(after, n - 1), deps, held, readers, last_read)
            R[t, k] = True
            held[k] = True
            used += int(sizes[k])
            for d in deps[k]:
                reads_left[d] -= 1
            for v in [*deps[k], k]:
                if held[v] and not reads_left.get(v) and _next_read(readers[v], t) is None:
                    held[v] = False
                    used -= int(sizes[v])
    return R


def evicting_schedules(problem: RematProblem) -> list[np.ndarray]:
    """The schedules of :func:`evicting_schedule` that fit, one per weight in ``ALPHAS``."""
    return [R for alpha in ALPHAS if (R := evicting_schedule(problem, alpha)) is not None]
