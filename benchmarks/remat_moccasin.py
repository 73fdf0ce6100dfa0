"""Moccasin's graph set: CP-SAT (and the MILP where it runs) on random layered graphs of 100–1,000 nodes.

Bartan et al. 2023, "Moccasin: Efficient Tensor Rematerialization for Neural Networks" (ICML),
solve random layered graphs (RL1–RL4: 100, 250, 500 and 1,000 nodes with 236, 944, 2,461 and
5,875 edges; Gagrani et al. 2022's generator) at budgets of 80 % and 90 % of the no-recompute
peak, each within 6 minutes on a 16-core workstation, with CP-SAT on retention intervals.

Two sets of graphs, both in Moccasin's memory model (a value is held until its last reader has
run; a value nobody reads is freed at once; nothing is kept at the end), so the store-all peak
is the no-recompute peak of the paper's driver, checked equal on the four published graphs:

- ``--moccasin-data DIR``: the published graphs, read from the ``data/`` folder of a clone of
  github.com/haoming-codes/moccasin (GPL-3, so not shipped here), in the files' own topological
  order, with their sizes (``out_cost``) and durations;
- otherwise graphs drawn by ``tests/remat_problems.py``'s ``random_layered_dag`` with the same
  node and edge counts, sizes and costs random in 1..10 (``--seed``).

For each point: CP-SAT's status, recompute objective (cost − Σ costs), ``TDI`` (Moccasin's
total duration increase, recompute / Σ costs), its bound, the bound of the joint moment program
(``graphc.remat.joint``, a sixth of the time limit), the gap against the larger bound, and the
seconds in all (limit ``--time-limit``, 360 s by default, ``--workers`` 8); and the MILP's
where it runs (``--milp-max`` nodes). The budget is ⌈fraction × peak⌉, as in the paper's
driver. CP-SAT is hinted with the cheapest schedule that fits of the joint program's and
``graphc.remat.cpsat.starting_schedule``'s (a third of the time: the eviction simulation, then
the interval program with one and two levels of recompute). ``--quick``: the 100-node graph at
20 s. Rows print as they finish.

    python benchmarks/remat_moccasin.py [--quick] [--moccasin-data DIR] [--sizes 100 250] [--budgets 0.8 0.9]
                                        [--time-limit 360] [--milp-max 100]

Measured here on the published graphs (2 cores shared with other work, load 5–10; ``--milp-max
0``, CP-SAT with 8 workers, 360 s per point; both bounds in the fixed order):

| graph | nodes | edges | budget | status   | recompute |  TDI  | CP-SAT bound | joint bound |   gap  | seconds |
|-------|------:|------:|-------:|----------|----------:|------:|-------------:|------------:|-------:|--------:|
| RL1   |   100 |   236 |   80 % | optimal  |     1,097 | 2.3 % |        1,097 |         741 |    0 % |      14 |
| RL1   |   100 |   236 |   90 % | optimal  |       377 | 0.8 % |          377 |         326 |    0 % |       8 |
| RL2   |   250 |   944 |   80 % | feasible |     5,636 | 4.5 % |            0 |       3,746 | 33.5 % |     360 |
| RL2   |   250 |   944 |   90 % | feasible |     1,135 | 0.9 % |        1,098 |       1,036 |  3.3 % |     360 |
| RL3   |   500 | 2,461 |   80 % | feasible |     7,926 | 3.1 % |            0 |       7,164 |  9.6 % |     361 |
| RL3   |   500 | 2,461 |   90 % | feasible |     1,790 | 0.7 % |            0 |       1,778 |  0.7 % |     360 |
| RL4   | 1,000 | 5,875 |   80 % | feasible |    14,069 | 2.8 % |            0 |      12,297 | 12.6 % |     360 |
| RL4   | 1,000 | 5,875 |   90 % | feasible |     3,409 | 0.7 % |            0 |       3,341 |  2.0 % |     361 |

A schedule at every point within 6 minutes, two proven optimal, the others within 0.7–33.5 %
of the joint bound (the TDI is at most 4.5 % everywhere). Beside it, Moccasin's own code on the
same machine (``benchmarks/moccasin_reference.py``: its driver's settings, each of its two phases
limited to 180 s, nothing else running): RL1 optimal at both budgets, the same 1,097 and 377, in
161 s and 120 s; at 250, 500 and 1,000 nodes no schedule within the budget at either fraction
(its first phase ends at its limit without one). The paper reports a solution at every point
within 6 minutes on 16 cores; its table could not be read here.

On graphs drawn here (seed 0, same conditions, load 5–13), the harder family: sizes uniform in
1..10 leave no cheap values to free, and the eviction simulation finds no schedule at all:

| graph      | nodes | edges | budget | status   | recompute |  TDI   | CP-SAT bound | joint bound |   gap  | seconds |
|------------|------:|------:|-------:|----------|----------:|-------:|-------------:|------------:|-------:|--------:|
| drawn_n100 |   100 |   236 |   80 % | feasible |        36 |  6.3 % |            0 |          19 | 47.2 % |     361 |
| drawn_n100 |   100 |   236 |   90 % | optimal  |         2 |  0.3 % |            2 |           2 |    0 % |       2 |
| drawn_n250 |   250 |   944 |   80 % | feasible |       207 | 14.6 % |            0 |          71 | 65.7 % |     360 |
| drawn_n250 |   250 |   944 |   90 % | optimal  |        10 |  0.7 % |           10 |           7 |    0 % |     132 |
| drawn_n500 |   500 | 2,461 |   80 % | none     |         – |      – |            0 |         244 |      – |     400 |
| drawn_n500 |   500 | 2,461 |   90 % | none     |         – |      – |            0 |          24 |      – |     361 |
| drawn_n1000| 1,000 | 5,875 |   80 % | none     |         – |      – |            0 |         726 |      – |     361 |
| drawn_n1000| 1,000 | 5,875 |   90 % | none     |         – |      – |            0 |         159 |      – |     360 |

At 500 nodes and 90 % the interval program with one level alone finds a schedule (recompute 75)
in 151 s at load 5, more than its share of the time (half of a third); with two levels it
finds none in 150 s.

Before, the drawn graphs kept every value nobody reads to the end (``keep_sinks=True``, still the
generator's default for the tests), about √n outputs at once: a harder problem than the paper's.
There, at 500 and 1,000 nodes and 80 %, no schedule was found (holding nothing in the fixed order
already needed 461 and 578 against budgets of 380 and 464).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from graphc.remat.joint import JointSolution, joint_schedule, model_peak
from graphc.remat.cpsat import solve_cpsat, starting_schedule
from graphc.remat.exact import solve_milp
from graphc.remat.problem import RematProblem, RematSolution, store_all_peak
from remat_solve_times import load_problems  # tests/remat_problems.py, loaded by path


_problems = load_problems()
MOCCASIN_EDGES, random_layered_dag = _problems.MOCCASIN_EDGES, _problems.random_layered_dag

COLUMNS = ("graph", "nodes", "edges", "budget", "solver", "status", "recompute", "TDI", "bound", "moments", "gap",
           "seconds")


def published_graph(path: Path) -> RematProblem:
    """One of Moccasin's random layered graphs as the authors published it (networkx node-link JSON).

    Nodes are numbered in the file's ``order`` (a topological order, the one Moccasin solves in);
    a node's size is its ``out_cost``, its cost its ``duration`` (0 for the sources). Nothing is kept
    at the end: in Moccasin's memory model a value is held only until its last reader has run, so
    the store-all peak here equals the no-recompute peak the paper's budgets are fractions of.
    """
    data = json.loads(path.read_text())
    order = data["graph"]["order"]
    index = {node: i for i, node in enumerate(order)}
    attributes = {node["name"]: node for node in data["nodes"]}
    deps: list[list[int]] = [[] for _ in order]
    for link in data["links"]:  # node-link written with attrs {"source": "0", "target": "1"}
        deps[index[link["1"]]].append(index[link["0"]])
    return RematProblem(sizes=[int(attributes[v]["out_cost"]) for v in order],
                        costs=[float(attributes[v]["duration"]) for v in order],
                        deps=[sorted(d) for d in deps], keep=[], budget=0)


def published_graphs(directory: Path, sizes: Sequence[int]) -> list[tuple[str, RematProblem]]:
    """The published graphs of ``sizes`` nodes from a copy of Moccasin's ``data/`` folder."""
    graphs = []
    for n in sizes:
        found = sorted(directory.glob(f"random_layered_n{n}_*.json"))
        if not found:
            raise SystemExit(f"no random_layered_n{n}_*.json in {directory}")
        graphs.append((found[0].stem.split("_w")[0], published_graph(found[0])))
    return graphs


def drawn_graphs(sizes: Sequence[int], seed: int) -> list[tuple[str, RematProblem]]:
    """Graphs drawn here with the published node and edge counts, in Moccasin's memory model (nothing kept)."""
    return [(f"drawn_n{n}", random_layered_dag(n, seed=seed, keep_sinks=False)) for n in sizes]


def _row(name: str, problem: RematProblem, fraction: float, solver: str, solution: RematSolution, seconds: float,
         moments: JointSolution) -> dict:
    """One point. ``TDI`` is Moccasin's total duration increase, recompute / Σ costs; ``bound`` is the
    solver's, ``moments`` the joint moment program's (both in the fixed order); the gap is against the larger."""
    once = float(sum(problem.costs))
    found = solution.status in ("optimal", "feasible")
    recompute = solution.cost - once if found else math.nan
    bound = math.nan if solution.lower_bound is None else max(solution.lower_bound - once, 0.0)
    best = max(0.0 if math.isnan(bound) else bound, moments.bound)
    gap = (0.0 if recompute == 0 else max(recompute - best, 0.0) / recompute) if found else math.nan
    return {"graph": name, "nodes": problem.n, "edges": sum(len(d) for d in problem.deps),
            "budget": f"{fraction:.0%}", "solver": solver, "status": solution.status, "recompute": recompute,
            "TDI": recompute / once if once else math.nan, "bound": bound,
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


def run(graphs: Sequence[tuple[str, RematProblem]], *, fractions: Sequence[float] = (0.8, 0.9),
        time_limit: float = 360.0, milp_max: int = 100, workers: int = 8, out: TextIO = sys.stdout) -> list[dict]:
    """Solve each (graph, budget) point with CP-SAT, then with the MILP where n <= ``milp_max``; the rows.

    The budget is ⌈fraction × store-all peak⌉, as Moccasin's own driver sets it."""
    out.write("  ".join(f"{c:>9}" for c in COLUMNS) + "\n")
    rows, milp_points = [], []
    for name, base in graphs:
        peak = store_all_peak(base)
        for fraction in fractions:
            problem = replace(base, budget=math.ceil(fraction * peak))
            started = time.perf_counter()
            moments, _ = joint_schedule(problem, model_peak(problem), time_limit=time_limit / 6)
            hint = _cheapest(problem, [moments.R, starting_schedule(problem, time_limit / 3)])
            solution = solve_cpsat(problem, time_limit=time_limit - (time.perf_counter() - started), workers=workers,
                                   hint=hint)
            rows.append(_row(name, problem, fraction, "cpsat", solution, time.perf_counter() - started, moments))
            _print(rows[-1], out)
            if problem.n <= milp_max:
                milp_points.append((name, problem, fraction, moments))
    for name, problem, fraction, moments in milp_points:
        started = time.perf_counter()
        solution = solve_milp(problem, time_limit=time_limit)
        rows.append(_row(name, problem, fraction, "milp", solution, time.perf_counter() - started, moments))
        _print(rows[-1], out)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 100-node graph at 20 s")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(MOCCASIN_EDGES))
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.8, 0.9], metavar="FRACTION",
                        help="budgets as fractions of the no-recompute peak")
    parser.add_argument("--moccasin-data", type=Path, metavar="DIR",
                        help="the data/ folder of a clone of github.com/haoming-codes/moccasin: solve the published "
                             "graphs instead of graphs drawn here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn graphs")
    parser.add_argument("--time-limit", type=float, default=360.0)
    parser.add_argument("--milp-max", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8, help="CP-SAT workers (its portfolio: 8 finds schedules that 2 do not, even on 2 cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.time_limit = [100], 20.0
    graphs = (published_graphs(args.moccasin_data, args.sizes) if args.moccasin_data
              else drawn_graphs(args.sizes, args.seed))
    run(graphs, fractions=args.budgets, time_limit=args.time_limit, milp_max=args.milp_max, workers=args.workers)


if __name__ == "__main__":
    main()
