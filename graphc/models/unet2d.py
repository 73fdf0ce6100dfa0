"""A convolutional U-Net for segmentation (Ronneberger, Fischer & Brox 2015), with padded convolutions.

Four levels down, a bottom, four levels up; at each level two 3×3
convolutions with ReLU (64, 128, 256, 512 channels; 1,024 at the bottom),
a 2×2 max pool on the way down, and on the way up an "up-convolution" that
doubles the image and halves the channels, whose output is concatenated with
the skip of the same level before the level's two convolutions::

    down_k = double_conv(pool(down_{k-1}))                    k = 1 … 4 (no pool at k = 1)
    up_k   = double_conv(concat[down_k, upconv(up_{k+1})])    up_5 = double_conv(pool(down_4))
    logits = conv1×1(up_1)                                     (N, classes, H, W)
    ℓ      = mean over pixels of −log softmax(logits)[label]

Two departures from the paper, both to keep the shapes simple: convolutions
are padded (padding=1), so the output has the input's size and no cropping is
needed; and the 2×2 transposed convolution is replaced by a nearest-neighbour
2× upsampling (a reshape and a broadcast) followed by a 2×2 convolution over
the map padded by one row and column at its end. That convolution has the
transposed one's parameters (C·C/2·4 + C/2), hence the paper's count, but
4× its multiply-adds (it runs at the upsampled size).
"""

from __future__ import annotations

from typing import Any

from graphc import ops
from graphc.errors import GraphError
from graphc.ir import Graph, Value, scope
from graphc.models.layers import check_sizes, conv, scaled, trained_params

LEVELS = (64, 128, 256, 512)
"""The channels of the four levels; the bottom has twice the last."""


def upsample_nearest2x(x: Value, name: str | None = None) -> Value:
    """(N, C, H, W) → (N, C, 2H, 2W), every pixel repeated in a 2×2 square (a reshape of a broadcast).

    The VJP of the broadcast sums each 2×2 square back into its pixel.
    """
    n, c, h, w = x.shape
    spread = ops.broadcast_to(ops.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, 2, w, 2))
    return ops.reshape(spread, (n, c, 2 * h, 2 * w), name=name)


def _double_conv(x: Value, name: str, channels: int) -> Value:
    h = ops.relu(conv(x, f"{name}.conv1", channels, 3, padding=1))
    return ops.relu(conv(h, f"{name}.conv2", channels, 3, padding=1), name=name)


def _upconv(x: Value, name: str, channels: int) -> Value:
    """Upsample 2×, pad one row and column at the end, and a 2×2 convolution to ``channels``."""
    h = upsample_nearest2x(x)
    h = ops.pad_axis(ops.pad_axis(h, 2, 0, 1), 3, 0, 1)
    return conv(h, name, channels, 2)


def unet2d(batch: int = 32, image: int = 224, classes: int = 2, channels: int = 3, width: float = 1.0,
           dtype: Any = "float32") -> tuple[Graph, dict[str, Any]]:
    """A U-Net over ``batch`` images of ``image``×``image``×``channels`` with a per-pixel cross-entropy.

    ``classes`` defaults to the paper's 2 (cell and background); ``width``
    scales every channel count; ``image`` must be a multiple of 16.

    Returns ``(graph, values)`` with ``x`` (N, channels, H, W), ``y`` (int64
    labels, (N, H, W)), ``logits`` (N, classes, H, W), ``loss`` and ``params``.
    """
    check_sizes("unet2d", {"batch": batch, "image": image, "classes": classes, "channels": channels}, width)
    if image % 16:
        raise GraphError(f"unet2d: image={image!r} must be a multiple of 16 (four 2×2 pools halve it)")
    with Graph(f"unet2d-b{batch}-{image}px") as graph:
        x = ops.input("x", (batch, channels, image, image), dtype)
        y = ops.input("y", (batch, image, image), "int64")
        skips = []
        h = x
        for level, size in enumerate(LEVELS, start=1):
            with scope(f"down{level}"):
                h = _double_conv(h if level == 1 else ops.max_pool2d(h, 2), f"down{level}", scaled(size, width))
            skips.append(h)
        with scope("bottom"):
            h = _double_conv(ops.max_pool2d(h, 2), "bottom", scaled(2 * LEVELS[-1], width))
        for level in range(len(LEVELS), 0, -1):
            size = scaled(LEVELS[level - 1], width)
            with scope(f"up{level}"):
                up = _upconv(h, f"up{level}.upconv", size)
                h = _double_conv(ops.concat([skips[level - 1], up], axis=1), f"up{level}", size)
        with scope("head"):
            logits = conv(h, "out", classes, 1)
            loss = ops.softmax_cross_entropy(ops.transpose(logits, (0, 2, 3, 1)), y, name="loss")
    return graph, {"x": x, "y": y, "logits": logits, "loss": loss, "params": trained_params(graph)}
