"""Bad input of conv2d, the pools, global_avg_pool and flatten: cases for the bad-input catalogue.

Each case is ``(id, thunk that must raise GraphError, regex the message must match)``;
the message names the op and the operands' shapes (added by ``bind``) and says what to do.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def _image_and_weight(x_shape=(1, 4, 6, 6), w_shape=(2, 4, 3, 3), x_dtype="float32", w_dtype="float32"):
    """An image ``x`` and a weight ``w``, inputs of one fresh graph."""
    with gc.Graph("conv-case"):
        return gc.input("x", x_shape, x_dtype), gc.input("w", w_shape, w_dtype)


def _conv(x_shape=(1, 4, 6, 6), w_shape=(2, 4, 3, 3), x_dtype="float32", w_dtype="float32", **kwargs):
    x, w = _image_and_weight(x_shape, w_shape, x_dtype, w_dtype)
    return gc.conv2d(x, w, **kwargs)


def _image(shape=(1, 2, 6, 6)) -> gc.Value:
    with gc.Graph("pool-case"):
        return gc.input("x", shape)


CASES_CONV = [
    ("conv2d-input-not-4d", lambda: _conv(x_shape=(4, 6, 6)), r"conv2d.*input must be 4-D \(N, C, H, W\), got shape \(4, 6, 6\)"),
    ("conv2d-weight-not-4d", lambda: _conv(w_shape=(2, 4, 3)), r"conv2d.*weight must be 4-D \(O, C/groups, kH, kW\)"),
    ("conv2d-dtypes-differ", lambda: _conv(w_dtype="float64"), r"conv2d.*dtypes differ.*cast"),
    ("conv2d-int-image", lambda: _conv(x_dtype="int64", w_dtype="int64"), r"conv2d.*float32 or float64"),
    ("conv2d-channels-not-divisible-by-groups", lambda: _conv((1, 3, 6, 6), (2, 1, 3, 3), groups=2),
     r"conv2d.*3 channels are not divisible by groups=2.*'x' \(1, 3, 6, 6\)"),
    ("conv2d-out-channels-not-divisible-by-groups", lambda: _conv((1, 4, 6, 6), (3, 2, 3, 3), groups=2),
     r"conv2d.*3 output channels are not divisible by groups=2"),
    ("conv2d-weight-channels-per-group", lambda: _conv((1, 4, 6, 6), (2, 3, 3, 3)),
     r"conv2d.*takes 3 channels per group.*4 channels in 1 group.*\(O, C/groups, kH, kW\)"),
    ("conv2d-depthwise-weight-not-one-channel", lambda: _conv((1, 4, 6, 6), (4, 4, 3, 3), groups=4),
     r"conv2d.*takes 4 channels per group.*4 groups?"),
    ("conv2d-kernel-bigger-than-padded-input", lambda: _conv((1, 4, 2, 6), (2, 4, 3, 3), padding=0),
     r"conv2d.*kernel spans 3 along H.*padded input has only 2.*smaller kernel or more padding"),
    ("conv2d-dilated-kernel-bigger-than-input", lambda: _conv((1, 4, 6, 6), (2, 4, 3, 3), dilation=3),
     r"conv2d.*kernel spans 7 along H \(size 3, dilation 3\)"),
    ("conv2d-stride-zero", lambda: _conv(stride=0), r"conv2d.*stride must be >= 1, got 0"),
    ("conv2d-stride-float", lambda: _conv(stride=1.5), r"conv2d.*stride must be an int or a pair of ints, got 1.5"),
    ("conv2d-stride-triple", lambda: _conv(stride=(1, 2, 3)), r"conv2d.*stride must be an int or a pair"),
    ("conv2d-padding-negative", lambda: _conv(padding=-1), r"conv2d.*padding must be >= 0, got -1"),
    ("conv2d-padding-unknown-word", lambda: _conv(padding="full"), r"conv2d.*padding must be 'valid', 'same'"),
    ("conv2d-same-padding-with-stride", lambda: _conv(padding="same", stride=2),
     r"conv2d.*padding='same' needs stride 1.*give the padding as ints"),
    ("conv2d-dilation-zero", lambda: _conv(dilation=0), r"conv2d.*dilation must be >= 1"),
    ("conv2d-groups-zero", lambda: _conv(groups=0), r"conv2d.*groups must be an int >= 1, got 0"),
    ("conv2d-bias-wrong-length", lambda: _conv(bias=np.zeros(3, np.float32)),
     r"conv2d.*bias.*shape \(3,\).*2 output channels.*shape \(2,\)"),
    ("max_pool2d-input-not-4d", lambda: gc.max_pool2d(_image((2, 6, 6)), 2), r"max_pool2d.*input must be 4-D"),
    ("max_pool2d-kernel-zero", lambda: gc.max_pool2d(_image(), 0), r"max_pool2d.*kernel_size must be >= 1"),
    ("max_pool2d-stride-zero", lambda: gc.max_pool2d(_image(), 2, stride=0), r"max_pool2d.*stride must be >= 1"),
    ("max_pool2d-padding-over-half-kernel", lambda: gc.max_pool2d(_image(), 2, padding=2),
     r"max_pool2d.*padding \(2, 2\) must be at most half the kernel size \(2, 2\)"),
    ("max_pool2d-window-bigger-than-input", lambda: gc.max_pool2d(_image((1, 2, 2, 6)), 3),
     r"max_pool2d.*window spans 3 along H.*only 2.*smaller kernel_size"),
    ("max_pool2d-ceil-mode-not-bool", lambda: gc.max_pool2d(_image(), 2, ceil_mode="yes"),
     r"max_pool2d.*ceil_mode must be True or False"),
    ("avg_pool2d-kernel-pair-of-three", lambda: gc.avg_pool2d(_image(), (2, 2, 2)),
     r"avg_pool2d.*kernel_size must be an int or a pair of ints"),
    ("avg_pool2d-count-include-pad-not-bool", lambda: gc.avg_pool2d(_image(), 2, count_include_pad=None),
     r"avg_pool2d.*count_include_pad must be True or False"),
    ("avg_pool2d-padding-over-half-kernel", lambda: gc.avg_pool2d(_image(), 3, padding=2),
     r"avg_pool2d.*at most half the kernel size"),
    ("global_avg_pool-not-4d", lambda: gc.global_avg_pool(_image((2, 6, 6))),
     r"global_avg_pool of 'x' \(input.*must be 4-D \(N, C, H, W\), got shape \(2, 6, 6\)"),
    ("global_avg_pool-not-a-value", lambda: gc.global_avg_pool(np.zeros((1, 2, 3, 3))), r"global_avg_pool needs a graph Value"),
    ("flatten-dim-out-of-range", lambda: gc.flatten(_image(), 4), r"flatten of 'x' \(input.*must be ints in \[-4, 3\]"),
    ("flatten-start-after-end", lambda: gc.flatten(_image(), 2, 1), r"flatten of 'x' \(input.*start_dim 2 comes after end_dim 1"),
]
