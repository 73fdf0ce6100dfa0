"""Block structure: per-block keep options and a dynamic program over the chain of blocks.

The forward graph is cut at its separators into a chain of segments
(:mod:`graphc.remat.segments`); a network's layers (ResNet's bottlenecks, a
transformer's attention and MLP halves, a residual MLP's blocks) are those
segments. As in Rotor (Beaumont et al. 2021, "Optimal checkpointing for
heterogeneous chains") and Rockmate (Zhao et al. 2023), each stage of the chain
is run in one of two ways during a forward sweep:

- *advance*: run it keeping only its output (the next stage's input), and
  compute it again later;
- *keep*: run it keeping, for its backward, the set K of its values chosen by
  one of its *options* (Rockmate: several per-block schedules offered to the
  chain's DP). The values the backward reads that K lacks are recomputed from
  K and the stage's input just before its backward. The options run from "keep
  everything the backward reads" to "keep nothing".

Stages of the same structure (same ops, shapes, wiring and backward reads: a
structural hash) share one set of options, found once per *kind*: the Pareto
front of (kept bytes, recompute FLOPs) over the subsets of the stage's values.
The user's *blocks* (name scopes such as ``layer3/1``, else single segments)
name the result. With C_h(s, t, m) the least forward FLOPs to reverse stages
s..t in m bytes, h = 1 when the caller holds stage s's input throughout, x_i the
bytes of stage i's input (charged by the subproblem, c = x_s if h = 0 else 0, only
while it is needed) and F the FLOPs of a forward run::

    C_h(s, s, m) = F_need(s)                    if c + the stage's peaks <= m
    C_h(s, t, m) = min( min_{s<s'<=t} F(s..s'-1) + C_0(s', t, m - c) + C_1(s, s'-1, m - c),
                        min_{options o} F(s) + R_o + C_h'(s+1, t, m - K_o - c' - x_{s+1}·h') )

R_o the recompute FLOPs and K_o the kept bytes of option o; c' = c if the stage's
backward or recompute reads its input; h' = 1 if its backward reads its output.
Memory is discretised into at most :data:`LEVELS` units, all levels are computed at
once (NumPy), and the schedule is read back from the recorded choices with an
explicit stack. The DP is optimal within this model. The model's memory is an
estimate (cotangents, the planner's reuse), so each schedule is built into a
dataflow with the instance machinery of √n and revolve and its planned arena
measured, and the DP level that fits the budget is searched by measuring. Every
checkpoint placement of √n and revolve is a schedule of this DP (keep-everything
options between checkpoints).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from graphc.dataflow import Dataflow
from graphc.ir import Node
from graphc.memory.analysis import alias_analysis, align
from graphc.remat.candidates import Candidate, Deadline, node_flops, recompute_flops
from graphc.remat.progress import ProgressFn, SolveProgress, SolverOutcome
from graphc.remat.segments import _Builder, last_reads

LEVELS = 400
"""Memory levels of the DP (the bytes of store-all in this many units, each size rounded up)."""
EXHAUSTIVE_VALUES = 10
"""Up to this many values a stage might keep, every subset is tried (the per-stage solve is exact)."""
MAX_OPTIONS = 6
"""Options per stage kind (the Pareto front thinned evenly, its two ends kept)."""
OPTION_SHARES = (0.25, 0.5, 0.75)
"""The kept shares (of a stage's bytes read by its backward) of the intermediate options."""
TABLE_ENTRIES = 64 * 64 * 400
"""Entries of each DP table (n² stage pairs × levels): the levels of a long chain are fewer."""
MAX_STAGES = 400
"""Chains of more stages are not solved (the DP's time grows as n³)."""
MAX_MEASURES = 8
"""Schedules measured per budget while searching the DP's level that fits it."""
_INF = math.inf


# --- blocks and kinds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One way to keep a stage for its backward: the positions (in the stage) kept, and what that costs.

    ``recompute`` holds the positions computed again before the backward; ``kept_bytes``
    the bytes held from the forward to the backward (the stage's output aside);
    ``forward_peak`` the most bytes of the stage live during its forward with K kept."""

    kept: frozenset[int]
    recompute: frozenset[int]
    recompute_flops: int
    kept_bytes: int
    forward_peak: int


@dataclass
class Stage:
    """A segment of the forward chain with what the DP needs of it."""

    nodes: list[Node]
    kind: str
    flops: int  # one forward run
    need_flops: int  # a run of only what its backward reads (a stage reversed alone)
    input_bytes: int
    input_read: bool  # its backward reads its input
    output_read: bool  # its backward reads its output
    backward_peak: int  # tape, output and input cotangents, one temporary during its backward (estimated)
    options: list[Option] = field(default_factory=list)


@dataclass
class BlockChain:
    """The chain the DP runs on: stages, the user's blocks (stage indices), and how many kinds were solved."""

    stages: list[Stage]
    blocks: list[list[int]]
    solves: int

    @property
    def kinds(self) -> int:
        return len({self.blocks_kind(b) for b in self.blocks})

    def blocks_kind(self, block: list[int]) -> tuple[str, ...]:
        return tuple(self.stages[i].kind for i in block)


def _segment_reads(flow: Dataflow, segments: Sequence[Sequence[Node]]) -> list[set[Node]]:
    """For each segment, its nodes that something outside the forward chain reads (the backward, an
    update, an output)."""
    segment_of = {n: k for k, seg in enumerate(segments) for n in seg}
    reads: list[set[Node]] = [set() for _ in segments]
    for node in flow.nodes:
        if node.is_source or node in segment_of:
            continue
        for a in flow.args[node]:
            if a in segment_of:
                reads[segment_of[a]].add(a)
    for root in flow.roots:
        if root in segment_of:
            reads[segment_of[root]].add(root)
    return reads


def _backward_reads(flow: Dataflow, segments: Sequence[Sequence[Node]], owner: dict[Node, Node]) -> list[set[Node]]:
    """For each segment, the storage its own backward reads: the nodes whose VJP is taken at a consumer
    in the segment (the step the segment's reverse releases), their operands' owners."""
    segment_of = {n: k for k, seg in enumerate(segments) for n in seg}
    reads: list[set[Node]] = [set() for _ in segments]
    for node in flow.nodes:
        consumer = node.adjoint.consumer if node.adjoint is not None else None
        if node in segment_of or consumer not in segment_of:
            continue
        reads[segment_of[consumer]].update(owner[a] for a in flow.args[node])
    return reads


def structural_kind(flow: Dataflow, segment: Sequence[Node], reads: set[Node]) -> str:
    """A hash of a segment's structure: each node's op, attributes, shape and dtype, where its operands
    come from (a position in the segment, or outside with their shape), and which positions are read
    after the forward. Two segments of one kind have the same options, position by position."""
    position = {n: i for i, n in enumerate(segment)}
    parts = []
    for node in segment:
        operands = tuple(("in", position[a]) if a in position else ("out", a.aval.shape, str(a.aval.dtype))
                         for a in flow.args[node])
        attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items()))
        parts.append((node.op.name, attrs, node.aval.shape, str(node.aval.dtype), operands, node in reads))
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def blocks_of(segments: Sequence[Sequence[Node]]) -> list[list[int]]:
    """The units a user sees, as runs of consecutive segment indices: segments whose nodes' most common
    name scope is the same non-empty scope form one block (``layer3/1``, ``h/5``); every other segment
    is a block of its own (a residual MLP's repeats, found by their kind)."""
    blocks: list[list[int]] = []
    previous = None
    for k, segment in enumerate(segments):
        scope = Counter(n.scope for n in segment).most_common(1)[0][0]
        if scope and scope == previous:
            blocks[-1].append(k)
        else:
            blocks.append([k])
        previous = scope
    return blocks


# --- per-stage options ------------------------------------------------------------------------


def _closure(flow: Dataflow, segment: Sequence[Node], wanted: set[Node], stop: set[Node]) -> set[Node]:
    """``wanted`` and their ancestors inside ``segment``, not crossing ``stop`` (held values)."""
    inside = set(segment)
    found = {n for n in wanted if n not in stop}
    stack = list(found)
    while stack:
        for a in flow.args[stack.pop()]:
            if a in inside and a not in stop and a not in found:
                found.add(a)
                stack.append(a)
    return found


def _forward_peak(flow: Dataflow, segment: Sequence[Node], size: dict[Node, int], held: set[Node]) -> int:
    """Most bytes of the segment's own values live during one forward run, ``held`` values kept to the end
    (each value freed after its last read inside the segment)."""
    last = last_reads(flow, segment)
    live, peak = 0, 0
    dying: dict[int, int] = {}
    for i, node in enumerate(segment):
        live += size[node]
        peak = max(peak, live)
        if node not in held:
            dying[last[node]] = dying.get(last[node], 0) + size[node]
        live -= dying.pop(i, 0)
    return peak


def _options(flow: Dataflow, segment: Sequence[Node], reads: set[Node], size: dict[Node, int],
             owner: dict[Node, Node]) -> list[Option]:
    """The per-stage solve: which of the stage's values to keep from its forward to its backward.

    With K kept, the backward recomputes the values it reads that K lacks, with their ancestors in
    the stage down to K and the stage's output (which is held): R(K) FLOPs for K's bytes. Up to
    :data:`EXHAUSTIVE_VALUES` candidate values every K is tried; above, greedy sets (most FLOPs
    per byte first) at :data:`OPTION_SHARES` of the bytes. The options are the Pareto front of
    (kept bytes, R(K)), at most :data:`MAX_OPTIONS`, keep-everything first."""
    position = {n: i for i, n in enumerate(segment)}
    output = segment[-1]
    wanted = {n for n in reads if n is not output}
    useful = _closure(flow, segment, wanted, {output})
    keepable = [n for n in segment if n in useful and owner[n] is n and size[n] > 0 and n is not owner[output]]
    flops = {n: node_flops(n, flow) for n in segment}

    def option(kept: frozenset[Node]) -> Option:
        again = _closure(flow, segment, wanted - kept, kept | {output})
        return Option(frozenset(position[n] for n in kept), frozenset(position[n] for n in again),
                      sum(flops[n] for n in again), sum(size[n] for n in kept),
                      _forward_peak(flow, segment, size, set(kept) | {owner[output], output}))

    if len(keepable) <= EXHAUSTIVE_VALUES:
        sets = [frozenset(c) for r in range(len(keepable) + 1) for c in itertools.combinations(keepable, r)]
    else:
        ranked = sorted(keepable, key=lambda n: (-(flops[n] + 1) / size[n], position[n]))
        total = sum(size[n] for n in keepable)
        sets = [frozenset(keepable), frozenset()]
        for share in OPTION_SHARES:
            chosen, held = [], 0
            for n in ranked:
                if held + size[n] <= share * total:
                    chosen.append(n)
                    held += size[n]
            sets.append(frozenset(chosen))
    front: list[Option] = []
    for candidate in sorted(map(option, sets), key=lambda o: (o.kept_bytes, o.recompute_flops, o.forward_peak)):
        if not front or candidate.recompute_flops < front[-1].recompute_flops:
            front.append(candidate)
    front.reverse()  # keep-everything (no recompute) first
    if len(front) > MAX_OPTIONS:
        picks = np.unique(np.linspace(0, len(front) - 1, MAX_OPTIONS).round().astype(int))
        front = [front[i] for i in picks]
    return front


def block_chain(flow: Dataflow, segments: Sequence[Sequence[Node]]) -> BlockChain:
    """The stages of the chain with their options, solved once per kind."""
    owner = alias_analysis(flow)
    size = {n: (align(n.aval.nbytes) if owner[n] is n and n not in flow.writes else 0)
            for seg in segments for n in seg}
    reads = _segment_reads(flow, segments)
    backward_reads = _backward_reads(flow, segments, owner)
    builder = _Builder(flow, [list(seg) for seg in segments])  # what a stage reversed alone runs again
    by_kind: dict[str, list[Option]] = {}
    stages: list[Stage] = []
    for k, segment in enumerate(segments):
        kind = structural_kind(flow, segment, reads[k])
        if kind not in by_kind:
            by_kind[kind] = _options(flow, segment, reads[k], size, owner)
        separator = owner[segments[k - 1][-1]] if k else None
        output = owner[segment[-1]]
        input_bytes = 0 if separator is None else size.get(separator, 0)
        tape = sum(size.get(b, 0) for b in {owner[n] for n in reads[k]} - {output})
        need = builder.needed_by_backward(k)
        stages.append(Stage(
            list(segment), kind, sum(node_flops(n, flow) for n in segment), sum(node_flops(n, flow) for n in need),
            input_bytes, separator in backward_reads[k], output in backward_reads[k],
            tape + size.get(output, 0) + input_bytes + max(size[n] for n in segment), by_kind[kind]))
    return BlockChain(stages, blocks_of(segments), len(by_kind))


# --- the dynamic program ----------------------------------------------------------------------


@dataclass
class ChainDP:
    """C_h(s, t, ·) over the memory levels and the choice that reached each entry.

    h = 1: the caller holds stage s's input for the whole subproblem (it is charged outside);
    h = 0: the subproblem charges it for as long as it needs it. ``choice[h, s, t][m]``: j > 0
    checkpoints at stage s + j (advance s..s+j-1), j <= 0 keeps stage s by option -j (for s == t:
    the stage reversed alone)."""

    chain: BlockChain
    unit: int
    cost: np.ndarray  # (2, n, n, levels + 1): cost[h, s, t, m]
    choice: np.ndarray  # the same shape

    def top(self) -> np.ndarray:
        return self.cost[0, 0, len(self.chain.stages) - 1]

    def best(self, m: int) -> float:
        top = self.top()
        return float(top[max(0, min(m, len(top) - 1))])

    def store_all_level(self) -> int:
        """The least level at which the DP reaches its least cost."""
        top = self.top()
        return int(np.argmax(top <= top[-1]))

    def least_level(self) -> int | None:
        finite = np.nonzero(np.isfinite(self.top()))[0]
        return int(finite[0]) if len(finite) else None

    def units(self, nbytes: int) -> int:
        """Bytes as memory levels (rounded up)."""
        return -(-nbytes // self.unit)

    def actions(self, m: int) -> list[tuple]:
        """The schedule at level m: ("advance", a, b), ("keep", s, o), ("back", s, o), ("alone", s),
        ("start", s) (make the held input of stage s current), in order; an explicit stack."""
        stages = self.chain.stages
        out: list[tuple] = []
        stack: list[tuple] = [("solve", 0, 0, len(stages) - 1, m)]
        while stack:
            task = stack.pop()
            if task[0] != "solve":
                out.append(task)
                continue
            _, h, s, t, level = task
            out.append(("start", s))
            j = int(self.choice[h, s, t][level])
            held = 0 if h else self.units(stages[s].input_bytes)
            if s == t:
                out.append(("alone", s))
            elif j > 0:
                out.append(("advance", s, s + j))
                stack.append(("solve", 1, s, s + j - 1, level - held))
                stack.append(("solve", 0, s + j, t, level - held))
            else:
                option = stages[s].options[-j]
                h_next, below = self._kept_across(h, s, option, level)
                out.append(("keep", s, -j))
                stack.append(("back", s, -j))
                stack.append(("solve", h_next, s + 1, t, below))
        return out

    def _kept_across(self, h: int, s: int, option: Option, level: int) -> tuple[int, int]:
        """Whether stage s holds its output for stage s + 1, and the levels left to stages s+1..t."""
        stage, after = self.chain.stages[s], self.chain.stages[s + 1]
        keeps_input = not h and (stage.input_read or bool(option.recompute))
        keeps_output = stage.output_read
        below = (level - self.units(option.kept_bytes) - (self.units(stage.input_bytes) if keeps_input else 0)
                 - (self.units(after.input_bytes) if keeps_output else 0))
        return int(keeps_output), below


def _shift(values: np.ndarray, by: int) -> np.ndarray:
    """values[m - by] at m (infinite where m < by)."""
    if by <= 0:
        return values
    shifted = np.full_like(values, _INF)
    if by < len(values):
        shifted[by:] = values[: len(values) - by]
    return shifted


def solve_chain(chain: BlockChain, levels: int = LEVELS, deadline: Deadline | None = None) -> ChainDP | None:
    """The DP of the module docstring over every memory level at once; None if ``deadline`` passes.

    A subproblem's input is charged only while it is needed: by an advance (its stages are run
    again from it) or, for a kept stage, while its backward or its recompute reads it. The tables
    hold n²·levels entries each, so the levels shrink as the chain grows (:data:`TABLE_ENTRIES`).
    The first-checkpoint minimum runs over all s' at once (one NumPy reduction per (s, t))."""
    stages = chain.stages
    n = len(stages)
    levels = max(32, min(levels, TABLE_ENTRIES // (n * n)))
    top = sum(max(o.kept_bytes for o in st.options) + st.input_bytes for st in stages)
    top += max(max(st.backward_peak, max(o.forward_peak for o in st.options)) for st in stages)
    cost = np.full((2, n, n, levels + 1), _INF)
    dp = ChainDP(chain, max(1, -(-top // levels)), cost, np.zeros((2, n, n, levels + 1), dtype=np.int32))
    units = dp.units
    m = np.arange(levels + 1)
    prefix = np.concatenate([[0], np.cumsum([st.flops for st in stages])]).astype(float)
    advance_peak = np.array([units(min(o.forward_peak for o in st.options)) for st in stages])
    for h in (0, 1):
        for s, st in enumerate(stages):
            held = 0 if h else units(st.input_bytes)
            fits = m >= held + max(units(st.backward_peak), units(st.options[0].forward_peak))
            cost[h, s, s] = np.where(fits, float(st.need_flops), _INF)
    for length in range(1, n):
        if deadline is not None and deadline.passed():
            return None
        for s in range(0, n - length):
            for h in (0, 1):
                _best_of(dp, h, s, s + length, m, prefix, advance_peak)
    return dp


def _best_of(dp: ChainDP, h: int, s: int, t: int, m: np.ndarray, prefix: np.ndarray, advance_peak: np.ndarray) -> None:
    """C_h(s, t, ·): the least over keeping stage s by each option and over each first checkpoint s'."""
    stage = dp.chain.stages[s]
    held = 0 if h else dp.units(stage.input_bytes)
    best = np.full(len(m), _INF)
    pick = np.zeros(len(m), dtype=np.int32)
    for o, option in enumerate(stage.options):
        h_next, below = dp._kept_across(h, s, option, 0)  # the levels left at m are m + below
        value = stage.flops + option.recompute_flops + _shift(dp.cost[h_next, s + 1, t], -below)
        fits = m >= held + max(dp.units(option.forward_peak), dp.units(stage.backward_peak))
        value = np.where(fits, value, _INF)
        better = value < best
        best = np.where(better, value, best)
        pick = np.where(better, -o, pick)
    # row r: the first checkpoint at s' = s + 1 + r; advance s..s'-1, reverse s'..t, then s..s'-1
    rows = (prefix[s + 1: t + 1] - prefix[s])[:, None] + dp.cost[0, s + 1: t + 1, t] + dp.cost[1, s, s: t]
    if held:
        rows = np.concatenate([np.full((len(rows), held), _INF), rows[:, : len(m) - held]], axis=1)[:, : len(m)]
    peaks = np.maximum.accumulate(advance_peak[s: t]) + held
    rows = np.where(m[None, :] >= peaks[:, None], rows, _INF)
    first = np.argmin(rows, axis=0)
    value = rows[first, m]
    better = value < best
    dp.cost[h, s, t] = np.where(better, value, best)
    dp.choice[h, s, t] = np.where(better, first + 1, pick)


# --- the schedule as a dataflow ---------------------------------------------------------------


def build_schedule(flow: Dataflow, chain: BlockChain, actions: Sequence[tuple]) -> Dataflow:
    """The instances of a DP schedule, written with the :class:`~graphc.remat.segments._Builder` that √n
    and revolve use: a stage's first run is its nodes, later runs are clones; a kept stage's backward
    recomputes its option's values from the kept ones just before it runs."""
    segments = [st.nodes for st in chain.stages]
    builder = _Builder(flow, segments)
    evaluated = [False] * len(segments)
    held: dict[int, Node] = {}

    def run(k: int, needed: set[Node] | None = None) -> None:
        builder.evaluate(k, first=not evaluated[k], needed=None if not evaluated[k] else needed)
        evaluated[k] = True

    for action in actions:
        kind, s = action[0], action[1]
        if kind == "start":
            if s > 0 and s in held:
                builder.restore(segments[s - 1][-1], held[s])
        elif kind == "advance":
            for k in range(s, action[2]):
                run(k)
            held[action[2]] = builder.current[segments[action[2] - 1][-1]]
        elif kind == "keep":
            run(s)
            held[s + 1] = builder.current[segments[s][-1]]
        elif kind == "back":
            option = chain.stages[s].options[action[2]]
            again = {segments[s][i] for i in option.recompute}
            if again:
                builder.evaluate(s, first=False, needed=again)
            builder.reverse(s)
        else:  # "alone": reversed right after its run
            run(s, builder.needed_by_backward(s))
            builder.reverse(s)
    return builder.finish()


# --- candidates for the "optimal" policy ------------------------------------------------------

_FOUND: "OrderedDict[tuple, dict[tuple, int]]" = OrderedDict()
"""Schedules the DP found per chain (:func:`_chain_key`), offered again at every later budget: a schedule
that fitted one budget fits every larger one (the policy stays monotone in the budget)."""
_FOUND_FLOWS = 16
_FOUND_PER_CHAIN = 64


_SOLVED: "OrderedDict[tuple, ChainDP]" = OrderedDict()
"""The DP of the last few chains: it holds every level, so a compile of the same graph at another budget
only reads another schedule from it (a DP's schedules are stage and position numbers, valid for every
chain of the same figures)."""
_SOLVED_FLOWS = 4


def _chain_key(chain: BlockChain) -> tuple:
    """Everything the DP reads of a chain: per stage its kind (structure) and figures."""
    return tuple((st.kind, st.flops, st.need_flops, st.input_bytes, st.input_read, st.output_read, st.backward_peak)
                 for st in chain.stages)


def block_candidates(
    flow: Dataflow, segments: Sequence[Sequence[Node]], budget: int, store_all_bytes: int,
    measure: Callable[[Dataflow], int], deadline: Deadline, progress: ProgressFn | None = None,
) -> tuple[list[Candidate], SolverOutcome]:
    """The chain DP's schedules for ``budget``, measured, and schedules it found before for this flow.

    The DP's memory model is approximate, so the level whose schedule plans within the budget is
    searched by measuring: from the least level (which must fit) and the store-all level (which does
    not), secant and halving steps in turn, at most :data:`MAX_MEASURES` schedules or until ``deadline``."""
    started = time.perf_counter()
    if len(segments) > MAX_STAGES:
        return [], SolverOutcome("blocks", "not run", why=f"{len(segments)} stages > {MAX_STAGES}")
    chain = block_chain(flow, segments)
    key = _chain_key(chain)
    dp = _SOLVED.get(key) or solve_chain(chain, deadline=deadline)
    if dp is not None:
        _SOLVED[key] = dp
        _SOLVED.move_to_end(key)
        while len(_SOLVED) > _SOLVED_FLOWS:
            _SOLVED.popitem(last=False)
    label = f"block DP ({len(chain.blocks)} blocks, {chain.kinds} kinds)"
    remembered = [(actions, recompute) for actions, recompute in _FOUND.get(key, {}).items()]
    if dp is None or dp.least_level() is None:
        status, why = ("not run", "time_limit reached") if dp is None else ("infeasible", "no schedule fits its model")
        outcome = SolverOutcome("blocks", status, seconds=time.perf_counter() - started, why=why)
        return _offered_again(flow, chain, label, remembered, set()), outcome
    found: list[Candidate] = []
    seen: set[tuple] = set()

    def planned_at(level: int) -> int:
        actions = tuple(dp.actions(level))
        rewritten = build_schedule(flow, chain, actions)
        planned = measure(rewritten)
        if actions not in seen:
            seen.add(actions)
            found.append(Candidate(label, recompute_flops(rewritten), lambda r=rewritten: r, planned))
            _remember(key, actions, found[-1].recompute_flops)
        return planned

    fits = (dp.least_level(), planned_at(dp.least_level()))
    over = (dp.store_all_level(), max(store_all_bytes, budget + 1))
    for attempt in range(MAX_MEASURES - 1):
        if fits[1] > budget or over[0] - fits[0] <= 1 or deadline.passed():
            break
        if attempt % 2 == 0:  # the secant through the nearest fit and overshoot, then halving, in turn
            level = fits[0] + int((budget - fits[1]) * (over[0] - fits[0]) / max(over[1] - fits[1], 1))
        else:
            level = (fits[0] + over[0]) // 2
        level = min(max(level, fits[0] + 1), over[0] - 1)
        planned = planned_at(level)
        if planned <= budget:
            fits = (level, planned)
        else:
            over = (level, planned)
    fitting = [c.recompute_flops for c in found if c.planned_bytes <= budget]
    objective = float(min(fitting)) if fitting else None
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(SolveProgress("blocks", seconds, objective, None, label))
    status = "feasible" if fitting else "infeasible"
    why = (f"{len(chain.stages)} stages in {len(chain.blocks)} blocks, {chain.solves} kinds solved; least recompute "
           "within the chain model (its memory estimated, the schedule's arena measured); no bound proven")
    outcome = SolverOutcome("blocks", status, objective, None, seconds, why)
    return found + _offered_again(flow, chain, label, remembered, seen), outcome


def _offered_again(flow: Dataflow, chain: BlockChain, label: str, remembered: list[tuple[tuple, int]],
                   seen: set[tuple]) -> list[Candidate]:
    """The schedules found at other budgets (and not found again now), built on this flow when measured."""
    return [Candidate(f"{label}, found at another budget", recompute, lambda a=actions: build_schedule(flow, chain, a))
            for actions, recompute in remembered if actions not in seen]


def _remember(key: tuple, actions: tuple, recompute: int) -> None:
    schedules = _FOUND.setdefault(key, {})
    _FOUND.move_to_end(key)
    if len(schedules) < _FOUND_PER_CHAIN:
        schedules.setdefault(actions, recompute)
    while len(_FOUND) > _FOUND_FLOWS:
        _FOUND.popitem(last=False)
