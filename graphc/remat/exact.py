"""The exact solvers: :func:`solve_milp` (LP rounding first, then the MILP with a cutoff) and :func:`minimal_least_budget`."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import LinearConstraint

from graphc.remat.highs import _bound, _run, _status
from graphc.remat.milp import _build, _matrices, _Model
from graphc.remat.progress import ProgressFn, SolveProgress
from graphc.remat.problem import (
    budget_lower_bound,
    _canonical,
    _infeasible,
    RematProblem,
    RematSolution,
    _shortcut,
    store_all_peak,
)
from graphc.remat.rounding import solve_lp_rounding


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


class _Phases:
    """What :func:`solve_milp` knows so far (the rounding's schedule, the MILP's bound), told to ``progress``."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.start = time.perf_counter()
        self.progress = progress
        self.known: RematSolution | None = None  # the rounding's schedule: what a Ctrl-C keeps
        self.bound: float | None = None

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def tell(self, message: str, objective: float | None = None) -> None:
        if self.progress is not None:
            best = objective if objective is not None else None if self.known is None else self.known.cost
            self.progress(SolveProgress("milp", self.seconds(), best, self.bound, message))

    def heartbeat(self, child_seconds: float) -> None:
        self.tell(f"HiGHS running in its child process, {child_seconds:.0f} s")


def solve_milp(problem: RematProblem, *, time_limit: float = 60.0, mip_gap: float | None = None,
               incumbent: bool = True, progress: ProgressFn | None = None) -> RematSolution:
    """The least-cost schedule within the budget: Checkmate's MILP solved by HiGHS.

    With ``incumbent`` (the default) :func:`solve_lp_rounding` first finds a schedule
    (given at most half the time, one short local search) and the MILP gets the rest with the cut
    Σ C R <= ``_cutoff``: HiGHS then either finds a cheaper schedule or proves there is
    none, and its bound is the optimum's. The answer is the cheaper of the two.

    Status "optimal" (within HiGHS's relative gap, 1e-4 unless ``mip_gap``), "feasible"
    (time limit hit; the best schedule known), "infeasible" (proven), or "timeout" (time
    limit hit and no schedule known). ``lower_bound``: a proven bound on the optimum.
    A final "infeasible" verdict (no schedule known) is checked again without presolve.

    ``progress`` hears of each phase (solver "milp"): the rounding's LP bound and schedule, the
    MILP's start, a heartbeat while HiGHS runs in its child process, and the result. A
    KeyboardInterrupt (Ctrl-C) stops the solve and the rounding's schedule is returned with
    ``interrupted`` set (status "timeout" without one). HiGHS in this process finishes its
    slice first (at most :data:`graphc.remat.highs.IN_PROCESS_SECONDS`); its child process
    is stopped at once.
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick
    phases = _Phases(progress)
    try:
        return _solve_milp(problem, time_limit, mip_gap, incumbent, phases)
    except KeyboardInterrupt:
        phases.tell("interrupted: keeping the best schedule so far")
        if phases.known is None:
            return replace(_infeasible(problem, "timeout", phases.seconds(), phases.bound), interrupted=True)
        return replace(phases.known, status="feasible", solve_seconds=phases.seconds(), interrupted=True)


def _solve_milp(problem: RematProblem, time_limit: float, mip_gap: float | None, incumbent: bool,
                phases: _Phases) -> RematSolution:
    start = phases.start
    gap = 1e-4 if mip_gap is None else mip_gap
    if incumbent:
        phases.tell("LP rounding for a first schedule")
        first = solve_lp_rounding(problem, time_limit=time_limit / 2, restarts=1, kicks=100)
        phases.known = first if first.status == "feasible" else None
        phases.bound = first.lower_bound
        if first.interrupted:
            raise KeyboardInterrupt
        phases.tell("LP rounding's schedule" if phases.known else "LP rounding found no schedule within the budget")
    known = phases.known
    b0 = time.perf_counter()
    model = _build(problem, budget=problem.budget, integral=True)
    build = time.perf_counter() - b0
    phases.tell(f"MILP: {model.c.size:,d} variables, {model.constraint.A.nnz:,d} nonzeros, HiGHS")
    extra = []
    if known is not None:
        extra.append(LinearConstraint(sp.csr_matrix(model.c[None, :]), -np.inf, _cutoff(problem, known.cost, gap)))
    res = _run(model, time_limit - (time.perf_counter() - start), mip_gap, extra=extra, recheck=known is None,
               heartbeat=phases.heartbeat)
    seconds = time.perf_counter() - start - build
    status, bound = _status(res), _bound(res)
    if res.x is not None:
        solution = _solution_of(problem, model, res.x, status=status, seconds=seconds, lower_bound=bound,
                                build_seconds=build)
    elif known is None:
        solution = _infeasible(problem, status, seconds, bound, build)
    elif status == "infeasible":  # every schedule costs more than the cutoff: the incumbent is optimal
        cut = _cutoff(problem, known.cost, gap)
        bound = math.floor(cut) + 1.0 if _integral_costs(problem) else cut
        solution = replace(known, status="optimal", solve_seconds=seconds, lower_bound=bound, build_seconds=build)
    else:
        bound = None if bound is None else min(bound, known.cost)
        solution = replace(known, status="feasible", solve_seconds=seconds, lower_bound=bound, build_seconds=build)
    bounds = [b for b in (solution.lower_bound, phases.bound) if b is not None]  # the LP's bounds the MILP's too
    if bounds and solution.status != "infeasible":
        solution = replace(solution, lower_bound=min(max(bounds), solution.cost))
    phases.bound = solution.lower_bound
    phases.tell(f"MILP {solution.status}", None if solution.cost == math.inf else solution.cost)
    return solution


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
