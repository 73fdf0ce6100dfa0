"""Fuzzing the plan loader: a damaged plan file is rejected with a GraphError, or runs exactly as the original.

Each example takes the JSON of a small compiled plan and damages it: a random
edit of the parsed document (a number changed, list items swapped, deleted or
duplicated, a string changed, a key deleted, a value of another type or taken
from elsewhere in the document), a truncation, or a byte flip. Then:

- as written (the digest left alone), the loaded plan must be refused with a
  GraphError, or give the original's outputs and updated params bit for bit;
- edits signed again (``sha256`` recomputed, as a writer with a bug would)
  reach the field checks and the validator; a plan they let through may
  compute something else, but must compute exactly what its own dataflow
  says: the runtime, over an arena filled with garbage, must agree bit for
  bit with a reference interpreter that gives every buffer memory of its own.
  A read before a write, an overlap of live buffers or a kernel given the
  wrong arrays would break that agreement or raise something else.

``GRAPHC_FUZZ_EXAMPLES`` sets the number of examples (default 300, ~10 s); the
examples are the same at every run unless ``GRAPHC_FUZZ_RANDOM`` is set.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import zoo
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, COPY, INPUT, OUTPUT, PARAM, SCRATCH, TEMP, Plan, content_digest
from graphc.runtime import Executable

FUZZ_EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_EXAMPLES", "300"))


# --- the plans ------------------------------------------------------------------------


def _seed_case():
    graph, values = zoo.ZOO["seed"]()
    return graph, gc.compile(zoo.training_outputs(values)), zoo.feeds(graph)


def _mlp_step_case():
    graph, values = zoo.mlp(4, sizes=(5, 6, 3))
    loss, params = values["loss"], values["params"]
    return graph, gc.compile(loss, updates=gc.sgd(loss, params, 0.1)), zoo.feeds(graph)


def _const_and_views_case():
    with gc.Graph("const-views") as graph:
        x = gc.input("x", shape=(2, 6), dtype="float64")
        w = gc.param("w", shape=(3, 4), dtype="float64", init=np.linspace(-1, 1, 12).reshape(3, 4))
        table = np.arange(4.0)
        h = gc.reshape(x, (4, 3)) @ w + table  # a const, a view of an input
        t = gc.transpose(gc.tanh(h))  # a view of a temp
        loss = gc.sum(gc.slice_axis(t, 1, 1, 3) * 0.5) + gc.max(gc.softmax(t, axis=0))
    (dw,) = gc.grad(loss, [w])
    feeds = {"x": np.linspace(-2, 2, 12).reshape(2, 6)}
    return graph, gc.compile([loss, dw]), feeds


CASES = {"seed": _seed_case, "mlp-step": _mlp_step_case, "const-views": _const_and_views_case}


@functools.lru_cache(maxsize=None)
def _original(name: str) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray], tuple]:
    """The plan's text, its stored params and feeds, and what a run gives: (outputs, params after)."""
    graph, program, feeds = CASES[name]()
    stored = {p: node.data.copy() for p, node in graph.params.items()}
    text = program.plan.to_json()
    return text, stored, feeds, _run(Plan.from_json(text), stored, feeds)


def _run(plan: Plan, stored: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> tuple:
    """Run on copies of the stored params over an arena of garbage: (outputs, params after)."""
    params = {k: v.copy() for k, v in stored.items()}
    executable = Executable(plan, params)
    executable.arena.fill(0xFF)  # NaN in every float: a read of unwritten memory shows
    outputs = executable.run(feeds)
    return outputs, params


def _interpret(plan: Plan, stored: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> tuple:
    """The plan's dataflow with memory of its own for every buffer; updates applied after the outputs are read."""
    arrays: list[Any] = [None] * len(plan.buffers)
    for b in plan.buffers:
        if b.kind == INPUT:
            arrays[b.id] = np.array(feeds[b.name], dtype=b.dtype)
        elif b.kind == PARAM:
            arrays[b.id] = stored[b.name].copy()
        elif b.kind == CONST:
            arrays[b.id] = plan.constants[b.id]
        elif b.kind in (TEMP, SCRATCH, OUTPUT):
            arrays[b.id] = np.full(b.shape, 7, dtype=b.dtype)  # garbage unlike the runtime's
    for ins in plan.instructions:  # updates write the param's array where they stand in the plan
        args = [arrays[a] for a in ins.args]
        kernel = lookup(ins.op).kernel
        if ins.mode == BIND_VIEW:
            arrays[ins.out] = kernel(*args, **ins.attrs)
        elif ins.mode == COPY:
            arrays[ins.out][...] = kernel(*args, **ins.attrs)  # a copy where NumPy cannot view, as the plan does
        elif ins.scratch:
            kernel(arrays[ins.out], *args, scratch=tuple(arrays[s] for s in ins.scratch), **ins.attrs)
        else:
            kernel(arrays[ins.out], *args, **ins.attrs)
    outputs = [np.array(arrays[o], copy=True) for o in plan.outputs]
    params = {b.name: np.array(arrays[b.id], copy=True) for b in plan.buffers if b.kind == PARAM}
    return outputs, params


def _bits(result: tuple) -> tuple:
    outputs, params = result
    return (
        [(a.dtype.str, a.shape, a.tobytes()) for a in outputs],
        {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in sorted(params.items())},
    )


# --- the damage -------------------------------------------------------------------------


def _paths(doc: Any) -> list[tuple[tuple, Any]]:
    """(path, value) of every value inside the document, in a fixed order (iteratively: no recursion)."""
    found, stack = [], [((), doc)]
    while stack:
        path, value = stack.pop()
        if path:
            found.append((path, value))
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (k,), v) for k, v in enumerate(value))
    return found


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


# JSON's own characters (quote, backslash, control), non-ASCII and beyond the BMP: what a
# parser can trip on. Joined from a list, because st.text() builds hypothesis's tables of every
# Unicode character first (~15 s per process for an unbounded alphabet, in a fresh home).
TEXT_CHARACTERS = list('aZ0_.-/ "\\\n\t\x00\x7féλ∂\u2028😀')


def short_texts(max_size: int) -> st.SearchStrategy[str]:
    """Strings of up to ``max_size`` of those characters."""
    return st.lists(st.sampled_from(TEXT_CHARACTERS), max_size=max_size).map("".join)


OTHER_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**40), st.floats(allow_nan=False), short_texts(4),
    st.just([]), st.just({}), st.lists(st.integers(0, 8), max_size=3),
)


@st.composite
def edited_documents(draw, doc: dict) -> dict:
    """One random edit of a parsed document (a deep copy of it)."""
    doc = json.loads(json.dumps(doc))
    found = _paths(doc)
    paths = [p for p, _ in found]
    path, value = draw(st.sampled_from(found))
    parent, key = _at(doc, path[:-1]), path[-1]
    action = draw(st.sampled_from(["number", "other-type", "elsewhere", "alike", "alike", "delete", "duplicate",
                                   "swap", "string"]))
    alike = [p for p, v in found if type(v) is type(value) and p != path]
    if action == "alike" and alike:  # a value of the same type from elsewhere: a plausible edit, e.g. another buffer id
        parent[key] = json.loads(json.dumps(_at(doc, draw(st.sampled_from(alike)))))
    elif action == "number" and type(value) in (int, float):
        parent[key] = draw(st.sampled_from([value + 1, value - 1, -value, 0, value * 2, value + 64, value - 64, float(value)]))
    elif action == "elsewhere":
        parent[key] = json.loads(json.dumps(_at(doc, draw(st.sampled_from(paths)))))
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, json.loads(json.dumps(value)))
    elif action == "swap" and isinstance(parent, list):
        other = draw(st.integers(0, len(parent) - 1))
        parent[key], parent[other] = parent[other], parent[key]
    elif action == "string" and isinstance(value, str):
        parent[key] = draw(st.one_of(short_texts(6), st.just(value[:-1]), st.just(value + "A"),
                                     st.just(value[::-1])))
    else:
        parent[key] = draw(OTHER_VALUES)
    return doc


@st.composite
def damaged_texts(draw, text: str) -> tuple[str, str | bytes, bool]:
    """(kind of damage, the damaged text, whether it was signed again)."""
    kind = draw(st.sampled_from(["edit", "edit", "edit-signed", "edit-signed", "edit-signed", "truncate", "flip"]))
    if kind == "truncate":
        return kind, text[: draw(st.integers(0, len(text) - 1))], False
    if kind == "flip":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return kind, bytes(data), False
    doc = draw(edited_documents(json.loads(text)))
    if kind == "edit-signed":
        doc["sha256"] = content_digest(doc)
    return kind, json.dumps(doc), kind == "edit-signed"


# --- the law ------------------------------------------------------------------------------


def _outcome(name: str, kind: str, damaged: str | bytes, signed: bool) -> str:
    text, stored, feeds, expected = _original(name)
    try:
        plan = Plan.from_json(damaged)
    except gc.GraphError:
        return f"{kind}: refused on load"
    try:
        got = _run(plan, stored, feeds)
    except gc.GraphError:
        return f"{kind}: refused on run"
    if _bits(got) == _bits(expected):
        return f"{kind}: same results"
    assert signed, f"an unsigned {kind} of {name!r} was loaded and gives other results"
    assert _bits(got) == _bits(_interpret(plan, stored, feeds)), (
        f"a signed edit of {name!r} was loaded, and its run disagrees with its own dataflow")
    return f"{kind}: other results, self-consistent"


def test_damaged_plan_files_are_refused_or_run_exactly_as_written():
    outcomes: Counter[str] = Counter()
    texts = {name: _original(name)[0] for name in CASES}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get("GRAPHC_FUZZ_RANDOM"),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def check(data):
        name = data.draw(st.sampled_from(sorted(CASES)))
        kind, damaged, signed = data.draw(damaged_texts(texts[name]))
        outcomes[_outcome(name, kind, damaged, signed)] += 1

    check()
    print(f"\n{sum(outcomes.values())} damaged plans:")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:5d}  {outcome}")
    # the fuzz reached the field checks and the validator, not only the JSON parser and the digest
    assert outcomes["edit-signed: refused on load"] > 0
    assert outcomes["edit: refused on load"] > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fuzzed_plan_runs_as_its_interpretation(name):
    """The oracle itself: the runtime and the interpreter agree on the undamaged plans."""
    text, stored, feeds, expected = _original(name)
    plan = Plan.from_json(text)
    assert _bits(expected) == _bits(_interpret(plan, stored, feeds))
