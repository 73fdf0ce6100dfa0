"""PyTorch twins of graphc.models, written from the papers' layouts, with the same parameter names.

The tests copy graphc's stored params into a twin (``load``), run both on the
same feeds in float64 and compare losses, gradients and running statistics.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from graphc.models.resnet import WIDTHS
from graphc.models.unet2d import LEVELS
from graphc.models.vgg import HIDDEN, STAGES


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


# --- VGG-16 ----------------------------------------------------------------------------------------------------

class VGG16(nn.Module):
    def __init__(self, image: int, classes: int, width: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for size, convs in STAGES:
            for _ in range(convs):
                layers += [nn.Conv2d(channels, scaled(size, width), 3, padding=1), nn.ReLU()]
                channels = scaled(size, width)
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        hidden = scaled(HIDDEN, width)
        flat = channels * (image // 32) ** 2
        self.classifier = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Identity(),
                                        nn.Linear(hidden, hidden), nn.ReLU(), nn.Identity(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --- ResNet ----------------------------------------------------------------------------------------------------

def _projection(inplanes: int, planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == planes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.downsample = _projection(inplanes, 4 * planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(h)))))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, block: type, stages: tuple[int, ...], classes: int, width: float) -> None:
        super().__init__()
        inplanes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        for stage, (blocks, size) in enumerate(zip(stages, WIDTHS), start=1):
            layer = []
            for index in range(blocks):
                layer.append(block(inplanes, scaled(size, width), 2 if stage > 1 and index == 0 else 1))
                inplanes = scaled(size, width) * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for stage in range(1, 5):
            h = getattr(self, f"layer{stage}")(h)
        return self.fc(h.mean(dim=(2, 3)))


# --- U-Net -----------------------------------------------------------------------------------------------------

class DoubleConv(nn.Module):
    def __init__(self, inputs: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class Up(nn.Module):
    """Nearest 2× upsampling, one row and column of zeros at the end, a 2×2 convolution; concat; two convolutions."""

    def __init__(self, inputs: int, channels: int) -> None:
        super().__init__()
        self.upconv = nn.Conv2d(inputs, channels, 2)
        self.conv1 = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.upconv(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (0, 1, 0, 1)))
        h = torch.cat([skip, up], dim=1)
        return F.relu(self.conv2(F.relu(self.conv1(h))))


class UNet2d(nn.Module):
    def __init__(self, channels: int, classes: int, width: float) -> None:
        super().__init__()
        sizes = [scaled(c, width) for c in LEVELS]
        inputs = channels
        for level, size in enumerate(sizes, start=1):
            setattr(self, f"down{level}", DoubleConv(inputs, size))
            inputs = size
        self.bottom = DoubleConv(inputs, scaled(2 * LEVELS[-1], width))
        inputs = scaled(2 * LEVELS[-1], width)
        for level in range(len(sizes), 0, -1):
            setattr(self, f"up{level}", Up(inputs, sizes[level - 1]))
            inputs = sizes[level - 1]
        self.out = nn.Conv2d(inputs, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for level in range(1, 5):
            h = getattr(self, f"down{level}")(h if level == 1 else F.max_pool2d(h, 2))
            skips.append(h)
        h = self.bottom(F.max_pool2d(h, 2))
        for level in range(4, 0, -1):
            h = getattr(self, f"up{level}")(h, skips[level - 1])
        return self.out(h)


# --- GPT-2 -----------------------------------------------------------------------------------------------------

class Conv1D(nn.Module):
    """GPT-2's dense layer: ``x · W + b`` with W of shape (in, out)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(inputs, outputs))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(width, 3 * width)
        self.c_proj = Conv1D(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, context, width = x.shape
        q, k, v = (t.view(batch, context, self.heads, -1).transpose(1, 2) for t in self.c_attn(x).split(width, dim=2))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // self.heads)
        future = torch.triu(torch.ones(context, context, dtype=torch.bool), 1)
        mixed = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
        return self.c_proj(mixed.transpose(1, 2).reshape(batch, context, width))


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = Conv1D(width, 4 * width)
        self.c_proj = Conv1D(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, context: int, vocab: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.wte(tokens) + self.wpe.weight[: tokens.shape[1]]
        for block in self.h:
            h = block(h)
        return self.ln_f(h) @ self.wte.weight.T


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: these models are tiny, and on a loaded machine two threads wait on each other (50× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- building, loading, loss ------------------------------------------------------------------------------------

def build(name: str, **config) -> nn.Module:
    """The twin of ``graphc.models.<name>(**config)``, in float64, in training mode."""
    builders = {
        "vgg16": lambda c: VGG16(c["image"], c["classes"], c["width"]),
        "resnet18": lambda c: ResNet(BasicBlock, (2, 2, 2, 2), c["classes"], c["width"]),
        "resnet50": lambda c: ResNet(Bottleneck, (3, 4, 6, 3), c["classes"], c["width"]),
        "unet2d": lambda c: UNet2d(c.get("channels", 3), c["classes"], c["width"]),
        "gpt2": lambda c: GPT2(c["layers"], c["width"], c["heads"], c["context"], c["vocab"]),
    }
    return builders[name](config).double().train()


def load(model: nn.Module, params: dict) -> None:
    """Copy graphc's stored params (arrays by name) into the twin's parameters and buffers of the same names."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    names = {name for name in tensors if not name.endswith("num_batches_tracked")}
    assert names == set(params), names ^ set(params)
    with torch.no_grad():
        for name, array in params.items():
            tensors[name].copy_(torch.from_numpy(array))


def loss(name: str, model: nn.Module, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
    """The twin's mean cross-entropy on the feeds graphc ran."""
    if name == "gpt2":
        logits = model(feeds["tokens"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), feeds["targets"].reshape(-1))
    return F.cross_entropy(model(feeds["x"]), feeds["y"])
