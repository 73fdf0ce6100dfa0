"""One Program run from several threads: a pool of executables against one lock.

``Program.run`` is safe from several threads. Two ways to make it so were
measured side by side here:

- ``pool``: each concurrent run takes a bound executable (its own arena) from a
  pool that grows to the number of runs in flight (what ``Program`` does);
- ``lock``: one executable, one lock around ``run`` (emulated here by a lock
  around the pooled program, whose pool then never grows past one).

The table gives runs per second for 1, 2 and 4 threads, each thread calling
``run`` in a loop, on two training steps (loss and gradients): a small MLP,
where a run is mostly Python calling small kernels under the GIL, and a large
matmul step (512×512 float64 layers), where BLAS releases the GIL. NumPy's BLAS
is capped at one thread (threadpoolctl) so that the parallelism measured is the
runs', not BLAS's own. ``arena×`` is the number of executables the pool held at
the end: memory is the arena times that. Each figure is the median of a few
repetitions, the modes interleaved round by round in one process.

    python benchmarks/threads.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphc as gc  # noqa: E402
from graphc import zoo  # noqa: E402

THREAD_COUNTS = (1, 2, 4)


def small_mlp_step() -> tuple[gc.Program, dict]:
    g, v = zoo.mlp(32, dtype="float32")
    return gc.compile(zoo.training_outputs(v)), zoo.feeds(g, seed=0)


def large_matmul_step(n: int = 512) -> tuple[gc.Program, dict]:
    rng = np.random.default_rng(0)
    with gc.Graph("matmul-step"):
        x = gc.input("x", shape=(n, n), dtype="float64")
        w1 = gc.param("w1", shape=(n, n), dtype="float64", init=rng.standard_normal((n, n)) / np.sqrt(n))
        w2 = gc.param("w2", shape=(n, n), dtype="float64", init=rng.standard_normal((n, n)) / np.sqrt(n))
        loss = gc.sum(gc.tanh(gc.tanh(x @ w1) @ w2))
    return gc.compile([loss, *gc.grad(loss, [w1, w2])]), {"x": rng.standard_normal((n, n))}


def runs_per_second(run: Callable[[], object], threads: int, runs_per_thread: int) -> float:
    """Wall-clock throughput of ``threads`` threads each calling ``run`` ``runs_per_thread`` times."""
    start_line = threading.Barrier(threads + 1)

    def worker() -> None:
        start_line.wait()
        for _ in range(runs_per_thread):
            run()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    return threads * runs_per_thread / (time.perf_counter() - start)


def measure(name: str, prog: gc.Program, feeds: dict, runs_per_thread: int, repeats: int) -> list[str]:
    lock = threading.Lock()

    def locked() -> object:
        with lock:
            return prog.run(feeds)

    modes = {"pool": lambda: prog.run(feeds), "lock": locked}
    for run in modes.values():
        run()  # warm-up
    rows = []
    for threads in THREAD_COUNTS:
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(repeats):
            for mode, run in modes.items():
                samples[mode].append(runs_per_second(run, threads, runs_per_thread))
        pool, locked_rate = (statistics.median(samples[m]) for m in ("pool", "lock"))
        rows.append(f"{name:<14s} {threads:>7d} {pool:>10.1f} {locked_rate:>10.1f} {pool / locked_rate:>10.2f}")
    rows.append(f"{'':<14s} arena {prog.plan.arena_bytes:,d} B × {len(prog._idle)} executables in the pool")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    with contextlib.ExitStack() as stack:
        try:
            import threadpoolctl

            stack.enter_context(threadpoolctl.threadpool_limits(limits=1))
        except ImportError:
            print("threadpoolctl is not installed: BLAS threads are not capped")
        print(f"{'workload':<14s} {'threads':>7s} {'pool r/s':>10s} {'lock r/s':>10s} {'pool/lock':>10s}")
        for name, build, runs in (("small MLP", small_mlp_step, 50 if args.quick else 400),
                                  ("512 matmuls", large_matmul_step, 2 if args.quick else 12)):
            prog, feeds = build()
            for row in measure(name, prog, feeds, runs, repeats):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
