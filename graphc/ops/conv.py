"""Convolution and pooling over NCHW images: conv2d, max_pool2d, avg_pool2d, global_avg_pool, flatten.

The arguments are ``torch.nn.functional``'s (names, order, defaults). Every kernel
sees its input through NumPy's ``sliding_window_view``: a view ``(N, C, OH, OW, kH, kW)``
of the (padded) image whose ``[..., i, j]`` slice is the image shifted by kernel
offset ``(i, j)``. A convolution copies the windows once into an im2col matrix and
multiplies it by the weight (one BLAS ``matmul`` per image and group); a pool or a
gradient that scatters back into the image loops over the kH·kW offsets, each step
one vectorised operation over the whole output. The padded image, the im2col matrix
and the other temporaries are declared as ``scratch``, so the memory planner places
them in the arena and a run allocates nothing large. A kernel whose temporaries grow
with the batch works through it a part at a time: a convolution in chunks of images
(:func:`batch_chunk`), a pool in blocks of (image, channel) planes (:func:`_chunked`), so
that its scratch is at most ``SCRATCH_BOUND_BYTES`` (or one image's im2col matrix, or one
plane's, if larger) at any batch size.

For ``y = conv2d(x, w)`` with ``y[n, o] = Σ_{c, i, j} w[o, c, i, j] · x_pad[n, c, s·h + d·i, s·w + d·j]``
(channels ``c`` of ``o``'s group), the VJPs are two primitives of their own,
each linear in both its operands and so differentiable again with the three:

- ``conv2d_input_grad(g, w)`` = ``J^T_{φ|x} g``, the transposed convolution;
- ``conv2d_weight_grad(x, g)`` = ``J^T_{φ|w} g``, the windows of x correlated with g.

The three kernels skip the kernel offsets that read only zero padding where most do
(:func:`live_taps`: a 3×3 window on a 1×1 map multiplies its centre alone), and at stride 1
on enough pixels the transposed convolution is the convolution of g with the flipped
weights (:data:`TRANSPOSED_AS_CONVOLUTION_PIXELS`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.errors import GraphError
from graphc.ir import Aval, Value, is_int
from graphc.ops import elementwise as E
from graphc.ops import reduce as R
from graphc.ops import shape as S
from graphc.ops.core import ZERO, Primitive, ShapeError, constant_node, same_float_dtype

__all__ = [  # the public ops of this module: graphc.ops and graphc re-export them
    "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool", "flatten",
]

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))

# --- arguments in canonical form -------------------------------------------------------


def _pair(value: Any, what: str, minimum: int) -> Pair:
    """An int or a pair of ints, each ≥ ``minimum``, as a pair (torch's ``_pair``)."""
    items = (value, value) if is_int(value) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2 or not all(is_int(v) for v in items):
        raise ShapeError(f"{what} must be an int or a pair of ints, got {value!r}")
    if any(int(v) < minimum for v in items):
        raise ShapeError(f"{what} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def _conv_padding(padding: Any, kernel: Pair, stride: Pair, dilation: Pair) -> Padding:
    """``padding`` as ((top, bottom), (left, right)).

    "valid" is no padding; "same" pads d·(k-1) in total, the odd one at the bottom
    and right as torch does, and needs stride 1. An int, a pair, or the canonical
    pair of pairs are accepted.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ShapeError(f"padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
        if stride != (1, 1):
            raise ShapeError(f"padding='same' needs stride 1 (as in torch), got stride {stride}; give the padding as ints")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        top_bottom, left_right = (_pair(p, "padding", 0) for p in padding)
        return top_bottom, left_right
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph), (pw, pw)


def _out_len(size: int, kernel: int, stride: int, before: int, after: int, dilation: int, axis: str) -> int:
    """Windows along one axis: ⌊(size + before + after - d·(k-1) - 1) / s⌋ + 1."""
    span = dilation * (kernel - 1) + 1
    if size + before + after < span:
        raise ShapeError(
            f"the kernel spans {span} along {axis} (size {kernel}, dilation {dilation}) but the padded input has only "
            f"{size + before + after} ({size} + padding {before + after}); use a smaller kernel or more padding"
        )
    return (size + before + after - span) // stride + 1


def _check_image(x: Aval, what: str = "input") -> None:
    same_float_dtype(x)
    if x.ndim != 4:
        raise ShapeError(f"{what} must be 4-D (N, C, H, W), got shape {x.shape}")


# --- the views the kernels work on ----------------------------------------------------------


def _reshaped(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A view of the contiguous ``a`` in ``shape``: the kernels write through it, so a copy would lose the result."""
    view = a.view()
    view.shape = shape
    return view


def _padded(x: np.ndarray, padding: Padding, fill: float, buffer: np.ndarray | None) -> np.ndarray:
    """``x`` with ``padding`` filled with ``fill``, written into ``buffer`` (x itself when unpadded)."""
    if buffer is None:
        return x
    (top, _), (left, _) = padding
    h, w = x.shape[2:]
    buffer[:, :, :top] = fill
    buffer[:, :, top + h:] = fill
    buffer[:, :, top:top + h, :left] = fill
    buffer[:, :, top:top + h, left + w:] = fill
    buffer[:, :, top:top + h, left:left + w] = x
    return buffer


def _interior(padded: np.ndarray, padding: Padding, hw: Sequence[int]) -> np.ndarray:
    (top, _), (left, _) = padding
    return padded[:, :, top:top + hw[0], left:left + hw[1]]


def _windows(image: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Sequence[int],
             writeable: bool = False) -> np.ndarray:
    """The view (N, C, OH, OW, kH, kW) of the windows of a padded (N, C, Hp, Wp) image.

    ``[..., i, j]`` is the image at kernel offset (i, j) sampled at every output pixel.
    """
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(image, span, axis=(2, 3), writeable=writeable)
    return view[:, :, :stride[0] * (out_hw[0] - 1) + 1:stride[0], :stride[1] * (out_hw[1] - 1) + 1:stride[1],
                ::dilation[0], ::dilation[1]]


def _offsets(kernel: Pair) -> list[Pair]:
    """Kernel offsets in row-major order (the order in which a window's first maximum is found)."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _is_pointwise(kernel: Pair, stride: Pair, padding: Padding) -> bool:
    """A 1×1 kernel at stride 1 without padding: the image is its own im2col matrix."""
    return kernel == (1, 1) and stride == (1, 1) and padding == ((0, 0), (0, 0))


def _padded_shape(x: Aval, padding: Padding) -> tuple[int, ...]:
    (top, bottom), (left, right) = padding
    return (x.shape[0], x.shape[1], x.shape[2] + top + bottom, x.shape[3] + left + right)


def _live_offsets(size: int, kernel: int, stride: int, before: int, dilation: int, out_len: int) -> range:
    """The kernel offsets along one axis from the first to the last that reads the image itself at some
    output position: offset i reads ``s·o + d·i - before`` for o in [0, out_len), which must be in [0, size)."""
    reading = [i for i in range(kernel) if _reads_image(i * dilation - before, size, stride, out_len)]
    return range(reading[0], reading[-1] + 1) if reading else range(0)


def _reads_image(start: int, size: int, stride: int, out_len: int) -> bool:
    """Whether one of the positions ``start + s·o``, o in [0, out_len), is in [0, size)."""
    first_inside = -(-max(0, -start) // stride)
    return first_inside < out_len and start + first_inside * stride < size


LIVE_TAPS_CUT = 1 / 4
"""A kernel window is cut to its live taps when at most this share of its offsets are live. Cutting
copies the live weights at every call, a pass over all the weights that costs as much as a product
over them on a small map, so it pays only where it removes most of the products. ResNet-18's last
stage at 32 px, 8 images, ms per call of conv2d / its input gradient / its weight gradient, whole
window → cut: 1 of 9 offsets live (3×3 on 1×1 maps), 2.66 → 1.24, 3.40 → 1.17, 2.84 → 2.46; 4 of 9
(stride 2 from 2×2 maps), 0.97 → 1.30, 1.64 → 1.43, 0.93 → 1.68."""


def live_taps(hw: Sequence[int], kernel: Sequence[int], stride: Pair, padding: Padding, dilation: Pair,
              out_hw: Sequence[int]) -> tuple[Pair, Pair, Padding] | None:
    """The part of the kernel window that ever reads the image: its first offset, its size, and the
    padding that keeps every output pixel's window in place (``before - first·d`` on each side).
    None when more than :data:`LIVE_TAPS_CUT` of the offsets read the image (or none does, or cutting
    would need a negative padding, with a dilation).

    An offset that reads only padding multiplies zeros: a 3×3 convolution padded by 1 on a 1×1 map
    (ResNet's last stage at 32 px) reads the image with its centre alone, so eight ninths of its
    products, and of its gradients', are zero. The kernels skip those offsets; their weight gradient
    is exactly zero.
    """
    spans = [_live_offsets(hw[a], kernel[a], stride[a], padding[a][0], dilation[a], out_hw[a]) for a in range(2)]
    if not all(spans) or len(spans[0]) * len(spans[1]) > LIVE_TAPS_CUT * kernel[0] * kernel[1]:
        return None
    cut = tuple((before - span.start * d, after - (k - span.stop) * d)
                for span, (before, after), k, d in zip(spans, padding, kernel, dilation))
    if min(min(side) for side in cut) < 0:
        return None
    return (spans[0].start, spans[1].start), (len(spans[0]), len(spans[1])), cut  # type: ignore[return-value]


def _live_weight(w: Aval, kernel: Pair) -> Aval:
    return Aval((*w.shape[:2], *kernel), w.dtype)


def _live_offset_pairs(first: Pair, kernel: Sequence[int]) -> list[tuple[Pair, Pair]]:
    """Each offset of a cut window starting at ``first``: in the cut window and in the whole one."""
    return [((i, j), (first[0] + i, first[1] + j)) for i, j in _offsets(tuple(kernel))]  # type: ignore[arg-type]


def _spread_live_weights(out: np.ndarray, live: np.ndarray, first: Pair) -> None:
    """out[:, :, first + (i, j)] = live[:, :, i, j], and zero at every other offset: a weight gradient.
    (Zeroing all of ``out`` at once and then the copies is 3× faster than an offset at a time.)"""
    out.fill(0)
    for (i, j), (row, col) in _live_offset_pairs(first, live.shape[2:]):
        np.copyto(out[:, :, row, col], live[:, :, i, j])


def _copy_live_weights(live: np.ndarray, w: np.ndarray, first: Pair) -> None:
    """The cut window's weights, w[:, :, first + (i, j)], into ``live``, an offset at a time (one copy
    of the 4-D slice, whose rows are a few elements long, is 4× slower)."""
    for (i, j), (row, col) in _live_offset_pairs(first, live.shape[2:]):
        np.copyto(live[:, :, i, j], w[:, :, row, col])


SCRATCH_BOUND_BYTES = 2**20
"""The most scratch a kernel takes for its images at a time (unless one image needs more).

A chunk's scratch then stays in a core's L2 cache (1 MiB here), which makes the pools'
passes over it 1.5–3× faster than over a whole batch, while the BLAS products of a
convolution run as fast on one image as on several (benchmarks/conv.py at 1, 4, 8 and
32 MiB). And the scratch no longer grows with the batch: ResNet-50's weight gradients
took 1.9 GB of im2col matrices at batch 184 when each took its whole batch at once. (On small
maps the convolutions take their images in groups of :data:`PRODUCT_PIXELS` output pixels instead.)"""


def batch_chunk(batch: int, bytes_per_image: int) -> int:
    """How many images a kernel takes at a time: as many as fit in ``SCRATCH_BOUND_BYTES``, at least one."""
    return max(1, min(batch, SCRATCH_BOUND_BYTES // max(bytes_per_image, 1)))


def _chunks(batch: int, chunk: int) -> list[slice]:
    """The slices of the batch axis a kernel works through, ``chunk`` images each (the last maybe fewer)."""
    return [slice(start, min(start + chunk, batch)) for start in range(0, batch, chunk)]


def _per_image(aval: Aval, chunk: int) -> Aval:
    """``aval`` (a batch of images) with ``chunk`` images."""
    return Aval((chunk, *aval.shape[1:]), aval.dtype)


def _im2col(cols: np.ndarray, image: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
            out_hw: Sequence[int]) -> None:
    """cols[n, (c, i, j), (h, w)] = image[n, c, s·h + d·i, s·w + d·j]: the windows copied one offset at a time.

    (A copy per offset moves contiguous rows; one copy of the transposed 6-D window view is slower.)
    """
    n, channels = image.shape[:2]
    windows = _windows(image, kernel, stride, dilation, out_hw)
    rows = _reshaped(cols, (n, channels, *kernel, *out_hw))
    for i, j in _offsets(kernel):
        np.copyto(rows[:, :, i, j], windows[..., i, j])


PRODUCT_PIXELS = 256
"""Output pixels each BLAS product of a convolution kernel covers at least: the images of a batch are
taken together until their output maps hold this many. With one image per product, a 1×1 map made
conv2d a matrix-vector product per image, reading the weights once for each, and a 4×4 map made the
weight gradient 16 rank-16 products, each as large as the weights and added to them (two thirds of a
ResNet-18 step at 32 px). The grouping depends on the shapes alone, so a kernel's sums, and its bits,
do not depend on how much scratch it may take."""


def images_per_product(batch: int, out_hw: Sequence[int]) -> int:
    """How many images one product of a convolution kernel takes (:data:`PRODUCT_PIXELS`)."""
    return max(1, min(batch, -(-PRODUCT_PIXELS // max(out_hw[0] * out_hw[1], 1))))


def _grouped_scratch(x: Aval, kernel: Sequence[int], padding: Padding, out_channels: int, out_hw: Sequence[int],
                     per: int) -> list[Aval]:
    """For P images to a product: the padded images (if padded), their windows by channel
    (C·kH·kW, P·OH·OW), and room for the other side of the product by channel (O, P·OH·OW)."""
    pixels = per * math.prod(out_hw)
    padded = [Aval(_padded_shape(_per_image(x, per), padding), x.dtype)] if padding != ((0, 0), (0, 0)) else []
    return padded + [Aval((x.shape[1] * math.prod(kernel) * pixels,), x.dtype), Aval((out_channels * pixels,), x.dtype)]


def _windows_by_channel(flat: np.ndarray, image: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
                        out_hw: Sequence[int], groups: int) -> np.ndarray:
    """cols[g, (c, i, j), (n, h, w)] = image[n, g·Cg + c, s·h + d·i, s·w + d·j], written into ``flat``:
    the im2col matrices of N images side by side, (G, Cg·kH·kW, N·OH·OW), one offset at a time."""
    n, channels = image.shape[:2]
    rows = _reshaped(flat[:channels * math.prod(kernel) * n * math.prod(out_hw)], (channels, *kernel, n, *out_hw))
    windows = _windows(image, kernel, stride, dilation, out_hw)
    for i, j in _offsets(kernel):
        np.copyto(rows[:, i, j], windows[..., i, j].transpose(1, 0, 2, 3))
    return _reshaped(rows, (groups, channels // groups * math.prod(kernel), n * math.prod(out_hw)))


def _group_windows(images: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair,
                   out_hw: Sequence[int], groups: int, scratch: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`_windows_by_channel` of a group of images, padded first (``scratch`` as
    :func:`_grouped_scratch` lays it out: the padded images if padded, the windows, the other side)."""
    padded = scratch[0][:len(images)] if len(scratch) == 3 else None
    image = _padded(images, padding, 0.0, padded)
    return _windows_by_channel(scratch[-2], image, kernel, stride, dilation, out_hw, groups)


def _by_channel(a: np.ndarray, flat: np.ndarray, groups: int) -> np.ndarray:
    """The maps of N images (N, O, OH, OW) as (G, O/G, N·OH·OW), copied into ``flat``."""
    n, channels, oh, ow = a.shape
    rows = _reshaped(flat[:channels * n * oh * ow], (channels, n, oh * ow))
    np.copyto(rows, a.reshape(n, channels, oh * ow).transpose(1, 0, 2))
    return _reshaped(rows, (groups, channels // groups, n * oh * ow))


def _by_image(out: np.ndarray, product: np.ndarray) -> None:
    """Copy a product by channel (G, O/G, N·OH·OW) into N images' maps ``out`` (N, O, OH, OW)."""
    n, channels, oh, ow = out.shape
    np.copyto(_reshaped(out, (n, channels, oh * ow)), product.reshape(channels, n, oh * ow).transpose(1, 0, 2))


# --- conv2d -----------------------------------------------------------------------------------


def _conv_attrs(kernel: Pair, stride: Any, padding: Any, dilation: Any, groups: Any) -> dict[str, Any]:
    stride_pair = _pair(stride, "stride", 1)
    dilation_pair = _pair(dilation, "dilation", 1)
    if not is_int(groups) or int(groups) < 1:
        raise ShapeError(f"groups must be an int >= 1, got {groups!r}")
    return {"stride": stride_pair, "padding": _conv_padding(padding, kernel, stride_pair, dilation_pair),
            "dilation": dilation_pair, "groups": int(groups)}


def _conv_out_hw(hw: Sequence[int], kernel: Sequence[int], stride: Pair, padding: Padding, dilation: Pair) -> Pair:
    return tuple(_out_len(hw[a], kernel[a], stride[a], *padding[a], dilation[a], "HW"[a]) for a in range(2))  # type: ignore[return-value]


def _check_conv_channels(channels: int, weight_shape: Sequence[int], groups: int) -> None:
    out_channels, per_group = weight_shape[:2]
    if channels % groups:
        raise ShapeError(f"the input's {channels} channels are not divisible by groups={groups}; "
                         "give a groups that divides the input's and the weight's channel counts")
    if out_channels % groups:
        raise ShapeError(f"the weight's {out_channels} output channels are not divisible by groups={groups}; "
                         "give a groups that divides the input's and the weight's channel counts")
    if per_group * groups != channels:
        raise ShapeError(
            f"the weight {tuple(weight_shape)} takes {per_group} channels per group, but the input has "
            f"{channels} channels in {groups} group(s), {channels // groups} each; the weight must be "
            f"(O, C/groups, kH, kW)"
        )


def _conv_aval(x: Aval, w: Aval, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> Aval:
    _check_image(x)
    same_float_dtype(x, w)
    if w.ndim != 4:
        raise ShapeError(f"weight must be 4-D (O, C/groups, kH, kW), got shape {w.shape}")
    _check_conv_channels(x.shape[1], w.shape, groups)
    oh, ow = _conv_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    return Aval((x.shape[0], w.shape[0], oh, ow), x.dtype)


def _conv_normalize(x: Aval, w: Aval, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1) -> dict[str, Any]:
    if w.ndim != 4:
        raise ShapeError(f"weight must be 4-D (O, C/groups, kH, kW), got shape {w.shape}")
    return _conv_attrs(tuple(w.shape[2:]), stride, padding, dilation, groups)  # type: ignore[arg-type]


def _im2col_scratch(x: Aval, kernel: Sequence[int], stride: Pair, padding: Padding, dilation: Pair, groups: int,
                    out_hw: Sequence[int]) -> list[Aval]:
    """[padded image (if padded), im2col matrix (B, G, Cg·kH·kW, OH·OW)] for a chunk of B images
    (:func:`batch_chunk`), or [] for a pointwise kernel."""
    if _is_pointwise(tuple(kernel), stride, padding):  # type: ignore[arg-type]
        return []
    channels = x.shape[1]
    cols = Aval((1, groups, channels // groups * kernel[0] * kernel[1], out_hw[0] * out_hw[1]), x.dtype)
    padded = [Aval(_padded_shape(_per_image(x, 1), padding), x.dtype)] if padding != ((0, 0), (0, 0)) else []
    chunk = batch_chunk(x.shape[0], sum(a.nbytes for a in padded + [cols]))
    return [_per_image(a, chunk) for a in padded + [cols]]


def _columns(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, groups: int,
             out_hw: Sequence[int], scratch: Sequence[np.ndarray]) -> np.ndarray:
    """The im2col matrix (N, G, Cg·kH·kW, OH·OW) of x, in scratch (x itself, reshaped, for a pointwise kernel)."""
    n, channels, h, w = x.shape
    if not scratch:
        return x.reshape(n, groups, channels // groups, h * w)
    image = _padded(x, padding, 0.0, scratch[0] if len(scratch) == 2 else None)
    _im2col(scratch[-1], image, kernel, stride, dilation, out_hw)
    return scratch[-1]


def _conv_scratch(x: Aval, w: Aval, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> list[Aval]:
    """:func:`_window_scratch`, for the live taps' window and then room for its weights if the window is cut."""
    out_hw = _conv_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    taps = live_taps(x.shape[2:], w.shape[2:], stride, padding, dilation, out_hw)
    if taps is None:
        return _window_scratch(x, w, stride, padding, dilation, groups)
    _, kernel, cut = taps
    live = _live_weight(w, kernel)
    return _window_scratch(x, live, stride, cut, dilation, groups) + [live]


def _window_scratch(x: Aval, w: Aval, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> list[Aval]:
    """A group's :func:`_grouped_scratch` on small maps, else the im2col scratch of a chunk of images."""
    out_hw = _conv_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    per = images_per_product(x.shape[0], out_hw)
    if per > 1:
        return _grouped_scratch(x, w.shape[2:], padding, w.shape[0], out_hw, per)
    return _im2col_scratch(x, w.shape[2:], stride, padding, dilation, groups, out_hw)


def _conv_kernel(out: np.ndarray, x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
                 groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """:func:`_conv_window` over the :func:`live_taps` (their weights copied into the last scratch)."""
    _over_live_taps(_conv_window, out, x, w, x.shape[2:], out.shape[2:], stride, padding, dilation, groups, scratch)


def _over_live_taps(kernel: Any, out: np.ndarray, image: np.ndarray, w: np.ndarray, hw: Sequence[int],
                    out_hw: Sequence[int], stride: Pair, padding: Padding, dilation: Pair, groups: int,
                    scratch: Sequence[np.ndarray]) -> None:
    """``kernel(out, image, w, stride, padding, dilation, groups, scratch)``, or, where the window is
    cut (:func:`live_taps`), the same with the live taps' weights (copied into the last scratch) and
    the cut window's padding."""
    taps = live_taps(hw, w.shape[2:], stride, padding, dilation, out_hw)
    if taps is None:
        kernel(out, image, w, stride, padding, dilation, groups, scratch)
        return
    first, _, cut = taps
    _copy_live_weights(scratch[-1], w, first)
    kernel(out, image, scratch[-1], stride, cut, dilation, groups, scratch[:-1])


def _conv_window(out: np.ndarray, x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
                 groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """out[n, g] = W[g] @ cols[n, g]: (O/G, Cg·kH·kW) @ (Cg·kH·kW, OH·OW) for each image and group,
    a chunk of images at a time (the scratch's); on small maps, one product for each group of
    images (:func:`images_per_product`), their columns side by side."""
    n, out_channels, oh, ow = out.shape
    weights = w.reshape(groups, out_channels // groups, -1)
    per = images_per_product(n, (oh, ow))
    if per > 1:
        for images in _chunks(n, per):
            count = images.stop - images.start
            cols = _group_windows(x[images], tuple(w.shape[2:]), stride, padding, dilation, (oh, ow), groups, scratch)  # type: ignore[arg-type]
            product = _reshaped(scratch[-1][:out_channels * count * oh * ow], (groups, out_channels // groups, count * oh * ow))
            np.matmul(weights, cols, out=product)
            _by_image(out[images], product)
        return
    chunk = scratch[-1].shape[0] if scratch else n
    for images in _chunks(n, chunk):
        part = out[images]
        cols = _columns(x[images], tuple(w.shape[2:]), stride, padding, dilation, groups, (oh, ow),  # type: ignore[arg-type]
                        [s[:part.shape[0]] for s in scratch])
        np.matmul(weights, cols, out=_reshaped(part, (part.shape[0], groups, out_channels // groups, oh * ow)))


def _window_size(hw: Sequence[int], kernel: Sequence[int], stride: Pair, padding: Padding, dilation: Pair,
                 out_hw: Sequence[int]) -> int:
    """The kernel offsets a convolution's kernels multiply: kH·kW, or the :func:`live_taps`' count."""
    taps = live_taps(hw, kernel, stride, padding, dilation, out_hw)
    return math.prod(kernel if taps is None else taps[1])


def _conv_flops(ins: Sequence[Aval], out: Aval, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> int:
    """2·N·O·OH·OW·(C/groups)·kH·kW: a multiply-add per weight element per output pixel (live taps only)."""
    x, w = ins
    window = _window_size(x.shape[2:], w.shape[2:], stride, padding, dilation, out.shape[2:])
    return 2 * out.size * w.shape[1] * window


conv2d_op = Primitive(
    "conv2d",
    infer=_conv_aval,
    normalize=_conv_normalize,
    kernel=_conv_kernel,
    vjp=[
        lambda g, y, x, w, **a: conv2d_input_grad(g, w, input_hw=tuple(x.shape[2:]), **a),
        lambda g, y, x, w, **a: conv2d_weight_grad(x, g, kernel_size=tuple(w.shape[2:]), **a),
    ],
    flops=_conv_flops,
    scratch=_conv_scratch,
    doc="2-D cross-correlation of NCHW images with (O, C/groups, kH, kW) weights.  "
        "J^T: conv2d_input_grad(g, w) and conv2d_weight_grad(x, g).",
)


# --- conv2d_input_grad: the transposed convolution -----------------------------------------------


def _input_grad_aval(g: Aval, w: Aval, input_hw: Pair, stride: Pair, padding: Padding, dilation: Pair,
                     groups: int) -> Aval:
    _check_image(g, "the cotangent")
    same_float_dtype(g, w)
    if w.ndim != 4 or g.shape[1] != w.shape[0]:
        raise ShapeError(f"the cotangent {g.shape} has {g.shape[1]} channels, the weight {w.shape} has {w.shape[0]} outputs")
    channels = w.shape[1] * groups
    _check_conv_channels(channels, w.shape, groups)
    out_hw = _conv_out_hw(input_hw, w.shape[2:], stride, padding, dilation)
    if tuple(g.shape[2:]) != out_hw:
        raise ShapeError(f"an input of {tuple(input_hw)} pixels gives {out_hw} outputs, but the cotangent is {g.shape}")
    return Aval((g.shape[0], channels, *input_hw), g.dtype)


def _input_grad_normalize(g: Aval, w: Aval, input_hw: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          groups: Any = 1) -> dict[str, Any]:
    if w.ndim != 4:
        raise ShapeError(f"weight must be 4-D (O, C/groups, kH, kW), got shape {w.shape}")
    return {"input_hw": _pair(input_hw, "input_hw", 1), **_conv_attrs(tuple(w.shape[2:]), stride, padding, dilation, groups)}  # type: ignore[arg-type]


def _input_grad_scratch(g: Aval, w: Aval, input_hw: Pair, stride: Pair, padding: Padding, dilation: Pair,
                        groups: int) -> list[Aval]:
    """:func:`_transposed_scratch` for the live taps' window, then room for its weights if the window is cut."""
    taps = live_taps(input_hw, w.shape[2:], stride, padding, dilation, g.shape[2:])
    if taps is None:
        return _transposed_scratch(g, w, input_hw, stride, padding, dilation, groups)
    _, kernel, cut = taps
    live = _live_weight(w, kernel)
    return _transposed_scratch(g, live, input_hw, stride, cut, dilation, groups) + [live]


TRANSPOSED_AS_CONVOLUTION_PIXELS = 128
"""A transposed convolution at stride 1 whose images hold at least this many pixels in all (N·H·W) is
computed as the convolution of g with the flipped weights (padded by d·(k - 1) - p): its windows are
copied out of g, where the other way adds each column back into the image, offset by offset. The
flipped weights are copied at each call, which costs more than the adds save on few pixels. ms per
call, 8 images, 3×3, adds → convolution: 64 channels on 8×8, 3.30 → 1.92; 128 on 4×4, 3.50 → 2.43;
256 on 2×2, 4.66 → 4.39 (of which 1.04 copying the weights)."""


def _as_convolution(x: Aval, w: Aval, stride: Pair, padding: Padding, dilation: Pair) -> bool:
    """Whether the transposed convolution back to ``x`` is computed as a convolution (see above)."""
    reach = [d * (k - 1) for k, d in zip(w.shape[2:], dilation)]
    return (stride == (1, 1) and tuple(w.shape[2:]) != (1, 1)
            and all(0 <= p <= r for pair, r in zip(padding, reach) for p in pair)
            and x.shape[0] * x.shape[2] * x.shape[3] >= TRANSPOSED_AS_CONVOLUTION_PIXELS)


def _flipped_padding(w: Sequence[int], padding: Padding, dilation: Pair) -> Padding:
    """The padding that makes the convolution of g with the flipped weights the transposed one: d·(k - 1) - p."""
    return tuple((d * (k - 1) - before, d * (k - 1) - after)  # type: ignore[return-value]
                 for k, d, (before, after) in zip(w[2:], dilation, padding))


def _flipped_weight(w: Aval, groups: int) -> Aval:
    out_channels, per_group, kh, kw = w.shape
    return Aval((per_group * groups, out_channels // groups, kh, kw), w.dtype)


def _flip(flipped: np.ndarray, w: np.ndarray, groups: int) -> None:
    """flipped[g·Cg + c, o, i, j] = w[g·O/G + o, c, kH - 1 - i, kW - 1 - j]: the weights of the convolution
    that is the transposed one, each group's in- and output channels swapped and the window turned round."""
    out_channels, per_group, kh, kw = w.shape
    by_group = w.reshape(groups, out_channels // groups, per_group, kh, kw).transpose(0, 2, 1, 3, 4)
    np.copyto(_reshaped(flipped, by_group.shape), by_group[..., ::-1, ::-1])


def _transposed_scratch(g: Aval, w: Aval, input_hw: Pair, stride: Pair, padding: Padding, dilation: Pair,
                        groups: int) -> list[Aval]:
    """As a convolution (:func:`_as_convolution`): its scratch, then room for the flipped weights.
    Else the columns' scratch, as a convolution's."""
    x = Aval((g.shape[0], w.shape[1] * groups, *input_hw), g.dtype)
    if _as_convolution(x, w, stride, padding, dilation):
        flipped = _flipped_weight(w, groups)
        return _window_scratch(g, flipped, stride, _flipped_padding(w.shape, padding, dilation), dilation,
                               groups) + [flipped]
    per = images_per_product(g.shape[0], g.shape[2:])
    if per > 1:
        return _grouped_scratch(x, w.shape[2:], padding, w.shape[0], g.shape[2:], per)
    return _im2col_scratch(x, w.shape[2:], stride, padding, dilation, groups, g.shape[2:])


def _col2im(image: np.ndarray, cols: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair,
            out_hw: Sequence[int], by_channel: bool = False) -> None:
    """image = 0, then image[n, c, s·h + d·i, s·w + d·j] += cols[n, (c, i, j), (h, w)] for every offset (i, j)
    (``by_channel``: cols[(c, i, j), (n, h, w)], the images side by side)."""
    n, channels = image.shape[:2]
    image[...] = 0
    windows = _windows(image, kernel, stride, dilation, out_hw, writeable=True)
    if by_channel:
        terms = _reshaped(cols, (channels, *kernel, n, *out_hw)).transpose(3, 0, 1, 2, 4, 5)
    else:
        terms = _reshaped(cols, (n, channels, *kernel, *out_hw))
    for i, j in _offsets(kernel):
        target = windows[..., i, j]
        np.add(target, terms[:, :, i, j], out=target)


def _input_grad_kernel(out: np.ndarray, g: np.ndarray, w: np.ndarray, input_hw: Pair, stride: Pair,
                       padding: Padding, dilation: Pair, groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """:func:`_transposed_conv` over the :func:`live_taps` (their weights copied into the last scratch)."""
    _over_live_taps(_transposed_conv, out, g, w, input_hw, g.shape[2:], stride, padding, dilation, groups, scratch)


def _transposed_conv(out: np.ndarray, g: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
                     groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """cols[n, g] = W[g]ᵀ @ g[n, g], then each column added back to the pixels its window read,
    a chunk of images at a time; on small maps, one product for each group of images
    (:func:`images_per_product`), their cotangents side by side. Or, at stride 1 on enough
    pixels (:func:`_as_convolution`), the convolution of g with the flipped weights."""
    if _as_convolution(out, w, stride, padding, dilation):
        _flip(scratch[-1], w, groups)
        _conv_window(out, g, scratch[-1], stride, _flipped_padding(w.shape, padding, dilation), dilation, groups,
                     scratch[:-1])
        return
    n, channels, h, w_ = out.shape
    out_channels, per_group, kh, kw = w.shape
    oh, ow = g.shape[2:]
    weights_t = w.reshape(groups, out_channels // groups, -1).transpose(0, 2, 1)
    per = images_per_product(n, (oh, ow))
    if per > 1:
        padded = scratch[0] if len(scratch) == 3 else None
        for images in _chunks(n, per):
            count = images.stop - images.start
            cols = _reshaped(scratch[-2][:channels * kh * kw * count * oh * ow], (groups, per_group * kh * kw, count * oh * ow))
            np.matmul(weights_t, _by_channel(g[images], scratch[-1], groups), out=cols)
            image = out[images] if padded is None else padded[:count]
            _col2im(image, cols, (kh, kw), stride, dilation, (oh, ow), by_channel=True)
            if padded is not None:
                np.copyto(out[images], _interior(image, padding, (h, w_)))
        return
    g_cols = g.reshape(n, groups, out_channels // groups, oh * ow)
    if not scratch:  # pointwise: the columns are the image
        np.matmul(weights_t, g_cols, out=_reshaped(out, (n, groups, per_group, h * w_)))
        return
    for images in _chunks(n, scratch[-1].shape[0]):
        part = out[images]
        cols = scratch[-1][:part.shape[0]]
        np.matmul(weights_t, g_cols[images], out=cols)
        image = scratch[0][:part.shape[0]] if len(scratch) == 2 else part
        _col2im(image, cols, (kh, kw), stride, dilation, (oh, ow))
        if image is not part:
            np.copyto(part, _interior(image, padding, (h, w_)))


conv2d_input_grad_op = Primitive(
    "conv2d_input_grad",
    infer=_input_grad_aval,
    normalize=_input_grad_normalize,
    kernel=_input_grad_kernel,
    vjp=[
        lambda c, y, g, w, input_hw, **a: conv2d_op(c, w, **a),
        lambda c, y, g, w, input_hw, **a: conv2d_weight_grad(c, g, kernel_size=tuple(w.shape[2:]), **a),
    ],
    flops=lambda ins, out, input_hw, stride, padding, dilation, groups: 2 * ins[0].size * ins[1].shape[1] * _window_size(
        input_hw, ins[1].shape[2:], stride, padding, dilation, ins[0].shape[2:]),
    scratch=_input_grad_scratch,
    doc="J^T_{conv2d|x} g, the transposed convolution of g with w back to the input's shape.  "
        "J^T: conv2d(c, w) and conv2d_weight_grad(c, g).",
)


def conv2d_input_grad(g: Any, weight: Any, input_hw: Sequence[int], stride: Any = 1, padding: Any = 0,
                      dilation: Any = 1, groups: int = 1, name: str | None = None) -> Value:
    """The gradient of conv2d with respect to its input: the transposed convolution of ``g`` with ``weight``."""
    return conv2d_input_grad_op(g, weight, input_hw=input_hw, stride=stride, padding=padding, dilation=dilation,
                                groups=groups, name=name)


# --- conv2d_weight_grad --------------------------------------------------------------------------


def _weight_grad_aval(x: Aval, g: Aval, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair,
                      groups: int) -> Aval:
    _check_image(x)
    _check_image(g, "the cotangent")
    same_float_dtype(x, g)
    if x.shape[0] != g.shape[0]:
        raise ShapeError(f"the input {x.shape} and the cotangent {g.shape} have different batch sizes")
    weight_shape = (g.shape[1], x.shape[1] // groups, *kernel_size)
    _check_conv_channels(x.shape[1], weight_shape, groups)
    out_hw = _conv_out_hw(x.shape[2:], kernel_size, stride, padding, dilation)
    if tuple(g.shape[2:]) != out_hw:
        raise ShapeError(f"the input {x.shape} gives {out_hw} outputs, but the cotangent is {g.shape}")
    return Aval(weight_shape, x.dtype)


def _weight_grad_normalize(x: Aval, g: Aval, kernel_size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                           groups: Any = 1) -> dict[str, Any]:
    kernel = _pair(kernel_size, "kernel_size", 1)
    return {"kernel_size": kernel, **_conv_attrs(kernel, stride, padding, dilation, groups)}


def _weight_grad_scratch(x: Aval, g: Aval, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair,
                         groups: int) -> list[Aval]:
    """:func:`_correlation_scratch` for the live taps' window, then room for its gradient if the window is cut."""
    taps = live_taps(x.shape[2:], kernel_size, stride, padding, dilation, g.shape[2:])
    if taps is None:
        return _correlation_scratch(x, g, kernel_size, stride, padding, dilation, groups)
    _, kernel, cut = taps
    live = Aval((g.shape[1], x.shape[1] // groups, *kernel), x.dtype)
    return _correlation_scratch(x, g, kernel, stride, cut, dilation, groups) + [live]


def _correlation_scratch(x: Aval, g: Aval, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair,
                         groups: int) -> list[Aval]:
    """For a group of P images (:func:`images_per_product`): :func:`_grouped_scratch` (P = 1: the padded
    image and its windows; none for a pointwise kernel), and one group's product (G, O/G, Cg·kH·kW)."""
    per = images_per_product(x.shape[0], g.shape[2:])
    product = Aval((groups, g.shape[1] // groups, x.shape[1] // groups * math.prod(kernel_size)), x.dtype)
    if per > 1:
        return _grouped_scratch(x, kernel_size, padding, g.shape[1], g.shape[2:], per) + [product]
    return _im2col_scratch(_per_image(x, 1), kernel_size, stride, padding, dilation, groups, g.shape[2:]) + [product]


def _weight_grad_kernel(out: np.ndarray, x: np.ndarray, g: np.ndarray, kernel_size: Pair, stride: Pair,
                        padding: Padding, dilation: Pair, groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """:func:`_correlation` over the :func:`live_taps` (into the last scratch), zero at the other offsets."""
    taps = live_taps(x.shape[2:], kernel_size, stride, padding, dilation, g.shape[2:])
    if taps is None:
        _correlation(out, x, g, kernel_size, stride, padding, dilation, groups, scratch)
        return
    first, kernel, cut = taps
    _correlation(scratch[-1], x, g, kernel, stride, cut, dilation, groups, scratch[:-1])
    _spread_live_weights(out, scratch[-1], first)


def _correlation(out: np.ndarray, x: np.ndarray, g: np.ndarray, kernel_size: Pair, stride: Pair,
                 padding: Padding, dilation: Pair, groups: int, scratch: Sequence[np.ndarray] = ()) -> None:
    """dW[g] = Σ over groups of images  g[images, g] @ cols[images, g]ᵀ: one product per group of P images
    (:func:`images_per_product`), of depth P·OH·OW, the first written into dW and each later one added.

    With P = 1 this is one (O/G, OH·OW) @ (OH·OW, Cg·kH·kW) product per image, added in the
    order of the images: the sum NumPy's reduction over a leading axis makes.
    """
    *columns, product = scratch
    n, out_channels, oh, ow = g.shape
    per = images_per_product(n, (oh, ow))
    total = _reshaped(out, product.shape)
    for images in _chunks(n, per):
        if per > 1:
            cols = _group_windows(x[images], kernel_size, stride, padding, dilation, (oh, ow), groups, columns)
            grads = _by_channel(g[images], columns[-1], groups)
        else:
            cols = _columns(x[images], kernel_size, stride, padding, dilation, groups, (oh, ow), columns)[0]
            grads = g[images.start].reshape(groups, out_channels // groups, oh * ow)
        first = images.start == 0
        np.matmul(grads, cols.transpose(0, 2, 1), out=total if first else product)
        if not first:
            np.add(total, product, out=total)


conv2d_weight_grad_op = Primitive(
    "conv2d_weight_grad",
    infer=_weight_grad_aval,
    normalize=_weight_grad_normalize,
    kernel=_weight_grad_kernel,
    vjp=[
        lambda c, y, x, g, kernel_size, **a: conv2d_input_grad(g, c, input_hw=tuple(x.shape[2:]), **a),
        lambda c, y, x, g, kernel_size, **a: conv2d_op(x, c, **a),
    ],
    flops=lambda ins, out, kernel_size, stride, padding, dilation, groups: 2 * ins[1].size * out.shape[1] * _window_size(
        ins[0].shape[2:], kernel_size, stride, padding, dilation, ins[1].shape[2:]),
    scratch=_weight_grad_scratch,
    doc="J^T_{conv2d|w} g: the windows of x correlated with g, summed over the batch.  "
        "J^T: conv2d_input_grad(g, c) and conv2d(x, c).",
)


def conv2d_weight_grad(x: Any, g: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                       groups: int = 1, name: str | None = None) -> Value:
    """The gradient of conv2d with respect to its weight, of spatial size ``kernel_size``."""
    return conv2d_weight_grad_op(x, g, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups, name=name)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, name: str | None = None) -> Value:
    """2-D convolution (cross-correlation) of NCHW ``input`` with ``weight`` (O, C/groups, kH, kW), as torch's.

    ``y[n, o, h, w] = b[o] + Σ_{c, i, j} weight[o, c, i, j] · x_pad[n, g(o)·C/groups + c, s·h + d·i, s·w + d·j]``.
    ``stride``, ``padding`` and ``dilation`` are ints or (H, W) pairs; ``padding`` may also be
    "valid" (none) or "same" (stride 1; the odd pixel at the bottom and right). The bias (O,)
    is added with broadcasting, so its gradient is g summed over N, H and W.
    """
    y = conv2d_op(input, weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
                  name=name if bias is None else None)
    if bias is None:
        return y
    out_channels = y.shape[1]
    bias_node = bias.node if isinstance(bias, Value) else constant_node(y.graph, bias, y.dtype, "conv2d: bias")
    if bias_node.shape != (out_channels,):
        raise GraphError(
            f"conv2d {y.node.describe()}: bias {bias_node.name!r} has shape {bias_node.shape}, but the weight has "
            f"{out_channels} output channels; give a bias of shape ({out_channels},)"
        )
    return E.add(y, S.reshape(Value(bias_node), (out_channels, 1, 1)), name=name)


# --- pooling --------------------------------------------------------------------------------------


def _pool_attrs(x: Aval, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any) -> dict[str, Any]:
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride_pair = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride, "stride", 1)
    pad = _pair(padding, "padding", 0)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ShapeError(f"padding {pad} must be at most half the kernel size {kernel} (as torch requires)")
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ShapeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    return {"kernel_size": kernel, "stride": stride_pair, "padding": pad, "dilation": _pair(dilation, "dilation", 1),
            "ceil_mode": bool(ceil_mode)}


def _pool_out_len(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool, axis: str) -> int:
    """torch's pooling_output_shape: floor (or ceil) of (size + 2p - d·(k-1) - 1)/s + 1, the last window
    starting inside the image or its left padding."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * pad < span:
        raise ShapeError(
            f"the pooling window spans {span} along {axis} but the padded input has only {size + 2 * pad}; "
            "use a smaller kernel_size or more padding"
        )
    extra = stride - 1 if ceil_mode else 0
    out = (size + 2 * pad - span + extra) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_geometry(hw: Sequence[int], kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                   ceil_mode: bool) -> tuple[Pair, Padding]:
    """The output size and the padding of the image the windows read: ``padding`` on each side, and at
    the bottom and right as much more as ceil_mode's last window overhangs."""
    out_hw, pads = [], []
    for a in range(2):
        out = _pool_out_len(hw[a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode, "HW"[a])
        reach = (out - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
        out_hw.append(out)
        pads.append((padding[a], padding[a] + max(0, reach - hw[a] - 2 * padding[a])))
    return tuple(out_hw), tuple(pads)  # type: ignore[return-value]


def _pool_aval(x: Aval, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool, **rest: Any) -> Aval:
    _check_image(x)
    out_hw, _ = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    return Aval((*x.shape[:2], *out_hw), x.dtype)


def _pool_flops(ins: Sequence[Aval], out: Aval, kernel_size: Pair, **attrs: Any) -> int:
    """One operation per window element."""
    return out.size * kernel_size[0] * kernel_size[1]


def _padded_scratch(x: Aval, pads: Padding) -> list[Aval]:
    return [Aval(_padded_shape(x, pads), x.dtype)] if pads != ((0, 0), (0, 0)) else []


# --- max_pool2d ---


def _max_pool_normalize(x: Aval, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                        ceil_mode: Any = False) -> dict[str, Any]:
    return _pool_attrs(x, kernel_size, stride, padding, dilation, ceil_mode)


def _max_pool_scratch(x: Aval, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool) -> list[Aval]:
    """[padded x] for a block of planes (if padded)."""
    _, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    return _chunked(x, _padded_scratch(_plane(x), pads))


def _plane(aval: Aval) -> Aval:
    """One channel of one image of ``aval`` (N, C, H, W): (1, 1, H, W)."""
    return Aval((1, 1, *aval.shape[2:]), aval.dtype)


def _chunked(images: Aval, per_plane: list[Aval]) -> list[Aval]:
    """Scratch avals of one plane each (:func:`_plane`), for the block of planes that fits the bound.

    A pool treats each (image, channel) plane alone, so its block is (B, C), B images of
    all channels, when one image's planes fit ``SCRATCH_BOUND_BYTES``, else (1, K), K
    channels of one image: the scratch of a block stays in a core's cache at any size.
    """
    batch, channels = images.shape[:2]
    planes = max(1, SCRATCH_BOUND_BYTES // max(sum(a.nbytes for a in per_plane), 1))
    block = (min(batch, planes // channels), channels) if planes >= channels else (1, planes)
    return [Aval((*block, *a.shape[2:]), a.dtype) for a in per_plane]


Block = tuple[slice, slice]


def _blocks(images: np.ndarray, block: Sequence[int]) -> list[Block]:
    """The (images, channels) slices of ``images`` (N, C, ...) a pool kernel works through, ``block`` at a time."""
    batch, channels = images.shape[:2]
    if block[1] >= channels:
        return [(part, slice(0, channels)) for part in _chunks(batch, block[0])]
    return [(slice(n, n + 1), part) for n in range(batch) for part in _chunks(channels, block[1])]


def _head(scratch: np.ndarray, block: Block) -> np.ndarray:
    """The part of a block's scratch that a (maybe smaller, last) block uses."""
    return scratch[:block[0].stop - block[0].start, :block[1].stop - block[1].start]


def _max_pool_kernel(out: np.ndarray, x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
                     ceil_mode: bool, scratch: Sequence[np.ndarray] = ()) -> None:
    """out = the maximum over each window of x padded with -inf (NaN propagates, as in torch)."""
    _, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    for block in _blocks(x, scratch[0].shape if scratch else x.shape):
        part = out[block]
        image = _padded(x[block], pads, -np.inf, _head(scratch[0], block) if scratch else None)
        windows = _windows(image, kernel_size, stride, dilation, out.shape[2:])
        np.copyto(part, windows[..., 0, 0])
        for i, j in _offsets(kernel_size)[1:]:
            np.maximum(part, windows[..., i, j], out=part)


def _routing_scratch(x: Aval, y: Aval, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair,
                     ceil_mode: bool, *extra: Aval) -> list[Aval]:
    """Per block of planes: [padded x, padded other] (if padded), the two window masks of
    :func:`_first_maxima`, and ``extra`` (one plane each)."""
    _, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    masks = [Aval(_plane(y).shape, np.dtype(bool))] * 2
    return _chunked(x, _padded_scratch(_plane(x), pads) * 2 + masks + list(extra))


def _max_pool_grad_scratch(g: Aval, x: Aval, y: Aval, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
                           ceil_mode: bool) -> list[Aval]:
    """[padded x, padded dx] (if padded), the two window masks, g at the maxima of one offset."""
    return _routing_scratch(x, y, kernel_size, stride, padding, dilation, ceil_mode, _plane(g))


def _max_pool_grad_aval(g: Aval, x: Aval, y: Aval, **attrs: Any) -> Aval:
    pooled = _pool_aval(x, **attrs)
    if g.shape != pooled.shape or y.shape != pooled.shape:
        raise ShapeError(f"the cotangent {g.shape} and the pooled value {y.shape} must both be {pooled.shape}")
    same_float_dtype(g, x, y)
    return x


def _first_maxima(x_windows: np.ndarray, y: np.ndarray, kernel_size: Pair, hit: np.ndarray, unfound: np.ndarray):
    """For each offset (i, j) in row-major order, ``hit`` = True where x_ij is the first maximum of its window.

    ``unfound`` is True for windows whose maximum is not met yet: hit = [x_ij = y] ∧ unfound,
    then unfound ⊕= hit (boolean masks: one comparison with the strided window view per
    offset, the rest cheap). Yields each offset once ``hit`` holds its mask. A window with
    a NaN (y = NaN) has no hit at all.
    """
    unfound[...] = True
    for i, j in _offsets(kernel_size):
        np.equal(x_windows[..., i, j], y, out=hit)
        np.logical_and(hit, unfound, out=hit)
        np.logical_xor(unfound, hit, out=unfound)
        yield i, j


def _select(out: np.ndarray, values: np.ndarray, mask: np.ndarray, finite: bool) -> None:
    """out = values where mask, else 0: values·mask when every value is finite (one fast pass),
    else a masked copy (∞·0 would be NaN)."""
    if finite:
        np.multiply(values, mask, out=out)
    else:
        out[...] = 0
        np.copyto(out, values, where=mask)


def _max_pool_grad_kernel(out: np.ndarray, g: np.ndarray, x: np.ndarray, y: np.ndarray, kernel_size: Pair,
                          stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
                          scratch: Sequence[np.ndarray] = ()) -> None:
    """dx = 0, then each g added at its window's first maximum in row-major order (torch's choice on ties),
    a block of planes at a time."""
    *padded, hit, unfound, share = scratch
    _, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    for block in _blocks(x, hit.shape):
        part, hit_m, share_m, g_m = out[block], _head(hit, block), _head(share, block), g[block]
        image = _padded(x[block], pads, -np.inf, _head(padded[0], block) if padded else None)
        target = _head(padded[1], block) if padded else part
        target[...] = 0
        x_windows = _windows(image, kernel_size, stride, dilation, y.shape[2:])
        dx_windows = _windows(target, kernel_size, stride, dilation, y.shape[2:], writeable=True)
        finite = bool(np.isfinite(g_m, out=hit_m).all())
        for i, j in _first_maxima(x_windows, y[block], kernel_size, hit_m, _head(unfound, block)):
            _select(share_m, g_m, hit_m, finite)
            dx = dx_windows[..., i, j]
            np.add(dx, share_m, out=dx)
        if target is not part:
            np.copyto(part, _interior(target, pads, x.shape[2:]))


def _max_pool_gather_scratch(c: Aval, x: Aval, y: Aval, kernel_size: Pair, stride: Pair, padding: Pair,
                             dilation: Pair, ceil_mode: bool) -> list[Aval]:
    """[padded x, padded c] (if padded), and the two window masks."""
    return _routing_scratch(x, y, kernel_size, stride, padding, dilation, ceil_mode)


def _max_pool_gather_aval(c: Aval, x: Aval, y: Aval, **attrs: Any) -> Aval:
    pooled = _pool_aval(x, **attrs)
    if c.shape != x.shape or y.shape != pooled.shape:
        raise ShapeError(f"c {c.shape} must be the input's shape {x.shape} and the pooled value {y.shape} {pooled.shape}")
    same_float_dtype(c, x, y)
    return y


def _max_pool_gather_kernel(out: np.ndarray, c: np.ndarray, x: np.ndarray, y: np.ndarray, kernel_size: Pair,
                            stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
                            scratch: Sequence[np.ndarray] = ()) -> None:
    """out = c at each window's first maximum (0 where none is found): the transpose of max_pool2d_grad's routing."""
    *padded, hit, unfound = scratch
    _, pads = _pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    for block in _blocks(x, hit.shape):
        part, hit_m = out[block], _head(hit, block)
        image = _padded(x[block], pads, -np.inf, _head(padded[0], block) if padded else None)
        c_image = _padded(c[block], pads, 0.0, _head(padded[1], block) if padded else None)
        x_windows = _windows(image, kernel_size, stride, dilation, y.shape[2:])
        c_windows = _windows(c_image, kernel_size, stride, dilation, y.shape[2:])
        part[...] = 0
        for i, j in _first_maxima(x_windows, y[block], kernel_size, hit_m, _head(unfound, block)):
            np.copyto(part, c_windows[..., i, j], where=hit_m)


def _max_pool_routing_normalize(a: Aval, x: Aval, y: Aval, kernel_size: Any, stride: Any = None, padding: Any = 0,
                                dilation: Any = 1, ceil_mode: Any = False) -> dict[str, Any]:
    return _pool_attrs(x, kernel_size, stride, padding, dilation, ceil_mode)


max_pool2d_grad_op = Primitive(
    "max_pool2d_grad",
    infer=_max_pool_grad_aval,
    normalize=_max_pool_routing_normalize,
    kernel=_max_pool_grad_kernel,
    vjp=[lambda c, dx, g, x, y, **a: max_pool2d_gather_op(c, x, y, **a), ZERO, ZERO],  # the routing is piecewise constant
    flops=lambda ins, out, kernel_size, **a: 4 * ins[0].size * kernel_size[0] * kernel_size[1],
    scratch=_max_pool_grad_scratch,
    doc="J^T_{max_pool2d|x} g: each g added at its window's first maximum.  J^T: max_pool2d_gather(c).",
)

max_pool2d_gather_op = Primitive(
    "max_pool2d_gather",
    infer=_max_pool_gather_aval,
    normalize=_max_pool_routing_normalize,
    kernel=_max_pool_gather_kernel,
    vjp=[lambda cc, out, c, x, y, **a: max_pool2d_grad_op(cc, x, y, **a), ZERO, ZERO],
    flops=lambda ins, out, kernel_size, **a: 5 * out.size * kernel_size[0] * kernel_size[1],
    scratch=_max_pool_gather_scratch,
    doc="c (the input's shape) read at each window's first maximum: max_pool2d_grad's transpose.  "
        "J^T: max_pool2d_grad(cc).",
)

def max_pool2d_grad(g: Any, x: Any, y: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                    dilation: Any = 1, ceil_mode: bool = False, name: str | None = None) -> Value:
    """The gradient of ``y = max_pool2d(x, ...)``: each g added at its window's first maximum."""
    return max_pool2d_grad_op(g, x, y, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                              ceil_mode=ceil_mode, name=name)


def max_pool2d_gather(c: Any, x: Any, y: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                      dilation: Any = 1, ceil_mode: bool = False, name: str | None = None) -> Value:
    """``c`` (x's shape) read at each window's first maximum of x: the transpose of :func:`max_pool2d_grad`."""
    return max_pool2d_gather_op(c, x, y, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                                ceil_mode=ceil_mode, name=name)


max_pool2d_op = Primitive(
    "max_pool2d",
    infer=_pool_aval,
    normalize=_max_pool_normalize,
    kernel=_max_pool_kernel,
    vjp=[lambda g, y, x, **a: max_pool2d_grad_op(g, x, y, **a)],
    flops=_pool_flops,
    scratch=_max_pool_scratch,
    doc="The maximum over each window (padding is -inf).  J^T: max_pool2d_grad, g to each window's first maximum.",
)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, name: str | None = None) -> Value:
    """The maximum over each kH×kW window of NCHW ``input`` (torch.nn.functional.max_pool2d's arguments).

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) is -inf, so a
    window's maximum is always one of its image pixels. The gradient goes to the first maximum
    of each window in row-major order, as in torch.
    """
    return max_pool2d_op(input, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                         ceil_mode=ceil_mode, name=name)


# --- avg_pool2d ---


def _avg_pool_normalize(x: Aval, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: Any = False,
                        count_include_pad: Any = True) -> dict[str, Any]:
    attrs = _pool_attrs(x, kernel_size, stride, padding, 1, ceil_mode)
    del attrs["dilation"]
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise ShapeError(f"count_include_pad must be True or False, got {count_include_pad!r}")
    return {**attrs, "count_include_pad": bool(count_include_pad)}


def _window_counts(size: int, kernel: int, stride: int, pad: int, out_len: int, count_include_pad: bool) -> np.ndarray:
    """How many elements each window along one axis averages (torch's divisor).

    A window is cut at the end of the right padding (ceil_mode's overhang is never
    counted); without count_include_pad, at the image's edges.
    """
    start = np.arange(out_len) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def _fill_inverse_counts(inverse: np.ndarray, hw: Sequence[int], kernel_size: Pair, stride: Pair, padding: Pair,
                         count_include_pad: bool) -> None:
    """inverse[h, w] = 1 / (count_h[h] · count_w[w]): the divisor is a product over the two axes."""
    counts = [_window_counts(hw[a], kernel_size[a], stride[a], padding[a], inverse.shape[a], count_include_pad)
              for a in range(2)]
    np.outer(1.0 / counts[0], 1.0 / counts[1], out=inverse)


def _avg_geometry(hw: Sequence[int], kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool) -> tuple[Pair, Padding]:
    return _pool_geometry(hw, kernel_size, stride, padding, (1, 1), ceil_mode)


def _avg_pool_aval(x: Aval, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool, count_include_pad: bool) -> Aval:
    return _pool_aval(x, kernel_size, stride, padding, (1, 1), ceil_mode)


def _avg_pool_scratch(x: Aval, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                      count_include_pad: bool) -> list[Aval]:
    """[padded x] for a block of planes (if padded), and 1 / count (OH, OW)."""
    out_hw, pads = _avg_geometry(x.shape[2:], kernel_size, stride, padding, ceil_mode)
    return _chunked(x, _padded_scratch(_plane(x), pads)) + [Aval(out_hw, x.dtype)]


def _avg_pool_kernel(out: np.ndarray, x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                     count_include_pad: bool, scratch: Sequence[np.ndarray] = ()) -> None:
    """out = (Σ over each window of x padded with zeros) / the window's count."""
    *padded, inverse = scratch
    _, pads = _avg_geometry(x.shape[2:], kernel_size, stride, padding, ceil_mode)
    _fill_inverse_counts(inverse, x.shape[2:], kernel_size, stride, padding, count_include_pad)
    for block in _blocks(x, padded[0].shape if padded else x.shape):
        part = out[block]
        image = _padded(x[block], pads, 0.0, _head(padded[0], block) if padded else None)
        windows = _windows(image, kernel_size, stride, (1, 1), out.shape[2:])
        np.copyto(part, windows[..., 0, 0])
        for i, j in _offsets(kernel_size)[1:]:
            np.add(part, windows[..., i, j], out=part)
        np.multiply(part, inverse, out=part)


def _avg_pool_grad_aval(g: Aval, input_hw: Pair, **attrs: Any) -> Aval:
    _check_image(g, "the cotangent")
    x = Aval((*g.shape[:2], *input_hw), g.dtype)
    pooled = _avg_pool_aval(x, **attrs)
    if g.shape != pooled.shape:
        raise ShapeError(f"an input of {tuple(input_hw)} pixels pools to {pooled.shape}, but the cotangent is {g.shape}")
    return x


def _avg_pool_grad_scratch(g: Aval, input_hw: Pair, kernel_size: Pair, stride: Pair, padding: Padding,
                           ceil_mode: bool, count_include_pad: bool) -> list[Aval]:
    """[padded dx (if padded), g / count] for a block of planes, and 1 / count (OH, OW)."""
    x = Aval((1, 1, *input_hw), g.dtype)
    _, pads = _avg_geometry(input_hw, kernel_size, stride, padding, ceil_mode)
    return _chunked(g, _padded_scratch(x, pads) + [_plane(g)]) + [Aval(g.shape[2:], g.dtype)]


def _avg_pool_grad_kernel(out: np.ndarray, g: np.ndarray, input_hw: Pair, kernel_size: Pair, stride: Pair,
                          padding: Pair, ceil_mode: bool, count_include_pad: bool,
                          scratch: Sequence[np.ndarray] = ()) -> None:
    """dx = Σ over offsets of (g / count) added back to the pixels each window averaged."""
    *padded, share, inverse = scratch
    _, pads = _avg_geometry(input_hw, kernel_size, stride, padding, ceil_mode)
    _fill_inverse_counts(inverse, input_hw, kernel_size, stride, padding, count_include_pad)
    for block in _blocks(g, share.shape):
        part, share_m = out[block], _head(share, block)
        np.multiply(g[block], inverse, out=share_m)
        target = _head(padded[0], block) if padded else part
        target[...] = 0
        windows = _windows(target, kernel_size, stride, (1, 1), g.shape[2:], writeable=True)
        for i, j in _offsets(kernel_size):
            dx = windows[..., i, j]
            np.add(dx, share_m, out=dx)
        if target is not part:
            np.copyto(part, _interior(target, pads, input_hw))


def _avg_pool_grad_normalize(g: Aval, input_hw: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                             ceil_mode: Any = False, count_include_pad: Any = True) -> dict[str, Any]:
    return {"input_hw": _pair(input_hw, "input_hw", 1),
            **_avg_pool_normalize(g, kernel_size, stride, padding, ceil_mode, count_include_pad)}


avg_pool2d_grad_op = Primitive(
    "avg_pool2d_grad",
    infer=_avg_pool_grad_aval,
    normalize=_avg_pool_grad_normalize,
    kernel=_avg_pool_grad_kernel,
    vjp=[lambda c, y, g, input_hw, **a: avg_pool2d_op(c, **a)],
    flops=lambda ins, out, kernel_size, **a: ins[0].size * (kernel_size[0] * kernel_size[1] + 1),
    scratch=_avg_pool_grad_scratch,
    doc="J^T_{avg_pool2d|x} g: g / count spread over each window.  J^T: avg_pool2d(c).",
)

def avg_pool2d_grad(g: Any, input_hw: Sequence[int], kernel_size: Any, stride: Any = None, padding: Any = 0,
                    ceil_mode: bool = False, count_include_pad: bool = True, name: str | None = None) -> Value:
    """The gradient of avg_pool2d for an input of ``input_hw`` pixels: g / count spread over each window."""
    return avg_pool2d_grad_op(g, input_hw=input_hw, kernel_size=kernel_size, stride=stride, padding=padding,
                              ceil_mode=ceil_mode, count_include_pad=count_include_pad, name=name)


avg_pool2d_op = Primitive(
    "avg_pool2d",
    infer=_avg_pool_aval,
    normalize=_avg_pool_normalize,
    kernel=_avg_pool_kernel,
    vjp=[lambda g, y, x, **a: avg_pool2d_grad_op(g, input_hw=tuple(x.shape[2:]), **a)],
    flops=_pool_flops,
    scratch=_avg_pool_scratch,
    doc="The mean over each window.  J^T: avg_pool2d_grad, g / count spread over each window.",
)


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, name: str | None = None) -> Value:
    """The mean over each kH×kW window of NCHW ``input`` (torch.nn.functional.avg_pool2d's arguments).

    ``stride`` defaults to ``kernel_size``; padding is zeros, counted in the divisor unless
    ``count_include_pad=False``; ceil_mode's overhanging windows divide by the part inside
    the padded image, as torch's.
    """
    return avg_pool2d_op(input, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, name=name)


# --- global pooling and flatten: built from other ops -------------------------------------------


def _checked_value(x: Any, op: str) -> Value:
    if not isinstance(x, Value):
        raise GraphError(f"{op} needs a graph Value, got {type(x).__name__}")
    return x


def global_avg_pool(input: Any, name: str | None = None) -> Value:
    """(N, C, H, W) → (N, C): the mean over H and W (``adaptive_avg_pool2d(x, 1)`` flattened)."""
    x = _checked_value(input, "global_avg_pool")
    if x.ndim != 4:
        raise GraphError(f"global_avg_pool of {x.node.describe()}: the input must be 4-D (N, C, H, W), got shape {x.shape}")
    return R.mean(x, axis=(2, 3), name=name)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1, name: str | None = None) -> Value:
    """The dimensions ``start_dim`` to ``end_dim`` (inclusive) merged into one, as torch.flatten (a reshape)."""
    x = _checked_value(input, "flatten")
    ndim = max(x.ndim, 1)
    if not (is_int(start_dim) and is_int(end_dim) and -ndim <= start_dim < ndim and -ndim <= end_dim < ndim):
        raise GraphError(
            f"flatten of {x.node.describe()}: start_dim {start_dim!r} and end_dim {end_dim!r} must be ints in "
            f"[{-ndim}, {ndim - 1}] for shape {x.shape}"
        )
    start, end = int(start_dim) % ndim, int(end_dim) % ndim
    if start > end:
        raise GraphError(f"flatten of {x.node.describe()}: start_dim {start_dim} comes after end_dim {end_dim}")
    if x.ndim == 0:
        return S.reshape(x, (1,), name=name)
    merged = x.shape[start:end + 1]
    size = -1 if None in merged else math.prod(merged)
    if size == -1 and len(merged) == 1:
        size = None
    return S.reshape(x, (*x.shape[:start], size, *x.shape[end + 1:]), name=name)
