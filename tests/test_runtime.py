"""The runtime's contract with the caller: feeds are only read, results are the caller's.

Also: feeds the outputs do not need, stored versus fed params.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc


def _model():
    rng = np.random.default_rng(0)
    W0, B0 = rng.normal(size=(4, 3)), rng.normal(size=(3,))
    with gc.Graph("rt") as g:
        x = gc.input("x", shape=(5, 4), dtype="float64")
        w = gc.param("w", shape=(4, 3), dtype="float64", init=W0)
        b = gc.param("b", shape=(3,), dtype="float64", init=B0)
        h = gc.tanh(x @ w + b)
        loss = gc.sum(h * h)
    dw, db = gc.grad(loss, [w, b])
    return dict(g=g, x=x, w=w, b=b, h=h, loss=loss, dw=dw, db=db, W0=W0, B0=B0)


def _reference(X, W, B):
    H = np.tanh(X @ W + B)
    dZ = 2 * H * (1 - H**2)
    return np.sum(H * H), H, X.T @ dZ, dZ.sum(0)


def test_caller_arrays_are_never_written():
    m = _model()
    prog = gc.compile([m["loss"], m["h"], m["dw"], m["db"]])
    rng = np.random.default_rng(1)
    X, W, B = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3,))
    copies = {k: v.copy() for k, v in dict(x=X, w=W, b=B).items()}
    for arr in (X, W, B):
        arr.setflags(write=False)  # a write would raise inside the runtime
    for _ in range(2):
        out = prog.run({"x": X, "w": W, "b": B})
    for name, arr in dict(x=X, w=W, b=B).items():
        np.testing.assert_array_equal(arr, copies[name])
    ref = _reference(X, W, B)
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_writable_feeds_are_not_written_either():
    """Same, with writable feeds: compare with copies taken before the run."""
    m = _model()
    prog = gc.compile([m["loss"], m["dw"], m["db"]], updates=gc.sgd(m["loss"], [m["w"], m["b"]], 0.1))
    X = np.random.default_rng(2).normal(size=(5, 4))
    X_before = X.copy()
    prog.run({"x": X})
    np.testing.assert_array_equal(X, X_before)


def test_outputs_that_alias_sources_are_copies():
    """Outputs that are an input, a param or a view of one are new arrays, not the caller's."""
    with gc.Graph("alias"):
        x = gc.input("x", shape=(2, 3), dtype="float64")
        w = gc.param("w", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        xt = gc.transpose(x)
        r = gc.reshape(x, (6,))
    X = np.arange(6.0).reshape(2, 3)
    out_x, out_w, out_xt, out_r = gc.compile([x, w, xt, r]).run({"x": X})
    for out in (out_x, out_w, out_xt, out_r):
        assert not np.shares_memory(out, X)
        assert not np.shares_memory(out, w.node.data)
    np.testing.assert_array_equal(out_xt, X.T)
    np.testing.assert_array_equal(out_r, X.ravel())
    out_x[...] = -1
    out_w[...] = -1
    np.testing.assert_array_equal(X, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(w.value, [1.0, 2.0, 3.0])


def test_results_survive_later_runs():
    m = _model()
    prog = gc.compile([m["loss"], m["h"], m["dw"], m["db"]])
    rng = np.random.default_rng(3)
    X1, X2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    first = prog.run({"x": X1})
    kept = [a.copy() for a in first]
    second = prog.run({"x": X2})
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, second):
        assert not np.shares_memory(a, b)
    for a, ref in zip(second, _reference(X2, m["W0"], m["B0"])):
        np.testing.assert_allclose(a, ref, rtol=1e-12)
    # Results are writable and the caller may scribble on them.
    for a in first:
        a[...] = np.nan
    for a, ref in zip(prog.run({"x": X1}), _reference(X1, m["W0"], m["B0"])):
        np.testing.assert_allclose(a, ref, rtol=1e-12)


def test_the_same_value_twice_gives_two_independent_arrays():
    m = _model()
    a, b = gc.compile([m["dw"], m["dw"]]).run({"x": np.ones((5, 4))})
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)
    a[...] = 0
    assert np.any(b != 0)


def test_feeds_the_outputs_do_not_need_are_accepted():
    m = _model()
    with m["g"]:
        gc.input("unused", shape=(7,), dtype="float64")
    prog = gc.compile(m["h"])
    X = np.ones((5, 4))
    out = prog.run({"x": X, "unused": np.zeros(7), "w": m["W0"]})
    np.testing.assert_allclose(out, np.tanh(X @ m["W0"] + m["B0"]))
    # A program that needs no input at all still accepts every input and param by name.
    with gc.Graph("params-only"):
        gc.input("x", shape=(2,), dtype="float64")
        p = gc.param("p", shape=(2,), dtype="float64", init=np.array([1.0, -1.0]))
        y = gc.sum(p * p)
    np.testing.assert_allclose(gc.compile(y).run({"x": np.zeros(2)}), 2.0)
    np.testing.assert_allclose(gc.compile(y).run(), 2.0)


def test_unfed_params_use_stored_values_and_fed_params_override_for_one_run():
    m = _model()
    prog = gc.compile([m["loss"], m["dw"], m["db"]])
    X = np.random.default_rng(4).normal(size=(5, 4))
    W_other = np.full((4, 3), 0.25)

    stored = prog.run({"x": X})
    ref_stored = _reference(X, m["W0"], m["B0"])
    np.testing.assert_allclose(stored[0], ref_stored[0], rtol=1e-13)

    fed = prog.run({"x": X, "w": W_other})  # b still from storage
    ref_fed = _reference(X, W_other, m["B0"])
    for a, ref in zip(fed, (ref_fed[0], ref_fed[2], ref_fed[3])):
        np.testing.assert_allclose(a, ref, rtol=1e-12)
    np.testing.assert_array_equal(m["w"].value, m["W0"])  # the stored value is untouched

    again = prog.run({"x": X})  # the override lasted one run
    for a, b in zip(again, stored):
        np.testing.assert_array_equal(a, b)


def test_assign_changes_what_an_unfed_param_reads():
    m = _model()
    prog = gc.compile(m["loss"])
    X = np.ones((5, 4))
    W_new = np.full((4, 3), -0.1)
    m["w"].assign(W_new)
    np.testing.assert_allclose(prog.run({"x": X}), _reference(X, W_new, m["B0"])[0], rtol=1e-13)
    with pytest.raises(gc.GraphError):
        m["w"].assign(np.ones((3, 4)))


def test_fed_param_with_updates_updates_from_the_fed_value():
    """A param fed for a run is the value that run differentiates; the update lands in storage."""
    m = _model()
    lr = 0.05
    prog = gc.compile(m["loss"], updates=gc.sgd(m["loss"], [m["w"]], lr))
    X = np.random.default_rng(5).normal(size=(5, 4))
    W_fed = np.full((4, 3), 0.2)
    prog.run({"x": X, "w": W_fed})
    _, _, dW, _ = _reference(X, W_fed, m["B0"])
    np.testing.assert_allclose(m["w"].value, W_fed - lr * dW, rtol=1e-12)


def test_int_labels_are_read_not_written():
    with gc.Graph("labels"):
        logits = gc.input("logits", shape=(4, 3), dtype="float64")
        labels = gc.input("labels", shape=(4,), dtype="int64")
        loss = gc.softmax_cross_entropy(logits, labels)
    dlogits = gc.grad(loss, logits)
    L = np.arange(12.0).reshape(4, 3) / 5
    Y = np.array([0, 2, 1, 2])
    Y.setflags(write=False)
    L.setflags(write=False)
    got_loss, got_d = gc.compile([loss, dlogits]).run({"logits": L, "labels": Y})
    P = np.exp(L - L.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    np.testing.assert_allclose(got_loss, -np.mean(np.log(P[np.arange(4), Y])), rtol=1e-13)
    onehot = np.eye(3)[Y]
    np.testing.assert_allclose(got_d, (P - onehot) / 4, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(Y, [0, 2, 1, 2])


def test_non_contiguous_and_broadcast_feeds():
    """Feeds need not be C-contiguous: a transposed view and a broadcast view work."""
    m = _model()
    prog = gc.compile(m["h"])
    base = np.random.default_rng(6).normal(size=(4, 5))
    Xt = base.T  # (5, 4), Fortran-ordered
    np.testing.assert_allclose(prog.run({"x": Xt}), np.tanh(Xt @ m["W0"] + m["B0"]), rtol=1e-13)
    Xb = np.broadcast_to(np.arange(4.0), (5, 4))  # read-only, zero strides
    np.testing.assert_allclose(prog.run({"x": Xb}), np.tanh(Xb @ m["W0"] + m["B0"]), rtol=1e-13)


def test_a_feed_read_in_place_is_only_read_and_no_output_is_it_or_a_view_of_it():
    """A C-contiguous feed of the input's shape and dtype is read where the caller keeps it (no copy
    into its slot; its transpose, for ∂ℓ/∂w, a view of the caller's array bound at each run): it is
    never written, no output shares its memory, and the next run reads the next feed."""
    m = _model()
    prog = gc.compile([m["loss"], m["h"], m["dw"], m["db"]])
    executable = prog._executable
    x_id = prog.plan.inputs["x"].id
    assert executable.read_in_place == {x_id}
    rng = np.random.default_rng(8)
    X1, X2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    before = X1.copy()
    first = prog.run({"x": X1})
    assert "np.copyto" not in executable.source  # the feed is not copied: nothing else copies here
    np.testing.assert_array_equal(X1, before)
    for out in first:
        assert not np.shares_memory(out, X1)
    second = prog.run({"x": X2})
    for got, ref in zip(second, _reference(X2, m["W0"], m["B0"])):
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    X1[...] = 0  # the caller's array changes after the run: the results of the run do not
    for got, ref in zip(first, _reference(before, m["W0"], m["B0"])):
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_a_dropped_program_frees_its_executable_without_the_cycle_collector():
    """The step's globals (arrays, kernels, the feed fallback) hold no reference to the executable:
    dropping a program that ran frees its arena at once, not at the next collection of cycles."""
    import gc as cycles
    import weakref

    m = _model()
    prog = gc.compile([m["loss"], m["dw"]])
    prog.run({"x": np.ones((5, 4))})
    executable = weakref.ref(prog._executable)
    cycles.disable()
    try:
        del prog
        assert executable() is None
    finally:
        cycles.enable()


@pytest.mark.parametrize("layout", ["transposed", "unaligned", "read-only", "list", "float64-subclass"])
def test_a_feed_that_cannot_be_read_in_place_is_checked_and_copied_or_read_where_it_is(layout):
    """The quick test of a feed read in place fails for these; the slow path gives the same results:
    a non-contiguous or unaligned array is copied into the slot, a read-only one read in place."""
    m = _model()
    prog = gc.compile([m["loss"], m["dw"], m["db"]])
    X = np.random.default_rng(9).normal(size=(5, 4))
    if layout == "transposed":
        fed = np.ascontiguousarray(X.T).T
    elif layout == "unaligned":
        raw = np.zeros(X.nbytes + 1, np.uint8)
        fed = np.frombuffer(raw.data, np.float64, X.size, offset=1).reshape(5, 4)
        fed[...] = X
        assert not fed.flags.aligned
    elif layout == "read-only":
        fed = X.copy()
        fed.setflags(write=False)
    elif layout == "list":
        fed = X.tolist()
    else:
        fed = np.ma.MaskedArray(X)  # a subclass: read through np.asarray
    want = prog.run({"x": X.copy()})
    got = prog.run({"x": fed})
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(fed), X)


@pytest.mark.parametrize("feed, message", [
    (np.zeros((5, 3)), r"feed 'x'.*has shape \(5, 3\); feed an array of shape \(5, 4\)"),
    (np.zeros((5, 4), np.float32), r"feed 'x'.*has dtype float32; convert it"),
    (None, r"feed 'x'.*has dtype object"),
])
def test_a_wrong_feed_of_an_input_read_in_place_is_the_same_error(feed, message):
    m = _model()
    prog = gc.compile(m["h"])
    assert prog._executable.read_in_place
    with pytest.raises(gc.GraphError, match=message):
        prog.run({"x": feed})
    with pytest.raises(gc.GraphError, match=r"input 'x' \(\(5, 4\) float64\) is needed but was not fed"):
        prog.run({})


def test_feeds_are_copied_when_the_plan_updates_a_stored_param_in_place():
    """A feed may be the very array of a param the run updates in place: copied first, it keeps the
    values the run started with for every read, as a copy of it fed in its stead does."""
    def program():
        with gc.Graph("feed-is-param"):
            x = gc.input("x", shape=(3,), dtype="float64")
            w = gc.param("w", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
            loss = gc.sum(w * w)
            late = gc.sum(x * x * x)  # computed from x, possibly after w's update
        return w, gc.compile([loss, late, x], updates={w: w - 1.0})

    w, prog = program()
    assert prog._executable.read_in_place == frozenset()
    got = prog.run({"x": w.node.data})
    w_copy, reference = program()
    want = reference.run({"x": w_copy.node.data.copy()})
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[2], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w.value, [0.0, 1.0, 2.0])


def test_outputs_include_intermediates_and_views_of_values_reused_in_place():
    """Intermediates asked for as outputs, also through views, keep their values even where
    the planner may reuse storage in place for later elementwise ops."""
    rng = np.random.default_rng(7)
    X, W = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    with gc.Graph("views"):
        x = gc.input("x", shape=(4, 4), dtype="float64")
        w = gc.param("w", shape=(4, 4), dtype="float64", init=W)
        a = gc.tanh(x @ w)
        at = gc.transpose(a)
        b = a * 2.0
        c = gc.exp(b) + at  # reads a through a view after b was computed from a
        d = gc.reshape(c, (16,))
        e = gc.sigmoid(c) * at
        f = gc.sum(e) + gc.sum(d * d)
    got = gc.compile([f, at, d, e, b]).run({"x": X})
    A = np.tanh(X @ W)
    B = 2 * A
    C = np.exp(B) + A.T
    E = 1 / (1 + np.exp(-C)) * A.T
    expected = [E.sum() + (C * C).sum(), A.T, C.ravel(), E, B]
    for out, ref in zip(got, expected):
        np.testing.assert_allclose(out, ref, rtol=1e-13)


def test_stored_params_are_read_in_place_and_a_swap_update_still_swaps():
    """Unfed params are read where they are stored (no copy per run), also by a program whose
    updates read params (a swap): each new value is copied aside before either is written."""
    with gc.Graph("swap"):
        a = gc.param("a", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        b = gc.param("b", shape=(3,), dtype="float64", init=np.array([-1.0, -2.0, -3.0]))
        total = gc.sum(a * b)
    reading = gc.compile(total)
    assert reading._executable.shared == {"a", "b"}
    swapping = gc.compile(total, updates={a: b, b: a})
    assert swapping._executable.shared == {"a", "b"}
    np.testing.assert_allclose(swapping.run(), -14.0)
    np.testing.assert_array_equal(a.value, [-1.0, -2.0, -3.0])
    np.testing.assert_array_equal(b.value, [1.0, 2.0, 3.0])
    a.assign(np.array([2.0, 0.0, 0.0]))
    np.testing.assert_allclose(reading.run(), 2.0)  # reads the assigned value in place
    np.testing.assert_allclose(reading.run({"a": np.ones(3)}), 6.0)  # fed: a copy binding
    np.testing.assert_array_equal(a.value, [2.0, 0.0, 0.0])  # storage untouched by the feed
    np.testing.assert_allclose(reading.run(), 2.0)


# --- outputs that alias updated params -------------------------------------------------------


def _param_w(name: str):
    g = gc.Graph(name)
    with g:
        w = gc.param("w", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        loss = gc.sum(w * w)
    return g, w, loss


@pytest.mark.parametrize("view", ["self", "transpose", "reshape"])
def test_an_output_that_is_an_updated_param_has_the_value_the_run_read(view):
    _, w, loss = _param_w(f"out-{view}")
    out = {"self": lambda: w, "transpose": lambda: gc.transpose(gc.reshape(w, (3, 1))),
           "reshape": lambda: gc.reshape(w, (1, 3))}[view]()
    got_out, got_loss = gc.compile([out, loss], updates={w: w - 1.0}).run()
    before = np.array([1.0, 2.0, 3.0])
    expected = {"self": before, "transpose": before.reshape(3, 1).T, "reshape": before.reshape(1, 3)}[view]
    np.testing.assert_array_equal(got_out, expected)
    np.testing.assert_array_equal(got_loss, 14.0)
    np.testing.assert_array_equal(w.value, before - 1.0)  # the update was written


def test_an_output_that_is_a_fed_updated_param_has_the_fed_value():
    _, w, loss = _param_w("out-fed")
    W = np.array([5.0, 6.0, 7.0])
    got_w, got_loss = gc.compile([w, loss], updates={w: w - 1.0}).run({"w": W})
    np.testing.assert_array_equal(got_w, W)
    np.testing.assert_array_equal(got_loss, 110.0)
    np.testing.assert_array_equal(w.value, W - 1.0)


# --- stored params: shape, dtype, all-or-nothing updates ---------------------------------------


def _two_params(name: str):
    with gc.Graph(name) as g:
        w1 = gc.param("w1", shape=(3,), dtype="float64", init=np.array([1.0, 2.0, 3.0]))
        w2 = gc.param("w2", shape=(3,), dtype="float64", init=np.array([4.0, 5.0, 6.0]))
        loss = gc.sum(w1 * w2)
    return g, w1, w2, loss


@pytest.mark.parametrize("stored", [np.ones((1, 3)), np.ones((3,), np.float32), [1.0, 2.0, 3.0]],
                         ids=["shape-(1,3)", "float32", "list"])
def test_a_stored_param_of_the_wrong_kind_is_an_error_not_broadcast(stored):
    _, w1, _, loss = _two_params("stored-wrong")
    w1.node.data = stored
    with pytest.raises(gc.GraphError, match=r"param 'w1'.*stored"):
        gc.compile(loss)


def test_a_program_from_a_plan_rejects_a_stored_param_of_the_wrong_shape():
    _, _, _, loss = _two_params("plan-wrong")
    plan = gc.compile(loss).plan
    with pytest.raises(gc.GraphError, match=r"param 'w1'.*\(1, 3\)"):
        gc.Program(plan, {"w1": np.ones((1, 3)), "w2": np.ones(3)})


def test_an_update_of_a_read_only_param_writes_no_param():
    _, w1, w2, loss = _two_params("read-only")
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, w2], 0.5))
    w2.node.data.flags.writeable = False
    with pytest.raises(gc.GraphError, match=r"param 'w2'.*read-only"):
        prog.run()
    np.testing.assert_array_equal(w1.value, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w2.value, [4.0, 5.0, 6.0])


def test_a_param_whose_stored_array_was_replaced_is_an_error_and_nothing_is_written():
    _, w1, w2, loss = _two_params("replaced")
    prog = gc.compile(loss, updates=gc.sgd(loss, [w1, w2], 0.5))
    w2.node.data = np.array([0.0, 0.0, 0.0])
    with pytest.raises(gc.GraphError, match=r"param 'w2'.*replaced.*assign"):
        prog.run()
    np.testing.assert_array_equal(w1.value, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w2.value, [0.0, 0.0, 0.0])


# --- labels are checked before the kernel ------------------------------------------------------


def _labels_program(op: str):
    with gc.Graph(f"labels-{op}"):
        logits = gc.input("logits", shape=(4, 3), dtype="float64")
        labels = gc.input("labels", shape=(4,), dtype="int64")
        out = gc.softmax_cross_entropy(logits, labels) if op == "sce" else gc.one_hot(labels, 3)
    return gc.compile(out)


@pytest.mark.parametrize("op", ["sce", "one_hot"])
@pytest.mark.parametrize("bad", [-1, 3, 7])
def test_labels_out_of_range_or_negative_are_an_error_naming_the_node(op, bad):
    prog = _labels_program(op)
    labels = np.array([0, 2, bad, 1])
    with pytest.raises(gc.GraphError, match=r"labels must lie in \[0, 3\) for 3 classes.*" + str(bad)):
        prog.run({"logits": np.zeros((4, 3)), "labels": labels})
    prog.run({"logits": np.zeros((4, 3)), "labels": np.array([0, 2, 2, 1])})  # in range: runs


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(-3, 3), min_size=3, max_size=3), lr=st.floats(0.01, 1.0))
def test_outputs_of_an_updating_run_equal_those_of_the_same_run_without_updates(values, lr):
    """Law: adding ``updates`` changes what is stored after a run, never what the run returns."""
    with gc.Graph("updating-law"):
        w = gc.param("w", shape=(3,), dtype="float64", init=np.array(values))
        loss = gc.sum(gc.tanh(w) * w)
    (dw,) = gc.grad(loss, [w])
    outputs = [w, gc.reshape(w, (3, 1)), loss, dw]
    plain = gc.compile(outputs).run()
    updating = gc.compile(outputs, updates={w: w - lr * dw}).run()
    for a, b in zip(updating, plain):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(w.value, np.array(values) - lr * plain[3])


def test_an_output_read_by_an_operand_check_and_viewed_is_new_at_each_run():
    """log_probs is returned, viewed (its transpose returned too) and read by nll_loss, whose label
    check runs before any kernel: each run's outputs are new arrays, and the check reads them."""
    from graphc.ops.nn import nll_loss

    with gc.Graph("output-checked"):
        x = gc.input("x", (4, 3))
        y = gc.input("y", (4,), "int64")
        lp = gc.log_softmax(x, axis=1)
        loss = nll_loss(lp, y)
    prog = gc.compile([lp, lp.T, loss])
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 3)).astype(np.float32), "y": np.array([0, 1, 2, 0])}
    first = prog.run(feeds)
    second = prog.run(feeds)
    for a, b in zip(first, second):
        assert a is not b and not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(second[1], second[0].T)
    assert second[2] == np.float32(-second[0][np.arange(4), feeds["y"]].mean())
    with pytest.raises(gc.GraphError, match="labels must lie in"):
        prog.run({**feeds, "y": np.array([0, 1, 3, 0])})
