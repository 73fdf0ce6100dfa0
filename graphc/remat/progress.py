"""What a recompute solver tells while it runs and when it ends.

A solver given a ``progress`` callable calls it with a :class:`SolveProgress` each time it
knows more (a better schedule, a tighter bound); the policy's report carries one
:class:`SolverOutcome` per solve, so that "optimal" is never silent about how it ended.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, TextIO


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


def progress_line(event: SolveProgress) -> str:
    """One event as a line: ``[milp   12.3 s] best 1,345,291, bound 1,213,673, gap 9.8% (LP rounding's schedule)``."""
    best = "no schedule yet" if event.objective is None else f"best {event.objective:,.0f}"
    bound = "" if event.bound is None else f", bound {event.bound:,.0f}"
    gap = SolverOutcome(event.solver, "", event.objective, event.bound).gap
    gap_text = "" if gap is None else f", gap {gap:.1%}"
    note = f" ({event.message})" if event.message else ""
    return f"[{event.solver} {event.seconds:6.1f} s] {best}{bound}{gap_text}{note}"


class ProgressLine:
    """A :data:`ProgressFn` writing to stderr: on a terminal one line updated in place (carriage
    return, the line cleared), elsewhere (a file, a pipe, a log) one plain line per event.

    ``done()`` ends the line in place with a newline, so that what is printed next starts on a
    line of its own; :func:`graphc.remat.rematerialize` calls it when the solver has ended.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._open = False  # a line drawn in place and not yet ended

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr  # sys.stderr at the time of writing

    def __call__(self, event: SolveProgress) -> None:
        stream = self.stream
        if _is_terminal(stream):
            stream.write("\r\x1b[K" + progress_line(event))
            self._open = True
        else:
            stream.write(progress_line(event) + "\n")
        stream.flush()

    def done(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


print_progress = ProgressLine()
"""The :data:`ProgressFn` of ``compile(..., progress=True)`` and of the ``graphc`` command."""
