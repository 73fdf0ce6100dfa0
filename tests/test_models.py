"""The published architectures: parameter counts at published size, training and PyTorch's gradients when small."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from graphc import models, zoo

# --- the published configurations: counts only (params are drawn lazily, so nothing is allocated) ----------

PUBLISHED_PARAMETERS = {
    "resnet18": 11_689_512,   # torchvision resnet18
    "resnet50": 25_557_032,   # torchvision resnet50
    "vgg16": 138_357_544,     # torchvision vgg16
    "gpt2": 124_439_808,      # Hugging Face gpt2, output projection tied to wte
}


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMETERS))
def test_published_configuration_has_the_published_parameter_count(name):
    graph, values = getattr(models, name)(batch=1)
    assert models.parameter_count(values["params"]) == PUBLISHED_PARAMETERS[name]
    assert all(node.data is not None for node in graph.params.values() if node.role == "state")


def test_published_resnet50_keeps_running_statistics_as_state():
    _, values = models.resnet50(batch=1)
    # 53 batch norms (1 stem, 16 blocks × 3, 4 projections), each a running mean and variance
    assert len(values["state"]) == 2 * 53
    assert all(v.role == "state" and v.shape == v.shape[:1] for v in values["state"])


def test_zoo_reexports_the_published_architectures():
    for name in ("vgg16", "resnet18", "resnet50", "unet2d", "gpt2"):
        assert getattr(zoo, name) is getattr(models, name)


def test_blocks_are_built_in_named_scopes():
    graph, _ = models.resnet18(batch=2, image=32, classes=2, width=1 / 16)
    conv_scopes = {node.scope for node in graph.nodes if node.op_name == "conv2d"}
    blocks = {f"layer{stage}/block{index}" for stage in range(1, 5) for index in range(2)}
    assert conv_scopes == {"stem"} | blocks
    graph, _ = models.gpt2(batch=1, layers=2, width=8, heads=2, context=4, vocab=5)
    assert {node.scope for node in graph.nodes if node.op_name == "layer_norm"} == {"block0", "block1", "head"}


# --- small configurations ------------------------------------------------------------------------------------

SMALL = {
    "vgg16": dict(batch=2, image=32, classes=5, width=1 / 16),
    "resnet18": dict(batch=2, image=32, classes=5, width=1 / 16),
    "resnet50": dict(batch=2, image=32, classes=5, width=1 / 16),
    "unet2d": dict(batch=2, image=16, classes=3, width=1 / 16),
    "gpt2": dict(batch=2, layers=2, width=16, heads=2, context=8, vocab=11),
}


def small(name: str, dtype: str):
    return getattr(models, name)(**SMALL[name], dtype=dtype)


STEPS = 4


@pytest.fixture(scope="module", params=list(SMALL))
def small_training(request):
    """One float64 program per small model: ``[ℓ, ∂ℓ/∂w…]`` with SGD updates, run STEPS times on one batch.

    Returns the model's name, graph and values, the feeds, the stored params as
    they were before the first step, the first run's outputs (at those params)
    and the loss of every step.
    """
    name = request.param
    graph, values = small(name, "float64")
    loss = values["loss"]
    prog = gc.compile([loss, *gc.grad(loss, values["params"])], updates=gc.sgd(loss, values["params"], lr=0.05))
    feeds = zoo.feeds(graph, seed=2)
    initial = {param: node.data.copy() for param, node in graph.params.items()}
    first = prog.run(feeds)
    losses = [float(first[0])] + [float(prog.run(feeds)[0]) for _ in range(STEPS - 1)]
    return {"name": name, "graph": graph, "values": values, "feeds": feeds, "initial": initial, "first": first,
            "losses": losses}


def test_small_configuration_trains_with_sgd(small_training):
    losses = small_training["losses"]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]


def _torch_twin(torch, small_training):
    """The PyTorch twin holding the params graphc started from, and its loss on the same feeds (backward done)."""
    import torch_models

    name = small_training["name"]
    model = torch_models.build(name, **SMALL[name])
    torch_models.load(model, small_training["initial"])
    with torch_models.one_thread():
        loss = torch_models.loss(name, model, {k: torch.from_numpy(v) for k, v in small_training["feeds"].items()})
        loss.backward()
    return model, loss


def test_small_configuration_gradients_match_pytorch(small_training):
    torch = pytest.importorskip("torch")
    model, torch_loss = _torch_twin(torch, small_training)
    loss, *grads = small_training["first"]
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-10)
    torch_params = dict(model.named_parameters())
    for param, grad in zip(small_training["values"]["params"], grads):
        expected = torch_params[param.name].grad.numpy()
        np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-10, err_msg=param.name)


def test_small_resnet_updates_running_statistics_as_pytorch():
    torch = pytest.importorskip("torch")
    import torch_models

    graph, values = small("resnet18", "float64")
    model = torch_models.build("resnet18", **SMALL["resnet18"])
    torch_models.load(model, {name: node.data for name, node in graph.params.items()})
    feeds = zoo.feeds(graph, seed=3)
    prog = gc.compile([values["loss"]])
    for _ in range(2):
        prog.run(feeds)
        with torch_models.one_thread():
            torch_models.loss("resnet18", model, {k: torch.from_numpy(v) for k, v in feeds.items()})
    buffers = dict(model.named_buffers())
    for state in values["state"]:
        np.testing.assert_allclose(state.value, buffers[state.name].numpy(), rtol=1e-10, err_msg=state.name)
