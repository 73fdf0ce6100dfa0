"""What a run allocates, measured with tracemalloc (shared by the tests of the memory planner and the ops)."""

from __future__ import annotations

import tracemalloc

import graphc as gc


def run_peak(prog: gc.Program, feeds: dict) -> tuple[int, int]:
    """(peak bytes traced during a second run, bytes of that run's outputs): the first run warms up."""
    prog.run(feeds)
    tracemalloc.start()
    try:
        outputs = prog.run(feeds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return peak, sum(o.nbytes for o in outputs)
