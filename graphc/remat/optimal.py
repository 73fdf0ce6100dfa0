"""The "optimal" policies on a dataflow: the recompute problem built from it, the solvers' schedules turned back into a dataflow.

Solver schedules found for the same problem are remembered (``_FOUND``) and offered again, so
a larger budget never gives more recompute. SciPy loads only when one of these policies runs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from graphc.errors import GraphError
from graphc.ir import Node
from graphc.memory.analysis import alias_analysis, align, node_scratch, overlay_operands
from graphc.dataflow import Dataflow
from graphc.remat.candidates import Candidate, Deadline, node_flops, recompute_flops
from graphc.remat.progress import ProgressFn, SolverOutcome
from graphc.remat.segments import forward_nodes

if TYPE_CHECKING:
    from graphc.remat.bound import RecomputeBound
    from graphc.remat.problem import RematProblem, RematSolution


MILP_MAX_NODES = 150
"""Above this many nodes (forward + backward values, after fusion), "optimal" solves the LP relaxation and rounds it."""
LP_MAX_NODES = 600
"""Above this many, the solver is not tried: the policy keeps the best of its constructed schedules."""
SOLVER_SHARE = 0.9
"""The share of the time left a solve is given: HiGHS ends a little after its limit (0.1–0.3 s measured)."""


def _solver_nodes(flow: Dataflow) -> tuple[list[Node], dict[Node, Node]]:
    """The values the solver schedules, and for each node the one of them it stands for.

    A computed node that owns its storage stands for itself; so does a writer
    (its storage is its param's: it takes no arena bytes); a view stands for
    what it is bound on, and a param or a constant for nothing.

    The values come in the scheduler's order, which is the solver's fixed order of first
    computations: it computes each param's update as soon as its gradient is ready, so the
    gradients of a training step are not all held to its end (in creation order they are,
    and no schedule of that order fits a budget below them all).
    """
    from graphc.schedule import schedule
    owner = alias_analysis(flow)
    nodes: list[Node] = []
    stands_for: dict[Node, Node] = {}
    for n in schedule(flow):
        if n.is_source:
            continue
        if owner[n] is n or n in flow.writes:
            nodes.append(n)
            stands_for[n] = n
        elif n.op.view:
            base = flow.args[n][0]
            stands_for[n] = stands_for.get(base, owner[n])
    return nodes, stands_for


def remat_problem(flow: Dataflow, budget: int) -> tuple["RematProblem", list[Node], list[list[int]]]:
    """The dataflow as Checkmate's abstract problem: sizes (64-byte aligned), FLOPs + 1, reads, outputs.

    Only forward values may be recomputed, as with every other policy: a backward value
    is computed once and held until its last read. A writer takes no bytes (it writes
    its param). Single-consumer runs are fused
    (:func:`graphc.remat.fusion.fuse_chains`: a layer's matmul, bias add and activation
    become one node). Returns the fused problem, the solver's nodes, and the nodes
    (indices into them) of each fused node.
    """
    from graphc.remat.fusion import fuse_chains  # scipy loads only when a solver policy runs
    from graphc.remat.problem import RematProblem
    nodes, deps, keep, recomputable, _ = _solver_graph(flow)
    sizes = [0 if n in flow.writes else align(n.aval.nbytes) for n in nodes]
    costs = [float(node_flops(n, flow) + 1) for n in nodes]
    fused = fuse_chains(RematProblem(sizes, costs, deps, keep, budget, recomputable=recomputable))
    return fused.problem, nodes, fused.groups


def _solver_graph(flow: Dataflow) -> tuple[list[Node], list[list[int]], list[int], list[bool], set[int]]:
    """The solver's nodes (:func:`_solver_nodes`), what each reads and which are kept (as indices),
    which may be recomputed (forward values only), and the indices standing for the flow's outputs."""
    nodes, stands_for = _solver_nodes(flow)
    index = {n: i for i, n in enumerate(nodes)}

    def solver_index(a: Node) -> int | None:
        return index.get(stands_for.get(a))

    deps = [sorted({k for k in map(solver_index, flow.args[n]) if k is not None}) for n in nodes]
    keep = sorted({k for k in map(solver_index, flow.roots) if k is not None})
    forward = set(forward_nodes(flow))
    outputs = {k for k in map(solver_index, flow.outputs) if k is not None}
    return nodes, deps, keep, [n in forward for n in nodes], outputs


def bound_problem(flow: Dataflow, budget: int) -> tuple["RematProblem", list[Node]]:
    """The dataflow as the moment bound (:mod:`graphc.remat.bound`) reads it: unfused, in exact bytes and FLOPs.

    Sizes are unaligned and the outputs' bytes are added to the budget (an output's storage,
    and whatever shares it in place, is outside the arena), so the bound errs low, never high.
    Returns the problem and the solver's nodes, node i of the problem standing for ``nodes[i]``.
    """
    from graphc.remat.problem import RematProblem
    nodes, deps, keep, recomputable, outputs = _solver_graph(flow)
    sizes = [0 if n in flow.writes else n.aval.nbytes for n in nodes]
    outside = sum(nodes[k].aval.nbytes for k in outputs)
    scratch = node_scratch(flow, nodes)
    workspace = [sum(aval.nbytes for aval in scratch.get(n, ())) for n in nodes]
    problem = RematProblem(sizes, [float(node_flops(n, flow)) for n in nodes], deps, keep, budget + outside,
                           recomputable=recomputable, workspace=workspace)
    return problem, nodes


def writes_in_place(flow: Dataflow, nodes: Sequence[Node]) -> list[bool]:
    """Per solver node: may the planner write its value over an operand's storage in some order
    (:func:`graphc.memory.analysis.overlay_operands`, the planner's own rule). The bound lets these
    overlay a read; every other node's value needs bytes of its own while it runs (a log-softmax of
    the logits holds both)."""
    owner = alias_analysis(flow)
    pinned = {owner[r] for r in flow.roots}
    return [bool(overlay_operands(flow, n, owner, pinned)) for n in nodes]


MOMENT_SCHEDULES = 4
"""How many moments' solutions (the bound's first) become schedules."""
MOMENT_RESOLVES = 6
"""How often a moment whose schedule overshoots the budget is solved again at a lower one: lowered by the
overshoot, and at least by ``MOMENT_MARGIN`` of the budget, doubling each time (alignment and the
other moments make a schedule overshoot by a little)."""
MOMENT_MARGIN = 0.002
SMALL_MOMENTS = 3
"""Up to ``MILP_MAX_NODES`` values the bound solves this many moments, the first moment's schedule is
tried, and solved again once: the whole-graph MILP searches these graphs too."""


BOUND_MAX_NODES = 20_000
"""Above this many values the moment bound is not computed: its reachability bitsets take n²/8 bytes."""


def moment_candidates(flow: Dataflow, budget: int, measure: Callable[[Dataflow], int], deadline: Deadline,
                      seconds: float) -> tuple[list[Candidate], "RecomputeBound | None"]:
    """The moment bound of ``flow`` at ``budget`` (:mod:`graphc.remat.bound`, ``seconds`` for its programs),
    and its solutions as schedules.

    A moment's solution says which values to compute again after it; :func:`~graphc.remat.bound.drop_stages` makes
    that a schedule. Where it fits, its recompute equals the bound and the schedule is optimal
    over every order; where the arena overshoots (other moments, alignment), the moment is solved
    again at a lower budget (``MOMENT_RESOLVES``). No bound (None) above ``BOUND_MAX_NODES`` values.
    """
    from graphc.remat.bound import Moments, drop_stages, moment_bound
    problem, nodes = bound_problem(flow, budget)
    if problem.n > BOUND_MAX_NODES:
        return [], None
    small = problem.n <= MILP_MAX_NODES  # the whole-graph MILP searches these: fewer moments and schedules
    moments = Moments(problem, in_place=writes_in_place(flow, nodes))
    bound = moment_bound(problem, time_limit=seconds, moments_of=moments, moments=SMALL_MOMENTS if small else None)
    candidates: list[Candidate] = []
    fitting = np.inf  # the least recompute of a schedule found that fits
    schedules, resolves = (1, 1) if small else (MOMENT_SCHEDULES, MOMENT_RESOLVES)
    for m, dropped in bound.drops[:schedules] if bound.feasible else ():
        if fitting <= bound.value:
            break  # the schedule found is optimal
        if fitting <= sum(problem.costs[v] for v in dropped):
            continue  # this moment's schedules cannot recompute less
        model_budget, margin = problem.budget, budget * MOMENT_MARGIN
        for _ in range(resolves + 1):
            if deadline.passed():
                break
            rewritten = from_stages(flow, nodes, drop_stages(problem, [(m, dropped)]))
            planned = measure(rewritten)
            candidates.append(Candidate(f"moment schedule ({len(dropped)} values computed again)",
                                        recompute_flops(rewritten), lambda r=rewritten: r, planned))
            if planned <= budget:
                fitting = min(fitting, candidates[-1].recompute_flops)
                break
            model_budget -= max(planned - budget, margin)
            margin *= 2
            if model_budget <= 0:
                break
            _, _, dropped = moments.solve(m, min(seconds, deadline.left()) / 2, budget=int(model_budget))
            if dropped is None:
                break
    return candidates, bound


def from_stages(flow: Dataflow, nodes: list[Node], R: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> Dataflow:
    """The instances of a stage schedule: stage t computes the nodes i with R[t, i], in index order
    (with ``groups``, column g of R stands for the nodes ``groups[g]``, run in that order).

    A node's first computation is the node itself, later ones are clones; each
    reads the latest instance of its operands, and views are re-bound onto the
    latest instance of their base when it changes.
    """
    current: dict[Node, Node] = {}
    out_nodes: list[Node] = [n for n in flow.nodes if n.is_source]
    args: dict[Node, tuple[Node, ...]] = {n: () for n in out_nodes}

    def instance(node: Node) -> Node:
        """The latest instance of ``node``, binding views of a newer base as needed."""
        chain = []
        while node.is_view and node not in nodes_set:
            chain.append(node)
            node = flow.args[node][0]
        base = node if node.is_source else current[node]
        for view in reversed(chain):
            made = current.get(view)
            if made is None or args[made][0] is not base:
                made = view if made is None and base is flow.args[view][0] else flow.instance(view, (base,), recompute=True)
                out_nodes.append(made)
                args[made] = (base,)
                current[view] = made
            base = made
        return base

    nodes_set = set(nodes)
    columns = np.nonzero(R)[1]
    order = [i for g in columns for i in groups[g]] if groups is not None else columns
    for i in order:
        node = nodes[i]
        node_args = tuple(instance(a) for a in flow.args[node])
        made = node if node not in current else flow.instance(node, node_args, recompute=True)
        out_nodes.append(made)
        args[made] = node_args
        current[node] = made
    roots = [instance(r) for r in flow.roots]
    return flow.derive(out_nodes, args, roots).without_dead_code()


_FOUND: "OrderedDict[tuple, dict[bytes, tuple[np.ndarray, int]]]" = OrderedDict()
"""Every stage schedule (R of the fused problem) the solver found, per problem (the budget aside),
for the last ``_FOUND_PROBLEMS`` problems: a schedule that fitted one budget fits every larger one,
so each stays a candidate of later compiles of the same graph (this is what keeps the solver
policies monotone in the budget when a solve at a larger budget finds less)."""
_FOUND_PROBLEMS = 16
_FOUND_PER_PROBLEM = 64


def _problem_key(problem: "RematProblem") -> tuple:
    return (tuple(problem.sizes), tuple(problem.costs), tuple(tuple(d) for d in problem.deps), tuple(problem.keep),
            tuple(problem.recomputable or ()), tuple(problem.workspace or ()))


def _remember(key: tuple, R: np.ndarray, recompute: int) -> None:
    """Keep a stage schedule (and its recompute FLOPs) of the problem ``key``."""
    schedules = _FOUND.setdefault(key, {})
    _FOUND.move_to_end(key)
    if len(schedules) < _FOUND_PER_PROBLEM:
        schedules.setdefault(np.packbits(R).tobytes() + bytes(str(R.shape), "ascii"), (R, recompute))
    while len(_FOUND) > _FOUND_PROBLEMS:
        _FOUND.popitem(last=False)


def _remembered(flow: Dataflow, problem: "RematProblem", nodes: list[Node],
                groups: list[list[int]]) -> list[Candidate]:
    """The schedules a solver found before for this problem (``_FOUND``), as candidates built on ``flow``."""
    return [Candidate("a schedule the solver found for this graph at another budget", recompute,
                      lambda R=R: from_stages(flow, nodes, R, groups))
            for R, recompute in _FOUND.get(_problem_key(problem), {}).values()]


AUTO_MILP_MAX_NODES = MILP_MAX_NODES
"""``solver="auto"``: the MILP up to this many values (after fusion), CP-SAT above (when OR-Tools is
installed). On a random layered graph of 100 nodes at 80 % of its store-all peak, 20 s each, the
MILP found a schedule recomputing 109 with a bound of 16.9 where CP-SAT found 175 with no bound
(benchmarks/remat_moccasin.py --quick); above, the MILP's model grows as n² and CP-SAT's as n·C."""


AUTO_CPSAT_MAX_NODES = 1_000
"""``solver="auto"``: above this many values no whole-graph solver runs (the chain DP's schedules and the
constructed ones remain). Moccasin's largest graphs have 1,000 nodes; on 500 nodes CP-SAT found no schedule
of its own in 6 minutes here (benchmarks/remat_moccasin.py), and ResNet-50's step has thousands."""


def _solver_choice(solver: str, policy: str, n: int) -> tuple[str, str]:
    """The solver to run ("cpsat", "milp", "lp-rounding" or "" for none) and why, for ``solver`` and n values.

    "milp": the MILP up to ``MILP_MAX_NODES``, its LP rounding up to ``LP_MAX_NODES``, none above;
    "cpsat": CP-SAT at any size (a GraphError naming the install when OR-Tools is missing);
    "auto": the MILP up to ``AUTO_MILP_MAX_NODES``, CP-SAT up to ``AUTO_CPSAT_MAX_NODES``, none
    above — or the "milp" choice when OR-Tools is missing. ``policy="optimal-lp"`` always means the LP rounding.
    """
    from graphc.remat.cpsat import cpsat_available
    if policy == "optimal-lp":
        return ("lp-rounding", "remat='optimal-lp'") if n <= LP_MAX_NODES else ("", f"{n} values > {LP_MAX_NODES}")
    if solver == "cpsat":
        if not cpsat_available():
            raise GraphError("solver='cpsat' needs OR-Tools, which is not installed: pip install graphc[remat] "
                             "(or choose solver='milp')")
        return "cpsat", "solver='cpsat'"
    why = ""
    if solver == "auto":
        if n > AUTO_CPSAT_MAX_NODES:
            return "", f"{n} values > {AUTO_CPSAT_MAX_NODES}: no whole-graph solver (solver='cpsat' forces one)"
        if n > AUTO_MILP_MAX_NODES and cpsat_available():
            return "cpsat", f"{n} values > {AUTO_MILP_MAX_NODES}: CP-SAT"
        why = "" if cpsat_available() else "OR-Tools not installed (pip install graphc[remat] for CP-SAT); "
    if n <= MILP_MAX_NODES:
        return "milp", why + f"{n} values <= {MILP_MAX_NODES}: MILP"
    if n <= LP_MAX_NODES:
        return "lp-rounding", why + f"{n} values > {MILP_MAX_NODES}: LP rounding"
    return "", why + f"{n} values > {LP_MAX_NODES}"


def _best_known(problem: "RematProblem", key: tuple) -> np.ndarray | None:
    """The cheapest remembered schedule (``_FOUND``) of this problem that fits its budget: CP-SAT's hint."""
    from graphc.remat.problem import events_of, peak_of
    fitting = [(recompute, R) for R, recompute in _FOUND.get(key, {}).values()
               if R.shape == (problem.n, problem.n) and peak_of(problem, events_of(problem, R)) <= problem.budget]
    return min(fitting, key=lambda f: f[0])[1] if fitting else None


def _solve(name: str, problem: "RematProblem", seconds: float, progress: ProgressFn | None,
           hint: np.ndarray | None) -> "RematSolution":
    if name == "cpsat":
        from graphc.remat.cpsat import solve_cpsat
        return solve_cpsat(problem, time_limit=seconds, progress=progress, hint=hint)
    if name == "milp":
        from graphc.remat.exact import solve_milp
        return solve_milp(problem, time_limit=seconds, progress=progress)
    from graphc.remat.rounding import solve_lp_rounding
    return solve_lp_rounding(problem, time_limit=seconds, progress=progress)


_LABELS = {"cpsat": "CP-SAT", "milp": "MILP", "lp-rounding": "LP rounding"}


def _solver_candidate(
    flow: Dataflow, problem: "RematProblem", nodes: list[Node], groups: list[list[int]], policy: str,
    measure: Callable[[Dataflow], int], deadline: Deadline, measure_seconds: float,
    solver: str = "auto", progress: ProgressFn | None = None,
) -> tuple[list[Candidate], SolverOutcome]:
    """Solve for the budget; where the planned arena overshoots it (alignment, scratch), solve
    again with the model's budget lowered by the overshoot (at most three times), each solve
    getting the time left before ``deadline`` less twice what measuring a result takes
    (``measure_seconds`` at first: the store-all flow's).

    The solver is chosen by :func:`_solver_choice`; CP-SAT is hinted with the cheapest schedule
    found before for this problem that fits. Every schedule found is remembered (``_FOUND``).
    Returns the candidates found now and how the solver ended: its objective and bound are the
    recompute of the fused problem (cost − Σ costs, FLOPs + 1 per node computed again; 0: none).
    """
    budget = problem.budget
    key = _problem_key(problem)
    name, chosen_because = _solver_choice(solver, policy, problem.n)
    candidates: list[Candidate] = []
    if not name:
        return candidates, SolverOutcome("milp" if solver == "auto" else solver, "not run", why=chosen_because)
    once = float(sum(problem.costs))
    model_budget, seconds, status, reserve = budget, 0.0, "not run", measure_seconds
    why = "time_limit reached before the solver could run"
    objective = bound = None
    for _ in range(3):
        solve_by = deadline.sooner(2 * reserve)
        if solve_by.left() <= 0:
            break
        problem = replace(problem, budget=max(model_budget, 0))
        hint = _best_known(problem, key) if name == "cpsat" else None
        solution = _solve(name, problem, solve_by.left() * SOLVER_SHARE, progress, hint)
        seconds += solution.solve_seconds
        if solution.status not in ("optimal", "feasible"):
            if not candidates:  # a re-solve that finds nothing leaves the earlier solve's verdict standing
                status, bound = solution.status, _recompute_bound(solution, once)
                why = _why_nothing(solution, name, model_budget, budget)
            else:
                why = f"a re-solve at {model_budget:,d} B ended {solution.status}"
            if solution.interrupted:
                status = "interrupted"
            break
        status, why = ("interrupted" if solution.interrupted else solution.status), ""
        objective, bound = solution.cost - once, _recompute_bound(solution, once)
        started = time.perf_counter()
        rewritten = from_stages(flow, nodes, solution.R, groups)
        planned = measure(rewritten)
        reserve = time.perf_counter() - started
        candidates.append(Candidate(f"{_LABELS[name]} ({status})", recompute_flops(rewritten),
                                    lambda r=rewritten: r, planned))
        _remember(key, solution.R, candidates[-1].recompute_flops)
        if planned <= budget or solution.interrupted:
            break
        model_budget -= planned - budget
    why = "; ".join(part for part in (chosen_because, why) if part)
    return candidates, SolverOutcome(name, status, objective, bound, seconds, why)


def _recompute_bound(solution: "RematSolution", once: float) -> float | None:
    """The solver's bound on the cost as a bound on the recompute (cost − Σ costs, at least 0)."""
    return None if solution.lower_bound is None else max(solution.lower_bound - once, 0.0)


def _why_nothing(solution: "RematSolution", name: str, model_budget: int, budget: int) -> str:
    """Why a solve found no schedule, for the report."""
    at = f"{model_budget:,d} B" + ("" if model_budget == budget else f" (the budget {budget:,d} B less the arena's overshoot)")
    if solution.interrupted:
        return f"stopped by Ctrl-C before it found a schedule within {at}"
    if solution.status == "infeasible" and name != "lp-rounding":
        return (f"the model has no schedule within {at}: its fixed order of first computations and its fused "
                "layers admit none")
    if solution.status == "infeasible":
        return f"the LP rounding found no schedule within {at}"
    return f"no schedule found within {at} before the time limit"
