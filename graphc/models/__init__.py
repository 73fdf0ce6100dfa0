"""The published architectures at their published sizes, and the small configurations the tests train.

Each builder returns ``(graph, values)`` like the builders of :mod:`graphc.zoo`
(which re-exports them), with ``values["loss"]`` and ``values["params"]``
(and ``values["state"]``, batch norm's running statistics, for the ResNets).
Params are named as the PyTorch reference implementations name them and drawn
lazily, so a model of 10^8 parameters is built and planned (``bind=False``)
without allocating them.
"""

from graphc.models.gpt2 import gpt2
from graphc.models.layers import parameter_count
from graphc.models.resnet import resnet18, resnet50
from graphc.models.unet2d import unet2d
from graphc.models.vgg import vgg16

__all__ = ["vgg16", "resnet18", "resnet50", "unet2d", "gpt2", "parameter_count"]
