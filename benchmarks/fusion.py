"""compile(fuse=True) against the NumPy path: instructions and the time of one training step.

For each workload (a training step: the loss, with Adam's updates compiled in) the script
compiles the program twice, unfused (the NumPy path, the default) and with ``fuse=True``
(chains of elementwise ops as one numexpr kernel, graphc/passes/fusion.py), trains both side
by side from the same params and checks their losses agree (to 1e-5 relative), then times
one step of each: the two calls alternated one by one for about 2 s per workload (0.3 s with
``--quick``), the 10th percentile in ms. numexpr runs on one thread (``set_num_threads(1)``),
NumPy's BLAS on one thread when threadpoolctl is installed, so the comparison is one core
against one core. ``instructions`` and ``arena`` are the plans' own figures.

    python benchmarks/fusion.py [--quick]

Measured on the project's 2-core machine, shared with other work (load average 3.0 during
the run; numexpr 2.14.2, NumPy 2.4.6, float32, no threadpoolctl installed; the figures move
by tens of percent between runs, the ratios less: an earlier run gave 1.8–2.9)::

    workload                            instructions      arena KiB      ms per step   fused/NumPy
                                        NumPy  fused   NumPy  fused   NumPy   fused
    mlp 32×64-128-10 (tanh)               108     76      64     64   0.320   0.691       2.16
    mlp 32×64-128-10 (relu)               106     76      64     64   0.335   0.675       2.01
    chain 100×32, batch 16               5604   3802     208    208   9.649  24.731       2.56
    attention seq 32, dim 32              140    108      28     28   0.231   0.511       2.21
    mlp 256×256-1024-1024-10 (tanh)       164    114    8192   8192  93.607 148.576       1.59

Fusion removes 23–32 % of the instructions of these steps; the arena does not shrink (the
planner's in-place reuse already kept each chain in one buffer: a bias add is written into
its matmul's output, ``np.matmul(a, b, out=o); np.add(o, bias, out=o)``, without fusion).
And one numexpr thread is slower, 1.6–2.9×: a numexpr call costs what NumPy's two ufunc
calls cost on small arrays (about 4 µs for ``a·b + b`` on 16×32 float32, more with
broadcast operands: the Adam chains read one-element constants), and its float32
``tanh`` and ``exp`` are several times slower than NumPy 2's vectorised loops (16 µs against
2.8 µs for ``tanh`` of 16×32; graphc/ops/fused.py has the per-chain figures). Hence
``fuse=False`` stays the default.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any, Callable

import numpy as np

import graphc as gc
from graphc import zoo


def workloads(quick: bool) -> list[tuple[str, Callable[[], tuple[gc.Graph, dict[str, Any]]]]]:
    small = [
        ("mlp 32×64-128-10 (tanh)", lambda: zoo.mlp(32, (64, 128, 10))),
        ("mlp 32×64-128-10 (relu)", lambda: zoo.mlp(32, (64, 128, 10), activation="relu")),
        ("chain 100×32, batch 16", lambda: zoo.chain(100, width=32, batch=16)),
        ("attention seq 32, dim 32", lambda: zoo.attention(seq=32, dim=32)),
    ]
    if quick:
        return small
    return small + [("mlp 256×256-1024-1024-10 (tanh)", lambda: zoo.mlp(256, (256, 1024, 1024, 10)))]


def step_program(build: Callable[[], tuple[gc.Graph, dict[str, Any]]], fuse: bool) -> tuple[gc.Program, dict]:
    graph, values = build()
    loss = values["loss"]
    prog = gc.compile(loss, updates=gc.optim.adam(loss, list(values["params"]), lr=1e-3), fuse=fuse)
    return prog, zoo.feeds(graph)


def measure(name: str, build: Callable, seconds: float) -> tuple:
    plain, feeds = step_program(build, False)
    fused, _ = step_program(build, True)
    for _ in range(3):  # same params, same feeds: the two train alike
        a, b = float(plain.run(feeds)), float(fused.run(feeds))
        if not np.isclose(a, b, rtol=1e-5):
            raise SystemExit(f"{name}: the fused step's loss {b!r} differs from the NumPy path's {a!r}")
    times: tuple[list[float], list[float]] = ([], [])
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times[0]) < 5:
        for prog, out in ((plain, times[0]), (fused, times[1])):
            start = time.perf_counter()
            prog.run(feeds)
            out.append(time.perf_counter() - start)
    tenth = [sorted(t)[len(t) // 10] * 1e3 for t in times]
    return (name, len(plain.plan.instructions), len(fused.plan.instructions), plain.plan.arena_bytes / 1024,
            fused.plan.arena_bytes / 1024, tenth[0], tenth[1], tenth[1] / tenth[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, 0.3 s each")
    args = parser.parse_args(argv)
    try:
        import numexpr
    except ImportError:
        print("benchmarks/fusion.py needs numexpr: pip install graphc[fast]", file=sys.stderr)
        return 1
    numexpr.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        limits: Any = threadpool_limits(1)
    except ImportError:
        limits = contextlib.nullcontext()
    with limits:
        print(f"{'workload':34s}{'instructions':>14s}{'arena KiB':>15s}{'ms per step':>17s}{'fused/NumPy':>14s}")
        print(f"{'':34s}{'NumPy':>7s}{'fused':>7s}{'NumPy':>8s}{'fused':>7s}{'NumPy':>8s}{'fused':>8s}")
        for name, build in workloads(args.quick):
            row = measure(name, build, 0.3 if args.quick else 2.0)
            print(f"{row[0]:34s}{row[1]:7d}{row[2]:7d}{row[3]:8.0f}{row[4]:7.0f}{row[5]:8.3f}{row[6]:8.3f}{row[7]:11.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
