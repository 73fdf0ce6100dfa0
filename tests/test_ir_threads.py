"""Building one graph from several threads: ids unique and dense, order topological."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import graphc as gc


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every microsecond so that races show up in a small test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads started together; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as err:  # noqa: BLE001  (handed to the main thread)
            errors.append(err)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _assert_ids_dense_and_topological(graph: gc.Graph) -> None:
    assert [n.id for n in graph.nodes] == list(range(len(graph.nodes)))
    for node in graph.nodes:
        assert all(i.id < node.id for i in node.inputs), node


def test_threads_building_one_graph_get_unique_dense_ids(frequent_thread_switches):
    with gc.Graph("shared") as g:
        x = gc.input("x", (4,), "float64")

    def build_chain(i: int) -> gc.Value:
        y = x
        for _ in range(200):
            y = gc.tanh(y) * 0.5 + 1.0
        return gc.sum(y)

    outputs = _in_threads(6, build_chain)
    assert len(g.nodes) == 1 + 6 * (200 * 5 + 1)
    _assert_ids_dense_and_topological(g)
    values = gc.compile(outputs).run({"x": np.arange(4.0)})
    np.testing.assert_array_equal(values, [values[0]] * 6)  # six copies of one chain


def test_threads_adding_inputs_of_one_name_get_one_input_and_graph_errors(frequent_thread_switches):
    graph = gc.Graph("names")

    def add_input(i: int):
        with graph:
            try:
                return gc.input("x", (2,))
            except gc.GraphError as err:
                return err

    results = _in_threads(8, add_input)
    assert sum(isinstance(r, gc.Value) for r in results) == 1
    assert all("already has an input or param named 'x'" in str(r) for r in results if not isinstance(r, gc.Value))
    assert list(graph.inputs) == ["x"] and len(graph.nodes) == 1


def test_grad_in_one_thread_does_not_claim_nodes_another_thread_builds(frequent_thread_switches):
    with gc.Graph("grad-vs-build") as g:
        x = gc.input("x", (3,), "float64")
        y = x
        for _ in range(100):
            y = gc.tanh(y)
        loss = gc.sum(y)

    def work(i: int):
        if i == 0:
            return gc.grad(loss, x)
        return [gc.exp(x) for _ in range(300)]

    dx, forward = _in_threads(2, work)
    _assert_ids_dense_and_topological(g)
    assert all(v.node.adjoint is None for v in forward)
    assert dx.node.adjoint is not None
