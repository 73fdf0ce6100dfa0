"""The sweep's tasks, each a plain function of plain arguments returning a plain dict.

Each task builds its step from the builder string (:mod:`graphc.bench.steps`),
so it runs the same in this process or on a Dask worker elsewhere. Three kinds:

- :func:`store_all_task`: the arena when every value is kept (``remat="none"``);
- :func:`least_budget_task`: the least budget a policy can meet;
- :func:`point_task`: one (policy, budget) point — the plan's figures and its
  measured step time against store-all's, run alternately in the same process.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import graphc as gc
from graphc import zoo
from graphc.bench.steps import TrainingStep, load_step, step_graph

MIN_REPEATS = 5
"""Alternations of (plan, store-all) whose medians give a point's step times."""

_POLICY_LEAST = re.compile(r"least feasible budget for it is ([\d,]+) B")
_FLOOR = re.compile(r"least feasible budget is at least ([\d,]+) B")


def _bytes(match: re.Match) -> int:
    return int(match.group(1).replace(",", ""))


def _compile(step: TrainingStep, **options: Any) -> gc.Program:
    outputs, updates = step
    return gc.compile(outputs, updates=updates, **options)


def store_all_task(builder: str) -> dict[str, Any]:
    """The planned arena and forward FLOPs of ``builder``'s step with nothing recomputed."""
    prog = _compile(load_step(builder), bind=False)
    return {"store_all_bytes": prog.memory.planned_bytes, "forward_flops": prog.cost.forward_flops}


def least_budget_task(builder: str, policy: str, time_limit: float) -> dict[str, Any]:
    """The least budget ``policy`` meets on ``builder``'s step, read off the GraphError of an
    impossible budget: first budget 0, then (if 0 is below what any schedule needs and the
    error says so) that floor, whose error names the policy's own least budget."""
    step = load_step(builder)
    budget = 0
    start = time.perf_counter()
    for _ in range(2):
        try:
            prog = _compile(step, remat=policy, memory_budget=budget, time_limit=time_limit, bind=False)
            least = prog.memory.planned_bytes
            break
        except gc.GraphError as err:
            own, floor = _POLICY_LEAST.search(str(err)), _FLOOR.search(str(err))
            if own:
                least = _bytes(own)
                break
            if not floor or budget:
                raise
            budget = _bytes(floor)
    return {"policy": policy, "least_bytes": least, "seconds": time.perf_counter() - start}


def point_task(builder: str, policy: str, budget: int | None, repeats: int, time_limit: float) -> dict[str, Any]:
    """One point of the sweep: ``policy`` at ``budget`` bytes on ``builder``'s step
    (``"none"`` and budget None: store-all itself, timed against a second store-all program).

    Returns the plan's figures (planned arena, recompute FLOPs, the remat report's
    choice and solver status, compile and solve seconds) and the median step
    times of the plan and of store-all over ``repeats`` runs alternating the two,
    so that both see the same load. A compile that fails with anything but a
    GraphError is a defect: its text is the point's status, not a lost sweep.
    """
    step = load_step(builder)
    feeds = zoo.feeds(step_graph(step))
    start = time.perf_counter()
    try:
        prog = _compile(step, remat=policy, memory_budget=budget, time_limit=time_limit)
    except gc.GraphError as err:
        return _failed(policy, budget, f"no plan within the budget: {str(err).splitlines()[0]}")
    except Exception as err:  # noqa: BLE001  a defect to report, not a reason to lose the other points
        return _failed(policy, budget, f"FAILED: {type(err).__name__}: {err}")
    compile_seconds = time.perf_counter() - start
    store_all = _compile(step)
    step_seconds, store_all_seconds, ratio = alternating_medians(prog, store_all, feeds, max(repeats, MIN_REPEATS))
    report = prog.remat
    return {
        "policy": policy, "budget_bytes": budget, "planned_bytes": prog.memory.planned_bytes,
        "recompute_flops": prog.cost.recompute_flops, "forward_flops": prog.cost.forward_flops,
        "step_seconds": step_seconds, "store_all_step_seconds": store_all_seconds, "time_ratio": ratio,
        "compile_seconds": compile_seconds, "solve_seconds": report.solve_seconds if report else 0.0,
        "status": _status(report), "chosen": report.chosen if report else "store all",
    }


def _status(report: Any) -> str:
    if report is None or report.policy == "none":
        return "store-all"
    return report.solver_status or "no solver"


def _failed(policy: str, budget: int | None, status: str) -> dict[str, Any]:
    nan = float("nan")
    return {"policy": policy, "budget_bytes": budget, "planned_bytes": None, "recompute_flops": None,
            "forward_flops": None, "step_seconds": nan, "store_all_step_seconds": nan, "time_ratio": nan, "compile_seconds": nan,
            "solve_seconds": nan, "status": status, "chosen": ""}


def alternating_medians(prog: gc.Program, base: gc.Program, feeds: dict, repeats: int) -> tuple[float, float, float]:
    """Median seconds of one run of ``prog`` and of ``base``, and the median of their ratio,
    over ``repeats`` pairs of runs (after one warm-up run of each).

    The two runs of a pair follow each other, first one then the other in turn, so
    that both see the same load on a shared machine; the ratio of each pair
    cancels the load's drift between pairs, which a ratio of medians does not.
    """
    prog.run(feeds)
    base.run(feeds)
    times: tuple[list[float], list[float]] = ([], [])
    for k in range(repeats):
        pair = ((0, prog), (1, base)) if k % 2 == 0 else ((1, base), (0, prog))
        for which, program in pair:
            start = time.perf_counter()
            program.run(feeds)
            times[which].append(time.perf_counter() - start)
    ratios = [mine / theirs for mine, theirs in zip(*times)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(ratios)
