"""Big pictures on one screen: every view and plot of four models' training steps, with its time and size.

For the SGD training step of each model the script compiles two plans with
``bind=False``: ``remat="sqrt"``, and ``remat="optimal"`` with ``time_limit=30``
and a budget half way between the least feasible one and the store-all arena
(the least feasible budget is the one the GraphError of budget 0 names: the
policy's own least for the small models, for the big ones the floor no
schedule goes below). Then it draws, at the defaults (``max_nodes=150``, 96 dpi),

- the graph's ``forward``, ``adjoint`` and ``joint`` views (the same whatever
  the policy: the ``policy`` column says ``-``);
- for each plan, its ``plan`` view and the program's ``forward``, ``adjoint``
  and ``joint`` views (forward and recomputed instructions, backward ones, all
  of them in clusters);
- for each plan, the plots of :mod:`graphc.plots`: ``plot_memory_timeline``
  (with the budget), ``plot_memory_by_kind`` by kind and by scope (the RNN and
  the residual MLP have no scopes of their own: two bands, "(top level)" and the
  SGD updates' "optim") and ``plot_arena_layout``;
- for each plan, the ``graphc report`` page (:func:`graphc.report.write_report`).

One row per picture:

- ``nodes``: the boxes of the whole view, one per node (graph views) or per
  instruction and source buffer (plan views), before any shrinking;
- ``boxes``: the boxes drawn (units, bands and single nodes);
- ``units``: how many of them are collapsed units;
- ``seconds``: wall-clock seconds of the ``gc.render`` call (scene, units, DOT,
  and graphviz's ``dot`` writing the PNG), of the plot function writing its
  PNG, or of ``write_report``;
- ``size``: width × height of the PNG in pixels; the report's size in KiB.

Measured on a shared 2-core machine (load about 3.5, graphviz 2.43, matplotlib 3.11,
``python benchmarks/render_sizes.py``); compile times, not in the table: √n 0.1–2 s, "optimal"
15–30 s a model. Every picture is within 2,000 pixels a side; every view is drawn in under a
second, every plot in 1.5 s, every report page in 5.5 s. Before these rows were measured, the RNN's forward view (129 boxes, drawn node by node) was
4289×6658 pixels in 8 to 80 seconds, the adjoint views of the plans of GPT-2 and the residual
MLP one row of boxes (1997×556 and 1997×208 pixels), the plots of GPT-2's plan took 1.8 to 22
seconds each and its report page 22 to 60 (on the same machine, as loaded).

    model            policy   picture          nodes  boxes  units  seconds       size
    ---------------  -------  ---------------  -----  -----  -----  -------  ---------
    ResNet-50        -        forward view       870     37     17     0.38   953×1997
    ResNet-50        -        adjoint view     1,672     27     19     0.44  1478×1997
    ResNet-50        -        joint view       2,273     28     19     0.37   677×1997
    ResNet-50        sqrt     plan view        2,479     27     19     0.48  1137×1997
    ResNet-50        sqrt     forward view       492     36     16     0.28  1182×1997
    ResNet-50        sqrt     adjoint view     1,349     34     14     0.42  1520×1907
    ResNet-50        sqrt     joint view       2,479     27     19     0.46  1137×1997
    ResNet-50        sqrt     memory timeline                          1.47   1080×552
    ResNet-50        sqrt     memory by kind                           0.45   1080×552
    ResNet-50        sqrt     memory by scope                          0.53   1080×552
    ResNet-50        sqrt     arena layout                             0.78   1080×504
    ResNet-50        sqrt     report page                              4.55    928 KiB
    ResNet-50        optimal  plan view        2,417     27     19     0.39  1194×1997
    ResNet-50        optimal  forward view       430     35     16     0.32  1141×1997
    ResNet-50        optimal  adjoint view     1,349     34     14     0.47  1532×1907
    ResNet-50        optimal  joint view       2,417     27     19     0.49  1194×1997
    ResNet-50        optimal  memory timeline                          0.37   1080×552
    ResNet-50        optimal  memory by kind                           0.51   1080×552
    ResNet-50        optimal  memory by scope                          0.60   1080×552
    ResNet-50        optimal  arena layout                             0.93   1080×504
    ResNet-50        optimal  report page                              4.56    919 KiB
    GPT-2 small      -        forward view       517     24     12     0.25   889×1997
    GPT-2 small      -        adjoint view     1,726     23     14     0.50  1531×1882
    GPT-2 small      -        joint view       1,957     24     14     0.78  1495×1997
    GPT-2 small      sqrt     plan view        2,428     25     14     0.60  1997×1709
    GPT-2 small      sqrt     forward view       858     26     12     0.29  1133×1918
    GPT-2 small      sqrt     adjoint view     1,485     18     13     0.34   933×1775
    GPT-2 small      sqrt     joint view       2,428     25     14     0.59  1997×1709
    GPT-2 small      sqrt     memory timeline                          0.39   1080×552
    GPT-2 small      sqrt     memory by kind                           0.53   1080×552
    GPT-2 small      sqrt     memory by scope                          0.52   1080×552
    GPT-2 small      sqrt     arena layout                             0.57   1080×504
    GPT-2 small      sqrt     report page                              4.58    867 KiB
    GPT-2 small      optimal  plan view        2,246     25     14     0.47  1969×1853
    GPT-2 small      optimal  forward view       760     26     12     0.33  1118×1918
    GPT-2 small      optimal  adjoint view     1,409     18     13     0.21   933×1775
    GPT-2 small      optimal  joint view       2,246     25     14     0.68  1969×1853
    GPT-2 small      optimal  memory timeline                          0.43   1080×552
    GPT-2 small      optimal  memory by kind                           0.53   1080×552
    GPT-2 small      optimal  memory by scope                          0.60   1080×552
    GPT-2 small      optimal  arena layout                             0.56   1080×504
    GPT-2 small      optimal  report page                              5.14    866 KiB
    residual MLP 50  -        forward view       307     20      1     0.24   958×1360
    residual MLP 50  -        adjoint view       715     18      4     0.27    933×973
    residual MLP 50  -        joint view         817     21      4     0.21   994×1260
    residual MLP 50  sqrt     plan view        1,099     21      4     0.36  1667×1167
    residual MLP 50  sqrt     forward view       484     24      1     0.18  1102×1209
    residual MLP 50  sqrt     adjoint view       563     35     22     0.33  1511×1997
    residual MLP 50  sqrt     joint view       1,099     21      4     0.32  1667×1167
    residual MLP 50  sqrt     memory timeline                          0.48   1080×552
    residual MLP 50  sqrt     memory by kind                           0.60   1080×552
    residual MLP 50  sqrt     memory by scope                          0.58   1080×552
    residual MLP 50  sqrt     arena layout                             0.69   1080×504
    residual MLP 50  sqrt     report page                              2.34    557 KiB
    residual MLP 50  optimal  plan view        1,018     21      4     0.19  1669×1167
    residual MLP 50  optimal  forward view       403     21      1     0.15  1077×1235
    residual MLP 50  optimal  adjoint view       563     36      4     0.16   1997×714
    residual MLP 50  optimal  joint view       1,018     21      4     0.24  1669×1167
    residual MLP 50  optimal  memory timeline                          0.43   1080×552
    residual MLP 50  optimal  memory by kind                           0.60   1080×552
    residual MLP 50  optimal  memory by scope                          0.75   1080×552
    residual MLP 50  optimal  arena layout                             0.38   1080×504
    residual MLP 50  optimal  report page                              2.35    538 KiB
    RNN 20 steps     -        forward view       129     24     20     0.30   657×1997
    RNN 20 steps     -        adjoint view       279     24      3     0.50  1510×1395
    RNN 20 steps     -        joint view         363     25      3     0.39  1448×1173
    RNN 20 steps     sqrt     plan view          495     29      3     0.26   1997×782
    RNN 20 steps     sqrt     forward view       221     25     20     0.20   707×1997
    RNN 20 steps     sqrt     adjoint view       308    132      6     0.55  1997×1034
    RNN 20 steps     sqrt     joint view         495     29      3     0.29   1997×782
    RNN 20 steps     sqrt     memory timeline                          0.53   1080×552
    RNN 20 steps     sqrt     memory by kind                           0.73   1080×552
    RNN 20 steps     sqrt     memory by scope                          0.65   1080×552
    RNN 20 steps     sqrt     arena layout                             0.60   1080×504
    RNN 20 steps     sqrt     report page                              3.44    496 KiB
    RNN 20 steps     optimal  plan view          452     32     21     0.53  1681×1997
    RNN 20 steps     optimal  forward view       178     24     20     0.26   700×1997
    RNN 20 steps     optimal  adjoint view       308    113      6     0.44   1997×982
    RNN 20 steps     optimal  joint view         452     32     21     0.45  1681×1997
    RNN 20 steps     optimal  memory timeline                          0.51   1080×552
    RNN 20 steps     optimal  memory by kind                           0.82   1080×552
    RNN 20 steps     optimal  memory by scope                          0.56   1080×552
    RNN 20 steps     optimal  arena layout                             0.45   1080×504
    RNN 20 steps     optimal  report page                              3.08    540 KiB

The models: ResNet-50 (batch 32, 224×224), GPT-2 small (batch 8, context
1,024), the residual MLP of 50 blocks (``zoo.residual_mlp(50)``) and the
20-step unrolled RNN (``zoo.rnn(20)``). ``--quick`` draws the last two only,
and gives "optimal" 10 s.

    python benchmarks/render_sizes.py [--quick] [--out out/bench/render]
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import graphviz

import graphc as gc
import graphc.validate
from graphc import plots, zoo
from graphc.render import DEFAULT_MAX_NODES, drawn_scene, make_scene
from graphc.report import write_report

TIME_LIMIT = 30.0
"""Seconds the "optimal" policy may search for each model (``--quick``: 10)."""


@dataclass(frozen=True)
class Case:
    label: str
    build: Callable[[], tuple[gc.Graph, dict[str, Any]]]


CASES = [
    Case("ResNet-50", lambda: zoo.resnet50(batch=32)),
    Case("GPT-2 small", lambda: zoo.gpt2(batch=8)),
    Case("residual MLP 50", lambda: zoo.residual_mlp(50)),
    Case("RNN 20 steps", lambda: zoo.rnn(20)),
]
QUICK = ("residual MLP 50", "RNN 20 steps")

_LEAST = re.compile(r"least feasible budget (?:for it is|is at least) ([\d,]+) B")


def _compile(outputs: list[gc.Value], updates: Any, **options: Any) -> gc.Program:
    validating = graphc.validate.VALIDATE_PLANS
    graphc.validate.VALIDATE_PLANS = False  # the plans are drawn, not run; the validator has its own tests
    try:
        return gc.compile(outputs, updates=updates, bind=False, **options)
    finally:
        graphc.validate.VALIDATE_PLANS = validating


def half_way_budget(outputs: list[gc.Value], updates: Any, store_all: int, time_limit: float) -> int:
    """Half way between the least feasible budget (as budget 0's GraphError names it) and ``store_all``."""
    try:
        _compile(outputs, updates, remat="optimal", memory_budget=0, time_limit=time_limit)
    except gc.GraphError as err:
        found = _LEAST.search(str(err))
        if found is None:
            raise
        return (int(found.group(1).replace(",", "")) + store_all) // 2
    raise AssertionError("a budget of 0 bytes was met")


def training_step(case: Case, time_limit: float) -> tuple[gc.Graph, list[gc.Value], Any, dict[str, gc.Program]]:
    """The model's graph (with its gradients and SGD updates), its outputs and updates, and its plans by policy."""
    graph, values = case.build()
    outputs = [values["loss"]]
    updates = gc.sgd(values["loss"], values["params"], 0.01)
    store_all = _compile(outputs, updates).memory.planned_bytes
    budget = half_way_budget(outputs, updates, store_all, time_limit)
    programs = {
        "sqrt": _compile(outputs, updates, remat="sqrt"),
        "optimal": _compile(outputs, updates, remat="optimal", memory_budget=budget, time_limit=time_limit),
    }
    return graph, outputs, updates, programs


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk)."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _file(out: Path, *parts: str) -> Path:
    return out / ("_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p) for p in parts))


def picture(label: str, policy: str, target: Any, view: str, out: Path) -> list[str]:
    """One row: ``target`` in ``view`` drawn by gc.render at its defaults."""
    nodes = len(make_scene(target, view).boxes)
    scene = drawn_scene(target, view)
    path = _file(out, label, policy, view).with_suffix(".png")
    start = time.perf_counter()
    gc.render(target, path, view)
    seconds = time.perf_counter() - start
    width, height = png_size(path)
    units = sum(1 for box in scene.boxes if box.tally is not None)
    return [label, policy, f"{view} view", f"{nodes:,d}", f"{len(scene.boxes)}", f"{units}", f"{seconds:.2f}",
            f"{width}×{height}"]


PLOTS: dict[str, Callable[[gc.Program, Path], Any]] = {
    "memory timeline": lambda p, path: plots.plot_memory_timeline(p, path, budget=p.remat.budget),
    "memory by kind": lambda p, path: plots.plot_memory_by_kind(p, path),
    "memory by scope": lambda p, path: plots.plot_memory_by_kind(p, path, by="scope"),
    "arena layout": lambda p, path: plots.plot_arena_layout(p, path),
}


def plot(label: str, policy: str, program: gc.Program, name: str, out: Path) -> list[str]:
    """One row: the plot ``name`` of ``program`` saved as a PNG."""
    path = _file(out, label, policy, name).with_suffix(".png")
    start = time.perf_counter()
    PLOTS[name](program, path)
    seconds = time.perf_counter() - start
    width, height = png_size(path)
    return [label, policy, name, "", "", "", f"{seconds:.2f}", f"{width}×{height}"]


def report(label: str, policy: str, outputs: list[gc.Value], updates: Any, program: gc.Program, out: Path) -> list[str]:
    """One row: the ``graphc report`` page of ``program``."""
    path = _file(out, label, policy, "report").with_suffix(".html")
    start = time.perf_counter()
    write_report(outputs, path, updates, program=program, label=f"{label}, remat={policy}")
    seconds = time.perf_counter() - start
    return [label, policy, "report page", "", "", "", f"{seconds:.2f}", f"{path.stat().st_size / 1024:,.0f} KiB"]


HEAD = ["model", "policy", "picture", "nodes", "boxes", "units", "seconds", "size"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[k]) for r in [HEAD] + rows) for k in range(len(HEAD))]
    return "\n".join("  ".join(cell.ljust(w) if k < 3 else cell.rjust(w) for k, (cell, w) in enumerate(zip(row, widths)))
                     .rstrip() for row in [HEAD, ["-" * w for w in widths]] + rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the residual MLP and the RNN only, 'optimal' given 10 s")
    parser.add_argument("--out", type=Path, default=Path("out/bench/render"), help="where the images go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    time_limit = 10.0 if args.quick else TIME_LIMIT
    rows: list[list[str]] = []

    def add(row: list[str]) -> None:
        rows.append(row)
        print("  ".join(row), file=sys.stderr, flush=True)

    try:
        for case in CASES:
            if args.quick and case.label not in QUICK:
                continue
            graph, outputs, updates, programs = training_step(case, time_limit)
            for view in ("forward", "adjoint", "joint"):
                add(picture(case.label, "-", graph, view, args.out))
            for policy, program in programs.items():
                for view in ("plan", "forward", "adjoint", "joint"):
                    add(picture(case.label, policy, program, view, args.out))
                for name in PLOTS:
                    add(plot(case.label, policy, program, name, args.out))
                add(report(case.label, policy, outputs, updates, program, args.out))
    except graphviz.ExecutableNotFound:
        print("graphviz's `dot` program is not installed: nothing to measure", file=sys.stderr)
        return 1
    print(table(rows))
    print(f"\nimages in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
