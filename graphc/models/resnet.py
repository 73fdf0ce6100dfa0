"""ResNet-18 and ResNet-50 (He et al. 2016), as torchvision's ``resnet18`` and ``resnet50``.

A 7×7/2 convolution (64 channels) with batch norm and ReLU, a 3×3/2 max pool,
four stages of residual blocks (64, 128, 256, 512 channels; the first block of
stages 2–4 halves the image with stride 2), a global average pool and a
``classes``-way fully connected layer. A block adds its input (or a 1×1
projection of it, with batch norm, where the shape changes) to its branch::

    basic      (ResNet-18, stages [2, 2, 2, 2]):  y = relu(x + bn(conv3(relu(bn(conv3(x))))))
    bottleneck (ResNet-50, stages [3, 4, 6, 3]):  y = relu(x + bn(conv1(relu(bn(conv3(relu(bn(conv1(x)))))))))

The bottleneck's 1×1 convolutions narrow to the stage's width and widen to
4× it; its stride sits on the 3×3 (torchvision's "v1.5"). Batch norm normalises
with the batch's statistics (``training=True``) and keeps running statistics as
params of role ``"state"``, updated by every program that runs the forward pass.

Parameters: ResNet-18 11,689,512, ResNet-50 25,557,032 (224×224, 1,000
classes); about 1.8 G and 4.1 G multiply-adds per image.
"""

from __future__ import annotations

from typing import Any, Callable

from graphc import ops
from graphc.errors import GraphError
from graphc.ir import Graph, Value, scope
from graphc.models.layers import batch_norm, check_sizes, conv, linear, scaled, state_params, trained_params

WIDTHS = (64, 128, 256, 512)
"""The stages' widths (a bottleneck block outputs 4× its stage's width)."""


def _basic_block(x: Value, name: str, width: int, stride: int, training: bool) -> Value:
    """Two 3×3 convolutions, each with batch norm; a projection shortcut where the shape changes."""
    h = ops.relu(batch_norm(conv(x, f"{name}.conv1", width, 3, stride, 1, bias=False), f"{name}.bn1", training))
    h = batch_norm(conv(h, f"{name}.conv2", width, 3, 1, 1, bias=False), f"{name}.bn2", training)
    return ops.relu(ops.add(h, _shortcut(x, name, width, stride, training)), name=f"{name}.out")


def _bottleneck_block(x: Value, name: str, width: int, stride: int, training: bool) -> Value:
    """1×1 to ``width``, 3×3 (with the stride), 1×1 to 4·``width``, each with batch norm."""
    h = ops.relu(batch_norm(conv(x, f"{name}.conv1", width, 1, bias=False), f"{name}.bn1", training))
    h = ops.relu(batch_norm(conv(h, f"{name}.conv2", width, 3, stride, 1, bias=False), f"{name}.bn2", training))
    h = batch_norm(conv(h, f"{name}.conv3", 4 * width, 1, bias=False), f"{name}.bn3", training)
    return ops.relu(ops.add(h, _shortcut(x, name, 4 * width, stride, training)), name=f"{name}.out")


def _shortcut(x: Value, name: str, channels: int, stride: int, training: bool) -> Value:
    """``x`` itself, or a strided 1×1 convolution with batch norm where channels or size change."""
    if stride == 1 and x.shape[1] == channels:
        return x
    projected = conv(x, f"{name}.downsample.0", channels, 1, stride, bias=False)
    return batch_norm(projected, f"{name}.downsample.1", training)


Block = Callable[[Value, str, int, int, bool], Value]


def _resnet(title: str, block: Block, stages: tuple[int, ...], batch: int, image: int, classes: int,
            width: float, training: bool, dtype: Any) -> tuple[Graph, dict[str, Any]]:
    check_sizes(title, {"batch": batch, "image": image, "classes": classes}, width)
    if image % 32:
        raise GraphError(f"{title}: image={image!r} must be a multiple of 32 (the stem and stages divide it by 32)")
    with Graph(f"{title}-b{batch}-{image}px") as graph:
        x = ops.input("x", (batch, 3, image, image), dtype)
        y = ops.input("y", (batch,), "int64")
        with scope("stem"):
            h = conv(x, "conv1", scaled(64, width), 7, stride=2, padding=3, bias=False)
            h = ops.relu(batch_norm(h, "bn1", training))
            h = ops.max_pool2d(h, 3, stride=2, padding=1)
        for stage, (blocks, channels) in enumerate(zip(stages, WIDTHS), start=1):
            with scope(f"layer{stage}"):
                for index in range(blocks):
                    with scope(f"block{index}"):
                        stride = 2 if stage > 1 and index == 0 else 1
                        h = block(h, f"layer{stage}.{index}", scaled(channels, width), stride, training)
        with scope("head"):
            logits = linear(ops.global_avg_pool(h), "fc", classes)
        loss = ops.softmax_cross_entropy(logits, y, name="loss")
    values = {"x": x, "y": y, "logits": logits, "loss": loss,
              "params": trained_params(graph), "state": state_params(graph)}
    return graph, values


def resnet18(batch: int = 32, image: int = 224, classes: int = 1000, width: float = 1.0, training: bool = True,
             dtype: Any = "float32") -> tuple[Graph, dict[str, Any]]:
    """ResNet-18 (basic blocks, stages [2, 2, 2, 2]) with a softmax cross-entropy loss.

    ``width`` scales every channel count (the tests' small configurations);
    ``training=False`` normalises with the running statistics (evaluation).
    Params are named as torchvision's (``layer2.0.downsample.0.weight``).

    Returns ``(graph, values)`` with ``x``, ``y``, ``logits``, ``loss``,
    ``params`` (trained) and ``state`` (running means and variances).
    """
    return _resnet("resnet18", _basic_block, (2, 2, 2, 2), batch, image, classes, width, training, dtype)


def resnet50(batch: int = 32, image: int = 224, classes: int = 1000, width: float = 1.0, training: bool = True,
             dtype: Any = "float32") -> tuple[Graph, dict[str, Any]]:
    """ResNet-50 (bottleneck blocks, stages [3, 4, 6, 3]) with a softmax cross-entropy loss.

    Arguments and values as :func:`resnet18`.
    """
    return _resnet("resnet50", _bottleneck_block, (3, 4, 6, 3), batch, image, classes, width, training, dtype)
