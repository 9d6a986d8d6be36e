"""batch_norm, layer_norm, group_norm: statistics computed once, then one fused normalise+affine node."""
import numpy as np

from ...core import grad_mode
from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.ops import reduction as rd
from ...core.ops import shape as sh


class Normalize(Function):
    """(x - mean) * invstd, then optional weight/bias broadcast as `param_shape` (right-aligned to x).

    With batch_stats=True, mean and invstd were computed from x over `axes`, and the backward carries the
    gradient through them too; otherwise they are constants (instance_norm with running statistics).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, axes, param_shape, batch_stats):
        xhat = (x - mean) * invstd
        out = xhat
        if weight is not None:
            out = xhat * weight.reshape(param_shape)
        if bias is not None:
            out = out + bias.reshape(param_shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.layout = (axes, param_shape, batch_stats)
        ctx.bias_shape = None if bias is None else bias.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved_tensors
        axes, param_shape, batch_stats = ctx.layout
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        param_axes = _param_reduce_axes(grad.ndim, param_shape)
        grad_w = (grad * xhat).sum(axis=param_axes).reshape(weight.shape) if need_w else None
        grad_b = grad.sum(axis=param_axes).reshape(ctx.bias_shape) if need_b else None
        grad_x = None
        if need_x:
            grad_xhat = grad * weight.reshape(param_shape) if weight is not None else grad
            if batch_stats:
                grad_x = invstd * (grad_xhat - grad_xhat.mean(axis=axes, keepdims=True)
                                   - xhat * (grad_xhat * xhat).mean(axis=axes, keepdims=True))
            else:
                grad_x = grad_xhat * invstd
        return grad_x, grad_w, grad_b, None, None, None, None, None


class BatchNorm(Function):
    """batch_norm over x viewed as (N, C, L): per-channel statistics, normalise and affine as one node.

    The affine part folds into one per-channel scale and shift, so the output costs one multiply and one
    add over x. Channel sums are matrix-vector products with a ones vector and channel dot products
    are einsum row dots: numpy's reductions over the (0, 2) axes are slower. `centered` is x - mean
    from the batch statistics (None in eval mode); backward works from it rather than keeping
    a normalised copy of x.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, centered):
        x3 = _channels_view(x)
        scale = invstd if weight is None else invstd * weight
        if centered is None:
            shift = -mean * scale if bias is None else bias - mean * scale
            out = x3 * scale[:, None]
            out += shift[:, None]
        else:
            out = centered * scale[:, None]
            if bias is not None:
                out += bias[:, None]
        ctx.save_for_backward(x if centered is None else centered, weight)
        ctx.stats = (mean, invstd, centered is not None)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        source, weight = ctx.saved_tensors
        mean, invstd, batch_stats = ctx.stats
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g3 = _channels_view(grad)
        scale = invstd if weight is None else invstd * weight
        grad_x = grad_w = grad_b = None
        sum_g = _channel_sums(g3) if need_b or (need_x and batch_stats) else None
        dot_g_xhat = None
        if need_w or (need_x and batch_stats):
            centered = source if batch_stats else _channels_view(source) - mean[:, None]
            # sum(grad * xhat) = invstd * sum(grad * centered): no normalised copy of x needed.
            dot_g_xhat = get_array_module(g3).einsum("ncl,ncl->c", g3, centered) * invstd
        if need_w:
            grad_w = dot_g_xhat
        if need_b:
            grad_b = sum_g
        if need_x:
            grad_x = g3 * scale[:, None]
            if batch_stats:
                # scale * (grad - mean(grad) - xhat * mean(grad * xhat)), means over the (N, L) of a channel.
                count = g3.shape[0] * g3.shape[2]
                grad_x -= centered * (scale * invstd * dot_g_xhat / count)[:, None]
                grad_x -= (scale * sum_g / count)[:, None]
            grad_x = grad_x.reshape(grad.shape)
        return grad_x, grad_w, grad_b, None, None, None


def _channels_view(x):
    """(N, C, *) -> (N, C, L); a 2-D (N, C) input gets L = 1."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sums(x3):
    """Per-channel sums of (N, C, L), through BLAS for float32/float64."""
    xp = get_array_module(x3)
    if x3.dtype not in (xp.float32, xp.float64):
        return x3.sum(axis=(0, 2))
    n, c, length = x3.shape
    return (x3.reshape(n * c, length) @ xp.ones(length, dtype=x3.dtype)).reshape(n, c).sum(axis=0)


def _batch_statistics(x3, eps):
    """Mean, biased variance, 1/sqrt(var + eps) per channel, and x - mean (kept for the output and backward)."""
    xp = get_array_module(x3)
    dtype = x3.dtype
    if dtype not in (xp.float32, xp.float64):
        x3 = x3.astype(xp.float32)  # half-precision sums lose too much
    count = x3.shape[0] * x3.shape[2]
    mean = _channel_sums(x3) / count
    centered = x3 - mean[:, None]
    var = xp.einsum("ncl,ncl->c", centered, centered) / count
    invstd = (1.0 / xp.sqrt(var + eps)).astype(dtype, copy=False)
    return mean.astype(dtype, copy=False), var, invstd, centered.astype(dtype, copy=False)


def _param_reduce_axes(ndim, param_shape):
    aligned = (1,) * (ndim - len(param_shape)) + tuple(param_shape)
    return tuple(i for i, size in enumerate(aligned) if size == 1)


def _statistics(x, axes, eps):
    xp = get_array_module(x)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    return mean, var, invstd


def _update_running(running, batch_value, momentum):
    data = running._data
    data *= 1.0 - momentum
    data += (momentum * batch_value.reshape(data.shape)).astype(data.dtype, copy=False)
    running._vc[0] += 1


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-05):
    if input.dim() < 2:
        raise ValueError(f"batch_norm expects an input of at least 2 dimensions (N, C, ...), got {input.dim()}D")
    x = input._data
    channels = x.shape[1]
    if training:
        count = x.size // max(channels, 1)
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
        mean, var, invstd, centered = _batch_statistics(_channels_view(x), eps)
        if running_mean is not None:
            _update_running(running_mean, mean, momentum)
        if running_var is not None:
            # The running estimate uses the unbiased variance; normalisation uses the biased one.
            _update_running(running_var, var * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm in eval mode needs running_mean and running_var; pass training=True "
                               "to normalise with batch statistics")
        xp = get_array_module(x)
        mean = running_mean._data.astype(x.dtype, copy=False)
        invstd = (1.0 / xp.sqrt(running_var._data + eps)).astype(x.dtype, copy=False)
        centered = None
    return BatchNorm.apply(input, weight, bias, mean, invstd, centered)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-05):
    """Normalise each (sample, channel) slice over its spatial dims."""
    if input.dim() < 3:
        raise ValueError(f"instance_norm expects an input of at least 3 dimensions (N, C, ...), got {input.dim()}D")
    x = input._data
    axes = tuple(range(2, x.ndim))
    param_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if use_input_stats:
        count = x[0, 0].size
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
        mean, var, invstd = _statistics(x, axes, eps)
        if running_mean is not None:
            _update_running(running_mean, mean.mean(axis=0), momentum)
        if running_var is not None:
            _update_running(running_var, (var * (count / (count - 1))).mean(axis=0), momentum)
    else:
        xp = get_array_module(x)
        mean = running_mean._data.reshape(param_shape).astype(x.dtype, copy=False)
        invstd = (1.0 / xp.sqrt(running_var._data.reshape(param_shape) + eps)).astype(x.dtype, copy=False)
    return Normalize.apply(input, weight, bias, mean, invstd, axes, param_shape, use_input_stats)


def _trailing_axes(input, normalized_shape):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if input.dim() < k or tuple(input.shape[input.dim() - k:]) != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in normalized_shape)}], but got input of size "
                           f"{list(input.shape)}")
    return normalized_shape, tuple(range(input.dim() - k, input.dim()))


class LayerNorm(Function):
    """Normalise each row of x viewed as (rows, features) over its features, then scale and shift.

    Works on the 2-D view with in-place passes. Row sums are matrix-vector products with a ones vector: NumPy's
    reduction along short contiguous rows runs a scalar loop several times slower than BLAS. The backward goes
    w.r.t. x through the statistics as well.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, features, eps):
        xp = get_array_module(x)
        rows = x.reshape(-1, features)
        scalar = rows.dtype.type
        mean = rows @ xp.ones(features, dtype=rows.dtype)
        mean *= scalar(1.0 / features)
        xhat = rows - mean[:, None]
        var = xp.einsum("ij,ij->i", xhat, xhat)
        var *= scalar(1.0 / features)
        var += scalar(eps)
        invstd = xp.sqrt(var, out=var)
        xp.divide(scalar(1.0), invstd, out=invstd)
        xhat *= invstd[:, None]
        # Without a graph nothing keeps xhat, so the affine step may overwrite it.
        saving = grad_mode.is_grad_enabled() and any(ctx.needs_input_grad[:3])
        out = xhat
        if weight is not None:
            in_place = not saving and weight.dtype == xhat.dtype
            out = xp.multiply(xhat, weight.reshape(-1), out=xhat) if in_place else xhat * weight.reshape(-1)
        if bias is not None:
            if out is xhat and saving:
                out = xhat + bias.reshape(-1)
            else:
                out += bias.reshape(-1)
        if saving:
            ctx.save_for_backward(xhat, invstd, weight)
            ctx.shapes = (x.shape, None if weight is None else weight.shape, None if bias is None else bias.shape)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved_tensors
        x_shape, weight_shape, bias_shape = ctx.shapes
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        xp = get_array_module(xhat)
        rows, features = xhat.shape
        g = grad.reshape(xhat.shape)
        grad_w = xp.einsum("ij,ij->j", g, xhat).reshape(weight_shape) if need_w else None
        grad_b = (xp.ones(rows, dtype=g.dtype) @ g).reshape(bias_shape) if need_b else None
        grad_x = None
        if need_x:
            # dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), row by row
            grad_xhat = g * weight.reshape(-1) if weight is not None else g.copy()
            scale = xhat.dtype.type(1.0 / features)
            row_mean = grad_xhat @ xp.ones(features, dtype=g.dtype)
            row_mean *= scale
            row_dot = xp.einsum("ij,ij->i", grad_xhat, xhat)
            row_dot *= scale
            # (dxhat - xhat * row_dot) * invstd - row_mean * invstd: three row-broadcast passes.
            correction = xhat * row_dot[:, None]
            grad_xhat -= correction
            grad_xhat *= invstd[:, None]
            row_mean *= invstd
            grad_xhat -= row_mean[:, None]
            grad_x = grad_xhat.reshape(x_shape)
        return grad_x, grad_w, grad_b, None, None


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    normalized_shape, _ = _trailing_axes(input, normalized_shape)
    features = 1
    for size in normalized_shape:
        features *= size
    return LayerNorm.apply(input, weight, bias, features, eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) over the trailing normalized_shape dims; eps defaults to the dtype's epsilon."""
    _, axes = _trailing_axes(input, normalized_shape)
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    scale = rd.mean(input * input, axes, keepdim=True).add(eps).rsqrt()
    out = input * scale
    return out * weight if weight is not None else out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    n, channels = input.shape[0], input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    grouped = sh.reshape(input, n, num_groups, -1)
    mean, _, invstd = _statistics(grouped._data, (2,), eps)
    normalized = Normalize.apply(grouped, None, None, mean, invstd, (2,), (1,), True)
    out = sh.reshape(normalized, *input.shape)
    param_shape = (channels,) + (1,) * (input.dim() - 2)
    if weight is not None:
        out = out * sh.reshape(weight, *param_shape)
    if bias is not None:
        out = out + sh.reshape(bias, *param_shape)
    return out


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    norms = rd.norm(input, p, dim, keepdim=True)
    return input / norms.clamp(min=eps)
