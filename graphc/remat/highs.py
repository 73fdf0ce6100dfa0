"""The HiGHS driver: options, the child process that long MILPs run in, and the reading of results.

Past a few hundred thousand nonzeros HiGHS can overrun its time limit, and HiGHS called through
SciPy cannot be interrupted by Ctrl-C; a large model, or one not solved within
``IN_PROCESS_SECONDS``, runs in :mod:`graphc.remat.highs_child`, a separate interpreter that can
be stopped at its time limit or on Ctrl-C.
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
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from graphc.remat.milp import _Model


def _options(time_limit: float, mip_gap: float | None = None, presolve: bool = True) -> dict:
    options = {"time_limit": max(float(time_limit), 0.01), "disp": False, "presolve": presolve}
    if mip_gap is not None:
        options["mip_rel_gap"] = mip_gap
    return options


ISOLATE_NONZEROS = 250_000  # MILPs at least this large run in a child process from the start
IN_PROCESS_SECONDS = 2.0
"""A smaller MILP runs in this process for at most this long; one still unsolved then goes on in the
child process. HiGHS called through SciPy cannot be interrupted: a Ctrl-C waits for the call to
return, so only the first IN_PROCESS_SECONDS of a solve make Ctrl-C wait; a child is stopped at once."""
HEARTBEAT_SECONDS = 3.0
"""While a child process solves, the parent reports the elapsed time this often (``heartbeat``)."""

_CHILD_SCRIPT = Path(__file__).with_name("highs_child.py")
"""The child process's program (:mod:`graphc.remat.highs_child`), run by path with ``-P``."""


CHILD_START_SECONDS = 1.0
"""Below this many seconds left, a MILP is not moved to a child process (the interpreter's start and
SciPy's import take about this long)."""
CHILD_END_SECONDS = 0.5
"""The child's HiGHS ends this long before the parent stops waiting: its overrun and the result's writing."""

Heartbeat = Callable[[float], None]
"""Called with the seconds since a child process's solve began, every ``HEARTBEAT_SECONDS``."""

_STOPPED = SimpleNamespace(status=1, x=None, fun=None, mip_dual_bound=None, message="time limit (stopped)")


def _wait_for_child(child: subprocess.Popen, seconds: float, heartbeat: Heartbeat | None) -> bool:
    """Wait up to ``seconds`` for ``child`` to end, calling ``heartbeat`` every HEARTBEAT_SECONDS;
    False (and the child killed) if it is still running then. A KeyboardInterrupt kills the child
    and propagates: the caller keeps the best schedule it knows."""
    started = time.perf_counter()
    try:
        while True:
            left = seconds - (time.perf_counter() - started)
            if left <= 0:
                child.kill()
                child.wait()
                return False
            try:
                child.wait(timeout=min(left, HEARTBEAT_SECONDS))
                return True
            except subprocess.TimeoutExpired:
                if heartbeat is not None:
                    heartbeat(time.perf_counter() - started)
    except BaseException:
        child.kill()
        child.wait()
        raise


def _milp_in_child(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraint: LinearConstraint,
                   options: dict, heartbeat: Heartbeat | None = None) -> SimpleNamespace:
    """``milp`` in a separate interpreter, killed when ``options["time_limit"]`` seconds have passed
    or on Ctrl-C (the KeyboardInterrupt propagates once the child is gone).

    Past a few hundred thousand nonzeros HiGHS can run well beyond its time limit (on
    a 500-node graph: 550 s of a 30 s limit, after presolve); a child process can be
    stopped. HiGHS, once the child has started, gets the time left before the limit less
    ``CHILD_END_SECONDS``; a child still running at the limit is killed and reports nothing
    found (status 1). The child ignores SIGINT
    (a terminal sends it to the whole process group): the parent decides what Ctrl-C stops.
    """
    limit = options["time_limit"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        A = sp.csr_matrix(constraint.A)
        np.savez(f"{folder}/model.npz", c=c, integrality=integrality, lb=bounds.lb, ub=bounds.ub, data=A.data,
                 indices=A.indices, indptr=A.indptr, shape=np.array(A.shape), rlb=constraint.lb, rub=constraint.ub)
        left = limit - (time.perf_counter() - started)
        if left <= 0:
            return _STOPPED
        with open(f"{folder}/options.json", "w") as f:  # the child's clock starts once SciPy is imported
            json.dump({**options, "time_limit": left,
                       "deadline": time.time() + left - CHILD_END_SECONDS}, f)
        child = subprocess.Popen([sys.executable, "-P", str(_CHILD_SCRIPT), folder],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if not _wait_for_child(child, left, heartbeat):
                return _STOPPED
            if child.returncode != 0:
                raise RuntimeError(f"the HiGHS child process failed (exit status {child.returncode}): "
                                   f"{child.stderr.read().decode(errors='replace').strip()[-500:]}")
        finally:
            child.stderr.close()
        r = np.load(f"{folder}/result.npz")
        bound = float(r["bound"])
        return SimpleNamespace(status=int(r["status"]), x=r["x"] if bool(r["has_x"]) else None,
                               fun=None if np.isnan(r["fun"]) else float(r["fun"]),
                               mip_dual_bound=None if np.isnan(bound) else bound, message=str(r["message"]))


def _better(first: OptimizeResult | SimpleNamespace, second: SimpleNamespace) -> OptimizeResult | SimpleNamespace:
    """Of an in-process slice and the child's run of the same MILP: the child's verdict when it
    proved one, else the cheaper point, with the higher of the two bounds."""
    if second.status in (0, 2):
        return second
    best = second if second.x is not None and (first.x is None or second.fun < first.fun) else first
    bounds = [b for b in (_bound(first), _bound(second)) if b is not None]
    return SimpleNamespace(status=best.status, x=best.x, fun=best.fun, message=best.message,
                           mip_dual_bound=max(bounds) if bounds else None)


def _milp(c: np.ndarray, integrality: np.ndarray, bounds: Bounds, constraints: list[LinearConstraint],
          options: dict, heartbeat: Heartbeat | None = None) -> OptimizeResult | SimpleNamespace:
    """``scipy.optimize.milp`` within ``options["time_limit"]``, stoppable by Ctrl-C after IN_PROCESS_SECONDS.

    A MILP of ISOLATE_NONZEROS nonzeros or more runs in a child process (:func:`_milp_in_child`);
    a smaller one runs here for at most IN_PROCESS_SECONDS and, if unsolved, again in a child
    with the time left (when that exceeds the child's start), keeping the better of the two.
    An LP runs here: HiGHS solves the relaxation in a fraction of the MILP's time.
    """
    limit = options["time_limit"]
    if not integrality.any():
        return milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options=options)
    started = time.perf_counter()
    stacked = lambda: LinearConstraint(sp.vstack([con.A for con in constraints]).tocsr(),  # noqa: E731
                                       np.concatenate([con.lb for con in constraints]),
                                       np.concatenate([con.ub for con in constraints]))
    if sum(con.A.nnz for con in constraints) >= ISOLATE_NONZEROS:
        return _milp_in_child(c, integrality, bounds, stacked(), options, heartbeat)
    here = milp(c, integrality=integrality, bounds=bounds, constraints=constraints,
                options={**options, "time_limit": min(limit, IN_PROCESS_SECONDS)})
    left = limit - (time.perf_counter() - started)
    if here.status != 1 or left <= 2 * CHILD_START_SECONDS:
        return here
    return _better(here, _milp_in_child(c, integrality, bounds, stacked(), {**options, "time_limit": left}, heartbeat))


def _run(model: _Model, time_limit: float, mip_gap: float | None = None, *, extra: Sequence[LinearConstraint] = (),
         presolve: bool = True, recheck: bool = False, heartbeat: Heartbeat | None = None,
         ) -> OptimizeResult | SimpleNamespace:
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
    res = _milp(model.c, model.integrality, model.bounds, constraints, _options(time_limit, mip_gap, presolve),
                heartbeat)
    left = time_limit - (time.perf_counter() - start)
    if res.status == 2 and presolve and recheck and left > 0:
        res = _milp(model.c, model.integrality, model.bounds, constraints, _options(left, mip_gap, presolve=False),
                    heartbeat)
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
