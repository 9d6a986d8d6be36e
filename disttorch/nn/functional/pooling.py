"""Pooling: max/avg (1d, 2d) and adaptive average, looping over kernel positions, never over pixels."""
import numpy as np

from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.tensor import Tensor
from ._windows import as_pair, out_size, pad2d, window_slice

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d"]


def _geometry(x_hw, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the extra right/bottom padding that ceil_mode's partial windows reach into."""
    out_hw, extra = [], []
    for size, k, s, p, d in zip(x_hw, kernel, stride, padding, dilation):
        count = out_size(size, k, s, d, p, p, ceil_mode)
        out_hw.append(count)
        extra.append(max(0, (count - 1) * s + d * (k - 1) + 1 - (size + 2 * p)))
    return tuple(out_hw), tuple(extra)


class MaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode, position_sink=None):
        """position_sink: a list that receives the winning kernel positions (for return_indices)."""
        xp = get_array_module(x)
        out_hw, extra = _geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
        (ph, pw), (eh, ew) = padding, extra
        fill = -xp.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        x_padded = pad2d(x, ph, ph + eh, pw, pw + ew, fill)
        positions = kernel[0] * kernel[1]
        pos_type = xp.int8 if positions <= 127 else xp.int32
        best = best_pos = candidate = better = None
        # Strict '>' keeps the first maximum, as PyTorch does; positions are row-major kernel offsets.
        # Positions only grow, so max(best_pos, better * pos) records the newest winner without
        # np.where or masked copies (both several times slower on strided slabs).
        for pos in range(positions):
            rows, cols = window_slice(pos // kernel[1], pos % kernel[1], stride, dilation, out_hw)
            window = x_padded[:, :, rows, cols]
            if best is None:
                best = window.copy()
                best_pos = xp.zeros(best.shape, dtype=pos_type)
                candidate, better = xp.empty_like(best), xp.empty(best.shape, dtype=bool)
                continue
            # One strided read per window; the three passes below then run on contiguous memory.
            candidate[...] = window
            xp.greater(candidate, best, out=better)
            xp.maximum(best_pos, better.view(xp.int8) * pos_type(pos), out=best_pos)
            xp.maximum(best, candidate, out=best)
        ctx.geometry = (x.shape, x_padded.shape[2:], kernel, stride, padding, dilation, out_hw)
        ctx.save_for_backward(best_pos)
        if position_sink is not None:
            position_sink.append(best_pos)
        return best

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        in_shape, padded_hw, kernel, stride, (ph, pw), dilation, out_hw = ctx.geometry
        (best_pos,) = ctx.saved_tensors
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        disjoint = all(s >= e for s, e in zip(stride, extent))
        tiled = disjoint and all(s == e and o * s == size for s, e, o, size in zip(stride, extent, out_hw, padded_hw))
        # Disjoint windows (the usual kernel == stride case) can be written straight into their slabs;
        # when they also tile the canvas, nothing is left to zero.
        canvas = (xp.empty if tiled else xp.zeros)(in_shape[:2] + tuple(padded_hw), dtype=grad.dtype)
        for pos in range(kernel[0] * kernel[1]):
            rows, cols = window_slice(pos // kernel[1], pos % kernel[1], stride, dilation, out_hw)
            if disjoint:
                xp.multiply(best_pos == pos, grad, out=canvas[:, :, rows, cols])
            else:
                canvas[:, :, rows, cols] += (best_pos == pos) * grad
        return canvas[:, :, ph:ph + in_shape[2], pw:pw + in_shape[3]], None, None, None, None, None, None

    @staticmethod
    def flat_indices(best_pos, in_hw, kernel, stride, padding, dilation):
        """PyTorch's return_indices: offsets into each (H*W) input plane."""
        xp = get_array_module(best_pos)
        out_h, out_w = best_pos.shape[2:]
        k_row, k_col = best_pos // kernel[1], best_pos % kernel[1]
        rows = xp.arange(out_h).reshape(-1, 1) * stride[0] - padding[0] + k_row.astype(xp.int64) * dilation[0]
        cols = xp.arange(out_w) * stride[1] - padding[1] + k_col.astype(xp.int64) * dilation[1]
        return rows * in_hw[1] + cols


class AvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        xp = get_array_module(x)
        in_hw = x.shape[2:]
        out_hw, extra = _geometry(in_hw, kernel, stride, padding, (1, 1), ceil_mode)
        (ph, pw), (eh, ew) = padding, extra
        x_padded = pad2d(x, ph, ph + eh, pw, pw + ew)
        total = xp.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for pos in range(kernel[0] * kernel[1]):
            rows, cols = window_slice(pos // kernel[1], pos % kernel[1], stride, (1, 1), out_hw)
            total += x_padded[:, :, rows, cols]
        if divisor_override:
            divisor = xp.asarray(float(divisor_override), dtype=x.dtype)
        else:
            divisor = _avg_divisors(xp, x.dtype, in_hw, out_hw, kernel, stride, padding, count_include_pad)
        ctx.geometry = (x.shape, x_padded.shape[2:], kernel, stride, padding, out_hw)
        ctx.divisor = divisor
        return total / divisor

    @staticmethod
    def backward(ctx, grad):
        xp = get_array_module(grad)
        in_shape, padded_hw, kernel, stride, (ph, pw), out_hw = ctx.geometry
        share = grad / ctx.divisor
        canvas = xp.zeros(in_shape[:2] + tuple(padded_hw), dtype=grad.dtype)
        for pos in range(kernel[0] * kernel[1]):
            rows, cols = window_slice(pos // kernel[1], pos % kernel[1], stride, (1, 1), out_hw)
            canvas[:, :, rows, cols] += share
        return canvas[:, :, ph:ph + in_shape[2], pw:pw + in_shape[3]], None, None, None, None, None, None


def _avg_divisors(xp, dtype, in_hw, out_hw, kernel, stride, padding, count_include_pad):
    """Per-output window sizes (OH, OW): windows are clipped to input+padding, or to the input alone."""
    counts = []
    for size, count, k, s, p in zip(in_hw, out_hw, kernel, stride, padding):
        start = np.arange(count) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return xp.asarray(np.outer(counts[0], counts[1]).astype(dtype))


class AdaptiveAvgPool2dFunction(Function):
    """out = A_h @ x @ A_w^T with averaging matrices, so forward and backward are two matmuls each."""

    @staticmethod
    def forward(ctx, x, output_hw):
        xp = get_array_module(x)
        avg_h = xp.asarray(_adaptive_matrix(x.shape[-2], output_hw[0], x.dtype))
        avg_w = xp.asarray(_adaptive_matrix(x.shape[-1], output_hw[1], x.dtype))
        ctx.matrices = (avg_h, avg_w)
        return avg_h @ (x @ avg_w.T)

    @staticmethod
    def backward(ctx, grad):
        avg_h, avg_w = ctx.matrices
        return avg_h.T @ (grad @ avg_w), None


def _adaptive_matrix(size, out, dtype):
    """Row i averages input[floor(i*size/out) : ceil((i+1)*size/out)], PyTorch's adaptive windows."""
    matrix = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _pool_args(name, input, kernel_size, stride, padding, dilation=1):
    if input.dim() not in (3, 4):
        raise RuntimeError(f"{name}: Expected 3D or 4D (batch mode) tensor for input, but got input of size: "
                           f"{list(input.shape)}")
    kernel = as_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else as_pair(
        stride, "stride")
    padding, dilation = as_pair(padding, "padding"), as_pair(dilation, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise RuntimeError(f"{name}: kernel_size, stride and dilation must be greater than zero, got "
                           f"kernel_size={kernel}, stride={stride}, dilation={dilation}")
    for p, k in zip(padding, kernel):
        if p < 0 or p > k // 2:
            raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, but got "
                               f"pad={padding} and kernel_size={kernel}")
    return kernel, stride, padding, dilation


def _check_output(name, x, kernel, stride, padding, dilation, ceil_mode):
    out_hw, _ = _geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    if min(out_hw) < 1:
        raise RuntimeError(f"{name}: Given input size: ({'x'.join(map(str, x.shape[1:]))}). Calculated output "
                           f"size: ({x.shape[1]}x{out_hw[0]}x{out_hw[1]}). Output size is too small")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    kernel, stride, padding, dilation = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    _check_output("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode)
    position_sink = [] if return_indices else None
    out = MaxPool2dFunction.apply(x, kernel, stride, padding, dilation, ceil_mode, position_sink)
    if not return_indices:
        return out.squeeze(0) if unbatched else out
    flat = MaxPool2dFunction.flat_indices(position_sink[0], x.shape[2:], kernel, stride, padding, dilation)
    indices = Tensor._wrap(flat.astype(np.int64))
    return (out.squeeze(0), indices.squeeze(0)) if unbatched else (out, indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    kernel, stride, padding, _ = _pool_args("avg_pool2d", input, kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("avg_pool2d: divisor must be not zero")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    _check_output("avg_pool2d", x, kernel, stride, padding, (1, 1), ceil_mode)
    out = AvgPool2dFunction.apply(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool2d(input, output_size):
    if input.dim() not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    output_hw = tuple(input.shape[-2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    if min(output_hw) < 0:
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be non-negative, got {tuple(sizes)}")
    return AdaptiveAvgPool2dFunction.apply(input, output_hw)


def _as_2d(input, name):
    if input.dim() not in (2, 3):
        raise RuntimeError(f"{name}: Expected 2D or 3D (batch mode) tensor for input, but got input of size: "
                           f"{list(input.shape)}")
    return input.unsqueeze(-2)


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    stride = _first(kernel_size) if stride is None or stride == () else _first(stride)
    out = max_pool2d(_as_2d(input, "max_pool1d"), (1, _first(kernel_size)), (1, stride), (0, _first(padding)),
                     (1, _first(dilation)), ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    stride = _first(kernel_size) if stride is None or stride == () else _first(stride)
    return avg_pool2d(_as_2d(input, "avg_pool1d"), (1, _first(kernel_size)), (1, stride), (0, _first(padding)),
                      ceil_mode, count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(input, output_size):
    return adaptive_avg_pool2d(_as_2d(input, "adaptive_avg_pool1d"), (1, _first(output_size))).squeeze(-2)
