"""graphc's hand-written graph algorithms against networkx's, on graphs of 10³, 10⁴ and 10⁵ nodes.

Each algorithm graphc writes by hand is timed beside its networkx counterpart, on
the same graph, and the two results are checked to agree:

- ``ir.ancestors`` (the nodes some roots need, in id order; render, passes) and
  ``Dataflow.ancestors`` (the same on a compile's rewritten flow; roles, lowering)
  against ``nx.ancestors`` (many roots: through one extra node that every root
  feeds, then sorted by id like graphc's);
- ``remat.segments.separators`` (where √n and revolve may cut the forward pass:
  a linear sweep over last uses) against ``nx.immediate_dominators`` on the
  forward graph with an edge from each step to the next (the order the forward
  runs in); the separators are the dominators of the last forward node;
- ``schedule._acyclic`` (Kahn's algorithm over a flow's constraints) against
  ``nx.is_directed_acyclic_graph``;
- repeated blocks, measured only (render/ and remat/blocks.py are not changed
  here): ``render.collapse._find_best_run`` (runs of a repeated block in a
  topological sequence of node signatures, vectorised with NumPy) against
  ``nx.weisfeiler_lehman_subgraph_hashes`` (3 iterations) — which only labels the
  nodes by their neighbourhoods; finding the runs would still need the sequence
  search on those labels, so its time is a lower bound of that route — and
  ``remat.blocks.structural_kind`` (one hash per forward segment) against
  ``nx.weisfeiler_lehman_graph_hash`` of each segment; both columns count the
  kinds they find.

networkx works on its own ``DiGraph``, which graphc would have to build from its
nodes first: ``nx`` is the algorithm alone, on a graph built beforehand, and
``nx + build`` adds building that graph (with no attributes: the least a switch
would cost). The rows ``gc.to_networkx`` time the export itself, which adds every
attribute (for its users; nothing is compared there). Graphs: ``zoo.chain``, ``zoo.residual_mlp`` and
``zoo.random_dag`` (width 4, batch 2) sized so that the graph with its adjoint
(the training outputs ``[ℓ, ∂ℓ/∂w …]``) has about 10³, 10⁴ and 10⁵ nodes; the
flow is ``passes.optimize`` of those outputs, as ``gc.compile`` makes it. Times are
CPU milliseconds (``time.process_time``), the best of 3 runs (1 run at 10⁵ nodes), with
the cyclic garbage collector paused for both sides, as ``grad`` and ``compile`` pause it.
All of it runs without recursion, so 10⁵ nodes meet no recursion limit.

    python benchmarks/networkx_algorithms.py            # 10³, 10⁴, 10⁵ nodes (about 3 minutes)
    python benchmarks/networkx_algorithms.py --quick    # 10³, 10⁴ nodes
    python benchmarks/networkx_algorithms.py --family chain --sizes 1000,10000

Measured on the development machine (2 shared cores, load ≈ 2; networkx 3.6.1,
Python 3.11), ``python benchmarks/networkx_algorithms.py``:

| algorithm | nodes | chain: hand / nx / nx + build ms | residual: hand / nx / nx + build ms | random: hand / nx / nx + build ms | nx + build / hand | graphc uses |
|---|---|--:|--:|--:|--:|---|
| ir.ancestors | 10³ | 0.6 / 1.3 / 5.0 | 0.3 / 0.8 / 2.9 | 0.3 / 0.8 / 3.3 | 8.6–11.9× | hand |
| ir.ancestors | 10⁴ | 6.5 / 25.7 / 75.2 | 7.3 / 35.4 / 81.0 | 7.5 / 31.9 / 66.4 | 8.9–11.5× | hand |
| ir.ancestors | 10⁵ | 79.6 / 478 / 1,124 | 76.7 / 330 / 809 | 98.0 / 500 / 1,220 | 10.5–14.1× | hand |
| Dataflow.ancestors | 10³ | 0.4 / 1.1 / 4.1 | 0.2 / 0.6 / 2.7 | 0.1 / 0.5 / 2.5 | 11.2–17.5× | hand |
| Dataflow.ancestors | 10⁴ | 4.0 / 23.2 / 68.3 | 6.8 / 28.1 / 77.6 | 4.6 / 17.1 / 61.6 | 11.5–16.9× | hand |
| Dataflow.ancestors | 10⁵ | 79.2 / 333 / 1,050 | 60.9 / 302 / 940 | 99.2 / 347 / 1,052 | 10.6–15.4× | hand |
| separators / dominators | 10³ | 0.3 / 1.0 / 1.8 | 0.3 / 0.9 / 1.6 | 0.2 / 0.9 / 1.6 | 5.6–6.8× | hand |
| separators / dominators | 10⁴ | 3.5 / 12.9 / 25.4 | 8.3 / 20.0 / 39.3 | 4.7 / 17.6 / 34.9 | 4.7–7.4× | hand |
| separators / dominators | 10⁵ | 73.6 / 144 / 287 | 110 / 222 / 440 | 55.1 / 146 / 274 | 3.9–5.0× | hand |
| schedule._acyclic | 10³ | 0.4 / 1.4 / 4.1 | 0.3 / 0.8 / 2.4 | 0.2 / 0.8 / 2.7 | 9.4–11.3× | hand |
| schedule._acyclic | 10⁴ | 5.6 / 19.8 / 53.8 | 6.7 / 23.5 / 61.9 | 9.7 / 21.8 / 66.1 | 6.8–9.6× | hand |
| schedule._acyclic | 10⁵ | 125 / 302 / 756 | 126 / 263 / 738 | 113 / 218 / 646 | 5.7–6.1× | hand |
| repeated run / WL node hashes | 10³ | 11.3 / 17.0 / 31.3 | 6.7 / 10.0 / 18.8 | 8.3 / 16.6 / 25.8 | 2.8–3.1× | hand (render) |
| repeated run / WL node hashes | 10⁴ | 98.7 / 195 / 355 | 101 / 148 / 265 | 74.5 / 171 / 287 | 2.6–3.9× | hand (render) |
| repeated run / WL node hashes | 10⁵ | 931 / 2,308 / 3,687 | 567 / 2,194 / 3,779 | 716 / 2,724 / 4,220 | 4.0–6.7× | hand (render) |
| segment kinds / WL graph hash | 10³ | 6.2 / 9.4 / 18.7 | 4.1 / 8.7 / 15.0 | 4.4 / 7.5 / 12.8 | 2.9–3.7× | hand (remat.blocks) |
| segment kinds / WL graph hash | 10⁴ | 40.6 / 103 / 169 | 50.4 / 104 / 191 | 25.8 / 64.9 / 96.1 | 3.7–4.1× | hand (remat.blocks) |
| segment kinds / WL graph hash | 10⁵ | 715 / 1,733 / 3,047 | 565 / 1,146 / 2,062 | 340 / 702 / 1,371 | 3.7–4.3× | hand (remat.blocks) |
| gc.to_networkx (all attributes) | 10³ | 12.1 | 13.1 | 21.4 | – | – |
| gc.to_networkx (all attributes) | 10⁴ | 264 | 176 | 183 | – | – |
| gc.to_networkx (all attributes) | 10⁵ | 2,546 | 2,439 | 3,557 | – | – |

Nodes of each graph: chain 1,003, 9,947, 99,323; residual 1,006, 9,916, 98,956; random 963, 11,599, 119,140.

| search | nodes | chain | residual | random |
|---|---|---|---|---|
| repeated run / WL node hashes | 10³ | period 11 ×61 / 58 classes | period 9 ×64 / 86 classes | period 1 ×28 / 796 classes |
| repeated run / WL node hashes | 10⁴ | period 11 ×620 / 58 classes | period 9 ×658 / 86 classes | period 1 ×319 / 8406 classes |
| repeated run / WL node hashes | 10⁵ | period 11 ×6206 / 58 classes | period 9 ×6594 / 86 classes | period 1 ×3290 / 78198 classes |
| segment kinds / WL graph hash | 10³ | 6 kinds / 6 | 7 kinds / 7 | 2 kinds / 2 |
| segment kinds / WL graph hash | 10⁴ | 6 kinds / 6 | 7 kinds / 7 | 2 kinds / 2 |
| segment kinds / WL graph hash | 10⁵ | 6 kinds / 6 | 7 kinds / 7 | 2 kinds / 2 |

Every hand-written algorithm is faster at every size: 2–6× on a networkx graph built
beforehand, 4–18× once that graph has to be built. graphc's nodes hold their operands
already (``node.inputs``, ``flow.args``), so each search is a set and a stack over them;
networkx first copies the graph into its own adjacency dicts, which costs more than the
search, and then walks it through generic generators. So graphc switches to none of them:
``ir.ancestors``, ``Dataflow.ancestors``, ``separators`` and ``schedule._acyclic`` each say
why with their figures, and tests/test_networkx.py keeps networkx as their oracle (the
dominators give the separators exactly). The repeated-block searches stay as well:
Weisfeiler-Lehman node hashes take 1.5–4× the whole run search of the pictures and only
label nodes by their neighbourhoods (the run search on those labels would still follow);
the WL hash of each segment splits the segments into the same kinds as
``structural_kind``, in 1.5–2.5× its time (3–4× with the segments' graphs built).
"""

from __future__ import annotations

import argparse
import gc as garbage
import sys
import time
import warnings
from typing import Any, Callable

import networkx as nx
import numpy as np

import graphc as gc
from graphc import zoo
from graphc.dataflow import Dataflow
from graphc.gcpause import without_cyclic_gc
from graphc.ir import Graph, Node, ancestors
from graphc.passes import optimize
from graphc.remat.blocks import _segment_reads, structural_kind
from graphc.remat.segments import forward_nodes, segments_between, separators
from graphc.render.collapse import MAX_PERIOD, _find_best_run
from graphc.schedule import _acyclic, constraints

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = SIZES[:2]
WIDTH, BATCH = 4, 2
WL_ITERATIONS = 3

FAMILIES: dict[str, Callable[[int], tuple[Graph, dict]]] = {
    "chain": lambda n: zoo.chain(n, width=WIDTH, batch=BATCH),
    "residual": lambda n: zoo.residual_mlp(n, width=WIDTH, batch=BATCH, classes=4),
    "random": lambda n: zoo.random_dag(n, width=WIDTH, batch=BATCH),
}


def size_for(build: Callable[[int], tuple], target_nodes: int, probe: int = 100) -> int:
    """The argument n of ``build(n)`` whose differentiated graph has about ``target_nodes`` nodes."""
    graph, values = build(probe)
    zoo.training_outputs(values)
    return max(1, round(target_nodes * probe / len(graph)))


@without_cyclic_gc
def best_ms(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """``fn()`` and its best CPU time in ms over ``repeats`` runs, with the cyclic garbage collector
    paused as ``grad`` and ``compile`` pause it (a full collection walks every node of the graph)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return result, 1000 * best


# --- networkx's versions ------------------------------------------------------------------------


def graph_digraph(nodes: list[Node]) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(nodes)
    G.add_edges_from((a, n) for n in nodes for a in n.inputs)
    return G


def flow_digraph(flow: Dataflow) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(flow.nodes)
    G.add_edges_from((a, n) for n in flow.nodes for a in flow.args[n])
    return G


_SINK = "(every root)"


def nx_ancestors(G: nx.DiGraph, roots: list[Node]) -> set[Node]:
    """The roots and their ancestors, by one search from a node every root feeds."""
    G.add_edges_from((r, _SINK) for r in roots)
    found = nx.ancestors(G, _SINK)
    G.remove_node(_SINK)
    return found


def forward_digraph(flow: Dataflow, forward: list[Node]) -> nx.DiGraph:
    """Forward positions 0 … n−1: an edge per forward operand, and one from each step to the next."""
    position = {n: i for i, n in enumerate(forward)}
    G = nx.DiGraph()
    G.add_nodes_from(range(len(forward)))
    G.add_edges_from((i, i + 1) for i in range(len(forward) - 1))
    G.add_edges_from((position[a], i) for i, n in enumerate(forward) for a in flow.args[n] if a in position)
    return G


def dominator_separators(G: nx.DiGraph) -> list[int]:
    """The positions that dominate the last one (from the first): exactly where no edge jumps over."""
    last = len(G) - 1
    idom = nx.immediate_dominators(G, 0)
    chain = [last]
    while chain[-1] != 0:
        chain.append(idom[chain[-1]])
    return sorted(chain)


def constraint_digraph(successors: dict[Node, list[Node]]) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(successors)
    G.add_edges_from((a, b) for a, nexts in successors.items() for b in nexts)
    return G


def signature(node: Node) -> tuple:
    """What a box of a picture is compared by, as graph_view's signatures: op, shapes, the operands' ops."""
    role = node.adjoint.role if node.adjoint is not None else None
    return (node.op_name, role, node.shape, node.dtype.name, tuple((i.op_name, i.shape) for i in node.inputs))


def find_run(nodes: list[Node]) -> tuple[int, int, int] | None:
    codes_of: dict[tuple, int] = {}
    codes = np.array([codes_of.setdefault(signature(n), len(codes_of)) for n in nodes], dtype=np.int64)
    return _find_best_run(codes, np.ones(len(codes), dtype=bool), MAX_PERIOD)


def labelled_digraph(nodes: list[Node]) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from((n, {"label": f"{n.op_name} {n.shape} {n.dtype.name}"}) for n in nodes)
    G.add_edges_from((a, n) for n in nodes for a in n.inputs)
    return G


def segment_digraphs(flow: Dataflow, segments: list[list[Node]], reads: list[set[Node]]) -> list[nx.DiGraph]:
    """Each segment as a labelled graph: its nodes (op, attributes, shape, dtype, read later) and one
    node per operand from outside (its shape), as structural_kind sees them."""
    graphs = []
    for segment, read in zip(segments, reads):
        inside = set(segment)
        G = nx.DiGraph()
        for node in segment:
            attrs = sorted((k, repr(v)) for k, v in node.attrs.items())
            G.add_node(node, label=f"{node.op.name} {attrs} {node.aval.shape} {node.aval.dtype} {node in read}")
            for index, a in enumerate(flow.args[node]):
                source = a if a in inside else ("out", node, index)
                if a not in inside:
                    G.add_node(source, label=f"out {a.aval.shape} {a.aval.dtype}")
                G.add_edge(source, node, label=str(index))
        graphs.append(G)
    return graphs


# --- one graph ------------------------------------------------------------------------------------


@without_cyclic_gc
def measure(family: str, target: int) -> list[dict[str, Any]]:
    build = FAMILIES[family]
    graph, values = build(size_for(build, target))
    outputs = zoo.training_outputs(values)
    roots = [v.node for v in outputs]
    flow = optimize(roots)
    nodes = len(graph)
    repeats = 1 if nodes > 50_000 else 3
    rows = []

    def row(algorithm: str, hand_ms: float, nx_ms: float, build_ms: float, same: str, uses: str) -> None:
        rows.append({"algorithm": algorithm, "graph": family, "target": target, "nodes": nodes, "hand": hand_ms,
                     "nx": nx_ms, "nx+build": nx_ms + build_ms, "same": same, "uses": uses})

    # ancestors of the training outputs in the user's graph
    hand, hand_ms = best_ms(lambda: ancestors(roots), repeats)
    G, build_ms = best_ms(lambda: graph_digraph(graph.nodes), repeats)
    found, nx_ms = best_ms(lambda: sorted(nx_ancestors(G, roots), key=lambda n: n.id), repeats)
    row("ir.ancestors", hand_ms, nx_ms, build_ms, "yes" if found == hand else "NO", "hand")

    # ancestors in the compile's flow
    hand, hand_ms = best_ms(lambda: flow.ancestors(flow.outputs), repeats)
    G, build_ms = best_ms(lambda: flow_digraph(flow), repeats)
    found, nx_ms = best_ms(lambda: nx_ancestors(G, flow.outputs), repeats)
    row("Dataflow.ancestors", hand_ms, nx_ms, build_ms, "yes" if found == hand else "NO", "hand")

    # separators of the forward pass
    forward = forward_nodes(flow)
    hand, hand_ms = best_ms(lambda: separators(flow, forward), repeats)
    G, build_ms = best_ms(lambda: forward_digraph(flow, forward), repeats)
    found, nx_ms = best_ms(lambda: dominator_separators(G), repeats)
    row("separators / dominators", hand_ms, nx_ms, build_ms, "yes" if found == hand else "NO", "hand")

    # acyclicity of the schedule's constraints
    given = constraints(flow)
    hand, hand_ms = best_ms(lambda: _acyclic(given.successors, given.waiting), repeats)
    G, build_ms = best_ms(lambda: constraint_digraph(given.successors), repeats)
    found, nx_ms = best_ms(lambda: nx.is_directed_acyclic_graph(G), repeats)
    row("schedule._acyclic", hand_ms, nx_ms, build_ms, "yes" if found == hand else "NO", "hand")

    # repeated blocks in a picture's sequence (measured only)
    run, hand_ms = best_ms(lambda: find_run(graph.nodes), repeats)
    G, build_ms = best_ms(lambda: labelled_digraph(graph.nodes), repeats)
    hashes, nx_ms = best_ms(lambda: nx.weisfeiler_lehman_subgraph_hashes(G, node_attr="label",
                                                                          iterations=WL_ITERATIONS), repeats)
    classes = len({h[-1] for h in hashes.values()})
    found = f"period {run[1]} ×{run[2]}" if run else "none"
    row("repeated run / WL node hashes", hand_ms, nx_ms, build_ms, f"{found} / {classes} classes", "hand (render)")

    # kinds of the forward segments (measured only)
    segments = segments_between(forward, separators(flow, forward))
    reads = _segment_reads(flow, segments)
    kinds, hand_ms = best_ms(lambda: [structural_kind(flow, s, reads[k]) for k, s in enumerate(segments)], repeats)
    graphs, build_ms = best_ms(lambda: segment_digraphs(flow, segments, reads), repeats)
    wl, nx_ms = best_ms(lambda: [nx.weisfeiler_lehman_graph_hash(s, node_attr="label", edge_attr="label")
                                 for s in graphs], repeats)
    hand_kinds, wl_kinds = len(set(kinds)), len(set(wl))
    same = f"{hand_kinds} kinds / {wl_kinds}" + ("" if _same_partition(kinds, wl) else " (other partition)")
    row("segment kinds / WL graph hash", hand_ms, nx_ms, build_ms, same, "hand (remat.blocks)")

    _, export_ms = best_ms(lambda: gc.to_networkx(graph), repeats)
    rows.append({"algorithm": "gc.to_networkx (all attributes)", "graph": family, "target": target, "nodes": nodes,
                 "hand": None, "nx": None, "nx+build": export_ms, "same": "", "uses": ""})
    return rows


def _same_partition(a: list[str], b: list[str]) -> bool:
    """Whether two labellings of the same items group them alike."""
    return len(set(a)) == len(set(b)) == len(set(zip(a, b)))


# --- the table ----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _size(target: int) -> str:
    exponent = round(np.log10(target))
    return f"10{str(exponent).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))}" if 10 ** exponent == target else f"{target:,d}"


def tables(rows: list[dict[str, Any]], families: list[str]) -> str:
    """The times (one row per algorithm and size, ``hand / nx / nx + build`` ms per graph), the node
    counts, and what the block searches found."""
    groups: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["algorithm"], r["target"]), {})[r["graph"]] = r
    lines = ["| algorithm | nodes | " + " | ".join(f"{f}: hand / nx / nx + build ms" for f in families)
             + " | nx + build / hand | graphc uses |",
             "|---|---|" + "--:|" * len(families) + "--:|---|"]
    for (algorithm, target), by_family in groups.items():
        cells = [("" if f not in by_family else _ms(by_family[f]["nx+build"]) if by_family[f]["hand"] is None
                  else " / ".join(_ms(by_family[f][k]) for k in ("hand", "nx", "nx+build"))) for f in families]
        ratios = [r["nx+build"] / r["hand"] for r in by_family.values() if r["hand"]]
        spread = f"{min(ratios):.1f}–{max(ratios):.1f}×" if ratios else "–"
        uses = next(iter(by_family.values()))["uses"] or "–"
        lines.append(f"| {algorithm} | {_size(target)} | " + " | ".join(cells) + f" | {spread} | {uses} |")
    counts = {}
    for r in rows:
        counts.setdefault(r["graph"], {})[r["target"]] = r["nodes"]
    lines += ["", "Nodes of each graph: " + "; ".join(
        f"{f} " + ", ".join(f"{n:,d}" for n in counts[f].values()) for f in families if f in counts) + "."]
    lines += ["", "| search | nodes | " + " | ".join(families) + " |", "|---|---|" + "---|" * len(families)]
    for (algorithm, target), by_family in groups.items():
        if "WL" in algorithm:
            lines.append(f"| {algorithm} | {_size(target)} | "
                         + " | ".join(by_family[f]["same"] if f in by_family else "" for f in families) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10³ and 10⁴ nodes only")
    parser.add_argument("--sizes", default=None, help="comma-separated node counts (default 1000,10000,100000)")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), default=None,
                        help="graph family (repeatable; default: all)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="The hashes produced for directed graphs changed")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    families = args.family or list(FAMILIES)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for target in sizes:
        for family in families:
            rows += measure(family, target)
            garbage.collect()  # the graph just measured (its nodes and graph refer to each other)
            print(f"  {family} at {target:,d} nodes: done after {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    order = list(dict.fromkeys(r["algorithm"] for r in rows))  # as measured
    rows.sort(key=lambda r: (order.index(r["algorithm"]), r["target"]))
    print(tables(rows, families))
    disagree = [r for r in rows if r["same"] == "NO"]
    for r in disagree:
        print(f"{r['algorithm']} on {r['graph']} ({r['nodes']:,d} nodes): networkx disagrees", file=sys.stderr)
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
