"""Schedules that free a value between two of its reads and compute it once more for the second.

An integer program small enough for a thousand nodes, whose every solution is a schedule of
the stage form (:mod:`graphc.remat.problem`); it finds schedules where the exact programs,
with O(n²) variables, find none in their time.

Start from storing everything in index order: stage s computes node s alone, and M(s) is the
memory while it runs. A *gap* g = (r, r') of value v lies between two consecutive reads of v
(the stages of the nodes that read it), or, for an output, between its last read and the last
stage (r' = n − 1). Choosing x_g = 1 frees v after its read in stage r and computes v again in
stage r', before r' itself. That computation reads deps(v), so each d of them must be in memory
in stage r', in one of three ways: d is held there (not freed by a gap of d across r'; a gap
of d ending at r' is allowed, d is then computed again in r' before v, by index order); d, last
read before r', is held until r' (E_{d,r'} = 1); or, with two levels, d is computed again in
r' too (y_{d,r'} = 1), from what is held there in the first two ways.

    minimise    Σ_g C_v x_g + Σ C_d y_{d,s}
    subject to  M(s) − Σ_{g ∋ s} M_v x_g + Σ M_d y_{d,s} + Σ_{d held past its last read over s} M_d E_{d,b} ≤ budget
                                                           every stage s
                E_{d,r'} + y_{d,r'} ≥ x_g             d in deps(v), last_read(d) < r'
                x_{g'} + x_g − y_{d,r'} ≤ 1           g' a gap of d with r' strictly inside
                E_{d,b} ≥ E_{d,b'}                    b < b' consecutive breakpoints of d

and the same two rows (without y) for what y_{d,s} reads. g ∋ s means r < s < r'. E_{d,b} is
one column per *breakpoint* b of d (a stage d may be needed in after its last read) and adds
M_d to the stages from the breakpoint before it, so a value held longer costs one column per
stage it may be needed in, not one per stage it is held over. Recomputations happen only at a
read and at most two levels deep, so this is a restriction of the stage form: its optimum
bounds the fixed-order optimum from above. A value computed again inside a stage is held
while that stage runs, which M(r') already counts; a workspace larger than what r' needs can
overshoot, so the schedule is replayed and, where it peaks above the budget, that stage's row
is tightened by the excess and the program solved again (``ROUNDS`` times at most).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from graphc.remat.bound import readers
from graphc.remat.milp import _Rows, _unit
from graphc.remat.problem import RematProblem, _deps, _graph, _profile, _shortcut

ROUNDS = 8
"""Solves at most: each one after the first tightens the stages where the last schedule peaked."""


@dataclass(frozen=True)
class _Gap:
    value: int
    start: int  # the stage of the read after which the value is freed
    end: int  # the stage that computes it again (its next read, or the last stage for an output)


def _gaps(problem: RematProblem) -> tuple[list[_Gap], np.ndarray]:
    """Every gap with a stage strictly inside, and each value's last read (n for an output)."""
    n = problem.n
    reads = [[v, *rs] for v, rs in enumerate(readers(problem))]  # a value is "read" when computed
    may = problem.may_recompute()
    kept = set(problem.keep)
    gaps: list[_Gap] = []
    for v, rs in enumerate(reads):
        ends = rs[1:] + ([n - 1] if v in kept and rs[-1] < n - 1 else [])
        if may[v]:
            gaps += [_Gap(v, a, b) for a, b in zip(rs, ends) if b - a >= 2]
    last = np.array([n if v in kept else rs[-1] for v, rs in enumerate(reads)])
    return gaps, last


def _store_all_memory(problem: RematProblem) -> np.ndarray:
    """M(s): the memory while stage s computes node s when every value is stored."""
    return _profile(_graph(problem), np.eye(problem.n, dtype=bool)).memory


class IntervalProgram:
    """The program for one problem; :meth:`solve` takes per-stage budgets."""

    def __init__(self, problem: RematProblem, *, two_levels: bool = True) -> None:
        self.problem = problem
        self.two_levels = two_levels
        self.deps = _deps(problem)
        self.gaps, self.last = _gaps(problem)
        self.memory = _store_all_memory(problem)
        self._layout()

    def _layout(self) -> None:
        """Columns: x_g for each gap; y_{d,s} for each dependency of a gapped value that could be
        computed again in the stage s its gap ends at; E_{d,b} for each value d that could be held past
        its last read and each stage b it could be needed in then (its breakpoints)."""
        may = self.problem.may_recompute()
        self.across = self._gaps_across()
        self.again: dict[tuple[int, int], int] = {}
        col = len(self.gaps)
        for g in self.gaps:
            for d in self.deps[g.value]:
                if self.two_levels and may[d] and (d, g.end) not in self.again and self._missing(d, g.end):
                    self.again[(d, g.end)] = col
                    col += 1
        ends: dict[int, set[int]] = {}
        needs = [(d, g.end) for g in self.gaps for d in self.deps[g.value]]
        needs += [(e, s) for (d, s) in self.again for e in self.deps[d]]
        for d, s in needs:
            if self.last[d] < s:
                ends.setdefault(d, set()).add(s)
        self.extended: dict[tuple[int, int], int] = {}  # (d, b) → E_{d,b}: d held until stage b
        for d in sorted(ends):
            for b in sorted(ends[d]):
                self.extended[(d, b)] = col
                col += 1
        self.columns = col

    def _gaps_across(self) -> dict[tuple[int, int], list[int]]:
        """(d, s) → the gaps of d with stage s strictly inside, for the stages gaps end at."""
        ends = {g.end for g in self.gaps}
        across: dict[tuple[int, int], list[int]] = {}
        for i, g in enumerate(self.gaps):
            for s in range(g.start + 1, g.end):
                if s in ends:
                    across.setdefault((g.value, s), []).append(i)
        return across

    def _missing(self, d: int, s: int) -> bool:
        """Whether d can be out of memory in stage s: read last before s, or freed across s."""
        return bool(self.last[d] < s) or (d, s) in self.across

    def _rows(self, budgets: np.ndarray, unit: int) -> _Rows:
        """The program's rows, memory in units of ``unit`` bytes (a divisor of every size and workspace)."""
        rows = _Rows()
        n, sizes = self.problem.n, np.asarray(self.problem.sizes, dtype=np.int64) // unit
        base = rows.block(n, -np.inf, np.floor((budgets - self.memory) / unit))
        for j, g in enumerate(self.gaps):
            inside = np.arange(g.start + 1, g.end)
            rows.term(base + inside, np.full(len(inside), j), -sizes[g.value])
        for (d, s), col in self.again.items():
            rows.term(np.array([base + s]), np.array([col]), sizes[d])
        previous: dict[int, tuple[int, int]] = {}  # d → (its last breakpoint so far, that column)
        for (d, b), col in self.extended.items():  # by d, then by b
            after, before = previous.get(d, (int(self.last[d]), -1))
            held = np.arange(after + 1, b + 1)  # the stages E_{d,b} adds d's bytes to
            rows.term(base + held, np.full(len(held), col), sizes[d])
            if before >= 0:  # held until b means held until the breakpoint before it
                rows.row([(before, 1.0), (col, -1.0)], 0.0)
            previous[d] = (b, col)
        for j, g in enumerate(self.gaps):
            for d in self.deps[g.value]:
                self._need(rows, d, g.end, j, self.again.get((d, g.end)))
        for (d, s), col in self.again.items():
            for e in self.deps[d]:
                self._need(rows, e, s, col, None)
        return rows

    def _need(self, rows: _Rows, d: int, s: int, when: int, again: int | None) -> None:
        """Rows for: d is in memory in stage s whenever column ``when`` is 1, held there or (when
        ``again`` is a column) computed again in s."""
        also = [] if again is None else [(again, -1.0)]
        if self.last[d] < s:
            rows.row([(self.extended[(d, s)], 1.0), *[(c, -v) for c, v in also], (when, -1.0)], 0.0)
        for i in self.across.get((d, s), ()):
            rows.row([(i, 1.0), (when, 1.0), *also], -np.inf, 1.0)

    def solve(self, budgets: np.ndarray, time_limit: float, solver: str = "highs") -> np.ndarray | None:
        """The chosen gaps as a stage matrix R, or None when the program has no solution in time.

        ``solver``: "highs" (SciPy's HiGHS, one thread) or "cpsat" (OR-Tools' CP-SAT, whose
        portfolio of workers finds a first solution sooner on the larger programs)."""
        costs = np.zeros(self.columns)
        costs[: len(self.gaps)] = [self.problem.costs[g.value] for g in self.gaps]
        for (d, _), col in self.again.items():
            costs[col] = self.problem.costs[d]
        rows = self._rows(budgets, _unit(self.problem))
        solve = _solve_cpsat if solver == "cpsat" else _solve_highs
        x = solve(rows.constraint(self.columns), costs, max(time_limit, 0.01))
        if x is None:
            return None
        R = np.eye(self.problem.n, dtype=bool)
        for j, g in enumerate(self.gaps):
            if x[j]:
                R[g.end, g.value] = True
        for (d, s), col in self.again.items():
            if x[col]:
                R[s, d] = True
        return R


def _solve_highs(constraint, costs: np.ndarray, time_limit: float) -> np.ndarray | None:
    """The 0-1 program by HiGHS (through the driver that stops a large solve at its time limit and on
    Ctrl-C); holding longer than needed costs a little (1e-9 per column)."""
    from scipy.optimize import Bounds
    from graphc.remat.highs import _milp, _options
    objective = np.where(costs > 0, costs, 1e-9)
    result = _milp(objective, np.ones(len(costs)), Bounds(0, 1), [constraint], _options(time_limit))
    return None if result.x is None else np.asarray(result.x) > 0.5


def _solve_cpsat(constraint, costs: np.ndarray, time_limit: float, workers: int = 8) -> np.ndarray | None:
    """The 0-1 program by CP-SAT (every coefficient and bound of its rows is an integer)."""
    from graphc.remat.cpsat import _cp_model, _integer_costs
    cp_model = _cp_model()
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{j}") for j in range(len(costs))]
    A = constraint.A.tocsr()
    for i in range(A.shape[0]):
        cols, vals = A.indices[A.indptr[i] : A.indptr[i + 1]], A.data[A.indptr[i] : A.indptr[i + 1]]
        expr = sum(int(v) * x[c] for c, v in zip(cols, vals))
        if np.isfinite(constraint.lb[i]):
            model.add(expr >= int(constraint.lb[i]))
        if np.isfinite(constraint.ub[i]):
            model.add(expr <= int(constraint.ub[i]))
    weights, _ = _integer_costs(list(costs))
    model.minimize(sum(w * x[j] for j, w in enumerate(weights) if w))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return np.array([bool(solver.value(v)) for v in x])


def interval_schedule(problem: RematProblem, time_limit: float = 60.0, *, two_levels: bool = True,
                      solver: str = "highs") -> np.ndarray | None:
    """A stage matrix within the budget from :class:`IntervalProgram`, or None.

    Each round replays the schedule; the stages where it peaks above the budget get their rows
    tightened by the excess, until it fits, ``ROUNDS`` solves are spent, or ``time_limit`` passes.
    Store-all when it fits; None below the problem's budget lower bound. ``solver``: "highs" or
    "cpsat" (:meth:`IntervalProgram.solve`).
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick.R if quick.status == "optimal" else None
    deadline = time.perf_counter() + time_limit
    program = IntervalProgram(problem, two_levels=two_levels)
    if program.columns == 0:  # store-all does not fit, and nothing can be freed
        return None
    budgets = np.full(problem.n, float(problem.budget))
    for _ in range(ROUNDS):
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        R = program.solve(budgets, left, solver)
        if R is None:
            return None
        over = _overshoot(problem, R)
        if not over:
            return R
        for stage, excess in over.items():
            budgets[stage] -= excess
    return None


def _overshoot(problem: RematProblem, R: np.ndarray) -> dict[int, int]:
    """Per stage, how far the schedule's memory goes above the budget there (only stages that do)."""
    profile = _profile(_graph(problem), R)
    over: dict[int, int] = {}
    for stage, memory in zip(profile.stage, profile.memory):
        if memory > problem.budget:
            over[int(stage)] = max(over.get(int(stage), 0), int(memory - problem.budget))
    return over
