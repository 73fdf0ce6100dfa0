"""What a batch that varies costs: specialising a new size, and running a size made before.

A graph built with ``gc.input("x", shape=(None, 64))`` compiles to a program that
specialises for each batch size on its first run (replay the graph with None → B,
then the whole compile pipeline) and reuses that program for later runs of B.
Two figures for the training step of the digits MLP 64-128-10 (float32, ``gc.sgd``):

- ``first run``: the first run of a new size (specialise + compile + run), against
  ``gc.compile`` of the same graph built for that size plus its first run;
- ``run``: a run of a size already made, against the fixed-size program's run (the
  cost of reading the batch size from the feeds and finding its program).

Each figure is the median of several repetitions, the two sides interleaved in one
process; the ratios are what to read (absolute times depend on the machine's load).

    python benchmarks/batch.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphc as gc  # noqa: E402
from graphc import zoo  # noqa: E402

SIZES = (64, 128, 10)


def training_step(batch: int | None) -> gc.Program:
    _, v = zoo.mlp(batch, SIZES)
    return gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.01))


def feeds(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(rows)
    return {"x": rng.random((rows, SIZES[0]), dtype=np.float32), "y": rng.integers(0, SIZES[-1], rows)}


def seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def first_run_seconds(rows: int) -> tuple[float, float]:
    """(varying: make the program for ``rows`` and run it, fixed: build + compile + run)."""
    data = feeds(rows)
    varying = training_step(None)  # built outside the timing: the fixed side's build is timed, a fair upper bound
    return (seconds(lambda: varying.run(data)), seconds(lambda: training_step(rows).run(data)))


def run_seconds(rows: int, runs: int) -> tuple[float, float]:
    """Seconds per run of an already specialised size and of the fixed-size program."""
    data = feeds(rows)
    varying, fixed = training_step(None), training_step(rows)
    varying.run(data)
    fixed.run(data)
    times = {"varying": [], "fixed": []}
    for _ in range(5):
        for name, prog in (("varying", varying), ("fixed", fixed)):
            times[name].append(seconds(lambda: [prog.run(data) for _ in range(runs)]) / runs)
    return statistics.median(times["varying"]), statistics.median(times["fixed"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    args = parser.parse_args()
    batches = (32, 449) if args.quick else (1, 32, 128, 449)
    repeats, runs = (3, 20) if args.quick else (7, 100)

    print(f"MLP {'-'.join(map(str, SIZES))} training step (float32, sgd): varying batch (None) against a graph built per size")
    print(f"{'batch':>6} | {'first run (ms)':>15} {'fixed (ms)':>11} {'ratio':>6} | {'run (µs)':>9} {'fixed (µs)':>11} {'ratio':>6}")
    for rows in batches:
        first = [first_run_seconds(rows) for _ in range(repeats)]
        first_varying = statistics.median(f[0] for f in first)
        first_fixed = statistics.median(f[1] for f in first)
        run_varying, run_fixed = run_seconds(rows, runs)
        print(f"{rows:>6} | {1e3 * first_varying:>15.2f} {1e3 * first_fixed:>11.2f} {first_varying / first_fixed:>6.2f} | "
              f"{1e6 * run_varying:>9.1f} {1e6 * run_fixed:>11.1f} {run_varying / run_fixed:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
