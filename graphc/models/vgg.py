"""VGG-16 (Simonyan & Zisserman 2015, configuration D), as torchvision's ``vgg16``.

Thirteen 3×3 convolutions (padding 1, ReLU) in five stages of 64, 128, 256,
512, 512 channels, each stage closed by a 2×2 max pool, then three fully
connected layers 4096, 4096, ``classes``::

    features  = [conv3-64 ×2, pool, conv3-128 ×2, pool, conv3-256 ×3, pool, conv3-512 ×3, pool, conv3-512 ×3, pool]
    logits    = fc(relu(fc(relu(fc(flatten(features))))))
    ℓ         = mean_i −log softmax(logits_i)[y_i]

138,357,544 parameters at 224×224 and 1,000 classes; about 15.5 G multiply-adds
per image. Differences from torchvision: no dropout (a training step is then
deterministic; dropout has no parameters) and no adaptive pool before the
classifier, which reads the last pool's (image/32)² map directly (at 224 the
map is 7×7 and the adaptive pool is the identity).
"""

from __future__ import annotations

from typing import Any

from graphc import ops
from graphc.errors import GraphError
from graphc.ir import Graph, Value, scope
from graphc.models.layers import check_sizes, conv, linear, scaled, trained_params

STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
"""(channels, convolutions) of the five stages of configuration D."""

HIDDEN = 4096


def vgg16(batch: int = 32, image: int = 224, classes: int = 1000, width: float = 1.0,
          dtype: Any = "float32") -> tuple[Graph, dict[str, Any]]:
    """VGG-16 with a softmax cross-entropy loss, on ``batch`` images of ``image``×``image``×3.

    ``width`` scales every channel count and the 4096-wide hidden layers (the
    small configurations of the tests); ``image`` must be a multiple of 32.
    Params are named as torchvision's (``features.0.weight``, ``classifier.6.bias``).

    Returns ``(graph, values)`` with ``x`` (input, NCHW), ``y`` (int64 labels),
    ``logits``, ``loss`` and ``params``.
    """
    check_sizes("vgg16", {"batch": batch, "image": image, "classes": classes}, width)
    if image % 32:
        raise GraphError(f"vgg16: image={image!r} must be a multiple of 32 (five 2×2 pools halve it)")
    with Graph(f"vgg16-b{batch}-{image}px") as graph:
        x = ops.input("x", (batch, 3, image, image), dtype)
        y = ops.input("y", (batch,), "int64")
        h = x
        index = 0  # torchvision's position of each layer in ``features``
        for stage, (channels, convs) in enumerate(STAGES, start=1):
            with scope(f"stage{stage}"):
                for _ in range(convs):
                    h = ops.relu(conv(h, f"features.{index}", scaled(channels, width), 3, padding=1))
                    index += 2
                h = ops.max_pool2d(h, 2)
                index += 1
        with scope("classifier"):
            h = ops.flatten(h, 1)
            h = ops.relu(linear(h, "classifier.0", scaled(HIDDEN, width), std=0.01))
            h = ops.relu(linear(h, "classifier.3", scaled(HIDDEN, width), std=0.01))
            logits = linear(h, "classifier.6", classes, std=0.01)
        loss = ops.softmax_cross_entropy(logits, y, name="loss")
    return graph, {"x": x, "y": y, "logits": logits, "loss": loss, "params": trained_params(graph)}
