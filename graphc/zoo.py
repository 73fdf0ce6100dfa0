"""Reference graphs shared by tests, notebooks and benchmarks.

Each builder opens a fresh :class:`~graphc.Graph`, declares it, and returns
``(graph, values)`` where ``values`` maps meaningful names to the
:class:`~graphc.Value` handles a caller needs (inputs, params, intermediates,
the loss). Params get graphc's default initialisation, seeded by their names,
so a builder called twice gives the same numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

from graphc.errors import GraphError
from graphc.ir import Graph, Value
from graphc.ops import add, input, matmul, mul, param, relu, sigmoid, softmax_cross_entropy, sum, tanh


def seed_dag(batch: int = 8, features: int = 4, dtype: Any = "float32") -> tuple[Graph, dict[str, Value]]:
    """The lecture's DAG, with parameter sharing and a skip connection.

    With ``x(0) = x`` of shape ``(batch, features)`` and square weights::

        x(1) = φ1(x(0); w(1))       = tanh(x(0) · w(1))
        x(2) = φ2(x(0), x(1); w(2)) = σ((x(0) + x(1)) · w(2))
        x(3) = φ3(x(1), x(2); w(1)) = (x(1) ⊙ x(2)) · w(1)
        ℓ    = Σ x(3) ⊙ x(3)

    ``w(1)`` is used by φ1 and φ3, so its gradient is a sum of two terms::

        ∂ℓ/∂w(1) = J^T_{φ3|w(1)} ∂ℓ/∂x(3) + J^T_{φ1|w(1)} ∂ℓ/∂x(1)

    graphc differentiates primitives, so the two terms are the J^T of the
    matmuls ``x3`` (φ3's last step) and ``z1`` (φ1's first step).

    Node names: ``z1 = x @ w1``, ``x1``, ``s2 = x + x1``, ``z2 = s2 @ w2``,
    ``x2``, ``p3 = x1 * x2``, ``x3``, ``x3_sq``, ``loss``.

    Returns ``(graph, values)`` with values ``x, w1, w2, x1, x2, x3, loss``.

    Examples
    --------
    >>> import graphc as gc
    >>> g, v = seed_dag()
    >>> dw1, dw2 = gc.grad(v["loss"], [v["w1"], v["w2"]])
    >>> dw1.shape
    (4, 4)
    """
    with Graph("seed") as graph:
        x = input("x", shape=(batch, features), dtype=dtype)
        w1 = param("w1", shape=(features, features), dtype=dtype)
        w2 = param("w2", shape=(features, features), dtype=dtype)
        x1 = tanh(matmul(x, w1, name="z1"), name="x1")
        x2 = sigmoid(matmul(add(x, x1, name="s2"), w2, name="z2"), name="x2")
        x3 = matmul(mul(x1, x2, name="p3"), w1, name="x3")
        loss = sum(mul(x3, x3, name="x3_sq"), name="loss")
    return graph, {"x": x, "w1": w1, "w2": w2, "x1": x1, "x2": x2, "x3": x3, "loss": loss}


_ACTIVATIONS = {"tanh": tanh, "relu": relu}


def mlp(
    batch: int,
    sizes: Sequence[int] = (64, 128, 10),
    dtype: Any = "float32",
    activation: str = "tanh",
) -> tuple[Graph, dict[str, Any]]:
    """A multi-layer perceptron classifier with a softmax cross-entropy loss.

    For layers ``k = 1 … L`` (``L = len(sizes) - 1``), with ``h(0) = x`` of
    shape ``(batch, sizes[0])`` and int64 labels ``y`` of shape ``(batch,)``::

        z(k) = h(k-1) · W(k) + b(k)          W(k): (sizes[k-1], sizes[k]),  b(k): (sizes[k],)
        h(k) = a(z(k))                       for k < L, a = tanh or relu
        logits = z(L)
        ℓ = -(1/batch) Σ_i log softmax(logits_i)[y_i]

    Weights start Glorot-uniform, biases at zero. Node names: ``z1, h1, …,
    logits, loss``; params ``W1, b1, …, WL, bL``.

    Returns ``(graph, values)`` with values ``x`` (input), ``y`` (labels
    input), ``params`` (list ``[W1, b1, W2, b2, …]``), ``logits`` and ``loss``.
    """
    if activation not in _ACTIVATIONS:
        raise GraphError(f"mlp: activation {activation!r} is not one of {', '.join(_ACTIVATIONS)}")
    if len(sizes) < 2:
        raise GraphError(f"mlp: sizes {tuple(sizes)} needs an input and an output size")
    act = _ACTIVATIONS[activation]
    layers = len(sizes) - 1
    with Graph(f"mlp{'-'.join(map(str, sizes))}") as graph:
        x = input("x", shape=(batch, sizes[0]), dtype=dtype)
        y = input("y", shape=(batch,), dtype="int64")
        params: list[Value] = []
        h = x
        for k in range(1, layers + 1):
            w = param(f"W{k}", shape=(sizes[k - 1], sizes[k]), dtype=dtype)
            b = param(f"b{k}", shape=(sizes[k],), dtype=dtype)
            params += [w, b]
            last = k == layers
            z = add(matmul(h, w), b, name="logits" if last else f"z{k}")
            h = z if last else act(z, name=f"h{k}")
        loss = softmax_cross_entropy(h, y, name="loss")
    return graph, {"x": x, "y": y, "params": params, "logits": h, "loss": loss}
