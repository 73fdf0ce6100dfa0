"""Memory against recompute: every policy swept over budgets, and the MILP's solve time.

The sweep itself ships in the package (:mod:`graphc.bench`, also ``graphc bench
remat``): for each built-in training step — the loss with ``gc.sgd`` updates
compiled in — store-all gives the top of the range, each policy's least feasible
budget its bottom, and every (graph, policy, budget) point is a task on
``dask.distributed`` (a local cluster by default) that compiles the plan and
times it against store-all, runs alternating in one process. The table gives
the planned arena, the recompute as a fraction of one forward pass and the
measured step-time overhead; the chart plots memory against both; the figure
of merit is the memory reduction of the ResNet step at <= 12 % measured time.

What stays here is what only this benchmark publishes: the frontiers "before"
(:data:`BEFORE`, measured on the earlier planner, which computed every update
after the whole backward pass; ``--before`` prints such a table for whichever
graphc is on the path, even one without :mod:`graphc.bench`), the targets of
the recompute issue on a chain of n = 100 layers, the remat stage's time
guarantees, the MILP's solve time against graph size, and the MILP and LP
rounding on graphc's own training graphs.

    python benchmarks/remat.py [--quick] [--serial | --scheduler ADDRESS] [--plot out/bench/remat_frontier.png]
    PYTHONPATH=<checkout of another commit> python benchmarks/remat.py --before [--quick]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

import graphc as gc
from graphc import zoo
from graphc.compile import REMAT_POLICIES

POLICIES = [p for p in REMAT_POLICIES if p != "none"]

BEFORE: dict = {
    "commit": "ef40fa4ced7cec3baaa246eb3997d4e68cb83ca4",
    "graphs": {
        "chain-24": {
            "store_all": 830984,
            "least": {'sqrt': 815112, 'revolve': 815112, 'optimal': 815112, 'optimal-lp': 815112},
            "points": {
                "sqrt": [(815112, 815112, 0.0191), (817379, 815112, 0.0191), (819646, 815112, 0.0191), (821914, 815112, 0.0191), (824181, 815112, 0.0191), (826449, 815112, 0.0191), (828716, 815112, 0.0191), (830984, 830984, 0.0)],
                "revolve": [(815112, 815112, 6.8241), (817379, 815112, 6.8241), (819646, 815112, 6.8241), (821914, 815112, 6.8241), (824181, 815112, 6.8241), (826449, 815112, 6.8241), (828716, 815112, 6.8241), (830984, 830984, 0.0)],
                "optimal": [(815112, 815112, 0.0191), (817379, 815112, 0.0191), (819646, 815112, 0.0191), (821914, 815112, 0.0191), (824181, 815112, 0.0191), (826449, 815112, 0.0191), (828716, 815112, 0.0191), (830984, 830984, 0.0)],
                "optimal-lp": [(815112, 815112, 0.0191), (817379, 815112, 0.0191), (819646, 815112, 0.0191), (821914, 815112, 0.0191), (824181, 815112, 0.0191), (826449, 815112, 0.0191), (828716, 815112, 0.0191), (830984, 830984, 0.0)],
            },
        },
        "chain-100": {
            "store_all": 6684676,
            "least": {'sqrt': 1334404, 'revolve': 618816, 'optimal': 618816, 'optimal-lp': 618816},
            "points": {
                "sqrt": [(1485367, 1465476, 0.8533), (2351918, 2228228, 0.8069), (3218470, 2638212, 0.6803), (4085021, 3864452, 0.5398), (4951573, 3864452, 0.5398), (5818124, 5046276, 0.5179), (6684676, 6684676, 0.0)],
                "revolve": [(618816, 618816, 152.3614), (1485367, 1475716, 1.331), (2351918, 1970948, 1.018), (3218470, 2822916, 0.9486), (4085021, 3412740, 0.8992), (4951573, 4133636, 0.8393), (5818124, 5051140, 0.7694), (6684676, 6684676, 0.0)],
                "optimal": [(618816, 618816, 152.3614), (1485367, 1465476, 0.8533), (2351918, 2228228, 0.8069), (3218470, 2638212, 0.6803), (4085021, 3864452, 0.5398), (4951573, 3864452, 0.5398), (5818124, 5046276, 0.5179), (6684676, 6684676, 0.0)],
                "optimal-lp": [(618816, 618816, 152.3614), (1485367, 1465476, 0.8533), (2351918, 2228228, 0.8069), (3218470, 2638212, 0.6803), (4085021, 3864452, 0.5398), (4951573, 3864452, 0.5398), (5818124, 5046276, 0.5179), (6684676, 6684676, 0.0)],
            },
        },
        "residual": {
            "store_all": 2162756,
            "least": {'sqrt': 730692, 'revolve': 261316, 'optimal': 261316, 'optimal-lp': 261316},
            "points": {
                "sqrt": [(804584, 730692, 0.9694), (1076218, 804676, 0.9054), (1347853, 1179716, 0.4879), (1619487, 1179716, 0.4879), (1891121, 1179716, 0.4879), (2162756, 2162756, 0.0)],
                "revolve": [(261316, 261316, 10.392), (532950, 502340, 1.7049), (804584, 760260, 1.46), (1076218, 1054148, 1.154), (1347853, 1185220, 0.8908), (1619487, 1185220, 0.8908), (1891121, 1185220, 0.8908), (2162756, 2162756, 0.0)],
                "optimal": [(261316, 261316, 10.392), (532950, 502340, 1.7049), (804584, 720964, 0.6807), (1076218, 1048644, 0.3317), (1347853, 1310788, 0.0384), (1619487, 1572932, 0.0164), (1891121, 1835076, 0.0091), (2162756, 2162756, 0.0)],
                "optimal-lp": [(261316, 261316, 10.392), (532950, 502340, 1.7049), (804584, 720964, 0.6807), (1076218, 1048644, 0.3317), (1347853, 1310788, 0.0384), (1619487, 1572932, 0.0164), (1891121, 1835076, 0.0091), (2162756, 2162756, 0.0)],
            },
        },
        "unet": {
            "store_all": 269828,
            "least": {'sqrt': 269828, 'revolve': 263876, 'optimal': 263876, 'optimal-lp': 263876},
            "points": {
                "sqrt": [(269828, 269828, 0.0)],
                "revolve": [(263876, 263876, 3.9314), (264726, 263876, 3.9314), (265576, 263876, 3.9314), (266426, 263876, 3.9314), (267277, 263876, 3.9314), (268127, 263876, 3.9314), (268977, 263876, 3.9314), (269828, 269828, 0.0)],
                "optimal": [(263876, 263876, 3.9314), (264726, 263876, 3.9314), (265576, 263876, 3.9314), (266426, 263876, 3.9314), (267277, 263876, 3.9314), (268127, 263876, 3.9314), (268977, 263876, 3.9314), (269828, 269828, 0.0)],
                "optimal-lp": [(263876, 263876, 3.9314), (264726, 263876, 3.9314), (265576, 263876, 3.9314), (266426, 263876, 3.9314), (267277, 263876, 3.9314), (268127, 263876, 3.9314), (268977, 263876, 3.9314), (269828, 269828, 0.0)],
            },
        },
        "attention": {
            "store_all": 73988,
            "least": {'sqrt': 73988, 'revolve': 73988, 'optimal': 73988, 'optimal-lp': 73988},
            "points": {
                "sqrt": [(73988, 73988, 0.0)],
                "revolve": [(73988, 73988, 0.0)],
                "optimal": [(73988, 73988, 0.0)],
                "optimal-lp": [(73988, 73988, 0.0)],
            },
        },
        "residual-6": {
            "store_all": 223940,
            "least": {'sqrt': 118788, 'revolve': 55300, 'optimal': 55300, 'optimal-lp': 55300},
            "points": {
                "sqrt": [(167726, 142020, 0.4383), (223940, 223940, 0.0)],
                "revolve": [(55300, 55300, 5.2298), (111513, 100100, 1.2426), (167726, 147524, 0.7021), (223940, 223940, 0.0)],
                "optimal": [(55300, 55300, 5.2298), (111513, 104576, 0.6043), (167726, 163908, 0.034), (223940, 223940, 0.0)],
                "optimal-lp": [(55300, 55300, 5.2298), (111513, 104576, 0.6043), (167726, 163908, 0.034), (223940, 223940, 0.0)],
            },
        },
    },
}
"""The frontiers of the same training steps measured on the earlier planner (commit below),
which computed each update into the arena after the whole backward pass and copied it into
the stored param at the end: ``store_all`` arena, each policy's ``least`` feasible budget,
and ``points``: per policy, (budget, planned arena, recompute / forward). Printed by ``--before``
with that commit on the path; never recomputed here."""
LEAST = re.compile(r"least feasible budget for it is ([\d,]+) B")
LR = 0.01
"""The step size of the training steps' ``gc.sgd`` updates (it changes no size)."""


def graphs(quick: bool) -> dict[str, Callable[[], tuple[gc.Graph, dict]]]:
    """The zoo graphs of :data:`BEFORE` as ``(graph, values)`` builders, for ``--before`` on a graphc
    that may predate :mod:`graphc.bench` (whose ``steps`` module builds the same graphs)."""
    chain_24 = {"chain-24": lambda: zoo.chain(24, width=64, batch=32, dtype="float64")}
    if quick:
        return {**chain_24, "residual-6": lambda: zoo.residual_mlp(depth=6, width=16, batch=256)}
    return {
        **chain_24,
        "chain-100": lambda: zoo.chain(100, width=32, batch=512),
        "residual": lambda: zoo.residual_mlp(depth=16, width=32, batch=512),
        "unet": lambda: zoo.unet(),
        "attention": lambda: zoo.attention(seq=64, dim=32),
    }


TrainingStep = tuple[list[gc.Value], dict]


def training_step(values: dict) -> TrainingStep:
    """The outputs and updates of one SGD step: only the loss is returned, every param is updated."""
    loss = values["loss"]
    return [loss], gc.sgd(loss, values["params"], LR)


def compile_step(step: TrainingStep, **options) -> gc.Program:
    outputs, updates = step
    return gc.compile(outputs, updates=updates, **options)


def least_feasible(step: TrainingStep, policy: str) -> int:
    try:
        return compile_step(step, remat=policy, memory_budget=0).memory.planned_bytes
    except gc.GraphError as err:
        match = LEAST.search(str(err))
        if not match:
            raise
        return int(match.group(1).replace(",", ""))


def frontier(build: Callable, points: int) -> tuple[gc.Program, dict[str, int], list[tuple[str, int, gc.Program | str]]]:
    """Store-all, each policy's least feasible budget, and one program per (policy, budget)
    for ``points`` budgets from the least feasible to store-all — or, where compiling fails
    with anything but a GraphError, that failure's text in the program's place."""
    _, values = build()
    step = training_step(values)
    store_all = compile_step(step)
    top = store_all.memory.planned_bytes
    lows = {p: least_feasible(step, p) for p in POLICIES}
    low = min(lows.values())
    budgets = sorted({int(low + (top - low) * k / (points - 1)) for k in range(points)})
    todo = [(policy, budget) for policy in POLICIES for budget in budgets if budget >= lows[policy]]
    return store_all, lows, [(policy, budget, compile_or_failure(step, policy, budget))
                             for policy, budget in tqdm(todo, desc="points", file=sys.stderr, disable=None, leave=False)]


def compile_or_failure(step: TrainingStep, policy: str, budget: int) -> gc.Program | str:
    try:
        return compile_step(step, remat=policy, memory_budget=budget)
    except gc.GraphError:
        raise
    except Exception as err:  # noqa: BLE001  a defect to report, not a reason to lose the other points
        return f"FAILED: {type(err).__name__}: {err}"


def compare_with_before(name: str, rows: list[dict]) -> str:
    """Store-all arena and least feasible budgets now (rows of :func:`graphc.bench.sweep_remat`)
    against :data:`BEFORE`."""
    before = BEFORE["graphs"][name]
    mine = [r for r in rows if r["graph"] == name]
    now_top = mine[0]["store_all_bytes"]
    lows = {r["policy"]: r["least_bytes"] for r in mine if r["least_bytes"] is not None}
    lines = [f"  {name}, before (earlier planner, {BEFORE['commit'][:10]}): store-all {before['store_all']:,d} B; now "
             f"{now_top:,d} B ({now_top / before['store_all']:.3f} of before)"]
    for policy, low in lows.items():
        if policy in before["least"]:
            lines.append(f"    least feasible, {policy:10s}: before {before['least'][policy]:>10,d} B, now {low:>10,d} B "
                         f"({low / before['least'][policy]:.3f})")
    return "\n".join(lines)


def add_before(panels: dict) -> None:
    """On each step's compute panel, the frontier measured before on the earlier planner (grey, dotted)."""
    from graphc.plots import pareto_front

    for name, (ax_compute, _) in panels.items():
        before = BEFORE["graphs"].get(name)
        if before is None:
            continue
        old = [(0.0, before["store_all"] / 1e6)] + [
            (100 * f, planned / 1e6) for pts in before["points"].values() for _, planned, f in pts]
        front = pareto_front(old)
        ax_compute.step([x for x, _ in front], [y for _, y in front], where="post", color="#999999", ls=":", lw=2,
                        label=f"frontier before (updates after the backward pass, {BEFORE['commit'][:7]})")


def measure_before(quick: bool, points: int) -> None:
    """Print the frontiers of the graphc on the path in :data:`BEFORE`'s format (no timing)."""
    import subprocess

    root = Path(gc.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f'BEFORE: dict = {{\n    "commit": "{commit}",\n    "graphs": {{')
    for name, build in graphs(quick).items():
        store_all, lows, programs = frontier(build, points)
        print(format_before(name, store_all.memory.planned_bytes, lows, {
            policy: [(b, prog.memory.planned_bytes, round(prog.cost.recompute_flops / store_all.cost.forward_flops, 4))
                     for p, b, prog in programs if p == policy and not isinstance(prog, str)]
            for policy in POLICIES
        }), flush=True)
    print("    },\n}")


def format_before(name: str, store_all: int, least: dict[str, int], points: dict[str, list[tuple]]) -> str:
    """One graph's entry of :data:`BEFORE`, one line per policy."""
    lines = [f'        "{name}": {{', f'            "store_all": {store_all},', f'            "least": {least!r},',
             '            "points": {']
    lines += [f'                "{policy}": {pts!r},' for policy, pts in points.items()]
    return "\n".join(lines + ["            },", "        },"])


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
    import graphc.remat.exact  # noqa: F401  SciPy's import is process start, not the stage
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
        from remat_solve_times import benchmark_solve_times
    except ImportError:
        print("\n(the MILP is not available)")
        return
    print()
    benchmark_solve_times(sizes=(10, 25, 50) if quick else (10, 25, 50, 100, 200, 500))


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
        from remat_solve_times import recompute_ratio

        from graphc.remat.exact import LeastBudgetTimeout, minimal_least_budget, solve_milp
        from graphc.remat.problem import store_all_peak
        from graphc.remat.rounding import solve_lp_rounding
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
        top = store_all_peak(problem)
        try:
            least = minimal_least_budget(problem, time_limit=time_limit)
        except LeastBudgetTimeout as err:
            least = err.upper
        for fraction in (0.25, 0.5, 0.75):
            budgeted = replace(problem, budget=int(least + (top - least) * fraction))
            exact = solve_milp(budgeted, time_limit=time_limit)
            approx = solve_lp_rounding(budgeted, time_limit=time_limit)
            row = {"graph": name, "values": len(nodes), "fused": problem.n, "forward": int(problem.may_recompute().sum()),
                   "budget": budgeted.budget, "fraction": fraction, "status": exact.status,
                   "milp_s": exact.solve_seconds + exact.build_seconds,
                   "recompute": exact.cost - sum(problem.costs), "lp_s": approx.solve_seconds + approx.build_seconds,
                   "lp_extra": recompute_ratio(budgeted, approx, exact)}
            rows.append(row)
            print(f"  {name:11s} {row['values']:>6d} {row['fused']:>5d} {row['forward']:>4d} {row['budget']:>9,d} "
                  f"{fraction:>8.2f} {row['status']:>8s} {row['milp_s']:>7.1f} {row['recompute']:>10,.0f} "
                  f"{row['lp_s']:>6.1f} {row['lp_extra']:>8.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from graphc.bench import SweepOptions, sweep_remat
    from graphc.bench.remat import built_in_steps, write_results
    from graphc.bench.steps import FRONTIER_TARGET_GRAPH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graphs, few budgets")
    parser.add_argument("--plot", type=Path, default=Path("out/bench/remat_frontier.png"),
                        help="the chart; the table goes beside it (remat.csv, remat.md)")
    parser.add_argument("--before", action="store_true",
                        help="print the frontiers of the graphc on the path as a BEFORE table, and stop")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--serial", action="store_true", help="run the points in this process, not on Dask")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler to run the points on")
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds each compile's solver may take")
    args = parser.parse_args(argv)
    if args.before:
        measure_before(args.quick, points=4 if args.quick else 8)
        return 0
    steps = built_in_steps(args.quick)
    options = SweepOptions(policies=tuple(POLICIES), budgets=4 if args.quick else 8, repeats=5 if args.quick else 7,
                           time_limit=args.time_limit, serial=args.serial, scheduler=args.scheduler,
                           workers=args.workers)
    rows = sweep_remat(steps, options)
    write_results(rows, args.plot.parent, args.plot.stem.removesuffix("_frontier"), decorate=add_before,
                  frontier_graph=FRONTIER_TARGET_GRAPH if FRONTIER_TARGET_GRAPH in steps else None)
    print("\n".join(compare_with_before(name, rows) for name in steps if name in BEFORE["graphs"]))
    chain_targets()
    time_guarantees()
    solver_times(args.quick)
    solver_on_graphs(args.quick)
    failures = [r for r in rows if str(r["status"]).startswith("FAILED")]
    if failures:
        print(f"\n{len(failures)} training steps failed to compile (not a GraphError):")
        for r in failures:
            print(f"  {r['graph']}, remat={r['policy']!r}, memory_budget={r['budget_bytes']:,d}: {r['status']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
