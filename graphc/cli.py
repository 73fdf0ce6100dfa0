"""The ``graphc`` command line.

Each subcommand is added to the parser by one small ``_add_<name>`` function that sets its
handler, ``handler(args) -> int``. Handlers import the library lazily, so ``graphc --help``
stays fast and does not depend on the heavier modules.

    graphc demo        run the end-to-end demo (graphc.demo.main)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]
Subparsers = argparse._SubParsersAction  # the object returned by add_subparsers()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


# --- subcommands -------------------------------------------------------------------------


def _run_demo(args: argparse.Namespace) -> int:
    from graphc import demo

    return int(demo.main())


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo",
        description="Run the end-to-end demo (graphc.demo): build, differentiate, compile and run a graph.",
    )
    p.set_defaults(handler=_run_demo)


# Order = order in --help. Add `plan`, `render`, `bench` here as they are written.
_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (_add_demo,)


# --- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphc",
        description="A static computational-graph compiler for reverse-mode differentiation.",
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
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
