"""The interval program (graphc.remat.intervals): its schedules replay within the budget, cost no less than
the staged brute force's optimum, and reach it where one recompute at a read is the answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings, HealthCheck

from remat_problems import random_layered_dag, training_chain
from test_remat_solvers import checked_cost, staged_brute_force, tiny_problems

from graphc.remat.intervals import IntervalProgram, interval_schedule
from graphc.remat.problem import RematProblem, store_all_peak

SOME = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SOME
@given(tiny_problems(max_n=6))
def test_schedules_fit_and_cost_at_least_the_optimum(problem: RematProblem) -> None:
    optimum = staged_brute_force(problem)
    for two_levels in (False, True):
        R = interval_schedule(problem, 10.0, two_levels=two_levels)
        if R is None:
            continue
        assert optimum is not None, "a schedule where the brute force finds none"
        assert checked_cost(problem, R) >= optimum - 1e-9


def test_store_all_when_it_fits() -> None:
    problem = random_layered_dag(100, seed=1, budget_fraction=1.0)
    R = interval_schedule(problem, 10.0)
    assert R is not None and (R == np.eye(problem.n, dtype=bool)).all()


def test_one_value_dropped_between_its_reads() -> None:
    """0 → 1 → 2 → 3 with 0 also read by 3 (sizes 1, 3, 1, 1): holding 0 while 2 runs peaks at 5; dropping
    it after 1 and computing it again in stage 3 peaks at 4, for one more compute of 0 (cost 1)."""
    problem = RematProblem(sizes=[1, 3, 1, 1], costs=[1.0, 5.0, 5.0, 1.0], deps=[[], [0], [1], [0, 2]], keep=[3],
                           budget=4)
    assert staged_brute_force(problem) == 13.0
    for solver in ("highs", "cpsat"):
        R = interval_schedule(problem, 10.0, two_levels=False, solver=solver)
        assert R is not None and checked_cost(problem, R) == 13.0 and R[3, 0]


def test_two_levels_recompute_a_dependency_in_the_same_stage() -> None:
    """A 6-layer training chain 3 units below its peak needs a recomputed value's own input computed again
    in the same stage: one level finds nothing, two levels a schedule."""
    problem = training_chain(6)
    problem = replace(problem, budget=store_all_peak(problem) - 3)
    assert IntervalProgram(problem, two_levels=True).columns > IntervalProgram(problem, two_levels=False).columns
    assert interval_schedule(problem, 10.0, two_levels=False) is None
    costs = {solver: checked_cost(problem, interval_schedule(problem, 10.0, two_levels=True, solver=solver))
             for solver in ("highs", "cpsat")}
    assert costs["highs"] == costs["cpsat"] >= staged_brute_force(problem) - 1e-9
