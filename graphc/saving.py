"""Save and load: a compiled program, or a graph's params, in one file.

``prog.save(path)`` / ``load(path)`` keep a whole program: its plan (the
versioned, digest-checked JSON of :meth:`graphc.plan.Plan.to_json`), the stored
array of every param the plan reads or updates (trained params and optimizer
state alike, each with its role), whether it returns one array or a list, and
which names it accepts as feeds. The loaded program owns its arrays (it needs
no graph) and continues training bit for bit: the arrays are stored as their
exact bytes, and the plan is the same list of instructions.
``save_params(graph, path)`` / ``load_params(graph, path)`` keep a graph's
params alone.

The container is a NumPy ``.npz``: a zip of ``.npy`` members, uncompressed, as
``np.savez`` writes it, with one member per param named after it and one member
``__graphc__`` holding the manifest (UTF-8 JSON as a uint8 array). Why:

- ``.npy`` stores an array's exact bytes with its dtype and shape (no text
  round trip, no conversion), and is NumPy's own format: ``np.load(path)["W1"]``
  reads a saved weight with NumPy alone, and a plain ``.npz`` of named arrays
  (``np.savez(path, W1=..., b1=...)``) loads into a graph with ``load_params``;
- nothing is pickled: the structure is JSON and the arrays are read with
  ``allow_pickle`` off, so loading a file runs no code from it;
- damage is recognised: zip keeps a CRC-32 per member, and the manifest keeps
  the SHA-256 of every array's bytes and a SHA-256 of itself (the plan inside
  carries its own), so a truncated, flipped or edited file is a GraphError,
  never a wrong result;
- base64 in JSON (as plan constants are) would make weights 4/3 larger and slow
  to parse; HDF5 would be a dependency; pickle runs code on load.

The members are written with :func:`numpy.lib.format.write_array` into a
:class:`zipfile.ZipFile`, which is what ``np.savez`` does, because ``np.savez``
takes the names as keyword arguments and a param named ``file`` or
``allow_pickle`` would collide with its own. A file is written to a temporary
file beside the target and then renamed over it, so an interrupted save never
leaves half a file. Reading checks everything (manifest, member names, each
array's header against the plan or the graph, each digest) before it builds a
program or writes a single param: all or nothing.

Manifest of a program file (``format`` ``"graphc-program"``)::

    {"format", "version", "returns": "array" | "list", "feedable": [names],
     "check_numerics": bool, "plan": "<Plan.to_json text>",
     "params": [{"name", "role", "shape", "dtype", "sha256"}, ...], "sha256"}

A params file (``"graphc-params"``) has ``format``, ``version``, ``graph`` (its
name, for messages), ``params`` and ``sha256``. A loaded program's ``memory``
is None (the memory plan is the compiler's, and is not saved; the plan's
``arena_bytes`` is), and so is its ``remat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import math
import os
import re
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Iterator, Mapping, Sequence, Union

import numpy as np

from graphc.compile import Program, check_bind
from graphc.errors import GraphError
from graphc.ir import Graph, dtype_name
from graphc.plan import Plan, content_digest

PROGRAM_FORMAT = "graphc-program"
PARAMS_FORMAT = "graphc-params"
VERSION = 1
MANIFEST = "__graphc__"
"""The member holding the manifest; no param may have this name."""
DEFAULT_ROLE = "param"

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

_PROGRAM_KEYS = ("format", "version", "returns", "feedable", "check_numerics", "plan", "params", "sha256")
_PARAMS_KEYS = ("format", "version", "graph", "params", "sha256")
_ENTRY_KEYS = ("name", "role", "shape", "dtype", "sha256")
_RETURNS = ("array", "list")
_WRITER = {PROGRAM_FORMAT: "prog.save(path)", PARAMS_FORMAT: "gc.save_params(graph, path)"}
_READER = {PROGRAM_FORMAT: "a saved program: load it with gc.load(path)",
           PARAMS_FORMAT: "a graph's params: load them with gc.load_params(graph, path)"}
_MAX_MANIFEST_BYTES = 1 << 30
_SHA256 = re.compile(r"[0-9a-f]{64}")

# What zipfile and the .npy header reader raise on damaged bytes: a bad or
# truncated zip (BadZipFile, EOFError, struct.error), a flipped compression
# method (NotImplementedError, zlib.error, LZMAError, OSError), a flipped
# "encrypted" flag (RuntimeError), a .npy header that does not parse
# (ValueError, SyntaxError, and tokenize.TokenError from the tokenizer NumPy runs on it).
_DAMAGE = (zipfile.BadZipFile, EOFError, struct.error, NotImplementedError, zlib.error, lzma.LZMAError, OSError,
           RuntimeError, ValueError, SyntaxError, tokenize.TokenError)


def param_role(node: Any) -> str:
    """A param node's role (``gc.param(..., role=...)``): ``"param"`` or ``"state"``."""
    return node.role or DEFAULT_ROLE


# --- writing ----------------------------------------------------------------------------


def save_program(
    path: PathOrFile,
    plan: Plan,
    arrays: Mapping[str, np.ndarray],
    roles: Mapping[str, str],
    *,
    single: bool,
    feedable: Sequence[str],
    check_numerics: bool,
) -> None:
    """Write a program file: the plan, the stored array of each of its params, and how it runs.

    ``arrays`` must hold every param of the plan (what the program reads in
    place or updates); :meth:`graphc.Program.save` gathers them.
    """
    label = _label(path, "program")
    missing = sorted(name for name in plan.params if name not in arrays)
    if missing:
        raise GraphError(
            f"{label}: param{_s(missing)} {_names(missing)} of plan {plan.name!r} "
            f"ha{'ve' if len(missing) > 1 else 's'} no stored value in this program (fed at every run); "
            "a saved program owns every param it reads: "
            "build the Program with stored_params holding them"
        )
    params = {name: arrays[name] for name in plan.params}
    wrong = [f"{name!r} is {np.shape(array)} {getattr(array, 'dtype', type(array).__name__)}, but the plan's param "
             f"is {plan.params[name].shape} {plan.params[name].dtype}"
             for name, array in params.items()
             if not (isinstance(array, np.ndarray) and array.shape == plan.params[name].shape
                     and dtype_name(array.dtype) == plan.params[name].dtype)]
    if wrong:
        raise GraphError(f"{label}: the stored value of {'; '.join(wrong)}; change a param's value with "
                         ".assign(array), which keeps its shape and dtype (nothing was written)")
    manifest = {
        "format": PROGRAM_FORMAT,
        "version": VERSION,
        "returns": "array" if single else "list",
        "feedable": sorted(feedable),
        "check_numerics": bool(check_numerics),
        "plan": plan.to_json(),
        "params": [_entry(name, array, roles.get(name, DEFAULT_ROLE)) for name, array in params.items()],
    }
    _write(path, label, manifest, params)


def save_params(graph: Graph, path: PathOrFile) -> None:
    """Write the stored value of every param of ``graph`` to ``path`` (an ``.npz``).

    One ``.npy`` member per param, named after it (``np.load(path)["W1"]``
    reads one back), and a manifest with each one's role, shape, dtype and
    SHA-256. :func:`load_params` reads it back into a graph with the same params.
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"save_params: the first argument must be a gc.Graph, got {type(graph).__name__}")
    label = _label(path, "params")
    params = {name: node.data for name, node in graph.params.items()}
    manifest = {
        "format": PARAMS_FORMAT,
        "version": VERSION,
        "graph": graph.name,
        "params": [_entry(name, params[name], param_role(node)) for name, node in graph.params.items()],
    }
    _write(path, label, manifest, params)


def _entry(name: str, array: np.ndarray, role: str) -> dict[str, Any]:
    return {"name": name, "role": role, "shape": list(array.shape), "dtype": dtype_name(array.dtype),
            "sha256": _array_digest(array)}


def _array_digest(array: np.ndarray) -> str:
    """SHA-256 of the array's bytes in C order."""
    return hashlib.sha256(np.asarray(array, order="C").data).hexdigest()


def _write(path: PathOrFile, label: str, manifest: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    for name in arrays:
        if name == MANIFEST or not _is_member_name(name + ".npy"):
            raise GraphError(f"{label}: param {name!r} cannot be saved under its name (it is reserved, or is no "
                             "zip member name); rename the param")
    manifest["sha256"] = content_digest(manifest)
    text = json.dumps(manifest, separators=(",", ":")).encode()
    with _writable(path, label) as file, zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED) as archive:
        _write_member(archive, MANIFEST, np.frombuffer(text, dtype=np.uint8))
        for name, array in arrays.items():
            _write_member(archive, name, array)


def _is_member_name(member: str) -> bool:
    """Whether zipfile stores ``member`` under that very name (it cuts at NUL, needs UTF-8)."""
    try:
        member.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return zipfile.ZipInfo(member).filename == member


def _write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
        # np.asarray, not np.ascontiguousarray: that one makes a 0-d array 1-d
        np.lib.format.write_array(member, np.asarray(array, order="C"), allow_pickle=False)


@contextlib.contextmanager
def _writable(path: PathOrFile, label: str) -> Iterator[IO[bytes]]:
    """A binary file to write into: the caller's file object, or a temporary file beside
    ``path`` that replaces it once everything is written."""
    if _is_file_object(path, "write"):
        yield path
        return
    target = _as_path(path, label)
    if target.is_dir():
        raise GraphError(f"{label}: is a directory; give the path of a file to write (e.g. model.npz)")
    if not target.parent.is_dir():
        raise GraphError(f"{label}: the directory {str(target.parent)!r} does not exist; create it first")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise GraphError(f"{label}: cannot write in {str(target.parent)!r} ({err.strerror or err})") from None
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
        os.replace(temporary, target)
    except OSError as err:
        raise GraphError(f"{label}: cannot be written ({err.strerror or err})") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# --- reading ----------------------------------------------------------------------------


def load_program(path: PathOrFile, *, check_numerics: bool | None = None, bind: bool = True) -> Program:
    """The program saved at ``path`` by :meth:`graphc.Program.save`, ready to run.

    It owns its params (no graph needed), runs and updates them as the saved
    program did, and continues training bit for bit. ``check_numerics`` is the
    saved setting unless given. Its ``memory`` and ``remat`` are None: the
    compiler's memory report is not saved (the plan's ``arena_bytes`` is).
    ``bind=False`` loads it without allocating its arena, as ``compile(..., bind=False)``
    does (``prog.bind()`` allocates it); a program is saved the same bound or not.
    A damaged, edited, truncated or foreign file is a GraphError saying what is wrong.
    """
    label = _label(path, "program")
    if check_numerics is not None and not isinstance(check_numerics, bool):
        raise GraphError(f"load: check_numerics={check_numerics!r}: pass True, False, or None (as saved)")
    check_bind(bind)
    with _archive(path, label, PROGRAM_FORMAT) as archive:
        manifest = _read_manifest(archive, label, PROGRAM_FORMAT, _PROGRAM_KEYS)
        plan = _plan(manifest["plan"], label)
        returns = _choice(manifest["returns"], _RETURNS, "returns", label)
        feedable = _feedable(manifest["feedable"], plan, label)
        saved_check = manifest["check_numerics"]
        if not isinstance(saved_check, bool):
            raise _damaged(label, "check_numerics", f"is {saved_check!r}, expected true or false")
        entries = _entries(manifest["params"], label)
        _match_plan(entries, plan, label)
        _check_members(archive, entries, label)
        wrong = _check_headers(archive, {e["name"]: (_shape_of(e), e["dtype"]) for e in entries}, label)
        if wrong:
            raise _damaged(label, "the file", f"does not match its plan: {'; '.join(wrong)}")
        arrays = {e["name"]: _read_array(archive, e["name"], _shape_of(e), e["dtype"], e["sha256"], label)
                  for e in entries}
    program = Program(plan, stored_params=arrays, memory=None, feedable=feedable, single=returns == "array",
                      check_numerics=saved_check if check_numerics is None else check_numerics, bind=bind)
    program.param_roles = MappingProxyType({e["name"]: e["role"] for e in entries})
    return program


def load_params(graph: Graph, path: PathOrFile) -> None:
    """Set every param of ``graph`` to its value in the file at ``path``, in place.

    The file is a :func:`save_params` file, or any ``.npz`` with one array per
    param name (``np.savez(path, W1=..., b1=...)``). Its names must be exactly
    the graph's params, each array of its param's shape and dtype; otherwise a
    GraphError lists every missing, extra and mismatched name and no param is
    changed (all or nothing). The values are written into the stored arrays
    (as ``Value.assign`` does), so every compiled program of the graph sees them.
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"load_params: the first argument must be a gc.Graph, got {type(graph).__name__}")
    label = _label(path, "params")
    with _archive(path, label, PARAMS_FORMAT) as archive:
        members = archive.namelist()
        if MANIFEST + ".npy" in members:
            manifest = _read_manifest(archive, label, PARAMS_FORMAT, _PARAMS_KEYS)
            entries = _entries(manifest["params"], label)
            _check_members(archive, entries, label)
        else:  # a plain .npz: names from the members, shapes and dtypes from the graph
            entries = _plain_entries(members, label)
        _match_graph(archive, entries, graph, label)
        values = {e["name"]: _read_array(archive, e["name"], *_aval_of(graph.params[e["name"]]), e["sha256"], label)
                  for e in entries}
    read_only = sorted(name for name in values if not graph.params[name].data.flags.writeable)
    if read_only:
        raise GraphError(f"{label}: the stored array{_s(read_only)} of param{_s(read_only)} {_names(read_only)} "
                         f"of graph {graph.name!r} {_is(read_only)} read-only; make "
                         "it writable (no param was changed)")
    for name, value in values.items():
        graph.params[name].data[...] = value


@contextlib.contextmanager
def _archive(path: PathOrFile, label: str, fmt: str) -> Iterator[zipfile.ZipFile]:
    """The zip at ``path`` (or in a binary file object) that should hold a ``fmt`` file; any damage a GraphError."""
    if _is_file_object(path, "read"):
        source: Any = path
    else:
        source = _as_path(path, label)
        if not source.exists():
            raise GraphError(f"{label}: does not exist; check the path")
        if source.is_dir():
            raise GraphError(f"{label}: is a directory; give the path of a file written by {_WRITER[fmt]}")
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as err:
        raise _damaged(label, "the file", f"is not a complete zip/.npz archive ({err}): a truncated or foreign "
                                          "file") from None
    except _DAMAGE as err:
        raise _damaged(label, "the file", f"cannot be read ({type(err).__name__}: {err})") from None
    with archive:
        yield archive


def _read_manifest(archive: zipfile.ZipFile, label: str, fmt: str, keys: Sequence[str]) -> dict[str, Any]:
    """The manifest as a JSON object whose format, version, fields and digest are right."""
    if MANIFEST + ".npy" not in archive.namelist():
        raise _damaged(label, "the file", f"has no {MANIFEST!r} member: it was not written by {_WRITER[fmt]}")
    shape, _, dtype = _header(archive, MANIFEST, label)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > min(archive.getinfo(MANIFEST + ".npy").file_size,
                                                               _MAX_MANIFEST_BYTES):
        raise _damaged(label, "the manifest", f"is {shape} {dtype}, expected the bytes of its JSON (a 1-d uint8 array)")
    raw = _read_array(archive, MANIFEST, shape, "uint8", None, label)
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _damaged(label, "the manifest", f"is not valid UTF-8 JSON ({err})") from None
    if not isinstance(doc, dict):
        raise _damaged(label, "the manifest", "is not a JSON object")
    found = doc.get("format")
    if found != fmt:
        hint = _READER.get(found, "not a file graphc writes") if isinstance(found, str) else "not a file graphc writes"
        raise GraphError(f"{label}: has format {found!r}, expected {fmt!r} ({hint})")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise GraphError(f"{label}: format version {version!r} is not supported (this graphc reads version "
                         f"{VERSION}); save it again with this graphc")
    missing = [k for k in keys if k not in doc]
    unknown = sorted(k for k in doc if k not in keys)
    if missing or unknown:
        raise _damaged(label, "the manifest", f"lacks {_names(missing) or 'nothing'} and has unknown "
                                              f"{_names(unknown) or 'nothing'}")
    if doc["sha256"] != content_digest(doc):
        raise _damaged(label, "the manifest's sha256", "does not match its content: the file was edited or damaged")
    return doc


def _plan(text: Any, label: str) -> Plan:
    if not isinstance(text, str):
        raise _damaged(label, "plan", "is not the JSON text of a plan")
    try:
        return Plan.from_json(text)
    except GraphError as err:
        raise GraphError(f"{label}: {str(err).replace('plan file: ', 'its plan: ', 1)}") from None


def _entries(raw: Any, label: str) -> list[dict[str, Any]]:
    """The manifest's list of params, each entry's fields of the right types, names unique."""
    if not isinstance(raw, list):
        raise _damaged(label, "params", "is not a list")
    names: set[str] = set()
    for k, entry in enumerate(raw):
        where = f"params[{k}]"
        if not isinstance(entry, dict) or sorted(entry) != sorted(_ENTRY_KEYS):
            raise _damaged(label, where, f"must be an object with exactly the fields {_names(_ENTRY_KEYS)}")
        name, role, sha = entry["name"], entry["role"], entry["sha256"]
        if not (isinstance(name, str) and name) or name == MANIFEST or name in names:
            raise _damaged(label, f"{where}.name", f"is {name!r}: a param name must be a non-empty, unique string")
        if not (isinstance(role, str) and role):
            raise _damaged(label, f"{where}.role", f"is {role!r}, expected a non-empty string")
        if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            raise _damaged(label, f"{where}.sha256", "is not a SHA-256 hex digest")
        shape = entry["shape"]
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise _damaged(label, f"{where}.shape", f"is {shape!r}, expected a list of non-negative integers")
        if not isinstance(entry["dtype"], str):
            raise _damaged(label, f"{where}.dtype", f"is {entry['dtype']!r}, expected a dtype name")
        names.add(name)
    return raw


def _plain_entries(members: list[str], label: str) -> list[dict[str, Any]]:
    """Entries for a plain ``.npz`` (no manifest): one per ``.npy`` member, nothing to check the bytes against."""
    if len(members) != len(set(members)):
        raise _damaged(label, "the file", "has two members of the same name")
    foreign = sorted(m for m in members if not m.endswith(".npy"))
    if foreign:
        raise _damaged(label, "the file", f"has member{_s(foreign)} {_names(foreign)}, which {_is(foreign)} no .npy "
                                          "array; a params file holds one .npy array per param")
    return [{"name": m[: -len(".npy")], "sha256": None} for m in members]


def _check_members(archive: zipfile.ZipFile, entries: list[dict[str, Any]], label: str) -> None:
    """The archive holds the manifest and one member per entry: nothing missing, nothing more."""
    expected = {MANIFEST + ".npy"} | {e["name"] + ".npy" for e in entries}
    present = archive.namelist()
    if len(present) != len(set(present)):
        raise _damaged(label, "the file", "has two members of the same name")
    missing = sorted(m[: -len(".npy")] for m in expected - set(present))
    extra = sorted(set(present) - expected)
    problems = []
    if missing:
        problems.append(f"lacks the array{_s(missing)} of {_names(missing)}, which its manifest lists")
    if extra:
        problems.append(f"has unknown member{_s(extra)} {_names(extra)}, which its manifest does not list")
    if problems:
        raise _damaged(label, "the file", " and ".join(problems))


def _match_plan(entries: list[dict[str, Any]], plan: Plan, label: str) -> None:
    """The manifest lists exactly the plan's params, each with its buffer's shape and dtype."""
    by_name = {e["name"]: e for e in entries}
    problems = _name_problems(set(by_name), set(plan.params), "the plan")
    for name in sorted(set(by_name) & set(plan.params)):
        buf, e = plan.params[name], by_name[name]
        if tuple(e["shape"]) != buf.shape or e["dtype"] != buf.dtype:
            problems.append(f"{name!r} is {tuple(e['shape'])} {e['dtype']} in the manifest but {buf.shape} "
                            f"{buf.dtype} in the plan")
    if problems:
        raise _damaged(label, "params", "do not match the plan: " + "; ".join(problems))


def _match_graph(archive: zipfile.ZipFile, entries: list[dict[str, Any]], graph: Graph, label: str) -> None:
    """The file's names are exactly the graph's params, and each array (its .npy header, and
    its manifest entry if there is one) has its param's shape and dtype: every problem listed."""
    by_name = {e["name"]: e for e in entries}
    common = sorted(set(by_name) & set(graph.params))
    problems = _name_problems(set(by_name), set(graph.params), f"graph {graph.name!r}")
    for name in common:
        shape, dtype = _aval_of(graph.params[name])
        e = by_name[name]
        if "shape" in e and (tuple(e["shape"]) != shape or e["dtype"] != dtype):
            problems.append(f"{name!r} is {tuple(e['shape'])} {e['dtype']} in the manifest, expected {shape} {dtype}")
    problems += _check_headers(archive, {name: _aval_of(graph.params[name]) for name in common}, label)
    if problems:
        raise GraphError(f"{label}: does not fit graph {graph.name!r}: {'; '.join(problems)}; no param was changed "
                         "(load a file saved from a graph with the same params)")


def _aval_of(node: Any) -> tuple[tuple[int, ...], str]:
    return node.shape, dtype_name(node.dtype)


def _name_problems(in_file: set[str], wanted: set[str], where: str) -> list[str]:
    problems = []
    missing, extra = sorted(wanted - in_file), sorted(in_file - wanted)
    if missing:
        problems.append(f"missing param{_s(missing)} {_names(missing)} of {where}")
    if extra:
        problems.append(f"param{_s(extra)} {_names(extra)} unknown to {where}")
    return problems


def _feedable(raw: Any, plan: Plan, label: str) -> frozenset[str]:
    if not (isinstance(raw, list) and all(isinstance(n, str) for n in raw)):
        raise _damaged(label, "feedable", "is not a list of names")
    missing = sorted((set(plan.inputs) | set(plan.params)) - set(raw))
    if missing:
        raise _damaged(label, "feedable", f"lacks {_names(missing)}, which the plan reads")
    return frozenset(raw)


def _check_headers(archive: zipfile.ZipFile, expected: Mapping[str, tuple[tuple[int, ...], str]],
                   label: str) -> list[str]:
    """Each member's .npy header against the shape and dtype it must have: one phrase per mismatch."""
    problems = []
    for name, (shape, dtype) in expected.items():
        found_shape, _, found_dtype = _header(archive, name, label)
        if found_shape != shape or found_dtype != np.dtype(dtype):
            found = f"{found_shape} {dtype_name(found_dtype)}"
            problems.append(f"the array of {name!r} is {found}, expected {shape} {dtype}")
    return problems


def _header(archive: zipfile.ZipFile, name: str, label: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype that member ``name``'s .npy header declares."""
    with _reading(label, name), archive.open(name + ".npy") as member:
        return _parse_header(member, name, label)


def _parse_header(member: IO[bytes], name: str, label: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise _damaged(label, f"the member {name!r}", f"is a .npy of version {version}, expected 1.0 or 2.0")


def _read_array(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: str, sha256: str | None,
                label: str) -> np.ndarray:
    """Member ``name`` as an owned, writable, C-ordered array of ``shape`` and ``dtype``, and
    (when ``sha256`` is known) of those bytes. The header is checked before anything is read,
    so no damaged header makes the reader allocate what it claims; then exactly its bytes."""
    want = np.dtype(dtype)
    nbytes = math.prod(shape) * want.itemsize
    with _reading(label, name), archive.open(name + ".npy") as member:
        found_shape, fortran, found_dtype = _parse_header(member, name, label)
        if found_shape != shape or found_dtype != want:
            raise _damaged(label, f"the array of {name!r}", f"is {found_shape} {found_dtype}, expected {shape} {dtype}")
        data = member.read(nbytes)
        if len(data) != nbytes or member.read(1):
            raise _damaged(label, f"the array of {name!r}",
                           f"holds {'fewer' if len(data) < nbytes else 'more'} bytes than {shape} {dtype} needs")
    array = np.array(np.frombuffer(data, dtype=want).reshape(shape, order="F" if fortran else "C"), order="C")
    if sha256 is not None and _array_digest(array) != sha256:
        raise _damaged(label, f"the array of {name!r}", "does not match its sha256: the file was edited or damaged")
    return array


@contextlib.contextmanager
def _reading(label: str, name: str) -> Iterator[None]:
    """Damaged bytes met while reading member ``name``, as a GraphError naming it."""
    try:
        yield
    except GraphError:
        raise
    except _DAMAGE as err:
        raise _damaged(label, f"the member {name!r}", f"cannot be read ({type(err).__name__}: {err})") from None


# --- small helpers ------------------------------------------------------------------------


def _is_file_object(path: Any, method: str) -> bool:
    return not isinstance(path, (str, os.PathLike)) and callable(getattr(path, method, None))


def _as_path(path: Any, label: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise GraphError(f"{label}: the path must be a str, a pathlib.Path or a binary file object, "
                         f"got a {type(path).__name__}")
    return Path(path)


def _label(path: Any, kind: str) -> str:
    """``program file 'model.npz'`` (or ``... (file object)``), the prefix of every message."""
    if isinstance(path, (str, os.PathLike)):
        return f"{kind} file {os.fspath(path)!r}"
    if isinstance(path, io.IOBase) or callable(getattr(path, "read", None)) or callable(getattr(path, "write", None)):
        return f"{kind} file (file object)"
    return f"{kind} file"


def _shape_of(entry: dict[str, Any]) -> tuple[int, ...]:
    return tuple(entry["shape"])


def _choice(value: Any, allowed: Sequence[str], where: str, label: str) -> str:
    if value not in allowed:
        raise _damaged(label, where, f"is {value!r}, expected one of {_names(allowed)}")
    return value


def _damaged(label: str, where: str, message: str) -> GraphError:
    return GraphError(f"{label}: {where} {message}; save it again")


def _names(names: Sequence[str]) -> str:
    return ", ".join(map(repr, names))


def _s(items: Sequence[Any]) -> str:
    return "s" if len(items) != 1 else ""


def _is(items: Sequence[Any]) -> str:
    return "is" if len(items) == 1 else "are"
