"""The recompute stage's entry point: :func:`rematerialize`, its report, and the checks of its arguments.

Store-all is measured first and is every policy's candidate; a budget below
:func:`least_budget_bound` is reported before any search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable


from graphc.errors import GraphError
from graphc.ir import Node, is_int, is_real
from graphc.memory.analysis import alias_analysis, peak_live_bytes
from graphc.dataflow import Dataflow
from graphc.remat.binomial import _revolve_candidates
from graphc.remat.candidates import Candidate, choose, Deadline, node_flops, recompute_flops
from graphc.remat.optimal import moment_candidates, remat_problem, _remembered, _solver_candidate
from graphc.remat.progress import ProgressFn, SolverOutcome
from graphc.remat.segments import forward_nodes, segments_between, separators
from graphc.remat.sqrt import _sqrt_candidates

if TYPE_CHECKING:
    from graphc.remat.bound import RecomputeBound


@dataclass(frozen=True)
class RematReport:
    """What the remat stage chose, and why: ``Program.remat``.

    ``str(report)`` says it in one to six lines: the schedule chosen with its recompute
    (FLOPs, and as a multiple of one forward pass) and arena; for the solver policies, how
    the solver ended (``outcome``: optimal; feasible with its objective, bound and gap;
    interrupted; or not run / infeasible and why) and, when the chosen schedule is not the
    solver's, why it was chosen instead (``choice``); and the moment bound (``bound``: no
    schedule in any order recomputes less within the budget) with the chosen schedule's gap
    to it (``bound_gap``).
    """

    policy: str
    chosen: str
    recompute_flops: int
    planned_bytes: int | None
    candidates: int
    outcome: SolverOutcome | None = None  # how the solver ended, for the solver policies
    forward_flops: int = 0  # one forward pass (0: not measured)
    budget: int | None = None
    choice: str = ""  # why the chosen schedule, when a solver ran and it is not the solver's
    solver_chosen: bool = False  # the chosen schedule is one the solver found in this compile
    chain_dp: SolverOutcome | None = None  # how the DP over the chain of blocks ended ("optimal" only)
    bound: "RecomputeBound | None" = None  # no schedule in any order recomputes less (solver policies, budget given)

    @property
    def solver_status(self) -> str | None:
        return None if self.outcome is None else self.outcome.status

    @property
    def solve_seconds(self) -> float:
        return 0.0 if self.outcome is None else self.outcome.seconds

    @property
    def interrupted(self) -> bool:
        """The solve was stopped by Ctrl-C; the chosen schedule is the best known then."""
        return self.solver_status == "interrupted"

    @property
    def gap(self) -> float | None:
        """The solver's relative gap (objective − bound) / objective, None without both."""
        return None if self.outcome is None else self.outcome.gap

    @property
    def bound_gap(self) -> float | None:
        """(recompute − moment bound) / recompute: how far the chosen schedule can be from every schedule's best."""
        if self.bound is None or not self.bound.feasible:
            return None
        if self.recompute_flops <= 0:
            return 0.0
        if self.bound.value <= 0:
            return None  # a bound of nothing measures no distance
        return max(self.recompute_flops - self.bound.value, 0.0) / self.recompute_flops

    @property
    def fallback_reason(self) -> str:
        """Why the chosen schedule is not the solver's ("" when it is, or when no solver ran)."""
        if self.outcome is None or self.solver_chosen:
            return ""
        return "; ".join(part for part in (self.outcome.why, self.choice) if part)

    @staticmethod
    def _solver_line(o: SolverOutcome) -> str:
        found = "" if o.objective is None else f", recompute {o.objective:,.0f} FLOPs"
        bound = "" if o.bound is None else f", bound {o.bound:,.0f}"
        gap = "" if o.gap is None or o.status == "optimal" else f", gap {o.gap:.1%}"
        why = f" ({o.why})" if o.why else ""
        status = "interrupted by Ctrl-C" if o.status == "interrupted" else o.status
        return f"solver {o.solver}: {status}{why}{found}{bound}{gap}, {o.seconds:.2f} s"

    def _bound_line(self) -> str:
        bound = self.bound
        proven = "" if bound.proven else ", the solves stopped at their time limit"
        if bound.value <= 0 < self.recompute_flops:
            return (f"bound: 0 FLOPs: in another order, a schedule might fit the budget with no recompute; the "
                    f"moment bound cannot rule it out, so how far this schedule is from the best is not known "
                    f"({bound.seconds:.2f} s{proven})")
        return (f"bound: no schedule within the budget, in any order, recomputes less than {bound.value:,.0f} FLOPs "
                f"(gap {self.bound_gap:.1%}{proven}, {bound.seconds:.2f} s)")

    def __str__(self) -> str:
        per_forward = (f" ({self.recompute_flops / self.forward_flops:.2f}× one forward pass)"
                       if self.forward_flops else "")
        within = "" if self.budget is None else f" within the budget {self.budget:,d} B"
        planned = "" if self.planned_bytes is None else f", arena {self.planned_bytes:,d} B{within}"
        lines = [f"remat={self.policy!r}: {self.chosen}, recompute {self.recompute_flops:,d} FLOPs{per_forward}"
                 f"{planned} ({self.candidates} candidates)"]
        for outcome in (self.outcome, self.chain_dp):
            if outcome is not None:
                lines.append(self._solver_line(outcome))
        if self.bound is not None and self.bound.feasible:
            lines.append(self._bound_line())
        if self.choice:
            lines.append(f"chosen: {self.choice}")
        return "\n".join(lines)


def least_budget_bound(flow: Dataflow) -> int:
    """Arena bytes no schedule of ``flow`` can go below, whatever it recomputes: one linear pass.

    Every schedule runs each node at least once; while node v runs, the storage
    blocks of its operands are live and so is v's own block, which an elementwise
    op may share with an operand (in place), plus v's scratch; at the end every
    output's block is live. Blocks never overlap in the arena, so

        arena >= max( max_v [max(M_v, Σ_{b in blocks(args v)} M_b) + scratch_v],  Σ_{b in blocks(roots)} M_b )

    with M the bytes of a block; sources and views own no arena storage.
    """
    owner = alias_analysis(flow)

    def blocks_bytes(nodes: Iterable[Node]) -> int:
        return sum(b.aval.nbytes for b in {owner[n] for n in nodes if not owner[n].is_source})

    floor = blocks_bytes(flow.roots)
    for node in flow.nodes:
        if node.is_source or owner[node] is not node:
            continue
        scratch = node.op.scratch(*(a.aval for a in flow.args[node]), **node.attrs) if node.op.scratch else ()
        running = max(node.aval.nbytes, blocks_bytes(flow.args[node])) + sum(s.nbytes for s in scratch)
        floor = max(floor, running)
    return floor


def check_budget(budget: object) -> int | None:
    """``budget`` as bytes (None: no budget); a GraphError for anything but a whole number.
    A negative budget passes here: :func:`rematerialize` reports it against the least feasible one."""
    if budget is None:
        return None
    if not is_int(budget):
        raise GraphError(f"memory_budget={budget!r} must be an int number of bytes >= 0, or None for no budget; "
                         "a whole number of bytes, e.g. 1_000_000")
    return int(budget)


REMAT_SOLVERS = ("auto", "milp", "cpsat")
"""``compile(..., remat="optimal", solver=...)``: "auto" picks by the problem's size."""


def check_solver(solver: object) -> str:
    """``solver`` as given; a GraphError unless it is one of :data:`REMAT_SOLVERS`."""
    if not isinstance(solver, str) or solver not in REMAT_SOLVERS:
        raise GraphError(f"solver={solver!r} is not a recompute solver; choose one of {', '.join(REMAT_SOLVERS)}")
    return solver


def check_time_limit(time_limit: object) -> float:
    """``time_limit`` as seconds; a GraphError unless it is a finite number > 0."""
    if not (is_real(time_limit) and 0 < time_limit < math.inf):  # NaN fails both comparisons
        raise GraphError(f"time_limit={time_limit!r} must be a number of seconds > 0, and finite; e.g. time_limit=10")
    return float(time_limit)


EXACT_LEAST_MAX_NODES = 2_000
"""Up to this many nodes, a budget below the floor is answered with the policy's exact least
feasible budget (its candidates are all measured); above, with the floor alone."""


def _store_all_peak(flow: Dataflow) -> int:
    """The most bytes live at once when every value is kept and nodes run in creation order
    (one liveness pass; the scheduler's order may peak lower)."""
    return peak_live_bytes(flow, [n for n in flow.nodes if not n.is_source])


def _below_floor(budget: int, floor: int, flow: Dataflow, policy: str) -> GraphError:
    return GraphError(
        f"memory_budget={budget:,d} B is below what any schedule of these outputs needs: the least feasible "
        f"budget is at least {floor:,d} B (the largest node with its operands, or all outputs at once); "
        f"storing every value peaks at {_store_all_peak(flow):,d} live bytes in creation order (remat='none'). "
        f"Raise memory_budget to {floor:,d} B or more for remat={policy!r}"
    )


def _infeasible(budget: int, policy: str, least: int, store_all: int, cut_short: bool) -> GraphError:
    searched = (" (the search stopped at time_limit before measuring every schedule: the least found so far)"
                if cut_short else "")
    return GraphError(
        f"memory_budget={budget:,d} B is below what remat={policy!r} can reach; "
        f"the least feasible budget for it is {least:,d} B{searched}; storing every value plans {store_all:,d} B. "
        "Raise memory_budget, or choose another policy"
    )


def rematerialize(
    flow: Dataflow,
    policy: str,
    budget: int | None,
    measure: Callable[[Dataflow], int],
    time_limit: float = 60.0,
    solver: str = "auto",
    progress: ProgressFn | None = None,
) -> tuple[Dataflow, RematReport]:
    """Rewrite ``flow`` by ``policy`` under ``budget``; ``measure`` returns a flow's planned arena bytes.

    Guarantees, for every policy:

    - the result never plans more than storing everything, and a recompute
      that saves no memory is never chosen (the store-all plan is the answer then);
    - monotone in the budget: the choice is the least recompute that fits over a
      list of candidates that only grows with the budget (constructed settings,
      the solver's schedules, and every schedule a solver found for this
      problem before, see ``_FOUND``), so a larger budget never gives more
      recompute, nor a larger arena at equal recompute;
    - the stage ends within ``time_limit`` seconds (searches and solves get
      the time left of one :class:`Deadline`), with the best schedule known;
      on flows of up to ``EXACT_LEAST_MAX_NODES`` nodes the candidates found are
      all measured, past the deadline too, so "optimal" never recomputes more
      than √n or revolve where those fit, whatever the time limit;
    - a budget below :func:`least_budget_bound` is reported before any search.

    ``solver`` picks the solver of the "optimal" policy ("auto": by the problem's size);
    ``progress`` is called as the solver finds better schedules and bounds.
    """
    deadline = Deadline.after(check_time_limit(time_limit))
    budget = check_budget(budget)
    if policy not in ("none", "sqrt", "revolve", "optimal", "optimal-lp"):
        raise GraphError(f"remat={policy!r} is not a policy here")
    if budget is not None:
        floor = least_budget_bound(flow)
        if budget < floor and len(flow.nodes) > EXACT_LEAST_MAX_NODES:
            raise _below_floor(budget, floor, flow, policy)
    if policy == "none" and budget is None:
        return flow, RematReport(policy, "store all", 0, None, 1)
    measured_at = time.perf_counter()
    store_all = Candidate("store all", 0, lambda: flow, measure(flow))
    measure_seconds = time.perf_counter() - measured_at
    forward = forward_nodes(flow)
    segments = segments_between(forward, separators(flow, forward))
    if budget is None:
        return _unbudgeted(flow, policy, segments, store_all, measure)
    candidates = [store_all]
    # a small flow's √n ladder is whole and its candidates all measured, past the deadline too (quick):
    # the least recompute that fits is then chosen whatever the time limit, so √n's and revolve's are never beaten
    small = len(flow.nodes) <= EXACT_LEAST_MAX_NODES
    if len(segments) >= 2 and policy != "none":
        if policy != "revolve":
            candidates += _sqrt_candidates(flow, segments, budget, None if small else deadline)
        if policy != "sqrt":
            candidates += _revolve_candidates(flow, segments, budget)
    outcome, solved, blocks_outcome, bound = None, [], None, None
    if policy in ("optimal", "optimal-lp") and store_all.planned_bytes > budget >= floor:
        problem, nodes, groups = remat_problem(flow, budget)
        candidates += _remembered(flow, problem, nodes, groups)
        # the chain of blocks (Rotor/Rockmate DP): before the solver, which takes all the time left
        if policy == "optimal" and len(segments) >= 2:
            from graphc.remat.blocks import block_candidates
            by_blocks, blocks_outcome = block_candidates(flow, segments, budget, store_all.planned_bytes, measure,
                                                         deadline, progress)
            candidates += by_blocks
        by_moments, bound = moment_candidates(flow, budget, measure, deadline, _bound_seconds(deadline))
        candidates += by_moments
        # the constructed and remembered schedules first, then the solver with the time left
        choose(candidates, budget, measure, deadline)
        solved, outcome = _solver_candidate(flow, problem, nodes, groups, policy, measure, deadline,
                                            measure_seconds, solver=check_solver(solver), progress=progress)
        candidates += solved
        _end_progress_line(progress)
    found = choose(candidates, budget, measure, None if small else deadline)
    if found is None:  # every candidate measured, unless the deadline cut a large flow's search short
        least = min(c.planned_bytes for c in candidates if c.planned_bytes is not None)
        cut_short = any(c.planned_bytes is None for c in candidates)
        raise _infeasible(budget, policy, least, store_all.planned_bytes, cut_short)
    chosen, rewritten = found
    solver_chosen = any(chosen is c for c in solved)
    choice = _why_chosen(chosen, solved, outcome, budget) if outcome is not None and not solver_chosen else ""
    report = RematReport(policy, chosen.label, recompute_flops(rewritten), chosen.planned_bytes, len(candidates), outcome,
                         forward_flops=sum(node_flops(n, flow) for n in forward), budget=budget, choice=choice,
                         solver_chosen=solver_chosen, chain_dp=blocks_outcome, bound=bound)
    return rewritten, report


BOUND_SECONDS = 30.0
"""The moment bound's programs get at most this long, and at most a quarter of the stage's time left."""


def _bound_seconds(deadline: Deadline) -> float:
    return max(min(BOUND_SECONDS, deadline.left() / 4), 0.05)


def _end_progress_line(progress: ProgressFn | None) -> None:
    """Let a progress display that updates one line in place (``print_progress``) end it."""
    done = getattr(progress, "done", None)
    if callable(done):
        done()


def _why_chosen(chosen: Candidate, solved: list[Candidate], outcome: SolverOutcome, budget: int) -> str:
    """Why a solver policy chose ``chosen``, not one of the solver's schedules, in a sentence."""
    fitting = [c for c in solved if c.planned_bytes is not None and c.planned_bytes <= budget]
    if fitting:
        cheapest = min(c.recompute_flops for c in fitting)
        return (f"{chosen.label} fits and recomputes no more than the solver's schedule "
                f"({cheapest:,d} FLOPs)")
    if solved:
        over = min(c.planned_bytes for c in solved if c.planned_bytes is not None)
        return f"{chosen.label} fits; the solver's schedule plans {over:,d} B, over the budget"
    return f"{chosen.label} fits; the solver found nothing ({outcome.status})"


def _unbudgeted(flow: Dataflow, policy: str, segments: list[list[Node]], store_all: Candidate,
                measure: Callable[[Dataflow], int]) -> tuple[Dataflow, RematReport]:
    """Without a budget: the policy's own setting, unless it plans no less than storing everything."""
    if policy not in ("sqrt", "revolve") or len(segments) < 2:
        return flow, RematReport(policy, "store all", 0, store_all.planned_bytes, 1)
    (own,) = (_sqrt_candidates if policy == "sqrt" else _revolve_candidates)(flow, segments, None)
    rewritten = own.build()
    own.planned_bytes = measure(rewritten)
    if own.planned_bytes < store_all.planned_bytes:
        return rewritten, RematReport(policy, own.label, recompute_flops(rewritten), own.planned_bytes, 2)
    label = (f"store all ({own.label} plans {own.planned_bytes:,d} B, "
             f"no less than storing everything: nothing to trade the recompute for)")
    return flow, RematReport(policy, label, 0, store_all.planned_bytes, 2)
