"""The ```python blocks of README.md and docs/*.md run, so the docs cannot rot.

Each document runs in a fresh interpreter: its blocks are executed in order in one
namespace, compiled under the document's path and line numbers, so a traceback
points into the Markdown file. A fresh interpreter also keeps the ops a document
defines with ``gc.defop`` out of the op registry the other tests see.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "custom_ops.md", ROOT / "docs" / "ops.md"]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# Runs in the subprocess: argv[1] is the document's path; stdin holds [[line, code], ...]
# and then code to run after the blocks, in their namespace (checks of what they built).
_RUNNER = """
import json, sys
path = sys.argv[1]
job = json.load(sys.stdin)
namespace = {"__name__": "__doc_example__"}
for line, code in job["blocks"]:
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
exec(compile(job["after"], "<checks of " + path + ">", "exec"), namespace)
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line of code, code)`` of each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def run_document(path: Path, cwd: Path, after: str = "") -> subprocess.CompletedProcess:
    job = json.dumps({"blocks": python_blocks(path), "after": after})
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, str(path)],
        input=job, cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def test_blocks_are_found():
    blocks = python_blocks(ROOT / "docs" / "custom_ops.md")
    assert len(blocks) >= 3
    line, code = blocks[0]
    lines = (ROOT / "docs" / "custom_ops.md").read_text(encoding="utf-8").splitlines()
    assert lines[line - 2].startswith("```python") and lines[line - 1] == code.splitlines()[0]


# After README's example: its numbers against NumPy by hand.
_README_CHECKS = """
import numpy as np
W1, W2 = w1.value.astype(np.float64), w2.value.astype(np.float64)
X64 = X.astype(np.float64)
h1 = np.tanh(X64 @ W1)
h2 = 1 / (1 + np.exp(-((X64 + h1) @ W2)))
h3 = (h1 * h2) @ W1
assert np.isclose(loss_v, np.sum(h3 * h3), rtol=1e-5)
assert dw1_v.shape == (4, 4) and dw2_v.shape == (4, 4)
"""

# After docs/custom_ops.md: the gradients of both custom ops against central
# differences computed here, element by element, in float64 (independently of gc.gradcheck).
_CUSTOM_OPS_CHECKS = """
import numpy as np

def fd_check(op, attrs):
    with gc.Graph("fd") as fd:
        xi = gc.input("x", shape=(3, 4), dtype="float64")
        wi = gc.param("w", shape=(4, 2), dtype="float64")
        y = gc.sum(op(xi @ wi, **attrs) * (xi @ wi))          # the op's input read twice
    loss_of = gc.compile(y)
    dw = gc.compile(gc.grad(y, wi)).run({"x": xv})
    base, eps = wi.value, 1e-6
    numeric = np.zeros_like(base)
    for i in np.ndindex(base.shape):
        step = np.zeros_like(base)
        step[i] = eps
        numeric[i] = (loss_of.run({"x": xv, "w": base + step}) - loss_of.run({"x": xv, "w": base - step})) / (2 * eps)
    np.testing.assert_allclose(dw, numeric, rtol=1e-6, atol=1e-8)

xv = np.random.default_rng(1).standard_normal((3, 4))
fd_check(softplus, {})
fd_check(smooth_leaky, {"alpha": 0.1})
"""

# After docs/ops.md: the CNN learns its batch and its plan holds the im2col scratch; the
# lookup's gradient against NumPy's scatter of the same cotangents; the batch-norm step's
# running statistics moved as torch moves them.
_OPS_CHECKS = """
import numpy as np
T, E = np.array([[1, 2, 2, 0, 3], [0, 9, 9, 4, 0]]), np.arange(40.0).reshape(10, 4)
H = E[T]
dH = np.zeros_like(H)
dH[:, -1] += 2 * H[:, -1]
dH[:, 0, ::2] += 2.0
expected = np.zeros_like(E)
np.add.at(expected, T, dH)
expected[0] = 0
assert np.isclose(loss_v, np.sum(H[:, -1] ** 2) + 2 * np.sum(H[:, 0, ::2]))
np.testing.assert_allclose(d_v, expected)
assert losses[-1] < 0.8 * losses[0], losses
assert any(b.kind == "scratch" for b in prog.plan.buffers)
with gc.Graph("same-init"):
    w0 = gc.param("w", (8, 4)).value  # the initial value: seeded by the name
h = X.astype(np.float64) @ w0.astype(np.float64)
np.testing.assert_allclose(step.state["bn.running_mean"], 0.1 * h.mean(axis=0), rtol=1e-4, atol=1e-6)
np.testing.assert_allclose(step.state["bn.running_var"], 0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=1e-4)
"""


@pytest.mark.parametrize(
    "path, after",
    [pytest.param(DOCS[0], _README_CHECKS, id="README.md"), pytest.param(DOCS[1], _CUSTOM_OPS_CHECKS, id="custom_ops.md"),
     pytest.param(DOCS[2], _OPS_CHECKS, id="ops.md")],
)
def test_document_runs(path, after, tmp_path):
    assert python_blocks(path), f"{path.name} has no ```python blocks"
    run = run_document(path, tmp_path, after)
    assert run.returncode == 0, f"{path.relative_to(ROOT)} failed:\n{run.stderr}"


def test_custom_ops_doc_prints_what_it_says(tmp_path):
    run = run_document(DOCS[1], tmp_path)
    assert run.returncode == 0, run.stderr
    # the error message quoted in a comment of the doc is the one graphc prints
    assert "mylib.smooth_leaky: alpha must be in [0, 1), got 1.5; operands: 'x' (8, 3) float64" in run.stdout
    assert "mylib.softplus" in run.stdout  # the plan listing shows the custom instruction


def test_every_markdown_document_is_checked():
    documents = {ROOT / "README.md", *(ROOT / "docs").rglob("*.md")}
    with_code = {p for p in documents if python_blocks(p)}
    assert with_code <= set(DOCS), f"add to DOCS: {sorted(str(p) for p in with_code - set(DOCS))}"


_LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_links_resolve():
    """Relative links of README.md name files of the repo (pictures may be generated later)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for bang, target in _LINK.findall(text):
        if bang or "://" in target or target.startswith("#"):
            continue
        assert (ROOT / target.split("#")[0]).exists(), f"README.md links to a missing {target}"
