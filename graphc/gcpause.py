"""Whole-graph work with CPython's cyclic garbage collector paused.

``grad`` and ``compile`` allocate hundreds of thousands of long-lived objects
(nodes, tuples, dicts) and free few of them. The generational collector runs
after every 700 net allocations and, as the older generations fill, walks them
again and again: at 10⁵–10⁶ nodes that is a quarter of the compile time
(``benchmarks/scale.py``). Reference counting still frees everything acyclic at
once; the collector runs as usual when the pass returns.
"""

from __future__ import annotations

import functools
import gc
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def without_cyclic_gc(function: F) -> F:
    """Run ``function`` with the cyclic collector paused (and restored only if it was on)."""

    @functools.wraps(function)
    def paused(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused  # type: ignore[return-value]
