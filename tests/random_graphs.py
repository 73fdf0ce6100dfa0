"""Random small DAGs for property tests, each built twice: as a graph and as NumPy arrays.

A recipe is a list of steps ``(kind, i, j)``; step k reads earlier values i and j
(reduced modulo the number of values so far), so any list is a valid DAG.
Repeated steps give identical subexpressions, which CSE must merge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import graphc as gc

SHAPE = (3, 3)  # square: transposes and both row and column sums keep the shape
KINDS = ("tanh", "neg", "exp_tanh", "add", "sub", "mul", "sum0", "sum1", "transpose", "transpose2")

_NUMPY = {
    "tanh": lambda a, b: np.tanh(a),
    "neg": lambda a, b: -a,
    "exp_tanh": lambda a, b: np.exp(np.tanh(a)),
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "sum0": lambda a, b: np.broadcast_to(a.sum(axis=0), SHAPE),
    "sum1": lambda a, b: np.broadcast_to(a.sum(axis=1)[:, None], SHAPE),
    "transpose": lambda a, b: a.T,
    "transpose2": lambda a, b: a.T.T,
}
_GRAPH = {
    "tanh": lambda a, b: gc.tanh(a),
    "neg": lambda a, b: -a,
    "exp_tanh": lambda a, b: gc.exp(gc.tanh(a)),
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "sum0": lambda a, b: gc.broadcast_to(gc.sum(a, axis=0), SHAPE),  # sum0 and sum1 differ only in
    "sum1": lambda a, b: gc.broadcast_to(gc.reshape(gc.sum(a, axis=1), (3, 1)), SHAPE),  # their axis
    "transpose": lambda a, b: gc.transpose(a),
    "transpose2": lambda a, b: gc.transpose(gc.transpose(a)),
}

# Steps the simplification pass rewrites (or must leave alone): constants, identities, scalar chains.
SIMPLIFIABLE = {
    "times_one": (lambda a, b: a * 1.0, lambda a, b: a * 1.0),
    "one_times": (lambda a, b: 1.0 * a, lambda a, b: 1.0 * a),
    "plus_zero": (lambda a, b: a + 0.0, lambda a, b: a + 0.0),  # kept: -0 + 0 is +0
    "plus_minus_zero": (lambda a, b: a + -0.0, lambda a, b: a + -0.0),
    "minus_zero": (lambda a, b: a - 0.0, lambda a, b: a - 0.0),
    "over_one": (lambda a, b: a / 1.0, lambda a, b: a / 1.0),
    "self_sub": (lambda a, b: a - a, lambda a, b: a - a),  # kept: inf - inf is NaN
    "times_zero": (lambda a, b: a * 0.0, lambda a, b: a * 0.0),  # kept: -3·0 is -0
    "double": (lambda a, b: a + a, lambda a, b: a + a),
    "pow1": (lambda a, b: a ** 1.0, lambda a, b: np.power(a, 1.0)),
    "pow2": (lambda a, b: a ** 2.0, lambda a, b: np.power(a, 2.0)),
    "pow3": (lambda a, b: a ** 3.0, lambda a, b: np.power(a, 3.0)),  # its VJP is a²·3
    "neg_neg": (lambda a, b: -(-a), lambda a, b: -(-a)),
    "neg_times": (lambda a, b: (-a) * 3.0, lambda a, b: (-a) * 3.0),
    "minus_neg": (lambda a, b: a - (-b), lambda a, b: a - (-b)),
    "plus_neg": (lambda a, b: a + (-b), lambda a, b: a + (-b)),
    "chain_exact": (lambda a, b: (a * 4.0) * 3.0, lambda a, b: (a * 4.0) * 3.0),
    "chain_kept": (lambda a, b: (a * 0.1) * 3.0, lambda a, b: (a * 0.1) * 3.0),
    "consts": (lambda a, b: a * (gc.constant(2.0, "float64") * 0.03125), lambda a, b: a * (2.0 * 0.03125)),
    "const_vector": (lambda a, b: a + gc.exp(gc.constant(np.linspace(-1.0, 1.0, 3), "float64")),
                     lambda a, b: a + np.exp(np.linspace(-1.0, 1.0, 3))),
    "transpose_back": (lambda a, b: gc.transpose(gc.transpose(a) * 1.0), lambda a, b: a.T.T),
    "reshape2": (lambda a, b: gc.reshape(gc.reshape(a, (9,)), SHAPE), lambda a, b: a.reshape(9).reshape(SHAPE)),
}
for _kind, (_graph, _numpy) in SIMPLIFIABLE.items():
    _GRAPH[_kind], _NUMPY[_kind] = _graph, _numpy


def _recipes(kinds) -> st.SearchStrategy:
    step = st.tuples(st.sampled_from(kinds), st.integers(0, 1000), st.integers(0, 1000))
    return st.lists(step, min_size=1, max_size=20).flatmap(
        # repeat some steps verbatim: duplicates for CSE to find
        lambda steps: st.lists(st.sampled_from(steps), max_size=5).map(lambda extra: steps + extra)
    )


recipes = _recipes(KINDS)
simplifiable_recipes = _recipes(KINDS + tuple(SIMPLIFIABLE))
"""Recipes that also hold the steps of :data:`SIMPLIFIABLE`."""


@dataclass
class Built:
    graph: gc.Graph
    values: list[gc.Value]  # the two inputs, then one value per step
    expected: list[np.ndarray]  # NumPy's result for each value
    feeds: dict[str, np.ndarray]


def build(recipe: list[tuple[str, int, int]], seed: int = 0, feeds: dict[str, np.ndarray] | None = None) -> Built:
    """The recipe's graph (float64) and the NumPy value of every node in it (inputs a and b drawn from
    N(0, 1) unless ``feeds`` gives them)."""
    rng = np.random.default_rng(seed)
    if feeds is None:
        feeds = {"a": rng.standard_normal(SHAPE), "b": rng.standard_normal(SHAPE)}
    with gc.Graph("random") as graph:
        values = [gc.input("a", shape=SHAPE, dtype="float64"), gc.input("b", shape=SHAPE, dtype="float64")]
        expected = [feeds["a"], feeds["b"]]
        for kind, i, j in recipe:
            i, j = i % len(values), j % len(values)
            values.append(_GRAPH[kind](values[i], values[j]))
            with np.errstate(all="ignore"):  # long products may overflow; the graph must agree
                expected.append(_NUMPY[kind](expected[i], expected[j]))
    return Built(graph, values, expected, feeds)
