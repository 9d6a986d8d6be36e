"""Convolutions: conv1d, conv2d, conv_transpose1d/2d, as im2col + per-sample matmuls, col2im in backward."""
from ...core.autocast_state import lower_precision
from ...core.autograd import Function
from ...core.backend import get_array_module
from ._windows import as_pair, col2im, conv_columns, out_size, pad2d, rows_to_weight, weight_rows

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


# Elements in the per-chunk temporaries of the backward pass (stacked weight-gradient products, column
# gradients), which are consumed while still in cache: measured fastest among 2**14 .. 2**22 for a
# 32 -> 64 channel 3x3 conv on 14x14 inputs.
_CHUNK_ELEMENTS = 1 << 17


def _stacked_matmul(a, b):
    """a @ b over stacks (..., G, m, k) @ (..., G, k, n).

    With one group, the group axis is dropped first: numpy runs a plain matrix (or a stack of
    matrices) through BLAS faster than a stack of single-matrix stacks.
    """
    if a.shape[-3] == 1 and b.shape[-3] == 1:
        return (a[..., 0, :, :] @ b[..., 0, :, :])[..., None, :, :]
    return a @ b


def _sum_over_batch(a, b):
    """sum over n of a[n] @ b[n], for (N, G, m, k) and (N, G, k, n): the weight gradient.

    Stacked products over chunks of samples, so the temporary stays bounded and the Python loop short.
    """
    n = a.shape[0]
    step = max(1, _CHUNK_ELEMENTS // (a.shape[1] * a.shape[2] * b.shape[3]))
    total = _stacked_matmul(a[:step], b[:step]).sum(axis=0)
    for start in range(step, n, step):
        total += _stacked_matmul(a[start:start + step], b[start:start + step]).sum(axis=0)
    return total


class Conv2dFunction(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, pads, dilation, groups):
        n = x.shape[0]
        out_channels, _, kh, kw = weight.shape
        top, bottom, left, right = pads
        x_padded = pad2d(x, top, bottom, left, right)
        hp, wp = x_padded.shape[-2:]
        out_hw = (out_size(hp, kh, stride[0], dilation[0], 0, 0), out_size(wp, kw, stride[1], dilation[1], 0, 0))
        cols = conv_columns(x_padded, groups, (kh, kw), stride, dilation, out_hw)
        w_rows = weight_rows(weight, groups)
        out = _stacked_matmul(w_rows, cols)
        if bias is not None:
            out += bias.reshape(groups, -1, 1)
        ctx.save_for_backward(cols, w_rows)
        ctx.geometry = (x.shape, weight.shape, (hp, wp), out_hw, stride, pads, dilation)
        return out.reshape((n, out_channels) + out_hw)

    @staticmethod
    def backward(ctx, grad):
        cols, w_rows = ctx.saved_tensors
        in_shape, weight_shape, padded_hw, out_hw, stride, pads, dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_rows = grad.reshape(cols.shape[:2] + (-1, cols.shape[3]))
        grad_x = grad_w = grad_b = None
        if need_b:
            grad_b = grad.sum(axis=(0, 2, 3))
        if need_w:
            # cols @ grad.T, not grad @ cols.T: BLAS runs the long reduction faster with cols untransposed.
            grad_w_rows = _sum_over_batch(cols, grad_rows.swapaxes(-1, -2)).swapaxes(-1, -2)
            grad_w = rows_to_weight(grad_w_rows, weight_shape)
        if need_x:
            if stride == (1, 1):
                canvas = _unit_stride_input_grad(grad, w_rows, padded_hw, weight_shape[2:], dilation)
            else:
                grad_cols = _stacked_matmul(w_rows.swapaxes(-1, -2), grad_rows)
                canvas = col2im(grad_cols, padded_hw, out_hw, weight_shape[2:], stride, dilation)
            top, _, left, _ = pads
            grad_x = canvas[:, :, top:top + in_shape[2], left:left + in_shape[3]]
        return grad_x, grad_w, grad_b, None, None, None, None


def _unit_stride_input_grad(grad, w_rows, padded_hw, kernel, dilation):
    """Conv2d's input gradient for stride 1, on the padded canvas (N, C, Hp, Wp).

    Each sample's output gradient is laid on the padded grid (zeros beyond OH x OW), where kernel
    position (i, j) moves every column gradient by one flat offset, i*dh*Wp + j*dw: col2im becomes
    KH*KW contiguous adds per chunk of samples, made while the chunk's columns are still in cache.
    That costs Hp*Wp / (OH*OW) - 1 more matmul work (31% for 14x14, 3x3, padding 1) and saves more
    than col2im's strided slabs took (a sixth of the input gradient's time there). A valid output
    never reaches the next plane, and the grid's other positions carry zero gradient.
    """
    xp = get_array_module(grad)
    n, _, oh, ow = grad.shape
    groups, out_per_group, rows = w_rows.shape
    (kh, kw), (dh, dw), (hp, wp) = kernel, dilation, padded_hw
    plane = hp * wp
    span = rows // (kh * kw) * plane
    step = max(1, _CHUNK_ELEMENTS // (groups * rows * plane))
    # Only the top-left OH x OW of each plane is overwritten per chunk, so the zeros around it stay.
    grid = xp.zeros((min(step, n), groups * out_per_group, hp, wp), dtype=grad.dtype)
    canvas = xp.empty((n, groups, span), dtype=grad.dtype)
    w_cols = w_rows.swapaxes(-1, -2)
    for start in range(0, n, step):
        size = min(step, n - start)
        grid[:size, :, :oh, :ow] = grad[start:start + size]
        cols = _stacked_matmul(w_cols, grid[:size].reshape(size, groups, out_per_group, plane))
        by_position = cols.reshape(size, groups, kh * kw, span)
        target = canvas[start:start + size]
        target[...] = by_position[:, :, 0]
        for pos in range(1, kh * kw):
            shift = (pos // kw) * dh * wp + (pos % kw) * dw
            target[..., shift:] += by_position[:, :, pos, :span - shift]
    return canvas.reshape(n, -1, hp, wp)


class ConvTranspose2dFunction(Function):
    """The adjoint of Conv2dFunction: forward scatters with col2im, backward gathers with conv_columns."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, groups, dilation):
        n, _, h, w = x.shape
        kernel = weight.shape[2:]
        canvas_hw = tuple((size - 1) * s + d * (k - 1) + 1 + extra
                          for size, s, d, k, extra in zip((h, w), stride, dilation, kernel, output_padding))
        x_rows = x.reshape(n, groups, -1, h * w)
        w_rows = weight_rows(weight, groups)
        cols = _stacked_matmul(w_rows.swapaxes(-1, -2), x_rows)
        canvas = col2im(cols, canvas_hw, (h, w), kernel, stride, dilation)
        ph, pw = padding
        out = canvas[:, :, ph:canvas_hw[0] - ph, pw:canvas_hw[1] - pw]
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x_rows, w_rows)
        ctx.geometry = (x.shape, weight.shape, canvas_hw, stride, padding, dilation)
        return get_array_module(out).ascontiguousarray(out)

    @staticmethod
    def backward(ctx, grad):
        x_rows, w_rows = ctx.saved_tensors
        x_shape, weight_shape, canvas_hw, stride, (ph, pw), dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_b:
            grad_b = grad.sum(axis=(0, 2, 3))
        if need_x or need_w:
            grad_canvas = pad2d(grad, ph, canvas_hw[0] - ph - grad.shape[2], pw, canvas_hw[1] - pw - grad.shape[3])
            grad_cols = conv_columns(grad_canvas, w_rows.shape[0], weight_shape[2:], stride, dilation, x_shape[2:])
            if need_w:
                grad_w = rows_to_weight(_sum_over_batch(x_rows, grad_cols.swapaxes(-1, -2)), weight_shape)
            if need_x:
                grad_x = _stacked_matmul(w_rows, grad_cols).reshape(x_shape)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _conv_padding(padding, kernel, stride, dilation):
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same' (which may be asymmetric)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'; use 'valid', 'same', an int or a pair")
        if stride != (1, 1):
            raise RuntimeError("padding='same' is not supported for strided convolutions; use stride=1 or an "
                             "explicit padding")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = as_pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise RuntimeError(f"negative padding is not supported, got padding=({ph}, {pw})")
    return ph, ph, pw, pw


def _check_conv_args(name, x, weight, bias, groups, in_channels_expected):
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        got = f"{x.dtype}, weight {weight.dtype}" + ("" if bias is None else f", bias {bias.dtype}")
        raise RuntimeError(f"{name}: input, weight and bias must have the same dtype, got input {got}. "
                           "Convert the input with .to(weight.dtype) or the module with .to(dtype).")
    if groups < 1:
        raise RuntimeError(f"{name}: non-positive groups is not supported, got groups={groups}")
    if x.shape[1] != in_channels_expected:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input{list(x.shape)} to have "
            f"{in_channels_expected} channels, but got {x.shape[1]} channels instead")


def _batched(name, x, spatial_dims):
    """Adds the batch dim to unbatched input; returns (input, whether it was added)."""
    if x.dim() == spatial_dims + 1:
        return x.unsqueeze(0), True
    if x.dim() != spatial_dims + 2:
        raise RuntimeError(f"Expected {spatial_dims + 1}D (unbatched) or {spatial_dims + 2}D (batched) input to "
                           f"{name}, but got input of size: {list(x.shape)}")
    return x, False


@lower_precision
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, unbatched = _batched("conv2d", input, 2)
    if weight.dim() != 4:
        raise RuntimeError(f"conv2d: expected a 4D weight (out_channels, in_channels/groups, kH, kW), "
                           f"got size {list(weight.shape)}")
    _check_conv_args("conv2d", x, weight, bias, groups, weight.shape[1] * groups)
    if weight.shape[0] % groups:
        raise RuntimeError(f"conv2d: out_channels ({weight.shape[0]}) must be divisible by groups ({groups})")
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    kernel = tuple(weight.shape[2:])
    pads = _conv_padding(padding, kernel, stride, dilation)
    padded = (x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3])
    if any(p < d * (k - 1) + 1 for p, d, k in zip(padded, dilation, kernel)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: "
            f"({kernel[0]} x {kernel[1]}). Kernel size can't be greater than actual input size")
    out = Conv2dFunction.apply(x, weight, bias, stride, pads, dilation, groups)
    return out.squeeze(0) if unbatched else out


@lower_precision
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, unbatched = _batched("conv1d", input, 1)
    if weight.dim() != 3:
        raise RuntimeError(f"conv1d: expected a 3D weight (out_channels, in_channels/groups, kW), "
                           f"got size {list(weight.shape)}")
    if not isinstance(padding, str):
        padding = (0, padding[0] if isinstance(padding, (tuple, list)) else padding)
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, _single(stride)), padding=padding,
                 dilation=(1, _single(dilation)), groups=groups).squeeze(2)
    return out.squeeze(0) if unbatched else out


def _single(value):
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


@lower_precision
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    x, unbatched = _batched("conv_transpose2d", input, 2)
    if weight.dim() != 4:
        raise RuntimeError(f"conv_transpose2d: expected a 4D weight (in_channels, out_channels/groups, kH, kW), "
                           f"got size {list(weight.shape)}")
    _check_conv_args("conv_transpose2d", x, weight, bias, groups, weight.shape[0])
    if weight.shape[0] % groups:
        raise RuntimeError(f"conv_transpose2d: in_channels ({weight.shape[0]}) must be divisible by groups ({groups})")
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    padding, output_padding = as_pair(padding, "padding"), as_pair(output_padding, "output_padding")
    for extra, s, d in zip(output_padding, stride, dilation):
        if extra >= max(s, d):
            raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    sizes = [(size - 1) * s - 2 * p + d * (k - 1) + extra + 1 for size, s, p, d, k, extra in
             zip(x.shape[2:], stride, padding, dilation, weight.shape[2:], output_padding)]
    if min(sizes) < 1:
        raise RuntimeError(f"conv_transpose2d: output size {sizes} is too small; reduce padding={padding}")
    out = ConvTranspose2dFunction.apply(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return out.squeeze(0) if unbatched else out


@lower_precision
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    x, unbatched = _batched("conv_transpose1d", input, 1)
    out = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, _single(stride)),
                           padding=(0, _single(padding)), output_padding=(0, _single(output_padding)),
                           groups=groups, dilation=(1, _single(dilation))).squeeze(2)
    return out.squeeze(0) if unbatched else out
