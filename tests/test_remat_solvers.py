"""The recompute solver of graphc.remat (the MILP, LP rounding, fusion) against brute force and closed forms.

Two exhaustive searches serve as references on graphs of <= 8 nodes:

- ``brute_force``: every schedule (any order of computes and frees), Dijkstra over
  (values in memory, nodes computed at least once);
- ``staged_brute_force``: every schedule of the MILP's form — events in stage order
  (stage t: some nodes < t in index order, then t itself), frees anywhere — by dynamic
  programming over the values in memory.

The MILP must equal the second exactly. The first can be cheaper, because the stages
fix the order in which nodes are first computed; ``test_fixed_order_can_cost_more``
shows a four-node case.
"""

from __future__ import annotations

import heapq
import importlib.util
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from remat_problems import random_training_dag, training_chain

from graphc.remat.exact import LeastBudgetTimeout, minimal_least_budget, solve_milp
from graphc.remat.fusion import fuse_chains, fused_events
from graphc.remat.milp import _build, _layout, _unit, model_size
from graphc.remat.problem import (
    RematProblem,
    RematSolution,
    _canonical,
    _graph,
    _prune_fast,
    _stage_memory,
    budget_lower_bound,
    events_of,
    peak_of,
    replay,
    schedule_of,
    store_all_peak,
)
from graphc.remat.rounding import _compute_from_storage, solve_lp_rounding

SOLVE_TIMES = Path(__file__).resolve().parent.parent / "benchmarks" / "remat_solve_times.py"


def _load_solve_times():
    """benchmarks/remat_solve_times.py, the solve-time table's script, as a module."""
    spec = importlib.util.spec_from_file_location("benchmarks_remat_solve_times", SOLVE_TIMES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- references


def _masks(problem: RematProblem) -> tuple[list[int], int, np.ndarray]:
    """Dependency masks, the keep mask and the bytes of every set of values."""
    n = problem.n
    deps = [sum(1 << d for d in set(ds)) for ds in problem.deps]
    keep = sum(1 << k for k in set(problem.keep))
    sets = np.arange(1 << n)
    held = np.zeros(1 << n, dtype=np.int64)
    for i, size in enumerate(problem.sizes):
        held += ((sets >> i) & 1) * int(size)
    return deps, keep, held


def brute_force(problem: RematProblem, objective: str = "cost") -> float | None:
    """The optimum over all schedules: least cost within the budget, or least peak.

    States (in memory, computed once); actions compute i (its deps in memory, i not, i
    not computed before unless recomputable, memory + M_i + W_i <= budget) and free j.
    Goal: all computed, keep in memory.
    """
    n = problem.n
    deps, keep, held = _masks(problem)
    may, extra = problem.may_recompute(), problem.extra()
    everything = (1 << n) - 1
    best = {(0, 0): 0.0}
    heap = [(0.0, 0, 0)]
    while heap:
        value, memory, done = heapq.heappop(heap)
        if value > best[(memory, done)]:
            continue
        if done == everything and memory & keep == keep:
            return value
        moves = [(value, memory & ~(1 << j), done) for j in range(n) if memory >> j & 1]
        for i in range(n):
            if memory >> i & 1 or deps[i] & memory != deps[i] or (done >> i & 1 and not may[i]):
                continue
            used = int(held[memory]) + problem.sizes[i] + int(extra[i])
            if objective == "cost" and used > problem.budget:
                continue
            step = value + problem.costs[i] if objective == "cost" else max(value, used)
            moves.append((step, memory | 1 << i, done | 1 << i))
        for state in moves:
            if state[0] < best.get(state[1:], math.inf):
                best[state[1:]] = state[0]
                heapq.heappush(heap, state)
    return None


def staged_brute_force(problem: RematProblem, objective: str = "cost") -> float | None:
    """The optimum over schedules of the MILP's form, by dynamic programming over memory sets.

    Positions (t, k), k <= t, in order; at (t, k) compute k or not (k = t: must; k < t:
    only if recomputable), then free any subset. value[memory] = least cost (or peak) to reach that memory set.
    """
    n = problem.n
    deps, keep, held = _masks(problem)
    may, extra = problem.may_recompute(), problem.extra()
    sets = np.arange(1 << n)
    value = np.full(1 << n, np.inf)
    value[0] = 0.0
    for t in range(n):
        for k in range(t + 1):
            after = value.copy() if k < t else np.full(1 << n, np.inf)
            if k < t and not may[k]:
                continue
            used = held + problem.sizes[k] + int(extra[k])
            ok = np.isfinite(value) & (sets & deps[k] == deps[k]) & ((sets >> k) & 1 == 0)
            if objective == "cost":
                ok &= used <= problem.budget
                step = value + problem.costs[k]
            else:
                step = np.maximum(value, used)
            np.minimum.at(after, sets[ok] | (1 << k), step[ok])
            for b in range(n):  # freeing: any subset of a reachable set is reachable
                has = sets[(sets >> b) & 1 == 1]
                after[has ^ (1 << b)] = np.minimum(after[has ^ (1 << b)], after[has])
            value = after
    final = value[(sets & keep) == keep].min()
    return None if not np.isfinite(final) else float(final)


# --------------------------------------------------------------------------- strategies


@st.composite
def tiny_dags(draw, max_n: int) -> RematProblem:
    """A random DAG of <= max_n nodes, each reading up to 3 earlier ones; budget 0."""
    n = draw(st.integers(1, max_n))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3)))) if i else [] for i in range(n)]
    keep = sorted(draw(st.sets(st.integers(0, n - 1), max_size=3)))
    return with_random_weights(draw, deps, keep)


@st.composite
def tiny_training_dags(draw, max_n: int) -> RematProblem:
    """A random forward DAG of m <= max_n/2 nodes and its adjoint (b_v reads f_v and b_c for each
    consumer c of v), as autodiff builds it; outputs: some adjoints. Budget 0."""
    m = draw(st.integers(1, max_n // 2))
    forward = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 2)))) if i else [] for i in range(m)]
    adjoint = {v: 2 * m - 1 - v for v in range(m)}
    backward = [[v] + sorted(adjoint[c] for c in range(m) if v in forward[c]) for v in range(m - 1, -1, -1)]
    keep = sorted(draw(st.sets(st.sampled_from(list(adjoint.values())), min_size=1, max_size=2)))
    return with_random_weights(draw, forward + backward, keep)


def with_random_weights(draw, deps: list[list[int]], keep: list[int]) -> RematProblem:
    n = len(deps)
    sizes = draw(st.lists(st.sampled_from([1, 2, 3, 4, 1, 0]), min_size=n, max_size=n))
    costs = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0]), min_size=n, max_size=n))
    return RematProblem(sizes, costs, deps, keep, 0)


@st.composite
def tiny_problems(draw, max_n: int = 8) -> RematProblem:
    """A random DAG or training DAG of <= max_n nodes. The budget is mostly where a solver has to
    work (from the local lower bound to just below the store-all peak), sometimes one below that
    or the peak."""
    problem = draw(st.one_of(tiny_dags(max_n), tiny_training_dags(max_n)))
    low, high = budget_lower_bound(problem), store_all_peak(problem)
    if draw(st.booleans()):  # some nodes may not be recomputed, some need a workspace
        may = draw(st.lists(st.booleans(), min_size=problem.n, max_size=problem.n))
        extra = draw(st.lists(st.sampled_from([0, 0, 1, 2]), min_size=problem.n, max_size=problem.n))
        problem = replace(problem, recomputable=may, workspace=extra)
        low, high = budget_lower_bound(problem), store_all_peak(problem)
    kind = draw(st.sampled_from(["solver"] * 6 + ["below", "ample"]))
    if kind == "solver":
        assume(low < high)
        budget = low + round(draw(st.floats(0, 1)) * (high - 1 - low))
    else:
        budget = max(low - 1, 0) if kind == "below" else high
    return replace(problem, budget=budget)


def checked_cost(problem: RematProblem, R: np.ndarray) -> float:
    """The cost of stage matrix R, after checking its canonical schedule (:func:`check_schedule`)."""
    solution = _canonical(problem, R, status="feasible", seconds=0.0, lower_bound=None)
    check_schedule(problem, solution)
    return solution.cost


def check_schedule(problem: RematProblem, solution: RematSolution) -> None:
    """A feasible solution is a valid schedule of the stated cost and peak, within the budget."""
    n = problem.n
    R, S = solution.R, solution.S
    assert R.shape == S.shape == (n, n) and R.dtype == S.dtype == bool
    assert R.diagonal().all() and not np.triu(R, 1).any() and not np.triu(S).any()
    run = replay(problem, schedule_of(problem, solution))  # raises on a read of a missing value
    assert run.computed == frozenset(range(n))
    assert (R.sum(axis=0)[~problem.may_recompute()] == 1).all()
    assert set(problem.keep) <= run.in_memory
    assert run.peak == solution.peak <= problem.budget
    assert run.cost == pytest.approx(solution.cost)
    assert solution.cost == pytest.approx(float(np.asarray(problem.costs) @ R.sum(axis=0)))
    if solution.lower_bound is not None:
        assert solution.lower_bound <= solution.cost + 1e-6


def solver_path(problem: RematProblem) -> str:
    """Whether a solver runs: the budget is neither below the local bound nor above the store-all peak."""
    if problem.budget < budget_lower_bound(problem):
        return "below the lower bound"
    return "store-all fits" if problem.budget >= store_all_peak(problem) else "solver"


def feasible(status: str) -> bool:
    return status in ("optimal", "feasible")


SMALL = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --------------------------------------------------------------------------- the references themselves


def test_references_agree_on_a_hand_worked_chain() -> None:
    """Unit chain 0 -> 1 -> 2, keep 2: budget 2 needs no recompute, 1 is impossible."""
    chain = RematProblem([1, 1, 1], [1.0] * 3, [[], [0], [1]], [2], 2)
    assert brute_force(chain) == staged_brute_force(chain) == 3.0
    assert brute_force(replace(chain, budget=1)) is None is staged_brute_force(replace(chain, budget=1))
    assert brute_force(chain, "peak") == staged_brute_force(chain, "peak") == 2.0


# --------------------------------------------------------------------------- MILP = brute force


@SMALL
@given(tiny_problems())
def test_milp_equals_staged_brute_force(problem: RematProblem) -> None:
    """The MILP alone (no incumbent) finds exactly the staged optimum, or proves infeasibility."""
    event(f"n = {problem.n}, {solver_path(problem)}")
    expected = staged_brute_force(problem)
    solution = solve_milp(problem, incumbent=False)
    if expected is None:
        assert solution.status == "infeasible"
    else:
        assert solution.status == "optimal"
        assert solution.cost == pytest.approx(expected)
        check_schedule(problem, solution)


@SMALL
@given(tiny_problems())
def test_milp_with_incumbent_equals_staged_brute_force(problem: RematProblem) -> None:
    """The default path (LP rounding first, then the MILP with a cutoff) reaches the same optimum."""
    expected = staged_brute_force(problem)
    solution = solve_milp(problem)
    assert (solution.status == "infeasible") == (expected is None)
    if expected is not None:
        assert solution.status == "optimal"
        assert solution.cost == pytest.approx(expected)
        assert solution.lower_bound == pytest.approx(expected, rel=1e-4, abs=1e-6)
        check_schedule(problem, solution)


@SMALL
@given(tiny_problems(max_n=6))
def test_milp_is_a_valid_upper_bound_on_any_order(problem: RematProblem) -> None:
    """Any-order brute force is never dearer than the MILP and is feasible whenever it is."""
    solution = solve_milp(problem)
    best = brute_force(problem)
    if feasible(solution.status):
        assert best is not None and best <= solution.cost + 1e-9
    if best is None:
        assert solution.status == "infeasible"


def test_fixed_order_can_cost_more() -> None:
    """Two independent chains a1 -> a2, b1 -> b2 (a1, b1 of 10 bytes), topological order a1 b1 a2 b2.

    Any order: a1 a2 (free a1) b1 b2 costs 4 with peak 12. The stages must compute b1
    before a2, so at budget 12 both a1 and b1 are computed twice: cost 6.
    """
    problem = RematProblem([10, 10, 1, 1], [1.0] * 4, [[], [], [0], [1]], [2, 3], 12)
    assert brute_force(problem) == 4.0
    assert staged_brute_force(problem) == 6.0
    assert solve_milp(problem).cost == 6.0
    assert solve_milp(replace(problem, budget=21)).cost == 4.0  # room to hold a1 over b1


def test_time_limit_returns_the_best_known_schedule() -> None:
    """A 50-node training chain at budget 4 is not solved in 3 s (nor in 300): the schedule
    found is valid, reported "feasible", with a bound below it; without the incumbent and
    half a second there may be none."""
    problem = replace(training_chain(25), budget=4)
    solution = solve_milp(problem, time_limit=3.0)
    assert solution.status == "feasible"
    check_schedule(problem, solution)
    alone = solve_milp(problem, time_limit=0.5, incumbent=False)
    assert alone.status in ("feasible", "timeout")
    if alone.status == "feasible":
        check_schedule(problem, alone)


def test_infeasible_above_the_local_bound() -> None:
    """Budget 6 passes the local bound of ``test_least_budget_above_the_local_bound``'s
    diamond, but no schedule meets it."""
    problem = RematProblem([5, 1, 1, 1], [1.0] * 4, [[], [0], [0], [1, 2]], [3], 6)
    assert budget_lower_bound(problem) == 6
    assert solve_milp(problem).status == solve_lp_rounding(problem).status == "infeasible"
    assert solve_milp(problem, incumbent=False).status == "infeasible"


@pytest.mark.parametrize("fields", [
    dict(sizes=[1, 1], costs=[1.0], deps=[[], [0]], keep=[1], budget=2),
    dict(sizes=[1, 1], costs=[1.0, 1.0], deps=[[], [1]], keep=[1], budget=2),
    dict(sizes=[1, -1], costs=[1.0, 1.0], deps=[[], [0]], keep=[1], budget=2),
    dict(sizes=[1, 1], costs=[1.0, math.nan], deps=[[], [0]], keep=[1], budget=2),
    dict(sizes=[1, 1], costs=[1.0, 1.0], deps=[[], [0]], keep=[2], budget=2),
])
def test_problem_validation(fields: dict) -> None:
    with pytest.raises(ValueError):
        RematProblem(**fields)


# --------------------------------------------------------------------------- least budget


@settings(max_examples=40, deadline=None)
@given(tiny_problems(max_n=6))
def test_minimal_least_budget(problem: RematProblem) -> None:
    """It equals the staged least peak; the MILP is feasible there and infeasible just below."""
    least = minimal_least_budget(problem)
    assert least == staged_brute_force(problem, "peak")
    assert budget_lower_bound(problem) <= brute_force(problem, "peak") <= least <= store_all_peak(problem)
    assert feasible(solve_milp(replace(problem, budget=least), incumbent=False).status)
    if least > 0:
        assert solve_milp(replace(problem, budget=least - 1), incumbent=False).status == "infeasible"


def test_least_budget_above_the_local_bound() -> None:
    """max_i (M_i + Σ deps) is only a lower bound: 0 (5 bytes) is read by 1 and 2, and 3 reads
    both, so 0 and one of 1, 2 are held while the other is computed: 7, not 6."""
    problem = RematProblem([5, 1, 1, 1], [1.0] * 4, [[], [0], [0], [1, 2]], [3], 0)
    assert budget_lower_bound(problem) == 6
    assert minimal_least_budget(problem) == brute_force(problem, "peak") == 7


def test_fixed_order_can_need_more_memory() -> None:
    """Chain 0 -> 1 -> 2 of 4, 6, 4 bytes, keeping 0. Any order recomputes 0 after 2 (peak 10);
    in the stages 0 is computed before 2 in the last stage, so 0, 1, 2 meet: 14."""
    problem = RematProblem([4, 6, 4], [1.0] * 3, [[], [0], [1]], [0], 0)
    assert brute_force(problem, "peak") == 10
    assert minimal_least_budget(problem) == staged_brute_force(problem, "peak") == 14


# --------------------------------------------------------------------------- schedule arithmetic


def reference_prune(problem: RematProblem, R: np.ndarray) -> np.ndarray:
    """Backwards over the computes: keep one iff frontier or its node is demanded — read by a
    later kept compute, or in keep — before any later compute of it."""
    R = R.copy()
    demanded = set(problem.keep)
    for t, k in reversed(list(zip(*np.nonzero(R)))):
        if k == t or k in demanded:
            demanded.discard(k)
            demanded.update(problem.deps[k])
        else:
            R[t, k] = False
    return R


@SMALL
@given(tiny_problems(max_n=8), st.integers(0, 2**32 - 1))
def test_vectorised_profile_and_prune_match_the_replay(problem: RematProblem, seed: int) -> None:
    """On any compute matrix with spurious computes: pruning agrees with the reference, the
    vectorised memory profile with the event replay, and pruning lowers neither validity nor peak."""
    rng = np.random.default_rng(seed)
    n = problem.n
    R = _compute_from_storage(problem, np.tril(rng.random((n, n)) < rng.random(), -1))
    R |= np.tril(rng.random((n, n)) < 0.2)
    pruned, profile = _prune_fast(_graph(problem), R)
    assert (pruned == reference_prune(problem, R)).all()
    assert profile.memory.max() == peak_of(problem, events_of(problem, pruned))
    assert profile.memory.max() <= peak_of(problem, events_of(problem, R))
    run = replay(problem, events_of(problem, pruned))
    assert run.computed == frozenset(range(n)) and set(problem.keep) <= run.in_memory


def test_compute_from_storage_store_all_is_each_node_once() -> None:
    problem = training_chain(4)
    R = _compute_from_storage(problem, np.ones((8, 8), dtype=bool))
    assert (R == np.eye(8, dtype=bool)).all()


# --------------------------------------------------------------------------- fusion


def test_fuse_chains_by_hand() -> None:
    """a -> b -> c -> d, each read once, fuse into one node of d's size 4; while it runs
    the most held at once is 5 (a and b, or c and d), so its workspace is 1. When d reads
    b too, b has two consumers and the groups are {a, b} and {c, d}."""
    problem = RematProblem(sizes=[2, 3, 1, 4], costs=[1.0, 2.0, 3.0, 4.0], deps=[[], [0], [1], [2]], keep=[3], budget=9)
    fused = fuse_chains(problem)
    assert fused.groups == [[0, 1, 2, 3]]
    assert fused.problem.sizes == [4] and fused.problem.costs == [10.0] and list(fused.problem.workspace) == [1]
    fused = fuse_chains(replace(problem, deps=[[], [0], [1], [2, 1]]))
    assert fused.groups == [[0, 1], [2, 3]]
    assert fused.problem.deps == [[], [0]] and fused.problem.sizes == [3, 4]
    assert list(fused.problem.workspace) == [5 - 3, 1 + 4 - 4]


@SMALL
@given(tiny_problems())
def test_fused_schedules_run_on_the_original(problem: RematProblem) -> None:
    """The fused MILP's schedule, run member by member on the original problem, computes
    everything at the same cost and a peak no higher than the fused model's; fusion only
    restricts the schedules, so it never beats the original optimum (in any order: the fused
    stages may first-compute nodes in another order than the original indices)."""
    fused = fuse_chains(problem)
    assert sorted(i for g in fused.groups for i in g) == list(range(problem.n))
    solution = solve_milp(fused.problem, time_limit=30)
    event(solution.status)
    if not feasible(solution.status):
        return
    check_schedule(fused.problem, solution)
    run = replay(problem, fused_events(problem, fused, solution.R))
    assert run.computed == frozenset(range(problem.n)) and set(problem.keep) <= run.in_memory
    assert run.peak <= solution.peak <= problem.budget
    assert run.cost == pytest.approx(solution.cost)
    assert solution.cost >= brute_force(problem) - 1e-9


# --------------------------------------------------------------------------- the model itself


@SMALL
@given(tiny_problems(), st.integers(0, 2**32 - 1))
def test_model_accepts_the_exact_point_of_any_schedule(problem: RematProblem, seed: int) -> None:
    """R, S of a schedule with FREE = R[t,k](1 - S[t+1,i])Π(1 - R[t,j]) and U by its recurrence
    satisfy every row when the budget is max (U + workspace), which is >= the replayed peak."""
    rng = np.random.default_rng(seed)
    n = problem.n
    R, _ = _prune_fast(_graph(problem), _compute_from_storage(problem, np.tril(rng.random((n, n)) < 0.5, -1)))
    S = _stage_memory(problem, R)
    lay = _layout(problem)
    unit = _unit(problem)
    M = np.asarray(problem.sizes) // unit
    users = [[j for j in range(n) if i in problem.deps[j]] for i in range(n)]
    x = np.zeros(lay.n_vars)
    ti, ii = np.tril_indices(n)
    x[: lay.s0] = R[ti, ii]
    ts, is_ = np.tril_indices(n, -1)
    x[lay.s0 : lay.u0] = S[ts, is_]
    keep = set(problem.keep)
    for t in range(n):
        held = M @ S[t]
        for k in range(t + 1):
            if k:  # frees after k - 1, then k
                for i in sorted(set(problem.deps[k - 1])):
                    if t == n - 1 and i in keep:
                        continue  # no FREE variable: a kept value stays
                    stored = S[t + 1, i] if t < n - 1 else 0
                    later = [1 - R[t, j] for j in users[i] if k - 1 < j <= t]
                    free = R[t, k - 1] * (1 - stored) * np.prod(later)
                    e = np.nonzero((lay.src == i) & (lay.dst == k - 1))[0]
                    x[lay.free(np.array(t), e)] = free
                    held -= M[i] * free
            held += M[k] * R[t, k]
            x[lay.u(np.array(t), np.array(k))] = held
    U = x[lay.u0 : lay.f0]
    running = U + problem.extra()[ii] // unit * R[ti, ii]  # memory while k runs, workspace included
    peak_units = peak_of(problem, events_of(problem, R)) // unit
    assert running.max() >= peak_units
    top = int(running.max()) * unit
    model = _build(replace(problem, budget=top), budget=top, integral=True)
    Ax = model.constraint.A @ x
    assert np.all(Ax >= model.constraint.lb - 1e-9) and np.all(Ax <= model.constraint.ub + 1e-9)
    assert np.all(x >= model.bounds.lb - 1e-9) and np.all(x <= model.bounds.ub + 1e-9)


def test_model_size_counts() -> None:
    """Variables: R and U n(n+1)/2 each, S n(n-1)/2, FREE one per edge i -> k and stage k < t
    (none for a kept i in the last stage)."""
    problem = replace(training_chain(6), budget=5)
    n = problem.n
    edges = [(d, k) for k, ds in enumerate(problem.deps) for d in ds]
    n_free = sum(max(0, n - 1 - k - (i in problem.keep)) for i, k in edges)
    n_vars, n_rows, nnz = model_size(problem)
    assert n_vars == n * (n + 1) + n * (n - 1) // 2 + n_free
    assert n_rows > 0 and nnz > n_vars


def test_builds_500_nodes() -> None:
    """The model of a 500-node graph builds (vectorised); its size is printed."""
    problem = random_training_dag(500)
    start = time.perf_counter()
    n_vars, n_rows, nnz = model_size(problem)
    print(f"\n500 nodes: {n_vars} variables, {n_rows} rows, {nnz} nonzeros, built in {time.perf_counter() - start:.2f} s")
    assert n_vars > 500 * 500


# --------------------------------------------------------------------------- closed forms on training chains


def chain_optimum(n: int, budget: int) -> float | None:
    """Least cost of training_chain(n) (unit sizes and costs, n >= 3), proven by hand.

    budget >= n + 1: 2n (store all). budget = n: 2n + 1 (one value too many at g_{n-1};
    recompute f_0 for g_0). budget = 3: 2n + (n-1)(n-2)/2 — computing g_i (i <= n-3) fills
    memory with g_{i+1}, f_i, g_i, so f_0..f_i are all computed again after g_{i+1}.
    budget <= 2: impossible (g_{n-2} reads two values).
    """
    if budget >= n + 1:
        return 2.0 * n
    if budget == n:
        return 2.0 * n + 1
    if budget == 3:
        return 2.0 * n + (n - 1) * (n - 2) / 2
    if budget <= 2:
        return None
    raise ValueError("no closed form")


@pytest.mark.parametrize("n, budget", [(5, 2), (5, 3), (5, 5), (5, 6), (10, 3), (10, 10), (10, 11),
                                       (25, 25), (25, 26)])
def test_training_chain_closed_forms(n: int, budget: int) -> None:
    """training_chain(n) has 2n nodes: 10, 20 and 50 nodes here."""
    problem = replace(training_chain(n), budget=budget)
    solution = solve_milp(problem)
    expected = chain_optimum(n, budget)
    if expected is None:
        assert solution.status == "infeasible"
        return
    assert solution.status == "optimal"
    assert solution.cost == expected
    check_schedule(problem, solution)


def test_training_chain_matches_brute_force() -> None:
    """The closed forms hold for the any-order optimum too (n = 3, 4: 6 and 8 nodes)."""
    for n in (3, 4):
        for budget in range(2, n + 3):
            problem = replace(training_chain(n), budget=budget)
            assert brute_force(problem) == chain_optimum(n, budget)
            assert minimal_least_budget(problem) == 3


def test_training_chain_shape() -> None:
    problem = training_chain(3)
    assert list(map(list, problem.deps)) == [[], [0], [1], [2], [1, 3], [0, 4]]
    assert list(problem.keep) == [5]
    assert problem.budget == store_all_peak(problem) == 4


# --------------------------------------------------------------------------- LP rounding


@settings(SMALL, max_examples=25)
@given(tiny_problems())
def test_lp_rounding_is_a_valid_schedule(problem: RematProblem) -> None:
    """Feasible roundings are valid schedules no cheaper than the optimum; none when infeasible."""
    expected = staged_brute_force(problem)
    solution = solve_lp_rounding(problem, restarts=1)  # one local search: validity does not need four
    assert solution.status in ("feasible", "infeasible")
    if expected is None:
        assert solution.status == "infeasible"
    elif solution.status == "feasible":
        assert solution.cost >= expected - 1e-9
        check_schedule(problem, replace(solution, lower_bound=None))


@pytest.mark.parametrize("n", [5, 8])
def test_lp_rounding_within_ten_percent_on_training_chains(n: int) -> None:
    """Training chains of 10 and 16 nodes at the least budget (3), a mid budget and n: the
    recompute within 10 % of the optimum's (closed form, else the MILP). Longer chains are
    measured in benchmarks/remat.py."""
    base = training_chain(n)
    budgets = (3, (3 + n + 1) // 2, n)
    for budget in budgets:
        problem = replace(base, budget=budget)
        try:
            optimum = chain_optimum(n, budget)
        except ValueError:
            exact = solve_milp(problem, incumbent=False)
            assert exact.status == "optimal"
            optimum = exact.cost
        start = time.perf_counter()
        rounded = solve_lp_rounding(problem)
        seconds = time.perf_counter() - start
        assert rounded.status == "feasible"
        check_schedule(problem, replace(rounded, lower_bound=None))
        extra = optimum - problem.n
        print(f"\nchain {problem.n:3d} nodes, budget {budget:3d}: optimum {optimum:.0f}; LP rounding {rounded.cost:.0f} "
              f"in {seconds:.2f} s, ratio {rounded.cost / optimum:.3f}, recompute ratio "
              f"{(rounded.cost - problem.n) / extra if extra else 1.0:.3f}")
        assert optimum <= rounded.cost
        assert rounded.cost - problem.n <= 1.10 * extra + 1e-9  # recompute within 10 %


# --------------------------------------------------------------------------- generators, benchmark


def test_random_training_dag() -> None:
    """n nodes, a valid topological order, outputs the adjoints of the first layer, budget mid."""
    problem = random_training_dag(40, seed=3)
    assert problem.n == 40
    assert all(d < i for i, ds in enumerate(problem.deps) for d in ds)
    assert budget_lower_bound(problem) <= problem.budget < store_all_peak(problem)
    assert random_training_dag(40, seed=3) == problem


def test_benchmark_solve_times_small() -> None:
    """The benchmark's table for small graphs: every row proven, LP rounding no cheaper than the optimum."""
    rows = _load_solve_times().benchmark_solve_times(sizes=(10,), time_limit=30.0)
    assert [(r["graph"], r["n"]) for r in rows] == [("chain", 10), ("layered", 10)]
    for row in rows:
        assert row["status"] == row["alone_status"] == "optimal" and row["proven"]
        assert row["lp_cost"] >= row["cost"] - 1e-9
        assert row["bound"] == pytest.approx(row["cost"], rel=1e-4)


def test_least_budget_timeout_carries_bounds() -> None:
    """Given no time, the least budget is not proven; the error carries valid bounds."""
    problem = random_training_dag(40, seed=0)
    with pytest.raises(LeastBudgetTimeout) as info:
        minimal_least_budget(problem, time_limit=0.01)
    assert budget_lower_bound(problem) <= info.value.lower <= info.value.upper <= store_all_peak(problem)
