"""Draw the pictures of README.md's "See it" section into docs/images/.

    python docs/make_images.py              # every picture (or: make images)
    python docs/make_images.py report.png   # only the ones named

Needs graphviz's ``dot``, matplotlib and, for ``report.png`` (a screenshot of the
page ``graphc report`` writes), Playwright with Debian's chromium at
/usr/bin/chromium, as tests/test_report.py uses them. Each PNG is stored with a
palette of at most 256 colours (Pillow, which matplotlib installs), to keep it
well under 200 KB.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import graphc as gc
from graphc import demo, report, zoo
from graphc.compile import REMAT_POLICIES

IMAGES = Path(__file__).resolve().parent / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIMIT = 200_000  # bytes of one picture


def save_png(data: bytes, name: str) -> Path:
    """``data`` (a PNG) as docs/images/NAME with a palette of 256 colours."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    path = IMAGES / name
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    size = path.stat().st_size
    print(f"{path.relative_to(IMAGES.parent.parent)}: {image.width}×{image.height}, {size:,d} B")
    if size > LIMIT:
        print(f"  larger than {LIMIT:,d} B", file=sys.stderr)
    return path


def png_of_dot(target, view=None, dpi: int = 80) -> bytes:
    dot = gc.to_dot(target, view)
    dot.graph_attr["dpi"] = str(dpi)
    return dot.pipe(format="png")


def png_of_figure(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def seed():
    g, v = zoo.seed_dag()
    outputs = [v["loss"], *gc.grad(v["loss"], [v["w1"], v["w2"]])]
    return g, outputs


def digits_step() -> gc.Program:
    """The demo's training step: the MLP 64-128-10 at batch 32, with SGD compiled in."""
    _, v = zoo.mlp(demo.BATCH, demo.SIZES, activation=demo.ACTIVATION)
    return gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], demo.LR), bind=False)


def seed_joint() -> None:
    g, _ = seed()
    save_png(png_of_dot(g, "joint"), "seed_joint.png")


def chain_joint() -> None:
    g, v = zoo.chain(100, width=32, batch=512)
    zoo.training_outputs(v)
    save_png(png_of_dot(g, "joint"), "chain_joint.png")


def memory_plots() -> None:
    step = digits_step()
    save_png(png_of_figure(gc.plot_memory_timeline(step)), "memory_timeline.png")
    save_png(png_of_figure(gc.plot_memory_by_kind(step)), "memory_by_kind.png")


def step_plan() -> None:
    _, v = zoo.mlp(8, sizes=(6, 7, 3))
    step = gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1), bind=False)
    save_png(png_of_dot(step, "plan"), "step_plan.png")


def frontier() -> None:
    """Notebook 03's frontier: a chain of 100 layers, each policy with no budget and at 30 % of store-all."""
    _, chain = zoo.chain(100, width=32, batch=512)
    outputs = zoo.training_outputs(chain)
    top = gc.compile(outputs, bind=False).memory.planned_bytes
    rows = []
    for policy in [p for p in ("none", "sqrt", "revolve") if p in REMAT_POLICIES]:
        for budget in (None, int(top * 0.3)):
            try:
                prog = gc.compile(outputs, remat=policy, memory_budget=budget, bind=False)
            except gc.GraphError:
                continue
            rows.append({"policy": policy, "budget": budget, "planned_bytes": prog.memory.planned_bytes,
                         "recompute_flops": prog.cost.recompute_flops, "forward_flops": prog.cost.forward_flops})
    save_png(png_of_figure(gc.plot_frontier(rows, title="chain of 100 layers: memory vs recompute")), "frontier.png")


def report_screenshot() -> None:
    """The top of the page ``graphc report`` writes for the demo's training step, its forward picture zoomed in."""
    from playwright.sync_api import sync_playwright

    _, v = zoo.mlp(demo.BATCH, demo.SIZES, activation=demo.ACTIVATION)
    updates = gc.sgd(v["loss"], v["params"], demo.LR)
    with tempfile.TemporaryDirectory() as folder:
        page_path = report.write_report([v["loss"]], Path(folder) / "step_report.html", updates,
                                        label="step.py:train_step")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(page_path.resolve().as_uri())
            frame = page.locator("#forward-view .zoom svg").bounding_box()
            page.mouse.move(frame["x"] + frame["width"] * 0.5, frame["y"] + frame["height"] * 0.3)
            page.mouse.wheel(0, -250)
            data = page.screenshot()
            browser.close()
    save_png(data, "report.png")


PICTURES = {
    "seed_joint.png": seed_joint,
    "chain_joint.png": chain_joint,
    "memory_timeline.png": memory_plots,
    "memory_by_kind.png": memory_plots,
    "step_plan.png": step_plan,
    "frontier.png": frontier,
    "report.png": report_screenshot,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in PICTURES]
    if unknown:
        print(f"unknown pictures {', '.join(unknown)}; choose among {', '.join(PICTURES)}", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    for make in dict.fromkeys(PICTURES[n] for n in (names or PICTURES)):
        make()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
