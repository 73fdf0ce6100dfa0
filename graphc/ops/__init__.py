"""The primitives, one definition each, and the functions that build their nodes.

Every op here is also a function of the public API (``gc.tanh(x)``); the
registry (:func:`lookup`) finds a primitive by name, which is how a plan
loaded from JSON gets its kernels back.
"""

from graphc.ops.core import ZERO, GraphError, Primitive, ShapeError, bind, defop, lookup, registered
from graphc.ops.source import constant, input, param, glorot_uniform, default_init
from graphc.ops.elementwise import (
    abs,
    add,
    add_n,
    astype,
    clip,
    copy,
    div,
    div_by_count,
    equal,
    erf,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    mul,
    neg,
    not_equal,
    pow,
    relu,
    sigmoid,
    sign,
    sqrt,
    sub,
    tanh,
    times_inverse_count,
    unbroadcast,
    where,
)
from graphc.ops.reduce import logsumexp, max, mean, std, sum, var
from graphc.ops.shape import broadcast_to, concat, pad_axis, reshape, slice_axis, transpose
from graphc.ops.linalg import matmul
from graphc.ops.nn import gelu, log_softmax, mse, one_hot, softmax, softmax_cross_entropy, softplus
from graphc.ops.random import dropout, uniform
from graphc.ops.conv import (
    avg_pool2d,
    avg_pool2d_grad,
    conv2d,
    conv2d_input_grad,
    conv2d_weight_grad,
    flatten,
    global_avg_pool,
    max_pool2d,
    max_pool2d_gather,
    max_pool2d_grad,
)
from graphc.ops.norm import batch_norm, layer_norm
from graphc.ops.indexing import embedding, getitem, getitem_grad, scatter_add, take

__all__ = [
    "ZERO", "GraphError", "Primitive", "ShapeError", "bind", "defop", "lookup", "registered",
    "constant", "input", "param", "glorot_uniform", "default_init",
    "abs", "add", "add_n", "astype", "clip", "copy", "div", "div_by_count", "equal", "erf", "exp", "greater",
    "greater_equal", "less", "less_equal", "log", "maximum", "minimum", "mul", "neg", "not_equal", "pow", "relu",
    "sigmoid", "sign", "sqrt", "sub", "tanh", "times_inverse_count", "unbroadcast", "where",
    "logsumexp", "max", "mean", "std", "sum", "var",
    "broadcast_to", "concat", "pad_axis", "reshape", "slice_axis", "transpose",
    "matmul",
    "gelu", "log_softmax", "mse", "one_hot", "softmax", "softmax_cross_entropy", "softplus",
    "dropout", "uniform",
    "conv2d", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d", "max_pool2d_grad", "max_pool2d_gather",
    "avg_pool2d", "avg_pool2d_grad", "global_avg_pool", "flatten",
    "batch_norm", "layer_norm",
    "embedding", "getitem", "getitem_grad", "scatter_add", "take",
]
