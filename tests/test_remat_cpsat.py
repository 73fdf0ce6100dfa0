"""CP-SAT on retention intervals (graphc.remat.cpsat) against the staged brute force, the MILP and its own laws;
the "optimal" policy's choice of solver.

The brute force of tests/test_remat_solvers.py enumerates every schedule of the stage form; on
problems of at most ``FULL_COMPUTATIONS_NODES`` nodes CP-SAT may compute a node in every stage,
so its optimum must equal that enumeration exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings, HealthCheck
from hypothesis import strategies as st

from remat_problems import training_chain
from test_remat_solvers import check_schedule, solver_path, staged_brute_force, tiny_problems

import graphc as gc
import graphc.zoo
from graphc.errors import GraphError
from graphc import remat
from graphc.remat import optimal
from graphc.remat.cpsat import FULL_COMPUTATIONS_NODES, starting_schedule, solve_cpsat
from graphc.remat.exact import solve_milp
from graphc.remat.problem import RematProblem, budget_lower_bound, store_all_peak
from graphc.remat.progress import SolveProgress

FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FEW
@given(tiny_problems(max_n=5))
def test_cpsat_equals_staged_brute_force(problem: RematProblem) -> None:
    """The optimum over stage schedules, or "infeasible" exactly when there is none; the schedule replays."""
    assert problem.n <= FULL_COMPUTATIONS_NODES
    event(f"n = {problem.n}, {solver_path(problem)}")
    expected = staged_brute_force(problem)
    solution = solve_cpsat(problem, time_limit=20)
    if expected is None:
        assert solution.status == "infeasible"
    else:
        assert solution.status == "optimal"
        assert solution.cost == pytest.approx(expected)
        assert solution.lower_bound == pytest.approx(expected)
        check_schedule(problem, solution)


def test_cpsat_equals_milp_on_a_training_chain() -> None:
    """A 3-layer training chain (6 nodes) at budget 3: CP-SAT's optimum is the MILP's."""
    problem = replace(training_chain(3), budget=3)
    cpsat, milp = solve_cpsat(problem, time_limit=20), solve_milp(problem, time_limit=20)
    assert cpsat.status == milp.status == "optimal"
    assert cpsat.cost == milp.cost
    check_schedule(problem, cpsat)


def test_a_value_computed_once_is_held_until_its_last_reader() -> None:
    """A training chain whose backward nodes may not be recomputed (as graphc's): each backward value is
    held over later stages until its reader runs; CP-SAT finds the staged optimum, not "infeasible"."""
    problem = replace(training_chain(3), budget=4, recomputable=[True] * 3 + [False] * 3)
    solution = solve_cpsat(problem, time_limit=20)
    assert solution.status == "optimal" and solution.cost == staged_brute_force(problem)
    check_schedule(problem, solution)


@FEW
@given(tiny_problems(max_n=4), st.integers(1, 3))
def test_a_larger_budget_never_costs_more(problem: RematProblem, more: int) -> None:
    """Budget monotonicity of the optimum: every schedule within b fits b + more."""
    low = solve_cpsat(problem, time_limit=20)
    high = solve_cpsat(replace(problem, budget=problem.budget + more), time_limit=20)
    if low.status == "optimal":
        assert high.status == "optimal" and high.cost <= low.cost + 1e-9


def test_infeasible_in_stage_form_says_infeasible() -> None:
    """Chain 0 -> 1 -> 2 keeping 0 (computed once) and 2, budget 2: above the local bound, yet computing 2
    needs 0, 1 and 2 in memory at once; CP-SAT proves it (an answer the shortcut cannot give)."""
    problem = RematProblem([1, 1, 1], [1.0] * 3, [[], [0], [1]], [0, 2], 2, recomputable=[False, True, True])
    assert budget_lower_bound(problem) <= problem.budget < store_all_peak(problem)
    assert staged_brute_force(problem) is None
    assert solve_cpsat(problem, time_limit=10).status == "infeasible"


def test_sizes_beyond_32_bits_are_scaled_to_their_gcd() -> None:
    """Values of 2⁴⁰·k bytes (and a budget to match) give the optimum of the same problem in units."""
    problem = replace(training_chain(3), budget=3)
    big = replace(problem, sizes=[s << 40 for s in problem.sizes], budget=problem.budget << 40)
    small, large = solve_cpsat(problem, time_limit=10), solve_cpsat(big, time_limit=10)
    assert small.status == large.status == "optimal" and small.cost == large.cost
    assert large.peak <= big.budget


def test_hint_is_the_first_solution() -> None:
    """Hinted with the greedy schedule of a 24-node training chain, CP-SAT reports that schedule first
    (the hint is complete, so CP-SAT takes it as it is), then only better ones."""
    problem = replace(training_chain(12), budget=5)
    hint = starting_schedule(problem, 5.0)
    hint_cost = float(np.asarray(problem.costs) @ hint.sum(axis=0))
    seen: list[float] = []
    solution = solve_cpsat(problem, time_limit=5, hint=hint, progress=lambda e: seen.append(e.objective))
    assert seen[0] == hint_cost and seen == sorted(seen, reverse=True)
    assert solution.cost == seen[-1] <= hint_cost
    check_schedule(problem, solution)


def test_a_hint_is_kept_when_the_search_reports_no_schedule_in_time() -> None:
    """With no time to search, the hint (which fits) is the answer, "feasible", never "timeout"."""
    problem = replace(training_chain(12), budget=5)
    hint = starting_schedule(problem, 5.0)
    solution = solve_cpsat(problem, time_limit=1e-6, hint=hint)
    assert solution.status in ("feasible", "optimal") and solution.cost <= float(np.asarray(problem.costs) @ hint.sum(axis=0))
    check_schedule(problem, solution)


def test_keyboard_interrupt_in_progress_keeps_the_best_schedule() -> None:
    """A KeyboardInterrupt raised by the progress callback stops the search; the schedule found is returned."""
    problem = replace(training_chain(12), budget=5)
    seen: list[SolveProgress] = []

    def stop(event: SolveProgress) -> None:
        seen.append(event)
        raise KeyboardInterrupt

    solution = solve_cpsat(problem, time_limit=60, progress=stop)
    assert len(seen) == 1 and seen[0].solver == "cpsat" and seen[0].objective == solution.cost
    assert solution.interrupted and solution.status == "feasible"
    check_schedule(problem, solution)


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from dataclasses import replace
    from remat_problems import training_chain
    from graphc.remat.cpsat import solve_cpsat
    problem = replace(training_chain(12), budget=5)
    solution = solve_cpsat(problem, time_limit=120, progress=lambda e: print("found", flush=True))
    print("result", solution.status, solution.interrupted, solution.peak <= problem.budget, flush=True)
""")


def test_ctrl_c_stops_the_search_and_keeps_the_best_schedule() -> None:
    """SIGINT to a process solving for 120 s: it ends within seconds with its best schedule, interrupted."""
    code = CHILD.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "found"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert out.strip().splitlines()[-1] == "result feasible True True"


# --------------------------------------------------------------------------- the solver choice


@pytest.mark.parametrize("solver, n, expected", [
    ("auto", 10, "milp"), ("auto", optimal.AUTO_MILP_MAX_NODES + 1, "cpsat"), ("auto", optimal.AUTO_CPSAT_MAX_NODES, "cpsat"), ("auto", 5_000, ""),
    ("milp", 10, "milp"), ("milp", optimal.MILP_MAX_NODES + 1, "lp-rounding"), ("milp", optimal.LP_MAX_NODES + 1, ""),
    ("cpsat", 5, "cpsat"), ("cpsat", 5_000, "cpsat"),
])
def test_solver_choice_by_size(solver: str, n: int, expected: str) -> None:
    assert optimal._solver_choice(solver, "optimal", n)[0] == expected


def test_auto_without_ortools_uses_the_milp_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr("graphc.remat.cpsat.cpsat_available", lambda: False)
    name, why = optimal._solver_choice("auto", "optimal", 1_000)
    assert name == "" and "pip install graphc[remat]" in why
    assert optimal._solver_choice("auto", "optimal", optimal.AUTO_MILP_MAX_NODES + 1)[0] == "lp-rounding"
    with pytest.raises(GraphError, match=r"pip install graphc\[remat\]"):
        optimal._solver_choice("cpsat", "optimal", 10)


def test_optimal_with_cpsat_reports_its_outcome() -> None:
    """remat="optimal", solver="cpsat" on a 6-block residual MLP at 75 % of the way from the floor to
    store-all: CP-SAT's outcome is reported in recompute of the fused problem, bound below objective,
    and the chosen plan fits. (The model keeps the scheduler's order of first computations, which for
    this graph is the greedy one, computing each ReLU's mask in the forward pass: below about 70 % that
    order admits no schedule, and the outcome is "infeasible".)"""
    from test_remat import _measure, _training_flow

    flow = _training_flow(gc.zoo.residual_mlp(depth=6, width=16, batch=64))
    store_all, floor = _measure(flow), remat.least_budget_bound(flow)
    budget = int(floor + (store_all - floor) * 0.75)
    optimal._FOUND.clear()
    _, report = remat.rematerialize(flow, "optimal", budget, _measure, time_limit=20, solver="cpsat")
    outcome = report.outcome
    assert outcome.solver == "cpsat" and outcome.status in ("optimal", "feasible"), outcome
    assert 0 <= outcome.bound <= outcome.objective
    assert report.planned_bytes <= budget
