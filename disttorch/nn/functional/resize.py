"""pad (all four modes) and interpolate: non-constant padding and resampling are gathers along one axis at a
time (index_select, whose backward scatters the gradient back), mixed with weights for linear modes."""
import math

import numpy as np

from ...core import creation
from ...core.ops import shape as sh
from ...core.ops.indexing import index_select

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _source_positions(size, before, after, mode):
    positions = np.arange(-before, size + after)
    if mode == "reflect":
        if before >= size or after >= size:
            raise RuntimeError(f"Padding size should be less than the corresponding input dimension, but got: "
                               f"padding ({before}, {after}) at dimension of size {size}")
        positions = np.abs(positions)
        return np.where(positions >= size, 2 * (size - 1) - positions, positions)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if before > size or after > size:
        raise RuntimeError(f"Padding value causes wrapping around more than once: padding ({before}, {after}) at "
                           f"dimension of size {size}")
    return positions % size


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims; pad lists (before, after) pairs starting from the last dim."""
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}; use one of {', '.join(_PAD_MODES)}")
    if mode == "constant":
        return sh.pad(input, pad, value=value)
    if len(pad) % 2 or len(pad) // 2 > input.dim():
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dims; got "
                           f"{len(pad)}")
    out = input
    for i in range(len(pad) // 2):
        axis = input.dim() - 1 - i
        before, after = pad[2 * i], pad[2 * i + 1]
        if before == 0 and after == 0:
            continue
        positions = _source_positions(input.shape[axis], before, after, mode)
        out = index_select(out, axis, creation.tensor(positions, device=input.device))
    return out


def _output_sizes(input, size, scale_factor, spatial):
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    in_sizes = input.shape[2:]
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        scales = [None] * spatial
    else:
        scales = [float(scale_factor)] * spatial if isinstance(scale_factor, (int, float)) else [
            float(s) for s in scale_factor]
        sizes = tuple(math.floor(n * s) for n, s in zip(in_sizes, scales))
    if len(sizes) != spatial:
        raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                         f"spatial dimensions of {list(in_sizes)} and output size of {list(sizes)}.")
    return sizes, scales


def _nearest(input, axis, out_size, scale, exact):
    in_size = input.shape[axis]
    step = 1.0 / scale if scale is not None else in_size / out_size
    offset = 0.5 if exact else 0.0
    positions = np.minimum(np.floor((np.arange(out_size) + offset) * step).astype(np.int64), in_size - 1)
    return index_select(input, axis, creation.tensor(positions, device=input.device))


def _linear(input, axis, out_size, scale, align_corners):
    in_size = input.shape[axis]
    target = np.arange(out_size, dtype=np.float64)
    if align_corners:
        source = target * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    else:
        step = 1.0 / scale if scale is not None else in_size / out_size
        source = np.maximum((target + 0.5) * step - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    weight_shape = [1] * input.dim()
    weight_shape[axis] = out_size
    frac = creation.tensor((source - low).reshape(weight_shape), dtype=input.dtype, device=input.device)
    lower = index_select(input, axis, creation.tensor(low, device=input.device))
    upper = index_select(input, axis, creation.tensor(high, device=input.device))
    return lower + (upper - lower) * frac


_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of an (N, C, ...) input by nearest or (bi/tri)linear sampling."""
    spatial = input.dim() - 2
    if spatial < 1:
        raise ValueError(f"interpolate expects an (N, C, ...) input with spatial dims, got {input.dim()}D")
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != spatial:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs "
                                  f"{_LINEAR_MODES[mode] + 2}D input")
    if mode not in ("nearest", "nearest-exact") and mode not in _LINEAR_MODES:
        raise NotImplementedError(f"interpolate mode '{mode}' is not supported; use nearest, nearest-exact, "
                                  "linear, bilinear or trilinear")
    if align_corners is not None and mode not in _LINEAR_MODES:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    sizes, scales = _output_sizes(input, size, scale_factor, spatial)
    if recompute_scale_factor:
        scales = [None] * spatial
    out = input
    for i, (out_size, scale) in enumerate(zip(sizes, scales)):
        axis = 2 + i
        if mode in _LINEAR_MODES:
            out = _linear(out, axis, out_size, scale, bool(align_corners))
        else:
            out = _nearest(out, axis, out_size, scale, mode == "nearest-exact")
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r)."""
    r = upscale_factor
    *lead, channels, height, width = input.shape
    if channels % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={channels} is not divisible by {r * r}")
    k = len(lead)
    out = input.reshape(*lead, channels // (r * r), r, r, height, width)
    out = out.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return out.reshape(*lead, channels // (r * r), height * r, width * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W)."""
    r = downscale_factor
    *lead, channels, height, width = input.shape
    if height % r or width % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor, got "
                           f"{height}x{width} and {r}")
    k = len(lead)
    out = input.reshape(*lead, channels, height // r, r, width // r, r)
    out = out.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return out.reshape(*lead, channels * r * r, height // r, width // r)
