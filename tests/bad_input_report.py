"""Bad input of the recompute stage's solver options: cases for the catalogue (tests/test_bad_input.py)."""

from __future__ import annotations

import graphc as gc


def _report_loss() -> gc.Value:
    """A scalar loss of a one-layer graph, built in a fresh graph."""
    with gc.Graph("report-case"):
        x = gc.input("x", shape=(2, 3))
        w = gc.param("w", shape=(3, 3))
        return gc.sum(gc.tanh(x @ w))


CASES_REPORT = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("report-solver-unknown", lambda: gc.compile(_report_loss(), remat="optimal", solver="gurobi"), r"solver='gurobi' is not a recompute solver; choose one of auto, milp, cpsat"),
    ("report-solver-none", lambda: gc.compile(_report_loss(), remat="optimal", solver=None), r"solver=None is not a recompute solver"),
    ("report-solver-upper-case", lambda: gc.compile(_report_loss(), remat="optimal", solver="MILP"), r"solver='MILP' is not a recompute solver"),
    ("report-progress-string", lambda: gc.compile(_report_loss(), remat="optimal", progress="yes"), r"progress='yes' must be True or False"),
    ("report-progress-int", lambda: gc.compile(_report_loss(), remat="optimal", progress=1), r"progress=1 must be True or False"),
    ("report-progress-callable", lambda: gc.compile(_report_loss(), remat="optimal", progress=print), r"progress=<built-in function print> must be True or False"),
]
