"""benchmarks/speed.py: every implementation of a training step agrees with graphc.

Only the check that runs before any timing is tested here (loss and every
gradient against graphc's, on small workloads); no time is measured or asserted.
The JAX and PyTorch cases are skipped where those are not installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from graphc import models, zoo

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"


def _load_speed():
    spec = importlib.util.spec_from_file_location("benchmarks_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


speed = _load_speed()

WORKLOADS = [
    speed.Workload("mlp-tanh", "mlp", lambda: zoo.mlp(8, (6, 7, 5, 4)), {"activation": "tanh"}),
    speed.Workload("mlp-relu", "mlp", lambda: zoo.mlp(8, (6, 7, 4), activation="relu"), {"activation": "relu"}),
    speed.Workload("chain", "chain", lambda: zoo.chain(6, width=8, batch=4)),
    speed.Workload("attention-1h", "attention", lambda: zoo.attention(seq=6, dim=8)),
    speed.Workload("attention-2h", "attention", lambda: zoo.attention(seq=6, dim=8, heads=2), {"heads": 2}),
]

MODEL_WORKLOADS = [
    speed.Workload("resnet18", "resnet18", lambda: models.resnet18(batch=4, image=32, classes=10, width=1 / 8)),
    speed.Workload("gpt2", "gpt2", lambda: models.gpt2(batch=2, layers=2, width=16, heads=2, context=8, vocab=11),
                   {"layers": 2, "heads": 2}),
]


def _require(implementation: str) -> None:
    if implementation in ("jax", "torch"):
        pytest.importorskip(implementation)


@pytest.mark.parametrize("implementation", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_implementation_agrees_with_graphc(workload, implementation):
    _require(implementation)
    problem = speed.build(workload)
    impls = speed.implementations(problem, ["graphc", implementation])
    (agreement,) = speed.check(problem, impls)
    assert agreement.implementation == implementation
    assert agreement.mismatched == []
    assert agreement.max_relative < 1e-4


def test_hand_written_numpy_matches_graphc_gradients_array_by_array():
    problem = speed.build(WORKLOADS[2])
    impls = speed.implementations(problem, ["graphc", "numpy"])
    ours, reference = (impls[n].arrays(impls[n].step()) for n in ("numpy", "graphc"))
    assert len(ours) == 1 + len(problem.param_names)
    for a, b in zip(ours, reference):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_wrong_gradient_is_a_mismatch():
    problem = speed.build(WORKLOADS[2])
    impls = speed.implementations(problem, ["graphc"])
    reference = impls["graphc"].arrays(impls["graphc"].step())
    wrong = [a.copy() for a in reference]
    wrong[3] *= 1.01
    names = ["loss", *problem.param_names]
    worst, mismatched = speed.compare(names, wrong, reference, problem.dtype)
    assert mismatched == [names[3]]
    assert worst == pytest.approx(0.01, rel=1e-3)


def test_main_exits_1_when_an_implementation_disagrees(monkeypatch, tmp_path, capsys):
    correct = speed.NUMPY_STEPS["chain"]

    def off_by_one_percent(params, x, y):
        out = correct(params, x, y)
        out[1] = out[1] * 1.01
        return out

    monkeypatch.setattr(speed, "workloads", lambda quick: [WORKLOADS[2]])
    monkeypatch.setitem(speed.NUMPY_STEPS, "chain", off_by_one_percent)
    assert speed.main(["--quick", "--skip", "jax,torch", "--plot", str(tmp_path / "speed.png")]) == 1
    assert "MISMATCH in W1" in capsys.readouterr().out
    assert not (tmp_path / "speed.png").exists()


def test_only_keeps_the_workloads_whose_name_contains_a_part(capsys):
    full = speed.workloads(quick=False)
    assert [w.name for w in speed.selected(full, "mlp 32×, chain 32×64")] == ["mlp 32×64-128-10", "chain 32×64, batch 16"]
    assert speed.selected(full, "") == full
    with pytest.raises(SystemExit):
        speed.main(["--quick", "--only", "no such workload"])
    assert "--only: 'no such workload' names no workload" in capsys.readouterr().err


def test_repeats_below_one_are_refused(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--quick", "--repeats", "-1"])
    assert "--repeats: -1 must be at least 1" in capsys.readouterr().err


def test_a_missing_framework_is_reported_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    row, impls = speed.prepare(WORKLOADS[2], ["graphc", "numpy", "torch"])
    assert "torch" not in impls
    assert row.absent == {"jax": "skipped", "torch": "not installed"}
    assert "not installed" in speed.format_table([row])


# Not JAX's ResNet-18: XLA compiles its step for ~9 s; the benchmark checks it against graphc before timing.
MODEL_CHECKS = [(w, i) for w in MODEL_WORKLOADS for i in ("numpy", "jax", "torch") if (w.name, i) != ("resnet18", "jax")]


@pytest.mark.parametrize("workload, implementation", MODEL_CHECKS, ids=lambda x: getattr(x, "name", x))
def test_model_implementation_agrees_with_graphc(workload, implementation):
    _require(implementation)
    problem = speed.build(workload)
    impls = speed.implementations(problem, ["graphc", implementation])
    (agreement,) = speed.check(problem, impls)
    assert agreement.mismatched == []
    assert agreement.max_relative < 1e-4
    if implementation == "numpy":  # graphc's own plan as straight-line NumPy: the same kernels, bit for bit
        assert agreement.max_relative == 0.0


def test_overhead_and_gemm_share_are_computed_from_the_medians():
    row = speed.Row("w", instructions=100, flops=2_000_000, agreements=[], setup_ms={},
                    ms={"graphc": 1.5, "numpy": 1.0, "torch": 2.0})
    assert row.overhead_us() == pytest.approx(5.0)  # 0.5 ms over 100 instructions
    assert row.gemm_share("graphc", gflops=2.0) == pytest.approx(2e6 / 1.5e-3 / 2e9)
    assert row.gemm_share("jax", gflops=2.0) is None
    table = speed.format_table([row])
    assert "µs/instr" in table and "0.75" in table  # graphc/torch
    assert "%gemm" in speed.format_gemm([row], 2.0)


def test_jax_thread_flags_are_added_only_before_jax_is_imported(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setitem(sys.modules, "jax", None)  # as if imported already
    assert speed.cap_jax_threads() is False
    monkeypatch.delitem(sys.modules, "jax")
    assert speed.cap_jax_threads() is True
    assert speed.JAX_ONE_THREAD in os.environ["XLA_FLAGS"]
