"""Benchmarks that ship with graphc: ``graphc bench remat`` sweeps memory against time.

The recompute sweep compiles one training step at many memory budgets, with every
recompute policy, and measures what each plan costs — a pipeline of its own:

    steps.py     what is swept: a builder ("module:function" or "FILE.py:FUNC") that
                 returns a training step, and the built-in steps (zoo graphs, ResNet, GPT-2)
    tasks.py     one point = one task: compile, measure step time against store-all
    cluster.py   where tasks run: in this process (serial) or on dask.distributed
    remat.py     the sweep: store-all and least feasible budgets, then the points
    tables.py    the results as CSV, Markdown and printed text, and the frontier figures
    charts.py    peak memory against extra compute and against measured time

A task carries the builder, never a pickled graph: each worker builds the step
itself, so a sweep runs the same on one machine (a ``LocalCluster``) or many
(``--scheduler ADDRESS``), and its results, times aside, equal a serial run's.
"""

from graphc.bench.remat import SweepOptions, sweep_remat

__all__ = ["SweepOptions", "sweep_remat"]
