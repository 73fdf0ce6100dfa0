"""One MILP solved by HiGHS in a separate interpreter, so that the parent can stop it at its time limit.

Run as ``python -P highs_child.py FOLDER`` (by path, so that neither graphc nor its package
is imported: the start costs the interpreter and SciPy only; HiGHS gets what is left of the
parent's limit once they are loaded, the wall-clock ``deadline`` in the options).
FOLDER holds ``model.npz`` and ``options.json`` written by :func:`graphc.remat.highs._milp_in_child`;
the result is written to ``FOLDER/result.npz``. The child ignores SIGINT: a terminal's Ctrl-C
reaches the whole process group, and the parent, which keeps the best schedule so far, stops it.
"""

import json
import signal
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp


def solve_folder(folder: str) -> None:
    """Read the model and options from ``folder``, solve, and write ``result.npz`` beside them."""
    d = np.load(folder + "/model.npz")
    A = sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))
    with open(folder + "/options.json") as f:
        options = json.load(f)
    deadline = options.pop("deadline", None)  # wall-clock seconds: what is left after this start
    if deadline is not None:
        options["time_limit"] = max(min(options["time_limit"], deadline - time.time()), 0.01)
    res = milp(d["c"], integrality=d["integrality"], bounds=Bounds(d["lb"], d["ub"]),
               constraints=[LinearConstraint(A, d["rlb"], d["rub"])], options=options)
    bound = getattr(res, "mip_dual_bound", None)
    np.savez(folder + "/result.npz", status=res.status, message=res.message, has_x=res.x is not None,
             x=res.x if res.x is not None else np.zeros(0), fun=np.nan if res.fun is None else res.fun,
             bound=np.nan if bound is None else bound)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    solve_folder(sys.argv[1])
