"""The plan view: the instructions of a compiled plan, in execution order.

Each instruction is a box numbered by its step, with the buffer it writes and
that buffer's arena offset; the buffers read but not written (inputs, params,
constants) are boxes of their own. Recomputed instructions are orange and
marked ``↻``, a forward value the backward pass reads has a double border.

This view draws a plan that exists: it takes a :class:`~graphc.Plan` or a
compiled :class:`~graphc.Program` and never compiles anything itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphc.plan import BIND_VIEW, Plan
from graphc.render.collapse import common_scope
from graphc.render.scene import (
    CHECKPOINT_BORDER, CHECKPOINT_EDGE, COLOURS, Arrow, Box, Scene, count_text, shape_text, value_text,
)

if TYPE_CHECKING:
    from graphc.compile import Program

PLAN_TAGS = ("forward", "backward", "recompute", "update")
PLAN_KEY = "#step  %buffer = op %args  @arena offset"
_TAG_MARK = {"backward": "∂ ", "recompute": "↻ ", "update": "← "}
_TAG_FILL = {"forward": COLOURS["forward"], "backward": COLOURS["adjoint"], "recompute": COLOURS["recompute"],
             "update": COLOURS["update"]}


def plan_scene(target: Plan | Program, view: str = "plan") -> Scene:
    """The instructions of a plan (or of a compiled program's plan) as boxes, in execution order.

    ``view`` ``"plan"`` draws every instruction; ``"forward"`` the forward and
    recompute ones; ``"adjoint"`` the backward ones (with the forward buffers
    they read as references); ``"joint"`` all, the backward ones in a cluster.
    """
    plan = target if isinstance(target, Plan) else target.plan
    wanted = {"plan": PLAN_TAGS, "joint": PLAN_TAGS, "forward": ("forward", "recompute"), "adjoint": ("backward",)}[view]
    steps = [k for k, ins in enumerate(plan.instructions) if ins.tag in wanted]
    kept = _kept_checkpoints(plan)
    boxes, where, references = _plan_sources(plan, steps)
    first = len(boxes)  # steps[j] is box first + j
    arrows = _plan_instructions(plan, steps, kept, boxes, where)
    legend = _plan_legend(plan, steps, kept, boxes, references)
    clusters = {"adjoint": "backward instructions"} if view == "joint" else {}
    drawn = count_text(len(steps), len(plan.instructions), "instructions")
    title = f"{'' if view == 'plan' else f'{view} view of '}plan {plan.name!r}: {drawn}, arena {plan.arena_bytes:,d} B"
    held = _bytes_at_peak(target)
    _unit_facts(plan, steps, boxes, first, arrows, held)
    return Scene(title, boxes, arrows, legend, clusters, notes=[PLAN_KEY], graph_attrs={"ranksep": "0.25"},
                 bytes_meaning="peak" if held is not None else "")


def _bytes_at_peak(target: Plan | Program) -> dict[int, int] | None:
    """The bytes live at the peak by the step that wrote them, when the target has a memory plan (a Program)."""
    if getattr(target, "memory", None) is None:
        return None
    from graphc.plots import bytes_at_peak_by_step

    return bytes_at_peak_by_step(target)


def _unit_facts(plan: Plan, steps: list[int], boxes: list[Box], first: int, arrows: list[Arrow],
                held: dict[int, int] | None) -> None:
    """What collapsing into units needs: each box's bytes at the peak, its home scope, its forward partner.

    A buffer box (a param, an input, a value read from an instruction not drawn)
    has no scope of its own: it is counted in the innermost scope of the drawn
    instructions that read it, updates left out (a param belongs with the layer
    that reads it, not with the optimizer). A backward or recomputed instruction goes with the
    forward instruction of its ``origin`` (the value it recomputes, or whose gradient it computes).
    """
    forward_box: dict[str, int] = {}
    for j, k in enumerate(steps):
        if plan.instructions[k].tag == "forward":
            forward_box.setdefault(plan.buffers[plan.instructions[k].out].name, first + j)
    origin = {plan.buffers[ins.out].name: ins.origin for ins in plan.instructions}
    for i in range(first):  # the adjoint view draws the forward values it reads (computed, or recomputed) as references
        if boxes[i].kind == "reference":
            forward_box.setdefault(origin.get(boxes[i].name) or boxes[i].name, i)
    for j, k in enumerate(steps):
        box, ins = boxes[first + j], plan.instructions[k]
        box.nbytes = None if held is None else held.get(k, 0)
        if ins.origin and ins.tag in ("backward", "recompute"):  # a backward step may come before its forward value
            box.anchor = forward_box.get(ins.origin)
    readers: dict[int, list[Box]] = {}
    for a in arrows:
        if a.src < first <= a.dst:
            readers.setdefault(a.src, []).append(boxes[a.dst])
    for i in range(first):
        read_by = readers.get(i, [])
        computing = [b for b in read_by if b.kind != "update"] or read_by
        boxes[i].home = common_scope(b.scope for b in computing)
        boxes[i].nbytes = None if held is None else 0  # params, inputs and constants live outside the arena


def _plan_sources(plan: Plan, steps: list[int]) -> tuple[list[Box], dict[int, int], list[int]]:
    """Boxes for the buffers the drawn steps read but do not write: sources, then references.

    Returns the boxes, ``where`` (buffer id -> its box) and the referenced buffers
    (values of instructions not drawn, e.g. the forward values of an adjoint view).
    """
    writer = {ins.out: k for k, ins in enumerate(plan.instructions) if not _is_update_write(plan, ins)}
    drawn = set(steps)
    reads = [a for k in steps for a in plan.instructions[k].args]
    assigned = [plan.instructions[k].out for k in steps if _is_update_write(plan, plan.instructions[k])]
    sources = sorted({a for a in reads if a not in writer} | set(assigned))
    references = sorted({a for a in reads if a in writer and writer[a] not in drawn})
    boxes: list[Box] = []
    where: dict[int, int] = {}
    for b in sources:
        where[b] = len(boxes)
        boxes.append(_buffer_box(plan.buffers[b], plan))
    for b in references:
        where[b] = len(boxes)
        buf = plan.buffers[b]
        lines = [f"%{b} {buf.name}", f"{plan.instructions[writer[b]].tag} value"]
        attrs = {"shape": "box", "style": "rounded,dashed", "color": "#8c8c8c", "fontcolor": "#6b6b6b"}
        op = plan.instructions[writer[b]].op  # what a unit's text lists: relu → add, not ref → ref
        boxes.append(Box(lines, attrs, "reference", ("reference", buf.shape), op, buf.name, kind="reference"))
    return boxes, where, references


def _is_update_write(plan: Plan, ins) -> bool:
    """An instruction that writes a param's stored array (an update)."""
    return plan.buffers[ins.out].kind == "param"


def _plan_instructions(plan: Plan, steps: list[int], kept: set[int], boxes: list[Box], where: dict[int, int]) -> list[Arrow]:
    """Append a box per drawn instruction, in order; return the dataflow arrows."""
    arrows: list[Arrow] = []
    for k in steps:
        ins = plan.instructions[k]
        me = len(boxes)
        boxes.append(_instruction_box(plan, k, ins.out in kept, ins.mode == BIND_VIEW))
        for a in dict.fromkeys(ins.args):
            if a in where:
                attrs = {"color": CHECKPOINT_EDGE} if ins.tag in ("backward", "recompute") and a in kept else {}
                arrows.append(Arrow(where[a], me, "", attrs))
        if _is_update_write(plan, ins):  # W ← new W: the update writes the stored param
            arrows.append(Arrow(me, where[ins.out], "writes", {"style": "dashed", "color": "#7d5ba6",
                                                             "fontcolor": "#7d5ba6", "constraint": "false"}))
        else:
            where[ins.out] = me
    return arrows


def _plan_legend(plan: Plan, steps: list[int], kept: set[int], boxes: list[Box], references: list[int]) -> list[str]:
    kinds = {b.op for b in boxes if not b.computed}
    tags = {plan.instructions[k].tag for k in steps}
    legend = [k for k in ("input", "param", "const") if k in kinds]
    legend += ["forward_ins"] + [t for t in ("backward", "recompute", "update") if t in tags]
    if any(plan.instructions[k].out in kept for k in steps):
        legend.append("kept")
    if references:
        legend.append("reference")
    return legend


def _kept_checkpoints(plan: Plan) -> set[int]:
    """Buffers written by forward instructions and read by backward or recompute ones."""
    forward_out = {ins.out for ins in plan.instructions if ins.tag == "forward"}
    return {a for ins in plan.instructions if ins.tag in ("backward", "recompute") for a in ins.args if a in forward_out}


def _buffer_box(buf, plan: Plan) -> Box:
    shape = shape_text(buf.shape)
    if buf.kind == "const":
        value = plan.constants.get(buf.id)
        text = value_text(value) if value is not None and value.size == 1 else f"const {shape}"
        return Box([f"%{buf.id} = {text}"], {"shape": "ellipse", "style": "filled", "fillcolor": COLOURS["const"],
                   "fontsize": "8", "height": "0.25", "margin": "0.02"}, "source", ("const", buf.shape), "const",
                   buf.name, computed=False, kind="source")
    shape_attr = "invhouse" if buf.kind == "input" else "cylinder"
    fill = COLOURS["input"] if buf.kind == "input" else COLOURS["param"]
    return Box([f"%{buf.id} {buf.name}", f"{buf.kind} {shape}"], {"shape": shape_attr, "style": "filled",
               "fillcolor": fill}, "source", (buf.kind, buf.shape), buf.kind, buf.name, computed=False, kind="source")


def _instruction_box(plan: Plan, step: int, kept: bool, is_view: bool) -> Box:
    ins = plan.instructions[step]
    out = plan.buffers[ins.out]
    if _is_update_write(plan, ins):
        lines = [f"#{step} ← {out.name} = {ins.op} " + " ".join(f"%{a}" for a in ins.args),
                 f"%{ins.out} {shape_text(out.shape)}  written in place"]
    else:
        args = " ".join(f"%{a}" for a in ins.args)
        place = "view" if is_view else "output" if out.kind == "output" else f"@{out.offset}"  # as the listing says
        lines = [f"#{step} {_TAG_MARK.get(ins.tag, '')}%{ins.out} = {ins.op} {args}",
                 f"{out.name}  {shape_text(out.shape)}  {place}"]
    if kept:
        lines.append("kept for backward")
    attrs = {"shape": "box", "style": "rounded,filled", "fillcolor": _TAG_FILL.get(ins.tag, COLOURS["forward"])}
    if kept:
        attrs.update(peripheries="2", color=CHECKPOINT_BORDER)
    part = "adjoint" if ins.tag == "backward" else ins.tag
    signature = (ins.tag, ins.op, ins.mode, out.shape, kept, tuple(plan.buffers[a].shape for a in ins.args))
    motif = signature[:4] + signature[5:]  # repeats are found whichever copies a recompute policy keeps
    return Box(lines, attrs, part, signature, ins.op, out.name, in_order=True, scope=ins.scope,
               kind="adjoint" if ins.tag == "backward" else ins.tag, kept=kept, motif=motif)


