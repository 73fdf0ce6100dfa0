"""The layers the published architectures share, each a few graph ops with torch's parameter names.

Params are named as the keys of the PyTorch reference implementation's
``state_dict`` (``"layer1.0.conv1.weight"``) and have its shapes: a conv
weight is ``(out, in/groups, kH, kW)``, a linear weight ``(out, in)`` applied
as ``x · Wᵀ`` (GPT-2's are ``(in, out)``, as its ``Conv1D``). Weights start
as the reference initialises them, drawn lazily (:class:`NormalInit`), so a
model of 10^8 parameters is built without allocating them.
"""

from __future__ import annotations

import math
from typing import Any

from graphc import ops
from graphc.errors import GraphError
from graphc.ir import Graph, Value, is_int, is_real
from graphc.ops.source import NormalInit


def check_sizes(model: str, sizes: dict[str, Any], width: float = 1.0) -> None:
    """Every size an int >= 1 and ``width`` a finite number > 0, else a GraphError naming the model and argument."""
    for name, size in sizes.items():
        if not (is_int(size) and size >= 1):
            raise GraphError(f"{model}: {name}={size!r} must be an int >= 1")
    if not (is_real(width) and math.isfinite(width) and width > 0):
        raise GraphError(f"{model}: width={width!r} must be a number > 0 (it scales every channel count; 1 is the published model)")


def scaled(channels: int, width: float) -> int:
    """``channels · width``, at least 1: the width multiplier of the small configurations."""
    return max(1, int(round(channels * width)))


def he_std(fan: int) -> float:
    """He et al.'s √(2 / fan), which keeps a ReLU network's activations at unit scale."""
    return math.sqrt(2.0 / fan)


def conv(x: Value, name: str, out_channels: int, kernel: int, stride: int = 1, padding: int = 0,
         bias: bool = True) -> Value:
    """``conv2d(x, W, b)`` with ``W`` He-initialised over its fan-out (torchvision's ``kaiming_normal_``)."""
    in_channels = x.shape[1]
    weight = ops.param(f"{name}.weight", (out_channels, in_channels, kernel, kernel), x.dtype,
                       init=NormalInit(he_std(out_channels * kernel * kernel)))
    b = ops.param(f"{name}.bias", (out_channels,), x.dtype, init=0.0) if bias else None
    return ops.conv2d(x, weight, b, stride=stride, padding=padding, name=name)


def linear(x: Value, name: str, out_features: int, std: float | None = None) -> Value:
    """``x · Wᵀ + b`` with ``W`` of shape (out, in) drawn from N(0, std²), std = 1/√in by default."""
    in_features = x.shape[-1]
    weight = ops.param(f"{name}.weight", (out_features, in_features), x.dtype,
                       init=NormalInit(std if std is not None else 1.0 / math.sqrt(in_features)))
    bias = ops.param(f"{name}.bias", (out_features,), x.dtype, init=0.0)
    return ops.add(ops.matmul(x, ops.transpose(weight)), bias, name=name)


def batch_norm(x: Value, name: str, training: bool = True) -> Value:
    """Batch norm over the channels of NCHW ``x``: weight 1, bias 0, running mean 0 and variance 1 as state."""
    channels = x.shape[1]
    weight = ops.param(f"{name}.weight", (channels,), x.dtype, init=1.0)
    bias = ops.param(f"{name}.bias", (channels,), x.dtype, init=0.0)
    mean = ops.param(f"{name}.running_mean", (channels,), x.dtype, init=0.0, role="state")
    var = ops.param(f"{name}.running_var", (channels,), x.dtype, init=1.0, role="state")
    return ops.batch_norm(x, mean, var, weight, bias, training=training, name=name)


def trained_params(graph: Graph) -> list[Value]:
    """The graph's params of role ``"param"``, in the order they were built."""
    return [Value(node) for node in graph.params.values() if node.role == "param"]


def state_params(graph: Graph) -> list[Value]:
    """The graph's params of role ``"state"`` (batch norm's running statistics), in build order."""
    return [Value(node) for node in graph.params.values() if node.role == "state"]


def parameter_count(params: list[Value]) -> int:
    """The number of scalars in ``params`` (the figure papers quote)."""
    return sum(math.prod(p.shape) for p in params)
