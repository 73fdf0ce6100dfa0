"""Bad input of save and load: paths, damaged, edited, foreign and mismatched files.

Cases for the catalogue of tests/test_bad_input.py, in its format. Files are
built in memory (``io.BytesIO``): a small training step saved once, then
damaged or rewritten member by member (``_rewrite``), so each case reaches the
one check it names; nothing is written to disk.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

import graphc as gc
from graphc import zoo
from graphc.plan import content_digest
from graphc.saving import MANIFEST


# --- helpers: a small program and params file, saved in memory, and ways to damage them -------


@functools.lru_cache(maxsize=None)
def _step_program() -> tuple[gc.Graph, gc.Program]:
    """An SGD step of a small float64 MLP (params W1 (3, 4), b1, W2, b2)."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    loss = values["loss"]
    return graph, gc.compile(loss, updates=gc.sgd(loss, values["params"], 0.1))


def _saved_program() -> bytes:
    buffer = io.BytesIO()
    _step_program()[1].save(buffer)
    return buffer.getvalue()


def _saved_params() -> bytes:
    buffer = io.BytesIO()
    gc.save_params(_step_program()[0], buffer)
    return buffer.getvalue()


def _fresh_graph() -> gc.Graph:
    """A graph with the same params as the saved step, which a load may change."""
    return zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")[0]


def _load(data: bytes, **options: Any) -> gc.Program:
    return gc.load(io.BytesIO(data), **options)


def _load_params(data: bytes) -> None:
    gc.load_params(_fresh_graph(), io.BytesIO(data))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _rewrite(
    data: bytes,
    *,
    arrays: dict[str, np.ndarray] | None = None,
    drop: tuple[str, ...] = (),
    edit: Callable[[dict], None] | None = None,
    resign: bool = True,
) -> bytes:
    """The file again (a valid zip, CRCs right) with members replaced or added (``arrays``,
    by param name), members dropped, and the manifest edited (signed again unless ``resign=False``)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {name: source.read(name) for name in source.namelist()}
    if edit is not None:
        manifest = json.loads(np.load(io.BytesIO(members[MANIFEST + ".npy"])).tobytes())
        edit(manifest)
        if resign:
            manifest["sha256"] = content_digest(manifest)
        members[MANIFEST + ".npy"] = _npy(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))
    for name, array in (arrays or {}).items():
        members[name + ".npy"] = _npy(array)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in members.items():
            if name[: -len(".npy")] not in drop:
                target.writestr(name, content)
    return out.getvalue()


def _flip_in_array(data: bytes, name: str) -> bytes:
    """The file with one byte flipped inside param ``name``'s stored bytes (its CRC now wrong)."""
    start = data.find(_step_program()[0].params[name].data.tobytes())
    assert start > 0
    damaged = bytearray(data)
    damaged[start + 3] ^= 0x40
    return bytes(damaged)


def _edit_plan(manifest: dict) -> None:
    """Rename the plan inside the manifest without signing the plan again."""
    plan = json.loads(manifest["plan"])
    plan["name"] = "edited"
    manifest["plan"] = json.dumps(plan)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda manifest: manifest.__setitem__(key, value)


def _drop_entry(name: str) -> Callable[[dict], None]:
    return lambda manifest: manifest.__setitem__("params", [e for e in manifest["params"] if e["name"] != name])


def _unstored_program() -> gc.Program:
    """A loss's plan as a Program without stored params (they would be fed at every run)."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    return gc.Program(gc.compile(values["loss"]).plan)


def _save_replaced_param() -> None:
    """A program whose graph param was replaced by an array of another shape, then saved."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    program = gc.compile(values["loss"])
    graph.params["b1"].data = np.zeros(5)
    program.save(io.BytesIO())


def _graph_with_param(name: str) -> gc.Graph:
    with gc.Graph("names") as graph:
        gc.param(name, (2,), seed=0)  # a seed: the default one is derived from the name's UTF-8
    return graph


def _plain_npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _step_params(**changes: Any) -> dict[str, np.ndarray]:
    """The step's params by name, with some replaced (None drops one)."""
    params = {name: node.data for name, node in _step_program()[0].params.items()}
    params.update(changes)
    return {name: array for name, array in params.items() if array is not None}


def _npz_with_text_member() -> bytes:
    """A plain .npz of the step's params plus a member that is no array."""
    buffer = io.BytesIO(_plain_npz(**_step_params()))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("notes.txt", "trained on digits")
    return buffer.getvalue()


def _read_only_load() -> None:
    graph = _fresh_graph()
    graph.params["b2"].data.flags.writeable = False
    gc.load_params(graph, io.BytesIO(_saved_params()))


_HERE = Path(__file__).parent


CASES_SAVING = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("load-path-missing", lambda: gc.load(_HERE / "no-such-program.npz"), r"no-such-program\.npz.*does not exist"),
    ("load-path-directory", lambda: gc.load(_HERE), r"is a directory"),
    ("load-path-not-a-path", lambda: gc.load(3), r"path must be a str"),
    ("load-not-a-zip", lambda: _load(b"graphc? no: plain text"), r"not a complete zip"),
    ("load-empty-file", lambda: _load(b""), r"not a complete zip"),
    ("load-truncated", lambda: _load(_saved_program()[: len(_saved_program()) // 2]), r"not a complete zip"),
    ("load-truncated-tail", lambda: _load(_saved_program()[:-1]), r"not a complete zip"),
    ("load-foreign-npz", lambda: _load(_plain_npz(a=np.zeros(2))), r"no '__graphc__' member.*not written by prog\.save"),
    ("load-byte-flipped-array", lambda: _load(_flip_in_array(_saved_program(), "W1")), r"'W1'.*(CRC|sha256)"),
    ("load-edited-array", lambda: _load(_rewrite(_saved_program(), arrays=_step_params(W1=np.ones((3, 4))))),
     r"array of 'W1' does not match its sha256"),
    ("load-edited-manifest", lambda: _load(_rewrite(_saved_program(), edit=_set("returns", "list"), resign=False)),
     r"manifest's sha256 does not match"),
    ("load-edited-plan", lambda: _load(_rewrite(_saved_program(), edit=_edit_plan)), r"its plan: sha256 does not match"),
    ("load-wrong-format", lambda: _load(_rewrite(_saved_program(), edit=_set("format", "zip-of-stuff"))),
     r"format 'zip-of-stuff', expected 'graphc-program'"),
    ("load-wrong-version", lambda: _load(_rewrite(_saved_program(), edit=_set("version", 99))),
     r"version 99 is not supported"),
    ("load-params-file-as-program", lambda: _load(_saved_params()), r"graphc-params.*gc\.load_params"),
    ("load-array-wrong-shape", lambda: _load(_rewrite(_saved_program(), arrays={"W1": np.zeros((4, 3))})),
     r"does not match its plan: the array of 'W1' is \(4, 3\) float64, expected \(3, 4\) float64"),
    ("load-array-wrong-dtype", lambda: _load(_rewrite(_saved_program(), arrays={"b1": np.zeros(4, np.float32)})),
     r"'b1' is \(4,\) float32, expected \(4,\) float64"),
    ("load-missing-param-array", lambda: _load(_rewrite(_saved_program(), drop=("W2",))), r"lacks the array of 'W2', which its manifest lists"),
    ("load-extra-member", lambda: _load(_rewrite(_saved_program(), arrays={"extra": np.zeros(1)})),
     r"unknown member 'extra\.npy', which its manifest does not list"),
    ("load-manifest-lacks-param", lambda: _load(_rewrite(_saved_program(), edit=_drop_entry("b2"), drop=("b2",))),
     r"missing param 'b2' of the plan"),
    ("load-manifest-returns-bad", lambda: _load(_rewrite(_saved_program(), edit=_set("returns", "tuple"))),
     r"returns is 'tuple'"),
    ("load-check-numerics-not-bool", lambda: _load(_saved_program(), check_numerics="yes"), r"check_numerics='yes'"),
    ("save-program-to-directory", lambda: _step_program()[1].save(_HERE), r"is a directory"),
    ("save-program-missing-directory", lambda: _step_program()[1].save(_HERE / "no-such-dir" / "p.npz"),
     r"no-such-dir.* does not exist"),
    ("save-program-path-not-a-path", lambda: _step_program()[1].save(3.5), r"path must be a str"),
    ("save-program-unstored-params", lambda: _unstored_program().save(io.BytesIO()), r"'W1', 'W2', 'b1', 'b2' of plan .* no stored value in this program"),
    ("save-program-replaced-param", _save_replaced_param, r"'b1' is \(5,\) float64, but the plan's param is \(4,\)"),
    ("save-params-reserved-name", lambda: gc.save_params(_graph_with_param(MANIFEST), io.BytesIO()),
     r"'__graphc__' cannot be saved under its name.*rename"),
    ("save-params-name-not-utf8", lambda: gc.save_params(_graph_with_param("w\ud800"), io.BytesIO()),
     r"'w\\ud800' cannot be saved under its name.*rename"),
    ("save-params-not-a-graph", lambda: gc.save_params("mlp", io.BytesIO()), r"must be a gc\.Graph"),
    ("load-params-not-a-graph", lambda: gc.load_params(None, io.BytesIO(_saved_params())), r"must be a gc\.Graph"),
    ("load-params-program-file", lambda: _load_params(_saved_program()), r"graphc-program.*gc\.load\(path\)"),
    ("load-params-missing-name", lambda: _load_params(_plain_npz(**_step_params(b2=None))), r"missing param 'b2'"),
    ("load-params-extra-name", lambda: _load_params(_plain_npz(**_step_params(W3=np.zeros(2)))),
     r"param 'W3' unknown to graph"),
    ("load-params-wrong-shape", lambda: _load_params(_plain_npz(**_step_params(W2=np.zeros((2, 4))))),
     r"does not fit graph .*'W2' is \(2, 4\) float64, expected \(4, 2\) float64.*no param was changed"),
    ("load-params-wrong-dtype", lambda: _load_params(_plain_npz(**_step_params(W2=np.zeros((4, 2), np.float32)))),
     r"does not fit graph .*'W2' is \(4, 2\) float32, expected \(4, 2\) float64"),
    ("load-params-edited-array", lambda: _load_params(_rewrite(_saved_params(), arrays={"b1": np.ones(4)})),
     r"array of 'b1' does not match its sha256"),
    ("load-params-truncated", lambda: _load_params(_saved_params()[:100]), r"not a complete zip"),
    ("load-params-read-only", _read_only_load, r"'b2'.*read-only.*no param was changed"),
    ("load-params-foreign-member", lambda: _load_params(_npz_with_text_member()), r"notes\.txt.*no \.npy array"),
]
