"""The NumPy runtime: bind a Plan to memory once, then run it again and again.

Binding allocates one 64-byte-aligned arena and makes every intermediate a
view of it at its planned offset; feeds get slots of their own, stored params
are read (and written, by updates) where they are stored, views are bound
once, and each kernel call is prepared with its arrays, so a run is a loop of
calls with no lookups and no allocation but the arrays it returns:

    check feeds and stored params  →  new output arrays (the kernels that write them re-bound)
    →  copy feeds into their slots  →  step() for every instruction  →  return the outputs

Updates are instructions like any other: the kernel that computes a param's
new value writes the stored array (``np.subtract(W, t, out=W)``) as soon as
every read of the old value has run, so a gradient dies with its update. A
run checks every param it will write before it writes any; a run that raises
after a write (an operand check on a computed value, ``check_numerics``)
puts the written params back as they were, so a failed run changes nothing.

A run that feeds a param (overriding its stored value for that run) uses a
second binding whose param slots are copies; its updates are copied into the
stored params at the end. The caller's arrays are only read (copied into
slots), and each run returns arrays of its own that no later run touches.

An :class:`Executable` is one arena: one run at a time. ``check_numerics``
binds a second kind of step that checks each result for NaN and Inf; without
it the run loop is the same loop of kernel calls.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Value
from graphc.memory.analysis import ALIGNMENT
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, COPY, INPUT, KERNEL, OUTPUT, PARAM, SCRATCH, TEMP, Buffer, Instruction, Plan, instruction_text


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

    With ``share_params`` (the default) an unfed param is read (and updated) in
    its stored array; otherwise it is copied into a slot of its own at every run.
    ``stored`` may be a live mapping (the graph's params): a run checks that each
    param it reads or updates is still the array it was bound to.
    """

    def __init__(self, plan: Plan, stored: Mapping[str, np.ndarray], *, share_params: bool = True,
                 check_numerics: bool = False) -> None:
        self.plan = plan
        self.check_numerics = check_numerics
        _check_stored_params(plan, stored)
        self.written = plan.updated_params
        missing = [name for name in self.written if name not in stored]
        if missing:
            raise GraphError(f"the plan updates param {missing[0]!r}, but no stored value was given for it")
        self.arena = _aligned_arena(plan.arena_bytes)
        self._all_stored = stored
        self._copying: Executable | None = None
        self._bind_all(share_params)

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
            elif buf.kind in (INPUT, PARAM, OUTPUT):
                arrays[buf.id] = np.empty(buf.shape, np.dtype(buf.dtype))
            elif buf.kind == CONST:
                arrays[buf.id] = plan.constants[buf.id]
        self.shared = frozenset(shared)
        # slots a run fills: every input, and the params not read in place
        self.slots = {b.name: (b, arrays[b.id]) for b in plan.buffers
                      if b.kind in (INPUT, PARAM) and b.name not in shared}
        self.stored = {b.name: stored[b.name] for b in plan.buffers if b.kind == PARAM and b.name in stored}
        self._write_back = [(self.stored[name], self.slots[name][1]) for name in self.written if name not in shared]
        self._from_sources = _source_derived_buffers(plan)
        self.checks: list[Callable[[], None]] = []  # operand checks that read feeds, params, constants: run first
        self.steps: list[Callable[[], Any]] = []
        self._positions: dict[int, slice] = {}
        for index, ins in enumerate(plan.instructions):
            steps, check = self._instruction_steps(index, ins, arrays)
            if check is not None:
                self.checks.append(check)
            self._positions[index] = slice(len(self.steps), len(self.steps) + len(steps))
            self.steps.extend(steps)
        checks_in_place = any(isinstance(step, partial) and step.func is _check_operands for step in self.steps)
        self._guard = bool(self.written) and (self.check_numerics or checks_in_place)
        self._arrays = arrays
        self._per_run = _per_run_instructions(plan)
        self._rebinds = [self._rebind_of(index) for index in self._per_run]
        self._output_specs = [(o, plan.buffers[o].shape, np.dtype(plan.buffers[o].dtype)) for o in plan.outputs]
        self._fresh = True  # the output arrays have not been returned yet

    def _instruction_steps(self, index: int, ins: Instruction, arrays: list) -> tuple[list[Callable[[], Any]], Callable[[], None] | None]:
        """The calls that run instruction ``index`` (none for a view: it is bound here, once),
        and its operand check where the operands it examines (the int operands: labels,
        indices) are feeds, params or constants: that check runs before the first step."""
        args = [arrays[a] for a in ins.args]
        prim = lookup(ins.op)
        kernel = prim.kernel
        if ins.mode == BIND_VIEW:
            arrays[ins.out] = kernel(*args, **ins.attrs)
            return [], None
        out = arrays[ins.out]
        if ins.mode == COPY:
            step = partial(_copy_reshaped, out, *args) if ins.op == "reshape" else partial(_copy_view, out, *args, kernel, ins.attrs)
        elif ins.scratch:
            step = partial(kernel, out, *args, scratch=tuple(arrays[s] for s in ins.scratch), **ins.attrs)
        else:
            step = partial(kernel, out, *args, **ins.attrs)
        if self.check_numerics:
            step = partial(_checked_step, step, self.plan, index, out, args)
        if prim.check_operands is None:
            return [step], None
        check = partial(_check_operands, self.plan, index, prim.check_operands, args, ins.attrs)
        examined = [a for k, a in enumerate(ins.args) if k in prim.int_operands] or ins.args
        if all(a in self._from_sources for a in examined):
            return [step], check
        return [check, step], None

    def _new_outputs(self) -> None:
        """Fresh arrays for the outputs (the caller owns the last run's), and the steps that use them."""
        arrays, steps = self._arrays, self.steps
        for o, shape, dtype in self._output_specs:
            arrays[o] = np.empty(shape, dtype)
        for rebind in self._rebinds:
            rebind(arrays, steps)

    def _rebind_of(self, index: int) -> Callable[[list, list], None]:
        """How instruction ``index`` is bound again on new output arrays: a plain kernel call
        directly (the common case, a few µs per run matter for small steps), anything else
        (views, copies, scratch, checks) as at bind time."""
        ins = self.plan.instructions[index]
        position = self._positions[index]
        prim = lookup(ins.op)
        if ins.mode == KERNEL and not ins.scratch and prim.check_operands is None and not self.check_numerics:
            kernel, out, args, attrs, at = prim.kernel, ins.out, ins.args, ins.attrs, position.start

            def rebind_kernel(arrays: list, steps: list) -> None:
                steps[at] = partial(kernel, arrays[out], *[arrays[a] for a in args], **attrs)
            return rebind_kernel

        def rebind(arrays: list, steps: list) -> None:
            steps[position] = self._instruction_steps(index, ins, arrays)[0]
        return rebind

    def run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        """Execute once with ``feeds`` (name → array); return the outputs (arrays of this run's own)."""
        bufsize = np.setbufsize(UFUNC_BUFFER_ELEMENTS)
        try:
            return self._run(feeds)
        finally:
            np.setbufsize(bufsize)

    def _run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        if self.shared and not self.shared.isdisjoint(feeds):  # a fed param must not touch storage
            if self._copying is None:
                self._copying = Executable(self.plan, self._all_stored, share_params=False,
                                           check_numerics=self.check_numerics)
            return self._copying._run(feeds)
        self._check_storage()
        for name, (buf, slot) in self.slots.items():
            if name in feeds:
                np.copyto(slot, _checked_feed(buf, feeds[name]))
            elif name in self.stored:
                np.copyto(slot, self.stored[name])
            else:
                raise GraphError(f"input {name!r} ({buf.shape} {buf.dtype}) is needed but was not fed")
        for check in self.checks:
            check()
        if not self._fresh:
            self._new_outputs()
        self._fresh = False
        if self._guard:
            self._run_guarded()
        else:
            for step in self.steps:
                step()
        for target, slot in self._write_back:
            np.copyto(target, slot)
        return [self._arrays[o] for o in self.plan.outputs]

    def _run_guarded(self) -> None:
        """The steps, with the params the plan writes put back as they were if one raises."""
        saved = [(self.stored[name], self.stored[name].copy()) for name in self.written]
        try:
            for step in self.steps:
                step()
        except BaseException:
            for target, value in saved:
                np.copyto(target, value)
            raise

    def _check_storage(self) -> None:
        """Every stored param this binding reads or writes is still the array it was bound to,
        and every param it updates is writable: checked before anything is computed or written."""
        live = self._all_stored
        for name, array in self.stored.items():
            if live.get(name) is not array:
                raise GraphError(
                    f"param {name!r}: its stored array was replaced after the program was bound; "
                    f"change a param's value with .assign(array) (in place), or compile the program again"
                )
        for name in self.written:
            if not self.stored[name].flags.writeable:
                raise GraphError(
                    f"param {name!r}: the program updates it, but its stored array is read-only; "
                    f"make it writable (array.flags.writeable = True) or compile without updating it "
                    f"(no param was written)"
                )


def _per_run_instructions(plan: Plan) -> list[int]:
    """The instructions that touch an output or a view bound on one: re-bound at each run."""
    per_run = set(plan.outputs)
    indices = []
    for index, ins in enumerate(plan.instructions):
        touched = ins.out in per_run or any(a in per_run for a in ins.args)
        if touched:
            indices.append(index)
            if ins.mode == BIND_VIEW:
                per_run.add(ins.out)
    return indices


def _check_stored_params(plan: Plan, stored: Mapping[str, Any]) -> None:
    """A stored param must be an array of its buffer's shape and dtype: never broadcast or cast."""
    for buf in plan.buffers:
        if buf.kind != PARAM or buf.name not in stored:
            continue
        array = stored[buf.name]
        if not isinstance(array, np.ndarray):
            raise GraphError(f"param {buf.name!r}: the stored value is a {type(array).__name__}, not a NumPy array "
                             f"of shape {buf.shape} {buf.dtype}")
        if array.shape != buf.shape or array.dtype != np.dtype(buf.dtype):
            raise GraphError(
                f"param {buf.name!r}: the stored array is {array.shape} {array.dtype.name}, but the plan's param is "
                f"{buf.shape} {buf.dtype}; store an array of that shape and dtype (w.assign(array) checks it)"
            )


def _shareable(array: np.ndarray | None, buf: Buffer) -> bool:
    """Whether a stored param can be read in place: C order (shape and dtype are checked at bind)."""
    return isinstance(array, np.ndarray) and array.flags.c_contiguous


def _checked_feed(buf: Buffer, value: Any) -> np.ndarray:
    """``value`` as an array of ``buf``'s shape and dtype, or a GraphError saying how to fix it."""
    if isinstance(value, Value):
        raise GraphError(f"{_feed_phrase(buf)} is a graph Value; feed a NumPy array with the data")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise GraphError(f"{_feed_phrase(buf)} cannot be made an array ({exc}); feed a rectangular NumPy array") from None
    if array.shape != buf.shape or array.dtype != np.dtype(buf.dtype):
        raise GraphError(_feed_mismatch(buf, array))
    return array


def _feed_phrase(buf: Buffer) -> str:
    return f"feed {buf.name!r} (the graph's {buf.kind} of shape {buf.shape} {buf.dtype})"


def _feed_mismatch(buf: Buffer, array: np.ndarray) -> str:
    what = _feed_phrase(buf)
    if array.dtype.kind not in "biuf":
        ragged = " (a ragged nested list gives dtype object)" if array.dtype.kind == "O" else ""
        return f"{what} has dtype {array.dtype.name}; feed numbers as a NumPy array of dtype {buf.dtype}{ragged}"
    if array.shape != buf.shape:
        return f"{what} has shape {array.shape}; feed an array of shape {buf.shape}"
    return f"{what} has dtype {array.dtype.name}; {_conversion_hint(array, np.dtype(buf.dtype))}"


def _conversion_hint(array: np.ndarray, want: np.dtype) -> str:
    if want.kind in "iu" and array.dtype.kind == "f":
        if not np.isfinite(array).all():
            return "it holds NaN or Inf, which are no labels or indices: fix the data"
        if not np.array_equal(array, np.round(array)):
            return "it holds non-integral values, which are no labels or indices: fix the data"
    return f"convert it with np.asarray(value, dtype=np.{want.name})"


def check_feeds_mapping(feeds: Any) -> Mapping[str, Any]:
    """``feeds`` as a mapping of names to arrays, or a GraphError saying what to pass."""
    if feeds is None:
        return {}
    if not isinstance(feeds, Mapping):
        raise GraphError(f"feeds must be a mapping of input names to arrays, like {{'x': X}}, "
                         f"got a {type(feeds).__name__}")
    for key in feeds:
        if isinstance(key, str):
            continue
        if isinstance(key, Value):
            raise GraphError(f"feeds are keyed by name: use {{{key.node.name!r}: ...}} instead of the Value "
                             f"{key.node.describe()}")
        raise GraphError(f"feed key {key!r} is a {type(key).__name__}; feeds are keyed by the input's name (a str)")
    return feeds


# --- run-time checks -----------------------------------------------------------------


def instruction_line(plan: Plan, index: int) -> str:
    """The listing's line of instruction ``index``, its runs of spaces made one."""
    return " ".join(instruction_text(plan, index).split())


def describe_instruction(plan: Plan, index: int) -> str:
    """``instruction 5 (`%13 = ...`), op softmax_cross_entropy, forward node 'loss'``."""
    ins = plan.instructions[index]
    origin = ins.origin or plan.buffers[ins.out].name
    role = {"backward": "the gradient of forward node", "recompute": "a recomputed copy of forward node"}.get(
        ins.tag, "forward node")
    where = f" in scope {ins.scope!r}" if ins.scope else ""
    return f"instruction {index} (`{instruction_line(plan, index)}`), op {ins.op!r}, {role} {origin!r}{where}"


def _check_operands(plan: Plan, index: int, check: Callable[..., str | None], args: list, attrs: dict) -> None:
    problem = check(*args, **attrs)
    if problem is not None:
        raise GraphError(f"{describe_instruction(plan, index)}: {problem}")


def _checked_step(step: Callable[[], Any], plan: Plan, index: int, out: np.ndarray, args: list) -> None:
    step()
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise GraphError(_numerics_message(plan, index, out, args))


def _numerics_message(plan: Plan, index: int, out: np.ndarray, args: list) -> str:
    """Which input was non-finite. Results of earlier instructions were checked finite when
    computed (and may since be overwritten in place by this very instruction), so only inputs
    that come from feeds, params and constants (directly or through views) are examined now."""
    what = "NaN" if np.isnan(out).any() else "Inf"
    ins = plan.instructions[index]
    from_sources = _source_derived_buffers(plan)
    bad_inputs = [f"%{a} {plan.buffers[a].name} {plan.buffers[a].shape}"
                  for a, x in zip(ins.args, args)
                  if a in from_sources and x.dtype.kind == "f" and not np.isfinite(x).all()]
    cause = (f"non-finite input {', '.join(bad_inputs)}" if bad_inputs
             else "its inputs were all finite: the op itself overflowed or met an undefined case (0/0, log 0, ...)")
    return f"check_numerics: {describe_instruction(plan, index)} produced {what}; {cause}"


def _source_derived_buffers(plan: Plan) -> set[int]:
    """Buffers that are a feed, a param or a constant, or a view bound on one."""
    derived = {b.id for b in plan.buffers if b.kind in (INPUT, PARAM, CONST)}
    for ins in plan.instructions:
        if ins.mode == BIND_VIEW and any(a in derived for a in ins.args):
            derived.add(ins.out)
    return derived
