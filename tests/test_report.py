"""The HTML report (graphc.report): its parts, that it needs nothing from outside, and, in a real
headless browser, that it loads without errors and that the wheel and a drag zoom and pan its pictures."""

from __future__ import annotations

import html
import importlib.util
import re
import sys
import time
from pathlib import Path

import graphviz
import pytest

import graphc as gc
from graphc import report, zoo

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def seed_outputs() -> list[gc.Value]:
    g, v = zoo.seed_dag()
    return [v["loss"], *gc.grad(v["loss"], [v["w1"], v["w2"]])]


@pytest.fixture(scope="module")
def seed_page(tmp_path_factory) -> tuple[Path, gc.Program]:
    """The report of the lecture's DAG, compiled with √n recompute: the page and its program."""
    outputs = seed_outputs()
    program = gc.compile(outputs, remat="sqrt", bind=False)
    path = report.write_report(outputs, tmp_path_factory.mktemp("report") / "seed.html", program=program,
                               label="model.py:seed")
    return path, program


def svg_elements(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, re.DOTALL)


# --- the page --------------------------------------------------------------------------------------


def test_the_page_holds_pictures_plots_and_every_report(seed_page):
    path, program = seed_page
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "model.py:seed" in text
    zoomable = re.findall(r'<div class="zoom">.*?</svg>', text, re.DOTALL)
    assert len(zoomable) == 3  # the forward, joint and plan views
    assert "Jᵀ x3|w1" in zoomable[1]  # the joint view labels the J^T terms
    assert len(svg_elements(text)) == 3 + 3  # and the timeline, the live bytes by kind, the arena layout
    for part in (str(program.plan), str(program.memory), str(program.remat), f"cost: {program.cost}"):
        assert html.escape(part) in text
    for anchor in ("forward-view", "joint-view", "plan-view", "timeline", "by-kind", "arena", "memory",
                   "recompute", "listing"):
        assert f'<section id="{anchor}">' in text and f'href="#{anchor}"' in text


def test_the_page_needs_nothing_from_outside(seed_page):
    text = seed_page[0].read_text(encoding="utf-8")
    assert not re.search(r"""\bsrc\s*=\s*["'](?!data:)|<link\b|@import|url\(\s*['"]?(?!#)""", text)
    assert not re.search(r"""href\s*=\s*["'](?!#)""", text)  # only links to the page's own parts
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "two elements share an id"
    for ref in re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', text):
        assert (ref[0] or ref[1]) in ids


def test_inline_svg_prefixes_ids_and_references():
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<!-- made by hand -->\n<svg viewBox="0 0 10 10">'
           '<style>*{stroke: red}</style><defs><clipPath id="c1"/></defs>'
           '<g id="a" clip-path="url(#c1)"><use xlink:href="#a"/><a href="#a"/></g></svg>')
    out = report.inline_svg(svg.encode(), "p0-")
    assert out == ('<svg viewBox="0 0 10 10"><defs><clipPath id="p0-c1"/></defs>'
                   '<g id="p0-a" clip-path="url(#p0-c1)"><use xlink:href="#p0-a"/><a href="#p0-a"/></g></svg>')
    with pytest.raises(gc.GraphError, match="no <svg>"):
        report.inline_svg("<html></html>", "p0-")


def test_a_training_step_without_recompute_and_a_program_alone(tmp_path):
    g, v = zoo.mlp(8, sizes=(6, 7, 3))
    updates = gc.sgd(v["loss"], v["params"], 0.1)
    text = report.report_html([v["loss"]], updates)
    assert "update" in text and "No recompute policy" in text
    program = gc.compile(v["loss"], bind=False)
    alone = report.write_report(program, tmp_path / "program.html").read_text(encoding="utf-8")
    assert 'id="plan-view"' in alone and 'id="forward-view"' not in alone
    with pytest.raises(gc.GraphError, match="compile options"):
        report.report_html([v["loss"]], program=program, remat="sqrt")
    program.save(tmp_path / "step.gcp")
    with pytest.raises(gc.GraphError, match="no memory plan"):  # a loaded program keeps no memory report
        report.report_html(gc.load(tmp_path / "step.gcp", bind=False))


def test_a_plot_of_too_much_svg_goes_in_as_a_png(monkeypatch):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    assert report._figure_html(figure, "p0-", "a line").startswith("<svg")
    monkeypatch.setattr(report, "SVG_LIMIT", 0)
    assert report._figure_html(figure, "p0-", "a line").startswith('<img alt="a line" src="data:image/png;base64,iVBORw0KGgo')


def test_missing_tools_leave_notes(monkeypatch):
    def no_dot(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", no_dot)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    text = report.report_html(seed_outputs())
    assert html.escape(report.NO_DOT) in text and html.escape(report.NO_MATPLOTLIB) in text
    assert not svg_elements(text) and "Plan listing" in text


# --- in a headless browser ------------------------------------------------------------------------


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (it is in graphc[test]: pip install playwright)"
    if not CHROMIUM.exists():
        return f"Debian's chromium is not at {CHROMIUM} (`make chromium`, or apt-get install chromium, as root)"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module, driven by Playwright."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def view_box(locator) -> list[float]:
    return [float(x) for x in locator.get_attribute("viewBox").split()]


def test_in_a_browser_the_page_loads_offline_and_wheel_and_drag_move_the_picture(browser, seed_page, tmp_path):
    start = time.perf_counter()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems, requests = [], []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(seed_page[0].resolve().as_uri())
    page.wait_for_load_state("load")
    assert problems == []
    assert all(url.startswith("file://") for url in requests), requests  # the page alone, nothing fetched
    assert page.locator(".zoom svg").count() == 3 and page.locator(".plot svg").count() == 3

    svg = page.locator("#joint-view .zoom svg")
    svg.scroll_into_view_if_needed()
    home = view_box(svg)
    frame = svg.bounding_box()
    x, y = frame["x"] + frame["width"] * 0.5, frame["y"] + frame["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.wheel(0, -400)  # zoom in, around the pointer
    page.wait_for_function("([e, w]) => document.querySelector(e).getAttribute('viewBox').split(' ')[2] < w",
                           arg=["#joint-view .zoom svg", home[2]])
    zoomed = view_box(svg)
    assert zoomed[2] < home[2] and zoomed[3] < home[3]
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=5)  # drag: the picture follows the pointer, the view moves back
    page.mouse.up()
    dragged = view_box(svg)
    assert dragged[0] < zoomed[0] and dragged[1] < zoomed[1] and dragged[2:] == zoomed[2:]
    page.screenshot(path=tmp_path / "report.png")  # docs/make_images.py takes docs/images/report.png the same way
    assert (tmp_path / "report.png").read_bytes()[:8] == PNG_MAGIC
    svg.dblclick()
    assert view_box(svg) == home
    page.locator("#joint-view button[data-zoom=in]").click()
    assert view_box(svg)[2] == pytest.approx(home[2] / report.ZOOM_STEP, rel=1e-3)
    page.close()
    assert time.perf_counter() - start < 20
