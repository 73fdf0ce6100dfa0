"""Constant folding: a node whose operands are all constants, evaluated once at compile time.

The value is computed by the op's own kernel, on the very arrays the plan would
bind as its constants, into an array of the node's dtype and shape: the same
bits a run would compute, once instead of every run. What is not folded:

- an op that is not graphc's own (a custom kernel may keep state) or says it is
  not ``foldable`` (random draws);
- a result of more than :data:`FOLD_LIMIT_BYTES` (a constant is stored in the
  plan and its JSON), and a view that would grow its operand (a broadcast of a
  scalar is free as a view, a megabyte as a constant);
- a result holding inf or NaN, or operands the op's run-time check rejects
  (labels out of range), or a kernel that raises: the run computes the node, so
  ``check_numerics`` and the run-time errors still name the instruction;
- a node whose shape or attributes hold the batch size (None).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from graphc.ir import Node
from graphc.ops.core import attrs_hold_batch

FOLD_LIMIT_BYTES = 1 << 20
"""The largest constant folding makes (1 MiB)."""


def fold(node: Node, args: Sequence[Node]) -> np.ndarray | None:
    """``node``'s value when its operands ``args`` are all constants and it may be folded, else None.

    The array is new (it owns its data) and read-only.
    """
    op = node.op
    if (op is None or not args or not op.trusted or not op.foldable
            or any(a.kind != "const" for a in args) or node.aval.has_batch
            or (op.shape_attrs and attrs_hold_batch(op, node.attrs))
            or node.aval.nbytes > FOLD_LIMIT_BYTES):
        return None
    if op.view and node.aval.size > max(a.aval.size for a in args):
        return None
    inputs = [a.data for a in args]
    attrs = node.attrs
    try:
        if op.check_operands is not None and op.check_operands(*inputs, **attrs) is not None:
            return None
        with np.errstate(all="ignore"):
            if op.view:
                out = np.array(op.kernel(*inputs, **attrs), dtype=node.dtype, copy=True)
            else:
                out = np.empty(node.shape, node.dtype)
                if op.scratch is not None:
                    scratch = tuple(np.empty(a.shape, a.dtype) for a in op.scratch(*(a.aval for a in args), **attrs))
                    op.kernel(out, *inputs, scratch=scratch, **attrs)
                else:
                    op.kernel(out, *inputs, **attrs)
    except Exception:  # noqa: BLE001  the run reports it, at its instruction
        return None
    if out.shape != node.shape or (out.dtype.kind == "f" and not np.isfinite(out).all()):
        return None
    out.setflags(write=False)
    return out
