"""The plan as Python source against the runtime: the time of one step, and of one instruction.

For each workload (a training step: the loss, with SGD updates compiled in) the script
compiles the program once and writes it as a module with ``prog.to_source()``, then times

- ``prog.run(feeds)``: the runtime, :class:`graphc.runtime.Executable` (its
  instructions are one Python function the runtime writes for its binding on the first run:
  a ``lambda`` kernel inlined as its NumPy call, any other kernel called by name);
- ``module.run(feeds, params)``: the generated module (each instruction one NumPy call
  written out, ``np.add(b3, b4, out=b5)``, in one function);

and, inside each, the instructions alone: the runtime's function of the instructions, and the
generated ``step``. A step's time is ``fixed + instructions × per-instruction``; the table gives
both loops per instruction, and what the generated code saves per instruction. Both
programs train side by side from the same params, and their losses are checked equal (bit for
bit) before anything is timed.

Timing: the four calls are alternated one by one, round after round, for about 3 s per
workload (0.5 s with ``--quick``), in one process; the table gives the 10th percentile of each
call's times in µs (on a machine shared with other work, the times a call takes when nothing
else interrupts it), and ``median`` the speed-up of the medians, for comparison. ``to_source``
and ``compile`` are what the module costs once: writing it, and Python compiling it.
NumPy's BLAS runs on one thread (threadpoolctl), as in ``speed.py``.

    python benchmarks/codegen.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import graphc as gc
from graphc import zoo



@dataclass
class Workload:
    name: str
    build: Callable[[], tuple[gc.Graph, dict[str, Any]]]


def workloads(quick: bool) -> list[Workload]:
    small = [
        Workload("seed DAG 8×4 (small step)", lambda: zoo.ZOO["seed"]()),
        Workload("mlp 32×64-128-10", lambda: zoo.mlp(32, (64, 128, 10))),
        Workload("chain 100×32, batch 16", lambda: zoo.chain(100, width=32, batch=16)),
        Workload("chain 100×2, batch 1 (tiny)", lambda: zoo.chain(100, width=2, batch=1)),
    ]
    if quick:
        return small
    return small + [
        Workload("chain 100×256, batch 256", lambda: zoo.chain(100, width=256, batch=256)),
        Workload("mlp 256×64-256-256-10", lambda: zoo.mlp(256, (64, 256, 256, 10))),
        Workload("attention 128×64, 4 heads", lambda: zoo.attention(128, 64, heads=4)),
    ]


@dataclass
class Bench:
    name: str
    instructions: int
    calls: dict[str, Callable[[], Any]]


def prepare(workload: Workload) -> Bench:
    graph, values = workload.build()
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.01))
    namespace: dict[str, Any] = {}
    exec(compile(prog.to_source(), f"<{workload.name}>", "exec"), namespace)
    run = namespace["run"]
    feeds = zoo.feeds(graph)
    params = {name: graph.params[name].data.copy() for name in prog.plan.params}
    for _ in range(3):
        expected, got = prog.run(feeds), run(feeds, params)
        if not np.array_equal(expected, got):
            raise SystemExit(f"{workload.name}: the generated module computed {got}, the runtime {expected}")
    runtime_loop = prog._executable._prepare()  # the instructions (and the outputs' new arrays)
    slots, step = namespace["_binding"](None)
    arrays = [params[name] for name in namespace["PARAMS"]]

    return Bench(workload.name, len(prog.plan.instructions), {
        "runtime run": lambda: prog.run(feeds),
        "source run": lambda: run(feeds, params),
        "runtime loop": runtime_loop,
        "source step": lambda: step(*arrays),
    })


def time_calls(bench: Bench, seconds: float) -> dict[str, list[float]]:
    """Seconds of single calls of each timing, alternated call by call for about ``seconds`` (5 to 400 rounds)."""
    per_round = 0.0
    for call in bench.calls.values():
        start = time.perf_counter()
        call()
        per_round += time.perf_counter() - start
    rounds = max(5, min(400, int(seconds / max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {key: [] for key in bench.calls}
    clock = time.perf_counter
    for _ in range(rounds):
        for key, call in bench.calls.items():
            start = clock()
            call()
            samples[key].append(clock() - start)
    return samples


def source_seconds(workload: Workload) -> tuple[float, float]:
    """Seconds of ``prog.to_source()`` and of compiling the module it returns (paid once)."""
    graph, values = workload.build()
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.01))
    start = time.perf_counter()
    source = prog.to_source()
    middle = time.perf_counter()
    compile(source, "<module>", "exec")
    return middle - start, time.perf_counter() - middle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="four small workloads, about 0.5 s of calls each")
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else 3.0
    from threadpoolctl import threadpool_limits

    header = (f"{'workload':28s} {'instr':>5s} {'runtime run':>11s} {'source run':>10s} {'speed-up':>8s} "
              f"{'runtime/instr':>13s} {'source/instr':>12s} {'saved/instr':>11s} {'median':>7s} {'to_source':>9s} "
              f"{'compile':>7s}")
    print("one training step (loss, SGD updates compiled in), µs per call, 10th percentile of calls alternated one by")
    print("one; /instr: the instructions alone (runtime: its written function; source: step); median: the speed-up")
    print("of the medians; to_source, compile: ms, once")
    print(header)
    print("-" * len(header))
    with threadpool_limits(1):
        for workload in workloads(args.quick):
            bench = prepare(workload)
            samples = time_calls(bench, seconds)
            low = {key: float(np.percentile(v, 10)) * 1e6 for key, v in samples.items()}
            med = {key: statistics.median(v) * 1e6 for key, v in samples.items()}
            n = bench.instructions
            writing, compiling = source_seconds(workload)
            print(f"{bench.name:28s} {n:5d} {low['runtime run']:11.1f} {low['source run']:10.1f} "
                  f"{low['runtime run'] / low['source run']:7.2f}x {low['runtime loop'] / n:13.2f} "
                  f"{low['source step'] / n:12.2f} {(low['runtime loop'] - low['source step']) / n:11.2f} "
                  f"{med['runtime run'] / med['source run']:6.2f}x {writing * 1e3:9.1f} {compiling * 1e3:7.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
