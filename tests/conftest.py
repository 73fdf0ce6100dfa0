"""Shared fixtures and session checks (keep this file small: what several test files share)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

import graphc.validate

# Hypothesis keeps no example database in the checkout (tests write under tmp_path only);
# a failure prints its falsifying example, which is what reproduces it.
settings.register_profile("graphc", database=None)
settings.load_profile("graphc")

# Every plan a test compiles is checked by the independent validator.
graphc.validate.VALIDATE_PLANS = True

REPOSITORY = Path(__file__).resolve().parents[1]
TOOL_CACHES = {"__pycache__", ".pytest_cache", ".hypothesis", ".venv"}  # written by the tools, not by tests


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, so every test sees the same numbers."""
    return np.random.default_rng(0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.txt from the plans compiled now (review them with git diff)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether the golden tests rewrite their files instead of comparing with them."""
    return request.config.getoption("--update-golden")


# --- tests write only under tmp_path -------------------------------------------------------


def untracked_files_in_repository() -> set[str] | None:
    """Paths git reports as new, changed or ignored in the checkout (None outside a git checkout)."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
            cwd=REPOSITORY, capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return None
    paths = (line[3:] for line in status.stdout.splitlines())
    return {p for p in paths if not TOOL_CACHES.intersection(Path(p).parts) and not p.endswith(".pyc")}


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # pytest-xdist workers have it


def pytest_sessionstart(session: pytest.Session) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)  # tmp_path's factory, before collection
    if factory is not None:  # Hypothesis's own files (its cache of constants) go there too
        set_hypothesis_home_dir(factory.mktemp("hypothesis"))
    if _is_controller(session.config) and not session.config.getoption("--update-golden"):
        session.config.stash[_BEFORE] = untracked_files_in_repository()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left a file in the repository: tests write under ``tmp_path`` only."""
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    after = untracked_files_in_repository() or set()
    written = sorted(after - before)
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            "tests wrote into the repository (write under the tmp_path fixture, or run "
            "subprocesses with cwd=tmp_path): " + ", ".join(written)
        )
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set]()


# --- the longest files start first, so that two workers finish together ----------------------

RUN_FIRST = ("test_notebooks.py", "test_large.py", "test_demo.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests of the longest files to the front, in RUN_FIRST's order (the sort is
    stable: the rest keep theirs)."""
    rank = {name: k for k, name in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(RUN_FIRST)))
