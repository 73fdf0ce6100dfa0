"""Speed of graphc's convolution and pooling kernels against torch.nn.functional on ResNet layers.

Each workload is one layer of a ResNet at 224×224 (``N`` images, float32): the
forward op alone (``fwd``), and the backward pass that a training step runs for
it (``bwd``: for a convolution ``conv2d_input_grad`` and ``conv2d_weight_grad``,
for a pool its gradient primitive), compiled by graphc as a program of that one
op and run by its runtime (fresh output arrays each call, as ``prog.run`` returns
them). torch runs the same op on the same arrays: ``F.conv2d`` under ``no_grad``
for ``fwd``; for ``bwd`` ``torch.autograd.grad`` of the op's output with the same
cotangent, minus the forward's own time, so both columns time the same work.
Before timing, every graphc result is checked against torch's (float32 tolerance).

Timing: one warm-up call each, then repetitions interleaved round by round in one
process; the table gives the median ms of a call and graphc / torch (above 1:
graphc is slower). Both libraries run on one thread (threadpoolctl and
``torch.set_num_threads``), so the ratio compares kernels, not thread pools.

``--scratch-bound MIB`` sets how much scratch a kernel takes for a chunk of images
(``graphc.ops.conv.SCRATCH_BOUND_BYTES``, 1 MiB by default; a large value makes each
kernel take the whole batch at once).

    python benchmarks/conv.py [--quick] [--batch N] [--repeat R] [--scratch-bound MIB]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import graphc as gc
import graphc.ops.conv as conv_ops

# (name, op, input shape without N, weight shape or pool kwargs, conv kwargs)
LAYERS = [
    ("conv 3x3 64->64 56x56", "conv2d", (64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    ("conv 3x3/2 128->256 28x28", "conv2d", (128, 28, 28), (256, 128, 3, 3), {"stride": 2, "padding": 1}),
    ("conv 1x1 256->64 56x56", "conv2d", (256, 56, 56), (64, 256, 1, 1), {}),
    ("conv 7x7/2 3->64 224x224", "conv2d", (3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    ("depthwise 3x3 64 56x56", "conv2d", (64, 56, 56), (64, 1, 3, 3), {"padding": 1, "groups": 64}),
    ("max_pool 3x3/2 64 112x112", "max_pool2d", (64, 112, 112), None, {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg_pool 2x2 256 56x56", "avg_pool2d", (256, 56, 56), None, {"kernel_size": 2}),
]


def _graphc_programs(op: str, x_shape: tuple, w_shape: tuple | None, kwargs: dict):
    """The forward program and the backward program (the op's gradient primitives) of one layer."""
    with gc.Graph(op):
        x = gc.input("x", x_shape)
        inputs = [x]
        if w_shape is not None:
            w = gc.input("w", w_shape)
            inputs.append(w)
            y = gc.conv2d(x, w, **kwargs)
        else:
            y = getattr(gc, op)(x, **kwargs)
        g = gc.input("g", y.shape)
        grads = gc.grad(y, inputs, seed=g)
    return gc.compile(y), gc.compile(grads), y.shape


def _torch_fns(torch: Any, op: str, kwargs: dict, arrays: dict[str, np.ndarray]):
    F = torch.nn.functional
    t = {k: torch.tensor(v, requires_grad=k != "g") for k, v in arrays.items()}
    inputs = [t["x"]] + ([t["w"]] if "w" in t else [])

    def apply():
        return F.conv2d(t["x"], t["w"], **kwargs) if op == "conv2d" else getattr(F, op)(t["x"], **kwargs)

    def forward():
        with torch.no_grad():
            return apply()

    def forward_backward():
        return torch.autograd.grad(apply(), inputs, t["g"])

    return forward, forward_backward


def _check(name: str, got: Any, expected: Any) -> None:
    for a, b in zip(got if isinstance(got, list) else [got], expected if isinstance(expected, tuple) else [expected]):
        b = b.detach().numpy()
        if not np.allclose(a, b, rtol=1e-3, atol=1e-3 * float(np.abs(b).max())):
            sys.exit(f"{name}: graphc and torch differ by {np.abs(a - b).max():.3g}")


def _median_ms(calls: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in calls}
    for call in calls.values():
        call()
    for _ in range(repeat):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1, 3 repetitions, the first three layers")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--scratch-bound", type=float, default=None, metavar="MIB",
                        help="the scratch of a kernel's chunk of images, in MiB (default: graphc's)")
    args = parser.parse_args(argv)
    if args.scratch_bound is not None:
        conv_ops.SCRATCH_BOUND_BYTES = int(args.scratch_bound * 2**20)
    try:
        import torch
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        print(f"conv.py needs torch and threadpoolctl (pip install graphc[bench]): {err}")
        return 0
    torch.set_num_threads(1)
    batch, repeat, layers = (1, 3, LAYERS[:3]) if args.quick else (args.batch, args.repeat, LAYERS)
    rng = np.random.default_rng(0)
    print(f"batch {batch}, float32, one thread; median ms of {repeat} interleaved repetitions; "
          f"scratch of a chunk of images at most {conv_ops.SCRATCH_BOUND_BYTES / 2**20:g} MiB")
    print(f"{'layer':28s} {'fwd graphc':>10s} {'torch':>8s} {'ratio':>6s}   {'bwd graphc':>10s} {'torch':>8s} {'ratio':>6s}")
    with threadpool_limits(1):
        for name, op, x_shape, w_shape, kwargs in layers:
            fwd, bwd, y_shape = _graphc_programs(op, (batch, *x_shape), w_shape, kwargs)
            arrays = {"x": rng.standard_normal((batch, *x_shape)).astype(np.float32)}
            if w_shape is not None:
                arrays["w"] = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
            arrays["g"] = rng.standard_normal(y_shape).astype(np.float32)
            t_forward, t_forward_backward = _torch_fns(torch, op, kwargs, arrays)
            feeds = {k: v for k, v in arrays.items() if k != "g"}
            _check(name, fwd.run(feeds), t_forward())
            _check(name, bwd.run(arrays), t_forward_backward())
            ms = _median_ms({"fwd": lambda: fwd.run(feeds), "bwd": lambda: bwd.run(arrays),
                             "t_fwd": t_forward, "t_fwd_bwd": t_forward_backward}, repeat)
            t_bwd = max(ms["t_fwd_bwd"] - ms["t_fwd"], 1e-3)
            print(f"{name:28s} {ms['fwd']:10.2f} {ms['t_fwd']:8.2f} {ms['fwd'] / ms['t_fwd']:6.2f}   "
                  f"{ms['bwd']:10.2f} {t_bwd:8.2f} {ms['bwd'] / t_bwd:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
