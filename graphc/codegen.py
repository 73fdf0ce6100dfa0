"""The Plan as Python source: one straight-line module that runs with NumPy alone.

:func:`program_source` (``prog.to_source()``) writes a plan as the text of a
Python module whose ``run(feeds, params, arena=None)`` returns what
``prog.run(feeds)`` returns, bit for bit, and updates ``params`` in place as
the program updates its stored params. The module imports ``numpy`` and
``math`` (and ``base64``, ``zlib`` when a constant needs them), never graphc::

    step = prog.to_source()          # graphc export FILE.py:FUNC -o step.py writes it to a file
    namespace = {}
    exec(compile(step, "step.py", "exec"), namespace)
    loss, *grads = namespace["run"]({"x": X, "labels": y}, params)

What the module holds, in order:

- the plan's facts: ``ARENA_BYTES``, ``INPUTS`` and ``PARAMS`` (name → shape,
  dtype), ``UPDATED`` (the params a run writes), ``FEEDABLE``;
- the constants, read-only: a constant of at most :data:`SMALL_CONSTANT`
  elements as a literal (``np.array([0.5], dtype='float32')``; every float is
  written with ``repr``, which reads back exactly), a larger one as its bytes,
  zlib-compressed and base64-encoded in the module (``_array('eJz...', '<f4',
  (64,))``): the module is one file, complete, and ``to_source()`` a string;
- graphc's kernels that are functions, their source copied with the helpers
  they call (see below);
- ``_bind(arena)``: every intermediate a view of the arena at its planned
  offset, the feed slots, and the views of those, made once per arena; it
  returns the slots and ``step``, a closure over them whose body is the plan,
  one line per instruction in plan order (the listing's line as a comment),
  each a NumPy call into its output: ``np.matmul(b0, b2, b7)``;
- ``run``, which checks and copies the feeds, picks the params' arrays, calls
  ``step`` and returns the outputs; ``new_arena()`` and ``load_params(path)``.

How a kernel becomes source (the ops keep their facts in ``graphc/ops``; this
module asks the Python objects, and tests no op by name):

- a kernel written as a ``lambda`` is inlined: its body, found in its file and
  checked to compile to the very bytecode Python runs, with the operands
  replaced by buffer names and the attributes by literals. ``lambda out, a, b:
  np.add(a, b, out=out)`` becomes ``np.add(b3, b4, b5)`` (a ufunc's ``out=`` passed
  positionally, which skips the parsing of a keyword, where NumPy takes it so without a
  warning: not ``np.maximum``'s); a closure's
  cells become what they hold (``ufunc`` → ``np.greater``). Views
  (``x.transpose(axes)``), the copies of views and the run-time operand checks
  are inlined the same way;
- a kernel written as a function is copied, with every function it calls
  (transitively), the module constants it reads, and stand-ins for graphc's
  exception classes; each copy is checked to compile to the bytecode Python
  runs, and to use nothing but NumPy, ``math`` and builtins (an import of
  anything else, a graphc module, a closure: :class:`~graphc.GraphError`
  naming the op and why). A kernel that imports something else only on a
  branch its attributes rule out is copied with that branch dropped
  (``gelu(approximate="tanh")``);
- :data:`STAND_INS` replaces a helper that calls SciPy by NumPy code that makes
  the same additions in the same order (scatter-add's sparse product), checked
  against the helper's source so that a change of the helper is an error here
  rather than a silent difference. ``erf`` and the exact ``gelu`` call
  ``scipy.special`` and have no such stand-in: their plans cannot be written.

The rules of :class:`~graphc.runtime.Executable` hold in ``run``: feeds are
checked (shape and dtype, no casting) and copied into slots of their own (the
runtime reads a C-contiguous feed in place where its plan writes no param in
place; only read, either way); the caller's arrays are never written except the params it passes, which are read
and updated in place as the program's stored params are (a param that is fed,
or whose array is not C-contiguous, is copied, and its update copied back at the
end); outputs are new arrays of each run, never views of the arena; the
operand checks (labels and indices in range) run where the runtime runs them,
raising the runtime's message; a run that fails after it wrote a param puts it
back; ``np.setbufsize`` is set as the runtime sets it, so reductions sum in the
same chunks. ``check_numerics`` programs get the runtime's NaN/Inf checks.

The runtime does not run this module, but it writes the same lines: on its first run an
:class:`~graphc.runtime.Executable` writes its instructions as one function, each ``lambda``
kernel inlined by this module's :meth:`_Module.call` (the objects it reads bound by name in the
function's globals rather than copied), any other kernel called by name. The module was
measured 1.15–1.22× faster than the runtime's former loop of ``functools.partial`` calls on
steps of tiny arrays (``benchmarks/codegen.py``, ``benchmarks/README.md``).

Arenas: ``run(..., arena=None)`` allocates an arena the first time and keeps it;
a passed arena (``new_arena()``, or any writable C-contiguous array of at least
``ARENA_BYTES`` bytes) is bound once and reused while the same array is passed
(another one rebinds). One run at a time per arena: threads pass arenas of their own.
"""

from __future__ import annotations

import ast
import base64
import builtins
import copy
import dataclasses
import functools
import hashlib
import importlib
import inspect
import keyword
import linecache
import math
import re
import symtable
import os
import textwrap
import types
import warnings
import weakref
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.memory.analysis import ALIGNMENT
from graphc.ops.core import lookup
from graphc.plan import BIND_VIEW, CONST, COPY, INPUT, OUTPUT, PARAM, SCRATCH, TEMP, Buffer, Instruction, Plan
from graphc.runtime import UFUNC_BUFFER_ELEMENTS, _source_derived_buffers, describe_instruction, instruction_line

SMALL_CONSTANT = 16
"""Constants of at most this many elements are written as literals; larger ones as base64 of their bytes."""

ALLOWED_IMPORTS = ("numpy", "math")
"""The modules (and their submodules) copied code may import or read."""

_NUMPY_HOMES = ("numpy", "numpy.lib.stride_tricks", "numpy.linalg", "numpy.fft", "numpy.random")
"""Public modules where a NumPy function a kernel calls by name is looked up (``sliding_window_view``)."""

_SIGNIFICANT_FLAGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR | inspect.CO_COROUTINE \
    | inspect.CO_ASYNC_GENERATOR


class CannotEmit(Exception):
    """Why a function cannot be written into a module that runs with NumPy alone."""


# --- literals ---------------------------------------------------------------------------------


def literal(value: Any) -> str:
    """Python source that evaluates to ``value`` exactly (floats by ``repr``, which reads back exactly).

    Numbers, strings, None, tuples, lists, dicts, slices, ``...``, NumPy scalars and dtypes,
    and small arrays; anything else raises :class:`CannotEmit`.
    """
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "-float('inf')"
        return repr(float(value))
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, slice):
        return f"slice({literal(value.start)}, {literal(value.stop)}, {literal(value.step)})"
    if isinstance(value, np.dtype):
        if value.fields is None and value == np.dtype(value.name):
            return f"np.dtype({value.name!r})"
        raise CannotEmit(f"the dtype {value} has no literal")
    if isinstance(value, np.generic):
        kind = type(value)
        if getattr(np, kind.__name__, None) is not kind or value.dtype.kind not in "biuf":
            raise CannotEmit(f"the NumPy scalar {value!r} has no literal")
        return f"np.{kind.__name__}({literal(value.item())})"
    if isinstance(value, np.ndarray) and value.size <= SMALL_CONSTANT and value.dtype.kind in "biuf":
        return f"np.array({literal(value.tolist())}, dtype={value.dtype.name!r})"
    raise CannotEmit(f"a {type(value).__name__} ({value!r:.40}) has no literal")


@functools.lru_cache(maxsize=4096)
def _expression(source: str) -> ast.expr:
    """The tree of an expression (shared: never change it; :class:`_Rename` copies what it inserts)."""
    return ast.parse(source, mode="eval").body


def _array_source(array: np.ndarray) -> str:
    """Source of a read-only array equal to ``array``: a literal when small, else ``_array(base64, dtype, shape)``."""
    if array.size <= SMALL_CONSTANT and array.dtype.kind in "biuf":
        return f"_readonly({literal(array)})"
    data = base64.b64encode(zlib.compress(np.ascontiguousarray(array).tobytes(), 9)).decode()
    lines = textwrap.wrap(data, 96) or [""]
    text = "\n".join(f"    {line!r}" for line in lines)
    return f"_array(\n{text},\n    {array.dtype.str!r}, {literal(tuple(array.shape))})"


# --- finding and checking the source of a function -------------------------------------------------


def _label(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


@functools.lru_cache(maxsize=64)
def _module_facts(filename: str, text: str) -> tuple[dict[int, list[ast.Lambda]], frozenset[str]]:
    """The file's lambdas by line, and the names its top level binds by ``import`` (the compiler reads them)."""
    tree = ast.parse(text, filename)
    lambdas: dict[int, list[ast.Lambda]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            lambdas.setdefault(node.lineno, []).append(node)
    imported: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:  # the top level, and the blocks of its if, try and with statements
        statement = pending.pop()
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in statement.names)
        elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for inner in getattr(statement, field, None) or ():
                    pending.extend(inner.body if isinstance(inner, ast.ExceptHandler) else [inner])
    return lambdas, frozenset(imported)


def _file_facts(code: types.CodeType) -> tuple[dict[int, list[ast.Lambda]], frozenset[str]]:
    lines = linecache.getlines(code.co_filename)
    if not lines:
        raise CannotEmit(f"its source ({code.co_filename}) is not available")
    try:
        return _module_facts(code.co_filename, "".join(lines))
    except SyntaxError as err:
        raise CannotEmit(f"its source file {code.co_filename} does not parse ({err})") from None


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Whether two code objects are the same bytecode over the same names and constants
    (positions, file names and the flags of nesting and __future__ aside)."""
    if (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars, a.co_argcount,
            a.co_posonlyargcount, a.co_kwonlyargcount, a.co_flags & _SIGNIFICANT_FLAGS) != \
            (b.co_code, b.co_names, b.co_varnames, b.co_freevars, b.co_cellvars, b.co_argcount,
             b.co_posonlyargcount, b.co_kwonlyargcount, b.co_flags & _SIGNIFICANT_FLAGS):
        return False
    if len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType) or isinstance(y, types.CodeType):
            if not (isinstance(x, types.CodeType) and isinstance(y, types.CodeType) and _same_code(x, y)):
                return False
        elif type(x) is not type(y) or repr(x) != repr(y):
            return False
    return True


def _compiled_alone(node: ast.stmt | ast.expr, imported: frozenset[str], freevars: Sequence[str]) -> types.CodeType:
    """The code object Python makes of ``node`` alone (a def, or a lambda inside a function that
    holds its free variables), compiled where the names its file imports are imported."""
    body: list[ast.stmt] = [ast.Import(names=[ast.alias(name=n)]) for n in sorted(imported)]
    if isinstance(node, ast.Lambda):
        holder = ast.FunctionDef(
            name="_holder", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=[ast.Assign(targets=[ast.Name(v, ast.Store())], value=ast.Constant(None)) for v in freevars]
            + [ast.Return(node)], decorator_list=[])
        body.append(holder)
    else:
        body.append(node)
    module = ast.fix_missing_locations(ast.Module(body=body, type_ignores=[]))
    code = compile(module, "<graphc.codegen>", "exec")
    inner = [c for c in code.co_consts if isinstance(c, types.CodeType)][-1]
    if isinstance(node, ast.Lambda):
        inner = [c for c in inner.co_consts if isinstance(c, types.CodeType)][-1]
    return inner


def _strip_annotations(tree: ast.AST) -> None:
    """Drop annotations (they name typing objects the module need not define; Python does not run them)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    for node in ast.walk(tree):
        for name, value in ast.iter_fields(node):
            if isinstance(value, list) and any(isinstance(s, ast.AnnAssign) for s in value):
                setattr(node, name, [_without_annotation(s) for s in value])


def _without_annotation(statement: ast.stmt) -> ast.stmt:
    if not isinstance(statement, ast.AnnAssign):
        return statement
    if statement.value is None:
        return ast.Pass()
    return ast.Assign(targets=[statement.target], value=statement.value, lineno=statement.lineno)


@dataclasses.dataclass(frozen=True)
class _Def:
    """A function's def, read once: its tree (annotations dropped; never changed: copy it to
    change it), that tree as source, the names it reads as globals and binds as locals, the
    modules it imports, and whether it declares a global or nonlocal name."""

    tree: ast.FunctionDef
    source: str
    globals: frozenset[str]
    locals: frozenset[str]
    imports: tuple[str, ...]
    declares: bool

    @classmethod
    def of(cls, tree: ast.FunctionDef) -> "_Def":
        globals_, locals_ = _names_in(tree)
        declares = any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(tree))
        return cls(tree, ast.unparse(tree), frozenset(globals_), frozenset(locals_), tuple(_imports_in(tree)), declares)


_DEFS: dict[types.CodeType, _Def] = {}
_LAMBDAS: dict[types.CodeType, str] = {}
"""The checked def or lambda of each code object met so far (a plan of thousands of instructions
uses a few dozen kernels)."""


def _function_def(fn: Any) -> _Def:
    """The def of ``fn`` (annotations dropped), checked to compile to the code Python runs."""
    if not isinstance(fn, types.FunctionType):
        raise CannotEmit(f"{fn!r:.60} is not a Python function")
    if fn.__closure__:
        raise CannotEmit(f"{_label(fn)} is a closure (it reads {', '.join(fn.__code__.co_freevars)} from the "
                         "function that made it)")
    found = _DEFS.get(fn.__code__)
    if found is None:
        found = _DEFS[fn.__code__] = _Def.of(_read_def(fn))
    return found


def _read_def(fn: types.FunctionType) -> ast.FunctionDef:
    _, imported = _file_facts(fn.__code__)
    try:
        lines, _ = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        raise CannotEmit(f"the source of {_label(fn)} is not available") from None
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:
        raise CannotEmit(f"the source of {_label(fn)} does not parse alone") from None
    fdef = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(fdef, ast.FunctionDef) or fdef.name != fn.__name__:
        raise CannotEmit(f"the source of {_label(fn)} is not one def")
    if fdef.decorator_list:
        raise CannotEmit(f"{_label(fn)} is decorated")
    _strip_annotations(fdef)
    if not _same_code(_compiled_alone(fdef, imported, ()), fn.__code__):
        raise CannotEmit(f"the source of {_label(fn)} in {fn.__code__.co_filename} is not the code Python runs "
                         "(was the file changed after it was imported?)")
    return fdef


def _lambda_tree(fn: types.FunctionType) -> ast.Lambda:
    """The lambda expression of ``fn`` in its file, checked to compile to the code Python runs."""
    code = fn.__code__
    if code not in _LAMBDAS:
        lambdas, imported = _file_facts(code)
        for node in lambdas.get(code.co_firstlineno, ()):
            if _same_code(_compiled_alone(copy.deepcopy(node), imported, code.co_freevars), code):
                _LAMBDAS[code] = ast.unparse(node)
                break
        else:
            raise CannotEmit(f"the lambda {_label(fn)} at {code.co_filename}:{code.co_firstlineno} is not found in "
                             "its source as Python runs it (was the file changed after it was imported?)")
    return ast.parse(_LAMBDAS[code], mode="eval").body  # type: ignore[return-value]


def _is_lambda(fn: Any) -> bool:
    return isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>"


def _has_inner_scope(node: ast.AST) -> bool:
    scopes = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr)
    return any(isinstance(n, scopes) for n in ast.walk(node))


def _names_in(fdef: ast.FunctionDef) -> tuple[set[str], set[str]]:
    """(names read as globals in some scope of the def or its defaults, names bound locally in some scope)."""
    source = ast.unparse(fdef)
    table = symtable.symtable(source, "<kernel>", "exec")
    globals_: set[str] = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    locals_: set[str] = set()
    pending = list(table.get_children())
    while pending:
        scope = pending.pop()
        pending.extend(scope.get_children())
        for s in scope.get_symbols():
            if s.is_global() and s.is_referenced():
                globals_.add(s.get_name())
            if s.is_local() or s.is_parameter():
                locals_.add(s.get_name())
    return globals_, locals_


def _imports_in(tree: ast.AST) -> list[str]:
    """The modules a def imports inside its body."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return found


def _allowed_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in ALLOWED_IMPORTS)


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: Mapping[str, ast.expr]) -> None:
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.mapping:
            return ast.copy_location(copy.deepcopy(self.mapping[node.id]), node)
        return node


# --- pruning a kernel's branches by its attributes ---------------------------------------------------


_CONSTANT_TESTS = (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.cmpop, ast.boolop,
                   ast.unaryop)


def _pruned(fdef: ast.FunctionDef, known: Mapping[str, Any]) -> tuple[ast.FunctionDef, dict[str, Any]]:
    """``fdef`` with each ``if`` whose test reads only parameters in ``known`` (never rebound in the
    def) and constants replaced by the branch those values take; and the parameters those tests read."""
    parameters = {a.arg for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs}
    rebound = {n.id for n in ast.walk(fdef) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    rebound |= {n.arg for inner in ast.walk(fdef) if inner is not fdef and isinstance(inner, (ast.FunctionDef, ast.Lambda))
                for n in ast.walk(inner.args) if isinstance(n, ast.arg)}
    fixed = {k: v for k, v in known.items() if k in parameters and k not in rebound}
    read: dict[str, Any] = {}

    def decide(test: ast.expr) -> bool | None:
        if not all(isinstance(n, _CONSTANT_TESTS) for n in ast.walk(test)):
            return None
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        if not names or not names <= fixed.keys():
            return None
        try:
            value = bool(eval(compile(ast.Expression(test), "<test>", "eval"), {"__builtins__": {}}, dict(fixed)))
        except Exception:  # a test that raises is left to run
            return None
        read.update((n, fixed[n]) for n in sorted(names))
        return value

    def statements(body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for statement in body:
            if isinstance(statement, ast.If):
                value = decide(statement.test)
                if value is not None:
                    out.extend(statements(statement.body if value else statement.orelse))
                    continue
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for name in ("body", "orelse", "finalbody"):
                    inner = getattr(statement, name, None)
                    if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                        setattr(statement, name, statements(inner) or [ast.Pass()])
            out.append(statement)
        return out

    pruned = copy.deepcopy(fdef)
    pruned.body = statements(pruned.body) or [ast.Pass()]
    return pruned, read


# --- NumPy stand-ins for helpers that call SciPy ---------------------------------------------------------


def _shape_of_def(fdef: ast.FunctionDef) -> str:
    """A digest of a def's code, its docstring, comments and annotations aside."""
    tree = copy.deepcopy(fdef)
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        tree.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


STAND_INS: dict[str, tuple[str, str]] = {
    "graphc.ops.indexing._scatter_rows": (
        "3b74bef4d52f1ac8",
        '''
def _scatter_rows(out, g, indices):
    """out[i] = Σ_{k: indices[k] = i} g[k] along axis 0, each row's terms added to zero in the order of k.

    graphc multiplies g by a 0/1 CSR matrix (SciPy), which adds for each row of out, from zero,
    1·g[k] for its columns k in increasing order (argsort is stable); np.add.at adds the same
    terms in the same order, and 1·g[k] is g[k]: the same numbers, with NumPy alone.
    """
    rows = out.shape[0]
    target = out.reshape(rows, -1)
    target[...] = 0
    np.add.at(target, indices.reshape(-1), g.reshape(indices.size, -1))
''',
    ),
}
"""Helpers that call SciPy, by qualified name: (digest of the helper's code this stand-in was
written for, the NumPy stand-in's source). A helper whose code no longer has that digest is
refused (the stand-in may no longer compute what it computes)."""


# --- the module being written ----------------------------------------------------------------------------


_LOCALS = {"arena", "step", "problem", "saved", "target", "value"}
"""The names ``_bind`` and ``step`` bind besides the buffers (``b12``) and scratch tuples (``s12``): code
inlined there must not mean a module-level name by them."""


class _Module:
    """The module-level definitions a plan's kernels need: imports, constants, copied functions."""

    def __init__(self) -> None:
        self.taken: set[str] = set(_reserved())
        self.imports: dict[str, str] = {}  # statement → None, in order
        self.definitions: list[str] = []
        self.names: dict[int, tuple[Any, str]] = {}  # id(object) → (object, its name in the module)
        self.specialised: dict[tuple[int, tuple], str] = {}
        self.stand_ins: list[str] = []  # qualified names replaced
        self.names[id(GraphError)] = (GraphError, "GraphError")

    def fresh(self, wanted: str) -> str:
        base = re.sub(r"\W", "_", wanted) or "f"
        base = base if base.isidentifier() and not re.fullmatch(r"[bs]\d+", base) else "_" + base
        name, k = base, 1
        while name in self.taken or re.fullmatch(r"[bs]\d+", name):
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def snapshot(self) -> tuple:
        return (set(self.taken), dict(self.imports), list(self.definitions), dict(self.names), dict(self.specialised),
                list(self.stand_ins))

    def restore(self, state: tuple) -> None:
        (self.taken, self.imports, self.definitions, self.names, self.specialised, self.stand_ins) = state

    # --- references to objects --------------------------------------------------------------------------

    def reference(self, obj: Any, hint: str) -> str:
        """A name (or ``np.x`` path) by which the module reaches ``obj``, defining it if need be."""
        if obj is np:
            return "np"
        if obj is math:
            return "math"
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith("numpy."):
                return self._import(f"import {obj.__name__} as {{}}", hint, obj)
            raise CannotEmit(f"it uses the module {obj.__name__}, which is not NumPy")
        known = self.names.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        home = _numpy_home(obj)
        if home is not None:
            module, attr = home
            return f"np.{attr}" if module == "numpy" else self._import(f"from {module} import {attr} as {{}}", attr, obj)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return self._stand_in_class(obj)
        if isinstance(obj, types.FunctionType):
            return self.function(obj)
        if getattr(obj, "__module__", "") and str(getattr(obj, "__module__", "")).startswith("numpy"):
            raise CannotEmit(f"it uses {obj!r:.60}, which NumPy does not export")
        try:
            value = _array_source(obj) if isinstance(obj, np.ndarray) else literal(obj)
        except CannotEmit:
            raise CannotEmit(f"it reads {hint} = {obj!r:.60}, which is neither NumPy, a function nor a constant") from None
        name = self.fresh(hint)
        self.definitions.append(f"{name} = {value}")
        self.names[id(obj)] = (obj, name)
        return name

    def _import(self, template: str, hint: str, obj: Any) -> str:
        known = self.names.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        name = self.fresh(hint)
        self.imports[template.format(name)] = None
        self.names[id(obj)] = (obj, name)
        return name

    def _stand_in_class(self, cls: type) -> str:
        base = next(b for b in cls.__mro__[1:] if b.__module__ == "builtins")
        name = self.fresh(cls.__name__)
        self.definitions.append(f"class {name}({base.__name__}):\n    \"\"\"{_label(cls)}, standing alone.\"\"\"")
        self.names[id(cls)] = (cls, name)
        return name

    # --- copied functions -------------------------------------------------------------------------------

    def function(self, fn: types.FunctionType, known: Mapping[str, Any] | None = None) -> str:
        """The name of ``fn``'s copy in the module (made with its dependencies on first use).

        ``known`` (a kernel's attributes): if the copy fails, a copy with the branches those
        attributes rule out dropped is tried.
        """
        found = self.names.get(id(fn))
        if found is not None and found[0] is fn:
            return found[1]
        state = self.snapshot()
        try:
            return self._copy(fn, None)
        except CannotEmit as first:
            self.restore(state)
            if not known:
                raise
            try:
                return self._copy(fn, known)
            except CannotEmit:
                self.restore(state)
                raise first from None

    def _copy(self, fn: types.FunctionType, known: Mapping[str, Any] | None) -> str:
        qualified = _label(fn)
        if qualified in STAND_INS:
            return self._stand_in(fn, qualified)
        definition = _function_def(fn)
        hint, key = fn.__name__, None
        if known is not None:
            tree, decided = _pruned(definition.tree, known)
            if not decided:
                raise CannotEmit(f"{qualified}: no branch depends on its attributes alone")
            key = (id(fn), tuple(decided.items()))
            if key in self.specialised:
                return self.specialised[key]
            definition = _Def.of(tree)
            hint = fn.__name__ + "".join(f"_{re.sub(r'[^0-9A-Za-z]+', '_', f'{k}_{v}')}" for k, v in decided.items())
        for module in definition.imports:
            if not _allowed_module(module):
                raise CannotEmit(f"{qualified} imports {module}")
        if definition.declares:
            raise CannotEmit(f"{qualified} declares a global or nonlocal name")
        name = self.fresh(hint)
        if key is None:
            self.names[id(fn)] = (fn, name)  # before its dependencies: a function may call itself
        else:
            self.specialised[key] = name
        mapping: dict[str, ast.expr] = {}
        if name != fn.__name__:
            mapping[fn.__name__] = ast.Name(name, ast.Load())
        for ref in sorted(definition.globals - {fn.__name__}):
            if ref in fn.__globals__:
                target = self.reference(fn.__globals__[ref], ref)
            elif hasattr(builtins, ref):
                continue
            else:
                raise CannotEmit(f"{qualified} reads {ref!r}, which its module does not define")
            if target != ref:
                mapping[ref] = _expression(target)
        if not mapping:
            source = definition.source
        else:
            clashes = sorted(set(mapping) & definition.locals)
            if clashes:
                raise CannotEmit(f"{qualified} uses {clashes[0]!r} both as a global and as a local name")
            tree = _Rename(mapping).visit(ast.parse(definition.source).body[0])
            tree.name = name
            source = ast.unparse(ast.fix_missing_locations(tree))
        if key is not None:
            settled = ", ".join(f"{k}={v!r}" for k, v in decided.items())
            source = f"# {qualified} for {settled}: the branches other values take are dropped\n{source}"
        self.definitions.append(source)
        return name

    def _stand_in(self, fn: types.FunctionType, qualified: str) -> str:
        digest, source = STAND_INS[qualified]
        actual = _shape_of_def(_function_def(fn).tree)
        if actual != digest:
            raise CannotEmit(f"graphc.codegen's NumPy stand-in for {qualified} was written for another version of it "
                             f"(digest {digest}, now {actual}); check that it still computes the same and update STAND_INS")
        fdef = ast.parse(textwrap.dedent(source)).body[0]
        assert isinstance(fdef, ast.FunctionDef)
        name = self.fresh(fn.__name__)
        self.names[id(fn)] = (fn, name)
        fdef.name = name
        self.definitions.append(ast.unparse(fdef))
        self.stand_ins.append(qualified)
        return name

    # --- calls ------------------------------------------------------------------------------------------

    def call(self, fn: Any, args: Sequence[str], kwargs: Mapping[str, Any]) -> str:
        """Source of ``fn(*args, **kwargs)``: a lambda's body inlined, else a call of the copied function.

        ``args`` are source text (buffer names); ``kwargs`` values are Python values (attributes,
        written as literals) or :class:`Source` text.
        """
        args = [Source(a) for a in args]
        if _is_lambda(fn):
            return self._inline(fn, args, kwargs)
        if not isinstance(fn, types.FunctionType):
            raise CannotEmit(f"{fn!r:.60} is not a Python function")
        plain = {k: v for k, v in kwargs.items() if not isinstance(v, Source)}
        return self._call_text(self.function(fn, plain), args, kwargs)

    def _call_text(self, name: str, args: Sequence[str], kwargs: Mapping[str, Any]) -> str:
        parts = list(args)
        odd = {}
        for key, value in kwargs.items():
            text = _text(value)
            if key.isidentifier() and not keyword.iskeyword(key):
                parts.append(f"{key}={text}")
            else:
                odd[key] = text
        if odd:
            parts.append("**{" + ", ".join(f"{k!r}: {v}" for k, v in odd.items()) + "}")
        return f"{name}({', '.join(parts)})"

    def _inline(self, fn: types.FunctionType, args: Sequence[str], kwargs: Mapping[str, Any]) -> str:
        template = _template(fn, bool(args) and args[0].isidentifier())
        try:
            bound = template.signature.bind(*args, **kwargs)
        except TypeError as err:
            raise CannotEmit(f"{_label(fn)} cannot take these operands and attributes ({err})") from None
        bound.apply_defaults()
        values: dict[str, str] = {}
        for name, value in bound.arguments.items():
            kind = template.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                items = [_text(v) for v in value]
                values[name] = "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            elif kind is inspect.Parameter.VAR_KEYWORD:
                values[name] = "{" + ", ".join(f"{k!r}: {_text(v)}" for k, v in value.items()) + "}"
            else:
                values[name] = _text(value)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            values[name] = self.reference(cell.cell_contents, name)
        for ref in template.names:
            if ref in values:
                continue
            if ref in fn.__globals__:
                values[ref] = self.reference(fn.__globals__[ref], ref)
            elif hasattr(builtins, ref):
                values[ref] = ref
            else:
                raise CannotEmit(f"{_label(fn)} reads {ref!r}, which its module does not define")

        def substitute(match: re.Match) -> str:
            text = values[template.names[int(match.group(1))]]
            follows = template.text[match.end():match.end() + 3]
            if follows[:1] in (".", "[", "(") or follows == " **":
                return text if _is_atom(text) else f"({text})"
            return text

        return _SENTINEL.sub(substitute, template.text)


class Source(str):
    """Source text passed where a kernel takes an attribute (a scratch tuple's name), not a literal."""


def _text(value: Any) -> str:
    return value if isinstance(value, Source) else literal(value)


_SENTINEL = re.compile(r"__graphc_(\d+)__")
_ATOM = re.compile(r"[A-Za-z_][\w.]*(\(.*\))?", re.S)


def _is_atom(text: str) -> bool:
    """Whether ``text`` may stand before ``.``, ``[``, ``(`` or ``**`` unparenthesised: a name, a
    call, a string or a bracketed literal (a negative number or an int may not: ``-1 ** 2``, ``1.real``)."""
    return bool(_ATOM.fullmatch(text)) or text[:1] in "([{'\""


@dataclasses.dataclass(frozen=True)
class _Template:
    """A lambda's body as source, each name it reads replaced by ``__graphc_<k>__``."""

    text: str
    names: tuple[str, ...]
    signature: inspect.Signature


_TEMPLATES: dict[tuple[types.CodeType, tuple[bool, ...]], _Template] = {}


def _template(fn: types.FunctionType, positional_out: bool = False) -> _Template:
    """The template of ``fn``'s body. With ``positional_out`` (the lambda's first operand is an
    array, as a kernel's ``out`` is), each call of a ufunc of one output that passes that
    operand as ``out=`` passes it positionally instead (see :func:`_positional_out`)."""
    flags = _positional_out(fn) if positional_out else ()
    key = (fn.__code__, flags)
    found = _TEMPLATES.get(key)
    if found is None:
        node = _lambda_tree(fn)
        if _has_inner_scope(node.body):
            raise CannotEmit(f"the lambda {_label(fn)} has an inner scope (a comprehension, lambda or :=); "
                             "write it as a def, which is copied")
        for call, flag in zip(_calls(node), flags):
            if flag:
                call.args.append(call.keywords.pop().value)
        names = sorted({n.id for n in ast.walk(node.body) if isinstance(n, ast.Name)})
        mapping = {name: ast.Name(f"__graphc_{k}__", ast.Load()) for k, name in enumerate(names)}
        text = ast.unparse(_Rename(mapping).visit(node.body))
        found = _TEMPLATES[key] = _Template(text, tuple(names), inspect.signature(fn))
    return found


def _calls(node: ast.Lambda) -> list[ast.Call]:
    return [n for n in ast.walk(node.body) if isinstance(n, ast.Call)]


_POSITIONAL_OUT: "weakref.WeakKeyDictionary[types.FunctionType, tuple[bool, ...]]" = weakref.WeakKeyDictionary()


def _positional_out(fn: types.FunctionType) -> tuple[bool, ...]:
    """For each call in ``fn``'s body (in :func:`_calls` order), whether it may pass ``out`` positionally.

    ``np.add(a, b, out=out)`` is ``np.add(a, b, out)``: a ufunc takes its output array after its
    inputs, and the positional form skips the parsing of a keyword (a tenth of a call on small
    arrays). A call qualifies when its callee, a name or a chain of attributes read from the
    lambda's globals or closure, is a ufunc of one output taking as many inputs as the call
    passes positionally (no ``*``), and its only keyword is ``out=`` the lambda's first
    parameter (a kernel's ``out``: an array). Found once per function (its closure may hold
    another ufunc than another closure of the same code)."""
    found = _POSITIONAL_OUT.get(fn)
    if found is None:
        node = _lambda_tree(fn)
        params = node.args.posonlyargs + node.args.args
        first = params[0].arg if params else None
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        flags = []
        for call in _calls(node):
            keywords = call.keywords
            qualifies = (first is not None and len(keywords) == 1 and keywords[0].arg == "out"
                         and isinstance(keywords[0].value, ast.Name) and keywords[0].value.id == first
                         and not any(isinstance(a, ast.Starred) for a in call.args))
            callee = _resolve(call.func, fn, cells) if qualifies else None
            flags.append(isinstance(callee, np.ufunc) and callee.nout == 1 and callee.nin == len(call.args)
                         and _takes_positional_out(callee))
        found = _POSITIONAL_OUT[fn] = tuple(flags)
    return found


@functools.lru_cache(maxsize=None)
def _takes_positional_out(ufunc: np.ufunc) -> bool:
    """Whether ``ufunc`` takes its output array positionally as it does by keyword, without a
    warning: tried once on arrays of one element (NumPy 2.4 deprecates it for ``np.maximum`` and
    ``np.minimum``, whose third positional argument people took for a third input)."""
    signature = next((t for t in ufunc.types if "O" not in t), None)
    if signature is None:
        return False
    ins, outs = signature.split("->")
    core = re.findall(r"\(([^)]*)\)", ufunc.signature or "")
    shapes = [tuple(1 for d in group.split(",") if d.strip()) for group in core] or [()] * (len(ins) + len(outs))
    if len(shapes) != len(ins) + len(outs):
        return False
    operands = [np.ones(shape, np.dtype(char)) for shape, char in zip(shapes, ins)]
    out = np.zeros(shapes[-1], np.dtype(outs[0]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ufunc(*operands, out=out)
            return ufunc(*operands, out) is out
    except Exception:  # noqa: BLE001 - any refusal or warning: keep the keyword
        return False


def _resolve(expr: ast.expr, fn: types.FunctionType, cells: Mapping[str, Any]) -> Any:
    """The object a name or a chain of attributes (``np.add``) means in ``fn``, or None: nothing is called."""
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, fn, cells)
        return None if base is None else getattr(base, expr.attr, None)
    if not isinstance(expr, ast.Name):
        return None
    if expr.id in fn.__code__.co_varnames:  # a parameter or local: known at run time only
        return None
    if expr.id in cells:
        try:
            return cells[expr.id].cell_contents
        except ValueError:  # an empty cell
            return None
    if expr.id in fn.__globals__:
        return fn.__globals__[expr.id]
    return getattr(builtins, expr.id, None)


def _numpy_home(obj: Any) -> tuple[str, str] | None:
    """(public NumPy module, name) where ``obj`` is found, for NumPy's own functions, ufuncs and types."""
    module = getattr(obj, "__module__", None)
    if not (isinstance(obj, np.ufunc) or (isinstance(module, str) and module.split(".")[0] == "numpy")):
        return None
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        return None
    for home in _NUMPY_HOMES:
        if getattr(importlib.import_module(home), name, None) is obj:
            return home, name
    return None


# --- the plan ----------------------------------------------------------------------------------------------


def _var(index: int) -> str:
    return f"b{index}"


class _PlanWriter:
    """Writes ``_bind`` and its ``step`` for one plan."""

    def __init__(self, plan: Plan, module: _Module, check_numerics: bool) -> None:
        self.plan = plan
        self.module = module
        self.check_numerics = check_numerics
        buffers = plan.buffers
        self.static = {b.id for b in buffers if b.kind in (TEMP, SCRATCH, INPUT, CONST)}
        for ins in plan.instructions:
            if ins.mode == BIND_VIEW and all(a in self.static for a in ins.args):
                self.static.add(ins.out)
        self.from_sources = _source_derived_buffers(plan)
        self.params = plan.buffers_of(PARAM)
        self.written = set(plan.updated_params)

    def emit(self, index: int, what: Callable[[], list[str]]) -> list[str]:
        """``what()``, the lines of instruction ``index``; a GraphError naming it if it cannot be written."""
        try:
            return what()
        except CannotEmit as err:
            raise GraphError(
                f"to_source: {describe_instruction(self.plan, index)} cannot be written as NumPy code: {err}"
            ) from None

    def view(self, ins: Instruction) -> str:
        prim = lookup(ins.op)
        return self.module.call(prim.kernel, [_var(a) for a in ins.args], ins.attrs)

    def kernel_lines(self, ins: Instruction) -> list[str]:
        prim = lookup(ins.op)
        out, args = _var(ins.out), [_var(a) for a in ins.args]
        if ins.mode == COPY:
            if prim.copy_kernel is not None:
                return [self.module.call(prim.copy_kernel, [out, *args], ins.attrs)]
            return [f"np.copyto({_var(ins.out)}, {self.view(ins)})"]
        if prim.kernel is None:
            raise CannotEmit("the op has no kernel")
        attrs: dict[str, Any] = dict(ins.attrs)
        if ins.scratch:
            attrs = {"scratch": Source(f"s{ins.out}"), **attrs}
        return [self.module.call(prim.kernel, [out, *args], attrs)]

    def check_lines(self, index: int, ins: Instruction) -> list[str]:
        prim = lookup(ins.op)
        problem = self.module.call(prim.check_operands, [_var(a) for a in ins.args], ins.attrs)
        return [f"problem = {problem}",
                "if problem is not None:",
                f"    raise GraphError({describe_instruction(self.plan, index) + ': '!r} + problem)"]

    def numerics_lines(self, index: int, ins: Instruction) -> list[str]:
        out = self.plan.buffers[ins.out]
        if np.dtype(out.dtype).kind != "f":
            return []
        inputs = [(f"%{a} {self.plan.buffers[a].name} {self.plan.buffers[a].shape}", _var(a))
                  for a in ins.args if a in self.from_sources]
        listed = "(" + "".join(f"({label!r}, {var}), " for label, var in inputs) + ")"
        return [f"if not np.isfinite({_var(ins.out)}).all():",
                f"    raise _nonfinite({describe_instruction(self.plan, index)!r}, {_var(ins.out)}, {listed})"]

    def source(self) -> str:
        plan = self.plan
        bind: list[str] = []
        for b in plan.buffers:
            if b.kind in (TEMP, SCRATCH):
                bind.append(f"{_var(b.id)} = arena[{b.offset}:{b.offset + b.nbytes}].view({b.dtype!r})"
                            f".reshape({literal(b.shape)})  # %{b.id} {b.name}")
            elif b.kind == INPUT:
                bind.append(f"{_var(b.id)} = np.empty({literal(b.shape)}, {b.dtype!r})  # input {b.name!r}")
        early: list[str] = []  # operand checks of feeds, params and constants: before anything is written
        in_place_checks = False
        body: list[str] = []
        for index, ins in enumerate(plan.instructions):
            prim = lookup(ins.op)
            comment = f"# {instruction_line(plan, index)}"
            if ins.mode == BIND_VIEW:
                line = self.emit(index, lambda: [f"{_var(ins.out)} = {self.view(ins)}"])
                (bind if ins.out in self.static else body).extend([comment, *line])
                continue
            if ins.scratch:
                bind.append(f"s{ins.out} = ({', '.join(_var(s) for s in ins.scratch)},)  # scratch of %{ins.out}")
            lines = [comment]
            if prim.check_operands is not None:
                check = self.emit(index, lambda: self.check_lines(index, ins))
                examined = [a for k, a in enumerate(ins.args) if k in prim.int_operands] or ins.args
                if all(a in self.from_sources for a in examined):
                    early.extend([f"# operands of {instruction_line(plan, index)}", *check])
                else:  # a computed operand: checked just before the kernel, as the runtime does
                    lines.extend(check)
                    in_place_checks = True
            lines.extend(self.emit(index, lambda: self.kernel_lines(ins)))
            if self.check_numerics:
                lines.extend(self.numerics_lines(index, ins))
            body.extend(lines)
        guard = bool(self.written) and (self.check_numerics or in_place_checks)
        outputs = [f"{_var(b.id)} = np.empty({literal(b.shape)}, {b.dtype!r})  # output {b.name!r}"
                   for b in plan.buffers_of(OUTPUT)]
        result = "[" + ", ".join(_var(o) for o in plan.outputs) + "]"
        step: list[str] = [*early, *outputs]
        if guard:
            written = [_var(p.id) for p in self.params if p.name in self.written]
            step.append(f"saved = [(p, p.copy()) for p in ({', '.join(written)},)]  # put back if the run fails")
            step.append("try:")
            step.extend("    " + line for line in body)
            step.extend(["except BaseException:",
                         "    for target, value in saved:",
                         "        np.copyto(target, value)",
                         "    raise"])
        else:
            step.extend(body)
        step.append(f"return {result}")
        slots = "{" + ", ".join(f"{b.name!r}: {_var(b.id)}" for b in plan.buffers_of(INPUT)) + "}"
        arguments = ", ".join(_var(p.id) for p in self.params)
        lines = ['def _bind(arena):',
                 '    """The arena\'s views at the planned offsets, the feed slots, and the views bound once on them;',
                 '    returns the slots (by input name) and step, the plan, which computes the outputs."""']
        lines.extend("    " + line for line in bind)
        lines.append("")
        lines.append(f"    def step({arguments}):")
        lines.append('        """One run: the params\' arrays in, in the order of PARAMS; the outputs, new arrays, out."""')
        lines.extend("        " + line for line in step)
        lines.append("")
        lines.append(f"    return {slots}, step")
        return "\n".join(lines)


# --- the whole module ------------------------------------------------------------------------------------------

_RUNNER = '''
class GraphError(ValueError):
    """A feed, param or arena that the plan cannot take, or an operand check that failed."""


def _readonly(array):
    array.flags.writeable = False
    return array


def _array(data, dtype, shape):
    """A read-only array from its bytes, zlib-compressed and base64-encoded."""
    return np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=dtype).reshape(shape)


def new_arena():
    """An arena for run(): ARENA_BYTES bytes, 64-byte aligned as graphc's runtime allocates it."""
    raw = np.empty(ARENA_BYTES + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + ARENA_BYTES]


_own = []  # the arena run() allocated for itself, and its binding
_last = []  # the arena passed last, and its binding


def _binding(arena):
    if arena is None:
        if not _own:
            own = new_arena()
            _own[:] = [own, _bind(own)]
        return _own[1]
    if _last and _last[0] is arena:
        return _last[1]
    if not (isinstance(arena, np.ndarray) and arena.flags.c_contiguous and arena.flags.writeable
            and arena.nbytes >= ARENA_BYTES):
        raise GraphError(f"arena: expected a writable C-contiguous NumPy array of at least {ARENA_BYTES:,d} bytes "
                         f"(new_arena() makes one), got {type(arena).__name__} "
                         f"{getattr(arena, 'shape', '')} {getattr(arena, 'dtype', '')}")
    binding = _bind(arena.reshape(-1).view(np.uint8))
    _last[:] = [arena, binding]
    return binding


_PARAM_SPECS = [(name, shape, np.dtype(dtype), name in UPDATED) for name, (shape, dtype) in PARAMS.items()]


def _checked_feed(name, kind, shape, dtype, value):
    what = f"feed {name!r} (the graph's {kind} of shape {shape} {dtype})"
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise GraphError(f"{what} cannot be made an array ({exc}); feed a rectangular NumPy array") from None
    if array.shape != shape:
        raise GraphError(f"{what} has shape {array.shape}; feed an array of shape {shape}")
    if array.dtype != np.dtype(dtype):
        raise GraphError(f"{what} has dtype {array.dtype.name}; convert it with np.asarray(value, dtype=np.{dtype})")
    return array


def _checked_param(name, shape, dtype, value, written):
    if not isinstance(value, np.ndarray):
        raise GraphError(f"param {name!r}: the value in params is a {type(value).__name__}, not a NumPy array "
                         f"of shape {shape} {dtype}")
    if value.shape != shape or value.dtype != np.dtype(dtype):
        raise GraphError(f"param {name!r}: the array in params is {value.shape} {value.dtype.name}, but the plan's "
                         f"param is {shape} {dtype}")
    if written and not value.flags.writeable:
        raise GraphError(f"param {name!r}: the run updates it, but its array is read-only; make it writable "
                         "(array.flags.writeable = True) (no param was written)")
    return value


def run(feeds, params, arena=None):
    """One run of the plan: the outputs (new arrays, as the program's run returns them).

    feeds: input (and optionally param) name -> array, checked and copied; params: param name
    -> its array, read and updated in place (a param that is fed is read from the feed for
    this run, and its update, if any, written into params[name]); arena: None (an arena the
    module keeps) or an array of at least ARENA_BYTES bytes, bound on first use.
    """
    feeds = {} if feeds is None else feeds
    params = {} if params is None else params
    if not hasattr(feeds, "keys") or not hasattr(params, "keys"):
        raise GraphError("feeds and params must be mappings of names to arrays, like {'x': X}")
    unknown = sorted(str(k) for k in feeds if k not in FEEDABLE)
    if unknown:
        raise GraphError(f"feed {', '.join(map(repr, unknown))} names no input or param of the graph; "
                         f"inputs and params: {', '.join(sorted(FEEDABLE))}")
    slots, step = _binding(arena)
    arrays = []
    copies = []  # (slot, value) to fill
    write_back = []  # (the caller's param, the array the run updates) for params not read in place
    for name, shape, dtype, written in _PARAM_SPECS:
        stored = params.get(name)
        if (type(stored) is np.ndarray and stored.shape == shape and stored.dtype == dtype and name not in feeds
                and stored.flags.c_contiguous and (not written or stored.flags.writeable)):
            arrays.append(stored)  # the common case: read (and updated) in place
            continue
        if stored is not None or written:
            if stored is None:
                raise GraphError(f"param {name!r} ({shape} {dtype}) is updated by the run: give its array in params")
            stored = _checked_param(name, shape, dtype, stored, written)
        if name in feeds:
            value = _checked_feed(name, "param", shape, dtype, feeds[name])
        elif stored is None:
            raise GraphError(f"param {name!r} ({shape} {dtype}) is needed: give its array in params (or feed it)")
        else:
            value = stored  # not C-contiguous: copied in, and back if updated
        slot = np.empty(shape, dtype)
        copies.append((slot, value))
        arrays.append(slot)
        if written:
            write_back.append((stored, slot))
    for name, (shape, dtype) in INPUTS.items():
        if name not in feeds:
            raise GraphError(f"input {name!r} ({shape} {dtype}) is needed but was not fed")
        copies.append((slots[name], _checked_feed(name, "input", shape, dtype, feeds[name])))
    bufsize = np.setbufsize(UFUNC_BUFFER_ELEMENTS)
    try:
        for slot, value in copies:
            np.copyto(slot, value)
        outputs = step(*arrays)
        for target, slot in write_back:
            np.copyto(target, slot)
    finally:
        np.setbufsize(bufsize)
    return outputs[0] if SINGLE else outputs


def load_params(path=None):
    """The params in an .npz of arrays by name, as writable arrays; by default the one graphc export
    wrote beside this module (its file name with the suffix .npz)."""
    if path is None:
        here = globals().get("__file__")
        if here is None:
            raise GraphError("load_params: this module has no file (it was exec'd); give the .npz's path")
        path = here[:-len(".py")] + ".npz" if here.endswith(".py") else here + ".npz"
    with np.load(path, allow_pickle=False) as saved:
        return {name: np.array(saved[name]) for name in saved.files}
'''

_NUMERICS = '''

def _nonfinite(description, out, inputs):
    """check_numerics: the error naming the instruction that produced a NaN or Inf, and its non-finite inputs."""
    what = "NaN" if np.isnan(out).any() else "Inf"
    bad = [label for label, x in inputs if x.dtype.kind == "f" and not np.isfinite(x).all()]
    cause = (f"non-finite input {', '.join(bad)}" if bad
             else "its inputs were all finite: the op itself overflowed or met an undefined case (0/0, log 0, ...)")
    return GraphError(f"check_numerics: {description} produced {what}; {cause}")
'''


@functools.lru_cache(maxsize=1)
def _reserved() -> frozenset[str]:
    """Names copied code may not take: builtins, keywords, what the module's fixed parts define, and the locals."""
    fixed = {"np", "math", "base64", "zlib", "NAME", "ARENA_BYTES", "ALIGNMENT", "UFUNC_BUFFER_ELEMENTS", "INPUTS",
             "PARAMS", "UPDATED", "FEEDABLE", "SINGLE", "_bind"}
    for part in (_RUNNER, _NUMERICS):
        for node in ast.parse(part).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                fixed.add(node.name)
            elif isinstance(node, ast.Assign):
                fixed.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(dir(builtins)) | frozenset(keyword.kwlist) | fixed | _LOCALS


def program_source(plan: Plan, *, single: bool = False, feedable: frozenset[str] | None = None,
                   check_numerics: bool = False) -> str:
    """The source of a module whose ``run(feeds, params, arena=None)`` runs ``plan`` with NumPy alone.

    ``single``: ``run`` returns the one output array rather than a list (as a program of one
    Value does); ``feedable``: the names a feed may have (default: the plan's inputs and
    params); ``check_numerics``: check every result for NaN and Inf as the runtime does. A
    kernel that cannot be written with NumPy alone is a GraphError naming the instruction and
    its op (see the module's docstring).
    """
    module = _Module()
    writer = _PlanWriter(plan, module, check_numerics)
    plan_code = writer.source()
    feedable = frozenset(plan.inputs) | frozenset(plan.params) if feedable is None else frozenset(feedable)
    inputs = {b.name: (b.shape, b.dtype) for b in plan.buffers_of(INPUT)}
    params = {b.name: (b.shape, b.dtype) for b in plan.buffers_of(PARAM)}
    constants = [f"{_var(b.id)} = {_array_source(plan.constants[b.id])}  # %{b.id} {b.name}"
                 for b in plan.buffers_of(CONST)]
    counts = f"{len(plan.instructions)} instructions over {len(plan.buffers)} buffers, arena {plan.arena_bytes:,d} B"
    stand_ins = "".join(f"\n{name} is replaced by NumPy code that computes the same numbers (graphc.codegen.STAND_INS)."
                        for name in module.stand_ins)
    header = f'''"""Plan {plan.name!r} as straight-line NumPy code: {counts}.

Written by graphc (graphc.codegen); it imports NumPy, never graphc:

    import {_module_hint(plan.name)} as step
    outputs = step.run(feeds, params)      # feeds: name -> array; params: name -> array, updated in place

run(feeds, params, arena=None) returns what the program's run returns, bit for bit, and
updates the arrays in params as the program updates its stored params ({', '.join(map(repr, plan.updated_params)) or 'none here'}).
Feeds are checked and copied; outputs are new arrays of each run; the arena's views are made once
per arena (arena=None: one the module allocates and keeps). One run at a time per arena.{stand_ins}
"""'''
    imports = ["import base64", "import math", "import zlib", "", "import numpy as np", *module.imports]
    facts = [
        f"NAME = {plan.name!r}",
        f"ARENA_BYTES = {plan.arena_bytes}",
        f"ALIGNMENT = {ALIGNMENT}",
        f"UFUNC_BUFFER_ELEMENTS = {UFUNC_BUFFER_ELEMENTS}  # np.setbufsize during a run, as graphc's runtime sets it",
        f"INPUTS = {_table(inputs)}",
        f"PARAMS = {_table(params)}",
        f"UPDATED = {_listing(tuple(plan.updated_params))}",
        f"FEEDABLE = frozenset({_listing(sorted(feedable))})",
        f"SINGLE = {single!r}",
    ]
    parts = [header, "\n".join(imports), "\n".join(facts), _RUNNER.strip("\n")]
    if check_numerics:
        parts.append(_NUMERICS.strip("\n"))
    if constants:
        parts.append("# --- constants (read-only) ---\n" + "\n".join(constants))
    if module.definitions:
        parts.append("# --- kernels and their helpers, copied from graphc (NumPy only) ---\n\n"
                     + "\n\n\n".join(module.definitions))
    parts.append("# --- the plan ---\n\n" + plan_code)
    return "\n\n\n".join(parts) + "\n"


def write_module(program: Any, path: str | os.PathLike) -> list[Path]:
    """Write ``program.to_source()`` to ``path``, and the arrays of the params it reads (its
    ``params`` and ``state``) beside it as ``path`` with the suffix ``.npz`` (a plain NumPy
    archive: ``np.load`` reads it, and so does the module's ``load_params()``); return the
    files written. What ``graphc export FILE.py:FUNC -o step.py`` does."""
    path = Path(path)
    source = program.to_source()
    arrays = {**program.params, **program.state}
    path.write_text(source, encoding="utf-8")
    written = [path]
    if arrays:
        params_path = path.with_suffix(".npz")
        with zipfile.ZipFile(params_path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():  # as np.savez writes them, whatever the names (np.savez's own
                with archive.open(name + ".npy", "w", force_zip64=True) as member:  # keywords included)
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        written.append(params_path)
    return written


def _listing(items: Sequence[str]) -> str:
    """A tuple or list of strings as a literal, one item a line when one line would be long."""
    text = literal(items)
    if len(text) <= 100:
        return text
    opening, closing = ("(", ")") if isinstance(items, tuple) else ("[", "]")
    return opening + "\n" + "".join(f"    {item!r},\n" for item in items) + closing


def _table(entries: Mapping[str, tuple[tuple[int, ...], str]]) -> str:
    if not entries:
        return "{}"
    return "{\n" + "".join(f"    {name!r}: ({literal(shape)}, {dtype!r}),\n" for name, (shape, dtype) in entries.items()) + "}"


def _module_hint(name: str) -> str:
    hint = re.sub(r"\W", "_", name)
    return hint if hint.isidentifier() and not keyword.iskeyword(hint) else "step"
