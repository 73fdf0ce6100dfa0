"""The primitives, one definition each, and the functions that build their nodes.

Every module of this package but ``core`` defines ops and lists its public ones
in its ``__all__``; this package imports every such module and re-exports those
names, and :mod:`graphc` re-exports them as ``gc.<name>`` (:data:`PUBLIC_OPS`).
So a new op touches its own module alone: define it, add its name to the
module's ``__all__``. The registry (:func:`lookup`) finds a primitive by name,
which is how a plan loaded from JSON gets its kernels back.
"""

import importlib
import pkgutil

from graphc.ops.core import ZERO, GraphError, Primitive, ShapeError, bind, defop, lookup, registered

OP_MODULES: tuple[str, ...] = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "core"))
"""The modules of this package that define ops (every one but ``core``)."""


def _public_ops() -> dict[str, object]:
    """The names each op module lists in ``__all__``, in module order; a name listed twice is an error."""
    found: dict[str, object] = {}
    where: dict[str, str] = {}
    for module_name in OP_MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for name in getattr(module, "__all__", ()):
            if name in found:
                raise ImportError(f"graphc.ops.{module_name} and graphc.ops.{where[name]} both export {name!r}")
            found[name], where[name] = getattr(module, name), module_name
    return found


_PUBLIC = _public_ops()
PUBLIC_OPS: tuple[str, ...] = tuple(_PUBLIC)
"""The names graphc exports as ``gc.<name>``: every op module's ``__all__``."""
globals().update(_PUBLIC)

# helpers other modules of graphc use, not part of the public API
from graphc.ops.elementwise import div_by_count, times_inverse_count, unbroadcast  # noqa: E402
from graphc.ops.source import default_init, glorot_uniform  # noqa: E402
from graphc.ops.conv import (  # noqa: E402  conv2d's and the pools' gradient primitives
    avg_pool2d_grad, conv2d_input_grad, conv2d_weight_grad, max_pool2d_gather, max_pool2d_grad,
)
from graphc.ops.nn import (  # noqa: E402  the cross-entropy's pieces, and the fused kernel of older plans
    fused_softmax_cross_entropy, nll_loss, softmax_cross_entropy_grad,
)
from graphc.ops.norm import norm_statistics, standardized  # noqa: E402  what the norms' VJPs read

__all__ = [
    "ZERO", "GraphError", "Primitive", "ShapeError", "bind", "defop", "lookup", "registered",
    "OP_MODULES", "PUBLIC_OPS", "div_by_count", "times_inverse_count", "unbroadcast", "default_init", "glorot_uniform",
    "avg_pool2d_grad", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d_gather", "max_pool2d_grad",
    "fused_softmax_cross_entropy", "nll_loss", "softmax_cross_entropy_grad", "norm_statistics", "standardized",
    *PUBLIC_OPS,
]
