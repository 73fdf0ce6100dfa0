"""graphc/export.py (``gc.to_networkx``, ``graphc export``), and networkx as an independent oracle.

- ``to_networkx`` of a graph, of Values and of a program: a node per value, an edge per
  operand, the J^T term on the edges the pictures label, GraphML types only, and a
  clean round trip through ``write_graphml`` / ``read_graphml``; bad input is a GraphError;
- the ``export`` subcommand writes what ``to_networkx`` gives;
- graphc's own graph algorithms agree with networkx's on hypothesis' random graphs:
  creation order and schedules are topological orders, ``ir.ancestors`` and
  ``Dataflow.ancestors`` are ``nx.ancestors``, ``schedule._acyclic`` is
  ``nx.is_directed_acyclic_graph``, and ``remat.segments.separators`` are the
  dominators of the forward pass (``nx.immediate_dominators``).
"""

from __future__ import annotations

import doctest
import io
import sys

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import cli, export, zoo
from graphc.dataflow import Dataflow
from graphc.ir import Node, ancestors
from graphc.passes import optimize
from graphc.remat.segments import forward_nodes, separators
from graphc.schedule import _acyclic, schedule
from random_graphs import build, recipes

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRAPHML_TYPES = (str, int, float, bool)


def round_trip(G: nx.DiGraph) -> nx.DiGraph:
    buffer = io.BytesIO()
    nx.write_graphml(G, buffer)
    buffer.seek(0)
    return nx.read_graphml(buffer)


def assert_same(G: nx.DiGraph, H: nx.DiGraph) -> None:
    assert set(H.nodes) == set(G.nodes)
    assert set(H.edges) == set(G.edges)
    for n in G.nodes:
        assert H.nodes[n] == G.nodes[n], n
    for e in G.edges:
        assert H.edges[e] == G.edges[e], e
    assert {k: v for k, v in H.graph.items() if k not in ("node_default", "edge_default")} == G.graph


def assert_graphml_types(G: nx.DiGraph) -> None:
    for _, attrs in [*G.nodes(data=True), *((None, d) for *_, d in G.edges(data=True)), (None, G.graph)]:
        for key, value in attrs.items():
            assert type(value) in GRAPHML_TYPES, (key, value)


@pytest.fixture(scope="module")
def seed():
    g, v = zoo.seed_dag()
    dw1, dw2 = gc.grad(v["loss"], [v["w1"], v["w2"]])
    return g, v, dw1, dw2


# --- to_networkx ------------------------------------------------------------------------------


def test_a_graph_has_a_node_per_value_and_an_edge_per_operand(seed):
    g, v, dw1, _ = seed
    G = gc.to_networkx(g)
    assert len(G) == len(g.nodes)
    assert G.number_of_edges() == len({(a, n) for n in g.nodes for a in n.inputs})
    x3 = G.nodes["x3"]
    assert (x3["op"], x3["shape"], x3["dtype"], x3["bytes"], x3["kind"], x3["scope"]) == (
        "matmul", "8x4", "float32", 128, "forward", "")
    assert G.edges["p3", "x3"]["position"] == 0 and G.edges["w1", "x3"]["position"] == 1
    assert G.edges["x3", "x3_sq"] == {"position": 0, "positions": "0,1"}  # x3 * x3: one edge, both places
    assert G.nodes["loss"]["shape"] == "scalar"
    kinds = {d["kind"] for _, d in G.nodes(data=True)}
    assert kinds == {"input", "param", "const", "forward", "adjoint"}
    assert G.nodes["w1"]["role"] == "param"
    assert G.nodes[dw1.name]["adjoint"] in ("accumulate", "contribution") and G.nodes[dw1.name]["grad_of"] == "w1"
    assert_graphml_types(G)


def test_the_two_terms_of_the_shared_parameter_label_their_edges(seed):
    """∂ℓ/∂w1 = Jᵀ x3|w1 ∂ℓ/∂x3 + Jᵀ z1|w1 ∂ℓ/∂z1: the edges into the Σ carry the terms, as the images say."""
    g, v, dw1, _ = seed
    G = gc.to_networkx(g)
    terms = sorted(G.edges[u, dw1.name]["term"] for u in G.predecessors(dw1.name))
    assert terms == ["Jᵀ x3|w1", "Jᵀ z1|w1"]
    labelled = [d["term"] for *_, d in G.edges(data=True) if "term" in d]
    assert all(t.startswith("Jᵀ ") and "|" in t for t in labelled)
    assert all(G.nodes[u]["kind"] == "adjoint" for u, _, d in G.edges(data=True) if "term" in d)


def test_values_export_what_they_need(seed):
    g, v, dw1, dw2 = seed
    G = gc.to_networkx(v["x1"])
    assert set(G.nodes) == {"x", "w1", "z1", "x1"}
    assert set(gc.to_networkx([v["loss"], dw2]).nodes) == {n.name for n in ancestors([v["loss"].node, dw2.node])}


def test_a_name_met_twice_gets_the_node_id():
    with gc.Graph("twice") as g:
        x = gc.input("x", shape=(3,))
        a = gc.tanh(x, name="h")
        b = gc.exp(a, name="h")
    G = gc.to_networkx(g)
    assert set(G.nodes) == {"x", "h", f"h#{b.node.id}"}
    assert G.nodes[f"h#{b.node.id}"]["name"] == "h" and G.nodes[f"h#{b.node.id}"]["op"] == "exp"
    assert G.has_edge("h", f"h#{b.node.id}")


def test_graphml_round_trip_of_a_graph_with_scopes_updates_and_a_batch_size(tmp_path):
    with gc.Graph("scoped") as g:
        x = gc.input("x", shape=(None, 4))
        with gc.scope("enc"):
            w = gc.param("w", shape=(4, 3))
            h = gc.relu(x @ w, name="h")
        loss = gc.mean(h * h, name="loss")
    updates = gc.optim.sgd(loss, [w], lr=0.1, momentum=0.9)
    G = gc.to_networkx([loss, *updates.values()])
    assert G.nodes["h"]["scope"] == "enc" and G.nodes["h"]["shape"] == "?x3" and "bytes" not in G.nodes["h"]
    assert {d["kind"] for _, d in G.nodes(data=True)} >= {"update", "adjoint", "param"}
    assert any(d.get("role") == "state" for _, d in G.nodes(data=True))
    assert_graphml_types(G)
    path = tmp_path / "scoped.graphml"
    nx.write_graphml(G, path)
    assert_same(G, nx.read_graphml(path))


def test_a_program_has_its_steps_offsets_and_updates():
    g, v = zoo.mlp(8, sizes=(6, 7, 3))
    updates = gc.sgd(v["loss"], v["params"], 0.1)
    prog = gc.compile([v["loss"]], updates=updates, bind=False)
    plan = prog.plan
    G = gc.to_networkx(prog)
    assert_graphml_types(G)
    assert G.graph == {"name": plan.name, "source": "program", "arena_bytes": plan.arena_bytes,
                       "instructions": len(plan.instructions)}
    steps = sorted(d["step"] for _, d in G.nodes(data=True) if "step" in d)
    assert steps == list(range(len(plan.instructions)))
    by_step = {d["step"]: n for n, d in G.nodes(data=True) if "step" in d}
    for step, ins in enumerate(plan.instructions):
        attrs = G.nodes[by_step[step]]
        buf = plan.buffers[ins.out]
        assert (attrs["op"], attrs["buffer"], attrs["storage"], attrs["scope"]) == (ins.op, ins.out, buf.kind, ins.scope)
        assert attrs.get("offset") == buf.offset
        assert G.in_degree(by_step[step]) == len(set(ins.args))
    kinds = {d["kind"] for _, d in G.nodes(data=True)}
    assert kinds == {"input", "param", "const", "forward", "adjoint", "update"} and kinds <= set(export.KINDS)
    # an update writes its param's buffer: a node of its own, keyed by the param's name and its step
    writes = [n for n, d in G.nodes(data=True) if d.get("storage") == "param" and "step" in d]
    assert writes and all("#" in n for n in writes)
    assert_same(G, round_trip(G))
    assert_same(gc.to_networkx(plan), G)


def test_a_program_marks_its_recomputed_values():
    g, v = zoo.chain(12, width=4, batch=2)
    prog = gc.compile(zoo.training_outputs(v), remat="sqrt", bind=False)
    G = gc.to_networkx(prog)
    recomputed = [n for n, d in G.nodes(data=True) if d["kind"] == "recompute"]
    assert recomputed and all(n.endswith("'") or "#" in n for n in recomputed)
    # a value is read after it is written, by the plan's order
    assert all(G.nodes[u].get("step", -1) < G.nodes[w]["step"] for u, w in G.edges)


@pytest.mark.parametrize("bad, words", [
    (42, "expected a Graph, a Value, a list of Values or a compiled Program (or its Plan), got a int"),
    ("loss", "got a str"),
    ([], "the list of Values is empty"),
    ((1.0,), "item 0 of the list is a float"),
])
def test_bad_input_is_a_graph_error(bad, words):
    with pytest.raises(gc.GraphError, match=words.replace("(", r"\(").replace(")", r"\)")):
        gc.to_networkx(bad)


def test_values_of_two_graphs_are_a_graph_error():
    _, a = zoo.seed_dag()
    _, b = zoo.seed_dag()
    with pytest.raises(gc.GraphError, match="export Values of one graph"):
        gc.to_networkx([a["loss"], b["loss"]])


def test_a_batch_program_not_yet_specialised_says_so():
    with gc.Graph("batch"):
        x = gc.input("x", shape=(None, 3))
        y = gc.sum(gc.tanh(x))
    with pytest.raises(gc.GraphError, match="specialize"):
        gc.to_networkx(gc.compile(y))


def test_the_docstring_example_runs():
    tests = doctest.DocTestFinder().find(export.to_networkx, "to_networkx", globs={})
    runner = doctest.DocTestRunner(verbose=False)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4


def test_a_deep_graph_meets_no_recursion_limit():
    depth = sys.getrecursionlimit() + 200
    with gc.Graph("deep") as g:
        h = gc.input("x", shape=(2,))
        for _ in range(depth):
            h = gc.tanh(h)
        loss = gc.sum(h, name="loss")
    G = gc.to_networkx(loss)
    assert len(nx.dag_longest_path(G)) == depth + 2 and nx.ancestors(G, "loss") == set(G) - {"loss"}
    flow = optimize([loss.node])
    forward = forward_nodes(flow)
    assert separators(flow, forward) == dominator_separators(flow, forward) == list(range(len(forward)))


# --- the export subcommand -----------------------------------------------------------------------


MODEL = '''
import graphc as gc
from graphc import zoo

def train_step():
    g, v = zoo.mlp(8, sizes=(6, 7, 3))
    return [v["loss"]], gc.sgd(v["loss"], v["params"], 0.1)
'''


def test_export_writes_graphml_of_the_graph_and_of_the_plan(tmp_path, capsys):
    (tmp_path / "model.py").write_text(MODEL)
    target = f"{tmp_path / 'model.py'}:train_step"
    out = tmp_path / "out" / "step.graphml"
    assert cli.main(["export", target, "--graphml", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    H = nx.read_graphml(out)
    assert H.graph["source"] == "graph" and {d["kind"] for _, d in H.nodes(data=True)} >= {"forward", "adjoint", "update"}
    plan_out = tmp_path / "plan.graphml"
    assert cli.main(["export", target, "--view", "plan", "--memory", "no-reuse", "--graphml", str(plan_out)]) == 0
    P = nx.read_graphml(plan_out)
    assert P.graph["source"] == "program" and all("step" in d for _, d in P.nodes(data=True) if d["kind"] == "forward")


def test_export_without_an_output_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "model.py").write_text(MODEL)
    assert cli.main(["export", f"{tmp_path / 'model.py'}:train_step"]) == 2
    err = capsys.readouterr().err
    assert "graphc export: error: nothing to write: give an output, --graphml OUT" in err


# --- networkx as the oracle of graphc's graph algorithms ----------------------------------------------


def as_networkx(nodes: list[Node], args=lambda n: n.inputs) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(nodes)
    G.add_edges_from((a, n) for n in nodes for a in args(n))
    return G


def training_flow(recipe, branches: bool = True) -> tuple[Dataflow, list[gc.Value]]:
    """The random graph's loss (the sum of its last value's square and, with ``branches``, of every
    third value before it) and its gradients wrt both inputs, optimised."""
    built = build(recipe)
    a, b = built.values[:2]
    with built.graph:
        loss = gc.sum(built.values[-1] * built.values[-1])
        for v in built.values[-4:1:-3] if branches else ():
            loss = loss + gc.sum(v)
    grads = gc.grad(loss, [a, b])
    outputs = [loss, *grads]
    return optimize([o.node for o in outputs]), outputs


def dominator_separators(flow: Dataflow, forward: list[Node]) -> list[int]:
    """The forward positions every path from the first to the last passes, on the forward graph with
    an edge from each step to the next (the order it runs in): the dominators of the last position."""
    if not forward:
        return []
    position = {n: i for i, n in enumerate(forward)}
    G = nx.DiGraph()
    G.add_nodes_from(range(len(forward)))
    G.add_edges_from((i, i + 1) for i in range(len(forward) - 1))
    G.add_edges_from((position[a], i) for i, n in enumerate(forward) for a in flow.args[n] if a in position)
    idom = nx.immediate_dominators(G, 0)
    chain = [len(forward) - 1]
    while chain[-1] != 0:
        chain.append(idom[chain[-1]])
    return sorted(chain)


def structural_dominators(flow: Dataflow, forward: list[Node]) -> tuple[list[int], bool]:
    """The forward positions that dominate the exit of the forward graph alone (an entry feeding each
    node that reads no forward value, an exit fed by each that no forward node reads), and whether
    that graph has one entry and one exit."""
    position = {n: i for i, n in enumerate(forward)}
    G = as_networkx(forward, lambda n: [a for a in flow.args[n] if a in position])
    firsts = [n for n in forward if G.in_degree(n) == 0]
    lasts = [n for n in forward if G.out_degree(n) == 0]
    G.add_edges_from(("entry", n) for n in firsts)
    G.add_edges_from((n, "exit") for n in lasts)
    idom = nx.immediate_dominators(G, "entry")
    found, node = [], idom["exit"]
    while node != "entry":
        found.append(position[node])
        node = idom[node]
    return sorted(found), len(firsts) == len(lasts) == 1


@PROPERTY
@given(recipes)
def test_creation_order_and_schedules_are_topological(recipe):
    built = build(recipe)
    G = as_networkx(built.graph.nodes)
    assert nx.is_directed_acyclic_graph(G)
    assert list(nx.lexicographical_topological_sort(G, key=lambda n: n.id)) == built.graph.nodes
    flow, _ = training_flow(recipe)
    F = as_networkx(flow.nodes, lambda n: flow.args[n])
    computed = {n for n in flow.nodes if not n.is_source}
    scheduled = schedule(flow)
    assert len(scheduled) == len(computed) and set(scheduled) == computed
    for nodes in (flow.nodes, scheduled):
        position = {n: i for i, n in enumerate(nodes)}
        assert all(position[u] < position[v] for u, v in F.edges if not u.is_source)


@PROPERTY
@given(recipes, st.lists(st.integers(0, 1000), min_size=1, max_size=4))
def test_ancestors_are_networkx_ancestors(recipe, picks):
    built = build(recipe)
    roots = [built.values[i % len(built.values)].node for i in picks]
    G = as_networkx(built.graph.nodes)
    expected = set(roots).union(*(nx.ancestors(G, r) for r in roots))
    assert ancestors(roots) == sorted(expected, key=lambda n: n.id)
    flow, _ = training_flow(recipe)
    F = as_networkx(flow.nodes, lambda n: flow.args[n])
    some = flow.nodes[:: max(1, len(flow.nodes) // 3)]
    assert flow.ancestors(some) == set(some).union(*(nx.ancestors(F, r) for r in some))


edges = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=25)


@PROPERTY
@given(edges)
def test_acyclic_is_networkx_is_directed_acyclic_graph(pairs):
    nodes = sorted({n for pair in pairs for n in pair}) or [0]
    successors = {n: [] for n in nodes}
    waiting = dict.fromkeys(nodes, 0)
    for before, after in dict.fromkeys(pairs):
        successors[before].append(after)
        waiting[after] += 1
    G = nx.DiGraph(list(pairs))
    G.add_nodes_from(nodes)
    assert _acyclic(successors, waiting) == nx.is_directed_acyclic_graph(G)


@PROPERTY
@given(recipes, st.booleans())
def test_separators_are_the_dominators_of_the_forward_pass(recipe, branches):
    flow, _ = training_flow(recipe, branches)
    forward = forward_nodes(flow)
    cuts = separators(flow, forward)
    assert cuts == dominator_separators(flow, forward)
    # every value all input-to-loss paths pass through is a separator; with one entry and one exit, all are
    found, single = structural_dominators(flow, forward)
    assert set(found) <= set(cuts)
    if single:
        assert found == cuts


@pytest.mark.parametrize("build_model", [lambda: zoo.chain(6, width=3, batch=2),
                                         lambda: zoo.residual_mlp(4, width=3, batch=2, classes=3)],
                         ids=["chain", "residual"])
def test_the_blocks_of_the_zoo_are_cut_at_their_dominators(build_model):
    g, v = build_model()
    flow = optimize([o.node for o in zoo.training_outputs(v)])
    forward = forward_nodes(flow)
    found, single = structural_dominators(flow, forward)
    assert single and found == separators(flow, forward) == dominator_separators(flow, forward)
    assert len(found) > 6  # a cut between every two layers at least
