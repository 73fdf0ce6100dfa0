"""An independent check of a Plan's memory safety, from the plan alone.

It recomputes liveness from the instructions (not from the planner's own
intervals) and rejects a plan where

- an instruction reads a buffer no earlier instruction wrote (or bound);
- a kernel writes anywhere but an arena buffer (never into an input, a param
  slot, a constant or a view), or an update writes anything but a param;
- a buffer lies outside the arena or off the 64-byte alignment;
- two arena buffers overlap in memory while both are live — except an
  elementwise kernel writing over an operand of its exact size at that
  operand's last read (in-place reuse).

Tests run it on every plan they compile (``VALIDATE_PLANS``).
"""

from __future__ import annotations

import numpy as np

from graphc.errors import GraphError
from graphc.memory import ALIGNMENT
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, INPUT, PARAM, SCRATCH, TEMP, VIEW, Plan

VALIDATE_PLANS = False
"""When true, every Program validates its plan when it is built (the tests set it)."""


def validate(plan: Plan) -> None:
    """Raise GraphError if ``plan`` could read before a write or overwrite a live value."""
    base = _check_dataflow(plan)
    _check_placement(plan)
    _check_overlaps(plan, base)


def _fail(plan: Plan, step: int | None, message: str) -> None:
    where = f" at instruction {step}" if step is not None else ""
    raise GraphError(f"invalid plan {plan.name!r}{where}: {message}")


def _check_dataflow(plan: Plan) -> dict[int, int | None]:
    """Reads follow writes, writes land in the arena; returns each buffer's arena base."""
    defined = {b.id for b in plan.buffers if b.kind in (INPUT, PARAM, CONST)}
    base: dict[int, int | None] = {b.id: None for b in plan.buffers if b.kind in (INPUT, PARAM, CONST)}
    for step, ins in enumerate(plan.instructions):
        for a in ins.args:
            if a not in defined:
                _fail(plan, step, f"reads %{a} before anything writes it")
        out = plan.buffers[ins.out]
        if ins.op == "assign":
            if out.kind != PARAM:
                _fail(plan, step, f"an update writes %{out.id}, which is a {out.kind}, not a param")
            continue
        if ins.mode == BIND_VIEW:
            if out.kind != VIEW:
                _fail(plan, step, f"binds a view into %{out.id}, a {out.kind} buffer")
            base[out.id] = base[ins.args[0]]
        else:
            if out.kind != TEMP:
                _fail(plan, step, f"writes into %{out.id} ({out.name}), a {out.kind} buffer")
            base[out.id] = out.id
        for s in ins.scratch:
            if plan.buffers[s].kind != SCRATCH:
                _fail(plan, step, f"uses %{s} as scratch, but it is a {plan.buffers[s].kind} buffer")
            base[s] = s
            defined.add(s)
        if ins.out in defined:
            _fail(plan, step, f"writes %{ins.out} a second time")
        defined.add(ins.out)
    for o in plan.outputs:
        if o not in defined:
            _fail(plan, None, f"output %{o} is never written")
    return base


def _check_placement(plan: Plan) -> None:
    for b in plan.buffers:
        if b.kind in (TEMP, SCRATCH):
            if b.offset is None or b.offset % ALIGNMENT or b.offset < 0 or b.offset + b.nbytes > plan.arena_bytes:
                _fail(plan, None, f"%{b.id} ({b.name}) at offset {b.offset}, {b.nbytes} B, is off the arena of {plan.arena_bytes} B")


def _live_intervals(plan: Plan, base: dict[int, int | None]) -> dict[int, list[int]]:
    """[first write, last read] of each arena buffer; reads through views count; outputs live to the end."""
    live: dict[int, list[int]] = {}
    for step, ins in enumerate(plan.instructions):
        if ins.op == "assign" or ins.mode == BIND_VIEW:
            if ins.op == "assign":
                _extend(live, base[ins.args[0]], step)
            continue
        for a in ins.args:
            _extend(live, base[a], step)
        live.setdefault(ins.out, [step, step])
        for s in ins.scratch:
            live.setdefault(s, [step, step])
    end = len(plan.instructions)
    for o in plan.outputs:
        _extend(live, base[o], end)
    return live


def _extend(live: dict[int, list[int]], buffer: int | None, step: int) -> None:
    if buffer is not None:
        live[buffer][1] = max(live[buffer][1], step)


def _check_overlaps(plan: Plan, base: dict[int, int | None]) -> None:
    live = _live_intervals(plan, base)
    ids = np.array(sorted(live), dtype=np.int64)
    if ids.size == 0:
        return
    lo = np.array([plan.buffers[i].offset for i in ids], dtype=np.int64)
    hi = lo + np.array([plan.buffers[i].nbytes for i in ids], dtype=np.int64)
    first = np.array([live[i][0] for i in ids], dtype=np.int64)
    last = np.array([live[i][1] for i in ids], dtype=np.int64)
    writer = {ins.out: (step, ins) for step, ins in enumerate(plan.instructions) if ins.op != "assign"}
    for k in range(ids.size):
        clash = (lo[k + 1:] < hi[k]) & (lo[k] < hi[k + 1:]) & (first[k + 1:] <= last[k]) & (first[k] <= last[k + 1:])
        for j in np.flatnonzero(clash) + k + 1:
            a, b = int(ids[k]), int(ids[j])
            if not _is_inplace(plan, writer, live, a, b, base) and not _is_inplace(plan, writer, live, b, a, base):
                _fail(plan, None, f"%{a} ({plan.buffers[a].name}) and %{b} ({plan.buffers[b].name}) share memory while both are live")


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
