"""Big pictures on one screen: the size and the drawing time of the forward, joint and plan views of big models.

For the SGD training step of each model, compiled with ``remat="sqrt"`` and
``bind=False`` (so its plan has recomputed instructions), the script draws the
forward and joint views of the graph and the plan view of the program with
:func:`graphc.render` at its defaults (``max_nodes=150``, 96 dpi), and prints
one row per picture:

- ``nodes``: the boxes of the whole view, one per node (graph views) or per
  instruction and source buffer (plan view), before any shrinking;
- ``boxes``: the boxes drawn (units, bands and single nodes);
- ``units``: how many of them are collapsed units;
- ``render s``: wall-clock seconds of the ``gc.render`` call (scene, units, DOT,
  and graphviz's ``dot`` writing the PNG);
- ``PNG``: width × height of the image in pixels;
- ``layout``: the size graphviz lays the picture out at before the one-screen
  scaling (a picture drawn in units is scaled to at most 2,000 pixels a side).

A view within ``max_nodes`` is drawn node by node, as before units existed (the
RNN's forward view, 129 boxes); when it has more than 100 boxes it is drawn
again with ``max_nodes=100``, in units, on a row of its own.

The models: ResNet-50 (batch 32, 224×224), GPT-2 small (batch 8, context
1,024), the residual MLP of 50 blocks (``zoo.residual_mlp(50)``) and the
20-step unrolled RNN (``zoo.rnn(20)``). ``--quick`` draws the last two only.

    python benchmarks/render_sizes.py [--quick] [--out out/bench/render]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import graphviz

import graphc as gc
import graphc.validate
from graphc import zoo
from graphc.render import DEFAULT_MAX_NODES, drawn_scene, make_scene, scene_to_dot

SMALL_ENOUGH = 100
"""A view drawn node by node with more boxes than this is drawn again with max_nodes=100, in units."""


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


def training_step(case: Case) -> tuple[gc.Graph, gc.Program]:
    """The model's graph (with its gradients and SGD updates) and its step compiled with √n recompute."""
    graph, values = case.build()
    updates = gc.sgd(values["loss"], values["params"], 0.01)
    validating = graphc.validate.VALIDATE_PLANS
    graphc.validate.VALIDATE_PLANS = False  # the plans are drawn, not run; the validator has its own tests
    try:
        return graph, gc.compile([values["loss"]], updates=updates, bind=False, remat="sqrt")
    finally:
        graphc.validate.VALIDATE_PLANS = validating


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk)."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def layout_size(target: Any, view: str, max_nodes: int) -> tuple[int, int]:
    """The picture's size in pixels at 96 dpi as graphviz lays it out, before the one-screen scaling."""
    dot = scene_to_dot(drawn_scene(target, view, max_nodes=max_nodes))
    dot.graph_attr.pop("size", None)
    first = dot.pipe(format="plain").decode().splitlines()[0].split()  # "graph scale width height" in inches
    return round(float(first[2]) * 96), round(float(first[3]) * 96)


def measure(label: str, target: Any, view: str, out: Path, max_nodes: int = DEFAULT_MAX_NODES) -> list[str]:
    """One row: the picture of ``target`` in ``view``, drawn into ``out``."""
    nodes = len(make_scene(target, view).boxes)
    scene = drawn_scene(target, view, max_nodes=max_nodes)
    shown = view if max_nodes == DEFAULT_MAX_NODES else f"{view}, max_nodes={max_nodes}"
    path = out / f"{label.replace(' ', '_')}_{view}{'' if max_nodes == DEFAULT_MAX_NODES else f'_{max_nodes}'}.png"
    start = time.perf_counter()
    gc.render(target, path, view, max_nodes=max_nodes)
    seconds = time.perf_counter() - start
    width, height = png_size(path)
    lw, lh = layout_size(target, view, max_nodes)
    units = sum(1 for box in scene.boxes if box.tally is not None)
    return [label, shown, f"{nodes:,d}", f"{len(scene.boxes)}", f"{units}", f"{seconds:.2f}", f"{width}×{height}",
            f"{lw}×{lh}"]


def print_table(rows: list[list[str]]) -> None:
    head = ["model", "view", "nodes", "boxes", "units", "render s", "PNG", "layout"]
    widths = [max(len(r[k]) for r in [head] + rows) for k in range(len(head))]
    for row in [head, ["-" * w for w in widths]] + rows:
        print("  ".join(cell.ljust(w) if k < 2 else cell.rjust(w) for k, (cell, w) in enumerate(zip(row, widths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the residual MLP and the RNN only")
    parser.add_argument("--out", type=Path, default=Path("out/bench/render"), help="where the PNGs go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for case in CASES:
            if args.quick and case.label not in QUICK:
                continue
            graph, program = training_step(case)
            for target, view in ((graph, "forward"), (graph, "joint"), (program, "plan")):
                rows.append(measure(case.label, target, view, args.out))
                print(" ".join(rows[-1]), file=sys.stderr, flush=True)
                if int(rows[-1][3]) > SMALL_ENOUGH:  # within max_nodes, so drawn node by node: and in units
                    rows.append(measure(case.label, target, view, args.out, max_nodes=SMALL_ENOUGH))
    except graphviz.ExecutableNotFound:
        print("graphviz's `dot` program is not installed: nothing to measure", file=sys.stderr)
        return 1
    print_table(rows)
    print(f"\nimages in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
