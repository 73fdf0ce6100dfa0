"""graphc: a static computational-graph compiler for reverse-mode differentiation.

Declare a DAG of φ nodes, ask for gradients (a graph of the same IR), compile
the outputs into a flat plan over numbered buffers, and run it on NumPy::

    import graphc as gc

    with gc.Graph("seed") as g:
        x = gc.input("x", shape=(8, 4))
        w = gc.param("w", shape=(4, 4))
        loss = gc.sum(gc.tanh(x @ w) ** 2)
    (dw,) = gc.grad(loss, [w])
    prog = gc.compile([loss, dw])
    loss_v, dw_v = prog.run({"x": X})
"""

from graphc.errors import GraphError
from graphc.ir import Aval, Graph, Node, Value
from graphc.ir import scope
from graphc.ops import (
    abs,
    clip,
    equal,
    erf,
    gelu,
    greater,
    greater_equal,
    less,
    less_equal,
    logsumexp,
    minimum,
    not_equal,
    sign,
    softplus,
    std,
    var,
    where,
    Primitive,
    ShapeError,
    add,
    add_n,
    astype,
    broadcast_to,
    copy,
    concat,
    constant,
    defop,
    div,
    dropout,
    exp,
    input,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    mse,
    mul,
    neg,
    one_hot,
    pad_axis,
    param,
    pow,
    relu,
    reshape,
    sigmoid,
    slice_axis,
    softmax,
    softmax_cross_entropy,
    sqrt,
    sub,
    sum,
    tanh,
    transpose,
    uniform,
)
from graphc.ops import avg_pool2d, conv2d, flatten, global_avg_pool, max_pool2d
from graphc.ops import batch_norm, layer_norm
from graphc.ops import embedding, getitem, getitem_grad, scatter_add, take
from graphc.autodiff import grad
from graphc.compile import Cost, Program, compile, sgd
from graphc import optim
from graphc.gradcheck import gradcheck
from graphc.plan import Plan
from graphc.saving import load_params, save_params
from graphc.saving import load_program as load
from graphc.render import render, to_dot
from graphc.plots import plot_arena_layout, plot_frontier, plot_memory_timeline  # matplotlib is imported when called

__all__ = [
    "GraphError", "ShapeError", "Aval", "Graph", "Node", "Value", "Primitive", "defop", "grad", "gradcheck", "compile", "sgd", "optim", "Program", "Plan", "Cost",
    "load", "save_params", "load_params",
    "scope",
    "input", "param", "constant",
    "add", "add_n", "astype", "copy", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt", "tanh",
    "sigmoid", "relu", "maximum", "sum", "mean", "max", "reshape", "transpose", "broadcast_to",
    "concat", "slice_axis", "pad_axis", "softmax", "log_softmax", "softmax_cross_entropy",
    "one_hot", "mse", "uniform", "dropout",
    "abs", "sign", "clip", "minimum", "where", "erf", "gelu", "softplus", "logsumexp", "var", "std",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool", "flatten",
    "layer_norm", "batch_norm",
    "take", "embedding", "getitem", "getitem_grad", "scatter_add",
    "render", "to_dot", "plot_memory_timeline", "plot_arena_layout", "plot_frontier",
]
