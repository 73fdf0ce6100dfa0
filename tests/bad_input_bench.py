"""Bad input of the recompute sweep (graphc.bench): cases for tests/test_bad_input.py's catalogue.

Each thunk builds sweep options that cannot run; ``SweepOptions`` rejects them
when built, before any step is compiled or any worker started.
"""

from __future__ import annotations

from graphc.bench import SweepOptions

CASES_BENCH = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("bench-unknown-policy", lambda: SweepOptions(policies=("sqrt", "fastest")), r"'fastest' is not a recompute policy.*choose among sqrt"),
    ("bench-no-policy", lambda: SweepOptions(policies=()), r"no policy is not a recompute policy"),
    ("bench-store-all-as-policy", lambda: SweepOptions(policies=("none",)), r"'none' is not a recompute policy.*store-all is always swept"),
    ("bench-one-budget", lambda: SweepOptions(budgets=1), r"budgets=1\).*integer >= 2"),
    ("bench-float-budgets", lambda: SweepOptions(budgets=4.0), r"budgets=4.0\).*integer >= 2"),
    ("bench-too-few-repeats", lambda: SweepOptions(repeats=3), r"repeats=3\).*pairs of runs.*>= 5"),
    ("bench-zero-workers", lambda: SweepOptions(workers=0), r"workers=0\).*local Dask worker processes.*>= 1"),
    ("bench-zero-time-limit", lambda: SweepOptions(time_limit=0), r"time_limit=0\).*above 0"),
    ("bench-text-time-limit", lambda: SweepOptions(time_limit="60"), r"time_limit='60'\).*a number above 0"),
    ("bench-serial-and-scheduler", lambda: SweepOptions(serial=True, scheduler="tcp://h:8786"), r"serial=True, scheduler='tcp://h:8786'\).*drop one"),
]
