"""Bad budgets and time limits given to the recompute stage, for the bad-input catalogue."""

from __future__ import annotations

import graphc as gc
from graphc import passes, remat, zoo


def _chain_outputs() -> list[gc.Value]:
    _, values = zoo.chain(3, width=8, batch=16)
    return zoo.training_outputs(values)


def _compile_chain(policy: str, budget: object, time_limit: float = 2.0) -> gc.Program:
    return gc.compile(_chain_outputs(), remat=policy, memory_budget=budget, time_limit=time_limit)


def _rematerialize_chain(policy: str, budget: object, time_limit: object = 2.0):
    flow = passes.optimize([v.node for v in _chain_outputs()])
    return remat.rematerialize(flow, policy, budget, lambda f: 1, time_limit)


CASES_REMAT = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("remat-budget-zero", lambda: _compile_chain("sqrt", 0), r"memory_budget=0 B .*least feasible budget .* [\d,]+ B"),
    ("remat-budget-below-floor", lambda: _compile_chain("revolve", 1000), r"least feasible budget for it is [\d,]+ B"),
    ("remat-budget-below-floor-optimal", lambda: _compile_chain("optimal", 1000), r"least feasible budget .*[\d,]+ B"),
    ("remat-budget-negative", lambda: _rematerialize_chain("sqrt", -1), r"memory_budget=-1 B .*least feasible budget"),
    ("remat-budget-float", lambda: _rematerialize_chain("sqrt", 2.5), r"memory_budget=2\.5 .*whole number of bytes"),
    ("remat-budget-bool", lambda: _rematerialize_chain("revolve", True), r"memory_budget=True .*whole number"),
    ("remat-budget-str", lambda: _rematerialize_chain("optimal", "100"), r"memory_budget='100' .*whole number"),
    ("remat-time-limit-zero", lambda: _compile_chain("optimal", None, time_limit=0), r"time_limit"),
    ("remat-time-limit-nan", lambda: _rematerialize_chain("sqrt", 10**6, float("nan")), r"time_limit=nan"),
]
