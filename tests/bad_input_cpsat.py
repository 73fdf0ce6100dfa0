"""Bad inputs of the CP-SAT solver choice, for the catalogue in tests/test_bad_input.py (CASES_CPSAT)."""

from __future__ import annotations

import sys

import graphc as gc
import graphc.zoo


def _compile_cpsat_without_ortools() -> None:
    """compile(..., solver="cpsat") with OR-Tools unimportable, at a budget that needs the solver."""
    names = [m for m in sys.modules if m == "ortools" or m.startswith("ortools.")]
    saved = {m: sys.modules[m] for m in names}
    sys.modules["ortools.sat.python.cp_model"] = None  # makes the import raise ImportError
    try:
        graph, values = gc.zoo.chain(6, width=16, batch=4)
        updates = gc.sgd(values["loss"], values["params"], 0.1)
        store_all = gc.compile([values["loss"]], updates=updates, bind=False).memory.planned_bytes
        gc.compile([values["loss"]], updates=updates, remat="optimal", memory_budget=store_all * 3 // 4,
                   solver="cpsat", time_limit=5, bind=False)
    finally:
        sys.modules.pop("ortools.sat.python.cp_model", None)
        sys.modules.update(saved)


CASES_CPSAT = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("solver-cpsat-without-ortools", _compile_cpsat_without_ortools, r"solver='cpsat'.*pip install graphc\[remat\]"),
]
