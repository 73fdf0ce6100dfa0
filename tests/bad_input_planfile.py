"""Bad plan files and plan documents, each with the GraphError it gets (cases for the bad-input catalogue).

Damaged documents are signed again (their ``sha256`` recomputed) so that the
check under test is the field's own, not the digest's.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

import graphc as gc
from graphc.plan import content_digest, read_plan_file


@functools.lru_cache(maxsize=None)
def _plan_text() -> str:
    """A small training step: a const, a view, scratch (softmax), int labels and two updates."""
    with gc.Graph("planfile-case") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        labels = gc.input("labels", shape=(4,), dtype="int64")
        w = gc.param("w", shape=(3, 5), dtype="float64")
        b = gc.param("b", shape=(5,), dtype="float64")
        h = gc.tanh(x @ w + b)
        loss = gc.softmax_cross_entropy(h * 2.0, labels) + gc.sum(gc.transpose(h) ** 2)
    return gc.compile(loss, updates=gc.sgd(loss, [w, b], 0.1)).plan.to_json()


def _document() -> dict[str, Any]:
    return json.loads(_plan_text())


def _load_signed(doc: dict[str, Any]) -> gc.Plan:
    doc["sha256"] = content_digest(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _load_edited(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    """Load the case plan after ``edit`` changed its document in place (then signed again)."""
    doc = _document()
    edit(doc)
    return _load_signed(doc)


def _index(doc: dict[str, Any], kind: str) -> int:
    return next(k for k, b in enumerate(doc["buffers"]) if b["kind"] == kind)


def _step(doc: dict[str, Any], op: str) -> int:
    return next(k for k, i in enumerate(doc["instructions"]) if i["op"] == op)


def _set(doc: dict[str, Any], path: tuple, value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _temps_at_zero(doc: dict[str, Any]) -> None:
    for b in doc["buffers"]:
        if b["kind"] in ("temp", "scratch"):
            b["offset"] = 0


def _param_to_float32(doc: dict[str, Any]) -> None:
    doc["buffers"][_index(doc, "param")]["dtype"] = "float32"


def _edit_constant_data(doc: dict[str, Any]) -> None:
    """An edit that keeps the file well-formed: one constant's first byte changed, digest left as it was."""
    value = next(iter(doc["constants"].values()))
    value["data"] = ("B" if value["data"][0] != "B" else "C") + value["data"][1:]


def _unsigned(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    doc = _document()
    edit(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _read_missing_file() -> gc.Plan:
    return read_plan_file(Path(__file__).parent / "no-such-plan.json")


CASES_PLANFILE = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("planfile-path-missing", _read_missing_file, r"no-such-plan\.json.* does not exist"),
    ("planfile-path-directory", lambda: read_plan_file(Path(__file__).parent), r"is a directory"),
    ("planfile-path-not-a-path", lambda: read_plan_file(3), r"path must be a str"),
    ("planfile-file-empty", lambda: read_plan_file("/dev/null"), r"/dev/null.* empty"),
    ("planfile-file-not-json", lambda: read_plan_file(Path(gc.__file__).parent / "data" / "README.md"), r"README\.md.* not valid JSON"),
    ("planfile-file-not-utf8", lambda: read_plan_file(Path(gc.__file__).parent / "data" / "digits.npz"), r"not valid JSON"),
    ("planfile-text-not-a-string", lambda: gc.Plan.from_json({"format": "graphc-plan"}), r"JSON text of a plan"),
    ("planfile-text-empty", lambda: gc.Plan.from_json(""), r"empty"),
    ("planfile-text-not-json", lambda: gc.Plan.from_json("{'format': 'graphc-plan'"), r"not valid JSON"),
    ("planfile-text-truncated", lambda: gc.Plan.from_json(_plan_text()[: len(_plan_text()) // 2]), r"not valid JSON"),
    ("planfile-json-huge-int", lambda: gc.Plan.from_json('{"version": ' + "9" * 5000 + "}"), r"not valid JSON"),
    ("planfile-json-list", lambda: gc.Plan.from_json("[1, 2, 3]"), r"JSON list, not an object"),
    ("planfile-json-deep", lambda: gc.Plan.from_json("[" * 100_000 + "]" * 100_000), r"nests deeper|not valid JSON"),
    ("planfile-other-format", lambda: _unsigned(lambda d: _set(d, ("format",), "onnx")), r"format 'onnx'"),
    ("planfile-future-version", lambda: _unsigned(lambda d: _set(d, ("version",), 3)), r"version 3 is not supported"),
    ("planfile-version-string", lambda: _unsigned(lambda d: _set(d, ("version",), "2")), r"version '2' is not supported"),
    ("planfile-digest-mismatch", lambda: _unsigned(_edit_constant_data), r"sha256 does not match"),
    ("planfile-digest-missing", lambda: _unsigned(lambda d: d.pop("sha256")), r"lacks the field 'sha256'"),
    ("planfile-unknown-field", lambda: _load_edited(lambda d: _set(d, ("comment",), "hi")), r"unknown field 'comment'"),
    ("planfile-missing-buffers", lambda: _load_edited(lambda d: d.pop("buffers")), r"lacks the field 'buffers'"),
    ("planfile-arena-float", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), 1024.0)), r"arena_bytes is 1024\.0"),
    ("planfile-arena-negative", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), -64)), r"arena_bytes is -64"),
    ("planfile-arena-huge", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), 2**60)), r"larger than its buffers side by side"),
    ("planfile-buffers-object", lambda: _load_edited(lambda d: _set(d, ("buffers",), {})), r"buffers is a JSON object, expected a list"),
    ("planfile-buffer-id-mismatch", lambda: _load_edited(lambda d: _set(d, ("buffers", 2, "id"), 3)), r"buffers\[2\]\.id is 3"),
    ("planfile-buffer-id-bool", lambda: _load_edited(lambda d: _set(d, ("buffers", 1, "id"), True)), r"buffers\[1\]\.id is True"),
    ("planfile-buffer-kind-unknown", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "kind"), "heap")), r"buffers\[0\]\.kind is 'heap'"),
    ("planfile-buffer-dtype-unknown", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "dtype"), "float16")), r"buffers\[0\]\.dtype is 'float16'"),
    ("planfile-buffer-shape-float", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), [4.0, 3])), r"buffers\[0\]\.shape\[0\] is 4\.0"),
    ("planfile-buffer-shape-negative", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), [-4, 3])), r"buffers\[0\]\.shape\[0\] is -4"),
    ("planfile-buffer-shape-string", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), "43")), r"buffers\[0\]\.shape is a JSON string"),
    ("planfile-buffer-missing-offset", lambda: _load_edited(lambda d: d["buffers"][0].pop("offset")), r"buffers\[0\] lacks the field 'offset'"),
    ("planfile-input-with-offset", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "offset"), 0)), r"buffers\[0\]\.offset is 0, but a input"),
    ("planfile-temp-offset-negative", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), -64)), r"\.offset is -64"),
    ("planfile-temp-offset-null", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), None)), r"\.offset is None"),
    ("planfile-temp-off-arena", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), 2**20)), r"off the arena"),
    ("planfile-temps-overlap", lambda: _load_edited(_temps_at_zero), r"share memory while both are live"),
    ("planfile-first-instruction-dropped", lambda: _load_edited(lambda d: d["instructions"].pop(0)), r"before anything writes it"),
    ("planfile-param-dtype-edited", lambda: _load_edited(_param_to_float32), r"instruction \d+: .*float32"),
    ("planfile-op-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "op"), "conv9d")), r"instructions\[0\]\.op is 'conv9d'"),
    ("planfile-mode-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "mode"), "jit")), r"instructions\[0\]\.mode is 'jit'"),
    ("planfile-tag-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "tag"), "side")), r"instructions\[0\]\.tag is 'side'"),
    ("planfile-arg-out-of-range", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "args", 0), 10**6)), r"instructions\[0\]\.args\[0\] is %1000000"),
    ("planfile-arg-string", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "args", 0), "%0")), r"instructions\[0\]\.args\[0\] is '%0'"),
    ("planfile-out-negative", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "out"), -1)), r"instructions\[0\]\.out is -1"),
    ("planfile-attrs-list", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "attrs"), [])), r"instructions\[0\]\.attrs is a JSON list"),
    ("planfile-attr-object", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "attrs", "axes"), {"a": 1})), r"attrs\.axes is a JSON object"),
    ("planfile-attr-refused", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "attrs", "axes"), [0, 0])), r"transpose .* does not accept"),
    ("planfile-view-run-as-kernel", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "mode"), "kernel")), r"runs in mode 'kernel'"),
    ("planfile-output-out-of-range", lambda: _load_edited(lambda d: _set(d, ("outputs",), [999])), r"outputs\[0\] is %999"),
    ("planfile-constants-list", lambda: _load_edited(lambda d: _set(d, ("constants",), [])), r"constants is a JSON list"),
    ("planfile-constant-missing", lambda: _load_edited(lambda d: d["constants"].popitem()), r"constants lacks the value of const buffer"),
    ("planfile-constant-for-a-temp", lambda: _load_edited(lambda d: _set(d, ("constants", str(_index(d, "temp"))), d["constants"][next(iter(d["constants"]))])), r"names no const buffer"),
    ("planfile-constant-bad-base64", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "data"), "!!!")), r"\.data is not valid base64"),
    ("planfile-constant-short-data", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "data"), "AAAA")), r"holds 3 bytes"),
    ("planfile-constant-dtype", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "dtype"), "<f4")), r"\.dtype is <f4, but buffer"),
    ("planfile-constant-dtype-garbage", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "dtype"), "fp64")), r"'fp64', which is not a dtype"),
    ("planfile-duplicate-feed-name", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "param"), "name"), "x")), r"have the same name"),
]
