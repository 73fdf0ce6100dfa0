"""One self-contained HTML page for a graph and its plan: ``graphc report`` and :func:`write_report`.

The page holds, in one file that needs nothing else (no network, no other file):

- the pictures of :mod:`graphc.render` — the forward view, the joint view
  (forward, adjoint and updates) and the plan view — as inline SVG that the
  wheel zooms (around the pointer) and a drag pans, by changing the SVG's
  ``viewBox`` in a few lines of inline JavaScript; a double click, or the
  ``reset`` button, shows the whole picture again;
- the plots of :mod:`graphc.plots` — the memory timeline, the live bytes by
  kind (and by scope, when the plan has scopes) and the arena layout — as
  inline SVG (a plot that would take more than :data:`SVG_LIMIT` characters of
  SVG, on a plan of thousands of steps, as a PNG in a ``data:`` URL);
- the plan listing (``str(program.plan)``), the memory report
  (``str(program.memory)``), the FLOP count (``program.cost``) and, when a
  recompute policy was asked for, what it chose (``program.remat``).

A picture that needs a missing tool (graphviz's ``dot`` program, matplotlib) is
replaced by a note saying which, and the rest of the page is written.

Example
-------
>>> import graphc as gc
>>> from graphc import report, zoo
>>> g, v = zoo.mlp(32)
>>> step = gc.sgd(v["loss"], v["params"], 0.1)
>>> report.write_report([v["loss"]], "mlp_report.html", updates=step)        # doctest: +SKIP
PosixPath('mlp_report.html')

From the command line, the same page for ``FILE.py:FUNC`` (see :mod:`graphc.cli`)::

    graphc report step.py:train_step -o report.html --remat sqrt
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphc.compile import Program
from graphc.compile import compile as compile_values
from graphc.errors import GraphError
from graphc.ir import TOP_LEVEL, Value
from graphc.render import DEFAULT_MAX_NODES, to_dot

GRAPH_VIEWS = ("forward", "joint")
"""The views of the graph the page draws, before the plan view."""

ZOOM_STEP = 1.25
"""How much one press of the ``+`` or ``−`` button zooms."""

SVG_LIMIT = 200_000
"""A plot whose SVG has more characters than this goes into the page as a PNG instead, at ``PNG_DPI``."""
PNG_DPI = 110


@dataclass
class Section:
    """One part of the page: an anchor, a heading and its HTML."""

    anchor: str
    title: str
    body: str


# --- SVG for inline use ------------------------------------------------------------------------

_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)  # the XML declaration, DOCTYPE and comments before <svg
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_STYLE = re.compile(r"<style[^>]*>.*?</style>\s*", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'\b((?:xlink:)?href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_VIEWBOX = re.compile(r'<svg\b[^>]*?\bviewBox="([^"]+)"')


def inline_svg(svg: str | bytes, prefix: str) -> str:
    """An SVG file's text as an element to put in an HTML page.

    Drops what comes before ``<svg`` (the XML declaration, the DOCTYPE), the
    comments, the metadata and any ``<style>`` element (in a page, an SVG's style sheet would
    style every picture), and prefixes every ``id`` and every reference to one
    (``href="#…"``, ``url(#…)``) with ``prefix``, so two pictures of one page
    never share an id.
    """
    text = svg.decode("utf-8") if isinstance(svg, bytes) else svg
    text = _PROLOGUE.sub("", text, count=1)
    if not text.startswith("<svg"):
        raise GraphError("inline_svg: no <svg> element in the text given")
    text = _STYLE.sub("", _METADATA.sub("", _COMMENT.sub("", text)))
    text = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', text)
    return _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", text).strip()


def _natural_height(svg: str) -> float | None:
    """The height of the picture in CSS pixels, from its viewBox (graphviz's units are points)."""
    found = _VIEWBOX.search(svg)
    if not found:
        return None
    numbers = [float(x) for x in re.split(r"[\s,]+", found.group(1).strip())]
    return numbers[3] * 4 / 3 if len(numbers) == 4 else None


def _zoomable(svg: str, label: str) -> str:
    """A picture in a frame that wheel-zooms and drag-pans it (see :data:`SCRIPT`)."""
    height = _natural_height(svg)
    style = f' style="height: min(75vh, {max(height, 160):.0f}px)"' if height else ""
    return (
        '<div class="zoom">'
        '<div class="tools"><button type="button" data-zoom="in" title="zoom in">+</button>'
        '<button type="button" data-zoom="out" title="zoom out">&minus;</button>'
        '<button type="button" data-zoom="reset" title="the whole picture">reset</button>'
        '<span>wheel: zoom &middot; drag: pan &middot; double click: reset</span></div>'
        f'<div class="frame" role="img" aria-label="{html.escape(label)}"{style}>{svg}</div></div>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


# --- the parts of the page -----------------------------------------------------------------------


def _dot_svg(target: Any, view: str, max_nodes: int | None) -> str | None:
    """``target`` in ``view`` as SVG text, or None when graphviz's ``dot`` program is missing."""
    import graphviz

    try:
        return to_dot(target, view, max_nodes=max_nodes).pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        return None


NO_DOT = ("graphviz's `dot` program is not installed, so the pictures are left out: "
          "`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`")
NO_MATPLOTLIB = "matplotlib is not installed, so the plots are left out: pip install 'graphc[plots]'"


def _picture_sections(values: Sequence[Value] | None, program: Program, max_nodes: int | None) -> list[Section]:
    """The forward and joint views of ``values`` (none without them) and the plan view of ``program``."""
    targets = [(view, values) for view in GRAPH_VIEWS] if values else []
    targets.append(("plan", program))
    sections = []
    for k, (view, target) in enumerate(targets):
        svg = _dot_svg(target, view, max_nodes)
        if svg is None:
            return [Section("pictures", "Pictures", _note(NO_DOT))]
        title = {"forward": "Forward graph", "joint": "Forward and adjoint graph", "plan": "Plan"}[view]
        sections.append(Section(f"{view}-view", title, _zoomable(inline_svg(svg, f"g{k}-"), f"the {view} view")))
    return sections


def _figure_html(figure: Any, prefix: str, label: str) -> str:
    """A matplotlib figure as inline SVG, or, when that SVG is larger than :data:`SVG_LIMIT`, as a PNG
    in a ``data:`` URL (a plan of thousands of steps draws thousands of shapes: megabytes of SVG)."""
    import base64
    import io

    text = io.StringIO()
    figure.savefig(text, format="svg", metadata={"Date": None})
    if len(text.getvalue()) <= SVG_LIMIT:
        return inline_svg(text.getvalue(), prefix)
    data = io.BytesIO()
    figure.savefig(data, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return f'<img alt="{html.escape(label)}" src="data:image/png;base64,{base64.b64encode(data.getvalue()).decode()}">'


def _plot_sections(program: Program) -> list[Section]:
    """The memory plots of :mod:`graphc.plots`, as inline SVG (text kept as text: smaller, and selectable)."""
    try:
        import matplotlib
    except ImportError:
        return [Section("plots", "Memory plots", _note(NO_MATPLOTLIB))]
    from graphc import plots

    budget = program.remat.budget if program.remat is not None else None
    scoped = {ins.scope.split("/", 1)[0] or TOP_LEVEL for ins in program.plan.instructions}
    figures = [
        ("timeline", "Memory timeline", lambda: plots.plot_memory_timeline(program, budget=budget)),
        ("by-kind", "Live bytes by kind", lambda: plots.plot_memory_by_kind(program)),
    ]
    if len(scoped) > 1:
        figures.append(("by-scope", "Live bytes by scope", lambda: plots.plot_memory_by_kind(program, by="scope")))
    figures.append(("arena", "Arena layout", lambda: plots.plot_arena_layout(program)))
    sections = []
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "graphc"}):
        for k, (anchor, title, draw) in enumerate(figures):
            figure = _figure_html(draw(), f"p{k}-", title.lower())
            sections.append(Section(anchor, title, f'<div class="plot">{figure}</div>'))
    return sections


def _text_sections(program: Program) -> list[Section]:
    """The plan listing, the memory report with the cost, and the recompute report."""
    remat = program.remat
    if remat is not None and remat.policy != "none":
        recompute = _pre(str(remat))
    else:
        recompute = "<p>No recompute policy (remat='none'): every forward value the backward pass reads is kept.</p>"
    return [
        Section("memory", "Memory report", _pre(f"{program.memory}\n\ncost: {program.cost}")),
        Section("recompute", "Recompute", recompute),
        Section("listing", "Plan listing", _pre(str(program.plan))),
    ]


def _summary(program: Program, label: str | None) -> str:
    """The lines under the page's title: what was compiled, with its arena and FLOPs."""
    from graphc.plots import format_bytes

    memory, plan, remat = program.memory, program.plan, program.remat
    policy = remat.policy if remat is not None else "none"
    budget = f", budget {remat.budget:,d} B" if remat is not None and remat.budget is not None else ""
    planned = f"{memory.planned_bytes:,d} B"
    if format_bytes(memory.planned_bytes) != planned:
        planned += f" ({format_bytes(memory.planned_bytes)})"
    facts = [("compiled", label)] if label else []
    facts += [
        ("plan", f"{plan.name!r}: {len(plan.instructions):,d} instructions"),
        ("arena (planned)", f"{planned}, lower bound {memory.lower_bound_bytes:,d} B, "
                            f"without reuse {memory.no_reuse_bytes:,d} B"),
        ("placement", memory.strategy),
        ("recompute", f"{policy}{budget}"),
        ("cost", str(program.cost)),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


# --- the page ------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1b1b1b;
       margin: 0; background: #fafafa; }
header { padding: 18px 28px 8px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 0 0 10px; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid #ddd; position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 14px; color: #1f4e8c; text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
main { padding: 8px 28px 40px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 14px 16px; margin: 16px 0; }
table.facts { border-collapse: collapse; font-size: 14px; }
table.facts th { text-align: left; font-weight: 600; padding: 1px 14px 1px 0; color: #444; vertical-align: top; }
pre { font: 12.5px/1.35 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; overflow: auto;
      max-height: 70vh; background: #f6f6f4; padding: 10px; border-radius: 4px; margin: 0; }
.note { color: #7a4b00; background: #fff6e0; padding: 6px 10px; border-radius: 4px; }
.zoom .tools { font-size: 13px; color: #666; margin-bottom: 6px; }
.zoom .tools button { font: inherit; min-width: 2.2em; margin-right: 4px; cursor: pointer; }
.zoom .tools span { margin-left: 8px; }
.zoom .frame { border: 1px solid #e2e2e2; border-radius: 4px; overflow: hidden; background: #fff; }
.zoom svg { display: block; width: 100%; height: 100%; cursor: grab; touch-action: none; user-select: none; }
.zoom svg.dragging { cursor: grabbing; }
.plot svg, .plot img { display: block; max-width: 100%; height: auto; }
.plot svg * { stroke-linejoin: round; stroke-linecap: butt; }
"""

SCRIPT = """
(function () {
  "use strict";
  function box(svg) { return svg.getAttribute("viewBox").trim().split(/[\\s,]+/).map(Number); }
  function show(svg, b) { svg.setAttribute("viewBox", b.map(function (v) { return +v.toFixed(3); }).join(" ")); }
  function at(svg, x, y) {  // a point of the page in the picture's coordinates
    var p = svg.createSVGPoint(); p.x = x; p.y = y;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  function zoom(svg, factor, x, y) {  // factor < 1 zooms in; the point under (x, y) stays put
    var b = box(svg), p = at(svg, x, y);
    show(svg, [p.x - (p.x - b[0]) * factor, p.y - (p.y - b[1]) * factor, b[2] * factor, b[3] * factor]);
  }
  function centre(svg) { var r = svg.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }
  document.querySelectorAll(".zoom").forEach(function (figure) {
    var svg = figure.querySelector("svg");
    if (!svg || !svg.getAttribute("viewBox")) { return; }
    var home = svg.getAttribute("viewBox"), drag = null;
    svg.removeAttribute("width"); svg.removeAttribute("height");
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var pixels = e.deltaY * (e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1);
      zoom(svg, Math.exp(Math.max(-400, Math.min(400, pixels)) * 0.002), e.clientX, e.clientY);
    }, { passive: false });
    svg.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) { return; }
      drag = { x: e.clientX, y: e.clientY, box: box(svg), scale: svg.getScreenCTM().a };
      svg.setPointerCapture(e.pointerId);
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointermove", function (e) {
      if (!drag) { return; }
      var dx = (e.clientX - drag.x) / drag.scale, dy = (e.clientY - drag.y) / drag.scale;
      show(svg, [drag.box[0] - dx, drag.box[1] - dy, drag.box[2], drag.box[3]]);
    });
    function stop() { drag = null; svg.classList.remove("dragging"); }
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
    svg.addEventListener("dblclick", function () { svg.setAttribute("viewBox", home); });
    figure.querySelectorAll("button[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () {
        var what = button.getAttribute("data-zoom"), c = centre(svg);
        if (what === "reset") { svg.setAttribute("viewBox", home); }
        else { zoom(svg, what === "in" ? 1 / ZOOM_STEP : ZOOM_STEP, c[0], c[1]); }
      });
    });
  });
})();
""".replace("ZOOM_STEP", repr(ZOOM_STEP))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphc")
    except PackageNotFoundError:  # a source tree that is not installed
        return "(not installed)"


def _page(title: str, summary: str, sections: Sequence[Section]) -> str:
    links = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1>\n{summary}</header>\n"
        f"<nav>{links}</nav>\n<main>\n{body}\n</main>\n"
        f'<footer style="padding: 0 28px 20px; color: #888; font-size: 12px">graphc {html.escape(_version())}</footer>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def drawn_values(outputs: Value | Sequence[Value], updates: Any) -> list[Value]:
    """The outputs and the new values of the updates: what a picture of their graph draws."""
    values = [outputs] if isinstance(outputs, Value) else list(outputs)
    pairs = updates.items() if isinstance(updates, Mapping) else (updates or ())
    return values + [new for _, new in pairs]


def report_html(
    outputs: Value | Sequence[Value] | Program,
    updates: Mapping[Value, Value] | Sequence[tuple[Value, Value]] | None = None,
    *,
    program: Program | None = None,
    title: str | None = None,
    label: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    **compile_options: Any,
) -> str:
    """The report of ``outputs`` (and ``updates``) as the text of one HTML page; see :func:`write_report`."""
    if isinstance(outputs, Program):
        if program is not None or updates is not None or compile_options:
            raise GraphError("report: given a Program, pass no updates, program= or compile options (it is compiled)")
        values, program = None, outputs
    else:
        values = drawn_values(outputs, updates)
        if program is None:
            program = compile_values(outputs, updates=updates, bind=False, **compile_options)
        elif compile_options:
            raise GraphError("report: pass either program= or compile options, not both")
    plan = program.plan  # a batch of None sizes says here to specialise first
    if program.memory is None:
        raise GraphError(f"report: program {plan.name!r} has no memory plan (a loaded program keeps none); "
                         "pass the Values it was compiled from, or a Program of gc.compile")
    title = title or f"graphc report — {label or f'plan {plan.name!r}'}"
    sections = [*_picture_sections(values, program, max_nodes), *_plot_sections(program), *_text_sections(program)]
    return _page(title, _summary(program, label), sections)


def write_report(
    outputs: Value | Sequence[Value] | Program,
    path: str | Path,
    updates: Mapping[Value, Value] | Sequence[tuple[Value, Value]] | None = None,
    *,
    program: Program | None = None,
    title: str | None = None,
    label: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    **compile_options: Any,
) -> Path:
    """Write one self-contained HTML page about ``outputs`` to ``path``; return the path.

    ``outputs`` and ``updates`` are as for :func:`graphc.compile`; they are
    compiled with ``bind=False`` (planned, nothing allocated) and
    ``compile_options`` (``remat=``, ``memory_budget=``, ``memory=``, ...), unless
    ``program`` is their program already. ``outputs`` may also be a
    :class:`~graphc.Program` alone: the page then has the plan view but no
    pictures of the graph. ``label`` names what was compiled (the command passes
    ``FILE.py:FUNC``), ``title`` the page; ``max_nodes`` is
    :func:`graphc.to_dot`'s (bigger pictures collapse repeated blocks).

    The page shows the forward, joint and plan views (zoom with the wheel, pan
    by dragging), the memory plots, the memory report and FLOP count, what the
    recompute policy chose, and the plan listing. It loads nothing from
    anywhere: it works offline and can be mailed as one file.
    """
    text = report_html(outputs, updates, program=program, title=title, label=label, max_nodes=max_nodes,
                       **compile_options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
