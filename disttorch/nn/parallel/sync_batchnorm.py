"""SyncBatchNorm: batch statistics over the whole data-parallel batch, not just this rank's slice."""
import numpy as np

from ... import distributed as dist
from ...core.autograd import Function
from ...core.tensor import Tensor


def _all_reduce_sum(array, group):
    t = Tensor._wrap(np.ascontiguousarray(array))
    dist.all_reduce(t, group=group)
    return t._data


class SyncBatchNormFunction(Function):
    """Normalise with global mean/var; backward all-reduces the two sums the input gradient needs.

    Weight and bias gradients stay local: DDP averages them like any other parameter gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group, stats_out):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        count = x.size // x.shape[1]
        local = np.concatenate([x.sum(axis=axes, dtype=np.float64), (x.astype(np.float64) ** 2).sum(axis=axes),
                                [count]])
        total = _all_reduce_sum(local, group)
        channels = x.shape[1]
        n = total[-1]
        mean = total[:channels] / n
        var = np.maximum(total[channels:2 * channels] / n - mean * mean, 0.0)
        invstd = 1.0 / np.sqrt(var + eps)
        xhat = (x - mean.reshape(shape).astype(x.dtype)) * invstd.reshape(shape).astype(x.dtype)
        stats_out.update(mean=mean, var=var, count=n)
        ctx.save_for_backward(weight)
        ctx.meta = (xhat, invstd.astype(x.dtype), axes, shape, n, group)
        out = xhat
        if weight is not None:
            out = out * weight.reshape(shape) + bias.reshape(shape)
        return out

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        xhat, invstd, axes, shape, n, group = ctx.meta
        sum_g = g.sum(axis=axes)
        sum_g_xhat = (g * xhat).sum(axis=axes)
        grad_w = sum_g_xhat if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_g if weight is not None and ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            channels = sum_g.shape[0]
            total = _all_reduce_sum(np.concatenate([sum_g, sum_g_xhat]).astype(np.float64), group)
            mean_g = total[:channels].astype(g.dtype).reshape(shape) / n
            mean_g_xhat = total[channels:].astype(g.dtype).reshape(shape) / n
            scale = invstd.reshape(shape) * (weight.reshape(shape) if weight is not None else 1)
            grad_x = scale * (g - mean_g - xhat * mean_g_xhat)
        return grad_x, grad_w, grad_b, None, None, None
