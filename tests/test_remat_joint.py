"""The joint moment program (graphc.remat.joint): a bound on every schedule of the fixed order, and its schedules.

The reference is the fixed-order brute force of tests/test_remat_solvers.py (every schedule of the
MILP's form); the schedules are replayed on the memory model.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings

from graphc.remat import bound, joint
from graphc.remat.problem import RematProblem, events_of, replay, store_all_peak
from remat_problems import random_layered_dag, training_chain
from test_remat_solvers import staged_brute_force, tiny_problems


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny_problems(max_n=7))
@example(RematProblem(sizes=[1], costs=[1.0], deps=[[]], keep=[0], budget=1))  # no value is held across a moment
def test_the_joint_bound_is_below_the_fixed_order_optimum_and_its_schedule_fits(problem: RematProblem) -> None:
    best = staged_brute_force(problem)
    solution, _ = joint.joint_schedule(problem, joint.model_peak(problem), time_limit=5)
    if best is None:
        assert solution.R is None
        return
    once = sum(problem.costs)
    assert solution.bound <= best - once + 1e-9
    single = bound.moment_bound(problem, fixed_order=True)
    assert solution.bound >= single.value - 1e-9  # the same first moments, tied together
    if solution.R is not None:
        run = replay(problem, events_of(problem, solution.R))
        assert run.peak <= problem.budget and set(problem.keep) <= run.in_memory
        assert run.cost - once == solution.recompute >= solution.bound - 1e-9


def test_two_moments_see_what_one_cannot() -> None:
    """The chain where one moment counts 2 of the 3 recomputes (tests/test_remat_bound.py): with every
    moment tied together the bound is the optimum, and its schedule recomputes exactly that."""
    chain = training_chain(4)
    problem = replace(chain, budget=chain.budget - 2)
    assert bound.moment_bound(problem, fixed_order=True).value == 2.0
    solution = joint.solve_joint(problem, range(problem.n), time_limit=5)
    assert solution.proven and solution.bound == 3.0 == staged_brute_force(problem) - sum(problem.costs)
    assert replay(problem, events_of(problem, solution.R)).peak <= problem.budget


def test_a_layered_graph_gets_a_schedule_that_fits_and_a_bound() -> None:
    base = random_layered_dag(49, edges=110, seed=1)
    problem = replace(base, budget=int(0.9 * store_all_peak(base)))
    solution, moments = joint.joint_schedule(problem, joint.model_peak(problem), time_limit=20)
    assert solution.R is not None and len(moments) >= 6
    assert replay(problem, events_of(problem, solution.R)).peak <= problem.budget
    assert 0 < solution.bound <= solution.recompute
