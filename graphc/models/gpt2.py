"""GPT-2 (Radford et al. 2019), as Hugging Face's ``GPT2LMHeadModel``, with its parameter names.

Token and position embeddings, ``layers`` pre-LN transformer blocks, a final
layer norm, and logits by the token embedding itself (tied weights)::

    h(0)   = wte[tokens] + wpe                                  (B, T, D)
    a      = h + c_proj(attention(ln_1(h)))                     causal: position t sees 0 … t
    h(k+1) = a + c_proj(gelu_tanh(c_fc(ln_2(a))))               MLP of width 4D
    logits = ln_f(h(L)) · wteᵀ                                  (B, T, vocab)
    ℓ      = mean over (b, t) of −log softmax(logits[b, t])[targets[b, t]]

with ``attention(x) = softmax(q kᵀ/√(D/H) + M) v`` per head, q, k, v the
three D-wide slices of ``c_attn(x)``, and M the causal mask (0 on and below
the diagonal, −10⁹ above: its softmax weights are exactly 0). ``targets``
are the next tokens (``tokens`` shifted by one, fed by the caller).

GPT-2 small (the defaults: 12 layers, 768 wide, 12 heads, context 1,024,
vocabulary 50,257) has 124,439,808 parameters. Weights start N(0, 0.02²), the
residual projections N(0, 0.02²/(2L)) as the paper scales them; no dropout
(a training step is then deterministic).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc import ops
from graphc.errors import GraphError
from graphc.ir import Graph, Value, scope
from graphc.models.layers import check_sizes, trained_params
from graphc.ops.source import NormalInit

STD = 0.02
"""GPT-2's initial standard deviation of every weight matrix and embedding."""

MASKED = -1e9
"""Added to the attention scores of future positions; exp of it underflows to exactly 0."""


def _dense(x: Value, name: str, out_features: int, std: float = STD) -> Value:
    """``x · W + b`` with ``W`` of shape (in, out), as GPT-2's ``Conv1D``."""
    weight = ops.param(f"{name}.weight", (x.shape[-1], out_features), x.dtype, init=NormalInit(std))
    bias = ops.param(f"{name}.bias", (out_features,), x.dtype, init=0.0)
    return ops.add(ops.matmul(x, weight), bias, name=name)


def _layer_norm(x: Value, name: str) -> Value:
    width = x.shape[-1]
    weight = ops.param(f"{name}.weight", (width,), x.dtype, init=1.0)
    bias = ops.param(f"{name}.bias", (width,), x.dtype, init=0.0)
    return ops.layer_norm(x, (width,), weight, bias, eps=1e-5, name=name)


def _heads(x: Value, heads: int) -> Value:
    """(B, T, D) → (B, H, T, D/H)."""
    batch, context, width = x.shape
    return ops.transpose(ops.reshape(x, (batch, context, heads, width // heads)), (0, 2, 1, 3))


def causal_mask(context: int, dtype: Any) -> Value:
    """M of shape (T, T): 0 where key position s <= query position t, −10⁹ where s > t."""
    return ops.constant(np.triu(np.full((context, context), MASKED), 1), dtype=dtype, name="causal_mask")


def causal_attention(x: Value, name: str, heads: int, mask: Value) -> Value:
    """Multi-head self-attention of (B, T, D) ``x`` in which position t attends to positions 0 … t."""
    batch, context, width = x.shape
    qkv = _dense(x, f"{name}.c_attn", 3 * width)
    q, k, v = (_heads(ops.slice_axis(qkv, 2, i * width, (i + 1) * width), heads) for i in range(3))
    scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(width // heads))
    weights = ops.softmax(scores + mask, axis=-1)
    mixed = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
    return ops.reshape(mixed, (batch, context, width))


def gpt2(batch: int = 8, layers: int = 12, width: int = 768, heads: int = 12, context: int = 1024,
         vocab: int = 50257, dtype: Any = "float32") -> tuple[Graph, dict[str, Any]]:
    """GPT-2 with a next-token cross-entropy, on ``batch`` sequences of ``context`` tokens.

    The defaults are GPT-2 small and a batch of 8 sequences. ``width`` must be
    a multiple of ``heads``. Params are named as Hugging Face's
    (``h.0.attn.c_attn.weight``; ``wte.weight`` is also the output projection).

    Returns ``(graph, values)`` with ``tokens`` and ``targets`` (int64 inputs
    of shape (batch, context)), ``logits``, ``loss`` and ``params``.
    """
    check_sizes("gpt2", {"batch": batch, "layers": layers, "width": width, "heads": heads, "context": context,
                         "vocab": vocab})
    if width % heads:
        raise GraphError(f"gpt2: width={width!r} must be a multiple of heads={heads!r} (each head is width/heads wide)")
    residual_std = STD / math.sqrt(2 * layers)
    with Graph(f"gpt2-L{layers}-D{width}-b{batch}") as graph:
        tokens = ops.input("tokens", (batch, context), "int64")
        targets = ops.input("targets", (batch, context), "int64")
        with scope("embed"):
            wte = ops.param("wte.weight", (vocab, width), dtype, init=NormalInit(STD))
            wpe = ops.param("wpe.weight", (context, width), dtype, init=NormalInit(STD))
            h = ops.add(ops.embedding(tokens, wte), wpe, name="embed")
        mask = causal_mask(context, dtype)
        for layer in range(layers):
            name = f"h.{layer}"
            with scope(f"block{layer}"):
                attended = causal_attention(_layer_norm(h, f"{name}.ln_1"), f"{name}.attn", heads, mask)
                h = ops.add(h, _dense(attended, f"{name}.attn.c_proj", width, residual_std), name=f"{name}.attn.out")
                hidden = ops.gelu(_dense(_layer_norm(h, f"{name}.ln_2"), f"{name}.mlp.c_fc", 4 * width), approximate="tanh")
                h = ops.add(h, _dense(hidden, f"{name}.mlp.c_proj", width, residual_std), name=f"{name}.out")
        with scope("head"):
            logits = ops.matmul(_layer_norm(h, "ln_f"), ops.transpose(wte), name="logits")
            loss = ops.softmax_cross_entropy(logits, targets, name="loss")
    return graph, {"tokens": tokens, "targets": targets, "logits": logits, "loss": loss,
                   "params": trained_params(graph)}
