"""SyncBatchNorm: batch statistics over the whole data-parallel batch, not just this rank's slice."""
import numpy as np

from ... import distributed as dist
from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.tensor import Tensor
from ..functional.normalization import _update_running
from ..modules.normalization import _BatchNorm


def _host(array):
    return array if isinstance(array, np.ndarray) else array.get()


def _all_reduce_sum(array, group):
    t = Tensor._wrap(np.ascontiguousarray(_host(array), dtype=np.float64))
    dist.all_reduce(t, group=group)
    return t._data


def _global_moments(x, axes, group):
    """Mean and biased variance over every rank's batch, and the global element count per channel.

    Each rank contributes (count, mean, sum of squared deviations) and the parts are merged with the
    parallel-variance formula, which stays accurate where E[x^2] - E[x]^2 would cancel badly.
    """
    xp = get_array_module(x)
    count = x.size // x.shape[1]
    local_mean = x.mean(axis=axes, dtype=np.float64)
    deviations = x - local_mean.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(x.dtype)
    local_m2 = (deviations.astype(np.float64) ** 2).sum(axis=axes)
    mine = np.concatenate([[float(count)], _host(local_mean), _host(local_m2)])
    world = dist.get_world_size(group)
    everyone = Tensor._wrap(np.empty((world, mine.size), dtype=np.float64))
    dist.all_gather_into_tensor(everyone, Tensor._wrap(mine), group=group)
    counts = everyone._data[:, :1]
    channels = x.shape[1]
    means = everyone._data[:, 1:1 + channels]
    m2s = everyone._data[:, 1 + channels:]
    total = counts.sum()
    mean = (counts * means).sum(axis=0) / total
    m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)
    return xp.asarray(mean), xp.asarray(m2 / total), total


class SyncBatchNormFunction(Function):
    """Normalise with global mean/var; backward all-reduces the two sums the input gradient needs.

    Weight and bias gradients stay local: DDP averages them like any other parameter gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group, stats_out):
        xp = get_array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean, var, count = _global_moments(x, axes, group)
        invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype)
        xhat = (x - mean.reshape(shape).astype(x.dtype)) * invstd.reshape(shape)
        stats_out.update(mean=mean, var=var, count=count)
        ctx.save_for_backward(weight)
        ctx.meta = (xhat, invstd, axes, shape, count, group)
        out = xhat
        if weight is not None:
            out = out * weight.reshape(shape) + bias.reshape(shape)
        return out

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        xhat, invstd, axes, shape, count, group = ctx.meta
        xp = get_array_module(g)
        sum_g = g.sum(axis=axes)
        sum_g_xhat = (g * xhat).sum(axis=axes)
        grad_w = sum_g_xhat if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_g if weight is not None and ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            channels = sum_g.shape[0]
            total = xp.asarray(_all_reduce_sum(xp.concatenate([sum_g, sum_g_xhat]), group))
            mean_g = (total[:channels] / count).astype(g.dtype).reshape(shape)
            mean_g_xhat = (total[channels:] / count).astype(g.dtype).reshape(shape)
            scale = invstd.reshape(shape) * (weight.reshape(shape) if weight is not None else 1)
            grad_x = scale * (g - mean_g - xhat * mean_g_xhat)
        return grad_x, grad_w, grad_b, None, None, None


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover the batches of every rank in `process_group`."""

    def __init__(self, num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input):
        self._check_input_dim(input)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        if not (use_batch_stats and self._world_size() > 1):
            return super().forward(input)
        factor = self._momentum_for_this_step()
        stats = {}
        weight, bias = (self.weight, self.bias) if self.affine else (None, None)
        out = SyncBatchNormFunction.apply(input, weight, bias, self.eps, self.process_group, stats)
        if self.training and self.track_running_stats and self.running_mean is not None:
            count = stats["count"]
            # The running estimate uses the unbiased variance over the global batch.
            unbiased = stats["var"] * (count / max(count - 1, 1))
            _update_running(self.running_mean, stats["mean"], factor)
            _update_running(self.running_var, unbiased, factor)
        return out

    def _world_size(self):
        return dist.get_world_size(self.process_group) if dist.is_initialized() else 1

    def _momentum_for_this_step(self):
        if not (self.training and self.track_running_stats and self.num_batches_tracked is not None):
            return 0.0 if self.momentum is None else self.momentum
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked.item())
        return self.momentum

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every BatchNorm*d inside `module` (or `module` itself) with a SyncBatchNorm sharing
        its parameters and buffers; returns the converted module."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted
