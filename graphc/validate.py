"""An independent check of a Plan, from the plan alone.

It re-derives every fact from the instructions (not from the planner's own
intervals) and rejects a plan where

- two inputs or params share a name, or a constant's value does not match
  its buffer;
- an instruction disagrees with its op: a view op not bound as a view or
  copied, another op not run as a kernel, attributes not in the op's
  canonical form, an output buffer whose shape or dtype is not what the op's
  shape rule gives for the argument buffers, or scratch buffers other than the
  ones the op asks for;
- an instruction reads a buffer no earlier instruction wrote (or bound), or
  reads a scratch buffer; a scratch buffer serves two instructions;
- a kernel writes anywhere but an arena buffer or an output (never into an
  input, a constant or a view), except an update: an elementwise kernel (or a
  copy) writing a param, reading that param, if at all, as itself (not
  through a view); an output is not written exactly once, or is listed twice;
- a buffer lies outside the arena or off the 64-byte alignment, or the arena
  is larger than all its buffers side by side;
- two arena buffers overlap in memory while both are live — except an
  elementwise kernel writing over an operand of its exact size at that
  operand's last read (in-place reuse). Params and outputs are outside the
  arena; reads of a param after its update read the new value.

:meth:`Plan.from_json` runs it on every plan it loads; the tests run it on
every plan they compile (``VALIDATE_PLANS``).
"""

from __future__ import annotations

import bisect
import heapq
import json
import mmap
from typing import Any

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Aval
from graphc.memory.analysis import ALIGNMENT, align
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, COPY, INPUT, KERNEL, OUTPUT, PARAM, SCRATCH, TEMP, VIEW, Instruction, Plan

VALIDATE_PLANS = False
"""When true, every Program validates its plan when it is built (the tests set it)."""


def validate(plan: Plan) -> None:
    """Raise GraphError if ``plan`` disagrees with its ops, could read before a write or overwrite a live value."""
    _check_sources(plan)
    avals = [b.aval for b in plan.buffers]
    for step, ins in enumerate(plan.instructions):
        _check_instruction(plan, avals, step, ins)
    _check_placement(plan)
    base = _check_dataflow(plan)
    _check_views(plan)
    _check_overlaps(plan, base)


def _fail(plan: Plan, step: int | None, message: str) -> None:
    where = f" at instruction {step}" if step is not None else ""
    raise GraphError(f"invalid plan {plan.name!r}{where}: {message}")


def _describe(plan: Plan, buffer_id: int) -> str:
    b = plan.buffers[buffer_id]
    return f"%{b.id} ({b.name}, {b.kind} {b.shape} {b.dtype})"


def _check_sources(plan: Plan) -> None:
    """Feeds are matched by name, so input and param names are unique; constants match their buffers."""
    seen: dict[str, int] = {}
    for b in plan.buffers:
        if b.kind in (INPUT, PARAM):
            if b.name in seen:
                _fail(plan, None, f"{_describe(plan, seen[b.name])} and {_describe(plan, b.id)} have the same name")
            seen[b.name] = b.id
    const_ids = {b.id for b in plan.buffers if b.kind == CONST}
    if set(plan.constants) != const_ids:
        _fail(plan, None, f"constants are given for buffers {sorted(plan.constants)}, but the const buffers are {sorted(const_ids)}")
    for k, value in plan.constants.items():
        if value.shape != plan.buffers[k].shape or value.dtype != np.dtype(plan.buffers[k].dtype):
            _fail(plan, None, f"the constant of {_describe(plan, k)} is {value.shape} {value.dtype}")


def _same_aval(a: Any, b: Aval) -> bool:
    return isinstance(a, Aval) and tuple(a.shape) == b.shape and np.dtype(a.dtype) == b.dtype


def _check_instruction(plan: Plan, avals: list[Aval], step: int, ins: Instruction) -> None:
    """The instruction agrees with its op's facts: mode, canonical attributes, shape rule, scratch."""
    try:
        prim = lookup(ins.op)
    except GraphError as err:  # a source kind ("param") or an op not defined here
        _fail(plan, step, f"{err}; an instruction names an op, never an input, param or const")
    if prim.kernel is None:
        _fail(plan, step, f"op {ins.op!r} has no kernel and cannot be an instruction")
    expected_modes = (BIND_VIEW, COPY) if prim.view else (KERNEL,)
    if ins.mode not in expected_modes:
        _fail(plan, step, f"{ins.op} runs in mode {ins.mode!r}; a{' view' if prim.view else 'n'} op runs in mode "
                          f"{' or '.join(map(repr, expected_modes))}")
    out_kind = plan.buffers[ins.out].kind
    if ins.mode == BIND_VIEW and out_kind != VIEW:
        _fail(plan, step, f"binds a view into {_describe(plan, ins.out)}, a {out_kind} buffer; views bind view buffers only")
    if ins.mode != BIND_VIEW and out_kind not in (TEMP, OUTPUT, PARAM):
        _fail(plan, step, f"writes into {_describe(plan, ins.out)}, a {out_kind} buffer; kernels write temp buffers, "
                          "outputs and (updates) params only")
    if out_kind == PARAM:
        _check_update(plan, step, ins, prim)
    in_avals = [avals[a] for a in ins.args]
    shapes = ", ".join(_describe(plan, a) for a in ins.args)
    try:  # the op's own rules, run on data read from a file: any failure is the plan's
        canonical = prim.normalize(*in_avals, **ins.attrs) if prim.normalize is not None else ins.attrs
        same_attrs = _strict_json(canonical) == _strict_json(ins.attrs)
        out = prim.infer(*in_avals, **ins.attrs)
        scratch = list(prim.scratch(*in_avals, **ins.attrs)) if prim.scratch is not None else []
    except Exception as err:  # noqa: BLE001
        _fail(plan, step, f"{ins.op} {ins.attrs} does not accept the arguments {shapes or '(none)'}: {err}")
    if not same_attrs:
        _fail(plan, step, f"{ins.op}'s attributes {ins.attrs} are not in the op's canonical form {canonical}")
    if not _same_aval(out, avals[ins.out]):
        _fail(plan, step, f"{ins.op} of {shapes or '(no arguments)'} gives {getattr(out, 'shape', out)} "
                          f"{getattr(out, 'dtype', '')}, but writes {_describe(plan, ins.out)}")
    if len(scratch) != len(ins.scratch) or not all(_same_aval(s, avals[k]) for s, k in zip(scratch, ins.scratch)):
        wanted = ", ".join(f"{s.shape} {np.dtype(s.dtype).name}" for s in scratch) or "none"
        _fail(plan, step, f"{ins.op} needs scratch {wanted}, but is given "
                          f"{', '.join(_describe(plan, k) for k in ins.scratch) or 'none'}")


def _strict_json(value: Any) -> str:
    """Attributes as canonical JSON, so that ``4.0`` differs from ``4`` and ``True`` from ``1``."""
    return json.dumps(value, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return repr(value)


def _check_update(plan: Plan, step: int, ins: Instruction, prim) -> None:
    """An update writes a param with an elementwise kernel that reads the param, if at all, as itself."""
    if ins.mode != KERNEL or not prim.elementwise or ins.scratch:
        _fail(plan, step, f"updates {_describe(plan, ins.out)} with {ins.op} in mode {ins.mode!r}; an update is an "
                          "elementwise kernel (or a copy) in mode 'kernel', with no scratch")
    through_views = _view_bases(plan, step)
    for a in ins.args:
        if a != ins.out and through_views.get(a) == ins.out:
            _fail(plan, step, f"updates {_describe(plan, ins.out)} in place while reading it through the view "
                              f"{_describe(plan, a)}; an elementwise kernel may only read the buffer it writes as itself")


def _view_bases(plan: Plan, before: int) -> dict[int, int]:
    """The buffer each view bound before instruction ``before`` reads, through chains of views."""
    bases: dict[int, int] = {}
    for ins in plan.instructions[:before]:
        if ins.mode == BIND_VIEW:
            bases[ins.out] = bases.get(ins.args[0], ins.args[0])
    return bases


def _check_dataflow(plan: Plan) -> dict[int, int | None]:
    """Reads follow writes, writes land in the arena; returns each buffer's arena base."""
    defined = {b.id for b in plan.buffers if b.kind in (INPUT, PARAM, CONST)}
    base: dict[int, int | None] = {b.id: None for b in plan.buffers if b.kind in (INPUT, PARAM, CONST)}
    scratch_used: set[int] = set()
    outside = {b.id for b in plan.buffers if b.kind in (OUTPUT, PARAM)}
    for step, ins in enumerate(plan.instructions):
        for a in ins.args:
            if plan.buffers[a].kind == SCRATCH:
                _fail(plan, step, f"reads {_describe(plan, a)}, another instruction's scratch")
            if a not in defined:
                _fail(plan, step, f"reads {_describe(plan, a)} before anything writes it")
        out = plan.buffers[ins.out]
        if out.kind == PARAM:  # an update, or a step of one, written in the param's storage
            continue
        base[out.id] = base[ins.args[0]] if ins.mode == BIND_VIEW else None if out.id in outside else out.id
        for s in ins.scratch:
            if plan.buffers[s].kind != SCRATCH:
                _fail(plan, step, f"uses {_describe(plan, s)} as scratch, but it is not a scratch buffer")
            if s in scratch_used:
                _fail(plan, step, f"uses scratch {_describe(plan, s)}, which an earlier instruction used")
            scratch_used.add(s)
            base[s] = s
        if ins.out in defined:
            _fail(plan, step, f"writes {_describe(plan, ins.out)} a second time")
        defined.add(ins.out)
    for o in plan.outputs:
        if plan.buffers[o].kind != OUTPUT:
            _fail(plan, None, f"output {_describe(plan, o)} is not an output buffer; a run returns arrays of its own")
        if o not in defined:
            _fail(plan, None, f"output {_describe(plan, o)} is never written")
    listed = set(plan.outputs)
    if len(listed) != len(plan.outputs):
        _fail(plan, None, f"outputs {plan.outputs} list a buffer twice; each returned array has a buffer of its own")
    for b in plan.buffers_of(OUTPUT):
        if b.id not in listed:
            _fail(plan, None, f"{_describe(plan, b.id)} is an output buffer, but the plan does not return it")
    return base


def _check_views(plan: Plan) -> None:
    """Each view is bound as a view: NumPy returns memory of its base, not a copy.

    The runtime binds views once, before any kernel runs, so a view op that
    had to copy (a reshape of a transposed value) would freeze garbage. The
    kernels run here on probes: arrays of each buffer's shape over a scratch
    block, C-contiguous as the runtime's own arrays are.
    """
    views = [ins for ins in plan.instructions if ins.mode == BIND_VIEW]
    if not views:
        return
    block = _untouched_block(max(b.nbytes for b in plan.buffers) + 1)
    probes: dict[int, np.ndarray] = {}
    for step, ins in enumerate(plan.instructions):
        if ins.mode != BIND_VIEW:
            continue
        args = [probes[a] if a in probes else _probe(block, plan.buffers[a]) for a in ins.args]
        view = lookup(ins.op).kernel(*args, **ins.attrs)
        if not isinstance(view, np.ndarray) or (view.size and not np.may_share_memory(view, block)):
            _fail(plan, step, f"{ins.op} of {_describe(plan, ins.args[0])} cannot be a view (its kernel returned a "
                              "new array, not a view of its operand); it must run in mode 'copy' into a temp buffer. "
                              "For a view op defined with gc.defop: its kernel must return a view of its operand for "
                              "every operand it is given a view of (say needs_contiguous=True if it copies a "
                              "non-contiguous one, as ndarray.reshape does), or define it with view=False")
        probes[ins.out] = view


def _untouched_block(nbytes: int) -> np.ndarray:
    """``nbytes`` of address space for the probes: an anonymous mapping, whose pages the OS
    provides only when touched, and binding a view touches none. So a plan whose largest
    buffer is larger than this machine's memory (``compile(..., bind=False)``) validates."""
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.uint8)


def _probe(block: np.ndarray, buffer) -> np.ndarray:
    return np.ndarray(buffer.shape, np.dtype(buffer.dtype), buffer=block[: buffer.nbytes])


def _check_placement(plan: Plan) -> None:
    side_by_side = 0
    for b in plan.buffers:
        if b.kind in (TEMP, SCRATCH):
            if b.offset is None or b.offset % ALIGNMENT or b.offset < 0 or b.offset + b.nbytes > plan.arena_bytes:
                _fail(plan, None, f"%{b.id} ({b.name}) at offset {b.offset}, {b.nbytes} B, is off the arena of "
                                  f"{plan.arena_bytes} B (or off its {ALIGNMENT}-byte alignment)")
            side_by_side += align(b.nbytes)
    if plan.arena_bytes > side_by_side:
        _fail(plan, None, f"the arena of {plan.arena_bytes} B is larger than its buffers side by side ({side_by_side} B)")


def _live_intervals(plan: Plan, base: dict[int, int | None]) -> dict[int, list[int]]:
    """[first write, last read] of each arena buffer; reads through views count."""
    live: dict[int, list[int]] = {}
    for step, ins in enumerate(plan.instructions):
        if ins.mode == BIND_VIEW:
            continue
        for a in ins.args:
            _extend(live, base[a], step)
        if base.get(ins.out) == ins.out:
            live.setdefault(ins.out, [step, step])
        for s in ins.scratch:
            live.setdefault(s, [step, step])
    return live


def _extend(live: dict[int, list[int]], buffer: int | None, step: int) -> None:
    if buffer is not None:
        live[buffer][1] = max(live[buffer][1], step)


def _check_overlaps(plan: Plan, base: dict[int, int | None]) -> None:
    """Sweep the steps in order, keeping the live arena buffers sorted by offset.

    Live buffers are pairwise disjoint (each clash either fails or is an
    in-place write, after which the overwritten operand is dead), so the
    ones a new buffer ``[lo, hi)`` can overlap are the few just before
    ``hi`` in offset order: O(n log n + n·live) instead of all pairs.
    """
    live = _live_intervals(plan, base)
    writer = {ins.out: (step, ins) for step, ins in enumerate(plan.instructions)}
    starts: list[int] = []  # offsets of the live buffers, sorted
    active: list[int] = []  # their ids, in the same order
    ending: list[tuple[int, int]] = []  # heap of (last step, id) of the live buffers
    for new in sorted((k for k in live if plan.buffers[k].nbytes), key=lambda k: (live[k][0], k)):
        step = live[new][0]
        while ending and ending[0][0] < step:
            _, dead = heapq.heappop(ending)
            _remove(starts, active, plan.buffers[dead].offset, dead)
        lo = plan.buffers[new].offset
        hi = lo + plan.buffers[new].nbytes
        clashes = []
        j = bisect.bisect_left(starts, hi) - 1
        while j >= 0 and _end(plan, active[j]) > lo:
            clashes.append(active[j])
            j -= 1
        for old in clashes:
            if not _is_inplace(plan, writer, live, old, new, base):
                _fail(plan, None, f"%{old} ({plan.buffers[old].name}) and %{new} ({plan.buffers[new].name}) "
                                  f"share memory while both are live")
            _remove(starts, active, plan.buffers[old].offset, old)  # dead from here on: new took its place
        index = bisect.bisect_left(starts, lo)
        starts.insert(index, lo)
        active.insert(index, new)
        heapq.heappush(ending, (live[new][1], new))


def _end(plan: Plan, buffer_id: int) -> int:
    b = plan.buffers[buffer_id]
    return b.offset + b.nbytes


def _remove(starts: list[int], active: list[int], offset: int, buffer_id: int) -> None:
    """Drop ``buffer_id`` from the sorted live list, if it is still there."""
    index = bisect.bisect_left(starts, offset)
    if index < len(active) and active[index] == buffer_id:
        del starts[index], active[index]


def _is_inplace(plan: Plan, writer: dict, live: dict, old: int, new: int, base: dict) -> bool:
    """``new`` is written over ``old`` by an elementwise kernel at old's last read."""
    step, ins = writer.get(new, (None, None))
    if ins is None or step != live[old][1] or live[new][0] != step:
        return False
    bo, bn = plan.buffers[old], plan.buffers[new]
    return (
        lookup(ins.op).elementwise
        and old in ins.args
        and (bo.offset, bo.nbytes, bo.dtype) == (bn.offset, bn.nbytes, bn.dtype)
        and all(base[a] != old or a == old for a in ins.args)
    )
