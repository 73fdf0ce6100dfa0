"""Revolve: Griewank & Walther's binomial checkpointing over the chain of segments.

With s snapshots the reversal of l steps takes the least possible number of forward steps,
r·l − C(s+r, s+1), r the least with C(s+r, s) ≥ l. Here: its action list, its rewrite of
the dataflow, and the candidates the "revolve" policy tries under a budget.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache


from graphc.errors import GraphError
from graphc.ir import Node
from graphc.dataflow import Dataflow
from graphc.remat.candidates import Candidate, node_flops
from graphc.remat.segments import _Builder
from graphc.remat.sqrt import _ladder


@lru_cache(maxsize=None)
def revolve_forward_steps(steps: int, snapshots: int) -> int:
    """Least forward steps to reverse ``steps`` steps with ``snapshots`` snapshots (one holds the start):
    t = r·l − C(s+r, s+1), r the least with C(s+r, s) ≥ l (Griewank & Walther 2000)."""
    if steps <= 1:
        return 0
    if snapshots < 1:
        raise GraphError("revolve needs at least one snapshot")
    r = 0
    while math.comb(snapshots + r, snapshots) < steps:
        r += 1
    return r * steps - math.comb(snapshots + r, snapshots + 1)


@lru_cache(maxsize=None)
def _revolve_split(steps: int, snapshots: int) -> int:
    """The advance m that minimises m + t(l − m, s − 1) + t(m, s)."""
    best, best_cost = 1, None
    for m in range(1, steps):
        cost = m + revolve_forward_steps(steps - m, snapshots - 1) + revolve_forward_steps(m, snapshots)
        if best_cost is None or cost < best_cost:
            best, best_cost = m, cost
    return best


def revolve_actions(steps: int, snapshots: int) -> list[tuple[str, int, int]]:
    """The binomial reversal schedule as actions over states 0..steps:

    ``("advance", a, b)`` computes states a+1..b from state a; ``("restore", a, 0)``
    makes the snapshot of state a current; ``("reverse", i, 0)`` runs the
    backward of step i (from state i−1). Built with an explicit stack.
    """
    if snapshots < 1:
        raise GraphError("revolve needs at least one snapshot")
    actions: list[tuple[str, int, int]] = []
    stack: list[tuple] = [("treeverse", 0, steps, snapshots)]
    while stack:
        task = stack.pop()
        if task[0] != "treeverse":
            actions.append(task)
            continue
        _, a, b, s = task
        length = b - a
        if length == 1:
            actions.append(("reverse", b, 0))
        elif s == 1:
            for i in range(b, a, -1):  # every step from the one snapshot, last first
                if i < b:
                    actions.append(("restore", a, 0))
                if i - 1 > a:
                    actions.append(("advance", a, i - 1))
                actions.append(("reverse", i, 0))
        else:
            m = _revolve_split(length, s)
            actions.append(("advance", a, a + m))
            stack.append(("treeverse", a, a + m, s))
            stack.append(("restore", a, 0))
            stack.append(("treeverse", a + m, b, s - 1))
    return actions


def revolve(flow: Dataflow, segments: list[list[Node]], snapshots: int) -> Dataflow:
    """Binomial checkpointing over the chain of segments with ``snapshots`` snapshots."""
    steps = len(segments)
    builder = _Builder(flow, segments)
    state_needs = [builder.needed_for_state(k) for k in range(steps)]
    evaluated = [False] * steps
    snaps: dict[int, Node | None] = {0: None}

    def advance(a: int, b: int) -> None:
        for k in range(a, b):  # step k+1 is segment k; run again, only as far as its last state
            builder.evaluate(k, first=not evaluated[k], needed=None if not evaluated[k] else state_needs[k])
            evaluated[k] = True

    for action, a, b in revolve_actions(steps, snapshots):
        if action == "advance":
            advance(a, b)
            snaps[b] = builder.current[segments[b - 1][-1]]
        elif action == "restore":
            if a > 0:
                builder.restore(segments[a - 1][-1], snaps[a])
        else:  # reverse step a (segment a-1) from state a-1
            k = a - 1
            if not evaluated[k]:
                advance(k, a)  # the first turn: the originals of the last segment
            else:
                builder.evaluate(k, first=False, needed=builder.needed_by_backward(k))
            builder.reverse(k)
    return builder.finish()


def _revolve_candidates(flow: Dataflow, segments: list[list[Node]], budget: int | None) -> list[Candidate]:
    count = len(segments)
    if budget is None:  # the fewest snapshots that reverse with at most one extra forward step per step
        s = 1
        while revolve_forward_steps(count, s) > 2 * count:
            s += 1
        settings = [s]
    else:
        settings = _ladder(count - 1)
    builder = _Builder(flow, segments)
    segment_flops = [sum(node_flops(n, flow) for n in builder.needed_for_state(k)) for k in range(count)]
    retaped = sum(sum(node_flops(n, flow) for n in builder.needed_by_backward(k)) for k in range(count - 1))
    candidates = []
    for s in settings:
        advanced = _revolve_advance_flops(revolve_actions(count, s), segment_flops)
        candidates.append(Candidate(f"revolve, {s} snapshots", advanced + retaped, lambda s=s: revolve(flow, segments, s)))
    return candidates


def _revolve_advance_flops(actions: list[tuple[str, int, int]], segment_flops: list[int]) -> int:
    """FLOPs of the advances that compute a segment again (first evaluations are the forward pass)."""
    prefix = list(itertools.accumulate(segment_flops, initial=0))
    reached, total = 0, 0
    for action, a, b in actions:
        if action == "advance":
            again_until = min(b, reached)
            total += prefix[again_until] - prefix[a] if again_until > a else 0
            reached = max(reached, b)
    return total
