"""benchmarks/remat_moccasin.py reads Moccasin's published graphs in Moccasin's memory model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from graphc.remat.problem import store_all_peak

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def moccasin():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_remat_moccasin", BENCHMARKS / "remat_moccasin.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


# A graph written as the published files are: node-link JSON, edges under "0" (source) and "1"
# (target), a topological "order" that is not the order of the node list.
ORDER = [7, 3, 5, 1, 9]
EDGES = [(7, 3), (7, 5), (3, 1), (5, 1), (7, 9), (1, 9)]
OUT_COST = {7: 40, 3: 10, 5: 30, 1: 20, 9: 50}
DURATION = {7: 0, 3: 4, 5: 6, 1: 2, 9: 8}


def _no_recompute_peak() -> int:
    """Memory at step j: every earlier value that a step ≥ j still reads, plus the value computed."""
    readers = {v: [ORDER.index(t) for s, t in EDGES if s == v] for v in ORDER}
    return max(sum(OUT_COST[u] for u in ORDER[:j] if max(readers[u], default=-1) >= j) + OUT_COST[v]
               for j, v in enumerate(ORDER))


def test_published_graph_follows_the_files_order_and_frees_what_nobody_reads(moccasin, tmp_path):
    data = {"directed": True, "multigraph": False, "graph": {"name": "random_layered_n5", "order": ORDER},
            "nodes": [{"out_cost": OUT_COST[v], "duration": DURATION[v], "param_cost": 0, "name": v}
                      for v in sorted(ORDER)],
            "links": [{"0": s, "1": t} for s, t in EDGES]}
    path = tmp_path / "random_layered_n5_w0.5.json"
    path.write_text(json.dumps(data))
    problem = moccasin.published_graph(path)
    assert problem.sizes == [OUT_COST[v] for v in ORDER]
    assert problem.costs == [float(DURATION[v]) for v in ORDER]
    assert problem.deps == [[], [0], [0], [1, 2], [0, 3]]
    assert problem.keep == []
    assert store_all_peak(problem) == _no_recompute_peak() == 110
    [(name, loaded)] = moccasin.published_graphs(tmp_path, [5])
    assert name == "random_layered_n5" and loaded == problem
    with pytest.raises(SystemExit, match="random_layered_n6"):
        moccasin.published_graphs(tmp_path, [6])


def test_drawn_graphs_are_the_generators_with_nothing_kept(moccasin):
    [(name, problem)] = moccasin.drawn_graphs([100], seed=3)
    kept = moccasin.random_layered_dag(100, seed=3)
    assert name == "drawn_n100" and problem.keep == [] and kept.keep
    assert (problem.sizes, problem.costs, problem.deps) == (kept.sizes, kept.costs, kept.deps)
    assert store_all_peak(problem) <= store_all_peak(kept)


def test_the_reference_driver_maps_the_2023_or_tools_calls_onto_todays() -> None:
    """benchmarks/moccasin_reference.py runs Moccasin's 2023 code on today's OR-Tools: the three calls
    it maps behave as the code expects (in a child process: the mapping patches OR-Tools' classes)."""
    pytest.importorskip("ortools")
    import subprocess

    script = f"""
import sys
sys.path.insert(0, {str(BENCHMARKS)!r})
import moccasin_reference
moccasin_reference._adapt_ortools()
from ortools.sat.python import cp_model
model = cp_model.CpModel()
x = model.NewIntVar(0, 10, "x")
model.Add(x >= 3)
model.Minimize(x)
class Seen(cp_model.CpSolverSolutionCallback):
    def __init__(self):
        super().__init__()
        self.count = 0
    def on_solution_callback(self):
        self.count += 1
seen = Seen()
solver = cp_model.CpSolver()
assert solver.SolveWithSolutionCallback(model, seen) == cp_model.OPTIMAL and solver.Value(x) == 3 and seen.count >= 1
model.Proto().ClearField("objective")
assert not model.HasObjective()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
