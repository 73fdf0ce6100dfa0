"""The recompute sweep: every policy at budgets from the least feasible to store-all.

For each step (a builder, :mod:`graphc.bench.steps`) the sweep first learns
the top and bottom of its range — the arena with nothing recomputed, and the
least budget each policy can meet — then compiles every (policy, budget) point
and times it against store-all (:func:`graphc.bench.tasks.point_task`). Both
phases are tasks on a :mod:`graphc.bench.cluster` runner; each finished task
prints one progress line. Results come back in a fixed order, so a sweep on
Dask and a serial one give the same table but for the measured times.

    from graphc.bench import SweepOptions, sweep_remat
    rows = sweep_remat({"mine": "step.py:train_step"}, SweepOptions(budgets=4, serial=True))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from dataclasses import dataclass
from typing import Any, TextIO

from graphc.bench.cluster import Call, Runner, task_runner
from graphc.bench.steps import absolute_builder
from graphc.bench.tasks import MIN_REPEATS, least_budget_task, point_task, store_all_task
from graphc.errors import GraphError

DEFAULT_POLICIES = ("sqrt", "revolve", "optimal")


@dataclass(frozen=True)
class SweepOptions:
    """How to sweep: which policies, how many budgets, where the tasks run.

    ``budgets`` budgets are spread evenly from the least any policy meets to
    store-all's arena; ``repeats`` alternations time each point (at least 5);
    ``time_limit`` bounds each compile's solver (seconds).
    """

    policies: tuple[str, ...] = DEFAULT_POLICIES
    budgets: int = 6
    repeats: int = 7
    time_limit: float = 30.0
    serial: bool = False
    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        """Reject a sweep that cannot run, before any worker starts."""
        from graphc.compile import REMAT_POLICIES

        known = [p for p in REMAT_POLICIES if p != "none"]
        unknown = [p for p in self.policies if p not in known]
        if unknown or not self.policies:
            raise GraphError(f"SweepOptions(policies={self.policies!r}): {', '.join(map(repr, unknown)) or 'no policy'} "
                             f"is not a recompute policy to sweep; choose among {', '.join(known)} "
                             "(store-all is always swept)")
        _check_count("budgets", self.budgets, 2, "how many budgets to sweep, from the least feasible to store-all")
        _check_count("repeats", self.repeats, MIN_REPEATS, "how many pairs of runs (plan, store-all) time a point")
        if self.workers is not None:
            _check_count("workers", self.workers, 1, "how many local Dask worker processes run the points")
        if isinstance(self.time_limit, bool) or not isinstance(self.time_limit, (int, float)) \
                or not self.time_limit > 0:
            raise GraphError(f"SweepOptions(time_limit={self.time_limit!r}): the seconds each compile's solver may "
                             "take must be a number above 0")
        if self.serial and self.scheduler is not None:
            raise GraphError(f"SweepOptions(serial=True, scheduler={self.scheduler!r}): a sweep runs either in this "
                             "process or on a cluster; drop one of the two")


def _check_count(name: str, value: object, least: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise GraphError(f"SweepOptions({name}={value!r}): {name} is {meaning}; give an integer >= {least}")


def budget_grid(least: int, store_all: int, count: int) -> list[int]:
    """``count`` budgets (fewer where they coincide) evenly from ``least`` to ``store_all`` bytes."""
    if count < 2 or store_all <= least:
        return [max(least, store_all)]
    return sorted({int(least + (store_all - least) * k / (count - 1)) for k in range(count)})


def sweep_remat(graphs: Mapping[str, str], options: SweepOptions = SweepOptions(),
                progress: bool | TextIO = True) -> list[dict[str, Any]]:
    """Sweep each named step of ``graphs`` (name → builder); one row per point.

    A row is :func:`~graphc.bench.tasks.point_task`'s dict with ``graph``,
    ``store_all_bytes`` and the policy's ``least_bytes`` added; per graph, first
    store-all itself (policy ``"none"``), then each policy's points by budget.
    Progress goes to stderr, or to the stream ``progress`` names (False: none).
    """
    progress = _stream(progress, sys.stderr)
    builders = {name: absolute_builder(builder) for name, builder in graphs.items()}
    start = time.perf_counter()
    with task_runner(options.serial, options.scheduler, options.workers) as runner:
        _say(progress, f"sweeping {len(builders)} step{'s' if len(builders) != 1 else ''} {runner.where}")
        ranges = _ranges(runner, builders, options, progress)
        points = [(name, policy, budget) for name in builders for policy, budget in _points(ranges[name], options)]
        calls: list[Call] = [(point_task, (builders[name], policy, budget, options.repeats, options.time_limit))
                             for name, policy, budget in points]
        rows: list[dict[str, Any] | None] = [None] * len(points)
        for done, (index, result) in enumerate(runner.run(calls), 1):
            name = points[index][0]
            row = {"graph": name, "store_all_bytes": ranges[name]["store_all_bytes"],
                   "least_bytes": ranges[name]["least"].get(result["policy"]), **result}
            rows[index] = row
            _say(progress, f"[{done:>{len(str(len(points)))}}/{len(points)}] {describe_point(row)}")
    _say(progress, f"swept {len(points)} points in {time.perf_counter() - start:.1f} s")
    return [row for row in rows if row is not None]


def _ranges(runner: Runner, builders: Mapping[str, str], options: SweepOptions,
            progress: TextIO | None) -> dict[str, dict[str, Any]]:
    """Per step: store-all's arena and forward FLOPs, and each policy's least budget."""
    jobs = [(name, None) for name in builders] + [(name, p) for name in builders for p in options.policies]
    calls: list[Call] = [(store_all_task, (builders[name],)) if policy is None
                         else (least_budget_task, (builders[name], policy, options.time_limit))
                         for name, policy in jobs]
    ranges: dict[str, dict[str, Any]] = {name: {"least": {}} for name in builders}
    for index, result in runner.run(calls):
        name, policy = jobs[index]
        if policy is None:
            ranges[name].update(result)
            _say(progress, f"{name}: store-all arena {_mb(result['store_all_bytes'])}")
        else:
            ranges[name]["least"][policy] = result["least_bytes"]
            _say(progress, f"{name}: least budget of {policy} {_mb(result['least_bytes'])} "
                           f"(found in {result['seconds']:.1f} s)")
    return ranges


def _points(graph_range: dict[str, Any], options: SweepOptions) -> list[tuple[str, int | None]]:
    least: dict[str, int] = graph_range["least"]
    top = graph_range["store_all_bytes"]
    grid = budget_grid(min(least.values(), default=top), top, options.budgets)
    return [("none", None)] + [(p, b) for p in options.policies for b in grid if b >= least[p]]


def describe_point(row: Mapping[str, Any]) -> str:
    """One progress line: where the point is and what it gave."""
    budget = "" if row["budget_bytes"] is None else f" at budget {_mb(row['budget_bytes'])}"
    head = f"{row['graph']} {'store-all' if row['policy'] == 'none' else row['policy']}{budget}"
    if row["planned_bytes"] is None:
        return f"{head}: {row['status']}"
    compute = 100 * row["recompute_flops"] / row["forward_flops"] if row["forward_flops"] else 0.0
    overhead = 100 * (row["time_ratio"] - 1)
    return (f"{head}: arena {_mb(row['planned_bytes'])}, +{compute:.1f} % compute, {overhead:+.1f} % step time, "
            f"{row['status']}, compiled in {row['compile_seconds']:.1f} s")


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.4g} MB"


def _stream(choice: bool | TextIO, default: TextIO) -> TextIO | None:
    """True: ``default`` (looked up now, so a redirected sys.stderr is honoured); False: None."""
    if choice is True:
        return default
    return None if choice is False else choice


def _say(stream: TextIO | None, line: str) -> None:
    if stream is not None:
        print(line, file=stream, flush=True)


def write_results(rows: list[dict[str, Any]], out_dir: Path, stem: str, stream: bool | TextIO = True,
                  frontier_graph: str | None = None, decorate: Callable[[dict], None] | None = None) -> list[Path]:
    """Print the table and each step's memory reduction at ≤ 12 % measured time; write
    ``STEM.csv``, ``STEM.md`` and ``STEM_frontier.png`` into ``out_dir``; return their paths.

    ``frontier_graph`` (the ResNet step of the built-in sweep) is named as the frontier
    target, beside MONeT's published figure. ``decorate(panels)`` may draw on the chart's
    panels ({step: (compute axes, time axes)}) before it is saved.
    """
    from graphc.bench import charts, tables

    stream = _stream(stream, sys.stdout)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"  {tables.frontier_target(rows, graph)}" for graph in dict.fromkeys(r["graph"] for r in rows)]
    if frontier_graph is not None:
        lines.append(f"frontier target: {tables.frontier_target(rows, frontier_graph)}; "
                     "MONeT reports 3x for ResNet-50 at +12 %")
    csv_path = tables.write_csv(rows, out_dir / f"{stem}.csv")
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(tables.markdown(rows) + "\n\n" + "\n".join(line.strip() for line in lines) + "\n")
    figure, panels = charts.frontier_figure(rows)
    if decorate is not None:
        decorate(panels)
    png_path = charts.save_figure(figure, out_dir / f"{stem}_frontier.png")
    paths = [csv_path, md_path, png_path]
    if stream is not None:
        print(tables.text(rows), file=stream)
        print("\nmemory reduction (store-all arena / planned arena) at the least memory within "
              f"{tables.TIME_OVERHEAD_TARGET:g} % measured step-time overhead:", file=stream)
        print("\n".join(lines), file=stream)
        print("\nwritten: " + ", ".join(str(p) for p in paths), file=stream, flush=True)
    return paths


def built_in_steps(quick: bool) -> dict[str, str]:
    """The built-in sweep's steps (name → builder): two small zoo graphs if ``quick``, else the
    zoo graphs, a ResNet-50 and a GPT-2 stack (:mod:`graphc.bench.steps`)."""
    from graphc.bench.steps import BUILT_IN, FULL, QUICK

    return {name: BUILT_IN[name] for name in (QUICK if quick else FULL)}
