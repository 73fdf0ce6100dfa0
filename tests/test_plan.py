"""The Plan: its listing, and its JSON form that a Program can be rebuilt from."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import graphc as gc

LINE = re.compile(r"^\s*(\d+) (.) %(\d+) = (\S+)")


def _model(dtype="float64"):
    """A graph whose plan has views, reductions with axes, scratch, int labels, and constants."""
    rng = np.random.default_rng(0)
    with gc.Graph("plan-model") as g:
        x = gc.input("x", shape=(6, 4), dtype=dtype)
        labels = gc.input("labels", shape=(6,), dtype="int64")
        w = gc.param("w", shape=(4, 5), dtype=dtype, init=rng.normal(size=(4, 5)))
        b = gc.param("b", shape=(5,), dtype=dtype, init=rng.normal(size=(5,)))
        z = gc.tanh(x @ w + b)
        both = gc.concat([z, gc.transpose(gc.reshape(z, (5, 6)))], axis=0)  # (11, 5)
        head = gc.slice_axis(both, 0, 0, 6)
        loss = (gc.softmax_cross_entropy(head * 2.0, labels)
                + 0.1 * gc.sum(gc.mean(z, axis=1, keepdims=True) ** 2)
                + 0.01 * gc.max(gc.softmax(both, axis=0)))
    grads = gc.grad(loss, [w, b])
    feeds = {"x": rng.normal(size=(6, 4)).astype(dtype), "labels": rng.integers(0, 5, size=6)}
    return g, dict(x=x, labels=labels, w=w, b=b, loss=loss, grads=grads), feeds


def test_listing_has_every_instruction_and_marks_the_adjoint_ones():
    g, v, feeds = _model()
    prog = gc.compile([v["loss"], *v["grads"]])
    plan = prog.plan
    text = str(plan)
    assert isinstance(text, str) and plan.name in text
    lines = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            lines[int(m.group(1))] = (m.group(2), int(m.group(3)), m.group(4))
    assert sorted(lines) == list(range(len(plan.instructions)))
    n_backward = 0
    for i, ins in enumerate(plan.instructions):
        mark, out, op = lines[i]
        assert (out, op) == (ins.out, ins.op)
        assert (mark == "∂") == (ins.tag == "backward"), (i, mark, ins.tag)
        n_backward += ins.tag == "backward"
    assert n_backward > 0 and n_backward < len(plan.instructions)
    # Every buffer an instruction writes is named in the listing, and so are the outputs.
    for ins in plan.instructions:
        assert plan.buffers[ins.out].name in text
    assert "outputs:" in text
    for name in ("x", "labels", "w", "b"):
        assert name in text


def test_adjoint_instructions_are_exactly_the_adjoint_nodes():
    g, v, feeds = _model()
    forward_only = gc.compile(v["loss"]).plan
    assert all(ins.tag == "forward" for ins in forward_only.instructions)
    assert "∂" not in str(forward_only)


def test_listing_shows_updates():
    g, v, feeds = _model()
    prog = gc.compile(v["loss"], updates=gc.sgd(v["loss"], [v["w"], v["b"]], 0.1))
    lines = str(prog.plan).splitlines()
    update_lines = [ln for ln in lines if " update " in ln]
    assert len(update_lines) == 2
    assert all("←" in ln for ln in update_lines)
    assert {ln.split()[-1] for ln in update_lines} == {"w", "b"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_json_round_trip_gives_an_equal_plan_and_identical_outputs(dtype):
    g, v, feeds = _model(dtype)
    prog = gc.compile([v["loss"], *v["grads"]])
    text = prog.plan.to_json()
    doc = json.loads(text)
    assert doc["version"] == gc.plan.VERSION and doc["format"] == "graphc-plan"
    loaded = gc.Plan.from_json(text)
    assert loaded == prog.plan
    assert loaded.to_json() == text  # stable: writing again gives the same text
    for k, arr in prog.plan.constants.items():
        assert loaded.constants[k].dtype == arr.dtype

    stored = {name: node.data.copy() for name, node in g.params.items()}
    rebuilt = gc.Program(loaded, stored)
    expected = prog.run(feeds)
    got = rebuilt.run(feeds)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert str(loaded) == str(prog.plan)


def test_json_round_trip_with_updates():
    g, v, feeds = _model()
    lr = 0.05
    prog = gc.compile(v["loss"], updates=gc.sgd(v["loss"], [v["w"], v["b"]], lr))
    loaded = gc.Plan.from_json(prog.plan.to_json())
    assert loaded == prog.plan
    stored = {name: node.data.copy() for name, node in g.params.items()}
    start = {k: a.copy() for k, a in stored.items()}
    rebuilt = gc.Program(loaded, stored)
    loss_rebuilt = rebuilt.run(feeds)
    loss_original = prog.run(feeds)
    np.testing.assert_array_equal(loss_rebuilt, loss_original)
    # Both programs took the same step: the rebuilt one on its own stored arrays.
    np.testing.assert_array_equal(stored["w"], v["w"].value)
    np.testing.assert_array_equal(stored["b"], v["b"].value)
    assert not np.array_equal(stored["w"], start["w"])


def test_a_rebuilt_program_takes_fed_params():
    g, v, feeds = _model()
    prog = gc.compile([v["loss"], *v["grads"]])
    rebuilt = gc.Program(gc.Plan.from_json(prog.plan.to_json()))
    params = {name: node.data for name, node in g.params.items()}
    for a, b in zip(rebuilt.run({**feeds, **params}), prog.run(feeds)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(gc.GraphError, match="'w'"):
        rebuilt.run(feeds)  # no stored value for w, and none fed


def test_plans_that_differ_are_not_equal():
    g, v, feeds = _model()
    a = gc.compile([v["loss"], *v["grads"]]).plan
    b = gc.compile(v["loss"]).plan
    assert a != b
    c = gc.Plan.from_json(a.to_json())
    key = next(iter(c.constants))
    c.constants[key] = c.constants[key] + 1
    assert c != a


def test_a_bad_version_or_format_raises():
    g, v, feeds = _model()
    doc = json.loads(gc.compile(v["loss"]).plan.to_json())
    doc["version"] = 999
    with pytest.raises(gc.GraphError, match="999"):
        gc.Plan.from_json(json.dumps(doc))
    doc["version"] = 1
    doc["format"] = "something-else"
    with pytest.raises(gc.GraphError, match="something-else"):
        gc.Plan.from_json(json.dumps(doc))


# --- loading damaged plans -------------------------------------------------------------


def _signed(doc: dict) -> str:
    """The document as plan-file text with its digest recomputed, so the field checks are what is tested."""
    doc["sha256"] = gc.plan.content_digest(doc)
    return json.dumps(doc)


@pytest.fixture(scope="module")
def step_document() -> dict:
    g, v, feeds = _model()
    prog = gc.compile(v["loss"], updates=gc.sgd(v["loss"], [v["w"], v["b"]], 0.05))
    return json.loads(prog.plan.to_json())


def test_a_loaded_plan_with_every_temp_at_offset_zero_is_rejected(step_document):
    doc = json.loads(json.dumps(step_document))
    for b in doc["buffers"]:
        if b["kind"] in ("temp", "scratch"):
            b["offset"] = 0
    with pytest.raises(gc.GraphError, match="share memory while both are live"):
        gc.Plan.from_json(_signed(doc))


def test_a_loaded_plan_without_its_first_instruction_is_rejected(step_document):
    doc = json.loads(json.dumps(step_document))
    del doc["instructions"][0]
    with pytest.raises(gc.GraphError, match="before anything writes it"):
        gc.Plan.from_json(_signed(doc))


def test_a_loaded_plan_whose_param_dtype_was_edited_is_rejected(step_document):
    doc = json.loads(json.dumps(step_document))
    w = next(b for b in doc["buffers"] if b["name"] == "w")
    w["dtype"] = "float32"
    with pytest.raises(gc.GraphError, match="float32"):
        gc.Plan.from_json(_signed(doc))


def test_a_plan_file_edited_after_it_was_written_fails_its_digest(step_document):
    doc = json.loads(json.dumps(step_document))
    doc["name"] = "renamed"  # harmless by itself, but the file no longer is what was written
    with pytest.raises(gc.GraphError, match="sha256 does not match"):
        gc.Plan.from_json(json.dumps(doc))


def test_the_digest_ignores_layout_and_key_order(step_document):
    text = json.dumps(dict(reversed(list(step_document.items()))), indent=3)
    assert gc.Plan.from_json(text) == gc.Plan.from_json(json.dumps(step_document))


def test_a_plan_file_reads_back_from_disk(tmp_path, step_document):
    path = tmp_path / "step.json"
    path.write_text(json.dumps(step_document))
    assert gc.plan.read_plan_file(path) == gc.Plan.from_json(json.dumps(step_document))


def test_a_damaged_plan_file_names_its_path(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "graphc-plan", "version": ')
    with pytest.raises(gc.GraphError, match=r"plan file '.*broken\.json': the text is not valid JSON"):
        gc.plan.read_plan_file(path)
