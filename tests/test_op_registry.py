"""One export list, and every op exported, documented and tested; op facts stay in graphc/ops/.

The registry is the truth: each op module of ``graphc/ops/`` lists its public ops in
``__all__``, graphc re-exports them as ``gc.<name>``, ``docs/ops.md`` has a line for
each, and each has a finite-difference test. A failure says what to add where.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import graphc as gc
from graphc import ops
from graphc.ops import registered

ROOT = Path(__file__).resolve().parents[1]
OPS_DOC = ROOT / "docs" / "ops.md"
INTERNAL_HEADING = "## Internal primitives"
SOURCES = {"input", "param", "constant"}  # nodes of their own kind: no op to differentiate
COMPILE_TIME = {"fused"}  # made by compile's passes after the gradient: no VJP to check (tests/test_fusion.py)


def builtin_ops() -> dict[str, gc.Primitive]:
    """The registered ops graphc defines itself (ops that tests define with gc.defop are left out)."""
    return {name: prim for name, prim in registered().items() if prim.trusted}


def documented_ops(text: str) -> tuple[set[str], set[str]]:
    """The ops with a line ``- `name(...)` ...`` in docs/ops.md: (public ones, internal ones)."""
    public_text, _, internal_text = text.partition(INTERNAL_HEADING)
    line = re.compile(r"^- `([A-Za-z_][A-Za-z0-9_]*)\(", re.MULTILINE)
    return set(line.findall(public_text)), set(line.findall(internal_text))


def gradchecked_ops() -> set[str]:
    """Op names with a finite-difference test: a case of tests/test_ops.py (every case is
    gradchecked), or a name used in a tests/test_ops_*.py file that calls gradcheck."""
    import test_ops  # tests/ is on sys.path, as for every test module

    names = {c.op for c in test_ops.CASES}
    candidates = set(builtin_ops()) | set(ops.PUBLIC_OPS)
    for path in sorted((ROOT / "tests").glob("test_ops_*.py")):
        text = path.read_text(encoding="utf-8")
        if "gradcheck(" in text:
            names |= {name for name in candidates if re.search(rf"\b{re.escape(name)}\b", text)}
    return names


def test_every_op_module_lists_its_public_ops():
    missing = [m for m in ops.OP_MODULES if not isinstance(getattr(importlib.import_module(f"graphc.ops.{m}"), "__all__", None), list)]
    assert not missing, (
        f"graphc/ops/{missing[0]}.py has no __all__: list its public ops there "
        "(__all__ = [\"conv2d\", ...]) so that graphc exports them as gc.<name>"
    )


def test_the_package_exports_exactly_the_op_modules_public_ops():
    listed = [name for m in ops.OP_MODULES for name in importlib.import_module(f"graphc.ops.{m}").__all__]
    assert list(ops.PUBLIC_OPS) == listed
    for name in listed:
        assert getattr(gc, name) is getattr(ops, name), f"gc.{name} is not graphc.ops.{name}"
        assert name in gc.__all__


def test_every_registered_op_is_exported_or_a_documented_internal_primitive():
    public, internal = documented_ops(OPS_DOC.read_text(encoding="utf-8"))
    for name, prim in sorted(builtin_ops().items()):
        module = prim.infer.__module__
        if name in internal:
            assert not hasattr(gc, name), f"{name} is exported as gc.{name}: move its line in docs/ops.md out of '{INTERNAL_HEADING}'"
            continue
        assert name in ops.PUBLIC_OPS, (
            f"op {name!r} ({module.replace('.', '/')}.py) is registered but not exported: add {name!r} to __all__ in "
            f"{module.replace('.', '/')}.py (the function that builds it must be named {name}), or, if gc.grad alone "
            f"builds it, list it under '{INTERNAL_HEADING}' in docs/ops.md"
        )


def test_every_op_is_documented():
    public, internal = documented_ops(OPS_DOC.read_text(encoding="utf-8"))
    for name in sorted(set(ops.PUBLIC_OPS) | set(builtin_ops())):
        assert name in public | internal, (
            f"op {name!r} has no line in docs/ops.md: add '- `{name}(arguments)` — what it computes. J^T: ...' "
            "to the section of its family"
        )
    unknown = (public | internal) - set(ops.PUBLIC_OPS) - set(builtin_ops())
    assert not unknown, f"docs/ops.md documents ops graphc does not have: {sorted(unknown)}"


def test_every_op_has_a_finite_difference_test():
    tested = gradchecked_ops()
    for name in sorted((set(ops.PUBLIC_OPS) | set(builtin_ops())) - SOURCES - COMPILE_TIME):
        assert name in tested, (
            f"op {name!r} has no finite-difference test: add case(\"{name}\", lambda m, x: m.{name}(x, ...), A(...)) "
            "and a fan-out case (label=\"fanout\") to tests/test_ops.py, or a test calling gc.gradcheck on "
            f"gc.{name} in tests/test_ops_<family>.py"
        )


def test_the_docs_parser_finds_public_and_internal_lines():
    text = "## Maths\n\n- `tanh(x)` — tanh.\n- not an op line\n\n" + INTERNAL_HEADING + "\n\n- `div_by_count(x, dims)` — x / n.\n"
    assert documented_ops(text) == ({"tanh"}, {"div_by_count"})


def test_the_coverage_check_can_fail(monkeypatch):
    """An op that is registered but neither exported, documented nor tested is reported."""
    prim = gc.defop("registry_check_op", infer=lambda x: x, kernel=lambda out, x: None, replace=True)
    monkeypatch.setattr(prim, "trusted", True)  # as if it were one of graphc's own ops
    with pytest.raises(AssertionError, match=r"'registry_check_op'.*not exported: add 'registry_check_op' to __all__"):
        test_every_registered_op_is_exported_or_a_documented_internal_primitive()
    with pytest.raises(AssertionError, match=r"'registry_check_op' has no line in docs/ops.md"):
        test_every_op_is_documented()
    with pytest.raises(AssertionError, match=r"'registry_check_op' has no finite-difference test"):
        test_every_op_has_a_finite_difference_test()


# --- op facts stay in graphc/ops/ ------------------------------------------------------------

_NAME_TEST = re.compile(r"""(\bop\.name|\bop_name|\.op\b|\bins\.op)\s*(==|!=|\bin\b|\bnot in\b)\s*[("{\[']""")


def test_no_module_outside_graphc_ops_tests_an_op_name():
    """Pipeline stages ask the Primitive for facts (view, fold_of, index_bound...); they never
    compare an op's name, so a new op needs nothing outside its ops file."""
    found = []
    for path in sorted((ROOT / "graphc").rglob("*.py")):
        if "ops" in path.relative_to(ROOT / "graphc").parts[:1]:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _NAME_TEST.search(line) or re.search(r"""\blookup\(["']""", line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, (
        "these lines test an op by its name; make the fact a field of Primitive (graphc/ops/core.py), set it "
        "in the op's definition and ask node.op for it:\n" + "\n".join(found)
    )


def test_the_name_test_finds_a_comparison():
    assert _NAME_TEST.search('if node.op.name == "reshape":')
    assert _NAME_TEST.search("step = f(x) if ins.op == 'reshape' else g(x)")
    assert _NAME_TEST.search('if node.op_name in ("input", "param"):')
    assert not _NAME_TEST.search('if node.kind == "param":')
