"""Recompute problems for the solver's tests and benchmarks: a training chain and random layered DAGs.

``training_chain`` has closed-form least costs (see tests/test_remat_solvers.py); ``random_training_dag``
is the layered graph of the solve-time table (benchmarks/remat_solve_times.py imports this file).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from graphc.remat.problem import RematProblem, RematSolution, budget_lower_bound, store_all_peak


def training_chain(n: int, *, size: int = 1, cost: float = 1.0, budget: int | None = None) -> RematProblem:
    """A forward chain of n nodes and its backward chain: 2n nodes, output the last gradient.

    f_j = node j reads f_{j-1};  g_j = node 2n-1-j reads f_j and g_{j+1} (g_{n-1} reads f_{n-1}).
    Keep: g_0. Default budget: the store-all peak, (n + 1)·size.
    """
    deps: list[list[int]] = [[j - 1] if j else [] for j in range(n)]
    deps += [[n - 1]] + [[j, 2 * n - 2 - j] for j in range(n - 2, -1, -1)]
    problem = RematProblem(sizes=[size] * 2 * n, costs=[cost] * 2 * n, deps=deps, keep=[2 * n - 1], budget=0)
    return replace(problem, budget=store_all_peak(problem) if budget is None else budget)


def random_training_dag(n: int, *, seed: int = 0, width: int = 4, max_deps: int = 3) -> RematProblem:
    """A random layered forward DAG of n//2 nodes and its adjoint: n nodes in all (n even).

    Forward node v (layer by layer, ``width`` per layer) reads 1..max_deps nodes of the
    previous layer (none in the first). Adjoint node b_v reads f_v and b_c for each
    consumer c of v. Sizes and costs are random in 1..4; keep: the adjoints of the first
    layer. Budget: halfway between ``budget_lower_bound`` and the store-all peak.
    """
    rng = np.random.default_rng(seed)
    nf = max(n // 2, 1)
    layer = np.arange(nf) // width
    deps: list[list[int]] = []
    for v in range(nf):
        prev = np.nonzero(layer == layer[v] - 1)[0]
        k = min(len(prev), int(rng.integers(1, max_deps + 1)))
        deps.append(sorted(rng.choice(prev, size=k, replace=False).tolist()) if k else [])
    consumers: list[list[int]] = [[] for _ in range(nf)]
    for v, ds in enumerate(deps):
        for d in ds:
            consumers[d].append(v)
    adjoint = {v: 2 * nf - 1 - v for v in range(nf)}  # b_v after all b_c of consumers c > v
    for v in range(nf - 1, -1, -1):
        deps.append([v] + sorted(adjoint[c] for c in consumers[v]))
    sizes = rng.integers(1, 5, size=2 * nf).tolist()
    costs = rng.integers(1, 5, size=2 * nf).astype(float).tolist()
    keep = [adjoint[v] for v in range(nf) if layer[v] == 0]
    problem = RematProblem(sizes=sizes, costs=costs, deps=deps, keep=keep, budget=0)
    return replace(problem, budget=mid_budget(problem))


def mid_budget(problem: RematProblem) -> int:
    """Halfway between ``budget_lower_bound`` and the store-all peak."""
    return (budget_lower_bound(problem) + store_all_peak(problem)) // 2


def recompute_ratio(problem: RematProblem, approx: RematSolution, exact: RematSolution) -> float:
    """Recompute (cost beyond computing each node once) of ``approx`` over that of ``exact``.

    1.0 when both recompute nothing; inf when only ``approx`` does; nan without both schedules.
    """
    if not (math.isfinite(approx.cost) and math.isfinite(exact.cost)):
        return math.nan
    once = float(sum(problem.costs))
    extra, best = approx.cost - once, exact.cost - once
    if best <= 1e-9:
        return 1.0 if extra <= 1e-9 else math.inf
    return extra / best


# --------------------------------------------------------------------------- Moccasin's random layered graphs

MOCCASIN_EDGES = {100: 236, 250: 944, 500: 2461, 1000: 5875}
"""Edges of the random layered graphs RL1–RL4 by node count as Bartan et al. 2023 ("Moccasin", §5) report them."""


def random_layered_dag(n: int, edges: int | None = None, *, seed: int = 0, reach: int = 3,
                       budget_fraction: float = 0.9, keep_sinks: bool = True) -> RematProblem:
    """A random layered DAG of n nodes and ``edges`` edges, after Moccasin's graph set (inference, no adjoint).

    Layers of ⌈√n⌉ nodes; every node past the first layer reads one random node of the layer
    before, and the other edges join random pairs up to ``reach`` layers apart. Sizes and costs
    are random in 1..10; keep: the nodes nobody reads. Budget: ``budget_fraction`` of the
    store-all peak (not below ``budget_lower_bound``). ``edges`` defaults to ``MOCCASIN_EDGES[n]``.
    """
    rng = np.random.default_rng(seed)
    edges = MOCCASIN_EDGES[n] if edges is None else edges
    width = math.ceil(math.sqrt(n))
    layer = np.arange(n) // width
    pairs: set[tuple[int, int]] = set()
    for v in range(width, n):
        previous = np.nonzero(layer == layer[v] - 1)[0]
        pairs.add((int(rng.choice(previous)), v))
    possible = [(u, v) for v in range(width, n) for u in range(v)
                if 0 < layer[v] - layer[u] <= reach and (u, v) not in pairs]
    extra = max(min(edges - len(pairs), len(possible)), 0)
    for k in rng.choice(len(possible), size=extra, replace=False):
        pairs.add(possible[int(k)])
    deps: list[list[int]] = [[] for _ in range(n)]
    read = np.zeros(n, dtype=bool)
    for u, v in pairs:
        deps[v].append(u)
        read[u] = True
    problem = RematProblem(sizes=rng.integers(1, 11, size=n).tolist(),
                           costs=rng.integers(1, 11, size=n).astype(float).tolist(),
                           deps=[sorted(d) for d in deps],
                           keep=np.nonzero(~read)[0].tolist() if keep_sinks else [], budget=0)
    budget = max(int(budget_fraction * store_all_peak(problem)), budget_lower_bound(problem))
    return replace(problem, budget=budget)
