"""Dropout: zero elements (or whole channels) with probability p and scale the rest by 1/(1-p)."""
import warnings

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


def _feature_mask_shape(input, name):
    """torch's feature dropout: one draw per (sample, channel), the first two dims; the rest share it."""
    if input.dim() < 2:
        raise RuntimeError(f"{name}: Feature dropout requires at least 2 dimensions in the input, but got a "
                           f"{input.dim()}D input")
    return tuple(input.shape[:2]) + (1,) * (input.dim() - 2)


def _deprecated_rank_warning(name, rank, spatial):
    warnings.warn(f"{name}: Received a {rank}-D input to {name}, which is deprecated and will result in an error "
                  f"in a future release. To retain the behavior and silence this warning, please use dropout "
                  f"instead. Note that {name} exists to provide channel-wise dropout on inputs with {spatial} "
                  f"spatial dimensions, a channel dimension, and an optional batch dimension (i.e. {spatial + 1}D "
                  f"or {spatial + 2}D inputs).", stacklevel=3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """As torch: a 3-D input is taken as batched (N, C, L) with a warning, other ranks than 3/4 warn."""
    rank = input.dim()
    if rank not in (3, 4):
        _deprecated_rank_warning("dropout2d", rank, 2)
    if rank == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _dropout(input, p, training, inplace, _feature_mask_shape(input, "dropout2d"))


def dropout3d(input, p=0.5, training=True, inplace=False):
    """As torch: a 4-D input is one unbatched (C, D, H, W) sample; other ranks than 4/5 warn."""
    rank = input.dim()
    if rank not in (4, 5):
        _deprecated_rank_warning("dropout3d", rank, 3)
    if rank == 5:
        return _dropout(input, p, training, inplace, _feature_mask_shape(input, "dropout3d"))
    return _dropout(input, p, training, inplace, _feature_mask_shape(input.unsqueeze(0), "dropout3d")[1:])
