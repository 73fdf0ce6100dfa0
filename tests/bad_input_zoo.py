"""Bad inputs of the initialisers and the published architectures (concatenated into the catalogue)."""

import graphc as gc  # noqa: F401  (the catalogue's thunks run with gc in scope)
from graphc import models
from graphc.ops.source import NormalInit

CASES_ZOO = [
    # (id, thunk that must raise GraphError, regex the message must match)
    ("normal-init-negative-std", lambda: NormalInit(-1.0), r"NormalInit\(std=-1.0.*finite std >= 0"),
    ("normal-init-nan-mean", lambda: NormalInit(0.1, mean=float("nan")), r"NormalInit.*finite mean"),
    ("normal-init-string-std", lambda: NormalInit("0.1"), r"NormalInit\(std='0.1'"),
    ("vgg16-image-not-multiple-of-32", lambda: models.vgg16(batch=1, image=48), r"vgg16: image=48 must be a multiple of 32"),
    ("resnet18-zero-batch", lambda: models.resnet18(batch=0), r"resnet18: batch=0 must be an int >= 1"),
    ("resnet50-width-zero", lambda: models.resnet50(batch=1, width=0), r"resnet50: width=0 must be a number > 0"),
    ("resnet50-float-classes", lambda: models.resnet50(batch=1, classes=10.5), r"resnet50: classes=10.5 must be an int"),
    ("unet2d-image-not-multiple-of-16", lambda: models.unet2d(batch=1, image=40), r"unet2d: image=40 must be a multiple of 16"),
    ("gpt2-width-not-multiple-of-heads", lambda: models.gpt2(batch=1, width=10, heads=3), r"gpt2: width=10 must be a multiple of heads=3"),
    ("gpt2-negative-layers", lambda: models.gpt2(batch=1, layers=-1), r"gpt2: layers=-1 must be an int >= 1"),
]
