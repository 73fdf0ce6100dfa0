"""``prog.to_source()``: the plan as one Python module that runs with NumPy alone.

The laws:
- on the zoo's graphs, a conv net and training steps (SGD, Adam), the module, run in a
  fresh interpreter where importing graphc or SciPy fails, gives outputs and updated params
  bit-identical to ``prog.run`` over two runs;
- it keeps the runtime's rules: feeds are copied and never written, params are updated in
  place (a fed or non-contiguous param through a copy), outputs are arrays of their own,
  operand checks and check_numerics raise the runtime's messages and a failed run writes no
  param; an arena is bound once and reused;
- every op of the registry is written as NumPy code (or refused by name when its kernel
  needs SciPy), and the NumPy stand-in for scatter-add's SciPy product computes the same numbers;
- ``graphc export FILE.py:FUNC -o step.py`` writes a module and its params that run.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc import cli, codegen, zoo
from graphc.ops import registered
from graphc.plan import INPUT, OUTPUT, Buffer, Instruction, Plan

ZOO_GRAPHS = {name: zoo.ZOO[name] for name in ("seed", "mlp", "residual", "unet", "attention", "random-100")}
ZOO_GRAPHS["chain-25"] = lambda: zoo.chain(25)  # ZOO's chain-100, shorter: the same instructions, a quarter as many


def _small_cnn(batch: int = 4, dtype: str = "float32"):
    """conv → relu → max_pool → avg_pool → conv (stride 2) → max_pool to 1×1 → conv (3×3 cut to its centre) →
    global_avg_pool → matmul → softmax_cross_entropy."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(8) * 0.1,
        "w2": rng.standard_normal((12, 8, 3, 3)) * 0.2, "b2": rng.standard_normal(12) * 0.1,
        "w3": rng.standard_normal((12, 5)) * 0.3, "w4": rng.standard_normal((12, 12, 3, 3)) * 0.3,
    }
    with gc.Graph("small-cnn") as g:
        x = gc.input("x", (batch, 3, 12, 10), dtype)
        labels = gc.input("labels", (batch,), "int64")
        p = {k: gc.param(k, v.shape, dtype, init=v.astype(dtype)) for k, v in weights.items()}
        h = gc.max_pool2d(gc.relu(gc.conv2d(x, p["w1"], p["b1"], padding=1)), 2)
        h = gc.avg_pool2d(h, 2, stride=1, padding=1)
        h = gc.conv2d(h, p["w2"], p["b2"], stride=2, padding=1)
        h = gc.conv2d(gc.max_pool2d(h, (4, 3)), p["w4"], padding=1)
        loss = gc.softmax_cross_entropy(gc.global_avg_pool(h) @ p["w3"], labels)
    return g, {"loss": loss, "params": list(p.values())}


def _gradients(name: str):
    graph, values = ZOO_GRAPHS[name]()
    return graph, gc.compile(zoo.training_outputs(values))


def _step(build, optimizer: str):
    graph, values = build()
    loss, params = values["loss"], values["params"]
    updates = gc.sgd(loss, params, 0.05) if optimizer == "sgd" else gc.optim.adam(loss, params, lr=1e-2)
    return graph, gc.compile(loss, updates=updates)


STEPS = {
    "mlp+sgd": lambda: _step(lambda: zoo.mlp(8, (6, 7, 3), dtype="float64"), "sgd"),
    "residual+adam": lambda: _step(lambda: zoo.residual_mlp(3, width=6, batch=4, classes=3), "adam"),
    "attention+adam": lambda: _step(lambda: zoo.attention(seq=8, dim=8, heads=2), "adam"),
    "cnn+adam": lambda: _step(_small_cnn, "adam"),
    "gpt2+adam": lambda: _step(lambda: zoo.gpt2(batch=2, layers=1, width=16, heads=2, context=8, vocab=50), "adam"),
}
"""Training steps: the loss, with the updates compiled in (gpt2: embedding, layer norm, gelu, scatter-add)."""


def _namespace(prog: Any) -> dict[str, Any]:
    """The module of ``prog.to_source()``, executed in a namespace of its own."""
    namespace: dict[str, Any] = {"__name__": "generated"}
    exec(compile(prog.to_source(), "<generated>", "exec"), namespace)
    return namespace


def _stored(graph: gc.Graph, prog: Any) -> dict[str, np.ndarray]:
    return {name: graph.params[name].data.copy() for name in prog.plan.params}


def _listed(result: Any) -> list[np.ndarray]:
    return [result] if isinstance(result, np.ndarray) else result


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, **{f"a{k}": v for k, v in enumerate(arrays.values())}, names=np.array(list(arrays), dtype=str))


# --- the module runs with NumPy alone, bit for bit ----------------------------------------------------

NUMPY_ALONE = r'''
import importlib.abc, importlib.util, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("graphc", "scipy"):
            raise ImportError(f"{name} is refused here: the module must run with NumPy alone")
        return None

sys.meta_path.insert(0, Refuse())
import numpy as np

def load(path):
    with np.load(path) as f:
        return {str(n): f[f"a{k}"] for k, n in enumerate(f["names"])}

for case in json.load(open("cases.json")):
    spec = importlib.util.spec_from_file_location(f"generated_{len(sys.modules)}", f"{case}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = load(f"{case}.params.npz")
    listed = lambda result: [result] if isinstance(result, np.ndarray) else result
    first = listed(module.run(load(f"{case}.feeds1.npz"), params))
    kept = [np.array(a, copy=True) for a in first]
    second = listed(module.run(load(f"{case}.feeds2.npz"), params))
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, kept)), "a run changed an earlier output"
    np.savez(f"{case}.out.npz", *first, *second, *params.values())
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("graphc", "scipy"))
assert not leaked, leaked
print("ran", len(json.load(open("cases.json"))), "modules")
'''


ALLOWED = {"base64", "math", "zlib", "numpy"}
"""What a module may import."""


def test_modules_run_with_numpy_alone_and_match_the_runtime_bit_for_bit(tmp_path):
    builds = {f"grad-{name}": (lambda name=name: _gradients(name)) for name in ZOO_GRAPHS}
    builds.update(STEPS)
    expected = {}
    for case, build in builds.items():
        graph, prog = build()
        feeds = [zoo.feeds(graph, seed=0), zoo.feeds(graph, seed=1)]
        params = _stored(graph, prog)
        source = prog.to_source()
        tree = ast.parse(source)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert {name.split(".")[0] for name in imported} <= ALLOWED, (case, imported)
        (tmp_path / f"{case}.py").write_text(source)
        _save(tmp_path / f"{case}.feeds1.npz", feeds[0])
        _save(tmp_path / f"{case}.feeds2.npz", feeds[1])
        _save(tmp_path / f"{case}.params.npz", params)
        outputs = [a for f in feeds for a in _listed(prog.run(f))]
        expected[case] = outputs + [graph.params[name].data for name in params]
    (tmp_path / "cases.json").write_text(json.dumps(list(builds)))
    done = subprocess.run([sys.executable, "-c", NUMPY_ALONE], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for case, arrays in expected.items():
        with np.load(tmp_path / f"{case}.out.npz") as got:
            assert len(got.files) == len(arrays), case
            for k, want in enumerate(arrays):
                np.testing.assert_array_equal(got[f"arr_{k}"], want, err_msg=f"{case}: array {k}")
                assert got[f"arr_{k}"].dtype == want.dtype


def test_the_source_is_a_function_of_the_plan_alone(tmp_path):
    """A saved and loaded program writes the very same module."""
    _, prog = STEPS["mlp+sgd"]()
    prog.save(tmp_path / "step.npz")
    assert gc.load(tmp_path / "step.npz").to_source() == prog.to_source()


# --- the runtime's rules ---------------------------------------------------------------------------------


def _mlp_step():
    graph, prog = STEPS["mlp+sgd"]()
    return graph, prog, _namespace(prog), _stored(graph, prog), zoo.feeds(graph)


def test_a_passed_arena_is_bound_once_and_reused_and_none_allocates_one():
    graph, prog, module, params, feeds = _mlp_step()
    mine = {name: a.copy() for name, a in params.items()}
    arena = module["new_arena"]()
    assert arena.nbytes == prog.plan.arena_bytes == module["ARENA_BYTES"] and arena.ctypes.data % 64 == 0
    first = module["run"](feeds, params, arena)
    binding = module["_binding"](arena)
    second = module["run"](feeds, params, arena)
    assert module["_binding"](arena) is binding  # the views were made once
    expected = [prog.run(feeds), prog.run(feeds)]
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_array_equal(second, expected[1])
    for out in (first, second):
        assert not np.shares_memory(out, arena)
    own = module["run"](feeds, mine)  # arena=None: the module's own, allocated once
    kept = module["_own"][0]
    module["run"](feeds, mine)
    assert module["_own"][0] is kept
    np.testing.assert_array_equal(own, expected[0])
    with pytest.raises(ValueError, match=r"arena: expected a writable C-contiguous NumPy array of at least"):
        module["run"](feeds, mine, np.empty(max(prog.plan.arena_bytes - 8, 0), np.uint8))
    wide = np.empty(prog.plan.arena_bytes // 8 + 1, np.float64)  # any dtype, enough bytes
    module["run"](feeds, mine, wide)


def test_outputs_are_arrays_of_their_own_and_feeds_are_copied_never_written():
    graph, prog = _gradients("residual")
    module = _namespace(prog)
    feeds = zoo.feeds(graph)
    for array in feeds.values():
        array.flags.writeable = False
    before = {k: v.copy() for k, v in feeds.items()}
    params = _stored(graph, prog)
    first = module["run"](feeds, params)
    kept = [a.copy() for a in first]
    module["run"](zoo.feeds(graph, seed=3), params)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
        assert a.base is None or a.base is not module["_own"][0]
    for k in feeds:
        np.testing.assert_array_equal(feeds[k], before[k])


def test_params_are_updated_in_place_as_the_stored_params_are():
    graph, prog, module, params, feeds = _mlp_step()
    arrays = dict(params)
    for _ in range(2):
        loss = module["run"](feeds, params)
        np.testing.assert_array_equal(loss, prog.run(feeds))
    for name, array in params.items():
        assert array is arrays[name]
        np.testing.assert_array_equal(array, graph.params[name].data)


def test_a_fed_param_is_read_from_the_feed_and_its_update_written_into_params():
    graph, prog, module, params, feeds = _mlp_step()
    name = prog.plan.updated_params[0]
    fed = np.full_like(params[name], 0.125)
    fed_copy = fed.copy()
    got = module["run"]({**feeds, name: fed}, params)
    np.testing.assert_array_equal(got, prog.run({**feeds, name: fed}))
    np.testing.assert_array_equal(fed, fed_copy)  # the feed is not written
    for key in params:
        np.testing.assert_array_equal(params[key], graph.params[key].data)


def test_a_non_contiguous_param_is_copied_and_its_update_written_back():
    graph, prog, module, params, feeds = _mlp_step()
    fortran = {name: np.asfortranarray(a) for name, a in params.items()}
    assert any(not a.flags.c_contiguous for a in fortran.values())
    np.testing.assert_array_equal(module["run"](feeds, fortran), prog.run(feeds))
    for name in fortran:
        np.testing.assert_array_equal(fortran[name], graph.params[name].data)


def test_a_single_output_is_returned_as_an_array_and_a_list_as_a_list():
    graph, prog, module, params, feeds = _mlp_step()
    assert isinstance(module["run"](feeds, params), np.ndarray)
    graph, prog = _gradients("seed")
    got = _namespace(prog)["run"](zoo.feeds(graph), _stored(graph, prog))
    assert isinstance(got, list) and len(got) == len(prog.plan.outputs)


@pytest.mark.parametrize("mistake, message", [
    (lambda feeds, params: ({k: v for k, v in feeds.items() if k != "x"}, params), r"input 'x' .* is needed but was not fed"),
    (lambda feeds, params: ({**feeds, "nope": 1.0}, params), r"feed 'nope' names no input or param of the graph"),
    (lambda feeds, params: ({**feeds, "x": feeds["x"].astype(np.float32)}, params), r"feed 'x' .* has dtype float32"),
    (lambda feeds, params: ({**feeds, "x": feeds["x"][:2]}, params), r"feed 'x' .* has shape \(2, 6\)"),
    (lambda feeds, params: (feeds, {k: v for k, v in params.items() if k != "W1"}), r"param 'W1' .* give its array"),
    (lambda feeds, params: (feeds, {**params, "W1": params["W1"].T.copy()}), r"param 'W1': the array in params is"),
])
def test_bad_feeds_and_params_are_errors_and_write_nothing(mistake, message):
    graph, prog, module, params, feeds = _mlp_step()
    before = {k: v.copy() for k, v in params.items()}
    bad_feeds, bad_params = mistake(feeds, params)
    with pytest.raises(ValueError, match=message):
        module["run"](bad_feeds, bad_params)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_a_read_only_param_the_run_updates_is_an_error():
    graph, prog, module, params, feeds = _mlp_step()
    params["W1"].flags.writeable = False
    with pytest.raises(ValueError, match=r"param 'W1': the run updates it, but its array is read-only"):
        module["run"](feeds, params)


@pytest.mark.parametrize("bad", [-1, 3])
def test_labels_out_of_range_raise_the_runtimes_message_before_any_update(bad):
    graph, values = zoo.mlp(4, (5, 3), dtype="float64")
    prog = gc.compile(values["loss"], updates=gc.sgd(values["loss"], values["params"], 0.1))
    module = _namespace(prog)
    params = _stored(graph, prog)
    before = {k: v.copy() for k, v in params.items()}
    feeds = {**zoo.feeds(graph), "y": np.array([0, 2, bad, 1])}
    with pytest.raises(gc.GraphError) as expected:
        prog.run(feeds)
    with pytest.raises(ValueError) as got:
        module["run"](feeds, params)
    assert str(got.value) == str(expected.value)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_check_numerics_raises_the_runtimes_message_and_puts_the_params_back():
    with gc.Graph("numerics") as g:
        x = gc.input("x", (3,), "float64")
        w = gc.param("w", (3,), "float64", init=np.array([1.0, 2.0, 3.0]))
        loss = gc.sum(gc.log(x * w))
    prog = gc.compile(loss, updates=gc.sgd(loss, [w], 0.1), check_numerics=True)
    module = _namespace(prog)
    params = _stored(g, prog)
    good = {"x": np.array([1.0, 2.0, 3.0])}
    np.testing.assert_array_equal(module["run"](good, params), prog.run(good))
    before = params["w"].copy()
    bad = {"x": np.array([1.0, -2.0, 3.0])}
    with pytest.raises(gc.GraphError) as expected, np.errstate(invalid="ignore"):
        prog.run(bad)
    with pytest.raises(ValueError) as got, np.errstate(invalid="ignore"):
        module["run"](bad, params)
    assert str(got.value) == str(expected.value) and "check_numerics" in str(got.value)
    np.testing.assert_array_equal(params["w"], before)


def test_recomputed_values_and_outputs_that_are_params_or_their_views_match():
    """A √n schedule of an Adam step (recompute instructions), and outputs that read a param the run updates."""
    graph, values = zoo.chain(12, width=6, batch=4, dtype="float64")
    w = values["params"][0]
    prog = gc.compile([values["loss"], w, gc.transpose(w), w[1:3]], remat="sqrt",
                      updates=gc.optim.adam(values["loss"], values["params"], lr=1e-2))
    assert any(ins.tag == "recompute" for ins in prog.plan.instructions)
    module, params = _namespace(prog), _stored(graph, prog)
    for seed in range(2):
        feeds = zoo.feeds(graph, seed=seed)
        for a, b in zip(module["run"](feeds, params), prog.run(feeds)):
            np.testing.assert_array_equal(a, b)
    for name in params:
        np.testing.assert_array_equal(params[name], graph.params[name].data)


def test_a_program_whose_batch_size_varies_says_to_write_one_size():
    with gc.Graph("batched"):
        x = gc.input("x", (None, 3))
        w = gc.param("w", (3, 2))
        loss = gc.sum(x @ w)
    prog = gc.compile(loss)
    with pytest.raises(gc.GraphError, match=r"prog.specialize\(size\).to_source\(\)"):
        prog.to_source()
    module: dict[str, Any] = {}
    exec(prog.specialize(4).to_source(), module)
    feeds = {"x": np.ones((4, 3), np.float32)}
    np.testing.assert_array_equal(module["run"](feeds, {"w": w.value}), prog.run(feeds))


# --- every op, and the kernels that cannot be written ----------------------------------------------------------


def _every_op_programs():
    """One small program per registered op (the first case of tests/test_ops.py), forward and gradient,
    unsimplified (a float64 cast of float64 operands is no instruction once simplified)."""
    import test_ops

    seen: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for case in test_ops.CASES:
        if case.op in seen:
            continue
        graph, xs, y, arrays = test_ops._build(case, "float64", rng)
        wrt = [x for x, a in zip(xs, case.args) if a.is_float]
        grads = gc.grad(gc.sum(y * y) if y.shape else y, wrt) if wrt else []
        seen[case.op] = (gc.compile([y, *grads], simplify=False), test_ops._feeds(xs, arrays), graph)
    return seen


NEEDS_SCIPY = {"erf": "scipy.special", "gelu": "scipy.special"}
"""Ops whose kernels call SciPy with no NumPy stand-in (gelu: with approximate='none')."""

NEEDS_NUMEXPR = {"fused": "numexpr"}
"""Ops whose kernels are another library's by design: compile(fuse=True)'s chains (tests/test_fusion.py)."""


def _add_n_program():
    """A plan of one add_n of three terms (the passes turn add_n into a running sum; a plan written by hand
    or loaded from a file may hold one)."""
    buffers = [Buffer(k, f"t{k}", (2, 3), "float64", INPUT) for k in range(3)] + [Buffer(3, "total", (2, 3), "float64", OUTPUT)]
    plan = Plan("add_n", buffers, [Instruction("add_n", 3, (0, 1, 2))], [3], {}, 0)
    rng = np.random.default_rng(0)
    return gc.Program(plan), {f"t{k}": rng.standard_normal((2, 3)) for k in range(3)}, gc.Graph("none")


def test_every_op_is_written_as_numpy_code_or_refused_by_name():
    programs = _every_op_programs()
    programs["add_n"] = _add_n_program()
    covered = set()
    for op, (prog, feeds, graph) in programs.items():
        if op in NEEDS_SCIPY:
            with pytest.raises(gc.GraphError, match=rf"op '{op}'.* imports {NEEDS_SCIPY[op]}"):
                prog.to_source()
            continue
        module = _namespace(prog)
        got = module["run"](feeds, _stored(graph, prog))
        for a, b in zip(got, prog.run(feeds)):
            np.testing.assert_array_equal(a, b, err_msg=op)
        covered |= {ins.op for ins in prog.plan.instructions}
    missing = {name for name, prim in registered().items() if prim.trusted} - covered - set(NEEDS_SCIPY) - set(NEEDS_NUMEXPR)
    assert not missing, f"ops no program here writes: {sorted(missing)}"


def test_gelu_with_tanh_keeps_only_its_branch():
    with gc.Graph("gelu") as g:
        x = gc.input("x", (4, 5), "float64")
        y = gc.gelu(x, approximate="tanh")
    prog = gc.compile(y)
    source = prog.to_source()
    assert "scipy" not in source and "approximate='tanh': the branches other values take are dropped" in source
    feeds = {"x": np.linspace(-8, 8, 20).reshape(4, 5)}
    np.testing.assert_array_equal(_namespace(prog)["run"](feeds, {}), prog.run(feeds))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_numpy_stand_in_for_the_sparse_scatter_adds_the_same_numbers(dtype):
    from graphc.ops.indexing import _scatter_rows

    namespace: dict[str, Any] = {"np": np}
    exec(codegen.STAND_INS["graphc.ops.indexing._scatter_rows"][1], namespace)
    rng = np.random.default_rng(2)
    g = (rng.standard_normal((700, 16)) * 10.0 ** rng.integers(-6, 6, (700, 1))).astype(dtype)
    indices = rng.integers(-9, 9, (35, 20))  # repeats, and negative ones
    want, got = np.empty((9, 16), dtype), np.full((9, 16), np.nan, dtype)
    _scatter_rows(want, g, indices)
    namespace["_scatter_rows"](got, g, indices)
    np.testing.assert_array_equal(got, want)


def test_an_embedding_step_that_takes_the_sparse_path_matches_bit_for_bit():
    with gc.Graph("embedding") as g:
        tokens = gc.input("tokens", (512,), "int64")
        weight = gc.param("weight", (50, 16), "float32")
        target = gc.input("target", (512, 16), "float32")
        loss = gc.mse(gc.embedding(tokens, weight), target)
    prog = gc.compile(loss, updates=gc.sgd(loss, [weight], 0.5))
    rng = np.random.default_rng(1)
    feeds = {"tokens": rng.integers(0, 50, 512), "target": rng.standard_normal((512, 16)).astype(np.float32)}
    module, params = _namespace(prog), _stored(g, prog)
    for _ in range(2):
        np.testing.assert_array_equal(module["run"](feeds, params), prog.run(feeds))
    np.testing.assert_array_equal(params["weight"], weight.value)


def test_a_helper_changed_since_its_stand_in_was_written_is_refused(monkeypatch):
    name = "graphc.ops.indexing._scatter_rows"
    monkeypatch.setitem(codegen.STAND_INS, name, ("0" * 16, codegen.STAND_INS[name][1]))
    with gc.Graph("scatter") as g:
        gg = gc.input("g", (4, 3), "float64")
        idx = gc.input("idx", (4,), "int64")
        y = gc.ops.scatter_add(gg, idx, 0, (5, 3))
    with pytest.raises(gc.GraphError, match=r"op 'scatter_add'.*stand-in for graphc.ops.indexing._scatter_rows was "
                                            r"written for another version"):
        gc.compile(y).to_source()


# --- custom ops ------------------------------------------------------------------------------------------------

_SCALE = 3.0


def _scaled(x: np.ndarray) -> np.ndarray:
    return x * _SCALE


def _cube_kernel(out: np.ndarray, x: np.ndarray, offset: float) -> None:
    """out = (3x)³ + offset, through a helper and a module constant."""
    np.power(_scaled(x), 3, out=out)
    np.add(out, offset, out=out)


def _make_closure_kernel(k: float):
    def kernel(out, x):
        np.multiply(x, k, out=out)
    return kernel


def _scipy_kernel(out, x):
    import scipy.special

    scipy.special.expit(x, out=out)


def _custom(name: str, kernel, **attrs):
    op = gc.defop(name, infer=lambda x, **a: x, kernel=kernel, replace=True)
    with gc.Graph(name):
        x = gc.input("x", (3, 4), "float64")
        y = op(x, **attrs)
    return gc.compile(y)


def test_custom_ops_are_copied_or_inlined_or_refused_naming_the_op():
    feeds = {"x": np.linspace(-1, 1, 12).reshape(3, 4)}
    for prog in (_custom("codegen_cube", _cube_kernel, offset=0.5),
                 _custom("codegen_twice", lambda out, x: np.multiply(x, 2.0, out=out))):
        np.testing.assert_array_equal(_namespace(prog)["run"](feeds, {}), prog.run(feeds))
    source = _custom("codegen_cube", _cube_kernel, offset=0.5).to_source()
    assert "def _cube_kernel(" in source and "def _scaled(" in source and "_SCALE = 3.0" in source
    assert "np.multiply(b0, 2.0, b1)" in _custom("codegen_twice", lambda out, x: np.multiply(x, 2.0, out=out)).to_source()
    with pytest.raises(gc.GraphError, match=r"op 'codegen_closure'.* is a closure \(it reads k"):
        _custom("codegen_closure", _make_closure_kernel(2.0)).to_source()
    with pytest.raises(gc.GraphError, match=r"op 'codegen_scipy'.* imports scipy.special"):
        _custom("codegen_scipy", _scipy_kernel).to_source()


def _with_ufunc(ufunc):
    """A kernel that calls ``ufunc`` from its closure (the ufunc is found there, not by name)."""
    return lambda out, a, b: ufunc(a, b, out=out)


def test_a_ufunc_writes_its_output_positionally_where_numpy_takes_it_so_without_a_warning():
    """``np.add(a, b, out=out)`` is inlined as ``np.add(b0, b1, b2)``, also from a closure's cell;
    ``np.maximum`` keeps ``out=`` (NumPy 2.4 deprecates its third positional argument), and so do
    calls with another keyword, an ``out`` that is not the kernel's first operand, or ``*`` operands."""
    module = codegen._Module()
    assert module.call(_with_ufunc(np.add), ["b2", "b0", "b1"], {}) == "np.add(b0, b1, b2)"
    assert module.call(lambda out, x: np.tanh(x, out=out), ["b1", "b0"], {}) == "np.tanh(b0, b1)"
    assert module.call(_with_ufunc(np.maximum), ["b2", "b0", "b1"], {}) == "np.maximum(b0, b1, out=b2)"
    assert module.call(lambda out, x: np.add(x, 1, out=out, casting="unsafe"), ["b1", "b0"], {}) == \
        "np.add(b0, 1, out=b1, casting='unsafe')"
    assert module.call(lambda x, out: np.add(x, 1, out=out), ["b0", "b1"], {}) == "np.add(b0, 1, out=b1)"
    assert module.call(lambda out, *xs: np.add(*xs, out=out), ["b2", "b0", "b1"], {}) == "np.add(*(b0, b1), out=b2)"
    assert not codegen._takes_positional_out(np.minimum) and codegen._takes_positional_out(np.matmul)
    with gc.Graph("positional-out"):
        a = gc.input("a", (3, 4), "float32")
        b = gc.input("b", (3, 4), "float32")
        y = gc.sum(gc.maximum(a, b) * gc.tanh(a) + gc.relu(b))
    prog = gc.compile([y, *gc.grad(y, [a, b])])
    rng = np.random.default_rng(5)
    feeds = {"a": rng.standard_normal((3, 4), np.float32), "b": rng.standard_normal((3, 4), np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning from a positional out of np.maximum
        got, want = _namespace(prog)["run"](feeds, {}), prog.run(feeds)
    for x, w in zip(got, want):
        np.testing.assert_array_equal(x, w)


def test_constants_are_exact_literals_when_small_and_bytes_when_large():
    assert [eval(codegen.literal(v)) for v in (0.1, -0.0, 1e-300)] == [0.1, -0.0, 1e-300]
    assert str(eval(codegen.literal(-0.0))) == "-0.0"
    assert np.isnan(eval(codegen.literal(float("nan")))) and eval(codegen.literal(float("-inf"))) == -np.inf
    small = np.array([0.1, np.inf, -np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(eval(codegen.literal(small), {"np": np}), small)
    with gc.Graph("constants"):
        x = gc.input("x", (300,), "float32")
        bound = np.where(np.arange(300) % 7 == 0, 50.0, np.inf).astype(np.float32)
        y = gc.minimum(x * np.linspace(-1, 1, 300).astype(np.float32), bound)
    prog = gc.compile(gc.sum(y * y))
    assert "_array(" in prog.to_source()
    feeds = {"x": np.arange(300, dtype=np.float32)}
    np.testing.assert_array_equal(_namespace(prog)["run"](feeds, {}), prog.run(feeds))


# --- graphc export -o step.py ----------------------------------------------------------------------------------

STEP_FILE = """
import graphc as gc
from graphc import zoo

def train_step():
    g, v = zoo.mlp(8, (6, 7, 3))
    return [v["loss"]], gc.optim.adam(v["loss"], v["params"], lr=1e-2)
"""


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_writes_a_module_and_its_params_that_run(tmp_path, capsys):
    (tmp_path / "step.py").write_text(STEP_FILE)
    out = tmp_path / "out" / "mlp_step.py"
    assert cli.main(["export", f"{tmp_path / 'step.py'}:train_step", "-o", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".npz"))]
    module = _import(out)
    params = module.load_params()
    g, v = zoo.mlp(8, (6, 7, 3))
    prog = gc.compile([v["loss"]], updates=gc.optim.adam(v["loss"], v["params"], lr=1e-2))
    assert set(params) == set(prog.plan.params)
    for _ in range(2):
        feeds = zoo.feeds(g)
        np.testing.assert_array_equal(module.run(feeds, params), prog.run(feeds))
    also = tmp_path / "also.py"
    assert cli.main(["export", f"{tmp_path / 'step.py'}:train_step", "--python", str(also)]) == 0
    assert also.read_text() == out.read_text()


def test_export_names_the_suffixes_it_knows(tmp_path, capsys):
    (tmp_path / "step.py").write_text(STEP_FILE)
    assert cli.main(["export", f"{tmp_path / 'step.py'}:train_step", "-o", str(tmp_path / "step.txt")]) == 2
    assert "-o " in capsys.readouterr().err
