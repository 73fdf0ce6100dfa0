"""The moment bound (graphc.remat.bound) and its schedules: below every schedule of any order, exact where it is built.

The reference is the any-order brute force of tests/test_remat_solvers.py (every schedule of
computes and frees); the schedules the bound's solutions become are checked on the memory
model and, compiled, against store-all's numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import graphc as gc
from graphc import zoo
from graphc.remat import bound, optimal
from graphc.remat.bound import RecomputeBound
from graphc.remat.policies import RematReport
from graphc.remat.problem import RematProblem, events_of, replay
from remat_problems import training_chain
from test_remat_solvers import brute_force, staged_brute_force, tiny_problems


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny_problems(max_n=7))
def test_no_schedule_in_any_order_recomputes_less_than_the_bound(problem: RematProblem) -> None:
    found = bound.moment_bound(problem)
    best = brute_force(problem)
    if best is None:
        return
    assert found.feasible and found.proven
    assert found.value <= best - sum(problem.costs) + 1e-9


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny_problems(max_n=7))
def test_no_schedule_in_the_solvers_fixed_order_recomputes_less_than_its_bound(problem: RematProblem) -> None:
    best = staged_brute_force(problem)
    moments = bound.Moments(problem, fixed_order=True)
    found = bound.moment_bound(problem, moments_of=moments)
    if best is None:
        return
    assert found.value <= best - sum(problem.costs) + 1e-9
    assert found.value >= bound.moment_bound(problem).value - 1e-9  # a known split only adds constraints


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny_problems(max_n=8))
def test_a_moments_solution_is_a_schedule_that_recomputes_what_it_drops(problem: RematProblem) -> None:
    found = bound.moment_bound(problem)
    for moment, dropped in found.drops:
        R = bound.drop_stages(problem, [(moment, dropped)])
        run = replay(problem, events_of(problem, R))  # raises if a value is read while not held
        assert set(problem.keep) <= run.in_memory
        recomputed = [v for v in range(problem.n) if R[v + 1:, v].any()]
        assert set(recomputed) <= set(dropped)
        assert math.isclose(run.cost - sum(problem.costs), sum(problem.costs[v] for v in recomputed))
    union = bound.drop_stages(problem, found.drops)  # every moment's drops at once
    assert set(problem.keep) <= replay(problem, events_of(problem, union)).in_memory


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny_problems(max_n=7), st.data())
def test_fewer_nodes_writing_in_place_never_lower_the_bound(problem: RematProblem, data) -> None:
    """Overlaying a read frees memory, so marking fewer nodes as writing in place only tightens the
    moments: the bound with a mask lies between every node's overlaying and none's, and none's is
    below the brute force (whose model has no in-place writes)."""
    mask = data.draw(st.lists(st.booleans(), min_size=problem.n, max_size=problem.n))
    every, some, none = (bound.moment_bound(problem, in_place=flag).value for flag in (True, mask, False))
    assert every <= some + 1e-9 and some <= none + 1e-9
    best = brute_force(problem)
    if best is not None:
        assert none <= best - sum(problem.costs) + 1e-9


def test_only_elementwise_kernels_with_an_operand_of_their_own_shape_write_in_place() -> None:
    """The planner writes a relu over its operand, never a log-softmax over the logits (it reads them
    whole) nor a reduction, so the bound gives those bytes of their own while they run."""
    from graphc.passes import optimize
    with gc.Graph("head"):
        x = gc.input("x", shape=(8, 16))
        w = gc.param("w", shape=(16, 32))
        out = gc.sum(gc.log_softmax(gc.relu(x @ w), axis=-1) * 2.0)
    flow = optimize([out.node], [])
    nodes, _ = optimal._solver_nodes(flow)
    marked = {n.op.name: flag for n, flag in zip(nodes, optimal.writes_in_place(flow, nodes))}
    assert marked == {"matmul": False, "relu": True, "log_softmax": False, "mul": True, "sum": False}


@pytest.mark.parametrize("fraction", [0.7, 0.9])
def test_on_a_small_gpt2_step_a_moment_schedule_fits_at_the_bound(fraction: float) -> None:
    """Where the bound counts the memory the planner uses (the log-softmax holds the logits and its own
    bytes at once) and the scheduler runs what is held past a peak after it, a moment's solution fits
    the arena as it is: no schedule in any order recomputes less, so it is optimal. Counting every node
    as writing in place put the bound at a tenth of this, or at nothing."""
    from graphc.memory import planned_bytes
    from graphc.models import gpt2
    from graphc.passes import optimize
    from graphc.remat.candidates import Deadline
    from graphc.schedule import schedule
    _, outputs, updates = _step(lambda: gpt2(batch=2, layers=2, width=32, heads=2, context=32, vocab=512))
    flow = optimize([o.node for o in outputs], [(p.node, v.node) for p, v in updates.items()])
    measure = lambda f: planned_bytes(f, schedule(f))  # noqa: E731  (what compile measures)
    budget = int(fraction * measure(flow))
    candidates, found = optimal.moment_candidates(flow, budget, measure, Deadline.after(60), 10.0)
    fitting = [c.recompute_flops for c in candidates if c.planned_bytes <= budget]
    assert found.proven and found.value > 0
    assert min(fitting) == found.value


def test_the_bound_on_a_training_chain_against_its_optimum() -> None:
    """Four layers and their gradients, unit sizes and costs. One value less than storing everything
    costs one recompute (f_0, the cheapest to bring back), and the bound sees it. Two less cost three;
    the bound sees two: at the moment of g_3, f_0 and f_1 are dropped and f_1 computed again, but f_0
    is needed again for that, after the moment, which one moment cannot see."""
    chain = training_chain(4)
    peak = chain.budget
    for budget, least, bounded in ((peak, 0.0, 0.0), (peak - 1, 1.0, 1.0), (peak - 2, 3.0, 2.0)):
        problem = RematProblem(chain.sizes, chain.costs, chain.deps, chain.keep, budget)
        assert brute_force(problem) - sum(problem.costs) == least
        assert bound.moment_bound(problem).value == bounded


def test_a_budget_no_moment_meets_is_reported_infeasible() -> None:
    chain = training_chain(4)
    tight = RematProblem(chain.sizes, chain.costs, chain.deps, chain.keep, budget=1)
    assert brute_force(tight) is None
    assert not bound.moment_bound(tight).feasible


def _step(build):
    graph, values = build()
    loss = values["loss"]
    return graph, [loss], gc.sgd(loss, values["params"], 0.01)


def test_compile_reports_the_bound_and_a_moment_schedule_trains_as_store_all_does() -> None:
    """On an attention step at 80 % of store-all's arena the moment schedule is chosen, recomputes
    exactly the bound (so it is optimal over every order), and trains as store-all does. The two
    programs are of two builds of the graph: the programs of one graph share its stored params."""
    build = lambda: _step(lambda: zoo.attention(seq=32, dim=16, dtype="float64"))  # noqa: E731
    graph, outputs, updates = build()
    top = gc.compile(outputs, updates=updates, bind=False).memory.planned_bytes
    prog = gc.compile(outputs, updates=updates, remat="optimal", memory_budget=int(0.8 * top), time_limit=20)
    report = prog.remat
    assert report.chosen.startswith("moment schedule") and prog.memory.planned_bytes <= 0.8 * top
    assert report.bound.proven and 0 < report.bound.value == report.recompute_flops == prog.cost.recompute_flops
    assert report.bound_gap == 0.0
    assert "bound: no schedule within the budget, in any order, recomputes less than" in str(report)
    other_graph, other_outputs, other_updates = build()
    reference = gc.compile(other_outputs, updates=other_updates)
    data = zoo.feeds(graph)
    for _ in range(2):  # two steps: the updated params feed the second
        for got, want in zip(prog.run(data), reference.run(data)):
            np.testing.assert_array_equal(got, want)
    for name in graph.params:
        np.testing.assert_array_equal(prog.params[name], reference.params[name])


def test_the_bound_is_below_what_compile_chooses() -> None:
    _, outputs, updates = _step(lambda: zoo.residual_mlp(depth=6, width=16, batch=64))
    top = gc.compile(outputs, updates=updates, bind=False).memory.planned_bytes
    report = gc.compile(outputs, updates=updates, bind=False, remat="optimal", memory_budget=int(0.6 * top),
                        time_limit=2).remat
    assert report.bound.feasible and 0 < report.bound.value <= report.recompute_flops
    assert 0.0 <= report.bound_gap < 1.0


def test_above_the_size_limit_no_bound_is_computed_and_none_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(optimal, "BOUND_MAX_NODES", 10)
    _, outputs, updates = _step(lambda: zoo.residual_mlp(depth=2, width=16, batch=64))
    top = gc.compile(outputs, updates=updates, bind=False).memory.planned_bytes
    report = gc.compile(outputs, updates=updates, bind=False, remat="optimal", memory_budget=int(0.7 * top),
                        time_limit=2).remat
    assert report.bound is None and report.bound_gap is None and "bound:" not in str(report)


def test_a_bound_of_nothing_says_it_cannot_measure_the_gap() -> None:
    """A moment bound of 0 rules nothing out: the report says so, with no gap, rather than "less than 0 FLOPs"."""
    report = RematReport("optimal", "block DP", 1_000, 4_096, 3, budget=4_096, bound=RecomputeBound(0.0, None, 0.25))
    assert report.bound_gap is None
    line = str(report).splitlines()[-1]
    assert line.startswith("bound: 0 FLOPs: in another order") and "not known" in line and "less than" not in line
    nonzero = RematReport("optimal", "block DP", 1_000, 4_096, 3, budget=4_096, bound=RecomputeBound(250.0, 7, 0.25))
    assert nonzero.bound_gap == 0.75 and "recomputes less than 250 FLOPs (gap 75.0%" in str(nonzero)
