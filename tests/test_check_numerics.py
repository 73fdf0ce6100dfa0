"""``compile(..., check_numerics=True)``: the first NaN or Inf is named where it appears."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
from graphc import zoo
from graphc.runtime import describe_instruction, instruction_line


def _log_model(name: str):
    with gc.Graph(name):
        x = gc.input("x", shape=(3,), dtype="float64")
        w = gc.param("w", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        y = gc.log(x * w)
        loss = gc.sum(y * y)
    return x, w, y, loss


def test_the_first_non_finite_forward_result_names_its_instruction_op_and_node():
    x, w, y, loss = _log_model("numerics-forward")
    prog = gc.compile(loss, check_numerics=True)
    index = next(i for i, ins in enumerate(prog.plan.instructions) if ins.op == "log")
    with pytest.raises(gc.GraphError) as info:
        prog.run({"x": np.array([1.0, 0.0, 2.0])})  # log(0) = -inf
    message = str(info.value)
    assert f"instruction {index} " in message
    assert instruction_line(prog.plan, index) in message
    assert "op 'log'" in message and repr(y.node.name) in message
    assert "produced Inf" in message and "inputs were all finite" in message


def test_a_non_finite_feed_is_named_as_the_input_of_the_first_instruction():
    _, _, _, loss = _log_model("numerics-feed")
    prog = gc.compile(loss, check_numerics=True)
    with pytest.raises(gc.GraphError, match=r"instruction 0 .*op 'mul'.*produced NaN; non-finite input %\d+ x \(3,\)"):
        prog.run({"x": np.array([1.0, np.nan, 2.0])})


def test_a_backward_instruction_names_the_forward_node_whose_gradient_it_computes():
    with gc.Graph("numerics-backward"):
        x = gc.input("x", shape=(3,), dtype="float64")
        r = gc.sqrt(x)
        loss = gc.sum(r)
    (dx,) = gc.grad(loss, [x])
    prog = gc.compile([loss, dx], check_numerics=True)  # sqrt(0) is finite, its derivative 1/(2·0) is not
    with pytest.raises(gc.GraphError) as info:
        prog.run({"x": np.array([4.0, 0.0, 1.0])})
    message = str(info.value)
    failing = int(message.split("instruction ")[1].split(" ")[0])
    assert prog.plan.instructions[failing].tag == "backward"
    assert prog.plan.instructions[failing].op == "div"  # g / (2·sqrt(x)): 1/0
    assert "the gradient of forward node 'x'" in message and "inputs were all finite" in message


def test_a_recompute_instruction_names_the_forward_node_it_copies():
    """A recompute repeats a checked forward instruction, so it is never the first to fail;
    its description names the forward node it copies, as the error would."""
    with gc.Graph("numerics-recompute"):
        x = gc.input("x", shape=(4,), dtype="float64")
        h = x
        for _ in range(8):
            h = gc.tanh(h)
        loss = gc.sum(h * h)
    (dx,) = gc.grad(loss, [x])
    plan = gc.compile([dx], remat="sqrt", check_numerics=True).plan
    recomputes = [i for i, ins in enumerate(plan.instructions) if ins.tag == "recompute"]
    assert recomputes
    forward_names = {plan.buffers[ins.out].name for ins in plan.instructions if ins.tag == "forward"}
    for i in recomputes:
        origin = plan.instructions[i].origin
        assert origin in forward_names and plan.buffers[plan.instructions[i].out].name != origin
        assert f"a recomputed copy of forward node {origin!r}" in describe_instruction(plan, i)


def test_finite_runs_give_bit_identical_results_with_and_without_checks():
    g, v = zoo.mlp(8, dtype="float64")
    grads = gc.grad(v["loss"], v["params"])
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((8, 64)), "y": rng.integers(0, 10, 8)}
    plain = gc.compile([v["loss"], *grads]).run(feeds)
    checked = gc.compile([v["loss"], *grads], check_numerics=True).run(feeds)
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)


def test_without_the_flag_the_run_loop_has_no_checking_steps():
    _, _, _, loss = _log_model("numerics-off")
    plain, checked = gc.compile(loss), gc.compile(loss, check_numerics=True)
    assert plain.run({"x": np.array([1.0, 0.0, 2.0])}) == np.inf  # no check: Inf comes back
    with pytest.raises(gc.GraphError, match="check_numerics"):
        checked.run({"x": np.array([1.0, 0.0, 2.0])})
    assert "isfinite" in checked._executable.source
    assert "isfinite" not in plain._executable.source and "_nonfinite" not in plain._executable.source


def test_an_instruction_without_an_origin_is_named_by_its_output_buffer():
    """A plan built by hand may leave ``origin`` empty; the error then names the
    instruction's own buffer."""
    import dataclasses

    _, _, y, loss = _log_model("numerics-no-origin")
    plan = gc.compile(loss).plan
    bare = dataclasses.replace(plan, instructions=[dataclasses.replace(ins, origin="") for ins in plan.instructions])
    index = next(i for i, ins in enumerate(bare.instructions) if ins.op == "log")
    assert f"forward node {bare.buffers[bare.instructions[index].out].name!r}" in describe_instruction(bare, index)


def test_a_run_that_fails_after_an_update_puts_the_params_back():
    """Updates are written inside the backward pass: when a later instruction produces a NaN,
    the params already written are restored, so a failed run changes no param."""
    with gc.Graph("late-nan"):
        x = gc.input("x", shape=(3,), dtype="float64")
        a = gc.param("a", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        b = gc.param("b", shape=(3,), dtype="float64", init=np.array([1.0, 0.0, 4.0]))
        loss = gc.sum(gc.sqrt(b) * x * a)  # ∂/∂b = a·x / (2√b): Inf at b = 0, after a's last read
    prog = gc.compile(loss, updates=gc.sgd(loss, [a, b], 0.1), check_numerics=True)
    plan = prog.plan
    writes = {plan.buffers[ins.out].name: k for k, ins in enumerate(plan.instructions) if plan.buffers[ins.out].kind == "param"}
    failing = next(k for k, ins in enumerate(plan.instructions) if ins.op == "div")
    assert writes["a"] < failing, "a is written before the gradient of b overflows"
    before = a.value.copy(), b.value.copy()
    with pytest.raises(gc.GraphError, match="check_numerics"):
        prog.run({"x": np.array([1.0, 1.0, 1.0])})
    np.testing.assert_array_equal(a.value, before[0])
    np.testing.assert_array_equal(b.value, before[1])
