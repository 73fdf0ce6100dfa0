"""The recompute problem as a constraint program with retention intervals, solved by OR-Tools' CP-SAT.

Reference: Bartan et al. 2023, "Moccasin: Efficient Tensor Rematerialization for Neural
Networks" (ICML). The problem and its memory model are :mod:`graphc.remat.problem`'s (the
MILP's); only the formulation differs. Instead of O(n²) booleans R[t,i], S[t,i], each node
v has at most C_v *computations*, each with the interval during which its value is held:

    a[v,j]  bool         computation j of v happens (a[v,0] = 1; a[v,j] <= a[v,j-1])
    t[v,j]  int in [v, last_use_v]   its stage (t[v,0] = v; t[v,j] > t[v,j-1])
    e[v,j]  int          the last time the value is held; the interval is [s, e], s = n·t + v

Time is a position in the stage form: stage t computes its recomputations in index order and
then t itself, so the computation of k in stage t happens at time n·t + k and the schedule's
order is the order of times. Constraints:

    precedence   for each edge u -> v and each computation j of v: some computation i of u
                 holds its value over the start of j:  s[u,i] < s[v,j] <= e[u,i]
                 (a boolean per (edge, j, i), E·C² in all; a single i when C_u = 1)
    disjoint     a[v,j] => s[v,j] > e[v,j-1]   (a value is not recomputed while held)
    outputs      the last computation of a kept v is held to the end, e = n² - 1
    memory       cumulative over the intervals [s, e] with demand M_v and [s, s] with demand
                 W_v (the workspace) <= budget, in units of g = gcd(sizes, workspaces)
    objective    minimise Σ_{v, j >= 1} C_v·a[v,j]  (the recompute; the answer's cost adds Σ C_v)

Memory at a computation's time is everything whose interval covers it: the values held
before it (those it reads among them) and its own value, which is the replay's memory; a time
no computation has is covered by a subset of what covers the next computation, so gaps add no
constraint. The solution is returned as a stage matrix (R[t,v] for each a[v,j], t = t[v,j])
in canonical form, whose replayed peak is at most the model's: the replay frees each value
at its last read, never later than e.

The optimum is over stage schedules (the MILP's, with the same fixed order of first
computations) that compute each node at most C times: C = ``max_computations``, by default
every stage a node can still be of use in when the problem has at most
``FULL_COMPUTATIONS_NODES`` nodes (then the optimum is the MILP's), else 2 (as Moccasin's
experiments). A node that may not be recomputed has C_v = 1. "infeasible" and the bound are
then also within that limit. A hint's schedule always fits the model: C_v is raised to the
number of times the hint computes v.
"""

from __future__ import annotations

import importlib.util
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import reduce
from typing import Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.remat.milp import _fixed, _unit
from graphc.remat.problem import (
    RematProblem,
    RematSolution,
    _canonical,
    _deps,
    _graph,
    _infeasible,
    _lifetimes,
    _prune_fast,
    _shortcut,
)
from graphc.remat.progress import ProgressFn, SolveProgress

FULL_COMPUTATIONS_NODES = 10
"""Up to this many nodes, each node may be computed in every stage it can be of use in."""
DEFAULT_COMPUTATIONS = 2
"""Above ``FULL_COMPUTATIONS_NODES``, the most computations per node (Moccasin's C)."""
HINT_SHARE, HINT_SECONDS = 0.2, 30.0
"""Without a hint, a greedy schedule is looked for during this share of the time limit (at most these seconds)."""
LP_HINT_MAX_NODES = 600
"""Above this many nodes the LP relaxation (n² variables) is not tried for a hint: it would take gigabytes."""
_INT64_SAFE = 2**62
"""CP-SAT rejects models whose linear expressions may overflow int64; sums are kept below this."""


def _cp_model():
    """OR-Tools' cp_model, or a GraphError saying how to install it."""
    try:
        from ortools.sat.python import cp_model
    except ImportError as error:
        raise GraphError("the CP-SAT solver needs OR-Tools, which is not installed: "
                         "pip install graphc[remat] (or pip install ortools)") from error
    return cp_model


_CP_MODEL = "ortools.sat.python.cp_model"


def cpsat_available() -> bool:
    """Whether OR-Tools (CP-SAT) is installed, found without importing it: cp_model imports pandas,
    two seconds that a compile whose solver is the MILP should not pay."""
    if _CP_MODEL in sys.modules:
        return sys.modules[_CP_MODEL] is not None  # None: an import known to fail
    try:
        return importlib.util.find_spec(_CP_MODEL) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class _Computation:
    """Computation j of node v: present, stage and end-of-hold variables."""

    v: int
    j: int
    present: object  # BoolVar (or the constant 1 for j = 0)
    stage: object  # IntVar, or the int v for j = 0
    end: object  # IntVar
    held: object = None  # IntVar e - s + 1 (the interval's length), when the value takes memory


def _integer_costs(costs: Sequence[float]) -> tuple[list[int], float]:
    """Costs as integers for the objective, and the factor back to the problem's units.

    Integral costs (graphc's FLOPs + 1) are divided by their gcd, exactly; other costs are
    scaled so the largest is 10^9 and rounded (the optimum is then within 1e-9 relative).
    """
    if all(float(c).is_integer() for c in costs):
        ints = [int(c) for c in costs]
        g = reduce(math.gcd, ints, 0) or 1
        return [c // g for c in ints], float(g)
    scale = 1e9 / max(max(costs), 1e-300)
    return [round(c * scale) for c in costs], 1.0 / scale


def _computations_per_node(problem: RematProblem, last_use: np.ndarray, max_computations: int | None,
                           hint_counts: np.ndarray | None) -> np.ndarray:
    n = problem.n
    if max_computations is None:
        max_computations = n if n <= FULL_COMPUTATIONS_NODES else DEFAULT_COMPUTATIONS
    count = np.minimum(last_use - np.arange(n) + 1, max(int(max_computations), 1))
    count[~problem.may_recompute()] = 1
    if hint_counts is not None:
        count = np.maximum(count, hint_counts)
    return count


class _Model:
    """The CP-SAT model of a problem and its variables."""

    def __init__(self, problem: RematProblem, max_computations: int | None, hint: np.ndarray | None) -> None:
        cp_model = _cp_model()
        self.problem = problem
        n = self.n = problem.n
        self.horizon = n * n  # times 0 .. n²-1
        unit = _unit(problem)
        sizes = [int(s) // unit for s in problem.sizes]
        work = [int(w) // unit for w in problem.extra()]
        if sum(sizes) + max(work, default=0) >= _INT64_SAFE:
            raise GraphError(f"the recompute problem's memory ({sum(sizes)} units of {unit} B) is too large "
                             "for CP-SAT's 64-bit integers; use solver='milp'")
        self.capacity = min(int(problem.budget) // unit, sum(sizes) + max(work, default=0))
        self.cost_units, self.cost_factor = _integer_costs(problem.costs)
        fixed = _fixed(problem)
        last_use = np.array([int(np.nonzero(~fixed.zero_r[:, v])[0].max()) for v in range(n)])  # last stage computing v
        last_held = np.maximum(last_use, [max(np.nonzero(~fixed.zero_s[:, v])[0], default=v) for v in range(n)])
        self.hint_R = None if hint is None else _pruned_hint(problem, hint)
        hint_counts = None if self.hint_R is None else self.hint_R.sum(axis=0)
        self.counts = _computations_per_node(problem, last_use, max_computations, hint_counts)
        m = self.model = cp_model.CpModel()
        kept = set(problem.keep)
        self.computations: list[list[_Computation]] = []
        intervals, demands = [], []
        for v in range(n):
            own: list[_Computation] = []
            end_max = self.horizon - 1 if v in kept else int(last_held[v]) * n + n - 1
            stage_max = max(int(last_use[v]), v + int(self.counts[v]) - 1)
            for j in range(int(self.counts[v])):
                if j == 0:
                    present, stage = 1, v
                    start = n * v + v
                else:
                    present = m.new_bool_var("")
                    stage = m.new_int_var(v + j, stage_max, "")
                    start = n * stage + v
                end = m.new_int_var(v * n + v, end_max, "")
                _enforced(m.add(end >= start), [] if j == 0 else [present])
                if j > 0:
                    previous = own[-1]
                    m.add_implication(present, previous.present)
                    m.add(stage > previous.stage).only_enforce_if(present)
                    m.add(start > previous.end).only_enforce_if(present)  # disjoint holds
                    m.add(stage == v + j).only_enforce_if(~present)  # an absent computation is fixed
                    m.add(end == v * n + v).only_enforce_if(~present)
                own.append(_Computation(v, j, present, stage, end))
                if sizes[v] > 0:
                    own[-1].held = m.new_int_var(1, end_max - v * n - v + 1, "")  # e - s + 1, when present
                    intervals.append(self._interval(start, own[-1].held, end + 1, present))
                    demands.append(sizes[v])
                if work[v] > 0:
                    intervals.append(self._interval(start, 1, start + 1, present))
                    demands.append(work[v])
            if v in kept:
                for j, c in enumerate(own):  # the last present computation is held to the end
                    last = ([] if c.j == 0 else [c.present]) + ([~own[j + 1].present] if j + 1 < len(own) else [])
                    _enforced(m.add(c.end == self.horizon - 1), last)
            self.computations.append(own)
        self._precedence(_deps(problem))
        if intervals:
            m.add_cumulative(intervals, demands, self.capacity)
        recompute = [self.cost_units[v] * c.present for v in range(n) for c in self.computations[v][1:]
                     if self.cost_units[v] > 0]
        m.minimize(sum(recompute) if recompute else 0)
        if self.hint_R is not None:
            self._add_hint(self.hint_R)

    def _interval(self, start, size, end, present):
        if isinstance(present, int):
            return self.model.new_interval_var(start, size, end, "")
        return self.model.new_optional_interval_var(start, size, end, present, "")

    def start(self, c: _Computation):
        return self.n * c.stage + c.v

    def _precedence(self, deps: list[list[int]]) -> None:
        """For each read u -> v and computation j of v: a computation of u holds u over s[v,j]."""
        m = self.model
        self.covers: dict[tuple[int, int, int], list] = {}
        for v, ds in enumerate(deps):
            for cv in self.computations[v]:
                s = self.start(cv)
                guard = [] if cv.j == 0 else [cv.present]
                for u in ds:
                    held = self.computations[u]
                    if len(held) == 1:
                        _enforced(m.add(held[0].end >= s), guard)
                        continue
                    choices = []
                    for cu in held:
                        z = m.new_bool_var("")
                        if cu.j > 0:
                            m.add_implication(z, cu.present)
                            m.add(self.start(cu) < s).only_enforce_if(z)
                        m.add(cu.end >= s).only_enforce_if(z)
                        choices.append(z)
                    _enforced(m.add_bool_or(choices), guard)
                    self.covers[(u, v, cv.j)] = choices

    def _add_hint(self, R: np.ndarray) -> None:
        """Hint the schedule R: each computation's stage, presence and end, and which holds each read uses."""
        n, m = self.n, self.model
        order, free_at = _lifetimes(self.problem, [int(k) for k in np.nonzero(R)[1]])
        stages = np.nonzero(R)[0]
        times = [int(t) * n + k for t, k in zip(stages, order)]
        index_of: dict[int, int] = {}
        instance: list[int] = []  # position -> computation index j of its node
        for k in order:
            instance.append(index_of.get(k, 0))
            index_of[k] = instance[-1] + 1
        hinted: dict[tuple[int, int], tuple[int, int]] = {}
        for p, k in enumerate(order):
            end = self.horizon - 1 if free_at[p] < 0 else times[free_at[p]]
            hinted[(k, instance[p])] = (int(stages[p]), end)
        for v, own in enumerate(self.computations):
            for c in own:
                stage, end = hinted.get((v, c.j), (v + c.j, v * n + v))
                if c.j > 0:
                    m.add_hint(c.present, (v, c.j) in hinted)
                    m.add_hint(c.stage, stage)
                m.add_hint(c.end, end)
                if c.held is not None:
                    m.add_hint(c.held, end - (n * stage + v) + 1 if (v, c.j) in hinted else 1)
        used: dict[tuple[int, int, int], int] = {}  # (u, v, j) -> the computation of u read
        latest: dict[int, int] = {}
        deps = _deps(self.problem)
        for p, k in enumerate(order):
            for u in deps[k]:
                used[(u, k, instance[p])] = instance[latest[u]]
            latest[k] = p
        for key, choices in self.covers.items():
            for i, z in enumerate(choices):
                m.add_hint(z, used.get(key) == i)

    def schedule(self, value) -> np.ndarray:
        """The stage matrix R of an assignment (``value``: variable -> int)."""
        R = np.zeros((self.n, self.n), dtype=bool)
        for v, own in enumerate(self.computations):
            for c in own:
                if c.j == 0:
                    R[v, v] = True
                elif value(c.present):
                    R[int(value(c.stage)), v] = True
        return R

    def objective(self, units: float) -> float:
        """A CP-SAT objective value as the schedule's cost (recompute + Σ costs)."""
        return float(units) * self.cost_factor + float(sum(self.problem.costs))


def starting_schedule(problem: RematProblem, seconds: float) -> np.ndarray | None:
    """A schedule within the budget, or None: CP-SAT's first solution when no hint is given.

    Tried while ``seconds`` last, the cheapest kept after ``_hold_instead`` (hold a value instead
    of recomputing it while the budget allows):

    1. the eviction simulation (:func:`~graphc.remat.greedy.greedy_schedule`; well under a second
       at a thousand nodes);
    2. the interval program (:func:`~graphc.remat.intervals.interval_schedule`) with one level of
       recompute, in half the time left, then with two levels in the rest;
    3. only if none of those fits: hold everything and recompute at the peak until it fits
       (``_repair``), hold nothing, and Checkmate's LP rounding up to ``LP_HINT_MAX_NODES`` nodes.
    """
    from graphc.remat.greedy import evicting_schedules
    from graphc.remat.intervals import interval_schedule
    from graphc.remat.rounding import _cost, _hold_instead
    deadline = time.perf_counter() + seconds
    found = evicting_schedules(problem)
    for two_levels, share in ((False, 0.5), (True, 1.0)):
        left = deadline - time.perf_counter()
        if left > 0:
            R = interval_schedule(problem, share * left, two_levels=two_levels)
            if R is not None:
                found.append(R)
    if not found and time.perf_counter() < deadline:
        found = _fallback_schedules(problem, deadline)
    if not found:
        return None
    best = min(found, key=lambda R: _cost(problem, R))
    return _hold_instead(problem, best, max(deadline, time.perf_counter() + 1.0))


def _fallback_schedules(problem: RematProblem, deadline: float) -> list[np.ndarray]:
    """Hold everything and repair at the peak; hold nothing; LP rounding (small problems only)."""
    from graphc.remat.rounding import _compute_from_storage, _repair
    n = problem.n
    found = []
    repaired = _repair(problem, _compute_from_storage(problem, np.ones((n, n), dtype=bool)), deadline)
    if repaired is not None:
        found.append(repaired)
    nothing, profile = _prune_fast(_graph(problem), _compute_from_storage(problem, np.zeros((n, n), dtype=bool)))
    if profile.memory.max(initial=0) <= problem.budget:
        found.append(nothing)
    if not found and time.perf_counter() < deadline and n <= LP_HINT_MAX_NODES:
        from graphc.remat.rounding import solve_lp_rounding
        rounded = solve_lp_rounding(problem, time_limit=deadline - time.perf_counter(), restarts=1, kicks=20)
        if rounded.status == "feasible":
            found.append(rounded.R)
    return found


def _enforced(constraint, literals: list) -> None:
    """``constraint`` only where all ``literals`` hold (always, when there are none)."""
    if literals:
        constraint.only_enforce_if(literals)


def _pruned_hint(problem: RematProblem, hint: np.ndarray) -> np.ndarray:
    R = np.asarray(hint, dtype=bool)
    if R.shape != (problem.n, problem.n) or not R.diagonal().all() or np.triu(R, 1).any():
        raise ValueError(f"hint must be a stage matrix R (n × n lower-triangular with a true diagonal, n = {problem.n})")
    return _prune_fast(_graph(problem), R)[0]


class _Recorder:
    """The solution callback: keeps the best schedule, reports progress, stops on KeyboardInterrupt."""

    def __init__(self, cp_model, built: _Model, progress: ProgressFn | None, started: float) -> None:
        recorder = self

        class Callback(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self) -> None:
                recorder._found(self)

        self.callback = Callback()
        self.built, self.progress, self.started = built, progress, started
        self.best_R: np.ndarray | None = None
        self.best_units: float | None = None
        self.interrupted = False
        self.error: BaseException | None = None

    def _found(self, callback) -> None:
        units = callback.objective_value
        if self.best_units is not None and units >= self.best_units:
            return
        self.best_units = units
        self.best_R = self.built.schedule(callback.value)
        if self.progress is None:
            return
        try:
            self.progress(SolveProgress("cpsat", time.perf_counter() - self.started, self.built.objective(units),
                                        self.built.objective(callback.best_objective_bound)))
        except KeyboardInterrupt:
            self.interrupted = True
            callback.stop_search()
        except BaseException as error:  # raised again in the caller's thread
            self.error = error
            callback.stop_search()


def _interruptible(solver, model, callback) -> tuple[int, bool]:
    """Solve in a worker thread; Ctrl-C (SIGINT) in the calling thread stops the search and keeps its result.

    In the main thread a SIGINT handler is installed for the solve (and the previous one put
    back): it stops the search instead of raising KeyboardInterrupt into ``Thread.join``,
    which can leave the thread's state inconsistent. Elsewhere a KeyboardInterrupt is caught.
    Returns CP-SAT's status and whether the search was interrupted.
    """
    result: dict[str, int] = {}
    interrupted = threading.Event()

    def stop(*_: object) -> None:
        interrupted.set()
        solver.stop_search()

    worker = threading.Thread(target=lambda: result.setdefault("status", solver.solve(model, callback)),
                              daemon=True)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop) if in_main else None
    try:
        worker.start()
        while worker.is_alive():
            try:
                worker.join(0.05)
            except KeyboardInterrupt:
                stop()
            if interrupted.is_set():
                solver.stop_search()  # again: a stop before the solve began is lost
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    return result["status"], interrupted.is_set()


def solve_cpsat(problem: RematProblem, *, time_limit: float = 60.0, progress: ProgressFn | None = None,
                hint: np.ndarray | None = None, workers: int = 2,
                max_computations: int | None = None) -> RematSolution:
    """The least-cost schedule within the budget by CP-SAT on retention intervals (module docstring).

    ``hint``: a known schedule's stage matrix R, given to CP-SAT as its first solution; without
    one, above ``FULL_COMPUTATIONS_NODES`` nodes, one is built (:func:`starting_schedule`).
    ``progress`` is called (from the solver's thread) with each better schedule's cost and
    the bound; raising KeyboardInterrupt there, or Ctrl-C in the calling thread, stops the
    search and returns the best schedule so far with ``interrupted=True``.

    Status "optimal" (proven, within the model's computations per node), "feasible" (time
    limit or interruption; ``lower_bound`` is CP-SAT's best bound), "infeasible" (proven),
    "timeout" (nothing found in time). The solution's ``peak`` is replayed and within the budget.
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick
    cp_model = _cp_model()
    b0 = time.perf_counter()
    if hint is None and problem.n > FULL_COMPUTATIONS_NODES:  # small models find their own at once
        hint = starting_schedule(problem, min(HINT_SHARE * time_limit, HINT_SECONDS))
    built = _Model(problem, max_computations, hint)
    build = time.perf_counter() - b0
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(float(time_limit) - build, 0.01)
    solver.parameters.num_workers = max(int(workers), 1)
    solver.parameters.catch_sigint_signal = False
    started = time.perf_counter()
    recorder = _Recorder(cp_model, built, progress, started)
    code, interrupted = _interruptible(solver, built.model, recorder.callback)
    seconds = time.perf_counter() - started
    if recorder.error is not None:
        raise recorder.error
    interrupted = interrupted or recorder.interrupted
    name = solver.status_name(code)
    if name == "MODEL_INVALID":
        raise RuntimeError(f"CP-SAT rejected the recompute model: {built.model.validate()}")
    if name == "INFEASIBLE":
        return _infeasible(problem, "infeasible", seconds, None, build)
    bound = built.objective(solver.best_objective_bound) if math.isfinite(solver.best_objective_bound) else None
    if recorder.best_R is None:
        if built.hint_R is None:
            return _infeasible(problem, "timeout", seconds, bound, build)
        # the search ended before reporting a schedule: the hint fits, and is the best known
        solution = _canonical(problem, built.hint_R, status="feasible", seconds=seconds, build_seconds=build,
                              lower_bound=bound)
        lower = None if bound is None else min(bound, solution.cost)
        return RematSolution(**{**solution.__dict__, "lower_bound": lower, "interrupted": interrupted})
    optimal = name == "OPTIMAL" and not interrupted
    bound = built.objective(recorder.best_units) if bound is None else min(bound, built.objective(recorder.best_units))
    solution = _canonical(problem, recorder.best_R, status="optimal" if optimal else "feasible", seconds=seconds,
                          lower_bound=bound, build_seconds=build)
    if solution.peak > problem.budget:
        raise RuntimeError(f"CP-SAT's schedule peaks at {solution.peak} B over the budget {problem.budget} B: "
                           "the model and the replay disagree")
    if interrupted:
        solution = RematSolution(**{**solution.__dict__, "interrupted": True})
    return solution
