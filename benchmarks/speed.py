"""Speed of one training step: graphc's compiled plan against NumPy, JAX and PyTorch.

A training step is what :func:`graphc.zoo.training_outputs` compiles: the loss
and its gradient with respect to every param, ``[ℓ, ∂ℓ/∂w(1), …, ∂ℓ/∂w(m)]``.
Each workload is a graph of :mod:`graphc.zoo` (an MLP with a softmax
cross-entropy loss, a deep chain of tanh layers, a self-attention block) or a
small configuration of :mod:`graphc.models` (a ResNet-18 on 8 images of
32×32, 10 classes, full width, batch norm on the batch's statistics; a
2-layer GPT-2 at context 128 on 4 sequences, narrowed to width 128, 4 heads,
a vocabulary of 1,024: at GPT-2's 768 and 50,257 the logits alone are 79
GFLOP forward, minutes per step here), and the same math is written out four
times:

- ``graphc``: ``gc.compile(zoo.training_outputs(values))``, then ``prog.run(feeds)``
  (the stored params are read, the inputs fed; the run returns fresh arrays);
- ``numpy``: the baseline every ``/np`` ratio divides by. For the zoo graphs,
  the forward pass and a backward pass written by hand with NumPy (plain
  expressions, no preallocation). For the models (ResNet-18, GPT-2) no NumPy
  is written by hand: ``numpy`` is graphc's own plan written out as one
  straight-line NumPy module (``prog.to_source()``: the same kernels into the
  same preallocated arena, one NumPy call per instruction, no interpreter).
  On those rows ``graphc/np`` is therefore the runtime's overhead over its
  own kernels, not a comparison with a different way of writing the math;
- ``jax``: ``jax.jit(jax.value_and_grad(loss))`` on the CPU, in the graph's dtype,
  with ``block_until_ready`` on the results;
- ``torch``: the forward pass with PyTorch on the CPU (eager) and ``torch.autograd.grad``.

The JAX and PyTorch models are written here as functions of graphc's params
(by their torchvision / Hugging Face names, in graphc's order) and compute the
same math: ``F.conv2d``/``lax.conv_general_dilated``, batch norm with the
batch's biased variance and eps 10⁻⁵, max pool 3/2 padded by 1, GPT-2's
additive causal mask of −10⁹ and tanh GELU, the tied output projection.

Every implementation gets the same param values (graphc's stored ones) and
inputs (``zoo.feeds``). Before anything is timed, each one's loss and gradients
are checked against graphc's: the table of checks gives, per implementation,
the largest normwise relative difference ``max|a − b| / max|b|`` over the loss
and the gradients, and any array outside ``np.allclose`` with a float32
tolerance is a mismatch (exit status 1, nothing timed).

Timing: a few warm-up calls (JAX compiles its function on the first), then for
each implementation a number of calls per repetition chosen so that one
repetition lasts about 20 ms; the repetitions of all implementations are
interleaved, round by round, in one process, and the table gives the median
time of one call in ms. The ``/np`` ratios divide by ``numpy`` (see above): below 1 is
faster than NumPy, above 1 slower. ``noise`` is the largest interquartile range
over median among the implementations of a row: on a shared machine, ratios
closer than that are not a difference. ``instr`` counts the instructions of
graphc's plan (views included, which are bound once and cost nothing per run).
``graphc/torch`` is graphc's time over PyTorch eager's. ``µs/instr``, the
runtime overhead per instruction, is ``(graphc ms − numpy ms) / instr``: on
the model rows, where ``numpy`` runs graphc's very kernels without the
interpreter, it is the interpreter's cost of one instruction; on the zoo
rows it also holds whatever the hand-written NumPy does differently (fewer,
fused expressions), and can be negative.

GEMM share: the script first measures this machine's GEMM rate, the best of
five float32 ``np.matmul`` of 1024×1024 by 1024×1024 (512 with ``--quick``)
on NumPy's BLAS as capped (one thread by default), in GFLOP/s; then each
implementation's rate on each workload is graphc's FLOP count of the step
(``prog.cost``: forward + backward, the same math for everyone) over its
median time, and ``%gemm`` is that rate over the GEMM rate.
The compile times (graphc's ``gc.compile``, JAX's first call) are printed
apart: they are paid once.

Threads: NumPy's BLAS (which graphc and the hand-written NumPy share),
PyTorch and JAX run on one thread unless ``--threads N`` says otherwise
(``0``: each library's default). NumPy's cap is set at run time through
threadpoolctl, PyTorch's with ``torch.set_num_threads``; JAX reads its threads
once, when it is imported, so with ``--threads 1`` the script adds
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` to
``XLA_FLAGS`` before anything imports jax (the header line says "JAX 1
(XLA_FLAGS)"; ``--threads N`` for other N leaves JAX at its default). A library's
thread pool spins for a while after each call, so side by side it takes a core
from the library timed next, and on a small machine shared with other processes
a parallel call waits for a descheduled thread: with PyTorch's default of two
threads on this 2-core machine, a step of 0.25 ms took 110 ms.

    python benchmarks/speed.py [--quick] [--threads N] [--skip jax,torch] [--only mlp,chain] [--repeats N] [--plot out/bench/speed.png]

``--only`` keeps the workloads whose names contain one of the comma-separated parts
(``--only "mlp 32×,chain 32×64"``: the small MLP and the 64-wide chain of the full list).

Measured 2026-11-30 06:28–06:30 UTC on this 2-core machine (load average about 1 before the run),
numpy 2.4.6, jax 0.10.2, torch 2.13.0+cpu, every library on one thread (``--threads 1``), 60
repetitions (``--repeats 60``); GEMM rate 83.6 GFLOP/s. On the model rows ``numpy`` is graphc's plan
as straight-line NumPy::

    workload                     instr  graphc ms  numpy ms   jax ms  torch ms  graphc/np  jax/np  torch/np  graphc/torch  µs/instr  noise
    ---------------------------  -----  ---------  --------  -------  --------  ---------  ------  --------  ------------  --------  -----
    mlp 32×64-128-10                20      0.168     0.153    0.169     0.391       1.10    1.11      2.56          0.43       0.8   0.60
    mlp 256×64-256-256-10           32      3.224     3.114    2.907     5.023       1.04    0.93      1.61          0.64       3.5   0.18
    chain 32×64, batch 16          388      1.927     1.730    1.520     5.094       1.11    0.88      2.95          0.38       0.5   0.42
    chain 32×256, batch 256        388     54.761    59.819   46.416    66.558       0.92    0.78      1.11          0.82     -13.0   0.27
    attention 128×64, 4 heads       52      1.194     1.220    1.331     2.166       0.98    1.09      1.78          0.55      -0.5   0.15
    resnet18 b8 32px 10 classes    680    121.056   116.781  222.536   181.507       1.04    1.91      1.55          0.67       6.3   0.22
    gpt2 L2 T128 D128 V1024 b4     293     59.834    58.743   48.704    58.702       1.02    0.83      1.00          1.02       3.7   0.16

    workload                      MFLOP  graphc %gemm  numpy %gemm  jax %gemm  torch %gemm
    ---------------------------  ------  ------------  -----------  ---------  -----------
    mlp 32×64-128-10                1.3           9.5         10.5        9.5          4.1
    mlp 256×64-256-256-10         122.7          45.5         47.1       50.5         29.2
    chain 32×64, batch 16          12.8           7.9          8.8       10.1          3.0
    chain 32×256, batch 256      3209.0          70.1         64.1       82.7         57.6
    attention 128×64, 4 heads      22.8          22.8         22.3       20.5         12.6
    resnet18 b8 32px 10 classes  1452.1          14.3         14.9        7.8          9.6
    gpt2 L2 T128 D128 V1024 b4   1855.4          37.1         37.8       45.5         37.8

The ResNet-18's FLOP count fell from 1,758 to 1,452 MFLOP: its last stage's 3×3 convolutions
run on 1×1 maps, where eight of the nine kernel offsets read only zero padding, and the kernels
now skip them (``graphc.ops.conv.live_taps``; ``prog.cost`` counts what they multiply). Three
runs of 15 repetitions just before this one (06:25–06:28 UTC) gave graphc/np 1.20, 1.19, 1.15
(small MLP), 1.14, 1.04, 1.14 (64-wide chain), and graphc/torch 0.67, 0.76, 0.73 (ResNet-18) and
0.93, 1.00, 0.98 (GPT-2): the medians of one run move by more than the targets' margins.

PyTorch's times move most from run to run when JAX runs in the same process (the ResNet-18 step
took PyTorch 100–195 ms within the hour), so the two models were also timed with graphc and
PyTorch alone in one process, alternated round by round, graphc's time over PyTorch's in each
round (median, in brackets the quartiles; 30–60 rounds each, load average 0.6–4.5)::

    run (UTC)   ResNet-18                GPT-2
    05:53       0.814 [0.775, 0.837]     0.992 [0.956, 1.057]
    06:31       0.665 [0.620, 0.723]     0.914 [0.894, 0.967]

and the small steps against the hand-written NumPy the same way (alternating blocks of about
2 ms for 30 s; 06:37 UTC): the small MLP 1.084 [0.993, 1.189], the 64-wide chain 1.039 [0.931,
1.155].

What made the models faster this time, per call of the kernels on one thread:

- the convolutions skip the kernel offsets that read only padding where at most a quarter of them
  read the image (ResNet-18's last stage: conv2d 2.66 → 1.24 ms, its input gradient 3.40 → 1.17,
  its weight gradient 2.84 → 1.8);
- at stride 1 on at least 128 pixels the input gradient is the convolution of g with the flipped
  weights instead of adding each column back (64 channels on 8×8 maps: 0.76 of the time, 128 on
  4×4: 0.87);
- batch norm's and layer norm's VJPs read x̂ and 1/σ̂ from one ``norm_statistics`` node, which batch
  norm's running statistics share: a ResNet-18 step computes each batch's statistics twice (the
  forward kernel, and that node) where it computed them four times (the forward kernel, the running
  mean and variance, and the VJP's recomputed x̂ and variance);
- a dense layer's weight gradient is one GEMM over the stacked rows instead of a batched product
  summed over the batch, and the tied output projection's gradient is written in the embedding's
  layout (its strided add took 0.6 ms);
- GELU's tanh form is ``x·σ(2u)``, one exp instead of a tanh (float32 tanh costs twice an exp here).

And the small steps: a feed the plan only reads is read where the caller keeps it (no copy into
its slot), a ufunc's output is passed positionally, ``mean`` is a sum and a division (np.mean's own
arithmetic, half its cost on small arrays), and the check that no stored param was replaced reads
the param nodes directly (43 µs a run on the chain's 64 params through the mapping).

Against the targets: graphc ≤ 1.05 × NumPy holds on the 256-wide MLP, the 256-wide chain,
attention, ResNet-18 and GPT-2 (the last two against graphc's plan without the runtime), and on
the 64-wide chain round by round (1.04), not in every run of this table; it does not on the small
MLP (1.08–1.10). The remaining difference there is work the hand-written step does not do: the
label range check (about 1.3 µs, one reduction), tanh's derivative as (1 − h)(1 + h), one NumPy
call per layer more than the hand-written 1 − h·h, and the loss seed's two products; changing
the last two would change the bits of the results. graphc ≤ 0.9 × PyTorch eager holds on the zoo
workloads (0.43–0.82 here) and on the ResNet-18 (0.67–0.81); not on the GPT-2 (0.91–1.02), where
the matrix products (62 % of the kernels' time) run at 40–72 GFLOP/s, the attention's (K = 32)
slowest, and layer norm, softmax and the cross-entropy are several NumPy passes each.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import graphc as gc
from graphc import models, zoo

IMPLEMENTATIONS = ("graphc", "numpy", "jax", "torch")
BASELINE = "numpy"
REPEAT_SECONDS = 0.02  # one repetition runs the step about this long
TOLERANCE = {  # np.allclose(a, b, rtol, atol · max|b|) per dtype of the graph
    "float32": (1e-3, 1e-4),
    "float64": (1e-9, 1e-10),
}

Arrays = list[np.ndarray]


# --- workloads ---------------------------------------------------------------------------------


@dataclass
class Workload:
    """A zoo graph by name: ``kind`` says which hand-written math reproduces it."""

    name: str
    kind: str  # "mlp", "chain", "attention", or a model of graphc.models: "resnet18", "gpt2"
    build: Callable[[], tuple[gc.Graph, dict[str, Any]]]
    options: dict[str, Any] = field(default_factory=dict)  # activation, heads; layers (gpt2)


@dataclass
class Problem:
    """A built workload: the graph, its feeds, and the param values every implementation uses."""

    name: str
    kind: str
    options: dict[str, Any]
    graph: gc.Graph
    values: dict[str, Any]
    inputs: dict[str, np.ndarray]
    params: Arrays
    param_names: list[str]
    program: Any = None  # graphc's compiled step, compiled once (training_outputs adds nodes to the graph)
    compile_seconds: float = 0.0

    @property
    def dtype(self) -> str:
        return str(self.params[0].dtype)

    def compiled(self) -> Any:
        """graphc's program of the training step, compiled on the first call."""
        if self.program is None:
            start = time.perf_counter()
            self.program = gc.compile(zoo.training_outputs(self.values))
            self.compile_seconds = time.perf_counter() - start
        return self.program


MODEL_KINDS = ("resnet18", "gpt2")
"""Workloads without a hand-written NumPy step: their ``numpy`` is graphc's plan as straight-line NumPy."""


def workloads(quick: bool) -> list[Workload]:
    """The workloads of a run: small ones with ``quick``."""
    if quick:
        return [
            Workload("mlp 32×64-128-10", "mlp", lambda: zoo.mlp(32, (64, 128, 10)), {"activation": "tanh"}),
            Workload("chain 8×32, batch 16", "chain", lambda: zoo.chain(8, width=32, batch=16)),
            Workload("attention 32×32, 2 heads", "attention", lambda: zoo.attention(32, 32, heads=2), {"heads": 2}),
            Workload("gpt2 L2 T16 D32 V64 b2", "gpt2",
                     lambda: models.gpt2(batch=2, layers=2, width=32, heads=2, context=16, vocab=64),
                     {"layers": 2, "heads": 2}),
        ]
    return [
        Workload("mlp 32×64-128-10", "mlp", lambda: zoo.mlp(32, (64, 128, 10)), {"activation": "tanh"}),
        Workload("mlp 256×64-256-256-10", "mlp", lambda: zoo.mlp(256, (64, 256, 256, 10)), {"activation": "tanh"}),
        Workload("chain 32×64, batch 16", "chain", lambda: zoo.chain(32, width=64, batch=16)),
        Workload("chain 32×256, batch 256", "chain", lambda: zoo.chain(32, width=256, batch=256)),
        Workload("attention 128×64, 4 heads", "attention", lambda: zoo.attention(128, 64, heads=4), {"heads": 4}),
        Workload("resnet18 b8 32px 10 classes", "resnet18", lambda: models.resnet18(batch=8, image=32, classes=10)),
        Workload("gpt2 L2 T128 D128 V1024 b4", "gpt2",
                 lambda: models.gpt2(batch=4, layers=2, width=128, heads=4, context=128, vocab=1024),
                 {"layers": 2, "heads": 4}),
    ]


def selected(candidates: list[Workload], only: str) -> list[Workload]:
    """The workloads whose name contains one of the comma-separated parts of ``only`` (all if it has none)."""
    parts = [part.strip() for part in only.split(",") if part.strip()]
    return [w for w in candidates if not parts or any(part in w.name for part in parts)]


def build(workload: Workload) -> Problem:
    graph, values = workload.build()
    params = list(values["params"])
    return Problem(
        name=workload.name, kind=workload.kind, options=dict(workload.options), graph=graph, values=values,
        inputs=zoo.feeds(graph), params=[p.value.copy() for p in params], param_names=[p.name for p in params],
    )


# --- hand-written NumPy: forward and backward ----------------------------------------------------


def numpy_mlp(params: Arrays, x: np.ndarray, y: np.ndarray, activation: str = "tanh") -> Arrays:
    """``zoo.mlp``: z(k) = h(k-1)·W(k) + b(k), h(k) = a(z(k)), mean softmax cross-entropy."""
    weights, biases = params[0::2], params[1::2]
    layers = len(weights)
    hs = [x]
    for k in range(layers):
        z = hs[-1] @ weights[k] + biases[k]
        if k < layers - 1:
            hs.append(np.tanh(z) if activation == "tanh" else np.maximum(z, 0))
    batch, rows = len(y), np.arange(len(y))
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - shifted[rows, y])
    g = exp / total  # ∂ℓ/∂logits = (softmax − onehot) / batch
    g[rows, y] -= 1
    g /= batch
    grads: Arrays = [np.empty(0)] * len(params)
    for k in reversed(range(layers)):
        grads[2 * k], grads[2 * k + 1] = hs[k].T @ g, g.sum(axis=0)
        if k:
            g = g @ weights[k].T
            g *= 1 - hs[k] * hs[k] if activation == "tanh" else hs[k] > 0
    return [np.asarray(loss), *grads]


def numpy_chain(params: Arrays, x: np.ndarray, y: np.ndarray) -> Arrays:
    """``zoo.chain``: h(k) = tanh(h(k-1)·W(k) + b(k)), ℓ = mean((h(n) − y)²)."""
    weights, biases = params[0::2], params[1::2]
    hs = [x]
    for w, b in zip(weights, biases):
        hs.append(np.tanh(hs[-1] @ w + b))
    diff = hs[-1] - y
    loss = np.mean(diff * diff)
    g = diff * (2 / diff.size)
    grads: Arrays = [np.empty(0)] * len(params)
    for k in reversed(range(len(weights))):
        g *= 1 - hs[k + 1] * hs[k + 1]
        grads[2 * k], grads[2 * k + 1] = hs[k].T @ g, g.sum(axis=0)
        if k:
            g = g @ weights[k].T
    return [np.asarray(loss), *grads]


def numpy_attention(params: Arrays, x: np.ndarray, y: np.ndarray, heads: int = 1) -> Arrays:
    """``zoo.attention``: softmax(q kᵀ/√d) v per head, h = x + o·Wo, ℓ = mean((h − y)²)."""
    wq, wk, wv, wo = params
    seq, dim = x.shape
    scale = 1.0 / math.sqrt(dim // heads)

    def split(a: np.ndarray) -> np.ndarray:  # (S, D) → (H, S, D/H)
        return a.reshape(seq, heads, dim // heads).transpose(1, 0, 2)

    def merge(a: np.ndarray) -> np.ndarray:  # (H, S, D/H) → (S, D)
        return a.transpose(1, 0, 2).reshape(seq, dim)

    q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
    scores = (q @ k.transpose(0, 2, 1)) * scale
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    attn = exp / exp.sum(axis=-1, keepdims=True)
    o = merge(attn @ v)
    diff = x + o @ wo - y
    loss = np.mean(diff * diff)
    gh = diff * (2 / diff.size)
    go = split(gh @ wo.T)
    ga = go @ v.transpose(0, 2, 1)
    gv = attn.transpose(0, 2, 1) @ go
    gs = attn * (ga - (ga * attn).sum(axis=-1, keepdims=True)) * scale
    gq, gk = gs @ k, gs.transpose(0, 2, 1) @ q
    return [np.asarray(loss), x.T @ merge(gq), x.T @ merge(gk), x.T @ merge(gv), o.T @ gh]


NUMPY_STEPS: dict[str, Callable[..., Arrays]] = {"mlp": numpy_mlp, "chain": numpy_chain, "attention": numpy_attention}


# --- the four implementations: a step function each ------------------------------------------------


@dataclass
class Implementation:
    """One way to run a problem's step: ``step()`` runs it, ``arrays(result)`` gives NumPy arrays."""

    step: Callable[[], Any]
    arrays: Callable[[Any], Arrays]
    setup_seconds: float = 0.0  # graphc's compile, JAX's first (tracing and compiling) call
    instructions: int = 0  # of graphc's plan
    flops: int = 0  # of graphc's plan: forward + backward (prog.cost)


class NotInstalled(Exception):
    """The framework of an implementation cannot be imported."""


def graphc_impl(problem: Problem) -> Implementation:
    """Compile the training step once; a step is one ``prog.run`` with the inputs fed."""
    prog = problem.compiled()
    inputs = problem.inputs
    return Implementation(lambda: prog.run(inputs), list, problem.compile_seconds, len(prog.plan.instructions),
                          prog.cost.total_flops)


def numpy_impl(problem: Problem) -> Implementation:
    """The hand-written forward and backward pass of the problem's kind.

    A model (``resnet18``, ``gpt2``) has none: its step is graphc's plan written
    out as one straight-line NumPy module (``prog.to_source()``: the same
    kernels, one NumPy call per instruction, no interpreter), run on its own
    copy of the params.
    """
    if problem.kind in MODEL_KINDS:
        prog = problem.compiled()
        namespace: dict[str, Any] = {}
        exec(compile(prog.to_source(), f"<{problem.name}>", "exec"), namespace)  # noqa: S102 - graphc's own plan
        run, inputs = namespace["run"], problem.inputs
        params = {name: problem.graph.params[name].data.copy() for name in prog.plan.params}
        return Implementation(lambda: run(inputs, params), list)
    fn, options = NUMPY_STEPS[problem.kind], problem.options
    params, x, y = problem.params, problem.inputs["x"], problem.inputs["y"]
    return Implementation(lambda: fn(params, x, y, **options), list)


def jax_loss(kind: str, options: dict[str, Any]) -> Callable[..., Any]:
    """The forward pass and loss of a workload with ``jax.numpy``."""
    import jax
    import jax.numpy as jnp

    def mlp(params, x, y):
        weights, biases = params[0::2], params[1::2]
        act = jnp.tanh if options.get("activation", "tanh") == "tanh" else jax.nn.relu
        h = x
        for k, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if k < len(weights) - 1:
                h = act(h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def chain(params, x, y):
        h = x
        for w, b in zip(params[0::2], params[1::2]):
            h = jnp.tanh(h @ w + b)
        return jnp.mean((h - y) ** 2)

    def attention(params, x, y):
        wq, wk, wv, wo = params
        heads = options.get("heads", 1)
        seq, dim = x.shape
        split = lambda a: a.reshape(seq, heads, dim // heads).transpose(1, 0, 2)  # noqa: E731
        q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
        attn = jax.nn.softmax((q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(dim // heads)), axis=-1)
        o = (attn @ v).transpose(1, 0, 2).reshape(seq, dim)
        return jnp.mean((x + o @ wo - y) ** 2)

    return {"mlp": mlp, "chain": chain, "attention": attention}[kind]


def jax_impl(problem: Problem) -> Implementation:
    """``jax.jit(jax.value_and_grad(loss))``, compiled by a first call here; labels as int32."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:
        raise NotInstalled("jax") from err
    if problem.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # otherwise JAX computes in float32
    loss = model_loss("jax", problem) if problem.kind in MODEL_KINDS else jax_loss(problem.kind, problem.options)
    fn = jax.jit(jax.value_and_grad(loss))
    params = [jnp.asarray(p) for p in problem.params]
    inputs = [jnp.asarray(a.astype(np.int32) if a.dtype.kind == "i" else a) for a in problem.inputs.values()]

    def step() -> Any:
        return jax.block_until_ready(fn(params, *inputs))

    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    return Implementation(step, lambda r: [np.asarray(r[0]), *map(np.asarray, r[1])], seconds)


def torch_loss(kind: str, options: dict[str, Any]) -> Callable[..., Any]:
    """The forward pass and loss of a workload with PyTorch."""
    import torch
    import torch.nn.functional as F

    def mlp(params, x, y):
        weights, biases = params[0::2], params[1::2]
        act = torch.tanh if options.get("activation", "tanh") == "tanh" else torch.relu
        h = x
        for k, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if k < len(weights) - 1:
                h = act(h)
        return F.cross_entropy(h, y)

    def chain(params, x, y):
        h = x
        for w, b in zip(params[0::2], params[1::2]):
            h = torch.tanh(h @ w + b)
        return torch.mean((h - y) ** 2)

    def attention(params, x, y):
        wq, wk, wv, wo = params
        heads = options.get("heads", 1)
        seq, dim = x.shape
        split = lambda a: a.reshape(seq, heads, dim // heads).permute(1, 0, 2)  # noqa: E731
        q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
        attn = torch.softmax((q @ k.transpose(1, 2)) * (1.0 / math.sqrt(dim // heads)), dim=-1)
        o = (attn @ v).permute(1, 0, 2).reshape(seq, dim)
        return torch.mean((x + o @ wo - y) ** 2)

    return {"mlp": mlp, "chain": chain, "attention": attention}[kind]


def torch_impl(problem: Problem) -> Implementation:
    """The forward pass on tensors (params copied, requiring grad), then ``torch.autograd.grad``."""
    try:
        import torch
    except ImportError as err:
        raise NotInstalled("torch") from err
    loss_fn = model_loss("torch", problem) if problem.kind in MODEL_KINDS else torch_loss(problem.kind, problem.options)
    params = [torch.from_numpy(p.copy()).requires_grad_() for p in problem.params]
    inputs = [torch.from_numpy(a) for a in problem.inputs.values()]

    def step() -> list:
        loss = loss_fn(params, *inputs)
        return [loss.detach(), *torch.autograd.grad(loss, params)]

    return Implementation(step, lambda r: [t.numpy() for t in r])


# --- the real models: one forward pass written against a small backend (JAX or PyTorch) ------------------------


class _Backend:
    """The few array functions the model forward passes need, for ``jax.numpy`` or ``torch``."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "torch":
            import torch
            import torch.nn.functional as F

            self.conv = lambda x, w, stride, padding: F.conv2d(x, w, stride=stride, padding=padding)
            self.batch_norm = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-5)
            self.layer_norm = lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)
            self.relu = torch.relu
            self.max_pool = lambda x: F.max_pool2d(x, 3, 2, 1)
            self.gelu = lambda x: F.gelu(x, approximate="tanh")
            self.softmax = lambda x: torch.softmax(x, dim=-1)
            self.transpose = lambda x, axes: x.permute(*axes)
            self.mean_hw = lambda x: x.mean(dim=(2, 3))
            self.cross_entropy = F.cross_entropy
            self.constant = lambda a: torch.from_numpy(a)
        else:
            import jax
            import jax.numpy as jnp
            from jax import lax

            def batch_norm(x, w, b):
                mean = x.mean(axis=(0, 2, 3), keepdims=True)
                var = ((x - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
                return (x - mean) / jnp.sqrt(var + 1e-5) * w[:, None, None] + b[:, None, None]

            def layer_norm(x, w, b):
                mean = x.mean(axis=-1, keepdims=True)
                var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
                return (x - mean) / jnp.sqrt(var + 1e-5) * w + b

            def cross_entropy(logits, labels):
                logp = jax.nn.log_softmax(logits, axis=-1)
                return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

            self.conv = lambda x, w, stride, padding: lax.conv_general_dilated(
                x, w, (stride, stride), [(padding, padding)] * 2, dimension_numbers=("NCHW", "OIHW", "NCHW"))
            self.batch_norm, self.layer_norm, self.cross_entropy = batch_norm, layer_norm, cross_entropy
            self.relu = jax.nn.relu
            self.max_pool = lambda x: lax.reduce_window(
                x, -jnp.inf, lax.max, (1, 1, 3, 3), (1, 1, 2, 2), [(0, 0), (0, 0), (1, 1), (1, 1)])
            self.gelu = lambda x: jax.nn.gelu(x, approximate=True)
            self.softmax = lambda x: jax.nn.softmax(x, axis=-1)
            self.transpose = lambda x, axes: x.transpose(axes)
            self.mean_hw = lambda x: x.mean(axis=(2, 3))
            self.constant = jnp.asarray


def resnet18_loss(be: _Backend, p: dict[str, Any], x: Any, y: Any) -> Any:
    """``graphc.models.resnet18``'s loss (batch norm on the batch's statistics), params by torchvision's names."""

    def conv_bn(h, name, bn, stride, padding):
        return be.batch_norm(be.conv(h, p[f"{name}.weight"], stride, padding), p[f"{bn}.weight"], p[f"{bn}.bias"])

    h = be.max_pool(be.relu(conv_bn(x, "conv1", "bn1", 2, 3)))
    for stage in range(1, 5):
        for index in range(2):
            name, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
            branch = be.relu(conv_bn(h, f"{name}.conv1", f"{name}.bn1", stride, 1))
            branch = conv_bn(branch, f"{name}.conv2", f"{name}.bn2", 1, 1)
            if f"{name}.downsample.0.weight" in p:
                h = conv_bn(h, f"{name}.downsample.0", f"{name}.downsample.1", stride, 0)
            h = be.relu(branch + h)
    logits = be.mean_hw(h) @ p["fc.weight"].T + p["fc.bias"]
    return be.cross_entropy(logits, y)


def gpt2_loss(be: _Backend, p: dict[str, Any], tokens: Any, targets: Any, layers: int, heads: int) -> Any:
    """``graphc.models.gpt2``'s loss: the same additive causal mask (−10⁹ above the diagonal), tied output weights."""
    batch, context = tokens.shape
    width = p["wte.weight"].shape[1]
    mask = be.constant(np.triu(np.full((context, context), -1e9, dtype=np.float32), 1))

    def dense(h, name):
        return h @ p[f"{name}.weight"] + p[f"{name}.bias"]

    def ln(h, name):
        return be.layer_norm(h, p[f"{name}.weight"], p[f"{name}.bias"])

    def split(a):  # (B, T, D) → (B, H, T, D/H)
        return be.transpose(a.reshape(batch, context, heads, width // heads), (0, 2, 1, 3))

    h = p["wte.weight"][tokens] + p["wpe.weight"]
    for layer in range(layers):
        name = f"h.{layer}"
        qkv = dense(ln(h, f"{name}.ln_1"), f"{name}.attn.c_attn")
        q, k, v = (split(qkv[:, :, i * width:(i + 1) * width]) for i in range(3))
        scores = (q @ be.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(width // heads))
        mixed = be.transpose(be.softmax(scores + mask) @ v, (0, 2, 1, 3)).reshape(batch, context, width)
        h = h + dense(mixed, f"{name}.attn.c_proj")
        h = h + dense(be.gelu(dense(ln(h, f"{name}.ln_2"), f"{name}.mlp.c_fc")), f"{name}.mlp.c_proj")
    logits = ln(h, "ln_f") @ p["wte.weight"].T
    return be.cross_entropy(logits.reshape(batch * context, -1), targets.reshape(-1))


def model_loss(backend: str, problem: Problem) -> Callable[..., Any]:
    """``loss(params, *inputs)`` of a model workload, params as a list in graphc's order."""
    be, names, options = _Backend(backend), problem.param_names, problem.options

    def loss(params, *inputs):
        p = dict(zip(names, params))
        if problem.kind == "resnet18":
            return resnet18_loss(be, p, *inputs)
        return gpt2_loss(be, p, *inputs, layers=options["layers"], heads=options["heads"])

    return loss


FACTORIES: dict[str, Callable[[Problem], Implementation]] = {
    "graphc": graphc_impl, "numpy": numpy_impl, "jax": jax_impl, "torch": torch_impl,
}


def implementations(problem: Problem, names: Sequence[str] = IMPLEMENTATIONS) -> dict[str, Implementation]:
    """The implementations of ``names`` whose framework imports, by name."""
    found = {}
    for name in names:
        try:
            found[name] = FACTORIES[name](problem)
        except NotInstalled:
            continue
    return found


# --- the check against graphc ---------------------------------------------------------------------


@dataclass
class Agreement:
    """How one implementation's loss and gradients compare with graphc's."""

    implementation: str
    max_relative: float  # the largest max|a − b| / max|b| over the arrays
    mismatched: list[str]  # names of the arrays outside np.allclose


def compare(names: Sequence[str], ours: Arrays, reference: Arrays, dtype: str) -> tuple[float, list[str]]:
    """The largest normwise relative difference, and the arrays outside the dtype's tolerance."""
    rtol, atol = TOLERANCE.get(dtype, TOLERANCE["float32"])
    if len(ours) != len(reference):
        return math.inf, [f"{len(ours)} arrays returned, graphc returns {len(reference)}"]
    worst, mismatched = 0.0, []
    for name, a, b in zip(names, ours, reference):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        if a.shape != b.shape:
            mismatched.append(f"{name} (shape {a.shape}, graphc {b.shape})")
            continue
        worst = max(worst, float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a))))
        if not np.allclose(a, b, rtol=rtol, atol=atol * scale):
            mismatched.append(name)
    return worst, mismatched


def check(problem: Problem, impls: dict[str, Implementation]) -> list[Agreement]:
    """Every implementation but graphc against graphc's loss and gradients."""
    reference = impls["graphc"].arrays(impls["graphc"].step())
    names = ["loss", *problem.param_names]
    agreements = []
    for name, impl in impls.items():
        if name == "graphc":
            continue
        worst, mismatched = compare(names, impl.arrays(impl.step()), reference, problem.dtype)
        agreements.append(Agreement(name, worst, mismatched))
    return agreements


# --- timing -----------------------------------------------------------------------------------------


def calls_per_repeat(step: Callable[[], Any], seconds: float = REPEAT_SECONDS) -> int:
    """How many calls of ``step`` last about ``seconds`` (at least one)."""
    start = time.perf_counter()
    step()
    once = time.perf_counter() - start
    return max(1, int(seconds / max(once, 1e-7)))


def time_steps(steps: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of every step, one sample per repetition, repetitions interleaved.

    Round r runs every step once in an order rotated by r, so slow phases of a
    shared machine fall on all implementations alike.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    calls = {name: calls_per_repeat(step) for name, step in steps.items()}
    samples: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            step, n = steps[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - start) / n)
    return samples


def spread(samples: Sequence[float]) -> float:
    """Interquartile range over median."""
    if len(samples) < 4:
        return (max(samples) - min(samples)) / statistics.median(samples)
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


# --- one workload, the table, the chart ------------------------------------------------------------------


@dataclass
class Row:
    """The measurements of one workload."""

    name: str
    instructions: int  # of graphc's plan
    flops: int  # of graphc's plan, forward + backward
    agreements: list[Agreement]
    setup_ms: dict[str, float]  # graphc's compile, JAX's first call
    absent: dict[str, str] = field(default_factory=dict)  # implementation → "not installed" or "skipped"
    ms: dict[str, float] = field(default_factory=dict)  # median ms per call, by implementation
    noise: float = 0.0

    def ratio(self, implementation: str) -> float | None:
        if implementation not in self.ms or BASELINE not in self.ms:
            return None
        return self.ms[implementation] / self.ms[BASELINE]

    def overhead_us(self) -> float | None:
        """(graphc − numpy) / instructions, in µs: the runtime's cost per instruction over the NumPy step."""
        if "graphc" not in self.ms or BASELINE not in self.ms or not self.instructions:
            return None
        return (self.ms["graphc"] - self.ms[BASELINE]) * 1e3 / self.instructions

    def gemm_share(self, implementation: str, gflops: float) -> float | None:
        """The FLOP rate of a step (graphc's count over the implementation's time) over the GEMM rate."""
        if implementation not in self.ms or not gflops:
            return None
        return self.flops / (self.ms[implementation] * 1e-3) / (gflops * 1e9)


def prepare(workload: Workload, names: Sequence[str] = IMPLEMENTATIONS) -> tuple[Row, dict[str, Implementation]]:
    """Build a workload, set up its implementations and check them against graphc."""
    problem = build(workload)
    impls = implementations(problem, names)
    absent = {n: "skipped" if n not in names else "not installed" for n in IMPLEMENTATIONS if n not in impls}
    setup_ms = {n: i.setup_seconds * 1e3 for n, i in impls.items() if i.setup_seconds}
    graphc = impls["graphc"]
    return Row(problem.name, graphc.instructions, graphc.flops, check(problem, impls), setup_ms, absent), impls


def measure(row: Row, impls: dict[str, Implementation], repeats: int, warmup: int) -> None:
    """Time the implementations of one workload side by side; the medians go into ``row``."""
    samples = time_steps({n: i.step for n, i in impls.items()}, repeats, warmup)
    row.ms = {n: statistics.median(s) * 1e3 for n, s in samples.items()}
    row.noise = max(spread(s) for s in samples.values())


def format_checks(rows: Sequence[Row]) -> str:
    lines = ["check against graphc (loss and every gradient): max |a − b| / max |b|"]
    for row in rows:
        cells = [f"{a.implementation} {a.max_relative:.1e}" for a in row.agreements]
        cells = [c + (f" MISMATCH in {', '.join(a.mismatched)}" if a.mismatched else "") for c, a in zip(cells, row.agreements)]
        lines.append(f"  {row.name:28s} " + "   ".join(cells))
    return "\n".join(lines)


def format_table(rows: Sequence[Row]) -> str:
    others = [n for n in IMPLEMENTATIONS if n != BASELINE]
    header = ["workload", "instr", *(f"{n} ms" for n in IMPLEMENTATIONS), *(f"{n}/np" for n in others),
              "graphc/torch", "µs/instr", "noise"]
    body = []
    for row in rows:
        times = [f"{row.ms[n]:.3f}" if n in row.ms else row.absent.get(n, "–") for n in IMPLEMENTATIONS]
        ratios = [f"{row.ratio(n):.2f}" if row.ratio(n) is not None else "–" for n in others]
        vs_torch = f"{row.ms['graphc'] / row.ms['torch']:.2f}" if "torch" in row.ms and "graphc" in row.ms else "–"
        overhead = row.overhead_us()
        body.append([row.name, str(row.instructions), *times, *ratios, vs_torch,
                     f"{overhead:.1f}" if overhead is not None else "–", f"{row.noise:.2f}"])
    return _columns(header, body)


def format_gemm(rows: Sequence[Row], gflops: float) -> str:
    """Per workload: graphc's FLOPs, and each implementation's FLOP rate as a share of the GEMM rate."""
    header = ["workload", "MFLOP", *(f"{n} %gemm" for n in IMPLEMENTATIONS)]
    body = []
    for row in rows:
        shares = [row.gemm_share(n, gflops) for n in IMPLEMENTATIONS]
        body.append([row.name, f"{row.flops / 1e6:.1f}", *(f"{100 * s:.1f}" if s is not None else "–" for s in shares)])
    return _columns(header, body)


def _columns(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def format_setup(rows: Sequence[Row]) -> str:
    lines = ["paid once, ms: graphc's gc.compile and JAX's first call (tracing and XLA compile)"]
    for row in rows:
        lines.append(f"  {row.name:28s} " + "   ".join(f"{n} {ms:.0f}" for n, ms in row.setup_ms.items()))
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path) -> bool:
    """Grouped bars per workload: time per step relative to NumPy (log scale), labelled in ms.

    False, and no chart, if NumPy (the baseline) was skipped.
    """
    if not any(r.ratio(BASELINE) for r in rows):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    shown = [n for n in IMPLEMENTATIONS if any(r.ratio(n) is not None for r in rows)]
    colors = {"graphc": "#dd8452", "numpy": "#8c8c8c", "jax": "#4c72b0", "torch": "#c44e52"}
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.8 * len(rows)), 4.8))
    for k, name in enumerate(shown):
        offsets = x + (k - (len(shown) - 1) / 2) * width
        ratios = [r.ratio(name) or np.nan for r in rows]
        ax.bar(offsets, ratios, width, label=name, color=colors.get(name))
        for xi, ratio, row in zip(offsets, ratios, rows):
            if name in row.ms and ratio == ratio:
                ax.annotate(f"{row.ms[name]:.2g}", (xi, ratio), ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x, [r.name for r in rows], rotation=15, ha="right")
    ax.set_ylabel("time per step / NumPy (log scale; models: graphc's plan as NumPy)")
    ax.set_title("one training step (loss and every gradient) on the CPU; bar labels: ms per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --- threads and versions ---------------------------------------------------------------------------------


@contextlib.contextmanager
def thread_limit(threads: int | None, names: Sequence[str] = IMPLEMENTATIONS) -> Iterator[str]:
    """Cap NumPy's BLAS and PyTorch at ``threads`` threads for the block (None: their defaults).

    NumPy's BLAS is capped at run time through threadpoolctl, when it is
    installed; no environment variable is read or set. PyTorch is imported
    only if it is one of ``names``. Yields a line saying what the threads are.
    """
    torch = _optional("torch") if "torch" in names else None
    threadpoolctl = _optional("threadpoolctl")
    with contextlib.ExitStack() as stack:
        if threads is not None:
            if threadpoolctl:
                stack.enter_context(threadpoolctl.threadpool_limits(limits=threads))
            if torch:
                stack.callback(torch.set_num_threads, torch.get_num_threads())
                torch.set_num_threads(threads)
        yield _threads_line(torch, threadpoolctl, "jax" in names)


def gemm_rate(size: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``³ float32 ``np.matmul`` on NumPy's BLAS as currently capped: the best of ``repeats``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


JAX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""XLA_FLAGS that put JAX's CPU computations on one thread: read once, when jax is first imported."""


def cap_jax_threads() -> bool:
    """Add :data:`JAX_ONE_THREAD` to ``XLA_FLAGS``; False (no effect) if jax is already imported."""
    if "jax" in sys.modules:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if JAX_ONE_THREAD not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {JAX_ONE_THREAD}".strip()
    return True


def _optional(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        return None


def _threads_line(torch: Any, threadpoolctl: Any, jax: bool) -> str:
    if threadpoolctl:
        pools = [str(p["num_threads"]) for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        blas = "/".join(pools) or "?"
    else:
        blas = "? (threadpoolctl not installed)"
    line = f"threads: NumPy's BLAS {blas}" + (f", torch {torch.get_num_threads()}" if torch else "")
    if jax:
        capped = JAX_ONE_THREAD in os.environ.get("XLA_FLAGS", "")
        line += ", JAX 1 (XLA_FLAGS)" if capped else ", JAX its default"
    return line


def versions(names: Sequence[str]) -> str:
    found = [f"numpy {np.__version__}"]
    for module in ("jax", "torch"):
        if module in names:
            imported = _optional(module)
            found.append(f"{module} {imported.__version__}" if imported else f"{module} not installed")
    return ", ".join(found)


# --- main ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, few repetitions")
    parser.add_argument("--plot", type=Path, default=Path("out/bench/speed.png"), help="where to save the chart")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="cap NumPy's BLAS and PyTorch at N threads (JAX too when N is 1, through XLA_FLAGS); "
                             "0 leaves each library at its default (default 1)")
    parser.add_argument("--skip", default="", metavar="NAMES",
                        help="comma-separated implementations to leave out: numpy, jax, torch (graphc always runs)")
    parser.add_argument("--only", default="", metavar="NAMES",
                        help="comma-separated parts of workload names: run only the workloads whose name contains "
                             "one (\"mlp 32×,chain 32×64\"); default all")
    parser.add_argument("--repeats", type=int, default=0, metavar="N",
                        help="interleaved repetitions per implementation (default 15, 5 with --quick): more "
                             "for steadier medians on a shared machine")
    args = parser.parse_args(argv)
    skipped = {n.strip() for n in args.skip.split(",") if n.strip()}
    if skipped - set(IMPLEMENTATIONS) or "graphc" in skipped:
        parser.error(f"--skip: {args.skip!r}; choose among {', '.join(IMPLEMENTATIONS[1:])}")
    chosen = selected(workloads(args.quick), args.only)
    if not chosen:
        parser.error(f"--only: {args.only!r} names no workload; the workloads are: "
                     f"{'; '.join(w.name for w in workloads(args.quick))}")
    names = [n for n in IMPLEMENTATIONS if n not in skipped]
    repeats, warmup = (5, 2) if args.quick else (15, 5)
    repeats = args.repeats or repeats
    if repeats < 1:
        parser.error(f"--repeats: {repeats} must be at least 1")
    if args.threads == 1 and "jax" in names:
        cap_jax_threads()  # before anything imports jax

    with thread_limit(args.threads or None, names) as threads:
        gflops = gemm_rate(512 if args.quick else 1024)
        prepared = [prepare(w, names) for w in chosen]
        rows = [row for row, _ in prepared]
        print(f"graphc speed benchmark: one training step [loss, *grads] on the CPU ({versions(names)}; {threads})")
        print(format_checks(rows), flush=True)
        if any(a.mismatched for r in rows for a in r.agreements):
            print("an implementation disagrees with graphc: nothing timed", file=sys.stderr)
            return 1
        for row, impls in prepared:
            measure(row, impls, repeats, warmup)
    print(f"\nmedian ms per step over {repeats} interleaved repetitions of ≈{REPEAT_SECONDS * 1e3:.0f} ms each; "
          f"ratios are time / numpy (hand-written; graphc's plan as straight-line NumPy on resnet18 and gpt2; "
          f"below 1: faster); noise: the largest IQR/median in the row")
    print(format_table(rows))
    print(f"\nGEMM rate of this machine (float32 np.matmul {512 if args.quick else 1024}³, NumPy's BLAS as capped above, "
          f"best of 5): {gflops:.1f} GFLOP/s; %gemm: graphc's forward + backward FLOPs (prog.cost) / time / that rate")
    print(format_gemm(rows, gflops))
    print()
    print(format_setup(rows))
    print(f"\nchart: {args.plot}" if plot(rows, args.plot) else "\nno chart: it shows ratios to NumPy, which was skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
