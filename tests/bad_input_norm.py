"""Bad input of layer_norm and batch_norm, for the catalogue in tests/test_bad_input.py.

``CASES_NORM`` holds ``(id, thunk that must raise GraphError, regex the message must match)``.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


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


CASES_NORM = [
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
