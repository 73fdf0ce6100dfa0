"""The plan as Python source against the runtime: the time of one step, and of one instruction.

For each workload (a training step: the loss, with SGD updates compiled in) the script
compiles the program once and writes it as a module with ``prog.to_source()``, then times

- ``prog.run(feeds)``: the runtime, :class:`graphc.runtime.Executable` (each instruction a
  prepared ``functools.partial`` of the op's kernel, called in a loop);
- ``module.run(feeds, params)``: the generated module (each instruction one NumPy call
  written out, ``np.add(b3, b4, out=b5)``, in one function);

and, inside each, the instructions alone: the runtime's loop over its prepared calls, and the
generated ``step``. A step's time is ``fixed + instructions × per-instruction``; the table gives
both loops per instruction, and what the generated code saves per instruction. Both
programs train side by side from the same params, and their losses are checked equal (bit for
bit) before anything is timed.

Timing: the calls of each implementation are repeated so that one repetition lasts about
20 ms; repetitions of the four timings are interleaved, round by round, in one process, and
the table gives the median time of one call in µs. ``noise`` is the largest interquartile
range over median of a row: closer ratios than that are no difference. NumPy's BLAS runs on
one thread (threadpoolctl), as in ``speed.py``.

    python benchmarks/codegen.py [--quick] [--repeat N]
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

REPEAT_SECONDS = 0.02


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
    executable = prog._executable
    steps = executable.steps
    slots, step = namespace["_binding"](None)
    arrays = [params[name] for name in namespace["PARAMS"]]

    def runtime_loop() -> None:
        for s in steps:
            s()

    return Bench(workload.name, len(prog.plan.instructions), {
        "runtime run": lambda: prog.run(feeds),
        "source run": lambda: run(feeds, params),
        "runtime loop": runtime_loop,
        "source step": lambda: step(*arrays),
    })


def time_calls(bench: Bench, repeat: int, rng: np.random.Generator) -> dict[str, list[float]]:
    """Seconds per call of each timing, ``repeat`` interleaved repetitions (in a random order each round)."""
    numbers = {}
    for key, call in bench.calls.items():
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < REPEAT_SECONDS / 4 or count < 3:
            call()
            count += 1
        numbers[key] = max(1, int(count * REPEAT_SECONDS / (time.perf_counter() - start)))
    samples: dict[str, list[float]] = {key: [] for key in bench.calls}
    keys = list(bench.calls)
    for _ in range(repeat):
        for key in rng.permutation(keys):
            call, n = bench.calls[key], numbers[key]
            start = time.perf_counter()
            for _ in range(n):
                call()
            samples[key].append((time.perf_counter() - start) / n)
    return samples


def spread(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="four small workloads, 5 repetitions")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per timing (default 21; 5 with --quick)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 21)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    header = (f"{'workload':28s} {'instr':>5s} {'runtime run':>11s} {'source run':>10s} {'speed-up':>8s} {'(min)':>6s} "
              f"{'runtime/instr':>13s} {'source/instr':>12s} {'saved/instr':>11s} {'noise':>5s}")
    print("one training step (loss, SGD updates compiled in): µs per call, the median over repetitions (speed-up also")
    print("of the minima); /instr: the instructions' loop alone (runtime: its prepared calls; source: step), minima")
    print(header)
    print("-" * len(header))
    with threadpool_limits(1):
        for workload in workloads(args.quick):
            bench = prepare(workload)
            samples = time_calls(bench, repeat, rng)
            med = {key: statistics.median(v) * 1e6 for key, v in samples.items()}
            low = {key: min(v) * 1e6 for key, v in samples.items()}
            n = bench.instructions
            noise = max(spread(v) for v in samples.values())
            print(f"{bench.name:28s} {n:5d} {med['runtime run']:11.1f} {med['source run']:10.1f} "
                  f"{med['runtime run'] / med['source run']:7.2f}x {low['runtime run'] / low['source run']:5.2f}x "
                  f"{low['runtime loop'] / n:13.2f} {low['source step'] / n:12.2f} "
                  f"{(low['runtime loop'] - low['source step']) / n:11.2f} {noise:5.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
