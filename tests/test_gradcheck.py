"""gc.gradcheck: passes on correct graphs, fails loudly (name, element, values) on wrong VJPs."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.autodiff
from graphc.gradcheck import ElementMismatch, GradcheckError, GradcheckReport

# --- custom ops with deliberately wrong VJPs (defined once: the registry is global) ---

BAD_INDEX = (1, 2)


def _spike(shape: tuple[int, ...]) -> np.ndarray:
    """1.0 at BAD_INDEX (or the last element when the shape is smaller), 0.0 elsewhere."""
    mask = np.zeros(shape)
    index = BAD_INDEX if len(shape) == 2 and shape[0] > 1 and shape[1] > 2 else np.unravel_index(mask.size - 1, shape)
    mask[index] = 1.0
    return mask


def _square_kernel(out, x):
    np.multiply(x, x, out=out)


def _same(x):
    return x


# y = x², J^T g = 2xg — except one element of the gradient, off by g there.
square_bad_element = gc.defop(
    "gradcheck_test_square_bad_element",
    infer=_same,
    kernel=_square_kernel,
    vjp=[lambda g, y, x: 2.0 * g * x + g * _spike(x.shape)],
    elementwise=True,
)
# y = x², J^T g = xg: the factor 2 forgotten, everywhere.
square_half = gc.defop(
    "gradcheck_test_square_half",
    infer=_same,
    kernel=_square_kernel,
    vjp=[lambda g, y, x: g * x],
    elementwise=True,
)
# y = x², J^T g = 2xg·(1 + 1e-4): wrong by one part in 10⁴ — an honest tolerance sees it.
square_slightly_off = gc.defop(
    "gradcheck_test_square_slightly_off",
    infer=_same,
    kernel=_square_kernel,
    vjp=[lambda g, y, x: g * x * (2.0 * (1 + 1e-4))],
    elementwise=True,
)
# y = x², J^T g = 2|x|g: right where x > 0 only, so what gradcheck evaluates at matters.
square_right_if_positive = gc.defop(
    "gradcheck_test_square_right_if_positive",
    infer=_same,
    kernel=_square_kernel,
    vjp=[lambda g, y, x: 2.0 * g * gc.sqrt(x * x)],
    elementwise=True,
)
# y = x², J^T g = 2xg: correct, through the same custom-op machinery.
square = gc.defop(
    "gradcheck_test_square",
    infer=_same,
    kernel=_square_kernel,
    vjp=[lambda g, y, x: 2.0 * g * x],
    elementwise=True,
)


def seed_dag(dtype: str = "float32"):
    """DESIGN.md's lecture graph: w1 shared by two φ, x read twice."""
    with gc.Graph("seed") as g:
        x = gc.input("x", shape=(5, 4), dtype=dtype)
        w1 = gc.param("w1", shape=(4, 4), dtype=dtype)
        w2 = gc.param("w2", shape=(4, 4), dtype=dtype)
        x1 = gc.tanh(x @ w1)
        x2 = gc.sigmoid((x + x1) @ w2)
        x3 = (x1 * x2) @ w1
        loss = gc.sum(x3 * x3)
    X = np.random.default_rng(1).standard_normal((5, 4)).astype(dtype)
    return g, loss, (x, w1, w2), {"x": X}


# --- passing -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_passes_on_the_seed_graph(dtype: str) -> None:
    g, loss, (x, w1, w2), feeds = seed_dag(dtype)
    report = gc.gradcheck(loss, [x, w1, w2], feeds)
    assert isinstance(report, GradcheckReport)
    assert list(report.max_rel_error) == ["x", "w1", "w2"]
    assert all(0 <= e < 1e-6 for e in report.max_rel_error.values())
    assert all(e > 0 for e in report.max_abs_error.values())  # measured, not skipped
    assert report.graph_dtype == dtype
    assert "w1" in str(report)


def test_float32_graph_is_checked_in_float64_and_left_untouched() -> None:
    g, loss, (x, w1, w2), feeds = seed_dag("float32")
    nodes, inputs, params = list(g.nodes), dict(g.inputs), dict(g.params)
    stored = w1.value
    gc.gradcheck(loss, [w1], feeds)
    assert g.nodes == nodes and g.inputs == inputs and g.params == params
    assert w1.dtype == np.float32 and np.array_equal(w1.value, stored)


def test_passes_for_a_non_scalar_y_and_a_correct_custom_op(rng) -> None:
    with gc.Graph("vec") as g:
        x = gc.input("x", shape=(3, 4), dtype="float64")
        w = gc.param("w", shape=(4,), dtype="float64", init=np.array([0.5, -1.0, 2.0, 0.3]))
        y = square(gc.tanh(x * w)) @ w  # shape (3,): a random cotangent is used
    report = gc.gradcheck(y, [x, w], {"x": rng.standard_normal((3, 4))})
    assert max(report.max_rel_error.values()) < 1e-6


def test_int_labels_stay_ints_and_one_hot_follows_to_float64(rng) -> None:
    with gc.Graph("cls") as g:
        x = gc.input("x", shape=(6, 3))
        labels = gc.input("labels", shape=(6,), dtype="int32")
        w = gc.param("w", shape=(3, 4))
        logits = x @ w
        loss = gc.softmax_cross_entropy(logits, labels) + gc.sum(gc.one_hot(labels, 4) * logits)
    feeds = {"x": rng.standard_normal((6, 3)).astype(np.float32), "labels": np.array([0, 3, 1, 2, 3, 0], np.int32)}
    report = gc.gradcheck(loss, [x, w], feeds)
    assert max(report.max_rel_error.values()) < 1e-6


def test_a_wrt_that_y_does_not_reach_has_zero_error() -> None:
    with gc.Graph("unused") as g:
        x = gc.input("x", shape=(3,), dtype="float64")
        w = gc.param("w", shape=(2,), dtype="float64", init=1.0)
        loss = gc.sum(x * x)
    report = gc.gradcheck(loss, [x, w], {"x": np.array([1.0, -2.0, 0.5])})
    assert report.max_rel_error["w"] == 0.0 and report.max_abs_error["w"] == 0.0


def test_second_derivatives_through_the_adjoint_graph() -> None:
    """The gradient is a graph too: check its own VJP (Hessian-vector products)."""
    g, loss, (x, w1, w2), feeds = seed_dag("float64")
    dw1, dw2 = gc.grad(loss, [w1, w2])
    report = gc.gradcheck(dw1, [w1, w2], feeds)
    assert max(report.max_rel_error.values()) < 1e-6


# --- which values it checks at ---------------------------------------------------------


def test_uses_the_stored_param_value_unless_fed() -> None:
    with gc.Graph("where") as g:
        w = gc.param("w", shape=(2, 3), dtype="float64", init=np.full((2, 3), 0.7))
        loss = gc.sum(square_right_if_positive(w))
    gc.gradcheck(loss, [w], {})  # stored value is positive: the rule is right there
    with pytest.raises(GradcheckError, match=r"'w'"):
        gc.gradcheck(loss, [w], {"w": np.full((2, 3), -0.7)})


# --- failing -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_wrong_element_is_named_with_its_index(dtype: str, rng) -> None:
    with gc.Graph("bad") as g:
        x = gc.input("x", shape=(3, 4), dtype=dtype)
        w = gc.param("w", shape=(3, 4), dtype=dtype, init=lambda s, d, r: r.uniform(0.5, 1.5, s).astype(d))
        loss = gc.sum(square_bad_element(w) * x)
    X = rng.uniform(1.0, 2.0, (3, 4)).astype(dtype)
    with pytest.raises(GradcheckError) as info:
        gc.gradcheck(loss, [x, w], {"x": X})
    text = str(info.value)
    assert "'w'" in text and "w[1, 2]" in text and "relative error" in text
    assert "'x'" not in text.splitlines()[0].split("failed for")[1]  # x's gradient is right
    (m,) = info.value.failures
    assert isinstance(m, ElementMismatch) and m.name == "w" and m.index == BAD_INDEX
    # ∂loss/∂w = 2·w·x; the wrong rule adds g = x at (1, 2).
    right = 2 * float(w.value[BAD_INDEX]) * float(X[BAD_INDEX])
    np.testing.assert_allclose(m.numeric, right, rtol=1e-6)
    np.testing.assert_allclose(m.analytic, right + float(X[BAD_INDEX]), rtol=1e-6)
    assert m.rel_error > 0.1
    assert f"{m.analytic:.9g}" in text and f"{m.numeric:.9g}" in text
    assert isinstance(info.value, AssertionError)


def test_a_missing_factor_on_a_scalar_param() -> None:
    with gc.Graph("half") as g:
        s = gc.param("s", shape=(), dtype="float64", init=1.5)
        loss = square_half(s) * 3.0
    assert s.value.shape == ()  # regression: np.ascontiguousarray stored scalar params as shape (1,)
    with pytest.raises(GradcheckError, match=r"'s'.*s\[\(\)\].*analytic 4\.5, numeric 9\b") as info:
        gc.gradcheck(loss, [s], {})
    assert info.value.failures[0].index == ()
    np.testing.assert_allclose(info.value.failures[0].rel_error, 0.5, rtol=1e-6)


def test_one_part_in_ten_thousand_is_caught() -> None:
    with gc.Graph("off") as g:
        w = gc.param("w", shape=(4, 3), dtype="float64", init=lambda s, d, r: r.uniform(-2, 2, s))
        loss = gc.sum(square_slightly_off(w))
    with pytest.raises(GradcheckError, match=r"relative error 0\.0001"):
        gc.gradcheck(loss, [w], {})


def test_a_missing_sum_over_consumers_blames_the_shared_param(monkeypatch) -> None:
    """micrograd's first bug: the last contribution overwrites the others instead of adding."""
    g, loss, (x, w1, w2), feeds = seed_dag("float64")
    gc.gradcheck(loss, [w1], feeds)
    monkeypatch.setattr(graphc.autodiff, "_accumulate", lambda node, pending: pending[-1])
    with pytest.raises(GradcheckError, match=r"'w1'"):
        gc.gradcheck(loss, [w1], feeds)


def test_large_params_are_sampled_up_to_the_cap() -> None:
    with gc.Graph("big") as g:
        w = gc.param("w", shape=(40, 30), dtype="float64", init=lambda s, d, r: r.uniform(0.5, 1.5, s))
        loss = gc.sum(square_half(w))
    with pytest.raises(GradcheckError, match="a sample of 50 of 1200 elements") as info:
        gc.gradcheck(loss, [w], {}, max_elements=50)
    np.testing.assert_allclose(info.value.failures[0].rel_error, 0.5, rtol=1e-6)


# --- bad arguments ----------------------------------------------------------------------


def test_bad_arguments_raise_graph_error() -> None:
    g, loss, (x, w1, w2), feeds = seed_dag("float32")
    hidden = next(n for n in g.nodes if n.op_name == "tanh")
    with pytest.raises(gc.GraphError, match="must be a float input or param"):
        gc.gradcheck(loss, [gc.Value(hidden)], feeds)
    with pytest.raises(gc.GraphError, match="'x'.*not fed"):
        gc.gradcheck(loss, [w1], {})
    with pytest.raises(gc.GraphError, match="'nope' names no input or param"):
        gc.gradcheck(loss, [w1], {**feeds, "nope": np.zeros(3)})
    with pytest.raises(gc.GraphError, match="dtype float64, expected float32"):
        gc.gradcheck(loss, [w1], {"x": feeds["x"].astype(np.float64)})
    with pytest.raises(gc.GraphError, match="shape"):
        gc.gradcheck(loss, [w1], {"x": feeds["x"][:2]})
    with pytest.raises(gc.GraphError, match="listed twice"):
        gc.gradcheck(loss, [w1, w1], feeds)
    with gc.Graph("other"):
        stranger = gc.param("s", shape=(2,))
    with pytest.raises(gc.GraphError, match="belongs to graph 'other'"):
        gc.gradcheck(loss, [stranger], feeds)
