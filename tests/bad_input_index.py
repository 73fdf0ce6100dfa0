"""Bad input of indexing, take, embedding, scatter_add and dropout(train=): cases for the catalogue
in tests/test_bad_input.py, in its format ``(id, thunk that must raise GraphError, regex)``."""

from __future__ import annotations

import numpy as np

import graphc as gc


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


CASES_INDEX = [
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
