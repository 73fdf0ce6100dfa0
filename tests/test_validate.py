"""The independent plan validator: each class of damage it must reject, and the zoo's plans it must accept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import graphc as gc
from graphc import zoo
from graphc.plan import CONST, INPUT, PARAM, SCRATCH, TEMP, Plan
from graphc.validate import validate


def _model_plan(updates: bool = True) -> Plan:
    """A small training step: matmul, elementwise ops (in place), a const, a view, softmax scratch, updates."""
    rng = np.random.default_rng(0)
    with gc.Graph("validate-model") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        labels = gc.input("labels", shape=(4,), dtype="int64")
        w = gc.param("w", shape=(3, 5), dtype="float64", init=rng.normal(size=(3, 5)))
        b = gc.param("b", shape=(5,), dtype="float64", init=rng.normal(size=(5,)))
        h = gc.tanh(x @ w + b)
        # the fused cross-entropy kernel: a scratch of the logits' shape, which later instructions read
        loss = gc.ops.fused_softmax_cross_entropy(h * 2.0, labels) + gc.sum(gc.transpose(h) ** 2)
    return gc.compile(loss, updates=gc.sgd(loss, [w, b], 0.1) if updates else None).plan


def _copy(plan: Plan, **changes) -> Plan:
    fields = dict(name=plan.name, buffers=list(plan.buffers), instructions=list(plan.instructions),
                  outputs=list(plan.outputs), constants=dict(plan.constants), arena_bytes=plan.arena_bytes)
    return Plan(**{**fields, **changes})


def _with_buffer(plan: Plan, index: int, **changes) -> Plan:
    buffers = list(plan.buffers)
    buffers[index] = dataclasses.replace(buffers[index], **changes)
    return _copy(plan, buffers=buffers)


def _with_instruction(plan: Plan, step: int, **changes) -> Plan:
    instructions = list(plan.instructions)
    instructions[step] = dataclasses.replace(instructions[step], **changes)
    return _copy(plan, instructions=instructions)


def _step_of(plan: Plan, op: str) -> int:
    return next(k for k, ins in enumerate(plan.instructions) if ins.op == op)


def _first(plan: Plan, kind: str) -> int:
    return next(b.id for b in plan.buffers if b.kind == kind)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return _model_plan()


def test_the_model_plan_is_valid(plan):
    validate(plan)


# chain-1000 and random-1000 are chain-100 and random-100 ten times longer (their compile alone
# takes ~10 s here); tests/test_zoo.py compiles them with the validator on (VALIDATE_PLANS).
@pytest.mark.parametrize("name", [n for n in zoo.ZOO if n not in ("chain-1000", "random-1000")])
def test_every_zoo_plan_passes_and_survives_its_json(name):
    graph, values = zoo.ZOO[name]()
    plan = gc.compile(zoo.training_outputs(values)).plan
    validate(plan)
    assert Plan.from_json(plan.to_json()) == plan


def test_all_temps_at_offset_zero_overlap_while_live(plan):
    temps = [dataclasses.replace(b, offset=0) if b.kind in (TEMP, SCRATCH) else b for b in plan.buffers]
    with pytest.raises(gc.GraphError, match="share memory while both are live"):
        validate(_copy(plan, buffers=temps))


def test_dropping_the_first_instruction_reads_before_a_write(plan):
    with pytest.raises(gc.GraphError, match="before anything writes it"):
        validate(_copy(plan, instructions=plan.instructions[1:]))


def test_a_param_edited_to_float32_disagrees_with_its_consumers(plan):
    w = plan.params["w"].id
    with pytest.raises(gc.GraphError, match="at instruction .*(float32|dtypes differ)"):
        validate(_with_buffer(plan, w, dtype="float32"))


def test_an_out_buffer_of_the_wrong_shape_disagrees_with_the_shape_rule(plan):
    step = _step_of(plan, "matmul")
    out = plan.instructions[step].out
    with pytest.raises(gc.GraphError, match="matmul of .* gives"):
        validate(_with_buffer(plan, out, shape=(5, 4)))


def test_attributes_out_of_canonical_form_are_rejected(plan):
    step = _step_of(plan, "transpose")
    with pytest.raises(gc.GraphError, match="canonical form"):
        validate(_with_instruction(plan, step, attrs={"axes": (-1, 0)}))


def test_attributes_the_op_refuses_are_rejected(plan):
    step = _step_of(plan, "transpose")
    with pytest.raises(gc.GraphError, match="does not accept"):
        validate(_with_instruction(plan, step, attrs={"axes": (0, 0)}))


def test_a_view_op_run_as_a_kernel_is_rejected(plan):
    step = _step_of(plan, "transpose")
    with pytest.raises(gc.GraphError, match="runs in mode 'kernel'"):
        validate(_with_instruction(plan, step, mode="kernel"))


def test_a_kernel_op_bound_as_a_view_is_rejected(plan):
    step = _step_of(plan, "tanh")
    with pytest.raises(gc.GraphError, match="runs in mode 'view'"):
        validate(_with_instruction(plan, step, mode="view"))


def test_scratch_other_than_the_op_asks_for_is_rejected(plan):
    step = next(k for k, ins in enumerate(plan.instructions) if ins.scratch)
    with pytest.raises(gc.GraphError, match="needs scratch"):
        validate(_with_instruction(plan, step, scratch=()))


def test_a_scratch_buffer_shared_by_two_instructions_is_rejected():
    with gc.Graph("two-softmax") as g:
        x = gc.input("x", shape=(3, 4), dtype="float32")
        out = gc.sum(gc.softmax(x, axis=1) * gc.softmax(2.0 * x, axis=1))
    plan = gc.compile(out).plan
    first, second = [k for k, ins in enumerate(plan.instructions) if ins.scratch]
    with pytest.raises(gc.GraphError, match="an earlier instruction used"):
        validate(_with_instruction(plan, second, scratch=plan.instructions[first].scratch))


def test_reading_another_instructions_scratch_is_rejected(plan):
    step = next(k for k, ins in enumerate(plan.instructions) if ins.scratch)
    scratch = plan.instructions[step].scratch[0]
    later = next(k for k, ins in enumerate(plan.instructions) if k > step
                 and ins.args and plan.buffers[ins.args[0]].aval == plan.buffers[scratch].aval)
    args = (scratch, *plan.instructions[later].args[1:])
    with pytest.raises(gc.GraphError, match="another instruction's scratch"):
        validate(_with_instruction(plan, later, args=args))


def test_a_kernel_writing_into_an_input_is_rejected(plan):
    step = _step_of(plan, "matmul")
    x = plan.inputs["x"]
    bad = _copy(plan, buffers=[dataclasses.replace(b, kind=INPUT, name="x2", offset=None)
                               if b.id == plan.instructions[step].out else b for b in plan.buffers])
    with pytest.raises(gc.GraphError, match="kernels write temp buffers, outputs"):
        validate(bad)
    assert x.kind == INPUT


def test_writing_a_buffer_twice_is_rejected(plan):
    step = _step_of(plan, "tanh")
    duplicated = plan.instructions[: step + 1] + [plan.instructions[step]] + plan.instructions[step + 1:]
    with pytest.raises(gc.GraphError, match="a second time"):
        validate(_copy(plan, instructions=duplicated))


def test_in_place_by_an_op_that_is_not_elementwise_is_rejected():
    with gc.Graph("not-in-place") as g:
        x = gc.input("x", shape=(4, 4), dtype="float64")
        w = gc.param("w", shape=(4, 4), dtype="float64")
        y = gc.exp(x) @ w
        out = gc.sum(y)
    plan = gc.compile(out).plan
    exp_step, mm_step = _step_of(plan, "exp"), _step_of(plan, "matmul")
    exp_out, mm_out = plan.instructions[exp_step].out, plan.instructions[mm_step].out
    bad = _with_buffer(plan, mm_out, offset=plan.buffers[exp_out].offset)
    with pytest.raises(gc.GraphError, match="share memory while both are live"):
        validate(bad)


def test_in_place_over_an_operand_read_again_later_is_rejected():
    with gc.Graph("late-read") as g:
        x = gc.input("x", shape=(8,), dtype="float64")
        a = gc.exp(x)
        b = gc.tanh(a)
        out = gc.sum(a * b)
    plan = gc.compile(out).plan
    exp_out = plan.instructions[_step_of(plan, "exp")].out
    tanh_out = plan.instructions[_step_of(plan, "tanh")].out
    with pytest.raises(gc.GraphError, match="share memory while both are live"):
        validate(_with_buffer(plan, tanh_out, offset=plan.buffers[exp_out].offset))


def _update_steps(plan) -> list[int]:
    return [k for k, ins in enumerate(plan.instructions) if plan.buffers[ins.out].kind == PARAM]


def test_updates_are_written_in_place_inside_the_backward_pass(plan):
    """Each param is written once, by the elementwise kernel computing its new value, before the
    backward pass ends: no assignment at the end, no arena copy of the new value."""
    steps = _update_steps(plan)
    assert sorted(plan.buffers[plan.instructions[k].out].name for k in steps) == sorted(plan.params)
    assert all(plan.instructions[k].op == "sub" and plan.instructions[k].tag == "update" for k in steps)
    last_backward = max(k for k, ins in enumerate(plan.instructions) if ins.tag == "backward")
    assert min(steps) < last_backward


def test_an_update_that_opens_in_its_params_storage_is_valid():
    """v ← β·v + (1-β)·g²: β·v is written over v (it is the last read of the old v) and the
    add writes the new v over it: two writes of one param, each elementwise, both valid."""
    with gc.Graph("second-moment") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64")
        v = gc.param("v", shape=(3, 3), dtype="float64", init=1.0, role="state")
        loss = gc.sum(gc.tanh(x @ w))
        (dw,) = gc.grad(loss, [w])
    plan = gc.compile(loss, updates={v: 0.9 * v + 0.1 * (dw * dw), w: w - 0.1 * dw}).plan
    writes = [ins for ins in plan.instructions if plan.buffers[ins.out].name == "v"]
    assert [ins.op for ins in writes] == ["mul", "add"]
    validate(plan)


def test_an_update_of_the_wrong_shape_is_rejected(plan):
    first, second = (plan.instructions[k] for k in _update_steps(plan)[:2])
    assert plan.buffers[first.out].shape != plan.buffers[second.out].shape
    with pytest.raises(gc.GraphError, match="but writes"):
        validate(_with_instruction(plan, _update_steps(plan)[0], args=second.args))


def test_an_update_by_a_kernel_that_is_not_elementwise_is_rejected(plan):
    shapes = {b.shape: b for b in plan.buffers if b.kind == PARAM}
    step = next(k for k, ins in enumerate(plan.instructions)
                if ins.op == "matmul" and plan.buffers[ins.out].shape in shapes)
    param = shapes[plan.buffers[plan.instructions[step].out].shape]
    with pytest.raises(gc.GraphError, match="an update is an elementwise kernel"):
        validate(_with_instruction(plan, step, out=param.id))


def test_an_update_reading_its_param_through_a_view_is_rejected():
    with gc.Graph("square") as g:
        x = gc.input("x", shape=(3, 3), dtype="float64")
        w = gc.param("w", shape=(3, 3), dtype="float64")
        loss = gc.sum(x @ w)
    plan = gc.compile(loss, updates={w: w + w.T}).plan  # planned as a new value in the arena, then a copy
    writer = _update_steps(plan)[0]
    assert plan.instructions[writer].op == "copy"
    add = next(k for k, ins in enumerate(plan.instructions) if ins.op == "add")
    assert add < writer
    moved = [ins for k, ins in enumerate(plan.instructions) if k != writer]
    adding = dataclasses.replace(plan.instructions[add], out=plan.instructions[writer].out)
    moved[moved.index(plan.instructions[add])] = adding
    with pytest.raises(gc.GraphError, match="through the view"):
        validate(_copy(plan, instructions=moved))


def test_outputs_must_be_output_buffers_each_returned_once(plan):
    out = plan.outputs[0]
    with pytest.raises(gc.GraphError, match="list a buffer twice"):
        validate(_copy(plan, outputs=[out, *plan.outputs]))
    with pytest.raises(gc.GraphError, match="does not return it"):
        validate(_copy(plan, outputs=plan.outputs[1:]))
    temp = next(b.id for b in plan.buffers if b.kind == TEMP)
    with pytest.raises(gc.GraphError, match="not an output buffer"):
        validate(_copy(plan, outputs=[temp, *plan.outputs[1:]]))


def test_inputs_and_params_with_one_name_are_rejected(plan):
    with pytest.raises(gc.GraphError, match="the same name"):
        validate(_with_buffer(plan, plan.params["w"].id, name="x"))


def test_a_buffer_past_the_end_of_the_arena_is_rejected(plan):
    temp = _first(plan, TEMP)
    with pytest.raises(gc.GraphError, match="off the arena"):
        validate(_with_buffer(plan, temp, offset=plan.arena_bytes // 64 * 64))


def test_a_misaligned_buffer_is_rejected(plan):
    temp = _first(plan, TEMP)
    with pytest.raises(gc.GraphError, match="alignment"):
        validate(_with_buffer(plan, temp, offset=plan.buffers[temp].offset + 8))


def test_an_arena_larger_than_its_buffers_side_by_side_is_rejected(plan):
    with pytest.raises(gc.GraphError, match="side by side"):
        validate(_copy(plan, arena_bytes=10**15))


def test_an_output_that_is_never_written_is_rejected():
    plan = _model_plan(updates=False)
    step = len(plan.instructions) - 1
    assert plan.instructions[step].out in plan.outputs
    with pytest.raises(gc.GraphError, match="never written"):
        validate(_copy(plan, instructions=plan.instructions[:step] + plan.instructions[step + 1:]))


def test_a_constant_of_the_wrong_shape_is_rejected(plan):
    const = _first(plan, CONST)
    constants = {**plan.constants, const: np.zeros((2, 2))}
    with pytest.raises(gc.GraphError, match="the constant of"):
        validate(_copy(plan, constants=constants))


def test_a_missing_constant_is_rejected(plan):
    const = _first(plan, CONST)
    constants = {k: v for k, v in plan.constants.items() if k != const}
    with pytest.raises(gc.GraphError, match="const buffers are"):
        validate(_copy(plan, constants=constants))


def _op_without_a_kernel() -> str:
    """The name of a registered primitive with no kernel (registered once per process)."""
    name = "test_validate.no_kernel"
    if name not in gc.ops.registered():
        gc.Primitive(name, infer=lambda x: x, kernel=None)
    return name


def test_an_op_without_a_kernel_is_rejected(plan):
    step = _step_of(plan, "tanh")
    with pytest.raises(gc.GraphError, match="no kernel"):
        validate(_with_instruction(plan, step, op=_op_without_a_kernel()))


def test_an_instruction_naming_a_source_kind_is_rejected(plan):
    """Inputs, params and constants are kinds of buffer, not ops: no instruction computes one."""
    step = _step_of(plan, "tanh")
    with pytest.raises(gc.GraphError, match=r"at instruction \d+: no op named 'param' is registered.*never an input, param"):
        validate(_with_instruction(plan, step, op="param"))


def test_the_validator_does_not_flag_param_kinds_it_reads(plan):
    """Params are read in place and never written by kernels: a plan reading them is fine."""
    assert any(plan.buffers[a].kind == PARAM for ins in plan.instructions for a in ins.args)
    validate(plan)


def test_float_attributes_where_the_op_takes_ints_are_rejected():
    with gc.Graph("float-shape") as g:
        x = gc.input("x", shape=(2, 6), dtype="float64")
        out = gc.sum(gc.reshape(x, (4, 3)))
    plan = gc.compile(out).plan
    step = _step_of(plan, "reshape")
    with pytest.raises(gc.GraphError, match=r"canonical form|4\.0 is not an int"):
        validate(_with_instruction(plan, step, attrs={"shape": (4.0, 3)}))


def test_a_view_numpy_would_have_to_copy_is_rejected():
    """A reshape of a transposed value copies in NumPy: it must be planned as a copy, not bound as a view."""
    with gc.Graph("copy-reshape") as g:
        x = gc.input("x", shape=(2, 3), dtype="float64")
        out = gc.sum(gc.reshape(gc.transpose(gc.exp(x)), (6,)) * 2.0)
    plan = gc.compile(out).plan
    step = _step_of(plan, "reshape")
    assert plan.instructions[step].mode == "copy"
    bound = _with_buffer(plan, plan.instructions[step].out, kind="view", offset=None)
    with pytest.raises(gc.GraphError, match="cannot be a view"):
        validate(_with_instruction(bound, step, mode="view"))
