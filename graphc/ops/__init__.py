"""The primitives, one definition each, and the functions that build their nodes.

Every op here is also a function of the public API (``gc.tanh(x)``); the
registry (:func:`lookup`) finds a primitive by name, which is how a plan
loaded from JSON gets its kernels back.
"""

from graphc.ops.core import ZERO, GraphError, Primitive, ShapeError, bind, defop, lookup, registered
from graphc.ops.source import constant, input, param, glorot_uniform, default_init
from graphc.ops.elementwise import (
    add,
    add_n,
    astype,
    copy,
    div,
    div_by_count,
    equal,
    exp,
    greater,
    log,
    maximum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    times_inverse_count,
    unbroadcast,
)
from graphc.ops.reduce import max, mean, sum
from graphc.ops.shape import broadcast_to, concat, pad_axis, reshape, slice_axis, transpose
from graphc.ops.linalg import matmul
from graphc.ops.nn import log_softmax, mse, one_hot, softmax, softmax_cross_entropy
from graphc.ops.random import dropout, uniform

__all__ = [
    "ZERO", "GraphError", "Primitive", "ShapeError", "bind", "defop", "lookup", "registered",
    "constant", "input", "param", "glorot_uniform", "default_init",
    "add", "add_n", "astype", "copy", "div", "div_by_count", "equal", "exp", "greater", "log", "maximum", "mul",
    "neg", "pow", "relu", "sigmoid", "sqrt", "sub", "tanh", "times_inverse_count", "unbroadcast",
    "max", "mean", "sum",
    "broadcast_to", "concat", "pad_axis", "reshape", "slice_axis", "transpose",
    "matmul",
    "log_softmax", "mse", "one_hot", "softmax", "softmax_cross_entropy",
    "dropout", "uniform",
]
