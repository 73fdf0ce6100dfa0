"""The eviction simulation (graphc.remat.greedy): every schedule it returns replays within the budget and
costs no less than the staged brute force's optimum."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck

from remat_problems import random_layered_dag, training_chain
from test_remat_solvers import checked_cost, staged_brute_force, tiny_problems

from graphc.remat.greedy import ALPHAS, evicting_schedule, evicting_schedules
from graphc.remat.problem import RematProblem, store_all_peak

SOME = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@SOME
@given(tiny_problems(max_n=6))
def test_every_schedule_fits_and_costs_at_least_the_optimum(problem: RematProblem) -> None:
    optimum = staged_brute_force(problem)
    for alpha in ALPHAS:
        R = evicting_schedule(problem, alpha)
        if R is None:
            continue
        assert optimum is not None, "a schedule where the brute force finds none"
        assert checked_cost(problem, R) >= optimum - 1e-9


def test_store_all_when_it_fits() -> None:
    problem = random_layered_dag(100, seed=1, budget_fraction=1.0)
    R = evicting_schedule(problem)
    assert R is not None and (R == np.eye(problem.n, dtype=bool)).all()


def test_a_training_chain_below_its_peak_is_scheduled_by_recomputing() -> None:
    problem = training_chain(12)
    problem = replace(problem, budget=store_all_peak(problem) * 2 // 3)
    costs = [checked_cost(problem, R) for R in evicting_schedules(problem)]
    assert costs and min(costs) > sum(problem.costs)


@pytest.mark.parametrize("n, fraction", [(64, 0.8), (250, 0.9)])
def test_layered_graphs(n: int, fraction: float) -> None:
    """Moccasin-like graphs at 80 % and 90 % of the store-all peak: at least one weight gives a schedule."""
    edges = 150 if n == 64 else None
    problem = random_layered_dag(n, edges, seed=0, budget_fraction=fraction)
    schedules = evicting_schedules(problem)
    assert schedules
    for R in schedules:
        checked_cost(problem, R)
