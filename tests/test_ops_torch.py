"""The elementwise ops, comparisons and moments against PyTorch on the same float64 inputs.

Each case computes ``y = f(*xs)`` in graphc and in torch, and the VJP of a fixed
cotangent for every float operand; values and gradients must agree to a few ulps.
The inputs hold the edge cases where conventions differ between libraries: abs
and clip at their kinks (torch's gradient is 0 at |0| and 1 on a bound), ties of
minimum (split in half), softplus above its threshold, logsumexp of large
values, var with ddof=1. graphc's argument names are torch.nn.functional's where
it has the op (gelu's ``approximate``, softplus's ``beta`` and ``threshold``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch")
F = torch.nn.functional

KINKS = np.array([-2.0, -0.5, -1e-300, 0.0, 0.25, 0.5, 1.0, 3.0])  # clip's bounds are -0.5 and 0.5
LARGE = np.array([[1e4, 1e4 + 1.0, -3.0], [700.0, 710.0, 705.0], [-1e4, -1e4, -1e4]])
ROWS = np.array([[1e3 + 1, 1e3, 1e3 - 1.5, 1e3 + 0.5], [0.5, -2.0, 3.0, 0.0], [1e-3, 2e-3, -1e-3, 4e-3]])
MATRIX = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
WIDE = np.concatenate([np.linspace(-30.0, 30.0, 13), [-6.5, 6.5, 0.0]])

# (id, graphc fn, torch fn, float64 inputs)
CASES: list[tuple[str, Callable[..., Any], Callable[..., Any], list[np.ndarray]]] = [
    ("abs-kinks", gc.abs, torch.abs, [KINKS]),
    ("sign-kinks", gc.sign, torch.sign, [KINKS]),
    ("clip-kinks", lambda x: gc.clip(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5), [KINKS]),
    ("clip-min-only", lambda x: gc.clip(x, a_min=0.25), lambda x: torch.clamp(x, min=0.25), [KINKS]),
    ("minimum-ties", gc.minimum, torch.minimum, [KINKS, np.array([0.0, -0.5, 1.0, 0.0, 0.25, 2.0, 1.0, -4.0])]),
    ("where", lambda c, a, b: gc.where(c > 0, a, b), lambda c, a, b: torch.where(c > 0, a, b),
     [KINKS, MATRIX[0, :1] * np.ones(8), np.arange(8.0)]),
    ("where-broadcast", lambda c, a, b: gc.where(c > 0, a, b), lambda c, a, b: torch.where(c > 0, a, b),
     [MATRIX[:, :1], MATRIX[0], MATRIX]),
    ("less", lambda a, b: a < b, torch.lt, [KINKS, np.zeros(8)]),
    ("less_equal", lambda a, b: a <= b, torch.le, [KINKS, np.zeros(8)]),
    ("greater", lambda a, b: a > b, torch.gt, [KINKS, np.zeros(8)]),
    ("greater_equal", lambda a, b: a >= b, torch.ge, [KINKS, np.zeros(8)]),
    ("equal", lambda a, b: a == b, torch.eq, [KINKS, np.zeros(8)]),
    ("not_equal", lambda a, b: a != b, torch.ne, [KINKS, np.zeros(8)]),
    ("erf", gc.erf, torch.erf, [WIDE]),
    ("gelu-none", gc.gelu, F.gelu, [WIDE]),
    ("gelu-tanh", lambda x: gc.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), [WIDE]),
    ("softplus", gc.softplus, F.softplus, [WIDE]),
    ("softplus-beta-threshold", lambda x: gc.softplus(x, beta=2.0, threshold=5.0),
     lambda x: F.softplus(x, beta=2.0, threshold=5.0), [WIDE]),
    ("logsumexp-large", lambda x: gc.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, dim=1), [LARGE]),
    ("logsumexp-all-keepdims", lambda x: gc.logsumexp(x, axis=(0, 1), keepdims=True),
     lambda x: torch.logsumexp(x, dim=(0, 1), keepdim=True), [MATRIX]),
    ("var-ddof0", lambda x: gc.var(x, axis=1), lambda x: torch.var(x, dim=1, correction=0), [ROWS]),
    ("var-ddof1", lambda x: gc.var(x, axis=1, ddof=1), lambda x: torch.var(x, dim=1, correction=1), [ROWS]),
    ("var-all-keepdims", lambda x: gc.var(x, axis=None, keepdims=True, ddof=1),
     lambda x: torch.var(x, dim=(0, 1), correction=1, keepdim=True), [MATRIX]),
    ("std-ddof1", lambda x: gc.std(x, axis=0, ddof=1), lambda x: torch.std(x, dim=0, correction=1), [ROWS]),
    ("std-ddof0", lambda x: gc.std(x), lambda x: torch.std(x, correction=0), [MATRIX]),
]

# torch computes gelu as ½x(1 + erf(x/√2)), which cancels to 0 below x = -6, and its tanh form as
# ½x(1 + tanh u), which cancels below x ≈ -3: an absolute error of 1e-16 where graphc keeps the relative
# digits (erfc, and x·σ(2u) = x / (1 + e^(-2u)); tests/test_numerics.py checks them against exact values).
ABSOLUTE_TOLERANCE = {"gelu-none": 1e-15, "gelu-tanh": 1e-15}


def _graphc_value_and_grads(fn: Callable[..., Any], arrays: list[np.ndarray], cotangent: np.ndarray | None):
    with gc.Graph("torch-comparison"):
        xs = [gc.input(f"x{i}", a.shape, "float64") for i, a in enumerate(arrays)]
        y = fn(*xs)
        seed = None if cotangent is None else gc.input("cotangent", y.shape, "float64")
        grads = gc.grad(y, xs, seed=seed)
    feeds = {f"x{i}": a for i, a in enumerate(arrays)}
    if cotangent is not None:
        feeds["cotangent"] = cotangent
    value, *grad_values = gc.compile([y, *grads]).run(feeds)
    return value, grad_values


def _torch_value_and_grads(fn: Callable[..., Any], arrays: list[np.ndarray], cotangent: np.ndarray | None):
    xs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = fn(*xs)
    if not y.requires_grad:  # a comparison: no gradient in torch, zero by structure in graphc
        return y.double().detach().numpy(), [np.zeros_like(a) for a in arrays]
    y.backward(torch.ones(()) if cotangent is None else torch.tensor(cotangent))
    return y.detach().numpy(), [np.zeros_like(a) if x.grad is None else x.grad.numpy() for x, a in zip(xs, arrays)]


@pytest.mark.parametrize("case_id, graphc_fn, torch_fn, arrays", CASES, ids=[c[0] for c in CASES])
def test_value_and_gradient_match_torch(case_id, graphc_fn, torch_fn, arrays) -> None:
    with torch.no_grad():
        shape = tuple(torch_fn(*[torch.tensor(a) for a in arrays]).shape)
    cotangent = None if shape == () else np.random.default_rng(5).uniform(0.5, 1.5, size=shape)
    value, grads = _graphc_value_and_grads(graphc_fn, arrays, cotangent)
    ref_value, ref_grads = _torch_value_and_grads(torch_fn, arrays, cotangent)
    atol = ABSOLUTE_TOLERANCE.get(case_id, 1e-300)
    np.testing.assert_allclose(value, ref_value, rtol=1e-13, atol=atol, err_msg=f"{case_id}: value")
    for i, (got, ref) in enumerate(zip(grads, ref_grads)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=atol, err_msg=f"{case_id}: gradient of x{i}")


def test_kink_conventions_are_torchs() -> None:
    """The numbers themselves: |x|' = 0 at 0; clip passes g on its bounds; minimum splits a tie."""
    _, (d_abs,) = _graphc_value_and_grads(lambda x: gc.sum(gc.abs(x)), [np.array([-1.0, 0.0, 2.0])], None)
    _, (d_clip,) = _graphc_value_and_grads(lambda x: gc.sum(gc.clip(x, -0.5, 0.5)),
                                           [np.array([-0.5, 0.5, 0.6, -0.7])], None)
    _, (d_a, d_b) = _graphc_value_and_grads(lambda a, b: gc.sum(gc.minimum(a, b)),
                                            [np.array([1.0, 2.0]), np.array([1.0, 0.0])], None)
    np.testing.assert_array_equal(d_abs, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(d_clip, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(d_a, [0.5, 0.0])
    np.testing.assert_array_equal(d_b, [0.5, 1.0])

