"""What a recompute solver tells while it runs and when it ends.

A solver given a ``progress`` callable calls it with a :class:`SolveProgress` each time it
knows more (a better schedule, a tighter bound); the policy's report carries one
:class:`SolverOutcome` per solve, so that "optimal" is never silent about how it ended.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SolveProgress:
    """A solver's state during a solve: the best schedule's cost and the proven bound so far."""

    solver: str  # "milp", "cpsat", "lp-rounding", "blocks"
    seconds: float  # since the solve began
    objective: float | None  # cost of the best schedule known (the model's units), None before the first
    bound: float | None  # proven lower bound on the optimum's cost, None when the solver has none yet
    message: str = ""


ProgressFn = Callable[[SolveProgress], None]


@dataclass(frozen=True)
class SolverOutcome:
    """How one solve ended: which solver, its status, the best cost and the bound it proved, its seconds.

    ``status`` is "optimal", "feasible" (a schedule, not proven optimal: see ``gap``),
    "interrupted" (stopped by Ctrl-C, the best schedule kept), "infeasible", "timeout"
    (nothing found in time) or "not run"; ``why`` says why a solver was not run or fell back.
    """

    solver: str
    status: str
    objective: float | None = None
    bound: float | None = None
    seconds: float = 0.0
    why: str = ""

    @property
    def gap(self) -> float | None:
        """(objective − bound) / objective, 0 when both are 0; None without both."""
        if self.objective is None or self.bound is None:
            return None
        if self.objective == 0:
            return 0.0
        return max(self.objective - self.bound, 0.0) / abs(self.objective)


def print_progress(event: SolveProgress) -> None:
    """A :data:`ProgressFn` that writes one line per event to stderr (``compile(..., progress=True)``)."""
    best = "no schedule yet" if event.objective is None else f"best {event.objective:,.0f}"
    bound = "" if event.bound is None else f", bound {event.bound:,.0f}"
    note = f" ({event.message})" if event.message else ""
    print(f"[{event.solver} {event.seconds:6.1f} s] {best}{bound}{note}", file=sys.stderr, flush=True)
