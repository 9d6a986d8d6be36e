"""Ordering ops: sort, argsort, topk, median, unique. Values are gathered from the input with the sorted
indices, so their gradient is gather's (each value's gradient returns to the element it came from)."""
import numpy as np

from .. import autograd
from ..backend import get_array_module
from ._util import normalize_dim
from .indexing import gather
from .reduction import values_indices


def _order(data, axis, descending):
    """Stable argsort; descending keeps equal elements in their original order, as torch's stable sort."""
    xp = get_array_module(data)
    if descending:
        if data.dtype.kind in "bu":
            data = data.astype(np.int64)
        data = -data
    return xp.argsort(data, axis=axis, kind="stable").astype(np.int64)


def argsort(x, dim=-1, descending=False, stable=False):
    Tensor = autograd.Tensor
    if x._data.ndim == 0:
        return Tensor._wrap(np.zeros((), dtype=np.int64))
    return Tensor._wrap(_order(x._data, normalize_dim(dim, x._data.ndim), descending))


def sort(x, dim=-1, descending=False, stable=False):
    if x._data.ndim == 0:
        return values_indices(x.clone(), argsort(x))
    indices = argsort(x, dim, descending)
    return values_indices(gather(x, dim, indices), indices)


def topk(x, k, dim=-1, largest=True, sorted=True):
    Tensor = autograd.Tensor
    axis = normalize_dim(dim, x._data.ndim)
    size = x._data.shape[axis] if x._data.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"selected index k out of range (k={k}, dimension size {size})")
    order = _order(x._data, axis, descending=largest)
    indices = Tensor._wrap(get_array_module(order).take(order, np.arange(k), axis=axis))
    return values_indices(gather(x, axis, indices), indices)


def kthvalue(x, k, dim=-1, keepdim=False):
    axis = normalize_dim(dim, x._data.ndim)
    values, indices = topk(x, k, axis, largest=False)
    values, indices = values.narrow(axis, k - 1, 1), indices.narrow(axis, k - 1, 1)
    if not keepdim:
        values, indices = values.squeeze(axis), indices.squeeze(axis)
    return values_indices(values, indices)


def median(x, dim=None, keepdim=False):
    """The lower of the two middle values for an even count, as torch returns."""
    if dim is None:
        flat = x.reshape(-1)
        return kthvalue(flat, (flat._data.size - 1) // 2 + 1, 0).values
    axis = normalize_dim(dim, x._data.ndim)
    return kthvalue(x, (x._data.shape[axis] - 1) // 2 + 1, axis, keepdim)


def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):
    Tensor = autograd.Tensor
    xp = get_array_module(x._data)
    values, inverse, counts = xp.unique(x._data, return_inverse=True, return_counts=True, axis=dim)
    outputs = [Tensor._wrap(values)]
    if return_inverse:
        shape = x._data.shape if dim is None else (x._data.shape[dim],)
        outputs.append(Tensor._wrap(inverse.reshape(shape).astype(np.int64)))
    if return_counts:
        outputs.append(Tensor._wrap(counts.astype(np.int64)))
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def count_nonzero(x, dim=None):
    Tensor = autograd.Tensor
    xp = get_array_module(x._data)
    axis = None if dim is None else (tuple(dim) if isinstance(dim, (tuple, list)) else dim)
    return Tensor._wrap(xp.asarray(xp.count_nonzero(x._data, axis=axis), dtype=np.int64))
