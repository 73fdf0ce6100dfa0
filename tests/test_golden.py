"""Golden plan listings: ``str(prog.plan)`` of each zoo graph's training step, at small sizes.

A listing shows the whole result of compiling: the passes, the schedule, the
placement in the arena and the recompute. Any change to it is a change in what
graphc emits; when it is intended, regenerate the files and review them as a diff::

    pytest tests/test_golden.py --update-golden
    git diff tests/golden/
"""

import difflib
from pathlib import Path
from typing import Any, Callable

import pytest

import graphc as gc
from graphc import zoo

GOLDEN_DIR = Path(__file__).parent / "golden"

# name: (the zoo builder at a small size, compile options)
CASES: dict[str, tuple[Callable[[], tuple[gc.Graph, dict[str, Any]]], dict[str, Any]]] = {
    "seed": (zoo.ZOO["seed"], {}),
    "mlp": (lambda: zoo.mlp(4, sizes=(6, 8, 3)), {}),
    "chain": (lambda: zoo.chain(6, width=4, batch=2), {}),
    "chain-sqrt": (lambda: zoo.chain(9, width=4, batch=2), {"remat": "sqrt"}),
    "chain-revolve": (lambda: zoo.chain(9, width=4, batch=2), {"remat": "revolve"}),
    "residual": (lambda: zoo.residual_mlp(depth=3, width=4, batch=2, classes=3), {}),
    "unet": (lambda: zoo.unet(depth=2, width=2, length=8, batch=1), {}),
    "attention": (lambda: zoo.attention(seq=4, dim=4), {}),
    "attention-2h": (lambda: zoo.attention(seq=4, dim=8, heads=2), {}),
    "random": (lambda: zoo.random_dag(24, width=4, batch=2), {}),
}


def listing(name: str) -> str:
    """The plan listing of the training step ``[ℓ, ∂ℓ/∂params…]`` of case ``name``."""
    build, options = CASES[name]
    _, values = build()
    prog = gc.compile(zoo.training_outputs(values), **options)
    return str(prog.plan) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_listing_matches_golden(name, update_golden):
    path = GOLDEN_DIR / f"{name}.txt"
    got = listing(name)
    if update_golden:
        path.write_text(got, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no golden listing {path}; create it with `pytest tests/test_golden.py --update-golden`")
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True),
            fromfile=f"golden/{name}.txt", tofile=f"{name} as compiled now",
        ))
        pytest.fail(
            f"the plan listing of {name!r} changed; if intended, run "
            f"`pytest tests/test_golden.py --update-golden` and review `git diff tests/golden/`:\n{diff}",
            pytrace=False,
        )


def test_every_golden_file_has_a_case():
    """A stale file (a case renamed or removed) would never be checked again."""
    files = {p.stem for p in GOLDEN_DIR.glob("*.txt")}
    assert files <= set(CASES), f"golden files without a case: {sorted(files - set(CASES))}"
