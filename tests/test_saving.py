"""Save and load: programs continue training bit for bit; params round-trip; damage is refused.

The laws: a program saved after k steps and loaded runs steps k+1 … k+m exactly
as the program that was never saved (outputs and params, np.array_equal); a
graph's params saved and loaded are the same arrays; a damaged file (truncated,
bytes flipped) either loads and gives exactly the original's results, or raises
GraphError, and a refused params file changes no param. The bad-input cases of
saving (paths, edited files, mismatched names, shapes, dtypes) are catalogued in
tests/bad_input_saving.py.
"""

from __future__ import annotations

import functools
import io
import json
import threading
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import zoo
from graphc.saving import MANIFEST

SIZES = (6, 8, 3)


def _feeds(graph: gc.Graph, steps: int) -> list[dict[str, np.ndarray]]:
    """A different batch for every step, the same at every call."""
    return [zoo.feeds(graph, seed=step) for step in range(steps)]


def _sgd_step(dtype: str) -> tuple[gc.Graph, gc.Program]:
    graph, values = zoo.mlp(4, sizes=SIZES, dtype=dtype)
    loss = values["loss"]
    return graph, gc.compile([loss, values["logits"]], updates=gc.sgd(loss, values["params"], 0.1))


def _momentum_step(dtype: str) -> tuple[gc.Graph, gc.Program]:
    """Heavy-ball momentum written by hand: v ← μ·v + ∂ℓ/∂W, W ← W − η·(μ·v + ∂ℓ/∂W),
    with each velocity a state param."""
    graph, values = zoo.mlp(4, sizes=SIZES, dtype=dtype)
    loss, params = values["loss"], values["params"]
    grads = gc.grad(loss, params)
    updates = {}
    with graph:
        for w, g in zip(params, grads):
            velocity = gc.param(f"v_{w.name}", w.shape, dtype, init=0.0, role="state")
            new_velocity = 0.9 * velocity + g
            updates[velocity] = new_velocity
            updates[w] = w - 0.05 * new_velocity
    return graph, gc.compile(loss, updates=updates)


def _stored(graph: gc.Graph) -> dict[str, np.ndarray]:
    return {name: node.data.copy() for name, node in graph.params.items()}


def _params_of(program: gc.Program) -> dict[str, np.ndarray]:
    """The stored params a program holds now, read back from what it saves."""
    buffer = io.BytesIO()
    program.save(buffer)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if name != MANIFEST}


def _run_all(program: gc.Program, feeds: list[dict[str, np.ndarray]]) -> list:
    return [program.run(f) for f in feeds]


def _assert_same_results(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = (g, w) if isinstance(w, list) else ([g], [w])
        assert len(g) == len(w) and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(g, w))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build", [_sgd_step, _momentum_step], ids=["sgd", "momentum"])
def test_loaded_program_continues_training_bit_identically(build, dtype, tmp_path):
    k, m = 3, 4
    graph, uninterrupted = build(dtype)
    feeds = _feeds(graph, k + m)
    want = _run_all(uninterrupted, feeds)
    want_params = _stored(graph)

    graph, interrupted = build(dtype)
    got = _run_all(interrupted, feeds[:k])
    interrupted.save(tmp_path / "step.npz")
    loaded = gc.load(tmp_path / "step.npz")
    params_at_save = _stored(graph)
    got += _run_all(loaded, feeds[k:])

    _assert_same_results(got, want)
    got_params = _params_of(loaded)
    assert got_params.keys() == want_params.keys()
    for name, array in want_params.items():
        assert np.array_equal(got_params[name], array) and got_params[name].dtype == array.dtype, name
        assert np.array_equal(graph.params[name].data, params_at_save[name]), "the loaded program wrote the graph"


def test_loaded_program_is_a_program_with_the_same_plan_and_cost(tmp_path):
    _, program = _momentum_step("float64")
    program.save(tmp_path / "p.npz")
    loaded = gc.load(tmp_path / "p.npz")
    assert isinstance(loaded, gc.Program)
    assert loaded.plan == program.plan and str(loaded.plan) == str(program.plan)
    assert loaded.cost == program.cost
    assert loaded.memory is None and loaded.remat is None


def test_saved_file_is_an_npz_numpy_reads_by_param_name(tmp_path):
    graph, program = _momentum_step("float32")
    program.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted([MANIFEST, *graph.params])
        for name, node in graph.params.items():
            assert np.array_equal(npz[name], node.data) and npz[name].dtype == node.dtype
        manifest = json.loads(npz[MANIFEST].tobytes())
    assert (manifest["format"], manifest["version"], manifest["returns"]) == ("graphc-program", 1, "array")
    assert {e["name"]: e["role"] for e in manifest["params"]} == {n: node.role for n, node in graph.params.items()}


def test_param_roles_are_saved_and_kept_by_a_loaded_program(tmp_path):
    graph, program = _momentum_step("float64")
    program.save(tmp_path / "p.npz")
    loaded = gc.load(tmp_path / "p.npz")
    assert loaded.state.keys() == program.state.keys() == {n for n in graph.params if n.startswith("v_")}
    loaded.save(tmp_path / "again.npz")
    with np.load(tmp_path / "again.npz") as npz:
        roles = {e["name"]: e["role"] for e in json.loads(npz[MANIFEST].tobytes())["params"]}
    assert roles == {name: "state" if name.startswith("v_") else "param" for name in graph.params}


@pytest.mark.parametrize("single", [True, False], ids=["array", "list"])
def test_program_without_params_round_trips_and_returns_as_saved(single, tmp_path):
    with gc.Graph("no-params") as graph:
        x = gc.input("x", (3, 2), "float64")
        gc.input("unused", (1,), "float64")
        y = gc.tanh(x) * 2.0
    program = gc.compile(y if single else [y])
    program.save(tmp_path / "p.npz")
    loaded = gc.load(tmp_path / "p.npz")
    feeds = {"x": np.linspace(-1, 1, 6).reshape(3, 2), "unused": np.zeros(1)}  # fed but not needed: accepted
    got, want = loaded.run(feeds), program.run(feeds)
    assert isinstance(got, np.ndarray) == single
    _assert_same_results([got], [want])
    assert loaded.plan.params == {}


def test_zero_dimensional_param_keeps_its_shape_through_a_saved_program():
    with gc.Graph("temperature") as graph:
        x = gc.input("x", (2, 3), "float64")
        t = gc.param("t", (), "float64", init=2.0)
        loss = gc.sum(gc.softmax(x * t, axis=1) * x)
    (dt,) = gc.grad(loss, [t])
    program = gc.compile([loss, dt], updates={t: t - 0.5 * dt})
    feeds = {"x": np.arange(6.0).reshape(2, 3) / 5}
    program.run(feeds)
    buffer = io.BytesIO()
    program.save(buffer)
    loaded = gc.load(io.BytesIO(buffer.getvalue()))
    assert _params_of(loaded)["t"].shape == ()
    _assert_same_results(_run_all(loaded, [feeds] * 2), _run_all(program, [feeds] * 2))


def test_save_and_load_through_file_objects():
    graph, program = _sgd_step("float64")
    buffer = io.BytesIO()
    program.save(buffer)
    loaded = gc.load(io.BytesIO(buffer.getvalue()))
    feeds = _feeds(graph, 2)
    _assert_same_results(_run_all(loaded, feeds), _run_all(program, feeds))


def test_save_replaces_an_existing_file_and_leaves_no_temporary(tmp_path):
    graph, program = _sgd_step("float64")
    path = tmp_path / "p.npz"
    path.write_bytes(b"an older file")
    program.save(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]
    gc.load(str(path))


def test_check_numerics_is_saved_and_can_be_overridden(tmp_path):
    _, program = _sgd_step("float64")
    program.check_numerics = True
    program.save(tmp_path / "p.npz")
    assert gc.load(tmp_path / "p.npz").check_numerics is True
    assert gc.load(tmp_path / "p.npz", check_numerics=False).check_numerics is False


def test_save_holds_the_params_of_one_step_while_a_training_run_waits():
    """A run with updates that starts while the file is written waits for it: the file holds the
    params before that run, consistent with their digests, and the run happens after."""
    graph, program = _sgd_step("float64")
    before = _stored(graph)
    runner = threading.Thread(target=program.run, args=(_feeds(graph, 1)[0],))

    class RunDuringWrite(io.BytesIO):
        def write(self, data: bytes) -> int:
            if not runner.is_alive() and runner.ident is None:
                runner.start()
                runner.join(timeout=0.5)  # long enough for the tiny step, were it not held back
            return super().write(data)

    file = RunDuringWrite()
    program.save(file)
    runner.join()
    saved = _params_of(gc.load(io.BytesIO(file.getvalue())))
    assert all(np.array_equal(saved[name], array) for name, array in before.items())
    assert not np.array_equal(graph.params["W1"].data, before["W1"]), "the run did not happen"


# --- params alone ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_round_trip_in_place_and_programs_see_them(dtype, tmp_path):
    graph, program = _sgd_step(dtype)
    _run_all(program, _feeds(graph, 2))
    saved = _stored(graph)
    gc.save_params(graph, tmp_path / "params.npz")
    arrays_before = {name: node.data for name, node in graph.params.items()}

    fresh, fresh_program = _sgd_step(dtype)  # compiled before the load: must see the loaded values
    gc.load_params(fresh, tmp_path / "params.npz")
    for name, node in fresh.params.items():
        assert np.array_equal(node.data, saved[name]) and node.data.dtype == saved[name].dtype
    feeds = _feeds(graph, 3)
    _assert_same_results(_run_all(fresh_program, feeds), _run_all(program, feeds))

    gc.load_params(graph, tmp_path / "params.npz")  # in place: the same arrays, the saved values
    assert all(graph.params[name].data is array for name, array in arrays_before.items())
    assert all(np.array_equal(graph.params[name].data, saved[name]) for name in saved)


_PARAM_SETS = st.dictionaries(
    # slashes, dots, spaces, non-ASCII; joined from a list, as st.text() first builds hypothesis's
    # table of every Unicode character (~1 s in the fresh home of each run)
    st.lists(st.sampled_from(list("aW_1./ é∂λ-")), min_size=1, max_size=8).map("".join),
    st.tuples(st.lists(st.integers(0, 3), max_size=3), st.sampled_from(["float32", "float64"])),
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(specs=_PARAM_SETS, seed=st.integers(0, 2**32 - 1))
def test_any_params_round_trip_exactly(specs, seed):
    """load_params(save_params(g)) restores every array bit for bit, whatever the names (unicode,
    slashes, dots), shapes (0-d, empty) and dtypes, into a graph whose params start elsewhere."""
    rng = np.random.default_rng(seed)
    with gc.Graph("saved") as graph:
        for name, (shape, dtype) in specs.items():
            gc.param(name, tuple(shape), dtype, init=rng.standard_normal(shape))
    with gc.Graph("loaded") as target:
        for name, (shape, dtype) in specs.items():
            gc.param(name, tuple(shape), dtype, init=0.0)
    buffer = io.BytesIO()
    gc.save_params(graph, buffer)
    gc.load_params(target, io.BytesIO(buffer.getvalue()))
    for name, node in graph.params.items():
        assert np.array_equal(target.params[name].data, node.data) and target.params[name].data.dtype == node.dtype


def test_params_named_like_savez_arguments_round_trip():
    """np.savez takes names as keywords: ``file`` collides with its first argument and
    ``allow_pickle`` is taken as its flag (and the array is silently not written)."""
    with gc.Graph("names") as graph:
        for k, name in enumerate(("file", "allow_pickle", "args")):
            gc.param(name, (2,), "float64", init=float(k + 1))
    buffer = io.BytesIO()
    gc.save_params(graph, buffer)
    with np.load(io.BytesIO(buffer.getvalue())) as npz:
        assert {name: npz[name][0] for name in ("file", "allow_pickle", "args")} == \
            {"file": 1.0, "allow_pickle": 2.0, "args": 3.0}


def test_load_params_reads_a_plain_npz_of_named_arrays(tmp_path):
    graph, _ = _sgd_step("float64")
    values = {name: np.full(node.shape, 0.5, node.dtype) for name, node in graph.params.items()}
    np.savez(tmp_path / "plain.npz", **values)
    gc.load_params(graph, tmp_path / "plain.npz")
    assert all(np.array_equal(graph.params[name].data, v) for name, v in values.items())


def test_params_of_a_graph_without_params_round_trip():
    with gc.Graph("empty") as graph:
        gc.input("x", (2,))
    buffer = io.BytesIO()
    gc.save_params(graph, buffer)
    gc.load_params(graph, io.BytesIO(buffer.getvalue()))


def test_refused_params_file_changes_no_param():
    """All or nothing: W1 and b1 fit, W2 has the wrong shape and b2 is missing; nothing is written,
    and the message lists both problems."""
    graph, _ = _sgd_step("float64")
    before = _stored(graph)
    arrays = {"W1": np.ones((6, 8)), "b1": np.ones(8), "W2": np.ones((3, 8)), "extra": np.ones(2)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(gc.GraphError, match=r"missing param 'b2'.*'extra' unknown.*'W2' is \(3, 8\).*no param"):
        gc.load_params(graph, io.BytesIO(buffer.getvalue()))
    assert all(np.array_equal(graph.params[name].data, array) for name, array in before.items())


# --- damaged files: refused with a GraphError, or loaded exactly ------------------------------------


@functools.lru_cache(maxsize=None)
def _saved_step() -> tuple[bytes, list]:
    """A momentum step saved after one run, and what two more runs of it give (outputs, then params)."""
    graph, program = _momentum_step("float64")
    program.run(_feeds(graph, 1)[0])
    buffer = io.BytesIO()
    program.save(buffer)
    data = buffer.getvalue()
    return data, _continue(gc.load(io.BytesIO(data)))


def _continue(program: gc.Program) -> list:
    """Two more steps of a loaded momentum step: outputs, then its params after them."""
    feeds = _feeds(zoo.mlp(4, sizes=SIZES, dtype="float64")[0], 3)[1:]
    outputs = _run_all(program, feeds)
    params = _params_of(program)
    return outputs + [params[name] for name in sorted(params)]


def _damage(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data if cut is None else data[: cut % len(data)])
    for position, mask in flips:
        if damaged:
            damaged[position % len(damaged)] ^= mask
    return bytes(damaged)


_DAMAGE = dict(
    cut=st.none() | st.integers(0, 10**6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_DAMAGE)
def test_damaged_program_file_is_refused_or_loads_exactly(cut, flips):
    data, want = _saved_step()
    damaged = _damage(data, cut, flips)
    try:
        program = gc.load(io.BytesIO(damaged))
    except gc.GraphError:
        return
    got = _continue(program)
    assert all(np.array_equal(g, w) for g, w in zip(got, want)) and len(got) == len(want)


@functools.lru_cache(maxsize=None)
def _saved_params() -> tuple[bytes, dict[str, np.ndarray]]:
    graph, _ = _momentum_step("float32")
    for node in graph.params.values():  # values no fresh graph starts with
        node.data[...] = np.arange(node.data.size, dtype=node.dtype).reshape(node.shape) / 7
    buffer = io.BytesIO()
    gc.save_params(graph, buffer)
    return buffer.getvalue(), _stored(graph)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_DAMAGE)
def test_damaged_params_file_is_refused_untouched_or_loads_exactly(cut, flips):
    data, saved = _saved_params()
    with gc.Graph("same-params") as graph:
        for name, array in saved.items():
            gc.param(name, array.shape, array.dtype, init=-1.0)
    before = _stored(graph)
    try:
        gc.load_params(graph, io.BytesIO(_damage(data, cut, flips)))
    except gc.GraphError:
        assert all(np.array_equal(graph.params[n].data, a) for n, a in before.items()), "half loaded"
        return
    assert all(np.array_equal(graph.params[n].data, a) for n, a in saved.items())


def test_every_member_flipped_is_refused():
    """A flip in each member's bytes (header or data) is caught by its CRC, its header
    check or its digest: never loaded as other numbers."""
    data, _ = _saved_step()
    archive = zipfile.ZipFile(io.BytesIO(data))
    for info in archive.infolist():
        start = data.index(archive.read(info.filename))  # stored uncompressed: the bytes appear as written
        for offset in (0, 9, info.file_size // 2, info.file_size - 1):
            with pytest.raises(gc.GraphError, match=repr(info.filename[:-4])):
                gc.load(io.BytesIO(_damage(data, None, [(start + offset, 0x10)])))
