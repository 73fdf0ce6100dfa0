"""Convolution and pooling in plain NumPy, written from the definitions, as the tests' oracle.

Each function pads with ``np.pad`` and visits the kernel offsets with explicit slices
(graphc's kernels use ``sliding_window_view``, im2col and matmul); the gradients of the
linear maps are their definitions as transposes: ``⟨conv(x, w), g⟩ = ⟨x, input_grad(g, w)⟩``.
"""

from __future__ import annotations

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_padding(padding, kernel, dilation):
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def _out_len(size, k, s, before, after, d):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def _offset_slice(i, j, stride, dilation, out_hw):
    """The pixels of a padded image that kernel offset (i, j) reads for every output pixel."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(None), slice(None), slice(i * dh, i * dh + sh * (out_hw[0] - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (out_hw[1] - 1) + 1, sw))


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    stride, dilation = pair(stride), pair(dilation)
    pads = conv_padding(padding, w.shape[2:], dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    out_hw = tuple(_out_len(x.shape[2 + a], w.shape[2 + a], stride[a], *pads[a], dilation[a]) for a in range(2))
    y = np.zeros((n, o, *out_hw), dtype=np.result_type(x, w))
    og = o // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[_offset_slice(i, j, stride, dilation, out_hw)][:, g * cg:(g + 1) * cg]
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv2d_input_grad(g, w, input_hw, stride=1, padding=0, dilation=1, groups=1):
    stride, dilation = pair(stride), pair(dilation)
    pads = conv_padding(padding, w.shape[2:], dilation)
    o, cg, kh, kw = w.shape
    og = o // groups
    n, out_hw = g.shape[0], g.shape[2:]
    dxp = np.zeros((n, cg * groups, input_hw[0] + sum(pads[0]), input_hw[1] + sum(pads[1])), dtype=g.dtype)
    for grp in range(groups):
        for i in range(kh):
            for j in range(kw):
                term = np.einsum("nohw,oc->nchw", g[:, grp * og:(grp + 1) * og], w[grp * og:(grp + 1) * og, :, i, j])
                dxp[_offset_slice(i, j, stride, dilation, out_hw)][:, grp * cg:(grp + 1) * cg] += term
    return dxp[:, :, pads[0][0]:pads[0][0] + input_hw[0], pads[1][0]:pads[1][0] + input_hw[1]]


def conv2d_weight_grad(x, g, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    stride, dilation, (kh, kw) = pair(stride), pair(dilation), pair(kernel_size)
    pads = conv_padding(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    o, c = g.shape[1], x.shape[1]
    og, cg = o // groups, c // groups
    dw = np.zeros((o, cg, kh, kw), dtype=x.dtype)
    for grp in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[_offset_slice(i, j, stride, dilation, g.shape[2:])][:, grp * cg:(grp + 1) * cg]
                dw[grp * og:(grp + 1) * og, :, i, j] = np.einsum("nchw,nohw->oc", patch, g[:, grp * og:(grp + 1) * og])
    return dw


def _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode, fill):
    """(padded image, output size, offsets) for a pool, with torch's output size rule."""
    k, s, p, d = pair(kernel_size), pair(stride if stride is not None else kernel_size), pair(padding), pair(dilation)
    out_hw = []
    for a in range(2):
        size = x.shape[2 + a]
        out = (size + 2 * p[a] - d[a] * (k[a] - 1) - 1 + (s[a] - 1 if ceil_mode else 0)) // s[a] + 1
        if ceil_mode and (out - 1) * s[a] >= size + p[a]:
            out -= 1
        out_hw.append(out)
    extra = [max(0, (out_hw[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 - x.shape[2 + a] - 2 * p[a]) for a in range(2)]
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0] + extra[0]), (p[1], p[1] + extra[1])), constant_values=fill)
    return xp, tuple(out_hw), k, s, p, d


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    xp, out_hw, k, s, p, d = _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    y = np.full((*x.shape[:2], *out_hw), -np.inf, dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            y = np.maximum(y, xp[_offset_slice(i, j, s, d, out_hw)])
    return y


def _first_max_positions(x, kernel_size, stride, padding, dilation, ceil_mode):
    """For every output pixel, the (h, w) in the padded image of its window's first maximum (row-major)."""
    xp, out_hw, k, s, p, d = _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    n, c = x.shape[:2]
    positions = np.zeros((n, c, *out_hw, 2), dtype=int)
    for b in range(n):
        for ch in range(c):
            for oh in range(out_hw[0]):
                for ow in range(out_hw[1]):
                    best, where = -np.inf, None
                    for i in range(k[0]):
                        for j in range(k[1]):
                            h, w = oh * s[0] + i * d[0], ow * s[1] + j * d[1]
                            if where is None or xp[b, ch, h, w] > best:
                                best, where = xp[b, ch, h, w], (h, w)
                    positions[b, ch, oh, ow] = where
    return xp.shape, positions, p


def max_pool2d_grad(g, x, y, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    shape, positions, p = _first_max_positions(x, kernel_size, stride, padding, dilation, ceil_mode)
    dxp = np.zeros(shape, dtype=g.dtype)
    for index in np.ndindex(g.shape):
        h, w = positions[index]
        dxp[index[0], index[1], h, w] += g[index]
    return dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]


def max_pool2d_gather(c, x, y, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    shape, positions, p = _first_max_positions(x, kernel_size, stride, padding, dilation, ceil_mode)
    cp = np.zeros(shape, dtype=c.dtype)
    cp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]] = c
    out = np.zeros(positions.shape[:-1], dtype=c.dtype)
    for index in np.ndindex(out.shape):
        h, w = positions[index]
        out[index] = cp[index[0], index[1], h, w]
    return out


def _avg_counts(x_hw, k, s, p, out_hw, count_include_pad):
    counts = []
    for a in range(2):
        start = np.arange(out_hw[a]) * s[a] - p[a]
        end = np.minimum(start + k[a], x_hw[a] + p[a])
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, x_hw[a])
        counts.append(end - start)
    return np.outer(*counts)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    xp, out_hw, k, s, p, d = _pool_windows(x, kernel_size, stride, padding, 1, ceil_mode, 0.0)
    total = sum(xp[_offset_slice(i, j, s, d, out_hw)] for i in range(k[0]) for j in range(k[1]))
    return total / _avg_counts(x.shape[2:], k, s, p, out_hw, count_include_pad)


def avg_pool2d_grad(g, input_hw, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = np.zeros((*g.shape[:2], *input_hw), dtype=g.dtype)
    xp, out_hw, k, s, p, d = _pool_windows(x, kernel_size, stride, padding, 1, ceil_mode, 0.0)
    share = g / _avg_counts(input_hw, k, s, p, out_hw, count_include_pad)
    for i in range(k[0]):
        for j in range(k[1]):
            xp[_offset_slice(i, j, s, d, out_hw)] += share
    return xp[:, :, p[0]:p[0] + input_hw[0], p[1]:p[1] + input_hw[1]]
