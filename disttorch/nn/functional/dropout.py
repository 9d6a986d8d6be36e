"""Dropout: zero elements (or whole channels) with probability p and scale the rest by 1/(1-p)."""
import numpy as np

from ...core import random
from ...core.autograd import Function
from ...core.backend import is_cuda_array, to_device_array


class ScaledMask(Function):
    """x * mask, where mask already holds 0 or 1/(1-p); broadcasting lets one mask value cover a channel."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(x, mask_shape, p):
    keep = random.rng().random(mask_shape, dtype=np.float32) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = keep.astype(x.dtype) * x.dtype.type(scale)
    if is_cuda_array(x):
        from ...core.device import device
        mask = to_device_array(mask, device("cuda", x.device.id))
    return mask


def _dropout(input, p, training, inplace, mask_shape):
    _check_p(p)
    if not training or p == 0.0:
        return input
    mask = _keep_mask(input._data, mask_shape, p)
    if inplace:
        return input._inplace(lambda x: ScaledMask.apply(x, mask))
    return ScaledMask.apply(input, mask)


def dropout(input, p=0.5, training=True, inplace=False):
    return _dropout(input, p, training, inplace, input.shape)


def _channel_mask_shape(input, feature_dims, name):
    if input.dim() not in (feature_dims + 1, feature_dims + 2):
        raise RuntimeError(f"{name}: Expected {feature_dims + 1}D or {feature_dims + 2}D input, but received a "
                           f"{input.dim()}D input ({list(input.shape)})")
    lead = input.dim() - feature_dims
    return tuple(input.shape[:lead]) + (1,) * feature_dims


def dropout1d(input, p=0.5, training=True, inplace=False):
    return _dropout(input, p, training, inplace, _channel_mask_shape(input, 1, "dropout1d"))


def dropout2d(input, p=0.5, training=True, inplace=False):
    return _dropout(input, p, training, inplace, _channel_mask_shape(input, 2, "dropout2d"))


def dropout3d(input, p=0.5, training=True, inplace=False):
    return _dropout(input, p, training, inplace, _channel_mask_shape(input, 3, "dropout3d"))
