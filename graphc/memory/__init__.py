"""The memory stage: liveness, in-place reuse and arena offsets for one schedule.

- :mod:`graphc.memory.analysis` — aliasing (views own no storage), storage
  (in-place reuse, writes into params), liveness intervals and the peak of live
  bytes; the schedule and the recompute stage use it to compare orders;
- :mod:`graphc.memory.placement` — offsets in one arena by greedy-by-size,
  best-fit or first-fit by start, or without reuse.

:func:`plan_memory` runs both and returns one :class:`MemoryPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

from graphc.dataflow import Dataflow
from graphc.ir import TOP_LEVEL, Aval, Node
from graphc.memory.analysis import (
    ALIGNMENT,
    Interval,
    alias_analysis,
    align,
    is_copying_view,
    live_bytes_per_step,
    liveness,
    no_reuse_bytes,
    node_scratch,
    peak_live_bytes,
    storage_assignment,
)
from graphc.memory.placement import (
    GREEDY_BY_SIZE_MAX_BLOCKS,
    MEMORY_MODES,
    STRATEGIES,
    arena_bytes,
    auto_strategies,
    best_fit_by_start,
    first_fit_by_start,
    greedy_by_size,
    place_without_reuse,
)


PEAK_KINDS = {
    "forward": "forward values",
    "recompute": "forward values",
    "backward": "gradients",
    "update": "update temporaries",
    "scratch": "scratch",
}
"""How the bytes live at the peak are reported, by the role of the node owning each block
(:meth:`Dataflow.roles <graphc.dataflow.Dataflow.roles>`): forward values (kept for the backward
pass, or recomputed), gradients (every adjoint value), an optimizer's temporaries, and scratch."""


@dataclass
class MemoryPlan:
    """Where every intermediate lives, and the figures that judge the placement.

    - ``planned_bytes``: the arena that holds every intermediate and scratch;
    - ``lower_bound_bytes``: max over steps of the bytes live at that step;
    - ``no_reuse_bytes``: the arena if nothing shared storage;
    - ``params_bytes`` / ``state_bytes`` / ``inputs_bytes`` / ``outputs_bytes``:
      outside the arena — the trained params and the state params (optimizer
      moments, step counts) the program reads or updates where they are stored,
      the slots feeds are copied into, and the arrays each run returns;
    - ``peak_step`` / ``peak_bytes_by_kind``: the first step where the live bytes
      reach the lower bound, and what is live there by kind (:data:`PEAK_KINDS`);
    - ``peak_bytes_by_scope``: what is live at the peak step by the first name of
      the scope of the value each block holds there (``"encoder"`` for
      ``"encoder/block3"``, ``""`` at top level; :func:`graphc.scope`), largest
      first; like the kinds, the scopes' bytes sum to ``lower_bound_bytes``;
    - ``live_bytes``: bytes live at each step of the schedule;
    - ``storage``: for each node, the node whose storage holds its value (itself,
      the base of a view, an operand reused in place, or a param it writes);
    - ``scratch``: the temporaries each kernel asks for.
    """

    offsets: dict[Hashable, int]
    intervals: list[Interval]
    planned_bytes: int
    lower_bound_bytes: int
    no_reuse_bytes: int
    params_bytes: int
    inputs_bytes: int
    live_bytes: list[int] = field(repr=False)
    strategy: str = "no-reuse"
    strategy_bytes: dict[str, int] = field(default_factory=dict)
    state_bytes: int = 0
    outputs_bytes: int = 0
    peak_step: int = 0
    peak_bytes_by_kind: dict[str, int] = field(default_factory=dict)
    peak_bytes_by_scope: dict[str, int] = field(default_factory=dict)
    storage: dict[Node, Node] = field(default_factory=dict, repr=False)
    scratch: dict[Node, list[Aval]] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        def mib(n: int) -> str:
            return f"{n:>12,d} B  ({n / 2**20:8.3f} MiB)"

        ratio = self.planned_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0
        lines = [
            f"memory plan ({self.strategy}, {len(self.intervals)} blocks, {len(self.live_bytes)} steps)",
            f"  arena (planned)      {mib(self.planned_bytes)}",
            f"  lower bound          {mib(self.lower_bound_bytes)}   planned/LB = {ratio:.3f}",
            f"  without reuse        {mib(self.no_reuse_bytes)}",
            f"  live at the peak (step {self.peak_step} of {len(self.live_bytes)}):",
        ]
        lines += [f"    {kind:<18s} {mib(nbytes)}" for kind, nbytes in self.peak_bytes_by_kind.items()]
        if any(self.peak_bytes_by_scope):  # a graph built without scopes has only the top level
            lines.append("  live at the peak, by scope:")
            lines += [f"    {scope or TOP_LEVEL:<18s} {mib(nbytes)}" for scope, nbytes in self.peak_bytes_by_scope.items()]
        lines += [
            "  outside the arena:",
            f"    params             {mib(self.params_bytes)}",
            f"    optimizer state    {mib(self.state_bytes)}",
            f"    inputs             {mib(self.inputs_bytes)}",
            f"    outputs            {mib(self.outputs_bytes)}",
        ]
        return "\n".join(lines)


def peak_by_kind(intervals: Sequence[Interval], live: Sequence[int], roles: dict[Node, str]) -> tuple[int, dict[str, int]]:
    """The first step of the most live bytes, and the bytes live there by kind (:data:`PEAK_KINDS`)."""
    by_kind = dict.fromkeys(dict.fromkeys(PEAK_KINDS.values()), 0)
    if not live:
        return 0, by_kind
    peak = max(range(len(live)), key=live.__getitem__)
    for iv in intervals:
        if iv.start <= peak <= iv.end:
            role = "scratch" if isinstance(iv.key, tuple) else roles[iv.key]
            by_kind[PEAK_KINDS[role]] += iv.nbytes
    return peak, by_kind


def peak_by_scope(intervals: Sequence[Interval], peak: int, order: Sequence[Node],
                  storage: dict[Node, Node]) -> dict[str, int]:
    """The bytes live at step ``peak`` by the top-level name of their scope, largest first.

    A block of storage counts in the scope of the value it holds at the peak: the
    last value written into it at or before that step (values reused in place
    follow one another in a block); a scratch block in the scope of its kernel's node.
    """
    holder: dict[Node, Node] = {}
    for node in order[: peak + 1]:
        block = storage[node]
        if not (node.op.view and block is not node):  # a bound view writes nothing
            holder[block] = node
    by_scope: dict[str, int] = {}
    for iv in intervals:
        if iv.start <= peak <= iv.end:
            node = iv.key[0] if isinstance(iv.key, tuple) else holder.get(iv.key, iv.key)
            top = node.scope.split("/", 1)[0]
            by_scope[top] = by_scope.get(top, 0) + iv.nbytes
    return dict(sorted(by_scope.items(), key=lambda item: (-item[1], item[0])))


def _place(flow: Dataflow, order: Sequence[Node], mode: str):
    """Aliasing, scratch, storage, intervals, each strategy's arena bytes and the best (name, offsets)."""
    view_owner = alias_analysis(flow)
    scratch = node_scratch(flow, order)
    if mode == "no-reuse":
        storage = storage_assignment(flow, order, view_owner, inplace=False)
        intervals, strategies = liveness(flow, order, storage, scratch), ["no-reuse"]
    else:
        storage = storage_assignment(flow, order, view_owner)
        intervals = liveness(flow, order, storage, scratch)
        strategies = auto_strategies(len(intervals)) if mode == "auto" else [mode]
    sizes, best = {}, None
    for name in strategies:
        offsets = STRATEGIES[name](intervals)
        sizes[name] = arena_bytes(intervals, offsets)
        if best is None or sizes[name] < sizes[best[0]]:
            best = (name, offsets)
    return view_owner, scratch, storage, intervals, sizes, best


def planned_bytes(flow: Dataflow, order: Sequence[Node], mode: str = "auto") -> int:
    """``plan_memory(flow, order, mode).planned_bytes`` without the plan's other figures (the live
    bytes, the peak by kind and by scope, the arena without reuse): what a recompute search measures."""
    _, _, _, _, sizes, best = _place(flow, order, mode)
    return sizes[best[0]]


def plan_memory(flow: Dataflow, order: Sequence[Node], mode: str = "auto") -> MemoryPlan:
    """Liveness, in-place reuse and arena offsets for one schedule.

    ``mode`` ``"auto"`` places the blocks with every strategy and keeps the
    smallest arena (ExecuTorch does the same; greedy-by-size only up to
    :data:`GREEDY_BY_SIZE_MAX_BLOCKS` blocks); a strategy's name uses that one
    alone; ``"no-reuse"`` gives every value storage of its own (no in-place,
    no sharing), the baseline the others are measured against.
    """
    view_owner, scratch, storage, intervals, sizes, best = _place(flow, order, mode)
    live = live_bytes_per_step(intervals, len(order))
    peak, by_kind = peak_by_kind(intervals, live, flow.roles())
    return MemoryPlan(
        offsets=best[1],
        intervals=intervals,
        planned_bytes=sizes[best[0]],
        lower_bound_bytes=max(live, default=0),
        no_reuse_bytes=no_reuse_bytes(flow, order, view_owner, scratch),
        params_bytes=sum(n.aval.nbytes for n in flow.nodes if n.kind == "param" and n.role != "state"),
        state_bytes=sum(n.aval.nbytes for n in flow.nodes if n.kind == "param" and n.role == "state"),
        outputs_bytes=sum(n.aval.nbytes for n in flow.outputs),
        peak_step=peak,
        peak_bytes_by_kind=by_kind,
        peak_bytes_by_scope=peak_by_scope(intervals, peak, order, storage) if live else {},
        inputs_bytes=sum(n.aval.nbytes for n in flow.nodes if n.kind == "input"),
        live_bytes=live,
        strategy=best[0],
        strategy_bytes=sizes,
        storage=storage,
        scratch=scratch,
    )
