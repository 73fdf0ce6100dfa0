"""Moccasin's own CP model on its own graphs, on this machine: the reference column of ``remat_moccasin.py``.

Runs ``remat`` of github.com/haoming-codes/moccasin (``src/moccasin/cp.py``, GPL-3: read from a
clone at run time, never shipped or copied here) with the settings of that repository's
``main.py`` (at most two computations per node, discretized, reservoir constraints, stages,
phase 1 then phase 2, gcd scaling) on the four random layered graphs of its ``data/`` folder
at 80 % and 90 % of the no-recompute peak of their topological order. Its CP-SAT asks for 16
workers. ``--phase-seconds`` limits each of its two phases (phase 1 finds a schedule within the
budget, phase 2 minimises the total duration from it), so a point ends within twice that.

OR-Tools 9.15 renamed three calls the 2023 code makes; the driver maps them before the run
(``SolveWithSolutionCallback`` → ``Solve``, ``Proto().ClearField('objective')`` → ``clear_objective()``,
generators passed where lists are wanted → lists). The code imports ``rockmate.def_op`` for its
own export of schedules, which this run does not use: a stand-in module is registered.

    python benchmarks/moccasin_reference.py --moccasin DIR [--phase-seconds 180] [--points 100:0.8 ...]

Measured here (2 cores, nothing else running; 180 s per phase, so 6 minutes a point):

| graph | nodes | budget | status                   | recompute | TDI   | seconds |
|-------|------:|-------:|--------------------------|----------:|------:|--------:|
| RL1   |   100 |   80 % | optimal                  |     1,097 | 2.3 % |     161 |
| RL1   |   100 |   90 % | optimal                  |       377 | 0.8 % |     120 |
| RL2   |   250 |   80 % | none (phase 1 at 180 s)  |         – |     – |     180 |
| RL2   |   250 |   90 % | none (phase 1 at 180 s)  |         – |     – |     180 |
| RL3   |   500 |   80 % | none (phase 1 at 180 s)  |         – |     – |     181 |
| RL3   |   500 |   90 % | none (phase 1 at 180 s)  |         – |     – |     182 |
| RL4   | 1,000 |   80 % | none (phase 1 at 180 s)  |         – |     – |     186 |
| RL4   | 1,000 |   90 % | none (phase 1 at 180 s)  |         – |     – |     185 |

Given the whole 6 minutes for its first phase (``--phase-seconds 360``), RL2 at 90 % still ends
with no schedule. The paper's runs had 16 cores and an hour; on two cores its CP-SAT proves RL1 optimal at
both budgets (the recompute graphc's finds too, in 14 s and 8 s) and finds no schedule within
the budget on the larger graphs, where graphc's finds one at every point (``remat_moccasin.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from pathlib import Path
from typing import Any

GRAPHS = {100: "RL1", 250: "RL2", 500: "RL3", 1000: "RL4"}


def _adapt_ortools() -> None:
    """Map the 2023 OR-Tools calls Moccasin's code makes onto OR-Tools 9.15's."""
    from ortools.sat.python import cp_model

    if not hasattr(cp_model.CpSolver, "SolveWithSolutionCallback"):
        cp_model.CpSolver.SolveWithSolutionCallback = lambda self, model, callback: self.Solve(model, callback)
    proto = cp_model.CpModel.Proto

    class _Proto:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def ClearField(self, name: str) -> None:  # noqa: N802 - the protobuf name the code calls
            getattr(self._inner, f"clear_{name}")()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    cp_model.CpModel.Proto = lambda self: _Proto(proto(self))


def _load(clone: Path) -> Any:
    """Moccasin's ``remat`` and ``get_mem_from_schedule`` from a clone, its unused rockmate import stood in for."""
    stand_in = types.ModuleType("rockmate.def_op")
    for name in ("RunOp", "DelOp", "OpSchedule"):
        setattr(stand_in, name, type(name, (), {}))
    sys.modules.setdefault("rockmate", types.ModuleType("rockmate")).def_op = stand_in
    sys.modules["rockmate.def_op"] = stand_in
    sys.path.insert(0, str(clone / "src"))
    _adapt_ortools()
    import moccasin.cp as cp
    from moccasin.util import get_mem_from_schedule

    listed = cp.flatten
    cp.flatten = lambda nested: list(listed(nested))  # OR-Tools 9.15 takes lists, not generators
    return cp.remat, get_mem_from_schedule


def solve_point(clone: Path, nodes: int, fraction: float, phase_seconds: float, log_dir: Path) -> dict[str, Any]:
    """One point with Moccasin's driver settings: its status, total duration, recompute and TDI, seconds."""
    import networkx as nx

    remat, get_mem_from_schedule = _load(clone)
    (path,) = sorted((clone / "data").glob(f"random_layered_n{nodes}_*.json"))
    graph = nx.node_link_graph(json.loads(path.read_text()), directed=True, multigraph=False,
                               source="0", target="1", edges="links")
    for _, data in graph.nodes(data=True):
        data["cost_ram"], data["cost_cpu"] = data.pop("out_cost"), data.pop("duration")
    order = graph.graph.get("order") or list(nx.topological_sort(graph))
    peak, _ = get_mem_from_schedule(graph, order)
    budget = math.ceil(peak * fraction)
    total = sum(d["cost_cpu"] for _, d in graph.nodes(data=True))
    started = time.perf_counter()
    result = remat(G=graph, B=budget, C=2, timeout=phase_seconds, discretized=True, reservoir=True,
                   use_end_global=False, use_stage=True, topo_order=order, phase1=True,
                   use_interval_length_domain=True, use_gcd=True, reservoir_option=2, log_dir=str(log_dir))
    row = {"graph": GRAPHS.get(nodes, f"n{nodes}"), "nodes": nodes, "fraction": fraction, "budget": budget,
           "peak": peak, "status": result.get("status"), "seconds": time.perf_counter() - started}
    if result.get("obj_val") is not None:
        row.update(duration=result["obj_val"], recompute=result["obj_val"] - total,
                   tdi=(result["obj_val"] - total) / total)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moccasin", type=Path, required=True, metavar="DIR", help="a clone of haoming-codes/moccasin")
    parser.add_argument("--phase-seconds", type=float, default=180.0, help="limit of each of the two phases")
    parser.add_argument("--points", nargs="+", default=[f"{n}:{f}" for n in GRAPHS for f in (0.8, 0.9)],
                        help="nodes:fraction, e.g. 100:0.8")
    parser.add_argument("--log-dir", type=Path, default=Path("out/moccasin"), help="where Moccasin writes its pickles")
    args = parser.parse_args()
    for point in args.points:
        nodes, fraction = point.split(":")
        row = solve_point(args.moccasin, int(nodes), float(fraction), args.phase_seconds, args.log_dir)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
