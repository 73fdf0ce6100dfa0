"""The HiGHS driver: options, the child process that large MILPs run in, and the reading of results.

Past a few hundred thousand nonzeros HiGHS can overrun its time limit; such a model runs in
:mod:`graphc.remat.highs_child`, a separate interpreter that can be stopped.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from graphc.remat.milp import _Model


def _options(time_limit: float, mip_gap: float | None = None, presolve: bool = True) -> dict:
    options = {"time_limit": max(float(time_limit), 0.01), "disp": False, "presolve": presolve}
    if mip_gap is not None:
        options["mip_rel_gap"] = mip_gap
    return options


ISOLATE_NONZEROS = 250_000  # MILPs at least this large run in a child process (see ``_milp_in_child``)

_CHILD_SCRIPT = Path(__file__).with_name("highs_child.py")
"""The child process's program (:mod:`graphc.remat.highs_child`), run by path with ``-P``."""


CHILD_START_SECONDS = 1.0
"""Kept back from HiGHS's own limit in a child process: the interpreter's start and SciPy's import."""


def _milp_in_child(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraint: LinearConstraint,
                   options: dict) -> SimpleNamespace:
    """``milp`` in a separate interpreter, killed when ``options["time_limit"]`` seconds have passed.

    Past a few hundred thousand nonzeros HiGHS can run well beyond its time limit (on
    a 500-node graph: 550 s of a 30 s limit, after presolve); a child process can be
    stopped. HiGHS gets the limit less ``CHILD_START_SECONDS``; a child still running at
    the limit is killed and reports nothing found (status 1).
    """
    limit = options["time_limit"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        A = sp.csr_matrix(constraint.A)
        np.savez(f"{folder}/model.npz", c=c, integrality=integrality, lb=bounds.lb, ub=bounds.ub, data=A.data,
                 indices=A.indices, indptr=A.indptr, shape=np.array(A.shape), rlb=constraint.lb, rub=constraint.ub)
        with open(f"{folder}/options.json", "w") as f:
            json.dump({**options, "time_limit": max(limit - CHILD_START_SECONDS, 0.01)}, f)
        left = limit - (time.perf_counter() - started)
        stopped = SimpleNamespace(status=1, x=None, fun=None, mip_dual_bound=None, message="time limit (stopped)")
        if left <= 0:
            return stopped
        try:
            subprocess.run([sys.executable, "-P", str(_CHILD_SCRIPT), folder], timeout=left, check=True, capture_output=True)
        except subprocess.TimeoutExpired:
            return stopped
        r = np.load(f"{folder}/result.npz")
        bound = float(r["bound"])
        return SimpleNamespace(status=int(r["status"]), x=r["x"] if bool(r["has_x"]) else None,
                               fun=None if np.isnan(r["fun"]) else float(r["fun"]),
                               mip_dual_bound=None if np.isnan(bound) else bound, message=str(r["message"]))


def _milp(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraints: list[LinearConstraint],
          options: dict) -> OptimizeResult | SimpleNamespace:
    """``scipy.optimize.milp``, in a child process when the MILP has ISOLATE_NONZEROS nonzeros or more."""
    if integrality.any() and sum(con.A.nnz for con in constraints) >= ISOLATE_NONZEROS:
        constraint = LinearConstraint(sp.vstack([con.A for con in constraints]).tocsr(),
                                      np.concatenate([con.lb for con in constraints]),
                                      np.concatenate([con.ub for con in constraints]))
        return _milp_in_child(c, integrality, bounds, constraint, options)
    return milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options=options)


def _run(model: _Model, time_limit: float, mip_gap: float | None = None, *, extra: Sequence[LinearConstraint] = (),
         presolve: bool = True, recheck: bool = False) -> OptimizeResult | SimpleNamespace:
    """HiGHS on the model (plus ``extra`` rows) within ``time_limit`` seconds.

    With ``recheck`` an "infeasible" verdict reached with presolve is checked again
    without it, in the time left: HiGHS's MIP presolve is known to declare some feasible
    models infeasible (HiGHS issues 1517, 2388, 3296), and did so on this model before
    the U rows became inequalities (see ``_memory_rows``).
    """
    if time_limit <= 0:
        return SimpleNamespace(status=1, x=None, fun=None, mip_dual_bound=None, message="no time left")
    start = time.perf_counter()
    constraints = [model.constraint, *extra]
    res = _milp(model.c, model.integrality, model.bounds, constraints, _options(time_limit, mip_gap, presolve))
    left = time_limit - (time.perf_counter() - start)
    if res.status == 2 and presolve and recheck and left > 0:
        res = _milp(model.c, model.integrality, model.bounds, constraints, _options(left, mip_gap, presolve=False))
    return res


def _status(res: OptimizeResult | SimpleNamespace) -> str:
    if res.status == 0:
        return "optimal"
    if res.status == 2:
        return "infeasible"
    if res.x is not None:
        return "feasible"
    if res.status == 1:
        return "timeout"
    raise RuntimeError(f"HiGHS ended with status {res.status}: {res.message}")


def _bound(res: OptimizeResult | SimpleNamespace) -> float | None:
    bound = getattr(res, "mip_dual_bound", None)
    return float(bound) if bound is not None and math.isfinite(bound) else None
