"""The NumPy runtime: bind a Plan to memory once, then run it again and again.

Binding allocates one 64-byte-aligned arena and makes every intermediate a
view of it at its planned offset; feeds get slots of their own, stored params
are read (and written, by updates) where they are stored, and views are bound
once. On its first run an executable writes its instructions as one Python
function over those arrays (:class:`_StepWriter`; ``Executable.source`` is its
text): a kernel written as a ``lambda`` inlined as the NumPy call it makes
(``np.add(b9, b3, b10)``, as :mod:`graphc.codegen` inlines it), any other
kernel called by name with its operands and attributes, so that an instruction
costs its kernel and nothing else. A run is then:

    check stored params  →  the function: take the feeds in (check each; read it in place or copy it
    into its slot), new output arrays (and the views on them and on the feeds read in place),
    operand checks of feeds, one line per instruction  →  the outputs

A feed is read where the caller keeps it (no copy) when it is an ndarray of the
input's very shape and dtype, C-contiguous and aligned, and the plan writes no
stored param in place: no instruction writes an input, so the caller's array is
only read, and no output is one (see :func:`_inputs_read_in_place`). Any other
feed is checked and copied into the input's slot, as are the feeds of a plan
with updates.

The outputs are new arrays of each run, written by the kernels that compute them
(no copy out of the arena), and so are the views bound on them; nothing else is
allocated.

Updates are instructions like any other: the kernel that computes a param's
new value writes the stored array (``np.subtract(W, t, out=W)``) as soon as
every read of the old value has run, so a gradient dies with its update. A
run checks every param it will write before it writes any; a run that raises
after a write (an operand check on a computed value, ``check_numerics``)
puts the written params back as they were, so a failed run changes nothing.

A run that feeds a param (overriding its stored value for that run) uses a
second binding whose param slots are copies; its updates are copied into the
stored params at the end. The caller's arrays are only read (in place, or
copied into slots), and each run returns arrays of its own that no later run
touches.

An :class:`Executable` is one arena: one run at a time. ``check_numerics``
adds, after each instruction with a float result, a check for NaN and Inf;
without it the function has none.
"""

from __future__ import annotations

import re
from collections import abc
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

try:  # NumPy 2 keeps the ufunc settings (errors, buffer size) in a context variable
    from numpy._core.umath import _extobj_contextvar as _EXTOBJ, _make_extobj
except ImportError:  # pragma: no cover - another NumPy: np.setbufsize and a stand-in for the variable's reset
    _EXTOBJ = _make_extobj = None

_ufunc_settings: tuple[Any, Any] = (None, None)  # (the caller's settings, the same with our buffer size)


def _set_ufunc_buffer() -> Any:
    """Set the ufunc buffer to UFUNC_BUFFER_ELEMENTS for a run, the caller's other settings (np.seterr,
    np.errstate) kept; returns what :func:`_reset_ufunc_buffer` takes. The settings object derived from the
    caller's is made once and kept while the caller's stay the same: ``np.setbufsize`` and back cost a
    small step 7 µs a run."""
    global _ufunc_settings
    if _EXTOBJ is None:
        return np.setbufsize(UFUNC_BUFFER_ELEMENTS)
    current = _EXTOBJ.get()
    caller, ours = _ufunc_settings
    if caller is not current:
        ours = _make_extobj(bufsize=UFUNC_BUFFER_ELEMENTS)  # from the current settings
        _ufunc_settings = (current, ours)
    return _EXTOBJ.set(ours)


def _reset_ufunc_buffer(token: Any) -> None:
    if _EXTOBJ is None:
        np.setbufsize(token)
    else:
        _EXTOBJ.reset(token)


def _aligned_arena(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start: start + nbytes]


def _arena_view(arena: np.ndarray, buf: Buffer) -> np.ndarray:
    return arena[buf.offset: buf.offset + buf.nbytes].view(np.dtype(buf.dtype)).reshape(buf.shape)


class Executable:
    """A Plan bound to memory. ``stored`` maps param names to their stored arrays.

    With ``share_params`` (the default) an unfed param is read (and updated) in
    its stored array; otherwise it is copied into a slot of its own at every run.
    ``stored`` may be a live mapping (the graph's params): a run checks that each
    param it reads or updates is still the array it was bound to.

    The instructions run as one Python function written for this binding on the
    first run (``source`` is its text): one line per instruction over the bound
    arrays, see :class:`_StepWriter`.
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
            elif buf.kind in (INPUT, PARAM):
                arrays[buf.id] = np.empty(buf.shape, np.dtype(buf.dtype))
            elif buf.kind == CONST:
                arrays[buf.id] = plan.constants[buf.id]
        self.shared = frozenset(shared)
        # slots: every input (a feed read in place falls back to its slot), and the params not read in place
        self.slots = {b.name: (b, arrays[b.id]) for b in plan.buffers
                      if b.kind in (INPUT, PARAM) and b.name not in shared}
        self.stored = {b.name: stored[b.name] for b in plan.buffers if b.kind == PARAM and b.name in stored}
        holders = getattr(stored, "holders", None)  # the graph's param nodes: their .data is the live array
        self._bound = [(holder, self.stored[name]) for name, holder in holders(self.stored).items()] if holders else None
        self.read_in_place = _inputs_read_in_place(plan, updates_in_place=not self.shared.isdisjoint(self.written))
        self._write_back = [(self.stored[name], self.slots[name][1]) for name in self.written if name not in shared]
        self._from_sources = _source_derived_buffers(plan)
        # Outputs are new arrays at each run, and so are the feeds read in place and the views bound on either;
        # every other view is bound here.
        self._per_run = _per_run_buffers(plan, self.read_in_place)
        for ins in plan.instructions:
            if ins.mode == BIND_VIEW and ins.out not in self._per_run:
                arrays[ins.out] = lookup(ins.op).kernel(*[arrays[a] for a in ins.args], **ins.attrs)
        self._arrays = arrays
        checks_in_place = any(self._checked_in_place(ins) for ins in plan.instructions)
        self._guard = bool(self.written) and (self.check_numerics or checks_in_place)
        self._step: Step | None = None  # written on the first run
        self.source: str | None = None

    def _checked_in_place(self, ins: Instruction) -> bool:
        """Whether ``ins`` has an operand check that reads a computed value: run just before its kernel
        (a check of feeds, params and constants alone runs before anything is computed or written)."""
        prim = lookup(ins.op)
        if ins.mode == BIND_VIEW or prim.check_operands is None:
            return False
        examined = [a for k, a in enumerate(ins.args) if k in prim.int_operands] or ins.args
        return not all(a in self._from_sources for a in examined)

    def _prepare(self) -> Step:
        """The function that runs the instructions and returns the outputs (written once, on the first run)."""
        if self._step is None:
            self.source, self._step = _StepWriter(self).function()
        return self._step

    def run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        """Execute once with ``feeds`` (name → array); return the outputs (arrays of this run's own)."""
        token = _set_ufunc_buffer()
        try:
            return self._run(feeds)
        finally:
            _reset_ufunc_buffer(token)

    def _run(self, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        if self.shared and not self.shared.isdisjoint(feeds):  # a fed param must not touch storage
            if self._copying is None:
                self._copying = Executable(self.plan, self._all_stored, share_params=False,
                                           check_numerics=self.check_numerics)
            return self._copying._run(feeds)
        step = self._step or self._prepare()
        self._check_storage()
        if self._guard:
            outputs = self._run_guarded(step, feeds)
        else:
            outputs = step(feeds)
        for target, slot in self._write_back:
            np.copyto(target, slot)
        return outputs

    def _run_guarded(self, step: Step, feeds: Mapping[str, Any]) -> list[np.ndarray]:
        """The step, with the params the plan writes put back as they were if it raises."""
        saved = [(self.stored[name], self.stored[name].copy()) for name in self.written]
        try:
            return step(feeds)
        except BaseException:
            for target, value in saved:
                np.copyto(target, value)
            raise

    def _check_storage(self) -> None:
        """Every stored param this binding reads or writes is still the array it was bound to,
        and every param it updates is writable: checked before anything is computed or written."""
        if self._bound is not None:  # a loop of attribute reads: 0.1 µs a param, against 0.7 through the mapping
            for holder, array in self._bound:
                if holder.data is not array:
                    raise _replaced(holder.name)
        else:
            live = self._all_stored
            for name, array in self.stored.items():
                if live.get(name) is not array:
                    raise _replaced(name)
        for name in self.written:
            if not self.stored[name].flags.writeable:
                raise GraphError(
                    f"param {name!r}: the program updates it, but its stored array is read-only; "
                    f"make it writable (array.flags.writeable = True) or compile without updating it "
                    f"(no param was written)"
                )


def _replaced(name: str) -> GraphError:
    return GraphError(
        f"param {name!r}: its stored array was replaced after the program was bound; "
        f"change a param's value with .assign(array) (in place), or compile the program again"
    )


_MISSING = object()

Step = Callable[[Mapping[str, Any]], list[np.ndarray]]
"""The function an Executable writes: ``step(feeds)`` takes the feeds in, runs the plan, returns the outputs."""


class _StepWriter:
    """Writes an Executable's instructions as one Python function and compiles it.

    The function's body is the plan: the feeds taken in (:meth:`intake`), a new array for
    each output and the views bound on them and on the feeds read in place, then the operand
    checks that read only feeds, params and constants, then one line per instruction in plan
    order. A kernel written as a ``lambda`` is inlined (its body, as
    :mod:`graphc.codegen` writes it: ``np.add(b9, b3, b10)``), the same ufunc calls
    with the same arrays and attributes that calling the kernel makes; any other kernel is
    called (``_nll_kernel(b16, b13, b1)``). The bound arrays, attributes and functions are
    the globals of the function; the feeds read in place, the outputs and the views bound
    on them its locals: a run makes no call per instruction but the kernel's own, and binds
    nothing else.
    An instruction whose kernel cannot be inlined or named this way (a callable that is
    not a Python function) is called through a ``functools.partial`` of its attributes.
    """

    def __init__(self, executable: Executable) -> None:
        from graphc import codegen  # codegen imports this module

        self.executable = executable
        self.plan = executable.plan
        self.namespace: dict[str, Any] = {"np": np, "__builtins__": __builtins__}
        self.names = _runtime_names(self.namespace, codegen)
        self.names.taken.update({"_fail", "_nonfinite", "_problem", "_take", "_MISSING", "_ndarray", "_v", "feeds"})
        self.namespace.update(_MISSING=_MISSING, _ndarray=np.ndarray,  # no reference to the executable: no cycle
                              _take=partial(_take_feed, self.plan, executable.stored, executable.read_in_place,
                                            executable._arrays))
        self.forms: dict[tuple, str | None] = {}  # (kernel, operands, attribute names) → text with placeholders
        self.plain_names: dict[tuple, str] = {}
        self.namespace["_fail"] = partial(_fail, self.plan)
        self.namespace["_nonfinite"] = partial(_nonfinite, self.plan)
        self.CannotEmit = codegen.CannotEmit
        self.Source = codegen.Source

    def var(self, buffer: int) -> str:
        """The name of a buffer: a global bound to its array, or a local for a per-run one."""
        name = f"b{buffer}"
        if buffer not in self.executable._per_run and name not in self.namespace:
            self.namespace[name] = self.executable._arrays[buffer]
        return name

    def attrs(self, index: int, attrs: Mapping[str, Any]) -> dict[str, str]:
        """The attributes as names bound to the very objects (no literals to read back); equal plain
        values (ints, floats, strings, tuples of them; by type and repr) share a name."""
        names = {}
        for key, value in attrs.items():
            plain = (type(value), repr(value)) if _plain(value) else None
            name = self.plain_names.get(plain) if plain else None
            if name is None:
                name = self.names.bind(value, f"a{index}_{key}")
                if plain:
                    self.plain_names[plain] = name
            names[key] = name
        return names

    def call(self, index: int, fn: Any, args: list[str], attrs: Mapping[str, Any], suffix: str = "") -> str:
        """Source of ``fn(*args, **attrs)``: inlined, or a call of ``fn`` by name, or of a partial.

        The text of a kernel depends on the kernel, the number of operands and the attributes'
        names only (operands and attributes are names here): it is written once with placeholders
        and filled in for each instruction."""
        form_key = (fn, len(args), tuple(attrs))
        form = self.forms.get(form_key, _MISSING)
        if form is _MISSING:
            holders = [f"_ph_a{k}_" for k in range(len(args))]
            slots = {key: self.Source(f"_ph_k{k}_") for k, key in enumerate(attrs)}
            try:
                form = self.names.call(fn, holders, slots)
            except self.CannotEmit:
                form = None
            self.forms[form_key] = form
        if form is None:
            bound = self.names.bind(partial(fn, **attrs), f"k{index}{suffix}")
            return f"{bound}({', '.join(args)})"
        names = self.attrs(index, attrs)
        fill = {f"_ph_a{k}_": a for k, a in enumerate(args)}
        fill.update((f"_ph_k{k}_", names[key]) for k, key in enumerate(attrs))
        return _PLACEHOLDER.sub(lambda m: fill[m.group(0)], form)

    def instruction(self, index: int, ins: Instruction) -> list[str]:
        prim = lookup(ins.op)
        args = [self.var(a) for a in ins.args]
        if ins.mode == BIND_VIEW:  # on a per-run buffer (the others are bound once)
            return [f"{self.var(ins.out)} = {self.call(index, prim.kernel, args, ins.attrs)}"]
        lines = []
        if self.executable._checked_in_place(ins):
            lines.extend(self.check(index, ins, args))
        out = self.var(ins.out)
        if ins.mode == COPY:
            lines.append(self.call(index, prim.copy_view, [out, *args], ins.attrs))
        else:
            attrs = dict(ins.attrs)
            if ins.scratch:
                scratch = tuple(self.executable._arrays[s] for s in ins.scratch)
                attrs = {"scratch": scratch, **attrs}
            lines.append(self.call(index, prim.kernel, [out, *args], attrs))
        if self.executable.check_numerics and np.dtype(self.plan.buffers[ins.out].dtype).kind == "f":
            lines.append(f"if not np.isfinite({out}).all():")
            lines.append(f"    _nonfinite({index}, {out}, ({''.join(a + ', ' for a in args)}))")
        return lines

    def check(self, index: int, ins: Instruction, args: list[str]) -> list[str]:
        """``_problem = check_operands(...)``, raising the runtime's message if it found one."""
        problem = self.call(index, lookup(ins.op).check_operands, args, ins.attrs, "_check")
        return [f"_problem = {problem}", "if _problem is not None:", f"    _fail({index}, _problem)"]

    def intake(self, buf: Buffer) -> list[str]:
        """The lines that take the feed of an input or param slot in: a quick test of the usual case (an
        ndarray of the very shape and dtype; read in place, also C-contiguous, aligned and writable),
        :func:`_take_feed` for any other (it raises the feed errors, or gives the array to read), then
        for a slot the copy into it."""
        dtype = self.names.bind(np.dtype(buf.dtype), f"dtype_{buf.dtype}")
        direct = buf.id in self.executable.read_in_place
        name = self.var(buf.id) if direct else "_v"
        usual = f"type({name}) is _ndarray and {name}.shape == {buf.shape!r} and {name}.dtype is {dtype}"
        if direct:
            usual += f" and {name}.flags.carray"
        lines = [f"{name} = feeds.get({buf.name!r}, _MISSING)",
                 f"if not ({usual}):",
                 f"    {name} = _take({buf.id}, {name})"]
        if not direct:
            lines.append(f"np.copyto({self.var(buf.id)}, _v)")
        return lines

    def function(self) -> tuple[str, Step]:
        """``step(feeds)``: the feeds taken in (read in place, or checked and copied into their slots),
        new arrays for the outputs and the views bound on them and on the feeds read in place (before
        anything reads them: an operand check may take a shape from one), the operand checks of feeds,
        params and constants, then the instructions in plan order."""
        plan, executable = self.plan, self.executable
        fresh: list[str] = []
        for buf, _ in executable.slots.values():
            fresh.extend(self.intake(buf))
        for o in dict.fromkeys(plan.outputs):
            buf = plan.buffers[o]
            dtype = self.names.bind(np.dtype(buf.dtype), f"dtype_{buf.dtype}")
            fresh.append(f"{self.var(o)} = np.empty({buf.shape!r}, {dtype})")
        early: list[str] = []
        body: list[str] = []
        for index, ins in enumerate(plan.instructions):
            if ins.mode == BIND_VIEW:
                if ins.out in executable._per_run:
                    fresh.extend(self.instruction(index, ins))
                continue
            prim = lookup(ins.op)
            if prim.check_operands is not None and not executable._checked_in_place(ins):
                check = self.check(index, ins, [self.var(a) for a in ins.args])
                if check[0] not in early:  # the same check of the same arrays (labels read by two kernels): once
                    early.extend(check)
            body.extend(self.instruction(index, ins))
        lines = ["def step(feeds):", *("    " + line for line in (*fresh, *early, *body)),
                 f"    return [{', '.join(self.var(o) for o in plan.outputs)}]"]
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<graphc plan {plan.name!r}>", "exec"), self.namespace)  # noqa: S102 - graphc's own plan
        return source, self.namespace["step"]


_PLACEHOLDER = re.compile(r"(?<!\w)_ph_[ak]\d+_(?!\w)")


def _plain(value: Any) -> bool:
    """An attribute value that a name may stand for by type and repr: None, a bool, int, float or
    str, or a tuple of those."""
    if type(value) is tuple:
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def _runtime_names(namespace: dict[str, Any], codegen: Any) -> Any:
    """codegen's writer of kernel calls, with every object it names bound in ``namespace`` (nothing
    copied). Its class is made here: codegen imports this module, so this module imports codegen late."""

    class RuntimeNames(codegen._Module):
        def reference(self, obj: Any, hint: str) -> str:
            return "np" if obj is np else self.bind(obj, hint)

        def function(self, fn: Any, known: Mapping[str, Any] | None = None) -> str:
            return self.bind(fn, fn.__name__)

        def bind(self, obj: Any, hint: str) -> str:
            known = self.names.get(id(obj))
            if known is not None and known[0] is obj:
                return known[1]
            name = self.fresh(hint)
            namespace[name] = obj
            self.names[id(obj)] = (obj, name)
            return name

    return RuntimeNames()


def _fail(plan: Plan, index: int, problem: str) -> None:
    raise GraphError(f"{describe_instruction(plan, index)}: {problem}")


def _nonfinite(plan: Plan, index: int, out: np.ndarray, args: tuple) -> None:
    raise GraphError(_numerics_message(plan, index, out, list(args)))


def _per_run_buffers(plan: Plan, read_in_place: frozenset[int] = frozenset()) -> set[int]:
    """The outputs, the inputs read in place (the caller's arrays), and the views bound on either:
    other arrays at each run."""
    per_run = set(plan.outputs) | read_in_place
    for ins in plan.instructions:
        if ins.mode == BIND_VIEW and any(a in per_run for a in ins.args):
            per_run.add(ins.out)
    return per_run


def _inputs_read_in_place(plan: Plan, updates_in_place: bool) -> frozenset[int]:
    """The inputs whose feeds a run may read where the caller keeps them rather than copy into a slot.

    A feed is only read: no instruction writes its buffer or a view of it (a plan never does:
    kernels write temps, outputs and params, :mod:`graphc.validate`; checked here all the same),
    and it is never returned (outputs are new arrays). A run that writes stored params in place
    copies its feeds: a feed may be the stored array of such a param, or a view of one, whose
    old values a copy keeps for the reads after the update; the one ``np.shares_memory`` test
    per feed and param that would tell costs more than the copy.
    """
    if updates_in_place:
        return frozenset()
    bases: dict[int, frozenset[int]] = {b.id: frozenset({b.id}) for b in plan.buffers}
    written: set[int] = set()
    for ins in plan.instructions:
        if ins.mode == BIND_VIEW:
            bases[ins.out] = frozenset().union(*(bases[a] for a in ins.args))
        else:
            written |= bases[ins.out]
    return frozenset(b.id for b in plan.buffers_of(INPUT) if b.id not in written)


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


def _take_feed(plan: Plan, stored: Mapping[str, np.ndarray], read_in_place: frozenset[int],
               arrays: list[np.ndarray | None], buffer: int, value: Any) -> np.ndarray:
    """The array a run reads for the input or param ``buffer`` given ``value``, its feed (or
    ``_MISSING``), when the step's quick test did not pass: the stored array of an unfed param;
    a GraphError for an unfed input or a feed of the wrong kind, shape or dtype; else the feed as
    an array. An input read in place reads it where it is when it is C-contiguous and aligned
    (read-only too: it is only read), else from its slot (``arrays[buffer]``), copied there."""
    buf = plan.buffers[buffer]
    if value is _MISSING:
        value = stored.get(buf.name, _MISSING)
        if value is _MISSING:
            raise GraphError(f"input {buf.name!r} ({buf.shape} {buf.dtype}) is needed but was not fed")
        return value
    array = _checked_feed(buf, value)
    if buffer in read_in_place and not (array.flags.c_contiguous and array.flags.aligned):
        slot = arrays[buffer]
        np.copyto(slot, array)
        return slot
    return array


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
    if not isinstance(feeds, abc.Mapping):
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
