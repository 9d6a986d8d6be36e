"""Sliding-window plumbing shared by convolution and pooling: padding, im2col views, col2im.

Columns are laid out batch-first, (N, G, KH*KW*Cg, OH*OW): a convolution's output and input gradient
are then stacked matmuls that read and write NCHW directly. The channel-major alternative (one matmul
over N*OH*OW columns) needs an NCHW transpose of the output and of the gradient, which costs more than
it saves: twice the time for a first layer (few input channels), a few percent more for deeper ones.
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


def conv_columns(x, groups, kernel, stride, dilation, out_hw):
    """Contiguous columns (N, G, KH*KW*Cg, OH*OW) of the (already padded) input x (N, C, H, W).

    Built from one strided view of x and a single copy. Channels sit inside the kernel axes so that
    each of col2im's slabs is one (N, G, Cg, OH, OW) block.
    """
    xp = get_array_module(x)
    n, c = x.shape[:2]
    s_n, s_c, s_h, s_w = x.strides
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    per_group = c // groups
    shape = (n, groups, kh, kw, per_group, oh, ow)
    strides = (s_n, s_c * per_group, s_h * dh, s_w * dw, s_c, s_h * sh, s_w * sw)
    view = xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)
    return xp.ascontiguousarray(view).reshape(n, groups, kh * kw * per_group, oh * ow)


def weight_rows(weight, groups):
    """(A, B, KH, KW) weight -> (G, A/G, KH*KW*B), ordered like conv_columns' rows."""
    xp = get_array_module(weight)
    a, b, kh, kw = weight.shape
    by_group = weight.reshape(groups, a // groups, b, kh, kw).transpose(0, 1, 3, 4, 2)
    return xp.ascontiguousarray(by_group).reshape(groups, a // groups, kh * kw * b)


def rows_to_weight(rows, weight_shape):
    """Inverse of weight_rows: (G, A/G, KH*KW*B) -> (A, B, KH, KW)."""
    a, b, kh, kw = weight_shape
    groups = rows.shape[0]
    return rows.reshape(groups, a // groups, kh, kw, b).transpose(0, 1, 4, 2, 3).reshape(weight_shape)


def window_slice(k_h, k_w, stride, dilation, out_hw):
    """The (rows, cols) slices of the padded input touched by kernel position (k_h, k_w)."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    top, left = k_h * dh, k_w * dw
    return slice(top, top + sh * (oh - 1) + 1, sh), slice(left, left + sw * (ow - 1) + 1, sw)


def col2im(cols, padded_hw, out_hw, kernel, stride, dilation):
    """Sum columns (N, G, KH*KW*Cg, OH*OW) back onto a padded canvas, returned as (N, C, Hp, Wp).

    Loops over the KH*KW kernel positions only; each iteration adds one strided slab.
    """
    xp = get_array_module(cols)
    batch, groups = cols.shape[:2]
    kh, kw = kernel
    per_group = cols.shape[2] // (kh * kw)
    by_position = cols.reshape((batch, groups, kh, kw, per_group) + tuple(out_hw))
    canvas = xp.zeros((batch, groups, per_group) + tuple(padded_hw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = window_slice(i, j, stride, dilation, out_hw)
            canvas[..., rows, columns] += by_position[:, :, i, j]
    return canvas.reshape((batch, groups * per_group) + tuple(padded_hw))
