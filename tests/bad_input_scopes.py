"""Bad input of name scopes, for the catalogue of tests/test_bad_input.py: scope names, and scopes in plan files."""

from __future__ import annotations

import json
from typing import Any, Callable

import graphc as gc
from graphc.plan import content_digest


def _scoped_plan_document() -> dict[str, Any]:
    """The JSON document of a small plan whose instructions are in scope "block"."""
    with gc.Graph("scoped"):
        x = gc.input("x", shape=(2, 3))
        with gc.scope("block"):
            y = gc.sum(gc.tanh(x))
    return json.loads(gc.compile(y).plan.to_json())


def _load_scoped_edited(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    """Load the scoped plan after ``edit``, its digest recomputed (so the field checks are what is tested)."""
    doc = _scoped_plan_document()
    edit(doc)
    doc["sha256"] = content_digest(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _open_scope_without_graph() -> None:
    with gc.scope("block"):
        pass


def _set_first_scope(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["instructions"][0]["scope"] = value
    return edit


CASES_SCOPES = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("scope-name-empty", lambda: gc.scope(""), r"gc\.scope: the name must be a non-empty string, got ''"),
    ("scope-name-none", lambda: gc.scope(None), r"gc\.scope: the name must be a non-empty string, got None"),
    ("scope-name-not-a-string", lambda: gc.scope(3), r"gc\.scope: the name must be a non-empty string, got 3"),
    ("scope-name-slash", lambda: gc.scope("encoder/block3"), r"'encoder/block3' holds '/'.*nest one .* \('encoder' and 'block3'\)"),
    ("scope-name-only-slash", lambda: gc.scope("/"), r"'/' holds '/'"),
    ("scope-without-graph", _open_scope_without_graph, r"gc\.scope\('block'\): no graph is open.*with gc\.Graph"),
    ("planfile-scope-number", lambda: _load_scoped_edited(_set_first_scope(3)), r"instructions\[0\]\.scope is a JSON integer, expected a string"),
    ("planfile-scope-empty-name", lambda: _load_scoped_edited(_set_first_scope("block//inner")), r"instructions\[0\]\.scope is 'block//inner', which is no scope path"),
    ("planfile-scope-trailing-slash", lambda: _load_scoped_edited(_set_first_scope("block/")), r"instructions\[0\]\.scope is 'block/'"),
    ("planfile-scope-missing", lambda: _load_scoped_edited(lambda d: d["instructions"][0].pop("scope")), r"instructions\[0\] lacks the field 'scope'"),
    ("planfile-v3-with-scope", lambda: _load_scoped_edited(lambda d: d.update(version=3)), r"instructions\[0\] has the field 'scope', which plans of version 3 do not have"),
]
