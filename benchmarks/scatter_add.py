"""The scatter-add kernel (the gradient of take and embedding) against np.add.at.

``scatter_add`` adds row k of g into row ``indices[k]`` of a zeroed output;
repeated indices add up. Two ways measured side by side on the same data:

- ``add.at``: ``out[...] = 0; np.add.at(out, indices, g)``;
- ``graphc``: graphc's kernel, which from 4096 elements of g and rows of 8 or
  more multiplies a 0/1 CSR matrix (row i holds a 1 in each column k with
  ``indices[k] = i``) by g's rows with ``scipy.sparse``, and uses ``np.add.at``
  otherwise (its fast path for single elements wins at width 1).

The shapes are embedding gradients (rows V, width D, K looked-up tokens): GPT-2's
token table at 8 sequences of 1024 tokens, small tables, many repeats of few
rows, a vector (D = 1) and a tiny case where the sparse set-up does not pay.
Each figure is the median of several repetitions in ms, the two interleaved.

    python benchmarks/scatter_add.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphc.ops import indexing  # noqa: E402

CASES = [  # (rows V, width D, tokens K)
    (50257, 768, 8192),
    (1000, 64, 4096),
    (100, 16, 100_000),
    (30_000, 128, 2048),
    (1000, 1, 50_000),
    (1000, 64, 32),
]


def add_at(out: np.ndarray, g: np.ndarray, indices: np.ndarray) -> None:
    out[...] = 0
    np.add.at(out, indices, g)


def graphc_kernel(out: np.ndarray, g: np.ndarray, indices: np.ndarray) -> None:
    indexing._scatter_kernel(out, g, indices, axis=0, shape=out.shape, padding_idx=None)


def elapsed_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest case, 3 repetitions")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    rng = np.random.default_rng(0)
    print(f"{'V':>7} {'D':>5} {'K':>8} {'add.at ms':>10} {'graphc ms':>10} {'speed-up':>9}")
    for rows, width, count in CASES[1:] if args.quick else CASES:
        indices = rng.integers(0, rows, size=count)
        g = rng.standard_normal((count, width)).astype(np.float32)
        expected = np.zeros((rows, width), np.float32)
        got = np.empty_like(expected)
        add_at(expected, g, indices)
        graphc_kernel(got, g, indices)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        slow_runs, fast_runs = [], []
        for _ in range(repeats):  # interleaved, so a slow spell of the machine hits both
            slow_runs.append(elapsed_ms(lambda: add_at(expected, g, indices)))
            fast_runs.append(elapsed_ms(lambda: graphc_kernel(got, g, indices)))
        slow, fast = statistics.median(slow_runs), statistics.median(fast_runs)
        print(f"{rows:>7} {width:>5} {count:>8} {slow:>10.2f} {fast:>10.2f} {slow / fast:>8.1f}×")


if __name__ == "__main__":
    main()
