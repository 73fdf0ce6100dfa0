"""One Program run from several threads at once gives the results of single-threaded runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import graphc as gc
from graphc import zoo

THREADS = 6
RUNS = 60


def _training_step_program() -> tuple[gc.Program, gc.Graph, dict]:
    g, v = zoo.mlp(16, dtype="float64")
    grads = gc.grad(v["loss"], v["params"])
    return gc.compile([v["loss"], *grads]), g, v


def _feeds(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((16, 64)), "y": rng.integers(0, 10, 16)}


def test_concurrent_runs_of_one_program_equal_single_threaded_runs():
    prog, _, _ = _training_step_program()
    feeds = [_feeds(seed) for seed in range(RUNS)]
    expected = [prog.run(f) for f in feeds]
    start = threading.Barrier(THREADS)

    def run(i: int) -> list[np.ndarray]:
        if i < THREADS:
            start.wait()  # all threads in the run loop together
        return prog.run(feeds[i])

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(run, range(RUNS)))
    wrong = [i for i in range(RUNS) if not all(np.array_equal(a, b) for a, b in zip(got[i], expected[i]))]
    assert wrong == [], f"{len(wrong)} of {RUNS} concurrent runs differ from single-threaded runs"


def test_concurrent_runs_that_feed_a_param_equal_single_threaded_runs():
    prog, _, v = _training_step_program()
    w = v["params"][0]
    rng = np.random.default_rng(7)
    feeds = [{**_feeds(seed), w.node.name: rng.standard_normal(w.shape)} for seed in range(RUNS)]
    expected = [prog.run(f) for f in feeds]
    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(prog.run, feeds))
    for g_, e in zip(got, expected):
        for a, b in zip(g_, e):
            np.testing.assert_array_equal(a, b)


def test_concurrent_updating_runs_are_serialised():
    """Runs that update params take turns: N concurrent SGD steps equal N steps in a row."""
    def build():
        g, v = zoo.mlp(8, dtype="float64")
        return gc.compile(v["loss"], updates=gc.sgd(v["loss"], v["params"], 0.01)), v

    feeds = _feeds(3)
    feeds["x"], feeds["y"] = feeds["x"][:8], feeds["y"][:8]
    serial, v_serial = build()
    for _ in range(RUNS):
        serial.run(feeds)
    concurrent, v_conc = build()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda _: concurrent.run(feeds), range(RUNS)))
    for a, b in zip(v_serial["params"], v_conc["params"]):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12)
