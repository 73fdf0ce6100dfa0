"""The published architectures at their published sizes, planned without allocating (``bind=False``).

For VGG-16, ResNet-18, ResNet-50, the U-Net and GPT-2 small (:mod:`graphc.models`),
the script builds the model, adds its store-all SGD training step (the loss
returned, ``W ← W − η ∂ℓ/∂W`` compiled into the backward pass, no recompute)
and compiles it with ``bind=False``, then prints one row per model:

- ``params``: trained parameters, against the published figure;
- ``MACs/ex``: forward multiply-adds per example (an image, or a sequence of
  GPT-2), from graphc's cost model: FLOPs/2 of the forward conv2d and matmul
  instructions, against the published figure (for GPT-2, the figure its layer
  sizes give: 12·D² per token per layer, V·D for the tied output projection and
  2·T·D per token per layer for the causal attention's two products);
- ``nodes fwd`` / ``nodes step``: nodes of the forward graph, and of the graph
  once the training step's gradients and updates are added; ``instr``: the plan's instructions;
- ``compile``: wall-clock seconds of ``gc.compile`` (with the gradients and
  updates built before it; the building is ``build``);
- ``arena``, ``LB``, ``planned/LB``: the planned arena of the training step,
  the lower bound (the most bytes live at any step of its schedule) and their ratio;
- ``total``: arena + params + batch-norm state + inputs + outputs: all the
  memory a run of the step holds; for ResNet-50 at batch 184 it is compared
  with the store-all peak MONeT (Shah et al., ICLR 2021) reports for PyTorch, 15.06 GB.

The table is saved as ``out/bench/models.md`` and ``out/bench/models.json``.

    python benchmarks/models.py [--quick] [--out out/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

import graphc as gc
from graphc import models
from graphc.ops import lookup

MONET_RESNET50_STORE_ALL_BYTES = 15.06e9
"""MONeT (Shah et al. 2021), Table 1: PyTorch's peak memory of a ResNet-50 training step at batch 184."""


def gpt2_small_macs_per_sequence(layers: int = 12, width: int = 768, context: int = 1024, vocab: int = 50257) -> int:
    """Forward multiply-adds of one sequence, from the layer sizes.

    Per token and layer: the four dense layers 3D² + D² + 4D² + 4D² = 12D², and
    the attention's q·kᵀ and weights·v, T·D each (every position against all T,
    the mask zeroing the future); per token once: the output projection V·D.
    """
    per_token = layers * (12 * width * width + 2 * context * width) + vocab * width
    return per_token * context


@dataclass(frozen=True)
class Case:
    """One model at one batch, and the figures it is measured against."""

    label: str
    build: Callable[[], tuple[gc.Graph, dict[str, Any]]]
    examples: int
    published_params: int | None
    published_macs: float | None
    macs_source: str
    compare_monet: bool = False


CASES = [
    Case("VGG-16", lambda: models.vgg16(batch=32), 32, 138_357_544, 15.5e9, "Simonyan & Zisserman; torchvision 15.47 G"),
    Case("ResNet-18", lambda: models.resnet18(batch=32), 32, 11_689_512, 1.8e9, "He et al. 2016 (1.8 G FLOPs = MACs)"),
    Case("ResNet-50", lambda: models.resnet50(batch=32), 32, 25_557_032, 4.1e9, "He et al. 2016 (3.8 G), torchvision 4.09 G"),
    Case("ResNet-50", lambda: models.resnet50(batch=184), 184, 25_557_032, 4.1e9, "as above", compare_monet=True),
    Case("U-Net", lambda: models.unet2d(batch=32), 32, None, None, "(no published figure at 224×224×3)"),
    Case("GPT-2 small", lambda: models.gpt2(batch=8), 8, 124_439_808, gpt2_small_macs_per_sequence(),
         "layer sizes (docstring)"),
]
QUICK = ("VGG-16", "ResNet-18", "GPT-2 small")


@dataclass
class Row:
    model: str
    batch: int
    params: int
    published_params: int | None
    macs_per_example: float
    published_macs: float | None
    macs_source: str
    nodes_forward: int
    nodes_step: int
    instructions: int
    build_s: float
    compile_s: float
    arena_bytes: int
    lower_bound_bytes: int
    total_bytes: int
    monet_bytes: float | None


FORWARD_MAC_OPS = ("conv2d", "matmul")


def forward_macs(plan: gc.Plan) -> int:
    """Multiply-adds of the forward conv2d and matmul instructions: their FLOPs (2 per multiply-add) halved."""
    total = 0
    for ins in plan.instructions:
        if ins.tag == "forward" and ins.op in FORWARD_MAC_OPS:
            in_avals = [plan.buffers[a].aval for a in ins.args]
            total += int(lookup(ins.op).flops(in_avals, plan.buffers[ins.out].aval, **ins.attrs))
    return total // 2


def measure(case: Case) -> Row:
    """Build, differentiate and plan one case without binding; its row of the table."""
    start = time.perf_counter()
    graph, values = case.build()
    nodes_forward = len(graph.nodes)
    loss = values["loss"]
    updates = gc.sgd(loss, values["params"], 0.01)
    built = time.perf_counter()
    prog = gc.compile([loss], updates=updates, bind=False)
    compiled = time.perf_counter()
    memory = prog.memory
    total = memory.planned_bytes + memory.params_bytes + memory.state_bytes + memory.inputs_bytes + memory.outputs_bytes
    return Row(
        model=case.label, batch=case.examples,
        params=models.parameter_count(values["params"]), published_params=case.published_params,
        macs_per_example=forward_macs(prog.plan) / case.examples, published_macs=case.published_macs,
        macs_source=case.macs_source,
        nodes_forward=nodes_forward, nodes_step=len(graph.nodes), instructions=len(prog.plan.instructions),
        build_s=built - start, compile_s=compiled - built,
        arena_bytes=memory.planned_bytes, lower_bound_bytes=memory.lower_bound_bytes, total_bytes=total,
        monet_bytes=MONET_RESNET50_STORE_ALL_BYTES if case.compare_monet else None,
    )


# --- the table ------------------------------------------------------------------------------------------------

def _millions(n: float | None) -> str:
    return "—" if n is None else f"{n / 1e6:,.3f} M"


def _giga(n: float | None) -> str:
    return "—" if n is None else f"{n / 1e9:,.2f} G"


def _gb(n: float | None) -> str:
    return "—" if n is None else f"{n / 1e9:,.2f} GB"


HEADER = ("model", "batch", "params", "published", "MACs/ex", "published", "nodes fwd", "nodes step", "instr",
          "build s", "compile s", "arena", "LB", "planned/LB", "total", "MONeT store-all")


def cells(row: Row) -> list[str]:
    return [
        row.model, str(row.batch), f"{row.params:,d}",
        "—" if row.published_params is None else f"{row.published_params:,d}",
        _giga(row.macs_per_example), _giga(row.published_macs),
        f"{row.nodes_forward:,d}", f"{row.nodes_step:,d}", f"{row.instructions:,d}",
        f"{row.build_s:.2f}", f"{row.compile_s:.2f}",
        _gb(row.arena_bytes), _gb(row.lower_bound_bytes), f"{row.arena_bytes / row.lower_bound_bytes:.3f}",
        _gb(row.total_bytes), _gb(row.monet_bytes),
    ]


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    notes = [f"- {r.model}: MACs against {r.macs_source}" for r in rows if r.macs_source != "as above"]
    return "\n".join(lines + ["", *notes]) + "\n"


def text_table(rows: Sequence[Row]) -> str:
    table = [list(HEADER)] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="folder of models.md and models.json")
    args = parser.parse_args(argv)
    rows = []
    cases = [case for case in CASES if not args.quick or case.label in QUICK]
    with tqdm(cases, desc="models", file=sys.stderr, disable=None, leave=False) as bar:  # a terminal only
        for case in bar:
            bar.set_postfix_str(f"{case.label}, batch {case.examples}")
            rows.append(measure(case))
    print(text_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.md").write_text(markdown(rows))
    (args.out / "models.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    print(f"saved {args.out / 'models.md'} and {args.out / 'models.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
