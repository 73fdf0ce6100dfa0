"""Memory placement: an offset in one arena for every storage block, by one of several strategies.

Blocks are the intervals of :mod:`graphc.memory.analysis`: bytes live from one
schedule step to another. Two blocks live at the same time must not overlap;
the strategies differ in the order they take blocks and the gap each block gets.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Hashable, Sequence

import numpy as np

from graphc.memory.analysis import Interval, align

class _Placed:
    """Blocks placed so far, as arrays sorted by offset, so the time-overlap query is vectorised.

    Blocks at the same offset stay in the order they were added.
    """

    def __init__(self, capacity: int) -> None:
        self.start = np.empty(capacity, np.int64)
        self.end = np.empty(capacity, np.int64)
        self.offset = np.empty(capacity, np.int64)
        self.size = np.empty(capacity, np.int64)
        self.count = 0

    def add(self, iv: Interval, offset: int) -> None:
        k = self.count
        at = int(np.searchsorted(self.offset[:k], offset, side="right"))
        for column in (self.start, self.end, self.offset, self.size):
            column[at + 1: k + 1] = column[at:k]
        self.start[at], self.end[at], self.offset[at], self.size[at] = iv.start, iv.end, offset, align(iv.nbytes)
        self.count += 1

    def fit(self, iv: Interval, best: bool) -> int:
        """The offset for ``iv``: the lowest (first fit) or the tightest (best fit) gap
        among the blocks live at the same time, else the top of those blocks."""
        k = self.count
        live = np.flatnonzero((self.start[:k] <= iv.end) & (self.end[:k] >= iv.start))  # by offset
        if live.size == 0:
            return 0
        offsets = self.offset[live]
        ends = offsets + self.size[live]
        tops = np.maximum.accumulate(np.concatenate(([0], ends)))  # tops[i]: highest end below block i
        gaps = offsets - tops[:-1]
        fits = np.flatnonzero(gaps >= align(iv.nbytes))
        if fits.size == 0:
            return int(tops[-1])
        chosen = fits[np.argmin(gaps[fits])] if best else fits[0]
        return int(tops[chosen])


def _place(intervals: Sequence[Interval], key, best: bool) -> dict[Hashable, int]:
    placed = _Placed(len(intervals))
    offsets = {}
    for iv in sorted(intervals, key=key):
        offsets[iv.key] = placed.fit(iv, best)
        placed.add(iv, offsets[iv.key])
    return offsets


def greedy_by_size(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Largest blocks first (longer-lived first among equals), each into the tightest gap
    that fits (Pisarchyk & Lee 2020; TFLite's planner).

    Each block is checked against every block placed before it: quadratic in the
    number of blocks, which is why ``"auto"`` leaves it out of large plans
    (:data:`GREEDY_BY_SIZE_MAX_BLOCKS`).
    """
    return _place(intervals, key=lambda iv: (-iv.nbytes, iv.start - iv.end, iv.start), best=True)


def _by_start(iv: Interval) -> tuple[int, int, int]:
    return (iv.start, -iv.nbytes, iv.end)


def best_fit_by_start(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Blocks in the order they come alive, each into the tightest gap that fits."""
    return _place_by_start(intervals, best=True)


def first_fit_by_start(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Blocks in the order they come alive, each at the lowest offset that fits (a heap simulator)."""
    return _place_by_start(intervals, best=False)


_HEAD = -1  # the sentinel below every block of the sweep: it ends at offset 0


def _place_by_start(intervals: Sequence[Interval], best: bool) -> dict[Hashable, int]:
    """The offsets :meth:`_Placed.fit` gives blocks taken in the order they come alive, by a sweep.

    Taken by start, the placed blocks that overlap a new block in time are
    those still alive at its start: they are live together, so no two of them
    share a byte, and the gaps between them (sorted by offset) are the free
    holes of the arena. The sweep keeps those blocks in a list linked by
    offset, retires a block when the sweep passes its last step (a heap by
    end), and keeps the positive holes sorted by offset and by size. A block
    then takes the lowest hole that fits (first fit) or the smallest, lowest
    among equals (best fit), else the top of the live blocks — the choice
    ``_Placed.fit`` makes by scanning every placed block, without the scan.
    Blocks of zero bytes would sit between others, so a plan with one takes
    that scan instead.
    """
    order = sorted(intervals, key=_by_start)
    need = [align(iv.nbytes) for iv in order]
    if not all(need):
        return _place(intervals, key=_by_start, best=best)
    offset = [0] * len(order)
    end = [0] * len(order)  # offset + aligned size
    after: dict[int, int | None] = {_HEAD: None}  # the next live block up, by offset
    before: dict[int, int] = {}
    hole_size: dict[int, int] = {}  # the positive hole above a live block (or above offset 0)
    starts: list[int] = []  # the holes' offsets, ascending
    sizes: list[tuple[int, int]] = []  # the holes as (size, offset), ascending
    at_offset: dict[int, int] = {}  # a hole's offset -> the block below it
    retiring: list[tuple[int, int]] = []  # (last step, block) of the live blocks
    top_block = _HEAD

    def base(block: int) -> int:
        return 0 if block == _HEAD else end[block]

    def open_hole(below: int, size: int) -> None:
        if size > 0:
            hole_size[below] = size
            at = base(below)
            at_offset[at] = below
            bisect.insort(starts, at)
            bisect.insort(sizes, (size, at))

    def close_hole(below: int) -> None:
        size = hole_size.pop(below, 0)
        if size:
            at = base(below)
            del at_offset[at]
            del starts[bisect.bisect_left(starts, at)]
            del sizes[bisect.bisect_left(sizes, (size, at))]

    def retire(block: int) -> None:
        nonlocal top_block
        low, high = before.pop(block), after.pop(block)
        close_hole(low)
        close_hole(block)
        after[low] = high
        if high is None:
            top_block = low
        else:
            before[high] = low
            open_hole(low, offset[high] - base(low))

    def choose(size: int) -> int | None:
        """The block below the hole the new block takes, or None for the top."""
        if best:
            k = bisect.bisect_left(sizes, (size, -1))
            return at_offset[sizes[k][1]] if k < len(sizes) else None
        for at in starts:
            if hole_size[at_offset[at]] >= size:
                return at_offset[at]
        return None

    offsets = {}
    for k, iv in enumerate(order):
        while retiring and retiring[0][0] < iv.start:
            retire(heapq.heappop(retiring)[1])
        low = choose(need[k])
        if low is None:
            low, high = top_block, None
            top_block = k
        else:
            high = after[low]
            room = hole_size[low]
            close_hole(low)
        offset[k] = base(low)
        end[k] = offset[k] + need[k]
        after[low], before[k], after[k] = k, low, high
        if high is not None:
            before[high] = k
            open_hole(k, room - need[k])
        heapq.heappush(retiring, (iv.end, k))
        offsets[iv.key] = offset[k]
    return offsets


def place_without_reuse(intervals: Sequence[Interval]) -> dict[Hashable, int]:
    """Every block at its own aligned offset: the baseline every strategy must beat."""
    offsets, top = {}, 0
    for iv in intervals:
        offsets[iv.key] = top
        top += align(iv.nbytes)
    return offsets


STRATEGIES = {
    "greedy-by-size": greedy_by_size,
    "best-fit-by-start": best_fit_by_start,
    "first-fit-by-start": first_fit_by_start,
    "no-reuse": place_without_reuse,
}


def arena_bytes(intervals: Sequence[Interval], offsets: dict[Hashable, int]) -> int:
    """The arena ends at the last byte of its highest block (blocks start aligned; ends need not)."""
    return max((offsets[iv.key] + iv.nbytes for iv in intervals), default=0)


MEMORY_MODES = ("auto", "greedy-by-size", "best-fit-by-start", "first-fit-by-start", "no-reuse")

GREEDY_BY_SIZE_MAX_BLOCKS = 10_000
"""``"auto"`` tries greedy-by-size only on plans of at most this many blocks.

Greedy-by-size compares each block with every block placed before it, so its
time grows with the square of the blocks (about a second at 10,000 blocks,
ten at 30,000), while the two by-start strategies are a sweep (a fraction of a
second at 10⁵ blocks). Above the limit ``"auto"`` keeps the smaller of the
by-start placements; ``memory="greedy-by-size"`` still runs it at any size.
"""


def auto_strategies(blocks: int) -> list[str]:
    """The placement strategies ``"auto"`` tries on a plan of ``blocks`` blocks."""
    by_start = ["best-fit-by-start", "first-fit-by-start"]
    return by_start if blocks > GREEDY_BY_SIZE_MAX_BLOCKS else ["greedy-by-size", *by_start]
