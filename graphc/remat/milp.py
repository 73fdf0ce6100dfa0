"""Checkmate's MILP as matrices: the variables' layout, the constraint rows, the fixed entries and the model.

The formulation is in the module docstring of :mod:`graphc.remat.problem`; :func:`_build` makes
it (or its LP relaxation) for HiGHS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint

from graphc.remat.problem import _deps, _expand, RematProblem


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
    """A sparse constraint matrix built block by block from (row, col, value) triplets.

    Rows added one at a time (:meth:`row`, a few entries each: the bound's and the joint
    program's) gather in lists and become one block when the next block, term or matrix
    is asked for: the same triplets in the same order, without NumPy calls per row.
    """

    def __init__(self) -> None:
        self.m = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self._pending: tuple[list[int], list[int], list[float], list[float], list[float]] = ([], [], [], [], [])

    def _flush(self) -> None:
        """The rows added by :meth:`row` since the last flush, as one block."""
        rows, cols, vals, lo, hi = self._pending
        if not lo:
            return
        self.lo.append(np.array(lo, dtype=float))
        self.hi.append(np.array(hi, dtype=float))
        vals_ = np.array(vals, dtype=float)
        keep = vals_ != 0
        self.parts.append((np.array(rows, dtype=np.int64)[keep], np.array(cols, dtype=np.int64)[keep], vals_[keep]))
        self._pending = ([], [], [], [], [])

    def block(self, m: int, lo: np.ndarray | float, hi: np.ndarray | float) -> int:
        """Reserve m rows with bounds lo <= A x <= hi; returns the first row."""
        self._flush()
        base = self.m
        self.m += m
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (m,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (m,)))
        return base

    def term(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        self._flush()
        vals = np.broadcast_to(np.asarray(vals, dtype=float), np.shape(rows))
        keep = vals != 0
        self.parts.append((np.asarray(rows)[keep], np.asarray(cols)[keep], vals[keep]))

    def row(self, entries: list[tuple[int, float]], lo: float, hi: float = np.inf) -> None:
        """One row lo <= Σ coefficient · x[col] <= hi over ``entries`` (col, coefficient)."""
        rows, cols, vals, los, his = self._pending
        base = self.m
        self.m += 1
        for col, value in entries:
            rows.append(base)
            cols.append(col)
            vals.append(value)
        los.append(lo)
        his.append(hi)

    def fits_zero(self) -> bool:
        """Whether x = 0 (no variables at all) meets every row's bounds."""
        self._flush()
        lo, hi = (np.concatenate(b) if b else np.zeros(0) for b in (self.lo, self.hi))
        return bool(np.all(lo <= 0.0) and np.all(hi >= 0.0))

    def constraint(self, n_vars: int) -> LinearConstraint:
        self._flush()
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


def _matrices(lay: _Layout, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R and S (floats) of a solution vector."""
    n = lay.n
    R = np.zeros((n, n))
    S = np.zeros((n, n))
    R[np.tril_indices(n)] = x[: lay.s0]
    S[np.tril_indices(n, -1)] = x[lay.s0 : lay.u0]
    return R, S
