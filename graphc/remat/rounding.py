"""Checkmate's two-phase LP rounding and a local search on the schedule it gives.

Solve the LP relaxation, round S, compute the least R for it; then hold a value instead of
recomputing it, trade one hold for another, and kick and repair (iterated local search).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from graphc.remat.highs import _run
from graphc.remat.milp import _build, _matrices
from graphc.remat.progress import ProgressFn, SolveProgress
from graphc.remat.problem import (
    budget_lower_bound,
    _canonical,
    _deps,
    _graph,
    _infeasible,
    _Profile,
    _prune_fast,
    RematProblem,
    RematSolution,
    _shortcut,
    _stage_memory,
)


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
            if time.perf_counter() >= deadline:  # each trial is O(n²): a large problem can take minutes
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


class _Best:
    """The cheapest schedule that fits found so far, and the LP bound: what a Ctrl-C keeps.
    Each improvement is reported to ``progress`` (solver "lp-rounding")."""

    def __init__(self, problem: RematProblem, start: float, progress: ProgressFn | None) -> None:
        self.problem, self.start, self.progress = problem, start, progress
        self.R: np.ndarray | None = None
        self.cost = math.inf
        self.bound: float | None = None

    def tell(self, message: str) -> None:
        if self.progress is not None:
            cost = None if self.R is None else self.cost
            self.progress(SolveProgress("lp-rounding", time.perf_counter() - self.start, cost, self.bound, message))

    def offer(self, R: np.ndarray, phase: str) -> np.ndarray:
        """Keep ``R`` (a schedule within the budget) if it is cheaper; returns ``R``."""
        cost = _cost(self.problem, R)
        if cost < self.cost:
            self.R, self.cost = R, cost
            self.tell(phase)
        return R

    def proven(self) -> bool:
        """Whether the cheapest schedule costs no more than the LP bound at the budget: no
        schedule is cheaper, so no search can improve on it (HiGHS's tolerance allowed)."""
        return self.bound is not None and self.cost <= self.bound + 1e-9 * max(1.0, abs(self.bound))


def solve_lp_rounding(problem: RematProblem, *, time_limit: float = 60.0, seed: int = 0, n_random: int = 16,
                      lp_budget_factors: Sequence[float] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7), improve: int = 3,
                      swap_seconds: float = 5.0, kicks: int = 250, restarts: int = 4,
                      progress: ProgressFn | None = None) -> RematSolution:
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

    ``progress`` hears of the LP bound and of every cheaper schedule. A KeyboardInterrupt
    (Ctrl-C) stops the search: the cheapest schedule found so far is returned with
    ``interrupted`` set (status "timeout" if there was none yet).
    """
    quick = _shortcut(problem)
    if quick is not None:
        return quick if quick.status == "infeasible" else replace(quick, status="feasible")
    best = _Best(problem, time.perf_counter(), progress)
    build = [0.0]
    try:
        _round_and_search(problem, best, build, time_limit, seed, n_random, lp_budget_factors, improve,
                          swap_seconds, kicks, restarts)
    except KeyboardInterrupt:
        best.tell("interrupted: keeping the best schedule so far")
        return _ending(problem, best, build[0], interrupted=True)
    return _ending(problem, best, build[0])


def _ending(problem: RematProblem, best: _Best, build: float, interrupted: bool = False) -> RematSolution:
    seconds = time.perf_counter() - best.start - build
    if best.R is None:
        ended = _infeasible(problem, "timeout" if interrupted else "infeasible", seconds, best.bound, build)
    else:
        ended = _canonical(problem, best.R, status="feasible", seconds=seconds, lower_bound=best.bound,
                           build_seconds=build)
    return replace(ended, interrupted=interrupted)


def _round_and_search(problem: RematProblem, best: _Best, build: list[float], time_limit: float, seed: int,
                      n_random: int, lp_budget_factors: Sequence[float], improve: int, swap_seconds: float,
                      kicks: int, restarts: int) -> None:
    """:func:`solve_lp_rounding`'s work; every schedule that fits goes to ``best`` as it is found,
    the model building seconds to ``build[0]``."""
    deadline = best.start + time_limit
    g = _graph(problem)
    budgets = dict.fromkeys(max(budget_lower_bound(problem), int(problem.budget * f)) for f in lp_budget_factors)
    fitting: dict[bytes, np.ndarray] = {}
    for lp_budget in budgets:
        if fitting or time.perf_counter() >= deadline:
            break
        b0 = time.perf_counter()
        model = _build(problem, budget=lp_budget, integral=False, free_rows="factors")
        build[0] += time.perf_counter() - b0
        res = _run(model, deadline - time.perf_counter())
        if res.x is None:
            if res.status == 2:
                break  # smaller LP budgets are infeasible too
            continue
        if lp_budget == problem.budget and res.status == 0:
            best.bound = float(res.fun)
        best.tell(f"LP relaxation solved at {lp_budget:,d} B")
        over: list[tuple[int, np.ndarray]] = []
        for S_round in _roundings(_matrices(model.lay, res.x)[1], seed, n_random):
            R, profile = _prune_fast(g, _compute_from_storage(problem, S_round))
            if profile.memory.max(initial=0) <= problem.budget:
                fitting.setdefault(np.packbits(R).tobytes(), best.offer(R, "rounded"))
            else:
                over.append((int(profile.memory.max()), R))
        for _, R in sorted(over, key=lambda item: item[0])[:improve]:
            repaired = _repair(problem, R, deadline)
            if repaired is not None:
                fitting.setdefault(np.packbits(repaired).tobytes(), best.offer(repaired, "rounded and repaired"))
    starts = sorted(fitting.values(), key=lambda R: _cost(problem, R))[: max(improve, 1)]
    if not starts or improve <= 0 or best.proven():
        return
    starts = [best.offer(_hold_instead(problem, R, deadline), "local search") for R in starts]
    start = min(starts, key=lambda R: _cost(problem, R))
    if best.proven():
        return
    start = best.offer(_swap(problem, start, min(deadline, time.perf_counter() + swap_seconds)), "local search (swaps)")
    for r in range(restarts):
        if best.proven():
            return
        best.offer(_iterated_search(problem, start, seed * restarts + r, kicks, deadline), "iterated local search")
