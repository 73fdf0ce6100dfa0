"""Elementwise ops with NumPy broadcasting, and the n-ary sum of gradient terms.

A binary op's VJP first forms the product at the broadcast shape, then sums it
back to the operand's shape (:func:`unbroadcast`): the Jacobian of a broadcast
is a copy, and the transpose of a copy is a sum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.ir import FLOAT_DTYPES, Aval, Value, is_int
from graphc.ops import reduce as R
from graphc.ops import shape as S
from graphc.ops.core import (
    ZERO, Apply, Primitive, ShapeError, Term, as_dtype, bind, broadcast_shapes, same_float_dtype,
)

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sign",
    "erf", "maximum", "minimum", "clip", "where", "less", "less_equal", "greater", "greater_equal", "equal",
    "not_equal", "add_n", "astype", "copy",
]


def unbroadcast(g: Value, shape: tuple[int, ...]) -> Value:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    stretched = tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    summed = R.sum(g, axis=tuple(range(lead)) + stretched)
    return summed if summed.shape == shape else S.reshape(summed, shape)


def _unary_aval(x: Aval) -> Aval:
    same_float_dtype(x)
    return x


def _binary_aval(a: Aval, b: Aval) -> Aval:
    return Aval(broadcast_shapes(a.shape, b.shape), same_float_dtype(a, b))


def _unary(name: str, kernel: Any, vjp: Any, flops_per_element: int = 1, doc: str = "",
           simplify: Any = None, fused: str | None = None) -> Primitive:
    return Primitive(
        name,
        infer=_unary_aval,
        kernel=kernel,
        vjp=[vjp],
        flops=lambda ins, out: flops_per_element * out.size,
        elementwise=True,
        doc=doc,
        simplify=simplify,
        fused_expr=fused,
    )


def _binary(name: str, kernel: Any, vjp_a: Any, vjp_b: Any, flops_per_element: int = 1, doc: str = "",
            simplify: Any = None, fused: str | None = None) -> Primitive:
    return Primitive(
        name,
        infer=_binary_aval,
        kernel=kernel,
        vjp=[vjp_a, vjp_b],
        flops=lambda ins, out: flops_per_element * out.size,
        elementwise=True,
        doc=doc,
        simplify=simplify,
        fused_expr=fused,
    )


# --- algebraic identities (Primitive.simplify), each exact ----------------------------------
#
# A rule returns a value equal to the node's for every input, bit for bit: inf and the
# sign of zero included (a NaN stays a NaN; its sign bit, which no op of graphc reads,
# may differ where a neg moves). Identities that are not exact are left out, and say why:
#
# - x + 0 → x: -0 + 0 is +0, not -0, and 1/x tells them apart (x + (-0) and x - 0 are exact);
# - x - x → 0: inf - inf is NaN;  x·0 → 0: -3·0 is -0 and inf·0 is NaN;
# - (x·a)·b → x·(a·b) for any constants a, b: the two round differently, and x·a may
#   overflow (or lose bits below the normal range) where x·(a·b) does not. Merged only
#   when it is exact, see _merge_scalars.


def _single(t: Term) -> bool:
    """Whether ``t`` is a constant of one element (a scalar of any rank)."""
    return t.value is not None and t.value.size == 1


def _constant_operand(t: Term) -> tuple[Term, Term] | None:
    """(the other operand, the constant) of a binary node one of whose operands is a constant."""
    a, b = t.args
    if b.value is not None:
        return a, b
    if a.value is not None:
        return b, a
    return None


def _is_power_of_two_at_least_one(value: float) -> bool:
    mantissa, exponent = math.frexp(math.fabs(value))
    return math.isfinite(value) and mantissa == 0.5 and exponent >= 1


def _merge_scalars(t: Term) -> Apply | None:
    """(x·a)·b → x·(a·b) for one-element constants, where it is exact: |a| a power of two ≥ 1, |b| ≥ 1.

    x·2^i is exact (or ±inf), so (x·a)·b rounds the exact x·a·b once, as x·(a·b)
    does; where x·a overflows, |x·a·b| ≥ |x·a| overflows too, with the same sign;
    and a·b, a power of two times b, is exact unless it overflows (then not merged).
    Any other pair changes last bits, or turns an overflow of x·a into a finite
    number, so it is left alone: the plans must compute what the graph says.
    """
    split = _constant_operand(t)
    if split is None:
        return None
    inner, b = split
    if not _single(b) or inner.op is not mul:
        return None
    inner_split = _constant_operand(inner)
    if inner_split is None:
        return None
    x, a = inner_split
    if not _single(a):
        return None
    a_value, b_value = float(a.value.reshape(-1)[0]), float(b.value.reshape(-1)[0])
    if not (_is_power_of_two_at_least_one(a_value) and math.isfinite(b_value) and math.fabs(b_value) >= 1.0):
        return None
    with np.errstate(over="ignore"):
        product = np.multiply(a.value, b.value)
    if not np.all(np.isfinite(product)):
        return None
    return Apply(mul, (x, product))


def _add_simplify(t: Term) -> Term | Apply | None:
    """x + (-0) → x;  x + x → x·2 (one rounding of the same 2x);  x + (-y) → x - y (IEEE's a - b is a + (-b))."""
    a, b = t.args
    if b.is_number(-0.0):
        return a
    if a.is_number(-0.0):
        return b
    if a.node is b.node:
        return Apply(mul, (a, 2.0))
    if b.op is neg:
        return Apply(sub, (a, b.args[0]))
    if a.op is neg:
        return Apply(sub, (b, a.args[0]))
    return None


def _sub_simplify(t: Term) -> Term | Apply | None:
    """x - 0 → x (exact: -0 - 0 is -0);  x - (-y) → x + y."""
    a, b = t.args
    if b.is_number(0.0):
        return a
    if b.op is neg:
        return Apply(add, (a, b.args[0]))
    return None


def _mul_simplify(t: Term) -> Term | Apply | None:
    """x·1 → x;  (-x)·c → x·(-c) and (-x)·(-y) → x·y (a sign moves exactly);  exact scalar chains."""
    a, b = t.args
    if b.is_number(1.0):
        return a
    if a.is_number(1.0):
        return b
    if a.op is neg and b.op is neg:
        return Apply(mul, (a.args[0], b.args[0]))
    split = _constant_operand(t)
    if split is not None and split[0].op is neg:
        return Apply(mul, (split[0].args[0], np.negative(split[1].value)))
    return _merge_scalars(t)


def _div_simplify(t: Term) -> Term | None:
    """x / 1 → x."""
    a, b = t.args
    return a if b.is_number(1.0) else None


def _pow_simplify(t: Term) -> Term | Apply | None:
    """x¹ → x (C's pow is exact there);  x² → x·x for a one-element exponent 2, which NumPy's
    power computes as x·x itself (its square fast path; tests/test_passes.py checks it still does)."""
    a, b = t.args
    if b.is_number(1.0):
        return a
    if _single(b) and b.is_number(2.0):
        return Apply(mul, (a, a))
    return None


def _neg_simplify(t: Term) -> Term | Apply | None:
    """-(-x) → x;  -(x·c) → x·(-c) for a constant c."""
    (a,) = t.args
    if a.op is neg:
        return a.args[0]
    if a.op is mul:
        split = _constant_operand(a)
        if split is not None:
            return Apply(mul, (split[0], np.negative(split[1].value)))
    return None


add = _binary(
    "add",
    lambda out, a, b: np.add(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g, a.shape),
    lambda g, y, a, b: unbroadcast(g, b.shape),
    doc="a + b.  J^T: g summed to each operand's shape.",
    simplify=_add_simplify,
    fused="({0} + {1})",
)
sub = _binary(
    "sub",
    lambda out, a, b: np.subtract(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g, a.shape),
    lambda g, y, a, b: unbroadcast(neg(g), b.shape),
    doc="a - b.  J^T: (g, -g).",
    simplify=_sub_simplify,
    fused="({0} - {1})",
)
mul = _binary(
    "mul",
    lambda out, a, b: np.multiply(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g * b, a.shape),
    lambda g, y, a, b: unbroadcast(g * a, b.shape),
    doc="a * b.  J^T: (g·b, g·a).",
    simplify=_mul_simplify,
    fused="({0} * {1})",
)
div = _binary(
    "div",
    lambda out, a, b: np.divide(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g / b, a.shape),
    lambda g, y, a, b: unbroadcast(neg(g * y / b), b.shape),
    doc="a / b.  J^T: (g / b, -g·y / b).",
    simplify=_div_simplify,
    fused="({0} / {1})",
)


def _is_nonzero_constant(x: Value) -> bool:
    """Whether ``x`` is a constant with no zero element (its zero cases need no mask)."""
    return x.node.kind == "const" and bool(np.all(x.node.data != 0))


def _pow_vjp_base(g: Value, y: Value, a: Value, b: Value) -> Value:
    """∂(aᵇ)/∂a = b·a^(b-1), and 0 where b = 0 (aᵇ = 1 there, even at a = 0).

    Where b = 0 the exponent becomes b - 1 + 1 = 0, so the product is 0·a⁰ = 0
    instead of 0·0⁻¹ = NaN at a = 0.
    """
    exponent = b - 1.0 if _is_nonzero_constant(b) else b - 1.0 + equal(b, 0.0)
    return unbroadcast(g * b * a ** exponent, a.shape)


def _pow_vjp_exponent(g: Value, y: Value, a: Value, b: Value) -> Value:
    """∂(aᵇ)/∂b = aᵇ·ln a, taken as 0 where a = 0 (as JAX: ln of 1 there).

    At a = 0 the product is 0·(-∞) = NaN; replacing a by 1 there gives aᵇ·0 = 0,
    which is the limit for b > 0.
    """
    safe_base = a if _is_nonzero_constant(a) else a + equal(a, 0.0)
    return unbroadcast(g * y * log(safe_base), b.shape)


pow = _binary(  # noqa: A001
    "pow",
    lambda out, a, b: np.power(a, b, out=out),
    _pow_vjp_base,
    _pow_vjp_exponent,
    flops_per_element=10,
    doc="a ** b.  J^T: (g·b·a^(b-1), g·y·ln a), 0 where b = 0 and where a = 0 respectively.",
    simplify=_pow_simplify,
)
def _copy_kernel(out: np.ndarray, x: np.ndarray) -> None:
    np.copyto(out, x)


copy = Primitive(
    "copy",
    infer=lambda x: x,
    kernel=_copy_kernel,
    vjp=[lambda g, y, x: g],
    flops=lambda ins, out: 0,
    elementwise=True,
    doc="A copy of x into storage of its own (any dtype).  J^T: g.  Plans use it to write a returned "
        "array or a param's new value where no kernel can write it directly.",
)
neg = _unary("neg", lambda out, x: np.negative(x, out=out), lambda g, y, x: neg(g), doc="-x.  J^T: -g.",
             simplify=_neg_simplify, fused="(-{0})")
exp = _unary("exp", lambda out, x: np.exp(x, out=out), lambda g, y, x: g * y, 4, doc="eˣ.  J^T: g·y.",
             fused="exp({0})")
log = _unary("log", lambda out, x: np.log(x, out=out), lambda g, y, x: g / x, 4, doc="ln x.  J^T: g / x.",
             fused="log({0})")
sqrt = _unary("sqrt", lambda out, x: np.sqrt(x, out=out), lambda g, y, x: g / (2.0 * y), 2, doc="√x.  J^T: g / 2y.",
              fused="sqrt({0})")
tanh = _unary(
    "tanh",
    lambda out, x: np.tanh(x, out=out),
    lambda g, y, x: g * ((1.0 - y) * (1.0 + y)),
    4,
    doc="tanh x.  J^T: g·(1 - y)(1 + y), which keeps the digits of 1 - y² when |y| → 1.",
    fused="tanh({0})",
)


def _sigmoid_kernel(out: np.ndarray, x: np.ndarray) -> None:
    """σ(x) = 1/(1 + e⁻ˣ), four in-place ufuncs (each reads an element before writing it).

    Nothing cancels: for x < 0, e⁻ˣ is large and the quotient keeps its relative
    precision, so σ(-40) = 4.25e-18 rather than the 0 that ½(1 + tanh(x/2))
    gives once tanh rounds to -1. Where e⁻ˣ overflows (x < -709.8 in float64,
    -88.7 in float32: σ is subnormal there) the result is 1/∞ = 0, silently.
    SciPy's ``expit`` computes the same formula, 1.7x slower in float32.
    """
    with np.errstate(over="ignore"):
        np.negative(x, out=out)
        np.exp(out, out=out)
        np.add(out, 1.0, out=out)
        np.reciprocal(out, out=out)


sigmoid = _unary(
    "sigmoid",
    _sigmoid_kernel,
    lambda g, y, x: g * y * (1.0 - y),
    4,
    doc="σ(x) = 1/(1+e⁻ˣ).  J^T: g·y·(1 - y).",
    fused="(1 / (1 + exp(-{0})))",  # the kernel's four steps, in its order
)
relu = _unary(
    "relu",
    lambda out, x: np.maximum(x, 0, out=out),
    lambda g, y, x: g * greater(y, 0.0),
    doc="max(x, 0).  J^T: g·[y > 0], which is g·[x > 0]: reading the result, not the operand, lets the "
        "operand die at the forward op (batch norm's output before a ReLU, as PyTorch's in-place ReLU).",
    fused="where({0} <= 0, 0, {0})",  # np.maximum(x, 0): +0 for -0, NaN kept
)

# Masks: piecewise-constant, so their gradient is zero by structure.
def _comparison(name: str, ufunc: np.ufunc, symbol: str) -> Primitive:
    """``[a symbol b]`` as 0.0 / 1.0 in the operands' float dtype; zero J^T for both operands."""
    return _binary(
        name,
        lambda out, a, b: ufunc(a, b, out=out, casting="unsafe"),
        ZERO,
        ZERO,
        doc=f"[a {symbol} b] as 0.0 / 1.0 in the operands' float dtype.",
        fused=f"where({{0}} {symbol} {{1}}, 1, 0)",  # an int 0/1 in numexpr, cast as the ufunc casts
    )


greater = _comparison("greater", np.greater, ">")
equal = _comparison("equal", np.equal, "==")
less = _comparison("less", np.less, "<")
less_equal = _comparison("less_equal", np.less_equal, "<=")
greater_equal = _comparison("greater_equal", np.greater_equal, ">=")
not_equal = _comparison("not_equal", np.not_equal, "!=")
sign = _unary(
    "sign", lambda out, x: np.sign(x, out=out), ZERO, doc="-1, 0 or 1 by the sign of x (0 at ±0).  J^T: zero."
)
abs = _unary(  # noqa: A001
    "abs",
    lambda out, x: np.absolute(x, out=out),
    lambda g, y, x: g * sign(x),
    doc="|x|.  J^T: g·sign(x), which is 0 at x = 0 (a subgradient, as torch and JAX), never NaN.",
)


def _erf_kernel(out: np.ndarray, x: np.ndarray) -> None:
    from scipy.special import erf as scipy_erf

    scipy_erf(x, out=out)


erf = _unary(
    "erf",
    _erf_kernel,
    lambda g, y, x: g * (2.0 / math.sqrt(math.pi)) * exp(neg(x * x)),
    20,
    doc="erf x = 2/√π ∫₀ˣ e^(-t²) dt.  J^T: g·2/√π·e^(-x²).",
)


def _where_aval(c: Aval, a: Aval, b: Aval) -> Aval:
    return Aval(broadcast_shapes(c.shape, a.shape, b.shape), same_float_dtype(c, a, b))


def _where_kernel(out: np.ndarray, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """b everywhere, then a where c is non-zero (out never aliases an operand: not elementwise)."""
    np.copyto(out, b)
    np.copyto(out, a, where=c != 0)


where_op = Primitive(
    "where",
    infer=_where_aval,
    kernel=_where_kernel,
    vjp=[
        ZERO,
        lambda g, y, c, a, b: unbroadcast(where(c, g, 0.0), a.shape),
        lambda g, y, c, a, b: unbroadcast(where(c, 0.0, g), b.shape),
    ],
    doc="a where c ≠ 0, else b (NumPy's where; c a 0/1 mask).  J^T: (zero, g where c, g where not c).",
)


def where(condition: Any, x: Any, y: Any, name: str | None = None) -> Value:
    """``x`` where ``condition`` is non-zero, else ``y``, broadcast together (NumPy's ``where``).

    ``condition`` is a float 0/1 mask such as a comparison's result (``a > b``), in
    the dtype of ``x`` and ``y``; no gradient flows into it. Unlike ``c·x + (1-c)·y``,
    an inf or NaN of the side not chosen does not leak into the result or its
    gradient.
    """
    return where_op(condition, x, y, name=name)


def _clip_bound(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ShapeError(f"{what} must be a number or None, got {value!r:.40}")
    if math.isnan(float(value)):
        raise ShapeError(f"{what} is NaN; give a number (or None for no bound)")
    return float(value)


def _clip_normalize(x: Aval, a_min: Any = None, a_max: Any = None) -> dict[str, Any]:
    low, high = _clip_bound(a_min, "a_min"), _clip_bound(a_max, "a_max")
    if low is None and high is None:
        raise ShapeError("needs a_min or a_max (both are None); give at least one bound")
    if low is not None and high is not None and low > high:
        raise ShapeError(f"a_min {low} is greater than a_max {high}; give a_min <= a_max")
    return {"a_min": low, "a_max": high}


def _clip_inside(x: Value, a_min: float | None, a_max: float | None) -> Value:
    """[a_min <= x <= a_max]: 1 inside the bounds and on them (as torch.clamp), 0 outside."""
    low = None if a_min is None else greater_equal(x, a_min)
    high = None if a_max is None else less_equal(x, a_max)
    if low is None or high is None:
        return low if high is None else high
    return low * high


clip_op = Primitive(
    "clip",
    infer=lambda x, a_min, a_max: _unary_aval(x),
    normalize=_clip_normalize,
    kernel=lambda out, x, a_min, a_max: np.clip(x, a_min, a_max, out=out),
    vjp=[lambda g, y, x, a_min, a_max: g * _clip_inside(x, a_min, a_max)],
    flops=lambda ins, out, a_min, a_max: 2 * out.size,
    elementwise=True,
    doc="min(max(x, a_min), a_max).  J^T: g inside [a_min, a_max] (bounds included), 0 outside.",
)


def clip(x: Any, a_min: float | None = None, a_max: float | None = None, name: str | None = None) -> Value:
    """``x`` limited to ``[a_min, a_max]`` (NumPy's ``clip``; scalar bounds, one may be None).

    The gradient is 1 inside the bounds and on them, 0 outside (torch.clamp's
    convention at the bounds).
    """
    return clip_op(x, a_min=a_min, a_max=a_max, name=name)


def _tie_split(a: Value, b: Value) -> Value:
    """∂ max(a, b)/∂a: 1 where a > b, ½ where they tie (as JAX), else 0."""
    return greater(a, b) + 0.5 * equal(a, b)


maximum = _binary(
    "maximum",
    lambda out, a, b: np.maximum(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g * _tie_split(a, b), a.shape),
    lambda g, y, a, b: unbroadcast(g * _tie_split(b, a), b.shape),
    doc="max(a, b) elementwise.  J^T: g where each side wins, split in half at ties.",
)


minimum = _binary(
    "minimum",
    lambda out, a, b: np.minimum(a, b, out=out),
    lambda g, y, a, b: unbroadcast(g * _tie_split(b, a), a.shape),  # ∂ min(a, b)/∂a = ∂ max(b, a)/∂b
    lambda g, y, a, b: unbroadcast(g * _tie_split(a, b), b.shape),
    doc="min(a, b) elementwise.  J^T: g where each side wins, split in half at ties.",
)


def _count_normalize(x: Aval, dims: Any) -> dict[str, Any]:
    if not isinstance(dims, (tuple, list)) or not all(d is None or (is_int(d) and d >= 0) for d in dims):
        raise ShapeError(f"dims must be a tuple of sizes (ints >= 0, or None for the batch size), got {dims!r}")
    return {"dims": tuple(None if d is None else int(d) for d in dims)}


def _div_by_count_kernel(out: np.ndarray, x: np.ndarray, dims: tuple[int, ...]) -> None:
    count = math.prod(dims)
    np.multiply(x, x.dtype.type(1.0 / count if count else 0.0), out=out)


div_by_count = Primitive(
    "div_by_count",
    infer=lambda x, dims: _unary_aval(x),
    normalize=_count_normalize,
    kernel=_div_by_count_kernel,
    vjp=[lambda g, y, x, dims: div_by_count(g, dims=dims)],
    elementwise=True,
    shape_attrs=frozenset({"dims"}),
    doc="x / Π dims (0 when a dim is 0), where dims may hold the batch size.  J^T: g / Π dims.",
)


def times_inverse_count(x: Value, dims: tuple[int | None, ...]) -> Value:
    """``x / N`` with ``N = Π dims``: the 1/N of a mean over the elements ``dims`` count.

    With every dim known, ``x`` times the constant 1/N (0 when N is 0). Where ``dims``
    hold the batch size (None), N is known only when a run gives the size: a
    ``div_by_count`` node keeps the None in its attribute, and specialising the graph
    for a size fills it in, so a mean over the batch divides by the actual size. Both
    multiply by 1/N in x's dtype, so a specialised graph computes the very numbers of
    a graph built for that size.
    """
    if None in dims:
        return div_by_count(x, dims=tuple(dims))
    count = math.prod(dims)
    return x * (1.0 / count if count else 0.0)


def _add_n_aval(*avals: Aval) -> Aval:
    if not avals:
        raise ShapeError("needs at least one term")
    if len(set(avals)) != 1:
        raise ShapeError("all terms must have the same shape and dtype")
    same_float_dtype(avals[0])
    return avals[0]


def _add_n_kernel(out: np.ndarray, first: np.ndarray, *rest: np.ndarray) -> None:
    if not rest:
        np.copyto(out, first)
        return
    np.add(first, rest[0], out=out)
    for term in rest[1:]:
        np.add(out, term, out=out)


add_n = Primitive(
    "add_n",
    infer=_add_n_aval,
    kernel=_add_n_kernel,
    vjp=lambda index: (lambda g, y, *terms: g),
    flops=lambda ins, out: (len(ins) - 1) * out.size,
    fold_of=add,
    doc="Σ terms, all of one shape: the accumulation of gradient contributions.",
)


def _astype_normalize(x: Aval, dtype: Any) -> dict[str, Any]:
    """The target dtype by name (``"float32"``), so equal casts compare equal and plans stay JSON."""
    return {"dtype": as_dtype(dtype, FLOAT_DTYPES).name}


def _astype_aval(x: Aval, dtype: str) -> Aval:
    same_float_dtype(x)
    return Aval(x.shape, as_dtype(dtype, FLOAT_DTYPES))


def _astype_simplify(t: Term) -> Term | None:
    """A cast to x's own dtype → x;  float32 → float64 → float32 → x (widening is exact, and undone exactly)."""
    (a,) = t.args
    if a.dtype == t.dtype:
        return a
    if a.op is astype_op:
        (x,) = a.args
        if x.dtype == t.dtype and a.dtype.itemsize > x.dtype.itemsize:
            return x
    return None


astype_op = Primitive(
    "astype",
    infer=_astype_aval,
    kernel=lambda out, x, dtype: np.copyto(out, x, casting="same_kind"),
    vjp=[lambda g, y, x, dtype: astype(g, x.dtype)],
    normalize=_astype_normalize,
    elementwise=True,
    doc="x converted to another float dtype (rounded to nearest).  J^T: g converted back to x's dtype.",
    simplify=_astype_simplify,
)


def astype(x: Any, dtype: Any) -> Value:
    """``x`` converted to the float dtype ``dtype`` (``"float32"`` or ``"float64"``), as NumPy's ``astype``.

    Float operands of one op must share a dtype; this is how a float64 value
    (an optimizer's bias correction) meets a float32 model.
    """
    return bind(astype_op, (x,), {"dtype": dtype})
