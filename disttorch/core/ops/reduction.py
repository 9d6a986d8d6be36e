"""Reductions (sum, mean, prod, max/min, var/std, norm, arg*) and the softmax family."""
import collections

import numpy as np

from .. import autograd
from .. import dtype as dt
from ..autograd import Function
from ..backend import get_array_module
from ._util import normalize_dim, normalize_dims
from .elementwise import Sqrt, maximum, minimum
from .elementwise import abs as abs_
from .elementwise import pow as pow_

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _expand_back(g, in_shape, axes, keepdim):
    """Re-insert reduced axes so `g` broadcasts against the input again."""
    if axes is None:
        return g.reshape((1,) * len(in_shape))
    if not keepdim:
        g = get_array_module(g).expand_dims(g, axes)
    return g


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, np_dtype):
        ctx.meta = (x.shape, axes, keepdim)
        return x.sum(axis=axes, keepdims=keepdim, dtype=np_dtype)

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdim = ctx.meta
        xp = get_array_module(g)
        return xp.broadcast_to(_expand_back(g, shape, axes, keepdim), shape), None, None, None


class Prod(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        out = x.prod(axis=axes, keepdims=keepdim)
        ctx.save_for_backward(x)
        ctx.meta = (axes, keepdim)
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        axes, keepdim = ctx.meta
        g = _expand_back(g, x.shape, axes, keepdim)
        return g * _product_of_others(x, None if axes is None else axes[0]), None, None


def _product_of_others(x, axis):
    """For each element, the product of the other elements along `axis` (exact even with zeros)."""
    xp = get_array_module(x)
    moved = x.reshape(1, -1) if axis is None else xp.moveaxis(x, axis, -1)
    ones = xp.ones(moved.shape[:-1] + (1,), dtype=x.dtype)
    left = xp.cumprod(xp.concatenate([ones, moved[..., :-1]], axis=-1), axis=-1)
    right = xp.cumprod(xp.concatenate([ones, moved[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    others = left * right
    return others.reshape(x.shape) if axis is None else xp.moveaxis(others, -1, axis)


class MaxMin(Function):
    """max/min over one dim, giving (values, indices); the gradient flows to the chosen element."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, is_max):
        xp = get_array_module(x)
        idx = xp.argmax(x, axis=axis) if is_max else xp.argmin(x, axis=axis)
        idx = xp.expand_dims(idx, axis)
        out = xp.take_along_axis(x, idx, axis=axis)
        ctx.meta = (x.shape, axis, idx)
        ctx.indices = idx if keepdim else xp.squeeze(idx, axis)
        return out if keepdim else xp.squeeze(out, axis)

    @staticmethod
    def backward(ctx, g):
        shape, axis, idx = ctx.meta
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        if g.ndim < len(shape):
            g = xp.expand_dims(g, axis)
        xp.put_along_axis(grad, idx, g, axis=axis)
        return grad, None, None, None


class Amax(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, is_max):
        out = x.max(axis=axes, keepdims=True) if is_max else x.min(axis=axes, keepdims=True)
        ctx.save_for_backward(x, out)
        ctx.axes = axes
        if keepdim:
            return out
        return out.reshape(()) if axes is None else get_array_module(x).squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        mask = x == out
        # Ties share the gradient evenly, as PyTorch's amax does.
        count = mask.sum(axis=ctx.axes, keepdims=True)
        return g.reshape(out.shape) * (mask / count).astype(g.dtype, copy=False), None, None, None


class RootOfSquares(Sqrt):
    """The final sqrt of norm and std: at 0 their gradient is 0 (as in PyTorch), not sqrt's infinity."""

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        nonzero = out != 0
        return g / (2 * get_array_module(out).where(nonzero, out, 1)) * nonzero


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = get_array_module(x)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        ctx.save_for_backward(x, out)
        ctx.meta = (axes, keepdim)
        return out if keepdim else xp.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        axes, keepdim = ctx.meta
        xp = get_array_module(x)
        if not keepdim:
            g = xp.expand_dims(g, axes)
        return g * xp.exp(x - out), None, None


def max_keepdims(x, axis):
    """x.max(axis, keepdims=True); over a last axis by halving with elementwise maximum, since NumPy's max
    reduction along contiguous rows runs a scalar loop (about 3x slower on (..., 64) attention scores)."""
    xp = get_array_module(x)
    if xp is not np or axis != x.ndim - 1 or x.shape[-1] < 16:
        return x.max(axis=axis, keepdims=True)
    m = x
    while m.shape[-1] > 1:
        width = m.shape[-1]
        half = width // 2
        folded = xp.maximum(m[..., :half], m[..., half:2 * half])
        if width % 2:
            xp.maximum(folded[..., :1], m[..., 2 * half:], out=folded[..., :1])
        m = folded
    return m


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        xp = get_array_module(x)
        out = x - max_keepdims(x, axis)
        xp.exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        # out * (g - sum(g * out)), in place on one temporary
        grad = g * out
        row_dot = grad.sum(axis=ctx.axis, keepdims=True)
        get_array_module(out).subtract(g, row_dot, out=grad)
        grad *= out
        return grad, None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        xp = get_array_module(x)
        shifted = x - max_keepdims(x, axis)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        xp = get_array_module(out)
        # g - softmax * sum(g), in place on the softmax
        grad = xp.exp(out)
        grad *= g.sum(axis=ctx.axis, keepdims=True)
        xp.subtract(g, grad, out=grad)
        return grad, None


def _float(x):
    if x._data.dtype.kind in "biu":
        return x.to(dt.get_default_dtype())
    return x


def sum(x, dim=None, keepdim=False, dtype=None):
    axes = normalize_dims(dim, x._data.ndim)
    if axes == ():
        axes = None
    np_dtype = dtype.numpy if dtype is not None else (np.int64 if x._data.dtype.kind in "biu" else None)
    return Sum.apply(x, axes, keepdim, np_dtype)


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind in "biu":
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
            f"complex dtype. Got: {x.dtype}. Convert with .float() first."
        )
    axes = normalize_dims(dim, x._data.ndim)
    count = x._data.size if axes is None else int(np.prod([x._data.shape[a] for a in axes]))
    total = Sum.apply(x, axes, keepdim, None)
    return total * (1.0 / count) if count else total * float("nan")


def prod(x, dim=None, keepdim=False):
    axes = None if dim is None else normalize_dims(dim, x._data.ndim)
    return Prod.apply(x, axes, keepdim)


def _max_min(x, dim, keepdim, is_max, name):
    if dim is None:
        if x._data.size == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                               "Specify the reduction dim with the 'dim' argument.")
        # A full reduction shares the gradient among tied maxima, as PyTorch's max() does.
        return Amax.apply(x, None, False, is_max)
    Tensor = autograd.Tensor
    if isinstance(dim, Tensor):
        return maximum(x, dim) if is_max else minimum(x, dim)
    axis = normalize_dim(dim, x._data.ndim)
    values = MaxMin.apply(x, axis, keepdim, is_max)
    indices = Tensor._wrap(values.grad_fn.indices if values.grad_fn is not None else _indices(x, axis, keepdim, is_max))
    return values_indices(values, indices)


def _indices(x, axis, keepdim, is_max):
    xp = get_array_module(x._data)
    idx = xp.argmax(x._data, axis=axis) if is_max else xp.argmin(x._data, axis=axis)
    return xp.expand_dims(idx, axis) if keepdim else idx


def max(x, dim=None, keepdim=False):
    return _max_min(x, dim, keepdim, True, "max")


def min(x, dim=None, keepdim=False):
    return _max_min(x, dim, keepdim, False, "min")


def amax(x, dim=(), keepdim=False):
    axes = normalize_dims(dim, x._data.ndim) if dim != () else None
    return Amax.apply(x, axes, keepdim, True)


def amin(x, dim=(), keepdim=False):
    axes = normalize_dims(dim, x._data.ndim) if dim != () else None
    return Amax.apply(x, axes, keepdim, False)


def argmax(x, dim=None, keepdim=False):
    Tensor = autograd.Tensor
    xp = get_array_module(x._data)
    if dim is None:
        out = xp.asarray(xp.argmax(x._data), dtype=np.int64)
        return Tensor._wrap(out.reshape((1,) * x._data.ndim) if keepdim else out)
    return Tensor._wrap(_indices(x, normalize_dim(dim, x._data.ndim), keepdim, True).astype(np.int64))


def argmin(x, dim=None, keepdim=False):
    Tensor = autograd.Tensor
    xp = get_array_module(x._data)
    if dim is None:
        out = xp.asarray(xp.argmin(x._data), dtype=np.int64)
        return Tensor._wrap(out.reshape((1,) * x._data.ndim) if keepdim else out)
    return Tensor._wrap(_indices(x, normalize_dim(dim, x._data.ndim), keepdim, False).astype(np.int64))


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """Composite of mean/sub/mul/sum, so it needs no backward of its own."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    x = _float(x)
    axes = normalize_dims(dim, x._data.ndim)
    count = x._data.size if axes is None else int(np.prod([x._data.shape[a] for a in axes]))
    centered = x - mean(x, dim=axes, keepdim=True)
    return sum(centered * centered, dim=axes, keepdim=keepdim) * (1.0 / (count - correction) if count > correction else float("nan"))


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return RootOfSquares.apply(var(x, dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction))


def norm(x, p="fro", dim=None, keepdim=False):
    x = _float(x)
    if p in ("fro", 2, 2.0):
        return RootOfSquares.apply(sum(x * x, dim=dim, keepdim=keepdim))
    if p in (float("inf"), "inf"):
        return amax(abs_(x), dim=dim if dim is not None else (), keepdim=keepdim)
    if p == 1:
        return sum(abs_(x), dim=dim, keepdim=keepdim)
    return pow_(sum(pow_(abs_(x), p), dim=dim, keepdim=keepdim), 1.0 / p)


def logsumexp(x, dim, keepdim=False):
    return LogSumExp.apply(_float(x), normalize_dims(dim, x._data.ndim), keepdim)


def softmax(x, dim, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return Softmax.apply(_float(x), normalize_dim(dim, x._data.ndim))


def log_softmax(x, dim, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return LogSoftmax.apply(_float(x), normalize_dim(dim, x._data.ndim))


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return x.cumsum(axis=axis)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        # The gradient of a running sum is the running sum of the gradient taken from the end.
        return xp.flip(xp.flip(g, axis=ctx.axis).cumsum(axis=ctx.axis), axis=ctx.axis), None


def cumsum(x, dim):
    return Cumsum.apply(x, normalize_dim(dim, x._data.ndim))


class Cumprod(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = x.cumprod(axis=axis)
        ctx.save_for_backward(x, out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        axis = ctx.axis
        xp = get_array_module(g)

        def reverse_cumsum(v):
            return xp.flip(xp.flip(v, axis=axis).cumsum(axis=axis), axis=axis)

        if (x != 0).all():
            # d out_j / d x_i = out_j / x_i for j >= i.
            return reverse_cumsum(g * out) / x, None
        # With zeros the division fails: redo each position's product with that factor left out.
        grad = xp.empty_like(x)
        moved_x, moved_g, moved_grad = (xp.moveaxis(a, axis, 0) for a in (x, g, grad))
        for i in range(moved_x.shape[0]):
            without = moved_x.copy()
            without[i] = 1
            products = without.cumprod(axis=0)
            moved_grad[i] = (moved_g[i:] * products[i:]).sum(axis=0)
        return grad, None


def cumprod(x, dim, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return Cumprod.apply(x, normalize_dim(dim, x._data.ndim))


def _mean_and(reduce_fn, x, dim, unbiased, keepdim, correction):
    spread = reduce_fn(x, dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction)
    return spread, mean(x, dim=dim, keepdim=keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _mean_and(std, x, dim, unbiased, keepdim, correction)


def var_mean(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _mean_and(var, x, dim, unbiased, keepdim, correction)
