"""Recompute: which forward values to keep, which to compute again for the backward pass.

The lecture's two costs — "BP needs all the intermediate results in memory"
and "takes twice the computation of the forward pass" — are one trade-off.
A policy rewrites the program's dataflow into *instances*: the first
evaluation of a forward node is the node itself; every later evaluation is a
clone (``Node.recompute_of``), and each backward node reads the instance that
is current when it runs. The rewritten dataflow's node list is the intended
execution order; the memory planner then measures what the choice costs.

Policies:

- ``"none"``: keep everything.
- ``"sqrt"``: Chen et al. 2016. The forward graph is cut at its *separators*
  (values every input-to-loss path passes through); every k-th separator is
  kept, and each segment is computed once more, from its checkpoint, just
  before its backward — one extra forward at most, O(√n) memory for k ≈ √n.
- ``"revolve"``: Griewank & Walther's binomial checkpointing over the chain of
  separators: with s snapshots, the reversal of l steps takes the least
  possible number of forward steps, r·l − C(s+r, s+1), r the least with
  C(s+r, s) ≥ l.
- ``"optimal"``: the least recompute over four searches, each a candidate:
  Checkmate's MILP (Jain et al. 2020, solved with HiGHS, see :mod:`graphc.remat.problem`)
  or, past ``AUTO_MILP_MAX_NODES`` values, CP-SAT on retention intervals (Bartan et al.
  2023, Moccasin; :mod:`graphc.remat.cpsat`), both over the whole dataflow with a fixed
  order of first computations (the scheduler's); and a dynamic program over the chain of
  blocks (Beaumont et al. 2021, Rotor; Zhao et al. 2023, Rockmate; :mod:`graphc.remat.blocks`),
  whose per-block options are solved once per kind of block; and the moment schedules
  (:mod:`graphc.remat.bound`): at the moments where storing everything holds the most, the
  least recompute any schedule in any order needs to fit is an integer program, whose
  solution is also a schedule (free those values, compute them again just before their next
  read). Its value is the bound ``prog.remat`` measures the chosen schedule's gap against,
  and where that schedule fits it is optimal over every order. ``solver=`` picks the
  whole-graph solver ("auto", "milp", "cpsat"). As in the other policies only forward
  values are recomputed, and single-consumer runs of forward ops are fused into one node
  first (a layer's matmul, bias add and activation). ``"optimal-lp"``: the MILP's LP
  relaxation, rounded and improved by local search. The constructed sqrt and revolve
  schedules stay candidates, so "optimal" never recomputes more than they do at the same
  budget; ``prog.remat`` says how each search ended (:class:`RematReport`).

Given a ``memory_budget``, a policy tries its candidate settings and keeps
the least recompute whose planned arena fits (ties: the smaller arena).
Guarantees (:func:`rematerialize`):

- **Never above store-all.** Storing everything is measured first and is a
  candidate of every policy; a recompute that saves no memory is never chosen.
- **Monotone in the budget.** A schedule that fits a budget fits every larger
  one, so the candidates only grow with the budget: the constructed settings
  do not depend on it, and every schedule a solver found for the same problem
  is remembered (``graphc.remat.optimal._FOUND``) and offered again. A larger
  budget then never gives more recompute, nor a larger arena at equal recompute
  (for compiles of one graph in one process; a solve cut short by ``time_limit``
  can still find less than a later one with more time).
- **``time_limit`` bounds the stage.** One :class:`Deadline` is set on entry;
  the constructed ladders, each solve and re-solve, the LP, the local searches
  and the MILP's child process get the time left, and the best schedule
  known when it passes is returned.
- **A budget below the floor is reported at once.** :func:`least_budget_bound`
  (one linear pass) bounds every schedule's arena from below; a budget under it
  is a GraphError naming the bound and the store-all peak before any search.

The package, one module per job: :mod:`~graphc.remat.policies` (the entry point
and its report), :mod:`~graphc.remat.candidates` (choosing under a budget),
:mod:`~graphc.remat.segments` (separators and checkpointed segments),
:mod:`~graphc.remat.sqrt`, :mod:`~graphc.remat.binomial` (revolve),
:mod:`~graphc.remat.optimal` (the solver policies on a dataflow),
:mod:`~graphc.remat.blocks` (the chain DP), :mod:`~graphc.remat.bound` (the moment bound and its
schedules), :mod:`~graphc.remat.joint` (several moments tied together: a bound and a schedule in
the solvers' fixed order), :mod:`~graphc.remat.progress` (what solvers report), and the solver on
an abstract DAG: :mod:`~graphc.remat.problem` (the problem, its schedules and their
replay), :mod:`~graphc.remat.fusion`, :mod:`~graphc.remat.milp` (the model),
:mod:`~graphc.remat.highs` (the HiGHS driver), :mod:`~graphc.remat.exact`,
:mod:`~graphc.remat.rounding` and :mod:`~graphc.remat.cpsat` (the solvers), and CP-SAT's first schedules on
large problems: :mod:`~graphc.remat.greedy` (a forward simulation that evicts under the budget) and
:mod:`~graphc.remat.intervals` (an integer program over the gaps between a value's reads). The
solver's names below load SciPy on first use, so that ``import graphc`` does not.
"""

from __future__ import annotations

import importlib

from graphc.remat.binomial import revolve, revolve_actions, revolve_forward_steps
from graphc.remat.candidates import Candidate, Deadline, choose, node_flops, recompute_flops
from graphc.remat.optimal import LP_MAX_NODES, MILP_MAX_NODES, from_stages, remat_problem
from graphc.remat.policies import (
    REMAT_SOLVERS, RematReport, check_budget, check_solver, check_time_limit, least_budget_bound, rematerialize,
)
from graphc.remat.segments import checkpoint_segments, forward_nodes, segments_between, separators

_SOLVER_NAMES = {
    "RematProblem": "problem", "RematSolution": "problem", "Replay": "problem", "replay": "problem",
    "peak_of": "problem", "events_of": "problem", "schedule_of": "problem", "store_all_peak": "problem",
    "budget_lower_bound": "problem", "fuse_chains": "fusion", "fused_events": "fusion", "model_size": "milp",
    "solve_milp": "exact", "minimal_least_budget": "exact", "LeastBudgetTimeout": "exact",
    "solve_lp_rounding": "rounding", "RecomputeBound": "bound", "moment_bound": "bound", "Moments": "bound",
    "drop_stages": "bound", "solve_joint": "joint", "joint_schedule": "joint",
    "evicting_schedule": "greedy", "interval_schedule": "intervals", "starting_schedule": "cpsat",
}


def __getattr__(name: str) -> object:
    """The solver's names, imported (with SciPy) on first use."""
    if name in _SOLVER_NAMES:
        return getattr(importlib.import_module(f"graphc.remat.{_SOLVER_NAMES[name]}"), name)
    raise AttributeError(f"module 'graphc.remat' has no attribute {name!r}")


__all__ = [
    "Candidate", "Deadline", "LP_MAX_NODES", "MILP_MAX_NODES", "REMAT_SOLVERS", "RematReport", "check_budget",
    "check_solver", "check_time_limit",
    "checkpoint_segments", "choose", "forward_nodes", "from_stages", "least_budget_bound", "node_flops",
    "recompute_flops", "remat_problem", "rematerialize", "revolve", "revolve_actions", "revolve_forward_steps",
    "segments_between", "separators", *_SOLVER_NAMES,
]
