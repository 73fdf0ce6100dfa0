"""The ``graphc`` command line.

    graphc demo                               the lecture's DAG, then an MLP on digits
    graphc plan FILE.py:FUNC                  compile FUNC's outputs; print the plan and memory report
    graphc render FILE.py:FUNC -o out.png     draw the graph (or plan) FUNC's outputs need
    graphc report FILE.py:FUNC -o report.html one HTML page: pictures, plots, plan, memory, recompute
    graphc export FILE.py:FUNC --graphml OUT  write that graph (or plan) for other tools: GraphML, ...
    graphc export FILE.py:FUNC -o step.py     the compiled program as a module that runs with NumPy alone
    graphc bench remat [FILE.py:FUNC]         sweep memory budgets; table and charts of memory vs time
    graphc bench memory|speed|all             run benchmarks/<name>.py

``FILE.py:FUNC`` names a function in a Python file. graphc imports the file,
calls ``FUNC()`` with no arguments and uses what it returns:

- a :class:`~graphc.Value` or a list of Values: the outputs to compile;
- a pair ``(outputs, updates)``: outputs as above, and updates as for
  ``gc.compile(updates=...)`` — a dict ``{param: new value}`` (e.g.
  ``gc.sgd(loss, params, lr)``) or a list of ``(param, new value)`` pairs.

For example, ``step.py``::

    import graphc as gc
    from graphc import zoo

    def train_step():
        g, v = zoo.mlp(32)
        return [v["loss"]], gc.sgd(v["loss"], v["params"], 0.1)

and ``graphc plan step.py:train_step --json step.json``.

Each subcommand is added by one small ``_add_<name>`` function that sets its handler,
``handler(args) -> int``. Handlers import the library lazily, so ``graphc --help``
stays fast. A bad path, function, return value or option exits with status 2
and one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

Handler = Callable[[argparse.Namespace], int]
Subparsers = argparse._SubParsersAction  # the object returned by add_subparsers()

ROOT = Path(__file__).resolve().parent.parent  # the source tree (benchmarks/ lives here)
BENCHMARKS = ("memory", "remat", "speed", "all")

FUNC_HELP = """\
FUNC is called with no arguments and returns the outputs to compile: a Value, a list of
Values, or a pair (outputs, updates) where updates is a dict {param: new value} such as
gc.sgd(loss, params, lr), or a list of (param, new value) pairs."""


class UsageError(Exception):
    """A mistake on the command line or in FILE.py:FUNC: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``graphc plan: error: ... (see graphc plan --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


# --- progress ---------------------------------------------------------------------------


class Progress:
    """``with Progress("rendering"):`` — on a terminal, tqdm's line with the elapsed time.

    Writes to stderr, so stdout stays clean for listings and JSON; off a terminal
    tqdm draws nothing. The work has no count of steps, so the line is the
    description and the time (tqdm with ``total=None``), redrawn by a thread
    while the work runs. Work that takes a second or more ends with one line
    saying so; work that fails leaves nothing behind (the error says what happened).
    """

    SHOW_AFTER = 0.5  # seconds before the line appears
    REPORT_AFTER = 1.0  # seconds of work worth a closing line

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _redraw(self, bar: Any) -> None:
        if self._stop.wait(self.SHOW_AFTER):
            return
        while True:
            bar.update(0)  # redraws, as tqdm's own update does, and notes that the line was drawn
            if self._stop.wait(0.2):
                break

    def __enter__(self) -> "Progress":
        from tqdm import tqdm

        self.start = time.perf_counter()
        tty = self.stream.isatty()
        self._bar = tqdm(total=None, desc=self.what, file=self.stream, disable=not tty, leave=False,
                         delay=self.SHOW_AFTER, bar_format="{desc} {elapsed}")
        if tty:
            self._thread = threading.Thread(target=self._redraw, args=(self._bar,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.close()  # leave=False: the line is cleared
        seconds = time.perf_counter() - self.start
        if exc_type is None and seconds >= self.REPORT_AFTER:
            print(f"{self.what}: done in {seconds:.1f} s", file=self.stream, flush=True)
        self.stream.flush()


# --- FILE.py:FUNC ------------------------------------------------------------------------


def _where(exc: BaseException, path: Path) -> str:
    """`` (file.py, line 12)`` for the innermost frame of ``exc`` inside ``path``, if any."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" ({path.name}, line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f" ({path.name}, line {frames[-1].lineno})" if frames else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_function(spec: str) -> tuple[Callable[[], Any], str]:
    """Import ``FILE.py`` of ``FILE.py:FUNC`` and return ``FUNC`` and a label for messages."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise UsageError(f"{spec!r} is not FILE.py:FUNC (a Python file, a colon, a function name)")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"no such file: {path_text}")
    module_name = f"_graphc_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"cannot import {path_text}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report it in one line
        raise UsageError(f"importing {path_text} failed{_where(exc, path)}: {_one_line(exc)}") from None
    finally:
        sys.path.pop(0)
    func = getattr(module, name, None)
    if func is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == module_name)
        hint = f"; functions defined there: {', '.join(found)}" if found else ""
        raise UsageError(f"{path_text} has no function {name!r}{hint}")
    if not callable(func):
        raise UsageError(f"{spec} is not a function but a value of type {type(func).__name__}")
    return func, spec


def _is_update_list(items: Any) -> bool:
    from graphc.ir import Value

    return isinstance(items, (list, tuple)) and all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, Value) for x in p) for p in items
    )


def split_result(result: Any, label: str) -> tuple[list[Any], Any]:
    """``(outputs, updates)`` from what FUNC returned (see :data:`FUNC_HELP`), else UsageError."""
    from graphc.ir import Value

    def values(items: Any) -> list[Value] | None:
        if isinstance(items, Value):
            return [items]
        if isinstance(items, (list, tuple)) and items and all(isinstance(v, Value) for v in items):
            return list(items)
        return None

    if isinstance(result, tuple) and len(result) == 2 and (isinstance(result[1], Mapping) or _is_update_list(result[1])):
        outputs = values(result[0])
        if outputs is not None:
            return outputs, result[1]
    outputs = values(result)
    if outputs is not None:
        return outputs, None
    kind = type(result).__name__
    raise UsageError(
        f"{label} returned a value of type {kind}; it must return a Value, a list of Values, or (outputs, updates) "
        "with updates a dict {param: new value}"
    )


def call_function(spec: str) -> tuple[list[Any], Any]:
    """Load FILE.py:FUNC, call it, and split what it returns into outputs and updates."""
    func, label = load_function(spec)
    path = Path(spec.rpartition(":")[0])
    try:
        result = func()
    except Exception as exc:  # the user's code (a GraphError names the node): one line
        raise UsageError(f"{label} raised{_where(exc, path)} {_one_line(exc)}") from None
    return split_result(result, label)


# --- subcommands -------------------------------------------------------------------------


def _run_demo(args: argparse.Namespace) -> int:
    from graphc import demo

    return int(demo.main())


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo",
        description="Run the end-to-end demo (graphc.demo): the lecture's DAG (plan, memory, the two terms of "
        "∂ℓ/∂w1), then an MLP trained on the shipped digits. Writes text and images to out/demo/.",
    )
    p.set_defaults(handler=_run_demo, command_name="demo")


def _check_compile_options(args: argparse.Namespace) -> None:
    """Reject an unknown --memory, --remat or --solver, or a bad --time-limit, before any work is done."""
    from graphc.errors import GraphError
    from graphc.memory import MEMORY_MODES
    from graphc.remat import REMAT_SOLVERS, check_time_limit

    remat_policies = importlib.import_module("graphc.compile").REMAT_POLICIES
    if args.memory not in MEMORY_MODES:
        raise UsageError(f"--memory {args.memory!r} is not a placement mode; choose one of {', '.join(MEMORY_MODES)}")
    if args.remat not in remat_policies:
        raise UsageError(f"--remat {args.remat!r} is not a recompute policy; choose one of {', '.join(remat_policies)}")
    if args.solver not in REMAT_SOLVERS:
        raise UsageError(f"--solver {args.solver!r} is not a recompute solver; choose one of {', '.join(REMAT_SOLVERS)}")
    try:
        check_time_limit(args.time_limit)
    except GraphError:
        raise UsageError(f"--time-limit {args.time_limit!r} must be a number of seconds > 0, e.g. --time-limit 30") from None


SOLVER_POLICIES = ("optimal", "optimal-lp")
"""The --remat policies that run a solver: the command shows its progress and prints how it ended."""


def _compile(spec: str, args: argparse.Namespace, called: tuple[list[Any], Any] | None = None):
    """The program of ``spec`` (``called``: what FUNC returned, split by :func:`call_function`), planned but not bound: the commands print and draw it, never run it,
    so a model whose arena is larger than this machine's memory can be planned.

    A solver policy shows the solver's progress on stderr (Ctrl-C stops the solve and keeps the
    best schedule so far; a second Ctrl-C stops the command); with --remat the remat report
    (``Program.remat``: the schedule chosen, the solver's status, gap and time) follows there."""
    import graphc as gc

    _check_compile_options(args)
    outputs, updates = called if called is not None else call_function(spec)
    what = f"compiling {len(outputs)} output{'s' if len(outputs) > 1 else ''} of {spec}"
    options = dict(updates=updates, memory=args.memory, remat=args.remat, memory_budget=args.budget, bind=False,
                   solver=args.solver, time_limit=args.time_limit)
    if args.remat in SOLVER_POLICIES:
        print(f"{what} with remat={args.remat!r} (solver {args.solver}, time limit {args.time_limit:g} s; "
              "Ctrl-C stops the solve and keeps the best schedule so far)", file=sys.stderr, flush=True)
        program = gc.compile(outputs, progress=True, **options)
    else:
        with Progress(what):
            program = gc.compile(outputs, **options)
    if args.remat != "none" and program.remat is not None:
        print(program.remat, file=sys.stderr, flush=True)
    return program


def _run_plan(args: argparse.Namespace) -> int:
    program = _compile(args.target, args)
    print(program.plan)
    print()
    print(program.memory)
    print(f"\ncost: {program.cost}")
    if args.json is not None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(program.plan.to_json(indent=1) + "\n")
        print(f"plan JSON written to {args.json}", file=sys.stderr)
    if args.timeline is not None:
        from graphc.plots import plot_memory_timeline

        plot_memory_timeline(program, args.timeline, budget=args.budget)
        print(f"memory timeline written to {args.timeline}", file=sys.stderr)
    return 0


def _add_compile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", default="auto", metavar="MODE",
                   help="arena placement: auto (default), greedy-by-size, first-fit-by-start, no-reuse, ...")
    p.add_argument("--remat", default="none", metavar="POLICY",
                   help="recompute policy: none (default), or one of graphc.compile.REMAT_POLICIES (e.g. sqrt)")
    p.add_argument("--budget", type=int, default=None, metavar="BYTES", help="memory budget for --remat, in bytes")
    p.add_argument("--solver", default="auto", metavar="SOLVER",
                   help="solver of --remat optimal: auto (default, chosen by the problem's size), milp or cpsat")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                   help="seconds the recompute search may take (default 60); the best schedule found by then is kept")


def _add_plan(sub: Subparsers) -> None:
    p = sub.add_parser(
        "plan",
        help="compile FILE.py:FUNC and print its plan and memory report",
        description="Import FILE.py, call FUNC(), compile what it returns, and print the plan listing, the memory "
        "report and the FLOP count.",
        epilog=FUNC_HELP + "\n\nexample: graphc plan step.py:train_step --memory no-reuse --json step.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="FILE.py:FUNC", help="a Python file and a function in it")
    _add_compile_options(p)
    p.add_argument("--json", metavar="OUT", default=None, help="also write the plan as JSON to OUT")
    p.add_argument("--timeline", metavar="PNG", default=None, help="also plot the memory timeline to PNG (matplotlib)")
    p.set_defaults(handler=_run_plan, command_name="plan")


def _max_nodes(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _view_target(args: argparse.Namespace, view: str, called: tuple[list[Any], Any] | None = None) -> Any:
    """What a view of FILE.py:FUNC draws or exports: its compiled program for "plan", else the values
    (outputs and updates) it returned. ``called``: what FUNC returned, if it was called already."""
    if view == "plan":
        return _compile(args.target, args, called)
    from graphc.report import drawn_values

    return drawn_values(*(called if called is not None else call_function(args.target)))


def _run_render(args: argparse.Namespace) -> int:
    from graphc.render import make_scene, render

    from graphc.render import FORMATS

    view = args.view
    out = args.output or f"{args.target.rpartition(':')[2]}_{view}.png"
    if Path(out).suffix.lower().lstrip(".") not in FORMATS:
        raise UsageError(f"-o {out}: the suffix gives the image type; use one of " + ", ".join("." + f for f in FORMATS))
    target = _view_target(args, view)
    nodes = len(make_scene(target, view).boxes)
    focus = f", focus {args.focus}" if args.focus else ""
    with Progress(f"rendering the {view} view ({nodes:,d} nodes{focus}) to {out}"):
        render(target, out, view, max_nodes=args.max_nodes, collapse=not args.no_collapse, focus=args.focus)
    print(out)
    return 0


def _add_render(sub: Subparsers) -> None:
    p = sub.add_parser(
        "render",
        help="draw the graph or plan of FILE.py:FUNC as an image",
        description="Import FILE.py, call FUNC(), and draw what its outputs need: the forward graph, the adjoint "
        "graph, both (joint), or the compiled plan. The image type comes from the suffix of -o "
        "(.png, .svg, .pdf). Needs graphviz's `dot` program.",
        epilog=FUNC_HELP + "\n\nexample: graphc render step.py:train_step --view joint -o step.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="FILE.py:FUNC", help="a Python file and a function in it")
    p.add_argument("--view", choices=("forward", "adjoint", "joint", "plan"), default="joint",
                   help="what to draw (default: joint, forward and adjoint together)")
    p.add_argument("-o", "--output", metavar="OUT", default=None, help="the image to write (default: FUNC_VIEW.png)")
    p.add_argument("--max-nodes", type=_max_nodes, default=150, metavar="N",
                   help="above N boxes, draw scopes and repeated blocks as units (default 150; 'all' draws every node)")
    p.add_argument("--no-collapse", action="store_true", help="fail instead of collapsing when above --max-nodes")
    p.add_argument("--focus", metavar="SCOPE", default=None,
                   help="expand the gc.scope SCOPE (e.g. layer3/block2) and draw the rest collapsed into units")
    _add_compile_options(p)
    p.set_defaults(handler=_run_render, command_name="render")


def _run_report(args: argparse.Namespace) -> int:
    from graphc.report import write_report

    out = Path(args.output or f"{args.target.rpartition(':')[2]}_report.html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {out}: the report is an HTML page; name it .html")
    _check_compile_options(args)
    outputs, updates = call_function(args.target)
    program = _compile(args.target, args, (outputs, updates))
    with Progress(f"writing the report to {out}"):
        write_report(outputs, out, updates, program=program, label=args.target, max_nodes=args.max_nodes)
    print(out)
    return 0


def _add_report(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="write one HTML page about FILE.py:FUNC: pictures, plots, plan, memory, recompute",
        description="Import FILE.py, call FUNC(), compile what it returns (planned, not run), and write one "
        "self-contained HTML page: the forward, joint and plan pictures (wheel to zoom, drag to pan), the memory "
        "plots, the memory report and FLOP count, what --remat chose, and the plan listing. The page loads nothing "
        "from anywhere: it works offline. Pictures need graphviz's `dot`, plots matplotlib; without them the page "
        "says so in their place.",
        epilog=FUNC_HELP + "\n\nexample: graphc report step.py:train_step --remat sqrt -o step.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="FILE.py:FUNC", help="a Python file and a function in it")
    p.add_argument("-o", "--output", metavar="OUT", default=None, help="the page to write (default: FUNC_report.html)")
    p.add_argument("--max-nodes", type=_max_nodes, default=150, metavar="N",
                   help="above N boxes, pictures collapse repeated blocks and group nodes (default 150; 'all' draws "
                        "every node)")
    _add_compile_options(p)
    p.set_defaults(handler=_run_report, command_name="report")


def _export_graphml(target: Any, path: Path) -> list[Path]:
    import networkx as nx

    from graphc.export import to_networkx

    nx.write_graphml(to_networkx(target), path)
    return [path]


def _export_python(program: Any, path: Path) -> list[Path]:
    from graphc.codegen import write_module

    return write_module(program, path)


class Export(NamedTuple):
    """One output of ``graphc export``: what it writes, its writer, the suffix ``-o OUT`` knows it by,
    and whether it writes the compiled program whatever ``--view`` says."""

    help: str
    write: Callable[[Any, Path], list[Path]]  # writer(target, path) -> the files written
    suffix: str
    program: bool = False


EXPORTS: dict[str, Export] = {
    "graphml": Export("the graph (or plan) as GraphML (networkx's write_graphml: Gephi, yEd, Cytoscape)",
                      _export_graphml, ".graphml"),
    "python": Export("the compiled plan as a Python module that runs with NumPy alone (run(feeds, params)), and the "
                     "params' values beside it (OUT with the suffix .npz)", _export_python, ".py", program=True),
}
"""The outputs of ``graphc export``: option name -> :class:`Export`. Each is an option ``--NAME OUT``,
and ``-o OUT`` picks one by OUT's suffix; a command may ask for several at once."""


def _wanted_exports(args: argparse.Namespace) -> list[tuple[str, Path]]:
    wanted = [(name, Path(getattr(args, name))) for name in EXPORTS if getattr(args, name) is not None]
    for out in args.output or ():
        suffix = Path(out).suffix.lower()
        names = [name for name, export in EXPORTS.items() if export.suffix == suffix]
        if not names:
            known = ", ".join(f"{e.suffix} ({name})" for name, e in EXPORTS.items())
            raise UsageError(f"-o {out}: the suffix picks what to write; use one of {known}")
        wanted.append((names[0], Path(out)))
    if not wanted:
        options = " or ".join(f"--{name} OUT" for name in EXPORTS)
        raise UsageError(f"nothing to write: give an output, {options} (or -o OUT)")
    return wanted


def _run_export(args: argparse.Namespace) -> int:
    wanted = _wanted_exports(args)
    called = call_function(args.target)
    targets: dict[str, Any] = {}

    def target(view: str) -> Any:
        if view not in targets:
            targets[view] = _view_target(args, view, called)
        return targets[view]

    for name, path in wanted:
        export = EXPORTS[name]
        view = "plan" if export.program else args.view
        what = "program" if export.program else args.view
        path.parent.mkdir(parents=True, exist_ok=True)
        item = target(view)
        with Progress(f"writing the {what} as {name} to {path}"):
            written = export.write(item, path)
        for file in written:
            print(file)
    return 0


def _add_export(sub: Subparsers) -> None:
    p = sub.add_parser(
        "export",
        help="write the graph or plan of FILE.py:FUNC for other tools (GraphML), or as a NumPy module",
        description="Import FILE.py, call FUNC(), and write what its outputs need — the graph, forward and adjoint "
        "(--view graph, the default), or the compiled plan (--view plan: each value with its step and arena "
        "offset) — in each format asked for. GraphML holds a node per value (op, shape, dtype, bytes, kind, scope) "
        "and an edge per operand (its position, the Jᵀ term it carries); see graphc.export. --python (or -o "
        "step.py) writes the compiled program as one Python module that needs NumPy alone, its run(feeds, params) "
        "bit for bit the program's run, and the params' values as step.npz beside it (module.load_params reads "
        "them); see graphc.codegen.",
        epilog=FUNC_HELP + "\n\nexamples: graphc export step.py:train_step --graphml step.graphml\n"
        "          graphc export step.py:train_step -o out/step.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="FILE.py:FUNC", help="a Python file and a function in it")
    p.add_argument("--view", choices=("graph", "plan"), default="graph",
                   help="what to write: graph (default) or the compiled plan (with the compile options below)")
    outputs = p.add_argument_group("outputs (at least one)")
    outputs.add_argument("-o", "--output", metavar="OUT", action="append", default=None,
                         help="write OUT, in the format its suffix names: " + ", ".join(
                             f"{e.suffix} ({name})" for name, e in EXPORTS.items()))
    for name, export in EXPORTS.items():
        outputs.add_argument(f"--{name}", metavar="OUT", default=None, help=f"write {export.help} to OUT")
    _add_compile_options(p)
    p.set_defaults(handler=_run_export, command_name="export")


def _run_bench(args: argparse.Namespace) -> int:
    if args.name == "remat":
        return _run_bench_remat(args)
    if args.target is not None:
        raise UsageError(f"only `graphc bench remat` takes FILE.py:FUNC; `graphc bench {args.name}` runs a script")
    script = ROOT / "benchmarks" / ("run_all.py" if args.name == "all" else f"{args.name}.py")
    if not script.is_file():
        raise UsageError(f"the {args.name} benchmark is missing: {script} does not exist")
    command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
    label = f"benchmarks/{script.name}{' --quick' if args.quick else ''}"
    print(f"running {label} (from {ROOT})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT).returncode
    print(f"{label}: exit status {status} after {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return status


def _policy_list(text: str) -> tuple[str, ...]:
    """``--policies sqrt,optimal`` as ``("sqrt", "optimal")`` (SweepOptions checks each name)."""
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def _run_bench_remat(args: argparse.Namespace) -> int:
    """Sweep the recompute policies over budgets on FILE.py:FUNC's step, or on the built-in steps."""
    from graphc.bench import SweepOptions, sweep_remat
    from graphc.bench.remat import built_in_steps, write_results
    from graphc.bench.steps import BUILT_IN, FRONTIER_TARGET_GRAPH

    budgets, repeats = (min(args.budgets, 4), 5) if args.quick else (args.budgets, args.repeats)
    options = SweepOptions(policies=_policy_list(args.policies), budgets=budgets, repeats=repeats,
                           time_limit=args.time_limit, serial=args.serial, scheduler=args.scheduler,
                           workers=args.workers)
    if args.target in BUILT_IN:  # one built-in step by name
        steps, stem, frontier_graph = {args.target: BUILT_IN[args.target]}, f"{args.target}_remat", args.target
    elif args.target is not None:
        if ":" not in args.target:
            raise UsageError(f"{args.target!r} is neither FILE.py:FUNC nor a built-in step ({', '.join(BUILT_IN)})")
        call_function(args.target)  # a bad FILE.py:FUNC fails here, in one line, before any worker starts
        name = args.target.rpartition(":")[2]
        steps, stem, frontier_graph = {name: args.target}, f"{name}_remat", None
    else:
        steps, stem, frontier_graph = built_in_steps(args.quick), "remat_sweep", FRONTIER_TARGET_GRAPH
    rows = sweep_remat(steps, options)
    write_results(rows, Path(args.output), stem, frontier_graph=frontier_graph if frontier_graph in steps else None)
    failed = [r for r in rows if str(r["status"]).startswith("FAILED")]
    for row in failed:
        print(f"{row['graph']}, remat={row['policy']!r}, memory_budget={row['budget_bytes']}: {row['status']}",
              file=sys.stderr)
    return 1 if failed else 0


def _add_bench(sub: Subparsers) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark; `bench remat FILE.py:FUNC` sweeps your own training step",
        description="`graphc bench remat [FILE.py:FUNC]` compiles a training step (FUNC's, else the built-in zoo "
        "graphs, a ResNet-50 and a GPT-2 stack) with every recompute policy at budgets from the least feasible to "
        "store-all, measures each plan's step time against store-all's, and writes a table (CSV, Markdown, printed) "
        "and the memory-against-time charts to the current folder (or -o DIR). Each point is a task on "
        "dask.distributed (a local cluster, one worker per core, unless --scheduler or --serial). "
        "memory, speed and all run benchmarks/NAME.py of the source tree (tables on stdout, charts under out/bench/).",
        epilog=FUNC_HELP + "\n\nexamples: graphc bench remat step.py:train_step --budgets 4 --policies sqrt,optimal\n"
        "          graphc bench remat resnet50 --serial     (one built-in step)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=BENCHMARKS, help="which benchmark: " + ", ".join(BENCHMARKS))
    p.add_argument("target", nargs="?", default=None, metavar="FILE.py:FUNC",
                   help="remat only: the training step to sweep, or the name of one built-in step (resnet50, gpt2, "
                        "chain-24, …; default: all of them)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller graphs")
    remat = p.add_argument_group("remat sweep")
    remat.add_argument("--budgets", type=int, default=6, metavar="N", help="budgets per policy (default 6)")
    remat.add_argument("--policies", default="sqrt,revolve,optimal", metavar="P,Q",
                       help="recompute policies to sweep, comma-separated (default sqrt,revolve,optimal)")
    where = remat.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the points on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)")
    where.add_argument("--serial", action="store_true", help="run the points one after another in this process")
    remat.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local Dask workers (default: one per core)")
    remat.add_argument("--time-limit", type=float, default=30.0, metavar="S",
                       help="seconds each compile's solver may take (default 30)")
    remat.add_argument("--repeats", type=int, default=7, metavar="N",
                       help="pairs of runs (plan, store-all) timing each point, at least 5 (default 7)")
    remat.add_argument("-o", "--output", default=".", metavar="DIR",
                       help="where the table and charts go (default: the current folder)")
    p.set_defaults(handler=_run_bench, command_name="bench")


# Order = order in --help.
_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (_add_demo, _add_plan, _add_render, _add_report, _add_export,
                                                         _add_bench)


# --- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="graphc",
        description="A static computational-graph compiler for reverse-mode differentiation.",
        epilog="Run `graphc COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``graphc`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse exits
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    from graphc.errors import GraphError

    try:
        return handler(args)
    except (UsageError, GraphError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"graphc {getattr(args, 'command_name', '')}".rstrip() + f": error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
