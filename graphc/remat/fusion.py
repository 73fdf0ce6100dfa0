"""Chain fusion: single-consumer runs of nodes become one node, as Checkmate schedules layers.

The solvers work on the fused problem; :func:`fused_events` expands a fused schedule back into
events of the original nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from graphc.remat.problem import _deps, Event, _events, _lifetimes, RematProblem


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
