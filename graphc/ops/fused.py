"""The fused elementwise op: a chain of elementwise nodes evaluated in one pass by numexpr.

``compile(..., fuse=True)`` runs :func:`graphc.passes.fuse` after the gradient and the
other passes: each maximal chain of elementwise nodes (``Primitive.fused_expr``) whose
intermediates no other node reads becomes one ``fused`` node. Its ``expr`` attribute is
the chain as a numexpr expression of its operands ``a0, a1, …`` (constants included, so
the expression holds no literal of another dtype), and its ``flops`` attribute the sum
of the FLOPs of the nodes it replaces. The node is a compile-time instance: it has no
VJP (the gradient was taken before fusion), no scratch, and it is ``elementwise``
(numexpr reads each block of its operands before it writes that block of ``out``, so
the planner may write it over a dying operand, as it does a ufunc).

Why numexpr, and why the NumPy path stays the default. Measured on this project's
2-core machine with a one-off script (not kept: numba is no dependency of graphc) that
writes the four chains by hand for each library: numexpr 2.14.2 ``evaluate(..., out=)``
pinned to one thread with ``set_num_threads(1)`` (by default it starts one thread per
core, up to ``NUMEXPR_MAX_THREADS``), numba 0.68.1 ``@vectorize`` with eager signatures
and one thread, NumPy 2.4.6 as the unfused sequence of ufuncs with ``out=``; ms per call,
10th percentile; gelu in its tanh form, ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``::

    chain             size        dtype    NumPy  numexpr   numba
    tanh(h + b)       32x256      float32  0.040    0.286   0.242
    g(1-y)(1+y)       32x256      float32  0.009    0.056   0.006
    m/(sqrt(v)+eps)   32x256      float32  0.009    0.066   0.030
    gelu (tanh form)  32x256      float32  0.050    0.325   0.228
    tanh(h + b)       256x1024    float32  1.239    8.829  12.267
    g(1-y)(1+y)       256x1024    float32  0.199    0.496   0.081
    m/(sqrt(v)+eps)   256x1024    float32  0.210    0.970   0.780
    gelu (tanh form)  256x1024    float32  1.051    7.183   5.727
    tanh(h + b)       1024x4096   float32  39.40   146.61  164.72
    g(1-y)(1+y)       1024x4096   float32  12.00    26.87    3.75
    m/(sqrt(v)+eps)   1024x4096   float32   7.44    16.71   13.07
    gelu (tanh form)  1024x4096   float32  36.23   142.45  105.82
    tanh(h + b)       32x256      float64  0.122    0.175   0.144
    g(1-y)(1+y)       32x256      float64  0.010    0.032   0.004
    m/(sqrt(v)+eps)   32x256      float64  0.018    0.060   0.040
    gelu (tanh form)  32x256      float64  0.137    0.197   0.138
    tanh(h + b)       256x1024    float64  4.228    7.077   6.023
    g(1-y)(1+y)       256x1024    float64  0.384    0.854   0.154
    m/(sqrt(v)+eps)   256x1024    float64  0.626    1.513   1.197
    gelu (tanh form)  256x1024    float64  6.732   10.177   8.179
    tanh(h + b)       1024x4096   float64  80.12   179.73   95.83
    g(1-y)(1+y)       1024x4096   float64  22.14    18.16    7.42
    m/(sqrt(v)+eps)   1024x4096   float64  18.10    24.56   19.61
    gelu (tanh form)  1024x4096   float64 109.91   133.41  112.87

    numba compile time: 1.94 s for the four float32 kernels, 0.83 s for the float64 ones.

(The machine is shared: the figures move by tens of percent from run to run; the
ratios, not the last digit, are the finding.) With one thread neither library beats
NumPy 2's vectorised ``tanh``/``exp``: numexpr calls the C library's scalar functions
(3–7× slower on float32 chains with a transcendental), numba's ``@vectorize`` the same
(3–10×). numba wins the pure-arithmetic chain, the tanh VJP, by 1.5–3× at the two larger
sizes; numexpr wins it only in float64 at 1024x4096. numexpr is chosen because
(1) where neither wins, the cheaper dependency should carry the option: numexpr is a
few MB, numba ~100 MB with llvmlite; (2) numexpr compiles an expression in well under
a millisecond, numba a kernel per chain and dtype in ~0.2–0.5 s, which every compile
of a new program would pay (and the test suite's 5-minute budget with it); (3) a fused
node is then plain data, an expression string in the plan's JSON, saved and loaded as
any other attribute. The numbers say the NumPy path is the right default: on one thread
fusion saves instructions (hardly any arena: in-place reuse already keeps a chain in one
buffer), not time; numexpr's own threads
(it starts as many as the machine has cores, up to ``NUMEXPR_MAX_THREADS``; graphc
leaves that process-wide setting alone) are where it can be faster. Whole training steps
(``benchmarks/fusion.py``) confirm it: 23–32 % fewer instructions, 1.6–2.9× the time.

Numerics. numexpr evaluates the arithmetic of a chain in the chain's dtype, in the
same order as the unfused kernels (its float32 arrays stay float32; the expression has
no literal but the integers 0 and 1, which it casts to the arrays' dtype), so a chain
of ``+ - * /``, ``neg``, ``sqrt``, ``relu`` and comparisons (``g·[y > 0]``, the ReLU's
J^T, becomes one pass with no mask) computes the very bits of the NumPy path (``sqrt`` is
correctly rounded in both). ``exp``, ``log`` and ``tanh`` go through the C library instead
of NumPy's own loops and may differ in the last bits, by at most :data:`ULP_TOLERANCE` ulps per function. Through a
whole training step those differences grow as any rounding does: on the zoo graphs
(float32, ``zoo.training_outputs``) the fused results differ from the NumPy path's by at
most 2.4 ulps of each output's largest magnitude (mlp 2.4, random-100 2.0), 76 on
chain-100 (a hundred tanh layers), and not at all on seed, residual, unet and attention
(bit-identical); ``tests/test_fusion.py`` checks these bounds.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

from graphc.ir import Aval
from graphc.ops.core import Primitive, broadcast_shapes, same_float_dtype

__all__: list[str] = []  # a compile-time op: the fusion pass builds it, users do not

LIBRARY = "numexpr"
"""The library that evaluates fused chains (the ``fast`` extra: ``pip install graphc[fast]``)."""

ULP_TOLERANCE = 4
"""The largest difference, in units in the last place, between numexpr's and NumPy's value of
one function of a chain: measured over 2·10⁶ points (N(0, 16) and U(-90, 90); ``log`` and
``sqrt`` of |x| + 10⁻³), float32: exp 2, log 4, sqrt 0, tanh 3, sigmoid 4; float64: tanh 3,
the others 0 (``tests/test_fusion.py`` checks it). Arithmetic alone is bit-identical."""


def available() -> bool:
    """Whether :data:`LIBRARY` can be imported (without importing it)."""
    return importlib.util.find_spec(LIBRARY) is not None


def _fused_aval(*avals: Aval, expr: str, flops: int) -> Aval:
    return Aval(broadcast_shapes(*(a.shape for a in avals)), same_float_dtype(*avals))


_compiled: dict[tuple[str, tuple[str, ...]], Any] = {}
_compiling = threading.Lock()


def _program(expr: str, dtypes: tuple[str, ...]) -> Any:
    """numexpr's compiled program for ``expr`` over operands ``a0, a1, …`` of ``dtypes`` (cached)."""
    key = (expr, dtypes)
    program = _compiled.get(key)
    if program is None:
        import numexpr
        from numexpr.necompiler import kind_to_type

        kinds = {"float32": "float", "float64": "double"}
        signature = [(f"a{i}", kind_to_type[kinds[d]]) for i, d in enumerate(dtypes)]
        with _compiling:
            program = _compiled.setdefault(key, numexpr.NumExpr(expr, signature=signature))
    return program


def _fused_kernel(out: np.ndarray, *inputs: np.ndarray, expr: str, flops: int) -> None:
    """``out = expr(a0, a1, …)``, one numexpr pass over the broadcast operands.

    ``same_kind`` casting lets a chain that ends in a comparison (an int 0/1 in numexpr)
    write its float ``out``, as the comparison's ufunc does; the arithmetic of a chain
    is in its operands' dtype (no float literal in the expression), so nothing else is cast.
    """
    program = _program(expr, tuple([a.dtype.name for a in inputs]))
    program(*inputs, out=out, order="K", casting="same_kind", ex_uses_vml=False)


fused = Primitive(
    "fused",
    infer=_fused_aval,
    kernel=_fused_kernel,
    vjp=None,
    flops=lambda ins, out, expr, flops: flops,
    elementwise=True,
    foldable=False,
    doc="A chain of elementwise ops as one numexpr expression ``expr`` of operands a0, a1, …, built by "
        "compile(fuse=True) after the gradient; no VJP.",
)
