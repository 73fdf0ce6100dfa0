"""What a recompute sweep compiles: training steps named by builders.

A *builder* is a string naming a function of no arguments that returns what
``graphc plan FILE.py:FUNC`` accepts — outputs, or ``(outputs, updates)``:

- ``"package.module:function"``, imported as a module (the built-in steps below);
- ``"path/to/file.py:function"``, a user's file, loaded as ``graphc plan`` loads it.

Builders travel to sweep workers as these strings, so each worker builds its
own graph; a file path is made absolute first (workers may run elsewhere).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import graphc as gc
from graphc import zoo
from graphc.models import gpt2, resnet50

LR = 0.01
"""The step size of the built-in steps' ``gc.sgd`` updates (it changes no size)."""

TrainingStep = tuple[list[gc.Value], Any]
"""``(outputs, updates)`` as ``gc.compile(outputs, updates=updates)`` takes them."""


def _sgd_step(built: tuple[gc.Graph, dict]) -> TrainingStep:
    """The loss, with every param updated by SGD inside the backward pass."""
    _, values = built
    loss = values["loss"]
    return [loss], gc.sgd(loss, values["params"], LR)


def chain_24() -> TrainingStep:
    """24 tanh layers whose params are as large as their activations (64 wide, batch 32, float64)."""
    return _sgd_step(zoo.chain(24, width=64, batch=32, dtype="float64"))


def chain_100() -> TrainingStep:
    """100 tanh layers, activations dominating memory (batch 512)."""
    return _sgd_step(zoo.chain(100, width=32, batch=512))


def residual_6() -> TrainingStep:
    return _sgd_step(zoo.residual_mlp(depth=6, width=16, batch=256))


def residual_16() -> TrainingStep:
    return _sgd_step(zoo.residual_mlp(depth=16, width=32, batch=512))


def unet() -> TrainingStep:
    return _sgd_step(zoo.unet())


def attention() -> TrainingStep:
    return _sgd_step(zoo.attention(seq=64, dim=32))


def resnet50_step() -> TrainingStep:
    """ResNet-50 (all 16 bottleneck blocks) at a quarter of its width on 32×32 images, batch 8:
    about a second per step here, activations larger than params."""
    return _sgd_step(resnet50(batch=8, image=32, classes=10, width=0.25))


def gpt2_step() -> TrainingStep:
    """A GPT-2 stack of 4 layers, 64 wide, 4 heads, context 64, batch 4, vocabulary 512."""
    return _sgd_step(gpt2(batch=4, layers=4, width=64, heads=4, context=64, vocab=512))


BUILT_IN: dict[str, str] = {
    "chain-24": f"{__name__}:chain_24",
    "chain-100": f"{__name__}:chain_100",
    "residual-6": f"{__name__}:residual_6",
    "residual": f"{__name__}:residual_16",
    "unet": f"{__name__}:unet",
    "attention": f"{__name__}:attention",
    "resnet50": f"{__name__}:resnet50_step",
    "gpt2": f"{__name__}:gpt2_step",
}
"""The built-in sweep's steps by name: the zoo graphs, then the two real-model steps."""

QUICK = ("chain-24", "residual-6")
FULL = ("chain-24", "chain-100", "residual", "unet", "attention", "resnet50", "gpt2")
FRONTIER_TARGET_GRAPH = "resnet50"
"""The step whose memory reduction at ≤ 12 % measured time overhead the sweep reports."""


def is_file_builder(builder: str) -> bool:
    return builder.rpartition(":")[0].endswith(".py")


def absolute_builder(builder: str) -> str:
    """``builder`` with its file (if it names one) made absolute, ready to travel to workers."""
    if not is_file_builder(builder):
        return builder
    path, _, func = builder.rpartition(":")
    return f"{Path(path).resolve()}:{func}"


def load_step(builder: str) -> TrainingStep:
    """Build the step ``builder`` names: ``(outputs, updates)``.

    A bad file or function raises :class:`graphc.cli.UsageError` with the one-line
    messages of ``graphc plan`` (the same loader).
    """
    from graphc.cli import UsageError, call_function, split_result

    if is_file_builder(builder):
        return call_function(builder)
    module_name, sep, func_name = builder.rpartition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"{builder!r} is neither FILE.py:FUNC nor package.module:function")
    try:
        func: Callable[[], Any] = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot find the step {builder!r}: {exc}") from None
    return split_result(func(), builder)


def step_graph(step: TrainingStep) -> gc.Graph:
    """The graph a step's outputs belong to (whose inputs the sweep feeds)."""
    return step[0][0].node.graph
