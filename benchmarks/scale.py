"""Compile time against graph size: is every stage of the pipeline near-linear?

Two families of graphs, each built at several sizes:

- ``chain``: :func:`graphc.zoo.chain`, dense tanh layers (width 4, batch 2);
- ``random``: :func:`graphc.zoo.random_dag`, a layered random DAG with skip
  connections (width 4, batch 2), so values live long and the placement has
  many blocks alive at once.

The size ``nodes`` is the number of nodes of the graph once its training step
``[ℓ, ∂ℓ/∂w …]`` has been differentiated (forward + adjoint), the graph that
``gc.compile`` works on. Each size is timed twice on the same outputs:

- ``total``: ``gc.grad`` (:func:`graphc.zoo.training_outputs`) plus ``gc.compile``,
  as a user calls them (above 10⁵ nodes, the sum of the stages instead);
- stage by stage, the functions ``gc.compile`` chains: ``grad``, ``passes``
  (DCE, CSE, running sums), ``remat`` (policy ``"none"``), ``schedule``,
  ``memory`` (liveness, in-place reuse, placement, auto mode), ``lower`` (the
  Plan) and ``bind`` (the Program: plan checks, FLOP count, the arena and
  the bound kernels).

Times are CPU seconds of the process (``time.process_time``): on a machine
shared with other work, wall-clock times swing with the load between one size
and the next. For each family and each stage, the exponent ``k`` of ``time ≈ c · nodes^k``
is fitted by least squares on log time against log nodes (a linear pass gives
k ≈ 1; stages that take under a millisecond at the smallest size are noisy).
The machine's load average is printed with the figures: contention for the
caches still slows a loaded machine's CPU seconds somewhat.

    python benchmarks/scale.py             # 10³ … 10⁵ nodes
    python benchmarks/scale.py --quick     # 10³ … 3·10⁴ nodes (make bench)
    python benchmarks/scale.py --max       # 10³ … 5·10⁵ nodes (several minutes)
    python benchmarks/scale.py --sizes 300000,500000 --family chain
    python benchmarks/scale.py --profile 100000   # cProfile of one grad + compile per family
"""

from __future__ import annotations

import argparse
import cProfile
import gc as garbage
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import graphc as gc
from graphc import zoo
from graphc.compile import Program
from graphc.gcpause import without_cyclic_gc
from graphc.memory import plan_memory
from graphc.passes import optimize
from graphc.plan import lower
from graphc.remat import rematerialize
from graphc.schedule import schedule

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
QUICK_SIZES = SIZES[:4]
MAX_SIZES = SIZES + (300_000, 500_000)
STAGES = ("grad", "passes", "remat", "schedule", "memory", "lower", "bind")
TARGET_EXPONENT = 1.15
TOTAL_TIMED_UP_TO = 100_000  # nodes: above, the total is the sum of the stages
WIDTH, BATCH = 4, 2

FAMILIES: dict[str, Callable[[int], tuple[gc.Graph, dict]]] = {
    "chain": lambda n: zoo.chain(n, width=WIDTH, batch=BATCH),
    "random": lambda n: zoo.random_dag(n, width=WIDTH, batch=BATCH),
}


def size_for(build: Callable[[int], tuple], target_nodes: int, probe: int = 300) -> int:
    """The argument n of ``build(n)`` whose differentiated graph has about ``target_nodes`` nodes
    (the count grows linearly in n: measured at n = ``probe`` and scaled)."""
    graph, values = build(probe)
    zoo.training_outputs(values)
    return max(1, round(target_nodes * probe / len(graph)))


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``fn()`` and the CPU seconds of this process during it, the garbage of earlier calls collected first.

    CPU time, not wall-clock time: compiling runs on one thread, and on a shared
    machine the time spent waiting for a core would swamp the fit (it varies
    between the sizes of one run).
    """
    garbage.collect()
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


@without_cyclic_gc
def stage_times(values: dict) -> dict[str, float]:
    """Seconds spent in each stage of ``grad`` + ``compile``, called one by one as ``gc.compile``
    does (with the cyclic garbage collector paused, as ``grad`` and ``compile`` pause it)."""
    times: dict[str, float] = {}
    outputs, times["grad"] = timed(lambda: zoo.training_outputs(values))
    flow, times["passes"] = timed(lambda: optimize([v.node for v in outputs]))
    (flow, _), times["remat"] = timed(lambda: rematerialize(flow, "none", None, lambda f: 0))
    order, times["schedule"] = timed(lambda: schedule(flow))
    memory, times["memory"] = timed(lambda: plan_memory(flow, order, "auto"))
    plan, times["lower"] = timed(lambda: lower("scale", flow, order, memory))
    graph = outputs[0].graph
    stored = {n.name: n.data for n in graph.params.values()}
    _, times["bind"] = timed(lambda: Program(plan, stored, memory))
    times["instructions"] = len(plan.instructions)
    return times


def measure(family: str, target_nodes: int) -> dict[str, float]:
    """One row: nodes, instructions, total seconds and each stage's seconds, for one graph size.

    Up to :data:`TOTAL_TIMED_UP_TO` nodes the total is timed as a user calls
    ``grad`` + ``compile``; above, where one call takes minutes, it is the sum of
    the stages (the same work; the two agree within the noise below it).
    """
    build = FAMILIES[family]
    n = size_for(build, target_nodes)
    graph, values = build(n)
    row: dict[str, float] = {}
    if target_nodes <= TOTAL_TIMED_UP_TO:
        outputs, grad_s = timed(lambda: zoo.training_outputs(values))
        prog, compile_s = timed(lambda: gc.compile(outputs))
        row["total"] = grad_s + compile_s
        del prog, outputs, graph, values
        graph, values = build(n)  # a fresh graph: grad adds its nodes to the graph it differentiates
    row.update(stage_times(values))
    row.setdefault("total", sum(row[stage] for stage in STAGES))
    row["nodes"] = len(graph)
    return row


def exponent(nodes: Sequence[int], seconds: Sequence[float]) -> float:
    """k of ``seconds ≈ c · nodes^k``, by least squares on the logarithms."""
    slope, _ = np.polyfit(np.log(nodes), np.log(np.maximum(seconds, 1e-6)), 1)
    return float(slope)


COLUMNS = ("total",) + STAGES


def table_head(family: str) -> str:
    return f"{family}: CPU seconds per stage\n{'nodes':>9s} {'instr':>9s} " + " ".join(f"{c:>9s}" for c in COLUMNS)


def table_row(r: dict[str, float]) -> str:
    return f"{r['nodes']:>9,d} {r['instructions']:>9,d} " + " ".join(f"{r[c]:>9.3f}" for c in COLUMNS)


def table_foot(rows: Sequence[dict[str, float]]) -> str:
    """The fitted exponents under the rows, and the verdict against the target."""
    nodes = [r["nodes"] for r in rows]
    fits = {c: exponent(nodes, [r[c] for r in rows]) for c in COLUMNS}
    verdict = "met" if fits["total"] <= TARGET_EXPONENT else "missed"
    return (f"{'exponent':>19s} " + " ".join(f"{fits[c]:>9.2f}" for c in COLUMNS) + "\n"
            f"  total exponent {fits['total']:.2f} over {nodes[0]:,d}–{nodes[-1]:,d} nodes "
            f"(target <= {TARGET_EXPONENT}: {verdict}); at {nodes[-1]:,d} nodes: {rows[-1]['total']:.1f} s")


def plot(results: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Log-log time against nodes, one panel per family, one line per stage and the total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.6), squeeze=False)
    for ax, (family, rows) in zip(axes[0], results.items()):
        nodes = np.array([r["nodes"] for r in rows], dtype=float)
        for column in COLUMNS:
            seconds = [max(r[column], 1e-6) for r in rows]
            style = {"color": "black", "linewidth": 2.2} if column == "total" else {"linewidth": 1.2}
            ax.plot(nodes, seconds, marker="o", markersize=3,
                    label=f"{column} (k={exponent(nodes, seconds):.2f})", **style)
        linear = rows[0]["total"] * nodes / nodes[0]
        ax.plot(nodes, linear, linestyle=":", color="grey", label="linear from the first total")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("graph nodes (forward + adjoint)")
        ax.set_ylabel("CPU seconds")
        ax.set_title(f"{family}: grad + compile, by stage")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def profile(family: str, target_nodes: int, top: int = 30) -> str:
    """cProfile of ``grad`` + ``compile`` on one graph, the ``top`` functions by their own time."""
    build = FAMILIES[family]
    graph, values = build(size_for(build, target_nodes))
    profiler = cProfile.Profile()
    profiler.enable()
    gc.compile(zoo.training_outputs(values))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return f"{family}, {len(graph):,d} nodes\n{out.getvalue()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help=f"sizes up to {QUICK_SIZES[-1]:,d} nodes")
    sizes.add_argument("--max", action="store_true", help=f"sizes up to {MAX_SIZES[-1]:,d} nodes (several minutes)")
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append", help="one family only (repeatable)")
    parser.add_argument("--sizes", type=lambda text: tuple(int(n) for n in text.split(",")),
                        help="comma-separated node counts instead of the default sizes")
    parser.add_argument("--plot", type=Path, default=Path("out/bench/scale.png"), help="where to save the chart")
    parser.add_argument("--profile", type=int, metavar="NODES", help="print a cProfile of one compile instead")
    args = parser.parse_args(argv)
    families = args.family or list(FAMILIES)
    if args.profile:
        for family in families:
            print(profile(family, args.profile))
        return 0

    targets = args.sizes or (QUICK_SIZES if args.quick else MAX_SIZES if args.max else SIZES)
    print(f"graphc compile time against graph size (numpy {np.__version__}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at the start)")
    results = {}
    for family in families:
        print(table_head(family), flush=True)
        results[family] = []
        for target in targets:
            results[family].append(measure(family, target))
            print(table_row(results[family][-1]), flush=True)
        print(table_foot(results[family]))
        print(f"  load average {os.getloadavg()[0]:.2f} at the end of {family}\n", flush=True)
    plot(results, args.plot)
    print(f"chart: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
