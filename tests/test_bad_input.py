"""The catalogue of bad input: every case must raise a GraphError saying what, where and what to do.

One case per line: ``(id, thunk, regex)``. The thunk builds what it needs (small
graphs) and must raise :class:`graphc.GraphError`; the regex is searched in the
message. Cases are grouped by the API they exercise: graphs and sources,
operands, each op's arguments, custom ops, grad, compile, runs (feeds, labels,
stored params, updates), recompute budgets, plan files, optimizers, and saved
programs and params.
"""

from __future__ import annotations

import functools
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import graphc as gc
from graphc import models, passes, remat, zoo
from graphc.bench import SweepOptions
from graphc.ir import Aval
from graphc.ops import lookup
from graphc.ops.source import NormalInit
from graphc.plan import content_digest, read_plan_file
from graphc.saving import MANIFEST


# --- helpers: small graphs built inside the thunks ----------------------------------


def _source(build):
    """Run ``build()`` inside a fresh graph (sources need an open graph)."""
    with gc.Graph("case"):
        return build()


def _x(shape=(2, 3), dtype="float32", name="x") -> gc.Value:
    """An input of a fresh graph; ops on it work outside any ``with`` block."""
    return _source(lambda: gc.input(name, shape, dtype))


def _pair(shape_a=(2, 3), shape_b=(2, 3), dtype_a="float32", dtype_b="float32"):
    """Two inputs ``a`` and ``b`` of one fresh graph."""
    return _source(lambda: (gc.input("a", shape_a, dtype_a), gc.input("b", shape_b, dtype_b)))


def _labels(shape=(2,), dtype="int64") -> gc.Value:
    return _x(shape, dtype, "labels")


def _key(dtype="int64", shape=()) -> gc.Value:
    return _x(shape, dtype, "step")


def _model():
    """``(x, w, loss)``: a float32 input, a (3,) param and a scalar loss of one graph."""
    def build():
        x = gc.input("x", (3,))
        w = gc.param("w", (3,), init=np.ones(3, np.float32))
        return x, w, gc.sum(x * w)

    return _source(build)


def _loss():
    return _model()[2]


def _param(**kwargs) -> gc.Value:
    return _source(lambda: gc.param("w", **kwargs))


def _other_graph_param() -> gc.Value:
    return _source(lambda: gc.param("v", (3,)))


def _twice(build):
    """Call ``build`` twice in one graph (a name used twice)."""
    with gc.Graph("case"):
        build()
        build()


def _op(infer, vjp=None, name="bad_input_op"):
    """A custom op (redefined on each call) with the given shape rule and VJP."""
    return gc.defop(name, infer=infer, kernel=lambda out, x: np.copyto(out, x), vjp=vjp, replace=True)


def _grad_through(vjp, shape=(3,)):
    x = _x(shape, "float64")
    y = _op(lambda a: a, vjp=vjp)(x)
    return gc.grad(gc.sum(y), x)


def _grad_of_model(seed):
    x, w, loss = _model()
    return gc.grad(loss, w, seed=seed)


def _define_twice():
    for _ in range(2):
        gc.defop("bad_input_defined_twice", infer=lambda x: x, kernel=np.copyto)


def _labels_and_key():
    return _source(lambda: (gc.input("labels", (3,), "int64"), gc.input("step", (), "int64")))


def _update_to_float64():
    """Compile an update of a float32 param to a float64 value of the same graph."""
    def build():
        w = gc.param("w", (3,), init=np.ones(3, np.float32))
        v = gc.param("v", (3,), "float64", init=np.ones(3))
        return w, gc.sum(w), v

    w, loss, v = _source(build)
    return gc.compile(loss, updates={w: v * 2.0})


def _update(build_value):
    x, w, loss = _model()
    return gc.compile(loss, updates={w: build_value(w)})


# --- the catalogue --------------------------------------------------------------------

CASES = [
    # (id, thunk that must raise GraphError, regex the message must match)
    # graphs
    ("graph-name-none", lambda: gc.Graph(None), r"Graph name must be a non-empty string, got None"),
    ("graph-name-int", lambda: gc.Graph(3), r"Graph name must be a non-empty string, got 3"),
    ("graph-name-list", lambda: gc.Graph(["g"]), r"Graph name must be a non-empty string, got \['g'\]"),
    ("graph-name-empty", lambda: gc.Graph(""), r"Graph name must be a non-empty string"),
    ("source-outside-graph", lambda: gc.input("x", (2,)), r"no graph is open.*gc\.Graph"),
    ("param-outside-graph", lambda: gc.param("w", (2,)), r"no graph is open"),
    ("constant-outside-graph", lambda: gc.constant(1.0), r"no graph is open"),
    # names of inputs and params
    ("input-name-none", lambda: _source(lambda: gc.input(None, (2,))), r"input name must be a non-empty string, got None"),
    ("input-name-int", lambda: _source(lambda: gc.input(3, (2,))), r"input name must be a non-empty string, got 3"),
    ("input-name-empty", lambda: _source(lambda: gc.input("", (2,))), r"input name must be a non-empty string, got ''"),
    ("input-name-bytes", lambda: _source(lambda: gc.input(b"x", (2,))), r"input name must be a non-empty string"),
    ("param-name-none", lambda: _source(lambda: gc.param(None, (2,))), r"param name must be a non-empty string, got None"),
    ("param-name-empty", lambda: _source(lambda: gc.param("", (2,))), r"param name must be a non-empty string"),
    ("input-name-duplicate", lambda: _twice(lambda: gc.input("x", (2,))), r"already has an input or param named 'x'.*own name"),
    ("param-name-duplicate", lambda: _twice(lambda: gc.param("w", (2,))), r"already has an input or param named 'w'"),
    ("param-named-like-input", lambda: _source(lambda: (gc.input("x", (2,)), gc.param("x", (2,)))), r"already has .* named 'x'"),
    ("op-name-int", lambda: gc.tanh(_x(), name=5), r"name must be a non-empty string, got 5"),
    ("op-name-empty", lambda: gc.tanh(_x(), name=""), r"name must be a non-empty string, got ''"),
    ("constant-name-int", lambda: _source(lambda: gc.constant(1.0, name=7)), r"name must be a non-empty string, got 7"),
    # shapes of inputs and params
    ("shape-float-dim", lambda: _x((2.5,)), r"'x'.*shape \(2\.5,\).*dimension 2\.5 is not an int"),
    ("shape-integral-float-dim", lambda: _x((2.0, 3)), r"'x'.*dimension 2\.0 is not an int"),
    ("shape-string", lambda: _x("ab"), r"'x'.*shape must be a tuple of ints, got 'ab'"),
    ("shape-none", lambda: _x(None), r"'x'.*shape must be a tuple of ints, got None"),
    ("shape-int", lambda: _x(3), r"'x'.*shape must be a tuple of ints, got 3.*\(3,\)"),
    ("shape-negative", lambda: _x((-1,)), r"'x'.*shape \(-1,\) has a negative dimension"),
    ("shape-negative-second", lambda: _x((2, -3)), r"'x'.*negative dimension"),
    ("shape-bool-dim", lambda: _x((True,)), r"'x'.*dimension True is not an int"),
    ("shape-nested", lambda: _x(((2, 3),)), r"'x'.*dimension \(2, 3\) is not an int"),
    ("shape-string-dim", lambda: _x(("2",)), r"'x'.*dimension '2' is not an int"),
    ("shape-huge-size", lambda: _x((2**40, 2**40)), r"'x'.*shape \(1099511627776, 1099511627776\).*too large"),
    ("shape-2-to-80-elements", lambda: _x((2**20,) * 4), r"'x'.*2\^80|'x'.*too large"),
    ("shape-dim-beyond-int64", lambda: _x((2**70,)), r"'x'.*too large"),
    ("param-shape-float-dim", lambda: _param(shape=(1.5, 2)), r"'w'.*dimension 1\.5 is not an int"),
    ("param-shape-huge", lambda: _param(shape=(2**31, 2**31, 4)), r"'w'.*too large"),
    # dtypes of inputs and params
    ("dtype-float16", lambda: _x((2,), "float16"), r"'x'.*dtype float16 is not supported; use one of float32, float64"),
    ("dtype-int8", lambda: _x((2,), "int8"), r"'x'.*dtype int8 is not supported"),
    ("dtype-uint8", lambda: _x((2,), "uint8"), r"'x'.*dtype uint8 is not supported"),
    ("dtype-bool", lambda: _x((2,), "bool"), r"'x'.*dtype bool is not supported"),
    ("dtype-complex", lambda: _x((2,), "complex64"), r"'x'.*dtype complex64 is not supported"),
    ("dtype-object", lambda: _x((2,), object), r"'x'.*dtype object is not supported"),
    ("dtype-unknown-name", lambda: _x((2,), "float99"), r"'x'.*'float99' is not a dtype"),
    ("dtype-number", lambda: _x((2,), 5), r"'x'.*5 is not a dtype"),
    ("param-dtype-int64", lambda: _param(shape=(2,), dtype="int64"), r"'w'.*dtype int64 is not supported; use one of float32, float64"),
    # param init and seed
    ("param-init-list-wrong-shape", lambda: _param(shape=(3,), init=[1.0, 2.0]), r"param 'w'.*init has shape \(2,\), expected \(3,\)"),
    ("param-shape-none", lambda: _param(shape=None), r"param 'w'.*shape must be a tuple of ints, got None"),
    ("param-init-wrong-shape", lambda: _param(shape=(2, 3), init=np.ones((3, 2))), r"param 'w'.*init has shape \(3, 2\), expected \(2, 3\)"),
    ("param-init-stretchable-shape", lambda: _param(shape=(3,), init=np.ones((1, 3))), r"param 'w'.*init has shape \(1, 3\), expected \(3,\)"),
    ("param-init-nan", lambda: _param(shape=(3,), init=np.array([1.0, np.nan, 2.0])), r"param 'w'.*init.*not finite.*NaN"),
    ("param-init-inf", lambda: _param(shape=(2,), init=np.array([np.inf, 0.0])), r"param 'w'.*init.*not finite"),
    ("param-init-scalar-nan", lambda: _param(shape=(2,), init=float("nan")), r"param 'w'.*init.*not finite"),
    ("param-init-string", lambda: _param(shape=(2,), init="ones"), r"param 'w'.*init.*dtype <U4|param 'w'.*init.*str"),
    ("param-init-complex", lambda: _param(shape=(2,), init=np.ones(2, complex)), r"param 'w'.*init has dtype complex128"),
    ("param-init-bool", lambda: _param(shape=(2,), init=np.ones(2, bool)), r"param 'w'.*init has dtype bool"),
    ("param-init-object", lambda: _param(shape=(2,), init=np.array([1, None], dtype=object)), r"param 'w'.*init has dtype object"),
    ("param-init-ragged", lambda: _param(shape=(2,), init=[[1.0], [1.0, 2.0]]), r"param 'w'.*init.*not a rectangular array"),
    ("param-init-callable-wrong-shape", lambda: _param(shape=(2, 3), init=lambda s, d, r: np.ones((3, 3))), r"param 'w'.*init has shape \(3, 3\), expected \(2, 3\)"),
    ("param-init-callable-none", lambda: _param(shape=(2,), init=lambda s, d, r: None), r"param 'w'.*init has dtype object|param 'w'.*init.*None"),
    ("param-init-callable-nan", lambda: _param(shape=(2,), init=lambda s, d, r: np.full(s, np.nan, d)), r"param 'w'.*not finite"),
    ("param-init-callable-bad-signature", lambda: _param(shape=(2,), init=lambda: np.ones(2)), r"param 'w'.*init.*called as init\(shape, dtype, rng\)"),
    ("param-seed-string", lambda: _param(shape=(2,), seed="a"), r"param 'w'.*seed must be an int >= 0 or None, got 'a'"),
    ("param-seed-negative", lambda: _param(shape=(2,), seed=-1), r"param 'w'.*seed must be an int >= 0"),
    ("param-seed-float", lambda: _param(shape=(2,), seed=1.5), r"param 'w'.*seed must be an int"),
    # constants and Python operands
    ("constant-object", lambda: _source(lambda: gc.constant(object())), r"constant.*dtype object"),
    ("constant-string", lambda: _source(lambda: gc.constant("abc")), r"constant.*dtype <U3|constant.*str"),
    ("constant-none", lambda: _source(lambda: gc.constant(None)), r"constant.*dtype object"),
    ("constant-complex", lambda: _source(lambda: gc.constant(1j)), r"constant.*dtype complex128"),
    ("constant-float16", lambda: _source(lambda: gc.constant(np.ones(2, np.float16))), r"constant.*dtype float16"),
    ("constant-ragged", lambda: _source(lambda: gc.constant([[1.0], [1.0, 2.0]])), r"constant.*not a rectangular array"),
    ("constant-unknown-dtype", lambda: _source(lambda: gc.constant(1.0, dtype="float99")), r"constant.*'float99' is not a dtype"),
    ("constant-int8-dtype", lambda: _source(lambda: gc.constant(1, dtype="int8")), r"constant.*dtype int8"),
    ("constant-too-large-int", lambda: _source(lambda: gc.constant(2**70)), r"constant.*dtype object|constant.*too large"),
    ("operand-string", lambda: _x() + "a", r"add.*cannot use a str as an operand"),
    ("operand-none", lambda: _x() * None, r"mul.*cannot use a NoneType as an operand"),
    ("operand-complex", lambda: _x() * 1j, r"mul: operand 1: cannot use a complex as an operand"),
    ("operand-dict", lambda: _x() - {}, r"sub.*cannot use a dict as an operand"),
    ("operand-ragged-list", lambda: _x() + [[1.0], [1.0, 2.0]], r"add.*not a rectangular array"),
    ("operand-object-array", lambda: _x((2,)) + np.array([1, "a"], dtype=object), r"add.*dtype object"),
    ("operand-string-array", lambda: _x((2,)) + np.array(["a", "b"]), r"add.*dtype <U1"),
    ("operand-function", lambda: gc.exp(print), r"exp.*cannot use a builtin_function_or_method as an operand"),
    ("operand-only-python-outside-graph", lambda: gc.exp(1.0), r"no graph is open"),
    ("constant-bool", lambda: _source(lambda: gc.constant(True)), r"constant.*dtype bool.*float32 or float64"),
    ("constant-uint8-array", lambda: _source(lambda: gc.constant(np.ones(2, np.uint8))), r"constant.*dtype uint8"),
    ("operand-generator", lambda: gc.exp(v for v in [1.0]), r"exp: operand 0: cannot use a generator"),
    ("operand-set", lambda: _x() + {1.0}, r"add: operand 1: cannot use a set"),
    ("value-truth", lambda: bool(_x()), r"'x'.*symbolic.*no truth value"),
    # operands of two graphs, dtypes
    ("two-graphs-add", lambda: _x() + _x(name="y"), r"add: 'y'.*belongs to another graph than the other operands.*build every operand in one graph"),
    ("two-graphs-matmul", lambda: gc.matmul(_x((2, 3)), _x((3, 2))), r"matmul: 'x'.*belongs to another graph than the other operands"),
    ("two-graphs-concat", lambda: gc.concat([_x(), _x()]), r"concat: 'x'.*belongs to another graph"),
    ("mixed-float32-float64", lambda: gc.add(*_pair(dtype_b="float64")), r"add.*dtypes differ \(float32, float64\).*cast"),
    ("mixed-float-int", lambda: gc.mul(*_pair(dtype_b="int64")), r"mul.*dtypes differ"),
    ("int-arithmetic", lambda: gc.tanh(_labels()), r"tanh.*expects float32 or float64, got int64.*'labels'"),
    ("int-plus-scalar", lambda: _labels() + 1, r"add.*expects float32 or float64, got int64"),
    ("broadcast-add", lambda: gc.add(*_pair((2, 3), (4, 3))), r"add.*shapes \(2, 3\) and \(4, 3\) do not broadcast.*'a' \(2, 3\)"),
    ("broadcast-maximum", lambda: gc.maximum(*_pair((2, 3), (2,))), r"maximum.*do not broadcast"),
    ("broadcast-constant", lambda: _x((2, 3)) * np.ones((4,)), r"mul.*do not broadcast"),
    # reductions
    ("mixed-dtypes-pow", lambda: gc.pow(*_pair(dtype_b="float64")), r"pow.*dtypes differ"),
    ("mixed-dtypes-mse", lambda: gc.mse(*_pair(dtype_b="float64")), r"sub.*dtypes differ"),
    ("mixed-dtypes-add-n", lambda: gc.add_n(*_pair(dtype_b="float64")), r"add_n.*same shape and dtype"),
    ("matmul-int-operands", lambda: gc.matmul(*_pair((2, 3), (3, 2), "int64", "int64")), r"matmul.*expects float32 or float64, got int64"),
    ("sum-axis-out-of-range", lambda: gc.sum(_x(), axis=2), r"sum.*axis 2 is out of range for 2 dimensions.*'x' \(2, 3\)"),
    ("sum-axis-negative", lambda: gc.sum(_x(), axis=-3), r"sum.*axis -3 is out of range"),
    ("sum-axis-duplicate", lambda: gc.sum(_x(), axis=(0, 0)), r"sum.*axis \(0, 0\) repeats an axis"),
    ("sum-axis-duplicate-negative", lambda: gc.sum(_x(), axis=(1, -1)), r"sum.*repeats an axis"),
    ("sum-axis-float", lambda: gc.sum(_x(), axis=1.0), r"sum.*axis 1\.0 is not an int"),
    ("sum-axis-string", lambda: gc.sum(_x(), axis="0"), r"sum.*axis '0' is not an int"),
    ("sum-axis-bool", lambda: gc.sum(_x(), axis=True), r"sum.*axis True is not an int"),
    ("sum-axis-of-scalar", lambda: gc.sum(_x(()), axis=0), r"sum.*axis 0 is out of range for 0 dimensions \(a 0-d value has no axes\)"),
    ("sum-keepdims-string", lambda: gc.sum(_x(), keepdims="no"), r"sum.*keepdims must be True or False, got 'no'"),
    ("mean-axis-out-of-range", lambda: gc.mean(_x(), axis=5), r"mean.*axis 5 is out of range"),
    ("mean-axis-duplicate", lambda: gc.mean(_x(), axis=[1, 1]), r"mean.*repeats an axis"),
    ("mean-axis-float", lambda: gc.mean(_x(), axis=0.5), r"mean.*axis 0\.5 is not an int"),
    ("max-axis-out-of-range", lambda: gc.max(_x(), axis=-4), r"max.*axis -4 is out of range"),
    ("max-axis-duplicate", lambda: gc.max(_x(), axis=(0, 0)), r"max.*repeats an axis"),
    ("max-axis-none-in-tuple", lambda: gc.max(_x(), axis=(0, None)), r"max.*axis None is not an int"),
    ("sum-int-operand", lambda: gc.sum(_labels()), r"sum.*expects float32 or float64, got int64"),
    # transpose, reshape, broadcast_to
    ("sum-axis-array", lambda: gc.sum(_x(), axis=np.array([0])), r"sum.*is not an int, a tuple of ints or None"),
    ("transpose-axes-string", lambda: gc.transpose(_x(), "ab"), r"transpose.*axes must be a sequence of ints.*got 'ab'"),
    ("reshape-bool-dim", lambda: gc.reshape(_x(), (True, 6)), r"reshape.*dimension True is not an int"),
    ("broadcast-to-string", lambda: gc.broadcast_to(_x((1,)), "ab"), r"broadcast_to.*shape must be a tuple of ints, got 'ab'"),
    ("transpose-duplicate-axes", lambda: gc.transpose(_x(), (0, 0)), r"transpose.*axes \(0, 0\) are not a permutation of 2 axes"),
    ("transpose-too-few-axes", lambda: gc.transpose(_x(), (0,)), r"transpose.*not a permutation of 2 axes"),
    ("transpose-too-many-axes", lambda: gc.transpose(_x(), (0, 1, 2)), r"transpose.*axis 2 is out of range|not a permutation"),
    ("transpose-axis-float", lambda: gc.transpose(_x(), (1.0, 0.0)), r"transpose.*axis 1\.0 is not an int"),
    ("transpose-axes-int", lambda: gc.transpose(_x(), 1), r"transpose.*axes must be a sequence of ints.*got 1"),
    ("reshape-wrong-size", lambda: gc.reshape(_x(), (5, 7)), r"reshape.*cannot reshape \(2, 3\) \(6 elements\) into \(5, 7\)"),
    ("reshape-minus-one-wrong-size", lambda: gc.reshape(_x(), (4, -1)), r"reshape.*cannot reshape 6 elements into \(4, -1\)"),
    ("reshape-two-minus-ones", lambda: gc.reshape(_x(), (-1, -1)), r"reshape.*more than one -1"),
    ("reshape-negative", lambda: gc.reshape(_x(), (-2, -3)), r"reshape.*negative dimension|reshape.*cannot reshape"),
    ("reshape-float-dim", lambda: gc.reshape(_x(), (2.5, 2)), r"reshape.*dimension 2\.5 is not an int"),
    ("reshape-string", lambda: gc.reshape(_x(), "ab"), r"reshape.*shape must be a tuple of ints, got 'ab'"),
    ("reshape-none", lambda: gc.reshape(_x(), None), r"reshape.*shape must be a tuple of ints, got None"),
    ("broadcast-to-incompatible", lambda: gc.broadcast_to(_x((2, 3)), (4, 3)), r"broadcast_to.*cannot broadcast \(2, 3\) to \(4, 3\)"),
    ("broadcast-to-fewer-dims", lambda: gc.broadcast_to(_x((2, 3)), (3,)), r"broadcast_to.*cannot broadcast \(2, 3\) to \(3,\)"),
    ("broadcast-to-negative", lambda: gc.broadcast_to(_x((1,)), (-1,)), r"broadcast_to.*negative dimension"),
    ("broadcast-to-float-dim", lambda: gc.broadcast_to(_x((1,)), (2.5,)), r"broadcast_to.*dimension 2\.5 is not an int"),
    ("broadcast-to-huge", lambda: gc.broadcast_to(_x((1,)), (2**40, 2**40)), r"broadcast_to.*too large"),
    # concat, slice_axis, pad_axis
    ("concat-empty", lambda: gc.concat([]), r"concat needs at least one operand"),
    ("concat-not-a-list", lambda: gc.concat(_x()), r"concat.*a list of Values, got Value"),
    ("concat-mixed-dtypes", lambda: gc.concat(list(_pair(dtype_b="float64"))), r"concat.*different dtypes \(float32, float64\)"),
    ("concat-shapes-differ", lambda: gc.concat(list(_pair((2, 3), (4, 3))), axis=1), r"concat.*shapes \(2, 3\) and \(4, 3\) differ off axis 1"),
    ("concat-ndim-differ", lambda: gc.concat(list(_pair((2, 3), (3,)))), r"concat.*differ off axis 0"),
    ("concat-axis-out-of-range", lambda: gc.concat(list(_pair()), axis=2), r"concat.*axis 2 is out of range"),
    ("concat-axis-float", lambda: gc.concat(list(_pair()), axis=0.0), r"concat.*axis 0\.0 is not an int"),
    ("concat-scalars", lambda: gc.concat(list(_pair((), ()))), r"concat.*axis 0 is out of range for 0 dimensions"),
    ("slice-beyond-end", lambda: gc.slice_axis(_x(), 1, 0, 4), r"slice_axis.*slice \[0:4\] is outside axis 1 of length 3"),
    ("slice-reversed", lambda: gc.slice_axis(_x(), 1, 2, 1), r"slice_axis.*slice \[2:1\]"),
    ("slice-axis-out-of-range", lambda: gc.slice_axis(_x(), 2, 0, 1), r"slice_axis.*axis 2 is out of range"),
    ("slice-float-bounds", lambda: gc.slice_axis(_x(), 1, 0.5, 2), r"slice_axis.*start 0\.5 is not an int"),
    ("slice-negative-stop", lambda: gc.slice_axis(_x(), 1, 0, -1), r"slice_axis.*slice \[0:-1\] is outside axis 1"),
    ("concat-non-value-item", lambda: gc.concat([_x(), "a"]), r"concat: operand 1: cannot use a str"),
    ("concat-axis-string", lambda: gc.concat(list(_pair()), axis="0"), r"concat.*axis '0' is not an int"),
    ("pad-negative", lambda: gc.pad_axis(_x(), 0, -1, 0), r"pad_axis.*padding \(-1, 0\) is negative"),
    ("pad-axis-out-of-range", lambda: gc.pad_axis(_x(), 3, 1, 1), r"pad_axis.*axis 3 is out of range"),
    ("pad-float", lambda: gc.pad_axis(_x(), 0, 1.5, 0), r"pad_axis.*before 1\.5 is not an int"),
    # matmul
    ("matmul-mismatch", lambda: gc.matmul(*_pair((2, 3), (2, 3))), r"matmul.*contracted dimensions differ: \(2, 3\) @ \(2, 3\)"),
    ("matmul-0d-left", lambda: gc.matmul(*_pair((), (3,))), r"matmul.*at least one dimension.*use \*"),
    ("matmul-0d-right", lambda: gc.matmul(*_pair((3,), ())), r"matmul.*at least one dimension"),
    ("matmul-vectors-mismatch", lambda: gc.matmul(*_pair((3,), (4,))), r"matmul.*contracted dimensions differ"),
    ("matmul-batch-mismatch", lambda: gc.matmul(*_pair((2, 3, 4), (5, 4, 2))), r"matmul.*do not broadcast"),
    ("matmul-mixed-dtypes", lambda: gc.matmul(*_pair((2, 3), (3, 2), dtype_b="float64")), r"matmul.*dtypes differ"),
    ("matmul-scalar-constant", lambda: _x((2, 3)) @ 2.0, r"matmul.*at least one dimension"),
    ("matmul-unknown-attribute", lambda: gc.matmul(*_pair((2, 3), (3, 2)), transpose=True), r"matmul.*bad arguments.*transpose"),
    # softmax, log_softmax, one_hot, cross-entropy, mse
    ("softmax-axis-out-of-range", lambda: gc.softmax(_x(), axis=2), r"softmax.*axis 2 is out of range"),
    ("softmax-axis-float", lambda: gc.softmax(_x(), axis=1.0), r"softmax.*axis 1\.0 is not an int"),
    ("softmax-axis-tuple", lambda: gc.softmax(_x(), axis=(0, 1)), r"softmax.*axis \(0, 1\) is not an int"),
    ("softmax-scalar", lambda: gc.softmax(_x(())), r"softmax.*axis -1 is out of range for 0 dimensions|softmax.*at least one dimension"),
    ("log-softmax-axis-out-of-range", lambda: gc.log_softmax(_x(), axis=-3), r"log_softmax.*axis -3 is out of range"),
    ("log-softmax-int", lambda: gc.log_softmax(_labels()), r"log_softmax.*got int64"),
    ("one-hot-negative-classes", lambda: gc.one_hot(_labels(), -2), r"one_hot.*classes must be an int >= 1, got -2"),
    ("one-hot-zero-classes", lambda: gc.one_hot(_labels(), 0), r"one_hot.*classes must be an int >= 1, got 0"),
    ("one-hot-float-classes", lambda: gc.one_hot(_labels(), 2.5), r"one_hot.*classes must be an int >= 1, got 2\.5"),
    ("one-hot-string-classes", lambda: gc.one_hot(_labels(), "3"), r"one_hot.*classes must be an int >= 1, got '3'"),
    ("one-hot-bool-classes", lambda: gc.one_hot(_labels(), True), r"one_hot.*classes must be an int >= 1, got True"),
    ("one-hot-float-labels", lambda: gc.one_hot(_x((2,)), 3), r"one_hot.*labels must be int32 or int64, got float32"),
    ("one-hot-int8-dtype", lambda: gc.one_hot(_labels(), 3, dtype="int8"), r"one_hot.*dtype int8 is not supported; use one of float32, float64"),
    ("one-hot-unknown-dtype", lambda: gc.one_hot(_labels(), 3, dtype="float99"), r"one_hot.*'float99' is not a dtype"),
    ("cross-entropy-float-labels", lambda: gc.softmax_cross_entropy(*_pair((2, 3), (2,))), r"softmax_cross_entropy.*labels must be int32 or int64, got float32"),
    ("cross-entropy-label-shape", lambda: gc.softmax_cross_entropy(*_pair((2, 3), (3,), dtype_b="int64")), r"softmax_cross_entropy.*labels of shape \(3,\) do not index logits of shape \(2, 3\)"),
    ("cross-entropy-scalar-logits", lambda: gc.softmax_cross_entropy(*_pair((), (), dtype_b="int64")), r"softmax_cross_entropy.*do not index logits of shape \(\)"),
    ("cross-entropy-int-logits", lambda: gc.softmax_cross_entropy(*_pair((2, 3), (2,), "int64", "int64")), r"softmax_cross_entropy.*got int64"),
    ("cross-entropy-float-label-list", lambda: gc.softmax_cross_entropy(_x((2, 3)), [0.5, 1.5]), r"softmax_cross_entropy.*labels must be int32 or int64, got float64"),
    ("one-hot-numpy-float-classes", lambda: gc.one_hot(_labels(), np.float64(3)), r"one_hot.*classes must be an int >= 1, got .*3\.0"),
    ("mse-shape-mismatch", lambda: gc.mse(*_pair((2, 3), (3, 2))), r"sub.*do not broadcast"),
    ("add-n-no-terms", lambda: gc.add_n(), r"add_n needs at least one"),
    ("add-n-shapes-differ", lambda: gc.add_n(*_pair((2,), (3,))), r"add_n.*same shape and dtype"),
    # uniform and dropout
    ("uniform-float-key", lambda: gc.uniform(_key("float32"), (3,)), r"uniform.*key must be an int32 or int64 scalar, got float32"),
    ("uniform-vector-key", lambda: gc.uniform(_key(shape=(2,)), (3,)), r"uniform.*key must be an int32 or int64 scalar.*shape \(2,\)"),
    ("uniform-negative-shape", lambda: gc.uniform(_key(), (-3,)), r"uniform.*negative dimension"),
    ("uniform-float-shape", lambda: gc.uniform(_key(), (2.5,)), r"uniform.*dimension 2\.5 is not an int"),
    ("uniform-huge-shape", lambda: gc.uniform(_key(), (2**40, 2**40)), r"uniform.*too large"),
    ("uniform-int-dtype", lambda: gc.uniform(_key(), (3,), "int64"), r"uniform.*dtype int64 is not supported; use one of float32, float64"),
    ("uniform-unknown-dtype", lambda: gc.uniform(_key(), (3,), "float99"), r"uniform.*'float99' is not a dtype"),
    ("uniform-float-stream", lambda: gc.uniform(_key(), (3,), stream=1.5), r"uniform.*stream must be an int >= 0 or None, got 1\.5"),
    ("uniform-negative-stream", lambda: gc.uniform(_key(), (3,), stream=-1), r"uniform.*stream must be an int >= 0"),
    ("uniform-shape-string", lambda: gc.uniform(_key(), "ab"), r"uniform.*shape must be a tuple of ints, got 'ab'"),
    ("uniform-bool-stream", lambda: gc.uniform(_key(), (3,), stream=True), r"uniform.*stream must be an int >= 0 or None, got True"),
    ("dropout-int-x", lambda: gc.dropout(*_labels_and_key(), 0.5), r"dropout of 'labels'.*x must be float32 or float64, got int64"),
    ("dropout-rate-one", lambda: gc.dropout(_x(), _key(), 1.0), r"dropout of 'x'.*rate must be in \[0, 1\), got 1\.0"),
    ("dropout-rate-negative", lambda: gc.dropout(_x(), _key(), -0.1), r"dropout.*rate must be in \[0, 1\)"),
    ("dropout-rate-nan", lambda: gc.dropout(_x(), _key(), float("nan")), r"dropout.*rate must be in \[0, 1\), got nan"),
    ("dropout-rate-string", lambda: gc.dropout(_x(), _key(), "0.5"), r"dropout.*rate must be in \[0, 1\), got '0\.5'"),
    ("dropout-rate-none", lambda: gc.dropout(_x(), _key(), None), r"dropout.*rate must be in \[0, 1\), got None"),
    ("dropout-of-array", lambda: gc.dropout(np.ones(3), _key(), 0.5), r"dropout needs a graph Value to drop from, got ndarray"),
    ("dropout-float-key", lambda: gc.dropout(_x(), 1.5, 0.5), r"uniform.*key must be an int32 or int64 scalar, got float64"),
    ("dropout-key-of-other-graph", lambda: gc.dropout(_x(), _key(), 0.5), r"dropout of 'x'.*the key 'step'.*belongs to another graph"),
    # custom ops: defop and the rules it is given
    ("defop-name-none", lambda: gc.defop(None, infer=lambda x: x, kernel=np.copyto), r"defop: the op name must be a non-empty string, got None"),
    ("defop-name-empty", lambda: gc.defop("", infer=lambda x: x, kernel=np.copyto), r"defop: the op name must be a non-empty string"),
    ("defop-duplicate-custom-name", _define_twice, r"op named 'bad_input_defined_twice' is registered already.*replace=True"),
    ("lookup-unknown-op", lambda: lookup("no_such_op"), r"no op named 'no_such_op' is registered"),
    ("defop-builtin-name", lambda: gc.defop("add", infer=lambda x: x, kernel=np.copyto), r"op named 'add' is registered already"),
    ("defop-replace-builtin", lambda: gc.defop("tanh", infer=lambda x: x, kernel=np.copyto, replace=True), r"'tanh' is one of graphc's own ops"),
    ("defop-infer-not-callable", lambda: gc.defop("bad_input_op", infer=(2, 3), kernel=np.copyto, replace=True), r"defop 'bad_input_op': infer must be callable, got tuple"),
    ("defop-kernel-none", lambda: gc.defop("bad_input_op", infer=lambda x: x, kernel=None, replace=True), r"defop 'bad_input_op': kernel must be callable, got NoneType"),
    ("defop-vjp-number", lambda: gc.defop("bad_input_op", infer=lambda x: x, kernel=np.copyto, vjp=5, replace=True), r"defop 'bad_input_op': vjp must be a list of rules"),
    ("defop-vjp-rule-not-callable", lambda: gc.defop("bad_input_op", infer=lambda x: x, kernel=np.copyto, vjp=["g"], replace=True), r"defop 'bad_input_op': vjp rule 0 must be callable"),
    ("defop-flops-not-callable", lambda: gc.defop("bad_input_op", infer=lambda x: x, kernel=np.copyto, flops=3, replace=True), r"defop 'bad_input_op': flops must be callable"),
    ("defop-int-operands-bad", lambda: gc.defop("bad_input_op", infer=lambda x: x, kernel=np.copyto, int_operands=["a"], replace=True), r"defop 'bad_input_op': int_operands must be operand positions"),
    ("shape-rule-returns-tuple", lambda: _op(lambda x: x.shape)(_x()), r"bad_input_op.*shape rule returned tuple, not an Aval"),
    ("shape-rule-returns-list", lambda: _op(lambda x: [x])(_x()), r"bad_input_op.*shape rule returned list, not an Aval"),
    ("shape-rule-returns-none", lambda: _op(lambda x: None)(_x()), r"bad_input_op.*shape rule returned NoneType, not an Aval"),
    ("shape-rule-negative-dim", lambda: _op(lambda x: Aval((-1,), x.dtype))(_x()), r"bad_input_op.*shape rule returned .*negative dimension"),
    ("shape-rule-float-dim", lambda: _op(lambda x: Aval((2.5,), x.dtype))(_x()), r"bad_input_op.*shape rule returned .*dimension 2\.5 is not an int"),
    ("shape-rule-string-dtype", lambda: _op(lambda x: Aval(x.shape, "float32"))(_x()), r"bad_input_op.*shape rule returned .*dtype 'float32' is not a numpy dtype"),
    ("shape-rule-float16", lambda: _op(lambda x: Aval(x.shape, np.dtype(np.float16)))(_x()), r"bad_input_op.*shape rule returned .*dtype float16 is not supported"),
    ("shape-rule-raises-key-error", lambda: _op(lambda x: {}["missing"])(_x()), r"bad_input_op.*shape rule raised KeyError"),
    ("vjp-list-too-short", lambda: _op(lambda x: x, vjp=[])(_x()), r"bad_input_op.*defines 0 VJP rules for 1 operand"),
    ("vjp-list-too-long", lambda: _op(lambda x: x, vjp=[None, None])(_x()), r"bad_input_op.*defines 2 VJP rules for 1 operand"),
    ("vjp-returns-wrong-shape", lambda: _grad_through([lambda g, y, x: gc.sum(g)]), r"VJP of op 'bad_input_op'.*returned \(\) float64.*needs \(3,\) float64"),
    ("vjp-returns-wrong-dtype", lambda: _grad_through([lambda g, y, x: gc.constant(np.ones(3, np.float32))]), r"VJP of op 'bad_input_op'.*returned \(3,\) float32"),
    ("vjp-returns-none", lambda: _grad_through([lambda g, y, x: None]), r"VJP of op 'bad_input_op'.*returned NoneType"),
    ("vjp-returns-tuple", lambda: _grad_through([lambda g, y, x: (g, g)]), r"VJP of op 'bad_input_op'.*returned tuple"),
    ("vjp-returns-array", lambda: _grad_through([lambda g, y, x: np.ones(3)]), r"VJP of op 'bad_input_op'.*returned ndarray"),
    ("vjp-returns-other-graph", lambda: _grad_through([lambda g, y, x: _x((3,), "float64")]), r"VJP of op 'bad_input_op'.*returned a Value of another graph"),
    ("vjp-missing", lambda: _grad_through(None), r"op 'bad_input_op' defines no VJP for operand 0"),
    # grad
    ("grad-y-not-value", lambda: gc.grad(3.0, _x()), r"grad: y must be a graphc Value, got float"),
    ("grad-wrt-empty-list", lambda: gc.grad(_loss(), []), r"grad: wrt is empty.*give the Values"),
    ("grad-wrt-none", lambda: gc.grad(_loss(), None), r"grad: wrt must be a Value or a list of Values, got None"),
    ("grad-wrt-string", lambda: gc.grad(_loss(), "w"), r"grad: wrt must be a Value or a list of Values, got 'w'"),
    ("grad-wrt-non-value-item", lambda: gc.grad(_loss(), [_model()[1], 3.0]), r"grad: wrt\[1\].*expected a graphc Value, got float"),
    ("grad-wrt-generator", lambda: gc.grad(_loss(), (v for v in [])), r"grad: wrt must be a Value or a list of Values, got <generator"),
    ("grad-wrt-nested-list", lambda: (lambda x, w, loss: gc.grad(loss, [[w]]))(*_model()), r"grad: wrt\[0\].*expected a graphc Value, got list"),
    ("grad-wrt-other-graph", lambda: gc.grad(_loss(), _other_graph_param()), r"wrt 'v'.*belongs to graph"),
    ("grad-wrt-int-input", lambda: gc.grad(_loss(), _labels()), r"wrt 'labels'.*not a float value"),
    ("grad-y-int", lambda: gc.grad(*_pair((), (), "int64", "float32")), r"y 'a'.*not a float value, so it has no gradient"),
    ("grad-y-not-scalar", lambda: (lambda x: gc.grad(x, x))(_x()), r"y 'x'.*is not a scalar: give seed="),
    ("grad-seed-wrong-shape", lambda: _grad_of_model(seed=np.ones(3)), r"seed has shape \(3,\), but y .* has shape \(\)"),
    ("grad-seed-string", lambda: _grad_of_model(seed="one"), r"seed.*dtype <U3|seed.*str"),
    ("grad-seed-ragged", lambda: _grad_of_model(seed=[[1.0], [1.0, 2.0]]), r"grad: seed is not a rectangular array"),
    ("grad-seed-complex", lambda: _grad_of_model(seed=1j), r"seed.*dtype complex128"),
    ("grad-seed-value-wrong-shape", lambda: (lambda x: gc.grad(gc.tanh(x), x, seed=gc.sum(x)))(_x()), r"seed .* must be a Value of y's graph with y's shape and dtype"),
    ("grad-seed-value-wrong-dtype", lambda: (lambda a, b: gc.grad(gc.tanh(a), a, seed=b))(*_pair(dtype_b="float64")), r"seed 'b'.*y's shape and dtype"),
    ("grad-seed-value-other-graph", lambda: (lambda x: gc.grad(gc.tanh(x), x, seed=_x()))(_x()), r"seed 'x'.*Value of y's graph"),
    # compile: outputs
    ("compile-none", lambda: gc.compile(None), r"compile: outputs must be a Value or a list of Values, got None"),
    ("compile-empty-list", lambda: gc.compile([]), r"compile needs at least one output"),
    ("compile-string", lambda: gc.compile("loss"), r"compile: outputs must be a Value or a list of Values, got 'loss'"),
    ("compile-number", lambda: gc.compile(3.0), r"compile: outputs must be a Value or a list of Values, got 3\.0"),
    ("compile-list-with-float", lambda: gc.compile([_loss(), 3.0]), r"compile: outputs\[1\].*expected a graphc Value, got float"),
    ("compile-list-with-none", lambda: gc.compile([None]), r"compile: outputs\[0\].*expected a graphc Value, got NoneType"),
    ("compile-dict", lambda: gc.compile({"loss": _loss()}), r"compile: outputs must be a Value or a list of Values, got \{'loss'"),
    ("compile-empty-tuple", lambda: gc.compile(()), r"compile needs at least one output"),
    ("compile-two-graphs", lambda: gc.compile([_loss(), _loss()]), r"output .* belongs to graph"),
    ("compile-name-int", lambda: gc.compile(_loss(), name=5), r"compile: name must be a non-empty string or None, got 5"),
    # compile: options
    ("remat-unknown", lambda: gc.compile(_loss(), remat="fast"), r"remat='fast' is not a known policy; choose one of none, sqrt"),
    ("remat-none-object", lambda: gc.compile(_loss(), remat=None), r"remat=None is not a known policy"),
    ("remat-list", lambda: gc.compile(_loss(), remat=["sqrt"]), r"remat=\['sqrt'\] is not a known policy"),
    ("remat-uppercase", lambda: gc.compile(_loss(), remat="SQRT"), r"remat='SQRT' is not a known policy"),
    ("memory-unknown", lambda: gc.compile(_loss(), memory="x"), r"memory='x' is not a placement mode; choose one of"),
    ("memory-none", lambda: gc.compile(_loss(), memory=None), r"memory=None is not a placement mode"),
    ("memory-int", lambda: gc.compile(_loss(), memory=0), r"memory=0 is not a placement mode"),
    ("budget-numpy-float", lambda: gc.compile(_loss(), memory_budget=np.float64(100)), r"memory_budget=.*100\.0.* must be an int"),
    ("budget-nan", lambda: gc.compile(_loss(), memory_budget=float("nan")), r"memory_budget=nan must be an int number of bytes >= 0, or None"),
    ("budget-inf", lambda: gc.compile(_loss(), memory_budget=float("inf")), r"memory_budget=inf must be an int"),
    ("budget-float", lambda: gc.compile(_loss(), memory_budget=2.5), r"memory_budget=2\.5 must be an int"),
    ("budget-integral-float", lambda: gc.compile(_loss(), memory_budget=100.0), r"memory_budget=100\.0 must be an int"),
    ("budget-string", lambda: gc.compile(_loss(), memory_budget="100"), r"memory_budget='100' must be an int"),
    ("budget-bool", lambda: gc.compile(_loss(), memory_budget=True), r"memory_budget=True must be an int"),
    ("budget-negative", lambda: gc.compile(_loss(), memory_budget=-1), r"memory_budget=-1 must be an int number of bytes >= 0"),
    ("budget-list", lambda: gc.compile(_loss(), memory_budget=[100]), r"memory_budget=\[100\] must be an int"),
    ("time-limit-complex", lambda: gc.compile(_loss(), time_limit=1j), r"time_limit=1j must be a number of seconds > 0"),
    ("time-limit-zero", lambda: gc.compile(_loss(), time_limit=0), r"time_limit=0 must be a number of seconds > 0"),
    ("time-limit-negative", lambda: gc.compile(_loss(), time_limit=-5), r"time_limit=-5 must be a number of seconds > 0"),
    ("time-limit-nan", lambda: gc.compile(_loss(), time_limit=float("nan")), r"time_limit=nan must be a number of seconds > 0"),
    ("time-limit-inf", lambda: gc.compile(_loss(), time_limit=float("inf")), r"time_limit=inf must be a number of seconds > 0, and finite"),
    ("time-limit-string", lambda: gc.compile(_loss(), time_limit="10"), r"time_limit='10' must be a number of seconds > 0"),
    ("time-limit-none", lambda: gc.compile(_loss(), time_limit=None), r"time_limit=None must be a number"),
    ("time-limit-bool", lambda: gc.compile(_loss(), time_limit=True), r"time_limit=True must be a number"),
    # compile: updates
    ("updates-int", lambda: gc.compile(_loss(), updates=5), r"updates=5 must be a mapping \{param: new value\} or a list of \(param, new value\) pairs"),
    ("updates-string", lambda: gc.compile(_loss(), updates="w"), r"updates='w' must be a mapping"),
    ("updates-list-of-values", lambda: (lambda x, w, loss: gc.compile(loss, updates=[w]))(*_model()), r"updates\[0\] must be a \(param, new value\) pair"),
    ("updates-string-key", lambda: (lambda x, w, loss: gc.compile(loss, updates={"w": w - 1.0}))(*_model()), r"updates: the key 'w' must be a param Value, got str"),
    ("updates-input-key", lambda: (lambda x, w, loss: gc.compile(loss, updates={x: x * 2.0}))(*_model()), r"updates: 'x' \(input.*is not a param; only params can be updated"),
    ("updates-computed-key", lambda: (lambda x, w, loss: gc.compile(loss, updates={w * 2.0: w}))(*_model()), r"updates: .*\(mul.*is not a param"),
    ("updates-triple", lambda: (lambda x, w, loss: gc.compile(loss, updates=[(w, w, w)]))(*_model()), r"updates\[0\] must be a \(param, new value\) pair"),
    ("updates-none-value", lambda: _update(lambda w: None), r"updates: the new value of 'w'.*got NoneType"),
    ("updates-float-value", lambda: _update(lambda w: 0.5), r"updates: the new value of 'w'.*must be a Value of its graph, got float"),
    ("updates-array-value", lambda: _update(lambda w: np.zeros(3, np.float32)), r"updates: the new value of 'w'.*got ndarray"),
    ("updates-wrong-shape", lambda: _update(lambda w: gc.sum(w)), r"updates: new value .*\(\) float32.*does not match param 'w'.*\(3,\) float32"),
    ("updates-wrong-dtype", _update_to_float64, r"updates: new value .*float64.*does not match param 'w'.*float32"),
    ("updates-other-graph-param", lambda: (lambda v: gc.compile(_loss(), updates={v: v * 0.5}))(_other_graph_param()), r"updates: 'v'.*must belong to the compiled graph"),
    ("updates-param-twice", lambda: (lambda x, w, loss: gc.compile(loss, updates=[(w, w * 0.5), (w, w * 2.0)]))(*_model()), r"updates: param 'w' is updated twice"),
    # gradcheck and render take the same Values
    ("gradcheck-y-not-value", lambda: gc.gradcheck(3.0, [_model()[1]]), r"expected a graphc Value, got float"),
    ("gradcheck-wrt-empty", lambda: (lambda x, w, loss: gc.gradcheck(loss, [], {"x": np.ones(3, np.float32)}))(*_model()), r"grad: wrt is empty"),
    ("to-dot-none", lambda: gc.to_dot(None), r"render: expected a Graph, a list of Values or a Program, got NoneType"),
    ("render-unknown-suffix", lambda: gc.render(_model()[2].graph, "graph.xyz"), r"render: cannot tell the image type of 'graph\.xyz'; use a suffix among"),
    # stored params
    ("assign-wrong-shape", lambda: _model()[1].assign(np.ones((1, 3), np.float32)), r"assigned value for 'w'.*has shape \(1, 3\), expected \(3,\)"),
    ("assign-wrong-dtype", lambda: _model()[1].assign(np.ones(3)), r"assigned value for 'w'.*dtype float64, expected float32.*astype"),
    ("assign-to-input", lambda: _model()[0].assign(np.ones(3, np.float32)), r"'x' \(input.*is not a param; only params can be assigned"),
    ("value-of-input", lambda: _model()[0].value, r"'x' \(input.*has no stored value"),
    ("sgd-lr-string", lambda: (lambda x, w, loss: gc.sgd(loss, [w], "0.1"))(*_model()), r"sgd: lr='0\.1' must be a finite number"),
    ("sgd-lr-nan", lambda: (lambda x, w, loss: gc.sgd(loss, [w], float("nan")))(*_model()), r"sgd: lr=nan must be a finite number"),
]


# --- runs: feeds, labels, stored params, updates ----------------------------------


def _mlp_program(**compile_args):
    with gc.Graph("bad-run") as g:
        x = gc.input("x", shape=(2, 3), dtype="float64")
        y = gc.input("y", shape=(2,), dtype="int64")
        w = gc.param("w", shape=(3, 4), dtype="float64", init=np.ones((3, 4)))
        loss = gc.softmax_cross_entropy(x @ w, y)
    return gc.compile(loss, **compile_args), g, x, w, loss


def _run(feeds):
    prog, *_ = _mlp_program()
    return prog.run(feeds)


def _good(**changes):
    feeds = {"x": np.zeros((2, 3)), "y": np.array([0, 3])}
    feeds.update(changes)
    return feeds


def _run_with_value_key():
    prog, _, x, _, _ = _mlp_program()
    return prog.run({x: np.zeros((2, 3)), "y": np.array([0, 1])})


def _run_with_value_fed():
    prog, _, x, _, _ = _mlp_program()
    return prog.run({"x": x, "y": np.array([0, 1])})


def _one_hot_run(labels):
    with gc.Graph("bad-one-hot"):
        y = gc.input("y", shape=(3,), dtype="int64")
        out = gc.one_hot(y, 4)
    return gc.compile(out).run({"y": np.array(labels)})


def _compile_with_stored(stored):
    prog, g, x, w, loss = _mlp_program()
    w.node.data = stored
    return gc.compile(loss)


def _program_with_stored(stored):
    prog, *_ = _mlp_program()
    return gc.Program(prog.plan, {"w": stored})


def _two_param_update(spoil):
    with gc.Graph("bad-update"):
        w1 = gc.param("w1", shape=(3,), dtype="float64", init=np.ones(3))
        w2 = gc.param("w2", shape=(3,), dtype="float64", init=np.ones(3))
        loss = gc.sum(w1 * w2)
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, w2], 0.1))
    spoil(w2)
    return prog.run()


def _make_read_only(w):
    w.node.data.flags.writeable = False


def _replace_stored(w):
    w.node.data = np.zeros(3)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("run-feeds-list", lambda: _run([np.zeros((2, 3))]), r"feeds must be a mapping.*list"),
    ("run-feeds-array", lambda: _run(np.zeros((2, 3))), r"feeds must be a mapping.*ndarray"),
    ("run-feeds-string", lambda: _run("x"), r"feeds must be a mapping.*str"),
    ("run-feeds-value-key", _run_with_value_key, r"keyed by name: use \{'x': \.\.\.\}"),
    ("run-feeds-int-key", lambda: _run({0: np.zeros((2, 3))}), r"feed key 0 is a int.*name"),
    ("run-feed-is-a-value", _run_with_value_fed, r"feed 'x'.*graph Value.*NumPy array"),
    ("run-feed-ragged-list", lambda: _run(_good(x=[[1.0, 2.0, 3.0], [1.0]])), r"feed 'x'.*rectangular"),
    ("run-feed-object-dtype", lambda: _run(_good(x=np.zeros((2, 3), dtype=object))), r"feed 'x'.*dtype object"),
    ("run-feed-string-values", lambda: _run(_good(x=np.full((2, 3), "a"))), r"feed 'x'.*dtype str"),
    ("run-feed-none-value", lambda: _run(_good(x=None)), r"feed 'x'.*dtype object"),
    ("run-feed-complex", lambda: _run(_good(x=np.zeros((2, 3), complex))), r"feed 'x'.*complex128"),
    ("run-feed-int-for-float", lambda: _run(_good(x=np.zeros((2, 3), int))), r"feed 'x'.*int64.*np\.asarray\(value, dtype=np\.float64\)"),
    ("run-feed-float32-for-float64", lambda: _run(_good(x=np.zeros((2, 3), np.float32))), r"feed 'x'.*float32.*dtype=np\.float64"),
    ("run-feed-wrong-shape", lambda: _run(_good(x=np.zeros((3, 2)))), r"feed 'x'.*shape \(3, 2\).*\(2, 3\)"),
    ("run-feed-missing", lambda: _run({"y": np.array([0, 1])}), r"input 'x'.*needed but was not fed"),
    ("run-feed-unknown-name", lambda: _run(_good(z=np.zeros(1))), r"'z' names no input or param"),
    ("run-fed-param-wrong-shape", lambda: _run(_good(w=np.ones((4, 3)))), r"feed 'w'.*param.*\(4, 3\)"),
    ("run-labels-negative", lambda: _run(_good(y=np.array([0, -1]))), r"softmax_cross_entropy.*\[0, 4\) for 4 classes.*-1"),
    ("run-labels-out-of-range", lambda: _run(_good(y=np.array([4, 0]))), r"softmax_cross_entropy.*\[0, 4\) for 4 classes.*4"),
    ("run-labels-float", lambda: _run(_good(y=np.array([0.0, 1.0]))), r"feed 'y'.*float64.*dtype=np\.int64"),
    ("run-labels-fractional", lambda: _run(_good(y=np.array([0.5, 1.0]))), r"feed 'y'.*non-integral"),
    ("run-labels-nan", lambda: _run(_good(y=np.array([np.nan, 1.0]))), r"feed 'y'.*NaN"),
    ("run-labels-int32-for-int64", lambda: _run(_good(y=np.array([0, 1], np.int32))), r"feed 'y'.*int32.*np\.int64"),
    ("run-one-hot-negative", lambda: _one_hot_run([0, -2, 1]), r"one_hot.*\[0, 4\) for 4 classes.*-2"),
    ("run-one-hot-out-of-range", lambda: _one_hot_run([0, 9, 1]), r"one_hot.*\[0, 4\) for 4 classes.*9"),
    ("stored-param-wrong-shape", lambda: _compile_with_stored(np.ones((1, 3, 4))), r"param 'w'.*\(1, 3, 4\).*\(3, 4\)"),
    ("stored-param-wrong-dtype", lambda: _compile_with_stored(np.ones((3, 4), np.float32)), r"param 'w'.*float32.*float64"),
    ("stored-param-not-an-array", lambda: _compile_with_stored([[1.0] * 4] * 3), r"param 'w'.*list, not a NumPy array"),
    ("program-stored-param-wrong-shape", lambda: _program_with_stored(np.ones((1, 4))), r"param 'w'.*\(1, 4\)"),
    ("update-read-only-param", lambda: _two_param_update(_make_read_only), r"param 'w2'.*read-only.*no param was written"),
    ("update-replaced-param", lambda: _two_param_update(_replace_stored), r"param 'w2'.*replaced.*assign"),
    ("compile-check-numerics-not-bool", lambda: _mlp_program(check_numerics="yes"), r"check_numerics.*True or False"),
]


# --- plan files: damaged files and documents (signed again, so each field check is its own) 


@functools.lru_cache(maxsize=None)
def _plan_text() -> str:
    """A small training step: a const, a view, scratch (softmax), int labels and two updates."""
    with gc.Graph("planfile-case") as g:
        x = gc.input("x", shape=(4, 3), dtype="float64")
        labels = gc.input("labels", shape=(4,), dtype="int64")
        w = gc.param("w", shape=(3, 5), dtype="float64")
        b = gc.param("b", shape=(5,), dtype="float64")
        h = gc.tanh(x @ w + b)
        loss = gc.softmax_cross_entropy(h * 2.0, labels) + gc.sum(gc.transpose(h) ** 2)
    return gc.compile(loss, updates=gc.sgd(loss, [w, b], 0.1)).plan.to_json()


def _document() -> dict[str, Any]:
    return json.loads(_plan_text())


def _load_signed(doc: dict[str, Any]) -> gc.Plan:
    doc["sha256"] = content_digest(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _load_edited(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    """Load the case plan after ``edit`` changed its document in place (then signed again)."""
    doc = _document()
    edit(doc)
    return _load_signed(doc)


def _index(doc: dict[str, Any], kind: str) -> int:
    return next(k for k, b in enumerate(doc["buffers"]) if b["kind"] == kind)


def _step(doc: dict[str, Any], op: str) -> int:
    return next(k for k, i in enumerate(doc["instructions"]) if i["op"] == op)


def _set(doc: dict[str, Any], path: tuple, value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _temps_at_zero(doc: dict[str, Any]) -> None:
    for b in doc["buffers"]:
        if b["kind"] in ("temp", "scratch"):
            b["offset"] = 0


def _param_to_float32(doc: dict[str, Any]) -> None:
    doc["buffers"][_index(doc, "param")]["dtype"] = "float32"


def _edit_constant_data(doc: dict[str, Any]) -> None:
    """An edit that keeps the file well-formed: one constant's first byte changed, digest left as it was."""
    value = next(iter(doc["constants"].values()))
    value["data"] = ("B" if value["data"][0] != "B" else "C") + value["data"][1:]


def _unsigned(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    doc = _document()
    edit(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _read_missing_file() -> gc.Plan:
    return read_plan_file(Path(__file__).parent / "no-such-plan.json")


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("planfile-path-missing", _read_missing_file, r"no-such-plan\.json.* does not exist"),
    ("planfile-path-directory", lambda: read_plan_file(Path(__file__).parent), r"is a directory"),
    ("planfile-path-not-a-path", lambda: read_plan_file(3), r"path must be a str"),
    ("planfile-file-empty", lambda: read_plan_file("/dev/null"), r"/dev/null.* empty"),
    ("planfile-file-not-json", lambda: read_plan_file(Path(gc.__file__).parent / "data" / "README.md"), r"README\.md.* not valid JSON"),
    ("planfile-file-not-utf8", lambda: read_plan_file(Path(gc.__file__).parent / "data" / "digits.npz"), r"not valid JSON"),
    ("planfile-text-not-a-string", lambda: gc.Plan.from_json({"format": "graphc-plan"}), r"JSON text of a plan"),
    ("planfile-text-empty", lambda: gc.Plan.from_json(""), r"empty"),
    ("planfile-text-not-json", lambda: gc.Plan.from_json("{'format': 'graphc-plan'"), r"not valid JSON"),
    ("planfile-text-truncated", lambda: gc.Plan.from_json(_plan_text()[: len(_plan_text()) // 2]), r"not valid JSON"),
    ("planfile-json-huge-int", lambda: gc.Plan.from_json('{"version": ' + "9" * 5000 + "}"), r"not valid JSON"),
    ("planfile-json-list", lambda: gc.Plan.from_json("[1, 2, 3]"), r"JSON list, not an object"),
    ("planfile-json-deep", lambda: gc.Plan.from_json("[" * 100_000 + "]" * 100_000), r"nests deeper|not valid JSON"),
    ("planfile-other-format", lambda: _unsigned(lambda d: _set(d, ("format",), "onnx")), r"format 'onnx'"),
    ("planfile-future-version", lambda: _unsigned(lambda d: _set(d, ("version",), 5)), r"version 5 is not supported"),
    ("planfile-older-version", lambda: _unsigned(lambda d: _set(d, ("version",), 2)), r"version 2 is not supported.*reads versions 3 and 4"),
    ("planfile-version-string", lambda: _unsigned(lambda d: _set(d, ("version",), "2")), r"version '2' is not supported"),
    ("planfile-digest-mismatch", lambda: _unsigned(_edit_constant_data), r"sha256 does not match"),
    ("planfile-digest-missing", lambda: _unsigned(lambda d: d.pop("sha256")), r"lacks the field 'sha256'"),
    ("planfile-unknown-field", lambda: _load_edited(lambda d: _set(d, ("comment",), "hi")), r"unknown field 'comment'"),
    ("planfile-missing-buffers", lambda: _load_edited(lambda d: d.pop("buffers")), r"lacks the field 'buffers'"),
    ("planfile-arena-float", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), 1024.0)), r"arena_bytes is 1024\.0"),
    ("planfile-arena-negative", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), -64)), r"arena_bytes is -64"),
    ("planfile-arena-huge", lambda: _load_edited(lambda d: _set(d, ("arena_bytes",), 2**60)), r"larger than its buffers side by side"),
    ("planfile-buffers-object", lambda: _load_edited(lambda d: _set(d, ("buffers",), {})), r"buffers is a JSON object, expected a list"),
    ("planfile-buffer-id-mismatch", lambda: _load_edited(lambda d: _set(d, ("buffers", 2, "id"), 3)), r"buffers\[2\]\.id is 3"),
    ("planfile-buffer-id-bool", lambda: _load_edited(lambda d: _set(d, ("buffers", 1, "id"), True)), r"buffers\[1\]\.id is True"),
    ("planfile-buffer-kind-unknown", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "kind"), "heap")), r"buffers\[0\]\.kind is 'heap'"),
    ("planfile-buffer-dtype-unknown", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "dtype"), "float16")), r"buffers\[0\]\.dtype is 'float16'"),
    ("planfile-buffer-shape-float", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), [4.0, 3])), r"buffers\[0\]\.shape\[0\] is 4\.0"),
    ("planfile-buffer-shape-negative", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), [-4, 3])), r"buffers\[0\]\.shape\[0\] is -4"),
    ("planfile-buffer-shape-string", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "shape"), "43")), r"buffers\[0\]\.shape is a JSON string"),
    ("planfile-buffer-missing-offset", lambda: _load_edited(lambda d: d["buffers"][0].pop("offset")), r"buffers\[0\] lacks the field 'offset'"),
    ("planfile-input-with-offset", lambda: _load_edited(lambda d: _set(d, ("buffers", 0, "offset"), 0)), r"buffers\[0\]\.offset is 0, but a input"),
    ("planfile-temp-offset-negative", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), -64)), r"\.offset is -64"),
    ("planfile-temp-offset-null", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), None)), r"\.offset is None"),
    ("planfile-temp-off-arena", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "temp"), "offset"), 2**20)), r"off the arena"),
    ("planfile-temps-overlap", lambda: _load_edited(_temps_at_zero), r"share memory while both are live"),
    ("planfile-first-instruction-dropped", lambda: _load_edited(lambda d: d["instructions"].pop(0)), r"before anything writes it"),
    ("planfile-param-dtype-edited", lambda: _load_edited(_param_to_float32), r"instruction \d+: .*float32"),
    ("planfile-op-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "op"), "conv9d")), r"instructions\[0\]\.op is 'conv9d'"),
    ("planfile-mode-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "mode"), "jit")), r"instructions\[0\]\.mode is 'jit'"),
    ("planfile-tag-unknown", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "tag"), "side")), r"instructions\[0\]\.tag is 'side'"),
    ("planfile-arg-out-of-range", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "args", 0), 10**6)), r"instructions\[0\]\.args\[0\] is %1000000"),
    ("planfile-arg-string", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "args", 0), "%0")), r"instructions\[0\]\.args\[0\] is '%0'"),
    ("planfile-out-negative", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "out"), -1)), r"instructions\[0\]\.out is -1"),
    ("planfile-attrs-list", lambda: _load_edited(lambda d: _set(d, ("instructions", 0, "attrs"), [])), r"instructions\[0\]\.attrs is a JSON list"),
    ("planfile-attr-object", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "attrs", "axes"), {"a": 1})), r"attrs\.axes is a JSON object"),
    ("planfile-attr-refused", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "attrs", "axes"), [0, 0])), r"transpose .* does not accept"),
    ("planfile-view-run-as-kernel", lambda: _load_edited(lambda d: _set(d, ("instructions", _step(d, "transpose"), "mode"), "kernel")), r"runs in mode 'kernel'"),
    ("planfile-output-out-of-range", lambda: _load_edited(lambda d: _set(d, ("outputs",), [999])), r"outputs\[0\] is %999"),
    ("planfile-constants-list", lambda: _load_edited(lambda d: _set(d, ("constants",), [])), r"constants is a JSON list"),
    ("planfile-constant-missing", lambda: _load_edited(lambda d: d["constants"].popitem()), r"constants lacks the value of const buffer"),
    ("planfile-constant-for-a-temp", lambda: _load_edited(lambda d: _set(d, ("constants", str(_index(d, "temp"))), d["constants"][next(iter(d["constants"]))])), r"names no const buffer"),
    ("planfile-constant-bad-base64", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "data"), "!!!")), r"\.data is not valid base64"),
    ("planfile-constant-short-data", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "data"), "AAAA")), r"holds 3 bytes"),
    ("planfile-constant-dtype", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "dtype"), "<f4")), r"\.dtype is <f4, but buffer"),
    ("planfile-constant-dtype-garbage", lambda: _load_edited(lambda d: _set(d, ("constants", next(iter(d["constants"])), "dtype"), "fp64")), r"'fp64', which is not a dtype"),
    ("planfile-duplicate-feed-name", lambda: _load_edited(lambda d: _set(d, ("buffers", _index(d, "param"), "name"), "x")), r"have the same name"),
]


# --- recompute: budgets and time limits -------------------------------------------


def _chain_outputs() -> list[gc.Value]:
    _, values = zoo.chain(3, width=8, batch=16)
    return zoo.training_outputs(values)


def _compile_chain(policy: str, budget: object, time_limit: float = 2.0) -> gc.Program:
    return gc.compile(_chain_outputs(), remat=policy, memory_budget=budget, time_limit=time_limit)


def _rematerialize_chain(policy: str, budget: object, time_limit: object = 2.0):
    flow = passes.optimize([v.node for v in _chain_outputs()])
    return remat.rematerialize(flow, policy, budget, lambda f: 1, time_limit)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("remat-budget-zero", lambda: _compile_chain("sqrt", 0), r"memory_budget=0 B .*least feasible budget .* [\d,]+ B"),
    ("remat-budget-below-floor", lambda: _compile_chain("revolve", 1000), r"least feasible budget for it is [\d,]+ B"),
    ("remat-budget-below-floor-optimal", lambda: _compile_chain("optimal", 1000), r"least feasible budget .*[\d,]+ B"),
    ("remat-budget-negative", lambda: _rematerialize_chain("sqrt", -1), r"memory_budget=-1 B .*least feasible budget"),
    ("remat-budget-float", lambda: _rematerialize_chain("sqrt", 2.5), r"memory_budget=2\.5 .*whole number of bytes"),
    ("remat-budget-bool", lambda: _rematerialize_chain("revolve", True), r"memory_budget=True .*whole number"),
    ("remat-budget-str", lambda: _rematerialize_chain("optimal", "100"), r"memory_budget='100' .*whole number"),
    ("remat-time-limit-zero", lambda: _compile_chain("optimal", None, time_limit=0), r"time_limit"),
    ("remat-time-limit-nan", lambda: _rematerialize_chain("sqrt", 10**6, float("nan")), r"time_limit=nan"),
]


# --- optimizers, param roles and astype ---------------------------------------


def _optim_model(dtype: str = "float32"):
    """``(x, w, b, loss)``: a linear model under squared error, in a fresh graph."""
    with gc.Graph("optim-case"):
        x = gc.input("x", (4, 3), dtype)
        w = gc.param("w", (3, 2), dtype)
        b = gc.param("b", (2,), dtype)
        return x, w, b, gc.mean((x @ w + b) ** 2)


def _optim_call(optimizer: str, **kwargs):
    """``gc.optim.<optimizer>(loss, [w, b], **kwargs)`` on a fresh model."""
    x, w, b, loss = _optim_model()
    return getattr(gc.optim, optimizer)(loss, [w, b], **kwargs)


def _optim_params(pick):
    """An optimizer over ``pick(x, w, b, loss)`` (a list) on a fresh model."""
    x, w, b, loss = _optim_model()
    return gc.optim.adam(loss, pick(x, w, b, loss))


def _optim_state_param():
    x, w, b, loss = _optim_model()
    updates = gc.optim.adam(loss, [w])
    state = next(v for v in updates if v.role == "state")
    return gc.optim.sgd(loss, [b, state], lr=0.1)


def _optim_twice():
    x, w, b, loss = _optim_model()
    gc.optim.sgd(loss, [w, b], lr=0.1, momentum=0.9)
    return gc.optim.sgd(loss, [b], lr=0.1, momentum=0.9)


def _optim_vector_loss():
    x, w, b, loss = _optim_model()
    return gc.optim.adam(x @ w + b, [w, b])


def _optim_other_graph():
    x, w, b, loss = _optim_model()
    with gc.Graph("other"):
        v = gc.param("v", (2,))
    return gc.optim.sgd(loss, [w, v], lr=0.1)


def _optim_param_with_role(role):
    with gc.Graph("role-case"):
        return gc.param("w", (2,), role=role)


def _optim_astype(dtype):
    with gc.Graph("astype-case"):
        return gc.astype(gc.input("x", (2,)), dtype)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("optim-sgd-lr-negative", lambda: _optim_call("sgd", lr=-0.1), r"optim\.sgd: lr=-0\.1 is invalid; lr must be a finite number >= 0"),
    ("optim-sgd-lr-nan", lambda: _optim_call("sgd", lr=float("nan")), r"optim\.sgd: lr=nan is invalid"),
    ("optim-sgd-lr-string", lambda: _optim_call("sgd", lr="0.1"), r"optim\.sgd: lr='0\.1' is invalid; lr must be a finite number"),
    ("optim-sgd-momentum-negative", lambda: _optim_call("sgd", lr=0.1, momentum=-0.9), r"momentum=-0\.9 is invalid; momentum must be a finite number >= 0"),
    ("optim-sgd-dampening-infinite", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, dampening=float("inf")), r"dampening=inf is invalid; dampening must be a finite number"),
    ("optim-sgd-weight-decay-negative", lambda: _optim_call("sgd", lr=0.1, weight_decay=-1e-4), r"weight_decay=-0\.0001 is invalid; weight_decay must be a finite number >= 0"),
    ("optim-sgd-nesterov-without-momentum", lambda: _optim_call("sgd", lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0 and dampening = 0, got momentum=0"),
    ("optim-sgd-nesterov-with-dampening", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"nesterov=True needs .*dampening=0\.1"),
    ("optim-sgd-nesterov-not-bool", lambda: _optim_call("sgd", lr=0.1, momentum=0.9, nesterov="yes"), r"nesterov='yes' is invalid; nesterov must be True or False"),
    ("optim-adam-beta1-one", lambda: _optim_call("adam", betas=(1.0, 0.999)), r"optim\.adam: betas\[0\]=1\.0 is invalid; betas\[0\] must be a finite number in \[0, 1\)"),
    ("optim-adam-beta2-negative", lambda: _optim_call("adam", betas=(0.9, -0.5)), r"betas\[1\]=-0\.5 is invalid; betas\[1\] must be a finite number in \[0, 1\)"),
    ("optim-adam-betas-not-a-pair", lambda: _optim_call("adam", betas=0.9), r"betas=0\.9 is invalid; betas must be a pair \(beta1, beta2\)"),
    ("optim-adam-eps-negative", lambda: _optim_call("adam", eps=-1e-8), r"eps=-1e-08 is invalid; eps must be a finite number >= 0"),
    ("optim-adam-weight-decay-negative", lambda: _optim_call("adam", weight_decay=-0.1), r"optim\.adam: weight_decay=-0\.1 is invalid"),
    ("optim-adam-amsgrad-not-bool", lambda: _optim_call("adam", amsgrad=1), r"amsgrad=1 is invalid; amsgrad must be True or False"),
    ("optim-adamw-lr-negative", lambda: _optim_call("adamw", lr=-1e-3), r"optim\.adamw: lr=-0\.001 is invalid; lr must be a finite number >= 0"),
    ("optim-adamw-beta1-above-one", lambda: _optim_call("adamw", betas=(1.5, 0.999)), r"optim\.adamw: betas\[0\]=1\.5 is invalid"),
    ("optim-rmsprop-alpha-negative", lambda: _optim_call("rmsprop", alpha=-0.99), r"optim\.rmsprop: alpha=-0\.99 is invalid; alpha must be a finite number >= 0"),
    ("optim-rmsprop-momentum-negative", lambda: _optim_call("rmsprop", momentum=-0.1), r"optim\.rmsprop: momentum=-0\.1 is invalid"),
    ("optim-rmsprop-eps-nan", lambda: _optim_call("rmsprop", eps=float("nan")), r"optim\.rmsprop: eps=nan is invalid"),
    ("optim-rmsprop-centered-not-bool", lambda: _optim_call("rmsprop", centered=None), r"centered=None is invalid; centered must be True or False"),
    ("optim-params-empty", lambda: _optim_params(lambda x, w, b, loss: []), r"optim\.adam: params is empty; give the list of params to train"),
    ("optim-params-one-value", lambda: _optim_params(lambda x, w, b, loss: w), r"params must be a list of param Values, got Value; write \[w, b\]"),
    ("optim-params-not-a-value", lambda: _optim_params(lambda x, w, b, loss: [w, "b"]), r"optim\.adam: params\[1\]: expected a graphc Value, got str"),
    ("optim-params-an-input", lambda: _optim_params(lambda x, w, b, loss: [w, x]), r"params\[1\] 'x' \(input, shape \(4, 3\), float32\) is not a param; only params are trained"),
    ("optim-params-a-computed-value", lambda: _optim_params(lambda x, w, b, loss: [w * 2.0]), r"params\[0\] 'mul_\d+' \(mul, shape \(3, 2\), float32\) is not a param"),
    ("optim-params-twice", lambda: _optim_params(lambda x, w, b, loss: [w, b, w]), r"params\[2\] 'w' appears twice in params; list each param once"),
    ("optim-params-a-state-param", _optim_state_param, r"optim\.sgd: params\[1\] 'w\.step' .* has role 'state': it is state, updated by a plan and never trained"),
    ("optim-state-created-twice", _optim_twice, r"optim\.sgd: this call would create the state param 'b\.momentum_buffer', but graph 'optim-case' has one of that name already \(param of role 'state', shape \(2,\), float32\).*pass name='\.\.\.'"),
    ("optim-name-empty", lambda: _optim_call("adam", name=""), r"optim\.adam: name='' is invalid; name must be a non-empty string"),
    ("optim-loss-not-scalar", _optim_vector_loss, r"optim\.adam: loss 'add_\d+' \(add, shape \(4, 2\), float32\) is not a scalar; an optimizer minimises one number: reduce it first"),
    ("optim-loss-not-a-value", lambda: gc.optim.rmsprop(1.5, _optim_model()[1:3]), r"optim\.rmsprop: loss must be a scalar Value of the graph, got float"),
    ("optim-params-of-another-graph", _optim_other_graph, r"params\[1\] 'v' \(param, shape \(2,\), float32\) belongs to graph 'other', not to the loss's graph 'optim-case'"),
    ("param-role-unknown", lambda: _optim_param_with_role("buffer"), r"param 'w': role='buffer' is not a param role; choose one of 'param', 'state'"),
    ("param-role-none", lambda: _optim_param_with_role(None), r"param 'w': role=None is not a param role"),
    ("astype-to-int", lambda: _optim_astype("int32"), r"astype: dtype int32 is not supported; use one of float32, float64"),
    ("astype-not-a-dtype", lambda: _optim_astype("half-precision"), r"astype: 'half-precision' is not a dtype"),
]


# --- save and load: paths and damaged, edited, foreign or mismatched files ----


# --- helpers: a small program and params file, saved in memory, and ways to damage them -------


@functools.lru_cache(maxsize=None)
def _step_program() -> tuple[gc.Graph, gc.Program]:
    """An SGD step of a small float64 MLP (params W1 (3, 4), b1, W2, b2)."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    loss = values["loss"]
    return graph, gc.compile(loss, updates=gc.sgd(loss, values["params"], 0.1))


def _saved_program() -> bytes:
    buffer = io.BytesIO()
    _step_program()[1].save(buffer)
    return buffer.getvalue()


def _saved_params() -> bytes:
    buffer = io.BytesIO()
    gc.save_params(_step_program()[0], buffer)
    return buffer.getvalue()


def _fresh_graph() -> gc.Graph:
    """A graph with the same params as the saved step, which a load may change."""
    return zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")[0]


def _load(data: bytes, **options: Any) -> gc.Program:
    return gc.load(io.BytesIO(data), **options)


def _load_params(data: bytes) -> None:
    gc.load_params(_fresh_graph(), io.BytesIO(data))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _rewrite(
    data: bytes,
    *,
    arrays: dict[str, np.ndarray] | None = None,
    drop: tuple[str, ...] = (),
    edit: Callable[[dict], None] | None = None,
    resign: bool = True,
) -> bytes:
    """The file again (a valid zip, CRCs right) with members replaced or added (``arrays``,
    by param name), members dropped, and the manifest edited (signed again unless ``resign=False``)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {name: source.read(name) for name in source.namelist()}
    if edit is not None:
        manifest = json.loads(np.load(io.BytesIO(members[MANIFEST + ".npy"])).tobytes())
        edit(manifest)
        if resign:
            manifest["sha256"] = content_digest(manifest)
        members[MANIFEST + ".npy"] = _npy(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))
    for name, array in (arrays or {}).items():
        members[name + ".npy"] = _npy(array)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in members.items():
            if name[: -len(".npy")] not in drop:
                target.writestr(name, content)
    return out.getvalue()


def _flip_in_array(data: bytes, name: str) -> bytes:
    """The file with one byte flipped inside param ``name``'s stored bytes (its CRC now wrong)."""
    start = data.find(_step_program()[0].params[name].data.tobytes())
    assert start > 0
    damaged = bytearray(data)
    damaged[start + 3] ^= 0x40
    return bytes(damaged)


def _edit_plan(manifest: dict) -> None:
    """Rename the plan inside the manifest without signing the plan again."""
    plan = json.loads(manifest["plan"])
    plan["name"] = "edited"
    manifest["plan"] = json.dumps(plan)


def _set_field(key: str, value: Any) -> Callable[[dict], None]:
    return lambda manifest: manifest.__setitem__(key, value)


def _drop_entry(name: str) -> Callable[[dict], None]:
    return lambda manifest: manifest.__setitem__("params", [e for e in manifest["params"] if e["name"] != name])


def _unstored_program() -> gc.Program:
    """A loss's plan as a Program without stored params (they would be fed at every run)."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    return gc.Program(gc.compile(values["loss"]).plan)


def _save_replaced_param() -> None:
    """A program whose graph param was replaced by an array of another shape, then saved."""
    graph, values = zoo.mlp(2, sizes=(3, 4, 2), dtype="float64")
    program = gc.compile(values["loss"])
    graph.params["b1"].data = np.zeros(5)
    program.save(io.BytesIO())


def _graph_with_param(name: str) -> gc.Graph:
    with gc.Graph("names") as graph:
        gc.param(name, (2,), seed=0)  # a seed: the default one is derived from the name's UTF-8
    return graph


def _plain_npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _step_params(**changes: Any) -> dict[str, np.ndarray]:
    """The step's params by name, with some replaced (None drops one)."""
    params = {name: node.data for name, node in _step_program()[0].params.items()}
    params.update(changes)
    return {name: array for name, array in params.items() if array is not None}


def _npz_with_text_member() -> bytes:
    """A plain .npz of the step's params plus a member that is no array."""
    buffer = io.BytesIO(_plain_npz(**_step_params()))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("notes.txt", "trained on digits")
    return buffer.getvalue()


def _read_only_load() -> None:
    graph = _fresh_graph()
    graph.params["b2"].data.flags.writeable = False
    gc.load_params(graph, io.BytesIO(_saved_params()))


_HERE = Path(__file__).parent


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("load-path-missing", lambda: gc.load(_HERE / "no-such-program.npz"), r"no-such-program\.npz.*does not exist"),
    ("load-path-directory", lambda: gc.load(_HERE), r"is a directory"),
    ("load-path-not-a-path", lambda: gc.load(3), r"path must be a str"),
    ("load-not-a-zip", lambda: _load(b"graphc? no: plain text"), r"not a complete zip"),
    ("load-empty-file", lambda: _load(b""), r"not a complete zip"),
    ("load-truncated", lambda: _load(_saved_program()[: len(_saved_program()) // 2]), r"not a complete zip"),
    ("load-truncated-tail", lambda: _load(_saved_program()[:-1]), r"not a complete zip"),
    ("load-foreign-npz", lambda: _load(_plain_npz(a=np.zeros(2))), r"no '__graphc__' member.*not written by prog\.save"),
    ("load-byte-flipped-array", lambda: _load(_flip_in_array(_saved_program(), "W1")), r"'W1'.*(CRC|sha256)"),
    ("load-edited-array", lambda: _load(_rewrite(_saved_program(), arrays=_step_params(W1=np.ones((3, 4))))),
     r"array of 'W1' does not match its sha256"),
    ("load-edited-manifest", lambda: _load(_rewrite(_saved_program(), edit=_set_field("returns", "list"), resign=False)),
     r"manifest's sha256 does not match"),
    ("load-edited-plan", lambda: _load(_rewrite(_saved_program(), edit=_edit_plan)), r"its plan: sha256 does not match"),
    ("load-wrong-format", lambda: _load(_rewrite(_saved_program(), edit=_set_field("format", "zip-of-stuff"))),
     r"format 'zip-of-stuff', expected 'graphc-program'"),
    ("load-wrong-version", lambda: _load(_rewrite(_saved_program(), edit=_set_field("version", 99))),
     r"version 99 is not supported"),
    ("load-params-file-as-program", lambda: _load(_saved_params()), r"graphc-params.*gc\.load_params"),
    ("load-array-wrong-shape", lambda: _load(_rewrite(_saved_program(), arrays={"W1": np.zeros((4, 3))})),
     r"does not match its plan: the array of 'W1' is \(4, 3\) float64, expected \(3, 4\) float64"),
    ("load-array-wrong-dtype", lambda: _load(_rewrite(_saved_program(), arrays={"b1": np.zeros(4, np.float32)})),
     r"'b1' is \(4,\) float32, expected \(4,\) float64"),
    ("load-missing-param-array", lambda: _load(_rewrite(_saved_program(), drop=("W2",))), r"lacks the array of 'W2', which its manifest lists"),
    ("load-extra-member", lambda: _load(_rewrite(_saved_program(), arrays={"extra": np.zeros(1)})),
     r"unknown member 'extra\.npy', which its manifest does not list"),
    ("load-manifest-lacks-param", lambda: _load(_rewrite(_saved_program(), edit=_drop_entry("b2"), drop=("b2",))),
     r"missing param 'b2' of the plan"),
    ("load-manifest-returns-bad", lambda: _load(_rewrite(_saved_program(), edit=_set_field("returns", "tuple"))),
     r"returns is 'tuple'"),
    ("load-check-numerics-not-bool", lambda: _load(_saved_program(), check_numerics="yes"), r"check_numerics='yes'"),
    ("save-program-to-directory", lambda: _step_program()[1].save(_HERE), r"is a directory"),
    ("save-program-missing-directory", lambda: _step_program()[1].save(_HERE / "no-such-dir" / "p.npz"),
     r"no-such-dir.* does not exist"),
    ("save-program-path-not-a-path", lambda: _step_program()[1].save(3.5), r"path must be a str"),
    ("save-program-unstored-params", lambda: _unstored_program().save(io.BytesIO()), r"'W1', 'W2', 'b1', 'b2' of plan .* no stored value in this program"),
    ("save-program-replaced-param", _save_replaced_param, r"'b1' is \(5,\) float64, but the plan's param is \(4,\)"),
    ("save-params-reserved-name", lambda: gc.save_params(_graph_with_param(MANIFEST), io.BytesIO()),
     r"'__graphc__' cannot be saved under its name.*rename"),
    ("save-params-name-not-utf8", lambda: gc.save_params(_graph_with_param("w\ud800"), io.BytesIO()),
     r"'w\\ud800' cannot be saved under its name.*rename"),
    ("save-params-not-a-graph", lambda: gc.save_params("mlp", io.BytesIO()), r"must be a gc\.Graph"),
    ("load-params-not-a-graph", lambda: gc.load_params(None, io.BytesIO(_saved_params())), r"must be a gc\.Graph"),
    ("load-params-program-file", lambda: _load_params(_saved_program()), r"graphc-program.*gc\.load\(path\)"),
    ("load-params-missing-name", lambda: _load_params(_plain_npz(**_step_params(b2=None))), r"missing param 'b2'"),
    ("load-params-extra-name", lambda: _load_params(_plain_npz(**_step_params(W3=np.zeros(2)))),
     r"param 'W3' unknown to graph"),
    ("load-params-wrong-shape", lambda: _load_params(_plain_npz(**_step_params(W2=np.zeros((2, 4))))),
     r"does not fit graph .*'W2' is \(2, 4\) float64, expected \(4, 2\) float64.*no param was changed"),
    ("load-params-wrong-dtype", lambda: _load_params(_plain_npz(**_step_params(W2=np.zeros((4, 2), np.float32)))),
     r"does not fit graph .*'W2' is \(4, 2\) float32, expected \(4, 2\) float64"),
    ("load-params-edited-array", lambda: _load_params(_rewrite(_saved_params(), arrays={"b1": np.ones(4)})),
     r"array of 'b1' does not match its sha256"),
    ("load-params-truncated", lambda: _load_params(_saved_params()[:100]), r"not a complete zip"),
    ("load-params-read-only", _read_only_load, r"'b2'.*read-only.*no param was changed"),
    ("load-params-foreign-member", lambda: _load_params(_npz_with_text_member()), r"notes\.txt.*no \.npy array"),
]


# --- a batch that varies: None dims, specialised sizes ------------------------


def _batch_graph(build):
    """Run ``build()`` in a fresh graph holding an input x of shape (None, 3) (float64)."""
    with gc.Graph("batch"):
        return build(gc.input("x", (None, 3), "float64"))


def _batch_program(**options):
    """A program of mean(x · w) over a (None, 3) input x and int labels (None,)."""
    with gc.Graph("batch"):
        x = gc.input("x", (None, 3), "float64")
        labels = gc.input("labels", (None,), "int64")
        w = gc.param("w", (3, 2), "float64")
        loss = gc.softmax_cross_entropy(x @ w, labels)
        return gc.compile([loss, gc.grad(loss, w)], **options)


def _batch_feeds(rows=4, label_rows=None):
    return {"x": np.ones((rows, 3)), "labels": np.zeros(rows if label_rows is None else label_rows, np.int64)}


def _slice_grad_of_batch_axis():
    def build(x):
        return gc.grad(gc.sum(gc.slice_axis(x, 0, 0, 2)), x)

    return _batch_graph(build)


def _slice_past_the_batch():
    def build(x):
        return gc.compile(gc.sum(gc.slice_axis(x, 0, 0, 6)))

    return _batch_graph(build).run({"x": np.ones((4, 3))})


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("batch-param-none", lambda: _batch_graph(lambda x: gc.param("w", (None, 3))), r"param 'w'.*batch size \(None\).*fixed shape"),
    ("batch-input-none-and-float", lambda: _batch_graph(lambda x: gc.input("y", (None, 2.5))), r"input 'y'.*dimension 2.5"),
    ("batch-reshape-multiplies", lambda: _batch_graph(lambda x: gc.reshape(x, (-1,))), r"reshape: the result's shape is \(3027,\).*batch size.*graphc supports the batch only as a dimension of its own"),
    ("batch-reshape-none-twice", lambda: _batch_graph(lambda x: gc.reshape(x, (None, None, 3))), r"reshape.*cannot reshape"),
    ("batch-broadcast-fixed", lambda: _batch_graph(lambda x: x + np.ones((5, 3))), r"add: shapes \(1009, 3\) and \(5, 3\) do not broadcast.*'x' \(None, 3\)"),
    ("batch-concat-batch-axis", lambda: _batch_graph(lambda x: gc.concat([x, x], axis=0)), r"concat: the result's shape is \(2018, 3\).*depends on the batch size"),
    ("batch-slice-grad-batch-axis", _slice_grad_of_batch_axis, r"slice_axis \[0:2\] of 'x'.*batch axis 0.*slice along the other axes"),
    ("batch-slice-past-the-size", _slice_past_the_batch, r"batch size 4: 'slice_axis_\d+' \(slice_axis.*cannot be built for this size.*outside axis 0 of length 4"),
    ("batch-inputs-disagree", lambda: _batch_program().run(_batch_feeds(4, label_rows=5)), r"inputs 'x' and 'labels' disagree on the batch size: 'x' is fed shape \(4, 3\) \(batch 4\) and 'labels' shape \(5,\) \(batch 5\)"),
    ("batch-size-zero-feed", lambda: _batch_program().run(_batch_feeds(0)), r"feed 'x' has shape \(0, 3\).*at least one row"),
    ("batch-specialize-zero", lambda: _batch_program().specialize(0), r"batch size 0.*at least one row"),
    ("batch-specialize-not-int", lambda: _batch_program().specialize(2.5), r"batch size 2.5 is not an int"),
    ("batch-specialize-bool", lambda: _batch_program().specialize(True), r"batch size True is not an int"),
    ("batch-feed-fixed-dim", lambda: _batch_program().run({"x": np.ones((4, 2)), "labels": np.zeros(4, np.int64)}), r"feed 'x' \(the graph's input of shape \(None, 3\) float64; None is the batch size\) has shape \(4, 2\)"),
    ("batch-feed-ndim", lambda: _batch_program().run({"x": np.ones(4), "labels": np.zeros(4, np.int64)}), r"feed 'x'.*has shape \(4,\); feed an array of shape \(None, 3\)"),
    ("batch-feed-ragged", lambda: _batch_program().run({"x": [[1.0, 2.0, 3.0], [1.0]], "labels": np.zeros(2, np.int64)}), r"feed 'x'.*cannot be made an array"),
    ("batch-feed-dtype", lambda: _batch_program().run({"x": np.ones((4, 3), np.float32), "labels": np.zeros(4, np.int64)}), r"feed 'x'.*has dtype float32"),
    ("batch-no-batched-input-fed", lambda: _batch_program().run({}), r"no fed input gives the batch size.*'x', 'labels'.*prog.specialize\(size\)"),
    ("batch-unknown-feed", lambda: _batch_program().run({**_batch_feeds(), "z": 1.0}), r"feed 'z' names no input or param"),
    ("batch-plan-before-run", lambda: _batch_program().plan, r"no plan yet.*batch size \(None\).*run it or call prog.specialize\(size\)"),
    ("batch-cost-before-run", lambda: _batch_program().cost, r"no plan yet.*prog.specialize\(size\)"),
    ("batch-budget-below-the-size", lambda: _batch_program(memory_budget=8).run(_batch_feeds(64)), r"budget"),
    ("batch-size-of-shape-none", lambda: _batch_graph(lambda x: x.aval.size), r"shape \(None, 3\) holds the batch size \(None\).*prog.specialize\(size\)"),
]


# --- planning without binding -------------------------------------------------


def _bind_loss(batch=2):
    """A small scalar loss; ``batch=None`` makes a graph whose batch size varies."""
    with gc.Graph("bind-case"):
        x = gc.input("x", shape=(batch, 3))
        w = gc.param("w", shape=(3, 2))
        return gc.sum(x @ w)


def _run_unbound(batch=2):
    prog = gc.compile(_bind_loss(None if batch is None else batch), bind=False)
    prog.run({"x": np.ones((2, 3), np.float32)})


def _saved_unbound_program() -> io.BytesIO:
    file = io.BytesIO()
    gc.compile(_bind_loss(), bind=False).save(file)
    file.seek(0)
    return file


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("bind-string", lambda: gc.compile(_bind_loss(), bind="yes"), r"bind='yes'.*True.*False"),
    ("bind-int", lambda: gc.compile(_bind_loss(), bind=1), r"bind=1.*True.*False"),
    ("bind-string-batch", lambda: gc.compile(_bind_loss(None), bind="no"), r"bind='no'.*True.*False"),
    ("bind-load-string", lambda: gc.load(_saved_unbound_program(), bind="lazy"), r"bind='lazy'.*True.*False"),
    ("bind-run-unbound", lambda: _run_unbound(), r"bind=False.*prog\.bind\(\)"),
    ("bind-run-unbound-batch", lambda: _run_unbound(None), r"bind=False.*prog\.bind\(\)"),
]


# --- elementwise ops, comparisons and moments: their arguments ---------------------


def _in_list(value: gc.Value, other: gc.Value) -> bool:
    """``value in [other]``: asks ``value == other`` (a node) for a truth value."""
    return value in [other]


def _same_graph_pair_in_list():
    a, b = _pair()
    return _in_list(a, b)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("gelu-approximate-fast", lambda: gc.gelu(_x(), approximate="fast"), r"gelu: approximate must be 'none'.*or 'tanh', got 'fast'.*'x' \(2, 3\)"),
    ("gelu-approximate-bool", lambda: gc.gelu(_x(), approximate=True), r"gelu: approximate must be 'none'.*got True"),
    ("clip-min-above-max", lambda: gc.clip(_x(), 1.0, -1.0), r"clip: a_min 1.0 is greater than a_max -1.0; give a_min <= a_max"),
    ("clip-no-bounds", lambda: gc.clip(_x()), r"clip: needs a_min or a_max \(both are None\)"),
    ("clip-nan-bound", lambda: gc.clip(_x(), np.nan, 1.0), r"clip: a_min is NaN"),
    ("clip-array-bound", lambda: gc.clip(_x(), np.zeros(3), 1.0), r"clip: a_min must be a number or None"),
    ("clip-bool-bound", lambda: gc.clip(_x(), a_max=True), r"clip: a_max must be a number or None, got True"),
    ("var-ddof-negative", lambda: gc.var(_x(), ddof=-1), r"var: ddof must be a number >= 0.*got -1"),
    ("std-ddof-string", lambda: gc.std(_x(), ddof="1"), r"std: ddof must be a number >= 0.*got '1'"),
    ("var-ddof-nan", lambda: gc.var(_x(), ddof=float("nan")), r"var: ddof must be a number >= 0.*got nan"),
    ("var-axis-out-of-range", lambda: gc.var(_x(), axis=2), r"var: axis 2 is out of range for 2 dimensions"),
    ("std-int-operand", lambda: gc.std(_x(dtype="int64")), r"std: expects float32 or float64, got int64"),
    ("logsumexp-keepdims-not-bool", lambda: gc.logsumexp(_x(), keepdims=1), r"logsumexp: keepdims must be True or False"),
    ("logsumexp-axis-repeated", lambda: gc.logsumexp(_x(), axis=(1, -1)), r"logsumexp: axis \(1, -1\) repeats an axis"),
    ("softplus-beta-zero", lambda: gc.softplus(_x(), beta=0), r"softplus: beta must be > 0, got 0"),
    ("softplus-threshold-inf", lambda: gc.softplus(_x(), threshold=np.inf), r"softplus: threshold must be a finite number"),
    ("where-shapes", lambda: (lambda a, b: gc.where(a > 0, a, b))(*_pair((2, 3), (4,))), r"where: shapes \(2, 3\) and \(2, 3\) and \(4,\) do not broadcast"),
    ("where-dtypes", lambda: (lambda a, b: gc.where(a > 0, a, b))(*_pair(dtype_b="float64")), r"where: dtypes differ \(float32, float64\)"),
    ("less-operator-dtypes", lambda: (lambda a, b: a < b)(*_pair(dtype_b="float64")), r"less: dtypes differ"),
    ("greater-equal-operator-shapes", lambda: (lambda a, b: a >= b)(*_pair((2, 3), (4,))), r"greater_equal: shapes \(2, 3\) and \(4,\) do not broadcast"),
    ("minimum-int-operand", lambda: gc.minimum(_x(dtype="int64"), 1), r"minimum: expects float32 or float64, got int64"),
    ("abs-str-operand", lambda: gc.abs("x"), r"abs: operand 0: cannot use a str"),
    ("eq-has-no-truth-value", lambda: bool((lambda a, b: a == b)(*_pair())), r"symbolic.*Comparisons.*build graph nodes.*`a is b`"),
    ("value-in-list-of-others", _same_graph_pair_in_list, r"symbolic.*`a in list_of_values` cannot be decided"),
    ("reshape-method-size", lambda: _x().reshape(4, 4), r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, 4\)"),
    ("transpose-method-axes", lambda: _x().transpose(0, 0), r"transpose: axes \(0, 0\) are not a permutation"),
    ("astype-method-int", lambda: _x().astype("int64"), r"astype: dtype int64 is not supported"),
    ("sum-method-axis", lambda: _x().sum(axis=3), r"sum: axis 3 is out of range"),
]


# --- convolution and pooling -------------------------------------------------


def _image_and_weight(x_shape=(1, 4, 6, 6), w_shape=(2, 4, 3, 3), x_dtype="float32", w_dtype="float32"):
    """An image ``x`` and a weight ``w``, inputs of one fresh graph."""
    with gc.Graph("conv-case"):
        return gc.input("x", x_shape, x_dtype), gc.input("w", w_shape, w_dtype)


def _conv(x_shape=(1, 4, 6, 6), w_shape=(2, 4, 3, 3), x_dtype="float32", w_dtype="float32", **kwargs):
    x, w = _image_and_weight(x_shape, w_shape, x_dtype, w_dtype)
    return gc.conv2d(x, w, **kwargs)


def _image(shape=(1, 2, 6, 6)) -> gc.Value:
    with gc.Graph("pool-case"):
        return gc.input("x", shape)


CASES += [
    ("conv2d-input-not-4d", lambda: _conv(x_shape=(4, 6, 6)), r"conv2d.*input must be 4-D \(N, C, H, W\), got shape \(4, 6, 6\)"),
    ("conv2d-weight-not-4d", lambda: _conv(w_shape=(2, 4, 3)), r"conv2d.*weight must be 4-D \(O, C/groups, kH, kW\)"),
    ("conv2d-dtypes-differ", lambda: _conv(w_dtype="float64"), r"conv2d.*dtypes differ.*cast"),
    ("conv2d-int-image", lambda: _conv(x_dtype="int64", w_dtype="int64"), r"conv2d.*float32 or float64"),
    ("conv2d-channels-not-divisible-by-groups", lambda: _conv((1, 3, 6, 6), (2, 1, 3, 3), groups=2),
     r"conv2d.*3 channels are not divisible by groups=2.*'x' \(1, 3, 6, 6\)"),
    ("conv2d-out-channels-not-divisible-by-groups", lambda: _conv((1, 4, 6, 6), (3, 2, 3, 3), groups=2),
     r"conv2d.*3 output channels are not divisible by groups=2"),
    ("conv2d-weight-channels-per-group", lambda: _conv((1, 4, 6, 6), (2, 3, 3, 3)),
     r"conv2d.*takes 3 channels per group.*4 channels in 1 group.*\(O, C/groups, kH, kW\)"),
    ("conv2d-depthwise-weight-not-one-channel", lambda: _conv((1, 4, 6, 6), (4, 4, 3, 3), groups=4),
     r"conv2d.*takes 4 channels per group.*4 groups?"),
    ("conv2d-kernel-bigger-than-padded-input", lambda: _conv((1, 4, 2, 6), (2, 4, 3, 3), padding=0),
     r"conv2d.*kernel spans 3 along H.*padded input has only 2.*smaller kernel or more padding"),
    ("conv2d-dilated-kernel-bigger-than-input", lambda: _conv((1, 4, 6, 6), (2, 4, 3, 3), dilation=3),
     r"conv2d.*kernel spans 7 along H \(size 3, dilation 3\)"),
    ("conv2d-stride-zero", lambda: _conv(stride=0), r"conv2d.*stride must be >= 1, got 0"),
    ("conv2d-stride-float", lambda: _conv(stride=1.5), r"conv2d.*stride must be an int or a pair of ints, got 1.5"),
    ("conv2d-stride-triple", lambda: _conv(stride=(1, 2, 3)), r"conv2d.*stride must be an int or a pair"),
    ("conv2d-padding-negative", lambda: _conv(padding=-1), r"conv2d.*padding must be >= 0, got -1"),
    ("conv2d-padding-unknown-word", lambda: _conv(padding="full"), r"conv2d.*padding must be 'valid', 'same'"),
    ("conv2d-same-padding-with-stride", lambda: _conv(padding="same", stride=2),
     r"conv2d.*padding='same' needs stride 1.*give the padding as ints"),
    ("conv2d-dilation-zero", lambda: _conv(dilation=0), r"conv2d.*dilation must be >= 1"),
    ("conv2d-groups-zero", lambda: _conv(groups=0), r"conv2d.*groups must be an int >= 1, got 0"),
    ("conv2d-bias-wrong-length", lambda: _conv(bias=np.zeros(3, np.float32)),
     r"conv2d.*bias.*shape \(3,\).*2 output channels.*shape \(2,\)"),
    ("max_pool2d-input-not-4d", lambda: gc.max_pool2d(_image((2, 6, 6)), 2), r"max_pool2d.*input must be 4-D"),
    ("max_pool2d-kernel-zero", lambda: gc.max_pool2d(_image(), 0), r"max_pool2d.*kernel_size must be >= 1"),
    ("max_pool2d-stride-zero", lambda: gc.max_pool2d(_image(), 2, stride=0), r"max_pool2d.*stride must be >= 1"),
    ("max_pool2d-padding-over-half-kernel", lambda: gc.max_pool2d(_image(), 2, padding=2),
     r"max_pool2d.*padding \(2, 2\) must be at most half the kernel size \(2, 2\)"),
    ("max_pool2d-window-bigger-than-input", lambda: gc.max_pool2d(_image((1, 2, 2, 6)), 3),
     r"max_pool2d.*window spans 3 along H.*only 2.*smaller kernel_size"),
    ("max_pool2d-ceil-mode-not-bool", lambda: gc.max_pool2d(_image(), 2, ceil_mode="yes"),
     r"max_pool2d.*ceil_mode must be True or False"),
    ("avg_pool2d-kernel-pair-of-three", lambda: gc.avg_pool2d(_image(), (2, 2, 2)),
     r"avg_pool2d.*kernel_size must be an int or a pair of ints"),
    ("avg_pool2d-count-include-pad-not-bool", lambda: gc.avg_pool2d(_image(), 2, count_include_pad=None),
     r"avg_pool2d.*count_include_pad must be True or False"),
    ("avg_pool2d-padding-over-half-kernel", lambda: gc.avg_pool2d(_image(), 3, padding=2),
     r"avg_pool2d.*at most half the kernel size"),
    ("global_avg_pool-not-4d", lambda: gc.global_avg_pool(_image((2, 6, 6))),
     r"global_avg_pool of 'x' \(input.*must be 4-D \(N, C, H, W\), got shape \(2, 6, 6\)"),
    ("global_avg_pool-not-a-value", lambda: gc.global_avg_pool(np.zeros((1, 2, 3, 3))), r"global_avg_pool needs a graph Value"),
    ("flatten-dim-out-of-range", lambda: gc.flatten(_image(), 4), r"flatten of 'x' \(input.*must be ints in \[-4, 3\]"),
    ("flatten-start-after-end", lambda: gc.flatten(_image(), 2, 1), r"flatten of 'x' \(input.*start_dim 2 comes after end_dim 1"),
]


# --- indexing and gathers ----------------------------------------------------


def _index_x(shape=(2, 3), dtype="float32") -> gc.Value:
    """An input ``x`` of a fresh graph."""
    with gc.Graph("index-case"):
        return gc.input("x", shape, dtype)


def _index_pair(shape=(2, 3), index_shape=(), index_dtype="int64"):
    """An input ``x`` and an index input ``i`` of one fresh graph."""
    with gc.Graph("index-case"):
        return gc.input("x", shape), gc.input("i", index_shape, index_dtype)


def _index_run(build, feeds):
    """Compile ``build()``'s Value (built in a fresh graph) and run it with ``feeds``."""
    with gc.Graph("index-run"):
        y = build()
    return gc.compile([y]).run(feeds)


def _take_fed(indices):
    def build():
        return gc.take(gc.input("a", (4, 3)), gc.input("i", (2,), "int64"), axis=1)
    return _index_run(build, {"a": np.ones((4, 3), np.float32), "i": np.asarray(indices)})


def _embedding_fed(tokens):
    def build():
        return gc.embedding(gc.input("t", (3,), "int64"), gc.param("w", (5, 2)))
    return _index_run(build, {"t": np.asarray(tokens)})


def _list_of(value):
    return list(value)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("index-bool-mask-array", lambda: _index_x()[np.array([True, False])], r"entry 0 of 'x'.*boolean mask.*gc\.where"),
    ("index-bool-scalar", lambda: _index_x()[True], r"entry 0 of 'x'.*boolean mask.*gc\.where"),
    ("index-float-mask-value", lambda: (lambda x: x[x > 0])(_index_x()), r"float32 Value.*cannot index.*gc\.where.*gc\.take"),
    ("index-value-slice-bound", lambda: (lambda x, i: x[:i])(*_index_pair()), r"a Value as a slice bound.*gc\.take\(x, indices, axis\)"),
    ("index-two-int-arrays", lambda: _index_x()[[0, 1], [1, 2]], r"'x'.*2 integer arrays \(entries 0, 1\).*one axis at a time"),
    ("index-array-and-int-value", lambda: (lambda x, i: x[[0, 1], i])(*_index_pair()), r"2 integer arrays.*gc\.take"),
    ("index-int-out-of-range", lambda: _index_x()[2], r"getitem: index 2 is out of range for axis 0 of length 2.*'x' \(2, 3\)"),
    ("index-negative-out-of-range", lambda: _index_x()[:, -4], r"index -4 is out of range for axis 1 of length 3"),
    ("index-too-many", lambda: _index_x()[0, 1, 2], r"too many indices: 3 for a value of 2 dimensions"),
    ("index-two-ellipses", lambda: _index_x()[..., 0, ...], r"only one ellipsis"),
    ("index-slice-step-zero", lambda: _index_x()[::0], r"slice step cannot be zero"),
    ("index-slice-float-bound", lambda: _index_x()[0.5:], r"slice start 0\.5 is not an int"),
    ("index-float", lambda: _index_x()[1.5], r"entry 0 of 'x'.*cannot index with a float"),
    ("index-string", lambda: _index_x()["rows"], r"cannot index with a str"),
    ("index-float-array", lambda: _index_x()[np.array([0.5])], r"an array of float64 cannot index; indices are ints"),
    ("index-list-out-of-range", lambda: _index_x()[:, [0, 3]], r"x\[...\] of 'x'.*gather along axis 1: indices must lie in \[-3, 3\) for axis 1 of length 3.*e\.g\. 3"),
    ("index-batch-axis-from-end", lambda: _index_x((None, 3))[-1], r"entry -1 indexes axis 0, the batch axis \(None\).*keep it whole"),
    ("index-iterate-value", lambda: _list_of(_index_x()), r"'x'.*cannot be iterated.*x\[0\]"),
    ("getitem-of-array", lambda: gc.getitem(np.ones(3), 0), r"getitem needs a graph Value to index, got ndarray"),
    ("take-of-array", lambda: gc.take(np.ones(3), [0]), r"take needs a graph Value to take from, got ndarray"),
    ("take-float-indices", lambda: gc.take(*_index_pair(index_shape=(2,), index_dtype="float32"), axis=0), r"take: indices must be int32 or int64, got float32"),
    ("take-constant-out-of-range", lambda: gc.take(_index_x(), [0, 2], axis=0), r"take from 'x'.*\[-2, 2\) for axis 0 of length 2.*e\.g\. 2.*fix the indices"),
    ("take-axis-out-of-range", lambda: gc.take(_index_x(), [0], axis=2), r"take: axis 2 is out of range for 2 dimensions"),
    ("take-of-scalar-along-axis", lambda: gc.take(_index_x(()), [0], axis=0), r"cannot take along an axis of a 0-d value.*axis=None"),
    ("take-fed-out-of-range", lambda: _take_fed([0, 3]), r"op 'take'.*indices must lie in \[-3, 3\) for axis 1 of length 3.*e\.g\. 3.*fix the indices fed"),
    ("embedding-weight-1d", lambda: gc.embedding([0, 1], _index_x((4,))), r"embedding: weight must be 2-D.*got shape \(4,\)"),
    ("embedding-float-input", lambda: gc.embedding(*reversed(_index_pair((4, 2), (3,), "float32"))), r"embedding: input \(the indices\) must be int32 or int64, got float32"),
    ("embedding-padding-out-of-range", lambda: gc.embedding([0], _index_x((4, 2)), padding_idx=4), r"padding_idx must be None or an int in \[-4, 4\), got 4"),
    ("embedding-constant-negative", lambda: gc.embedding([0, -1], _index_x((4, 2))), r"embedding from 'x'.*\[0, 4\).*e\.g\. -1"),
    ("embedding-fed-out-of-range", lambda: _embedding_fed([0, 5, 1]), r"op 'embedding'.*indices must lie in \[0, 5\) for axis 0 of length 5.*e\.g\. 5"),
    ("embedding-fed-negative", lambda: _embedding_fed([0, -1, 1]), r"op 'embedding'.*\[0, 5\).*e\.g\. -1"),
    ("scatter-add-shape-mismatch", lambda: gc.scatter_add(*_index_pair((3, 2), (4,)), 0, (5, 2)), r"scatter_add: g of shape \(3, 2\) does not match indices \(4,\).*want \(4, 2\)"),
    ("getitem-grad-shape-mismatch", lambda: gc.getitem_grad(_index_x((3,)), (0,), (4, 2)), r"getitem_grad: g of shape \(3,\) is not the shape \(2,\) of x\[index\]"),
    ("dropout-train-not-bool", lambda: gc.dropout(*_index_pair(), 0.5, train="no"), r"dropout of 'x'.*train must be True or False, got 'no'"),
]


# --- layer norm and batch norm -----------------------------------------------


def _norm_graph(build, shape=(4, 3), dtype="float32"):
    """``build(x)`` inside a fresh graph with an input ``x`` of ``shape``."""
    with gc.Graph("norm-case"):
        return build(gc.input("x", shape, dtype))


def _stats(channels=3, dtype="float32", role="state", prefix="bn"):
    mean = gc.param(f"{prefix}.running_mean", (channels,), dtype, init=0.0, role=role)
    var = gc.param(f"{prefix}.running_var", (channels,), dtype, init=1.0, role=role)
    return mean, var


def _train(x, **kwargs):
    return gc.batch_norm(x, *_stats(x.shape[1]), training=True, **kwargs)


def _running_stat_also_in_updates():
    with gc.Graph("norm-case"):
        x = gc.input("x", (4, 3))
        mean, var = _stats()
        y = gc.batch_norm(x, mean, var, training=True)
        gc.compile(gc.sum(y), updates={mean: mean * 0.5})


def _two_batch_norms_share_statistics():
    with gc.Graph("norm-case"):
        x = gc.input("x", (4, 3))
        mean, var = _stats()
        gc.batch_norm(x, mean, var, training=True)
        gc.batch_norm(x * 2.0, mean, var, training=True)


def _running_mean_of_another_dtype():
    with gc.Graph("norm-case"):
        x = gc.input("x", (4, 3), "float64")
        gc.batch_norm(x, *_stats(3, "float32"), training=True)


def _varying_batch_of_one():
    with gc.Graph("norm-case"):
        x = gc.input("x", (None, 3))
        y = gc.batch_norm(x, None, None, training=True)
    gc.compile(y).run({"x": np.ones((1, 3), np.float32)})


CASES += [
    ("layer_norm-shape-not-trailing", lambda: _norm_graph(lambda x: gc.layer_norm(x, (4,))), r"normalized_shape \(4,\) must equal the last 1 dimension"),
    ("layer_norm-shape-empty", lambda: _norm_graph(lambda x: gc.layer_norm(x, ())), r"normalized_shape=\(\) must be an int or a non-empty tuple"),
    ("layer_norm-shape-float", lambda: _norm_graph(lambda x: gc.layer_norm(x, 3.0)), r"normalized_shape=3\.0"),
    ("layer_norm-longer-than-input", lambda: _norm_graph(lambda x: gc.layer_norm(x, (2, 4, 3))), r"last 3 dimension\(s\) of the input's shape \(4, 3\)"),
    ("layer_norm-weight-shape", lambda: _norm_graph(lambda x: gc.layer_norm(x, 3, gc.param("w", (4,)))), r"layer_norm: weight has shape \(4,\); it must have normalized_shape \(3,\)"),
    ("layer_norm-bias-dtype", lambda: _norm_graph(lambda x: gc.layer_norm(x, 3, None, gc.param("b", (3,), "float64"))), r"layer_norm.*dtypes differ"),
    ("layer_norm-eps-negative", lambda: _norm_graph(lambda x: gc.layer_norm(x, 3, eps=-1e-5)), r"eps=-1e-05 must be a finite number >= 0"),
    ("layer_norm-int-input", lambda: _norm_graph(lambda x: gc.layer_norm(x, 3), dtype="int64"), r"layer_norm.*expects float32 or float64"),
    ("batch_norm-1d-input", lambda: _norm_graph(lambda x: gc.batch_norm(x, None, None, training=True), shape=(5,)), r"batch_norm: input 'x'.*must be \(N, C\) or \(N, C, \*spatial\)"),
    ("batch_norm-one-value-per-channel", lambda: _norm_graph(lambda x: _train(x), shape=(1, 3)), r"expected more than 1 value per channel when training, got input of shape \(1, 3\)"),
    ("batch_norm-one-value-per-channel-4d", lambda: _norm_graph(lambda x: _train(x), shape=(1, 3, 1, 1)), r"more than 1 value per channel"),
    ("batch_norm-varying-batch-of-one", _varying_batch_of_one, r"batch size 1: 'batch_norm_1'.*expected more than 1 value per channel"),
    ("batch_norm-running-mean-shape", lambda: _norm_graph(lambda x: gc.batch_norm(x, *_stats(4), training=True)), r"running_mean 'bn.running_mean'.*must have shape \(3,\)"),
    ("batch_norm-running-mean-dtype", _running_mean_of_another_dtype, r"running_mean .*must have shape \(3,\) and dtype float64"),
    ("batch_norm-running-stats-role-param", lambda: _norm_graph(lambda x: gc.batch_norm(x, *_stats(role="param"), training=True)), r"running_mean .* is a param of role 'param'.*role='state'"),
    ("batch_norm-running-stats-input", lambda: _norm_graph(lambda x: gc.batch_norm(x, gc.input("m", (3,)), gc.input("v", (3,)))), r"running_mean 'm'.* is not a param \(input\)"),
    ("batch_norm-running-stats-array", lambda: _norm_graph(lambda x: gc.batch_norm(x, np.zeros(3), np.ones(3))), r"running_mean must be a param Value with role='state' or None, got ndarray"),
    ("batch_norm-same-param-twice", lambda: _norm_graph(lambda x: gc.batch_norm(x, *[_stats()[0]] * 2, training=True)), r"running_mean and running_var are the same param"),
    ("batch_norm-eval-without-stats", lambda: _norm_graph(lambda x: gc.batch_norm(x, None, None)), r"training=False normalises with the running statistics"),
    ("batch_norm-momentum-none", lambda: _norm_graph(lambda x: _train(x, momentum=None)), r"momentum=None .*cumulative moving average.* not supported"),
    ("batch_norm-momentum-nan", lambda: _norm_graph(lambda x: _train(x, momentum=float("nan"))), r"momentum=nan must be a finite number"),
    ("batch_norm-training-not-bool", lambda: _norm_graph(lambda x: gc.batch_norm(x, *_stats(), training="yes")), r"training='yes' must be True or False"),
    ("batch_norm-weight-shape", lambda: _norm_graph(lambda x: gc.batch_norm(x, None, None, gc.param("w", (4,)), training=True)), r"batch_norm: weight has shape \(4,\); it must have shape \(3,\)"),
    ("batch_norm-eval-bias-shape", lambda: _norm_graph(lambda x: gc.batch_norm(x, *_stats(), None, gc.param("b", (2,)))), r"'b' .*must have shape \(3,\), one value per channel"),
    ("batch_norm-eval-eps-negative", lambda: _norm_graph(lambda x: gc.batch_norm(x, *_stats(), eps=-1.0)), r"eps=-1\.0 must be a finite number >= 0"),
    ("batch_norm-stats-shared-by-two-calls", _two_batch_norms_share_statistics, r"running statistic 'bn.running_mean'.* is updated already by batch-norm node"),
    ("batch_norm-stat-also-in-updates", _running_stat_also_in_updates, r"updates: state param 'bn.running_mean' is updated by batch-norm node .* drop it from updates"),
]


# --- name scopes -------------------------------------------------------------


def _scoped_plan_document() -> dict[str, Any]:
    """The JSON document of a small plan whose instructions are in scope "block"."""
    with gc.Graph("scoped"):
        x = gc.input("x", shape=(2, 3))
        with gc.scope("block"):
            y = gc.sum(gc.tanh(x))
    return json.loads(gc.compile(y).plan.to_json())


def _load_scoped_edited(edit: Callable[[dict[str, Any]], Any]) -> gc.Plan:
    """Load the scoped plan after ``edit``, its digest recomputed (so the field checks are what is tested)."""
    doc = _scoped_plan_document()
    edit(doc)
    doc["sha256"] = content_digest(doc)
    return gc.Plan.from_json(json.dumps(doc))


def _open_scope_without_graph() -> None:
    with gc.scope("block"):
        pass


def _set_first_scope(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["instructions"][0]["scope"] = value
    return edit


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("scope-name-empty", lambda: gc.scope(""), r"gc\.scope: the name must be a non-empty string, got ''"),
    ("scope-name-none", lambda: gc.scope(None), r"gc\.scope: the name must be a non-empty string, got None"),
    ("scope-name-not-a-string", lambda: gc.scope(3), r"gc\.scope: the name must be a non-empty string, got 3"),
    ("scope-name-slash", lambda: gc.scope("encoder/block3"), r"'encoder/block3' holds '/'.*nest one .* \('encoder' and 'block3'\)"),
    ("scope-name-only-slash", lambda: gc.scope("/"), r"'/' holds '/'"),
    ("scope-without-graph", _open_scope_without_graph, r"gc\.scope\('block'\): no graph is open.*with gc\.Graph"),
    ("planfile-scope-number", lambda: _load_scoped_edited(_set_first_scope(3)), r"instructions\[0\]\.scope is a JSON integer, expected a string"),
    ("planfile-scope-empty-name", lambda: _load_scoped_edited(_set_first_scope("block//inner")), r"instructions\[0\]\.scope is 'block//inner', which is no scope path"),
    ("planfile-scope-trailing-slash", lambda: _load_scoped_edited(_set_first_scope("block/")), r"instructions\[0\]\.scope is 'block/'"),
    ("planfile-scope-missing", lambda: _load_scoped_edited(lambda d: d["instructions"][0].pop("scope")), r"instructions\[0\] lacks the field 'scope'"),
    ("planfile-v3-with-scope", lambda: _load_scoped_edited(lambda d: d.update(version=3)), r"instructions\[0\] has the field 'scope', which plans of version 3 do not have"),
]


# --- op facts: defop memory facts --------------------------------------------


def _defop(**facts):
    """A custom op with the given memory facts (replacing an earlier definition of the same name)."""
    kernel = facts.pop("kernel", lambda out, x: np.copyto(out, x))
    return gc.defop("bad_input_facts_op", infer=lambda x: x, kernel=kernel, replace=True, **facts)


def _view_of_two_operands():
    pair_view = gc.defop("bad_input_pair_view", infer=lambda x, y: x, kernel=lambda x, y: x[...],
                         view=True, replace=True)
    with gc.Graph("case"):
        x = gc.input("x", shape=(2, 3))
        return pair_view(x, x * 2.0)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("defop-view-not-bool", lambda: _defop(view="yes"), r"defop 'bad_input_facts_op': view must be True or False, got 'yes'"),
    ("defop-scratch-not-callable", lambda: _defop(scratch=[(2, 3)]), r"defop 'bad_input_facts_op': scratch must be callable or None, got list"),
    ("defop-view-with-scratch", lambda: _defop(kernel=lambda x: x[...], view=True, scratch=lambda x: [x]), r"a view op \(view=True\).*cannot be elementwise or have scratch"),
    ("defop-view-elementwise", lambda: _defop(kernel=lambda x: x[...], view=True, elementwise=True), r"a view op \(view=True\).*cannot be elementwise"),
    ("defop-view-two-vjp-rules", lambda: _defop(kernel=lambda x: x[...], view=True, vjp=[None, None]), r"a view op has one operand, but 2 VJP rules are given"),
    ("defop-contiguity-without-view", lambda: _defop(needs_contiguous=True), r"needs_contiguous and copy_kernel describe a view op; pass view=True"),
    ("defop-keeps-contiguous-not-callable", lambda: _defop(kernel=lambda x: x[...], view=True, keeps_contiguous=True), r"keeps_contiguous must be callable or None, got bool"),
    ("defop-index-bound-not-callable", lambda: _defop(index_bound=5), r"defop 'bad_input_facts_op': index_bound must be callable or None, got int"),
    ("view-op-two-operands", _view_of_two_operands, r"bad_input_pair_view: a view op takes one operand.*got 2"),
]


# --- the published architectures and their initialisers ----------------------


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("normal-init-negative-std", lambda: NormalInit(-1.0), r"NormalInit\(std=-1.0.*finite std >= 0"),
    ("normal-init-nan-mean", lambda: NormalInit(0.1, mean=float("nan")), r"NormalInit.*finite mean"),
    ("normal-init-string-std", lambda: NormalInit("0.1"), r"NormalInit\(std='0.1'"),
    ("vgg16-image-not-multiple-of-32", lambda: models.vgg16(batch=1, image=48), r"vgg16: image=48 must be a multiple of 32"),
    ("resnet18-zero-batch", lambda: models.resnet18(batch=0), r"resnet18: batch=0 must be an int >= 1"),
    ("resnet50-width-zero", lambda: models.resnet50(batch=1, width=0), r"resnet50: width=0 must be a number > 0"),
    ("resnet50-float-classes", lambda: models.resnet50(batch=1, classes=10.5), r"resnet50: classes=10.5 must be an int"),
    ("unet2d-image-not-multiple-of-16", lambda: models.unet2d(batch=1, image=40), r"unet2d: image=40 must be a multiple of 16"),
    ("gpt2-width-not-multiple-of-heads", lambda: models.gpt2(batch=1, width=10, heads=3), r"gpt2: width=10 must be a multiple of heads=3"),
    ("gpt2-negative-layers", lambda: models.gpt2(batch=1, layers=-1), r"gpt2: layers=-1 must be an int >= 1"),
]


# --- report ------------------------------------------------------------
def _report_loss() -> gc.Value:
    """A scalar loss of a one-layer graph, built in a fresh graph."""
    with gc.Graph("report-case"):
        x = gc.input("x", shape=(2, 3))
        w = gc.param("w", shape=(3, 3))
        return gc.sum(gc.tanh(x @ w))


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("report-solver-unknown", lambda: gc.compile(_report_loss(), remat="optimal", solver="gurobi"), r"solver='gurobi' is not a recompute solver; choose one of auto, milp, cpsat"),
    ("report-solver-none", lambda: gc.compile(_report_loss(), remat="optimal", solver=None), r"solver=None is not a recompute solver"),
    ("report-solver-upper-case", lambda: gc.compile(_report_loss(), remat="optimal", solver="MILP"), r"solver='MILP' is not a recompute solver"),
    ("report-progress-string", lambda: gc.compile(_report_loss(), remat="optimal", progress="yes"), r"progress='yes' must be True or False"),
    ("report-progress-int", lambda: gc.compile(_report_loss(), remat="optimal", progress=1), r"progress=1 must be True or False"),
    ("report-progress-callable", lambda: gc.compile(_report_loss(), remat="optimal", progress=print), r"progress=<built-in function print> must be True or False"),
]


# --- cpsat ------------------------------------------------------------
def _compile_cpsat_without_ortools() -> None:
    """compile(..., solver="cpsat") with OR-Tools unimportable, at a budget that needs the solver."""
    names = [m for m in sys.modules if m == "ortools" or m.startswith("ortools.")]
    saved = {m: sys.modules[m] for m in names}
    sys.modules["ortools.sat.python.cp_model"] = None  # makes the import raise ImportError
    try:
        graph, values = gc.zoo.chain(6, width=16, batch=4)
        updates = gc.sgd(values["loss"], values["params"], 0.1)
        store_all = gc.compile([values["loss"]], updates=updates, bind=False).memory.planned_bytes
        gc.compile([values["loss"]], updates=updates, remat="optimal", memory_budget=store_all * 3 // 4,
                   solver="cpsat", time_limit=5, bind=False)
    finally:
        sys.modules.pop("ortools.sat.python.cp_model", None)
        sys.modules.update(saved)


CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("solver-cpsat-without-ortools", _compile_cpsat_without_ortools, r"solver='cpsat'.*pip install graphc\[remat\]"),
]


# --- bench ------------------------------------------------------------
CASES += [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("bench-unknown-policy", lambda: SweepOptions(policies=("sqrt", "fastest")), r"'fastest' is not a recompute policy.*choose among sqrt"),
    ("bench-no-policy", lambda: SweepOptions(policies=()), r"no policy is not a recompute policy"),
    ("bench-store-all-as-policy", lambda: SweepOptions(policies=("none",)), r"'none' is not a recompute policy.*store-all is always swept"),
    ("bench-one-budget", lambda: SweepOptions(budgets=1), r"budgets=1\).*integer >= 2"),
    ("bench-float-budgets", lambda: SweepOptions(budgets=4.0), r"budgets=4.0\).*integer >= 2"),
    ("bench-too-few-repeats", lambda: SweepOptions(repeats=3), r"repeats=3\).*pairs of runs.*>= 5"),
    ("bench-zero-workers", lambda: SweepOptions(workers=0), r"workers=0\).*local Dask worker processes.*>= 1"),
    ("bench-zero-time-limit", lambda: SweepOptions(time_limit=0), r"time_limit=0\).*above 0"),
    ("bench-text-time-limit", lambda: SweepOptions(time_limit="60"), r"time_limit='60'\).*a number above 0"),
    ("bench-serial-and-scheduler", lambda: SweepOptions(serial=True, scheduler="tcp://h:8786"), r"serial=True, scheduler='tcp://h:8786'\).*drop one"),
]


@pytest.mark.parametrize("case_id, thunk, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_graph_error(case_id, thunk, pattern):
    with pytest.raises(gc.GraphError, match=pattern) as info:
        thunk()
    assert isinstance(info.value, ValueError)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_non_finite_constants_are_accepted():
    """NaN and infinity are legitimate constants (masks, -inf fills): not bad input."""
    x = _x((2,), "float64")
    y = gc.maximum(x, -np.inf) + np.array([np.nan, 0.0])
    out = gc.compile(y).run({"x": np.array([1.0, 2.0])})
    assert np.isnan(out[0]) and out[1] == 2.0


def test_empty_shapes_and_zero_dims_are_accepted():
    x = _x((0, 3))
    assert gc.sum(x, axis=0).shape == (3,)
