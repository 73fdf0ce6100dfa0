"""Memory against recompute: every policy swept over budgets, and the MILP's solve time.

For each graph, the training step ``[ℓ, ∂ℓ/∂w …]`` is compiled with
``remat="none"`` (store all), which gives the top of the sweep, and the least
feasible budget of each policy is read from the GraphError an impossible
budget raises. Budgets are then swept between the least feasible and store-all;
for every policy and budget the table gives the planned arena, the recompute as
a fraction of one forward pass, and the measured time of a step relative to
store-all (medians of runs alternating with the store-all program's).

Then the targets of the recompute issue on a chain of n = 100 layers, the
MILP's solve time against graph size (abstract training chains and layered
DAGs), and the MILP and LP rounding on graphc's own training graphs. The
frontier (peak memory against extra compute) is saved as a chart.

    python benchmarks/remat.py [--quick] [--plot out/bench/remat_frontier.png]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

import graphc as gc
from graphc import zoo
from graphc.compile import REMAT_POLICIES

POLICIES = [p for p in REMAT_POLICIES if p != "none"]
LEAST = re.compile(r"least feasible budget for it is ([\d,]+) B")


def graphs(quick: bool) -> dict[str, Callable[[], tuple[gc.Graph, dict]]]:
    """Graphs whose activations, not their gradients, dominate memory (a large batch)."""
    chosen = {
        "chain-100": lambda: zoo.chain(100, width=32, batch=512),
        "residual": lambda: zoo.residual_mlp(depth=16, width=32, batch=512),
        "unet": lambda: zoo.unet(),
        "attention": lambda: zoo.attention(seq=64, dim=32),
    }
    if quick:
        chosen = {"chain-24": lambda: zoo.chain(24, width=16, batch=256), "residual": lambda: zoo.residual_mlp(depth=6, width=16, batch=256)}
    return chosen


def least_feasible(outputs: list[gc.Value], policy: str) -> int:
    try:
        return gc.compile(outputs, remat=policy, memory_budget=0).memory.planned_bytes
    except gc.GraphError as err:
        match = LEAST.search(str(err))
        if not match:
            raise
        return int(match.group(1).replace(",", ""))


def step_ratio(prog: gc.Program, base: gc.Program, feeds: dict, repeats: int) -> float:
    """Median step time of ``prog`` over that of ``base``, the two run alternately so that
    both see the same load on a shared machine."""
    prog.run(feeds)
    base.run(feeds)
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeats):
        for which, program in enumerate((prog, base)):
            start = time.perf_counter()
            program.run(feeds)
            times[which].append(time.perf_counter() - start)
    return statistics.median(times[0]) / statistics.median(times[1])


def sweep(name: str, build: Callable, points: int, repeats: int) -> list[dict]:
    graph, values = build()
    outputs = zoo.training_outputs(values)
    data = zoo.feeds(graph)
    store_all = gc.compile(outputs)
    top = store_all.memory.planned_bytes
    lows = {p: least_feasible(outputs, p) for p in POLICIES}
    low = min(lows.values())
    budgets = sorted({int(low + (top - low) * k / (points - 1)) for k in range(points)})
    rows = [_row(name, "none", top, store_all, 1.0)]
    for policy in POLICIES:
        for budget in budgets:
            if budget < lows[policy]:
                continue
            prog = gc.compile(outputs, remat=policy, memory_budget=budget)
            rows.append(_row(name, policy, budget, prog, step_ratio(prog, store_all, data, repeats)))
    print(f"\n{name}: store-all arena {top:,d} B; least feasible: " + ", ".join(f"{p} {b:,d} B" for p, b in lows.items()))
    print(f"  {'policy':8s} {'budget':>12s} {'planned':>12s} {'planned/all':>11s} {'recompute/fwd':>13s} {'step/all':>9s}")
    for r in rows:
        print(f"  {r['policy']:8s} {r['budget']:>12,d} {r['planned_bytes']:>12,d} {r['planned_bytes'] / top:>11.3f} "
              f"{r['recompute_flops'] / r['forward_flops']:>13.3f} {r['step_ratio']:>9.2f}")
    return rows


def _row(graph: str, policy: str, budget: int, prog: gc.Program, step_ratio: float) -> dict:
    return {
        "graph": graph, "policy": policy, "budget": budget, "planned_bytes": prog.memory.planned_bytes,
        "recompute_flops": prog.cost.recompute_flops, "forward_flops": prog.cost.forward_flops, "step_ratio": step_ratio,
    }


def chain_targets() -> None:
    """On a chain of n = 100: √n stores ≤ 2.5·√n activations for ≤ 1 extra forward."""
    n, batch, width = 100, 512, 32
    graph, values = zoo.chain(n, width=width, batch=batch)
    prog = gc.compile(zoo.training_outputs(values), remat="sqrt")
    activation = batch * width * 4
    peak = int(np.argmax(prog.memory.live_bytes))
    stored = sum(1 for iv in prog.memory.intervals if iv.start <= peak <= iv.end and iv.nbytes == activation)
    extra = prog.cost.recompute_flops / prog.cost.forward_flops
    print(f"\nchain n={n}, sqrt: {stored} activations live at the peak (target <= {2.5 * math.sqrt(n):.0f}), "
          f"recompute {extra:.2f} forward passes (target <= 1)")


def time_guarantees() -> None:
    """Wall time of the remat stage in its two guaranteed cases: an infeasible budget on a
    training graph of more than 10^4 nodes (requirement: <= 2 s), and ``time_limit=2`` on
    solves that need longer (requirement: <= 2.2 s)."""
    from graphc import checkmate  # noqa: F401  SciPy's import is process start, not the stage
    from graphc import passes, remat
    from graphc.memory import plan_memory
    from graphc.schedule import schedule

    def measure(flow: passes.Dataflow) -> int:
        return plan_memory(flow, schedule(flow)).planned_bytes

    def timed(flow: passes.Dataflow, policy: str, budget: int, time_limit: float = 60.0) -> tuple[float, str]:
        start = time.perf_counter()
        try:
            _, report = remat.rematerialize(flow, policy, budget, measure, time_limit)
            outcome = f"{report.chosen}; recompute {report.recompute_flops:,d} FLOPs"
        except gc.GraphError:
            outcome = "GraphError"
        return time.perf_counter() - start, outcome

    _, values = zoo.chain(800, width=4, batch=2)
    flow = passes.optimize([v.node for v in zoo.training_outputs(values)])
    floor = remat.least_budget_bound(flow)
    print(f"\ninfeasible budget ({floor - 1:,d} B, floor {floor:,d} B) on {len(flow.nodes):,d} nodes (target <= 2 s):")
    for policy in REMAT_POLICIES:
        seconds, outcome = timed(flow, policy, floor - 1)
        print(f"  {policy:10s} {seconds:6.2f} s  {outcome}")
    _, values = zoo.residual_mlp(depth=6, width=16, batch=64)
    flow = passes.optimize([v.node for v in zoo.training_outputs(values)])
    top, floor = measure(flow), remat.least_budget_bound(flow)
    budget = int(floor + (top - floor) * 0.45)
    print(f"time_limit=2 on residual-6 ({len(flow.nodes)} nodes, budget {budget:,d} B; target <= 2.2 s):")
    for policy in ("optimal", "optimal-lp"):
        seconds, outcome = timed(flow, policy, budget, 2.0)
        print(f"  {policy:10s} {seconds:6.2f} s  {outcome}")


def solver_times(quick: bool) -> None:
    try:
        from graphc import checkmate
    except ImportError:
        print("\n(the MILP is not available)")
        return
    print()
    checkmate.benchmark_solve_times(sizes=(10, 25, 50) if quick else (10, 25, 50, 100, 200, 500))


def solver_graphs(quick: bool) -> dict[str, Callable[[], tuple[gc.Graph, dict]]]:
    """graphc training graphs small enough for the exact MILP (<= 150 nodes after fusion)."""
    chosen = {
        "seed": zoo.ZOO["seed"],
        "chain-8": lambda: zoo.chain(8, width=16, batch=64),
        "residual-4": lambda: zoo.residual_mlp(depth=4, width=16, batch=64),
        "attention": lambda: zoo.attention(seq=64, dim=32),
        "unet": zoo.unet,
    }
    return {k: chosen[k] for k in ("seed", "chain-8")} if quick else chosen


def solver_on_graphs(quick: bool, time_limit: float = 60.0) -> list[dict]:
    """The MILP and LP rounding on real training graphs, at budgets 1/4, 1/2, 3/4 of the way
    from the least feasible (proven by the MILP, min peak) to store-all.

    Columns: values the solver schedules, nodes after fusion (forward ones may be
    recomputed), the budget, the MILP's status, seconds and recompute (FLOPs beyond one
    evaluation of every node), LP rounding's seconds and recompute over the MILP's.
    """
    try:
        from graphc import checkmate
    except ImportError:
        print("\n(the MILP is not available)")
        return []
    from dataclasses import replace

    from graphc.passes import optimize
    from graphc.remat import remat_problem

    print(f"\nMILP and LP rounding on graphc training graphs (time limit {time_limit:.0f} s)")
    print(f"  {'graph':11s} {'values':>6s} {'fused':>5s} {'fwd':>4s} {'budget':>9s} {'of range':>8s} {'MILP':>8s} "
          f"{'MILP s':>7s} {'recompute':>10s} {'LP s':>6s} {'LP/MILP':>8s}")
    rows = []
    for name, build in solver_graphs(quick).items():
        _, values = build()
        flow = optimize([v.node for v in zoo.training_outputs(values)])
        problem, nodes, _ = remat_problem(flow, 0)
        top = checkmate.store_all_peak(problem)
        try:
            least = checkmate.minimal_least_budget(problem, time_limit=time_limit)
        except checkmate.LeastBudgetTimeout as err:
            least = err.upper
        for fraction in (0.25, 0.5, 0.75):
            budgeted = replace(problem, budget=int(least + (top - least) * fraction))
            exact = checkmate.solve_milp(budgeted, time_limit=time_limit)
            approx = checkmate.solve_lp_rounding(budgeted, time_limit=time_limit)
            row = {"graph": name, "values": len(nodes), "fused": problem.n, "forward": int(problem.may_recompute().sum()),
                   "budget": budgeted.budget, "fraction": fraction, "status": exact.status,
                   "milp_s": exact.solve_seconds + exact.build_seconds,
                   "recompute": exact.cost - sum(problem.costs), "lp_s": approx.solve_seconds + approx.build_seconds,
                   "lp_extra": checkmate.recompute_ratio(budgeted, approx, exact)}
            rows.append(row)
            print(f"  {name:11s} {row['values']:>6d} {row['fused']:>5d} {row['forward']:>4d} {row['budget']:>9,d} "
                  f"{fraction:>8.2f} {row['status']:>8s} {row['milp_s']:>7.1f} {row['recompute']:>10,.0f} "
                  f"{row['lp_s']:>6.1f} {row['lp_extra']:>8.3f}", flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    try:
        from graphc.plots import plot_frontier
    except ImportError:
        print("(graphc.plots is not available: no chart)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_frontier(rows, path)
    print(f"chart: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graphs, few budgets")
    parser.add_argument("--plot", type=Path, default=Path("out/bench/remat_frontier.png"))
    args = parser.parse_args(argv)
    rows = []
    for name, build in graphs(args.quick).items():
        rows += sweep(name, build, points=4 if args.quick else 8, repeats=3 if args.quick else 7)
    chain_targets()
    time_guarantees()
    solver_times(args.quick)
    solver_on_graphs(args.quick)
    plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
