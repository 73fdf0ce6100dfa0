"""Normalisation layers: ``layer_norm`` and ``batch_norm``, with torch.nn.functional's arguments.

Both standardise ``x`` over a set of axes, ``x̂ = (x - μ) / √(σ² + ε)`` with the
biased variance σ², then apply an optional affine map ``y = x̂·weight + bias``.
``layer_norm`` standardises each sample over its last axes; ``batch_norm`` in
training each channel over the batch and the spatial axes (N, H, W, …), and in
evaluation uses the running statistics it keeps as state params.

The kernels compute μ and σ² by the corrected two-pass algorithm (as
:func:`graphc.var`): the rounded mean m̃, the deviations ``d = x - m̃`` (exact
where x is near m̃), and ``c = mean(d) = μ - m̃``, the part of the mean that
rounding lost; then ``σ² = mean(d²) - c²`` and ``x̂ = (d - c)/√(σ² + ε)``. So
rows of a large mean and a tiny spread (1e4 + 1e-3·noise in float32) keep the
digits of their spread, where ``E[x²] - E[x]²`` would lose all of them. The
row statistics live in planned scratch: a run allocates nothing.

The VJP for x is written with graph ops (so it can be differentiated again):

    ∂ℓ/∂x = (1/σ̂)·(g' - mean(g') - x̂·mean(g'·x̂)),   g' = g·weight,  σ̂ = √(σ² + ε)

with the means over the standardised axes; the affine VJPs are sums,
``∂ℓ/∂weight = Σ g·x̂`` and ``∂ℓ/∂bias = Σ g`` over the other axes.

In training, ``batch_norm`` also records on the graph the updates of its running
statistics, ``r ← (1 - momentum)·r + momentum·s`` (s the batch mean, and the
unbiased batch variance for ``running_var``, as torch): every program compiled
from outputs that read the batch-norm node writes them in place during its run
(``Graph.state_updates``, which :func:`graphc.compile` reads).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Aval, Node, Value, is_int, is_real
from graphc.ops import elementwise as E
from graphc.ops import reduce as R
from graphc.ops import shape as S
from graphc.ops.core import Primitive, ShapeError, constant_node, normalize_axes, same_float_dtype
from graphc.ops.reduce import deviation_sums, variance_from_sums

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "layer_norm", "batch_norm",
]


# --- the kernel both ops share --------------------------------------------------------------


def _row_scratch(x: Aval, axes: tuple[int, ...]) -> list[Aval]:
    """Four arrays of x's shape reduced over ``axes`` (kept as 1): m̃, c, σ² then 1/σ̂, and c²."""
    row = Aval(tuple(1 if i in axes else d for i, d in enumerate(x.shape)), x.dtype)
    return [row] * 4


def _standardize(out: np.ndarray, x: np.ndarray, axes: tuple[int, ...], eps: float,
                 scratch: Sequence[np.ndarray]) -> None:
    """out = (x - μ)/√(σ² + ε) over ``axes``, σ² biased, by the corrected two-pass algorithm
    (:func:`_row_statistics`, with ``out`` as the room for the deviations): the only array of
    x's size written."""
    shift, correction, inverse_sigma, square = scratch
    _row_statistics(shift, correction, inverse_sigma, None, x, axes, eps, out, square)
    _apply_statistics(out, x, shift, correction, inverse_sigma)


def _row_statistics(shift: np.ndarray, correction: np.ndarray, inverse_sigma: np.ndarray,
                    unbiased: np.ndarray | None, x: np.ndarray, axes: tuple[int, ...], eps: float,
                    deviations: np.ndarray, square: np.ndarray) -> None:
    """m̃, c and 1/σ̂ = 1/√(σ² + ε) of x over ``axes`` (rows kept as 1), by the corrected two-pass algorithm,
    and (unless ``unbiased`` is None) the unbiased variance ``(Σ d² - (Σ d)²/n)/(n - 1)`` by the very ops
    of :func:`graphc.var` with ``ddof=1``.

    m̃ = mean(x) is rounded to the spacing of μ (1e-3 at 1e4 in float32), an error of
    every deviation as large as the spread itself; ``c = mean(x - m̃)`` recovers it from
    deviations that are exact, and ``σ² = mean((x - m̃)²) - c²`` (Chan, Golub and
    LeVeque 1983). ``deviations`` (x's size) and ``square`` (a row) are overwritten.
    """
    count = math.prod(x.shape[a] for a in axes)
    deviation_sums(shift, correction, inverse_sigma, x, axes, True, deviations)
    if unbiased is not None:
        variance_from_sums(unbiased, inverse_sigma, correction, count, 1, unbiased)
    np.divide(correction, count, out=correction)
    np.divide(inverse_sigma, count, out=inverse_sigma)
    np.multiply(correction, correction, out=square)
    np.subtract(inverse_sigma, square, out=inverse_sigma)
    np.maximum(inverse_sigma, 0.0, out=inverse_sigma)  # mean(d²) ≥ c² exactly; rounding must not make σ² negative
    np.add(inverse_sigma, eps, out=inverse_sigma)
    np.sqrt(inverse_sigma, out=inverse_sigma)
    np.reciprocal(inverse_sigma, out=inverse_sigma)


def _apply_statistics(out: np.ndarray, x: np.ndarray, shift: np.ndarray, correction: np.ndarray,
                      inverse_sigma: np.ndarray) -> None:
    """out = ((x - m̃) - c)·(1/σ̂): x standardised with its row statistics."""
    np.subtract(x, shift, out=out)
    np.subtract(out, correction, out=out)
    np.multiply(out, inverse_sigma, out=out)


# --- the statistics as a value: what the VJPs read ----------------------------------------------


def _row_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _statistics_aval(x: Aval, axes: tuple[int, ...], eps: float) -> Aval:
    same_float_dtype(x)
    return Aval((4, *_row_shape(x.shape, axes)), x.dtype)


def _statistics_kernel(out: np.ndarray, x: np.ndarray, axes: tuple[int, ...], eps: float,
                       scratch: Sequence[np.ndarray]) -> None:
    deviations, square = scratch
    _row_statistics(out[0], out[1], out[2], out[3], x, axes, eps, deviations, square)


def _statistic(stats: Value, index: int) -> Value:
    """Row ``index`` of a :func:`norm_statistics` value: 0 m̃, 1 c, 2 1/σ̂, 3 Σ(x - μ)²/(n - 1) (each x's shape
    with the axes as 1)."""
    return S.reshape(S.slice_axis(stats, 0, index, index + 1), stats.shape[1:])


def _statistics_vjp(g: Value, y: Value, x: Value, axes: tuple[int, ...], eps: float) -> Value:
    """∂m̃/∂x = 1/n and ∂c/∂x = 0 (in exact arithmetic m̃ = μ and c = 0, which rounding separates);
    ∂(1/σ̂)/∂x = -(x - μ)/(n·σ̂³) = -x̂/(n·σ̂²); ∂s²/∂x = 2(x - μ)/(n - 1). (n may hold the batch size.)"""
    inverse_sigma = _statistic(y, 2)
    x_hat = standardized(x, y, axes)
    centred = (x - _statistic(y, 0)) - _statistic(y, 1)
    moments = R.per_degree_of_freedom(_statistic(g, 0) - _statistic(g, 2) * inverse_sigma * inverse_sigma * x_hat,
                                      x, axes, 0)
    return moments + R.per_degree_of_freedom(_statistic(g, 3) * 2.0 * centred, x, axes, 1)


norm_statistics_op = Primitive(
    "norm_statistics",
    infer=_statistics_aval,
    normalize=lambda x, axes, eps: {"axes": normalize_axes(axes, x.ndim), "eps": _check_eps(eps)},
    kernel=_statistics_kernel,
    vjp=[_statistics_vjp],
    flops=lambda ins, out, **attrs: 5 * ins[0].size,
    scratch=lambda x, axes, eps: [x, Aval(_row_shape(x.shape, axes), x.dtype)],
    doc="[m̃, c, 1/σ̂, s²] of x over ``axes`` (stacked on a new first axis): the statistics layer_norm and "
        "batch_norm standardise with, and the unbiased variance of the running statistics.  "
        "J^T: (g₀ - g₂·x̂/σ̂²)/n + 2g₃(x - μ)/(n - 1).",
)


def _standardized_aval(x: Aval, stats: Aval, axes: tuple[int, ...]) -> Aval:
    same_float_dtype(x, stats)
    if stats.shape != (4, *_row_shape(x.shape, axes)):
        raise ShapeError(f"the statistics {stats.shape} are not those of {x.shape} over the axes {axes}")
    return x


def _standardized_vjp_stats(g: Value, y: Value, x: Value, stats: Value, axes: tuple[int, ...]) -> Value:
    """∂/∂m̃ = ∂/∂c = -Σ g/σ̂, ∂/∂(1/σ̂) = Σ g·(x - m̃ - c) over ``axes`` and 0 for s², stacked as the
    statistics."""
    shifted = R.sum(g * -_statistic(stats, 2), axis=axes, keepdims=True)
    scaled = R.sum(g * ((x - _statistic(stats, 0)) - _statistic(stats, 1)), axis=axes, keepdims=True)
    rows = [S.reshape(v, (1, *v.shape)) for v in (shifted, shifted, scaled)]
    return S.pad_axis(S.concat(rows, axis=0), 0, 0, 1)


standardized_op = Primitive(
    "standardized",
    infer=_standardized_aval,
    normalize=lambda x, stats, axes: {"axes": normalize_axes(axes, x.ndim)},
    kernel=lambda out, x, stats, axes: _apply_statistics(out, x, stats[0], stats[1], stats[2]),
    vjp=[lambda g, y, x, stats, axes: g * _statistic(stats, 2), _standardized_vjp_stats],
    flops=lambda ins, out, **attrs: 3 * out.size,
    doc="((x - m̃) - c)·(1/σ̂) with the rows of norm_statistics(x): the very bits of layer_norm's and "
        "batch_norm's x̂.  J^T: g/σ̂, and the sums of -g/σ̂ (twice) and g·(x - m̃ - c).",
)


def norm_statistics(x: Any, axes: int | Sequence[int], eps: float = 1e-5, name: str | None = None) -> Value:
    """[m̃, c, 1/σ̂, s²] of ``x`` over ``axes``, stacked on a new first axis, each row x's shape with ``axes``
    as 1: the rounded mean, the correction ``mean(x - m̃)``, ``1/√(σ² + eps)`` (σ² the biased variance)
    and the unbiased variance s², by the ops of ``graphc.var(x, axes, ddof=1)``."""
    return norm_statistics_op(x, axes=axes, eps=eps, name=name)


def standardized(x: Any, stats: Any, axes: int | Sequence[int], name: str | None = None) -> Value:
    """x̂ = ((x - m̃) - c)·(1/σ̂) with ``stats = norm_statistics(x, axes)``: (x - μ)/√(σ² + eps)."""
    return standardized_op(x, stats, axes=axes, name=name)


def _standardized_vjp(g: Value, x_hat: Value, stats: Value, axes: tuple[int, ...]) -> Value:
    """(1/σ̂)·(g - mean(g) - x̂·mean(g·x̂)) over ``axes``: the J^T of x ↦ x̂ (g already times weight),
    with x̂ and 1/σ̂ from x's :data:`norm_statistics_op`, the forward kernel's own."""
    centred = g - R.mean(g, axis=axes, keepdims=True)
    return _statistic(stats, 2) * (centred - x_hat * R.mean(g * x_hat, axis=axes, keepdims=True))


def _standardized_parts(x: Value, axes: tuple[int, ...], eps: float) -> tuple[Value, Value]:
    """x̂ and x's statistics over ``axes``: what the VJPs of layer_norm and batch_norm read."""
    stats = norm_statistics(x, axes, eps)
    return standardized(x, stats, axes), stats


def _split_affine(affine: Sequence[Any], has_weight: bool, has_bias: bool) -> tuple[Any, Any]:
    """(weight, bias) from the operands after x, each None when absent."""
    rest = list(affine)
    weight = rest.pop(0) if has_weight else None
    bias = rest.pop(0) if has_bias else None
    return weight, bias


def _check_eps(eps: Any) -> float:
    if not (is_real(eps) and math.isfinite(eps) and eps >= 0):
        raise ShapeError(f"eps={eps!r:.40} must be a finite number >= 0 (added to the variance)")
    return float(eps)


def _check_flag(what: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ShapeError(f"{what}={value!r:.40} must be True or False")
    return bool(value)


def _check_affine_count(affine: Sequence[Aval], has_weight: bool, has_bias: bool) -> None:
    if len(affine) != has_weight + has_bias:
        raise ShapeError(f"takes {has_weight + has_bias} affine operand(s) (has_weight={has_weight}, "
                         f"has_bias={has_bias}), got {len(affine)}")


def _affine_flops(ins: Sequence[Aval], out: Aval) -> int:
    """Nine operations per element to standardise (two reductions, squares, four shifts and scalings), two per affine operand."""
    return (9 + 2 * (len(ins) - 1)) * out.size


# --- layer_norm -------------------------------------------------------------------------------


def _normalized_axes(ndim: int, normalized_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(range(ndim - len(normalized_shape), ndim))


def _layer_norm_normalize(x: Aval, *affine: Aval, normalized_shape: Any, eps: Any = 1e-5,
                          has_weight: Any = False, has_bias: Any = False) -> dict[str, Any]:
    shape = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
    if not isinstance(shape, (tuple, list)) or not shape or not all(is_int(d) and d >= 1 for d in shape):
        raise ShapeError(
            f"normalized_shape={normalized_shape!r:.60} must be an int or a non-empty tuple of ints >= 1: "
            "the sizes of the input's last dimensions, which are normalised"
        )
    has_weight, has_bias = _check_flag("has_weight", has_weight), _check_flag("has_bias", has_bias)
    _check_affine_count(affine, has_weight, has_bias)
    return {"normalized_shape": tuple(int(d) for d in shape), "eps": _check_eps(eps),
            "has_weight": has_weight, "has_bias": has_bias}


def _layer_norm_aval(x: Aval, *affine: Aval, normalized_shape: tuple[int, ...], eps: float,
                     has_weight: bool, has_bias: bool) -> Aval:
    same_float_dtype(x, *affine)
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ShapeError(
            f"normalized_shape {normalized_shape} must equal the last {k} dimension(s) of the input's shape "
            f"{x.shape}; pass input.shape[-{k}:]"
        )
    roles = [role for role, present in (("weight", has_weight), ("bias", has_bias)) if present]
    for role, aval in zip(roles, affine):
        if aval.shape != normalized_shape:
            raise ShapeError(f"{role} has shape {aval.shape}; it must have normalized_shape {normalized_shape}")
    return x


def _layer_norm_kernel(out: np.ndarray, x: np.ndarray, *affine: np.ndarray, normalized_shape: tuple[int, ...],
                       eps: float, has_weight: bool, has_bias: bool, scratch: Sequence[np.ndarray]) -> None:
    _standardize(out, x, _normalized_axes(x.ndim, normalized_shape), eps, scratch)
    weight, bias = _split_affine(affine, has_weight, has_bias)
    if weight is not None:
        np.multiply(out, weight, out=out)
    if bias is not None:
        np.add(out, bias, out=out)


def _layer_norm_vjp(index: int):
    """The rule for operand ``index``: x, then weight and bias where present."""

    def rule(g: Value, y: Value, x: Value, *affine: Value, normalized_shape: tuple[int, ...], eps: float,
             has_weight: bool, has_bias: bool) -> Value:
        axes = _normalized_axes(x.ndim, normalized_shape)
        samples = tuple(range(x.ndim - len(normalized_shape)))
        weight, _ = _split_affine(affine, has_weight, has_bias)
        if index >= 1 and not (index == 1 and has_weight):
            return R.sum(g, axis=samples)
        x_hat, stats = _standardized_parts(x, axes, eps)
        if index == 1:
            return R.sum(g * x_hat, axis=samples)
        scaled = g if weight is None else g * weight
        return _standardized_vjp(scaled, x_hat, stats, axes)

    return rule


layer_norm_op = Primitive(
    "layer_norm",
    infer=_layer_norm_aval,
    normalize=_layer_norm_normalize,
    kernel=_layer_norm_kernel,
    vjp=_layer_norm_vjp,
    flops=lambda ins, out, **attrs: _affine_flops(ins, out),
    scratch=lambda x, *affine, normalized_shape, **attrs: _row_scratch(x, _normalized_axes(x.ndim, normalized_shape)),
    doc="(x - μ)/√(σ² + ε)·weight + bias over the last axes.  J^T: (1/σ̂)(g' - mean g' - x̂·mean(g'x̂)), g' = g·weight.",
)


def layer_norm(input: Any, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,  # noqa: A002
               eps: float = 1e-5, name: str | None = None) -> Value:
    """Layer normalisation over the last ``len(normalized_shape)`` dimensions (torch.nn.functional.layer_norm).

    ``y = (x - μ)/√(σ² + eps)·weight + bias`` with μ and the biased σ² of each sample's
    last dimensions; ``weight`` and ``bias`` (optional) have shape ``normalized_shape``.
    """
    operands = [input] + [a for a in (weight, bias) if a is not None]
    return layer_norm_op(*operands, normalized_shape=normalized_shape, eps=eps,
                         has_weight=weight is not None, has_bias=bias is not None, name=name)


# --- batch_norm -------------------------------------------------------------------------------


def _batch_axes(ndim: int) -> tuple[int, ...]:
    """Every axis but the channels (axis 1): N and the spatial axes."""
    return (0,) + tuple(range(2, ndim))


def _channel_shape(ndim: int, channels: int) -> tuple[int, ...]:
    """(C, 1, …, 1): a per-channel vector that broadcasts against (N, C, *spatial)."""
    return (channels,) + (1,) * (ndim - 2)


def _batch_norm_normalize(x: Aval, *affine: Aval, eps: Any = 1e-5, has_weight: Any = False,
                          has_bias: Any = False) -> dict[str, Any]:
    has_weight, has_bias = _check_flag("has_weight", has_weight), _check_flag("has_bias", has_bias)
    _check_affine_count(affine, has_weight, has_bias)
    return {"eps": _check_eps(eps), "has_weight": has_weight, "has_bias": has_bias}


def _check_batch_input(x: Aval) -> int:
    """The channel count of an (N, C, *spatial) input, or a ShapeError."""
    if x.ndim < 2:
        raise ShapeError(f"the input must be (N, C) or (N, C, *spatial), got shape {x.shape}")
    channels = x.shape[1]
    if channels is None:
        raise ShapeError(f"the channel axis (1) of the input {x.shape} is the batch size (None); it must be fixed")
    return channels


def _batch_norm_aval(x: Aval, *affine: Aval, eps: float, has_weight: bool, has_bias: bool) -> Aval:
    same_float_dtype(x, *affine)
    channels = _check_batch_input(x)
    values = math.prod(1 if d is None else d for i, d in enumerate(x.shape) if i != 1)
    if values <= 1 and None not in x.shape:
        raise ShapeError(
            f"expected more than 1 value per channel when training, got input of shape {x.shape}; the batch "
            "statistics of a single value have no spread: train with a larger batch, or use training=False"
        )
    roles = [role for role, present in (("weight", has_weight), ("bias", has_bias)) if present]
    for role, aval in zip(roles, affine):
        if aval.shape != (channels,):
            raise ShapeError(f"{role} has shape {aval.shape}; it must have shape ({channels},), one per channel")
    return x


def _batch_norm_kernel(out: np.ndarray, x: np.ndarray, *affine: np.ndarray, eps: float, has_weight: bool,
                       has_bias: bool, scratch: Sequence[np.ndarray]) -> None:
    _standardize(out, x, _batch_axes(x.ndim), eps, scratch)
    weight, bias = _split_affine(affine, has_weight, has_bias)
    per_channel = _channel_shape(x.ndim, x.shape[1])
    if weight is not None:
        np.multiply(out, weight.reshape(per_channel), out=out)
    if bias is not None:
        np.add(out, bias.reshape(per_channel), out=out)


def _batch_norm_vjp(index: int):
    """The rule for operand ``index``: x, then weight and bias where present."""

    def rule(g: Value, y: Value, x: Value, *affine: Value, eps: float, has_weight: bool, has_bias: bool) -> Value:
        axes = _batch_axes(x.ndim)
        weight, _ = _split_affine(affine, has_weight, has_bias)
        if index >= 1 and not (index == 1 and has_weight):
            return R.sum(g, axis=axes)
        x_hat, stats = _standardized_parts(x, axes, eps)
        if index == 1:
            return R.sum(g * x_hat, axis=axes)
        scaled = g if weight is None else g * S.reshape(weight, _channel_shape(x.ndim, x.shape[1]))
        return _standardized_vjp(scaled, x_hat, stats, axes)

    return rule


batch_norm_op = Primitive(
    "batch_norm",
    infer=_batch_norm_aval,
    normalize=_batch_norm_normalize,
    kernel=_batch_norm_kernel,
    vjp=_batch_norm_vjp,
    flops=lambda ins, out, **attrs: _affine_flops(ins, out),
    scratch=lambda x, *affine, **attrs: _row_scratch(x, _batch_axes(x.ndim)),
    doc="Training batch norm: (x - μ_c)/√(σ²_c + ε)·weight + bias with each channel's batch statistics.  "
        "J^T: (1/σ̂)(g' - mean g' - x̂·mean(g'x̂)) per channel, g' = g·weight.",
)


def _check_running_stat(what: str, stat: Any, x: Value, channels: int) -> Value | None:
    """A running statistic: None, or a float param of role "state", shape (C,) and x's dtype."""
    if stat is None:
        return None
    if not isinstance(stat, Value):
        raise GraphError(
            f"batch_norm: {what} must be a param Value with role='state' or None, got {type(stat).__name__}; "
            f"create it with gc.param(name, ({channels},), role='state', init=...)"
        )
    if stat.role != "state":
        kind = f"a param of role {stat.role!r}" if stat.role is not None else f"not a param ({stat.node.op_name})"
        raise GraphError(
            f"batch_norm: {what} {stat.node.describe()} is {kind}; the running statistics are state the plan "
            f"updates and never trains: gc.param({stat.name!r}, ({channels},), role='state', init=...)"
        )
    if stat.graph is not x.graph:
        raise GraphError(f"batch_norm: {what} {stat.node.describe()} belongs to another graph than the input "
                         f"{x.node.describe()}; build both in one graph")
    if stat.shape != (channels,) or stat.dtype != x.dtype:
        raise GraphError(
            f"batch_norm: {what} {stat.node.describe()} must have shape ({channels},) and dtype {x.dtype.name}, "
            f"one value per channel of the input {x.node.describe()}"
        )
    return stat


def _check_momentum(momentum: Any) -> float:
    if momentum is None:
        raise GraphError(
            "batch_norm: momentum=None (a cumulative moving average of the batch statistics) is not supported; "
            "give a number, e.g. momentum=0.1 (r <- (1 - momentum)·r + momentum·batch statistic)"
        )
    if not (is_real(momentum) and math.isfinite(momentum)):
        raise GraphError(f"batch_norm: momentum={momentum!r:.40} must be a finite number, e.g. 0.1")
    return float(momentum)


def _already_updated(stat: Value, recorded: tuple[Node, Node]) -> GraphError:
    return GraphError(
        f"batch_norm: running statistic {stat.node.describe()} is updated already by batch-norm node "
        f"{recorded[0].name!r} (training=True); give each batch_norm call in training its own running_mean "
        "and running_var"
    )


def _record_state_update(stat: Value, new_value: Value, trigger: Value) -> None:
    """Record on the graph that programs reading ``trigger`` write ``new_value`` into ``stat``."""
    entry = (trigger.node, new_value.node)
    recorded = stat.graph.state_updates.setdefault(stat.node, entry)  # atomic: one record per param
    if recorded is not entry:
        raise _already_updated(stat, recorded)


def _input_value(input: Any) -> Value:  # noqa: A002
    if not isinstance(input, Value):
        raise GraphError(f"batch_norm: input must be a Value of shape (N, C, ...), got {type(input).__name__}")
    try:
        _check_batch_input(input.aval)
    except ShapeError as err:
        raise GraphError(f"batch_norm: input {input.node.describe()}: {err}") from None
    return input


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,  # noqa: A002
               training: bool = False, momentum: float | None = 0.1, eps: float = 1e-5,
               name: str | None = None) -> Value:
    """Batch normalisation of an (N, C) or (N, C, *spatial) input (torch.nn.functional.batch_norm).

    ``training=True`` standardises each channel with the batch's mean and biased
    variance over N and the spatial axes; every program compiled from outputs that
    read the result then updates the running statistics in place, as torch does::

        running_mean ← (1 - momentum)·running_mean + momentum·mean
        running_var  ← (1 - momentum)·running_var  + momentum·var·n/(n - 1)

    (n values per channel). ``running_mean`` and ``running_var`` are params with
    ``role="state"`` of shape (C,) (``gc.param("bn.mean", (C,), role="state", init=0.0)``),
    or None for no running statistics; ``prog.state`` reports them. ``compile``'s
    ``updates`` may not update them too (a GraphError). ``momentum=None``, torch's
    cumulative average, is not supported.

    ``training=False`` (evaluation) standardises with the running statistics:
    ``(x - running_mean)/√(running_var + eps)·weight + bias``, with gradients for
    the input, weight and bias. ``weight`` and ``bias`` (optional) have shape (C,).
    """
    x = _input_value(input)
    channels = x.shape[1]
    if not isinstance(training, (bool, np.bool_)):
        raise GraphError(f"batch_norm: training={training!r:.40} must be True or False")
    mean_stat = _check_running_stat("running_mean", running_mean, x, channels)
    var_stat = _check_running_stat("running_var", running_var, x, channels)
    if mean_stat is not None and mean_stat is var_stat:
        raise GraphError(f"batch_norm: running_mean and running_var are the same param {mean_stat.name!r}; "
                         "give each statistic a param of its own")
    operands = [x] + [a for a in (weight, bias) if a is not None]
    attrs = {"eps": eps, "has_weight": weight is not None, "has_bias": bias is not None}
    if not training:
        if mean_stat is None or var_stat is None:
            raise GraphError(
                "batch_norm: training=False normalises with the running statistics, so running_mean and "
                "running_var must both be given (params with role='state'); or pass training=True"
            )
        return _batch_norm_eval(x, mean_stat, var_stat, weight, bias, eps, name)
    stats = [stat for stat in (mean_stat, var_stat) if stat is not None]
    rate = _check_momentum(momentum) if stats else 0.0
    for stat in stats:  # checked before either is recorded, so a failed call records nothing
        if stat.node in x.graph.state_updates:
            raise _already_updated(stat, x.graph.state_updates[stat.node])
    y = batch_norm_op(*operands, **attrs, name=name)
    if stats:
        _record_running_statistics(x, y, mean_stat, var_stat, rate, eps)
    return y


def _record_running_statistics(x: Value, y: Value, mean_stat: Value | None, var_stat: Value | None, rate: float,
                               eps: float) -> None:
    """r ← (1 - rate)·r + rate·s from x's :func:`norm_statistics`, which the VJP reads too (so the two
    share one computation of the batch's statistics): s the mean m̃ (``graphc.mean``'s bits) and the
    unbiased variance (``graphc.var(ddof=1)``'s bits)."""
    stats = norm_statistics(x, _batch_axes(x.ndim), eps)
    channels = (x.shape[1],)
    if mean_stat is not None:
        batch_mean = S.reshape(_statistic(stats, 0), channels)
        _record_state_update(mean_stat, mean_stat * (1.0 - rate) + batch_mean * rate, y)
    if var_stat is not None:
        batch_var = S.reshape(_statistic(stats, 3), channels)
        _record_state_update(var_stat, var_stat * (1.0 - rate) + batch_var * rate, y)


def _batch_norm_eval(x: Value, running_mean: Value, running_var: Value, weight: Any, bias: Any, eps: Any,
                     name: str | None) -> Value:
    """(x - running_mean)·(weight/√(running_var + eps)) + bias, per channel, with graph ops."""
    try:
        eps = _check_eps(eps)
    except ShapeError as err:
        raise GraphError(f"batch_norm: {err}") from None
    per_channel = _channel_shape(x.ndim, x.shape[1])

    def vector(v: Any) -> Value:
        """``v`` as a (C,) Value (a constant if given as numbers)."""
        v = v if isinstance(v, Value) else Value(constant_node(x.graph, v, x.dtype, "batch_norm: weight or bias"))
        if v.shape != (x.shape[1],):
            raise GraphError(f"batch_norm: {v.node.describe()} must have shape ({x.shape[1]},), one value per "
                             f"channel of the input {x.node.describe()}")
        return v

    def broadcastable(v: Value) -> Value:
        return v if v.shape == per_channel else S.reshape(v, per_channel)

    scale = 1.0 / E.sqrt(running_var + eps)
    if weight is not None:
        scale = scale * vector(weight)
    centred = x - broadcastable(running_mean)
    if bias is None:
        return E.mul(centred, broadcastable(scale), name=name)
    return E.add(centred * broadcastable(scale), broadcastable(vector(bias)), name=name)
