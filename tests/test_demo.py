"""The demo (graphc.demo) and the reference graphs it runs (graphc.zoo)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import demo, zoo


def _seed_reference(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> dict[str, np.ndarray]:
    """The lecture's DAG and its backward pass, by hand in float64."""
    x, w1, w2 = (a.astype(np.float64) for a in (x, w1, w2))
    x1 = np.tanh(x @ w1)
    s2 = x + x1
    x2 = 1.0 / (1.0 + np.exp(-(s2 @ w2)))
    p3 = x1 * x2
    x3 = p3 @ w1
    g_x3 = 2.0 * x3
    dw1_phi3 = p3.T @ g_x3  # J^T_{φ3|w1} ∂ℓ/∂x3
    g_p3 = g_x3 @ w1.T
    g_z2 = g_p3 * x1 * x2 * (1.0 - x2)
    dw2 = s2.T @ g_z2
    g_x1 = g_p3 * x2 + g_z2 @ w2.T  # two consumers: φ3 and φ2
    dw1_phi1 = x.T @ (g_x1 * (1.0 - x1 * x1))  # J^T_{φ1|w1} ∂ℓ/∂x1
    return {"loss": np.sum(x3 * x3), "dw1": dw1_phi3 + dw1_phi1, "dw2": dw2, "dw1_terms": [dw1_phi3, dw1_phi1]}


# --- zoo -------------------------------------------------------------------------------


def test_seed_dag_names_and_shapes():
    g, v = zoo.seed_dag(batch=5, features=3, dtype="float64")
    assert set(v) == {"x", "w1", "w2", "x1", "x2", "x3", "loss"}
    assert v["x"].shape == (5, 3) and v["w1"].shape == (3, 3) and v["loss"].shape == ()
    assert v["loss"].dtype == np.float64
    assert {v[k].name for k in ("x1", "x2", "x3", "loss")} == {"x1", "x2", "x3", "loss"}
    assert set(g.params) == {"w1", "w2"} and set(g.inputs) == {"x"}
    # w1 is read by two nodes: φ1's matmul and φ3's matmul
    readers = [n.name for n in g.nodes if v["w1"].node in n.inputs]
    assert readers == ["z1", "x3"]


def test_seed_dag_gradients_match_hand_written_backprop():
    g, v = zoo.seed_dag(dtype="float64")
    dw1, dw2 = gc.grad(v["loss"], [v["w1"], v["w2"]])
    x = np.random.default_rng(3).standard_normal((8, 4))
    loss, g1, g2 = gc.compile([v["loss"], dw1, dw2]).run({"x": x})
    ref = _seed_reference(x, v["w1"].value, v["w2"].value)
    np.testing.assert_allclose(loss, ref["loss"], rtol=1e-12)
    np.testing.assert_allclose(g1, ref["dw1"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g2, ref["dw2"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_builds_and_trains_one_step(activation):
    g, v = zoo.mlp(6, sizes=(5, 7, 4, 3), activation=activation)
    assert [p.name for p in v["params"]] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert [p.shape for p in v["params"]] == [(5, 7), (7,), (7, 4), (4,), (4, 3), (3,)]
    assert v["x"].shape == (6, 5) and v["y"].dtype == np.int64
    assert v["logits"].shape == (6, 3) and v["loss"].shape == ()
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((6, 5)).astype(np.float32), "y": rng.integers(0, 3, 6)}
    loss_prog = gc.compile(v["loss"])
    before = loss_prog.run(feeds)
    step = gc.compile([v["loss"]], updates=gc.sgd(v["loss"], v["params"], 0.1))
    (first,) = step.run(feeds)
    assert first == pytest.approx(before)
    assert loss_prog.run(feeds) < before  # the step wrote the stored params that loss_prog reads


def test_mlp_rejects_unknown_activation():
    with pytest.raises(gc.GraphError, match="activation"):
        zoo.mlp(4, activation="swish")


# --- part 1: the lecture's DAG ---------------------------------------------------------


def test_seed_demo_prints_the_slide_sum_next_to_graphc_terms(tmp_path):
    out = io.StringIO()
    values = demo.seed_demo(tmp_path, stream=out)
    text = out.getvalue()
    _, v = zoo.seed_dag()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    ref = _seed_reference(x, v["w1"].value, v["w2"].value)
    for got, want in zip(values["dw1_terms"], ref["dw1_terms"]):  # φ3's term, then φ1's
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values["dw1"], ref["dw1"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values["dw2"], ref["dw2"], rtol=1e-4, atol=1e-5)
    assert "∂ℓ/∂w(1) = J^T_{φ3|w(1)} ∂ℓ/∂x(3) + J^T_{φ1|w(1)} ∂ℓ/∂x(1)" in text
    assert "where x3 = matmul(p3, w1) is part of φ3" in text
    assert "where z1 = matmul(x, w1) is part of φ1" in text
    assert "'dloss/dw1' = add_n(" in text
    for needle in ("plan 'seed'", "memory plan", "lower bound", "cost: forward"):
        assert needle in text
    assert {p.name for p in tmp_path.iterdir()} >= {"seed_plan.txt", "seed_plan.json", "seed_memory.txt"}
    assert gc.Plan.from_json((tmp_path / "seed_plan.json").read_text()).name == "seed"


# --- part 2: the digits ------------------------------------------------------------------


def test_digits_data_and_split():
    features, labels = demo.load_digits()
    assert features.shape == (1797, 64) and features.dtype == np.float32
    assert 0.0 <= features.min() and features.max() <= 1.0
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(10))
    train, test = demo.split(len(features), 0.25, seed=0)
    assert len(test) == 449 and len(train) + len(test) == 1797
    assert not set(train) & set(test)
    np.testing.assert_array_equal(test, demo.split(len(features), 0.25, seed=0)[1])  # fixed seed


def test_accuracy_evaluates_the_whole_split_in_one_run():
    """449 test rows, one run of a program whose batch size is None: no padding, no chunks."""
    _, v = zoo.mlp(None, sizes=(64, 10))
    program = gc.compile(v["logits"])
    features, labels = demo.load_digits()
    features, labels = features[:449], labels[:449]
    W, b = (p.value for p in v["params"])
    expected = np.mean((features @ W + b).argmax(axis=1) == labels)
    assert demo.accuracy(program, features, labels) == pytest.approx(expected)
    assert list(program.specializations) == [449]


def test_training_uses_the_last_partial_batch_of_each_epoch():
    result = demo.train_digits(epochs=1, batch=500)  # 1348 training rows: 500, 500, then 348
    assert result.steps == 3
    assert list(result.train_program.specializations) == [500, 348]


def test_main_quick(tmp_path, capsys):
    assert demo.main(out_dir=tmp_path / "demo", epochs=2) == 0
    text = capsys.readouterr().out
    assert "epoch   2/2" in text and "final test accuracy" in text and "training time" in text
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert written >= {"seed_plan.txt", "seed_memory.txt", "mlp_train_plan.txt", "mlp_memory.txt", "digits_training.txt"}


def _graphc_command() -> str:
    beside = Path(sys.executable).parent / "graphc"
    found = str(beside) if beside.exists() else shutil.which("graphc")
    if found is None:
        pytest.skip("the graphc console script is not installed")
    return found


def test_graphc_demo_command_trains_fully_to_95_percent(tmp_path):
    """The full demo, run once, as a user runs it: every epoch, the loss down fivefold, 95 %."""
    run = subprocess.run([_graphc_command(), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    epochs = [(int(k), int(n), float(loss))
              for k, n, loss in re.findall(r"epoch\s+(\d+)/(\d+) .*? loss ([0-9.]+)", run.stdout)]
    assert [k for k, _, _ in epochs] == list(range(1, demo.EPOCHS + 1))
    assert all(n == demo.EPOCHS for _, n, _ in epochs)
    assert epochs[-1][2] < epochs[0][2] / 5
    assert "final test accuracy" in run.stdout
    accuracy = float(run.stdout.split("final test accuracy")[1].split("%")[0])
    assert accuracy >= 95.0
    assert (tmp_path / "out" / "demo" / "seed_plan.txt").exists()
