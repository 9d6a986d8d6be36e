"""Sliding-window plumbing shared by convolution and pooling: padding, im2col views, col2im.

Column matrices are laid out channel-first, (C, KH, KW, N, OH, OW), so a convolution is one matmul
of the (O, C*KH*KW) weight against a (C*KH*KW, N*OH*OW) matrix, and the weight gradient is one matmul
with the batch folded into the long inner dimension (the shape BLAS is fastest at).
"""
from ...core.backend import get_array_module


def as_pair(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {tuple(value)}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def out_size(size, kernel, stride, dilation, pad_before, pad_after, ceil_mode=False):
    """Number of window positions along one axis (PyTorch's rule, ceil_mode included)."""
    span = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    if ceil_mode:
        count = -(-span // stride) + 1
        # The last window must start inside the input or the left padding, never in the right padding.
        if (count - 1) * stride >= size + pad_before:
            count -= 1
        return count
    return span // stride + 1


def pad2d(x, top, bottom, left, right, value=0.0):
    """Copy x (..., H, W) into a canvas padded with `value`; returns x itself when nothing is padded."""
    if not (top or bottom or left or right):
        return x
    xp = get_array_module(x)
    h, w = x.shape[-2:]
    canvas = xp.full(x.shape[:-2] + (h + top + bottom, w + left + right), value, dtype=x.dtype)
    canvas[..., top:top + h, left:left + w] = x
    return canvas


def window_view(x, kernel, stride, dilation, out_hw):
    """Strided view (C, KH, KW, N, OH, OW) of x (N, C, H, W): no copy, one entry per window element."""
    xp = get_array_module(x)
    s_n, s_c, s_h, s_w = x.strides
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    shape = (x.shape[1], kh, kw, x.shape[0], oh, ow)
    strides = (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def im2col(x, kernel, stride, dilation, out_hw):
    """Contiguous column matrix (C*KH*KW, N*OH*OW) of the (already padded) input x (N, C, H, W)."""
    view = window_view(x, kernel, stride, dilation, out_hw)
    xp = get_array_module(x)
    c, kh, kw, n, oh, ow = view.shape
    return xp.ascontiguousarray(view).reshape(c * kh * kw, n * oh * ow)


def window_slice(k_h, k_w, stride, dilation, out_hw):
    """The (rows, cols) slices of the padded input touched by kernel position (k_h, k_w)."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    top, left = k_h * dh, k_w * dw
    return slice(top, top + sh * (oh - 1) + 1, sh), slice(left, left + sw * (ow - 1) + 1, sw)


def col2im(cols, padded_hw, kernel, stride, dilation):
    """Sum columns (C, KH, KW, N, OH, OW) back onto a padded canvas (N, C, Hp, Wp).

    Loops over the KH*KW kernel positions only; each iteration adds one strided slab.
    """
    xp = get_array_module(cols)
    c, kh, kw, n, oh, ow = cols.shape
    canvas = xp.zeros((c, n) + tuple(padded_hw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = window_slice(i, j, stride, dilation, (oh, ow))
            canvas[:, :, rows, columns] += cols[:, i, j]
    return xp.ascontiguousarray(canvas.transpose(1, 0, 2, 3))
