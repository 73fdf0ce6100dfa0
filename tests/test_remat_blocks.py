"""The chain of blocks: kinds solved once, the DP's schedules against store-all, √n, revolve and the MILP."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import graphc as gc
from graphc import passes, remat, zoo
from graphc.memory import plan_memory
from graphc.plan import lower
from graphc.remat import blocks, optimal, policies
from graphc.remat.candidates import Deadline, recompute_flops
from graphc.schedule import schedule


def _measure(flow: passes.Dataflow) -> int:
    return plan_memory(flow, schedule(flow)).planned_bytes


def _program(flow: passes.Dataflow, graph: gc.Graph) -> gc.Program:
    order = schedule(flow)
    plan = lower(graph.name, flow, order, plan_memory(flow, order))
    return gc.Program(plan, {name: node.data for name, node in graph.params.items()})


def _scoped(blocks_count: int = 3, width: int = 8):
    """Two tanh layers per ``gc.scope("block{i}")``: several segments per block."""
    with gc.Graph("scoped") as g:
        h = gc.input("x", (4, width), dtype="float64")
        params = []
        for i in range(blocks_count):
            with gc.scope(f"block{i}"):
                for j in range(2):
                    w = gc.param(f"w{i}{j}", (width, width), dtype="float64")
                    params.append(w)
                    h = gc.tanh(h @ w)
        loss = gc.sum(h * h)
    return g, {"loss": loss, "params": params}


def _mul_chain(n: int):
    """x_i = w_i · x_{i-1}, scalar w_i: one node per stage, whose backward reads its input (Revolve's
    model), and scalar gradients, so that the activations make the peak."""
    with gc.Graph(f"mul-chain-{n}") as g:
        h = gc.input("x", (64,), dtype="float64")
        params = []
        for i in range(n):
            w = gc.param(f"w{i}", (), dtype="float64", init=1.0 + 0.01 * i)
            params.append(w)
            h = h * w
        loss = gc.sum(h * h)
    return g, {"loss": loss, "params": params}


def _two_layer_residual(depth: int = 3, width: int = 8):
    """h ← h + tanh(tanh(h·W1)·W2): one segment per block, whose backward reads two tanh outputs, so
    that a stage's options keep one and recompute the other."""
    with gc.Graph("two-layer-residual") as g:
        h = gc.input("x", (16, width), dtype="float64")
        params = []
        for i in range(depth):
            w1 = gc.param(f"w{i}a", (width, width), dtype="float64")
            w2 = gc.param(f"w{i}b", (width, width), dtype="float64")
            params += [w1, w2]
            h = h + gc.tanh(gc.tanh(h @ w1) @ w2)
        loss = gc.sum(h * h)
    return g, {"loss": loss, "params": params}


GRAPHS = {
    "chain-5": lambda: zoo.chain(5, width=8, batch=16, dtype="float64"),
    "residual-4": lambda: zoo.residual_mlp(depth=4, width=8, batch=16, dtype="float64"),
    "scoped-3": _scoped,
    "two-layer-residual-3": _two_layer_residual,
}


def _chain_of(build):
    graph, values = build()
    outputs = zoo.training_outputs(values)
    flow = passes.optimize([v.node for v in outputs])
    forward = remat.forward_nodes(flow)
    segments = remat.segments_between(forward, remat.separators(flow, forward))
    return graph, outputs, flow, segments


def _schedules(flow, segments, at_most: int = 6):
    """The DP's schedules at the levels where its least cost changes (``at_most`` of them, evenly
    spaced, the least level first), with their flows."""
    chain = blocks.block_chain(flow, segments)
    dp = blocks.solve_chain(chain)
    top = dp.top()
    levels = [m for m in range(dp.least_level(), len(top)) if m == dp.least_level() or top[m] < top[m - 1]]
    levels = [levels[i] for i in sorted({round(k * (len(levels) - 1) / (at_most - 1)) for k in range(at_most)})]
    return chain, dp, [(m, blocks.build_schedule(flow, chain, dp.actions(m))) for m in levels]


@pytest.mark.parametrize("name", GRAPHS)
def test_every_schedule_of_the_block_dp_gives_the_gradients_of_store_all(name):
    graph, outputs, flow, segments = _chain_of(GRAPHS[name])
    data = zoo.feeds(graph)
    reference = gc.compile(outputs).run(data)
    chain, dp, schedules = _schedules(flow, segments)
    assert len(schedules) >= 2 and recompute_flops(schedules[0][1]) > 0  # the least level recomputes
    if name.startswith("two-layer"):  # some schedule keeps part of a stage and recomputes the rest
        assert any(action[0] == "keep" and chain.stages[action[1]].options[action[2]].kept
                   and chain.stages[action[1]].options[action[2]].recompute
                   for m, _ in schedules for action in dp.actions(m))
    for _, rewritten in schedules:
        for got, want in zip(_program(rewritten, graph).run(data), reference):
            np.testing.assert_array_equal(got, want)


def test_a_scoped_graph_makes_one_block_per_scope():
    _, _, flow, segments = _chain_of(_scoped)
    chain = blocks.block_chain(flow, segments)
    scoped = [b for b in chain.blocks if chain.stages[b[0]].nodes[0].scope]
    assert len(scoped) == 3 and all(len(b) >= 2 for b in scoped)  # a tanh layer is two segments or more
    for i, block in enumerate(scoped):
        assert {n.scope for k in block for n in chain.stages[k].nodes} == {f"block{i}"}


def test_repeated_blocks_are_solved_once(monkeypatch):
    solved = []
    options = blocks._options

    def counted(flow, segment, *rest):
        solved.append(segment)
        return options(flow, segment, *rest)

    monkeypatch.setattr(blocks, "_options", counted)
    _, _, flow, segments = _chain_of(lambda: zoo.residual_mlp(depth=12, width=8, batch=16))
    chain = blocks.block_chain(flow, segments)
    kinds = {st.kind for st in chain.stages}
    assert len(solved) == chain.solves == len(kinds) <= 9 < len(chain.stages)  # the loss: log_softmax, nll_loss
    assert max(sum(st.kind == k for st in chain.stages) for k in kinds) >= 10  # the residual blocks: one kind
    for stage in chain.stages:  # a kind's options fit each of its stages, position by position
        assert all(max(o.recompute, default=-1) < len(stage.nodes) for o in stage.options)


@pytest.mark.parametrize("name", ["residual-4", "two-layer-residual-3"])
def test_the_dp_cost_never_rises_with_memory_and_its_schedule_recomputes_what_it_costs(name):
    """The rewritten flow recomputes exactly what the DP counted: every value an option leaves out is
    computed again, and nothing else."""
    _, _, flow, segments = _chain_of(GRAPHS[name])
    chain, dp, schedules = _schedules(flow, segments)
    top = dp.top()
    assert np.all(np.diff(top[np.isfinite(top)]) <= 0)
    last = chain.stages[-1]  # reversed alone as its first run: the model counts only what its backward reads
    forward = sum(st.flops for st in chain.stages)
    for m, rewritten in schedules:
        assert recompute_flops(rewritten) == dp.best(m) - last.need_flops + last.flops - forward


def _model_events(problem_nodes, problem, rewritten):
    """The rewritten flow's computes as events of the whole-graph abstract problem (frees after last reads)."""
    from graphc.remat.problem import _events, _lifetimes
    index = {n: i for i, n in enumerate(problem_nodes)}
    order = [index[n.recompute_of or n] for n in rewritten.nodes if (n.recompute_of or n) in index]
    return _events(*_lifetimes(problem, order))


def _whole_graph_problem(flow):
    """The abstract problem of the whole training graph, unfused (the MILP's schedules include every DP's)."""
    from graphc.memory.analysis import align
    from graphc.remat.problem import RematProblem
    nodes, stands_for = optimal._solver_nodes(flow)
    index = {n: i for i, n in enumerate(nodes)}
    deps = [sorted({index[stands_for[a]] for a in flow.args[n] if stands_for.get(a) in index}) for n in nodes]
    keep = sorted({index[stands_for[r]] for r in flow.roots if stands_for.get(r) in index})
    forward = set(remat.forward_nodes(flow))
    problem = RematProblem([0 if n in flow.writes else align(n.aval.nbytes) for n in nodes],
                           [float(blocks.node_flops(n, flow)) for n in nodes], deps, keep, 0,
                           recomputable=[n in forward for n in nodes])
    return nodes, problem


def test_the_whole_graph_milp_recomputes_no_more_than_the_block_dp_at_the_dp_schedules_peak():
    """The whole-graph solver as a check: a DP schedule replayed on the whole-graph abstract problem
    (unfused, so that it is one of the MILP's schedules) recomputes what the rewritten flow counts,
    and at the peak it reaches there the MILP's proven optimum recomputes no more. (The DP's memory
    model is not the MILP's: the DP optimises the arena it estimates, so the two need not be equal.)"""
    from graphc.remat.exact import solve_milp
    from graphc.remat.problem import replay
    _, _, flow, segments = _chain_of(lambda: _mul_chain(3))
    nodes, problem = _whole_graph_problem(flow)
    _, _, schedules = _schedules(flow, segments)
    _, rewritten = schedules[0]  # the least memory: the MILP must recompute too
    played = replay(problem, _model_events(nodes, problem, rewritten))
    forward_cost = sum(problem.costs)
    assert played.cost - forward_cost == recompute_flops(rewritten) > 0
    best = solve_milp(replace(problem, budget=played.peak), time_limit=20)
    assert best.status == "optimal" and 0 < best.cost - forward_cost <= recompute_flops(rewritten)


def _only_blocks(monkeypatch):
    """The optimal policy with the chain DP as its only schedules besides store-all."""
    monkeypatch.setattr(policies, "_sqrt_candidates", lambda *a, **k: [])
    monkeypatch.setattr(policies, "_revolve_candidates", lambda *a, **k: [])
    monkeypatch.setattr(policies, "_solver_candidate",
                        lambda *a, **k: ([], optimal.SolverOutcome("milp", "not run", why="switched off")))
    blocks._FOUND.clear()


def test_compile_with_the_block_dp_plans_within_the_budget_and_says_so(monkeypatch):
    _only_blocks(monkeypatch)
    graph, values = zoo.residual_mlp(depth=6, width=8, batch=32)
    outputs, updates = [values["loss"]], gc.sgd(values["loss"], values["params"], 0.1)
    full = gc.compile(outputs, updates=updates, bind=False).memory.planned_bytes
    budget = int(full * 0.6)
    prog = gc.compile(outputs, updates=updates, remat="optimal", memory_budget=budget, time_limit=5, bind=False)
    assert prog.memory.planned_bytes <= budget
    assert prog.remat.chosen.startswith("block DP (") and prog.cost.recompute_flops > 0
    assert prog.remat.chain_dp.solver == "blocks" and prog.remat.chain_dp.objective == prog.remat.recompute_flops
    assert "no bound proven" in prog.remat.chain_dp.why and prog.remat.chain_dp.bound is None
    assert prog.remat.outcome.status == "not run" and "block DP" in str(prog.remat) and "switched off" in str(prog.remat)


@pytest.mark.parametrize("build", [lambda: zoo.chain(6, width=8, batch=32),
                                   lambda: zoo.residual_mlp(depth=6, width=8, batch=32)])
def test_the_block_dp_fits_where_sqrt_or_revolve_fit_and_optimal_recomputes_no_more(build):
    """√n and revolve checkpoint at segment boundaries: at the arena each of their settings plans,
    the DP's candidates include one that fits it, and the "optimal" policy recomputes no more.

    (The DP alone may recompute more than √n: reversing a stage alone, it computes the stage's output
    again, where √n reads its run's kept last state, held until the run's backward.)"""
    from graphc.remat.binomial import _revolve_candidates
    from graphc.remat.sqrt import _sqrt_candidates
    _, _, flow, segments = _chain_of(build)
    store_all = _measure(flow)
    constructed = _sqrt_candidates(flow, segments, 1)[2:4] + _revolve_candidates(flow, segments, 1)[:1]
    for candidate in constructed:
        arena = _measure(candidate.build())
        if arena >= store_all:
            continue
        blocks._FOUND.clear()
        found, _ = blocks.block_candidates(flow, segments, arena, store_all, _measure, Deadline.after(10))
        assert any(c.planned_bytes <= arena for c in found), candidate.label
        _, report = policies.rematerialize(flow, "optimal", arena, _measure, time_limit=1)
        assert report.planned_bytes <= arena and report.recompute_flops <= candidate.recompute_flops, candidate.label
