"""The flat execution plan: instructions over numbered buffers.

A :class:`Plan` is plain data: printable (``str(plan)`` is a listing),
serialisable (:meth:`Plan.to_json` / :meth:`Plan.from_json`, versioned), and
enough for the runtime to execute without the graph it came from. Kernels are
found again by op name in the op registry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import TOP_LEVEL, Aval, Node, dtype_name
from graphc.memory import MemoryPlan
from graphc.memory.analysis import is_copying_view
from graphc.ops.core import registered
from graphc.dataflow import Dataflow

FORMAT = "graphc-plan"
VERSION = 4
READABLE_VERSIONS = (3, 4)
"""Versions :meth:`Plan.from_json` reads: 4 added each instruction's ``scope``; a version-3 plan loads with every scope ``""``."""

# Buffer kinds: fed, stored, constant; in the arena (temp, scratch); bound on another buffer (view);
# allocated by each run and returned (output).
INPUT, PARAM, CONST, TEMP, VIEW, SCRATCH, OUTPUT = "input", "param", "const", "temp", "view", "scratch", "output"
# Instruction modes: run the kernel into `out`; bind a view once; copy a view op's result.
KERNEL, BIND_VIEW, COPY = "kernel", "view", "copy"


@dataclass(frozen=True)
class Buffer:
    """A numbered array of the plan: its shape, dtype, kind and arena offset (temps, scratch)."""

    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    offset: int | None = None

    @property
    def aval(self) -> Aval:
        return Aval(self.shape, np.dtype(self.dtype))

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Instruction:
    """``out = op(*args; **attrs)``, with its scratch buffers and a tag.

    ``tag`` is ``"forward"``, ``"backward"`` (an adjoint node), ``"recompute"``
    or ``"update"`` (an optimizer's arithmetic; an instruction whose ``out`` is a
    param buffer writes the param's stored array: in place, or by a ``copy``).
    ``origin`` names the forward node the instruction computes, recomputes, or
    whose gradient it computes (``""`` when the plan was built without one: errors then name ``out``).
    ``scope`` is the :func:`graphc.scope` path of the node it computes (``""`` at top level).
    """

    op: str
    out: int
    args: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    scratch: tuple[int, ...] = ()
    mode: str = KERNEL
    tag: str = "forward"
    origin: str = ""
    scope: str = ""


@dataclass
class Plan:
    """Instructions over numbered buffers, ready for :class:`~graphc.runtime.Executable`."""

    name: str
    buffers: list[Buffer]
    instructions: list[Instruction]
    outputs: list[int]
    constants: dict[int, np.ndarray]
    arena_bytes: int

    def buffers_of(self, kind: str) -> list[Buffer]:
        return [b for b in self.buffers if b.kind == kind]

    @property
    def inputs(self) -> dict[str, Buffer]:
        return {b.name: b for b in self.buffers_of(INPUT)}

    @property
    def params(self) -> dict[str, Buffer]:
        return {b.name: b for b in self.buffers_of(PARAM)}

    @property
    def updated_params(self) -> list[str]:
        """The params whose stored arrays the plan writes (its updates), in the order it first writes them."""
        buffers = self.buffers
        return list(dict.fromkeys(buffers[i.out].name for i in self.instructions if buffers[i.out].kind == PARAM))

    # --- listing ------------------------------------------------------------
    def __str__(self) -> str:
        return format_listing(self)

    # --- JSON ----------------------------------------------------------------
    def to_json(self, indent: int | None = None) -> str:
        """The plan as JSON (constants base64-encoded); :meth:`from_json` reads it back.

        The document carries ``sha256``, the digest of its canonical form
        (:func:`content_digest`), so a damaged or edited file is recognised.
        """
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "arena_bytes": self.arena_bytes,
            "buffers": [asdict(b) for b in self.buffers],
            "instructions": [asdict(i) for i in self.instructions],
            "outputs": self.outputs,
            "constants": {str(k): _encode_array(v) for k, v in self.constants.items()},
        }
        doc["sha256"] = content_digest(doc)
        return json.dumps(doc, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Plan":
        """Read a plan written by :meth:`to_json`, checking all of it before returning.

        In order: the JSON itself, the format name and version, the content
        digest, every field's type and range (:func:`plan_from_document`), and
        then the independent validator (:func:`graphc.validate.validate`:
        shape rules, reads after writes, no overlapping live buffers). Any
        damage raises :class:`~graphc.GraphError` naming the field.
        """
        return load_plan_document(parse_plan_text(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (
            (self.name, self.buffers, self.instructions, self.outputs, self.arena_bytes)
            == (other.name, other.buffers, other.instructions, other.outputs, other.arena_bytes)
            and self.constants.keys() == other.constants.keys()
            and all(np.array_equal(v, other.constants[k]) and v.dtype == other.constants[k].dtype
                    for k, v in self.constants.items())
        )


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}


# --- loading: every field checked, every failure a GraphError naming the field ------


BUFFER_KINDS = (INPUT, PARAM, CONST, TEMP, VIEW, SCRATCH, OUTPUT)
INSTRUCTION_MODES = (KERNEL, BIND_VIEW, COPY)
TAGS = ("forward", "backward", "recompute", "update")
BUFFER_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64")
"""The dtypes a buffer may have (constants may be of any of them; feeds are float or int)."""
SOURCE_DTYPES = ("float32", "float64", "int32", "int64")
"""The dtypes of inputs and params."""

_BUFFER_KEYS = ("id", "name", "shape", "dtype", "kind", "offset")
_INSTRUCTION_KEYS = ("op", "out", "args", "attrs", "scratch", "mode", "tag", "origin", "scope")
_DOCUMENT_KEYS = ("format", "version", "name", "arena_bytes", "buffers", "instructions", "outputs", "constants", "sha256")
_ARRAY_KEYS = ("dtype", "shape", "data")
_MAX_NDIM = 32  # NumPy's limit is 64; no graphc op makes more than a handful
_MAX_ATTR_DEPTH = 4  # attributes are scalars, tuples, or tuples of tuples


def content_digest(doc: dict[str, Any]) -> str:
    """SHA-256 of the document without its ``sha256`` field, in canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _damaged(where: str, message: str) -> GraphError:
    return GraphError(f"plan file: {where} {message}; write the plan again with Plan.to_json (or compile it again)")


def parse_plan_text(text: str | bytes) -> dict[str, Any]:
    """The JSON object of a plan file, or a GraphError saying why the text is not one."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise GraphError(f"plan file: expected the JSON text of a plan (str or bytes), got a {type(text).__name__}")
    if not text.strip():
        raise _damaged("the text", "is empty")
    try:
        doc = json.loads(text)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise _damaged("the text", f"is not valid JSON ({err})") from None
    except RecursionError:
        raise _damaged("the text", "nests deeper than any plan does") from None
    if not isinstance(doc, dict):
        raise _damaged("the document", f"is a JSON {_json_type(doc)}, not an object")
    return doc


def read_plan_file(path: str | os.PathLike) -> "Plan":
    """The plan in the file at ``path`` (written from :meth:`Plan.to_json`), checked as :meth:`Plan.from_json` does."""
    if not isinstance(path, (str, os.PathLike)):
        raise GraphError(f"plan file: the path must be a str or a pathlib.Path, got a {type(path).__name__}")
    file = Path(path)
    if not file.exists():
        raise GraphError(f"plan file: {str(file)!r} does not exist; check the path")
    if file.is_dir():
        raise GraphError(f"plan file: {str(file)!r} is a directory; give the path of a plan's .json file")
    try:
        data = file.read_bytes()
    except OSError as err:
        raise GraphError(f"plan file: {str(file)!r} cannot be read ({err.strerror or err})") from None
    try:
        return Plan.from_json(data)
    except GraphError as err:
        raise GraphError(str(err).replace("plan file:", f"plan file {str(file)!r}:", 1)) from None


def load_plan_document(doc: dict[str, Any]) -> "Plan":
    """Check a parsed plan document field by field, build the Plan, and validate it."""
    from graphc.validate import validate  # validate imports this module

    fmt = doc.get("format")
    if fmt != FORMAT:
        raise GraphError(f"plan file: not a graphc plan (format {fmt!r}, expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise GraphError(
            f"plan file: format version {version!r} is not supported (this graphc reads versions {readable}); "
            "compile the graph again and save it with this graphc"
        )
    _check_keys(doc, _DOCUMENT_KEYS, "the document")
    digest = doc["sha256"]
    if not isinstance(digest, str) or digest != content_digest(doc):
        raise _damaged("sha256", "does not match the content: the file was edited or damaged after it was written")
    plan = plan_from_document(_with_scopes(doc) if version == 3 else doc)
    validate(plan)
    return plan


def _with_scopes(doc: dict[str, Any]) -> dict[str, Any]:
    """A version-3 document as version 4: every instruction at the top-level scope ``""`` (version 3 had none)."""
    instructions = doc["instructions"]
    if not isinstance(instructions, list):
        return doc  # the field checks say what is wrong
    upgraded = []
    for index, raw in enumerate(instructions):
        if isinstance(raw, dict):
            if "scope" in raw:
                raise _damaged(f"instructions[{index}]", "has the field 'scope', which plans of version 3 do not have "
                                                         "(scopes came with version 4)")
            raw = {**raw, "scope": ""}
        upgraded.append(raw)
    return {**doc, "version": VERSION, "instructions": upgraded}


def plan_from_document(doc: dict[str, Any]) -> "Plan":
    """The Plan a document describes, after checking each field's type and range (not its meaning)."""
    _check_keys(doc, _DOCUMENT_KEYS, "the document")
    name = _string(doc["name"], "name")
    arena_bytes = _count(doc["arena_bytes"], "arena_bytes")
    raw_buffers = _list(doc["buffers"], "buffers")
    buffers = [_buffer(b, k) for k, b in enumerate(raw_buffers)]
    n = len(buffers)
    instructions = [_instruction(i, k, n) for k, i in enumerate(_list(doc["instructions"], "instructions"))]
    outputs = [_buffer_id(o, f"outputs[{k}]", n) for k, o in enumerate(_list(doc["outputs"], "outputs"))]
    constants = _constants(doc["constants"], buffers)
    return Plan(name, buffers, instructions, outputs, constants, arena_bytes)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_keys(obj: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise _damaged(where, f"is a JSON {_json_type(obj)}, expected an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _damaged(where, f"lacks the field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    unknown = sorted(k for k in obj if k not in keys)
    if unknown:
        raise _damaged(where, f"has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise _damaged(where, f"is a JSON {_json_type(value)}, expected a list")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _damaged(where, f"is a JSON {_json_type(value)}, expected a string")
    return value


def _count(value: Any, where: str) -> int:
    """A non-negative int (not a bool, not a float)."""
    if type(value) is not int:
        raise _damaged(where, f"is {value!r} (a JSON {_json_type(value)}), expected a non-negative integer")
    if value < 0:
        raise _damaged(where, f"is {value}, expected a non-negative integer")
    return value


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _damaged(where, f"is {value!r}, expected one of {', '.join(allowed)}")
    return value


def _buffer_id(value: Any, where: str, n: int) -> int:
    index = _count(value, where)
    if index >= n:
        raise _damaged(where, f"is %{index}, but the plan has buffers %0 to %{n - 1}")
    return index


def _shape(value: Any, where: str) -> tuple[int, ...]:
    dims = _list(value, where)
    if len(dims) > _MAX_NDIM:
        raise _damaged(where, f"has {len(dims)} dimensions (at most {_MAX_NDIM})")
    return tuple(_count(d, f"{where}[{k}]") for k, d in enumerate(dims))


def _buffer(raw: Any, index: int) -> Buffer:
    where = f"buffers[{index}]"
    _check_keys(raw, _BUFFER_KEYS, where)
    if _count(raw["id"], f"{where}.id") != index:
        raise _damaged(f"{where}.id", f"is {raw['id']}, but buffer ids must equal their positions ({index})")
    kind = _choice(raw["kind"], BUFFER_KINDS, f"{where}.kind")
    dtype = _choice(raw["dtype"], SOURCE_DTYPES if kind in (INPUT, PARAM) else BUFFER_DTYPES, f"{where}.dtype")
    shape = _shape(raw["shape"], f"{where}.shape")
    offset = raw["offset"]
    if kind in (TEMP, SCRATCH):
        offset = _count(offset, f"{where}.offset")
    elif offset is not None:
        raise _damaged(f"{where}.offset", f"is {offset!r}, but a {kind} buffer has no arena offset (null)")
    return Buffer(index, _string(raw["name"], f"{where}.name"), shape, dtype, kind, offset)


def _instruction(raw: Any, index: int, n: int) -> Instruction:
    where = f"instructions[{index}]"
    _check_keys(raw, _INSTRUCTION_KEYS, where)
    op = _string(raw["op"], f"{where}.op")
    if op not in registered():
        raise _damaged(f"{where}.op", f"is {op!r}, which is no registered op (define custom ops before loading)")
    attrs = raw["attrs"]
    if not isinstance(attrs, dict):
        raise _damaged(f"{where}.attrs", f"is a JSON {_json_type(attrs)}, expected an object")
    return Instruction(
        op=op,
        out=_buffer_id(raw["out"], f"{where}.out", n),
        args=tuple(_buffer_id(a, f"{where}.args[{k}]", n) for k, a in enumerate(_list(raw["args"], f"{where}.args"))),
        attrs={k: _attribute(v, f"{where}.attrs.{k}") for k, v in attrs.items()},
        scratch=tuple(_buffer_id(s, f"{where}.scratch[{k}]", n)
                      for k, s in enumerate(_list(raw["scratch"], f"{where}.scratch"))),
        mode=_choice(raw["mode"], INSTRUCTION_MODES, f"{where}.mode"),
        tag=_choice(raw["tag"], TAGS, f"{where}.tag"),
        origin=_string(raw["origin"], f"{where}.origin"),
        scope=_scope_path(raw["scope"], f"{where}.scope"),
    )


def _scope_path(value: Any, where: str) -> str:
    """``""`` or names joined by ``/``, none of them empty."""
    path = _string(value, where)
    if path and not all(path.split("/")):
        raise _damaged(where, f"is {path!r}, which is no scope path (non-empty names joined by '/', or '' at top level)")
    return path


def _attribute(value: Any, where: str, depth: int = 0) -> Any:
    """JSON lists back to the tuples attributes are made of (nesting is bounded, so is the recursion)."""
    if isinstance(value, list):
        if depth >= _MAX_ATTR_DEPTH:
            raise _damaged(where, f"nests lists deeper than {_MAX_ATTR_DEPTH} levels")
        return tuple(_attribute(v, f"{where}[{k}]", depth + 1) for k, v in enumerate(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _damaged(where, f"is a JSON {_json_type(value)}; attributes are numbers, strings, booleans or lists")


def _constants(raw: Any, buffers: list[Buffer]) -> dict[int, np.ndarray]:
    if not isinstance(raw, dict):
        raise _damaged("constants", f"is a JSON {_json_type(raw)}, expected an object")
    const_ids = {b.id for b in buffers if b.kind == CONST}
    constants = {}
    for key, value in raw.items():
        where = f"constants[{key!r}]"
        if not re.fullmatch(r"[0-9]{1,18}", key) or int(key) not in const_ids:
            raise _damaged(where, "names no const buffer (keys are the ids of the const buffers)")
        constants[int(key)] = _decode_array(value, where, buffers[int(key)])
    missing = sorted(const_ids - constants.keys())
    if missing:
        raise _damaged("constants", f"lacks the value of const buffer{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(f'%{m}' for m in missing)}")
    return constants


def _decode_array(raw: Any, where: str, buf: Buffer) -> np.ndarray:
    """A read-only array from its base64 form, which must match its buffer's shape and dtype."""
    _check_keys(raw, _ARRAY_KEYS, where)
    try:
        dtype = np.dtype(_string(raw["dtype"], f"{where}.dtype"))
    except (TypeError, ValueError):
        raise _damaged(f"{where}.dtype", f"is {raw['dtype']!r}, which is not a dtype") from None
    if dtype != np.dtype(buf.dtype):
        raise _damaged(f"{where}.dtype", f"is {dtype.str}, but buffer %{buf.id} ({buf.name}) is {buf.dtype}")
    shape = _shape(raw["shape"], f"{where}.shape")
    if shape != buf.shape:
        raise _damaged(f"{where}.shape", f"is {shape}, but buffer %{buf.id} ({buf.name}) has shape {buf.shape}")
    try:
        data = base64.b64decode(_string(raw["data"], f"{where}.data"), validate=True)
    except (binascii.Error, ValueError):
        raise _damaged(f"{where}.data", "is not valid base64") from None
    if len(data) != buf.nbytes:
        raise _damaged(f"{where}.data", f"holds {len(data)} bytes, but {shape} {buf.dtype} needs {buf.nbytes}")
    a = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    a.setflags(write=False)
    return a


# --- lowering ----------------------------------------------------------------------


_SOURCE_KIND = {"input": INPUT, "param": PARAM, "const": CONST}


def _origin(node: Node) -> str:
    """The forward node behind ``node``: the one it recomputes, or whose gradient it computes."""
    if node.recompute_of is not None:
        return node.recompute_of.name
    if node.adjoint is not None and node.adjoint.forward is not None:
        return node.adjoint.forward.name
    return node.name


def _tag(node: Node, for_outputs: set[Node], writes: dict[Node, Node]) -> str:
    """backward: an adjoint node; recompute: a clone of a forward node; update: a writer, or
    needed only by updates; forward: the rest (needed by an output)."""
    if node in writes:
        return "update"
    if node.recompute_of is not None:
        return "recompute"
    if node.adjoint is not None:
        return "backward"
    return "forward" if node in for_outputs else "update"


def lower(name: str, flow: Dataflow, order: Sequence[Node], memory: MemoryPlan) -> Plan:
    """Number the buffers of a scheduled, memory-planned dataflow and emit its instructions."""
    buffers: list[Buffer] = []
    number: dict[Hashable, int] = {}
    outputs, storage, scratch = flow.outputs, memory.storage, memory.scratch
    for_outputs = flow.ancestors(outputs)

    def new_buffer(key: Hashable, label: str, aval: Aval, kind: str, offset: int | None = None) -> int:
        number[key] = len(buffers)
        buffers.append(Buffer(len(buffers), label, aval.shape, dtype_name(aval.dtype), kind, offset))
        return number[key]

    constants = {}
    for node in flow.nodes:
        if node.is_source:
            index = new_buffer(node, node.name, node.aval, _SOURCE_KIND[node.op.name])
            if node.op.name == "const":
                constants[index] = node.data

    instructions = []
    offsets, flow_args, writes = memory.offsets, flow.args, flow.writes
    returned = set(outputs)
    for node in order:
        copying = is_copying_view(node, storage)
        if node in writes:
            out = number[node] = number[writes[node]]
            mode = KERNEL
        elif node.op.view and not copying:
            out = new_buffer(node, node.name, node.aval, VIEW)
            mode = BIND_VIEW
        elif storage[node].is_source:  # the first step of an update, in its param's storage
            out = number[node] = number[storage[node]]
            mode = KERNEL
        elif node in returned:
            out = new_buffer(node, node.name, node.aval, OUTPUT)
            mode = COPY if copying else KERNEL
        else:
            out = new_buffer(node, node.name, node.aval, TEMP, offsets[storage[node]])
            mode = COPY if copying else KERNEL
        scratch_ids = ()
        if node in scratch:
            scratch_ids = tuple(
                new_buffer((node, k), f"{node.name}.scratch{k}", aval, SCRATCH, offsets[(node, k)])
                for k, aval in enumerate(scratch[node])
            )
        args = tuple([number[a] for a in flow_args[node]])
        instructions.append(Instruction(node.op.name, out, args, dict(node.attrs), scratch_ids, mode,
                                        _tag(node, for_outputs, writes), _origin(node), node.scope))
    return Plan(name, buffers, instructions, [number[o] for o in outputs], constants, memory.planned_bytes)


# --- listing -------------------------------------------------------------------------


def _fmt_buffer(b: Buffer) -> str:
    return f"%{b.id} {b.name} {b.shape} {b.dtype}"


def _fmt_attrs(attrs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())


def instruction_text(plan: Plan, index: int, width: int = 1) -> str:
    """The listing's line of instruction ``index`` (its step number right-aligned in ``width`` digits)."""
    ins = plan.instructions[index]
    out = plan.buffers[ins.out]
    call = f"%{ins.out} = {ins.op} " + " ".join(f"%{a}" for a in ins.args)
    if ins.attrs:
        call += "  " + _fmt_attrs(ins.attrs)
    where = {VIEW: "view", PARAM: "update", OUTPUT: "output"}.get(out.kind, f"@{out.offset}")
    mark = {"backward": "∂", "recompute": "↻", "update": "←"}.get(ins.tag, " ")
    return f"  {index:>{width}} {mark} {call:<48s} {str(out.shape):>14s} {out.dtype:<8s} {where:<8s} {out.name}"


def format_listing(plan: Plan) -> str:
    """A readable listing: sources, then one line per instruction, then outputs.

    When some instruction has a scope (:func:`graphc.scope`), a line ``[path]``
    opens each run of instructions of one scope, ``[(top level)]`` for ``""``
    (the forward and backward instructions of a block are apart in the order).
    """
    buf = plan.buffers
    lines = [
        f"plan {plan.name!r}: {len(plan.instructions)} instructions over {len(buf)} buffers, "
        f"arena {plan.arena_bytes:,d} B"
    ]
    for kind in (INPUT, PARAM):
        items = plan.buffers_of(kind)
        if items:
            lines.append(f"  {kind + 's:':8s}" + ", ".join(_fmt_buffer(b) for b in items))
    for b in plan.buffers_of(CONST):
        value = plan.constants[b.id]
        shown = np.array2string(value, threshold=4, precision=4) if value.size <= 4 else f"<{value.size} values>"
        lines.append(f"  const:  %{b.id} = {shown} {b.shape} {b.dtype}")
    width = len(str(len(plan.instructions)))
    scoped = any(ins.scope for ins in plan.instructions)
    scope = None
    for i, ins in enumerate(plan.instructions):
        if scoped and ins.scope != scope:
            scope = ins.scope
            lines.append(f"  [{scope or TOP_LEVEL}]")
        lines.append(instruction_text(plan, i, width))
    lines.append("  outputs: " + ", ".join(f"%{o} {buf[o].name}" for o in plan.outputs))
    return "\n".join(lines)
