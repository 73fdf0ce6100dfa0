"""Shared fixtures and session checks (keep this file small: what several test files share)."""

import importlib.util
import os
import subprocess
import sys
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


# --- JAX, the oracle, compiles with XLA's older CPU emitters ----------------------------------
#
# The JAX tests compile thousands of small XLA programs (every op they call eagerly, every
# jitted reference), and compiling, not running, is their time. XLA's newer CPU fusion emitters
# take about twice as long to compile them as the older ones, which compute the same values:
# bit for bit on every case of test_numerics, within a few ulps (at most 16, float64) on random
# DAGs of test_against_jax, whose tolerance is 1e-9. An XLA that does not know a flag in
# XLA_FLAGS aborts, so the flag is set only once a child process has started JAX with it, once
# per session: pytest-xdist's workers inherit the outcome from the controller.

ORACLE_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"
_PROBED = "GRAPHC_TESTS_XLA_FLAG_PROBED"


def _oracle_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get(_PROBED) or "xla_cpu_use_fusion_emitters" in flags or importlib.util.find_spec("jax") is None:
        return
    os.environ[_PROBED] = "1"
    wanted = f"{flags} {ORACLE_XLA_FLAG}".strip()
    try:
        probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env={**os.environ, "XLA_FLAGS": wanted},
                               capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return
    if probe.returncode == 0:
        os.environ["XLA_FLAGS"] = wanted


_oracle_xla_flags()


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


# --- the longest tests start first, so that two workers finish together ----------------------
#
# pytest-xdist hands tests out in collection order and sorts nothing by itself: a 20-second
# test collected last keeps one core busy while the other idles. These tests (node ids under
# tests/, or their prefixes) took 3 s or more each on two cores; they start first, longest
# first. `make test` hands out whole files (--dist loadfile --no-loadscope-reorder) in the
# order of their first test here, so the files holding the longest tests go out first and the
# small files fill in at the end. A name that no longer exists only loses its place.

RUN_FIRST = (
    "test_notebooks.py::test_notebook_runs",
    "test_bench_remat.py::test_bench_remat_on_two_dask_workers_writes_into_the_cwd_what_a_serial_run_gives",
    "test_large.py::test_1e5_node_forward_graph_compiles",
    "test_optim.py::test_optimizer_matches_torch_for_20_steps",
    "test_demo.py",
    "test_docs.py::test_document_runs",
    "test_remat_cpsat.py::test_ctrl_c_stops_the_search_and_keeps_the_best_schedule",
    "test_large.py",
    "test_codegen.py::test_modules_run_with_numpy_alone_and_match_the_runtime_bit_for_bit",
    "test_against_jax.py::test_random_dags_match_jax",
    "test_speed_benchmark.py::test_model_implementation_agrees_with_graphc",
    "test_render.py::test_every_view_of_every_zoo_graph_renders_svg[chain-1000",
    "test_render.py::test_every_view_of_every_zoo_graph_renders_svg[random-100-joint]",
    "test_remat_solvers.py::test_time_limit_returns_the_best_known_schedule",
    "test_remat_cpsat.py::test_optimal_with_cpsat_reports_its_outcome",
    "test_remat_report.py::test_sigint_during_a_long_solve_ends_the_compile_with_the_best_schedule",
    "test_zoo.py::test_entry_compiles_runs_and_matches_the_no_reuse_plan[chain-1000]",
    "test_remat.py::test_a_larger_budget_never_gives_more_recompute_nor_a_larger_arena_at_equal_recompute",
    "test_cli.py::test_render_writes_an_image",
    "test_report.py",
    "test_remat_cpsat.py::test_cpsat_equals_staged_brute_force",
    "test_training.py::test_half_the_store_all_arena_fits_revolve_and_optimal",
    "test_remat_blocks.py",
    "test_remat_solvers.py::test_milp_is_a_valid_upper_bound_on_any_order",
    "test_remat_solvers.py::test_training_chain_closed_forms",
    "test_remat_solvers.py::test_fused_schedules_run_on_the_original",
    "test_remat.py::test_the_milp_proves_training_graphs_optimal_and_lp_rounding_comes_within_ten_percent",
    "test_plan_fuzz.py::test_damaged_plan_files_are_refused_or_run_exactly_as_written",
    "test_saving.py::test_damaged_program_file_is_refused_or_loads_exactly",
)


def _first_rank(item: pytest.Item) -> int:
    """The place of the first RUN_FIRST entry the test's node id starts with (after tests/)."""
    node_id = item.nodeid.removeprefix("tests/")
    return next((k for k, prefix in enumerate(RUN_FIRST) if node_id.startswith(prefix)), len(RUN_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the longest tests to the front, in RUN_FIRST's order (the sort is stable: the
    rest keep theirs)."""
    items.sort(key=_first_rank)
