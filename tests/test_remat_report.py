"""The recompute stage is never silent: its report, the solvers' progress, Ctrl-C, and the command's output."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import cli, passes, remat, zoo
from graphc.memory import plan_memory
from graphc.remat import optimal
from graphc.remat.candidates import Deadline
from graphc.remat.progress import ProgressLine, SolveProgress, SolverOutcome
from graphc.schedule import schedule


def _measure(flow: passes.Dataflow) -> int:
    return plan_memory(flow, schedule(flow)).planned_bytes


def _training_flow(depth: int, width: int = 16, batch: int = 64) -> passes.Dataflow:
    _, values = zoo.residual_mlp(depth=depth, width=width, batch=batch)
    return passes.optimize([v.node for v in zoo.training_outputs(values)])


def _report(outcome: SolverOutcome | None, **fields) -> remat.RematReport:
    base = dict(policy="optimal", chosen="sqrt, a checkpoint every 2 segments", recompute_flops=1_000,
                planned_bytes=4_096, candidates=9, outcome=outcome, forward_flops=4_000, budget=5_000)
    return remat.RematReport(**{**base, **fields})


# --- the report ---------------------------------------------------------------------------


def test_report_of_an_infeasible_model_says_so_and_that_the_chosen_schedule_fits():
    """The case "the solver ended infeasible" while sqrt's plan, which fits, was returned."""
    why = "the model has no schedule within 4,000 B"
    report = _report(SolverOutcome("milp", "infeasible", seconds=60.88, why=why),
                     choice="sqrt, a checkpoint every 2 segments fits; the solver found nothing (infeasible)")
    text = str(report)
    assert "solver milp: infeasible (the model has no schedule within 4,000 B), 60.88 s" in text
    assert "chosen: sqrt, a checkpoint every 2 segments fits" in text
    assert "0.25× one forward pass" in text and "within the budget 5,000 B" in text
    assert len(text.splitlines()) == 3
    assert report.fallback_reason.startswith(why) and "fits" in report.fallback_reason


def test_report_of_a_feasible_solve_gives_objective_bound_and_gap():
    report = _report(SolverOutcome("cpsat", "feasible", objective=200.0, bound=150.0, seconds=3.0),
                     solver_chosen=True)
    text = str(report)
    assert "solver cpsat: feasible, recompute 200 FLOPs, bound 150, gap 25.0%, 3.00 s" in text
    assert report.gap == pytest.approx(0.25) and report.fallback_reason == "" and not report.interrupted
    assert len(text.splitlines()) == 2


def test_report_of_an_interrupted_solve_says_interrupted():
    report = _report(SolverOutcome("milp", "interrupted", objective=10.0, seconds=1.0))
    assert report.interrupted and "interrupted by Ctrl-C" in str(report)


def test_report_without_a_solver_is_one_line():
    text = str(remat.RematReport("sqrt", "sqrt, a checkpoint every 4 segments", 5, 64, 2))
    assert text == "remat='sqrt': sqrt, a checkpoint every 4 segments, recompute 5 FLOPs, arena 64 B (2 candidates)"


def test_a_re_solve_that_finds_nothing_keeps_the_first_solves_verdict(monkeypatch):
    """The solver's schedule overshoots the budget in the planned arena, the re-solve at a lower model
    budget is infeasible: the outcome is the first solve's ("feasible"/"optimal"), not "infeasible"."""
    import graphc.remat.exact as exact
    from graphc.remat.problem import _canonical, _infeasible

    flow = _training_flow(depth=3, width=8, batch=16)
    budget = int(remat.least_budget_bound(flow) + (_measure(flow) - remat.least_budget_bound(flow)) * 0.8)
    problem, nodes, groups = remat.remat_problem(flow, budget)
    calls = []

    def solve_then_nothing(problem, **kwargs):
        calls.append(problem.budget)
        if len(calls) == 1:  # a schedule (computing each node once: its arena is what the fake measure says)
            return _canonical(problem, np.eye(problem.n, dtype=bool), status="optimal", seconds=0.0, lower_bound=1.0)
        return _infeasible(problem)

    monkeypatch.setattr(exact, "solve_milp", solve_then_nothing)
    overshooting = lambda f: budget + 64  # noqa: E731  every schedule's arena is over the budget
    found, outcome = optimal._solver_candidate(flow, problem, nodes, groups, "optimal", overshooting,
                                               Deadline.after(20.0), 0.0)
    assert len(calls) == 2 and len(found) == 1
    assert outcome.status in ("optimal", "feasible") and outcome.objective is not None
    assert "re-solve" in outcome.why and "infeasible" in outcome.why


def test_compile_report_names_the_solver_and_the_choice():
    """A real solve on a small residual MLP: the report names the solver and its status, and says
    why the chosen schedule is the one it is when it is not the solver's."""
    flow = _training_flow(depth=3, width=8, batch=16)
    floor, store_all = remat.least_budget_bound(flow), _measure(flow)
    optimal._FOUND.clear()
    _, report = remat.rematerialize(flow, "optimal", int(floor + (store_all - floor) * 0.5), _measure, time_limit=1.0)
    assert report.outcome is not None and report.outcome.solver in ("milp", "lp-rounding", "cpsat")
    assert f"solver {report.outcome.solver}: " in str(report) and report.forward_flops > 0
    assert report.solver_chosen or report.choice  # either the solver's schedule or a reason


BUDGET_FRACTIONS = [0.2, 0.5, 0.8]


@pytest.fixture(scope="module")
def residual_flow():
    return _training_flow(depth=4, width=8, batch=16)


@pytest.mark.parametrize("time_limit", [0.001, 0.5])  # the first passes before any search: still no worse
@pytest.mark.parametrize("fraction", BUDGET_FRACTIONS)
def test_optimal_recomputes_no_more_than_sqrt_or_revolve_where_they_fit(residual_flow, fraction, time_limit):
    flow = residual_flow
    floor, store_all = remat.least_budget_bound(flow), _measure(flow)
    budget = int(floor + (store_all - floor) * fraction)
    fitting = []
    for policy in ("sqrt", "revolve"):
        try:
            fitting.append(remat.rematerialize(flow, policy, budget, _measure)[1].recompute_flops)
        except gc.GraphError:  # the policy cannot reach this budget
            pass
    optimal._FOUND.clear()
    try:
        _, report = remat.rematerialize(flow, "optimal", budget, _measure, time_limit=time_limit)
    except gc.GraphError:
        assert not fitting  # optimal may fail only where sqrt and revolve fail too
        return
    assert report.planned_bytes <= budget
    if fitting:
        assert report.recompute_flops <= min(fitting)


# --- progress -----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENT = SolveProgress("milp", 1.5, 200.0, 150.0, "LP rounding's schedule")


def test_progress_on_a_terminal_updates_one_line_in_place():
    screen = _Terminal()
    line = ProgressLine(screen)
    line(EVENT)
    line(replace(EVENT, seconds=2.5, objective=180.0))
    assert screen.getvalue().count("\r\x1b[K") == 2 and "\n" not in screen.getvalue()
    line.done()
    line.done()  # a second done() adds nothing
    assert screen.getvalue().endswith("gap 16.7% (LP rounding's schedule)\n") and screen.getvalue().count("\n") == 1


def test_progress_into_a_file_or_pipe_is_one_plain_line_per_event():
    log = io.StringIO()
    line = ProgressLine(log)
    line(EVENT)
    line(replace(EVENT, objective=None, bound=None, message=""))
    line.done()
    assert log.getvalue().splitlines() == [
        "[milp    1.5 s] best 200, bound 150, gap 25.0% (LP rounding's schedule)",
        "[milp    1.5 s] no schedule yet",
    ]
    assert "\r" not in log.getvalue()


def _interrupt_at(phase: str, events: list[SolveProgress]):
    """A progress function that records events and raises KeyboardInterrupt at the first whose message starts with ``phase``."""

    def progress(event: SolveProgress) -> None:
        events.append(event)
        if event.message.startswith(phase):
            raise KeyboardInterrupt

    return progress


@pytest.fixture(scope="module")
def tight_problem():
    from graphc.remat.problem import budget_lower_bound, store_all_peak

    flow = _training_flow(depth=4, width=8, batch=16)
    problem, _, _ = remat.remat_problem(flow, 0)
    low, high = budget_lower_bound(problem), store_all_peak(problem)
    return replace(problem, budget=int(low + (high - low) * 0.6))


def test_ctrl_c_in_the_local_search_keeps_the_best_schedule_so_far(tight_problem):
    from graphc.remat.rounding import solve_lp_rounding

    events: list[SolveProgress] = []
    solution = solve_lp_rounding(tight_problem, time_limit=5.0, progress=_interrupt_at("rounded", events))
    assert solution.interrupted and solution.status == "feasible"
    assert solution.peak <= tight_problem.budget and solution.cost == events[-2].objective
    assert any(e.message.startswith("LP relaxation") and e.bound is not None for e in events)


def test_ctrl_c_during_the_milp_keeps_the_rounding_schedule(tight_problem):
    from graphc.remat.exact import solve_milp

    events: list[SolveProgress] = []
    solution = solve_milp(tight_problem, time_limit=2.0, progress=_interrupt_at("MILP:", events))
    assert solution.interrupted and solution.status == "feasible" and solution.peak <= tight_problem.budget
    assert [e.solver for e in events] == ["milp"] * len(events)
    assert "LP rounding's schedule" in [e.message for e in events]


def test_ctrl_c_while_the_child_process_solves_stops_it(monkeypatch):
    from graphc.remat import highs

    monkeypatch.setattr(highs, "HEARTBEAT_SECONDS", 0.05)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    beats: list[float] = []

    def heartbeat(seconds: float) -> None:
        beats.append(seconds)
        if len(beats) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        highs._wait_for_child(child, 30.0, heartbeat)
    assert child.poll() is not None  # killed, not left running
    assert highs._wait_for_child(subprocess.Popen([sys.executable, "-c", "pass"]), 30.0, None)


SIGINT_SCRIPT = textwrap.dedent("""
    import graphc as gc
    from graphc import zoo
    g, v = zoo.residual_mlp(depth=6, width=16, batch=64)
    outputs = zoo.training_outputs(v)
    store_all = gc.compile(outputs, bind=False).memory.planned_bytes
    prog = gc.compile(outputs, remat="optimal", memory_budget=int(store_all * 0.45), time_limit=60, progress=True,
                      bind=False)
    print("STATUS", prog.remat.solver_status)
    print("FITS", prog.remat.planned_bytes <= int(store_all * 0.45))
    print(prog.remat)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_sigint_during_a_long_solve_ends_the_compile_with_the_best_schedule():
    """A compile whose solve takes its whole 60 s (the LP rounding finds nothing, the MILP times out)
    gets SIGINT once the solver has started: it ends at once with a program whose report says
    "interrupted" and whose schedule (revolve's) fits."""
    env = {**os.environ, "PYTHONPATH": str(Path(gc.__file__).parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        before = []  # what the child writes before the solver's first progress line
        while not (line := child.stderr.readline()).startswith(("[milp", "[lp-rounding", "[cpsat")):
            assert line, "".join(before)  # the child ended without starting a solve
            before.append(line)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert "STATUS interrupted" in out and "FITS True" in out and "interrupted by Ctrl-C" in out
    assert "interrupted: keeping the best schedule so far" in err


# --- the command --------------------------------------------------------------------------


STEP = """
import graphc as gc
from graphc import zoo

def train_step():
    g, v = zoo.residual_mlp(depth=3, width=8, batch=16)
    return zoo.training_outputs(v)
"""


def test_plan_with_optimal_shows_progress_and_prints_the_remat_report(tmp_path, capsys):
    step = tmp_path / "step.py"
    step.write_text(STEP)
    flow_budget = 3_000  # between the least feasible budget (1,408 B) and store-all (4,480 B)
    code = cli.main(["plan", f"{step}:train_step", "--remat", "optimal", "--budget", str(flow_budget),
                     "--solver", "milp", "--time-limit", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "time limit 2 s" in err and "remat='optimal':" in err
    assert "[milp" in err and "solver milp: " in err


@pytest.mark.parametrize("option, value, message", [
    ("--solver", "gurobi", "--solver 'gurobi' is not a recompute solver; choose one of auto, milp, cpsat"),
    ("--time-limit", "0", "--time-limit 0.0 must be a number of seconds > 0"),
    ("--time-limit", "nan", "--time-limit nan must be a number of seconds > 0"),
])
def test_plan_rejects_a_bad_solver_or_time_limit_in_one_line(tmp_path, capsys, option, value, message):
    step = tmp_path / "step.py"
    step.write_text(STEP)
    assert cli.main(["plan", f"{step}:train_step", "--remat", "optimal", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
