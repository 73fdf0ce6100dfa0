"""The NumPy runtime: bind a Plan to memory once, then run it again and again.

Binding allocates one 64-byte-aligned arena and makes every intermediate a
view of it at its planned offset; feeds get slots of their own, stored params
are read where they are stored, views are bound once, and each kernel call is
prepared with its arrays, so a run is a loop of calls with no lookups and no
allocation:

    copy feeds into their slots  →  step() for every instruction
    →  write updates into the stored params  →  copy the outputs out

A run that feeds a param (overriding its stored value for that run) uses a
second binding whose param slots are copies; so does a program whose updates
read params (``updates={a: b, b: a}`` must swap, not copy one into both). The
caller's arrays are only read (copied into slots), and the arrays a run returns
are fresh copies that no later run touches.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from graphc.errors import GraphError
from graphc.memory import ALIGNMENT
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, COPY, INPUT, PARAM, SCRATCH, TEMP, Buffer, Plan


# A ufunc that broadcasts an operand allocates an iteration buffer of this many
# elements per call (NumPy's default is 8192, 64 KiB for float64); a small one
# keeps a run's transient allocations small and is no slower.
UFUNC_BUFFER_ELEMENTS = 1024


def _aligned_arena(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start: start + nbytes]


def _arena_view(arena: np.ndarray, buf: Buffer) -> np.ndarray:
    return arena[buf.offset: buf.offset + buf.nbytes].view(np.dtype(buf.dtype)).reshape(buf.shape)


def _copy_reshaped(out: np.ndarray, x: np.ndarray) -> None:
    np.copyto(out.reshape(x.shape), x)


def _copy_view(out: np.ndarray, x: np.ndarray, view: Callable[..., np.ndarray], attrs: dict[str, Any]) -> None:
    np.copyto(out, view(x, **attrs))


class Executable:
    """A Plan bound to memory. ``stored`` maps param names to their stored arrays.

    With ``share_params`` (the default) an unfed param is read from its stored array
    in place; otherwise it is copied into a slot of its own at every run.
    """

    def __init__(self, plan: Plan, stored: Mapping[str, np.ndarray], *, share_params: bool = True) -> None:
        self.plan = plan
        self.arena = _aligned_arena(plan.arena_bytes)
        self._all_stored = stored
        self._copying: Executable | None = None
        self._bind_all(share_params)
        if self.shared and any(np.shares_memory(value, self.stored[name]) for _, value in self.updates
                               for name in self.shared):
            self._bind_all(share_params=False)  # an update reads a param: keep copies

    def _bind_all(self, share_params: bool) -> None:
        plan, stored = self.plan, self._all_stored
        arrays: list[np.ndarray | None] = [None] * len(plan.buffers)
        shared: set[str] = set()
        for buf in plan.buffers:
            if buf.kind in (TEMP, SCRATCH):
                arrays[buf.id] = _arena_view(self.arena, buf)
            elif buf.kind == PARAM and share_params and _shareable(stored.get(buf.name), buf):
                arrays[buf.id] = stored[buf.name]
                shared.add(buf.name)
            elif buf.kind in (INPUT, PARAM):
                arrays[buf.id] = np.empty(buf.shape, np.dtype(buf.dtype))
            elif buf.kind == CONST:
                arrays[buf.id] = plan.constants[buf.id]
        self.shared = frozenset(shared)
        # slots a run fills: every input, and the params not read in place
        self.slots = {b.name: (b, arrays[b.id]) for b in plan.buffers
                      if b.kind in (INPUT, PARAM) and b.name not in shared}
        self.stored = {b.name: stored[b.name] for b in plan.buffers if b.kind == PARAM and b.name in stored}
        self.steps: list[Callable[[], Any]] = []
        self.updates: list[tuple[np.ndarray, np.ndarray]] = []
        for ins in plan.instructions:
            self._bind(ins, arrays)
        self.outputs = [arrays[o] for o in plan.outputs]

    def _bind(self, ins, arrays: list) -> None:
        args = [arrays[a] for a in ins.args]
        if ins.op == "assign":
            name = self.plan.buffers[ins.out].name
            if name not in self.stored:
                raise GraphError(f"the plan updates param {name!r}, but no stored value was given for it")
            self.updates.append((self.stored[name], args[0]))
            return
        kernel = lookup(ins.op).kernel
        if ins.mode == BIND_VIEW:
            arrays[ins.out] = kernel(*args, **ins.attrs)
            return
        out = arrays[ins.out]
        if ins.mode == COPY:
            step = partial(_copy_reshaped, out, *args) if ins.op == "reshape" else partial(_copy_view, out, *args, kernel, ins.attrs)
        elif ins.scratch:
            step = partial(kernel, out, *args, scratch=tuple(arrays[s] for s in ins.scratch), **ins.attrs)
        else:
            step = partial(kernel, out, *args, **ins.attrs)
        self.steps.append(step)

    def run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        """Execute once with ``feeds`` (name → array); return copies of the outputs."""
        bufsize = np.setbufsize(UFUNC_BUFFER_ELEMENTS)
        try:
            return self._run(feeds)
        finally:
            np.setbufsize(bufsize)

    def _run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        if self.shared and not self.shared.isdisjoint(feeds):  # a fed param must not touch storage
            if self._copying is None:
                self._copying = Executable(self.plan, self._all_stored, share_params=False)
            return self._copying._run(feeds)
        for name, (buf, slot) in self.slots.items():
            if name in feeds:
                np.copyto(slot, _checked_feed(buf, feeds[name]))
            elif name in self.stored:
                np.copyto(slot, self.stored[name])
            else:
                raise GraphError(f"input {name!r} ({buf.shape} {buf.dtype}) is needed but was not fed")
        for step in self.steps:
            step()
        for target, value in self.updates:
            np.copyto(target, value)
        return [np.array(out, copy=True) for out in self.outputs]


def _shareable(array: np.ndarray | None, buf: Buffer) -> bool:
    """Whether a stored param can be read in place: the buffer's shape and dtype, C order."""
    return (isinstance(array, np.ndarray) and array.shape == buf.shape and array.dtype == np.dtype(buf.dtype)
            and array.flags.c_contiguous)


def _checked_feed(buf: Buffer, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != buf.shape:
        raise GraphError(f"feed {buf.name!r} has shape {array.shape}, but the graph's {buf.kind} has shape {buf.shape}")
    if array.dtype != np.dtype(buf.dtype):
        raise GraphError(
            f"feed {buf.name!r} has dtype {array.dtype.name}, but the graph's {buf.kind} is {buf.dtype}"
            f" (convert it with .astype(np.{buf.dtype}))"
        )
    return array
