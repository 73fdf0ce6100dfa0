"""Reference graphs shared by tests, notebooks and benchmarks.

Each builder opens a fresh :class:`~graphc.Graph`, declares it, and returns
``(graph, values)`` where ``values`` maps meaningful names to the
:class:`~graphc.Value` handles a caller needs (inputs, params, intermediates,
the loss). Params get graphc's default initialisation, seeded by their names,
so a builder called twice gives the same numbers.

The builders:

- :func:`seed_dag` — the lecture's DAG (parameter sharing, a skip);
- :func:`mlp` — a classifier with a softmax cross-entropy loss;
- :func:`chain` — n dense tanh layers in a row (n = 100 … 1,000 and more);
- :func:`residual_mlp` — skip adds ``h ← h + relu(h·W + b)``;
- :func:`rnn` — an unrolled recurrent net, ``h ← tanh(x_t·W + h·W_h + b)``, its weights shared by every step;
- :func:`unet` — a U-Net on 1-D signals: pooling down, repeating up, long skips by concat;
- :func:`attention` — self-attention, ``softmax(q kᵀ/√d) v``, with a residual;
- :func:`random_dag` — random layered DAGs with fan-out and skips;
- the published architectures of :mod:`graphc.models`, at their published
  sizes by default: :func:`vgg16`, :func:`resnet18`, :func:`resnet50`,
  :func:`unet2d`, :func:`gpt2`.

:data:`ZOO` names the standard instances; every entry returns values with at
least ``"loss"`` (a scalar) and ``"params"``. :func:`training_outputs` gives
what a training step computes, ``[ℓ, ∂ℓ/∂w for w in params]``, and
:func:`feeds` random feeds for every input of a graph::

    >>> import graphc as gc
    >>> g, v = ZOO["residual"]()
    >>> prog = gc.compile(training_outputs(v))
    >>> loss, *grads = prog.run(feeds(g))
    >>> len(grads) == len(v["params"])
    True
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from graphc.autodiff import grad
from graphc.errors import GraphError
from graphc.ir import FLOAT_DTYPES, Graph, Node, Value
from graphc.ops import (
    add,
    broadcast_to,
    concat,
    input,
    matmul,
    maximum,
    mean,
    mse,
    mul,
    param,
    relu,
    reshape,
    sigmoid,
    softmax,
    softmax_cross_entropy,
    sub,
    sum,
    tanh,
    transpose,
)
from graphc.models import gpt2, resnet18, resnet50, unet2d, vgg16  # noqa: F401  (re-exported)


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
    batch: int | None,
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
    ``batch=None`` leaves the batch size to each run (a program per size).
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


# --- shared pieces -------------------------------------------------------------------------

Values = dict[str, Any]


def _dense(h: Value, w: Value, b: Value, name: str | None = None) -> Value:
    """``h · W + b`` (b broadcast over the leading axes)."""
    return add(matmul(h, w), b, name=name)


def _layer_params(prefix: str, fan_in: int, fan_out: int, dtype: Any) -> tuple[Value, Value]:
    """``W{prefix}`` of shape (fan_in, fan_out), Glorot-uniform, and ``b{prefix}`` of zeros."""
    return param(f"W{prefix}", shape=(fan_in, fan_out), dtype=dtype), param(f"b{prefix}", shape=(fan_out,), dtype=dtype)


# --- a deep chain ----------------------------------------------------------------------------


def chain(n: int = 100, width: int = 64, batch: int = 16, dtype: Any = "float32") -> tuple[Graph, Values]:
    """A deep chain of ``n`` dense tanh layers with a squared-error loss.

    One step (one layer, one φ) is three primitive nodes::

        h(k) = φk(h(k-1); W(k), b(k)) = tanh(h(k-1) · W(k) + b(k)),   k = 1 … n
        ℓ    = mean((h(n) - y)²)

    with ``h(0) = x`` of shape ``(batch, width)``, ``W(k)`` of shape
    ``(width, width)`` and ``b(k)`` of shape ``(width,)``. Every h(k) is read
    by the backward pass (``J^T_{tanh} g = g·(1 - h(k)²)``, ``∂ℓ/∂W(k) = h(k-1)ᵀ · ...``),
    so with no recompute all n activations are live when the backward pass
    starts: the textbook case of "BP needs all the intermediate results".

    Returns ``(graph, values)`` with ``x``, ``y`` (inputs), ``params``
    (``[W1, b1, …, Wn, bn]``), ``h`` (the last activation) and ``loss``.
    """
    if n < 1:
        raise GraphError(f"chain: n = {n} layers; need at least one")
    with Graph(f"chain-{n}") as graph:
        x = input("x", shape=(batch, width), dtype=dtype)
        y = input("y", shape=(batch, width), dtype=dtype)
        params: list[Value] = []
        h = x
        for k in range(1, n + 1):
            w, b = _layer_params(str(k), width, width, dtype)
            params += [w, b]
            h = tanh(_dense(h, w, b, name=f"z{k}"), name=f"h{k}")
        loss = mse(h, y, name="loss")
    return graph, {"x": x, "y": y, "params": params, "h": h, "loss": loss}


# --- a residual MLP --------------------------------------------------------------------------


def residual_mlp(
    depth: int = 8, width: int = 64, batch: int = 32, classes: int = 10, dtype: Any = "float32"
) -> tuple[Graph, Values]:
    """An MLP of ``depth`` residual blocks and a softmax cross-entropy head.

    With ``h(0) = x`` of shape ``(batch, width)``::

        h(k) = h(k-1) + relu(h(k-1) · W(k) + b(k)),   k = 1 … depth
        logits = h(depth) · W_out + b_out
        ℓ = -(1/batch) Σ_i log softmax(logits_i)[y_i]

    Each h(k-1) has two consumers (the skip add and the matmul), so its
    gradient is a sum of two J^T terms: ``∂ℓ/∂h(k-1) = ∂ℓ/∂h(k) + J^T_{dense} ∂ℓ/∂z(k)``.

    Returns ``(graph, values)`` with ``x``, ``y`` (int64 labels in
    ``[0, classes)``), ``params``, ``logits``, ``loss`` and ``classes``.
    """
    with Graph(f"residual-{depth}") as graph:
        x = input("x", shape=(batch, width), dtype=dtype)
        y = input("y", shape=(batch,), dtype="int64")
        params: list[Value] = []
        h = x
        for k in range(1, depth + 1):
            w, b = _layer_params(str(k), width, width, dtype)
            params += [w, b]
            h = add(h, relu(_dense(h, w, b, name=f"z{k}"), name=f"r{k}"), name=f"h{k}")
        w, b = _layer_params("_out", width, classes, dtype)
        params += [w, b]
        logits = _dense(h, w, b, name="logits")
        loss = softmax_cross_entropy(logits, y, name="loss")
    return graph, {"x": x, "y": y, "params": params, "logits": logits, "loss": loss, "classes": classes}


# --- an unrolled recurrent net -------------------------------------------------------------


def rnn(
    steps: int = 20, features: int = 16, hidden: int = 32, batch: int = 8, dtype: Any = "float32"
) -> tuple[Graph, Values]:
    """A recurrent net unrolled over ``steps`` time steps, its three weights shared by every step.

    With ``x`` of shape ``(steps, batch, features)`` and a learned initial state ``h(0)``::

        h(t) = tanh(x[t] · W + h(t-1) · W_h + b),   t = 1 … steps
        ℓ    = mean((h(steps) - y)²)

    The same ``W``, ``W_h`` and ``b`` are read at every step, so each of their
    gradients is a sum of ``steps`` J^T terms (backpropagation through time).
    No scopes: a picture finds the time steps as repeated blocks.

    Returns ``(graph, values)`` with ``x``, ``y``, ``params`` (``[W, W_h, b, h0]``),
    ``h`` (the last state) and ``loss``.
    """
    if steps < 1:
        raise GraphError(f"rnn: steps = {steps}; need at least one")
    with Graph(f"rnn-{steps}") as graph:
        x = input("x", shape=(steps, batch, features), dtype=dtype)
        y = input("y", shape=(batch, hidden), dtype=dtype)
        w = param("W", shape=(features, hidden), dtype=dtype)
        w_h = param("W_h", shape=(hidden, hidden), dtype=dtype)
        b = param("b", shape=(hidden,), dtype=dtype)
        h = h0 = param("h0", shape=(batch, hidden), dtype=dtype, init=0.0)
        for t in range(steps):
            h = tanh(add(add(matmul(x[t], w), matmul(h, w_h)), b), name=f"h{t + 1}")
        loss = mse(h, y, name="loss")
    return graph, {"x": x, "y": y, "params": [w, w_h, b, h0], "h": h, "loss": loss}


# --- a U-Net on 1-D signals ------------------------------------------------------------------


def _downsample(h: Value, name: str) -> Value:
    """Average pairs of neighbours along the length: (B, L, C) → (B, L/2, C).

    ``d[b, i, c] = ½ (h[b, 2i, c] + h[b, 2i+1, c])``, a reshape (a view) and a mean.
    """
    batch, length, channels = h.shape
    return mean(reshape(h, (batch, length // 2, 2, channels)), axis=2, name=name)


def _upsample(h: Value, name: str) -> Value:
    """Repeat every position twice along the length: (B, L, C) → (B, 2L, C).

    ``u[b, 2i, c] = u[b, 2i+1, c] = h[b, i, c]``: a broadcast to (B, L, 2, C),
    then a reshape (a copy, since a broadcast is not contiguous).
    """
    batch, length, channels = h.shape
    pairs = broadcast_to(reshape(h, (batch, length, 1, channels)), (batch, length, 2, channels))
    return reshape(pairs, (batch, 2 * length, channels), name=name)


def unet(
    depth: int = 4, width: int = 8, length: int = 64, batch: int = 4, dtype: Any = "float32"
) -> tuple[Graph, Values]:
    """A U-Net on 1-D signals: a down path, an up path, and long skips joined by concat.

    Signals are ``(batch, length, channels)``; a dense layer acts on the
    channels of every position (a 1×1 convolution). Level ``k`` has length
    ``L_k = length / 2^k`` and ``C_k = width · 2^k`` channels::

        s(0) = relu(x · W_in + b_in)                                 (B, L_0, C_0)
        down:  s(k+1) = relu(pool(s(k)) · D(k) + d(k))               (B, L_k+1, C_k+1)
        up:    u(k) = relu(repeat(t(k+1)) · U(k) + u_b(k))           (B, L_k, C_k)
               t(k) = relu(concat[u(k), s(k)] · M(k) + m(k))         (B, L_k, C_k)
        ℓ = mean((t(0) · W_out + b_out - y)²)

    with ``t(depth) = s(depth)``, ``pool`` the mean of neighbour pairs and
    ``repeat`` its transpose up to a factor. Every s(k) is held from the
    down path to the up path (the long skip), and concat's J^T slices the
    gradient back into the two branches.

    Returns ``(graph, values)`` with ``x``, ``y`` (inputs of shape
    ``(batch, length, 1)`` and ``(batch, length, 1)``), ``params``, ``out`` and ``loss``.
    """
    if depth < 1 or length % 2**depth:
        raise GraphError(f"unet: length {length} must be divisible by 2^depth = {2**depth} (depth ≥ 1)")
    with Graph(f"unet-{depth}") as graph:
        x = input("x", shape=(batch, length, 1), dtype=dtype)
        y = input("y", shape=(batch, length, 1), dtype=dtype)
        params: list[Value] = []

        def dense(h: Value, fan_out: int, prefix: str) -> Value:
            w, b = _layer_params(prefix, h.shape[-1], fan_out, dtype)
            params.extend([w, b])
            return relu(_dense(h, w, b), name=prefix.strip("_").lower())

        skips = [dense(x, width, "_in")]
        for k in range(depth):
            skips.append(dense(_downsample(skips[k], f"pool{k}"), width * 2 ** (k + 1), f"D{k}"))
        t = skips[depth]
        for k in reversed(range(depth)):
            u = dense(_upsample(t, f"repeat{k}"), width * 2**k, f"U{k}")
            t = dense(concat([u, skips[k]], axis=-1, name=f"cat{k}"), width * 2**k, f"M{k}")
        w, b = _layer_params("_out", width, 1, dtype)
        params += [w, b]
        out = _dense(t, w, b, name="out")
        loss = mse(out, y, name="loss")
    return graph, {"x": x, "y": y, "params": params, "out": out, "loss": loss}


# --- an attention block ----------------------------------------------------------------------


def _split_heads(h: Value, heads: int, name: str) -> Value:
    """(S, D) → (H, S, D/H): a reshape then a transpose (both views)."""
    seq, dim = h.shape
    return transpose(reshape(h, (seq, heads, dim // heads)), (1, 0, 2), name=name)


def _merge_heads(h: Value, name: str) -> Value:
    """(H, S, D/H) → (S, D): a transpose (a view) then a reshape (a copy)."""
    heads, seq, dh = h.shape
    return reshape(transpose(h, (1, 0, 2)), (seq, heads * dh), name=name)


def attention(seq: int = 32, dim: int = 32, heads: int = 1, dtype: Any = "float32") -> tuple[Graph, Values]:
    """One self-attention block with a residual connection and a squared-error loss.

    With ``x`` of shape ``(seq, dim)`` and ``d = dim / heads``, per head::

        q = x · Wq,  k = x · Wk,  v = x · Wv               (split into heads)
        A = softmax(q kᵀ / √d)                              (seq, seq), rows sum to 1
        o = A v                                              (heads merged back)
        h = x + o · Wo
        ℓ = mean((h - y)²)

    x feeds four consumers (three projections and the skip add), so ∂ℓ/∂x
    is a sum of four J^T terms. The (seq, seq) attention matrix and its
    gradient are the largest values of the graph.

    Returns ``(graph, values)`` with ``x``, ``y``, ``params``
    (``[Wq, Wk, Wv, Wo]``), ``attn`` (A), ``h`` and ``loss``.
    """
    if dim % heads:
        raise GraphError(f"attention: dim {dim} is not divisible by heads {heads}")
    with Graph(f"attention-{heads}h") as graph:
        x = input("x", shape=(seq, dim), dtype=dtype)
        y = input("y", shape=(seq, dim), dtype=dtype)
        wq, wk, wv, wo = (param(n, shape=(dim, dim), dtype=dtype) for n in ("Wq", "Wk", "Wv", "Wo"))
        q = _split_heads(matmul(x, wq, name="q"), heads, "q_heads")
        k = _split_heads(matmul(x, wk, name="k"), heads, "k_heads")
        v = _split_heads(matmul(x, wv, name="v"), heads, "v_heads")
        scores = mul(matmul(q, transpose(k, (0, 2, 1))), 1.0 / math.sqrt(dim // heads), name="scores")
        attn = softmax(scores, axis=-1, name="attn")
        o = _merge_heads(matmul(attn, v), "o")
        h = add(x, matmul(o, wo), name="h")
        loss = mse(h, y, name="loss")
    return graph, {"x": x, "y": y, "params": [wq, wk, wv, wo], "attn": attn, "h": h, "loss": loss}


# --- random layered DAGs ---------------------------------------------------------------------

_UNARY = {"tanh": tanh, "sigmoid": sigmoid, "relu": relu}
_BINARY = {"add": add, "sub": sub, "mul": mul, "maximum": maximum}
_KINDS = ("tanh", "sigmoid", "relu", "add", "sub", "mul", "maximum", "matmul")
_MAX_SCALE = 4.0  # a node whose typical magnitude would exceed this gets a tanh instead


def _scale(kind: str, a: float, b: float) -> float:
    """A rough bound on a node's typical magnitude from its operands' (keeps float32 finite).

    tanh and sigmoid are bounded by 1; relu and maximum keep the larger scale; a
    sum or difference adds scales; a product multiplies them; a Glorot-initialised
    square matmul keeps the scale (Var(x·W) = width · Var(W) · Var(x) = Var(x)).
    """
    if kind in ("tanh", "sigmoid"):
        return 1.0
    if kind in ("add", "sub"):
        return a + b
    if kind == "mul":
        return a * b
    return max(a, b)


def _pick_operands(layers: list[list[int]], rng: np.random.Generator, skip: float) -> tuple[int, int]:
    """Two distinct earlier nodes: one from the previous layer, the other from it or, with
    probability ``skip``, from any earlier layer (a skip connection)."""
    previous = layers[-1]
    a = int(previous[rng.integers(len(previous))])
    pool = [i for layer in layers[:-1] for i in layer] if rng.random() < skip and len(layers) > 1 else previous
    b = int(pool[rng.integers(len(pool))])
    if b == a:
        others = [i for layer in layers for i in layer if i != a]
        b = int(others[rng.integers(len(others))]) if others else a
    return a, b


def random_dag(
    n: int = 100, seed: int = 0, width: int = 16, batch: int = 8, layer_size: int = 4, skip: float = 0.25,
    dtype: Any = "float32",
) -> tuple[Graph, Values]:
    """A random layered DAG of ``n`` computed nodes over ``(batch, width)`` values.

    Nodes come in layers of 1 … ``layer_size`` nodes. Each node reads a node
    of the previous layer and, for a binary op, a second one from that layer
    or (with probability ``skip``) from any earlier layer: fan-out and skip
    connections. Ops: ``tanh sigmoid relu`` (unary), ``add sub mul maximum``
    (binary) and ``matmul`` with a fresh square param ``W`` (Glorot), so the
    graph has parameters on many paths. A node whose typical magnitude would
    pass 4 becomes a tanh instead, which keeps float32 finite at any depth.
    The sinks (nodes nobody reads) are reduced at the end::

        ℓ = Σ_{s sink} mean(s ⊙ s)

    ``n`` counts the random nodes only (not the reductions at the end nor
    the sources); the same ``(n, seed, …)`` always gives the same graph.

    Returns ``(graph, values)`` with ``x`` (the one input), ``params``
    (the matmul weights), ``sinks`` and ``loss``.
    """
    if n < 1:
        raise GraphError(f"random_dag: n = {n} nodes; need at least one")
    rng = np.random.default_rng(seed)
    with Graph(f"random-{n}-{seed}") as graph:
        x = input("x", shape=(batch, width), dtype=dtype)
        nodes, scales, layers = [x], [1.0], [[0]]
        params: list[Value] = []
        read: set[int] = set()
        while len(nodes) - 1 < n:
            size = min(int(rng.integers(1, layer_size + 1)), n - (len(nodes) - 1))
            layer = []
            for _ in range(size):
                a, b = _pick_operands(layers, rng, skip)
                kind = _KINDS[int(rng.integers(len(_KINDS)))]
                value, scale = _random_node(kind, nodes[a], nodes[b], scales[a], scales[b], params, len(nodes))
                read.update((a,) if kind in _UNARY or kind == "matmul" else (a, b))
                layer.append(len(nodes))
                nodes.append(value)
                scales.append(scale)
            layers.append(layer)
        sinks = [nodes[i] for i in range(1, len(nodes)) if i not in read]
        terms = [mean(mul(s, s), name=f"sq{k}") for k, s in enumerate(sinks)]
        loss = terms[0]
        for term in terms[1:]:
            loss = add(loss, term)
        loss.node.name = "loss"
    return graph, {"x": x, "params": params, "sinks": sinks, "loss": loss}


def _random_node(
    kind: str, a: Value, b: Value, scale_a: float, scale_b: float, params: list[Value], index: int
) -> tuple[Value, float]:
    """The node of one draw and its scale estimate (a tanh of ``a`` if the scale runs away)."""
    if kind != "matmul" and _scale(kind, scale_a, scale_b) > _MAX_SCALE:
        kind = "tanh"
    name = f"n{index}"
    if kind in _UNARY:
        return _UNARY[kind](a, name=name), _scale(kind, scale_a, scale_a)
    if kind in _BINARY:
        return _BINARY[kind](a, b, name=name), _scale(kind, scale_a, scale_b)
    width = a.shape[-1]
    w = param(f"W{index}", shape=(width, width), dtype=a.dtype)
    params.append(w)
    return matmul(a, w, name=name), scale_a


# --- the registry and helpers ------------------------------------------------------------------


def _seed_entry() -> tuple[Graph, Values]:
    """:func:`seed_dag` with ``params = [w1, w2]`` added to its values."""
    graph, values = seed_dag()
    return graph, {**values, "params": [values["w1"], values["w2"]]}


def _mlp_entry() -> tuple[Graph, Values]:
    """:func:`mlp` of batch 32 and sizes 64-128-10, with ``classes`` added to its values."""
    graph, values = mlp(32, sizes=(64, 128, 10))
    return graph, {**values, "classes": 10}


ZOO: dict[str, Callable[[], tuple[Graph, Values]]] = {
    "seed": _seed_entry,
    "mlp": _mlp_entry,
    "chain-100": lambda: chain(100),
    "chain-1000": lambda: chain(1000),
    "residual": residual_mlp,
    "unet": unet,
    "attention": attention,
    "attention-4h": lambda: attention(seq=64, dim=32, heads=4),
    "random-100": lambda: random_dag(100),
    "random-1000": lambda: random_dag(1000),
}
"""The standard instances, by name: each call builds a fresh graph."""


def training_outputs(values: Values) -> list[Value]:
    """``[ℓ, ∂ℓ/∂w(1), …, ∂ℓ/∂w(m)]`` for ``values["loss"]`` and ``values["params"]``.

    Each call adds the adjoint nodes to the graph again (compile's CSE merges
    nothing across calls, so call it once per graph).
    """
    loss = values["loss"]
    return [loss, *grad(loss, list(values["params"]))]


def label_classes(graph: Graph, label: Node) -> int | None:
    """The number of classes an int input indexes, read off the node that consumes it.

    Each op that reads indices says the range they index (``Primitive.index_bound``):
    ``softmax_cross_entropy(logits, labels)`` (its ``nll_loss`` node) indexes ``logits.shape[-1]`` classes,
    ``one_hot(labels, classes)`` ``classes``, ``embedding(tokens, weight)`` ``weight.shape[0]``
    rows; None if no consumer tells.
    """
    for node in graph.nodes:
        if node.op is None or node.op.index_bound is None:
            continue
        avals = [i.aval for i in node.inputs]
        for k, operand in enumerate(node.inputs):
            if operand is label:
                bound = node.op.index_bound(k, *avals, **node.attrs)
                if bound is not None:
                    return int(bound)
    return None


def feeds(graph: Graph, seed: int = 0, classes: int | None = None) -> dict[str, np.ndarray]:
    """Random feeds for every input of ``graph``, by name, in the input's dtype.

    Float inputs get standard normal samples; int inputs (labels) get
    integers uniform in ``[0, classes)``, with ``classes`` read off the
    label's consumer (:func:`label_classes`) unless given. The same
    ``(graph, seed)`` always gives the same arrays.
    """
    rng = np.random.default_rng(seed)
    result = {}
    for name, node in graph.inputs.items():
        if node.dtype in FLOAT_DTYPES:
            result[name] = rng.standard_normal(node.shape).astype(node.dtype)
            continue
        count = classes if classes is not None else label_classes(graph, node)
        if count is None:
            raise GraphError(
                f"feeds: int input {node.describe()} feeds no softmax_cross_entropy or one_hot; "
                "pass classes= to say how many labels there are"
            )
        result[name] = rng.integers(0, count, size=node.shape).astype(node.dtype)
    return result
