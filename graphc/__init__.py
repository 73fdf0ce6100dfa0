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

``gc.to_networkx(g)`` (or of Values, or of a Program) gives the graph as a
``networkx.DiGraph`` — a node per value with its op, shape, kind, scope (and, for a
program, its plan step and arena offset), an edge per operand with the Jᵀ term it
carries — for networkx's algorithms or ``networkx.write_graphml``; see :mod:`graphc.export`.
"""

from graphc.errors import GraphError
from graphc.ir import Aval, Graph, Node, Value, scope
from graphc import ops as _ops
from graphc.ops import Primitive, ShapeError, defop

globals().update({name: getattr(_ops, name) for name in _ops.PUBLIC_OPS})  # gc.add, gc.conv2d, ...: one list, the ops'
from graphc.autodiff import grad
from graphc.compile import Cost, Program, compile, sgd
from graphc import optim
from graphc.gradcheck import gradcheck
from graphc.plan import Plan
from graphc.saving import load_params, save_params
from graphc.saving import load_program as load
from graphc.render import render, to_dot
from graphc.export import to_networkx
from graphc.plots import plot_arena_layout, plot_frontier, plot_memory_by_kind, plot_memory_timeline  # matplotlib is imported when called
from graphc.report import write_report

__all__ = [
    "GraphError", "ShapeError", "Aval", "Graph", "Node", "Value", "scope", "Primitive", "defop", "grad", "gradcheck", "compile", "sgd", "optim", "Program", "Plan", "Cost",
    "load", "save_params", "load_params",
    "render", "to_dot", "to_networkx", "plot_memory_timeline", "plot_memory_by_kind", "plot_arena_layout", "plot_frontier",
    "write_report",
    *_ops.PUBLIC_OPS,
]
