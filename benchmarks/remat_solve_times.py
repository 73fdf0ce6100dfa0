"""The recompute solver's solve-time table: the MILP and LP rounding on chains and layered DAGs of n nodes.

Run by benchmarks/remat.py (``solver_times``). The graphs come from tests/remat_problems.py, the
generators the solver's tests use, loaded by path so that one copy serves both.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence, TextIO

from graphc.remat.exact import solve_milp
from graphc.remat.milp import model_size
from graphc.remat.problem import RematProblem, RematSolution, store_all_peak
from graphc.remat.rounding import solve_lp_rounding


def load_problems():
    """tests/remat_problems.py as a module (it is no package of its own)."""
    path = Path(__file__).resolve().parent.parent / "tests" / "remat_problems.py"
    spec = importlib.util.spec_from_file_location("remat_problems", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_problems = load_problems()
training_chain, random_training_dag = _problems.training_chain, _problems.random_training_dag
mid_budget, recompute_ratio = _problems.mid_budget, _problems.recompute_ratio


def _feasible_mid(problem: RematProblem, time_limit: float) -> tuple[RematProblem, RematSolution]:
    """The problem at ``mid_budget``, raised halfway to the store-all peak while it is infeasible."""
    budget, top = mid_budget(problem), store_all_peak(problem)
    while True:
        problem = replace(problem, budget=budget)
        solution = solve_milp(problem, time_limit=time_limit)
        if solution.status != "infeasible" or budget >= top:
            return problem, solution
        budget = (budget + top + 1) // 2


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def benchmark_solve_times(sizes: Sequence[int] = (10, 25, 50, 100, 200, 500), *, time_limit: float = 60.0,
                          seed: int = 0, milp_alone: bool = True, out: TextIO = sys.stdout) -> list[dict]:
    """Solve times at a mid budget for graphs of n nodes; prints a table, returns its rows.

    Graphs: ``training_chain(n // 2)`` and ``random_training_dag(n)``; budget
    ``mid_budget``, raised halfway to the store-all peak while infeasible (small random
    graphs need almost everything). Columns: the model's size and build time; the
    default :func:`solve_milp` (LP rounding first, then the MILP with a cutoff): seconds,
    status, cost, bound, ``proven`` (optimal within the limit); with ``milp_alone`` the
    MILP without the incumbent (seconds, status); :func:`solve_lp_rounding` alone
    (seconds, cost, and ``lp_extra``: its recompute over the MILP's, see
    :func:`recompute_ratio`). Times are wall-clock on this machine.
    """
    nan = math.nan
    rows: list[dict] = []
    header_done = False
    for n in sizes:
        for name, problem in (("chain", training_chain(max(n // 2, 1))), ("layered", random_training_dag(n, seed=seed))):
            problem, sol = _feasible_mid(problem, time_limit)
            n_vars, n_rows, _ = model_size(problem)
            row = {"graph": name, "n": problem.n, "vars": n_vars, "rows": n_rows, "budget": problem.budget,
                   "build_s": sol.build_seconds, "solve_s": sol.solve_seconds, "status": sol.status,
                   "cost": sol.cost, "bound": nan if sol.lower_bound is None else sol.lower_bound,
                   "proven": sol.status in ("optimal", "infeasible")}
            if milp_alone:
                alone = solve_milp(problem, time_limit=time_limit, incumbent=False)
                row.update(alone_s=alone.solve_seconds, alone_status=alone.status)
            lp = solve_lp_rounding(problem, time_limit=time_limit)
            row.update(lp_s=lp.solve_seconds + lp.build_seconds, lp_cost=lp.cost,
                       lp_extra=recompute_ratio(problem, lp, sol))
            if not header_done:
                print(" ".join(f"{k:>12}" for k in row), file=out, flush=True)
                header_done = True
            print(" ".join(f"{_fmt(v):>12}" for v in row.values()), file=out, flush=True)
            rows.append(row)
    return rows
