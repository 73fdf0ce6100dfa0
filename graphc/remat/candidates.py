"""What every policy offers and how one is chosen under a budget.

A :class:`Candidate` is a schedule not yet built (its recompute FLOPs known, its dataflow
made on demand); :func:`choose` keeps the least recompute whose planned arena fits.
:class:`Deadline` is the one clock a compile's ``time_limit`` sets.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Sequence


from graphc.ir import Node
from graphc.dataflow import Dataflow


@dataclass
class Candidate:
    """One setting of a policy: its recompute FLOPs, and how to build (and measure) it."""

    label: str
    recompute_flops: int
    build: Callable[[], Dataflow]
    planned_bytes: int | None = None


def node_flops(node: Node, flow: Dataflow) -> int:
    return int(node.op.flops([a.aval for a in flow.args[node]], node.aval, **node.attrs))


def recompute_flops(flow: Dataflow) -> int:
    """FLOPs of the clones in a rewritten flow."""
    return sum(node_flops(n, flow) for n in flow.nodes if n.recompute_of is not None)


def choose(candidates: Sequence[Candidate], budget: int, measure: Callable[[Dataflow], int],
           deadline: "Deadline | None" = None) -> tuple[Candidate, Dataflow] | None:
    """The least recompute whose arena fits the budget (ties: the smaller arena, then list order).

    Candidates are measured lazily in order of recompute, so the search stops at
    the first group that fits; a candidate not yet measured when the deadline
    passes is skipped. None when nothing measured fits. For a fixed list the
    choice is monotone in the budget: every candidate that fits B fits B' > B,
    so the least recompute at B' is at most the one at B, and at equal
    recompute the arena is the same.
    """
    ordered = sorted(enumerate(candidates), key=lambda ic: (ic[1].recompute_flops, ic[0]))
    built: dict[int, Dataflow] = {}  # the flows measured now: the one chosen is returned as measured
    for _, group in itertools.groupby(ordered, key=lambda ic: ic[1].recompute_flops):
        fits = []
        for index, c in group:
            if c.planned_bytes is None:
                if deadline is not None and deadline.passed():
                    continue
                built[index] = c.build()
                c.planned_bytes = measure(built[index])
            if c.planned_bytes <= budget:
                fits.append((c.planned_bytes, index, c))
        if fits:
            _, index, chosen = min(fits, key=lambda f: f[:2])
            return chosen, built[index] if index in built else chosen.build()
    return None


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.perf_counter()``) the remat stage must be done by.

    One deadline is passed down to every search and solve of a compile, each
    getting only the time left, so ``time_limit`` bounds the stage as a whole.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.perf_counter() + seconds)

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.perf_counter())

    def passed(self) -> bool:
        return time.perf_counter() >= self.at

    def sooner(self, seconds: float) -> "Deadline":
        """This deadline moved ``seconds`` earlier: time kept back for the work after a search."""
        return Deadline(self.at - max(seconds, 0.0))
