"""Several moments at once: a bound and a schedule in the solvers' fixed order, grown where the schedule peaks.

One moment (:mod:`graphc.remat.bound`) cannot see that a value dropped at it is needed again
to bring another back later, nor that what it frees comes back before the next moment. Here
K moments m_1 < … < m_K of the index order (the order of first computations the MILP and
CP-SAT use) are tied together, Checkmate's model on K coarse stages. Interval I_i runs from
m_i (excluded) to m_{i+1} (included); I_K to the end. For a value v ≤ m_i (computed before
moment i):

    k[i,v]   v is held right after m_i
    z[i,v]   v is computed again in I_i (cost c_v)

    minimise   Σ c_v z[i,v]
    subject to k[i,v] + z[i,v] ≥ 1           v read by a node of I_i, or kept (last interval)
               k[i,v] ≤ k[i-1,v] + z[i-1,v]  held at m_i only if held at m_{i-1} or brought back since
               z[i,v] ≤ k[i,p] + z[i,p]      p read by v: there when v is computed again
               Σ_v s_v k[i,v] ≤ B, and while m_i runs its reads, its value and workspace besides
               z[i,v] = 0 where v may not be recomputed

Every schedule of that order within B gives a solution of no greater cost (k: what it holds at
the moments; z: where it recomputes), so the optimum, and HiGHS's dual bound when a solve is
cut short, bound every such schedule's recompute from below. Memory between moments is not
seen: a solution becomes a schedule (each recompute just before its first read in its
interval) whose peak is measured, and the node where it peaks becomes one more moment, until
the schedule fits or the time is up (:func:`joint_schedule`).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from graphc.remat.bound import heaviest, own_bytes, readers as _readers, store_all_held
from graphc.remat.milp import _Rows
from graphc.remat.problem import RematProblem


@dataclass(frozen=True)
class JointSolution:
    """A solve of the joint program: its bound, whether proven, and the stage schedule of its best solution."""

    bound: float
    proven: bool
    R: np.ndarray | None  # stage matrix of the best solution found (None without one)
    recompute: float  # its recompute (the objective), inf without one


def _columns(problem: RematProblem, moments: Sequence[int], readers: list[list[int]]) -> list[list[int]]:
    """Per moment, the values with columns: those read after it or kept, and what they read, transitively."""
    keep = set(problem.keep)
    may = problem.may_recompute()
    out = []
    for m in moments:
        wanted = {v for v in range(m + 1) if v in keep or any(u > m for u in readers[v])}
        stack = [v for v in wanted if may[v]]
        while stack:  # a value computed again reads its operands then
            for p in problem.deps[stack.pop()]:
                if p not in wanted:
                    wanted.add(p)
                    if may[p]:
                        stack.append(p)
        out.append(sorted(wanted))
    return out


def solve_joint(problem: RematProblem, moments: Sequence[int], *, time_limit: float, in_place: bool = False,
                readers: list[list[int]] | None = None, gap: float = 0.0) -> JointSolution:
    """The joint program (module docstring) on ``moments`` (distinct nodes), by HiGHS within ``time_limit``,
    stopping at a relative ``gap`` (its bound is HiGHS's dual bound then, still a bound)."""
    from scipy.optimize import Bounds, milp

    moments = sorted(set(int(m) for m in moments))
    readers = _readers(problem) if readers is None else readers
    columns = _columns(problem, moments, readers)
    sizes = np.asarray(problem.sizes, dtype=float)
    costs = np.asarray(problem.costs, dtype=float)
    may = problem.may_recompute()
    own = own_bytes(problem, in_place)
    budget = max(float(problem.budget), 1.0)
    k: dict[tuple[int, int], int] = {}
    z: dict[tuple[int, int], int] = {}
    for i, values in enumerate(columns):
        for v in values:
            k[i, v] = len(k) + len(z)
            if may[v]:
                z[i, v] = len(k) + len(z)
    width = len(k) + len(z)

    def present(i: int, v: int) -> list[tuple[int, float]]:
        return [(k[i, v], 1.0)] + ([(z[i, v], 1.0)] if (i, v) in z else [])

    rows = _Rows()
    keep = set(problem.keep)
    last = len(moments) - 1
    for i, (m, values) in enumerate(zip(moments, columns)):
        end = moments[i + 1] if i < last else problem.n - 1
        for v in values:
            if any(m < u <= end for u in readers[v]) or (i == last and v in keep):
                rows.row(present(i, v), 1.0)
            if i and v <= moments[i - 1]:
                rows.row([(k[i, v], 1.0)] + [(col, -c) for col, c in present(i - 1, v)] if (i - 1, v) in k
                         else [(k[i, v], 1.0)], -np.inf, 0.0)
            if (i, v) in z:
                for p in problem.deps[v]:
                    rows.row([(col, c) for col, c in present(i, p)] + [(z[i, v], -1.0)], 0.0)
        reads = set(problem.deps[m])
        rows.row([(k[i, v], sizes[v] / budget) for v in values if sizes[v]], -np.inf, 1.0)
        running = (sizes[list(reads)].sum() + own[m] + problem.extra()[m]) / budget
        rows.row([(k[i, v], sizes[v] / budget) for v in values if sizes[v] and v != m and v not in reads],
                 -np.inf, 1.0 - running)
    if width == 0:  # nothing is held across a moment: only the fixed bytes of running each moment count
        fits = rows.fits_zero()
        return JointSolution(0.0, True, np.eye(problem.n, dtype=bool), 0.0) if fits \
            else JointSolution(np.inf, True, None, np.inf)
    objective = np.zeros(width)
    scale = max(costs.max(initial=0.0), 1.0)
    for (i, v), col in z.items():
        objective[col] = costs[v] / scale
    result = milp(objective, integrality=np.ones(width), bounds=Bounds(np.zeros(width), np.ones(width)),
                  constraints=[rows.constraint(width)],
                  options={"time_limit": max(time_limit, 0.05), "disp": False, "mip_rel_gap": gap})
    if result.status == 2:
        return JointSolution(np.inf, True, None, np.inf)
    dual = getattr(result, "mip_dual_bound", None)
    proven = result.status == 0 and gap == 0.0
    bound = result.fun if result.status == 0 and dual is None else dual
    bound = max(float(bound), 0.0) * scale if bound is not None and np.isfinite(bound) else 0.0
    if result.x is None:
        return JointSolution(bound, proven, None, np.inf)
    again = [(i, v) for (i, v), col in z.items() if result.x[col] > 0.5]
    R = _stages(problem, moments, again, readers)
    return JointSolution(bound, proven, R, float(sum(costs[v] for _, v in again)))


def _stages(problem: RematProblem, moments: Sequence[int], again: list[tuple[int, int]],
            readers: list[list[int]]) -> np.ndarray:
    """The stage schedule of the recomputes ``again`` ((interval, value) pairs): each in the stage of its
    first read in its interval, or of a recompute there that reads it, or the interval's end."""
    n = problem.n
    R = np.eye(n, dtype=bool)
    by_interval: dict[int, list[int]] = {}
    for i, v in again:
        by_interval.setdefault(i, []).append(v)
    for i, values in by_interval.items():
        start = moments[i]
        end = moments[i + 1] if i + 1 < len(moments) else n - 1
        stage: dict[int, int] = {}
        for v in sorted(values, reverse=True):
            later = [u for u in readers[v] if start < u <= end] + [stage[u] for u in readers[v] if u in stage]
            stage[v] = min(later, default=end)
            R[stage[v], v] = True
    return R


def joint_schedule(problem: RematProblem, peak_at: Callable[[np.ndarray], tuple[int, int]], *, time_limit: float,
                   in_place: bool = False, start: int = 6, grow: int = 24,
                   margin: float = 0.002, gap: float = 0.02) -> tuple[JointSolution, list[int]]:
    """Solve on the ``start`` heaviest moments; while the best solution's schedule does not fit, add the stage
    where it peaks (``peak_at(R)``: (peak bytes, node first computed in that stage)) as a moment, or, when it
    is one already (the peak is among the recomputes before it, which the program does not see), lower the
    program's budget by the overshoot (at least ``margin`` of the budget, doubling); at most ``grow`` times,
    within ``time_limit``, each solve given a third of the time left and stopping at ``gap``. Returns the
    solution whose schedule fits (else one without a schedule) with the
    bound of the solves at the true budget, and the moments used."""
    started = time.perf_counter()
    readers = _readers(problem)
    held = store_all_held(problem, own_bytes(problem, in_place))
    moments = heaviest(held, start, max(problem.n // (4 * start), 1))
    budget, step = problem.budget, problem.budget * margin
    best: JointSolution | None = None
    bound = 0.0
    for _ in range(grow + 1):
        left = time_limit - (time.perf_counter() - started)
        if left <= 0 or budget <= 0:
            break
        solution = solve_joint(replace(problem, budget=int(budget)), moments, time_limit=left / 3, in_place=in_place,
                               readers=readers, gap=gap)
        if budget == problem.budget:
            bound = max(bound, solution.bound)
        if solution.R is None:
            break
        peak, stage = peak_at(solution.R)
        if peak <= problem.budget:
            best = solution
            break
        if stage not in moments:
            bisect.insort(moments, stage)
        else:
            budget -= max(peak - problem.budget, step)
            step *= 2
    final = best if best is not None else JointSolution(bound, False, None, np.inf)
    return replace(final, bound=bound), moments


def model_peak(problem: RematProblem) -> Callable[[np.ndarray], tuple[int, int]]:
    """``peak_at`` on the memory model: a stage schedule's peak (:func:`~graphc.remat.problem.replay`) and the
    stage it is reached in (named by the node that stage computes first, a moment of the joint program)."""
    from graphc.remat.problem import events_of

    sizes, extra = problem.sizes, problem.extra()

    def peak_at(R: np.ndarray) -> tuple[int, int]:
        stage_of = np.repeat(np.arange(R.shape[0]), R.sum(axis=1))  # compute events in order, by stage
        used = peak = computes = 0
        stage = 0
        for kind, i in events_of(problem, R):
            if kind == "free":
                used -= sizes[i]
                continue
            used += sizes[i]
            if used + int(extra[i]) > peak:
                peak, stage = used + int(extra[i]), int(stage_of[computes])
            computes += 1
        return peak, stage

    return peak_at
