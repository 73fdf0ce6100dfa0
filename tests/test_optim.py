"""graphc.optim against torch.optim: the same model, the same batches, 20 steps, param by param.

The model is an MLP with two layers and biases plus a square weight ``s`` used
twice (parameter sharing: its gradient is a sum over both uses), under softmax
cross-entropy or mean squared error. After every step each param must equal
torch's: to 1e-12 in float64, to 1e-5 (relative) in float32. Also: the state
params an optimizer creates (role, zeros, names, ``Program.state``), ``gc.sgd``
as the plain case, and calling an optimizer twice.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc

torch = pytest.importorskip("torch")

STEPS = 20
BATCH, IN, HIDDEN, CLASSES = 6, 5, 4, 3
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}  # max |mine - torch's| / max |torch's|, per param


@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    """Tiny tensors: torch's thread pool costs more than it saves (16 ms a backward pass on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHAPES = {"w1": (IN, HIDDEN), "b1": (HIDDEN,), "s": (HIDDEN, HIDDEN), "w2": (HIDDEN, CLASSES), "b2": (CLASSES,)}


def build_model(dtype: str, loss_kind: str = "cross_entropy"):
    """(loss, params, graph): the MLP ``tanh(tanh(tanh(x·w1 + b1)·s)·s)·w2 + b2``, ``s`` read twice.

    ``loss_kind="linear"`` is ``Σ_p sum(p · c_p)`` instead, with fed ``c_p``: its gradients
    are the fed arrays exactly, in graphc and torch alike, so what differs is the
    optimizer's arithmetic alone.
    """
    with gc.Graph(f"mlp-{dtype}") as graph:
        w1 = gc.param("w1", SHAPES["w1"], dtype, seed=1)
        b1 = gc.param("b1", SHAPES["b1"], dtype, init=lambda shape, dt, rng: rng.uniform(-0.5, 0.5, shape))
        s = gc.param("s", SHAPES["s"], dtype, seed=2)
        w2 = gc.param("w2", SHAPES["w2"], dtype, seed=3)
        b2 = gc.param("b2", SHAPES["b2"], dtype, init=lambda shape, dt, rng: rng.uniform(-0.5, 0.5, shape))
        params = [w1, b1, s, w2, b2]
        if loss_kind == "linear":
            return gc.add_n(*[gc.sum(p * gc.input(f"c_{p.name}", p.shape, dtype)) for p in params]), params, graph
        x = gc.input("x", (BATCH, IN), dtype)
        h = gc.tanh(gc.tanh(x @ w1 + b1) @ s)
        logits = gc.tanh(h @ s) @ w2 + b2
        if loss_kind == "cross_entropy":
            loss = gc.softmax_cross_entropy(logits, gc.input("labels", (BATCH,), "int64"))
        else:
            loss = gc.mse(logits, gc.input("target", (BATCH, CLASSES), dtype))
    return loss, params, graph


def torch_loss(t: dict, feeds: dict, loss_kind: str):
    if loss_kind == "linear":
        return sum(torch.sum(p * torch.from_numpy(feeds[f"c_{name}"])) for name, p in t.items())
    x = torch.from_numpy(feeds["x"])
    h = torch.tanh(torch.tanh(x @ t["w1"] + t["b1"]) @ t["s"])
    logits = torch.tanh(h @ t["s"]) @ t["w2"] + t["b2"]
    if loss_kind == "cross_entropy":
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(feeds["labels"]))
    return torch.nn.functional.mse_loss(logits, torch.from_numpy(feeds["target"]))


def batches(dtype: str) -> list[dict[str, np.ndarray]]:
    """Twenty batches: inputs and labels or targets of the MLP, and the ``c_p`` of the linear loss."""
    rng = np.random.default_rng(7)
    return [
        {
            "x": rng.normal(size=(BATCH, IN)).astype(dtype),
            "labels": rng.integers(0, CLASSES, BATCH),
            "target": rng.normal(size=(BATCH, CLASSES)).astype(dtype),
        } | {f"c_{name}": rng.normal(size=shape).astype(dtype) for name, shape in SHAPES.items()}
        for _ in range(STEPS)
    ]


def classification_feeds(dtype: str, number: int = 0) -> dict[str, np.ndarray]:
    feeds = batches(dtype)[number]
    return {"x": feeds["x"], "labels": feeds["labels"]}


def largest_difference(name: str, kwargs: dict, dtype: str, loss_kind: str = "cross_entropy") -> float:
    """Train with ``gc.optim.<name>`` and ``torch.optim`` alike; check every param after every step.

    Returns the largest difference seen, relative to the largest element of the
    param (element by element, relative error means nothing where a value passes 0).
    """
    loss, params, _ = build_model(dtype, loss_kind)
    step = gc.compile(loss, updates=getattr(gc.optim, name)(loss, params, **kwargs))
    theirs = {p.name: torch.tensor(p.value, requires_grad=True) for p in params}
    torch_class = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}[name]
    optimizer = getattr(torch.optim, torch_class)(list(theirs.values()), **kwargs)
    worst = 0.0
    for number, feeds in enumerate(batches(dtype)):
        step.run({k: v for k, v in feeds.items() if k in step.plan.inputs})
        optimizer.zero_grad()
        torch_loss(theirs, feeds, loss_kind).backward()
        optimizer.step()
        for p in params:
            expected = theirs[p.name].detach().numpy()
            difference = float(np.max(np.abs(p.value.astype(np.float64) - expected))) / float(np.max(np.abs(expected)))
            assert difference <= TOLERANCE[dtype], f"{p.name} after step {number + 1}: {difference:.3g} off torch's"
            worst = max(worst, difference)
    return worst


CONFIGURATIONS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("sgd", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("sgd", dict(lr=0.05, weight_decay=0.1)),
    ("adam", dict()),
    ("adam", dict(lr=0.02, weight_decay=0.05)),
    ("adam", dict(lr=0.02, amsgrad=True)),
    ("adam", dict(lr=0.02, betas=(0.3, 0.9), eps=1e-3)),  # 1 - beta1 >= 0.5: torch's lerp counts from the end
    ("adamw", dict(lr=0.02)),
    ("adamw", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", dict()),
    ("rmsprop", dict(lr=0.01, centered=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.9)),
    ("rmsprop", dict(lr=0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, kwargs", CONFIGURATIONS, ids=[f"{n}-{','.join(k) or 'defaults'}" for n, k in CONFIGURATIONS])
def test_optimizer_matches_torch_for_20_steps(name: str, kwargs: dict, dtype: str) -> None:
    largest_difference(name, kwargs, dtype)


EXACT_GRADIENT_CONFIGURATIONS = [  # every option once
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("sgd", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("adam", dict(lr=0.02, weight_decay=0.05, amsgrad=True)),
    ("adam", dict(lr=0.02, betas=(0.3, 0.9), eps=1e-3)),
    ("adamw", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", dict()),
    ("rmsprop", dict(lr=0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("name, kwargs", EXACT_GRADIENT_CONFIGURATIONS,
                         ids=[f"{n}-{','.join(k) or 'defaults'}" for n, k in EXACT_GRADIENT_CONFIGURATIONS])
def test_float32_arithmetic_matches_torch_on_exact_gradients(name: str, kwargs: dict) -> None:
    """With gradients both compute exactly, float32 updates agree to a few roundings: the
    1e-5 above is the MLP's float32 gradients (1e-7 apart) carried through 20 steps, not the optimizer."""
    assert largest_difference(name, kwargs, "float32", loss_kind="linear") <= 1e-6


@pytest.mark.parametrize("name, kwargs", [("sgd", dict(lr=0.1, momentum=0.9)), ("adam", dict(lr=0.02))])
def test_optimizer_matches_torch_under_mse(name: str, kwargs: dict) -> None:
    largest_difference(name, kwargs, "float64", loss_kind="mse")


def test_training_moves_the_params() -> None:
    """The comparison above is not vacuous: the params travel far further than the tolerance."""
    loss, params, _ = build_model("float64")
    before = {p.name: p.value for p in params}
    step = gc.compile(loss, updates=gc.optim.adam(loss, params, lr=0.02))
    for number in range(3):
        step.run(classification_feeds("float64", number))
    assert min(np.max(np.abs(p.value - before[p.name])) for p in params) > 1e-3


# --- state params -------------------------------------------------------------------------------


def test_state_params_have_role_state_start_at_zero_and_are_reported() -> None:
    loss, params, graph = build_model("float32")
    updates = gc.optim.adam(loss, params, amsgrad=True)
    state = [v for v in updates if v.role == "state"]
    assert {v.name for v in state} == {f"{p.name}.{slot}" for p in params
                                       for slot in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")}
    assert all(v.node.op_name == "param" and not np.any(v.value) for v in state)
    for p in params:
        assert p.role == "param"
        assert graph.params[f"{p.name}.exp_avg"].aval == p.aval
        assert graph.params[f"{p.name}.step"].aval == gc.Aval((), np.dtype("float64"))
    step = gc.compile(loss, updates=updates)
    assert set(step.state) == {v.name for v in state}
    assert set(step.params) == {p.name for p in params}
    step.run(classification_feeds("float32"))
    assert step.state["w1.step"] == 1.0
    assert np.any(step.state["w1.exp_avg"])


def test_program_state_is_a_copy_the_caller_cannot_corrupt() -> None:
    loss, params, graph = build_model("float64")
    step = gc.compile(loss, updates=gc.optim.sgd(loss, params, lr=0.1, momentum=0.9))
    feeds = classification_feeds("float64")
    step.run(feeds)
    seen = step.state
    seen["w1.momentum_buffer"][...] = 1e9
    assert not np.any(graph.params["w1.momentum_buffer"].data == 1e9)
    step.run(feeds)
    assert not np.array_equal(seen["w1.momentum_buffer"], step.state["w1.momentum_buffer"])


def test_state_is_made_only_where_the_update_needs_it() -> None:
    loss, params, graph = build_model("float64")
    gc.optim.sgd(loss, params, lr=0.1)
    gc.optim.rmsprop(loss, params, name="r")
    assert sorted(n for n, node in graph.params.items() if node.role == "state") == sorted(f"r.{p.name}.square_avg" for p in params)


def test_graph_without_optimizer_reports_no_state() -> None:
    loss, params, _ = build_model("float64")
    prog = gc.compile(loss)
    assert prog.state == {} and set(prog.params) == {p.name for p in params}


def test_param_role_is_param_by_default_and_none_for_other_nodes() -> None:
    with gc.Graph("roles"):
        x = gc.input("x", (2,))
        w = gc.param("w", (2,))
        m = gc.param("m", (2,), role="state")
        y = x * w
    assert (w.role, m.role, x.role, y.role) == ("param", "state", None, None)
    assert (w.node.role, m.node.role) == ("param", "state")


# --- calling twice, and the plain case -----------------------------------------------------------


def test_second_optimizer_on_the_same_params_names_the_existing_state() -> None:
    loss, params, graph = build_model("float64")
    gc.optim.adam(loss, params)
    count = len(graph.params)
    with pytest.raises(gc.GraphError, match=r"'w1\.step'.*name="):
        gc.optim.adam(loss, params)
    assert len(graph.params) == count  # nothing half-made
    second = gc.optim.adam(loss, params, name="slow")
    assert {v.name for v in second if v.role == "state"} >= {"slow.w1.exp_avg", "slow.b2.step"}


def test_optimizers_on_disjoint_params_need_no_name() -> None:
    loss, params, _ = build_model("float64")
    first = gc.optim.adam(loss, params[:2], lr=0.01)
    second = gc.optim.sgd(loss, params[2:], lr=0.1, momentum=0.9)
    step = gc.compile(loss, updates=first | second)
    step.run(classification_feeds("float64"))
    assert set(step.state) == {"w1.step", "w1.exp_avg", "w1.exp_avg_sq", "b1.step", "b1.exp_avg", "b1.exp_avg_sq",
                               "s.momentum_buffer", "w2.momentum_buffer", "b2.momentum_buffer"}


def test_plain_optim_sgd_is_gc_sgd() -> None:
    """gc.sgd stays the plain case: the same update, bit for bit, and no state."""
    results = []
    for make in (lambda loss, params: gc.sgd(loss, params, 0.1), lambda loss, params: gc.optim.sgd(loss, params, 0.1)):
        loss, params, graph = build_model("float64")
        step = gc.compile(loss, updates=make(loss, params))
        for number in range(5):
            step.run(classification_feeds("float64", number))
        assert step.state == {}
        results.append([p.value for p in params])
    for mine, theirs in zip(*results):
        np.testing.assert_array_equal(mine, theirs)


def test_float32_bias_corrections_are_computed_in_float64() -> None:
    """In float32, 1 - 0.999 is 1.0000e-3 off by 1.3e-5 relative: the correction must not be float32 arithmetic."""
    loss, params, _ = build_model("float32")
    updates = gc.optim.adam(loss, params)
    casts = [n for n in loss.graph.nodes if n.op_name == "astype"]
    assert casts and all(n.inputs[0].dtype == np.float64 and n.dtype == np.float32 for n in casts)
    assert all(v.dtype == p.dtype for p, v in updates.items())


# --- a law: Adam's first step ----------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.999),
    beta2=st.floats(0.0, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    amsgrad=st.booleans(),
)
def test_adam_first_step_moves_each_param_by_lr_g_over_abs_g_plus_eps(lr, beta1, beta2, eps, amsgrad) -> None:
    """From zero moments the bias corrections cancel the betas: m̂ = g, v̂ = g², so
    p₁ = p₀ - lr·g / (|g| + eps) whatever β1, β2 (Kingma & Ba's "the effective step is bounded by lr")."""
    with gc.Graph("adam-law"):
        x = gc.input("x", (3, 2), "float64")
        w = gc.param("w", (2, 2), "float64", seed=4)
        loss = gc.sum(gc.tanh(x @ w) ** 2)
    feeds = {"x": np.linspace(-1.0, 1.5, 6).reshape(3, 2)}
    g = gc.compile(gc.grad(loss, w)).run(feeds)
    before = w.value
    gc.compile(loss, updates=gc.optim.adam(loss, [w], lr=lr, betas=(beta1, beta2), eps=eps, amsgrad=amsgrad)).run(feeds)
    np.testing.assert_allclose(w.value, before - lr * g / (np.abs(g) + eps), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, torch_class", [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop")])
def test_arguments_are_torch_optims_names_order_and_defaults(name: str, torch_class: str) -> None:
    """After (loss, params), the positional arguments are torch's, in its order, with its defaults
    (SGD's lr excepted: required, as gc.sgd's)."""
    import inspect

    def positional(signature):
        return [(p.name, p.default) for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]

    mine = positional(inspect.signature(getattr(gc.optim, name)))[2:]
    theirs = positional(inspect.signature(getattr(torch.optim, torch_class).__init__))[2:]
    if name == "sgd":
        assert mine[0] == ("lr", inspect.Parameter.empty)
        mine, theirs = mine[1:], theirs[1:]
    assert mine == theirs[: len(mine)]  # RMSprop's then go on with capturable, foreach, ...: device options
