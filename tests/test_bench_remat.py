"""`graphc bench remat`: the recompute sweep of a user's step, on Dask and serially, and its bad inputs."""

from __future__ import annotations

import csv
import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphc.bench
import graphc.bench.remat
from graphc import cli
from graphc.bench import SweepOptions, sweep_remat
from graphc.bench.remat import budget_grid
from graphc.bench.tables import MEASURED, reduction_at_overhead, write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

STEP_FILE = textwrap.dedent('''
    import graphc as gc
    from graphc import zoo

    def train_step():
        g, v = zoo.residual_mlp(depth=2, width=4, batch=8)
        return [v["loss"]], gc.sgd(v["loss"], v["params"], 0.1)

    def not_values():
        return {"loss": 1.0}

    def raises():
        raise KeyError("lr")
''')

SWEEP = ["--budgets", "2", "--policies", "revolve", "--repeats", "5"]


@pytest.fixture
def step_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``step.py`` in ``tmp_path``, which is also the current folder."""
    path = tmp_path / "step.py"
    path.write_text(STEP_FILE)
    monkeypatch.chdir(tmp_path)
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _unmeasured(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in MEASURED} for row in rows]


def test_bench_remat_on_two_dask_workers_writes_into_the_cwd_what_a_serial_run_gives(step_file, capsys):
    """The command's default path (a two-worker LocalCluster) writes CSV, Markdown and the chart
    into the current folder, prints the table and one progress line per point; every column but
    the measured times equals the serial sweep's."""
    assert cli.main(["bench", "remat", "step.py:train_step", *SWEEP, "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    folder = step_file.parent
    assert (folder / "train_step_remat_frontier.png").read_bytes()[:8] == PNG_MAGIC
    assert "| graph | policy | memory budget (MB) | planned arena (MB) | saved vs store-all (%)" in \
        (folder / "train_step_remat.md").read_text()
    on_dask = _csv(folder / "train_step_remat.csv")
    assert "dask.distributed, 2 workers" in err
    assert len([line for line in err.splitlines() if line.startswith("[")]) == len(on_dask) >= 3
    assert "step time overhead (%)" in out and "memory reduction" in out

    serial = sweep_remat({"train_step": "step.py:train_step"},
                         SweepOptions(policies=("revolve",), budgets=2, repeats=5, serial=True), progress=None)
    write_csv(serial, folder / "serial.csv")
    assert _unmeasured(on_dask) == _unmeasured(_csv(folder / "serial.csv"))
    assert {row["policy"] for row in on_dask} == {"store-all", "revolve"}


@pytest.mark.parametrize("target, message", [
    ("step.py", r"'step.py' is neither FILE.py:FUNC nor a built-in step \(chain-24, .*, gpt2\)"),
    ("missing.py:train_step", r"no such file: missing.py"),
    ("step.py:nope", r"step.py has no function 'nope'; functions defined there: not_values, raises, train_step"),
    ("step.py:not_values", r"returned a value of type dict; it must return a Value"),
    ("step.py:raises", r"step.py:raises raised \(step.py, line \d+\) KeyError: 'lr'"),
])
def test_bench_remat_names_a_bad_file_func_in_one_line(step_file, capsys, target, message):
    assert cli.main(["bench", "remat", target, "--serial"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc bench: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


@pytest.mark.parametrize("argv, message", [
    (["--policies", "sqrt,fast"], r"'fast' is not a recompute policy to sweep; choose among sqrt, revolve"),
    (["--budgets", "1"], r"budgets=1\): budgets is how many budgets to sweep.*>= 2"),
    (["--time-limit", "0"], r"time_limit=0.0\).* above 0"),
    (["--repeats", "2"], r"repeats=2\).*>= 5"),
])
def test_bench_remat_rejects_bad_options_before_any_work(step_file, capsys, argv, message):
    assert cli.main(["bench", "remat", "step.py:train_step", "--serial", *argv]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not list(step_file.parent.glob("*.csv"))


def test_bench_remat_sweeps_one_built_in_step_by_name(tmp_path, monkeypatch):
    swept = {}

    def sweep(steps, options):
        swept.update(steps)
        return []
    monkeypatch.setattr(graphc.bench, "sweep_remat", sweep)
    monkeypatch.setattr(graphc.bench.remat, "write_results", lambda *args, **kwargs: None)
    assert cli.main(["bench", "remat", "resnet50", "--serial", "-o", str(tmp_path)]) == 0
    assert swept == {"resnet50": "graphc.bench.steps:resnet50_step"}


def test_only_bench_remat_takes_a_file_func(step_file, capsys):
    assert cli.main(["bench", "memory", "step.py:train_step"]) == 2
    assert "only `graphc bench remat` takes FILE.py:FUNC" in capsys.readouterr().err


def test_bench_remat_without_distributed_says_how_to_install_it(step_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    assert cli.main(["bench", "remat", "step.py:train_step", *SWEEP]) == 2
    assert "needs the distributed package: pip install graphc[remat] (or run with --serial)" in capsys.readouterr().err


@given(least=st.integers(0, 10**9), span=st.integers(0, 10**9), count=st.integers(2, 12))
def test_budget_grid_runs_from_the_least_budget_to_store_all(least, span, count):
    grid = budget_grid(least, least + span, count)
    assert grid == sorted(set(grid)) and len(grid) <= count
    assert grid[0] == least and grid[-1] == least + span


def test_reduction_at_overhead_takes_the_least_memory_within_the_time_limit():
    def row(policy, planned, ratio):
        return {"graph": "g", "policy": policy, "planned_bytes": planned, "store_all_bytes": 300, "time_ratio": ratio}
    rows = [row("none", 300, 1.0), row("sqrt", 100, 1.5), row("revolve", 150, 1.11), row("optimal", 200, 0.9)]
    assert reduction_at_overhead(rows, "g")["policy"] == "revolve"
    assert reduction_at_overhead(rows, "g", limit=5.0)["policy"] == "optimal"
    assert reduction_at_overhead(rows, "other") is None


def test_reduction_at_overhead_counts_a_point_at_exactly_the_limit():
    """100 · (1.12 − 1) is 12.000000000000012 in floating point: the ratio itself is compared."""
    rows = [{"graph": "g", "policy": p, "planned_bytes": b, "store_all_bytes": 300, "time_ratio": r}
            for p, b, r in (("none", 300, 1.0), ("sqrt", 100, 1.12))]
    assert reduction_at_overhead(rows, "g", limit=12.0)["policy"] == "sqrt"
