"""The flat execution plan: instructions over numbered buffers.

A :class:`Plan` is plain data: printable (``str(plan)`` is a listing),
serialisable (:meth:`Plan.to_json` / :meth:`Plan.from_json`, versioned), and
enough for the runtime to execute without the graph it came from. Kernels are
found again by op name in the op registry.
"""

from __future__ import annotations

import base64
import math
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Hashable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Aval, Node, dtype_name
from graphc.memory import MemoryPlan, is_copying_view
from graphc.passes import Dataflow

FORMAT = "graphc-plan"
VERSION = 1

# Buffer kinds
INPUT, PARAM, CONST, TEMP, VIEW, SCRATCH = "input", "param", "const", "temp", "view", "scratch"
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
    or ``"update"`` (``assign``: write ``args[0]`` into the param's stored value).
    """

    op: str
    out: int
    args: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    scratch: tuple[int, ...] = ()
    mode: str = KERNEL
    tag: str = "forward"


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

    # --- listing ------------------------------------------------------------
    def __str__(self) -> str:
        return format_listing(self)

    # --- JSON ----------------------------------------------------------------
    def to_json(self, indent: int | None = None) -> str:
        """The plan as JSON (constants base64-encoded); :meth:`from_json` reads it back."""
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
        return json.dumps(doc, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise GraphError(f"not a graphc plan (format {doc.get('format')!r})")
        if doc.get("version") != VERSION:
            raise GraphError(f"plan format version {doc.get('version')} is not supported (this graphc reads {VERSION})")
        buffers = [Buffer(**{**b, "shape": tuple(b["shape"])}) for b in doc["buffers"]]
        instructions = [
            Instruction(**{**i, "args": tuple(i["args"]), "scratch": tuple(i["scratch"]), "attrs": _tuples(i["attrs"])})
            for i in doc["instructions"]
        ]
        constants = {int(k): _decode_array(v) for k, v in doc["constants"].items()}
        return cls(doc["name"], buffers, instructions, list(doc["outputs"]), constants, doc["arena_bytes"])

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


def _decode_array(d: dict[str, Any]) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(d["data"]), dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    a.setflags(write=False)
    return a


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples attributes are made of."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


# --- lowering ----------------------------------------------------------------------


_SOURCE_KIND = {"input": INPUT, "param": PARAM, "const": CONST}


def _tag(node: Node, for_outputs: set[Node]) -> str:
    """backward: an adjoint node; recompute: a clone of a forward node; forward: needed by an
    output; update: needed only by updates."""
    if node.recompute_of is not None:
        return "recompute"
    if node.adjoint is not None:
        return "backward"
    return "forward" if node in for_outputs else "update"


def lower(
    name: str,
    flow: Dataflow,
    order: Sequence[Node],
    storage: dict[Node, Node],
    scratch: dict[Node, list[Aval]],
    memory: MemoryPlan,
    outputs: Sequence[Node],
    updates: Sequence[tuple[Node, Node]] = (),
) -> Plan:
    """Number the buffers of a scheduled, memory-planned dataflow and emit its instructions."""
    buffers: list[Buffer] = []
    number: dict[Hashable, int] = {}
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
    offsets, flow_args = memory.offsets, flow.args
    for node in order:
        copying = is_copying_view(node, storage)
        if node.op.view and not copying:
            out = new_buffer(node, node.name, node.aval, VIEW)
            mode = BIND_VIEW
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
        instructions.append(Instruction(node.op.name, out, args, dict(node.attrs), scratch_ids, mode, _tag(node, for_outputs)))
    for param, value in updates:
        instructions.append(Instruction("assign", number[param], (number[value],), tag="update"))
    return Plan(name, buffers, instructions, [number[o] for o in outputs], constants, memory.planned_bytes)


# --- listing -------------------------------------------------------------------------


def _fmt_buffer(b: Buffer) -> str:
    return f"%{b.id} {b.name} {b.shape} {b.dtype}"


def _fmt_attrs(attrs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())


def format_listing(plan: Plan) -> str:
    """A readable listing: sources, then one line per instruction, then outputs."""
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
    for i, ins in enumerate(plan.instructions):
        out = buf[ins.out]
        if ins.op == "assign":
            lines.append(f"  {i:>{width}}  {out.name} <- %{ins.args[0]}{'':28s}update")
            continue
        call = f"%{ins.out} = {ins.op} " + " ".join(f"%{a}" for a in ins.args)
        if ins.attrs:
            call += "  " + _fmt_attrs(ins.attrs)
        where = "view" if ins.mode == BIND_VIEW else f"@{out.offset}"
        mark = {"backward": "∂", "recompute": "↻", "update": "←"}.get(ins.tag, " ")
        lines.append(f"  {i:>{width}} {mark} {call:<48s} {str(out.shape):>14s} {out.dtype:<8s} {where:<8s} {out.name}")
    lines.append("  outputs: " + ", ".join(f"%{o} {buf[o].name}" for o in plan.outputs))
    return "\n".join(lines)
