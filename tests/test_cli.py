"""The `graphc` command: through the installed console script, bad arguments included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

import graphc as gc
from graphc import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

USER_FILE = '''
import graphc as gc
from graphc import zoo

def seed():
    g, v = zoo.seed_dag()
    return [v["loss"], *gc.grad(v["loss"], [v["w1"], v["w2"]])]

def train_step():
    g, v = zoo.mlp(8, sizes=(6, 7, 3))
    return [v["loss"]], gc.sgd(v["loss"], v["params"], 0.1)

def one_value():
    g, v = zoo.seed_dag()
    return v["loss"]

def not_values():
    return {"loss": 1.0}

def shapes_wrong():
    with gc.Graph("bad"):
        x = gc.input("x", shape=(2, 3))
        return gc.matmul(x, x)

def huge_step():
    with gc.Graph("huge"):
        x = gc.input("x", shape=(1_000_000, 64))
        w = gc.param("w", shape=(64, 256))
        loss = gc.mean(gc.tanh(x @ w) ** 2)
    return [loss], gc.sgd(loss, [w], 0.1)

def scoped_step():
    g, v = zoo.gpt2(batch=1, layers=2, width=8, heads=2, context=4, vocab=11)
    return [v["loss"]], gc.sgd(v["loss"], v["params"], 0.1)

NOT_A_FUNCTION = 3
'''


def graphc_command() -> str:
    beside = Path(sys.executable).parent / "graphc"
    found = str(beside) if beside.exists() else shutil.which("graphc")
    if found is None:
        pytest.skip("the graphc console script is not installed")
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    (path / "model.py").write_text(textwrap.dedent(USER_FILE))
    (path / "broken.py").write_text("def f(:\n    pass\n")
    return path


def graphc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([graphc_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_one_line_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr and "error:" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- through the console script ----------------------------------------------------------------------


def test_help(workdir):
    top = graphc("--help", cwd=workdir)
    assert top.returncode == 0 and all(c in top.stdout for c in ("demo", "plan", "render", "report", "bench"))
    plan_help = graphc("plan", "--help", cwd=workdir)
    assert plan_help.returncode == 0 and "usage: graphc plan" in plan_help.stdout
    assert "FILE.py:FUNC" in plan_help.stdout and "(outputs, updates)" in plan_help.stdout and "--json" in plan_help.stdout


@pytest.mark.parametrize("command", ["demo", "render", "report", "bench"])
def test_help_of_every_command(command, capsys):
    code, out, err = run_main(capsys, command, "--help")
    assert code == 0 and f"usage: graphc {command}" in out


def test_plan_prints_listing_and_memory_report_and_writes_json(workdir):
    run = graphc("plan", "model.py:train_step", "--json", "out/step.json", cwd=workdir)
    assert run.returncode == 0, run.stderr
    assert "plan 'mlp6-7-3'" in run.stdout and "memory plan" in run.stdout and "lower bound" in run.stdout
    assert "update" in run.stdout and "cost: forward" in run.stdout
    plan = gc.Plan.from_json((workdir / "out" / "step.json").read_text())
    assert plan.name == "mlp6-7-3" and any(i.tag == "update" for i in plan.instructions)


def test_plan_memory_option(workdir):
    run = graphc("plan", "model.py:one_value", "--memory", "no-reuse", cwd=workdir)
    assert run.returncode == 0, run.stderr
    assert "memory plan (no-reuse" in run.stdout


def test_render_writes_an_image(workdir):
    run = graphc("render", "model.py:seed", "--view", "joint", "-o", "seed.png", cwd=workdir)
    assert run.returncode == 0, run.stderr
    assert (workdir / "seed.png").read_bytes()[:8] == PNG_MAGIC
    run = graphc("render", "model.py:train_step", "--view", "plan", "-o", "step.svg", cwd=workdir)
    assert run.returncode == 0, run.stderr
    assert "← " in (workdir / "step.svg").read_text()  # update instructions


def test_render_focus_expands_one_scope(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    code, out, err = run_main(capsys, "render", "model.py:scoped_step", "--view", "plan", "--focus", "block1",
                              "-o", "focus.svg")
    assert code == 0, err
    svg = (workdir / "focus.svg").read_text()
    assert "focus: block1 expanded, the rest collapsed" in svg and "block0" in svg and " fwd" in svg
    code, out, err = run_main(capsys, "render", "model.py:scoped_step", "--focus", "block9", "-o", "bad.svg")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "focus='block9'" in err and "block0, block1, embed, head, optim" in err


@pytest.mark.parametrize(
    "args, needles",
    [
        (("plan", "nowhere.py:f"), ("no such file: nowhere.py",)),
        (("plan", "model.py:missing"), ("has no function 'missing'", "seed", "train_step")),
        (("plan", "model.py:not_values"), ("returned a value of type dict", "(outputs, updates)")),
        (("render", "model.py:seed", "--view", "sideways"), ("invalid choice: 'sideways'",)),
    ],
)
def test_bad_arguments_exit_2_with_one_line(workdir, args, needles):
    assert_one_line_error(graphc(*args, cwd=workdir), *needles)


# --- in process (the same main(), faster) -------------------------------------------------------------


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_writes_one_page(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    code, out, err = run_main(capsys, "report", "model.py:train_step", "--remat", "sqrt", "-o", "out/step.html")
    assert code == 0, err
    assert out.strip() == "out/step.html" and "remat='sqrt'" in err
    text = (workdir / "out" / "step.html").read_text(encoding="utf-8")
    assert "model.py:train_step" in text and "plan 'mlp6-7-3'" in text and text.count('<div class="zoom">') == 3
    assert "remat=&#x27;sqrt&#x27;" in text  # the recompute report


def test_plan_of_a_gigabyte_step_prints_its_report_without_allocating_its_arena(workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    tracemalloc.start()
    try:
        code, out, err = run_main(capsys, "plan", "model.py:huge_step")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    planned = int(re.search(r"arena \(planned\)\s+([\d,]+) B", out).group(1).replace(",", ""))
    assert planned > 2 * 10**9 and peak < 20 * 2**20


@pytest.mark.parametrize(
    "args, needles",
    [
        (("plan", "model.py"), ("is not FILE.py:FUNC",)),
        (("plan", "model.py:shapes_wrong"), ("raised (model.py, line", "GraphError", "contracted dimensions")),
        (("plan", "--frobnicate", "model.py:seed"), ("unrecognized arguments: --frobnicate",)),
        (("plan", "broken.py:f"), ("importing broken.py failed (broken.py, line 1): SyntaxError",)),
        (("plan", "model.py:NOT_A_FUNCTION"), ("is not a function but a value of type int",)),
        (("plan", "model.py:seed", "--memory", "bogus"), ("--memory 'bogus' is not a placement mode",)),
        (("plan", "model.py:seed", "--remat", "bogus"), ("--remat 'bogus' is not a recompute policy",)),
        (("render", "model.py:seed", "-o", "seed.gif"), ("-o seed.gif", ".png, .svg, .pdf")),
        (("render", "model.py:seed", "--max-nodes", "lots"), ("neither a number nor 'all'",)),
        (("report", "model.py:seed", "-o", "seed.png"), ("-o seed.png", "name it .html")),
        (("report", "model.py:missing"), ("has no function 'missing'",)),
        (("report", "model.py:seed", "--remat", "bogus"), ("--remat 'bogus' is not a recompute policy",)),
        (("bench", "fastest"), ("invalid choice: 'fastest'",)),
    ],
)
def test_more_bad_arguments(workdir, capsys, monkeypatch, args, needles):
    monkeypatch.chdir(workdir)
    code, out, err = run_main(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_no_command_prints_help(capsys):
    code, out, err = run_main(capsys)
    assert code == 2 and "usage: graphc" in err


def test_bench_runs_the_script_and_names_a_missing_one(tmp_path, capsys, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "memory.py").write_text("import sys\nprint('table', sys.argv[1:])\n")
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    assert cli.main(["bench", "memory", "--quick"]) == 0
    assert "benchmarks/memory.py --quick: exit status 0" in capsys.readouterr().err
    code, out, err = run_main(capsys, "bench", "speed")
    assert code == 2 and "the speed benchmark is missing" in err and "speed.py does not exist" in err


def test_split_result_conventions():
    from graphc import zoo

    g, v = zoo.seed_dag()
    loss, w1 = v["loss"], v["w1"]
    assert cli.split_result(loss, "f") == ([loss], None)
    assert cli.split_result([loss, w1], "f") == ([loss, w1], None)
    assert cli.split_result((loss, w1), "f") == ([loss, w1], None)  # two Values: two outputs
    outputs, updates = cli.split_result(([loss], {w1: w1 * 0.5}), "f")
    assert outputs == [loss] and list(updates) == [w1]
    outputs, updates = cli.split_result((loss, [(w1, w1 * 0.5)]), "f")
    assert outputs == [loss] and updates[0][0] is w1
    with pytest.raises(cli.UsageError, match="returned a value of type NoneType"):
        cli.split_result(None, "f")


def test_progress_is_quiet_for_quick_work_off_a_terminal(capsys):
    with cli.Progress("quick work"):
        pass
    assert capsys.readouterr().err == ""
