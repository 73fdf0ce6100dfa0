"""Moccasin's graph set: CP-SAT (and the MILP where it runs) on random layered graphs of 100–1,000 nodes.

Bartan et al. 2023, "Moccasin: Efficient Tensor Rematerialization for Neural Networks" (ICML),
solve random layered graphs (RL1–RL4: 100, 250, 500 and 1,000 nodes with 236, 944, 2,461 and
5,875 edges; Gagrani et al. 2022's generator) at budgets of 80 % and 90 % of the no-recompute
peak, each within 6 minutes on a 16-core workstation, with CP-SAT on retention intervals.
The graphs here are drawn by ``tests/remat_problems.py``'s ``random_layered_dag`` with the same
node and edge counts (not the paper's instances, which are not published), sizes and costs
random in 1..10; the no-recompute peak is the store-all schedule's.

For each point: CP-SAT's status, recompute objective (cost − Σ costs), its bound, the bound of
the joint moment program (``graphc.remat.joint``, a sixth of the time limit), the gap against
the larger bound, and the seconds in all (limit ``--time-limit``, 360 s by default,
``--workers`` 8); and the MILP's where it runs (``--milp-max`` nodes). CP-SAT is hinted with
the cheapest schedule that fits of the joint program's and ``graphc.remat.cpsat.starting_schedule``'s
(a third of the time: the eviction simulation, then the interval program with one and two
levels of recompute). ``--quick``: the 100-node graph at 20 s. Rows print as they finish.

    python benchmarks/remat_moccasin.py [--quick] [--sizes 100 250] [--budgets 0.8 0.9] [--time-limit 360] [--milp-max 100]

Measured here (2 cores shared with other work, ``--milp-max 0``, CP-SAT with 8 workers;
recompute in the graphs' cost units, both bounds in the fixed order; 100 nodes at 360 s, the
rest at 300 s):

| nodes | edges | budget | CP-SAT status | recompute | CP-SAT bound | joint bound | gap    | seconds |
|------:|------:|-------:|---------------|----------:|-------------:|------------:|-------:|--------:|
|   100 |   236 |   80 % | feasible      |        54 |            0 |          47 | 13.0 % |     361 |
|   100 |   236 |   90 % | optimal       |        11 |           11 |          11 |    0 % |      17 |
|   250 |   944 |   80 % | feasible      |       229 |            0 |          92 | 59.8 % |     301 |
|   250 |   944 |   90 % | feasible      |        13 |            0 |           8 | 38.5 % |     300 |
|   500 | 2,461 |   80 % | no schedule   |         - |            0 |         208 |      - |     300 |
|   500 | 2,461 |   90 % | feasible      |        80 |            0 |          37 | 53.8 % |     300 |
| 1,000 | 5,875 |   80 % | no schedule   |         - |            0 |         860 |      - |     301 |
| 1,000 | 5,875 |   90 % | no schedule   |         - |            0 |         165 |      - |     301 |

The first schedules at 250 nodes and 80 % and at 500 nodes and 90 % come from the interval
program; CP-SAT then improves them (at 500 and 90 %, a run at 360 s reached 62). At 1,000 nodes
and 90 % the interval program alone finds a schedule of recompute 315 in 130 s, longer than
its share here. At 100 nodes and 80 % an earlier run (hinted by the joint program alone,
240 s) reached 47, which the joint bound proves optimal; at 250 nodes and 90 % one at 360 s
proved 13 optimal. At 500 and 1,000 nodes and 80 % no schedule is known: the interval
program with one level proves it has none, and with two it finds none in its time.
Moccasin reports solutions at every point within 6 minutes on 16 cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from typing import Sequence, TextIO

import numpy as np

from graphc.remat.joint import JointSolution, joint_schedule, model_peak
from graphc.remat.cpsat import solve_cpsat, starting_schedule
from graphc.remat.exact import solve_milp
from graphc.remat.problem import RematProblem, RematSolution, store_all_peak
from remat_solve_times import load_problems  # tests/remat_problems.py, loaded by path


_problems = load_problems()
MOCCASIN_EDGES, random_layered_dag = _problems.MOCCASIN_EDGES, _problems.random_layered_dag

COLUMNS = ("nodes", "edges", "budget", "solver", "status", "recompute", "bound", "moments", "gap", "seconds")


def _row(problem: RematProblem, fraction: float, solver: str, solution: RematSolution, seconds: float,
         moments: JointSolution) -> dict:
    """One point. ``bound`` is the solver's, ``moments`` the joint moment program's (both in the fixed
    order); the gap is against the larger."""
    once = float(sum(problem.costs))
    found = solution.status in ("optimal", "feasible")
    recompute = solution.cost - once if found else math.nan
    bound = math.nan if solution.lower_bound is None else max(solution.lower_bound - once, 0.0)
    best = max(0.0 if math.isnan(bound) else bound, moments.bound)
    gap = (0.0 if recompute == 0 else max(recompute - best, 0.0) / recompute) if found else math.nan
    return {"nodes": problem.n, "edges": sum(len(d) for d in problem.deps), "budget": f"{fraction:.0%}",
            "solver": solver, "status": solution.status, "recompute": recompute, "bound": bound,
            "moments": moments.bound, "gap": gap, "seconds": seconds}


def _cheapest(problem: RematProblem, schedules: list[np.ndarray | None]) -> np.ndarray | None:
    """The cheapest of the stage matrices that fit the budget, or None."""
    fitting = [R for R in schedules if R is not None and model_peak(problem)(R)[0] <= problem.budget]
    return min(fitting, key=lambda R: float(np.asarray(problem.costs) @ R.sum(axis=0)), default=None)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.1%}" if value < 1 and value != 0 and not value.is_integer() else f"{value:.1f}"
    return str(value)


def _print(row: dict, out: TextIO) -> None:
    out.write("  ".join(f"{_fmt(row[c]):>9}" for c in COLUMNS) + "\n")
    out.flush()


def run(sizes: Sequence[int], *, fractions: Sequence[float] = (0.8, 0.9), time_limit: float = 360.0,
        milp_max: int = 100, workers: int = 2, seed: int = 0, out: TextIO = sys.stdout) -> list[dict]:
    """Solve each (graph, budget) point with CP-SAT, then with the MILP where n <= ``milp_max``; the rows."""
    out.write("  ".join(f"{c:>9}" for c in COLUMNS) + "\n")
    rows, milp_points = [], []
    for n in sizes:
        base = random_layered_dag(n, seed=seed)
        peak = store_all_peak(base)
        for fraction in fractions:
            problem = replace(base, budget=int(fraction * peak))
            started = time.perf_counter()
            moments, _ = joint_schedule(problem, model_peak(problem), time_limit=time_limit / 6)
            hint = _cheapest(problem, [moments.R, starting_schedule(problem, time_limit / 3)])
            solution = solve_cpsat(problem, time_limit=time_limit - (time.perf_counter() - started), workers=workers,
                                   hint=hint)
            rows.append(_row(problem, fraction, "cpsat", solution, time.perf_counter() - started, moments))
            _print(rows[-1], out)
            if n <= milp_max:
                milp_points.append((problem, fraction, moments))
    for problem, fraction, moments in milp_points:
        started = time.perf_counter()
        solution = solve_milp(problem, time_limit=time_limit)
        rows.append(_row(problem, fraction, "milp", solution, time.perf_counter() - started, moments))
        _print(rows[-1], out)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 100-node graph at 20 s")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(MOCCASIN_EDGES))
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.8, 0.9], metavar="FRACTION",
                        help="budgets as fractions of the no-recompute peak")
    parser.add_argument("--time-limit", type=float, default=360.0)
    parser.add_argument("--milp-max", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8, help="CP-SAT workers (its portfolio: 8 finds schedules that 2 do not, even on 2 cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.time_limit = [100], 20.0
    run(args.sizes, fractions=args.budgets, time_limit=args.time_limit, milp_max=args.milp_max, workers=args.workers)


if __name__ == "__main__":
    main()
